/* tiles.h - a model's batches split into tiles across threads (DESIGN §9).
 *
 * A batch of B samples is cut into tiles of the generated code's SPDL_BT
 * samples (the model descriptor's `tile`): samples 0..63, 64..127, ... The
 * parameter code runs once per batch on each thread's work buffer
 * (M_tile_prepare); each tile is one M_tile_loss call on whichever thread
 * takes it, giving the sum of its samples' losses and its own parameter
 * adjoint; the tiles' results are summed in tile order (the adjoints as they
 * complete, through a ring of buffers), and M_tile_finish turns the sum into
 * the gradient. Which thread ran which tile never enters the arithmetic, so
 * losses and gradients, hence weights and checkpoints, are bit-identical for
 * any thread count; one thread runs the same sums. Forward passes (predict,
 * certify) split at tile boundaries too; their outputs do not depend on the
 * split at all.
 *
 * All memory is allocated by spdl_tiles_new: a step allocates nothing. The
 * threads are a spdl_pool, started once. Not safe to call from two threads
 * at once (one spdl_tiles per caller). */
#ifndef SPDL_TILES_H
#define SPDL_TILES_H

#include <stddef.h>

#include "ranks.h"
#include "spdl.h"

enum { SPDL_THREADS_MAX = 1024 };

typedef struct spdl_tiles spdl_tiles;

/* For batches of up to max_batch samples, on at most `threads` threads (no
 * more than the tiles of such a batch can use). Returns SPDL_OK,
 * SPDL_ENOMEM, SPDL_ENOTSUP (a descriptor without M_tile_*: made by hand, or
 * by an older spdlc) or SPDL_EINVAL (a thread could not be started). */
int spdl_tiles_new(const spdl_model *m, int threads, size_t max_batch, spdl_tiles **out);
void spdl_tiles_free(spdl_tiles *t);
int spdl_tiles_threads(const spdl_tiles *t);
size_t spdl_tiles_tile(const spdl_tiles *t);

/* The mean loss of a batch (batch <= max_batch) and, with grad, its gradient
 * (DESIGN §3: the mean over the batch of the per-sample terms plus the
 * parameter-only terms once). NaN when a tile's loss is not finite or the
 * arguments are bad; the other tiles are then skipped. */
double spdl_tiles_loss_grad(spdl_tiles *t, const double *theta, size_t batch, const double *x, const double *target,
                            double *grad);

/* Per-sample losses of n <= max_batch samples: *sum += each tile's sum, in
 * tile order; y (n x nout, may be NULL) receives the outputs; *param_loss (may
 * be NULL) the parameter-only terms. SPDL_OK, or SPDL_ENONFINITE when a
 * tile's loss is not finite (or NaN: bad arguments). */
int spdl_tiles_losses(spdl_tiles *t, const double *theta, size_t n, const double *x, const double *target, double *y,
                      double *sum, double *param_loss);

/* y = M_forward(x) for any n, split at tile boundaries. SPDL_OK, or the
 * code of the first failing part; *bad (may be NULL) is its first sample. */
int spdl_tiles_forward(spdl_tiles *t, const double *theta, size_t n, const double *x, double *y, size_t *bad);

/* Under MPI (ranks.h), with more than one rank: every call above becomes
 * a collective of the ranks, each running its contiguous share of the
 * tiles, with the same results on every rank, bit-identical to one
 * process's. Call it on every rank, after spdl_tiles_new. SPDL_OK or
 * SPDL_ENOMEM. */
int spdl_tiles_set_ranks(spdl_tiles *t, spdl_ranks *r);
/* The samples [*lo, *hi) of a batch of `batch` that this rank's tiles read
 * (all of them for one process): the others may stay unset. */
void spdl_tiles_rows(const spdl_tiles *t, size_t batch, size_t *lo, size_t *hi);

/* The threads for `EXE COMMAND --threads N`: N, or without --threads the
 * value of SPDL_THREADS, or the CPUs this process may use. On a bad
 * SPDL_THREADS returns 0 and writes why to err. */
int spdl_threads_default(char *err, size_t errlen);

#endif
