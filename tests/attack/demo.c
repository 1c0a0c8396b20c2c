/* demo.c - shows numerically that a configuration the checker refuses
 * really does violate the property (tests/attack/run_demo.py runs it on
 * the golden models of tests/golden/, their `require` lines removed).
 *
 * Build with the model's generated M.c and -DMODEL_FN=M_model; run as
 *
 *     demo MODE MAT [ARG]
 *
 * Every matrix parameter (rank 2; the read-out W excepted) is set by MAT:
 *   skew   c times the block-diagonal [[0, 1], [-1, 0]] (then A - A' = 2cJ)
 *   ident  c times the identity
 *   orth   c times a random matrix with orthonormal rows or columns
 * with c its declared norm bound (1 when it has none); C4/D4 kernels (rank 4
 * lift, rank 5 gconv, whatever MAT) are centre taps: gconv k[o, i, 0] = c
 * for o = i, so gconv(k, .) = c I on the channels both have, and lift
 * k[o, i] = c / sqrt|G| for o = i (|G| from a gconv kernel of the model), an
 * isometry times c; every other parameter is 0, except W, which is the
 * identity (padded with zeros), so the logits are the state. Each matrix's
 * norm is then checked against its bound (the kernels' maps have norm c by
 * construction): the parameters are admissible.
 *
 * MODE growth: perturbs x0 = 0 by eps = 1e-30 in 64 random directions;
 *   for the direction that grows most, prints |s_k(eps e) - s_k(0)| / eps
 *   after every layer k (from M_trajectory). At x0 = 0 with zero biases the
 *   trajectory stays at 0, so this is the linearised growth, free of
 *   cancellation and of the nonlinearity.
 * MODE scale ARG = NAME:s1,s2,...: multiplies parameter NAME by each s and
 *   prints the largest ratio |Phi(eps e) - Phi(0)| / eps of the logits over
 *   64 random directions e (the linearised Lipschitz ratio at 0).
 * MODE xscale ARG = t1,t2,...: the same ratio at x = (t, 0, ..., 0).
 * Each line of results starts with `ROW`; run_demo.py checks the figures. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"
#include "vec.h"

const spdl_model *MODEL_FN(void);

enum { NDIR = 64 };

static void unit(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = nrand();
    double s = norm(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] /= s;
}

/* Orthonormal rows (or columns, whichever side is shorter). */
static void orthonormal(double *A, size_t r, size_t c)
{
    int byrow = r <= c;
    size_t nv = byrow ? r : c, len = byrow ? c : r;
#define EL(a, t) (*(byrow ? &A[(a) * c + (t)] : &A[(t) * c + (a)]))
    for (size_t i = 0; i < r * c; i++)
        A[i] = nrand();
    for (size_t a = 0; a < nv; a++) {
        for (int pass = 0; pass < 2; pass++)
            for (size_t b = 0; b < a; b++) {
                double d = 0;
                for (size_t t = 0; t < len; t++)
                    d += EL(a, t) * EL(b, t);
                for (size_t t = 0; t < len; t++)
                    EL(a, t) -= d * EL(b, t);
            }
        double s = 0;
        for (size_t t = 0; t < len; t++)
            s += EL(a, t) * EL(a, t);
        s = sqrt(s);
        for (size_t t = 0; t < len; t++)
            EL(a, t) /= s;
    }
#undef EL
}

/* "a,b,c" into v; returns the count. */
static int parse_list(const char *s, double *v, int max)
{
    int k = 0;
    while (*s && k < max) {
        char *end;
        v[k] = strtod(s, &end);
        if (end == s)
            break;
        k++;
        s = *end == ',' ? end + 1 : end;
    }
    return k;
}

/* Largest singular value by power iteration on A'A. */
static double sigma_max(const double *A, size_t r, size_t c)
{
    double v[256], w[256], s = 0;
    for (size_t j = 0; j < c; j++)
        v[j] = 1 + 0.01 * (double)j;
    for (int it = 0; it < 2000; it++) {
        for (size_t i = 0; i < r; i++) {
            w[i] = 0;
            for (size_t j = 0; j < c; j++)
                w[i] += A[i * c + j] * v[j];
        }
        for (size_t j = 0; j < c; j++) {
            v[j] = 0;
            for (size_t i = 0; i < r; i++)
                v[j] += A[i * c + j] * w[i];
        }
        double nv = norm(v, c);
        if (!(nv > 0))
            return 0;
        for (size_t j = 0; j < c; j++)
            v[j] /= nv;
        s = sqrt(nv);
    }
    return s;
}

static const spdl_param *find(const spdl_model *m, const char *name, size_t *q)
{
    size_t np;
    const spdl_param *pt = m->params(&np);
    for (size_t i = 0; i < np; i++)
        if (!strcmp(pt[i].name, name)) {
            *q = i;
            return &pt[i];
        }
    return NULL;
}

static int set_params(const spdl_model *m, const char *mat, double *th)
{
    size_t np;
    const spdl_param *pt = m->params(&np);
    memset(th, 0, m->nparam * sizeof *th);
    for (size_t q = 0; q < np; q++) {
        const spdl_param *p = &pt[q];
        if (p->rank != 2 || p->size != p->layers * p->shape[0] * p->shape[1])
            continue;
        size_t r = p->shape[0], c = p->shape[1];
        double bound = m->norm_bound && !isnan(m->norm_bound[q]) ? m->norm_bound[q] : 1;
        for (size_t l = 0; l < p->layers; l++) {
            double *A = th + p->offset + l * r * c;
            if (!strcmp(p->name, "W")) {
                for (size_t i = 0; i < r && i < c; i++)
                    A[i * c + i] = 1;
                continue;
            }
            if (!strcmp(mat, "skew")) {
                for (size_t i = 0; i + 1 < r && i + 1 < c; i += 2) {
                    A[i * c + i + 1] = bound;
                    A[(i + 1) * c + i] = -bound;
                }
            } else if (!strcmp(mat, "ident")) {
                for (size_t i = 0; i < r && i < c; i++)
                    A[i * c + i] = bound;
            } else if (!strcmp(mat, "orth")) {
                orthonormal(A, r, c);
                for (size_t i = 0; i < r * c; i++)
                    A[i] *= bound;
            } else {
                fprintf(stderr, "demo: unknown matrix recipe %s\n", mat);
                return 2;
            }
        }
    }
    size_t G = 0;
    for (size_t q = 0; q < np; q++)
        if (pt[q].rank == 5)
            G = pt[q].shape[2];
    for (size_t q = 0; q < np; q++) {
        const spdl_param *p = &pt[q];
        if (p->rank != 4 && p->rank != 5)
            continue;
        if (!G) {
            fprintf(stderr, "demo: a lift kernel needs a gconv kernel in the model (for |G|)\n");
            return 2;
        }
        size_t co = p->shape[0], ci = p->shape[1], k = p->shape[p->rank - 1], per = p->size / p->layers;
        size_t taps = k * k * (p->rank == 5 ? G : 1), ctr = (k / 2) * k + k / 2;
        double bound = m->norm_bound && !isnan(m->norm_bound[q]) ? m->norm_bound[q] : 1;
        for (size_t l = 0; l < p->layers; l++)
            for (size_t o = 0; o < co && o < ci; o++)
                th[p->offset + l * per + (o * ci + o) * taps + ctr] = p->rank == 5 ? bound : bound / sqrt((double)G);
    }
    /* admissible: every declared bound holds (power iteration; for these
     * recipes the norm is c exactly, up to rounding). M_project is not the
     * judge: its rigorous upper bound may shrink a matrix that sits exactly
     * on its bound by up to its tolerance (1e-3). */
    for (size_t q = 0; q < np; q++) {
        const spdl_param *p = &pt[q];
        if (p->rank != 2 || p->size != p->layers * p->shape[0] * p->shape[1] || !m->norm_bound ||
            isnan(m->norm_bound[q]))
            continue;
        for (size_t l = 0; l < p->layers; l++) {
            double s = sigma_max(th + p->offset + l * p->shape[0] * p->shape[1], p->shape[0], p->shape[1]);
            if (s > m->norm_bound[q] * (1 + 1e-12)) {
                printf("FAIL: the demo's %s has norm %.17g > %.17g\n", p->name, s, m->norm_bound[q]);
                return 1;
            }
        }
    }
    return 0;
}

/* Largest |Phi(x0 + eps e) - Phi(x0)| / eps of the logits over random unit
 * directions e. At x0 = 0 with zero biases Phi(x0) = 0 exactly, and eps =
 * 1e-30 gives the linearisation itself (floating point is scale-invariant
 * far above the subnormals, and nothing cancels); elsewhere eps = 1e-7
 * keeps the difference's rounding small. */
static double local_ratio(const spdl_model *m, const double *th, const double *x0, void *work)
{
    size_t n = m->nin, k = m->nout, B = 2 * NDIR;
    double *x = calloc(B * n, sizeof *x), *y = calloc(B * k, sizeof *y), e[256];
    double eps = norm(x0, n) == 0 ? 1e-30 : 1e-7;
    double best = 0;
    for (size_t j = 0; j < NDIR; j++) {
        unit(e, n);
        for (size_t i = 0; i < n; i++) {
            double base = x0[i];
            x[2 * j * n + i] = base;
            x[(2 * j + 1) * n + i] = base + eps * e[i];
        }
    }
    if (m->forward(th, B, x, y, work) == 0)
        for (size_t j = 0; j < NDIR; j++) {
            double d = 0;
            for (size_t i = 0; i < k; i++)
                d += (y[(2 * j + 1) * k + i] - y[2 * j * k + i]) * (y[(2 * j + 1) * k + i] - y[2 * j * k + i]);
            best = fmax(best, sqrt(d) / eps);
        }
    free(x);
    free(y);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: demo growth|scale|xscale skew|ident|orth [ARG]\n");
        return 2;
    }
    const spdl_model *m = MODEL_FN();
    const char *mode = argv[1];
    size_t n = m->nin, ns = m->nstate, rows = m->traj_rows;
    if (n > 256) {
        printf("FAIL: input wider than 256\n");
        return 2;
    }
    double *th = calloc(m->nparam, sizeof *th);
    void *work = malloc(m->work_size(2 * NDIR));
    int rc = set_params(m, argv[2], th);
    if (rc)
        return rc;
    if (!strcmp(mode, "growth")) {
        const double eps = 1e-30;
        size_t B = NDIR + 1;
        double *x = calloc(B * n, sizeof *x), *traj = calloc(B * rows * ns, sizeof *traj);
        for (size_t j = 1; j < B; j++) {
            unit(x + j * n, n);
            for (size_t i = 0; i < n; i++)
                x[j * n + i] *= eps;
        }
        if (m->trajectory(th, B, x, traj, work)) {
            printf("FAIL: trajectory failed\n");
            return 1;
        }
        size_t best = 1;
        double bg = -1;
        for (size_t j = 1; j < B; j++) {
            double d = 0;
            for (size_t i = 0; i < ns; i++) {
                double v = traj[(j * rows + rows - 1) * ns + i] - traj[(rows - 1) * ns + i];
                d += v * v;
            }
            if (sqrt(d) > bg) {
                bg = sqrt(d);
                best = j;
            }
        }
        for (size_t r = 0; r < rows; r++) {
            double d = 0;
            for (size_t i = 0; i < ns; i++) {
                double v = traj[(best * rows + r) * ns + i] - traj[r * ns + i];
                d += v * v;
            }
            printf("ROW %zu %.12g\n", r, sqrt(d) / eps);
        }
        free(x);
        free(traj);
    } else if (!strcmp(mode, "scale") && argc > 3) {
        char name[64];
        const char *colon = strchr(argv[3], ':');
        size_t q;
        if (!colon || (size_t)(colon - argv[3]) >= sizeof name) {
            printf("FAIL: scale NAME:s1,s2,...\n");
            return 2;
        }
        memcpy(name, argv[3], (size_t)(colon - argv[3]));
        name[colon - argv[3]] = 0;
        const spdl_param *p = find(m, name, &q);
        if (!p) {
            printf("FAIL: no parameter %s\n", name);
            return 2;
        }
        double *ts = malloc(m->nparam * sizeof *ts), sc[32], zero[256] = {0};
        int ns_ = parse_list(colon + 1, sc, 32);
        for (int j = 0; j < ns_; j++) {
            memcpy(ts, th, m->nparam * sizeof *th);
            for (size_t i = 0; i < p->size; i++)
                ts[p->offset + i] *= sc[j];
            printf("ROW %g %.12g\n", sc[j], local_ratio(m, ts, zero, work));
        }
        free(ts);
    } else if (!strcmp(mode, "xscale") && argc > 3) {
        double x0[256], t[32];
        int nt = parse_list(argv[3], t, 32);
        for (int j = 0; j < nt; j++) {
            for (size_t i = 0; i < n; i++)
                x0[i] = i == 0 ? t[j] : 0;
            printf("ROW %g %.12g\n", t[j], local_ratio(m, th, x0, work));
        }
    } else {
        fprintf(stderr, "demo: unknown mode %s\n", mode);
        return 2;
    }
    free(th);
    free(work);
    return 0;
}
