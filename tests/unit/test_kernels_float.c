/* test_kernels_float.c - the float elementary functions of
 * runtime/spdl_kernels.h, which float builds compute in float lanes
 * (spdl_expf, expm1f, tanhf, sigmoidf, softplusf, log1p01f, logf), over
 * every 251st float of the whole range (every binade, subnormals, both
 * signs, infinities and NaNs) and at the special values. Two measures:
 * the error in ulps of the float result against glibc's double function
 * (or a formula in double for sigmoid and softplus), which is exact enough
 * to be the true value, and the distance in floats to glibc's own float
 * function. The kernels run in loops over arrays, as in generated code, so
 * where the Makefile builds this file with -march=x86-64-v3 or -v4 the
 * vectorised code is what is tested. The bounds are the header's. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

typedef float real;
#define SPDL_BT 64
#include "spdl_kernels.h"

#define BLOCK 4096
#ifndef STRIDE
#define STRIDE 251u /* 17 10^6 points a function */
#endif

/* |y - ref| in ulps of ref rounded to float (2^-149 below 2^-126); NaN against NaN and equal infinities
 * count 0, a float for an infinite reference (or the reverse) counts infinitely many */
static double ulps(float y, double ref)
{
    if (isnan(ref) || isnan(y))
        return isnan(ref) && isnan(y) ? 0 : INFINITY;
    float rf = (float)ref;
    if (isinf(rf) || isinf(y))
        return y == rf ? 0 : INFINITY;
    int e;
    frexp(ref, &e);
    double ulp = fmax(ldexp(1.0, e - 24), 0x1p-149);
    return fabs((double)y - ref) / ulp;
}

/* how many floats lie from a to b (0 when equal, or both NaN) */
static double distance(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) ? 0 : INFINITY;
    int64_t ia = (int32_t)spdl_bitsf(a), ib = (int32_t)spdl_bitsf(b);
    ia = ia < 0 ? INT32_MIN - ia : ia; /* order the negatives below the positives */
    ib = ib < 0 ? INT32_MIN - ib : ib;
    return (double)(ia > ib ? ia - ib : ib - ia);
}

static double r_sigmoid(double x) { return x < 0 ? exp(x) / (1 + exp(x)) : 1 / (1 + exp(-x)); }
static double r_softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }
static float f_sigmoid(float x) { return (float)r_sigmoid(x); }
static float f_softplus(float x) { return (float)r_softplus(x); }

/* y[i] = f(x[i]): the loops the compilers vectorise */
#define BLOCK_FN(f)                                                                                                  \
    static void block_##f(const float *restrict x, float *restrict y)                                                \
    {                                                                                                                \
        for (int i = 0; i < BLOCK; i++)                                                                              \
            y[i] = f(x[i]);                                                                                          \
    }
BLOCK_FN(spdl_expf)
BLOCK_FN(spdl_expm1f)
BLOCK_FN(spdl_tanhf)
BLOCK_FN(spdl_sigmoidf)
BLOCK_FN(spdl_softplusf)
BLOCK_FN(spdl_log1p01f)
BLOCK_FN(spdl_logf)

typedef void (*block_fn)(const float *restrict, float *restrict);

typedef struct Worst {
    double err, dist; /* ulps against the double reference, floats from glibc's float function */
    float err_at, dist_at;
} Worst;

/* the floats with bit patterns lo, lo + STRIDE, ... below hi, through the kernel in blocks */
static Worst sweep(block_fn f, double (*ref)(double), float (*ref_f)(float), uint32_t lo, uint32_t hi)
{
    static float x[BLOCK], y[BLOCK];
    Worst w = {0, 0, 0, 0};
    uint64_t u = lo;
    while (u < hi) {
        int n = 0;
        for (; n < BLOCK && u < hi; n++, u += STRIDE)
            x[n] = spdl_from_bitsf((uint32_t)u);
        for (int i = n; i < BLOCK; i++)
            x[i] = 0;
        f(x, y);
        for (int i = 0; i < n; i++) {
            double e = ulps(y[i], ref(x[i])), d = distance(y[i], ref_f(x[i]));
            if (e > w.err)
                w.err = e, w.err_at = x[i];
            if (d > w.dist)
                w.dist = d, w.dist_at = x[i];
        }
    }
    return w;
}

/* both halves of the range: [+0, +NaN] and [-0, -NaN] */
static void check_all(const char *name, block_fn f, double (*ref)(double), float (*ref_f)(float), double bound)
{
    Worst a = sweep(f, ref, ref_f, 0, 0x80000000u), b = sweep(f, ref, ref_f, 0x80000000u, 0xffffffffu);
    Worst w = a.err >= b.err ? a : b;
    w.dist = fmax(a.dist, b.dist);
    w.dist_at = a.dist >= b.dist ? a.dist_at : b.dist_at;
    cr_assert(w.err <= bound, "%s: %.3f ulp at %a (bound %g)", name, w.err, (double)w.err_at, bound);
    cr_assert(w.dist <= 3, "%s: %g floats from glibc's at %a", name, w.dist, (double)w.dist_at);
}

Test(kernels_float, expf) { check_all("spdl_expf", block_spdl_expf, exp, expf, 1.5); }
Test(kernels_float, expm1f) { check_all("spdl_expm1f", block_spdl_expm1f, expm1, expm1f, 2.0); }
Test(kernels_float, tanhf) { check_all("spdl_tanhf", block_spdl_tanhf, tanh, tanhf, 2.5); }
Test(kernels_float, sigmoidf) { check_all("spdl_sigmoidf", block_spdl_sigmoidf, r_sigmoid, f_sigmoid, 2.5); }
Test(kernels_float, softplusf) { check_all("spdl_softplusf", block_spdl_softplusf, r_softplus, f_softplus, 2.5); }
Test(kernels_float, logf) { check_all("spdl_logf", block_spdl_logf, log, logf, 1.5); }

Test(kernels_float, log1p01f)
{
    /* its domain [0, 1] */
    Worst w = sweep(block_spdl_log1p01f, log1p, log1pf, 0, spdl_bitsf(1.0f) + 1);
    cr_assert(w.err <= 1.5, "spdl_log1p01f: %.3f ulp at %a", w.err, (double)w.err_at);
    cr_assert(w.dist <= 3, "spdl_log1p01f: %g floats from glibc's at %a", w.dist, (double)w.dist_at);
}

static int same_bits(float a, float b) { return spdl_bitsf(a) == spdl_bitsf(b); }

Test(kernels_float, special_values)
{
    const float tiny = 0x1p-149f, big[] = {10.0f, 20.0f, 88.0f, 1e30f, 0x1.fffffep127f, INFINITY};
    /* +-0 and tiny arguments kept where the function is x near 0 */
    cr_assert(same_bits(spdl_tanhf(0.0f), 0.0f) && same_bits(spdl_tanhf(-0.0f), -0.0f));
    cr_assert(same_bits(spdl_expm1f(0.0f), 0.0f) && same_bits(spdl_expm1f(-0.0f), -0.0f));
    cr_assert(same_bits(spdl_log1p01f(0.0f), 0.0f));
    for (float x = tiny; x < 0x1p-25f; x *= 7.0f) {
        cr_assert(same_bits(spdl_tanhf(x), x) && same_bits(spdl_tanhf(-x), -x), "tanhf(%a)", (double)x);
        cr_assert(same_bits(spdl_expm1f(x), x) && same_bits(spdl_expm1f(-x), -x), "expm1f(%a)", (double)x);
        cr_assert(same_bits(spdl_log1p01f(x), x), "log1p01f(%a)", (double)x);
    }
    /* saturation */
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        float x = big[i];
        cr_assert_eq(spdl_tanhf(x), 1.0f, "tanhf(%g)", (double)x);
        cr_assert_eq(spdl_tanhf(-x), -1.0f, "tanhf(-%g)", (double)x);
        if (x >= 20) {
            cr_assert_eq(spdl_sigmoidf(x), 1.0f, "sigmoidf(%g)", (double)x);
            cr_assert_eq(spdl_expm1f(-x), -1.0f, "expm1f(-%g)", (double)x);
        }
    }
    cr_assert_eq(spdl_sigmoidf(INFINITY), 1.0f);
    cr_assert_eq(spdl_sigmoidf(-INFINITY), 0.0f);
    cr_assert_eq(spdl_sigmoidf(0.0f), 0.5f);
    cr_assert_eq(spdl_sigmoidf(-0.0f), 0.5f);
    cr_assert_eq(spdl_sigmoidf(-104.0f), 0.0f);
    cr_assert(spdl_sigmoidf(-103.0f) > 0.0f && spdl_sigmoidf(-103.0f) < 0x1p-126f); /* subnormal */
    cr_assert_eq(spdl_softplusf(INFINITY), INFINITY);
    cr_assert_eq(spdl_softplusf(-INFINITY), 0.0f);
    cr_assert_eq(spdl_softplusf(1e30f), 1e30f);
    cr_assert_eq(spdl_softplusf(-200.0f), 0.0f);
    cr_assert(spdl_softplusf(-100.0f) > 0.0f && spdl_softplusf(-100.0f) < 0x1p-126f);
    /* exp: overflow, underflow through the subnormals to 0 */
    cr_assert_eq(spdl_expf(0.0f), 1.0f);
    cr_assert_eq(spdl_expf(-0.0f), 1.0f);
    cr_assert_eq(spdl_expf(INFINITY), INFINITY);
    cr_assert_eq(spdl_expf(-INFINITY), 0.0f);
    cr_assert_eq(spdl_expf(88.73f), INFINITY);
    cr_assert(spdl_expf(88.72f) > 3.3e38f && spdl_expf(88.72f) < INFINITY);
    cr_assert(spdl_expf(-103.9f) > 0.0f && spdl_expf(-103.9f) < 0x1p-126f);
    cr_assert_eq(spdl_expf(-104.0f), 0.0f);
    cr_assert_eq(spdl_expf(-1e30f), 0.0f);
    cr_assert_eq(spdl_expm1f(INFINITY), INFINITY);
    cr_assert_eq(spdl_expm1f(-INFINITY), -1.0f);
    cr_assert_eq(spdl_expm1f(89.0f), INFINITY);
    /* log */
    cr_assert_eq(spdl_logf(1.0f), 0.0f);
    cr_assert_eq(spdl_logf(0.0f), -INFINITY);
    cr_assert_eq(spdl_logf(-0.0f), -INFINITY);
    cr_assert_eq(spdl_logf(INFINITY), INFINITY);
    cr_assert(isnan(spdl_logf(-1.0f)) && isnan(spdl_logf(-INFINITY)) && isnan(spdl_logf(-tiny)));
    cr_assert(ulps(spdl_logf(tiny), log(0x1p-149)) <= 1.0);
    cr_assert(ulps(spdl_logf(0x1.fffffep127f), log(0x1.fffffep127)) <= 1.0);
    /* NaN stays NaN */
    const float nans[] = {NAN, -NAN};
    for (int i = 0; i < 2; i++) {
        float x = nans[i];
        cr_assert(isnan(spdl_expf(x)) && isnan(spdl_expm1f(x)) && isnan(spdl_tanhf(x)) && isnan(spdl_sigmoidf(x)) &&
                  isnan(spdl_softplusf(x)) && isnan(spdl_logf(x)) && isnan(spdl_log1p01f(x)));
    }
    /* tanh odd, and below 1 short of 8 */
    for (float x = 0.01f; x < 8.0f; x *= 1.1f) {
        cr_assert(same_bits(spdl_tanhf(-x), -spdl_tanhf(x)));
        cr_assert(spdl_tanhf(x) < 1.0f && spdl_tanhf(x) > 0.0f);
    }
}

/* the _r names choose the float kernels in a float build */
Test(kernels_float, real_names)
{
    cr_assert(same_bits(spdl_exp_r(0.75f), spdl_expf(0.75f)));
    cr_assert(same_bits(spdl_tanh_r(0.75f), spdl_tanhf(0.75f)));
    cr_assert(same_bits(spdl_sigmoid_r(-0.75f), spdl_sigmoidf(-0.75f)));
    cr_assert(same_bits(spdl_softplus_r(-0.75f), spdl_softplusf(-0.75f)));
    cr_assert(same_bits(spdl_log_r(0.75f), spdl_logf(0.75f)));
    cr_assert(same_bits(spdl_expm1_r(0.75f), spdl_expm1f(0.75f)));
    cr_assert_eq(sizeof(spdl_select_r(1, 1.0f, 2.0f)), sizeof(float));
}
