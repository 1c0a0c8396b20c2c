/* test_weights.c - checkpoints (weights.c): a saved run loads back, and every
 * metadata field a resumed run relies on is read strictly, refused with the
 * field's name when missing, malformed or out of range.
 *
 * The model is a two-parameter descriptor (names, shapes, offsets), all
 * weights.c reads of a model. Files go to a fresh directory under /tmp. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "weights.h"

static char dir[64], path[128], err[1024];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static const spdl_param tiny_table[] = {
    {"K", 0, 8, 2, 2, {2, 2, 0, 0}},
    {"b", 8, 2, 1, 1, {2, 0, 0, 0}},
};

static const spdl_param *tiny_params(size_t *count)
{
    *count = 2;
    return tiny_table;
}

static const spdl_model tiny = {.name = "tiny", .source_hash = "0123456789abcdef", .nparam = 10,
                                .params = tiny_params};

static double theta[10];
static spdl_optim opt;

/* a checkpoint after 3 epochs, 42 steps */
static void setup(void)
{
    strcpy(dir, "/tmp/spdl-w-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    cr_assert_eq(spdl_optim_init(&opt, SPDL_ADAM, 10, 0.02), 0);
    for (int i = 0; i < 10; i++)
        theta[i] = 0.1 * i, opt.m[i] = i, opt.v[i] = 2 * i;
    opt.step = 42;
    spdl_run_state run = {.epoch = 3, .rng = 0x0123456789abcdefull, .cosine = 1, .total_epochs = 10};
    cr_assert_eq(spdl_weights_save(path, &tiny, theta, &opt, &run, err, sizeof err), 0, "%s", err);
}

static void teardown(void)
{
    spdl_optim_free(&opt);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(weights, .init = setup, .fini = teardown);

/* Rewrites the checkpoint with metadata key set to val (NULL: removed). */
static void set_meta(const char *key, const char *val)
{
    spdl_st st;
    cr_assert_eq(spdl_st_read(path, &st, err, sizeof err), 0, "%s", err);
    const char *k[16], *v[16];
    size_t n = 0;
    int found = 0;
    for (size_t i = 0; i < st.nmeta; i++) {
        if (!strcmp(st.meta_key[i], key)) {
            found = 1;
            if (!val)
                continue;
            k[n] = key, v[n++] = val;
        } else {
            k[n] = st.meta_key[i], v[n++] = st.meta_val[i];
        }
    }
    if (!found && val)
        k[n] = key, v[n++] = val;
    cr_assert_eq(spdl_st_write(path, st.t, st.nt, k, v, n, err, sizeof err), 0, "%s", err);
    spdl_st_free(&st);
}

/* Loads as a resume does (weights, optimiser, run): the status, err, *run. */
static int resume_load(spdl_run_state *run)
{
    double th[10];
    spdl_optim o;
    cr_assert_eq(spdl_optim_init(&o, SPDL_ADAM, 10, 0), 0);
    int rc = spdl_weights_load(path, &tiny, th, &o, run, NULL, err, sizeof err);
    spdl_optim_free(&o);
    return rc;
}

/* A resume fails with code and the message fmt (%s: the path). */
static void expect_resume_err(int code, const char *fmt)
{
    char want[1024];
    snprintf(want, sizeof want, fmt, path);
    spdl_run_state run;
    int rc = resume_load(&run);
    cr_assert_eq(rc, code, "rc %d: %s", rc, err);
    cr_assert_str_eq(err, want);
}

/* A resume succeeds; the run state it read. */
static spdl_run_state resume_ok(void)
{
    spdl_run_state run;
    int rc = resume_load(&run);
    cr_assert_eq(rc, 0, "%s", err);
    return run;
}

/* Each of the n values of metadata key is refused: "'key' is 'value', expected <expected>". */
static void refuse_each(const char *key, const char *const *bad, size_t n, const char *expected)
{
    for (size_t i = 0; i < n; i++) {
        char w[256];
        snprintf(w, sizeof w, "%%s: metadata '%s' is '%s', expected %s", key, bad[i], expected);
        set_meta(key, bad[i]);
        expect_resume_err(SPDL_EFORMAT, w);
    }
}

Test(weights, a_checkpoint_loads_back)
{
    double th[10];
    spdl_optim o;
    spdl_run_state run;
    int differs = 1;
    cr_assert_eq(spdl_optim_init(&o, SPDL_ADAM, 10, 0), 0);
    cr_assert_eq(spdl_weights_load(path, &tiny, th, &o, &run, &differs, err, sizeof err), 0, "%s", err);
    cr_assert_eq(differs, 0);
    cr_assert_eq(run.epoch, 3);
    cr_assert_eq(run.rng, 0x0123456789abcdefull);
    cr_assert_eq(run.lr, 0.02);
    cr_assert_eq(run.has_optim, 1);
    cr_assert_eq(run.cosine, 1);
    cr_assert_eq(run.total_epochs, 10);
    cr_assert_eq(o.step, 42);
    for (int i = 0; i < 10; i++)
        cr_assert(th[i] == theta[i] && o.m[i] == opt.m[i] && o.v[i] == opt.v[i]);
    spdl_optim_free(&o);
}

Test(weights, epoch_is_an_integer_in_range)
{
    const char *want = "%s: metadata 'epoch' is '%s', expected an integer from 0 to 10000000";
    const char *bad[] = {"abc", "-5", "99999999999", "", "3 ", " 3", "+3", "3.0", "0x3", "10000001",
                         "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[256];
        snprintf(w, sizeof w, want, "%s", bad[i]);
        set_meta("epoch", bad[i]);
        expect_resume_err(SPDL_EFORMAT, w);
    }
    set_meta("epoch", NULL);
    expect_resume_err(SPDL_EFORMAT, "%s has no 'epoch' in its metadata, so it cannot resume a run");
}

Test(weights, rng_is_sixteen_hex_digits)
{
    const char *bad[] = {"zz", "", "0123456789abcdef0", "0123456789abcde", "0123456789ABCDEF", "-123456789abcdef",
                         "0x23456789abcdef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[256];
        snprintf(w, sizeof w, "%%s: metadata 'rng' is '%s', expected 16 lowercase hexadecimal digits", bad[i]);
        set_meta("rng", bad[i]);
        expect_resume_err(SPDL_EFORMAT, w);
    }
    set_meta("rng", NULL);
    expect_resume_err(SPDL_EFORMAT, "%s has no 'rng' in its metadata, so it cannot resume a run");
}

Test(weights, step_is_an_integer_in_range)
{
    const char *bad[] = {"-1", "abc", "18446744073709551615", "9007199254740993", "1e3", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char w[256];
        snprintf(w, sizeof w, "%%s: metadata 'step' is '%s', expected an integer from 0 to 9007199254740992", bad[i]);
        set_meta("step", bad[i]);
        expect_resume_err(SPDL_EFORMAT, w);
    }
    set_meta("step", NULL);
    expect_resume_err(SPDL_EFORMAT, "%s has no 'step' in its metadata, so it cannot resume a run");
}

Test(weights, lr_is_a_positive_number)
{
    const char *bad[] = {"0", "-0.1", "nan", "inf", "1e999", "0.1x", ""};
    refuse_each("lr", bad, sizeof bad / sizeof bad[0], "a positive number");
}

Test(weights, format_is_spdl_weights_1)
{
    set_meta("format", "spdl-weights-2");
    expect_resume_err(SPDL_EFORMAT, "%s: metadata 'format' is 'spdl-weights-2', but this program reads 'spdl-weights-1'");
    /* also when only the weights are read (eval, predict, ...) */
    double th[10];
    cr_assert_eq(spdl_weights_load(path, &tiny, th, NULL, NULL, NULL, err, sizeof err), SPDL_EFORMAT);
    set_meta("format", NULL);
    expect_resume_err(SPDL_EFORMAT, "%s has no 'format' in its metadata (this program reads 'spdl-weights-1')");
}

Test(weights, weights_alone_ignore_the_run_fields)
{
    set_meta("epoch", "abc");
    double th[10];
    cr_assert_eq(spdl_weights_load(path, &tiny, th, NULL, NULL, NULL, err, sizeof err), 0, "%s", err);
}

Test(weights, schedule_is_optional_and_strict)
{
    set_meta("schedule", "linear");
    expect_resume_err(SPDL_EFORMAT, "%s: metadata 'schedule' is 'linear', expected constant or cosine");
    set_meta("schedule", "cosine");
    set_meta("epochs_total", "0");
    expect_resume_err(SPDL_EFORMAT, "%s: metadata 'epochs_total' is '0', expected an integer from 1 to 10000000");
    set_meta("epochs_total", "-10");
    expect_resume_err(SPDL_EFORMAT, "%s: metadata 'epochs_total' is '-10', expected an integer from 1 to 10000000");
    set_meta("epochs_total", NULL);
    expect_resume_err(SPDL_EFORMAT, "%s has no 'epochs_total' in its metadata, so it cannot resume a run");
    /* a file from before the schedule was saved: unknown, not an error */
    set_meta("schedule", NULL);
    cr_assert_eq(resume_ok().total_epochs, 0);
}

/* the checkpoint at path has no metadata `key`: a setting that is 0 is not recorded (older readers agree) */
static void assert_no_meta(const char *key)
{
    spdl_st st;
    cr_assert_eq(spdl_st_read(path, &st, err, sizeof err), 0, "%s", err);
    cr_assert_null(spdl_st_meta(&st, key), "a run without it records '%s'", key);
    spdl_st_free(&st);
}

/* values of an optional setting that must be a non-negative number (weight_decay, input_noise) */
static const char *const not_non_negative[] = {"-0.1", "nan", "inf", "1e999", "0.1x", "", "abc"};
enum { NOT_NON_NEGATIVE = sizeof not_non_negative / sizeof not_non_negative[0] };

Test(weights, weight_decay_round_trips_and_is_absent_when_zero)
{
    cr_assert_eq(resume_ok().decay, 0);
    assert_no_meta("weight_decay");
    opt.decay = 0.125;
    spdl_run_state saved = {.epoch = 3, .rng = 1};
    cr_assert_eq(spdl_weights_save(path, &tiny, theta, &opt, &saved, err, sizeof err), 0, "%s", err);
    cr_assert_eq(resume_ok().decay, 0.125);
}

Test(weights, input_noise_round_trips_and_is_absent_when_zero)
{
    cr_assert_eq(resume_ok().noise, 0);
    assert_no_meta("input_noise");
    spdl_run_state saved = {.epoch = 3, .rng = 1, .noise = 0.1};
    cr_assert_eq(spdl_weights_save(path, &tiny, theta, &opt, &saved, err, sizeof err), 0, "%s", err);
    cr_assert_eq(resume_ok().noise, 0.1);
}

Test(weights, input_noise_is_a_non_negative_number)
{
    refuse_each("input_noise", not_non_negative, NOT_NON_NEGATIVE, "a non-negative number");
    set_meta("input_noise", "0");
    cr_assert_eq(resume_ok().noise, 0);
}

Test(weights, weight_decay_is_a_non_negative_number)
{
    refuse_each("weight_decay", not_non_negative, NOT_NON_NEGATIVE, "a non-negative number");
    set_meta("weight_decay", "0");
    cr_assert_eq(resume_ok().decay, 0);
}
