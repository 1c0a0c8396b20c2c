/* weights.c - see weights.h. */
#include "weights.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "rt_kernels.h"
#include "safetensors.h"

/* The tensor shape of parameter p in the file: [layers, shape...] per layer. */
static int tensor_shape(const spdl_param *p, size_t *shape)
{
    int r = 0;
    if (p->layers > 1)
        shape[r++] = p->layers;
    for (int i = 0; i < p->rank && r < SPDL_ST_MAX_RANK; i++)
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

/* A setting recorded only when it is > 0 (keys[0], vals[0] = key, x in buf): the entries it took, 0 or 1. */
static size_t positive_meta(double x, const char *key, char buf[40], const char **keys, const char **vals)
{
    if (!(x > 0))
        return 0;
    snprintf(buf, 40, "%.17g", x);
    keys[0] = key, vals[0] = buf;
    return 1;
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
    char step[32], epoch[32], rng[32], lr[40], decay[40], noise[40], total[32], level[16], levels[16];
    snprintf(step, sizeof step, "%" PRIu64, opt ? opt->step : 0);
    snprintf(epoch, sizeof epoch, "%d", run ? run->epoch : 0);
    snprintf(rng, sizeof rng, "%016" PRIx64, run ? run->rng : 0);
    snprintf(lr, sizeof lr, "%.17g", opt ? opt->lr : 0);
    const char *keys[16] = {"format", "model", "source_hash", "optimizer", "step", "epoch", "rng", "lr"};
    const char *vals[16] = {SPDL_WEIGHTS_FORMAT, m->name, m->source_hash, opt ? spdl_optim_name(opt->kind) : "none",
                            step, epoch, rng, lr};
    size_t nkeys = 8;
    if (run && run->total_epochs > 0) {
        snprintf(total, sizeof total, "%d", run->total_epochs);
        keys[nkeys] = "schedule", vals[nkeys++] = run->cosine ? "cosine" : "constant";
        keys[nkeys] = "epochs_total", vals[nkeys++] = total;
    }
    /* absent means 0, so files without them read as before */
    nkeys += positive_meta(opt ? opt->decay : 0, "weight_decay", decay, keys + nkeys, vals + nkeys);
    nkeys += positive_meta(run ? run->noise : 0, "input_noise", noise, keys + nkeys, vals + nkeys);
    if (run && run->levels > 0) {
        snprintf(level, sizeof level, "%d", run->level);
        snprintf(levels, sizeof levels, "%d", run->levels);
        keys[nkeys] = "level", vals[nkeys++] = level;
        keys[nkeys] = "levels", vals[nkeys++] = levels;
    }
    if (rc == SPDL_OK)
        rc = spdl_st_write(path, t, k, keys, vals, nkeys, err, errlen);
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
    size_t want[SPDL_ST_MAX_RANK];
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

/* ---- the declared bounds --------------------------------------------------- */

int spdl_layer_norm(const spdl_param *p, const double *P, double *out)
{
    /* skew[n] stores the n(n-1)/2 numbers above the diagonal of A - A' */
    size_t q = p->rank == 2 ? 0 : p->shape[0];
    size_t n = p->rank == 2 ? 0 : (size_t)((1 + sqrt(1 + 8.0 * (double)q)) / 2 + 0.5);
    size_t rows = p->rank == 2 ? p->shape[0] : n, cols = p->rank == 2 ? p->shape[1] : n;
    size_t count = p->rank == 2 ? rows * cols : q;
    double big = 0;
    for (size_t i = 0; i < count; i++)
        big = fmax(big, fabs(P[i]));
    if (big == 0 || !isfinite(big)) {
        *out = big;
        return SPDL_OK;
    }
    size_t na = rows * cols;
    double *A = malloc(sizeof(double) * (na ? na : 1));
    if (!A)
        return SPDL_ENOMEM;
    /* scaled by a power of two (exact) so the Gram matrix neither overflows
       nor underflows: entries of 1e308 give a norm, not infinity */
    int e = ilogb(big);
    size_t k = 0;
    if (p->rank == 2)
        for (size_t i = 0; i < count; i++)
            A[i] = ldexp(P[i], -e);
    else
        for (size_t i = 0; i < n; i++) {
            A[i * n + i] = 0;
            for (size_t j = i + 1; j < n; j++, k++) {
                A[i * n + j] = ldexp(P[k], -e);
                A[j * n + i] = -A[i * n + j];
            }
        }
    *out = ldexp(spdl_norm2_upper((int)rows, (int)cols, A, 0, 1e-9), e);
    free(A);
    return SPDL_OK;
}

/* The learned steps' simplex {0 <= dt_k <= hmax, sum dt_k = T}, read off the
 * projection (the descriptor does not carry T and hmax): projecting gives a
 * vector summing to T, and projecting (2T + 1, 0, ..., 0) gives min(hmax, T)
 * as its first entry. th is a projected copy of theta; scratch is nparam. */
static void simplex_of(const spdl_model *m, const spdl_param *p, const double *th, double *scratch, double *T,
                       double *hmax)
{
    double t = 0;
    for (size_t k = 0; k < p->size; k++)
        t += th[p->offset + k];
    memcpy(scratch, th, sizeof(double) * m->nparam);
    for (size_t k = 0; k < p->size; k++)
        scratch[p->offset + k] = k == 0 ? 2 * t + 1 : 0;
    m->project(scratch);
    *T = t;
    *hmax = scratch[p->offset];
}

int spdl_param_projected(const spdl_model *m, size_t i, const double *theta)
{
    size_t np;
    const spdl_param *p = &m->params(&np)[i];
    double *th = malloc(sizeof(double) * (m->nparam ? m->nparam : 1));
    if (!th)
        return SPDL_ENOMEM;
    memcpy(th, theta, sizeof(double) * m->nparam);
    double big = 1e3 * (isnan(m->norm_bound[i]) ? 1 : m->norm_bound[i]);
    for (size_t k = 0; k < p->size; k++)
        th[p->offset + k] = big;
    if (m->project)
        m->project(th);
    int changed = 0;
    for (size_t k = 0; k < p->size && !changed; k++)
        changed = th[p->offset + k] != big;
    free(th);
    return changed;
}

int spdl_bound_norm(const spdl_model *m, size_t i, const double *theta, size_t k, double *out)
{
    size_t np;
    const spdl_param *p = &m->params(&np)[i];
    size_t per = p->size / (p->layers ? p->layers : 1);
    if (p->rank < 3)
        return spdl_layer_norm(p, theta + p->offset + k * per, out);
    /* a convolution kernel: its bound is on the operator (on a grid the
       descriptor does not carry), which only the model's projection
       computes. Projected where it exceeds its bound, a kernel comes back
       scaled by c / bound or a little less, so c a / b, with a and b its
       largest entries before and after, is at least its bound. A kernel
       within its bound is projected again at 2^13 and 2^26 times its size
       (exact scalings, under which the bound scales exactly), so the figure
       is its own bound, not c; within even then, it is at most c 2^-26. */
    double *th = malloc(sizeof(double) * (m->nparam ? m->nparam : 1));
    if (!th)
        return SPDL_ENOMEM;
    double c = m->norm_bound[i];
    *out = ldexp(c, -26);
    for (size_t q = 0; q < per; q++)
        if (!(fabs(theta[p->offset + k * per + q]) < INFINITY)) { /* NaN or infinite: no bound */
            free(th);
            *out = INFINITY;
            return SPDL_OK;
        }
    for (int e = 0; e <= 26; e += 13) {
        memcpy(th, theta, sizeof(double) * m->nparam);
        for (size_t q = 0; q < per; q++)
            th[p->offset + k * per + q] = ldexp(th[p->offset + k * per + q], e);
        double a = 0, b = 0;
        for (size_t q = 0; q < per; q++)
            a = fmax(a, fabs(th[p->offset + k * per + q]));
        m->project(th);
        for (size_t q = 0; q < per; q++)
            b = fmax(b, fabs(th[p->offset + k * per + q]));
        if (a == 0 || !(a < INFINITY)) { /* a zero kernel; or 2^e times it overflows, within at 2^(e - 13) */
            *out = a == 0 ? 0 : ldexp(c, -e + 13);
            break;
        }
        if (a != b) {
            *out = b > 0 ? ldexp(c * (a / b), -e) : INFINITY;
            break;
        }
    }
    free(th);
    return SPDL_OK;
}

int spdl_weights_check(const spdl_model *m, const double *theta, const char *path, char *err, size_t errlen)
{
    if (!m->project || !m->norm_bound)
        return SPDL_OK;
    size_t np;
    const spdl_param *ps = m->params(&np);
    double *th = malloc(sizeof(double) * (m->nparam ? m->nparam : 1));
    double *scratch = malloc(sizeof(double) * (m->nparam ? m->nparam : 1));
    int rc = th && scratch ? SPDL_OK : spdl_fail(err, errlen, SPDL_ENOMEM, "out of memory");
    if (rc == SPDL_OK) {
        memcpy(th, theta, sizeof(double) * m->nparam);
        m->project(th);
    }
    for (size_t i = 0; i < np && rc == SPDL_OK; i++) {
        const spdl_param *p = &ps[i];
        /* what the projection leaves alone satisfies its constraint
           (orth[n] is orthogonal by construction and never projected) */
        if (!memcmp(th + p->offset, theta + p->offset, sizeof(double) * p->size))
            continue;
        if (!isnan(m->norm_bound[i])) {
            double c = m->norm_bound[i];
            for (size_t k = 0; k < p->layers && rc == SPDL_OK; k++) {
                double nb;
                rc = spdl_bound_norm(m, i, theta, k, &nb);
                if (rc)
                    spdl_fail(err, errlen, rc, "out of memory");
                else if (!(nb <= c * (1 + SPDL_BOUND_TOL))) {
                    char layer[64] = "";
                    if (p->layers > 1)
                        snprintf(layer, sizeof layer, " (layer %zu of %zu)", k + 1, p->layers);
                    rc = spdl_fail(err, errlen, SPDL_EMODEL,
                                   "%s: parameter '%s'%s has spectral norm %.6g, but the model declares norm(%s) <= %g: "
                                   "its guarantees hold only inside the bound",
                                   path, p->name, layer, nb, p->name, c);
                }
            }
            continue;
        }
        /* the learned steps */
        double T, hmax, sum = 0;
        simplex_of(m, p, th, scratch, &T, &hmax);
        size_t bad = p->size;
        for (size_t k = 0; k < p->size; k++) {
            double d = theta[p->offset + k];
            sum += d;
            if (bad == p->size && !(d >= -SPDL_BOUND_TOL * hmax && d <= hmax * (1 + SPDL_BOUND_TOL)))
                bad = k;
        }
        if (bad < p->size)
            rc = spdl_fail(err, errlen, SPDL_EMODEL,
                           "%s: parameter '%s' (the learned steps) has %s_%zu = %.6g, but the model declares "
                           "0 <= %s_k <= %g with sum %g",
                           path, p->name, p->name, bad + 1, theta[p->offset + bad], p->name, hmax, T);
        else if (!(fabs(sum - T) <= SPDL_BOUND_TOL * T))
            rc = spdl_fail(err, errlen, SPDL_EMODEL,
                           "%s: parameter '%s' (the learned steps) sums to %.6g, but the model declares "
                           "0 <= %s_k <= %g with sum %g",
                           path, p->name, sum, p->name, hmax, T);
    }
    free(th);
    free(scratch);
    return rc;
}

/* Strict readers of the checkpoint's metadata: the whole string, in range;
   each returns 0 or writes a message naming the field. */
static int meta_field(const spdl_st *st, const char *path, const char *key, const char **v, char *err, size_t errlen)
{
    *v = spdl_st_meta(st, key);
    if (!*v)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s has no '%s' in its metadata, so it cannot resume a run", path,
                         key);
    return SPDL_OK;
}

static int meta_u64(const spdl_st *st, const char *path, const char *key, int base, uint64_t min, uint64_t max,
                    uint64_t *out, char *err, size_t errlen)
{
    const char *v;
    int rc = meta_field(st, path, key, &v, err, errlen);
    if (rc)
        return rc;
    uint64_t x = 0;
    size_t n = 0;
    for (const char *c = v; *c; c++, n++) {
        int d = *c >= '0' && *c <= '9' ? *c - '0' : base == 16 && *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (d < 0 || x > (max - (uint64_t)d) / (uint64_t)base) {
            n = 0;
            break;
        }
        x = x * (uint64_t)base + (uint64_t)d;
    }
    if (n == 0 || (base == 16 && n != 16) || x < min) {
        if (base == 16)
            return spdl_fail(err, errlen, SPDL_EFORMAT,
                             "%s: metadata '%s' is '%.40s', expected 16 lowercase hexadecimal digits", path, key, v);
        return spdl_fail(err, errlen, SPDL_EFORMAT,
                         "%s: metadata '%s' is '%.40s', expected an integer from %" PRIu64 " to %" PRIu64, path, key, v,
                         min, max);
    }
    *out = x;
    return SPDL_OK;
}

/* a finite number > 0, or >= 0 with zero_ok */
static int meta_number(const spdl_st *st, const char *path, const char *key, int zero_ok, double *out, char *err,
                       size_t errlen)
{
    const char *v;
    int rc = meta_field(st, path, key, &v, err, errlen);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || !(zero_ok ? x >= 0 : x > 0))
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: metadata '%s' is '%.40s', expected a %s number", path, key,
                         v, zero_ok ? "non-negative" : "positive");
    *out = x;
    return SPDL_OK;
}

/* a setting written only when it is > 0 (positive_meta): 0 when absent, else a non-negative number */
static int meta_optional_number(const spdl_st *st, const char *path, const char *key, double *out, char *err,
                                size_t errlen)
{
    *out = 0;
    return spdl_st_meta(st, key) ? meta_number(st, path, key, 1, out, err, errlen) : SPDL_OK;
}

/* "level" and "levels" when the file has either: both, 1 <= level <= levels <= SPDL_LEVELS_MAX */
static int meta_level(const spdl_st *st, const char *path, int *level, int *levels, char *err, size_t errlen)
{
    *level = *levels = 0;
    if (!spdl_st_meta(st, "level") && !spdl_st_meta(st, "levels"))
        return SPDL_OK;
    uint64_t l = 0, n = 0;
    int rc = meta_u64(st, path, "levels", 10, 1, SPDL_LEVELS_MAX, &n, err, errlen);
    if (rc == SPDL_OK)
        rc = meta_u64(st, path, "level", 10, 1, n, &l, err, errlen);
    *level = (int)l;
    *levels = (int)n;
    return rc;
}

int spdl_weights_level(const char *path, int *level, int *levels, char *err, size_t errlen)
{
    spdl_st st;
    int rc = spdl_st_read(path, &st, err, errlen);
    if (rc)
        return rc;
    rc = meta_level(&st, path, level, levels, err, errlen);
    spdl_st_free(&st);
    return rc;
}

int spdl_weights_load(const char *path, const spdl_model *m, double *theta, spdl_optim *opt, spdl_run_state *run,
                      int *hash_differs, char *err, size_t errlen)
{
    spdl_st st;
    int rc = spdl_st_read(path, &st, err, errlen);
    if (rc)
        return rc;
    const char *model = spdl_st_meta(&st, "model"), *format = spdl_st_meta(&st, "format");
    if (model && (!format || strcmp(format, SPDL_WEIGHTS_FORMAT) != 0)) {
        if (format)
            snprintf(err, errlen, "%s: metadata 'format' is '%.40s', but this program reads '%s'", path, format,
                     SPDL_WEIGHTS_FORMAT);
        else
            snprintf(err, errlen, "%s has no 'format' in its metadata (this program reads '%s')", path,
                     SPDL_WEIGHTS_FORMAT);
        spdl_st_free(&st);
        return SPDL_EFORMAT;
    }
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
    int level = 0, levels = 0;
    char ignored[256];
    if (rc == SPDL_EMODEL && meta_level(&st, path, &level, &levels, ignored, sizeof ignored) == SPDL_OK &&
        level < levels) {
        size_t k = strlen(err);
        snprintf(err + k, errlen - k, " (it holds level %d of the %d of a train --multilevel run: a program of "
                 "spdlc build --levels %d reads it)", level, levels, levels);
    }
    if (rc == SPDL_OK && run) {
        uint64_t epoch = 0, rng = 0;
        run->has_optim = 0;
        rc = meta_u64(&st, path, "epoch", 10, 0, SPDL_EPOCHS_MAX, &epoch, err, errlen);
        if (rc == SPDL_OK)
            rc = meta_u64(&st, path, "rng", 16, 0, UINT64_MAX, &rng, err, errlen);
        if (rc == SPDL_OK)
            rc = meta_number(&st, path, "lr", 0, &run->lr, err, errlen);
        run->epoch = (int)epoch;
        run->rng = rng;
        /* the schedule: optional (older files lack it), strict when there */
        const char *sched = spdl_st_meta(&st, "schedule");
        uint64_t total = 0;
        run->cosine = sched && !strcmp(sched, "cosine");
        if (rc == SPDL_OK && sched && strcmp(sched, "cosine") && strcmp(sched, "constant"))
            rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: metadata 'schedule' is '%.40s', expected constant or cosine",
                           path, sched);
        if (rc == SPDL_OK && (sched || spdl_st_meta(&st, "epochs_total"))) {
            rc = meta_u64(&st, path, "epochs_total", 10, 1, SPDL_EPOCHS_MAX, &total, err, errlen);
        }
        run->total_epochs = (int)total;
        if (rc == SPDL_OK)
            rc = meta_optional_number(&st, path, "weight_decay", &run->decay, err, errlen);
        if (rc == SPDL_OK)
            rc = meta_optional_number(&st, path, "input_noise", &run->noise, err, errlen);
        if (rc == SPDL_OK)
            rc = meta_level(&st, path, &run->level, &run->levels, err, errlen);
    }
    if (rc == SPDL_OK && opt) {
        const char *kind = spdl_st_meta(&st, "optimizer");
        uint64_t step = 0;
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
        /* 2^53: Adam's bias correction takes the step as a double */
        if (rc == SPDL_OK)
            rc = meta_u64(&st, path, "step", 10, 0, (uint64_t)1 << 53, &step, err, errlen);
        if (rc == SPDL_OK) {
            opt->step = step;
            if (run)
                run->has_optim = 1;
        }
    }
    spdl_st_free(&st);
    if (rc == SPDL_OK)
        rc = spdl_weights_check(m, theta, path, err, errlen);
    return rc;
}
