/* test_safetensors.c - safetensors round trips, atomic writes, every kind of
 * corrupt file (each with its exact message), and a round trip through plain
 * Python (st_py.py, standard library only) in both directions.
 *
 * Files go to a fresh directory under /tmp; "%P" in an expected message
 * stands for the file's path. The tests run from tests/runtime. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "safetensors.h"

static char dir[64];
static char err[1024];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void setup(void)
{
    strcpy(dir, "/tmp/spdl-st-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

/* removes the test's directory and everything in it */
static void teardown(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(safetensors, .init = setup, .fini = teardown);
TestSuite(st_corrupt, .init = setup, .fini = teardown);

static const char *path_of(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static size_t file_bytes(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
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

static size_t entries_in(const char *d)
{
    size_t n = 0;
    DIR *dd = opendir(d);
    struct dirent *e;
    while ((e = readdir(dd)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dd);
    return n;
}

/* a safetensors file with header length hl, header text and data */
static const char *st_raw(const char *name, uint64_t hl, const char *header, const void *data, size_t dlen)
{
    size_t n = strlen(header);
    unsigned char *buf = malloc(8 + n + dlen + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, header, n);
    if (dlen)
        memcpy(buf + 8 + n, data, dlen);
    const char *p = write_bytes(name, buf, 8 + n + dlen);
    free(buf);
    return p;
}

static const char *st_file(const char *name, const char *header, const void *data, size_t dlen)
{
    return st_raw(name, strlen(header), header, data, dlen);
}

/* little-endian bytes of doubles */
static size_t f64s(unsigned char *o, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        for (int k = 0; k < 8; k++)
            o[8 * i + (size_t)k] = (unsigned char)(u >> (8 * k));
    }
    return 8 * n;
}

static void expect_read_err(const char *path, int code, const char *want)
{
    spdl_st st;
    char exp[1024];
    const char *at = strstr(want, "%P");
    if (at)
        snprintf(exp, sizeof exp, "%.*s%s%s", (int)(at - want), want, path, at + 2);
    else
        snprintf(exp, sizeof exp, "%s", want);
    int rc = spdl_st_read(path, &st, err, sizeof err);
    cr_assert_eq(rc, code, "rc %d, want %d: %s", rc, code, err);
    cr_assert_str_eq(err, exp);
    cr_assert_eq(st.nt, 0);
    cr_assert_null(st.t);
    cr_assert_eq(st.nmeta, 0);
}

/* a header around one tensor entry "w", with 16 bytes of data (1.0, 2.0) */
static void expect_entry_err(const char *entry, int code, const char *want)
{
    char h[512];
    unsigned char data[16];
    double v[2] = {1, 2};
    f64s(data, v, 2);
    snprintf(h, sizeof h, "{\"w\":%s}", entry);
    expect_read_err(st_file("e.safetensors", h, data, 16), code, want);
}

static void expect_header_err(const char *header, const char *want)
{
    expect_read_err(st_file("h.safetensors", header, NULL, 0), SPDL_EFORMAT, want);
}

/* ---- the tensors both test_safetensors.c and st_py.py know ------------------ */

#define PY_NT 6
static double py_w[12], py_b[4], py_s[1] = {-0.0};
static double py_ext[4] = {5e-324, DBL_MAX, -DBL_MIN, 0.1};
static double py_u[2] = {2.5, -1e-300};
static const char *py_meta_key[4] = {"model", "source_hash", "optimizer", "note"};
static const char *py_meta_val[4] = {"spirals", "0123abcdef", "adam",
                                     "line1\nline2\t\"q\" \\ \xc3\xa9 \xf0\x9f\x98\x80 \x01 end"};

static void py_tensors(spdl_tensor *t)
{
    for (int i = 0; i < 12; i++)
        py_w[i] = (i - 5) / 8.0;
    for (int i = 0; i < 4; i++)
        py_b[i] = i / 3.0;
    spdl_tensor v[PY_NT] = {
        {"w", 2, {3, 4}, py_w, 12},
        {"b", 1, {4}, py_b, 4},
        {"s", 0, {0}, py_s, 1},
        {"extremes", 2, {2, 2}, py_ext, 4},
        {"\xc3\xbcn\xc3\xaf/\xe5\x90\x8d", 4, {1, 1, 1, 2}, py_u, 2},
        {"q\"uote\\", 1, {0}, NULL, 0},
    };
    memcpy(t, v, sizeof v);
}

static void assert_same_tensor(const spdl_tensor *got, const spdl_tensor *want)
{
    cr_assert_not_null(got, "missing tensor '%s'", want->name);
    cr_assert_str_eq(got->name, want->name);
    cr_assert_eq(got->rank, want->rank, "'%s'", want->name);
    for (int k = 0; k < want->rank; k++)
        cr_assert_eq(got->shape[k], want->shape[k]);
    cr_assert_eq(got->size, want->size);
    if (want->size)
        cr_assert_eq(memcmp(got->data, want->data, want->size * sizeof(double)), 0, "'%s' not bit-identical",
                     want->name);
}

/* ---- round trips ------------------------------------------------------------ */

Test(safetensors, round_trip_bit_identical)
{
    spdl_tensor t[PY_NT];
    py_tensors(t);
    const char *p = path_of("rt.safetensors");
    cr_assert_eq(spdl_st_write(p, t, PY_NT, py_meta_key, py_meta_val, 4, err, sizeof err), 0, "%s", err);
    spdl_st st;
    cr_assert_eq(spdl_st_read(p, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st.nt, PY_NT);
    for (int i = 0; i < PY_NT; i++) {
        cr_assert_str_eq(st.t[i].name, t[i].name); /* the header's order is kept */
        assert_same_tensor(spdl_st_find(&st, t[i].name), &t[i]);
    }
    cr_assert(signbit(spdl_st_find(&st, "s")->data[0]));
    cr_assert_eq(st.nmeta, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(spdl_st_meta(&st, py_meta_key[i]), py_meta_val[i]);
    cr_assert_null(spdl_st_find(&st, "nope"));
    cr_assert_null(spdl_st_meta(&st, "nope"));
    cr_assert_null(spdl_st_find(NULL, "w"));
    spdl_st_free(&st);
    cr_assert_null(st.t);
    spdl_st_free(&st);
}

Test(safetensors, layout_on_disk)
{
    double a[3] = {1, -2, 0.5};
    spdl_tensor t = {"K", 2, {1, 3}, a, 3};
    const char *k[1] = {"model"}, *v[1] = {"m"};
    const char *p = path_of("l.safetensors");
    cr_assert_eq(spdl_st_write(p, &t, 1, k, v, 1, err, sizeof err), 0, "%s", err);
    unsigned char buf[256];
    size_t n = file_bytes(p, buf, sizeof buf);
    const char *want = "{\"__metadata__\":{\"model\":\"m\"},\"K\":{\"dtype\":\"F64\",\"shape\":[1,3],"
                       "\"data_offsets\":[0,24]}}";
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    cr_assert_eq(hl % 8, 0);
    cr_assert_eq(n, 8 + hl + 24);
    cr_assert_eq(memcmp(buf + 8, want, strlen(want)), 0);
    for (size_t i = strlen(want); i < hl; i++)
        cr_assert_eq(buf[8 + i], ' ');
    unsigned char data[24];
    f64s(data, a, 3);
    cr_assert_eq(memcmp(buf + 8 + hl, data, 24), 0);
    /* no metadata, no tensors: still a valid file */
    cr_assert_eq(spdl_st_write(p, NULL, 0, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    spdl_st st;
    cr_assert_eq(spdl_st_read(p, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st.nt, 0);
    cr_assert_eq(st.nmeta, 0);
    spdl_st_free(&st);
}

Test(safetensors, f32_is_converted)
{
    unsigned char data[12];
    float f[3] = {0.5f, -2.25f, 16777216.0f};
    memcpy(data, f, 12); /* little-endian host */
    const char *p = st_file("f.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}   ",
                            data, 12);
    spdl_st st;
    cr_assert_eq(spdl_st_read(p, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st.t[0].data[0], 0.5);
    cr_assert_eq(st.t[0].data[1], -2.25);
    cr_assert_eq(st.t[0].data[2], 16777216.0);
    spdl_st_free(&st);
}

Test(safetensors, json_escapes_and_whitespace)
{
    unsigned char data[8];
    double one = 1;
    f64s(data, &one, 1);
    const char *h = " {\n\t\"\\u00fcber\\ud83d\\ude00\\/\\n\" : {\"data_offsets\" : [ 0 , 8 ], \"shape\":[],"
                    "\"dtype\":\"F64\"},\r\n\"__metadata__\":{\"a\\\"b\":\"\\\\\\t\\b\\f\\r\\u0041\"} } ";
    const char *p = st_file("j.safetensors", h, data, 8);
    spdl_st st;
    cr_assert_eq(spdl_st_read(p, &st, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(st.t[0].name, "\xc3\xbc" "ber\xf0\x9f\x98\x80/\n");
    cr_assert_eq(st.t[0].rank, 0);
    cr_assert_eq(st.t[0].size, 1);
    cr_assert_str_eq(spdl_st_meta(&st, "a\"b"), "\\\t\b\f\rA");
    spdl_st_free(&st);
}

/* ---- atomic writes ---------------------------------------------------------- */

Test(safetensors, overwrite_is_atomic_and_leaves_no_temp_files)
{
    double a[2] = {1, 2}, b[3] = {3, 4, 5};
    spdl_tensor ta = {"a", 1, {2}, a, 2}, tb = {"b", 1, {3}, b, 3};
    const char *p = path_of("w.safetensors");
    cr_assert_eq(spdl_st_write(p, &ta, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    struct stat st0;
    cr_assert_eq(stat(p, &st0), 0);
    cr_assert_eq(st0.st_mode & 07777, 0644);
    cr_assert_eq(chmod(p, 0600), 0);
    cr_assert_eq(spdl_st_write(p, &tb, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    struct stat st1;
    cr_assert_eq(stat(p, &st1), 0);
    cr_assert_eq(st1.st_mode & 07777, 0600, "the mode of the file replaced is kept");
    cr_assert_neq(st0.st_ino, st1.st_ino, "a new file renamed over the old one");
    cr_assert_eq(entries_in(dir), 1);
    spdl_st st;
    cr_assert_eq(spdl_st_read(p, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st.nt, 1);
    assert_same_tensor(&st.t[0], &tb);
    spdl_st_free(&st);
}

Test(safetensors, a_failed_write_keeps_the_old_file)
{
    double a[2] = {1, 2}, bad[2] = {1, NAN};
    spdl_tensor ta = {"a", 1, {2}, a, 2}, tb = {"K", 1, {2}, bad, 2};
    const char *p = path_of("keep.safetensors");
    cr_assert_eq(spdl_st_write(p, &ta, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    unsigned char before[512], after[512];
    size_t n0 = file_bytes(p, before, sizeof before);
    cr_assert_eq(spdl_st_write(p, &tb, 1, NULL, NULL, 0, err, sizeof err), SPDL_ENONFINITE);
    cr_assert_str_eq(err, "spdl_st_write: tensor 'K' holds a NaN at element 1; nothing written");
    bad[1] = -INFINITY;
    cr_assert_eq(spdl_st_write(p, &tb, 1, NULL, NULL, 0, err, sizeof err), SPDL_ENONFINITE);
    cr_assert_str_eq(err, "spdl_st_write: tensor 'K' holds an infinity at element 1; nothing written");
    size_t n1 = file_bytes(p, after, sizeof after);
    cr_assert_eq(n0, n1);
    cr_assert_eq(memcmp(before, after, n0), 0);
    cr_assert_eq(entries_in(dir), 1);
}

Test(safetensors, write_errors)
{
    double a[2] = {1, 2};
    spdl_tensor t = {"a", 1, {2}, a, 2};
    char want[512];
    const char *p = path_of("no/such/dir/x.safetensors");
    cr_assert_eq(spdl_st_write(p, &t, 1, NULL, NULL, 0, err, sizeof err), SPDL_EIO);
    snprintf(want, sizeof want, "%s: cannot create a temporary file in %s/no/such/dir: No such file or directory", p,
             dir);
    cr_assert_str_eq(err, want);
    /* the target is a directory: the rename fails and the temp file goes */
    const char *d = path_of("sub");
    cr_assert_eq(mkdir(d, 0755), 0);
    cr_assert_eq(spdl_st_write(d, &t, 1, NULL, NULL, 0, err, sizeof err), SPDL_EIO);
    snprintf(want, sizeof want, "%s: cannot write: Is a directory", d);
    cr_assert_str_eq(err, want);
    cr_assert_eq(entries_in(dir), 1);
    cr_assert_eq(entries_in(d), 0);
}

Test(safetensors, write_rejects_bad_input)
{
    double a[4] = {1, 2, 3, 4};
    const char *p = path_of("bad.safetensors");
    struct {
        spdl_tensor t[2];
        size_t nt;
        const char *want;
    } cases[] = {
        {{{"a", 1, {4}, a, 4}, {"a", 1, {4}, a, 4}}, 2, "spdl_st_write: two tensors are named 'a'"},
        {{{NULL, 1, {4}, a, 4}}, 1, "spdl_st_write: tensor 0 has no name"},
        {{{"", 1, {4}, a, 4}}, 1, "spdl_st_write: tensor 0 has no name"},
        {{{"__metadata__", 1, {4}, a, 4}}, 1, "spdl_st_write: a tensor cannot be named __metadata__"},
        {{{"x\xff", 1, {4}, a, 4}}, 1, "spdl_st_write: tensor 0: the name is not valid UTF-8"},
        {{{"a", 5, {4}, a, 4}}, 1, "spdl_st_write: tensor 'a': rank 5 (expected 0 to 4)"},
        {{{"a", -1, {4}, a, 4}}, 1, "spdl_st_write: tensor 'a': rank -1 (expected 0 to 4)"},
        {{{"a", 2, {2, 3}, a, 4}}, 1, "spdl_st_write: tensor 'a': size 4 does not match its shape (6 elements)"},
        {{{"a", 1, {4}, NULL, 4}}, 1, "spdl_st_write: tensor 'a': no data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(spdl_st_write(p, cases[i].t, cases[i].nt, NULL, NULL, 0, err, sizeof err), SPDL_EINVAL,
                     "case %zu", i);
        cr_assert_str_eq(err, cases[i].want);
    }
    spdl_tensor t = {"a", 1, {4}, a, 4};
    const char *k2[2] = {"k", "k"}, *v2[2] = {"1", "2"}, *kb[1] = {"\xc0\xaf"}, *vn[1] = {NULL};
    cr_assert_eq(spdl_st_write(p, &t, 1, k2, v2, 2, err, sizeof err), SPDL_EINVAL);
    cr_assert_str_eq(err, "spdl_st_write: metadata key 'k' is given twice");
    cr_assert_eq(spdl_st_write(p, &t, 1, kb, v2, 1, err, sizeof err), SPDL_EINVAL);
    cr_assert_str_eq(err, "spdl_st_write: metadata '\\xc0\\xaf' is not valid UTF-8");
    cr_assert_eq(spdl_st_write(p, &t, 1, k2, vn, 1, err, sizeof err), SPDL_EINVAL);
    cr_assert_str_eq(err, "spdl_st_write: metadata 0 is NULL");
    cr_assert_eq(spdl_st_write(NULL, &t, 1, NULL, NULL, 0, err, sizeof err), SPDL_EINVAL);
    cr_assert_eq(spdl_st_write(p, NULL, 1, NULL, NULL, 0, err, sizeof err), SPDL_EINVAL);
    cr_assert_eq(entries_in(dir), 0);
}

Test(safetensors, relative_path_in_the_current_directory)
{
    char old[512];
    cr_assert_not_null(getcwd(old, sizeof old));
    cr_assert_eq(chdir(dir), 0);
    double a[1] = {7};
    spdl_tensor t = {"a", 1, {1}, a, 1};
    cr_assert_eq(spdl_st_write("rel.safetensors", &t, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    spdl_st st;
    cr_assert_eq(spdl_st_read("rel.safetensors", &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st.t[0].data[0], 7);
    spdl_st_free(&st);
    cr_assert_eq(chdir(old), 0);
}

/* several threads write and read their own files at once */
typedef struct {
    int id, rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    char e[256], name[64];
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = j->id * 1000 + i;
    spdl_tensor t = {"v", 2, {10, 10}, v, 100};
    snprintf(name, sizeof name, "t%d.safetensors", j->id);
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    for (int r = 0; r < 20 && !j->rc; r++) {
        spdl_st st;
        j->rc = spdl_st_write(p, &t, 1, NULL, NULL, 0, e, sizeof e);
        if (!j->rc)
            j->rc = spdl_st_read(p, &st, e, sizeof e);
        if (!j->rc && memcmp(st.t[0].data, v, sizeof v) != 0)
            j->rc = -100;
        if (!j->rc)
            spdl_st_free(&st);
    }
    return NULL;
}

Test(safetensors, thread_safe)
{
    job jobs[4] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(jobs[i].rc, 0, "thread %d: %d", i, jobs[i].rc);
    cr_assert_eq(entries_in(dir), 4);
}

/* ---- killed writers ---------------------------------------------------------- */

/* The temp files of base in d; with seen, whether one is not in seen[0..nseen). */
static size_t temps_of_new(const char *d, const char *base, char (*seen)[256], size_t nseen, int *fresh)
{
    size_t n = 0, bl = strlen(base);
    DIR *dd = opendir(d);
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (!(e->d_name[0] == '.' && !strncmp(e->d_name + 1, base, bl) && e->d_name[bl + 1] == '.'))
            continue;
        int known = 0;
        for (size_t i = 0; i < nseen; i++)
            known |= !strcmp(seen[i], e->d_name);
        if (fresh && !known)
            *fresh = 1;
        if (!fresh && seen && n < 64)
            snprintf(seen[n], 256, "%s", e->d_name);
        n++;
    }
    closedir(dd);
    return n;
}

static size_t temps_of(const char *d, const char *base) { return temps_of_new(d, base, NULL, 0, NULL); }

/* SIGKILL a process that writes a 16 MB checkpoint over and over, as soon as
   its temp file appears, ten times: the temps it left (4 after 30 kills
   before) go at the next write. */
Test(safetensors, temp_files_of_killed_writers_go_at_the_next_write, .timeout = 120)
{
    const char *p = path_of("k.safetensors");
    size_t n = (size_t)2 << 20, left = 0;
    double *v = calloc(n, sizeof *v);
    cr_assert_not_null(v);
    spdl_tensor t = {"v", 1, {n}, v, n};
    for (int kill_no = 0; kill_no < 10; kill_no++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            for (;;)
                spdl_st_write(p, &t, 1, NULL, NULL, 0, err, sizeof err);
        }
        char seen[64][256];
        int fresh = 0;
        size_t nseen = temps_of_new(dir, "k.safetensors", seen, 0, NULL);
        while (!fresh) { /* until the child's temp file appears */
            usleep(100);
            temps_of_new(dir, "k.safetensors", seen, nseen < 64 ? nseen : 64, &fresh);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        left = temps_of(dir, "k.safetensors");
    }
    cr_assert(left >= 1, "no kill left a temp file: the test did not test anything");
    double one = 1;
    spdl_tensor small = {"one", 0, {0}, &one, 1};
    cr_assert_eq(spdl_st_write(p, &small, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(temps_of(dir, "k.safetensors"), 0, "%zu temp files were left", left);
    cr_assert_eq(entries_in(dir), 1);
    free(v);
}

/* A temp file some live writer holds (locked) is not stale; other
   checkpoints' temps and names that are not temps are not ours. */
Test(safetensors, only_stale_temp_files_of_the_same_path_go)
{
    char p[256];
    snprintf(p, sizeof p, "%s", path_of("w.safetensors"));
    char live[256], stale[256];
    snprintf(live, sizeof live, "%s", path_of(".w.safetensors.Live01"));
    snprintf(stale, sizeof stale, "%s", path_of(".w.safetensors.Stal02"));
    write_bytes(".w.safetensors.Stal02", "x", 1);
    write_bytes(".other.safetensors.Othr03", "x", 1);
    write_bytes(".w.safetensors.toolong", "x", 1);
    write_bytes("w.safetensors.Abcd04", "x", 1);
    int hold[2], ready[2];
    cr_assert_eq(pipe(hold), 0);
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* the live writer: locks its file, says so, waits for the hold pipe to close */
        close(hold[1]);
        close(ready[0]);
        int fd = open(live, O_CREAT | O_RDWR, 0600);
        char c = 'y';
        if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(ready[1], &c, 1) != 1)
            _exit(1);
        while (read(hold[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(hold[0]);
    close(ready[1]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the live writer did not start");
    close(ready[0]);
    struct stat st;
    double a[1] = {1};
    spdl_tensor t = {"a", 1, {1}, a, 1};
    cr_assert_eq(spdl_st_write(p, &t, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(stat(live, &st), 0, "the live writer's temp file went");
    cr_assert_neq(stat(stale, &st), 0, "the stale temp file stayed");
    cr_assert_eq(stat(path_of(".other.safetensors.Othr03"), &st), 0);
    cr_assert_eq(stat(path_of(".w.safetensors.toolong"), &st), 0);
    cr_assert_eq(stat(path_of("w.safetensors.Abcd04"), &st), 0);
    close(hold[1]);
    waitpid(pid, NULL, 0);
    /* its writer gone, the next write takes it for stale */
    cr_assert_eq(spdl_st_write(p, &t, 1, NULL, NULL, 0, err, sizeof err), 0, "%s", err);
    cr_assert_neq(stat(live, &st), 0);
}

/* ---- Python (standard library only) ------------------------------------------ */

static int run_python(const char *mode, const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 st_py.py %s '%s'", mode, path);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 127,
              "cannot run python3 (tools/deps.sh installs it)");
    return WEXITSTATUS(st);
}

Test(safetensors, python_reads_what_spdl_writes)
{
    spdl_tensor t[PY_NT];
    py_tensors(t);
    const char *p = path_of("to_py.safetensors");
    cr_assert_eq(spdl_st_write(p, t, PY_NT, py_meta_key, py_meta_val, 4, err, sizeof err), 0, "%s", err);
    cr_assert_eq(run_python("check", p), 0, "st_py.py check rejected the file");
}

Test(safetensors, spdl_reads_what_python_writes)
{
    const char *p = path_of("from_py.safetensors");
    cr_assert_eq(run_python("write", p), 0, "st_py.py write failed");
    spdl_st st;
    cr_assert_eq(spdl_st_read(p, &st, err, sizeof err), 0, "%s", err);
    spdl_tensor t[PY_NT];
    py_tensors(t);
    cr_assert_eq(st.nt, PY_NT + 1);
    for (int i = 0; i < PY_NT; i++)
        assert_same_tensor(spdl_st_find(&st, t[i].name), &t[i]);
    double f[3] = {0.5, -2.25, 1024.0};
    spdl_tensor tf = {"f32", 1, {3}, f, 3};
    assert_same_tensor(spdl_st_find(&st, "f32"), &tf);
    cr_assert_eq(st.nmeta, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(spdl_st_meta(&st, py_meta_key[i]), py_meta_val[i]);
    spdl_st_free(&st);
}

/* ---- corrupt files ------------------------------------------------------------ */

Test(st_corrupt, files_that_are_not_safetensors)
{
    expect_read_err(path_of("missing.safetensors"), SPDL_EIO, "%P: cannot open: No such file or directory");
    expect_read_err(dir, SPDL_EIO, "%P: is a directory, expected a safetensors file");
    expect_read_err("/dev/null", SPDL_EIO, "%P: not a regular file, expected a safetensors file");
    expect_read_err(write_bytes("empty.safetensors", "", 0), SPDL_EFORMAT,
                    "%P: the file is empty, expected a safetensors file");
    expect_read_err(write_bytes("short.safetensors", "\x10\0\0\0\0", 5), SPDL_EFORMAT,
                    "%P: truncated: 5 bytes, too short for the 8-byte header length");
    expect_read_err(st_raw("long.safetensors", 1000, "{\"a\":1}", "0123456789abc", 13), SPDL_EFORMAT,
                    "%P: the header length 1000 is larger than the rest of the file (20 bytes): truncated, or not "
                    "a safetensors file");
    expect_read_err(st_raw("huge.safetensors", UINT64_MAX, "{}", NULL, 0), SPDL_EFORMAT,
                    "%P: the header length 18446744073709551615 is larger than the rest of the file (2 bytes): "
                    "truncated, or not a safetensors file");
    expect_read_err(write_bytes("text.safetensors", "hello, world, this is text", 26), SPDL_EFORMAT,
                    "%P: the header length 8583909746840200552 is larger than the rest of the file (18 bytes): "
                    "truncated, or not a safetensors file");
    expect_read_err(st_raw("zero.safetensors", 0, "", NULL, 0), SPDL_EFORMAT,
                    "%P: the header is not valid JSON: unexpected end of the header at header byte 0");
}

Test(st_corrupt, header_is_not_json)
{
    expect_header_err("hello", "%P: the header is not valid JSON: unexpected character 'h' at header byte 0");
    expect_header_err("{} x", "%P: the header is not valid JSON: unexpected text after the JSON value at header "
                              "byte 3");
    expect_header_err("{}{}", "%P: the header is not valid JSON: unexpected text after the JSON value at header "
                              "byte 2");
    expect_header_err("[]", "%P: the header is not a JSON object");
    expect_header_err("\"x\"", "%P: the header is not a JSON object");
    expect_header_err("{\"w\":{\"dtype\":\"F64\",}}",
                      "%P: the header is not valid JSON: expected a string key at header byte 20");
    expect_header_err("{\"w\" 1}", "%P: the header is not valid JSON: expected ':' after a key at header byte 5");
    expect_header_err("{\"w\":1 \"v\":2}", "%P: the header is not valid JSON: expected ',' or '}' at header byte 7");
    expect_header_err("{\"w\":[1 2]}", "%P: the header is not valid JSON: expected ',' or ']' at header byte 8");
    expect_header_err("{\"w\":[1,]}", "%P: the header is not valid JSON: unexpected character ']' at header byte 8");
    expect_header_err("{\"w", "%P: the header is not valid JSON: unterminated string at header byte 1");
    expect_header_err("{\"w\\", "%P: the header is not valid JSON: unterminated string at header byte 1");
    expect_header_err("{\"w\":", "%P: the header is not valid JSON: unexpected end of the header at header byte 5");
    expect_header_err("{\"w\":[", "%P: the header is not valid JSON: unexpected end of the header at header byte 6");
    expect_header_err("{\"a\":tru}", "%P: the header is not valid JSON: expected 'true' at header byte 5");
    expect_header_err("{\"a\":nul}", "%P: the header is not valid JSON: expected 'null' at header byte 5");
    expect_header_err("{'a':1}", "%P: the header is not valid JSON: expected a string key at header byte 1");
}

Test(st_corrupt, bad_numbers_and_strings)
{
    expect_header_err("{\"a\":01}", "%P: the header is not valid JSON: expected ',' or '}' at header byte 6");
    expect_header_err("{\"a\":-}", "%P: the header is not valid JSON: bad number at header byte 5");
    expect_header_err("{\"a\":1.}", "%P: the header is not valid JSON: bad number at header byte 5");
    expect_header_err("{\"a\":1e+}", "%P: the header is not valid JSON: bad number at header byte 5");
    expect_header_err("{\"a\":+1}", "%P: the header is not valid JSON: unexpected character '+' at header byte 5");
    expect_header_err("{\"a\":.5}", "%P: the header is not valid JSON: unexpected character '.' at header byte 5");
    expect_header_err("{\"a\\x\":1}", "%P: the header is not valid JSON: bad escape '\\x' at header byte 3");
    expect_header_err("{\"a\\u12g4\":1}",
                      "%P: the header is not valid JSON: bad \\u escape (expected four hex digits) at header byte 3");
    expect_header_err("{\"a\\u12\":1}",
                      "%P: the header is not valid JSON: bad \\u escape (expected four hex digits) at header byte 3");
    expect_header_err("{\"\\ud800\":1}", "%P: the header is not valid JSON: unpaired surrogate \\ud800 at header byte 2");
    expect_header_err("{\"\\ud800\\u0041\":1}",
                      "%P: the header is not valid JSON: unpaired surrogate \\ud800 at header byte 2");
    expect_header_err("{\"\\udc00\":1}", "%P: the header is not valid JSON: unpaired surrogate \\udc00 at header byte 2");
    expect_header_err("{\"a\\u0000\":1}",
                      "%P: the header is not valid JSON: \\u0000 in a string is not supported at header byte 3");
    expect_header_err("{\"a\tb\":1}",
                      "%P: the header is not valid JSON: control character 0x09 in a string at header byte 3");
    expect_header_err("{\"a\xff\":1}", "%P: the header is not valid JSON: invalid UTF-8 in a string at header byte 3");
    expect_header_err("{\"a\xc0\xaf\":1}",
                      "%P: the header is not valid JSON: invalid UTF-8 in a string at header byte 3");
    expect_header_err("{\"a\xed\xa0\x80\":1}",
                      "%P: the header is not valid JSON: invalid UTF-8 in a string at header byte 3");
    expect_header_err("{\"a\xe4\xb8\":1}", "%P: the header is not valid JSON: invalid UTF-8 in a string at header byte 3");
}

Test(st_corrupt, nesting_is_limited)
{
    char h[256];
    memset(h, '[', 200);
    h[200] = '\0';
    expect_header_err(h, "%P: the header is not valid JSON: nesting deeper than 64 at header byte 64");
    /* 64 levels are fine as JSON (then not an object) */
    memset(h, '[', 64);
    memset(h + 64, ']', 64);
    h[128] = '\0';
    expect_header_err(h, "%P: the header is not a JSON object");
}

Test(st_corrupt, tensor_entries)
{
    expect_entry_err("{\"shape\":[2],\"data_offsets\":[0,16]}", SPDL_EFORMAT, "%P: tensor 'w': missing \"dtype\"");
    expect_entry_err("{\"dtype\":\"F64\",\"data_offsets\":[0,16]}", SPDL_EFORMAT, "%P: tensor 'w': missing \"shape\"");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[2]}", SPDL_EFORMAT, "%P: tensor 'w': missing \"data_offsets\"");
    expect_entry_err("{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': dtype \"I64\" is not supported (F64, or F32 converted to F64)");
    expect_entry_err("{\"dtype\":64,\"shape\":[2],\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': \"dtype\" is not a string");
    expect_entry_err("[1]", SPDL_EFORMAT, "%P: tensor 'w': the entry is not a JSON object");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16],\"x\":1}", SPDL_EFORMAT,
                     "%P: tensor 'w': unexpected key \"x\" (expected dtype, shape, data_offsets)");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":2,\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': \"shape\" is not an array");
    const char *bad_shapes[] = {"[2.0]", "[-2]", "[\"2\"]", "[2e0]", "[null]", "[18446744073709551616]"};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof bad_shapes[0]; i++) {
        char e[256];
        snprintf(e, sizeof e, "{\"dtype\":\"F64\",\"shape\":%s,\"data_offsets\":[0,16]}", bad_shapes[i]);
        expect_entry_err(e, SPDL_EFORMAT, "%P: tensor 'w': \"shape\" is not an array of non-negative integers");
    }
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': rank 5 is not supported (at most 4)");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': shape too large");
    const char *bad_offsets[] = {"[0]", "[0,16,32]", "16", "[0,-16]", "[0,16.0]", "[0,18446744073709551616]"};
    for (size_t i = 0; i < sizeof bad_offsets / sizeof bad_offsets[0]; i++) {
        char e[256];
        snprintf(e, sizeof e, "{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":%s}", bad_offsets[i]);
        expect_entry_err(e, SPDL_EFORMAT,
                         "%P: tensor 'w': \"data_offsets\" is not [begin, end] of non-negative integers");
    }
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,0]}", SPDL_EFORMAT,
                     "%P: tensor 'w': data_offsets [16, 0] end before they begin");
}

Test(st_corrupt, header_lies_about_sizes_and_offsets)
{
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': data_offsets [0, 16] hold 16 bytes, but 3 F64 values need 24 (the header lies "
                     "about the size)");
    expect_entry_err("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}", SPDL_EFORMAT,
                     "%P: tensor 'w': data_offsets [0, 16] hold 16 bytes, but 2 F32 values need 8 (the header lies "
                     "about the size)");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[8,24]}", SPDL_EFORMAT,
                     "%P: tensor 'w': data_offsets [8, 24] run past the end of the data section (16 bytes): "
                     "truncated, or the header lies");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[18446744073709551600,"
                     "18446744073709551615]}",
                     SPDL_EFORMAT,
                     "%P: tensor 'w': data_offsets [18446744073709551600, 18446744073709551615] hold 15 bytes, but "
                     "2 F64 values need 16 (the header lies about the size)");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[18446744073709551599,"
                     "18446744073709551615]}",
                     SPDL_EFORMAT,
                     "%P: tensor 'w': data_offsets [18446744073709551599, 18446744073709551615] run past the end of "
                     "the data section (16 bytes): truncated, or the header lies");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}", SPDL_EFORMAT,
                     "%P: bytes [8, 16) of the data section belong to no tensor");
    expect_entry_err("{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}", SPDL_EFORMAT,
                     "%P: bytes [0, 8) of the data section belong to no tensor");
    unsigned char data[24] = {0};
    expect_read_err(st_file("o.safetensors",
                            "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                            "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[8,24]}}",
                            data, 24),
                    SPDL_EFORMAT, "%P: tensors 'a' and 'b' overlap in the data section");
    expect_read_err(st_file("o2.safetensors",
                            "{\"b\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                            "\"a\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]}}",
                            data, 24),
                    SPDL_EFORMAT, "%P: tensors 'a' and 'b' overlap in the data section");
    expect_read_err(st_file("dup.safetensors",
                            "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                            "\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}}",
                            data, 16),
                    SPDL_EFORMAT, "%P: the header names 'a' twice");
}

Test(st_corrupt, metadata)
{
    unsigned char data[8] = {0};
    const char *w = "\"w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}";
    char h[256];
    snprintf(h, sizeof h, "{\"__metadata__\":{\"k\":1},%s}", w);
    expect_read_err(st_file("m1.safetensors", h, data, 8), SPDL_EFORMAT,
                    "%P: \"__metadata__\" value for 'k' is not a string");
    snprintf(h, sizeof h, "{\"__metadata__\":[\"k\"],%s}", w);
    expect_read_err(st_file("m2.safetensors", h, data, 8), SPDL_EFORMAT, "%P: \"__metadata__\" is not an object");
    snprintf(h, sizeof h, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},%s}", w);
    expect_read_err(st_file("m3.safetensors", h, data, 8), SPDL_EFORMAT, "%P: \"__metadata__\" names 'k' twice");
    snprintf(h, sizeof h, "{%s,\"__metadata__\":{}}", w);
    spdl_st st;
    cr_assert_eq(spdl_st_read(st_file("m4.safetensors", h, data, 8), &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(st.nmeta, 0);
    cr_assert_eq(st.nt, 1);
    spdl_st_free(&st);
}

Test(st_corrupt, non_finite_values)
{
    unsigned char data[16];
    double v[2] = {1, NAN};
    f64s(data, v, 2);
    const char *h = "{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}";
    expect_read_err(st_file("nan.safetensors", h, data, 16), SPDL_ENONFINITE, "%P: tensor 'w' holds a NaN at element 1");
    v[0] = INFINITY;
    v[1] = 0;
    f64s(data, v, 2);
    expect_read_err(st_file("inf.safetensors", h, data, 16), SPDL_ENONFINITE,
                    "%P: tensor 'w' holds an infinity at element 0");
    float f[2] = {1, -INFINITY};
    expect_read_err(st_file("f.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", f, 8),
                    SPDL_ENONFINITE, "%P: tensor 'x' holds an infinity at element 1");
}

/* Every prefix of a valid file is refused with one line; so is every file
   with one byte changed, or else it reads (never a crash or an over-read:
   run under AddressSanitizer by make check-runtime with B=build/asan). */
Test(st_corrupt, truncations_and_byte_flips)
{
    spdl_tensor t[PY_NT];
    py_tensors(t);
    const char *p = path_of("valid.safetensors");
    cr_assert_eq(spdl_st_write(p, t, PY_NT, py_meta_key, py_meta_val, 4, err, sizeof err), 0, "%s", err);
    static unsigned char buf[4096], mut[4096];
    size_t n = file_bytes(p, buf, sizeof buf);
    cr_assert_lt(n, sizeof buf);
    for (size_t k = 0; k < n; k++) {
        spdl_st st;
        const char *q = write_bytes("cut.safetensors", buf, k);
        int rc = spdl_st_read(q, &st, err, sizeof err);
        cr_assert_lt(rc, 0, "prefix of %zu bytes accepted", k);
        cr_assert(err[0] && !strchr(err, '\n'), "prefix %zu: '%s'", k, err);
    }
    const unsigned char flips[] = {0x01, 0x80, 0xff, 0x20};
    size_t accepted = 0;
    for (size_t k = 0; k < n; k++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(mut, buf, n);
            mut[k] ^= flips[f];
            spdl_st st;
            const char *q = write_bytes("flip.safetensors", mut, n);
            int rc = spdl_st_read(q, &st, err, sizeof err);
            if (rc == 0) {
                accepted++;
                spdl_st_free(&st);
            } else {
                cr_assert(err[0] && !strchr(err, '\n'), "byte %zu ^ %#x: '%s'", k, flips[f], err);
            }
        }
    }
    cr_assert_gt(accepted, 0); /* flips in the data section mostly still read */
}
