/* test_tiles.c - batches split into tiles across threads (tiles.c, pool.c):
 * the loss and the gradient are the same bits for 1 to 6 threads and equal
 * the tile-ordered sums computed here serially; tiles that finish out of
 * order (some sleep) are still summed in order; a tile whose loss is not
 * finite stops the step with NaN, the next step is whole again; forward
 * passes split at tile boundaries and report the failing part's first
 * sample; bad arguments are refused.
 *
 * The model is made by hand: tiles of 4 samples, 50 parameters, a loss and
 * an adjoint whose terms have very different magnitudes, so that summing
 * them in another order would change the bits. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tiles.h"

enum { P = 50, TILE = 4, BATCH = 203 };

typedef struct {
    double theta[P];
    int prepared;
} work_t;

static size_t work_size(size_t batch)
{
    (void)batch;
    return sizeof(work_t);
}

static int prepare(const double *theta, void *work)
{
    work_t *w = work;
    memcpy(w->theta, theta, sizeof w->theta);
    w->prepared = 1;
    return SPDL_OK;
}

/* sample s's loss: theta[0] x^2 (1 + t) scaled by 10^(s mod 9); a NaN input
 * gives a NaN loss. Samples whose x is above 0.9 sleep a little first, so
 * that tiles finish out of order. */
static double term(const double *th, double x, double t, size_t i)
{
    return th[i] * x * x * (1 + t) * pow(10.0, (double)((size_t)(x * 1000) % 9)) * (1 + 1e-3 * (double)i);
}

static double tile_loss(void *work, size_t batch, size_t nb, const double *x, const double *target, double *y,
                        double *adj)
{
    work_t *w = work;
    if (!w || !w->prepared || nb == 0 || nb > TILE || batch < nb)
        return NAN;
    double total = 0, own[P] = {0}; /* the tile's adjoint, added to adj once, as the generated code does */
    for (size_t l = 0; l < nb; l++) {
        if (isnan(x[l]))
            return NAN;
        if (x[l] > 0.9) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        total += term(w->theta, x[l], target[l], 0);
        if (y)
            y[l] = 2 * x[l];
        for (size_t i = 0; adj && i < P; i++)
            own[i] += term(w->theta, x[l], target[l], i) / w->theta[i] / (double)batch;
    }
    for (size_t i = 0; adj && i < P; i++)
        adj[i] += own[i];
    return total;
}

static double tile_finish(void *work, const double *adj, double *grad)
{
    work_t *w = work;
    for (size_t i = 0; adj && i < P; i++)
        grad[i] = adj[i] + w->theta[i];
    return 0.5 * w->theta[0] * w->theta[0];
}

static int forward(const double *theta, size_t batch, const double *x, double *y, void *work)
{
    (void)theta, (void)work;
    for (size_t s = 0; s < batch; s++) {
        if (isnan(x[s]))
            return SPDL_ENONFINITE;
        y[s] = 2 * x[s];
    }
    return SPDL_OK;
}

static const spdl_model fake = {.name = "fake", .nin = 1, .nout = 1, .nparam = P, .ntarget = 1,
                                .work_size = work_size, .forward = forward, .tile = TILE, .nadj = P,
                                .tile_prepare = prepare, .tile_loss = tile_loss, .tile_finish = tile_finish};

static double theta[P], x[BATCH], t[BATCH];

static void setup(void)
{
    for (int i = 0; i < P; i++)
        theta[i] = 0.5 + 0.01 * i;
    for (int s = 0; s < BATCH; s++) {
        x[s] = fmod(0.618033988749895 * (s + 1), 1.0);
        t[s] = s % 3;
    }
}

TestSuite(tiles, .init = setup);

/* the tile-ordered sums, serially, as tiles.h defines them */
static double reference(size_t batch, double *grad)
{
    work_t w;
    prepare(theta, &w);
    double acc[P] = {0}, total = 0;
    for (size_t s0 = 0; s0 < batch; s0 += TILE) {
        size_t nb = batch - s0 < TILE ? batch - s0 : TILE;
        double part[P] = {0};
        total += tile_loss(&w, batch, nb, x + s0, t + s0, NULL, part);
        for (int i = 0; i < P; i++)
            acc[i] += part[i];
    }
    return total / (double)batch + tile_finish(&w, acc, grad);
}

Test(tiles, same_bits_for_any_thread_count)
{
    double gref[P], g[P];
    for (size_t batch = 1; batch <= BATCH; batch += 101) {
        double lref = reference(batch, gref);
        for (int n = 1; n <= 6; n++) {
            spdl_tiles *tl;
            cr_assert_eq(spdl_tiles_new(&fake, n, BATCH, &tl), SPDL_OK);
            for (int rep = 0; rep < 3; rep++) {
                memset(g, 0, sizeof g);
                double l = spdl_tiles_loss_grad(tl, theta, batch, x, t, g);
                cr_assert(l == lref, "batch %zu, %d threads: loss %.17g, expected %.17g", batch, n, l, lref);
                cr_assert(memcmp(g, gref, sizeof g) == 0, "batch %zu, %d threads: the gradient differs", batch, n);
            }
            cr_assert(spdl_tiles_loss_grad(tl, theta, batch, x, t, NULL) == lref, "loss without gradient");
            spdl_tiles_free(tl);
        }
    }
}

Test(tiles, threads_capped_by_tiles)
{
    spdl_tiles *tl;
    cr_assert_eq(spdl_tiles_new(&fake, 64, 9, &tl), SPDL_OK);
    cr_assert_eq(spdl_tiles_threads(tl), 3, "9 samples are 3 tiles: %d threads", spdl_tiles_threads(tl));
    cr_assert_eq(spdl_tiles_tile(tl), TILE);
    spdl_tiles_free(tl);
}

Test(tiles, a_bad_tile_stops_the_step)
{
    double g[P], gref[P];
    double lref = reference(BATCH, gref);
    for (int n = 1; n <= 3; n++) {
        spdl_tiles *tl;
        cr_assert_eq(spdl_tiles_new(&fake, n, BATCH, &tl), SPDL_OK);
        double keep = x[150];
        x[150] = NAN;
        cr_assert(isnan(spdl_tiles_loss_grad(tl, theta, BATCH, x, t, g)), "%d threads: a NaN tile gave a loss", n);
        double sum = 0;
        cr_assert_eq(spdl_tiles_losses(tl, theta, BATCH, x, t, NULL, &sum, NULL), SPDL_ENONFINITE);
        x[150] = keep;
        cr_assert(spdl_tiles_loss_grad(tl, theta, BATCH, x, t, g) == lref, "%d threads: the step after", n);
        cr_assert(memcmp(g, gref, sizeof g) == 0);
        spdl_tiles_free(tl);
    }
}

Test(tiles, losses_and_outputs)
{
    double y[BATCH];
    work_t w;
    prepare(theta, &w);
    double ref = 0;
    for (size_t s0 = 0; s0 < BATCH; s0 += TILE)
        ref += tile_loss(&w, TILE, BATCH - s0 < TILE ? BATCH - s0 : TILE, x + s0, t + s0, NULL, NULL);
    for (int n = 1; n <= 4; n++) {
        spdl_tiles *tl;
        cr_assert_eq(spdl_tiles_new(&fake, n, BATCH, &tl), SPDL_OK);
        double sum = 1, lp = 0;
        memset(y, 0, sizeof y);
        cr_assert_eq(spdl_tiles_losses(tl, theta, BATCH, x, t, y, &sum, &lp), SPDL_OK);
        cr_assert(sum == 1 + ref, "%d threads: sum %.17g, expected %.17g", n, sum, 1 + ref);
        cr_assert(lp == 0.5 * theta[0] * theta[0]);
        for (int s = 0; s < BATCH; s++)
            cr_assert(y[s] == 2 * x[s]);
        spdl_tiles_free(tl);
    }
}

Test(tiles, forward_splits_and_reports)
{
    enum { N = 1000 };
    static double xs[N], ys[N];
    for (int s = 0; s < N; s++)
        xs[s] = s;
    for (int n = 1; n <= 4; n++) {
        spdl_tiles *tl;
        cr_assert_eq(spdl_tiles_new(&fake, n, N, &tl), SPDL_OK);
        size_t bad = 7;
        cr_assert_eq(spdl_tiles_forward(tl, theta, N, xs, ys, &bad), SPDL_OK);
        for (int s = 0; s < N; s++)
            cr_assert(ys[s] == 2.0 * s);
        xs[517] = NAN;
        cr_assert_eq(spdl_tiles_forward(tl, theta, N, xs, ys, &bad), SPDL_ENONFINITE);
        cr_assert(bad <= 517 && 517 - bad < 16 * TILE && bad % TILE == 0, "%d threads: bad part at %zu", n, bad);
        xs[517] = 517;
        spdl_tiles_free(tl);
    }
}

Test(tiles, bad_arguments)
{
    spdl_tiles *tl;
    double g[P], sum = 0, y[BATCH];
    cr_assert_eq(spdl_tiles_new(&fake, 2, 100, &tl), SPDL_OK);
    cr_assert(isnan(spdl_tiles_loss_grad(tl, theta, 0, x, t, g)), "batch 0");
    cr_assert(isnan(spdl_tiles_loss_grad(tl, theta, 101, x, t, g)), "a batch above the largest");
    cr_assert(isnan(spdl_tiles_loss_grad(tl, NULL, 10, x, t, g)), "NULL theta");
    cr_assert(isnan(spdl_tiles_loss_grad(tl, theta, 10, x, NULL, g)), "NULL target");
    cr_assert_eq(spdl_tiles_losses(tl, theta, 101, x, t, NULL, &sum, NULL), SPDL_EINVAL);
    cr_assert_eq(spdl_tiles_forward(tl, theta, 0, x, y, NULL), SPDL_EINVAL);
    spdl_tiles_free(tl);
    spdl_model bare = fake;
    bare.tile_loss = NULL;
    cr_assert_eq(spdl_tiles_new(&bare, 2, 100, &tl), SPDL_ENOTSUP);
    cr_assert_null(tl);
}
