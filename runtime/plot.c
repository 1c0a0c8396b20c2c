/* plot.c - `EXE plot`: decision regions with the data, the trajectories of
 * sample points through the layers, the training curves from the log, and
 * for an image classifier its accuracy against the rotation angle of the
 * data (DESIGN §8: rotate=DEGREES on the same source).
 *
 * The data always go to CSV files and a gnuplot script next to the PNG, so
 * a machine without gnuplot still gets everything but the picture. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "rt_kernels.h"

enum { GRID = 160, TRAJ_MAX = 48, ANGLE_STEP = 15 };

static FILE *open_w(const spdl_args *a, char *path, size_t n, const char *base, const char *suffix)
{
    snprintf(path, n, "%s%s", base, suffix);
    FILE *f = fopen(path, "w");
    if (!f)
        spdl_error(a, "cannot write %s: %s", path, strerror(errno));
    return f;
}

static int file_exists(const char *p)
{
    FILE *f = fopen(p, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Whether a training log (epoch,loss,accuracy,val_loss,...) has a validation
 * loss on some epoch: train --val 0 writes nan there, and a curve of nothing
 * should not be in the legend. */
static int log_has_validation(const char *p)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    if (fgets(line, sizeof line, f))
        while (!found && fgets(line, sizeof line, f)) {
            const char *c = line;
            for (int comma = 0; comma < 3 && (c = strchr(c, ',')); comma++)
                c++;
            found = c && strncmp(c, "nan", 3) != 0 && *c != ',' && *c != '\n';
        }
    fclose(f);
    return found;
}

/* An image classifier's accuracy on the data rotated by 0, 15, ..., 360
 * degrees (rotate=A added to the data spec), to path as CSV. Returns 1 when
 * written, 0 when the model is no image classifier or the spec already
 * rotates, -1 after an error. */
static int rotation_sweep(const spdl_model *m, const spdl_args *a, const double *theta, const char *path)
{
    spdl_data_layout lay = spdl_data_layout_of(m);
    if (!m->nclass || lay.in_rank < 2 || lay.in_shape[lay.in_rank - 1] != lay.in_shape[lay.in_rank - 2] ||
        strstr(a->data, "rotate="))
        return 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        spdl_error(a, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "degrees,accuracy,loss\n");
    size_t len = strlen(a->data) + 32;
    char *spec = malloc(len);
    int rc = spec ? 1 : (spdl_error(a, "out of memory"), -1);
    for (int deg = 0; rc == 1 && deg <= 360; deg += ANGLE_STEP) {
        snprintf(spec, len, "%s%crotate=%d", a->data, strchr(a->data, '?') ? '&' : '?', deg);
        spdl_data d;
        if (spdl_get_data(m, a, spec, &d)) {
            rc = -1;
            break;
        }
        double loss, acc;
        spdl_tiles *tl = NULL;
        if (spdl_new_tiles(m, a, spdl_evaluate_part(d.n, m->tile ? m->tile : 64), &tl)) {
            spdl_data_free(&d);
            rc = -1;
            break;
        }
        int e = spdl_evaluate(tl, m, theta, &d, &loss, &acc, NULL);
        spdl_tiles_free(tl);
        spdl_data_free(&d);
        if (e) {
            spdl_error(a, "evaluation at rotate=%d failed: %s", deg, spdl_strerror(e));
            rc = -1;
            break;
        }
        fprintf(f, "%d,%.6f,%.9g\n", deg, acc, loss);
    }
    free(spec);
    if (fclose(f) != 0 && rc == 1) {
        spdl_error(a, "cannot write %s: %s", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

int spdl_cmd_plot(const spdl_model *m, const spdl_args *a)
{
    spdl_data d;
    if (spdl_get_data(m, a, a->data, &d))
        return 1;
    int status = 1;
    size_t batch = 256;
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta);
    void *work = malloc(m->work_size(batch));
    double *gx = malloc(sizeof(double) * batch * m->nin), *gy = malloc(sizeof(double) * batch * m->nout);
    double *traj = NULL;
    FILE *f = NULL;
    char base[1024], p_regions[1100], p_data[1100], p_traj[1100], p_gp[1100], logp[1100];
    if (!theta || !work || !gx || !gy) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta))
        goto done;
    /* out.png -> out.*.csv, out.gp */
    snprintf(base, sizeof base, "%s", a->out);
    char *dot = strrchr(base, '.');
    if (dot && strchr(dot, '/') == NULL)
        *dot = '\0';
    int two_d = m->nin == 2;
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    if (!(f = open_w(a, p_data, sizeof p_data, base, ".data.csv")))
        goto done;
    fprintf(f, "x0,x1,label\n");
    for (size_t i = 0; i < d.n; i++) {
        double x0 = d.x[i * m->nin], x1 = m->nin > 1 ? d.x[i * m->nin + 1] : 0;
        fprintf(f, "%.9g,%.9g,%d\n", x0, x1, d.t && m->nclass ? (int)d.t[i * m->ntarget] : 0);
        if (x0 < lo[0]) lo[0] = x0;
        if (x0 > hi[0]) hi[0] = x0;
        if (x1 < lo[1]) lo[1] = x1;
        if (x1 > hi[1]) hi[1] = x1;
    }
    fclose(f);
    f = NULL;
    if (two_d && m->nclass) {
        /* the predicted class on a grid 10% larger than the data */
        if (!(f = open_w(a, p_regions, sizeof p_regions, base, ".regions.csv")))
            goto done;
        fprintf(f, "x0,x1,class\n");
        double pad0 = 0.1 * (hi[0] - lo[0]) + 1e-9, pad1 = 0.1 * (hi[1] - lo[1]) + 1e-9;
        size_t k = 0, total = (size_t)GRID * GRID;
        for (size_t s = 0; s < total; s += batch) {
            size_t nb = total - s < batch ? total - s : batch;
            for (size_t i = 0; i < nb; i++) {
                size_t g = s + i;
                gx[2 * i] = lo[0] - pad0 + (hi[0] - lo[0] + 2 * pad0) * (double)(g % GRID) / (GRID - 1);
                gx[2 * i + 1] = lo[1] - pad1 + (hi[1] - lo[1] + 2 * pad1) * (double)(g / GRID) / (GRID - 1);
            }
            int rc = m->forward(theta, nb, gx, gy, work);
            if (rc) {
                spdl_error(a, "forward pass failed: %s", spdl_strerror(rc));
                goto done;
            }
            for (size_t i = 0; i < nb; i++, k++) {
                size_t best = 0;
                for (size_t c = 1; c < m->nout; c++)
                    if (gy[i * m->nout + c] > gy[i * m->nout + best])
                        best = c;
                fprintf(f, "%.9g,%.9g,%zu\n", gx[2 * i], gx[2 * i + 1], best);
                if (k % GRID == GRID - 1)
                    fputc('\n', f); /* gnuplot: one scan line per block */
            }
        }
        fclose(f);
        f = NULL;
    }
    /* trajectories of up to TRAJ_MAX samples, spread over the data */
    size_t nt = d.n < TRAJ_MAX ? d.n : TRAJ_MAX, rows = m->traj_rows, S = m->nstate, tc[2] = {0, 1};
    int have_traj = rows > 0 && S >= 1;
    if (have_traj) {
        traj = malloc(sizeof(double) * nt * rows * S);
        double *tx = malloc(sizeof(double) * nt * m->nin);
        if (!traj || !tx) {
            free(tx);
            spdl_error(a, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < nt; i++)
            memcpy(tx + i * m->nin, d.x + (i * d.n / nt) * m->nin, sizeof(double) * m->nin);
        void *w2 = malloc(m->work_size(nt));
        int rc = w2 ? m->trajectory(theta, nt, tx, traj, w2) : SPDL_ENOMEM;
        free(w2);
        free(tx);
        if (rc) {
            spdl_error(a, "trajectory failed: %s", spdl_strerror(rc));
            goto done;
        }
        /* show the two state coordinates that vary most over the samples at the last layer */
        size_t c0 = 0, c1 = S > 1 ? 1 : 0;
        double v0 = -1, v1 = -1;
        for (size_t c = 0; c < S; c++) {
            double mean = 0, var = 0;
            for (size_t i = 0; i < nt; i++)
                mean += traj[(i * rows + rows - 1) * S + c] / (double)nt;
            for (size_t i = 0; i < nt; i++) {
                double dd = traj[(i * rows + rows - 1) * S + c] - mean;
                var += dd * dd;
            }
            if (var > v0) {
                v1 = v0, c1 = c0;
                v0 = var, c0 = c;
            } else if (var > v1) {
                v1 = var, c1 = c;
            }
        }
        tc[0] = c0, tc[1] = c1;
        if (!(f = open_w(a, p_traj, sizeof p_traj, base, ".traj.csv")))
            goto done;
        fprintf(f, "sample,layer,s%zu,s%zu,label\n", c0, c1);
        for (size_t i = 0; i < nt; i++) {
            int lab = d.t && m->nclass ? (int)d.t[(i * d.n / nt) * m->ntarget] : 0;
            for (size_t r = 0; r < rows; r++)
                fprintf(f, "%zu,%zu,%.9g,%.9g,%d\n", i, r, traj[(i * rows + r) * S + c0], traj[(i * rows + r) * S + c1], lab);
            fprintf(f, "\n\n"); /* one gnuplot data set per sample */
        }
        fclose(f);
        f = NULL;
    }
    /* a density: samples x = f^-1(z), z ~ N(0, I), over the data */
    char p_samp[1100];
    int have_samples = 0;
    if (two_d && m->density && m->flow_inverse) {
        size_t ns = 1000;
        double *z = malloc(sizeof(double) * ns * 2), *xs = malloc(sizeof(double) * ns * 2);
        void *w3 = malloc(m->work_size(ns));
        uint64_t rng = a->seed * 0x9e3779b97f4a7c15ull + 0x706c6f74ull;
        int rc = z && xs && w3 ? SPDL_OK : SPDL_ENOMEM;
        for (size_t i = 0; rc == SPDL_OK && i < ns * 2; i++)
            z[i] = spdl_rng_normal(&rng);
        if (rc == SPDL_OK)
            rc = m->flow_inverse(theta, ns, z, xs, w3);
        if (rc == SPDL_OK && (f = open_w(a, p_samp, sizeof p_samp, base, ".samples.csv"))) {
            fprintf(f, "x0,x1\n");
            for (size_t i = 0; i < ns; i++)
                fprintf(f, "%.9g,%.9g\n", xs[2 * i], xs[2 * i + 1]);
            fclose(f);
            f = NULL;
            have_samples = 1;
        }
        free(z), free(xs), free(w3);
        if (rc != SPDL_OK) {
            spdl_error(a, "sampling failed: %s", spdl_strerror(rc));
            goto done;
        }
    }
    /* the training log next to the weights */
    snprintf(logp, sizeof logp, "%s", a->weights);
    size_t wl = strlen(logp);
    if (wl > 12 && !strcmp(logp + wl - 12, ".safetensors"))
        logp[wl - 12] = '\0';
    strncat(logp, ".log.csv", sizeof logp - strlen(logp) - 1);
    int have_log = file_exists(logp);
    char p_rot[1100];
    snprintf(p_rot, sizeof p_rot, "%s.rotation.csv", base);
    int have_rot = rotation_sweep(m, a, theta, p_rot);
    if (have_rot < 0)
        goto done;
    int panels = (two_d && m->nclass) + have_samples + have_traj + have_log + have_rot;
    if (panels == 0)
        panels = 1;
    if (!(f = open_w(a, p_gp, sizeof p_gp, base, ".gp")))
        goto done;
    fprintf(f, "# %s: gnuplot script written by %s plot\n", p_gp, a->prog);
    fprintf(f, "set terminal pngcairo size %d,460 font 'sans,10'\nset output '%s'\n", 460 * panels, a->out);
    fprintf(f, "set datafile separator ','\nset key off\nset termoption noenhanced\nset multiplot layout 1,%d\n", panels);
    fprintf(f, "set palette defined (0 '#c6dbef', 1 '#fdd0a2', 2 '#c7e9c0', 3 '#dadaeb', 4 '#fcbba1', 5 '#d9d9d9', "
               "6 '#fff7bc', 7 '#c7eae5', 8 '#fde0ef', 9 '#e0ecf4')\nunset colorbox\n");
    if (two_d && m->nclass) {
        fprintf(f, "set title '%s: decision regions and data'\nset size ratio -1\n", m->name);
        fprintf(f, "set cbrange [0:9]\n");
        fprintf(f, "plot '%s' skip 1 using 1:2:3 with image, \\\n", p_regions);
        fprintf(f, "     '%s' skip 1 using 1:($3 == 0 ? $2 : 1/0) with points pt 7 ps 0.35 lc rgb '#08519c', \\\n", p_data);
        fprintf(f, "     '%s' skip 1 using 1:($3 == 1 ? $2 : 1/0) with points pt 7 ps 0.35 lc rgb '#a63603', \\\n", p_data);
        fprintf(f, "     '%s' skip 1 using 1:($3 >= 2 ? $2 : 1/0) with points pt 7 ps 0.35 lc rgb '#006d2c'\n", p_data);
        fprintf(f, "set size noratio\n");
    }
    if (have_samples) {
        double mx = 0.3 * (hi[0] - lo[0]), my = 0.3 * (hi[1] - lo[1]);
        fprintf(f, "set title '%s: samples x = f^-1(z), z ~ N(0, I), over the data'\nset size ratio -1\nset key top right\n", m->name);
        fprintf(f, "set xrange [%g:%g]\nset yrange [%g:%g]\n", lo[0] - mx, hi[0] + mx, lo[1] - my, hi[1] + my);
        fprintf(f, "plot '%s' skip 1 using 1:2 with points pt 7 ps 0.3 lc rgb '#08519c' title 'data', \\\n", p_data);
        fprintf(f, "     '%s' skip 1 using 1:2 with points pt 7 ps 0.3 lc rgb '#e6550d' title 'samples'\n", p_samp);
        fprintf(f, "set size noratio\nset key off\nset autoscale\n");
    }
    if (have_traj) {
        fprintf(f, "set title 'forward propagation: states through the layers'\n");
        fprintf(f, "set xlabel 'state s[%zu]'\nset ylabel 'state s[%zu]'\n", tc[0], tc[1]);
        fprintf(f, "plot for [i=0:%zu] '%s' index i skip 1 using 3:4:($5 == 0 ? 0x08519c : 0xa63603) "
                   "with lines lw 0.8 lc rgb variable, \\\n", nt - 1, p_traj);
        fprintf(f, "     for [i=0:%zu] '%s' index i skip 1 using ($2 == 0 ? $3 : 1/0):4 with points pt 6 ps 0.4 lc rgb 'gray40', \\\n",
                nt - 1, p_traj);
        fprintf(f, "     for [i=0:%zu] '%s' index i skip 1 using ($2 == %zu ? $3 : 1/0):4:($5 == 0 ? 0x08519c : 0xa63603) "
                   "with points pt 7 ps 0.5 lc rgb variable\n", nt - 1, p_traj, rows - 1);
        fprintf(f, "unset xlabel\nunset ylabel\n");
        fprintf(f, "set size noratio\n");
    }
    if (have_log) {
        fprintf(f, "set title 'training'\nset xlabel 'epoch'\nset key center right\nset ylabel 'loss'\n");
        int val = log_has_validation(logp);
        if (m->nclass)
            fprintf(f, "set y2tics\nset ytics nomirror\nset y2label 'accuracy'\nset yrange [0:*]\nset y2range [0:1.02]\n");
        fprintf(f, "plot '%s' skip 1 using 1:2 with lines lw 1.5 title 'loss'", logp);
        if (val)
            fprintf(f, ", \\\n     '%s' skip 1 using 1:4 with lines lw 1.5 title 'val loss'", logp);
        if (m->nclass)
            fprintf(f, ", \\\n     '%s' skip 1 using 1:3 axes x1y2 with lines lw 1.5 title 'accuracy'", logp);
        if (m->nclass && val)
            fprintf(f, ", \\\n     '%s' skip 1 using 1:5 axes x1y2 with lines lw 1.5 title 'val accuracy'", logp);
        fprintf(f, "\n");
    }
    if (have_rot) {
        fprintf(f, "set title '%s: accuracy on the data rotated by each angle'\n", m->name);
        fprintf(f, "set xlabel 'rotation (degrees)'\nset ylabel 'accuracy'\nunset y2tics\nunset y2label\nset ytics mirror\n");
        fprintf(f, "set xrange [0:360]\nset xtics 0,45,360\nset yrange [0:1.02]\n");
        fprintf(f, "set key off\nplot '%s' skip 1 using 1:2 with linespoints pt 7 ps 0.6 lw 1.5 lc rgb '#08519c'\n", p_rot);
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    f = NULL;
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", p_gp);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        printf("gnuplot is not installed: the data are in %s.*.csv and the script in %s\n", base, p_gp);
        status = 0;
        goto done;
    }
    if (system(cmd) != 0) {
        spdl_error(a, "gnuplot failed on %s", p_gp);
        goto done;
    }
    printf("wrote %s (data in %s.*.csv, script %s)\n", a->out, base, p_gp);
    status = 0;
done:
    if (f)
        fclose(f);
    spdl_data_free(&d);
    free(theta);
    free(work);
    free(gx);
    free(gy);
    free(traj);
    return status;
}
