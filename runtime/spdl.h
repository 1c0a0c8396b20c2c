/* spdl.h - shared by every generated model and by libspdl.
 *
 * The generated C for a model M (M.h, M.c) needs only this header. The
 * parameter table and the error codes are the contract of DESIGN §6;
 * spdl_model bundles a model's entry points so libspdl's driver can train,
 * evaluate, certify and invert any model through one interface. */
#ifndef SPDL_H
#define SPDL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *name;    /* as declared in the .spn file                      */
    size_t offset;       /* first element in theta                            */
    size_t size;         /* elements in all, over every layer                 */
    size_t layers;       /* 1 for a shared parameter, N for `per layer`       */
    int    rank;         /* rank of one layer's copy                          */
    size_t shape[6];     /* shape of one layer's copy, row-major              */
} spdl_param;

/* Return codes: 0 is success; every failure is negative. */
enum {
    SPDL_OK = 0,
    SPDL_EINVAL = -1,     /* a NULL pointer, batch 0, or a bad argument        */
    SPDL_ELABEL = -2,     /* a class label that is not an integer in range     */
    SPDL_ENOCONV = -3,    /* a fixed-point inverse did not reach its tolerance */
    SPDL_ENONFINITE = -4, /* a NaN or infinity appeared                        */
    SPDL_EIO = -5,        /* a file could not be read or written               */
    SPDL_ENOMEM = -6,     /* out of memory                                     */
    SPDL_EFORMAT = -7,    /* malformed data or weights file                    */
    SPDL_EMODEL = -8,     /* weights or data made for another model            */
    SPDL_ENOTSUP = -9,    /* the model does not provide this function          */
};

const char *spdl_strerror(int code);

/* A model's entry points (all generated in M.c; NULL where not provided). */
typedef struct spdl_model {
    const char *name;
    const char *source_hash;     /* FNV-1a of the .spn text, hex              */
    size_t nin, nout, nstate, nparam, ntarget;
    int nclass;                  /* class labels: their count; else 0         */
    int in_rank;
    size_t in_shape[4];
    int nblocks;
    size_t traj_rows;            /* states per sample in a trajectory:
                                    sum over blocks of (layers + 1)           */
    const spdl_param *(*params)(size_t *count);
    size_t (*work_size)(size_t batch);
    void (*init)(double *theta, uint64_t seed);
    void (*project)(double *theta);
    int (*forward)(const double *theta, size_t batch, const double *x, double *y, void *work);
    double (*loss_grad)(const double *theta, size_t batch, const double *x, const double *target,
                        double *grad, void *work);
    int (*vjp)(const double *theta, size_t batch, const double *x, const double *dy, double *dx,
               double *dtheta, void *work);
    /* the state vector at the start and after every layer of every block:
       batch x traj_rows x nstate */
    int (*trajectory)(const double *theta, size_t batch, const double *x, double *traj, void *work);
    int (*flow)(const double *theta, size_t batch, const double *x, double *s, void *work);
    int (*flow_inverse)(const double *theta, size_t batch, const double *s, double *s0, void *work);
    int (*logdet)(const double *theta, size_t batch, const double *x, double *ld, void *work);
    /* from spdlc's certificate */
    double lipschitz;            /* bound on x -> logits for every admitted theta (INFINITY if none) */
    int output_softmax;          /* the output is softmax(logits) */
    const double *norm_bound;    /* per parameter: its declared spectral norm bound, or NAN */
    int density;                 /* the input is the initial state and the output the final
                                    one: flow_inverse of a latent gives a sample */
    int target_rank;             /* shape of a real target (0 without one): the data loader */
    size_t target_shape[4];      /* transforms image targets R[c, n, n] with their inputs */
    /* The training step in parts (M_tile_*), for callers that split a batch
       into tiles across threads, as libspdl's train does: tile_prepare runs the
       parameter code into a work buffer (once per batch and buffer);
       tile_loss runs one tile of nb <= tile samples of a batch of `batch` on a
       prepared buffer, returns the sum of their losses (NaN on bad arguments
       or labels), writes their outputs to y (nb x nout, may be NULL) and, with
       adj, adds the tile's parameter adjoint a (nadj doubles, seeded 1/batch)
       to adj (in double in place, contribution by contribution, so the bits
       are those of adj[i] += a[i] only when adj starts at zero: a caller
       summing tiles gives each a zeroed adj and adds them in tile order);
       tile_finish, on a prepared buffer, returns the parameter-only
       loss terms and, with adj summed over the batch's tiles, writes the
       gradient. Mean loss = (sum of the tiles' sums) / batch + tile_finish.
       NULL (and tile 0) in a descriptor made by hand: libspdl then calls
       loss_grad once per batch on one thread. */
    size_t tile;                 /* samples per tile of the generated code (SPDL_BT) */
    size_t nadj;
    int (*tile_prepare)(const double *theta, void *work);
    double (*tile_loss)(void *work, size_t batch, size_t nb, const double *x, const double *target, double *y,
                        double *adj);
    double (*tile_finish)(void *work, const double *adj, double *grad);
    const unsigned char *learned_steps; /* per parameter: 1 for a flow's learned steps (`steps learned`);
                                           NULL in a descriptor made by hand: none */
} spdl_model;

/* libspdl's command-line driver (train, eval, predict, plot, ...): the main
 * of every program `spdlc build` makes. */
int spdl_main(const spdl_model *m, int argc, char **argv);
/* The same for a program of `spdlc build --levels L`: levels[0..L) is the
 * model with every flow in 1/2^(L-1), ..., 1/2, 1 of its layers (the same
 * parameters, `per layer` ones with as many copies as their block has
 * layers); of `--grid-levels L`, the model on images R[c, n, n] with n
 * over 2^(L-1), ..., 2, 1 (the same parameters exactly). `train
 * --multilevel` trains them coarsest first; the other commands use the
 * finest, or the level a weights file was saved at. */
int spdl_main_levels(const spdl_model *const *levels, int nlevels, int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
