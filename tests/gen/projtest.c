/* projtest.c - M_project keeps every declared norm bound (DESIGN §3, issue
 * 5): for parameters blown far past their bounds, the true spectral norm
 * after M_project, computed here by a dense symmetric eigen-solver (cyclic
 * Jacobi on A'A, independent of the Gram bound the projection uses), is at
 * most the bound, and not far below it (the projection scales, it does not
 * crush). A Z(n) convolution kernel K[cout, cin, k] is bounded as the
 * operator it denotes (DESIGN §8): its dense (cout n) x (cin n) matrix,
 * built here from the formula; run `projtest N` for such models. Build with
 * the model's M.c and -DMODEL_FN=M_model. */
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

/* For the large matrices of convolution operators: the power iteration's
 * |A v| / |v| (a lower bound that converges to the norm), 600 steps of A'A. */
static double sigma_power(int r, int c, const double *A)
{
    double *v = malloc(sizeof *v * (size_t)c), *t = malloc(sizeof *t * (size_t)r), best = 0;
    for (int j = 0; j < c; j++)
        v[j] = 1 + 0.37 * urand();
    for (int it = 0; it < 600; it++) {
        double tv = 0, vv = 0;
        for (int i = 0; i < r; i++) {
            double s = 0;
            for (int j = 0; j < c; j++)
                s += A[(size_t)i * (size_t)c + (size_t)j] * v[j];
            t[i] = s;
            tv += s * s;
        }
        for (int j = 0; j < c; j++)
            vv += v[j] * v[j];
        best = fmax(best, sqrt(tv / vv));
        double nw = 0;
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (int i = 0; i < r; i++)
                s += A[(size_t)i * (size_t)c + (size_t)j] * t[i];
            v[j] = s;
            nw += s * s;
        }
        nw = sqrt(nw);
        if (nw == 0)
            break;
        for (int j = 0; j < c; j++)
            v[j] /= nw;
    }
    free(v), free(t);
    return best;
}

/* the dense matrix of X -> Y[o, i] = sum_{c,u} K[o,c,u] X[c, (i + u - r) mod n] */
static double *zconv_matrix(int cout, int cin, int k, int n, const double *K)
{
    int rows = cout * n, cols = cin * n, r = (k - 1) / 2;
    double *A = calloc((size_t)rows * (size_t)cols, sizeof *A);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < n; i++)
            for (int c = 0; c < cin; c++)
                for (int u = 0; u < k; u++)
                    A[(size_t)(o * n + i) * (size_t)cols + (size_t)(c * n + (((i + u - r) % n) + n) % n)] +=
                        K[(o * cin + c) * k + u];
    return A;
}

int main(int argc, char **argv)
{
    const spdl_model *m = MODEL_FN();
    int zn = argc > 1 ? atoi(argv[1]) : 0; /* the Z(n) sequence length, for convolution kernels */
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
                } else if (ps[i].rank == 3) { /* a Z(n) convolution kernel */
                    if (zn <= 0) {
                        printf("FAIL %s: %s is a convolution kernel: run projtest N with the sequence length\n", m->name,
                               ps[i].name);
                        return 1;
                    }
                    int co = (int)ps[i].shape[0], ci = (int)ps[i].shape[1], kk = (int)ps[i].shape[2];
                    r = co * zn, cols = ci * zn;
                    A = zconv_matrix(co, ci, kk, zn, th + ps[i].offset + k * per);
                    A0 = zconv_matrix(co, ci, kk, zn, before + ps[i].offset + k * per);
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
                if (ps[i].rank == 3 && k >= 2) { /* two layers of each convolution kernel: the operators are large */
                    free(A);
                    free(A0);
                    continue;
                }
                double s = ps[i].rank == 3 ? sigma_power(r, cols, A) : sigma_max(r, cols, A);
                double s0 = ps[i].rank == 3 ? sigma_power(r, cols, A0) : sigma_max(r, cols, A0);
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
        printf("%s: %d projected matrices or operators, largest norm/bound %.15f, smallest norm/bound of those above it %.6f\n", m->name,
               checked, worst_over, worst_under);
    free(th);
    return fail;
}
