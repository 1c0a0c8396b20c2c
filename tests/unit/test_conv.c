/* test_conv.c - the Z(n) convolution kernels of runtime/spdl_kernels.h
 * against DESIGN §8's formula written out here, their transpose by the
 * dot-product identity, and the operator-norm bound against the largest
 * singular value of the dense matrix of the map (never below it; within
 * 1e-4 of it: the symbols are exact, and 16 Gram steps leave a factor
 * d^(2^-17) for a top singular value of multiplicity d, 5e-6 for d = 2). */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef double real;
#define SPDL_BT 4
#include "spdl_kernels.h"

static uint64_t conv_rng = 99;
static double conv_rand(void)
{
    conv_rng = conv_rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(conv_rng >> 11) + 0.5) * 0x1.0p-53 * 2 - 1;
}

/* y = conv(K, x) for one sample, by the formula */
static void conv_ref(int cout, int cin, int k, int n, const double *K, const double *x, double *y)
{
    int r = (k - 1) / 2;
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int c = 0; c < cin; c++)
                for (int u = 0; u < k; u++)
                    s += K[(o * cin + c) * k + u] * x[c * n + (((i + u - r) % n) + n) % n];
            y[o * n + i] = s;
        }
}

static const int shapes[][4] = {{1, 1, 1, 5}, {2, 3, 3, 7}, {3, 2, 4, 6}, {2, 2, 5, 4}, {4, 3, 2, 9}, {1, 2, 9, 5}};

Test(zconv, forward_matches_the_formula_in_every_lane)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int cout = shapes[t][0], cin = shapes[t][1], k = shapes[t][2], n = shapes[t][3];
        double K[64], X[4 * 9 * SPDL_BT], Y[4 * 9 * SPDL_BT], x[36], y[36];
        for (int i = 0; i < cout * cin * k; i++)
            K[i] = conv_rand();
        for (int i = 0; i < cin * n * SPDL_BT; i++)
            X[i] = conv_rand();
        spdl_zconv(cout, cin, k, n, K, X, Y, 0);
        for (int l = 0; l < SPDL_BT; l++) {
            for (int i = 0; i < cin * n; i++)
                x[i] = X[i * SPDL_BT + l];
            conv_ref(cout, cin, k, n, K, x, y);
            for (int i = 0; i < cout * n; i++)
                cr_assert(fabs(Y[i * SPDL_BT + l] - y[i]) <= 1e-14, "shape %zu lane %d entry %d: %g vs %g", t, l, i,
                          Y[i * SPDL_BT + l], y[i]);
        }
    }
}

Test(zconv, transpose_and_kernel_gradient_by_dot_products)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int cout = shapes[t][0], cin = shapes[t][1], k = shapes[t][2], n = shapes[t][3];
        double K[64], X[36 * SPDL_BT], W[36 * SPDL_BT], Y[36 * SPDL_BT], Z[36 * SPDL_BT], GK[64] = {0}, DK[64];
        for (int i = 0; i < cout * cin * k; i++)
            K[i] = conv_rand(), DK[i] = conv_rand();
        for (int i = 0; i < cin * n * SPDL_BT; i++)
            X[i] = conv_rand();
        for (int i = 0; i < cout * n * SPDL_BT; i++)
            W[i] = conv_rand();
        /* <W, conv(K, X)> = <conv'(K, W), X> */
        spdl_zconv(cout, cin, k, n, K, X, Y, 0);
        spdl_zconv_t(cout, cin, k, n, K, W, Z, 0);
        double a = 0, b = 0;
        for (int i = 0; i < cout * n * SPDL_BT; i++)
            a += W[i] * Y[i];
        for (int i = 0; i < cin * n * SPDL_BT; i++)
            b += Z[i] * X[i];
        cr_assert(fabs(a - b) <= 1e-12 * (1 + fabs(a)), "shape %zu: %.17g vs %.17g", t, a, b);
        /* d<W, conv(K, X)>/dK . DK = <W, conv(DK, X)> */
        spdl_zconv_dk(cout, cin, k, n, W, X, GK);
        spdl_zconv(cout, cin, k, n, DK, X, Y, 0);
        double c = 0, d = 0;
        for (int i = 0; i < cout * cin * k; i++)
            c += GK[i] * DK[i];
        for (int i = 0; i < cout * n * SPDL_BT; i++)
            d += W[i] * Y[i];
        cr_assert(fabs(c - d) <= 1e-12 * (1 + fabs(d)), "shape %zu: %.17g vs %.17g", t, c, d);
    }
}

/* the largest singular value of the dense (cout n) x (cin n) matrix of the
 * map, by power iteration on A'A to convergence (a lower bound that
 * converges to it) */
static double dense_norm(int cout, int cin, int k, int n, const double *K)
{
    int rows = cout * n, cols = cin * n;
    double *A = calloc((size_t)rows * cols, sizeof *A), *e = calloc((size_t)cols, sizeof *e);
    for (int j = 0; j < cols; j++) {
        memset(e, 0, sizeof *e * (size_t)cols);
        e[j] = 1;
        double y[64];
        conv_ref(cout, cin, k, n, K, e, y);
        for (int i = 0; i < rows; i++)
            A[(size_t)i * cols + j] = y[i];
    }
    double v[64], w[64], s = 0;
    for (int j = 0; j < cols; j++)
        v[j] = 1 + 0.01 * j;
    for (int it = 0; it < 5000; it++) {
        double t[64];
        for (int i = 0; i < rows; i++) {
            t[i] = 0;
            for (int j = 0; j < cols; j++)
                t[i] += A[(size_t)i * cols + j] * v[j];
        }
        double nv = 0;
        for (int j = 0; j < cols; j++) {
            w[j] = 0;
            for (int i = 0; i < rows; i++)
                w[j] += A[(size_t)i * cols + j] * t[i];
            nv += w[j] * w[j];
        }
        nv = sqrt(nv);
        double tv = 0;
        for (int i = 0; i < rows; i++)
            tv += t[i] * t[i];
        double vv = 0;
        for (int j = 0; j < cols; j++)
            vv += v[j] * v[j];
        s = fmax(s, sqrt(tv / vv)); /* |A v| / |v| <= |A| */
        for (int j = 0; j < cols; j++)
            v[j] = w[j] / nv;
    }
    free(A), free(e);
    return s;
}

Test(zconv, norm_bound_is_never_below_the_operator_norm_and_tight)
{
    for (int trial = 0; trial < 40; trial++) {
        int cout = 1 + trial % 3, cin = 1 + (trial / 3) % 3, k = 1 + trial % 5, n = 3 + trial % 6;
        double K[64], M[64];
        for (int i = 0; i < cout * cin * k; i++)
            K[i] = conv_rand() * (trial % 4 == 0 ? 100 : 1);
        double bound = spdl_zconv_norm_upper(cout, cin, k, n, K, M);
        double truth = dense_norm(cout, cin, k, n, K);
        cr_assert(bound >= truth, "trial %d (%d, %d, %d, %d): bound %.17g below the norm %.17g", trial, cout, cin, k, n,
                  bound, truth);
        cr_assert(bound <= truth * (1 + 1e-4), "trial %d: bound %.17g, norm %.17g", trial, bound, truth);
    }
}
