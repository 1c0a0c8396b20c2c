/* test_corr2.c - the C4/D4 grid correlations of runtime/spdl_kernels.h
 * (spdl_corr2, its transpose spdl_corr2_t, the kernel gradient
 * spdl_corr2_dw) against DESIGN §8's corr written out here, per lane, for
 * grids from 1 x 1 to 7 x 7 and kernels larger than the grid, acc 0 and 1,
 * and with enough maps that a row of the output is taken in blocks; the
 * Winograd forms (spdl_wino_*), which float builds take, and the entry
 * points' choice between them and the taps.
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

/* Y = corr(W, X) (+ Y0 if given) in every lane to tol */
static void assert_corr(int co, int ci, int k, int n, const double *W, const double *X, const double *Y,
                        const double *Y0, double tol)
{
    for (int o = 0; o < co; o++)
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++)
                for (int l = 0; l < SPDL_BT; l++) {
                    size_t at = ((size_t)(o * n + p) * n + q) * SPDL_BT + l;
                    double want = corr_ref(ci, k, n, W + (size_t)o * ci * k * k, X, l, p, q) + (Y0 ? Y0[at] : 0);
                    cr_assert(fabs(Y[at] - want) <= tol, "(%d %d %d %d) %s, at (%d %d %d %d): %.17g vs %.17g", co, ci,
                              k, n, Y0 ? "acc 1" : "acc 0", o, p, q, l, Y[at], want);
                }
}

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
            spdl_corr2(co, ci, k, n, W, X, Y, acc, NULL, 0);
            /* ci k^2 terms below 1 in size: rounding grows with their count */
            assert_corr(co, ci, k, n, W, X, Y, acc ? Y0 : NULL, fmax(1e-13, 4e-16 * ci * k * k));
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
        spdl_corr2(co, ci, k, n, W, X, Y, 0, NULL, 0);
        spdl_corr2_t(co, ci, k, n, W, V, Z, 1, NULL, 0); /* onto Z0 */
        double a = 0, b = 0, scale = 0;
        for (size_t i = 0; i < co * img; i++)
            a += V[i] * Y[i], scale += fabs(V[i] * Y[i]);
        for (size_t i = 0; i < ci * img; i++)
            b += (Z[i] - Z0[i]) * X[i];
        cr_assert(fabs(a - b) <= 1e-13 * (1 + scale), "shape %zu: %.17g vs %.17g", t, a, b);
        spdl_corr2_t(co, ci, k, n, W, V, Z, 0, NULL, 0);
        double b0 = 0;
        for (size_t i = 0; i < ci * img; i++)
            b0 += Z[i] * X[i];
        cr_assert(fabs(a - b0) <= 1e-13 * (1 + scale), "shape %zu acc 0: %.17g vs %.17g", t, a, b0);
        spdl_corr2_dw(co, ci, k, n, V, X, GW, NULL, 0); /* onto GW0 */
        spdl_corr2(co, ci, k, n, D, X, Y, 0, NULL, 0);
        double c = 0, d = 0;
        for (size_t i = 0; i < nw; i++)
            c += (GW[i] - GW0[i]) * D[i];
        for (size_t i = 0; i < co * img; i++)
            d += V[i] * Y[i];
        cr_assert(fabs(c - d) <= 1e-12 * (1 + scale), "shape %zu: %.17g vs %.17g", t, c, d);
        free(W), free(D), free(X), free(V), free(Y), free(Z), free(Z0), free(GW), free(GW0);
    }
}

/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (spdl_wino_*), which float builds
 * take where they estimate less work: the same formula to a tolerance, on
 * grids that the tiles cover exactly and with ragged edges, in blocks of
 * one tile, of some and of every tile; the transpose and the kernel
 * gradient by dot products. 18 maps take the filter transforms a full
 * chunk of SPDL_WINO_FJ_ filters and a ragged one at a time. */
static const int wino_shapes[][3] = {{3, 2, 1}, {2, 3, 2}, {4, 4, 3}, {3, 5, 4}, {5, 4, 5},
                                     {6, 3, 7}, {4, 4, 8}, {2, 5, 9}, {3, 18, 4}, {18, 2, 3}};

static void wino_expect(int m, int co, int ci, int n, int T)
{
    const int k = 3;
    size_t img = (size_t)n * n * SPDL_BT, nw = (size_t)co * ci * k * k, X = (size_t)(m + 2) * (m + 2);
    size_t ns = X * ((size_t)co * ci + 2 * SPDL_WINO_SKEW_) + X * (size_t)(co + ci) * SPDL_BT * T;
    cr_assert_eq(spdl_wino_tiles_(m, co, ci, n, ns), T);
    cr_assert_eq(spdl_wino_tiles_(m, co, ci, n, ns - 1), T - 1);
    double *W = rand_array(nw), *X0 = rand_array(ci * img), *V = rand_array(co * img), *S = rand_array(ns);
    double *Y = rand_array(co * img), *Y0 = malloc(co * img * sizeof *Y0), *Z = rand_array(ci * img);
    double *GW = calloc(nw, sizeof *GW), *D = rand_array(nw);
    cr_assert(Y0 && GW);
    memcpy(Y0, Y, co * img * sizeof *Y0);
    for (int acc = 0; acc < 2; acc++) {
        /* acc 0 must not read what the output held: NaN there stays out of the result */
        for (size_t i = 0; i < co * img; i++)
            Y[i] = acc ? Y0[i] : NAN;
        spdl_wino_gather_(m, co, ci, n, W, (size_t)ci * k * k, k * k, 1, X0, Y, acc, S, T);
        /* m = 4's transforms have entries up to 8 and 5: more rounding than m = 2's */
        assert_corr(co, ci, k, n, W, X0, Y, acc ? Y0 : NULL, (m == 4 ? 1e-13 : 1e-14) * ci);
    }
    spdl_corr2(co, ci, k, n, W, X0, Y, 0, NULL, 0);
    for (size_t i = 0; i < ci * img; i++)
        Z[i] = NAN;
    spdl_wino_gather_(m, ci, co, n, W, k * k, (size_t)ci * k * k, -1, V, Z, 0, S, T);
    double a = 0, b = 0, scale = 0;
    for (size_t i = 0; i < co * img; i++)
        a += V[i] * Y[i], scale += fabs(V[i] * Y[i]);
    for (size_t i = 0; i < ci * img; i++)
        b += Z[i] * X0[i];
    cr_assert(fabs(a - b) <= 1e-13 * (1 + scale), "F(%d) (%d %d %d) T %d: %.17g vs %.17g", m, co, ci, n, T, a, b);
    spdl_wino_dw_(m, co, ci, n, V, X0, GW, S, T);
    spdl_corr2(co, ci, k, n, D, X0, Y, 0, NULL, 0);
    double c = 0, d = 0;
    for (size_t i = 0; i < nw; i++)
        c += GW[i] * D[i];
    for (size_t i = 0; i < co * img; i++)
        d += V[i] * Y[i];
    cr_assert(fabs(c - d) <= 1e-12 * (1 + scale), "F(%d) (%d %d %d) T %d: %.17g vs %.17g", m, co, ci, n, T, c, d);
    free(W), free(X0), free(V), free(S), free(Y), free(Y0), free(Z), free(GW), free(D);
}

Test(corr2, winograd_2x2_and_4x4_match_the_formula)
{
    for (size_t t = 0; t < sizeof wino_shapes / sizeof *wino_shapes; t++)
        for (int m = 2; m <= 4; m += 2) {
            int co = wino_shapes[t][0], ci = wino_shapes[t][1], n = wino_shapes[t][2], nt = (n + m - 1) / m;
            const int blocks[] = {1, nt * nt > 2 ? 2 : 1, nt * nt};
            for (int b = 0; b < 3; b++)
                wino_expect(m, co, ci, n, blocks[b]);
        }
}

/* the entry points' choice: the taps for other kernels, one input map, small grids and no scratch or too
 * little; F(4x4) on 8 x 8 and 28 x 28, F(2x2) on 6 x 6 with many maps; and that they run what they chose */
Test(corr2, entry_points_take_the_way_of_least_work)
{
    const int cases[][5] = {/* mo, mi, k, n, m */ {16, 16, 3, 8, 4}, {64, 64, 3, 28, 4}, {32, 32, 3, 6, 2},
                            {16, 1, 3, 8, 0},   {1, 16, 3, 8, 0},    {16, 16, 3, 5, 0},  {16, 16, 5, 8, 0}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        int mo = cases[t][0], mi = cases[t][1], k = cases[t][2], n = cases[t][3], T;
        cr_assert_eq(spdl_wino_use_(mo, mi, k, n, (size_t)1 << 24, 0, &T), cases[t][4], "case %zu", t);
        cr_assert_eq(spdl_wino_use_(mo, mi, k, n, 100, 0, &T), 0);
    }
    for (int m = 2; m <= 4; m += 2) {
        const int co = m == 4 ? 16 : 32, ci = co, n = m == 4 ? 8 : 6, k = 3;
        size_t img = (size_t)n * n * SPDL_BT, nw = (size_t)co * ci * k * k, ns = (size_t)1 << 22;
        double *W = rand_array(nw), *X = rand_array(ci * img), *S = malloc(ns * sizeof *S);
        double *Y = malloc(co * img * sizeof *Y), *Yt = malloc(co * img * sizeof *Yt);
        cr_assert(S && Y && Yt);
        spdl_corr2(co, ci, k, n, W, X, Y, 0, S, ns);
        spdl_corr2(co, ci, k, n, W, X, Yt, 0, NULL, 0);
        assert_corr(co, ci, k, n, W, X, Y, NULL, 1e-13 * ci);
        cr_assert(memcmp(Y, Yt, co * img * sizeof *Y), "F(%d): the taps' bits, not the transforms'", m);
        spdl_corr2(co, ci, k, n, W, X, Y, 0, S, 1000);
        cr_assert(!memcmp(Y, Yt, co * img * sizeof *Y), "too little scratch: the taps");
        free(W), free(X), free(S), free(Y), free(Yt);
    }
}
