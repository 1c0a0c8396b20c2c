/* density.c - `EXE invert` and `EXE sample` for models proved invertible.
 *
 * invert maps data to latents with M_flow and back with M_flow_inverse, and
 * reports the round trip's error; sample draws latents z ~ N(0, I) and maps
 * them back, which gives samples of the data distribution when the model is
 * a density (its input is the initial state and its output the final one). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "rt_kernels.h"

static int write_rows(const spdl_args *a, const char *path, const double *v, size_t rows, size_t cols, const char *prefix)
{
    size_t n = path ? strlen(path) : 0;
    if (path && n > 4 && !strcmp(path + n - 4, ".npy")) {
        char err[512];
        if (spdl_npy_write(path, v, rows, cols, err, sizeof err))
            return spdl_error(a, "%s", err);
        return 0;
    }
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f)
        return spdl_error(a, "cannot write %s: %s", path, strerror(errno));
    for (size_t k = 0; k < cols; k++)
        fprintf(f, "%s%s%zu", k ? "," : "", prefix, k);
    fputc('\n', f);
    for (size_t i = 0; i < rows; i++) {
        for (size_t k = 0; k < cols; k++)
            fprintf(f, "%s%.17g", k ? "," : "", v[i * cols + k]);
        fputc('\n', f);
    }
    if (f != stdout && fclose(f) != 0)
        return spdl_error(a, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

int spdl_cmd_invert(const spdl_model *m, const spdl_args *a)
{
    if (!m->flow || !m->flow_inverse)
        return spdl_error(a, "model '%s' is not proved invertible, so it has no inverse (spdlc check says why)", m->name);
    spdl_data d;
    if (spdl_get_data(m, a, a->data, &d))
        return 1;
    int status = 1;
    size_t S = m->nstate, rows = m->traj_rows;
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta), *s = malloc(sizeof(double) * d.n * S),
           *s0 = malloc(sizeof(double) * d.n * S), *traj = malloc(sizeof(double) * d.n * rows * S);
    void *work = malloc(m->work_size(d.n));
    if (!theta || !s || !s0 || !traj || !work) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta))
        goto done;
    int rc = m->flow(theta, d.n, d.x, s, work);
    if (!rc)
        rc = m->flow_inverse(theta, d.n, s, s0, work);
    if (!rc)
        rc = m->trajectory(theta, d.n, d.x, traj, work); /* row 0: the state the flow starts from */
    if (rc) {
        spdl_error(a, "%s", spdl_strerror(rc));
        goto done;
    }
    double err = 0, scale = 0;
    for (size_t i = 0; i < d.n; i++)
        for (size_t k = 0; k < S; k++) {
            double want = traj[i * rows * S + k];
            err = fmax(err, fabs(s0[i * S + k] - want));
            scale = fmax(scale, fabs(want));
        }
    if (write_rows(a, a->out, s, d.n, S, "z"))
        goto done;
    fprintf(stderr, "%s: %zu samples to latents and back: max error %.3g (relative %.3g)\n", a->prog, d.n, err,
            err / fmax(scale, 1));
    status = 0;
done:
    spdl_data_free(&d);
    free(theta), free(s), free(s0), free(traj), free(work);
    return status;
}

int spdl_cmd_sample(const spdl_model *m, const spdl_args *a)
{
    if (!m->flow_inverse)
        return spdl_error(a, "model '%s' is not proved invertible, so it cannot sample (spdlc check says why)", m->name);
    if (!m->density)
        return spdl_error(a, "model '%s' is not a density: its input must be its initial state and its output the final "
                             "one (x[a:b] slices in, their join out)",
                          m->name);
    int status = 1;
    size_t n = (size_t)a->count, S = m->nstate;
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta), *z = malloc(sizeof(double) * n * S),
           *x = malloc(sizeof(double) * n * S);
    void *work = malloc(m->work_size(n));
    if (!theta || !z || !x || !work) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta))
        goto done;
    uint64_t rng = a->seed * 0x9e3779b97f4a7c15ull + 0x73616d706c65ull;
    for (size_t i = 0; i < n * S; i++)
        z[i] = spdl_rng_normal(&rng);
    int rc = m->flow_inverse(theta, n, z, x, work);
    if (rc) {
        spdl_error(a, "the inverse failed: %s", spdl_strerror(rc));
        goto done;
    }
    status = write_rows(a, a->out, x, n, S, "x");
done:
    free(theta), free(z), free(x), free(work);
    return status;
}
