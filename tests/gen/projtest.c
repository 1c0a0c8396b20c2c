/* projtest.c - M_project keeps every declared norm bound (DESIGN §3, issue
 * 5): for parameters blown far past their bounds, the true spectral norm
 * after M_project, computed here by a dense symmetric eigen-solver (cyclic
 * Jacobi on A'A, independent of the Gram bound the projection uses), is at
 * most the bound, and not far below it (the projection scales, it does not
 * crush). A Z(n) convolution kernel K[cout, cin, k] is bounded as the
 * operator it denotes (DESIGN §8): its dense (cout n) x (cin n) matrix,
 * built here from the formula; run `projtest N` or `projtest Z N` for such
 * models. C4 and D4 kernels (lift R[cout, cin, k, k], gconv
 * R[cout, cin, |G|, k, k]) likewise, as the maps on the n x n grid, built
 * here from DESIGN §8's formulas (the group acting on filters, zero
 * padding): `projtest C4 N` or `projtest D4 N`, N the input's grid, and
 * NAME=M for a kernel M_project bounds on another grid (after pool2). Their
 * bound is the torus one (the map's norm is at most the largest norm of the
 * kernel's symbols on the (n + k' - 1)-torus, k' = min(k, 2n - 1)), which can
 * exceed the map's norm on small grids: so the projected map must be within
 * the bound, and the circular map on that torus, also built here, within
 * the bound and not below it by more than 1e-5 (the projection scales to
 * the torus bound, it does not crush). Build with the model's M.c and
 * -DMODEL_FN=M_model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group_filters.h"
#include "spdl.h"

const spdl_model *MODEL_FN(void);

static uint64_t rng = 77;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng >> 11) + 0.5) * 0x1.0p-53;
}

/* the largest singular value of the r x c matrix A: sqrt of the largest
 * eigenvalue of its Gram matrix (A'A or AA', the smaller), reduced to a
 * tridiagonal matrix by Householder reflections (backward stable: the
 * eigenvalues of B + E, |E| ~ c eps |B|) and bisected with Sturm counts to
 * the last bit. O(c^3) once, where cyclic Jacobi took minutes on the
 * 288 x 288 maps of C4 kernels. */
static double sigma_max(int r, int c, const double *A)
{
    int n = r < c ? r : c;
    double *B = calloc((size_t)n * n, sizeof *B), *v = malloc(sizeof *v * (size_t)n), *w = malloc(sizeof *w * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double t = 0;
            if (r < c)
                for (int k = 0; k < c; k++)
                    t += A[(size_t)i * c + k] * A[(size_t)j * c + k];
            else
                for (int k = 0; k < r; k++)
                    t += A[(size_t)k * c + i] * A[(size_t)k * c + j];
            B[i * n + j] = B[j * n + i] = t;
        }
    for (int k = 0; k + 2 < n; k++) { /* zero column k below the subdiagonal: B <- H B H, H = I - 2 v v' */
        double xx = 0;
        for (int i = k + 1; i < n; i++)
            xx += B[i * n + k] * B[i * n + k];
        double alpha = B[(k + 1) * n + k] > 0 ? -sqrt(xx) : sqrt(xx), vv = 0;
        for (int i = k + 1; i < n; i++)
            v[i] = B[i * n + k] - (i == k + 1 ? alpha : 0), vv += v[i] * v[i];
        if (vv == 0)
            continue;
        for (int i = k + 1; i < n; i++)
            v[i] /= sqrt(vv);
        double vp = 0;
        for (int i = k + 1; i < n; i++) {
            double t = 0;
            for (int j = k + 1; j < n; j++)
                t += B[i * n + j] * v[j];
            w[i] = t, vp += v[i] * t;
        }
        for (int i = k + 1; i < n; i++)
            w[i] -= vp * v[i];
        for (int i = k + 1; i < n; i++)
            for (int j = k + 1; j < n; j++)
                B[i * n + j] -= 2 * (v[i] * w[j] + w[i] * v[j]);
        B[(k + 1) * n + k] = B[k * n + k + 1] = alpha;
    }
    double lo = 0, hi = 0; /* Gershgorin */
    for (int i = 0; i < n; i++) {
        double rad = (i > 0 ? fabs(B[i * n + i - 1]) : 0) + (i + 1 < n ? fabs(B[(i + 1) * n + i]) : 0);
        hi = fmax(hi, B[i * n + i] + rad);
    }
    while (hi - lo > 4e-16 * hi) { /* invariant: an eigenvalue in (lo, hi], none above hi */
        double x = lo + (hi - lo) / 2, q = 1;
        int above = 0;
        for (int i = 0; i < n; i++) {
            double e2 = i > 0 ? B[i * n + i - 1] * B[i * n + i - 1] : 0;
            q = B[i * n + i] - x - (i > 0 ? e2 / q : 0);
            if (q == 0)
                q = -1e-300;
            above += q > 0;
        }
        if (x <= lo || x >= hi)
            break;
        if (above > 0)
            lo = x;
        else
            hi = x;
    }
    free(B), free(v), free(w);
    return sqrt(hi);
}

static double *zconv_matrix(int cout, int cin, int k, int n, const double *K)
{
    int rows = cout * n, cols = cin * n, r = (k - 1) / 2;
    double *A = calloc((size_t)rows * (size_t)cols, sizeof *A);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < n; i++)
            for (int c = 0; c < cin; c++)
                for (int u = 0; u < k; u++)
                    A[(size_t)(o * n + i) * (size_t)cols + (size_t)(c * n + (((i + u - r) % n) + n) % n)] +=
                        K[(o * cin + c) * k + u];
    return A;
}

/* ---- C4 and D4 (DESIGN §8) ------------------------------------------------------- */

/* The map of a lift (gconv = 0) or gconv kernel on n x n grids, zero outside (N = n), or the circular one
 * on the N-torus with the filters cropped to kc x kc: the dense (cout G N^2) x (ci N^2) matrix, ci = cin G
 * for gconv, cin for lift. */
static double *gmap_matrix(int G, int gconv, int cout, int cin, int k, int N, int kc, int circular, const double *K,
                           int *rows, int *cols)
{
    int ci = gconv ? cin * G : cin, r = (k - 1) / 2, rc = (kc - 1) / 2, NN = N * N;
    *rows = cout * G * NN, *cols = ci * NN;
    double *A = calloc((size_t)*rows * (size_t)*cols, sizeof *A), *W = gf_bank(G, gconv, cout, cin, k, K);
    if (!A || !W) {
        printf("FAIL: out of memory, or no group composition (G = %d)\n", G);
        exit(1);
    }
    for (int o = 0; o < cout; o++)
        for (int e = 0; e < G; e++)
            for (int j = 0; j < ci; j++) {
                const double *w = W + (((size_t)o * G + (size_t)e) * ci + (size_t)j) * k * k;
                for (int u = r - rc; u <= r + rc; u++)
                    for (int v = r - rc; v <= r + rc; v++)
                        for (int p = 0; p < N; p++)
                            for (int q = 0; q < N; q++) {
                                int pp = p + u - r, qq = q + v - r;
                                if (circular)
                                    pp = ((pp % N) + N) % N, qq = ((qq % N) + N) % N;
                                else if (pp < 0 || pp >= N || qq < 0 || qq >= N)
                                    continue;
                                A[(size_t)((o * G + e) * NN + p * N + q) * (size_t)*cols + (size_t)(j * NN + pp * N + qq)] +=
                                    w[u * k + v];
                            }
            }
    free(W);
    return A;
}

int main(int argc, char **argv)
{
    const spdl_model *m = MODEL_FN();
    /* `projtest N` (Z(n)), `projtest GROUP N [NAME=GRID...]` */
    int zn = 0, G = 0, grid = 0, a0 = 1;
    if (argc > 1 && (!strcmp(argv[1], "C4") || !strcmp(argv[1], "D4") || !strcmp(argv[1], "Z") || !strcmp(argv[1], "S")))
        G = !strcmp(argv[1], "C4") ? 4 : !strcmp(argv[1], "D4") ? 8 : 0, a0 = 2;
    if (argc > a0) {
        if (G)
            grid = atoi(argv[a0]);
        else if (strcmp(argv[1], "S"))
            zn = atoi(argv[a0]);
    }
    size_t np;
    const spdl_param *ps = m->params(&np);
    double *th = calloc(m->nparam ? m->nparam : 1, sizeof *th);
    int checked = 0, fail = 0;
    double worst_over = 0, worst_under = 1;
    for (int trial = 0; trial < 6; trial++) {
        m->init(th, (uint64_t)trial);
        double scale = trial == 0 ? 1 : pow(10, 2 * urand()) * 2;
        for (size_t i = 0; i < m->nparam; i++)
            th[i] = th[i] * scale + 0.3 * (urand() - 0.5);
        double *before = malloc(sizeof(double) * (m->nparam ? m->nparam : 1));
        memcpy(before, th, sizeof(double) * m->nparam);
        m->project(th);
        for (size_t i = 0; i < np; i++) {
            double c = m->norm_bound[i];
            if (isnan(c))
                continue;
            size_t per = ps[i].size / ps[i].layers;
            for (size_t k = 0; k < ps[i].layers; k++) {
                int r, cols;
                double *A, *A0;
                if (ps[i].rank >= 4) { /* a C4/D4 lift (rank 4) or gconv (rank 5) kernel */
                    if (!G || grid <= 0) {
                        printf("FAIL %s: %s is a C4/D4 kernel: run projtest C4|D4 N with the input's grid\n", m->name, ps[i].name);
                        return 1;
                    }
                    if (k >= 2)
                        continue; /* two layers of each kernel */
                    int gc = ps[i].rank == 5, co = (int)ps[i].shape[0], ci = (int)ps[i].shape[1], kk = (int)ps[i].shape[gc ? 3 : 2];
                    int n = grid;
                    for (int a = a0 + 1; a < argc; a++) {
                        size_t len = strlen(ps[i].name);
                        if (!strncmp(argv[a], ps[i].name, len) && argv[a][len] == '=')
                            n = atoi(argv[a] + len + 1);
                    }
                    if (gc && (int)ps[i].shape[2] != G) {
                        printf("FAIL %s: %s has %zu group elements, not %d\n", m->name, ps[i].name, ps[i].shape[2], G);
                        return 1;
                    }
                    int kc = kk < 2 * n - 1 ? kk : 2 * n - 1, tr, tc, mr, mc;
                    const double *P = th + ps[i].offset + k * per, *P0 = before + ps[i].offset + k * per;
                    double *Mp = gmap_matrix(G, gc, co, ci, kk, n, kk, 0, P, &mr, &mc);
                    double *Tp = gmap_matrix(G, gc, co, ci, kk, n + kc - 1, kc, 1, P, &tr, &tc);
                    double *T0 = gmap_matrix(G, gc, co, ci, kk, n + kc - 1, kc, 1, P0, &tr, &tc);
                    double s = sigma_max(mr, mc, Mp), t = sigma_max(tr, tc, Tp), t0 = sigma_max(tr, tc, T0);
                    checked++;
                    worst_over = fmax(worst_over, s / c);
                    if (t0 > c)
                        worst_under = fmin(worst_under, t / c);
                    if (s > c * (1 + 1e-12) || t > c * (1 + 1e-9)) {
                        printf("FAIL %s: %s layer %zu: the map has norm %.17g, the torus map %.17g, bound %g after project\n",
                               m->name, ps[i].name, k, s, t, c);
                        fail = 1;
                    }
                    if (t0 > c && t < c * (1 - 1e-5)) {
                        printf("FAIL %s: %s layer %zu was crushed: torus norm %.9g (bound %g)\n", m->name, ps[i].name, k, t, c);
                        fail = 1;
                    }
                    free(Mp), free(Tp), free(T0);
                    continue;
                }
                if (ps[i].rank == 2) {
                    r = (int)ps[i].shape[0], cols = (int)ps[i].shape[1];
                    A = th + ps[i].offset + k * per;
                    A0 = before + ps[i].offset + k * per;
                } else if (ps[i].rank == 3) { /* a Z(n) convolution kernel */
                    if (zn <= 0) {
                        printf("FAIL %s: %s is a convolution kernel: run projtest N with the sequence length\n", m->name,
                               ps[i].name);
                        return 1;
                    }
                    int co = (int)ps[i].shape[0], ci = (int)ps[i].shape[1], kk = (int)ps[i].shape[2];
                    r = co * zn, cols = ci * zn;
                    A = zconv_matrix(co, ci, kk, zn, th + ps[i].offset + k * per);
                    A0 = zconv_matrix(co, ci, kk, zn, before + ps[i].offset + k * per);
                } else { /* skew[n]: n(n-1)/2 numbers above the diagonal */
                    int n = (int)((1 + sqrt(1 + 8.0 * (double)per)) / 2 + 0.5);
                    r = cols = n;
                    A = calloc((size_t)n * n, sizeof *A);
                    A0 = calloc((size_t)n * n, sizeof *A0);
                    size_t q = 0;
                    for (int a = 0; a < n; a++)
                        for (int b = a + 1; b < n; b++, q++) {
                            A[a * n + b] = th[ps[i].offset + k * per + q], A[b * n + a] = -A[a * n + b];
                            A0[a * n + b] = before[ps[i].offset + k * per + q], A0[b * n + a] = -A0[a * n + b];
                        }
                }
                if (ps[i].rank == 3 && k >= 2) { /* two layers of each convolution kernel: the operators are large */
                    free(A);
                    free(A0);
                    continue;
                }
                double s = sigma_max(r, cols, A);
                double s0 = sigma_max(r, cols, A0);
                checked++;
                worst_over = fmax(worst_over, s / c);
                if (s0 > c)
                    worst_under = fmin(worst_under, s / c);
                if (s > c * (1 + 1e-12)) {
                    printf("FAIL %s: %s layer %zu has norm %.17g > bound %g after project\n", m->name, ps[i].name, k, s, c);
                    fail = 1;
                }
                if (s0 > c && s < 0.98 * c) {
                    printf("FAIL %s: %s layer %zu was crushed to %.6g (bound %g)\n", m->name, ps[i].name, k, s, c);
                    fail = 1;
                }
                if (ps[i].rank != 2) {
                    free(A);
                    free(A0);
                }
            }
        }
        free(before);
    }
    if (checked)
        printf("%s: %d projected matrices or operators, largest norm/bound %.15f, smallest norm/bound of those above it %.6f\n", m->name,
               checked, worst_over, worst_under);
    free(th);
    return fail;
}
