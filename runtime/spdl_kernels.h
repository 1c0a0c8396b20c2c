/* spdl_kernels.h - the numerical kernels of generated code.
 *
 * spdlc pastes this file into every generated M.c, so generated code needs
 * no library; libspdl includes it too, so there is one implementation. Every
 * per-sample array is a tile: `n` rows of SPDL_BT lanes (one lane per sample)
 * and every loop runs over lanes innermost, so gcc and clang vectorise them
 * at -O2 without -ffast-math. The elementary functions are branch-free for
 * the same reason (a select around a division or a product stops gcc's
 * if-conversion under the default -ftrapping-math).
 *
 * Accuracy, in double, against glibc's long double functions (80-bit on
 * x86) over the whole range, subnormal results included; the largest error
 * seen over 10^7 random points per function, built by gcc and clang, with
 * and without FMA (tests/unit/test_kernels.c checks 10^7 for tanh, 4 10^6
 * for the others, and the special values):
 * spdl_exp 0.98 ulp, spdl_expm1 1.91 ulp, spdl_tanh 2.04 ulp, spdl_sigmoid
 * 2.34 ulp, spdl_softplus 2.70 ulp, spdl_log1p01 1.96 ulp on [0, 1]; the
 * tests assert 1.5, 2.5, 2.5, 3, 3 and 2.5. tanh keeps +-0, gives x for
 * tiny x and +-1 from |x| >= 20 on; exp overflows to inf and underflows to
 * subnormals and 0; NaN stays NaN.
 *
 * Float builds have float versions of them (spdl_expf, spdl_expm1f,
 * spdl_tanhf, spdl_sigmoidf, spdl_softplusf, spdl_log1p01f and spdl_logf,
 * the log of the cross-entropy kernels), computed in float lanes, which
 * generated code and the tile kernels call by the names spdl_exp_r, ...:
 * the kernel of `real`'s precision. Their largest error, against glibc's
 * double functions (the exact value, as far as a float can tell; formulas
 * in double for sigmoid and softplus), over every float built by gcc -O2
 * -march=x86-64-v4, and over every 7th float at -O2 (no FMA) and by clang
 * -march=x86-64-v3; in brackets the most floats between a result and
 * glibc's float function (which has errors of its own):
 * spdl_expf 0.98 ulp (1), spdl_expm1f 1.46 ulp (2), spdl_tanhf 1.93 ulp (3),
 * spdl_sigmoidf 2.40 ulp (2), spdl_softplusf 1.97 ulp (2), spdl_logf
 * 0.84 ulp (1), spdl_log1p01f 1.28 ulp on [0, 1] (1).
 * tests/unit/test_kernels_float.c checks every 251st float, at -O2 and at
 * -march=x86-64-v3 and -v4, against 1.5, 2, 2.5, 2.5, 2.5, 1.5 and 1.5 ulp
 * and 3 floats from glibc.
 * tanhf and expm1f keep +-0 and give x below 2^-25, tanhf and sigmoidf
 * reach +-1 and 1, expm1f -1; expf overflows to inf and underflows to
 * subnormals and 0, logf gives -inf at +-0 and NaN below; NaN stays NaN.
 * Double builds still call libm's log (cross-entropy, log-determinants)
 * and sqrt, both builds pow (`x^c` but for c = 1/2, 1, 2, 3) and the
 * parameter code cos, log and sqrt, so generated code links with -lm
 * either way.
 *
 * Requires: SPDL_BT (lanes per tile) and the type `real` defined before
 * inclusion, <stdint.h>, <string.h>, <math.h>. */

/* A loop over a tile's lanes, which carries no dependence from one lane to
 * the next; gcc is told so: at -O2 it neither versions a loop for aliasing
 * nor sees that buffers at offsets from one work buffer, one of them moved
 * by the layer index k, do not overlap, and it left such loops scalar (a
 * relu's adjoint, 8% of a digits_c4 float step; the transforms' 16 or 36
 * streams). clang checks at run time. */
#if defined(__GNUC__) && !defined(__clang__)
#define SPDL_LANES _Pragma("GCC ivdep") for (int l = 0; l < SPDL_BT; l++)
#else
#define SPDL_LANES for (int l = 0; l < SPDL_BT; l++)
#endif

/* A model uses some kernels only; the others must not warn. */
#if defined(__GNUC__) || defined(__clang__)
#define SPDL_KERNEL static inline __attribute__((unused))
#else
#define SPDL_KERNEL static inline
#endif

/* The generated model's own functions (prepare, layers, their adjoints, the
 * tile loops). gcc 12 at -O1 and above drops a call to one of them whose
 * summary its interprocedural analyses (modref, pure-const, reference)
 * compute wrongly after induction-variable optimisation has rewritten its
 * loops' addresses: M_loss_grad lost the parameter-code adjoint and returned
 * a gradient 10% off (tests/difftest/regress/f7_gcc_opt_gradient.spn).
 * noipa keeps every call; the functions are large and called once per call
 * or per layer: a training step of robust_digits took 2.52-2.58 ms with
 * noipa against 2.57-2.61 ms inlined, spirals 0.815-0.884 against
 * 0.808-0.820 ms (batch 256, -O2 -march=x86-64-v3, same run). A block
 * through which no gradient flows has a layer adjoint nothing calls:
 * unused, so it does not warn. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define SPDL_MODEL_FN static __attribute__((noipa, unused))
#elif defined(__GNUC__) || defined(__clang__)
#define SPDL_MODEL_FN static __attribute__((unused))
#else
#define SPDL_MODEL_FN static
#endif

/* In double, generated code reads the caller's parameters in place and
 * adds the gradient into the caller's array: each call stores their
 * addresses in the work buffer, and this reads one back (for the tile
 * functions: theta must stay as it was from M_tile_prepare to
 * M_tile_finish). Writable in type, so theta can be handed to the kernels
 * like any buffer: nothing writes a parameter. NULL for M_vjp without
 * dtheta, whose tiles then skip the parameters' adjoints. */
SPDL_KERNEL real *spdl_pointer_at(const real *slot)
{
    real *p;
    memcpy(&p, slot, sizeof p);
    return p;
}

/* a if c else b, as bit operations: a select the compilers keep branch-free
 * even when an arm holds a constant they could fold into a branch. (gcc
 * vectorises its int-to-mask conversion on x86 only from SSE4.2 on.) */
SPDL_KERNEL double spdl_select(int c, double a, double b)
{
    uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)(c != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

SPDL_KERNEL double spdl_clamp(double x, double lo, double hi)
{
    x = spdl_select(x < lo, lo, x);
    return spdl_select(x > hi, hi, x);
}

SPDL_KERNEL uint64_t spdl_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

SPDL_KERNEL double spdl_from_bits(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The elementary functions' own selects: min(x, c), x clamped to [-c, c]
 * (c > 0 finite; NaN kept) and a if x < 0 else b (either for -0 and NaN,
 * where the callers do not care). By spdl_select, except
 * for gcc on x86 without SSE4.2, which would leave every loop calling them
 * scalar: there the masks are sign bits shifted across the word. A NaN x
 * comes back from x - c, c - x and x + c as itself (x86's rule for a NaN
 * operand), so the differences' signs agree and the masks keep it. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__SSE4_2__)
SPDL_KERNEL uint64_t spdl_sign_mask(uint64_t u) { return (uint64_t)0 - (u >> 63); }

SPDL_KERNEL double spdl_min(double x, double c)
{
    uint64_t m = spdl_sign_mask(spdl_bits(c - x) & ~spdl_bits(x - c));
    return spdl_from_bits((spdl_bits(x) & ~m) | (spdl_bits(c) & m));
}

SPDL_KERNEL double spdl_clamp_abs(double x, double c)
{
    uint64_t lo = spdl_bits(x + c), hi = spdl_bits(c - x), m = spdl_sign_mask(lo ^ hi);
    uint64_t edge = spdl_bits(c) | (lo & 0x8000000000000000u); /* -c below, c above */
    return spdl_from_bits((spdl_bits(x) & ~m) | (edge & m));
}

SPDL_KERNEL double spdl_if_neg(double x, double a, double b)
{
    uint64_t m = spdl_sign_mask(spdl_bits(x));
    return spdl_from_bits((spdl_bits(a) & m) | (spdl_bits(b) & ~m));
}
#else
SPDL_KERNEL double spdl_min(double x, double c) { return spdl_select(x > c, c, x); }
SPDL_KERNEL double spdl_clamp_abs(double x, double c) { return spdl_select(x > c, c, spdl_select(x < -c, -c, x)); }
SPDL_KERNEL double spdl_if_neg(double x, double a, double b) { return spdl_select(x < 0, a, b); }
#endif

/* a * b + c, fused where that is one instruction (FP_FAST_FMA: gcc and
 * clang with -march=x86-64-v3); gcc's ISO C modes never contract by
 * themselves. Either way the error bounds below hold. */
SPDL_KERNEL double spdl_fma(double a, double b, double c)
{
#ifdef FP_FAST_FMA
    return fma(a, b, c);
#else
    return a * b + c;
#endif
}

/* the same in float (FP_FAST_FMAF) */
SPDL_KERNEL float spdl_fmaf(float a, float b, float c)
{
#ifdef FP_FAST_FMAF
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

#define SPDL_LN2_HI 0x1.62e42fefa3800p-1
#define SPDL_LN2_LO 0x1.ef35793c7673p-45
#define SPDL_LOG2E 0x1.71547652b82fep0
#define SPDL_SHIFTER 0x1.8p52

/* expm1 on |r| <= ln2/2 (and a little beyond): r + r^2/2 + r^3 q(r), q of
 * degree 9 interpolating (expm1(r) - r - r^2/2) / r^3 at the 10 Chebyshev
 * points of [-ln2/2, ln2/2]; relative error below 2^-58 with the
 * coefficients rounded to double (degree 13 of the Taylor series before). */
SPDL_KERNEL double spdl_expm1_reduced(double r)
{
    double q = 0x1.1f66d948af702p-29;
    q = spdl_fma(q, r, 0x1.af389ecfd7e42p-26);
    q = spdl_fma(q, r, 0x1.27e4e1f722281p-22);
    q = spdl_fma(q, r, 0x1.71de0db2f6a98p-19);
    q = spdl_fma(q, r, 0x1.a01a01a47a591p-16);
    q = spdl_fma(q, r, 0x1.a01a01a7c2efep-13);
    q = spdl_fma(q, r, 0x1.6c16c16c167e2p-10);
    q = spdl_fma(q, r, 0x1.11111111109b5p-7);
    q = spdl_fma(q, r, 0x1.5555555555555p-5);
    q = spdl_fma(q, r, 0x1.5555555555556p-3);
    q = spdl_fma(q, r, 0.5);
    return spdl_fma(r * r, q, r);
}

/* log1p(y) for y in [0, 1]: 2 atanh(s), s = y / (2 + y) in [0, 1/3]. */
SPDL_KERNEL double spdl_log1p01(double y)
{
    double s = y / (2.0 + y), s2 = s * s;
    double p = 1.0 / 37;
    p = spdl_fma(p, s2, 1.0 / 35);
    p = spdl_fma(p, s2, 1.0 / 33);
    p = spdl_fma(p, s2, 1.0 / 31);
    p = spdl_fma(p, s2, 1.0 / 29);
    p = spdl_fma(p, s2, 1.0 / 27);
    p = spdl_fma(p, s2, 1.0 / 25);
    p = spdl_fma(p, s2, 1.0 / 23);
    p = spdl_fma(p, s2, 1.0 / 21);
    p = spdl_fma(p, s2, 1.0 / 19);
    p = spdl_fma(p, s2, 1.0 / 17);
    p = spdl_fma(p, s2, 1.0 / 15);
    p = spdl_fma(p, s2, 1.0 / 13);
    p = spdl_fma(p, s2, 1.0 / 11);
    p = spdl_fma(p, s2, 1.0 / 9);
    p = spdl_fma(p, s2, 1.0 / 7);
    p = spdl_fma(p, s2, 1.0 / 5);
    p = spdl_fma(p, s2, 1.0 / 3);
    return 2.0 * spdl_fma(s * s2, p, s);
}

/* ---- the elementary functions in float ----------------------------------------
 * Float builds call these (through the _r names below): the same algorithms
 * with float coefficients, the range reduction in float and uint32, so an
 * elementwise loop runs in float lanes (8 to an AVX2 register, where the
 * double kernels would convert to 4 doubles and back). Selects, clamps and
 * scales as in double, as 32-bit masks (gcc vectorises those from SSE2 on);
 * exp, expm1, tanh, sigmoid and softplus are one text for both precisions
 * (SPDL_ELEMENTARY_), the polynomials and log1p their own. */

SPDL_KERNEL uint32_t spdl_bitsf(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

SPDL_KERNEL float spdl_from_bitsf(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

SPDL_KERNEL float spdl_selectf(int c, float a, float b)
{
    uint32_t m = (uint32_t)0 - (uint32_t)(c != 0);
    return spdl_from_bitsf((spdl_bitsf(a) & m) | (spdl_bitsf(b) & ~m));
}

SPDL_KERNEL float spdl_minf(float x, float c) { return spdl_selectf(x > c, c, x); }
SPDL_KERNEL float spdl_clamp_absf(float x, float c) { return spdl_selectf(x > c, c, spdl_selectf(x < -c, -c, x)); }
SPDL_KERNEL float spdl_if_negf(float x, float a, float b) { return spdl_selectf(x < 0, a, b); }

/* ln2 = SPDL_LN2_HIf + SPDL_LN2_LOf, the first of 15 bits, so n SPDL_LN2_HIf is exact for |n| <= 2^9 */
#define SPDL_LN2_HIf 0x1.62e4p-1f
#define SPDL_LN2_LOf 0x1.7f7d1cp-20f
#define SPDL_LOG2Ef 0x1.715476p0f
#define SPDL_SHIFTERf 0x1.8p23f

/* expm1 on |r| <= 1.02 ln2/2: r + r^2/2 + r^3 q(r), q of degree 4
 * interpolating (expm1(r) - r - r^2/2) / r^3 at the 5 Chebyshev points;
 * relative error below 2^-28 with the coefficients rounded to float. */
SPDL_KERNEL float spdl_expm1_reducedf(float r)
{
    float q = 0x1.a10160p-13f;
    q = spdl_fmaf(q, r, 0x1.6d1b1cp-10f);
    q = spdl_fmaf(q, r, 0x1.1110f4p-7f);
    q = spdl_fmaf(q, r, 0x1.555514p-5f);
    q = spdl_fmaf(q, r, 0x1.555556p-3f);
    q = spdl_fmaf(q, r, 0.5f);
    return spdl_fmaf(r * r, q, r);
}

/* log1p(f) + c for f in [sqrt(1/2) - 1, 1] and small c: with s = f / (2 + f),
 * log1p(f) = 2 atanh(s) = f - h + s (h + R(s^2)), h = f^2 / 2 (since
 * 2s = f - s f), R(z) = sum_k 2 z^k / (2k + 1), here z times a quartic
 * interpolating R(z) / z at the 5 Chebyshev points of [0, 1/9]. f itself is
 * added last, so the rounding of the rest counts little. */
SPDL_KERNEL float spdl_log1p_reducedf(float f, float c)
{
    float s = f / (2.0f + f), z = s * s, h = 0.5f * f * f;
    float R = 0x1.dba57ap-3f;
    R = spdl_fmaf(R, z, 0x1.bc8c5ep-3f);
    R = spdl_fmaf(R, z, 0x1.24c92cp-2f);
    R = spdl_fmaf(R, z, 0x1.9998d4p-2f);
    R = spdl_fmaf(R, z, 0x1.555556p-1f);
    return f - (h - spdl_fmaf(s, h + R * z, c));
}

/* log1p(y) for y in [0, 1] */
SPDL_KERNEL float spdl_log1p01f(float y) { return spdl_log1p_reducedf(y, 0.0f); }

/* log(x) = k ln2 + log1p(m - 1), x = 2^k m with m in [sqrt(1/2), sqrt(2)),
 * subnormal x scaled by 2^23 first; log(+-0) = -inf, log(x < 0) = NaN,
 * log(inf) = inf, NaN stays NaN. */
SPDL_KERNEL float spdl_logf(float x)
{
    int sub = x < 0x1p-126f;
    uint32_t u = spdl_bitsf(spdl_selectf(sub, x * 0x1p23f, x)) + (0x3f800000u - 0x3f3504f3u);
    float k = (float)((int32_t)(u >> 23) - 127) - spdl_selectf(sub, 23.0f, 0.0f);
    float f = spdl_from_bitsf((u & 0x007fffffu) + 0x3f3504f3u) - 1.0f;
    float y = spdl_fmaf(k, SPDL_LN2_HIf, spdl_log1p_reducedf(f, k * SPDL_LN2_LOf));
    y = spdl_selectf(x == 0, -INFINITY, y);
    y = spdl_selectf(x < 0, NAN, y);
    return spdl_selectf(!(x < INFINITY), x, y);
}

/* The functions built on those reductions, written once for both
 * precisions by SPDL_ELEMENTARY_ below (S the suffix of the names: none for
 * double, f for float):
 *
 * spdl_exp_reduce: x = n ln2 + r with n = round(x log2(e)), |r| <= ln2/2
 * (+ rounding): adding the shifter 1.5 2^52 (2^23) leaves n in the low bits
 * of *k, and n ln2_hi is exact (|n| < 2^11; 2^9 in float).
 *
 * spdl_exp_scales: 2^n1 and 2^n2 with n1 = floor(n/2), n2 = n - n1, from
 * k's bits (n mod 2^64 or 2^32, n1 = floor(n/2) mod 2^63 or 2^31, the top
 * bit shifted out); both normal for |n| <= 2044 (252).
 *
 * spdl_exp: exp(x) = 2^n1 (2^n2 + 2^n2 expm1(r)): two scales, so results
 * that overflow come out inf and results that underflow subnormal or 0 (one
 * rounding, two where subnormal); x is clamped to [-1000, 1000] first
 * ([-104, 104] in float: exp(-104) rounds to 0, exp(89) overflows).
 *
 * spdl_expm1: exp(x) - 1 = 2^n1 (2^n2 expm1(r) + (2^n2 - 2^-n1)): the
 * difference is exact for |n| <= 52 (23) and its rounding negligible
 * beyond; x itself where expm1(x) rounds to x, which keeps -0.
 *
 * spdl_exp_neg: exp(-a) for a in [0, 746] ([0, 104]) or NaN: 2^-64 (2^m +
 * 2^m expm1(r)) with m = n + 64, normal for every n >= -1078 (-190), so
 * results that underflow come out right (subnormal or 0) in the last
 * multiplication.
 *
 * spdl_tanh: tanh|x| = (1 - e) / (1 + e), e = exp(-2|x|) = s (1 + p),
 * s = 2^n with n in [-58, 0], p = expm1(r): numerator (1 - s) - s p and
 * denominator (1 + s) + s p, with 1 - s and 1 + s exact, so small |x|
 * (s = 1, the numerator -p) loses nothing to cancellation and tiny x gives
 * x. |x| is clamped to 20 (10 in float), where tanh rounds to 1.
 *
 * spdl_sigmoid: e / (1 + e) for x < 0 and 1 / (1 + e) for x >= 0,
 * e = exp(-|x|).
 *
 * spdl_softplus: softplus(x) = max(x, 0) + log1p(exp(-|x|)).
 *
 * The arguments: T the type, U its bits' type, BIAS and MANT its exponent
 * bias and mantissa bits, XMAX, NMAX and TMAX the clamps of exp, exp_neg and
 * tanh, TINY the bound below which expm1(x) rounds to x. */
#define SPDL_ELEMENTARY_(T, U, S, BIAS, MANT, XMAX, NMAX, TMAX, TINY)                                          \
    SPDL_KERNEL T spdl_exp_reduce##S(T x, T *k)                                                                \
    {                                                                                                          \
        *k = spdl_fma##S(x, SPDL_LOG2E##S, SPDL_SHIFTER##S);                                                   \
        T n = *k - SPDL_SHIFTER##S;                                                                            \
        return spdl_fma##S(n, -SPDL_LN2_LO##S, spdl_fma##S(n, -SPDL_LN2_HI##S, x));                            \
    }                                                                                                          \
    SPDL_KERNEL void spdl_exp_scales##S(T k, T *s1, T *s2)                                                     \
    {                                                                                                          \
        U n = spdl_bits##S(k) - spdl_bits##S(SPDL_SHIFTER##S);                                                 \
        U n1 = n >> 1;                                                                                         \
        *s1 = spdl_from_bits##S((n1 + BIAS) << MANT);                                                          \
        *s2 = spdl_from_bits##S((n - n1 + BIAS) << MANT);                                                      \
    }                                                                                                          \
    SPDL_KERNEL T spdl_exp##S(T x)                                                                             \
    {                                                                                                          \
        T k, s1, s2;                                                                                           \
        T r = spdl_exp_reduce##S(spdl_clamp_abs##S(x, XMAX), &k);                                              \
        spdl_exp_scales##S(k, &s1, &s2);                                                                       \
        return s1 * spdl_fma##S(s2, spdl_expm1_reduced##S(r), s2);                                             \
    }                                                                                                          \
    SPDL_KERNEL T spdl_expm1##S(T x)                                                                           \
    {                                                                                                          \
        T k, s1, s2;                                                                                           \
        T r = spdl_exp_reduce##S(spdl_clamp_abs##S(x, XMAX), &k);                                              \
        spdl_exp_scales##S(k, &s1, &s2);                                                                       \
        T inv_s1 = spdl_from_bits##S(((U)(2 * BIAS) << MANT) - spdl_bits##S(s1));                              \
        T y = s1 * spdl_fma##S(s2, spdl_expm1_reduced##S(r), s2 - inv_s1);                                     \
        return spdl_select##S(fabs##S(x) < TINY, x, y);                                                        \
    }                                                                                                          \
    SPDL_KERNEL T spdl_exp_neg##S(T a)                                                                         \
    {                                                                                                          \
        T k, r = spdl_exp_reduce##S(-a, &k);                                                                   \
        T s = spdl_from_bits##S((spdl_bits##S(k) + BIAS + 64) << MANT);                                        \
        return spdl_fma##S(s, spdl_expm1_reduced##S(r), s) * (T)0x1p-64;                                       \
    }                                                                                                          \
    SPDL_KERNEL T spdl_tanh##S(T x)                                                                            \
    {                                                                                                          \
        T k, a = spdl_min##S(fabs##S(x), TMAX);                                                                \
        T r = spdl_exp_reduce##S((T)-2 * a, &k);                                                               \
        T s = spdl_from_bits##S((spdl_bits##S(k) + BIAS) << MANT);                                             \
        T p = spdl_expm1_reduced##S(r);                                                                        \
        return copysign##S(spdl_fma##S(-s, p, (T)1 - s) / spdl_fma##S(s, p, (T)1 + s), x);                     \
    }                                                                                                          \
    SPDL_KERNEL T spdl_sigmoid##S(T x)                                                                         \
    {                                                                                                          \
        T e = spdl_exp_neg##S(spdl_min##S(fabs##S(x), NMAX));                                                  \
        return spdl_if_neg##S(x, e, (T)1) / ((T)1 + e);                                                        \
    }                                                                                                          \
    SPDL_KERNEL T spdl_softplus##S(T x)                                                                        \
    {                                                                                                          \
        T e = spdl_exp_neg##S(spdl_min##S(fabs##S(x), NMAX));                                                  \
        return spdl_if_neg##S(x, (T)0, x) + spdl_log1p01##S(e);                                                \
    }

SPDL_ELEMENTARY_(double, uint64_t, , 1023, 52, 1000.0, 746.0, 20.0, 0x1p-54)
SPDL_ELEMENTARY_(float, uint32_t, f, 127, 23, 104.0f, 104.0f, 10.0f, 0x1p-25f)
#undef SPDL_ELEMENTARY_

/* The kernel of real's precision, the one name generated code and the tile
 * kernels below call: the float kernels in float builds; in double the
 * double ones (and libm's log and sqrt), so double builds compute what they
 * always did. */
#define SPDL_R_(d, f) _Generic((real)0, float: f, default: d)
#define spdl_exp_r(x) SPDL_R_(spdl_exp, spdl_expf)(x)
#define spdl_expm1_r(x) SPDL_R_(spdl_expm1, spdl_expm1f)(x)
#define spdl_tanh_r(x) SPDL_R_(spdl_tanh, spdl_tanhf)(x)
#define spdl_sigmoid_r(x) SPDL_R_(spdl_sigmoid, spdl_sigmoidf)(x)
#define spdl_softplus_r(x) SPDL_R_(spdl_softplus, spdl_softplusf)(x)
#define spdl_log_r(x) SPDL_R_(log, spdl_logf)(x)
#define spdl_sqrt_r(x) SPDL_R_(sqrt, sqrtf)(x)
#define spdl_select_r(c, a, b) SPDL_R_(spdl_select, spdl_selectf)(c, a, b)

/* ---- tiles ------------------------------------------------------------------ */

/* C[i][j] (+)= sum_k A[i*ars + k*aks] * B[k*ldb + j], 0 <= i < M, 0 <= j < N.
 * One kernel serves the three products of training: Y = A X (ars = K,
 * aks = 1), X' = A' G (ars = 1, aks = M) and dA += G X^T (with X^T
 * transposed into scratch first).
 *
 * Two implementations, chosen at compile time; each is deterministic, they
 * differ from each other by rounding only (fused or separate multiply-add):
 *  - with AVX2 and FMA (e.g. -march=x86-64-v3): intrinsics. In double a
 *    6 x 8 block of C lives in 12 ymm registers (per k: 6 broadcasts of A,
 *    2 loads of a row of B, 12 FMAs); the last rows go through a 4 x 8 block
 *    (rows past M read a valid row again and are not stored), the last
 *    N % 8 columns through masked loads and stores. In float the block is
 *    6 x 16. Each element of C is one FMA chain over k, started from C when
 *    accumulating.
 *  - otherwise: a 4 x 8 block written as scalars, which gcc and clang pack
 *    into vector registers (SLP), with fma() where <math.h> says it is fast
 *    (FP_FAST_FMA / FP_FAST_FMAF), else a * b + c. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SPDL_GEMM_AVX2 1

/* one k step of row r: a##r + o is A[r][k], b0 b1 the row k of B */
#define SPDL_GEMM_ROW_(r)                                                                                     \
    do {                                                                                                      \
        __m256d x_ = _mm256_broadcast_sd(a##r + o);                                                           \
        c##r##0 = _mm256_fmadd_pd(x_, b0, c##r##0);                                                           \
        c##r##1 = _mm256_fmadd_pd(x_, b1, c##r##1);                                                           \
    } while (0)
#define SPDL_GEMM_LOOP_(LD0, LD1, ROWS)                                                                       \
    for (int k = 0; k < K; k++, o += aks, ob += ldb) {                                                        \
        __m256d b0 = LD0, b1 = LD1;                                                                           \
        ROWS                                                                                                  \
    }
#define SPDL_GEMM_IN_(r)                                                                                      \
    __m256d c##r##0 = _mm256_setzero_pd(), c##r##1 = _mm256_setzero_pd();                                     \
    if (acc && (r) < rows) {                                                                                  \
        c##r##0 = nc == 8 ? _mm256_loadu_pd(C + (r) * ldc) : _mm256_maskload_pd(C + (r) * ldc, m0);           \
        c##r##1 = nc == 8 ? _mm256_loadu_pd(C + (r) * ldc + 4) : _mm256_maskload_pd(C + (r) * ldc + hi, m1);  \
    }
#define SPDL_GEMM_OUT_(r)                                                                                     \
    if ((r) < rows && nc == 8) {                                                                              \
        _mm256_storeu_pd(C + (r) * ldc, c##r##0);                                                             \
        _mm256_storeu_pd(C + (r) * ldc + 4, c##r##1);                                                         \
    } else if ((r) < rows) {                                                                                  \
        _mm256_maskstore_pd(C + (r) * ldc, m0, c##r##0);                                                      \
        _mm256_maskstore_pd(C + (r) * ldc + hi, m1, c##r##1);                                                 \
    }

/* C[0..rows)[0..nc) (+)= A[0..rows)[0..K) B[0..K)[0..nc), rows <= 6, nc <= 8 */
SPDL_KERNEL void spdl_gemm_6x8_(int K, const double *restrict a0, size_t ars, size_t aks, const double *restrict b,
                                size_t ldb, double *restrict C, size_t ldc, int acc, int rows, int nc)
{
    const double *a1 = rows > 1 ? a0 + ars : a0;
    const double *a2 = rows > 2 ? a1 + ars : a1;
    const double *a3 = rows > 3 ? a2 + ars : a2;
    const double *a4 = rows > 4 ? a3 + ars : a3;
    const double *a5 = rows > 5 ? a4 + ars : a4;
    size_t o = 0, ob = 0; /* offsets of A[.][k] and B[k] */
    const __m256i m0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nc), _mm256_setr_epi64x(0, 1, 2, 3));
    const __m256i m1 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nc), _mm256_setr_epi64x(4, 5, 6, 7));
    const size_t hi = nc > 4 ? 4 : 0; /* no pointer past the operands when m1 is empty */
    SPDL_GEMM_IN_(0) SPDL_GEMM_IN_(1) SPDL_GEMM_IN_(2) SPDL_GEMM_IN_(3) SPDL_GEMM_IN_(4) SPDL_GEMM_IN_(5)
    if (nc == 8) {
        SPDL_GEMM_LOOP_(_mm256_loadu_pd(b + ob), _mm256_loadu_pd(b + ob + 4),
                        SPDL_GEMM_ROW_(0); SPDL_GEMM_ROW_(1); SPDL_GEMM_ROW_(2);
                        SPDL_GEMM_ROW_(3); SPDL_GEMM_ROW_(4); SPDL_GEMM_ROW_(5);)
    } else {
        SPDL_GEMM_LOOP_(_mm256_maskload_pd(b + ob, m0), _mm256_maskload_pd(b + ob + hi, m1),
                        SPDL_GEMM_ROW_(0); SPDL_GEMM_ROW_(1); SPDL_GEMM_ROW_(2);
                        SPDL_GEMM_ROW_(3); SPDL_GEMM_ROW_(4); SPDL_GEMM_ROW_(5);)
    }
    SPDL_GEMM_OUT_(0) SPDL_GEMM_OUT_(1) SPDL_GEMM_OUT_(2) SPDL_GEMM_OUT_(3) SPDL_GEMM_OUT_(4) SPDL_GEMM_OUT_(5)
}

/* the same with 4 rows of A per k */
SPDL_KERNEL void spdl_gemm_4x8_(int K, const double *restrict a0, size_t ars, size_t aks, const double *restrict b,
                                size_t ldb, double *restrict C, size_t ldc, int acc, int rows, int nc)
{
    const double *a1 = rows > 1 ? a0 + ars : a0;
    const double *a2 = rows > 2 ? a1 + ars : a1;
    const double *a3 = rows > 3 ? a2 + ars : a2;
    size_t o = 0, ob = 0; /* offsets of A[.][k] and B[k] */
    const __m256i m0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nc), _mm256_setr_epi64x(0, 1, 2, 3));
    const __m256i m1 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nc), _mm256_setr_epi64x(4, 5, 6, 7));
    const size_t hi = nc > 4 ? 4 : 0; /* no pointer past the operands when m1 is empty */
    SPDL_GEMM_IN_(0) SPDL_GEMM_IN_(1) SPDL_GEMM_IN_(2) SPDL_GEMM_IN_(3)
    if (nc == 8) {
        SPDL_GEMM_LOOP_(_mm256_loadu_pd(b + ob), _mm256_loadu_pd(b + ob + 4),
                        SPDL_GEMM_ROW_(0); SPDL_GEMM_ROW_(1); SPDL_GEMM_ROW_(2); SPDL_GEMM_ROW_(3);)
    } else {
        SPDL_GEMM_LOOP_(_mm256_maskload_pd(b + ob, m0), _mm256_maskload_pd(b + ob + hi, m1),
                        SPDL_GEMM_ROW_(0); SPDL_GEMM_ROW_(1); SPDL_GEMM_ROW_(2); SPDL_GEMM_ROW_(3);)
    }
    SPDL_GEMM_OUT_(0) SPDL_GEMM_OUT_(1) SPDL_GEMM_OUT_(2) SPDL_GEMM_OUT_(3)
}
#undef SPDL_GEMM_ROW_
#undef SPDL_GEMM_LOOP_
#undef SPDL_GEMM_IN_
#undef SPDL_GEMM_OUT_

SPDL_KERNEL void spdl_gemm_avx2_(int M, int N, int K, const double *restrict A, size_t ars, size_t aks,
                                 const double *restrict B, size_t ldb, double *restrict C, size_t ldc, int acc)
{
    for (int i = 0; i < M;) {
        int rows = M - i < 6 ? M - i : 6;
        const double *a = A + (size_t)i * ars;
        double *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j += 8) {
            int nc = N - j < 8 ? N - j : 8;
            if (rows >= 5)
                spdl_gemm_6x8_(K, a, ars, aks, B + j, ldb, c + j, ldc, acc, rows, nc);
            else
                spdl_gemm_4x8_(K, a, ars, aks, B + j, ldb, c + j, ldc, acc, rows, nc);
        }
        i += rows;
    }
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
/* float: the same scheme with 8 lanes per ymm, a 6 x 16 block of C in 12
 * registers and masked loads and stores for the last N % 16 columns */
#define SPDL_SGEMM_ROW_(r)                                                                                    \
    do {                                                                                                      \
        __m256 x_ = _mm256_broadcast_ss(a##r + o);                                                            \
        c##r##0 = _mm256_fmadd_ps(x_, b0, c##r##0);                                                           \
        c##r##1 = _mm256_fmadd_ps(x_, b1, c##r##1);                                                           \
    } while (0)
#define SPDL_SGEMM_IN_(r)                                                                                     \
    __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();                                      \
    if (acc && (r) < rows) {                                                                                  \
        c##r##0 = nc == 16 ? _mm256_loadu_ps(C + (r) * ldc) : _mm256_maskload_ps(C + (r) * ldc, m0);          \
        c##r##1 = nc == 16 ? _mm256_loadu_ps(C + (r) * ldc + 8) : _mm256_maskload_ps(C + (r) * ldc + hi, m1); \
    }
#define SPDL_SGEMM_OUT_(r)                                                                                    \
    if ((r) < rows && nc == 16) {                                                                             \
        _mm256_storeu_ps(C + (r) * ldc, c##r##0);                                                             \
        _mm256_storeu_ps(C + (r) * ldc + 8, c##r##1);                                                         \
    } else if ((r) < rows) {                                                                                  \
        _mm256_maskstore_ps(C + (r) * ldc, m0, c##r##0);                                                      \
        _mm256_maskstore_ps(C + (r) * ldc + hi, m1, c##r##1);                                                 \
    }

/* C[0..rows)[0..nc) (+)= A[0..rows)[0..K) B[0..K)[0..nc), rows <= 6, nc <= 16 */
SPDL_KERNEL void spdl_sgemm_6x16_(int K, const float *restrict a0, size_t ars, size_t aks, const float *restrict b,
                                  size_t ldb, float *restrict C, size_t ldc, int acc, int rows, int nc)
{
    const float *a1 = rows > 1 ? a0 + ars : a0;
    const float *a2 = rows > 2 ? a1 + ars : a1;
    const float *a3 = rows > 3 ? a2 + ars : a2;
    const float *a4 = rows > 4 ? a3 + ars : a3;
    const float *a5 = rows > 5 ? a4 + ars : a4;
    size_t o = 0, ob = 0;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8), lane);
    const size_t hi = nc > 8 ? 8 : 0; /* no pointer past the operands when m1 is empty */
    SPDL_SGEMM_IN_(0) SPDL_SGEMM_IN_(1) SPDL_SGEMM_IN_(2) SPDL_SGEMM_IN_(3) SPDL_SGEMM_IN_(4) SPDL_SGEMM_IN_(5)
    if (nc == 16) {
        for (int k = 0; k < K; k++, o += aks, ob += ldb) {
            __m256 b0 = _mm256_loadu_ps(b + ob), b1 = _mm256_loadu_ps(b + ob + 8);
            SPDL_SGEMM_ROW_(0); SPDL_SGEMM_ROW_(1); SPDL_SGEMM_ROW_(2);
            SPDL_SGEMM_ROW_(3); SPDL_SGEMM_ROW_(4); SPDL_SGEMM_ROW_(5);
        }
    } else {
        for (int k = 0; k < K; k++, o += aks, ob += ldb) {
            __m256 b0 = _mm256_maskload_ps(b + ob, m0), b1 = _mm256_maskload_ps(b + ob + hi, m1);
            SPDL_SGEMM_ROW_(0); SPDL_SGEMM_ROW_(1); SPDL_SGEMM_ROW_(2);
            SPDL_SGEMM_ROW_(3); SPDL_SGEMM_ROW_(4); SPDL_SGEMM_ROW_(5);
        }
    }
    SPDL_SGEMM_OUT_(0) SPDL_SGEMM_OUT_(1) SPDL_SGEMM_OUT_(2) SPDL_SGEMM_OUT_(3) SPDL_SGEMM_OUT_(4) SPDL_SGEMM_OUT_(5)
}
#undef SPDL_SGEMM_ROW_
#undef SPDL_SGEMM_IN_
#undef SPDL_SGEMM_OUT_

SPDL_KERNEL void spdl_sgemm_avx2_(int M, int N, int K, const float *restrict A, size_t ars, size_t aks,
                                  const float *restrict B, size_t ldb, float *restrict C, size_t ldc, int acc)
{
    for (int i = 0; i < M; i += 6) {
        int rows = M - i < 6 ? M - i : 6;
        for (int j = 0; j < N; j += 16)
            spdl_sgemm_6x16_(K, A + (size_t)i * ars, ars, aks, B + j, ldb, C + (size_t)i * ldc + j, ldc, acc, rows,
                             N - j < 16 ? N - j : 16);
    }
}
#endif

/* With AVX-512 (e.g. -march=x86-64-v4): a block of 6 rows of C by 4 zmm
 * registers (32 doubles or 64 floats: a whole tile's lanes in float) in 24
 * accumulators, per k 4 loads of a row of B and 6 broadcasts of A; the
 * last columns through masked loads and stores (a masked lane is never
 * read), rows past M read a valid row again and are not stored. Each
 * element of C is the same FMA chain over k as in the AVX2 kernels, so the
 * two give the same bits. One definition serves both precisions: T the
 * element, V the vector, MASK its mask type, L its lanes, S the intrinsics'
 * suffix. */
#if defined(__AVX512F__)
#define SPDL_GEMM_AVX512 1

#define SPDL_Z_IN_(V, S, r)                                                                                   \
    V c##r##0 = SPDL_Z_(setzero, S)(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;               \
    if (acc && (r) < rows) {                                                                                  \
        c##r##0 = SPDL_Z_(maskz_loadu, S)(m0, C + (r) * ldc);                                                 \
        c##r##1 = SPDL_Z_(maskz_loadu, S)(m1, C + (r) * ldc + o1);                                            \
        c##r##2 = SPDL_Z_(maskz_loadu, S)(m2, C + (r) * ldc + o2);                                            \
        c##r##3 = SPDL_Z_(maskz_loadu, S)(m3, C + (r) * ldc + o3);                                            \
    }
#define SPDL_Z_ROW_(V, S, r)                                                                                  \
    do {                                                                                                      \
        V x_ = SPDL_Z_(set1, S)(a##r[o]);                                                                     \
        c##r##0 = SPDL_Z_(fmadd, S)(x_, b0, c##r##0);                                                         \
        c##r##1 = SPDL_Z_(fmadd, S)(x_, b1, c##r##1);                                                         \
        c##r##2 = SPDL_Z_(fmadd, S)(x_, b2, c##r##2);                                                         \
        c##r##3 = SPDL_Z_(fmadd, S)(x_, b3, c##r##3);                                                         \
    } while (0)
#define SPDL_Z_OUT_(S, r)                                                                                     \
    if ((r) < rows) {                                                                                         \
        SPDL_Z_(mask_storeu, S)(C + (r) * ldc, m0, c##r##0);                                                  \
        SPDL_Z_(mask_storeu, S)(C + (r) * ldc + o1, m1, c##r##1);                                             \
        SPDL_Z_(mask_storeu, S)(C + (r) * ldc + o2, m2, c##r##2);                                             \
        SPDL_Z_(mask_storeu, S)(C + (r) * ldc + o3, m3, c##r##3);                                             \
    }
#define SPDL_Z_(op, s) SPDL_Z2_(op, s)
#define SPDL_Z2_(op, s) _mm512_##op##_##s

/* the lanes [lo, lo + L) of the first nc columns, and where they start (0
 * when none is left: no pointer past the operands) */
#define SPDL_Z_MASK_(MASK, L, nc, lo) ((MASK)((nc) - (lo) >= (L) ? ~0u : (nc) <= (lo) ? 0u : (1u << ((nc) - (lo))) - 1))
#define SPDL_Z_OFF_(nc, lo) ((size_t)((nc) > (lo) ? (lo) : 0))

/* BLOCK: C[0..rows)[0..nc) (+)= A[0..rows)[0..K) B[0..K)[0..nc), rows <= 6, nc <= 4 L;
 * NAME: C = A B (+ C) block by block */
#define SPDL_GEMM512_(BLOCK, NAME, T, V, MASK, L, S)                                                          \
    SPDL_KERNEL void BLOCK(int K, const T *restrict a0, size_t ars, size_t aks, const T *restrict b,          \
                           size_t ldb, T *restrict C, size_t ldc, int acc, int rows, int nc)                  \
    {                                                                                                         \
        const T *a1 = rows > 1 ? a0 + ars : a0, *a2 = rows > 2 ? a1 + ars : a1;                               \
        const T *a3 = rows > 3 ? a2 + ars : a2, *a4 = rows > 4 ? a3 + ars : a3;                               \
        const T *a5 = rows > 5 ? a4 + ars : a4;                                                               \
        const MASK m0 = SPDL_Z_MASK_(MASK, L, nc, 0), m1 = SPDL_Z_MASK_(MASK, L, nc, L);                      \
        const MASK m2 = SPDL_Z_MASK_(MASK, L, nc, 2 * L), m3 = SPDL_Z_MASK_(MASK, L, nc, 3 * L);              \
        const size_t o1 = SPDL_Z_OFF_(nc, L), o2 = SPDL_Z_OFF_(nc, 2 * L), o3 = SPDL_Z_OFF_(nc, 3 * L);       \
        size_t o = 0, ob = 0; /* offsets of A[.][k] and B[k] */                                               \
        SPDL_Z_IN_(V, S, 0) SPDL_Z_IN_(V, S, 1) SPDL_Z_IN_(V, S, 2)                                           \
        SPDL_Z_IN_(V, S, 3) SPDL_Z_IN_(V, S, 4) SPDL_Z_IN_(V, S, 5)                                           \
        for (int k = 0; k < K; k++, o += aks, ob += ldb) {                                                    \
            V b0 = SPDL_Z_(maskz_loadu, S)(m0, b + ob), b1 = SPDL_Z_(maskz_loadu, S)(m1, b + ob + o1);        \
            V b2 = SPDL_Z_(maskz_loadu, S)(m2, b + ob + o2), b3 = SPDL_Z_(maskz_loadu, S)(m3, b + ob + o3);   \
            SPDL_Z_ROW_(V, S, 0); SPDL_Z_ROW_(V, S, 1); SPDL_Z_ROW_(V, S, 2);                                 \
            SPDL_Z_ROW_(V, S, 3); SPDL_Z_ROW_(V, S, 4); SPDL_Z_ROW_(V, S, 5);                                 \
        }                                                                                                     \
        SPDL_Z_OUT_(S, 0) SPDL_Z_OUT_(S, 1) SPDL_Z_OUT_(S, 2)                                                 \
        SPDL_Z_OUT_(S, 3) SPDL_Z_OUT_(S, 4) SPDL_Z_OUT_(S, 5)                                                 \
    }                                                                                                         \
    SPDL_KERNEL void NAME(int M, int N, int K, const T *restrict A, size_t ars, size_t aks,                   \
                          const T *restrict B, size_t ldb, T *restrict C, size_t ldc, int acc)                \
    {                                                                                                         \
        for (int i = 0; i < M; i += 6)                                                                        \
            for (int j = 0; j < N; j += 4 * L)                                                                \
                BLOCK(K, A + (size_t)i * ars, ars, aks, B + j, ldb, C + (size_t)i * ldc + j, ldc, acc,        \
                      M - i < 6 ? M - i : 6, N - j < 4 * L ? N - j : 4 * L);                                  \
    }

SPDL_GEMM512_(spdl_gemm512_6x32_, spdl_gemm512_, double, __m512d, __mmask8, 8, pd)
SPDL_GEMM512_(spdl_sgemm512_6x64_, spdl_sgemm512_, float, __m512, __mmask16, 16, ps)
#undef SPDL_GEMM512_
#undef SPDL_Z_IN_
#undef SPDL_Z_ROW_
#undef SPDL_Z_OUT_
#endif

/* s + x * y in the precision of s, one rounding where that is fast */
#define SPDL_MADD_(x, y, s) _Generic((s), float: spdl_fmaf, default: spdl_fma)(x, y, s)

/* Cache blocking of the two products below, for operands far larger than
 * the caches (a 28 x 28 image of 64 maps over a tile's lanes is 25 MB): each
 * block of C runs the whole contraction from registers, so what matters is
 * that the data it streams is still cached when the next block wants it.
 * spdl_gemm takes B in panels of about 256 KiB (K rows of P columns) that
 * every row block of A passes over in turn; P is a multiple of 64, so every
 * block of every kernel below ends where it did without panels and each
 * element of C is computed as before, bit for bit. spdl_gemm_nt, whose
 * contraction runs along the rows of both operands, takes them in chunks of
 * Q columns, about 512 KiB of the M + N rows, adding each chunk's sums to C
 * (a multiple of 16, so only the last chunk has a ragged end). */
#define SPDL_CACHE_BLOCK_ ((size_t)262144) /* bytes: a block of data the products and correlations reuse */

SPDL_KERNEL int spdl_gemm_panel_(int K, size_t elem)
{
    size_t p = SPDL_CACHE_BLOCK_ / (elem * (size_t)(K > 1 ? K : 1)) / 64 * 64;
    return p > 64 ? (int)p : 64;
}

SPDL_KERNEL int spdl_gemm_nt_chunk_(int M, int N, size_t elem)
{
    size_t q = 2 * SPDL_CACHE_BLOCK_ / (elem * (size_t)(M + N > 1 ? M + N : 1)) / 16 * 16;
    return q > 256 ? (int)q : 256;
}

SPDL_KERNEL void spdl_gemm(int M, int N, int K, const real *restrict A, size_t ars, size_t aks,
                             const real *restrict B, size_t ldb, real *restrict C, size_t ldc, int acc)
{
    const int P = spdl_gemm_panel_(K, sizeof(real));
    if (N > P) {
        for (int j = 0; j < N; j += P)
            spdl_gemm(M, N - j < P ? N - j : P, K, A, ars, aks, B + j, ldb, C + j, ldc, acc);
        return;
    }
#if defined(SPDL_GEMM_AVX512)
    if (sizeof(real) == sizeof(double))
        spdl_gemm512_(M, N, K, (const double *)(const void *)A, ars, aks, (const double *)(const void *)B, ldb,
                        (double *)(void *)C, ldc, acc);
    else
        spdl_sgemm512_(M, N, K, (const float *)(const void *)A, ars, aks, (const float *)(const void *)B, ldb,
                         (float *)(void *)C, ldc, acc);
    return;
#elif defined(SPDL_GEMM_AVX2)
    if (sizeof(real) == sizeof(double)) {
        spdl_gemm_avx2_(M, N, K, (const double *)(const void *)A, ars, aks, (const double *)(const void *)B, ldb,
                        (double *)(void *)C, ldc, acc);
        return;
    }
    spdl_sgemm_avx2_(M, N, K, (const float *)(const void *)A, ars, aks, (const float *)(const void *)B, ldb,
                     (float *)(void *)C, ldc, acc);
    return;
#endif
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        const real *a0 = A + (size_t)i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
        real *c0 = C + (size_t)i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        int j = 0;
        for (; j + 8 <= N; j += 8) {
            real s00 = 0, s01 = 0, s02 = 0, s03 = 0, s04 = 0, s05 = 0, s06 = 0, s07 = 0;
            real s10 = 0, s11 = 0, s12 = 0, s13 = 0, s14 = 0, s15 = 0, s16 = 0, s17 = 0;
            real s20 = 0, s21 = 0, s22 = 0, s23 = 0, s24 = 0, s25 = 0, s26 = 0, s27 = 0;
            real s30 = 0, s31 = 0, s32 = 0, s33 = 0, s34 = 0, s35 = 0, s36 = 0, s37 = 0;
            for (int k = 0; k < K; k++) {
                const real *b = B + (size_t)k * ldb + j;
                real b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3], b4 = b[4], b5 = b[5], b6 = b[6], b7 = b[7];
                real x0 = a0[(size_t)k * aks], x1 = a1[(size_t)k * aks], x2 = a2[(size_t)k * aks], x3 = a3[(size_t)k * aks];
                s00 = SPDL_MADD_(x0, b0, s00); s01 = SPDL_MADD_(x0, b1, s01); s02 = SPDL_MADD_(x0, b2, s02); s03 = SPDL_MADD_(x0, b3, s03);
                s04 = SPDL_MADD_(x0, b4, s04); s05 = SPDL_MADD_(x0, b5, s05); s06 = SPDL_MADD_(x0, b6, s06); s07 = SPDL_MADD_(x0, b7, s07);
                s10 = SPDL_MADD_(x1, b0, s10); s11 = SPDL_MADD_(x1, b1, s11); s12 = SPDL_MADD_(x1, b2, s12); s13 = SPDL_MADD_(x1, b3, s13);
                s14 = SPDL_MADD_(x1, b4, s14); s15 = SPDL_MADD_(x1, b5, s15); s16 = SPDL_MADD_(x1, b6, s16); s17 = SPDL_MADD_(x1, b7, s17);
                s20 = SPDL_MADD_(x2, b0, s20); s21 = SPDL_MADD_(x2, b1, s21); s22 = SPDL_MADD_(x2, b2, s22); s23 = SPDL_MADD_(x2, b3, s23);
                s24 = SPDL_MADD_(x2, b4, s24); s25 = SPDL_MADD_(x2, b5, s25); s26 = SPDL_MADD_(x2, b6, s26); s27 = SPDL_MADD_(x2, b7, s27);
                s30 = SPDL_MADD_(x3, b0, s30); s31 = SPDL_MADD_(x3, b1, s31); s32 = SPDL_MADD_(x3, b2, s32); s33 = SPDL_MADD_(x3, b3, s33);
                s34 = SPDL_MADD_(x3, b4, s34); s35 = SPDL_MADD_(x3, b5, s35); s36 = SPDL_MADD_(x3, b6, s36); s37 = SPDL_MADD_(x3, b7, s37);
            }
            if (acc) {
                c0[j] += s00; c0[j + 1] += s01; c0[j + 2] += s02; c0[j + 3] += s03;
                c0[j + 4] += s04; c0[j + 5] += s05; c0[j + 6] += s06; c0[j + 7] += s07;
                c1[j] += s10; c1[j + 1] += s11; c1[j + 2] += s12; c1[j + 3] += s13;
                c1[j + 4] += s14; c1[j + 5] += s15; c1[j + 6] += s16; c1[j + 7] += s17;
                c2[j] += s20; c2[j + 1] += s21; c2[j + 2] += s22; c2[j + 3] += s23;
                c2[j + 4] += s24; c2[j + 5] += s25; c2[j + 6] += s26; c2[j + 7] += s27;
                c3[j] += s30; c3[j + 1] += s31; c3[j + 2] += s32; c3[j + 3] += s33;
                c3[j + 4] += s34; c3[j + 5] += s35; c3[j + 6] += s36; c3[j + 7] += s37;
            } else {
                c0[j] = s00; c0[j + 1] = s01; c0[j + 2] = s02; c0[j + 3] = s03;
                c0[j + 4] = s04; c0[j + 5] = s05; c0[j + 6] = s06; c0[j + 7] = s07;
                c1[j] = s10; c1[j + 1] = s11; c1[j + 2] = s12; c1[j + 3] = s13;
                c1[j + 4] = s14; c1[j + 5] = s15; c1[j + 6] = s16; c1[j + 7] = s17;
                c2[j] = s20; c2[j + 1] = s21; c2[j + 2] = s22; c2[j + 3] = s23;
                c2[j + 4] = s24; c2[j + 5] = s25; c2[j + 6] = s26; c2[j + 7] = s27;
                c3[j] = s30; c3[j + 1] = s31; c3[j + 2] = s32; c3[j + 3] = s33;
                c3[j + 4] = s34; c3[j + 5] = s35; c3[j + 6] = s36; c3[j + 7] = s37;
            }
        }
        for (; j < N; j++) {
            real s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int k = 0; k < K; k++) {
                real b = B[(size_t)k * ldb + j];
                s0 = SPDL_MADD_(a0[(size_t)k * aks], b, s0);
                s1 = SPDL_MADD_(a1[(size_t)k * aks], b, s1);
                s2 = SPDL_MADD_(a2[(size_t)k * aks], b, s2);
                s3 = SPDL_MADD_(a3[(size_t)k * aks], b, s3);
            }
            c0[j] = acc ? c0[j] + s0 : s0;
            c1[j] = acc ? c1[j] + s1 : s1;
            c2[j] = acc ? c2[j] + s2 : s2;
            c3[j] = acc ? c3[j] + s3 : s3;
        }
    }
    for (; i < M; i++) {
        const real *a0 = A + (size_t)i * ars;
        real *c0 = C + (size_t)i * ldc;
        int j = 0;
        for (; j + 8 <= N; j += 8) {
            real s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
            for (int k = 0; k < K; k++) {
                const real *b = B + (size_t)k * ldb + j;
                real x = a0[(size_t)k * aks];
                s0 = SPDL_MADD_(x, b[0], s0); s1 = SPDL_MADD_(x, b[1], s1); s2 = SPDL_MADD_(x, b[2], s2); s3 = SPDL_MADD_(x, b[3], s3);
                s4 = SPDL_MADD_(x, b[4], s4); s5 = SPDL_MADD_(x, b[5], s5); s6 = SPDL_MADD_(x, b[6], s6); s7 = SPDL_MADD_(x, b[7], s7);
            }
            if (acc) {
                c0[j] += s0; c0[j + 1] += s1; c0[j + 2] += s2; c0[j + 3] += s3;
                c0[j + 4] += s4; c0[j + 5] += s5; c0[j + 6] += s6; c0[j + 7] += s7;
            } else {
                c0[j] = s0; c0[j + 1] = s1; c0[j + 2] = s2; c0[j + 3] = s3;
                c0[j + 4] = s4; c0[j + 5] = s5; c0[j + 6] = s6; c0[j + 7] = s7;
            }
        }
        for (; j < N; j++) {
            real s = 0;
            for (int k = 0; k < K; k++)
                s = SPDL_MADD_(a0[(size_t)k * aks], B[(size_t)k * ldb + j], s);
            c0[j] = acc ? c0[j] + s : s;
        }
    }
}

/* C[i*ldc + j*cs] += sum_k A[i*lda + k] B[j*ldb + k], 0 <= i < M, 0 <= j < N:
 * the product of two operands that are both contiguous along the
 * contraction (a convolution kernel's gradient from two tiles, where k
 * runs over pixels and lanes). Blocks of 4 x 2 (AVX2 and FMA: 8 ymm
 * accumulators of 4 doubles or 8 floats; otherwise 2 x 2 blocks of 8
 * partial sums that gcc and clang vectorise); each element is summed in a
 * fixed order. */
#ifdef SPDL_GEMM_AVX2
SPDL_KERNEL double spdl_hsum4_(__m256d x)
{
    __m128d lo = _mm256_castpd256_pd128(x), hi = _mm256_extractf128_pd(x, 1);
    __m128d s = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

SPDL_KERNEL void spdl_gemm_nt_avx2_(int M, int N, int K, const double *restrict A, size_t lda, const double *restrict B,
                                    size_t ldb, double *restrict C, size_t ldc, size_t cs)
{
    const int K4 = K & ~3;
    for (int i = 0; i < M; i += 4) {
        int ri = M - i < 4 ? M - i : 4;
        const double *a0 = A + (size_t)i * lda;
        const double *a1 = ri > 1 ? a0 + lda : a0, *a2 = ri > 2 ? a1 + lda : a1, *a3 = ri > 3 ? a2 + lda : a2;
        for (int j = 0; j < N; j += 2) {
            int rj = N - j < 2 ? N - j : 2;
            const double *b0 = B + (size_t)j * ldb, *b1 = rj > 1 ? b0 + ldb : b0;
            __m256d s00 = _mm256_setzero_pd(), s01 = s00, s10 = s00, s11 = s00;
            __m256d s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (int k = 0; k < K4; k += 4) {
                __m256d x0 = _mm256_loadu_pd(b0 + k), x1 = _mm256_loadu_pd(b1 + k), y;
                y = _mm256_loadu_pd(a0 + k), s00 = _mm256_fmadd_pd(y, x0, s00), s01 = _mm256_fmadd_pd(y, x1, s01);
                y = _mm256_loadu_pd(a1 + k), s10 = _mm256_fmadd_pd(y, x0, s10), s11 = _mm256_fmadd_pd(y, x1, s11);
                y = _mm256_loadu_pd(a2 + k), s20 = _mm256_fmadd_pd(y, x0, s20), s21 = _mm256_fmadd_pd(y, x1, s21);
                y = _mm256_loadu_pd(a3 + k), s30 = _mm256_fmadd_pd(y, x0, s30), s31 = _mm256_fmadd_pd(y, x1, s31);
            }
            double t[4][2] = {{spdl_hsum4_(s00), spdl_hsum4_(s01)}, {spdl_hsum4_(s10), spdl_hsum4_(s11)},
                              {spdl_hsum4_(s20), spdl_hsum4_(s21)}, {spdl_hsum4_(s30), spdl_hsum4_(s31)}};
            const double *ar[4] = {a0, a1, a2, a3}, *br[2] = {b0, b1};
            for (int a = 0; a < ri; a++)
                for (int b = 0; b < rj; b++) {
                    double s = t[a][b];
                    for (int k = K4; k < K; k++)
                        s = fma(ar[a][k], br[b][k], s);
                    C[(size_t)(i + a) * ldc + (size_t)(j + b) * cs] += s;
                }
        }
    }
}

SPDL_KERNEL float spdl_hsum8_(__m256 x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

SPDL_KERNEL void spdl_sgemm_nt_avx2_(int M, int N, int K, const float *restrict A, size_t lda, const float *restrict B,
                                     size_t ldb, float *restrict C, size_t ldc, size_t cs)
{
    const int K8 = K & ~7;
    for (int i = 0; i < M; i += 4) {
        int ri = M - i < 4 ? M - i : 4;
        const float *a0 = A + (size_t)i * lda;
        const float *a1 = ri > 1 ? a0 + lda : a0, *a2 = ri > 2 ? a1 + lda : a1, *a3 = ri > 3 ? a2 + lda : a2;
        for (int j = 0; j < N; j += 2) {
            int rj = N - j < 2 ? N - j : 2;
            const float *b0 = B + (size_t)j * ldb, *b1 = rj > 1 ? b0 + ldb : b0;
            __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00;
            __m256 s20 = s00, s21 = s00, s30 = s00, s31 = s00;
            for (int k = 0; k < K8; k += 8) {
                __m256 x0 = _mm256_loadu_ps(b0 + k), x1 = _mm256_loadu_ps(b1 + k), y;
                y = _mm256_loadu_ps(a0 + k), s00 = _mm256_fmadd_ps(y, x0, s00), s01 = _mm256_fmadd_ps(y, x1, s01);
                y = _mm256_loadu_ps(a1 + k), s10 = _mm256_fmadd_ps(y, x0, s10), s11 = _mm256_fmadd_ps(y, x1, s11);
                y = _mm256_loadu_ps(a2 + k), s20 = _mm256_fmadd_ps(y, x0, s20), s21 = _mm256_fmadd_ps(y, x1, s21);
                y = _mm256_loadu_ps(a3 + k), s30 = _mm256_fmadd_ps(y, x0, s30), s31 = _mm256_fmadd_ps(y, x1, s31);
            }
            float t[4][2] = {{spdl_hsum8_(s00), spdl_hsum8_(s01)}, {spdl_hsum8_(s10), spdl_hsum8_(s11)},
                             {spdl_hsum8_(s20), spdl_hsum8_(s21)}, {spdl_hsum8_(s30), spdl_hsum8_(s31)}};
            const float *ar[4] = {a0, a1, a2, a3}, *br[2] = {b0, b1};
            for (int a = 0; a < ri; a++)
                for (int b = 0; b < rj; b++) {
                    float s = t[a][b];
                    for (int k = K8; k < K; k++)
                        s = fmaf(ar[a][k], br[b][k], s);
                    C[(size_t)(i + a) * ldc + (size_t)(j + b) * cs] += s;
                }
        }
    }
}
#endif

#ifdef SPDL_GEMM_AVX512
/* AVX-512: blocks of 4 x 2 in 8 zmm accumulators, the last K % L terms
 * through masked loads (masked lanes read as 0, never from memory) */
#define SPDL_GEMM_NT512_(NAME, T, V, MASK, L, S)                                                              \
    SPDL_KERNEL void NAME(int M, int N, int K, const T *restrict A, size_t lda, const T *restrict B,         \
                          size_t ldb, T *restrict C, size_t ldc, size_t cs)                                   \
    {                                                                                                         \
        for (int i = 0; i < M; i += 4) {                                                                      \
            int ri = M - i < 4 ? M - i : 4;                                                                   \
            const T *a0 = A + (size_t)i * lda;                                                                \
            const T *a1 = ri > 1 ? a0 + lda : a0, *a2 = ri > 2 ? a1 + lda : a1, *a3 = ri > 3 ? a2 + lda : a2; \
            for (int j = 0; j < N; j += 2) {                                                                  \
                int rj = N - j < 2 ? N - j : 2;                                                               \
                const T *b0 = B + (size_t)j * ldb, *b1 = rj > 1 ? b0 + ldb : b0;                              \
                V s00 = SPDL_Z_(setzero, S)(), s01 = s00, s10 = s00, s11 = s00;                               \
                V s20 = s00, s21 = s00, s30 = s00, s31 = s00;                                                 \
                for (int k = 0; k < K; k += L) {                                                              \
                    const MASK m = SPDL_Z_MASK_(MASK, L, K, k);                                               \
                    V x0 = SPDL_Z_(maskz_loadu, S)(m, b0 + k), x1 = SPDL_Z_(maskz_loadu, S)(m, b1 + k), y;    \
                    y = SPDL_Z_(maskz_loadu, S)(m, a0 + k);                                                   \
                    s00 = SPDL_Z_(fmadd, S)(y, x0, s00), s01 = SPDL_Z_(fmadd, S)(y, x1, s01);                 \
                    y = SPDL_Z_(maskz_loadu, S)(m, a1 + k);                                                   \
                    s10 = SPDL_Z_(fmadd, S)(y, x0, s10), s11 = SPDL_Z_(fmadd, S)(y, x1, s11);                 \
                    y = SPDL_Z_(maskz_loadu, S)(m, a2 + k);                                                   \
                    s20 = SPDL_Z_(fmadd, S)(y, x0, s20), s21 = SPDL_Z_(fmadd, S)(y, x1, s21);                 \
                    y = SPDL_Z_(maskz_loadu, S)(m, a3 + k);                                                   \
                    s30 = SPDL_Z_(fmadd, S)(y, x0, s30), s31 = SPDL_Z_(fmadd, S)(y, x1, s31);                 \
                }                                                                                             \
                const T t[4][2] = {{SPDL_Z_(reduce_add, S)(s00), SPDL_Z_(reduce_add, S)(s01)},                \
                                   {SPDL_Z_(reduce_add, S)(s10), SPDL_Z_(reduce_add, S)(s11)},                \
                                   {SPDL_Z_(reduce_add, S)(s20), SPDL_Z_(reduce_add, S)(s21)},                \
                                   {SPDL_Z_(reduce_add, S)(s30), SPDL_Z_(reduce_add, S)(s31)}};               \
                for (int a = 0; a < ri; a++)                                                                  \
                    for (int b = 0; b < rj; b++)                                                              \
                        C[(size_t)(i + a) * ldc + (size_t)(j + b) * cs] += t[a][b];                           \
            }                                                                                                 \
        }                                                                                                     \
    }
SPDL_GEMM_NT512_(spdl_gemm_nt512_, double, __m512d, __mmask8, 8, pd)
SPDL_GEMM_NT512_(spdl_sgemm_nt512_, float, __m512, __mmask16, 16, ps)
#undef SPDL_GEMM_NT512_
#endif

SPDL_KERNEL void spdl_gemm_nt(int M, int N, int K, const real *restrict A, size_t lda, const real *restrict B,
                              size_t ldb, real *restrict C, size_t ldc, size_t cs)
{
    const int Q = spdl_gemm_nt_chunk_(M, N, sizeof(real));
    if (K > Q) {
        for (int k = 0; k < K; k += Q)
            spdl_gemm_nt(M, N, K - k < Q ? K - k : Q, A + k, lda, B + k, ldb, C, ldc, cs);
        return;
    }
#if defined(SPDL_GEMM_AVX512)
    if (sizeof(real) == sizeof(double))
        spdl_gemm_nt512_(M, N, K, (const double *)(const void *)A, lda, (const double *)(const void *)B, ldb,
                         (double *)(void *)C, ldc, cs);
    else
        spdl_sgemm_nt512_(M, N, K, (const float *)(const void *)A, lda, (const float *)(const void *)B, ldb,
                          (float *)(void *)C, ldc, cs);
    return;
#elif defined(SPDL_GEMM_AVX2)
    if (sizeof(real) == sizeof(double))
        spdl_gemm_nt_avx2_(M, N, K, (const double *)(const void *)A, lda, (const double *)(const void *)B, ldb,
                           (double *)(void *)C, ldc, cs);
    else
        spdl_sgemm_nt_avx2_(M, N, K, (const float *)(const void *)A, lda, (const float *)(const void *)B, ldb,
                            (float *)(void *)C, ldc, cs);
    return;
#endif
    const int K8 = K & ~7;
    for (int i = 0; i < M; i += 2) {
        const real *a0 = A + (size_t)i * lda, *a1 = i + 1 < M ? a0 + lda : a0;
        for (int j = 0; j < N; j += 2) {
            const real *b0 = B + (size_t)j * ldb, *b1 = j + 1 < N ? b0 + ldb : b0;
            real s00[8] = {0}, s01[8] = {0}, s10[8] = {0}, s11[8] = {0};
            for (int k = 0; k < K8; k += 8)
                for (int l = 0; l < 8; l++) {
                    s00[l] = SPDL_MADD_(a0[k + l], b0[k + l], s00[l]);
                    s01[l] = SPDL_MADD_(a0[k + l], b1[k + l], s01[l]);
                    s10[l] = SPDL_MADD_(a1[k + l], b0[k + l], s10[l]);
                    s11[l] = SPDL_MADD_(a1[k + l], b1[k + l], s11[l]);
                }
            real t[2][2] = {{0, 0}, {0, 0}};
            for (int l = 0; l < 8; l++) {
                t[0][0] += s00[l], t[0][1] += s01[l];
                t[1][0] += s10[l], t[1][1] += s11[l];
            }
            const real *ar[2] = {a0, a1}, *br[2] = {b0, b1};
            for (int a = 0; a < 2 && i + a < M; a++)
                for (int b = 0; b < 2 && j + b < N; b++) {
                    real s = t[a][b];
                    for (int k = K8; k < K; k++)
                        s = SPDL_MADD_(ar[a][k], br[b][k], s);
                    C[(size_t)(i + a) * ldc + (size_t)(j + b) * cs] += s;
                }
        }
    }
}

/* T[l][i] = X[i*rs + l]: a tile turned sample-major, for dA += G X^T. In
 * blocks of 8 rows, so every write is one of 8 contiguous elements and each
 * row's cache lines are read 8 lanes at a time (3-5x faster than row by
 * row at n = 256, whose writes were all 8n bytes apart). */
SPDL_KERNEL void spdl_transpose_tile(int n, const real *restrict X, size_t rs, real *restrict T)
{
    int i0 = 0;
    for (; i0 + 8 <= n; i0 += 8)
        for (int l = 0; l < SPDL_BT; l++)
            for (int i = i0; i < i0 + 8; i++)
                T[(size_t)l * n + i] = X[(size_t)i * rs + l];
    for (; i0 < n; i0++)
        for (int l = 0; l < SPDL_BT; l++)
            T[(size_t)l * n + i0] = X[(size_t)i0 * rs + l];
}

/* sum over the lanes of a tile row, in 8 independent partial sums */
SPDL_KERNEL real spdl_lane_sum(const real *restrict x)
{
    real s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (int l = 0; l < SPDL_BT; l += 8) {
        s0 += x[l]; s1 += x[l + 1]; s2 += x[l + 2]; s3 += x[l + 3];
        s4 += x[l + 4]; s5 += x[l + 5]; s6 += x[l + 6]; s7 += x[l + 7];
    }
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}

SPDL_KERNEL real spdl_lane_dot(const real *restrict x, const real *restrict y)
{
    real s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (int l = 0; l < SPDL_BT; l += 8) {
        s0 += x[l] * y[l]; s1 += x[l + 1] * y[l + 1]; s2 += x[l + 2] * y[l + 2]; s3 += x[l + 3] * y[l + 3];
        s4 += x[l + 4] * y[l + 4]; s5 += x[l + 5] * y[l + 5]; s6 += x[l + 6] * y[l + 6]; s7 += x[l + 7] * y[l + 7];
    }
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}

/* Y = softmax(X) over the n rows, per lane; the stable form (max subtracted). */
SPDL_KERNEL void spdl_softmax(int n, const real *restrict X, real *restrict Y)
{
    real mx[SPDL_BT], sum[SPDL_BT];
    for (int l = 0; l < SPDL_BT; l++)
        mx[l] = X[l];
    for (int i = 1; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            mx[l] = spdl_select_r(X[(size_t)i * SPDL_BT + l] > mx[l], X[(size_t)i * SPDL_BT + l], mx[l]);
    for (int l = 0; l < SPDL_BT; l++)
        sum[l] = 0;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++) {
            real e = spdl_exp_r(X[(size_t)i * SPDL_BT + l] - mx[l]);
            Y[(size_t)i * SPDL_BT + l] = e;
            sum[l] += e;
        }
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            Y[(size_t)i * SPDL_BT + l] /= sum[l];
}

/* GX (+)= Y * (G - sum_i G_i Y_i): the adjoint of softmax. */
SPDL_KERNEL void spdl_softmax_adj(int n, const real *restrict Y, const real *restrict G, real *restrict GX, int acc)
{
    real dot[SPDL_BT];
    for (int l = 0; l < SPDL_BT; l++)
        dot[l] = 0;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            dot[l] += G[(size_t)i * SPDL_BT + l] * Y[(size_t)i * SPDL_BT + l];
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++) {
            size_t j = (size_t)i * SPDL_BT + l;
            real v = Y[j] * (G[j] - dot[l]);
            GX[j] = acc ? GX[j] + v : v;
        }
}

/* L[l] = logsumexp(Z[:, l]) - Z[c_l][l] = -log softmax(Z)[c]: cross-entropy from logits,
 * as (max - Z[c]) + log(sum exp(Z - max)): the difference first, since adding
 * log(sum) (in [0, log n]) to a max near 1e17 would round it away. */
SPDL_KERNEL void spdl_ce_logits(int n, const real *restrict Z, const real *restrict C, real *restrict L)
{
    real p[SPDL_BT * 2];
    real *mx = p, *sum = p + SPDL_BT;
    for (int l = 0; l < SPDL_BT; l++)
        mx[l] = Z[l];
    for (int i = 1; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            mx[l] = spdl_select_r(Z[(size_t)i * SPDL_BT + l] > mx[l], Z[(size_t)i * SPDL_BT + l], mx[l]);
    for (int l = 0; l < SPDL_BT; l++)
        sum[l] = 0;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            sum[l] += spdl_exp_r(Z[(size_t)i * SPDL_BT + l] - mx[l]);
    for (int l = 0; l < SPDL_BT; l++) {
        int c = (int)C[l];
        L[l] = (mx[l] - Z[(size_t)c * SPDL_BT + l]) + spdl_log_r(sum[l]);
    }
}

/* GZ (+)= G * (softmax(Z) - onehot(c)) */
SPDL_KERNEL void spdl_ce_logits_adj(int n, const real *restrict Z, const real *restrict C, const real *restrict G,
                                      real *restrict GZ, int acc)
{
    real mx[SPDL_BT], sum[SPDL_BT];
    for (int l = 0; l < SPDL_BT; l++)
        mx[l] = Z[l];
    for (int i = 1; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            mx[l] = spdl_select_r(Z[(size_t)i * SPDL_BT + l] > mx[l], Z[(size_t)i * SPDL_BT + l], mx[l]);
    for (int l = 0; l < SPDL_BT; l++)
        sum[l] = 0;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            sum[l] += spdl_exp_r(Z[(size_t)i * SPDL_BT + l] - mx[l]);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++) {
            size_t j = (size_t)i * SPDL_BT + l;
            real v = G[l] * (spdl_exp_r(Z[j] - mx[l]) / sum[l] - (real)(C[l] == (real)i));
            GZ[j] = acc ? GZ[j] + v : v;
        }
}

/* ---- parameters ------------------------------------------------------------------- */

/* A deterministic generator (splitmix64): the same seed gives the same bits. */
SPDL_KERNEL uint64_t spdl_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1) */
SPDL_KERNEL double spdl_rng_uniform(uint64_t *s) { return ((double)(spdl_rng_next(s) >> 11) + 0.5) * 0x1.0p-53; }

SPDL_KERNEL double spdl_rng_normal(uint64_t *s)
{
    double u = spdl_rng_uniform(s), v = spdl_rng_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

enum { SPDL_GRAM_MAX = 128 };

/* ||G||_F of a k x k matrix */
SPDL_KERNEL double spdl_frobenius(int k, const double *G)
{
    double s = 0;
    for (int i = 0; i < k * k; i++)
        s += G[i] * G[i];
    return sqrt(s);
}

/* A rigorous upper bound on the spectral norm of the m x n matrix A (row
 * stride lda), by Gram iteration (Delattre, Barthelemy, Araujo, Allauzen,
 * "Efficient bound of Lipschitz constant for convolutional layers by Gram
 * iteration", ICML 2023): with G_0 the Gram matrix of A and G_{t+1} = G_t^2,
 * sigma_max(A)^(2^(t+1)) = sigma_max(G_t) <= ||G_t||_F for every t, and the
 * bound decreases to sigma_max as t grows. Rescaling by the Frobenius norm
 * each step keeps the entries in range. Rounding in the products is covered
 * by a relative margin of 1e-10 (the products' error is below
 * 16 k t 2^-53 ~ 1e-12 for k <= 128, t <= 16, shrunk by the root); a bound
 * at any t is sound, so the iteration may stop early.
 * Matrices whose smaller side exceeds SPDL_GRAM_MAX rows are bounded by
 * blocks of rows: ||A||^2 <= sum_i ||R_i||^2 (sound, at most sqrt(blocks)
 * looser). Scratch: 2 k^2 doubles on the stack. */
SPDL_KERNEL double spdl_dot(int n, const double *restrict x, const double *restrict y)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

/* One row block (m <= SPDL_GRAM_MAX rows of A, row stride lda, column stride
 * cs). Stops as soon as the bound is at most stop_below (the caller only
 * needs to know it is), or when an iteration improves it by less than rtol. */
SPDL_KERNEL double spdl_norm2_block(int m, int n, const double *A, size_t lda, size_t cs, double stop_below, double rtol)
{
    double G[SPDL_GRAM_MAX * SPDL_GRAM_MAX], H[SPDL_GRAM_MAX * SPDL_GRAM_MAX];
    int k = m;
    for (int i = 0; i < k; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            if (cs == 1)
                s = spdl_dot(n, A + (size_t)i * lda, A + (size_t)j * lda);
            else
                for (int c = 0; c < n; c++)
                    s += A[(size_t)i * lda + (size_t)c * cs] * A[(size_t)j * lda + (size_t)c * cs];
            G[i * k + j] = G[j * k + i] = s;
        }
    double f = spdl_frobenius(k, G);
    if (f == 0 || !isfinite(f))
        return f == 0 ? 0 : INFINITY;
    /* sigma^2 <= ||G||_F; track log of the scale s_t with G_t = s_t * Gt */
    double logscale = log(f);
    for (int i = 0; i < k * k; i++)
        G[i] /= f;
    double best = exp(0.5 * logscale) * (1 + 1e-10); /* the bound at t = 0 */
    double pw = 0.5;                                  /* 1 / 2^(t+1) */
    for (int t = 1; t <= 16 && best > stop_below; t++) {
        /* G symmetric: (G G)_ij is the dot product of rows i and j */
        for (int i = 0; i < k; i++)
            for (int j = 0; j <= i; j++)
                H[i * k + j] = H[j * k + i] = spdl_dot(k, G + i * k, G + j * k);
        double h = spdl_frobenius(k, H);
        if (h == 0)
            break;
        logscale = 2 * logscale + log(h);
        for (int i = 0; i < k * k; i++)
            G[i] = H[i] / h;
        pw *= 0.5;
        double bound = exp(pw * logscale) * (1 + 1e-10);
        if (bound < best) {
            double prev = best;
            best = bound;
            if (prev / bound < 1 + rtol)
                break;
        }
    }
    return best;
}

/* The upper bound for the whole matrix; see spdl_norm2_block for the
 * early stops (pass stop_below = 0 and a small rtol for the tightest). */
SPDL_KERNEL double spdl_norm2_upper(int m, int n, const double *A, double stop_below, double rtol)
{
    /* work on the side with fewer rows: G = A A' (m x m) or A' A (n x n) */
    size_t lda = (size_t)n, cs = 1;
    int rows = m, cols = n;
    if (n < m) {
        lda = 1;
        cs = (size_t)n;
        rows = n;
        cols = m;
    }
    if (rows <= SPDL_GRAM_MAX)
        return spdl_norm2_block(rows, cols, A, lda, cs, stop_below, rtol);
    double s = 0;
    for (int r = 0; r < rows; r += SPDL_GRAM_MAX) {
        int b = rows - r < SPDL_GRAM_MAX ? rows - r : SPDL_GRAM_MAX;
        double nb = spdl_norm2_block(b, cols, A + (size_t)r * lda, lda, cs, 0, rtol);
        s += nb * nb;
    }
    return sqrt(s) * (1 + 1e-10);
}

/* Projects y (n numbers) onto {0 <= x_i <= hi, sum x_i = total} in the
 * Euclidean norm: x_i = clamp(y_i - tau, 0, hi) with tau found by bisection
 * (the sum is monotone in tau). Requires n * hi >= total. */
SPDL_KERNEL void spdl_project_capped_simplex(size_t n, double *y, double hi, double total)
{
    /* at tau = max y every x_i is 0; at tau = min y - hi every x_i is hi */
    double lo_t = y[0] - hi, hi_t = y[0];
    for (size_t i = 1; i < n; i++) {
        if (y[i] > hi_t)
            hi_t = y[i];
        if (y[i] - hi < lo_t)
            lo_t = y[i] - hi;
    }
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo_t + hi_t), s = 0;
        for (size_t i = 0; i < n; i++) {
            double v = y[i] - mid;
            s += v < 0 ? 0 : v > hi ? hi : v;
        }
        if (s > total)
            lo_t = mid;
        else
            hi_t = mid;
    }
    double tau = 0.5 * (lo_t + hi_t), s = 0;
    for (size_t i = 0; i < n; i++) {
        double v = y[i] - tau;
        y[i] = v < 0 ? 0 : v > hi ? hi : v;
        s += y[i];
    }
    /* spread the bisection's last rounding over the free coordinates */
    double err = total - s;
    size_t nfree = 0;
    for (size_t i = 0; i < n; i++)
        nfree += y[i] > 0 && y[i] < hi;
    if (nfree)
        for (size_t i = 0; i < n; i++)
            if (y[i] > 0 && y[i] < hi)
                y[i] += err / (double)nfree;
}

/* ---- structured matrices: lu[n] and orth[n] ------------------------------------ */

/* lu[n]: R holds L strictly below the diagonal (unit diagonal), U above it,
 * and s on it with U_ii = exp(s_i); M = L U (the permutation P is I), so
 * det M = exp(sum s_i) and M is invertible for every R. */
SPDL_KERNEL real spdl_lu_l(const real *R, int n, int i, int k) { return k < i ? R[i * n + k] : k == i ? 1 : 0; }
SPDL_KERNEL real spdl_lu_u(const real *R, int n, int k, int j)
{
    return k < j ? R[k * n + j] : k == j ? spdl_exp_r(R[k * n + k]) : 0;
}

SPDL_KERNEL void spdl_lu_compose(int n, const real *restrict R, real *restrict M)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int kmax = i < j ? i : j;
            real s = 0;
            for (int k = 0; k <= kmax; k++)
                s += spdl_lu_l(R, n, i, k) * spdl_lu_u(R, n, k, j);
            M[i * n + j] = s;
        }
}

/* GR += d/dR of <G, L U> */
SPDL_KERNEL void spdl_lu_compose_adj(int n, const real *restrict R, const real *restrict G, real *restrict GR)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < i; k++) { /* L_ik: sum_j G_ij U_kj */
            real s = 0;
            for (int j = k; j < n; j++)
                s += G[i * n + j] * spdl_lu_u(R, n, k, j);
            GR[i * n + k] += s;
        }
    for (int k = 0; k < n; k++)
        for (int j = k; j < n; j++) { /* U_kj: sum_i L_ik G_ij */
            real s = 0;
            for (int i = k; i < n; i++)
                s += spdl_lu_l(R, n, i, k) * G[i * n + j];
            GR[k * n + j] += j == k ? s * spdl_exp_r(R[k * n + k]) : s;
        }
}

/* X = (L U)^{-1} = U^{-1} L^{-1}, column by column. */
SPDL_KERNEL void spdl_lu_inverse(int n, const real *restrict R, real *restrict X)
{
    for (int c = 0; c < n; c++) {
        for (int i = 0; i < n; i++) { /* L y = e_c */
            real s = i == c ? 1 : 0;
            for (int k = 0; k < i; k++)
                s -= R[i * n + k] * X[k * n + c];
            X[i * n + c] = s;
        }
        for (int i = n - 1; i >= 0; i--) { /* U x = y */
            real s = X[i * n + c];
            for (int k = i + 1; k < n; k++)
                s -= R[i * n + k] * X[k * n + c];
            X[i * n + c] = s / spdl_exp_r(R[i * n + i]);
        }
    }
}

/* The log-determinant of lu[n]: sum s_i. */
SPDL_KERNEL real spdl_lu_logdet(int n, const real *restrict R)
{
    real s = 0;
    for (int i = 0; i < n; i++)
        s += R[i * n + i];
    return s;
}

/* ld[l] += log|det A_l| for the n x n matrices of a tile, A_l[r][c] at
 * A[(r * n + c) * SPDL_BT + l]; Gaussian elimination with partial pivoting,
 * in place (A is destroyed). Every lane runs the same loops, so the rows are
 * swapped by selection rather than by branching. */
SPDL_KERNEL void spdl_logabsdet_tile(int n, real *restrict A, real *restrict ld)
{
    for (int k = 0; k < n; k++) {
        for (int i = k + 1; i < n; i++) /* bring the larger pivot to row k */
            for (int l = 0; l < SPDL_BT; l++) {
                const int swap = fabs(A[(i * n + k) * SPDL_BT + l]) > fabs(A[(k * n + k) * SPDL_BT + l]);
                for (int j = k; j < n; j++) {
                    const real a = A[(k * n + j) * SPDL_BT + l], b = A[(i * n + j) * SPDL_BT + l];
                    A[(k * n + j) * SPDL_BT + l] = swap ? b : a;
                    A[(i * n + j) * SPDL_BT + l] = swap ? a : b;
                }
            }
        for (int l = 0; l < SPDL_BT; l++)
            ld[l] += spdl_log_r(fabs(A[(k * n + k) * SPDL_BT + l]));
        for (int i = k + 1; i < n; i++)
            for (int l = 0; l < SPDL_BT; l++) {
                const real piv = A[(k * n + k) * SPDL_BT + l];
                const real f = piv != 0 ? A[(i * n + k) * SPDL_BT + l] / piv : 0;
                for (int j = k + 1; j < n; j++)
                    A[(i * n + j) * SPDL_BT + l] -= f * A[(k * n + j) * SPDL_BT + l];
            }
    }
}

/* Hutchinson probes: z[i * SPDL_BT + l] = +-1, from a seed that hashes the
 * lane's values x[i * SPDL_BT + l] (i < n) and `salt`, so the estimate is a
 * function of the sample, the same in any batch. */
SPDL_KERNEL void spdl_rademacher_tile(int n, const real *restrict x, uint64_t salt, real *restrict z)
{
    for (int l = 0; l < SPDL_BT; l++) {
        uint64_t h = salt;
        for (int i = 0; i < n; i++) {
            double v = (double)x[i * SPDL_BT + l];
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            h ^= bits;
            h = spdl_rng_next(&h);
        }
        uint64_t r = 0;
        for (int i = 0; i < n; i++) {
            if (i % 64 == 0)
                r = spdl_rng_next(&h);
            z[i * SPDL_BT + l] = (r >> (i % 64)) & 1 ? (real)1 : (real)-1;
        }
    }
}

/* In-place Doolittle factorisation A = L U without pivoting. It exists and
 * is stable for A = I - S with S skew: every leading block has symmetric
 * part I, so no pivot vanishes (each pivot has real part >= 1). */
SPDL_KERNEL void spdl_lu_factor(int n, real *restrict A)
{
    for (int k = 0; k < n; k++)
        for (int i = k + 1; i < n; i++) {
            real f = A[i * n + k] / A[k * n + k];
            A[i * n + k] = f;
            for (int j = k + 1; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
        }
}

/* orth[n]: Q = (I - S)^{-1} (I + S), the Cayley transform of the skew S;
 * Q is orthogonal with det Q = 1. F (n x n scratch) receives the LU of I - S. */
SPDL_KERNEL void spdl_cayley(int n, const real *restrict S, real *restrict Q, real *restrict F)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            F[i * n + j] = (i == j) - S[i * n + j];
            Q[i * n + j] = (i == j) + S[i * n + j];
        }
    spdl_lu_factor(n, F);
    for (int c = 0; c < n; c++) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < i; k++)
                Q[i * n + c] -= F[i * n + k] * Q[k * n + c];
        for (int i = n - 1; i >= 0; i--) {
            for (int k = i + 1; k < n; k++)
                Q[i * n + c] -= F[i * n + k] * Q[k * n + c];
            Q[i * n + c] /= F[i * n + i];
        }
    }
}

/* GS += (I - S)^{-T} G (I + Q)^T, the adjoint of the Cayley transform:
 * dQ = (I - S)^{-1} dS (I + Q). F and H are n x n scratch. */
SPDL_KERNEL void spdl_cayley_adj(int n, const real *restrict S, const real *restrict Q, const real *restrict G,
                                 real *restrict GS, real *restrict F, real *restrict H)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            F[i * n + j] = (i == j) - S[i * n + j];
            real s = G[i * n + j]; /* (G (I + Q)^T)_ij = G_ij + sum_k G_ik Q_jk */
            for (int k = 0; k < n; k++)
                s += G[i * n + k] * Q[j * n + k];
            H[i * n + j] = s;
        }
    spdl_lu_factor(n, F); /* I - S = L U, so (I - S)^T = U^T L^T */
    for (int c = 0; c < n; c++) {
        for (int i = 0; i < n; i++) { /* U^T y = h */
            for (int k = 0; k < i; k++)
                H[i * n + c] -= F[k * n + i] * H[k * n + c];
            H[i * n + c] /= F[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) /* L^T x = y */
            for (int k = i + 1; k < n; k++)
                H[i * n + c] -= F[k * n + i] * H[k * n + c];
    }
    for (int i = 0; i < n * n; i++)
        GS[i] += H[i];
}

/* ---- binomial checkpointing (Griewank's Revolve) ----------------------------------- */

/* beta(f, t) = C(f + t, t): the most steps that can be reversed with f free
 * snapshots when each step is recomputed at most t times (Griewank 1992). */
SPDL_KERNEL double spdl_beta(int f, int t)
{
    double b = 1;
    for (int i = 1; i <= t; i++)
        b = b * (f + i) / i;
    return b;
}

/* Where to put the next snapshot when reversing n steps with f >= 1 free
 * snapshots: with t the least with beta(f, t) >= n, advance m = n -
 * beta(f - 1, t) steps (at least 1), so the right part fits f - 1
 * snapshots and t sweeps and the left part f snapshots and t - 1 sweeps. */
SPDL_KERNEL size_t spdl_revolve_split(size_t n, int f)
{
    int t = 0;
    while (spdl_beta(f, t) < (double)n)
        t++;
    double right = spdl_beta(f - 1, t);
    size_t m = (double)n > right ? n - (size_t)right : 1;
    return m < 1 ? 1 : m >= n ? n - 1 : m;
}

/* ---- circular convolutions of Z(n) sequences (DESIGN §8) ---------------------
 * A kernel K[o, c, u] (cout x cin x k) maps a sequence X[c, i] (cin rows of
 * n positions, each a row of SPDL_BT lanes) to
 *     Y[o, i] = sum_{c, u} K[o, c, u] X[c, (i + u - r) mod n],  r = floor((k - 1) / 2).
 * spdl_zconv is that map, spdl_zconv_t its transpose
 *     Z[c, j] = sum_{o, u} K[o, c, u] W[o, (j - u + r) mod n],
 * and spdl_zconv_dk the kernel's gradient of either,
 *     GK[o, c, u] += sum_{i, lanes} A[o, i] B[c, (i + u - r) mod n]
 * (A = dY, B = X for the map; A = W, B = dZ for the transpose). acc = 0
 * overwrites the result, 1 adds to it. Lanes are innermost: one vector
 * loop per kernel tap and position. */

SPDL_KERNEL int spdl_zmod(int i, int n) { return ((i % n) + n) % n; }

SPDL_KERNEL void spdl_zconv(int cout, int cin, int k, int n, const real *restrict K, const real *restrict X,
                            real *restrict Y, int acc)
{
    const int r = (k - 1) / 2;
    if (!acc)
        memset(Y, 0, sizeof(real) * (size_t)cout * (size_t)n * SPDL_BT);
    for (int o = 0; o < cout; o++)
        for (int c = 0; c < cin; c++)
            for (int u = 0; u < k; u++) {
                const real w = K[((size_t)o * (size_t)cin + (size_t)c) * (size_t)k + (size_t)u];
                for (int i = 0; i < n; i++) {
                    const real *restrict xs = X + ((size_t)c * (size_t)n + (size_t)spdl_zmod(i + u - r, n)) * SPDL_BT;
                    real *restrict ys = Y + ((size_t)o * (size_t)n + (size_t)i) * SPDL_BT;
                    for (int l = 0; l < SPDL_BT; l++)
                        ys[l] += w * xs[l];
                }
            }
}

SPDL_KERNEL void spdl_zconv_t(int cout, int cin, int k, int n, const real *restrict K, const real *restrict W,
                              real *restrict Z, int acc)
{
    const int r = (k - 1) / 2;
    if (!acc)
        memset(Z, 0, sizeof(real) * (size_t)cin * (size_t)n * SPDL_BT);
    for (int c = 0; c < cin; c++)
        for (int o = 0; o < cout; o++)
            for (int u = 0; u < k; u++) {
                const real w = K[((size_t)o * (size_t)cin + (size_t)c) * (size_t)k + (size_t)u];
                for (int j = 0; j < n; j++) {
                    const real *restrict ws = W + ((size_t)o * (size_t)n + (size_t)spdl_zmod(j - u + r, n)) * SPDL_BT;
                    real *restrict zs = Z + ((size_t)c * (size_t)n + (size_t)j) * SPDL_BT;
                    for (int l = 0; l < SPDL_BT; l++)
                        zs[l] += w * ws[l];
                }
            }
}

SPDL_KERNEL void spdl_zconv_dk(int cout, int cin, int k, int n, const real *restrict A, const real *restrict B,
                               real *restrict GK)
{
    const int r = (k - 1) / 2;
    for (int o = 0; o < cout; o++)
        for (int c = 0; c < cin; c++)
            for (int u = 0; u < k; u++) {
                real t[SPDL_BT];
                for (int l = 0; l < SPDL_BT; l++)
                    t[l] = 0;
                for (int i = 0; i < n; i++) {
                    const real *restrict as = A + ((size_t)o * (size_t)n + (size_t)i) * SPDL_BT;
                    const real *restrict bs = B + ((size_t)c * (size_t)n + (size_t)spdl_zmod(i + u - r, n)) * SPDL_BT;
                    for (int l = 0; l < SPDL_BT; l++)
                        t[l] += as[l] * bs[l];
                }
                real s = 0;
                for (int l = 0; l < SPDL_BT; l++)
                    s += t[l];
                GK[((size_t)o * (size_t)cin + (size_t)c) * (size_t)k + (size_t)u] += s;
            }
}

/* A sound upper bound on the operator norm of X -> zconv(K, X) on Z(n)
 * sequences. The map is block-circulant, so the discrete Fourier transform
 * along the sequence diagonalises it: its singular values are those of the
 * symbols K^(w) = sum_u K[:, :, u] e^{i w (u - r)}, w = 2 pi j / n, j < n
 * (a cout x cin complex matrix each; K real, so j and n - j have the same
 * norm). Each complex P + i Q is bounded through its real form
 * [[P, -Q], [Q, P]] (the same singular values, each twice) by
 * spdl_norm2_upper, and the symbols' own rounding (k terms of size |K|) by
 * a margin. M: scratch of 4 cout cin doubles. */
SPDL_KERNEL double spdl_zconv_norm_upper(int cout, int cin, int k, int n, const double *K, double *M)
{
    const int r = (k - 1) / 2;
    const size_t R = 2 * (size_t)cin; /* row length of the real form */
    double best = 0, kmax = 0;
    for (size_t q = 0; q < (size_t)cout * (size_t)cin * (size_t)k; q++)
        kmax = fmax(kmax, fabs(K[q]));
    for (int j = 0; j <= n / 2; j++) {
        for (int o = 0; o < cout; o++)
            for (int c = 0; c < cin; c++) {
                double re = 0, im = 0;
                for (int u = 0; u < k; u++) {
                    /* the angle reduced exactly: (j (u - r)) mod n, then 2 pi / n times it */
                    long a = ((long)j * (long)(u - r)) % (long)n;
                    double t = 2 * 3.14159265358979323846 * (double)a / (double)n;
                    double w = K[((size_t)o * (size_t)cin + (size_t)c) * (size_t)k + (size_t)u];
                    re += w * cos(t);
                    im += w * sin(t);
                }
                M[(size_t)o * R + (size_t)c] = re;
                M[(size_t)o * R + (size_t)cin + (size_t)c] = -im;
                M[((size_t)cout + (size_t)o) * R + (size_t)c] = im;
                M[((size_t)cout + (size_t)o) * R + (size_t)cin + (size_t)c] = re;
            }
        double b = spdl_norm2_upper(2 * cout, 2 * cin, M, 0, 1e-9);
        if (b > best)
            best = b;
    }
    /* each symbol entry is within k |K| 16 eps of the exact one (cos, sin,
     * products, sums): the real form's error matrix has norm at most its
     * Frobenius norm, 2 sqrt(cout cin) times that */
    return best + 2 * sqrt((double)cout * (double)cin) * (double)k * kmax * 16 * 0x1p-52 + 1e-300;
}

/* ---- group convolutions on square grids: C4 and D4 (DESIGN §8) ------------------
 * Group elements e = k + 4 s stand for R^k M^s (mirror first, then k
 * rotations); (R^k M^s)(R^l M^t) = R^(k + (-1)^s l) M^(s + t). A k x k
 * filter transforms like an image: (R w)[u, v] = w[v, k-1-u],
 * (M w)[u, v] = w[u, k-1-v]. lift and gconv are run as plain correlations
 * with an expanded filter bank (as GrouPy and escnn do):
 *   lift:  W[(o, e), i][u, v]      = (g_e K[o, i])[u, v]
 *   gconv: W[(o, e), (i, f)][u, v] = (g_e K[o, i, idx(g_e^-1 g_f)])[u, v]
 * and corr(a, w)[p, q] = sum_{u, v} w[u, v] a[p + u - r, q + v - r] (zero
 * outside the grid, r = (k - 1) / 2) over tiles of SPDL_BT lanes. */

SPDL_KERNEL int spdl_g_compose(int e1, int e2)
{
    int k1 = e1 & 3, s1 = e1 >> 2, k2 = e2 & 3, s2 = e2 >> 2;
    return ((k1 + (s1 ? 4 - k2 : k2)) & 3) + 4 * (s1 ^ s2);
}

SPDL_KERNEL int spdl_g_inverse(int e) { return e >> 2 ? e : (4 - (e & 3)) & 3; } /* (R^k M)^-1 = R^k M */

/* (g_e w)[u, v] = w[tap] for a k x k filter stored row-major */
SPDL_KERNEL size_t spdl_g_tap(int e, int k, int u, int v)
{
    int a = u, b = v;
    for (int t = 0; t < (e & 3); t++) {
        int na = b, nb = k - 1 - a;
        a = na, b = nb;
    }
    if (e >> 2)
        b = k - 1 - b;
    return (size_t)a * (size_t)k + (size_t)b;
}

/* where bank entry (o, e, j, u, v) comes from in K (j = i for lift, i G + f for gconv) */
SPDL_KERNEL size_t spdl_gbank_src(int G, int gconv, int cin, int k, int o, int e, int j, int u, int v)
{
    size_t k2 = (size_t)k * (size_t)k, t = spdl_g_tap(e, k, u, v);
    if (!gconv)
        return ((size_t)o * (size_t)cin + (size_t)j) * k2 + t;
    int i = j / G, f = j % G, h = spdl_g_compose(spdl_g_inverse(e), f);
    return (((size_t)o * (size_t)cin + (size_t)i) * (size_t)G + (size_t)h) * k2 + t;
}

/* W = the expanded bank of K: cout G x (cin or cin G) x k x k */
SPDL_KERNEL void spdl_gbank(int G, int gconv, int cout, int cin, int k, const real *restrict K, real *restrict W)
{
    int cinx = gconv ? cin * G : cin;
    size_t q = 0;
    for (int o = 0; o < cout; o++)
        for (int e = 0; e < G; e++)
            for (int j = 0; j < cinx; j++)
                for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++)
                        W[q++] = K[spdl_gbank_src(G, gconv, cin, k, o, e, j, u, v)];
}

/* GK += the expansion's transpose applied to GW */
SPDL_KERNEL void spdl_gbank_adj(int G, int gconv, int cout, int cin, int k, const real *restrict GW, real *restrict GK)
{
    int cinx = gconv ? cin * G : cin;
    size_t q = 0;
    for (int o = 0; o < cout; o++)
        for (int e = 0; e < G; e++)
            for (int j = 0; j < cinx; j++)
                for (int u = 0; u < k; u++)
                    for (int v = 0; v < k; v++)
                        GK[spdl_gbank_src(G, gconv, cin, k, o, e, j, u, v)] += GW[q++];
}

/* The correlations run tap by tap as matrix products over channels
 * (spdl_gemm, spdl_gemm_nt), with pixels and lanes as the long dimension:
 * for the tap (u, v) and output row p, the pixels q whose source column
 * q + v - r is on the grid form one contiguous run of both images, so
 *   Y[:, p, q0:q1] += W[:, :, u, v] X[:, p + u - r, q0 + v - r : q1 + v - r]
 * is one product. The centre tap covers every pixel and goes first, so
 * acc = 0 needs no clearing. spdl_corr2_span gives a tap's clipped run. */
SPDL_KERNEL int spdl_corr2_span(int n, int r, int u, int *p0, int *p1)
{
    *p0 = r - u > 0 ? r - u : 0;
    *p1 = n + r - u < n ? n + r - u : n;
    return *p1 > *p0;
}

/* the pixels of a block of a grid of tiles over `maps` maps, about SPDL_CACHE_BLOCK_ bytes, at least 1 */
SPDL_KERNEL size_t spdl_corr2_pixels_(int maps)
{
    size_t p = SPDL_CACHE_BLOCK_ / ((size_t)(maps > 1 ? maps : 1) * SPDL_BT * sizeof(real));
    return p > 0 ? p : 1;
}

/* Out[m, p, q] (+)= sum over the taps (u, v) and mi input maps c of
 * W[m, c, u, v] In[c, p + s (u - r), q + s (v - r)], s = +1 (the
 * correlation: W's rows m are output maps, stride wrs, and its columns c
 * stride wks) or -1 (its transpose, W read transposed). A block of Out (a
 * few pixels of one row, about 256 KiB over its mo maps) takes every tap
 * before the next block, so it stays in the cache while the taps add to
 * it; each element gets the centre tap first, then the others in (u, v)
 * order, each one FMA chain over c started from Out. */
SPDL_KERNEL void spdl_corr2_gather_(int mo, int mi, int k, int n, const real *restrict W, size_t wrs, size_t wks,
                                    int s, const real *restrict In, real *restrict Out, int acc)
{
    const int r = (k - 1) / 2;
    const size_t img = (size_t)n * (size_t)n * SPDL_BT, pixels = spdl_corr2_pixels_(mo);
    const int block = pixels < (size_t)n ? (int)pixels : n;
    for (int p = 0; p < n; p++)
        for (int c0 = 0; c0 < n; c0 += block) {
            const int c1 = n - c0 < block ? n : c0 + block;
            real *out = Out + (size_t)p * (size_t)n * SPDL_BT;
            spdl_gemm(mo, (c1 - c0) * SPDL_BT, mi, W + (size_t)r * (size_t)k + (size_t)r, wrs, wks,
                      In + ((size_t)p * (size_t)n + (size_t)c0) * SPDL_BT, img, out + (size_t)c0 * SPDL_BT, img, acc);
            for (int u = 0; u < k; u++) {
                const int row = p + s * (u - r);
                if (row < 0 || row >= n)
                    continue;
                for (int v = 0; v < k; v++) {
                    const int d = s * (v - r); /* the source column of q is q + d */
                    const int q0 = c0 > -d ? c0 : -d, q1 = c1 < n - d ? c1 : n - d;
                    if ((u == r && v == r) || q1 <= q0)
                        continue;
                    spdl_gemm(mo, (q1 - q0) * SPDL_BT, mi, W + (size_t)u * (size_t)k + (size_t)v, wrs, wks,
                              In + ((size_t)row * (size_t)n + (size_t)(q0 + d)) * SPDL_BT, img,
                              out + (size_t)q0 * SPDL_BT, img, 1);
                }
            }
        }
}

/* GW[o, i, u, v] += sum_{p, q, lanes} A[o, p, q] B[i, p + u - r, q + v - r],
 * by blocks of A of about 256 KiB (whole rows when a row of the co maps is
 * smaller, else a few pixels of one row), every tap before the next block;
 * a block of whole rows takes the centre column of taps (v = r) in one
 * product over all its rows */
SPDL_KERNEL void spdl_corr2_dw_taps_(int co, int ci, int k, int n, const real *restrict A, const real *restrict B,
                                     real *restrict GW)
{
    const int r = (k - 1) / 2;
    const size_t k2 = (size_t)k * (size_t)k, img = (size_t)n * (size_t)n * SPDL_BT, row = (size_t)n * SPDL_BT;
    const size_t pixels = spdl_corr2_pixels_(co);
    const int rows = pixels / (size_t)n > 0 ? (int)(pixels / (size_t)n) : 1;
    const int cols = pixels / (size_t)n > 0 ? n : (int)pixels;
    for (int b0 = 0; b0 < n; b0 += rows)
        for (int c0 = 0; c0 < n; c0 += cols) {
            const int b1 = n - b0 < rows ? n : b0 + rows, c1 = n - c0 < cols ? n : c0 + cols;
            for (int u = 0; u < k; u++) {
                int p0, p1;
                if (!spdl_corr2_span(n, r, u, &p0, &p1))
                    continue;
                p0 = p0 > b0 ? p0 : b0, p1 = p1 < b1 ? p1 : b1;
                for (int v = 0; v < k && p1 > p0; v++) {
                    const int d = v - r, q0 = c0 > -d ? c0 : -d, q1 = c1 < n - d ? c1 : n - d;
                    real *g = GW + (size_t)u * (size_t)k + (size_t)v;
                    if (q1 <= q0)
                        continue;
                    if (d == 0 && c0 == 0 && c1 == n) {
                        spdl_gemm_nt(co, ci, (int)((size_t)(p1 - p0) * row), A + (size_t)p0 * row, img,
                                     B + (size_t)(p0 + u - r) * row, img, g, (size_t)ci * k2, k2);
                        continue;
                    }
                    for (int p = p0; p < p1; p++)
                        spdl_gemm_nt(co, ci, (q1 - q0) * SPDL_BT, A + ((size_t)p * (size_t)n + (size_t)q0) * SPDL_BT,
                                     img, B + ((size_t)(p + u - r) * (size_t)n + (size_t)(q0 + d)) * SPDL_BT, img, g,
                                     (size_t)ci * k2, k2);
                }
            }
        }
}

/* ---- Winograd F(2x2, 3x3) and F(4x4, 3x3): 3 x 3 grid correlations with fewer products ----
 * Lavin and Gray's minimal filtering: an m x m block of outputs of a 3 x 3
 * correlation is A^T [(G g G^T) . (B^T d B)] A for the a x a block d of
 * input under it (a = m + 2; rows and columns m t - 1 .. m t + m, zero off
 * the grid). For m = 2
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *     A^T = [1 1 1 0; 0 1 -1 -1];
 * for m = 4 (points 0, +-1, +-2)
 *     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
 *     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
 * Over channels each of the X = a^2 transformed taps xi is one matrix
 * product U[xi] (mo x mi) V[xi] (mi x tiles' lanes): X products for m^2
 * outputs where the taps take 9 m^2 (2.25x fewer for m = 2, 4x for m = 4).
 * The products run blocks of T tiles at a time (V and their results M in
 * the scratch S, after U). The kernel gradient is the same map's transpose
 * in g: dg = G^T [sum over tiles and lanes of (A dY A^T) . V] G, X
 * products P[xi] V[xi]^T. Each output is a sum in another order than the
 * taps', with the transforms' extra roundings (m = 4: within 5e-7 of the
 * largest output in float, against 1e-7 for the taps). */

/* The transforms over lanes, written out so that the lane loop is the only
 * loop and the compilers vectorise it (SPDL_LANES). */

/* B^T for m = 2 and 4, one column of d */
#define SPDL_WINO2_BT_(d0, d1, d2, d3, o0, o1, o2, o3) (o0 = (d0) - (d2), o1 = (d1) + (d2), o2 = (d2) - (d1), o3 = (d1) - (d3))
#define SPDL_WINO4_BT_(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                                       \
    (o0 = 4 * (d0) - 5 * (d2) + (d4), o1 = (d3) + (d4) - 4 * ((d1) + (d2)), o2 = (d4) - (d3) + 4 * ((d1) - (d2)), \
     o3 = (d4) - (d2) + 2 * ((d3) - (d1)), o4 = (d4) - (d2) + 2 * ((d1) - (d3)), o5 = 4 * (d1) - 5 * (d3) + (d5))

/* V[xi * xs] = B^T d B over lanes, m = 2: d[i][j] at d[4 i + j] (a grid
 * pixel, or zeros off the grid) */
SPDL_KERNEL void spdl_wino2_bt_(const real *const d[16], real *restrict V, size_t xs)
{
    real t[4][4][SPDL_BT];
    for (int j = 0; j < 4; j++) {
        const real *restrict c0 = d[j], *restrict c1 = d[4 + j], *restrict c2 = d[8 + j], *restrict c3 = d[12 + j];
        SPDL_LANES
        SPDL_WINO2_BT_(c0[l], c1[l], c2[l], c3[l], t[0][j][l], t[1][j][l], t[2][j][l], t[3][j][l]);
    }
    for (int i = 0; i < 4; i++) {
        real *restrict v = V + (size_t)(4 * i) * xs;
        SPDL_LANES
        SPDL_WINO2_BT_(t[i][0][l], t[i][1][l], t[i][2][l], t[i][3][l], v[l], v[xs + l], v[2 * xs + l], v[3 * xs + l]);
    }
}

/* the same for m = 4, d[6 i + j] */
SPDL_KERNEL void spdl_wino4_bt_(const real *const d[36], real *restrict V, size_t xs)
{
    real t[6][6][SPDL_BT];
    for (int j = 0; j < 6; j++) {
        const real *restrict c0 = d[j], *restrict c1 = d[6 + j], *restrict c2 = d[12 + j], *restrict c3 = d[18 + j],
                            *restrict c4 = d[24 + j], *restrict c5 = d[30 + j];
        SPDL_LANES
        SPDL_WINO4_BT_(c0[l], c1[l], c2[l], c3[l], c4[l], c5[l], t[0][j][l], t[1][j][l], t[2][j][l], t[3][j][l],
                       t[4][j][l], t[5][j][l]);
    }
    for (int i = 0; i < 6; i++) {
        real *restrict v = V + (size_t)(6 * i) * xs;
        SPDL_LANES
        SPDL_WINO4_BT_(t[i][0][l], t[i][1][l], t[i][2][l], t[i][3][l], t[i][4][l], t[i][5][l], v[l], v[xs + l],
                       v[2 * xs + l], v[3 * xs + l], v[4 * xs + l], v[5 * xs + l]);
    }
}

/* an output y (+)= v: a select, never 0 * y, which an output not yet written (NaN, say) would spoil;
 * taken outside the lane loop (SPDL_WINO_ACC_LANES_), as gcc leaves a loop
 * whose stores depend on acc scalar (a 4 x 4 tile's outputs took 20% of a
 * digits_c4 float step so) */
#define SPDL_WINO_PUT_(y, v) ((y) = ACC ? (y) + (v) : (v))
#define SPDL_WINO_ACC_LANES_(...)             \
    do {                                      \
        if (acc) {                            \
            enum { ACC = 1 };                 \
            SPDL_LANES __VA_ARGS__            \
        } else {                              \
            enum { ACC = 0 };                 \
            SPDL_LANES __VA_ARGS__            \
        }                                     \
    } while (0)

/* y (+)= A^T m A over lanes, m[xi] = M[xi * xs], y[i][j] at y + i rs + j SPDL_BT; m = 2 */
SPDL_KERNEL void spdl_wino2_at_(const real *restrict M, size_t xs, real *restrict y, size_t rs, int acc)
{
    SPDL_WINO_ACC_LANES_({
        const real s00 = M[l] + M[4 * xs + l] + M[8 * xs + l], s10 = M[4 * xs + l] - M[8 * xs + l] - M[12 * xs + l];
        const real s01 = M[xs + l] + M[5 * xs + l] + M[9 * xs + l], s11 = M[5 * xs + l] - M[9 * xs + l] - M[13 * xs + l];
        const real s02 = M[2 * xs + l] + M[6 * xs + l] + M[10 * xs + l],
                   s12 = M[6 * xs + l] - M[10 * xs + l] - M[14 * xs + l];
        const real s03 = M[3 * xs + l] + M[7 * xs + l] + M[11 * xs + l],
                   s13 = M[7 * xs + l] - M[11 * xs + l] - M[15 * xs + l];
        SPDL_WINO_PUT_(y[l], s00 + s01 + s02), SPDL_WINO_PUT_(y[SPDL_BT + l], s01 - s02 - s03);
        SPDL_WINO_PUT_(y[rs + l], s10 + s11 + s12), SPDL_WINO_PUT_(y[rs + SPDL_BT + l], s11 - s12 - s13);
    });
}

/* A^T for m = 4, one column */
#define SPDL_WINO4_AT_(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                                               \
    (o0 = (m0) + (m1) + (m2) + (m3) + (m4), o1 = (m1) - (m2) + 2 * ((m3) - (m4)),                              \
     o2 = (m1) + (m2) + 4 * ((m3) + (m4)), o3 = (m1) - (m2) + 8 * ((m3) - (m4)) + (m5))

SPDL_KERNEL void spdl_wino4_at_(const real *restrict M, size_t xs, real *restrict y, size_t rs, int acc)
{
    real s[4][6][SPDL_BT];
    for (int j = 0; j < 6; j++) {
        const real *restrict c = M + (size_t)j * xs;
        SPDL_LANES
        SPDL_WINO4_AT_(c[l], c[6 * xs + l], c[12 * xs + l], c[18 * xs + l], c[24 * xs + l], c[30 * xs + l],
                       s[0][j][l], s[1][j][l], s[2][j][l], s[3][j][l]);
    }
    for (int i = 0; i < 4; i++) {
        real *restrict r = y + (size_t)i * rs;
        SPDL_WINO_ACC_LANES_({
            real o0, o1, o2, o3;
            SPDL_WINO4_AT_(s[i][0][l], s[i][1][l], s[i][2][l], s[i][3][l], s[i][4][l], s[i][5][l], o0, o1, o2, o3);
            SPDL_WINO_PUT_(r[l], o0), SPDL_WINO_PUT_(r[SPDL_BT + l], o1);
            SPDL_WINO_PUT_(r[2 * SPDL_BT + l], o2), SPDL_WINO_PUT_(r[3 * SPDL_BT + l], o3);
        });
    }
}

/* P[xi * xs] = A y A^T over lanes, y[i][j] at y[2 i + j]; A (y0, y1) = (y0, y0 + y1, y0 - y1, -y1) */
SPDL_KERNEL void spdl_wino2_a_(const real *const y[4], real *restrict P, size_t xs)
{
    const real *restrict y0 = y[0], *restrict y1 = y[1], *restrict y2 = y[2], *restrict y3 = y[3];
    SPDL_LANES {
        const real y00 = y0[l], y01 = y1[l], y10 = y2[l], y11 = y3[l];
        const real t00 = y00, t01 = y01, t10 = y00 + y10, t11 = y01 + y11;
        const real t20 = y00 - y10, t21 = y01 - y11, t30 = -y10, t31 = -y11;
        P[l] = t00, P[xs + l] = t00 + t01, P[2 * xs + l] = t00 - t01, P[3 * xs + l] = -t01;
        P[4 * xs + l] = t10, P[5 * xs + l] = t10 + t11, P[6 * xs + l] = t10 - t11, P[7 * xs + l] = -t11;
        P[8 * xs + l] = t20, P[9 * xs + l] = t20 + t21, P[10 * xs + l] = t20 - t21, P[11 * xs + l] = -t21;
        P[12 * xs + l] = t30, P[13 * xs + l] = t30 + t31, P[14 * xs + l] = t30 - t31, P[15 * xs + l] = -t31;
    }
}

/* A for m = 4: (y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + 2 y1 + 4 y2 + 8 y3, y0 - 2 y1 + 4 y2 - 8 y3, y3) */
#define SPDL_WINO4_A_(y0, y1, y2, y3, o0, o1, o2, o3, o4, o5)                                                \
    (o0 = (y0), o1 = ((y0) + (y2)) + ((y1) + (y3)), o2 = ((y0) + (y2)) - ((y1) + (y3)),                        \
     o3 = ((y0) + 4 * (y2)) + 2 * ((y1) + 4 * (y3)), o4 = ((y0) + 4 * (y2)) - 2 * ((y1) + 4 * (y3)), o5 = (y3))

SPDL_KERNEL void spdl_wino4_a_(const real *const y[16], real *restrict P, size_t xs)
{
    real t[6][4][SPDL_BT];
    for (int j = 0; j < 4; j++) {
        const real *restrict c0 = y[j], *restrict c1 = y[4 + j], *restrict c2 = y[8 + j], *restrict c3 = y[12 + j];
        SPDL_LANES
        SPDL_WINO4_A_(c0[l], c1[l], c2[l], c3[l], t[0][j][l], t[1][j][l], t[2][j][l], t[3][j][l], t[4][j][l],
                      t[5][j][l]);
    }
    for (int i = 0; i < 6; i++) {
        real *restrict p = P + (size_t)(6 * i) * xs;
        SPDL_LANES
        SPDL_WINO4_A_(t[i][0][l], t[i][1][l], t[i][2][l], t[i][3][l], p[l], p[xs + l], p[2 * xs + l], p[3 * xs + l],
                      p[4 * xs + l], p[5 * xs + l]);
    }
}

/* G and G^T of F(m x m, 3 x 3) on one column: the filter's transform and
 * the kernel gradient's way back */
#define SPDL_WINO2_G_(g0, g1, g2, o0, o1, o2, o3)                                                             \
    (o0 = (g0), o1 = (real)0.5 * ((g0) + (g1) + (g2)), o2 = (real)0.5 * ((g0) - (g1) + (g2)), o3 = (g2))
#define SPDL_WINO4_G_(g0, g1, g2, o0, o1, o2, o3, o4, o5)                                                     \
    (o0 = (real)0.25 * (g0), o1 = ((g0) + (g1) + (g2)) * -sixth, o2 = ((g0) - (g1) + (g2)) * -sixth,           \
     o3 = ((real)0.25 * (g0) + (real)0.5 * (g1) + (g2)) * sixth,                                               \
     o4 = ((real)0.25 * (g0) - (real)0.5 * (g1) + (g2)) * sixth, o5 = (g2))
#define SPDL_WINO2_GT_(u0, u1, u2, u3, o0, o1, o2)                                                            \
    (o0 = (u0) + (real)0.5 * ((u1) + (u2)), o1 = (real)0.5 * ((u1) - (u2)), o2 = (real)0.5 * ((u1) + (u2)) + (u3))
#define SPDL_WINO4_GT_(u0, u1, u2, u3, u4, u5, o0, o1, o2)                                                    \
    (o0 = (real)0.25 * ((u0) + ((u3) + (u4)) * sixth) - ((u1) + (u2)) * sixth,                                  \
     o1 = ((u2) - (u1) + (real)0.5 * ((u3) - (u4))) * sixth, o2 = ((u3) + (u4) - (u1) - (u2)) * sixth + (u5))

/* The filter transforms take SPDL_WINO_FJ_ filters at a time as lanes, so
 * that they vectorise and write U and read dU along rows (one filter at a
 * time, the 36 scalar stores 4 KiB apart took 8% of a digits_c4 float step) */
#define SPDL_WINO_FJ_ 16
#define SPDL_WINO_FJ_LANES_ for (int l = 0; l < SPDL_WINO_FJ_; l++)

/* U[xi][o][j] = (G g G^T)[xi] for the filter g = W[o wrs + j wks] (s < 0: turned by 180 degrees) */
SPDL_KERNEL void spdl_wino_filter_(int m, int mo, int mi, const real *restrict W, size_t wrs, size_t wks, int s,
                                   real *restrict U)
{
    const size_t xu = (size_t)mo * (size_t)mi;
    const int X = (m + 2) * (m + 2);
    const real sixth = (real)1 / 6;
    for (int o = 0; o < mo; o++)
        for (int j0 = 0; j0 < mi; j0 += SPDL_WINO_FJ_) {
            const int nj = mi - j0 < SPDL_WINO_FJ_ ? mi - j0 : SPDL_WINO_FJ_;
            real g[9][SPDL_WINO_FJ_], h[6][3][SPDL_WINO_FJ_], u[36][SPDL_WINO_FJ_];
            for (int t = 0; t < 9; t++)
                for (int l = 0; l < SPDL_WINO_FJ_; l++)
                    g[t][l] = l < nj ? W[(size_t)o * wrs + (size_t)(j0 + l) * wks + (size_t)(s > 0 ? t : 8 - t)] : 0;
            if (m == 4) {
                for (int v = 0; v < 3; v++)
                    SPDL_WINO_FJ_LANES_
                    SPDL_WINO4_G_(g[v][l], g[3 + v][l], g[6 + v][l], h[0][v][l], h[1][v][l], h[2][v][l], h[3][v][l],
                                  h[4][v][l], h[5][v][l]);
                for (int i = 0; i < 6; i++)
                    SPDL_WINO_FJ_LANES_
                    SPDL_WINO4_G_(h[i][0][l], h[i][1][l], h[i][2][l], u[6 * i][l], u[6 * i + 1][l], u[6 * i + 2][l],
                                  u[6 * i + 3][l], u[6 * i + 4][l], u[6 * i + 5][l]);
            } else {
                for (int v = 0; v < 3; v++)
                    SPDL_WINO_FJ_LANES_
                    SPDL_WINO2_G_(g[v][l], g[3 + v][l], g[6 + v][l], h[0][v][l], h[1][v][l], h[2][v][l], h[3][v][l]);
                for (int i = 0; i < 4; i++)
                    SPDL_WINO_FJ_LANES_
                    SPDL_WINO2_G_(h[i][0][l], h[i][1][l], h[i][2][l], u[4 * i][l], u[4 * i + 1][l], u[4 * i + 2][l],
                                  u[4 * i + 3][l]);
            }
            for (int x = 0; x < X; x++) {
                real *restrict to = U + (size_t)x * xu + (size_t)o * (size_t)mi + (size_t)j0;
                if (nj == SPDL_WINO_FJ_)
                    SPDL_WINO_FJ_LANES_ to[l] = u[x][l];
                else
                    for (int l = 0; l < nj; l++)
                        to[l] = u[x][l];
            }
        }
}

/* GW[q 9 ..] += G^T dU[., q] G for each of the xu filters q */
SPDL_KERNEL void spdl_wino_filter_adj_(int m, size_t xu, const real *restrict dU, real *restrict GW)
{
    const int a = m + 2;
    const real sixth = (real)1 / 6;
    for (size_t q0 = 0; q0 < xu; q0 += SPDL_WINO_FJ_) {
        const int nq = xu - q0 < SPDL_WINO_FJ_ ? (int)(xu - q0) : SPDL_WINO_FJ_;
        real u[36][SPDL_WINO_FJ_], h[6][3][SPDL_WINO_FJ_], g[9][SPDL_WINO_FJ_];
        for (int x = 0; x < a * a; x++) {
            const real *restrict from = dU + (size_t)x * xu + q0;
            if (nq == SPDL_WINO_FJ_)
                SPDL_WINO_FJ_LANES_ u[x][l] = from[l];
            else
                for (int l = 0; l < SPDL_WINO_FJ_; l++)
                    u[x][l] = l < nq ? from[l] : 0;
        }
        for (int i = 0; i < a; i++) {
            real(*r)[SPDL_WINO_FJ_] = u + a * i;
            if (m == 4)
                SPDL_WINO_FJ_LANES_
                SPDL_WINO4_GT_(r[0][l], r[1][l], r[2][l], r[3][l], r[4][l], r[5][l], h[i][0][l], h[i][1][l], h[i][2][l]);
            else
                SPDL_WINO_FJ_LANES_
                SPDL_WINO2_GT_(r[0][l], r[1][l], r[2][l], r[3][l], h[i][0][l], h[i][1][l], h[i][2][l]);
        }
        for (int v = 0; v < 3; v++) {
            if (m == 4)
                SPDL_WINO_FJ_LANES_
                SPDL_WINO4_GT_(h[0][v][l], h[1][v][l], h[2][v][l], h[3][v][l], h[4][v][l], h[5][v][l], g[v][l],
                               g[3 + v][l], g[6 + v][l]);
            else
                SPDL_WINO_FJ_LANES_
                SPDL_WINO2_GT_(h[0][v][l], h[1][v][l], h[2][v][l], h[3][v][l], g[v][l], g[3 + v][l], g[6 + v][l]);
        }
        for (int l = 0; l < nq; l++)
            for (int t = 0; t < 9; t++)
                GW[(q0 + (size_t)l) * 9 + (size_t)t] += g[t][l];
    }
}

/* The X matrices of a block's V, M and P lie SPDL_WINO_SKEW_ elements
 * further apart than their size: at a multiple of 4 KiB apart (a block of
 * 16 maps of 2 tiles in float is 8 KiB) the transforms' streams would fall
 * into one set of the L1 cache, and their loads behind their stores would
 * wait on 4 KiB aliasing (the forward correlation of 16 x 16 maps on 8 x 8
 * took 0.23 ms without the skew, 0.16 ms with it). */
#define SPDL_WINO_SKEW_ 16

/* the tiles of F(m x m)'s block that the scratch of ns elements holds: 0 when not one */
SPDL_KERNEL int spdl_wino_tiles_(int m, int mo, int mi, int n, size_t ns)
{
    const size_t X = (size_t)(m + 2) * (size_t)(m + 2), nt = (size_t)((n + m - 1) / m);
    const size_t fixed = X * ((size_t)mo * (size_t)mi + 2 * SPDL_WINO_SKEW_), per = X * (size_t)(mo + mi) * SPDL_BT;
    if (ns < fixed + per)
        return 0;
    size_t t = (ns - fixed) / per;
    return (int)(t < nt * nt ? t : nt * nt);
}

/* V[xi * xs] = B^T d B for the a x a block d of map c under tile (ty, tx),
 * read in place, zero (the vector `zero`) off the grid */
SPDL_KERNEL void spdl_wino_in_(int m, const real *restrict In, int c, int n, int ty, int tx,
                               const real *restrict zero, real *restrict V, size_t xs)
{
    const int a = m + 2, p = m * ty - 1, q = m * tx - 1;
    const real *img = In + (size_t)c * (size_t)n * (size_t)n * SPDL_BT;
    const real *d[36];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++)
            d[a * i + j] = p + i >= 0 && p + i < n && q + j >= 0 && q + j < n
                               ? img + ((size_t)(p + i) * (size_t)n + (size_t)(q + j)) * SPDL_BT
                               : zero;
    if (m == 4)
        spdl_wino4_bt_(d, V, xs);
    else
        spdl_wino2_bt_(d, V, xs);
}

/* Out[o] at tile (ty, tx) (+)= A^T m A, m[xi] = M[xi * xs], the pixels on the grid */
SPDL_KERNEL void spdl_wino_out_(int m, const real *restrict M, size_t xs, int o, int n, int ty, int tx,
                                real *restrict Out, int acc)
{
    const int p = m * ty, q = m * tx;
    const size_t row = (size_t)n * SPDL_BT;
    real *y = Out + ((size_t)o * (size_t)n * (size_t)n + (size_t)p * (size_t)n + (size_t)q) * SPDL_BT;
    real z[4 * 4 * SPDL_BT];
    const int inside = p + m <= n && q + m <= n;
    real *to = inside ? y : z;
    const size_t rs = inside ? row : (size_t)m * SPDL_BT;
    if (m == 4)
        spdl_wino4_at_(M, xs, to, rs, inside && acc);
    else
        spdl_wino2_at_(M, xs, to, rs, inside && acc);
    if (inside)
        return;
    for (int i = 0; i < m && p + i < n; i++)
        for (int j = 0; j < m && q + j < n; j++) {
            real *restrict at = y + (size_t)i * row + (size_t)j * SPDL_BT;
            const real *restrict v = z + ((size_t)i * (size_t)m + (size_t)j) * SPDL_BT;
            SPDL_WINO_ACC_LANES_(SPDL_WINO_PUT_(at[l], v[l]););
        }
}

/* P[xi * xs] = A y A^T for the m x m block y of map o at tile (ty, tx), zero (`zero`) off the grid */
SPDL_KERNEL void spdl_wino_grad_in_(int m, const real *restrict Y, int o, int n, int ty, int tx,
                                    const real *restrict zero, real *restrict P, size_t xs)
{
    const int p = m * ty, q = m * tx;
    const real *img = Y + (size_t)o * (size_t)n * (size_t)n * SPDL_BT;
    const real *y[16];
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            y[m * i + j] = p + i < n && q + j < n ? img + ((size_t)(p + i) * (size_t)n + (size_t)(q + j)) * SPDL_BT : zero;
    if (m == 4)
        spdl_wino4_a_(y, P, xs);
    else
        spdl_wino2_a_(y, P, xs);
}

/* Out (+)= the correlation of spdl_corr2_gather_ (k = 3) by F(m x m, 3 x 3), T tiles a block */
SPDL_KERNEL void spdl_wino_gather_(int m, int mo, int mi, int n, const real *restrict W, size_t wrs, size_t wks,
                                   int s, const real *restrict In, real *restrict Out, int acc, real *restrict S,
                                   int T)
{
    const int a = m + 2, X = a * a, nt = (n + m - 1) / m, tiles = nt * nt;
    const size_t xu = (size_t)mo * (size_t)mi;
    real *restrict U = S, *restrict V = U + (size_t)X * xu;
    real *restrict M = V + (size_t)X * ((size_t)mi * (size_t)T * SPDL_BT + SPDL_WINO_SKEW_);
    real zero[SPDL_BT];
    memset(zero, 0, sizeof zero);
    spdl_wino_filter_(m, mo, mi, W, wrs, wks, s, U);
    for (int t0 = 0; t0 < tiles; t0 += T) {
        const int tb = tiles - t0 < T ? tiles - t0 : T;
        const size_t ld = (size_t)tb * SPDL_BT, vs = (size_t)mi * ld + SPDL_WINO_SKEW_,
                     ms = (size_t)mo * ld + SPDL_WINO_SKEW_;
        for (int t = 0; t < tb; t++)
            for (int c = 0; c < mi; c++)
                spdl_wino_in_(m, In, c, n, (t0 + t) / nt, (t0 + t) % nt, zero, V + (size_t)c * ld + (size_t)t * SPDL_BT,
                              vs);
        for (int xi = 0; xi < X; xi++)
            spdl_gemm(mo, (int)ld, mi, U + (size_t)xi * xu, (size_t)mi, 1, V + (size_t)xi * vs, ld, M + (size_t)xi * ms,
                      ld, 0);
        for (int t = 0; t < tb; t++)
            for (int o = 0; o < mo; o++)
                spdl_wino_out_(m, M + (size_t)o * ld + (size_t)t * SPDL_BT, ms, o, n, (t0 + t) / nt, (t0 + t) % nt,
                               Out, acc);
    }
}

/* GW += spdl_corr2_dw's gradient (k = 3) by F(m x m, 3 x 3), T tiles a block */
SPDL_KERNEL void spdl_wino_dw_(int m, int co, int ci, int n, const real *restrict A, const real *restrict B,
                               real *restrict GW, real *restrict S, int T)
{
    const int a = m + 2, X = a * a, nt = (n + m - 1) / m, tiles = nt * nt;
    const size_t xu = (size_t)co * (size_t)ci;
    real *restrict dU = S, *restrict P = dU + (size_t)X * xu;
    real *restrict V = P + (size_t)X * ((size_t)co * (size_t)T * SPDL_BT + SPDL_WINO_SKEW_);
    real zero[SPDL_BT];
    memset(zero, 0, sizeof zero);
    memset(dU, 0, (size_t)X * xu * sizeof *dU);
    for (int t0 = 0; t0 < tiles; t0 += T) {
        const int tb = tiles - t0 < T ? tiles - t0 : T;
        const size_t ld = (size_t)tb * SPDL_BT, ps = (size_t)co * ld + SPDL_WINO_SKEW_,
                     vs = (size_t)ci * ld + SPDL_WINO_SKEW_;
        for (int t = 0; t < tb; t++) {
            const int ty = (t0 + t) / nt, tx = (t0 + t) % nt;
            for (int o = 0; o < co; o++)
                spdl_wino_grad_in_(m, A, o, n, ty, tx, zero, P + (size_t)o * ld + (size_t)t * SPDL_BT, ps);
            for (int c = 0; c < ci; c++)
                spdl_wino_in_(m, B, c, n, ty, tx, zero, V + (size_t)c * ld + (size_t)t * SPDL_BT, vs);
        }
        for (int xi = 0; xi < X; xi++)
            spdl_gemm_nt(co, ci, (int)ld, P + (size_t)xi * ps, ld, V + (size_t)xi * vs, ld, dU + (size_t)xi * xu,
                         (size_t)ci, 1);
    }
    spdl_wino_filter_adj_(m, xu, dU, GW);
}

/* The entry points generated code calls. S holds ns elements of scratch
 * (S = NULL: none, tested first so that the compilers drop the transforms
 * from a double build, which passes NULL everywhere). A 3 x 3 correlation
 * goes the way of least estimated work, in units of one product term over
 * a tile's lanes: (3 n - 2)^2 mo mi for the taps (each clipped to the
 * grid), and X tiles (mo mi + 8 (mo + mi)) for F(m x m), the transforms
 * of its mi inputs and mo outputs each costing about 8 product terms
 * (fitted on the AMD EPYC, AVX-512, float: 16 x 16 maps on 8 x 8, F(4x4)
 * 0.109 ms against the taps' 0.203; 64 x 64 maps on 28 x 28, 13.9 against
 * 37.1; on 5 x 5 the taps' 0.065 ms beat both, 0.102 and 0.111). The
 * correlations take blocks of about SPDL_CACHE_BLOCK_ bytes, the kernel
 * gradient (whose products are sums along the block) all S holds. */
SPDL_KERNEL int spdl_wino_use_(int mo, int mi, int k, int n, size_t ns, int gradient, int *T)
{
    if (k != 3)
        return 0;
    double best = (double)(3 * n - 2) * (double)(3 * n - 2) * (double)mo * (double)mi;
    int pick = 0;
    for (int m = 2; m <= 4; m += 2) {
        const double nt = (double)((n + m - 1) / m);
        const double work = (double)((m + 2) * (m + 2)) * nt * nt * ((double)mo * (double)mi + 8.0 * (mo + mi));
        if (work < best && spdl_wino_tiles_(m, mo, mi, n, ns) > 0)
            best = work, pick = m;
    }
    if (!pick)
        return 0;
    *T = spdl_wino_tiles_(pick, mo, mi, n, ns);
    if (!gradient) {
        const size_t per = (size_t)(pick + 2) * (size_t)(pick + 2) * (size_t)(mo + mi) * SPDL_BT * sizeof(real);
        const size_t t = SPDL_CACHE_BLOCK_ / per;
        *T = t < 1 ? 1 : t < (size_t)*T ? (int)t : *T;
    }
    return pick;
}

/* Y[o] (+)= sum_i corr(X[i], W[o, i]) on n x n grids of tiles */
SPDL_KERNEL void spdl_corr2(int co, int ci, int k, int n, const real *restrict W, const real *restrict X,
                            real *restrict Y, int acc, real *restrict S, size_t ns)
{
    const size_t k2 = (size_t)k * (size_t)k;
    int T, m;
    if (S && (m = spdl_wino_use_(co, ci, k, n, ns, 0, &T)))
        spdl_wino_gather_(m, co, ci, n, W, (size_t)ci * k2, k2, 1, X, Y, acc, S, T);
    else
        spdl_corr2_gather_(co, ci, k, n, W, (size_t)ci * k2, k2, 1, X, Y, acc);
}

/* the transpose: Z[i] (+)= sum_o corr'(Y[o], W[o, i]) */
SPDL_KERNEL void spdl_corr2_t(int co, int ci, int k, int n, const real *restrict W, const real *restrict Y,
                              real *restrict Z, int acc, real *restrict S, size_t ns)
{
    const size_t k2 = (size_t)k * (size_t)k;
    int T, m;
    if (S && (m = spdl_wino_use_(ci, co, k, n, ns, 0, &T)))
        spdl_wino_gather_(m, ci, co, n, W, k2, (size_t)ci * k2, -1, Y, Z, acc, S, T);
    else
        spdl_corr2_gather_(ci, co, k, n, W, k2, (size_t)ci * k2, -1, Y, Z, acc);
}

/* GW[o, i, u, v] += sum_{p, q, lanes} A[o, p, q] B[i, p + u - r, q + v - r] */
SPDL_KERNEL void spdl_corr2_dw(int co, int ci, int k, int n, const real *restrict A, const real *restrict B,
                               real *restrict GW, real *restrict S, size_t ns)
{
    int T, m;
    if (S && (m = spdl_wino_use_(co, ci, k, n, ns, 1, &T)))
        spdl_wino_dw_(m, co, ci, n, A, B, GW, S, T);
    else
        spdl_corr2_dw_taps_(co, ci, k, n, A, B, GW);
}

/* ---- norm bounds of C4 and D4 convolutions (DESIGN §8) ---------------------------
 * The map v -> lift(K, v) or gconv(K, v) on n x n grids is the zero-padded
 * correlation with the expanded bank W of spdl_gbank. Taps more than n - 1
 * from the centre only ever read the padding, so the filters may be cropped
 * to k' = min(k, 2n - 1) first; then the matrix is a compression (rows and
 * columns restricted) of the circular correlation on the N-torus,
 * N = n + k' - 1 (the padding the taps reach is zero there too), and its
 * norm is at most that operator's: the largest spectral norm of the symbols
 *     S(a, b)[(o, e), j] = sum_{u, v} W[(o, e), j][u, v] e^{2 pi i (a (u - r) + b (v - r)) / N}
 * over the N^2 frequencies (a, b), each (cout G) x (cin G) for gconv and
 * (cout G) x cin for lift. Four facts make that cheap:
 *  - orbits: rotating a filter rotates its symbol's argument,
 *    (R w)^(w1, w2) = w^(w2, -w1) and (M w)^(w1, w2) = w^(w1, -w2), and the
 *    symbol at A_g (a, b) is the one at (a, b) with rows and columns
 *    permuted (entry (e, f) to (idx(g g_e), idx(g g_f))): one frequency of
 *    each orbit of the group's signed permutations (about N^2/4 for C4,
 *    N^2/8 for D4) carries every norm there is;
 *  - realness: R^2 conjugates a filter's symbol (R^2 w [u, v] =
 *    w[k-1-u, k-1-v] about the centre r), so S_{e^2, f^2} = conj S_{e, f},
 *    e^2 = e xor 2 the index of R^2 g_e. In the basis (x_e +- x_{e^2})/sqrt 2,
 *    the two halves multiplied by e^{+-i pi/4}, the symbol is the REAL matrix
 *        [ Re S_ef + Re S_ef2   Im S_ef2 - Im S_ef ]
 *        [ Im S_ef + Im S_ef2   Re S_ef - Re S_ef2 ]      (f2 = f xor 2)
 *    over the e, f with bit 1 clear (and every channel pair): unitarily
 *    equivalent, of the complex matrix's size, where the 2x real form of the
 *    Z(n) code would be twice as wide and tall. For lift the rows e and e^2
 *    are conjugate, and the real rows Re S_e, Im S_e have the singular
 *    values divided by sqrt 2;
 *  - certificates, not iterations: a frequency only has to be shown below a
 *    threshold t (the declared bound, or the largest bound found so far),
 *    which one Cholesky factorisation of t^2 I - A A' does (A A' formed on
 *    the smaller side). Rump's argument (BIT 46, 2006, from Higham's
 *    Thm. 10.3): if floating-point Cholesky of the computed M runs to
 *    completion, M + dM = R'R with |dM| <= gamma_{s+1} |R'||R|, so
 *    lambda_min(M) >= -gamma_{s+1}/(1 - gamma_{s+1}) tr(M); the Gram
 *    product's own error is at most gamma_K |A|_F^2 (spdl_gram_test_tau);
 *  - records only: a frequency that fails the test gets a tight bound, by
 *    a power-iteration estimate and bisection on such tests (to rtol,
 *    whatever the multiplicity of its top singular value), and raises the
 *    threshold. The maximum over frequencies is sound whatever the order;
 *    the order only decides how many frequencies are bounded tightly.
 * Rounding of the symbols: the phases come from one table of cos and sin of
 * 2 pi j / N, the angle reduced exactly in integers first, each within 64 u
 * of the exact value (u = 2^-53; the argument is within 19 u, glibc's cos
 * and sin within an ulp); a symbol entry is a sum of k^2 products, off by at
 * most l1 (64 u + gamma_{k^2} (1 + 64 u)), l1 the largest sum of |K| over
 * one filter's taps; a real-form entry adds two and rounds once. The
 * computed matrix differs from the exact one by E, |E| <= |E|_F <=
 * sqrt(rows cols) max |E_ij|, which the threshold and the result allow for. */

/* orbit representatives: (a, b) is the least a N + b of its orbit under
 * (w1, w2) -> (w2, -w1) (C4), and (w1, w2) -> (w1, -w2) too for D4 */
SPDL_KERNEL int spdl_gnorm_rep(int G, int N, int a, int b)
{
    long self = (long)a * N + b;
    int x = a, y = b;
    for (int t = 0; t < 4; t++) {
        int nx = y, ny = (N - x) % N;
        x = nx, y = ny;
        if ((long)x * N + y < self || (G == 8 && (long)x * N + (N - y) % N < self))
            return 0;
    }
    return 1;
}

/* the cropped kernel size k' and the torus N of an n x n grid; the scratch spdl_gconv_norm_upper needs, in
 * doubles: the real symbol A (rows x cols), Z or A's transpose (as many), the Gram matrix and its Cholesky
 * factor (min(rows, cols)^2 each, at most rows cols), the phases, the cos and sin table and two vectors */
#define SPDL_GNORM_CROP(n, k) ((k) < 2 * (n) - 1 ? (k) : 2 * (n) - 1)
#define SPDL_GNORM_TORUS(n, k) ((n) + SPDL_GNORM_CROP(n, k) - 1)
#define SPDL_GNORM_SCRATCH(G, gconv, cout, cin, k, n)                                                                  \
    (4 * (size_t)(G) * (size_t)(cout) * (size_t)(cin) * ((gconv) ? (size_t)(G) : 1) + (size_t)(G) * (size_t)(k) * (size_t)(k) \
     + 2 * ((size_t)(n) + (size_t)(k)) + 2 * (size_t)(G) * ((size_t)(cout) + (size_t)(cin)))

/* The real form A (rows (o, e0, 0|1), (G/2) cout 2 of them; columns (i, f0, 0|1) for gconv, i for lift) of
 * the symbol at (a, b) on the N-torus of an n x n grid. Z receives the complex sums over each base filter
 * K[o, i, h] (K[o, i] for lift) at the elements e = R^k M^s with bit 1 clear (e0 = k + 2 s, k < 2); ph the
 * phases (zero at the cropped taps), tab cos and sin of 2 pi j / N. */
SPDL_KERNEL void spdl_gnorm_symbol(int G, int gconv, int cout, int cin, int k, int n, int N, int a, int b,
                                   const double *K, const double *tab, double *ph, double *Z, double *A)
{
    const int r = (k - 1) / 2, k2 = k * k, G2 = G / 2, H = gconv ? G : 1;
    /* ph[t][2 e0 + 0|1]: cos and sin of tap t's phase in g_e's filter */
    memset(ph, 0, sizeof(double) * (size_t)G * (size_t)k2);
    for (int e0 = 0; e0 < G2; e0++) {
        int e = (e0 & 1) | (e0 >> 1) << 2;
        for (int u = 0; u < k; u++)
            for (int v = 0; v < k; v++) {
                if (u - r >= n || r - u >= n || v - r >= n || r - v >= n)
                    continue; /* reads the padding only */
                long j = ((long)a * (u - r) + (long)b * (v - r)) % N;
                j = j < 0 ? j + N : j;
                size_t t = spdl_g_tap(e, k, u, v);
                ph[t * (size_t)G + (size_t)(2 * e0)] = tab[j];
                ph[t * (size_t)G + (size_t)(2 * e0 + 1)] = tab[N + j];
            }
    }
    /* Z[q][2 e0 + 0|1] = sum_t K[q][t] ph[t][2 e0 + 0|1]: Re and Im of base filter q's symbol under g_e */
    const int nbase = cout * cin * H;
#ifdef SPDL_GEMM_AVX2
    spdl_gemm_avx2_(nbase, G, k2, K, (size_t)k2, 1, ph, (size_t)G, Z, (size_t)G, 0);
#else
    for (int q = 0; q < nbase; q++) {
        const double *w = K + (size_t)q * (size_t)k2;
        double *z = Z + (size_t)q * (size_t)G;
        for (int c = 0; c < G; c++)
            z[c] = 0;
        for (int t = 0; t < k2; t++)
            for (int c = 0; c < G; c++)
                z[c] += w[t] * ph[(size_t)t * (size_t)G + (size_t)c];
    }
#endif
    if (!gconv) {
        for (int o = 0; o < cout; o++)
            for (int e0 = 0; e0 < G2; e0++)
                for (int i = 0; i < cin; i++) {
                    const double *z = Z + (((size_t)o * (size_t)cin + (size_t)i) * (size_t)G2 + (size_t)e0) * 2;
                    size_t row = ((size_t)o * (size_t)G2 + (size_t)e0) * 2;
                    A[row * (size_t)cin + (size_t)i] = z[0];
                    A[(row + 1) * (size_t)cin + (size_t)i] = z[1];
                }
        return;
    }
    const size_t cols = (size_t)cin * (size_t)G;
    for (int o = 0; o < cout; o++)
        for (int e0 = 0; e0 < G2; e0++) {
            int e = (e0 & 1) | (e0 >> 1) << 2, einv = spdl_g_inverse(e);
            double *rs = A + ((size_t)o * (size_t)G2 + (size_t)e0) * 2 * cols, *rd = rs + cols;
            for (int i = 0; i < cin; i++) {
                const size_t base = ((size_t)o * (size_t)cin + (size_t)i) * (size_t)G;
                for (int f0 = 0; f0 < G2; f0++) {
                    int f = (f0 & 1) | (f0 >> 1) << 2;
                    int h1 = spdl_g_compose(einv, f), h2 = spdl_g_compose(einv, f ^ 2);
                    const double *z1 = Z + ((base + (size_t)h1) * (size_t)G2 + (size_t)e0) * 2;
                    const double *z2 = Z + ((base + (size_t)h2) * (size_t)G2 + (size_t)e0) * 2;
                    size_t c = ((size_t)i * (size_t)G2 + (size_t)f0) * 2;
                    rs[c] = z1[0] + z2[0];
                    rs[c + 1] = z2[1] - z1[1];
                    rd[c] = z1[1] + z2[1];
                    rd[c + 1] = z1[0] - z2[0];
                }
            }
        }
}

/* upper bounds of |A| (m x n, m n <= 2^16) that cost one pass: min(|A|_F, sqrt(|A|_1 |A|_inf)), rounding
 * (and underflow) covered */
SPDL_KERNEL double spdl_norm2_cheap(int m, int n, const double *A)
{
    double f = 0, rmax = 0, cmax = 0;
    for (int i = 0; i < m; i++) {
        double rs = 0;
        for (int j = 0; j < n; j++) {
            double x = A[(size_t)i * (size_t)n + (size_t)j];
            f += x * x;
            rs += fabs(x);
        }
        rmax = fmax(rmax, rs);
    }
    for (int j = 0; j < n; j++) {
        double cs = 0;
        for (int i = 0; i < m; i++)
            cs += fabs(A[(size_t)i * (size_t)n + (size_t)j]);
        cmax = fmax(cmax, cs);
    }
    return fmin(sqrt(f), sqrt(rmax * cmax)) * (1 + 1e-10) + 0x1p-500; /* squares below 2^-1074: 2^-529 in all */
}

/* B = A A' (m <= n) or A' A (m > n), s x s with s = min(m, n), both triangles; T: m n doubles (the AVX2
 * path's transpose). Each entry is one inner product of length max(m, n), in some order. */
SPDL_KERNEL void spdl_gram(int m, int n, const double *A, double *B, double *T)
{
#ifdef SPDL_GEMM_AVX2
    if (m <= n) {
        for (int i = 0; i < m; i++)
            for (int k = 0; k < n; k++)
                T[(size_t)k * (size_t)m + (size_t)i] = A[(size_t)i * (size_t)n + (size_t)k];
        spdl_gemm_avx2_(m, m, n, A, (size_t)n, 1, T, (size_t)m, B, (size_t)m, 0);
    } else {
        spdl_gemm_avx2_(n, n, m, A, 1, (size_t)n, A, (size_t)n, B, (size_t)n, 0);
    }
#else
    (void)T;
    if (m <= n) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j <= i; j++)
                B[(size_t)i * (size_t)m + (size_t)j] = B[(size_t)j * (size_t)m + (size_t)i] =
                    spdl_dot(n, A + (size_t)i * (size_t)n, A + (size_t)j * (size_t)n);
    } else {
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int k = 0; k < m; k++)
                    s += A[(size_t)k * (size_t)n + (size_t)i] * A[(size_t)k * (size_t)n + (size_t)j];
                B[(size_t)i * (size_t)n + (size_t)j] = B[(size_t)j * (size_t)n + (size_t)i] = s;
            }
    }
#endif
}

/* Does floating-point Cholesky of tau I - B (s x s, the lower triangle read) run to completion? L: s^2 doubles. */
SPDL_KERNEL int spdl_chol_completes(int s, const double *B, double tau, double *L)
{
    for (int i = 0; i < s; i++)
        for (int j = 0; j <= i; j++)
            L[(size_t)i * (size_t)s + (size_t)j] = (i == j ? tau : 0) - B[(size_t)i * (size_t)s + (size_t)j];
    for (int j = 0; j < s; j++) {
        double *lj = L + (size_t)j * (size_t)s;
        double d = lj[j] - spdl_dot(j, lj, lj);
        if (!(d > 0) || !(d < INFINITY))
            return 0;
        d = sqrt(d);
        lj[j] = d;
        for (int i = j + 1; i < s; i++) {
            double *li = L + (size_t)i * (size_t)s;
            li[j] = (li[j] - spdl_dot(j, li, lj)) / d;
        }
    }
    return 1;
}

/* The tau at which a completed Cholesky of tau I - B proves |A| <= t, B the computed Gram matrix (s x s,
 * inner products of length K; trB its trace, bmax its largest diagonal entry). With M the computed
 * tau I - B, Cholesky's completion gives lambda_min(M) >= -g tr(M), g = gamma_{s+1} / (1 - gamma_{s+1}),
 * tr(M) <= s tau (1 + u); the diagonal's rounding adds u max(tau, bmax), the Gram product's gamma_K |A|_F^2,
 * |A|_F^2 <= trB / ((1 - gamma_K) (1 - gamma_s)) <= trB (1 + 2.1 (K + s) u); so
 * lambda_max(A A') <= tau (1 + g s (1 + u) + u) + gamma_K |A|_F^2 + u bmax (+ 2^-960 for underflow), which
 * must be at most t^2 (Higham's proof of Thm. 10.3 uses no definiteness: it bounds each computed entry).
 * gamma_j <= 1.01 j u while j u <= 0.01. */
SPDL_KERNEL double spdl_gram_test_tau(int s, int K, double t, double trB, double bmax)
{
    const double u = 0x1p-53;
    double g = 1.02 * (s + 1) * u, gK = 1.01 * K * u, F2 = trB * (1 + 2.1 * (K + s) * u);
    double num = t * t * (1 - 4 * u) - gK * F2 * (1 + 4 * u) - u * bmax * (1 + 4 * u) - 0x1p-960;
    return num / (1 + g * s * (1 + u) + u) * (1 - 4 * u);
}

/* A tight upper bound on |A| from its Gram matrix B (s x s, the lower triangle; inner products of length K):
 * an estimate by power iteration, then an exponential search and bisection on Cholesky certificates to rtol,
 * never above hi (an upper bound already known) or the Gram iteration's first bound. L: s^2, x, y: s. */
SPDL_KERNEL double spdl_gram_tight(int s, int K, const double *B, double hi, double rtol, double *L, double *x,
                                   double *y)
{
    double trB = 0, bmax = 0;
    for (int i = 0; i < s; i++) {
        double d = B[(size_t)i * (size_t)s + (size_t)i];
        trB += d;
        bmax = fmax(bmax, d);
    }
    if (!(bmax > 0) || !(trB < INFINITY))
        return hi;
    /* |A|_2 <= sqrt(|B|_F) with B's own error: the Gram iteration's first bound (squares taken of B / bmax,
     * so none underflows to nothing; those below 2^-1022 are at most s^2 2^-1074 in all) */
    double f = 0;
    for (int i = 0; i < s; i++)
        for (int j = 0; j <= i; j++) {
            double b = B[(size_t)i * (size_t)s + (size_t)j] / bmax;
            f += (i == j ? 1 : 2) * b * b;
        }
    f = bmax * sqrt(f + (double)s * (double)s * 0x1p-1070);
    hi = fmin(hi, sqrt(f * (1 + 1e-10) + 1.02 * K * 0x1p-53 * trB * 1.02 + 0x1p-960) * (1 + 1e-10));
    /* the estimate: Rayleigh quotients of B from B v, v with every component (so no invariant subspace of B,
     * such as the blocks of a symbol that decouples, keeps it from the top eigenvalue) */
    for (int i = 0; i < s; i++) {
        double xi = 0;
        for (int j = 0; j < s; j++)
            xi += B[(size_t)i * (size_t)s + (size_t)j] / bmax * (1 + 0.618034 * (double)((j * 7 + 3) % 11));
        x[i] = xi;
    }
    double lam = bmax;
    for (int it = 0; it < 40; it++) {
        for (int i = 0; i < s; i++)
            y[i] = spdl_dot(s, B + (size_t)i * (size_t)s, x);
        double xx = spdl_dot(s, x, x), xy = spdl_dot(s, x, y), yy = spdl_dot(s, y, y);
        if (!(xx > 0) || !(yy > 0))
            break;
        double prev = lam;
        lam = fmax(lam, xy / xx);
        double sc = 1 / sqrt(yy);
        for (int i = 0; i < s; i++)
            x[i] = y[i] * sc;
        if (it >= 4 && lam < prev * (1 + 0.01 * rtol))
            break;
    }
    double lo = sqrt(lam), t = lo * (1 + 0.5 * rtol), step = rtol;
    /* an exponential search up from the estimate, then bisection */
    while (t < hi && !spdl_chol_completes(s, B, spdl_gram_test_tau(s, K, t, trB, bmax), L)) {
        lo = t;
        t = lo * (1 + step);
        step *= 2;
    }
    t = fmin(t, hi); /* hi holds already */
    while (t > lo * (1 + rtol)) {
        double mid = 0.5 * (lo + t);
        if (spdl_chol_completes(s, B, spdl_gram_test_tau(s, K, mid, trB, bmax), L))
            t = mid;
        else
            lo = mid;
    }
    return t;
}

/* A sound upper bound on the operator norm of v -> lift(K, v) (gconv = 0;
 * K stored R[cout, cin, k, k]) or v -> gconv(K, v) (gconv = 1; K stored
 * R[cout, cin, G, k, k]) on n x n grids, G = 4 (C4) or 8 (D4): see above.
 * When every frequency is shown within stop_below (M_project passes the
 * declared bound), the result is stop_below itself; otherwise it is within
 * about rtol of the torus bound (pass stop_below = 0 for the tightest).
 * S: SPDL_GNORM_SCRATCH(G, gconv, cout, cin, k, n) doubles. */
SPDL_KERNEL double spdl_gconv_norm_upper(int G, int gconv, int cout, int cin, int k, int n, const double *K,
                                         double stop_below, double rtol, double *S)
{
    const int N = SPDL_GNORM_TORUS(n, k), k2 = k * k, H = gconv ? G : 1;
    const int rows = cout * G, cols = gconv ? cin * G : cin, s = rows < cols ? rows : cols;
    const int inner = rows < cols ? cols : rows;
    const size_t rc = (size_t)rows * (size_t)cols;
    double *A = S, *Z = A + rc, *B = Z + rc, *L = B + rc, *ph = L + rc, *T = Z; /* Z is done with before T */
    double *tab = ph + (size_t)G * (size_t)k2, *x = tab + 2 * ((size_t)n + (size_t)k), *y = x + rows + cols;
    const double u = 0x1p-53;
    /* the largest l1 norm of a filter cropped to the taps that reach the grid, for the symbols' rounding */
    double l1 = 0;
    const int r = (k - 1) / 2;
    for (size_t q = 0; q < (size_t)cout * (size_t)cin * (size_t)H; q++) {
        double a = 0, all = 0;
        for (int t = 0; t < k2; t++) {
            double w = fabs(K[q * (size_t)k2 + (size_t)t]);
            all += w;
            if (t / k - r < n && r - t / k < n && t % k - r < n && r - t % k < n)
                a += w;
        }
        if (!(all < INFINITY))
            return INFINITY; /* NaN or infinite entries (or an overflowing sum): no bound */
        l1 = fmax(l1, a);
    }
    if (l1 == 0)
        return 0;
    /* everything below is in units of 2^sc, l1 2^-sc in [1, 2) (within [2^-63, 2^23] for kernels near the
     * ends of the range), so no Gram entry or sum of squares underflows or overflows: the phases are scaled
     * by 2^-sc, exactly, and every symbol with them */
    const int sc = ilogb(l1) < -1000 ? -1000 : ilogb(l1) > 1000 ? 1000 : ilogb(l1);
    const double scale = ldexp(1.0, -sc), l1s = l1 * scale;
    const double gam = 1.01 * (k2 + 2) * u;
    const double err = sqrt((double)rc) * l1s * (2 * (64 * u + gam * (1 + 64 * u)) + 4 * u) * (1 + 4 * u);
    /* the computed symbols' norms are 1/f of the operator's: f = sqrt 2 for lift's real rows */
    const double f = gconv ? 1 : 1.4142135623730951;
    double within = stop_below > 0 ? (stop_below * scale / f - err) * (1 - 8 * u) : 0;
    within = within > 0 ? within : 0;
    for (int j = 0; j < N; j++) {
        double t = 2 * 3.14159265358979323846 * (double)j / (double)N;
        tab[j] = cos(t) * scale;
        tab[N + j] = sin(t) * scale;
    }
    double thr = within, best = 0;
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            if (!spdl_gnorm_rep(G, N, a, b))
                continue;
            spdl_gnorm_symbol(G, gconv, cout, cin, k, n, N, a, b, K, tab, ph, Z, A);
            double bound = spdl_norm2_cheap(rows, cols, A);
            if (bound > thr) {
                spdl_gram(rows, cols, A, B, T);
                double trB = 0, bmax = 0;
                for (int i = 0; i < s; i++) {
                    trB += B[(size_t)i * (size_t)s + (size_t)i];
                    bmax = fmax(bmax, B[(size_t)i * (size_t)s + (size_t)i]);
                }
                if (thr > 0 && spdl_chol_completes(s, B, spdl_gram_test_tau(s, inner, thr, trB, bmax), L))
                    bound = thr;
                else
                    bound = spdl_gram_tight(s, inner, B, bound, rtol, L, x, y);
                thr = fmax(thr, bound);
            }
            best = fmax(best, bound);
        }
    if (best <= within)
        return stop_below;
    return ldexp(f * (best + err) * (1 + 4 * u), sc);
}

/* M_project's step for a C4/D4 kernel with the declared bound c: when the
 * bound above exceeds c, K is scaled by c / bound (less 2^-36, more than the
 * certificates' own margins), and the scaled kernel, as rounded, is checked
 * again (a few times at most, each scaling further if it must), so what is
 * stored is proved within c. A kernel with NaN or infinite entries is left
 * alone. Returns the bound K had. S: SPDL_GNORM_SCRATCH doubles. */
SPDL_KERNEL double spdl_gconv_project(int G, int gconv, int cout, int cin, int k, int n, double *K, double c,
                                      double *S)
{
    const size_t nk = (size_t)cout * (size_t)cin * (size_t)(gconv ? G : 1) * (size_t)k * (size_t)k;
    double b = spdl_gconv_norm_upper(G, gconv, cout, cin, k, n, K, c, 1e-6, S), now = b;
    for (int tries = 0; tries < 4 && now > c; tries++) {
        for (size_t i = 0; i < nk; i++)
            if (!(fabs(K[i]) < INFINITY))
                return b;
        double scale = now < INFINITY ? c / now * (1 - 0x1p-36) : 0; /* an overflowing l1: zero is within */
        for (size_t i = 0; i < nk; i++)
            K[i] *= scale;
        now = spdl_gconv_norm_upper(G, gconv, cout, cin, k, n, K, c, 1e-6, S);
    }
    return b;
}
