/* gradcheck.c - checks a generated model's adjoint against finite differences.
 *
 * Build with the model's M.c and -DMODEL_FN=M_model; run as
 * `gradcheck BATCH GRAD_TOL DOT_TOL [PROBES]`. For random parameters (init, then
 * perturbed), inputs and labels it checks, in double:
 *   - M_loss_grad against a 4th-order central difference, every coordinate
 *     (400 random ones in models with more; only the first PROBES of them,
 *     for a sanitizer build, there for the memory every evaluation touches;
 *     steps from 1e-2 |theta_i| down until two agree). The relative
 *     error of coordinate i is |g_i - fd_i| / max(|g_i|, |fd_i|, 1e-4 max|g|):
 *     coordinates ten thousand times smaller than the largest are held to
 *     that absolute accuracy instead, since the difference quotient's own
 *     rounding error dominates them.
 *   - M_vjp by the dot-product test <dy, J v> = <J' dy, v> for a random
 *     direction v in (x, theta), J v from a 6th-order central difference.
 * Prints the worst errors and exits 1 if a bound is exceeded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

static uint64_t rng = 12345;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng >> 11) + 0.5) * 0x1.0p-53;
}

static double loss_at(const spdl_model *m, const double *th, size_t B, const double *x, const double *t, void *w)
{
    return m->loss_grad(th, B, x, t, NULL, w);
}

int main(int argc, char **argv)
{
    const spdl_model *m = MODEL_FN();
    size_t B = argc > 1 ? (size_t)atoi(argv[1]) : 5;
    double tol = argc > 2 ? atof(argv[2]) : 1e-6;
    double dot_tol = argc > 3 ? atof(argv[3]) : 1e-10;
    size_t probes = argc > 4 ? (size_t)atoi(argv[4]) : 400;
    size_t P = m->nparam, NI = m->nin, NO = m->nout;
    double *th = calloc(P, sizeof *th), *g = calloc(P, sizeof *g), *tp = calloc(P, sizeof *tp);
    double *x = calloc(B * NI, sizeof *x), *t = calloc(B * (m->ntarget ? m->ntarget : 1), sizeof *t);
    void *w = malloc(m->work_size(B));
    m->init(th, 7);
    for (size_t i = 0; i < P; i++)
        th[i] += 0.1 * (urand() - 0.5);
    m->project(th);
    for (size_t i = 0; i < B * NI; i++)
        x[i] = 2 * urand() - 1;
    for (size_t i = 0; i < B * m->ntarget; i++)
        t[i] = m->nclass ? (double)(int)(urand() * m->nclass) : urand();
    double L = m->loss_grad(th, B, x, t, g, w);
    if (!isfinite(L)) {
        printf("FAIL %s: loss is %g\n", m->name, L);
        return 1;
    }
    double gmax = 0;
    for (size_t i = 0; i < P; i++)
        gmax = fmax(gmax, fabs(g[i]));
    double worst = 0;
    size_t worst_i = 0;
    /* every coordinate of small models; 400 spread over large ones; only the
     * first `probes` of them checked, the random stream drawn as for 400 so
     * that the vjp test below sees the same direction whatever `probes` is */
    size_t nprobe = P < 400 ? P : 400;
    for (size_t probe = 0; probe < nprobe; probe++) {
        size_t i = P < 400 ? probe : (size_t)(urand() * (double)P);
        if (probe >= probes)
            continue;
        /* 4th-order central differences from a large step, where rounding
         * is negligible; the step shrinks while successive estimates
         * disagree, which is what truncation error or a relu kink within
         * reach does */
        double fd = NAN, prev = NAN, best_gap = INFINITY;
        for (double h = 1e-2 * fmax(1, fabs(th[i])); h > 1e-7 * fmax(1, fabs(th[i])); h /= 4) {
            memcpy(tp, th, P * sizeof *tp);
            double f[4];
            const double off[4] = {-2, -1, 1, 2};
            for (int k = 0; k < 4; k++) {
                tp[i] = th[i] + off[k] * h;
                f[k] = loss_at(m, tp, B, x, t, w);
            }
            double d = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h);
            double gap = fabs(d - prev);
            if (gap < best_gap) {
                best_gap = gap;
                fd = d;
            }
            if (gap <= 1e-7 * fmax(fabs(d), 1e-4 * gmax))
                break;
            prev = d;
        }
        double err = fabs(fd - g[i]) / fmax(fmax(fabs(fd), fabs(g[i])), fmax(1e-4 * gmax, 1e-300));
        if (err > worst) {
            worst = err;
            worst_i = i;
        }
    }
    size_t np;
    const spdl_param *pt = m->params(&np);
    const char *pname = "?";
    for (size_t k = 0; k < np; k++)
        if (worst_i >= pt[k].offset && worst_i < pt[k].offset + pt[k].size)
            pname = pt[k].name;
    /* dot-product test for the vjp: <dy, J v> = <J' dy, v> */
    double *dy = calloc(B * NO, sizeof *dy), *dx = calloc(B * NI, sizeof *dx), *dth = calloc(P, sizeof *dth);
    double *vx = calloc(B * NI, sizeof *vx), *vt = calloc(P, sizeof *vt);
    double *yp = calloc(B * NO, sizeof *yp), *ym = calloc(B * NO, sizeof *ym), *xp = calloc(B * NI, sizeof *xp);
    for (size_t i = 0; i < B * NO; i++)
        dy[i] = urand() - 0.5;
    for (size_t i = 0; i < B * NI; i++)
        vx[i] = urand() - 0.5;
    for (size_t i = 0; i < P; i++)
        vt[i] = urand() - 0.5;
    int rc = m->vjp(th, B, x, dy, dx, dth, w);
    double rhs = 0;
    for (size_t i = 0; i < B * NI; i++)
        rhs += dx[i] * vx[i];
    for (size_t i = 0; i < P; i++)
        rhs += dth[i] * vt[i];
    /* J v by a 6th-order central difference of the forward map. Steps are
     * halved until two successive estimates agree to 1e-12, so a relu kink
     * within reach of the larger steps does not spoil the estimate. */
    double lhs = 0, prev = NAN, best_gap = INFINITY;
    for (double h = 2e-3; h > 1e-6; h /= 2) {
        double jv_terms[6] = {0};
        const double off2[6] = {-3, -2, -1, 1, 2, 3};
        for (int k = 0; k < 6; k++) {
            for (size_t i = 0; i < B * NI; i++)
                xp[i] = x[i] + off2[k] * h * vx[i];
            for (size_t i = 0; i < P; i++)
                tp[i] = th[i] + off2[k] * h * vt[i];
            m->forward(tp, B, xp, yp, w);
            double s = 0;
            for (size_t i = 0; i < B * NO; i++)
                s += dy[i] * yp[i];
            jv_terms[k] = s;
        }
        double d = (-jv_terms[0] + 9 * jv_terms[1] - 45 * jv_terms[2] + 45 * jv_terms[3] - 9 * jv_terms[4] + jv_terms[5]) /
                   (60 * h);
        double gap = fabs(d - prev);
        if (gap < best_gap) {
            best_gap = gap;
            lhs = d;
        }
        if (getenv("GC_DEBUG"))
            fprintf(stderr, "h=%g d=%.17g gap=%g\n", h, d, gap);
        if (gap <= 1e-12 * fabs(d))
            break;
        prev = d;
    }
    double dot_err = fabs(lhs - rhs) / fmax(fabs(lhs), 1e-12);
    (void)ym;
    printf("%s: loss %.6g, worst gradient rel. error %.2e (theta[%zu] in %s), vjp dot test rel. error %.2e (rc %d)\n",
           m->name, L, worst, worst_i, pname, dot_err, rc);
    int fail = worst > tol || dot_err > dot_tol || rc != 0;
    free(th), free(g), free(tp), free(x), free(t), free(w);
    free(dy), free(dx), free(dth), free(vx), free(vt), free(yp), free(ym), free(xp);
    if (fail)
        printf("FAIL %s\n", m->name);
    return fail;
}
