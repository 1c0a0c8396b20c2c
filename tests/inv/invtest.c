/* invtest.c - a model proved invertible really inverts (DESIGN §4, §6):
 *   round trip: M_flow_inverse(M_flow(x)) equals the state the flow starts
 *   from (row 0 of M_trajectory), to TOL relative;
 *   log-determinant: for density models (input = initial state, output =
 *   final state), M_logdet equals log|det J| of the Jacobian built column by
 *   column from M_vjp, to 1e-8; or, for an estimated log-determinant
 *   (`estimated`), an unbiased error: its mean over the batch within 4
 *   standard errors of 0 (plus LDTOL); either way the same for a sample
 *   alone as in its batch.
 * Build with the model's M.c and -DMODEL_FN=M_model; run
 * `invtest TOL [LDTOL [estimated]]` (LDTOL defaults to 1e-8). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

static uint64_t rng = 99;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng >> 11) + 0.5) * 0x1.0p-53;
}

/* log|det A| by Gaussian elimination with partial pivoting */
static double logabsdet(int n, double *A)
{
    double s = 0;
    for (int k = 0; k < n; k++) {
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[p * n + k]))
                p = i;
        if (A[p * n + k] == 0)
            return -INFINITY;
        if (p != k)
            for (int j = 0; j < n; j++) {
                double t = A[k * n + j];
                A[k * n + j] = A[p * n + j];
                A[p * n + j] = t;
            }
        s += log(fabs(A[k * n + k]));
        for (int i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            for (int j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
        }
    }
    return s;
}

int main(int argc, char **argv)
{
    const spdl_model *m = MODEL_FN();
    double tol = argc > 1 ? atof(argv[1]) : 1e-10;
    double ldtol = argc > 2 ? atof(argv[2]) : 1e-8;
    int stat = argc > 3 && !strcmp(argv[3], "estimated");
    if (!m->flow || !m->flow_inverse) {
        printf("FAIL %s: no inverse was generated\n", m->name);
        return 1;
    }
    size_t B = 70, P = m->nparam, S = m->nstate, rows = m->traj_rows;
    double *th = calloc(P, sizeof *th), *x = calloc(B * m->nin, sizeof *x), *s = calloc(B * S, sizeof *s);
    double *s0 = calloc(B * S, sizeof *s0), *traj = calloc(B * rows * S, sizeof *traj);
    void *w = malloc(m->work_size(B));
    m->init(th, 5);
    for (size_t i = 0; i < P; i++)
        th[i] += 0.2 * (urand() - 0.5);
    m->project(th);
    for (size_t i = 0; i < B * m->nin; i++)
        x[i] = 2 * urand() - 1;
    int fail = 0;
    int rc = m->flow(th, B, x, s, w);
    int rc2 = m->flow_inverse(th, B, s, s0, w);
    int rc3 = m->trajectory(th, B, x, traj, w);
    double err = 0, scale = 0;
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < S; i++) {
            double want = traj[(b * rows) * S + i];
            err = fmax(err, fabs(s0[b * S + i] - want));
            scale = fmax(scale, fabs(want));
        }
    double rel = err / fmax(scale, 1);
    printf("%s: round trip max error %.3g (relative %.3g), rc %d %d %d\n", m->name, err, rel, rc, rc2, rc3);
    if (rc || rc2 || rc3 || !(rel <= tol)) {
        printf("FAIL %s: round trip error %.3g exceeds %.3g\n", m->name, rel, tol);
        fail = 1;
    }
    if (m->logdet && m->nin == m->nout && m->nout == S) {
        size_t n = m->nin;
        double *ld = calloc(B, sizeof *ld), *ld2 = calloc(B, sizeof *ld2), *J = calloc(B * n * n, sizeof *J),
               *dy = calloc(B * n, sizeof *dy), *dx = calloc(B * n, sizeof *dx), *err = calloc(B, sizeof *err);
        void *w1 = malloc(m->work_size(1));
        m->logdet(th, B, x, ld, w);
        for (size_t r = 0; r < n; r++) { /* row r of every sample's J = J' e_r */
            memset(dy, 0, B * n * sizeof *dy);
            for (size_t b = 0; b < B; b++)
                dy[b * n + r] = 1;
            m->vjp(th, B, x, dy, dx, NULL, w);
            for (size_t b = 0; b < B; b++)
                memcpy(J + (b * n + r) * n, dx + b * n, n * sizeof *dx);
        }
        double worst = 0, mean = 0, var = 0;
        for (size_t b = 0; b < B; b++) {
            double want = logabsdet((int)n, J + b * n * n);
            err[b] = ld[b] - want;
            worst = fmax(worst, fabs(err[b]) / fmax(1, fabs(want)));
            mean += err[b] / (double)B;
        }
        for (size_t b = 0; b < B; b++)
            var += (err[b] - mean) * (err[b] - mean) / (double)(B - 1);
        /* the same sample alone, in another lane: the same number */
        double moved = 0;
        m->logdet(th, 1, x + 37 * n, ld2, w1);
        moved = fabs(ld2[0] - ld[37]);
        if (!stat) {
            printf("%s: log-determinant vs the Jacobian from the vjp: worst relative error %.3g\n", m->name, worst);
            if (!(worst <= ldtol)) {
                printf("FAIL %s: log-determinant error %.3g\n", m->name, worst);
                fail = 1;
            }
        } else {
            /* an unbiased estimate (up to the truncation, far below ldtol):
             * the mean error over B samples is within 4 standard errors of 0 */
            double se = sqrt(var / (double)B);
            printf("%s: estimated log-determinant: error mean %.3g, standard deviation %.3g, worst relative %.3g\n",
                   m->name, mean, sqrt(var), worst);
            if (!(fabs(mean) <= 4 * se + ldtol) || !(sqrt(var) > 0)) {
                printf("FAIL %s: the estimate is biased (mean error %.3g, standard error %.3g)\n", m->name, mean, se);
                fail = 1;
            }
        }
        if (moved != 0) {
            printf("FAIL %s: the log-determinant of a sample depends on its place in the batch (%.3g)\n", m->name, moved);
            fail = 1;
        }
        free(ld), free(ld2), free(J), free(dy), free(dx), free(err), free(w1);
    }
    free(th), free(x), free(s), free(s0), free(traj), free(w);
    return fail;
}
