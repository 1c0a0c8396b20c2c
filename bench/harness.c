/* harness.c - times and measures one generated model's training step
 * (M_loss_grad: forward, loss and gradient). Built by bench/common.py with a
 * model's M.c and -DMODEL_FN=M_model. Output is `key=value` lines.
 *
 *   harness info                     nparam, work_size
 *   harness time BATCH REPEATS SEC   REPEATS repeats, each as many calls as fill
 *                                    SEC seconds (counted once, before the
 *                                    first repeat): ms per call of each repeat,
 *                                    wall clock and process CPU time, and
 *                                    their medians
 *   harness tiles BATCH REPEATS SEC THREADS
 *                                    the same for libspdl's training step
 *                                    (runtime/tiles.c: M_tile_prepare once per
 *                                    batch and thread, one M_tile_loss per tile,
 *                                    the tiles' adjoints summed in tile order,
 *                                    M_tile_finish) on THREADS threads
 *   harness pertile BATCH REPEATS SEC
 *                                    the design not taken: one M_loss_grad call
 *                                    per tile, its gradient added with weight
 *                                    nb / BATCH (the parameter code and its
 *                                    adjoint run once per tile)
 *   harness dump BATCH PREFIX        PREFIX.{theta,x,target,grad}: raw doubles,
 *                                    and the loss, for bench/torch_spirals.py
 *                                    (and bench/torch_c4.py) to check that
 *                                    PyTorch computes the same model;
 *                                    PREFIX.params: the parameter table
 *                                    (M_params), one line per parameter:
 *                                    name offset size layers rank shape...
 *   harness mem BATCH                one training step in this fresh process:
 *                                    resident set before the work buffer exists
 *                                    (parameters, gradient, data touched), peak
 *                                    resident set after the step: VmHWM, and
 *                                    ru_maxrss, which Linux carries over exec
 *                                    from the process that started us (a
 *                                    Python parent's 12 MiB shows through it)
 *
 * Parameters are M_init(theta, 1); for a model with 2 inputs (the spirals
 * model) the data are two interleaved spirals with labels 0 and 1, for any
 * other classifier (the image models of bench/conv.py) every input is a
 * deterministic pseudo-random number in [0, 1) and sample i has label
 * i mod nclass (the timing does not depend on them: every kernel of the
 * generated code is branch-free). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "spdl.h"
#include "tiles.h"

const spdl_model *MODEL_FN(void);

static const double PI = 3.14159265358979323846;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

/* CPU time of this process, all its threads: on a shared machine it
   excludes the time other processes held the cores */
static double cpu_now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* two spirals, radius up to 1, with a little deterministic jitter */
static void make_data(size_t B, double *x, double *t)
{
    uint64_t s = 42;
    for (size_t i = 0; i < B; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = ((double)(s >> 11) + 0.5) * 0x1.0p-53;
        double r = 0.1 + 0.9 * u, a = 3.0 * PI * u + (double)(i % 2) * PI;
        x[2 * i] = r * cos(a) + 0.02 * sin(7.0 * (double)i);
        x[2 * i + 1] = r * sin(a) + 0.02 * cos(5.0 * (double)i);
        t[i] = (double)(i % 2);
    }
}

/* any other classifier: inputs uniform in [0, 1), labels i mod nclass */
static void make_images(size_t B, size_t nin, int nclass, double *x, double *t)
{
    uint64_t s = 42;
    for (size_t i = 0; i < B * nin; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = ((double)(s >> 11) + 0.5) * 0x1.0p-53;
    }
    for (size_t i = 0; i < B; i++)
        t[i] = (double)(i % (size_t)nclass);
}

/* a field of /proc/self/status in KiB: VmRSS (resident now) or VmHWM (the
   peak resident set of this process image) */
static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static int write_raw(const char *prefix, const char *ext, const double *a, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, sizeof *a, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "harness: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

/* PREFIX.params: the parameter table, one line per parameter */
static int write_params(const char *prefix, const spdl_model *m)
{
    char path[4096];
    size_t n = 0;
    const spdl_param *p = m->params(&n);
    snprintf(path, sizeof path, "%s.params", prefix);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "harness: cannot write %s\n", path);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s %zu %zu %zu %d", p[i].name, p[i].offset, p[i].size, p[i].layers, p[i].rank);
        for (int d = 0; d < p[i].rank; d++)
            fprintf(f, " %zu", p[i].shape[d]);
        fprintf(f, "\n");
    }
    return fclose(f) != 0;
}

/* one training step, as each mode makes it */
typedef struct {
    const spdl_model *m;
    const double *theta, *x, *t;
    double *grad, *acc;
    size_t B;
    void *work;
    spdl_tiles *tiles;
} step_ctx;

static double step_batch(step_ctx *c) { return c->m->loss_grad(c->theta, c->B, c->x, c->t, c->grad, c->work); }

static double step_tiles(step_ctx *c) { return spdl_tiles_loss_grad(c->tiles, c->theta, c->B, c->x, c->t, c->grad); }

static double step_pertile(step_ctx *c)
{
    const spdl_model *m = c->m;
    size_t P = m->nparam, T = m->tile;
    double loss = 0;
    memset(c->grad, 0, P * sizeof *c->grad);
    for (size_t s = 0; s < c->B; s += T) {
        size_t nb = c->B - s < T ? c->B - s : T;
        double wt = (double)nb / (double)c->B;
        loss += wt * m->loss_grad(c->theta, nb, c->x + s * m->nin, c->t + s, c->acc, c->work);
        for (size_t i = 0; i < P; i++)
            c->grad[i] += wt * c->acc[i];
    }
    return loss;
}

/* REPEATS repeats of as many steps as fill SEC seconds; prints key=value */
static int time_steps(double (*step)(step_ctx *), step_ctx *c, int repeats, double sec)
{
    if (repeats < 1 || repeats > 1000 || !(sec > 0)) {
        fprintf(stderr, "harness: bad REPEATS or SEC\n");
        return 2;
    }
    volatile double sink = 0;
    /* warm up (page faults of the work buffer, caches), then count how many
       calls fill SEC seconds */
    double t0 = now();
    long calls = 0;
    do {
        sink += step(c);
        calls++;
    } while (now() - t0 < 0.25 * sec || calls < 2);
    double per = (now() - t0) / (double)calls;
    long n = (long)ceil(sec / per);
    if (n < 1)
        n = 1;
    double *ms = malloc(2 * (size_t)repeats * sizeof *ms), *cpu = ms + repeats;
    if (!ms)
        return 1;
    for (int r = 0; r < repeats; r++) {
        double a = now(), b = cpu_now();
        for (long i = 0; i < n; i++)
            sink += step(c);
        ms[r] = 1e3 * (now() - a) / (double)n;
        cpu[r] = 1e3 * (cpu_now() - b) / (double)n;
    }
    printf("calls_per_repeat=%ld\nrepeats_ms=", n);
    for (int r = 0; r < repeats; r++)
        printf("%s%.6g", r ? "," : "", ms[r]);
    printf("\nrepeats_cpu_ms=");
    for (int r = 0; r < repeats; r++)
        printf("%s%.6g", r ? "," : "", cpu[r]);
    qsort(ms, (size_t)repeats, sizeof *ms, cmp_double);
    qsort(cpu, (size_t)repeats, sizeof *cpu, cmp_double);
    printf("\nmedian_ms=%.6g\nmin_ms=%.6g\nmax_ms=%.6g\nmedian_cpu_ms=%.6g\n", ms[repeats / 2], ms[0],
           ms[repeats - 1], cpu[repeats / 2]);
    free(ms);
    return isfinite(sink) ? 0 : 1;
}

int main(int argc, char **argv)
{
    const spdl_model *m = MODEL_FN();
    if (argc < 2) {
        fprintf(stderr, "usage: harness info | time|pertile BATCH REPEATS SEC | tiles BATCH REPEATS SEC THREADS | "
                        "dump BATCH PREFIX | mem BATCH\n");
        return 2;
    }
    const char *mode = argv[1];
    size_t B = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 256;
    size_t P = m->nparam;
    if (m->ntarget != 1 || m->nclass < 1 || B == 0) {
        fprintf(stderr, "harness: expects a classifier (one class label per sample) and batch > 0\n");
        return 2;
    }
    if (strcmp(mode, "info") == 0) {
        printf("model=%s\nnparam=%zu\nwork_size=%zu\n", m->name, P, m->work_size(B));
        return 0;
    }
    double *theta = malloc(P * sizeof *theta), *grad = malloc(P * sizeof *grad);
    double *x = malloc(m->nin * B * sizeof *x), *t = malloc(B * sizeof *t);
    if (!theta || !grad || !x || !t) {
        fprintf(stderr, "harness: out of memory\n");
        return 1;
    }
    m->init(theta, 1);
    memset(grad, 0, P * sizeof *grad);
    if (m->nin == 2)
        make_data(B, x, t);
    else
        make_images(B, m->nin, m->nclass, x, t);

    if (strcmp(mode, "mem") == 0) {
        long before = status_kib("VmRSS");
        size_t ws = m->work_size(B);
        void *work = malloc(ws);
        if (!work)
            return 1;
        double L = m->loss_grad(theta, B, x, t, grad, work);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("loss=%.17g\nnparam=%zu\nwork_size=%zu\nrss_before_kib=%ld\nhwm_kib=%ld\nmaxrss_kib=%ld\n", L, P, ws,
               before, status_kib("VmHWM"), ru.ru_maxrss);
        free(work);
        return isfinite(L) ? 0 : 1;
    }

    void *work = malloc(m->work_size(B));
    if (!work)
        return 1;
    if (strcmp(mode, "dump") == 0) {
        if (argc < 4)
            return 2;
        double L = m->loss_grad(theta, B, x, t, grad, work);
        if (write_raw(argv[3], "theta", theta, P) || write_raw(argv[3], "x", x, m->nin * B) ||
            write_raw(argv[3], "target", t, B) || write_raw(argv[3], "grad", grad, P) ||
            write_params(argv[3], m))
            return 1;
        printf("loss=%.17g\n", L);
        return isfinite(L) ? 0 : 1;
    }
    step_ctx c = {m, theta, x, t, grad, NULL, B, work, NULL};
    int repeats = argc > 3 ? atoi(argv[3]) : 9;
    double sec = argc > 4 ? atof(argv[4]) : 0.3;
    if (strcmp(mode, "time") == 0)
        return time_steps(step_batch, &c, repeats, sec);
    if (strcmp(mode, "pertile") == 0) {
        if (!(c.acc = malloc((P ? P : 1) * sizeof *c.acc)))
            return 1;
        return time_steps(step_pertile, &c, repeats, sec);
    }
    if (strcmp(mode, "tiles") == 0) {
        int threads = argc > 5 ? atoi(argv[5]) : 1;
        if (spdl_tiles_new(m, threads, B, &c.tiles)) {
            fprintf(stderr, "harness: cannot make %d threads' tiles\n", threads);
            return 1;
        }
        printf("threads=%d\n", spdl_tiles_threads(c.tiles));
        int rc = time_steps(step_tiles, &c, repeats, sec);
        spdl_tiles_free(c.tiles);
        return rc;
    }
    fprintf(stderr, "harness: unknown mode %s\n", mode);
    return 2;
}
