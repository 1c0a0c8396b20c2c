/* levels.h - the levels of a program built with `spdlc build --levels L`
 * (DESIGN §11), and prolongation from one level to the next.
 *
 * Level l + 1 has every flow in twice the layers of level l, over the same
 * time interval; the parameters are the same list, a `per layer` parameter
 * of a flow with twice the copies. Prolongation maps a coarse parameter
 * vector (or an optimiser moment) onto the finer level:
 *   - a parameter with as many copies at both levels (shared, or per layer
 *     of a repeat block) is copied;
 *   - a per-layer parameter of a flow: constant prolongation gives fine
 *     layers 2k and 2k+1 the coarse layer k's copy; linear prolongation
 *     interpolates in time between the layers' midpoints (fine 2k gets
 *     3/4 of coarse k and 1/4 of k-1, fine 2k+1 3/4 of k and 1/4 of k+1,
 *     the end layers their own copy where the neighbour is missing): both
 *     keep constants, and every fine copy is a convex combination of coarse
 *     ones, so declared norm bounds still hold (the stored numbers of skew,
 *     orth and lu parameters are free: any combination is admissible);
 *   - learned steps: prolonged the same way, then halved, so the fine steps
 *     cover the same interval: the sum of the halves is the coarse sum and
 *     0 <= dt <= hmax holds.
 * The optimiser's first moments are prolonged like the parameters (learned
 * steps' halved), the second moments likewise (the steps' quartered, the
 * square of the halving).
 *
 * A program of `spdlc build --grid-levels L` holds an image model (C4 or D4
 * acting on its input R[c, n, n]) at n/2^(L-1), ..., n/2, n points per
 * side: the same parameters with the same shapes and copies, the input and
 * states on coarser grids. Prolongation copies everything (kernels do not
 * depend on the grid); the data of a coarser level are the images
 * restricted by 2x2 means, as pool2 does, once per level below the finest. */
#ifndef SPDL_LEVELS_H
#define SPDL_LEVELS_H

#include <stddef.h>

#include "data.h"
#include "spdl.h"

typedef enum { SPDL_PROLONG_CONSTANT, SPDL_PROLONG_LINEAR } spdl_prolong_kind;
typedef enum { SPDL_PROLONG_VALUE, SPDL_PROLONG_SQUARE } spdl_prolong_what; /* theta and m; Adam's v */

/* Checks that levels[0..n) are one model at doubling layer counts (the same
 * name, source, sizes and parameter list; each parameter with as many or
 * twice as many copies as on the level below), or one image model at
 * doubling grid sides (the same parameters exactly; the input's channels
 * alike): SPDL_OK, or SPDL_EMODEL with the reason in err. */
int spdl_levels_check(const spdl_model *const *levels, int n, char *err, size_t errlen);

/* The grid side of m's input R[c, n, n] over that of fine's, a power of two:
 * 1 for levels in depth (and for fine itself). */
size_t spdl_level_grid(const spdl_model *m, const spdl_model *fine);

/* What level l (0 the coarsest) of levels[0..n) is: "every flow in 1/4 of
 * its layers", "images 1/4 the size (7x7)", ... */
void spdl_level_describe(const spdl_model *const *levels, int n, int l, char *buf, size_t len);

/* dst: the samples of src (data for fine's input) restricted to m's grid,
 * each image's 2x2 blocks averaged spdl_level_grid times, in order; the
 * targets copied. SPDL_OK, or SPDL_ENOMEM (dst left empty). */
int spdl_restrict_data(const spdl_model *m, const spdl_model *fine, const spdl_data *src, spdl_data *dst);

/* fine_theta (fine->nparam) from coarse_theta (coarse->nparam); the two
 * descriptors passed spdl_levels_check as neighbours. */
void spdl_prolong(const spdl_model *coarse, const spdl_model *fine, const double *src, double *dst,
                  spdl_prolong_kind kind, spdl_prolong_what what);

#endif
