/* optim.c - see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"

int spdl_optim_init(spdl_optim *o, spdl_optim_kind kind, size_t n, double lr)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->n = n;
    o->lr = lr > 0 ? lr : kind == SPDL_SGD ? 0.1 : 1e-3;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->m = calloc(n ? n : 1, sizeof *o->m);
    o->v = calloc(n ? n : 1, sizeof *o->v);
    if (!o->m || !o->v) {
        spdl_optim_free(o);
        return SPDL_ENOMEM;
    }
    return SPDL_OK;
}

void spdl_optim_free(spdl_optim *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void spdl_optim_step(spdl_optim *o, double *theta, const double *grad, double scale)
{
    double lr = o->lr * scale;
    o->step++;
    if (o->decay > 0)
        for (size_t i = 0; i < o->n; i++)
            theta[i] -= lr * o->decay * theta[i];
    if (o->kind == SPDL_SGD) {
        for (size_t i = 0; i < o->n; i++) {
            o->m[i] = o->momentum * o->m[i] + grad[i];
            theta[i] -= lr * o->m[i];
        }
        return;
    }
    double c1 = 1 - pow(o->beta1, (double)o->step), c2 = 1 - pow(o->beta2, (double)o->step);
    for (size_t i = 0; i < o->n; i++) {
        o->m[i] = o->beta1 * o->m[i] + (1 - o->beta1) * grad[i];
        o->v[i] = o->beta2 * o->v[i] + (1 - o->beta2) * grad[i] * grad[i];
        theta[i] -= lr * (o->m[i] / c1) / (sqrt(o->v[i] / c2) + o->eps);
    }
}

const char *spdl_optim_name(spdl_optim_kind kind) { return kind == SPDL_SGD ? "sgd" : "adam"; }

double spdl_schedule(int cosine, double t)
{
    if (!cosine)
        return 1;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return 0.5 * (1 + cos(3.14159265358979323846 * t));
}
