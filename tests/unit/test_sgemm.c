/* test_sgemm.c - spdl_gemm and spdl_gemm_nt in float (--precision float)
 * against long double, over shapes that are not multiples of the register
 * blocks, padded strides, acc 0 and 1, with NaN past the operands and a
 * sentinel around C. The error bound is float's: (K + 2) 2^-23 relative to
 * sum_k |A||B| + |C before|. Like test_gemm.c, compiled into the unit binary
 * (portable kernel) and with -march=x86-64-v3 and x86-64-v4 (the AVX2 and
 * AVX-512 intrinsics kernels; v4 must give v3's bits). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float real;
#define SPDL_BT 64
#include "spdl_kernels.h"

#define SSENTINEL 4321.0f

static uint64_t srng = 1234567u;
static float suniform(void)
{
    srng ^= srng << 13;
    srng ^= srng >> 7;
    srng ^= srng << 17;
    return (float)((double)(srng >> 11) * 0x1p-52 - 1.0);
}

/* nt = 0: C[i*ldc + j] (+)= sum_k A[i*ars + k*aks] B[k*ldb + j]; nt = 1:
 * C[i*ldc + j*cs] += sum_k A[i*ars + k] B[j*ldb + k]. Returns the worst
 * error in units of the bound. */
static double check_s(int nt, int M, int N, int K, size_t ars, size_t aks, size_t ldb, size_t ldc, size_t cs, int acc)
{
    size_t na = (size_t)(M ? M - 1 : 0) * ars + (size_t)(K ? K - 1 : 0) * aks + 9;
    size_t nb = nt ? (size_t)(N ? N - 1 : 0) * ldb + (size_t)K + 8 : (size_t)(K ? K - 1 : 0) * ldb + (size_t)N + 8;
    size_t nc = (size_t)(M ? M - 1 : 0) * ldc + (size_t)(N ? N - 1 : 0) * cs + 9;
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B), *C = malloc(nc * sizeof *C);
    float *C0 = malloc(nc * sizeof *C0);
    bool *inside = calloc(nc, sizeof *inside);
    cr_assert(A && B && C && C0 && inside);
    for (size_t i = 0; i < na; i++)
        A[i] = NAN;
    for (size_t i = 0; i < nb; i++)
        B[i] = NAN;
    for (size_t i = 0; i < nc; i++)
        C[i] = SSENTINEL;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            A[(size_t)i * ars + (size_t)k * aks] = suniform();
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            B[nt ? (size_t)j * ldb + (size_t)k : (size_t)k * ldb + (size_t)j] = suniform();
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + (size_t)j * cs] = suniform();
    memcpy(C0, C, nc * sizeof *C);
    if (nt)
        spdl_gemm_nt(M, N, K, A, ars, B, ldb, C, ldc, cs);
    else
        spdl_gemm(M, N, K, A, ars, aks, B, ldb, C, ldc, acc);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            size_t p = (size_t)i * ldc + (size_t)j * cs;
            inside[p] = true;
            int add = nt || acc;
            long double s = add ? C0[p] : 0.0L, mag = add ? fabsl((long double)C0[p]) : 0.0L;
            for (int k = 0; k < K; k++) {
                long double x = A[(size_t)i * ars + (size_t)k * aks];
                long double y = B[nt ? (size_t)j * ldb + (size_t)k : (size_t)k * ldb + (size_t)j];
                s += x * y;
                mag += fabsl(x * y);
            }
            cr_assert(!isnan(C[p]), "NaN at (%d, %d) of %d x %d x %d: an element outside A or B was read", i, j, M, N, K);
            double err = (double)(fabsl((long double)C[p] - s) / ((mag + 1e-30L) * (K + 2) * 0x1p-23L));
            if (err > worst)
                worst = err;
        }
    for (size_t p = 0; p < nc; p++)
        cr_assert(inside[p] || C[p] == SSENTINEL, "C[%zu] outside the %d x %d result was written", p, M, N);
    free(A), free(B), free(C), free(C0), free(inside);
    return worst;
}

static const int sMs[] = {1, 2, 3, 5, 6, 7, 8, 12, 13, 16, 17, 64};
static const int sNs[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 48, 63, 64, 65, 70, 130};
static const int sKs[] = {0, 1, 2, 7, 8, 9, 33, 64, 257};
#define SCOUNT(a) (int)(sizeof a / sizeof a[0])

Test(sgemm, float_products_within_float_rounding)
{
    double worst = 0;
    for (int mi = 0; mi < SCOUNT(sMs); mi++)
        for (int ni = 0; ni < SCOUNT(sNs); ni++)
            for (int ki = 0; ki < SCOUNT(sKs); ki++) {
                int M = sMs[mi], N = sNs[ni], K = sKs[ki];
                double e[6] = {
                    check_s(0, M, N, K, (size_t)K, 1, (size_t)N, (size_t)N, 1, 0),
                    check_s(0, M, N, K, 1, (size_t)M, (size_t)N, (size_t)N, 1, 1),
                    check_s(0, M, N, K, 1, (size_t)M + 5, (size_t)N + 3, (size_t)N + 6, 1, 1),
                    check_s(1, M, N, K, (size_t)K, 1, (size_t)K, (size_t)N, 1, 1),
                    check_s(1, M, N, K, (size_t)K + 5, 1, (size_t)K + 3, (size_t)N * 9, 9, 1),
                    check_s(0, M, N, K, (size_t)K + 3, 1, (size_t)N, (size_t)N, 1, 1),
                };
                for (int t = 0; t < 6; t++) {
                    cr_assert(e[t] <= 1, "case %d, %d x %d x %d: error %.3g times the float bound", t, M, N, K, e[t]);
                    worst = fmax(worst, e[t]);
                }
            }
    cr_log_info("float products: worst error %.3g of the bound", worst);
}

/* operands past the cache blocks: B wider than a panel, contractions longer than a chunk */
Test(sgemm, panels_and_chunks)
{
    const int shapes[][3] = {{13, 1500, 300}, {6, 8195, 64}, {64, 64, 3000}, {5, 3, 70001}};
    for (int t = 0; t < SCOUNT(shapes); t++) {
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
        double e[3] = {check_s(0, M, N, K, (size_t)K, 1, (size_t)N, (size_t)N, 1, 0),
                       check_s(0, M, N, K, 1, (size_t)M, (size_t)N, (size_t)N, 1, 1),
                       check_s(1, M, N, K, (size_t)K, 1, (size_t)K, (size_t)N, 1, 1)};
        for (int c = 0; c < 3; c++)
            cr_assert(e[c] <= 1, "case %d, %d x %d x %d: error %.3g times the float bound", c, M, N, K, e[c]);
    }
}

Test(sgemm, avx512_same_bits_as_avx2)
{
#if defined(SPDL_GEMM_AVX512) && defined(SPDL_GEMM_AVX2)
    const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {6, 64, 8}, {7, 65, 17}, {13, 130, 64}, {64, 64, 64},
                             {67, 64, 257}, {16, 16, 64}, {256, 64, 256}, {13, 1500, 300}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
        for (int acc = 0; acc <= 1; acc++)
            for (int trans = 0; trans <= 1; trans++) {
                int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
                size_t ars = trans ? 1 : (size_t)K, aks = trans ? (size_t)M : 1;
                float *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
                float *C1 = malloc((size_t)M * N * sizeof *C1), *C2 = malloc((size_t)M * N * sizeof *C2);
                cr_assert(A && B && C1 && C2);
                for (int i = 0; i < M * K; i++)
                    A[i] = suniform();
                for (int i = 0; i < K * N; i++)
                    B[i] = suniform();
                for (int i = 0; i < M * N; i++)
                    C1[i] = C2[i] = suniform();
                spdl_sgemm_avx2_(M, N, K, A, ars, aks, B, (size_t)N, C1, (size_t)N, acc);
                spdl_gemm(M, N, K, A, ars, aks, B, (size_t)N, C2, (size_t)N, acc);
                cr_assert(memcmp(C1, C2, (size_t)M * N * sizeof *C1) == 0, "%d x %d x %d acc %d trans %d: bits differ",
                          M, N, K, acc, trans);
                free(A), free(B), free(C1), free(C2);
            }
#else
    cr_log_info("not an AVX-512 build");
#endif
}
