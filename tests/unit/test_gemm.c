/* test_gemm.c - runtime/spdl_kernels.h's spdl_gemm against a naive triple
 * loop (in long double) over many shapes, including M, N, K that are not
 * multiples of the register blocks, the three stride patterns of training
 * (Y = A X, X' += A' G, dA += G X^T with X transposed first), padded leading
 * dimensions, acc 0 and 1. Padding around the operands holds NaN (A, B) or a
 * sentinel (C): reading an element outside the operands or writing one
 * outside C fails the test.
 *
 * The Makefile compiles this file three times: into the unit binary with
 * the default flags (the portable kernel), and alone with -march=x86-64-v3
 * (AVX2 and FMA) and -march=x86-64-v4 (AVX-512), run where the CPU has them
 * (the intrinsics kernels; `intrinsics_path_compiled` checks the one
 * expected is the one tested). The AVX-512 kernel must give the AVX2
 * kernel's bits (`avx512_same_bits_as_avx2`). */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef double real;
#define SPDL_BT 64
#include "spdl_kernels.h"

#define SENTINEL 12345.0

static uint64_t rng = 88172645463325252u;
static double uniform(void) /* in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-52 - 1.0;
}

/* one product of shape M x N x K with the given strides; returns the worst
 * error relative to sum_k |A||B| + |C before| (plus a tiny floor) */
static double check_one(int M, int N, int K, size_t ars, size_t aks, size_t ldb, size_t ldc, int acc)
{
    size_t na = (M ? (size_t)(M - 1) * ars : 0) + (K ? (size_t)(K - 1) * aks : 0) + 1 + 8;
    size_t nb = (K ? (size_t)(K - 1) * ldb : 0) + (size_t)N + 8;
    size_t nc = (M ? (size_t)(M - 1) * ldc : 0) + (size_t)N + 8;
    double *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C = malloc(nc * sizeof *C);
    double *C0 = malloc(nc * sizeof *C0), *C1 = malloc(nc * sizeof *C1);
    cr_assert(A && B && C && C0 && C1);
    for (size_t i = 0; i < na; i++)
        A[i] = NAN;
    for (size_t i = 0; i < nb; i++)
        B[i] = NAN;
    for (size_t i = 0; i < nc; i++)
        C[i] = SENTINEL;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            A[(size_t)i * ars + (size_t)k * aks] = uniform();
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            B[(size_t)k * ldb + (size_t)j] = uniform();
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + (size_t)j] = uniform();
    memcpy(C0, C, nc * sizeof *C);
    memcpy(C1, C, nc * sizeof *C);
    spdl_gemm(M, N, K, A, ars, aks, B, ldb, C, ldc, acc);
    spdl_gemm(M, N, K, A, ars, aks, B, ldb, C1, ldc, acc);
    cr_assert(memcmp(C, C1, nc * sizeof *C) == 0, "not deterministic: %d x %d x %d", M, N, K);
    double worst = 0;
    for (size_t p = 0; p < nc; p++) {
        size_t i = p / ldc, j = p % ldc;
        if ((int)i < M && (int)j < N) {
            long double s = acc ? (long double)C0[p] : 0.0L, mag = acc ? fabsl((long double)C0[p]) : 0.0L;
            for (int k = 0; k < K; k++) {
                long double x = A[i * ars + (size_t)k * aks], y = B[(size_t)k * ldb + j];
                s += x * y;
                mag += fabsl(x * y);
            }
            double err = (double)(fabsl((long double)C[p] - s) / (mag + 1e-300L));
            cr_assert(!isnan(C[p]), "NaN at (%zu, %zu) of %d x %d x %d: an element outside A or B was read", i, j,
                      M, N, K);
            if (err > worst)
                worst = err;
        } else
            cr_assert(C[p] == SENTINEL, "C[%zu] outside the %d x %d block (ldc %zu) was written", p, M, N, ldc);
    }
    free(A), free(B), free(C), free(C0), free(C1);
    return worst;
}

static const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 64, 67};
static const int Ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 64, 70};
static const int Ks[] = {0, 1, 2, 3, 4, 7, 8, 16, 33, 64, 257};
#define COUNT(a) (int)(sizeof a / sizeof a[0])

enum { FWD, ADJT, DK, PADDED };

static void sweep(int pattern)
{
    double worst = 0;
    for (int mi = 0; mi < COUNT(Ms); mi++)
        for (int ni = 0; ni < COUNT(Ns); ni++)
            for (int ki = 0; ki < COUNT(Ks); ki++)
                for (int acc = 0; acc <= 1; acc++) {
                    int M = Ms[mi], N = Ns[ni], K = Ks[ki];
                    size_t ars, aks, ldb = (size_t)N, ldc = (size_t)N;
                    switch (pattern) {
                    case FWD: /* Y = A X: A row-major M x K */
                        ars = (size_t)K, aks = 1;
                        break;
                    case ADJT: /* X' += A' G: A is K x M row-major, used transposed */
                        ars = 1, aks = (size_t)M;
                        break;
                    case DK: /* dA += G X^T: G is M rows of a wider tile, X^T sample-major scratch */
                        ars = (size_t)K + 3, aks = 1;
                        break;
                    default: /* every leading dimension padded, A transposed */
                        ars = 1, aks = (size_t)M + 5, ldb = (size_t)N + 3, ldc = (size_t)N + 6;
                        break;
                    }
                    double e = check_one(M, N, K, ars, aks, ldb, ldc, acc);
                    cr_assert(e <= 1e-13, "pattern %d, %d x %d x %d, acc %d: relative error %.3g", pattern, M, N, K,
                              acc, e);
                    if (e > worst)
                        worst = e;
                }
    cr_log_info("pattern %d: worst relative error %.3g", pattern, worst);
}

Test(gemm, forward_strides) { sweep(FWD); }
Test(gemm, adjoint_strides) { sweep(ADJT); }
Test(gemm, gradient_strides) { sweep(DK); }
Test(gemm, padded_strides) { sweep(PADDED); }

/* the widths of the generated code: M = K = w, N = 64 lanes, and dK's w x w x 64 */
Test(gemm, model_widths)
{
    const int ws[] = {4, 16, 64, 256};
    for (int t = 0; t < COUNT(ws); t++) {
        int w = ws[t];
        for (int acc = 0; acc <= 1; acc++) {
            cr_assert(check_one(w, SPDL_BT, w, (size_t)w, 1, SPDL_BT, SPDL_BT, acc) <= 1e-13);
            cr_assert(check_one(w, SPDL_BT, w, 1, (size_t)w, SPDL_BT, SPDL_BT, acc) <= 1e-13);
            cr_assert(check_one(w, w, SPDL_BT, SPDL_BT, 1, (size_t)w, (size_t)w, acc) <= 1e-13);
        }
    }
}

/* M or N zero: nothing is touched; K zero: C = 0 or C unchanged */
Test(gemm, empty)
{
    double A[4] = {1, 2, 3, 4}, B[4] = {1, 2, 3, 4}, C[4] = {5, 6, 7, 8};
    spdl_gemm(0, 2, 2, A, 2, 1, B, 2, C, 2, 0);
    spdl_gemm(2, 0, 2, A, 2, 1, B, 2, C, 2, 0);
    cr_assert(C[0] == 5 && C[1] == 6 && C[2] == 7 && C[3] == 8);
    spdl_gemm(2, 2, 0, A, 2, 1, B, 2, C, 2, 1);
    cr_assert(C[0] == 5 && C[1] == 6 && C[2] == 7 && C[3] == 8);
    spdl_gemm(2, 2, 0, A, 2, 1, B, 2, C, 2, 0);
    cr_assert(C[0] == 0 && C[1] == 0 && C[2] == 0 && C[3] == 0);
}

/* B wider than a panel (spdl_gemm's cache blocking, whose panels are 64
 * columns here, K being large): against long double, and bit for bit
 * against the same product taken 64 columns at a time (one panel each) */
Test(gemm, panels_of_wide_products)
{
    const int shapes[][3] = {{13, 1000, 300}, {6, 4099, 64}, {67, 70, 5000}, {1, 130, 2100}};
    for (int t = 0; t < COUNT(shapes); t++)
        for (int acc = 0; acc <= 1; acc++)
            for (int trans = 0; trans <= 1; trans++) {
                int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
                size_t ars = trans ? 1 : (size_t)K, aks = trans ? (size_t)M : 1;
                double e = check_one(M, N, K, ars, aks, (size_t)N, (size_t)N, acc);
                cr_assert(e <= 1e-13, "%d x %d x %d acc %d trans %d: relative error %.3g", M, N, K, acc, trans, e);
                double *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
                double *C1 = malloc((size_t)M * N * sizeof *C1), *C2 = malloc((size_t)M * N * sizeof *C2);
                cr_assert(A && B && C1 && C2);
                for (size_t i = 0; i < (size_t)M * K; i++)
                    A[i] = uniform();
                for (size_t i = 0; i < (size_t)K * N; i++)
                    B[i] = uniform();
                for (size_t i = 0; i < (size_t)M * N; i++)
                    C1[i] = C2[i] = uniform();
                spdl_gemm(M, N, K, A, ars, aks, B, (size_t)N, C1, (size_t)N, acc);
                for (int j = 0; j < N; j += 64)
                    spdl_gemm(M, N - j < 64 ? N - j : 64, K, A, ars, aks, B + j, (size_t)N, C2 + j, (size_t)N, acc);
                cr_assert(memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0, "%d x %d x %d: panels changed the bits", M,
                          N, K);
                free(A), free(B), free(C1), free(C2);
            }
}

/* built with AVX-512, or with AVX2 and FMA, the intrinsics kernel is the one under test */
Test(gemm, intrinsics_path_compiled)
{
#if defined(__AVX512F__)
#ifndef SPDL_GEMM_AVX512
    cr_assert_fail("AVX-512 is on but spdl_gemm's AVX-512 path is not compiled");
#endif
    cr_log_info("spdl_gemm: AVX-512 intrinsics path");
#elif defined(__AVX2__) && defined(__FMA__)
#ifndef SPDL_GEMM_AVX2
    cr_assert_fail("AVX2 and FMA are on but spdl_gemm's intrinsics path is not compiled");
#endif
    cr_log_info("spdl_gemm: AVX2/FMA intrinsics path");
#else
    cr_log_info("spdl_gemm: portable path");
#endif
}

/* Both kernels run one FMA chain per element over k, started from C (acc)
 * or 0: so a program gives the same bits built for x86-64-v3 or v4 */
Test(gemm, avx512_same_bits_as_avx2)
{
#if defined(SPDL_GEMM_AVX512) && defined(SPDL_GEMM_AVX2)
    const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {6, 32, 8}, {7, 33, 17}, {13, 70, 64}, {64, 64, 64},
                             {67, 64, 257}, {16, 16, 64}, {256, 64, 256}, {13, 700, 300}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
        for (int acc = 0; acc <= 1; acc++)
            for (int trans = 0; trans <= 1; trans++) {
                int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
                size_t ars = trans ? 1 : (size_t)K, aks = trans ? (size_t)M : 1;
                double *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
                double *C1 = malloc((size_t)M * N * sizeof *C1), *C2 = malloc((size_t)M * N * sizeof *C2);
                cr_assert(A && B && C1 && C2);
                for (int i = 0; i < M * K; i++)
                    A[i] = uniform();
                for (int i = 0; i < K * N; i++)
                    B[i] = uniform();
                for (int i = 0; i < M * N; i++)
                    C1[i] = C2[i] = uniform();
                spdl_gemm_avx2_(M, N, K, A, ars, aks, B, (size_t)N, C1, (size_t)N, acc);
                spdl_gemm(M, N, K, A, ars, aks, B, (size_t)N, C2, (size_t)N, acc);
                cr_assert(memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0, "%d x %d x %d acc %d trans %d: bits differ",
                          M, N, K, acc, trans);
                free(A), free(B), free(C1), free(C2);
            }
#else
    cr_log_info("not an AVX-512 build");
#endif
}

/* spdl_gemm_nt: C[i*ldc + j*cs] += sum_k A[i*lda + k] B[j*ldb + k] against
 * long double, with NaN past every operand row and a sentinel around every
 * element of C it must not write */
static double check_nt(int M, int N, int K, size_t lda, size_t ldb, size_t ldc, size_t cs)
{
    size_t na = (size_t)(M ? M - 1 : 0) * lda + (size_t)K + 8, nb = (size_t)(N ? N - 1 : 0) * ldb + (size_t)K + 8;
    size_t nc = (size_t)(M ? M - 1 : 0) * ldc + (size_t)(N ? N - 1 : 0) * cs + 8;
    double *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C = malloc(nc * sizeof *C);
    double *C0 = malloc(nc * sizeof *C0);
    cr_assert(A && B && C && C0);
    for (size_t i = 0; i < na; i++)
        A[i] = NAN;
    for (size_t i = 0; i < nb; i++)
        B[i] = NAN;
    for (size_t i = 0; i < nc; i++)
        C[i] = SENTINEL;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            A[(size_t)i * lda + (size_t)k] = uniform();
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++)
            B[(size_t)j * ldb + (size_t)k] = uniform();
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + (size_t)j * cs] = uniform();
    memcpy(C0, C, nc * sizeof *C);
    spdl_gemm_nt(M, N, K, A, lda, B, ldb, C, ldc, cs);
    double worst = 0;
    bool *inside = calloc(nc, sizeof *inside);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            size_t p = (size_t)i * ldc + (size_t)j * cs;
            inside[p] = true;
            long double s = C0[p], mag = fabsl((long double)C0[p]);
            for (int k = 0; k < K; k++) {
                long double x = A[(size_t)i * lda + (size_t)k], y = B[(size_t)j * ldb + (size_t)k];
                s += x * y;
                mag += fabsl(x * y);
            }
            cr_assert(!isnan(C[p]), "NaN at (%d, %d) of %d x %d x %d: an element outside A or B was read", i, j, M, N, K);
            double err = (double)(fabsl((long double)C[p] - s) / (mag + 1e-300L));
            if (err > worst)
                worst = err;
        }
    for (size_t p = 0; p < nc; p++)
        cr_assert(inside[p] || C[p] == SENTINEL, "C[%zu] outside the %d x %d result was written", p, M, N);
    free(A), free(B), free(C), free(C0), free(inside);
    return worst;
}

Test(gemm, nt_products)
{
    double worst = 0;
    for (int mi = 0; mi < COUNT(Ms); mi++)
        for (int ni = 0; ni < COUNT(Ns); ni++)
            for (int ki = 0; ki < COUNT(Ks); ki++) {
                int M = Ms[mi], N = Ns[ni], K = Ks[ki];
                /* dense rows; then padded rows, C transposed-strided as a kernel gradient's [o][i][tap] */
                double e = check_nt(M, N, K, (size_t)K, (size_t)K, (size_t)N, 1);
                double f = check_nt(M, N, K, (size_t)K + 5, (size_t)K + 3, (size_t)N * 9, 9);
                cr_assert(e <= 1e-13 && f <= 1e-13, "%d x %d x %d: relative errors %.3g %.3g", M, N, K, e, f);
                worst = fmax(worst, fmax(e, f));
            }
    cr_log_info("spdl_gemm_nt: worst relative error %.3g", worst);
}

/* contractions longer than a chunk (spdl_gemm_nt's cache blocking): a
 * kernel gradient over a 28 x 28 grid of tiles has K = 50,176 */
Test(gemm, nt_chunks_of_long_contractions)
{
    const int shapes[][3] = {{5, 3, 70001}, {64, 64, 2049}, {16, 16, 12295}, {7, 2, 513}};
    for (int t = 0; t < COUNT(shapes); t++) {
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        double e = check_nt(M, N, K, (size_t)K, (size_t)K, (size_t)N, 1);
        double f = check_nt(M, N, K, (size_t)K + 5, (size_t)K + 3, (size_t)N * 9, 9);
        cr_assert(e <= 1e-13 && f <= 1e-13, "%d x %d x %d: relative errors %.3g %.3g", M, N, K, e, f);
    }
}

/* spdl_transpose_tile: T[l][i] = X[i*rs + l] for row counts around its blocks of 8 */
Test(gemm, transpose_tile)
{
    const int ns[] = {1, 3, 7, 8, 9, 16, 17, 64, 67};
    for (int t = 0; t < COUNT(ns); t++) {
        int n = ns[t];
        size_t rs = SPDL_BT + 3;
        double *X = malloc((size_t)n * rs * sizeof *X), *T = malloc(((size_t)n * SPDL_BT + 1) * sizeof *T);
        cr_assert(X && T);
        for (size_t i = 0; i < (size_t)n * rs; i++)
            X[i] = uniform();
        T[(size_t)n * SPDL_BT] = SENTINEL;
        spdl_transpose_tile(n, X, rs, T);
        for (int i = 0; i < n; i++)
            for (int l = 0; l < SPDL_BT; l++)
                cr_assert(T[(size_t)l * n + i] == X[(size_t)i * rs + l], "n %d: T[%d][%d]", n, l, i);
        cr_assert(T[(size_t)n * SPDL_BT] == SENTINEL, "n %d: written past T", n);
        free(X), free(T);
    }
}
