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
 * so when it resumes. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
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
 * Returns the log open for appending, or NULL (errno set). */
static FILE *resume_log(const char *src, const char *dst, int epoch, double *seconds)
{
    static const char header[] = "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n";
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
    fputs(header, out);
    for (char *line = text ? strchr(text, '\n') : NULL; line && line[1];) { /* the rows after the header */
        char *row = line + 1, *end = strchr(row, '\n');
        line = end;
        if (end)
            *end = '\0';
        char *after;
        long e = strtol(row, &after, 10);
        if (after == row || *after != ',' || e < 1 || e > epoch)
            continue;
        const char *last = strrchr(row, ',');
        *seconds = strtod(last + 1, NULL);
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

int spdl_cmd_train(const spdl_model *m, const spdl_args *a)
{
    spdl_data all = {0}, train = {0}, val = {0};
    if (spdl_get_data(m, a, a->data, &all))
        return 1;
    int have_val = a->val > 0 && all.n >= 10;
    if (have_val) {
        if (spdl_data_split(&all, a->val, a->seed, &train, &val)) {
            spdl_data_free(&all);
            return spdl_error(a, "cannot split %zu samples for validation", all.n);
        }
        spdl_data_free(&all);
    } else {
        train = all;
    }
    const char *out = a->out ? a->out : a->weights;
    size_t P = m->nparam, B = a->batch < train.n ? a->batch : train.n;
    double *theta = calloc(P ? P : 1, sizeof *theta), *grad = calloc(P ? P : 1, sizeof *grad);
    double *xb = malloc(sizeof(double) * B * m->nin), *tb = malloc(sizeof(double) * B * (m->ntarget ? m->ntarget : 1));
    size_t *perm = malloc(sizeof(size_t) * train.n);
    spdl_data stats = train;
    if (stats.n > TRAIN_STATS_MAX)
        stats.n = TRAIN_STATS_MAX; /* the first samples: a fixed subset for epoch statistics */
    spdl_tiles *tiles = NULL;
    spdl_optim opt = {0};
    FILE *log = NULL;
    int status = 1;
    if (!theta || !grad || !xb || !tb || !perm || spdl_optim_init(&opt, a->opt, P, a->lr)) {
        spdl_error(a, "out of memory");
        goto done;
    }
    size_t tile = m->tile ? m->tile : 64, most = B; /* the largest batch: a step's, or an evaluation's part */
    if (m->nclass && spdl_evaluate_part(stats.n, tile) > most)
        most = spdl_evaluate_part(stats.n, tile);
    if (have_val && spdl_evaluate_part(val.n, tile) > most)
        most = spdl_evaluate_part(val.n, tile);
    if (spdl_new_tiles(m, a, most, &tiles))
        goto done;
    spdl_run_state run = {0};
    int saved = -1; /* the epoch of the last checkpoint on disk */
    uint64_t rng = a->seed * 0x9e3779b97f4a7c15ull + 0x747261696eull;
    if (a->resume) {
        char err[512];
        int differs = 0;
        if (spdl_weights_load(a->resume, m, theta, &opt, &run, &differs, err, sizeof err)) {
            spdl_error(a, "%s", err);
            goto done;
        }
        if (!run.has_optim) {
            spdl_error(a, "%s holds weights only, no training state to resume", a->resume);
            goto done;
        }
        if (differs)
            fprintf(stderr, "%s: warning: %s was trained from different source text\n", a->prog, a->resume);
        rng = run.rng;
        if (a->lr <= 0) /* no --lr: the checkpoint's, as one long run would have */
            opt.lr = run.lr;
        if (run.total_epochs > 0 && (run.cosine || a->cosine) &&
            (run.cosine != a->cosine || run.total_epochs != a->epochs))
            fprintf(stderr,
                    "%s: note: %s was trained with --schedule %s over %d epochs; this run has --schedule %s over %d, "
                    "so it will not give the same bits as one %d-epoch run (the cosine anneals over --epochs)\n",
                    a->prog, a->resume, run.cosine ? "cosine" : "constant", run.total_epochs,
                    a->cosine ? "cosine" : "constant", a->epochs, a->epochs);
        if (!strcmp(a->resume, out))
            saved = run.epoch;
        if (run.epoch >= a->epochs) {
            spdl_error(a, "%s has already trained %d epochs; ask for more with --epochs (the total)", a->resume,
                       run.epoch);
            goto done;
        }
    } else {
        m->init(theta, a->seed);
    }
    spdl_st_remove_stale(out); /* what a run killed while saving left */
    char logbuf[1024], srclog[1024];
    double t_before = 0; /* seconds the resumed run had trained, by its log */
    log_path(out, logbuf, sizeof logbuf);
    if (a->resume) {
        log_path(a->resume, srclog, sizeof srclog);
        log = resume_log(srclog, logbuf, run.epoch, &t_before);
    } else {
        log = fopen(logbuf, "w");
        if (log)
            fprintf(log, "epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
    }
    if (!log) {
        spdl_error(a, "cannot write %s: %s", logbuf, strerror(errno));
        goto done;
    }
    int tty = isatty(fileno(stdout)) && !a->quiet;
    size_t nbatch = (train.n + B - 1) / B;
    size_t total_steps = nbatch * (size_t)a->epochs;
    int nthreads = spdl_tiles_threads(tiles);
    size_t step_tiles = (B + tile - 1) / tile;
    if (!a->quiet)
        printf("training %s on %s: %zu samples (%zu for validation), %zu parameters, %s, batch %zu, %d epochs, "
               "%d thread%s\n", m->name, train.desc, train.n, val.n, P, spdl_optim_name(a->opt), B, a->epochs,
               nthreads, nthreads == 1 ? "" : "s");
    if (a->threads_given && (size_t)a->threads > step_tiles && !a->quiet)
        fprintf(stderr, "%s: note: a batch of %zu samples is %zu tile%s of %zu, so a step uses %zu of the %d threads; "
                "--batch %zu or more would use them all\n", a->prog, B, step_tiles, step_tiles == 1 ? "" : "s",
                tile, step_tiles, a->threads, (size_t)a->threads * tile);
    double t_start = spdl_now(), t_run = 0;
    const int first_epoch = run.epoch;
    for (int epoch = run.epoch; epoch < a->epochs; epoch++) {
        double t0 = spdl_now(), sum = 0;
        for (size_t i = 0; i < train.n; i++)
            perm[i] = i;
        for (size_t i = train.n; i > 1; i--) {
            size_t j = (size_t)(spdl_rng_next(&rng) % i);
            size_t tmp = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = tmp;
        }
        for (size_t b = 0; b < nbatch; b++) {
            size_t s = b * B, nb = train.n - s < B ? train.n - s : B;
            for (size_t i = 0; i < nb; i++) {
                memcpy(xb + i * m->nin, train.x + perm[s + i] * m->nin, sizeof(double) * m->nin);
                if (m->ntarget)
                    memcpy(tb + i * m->ntarget, train.t + perm[s + i] * m->ntarget, sizeof(double) * m->ntarget);
            }
            double loss = spdl_tiles_loss_grad(tiles, theta, nb, xb, m->ntarget ? tb : NULL, grad);
            if (!isfinite(loss) || !all_finite(grad, P)) {
                if (tty)
                    printf("\n");
                spdl_error(a, "training diverged: the %s is %s at epoch %d, batch %zu", isfinite(loss) ? "gradient" : "loss",
                           isnan(loss) ? "NaN" : isfinite(loss) ? "not finite" : "infinite", epoch + 1, b + 1);
                if (saved >= 0)
                    fprintf(stderr, "%s: note: the last good checkpoint (epoch %d) is %s; try a smaller --lr\n", a->prog,
                            saved, out);
                else
                    fprintf(stderr, "%s: note: no checkpoint was written before it diverged; try a smaller --lr\n", a->prog);
                goto done;
            }
            sum += loss * (double)nb;
            double progress = (double)(opt.step) / (double)(total_steps ? total_steps : 1);
            spdl_optim_step(&opt, theta, grad, spdl_schedule(a->cosine, progress));
            m->project(theta);
            if (tty && (b % 8 == 7 || b + 1 == nbatch)) {
                double el = spdl_now() - t0, rate = (double)(s + nb) / (el > 0 ? el : 1e-9);
                char eta[32];
                fmt_time(eta, sizeof eta, ((double)(a->epochs - epoch - 1) * (double)train.n + (double)(train.n - s - nb)) / rate);
                printf("\r\033[Kepoch %d/%d  batch %zu/%zu  loss %.4g  %.0f samples/s  ETA %s", epoch + 1, a->epochs,
                       b + 1, nbatch, sum / (double)(s + nb), rate, eta);
                fflush(stdout);
            }
        }
        t_run += spdl_now() - t0;
        if (!all_finite(theta, P)) {
            spdl_error(a, "training diverged: the parameters are not finite after epoch %d", epoch + 1);
            goto done;
        }
        double tl = sum / (double)train.n, acc = NAN, vl = NAN, vacc = NAN, dummy;
        if (m->nclass)
            spdl_evaluate(tiles, m, theta, &stats, &dummy, &acc, NULL);
        if (have_val)
            spdl_evaluate(tiles, m, theta, &val, &vl, &vacc, NULL);
        double el = spdl_now() - t0;
        fprintf(log, "%d,%.10g,%.6g,%.10g,%.6g,%.4f\n", epoch + 1, tl, acc, vl, vacc, t_before + spdl_now() - t_start);
        fflush(log);
        if (!a->quiet) {
            double rate = (double)train.n / (el > 0 ? el : 1e-9);
            char eta[32];
            fmt_time(eta, sizeof eta, (double)(a->epochs - epoch - 1) * el);
            printf("%sepoch %d/%d  loss %.4g", tty ? "\r\033[K" : "", epoch + 1, a->epochs, tl);
            if (m->nclass)
                printf("  acc %.4f", acc);
            if (have_val) {
                printf("  val_loss %.4g", vl);
                if (m->nclass)
                    printf("  val_acc %.4f", vacc);
            }
            printf("  %.0f samples/s  ETA %s\n", rate, eta);
            fflush(stdout);
        }
        run.epoch = epoch + 1;
        run.rng = rng;
        run.cosine = a->cosine;
        run.total_epochs = a->epochs;
        if (run.epoch % a->ckpt_every == 0 || run.epoch == a->epochs) {
            char err[512];
            if (spdl_weights_save(out, m, theta, &opt, &run, err, sizeof err)) {
                spdl_error(a, "%s", err);
                goto done;
            }
            saved = run.epoch;
        }
    }
    if (!a->quiet)
        printf("trained %d epochs in %.1f s (%.2f s in the optimiser loop: %.0f samples/s); weights in %s, log in %s\n",
               a->epochs - first_epoch, spdl_now() - t_start, t_run,
               (double)(a->epochs - first_epoch) * (double)train.n / (t_run > 0 ? t_run : 1e-9), out, logbuf);
    status = 0;
done:
    if (log)
        fclose(log);
    spdl_optim_free(&opt);
    spdl_data_free(&train);
    spdl_data_free(&val);
    free(theta);
    free(grad);
    free(xb);
    free(tb);
    free(perm);
    spdl_tiles_free(tiles);
    return status;
}
