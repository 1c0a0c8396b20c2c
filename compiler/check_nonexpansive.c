/* check_nonexpansive.c - `require nonexpansive` (DESIGN §4), proved.
 *
 * A flow du/dt = -c M' sigma(M u + b) with sigma monotone and
 * 0 <= sigma' <= d is a gradient flow of the convex function
 * f(u) = c sum_i phi((M u + b)_i), phi' = sigma, whose gradient is
 * L-Lipschitz with L = c d |M|^2. By the Baillon-Haddad theorem grad f is
 * (1/L)-co-coercive, so the Euler step u - h grad f(u) is non-expansive for
 * h <= 2/L. An explicit Runge-Kutta scheme with SSP coefficient r > 0 is a
 * convex combination of Euler steps of size h/r, hence non-expansive for
 * h <= 2 r / L; r = 0 (classical rk4, kutta3) proves nothing. The
 * guarantee is about the flow: every layer of every block non-expansive, so
 * the blocks map the state 1-Lipschitz (the read-out's norm is the
 * lipschitz guarantee's business). */
#include <math.h>
#include <string.h>

#include "check.h"

/* The radius of absolute monotonicity (Kraaijevanger 1991): the largest r
 * with (I + r K)^{-1} 1 >= 0 and r K (I + r K)^{-1} >= 0 entrywise, where
 * K = [[A, 0], [b', 0]]. The set of such r is an interval [0, R]; bisection. */
static bool abs_monotone(const Scheme *sc, double r)
{
    int s = sc->stages, n = s + 1;
    double K[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1] = {{0}};
    for (int i = 0; i < s; i++)
        for (int j = 0; j < s; j++)
            K[i][j] = sc->a[i][j];
    for (int j = 0; j < s; j++)
        K[s][j] = sc->b[j];
    /* X = (I + r K)^{-1}: I + r K is unit lower triangular for explicit schemes */
    double X[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1] = {{0}};
    for (int col = 0; col < n; col++)
        for (int i = 0; i < n; i++) {
            double v = i == col ? 1 : 0;
            for (int k = 0; k < i; k++)
                v -= r * K[i][k] * X[k][col];
            X[i][col] = v;
        }
    const double tol = -1e-13 * (1 + r);
    for (int i = 0; i < n; i++) {
        double rowsum = 0;
        for (int j = 0; j < n; j++)
            rowsum += X[i][j];
        if (rowsum < tol)
            return false;
        for (int j = 0; j < n; j++) {
            double p = 0;
            for (int k = 0; k < n; k++)
                p += r * K[i][k] * X[k][j];
            if (p < tol)
                return false;
        }
    }
    return true;
}

double scheme_ssp(const Scheme *sc)
{
    if (sc->kind != SCHEME_RK)
        return 0;
    /* R > 0 iff K >= 0 and K^2 has no nonzero where K has a zero
     * (Kraaijevanger 1991, Thm. 4.2); tested exactly, not by a tolerance */
    int s = sc->stages;
    double K[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1] = {{0}};
    for (int i = 0; i < s; i++)
        for (int j = 0; j < s; j++)
            K[i][j] = sc->a[i][j];
    for (int j = 0; j < s; j++)
        K[s][j] = sc->b[j];
    for (int i = 0; i <= s; i++)
        for (int j = 0; j <= s; j++) {
            if (K[i][j] < 0)
                return 0;
            double k2 = 0;
            for (int k = 0; k <= s; k++)
                k2 += K[i][k] * K[k][j];
            if (k2 != 0 && K[i][j] == 0)
                return 0;
        }
    double lo = 0, hi = 1;
    while (abs_monotone(sc, hi) && hi < 1e6)
        hi *= 2;
    for (int i = 0; i < 60; i++) {
        double m = 0.5 * (lo + hi);
        if (abs_monotone(sc, m))
            lo = m;
        else
            hi = m;
    }
    return lo;
}

bool block_nonexpansive(Arena *a, const Block *b, const char **reason, Span *at, const char **note, const char **fix)
{
    *reason = NULL;
    *fix = NULL;
    *note = "in this flow";
    *at = b->span;
    if (b->kind != BLOCK_FLOW) {
        *reason = "a repeat block's layers are not proved non-expansive";
        return false;
    }
    FieldInfo fi;
    field_classify(b, &fi);
    *at = fi.span;
    if (fi.cls != FIELD_GRADIENT) {
        const char *is = fi.cls == FIELD_AFFINE        ? "sigma(M u + b)"
                         : fi.cls == FIELD_HAMILTONIAN ? "a Hamiltonian pair (volume-preserving, not contractive)"
                                                       : NULL;
        *reason = is ? arena_printf(a, "the field is %s, not a gradient flow -K' sigma(K u + b)", is)
                     : arena_printf(a, "the field is not a gradient flow -K' sigma(K u + b) (%s)", fi.why);
        *fix = "write the field as du/dt = -K' * relu(K * u + b) (or tanh, sigmoid, softplus)";
        return false;
    }
    double n = mat_norm(&fi.mat);
    if (isinf(n)) {
        *reason = "the field's matrix has no norm bound, so no step is non-expansive for every parameter value";
        if (fi.mat.unbounded) {
            *at = fi.mat.unbounded->span;
            *note = arena_printf(a, "'%s' is declared without a norm bound", fi.mat.unbounded->name);
            *fix = arena_printf(a, "bound it: `param %s : ... where norm(%s) <= c;`", fi.mat.unbounded->name, fi.mat.unbounded->name);
        }
        return false;
    }
    const Scheme *sc = b->scheme;
    double r = scheme_ssp(sc);
    double L = fi.scale * fi.act.dmax * n * n;
    double h = block_step(b);
    if (r <= 0) {
        *reason = arena_printf(a, "%s has SSP coefficient 0: it is not a convex combination of Euler steps (Kraaijevanger "
                                  "1991), so Euler's non-expansiveness does not carry over",
                               sc->name);
        *at = b->scheme_span;
        *note = "the scheme";
        *fix = "use euler or heun (SSP coefficient 1)";
        return false;
    }
    double hsafe = L > 0 ? 2 * r / L : INFINITY;
    if (h > hsafe) {
        *reason = arena_printf(a, "the step h = %.6g exceeds 2 r / (c d |K|^2) = 2 * %.6g / %.6g = %.6g", h, r, L, hsafe);
        *fix = arena_printf(a, "use at least %.0f layers (h <= %.6g), or a norm bound |K| <= %.6g", ceil((b->t1 - b->t0) / hsafe),
                            hsafe, sqrt(2 * r / (fi.scale * fi.act.dmax * h)));
        return false;
    }
    *reason = arena_printf(a, "%s step of the gradient flow: h = %.6g <= 2 r / (c d |K|^2) = %.6g (r = %.6g, |K| <= %.6g)",
                           sc->name, h, hsafe, r, n);
    return true;
}

void check_nonexpansive(Arena *a, Certificate *c)
{
    const StepProgram *p = c->p;
    Verdict *v = &c->v[REQ_NONEXPANSIVE];
    v->theorem = "Baillon-Haddad: the gradient of a convex function with L-Lipschitz gradient is 1/L-co-coercive, so "
                 "u - h grad f(u) is non-expansive for h <= 2/L; SSP schemes are convex combinations of such steps";
    v->reference = "Celledoni et al. 2021 (Sec. 3); Baillon & Haddad 1977; Gottlieb, Ketcheson & Shu 2011 (SSP methods)";
    const char *why = NULL;
    bool any = false;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        any = true;
        const char *reason, *note, *fix;
        Span at;
        bool ok = block_nonexpansive(a, sg->blk, &reason, &at, &note, &fix);
        if (!ok) {
            if (!why)
                why = reason;
            verdict_note(a, v, at, "%s", note);
            if (fix)
                verdict_note(a, v, NO_SPAN, "%s", fix);
        }
    }
    if (!p->nsegs || !any) {
        verdict_set(v, false, LEVEL_REFUSED, NAN, "the model has no flow or repeat block");
        return;
    }
    if (why)
        verdict_set(v, false, LEVEL_REFUSED, NAN, why);
    else
        verdict_set(v, true, LEVEL_PROVED, 1, "every layer is non-expansive, so the flow maps the state 1-Lipschitz");
}
