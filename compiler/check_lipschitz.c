/* check_lipschitz.c - `require lipschitz <= C` (DESIGN §4), proved.
 *
 * A rigorous upper bound on the Lipschitz constant (Euclidean norms) of the
 * map from the input to the logits (the argument of the output's softmax;
 * softmax is 1-Lipschitz, so the output's constant is no larger). The bound
 * composes, in program order:
 *   expressions: |M| from norm bounds (|A - A'| <= 2|A|, |skew| <= c,
 *     |orth| = 1), sums add, join is the root of the sum of squares, an
 *     activation multiplies by max |sigma'|, constants are free;
 *   a Runge-Kutta layer with field constant L: 1 + sum_m (hL)^(m+1) |b|'|A|^m 1
 *     (1 + hL for Euler), from the stage recursion |dK_i| <= L (1 + h sum_j
 *     |a_ij| |dK_j|);
 *   a partitioned layer: the product of the shear bounds 1 + h_i L_i of its
 *     updates; a repeat layer: the product over its assignments, 1 + L_f for
 *     a shear v = v +- f(others), sqrt(1 + L_e^2) for v = e;
 *   a layer proved non-expansive (check_nonexpansive.c): 1;
 *   N layers: the bound to the power N.
 * A parameter without a norm bound, exp, or a product of two sample values
 * makes the bound infinite and the verdict names the culprit. */
#include <math.h>
#include <string.h>

#include "check.h"

static bool reads_state(const Expr *e, const State *v, int depth)
{
    if (!e || depth > 200)
        return false;
    if (e->kind == E_NAME && e->sym) {
        if (e->sym->kind == S_STATE)
            return e->sym->state == v;
        if (e->sym->kind == S_LET && e->sym->expr)
            return reads_state(e->sym->expr, v, depth + 1);
        return false;
    }
    if (reads_state(e->lhs, v, depth + 1) || reads_state(e->rhs, v, depth + 1))
        return true;
    for (const Expr *x = e->args.head; x; x = x->next)
        if (reads_state(x, v, depth + 1))
            return true;
    return false;
}

static bool uses_let(const Expr *e, const Decl *let, int depth)
{
    if (!e || depth > 200)
        return false;
    if (e->kind == E_NAME && e->sym && e->sym->kind == S_LET)
        return e->sym->decl == let || (e->sym->expr && uses_let(e->sym->expr, let, depth + 1));
    if (uses_let(e->lhs, let, depth + 1) || uses_let(e->rhs, let, depth + 1))
        return true;
    for (const Expr *x = e->args.head; x; x = x->next)
        if (uses_let(x, let, depth + 1))
            return true;
    return false;
}

static const State *decl_state(const Model *m, const Decl *d)
{
    (void)m;
    return d->sem ? ((const Sym *)d->sem)->state : NULL;
}

static bool is_state(const Expr *e, const State *v)
{
    return e->kind == E_NAME && e->sym && e->sym->kind == S_STATE && e->sym->state == v;
}

/* The Lipschitz constant of one layer as a map of the whole state vector. */
static double layer_lipschitz(const Model *m, const Block *b, bool nonexpansive, Blame *bl)
{
    LipCtx cx = {.m = m, .input_w = INFINITY};
    double h = block_step(b);
    if (nonexpansive)
        return 1;
    if (b->kind == BLOCK_REPEAT) {
        double beta = 1;
        for (int i = 0; i < b->nitems; i++) {
            const Decl *it = b->items[i];
            if (it->kind != D_ASSIGN)
                continue;
            const State *v = decl_state(m, it);
            /* a let that read a state assigned since is not a function of the
             * current state: such a layer is not bounded (it is rare) */
            for (int j = 0; j < i; j++) {
                const Decl *lt = b->items[j];
                if (lt->kind != D_LET || !uses_let(it->value, lt, 0))
                    continue;
                for (int k = j + 1; k < i; k++)
                    if (b->items[k]->kind == D_ASSIGN && reads_state(lt->value, decl_state(m, b->items[k]), 0)) {
                        if (!bl->what) {
                            bl->what = "a let read a state that was assigned before the let is used; the checker bounds "
                                       "each assignment as a map of the current state";
                            bl->span = lt->span;
                        }
                        return INFINITY;
                    }
            }
            const Expr *e = it->value;
            double l;
            if (e->kind == E_ADD && (is_state(e->lhs, v) || is_state(e->rhs, v)) &&
                !reads_state(is_state(e->lhs, v) ? e->rhs : e->lhs, v, 0)) { /* a shear */
                l = 1 + expr_lipschitz(is_state(e->lhs, v) ? e->rhs : e->lhs, &cx, bl);
            } else if (e->kind == E_SUB && is_state(e->lhs, v) && !reads_state(e->rhs, v, 0)) { /* v - f(others) */
                l = 1 + expr_lipschitz(e->rhs, &cx, bl);
            } else {
                double le = expr_lipschitz(e, &cx, bl);
                l = sqrt(1 + le * le);
            }
            beta *= l;
        }
        return beta;
    }
    /* flows: the field's constant per equation */
    double Li[2 * SCHEME_MAX_STAGES + 2] = {0}, sum2 = 0;
    int eq = 0;
    for (int i = 0; i < b->nitems && eq < 2 * SCHEME_MAX_STAGES; i++)
        if (b->items[i]->kind == D_EQUATION) {
            Li[eq] = expr_lipschitz(b->items[i]->value, &cx, bl);
            sum2 += Li[eq] * Li[eq];
            eq++;
        }
    const Scheme *sc = b->scheme;
    if (sc->kind != SCHEME_RK) {
        /* shears v_k += h_k F_k: verlet gives the first variable two half steps */
        double beta = 1;
        for (int k = 0; k < eq; k++)
            beta *= sc->kind == SCHEME_VERLET && k == 0 ? (1 + h / 2 * Li[k]) * (1 + h / 2 * Li[k]) : 1 + h * Li[k];
        return beta;
    }
    double L = sqrt(sum2);
    /* 1 + sum_m (hL)^(m+1) |b|' |A|^m 1 */
    double v[SCHEME_MAX_STAGES], w[SCHEME_MAX_STAGES];
    for (int i = 0; i < sc->stages; i++)
        v[i] = 1;
    double beta = 1, hl = h * L, pw = hl;
    for (int mm = 0; mm < sc->stages; mm++) {
        double dot = 0;
        for (int i = 0; i < sc->stages; i++)
            dot += fabs(sc->b[i]) * v[i];
        beta += pw * dot;
        pw *= hl;
        for (int i = 0; i < sc->stages; i++) {
            w[i] = 0;
            for (int j = 0; j < sc->stages; j++)
                w[i] += fabs(sc->a[i][j]) * v[j];
        }
        memcpy(v, w, sizeof v);
    }
    return beta;
}

static const char *blame_text(Arena *a, const Blame *b)
{
    if (b->param)
        return arena_printf(a, "'%s' %s", b->param->name, b->what);
    return b->what ? b->what : "a part of the network has no Lipschitz bound";
}

/* e = x[a:b] of a vector input, disjoint from the slices taken so far
 * (marked in sliced, which this marks). */
static bool input_slice(const Model *m, const Expr *e, bool *sliced)
{
    if (e->kind != E_INDEX || e->lhs->kind != E_NAME || !e->lhs->sym || e->lhs->sym->kind != S_INPUT ||
        m->in_shape.rank != 1 || e->args.len != 1 || e->args.head->kind != E_RANGE)
        return false;
    const Expr *r = e->args.head;
    if (!r->lhs || !r->rhs || !r->lhs->has_value || !r->rhs->has_value)
        return false;
    int lo = (int)r->lhs->num, hi = (int)r->rhs->num;
    if (lo < 0 || hi > (int)m->nin || lo >= hi)
        return false;
    for (int i = lo; i < hi; i++)
        if (sliced[i])
            return false;
    for (int i = lo; i < hi; i++)
        sliced[i] = true;
    return true;
}

void check_lipschitz(Arena *a, Certificate *c)
{
    const StepProgram *p = c->p;
    const Model *m = p->m;
    Verdict *v = &c->v[REQ_LIPSCHITZ];
    v->theorem = "composition of Lipschitz bounds: norm bounds for linear maps, max |sigma'| for activations, "
                 "1 + sum_m (hL)^(m+1) |b|'|A|^m 1 per Runge-Kutta step, shear bounds 1 + h L for partitioned steps, "
                 "1 for steps proved non-expansive";
    v->reference = "Celledoni et al. 2021 (Sec. 3-4); Hairer, Norsett & Wanner, Solving ODEs I (II.3)";
    double *Lx = ARENA_ARRAY(a, double, m->nstates + 1);
    double *letw = ARENA_ARRAY(a, double, m->ndecls + 1);
    bool *declared = ARENA_ARRAY(a, bool, m->nstates + 1);
    /* group 0: states initialised as disjoint slices x[a:b] of the input
     * (together a coordinate projection, bound 1); group k > 0: the states
     * block k - 1 wrote (their joint bound) */
    int *group = ARENA_ARRAY(a, int, m->nstates + 1);
    double *group_w = ARENA_ARRAY(a, double, p->nsegs + 2);
    bool *sliced = ARENA_ARRAY(a, bool, m->nin + 1);
    int ngroups = 1;
    group_w[0] = 1;
    for (int i = 0; i < m->nstates; i++)
        group[i] = -1;
    for (int i = 0; i < m->ndecls; i++)
        letw[i] = INFINITY;
    LipCtx mc = {m, Lx, 1.0, letw, group, group_w};
    Blame bl = {0};
    char story[2048] = "";
    size_t sn = 0;
    int seg = 0;
    for (int i = 0; i < m->ndecls; i++) {
        const Decl *d = m->decls[i];
        Sym *s = d->sem;
        if (d->kind == D_STATE && s && s->state) {
            Lx[s->state->index] = expr_lipschitz(d->value, &mc, &bl);
            declared[s->state->index] = true;
            if (input_slice(m, d->value, sliced))
                group[s->state->index] = 0;
        } else if (d->kind == D_LET && s && s->kind == S_LET) {
            letw[i] = expr_lipschitz(d->value, &mc, &bl);
        } else if (d->kind == D_FLOW || d->kind == D_REPEAT) {
            const Block *b = d->sem;
            while (seg < p->nsegs && (p->segs[seg].kind != SEG_BLOCK || p->segs[seg].blk != b))
                seg++;
            /* the joint state: each group once, plus the states in none */
            double ls2 = 0;
            bool *counted = ARENA_ARRAY(a, bool, ngroups + 1);
            for (int k = 0; k < m->nstates; k++)
                if (declared[k] && group[k] < 0)
                    ls2 += Lx[k] * Lx[k];
                else if (declared[k] && !counted[group[k]]) {
                    counted[group[k]] = true;
                    ls2 += group_w[group[k]] * group_w[group[k]];
                }
            const char *r, *note, *fix;
            Span at;
            bool ne = block_nonexpansive(a, b, &r, &at, &note, &fix);
            if (seg < p->nsegs)
                c->block_nonexpansive[seg] = ne;
            double beta = layer_lipschitz(m, b, ne, &bl);
            if (seg < p->nsegs)
                c->block_step_lip[seg] = beta;
            double grow = pow(beta, b->layers);
            int g = ngroups++;
            group_w[g] = grow * sqrt(ls2);
            for (int k = 0; k < b->nitems; k++) {
                const Decl *it = b->items[k];
                if (it->kind == D_EQUATION || it->kind == D_ASSIGN) {
                    const State *st = decl_state(m, it);
                    if (st) {
                        Lx[st->index] = group_w[g];
                        group[st->index] = g;
                    }
                }
            }
            if (sn < sizeof story)
                sn += (size_t)snprintf(story + sn, sizeof story - sn, "%s%d layers x %.6g%s", sn ? ", then " : "",
                                       b->layers, beta, ne ? " (non-expansive)" : "");
        }
    }
    /* the logits: the argument of a final softmax */
    const Expr *out = expr_unlet(m->output->expr);
    const Expr *logits = out->kind == E_CALL && out->fn == FN_SOFTMAX ? out->args.head : out;
    double L = expr_lipschitz(logits, &mc, &bl);
    c->lipschitz = L;
    double want = v->required ? v->bound : INFINITY;
    if (isinf(L) || isnan(L)) {
        verdict_set(v, false, LEVEL_REFUSED, NAN, arena_printf(a, "no finite bound: %s", blame_text(a, &bl)));
        verdict_note(a, v, bl.param ? bl.param->span : bl.span, "%s", blame_text(a, &bl));
        if (bl.param)
            verdict_note(a, v, NO_SPAN, "bound it: `param %s : ... where norm(%s) <= c;`", bl.param->name, bl.param->name);
        else if (bl.fix)
            verdict_note(a, v, NO_SPAN, "%s", bl.fix);
        return;
    }
    const char *why = arena_printf(a, "L <= %.6g from the input to the logits (%s%sread-out)", L, story, sn ? ", then " : "");
    if (v->required && L > want) {
        verdict_set(v, false, LEVEL_REFUSED, L, arena_printf(a, "the bound %.6g exceeds %g: %s", L, want, why));
        verdict_note(a, v, NO_SPAN, "tighten the norm bounds, shorten the flow, or use a non-expansive gradient flow");
        return;
    }
    verdict_set(v, true, LEVEL_PROVED, L, why);
}
