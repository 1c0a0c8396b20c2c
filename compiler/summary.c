/* summary.c - see summary.h. */
#include "summary.h"

#include <math.h>
#include <string.h>

void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void json_num(FILE *out, double x)
{
    if (isfinite(x))
        fprintf(out, "%.17g", x);
    else
        fputs("null", out);
}

const char *param_kind_str(Arena *a, const Param *p)
{
    int n = p->shape.rank == 2 ? p->shape.dim[0] : 0;
    switch (p->kind) {
    case PK_FREE: return shape_str(a, p->shape);
    case PK_SKEW: return arena_printf(a, "skew[%d]", n);
    case PK_ORTH: return arena_printf(a, "orth[%d]", n);
    case PK_LU: return arena_printf(a, "lu[%d]", n);
    case PK_LIFT: return arena_printf(a, "lift[%s, %d -> %d, %d]", p->group->name, p->cin, p->cout, p->ksize);
    case PK_GCONV: return arena_printf(a, "gconv[%s, %d -> %d, %d]", p->group->name, p->cin, p->cout, p->ksize);
    case PK_STEPS: return "steps";
    }
    return "?";
}

static const char *scheme_desc(Arena *a, const Scheme *s)
{
    if (s->kind == SCHEME_VERLET)
        return "verlet (partitioned, kick-drift-kick, order 2)";
    if (s->kind == SCHEME_SYMPLECTIC_EULER)
        return "symplectic_euler (partitioned, order 1)";
    return arena_printf(a, "%s (explicit Runge-Kutta, %d stage%s, order %d)", s->name, s->stages,
                        s->stages == 1 ? "" : "s", s->order);
}

static void text(FILE *out, Arena *a, const Model *m)
{
    const SourceFile *f = NULL;
    (void)f;
    fprintf(out, "model %s\n", m->name);
    fprintf(out, "  input   %s : %s\n", m->input->name, shape_str(a, m->in_shape));
    if (m->label)
        fprintf(out, "  label   %s : class[%d]\n", m->label->name, m->nclass);
    if (m->target)
        fprintf(out, "  target  %s : %s\n", m->target->name, shape_str(a, m->target->type.shape));
    for (int i = 0; i < m->ngroups; i++) {
        const Group *g = m->groups[i];
        if (g->kind == GROUP_S) /* n! permutations, not enumerated */
            fprintf(out, "  group   %s (order %d!) acts on %s\n", g->name, g->n, g->acts_on->name);
        else
            fprintf(out, "  group   %s (order %d) acts on %s\n", g->name, g->order, g->acts_on->name);
    }
    for (int i = 0; i < m->nstates; i++)
        fprintf(out, "  state   %s : %s\n", m->states[i]->name, shape_str(a, m->states[i]->shape));
    for (int i = 0; i < m->nparams; i++) {
        const Param *p = m->params[i];
        fprintf(out, "  param   %s : %s", p->name, param_kind_str(a, p));
        if (p->per_layer)
            fprintf(out, " per layer (%d copies)", p->layers);
        if (p->has_norm)
            fprintf(out, ", norm <= %g", p->norm_bound);
        if (p->kind == PK_STEPS)
            fprintf(out, " of block %d", p->block->index + 1);
        fprintf(out, ", %zu number%s\n", p->size, p->size == 1 ? "" : "s");
    }
    for (int i = 0; i < m->nblocks; i++) {
        const Block *b = m->blocks[i];
        if (b->kind == BLOCK_FLOW) {
            fprintf(out, "  flow    over [%g, %g] in %d layers by %s, ", b->t0, b->t1, b->layers, scheme_desc(a, b->scheme));
            if (b->learned)
                fprintf(out, "learned steps (initially h = %.6g%s)", b->h,
                        b->has_hmax ? arena_printf(a, ", at most %g", b->hmax) : "");
            else
                fprintf(out, "h = %.6g", b->h);
            fputs("; states", out);
            for (int j = 0; j < b->nvars; j++)
                fprintf(out, "%s %s", j ? "," : "", b->vars[j]->name);
            fputc('\n', out);
        } else {
            fprintf(out, "  repeat  %d layers, %d assignment%s\n", b->layers, b->nitems, b->nitems == 1 ? "" : "s");
        }
    }
    fprintf(out, "  output  %s : %s\n", m->output->name, shape_str(a, m->out_shape));
    fputs("  loss    ", out);
    ast_dump_expr(out, m->loss);
    fputc('\n', out);
    if (m->nreqs) {
        fputs("  require", out);
        for (int i = 0; i < m->nreqs; i++) {
            const Req *q = &m->reqs[i];
            fprintf(out, "%s %s", i ? "," : "", req_names[q->kind]);
            if (q->kind == REQ_LIPSCHITZ)
                fprintf(out, " <= %g", q->bound);
            if (q->group)
                fprintf(out, "(%s)", q->group->name);
        }
        fputc('\n', out);
    }
    fprintf(out, "  %zu parameters in all; state of %zu numbers\n", m->theta_size, m->state_size);
}

static void json_shape(FILE *out, Shape s)
{
    fputc('[', out);
    for (int i = 0; i < s.rank; i++)
        fprintf(out, "%s%d", i ? ", " : "", s.dim[i]);
    fputc(']', out);
}

static void json(FILE *out, Arena *a, const Model *m)
{
    fputs("{\"model\": ", out);
    json_str(out, m->name);
    fputs(", \"input\": {\"name\": ", out);
    json_str(out, m->input->name);
    fputs(", \"shape\": ", out);
    json_shape(out, m->in_shape);
    fputs("}", out);
    if (m->label) {
        fputs(", \"label\": {\"name\": ", out);
        json_str(out, m->label->name);
        fprintf(out, ", \"classes\": %d}", m->nclass);
    }
    if (m->target) {
        fputs(", \"target\": {\"name\": ", out);
        json_str(out, m->target->name);
        fprintf(out, ", \"size\": %zu, \"shape\": ", m->ntarget);
        json_shape(out, m->target->type.shape);
        fputc('}', out);
    }
    fputs(", \"states\": [", out);
    for (int i = 0; i < m->nstates; i++) {
        fputs(i ? ", {\"name\": " : "{\"name\": ", out);
        json_str(out, m->states[i]->name);
        fputs(", \"shape\": ", out);
        json_shape(out, m->states[i]->shape);
        fputc('}', out);
    }
    fputs("], \"params\": [", out);
    for (int i = 0; i < m->nparams; i++) {
        const Param *p = m->params[i];
        fputs(i ? ", {\"name\": " : "{\"name\": ", out);
        json_str(out, p->name);
        fputs(", \"type\": ", out);
        json_str(out, param_kind_str(a, p));
        fprintf(out, ", \"layers\": %d, \"size\": %zu, \"offset\": %zu, \"norm_bound\": ", p->layers, p->size, p->offset);
        json_num(out, p->has_norm ? p->norm_bound : NAN);
        fputc('}', out);
    }
    fputs("], \"blocks\": [", out);
    for (int i = 0; i < m->nblocks; i++) {
        const Block *b = m->blocks[i];
        fprintf(out, "%s{\"kind\": \"%s\", \"layers\": %d", i ? ", " : "", b->kind == BLOCK_FLOW ? "flow" : "repeat",
                b->layers);
        if (b->kind == BLOCK_FLOW) {
            fputs(", \"scheme\": ", out);
            json_str(out, b->scheme->name);
            fprintf(out, ", \"order\": %d, \"t0\": ", b->scheme->order);
            json_num(out, b->t0);
            fputs(", \"t1\": ", out);
            json_num(out, b->t1);
            fputs(", \"h\": ", out);
            json_num(out, b->h);
            fprintf(out, ", \"learned_steps\": %s", b->learned ? "true" : "false");
        }
        fputc('}', out);
    }
    fputs("], \"outputs\": ", out);
    fprintf(out, "%zu, \"parameters\": %zu", m->nout, m->theta_size);
}

void summary_print(FILE *out, Arena *a, const Model *m, bool as_json)
{
    if (as_json)
        json(out, a, m);
    else
        text(out, a, m);
}
