/* weights.h - a model's parameters (and a training run's state) in a
 * safetensors file (DESIGN §5).
 *
 * Each parameter is a float64 tensor named as declared: shape [layers, ...]
 * for a `per layer` parameter, its own shape otherwise. A checkpoint adds the
 * optimiser's moments as "optimizer.m.NAME" / "optimizer.v.NAME" and its
 * metadata holds the model name, the source hash, the optimiser, its step,
 * the epoch and the generator state, so a resumed run continues bit for bit. */
#ifndef SPDL_WEIGHTS_H
#define SPDL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"
#include "spdl.h"

/* The "format" every spdl weights file carries in its metadata. */
#define SPDL_WEIGHTS_FORMAT "spdl-weights-1"
/* The largest --epochs (and a checkpoint's largest epoch). */
#define SPDL_EPOCHS_MAX 10000000

typedef struct spdl_run_state {
    int epoch;              /* epochs completed */
    uint64_t rng;           /* the shuffling generator's state */
    double lr;              /* the base learning rate it trained with */
    double decay;           /* its --weight-decay (0: none, or an older file) */
    double noise;           /* its --noise (0: none, or an older file) */
    int has_optim;
    int cosine;             /* its --schedule: 1 cosine, 0 constant */
    int total_epochs;       /* its --epochs, which the cosine anneals over; 0: unknown (an older file) */
    int level, levels;      /* train --multilevel: the level (1 the coarsest) of levels it is at, with
                               `epoch` and `total_epochs` that level's; 0, 0 for a one-level run */
} spdl_run_state;

/* The largest `levels` a weights file may record (spdlc build --levels). */
#define SPDL_LEVELS_MAX 16

int spdl_weights_save(const char *path, const spdl_model *m, const double *theta, const spdl_optim *opt,
                      const spdl_run_state *run, char *err, size_t errlen);
/* Loads parameters into theta (m->nparam doubles). With opt non-NULL, also
 * the optimiser state (which must match the file's optimiser); run receives
 * the epoch, generator state and learning rate. A file made for another
 * model, a missing tensor or a wrong shape is SPDL_EMODEL with a message
 * naming it; a file made from different source text gives *hash_differs = 1.
 * The metadata is read strictly: a "format" other than SPDL_WEIGHTS_FORMAT,
 * and (with run or opt) a missing or malformed "epoch" (0..SPDL_EPOCHS_MAX),
 * "rng" (16 hex digits), "lr" (positive) or "step" (0..2^53) is
 * SPDL_EFORMAT naming the field; so is a malformed "schedule" (constant or
 * cosine), "epochs_total" (1..SPDL_EPOCHS_MAX) or "weight_decay" or "input_noise" (a
 * non-negative number; written only when it is not 0), which older files lack,
 * and of "level" and "levels" (train --multilevel). */
int spdl_weights_load(const char *path, const spdl_model *m, double *theta, spdl_optim *opt, spdl_run_state *run,
                      int *hash_differs, char *err, size_t errlen);
/* The level a file was saved at by train --multilevel (metadata "level" and
 * "levels", strict when there): *level = *levels = 0 for a file without
 * them. SPDL_OK, or the error of reading the file. */
int spdl_weights_level(const char *path, int *level, int *levels, char *err, size_t errlen);

/* The tolerance of the declared bounds (the projection's, GUARANTEES.md):
 * norm(P) <= c (1 + tol); learned steps -tol hmax <= dt_k <= hmax (1 + tol),
 * |sum dt_k - T| <= tol T. */
#define SPDL_BOUND_TOL 1e-3

/* Checks theta against the model's declared norm bounds and step simplex
 * (spdl_weights_load calls it): SPDL_OK, or SPDL_EMODEL with a message
 * naming the parameter (and layer), its bound and the norm or step found.
 * Which parameters are constrained is read off m->project: it changes only
 * those that are (a model without project or norm_bound passes). */
int spdl_weights_check(const spdl_model *m, const double *theta, const char *path, char *err, size_t errlen);

/* Does m->project enforce parameter i's constraint? 1 or 0 (orth[n], whose
 * norm is 1 by construction, and unconstrained parameters), or SPDL_ENOMEM.
 * Found by projecting a copy of theta with every entry of i set to 1e3 times
 * its bound. */
int spdl_param_projected(const spdl_model *m, size_t i, const double *theta);

/* A rigorous upper bound on the spectral norm of one layer's copy P of a
 * rank-2 or skew parameter (Gram iteration to 1e-9, scaled so huge or tiny
 * entries neither overflow nor underflow); SPDL_ENOMEM on failure. */
int spdl_layer_norm(const spdl_param *p, const double *P, double *out);
/* The norm bound of layer k of parameter i as the model defines it: the
 * matrix's (spdl_layer_norm), or for a convolution kernel (rank >= 3) the
 * operator's as M_project bounds it (projecting a copy, scaled by a power
 * of two where the kernel is within its bound); INFINITY for NaN or
 * infinite entries. */
int spdl_bound_norm(const spdl_model *m, size_t i, const double *theta, size_t k, double *out);

#endif
