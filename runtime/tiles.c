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
 * out are skipped. */
#include "tiles.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

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
        while (t->cursor < t->nunits && t->done[t->cursor]) {
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
        adj = t->parallel ? slot_of(t, k) : t->acc;
        if (t->parallel)
            memset(adj, 0, sizeof(double) * t->nadj);
    }
    double s = m->tile_loss(t->work[j], t->kind == J_GRAD ? t->batch : nb, nb, x, tg,
                            t->y ? t->y + s0 * m->nout : NULL, adj);
    t->tsum[k] = s;
    if (!isfinite(s))
        fail(t, k, SPDL_ENONFINITE);
    if (adj && t->parallel)
        tile_done(t, k); /* folded even after a failure: the job's end waits for nothing else */
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
        if (t->stop || t->next >= t->nunits) {
            pthread_mutex_unlock(&t->mu);
            return;
        }
        size_t k = t->next++;
        if (t->parallel && t->want_adj)
            while (k >= t->cursor + t->nslots && !t->stop)
                pthread_cond_wait(&t->freed, &t->mu);
        int stop = t->stop;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            return;
        run_unit(t, j, k);
    }
}

static void run_job(spdl_tiles *t)
{
    t->next = t->cursor = 0;
    t->folding = t->stop = t->failed = 0;
    if (t->kind == J_GRAD)
        memset(t->done, 0, t->nunits); /* a failed job may have left tiles unfolded */
    t->bad = 0;
    t->bad_rc = SPDL_OK;
    memset(t->prepared, 0, (size_t)t->n);
    t->parallel = t->pool && t->nunits > 1;
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
    if (!rc && n > 1) {
        size_t per = sizeof(double) * (t->nadj ? t->nadj : 1), k = 2 * n;
        if (k > t->max_tiles)
            k = t->max_tiles;
        if (k * per > SLOTS_BYTES)
            k = SLOTS_BYTES / per > n ? SLOTS_BYTES / per : n;
        t->nslots = k;
        if (!(t->slots = malloc(k * per)))
            rc = SPDL_ENOMEM;
        if (!rc)
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

double spdl_tiles_loss_grad(spdl_tiles *t, const double *theta, size_t batch, const double *x, const double *target,
                            double *grad)
{
    if (!theta || !x || batch == 0 || batch > t->max_batch || (t->m->ntarget && !target))
        return NAN;
    set_job(t, J_GRAD, theta, batch, x, target, NULL, grad != NULL);
    if (t->want_adj)
        memset(t->acc, 0, sizeof(double) * t->nadj);
    run_job(t);
    if (t->failed)
        return NAN;
    double total = 0;
    for (size_t k = 0; k < t->nunits; k++)
        total += t->tsum[k];
    double lp = t->m->tile_finish(t->work[0], grad ? t->acc : NULL, grad);
    return total / (double)batch + lp;
}

int spdl_tiles_losses(spdl_tiles *t, const double *theta, size_t n, const double *x, const double *target, double *y,
                      double *sum, double *param_loss)
{
    if (!theta || !x || n == 0 || n > t->max_batch || (t->m->ntarget && !target))
        return SPDL_EINVAL;
    set_job(t, J_LOSSES, theta, n, x, target, y, 0);
    run_job(t);
    if (t->failed)
        return t->bad_rc;
    for (size_t k = 0; k < t->nunits; k++)
        *sum += t->tsum[k];
    double lp = t->m->tile_finish(t->work[0], NULL, NULL);
    if (param_loss)
        *param_loss = lp;
    return isfinite(lp) ? SPDL_OK : SPDL_ENONFINITE;
}

int spdl_tiles_forward(spdl_tiles *t, const double *theta, size_t n, const double *x, double *y, size_t *bad)
{
    if (!theta || !x || !y || n == 0)
        return SPDL_EINVAL;
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
    run_job(t);
    if (t->failed && bad)
        *bad = t->bad * t->unit;
    return t->failed ? t->bad_rc : SPDL_OK;
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
