/* optim.h - optimisers for libspdl's training driver.
 *
 * SGD with (heavy-ball) momentum and Adam (Kingma & Ba 2015, with bias
 * correction), over one flat parameter vector. The state is plain arrays so
 * checkpoints can store it and a resumed run continues bit for bit. */
#ifndef SPDL_OPTIM_H
#define SPDL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SPDL_SGD, SPDL_ADAM } spdl_optim_kind;

typedef struct spdl_optim {
    spdl_optim_kind kind;
    size_t n;
    double lr;              /* base learning rate (the schedule scales it) */
    double momentum;        /* SGD */
    double beta1, beta2, eps; /* Adam */
    double decay;           /* decoupled weight decay: theta -= lr decay theta each step (AdamW) */
    uint64_t step;          /* updates taken */
    double *m, *v;          /* SGD: m is the velocity; Adam: first and second moments */
} spdl_optim;

/* Defaults: SGD momentum 0.9, lr 0.1; Adam beta1 0.9, beta2 0.999, eps 1e-8,
 * lr 1e-3. lr <= 0 picks the default. Returns SPDL_ENOMEM on failure. */
int  spdl_optim_init(spdl_optim *o, spdl_optim_kind kind, size_t n, double lr);
void spdl_optim_free(spdl_optim *o);
/* theta -= step(grad), with the learning rate multiplied by scale. */
void spdl_optim_step(spdl_optim *o, double *theta, const double *grad, double scale);
const char *spdl_optim_name(spdl_optim_kind kind);
/* 1 for constant, 0.5 (1 + cos(pi t)) for cosine, t = progress in [0, 1]. */
double spdl_schedule(int cosine, double t);

#endif
