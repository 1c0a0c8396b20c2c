/* train.c - `EXE train`: minibatch training with progress, a log, atomic
 * checkpoints and bit-identical resumption.
 *
 * Determinism: the shuffle generator, the optimiser's moments, the epoch
 * count and the schedule are saved in every checkpoint, and --epochs is the
 * total number of epochs. A run interrupted and resumed with the same
 * options gives the same bits as the run in one go, under either schedule.
 * Under the constant schedule, 10 epochs, then --resume and --epochs 20,
 * also gives the same bits as 20 epochs in one run; the cosine schedule
 * anneals over --epochs, so a resume that changes --epochs (or the schedule)
 * changes the learning rates of the epochs already trained, and train says
 * so when it resumes.
 *
 * Under MPI (ranks.h) every rank runs this same loop on the same data, with
 * the same shuffles, and gets the same gradient from spdl_tiles_loss_grad
 * (each step a collective over the ranks' tiles), so every rank's optimiser
 * makes the same update; rank 0 alone writes the log and the checkpoints,
 * and reads the checkpoint to resume, which it broadcasts. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "levels.h"
#include "rt_kernels.h"
#include "safetensors.h"
#include "weights.h"

enum { TRAIN_STATS_MAX = 2048 };

static const char *log_path(const char *weights, char *buf, size_t n)
{
    size_t len = strlen(weights);
    const char *ext = ".safetensors";
    size_t k = strlen(ext);
    if (len > k && strcmp(weights + len - k, ext) == 0)
        len -= k;
    snprintf(buf, n, "%.*s.log.csv", (int)len, weights);
    return buf;
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* A resumed run's log: the rows of the resumed run's log (src) up to its
 * checkpoint's epoch, written to dst (the same file, or the new run's), so
 * rows an interrupted run wrote after its last checkpoint do not repeat.
 * *seconds receives the kept last row's `seconds`, which the new rows continue.
 * A multilevel run's log counts epochs over its levels and adds their level.
 * Returns the log open for appending, or NULL (errno set). */
static const char log_header[] = "epoch,loss,accuracy,val_loss,val_accuracy,seconds";

static FILE *resume_log(const char *src, const char *dst, int epoch, int multilevel, double *seconds)
{
    *seconds = 0;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(src, "rb");
    if (f) {
        FILE *mem = open_memstream(&text, &len);
        char buf[4096];
        size_t n;
        while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, mem);
        fclose(f);
        if (!mem || fclose(mem) != 0) {
            free(text);
            errno = ENOMEM;
            return NULL;
        }
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        free(text);
        return NULL;
    }
    fprintf(out, "%s%s\n", log_header, multilevel ? ",level" : "");
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1];) { /* the rows after the header */
        char *row = line + 1, *end = strchr(row, '\n');
        line = end;
        if (end)
            *end = '\0';
        char *after;
        long e = strtol(row, &after, 10);
        if (after == row || *after != ',' || e < 1 || e > epoch)
            continue;
        const char *sec = row; /* the 6th field (a multilevel log has a 7th: the level) */
        for (int f = 0; f < 5 && sec; f++)
            if ((sec = strchr(sec, ',')))
                sec++;
        *seconds = sec ? strtod(sec, NULL) : 0;
        fprintf(out, "%s\n", row);
    }
    free(text);
    if (fflush(out) != 0 || rename(tmp, dst) != 0) {
        int err = errno;
        fclose(out);
        unlink(tmp);
        errno = err;
        return NULL;
    }
    return out; /* the renamed file, still open for writing at its end */
}

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* What a run keeps over its levels (one level without --multilevel). */
typedef struct trainer {
    const spdl_args *a;
    const char *out;
    spdl_data train, val, stats;
    int have_val, multilevel, nlevels;
    size_t B, nbatch;
    double *xb, *tb;
    size_t *perm;
    uint64_t rng;
    double noise;       /* --noise: the standard deviation added to each step's inputs */
    FILE *log;
    double t_before, t_start, t_run;
    int saved;          /* the epoch (of the level being trained) of the last checkpoint on disk; -1: none */
    int epochs_before;  /* the earlier levels' epochs: the log counts epochs over the levels */
    int trained;        /* epochs this run trained */
    double mpi_step;    /* seconds in MPI calls during the steps (ranks.h) */
    size_t steps;       /* steps this run made */
} trainer;

/* One level's parameters, gradient and optimiser. */
typedef struct level_state {
    const spdl_model *m;
    double *theta, *grad;
    spdl_optim opt;
} level_state;

static int level_alloc(level_state *s, const spdl_model *m, const spdl_args *a)
{
    size_t P = m->nparam ? m->nparam : 1;
    s->m = m;
    s->theta = calloc(P, sizeof *s->theta);
    s->grad = calloc(P, sizeof *s->grad);
    if (!s->theta || !s->grad || spdl_optim_init(&s->opt, a->opt, m->nparam, a->lr))
        return spdl_error(a, "out of memory");
    s->opt.decay = a->decay > 0 ? a->decay : 0;
    return 0;
}

static void level_free(level_state *s)
{
    free(s->theta);
    free(s->grad);
    spdl_optim_free(&s->opt);
}

static int level_epochs(const spdl_args *a, int level)
{
    return a->multilevel ? a->level_epochs[level] : a->epochs;
}

/* The next level's state from s's, by prolongation (levels.h); the optimiser
 * continues: the same step count and learning rate, moments prolonged. */
static int prolong(const spdl_args *a, const level_state *s, const spdl_model *fine, level_state *f)
{
    if (level_alloc(f, fine, a))
        return 1;
    spdl_prolong_kind kind = a->prolong_linear ? SPDL_PROLONG_LINEAR : SPDL_PROLONG_CONSTANT;
    spdl_prolong(s->m, fine, s->theta, f->theta, kind, SPDL_PROLONG_VALUE);
    fine->project(f->theta);
    spdl_prolong(s->m, fine, s->opt.m, f->opt.m, kind, SPDL_PROLONG_VALUE);
    if (s->opt.v)
        spdl_prolong(s->m, fine, s->opt.v, f->opt.v, kind, SPDL_PROLONG_SQUARE);
    f->opt.step = s->opt.step;
    f->opt.lr = s->opt.lr;
    f->opt.decay = s->opt.decay;
    return 0;
}

/* The first samples of the training data: a fixed subset for epoch statistics. */
static spdl_data stats_of(spdl_data train)
{
    if (train.n > TRAIN_STATS_MAX)
        train.n = TRAIN_STATS_MAX;
    return train;
}

/* Level lm's data while it trains: for a coarser grid (spdlc build
 * --grid-levels), the training and validation images restricted to it; the
 * finest level's are kept in keep[0..1] and put back by fine_data. */
static int level_data(trainer *t, const spdl_model *lm, const spdl_model *fine, spdl_data keep[2])
{
    keep[0] = t->train;
    keep[1] = t->val;
    if (spdl_level_grid(lm, fine) == 1)
        return 0;
    spdl_data tr = {0}, va = {0};
    if (spdl_restrict_data(lm, fine, &keep[0], &tr) || (t->have_val && spdl_restrict_data(lm, fine, &keep[1], &va))) {
        spdl_data_free(&tr);
        return spdl_error(t->a, "out of memory");
    }
    t->train = tr;
    t->val = va;
    t->stats = stats_of(tr);
    return 0;
}

static void fine_data(trainer *t, spdl_data keep[2])
{
    if (t->train.x != keep[0].x) {
        spdl_data_free(&t->train);
        spdl_data_free(&t->val);
    }
    t->train = keep[0];
    t->val = keep[1];
    t->stats = stats_of(keep[0]);
}

/* Trains level `level` (of t->nlevels) from run->epoch to its epochs,
 * writing the log's rows and the checkpoints. Returns 0, or 1 after the
 * error. */
static int train_level(trainer *t, int level, level_state *s, spdl_run_state *run)
{
    const spdl_args *a = t->a;
    const spdl_model *m = s->m;
    const int E = level_epochs(a, level);
    size_t P = m->nparam, B = t->B, nbatch = t->nbatch;
    size_t tile = m->tile ? m->tile : 64, most = B; /* the largest batch: a step's, or an evaluation's part */
    if (m->nclass && spdl_evaluate_part(t->stats.n, tile) > most)
        most = spdl_evaluate_part(t->stats.n, tile);
    if (t->have_val && spdl_evaluate_part(t->val.n, tile) > most)
        most = spdl_evaluate_part(t->val.n, tile);
    spdl_tiles *tiles = NULL;
    if (spdl_new_tiles(m, a, most, &tiles))
        return 1;
    size_t row_lo, row_hi; /* the rows of a full batch this rank's tiles read */
    spdl_tiles_rows(tiles, B, &row_lo, &row_hi);
    char lv[48] = "";
    if (t->multilevel)
        snprintf(lv, sizeof lv, "level %d/%d  ", level + 1, t->nlevels);
    int tty = isatty(fileno(stdout)) && !a->quiet;
    size_t level_steps = nbatch * (size_t)E;
    int status = 1;
    for (int epoch = run->epoch; epoch < E; epoch++) {
        double t0 = spdl_now(), sum = 0;
        for (size_t i = 0; i < t->train.n; i++)
            t->perm[i] = i;
        for (size_t i = t->train.n; i > 1; i--) {
            size_t j = (size_t)(spdl_rng_next(&t->rng) % i);
            size_t tmp = t->perm[i - 1];
            t->perm[i - 1] = t->perm[j];
            t->perm[j] = tmp;
        }
        for (size_t b = 0; b < nbatch; b++) {
            size_t st = b * B, nb = t->train.n - st < B ? t->train.n - st : B, lo = row_lo, hi = row_hi;
            if (nb < B)
                spdl_tiles_rows(tiles, nb, &lo, &hi);
            uint64_t noise_key = t->noise > 0 ? spdl_rng_next(&t->rng) : 0; /* every rank draws it */
            for (size_t i = lo; i < hi; i++) {
                memcpy(t->xb + i * m->nin, t->train.x + t->perm[st + i] * m->nin, sizeof(double) * m->nin);
                if (m->ntarget)
                    memcpy(t->tb + i * m->ntarget, t->train.t + t->perm[st + i] * m->ntarget,
                           sizeof(double) * m->ntarget);
            }
            if (t->noise > 0)
                spdl_data_noise(t->xb, lo, hi, m->nin, noise_key, t->noise);
            double mpi0 = spdl_ranks_seconds(a->ranks);
            double loss = spdl_tiles_loss_grad(tiles, s->theta, nb, t->xb, m->ntarget ? t->tb : NULL, s->grad);
            t->mpi_step += spdl_ranks_seconds(a->ranks) - mpi0;
            t->steps++;
            if (!isfinite(loss) || !all_finite(s->grad, P)) {
                if (tty)
                    printf("\n");
                spdl_error(a, "training diverged: the %s is %s at %sepoch %d, batch %zu",
                           isfinite(loss) ? "gradient" : "loss",
                           isnan(loss) ? "NaN" : isfinite(loss) ? "not finite" : "infinite", lv, epoch + 1, b + 1);
                if (t->saved >= 0)
                    fprintf(stderr, "%s: note: the last good checkpoint (%sepoch %d) is %s; try a smaller --lr\n",
                            a->prog, lv, t->saved, t->out);
                else
                    fprintf(stderr, "%s: note: no checkpoint was written before it diverged; try a smaller --lr\n",
                            a->prog);
                goto done;
            }
            sum += loss * (double)nb;
            /* the schedule runs over the level's steps (the run's, with one level) */
            double progress = (double)((size_t)epoch * nbatch + b) / (double)(level_steps ? level_steps : 1);
            spdl_optim_step(&s->opt, s->theta, s->grad, spdl_schedule(a->cosine, progress));
            m->project(s->theta);
            if (tty && (b % 8 == 7 || b + 1 == nbatch)) {
                double el = spdl_now() - t0, rate = (double)(st + nb) / (el > 0 ? el : 1e-9);
                char eta[32];
                fmt_time(eta, sizeof eta,
                         ((double)(E - epoch - 1) * (double)t->train.n + (double)(t->train.n - st - nb)) / rate);
                printf("\r\033[K%sepoch %d/%d  batch %zu/%zu  loss %.4g  %.0f samples/s  ETA %s", lv, epoch + 1, E,
                       b + 1, nbatch, sum / (double)(st + nb), rate, eta);
                fflush(stdout);
            }
        }
        t->t_run += spdl_now() - t0;
        if (!all_finite(s->theta, P)) {
            spdl_error(a, "training diverged: the parameters are not finite after %sepoch %d", lv, epoch + 1);
            goto done;
        }
        double tl = sum / (double)t->train.n, acc = NAN, vl = NAN, vacc = NAN, dummy;
        if (m->nclass)
            spdl_evaluate(tiles, m, s->theta, &t->stats, &dummy, &acc, NULL);
        if (t->have_val)
            spdl_evaluate(tiles, m, s->theta, &t->val, &vl, &vacc, NULL);
        double el = spdl_now() - t0;
        if (t->log) { /* rank 0's */
            fprintf(t->log, "%d,%.10g,%.6g,%.10g,%.6g,%.4f", t->epochs_before + epoch + 1, tl, acc, vl, vacc,
                    t->t_before + spdl_now() - t->t_start);
            if (t->multilevel)
                fprintf(t->log, ",%d", level + 1);
            fputc('\n', t->log);
            fflush(t->log);
        }
        t->trained++;
        if (!a->quiet) {
            double rate = (double)t->train.n / (el > 0 ? el : 1e-9);
            char eta[32];
            fmt_time(eta, sizeof eta, (double)(E - epoch - 1) * el);
            printf("%s%sepoch %d/%d  loss %.4g", tty ? "\r\033[K" : "", lv, epoch + 1, E, tl);
            if (m->nclass)
                printf("  acc %.4f", acc);
            if (t->have_val) {
                printf("  val_loss %.4g", vl);
                if (m->nclass)
                    printf("  val_acc %.4f", vacc);
            }
            printf("  %.0f samples/s  ETA %s\n", rate, eta);
            fflush(stdout);
        }
        run->epoch = epoch + 1;
        run->rng = t->rng;
        run->noise = t->noise;
        run->cosine = a->cosine;
        run->total_epochs = E;
        run->level = t->multilevel ? level + 1 : 0;
        run->levels = t->multilevel ? t->nlevels : 0;
        if (run->epoch % a->ckpt_every == 0 || run->epoch == E) {
            char err[512];
            int rc = 0;
            if (spdl_ranks_rank(a->ranks) == 0 && (rc = spdl_weights_save(t->out, m, s->theta, &s->opt, run, err,
                                                                          sizeof err)))
                spdl_error(a, "%s", err);
            if (spdl_ranks_agree(a->ranks, rc))
                goto done;
            t->saved = run->epoch;
        }
    }
    status = 0;
done:
    spdl_tiles_free(tiles);
    return status;
}

/* --resume: the checkpoint's level (0 the coarsest; 0 for a one-level run)
 * and its parameters, optimiser and run state into s. */
static int resume_read(trainer *t, const spdl_model *const *levels, int *level, level_state *s, spdl_run_state *run)
{
    const spdl_args *a = t->a;
    char err[512];
    int lv = 0, nlv = 0;
    if (spdl_weights_level(a->resume, &lv, &nlv, err, sizeof err))
        return spdl_error(a, "%s", err);
    if (t->multilevel && !nlv)
        return spdl_error(a, "%s is not a checkpoint of train --multilevel", a->resume);
    if (t->multilevel && nlv != t->nlevels)
        return spdl_error(a, "%s is a checkpoint of a run of %d levels, but this program has %d", a->resume, nlv,
                          t->nlevels);
    if (!t->multilevel && nlv)
        return spdl_error(a, "%s is a checkpoint of train --multilevel (level %d of %d): resume it with --multilevel",
                          a->resume, lv, nlv);
    *level = t->multilevel ? lv - 1 : 0;
    if (level_alloc(s, levels[*level], a))
        return 1;
    int differs = 0;
    if (spdl_weights_load(a->resume, s->m, s->theta, &s->opt, run, &differs, err, sizeof err))
        return spdl_error(a, "%s", err);
    if (!run->has_optim)
        return spdl_error(a, "%s holds weights only, no training state to resume", a->resume);
    if (differs)
        fprintf(stderr, "%s: warning: %s was trained from different source text\n", a->prog, a->resume);
    t->rng = run->rng;
    if (a->lr <= 0) /* no --lr: the checkpoint's, as one long run would have */
        s->opt.lr = run->lr;
    if (a->decay < 0)
        s->opt.decay = run->decay;
    if (a->noise < 0)
        t->noise = run->noise;
    int E = level_epochs(a, *level);
    if (run->total_epochs > 0 && (run->cosine || a->cosine) && (run->cosine != a->cosine || run->total_epochs != E))
        fprintf(stderr,
                "%s: note: %s was trained with --schedule %s over %d epochs; this run has --schedule %s over %d, "
                "so it will not give the same bits as one %d-epoch run (the cosine anneals over --epochs)\n",
                a->prog, a->resume, run->cosine ? "cosine" : "constant", run->total_epochs,
                a->cosine ? "cosine" : "constant", E, E);
    if (!strcmp(a->resume, t->out))
        t->saved = run->epoch;
    if (run->epoch >= E && *level == t->nlevels - 1 && t->multilevel)
        return spdl_error(a, "%s has already trained all %d levels (%d epochs of the last); ask for more of the last "
                          "with --level-epochs", a->resume, t->nlevels, run->epoch);
    if (run->epoch >= E && !t->multilevel)
        return spdl_error(a, "%s has already trained %d epochs; ask for more with --epochs (the total)", a->resume,
                          run->epoch);
    for (int l = 0; l < *level; l++)
        t->epochs_before += level_epochs(a, l);
    return 0;
}

/* resume_read on rank 0, which broadcasts what it read to the other ranks */
static int resume(trainer *t, const spdl_model *const *levels, int *level, level_state *s, spdl_run_state *run)
{
    const spdl_args *a = t->a;
    spdl_ranks *r = a->ranks;
    int rank = spdl_ranks_rank(r);
    if (spdl_ranks_agree(r, rank == 0 ? resume_read(t, levels, level, s, run) : 0))
        return 1;
    if (!r)
        return 0;
    spdl_ranks_bcast(r, level, sizeof *level);
    if (spdl_ranks_agree(r, rank != 0 ? level_alloc(s, levels[*level], a) : 0))
        return 1;
    size_t P = s->m->nparam;
    spdl_ranks_bcast(r, s->theta, sizeof(double) * P);
    spdl_ranks_bcast(r, s->opt.m, sizeof(double) * P);
    if (s->opt.v)
        spdl_ranks_bcast(r, s->opt.v, sizeof(double) * P);
    spdl_ranks_bcast(r, &s->opt.step, sizeof s->opt.step);
    spdl_ranks_bcast(r, &s->opt.lr, sizeof s->opt.lr);
    spdl_ranks_bcast(r, &s->opt.decay, sizeof s->opt.decay);
    spdl_ranks_bcast(r, run, sizeof *run);
    spdl_ranks_bcast(r, &t->rng, sizeof t->rng);
    spdl_ranks_bcast(r, &t->noise, sizeof t->noise);
    spdl_ranks_bcast(r, &t->saved, sizeof t->saved);
    spdl_ranks_bcast(r, &t->epochs_before, sizeof t->epochs_before);
    return 0;
}

int spdl_cmd_train(const spdl_model *m, const spdl_args *a)
{
    trainer t = {.a = a, .saved = -1, .multilevel = a->multilevel, .nlevels = a->multilevel ? a->nlevels : 1};
    const spdl_model *const *levels = a->multilevel ? a->levels : &m;
    spdl_data all = {0};
    if (spdl_get_data(m, a, a->data, &all))
        return 1;
    t.have_val = a->val > 0 && all.n >= 10;
    if (t.have_val) {
        if (spdl_data_split(&all, a->val, a->seed, &t.train, &t.val)) {
            spdl_data_free(&all);
            return spdl_error(a, "cannot split %zu samples for validation", all.n);
        }
        spdl_data_free(&all);
    } else {
        t.train = all;
    }
    t.out = a->out ? a->out : a->weights;
    t.B = a->batch < t.train.n ? a->batch : t.train.n;
    t.nbatch = (t.train.n + t.B - 1) / t.B;
    t.xb = malloc(sizeof(double) * t.B * m->nin);
    t.tb = malloc(sizeof(double) * t.B * (m->ntarget ? m->ntarget : 1));
    t.perm = malloc(sizeof(size_t) * t.train.n);
    t.stats = stats_of(t.train);
    t.rng = a->seed * 0x9e3779b97f4a7c15ull + 0x747261696eull;
    t.noise = a->noise > 0 ? a->noise : 0;
    level_state s = {0};
    spdl_run_state run = {0};
    int level = 0, status = 1;
    if (!t.xb || !t.tb || !t.perm) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (a->resume) {
        if (resume(&t, levels, &level, &s, &run))
            goto done;
    } else {
        if (level_alloc(&s, levels[0], a))
            goto done;
        levels[0]->init(s.theta, a->seed);
    }
    char logbuf[1024], srclog[1024];
    log_path(t.out, logbuf, sizeof logbuf);
    int rank = spdl_ranks_rank(a->ranks), rc = 0;
    if (rank == 0) { /* the log and the checkpoints are rank 0's */
        spdl_st_remove_stale(t.out); /* what a run killed while saving left */
        if (a->resume) {
            log_path(a->resume, srclog, sizeof srclog);
            t.log = resume_log(srclog, logbuf, t.epochs_before + run.epoch, t.multilevel, &t.t_before);
        } else if ((t.log = fopen(logbuf, "w"))) {
            fprintf(t.log, "%s%s\n", log_header, t.multilevel ? ",level" : "");
        }
        if (!t.log)
            rc = spdl_error(a, "cannot write %s: %s", logbuf, strerror(errno));
    }
    if (spdl_ranks_agree(a->ranks, rc))
        goto done;
    spdl_ranks_bcast(a->ranks, &t.t_before, sizeof t.t_before);
    if (!a->quiet) {
        char epochs[160] = "";
        int k = 0;
        for (int l = 0; t.multilevel && l < t.nlevels && k < (int)sizeof epochs; l++)
            k += snprintf(epochs + k, sizeof epochs - (size_t)k, "%s%d", l ? "," : "", a->level_epochs[l]);
        printf("training %s on %s: %zu samples (%zu for validation), %zu parameters, %s, batch %zu, ", m->name,
               t.train.desc, t.train.n, t.val.n, m->nparam, spdl_optim_name(a->opt), t.B);
        if (s.opt.decay > 0)
            printf("weight decay %g, ", s.opt.decay);
        if (t.noise > 0)
            printf("input noise %g, ", t.noise);
        if (t.multilevel)
            printf("%d levels (%s epochs, %s), ", t.nlevels, epochs,
                   spdl_level_grid(levels[0], m) > 1 ? "coarser images, the same parameters"
                   : a->prolong_linear                ? "prolonged linearly in time"
                                                      : "prolonged by copies");
        else
            printf("%d epochs, ", a->epochs);
        if (a->ranks)
            printf("%d ranks x ", spdl_ranks_size(a->ranks));
        printf("%d thread%s\n", a->threads, a->threads == 1 ? "" : "s");
    }
    size_t tile = m->tile ? m->tile : 64, step_tiles = (t.B + tile - 1) / tile;
    if (a->threads_given && (size_t)a->threads > step_tiles && !a->quiet)
        fprintf(stderr, "%s: note: a batch of %zu samples is %zu tile%s of %zu, so a step uses %zu of the %d threads; "
                "--batch %zu or more would use them all\n", a->prog, t.B, step_tiles, step_tiles == 1 ? "" : "s",
                tile, step_tiles, a->threads, (size_t)a->threads * tile);
    t.t_start = spdl_now();
    for (;;) {
        if (t.multilevel && !a->quiet && run.epoch < level_epochs(a, level)) {
            char what[96];
            spdl_level_describe(levels, t.nlevels, level, what, sizeof what);
            printf("level %d/%d: %s, %zu parameters\n", level + 1, t.nlevels, what, s.m->nparam);
        }
        spdl_data keep[2];
        if (level_data(&t, s.m, m, keep))
            goto done;
        int failed = train_level(&t, level, &s, &run);
        fine_data(&t, keep);
        if (failed)
            goto done;
        if (level + 1 == t.nlevels)
            break;
        level_state f = {0};
        if (prolong(a, &s, levels[level + 1], &f)) {
            level_free(&f);
            goto done;
        }
        level_free(&s);
        s = f;
        t.epochs_before += level_epochs(a, level);
        t.saved = -1;
        run.epoch = 0;
        level++;
    }
    if (!a->quiet)
        printf("trained %d epochs in %.1f s (%.2f s in the optimiser loop: %.0f samples/s); weights in %s, log in %s\n",
               t.trained, spdl_now() - t.t_start, t.t_run,
               (double)t.trained * (double)t.train.n / (t.t_run > 0 ? t.t_run : 1e-9), t.out, logbuf);
    if (a->ranks) { /* a step's time in MPI calls (waiting for the others included): rank 0's, the ranks' mean */
        int P = spdl_ranks_size(a->ranks);
        double mean = spdl_ranks_sum(a->ranks, t.mpi_step) / P, steps = t.steps ? (double)t.steps : 1;
        if (!a->quiet)
            printf("MPI: %d ranks, %.3f ms a step in MPI calls on rank 0 (%.3f ms mean over the ranks), %zu steps\n",
                   P, 1e3 * t.mpi_step / steps, 1e3 * mean / steps, t.steps);
    }
    status = 0;
done:
    if (t.log)
        fclose(t.log);
    level_free(&s);
    spdl_data_free(&t.train);
    spdl_data_free(&t.val);
    free(t.xb);
    free(t.tb);
    free(t.perm);
    return status;
}
