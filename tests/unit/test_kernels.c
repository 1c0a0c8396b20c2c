/* test_kernels.c - the elementary functions of runtime/spdl_kernels.h
 * (exp, expm1, tanh, sigmoid, softplus, log1p01) against glibc's long double
 * functions, in ulps of the double result, over random points spread both
 * uniformly and log-uniformly in magnitude (so tiny arguments and subnormal
 * results are covered), and at the special values: +-0, tiny, large, +-inf,
 * NaN. The bounds asserted here are the ones the header states. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

typedef double real;
#define SPDL_BT 64
#include "spdl_kernels.h"

/* deterministic points: splitmix64 (spdl_rng_next) with a fixed seed */
static double unit_uniform(uint64_t *s) { return (double)(spdl_rng_next(s) >> 11) * 0x1.0p-53; }

/* |y - ref| in units of the last place of ref rounded to double (2^-1074
 * for subnormals); NaN against NaN and equal infinities count 0. */
static double ulps(double y, long double ref)
{
    double r = (double)ref;
    if (isnan(r) || isnan(y))
        return isnan(r) && isnan(y) ? 0 : INFINITY;
    if (isinf(r) || isinf(y))
        return y == r ? 0 : INFINITY;
    int e;
    frexp(r, &e);
    double ulp = r == 0 ? 0x1p-1074 : fmax(ldexp(1.0, e - 53), 0x1p-1074);
    return (double)(fabsl((long double)y - ref) / ulp);
}

typedef double (*kernel_fn)(double);
typedef long double (*ref_fn)(long double);

/* the largest error over n points in [lo, hi]: half uniform, half with a
 * log-uniform magnitude in [2^-40, max(|lo|, |hi|)] and a random sign */
static double worst(kernel_fn f, ref_fn g, double lo, double hi, long n, uint64_t seed, double *at)
{
    double m = fmax(fabs(lo), fabs(hi)), w = 0;
    for (long i = 0; i < n; i++) {
        double x;
        if (i % 2 == 0) {
            x = lo + (hi - lo) * unit_uniform(&seed);
        } else {
            x = exp2(-40.0 + (log2(m) + 40.0) * unit_uniform(&seed));
            if (spdl_rng_next(&seed) & 1)
                x = -x;
            if (x < lo || x > hi)
                x = lo + (hi - lo) * unit_uniform(&seed);
        }
        double e = ulps(f(x), g((long double)x));
        if (e > w) {
            w = e;
            *at = x;
        }
    }
    return w;
}

static double k_exp(double x) { return spdl_exp(x); }
static double k_expm1(double x) { return spdl_expm1(x); }
static double k_tanh(double x) { return spdl_tanh(x); }
static double k_sigmoid(double x) { return spdl_sigmoid(x); }
static double k_softplus(double x) { return spdl_softplus(x); }
static double k_log1p01(double x) { return spdl_log1p01(x); }

static long double r_sigmoid(long double x) { return x < 0 ? expl(x) / (1 + expl(x)) : 1 / (1 + expl(-x)); }
static long double r_softplus(long double x) { return (x > 0 ? x : 0) + log1pl(expl(-fabsl(x))); }

#define ACCURACY(fn, ref, lo, hi, n, bound, seed)                                                     \
    do {                                                                                             \
        double at = 0, w = worst(fn, ref, lo, hi, n, seed, &at);                                     \
        cr_assert(w <= (bound), #fn " on [%g, %g]: %.3f ulp at %.17g (bound %g)", (double)(lo),      \
                  (double)(hi), w, at, (double)(bound));                                             \
    } while (0)

Test(kernels, tanh_accuracy)
{
    ACCURACY(k_tanh, tanhl, -22.0, 22.0, 10000000, 2.5, 1);
}

Test(kernels, exp_accuracy)
{
    /* down to the subnormal results and up to the largest finite one */
    ACCURACY(k_exp, expl, -745.0, 709.78, 4000000, 1.5, 2);
    ACCURACY(k_exp, expl, -745.13, -708.0, 400000, 1.5, 3);
}

Test(kernels, expm1_accuracy)
{
    ACCURACY(k_expm1, expm1l, -40.0, 709.78, 4000000, 2.5, 4);
}

Test(kernels, sigmoid_accuracy)
{
    ACCURACY(k_sigmoid, r_sigmoid, -745.0, 40.0, 4000000, 3.0, 5);
}

Test(kernels, softplus_accuracy)
{
    ACCURACY(k_softplus, r_softplus, -745.0, 745.0, 4000000, 3.0, 6);
}

Test(kernels, log1p01_accuracy)
{
    ACCURACY(k_log1p01, log1pl, 0.0, 1.0, 4000000, 2.5, 7);
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

Test(kernels, tanh_special_values)
{
    cr_assert(same_bits(spdl_tanh(0.0), 0.0));
    cr_assert(same_bits(spdl_tanh(-0.0), -0.0));
    /* tiny: tanh(x) rounds to x */
    double tiny[] = {0x1p-1074, 0x1p-1022, 1e-300, 1e-100, 0x1p-30, 1e-9};
    for (size_t i = 0; i < sizeof tiny / sizeof *tiny; i++) {
        cr_assert(same_bits(spdl_tanh(tiny[i]), tiny[i]), "tanh(%g) = %.17g", tiny[i], spdl_tanh(tiny[i]));
        cr_assert(same_bits(spdl_tanh(-tiny[i]), -tiny[i]), "tanh(-%g) = %.17g", tiny[i], spdl_tanh(-tiny[i]));
    }
    /* large: +-1 exactly */
    double big[] = {19.5, 20.0, 25.0, 700.0, 1e300, 0x1.fffffffffffffp1023, INFINITY};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        cr_assert_eq(spdl_tanh(big[i]), 1.0, "tanh(%g) = %.17g", big[i], spdl_tanh(big[i]));
        cr_assert_eq(spdl_tanh(-big[i]), -1.0, "tanh(-%g) = %.17g", big[i], spdl_tanh(-big[i]));
    }
    cr_assert(isnan(spdl_tanh(NAN)));
    cr_assert(isnan(spdl_tanh(-NAN)));
    /* odd, and below 1 in magnitude short of 19 */
    for (double x = 0.01; x < 19.0; x *= 1.1) {
        cr_assert(same_bits(spdl_tanh(-x), -spdl_tanh(x)));
        cr_assert(spdl_tanh(x) <= 1.0 && spdl_tanh(x) > 0.0);
    }
}

Test(kernels, exp_special_values)
{
    cr_assert_eq(spdl_exp(0.0), 1.0);
    cr_assert_eq(spdl_exp(-0.0), 1.0);
    cr_assert(ulps(spdl_exp(1.0), expl(1.0L)) <= 1.0);
    cr_assert_eq(spdl_exp(-INFINITY), 0.0);
    cr_assert_eq(spdl_exp(INFINITY), INFINITY);
    cr_assert(isnan(spdl_exp(NAN)));
    cr_assert(isnan(spdl_exp(-NAN)));
    double over[] = {709.79, 710.0, 800.0, 1000.0, 1e5, 1e300};
    for (size_t i = 0; i < sizeof over / sizeof *over; i++) {
        cr_assert_eq(spdl_exp(over[i]), INFINITY, "exp(%g) = %g", over[i], spdl_exp(over[i]));
        cr_assert_eq(spdl_exp(-over[i] - 40.0), 0.0, "exp(%g) = %g", -over[i] - 40.0, spdl_exp(-over[i] - 40.0));
    }
    cr_assert(spdl_exp(709.78) > 1.7e308 && isfinite(spdl_exp(709.78)));
    /* subnormal results */
    cr_assert(ulps(spdl_exp(-740.0), expl(-740.0L)) <= 1.5);
    cr_assert(ulps(spdl_exp(-745.0), expl(-745.0L)) <= 1.5);
    cr_assert(spdl_exp(-745.0) > 0.0);
    cr_assert_eq(spdl_exp(-745.2), 0.0);
    /* expm1 */
    cr_assert_eq(spdl_expm1(0.0), 0.0);
    cr_assert_eq(spdl_expm1(1e-300), 1e-300);
    cr_assert_eq(spdl_expm1(-1e-300), -1e-300);
    cr_assert_eq(spdl_expm1(-INFINITY), -1.0);
    cr_assert_eq(spdl_expm1(-50.0), -1.0);
    cr_assert_eq(spdl_expm1(INFINITY), INFINITY);
    cr_assert_eq(spdl_expm1(710.0), INFINITY);
    cr_assert(isnan(spdl_expm1(NAN)));
}

Test(kernels, sigmoid_softplus_special_values)
{
    cr_assert_eq(spdl_sigmoid(0.0), 0.5);
    cr_assert_eq(spdl_sigmoid(-0.0), 0.5);
    cr_assert_eq(spdl_sigmoid(INFINITY), 1.0);
    cr_assert_eq(spdl_sigmoid(40.0), 1.0);
    cr_assert_eq(spdl_sigmoid(-INFINITY), 0.0);
    cr_assert_eq(spdl_sigmoid(-800.0), 0.0);
    cr_assert(spdl_sigmoid(-740.0) > 0.0); /* subnormal */
    cr_assert(ulps(spdl_sigmoid(-740.0), expl(-740.0L)) <= 3.0);
    cr_assert(isnan(spdl_sigmoid(NAN)));
    cr_assert(isnan(spdl_sigmoid(-NAN)));
    cr_assert(ulps(spdl_softplus(0.0), logl(2.0L)) <= 1.0);
    cr_assert_eq(spdl_softplus(-INFINITY), 0.0);
    cr_assert_eq(spdl_softplus(INFINITY), INFINITY);
    cr_assert_eq(spdl_softplus(800.0), 800.0);
    cr_assert_eq(spdl_softplus(-800.0), 0.0);
    cr_assert(isnan(spdl_softplus(NAN)));
}
