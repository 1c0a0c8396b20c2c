/* data.h - training data for libspdl: CSV and NumPy .npy files and the
 * built-in sets (spirals, moons, circles, digits, mnist, waves, pointsets).
 *
 * A data spec is a path to a .csv or .npy file (also .csv.gz / .npy.gz) or
 * builtin:NAME, optionally followed by ?key=value&key=value. Every source
 * takes split=F (0<F<1) with part=train|test (a deterministic shuffled split
 * seeded by seed=S, default 0), n=N (caps a file, sets a generator's size),
 * and, when the model's input is an image R[c, n, n] (or R[n, n]),
 * rotate=90|180|270|random|DEGREES and mirror=1 (DESIGN §8); a signal R[c, n]
 * takes shift=S|random, a set R[c, n] permute=reverse|random.
 * runtime/DATA.md lists the keys and the generators' formulas.
 *
 * Nothing here keeps global state: the functions may be called from several
 * threads at once. */
#ifndef SPDL_DATA_H
#define SPDL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "spdl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spdl_data {
    size_t n;          /* samples */
    size_t nin;        /* features per sample */
    size_t ntarget;    /* targets per sample: 1 for a class label (index as a double), m for real targets, 0 for none */
    double *x;         /* n * nin, sample-major */
    double *t;         /* n * ntarget (NULL if ntarget == 0) */
    int nclass;        /* number of classes if the targets are class labels (max label + 1 for files), else 0 */
    char desc[256];    /* human description, e.g. "builtin:spirals (n=1000, noise=0.05, seed=1)" or the file path */
} spdl_data;

/* Loads `spec` for a model with `nin` inputs and `ntarget` targets per sample (the model decides: a file row
   must have exactly nin + ntarget numbers, features first then targets). spec is a path to a .csv or .npy file,
   or builtin:NAME, each optionally followed by ?key=value&key=value. Generic keys for every source:
   split=F (0<F<1) and part=train|test: a deterministic shuffled split (seeded by key seed=S, default 0) keeping
   the first (1-F) of the permuted samples for train and the rest for test; n=N caps/sets the number of samples.
   Builtins: spirals (2 inputs, 2 classes; keys n (default 1000), noise (0.05), turns (1.5), seed), moons (2
   inputs, 2 classes; n, noise (0.1), seed), circles (2 inputs, 2 classes; n, noise (0.05), factor (0.5), seed),
   digits (64 inputs, 10 classes; the 1797 8x8 UCI digits; pixels scaled to [0,1] by /16 unless scale=0),
   mnist (784 inputs, 10 classes; 10,000 28x28 MNIST digits; pixels / 255 unless scale=0), waves (signals
   R[1, L] or R[L], 4 classes; n, noise (0.1), cycles (3), seed) and pointsets (R[2, m], 3 classes; n, noise
   (0.05), zoom (0), angle (random), seed); waves and pointsets take L and m from spdl_data_load_layout.
   The `seed` argument is used for builtin generators when the spec has no seed= key.
   On failure: returns a negative SPDL_E* code and writes one clear line into err (for files:
   "FILE:LINE:COL: expected a number, found 'abc'" style for CSV; for npy: what is wrong and what is supported).

   With ntarget == 1 the target is taken to be a class label (a non-negative integer); use spdl_data_load_ex
   with nclass = 0 for one real-valued target. With ntarget == 0 a builtin's labels are dropped. */
int  spdl_data_load(const char *spec, size_t nin, size_t ntarget, uint64_t seed, spdl_data *out, char *err, size_t errlen);

/* spdl_data_load with the kind of target stated by the model:
     nclass > 0   ntarget must be 1; every label an integer in 0..nclass-1 (SPDL_ELABEL otherwise), and a
                  builtin must have exactly nclass classes (SPDL_EMODEL otherwise);
     nclass == 0  real-valued targets: any finite numbers; builtins (whose targets are labels) are refused
                  unless ntarget == 0;
     nclass < 0   decide as spdl_data_load does (class labels exactly when ntarget == 1). */
int  spdl_data_load_ex(const char *spec, size_t nin, size_t ntarget, int nclass, uint64_t seed, spdl_data *out,
                       char *err, size_t errlen);

/* What a model expects of each sample, for spdl_data_load_layout; spdl_data_layout_of fills it from a model.
   The shapes say which inputs (and real targets) are images R[c, n, n] or R[n, n], which rotate= and mirror=
   need, and how long a signal builtin:waves makes or how many points builtin:pointsets. */
typedef struct spdl_data_layout {
    size_t nin;              /* features per sample (the product of in_shape) */
    int in_rank;             /* 0..4; 0 stands for R[nin] */
    size_t in_shape[4];
    size_t ntarget;          /* targets per sample, as for spdl_data_load_ex */
    int nclass;              /* > 0, 0 or < 0, as for spdl_data_load_ex */
    int target_rank;         /* 0..4; 0 stands for R[ntarget]. An image target is transformed with its input */
    size_t target_shape[4];
} spdl_data_layout;

/* The layout of model m's samples: its input shape, target count and shape, and nclass (-1 for a density
   model, which takes a builtin's inputs without labels). */
spdl_data_layout spdl_data_layout_of(const spdl_model *m);

/* spdl_data_load_ex for a model with the given layout (the shapes must multiply to nin and ntarget, ranks at
   most 4, else SPDL_EINVAL). spdl_data_load and spdl_data_load_ex call it with rank 0: vectors, no images. */
int  spdl_data_load_layout(const char *spec, const spdl_data_layout *layout, uint64_t seed, spdl_data *out,
                           char *err, size_t errlen);

void spdl_data_free(spdl_data *d);

/* Adds sigma N(0, 1) noise to rows lo..hi-1 of x (nin numbers each; train --noise). Row i's noise depends on key
   and i only, so a batch gets the same noise however its rows are split over threads or ranks. */
void spdl_data_noise(double *x, size_t lo, size_t hi, size_t nin, uint64_t key, double sigma);

/* Splits `d` the way the split=F key does: a shuffle seeded by `seed`, the first n - round(n*frac) samples of
   the permutation into `train`, the rest into `val`. 0 < frac < 1 and both parts non-empty, else SPDL_EINVAL.
   `d` is left unchanged; on failure train and val are left empty. */
int  spdl_data_split(const spdl_data *d, double frac, uint64_t seed, spdl_data *train, spdl_data *val);

/* dst = R_degrees(M^mirror src) for one n x n image src (row-major; dst must not overlap src), DESIGN §8: the
   mirror (M a)[i, j] = a[i, n-1-j] first when mirror is set, then the counter-clockwise rotation. A multiple of
   90 degrees is the exact permutation (R a)[i, j] = a[j, n-1-i] (numpy.rot90(a, 1)) applied degrees/90 times
   mod 4; any other angle samples (M a) bilinearly at the point turned back about the centre (n-1)/2, row
   c + cos(t) (i-c) + sin(t) (j-c), column c - sin(t) (i-c) + cos(t) (j-c), with zero outside the grid.
   A non-finite angle is taken as 0. */
void spdl_image_transform(const double *src, double *dst, size_t n, int mirror, double degrees);

/* Writes a .npy (format 1.0, '<f8', C order) of rows x cols doubles; for tests and for `predict`. */
int  spdl_npy_write(const char *path, const double *a, size_t rows, size_t cols, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
