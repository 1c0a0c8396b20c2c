/* projtest.c - M_project keeps every declared norm bound (DESIGN §3, issue
 * 5): for parameters blown far past their bounds, the true spectral norm
 * after M_project, computed here by a dense symmetric eigen-solver (cyclic
 * Jacobi on A'A, independent of the Gram bound the projection uses), is at
 * most the bound, and not far below it (the projection scales, it does not
 * crush). Build with the model's M.c and -DMODEL_FN=M_model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

static uint64_t rng = 77;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng >> 11) + 0.5) * 0x1.0p-53;
}

/* the largest singular value of the r x c matrix A: sqrt of the largest
 * eigenvalue of A'A by cyclic Jacobi rotations */
static double sigma_max(int r, int c, const double *A)
{
    double *B = calloc((size_t)c * c, sizeof *B);
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++)
            for (int k = 0; k < r; k++)
                B[i * c + j] += A[k * c + i] * A[k * c + j];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < c; p++)
            for (int q = p + 1; q < c; q++)
                off += B[p * c + q] * B[p * c + q];
        if (off < 1e-300)
            break;
        for (int p = 0; p < c; p++)
            for (int q = p + 1; q < c; q++) {
                double apq = B[p * c + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double theta = (B[q * c + q] - B[p * c + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (int k = 0; k < c; k++) { /* rotate rows and columns p, q */
                    double bkp = B[k * c + p], bkq = B[k * c + q];
                    B[k * c + p] = cs * bkp - sn * bkq;
                    B[k * c + q] = sn * bkp + cs * bkq;
                }
                for (int k = 0; k < c; k++) {
                    double bpk = B[p * c + k], bqk = B[q * c + k];
                    B[p * c + k] = cs * bpk - sn * bqk;
                    B[q * c + k] = sn * bpk + cs * bqk;
                }
            }
    }
    double mx = 0;
    for (int i = 0; i < c; i++)
        mx = fmax(mx, B[i * c + i]);
    free(B);
    return sqrt(mx);
}

int main(void)
{
    const spdl_model *m = MODEL_FN();
    size_t np;
    const spdl_param *ps = m->params(&np);
    double *th = calloc(m->nparam ? m->nparam : 1, sizeof *th);
    int checked = 0, fail = 0;
    double worst_over = 0, worst_under = 1;
    for (int trial = 0; trial < 6; trial++) {
        m->init(th, (uint64_t)trial);
        double scale = trial == 0 ? 1 : pow(10, 2 * urand()) * 2;
        for (size_t i = 0; i < m->nparam; i++)
            th[i] = th[i] * scale + 0.3 * (urand() - 0.5);
        double *before = malloc(sizeof(double) * (m->nparam ? m->nparam : 1));
        memcpy(before, th, sizeof(double) * m->nparam);
        m->project(th);
        for (size_t i = 0; i < np; i++) {
            double c = m->norm_bound[i];
            if (isnan(c))
                continue;
            size_t per = ps[i].size / ps[i].layers;
            for (size_t k = 0; k < ps[i].layers; k++) {
                int r, cols;
                double *A, *A0;
                if (ps[i].rank == 2) {
                    r = (int)ps[i].shape[0], cols = (int)ps[i].shape[1];
                    A = th + ps[i].offset + k * per;
                    A0 = before + ps[i].offset + k * per;
                } else { /* skew[n]: n(n-1)/2 numbers above the diagonal */
                    int n = (int)((1 + sqrt(1 + 8.0 * (double)per)) / 2 + 0.5);
                    r = cols = n;
                    A = calloc((size_t)n * n, sizeof *A);
                    A0 = calloc((size_t)n * n, sizeof *A0);
                    size_t q = 0;
                    for (int a = 0; a < n; a++)
                        for (int b = a + 1; b < n; b++, q++) {
                            A[a * n + b] = th[ps[i].offset + k * per + q], A[b * n + a] = -A[a * n + b];
                            A0[a * n + b] = before[ps[i].offset + k * per + q], A0[b * n + a] = -A0[a * n + b];
                        }
                }
                double s = sigma_max(r, cols, A), s0 = sigma_max(r, cols, A0);
                checked++;
                worst_over = fmax(worst_over, s / c);
                if (s0 > c)
                    worst_under = fmin(worst_under, s / c);
                if (s > c * (1 + 1e-12)) {
                    printf("FAIL %s: %s layer %zu has norm %.17g > bound %g after project\n", m->name, ps[i].name, k, s, c);
                    fail = 1;
                }
                if (s0 > c && s < 0.98 * c) {
                    printf("FAIL %s: %s layer %zu was crushed to %.6g (bound %g)\n", m->name, ps[i].name, k, s, c);
                    fail = 1;
                }
                if (ps[i].rank != 2) {
                    free(A);
                    free(A0);
                }
            }
        }
        free(before);
    }
    if (checked)
        printf("%s: %d projected matrices, largest norm/bound %.15f, smallest norm/bound of those above it %.6f\n", m->name,
               checked, worst_over, worst_under);
    free(th);
    return fail;
}
