/* driver.c - spdl_main: the command line of DESIGN §5, eval and predict.
 * train lives in train.c, plot in plot.c. */
#include "driver.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weights.h"

static const char usage_text[] =
    "usage: %s COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  train   --data D [--epochs N] [--batch B] [--lr X] [--opt adam|sgd]\n"
    "          [--schedule constant|cosine] [--val F] [--seed S] [--out W] [--resume W] [--quiet]\n"
    "  eval    --data D --weights W          loss, accuracy and confusion matrix\n"
    "  predict --data D --weights W [--out F.csv|F.npy]   one row of outputs per input\n"
    "  certify --data D --weights W [--eps E[,E...]]   norm bounds, Lipschitz bound and\n"
    "          certified accuracy at radius E (Euclidean)\n"
    "  invert  --weights W --data D [--out F]   latents z = f(x) (CSV or .npy) and the\n"
    "          round trip's error (models proved invertible)\n"
    "  sample  --weights W -n N [--seed S] [--out F]   x = f^-1(z), z ~ N(0, I) (densities)\n"
    "  plot    --weights W --data D -o out.png\n"
    "\n"
    "D is a .csv or .npy file or builtin:spirals|moons|circles|digits, with options\n"
    "like builtin:spirals?n=2000&noise=0.1 and split=F&part=train|test for any source.\n"
    "W is a safetensors file (default: MODEL.safetensors).\n";

int spdl_error(const spdl_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", a->prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

double spdl_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int spdl_get_data(const spdl_model *m, const spdl_args *a, const char *spec, spdl_data *d)
{
    char err[512];
    int rc = spdl_data_load_ex(spec, m->nin, m->ntarget, m->ntarget == 0 ? -1 : m->nclass, a->seed, d, err, sizeof err);
    if (rc)
        return spdl_error(a, "%s", err);
    if (d->n == 0) {
        spdl_data_free(d);
        return spdl_error(a, "%s holds no samples", spec);
    }
    return 0;
}

int spdl_get_weights(const spdl_model *m, const spdl_args *a, const char *path, double *theta)
{
    char err[512];
    int differs = 0;
    int rc = spdl_weights_load(path, m, theta, NULL, NULL, &differs, err, sizeof err);
    if (rc)
        return spdl_error(a, "%s", err);
    if (differs)
        fprintf(stderr, "%s: warning: %s was trained from different source text of model '%s'\n", a->prog, path, m->name);
    return 0;
}

int spdl_evaluate(const spdl_model *m, const double *theta, const spdl_data *d, void *work, size_t batch,
                  double *loss, double *acc, long *confusion)
{
    double *y = malloc(sizeof(double) * batch * m->nout);
    if (!y)
        return SPDL_ENOMEM;
    double total = 0;
    long right = 0;
    if (confusion)
        memset(confusion, 0, sizeof(long) * (size_t)m->nclass * (size_t)m->nclass);
    for (size_t s = 0; s < d->n; s += batch) {
        size_t nb = d->n - s < batch ? d->n - s : batch;
        const double *x = d->x + s * m->nin, *t = d->t ? d->t + s * m->ntarget : NULL;
        double l = m->loss_grad(theta, nb, x, t, NULL, work);
        if (!isfinite(l) || !isfinite(total + l * (double)nb)) {
            free(y);
            return SPDL_ENONFINITE;
        }
        total += l * (double)nb;
        if (m->nclass) {
            int rc = m->forward(theta, nb, x, y, work);
            if (rc) {
                free(y);
                return rc;
            }
            for (size_t i = 0; i < nb; i++) {
                size_t best = 0;
                for (size_t k = 1; k < m->nout; k++)
                    if (y[i * m->nout + k] > y[i * m->nout + best])
                        best = k;
                int c = (int)t[i];
                right += (int)best == c;
                if (confusion && best < (size_t)m->nclass)
                    confusion[c * m->nclass + (int)best]++;
            }
        }
    }
    free(y);
    *loss = total / (double)d->n;
    *acc = m->nclass ? (double)right / (double)d->n : NAN;
    return SPDL_OK;
}

static int cmd_eval(const spdl_model *m, const spdl_args *a)
{
    spdl_data d;
    if (spdl_get_data(m, a, a->data, &d))
        return 1;
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta);
    size_t batch = 256;
    void *work = malloc(m->work_size(batch));
    long *conf = calloc((size_t)(m->nclass ? m->nclass * m->nclass : 1), sizeof *conf);
    int status = 1;
    if (!theta || !work || !conf) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta))
        goto done;
    double loss, acc;
    int rc = spdl_evaluate(m, theta, &d, work, batch, &loss, &acc, conf);
    if (rc) {
        spdl_error(a, "evaluation failed: %s", rc == SPDL_ENONFINITE ? "the loss is not finite (NaN or infinite)"
                                                                      : spdl_strerror(rc));
        goto done;
    }
    printf("data      %s (%zu samples)\n", d.desc, d.n);
    printf("loss      %.6g\n", loss);
    if (m->nclass) {
        printf("accuracy  %.4f (%ld of %zu)\n", acc, (long)lround(acc * (double)d.n), d.n);
        printf("confusion (rows: true class, columns: predicted)\n       ");
        for (int j = 0; j < m->nclass; j++)
            printf(" %6d", j);
        printf("\n");
        for (int i = 0; i < m->nclass; i++) {
            printf("  %4d ", i);
            for (int j = 0; j < m->nclass; j++)
                printf(" %6ld", conf[i * m->nclass + j]);
            printf("\n");
        }
    }
    status = 0;
done:
    spdl_data_free(&d);
    free(theta);
    free(work);
    free(conf);
    return status;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int cmd_predict(const spdl_model *m, const spdl_args *a)
{
    spdl_data d;
    if (spdl_get_data(m, a, a->data, &d))
        return 1;
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta);
    size_t batch = 256;
    void *work = malloc(m->work_size(batch));
    double *y = malloc(sizeof(double) * d.n * m->nout);
    int status = 1;
    FILE *out = stdout;
    if (!theta || !work || !y) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta))
        goto done;
    for (size_t s = 0; s < d.n; s += batch) {
        size_t nb = d.n - s < batch ? d.n - s : batch;
        int rc = m->forward(theta, nb, d.x + s * m->nin, y + s * m->nout, work);
        if (rc) {
            spdl_error(a, "forward pass failed at sample %zu: %s", s, spdl_strerror(rc));
            goto done;
        }
    }
    if (a->out && ends_with(a->out, ".npy")) {
        char err[512];
        if (spdl_npy_write(a->out, y, d.n, m->nout, err, sizeof err)) {
            spdl_error(a, "%s", err);
            goto done;
        }
        status = 0;
        goto done;
    }
    if (a->out && !(out = fopen(a->out, "w"))) {
        spdl_error(a, "cannot write %s: %s", a->out, strerror(errno));
        out = stdout;
        goto done;
    }
    for (size_t k = 0; k < m->nout; k++)
        fprintf(out, "%sy%zu", k ? "," : "", k);
    fputc('\n', out);
    for (size_t i = 0; i < d.n; i++) {
        for (size_t k = 0; k < m->nout; k++)
            fprintf(out, "%s%.17g", k ? "," : "", y[i * m->nout + k]);
        fputc('\n', out);
    }
    status = 0;
    if (out != stdout && fclose(out) != 0)
        status = spdl_error(a, "cannot write %s: %s", a->out, strerror(errno));
    out = stdout;
done:
    if (out != stdout)
        fclose(out);
    spdl_data_free(&d);
    free(theta);
    free(work);
    free(y);
    return status;
}

static int usage(const spdl_args *a, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: error: ", a->prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run '%s --help' for usage)\n", a->prog);
    return 2;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int spdl_main(const spdl_model *m, int argc, char **argv)
{
    spdl_args a = {0};
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    a.prog = argc > 0 ? (slash ? slash + 1 : argv[0]) : m->name;
    a.epochs = 100;
    a.batch = 64;
    a.opt = SPDL_ADAM;
    a.val = 0.1;
    a.seed = 1;
    a.count = 1000;
    a.ckpt_every = 1;
    char default_weights[512];
    snprintf(default_weights, sizeof default_weights, "%s.safetensors", m->name);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double num;
#define VALUE() do { if (!v) return usage(&a, "option '%s' needs a value", s); i++; } while (0)
#define NUMBER(lo, hi) do { VALUE(); if (parse_number(v, &num) || num < (lo) || num > (hi)) \
            return usage(&a, "bad value for %s", s); } while (0)
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf(usage_text, a.prog);
            return 0;
        } else if (!strcmp(s, "--data")) {
            VALUE();
            a.data = v;
        } else if (!strcmp(s, "--weights")) {
            VALUE();
            a.weights = v;
        } else if (!strcmp(s, "--out") || !strcmp(s, "-o")) {
            VALUE();
            a.out = v;
        } else if (!strcmp(s, "--resume")) {
            VALUE();
            a.resume = v;
        } else if (!strcmp(s, "--epochs")) {
            NUMBER(1, 1e7);
            a.epochs = (int)num;
        } else if (!strcmp(s, "--batch")) {
            NUMBER(1, 1e7);
            a.batch = (size_t)num;
        } else if (!strcmp(s, "--lr")) {
            NUMBER(1e-300, 1e300);
            a.lr = num;
        } else if (!strcmp(s, "--val")) {
            NUMBER(0, 0.9);
            a.val = num;
        } else if (!strcmp(s, "--seed")) {
            NUMBER(0, 9007199254740992.0);
            a.seed = (uint64_t)num;
        } else if (!strcmp(s, "--eps")) {
            VALUE();
            a.eps_list = v;
        } else if (!strcmp(s, "-n")) {
            NUMBER(1, 1e9);
            a.count = (long)num;
        } else if (!strcmp(s, "--checkpoint-every")) {
            NUMBER(1, 1e7);
            a.ckpt_every = (int)num;
        } else if (!strcmp(s, "--opt")) {
            VALUE();
            if (!strcmp(v, "adam"))
                a.opt = SPDL_ADAM;
            else if (!strcmp(v, "sgd"))
                a.opt = SPDL_SGD;
            else
                return usage(&a, "--opt takes adam or sgd, not '%s'", v);
        } else if (!strcmp(s, "--schedule")) {
            VALUE();
            if (!strcmp(v, "cosine"))
                a.cosine = 1;
            else if (strcmp(v, "constant"))
                return usage(&a, "--schedule takes constant or cosine, not '%s'", v);
        } else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) {
            a.quiet = 1;
        } else if (s[0] == '-') {
            return usage(&a, "unknown option '%s'", s);
        } else if (!a.cmd) {
            a.cmd = s;
        } else {
            return usage(&a, "unexpected argument '%s'", s);
        }
#undef VALUE
#undef NUMBER
    }
    if (!a.cmd)
        return usage(&a, "%s", "no command given (train, eval, predict, certify, invert, sample or plot)");
    if (!a.weights)
        a.weights = default_weights;
    int needs_data = strcmp(a.cmd, "sample") != 0;
    if (needs_data && !a.data)
        return usage(&a, "'%s' needs --data", a.cmd);
    if (!strcmp(a.cmd, "train"))
        return spdl_cmd_train(m, &a);
    if (!strcmp(a.cmd, "eval"))
        return cmd_eval(m, &a);
    if (!strcmp(a.cmd, "predict"))
        return cmd_predict(m, &a);
    if (!strcmp(a.cmd, "certify"))
        return spdl_cmd_certify(m, &a);
    if (!strcmp(a.cmd, "invert"))
        return spdl_cmd_invert(m, &a);
    if (!strcmp(a.cmd, "sample"))
        return spdl_cmd_sample(m, &a);
    if (!strcmp(a.cmd, "plot")) {
        if (!a.out)
            return usage(&a, "%s", "'plot' needs -o out.png");
        return spdl_cmd_plot(m, &a);
    }
    return usage(&a, "unknown command '%s' (the commands are train, eval, predict, certify, invert, sample and plot)", a.cmd);
}
