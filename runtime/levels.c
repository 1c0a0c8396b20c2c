/* levels.c - see levels.h. */
#include "levels.h"

#include <stdio.h>
#include <string.h>

int spdl_levels_check(const spdl_model *const *levels, int n, char *err, size_t errlen)
{
    for (int l = 1; l < n; l++) {
        const spdl_model *c = levels[l - 1], *f = levels[l];
        size_t nc, nf;
        const spdl_param *pc = c->params(&nc), *pf = f->params(&nf);
        if (strcmp(c->name, f->name) || strcmp(c->source_hash, f->source_hash) || c->nin != f->nin ||
            c->nout != f->nout || c->nstate != f->nstate || c->ntarget != f->ntarget || nc != nf) {
            snprintf(err, errlen, "levels %d and %d of the program are not one model (%s, %s)", l, l + 1, c->name,
                     f->name);
            return SPDL_EMODEL;
        }
        for (size_t i = 0; i < nc; i++) {
            size_t per_c = pc[i].size / pc[i].layers, per_f = pf[i].size / pf[i].layers;
            int steps_c = c->learned_steps && c->learned_steps[i], steps_f = f->learned_steps && f->learned_steps[i];
            if (strcmp(pc[i].name, pf[i].name) || per_c != per_f || steps_c != steps_f ||
                (pf[i].layers != pc[i].layers && pf[i].layers != 2 * pc[i].layers) ||
                (steps_c && pf[i].layers != 2 * pc[i].layers)) {
                snprintf(err, errlen,
                         "parameter %zu of levels %d and %d is not one parameter at doubling layers ('%s', %zu layers; "
                         "'%s', %zu layers)",
                         i + 1, l, l + 1, pc[i].name, pc[i].layers, pf[i].name, pf[i].layers);
                return SPDL_EMODEL;
            }
        }
    }
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
