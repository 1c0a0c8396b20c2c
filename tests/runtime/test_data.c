/* test_data.c - data specs, CSV, .npy, the built-in generators and digits.
 *
 * Files are written at test time into a fresh directory under /tmp; error
 * messages are compared byte for byte (with the temp path substituted). The
 * digits tests read the repository's data/ through SPDL_DATA (the tests run
 * from tests/runtime). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

static char dir[64];
static char err[1024];

static void setup(void)
{
    strcpy(dir, "/tmp/spdl-data-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    setenv("SPDL_DATA", "../../data", 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* removes the test's directory and everything in it */
static void teardown(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* cr_skip_test does not run .fini: clean up first */
#define SKIP(msg) \
    do { \
        teardown(); \
        cr_skip_test(msg); \
    } while (0)

TestSuite(csv, .init = setup, .fini = teardown);
TestSuite(npy, .init = setup, .fini = teardown);
TestSuite(spec, .init = setup, .fini = teardown);
TestSuite(builtin, .init = setup, .fini = teardown);
TestSuite(digits, .init = setup, .fini = teardown);

/* ---- helpers --------------------------------------------------------------- */

static const char *path_of(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static const char *write_bytes(const char *name, const void *s, size_t len)
{
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(s, 1, len, f), len);
    fclose(f);
    return p;
}

static const char *write_text(const char *name, const char *s) { return write_bytes(name, s, strlen(s)); }

/* loads spec and asserts success */
static void load_ok(const char *spec, size_t nin, size_t nt, spdl_data *d)
{
    int rc = spdl_data_load(spec, nin, nt, 1, d, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: rc %d: %s", spec, rc, err);
}

/* asserts the error code and message; "%P" in want stands for the path */
static void expect_err(const char *spec, size_t nin, size_t nt, int nclass, int code, const char *want)
{
    spdl_data d;
    char exp[1024];
    const char *at = strstr(want, "%P");
    if (at)
        snprintf(exp, sizeof exp, "%.*s%s%s", (int)(at - want), want, spec, at + 2);
    else
        snprintf(exp, sizeof exp, "%s", want);
    int rc = spdl_data_load_ex(spec, nin, nt, nclass, 1, &d, err, sizeof err);
    cr_assert_eq(rc, code, "%s: rc %d, want %d: %s", spec, rc, code, err);
    cr_assert_str_eq(err, exp);
    cr_assert_eq(d.n, 0);
    cr_assert_null(d.x);
    cr_assert_null(d.t);
}

static void expect_csv_err(const char *text, size_t nin, size_t nt, int nclass, int code, const char *want)
{
    const char *p = write_text("bad.csv", text);
    expect_err(p, nin, nt, nclass, code, want);
}

/* ---- CSV --------------------------------------------------------------------- */

Test(csv, without_header)
{
    spdl_data d;
    const char *p = write_text("a.csv", "1,2,0\n3.5,-4e-1,1\n-0.25,+7,1\n");
    load_ok(p, 2, 1, &d);
    double x[] = {1, 2, 3.5, -0.4, -0.25, 7}, t[] = {0, 1, 1};
    cr_assert_eq(d.n, 3);
    cr_assert_eq(d.nin, 2);
    cr_assert_eq(d.ntarget, 1);
    cr_assert_eq(d.nclass, 2);
    cr_assert_arr_eq(d.x, x, sizeof x);
    cr_assert_arr_eq(d.t, t, sizeof t);
    cr_assert_str_eq(d.desc, p);
    spdl_data_free(&d);
    cr_assert_null(d.x);
    spdl_data_free(&d); /* twice is harmless */
}

Test(csv, with_header)
{
    spdl_data d;
    load_ok(write_text("h.csv", "x,y,label\n1,2,3\n4,5,0\n"), 2, 1, &d);
    double x[] = {1, 2, 4, 5}, t[] = {3, 0};
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.nclass, 4);
    cr_assert_arr_eq(d.x, x, sizeof x);
    cr_assert_arr_eq(d.t, t, sizeof t);
    spdl_data_free(&d);
}

Test(csv, pandas_style_header_with_empty_first_field)
{
    spdl_data d;
    load_ok(write_text("h.csv", ",a,b\n1,2,0\n"), 2, 1, &d);
    cr_assert_eq(d.n, 1);
    spdl_data_free(&d);
}

Test(csv, crlf_blank_lines_blanks_bom_no_final_newline)
{
    spdl_data d;
    load_ok(write_text("c.csv", "\xef\xbb\xbfx,y,c\r\n\r\n 1 , 2\t,1\r\n  \n\t3,4,0\r\n\n5,6,1"), 2, 1, &d);
    double x[] = {1, 2, 3, 4, 5, 6}, t[] = {1, 0, 1};
    cr_assert_eq(d.n, 3);
    cr_assert_arr_eq(d.x, x, sizeof x);
    cr_assert_arr_eq(d.t, t, sizeof t);
    spdl_data_free(&d);
}

Test(csv, real_targets_and_no_targets)
{
    spdl_data d;
    const char *p = write_text("r.csv", "1,2,0.5,-3\n4,5,6,7e2\n");
    cr_assert_eq(spdl_data_load(p, 2, 2, 0, &d, err, sizeof err), 0, "%s", err);
    double t[] = {0.5, -3, 6, 700};
    cr_assert_arr_eq(d.t, t, sizeof t);
    cr_assert_eq(d.nclass, 0);
    spdl_data_free(&d);
    /* one real target: say so with nclass = 0 */
    p = write_text("r1.csv", "1,0.25\n2,-1.5\n");
    cr_assert_eq(spdl_data_load_ex(p, 1, 1, 0, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.t[1], -1.5);
    cr_assert_eq(d.nclass, 0);
    spdl_data_free(&d);
    /* no targets: a density model */
    p = write_text("n.csv", "1,2\n3,4\n");
    load_ok(p, 2, 0, &d);
    cr_assert_null(d.t);
    cr_assert_eq(d.ntarget, 0);
    cr_assert_eq(d.nclass, 0);
    cr_assert_eq(d.x[3], 4);
    spdl_data_free(&d);
}

Test(csv, gzip_compressed)
{
    const char *p = path_of("z.csv.gz");
    gzFile gz = gzopen(p, "wb");
    cr_assert_not_null(gz);
    gzputs(gz, "a,b,c\n1,2,1\n3,4,0\n");
    gzclose(gz);
    spdl_data d;
    load_ok(p, 2, 1, &d);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.x[2], 3);
    spdl_data_free(&d);
}

Test(csv, truncated_gzip_is_an_error)
{
    const char *p = path_of("t.csv.gz");
    gzFile gz = gzopen(p, "wb");
    for (int i = 0; i < 2000; i++)
        gzprintf(gz, "%d,%d,%d\n", i, i * 7 % 13, i % 2);
    gzclose(gz);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(truncate(p, st.st_size / 2), 0);
    spdl_data d;
    int rc = spdl_data_load(p, 2, 1, 0, &d, err, sizeof err);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(err, p) == err, "%s", err);
    cr_assert_null(d.x);
}

Test(csv, malformed_number)
{
    expect_csv_err("1,2,0\n3,abc,1\n", 2, 1, -1, SPDL_EFORMAT, "%P:2:3: expected a number, found 'abc'");
    expect_csv_err("1,2,0\n\n  3, 4x ,1\n", 2, 1, -1, SPDL_EFORMAT, "%P:3:6: expected a number, found '4x'");
    expect_csv_err("1,2,0\n3,0x10,1\n", 2, 1, -1, SPDL_EFORMAT, "%P:2:3: expected a number, found '0x10'");
    expect_csv_err("1,2,0\n3,\x01\xff,1\n", 2, 1, -1, SPDL_EFORMAT,
                   "%P:2:3: expected a number, found '\\x01\\xff'");
    expect_csv_err("1,2,0\n\"3\",4,1\n", 2, 1, -1, SPDL_EFORMAT, "%P:2:1: expected a number, found '\"3\"'");
}

Test(csv, empty_field)
{
    expect_csv_err("1,2,0\n3,,1\n", 2, 1, -1, SPDL_EFORMAT, "%P:2:3: expected a number, found an empty field");
    expect_csv_err("1,2,0\n3,4,\n", 2, 1, -1, SPDL_EFORMAT, "%P:2:5: expected a number, found an empty field");
}

Test(csv, wrong_number_of_fields)
{
    expect_csv_err("1,2,0\n3,4\n", 2, 1, -1, SPDL_EFORMAT,
                   "%P:2:4: expected 3 numbers per row (2 features and 1 label), found 2");
    expect_csv_err("1,2,0\n3,4,1,5\n", 2, 1, -1, SPDL_EFORMAT,
                   "%P:2:7: expected 3 numbers per row (2 features and 1 label), found 4");
    expect_csv_err("x,y\n1,2,3\n4,5,6\n", 1, 1, 0, SPDL_EMODEL,
                   "%P:2:5: expected 2 numbers per row (1 feature and 1 target), found 3");
    /* the first row already disagrees with the model: another model's data */
    expect_csv_err("1,2\n3,4\n", 2, 1, -1, SPDL_EMODEL,
                   "%P:1:4: expected 3 numbers per row (2 features and 1 label), found 2");
    expect_csv_err("1,2,3\n", 2, 0, -1, SPDL_EMODEL, "%P:1:5: expected 2 numbers per row (2 features), found 3");
}

Test(csv, first_line_mixing_numbers_and_text)
{
    expect_csv_err("1,abc,0\n2,3,1\n", 2, 1, -1, SPDL_EFORMAT,
                   "%P:1:3: expected a number, found 'abc' (the first line mixes numbers and text: "
                   "neither a header nor a row)");
    expect_csv_err("1,,0\n", 2, 1, -1, SPDL_EFORMAT,
                   "%P:1:3: expected a number, found an empty field (the first line mixes numbers and text: "
                   "neither a header nor a row)");
}

Test(csv, bad_labels)
{
    expect_csv_err("1,2,0\n3,4,1.5\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:2:5: expected a class label (a non-negative integer), found '1.5'");
    expect_csv_err("1,2,-1\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:1:5: expected a class label (a non-negative integer), found '-1'");
    expect_csv_err("1,2,1e10\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:1:5: expected a class label (a non-negative integer), found '1e10'");
    expect_csv_err("1,2,1\n1,2,3\n", 2, 1, 3, SPDL_ELABEL,
                   "%P:2:5: expected a class label below 3 (the model has 3 classes), found '3'");
    spdl_data d;
    cr_assert_eq(spdl_data_load_ex(write_text("ok.csv", "1,2,2.0\n"), 2, 1, 3, 0, &d, err, sizeof err), 0);
    cr_assert_eq(d.nclass, 3);
    spdl_data_free(&d);
}

/* A label's text must denote an integer exactly: 1e-400 rounds to 0 in
   strtod, and was read as class 0. */
Test(csv, labels_are_integers_as_written)
{
    expect_csv_err("1,2,0\n3,4,1e-400\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:2:5: expected a class label (a non-negative integer), found '1e-400'");
    expect_csv_err("1,2,1e-1\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:1:5: expected a class label (a non-negative integer), found '1e-1'");
    expect_csv_err("1,2,0.0000000000000000000001\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:1:5: expected a class label (a non-negative integer), found '0.0000000000000000000001'");
    expect_csv_err("1,2,1.00000000000000000001\n", 2, 1, -1, SPDL_ELABEL,
                   "%P:1:5: expected a class label (a non-negative integer), found '1.00000000000000000001'");
    /* every way of writing an integer is still one */
    spdl_data d;
    const char *ok = "1,2,2\n1,2,2.0\n1,2,2e0\n1,2,20e-1\n1,2,2.000000000000000000e+00\n1,2,0.2e1\n"
                     "1,2,0e-400\n1,2,-0\n1,2,.0\n1,2,0.000\n";
    cr_assert_eq(spdl_data_load_ex(write_text("ok.csv", ok), 2, 1, 3, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 10);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(d.t[i], i < 6 ? 2 : 0, "row %zu: %g", i + 1, d.t[i]);
    spdl_data_free(&d);
    /* a feature may still underflow to 0 */
    cr_assert_eq(spdl_data_load_ex(write_text("f.csv", "1e-400,2,1\n"), 2, 1, 3, 0, &d, err,
                                   sizeof err), 0, "%s", err);
    spdl_data_free(&d);
}

Test(csv, non_finite_values)
{
    expect_csv_err("1,nan,0\n", 2, 1, -1, SPDL_ENONFINITE, "%P:1:3: expected a finite number, found 'nan'");
    expect_csv_err("1,2,0\n-Inf,2,0\n", 2, 1, -1, SPDL_ENONFINITE,
                   "%P:2:1: expected a finite number, found '-Inf'");
    expect_csv_err("1,2,0\n1e999,2,0\n", 2, 1, -1, SPDL_ENONFINITE,
                   "%P:2:1: expected a finite number, found '1e999'");
    expect_csv_err("1,2,NaN\n", 2, 1, -1, SPDL_ENONFINITE, "%P:1:5: expected a finite number, found 'NaN'");
}

Test(csv, empty_and_header_only_files)
{
    expect_csv_err("", 2, 1, -1, SPDL_EFORMAT, "%P: the file is empty");
    expect_csv_err("x,y,c\n\n\r\n", 2, 1, -1, SPDL_EFORMAT, "%P: no data rows (only a header or blank lines)");
    expect_csv_err("\n\n", 2, 1, -1, SPDL_EFORMAT, "%P: no data rows (only a header or blank lines)");
}

Test(csv, missing_file_and_directory)
{
    expect_err(path_of("nope.csv"), 2, 1, -1, SPDL_EIO, "%P: cannot open: No such file or directory");
    expect_err(dir, 2, 1, -1, SPDL_EIO, "%P: is a directory, expected a .csv or .npy file");
}

Test(csv, nul_bytes_and_long_lines)
{
    expect_err(write_bytes("nul.csv", "1,2,0\n3,\0,1\n", 12), 2, 1, -1, SPDL_EFORMAT,
               "%P:2:3: expected a number, found '\\x00'");
    /* a 1 MB field is quoted, cut short */
    size_t n = 1 << 20;
    char *big = malloc(n + 16);
    cr_assert_not_null(big);
    strcpy(big, "1,2,0\n");
    memset(big + 6, 'z', n);
    strcpy(big + 6 + n, ",1,0\n");
    const char *p = write_text("big.csv", big);
    free(big);
    expect_err(p, 2, 1, -1, SPDL_EFORMAT,
               "%P:2:1: expected a number, found 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...'");
}

Test(csv, n_caps_the_rows)
{
    spdl_data d;
    const char *p = write_text("cap.csv", "1,1\n2,0\n3,1\n4,0\n");
    char spec[300];
    snprintf(spec, sizeof spec, "%s?n=2", p);
    load_ok(spec, 1, 1, &d);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(d.x[1], 2);
    cr_assert_eq(d.nclass, 2);
    char want[400];
    snprintf(want, sizeof want, "%s, first 2 of 4 samples", p);
    cr_assert_str_eq(d.desc, want);
    spdl_data_free(&d);
    snprintf(spec, sizeof spec, "%s?n=100", p);
    load_ok(spec, 1, 1, &d);
    cr_assert_eq(d.n, 4);
    spdl_data_free(&d);
}

/* A program that set a comma-decimal locale still reads "0.5" (and writes
   "noise=0.05" in descriptions). Builds de_DE with localedef when the
   machine has no such locale installed. */
Test(csv, comma_decimal_locale_does_not_matter)
{
    if (!setlocale(LC_NUMERIC, "de_DE.UTF-8")) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
        if (system(cmd) != 0)
            SKIP("no de_DE locale and localedef cannot build one");
        setenv("LOCPATH", dir, 1);
        if (!setlocale(LC_NUMERIC, "de_DE.UTF-8"))
            SKIP("the de_DE locale built by localedef does not load");
    }
    char probe[16];
    snprintf(probe, sizeof probe, "%g", 0.5);
    cr_assert_str_eq(probe, "0,5");
    spdl_data d;
    load_ok(write_text("l.csv", "0.5,1\n"), 1, 1, &d);
    cr_assert_eq(d.x[0], 0.5);
    spdl_data_free(&d);
    load_ok("builtin:spirals?noise=0.25", 2, 1, &d);
    cr_assert_str_eq(d.desc, "builtin:spirals (n=1000, noise=0.25, turns=1.5, seed=1)");
    spdl_data_free(&d);
    snprintf(probe, sizeof probe, "%g", 0.5);
    cr_assert_str_eq(probe, "0,5"); /* the program's locale is left alone */
    setlocale(LC_NUMERIC, "C"); /* the locale files go with the directory */
}

/* ---- .npy ---------------------------------------------------------------- */

/* A .npy file: magic, version, header dict padded to 64 bytes, then data. */
static const char *make_npy(const char *name, int major, const char *dict, const void *data, size_t len)
{
    unsigned char buf[4096];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hl = dl + 1;
    while ((pre + hl) % 64)
        hl++;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (unsigned char)hl;
        buf[9] = (unsigned char)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            buf[8 + i] = (unsigned char)(hl >> (8 * i));
    }
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hl - dl - 1);
    buf[pre + hl - 1] = '\n';
    cr_assert_leq(pre + hl + len, sizeof buf);
    if (len)
        memcpy(buf + pre + hl, data, len);
    return write_bytes(name, buf, pre + hl + len);
}

static void put_le(unsigned char *o, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        o[i] = (unsigned char)(v >> (8 * i));
}

Test(npy, round_trip_through_spdl_npy_write)
{
    double a[] = {1.5, -2, 0.1, 1, /**/ -0.0, 1e-310, 1.7976931348623157e308, 0, /**/ 3, 4, 5, 1};
    const char *p = path_of("rt.npy");
    cr_assert_eq(spdl_npy_write(p, a, 3, 4, err, sizeof err), 0, "%s", err);
    /* the header numpy would write */
    FILE *f = fopen(p, "rb");
    unsigned char h[128];
    cr_assert_eq(fread(h, 1, 128, f), 128);
    fclose(f);
    cr_assert_eq(memcmp(h, "\x93NUMPY\x01\x00", 8), 0);
    size_t hl = h[8] | (size_t)h[9] << 8;
    cr_assert_eq((10 + hl) % 64, 0);
    const char *want = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }";
    cr_assert_eq(memcmp(h + 10, want, strlen(want)), 0);
    cr_assert_eq(h[10 + hl - 1], '\n');
    spdl_data d;
    cr_assert_eq(spdl_data_load(p, 3, 1, 0, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_arr_eq(d.x + 3 * i, a + 4 * i, 3 * sizeof(double));
        cr_assert_eq(d.t[i], a[4 * i + 3]);
    }
    cr_assert(signbit(d.x[3]));
    spdl_data_free(&d);
    /* a 0 x 2 array can be written too; reading it says there are no samples */
    cr_assert_eq(spdl_npy_write(path_of("empty.npy"), NULL, 0, 2, err, sizeof err), 0);
    expect_err(path_of("empty.npy"), 1, 1, -1, SPDL_EFORMAT, "%P: no samples (shape (0, 2))");
}

Test(npy, write_errors)
{
    double a[1] = {0};
    cr_assert_eq(spdl_npy_write(path_of("no/such/dir.npy"), a, 1, 1, err, sizeof err), SPDL_EIO);
    char want[300];
    snprintf(want, sizeof want, "%s: cannot create: No such file or directory", path_of("no/such/dir.npy"));
    cr_assert_str_eq(err, want);
    cr_assert_eq(spdl_npy_write(path_of("x.npy"), NULL, 1, 1, err, sizeof err), SPDL_EINVAL);
}

/* Every supported dtype, with format versions 1.0 and 2.0: 3 samples of 2 features and a label. */
Test(npy, every_supported_dtype_v1_and_v2)
{
    const double want_x[] = {1, -2, 3, 4, -5, 6}, want_t[] = {0, 2, 1};
    const char *descr[] = {"<f8", "<f4", "<i8", "<i4"};
    int size[] = {8, 4, 8, 4};
    for (int major = 1; major <= 2; major++) {
        for (int k = 0; k < 4; k++) {
            unsigned char data[9 * 8];
            for (int i = 0; i < 9; i++) {
                double v = i % 3 == 2 ? want_t[i / 3] : want_x[i / 3 * 2 + i % 3];
                uint64_t u;
                if (k == 0) {
                    memcpy(&u, &v, 8);
                } else if (k == 1) {
                    float fv = (float)v;
                    uint32_t w;
                    memcpy(&w, &fv, 4);
                    u = w;
                } else {
                    u = (uint64_t)(int64_t)v;
                }
                put_le(data + size[k] * i, u, size[k]);
            }
            char dict[128];
            snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3, 3), }", descr[k]);
            const char *p = make_npy("t.npy", major, dict, data, (size_t)(9 * size[k]));
            spdl_data d;
            cr_assert_eq(spdl_data_load(p, 2, 1, 0, &d, err, sizeof err), 0, "v%d %s: %s", major, descr[k], err);
            cr_assert_eq(d.n, 3);
            cr_assert_arr_eq(d.x, want_x, sizeof want_x, "v%d %s", major, descr[k]);
            cr_assert_arr_eq(d.t, want_t, sizeof want_t, "v%d %s", major, descr[k]);
            cr_assert_eq(d.nclass, 3);
            spdl_data_free(&d);
        }
    }
}

Test(npy, one_dimensional_and_header_variants)
{
    unsigned char data[4 * 8];
    for (int i = 0; i < 4; i++) {
        double v = i * 0.5;
        uint64_t u;
        memcpy(&u, &v, 8);
        put_le(data + 8 * i, u, 8);
    }
    /* double quotes, key order, no trailing comma, Python 2 long */
    const char *p = make_npy("one.npy", 1, "{\"shape\": (4L,), \"fortran_order\": False, \"descr\": \"<f8\"}", data,
                             sizeof data);
    spdl_data d;
    load_ok(p, 1, 0, &d);
    cr_assert_eq(d.n, 4);
    cr_assert_eq(d.x[3], 1.5);
    spdl_data_free(&d);
    expect_err(p, 2, 0, -1, SPDL_EMODEL,
               "%P: shape (4,) has 1 number per sample, the model expects 2 (2 features)");
}

static const unsigned char f8_row[3 * 8] = {0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0};

Test(npy, unsupported_arrays)
{
    expect_err(make_npy("b.npy", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 3), }", f8_row, 24), 2,
               1, -1, SPDL_EFORMAT,
               "%P: dtype '>f8' is big-endian, which is not supported (supported: '<f8', '<f4', '<i8', '<i4')");
    expect_err(make_npy("o.npy", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (1, 3), }", f8_row, 24), 2, 1,
               -1, SPDL_EFORMAT,
               "%P: dtype '|O' is an object array, which is not supported (supported: '<f8', '<f4', '<i8', '<i4')");
    expect_err(make_npy("h.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 3), }", f8_row, 6), 2, 1,
               -1, SPDL_EFORMAT, "%P: dtype '<f2' is not supported (supported: '<f8', '<f4', '<i8', '<i4')");
    expect_err(make_npy("s.npy", 1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }", f8_row,
                        8),
               1, 0, -1, SPDL_EFORMAT,
               "%P: structured arrays (a list 'descr') are not supported; supported dtypes: '<f8', '<f4', '<i8', "
               "'<i4'");
    expect_err(make_npy("f.npy", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 3), }", f8_row, 24), 2, 1,
               -1, SPDL_EFORMAT,
               "%P: Fortran-order arrays are not supported (save a C-order array, e.g. np.ascontiguousarray)");
    expect_err(make_npy("3.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 3), }", f8_row, 24),
               2, 1, -1, SPDL_EFORMAT,
               "%P: a 3-dimensional array of shape (1, 1, 3) is not supported (expected (n,) or (n, k))");
    expect_err(make_npy("0.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", f8_row, 8), 1, 0,
               -1, SPDL_EFORMAT,
               "%P: a 0-dimensional array of shape () is not supported (expected (n,) or (n, k))");
    expect_err(make_npy("w.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }", f8_row, 24), 3,
               1, -1, SPDL_EMODEL,
               "%P: shape (1, 3) has 3 numbers per sample, the model expects 4 (3 features and 1 label)");
}

Test(npy, corrupt_files)
{
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }";
    expect_err(make_npy("t.npy", 1, dict, f8_row, 16), 2, 1, -1, SPDL_EFORMAT,
               "%P: truncated: shape (1, 3) of '<f8' needs 24 bytes of data, the file has 16");
    expect_err(make_npy("l.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f8_row, 24), 2,
               1, -1, SPDL_EFORMAT, "%P: truncated: shape (2, 3) of '<f8' needs 48 bytes of data, the file has 24");
    unsigned char more[32] = {0};
    memcpy(more, f8_row, 24);
    expect_err(make_npy("x.npy", 1, dict, more, 32), 2, 1, -1, SPDL_EFORMAT,
               "%P: the header does not match the data: shape (1, 3) of '<f8' needs 24 bytes of data, the file has "
               "32");
    expect_err(make_npy("k.npy", 1, "{'descr': '<f8', 'fortran_order': False}", f8_row, 24), 2, 1, -1,
               SPDL_EFORMAT, "%P: the header lacks 'shape'");
    expect_err(make_npy("e.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), 'x': 1}", f8_row,
                        24),
               2, 1, -1, SPDL_EFORMAT,
               "%P: unexpected key 'x' in the header (expected 'descr', 'fortran_order', 'shape')");
    expect_err(make_npy("d.npy", 1, "{'descr': '<f8', 'descr': '<f8', 'shape': (1, 3), }", f8_row, 24), 2, 1, -1,
               SPDL_EFORMAT, "%P: the header repeats 'descr'");
    expect_err(make_npy("n.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, -3), }", f8_row, 24), 2,
               1, -1, SPDL_EFORMAT, "%P: 'shape' is not a tuple of non-negative integers");
    expect_err(make_npy("g.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), } junk", f8_row,
                        24),
               2, 1, -1, SPDL_EFORMAT, "%P: unexpected text after the header dict at byte 60");
    expect_err(make_npy("p.npy", 1, "[1, 2]", f8_row, 24), 2, 1, -1, SPDL_EFORMAT,
               "%P: the header is not a Python dict literal");
    expect_err(make_npy("y.npy", 1,
                        "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999, 3), }", f8_row,
                        24),
               2, 1, -1, SPDL_EFORMAT, "%P: 'shape' is not a tuple of non-negative integers");
    expect_err(make_npy("z.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 3), }",
                        f8_row, 24),
               2, 1, -1, SPDL_EFORMAT, "%P: shape (4611686018427387904, 3) is too large");
    /* version, magic and header length */
    unsigned char v3[64] = {0x93, 'N', 'U', 'M', 'P', 'Y', 3, 0, 0, 0};
    expect_err(write_bytes("v3.npy", v3, sizeof v3), 2, 1, -1, SPDL_EFORMAT,
               "%P: .npy format version 3.0 is not supported (supported: 1.0, 2.0)");
    expect_err(write_bytes("m.npy", "NUMPY-ish file", 14), 2, 1, -1, SPDL_EFORMAT,
               "%P: not a NumPy .npy file (it does not start with \\x93NUMPY)");
    unsigned char big[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0xff, '{'};
    expect_err(write_bytes("hl.npy", big, sizeof big), 2, 1, -1, SPDL_EFORMAT,
               "%P: truncated .npy file: the header length 65535 runs past the end of the file (16 bytes)");
    unsigned char big2[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0xff};
    expect_err(write_bytes("hl2.npy", big2, sizeof big2), 2, 1, -1, SPDL_EFORMAT,
               "%P: truncated .npy file: the header length 4294967295 runs past the end of the file (16 bytes)");
    expect_err(write_bytes("s.npy", "\x93NUM", 4), 2, 1, -1, SPDL_EFORMAT,
               "%P: truncated .npy file (4 bytes, a header needs at least 10)");
}

Test(npy, every_truncation_is_an_error)
{
    double a[6] = {1, 2, 0, 3, 4, 1};
    const char *p = path_of("full.npy");
    cr_assert_eq(spdl_npy_write(p, a, 2, 3, err, sizeof err), 0);
    FILE *f = fopen(p, "rb");
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_eq((n - 48) % 64, 0);
    for (size_t k = 0; k < n; k++) {
        spdl_data d;
        const char *q = write_bytes("cut.npy", buf, k);
        int rc = spdl_data_load(q, 2, 1, 0, &d, err, sizeof err);
        cr_assert_lt(rc, 0, "prefix %zu accepted", k);
        cr_assert(strchr(err, '\n') == NULL && err[0], "prefix %zu: '%s'", k, err);
    }
}

Test(npy, non_finite_and_bad_labels)
{
    const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    unsigned char data[48];
    double v[6] = {1, 2, 0, NAN, 4, 1};
    for (int i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        put_le(data + 8 * i, u, 8);
    }
    expect_err(make_npy("nan.npy", 1, dict, data, 48), 2, 1, -1, SPDL_ENONFINITE,
               "%P: element [1, 0] is NaN, expected a finite number");
    v[3] = 3;
    v[5] = -INFINITY;
    for (int i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        put_le(data + 8 * i, u, 8);
    }
    expect_err(make_npy("inf.npy", 1, dict, data, 48), 2, 1, -1, SPDL_ENONFINITE,
               "%P: element [1, 2] is infinite, expected a finite number");
    unsigned char idata[24];
    int32_t iv[6] = {1, 2, 0, 3, 4, -1};
    for (int i = 0; i < 6; i++)
        put_le(idata + 4 * i, (uint32_t)iv[i], 4);
    expect_err(make_npy("lab.npy", 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", idata, 24), 2,
               1, -1, SPDL_ELABEL, "%P: element [1, 2]: expected a class label (a non-negative integer), found -1");
    iv[5] = 7;
    for (int i = 0; i < 6; i++)
        put_le(idata + 4 * i, (uint32_t)iv[i], 4);
    expect_err(make_npy("lab2.npy", 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", idata, 24), 2,
               1, 5, SPDL_ELABEL,
               "%P: element [1, 2]: expected a class label below 5 (the model has 5 classes), found 7");
}

/* ---- specs ----------------------------------------------------------------- */

Test(spec, bad_specs)
{
    expect_err("", 2, 1, -1, SPDL_EINVAL, "empty data spec: expected a .csv or .npy file or builtin:NAME");
    expect_err("builtin:spiral", 2, 1, -1, SPDL_EINVAL,
               "unknown data set 'builtin:spiral' (built-in sets: builtin:spirals, builtin:moons, builtin:circles, "
               "builtin:digits, builtin:mnist, builtin:waves, builtin:pointsets)");
    expect_err("builtin:spirals?foo=1", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: unknown key 'foo' (known keys: n, noise, turns, seed, split, part, rotate, mirror, shift, permute)");
    expect_err("builtin:moons?turns=2", 2, 1, -1, SPDL_EINVAL,
               "builtin:moons: unknown key 'turns' (known keys: n, noise, seed, split, part, rotate, mirror, shift, permute)");
    expect_err("builtin:spirals?n=5&n=6", 2, 1, -1, SPDL_EINVAL, "builtin:spirals: key 'n' is given twice");
    expect_err("builtin:spirals?n", 2, 1, -1, SPDL_EINVAL, "builtin:spirals: expected key=value after '?', found 'n'");
    expect_err("builtin:spirals?n=5&&seed=1", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: expected key=value after '?', found ''");
    expect_err("builtin:spirals?n=0", 2, 1, -1, SPDL_EINVAL, "builtin:spirals: n=0 is not a positive integer");
    expect_err("builtin:spirals?n=-3", 2, 1, -1, SPDL_EINVAL, "builtin:spirals: n=-3 is not a positive integer");
    expect_err("builtin:spirals?n=20000000", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: n=20000000 is too large (at most 10000000)");
    expect_err("builtin:spirals?noise=abc", 2, 1, -1, SPDL_EINVAL, "builtin:spirals: noise=abc is not a number");
    expect_err("builtin:spirals?noise=-1", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: noise=-1 is out of range (between 0 and 10)");
    expect_err("builtin:spirals?noise=nan", 2, 1, -1, SPDL_EINVAL, "builtin:spirals: noise=nan is not a number");
    expect_err("builtin:circles?factor=1", 2, 1, -1, SPDL_EINVAL,
               "builtin:circles: factor=1 is out of range (strictly between 0 and 1)");
    expect_err("builtin:spirals?seed=x", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: seed=x is not a non-negative 64-bit integer");
    expect_err("builtin:spirals?split=0.2", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: split=0.2 needs part=train or part=test");
    expect_err("builtin:spirals?part=test", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: part=test needs split=F (0 < F < 1)");
    expect_err("builtin:spirals?split=1&part=test", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: split=1 is out of range (strictly between 0 and 1)");
    expect_err("builtin:spirals?split=0.5&part=all", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: part=all: expected part=train or part=test");
    expect_err("builtin:spirals?n=3&split=0.1&part=test", 2, 1, -1, SPDL_EINVAL,
               "builtin:spirals: split=0.1 of 3 samples leaves the test part empty");
    expect_err("builtin:digits?scale=2", 64, 1, -1, SPDL_EINVAL,
               "builtin:digits: scale=2: expected scale=1 (pixels / 16) or scale=0 (pixels 0..16)");
    expect_err(NULL, 2, 1, -1, SPDL_EINVAL, "spdl_data_load: NULL argument");
    expect_err("builtin:spirals", 0, 1, -1, SPDL_EINVAL, "spdl_data_load: the model has no inputs");
    expect_err("builtin:spirals", 2, 2, 3, SPDL_EINVAL,
               "spdl_data_load: class labels need exactly one target per sample");
}

Test(spec, file_keys)
{
    const char *p = write_text("k.csv", "1,0\n");
    char spec[300];
    snprintf(spec, sizeof spec, "%s?noise=1", p);
    char want[400];
    snprintf(want, sizeof want, "%s: unknown key 'noise' (known keys: n, seed, split, part, rotate, mirror, shift, permute)", p);
    expect_err(spec, 1, 1, -1, SPDL_EINVAL, want);
    /* a file whose name holds '?' is taken whole */
    spdl_data d;
    const char *q = write_text("odd?n=1.csv", "1,0\n2,1\n");
    load_ok(q, 1, 1, &d);
    cr_assert_eq(d.n, 2);
    spdl_data_free(&d);
}

/* ---- built-in generators ---------------------------------------------------- */

Test(builtin, same_seed_same_bits_different_seed_different)
{
    const char *sets[] = {"builtin:spirals", "builtin:moons", "builtin:circles"};
    for (int k = 0; k < 3; k++) {
        spdl_data a, b, c, e;
        cr_assert_eq(spdl_data_load(sets[k], 2, 1, 7, &a, err, sizeof err), 0, "%s", err);
        cr_assert_eq(spdl_data_load(sets[k], 2, 1, 7, &b, err, sizeof err), 0);
        cr_assert_eq(spdl_data_load(sets[k], 2, 1, 8, &c, err, sizeof err), 0);
        char spec[64];
        snprintf(spec, sizeof spec, "%s?seed=7", sets[k]);
        cr_assert_eq(spdl_data_load(spec, 2, 1, 99, &e, err, sizeof err), 0); /* the key beats the argument */
        cr_assert_eq(a.n, 1000);
        cr_assert_eq(memcmp(a.x, b.x, 2000 * sizeof(double)), 0, "%s", sets[k]);
        cr_assert_eq(memcmp(a.t, b.t, 1000 * sizeof(double)), 0);
        cr_assert_eq(memcmp(a.x, e.x, 2000 * sizeof(double)), 0);
        size_t same = 0;
        for (size_t i = 0; i < 2000; i++)
            same += a.x[i] == c.x[i];
        cr_assert_lt(same, 10, "%s: seeds 7 and 8 agree on %zu inputs", sets[k], same);
        spdl_data_free(&a);
        spdl_data_free(&b);
        spdl_data_free(&c);
        spdl_data_free(&e);
    }
}

Test(builtin, sizes_balance_and_descriptions)
{
    struct {
        const char *spec, *desc;
        size_t n;
    } cases[] = {
        {"builtin:spirals", "builtin:spirals (n=1000, noise=0.05, turns=1.5, seed=1)", 1000},
        {"builtin:moons?n=1001", "builtin:moons (n=1001, noise=0.1, seed=1)", 1001},
        {"builtin:circles?n=7&noise=0&factor=0.25&seed=3",
         "builtin:circles (n=7, noise=0, factor=0.25, seed=3)", 7},
        {"builtin:spirals?n=2000&noise=0.1&turns=2", "builtin:spirals (n=2000, noise=0.1, turns=2, seed=1)", 2000},
        {"builtin:spirals?", "builtin:spirals (n=1000, noise=0.05, turns=1.5, seed=1)", 1000},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        spdl_data d;
        load_ok(cases[k].spec, 2, 1, &d);
        cr_assert_eq(d.n, cases[k].n);
        cr_assert_eq(d.nin, 2);
        cr_assert_eq(d.ntarget, 1);
        cr_assert_eq(d.nclass, 2);
        cr_assert_str_eq(d.desc, cases[k].desc);
        size_t ones = 0;
        for (size_t i = 0; i < d.n; i++) {
            cr_assert(d.t[i] == 0 || d.t[i] == 1);
            ones += d.t[i] == 1;
        }
        cr_assert_eq(ones, d.n / 2, "%s: %zu of %zu in class 1", cases[k].spec, ones, d.n);
        spdl_data_free(&d);
    }
}

Test(builtin, geometry_without_noise)
{
    spdl_data d;
    load_ok("builtin:spirals?noise=0", 2, 1, &d);
    double lo = 1, hi = 0;
    for (size_t i = 0; i < d.n; i++) {
        double r = hypot(d.x[2 * i], d.x[2 * i + 1]);
        lo = fmin(lo, r);
        hi = fmax(hi, r);
    }
    cr_assert(lo >= 0.1 - 1e-12 && hi <= 1 + 1e-12, "radii %g..%g", lo, hi);
    spdl_data_free(&d);
    load_ok("builtin:spirals", 2, 1, &d);
    for (size_t i = 0; i < 2 * d.n; i++)
        cr_assert(fabs(d.x[i]) < 1.3, "input %g", d.x[i]);
    spdl_data_free(&d);
    load_ok("builtin:circles?noise=0&factor=0.3", 2, 1, &d);
    for (size_t i = 0; i < d.n; i++)
        cr_assert_float_eq(hypot(d.x[2 * i], d.x[2 * i + 1]), d.t[i] ? 0.3 : 1.0, 1e-12);
    spdl_data_free(&d);
    load_ok("builtin:moons?noise=0", 2, 1, &d);
    for (size_t i = 0; i < d.n; i++) {
        double px = d.x[2 * i] + 0.5, py = d.x[2 * i + 1] + 0.25;
        if (d.t[i]) {
            px = 1 - px;
            py = 0.5 - py;
        }
        cr_assert_float_eq(hypot(px, py), 1.0, 1e-12);
        cr_assert(py >= -1e-12);
    }
    spdl_data_free(&d);
}

/* the spirals are two copies of one arm, turned by 180 degrees */
Test(builtin, spirals_arms_are_point_symmetric)
{
    spdl_data d;
    load_ok("builtin:spirals?noise=0&n=400", 2, 1, &d);
    for (size_t i = 0; i < d.n; i++) {
        double x = d.x[2 * i], y = d.x[2 * i + 1];
        if (d.t[i]) {
            x = -x;
            y = -y;
        }
        double r = hypot(x, y), u = (r - 0.1) / 0.9, a = 2 * M_PI * 1.5 * u;
        cr_assert_float_eq(x, r * cos(a), 1e-9);
        cr_assert_float_eq(y, r * sin(a), 1e-9);
    }
    spdl_data_free(&d);
}

/* sorts rows (as bit patterns) so two sets of samples can be compared */
static int cmp_row(const void *a, const void *b) { return memcmp(a, b, 3 * sizeof(double)); }

static double *rows_of(const spdl_data *d)
{
    double *r = malloc(d->n * 3 * sizeof *r);
    for (size_t i = 0; i < d->n; i++) {
        r[3 * i] = d->x[2 * i];
        r[3 * i + 1] = d->x[2 * i + 1];
        r[3 * i + 2] = d->t[i];
    }
    return r;
}

Test(builtin, split_parts_partition_the_samples)
{
    spdl_data all, tr, te;
    load_ok("builtin:moons?seed=3", 2, 1, &all);
    load_ok("builtin:moons?seed=3&split=0.25&part=train", 2, 1, &tr);
    load_ok("builtin:moons?split=0.25&part=test&seed=3", 2, 1, &te);
    cr_assert_eq(tr.n, 750);
    cr_assert_eq(te.n, 250);
    cr_assert_str_eq(tr.desc, "builtin:moons (n=1000, noise=0.1, seed=3), train part: 750 of 1000 samples "
                              "(split=0.25, seed=3)");
    double *a = rows_of(&all), *b = malloc(1000 * 3 * sizeof *b);
    double *rt = rows_of(&tr), *rs = rows_of(&te);
    memcpy(b, rt, 750 * 3 * sizeof *b);
    memcpy(b + 750 * 3, rs, 250 * 3 * sizeof *b);
    qsort(a, 1000, 3 * sizeof *a, cmp_row);
    qsort(b, 1000, 3 * sizeof *b, cmp_row);
    cr_assert_eq(memcmp(a, b, 1000 * 3 * sizeof *a), 0, "train + test is not the whole set");
    /* the same split through the API */
    spdl_data t2, v2;
    cr_assert_eq(spdl_data_split(&all, 0.25, 3, &t2, &v2), 0);
    cr_assert_eq(memcmp(t2.x, tr.x, 750 * 2 * sizeof(double)), 0);
    cr_assert_eq(memcmp(v2.t, te.t, 250 * sizeof(double)), 0);
    cr_assert_eq(t2.nclass, 2);
    /* another split seed gives another split */
    spdl_data o, ov;
    cr_assert_eq(spdl_data_split(&all, 0.25, 4, &o, &ov), 0);
    cr_assert_neq(memcmp(o.x, tr.x, 750 * 2 * sizeof(double)), 0);
    free(a);
    free(b);
    free(rt);
    free(rs);
    spdl_data_free(&all);
    spdl_data_free(&tr);
    spdl_data_free(&te);
    spdl_data_free(&t2);
    spdl_data_free(&v2);
    spdl_data_free(&o);
    spdl_data_free(&ov);
}

Test(builtin, split_api_rejects_bad_arguments)
{
    spdl_data d, a, b;
    load_ok("builtin:spirals?n=10", 2, 1, &d);
    cr_assert_eq(spdl_data_split(&d, 0, 1, &a, &b), SPDL_EINVAL);
    cr_assert_eq(spdl_data_split(&d, 1, 1, &a, &b), SPDL_EINVAL);
    cr_assert_eq(spdl_data_split(&d, 0.01, 1, &a, &b), SPDL_EINVAL); /* nothing left for validation */
    cr_assert_eq(spdl_data_split(NULL, 0.5, 1, &a, &b), SPDL_EINVAL);
    cr_assert_null(a.x);
    cr_assert_eq(spdl_data_split(&d, 0.3, 1, &a, &b), 0);
    cr_assert_eq(a.n, 7);
    cr_assert_eq(b.n, 3);
    spdl_data_free(&a);
    spdl_data_free(&b);
    spdl_data_free(&d);
}

Test(builtin, model_mismatch)
{
    expect_err("builtin:spirals", 3, 1, -1, SPDL_EMODEL, "builtin:spirals has 2 inputs per sample, the model has 3");
    expect_err("builtin:moons", 2, 2, -1, SPDL_EMODEL,
               "builtin:moons gives one class label per sample, the model expects 2 real targets");
    expect_err("builtin:moons", 2, 1, 0, SPDL_EMODEL,
               "builtin:moons gives one class label per sample, the model expects 1 real target");
    expect_err("builtin:circles", 2, 1, 3, SPDL_EMODEL, "builtin:circles has 2 classes, the model has 3");
    expect_err("builtin:digits", 2, 1, -1, SPDL_EMODEL, "builtin:digits has 64 inputs per sample, the model has 2");
    /* a density model takes the inputs only */
    spdl_data d;
    load_ok("builtin:moons", 2, 0, &d);
    cr_assert_null(d.t);
    cr_assert_eq(d.ntarget, 0);
    cr_assert_eq(d.nclass, 0);
    spdl_data_free(&d);
}

/* several threads load at once and agree */
typedef struct {
    const char *spec;
    size_t nin;
    spdl_data d;
    int rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    char e[256];
    j->rc = spdl_data_load(j->spec, j->nin, 1, 5, &j->d, e, sizeof e);
    return NULL;
}

Test(builtin, thread_safe)
{
    job jobs[6] = {{"builtin:spirals?n=5000", 2, {0}, 0}, {"builtin:spirals?n=5000", 2, {0}, 0},
                   {"builtin:digits?split=0.5&part=train", 64, {0}, 0},
                   {"builtin:digits?split=0.5&part=train", 64, {0}, 0}, {"builtin:circles", 2, {0}, 0},
                   {"builtin:circles", 2, {0}, 0}};
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i += 2) {
        cr_assert_eq(jobs[i].rc, 0);
        cr_assert_eq(jobs[i + 1].rc, 0);
        cr_assert_eq(jobs[i].d.n, jobs[i + 1].d.n);
        cr_assert_eq(memcmp(jobs[i].d.x, jobs[i + 1].d.x, jobs[i].d.n * jobs[i].nin * sizeof(double)), 0);
        spdl_data_free(&jobs[i].d);
        spdl_data_free(&jobs[i + 1].d);
    }
}

/* ---- digits ------------------------------------------------------------------ */

Test(digits, rows_and_class_counts)
{
    spdl_data d;
    load_ok("builtin:digits", 64, 1, &d);
    cr_assert_eq(d.n, 1797);
    cr_assert_eq(d.nin, 64);
    cr_assert_eq(d.nclass, 10);
    cr_assert_str_eq(d.desc, "builtin:digits (8x8 UCI digits, pixels / 16)");
    int count[10] = {0}, want[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
    for (size_t i = 0; i < d.n; i++)
        count[(int)d.t[i]]++;
    cr_assert_arr_eq(count, want, sizeof want);
    double hi = 0;
    for (size_t k = 0; k < d.n * 64; k++) {
        cr_assert(d.x[k] >= 0 && d.x[k] <= 1);
        hi = fmax(hi, d.x[k]);
    }
    cr_assert_eq(hi, 1.0);
    /* the first row of the file */
    const double row0[8] = {0, 0, 5, 13, 9, 1, 0, 0};
    for (int j = 0; j < 8; j++)
        cr_assert_eq(d.x[j], row0[j] / 16);
    cr_assert_eq(d.t[0], 0);
    spdl_data raw;
    load_ok("builtin:digits?scale=0", 64, 1, &raw);
    for (size_t k = 0; k < d.n * 64; k++)
        cr_assert_eq(raw.x[k], d.x[k] * 16);
    spdl_data_free(&raw);
    spdl_data_free(&d);
}

Test(digits, held_out_split)
{
    spdl_data tr, te;
    load_ok("builtin:digits?split=0.2&part=train", 64, 1, &tr);
    load_ok("builtin:digits?split=0.2&part=test", 64, 1, &te);
    cr_assert_eq(tr.n, 1438);
    cr_assert_eq(te.n, 359);
    cr_assert_eq(te.nclass, 10);
    int seen[10] = {0};
    for (size_t i = 0; i < te.n; i++)
        seen[(int)te.t[i]]++;
    for (int c = 0; c < 10; c++)
        cr_assert_gt(seen[c], 20, "class %d: %d test samples", c, seen[c]);
    spdl_data_free(&tr);
    spdl_data_free(&te);
    load_ok("builtin:digits?n=100", 64, 1, &tr);
    cr_assert_eq(tr.n, 100);
    cr_assert_eq(tr.nclass, 10);
    spdl_data_free(&tr);
}

Test(digits, missing_file_names_where_it_looked)
{
    setenv("SPDL_DATA", dir, 1);
    spdl_data d;
    int rc = spdl_data_load("builtin:digits", 64, 1, 0, &d, err, sizeof err);
    if (rc == 0) {
        spdl_data_free(&d);
        SKIP("digits.csv.gz is installed or next to the test executable");
    }
    cr_assert_eq(rc, SPDL_EIO);
    char want[256];
    snprintf(want, sizeof want, "builtin:digits: cannot find digits.csv.gz; looked in %s, ", dir);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    const char *tail = " (set SPDL_DATA to the directory that holds it, e.g. the repository's data/)";
    cr_assert(strstr(err, "/data, ") && strstr(err, "/share/spdl/data, "), "%s", err);
    cr_assert_str_eq(err + strlen(err) - strlen(tail), tail);
    cr_assert_null(d.x);
}

Test(digits, a_wrong_file_is_refused)
{
    const char *p = path_of("digits.csv.gz");
    gzFile gz = gzopen(p, "wb");
    for (int i = 0; i < 20; i++) {
        for (int j = 0; j < 64; j++)
            gzprintf(gz, "%d,", (i + j) % 17);
        gzprintf(gz, "%d\n", i % 10);
    }
    gzclose(gz);
    setenv("SPDL_DATA", dir, 1);
    char want[600];
    snprintf(want, sizeof want, "%s: not the UCI digits file: expected 1797 rows with class counts "
             "178/182/177/183/181/182/181/179/174/180, found 20 rows with 2/2/2/2/2/2/2/2/2/2", p);
    expect_err("builtin:digits", 64, 1, -1, SPDL_EFORMAT, want);
}

/* ---- train --noise: spdl_data_noise --------------------------------------------------------------- */

Test(noise, a_row_gets_the_same_noise_however_the_batch_is_split)
{
    enum { N = 9, NIN = 7 };
    double whole[N * NIN] = {0}, parts[N * NIN] = {0};
    spdl_data_noise(whole, 0, N, NIN, 42, 0.5);
    spdl_data_noise(parts, 4, N, NIN, 42, 0.5); /* a second thread's rows first */
    spdl_data_noise(parts, 0, 1, NIN, 42, 0.5);
    spdl_data_noise(parts, 1, 4, NIN, 42, 0.5);
    cr_assert_eq(memcmp(whole, parts, sizeof whole), 0, "rows split over threads got other noise");
    double other[N * NIN] = {0};
    spdl_data_noise(other, 0, N, NIN, 43, 0.5);
    for (int i = 0; i < N * NIN; i++)
        cr_assert_neq(whole[i], other[i], "the next step's key repeats element %d", i);
    for (int i = 1; i < N; i++) /* rows differ from each other (odd NIN: the tail's second normal is dropped) */
        cr_assert_neq(whole[i * NIN], whole[(i - 1) * NIN], "rows %d and %d start alike", i - 1, i);
}

Test(noise, is_added_with_mean_zero_and_the_standard_deviation_asked_for)
{
    enum { N = 4000, NIN = 25 }; /* odd: the last number of a row takes the first of a pair */
    double *x = malloc(sizeof(double) * N * NIN);
    cr_assert_not_null(x);
    for (int i = 0; i < N * NIN; i++)
        x[i] = 3.0;
    spdl_data_noise(x, 0, N, NIN, 7, 0.25);
    double s = 0, ss = 0, lastsq = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < NIN; j++) {
            double d = x[i * NIN + j] - 3.0;
            s += d, ss += d * d;
            if (j == NIN - 1)
                lastsq += d * d;
        }
    double m = s / (N * NIN), sd = sqrt(ss / (N * NIN) - m * m);
    cr_assert(fabs(m) < 4 * 0.25 / sqrt(N * NIN), "mean %g", m);
    cr_assert(fabs(sd - 0.25) < 0.01, "standard deviation %g, asked for 0.25", sd);
    cr_assert(fabs(sqrt(lastsq / N) - 0.25) < 0.02, "the odd last column has deviation %g", sqrt(lastsq / N));
    double y[NIN] = {0};
    spdl_data_noise(y, 0, 0, NIN, 7, 0.25); /* no rows: nothing */
    for (int j = 0; j < NIN; j++)
        cr_assert_eq(y[j], 0);
    free(x);
}
