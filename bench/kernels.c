/* kernels.c - the generated code's kernels in isolation, at one width w, on
 * one tile of SPDL_BT = 64 samples (what M_loss_grad runs per layer):
 *
 *   fwd   Y = K X        (w x w by w x 64; forward and recomputation)
 *   adjT  GX += K' GY    (the state's adjoint)
 *   dK    GK += GY X'    (the parameter's gradient; spdl transposes X first)
 *   tanh  one w x 64 tile through spdl_tanh, and through glibc's tanh
 *
 * each by runtime/spdl_kernels.h's spdl_gemm (what generated code runs),
 * by bench/fastgemm.h's AVX2/FMA kernel (an experiment) and by OpenBLAS's
 * cblas_dgemm. Usage: kernels W [REPEATS [L]]. With L > 1 each call takes the
 * next of L different K and GK matrices (and state tiles), as the layers of
 * a model do, so they come from wherever L layers' worth of data lives (L2,
 * L3, memory) instead of staying hot in L1/L2. Prints `key=value` lines: ns
 * per call (median of REPEATS, each >= 0.1 s of process CPU time) and
 * GFLOP/s.
 * bench/experiment.py compiles it twice: with the generated code's flags
 * and with -ffp-contract=fast added. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef double real;
#define SPDL_BT 64
#include "spdl_kernels.h"
#include "fastgemm.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { FWD, ADJT, DK, TANH_SPDL, TANH_GLIBC };
enum { SPDL, FAST, BLAS };

static int W, REPEATS = 7, L = 1, cur;

/* Called through volatile pointers, as out-of-line functions: inlined into
   this file with the strides known, gcc would specialise them, which it
   does not do for the generated code's many call sites. */
typedef void gemm_fn(int, int, int, const real *, size_t, size_t, const real *, size_t, real *, size_t, int);
static gemm_fn *volatile spdl_gemm_p = spdl_gemm, *volatile fast_gemm_p = fast_gemm;
static double *Kall, *Xall, *GKall;

/* as the generated code's activation loops are written: restrict tiles */
static void tanh_tile(size_t n, const double *restrict x, double *restrict y, int glibc)
{
    if (glibc)
        for (size_t i = 0; i < n; i++)
            y[i] = tanh(x[i]);
    else
        for (size_t i = 0; i < n; i++)
            y[i] = spdl_tanh(x[i]);
}
static double *K, *X, *Y, *GY, *GX, *GK, *T;

static void run_once(int op, int impl)
{
    const int w = W;
    if (L > 1) { /* the next layer's matrices */
        cur = (cur + 1) % L;
        K = Kall + (size_t)cur * (size_t)w * (size_t)w;
        GK = GKall + (size_t)cur * (size_t)w * (size_t)w;
        X = Xall + (size_t)cur * (size_t)w * SPDL_BT;
    }
    switch (op) {
    case FWD:
        if (impl == SPDL)
            spdl_gemm_p(w, SPDL_BT, w, K, (size_t)w, 1, X, SPDL_BT, Y, SPDL_BT, 0);
        else if (impl == FAST)
            fast_gemm_p(w, SPDL_BT, w, K, (size_t)w, 1, X, SPDL_BT, Y, SPDL_BT, 0);
        else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, w, SPDL_BT, w, 1.0, K, w, X, SPDL_BT, 0.0, Y,
                        SPDL_BT);
        break;
    case ADJT:
        if (impl == SPDL)
            spdl_gemm_p(w, SPDL_BT, w, K, 1, (size_t)w, GY, SPDL_BT, GX, SPDL_BT, 1);
        else if (impl == FAST)
            fast_gemm_p(w, SPDL_BT, w, K, 1, (size_t)w, GY, SPDL_BT, GX, SPDL_BT, 1);
        else
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, w, SPDL_BT, w, 1.0, K, w, GY, SPDL_BT, 1.0, GX,
                        SPDL_BT);
        break;
    case DK:
        if (impl == SPDL) {
            spdl_transpose_tile(w, X, SPDL_BT, T);
            spdl_gemm_p(w, w, SPDL_BT, GY, SPDL_BT, 1, T, (size_t)w, GK, (size_t)w, 1);
        } else if (impl == FAST) {
            spdl_transpose_tile(w, X, SPDL_BT, T);
            fast_gemm_p(w, w, SPDL_BT, GY, SPDL_BT, 1, T, (size_t)w, GK, (size_t)w, 1);
        } else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, w, w, SPDL_BT, 1.0, GY, SPDL_BT, X, SPDL_BT, 1.0, GK,
                        w);
        break;
    case TANH_SPDL:
    case TANH_GLIBC:
        tanh_tile((size_t)w * SPDL_BT, X, Y, op == TANH_GLIBC);
        break;
    }
}

/* median ns per call */
static double time_op(int op, int impl)
{
    double per, t0 = cpu_now();
    long n = 0;
    do {
        run_once(op, impl);
        n++;
    } while (cpu_now() - t0 < 0.02);
    per = (cpu_now() - t0) / (double)n;
    long calls = (long)(0.1 / per) + 1;
    double ns[64];
    for (int r = 0; r < REPEATS; r++) {
        double a = cpu_now();
        for (long i = 0; i < calls; i++)
            run_once(op, impl);
        ns[r] = 1e9 * (cpu_now() - a) / (double)calls;
    }
    qsort(ns, (size_t)REPEATS, sizeof *ns, cmp_double);
    return ns[REPEATS / 2];
}

static double *alloc_fill(size_t n, double scale)
{
    double *p = aligned_alloc(64, ((n * sizeof *p + 63) / 64) * 64);
    if (!p)
        exit(1);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * sin(0.37 * (double)i + 0.1);
    return p;
}

static double max_diff(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

int main(int argc, char **argv)
{
    W = argc > 1 ? atoi(argv[1]) : 64;
    REPEATS = argc > 2 ? atoi(argv[2]) : 7;
    int layers = argc > 3 ? atoi(argv[3]) : 1;
    if (W < 1 || W > 4096 || REPEATS < 1 || REPEATS > 64 || layers < 1 || layers > 1000)
        return 2;
    size_t ww = (size_t)W * (size_t)W, wt = (size_t)W * SPDL_BT;
    Kall = alloc_fill(ww * (size_t)layers, 1.0 / sqrt((double)W));
    Xall = alloc_fill(wt * (size_t)layers, 1.0);
    GKall = alloc_fill(ww * (size_t)layers, 0);
    K = Kall;
    X = Xall;
    Y = alloc_fill(wt, 0);
    GY = alloc_fill(wt, 0.5);
    GX = alloc_fill(wt, 0);
    GK = GKall;
    T = alloc_fill(wt, 0);
    /* the three implementations agree */
    double *ref = alloc_fill(ww > wt ? ww : wt, 0);
    double worst = 0;
    for (int op = FWD; op <= DK; op++) {
        size_t n = op == DK ? ww : wt;
        double *out = op == FWD ? Y : op == ADJT ? GX : GK;
        for (int impl = SPDL; impl <= BLAS; impl++) {
            memset(out, 0, n * sizeof *out);
            run_once(op, impl);
            if (impl == SPDL)
                memcpy(ref, out, n * sizeof *out);
            else
                worst = fmax(worst, max_diff(ref, out, n));
        }
    }
    printf("w=%d\nlayers=%d\nmax_diff=%.3g\n", W, layers, worst);
    L = layers; /* the check above ran on the first matrices only */
    const char *ops[] = {"fwd", "adjT", "dK"}, *impls[] = {"spdl", "fast", "blas"};
    const double flops = 2.0 * (double)W * (double)W * SPDL_BT;
    for (int op = FWD; op <= DK; op++)
        for (int impl = SPDL; impl <= BLAS; impl++) {
            double ns = time_op(op, impl);
            printf("%s_%s_ns=%.6g\n%s_%s_gflops=%.4g\n", ops[op], impls[impl], ns, ops[op], impls[impl], flops / ns);
        }
    printf("tanh_spdl_ns_per_elem=%.4g\n", time_op(TANH_SPDL, 0) / (double)wt);
    printf("tanh_glibc_ns_per_elem=%.4g\n", time_op(TANH_GLIBC, 0) / (double)wt);
    return 0;
}
