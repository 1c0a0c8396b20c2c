/* check_stable.c - `require stable` (DESIGN §4), at the linearized level.
 *
 * The frozen Jacobian of a recognised field has its spectrum in a known set
 * (GUARANTEES.md derives each):
 *   sigma(M u + b), M = S + alpha I (S skew, |S| <= s, alpha <= 0):
 *       J = D M with 0 <= D = diag(sigma') <= d; the nonzero eigenvalues of
 *       D M are those of D^1/2 M D^1/2, so lambda = alpha t + i w with
 *       t = x'Dx in [0, d] and |w| <= s t: a wedge around the negative real
 *       axis, cut off at Re = alpha d (the imaginary segment |w| <= s d when
 *       alpha = 0);
 *   -c M' sigma(M u + b): J = -c M' D M, symmetric, in [-c d |M|^2, 0];
 *   the Hamiltonian pair: J = [[0, P], [Q, 0]] with P Q similar to
 *       -|c1 c2| D1^1/2 M D2 M' D1^1/2, so lambda is imaginary with
 *       |lambda| <= sqrt(|c1 c2| d1 d2) |M|.
 * An explicit Runge-Kutta step maps the mode exp(lambda t) to R(h lambda)
 * with R(z) = 1 + z b'(I - zA)^{-1} 1, a polynomial; the step is stable when
 * |R| <= 1 on h times the set. The set is star-shaped, so by the maximum
 * principle it suffices to check its boundary: the rays t (alpha +- i s),
 * 0 <= t <= d, and the segment at Re = alpha d. On each piece |R|^2 - 1 is a
 * real polynomial in one parameter, checked with sound upper bounds on
 * subintervals (each term is monotone on [u, v] with u >= 0), after removing
 * the powers of the parameter that vanish at the origin. verlet and
 * symplectic_euler are stable on the imaginary segment iff h rho < 2. */
#include <math.h>
#include <string.h>

#include "check.h"

enum { PMAX = 2 * SCHEME_MAX_STAGES + 2 };

typedef struct Poly {
    int n;                  /* coefficients 0..n-1 */
    double c[PMAX], err[PMAX];
} Poly;

/* |R(tau w)|^2 - 1 as a polynomial in tau, w = wr + i wi; r[0..deg]. */
static Poly ray_poly(const double *r, int deg, double wr, double wi)
{
    double cr[SCHEME_MAX_STAGES + 1], ci[SCHEME_MAX_STAGES + 1];
    double pr = 1, pi = 0; /* w^k */
    for (int k = 0; k <= deg; k++) {
        cr[k] = r[k] * pr;
        ci[k] = r[k] * pi;
        double nr = pr * wr - pi * wi, ni = pr * wi + pi * wr;
        pr = nr;
        pi = ni;
    }
    Poly p = {2 * deg + 1, {0}, {0}};
    for (int a = 0; a <= deg; a++)
        for (int b = 0; b <= deg; b++) {
            p.c[a + b] += cr[a] * cr[b] + ci[a] * ci[b];
            p.err[a + b] += (fabs(cr[a]) * fabs(cr[b]) + fabs(ci[a]) * fabs(ci[b])) * 1e-13;
        }
    p.c[0] -= 1;
    return p;
}

/* |R(a + i y)|^2 - 1 as a polynomial in y. */
static Poly segment_poly(const double *r, int deg, double a)
{
    /* R(a + i y) = sum_j d_j y^j, d_j = sum_k r_k C(k, j) a^(k-j) i^j */
    double dr[SCHEME_MAX_STAGES + 1] = {0}, di[SCHEME_MAX_STAGES + 1] = {0};
    for (int k = 0; k <= deg; k++) {
        double binom = 1;
        for (int j = 0; j <= k; j++) {
            double term = r[k] * binom * pow(a, k - j);
            switch (j % 4) {
            case 0: dr[j] += term; break;
            case 1: di[j] += term; break;
            case 2: dr[j] -= term; break;
            case 3: di[j] -= term; break;
            }
            binom = binom * (k - j) / (j + 1);
        }
    }
    Poly p = {2 * deg + 1, {0}, {0}};
    for (int x = 0; x <= deg; x++)
        for (int y = 0; y <= deg; y++) {
            p.c[x + y] += dr[x] * dr[y] + di[x] * di[y];
            p.err[x + y] += (fabs(dr[x] * dr[y]) + fabs(di[x] * di[y])) * 1e-12;
        }
    p.c[0] -= 1;
    p.err[0] += 1e-15;
    return p;
}

/* A sound upper bound of p on [u, v], 0 <= u <= v. */
static double upper(const Poly *p, double u, double v)
{
    double s = 0, e = 0, pu = 1, pv = 1;
    for (int j = 0; j < p->n; j++) {
        s += p->c[j] > 0 ? p->c[j] * pv : p->c[j] * pu;
        e += (fabs(p->c[j]) * 1e-13 + p->err[j]) * pv;
        pu *= u;
        pv *= v;
    }
    return s + e;
}

static double eval(const Poly *p, double x)
{
    double s = 0;
    for (int j = p->n - 1; j >= 0; j--)
        s = s * x + p->c[j];
    return s;
}

/* p < 0 on [u, v]: bisect where the bound is inconclusive. */
static bool negative_on(const Poly *p, double u, double v, int depth)
{
    if (upper(p, u, v) < 0)
        return true;
    if (depth == 0 || eval(p, 0.5 * (u + v)) >= 0)
        return false;
    double m = 0.5 * (u + v);
    return negative_on(p, u, m, depth - 1) && negative_on(p, m, v, depth - 1);
}

/* Divides out tau^m, the powers that vanish at the origin: those the
 * theory makes zero (zero_to: the order conditions hold exactly up to
 * order p, so coefficients up to p vanish on the imaginary axis), and
 * returns false if the first remaining one is not clearly negative. */
static bool factor_origin(Poly *p, int zero_to, bool *grows)
{
    int m = 1; /* p(0) = |R(0)|^2 - 1 = 0 */
    while (m < p->n && (m <= zero_to || fabs(p->c[m]) <= p->err[m] * 4)) {
        if (m > zero_to && fabs(p->c[m]) > 0 && fabs(p->c[m]) <= p->err[m] * 4)
            return *grows = false, false; /* sign unknown: refuse */
        m++;
    }
    if (m >= p->n)
        return *grows = false, false;
    *grows = p->c[m] > 0;
    if (p->c[m] > 0)
        return false;
    for (int j = m; j < p->n; j++) {
        p->c[j - m] = p->c[j];
        p->err[j - m] = p->err[j];
    }
    p->n -= m;
    return true;
}

typedef struct Spectrum {
    double alpha;   /* Re of the wedge's direction (<= 0) */
    double s;       /* Im of the direction (>= 0) */
    double d;       /* the parameter's range: t in [0, d] */
    bool segment;   /* also check the closing segment at Re = alpha d */
} Spectrum;

/* Whether |R(h z)| <= 1 on the set, for the stability polynomial r. */
static bool rk_stable(const Scheme *sc, const Spectrum *sp, double h, bool *grows)
{
    *grows = false;
    const double *r = sc->poly;
    int deg = sc->stages;
    double wr = sp->alpha, wi = sp->s;
    Poly p = ray_poly(r, deg, wr, wi);
    int zero_to = wr == 0 ? sc->order : 0;
    if (!factor_origin(&p, zero_to, grows))
        return false;
    double T = h * sp->d;
    if (T > 0 && !negative_on(&p, 0, T, 48))
        return false;
    if (sp->segment && sp->alpha < 0) {
        Poly q = segment_poly(r, deg, h * sp->alpha * sp->d);
        if (!negative_on(&q, 0, h * sp->s * sp->d, 48))
            return false;
    }
    return true;
}

/* The largest step with a stable scheme (bisection: h times the set grows with h). */
static double largest_rk_step(const Scheme *sc, const Spectrum *sp)
{
    bool grows;
    double lo = 0, hi = 1;
    while (rk_stable(sc, sp, hi, &grows) && hi < 1e12)
        hi *= 2;
    if (hi >= 1e12)
        return INFINITY;
    for (int i = 0; i < 60; i++) {
        double m = 0.5 * (lo + hi);
        if (rk_stable(sc, sp, m, &grows))
            lo = m;
        else
            hi = m;
    }
    return lo;
}

static const char *fmt_g(Arena *a, double x) { return arena_printf(a, "%.6g", x); }

/* Why R grows on the imaginary axis: |R(i y)|^2 = 1 + c y^m + ..., its
 * first term beyond 1 (c > 0 here). */
static const char *imaginary_growth(Arena *a, const Scheme *sc)
{
    Poly p = ray_poly(sc->poly, sc->stages, 0, 1);
    for (int m = 1; m < p.n; m++)
        if (fabs(p.c[m]) > p.err[m] * 4)
            return arena_printf(a, "|R(i y)|^2 = 1 + %sy^%d%s", fabs(p.c[m] - 1) < 1e-12 ? "" : arena_printf(a, "%s ", fmt_g(a, p.c[m])),
                                m, m + 1 < p.n ? " + ..." : "");
    return "|R(i y)|^2 > 1";
}

typedef struct BlockVerdict {
    bool holds;
    double hmax;            /* the largest stable step */
    const char *reason;
    Span at;                /* where to point */
    const char *note, *fix;
} BlockVerdict;

static void missing_bound(Arena *a, BlockVerdict *bv, const MatInfo *mi, const char *what)
{
    bv->holds = false;
    bv->hmax = 0;
    bv->reason = arena_printf(a, "%s has no norm bound, so its spectral radius is unbounded and no step is stable for every parameter value",
                              what);
    bv->at = mi->unbounded_span;
    if (mi->unbounded) {
        bv->note = arena_printf(a, "'%s' has no norm bound", mi->unbounded->name);
        bv->fix = arena_printf(a, "bound it: `param %s : ... where norm(%s) <= c;`", mi->unbounded->name, mi->unbounded->name);
        bv->at = mi->unbounded->span;
    }
}

static BlockVerdict stable_block(Arena *a, const StepProgram *p, const Seg *sg)
{
    const Block *b = sg->blk;
    BlockVerdict bv = {0};
    FieldInfo fi;
    an_field(p, sg, &fi);
    const Scheme *sc = b->scheme;
    double h = block_step(b);
    const char *hs = b->learned ? arena_printf(a, "steps up to %s", fmt_g(a, h)) : arena_printf(a, "h = %s", fmt_g(a, h));
    bv.at = fi.span;
    Spectrum sp = {0};
    const char *set = NULL;
    switch (fi.cls) {
    case FIELD_GENERIC:
        bv.reason = arena_printf(a, "no structure that gives a spectral bound: %s", fi.why);
        bv.fix = "write the field as tanh((A - A' - gamma*I) * u + b), -K' * sigma(K * u + b), or a Hamiltonian pair";
        return bv;
    case FIELD_AFFINE: {
        const MatInfo *mi = &fi.mat;
        if (isinf(mat_norm(mi))) {
            missing_bound(a, &bv, mi, "the field's matrix");
            return bv;
        }
        if (mi->gen > 0) {
            bv.reason = "the field's matrix M is not skew-symmetric (plus a multiple of I), so D M may have eigenvalues "
                        "with positive real part";
            bv.fix = "use A - A' (antisymmetric) or a skew[n] parameter, with damping - gamma*I";
            return bv;
        }
        if (mi->alpha > 0) {
            bv.reason = arena_printf(a, "the field's matrix has +%s I: its eigenvalues have positive real part", fmt_g(a, mi->alpha));
            bv.fix = "damping is - gamma*I with gamma > 0";
            return bv;
        }
        sp = (Spectrum){mi->alpha, mi->skew, fi.act.dmax, mi->alpha < 0};
        set = mi->alpha < 0 ? arena_printf(a, "in the wedge lambda = t (%s +- %s i), 0 <= t <= %s", fmt_g(a, mi->alpha),
                                           fmt_g(a, mi->skew), fmt_g(a, fi.act.dmax))
                            : arena_printf(a, "on the imaginary segment |lambda| <= rho = %s", fmt_g(a, mi->skew * fi.act.dmax));
        break;
    }
    case FIELD_GRADIENT: {
        double n = mat_norm(&fi.mat);
        if (isinf(n)) {
            missing_bound(a, &bv, &fi.mat, "the field's matrix");
            return bv;
        }
        double rho = fi.scale * fi.act.dmax * n * n;
        sp = (Spectrum){-1, 0, rho, false};
        set = arena_printf(a, "in the real segment [-rho, 0], rho = %s", fmt_g(a, rho));
        break;
    }
    case FIELD_HAMILTONIAN: {
        double n = mat_norm(&fi.mat);
        if (isinf(n)) {
            missing_bound(a, &bv, &fi.mat, "K");
            return bv;
        }
        double rho = sqrt(fi.scale * fi.act.dmax * fi.act2.dmax) * n;
        sp = (Spectrum){0, rho, 1, false};
        set = arena_printf(a, "on the imaginary segment |lambda| <= rho = %s (Hamiltonian pair)", fmt_g(a, rho));
        break;
    }
    }
    if (sc->kind != SCHEME_RK) {
        bool imaginary = sp.alpha == 0;
        if (!imaginary || fi.cls != FIELD_HAMILTONIAN) {
            bv.reason = arena_printf(a, "%s is proved stable for Hamiltonian pairs dy/dt = f(K z), dz/dt = -g(K' y) only", sc->name);
            bv.fix = "use an explicit Runge-Kutta scheme such as rk4, or the Hamiltonian form";
            return bv;
        }
        double rho = sp.s * sp.d;
        bv.hmax = rho > 0 ? 2 / rho : INFINITY;
        bv.holds = h * rho < 2;
        bv.reason = arena_printf(a, "%s is %s: the spectrum lies %s, and h rho = %s %s 2 (stable for h < %s); %s",
                                 sc->name, bv.holds ? "stable" : "unstable at this step", set, fmt_g(a, h * rho),
                                 bv.holds ? "<" : ">=", fmt_g(a, bv.hmax), hs);
        if (!bv.holds)
            bv.fix = arena_printf(a, "use more layers (h < %s) or a smaller norm bound", fmt_g(a, bv.hmax));
        return bv;
    }
    bool grows;
    bv.holds = rk_stable(sc, &sp, h, &grows);
    if (grows && sp.alpha == 0) {
        bv.hmax = 0;
        bv.reason = arena_printf(a, "%s is unstable on an undamped oscillatory field: its spectrum lies %s, where "
                                    "|R(i h w)| > 1 for every h > 0 (%s)",
                                 sc->name, set, imaginary_growth(a, sc));
        bv.fix = "damp the field (A - A' - gamma*I), use kutta3 or rk4 with a small enough step, or verlet on a Hamiltonian pair";
        bv.at = fi.span;
        return bv;
    }
    bv.hmax = largest_rk_step(sc, &sp);
    bv.reason = arena_printf(a, "%s is %s: the spectrum lies %s, where |R(h lambda)| <= 1 for h <= %s; %s", sc->name,
                             bv.holds ? "stable" : "unstable at this step", set, fmt_g(a, bv.hmax), hs);
    if (!bv.holds)
        bv.fix = arena_printf(a, "take h <= %s (more layers) or a smaller norm bound", fmt_g(a, bv.hmax));
    return bv;
}

void check_stable(Arena *a, Certificate *c)
{
    const StepProgram *p = c->p;
    Verdict *v = &c->v[REQ_STABLE];
    v->theorem = "frozen-Jacobian spectrum of the structured field, and |R(h lambda)| <= 1 for the scheme's stability "
                 "function on its boundary";
    v->reference = "Haber & Ruthotto 2018 (Sec. 3); Celledoni et al. 2021 (Sec. 2-3); Hairer & Wanner, Solving ODEs II, IV.2";
    bool all = true, any = false;
    double hmin = INFINITY;
    const char *reason = NULL;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        any = true;
        const Block *b = sg->blk;
        if (b->kind == BLOCK_REPEAT) {
            all = false;
            reason = "a repeat block is not a discretised flow; stability is proved for flow blocks";
            verdict_note(a, v, b->span, "this repeat block");
            verdict_note(a, v, NO_SPAN, "write it as `flow over [0, T] in N layers by SCHEME { du/dt = ...; }` with a "
                                        "structured field, or drop `require stable`");
            continue;
        }
        BlockVerdict bv = stable_block(a, p, sg);
        if (bv.hmax < hmin)
            hmin = bv.hmax;
        if (!bv.holds) {
            if (all || !reason)
                reason = bv.reason;
            all = false;
            verdict_note(a, v, bv.at, "%s", bv.note ? bv.note : "in this flow");
            if (bv.fix)
                verdict_note(a, v, NO_SPAN, "%s", bv.fix);
        } else if (!reason || all) {
            reason = bv.reason;
        }
    }
    if (!any) {
        verdict_set(v, false, LEVEL_REFUSED, NAN, "the model has no flow block to be stable");
        return;
    }
    verdict_set(v, all, all ? LEVEL_LINEARIZED : LEVEL_REFUSED, hmin, reason);
}
