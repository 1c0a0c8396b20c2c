/* levels.c - see levels.h. */
#include "levels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_grid_model(const spdl_model *c, const spdl_model *f)
{
    return c->in_rank == 3 && f->in_rank == 3 && c->in_shape[0] == f->in_shape[0] &&
           c->in_shape[1] == c->in_shape[2] && f->in_shape[1] == f->in_shape[2] &&
           f->in_shape[1] == 2 * c->in_shape[1];
}

int spdl_levels_check(const spdl_model *const *levels, int n, char *err, size_t errlen)
{
    for (int l = 1; l < n; l++) {
        const spdl_model *c = levels[l - 1], *f = levels[l];
        size_t nc, nf;
        const spdl_param *pc = c->params(&nc), *pf = f->params(&nf);
        int grid = c->nin != f->nin; /* --grid-levels: else the levels are in depth */
        if (strcmp(c->name, f->name) || strcmp(c->source_hash, f->source_hash) || c->nout != f->nout ||
            c->ntarget != f->ntarget || c->nclass != f->nclass || nc != nf ||
            (grid ? !same_grid_model(c, f) || c->ntarget > 1 || c->nparam != f->nparam
                  : c->nstate != f->nstate || spdl_level_grid(levels[0], f) != 1)) {
            snprintf(err, errlen, "levels %d and %d of the program are not one model (%s, %s)", l, l + 1, c->name,
                     f->name);
            return SPDL_EMODEL;
        }
        for (size_t i = 0; i < nc; i++) {
            size_t per_c = pc[i].size / pc[i].layers, per_f = pf[i].size / pf[i].layers;
            int steps_c = c->learned_steps && c->learned_steps[i], steps_f = f->learned_steps && f->learned_steps[i];
            if (strcmp(pc[i].name, pf[i].name) || per_c != per_f || steps_c != steps_f ||
                (pf[i].layers != pc[i].layers && (grid || pf[i].layers != 2 * pc[i].layers)) ||
                (steps_c && !grid && pf[i].layers != 2 * pc[i].layers)) {
                snprintf(err, errlen,
                         "parameter %zu of levels %d and %d is not one parameter at %s ('%s', %zu layers; "
                         "'%s', %zu layers)",
                         i + 1, l, l + 1, grid ? "both grids" : "doubling layers", pc[i].name, pc[i].layers,
                         pf[i].name, pf[i].layers);
                return SPDL_EMODEL;
            }
        }
    }
    return SPDL_OK;
}

size_t spdl_level_grid(const spdl_model *m, const spdl_model *fine)
{
    return m->nin == fine->nin || m->in_rank != 3 || !m->in_shape[2] ? 1 : fine->in_shape[2] / m->in_shape[2];
}

void spdl_level_describe(const spdl_model *const *levels, int n, int l, char *buf, size_t len)
{
    const spdl_model *m = levels[l], *fine = levels[n - 1];
    if (spdl_level_grid(levels[0], fine) > 1) {
        size_t g = spdl_level_grid(m, fine);
        if (g > 1)
            snprintf(buf, len, "images 1/%zu the size (%zux%zu)", g, m->in_shape[1], m->in_shape[2]);
        else
            snprintf(buf, len, "images at full size (%zux%zu)", m->in_shape[1], m->in_shape[2]);
        return;
    }
    snprintf(buf, len, l + 1 < n ? "every flow in 1/%d of its layers" : "every flow in all its layers",
             1 << (n - 1 - l));
}

int spdl_restrict_data(const spdl_model *m, const spdl_model *fine, const spdl_data *src, spdl_data *dst)
{
    *dst = *src;
    dst->x = NULL;
    dst->t = NULL;
    dst->nin = m->nin;
    size_t c = fine->in_shape[0], n = fine->in_shape[2], g = spdl_level_grid(m, fine);
    double *x = malloc(sizeof(double) * (src->n * m->nin + n * n));
    double *t = src->ntarget ? malloc(sizeof(double) * src->n * src->ntarget) : NULL;
    if (!x || (src->ntarget && !t)) {
        free(x);
        free(t);
        dst->n = 0;
        return SPDL_ENOMEM;
    }
    double *tmp = x + src->n * m->nin; /* one pooled plane, pooled again in place: the entry written
                                          precedes every entry read from then on */
    for (size_t s = 0; s < src->n; s++)
        for (size_t ch = 0; ch < c; ch++) {
            const double *a = src->x + s * src->nin + ch * n * n;
            size_t side = n;
            for (size_t h = g; h > 1; h /= 2, side /= 2) {
                size_t half = side / 2;
                for (size_t i = 0; i < half; i++)
                    for (size_t j = 0; j < half; j++) {
                        const double *p = a + 2 * i * side + 2 * j;
                        tmp[i * half + j] = 0.25 * (p[0] + p[1] + p[side] + p[side + 1]);
                    }
                a = tmp;
            }
            memcpy(x + s * m->nin + ch * side * side, a, sizeof(double) * side * side);
        }
    if (t)
        memcpy(t, src->t, sizeof(double) * src->n * src->ntarget);
    dst->x = x;
    dst->t = t;
    return SPDL_OK;
}

void spdl_prolong(const spdl_model *coarse, const spdl_model *fine, const double *src, double *dst,
                  spdl_prolong_kind kind, spdl_prolong_what what)
{
    size_t np;
    const spdl_param *pc = coarse->params(&np), *pf = fine->params(&np);
    for (size_t i = 0; i < np; i++) {
        const double *s = src + pc[i].offset;
        double *d = dst + pf[i].offset;
        size_t n = pc[i].layers, per = pc[i].size / n;
        if (pf[i].layers == n) {
            memcpy(d, s, sizeof(double) * pc[i].size);
            continue;
        }
        double scale = 1;
        if (coarse->learned_steps && coarse->learned_steps[i])
            scale = what == SPDL_PROLONG_SQUARE ? 0.25 : 0.5;
        for (size_t k = 0; k < n; k++) {
            const double *here = s + k * per;
            const double *before = k > 0 ? here - per : here, *after = k + 1 < n ? here + per : here;
            double *lo = d + 2 * k * per, *hi = lo + per;
            for (size_t j = 0; j < per; j++) {
                if (kind == SPDL_PROLONG_LINEAR) { /* an end layer keeps its own copy, exactly */
                    lo[j] = scale * (before == here ? here[j] : 0.75 * here[j] + 0.25 * before[j]);
                    hi[j] = scale * (after == here ? here[j] : 0.75 * here[j] + 0.25 * after[j]);
                } else {
                    lo[j] = hi[j] = scale * here[j];
                }
            }
        }
    }
}
