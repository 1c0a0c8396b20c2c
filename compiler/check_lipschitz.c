/* check_lipschitz.c - `require lipschitz <= C` (DESIGN §4), proved.
 *
 * A rigorous upper bound on the Lipschitz constant (Euclidean norms) of the
 * map from the input to the logits (the argument of the output's softmax;
 * softmax is 1-Lipschitz, so the output's constant is no larger), composed
 * over the step program in execution order (analysis.c):
 *   values: |M| from norm bounds (|A - A'| <= 2|A|, |skew| <= c, |orth| = 1,
 *     c I), sums add, join is the root of the sum of squares, an activation
 *     multiplies by max |sigma'|, parameter code is free;
 *   a layer: the product over its updates, each a map of the variables'
 *     current values: 1 + |x| for v = v + x (a Runge-Kutta step's x through
 *     its stages, so 1 + sum_m (hL)^(m+1) |b|'|A|^m 1 for one variable;
 *     verlet's and symplectic Euler's shears 1 + h_i L_i), sqrt(1 + |e|^2)
 *     for v = e;
 *   a layer proved non-expansive (an_nonexpansive): 1;
 *   N layers: the bound to the power N.
 * The states a block writes are bounded jointly (their group); states set
 * from disjoint slices of a vector input form a coordinate projection. A
 * parameter without a norm bound, exp, or a product of two sample values
 * makes the bound infinite and the verdict names the culprit. */
#include <math.h>
#include <string.h>

#include "check.h"

static const char *blame_text(Arena *a, const Blame *b)
{
    if (b->param)
        return arena_printf(a, "'%s' %s", b->param->name, b->what);
    return b->what ? b->what : "a part of the network has no Lipschitz bound";
}

/* store = x[lo:hi] of a vector input, disjoint from the slices taken so far
 * (marked in sliced, which this marks). */
static bool input_slice(const StepProgram *p, const Val *store, bool *sliced)
{
    const Model *m = p->m;
    const Val *v = p->vals[store->a];
    if (v->op != OP_SLICE || v->a != p->input || m->in_shape.rank != 1 || v->fn != 1)
        return false;
    int lo = v->lo[0], hi = v->hi[0];
    if (lo < 0 || hi > (int)m->nin || lo >= hi)
        return false;
    for (int i = lo; i < hi; i++)
        if (sliced[i])
            return false;
    for (int i = lo; i < hi; i++)
        sliced[i] = true;
    return true;
}

static const Blame *keep(Arena *a, const Blame *b)
{
    if (!b->what)
        return NULL;
    Blame *k = ARENA_NEW(a, Blame);
    *k = *b;
    return k;
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
    /* per state: its bound as a function of the input, the group whose joint
     * bound covers it (-1: none; 0: disjoint input slices; k > 0: the states
     * one block wrote), and why it is infinite */
    double *Lx = ARENA_ARRAY(a, double, m->nstates + 1);
    int *group = ARENA_ARRAY(a, int, m->nstates + 1);
    const Blame **Lwhy = ARENA_ARRAY(a, const Blame *, m->nstates + 1);
    bool *declared = ARENA_ARRAY(a, bool, m->nstates + 1);
    double *group_w = ARENA_ARRAY(a, double, p->nsegs + 2);
    const Blame **group_why = ARENA_ARRAY(a, const Blame *, p->nsegs + 2);
    bool *sliced = ARENA_ARRAY(a, bool, m->nin + 1);
    int ngroups = 1;
    group_w[0] = 1;
    for (int i = 0; i < m->nstates; i++)
        group[i] = -1;
    LipCtx *mc = c->model_lip, *lc = c->layer_lip;
    an_lip_reset(mc, -1, 1.0);
    an_lip_group(mc, 0, 1, NULL);
    Blame bl = {0};
    char story[2048] = "";
    size_t sn = 0;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind == SEG_CODE) {
            /* in program order, so every bound is cached before it is read */
            for (int i = 0; i < sg->ncode; i++) {
                const Val *x = p->vals[sg->code[i]];
                if (x->op == OP_STATE) {
                    int g = group[x->index];
                    an_lip_leaf(mc, x->id, Lx[x->index], g, x->index, Lwhy[x->index]);
                } else if (x->op == OP_STORE) {
                    Blame sb = {0};
                    Lx[x->index] = an_lip(mc, x->a, &sb);
                    Lwhy[x->index] = keep(a, &sb);
                    declared[x->index] = true;
                    group[x->index] = input_slice(p, x, sliced) ? 0 : -1;
                } else {
                    an_lip(mc, x->id, NULL);
                }
            }
            continue;
        }
        const Block *b = sg->blk;
        /* the joint state: each group once, plus the states in none */
        double ls2 = 0;
        const Blame *why = NULL;
        bool *counted = ARENA_ARRAY(a, bool, ngroups + 1);
        for (int k = 0; k < m->nstates; k++) {
            if (!declared[k])
                continue;
            double w = group[k] < 0 ? Lx[k] : counted[group[k]] ? 0 : group_w[group[k]];
            if (group[k] >= 0)
                counted[group[k]] = true;
            if (isinf(w) && !why)
                why = group[k] < 0 ? Lwhy[k] : group_why[group[k]];
            ls2 += w * w;
        }
        const char *r, *note, *fix;
        Span at;
        bool ne = an_nonexpansive(a, p, sg, &r, &at, &note, &fix);
        c->block_nonexpansive[s] = ne;
        Blame lb = {0};
        double beta = ne ? 1 : an_layer_lipschitz(lc, p, s, &lb);
        c->block_step_lip[s] = beta;
        if (isinf(beta) && !why)
            why = keep(a, &lb);
        double grow = pow(beta, b->layers);
        int g = ngroups++;
        group_w[g] = grow * sqrt(ls2);
        group_why[g] = why;
        an_lip_group(mc, g, group_w[g], why);
        for (int k = 0; k < sg->nvars; k++) {
            Lx[sg->vars[k]] = group_w[g];
            Lwhy[sg->vars[k]] = why;
            group[sg->vars[k]] = g;
        }
        if (sn < sizeof story)
            sn += (size_t)snprintf(story + sn, sizeof story - sn, "%s%d layers x %.6g%s", sn ? ", then " : "", b->layers,
                                   beta, ne ? " (non-expansive)" : "");
    }
    /* the logits: the argument of a final softmax */
    const Val *out = p->vals[p->out];
    double L = an_lip(mc, out->op == OP_SOFTMAX ? out->a : out->id, &bl);
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
