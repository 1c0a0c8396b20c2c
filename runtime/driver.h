/* driver.h - libspdl's command-line driver, shared by its command files.
 *
 * `spdlc build` links a model with a three-line main that calls spdl_main;
 * the driver parses the command line of DESIGN §5 (one table of options in
 * driver.c, which also prints `EXE --help` and `EXE COMMAND --help`) and runs
 * train, eval, predict, plot (and the checker's and inverter's commands).
 * Every error is one line "PROG: error: ..." on stderr and exit status 1;
 * usage errors exit 2. */
#ifndef SPDL_DRIVER_H
#define SPDL_DRIVER_H

#include <stdint.h>
#include <stdio.h>

#include "data.h"
#include "optim.h"
#include "ranks.h"
#include "spdl.h"
#include "tiles.h"
#include "weights.h"

typedef struct spdl_args {
    const char *prog, *cmd;
    const char *data, *weights, *out, *resume, *val_data;
    int epochs;
    size_t batch;
    double lr;
    double decay;           /* --weight-decay; < 0 when not given */
    double noise;           /* --noise; < 0 when not given */
    spdl_optim_kind opt;
    int cosine;
    double val;             /* validation fraction of the training data */
    uint64_t seed;
    int quiet;
    const char *eps_list;   /* certify: radii, comma-separated */
    long count;             /* sample -n */
    int ckpt_every;         /* epochs between checkpoints */
    int threads;            /* train, eval, predict, certify: threads (>= 1) */
    int threads_given;      /* by --threads */
    const spdl_model *const *levels; /* the program's levels (spdlc build --levels), coarsest first */
    int nlevels;            /* 1 for a program of one level */
    int multilevel;         /* train --multilevel */
    int level_epochs[SPDL_LEVELS_MAX]; /* its epochs per level: --level-epochs, else --epochs each */
    int prolong_linear;     /* --prolong linear */
    spdl_ranks *ranks;      /* under mpirun (ranks.h); NULL: one process */
} spdl_args;

int spdl_cmd_train(const spdl_model *m, const spdl_args *a);
int spdl_cmd_plot(const spdl_model *m, const spdl_args *a);
int spdl_cmd_certify(const spdl_model *m, const spdl_args *a);
int spdl_cmd_invert(const spdl_model *m, const spdl_args *a);
int spdl_cmd_sample(const spdl_model *m, const spdl_args *a);

/* Helpers for the commands: each prints its own error (under MPI, holds
 * it: ranks.h; spdl_get_data, spdl_get_weights and spdl_new_tiles agree
 * on their status with the other ranks, so they are collectives there:
 * every rank's data is the same as rank 0's or every rank fails, and
 * rank 0 alone reads the weights, then broadcasts them). */
int  spdl_error(const spdl_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  spdl_get_data(const spdl_model *m, const spdl_args *a, const char *spec, spdl_data *d);
int  spdl_get_weights(const spdl_model *m, const spdl_args *a, const char *path, double *theta);
double spdl_now(void);

/* Mean loss, accuracy (class labels) and confusion counts (nclass^2, may be
 * NULL) of theta on d, tile by tile on tl's threads, in parts of
 * spdl_evaluate_part(d->n, tile) samples (tl must take batches that large).
 * The tiles' loss sums are added in order, so the result does not depend on
 * the threads. Returns SPDL_OK or an error code (SPDL_ENONFINITE: the loss
 * is not finite). */
enum { SPDL_EVAL_PART = 4096 };
int spdl_evaluate(spdl_tiles *tl, const spdl_model *m, const double *theta, const spdl_data *d, double *loss,
                  double *acc, long *confusion);
size_t spdl_evaluate_part(size_t n, size_t tile);
/* spdl_tiles_new on a->threads threads, printing the error */
int spdl_new_tiles(const spdl_model *m, const spdl_args *a, size_t max_batch, spdl_tiles **out);

#endif
