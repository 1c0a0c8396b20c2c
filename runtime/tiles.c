/* tiles.c - see tiles.h.
 *
 * A job is a list of units (tiles, or for forward passes runs of whole
 * tiles) that the members of the pool take in increasing order under one
 * mutex. For a gradient, a member zeroes a ring slot, runs its tile into it
 * and marks it done; whoever marks a tile done while nobody is folding
 * folds every done tile from the cursor on into the sum, in tile order, and
 * frees their slots. A member whose next tile's slot is still in use waits.
 * The sum therefore sees the adjoints in tile order whoever computed them.
 * Run on one thread, the tiles add straight into the sum (the generated
 * code's `adj[i] += ...`): the same bits, since the sum starts at +0 and so
 * never is -0, where adding +0 and adding -0 would differ.
 *
 * The first failing unit (lowest index) is the one reported: units are
 * handed out in order, so every unit below a failing one was handed out
 * before it and runs to the end; those above it that were not yet handed
 * out are skipped.
 *
 * Under MPI (spdl_tiles_set_ranks; ranks.h has the scheme) a job runs the
 * units [first, last) of this rank. A gradient on a rank after the first
 * is "deferred": its tiles go each into a buffer of its own (dslots), like
 * the ring's slots but never folded by the members; once the sum of the
 * earlier ranks' tiles arrives, the caller's thread folds them onto it in
 * tile order with the same fold(). So every addition into the sum is the
 * one a single process makes, in the same order. Should a rank's tiles not
 * fit in the deferred buffers (SLOTS_BYTES), the rest run afterwards as an
 * ordinary job on top of the received sum. */
#include "tiles.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "ranks.h"

enum {
    FWD_TILES_MAX = 16,               /* tiles per M_forward call */
};
static const size_t SLOTS_BYTES = (size_t)256 << 20; /* the ring's size at most (but one slot per thread) */

typedef enum { J_GRAD, J_LOSSES, J_FORWARD } job_kind;

struct spdl_tiles {
    const spdl_model *m;
    spdl_pool *pool;              /* NULL with one thread */
    int n;                        /* members */
    size_t tile, max_batch, max_tiles, nadj;
    void **work;                  /* per member */
    unsigned char *prepared;      /* per member: M_tile_prepare done for this job */
    double *acc;                  /* nadj: the tiles' adjoints summed in tile order */
    double *slots;                /* the ring: nslots x nadj */
    size_t nslots;
    double *tsum;                 /* per tile: the sum of its losses */
    unsigned char *done;          /* per tile: computed into its slot, not yet folded */
    pthread_mutex_t mu;
    pthread_cond_t freed;         /* a slot was freed, or the job stopped */
    /* the job */
    job_kind kind;
    int parallel;                 /* on the pool (else inline on the caller) */
    const double *theta, *x, *target;
    double *y;
    int want_adj;
    size_t batch;                 /* samples in the job */
    size_t unit, nunits;          /* samples per unit; units */
    size_t next, cursor;          /* the next unit to hand out; the next tile to fold */
    int folding, stop, failed;
    size_t bad;                   /* the lowest failing unit */
    int bad_rc;
    /* under MPI (NULL ranks: one process) */
    spdl_ranks *ranks;            /* more than one rank */
    double *chain;                /* nadj + max_tiles + 1: the sum down the chain, every tile's loss sum, a status */
    double *dslots;               /* deferred tiles' adjoints (ranks after the first) */
    size_t ndslots;
    size_t *count, *offset;       /* per rank, for spdl_ranks_allgather */
    long long *fails;             /* per rank: its lowest failing unit or sample, and its code */
    size_t first, last;           /* the units of the job on this rank */
    int defer;
};

static double *slot_of(spdl_tiles *t, size_t k) { return t->slots + (k % t->nslots) * t->nadj; }

static void fold(double *restrict acc, const double *restrict s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += s[i];
}

/* under the mutex */
static void fail_locked(spdl_tiles *t, size_t k, int rc)
{
    if (!t->failed || k < t->bad) {
        t->bad = k;
        t->bad_rc = rc;
    }
    t->failed = 1;
    t->stop = 1;
    pthread_cond_broadcast(&t->freed);
}

static void fail(spdl_tiles *t, size_t k, int rc)
{
    pthread_mutex_lock(&t->mu);
    fail_locked(t, k, rc);
    pthread_mutex_unlock(&t->mu);
}

static int prepare(spdl_tiles *t, int j)
{
    if (t->prepared[j])
        return SPDL_OK;
    int rc = t->m->tile_prepare(t->theta, t->work[j]);
    t->prepared[j] = rc == SPDL_OK;
    return rc;
}

/* tile k is in its slot: fold it and every done tile after it that the
 * cursor reaches, unless another member is folding (it will reach k) */
static void tile_done(spdl_tiles *t, size_t k)
{
    pthread_mutex_lock(&t->mu);
    t->done[k] = 1;
    if (!t->folding) {
        t->folding = 1;
        while (t->cursor < t->last && t->done[t->cursor]) {
            size_t c = t->cursor;
            pthread_mutex_unlock(&t->mu);
            fold(t->acc, slot_of(t, c), t->nadj);
            pthread_mutex_lock(&t->mu);
            t->done[c] = 0;
            t->cursor++;
            pthread_cond_broadcast(&t->freed);
        }
        t->folding = 0;
    }
    pthread_mutex_unlock(&t->mu);
}

static void run_unit(spdl_tiles *t, int j, size_t k)
{
    const spdl_model *m = t->m;
    size_t s0 = k * t->unit, nb = t->batch - s0 < t->unit ? t->batch - s0 : t->unit;
    const double *x = t->x + s0 * m->nin, *tg = t->target ? t->target + s0 * m->ntarget : NULL;
    if (t->kind == J_FORWARD) {
        int rc = m->forward(t->theta, nb, x, t->y + s0 * m->nout, t->work[j]);
        if (rc)
            fail(t, k, rc);
        return;
    }
    int rc = prepare(t, j);
    if (rc) {
        fail(t, k, rc);
        return;
    }
    double *adj = NULL;
    if (t->want_adj) {
        adj = t->defer ? t->dslots + (k - t->first) * t->nadj : slot_of(t, k);
        memset(adj, 0, sizeof(double) * t->nadj);
    }
    double s = m->tile_loss(t->work[j], t->kind == J_GRAD ? t->batch : nb, nb, x, tg,
                            t->y ? t->y + s0 * m->nout : NULL, adj);
    t->tsum[k] = s;
    if (!isfinite(s))
        fail(t, k, SPDL_ENONFINITE);
    if (adj && t->parallel && !t->defer)
        tile_done(t, k); /* folded even after a failure: the job's end waits for nothing else */
    else if (adj && !t->defer)
        fold(t->acc, adj, t->nadj);
}

static void job(void *ctx, int j)
{
    spdl_tiles *t = ctx;
    if (j == 0 && t->kind != J_FORWARD) { /* M_tile_finish runs on member 0's buffer */
        int rc = prepare(t, 0);
        if (rc)
            fail(t, 0, rc);
    }
    for (;;) {
        pthread_mutex_lock(&t->mu);
        if (t->stop || t->next >= t->last) {
            pthread_mutex_unlock(&t->mu);
            return;
        }
        size_t k = t->next++;
        if (t->parallel && t->want_adj && !t->defer)
            while (k >= t->cursor + t->nslots && !t->stop)
                pthread_cond_wait(&t->freed, &t->mu);
        int stop = t->stop;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            return;
        run_unit(t, j, k);
    }
}

/* the units [first, last) of the job; fresh: theta is new (M_tile_prepare
   runs again) */
static void run_job(spdl_tiles *t, size_t first, size_t last, int fresh)
{
    t->first = first;
    t->last = last;
    t->next = t->cursor = first;
    t->folding = t->stop = t->failed = 0;
    if (t->kind == J_GRAD)
        memset(t->done, 0, t->nunits); /* a failed job may have left tiles unfolded */
    t->bad = 0;
    t->bad_rc = SPDL_OK;
    if (fresh)
        memset(t->prepared, 0, (size_t)t->n);
    t->parallel = t->pool && last - first > 1;
    if (t->parallel)
        spdl_pool_run(t->pool, job, t);
    else
        job(t, 0);
}

int spdl_tiles_new(const spdl_model *m, int threads, size_t max_batch, spdl_tiles **out)
{
    *out = NULL;
    if (!m->tile_prepare || !m->tile_loss || !m->tile_finish)
        return SPDL_ENOTSUP;
    spdl_tiles *t = calloc(1, sizeof *t);
    if (!t)
        return SPDL_ENOMEM;
    t->m = m;
    t->tile = m->tile ? m->tile : 64;
    t->max_batch = max_batch ? max_batch : 1;
    t->max_tiles = (t->max_batch + t->tile - 1) / t->tile;
    t->nadj = m->nadj;
    size_t n = threads < 1 ? 1 : (size_t)threads;
    if (n > t->max_tiles)
        n = t->max_tiles; /* more could not have a tile */
    t->n = (int)n;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->freed, NULL);
    size_t ws = m->work_size(t->tile), wf = m->work_size(FWD_TILES_MAX * t->tile);
    if (wf > ws)
        ws = wf;
    t->work = calloc(n, sizeof *t->work);
    t->prepared = calloc(n, 1);
    t->acc = malloc(sizeof(double) * (t->nadj ? t->nadj : 1));
    t->tsum = malloc(sizeof(double) * t->max_tiles);
    t->done = calloc(t->max_tiles, 1);
    int rc = !t->work || !t->prepared || !t->acc || !t->tsum || !t->done ? SPDL_ENOMEM : SPDL_OK;
    for (size_t j = 0; !rc && j < n; j++)
        if (!(t->work[j] = malloc(ws)))
            rc = SPDL_ENOMEM;
    if (!rc) { /* every tile's adjoint starts at zero in a slot (M_tile_loss adds in place) */
        size_t per = sizeof(double) * (t->nadj ? t->nadj : 1), k = n > 1 ? 2 * n : 1;
        if (k > t->max_tiles)
            k = t->max_tiles;
        if (k * per > SLOTS_BYTES)
            k = SLOTS_BYTES / per > n ? SLOTS_BYTES / per : n;
        t->nslots = k;
        if (!(t->slots = malloc(k * per)))
            rc = SPDL_ENOMEM;
        if (!rc && n > 1)
            rc = spdl_pool_new((int)n, &t->pool);
    }
    if (rc) {
        int err = errno;
        spdl_tiles_free(t);
        errno = err;
        return rc;
    }
    *out = t;
    return SPDL_OK;
}

void spdl_tiles_free(spdl_tiles *t)
{
    if (!t)
        return;
    spdl_pool_free(t->pool);
    for (int j = 0; t->work && j < t->n; j++)
        free(t->work[j]);
    free(t->work);
    free(t->prepared);
    free(t->acc);
    free(t->slots);
    free(t->tsum);
    free(t->done);
    free(t->chain);
    free(t->dslots);
    free(t->count);
    free(t->offset);
    free(t->fails);
    pthread_cond_destroy(&t->freed);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int spdl_tiles_threads(const spdl_tiles *t) { return t->n; }

size_t spdl_tiles_tile(const spdl_tiles *t) { return t->tile; }

static void set_job(spdl_tiles *t, job_kind kind, const double *theta, size_t n, const double *x, const double *target,
                    double *y, int want_adj)
{
    t->kind = kind;
    t->theta = theta;
    t->batch = n;
    t->x = x;
    t->target = t->m->ntarget ? target : NULL;
    t->y = y;
    t->want_adj = want_adj && t->nadj > 0;
    t->unit = t->tile;
    t->nunits = (n + t->tile - 1) / t->tile;
}

int spdl_tiles_set_ranks(spdl_tiles *t, spdl_ranks *r)
{
    int P = spdl_ranks_size(r);
    if (P < 2) {
        t->ranks = NULL;
        return SPDL_OK;
    }
    size_t per = sizeof(double) * (t->nadj ? t->nadj : 1), mine = (t->max_tiles + (size_t)P - 1) / (size_t)P;
    t->chain = malloc(sizeof(double) * (t->nadj + t->max_tiles + 1));
    t->count = malloc(sizeof(size_t) * (size_t)P);
    t->offset = malloc(sizeof(size_t) * (size_t)P);
    t->fails = malloc(sizeof(long long) * 2 * (size_t)P);
    if (spdl_ranks_rank(r) > 0 && t->nadj) {
        t->ndslots = mine * per <= SLOTS_BYTES ? mine : SLOTS_BYTES / per;
        if (t->ndslots < 1)
            t->ndslots = 1;
        t->dslots = malloc(t->ndslots * per);
    }
    if (!t->chain || !t->count || !t->offset || !t->fails || (t->ndslots && !t->dslots))
        return SPDL_ENOMEM;
    t->ranks = r;
    return SPDL_OK;
}

/* Every rank's failure after a job split over the ranks: the lowest
   failing position (unit or sample) and its code into *failed, *bad, *rc
   on every rank. */
static void agree_failure(spdl_tiles *t, int *failed, size_t *bad, int *rc)
{
    int P = spdl_ranks_size(t->ranks);
    long long mine[2] = {*failed ? (long long)*bad : LLONG_MAX, *rc};
    spdl_ranks_gather_all(t->ranks, mine, sizeof mine, t->fails);
    long long low = LLONG_MAX;
    *rc = SPDL_OK;
    for (int k = 0; k < P; k++)
        if (t->fails[2 * k] < low) {
            low = t->fails[2 * k];
            *rc = (int)t->fails[2 * k + 1];
        }
    *failed = low != LLONG_MAX;
    *bad = *failed ? (size_t)low : 0;
}

/* Each rank's share of the job's n units (scale: elements a unit, capped
   at `total` elements) into t->count and t->offset, for spdl_ranks_allgather. */
static void shares(spdl_tiles *t, size_t n, size_t scale, size_t total)
{
    for (int k = 0; k < spdl_ranks_size(t->ranks); k++) {
        size_t lo, hi;
        spdl_ranks_share(t->ranks, k, n, &lo, &hi);
        lo = lo * scale < total ? lo * scale : total;
        hi = hi * scale < total ? hi * scale : total;
        t->offset[k] = lo;
        t->count[k] = hi - lo;
    }
}

/* A gradient over the ranks: this rank's tiles, the chain of sums (ranks.h),
   and the whole sum, every tile's loss sum and the status from the last
   rank. Returns nonzero when any tile failed on any rank. */
static int grad_ranks(spdl_tiles *t)
{
    spdl_ranks *r = t->ranks;
    size_t K = t->nunits, na = t->want_adj ? t->nadj : 0, len = na + K + 1, lo, hi;
    spdl_ranks_share(r, spdl_ranks_rank(r), K, &lo, &hi);
    double *ch = t->chain;
    int failed;
    if (spdl_ranks_rank(r) == 0) {
        run_job(t, lo, hi, 1);
        failed = t->failed;
    } else {
        size_t dhi = na && hi - lo > t->ndslots ? lo + t->ndslots : hi;
        t->defer = na > 0;
        run_job(t, lo, dhi, 1);
        t->defer = 0;
        failed = t->failed;
        spdl_ranks_recv_prev(r, ch, len); /* the earlier ranks' sum, their tiles' loss sums, their status */
        failed |= ch[na + K] != 0;
        if (na) {
            memcpy(t->acc, ch, sizeof(double) * na);
            for (size_t k = lo; k < dhi; k++)
                fold(t->acc, t->dslots + (k - lo) * na, na);
        }
        if (!failed && dhi < hi) {
            run_job(t, dhi, hi, 0);
            failed = t->failed;
        }
    }
    for (size_t k = lo; k < hi; k++)
        ch[na + k] = failed ? NAN : t->tsum[k];
    if (na)
        memcpy(ch, t->acc, sizeof(double) * na);
    ch[na + K] = failed;
    spdl_ranks_send_next(r, ch, len);
    spdl_ranks_bcast_last(r, ch, len);
    memcpy(t->acc, ch, sizeof(double) * na);
    memcpy(t->tsum, ch + na, sizeof(double) * K);
    return ch[na + K] != 0;
}

double spdl_tiles_loss_grad(spdl_tiles *t, const double *theta, size_t batch, const double *x, const double *target,
                            double *grad)
{
    if (!theta || !x || batch == 0 || batch > t->max_batch || (t->m->ntarget && !target))
        return NAN;
    set_job(t, J_GRAD, theta, batch, x, target, NULL, grad != NULL);
    if (t->want_adj)
        memset(t->acc, 0, sizeof(double) * t->nadj);
    if (t->ranks ? grad_ranks(t) : (run_job(t, 0, t->nunits, 1), t->failed))
        return NAN;
    double total = 0;
    for (size_t k = 0; k < t->nunits; k++)
        total += t->tsum[k];
    double lp = t->m->tile_finish(t->work[0], grad ? t->acc : NULL, grad);
    return total / (double)batch + lp;
}

void spdl_tiles_rows(const spdl_tiles *t, size_t batch, size_t *lo, size_t *hi)
{
    *lo = 0;
    *hi = batch;
    if (!t->ranks)
        return;
    size_t K = (batch + t->tile - 1) / t->tile;
    spdl_ranks_share(t->ranks, spdl_ranks_rank(t->ranks), K, lo, hi);
    *lo = *lo * t->tile < batch ? *lo * t->tile : batch;
    *hi = *hi * t->tile < batch ? *hi * t->tile : batch;
}

int spdl_tiles_losses(spdl_tiles *t, const double *theta, size_t n, const double *x, const double *target, double *y,
                      double *sum, double *param_loss)
{
    if (!theta || !x || n == 0 || n > t->max_batch || (t->m->ntarget && !target))
        return SPDL_EINVAL;
    set_job(t, J_LOSSES, theta, n, x, target, y, 0);
    if (!t->ranks) {
        run_job(t, 0, t->nunits, 1);
    } else { /* this rank's tiles, then everyone's status, loss sums and outputs */
        size_t lo, hi;
        spdl_ranks_share(t->ranks, spdl_ranks_rank(t->ranks), t->nunits, &lo, &hi);
        run_job(t, lo, hi, 1);
        agree_failure(t, &t->failed, &t->bad, &t->bad_rc);
        if (!t->failed) {
            shares(t, t->nunits, 1, t->nunits);
            spdl_ranks_allgather(t->ranks, t->tsum, t->count, t->offset);
            if (y) {
                shares(t, t->nunits, t->tile * t->m->nout, n * t->m->nout);
                spdl_ranks_allgather(t->ranks, y, t->count, t->offset);
            }
        }
    }
    if (t->failed)
        return t->bad_rc;
    for (size_t k = 0; k < t->nunits; k++)
        *sum += t->tsum[k];
    double lp = t->m->tile_finish(t->work[0], NULL, NULL);
    if (param_loss)
        *param_loss = lp;
    return isfinite(lp) ? SPDL_OK : SPDL_ENONFINITE;
}

/* y = M_forward(x) for n samples on this process's threads; the first
   failing sample in *bad */
static int forward_here(spdl_tiles *t, const double *theta, size_t n, const double *x, double *y, size_t *bad)
{
    set_job(t, J_FORWARD, theta, n, x, NULL, y, 0);
    /* runs of whole tiles, about four per thread: a sample's output does not
       depend on the run it is in, only on its lane, which the tile fixes */
    size_t tiles = t->nunits, per = (tiles + 4 * (size_t)t->n - 1) / (4 * (size_t)t->n);
    if (per > FWD_TILES_MAX)
        per = FWD_TILES_MAX;
    if (per < 1)
        per = 1;
    t->unit = per * t->tile;
    t->nunits = (n + t->unit - 1) / t->unit;
    run_job(t, 0, t->nunits, 1);
    *bad = t->failed ? t->bad * t->unit : 0;
    return t->failed ? t->bad_rc : SPDL_OK;
}

int spdl_tiles_forward(spdl_tiles *t, const double *theta, size_t n, const double *x, double *y, size_t *bad)
{
    if (!theta || !x || !y || n == 0)
        return SPDL_EINVAL;
    size_t where = 0;
    int rc;
    if (!t->ranks) {
        rc = forward_here(t, theta, n, x, y, &where);
    } else { /* this rank's run of whole tiles, then everyone's status and outputs */
        size_t K = (n + t->tile - 1) / t->tile, lo, hi;
        spdl_ranks_share(t->ranks, spdl_ranks_rank(t->ranks), K, &lo, &hi);
        lo = lo * t->tile < n ? lo * t->tile : n;
        hi = hi * t->tile < n ? hi * t->tile : n;
        rc = hi > lo ? forward_here(t, theta, hi - lo, x + lo * t->m->nin, y + lo * t->m->nout, &where) : SPDL_OK;
        where += lo;
        int failed = rc != SPDL_OK;
        agree_failure(t, &failed, &where, &rc);
        if (!failed) {
            shares(t, K, t->tile * t->m->nout, n * t->m->nout);
            spdl_ranks_allgather(t->ranks, y, t->count, t->offset);
        }
    }
    if (rc && bad)
        *bad = where;
    return rc;
}

int spdl_threads_default(char *err, size_t errlen)
{
    const char *env = getenv("SPDL_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (end == env || *end || errno || v < 1 || v > SPDL_THREADS_MAX) {
            snprintf(err, errlen, "bad value for SPDL_THREADS: '%s' (expected an integer from 1 to %d)", env,
                     SPDL_THREADS_MAX);
            return 0;
        }
        return (int)v;
    }
    int n = spdl_cpu_count();
    return n > SPDL_THREADS_MAX ? SPDL_THREADS_MAX : n;
}
