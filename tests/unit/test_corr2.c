/* test_corr2.c - the C4/D4 grid correlations of runtime/spdl_kernels.h
 * (spdl_corr2, its transpose spdl_corr2_t, the kernel gradient
 * spdl_corr2_dw) against DESIGN §8's corr written out here, per lane, for
 * grids from 1 x 1 to 7 x 7 and kernels larger than the grid, acc 0 and 1,
 * and with enough maps that a row of the output is taken in blocks; the
 * same with scratch through F(2x2, 3x3) (spdl_wino_*), which float builds take.
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

/* F(2x2, 3x3) (spdl_wino_*): with scratch, 3 x 3 correlations of at least
 * 8 maps each way (the kernel gradient 16) go through the transforms: the
 * same formula to a tolerance, other bits than the taps' sums (so the path
 * is the one under test), for odd and even grids, blocks of one tile, of
 * some and of every tile, and scratch short of one tile (the taps again) */
static const int wino_shapes[][3] = {{8, 8, 1}, {8, 9, 2}, {16, 16, 3}, {9, 16, 4}, {16, 17, 5}, {20, 16, 8}};

static void wino_expect(int co, int ci, int n, size_t ns, int gradient, int *used)
{
    const int k = 3;
    size_t img = (size_t)n * n * SPDL_BT, nw = (size_t)co * ci * k * k;
    double *W = rand_array(nw), *X = rand_array(ci * img), *V = rand_array(co * img), *S = rand_array(ns + 1);
    double *Y = rand_array(co * img), *Y0 = malloc(co * img * sizeof *Y0), *Yt = malloc(co * img * sizeof *Yt);
    double *Z = rand_array(ci * img), *Zt = malloc(ci * img * sizeof *Zt);
    double *GW = calloc(nw, sizeof *GW), *GWt = calloc(nw, sizeof *GWt), *D = rand_array(nw);
    cr_assert(Y0 && Yt && Zt && GW && GWt);
    memcpy(Y0, Y, co * img * sizeof *Y0);
    for (int acc = 0; acc < 2; acc++) {
        memcpy(Y, Y0, co * img * sizeof *Y);
        memcpy(Yt, Y0, co * img * sizeof *Yt);
        spdl_corr2(co, ci, k, n, W, X, Y, acc, S, ns);
        spdl_corr2(co, ci, k, n, W, X, Yt, acc, NULL, 0);
        assert_corr(co, ci, k, n, W, X, Y, acc ? Y0 : NULL, 1e-15 * 16 * ci);
        *used |= gradient == 0 && memcmp(Y, Yt, co * img * sizeof *Y);
    }
    /* the transpose and the kernel gradient against the forward pass by dot products */
    spdl_corr2(co, ci, k, n, W, X, Y, 0, NULL, 0);
    spdl_corr2_t(co, ci, k, n, W, V, Z, 0, S, ns);
    spdl_corr2_t(co, ci, k, n, W, V, Zt, 0, NULL, 0);
    double a = 0, b = 0, scale = 0;
    for (size_t i = 0; i < co * img; i++)
        a += V[i] * Y[i], scale += fabs(V[i] * Y[i]);
    for (size_t i = 0; i < ci * img; i++)
        b += Z[i] * X[i], *used |= (gradient == 0) & (Z[i] != Zt[i]);
    cr_assert(fabs(a - b) <= 1e-13 * (1 + scale), "(%d %d %d) ns %zu: %.17g vs %.17g", co, ci, n, ns, a, b);
    spdl_corr2_dw(co, ci, k, n, V, X, GW, S, ns);
    spdl_corr2_dw(co, ci, k, n, V, X, GWt, NULL, 0);
    spdl_corr2(co, ci, k, n, D, X, Y, 0, NULL, 0);
    double c = 0, d = 0;
    for (size_t i = 0; i < nw; i++)
        c += GW[i] * D[i], *used |= (gradient == 1) & (GW[i] != GWt[i]);
    for (size_t i = 0; i < co * img; i++)
        d += V[i] * Y[i];
    cr_assert(fabs(c - d) <= 1e-12 * (1 + scale), "(%d %d %d) ns %zu: %.17g vs %.17g", co, ci, n, ns, c, d);
    free(W), free(X), free(V), free(S), free(Y), free(Y0), free(Yt), free(Z), free(Zt), free(GW), free(GWt), free(D);
}

Test(corr2, winograd_3x3_matches_the_formula_and_is_taken)
{
    for (size_t t = 0; t < sizeof wino_shapes / sizeof *wino_shapes; t++) {
        int co = wino_shapes[t][0], ci = wino_shapes[t][1], n = wino_shapes[t][2], tiles = ((n + 1) / 2) * ((n + 1) / 2);
        size_t fixed = 16 * ((size_t)co * ci + 2 * SPDL_WINO_SKEW_), per = 16 * (size_t)(co + ci) * SPDL_BT;
        const int blocks[] = {1, tiles > 2 ? 2 : 1, tiles, tiles + 3};
        for (int b = 0; b < 4; b++) {
            cr_assert_eq(spdl_wino_tiles_(co, ci, n, fixed + per * blocks[b]), blocks[b] < tiles ? blocks[b] : tiles);
            int used = 0;
            wino_expect(co, ci, n, fixed + per * blocks[b], 0, &used);
            cr_assert(used, "(%d %d %d): the correlations did not take F(2x2, 3x3)", co, ci, n);
            used = 0;
            wino_expect(co, ci, n, fixed + per * blocks[b], 1, &used);
            cr_assert(used == (co >= 16 && ci >= 16), "(%d %d %d): the kernel gradient's path", co, ci, n);
        }
        /* short of one tile's block: the taps, bit for bit */
        cr_assert_eq(spdl_wino_tiles_(co, ci, n, fixed + per - 1), 0);
        int used = 0;
        wino_expect(co, ci, n, fixed + per - 1, 0, &used);
        wino_expect(co, ci, n, fixed + per - 1, 1, &used);
        cr_assert(!used);
    }
}

/* below 8 maps (16 for the kernel gradient) and for other kernel sizes the taps, bit for bit, scratch or not */
Test(corr2, small_products_and_other_kernels_keep_the_taps)
{
    const int shapes2[][4] = {{4, 16, 3, 6}, {16, 7, 3, 6}, {16, 16, 5, 6}, {16, 16, 1, 6}};
    for (size_t t = 0; t < sizeof shapes2 / sizeof *shapes2; t++) {
        int co = shapes2[t][0], ci = shapes2[t][1], k = shapes2[t][2], n = shapes2[t][3];
        size_t img = (size_t)n * n * SPDL_BT, nw = (size_t)co * ci * k * k, ns = 1 << 20;
        double *W = rand_array(nw), *X = rand_array(ci * img), *S = malloc(ns * sizeof *S);
        double *Y = malloc(co * img * sizeof *Y), *Yt = malloc(co * img * sizeof *Yt);
        cr_assert(S && Y && Yt);
        spdl_corr2(co, ci, k, n, W, X, Y, 0, S, ns);
        spdl_corr2(co, ci, k, n, W, X, Yt, 0, NULL, 0);
        cr_assert(!memcmp(Y, Yt, co * img * sizeof *Y), "shape %zu", t);
        free(W), free(X), free(S), free(Y), free(Yt);
    }
}
