/* weights.c - see weights.h. */
#include "weights.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

/* The tensor shape of parameter p in the file: [layers, shape...] per layer. */
static int tensor_shape(const spdl_param *p, size_t *shape)
{
    int r = 0;
    if (p->layers > 1)
        shape[r++] = p->layers;
    for (int i = 0; i < p->rank && r < 4; i++)
        shape[r++] = p->shape[i];
    if (r == 0 && p->size > 1) /* a rank-0 value per layer */
        shape[r++] = p->size;
    return r;
}

static const char *shape_text(char *buf, size_t n, const size_t *shape, int rank)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%zu", i ? ", " : "", shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

int spdl_weights_save(const char *path, const spdl_model *m, const double *theta, const spdl_optim *opt,
                      const spdl_run_state *run, char *err, size_t errlen)
{
    size_t np;
    const spdl_param *ps = m->params(&np);
    size_t nt = np * (opt ? 3 : 1);
    spdl_tensor *t = calloc(nt ? nt : 1, sizeof *t);
    char **names = calloc(nt ? nt : 1, sizeof *names);
    if (!t || !names) {
        free(t);
        free(names);
        snprintf(err, errlen, "out of memory");
        return SPDL_ENOMEM;
    }
    size_t k = 0;
    int rc = SPDL_OK;
    for (int part = 0; part < (opt ? 3 : 1); part++)
        for (size_t i = 0; i < np; i++) {
            const char *prefix = part == 0 ? "" : part == 1 ? "optimizer.m." : "optimizer.v.";
            size_t len = strlen(prefix) + strlen(ps[i].name) + 1;
            names[k] = malloc(len);
            if (!names[k]) {
                rc = SPDL_ENOMEM;
                break;
            }
            snprintf(names[k], len, "%s%s", prefix, ps[i].name);
            t[k].name = names[k];
            t[k].rank = tensor_shape(&ps[i], t[k].shape);
            t[k].size = ps[i].size;
            const double *src = part == 0 ? theta : part == 1 ? opt->m : opt->v;
            t[k].data = (double *)(src + ps[i].offset);
            k++;
        }
    char step[32], epoch[32], rng[32], lr[40];
    snprintf(step, sizeof step, "%" PRIu64, opt ? opt->step : 0);
    snprintf(epoch, sizeof epoch, "%d", run ? run->epoch : 0);
    snprintf(rng, sizeof rng, "%016" PRIx64, run ? run->rng : 0);
    snprintf(lr, sizeof lr, "%.17g", opt ? opt->lr : 0);
    const char *keys[] = {"format", "model", "source_hash", "optimizer", "step", "epoch", "rng", "lr"};
    const char *vals[] = {"spdl-weights-1", m->name, m->source_hash, opt ? spdl_optim_name(opt->kind) : "none",
                          step, epoch, rng, lr};
    if (rc == SPDL_OK)
        rc = spdl_st_write(path, t, k, keys, vals, sizeof keys / sizeof keys[0], err, errlen);
    else
        snprintf(err, errlen, "out of memory");
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    free(names);
    free(t);
    return rc;
}

static int load_tensor(const spdl_st *st, const char *path, const char *name, const spdl_param *p, double *dst,
                       char *err, size_t errlen)
{
    const spdl_tensor *t = spdl_st_find(st, name);
    if (!t) {
        snprintf(err, errlen, "%s: no tensor '%s' (the model declares it)", path, name);
        return SPDL_EMODEL;
    }
    size_t want[4];
    int r = tensor_shape(p, want);
    int same = t->rank == r && t->size == p->size;
    for (int i = 0; same && i < r; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char a[96], b[96];
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, but the model expects %s", path, name,
                 shape_text(a, sizeof a, t->shape, t->rank), shape_text(b, sizeof b, want, r));
        return SPDL_EMODEL;
    }
    memcpy(dst + p->offset, t->data, sizeof(double) * p->size);
    return SPDL_OK;
}

int spdl_weights_load(const char *path, const spdl_model *m, double *theta, spdl_optim *opt, spdl_run_state *run,
                      int *hash_differs, char *err, size_t errlen)
{
    spdl_st st;
    int rc = spdl_st_read(path, &st, err, errlen);
    if (rc)
        return rc;
    const char *model = spdl_st_meta(&st, "model");
    if (!model || strcmp(model, m->name) != 0) {
        if (model)
            snprintf(err, errlen, "%s holds weights for model '%s', not '%s'", path, model, m->name);
        else
            snprintf(err, errlen, "%s has no 'model' in its metadata: it was not written by spdl", path);
        spdl_st_free(&st);
        return SPDL_EMODEL;
    }
    const char *hash = spdl_st_meta(&st, "source_hash");
    if (hash_differs)
        *hash_differs = !hash || strcmp(hash, m->source_hash) != 0;
    size_t np;
    const spdl_param *ps = m->params(&np);
    for (size_t i = 0; i < np && rc == SPDL_OK; i++)
        rc = load_tensor(&st, path, ps[i].name, &ps[i], theta, err, errlen);
    if (rc == SPDL_OK && run) {
        const char *e = spdl_st_meta(&st, "epoch"), *g = spdl_st_meta(&st, "rng");
        run->epoch = e ? atoi(e) : 0;
        run->rng = g ? strtoull(g, NULL, 16) : 0;
        run->has_optim = 0;
    }
    if (rc == SPDL_OK && opt) {
        const char *kind = spdl_st_meta(&st, "optimizer"), *step = spdl_st_meta(&st, "step");
        if (!kind || strcmp(kind, spdl_optim_name(opt->kind)) != 0) {
            snprintf(err, errlen, "%s was trained with optimizer '%s', not '%s'", path, kind ? kind : "none",
                     spdl_optim_name(opt->kind));
            rc = SPDL_EMODEL;
        }
        char name[512];
        for (size_t i = 0; i < np && rc == SPDL_OK; i++) {
            snprintf(name, sizeof name, "optimizer.m.%s", ps[i].name);
            rc = load_tensor(&st, path, name, &ps[i], opt->m, err, errlen);
            snprintf(name, sizeof name, "optimizer.v.%s", ps[i].name);
            if (rc == SPDL_OK)
                rc = load_tensor(&st, path, name, &ps[i], opt->v, err, errlen);
        }
        if (rc == SPDL_OK) {
            opt->step = step ? strtoull(step, NULL, 10) : 0;
            if (run)
                run->has_optim = 1;
        }
    }
    spdl_st_free(&st);
    return rc;
}
