/* python_call.c - the direct C call bench/python_overhead.py compares the
 * Python binding with: dlopen the same libM.so `spdlc build --python` made,
 * call M_forward `calls` times at batch B on fixed inputs, and print the
 * median of 7 repetitions as ns_per_call=... (key=value, like the other
 * harnesses). Usage: python_call LIB MODEL BATCH CALLS */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "spdl.h"

typedef int (*forward_fn)(const double *, size_t, const double *, double *, void *);
typedef size_t (*size_fn)(size_t);
typedef void (*init_fn)(double *, uint64_t);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *sym(void *h, const char *model, const char *what)
{
    char name[256];
    snprintf(name, sizeof name, "%s_%s", model, what);
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "python_call: %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: python_call LIB MODEL BATCH CALLS\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "python_call: %s\n", dlerror());
        return 1;
    }
    const char *model = argv[2];
    size_t batch = strtoul(argv[3], NULL, 10), calls = strtoul(argv[4], NULL, 10);
    const spdl_model *(*desc)(void) = (const spdl_model *(*)(void))sym(h, model, "model");
    size_t nin = desc()->nin, nout = desc()->nout, nparam = desc()->nparam;
    forward_fn fwd = (forward_fn)sym(h, model, "forward");
    size_fn ws = (size_fn)sym(h, model, "work_size");
    init_fn init = (init_fn)sym(h, model, "init");
    double *theta = malloc(sizeof(double) * (nparam ? nparam : 1));
    double *x = malloc(sizeof(double) * batch * nin), *y = malloc(sizeof(double) * batch * nout);
    void *work = malloc(ws(batch));
    if (!theta || !x || !y || !work)
        return 1;
    init(theta, 0);
    for (size_t i = 0; i < batch * nin; i++)
        x[i] = (double)(i % 17) / 17.0;
    double t[7];
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (size_t c = 0; c < calls; c++)
            if (fwd(theta, batch, x, y, work))
                return 1;
        t[r] = (now() - t0) / (double)calls * 1e9;
    }
    qsort(t, 7, sizeof t[0], cmp);
    printf("ns_per_call=%.1f\n", t[3]);
    free(theta), free(x), free(y), free(work);
    dlclose(h);
    return 0;
}
