/* check.c - runs the guarantee checkers and prints certificates; the
 * analyses they share are analysis.c's. */
#include "check.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "summary.h"

const char *const level_names[] = {"proved", "linearized", "refused"};

void verdict_note(Arena *a, Verdict *v, Span sp, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    VNote *n = ARENA_NEW(a, VNote);
    n->span = sp;
    n->msg = arena_strdup(a, buf);
    if (v->notes_tail)
        v->notes_tail->next = n;
    else
        v->notes = n;
    v->notes_tail = n;
}

void verdict_set(Verdict *v, bool holds, Level level, double bound, const char *reason)
{
    v->evaluated = true;
    v->holds = holds;
    v->level = level;
    v->bound = bound;
    v->reason = reason;
}

/* ---- the certificate -------------------------------------------------------- */

Certificate *check_model(Arena *a, Diags *d, const StepProgram *p)
{
    (void)d;
    Certificate *c = ARENA_NEW(a, Certificate);
    c->p = p;
    c->lipschitz = INFINITY;
    c->block_step_lip = ARENA_ARRAY(a, double, p->nsegs + 1);
    c->block_nonexpansive = ARENA_ARRAY(a, bool, p->nsegs + 1);
    c->model_lip = an_lip_new(a, p);
    c->layer_lip = an_lip_new(a, p);
    for (int i = 0; i < REQ_COUNT; i++) {
        c->v[i].kind = (ReqKind)i;
        c->v[i].bound = NAN;
        c->v[i].level = LEVEL_REFUSED;
    }
    for (int i = 0; i < p->m->nreqs; i++) {
        Verdict *v = &c->v[p->m->reqs[i].kind];
        v->required = true;
        v->req_span = p->m->reqs[i].span;
        if (p->m->reqs[i].kind == REQ_LIPSCHITZ)
            v->bound = p->m->reqs[i].bound;
    }
    check_stable(a, c);
    check_lipschitz(a, c);      /* counts the layers proved non-expansive as 1 */
    check_nonexpansive(a, c);   /* then: L <= 1 */
    check_invertible(a, c);
    check_equivariant(a, c);
    for (int i = 0; i < REQ_COUNT; i++) /* can't happen: every kind has a checker; never a silent pass */
        if (c->v[i].required && !c->v[i].evaluated)
            verdict_set(&c->v[i], false, LEVEL_REFUSED, NAN, "internal: no checker decided it");
    return c;
}

int check_report(Diags *d, const Certificate *c)
{
    int failed = 0;
    for (int i = 0; i < c->p->m->nreqs; i++) {
        const Req *q = &c->p->m->reqs[i];
        const Verdict *v = &c->v[q->kind];
        if (v->holds)
            continue;
        failed++;
        Diag *g = diag_error(d, q->span, "required guarantee '%s' does not hold: %s", req_names[q->kind],
                             v->reason ? v->reason : "refused");
        for (const VNote *n = v->notes; n; n = n->next)
            diag_note(d, g, n->span, "%s", n->msg);
    }
    return failed;
}

static void print_text(FILE *out, const Certificate *c)
{
    const Model *m = c->p->m;
    fprintf(out, "certificate for model %s\n", m->name);
    bool any = false;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < REQ_COUNT; k++) {
            const Verdict *v = &c->v[k];
            if (!v->evaluated || v->required != (pass == 0))
                continue;
            if (pass == 1 && !any)
                fprintf(out, "  also (not required):\n");
            any = true;
            char head[64];
            snprintf(head, sizeof head, "%s", req_names[k]);
            for (int i = 0; i < m->nreqs; i++)
                if (k == REQ_LIPSCHITZ && m->reqs[i].kind == REQ_LIPSCHITZ)
                    snprintf(head, sizeof head, "lipschitz <= %g", m->reqs[i].bound);
            fprintf(out, "  %-16s %-6s %-10s %s\n", head, v->holds ? "holds" : "FAILS", level_names[v->level],
                    v->reason ? v->reason : "");
            if (v->theorem && v->required)
                fprintf(out, "  %-16s theorem: %s\n", "", v->theorem);
            if (v->reference && v->required)
                fprintf(out, "  %-16s reference: %s\n", "", v->reference);
        }
}

static void print_json(FILE *out, const Certificate *c)
{
    fputs(", \"guarantees\": {", out);
    bool first = true;
    for (int k = 0; k < REQ_COUNT; k++) {
        const Verdict *v = &c->v[k];
        if (!v->evaluated)
            continue;
        fprintf(out, "%s\"%s\": {\"holds\": %s, \"level\": ", first ? "" : ", ", req_names[k],
                v->holds ? "true" : "false");
        first = false;
        json_str(out, level_names[v->level]);
        fputs(", \"bound\": ", out);
        json_num(out, v->bound);
        fputs(", \"reason\": ", out);
        json_str(out, v->reason ? v->reason : "");
        fprintf(out, ", \"required\": %s", v->required ? "true" : "false");
        if (v->theorem) {
            fputs(", \"theorem\": ", out);
            json_str(out, v->theorem);
        }
        if (v->reference) {
            fputs(", \"reference\": ", out);
            json_str(out, v->reference);
        }
        if (v->inverse_kind) {
            fputs(", \"inverse\": ", out);
            json_str(out, v->inverse_kind);
            fputs(", \"logdet\": ", out);
            json_str(out, v->logdet_kind ? v->logdet_kind : "none");
            if (v->logdet_terms)
                fprintf(out, ", \"logdet_terms\": %d, \"logdet_truncation\": %.17g", v->logdet_terms,
                        v->logdet_truncation);
            if (v->fixed_point_iters)
                fprintf(out, ", \"iterations\": %d", v->fixed_point_iters);
        }
        fputc('}', out);
    }
    fputs("}}\n", out);
}

void check_print(FILE *out, Arena *a, const Certificate *c, bool json)
{
    (void)a;
    if (json)
        print_json(out, c);
    else
        print_text(out, c);
}
