/* driver.c - spdl_main: the command line of DESIGN §5 (one table of commands and
 * one of options, which the parser reads and --help prints), eval and predict.
 * train lives in train.c, plot in plot.c. */
#include "driver.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "levels.h"
#include "pool.h"
#include "weights.h"

int spdl_error(const spdl_args *a, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!spdl_ranks_hold(a->ranks, msg))
        fprintf(stderr, "%s: error: %s\n", a->prog, msg);
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
    /* a coarser grid level reads the finest level's data, restricted */
    const spdl_model *fine = a->nlevels > 1 ? a->levels[a->nlevels - 1] : m;
    int coarser = spdl_level_grid(m, fine) > 1;
    spdl_data_layout layout = spdl_data_layout_of(coarser ? fine : m);
    int rc = spdl_data_load_layout(spec, &layout, a->seed, d, err, sizeof err);
    if (rc)
        spdl_error(a, "%s", err);
    else if (d->n == 0) {
        spdl_data_free(d);
        rc = spdl_error(a, "%s holds no samples", spec);
    }
    if (spdl_ranks_agree(a->ranks, rc)) {
        if (!rc)
            spdl_data_free(d);
        return 1;
    }
    if (a->ranks) { /* every rank trains on rank 0's data, or none does */
        uint64_t h = spdl_hash_bytes(SPDL_HASH_START, &d->n, sizeof d->n);
        h = spdl_hash_bytes(h, d->x, sizeof(double) * d->n * d->nin);
        if (d->t)
            h = spdl_hash_bytes(h, d->t, sizeof(double) * d->n * d->ntarget);
        int which = 0;
        if (!spdl_ranks_same(a->ranks, h, &which)) {
            spdl_data_free(d);
            if (spdl_ranks_rank(a->ranks) == 0)
                spdl_error(a, "the data %s on rank %d differ from rank 0's (every rank reads its own copy)", spec, which);
            return 1;
        }
    }
    if (coarser) {
        spdl_data all = *d;
        rc = spdl_restrict_data(m, fine, &all, d);
        spdl_data_free(&all);
        if (rc)
            return spdl_error(a, "out of memory");
    }
    return 0;
}

int spdl_get_weights(const spdl_model *m, const spdl_args *a, const char *path, double *theta)
{
    char err[512];
    int differs = 0, rc = 0;
    if (spdl_ranks_rank(a->ranks) == 0 && (rc = spdl_weights_load(path, m, theta, NULL, NULL, &differs, err, sizeof err)))
        spdl_error(a, "%s", err);
    if (spdl_ranks_agree(a->ranks, rc))
        return 1;
    spdl_ranks_bcast(a->ranks, theta, sizeof(double) * m->nparam);
    if (differs)
        fprintf(stderr, "%s: warning: %s was trained from different source text of model '%s'\n", a->prog, path, m->name);
    return 0;
}

int spdl_evaluate(spdl_tiles *tl, const spdl_model *m, const double *theta, const spdl_data *d, double *loss,
                  double *acc, long *confusion)
{
    /* in parts of whole tiles that fit the tiles' largest batch; the tiles'
       sums are added in order across the parts, so the parts do not matter */
    size_t tile = spdl_tiles_tile(tl), part = spdl_evaluate_part(d->n, tile);
    double *y = malloc(sizeof(double) * part * m->nout);
    if (!y)
        return SPDL_ENOMEM;
    double total = 0, lp = 0;
    long right = 0;
    if (confusion)
        memset(confusion, 0, sizeof(long) * (size_t)m->nclass * (size_t)m->nclass);
    for (size_t s = 0; s < d->n; s += part) {
        size_t nb = d->n - s < part ? d->n - s : part;
        const double *x = d->x + s * m->nin, *t = d->t ? d->t + s * m->ntarget : NULL;
        int rc = spdl_tiles_losses(tl, theta, nb, x, t, y, &total, &lp);
        if (rc || !isfinite(total)) {
            free(y);
            return rc && rc != SPDL_ENONFINITE ? rc : SPDL_ENONFINITE;
        }
        for (size_t i = 0; m->nclass && i < nb; i++) {
            size_t best = 0;
            for (size_t k = 1; k < m->nout; k++)
                if (y[i * m->nout + k] > y[i * m->nout + best])
                    best = k;
            int c = (int)t[i * m->ntarget];
            right += (int)best == c;
            if (confusion && best < (size_t)m->nclass)
                confusion[c * m->nclass + (int)best]++;
        }
    }
    free(y);
    *loss = total / (double)d->n + lp;
    *acc = m->nclass ? (double)right / (double)d->n : NAN;
    return isfinite(*loss) ? SPDL_OK : SPDL_ENONFINITE;
}

size_t spdl_evaluate_part(size_t n, size_t tile)
{
    size_t part = (size_t)SPDL_EVAL_PART / tile * tile;
    return n < part ? n : part;
}

int spdl_new_tiles(const spdl_model *m, const spdl_args *a, size_t max_batch, spdl_tiles **out)
{
    int rc = spdl_tiles_new(m, a->threads, max_batch, out);
    if (rc == SPDL_ENOTSUP)
        spdl_error(a, "model '%s' was built by an older spdlc (it has no M_tile_* functions): build it again", m->name);
    else if (rc == SPDL_ENOMEM)
        spdl_error(a, "out of memory (for %d threads' work buffers)", a->threads);
    else if (rc)
        spdl_error(a, "cannot start %d threads: %s", a->threads, strerror(errno));
    else if ((rc = spdl_tiles_set_ranks(*out, a->ranks)))
        spdl_error(a, "out of memory (for the buffers of %d ranks)", spdl_ranks_size(a->ranks));
    if (spdl_ranks_agree(a->ranks, rc)) {
        spdl_tiles_free(*out);
        *out = NULL;
        return 1;
    }
    return 0;
}

static int cmd_eval(const spdl_model *m, const spdl_args *a)
{
    spdl_data d;
    if (spdl_get_data(m, a, a->data, &d))
        return 1;
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta);
    spdl_tiles *tl = NULL;
    long *conf = calloc((size_t)(m->nclass ? m->nclass * m->nclass : 1), sizeof *conf);
    int status = 1;
    if (!theta || !conf) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta) || spdl_new_tiles(m, a, spdl_evaluate_part(d.n, m->tile ? m->tile : 64), &tl))
        goto done;
    double loss, acc;
    int rc = spdl_evaluate(tl, m, theta, &d, &loss, &acc, conf);
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
    spdl_tiles_free(tl);
    free(theta);
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
    spdl_tiles *tl = NULL;
    double *y = malloc(sizeof(double) * d.n * m->nout);
    int status = 1;
    FILE *out = stdout;
    if (!theta || !y) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta) || spdl_new_tiles(m, a, d.n, &tl))
        goto done;
    size_t bad = 0;
    int rc = spdl_tiles_forward(tl, theta, d.n, d.x, y, &bad);
    if (rc) {
        spdl_error(a, "forward pass failed at sample %zu: %s", bad, spdl_strerror(rc));
        goto done;
    }
    if (spdl_ranks_rank(a->ranks) != 0) { /* rank 0 writes the rows */
        status = 0;
        goto done;
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
    spdl_tiles_free(tl);
    free(theta);
    free(y);
    return status;
}

/* ---- the command line ------------------------------------------------------------
 * One table of commands and one of options: the parser reads it, and --help
 * prints it (all commands, or one command's options with their defaults). */

enum { C_TRAIN = 1, C_EVAL = 2, C_PREDICT = 4, C_CERTIFY = 8, C_INVERT = 16, C_SAMPLE = 32, C_PLOT = 64, C_ALL = 127,
       C_THREADED = C_TRAIN | C_EVAL | C_PREDICT | C_CERTIFY };

static const struct command {
    const char *name;
    unsigned bit;
    const char *what;
} commands[] = {
    {"train", C_TRAIN, "minibatch training with a progress line, a log (W.log.csv) and checkpoints"},
    {"eval", C_EVAL, "loss, accuracy and confusion matrix"},
    {"predict", C_PREDICT, "one row of outputs per input"},
    {"certify", C_CERTIFY, "norm bounds, Lipschitz bound and certified accuracy at radius E (Euclidean)"},
    {"invert", C_INVERT, "latents z = f(x) (CSV or .npy) and the round trip's error (models proved invertible)"},
    {"sample", C_SAMPLE, "x = f^-1(z), z ~ N(0, I) (densities)"},
    {"plot", C_PLOT, "decision regions, trajectories through the layers and training curves (gnuplot)"},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

typedef enum { O_HELP, O_DATA, O_WEIGHTS, O_OUT, O_RESUME, O_EPOCHS, O_BATCH, O_LR, O_DECAY, O_NOISE, O_OPT, O_SCHEDULE, O_VAL,
               O_SEED, O_EPS, O_COUNT, O_CKPT, O_THREADS, O_QUIET, O_MULTILEVEL, O_LEVEL_EPOCHS, O_PROLONG,
               O_COUNT_IDS } opt_id;
typedef enum { V_NONE, V_TEXT, V_NUMBER, V_INT, V_CHOICE } value_kind;

static const struct option {
    opt_id id;
    const char *name, *alias; /* "--out", "-o" */
    value_kind kind;
    const char *arg;          /* the value's name in the help; for V_CHOICE the choices, '|'-separated */
    double lo, hi;            /* V_NUMBER, V_INT: the range */
    unsigned cmds, required;  /* the commands it applies to, and those that need it (an option may
                                 have one entry per group of commands, for its help) */
    const char *help;
} options[] = {
    {O_DATA, "--data", NULL, V_TEXT, "D", 0, 0, C_ALL & ~C_SAMPLE, C_ALL & ~C_SAMPLE,
     "the data: a .csv or .npy file or builtin:spirals|moons|circles|digits|mnist|waves|pointsets "
     "(options: see below)"},
    {O_WEIGHTS, "--weights", NULL, V_TEXT, "W", 0, 0, C_TRAIN, 0,
     "where the checkpoints go without --out (default MODEL.safetensors)"},
    {O_WEIGHTS, "--weights", NULL, V_TEXT, "W", 0, 0, C_ALL & ~C_TRAIN, 0,
     "the weights, a safetensors file (default MODEL.safetensors)"},
    {O_OUT, "--out", "-o", V_TEXT, "W", 0, 0, C_TRAIN, 0, "where the checkpoints go (default: --weights)"},
    {O_OUT, "--out", "-o", V_TEXT, "F", 0, 0, C_PREDICT | C_INVERT | C_SAMPLE, 0,
     "where the rows go: F.csv or F.npy (default: CSV on stdout)"},
    {O_OUT, "-o", "--out", V_TEXT, "out.png", 0, 0, C_PLOT, C_PLOT,
     "the picture; its data and gnuplot script go next to it (out.*.csv, out.gp)"},
    {O_RESUME, "--resume", NULL, V_TEXT, "W", 0, 0, C_TRAIN, 0,
     "continue the run that wrote checkpoint W (its optimiser, generator and epoch)"},
    {O_EPOCHS, "--epochs", NULL, V_INT, "N", 1, SPDL_EPOCHS_MAX, C_TRAIN, 0,
     "epochs in all, counting those of a resumed run (default 100)"},
    {O_BATCH, "--batch", NULL, V_INT, "B", 1, 1e7, C_TRAIN, 0, "samples per step (default 64)"},
    {O_LR, "--lr", NULL, V_NUMBER, "X", 1e-300, 1e300, C_TRAIN, 0,
     "base learning rate (default 1e-3 for adam, 0.1 for sgd; a resumed run's own)"},
    {O_DECAY, "--weight-decay", NULL, V_NUMBER, "X", 0, 1e3, C_TRAIN, 0,
     "decoupled weight decay: each step also takes lr * X * theta off theta (AdamW; default 0, a resumed run's own)"},
    {O_NOISE, "--noise", NULL, V_NUMBER, "S", 0, 1e3, C_TRAIN, 0,
     "Gaussian noise of standard deviation S added to each step's inputs, drawn afresh every step (data "
     "augmentation; default 0, a resumed run's own)"},
    {O_OPT, "--opt", NULL, V_CHOICE, "adam|sgd", 0, 0, C_TRAIN, 0, "the optimiser (default adam)"},
    {O_SCHEDULE, "--schedule", NULL, V_CHOICE, "constant|cosine", 0, 0, C_TRAIN, 0,
     "the learning rate over the run: constant, or cosine annealed to 0 over --epochs (default constant)"},
    {O_VAL, "--val", NULL, V_NUMBER, "F", 0, 0.9, C_TRAIN, 0,
     "fraction of the data held out for validation (default 0.1)"},
    {O_SEED, "--seed", NULL, V_INT, "S", 0, 9007199254740992.0, C_ALL, 0,
     "seed of the initialisation, shuffles, splits and samples (default 1)"},
    {O_EPS, "--eps", NULL, V_TEXT, "E[,E...]", 0, 0, C_CERTIFY, 0, "radii to certify at (default 0.1)"},
    {O_COUNT, "-n", NULL, V_INT, "N", 1, 1e9, C_SAMPLE, 0, "how many samples (default 1000)"},
    {O_CKPT, "--checkpoint-every", NULL, V_INT, "K", 1, SPDL_EPOCHS_MAX, C_TRAIN, 0,
     "epochs between checkpoints (default 1; the last epoch always writes one)"},
    {O_THREADS, "--threads", NULL, V_INT, "N", 1, SPDL_THREADS_MAX, C_THREADED, 0,
     "threads, each taking tiles of 64 samples (default: $SPDL_THREADS, else every CPU this process may "
     "use; a rank's under mpirun); results are bit-identical for any N"},
    {O_MULTILEVEL, "--multilevel", NULL, V_NONE, NULL, 0, 0, C_TRAIN, 0,
     "train the levels of spdlc build --levels coarsest first, each prolonged to the next (twice the layers), or "
     "those of --grid-levels (images restricted by 2x2 means, the same parameters)"},
    {O_LEVEL_EPOCHS, "--level-epochs", NULL, V_TEXT, "E1,...,EL", 0, 0, C_TRAIN, 0,
     "with --multilevel: the epochs of each level (default: --epochs for each)"},
    {O_PROLONG, "--prolong", NULL, V_CHOICE, "constant|linear", 0, 0, C_TRAIN, 0,
     "with --multilevel: a layer's parameters onto the next level's two halves of it as copies, or "
     "interpolated linearly in time (default constant)"},
    {O_QUIET, "--quiet", "-q", V_NONE, NULL, 0, 0, C_TRAIN, 0, "no progress and no summary"},
    {O_HELP, "--help", "-h", V_NONE, NULL, 0, 0, C_ALL, 0, "this help"},
};
enum { NOPTIONS = sizeof options / sizeof options[0] };

static const char data_help[] =
    "D is a .csv or .npy file or builtin:spirals|moons|circles|digits|mnist|waves|pointsets,\n"
    "with options like builtin:spirals?n=2000&noise=0.1, split=F&part=train|test for any\n"
    "source, rotate=90|180|270|random|DEGREES and mirror=1 for images, shift=S|random for\n"
    "signals and permute=reverse|random for sets (runtime/DATA.md).\n";

static const struct command *find_command(const char *s)
{
    for (int c = 0; c < NCOMMANDS; c++)
        if (!strcmp(s, commands[c].name))
            return &commands[c];
    return NULL;
}

/* "--epochs N" or "--out F" (with its alias "-o") into buf */
static const char *option_text(const struct option *o, int alias, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s%s%s", o->name, alias && o->alias ? ", " : "", alias && o->alias ? o->alias : "");
    if (o->arg && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " %s", o->arg);
    return buf;
}

/* "train   --data D [--epochs N] ...", wrapped under the first option */
static void print_synopsis(FILE *f, const struct command *c)
{
    int col = fprintf(f, "  %-8s", c->name), indent = col;
    for (int i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        if (!(o->cmds & c->bit) || o->id == O_HELP)
            continue;
        char t[96], w[100];
        option_text(o, 0, t, sizeof t);
        snprintf(w, sizeof w, (o->required & c->bit) ? "%s" : "[%s]", t);
        if (col + 1 + (int)strlen(w) > 100) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            col += fprintf(f, " ");
        }
        col += fprintf(f, "%s", w);
    }
    fprintf(f, "\n");
}

static void print_help(const char *prog, const struct command *c)
{
    if (!c) {
        printf("usage: %s COMMAND [options]   (%s COMMAND --help: its options)\n\ncommands:\n", prog, prog);
        for (int k = 0; k < NCOMMANDS; k++)
            print_synopsis(stdout, &commands[k]);
        printf("\n%sW is a safetensors file (default: MODEL.safetensors).\n", data_help);
        if (spdl_ranks_available())
            printf("\nmpirun -np P %s train|eval|predict|certify ...: P ranks, each taking a contiguous part of every\n"
                   "batch's tiles; bit-identical to one process; rank 0 alone prints and writes files.\n", prog);
        else
            printf("\nBuilt without MPI (spdlc build --mpi makes a program for mpirun -np P).\n");
        return;
    }
    printf("usage: %s %s [options]\n%s.\n\n", prog, c->name, c->what);
    print_synopsis(stdout, c);
    printf("\noptions:\n");
    for (int i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        if (!(o->cmds & c->bit))
            continue;
        char t[96], text[400];
        option_text(o, 1, t, sizeof t);
        snprintf(text, sizeof text, "%s%s", o->help, (o->required & c->bit) ? " (required)" : "");
        /* the option, then its help wrapped at 100 columns from column 27 */
        int col = printf("  %s", t);
        const char *w = text;
        while (*w) {
            size_t len = strlen(w), take = len;
            if (len > 73) {
                take = 73;
                while (take > 0 && w[take] != ' ')
                    take--;
                if (take == 0)
                    take = 73;
            }
            if (col > 26) {
                printf("\n");
                col = 0;
            }
            printf("%*s%.*s", 27 - col, "", (int)take, w);
            col = 27 + (int)take;
            w += take;
            while (*w == ' ')
                w++;
        }
        printf("\n");
    }
    if (c->bit & ~C_SAMPLE)
        printf("\n%s", data_help);
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

/* The position of v among o's choices ("adam|sgd"), or -1. */
static int choice_index(const struct option *o, const char *v)
{
    size_t n = strlen(v);
    int k = 0;
    for (const char *c = o->arg; *c; k++) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncmp(c, v, n))
            return k;
        c += len + (bar != NULL);
    }
    return -1;
}

static void set_option(spdl_args *a, opt_id id, const char *v, double num, int choice)
{
    switch (id) {
    case O_DATA: a->data = v; break;
    case O_WEIGHTS: a->weights = v; break;
    case O_OUT: a->out = v; break;
    case O_RESUME: a->resume = v; break;
    case O_EPS: a->eps_list = v; break;
    case O_EPOCHS: a->epochs = (int)num; break;
    case O_BATCH: a->batch = (size_t)num; break;
    case O_LR: a->lr = num; break;
    case O_DECAY: a->decay = num; break;
    case O_NOISE: a->noise = num; break;
    case O_VAL: a->val = num; break;
    case O_SEED: a->seed = (uint64_t)num; break;
    case O_COUNT: a->count = (long)num; break;
    case O_CKPT: a->ckpt_every = (int)num; break;
    case O_THREADS: a->threads = (int)num; break;
    case O_OPT: a->opt = choice == 0 ? SPDL_ADAM : SPDL_SGD; break;
    case O_SCHEDULE: a->cosine = choice == 1; break;
    case O_QUIET: a->quiet = 1; break;
    case O_MULTILEVEL: a->multilevel = 1; break;
    case O_LEVEL_EPOCHS: break; /* parsed once the levels are known */
    case O_PROLONG: a->prolong_linear = choice == 1; break;
    case O_HELP:
    case O_COUNT_IDS: break;
    }
}

/* --level-epochs E1,...,EL into a->level_epochs: L numbers for the L levels. */
static int parse_level_epochs(spdl_args *a, const char *v)
{
    int n = 0;
    for (const char *c = v;; n++) {
        char *end;
        errno = 0;
        long e = strtol(c, &end, 10);
        if (end == c || (*end && *end != ',') || errno || e < 1 || e > SPDL_EPOCHS_MAX || n == SPDL_LEVELS_MAX)
            return usage(a, "bad value for --level-epochs: '%s' (expected one whole number of epochs from 1 to 10000000 "
                            "per level, comma-separated)", v);
        if (n < a->nlevels)
            a->level_epochs[n] = (int)e;
        if (!*end)
            break;
        c = end + 1;
    }
    if (n + 1 != a->nlevels) {
        char msg[200];
        snprintf(msg, sizeof msg, "--level-epochs '%%s' gives %d number%s, but the program has %d levels", n + 1,
                 n ? "s" : "", a->nlevels);
        return usage(a, msg, v);
    }
    return 0;
}

/* Which level's model reads the weights file of a command other than train:
 * the level it was saved at by train --multilevel, else the finest. */
static const spdl_model *model_for_weights(const spdl_args *a)
{
    int pick = a->nlevels - 1; /* under MPI rank 0 reads the file, and says */
    char err[512];
    int level = 0, levels = 0;
    if (a->nlevels > 1 && spdl_ranks_rank(a->ranks) == 0 &&
        !spdl_weights_level(a->weights, &level, &levels, err, sizeof err) && levels == a->nlevels && level < levels) {
        pick = level - 1;
        char what[96];
        spdl_level_describe(a->levels, a->nlevels, level - 1, what, sizeof what);
        fprintf(stderr, "%s: note: %s holds level %d of %d (%s): using that level\n", a->prog, a->weights, level,
                levels, what);
    }
    if (a->nlevels > 1)
        spdl_ranks_bcast(a->ranks, &pick, sizeof pick);
    return a->levels[pick];
}

int spdl_main(const spdl_model *m, int argc, char **argv)
{
    return spdl_main_levels(&m, 1, argc, argv);
}

static int run_main(const spdl_model *const *levels, int nlevels, int argc, char **argv, const char *prog,
                    spdl_ranks *ranks);

static const char *prog_name(const spdl_model *const *levels, int nlevels, int argc, char **argv)
{
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    const spdl_model *m = levels && nlevels >= 1 && nlevels <= SPDL_LEVELS_MAX ? levels[nlevels - 1] : NULL;
    return argc > 0 ? (slash ? slash + 1 : argv[0]) : m ? m->name : "spdl";
}

/* Under mpirun (a program of spdlc build --mpi) every rank runs the same
   command line; ranks.h says who prints and who writes. */
int spdl_main_levels(const spdl_model *const *levels, int nlevels, int argc, char **argv)
{
    const char *prog = prog_name(levels, nlevels, argc, argv);
    spdl_ranks *ranks = NULL;
    if (spdl_ranks_start(&argc, &argv, prog, &ranks))
        return 1;
    return spdl_ranks_end(ranks, run_main(levels, nlevels, argc, argv, prog, ranks));
}

static int run_main(const spdl_model *const *levels, int nlevels, int argc, char **argv, const char *prog,
                    spdl_ranks *ranks)
{
    spdl_args a = {0};
    const spdl_model *m = levels && nlevels >= 1 && nlevels <= SPDL_LEVELS_MAX ? levels[nlevels - 1] : NULL;
    a.prog = prog;
    a.ranks = ranks;
    if (ranks) { /* the same command line on every rank, or none runs */
        uint64_t h = SPDL_HASH_START;
        for (int i = 1; i < argc; i++)
            h = spdl_hash_bytes(h, argv[i], strlen(argv[i]) + 1);
        int which = 0;
        if (!spdl_ranks_same(ranks, h, &which)) {
            if (spdl_ranks_rank(ranks) == 0)
                spdl_error(&a, "rank %d was started with other arguments than rank 0's (mpirun runs one command line)",
                           which);
            return 1;
        }
    }
    a.epochs = 100;
    a.batch = 64;
    a.opt = SPDL_ADAM;
    a.decay = -1; /* not given: 0, or a resumed run's own */
    a.noise = -1; /* likewise */
    a.val = 0.1;
    a.seed = 1;
    a.count = 1000;
    a.ckpt_every = 1;
    a.levels = levels;
    a.nlevels = nlevels;
    char err[512];
    if (!m || spdl_levels_check(levels, nlevels, err, sizeof err)) {
        fprintf(stderr, "%s: error: %s\n", a.prog, m ? err : "a program needs 1 to 16 levels");
        return 1;
    }
    char default_weights[512];
    snprintf(default_weights, sizeof default_weights, "%s.safetensors", m->name);
    /* --help anywhere: the command's help if a command is named, else all */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            const struct command *c = NULL;
            for (int k = 1; k < argc && !c; k++)
                c = find_command(argv[k]);
            print_help(a.prog, c);
            return 0;
        }
    const struct command *cmd = NULL;
    const char *given[O_COUNT_IDS] = {0}; /* the spelling used, for the warning below */
    const char *level_epochs_text = NULL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const struct option *o = NULL;
        for (int k = 0; k < NOPTIONS && !o; k++)
            if (!strcmp(s, options[k].name) || (options[k].alias && !strcmp(s, options[k].alias)))
                o = &options[k];
        if (!o) {
            if (s[0] == '-')
                return usage(&a, "unknown option '%s'", s);
            if (cmd)
                return usage(&a, "unexpected argument '%s'", s);
            if (!(cmd = find_command(s)))
                return usage(&a, "unknown command '%s' (the commands are train, eval, predict, certify, invert, sample "
                                 "and plot)", s);
            continue;
        }
        given[o->id] = s;
        const char *v = NULL;
        double num = 0;
        int choice = -1;
        if (o->kind != V_NONE) {
            if (i + 1 >= argc)
                return usage(&a, "option '%s' needs a value", s);
            v = argv[++i];
        }
        if ((o->kind == V_NUMBER || o->kind == V_INT) &&
            (parse_number(v, &num) || num < o->lo || num > o->hi || (o->kind == V_INT && num != floor(num)))) {
            char msg[160];
            snprintf(msg, sizeof msg, "bad value for %s: '%%s' (expected %s from %.17g to %.17g)", s,
                     o->kind == V_INT ? "an integer" : "a number", o->lo, o->hi);
            return usage(&a, msg, v);
        }
        if (o->kind == V_CHOICE && (choice = choice_index(o, v)) < 0) {
            char msg[160], alt[64];
            snprintf(alt, sizeof alt, "%s", o->arg);
            char *bar = strchr(alt, '|');
            if (bar)
                *bar = '\0';
            snprintf(msg, sizeof msg, "%s takes %s or %s, not '%%s'", s, alt, bar ? bar + 1 : "");
            return usage(&a, msg, v);
        }
        set_option(&a, o->id, v, num, choice);
        if (o->id == O_LEVEL_EPOCHS)
            level_epochs_text = v;
    }
    if (!cmd)
        return usage(&a, "%s", "no command given (train, eval, predict, certify, invert, sample or plot)");
    a.cmd = cmd->name;
    unsigned applies[O_COUNT_IDS] = {0};
    for (int k = 0; k < NOPTIONS; k++)
        applies[options[k].id] |= options[k].cmds;
    for (int id = 0; id < O_COUNT_IDS; id++)
        if (given[id] && !(applies[id] & cmd->bit))
            fprintf(stderr, "%s: warning: '%s' does nothing for '%s' (%s %s --help lists its options)\n", a.prog,
                    given[id], cmd->name, a.prog, cmd->name);
    for (int k = 0; k < NOPTIONS; k++)
        if (!given[options[k].id] && (options[k].required & cmd->bit)) {
            char msg[96];
            snprintf(msg, sizeof msg, "'%%s' needs %s %s", options[k].name, options[k].arg);
            return usage(&a, msg, cmd->name);
        }
    if (!a.weights)
        a.weights = default_weights;
    if (a.multilevel && nlevels == 1)
        return usage(&a, "%s", "--multilevel trains the levels of a program built with spdlc build --levels L (or "
                               "--grid-levels L); this one has one level");
    if (!a.multilevel && (given[O_LEVEL_EPOCHS] || given[O_PROLONG]) && cmd->bit == C_TRAIN)
        return usage(&a, "'%s' is an option of train --multilevel", given[O_LEVEL_EPOCHS] ? given[O_LEVEL_EPOCHS]
                                                                                           : given[O_PROLONG]);
    if (a.multilevel && given[O_PROLONG] && spdl_level_grid(levels[0], m) > 1)
        return usage(&a, "%s", "--prolong is for levels in depth: the grid levels of this program (spdlc build "
                               "--grid-levels) share their parameters unchanged");
    if (a.multilevel && given[O_LEVEL_EPOCHS] && given[O_EPOCHS])
        return usage(&a, "%s", "give --level-epochs (each level's) or --epochs (the same for every level), not both");
    for (int l = 0; l < nlevels; l++)
        a.level_epochs[l] = a.epochs;
    if (a.multilevel && given[O_LEVEL_EPOCHS]) {
        int rc = parse_level_epochs(&a, level_epochs_text);
        if (rc)
            return rc;
    }
    if (cmd->bit & C_THREADED) {
        int cpus = spdl_cpu_count();
        if (!given[O_THREADS]) { /* SPDL_THREADS, or every CPU */
            char err[160];
            if (!(a.threads = spdl_threads_default(err, sizeof err)))
                return usage(&a, "%s", err);
        } else if (a.threads > cpus) {
            fprintf(stderr, "%s: note: --threads %d is more than the %d CPU%s this process may use\n", a.prog,
                    a.threads, cpus, cpus == 1 ? "" : "s");
        }
        a.threads_given = given[O_THREADS] != NULL;
    }
    if (a.ranks && (cmd->bit & ~C_THREADED)) { /* invert, sample, plot: rank 0 alone */
        if (spdl_ranks_rank(a.ranks) != 0)
            return 0;
        a.ranks = NULL;
    }
    if (cmd->bit != C_TRAIN)
        m = model_for_weights(&a);
    switch (cmd->bit) {
    case C_TRAIN: return spdl_cmd_train(m, &a);
    case C_EVAL: return cmd_eval(m, &a);
    case C_PREDICT: return cmd_predict(m, &a);
    case C_CERTIFY: return spdl_cmd_certify(m, &a);
    case C_INVERT: return spdl_cmd_invert(m, &a);
    case C_SAMPLE: return spdl_cmd_sample(m, &a);
    default: return spdl_cmd_plot(m, &a);
    }
}
