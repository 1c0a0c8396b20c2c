/* dump.c - prints a model's loss and gradient at fixed parameters and data,
 * one number per line, so builds of the same model (double and float) can
 * be compared. Build with the model's M.c and -DMODEL_FN=M_model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

int main(void)
{
    const spdl_model *m = MODEL_FN();
    size_t B = 70, P = m->nparam;
    double *th = calloc(P, sizeof *th), *g = calloc(P, sizeof *g);
    double *x = calloc(B * m->nin, sizeof *x), *t = calloc(B * (m->ntarget ? m->ntarget : 1), sizeof *t);
    void *w = malloc(m->work_size(B));
    m->init(th, 3);
    for (size_t i = 0; i < B * m->nin; i++)
        x[i] = sin(0.7 * (double)i);
    for (size_t i = 0; i < B * m->ntarget; i++)
        t[i] = m->nclass ? (double)(i % (size_t)m->nclass) : cos((double)i);
    printf("%.17g\n", m->loss_grad(th, B, x, t, g, w));
    for (size_t i = 0; i < P; i++)
        printf("%.17g\n", g[i]);
    free(th), free(g), free(x), free(t), free(w);
    return 0;
}
