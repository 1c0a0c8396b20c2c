/* dgemm.c - the machine's single-thread dgemm rate: OpenBLAS cblas_dgemm,
 * C = A B with n x n row-major doubles (n = 1024 unless given), REPEATS
 * repeats (9 unless given) of as many calls as fill 0.3 s. Prints `key=value`
 * lines: the kernels OpenBLAS chose, the rate of each repeat and the median,
 * in GFLOP/s (2 n^3 flops per call), by the wall clock and by the process's
 * CPU time. Run with OPENBLAS_NUM_THREADS=1.
 *   dgemm [N [REPEATS [double|float]]]   float: cblas_sgemm on floats instead */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu_now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1024;
    int repeats = argc > 2 ? atoi(argv[2]) : 9;
    int single = argc > 3 && strcmp(argv[3], "float") == 0;
    if (n < 16 || repeats < 1 || repeats > 1000 || (argc > 3 && !single && strcmp(argv[3], "double") != 0))
        return 2;
    size_t nn = (size_t)n * (size_t)n;
    double *A = malloc(nn * sizeof *A), *B = malloc(nn * sizeof *B), *C = malloc(nn * sizeof *C);
    float *As = malloc(nn * sizeof *As), *Bs = malloc(nn * sizeof *Bs), *Cs = malloc(nn * sizeof *Cs);
    if (!A || !B || !C || !As || !Bs || !Cs)
        return 1;
    for (size_t i = 0; i < nn; i++) {
        A[i] = (double)(i % 17) / 17.0 - 0.5;
        B[i] = (double)(i % 13) / 13.0 - 0.5;
        C[i] = 0;
        As[i] = (float)A[i], Bs[i] = (float)B[i], Cs[i] = 0;
    }
#define GEMM()                                                                                                    \
    (single ? cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, As, n, Bs, n, 0.0f, Cs, n)    \
            : cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, A, n, B, n, 0.0, C, n))
    double t0 = now();
    int calls = 0;
    do {
        GEMM();
        calls++;
    } while (now() - t0 < 0.1);
    double per = (now() - t0) / calls;
    int k = (int)(0.3 / per) + 1;
    double *rate = malloc(2 * (size_t)repeats * sizeof *rate), *crate = rate + repeats;
    if (!rate)
        return 1;
    const double flops = 2.0 * (double)n * (double)n * (double)n * k;
    for (int r = 0; r < repeats; r++) {
        double a = now(), c = cpu_now();
        for (int i = 0; i < k; i++)
            GEMM();
        rate[r] = flops / (now() - a) * 1e-9;
        crate[r] = flops / (cpu_now() - c) * 1e-9;
    }
    printf("precision=%s\ncorename=%s\nconfig=%s\nn=%d\ncalls_per_repeat=%d\nrepeats_gflops=",
           single ? "float" : "double", openblas_get_corename(), openblas_get_config(), n, k);
    for (int r = 0; r < repeats; r++)
        printf("%s%.4g", r ? "," : "", rate[r]);
    qsort(rate, (size_t)repeats, sizeof *rate, cmp_double);
    qsort(crate, (size_t)repeats, sizeof *crate, cmp_double);
    printf("\nmedian_gflops=%.4g\nmin_gflops=%.4g\nmax_gflops=%.4g\nmedian_cpu_gflops=%.4g\ncheck=%.6g\n",
           rate[repeats / 2], rate[0], rate[repeats - 1], crate[repeats / 2],
           single ? (double)Cs[nn / 2 + 3] : C[nn / 2 + 3]);
    free(A), free(B), free(C), free(As), free(Bs), free(Cs), free(rate);
    return 0;
}
