/* test_gconv_norm.c - spdl_gconv_norm_upper (runtime/spdl_kernels.h), the
 * bound M_project enforces on C4 and D4 lift and gconv kernels, against
 * DESIGN §8's definitions written out again: the group actions on filters
 * ((R a)[i, j] = a[j, n-1-i], (M a)[i, j] = a[i, n-1-j], mirror first) and
 * the composition found by applying elements to a test filter, in
 * tests/gen/group_filters.h (shared with projtest), and here the
 * zero-padded correlation on the n x n grid.
 *
 *  - sound: over every (group, lift|gconv, k in 1 3 5, n in 1..9) with
 *    random channel counts in 1..3, the bound is at least the norm of the
 *    map, estimated from below by power iteration on the map itself;
 *  - tight to its construction: the bound is within 1e-5 of the largest
 *    norm of the cropped bank's complex symbols over every frequency of the
 *    torus (no orbits, no real form), each by Jacobi on S^*S, and that
 *    largest norm is itself at least the map's (the compression);
 *  - exact where the torus adds nothing: k = 1 (channel mixing) and n = 1
 *    (the centre taps only);
 *  - the projection's contract: stop_below itself when every frequency is
 *    within it, the same bound scaled with the kernel, 0 and infinity for
 *    the zero kernel and for NaN or infinite entries;
 *  - the orbit representatives cover the torus once each.
 * tests/unit/test_gconv_norm.py computes the exact norms with numpy's SVD
 * and prints the bound / norm ratios. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

typedef double real;
#define SPDL_BT 4
#include "../gen/group_filters.h"
#include "spdl_kernels.h"

static uint64_t gn_rng = 2024;
static double gn_rand(void) { return spdl_rng_normal(&gn_rng); }

/* ---- DESIGN §8, independently -------------------------------------------------- */

typedef struct {
    int G, gconv, cout, cin, k, n;
    int ci;             /* input channels of the bank: cin G (gconv) or cin */
    double *W;          /* the bank: (cout G) x ci filters of k x k */
} Conv;

static Conv gn_conv(int G, int gconv, int cout, int cin, int k, int n, const double *K)
{
    Conv c = {G, gconv, cout, cin, k, n, gconv ? cin * G : cin, gf_bank(G, gconv, cout, cin, k, K)};
    cr_assert(c.W, "out of memory, or no group composition (G = %d)", G);
    return c;
}

/* y = the map (zero padding), or its transpose (t = 1), on the n x n grid */
static void gn_apply(const Conv *c, int t, const double *x, double *y)
{
    int k = c->k, n = c->n, r = (k - 1) / 2, co = c->cout * c->G, nn = n * n;
    memset(y, 0, sizeof(double) * (size_t)((t ? c->ci : co) * nn));
    for (int o = 0; o < co; o++)
        for (int j = 0; j < c->ci; j++)
            for (int u = 0; u < k; u++)
                for (int v = 0; v < k; v++) {
                    double w = c->W[(((size_t)o * c->ci + (size_t)j) * k + (size_t)u) * k + (size_t)v];
                    for (int p = 0; p < n; p++)
                        for (int q = 0; q < n; q++) {
                            int pp = p + u - r, qq = q + v - r;
                            if (pp < 0 || pp >= n || qq < 0 || qq >= n)
                                continue;
                            if (t)
                                y[j * nn + pp * n + qq] += w * x[o * nn + p * n + q];
                            else
                                y[o * nn + p * n + q] += w * x[j * nn + pp * n + qq];
                        }
                }
}

/* |map| from below: power iteration on map' map, to convergence or 3000 steps */
static double gn_power(const Conv *c)
{
    size_t nx = (size_t)(c->ci * c->n * c->n), ny = (size_t)(c->cout * c->G * c->n * c->n);
    double *x = malloc(sizeof(double) * nx), *y = malloc(sizeof(double) * ny), best = 0;
    for (size_t i = 0; i < nx; i++)
        x[i] = gn_rand();
    for (int it = 0; it < 3000; it++) {
        double xx = 0, yy = 0;
        gn_apply(c, 0, x, y);
        for (size_t i = 0; i < nx; i++)
            xx += x[i] * x[i];
        for (size_t i = 0; i < ny; i++)
            yy += y[i] * y[i];
        double s = sqrt(yy / xx), prev = best;
        best = fmax(best, s);
        if (it > 50 && best < prev * (1 + 1e-14))
            break;
        gn_apply(c, 1, y, x);
        double nrm = 0;
        for (size_t i = 0; i < nx; i++)
            nrm += x[i] * x[i];
        if (nrm == 0)
            break;
        for (size_t i = 0; i < nx; i++)
            x[i] /= sqrt(nrm);
    }
    free(x), free(y);
    return best;
}

/* the largest eigenvalue of the symmetric d x d matrix B (destroyed), by cyclic Jacobi */
static double gn_jacobi_max(int d, double *B)
{
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, diag = 0;
        for (int p = 0; p < d; p++) {
            diag += B[p * d + p] * B[p * d + p];
            for (int q = p + 1; q < d; q++)
                off += B[p * d + q] * B[p * d + q];
        }
        if (off <= 1e-30 * diag || off < 1e-300)
            break;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                double apq = B[p * d + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double th = (B[q * d + q] - B[p * d + p]) / (2 * apq);
                double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1)), cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (int i = 0; i < d; i++) {
                    double bp = B[i * d + p], bq = B[i * d + q];
                    B[i * d + p] = cs * bp - sn * bq, B[i * d + q] = sn * bp + cs * bq;
                }
                for (int i = 0; i < d; i++) {
                    double bp = B[p * d + i], bq = B[q * d + i];
                    B[p * d + i] = cs * bp - sn * bq, B[q * d + i] = sn * bp + cs * bq;
                }
            }
    }
    double mx = 0;
    for (int i = 0; i < d; i++)
        mx = fmax(mx, B[i * d + i]);
    return mx;
}

/* the torus bound by definition: the largest norm of the complex symbols of the bank cropped to
 * k' = min(k, 2n - 1), over every frequency of the N-torus, N = n + k' - 1 */
static double gn_torus(const Conv *c)
{
    int k = c->k, r = (k - 1) / 2, kc = k < 2 * c->n - 1 ? k : 2 * c->n - 1, rc = (kc - 1) / 2, N = c->n + kc - 1;
    int m = c->cout * c->G, d = c->ci;
    double *re = malloc(sizeof(double) * (size_t)(m * d)), *im = malloc(sizeof(double) * (size_t)(m * d));
    double *B = malloc(sizeof(double) * (size_t)(4 * d * d)), best = 0;
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            for (int o = 0; o < m; o++)
                for (int j = 0; j < d; j++) {
                    double sr = 0, si = 0;
                    for (int u = r - rc; u <= r + rc; u++)
                        for (int v = r - rc; v <= r + rc; v++) {
                            double w = c->W[(((size_t)o * d + (size_t)j) * k + (size_t)u) * k + (size_t)v];
                            double th = 2 * 3.14159265358979323846 * ((double)a * (u - r) + (double)b * (v - r)) / N;
                            sr += w * cos(th), si += w * sin(th);
                        }
                    re[o * d + j] = sr, im[o * d + j] = si;
                }
            /* S^*S = P + i Q (d x d Hermitian) as the real symmetric [[P, -Q], [Q, P]] */
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) {
                    double P = 0, Q = 0;
                    for (int o = 0; o < m; o++) {
                        P += re[o * d + i] * re[o * d + j] + im[o * d + i] * im[o * d + j];
                        Q += re[o * d + i] * im[o * d + j] - im[o * d + i] * re[o * d + j];
                    }
                    B[i * 2 * d + j] = P, B[i * 2 * d + d + j] = -Q;
                    B[(d + i) * 2 * d + j] = Q, B[(d + i) * 2 * d + d + j] = P;
                }
            best = fmax(best, sqrt(gn_jacobi_max(2 * d, B)));
        }
    free(re), free(im), free(B);
    return best;
}

static double gn_bound(int G, int gconv, int cout, int cin, int k, int n, const double *K, double stop, double rtol)
{
    double *S = malloc(sizeof(double) * SPDL_GNORM_SCRATCH(G, gconv, cout, cin, k, n));
    double b = spdl_gconv_norm_upper(G, gconv, cout, cin, k, n, K, stop, rtol, S);
    free(S);
    return b;
}

static double *gn_kernel(int G, int gconv, int cout, int cin, int k, double scale)
{
    size_t nk = (size_t)cout * cin * (gconv ? G : 1) * k * k;
    double *K = malloc(sizeof(double) * nk);
    for (size_t i = 0; i < nk; i++)
        K[i] = scale * gn_rand();
    return K;
}

/* ---- the tests ---------------------------------------------------------------------- */

Test(gconv_norm, never_below_the_norm_of_the_map_and_tight_to_the_torus, .timeout = 600)
{
    int cfg = 0;
    double worst_sound = INFINITY, worst_tight = 0;
    for (int G = 4; G <= 8; G += 4)
        for (int gconv = 0; gconv <= 1; gconv++)
            for (int k = 1; k <= 5; k += 2)
                for (int n = 1; n <= 9; n++, cfg++) {
                    int cout = 1 + (int)(spdl_rng_next(&gn_rng) % 3), cin = 1 + (int)(spdl_rng_next(&gn_rng) % 3);
                    double scale = cfg % 7 == 0 ? 1e3 : cfg % 11 == 0 ? 1e-3 : 1;
                    double *K = gn_kernel(G, gconv, cout, cin, k, scale);
                    Conv c = gn_conv(G, gconv, cout, cin, k, n, K);
                    double bound = gn_bound(G, gconv, cout, cin, k, n, K, 0, 1e-9);
                    double below = gn_power(&c);
                    cr_assert(bound >= below, "G %d gconv %d %dx%d k %d n %d: bound %.17g below the norm %.17g", G, gconv,
                              cout, cin, k, n, bound, below);
                    worst_sound = fmin(worst_sound, bound / below);
                    if (cfg % 3 == 0) { /* the definition's torus bound, the slow way */
                        double torus = gn_torus(&c);
                        cr_assert(torus >= below * (1 - 1e-12), "cfg %d: the torus bound %.17g is below the map's norm %.17g", cfg,
                                  torus, below);
                        cr_assert(bound <= torus * (1 + 1e-5) && bound >= torus * (1 - 1e-12),
                                  "G %d gconv %d %dx%d k %d n %d: bound %.17g, torus %.17g", G, gconv, cout, cin, k, n, bound,
                                  torus);
                        worst_tight = fmax(worst_tight, bound / torus);
                    }
                    free(c.W), free(K);
                }
    cr_log_info("bound / power-iteration norm >= %.17g; bound / torus norm <= %.17g", worst_sound, worst_tight);
}

Test(gconv_norm, exact_for_channel_mixing_and_single_pixels, .timeout = 120)
{
    for (int t = 0; t < 24; t++) {
        int G = t % 2 ? 8 : 4, gconv = (t / 2) % 2, cout = 1 + t % 3, cin = 1 + (t / 3) % 3;
        int k = t < 12 ? 1 : 3 + 2 * (t % 2), n = t < 12 ? 1 + t % 5 : 1;
        double *K = gn_kernel(G, gconv, cout, cin, k, 1);
        Conv c = gn_conv(G, gconv, cout, cin, k, n, K);
        double bound = gn_bound(G, gconv, cout, cin, k, n, K, 0, 1e-9), norm = gn_power(&c);
        cr_assert(bound >= norm && bound <= norm * (1 + 1e-8), "t %d (k %d, n %d): bound %.17g, norm %.17g", t, k, n, bound,
                  norm);
        free(c.W), free(K);
    }
    /* a C4 1 -> 3 channel mix whose real symbol splits into two blocks with the top singular value in the one
     * the largest Gram column does not reach (the first bound took the Frobenius one: 72.06 for 63.51) */
    double K[12] = {4.548120323721189,  -12.192609040926827, -20.6942786253275,  -14.525175186504722,
                    -5.919622291551083, 16.732755866586054,  25.01930468959426,  -4.813788707237897,
                    9.43858376901688,   14.012109848665038,  12.845419925046407, -1.167856780660398};
    Conv c = gn_conv(4, 1, 1, 3, 1, 4, K);
    double bound = gn_bound(4, 1, 1, 3, 1, 4, K, 0, 1e-9), norm = gn_power(&c);
    cr_assert(bound >= norm && bound <= norm * (1 + 1e-8), "bound %.17g, norm %.17g", bound, norm);
    free(c.W);
}

Test(gconv_norm, the_projection_contract)
{
    int G = 4, cout = 3, cin = 2, k = 3, n = 6;
    double *K = gn_kernel(G, 1, cout, cin, k, 1);
    double b = gn_bound(G, 1, cout, cin, k, n, K, 0, 1e-9);
    /* within the declared bound: exactly the bound, so M_project leaves the kernel alone */
    cr_assert_eq(gn_bound(G, 1, cout, cin, k, n, K, b * 1.001, 1e-6), b * 1.001);
    cr_assert_eq(gn_bound(G, 1, cout, cin, k, n, K, b * 10, 1e-6), b * 10);
    /* outside: the tight bound, to rtol */
    double o = gn_bound(G, 1, cout, cin, k, n, K, b * 0.999, 1e-6);
    cr_assert(o >= b * (1 - 1e-9) && o <= b * (1 + 2e-6), "outside: %.17g vs %.17g", o, b);
    /* the bound scales with the kernel, over a wide range */
    for (int e = -300; e <= 300; e += 100) {
        size_t nk = (size_t)cout * cin * G * k * k;
        double *Ks = malloc(sizeof(double) * nk);
        for (size_t i = 0; i < nk; i++)
            Ks[i] = ldexp(K[i], e);
        double bs = ldexp(gn_bound(G, 1, cout, cin, k, n, Ks, 0, 1e-9), -e);
        cr_assert(bs >= b * (1 - 1e-8) && bs <= b * (1 + 1e-8), "scaled by 2^%d: %.17g vs %.17g", e, bs, b);
        free(Ks);
    }
    /* zero, NaN and infinite kernels */
    size_t nk = (size_t)cout * cin * G * k * k;
    double *Z = calloc(nk, sizeof *Z);
    cr_assert_eq(gn_bound(G, 1, cout, cin, k, n, Z, 0, 1e-9), 0);
    Z[5] = NAN;
    cr_assert(isinf(gn_bound(G, 1, cout, cin, k, n, Z, 1, 1e-3)));
    Z[5] = INFINITY;
    cr_assert(isinf(gn_bound(G, 1, cout, cin, k, n, Z, 1, 1e-3)));
    free(Z), free(K);
}

Test(gconv_norm, the_projection_scales_to_the_bound_and_checks_the_result)
{
    for (int t = 0; t < 8; t++) {
        int G = t % 2 ? 8 : 4, gconv = t / 2 % 2, cout = 1 + t % 3, cin = 2, k = 3 + 2 * (t / 4), n = 3 + t;
        double *K = gn_kernel(G, gconv, cout, cin, k, 1 + 10 * t);
        size_t nk = (size_t)cout * cin * (gconv ? G : 1) * k * k;
        double before = gn_bound(G, gconv, cout, cin, k, n, K, 0, 1e-9), c = before / (2 + t);
        double *S = malloc(sizeof(double) * SPDL_GNORM_SCRATCH(G, gconv, cout, cin, k, n));
        double got = spdl_gconv_project(G, gconv, cout, cin, k, n, K, c, S);
        cr_assert(got >= before * (1 - 1e-9) && got <= before * (1 + 2e-6), "t %d: %.17g vs %.17g", t, got, before);
        double after = gn_bound(G, gconv, cout, cin, k, n, K, 0, 1e-9);
        cr_assert(after <= c && after >= c * (1 - 1e-5), "t %d: %.17g after projecting to %.17g", t, after, c);
        /* within: left alone, bit for bit */
        double *copy = malloc(sizeof(double) * nk);
        memcpy(copy, K, sizeof(double) * nk);
        cr_assert_eq(spdl_gconv_project(G, gconv, cout, cin, k, n, K, c, S), c);
        cr_assert(!memcmp(copy, K, sizeof(double) * nk));
        /* NaN: left alone, reported unbounded */
        K[0] = NAN;
        cr_assert(isinf(spdl_gconv_project(G, gconv, cout, cin, k, n, K, c, S)));
        cr_assert(isnan(K[0]) && !memcmp(copy + 1, K + 1, sizeof(double) * (nk - 1)));
        free(copy), free(S), free(K);
    }
}

Test(gconv_norm, orbit_representatives_cover_the_torus_once)
{
    for (int G = 4; G <= 8; G += 4)
        for (int N = 1; N <= 17; N++) {
            int reps = 0;
            for (int a = 0; a < N; a++)
                for (int b = 0; b < N; b++) {
                    /* exactly one element of the orbit of (a, b) is a representative */
                    int x = a, y = b, hits = 0, seen[16][2], nseen = 0;
                    for (int t = 0; t < 4; t++) {
                        for (int s = 0; s < (G == 8 ? 2 : 1); s++) {
                            int px = x, py = s ? (N - y) % N : y, dup = 0;
                            for (int i = 0; i < nseen; i++)
                                dup |= seen[i][0] == px && seen[i][1] == py;
                            if (!dup) {
                                seen[nseen][0] = px, seen[nseen][1] = py, nseen++;
                                hits += spdl_gnorm_rep(G, N, px, py);
                            }
                        }
                        int nx = y, ny = (N - x) % N;
                        x = nx, y = ny;
                    }
                    cr_assert_eq(hits, 1, "G %d N %d (%d, %d): %d representatives in its orbit", G, N, a, b, hits);
                    reps += spdl_gnorm_rep(G, N, a, b);
                }
            /* Burnside: C4 has (N^2 + 2 f1 + f2) / 4 orbits, f1 = #{2a = 0}, f2 = f1^2 */
            int f1 = N % 2 ? 1 : 2, f2 = f1 * f1;
            int want = G == 4 ? (N * N + 2 * f1 + f2) / 4 : (N * N + 2 * f1 + f2 + 2 * N * f1 + 2 * N) / 8;
            cr_assert_eq(reps, want, "G %d N %d: %d representatives, Burnside says %d", G, N, reps, want);
        }
}
