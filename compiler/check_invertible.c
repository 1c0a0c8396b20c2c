/* check_invertible.c - `require invertible` (DESIGN §4), proved.
 *
 * Each update of each layer (step.h, in order) must be undone by a known
 * inverse, read off the step program (step_classify):
 *   shear v = v + f(others): v = v' - f(others), log-det 0 (the updates of
 *     verlet and symplectic_euler on fields that do not read their own
 *     variable are shears: volume preserving);
 *   affine coupling v = v * exp(s(others)) + t(others):
 *     v = (v' - t) * exp(-s), log-det sum(s);
 *   orth or lu map v = M v + t: v = M^{-1} (v' - t) (M^{-1} = Q' for orth,
 *     U^{-1} L^{-1} for lu), log-det 0 or sum of the lu diagonal's logs;
 *   contractive residual v = v + x(v) with Lip(x) <= q < 1: by Banach's
 *     theorem v is the unique fixed point of u -> v' - x(u), reached from
 *     u = v' with error <= q^n / (1 - q) |x(v')| after n iterations (the
 *     generated code checks the residual and reports SPDL_ENOCONV); the
 *     log-determinant comes from the layer Jacobian or Behrmann et al.'s
 *     series (logdet_way).
 * For a Runge-Kutta layer v' = v + h sum b_i K_i, x = h sum b_i K_i is
 * bounded through its stages as the step program computes them (analysis.c;
 * for one variable this is the tableau bound 1 + sum_m (hL)^(m+1) |b|'|A|^m 1
 * less 1); simultaneous updates of several variables are bounded jointly. The whole
 * flow is then invertible, and M_flow_inverse exists, when every block's
 * layers invert and the blocks read no sample value but their own states. */
#include <math.h>
#include <string.h>

#include "check.h"

static const State *update_state(const Model *m, const Update *u) { return m->states[u->state]; }

/* How M_logdet handles a block with residual steps (largest factor q, on a
 * state of size nres). Small blocks: the layer Jacobian's determinant, n
 * adjoint rows per layer. Wide ones with one update per layer: Behrmann et
 * al.'s series log det(I + J) = sum_k (-1)^(k+1) tr(J^k) / k, whose tail
 * after K terms is at most nres sum_{k>K} q^k / k <= nres q^(K+1) / ((K+1)(1-q))
 * since |tr(J^k)| <= nres |J|^k (Behrmann et al. 2019, Thm. 3). */
static void logdet_way(Certificate *c, int s, double q, int nres, bool *no_logdet)
{
    const Seg *sg = &c->p->segs[s];
    int n = 0;
    for (int k = 0; k < sg->nvars; k++)
        n += c->p->m->states[sg->vars[k]]->size;
    if (n <= LOGDET_JACOBIAN_MAX) {
        c->logdet_way[s] = LOGDET_JACOBIAN;
        return;
    }
    if (sg->nupd != 1) {
        *no_logdet = true;
        return;
    }
    int K = 1;
    double tail = nres * pow(q, 2) / (2 * (1 - q));
    while (K < LOGDET_MAX_TERMS && tail > 1e-10) {
        K++;
        tail = nres * pow(q, K + 1) / ((K + 1) * (1 - q));
    }
    c->logdet_way[s] = LOGDET_SERIES;
    c->series_terms[s] = K;
    c->logdet_truncation += sg->blk->layers * tail;
}

void check_invertible(Arena *a, Certificate *c)
{
    const StepProgram *p = c->p;
    const Model *m = p->m;
    Verdict *v = &c->v[REQ_INVERTIBLE];
    v->theorem = "each update is a shear, an affine coupling, an orth/lu map (explicit inverses), or a residual step "
                 "u + x(u) with Lip(x) < 1 (Banach fixed point)";
    v->reference = "Dinh et al. 2015/2017 (NICE, RealNVP); Behrmann et al. 2019 (i-ResNet); Haber & Ruthotto 2018; "
                   "Celledoni et al. 2021 (Sec. 4)";
    c->inverse = ARENA_ARRAY(a, UpdInverse *, p->nsegs + 1);
    LipCtx *lx = c->layer_lip;
    c->logdet_way = ARENA_ARRAY(a, LogdetWay, p->nsegs + 1);
    c->series_terms = ARENA_ARRAY(a, int, p->nsegs + 1);
    bool ok = true, fixed = false, any = false, no_logdet = false;
    int iters = 0;
    const char *why = NULL;
    bool stores_between = false;
    int first_block = -1, last_block = -1;
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK) {
            if (first_block < 0)
                first_block = s;
            last_block = s;
        }
    for (int s = first_block + 1; first_block >= 0 && s < last_block; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_CODE)
            continue;
        for (int i = 0; i < sg->ncode; i++) {
            const Val *x = p->vals[sg->code[i]];
            if (x->op == OP_STORE && !m->states[x->index]->hidden) {
                stores_between = true;
                verdict_note(a, v, x->span, "state '%s' is set between two blocks", m->states[x->index]->name);
            }
        }
    }
    if (stores_between) {
        ok = false;
        why = "a state is initialised between blocks, so the flow is not a composition of layer maps";
    }
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        any = true;
        c->inverse[s] = ARENA_ARRAY(a, UpdInverse, sg->nupd + 1);
        /* the layer may read its own states and parameters only */
        for (int i = 0; i < sg->ncode; i++) {
            const Val *x = p->vals[sg->code[i]];
            int ops[2] = {x->a, x->b};
            for (int j = 0; j < 2; j++) {
                if (ops[j] < 0)
                    continue;
                const Val *o = p->vals[ops[j]];
                if (o->vary == VARY_SAMPLE && !o->layer) {
                    if (ok)
                        why = "a block reads a sample value computed outside it, so its layers are not maps of the "
                              "state alone";
                    ok = false;
                    verdict_note(a, v, x->span, "this reads a value computed before the block");
                    j = 2;
                    i = sg->ncode;
                }
            }
        }
        double qmax = -1; /* the largest residual contraction factor in the layer, -1 for none */
        int nres = 0;      /* the residual's state size */
        for (int k = 0; k < sg->nupd; k++) {
            const Update *u = &sg->upd[k];
            UpdInverse *ui = &c->inverse[s][k];
            step_classify(p, sg, k, &ui->info);
            const State *st = update_state(m, u);
            switch (ui->info.kind) {
            case UPD_SHEAR:
            case UPD_AFFINE:
            case UPD_LINEAR:
                break;
            case UPD_RESIDUAL: {
                Blame bl = {0};
                double q = an_residual_q(lx, p, s, k, ui->info.x, &bl);
                ui->q = q;
                if (q < 1) {
                    fixed = true;
                    qmax = fmax(qmax, q);
                    nres = st->size;
                    ui->iters = (int)ceil(log(1e-14 * (1 - q)) / log(q > 1e-300 ? q : 1e-300));
                    if (ui->iters < 2)
                        ui->iters = 2;
                    if (ui->iters > iters)
                        iters = ui->iters;
                    break;
                }
                if (ok)
                    why = isinf(q) ? arena_printf(a, "the residual step of '%s' has no Lipschitz bound (%s)", st->name,
                                                  bl.param ? arena_printf(a, "'%s' %s", bl.param->name, bl.what)
                                                           : bl.what ? bl.what : "unbounded")
                                   : arena_printf(a, "the residual step %s = %s + x(%s) has Lip(x) <= %.6g, not < 1", st->name,
                                                  st->name, st->name, q);
                ok = false;
                verdict_note(a, v, u->span, "this update reads '%s', which it writes; it is a fixed point only if Lip(x) < 1",
                             st->name);
                if (bl.param)
                    verdict_note(a, v, bl.param->span, "'%s' %s", bl.param->name, bl.what);
                else if (!isinf(q))
                    verdict_note(a, v, NO_SPAN, "use more layers (a smaller h), tighter norm bounds, or a coupling "
                                                "v = v + f(others)");
                break;
            }
            case UPD_OTHER: {
                const Val *nv = p->vals[u->value];
                bool free_linear = nv->op == OP_MATMUL && nv->b == u->old;
                if (ok)
                    why = free_linear ? arena_printf(a, "'%s' is multiplied by a matrix that need not be invertible", st->name)
                                      : arena_printf(a, "the update of '%s' reads '%s' in a way that has no known inverse",
                                                     st->name, st->name);
                ok = false;
                if (free_linear) {
                    verdict_note(a, v, nv->span, "a free R[n,n] matrix may be singular");
                    verdict_note(a, v, NO_SPAN, "use an orth[n] or lu[n] parameter, which is invertible by construction");
                } else {
                    verdict_note(a, v, u->span, "this update reads '%s', which it writes", st->name);
                    verdict_note(a, v, NO_SPAN, "write it as a shear %s = %s + f(others) or an affine coupling "
                                                "%s = %s * exp(s(others)) + t(others)", st->name, st->name, st->name, st->name);
                }
                break;
            }
            }
        }
        if (qmax >= 0)
            logdet_way(c, s, qmax, nres, &no_logdet);
    }
    if (!any) {
        verdict_set(v, false, LEVEL_REFUSED, NAN, "the model has no flow or repeat block to invert");
        return;
    }
    if (!ok) {
        verdict_set(v, false, LEVEL_REFUSED, NAN, why);
        return;
    }
    c->has_inverse = true;
    c->has_logdet = !no_logdet;
    bool series = false, jacobian = false;
    int terms = 0;
    for (int s = 0; s < p->nsegs; s++) {
        series |= c->logdet_way[s] == LOGDET_SERIES;
        jacobian |= c->logdet_way[s] == LOGDET_JACOBIAN;
        if (c->series_terms[s] > terms)
            terms = c->series_terms[s];
    }
    v->inverse_kind = fixed ? "fixed-point" : "explicit";
    v->logdet_kind = no_logdet ? "none" : series ? "estimated" : "exact";
    v->logdet_terms = terms;
    v->logdet_truncation = c->logdet_truncation;
    v->fixed_point_iters = iters;
    const char *ld = no_logdet ? "no log-determinant: a wide block (n > 64) whose layer makes more than one update"
                     : series ? arena_printf(a, "log-determinant estimated by the power series of Behrmann et al. (%d "
                                                "terms, truncation error <= %.3g over the network; Hutchinson traces "
                                                "with %d Rademacher probes)",
                                             terms, c->logdet_truncation, LOGDET_PROBES)
                     : jacobian ? "exact log-determinant (residual layers: log|det| of the layer Jacobian, row by row "
                                  "from the adjoint)"
                                : "exact log-determinant";
    verdict_set(v, true, LEVEL_PROVED, NAN,
                fixed ? arena_printf(a, "every update inverts; residual steps by fixed-point iteration (%d iterations, "
                                        "residual checked); %s",
                                     iters, ld)
                      : arena_printf(a, "every update is a shear, an affine coupling or an orth/lu map: explicit "
                                        "inverse, %s",
                                     ld));
}
