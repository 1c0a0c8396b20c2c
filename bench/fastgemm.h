/* fastgemm.h - an experiment, not part of spdl: a drop-in replacement for
 * runtime/spdl_kernels.h's spdl_gemm (same signature and meaning,
 *   C[i][j] (+)= sum_k A[i*ars + k*aks] * B[k*ldb + j])
 * written with AVX2/FMA intrinsics, to measure what a register-blocked
 * kernel that really uses FMA gives on the generated code's products. The
 * micro-kernel holds a 6 x 8 block of C in 12 ymm accumulators (per k: 6
 * elements of A broadcast, 2 vectors of a B row loaded, 12 FMAs). Rows past a
 * multiple of 6 go through a 1 x 8 kernel, columns past a multiple of 8
 * through scalar fma().
 * Needs -mavx2 -mfma (or -march=x86-64-v3). */
#ifndef BENCH_FASTGEMM_H
#define BENCH_FASTGEMM_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

static inline __attribute__((unused)) void fast_gemm(int M, int N, int K, const double *restrict A, size_t ars,
                                                     size_t aks, const double *restrict B, size_t ldb,
                                                     double *restrict C, size_t ldc, int acc)
{
    int i = 0;
    for (; i + 6 <= M; i += 6) {
        const double *a0 = A + (size_t)i * ars;
        int j = 0;
        for (; j + 8 <= N; j += 8) {
            __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
            __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
            __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
            __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
            __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
            __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
            const double *b = B + j;
            const double *a = a0;
            for (int k = 0; k < K; k++, b += ldb, a += aks) {
                __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4), x;
                x = _mm256_broadcast_sd(a);
                c00 = _mm256_fmadd_pd(x, b0, c00), c01 = _mm256_fmadd_pd(x, b1, c01);
                x = _mm256_broadcast_sd(a + ars);
                c10 = _mm256_fmadd_pd(x, b0, c10), c11 = _mm256_fmadd_pd(x, b1, c11);
                x = _mm256_broadcast_sd(a + 2 * ars);
                c20 = _mm256_fmadd_pd(x, b0, c20), c21 = _mm256_fmadd_pd(x, b1, c21);
                x = _mm256_broadcast_sd(a + 3 * ars);
                c30 = _mm256_fmadd_pd(x, b0, c30), c31 = _mm256_fmadd_pd(x, b1, c31);
                x = _mm256_broadcast_sd(a + 4 * ars);
                c40 = _mm256_fmadd_pd(x, b0, c40), c41 = _mm256_fmadd_pd(x, b1, c41);
                x = _mm256_broadcast_sd(a + 5 * ars);
                c50 = _mm256_fmadd_pd(x, b0, c50), c51 = _mm256_fmadd_pd(x, b1, c51);
            }
            double *c = C + (size_t)i * ldc + j;
#define FG_STORE(r, lo, hi)                                                                                     \
    do {                                                                                                        \
        double *cr = c + (size_t)(r) * ldc;                                                                     \
        if (acc) {                                                                                              \
            lo = _mm256_add_pd(lo, _mm256_loadu_pd(cr));                                                         \
            hi = _mm256_add_pd(hi, _mm256_loadu_pd(cr + 4));                                                     \
        }                                                                                                       \
        _mm256_storeu_pd(cr, lo);                                                                               \
        _mm256_storeu_pd(cr + 4, hi);                                                                           \
    } while (0)
            FG_STORE(0, c00, c01);
            FG_STORE(1, c10, c11);
            FG_STORE(2, c20, c21);
            FG_STORE(3, c30, c31);
            FG_STORE(4, c40, c41);
            FG_STORE(5, c50, c51);
#undef FG_STORE
        }
        for (; j < N; j++)
            for (int r = 0; r < 6; r++) {
                double s = 0;
                for (int k = 0; k < K; k++)
                    s = fma(a0[(size_t)r * ars + (size_t)k * aks], B[(size_t)k * ldb + j], s);
                double *cr = C + (size_t)(i + r) * ldc + j;
                *cr = acc ? *cr + s : s;
            }
    }
    for (; i < M; i++) {
        const double *a0 = A + (size_t)i * ars;
        int j = 0;
        for (; j + 8 <= N; j += 8) {
            __m256d c0 = _mm256_setzero_pd(), c1 = _mm256_setzero_pd();
            for (int k = 0; k < K; k++) {
                __m256d x = _mm256_broadcast_sd(a0 + (size_t)k * aks);
                c0 = _mm256_fmadd_pd(x, _mm256_loadu_pd(B + (size_t)k * ldb + j), c0);
                c1 = _mm256_fmadd_pd(x, _mm256_loadu_pd(B + (size_t)k * ldb + j + 4), c1);
            }
            double *cr = C + (size_t)i * ldc + j;
            if (acc) {
                c0 = _mm256_add_pd(c0, _mm256_loadu_pd(cr));
                c1 = _mm256_add_pd(c1, _mm256_loadu_pd(cr + 4));
            }
            _mm256_storeu_pd(cr, c0);
            _mm256_storeu_pd(cr + 4, c1);
        }
        for (; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s = fma(a0[(size_t)k * aks], B[(size_t)k * ldb + j], s);
            C[(size_t)i * ldc + j] = acc ? C[(size_t)i * ldc + j] + s : s;
        }
    }
}

#endif
