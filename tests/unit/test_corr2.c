/* test_corr2.c - the C4/D4 grid correlations of runtime/spdl_kernels.h
 * (spdl_corr2, its transpose spdl_corr2_t, the kernel gradient
 * spdl_corr2_dw) against DESIGN §8's corr written out here, per lane, for
 * grids from 1 x 1 to 7 x 7 and kernels larger than the grid, acc 0 and 1,
 * and with enough maps that a row of the output is taken in blocks.
 * The Makefile also compiles this file with -march=x86-64-v3 where the CPU
 * has AVX2 and FMA, so both product kernels behind them are tested. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef double real;
#define SPDL_BT 8
#include "spdl_kernels.h"

static uint64_t corr_rng = 4242;
static double corr_rand(void)
{
    corr_rng = corr_rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(corr_rng >> 11) + 0.5) * 0x1.0p-53 * 2 - 1;
}

/* one lane: a[i][p][q], w[o][i][u][v]; corr(a, w)[p, q] = sum w[u, v] a[p + u - r, q + v - r] */
static double corr_ref(int ci, int k, int n, const double *w_oi, const double *X, int lane, int p, int q)
{
    int r = (k - 1) / 2;
    double s = 0;
    for (int i = 0; i < ci; i++)
        for (int u = 0; u < k; u++)
            for (int v = 0; v < k; v++) {
                int a = p + u - r, b = q + v - r;
                if (a < 0 || a >= n || b < 0 || b >= n)
                    continue;
                s += w_oi[(i * k + u) * k + v] * X[((size_t)(i * n + a) * n + b) * SPDL_BT + lane];
            }
    return s;
}

static const int shapes[][4] = {{1, 1, 1, 1}, {3, 1, 3, 1}, {2, 3, 3, 4}, {4, 2, 5, 3}, {5, 4, 3, 7},
                                {7, 2, 1, 5}, {2, 7, 5, 6}, {6, 5, 7, 2}, {13, 3, 3, 5},
                                /* so many maps that a block of the output is 3 pixels of a row (the
                                   correlation's) or of the input (its transpose's): blocks of 3, 3, 1 */
                                {1100, 2, 3, 7}, {2, 1100, 5, 7}};

static double *rand_array(size_t n)
{
    double *a = malloc(n * sizeof *a);
    cr_assert(a);
    for (size_t i = 0; i < n; i++)
        a[i] = corr_rand();
    return a;
}

Test(corr2, forward_matches_the_formula_in_every_lane_with_acc_0_and_1)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int co = shapes[t][0], ci = shapes[t][1], k = shapes[t][2], n = shapes[t][3];
        size_t img = (size_t)n * n * SPDL_BT;
        double *W = rand_array((size_t)co * ci * k * k), *X = rand_array(ci * img), *Y = rand_array(co * img);
        double *Y0 = malloc(co * img * sizeof *Y0);
        memcpy(Y0, Y, co * img * sizeof *Y0);
        for (int acc = 0; acc < 2; acc++) {
            memcpy(Y, Y0, co * img * sizeof *Y);
            spdl_corr2(co, ci, k, n, W, X, Y, acc);
            for (int o = 0; o < co; o++)
                for (int p = 0; p < n; p++)
                    for (int q = 0; q < n; q++)
                        for (int l = 0; l < SPDL_BT; l++) {
                            size_t at = ((size_t)(o * n + p) * n + q) * SPDL_BT + l;
                            double want = corr_ref(ci, k, n, W + (size_t)o * ci * k * k, X, l, p, q) + (acc ? Y0[at] : 0);
                            /* ci k^2 terms below 1 in size: rounding grows with their count */
                            double tol = fmax(1e-13, 4e-16 * ci * k * k);
                            cr_assert(fabs(Y[at] - want) <= tol, "shape %zu acc %d (%d %d %d %d): %.17g vs %.17g", t,
                                      acc, o, p, q, l, Y[at], want);
                        }
        }
        free(W), free(X), free(Y), free(Y0);
    }
}

/* <V, corr(W, X)> = <corr_t(W, V), X> and d<V, corr(W, X)>/dW . D = <V, corr(D, X)> */
Test(corr2, transpose_and_kernel_gradient_by_dot_products)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int co = shapes[t][0], ci = shapes[t][1], k = shapes[t][2], n = shapes[t][3];
        size_t img = (size_t)n * n * SPDL_BT, nw = (size_t)co * ci * k * k;
        double *W = rand_array(nw), *D = rand_array(nw), *X = rand_array(ci * img), *V = rand_array(co * img);
        double *Y = malloc(co * img * sizeof *Y), *Z = rand_array(ci * img), *Z0 = malloc(ci * img * sizeof *Z0);
        double *GW = rand_array(nw), *GW0 = malloc(nw * sizeof *GW0);
        memcpy(Z0, Z, ci * img * sizeof *Z0);
        memcpy(GW0, GW, nw * sizeof *GW0);
        spdl_corr2(co, ci, k, n, W, X, Y, 0);
        spdl_corr2_t(co, ci, k, n, W, V, Z, 1); /* onto Z0 */
        double a = 0, b = 0, scale = 0;
        for (size_t i = 0; i < co * img; i++)
            a += V[i] * Y[i], scale += fabs(V[i] * Y[i]);
        for (size_t i = 0; i < ci * img; i++)
            b += (Z[i] - Z0[i]) * X[i];
        cr_assert(fabs(a - b) <= 1e-13 * (1 + scale), "shape %zu: %.17g vs %.17g", t, a, b);
        spdl_corr2_t(co, ci, k, n, W, V, Z, 0);
        double b0 = 0;
        for (size_t i = 0; i < ci * img; i++)
            b0 += Z[i] * X[i];
        cr_assert(fabs(a - b0) <= 1e-13 * (1 + scale), "shape %zu acc 0: %.17g vs %.17g", t, a, b0);
        spdl_corr2_dw(co, ci, k, n, V, X, GW); /* onto GW0 */
        spdl_corr2(co, ci, k, n, D, X, Y, 0);
        double c = 0, d = 0;
        for (size_t i = 0; i < nw; i++)
            c += (GW[i] - GW0[i]) * D[i];
        for (size_t i = 0; i < co * img; i++)
            d += V[i] * Y[i];
        cr_assert(fabs(c - d) <= 1e-12 * (1 + scale), "shape %zu: %.17g vs %.17g", t, c, d);
        free(W), free(D), free(X), free(V), free(Y), free(Z), free(Z0), free(GW), free(GW0);
    }
}
