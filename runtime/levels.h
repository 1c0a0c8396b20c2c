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
 * square of the halving). */
#ifndef SPDL_LEVELS_H
#define SPDL_LEVELS_H

#include <stddef.h>

#include "spdl.h"

typedef enum { SPDL_PROLONG_CONSTANT, SPDL_PROLONG_LINEAR } spdl_prolong_kind;
typedef enum { SPDL_PROLONG_VALUE, SPDL_PROLONG_SQUARE } spdl_prolong_what; /* theta and m; Adam's v */

/* Checks that levels[0..n) are one model at doubling layer counts (the same
 * name, source, sizes and parameter list; each parameter with as many or
 * twice as many copies as on the level below): SPDL_OK, or SPDL_EMODEL with
 * the reason in err. */
int spdl_levels_check(const spdl_model *const *levels, int n, char *err, size_t errlen);

/* fine_theta (fine->nparam) from coarse_theta (coarse->nparam); the two
 * descriptors passed spdl_levels_check as neighbours. */
void spdl_prolong(const spdl_model *coarse, const spdl_model *fine, const double *src, double *dst,
                  spdl_prolong_kind kind, spdl_prolong_what what);

#endif
