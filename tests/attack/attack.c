/* attack.c - tries to break a model's certified Lipschitz bound (and, for a
 * model certified non-expansive, the non-expansiveness of its flow).
 *
 * Build with the model's generated M.c and -DMODEL_FN=M_model; run as
 *
 *     attack L FLOW [EFFORT] [SEED]
 *
 * L is the bound `spdlc check --json` certified for the map x -> logits
 * (the models here output the logits themselves). FLOW is 0 (lipschitz
 * only), 1 (the flow is certified non-expansive: also attack the map from
 * the initial state to the state after the last block, read from
 * M_trajectory, against 1) or 2 (search that map for expansion and report
 * the best ratio without failing: the refusals that mean "no proof").
 * EFFORT scales the work (1 by default; the sanitizer run uses less).
 *
 * For six admissible parameter vectors (init; random parameters blown up
 * 50 times beyond their bounds, then passed through M_project, so the
 * bounds are saturated: Gaussian, all singular values equal, rank one;
 * biases random or zero) the attack
 *   1. checks that every declared norm bound holds (power iteration, a
 *      lower estimate of the true norm: above the bound means M_project or
 *      M_init let it through);
 *   2. evaluates about 1,000 random pairs (u, v) at distances 1e-4 .. 10
 *      around centres of scale 0.1 .. 10, 32 pairs (one 64-lane tile of
 *      the generated code) per call;
 *   3. runs gradient ascent on log |Phi(u) - Phi(v)| - log |u - v| from the
 *      32 best pairs at once, with the gradient from the generated vjp:
 *      forward on the batch [u; v], then vjp with dy = [d; -d], d =
 *      (Phi(u) - Phi(v)) / |Phi(u) - Phi(v)|. For the flow, the read-out is
 *      `W * s + w` and the flow does not read W: with W = [I; 0] (when
 *      NOUT >= NSTATE) and dy = [(d, 0); -(d, 0)], or W's row g set to the
 *      d of pair g and dy = [e_g; -e_g], the vjp is the flow's own.
 * Under FLOW 2 the best ratio is then pushed further by ascent jointly in
 * (u, v) and the parameters (kept admissible by M_project).
 * It fails (exit 1) when a ratio exceeds L (1 + 1e-9), or the flow's exceeds
 * 1 + 1e-9 under FLOW 1; exit 2 when the model breaks an assumption of the
 * harness. The last line is `RESULT lip_ratio flow_ratio nthetas`. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"
#include "vec.h"

const spdl_model *MODEL_FN(void);

enum { NTH = 6, TOPK = 32, CHUNK = 32 };
static const double REL_TOL = 1e-9;

/* ---- vectors (random numbers and norm: vec.h) ------------------------------- */

static double dist(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "attack: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- the model and its maps --------------------------------------------------- */

typedef enum { MAP_LOGITS, MAP_FLOW } Map;

typedef struct Ctx {
    const spdl_model *m;
    size_t P, NI, NO, NS, rows;
    void *work;
    double *traj, *thw, *dy;            /* scratch for 2 * CHUNK samples */
    const spdl_param *W;                /* the read-out matrix, for the flow's vjp */
    int flow_grad;                      /* the flow's vjp is usable */
} Ctx;

static void die(const char *what, int rc)
{
    printf("FAIL harness: %s (error %d)\n", what, rc);
    exit(2);
}

/* The map's values on a batch: logits (NO each) or the state after the
 * last block (NS each), and for the flow the initial state too. */
static size_t map_dim(const Ctx *c, Map mp) { return mp == MAP_LOGITS ? c->NO : c->NS; }

static void eval(Ctx *c, Map mp, const double *th, size_t B, const double *x, double *out, double *s0)
{
    int rc;
    if (mp == MAP_LOGITS) {
        rc = c->m->forward(th, B, x, out, c->work);
        if (rc)
            die("forward failed", rc);
        return;
    }
    rc = c->m->trajectory(th, B, x, c->traj, c->work);
    if (rc)
        die("trajectory failed", rc);
    for (size_t b = 0; b < B; b++) {
        memcpy(out + b * c->NS, c->traj + (b * c->rows + c->rows - 1) * c->NS, c->NS * sizeof *out);
        if (s0)
            memcpy(s0 + b * c->NS, c->traj + b * c->rows * c->NS, c->NS * sizeof *out);
    }
}

/* ---- the attack ------------------------------------------------------------------ */

/* A set of pairs attacked together: one batch of 2 NP samples per call (a
 * generated model computes a tile of SPDL_BT = 64 lanes at a time, so 32
 * pairs cost what one does). */
typedef struct Pairs {
    size_t np;
    double *u, *v;          /* np x NI */
    double *ratio;          /* np */
    /* the ascent's state */
    double *mid, *del, *gm, *gd, *sm, *sd;
    int *fresh;             /* gradient to be recomputed */
} Pairs;

static void pairs_alloc(Pairs *p, size_t np, size_t n)
{
    p->np = np;
    p->u = xcalloc(np * n, sizeof(double));
    p->v = xcalloc(np * n, sizeof(double));
    p->ratio = xcalloc(np, sizeof(double));
    p->mid = xcalloc(np * n, sizeof(double));
    p->del = xcalloc(np * n, sizeof(double));
    p->gm = xcalloc(np * n, sizeof(double));
    p->gd = xcalloc(np * n, sizeof(double));
    p->sm = xcalloc(np, sizeof(double));
    p->sd = xcalloc(np, sizeof(double));
    p->fresh = xcalloc(np, sizeof(int));
}

static void pairs_free(Pairs *p)
{
    free(p->u);
    free(p->v);
    free(p->ratio);
    free(p->mid);
    free(p->del);
    free(p->gm);
    free(p->gd);
    free(p->sm);
    free(p->sd);
    free(p->fresh);
}

/* Values of the map on u_j, v_j (o: 2 np x k, interleaved u, v), and the ratios. */
static void pairs_eval(Ctx *c, Map mp, const double *th, size_t np, const double *u, const double *v, double *x,
                       double *o, double *s0, double *ratio)
{
    size_t n = c->NI, k = map_dim(c, mp);
    for (size_t j = 0; j < np; j++) {
        memcpy(x + 2 * j * n, u + j * n, n * sizeof *x);
        memcpy(x + (2 * j + 1) * n, v + j * n, n * sizeof *x);
    }
    eval(c, mp, th, 2 * np, x, o, s0);
    for (size_t j = 0; j < np; j++) {
        double den = mp == MAP_FLOW ? dist(s0 + 2 * j * c->NS, s0 + (2 * j + 1) * c->NS, c->NS)
                                    : dist(u + j * n, v + j * n, n);
        double num = dist(o + 2 * j * k, o + (2 * j + 1) * k, k);
        ratio[j] = den > 0 && isfinite(num) ? num / den : 0;
    }
}

/* dx (2 np x NI) = [J(u_j)' d_j; -J(v_j)' d_j] for unit vectors d (np x k);
 * with np = 1, dth (if not NULL) gets the parameters' part, d/dtheta of
 * d . (Phi(u) - Phi(v)). */
static void pairs_vjp(Ctx *c, Map mp, const double *th, size_t np, const double *x, const double *d, double *dx,
                      double *dth)
{
    size_t n = c->NI, NO = c->NO, NS = c->NS;
    int rc = 0;
    if (mp == MAP_LOGITS) {
        for (size_t j = 0; j < np; j++)
            for (size_t i = 0; i < NO; i++) {
                c->dy[2 * j * NO + i] = d[j * NO + i];
                c->dy[(2 * j + 1) * NO + i] = -d[j * NO + i];
            }
        rc = c->m->vjp(th, 2 * np, x, c->dy, dx, dth, c->work);
    } else if (NO >= NS) {
        /* W = [I; 0]: the logits are (s, 0) + w, and dy_j = (d_j, 0) */
        memcpy(c->thw, th, c->P * sizeof *th);
        memset(c->thw + c->W->offset, 0, c->W->size * sizeof *th);
        for (size_t i = 0; i < NS; i++)
            c->thw[c->W->offset + i * NS + i] = 1;
        memset(c->dy, 0, 2 * np * NO * sizeof *c->dy);
        for (size_t j = 0; j < np; j++)
            for (size_t i = 0; i < NS; i++) {
                c->dy[2 * j * NO + i] = d[j * NS + i];
                c->dy[(2 * j + 1) * NO + i] = -d[j * NS + i];
            }
        rc = c->m->vjp(c->thw, 2 * np, x, c->dy, dx, dth, c->work);
    } else {
        /* groups of NO pairs: W's row g is d of the group's pair g, dy = +-e_g */
        for (size_t j0 = 0; j0 < np && !rc; j0 += NO) {
            size_t g = np - j0 < NO ? np - j0 : NO;
            memcpy(c->thw, th, c->P * sizeof *th);
            memset(c->thw + c->W->offset, 0, c->W->size * sizeof *th);
            memset(c->dy, 0, 2 * g * NO * sizeof *c->dy);
            for (size_t r = 0; r < g; r++) {
                memcpy(c->thw + c->W->offset + r * NS, d + (j0 + r) * NS, NS * sizeof *d);
                c->dy[2 * r * NO + r] = 1;
                c->dy[(2 * r + 1) * NO + r] = -1;
            }
            rc = c->m->vjp(c->thw, 2 * g, x + 2 * j0 * n, c->dy, dx + 2 * j0 * n, np == 1 ? dth : NULL, c->work);
        }
    }
    if (rc)
        die("vjp failed", rc);
}

/* Gradient ascent on f = log |Phi(u) - Phi(v)| - log |u - v|, all pairs at
 * once, in the coordinates m = (u + v) / 2, delta = u - v, each with its own
 * adaptive step: the difference shrinks or turns towards the top singular
 * direction, the midpoint wanders to where the map is steepest. A step is
 * taken only if it raises the pair's ratio. |u - v| stays >= 1e-4, where
 * rounding in the ratio is still far below the test's 1e-9. */
static void ascend(Ctx *c, Map mp, const double *th, Pairs *p, int iters)
{
    size_t n = c->NI, k = map_dim(c, mp), np = p->np;
    double *x = xcalloc(2 * np * n, sizeof *x), *o = xcalloc(2 * np * k, sizeof *o);
    double *s0 = xcalloc(2 * np * c->NS, sizeof *s0), *dx = xcalloc(2 * np * n, sizeof *dx);
    double *d = xcalloc(np * k, sizeof *d), *tu = xcalloc(np * n, sizeof *tu), *tv = xcalloc(np * n, sizeof *tv);
    double *tr = xcalloc(np, sizeof *tr), *dn = xcalloc(np, sizeof *dn);
    for (size_t j = 0; j < np; j++) {
        for (size_t i = 0; i < n; i++) {
            p->mid[j * n + i] = 0.5 * (p->u[j * n + i] + p->v[j * n + i]);
            p->del[j * n + i] = p->u[j * n + i] - p->v[j * n + i];
        }
        p->sm[j] = 0.1 * fmax(1, norm(p->mid + j * n, n));
        p->sd[j] = 0.2;
        p->fresh[j] = 1;
    }
    for (int it = 0; it < iters; it++) {
        /* gradients where the pair moved (computed for all: one batch) */
        int any = 0;
        for (size_t j = 0; j < np; j++)
            any |= p->fresh[j];
        if (any) {
            pairs_eval(c, mp, th, np, p->u, p->v, x, o, s0, tr);
            for (size_t j = 0; j < np; j++) {
                dn[j] = dist(o + 2 * j * k, o + (2 * j + 1) * k, k);
                for (size_t i = 0; i < k; i++)
                    d[j * k + i] = dn[j] > 0 ? (o[2 * j * k + i] - o[(2 * j + 1) * k + i]) / dn[j] : 0;
            }
            pairs_vjp(c, mp, th, np, x, d, dx, NULL);
            for (size_t j = 0; j < np; j++) {
                if (!p->fresh[j])
                    continue;
                p->fresh[j] = 0;
                const double *del = p->del + j * n;
                double r2 = 0;
                for (size_t i = 0; i < n; i++)
                    r2 += del[i] * del[i];
                for (size_t i = 0; i < n; i++) {
                    double fu = dn[j] > 0 ? dx[2 * j * n + i] / dn[j] - del[i] / r2 : 0;
                    double fv = dn[j] > 0 ? dx[(2 * j + 1) * n + i] / dn[j] + del[i] / r2 : 0;
                    p->gm[j * n + i] = fu + fv;
                    p->gd[j * n + i] = 0.5 * (fu - fv);
                }
            }
        }
        /* a trial step for every pair */
        for (size_t j = 0; j < np; j++) {
            const double *gm = p->gm + j * n, *gd = p->gd + j * n, *mid = p->mid + j * n, *del = p->del + j * n;
            double ngm = norm(gm, n), ngd = norm(gd, n), r = norm(del, n), nd2 = 0;
            double *nu = tu + j * n, *nv = tv + j * n;
            for (size_t i = 0; i < n; i++) {
                double di = del[i] + (ngd > 0 ? p->sd[j] * r * gd[i] / ngd : 0);
                nu[i] = di; /* the new difference, for now */
                nd2 += di * di;
            }
            double sc = sqrt(nd2) < 1e-4 ? 1e-4 / fmax(sqrt(nd2), 1e-300) : 1;
            for (size_t i = 0; i < n; i++) {
                double mi = mid[i] + (ngm > 0 ? p->sm[j] * gm[i] / ngm : 0), di = nu[i] * sc;
                nu[i] = mi + 0.5 * di;
                nv[i] = mi - 0.5 * di;
            }
        }
        pairs_eval(c, mp, th, np, tu, tv, x, o, s0, tr);
        for (size_t j = 0; j < np; j++) {
            if (tr[j] > p->ratio[j]) {
                p->ratio[j] = tr[j];
                memcpy(p->u + j * n, tu + j * n, n * sizeof *tu);
                memcpy(p->v + j * n, tv + j * n, n * sizeof *tv);
                for (size_t i = 0; i < n; i++) {
                    p->mid[j * n + i] = 0.5 * (tu[j * n + i] + tv[j * n + i]);
                    p->del[j * n + i] = tu[j * n + i] - tv[j * n + i];
                }
                p->sm[j] *= 1.6;
                p->sd[j] = fmin(p->sd[j] * 1.6, 0.9);
                p->fresh[j] = 1;
            } else {
                p->sm[j] *= 0.4;
                p->sd[j] *= 0.4;
            }
        }
    }
    free(x);
    free(o);
    free(s0);
    free(dx);
    free(d);
    free(tu);
    free(tv);
    free(tr);
    free(dn);
}

/* The search for the refusals that mean "no proof" (FLOW 2): gradient
 * ascent on the flow's log ratio jointly in (u, v) and the parameters,
 * which M_project keeps admissible after every step. The read-out (W, w)
 * is not part of the flow and stays put. Starts from `starts` random pairs
 * near 0, where the activations are not saturated; returns the best ratio
 * and leaves its parameters in th. */
static double search_joint(Ctx *c, double *th, int starts, int iters)
{
    size_t n = c->NI, k = c->NS, P = c->P;
    size_t np_;
    const spdl_param *pt = c->m->params(&np_);
    double *t0 = xcalloc(P, sizeof *t0), *tt = xcalloc(P, sizeof *tt), *g = xcalloc(P, sizeof *g);
    double *best_th = xcalloc(P, sizeof *best_th), *trial = xcalloc(P, sizeof *trial);
    double x[512], o[512], s0[512], dx[512], d[256], u[256], v[256], nu[256], nv[256], gu[256], gv[256], r;
    double best = 0;
    memcpy(t0, th, P * sizeof *th);
    memcpy(best_th, th, P * sizeof *th);
    for (int st = 0; st < starts; st++) {
        memcpy(tt, t0, P * sizeof *t0);
        for (size_t i = 0; i < n; i++) {
            u[i] = 0.5 * nrand();
            v[i] = u[i] + 0.05 * nrand();
        }
        pairs_eval(c, MAP_FLOW, tt, 1, u, v, x, o, s0, &r);
        double su = 0.1, sth = 0.05 * norm(tt, P) + 1e-3;
        for (int it = 0; it < iters && su + sth > 1e-12; it++) {
            pairs_eval(c, MAP_FLOW, tt, 1, u, v, x, o, s0, &r);
            double dn = dist(o, o + k, k), dd = dist(u, v, n);
            if (!(dn > 0) || !(dd > 0))
                break;
            for (size_t i = 0; i < k; i++)
                d[i] = (o[i] - o[k + i]) / dn;
            pairs_vjp(c, MAP_FLOW, tt, 1, x, d, dx, g);
            for (size_t q = 0; q < np_; q++)
                if (!strcmp(pt[q].name, "W") || !strcmp(pt[q].name, "w"))
                    memset(g + pt[q].offset, 0, pt[q].size * sizeof *g);
            for (size_t i = 0; i < n; i++) {
                gu[i] = dx[i] / dn - (u[i] - v[i]) / (dd * dd);
                gv[i] = dx[n + i] / dn + (u[i] - v[i]) / (dd * dd);
            }
            double ng = sqrt(norm(gu, n) * norm(gu, n) + norm(gv, n) * norm(gv, n)), nth = norm(g, P);
            int moved = 0;
            for (int tries = 0; tries < 6 && !moved; tries++) {
                for (size_t i = 0; i < n; i++) {
                    nu[i] = u[i] + (ng > 0 ? su * dd * gu[i] / ng : 0);
                    nv[i] = v[i] + (ng > 0 ? su * dd * gv[i] / ng : 0);
                }
                for (size_t i = 0; i < P; i++)
                    trial[i] = tt[i] + (nth > 0 ? sth * g[i] / nth : 0);
                c->m->project(trial);
                double rr;
                if (dist(nu, nv, n) >= 1e-4) {
                    pairs_eval(c, MAP_FLOW, trial, 1, nu, nv, x, o, s0, &rr);
                    if (rr > r) {
                        memcpy(u, nu, n * sizeof *u);
                        memcpy(v, nv, n * sizeof *v);
                        memcpy(tt, trial, P * sizeof *tt);
                        r = rr;
                        su = fmin(su * 1.5, 0.5);
                        sth *= 1.5;
                        moved = 1;
                    }
                }
                if (!moved) {
                    su *= 0.5;
                    sth *= 0.5;
                }
            }
        }
        if (r > best) {
            best = r;
            memcpy(best_th, tt, P * sizeof *tt);
        }
    }
    memcpy(th, best_th, P * sizeof *th);
    free(t0);
    free(tt);
    free(g);
    free(best_th);
    free(trial);
    return best;
}

/* Random pairs, then ascent from the best ones; returns the best ratio, its pair in (wu, wv). */
static double attack_map(Ctx *c, Map mp, const double *th, int nchunks, int iters, double *wu, double *wv)
{
    size_t n = c->NI, k = map_dim(c, mp);
    Pairs top, cand;
    pairs_alloc(&top, TOPK, n);
    pairs_alloc(&cand, CHUNK, n);
    for (size_t j = 0; j < TOPK; j++)
        top.ratio[j] = -1;
    double *x = xcalloc(2 * CHUNK * n, sizeof *x), *o = xcalloc(2 * CHUNK * k, sizeof *o);
    double *s0 = xcalloc(2 * CHUNK * c->NS, sizeof *s0), *dir = xcalloc(n, sizeof *dir);
    static const double scales[] = {0.1, 0.5, 1, 3, 10};
    for (int ch = 0; ch < nchunks; ch++) {
        for (size_t j = 0; j < CHUNK; j++) {
            double sc = scales[(size_t)(urand() * 5)], r = pow(10, -4 + 5 * urand());
            for (size_t i = 0; i < n; i++)
                dir[i] = nrand();
            double dn = norm(dir, n);
            for (size_t i = 0; i < n; i++) {
                double mi = sc * nrand();
                cand.u[j * n + i] = mi + 0.5 * r * dir[i] / dn;
                cand.v[j * n + i] = mi - 0.5 * r * dir[i] / dn;
            }
        }
        pairs_eval(c, mp, th, CHUNK, cand.u, cand.v, x, o, s0, cand.ratio);
        for (size_t j = 0; j < CHUNK; j++) { /* keep the TOPK best: replace the weakest */
            size_t w = 0;
            for (size_t t = 1; t < TOPK; t++)
                if (top.ratio[t] < top.ratio[w])
                    w = t;
            if (cand.ratio[j] > top.ratio[w]) {
                top.ratio[w] = cand.ratio[j];
                memcpy(top.u + w * n, cand.u + j * n, n * sizeof *x);
                memcpy(top.v + w * n, cand.v + j * n, n * sizeof *x);
            }
        }
    }
    if (mp == MAP_LOGITS || c->flow_grad) {
        /* the flow's vjp costs a call per NO pairs when NO < NS: ascend from the best 8 */
        if (mp == MAP_FLOW && c->NO < c->NS) {
            for (size_t a = 0; a < 8; a++)
                for (size_t t = a + 1; t < TOPK; t++)
                    if (top.ratio[t] > top.ratio[a]) {
                        double r = top.ratio[a];
                        top.ratio[a] = top.ratio[t];
                        top.ratio[t] = r;
                        for (size_t i = 0; i < n; i++) {
                            double tu = top.u[a * n + i], tv = top.v[a * n + i];
                            top.u[a * n + i] = top.u[t * n + i];
                            top.v[a * n + i] = top.v[t * n + i];
                            top.u[t * n + i] = tu;
                            top.v[t * n + i] = tv;
                        }
                    }
            top.np = 8;
        }
        ascend(c, mp, th, &top, iters);
        top.np = TOPK;
    }
    size_t b = 0;
    for (size_t t = 1; t < TOPK; t++)
        if (top.ratio[t] > top.ratio[b])
            b = t;
    double best = top.ratio[b];
    memcpy(wu, top.u + b * n, n * sizeof *wu);
    memcpy(wv, top.v + b * n, n * sizeof *wv);
    pairs_free(&top);
    pairs_free(&cand);
    free(x);
    free(o);
    free(s0);
    free(dir);
    return best;
}

/* ---- admissible parameters -------------------------------------------------------- */

/* Is P a matrix we can read as layers x rows x cols (R[m, n]; not skew or orth)? */
static int plain_matrix(const spdl_param *p)
{
    return p->rank == 2 && p->size == p->layers * p->shape[0] * p->shape[1];
}

/* Largest singular value, by power iteration on A'A: a lower estimate. */
static double sigma_max(const double *A, size_t r, size_t cc)
{
    double v[256], w[256];
    double s = 0;
    for (size_t j = 0; j < cc; j++)
        v[j] = 1 + 0.1 * (double)j;
    for (int it = 0; it < 3000; it++) {
        for (size_t i = 0; i < r; i++) {
            w[i] = 0;
            for (size_t j = 0; j < cc; j++)
                w[i] += A[i * cc + j] * v[j];
        }
        double nw = norm(w, r);
        for (size_t j = 0; j < cc; j++) {
            v[j] = 0;
            for (size_t i = 0; i < r; i++)
                v[j] += A[i * cc + j] * w[i];
        }
        double nv = norm(v, cc);
        if (!(nv > 0))
            return nw;
        for (size_t j = 0; j < cc; j++)
            v[j] /= nv;
        double s2 = sqrt(nv);
        if (fabs(s2 - s) <= 1e-15 * s2 && it > 50)
            return s2 > nw ? s2 : nw;
        s = s2;
    }
    return s;
}

/* Orthonormal columns (or rows) by Gram-Schmidt on a Gaussian matrix: all
 * min(r, c) singular values are 1. */
static void orthonormal(double *A, size_t r, size_t cc)
{
    int byrow = r <= cc; /* orthonormalise the shorter side */
    size_t nv = byrow ? r : cc, len = byrow ? cc : r;
    for (size_t i = 0; i < r * cc; i++)
        A[i] = nrand();
    for (size_t a = 0; a < nv; a++) {
        for (int pass = 0; pass < 2; pass++)
            for (size_t b = 0; b < a; b++) {
                double d = 0;
                for (size_t t = 0; t < len; t++)
                    d += (byrow ? A[a * cc + t] * A[b * cc + t] : A[t * cc + a] * A[t * cc + b]);
                for (size_t t = 0; t < len; t++) {
                    if (byrow)
                        A[a * cc + t] -= d * A[b * cc + t];
                    else
                        A[t * cc + a] -= d * A[t * cc + b];
                }
            }
        double s = 0;
        for (size_t t = 0; t < len; t++)
            s += byrow ? A[a * cc + t] * A[a * cc + t] : A[t * cc + a] * A[t * cc + a];
        s = sqrt(s);
        for (size_t t = 0; t < len; t++) {
            if (byrow)
                A[a * cc + t] /= s;
            else
                A[t * cc + a] /= s;
        }
    }
}

static const char *const theta_kind[NTH] = {
    "init", "gauss", "equal-sv", "rank-one", "gauss,b=0", "equal-sv,b=0",
};

/* Fills theta with variant k; returns 0 if the variant is not meaningful. */
static void make_theta(const Ctx *c, int k, double *th)
{
    const spdl_model *m = c->m;
    if (k == 0) {
        m->init(th, 1);
        return;
    }
    size_t np;
    const spdl_param *pt = m->params(&np);
    for (size_t q = 0; q < np; q++) {
        const spdl_param *p = &pt[q];
        double *P = th + p->offset;
        int bounded = m->norm_bound && !isnan(m->norm_bound[q]);
        if (!strcmp(p->name, "dt") && p->rank == 0) { /* learned steps: random, then the simplex */
            for (size_t i = 0; i < p->size; i++)
                P[i] = urand();
            continue;
        }
        if (!bounded) { /* biases and other free parameters */
            double s = (k == 4 || k == 5) && p->rank <= 1 ? 0 : urand() < 0.5 ? 1 : 3;
            for (size_t i = 0; i < p->size; i++)
                P[i] = s * nrand();
            continue;
        }
        double c0 = m->norm_bound[q];
        if (plain_matrix(p) && (k == 2 || k == 5 || k == 3)) {
            size_t r = p->shape[0], cc = p->shape[1];
            for (size_t l = 0; l < p->layers; l++) {
                double *A = P + l * r * cc;
                if (k == 3) { /* rank one: a u v' */
                    double u[256], v[256];
                    for (size_t i = 0; i < r; i++)
                        u[i] = nrand();
                    for (size_t j = 0; j < cc; j++)
                        v[j] = nrand();
                    for (size_t i = 0; i < r; i++)
                        for (size_t j = 0; j < cc; j++)
                            A[i * cc + j] = u[i] * v[j];
                } else {
                    orthonormal(A, r, cc);
                }
                for (size_t i = 0; i < r * cc; i++)
                    A[i] *= 50 * c0;
            }
            continue;
        }
        for (size_t i = 0; i < p->size; i++) /* Gaussian, far beyond the bound */
            P[i] = 50 * c0 * nrand();
    }
    m->project(th);
}

/* Every declared bound holds for th (a lower estimate above the bound is a
 * definite violation). Returns the largest |P| / c over the parameters. */
static double check_bounds(const Ctx *c, const double *th, int k)
{
    size_t np;
    const spdl_param *pt = c->m->params(&np);
    double worst = 0;
    for (size_t q = 0; q < np; q++) {
        const spdl_param *p = &pt[q];
        if (!c->m->norm_bound || isnan(c->m->norm_bound[q]) || !plain_matrix(p))
            continue;
        size_t r = p->shape[0], cc = p->shape[1];
        for (size_t l = 0; l < p->layers; l++) {
            double s = sigma_max(th + p->offset + l * r * cc, r, cc);
            double rel = s / c->m->norm_bound[q];
            if (rel > worst)
                worst = rel;
            if (rel > 1 + REL_TOL) {
                printf("FAIL %s: parameters '%s': |%s[%zu]| = %.17g > %.17g (declared bound)\n", c->m->name, theta_kind[k],
                       p->name, l, s, c->m->norm_bound[q]);
                exit(1);
            }
        }
    }
    return worst;
}

/* The flow's vjp needs the read-out W * s + w with W : R[NO, NS]; checked on a
 * random input. Also the initial state must be an isometric copy of x for
 * the ascent's denominator. */
static int flow_grad_usable(Ctx *c, const double *th)
{
    size_t np;
    const spdl_param *pt = c->m->params(&np);
    c->W = NULL;
    for (size_t q = 0; q < np; q++)
        if (!strcmp(pt[q].name, "W") && plain_matrix(&pt[q]) && pt[q].layers == 1 && pt[q].shape[0] == c->NO &&
            pt[q].shape[1] == c->NS)
            c->W = &pt[q];
    if (!c->W)
        return 0;
    double x[2 * 256], o[2 * 256], s0[2 * 256], y1[2 * 256], y0[2 * 256], d[256];
    for (size_t i = 0; i < 2 * c->NI; i++)
        x[i] = nrand();
    eval(c, MAP_FLOW, th, 2, x, o, s0);
    if (fabs(dist(s0, s0 + c->NS, c->NS) - dist(x, x + c->NI, c->NI)) > 1e-12 * dist(x, x + c->NI, c->NI))
        return 0;
    for (size_t i = 0; i < c->NS; i++)
        d[i] = nrand();
    memcpy(c->thw, th, c->P * sizeof *th);
    memset(c->thw + c->W->offset, 0, c->W->size * sizeof *th);
    if (c->m->forward(c->thw, 2, x, y0, c->work))
        return 0;
    memcpy(c->thw + c->W->offset, d, c->NS * sizeof *d);
    if (c->m->forward(c->thw, 2, x, y1, c->work))
        return 0;
    for (size_t b = 0; b < 2; b++) {
        double want = 0, sc = 0;
        for (size_t i = 0; i < c->NS; i++) {
            want += d[i] * o[b * c->NS + i];
            sc += fabs(d[i] * o[b * c->NS + i]);
        }
        if (fabs(y1[b * c->NO] - y0[b * c->NO] - want) > 1e-12 * (sc + 1))
            return 0;
    }
    return 1;
}

static void print_vec(const char *name, const double *v, size_t n)
{
    printf("  %s = [", name);
    for (size_t i = 0; i < n; i++)
        printf("%s%.17g", i ? ", " : "", v[i]);
    printf("]\n");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: attack L FLOW [EFFORT] [SEED]\n");
        return 2;
    }
    double L = strtod(argv[1], NULL), effort = argc > 3 ? strtod(argv[3], NULL) : 1;
    int flow = atoi(argv[2]);
    rng_state = argc > 4 ? strtoull(argv[4], NULL, 10) : 20261127;
    Ctx c = {0};
    c.m = MODEL_FN();
    c.P = c.m->nparam;
    c.NI = c.m->nin;
    c.NO = c.m->nout;
    c.NS = c.m->nstate;
    c.rows = c.m->traj_rows;
    if (c.NI > 256 || c.NO > 256 || c.NS > 256) {
        printf("FAIL harness: sizes beyond 256\n");
        return 2;
    }
    if (!(fabs(c.m->lipschitz - L) <= 1e-12 * L)) {
        printf("FAIL %s: the descriptor's lipschitz %.17g differs from the certificate's %.17g\n", c.m->name,
               c.m->lipschitz, L);
        return 1;
    }
    c.work = malloc(c.m->work_size(2 * CHUNK));
    c.traj = xcalloc(2 * CHUNK * c.rows * c.NS, sizeof *c.traj);
    c.thw = xcalloc(c.P, sizeof *c.thw);
    c.dy = xcalloc(2 * CHUNK * c.NO, sizeof *c.dy);
    double *th = xcalloc(c.P, sizeof *th), *wu = xcalloc(c.NI, sizeof *wu), *wv = xcalloc(c.NI, sizeof *wv);
    if (!c.work) {
        printf("FAIL harness: out of memory\n");
        return 2;
    }
    int nchunks = (int)(32 * effort) + 1, iters = (int)(40 * effort) + 3;
    double best = 0, bestflow = 0;
    int fail = 0;
    printf("%s: certified L = %.9g%s\n", c.m->name, L, flow == 1 ? ", flow non-expansive" : flow == 2 ? ", flow searched" : "");
    for (int k = 0; k < NTH; k++) {
        make_theta(&c, k, th);
        double sat = check_bounds(&c, th, k);
        double r = attack_map(&c, MAP_LOGITS, th, nchunks, iters, wu, wv);
        printf("  %-13s max |P|/c %.6f  ratio %.9g  (ratio/L %.3g, |u - v| = %.3g)", theta_kind[k], sat, r, r / L,
               dist(wu, wv, c.NI));
        if (r > best)
            best = r;
        if (r > L * (1 + REL_TOL)) {
            printf("\nFAIL %s: parameters '%s': |Phi(u) - Phi(v)| / |u - v| = %.17g > L = %.17g\n", c.m->name,
                   theta_kind[k], r, L);
            print_vec("u", wu, c.NI);
            print_vec("v", wv, c.NI);
            fail = 1;
        }
        if (flow) {
            c.flow_grad = flow_grad_usable(&c, th);
            double rf = attack_map(&c, MAP_FLOW, th, nchunks, iters, wu, wv);
            if (flow == 2 && c.flow_grad) {
                double rj = search_joint(&c, th, (int)(8 * effort) + 1, (int)(60 * effort) + 5);
                if (rj > rf)
                    rf = rj;
                check_bounds(&c, th, k); /* the search's parameters were admissible */
            }
            printf("  flow %.12g%s", rf, c.flow_grad ? "" : " (random pairs only)");
            if (rf > bestflow)
                bestflow = rf;
            if (flow == 1 && rf > 1 + REL_TOL) {
                printf("\nFAIL %s: parameters '%s': the flow expands: ratio %.17g > 1\n", c.m->name, theta_kind[k], rf);
                print_vec("u", wu, c.NI);
                print_vec("v", wv, c.NI);
                fail = 1;
            }
        }
        printf("\n");
    }
    printf("RESULT %.17g %.17g %d\n", best, flow ? bestflow : NAN, NTH);
    free(th);
    free(wu);
    free(wv);
    free(c.work);
    free(c.traj);
    free(c.thw);
    free(c.dy);
    return fail;
}
