/* test_images.c - images in data sources (DESIGN §8 "Data for images"):
 * spdl_image_transform against hand-computed arrays, rotate= and mirror= on
 * files and builtins (every channel alike, image targets too, labels not),
 * builtin:mnist, builtin:waves (shift=) and builtin:pointsets (order=angle,
 * permute= on sets), and a comparison with numpy.rot90 / numpy.flip and
 * PyTorch's grid_sample (img_py.py).
 *
 * Files are written at test time into a fresh directory under /tmp; the
 * mnist tests read the repository's data/ through SPDL_DATA (the tests run
 * from tests/runtime). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

static char dir[64];
static char err[1024];

static void setup(void)
{
    strcpy(dir, "/tmp/spdl-img-XXXXXX");
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

static void teardown(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(transform, .init = setup, .fini = teardown);
TestSuite(rotate, .init = setup, .fini = teardown);
TestSuite(mnist, .init = setup, .fini = teardown);
TestSuite(waves, .init = setup, .fini = teardown);
TestSuite(pointsets, .init = setup, .fini = teardown);

/* ---- helpers --------------------------------------------------------------- */

static const char *path_of(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static const char *write_text(const char *name, const char *s)
{
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs(s, f);
    fclose(f);
    return p;
}

/* a layout with input shape dims[0..rank) (rank 0: R[nin]) and ntarget targets */
static spdl_data_layout layout(int rank, const size_t *dims, size_t nin, size_t ntarget, int nclass)
{
    spdl_data_layout l;
    memset(&l, 0, sizeof l);
    l.nin = nin;
    l.in_rank = rank;
    for (int i = 0; i < rank && i < 4; i++)
        l.in_shape[i] = dims[i];
    l.ntarget = ntarget;
    l.nclass = nclass;
    return l;
}

static void load_ok(const char *spec, const spdl_data_layout *l, spdl_data *d)
{
    int rc = spdl_data_load_layout(spec, l, 1, d, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: rc %d: %s", spec, rc, err);
}

static void expect_err(const char *spec, const spdl_data_layout *l, int code, const char *want)
{
    spdl_data d;
    int rc = spdl_data_load_layout(spec, l, 1, &d, err, sizeof err);
    cr_assert_eq(rc, code, "%s: rc %d, want %d: %s", spec, rc, code, err);
    cr_assert_str_eq(err, want);
    cr_assert_null(d.x);
    cr_assert_null(d.t);
}

static void assert_close(const double *a, const double *b, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(a[i] - b[i]) <= tol, "%s: element %zu is %.17g, expected %.17g", what, i, a[i], b[i]);
}

/* ---- spdl_image_transform on hand-computed arrays ---------------------------- */

static const double a3[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void expect_t(const double *src, size_t n, int mirror, double deg, const double *want, double tol)
{
    double out[64];
    spdl_image_transform(src, out, n, mirror, deg);
    char what[64];
    snprintf(what, sizeof what, "mirror %d, %g degrees", mirror, deg);
    assert_close(out, want, n * n, tol, what);
}

Test(transform, quarter_turns_are_numpy_rot90)
{
    /* numpy.rot90([[1,2,3],[4,5,6],[7,8,9]], k) */
    const double r1[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};
    const double r2[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
    const double r3[9] = {7, 4, 1, 8, 5, 2, 9, 6, 3};
    expect_t(a3, 3, 0, 0, a3, 0);
    expect_t(a3, 3, 0, 90, r1, 0);
    expect_t(a3, 3, 0, 180, r2, 0);
    expect_t(a3, 3, 0, 270, r3, 0);
    expect_t(a3, 3, 0, 360, a3, 0);
    expect_t(a3, 3, 0, -90, r3, 0);
    expect_t(a3, 3, 0, 450, r1, 0);
    expect_t(a3, 3, 0, -720, a3, 0);
    /* an even grid: [[1,2],[3,4]] */
    const double b2[4] = {1, 2, 3, 4}, b2r[4] = {2, 4, 1, 3};
    expect_t(b2, 2, 0, 90, b2r, 0);
    const double one[1] = {7};
    expect_t(one, 1, 1, 270, one, 0);
}

Test(transform, mirror_first_then_rotate)
{
    const double m[9] = {3, 2, 1, 6, 5, 4, 9, 8, 7};   /* numpy.flip(a, -1) */
    const double rm[9] = {1, 4, 7, 2, 5, 8, 3, 6, 9};  /* rot90(flip(a)) = a' */
    const double r2m[9] = {7, 8, 9, 4, 5, 6, 1, 2, 3}; /* rot90(flip(a), 2) = flipud(a) */
    const double r3m[9] = {9, 6, 3, 8, 5, 2, 7, 4, 1};
    expect_t(a3, 3, 1, 0, m, 0);
    expect_t(a3, 3, 1, 90, rm, 0);
    expect_t(a3, 3, 1, 180, r2m, 0);
    expect_t(a3, 3, 1, 270, r3m, 0);
    /* D4: (R M)(R M) = R^(1 - 1) M^2 = identity */
    double once[9], twice[9];
    spdl_image_transform(a3, once, 3, 1, 90);
    spdl_image_transform(once, twice, 3, 1, 90);
    assert_close(twice, a3, 9, 0, "(R M)^2");
}

Test(transform, bilinear_at_45_degrees)
{
    /* c = 1, p = cos 45 = sin 45, q = 1 - p. Pixel (0, 1) reads the point (1 - p, 1 + p): weights p q, p p,
       q q, q p on a[0,1] = 2, a[0,2] = 3, a[1,1] = 5, a[1,2] = 6. */
    double p = sqrt(0.5), q = 1 - p, out[9];
    spdl_image_transform(a3, out, 3, 0, 45);
    cr_assert_float_eq(out[1], 8 * p * q + 1.5 + 5 * q * q, 1e-14, "pixel (0,1) is %.17g", out[1]);
    /* pixel (0, 0) reads (1 - 2p, 1) = (-0.414, 1): row -1 is outside (zero), row 0 has weight 2 - 2p */
    cr_assert_float_eq(out[0], (2 - 2 * p) * 2, 1e-14, "pixel (0,0) is %.17g", out[0]);
    cr_assert_float_eq(out[4], 5, 1e-14, "the centre stays");
    /* pixel (2, 2) reads (1 + 2p, 1) = (2.414, 1): row 2 has weight 2 - 2p, row 3 is outside */
    cr_assert_float_eq(out[8], (2 - 2 * p) * 8, 1e-14, "pixel (2,2) is %.17g", out[8]);
    /* mirrored: the same sampling of flip(a) */
    const double m[9] = {3, 2, 1, 6, 5, 4, 9, 8, 7};
    double want[9];
    spdl_image_transform(m, want, 3, 0, 45);
    spdl_image_transform(a3, out, 3, 1, 45);
    assert_close(out, want, 9, 0, "mirror then 45");
}

Test(transform, bilinear_is_continuous_and_keeps_the_interior)
{
    /* near a quarter turn the bilinear rule approaches the exact permutation */
    const double r1[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};
    expect_t(a3, 3, 0, 90 + 1e-9, r1, 1e-7);
    expect_t(a3, 3, 0, 90 - 1e-9, r1, 1e-7);
    expect_t(a3, 3, 0, 1e-9, a3, 1e-7);
    /* a constant image stays constant well inside the grid, and fades to zero at the corners */
    enum { N = 15 };
    double c[N * N], out[N * N];
    for (int i = 0; i < N * N; i++)
        c[i] = 1;
    spdl_image_transform(c, out, N, 0, 37.5);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double r = hypot(i - 7.0, j - 7.0);
            if (r < 6)
                cr_assert_float_eq(out[i * N + j], 1, 1e-12, "(%d, %d) is %.17g", i, j, out[i * N + j]);
            cr_assert(out[i * N + j] >= 0 && out[i * N + j] <= 1 + 1e-12);
        }
    cr_assert_lt(out[0], 1e-12, "a corner: %.17g", out[0]);
    /* a single bright pixel at (2, 7) (above the centre) turned 90 degrees counter-clockwise goes to (7, 2) */
    double dot[N * N] = {0};
    dot[2 * N + 7] = 1;
    spdl_image_transform(dot, out, N, 0, 90);
    cr_assert_eq(out[7 * N + 2], 1);
    spdl_image_transform(dot, out, N, 0, 45); /* half way: about (3.5, 3.5) */
    double wsum = 0, wi = 0, wj = 0;
    for (int i = 0; i < N * N; i++) {
        wsum += out[i];
        wi += out[i] * (i / N);
        wj += out[i] * (i % N);
    }
    cr_assert_float_eq(wi / wsum, 7 - 5 * sqrt(0.5), 0.3, "centre of mass row %g", wi / wsum);
    cr_assert_float_eq(wj / wsum, 7 - 5 * sqrt(0.5), 0.3, "centre of mass column %g", wj / wsum);
}

/* ---- rotate= and mirror= on data sources --------------------------------------- */

Test(rotate, every_channel_alike_labels_untouched)
{
    /* two samples of R[2, 2, 2] and a label */
    const char *p = write_text("img.csv", "1,2,3,4,5,6,7,8,3\n"
                                          "9,10,11,12,13,14,15,16,1\n");
    size_t dims[3] = {2, 2, 2};
    spdl_data_layout l = layout(3, dims, 8, 1, 5);
    char spec[300];
    spdl_data d;
    snprintf(spec, sizeof spec, "%s?rotate=90", p);
    load_ok(spec, &l, &d);
    const double want[16] = {2, 4, 1, 3, 6, 8, 5, 7, 10, 12, 9, 11, 14, 16, 13, 15};
    cr_assert_arr_eq(d.x, want, sizeof want);
    cr_assert_eq(d.t[0], 3);
    cr_assert_eq(d.t[1], 1);
    char desc[400];
    snprintf(desc, sizeof desc, "%s, rotated 90 degrees", p);
    cr_assert_str_eq(d.desc, desc);
    spdl_data_free(&d);
    snprintf(spec, sizeof spec, "%s?mirror=1&rotate=-90", p);
    load_ok(spec, &l, &d);
    /* R^3 M: numpy.rot90(numpy.flip([[1,2],[3,4]], -1), 3) = [[4,2],[3,1]] */
    const double w2[16] = {4, 2, 3, 1, 8, 6, 7, 5, 12, 10, 11, 9, 16, 14, 15, 13};
    cr_assert_arr_eq(d.x, w2, sizeof w2);
    snprintf(desc, sizeof desc, "%s, mirrored and rotated 270 degrees", p);
    cr_assert_str_eq(d.desc, desc);
    spdl_data_free(&d);
    /* R[n, n] is an image too; mirror=0 and rotate=0 change nothing */
    size_t d2[2] = {2, 2};
    spdl_data_layout l2 = layout(2, d2, 4, 5, 0);
    snprintf(spec, sizeof spec, "%s?mirror=0&rotate=0", p);
    load_ok(spec, &l2, &d);
    const double w3[8] = {1, 2, 3, 4, 9, 10, 11, 12};
    cr_assert_arr_eq(d.x, w3, sizeof w3);
    spdl_data_free(&d);
}

Test(rotate, image_targets_turn_with_their_inputs)
{
    const char *p = write_text("pair.csv", "1,2,3,4,10,20,30,40\n");
    size_t dims[3] = {1, 2, 2};
    spdl_data_layout l = layout(3, dims, 4, 4, 0);
    l.target_rank = 3;
    l.target_shape[0] = 1;
    l.target_shape[1] = 2;
    l.target_shape[2] = 2;
    char spec[300];
    snprintf(spec, sizeof spec, "%s?rotate=180", p);
    spdl_data d;
    load_ok(spec, &l, &d);
    const double wx[4] = {4, 3, 2, 1}, wt[4] = {40, 30, 20, 10};
    cr_assert_arr_eq(d.x, wx, sizeof wx);
    cr_assert_arr_eq(d.t, wt, sizeof wt);
    spdl_data_free(&d);
    /* a vector target R[4] is not an image: left as it is */
    l.target_rank = 0;
    load_ok(spec, &l, &d);
    const double wt0[4] = {10, 20, 30, 40};
    cr_assert_arr_eq(d.x, wx, sizeof wx);
    cr_assert_arr_eq(d.t, wt0, sizeof wt0);
    spdl_data_free(&d);
}

Test(rotate, random_angles_follow_the_seed_and_the_split)
{
    size_t dims[3] = {1, 8, 8};
    spdl_data_layout l = layout(3, dims, 64, 1, 10);
    spdl_data a, b, c, plain;
    load_ok("builtin:digits?rotate=random&seed=5", &l, &a);
    load_ok("builtin:digits?rotate=random&seed=5", &l, &b);
    load_ok("builtin:digits?rotate=random&seed=6", &l, &c);
    load_ok("builtin:digits", &l, &plain);
    cr_assert_eq(memcmp(a.x, b.x, a.n * 64 * sizeof(double)), 0, "the same seed gave other angles");
    cr_assert_neq(memcmp(a.x, c.x, a.n * 64 * sizeof(double)), 0);
    cr_assert_str_eq(a.desc, "builtin:digits (8x8 UCI digits, pixels / 16), rotated by a random angle per image "
                             "(bilinear, seed=5)");
    /* each image got its own angle: the mass kept inside the grid varies, and some images changed */
    size_t changed = 0;
    for (size_t i = 0; i < a.n; i++)
        changed += memcmp(a.x + i * 64, plain.x + i * 64, 64 * sizeof(double)) != 0;
    cr_assert_gt(changed, a.n - 5);
    /* without seed=, the seed argument (--seed) draws the angles */
    spdl_data s1, s2;
    cr_assert_eq(spdl_data_load_layout("builtin:digits?rotate=random", &l, 5, &s1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(s1.x, a.x, a.n * 64 * sizeof(double)), 0);
    /* the parts of a split are the parts of the rotated set */
    spdl_data tr, te, s3;
    load_ok("builtin:digits?rotate=random&seed=5&split=0.2&part=train", &l, &tr);
    load_ok("builtin:digits?rotate=random&seed=5&split=0.2&part=test", &l, &te);
    cr_assert_eq(spdl_data_split(&a, 0.2, 5, &s2, &s3), 0);
    cr_assert_eq(memcmp(s2.x, tr.x, tr.n * 64 * sizeof(double)), 0);
    cr_assert_eq(memcmp(s3.x, te.x, te.n * 64 * sizeof(double)), 0);
    spdl_data_free(&a);
    spdl_data_free(&b);
    spdl_data_free(&c);
    spdl_data_free(&s3);
    spdl_data_free(&plain);
    spdl_data_free(&s1);
    spdl_data_free(&s2);
    spdl_data_free(&tr);
    spdl_data_free(&te);
}

Test(rotate, random_turns_every_channel_of_an_image_alike)
{
    /* two equal channels stay equal under a random angle */
    char row[2048];
    size_t o = 0;
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 25; k++)
            o += (size_t)snprintf(row + o, sizeof row - o, "%d,", (k * 7) % 11);
    snprintf(row + o, sizeof row - o, "0\n");
    char text[8192] = "";
    for (int i = 0; i < 3; i++)
        strcat(text, row);
    const char *p = write_text("two.csv", text);
    size_t dims[3] = {2, 5, 5};
    spdl_data_layout l = layout(3, dims, 50, 1, -1);
    char spec[300];
    snprintf(spec, sizeof spec, "%s?rotate=random&seed=3", p);
    spdl_data d;
    load_ok(spec, &l, &d);
    for (size_t i = 0; i < d.n; i++)
        cr_assert_eq(memcmp(d.x + i * 50, d.x + i * 50 + 25, 25 * sizeof(double)), 0, "sample %zu", i);
    /* ... and the three copies of one image got three angles */
    cr_assert_neq(memcmp(d.x, d.x + 50, 25 * sizeof(double)), 0);
    cr_assert_neq(memcmp(d.x + 50, d.x + 100, 25 * sizeof(double)), 0);
    spdl_data_free(&d);
}

Test(rotate, digits_turn_like_numpy)
{
    size_t dims[3] = {1, 8, 8};
    spdl_data_layout l = layout(3, dims, 64, 1, 10);
    spdl_data a, r;
    load_ok("builtin:digits?n=50", &l, &a);
    load_ok("builtin:digits?n=50&rotate=270&mirror=1", &l, &r);
    for (size_t s = 0; s < a.n; s++)
        for (size_t i = 0; i < 8; i++)
            for (size_t j = 0; j < 8; j++) /* R^3 M: (M a)[7 - j, i] = a[7 - j, 7 - i] */
                cr_assert_eq(r.x[s * 64 + i * 8 + j], a.x[s * 64 + (7 - j) * 8 + (7 - i)]);
    cr_assert_arr_eq(r.t, a.t, a.n * sizeof(double));
    cr_assert_str_eq(r.desc, "builtin:digits (8x8 UCI digits, pixels / 16), first 50 of 1797 samples, mirrored and "
                             "rotated 270 degrees");
    spdl_data_free(&a);
    spdl_data_free(&r);
}

Test(rotate, bad_values_and_inputs_that_are_not_images)
{
    size_t dims[3] = {1, 8, 8};
    spdl_data_layout img = layout(3, dims, 64, 1, -1);
    expect_err("builtin:digits?rotate=abc", &img, SPDL_EINVAL,
               "builtin:digits: rotate=abc: expected rotate=90, 180, 270, random or an angle in degrees "
               "(counter-clockwise)");
    expect_err("builtin:digits?rotate=nan", &img, SPDL_EINVAL,
               "builtin:digits: rotate=nan: expected rotate=90, 180, 270, random or an angle in degrees "
               "(counter-clockwise)");
    expect_err("builtin:digits?mirror=2", &img, SPDL_EINVAL,
               "builtin:digits: mirror=2: expected mirror=1 (flip every image left to right) or mirror=0");
    spdl_data_layout flat = layout(0, NULL, 64, 1, -1);
    expect_err("builtin:digits?rotate=90", &flat, SPDL_EINVAL,
               "builtin:digits: rotate= acts on images, but the model's input R[64] is not an image R[c, n, n] or "
               "R[n, n] (declare it as R[1, 8, 8] to read each sample as one image)");
    spdl_data d;
    cr_assert_eq(spdl_data_load("builtin:spirals?mirror=1", 2, 1, 1, &d, err, sizeof err), SPDL_EINVAL);
    cr_assert_str_eq(err, "builtin:spirals: mirror= acts on images, but the model's input R[2] is not an image "
                          "R[c, n, n] or R[n, n]");
    size_t ps[2] = {2, 16};
    spdl_data_layout pl = layout(2, ps, 32, 1, -1);
    expect_err("builtin:pointsets?rotate=90&mirror=1", &pl, SPDL_EINVAL,
               "builtin:pointsets: rotate= and mirror= act on images, but the model's input R[2, 16] is not an "
               "image R[c, n, n] or R[n, n] (builtin:pointsets turns its shapes with angle=)");
    const char *p = write_text("f.csv", "1,2,3,4,5,6,0\n");
    size_t rect[3] = {1, 2, 3};
    spdl_data_layout rl = layout(3, rect, 6, 1, -1);
    char spec[300], want[600];
    snprintf(spec, sizeof spec, "%s?rotate=180", p);
    snprintf(want, sizeof want, "%s: rotate= acts on images, but the model's input R[1, 2, 3] is not an image "
             "R[c, n, n] or R[n, n]", p);
    expect_err(spec, &rl, SPDL_EINVAL, want);
    /* the keys are known to every source */
    snprintf(spec, sizeof spec, "%s?turn=1", p);
    snprintf(want, sizeof want, "%s: unknown key 'turn' (known keys: n, seed, split, part, rotate, mirror, shift, permute)", p);
    expect_err(spec, &rl, SPDL_EINVAL, want);
    /* a layout whose shape does not hold nin */
    size_t bad[2] = {3, 3};
    spdl_data_layout bl = layout(2, bad, 8, 1, -1);
    expect_err("builtin:digits", &bl, SPDL_EINVAL,
               "spdl_data_load: the input shape (rank 2) does not hold the model's 8 inputs");
    size_t five[5] = {1, 1, 1, 3, 3};
    bl = layout(5, five, 9, 1, -1);
    expect_err("builtin:digits", &bl, SPDL_EINVAL,
               "spdl_data_load: the input shape (rank 5) does not hold the model's 9 inputs");
}

Test(rotate, layout_of_a_model)
{
    spdl_model m;
    memset(&m, 0, sizeof m);
    m.nin = 64;
    m.ntarget = 1;
    m.nclass = 10;
    m.in_rank = 3;
    m.in_shape[0] = 1;
    m.in_shape[1] = m.in_shape[2] = 8;
    spdl_data_layout l = spdl_data_layout_of(&m);
    cr_assert_eq(l.nin, 64);
    cr_assert_eq(l.in_rank, 3);
    cr_assert_eq(l.in_shape[2], 8);
    cr_assert_eq(l.nclass, 10);
    cr_assert_eq(l.target_rank, 0);
    m.ntarget = 0;
    m.nclass = 0;
    l = spdl_data_layout_of(&m);
    cr_assert_eq(l.nclass, -1); /* a density model */
    m.ntarget = 4;
    m.target_rank = 3;
    m.target_shape[0] = 1;
    m.target_shape[1] = m.target_shape[2] = 2;
    l = spdl_data_layout_of(&m);
    cr_assert_eq(l.nclass, 0);
    cr_assert_eq(l.target_rank, 3);
    cr_assert_eq(l.target_shape[1], 2);
}

/* ---- against numpy.rot90 / numpy.flip and torch grid_sample (img_py.py) --------- */

Test(rotate, numpy_and_torch_agree)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no /usr/bin/python3");
    /* 6 samples of R[2, 7, 7] with a label, random pixels */
    enum { NS = 6, C = 2, N = 7, NIN = C * N * N };
    double rows[NS * (NIN + 1)];
    uint64_t s = 12345;
    for (size_t i = 0; i < NS; i++) {
        for (size_t k = 0; k < NIN; k++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            rows[i * (NIN + 1) + k] = (double)(s >> 11) * 0x1.0p-53 * 2 - 1;
        }
        rows[i * (NIN + 1) + NIN] = (double)(i % 3);
    }
    char in[300];
    snprintf(in, sizeof in, "%s/in.npy", dir);
    cr_assert_eq(spdl_npy_write(in, rows, NS, NIN + 1, err, sizeof err), 0, "%s", err);
    size_t dims[3] = {C, N, N};
    spdl_data_layout l = layout(3, dims, NIN, 1, -1);
    const char *cases[] = {"rotate=90", "rotate=180", "rotate=270", "mirror=1", "mirror=1&rotate=90",
                           "mirror=1&rotate=180", "mirror=1&rotate=270", "rotate=37.5", "rotate=-123.25",
                           "mirror=1&rotate=200", "rotate=1e-3"};
    FILE *list = fopen(path_of("cases.txt"), "w");
    cr_assert_not_null(list);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char spec[400], out[300];
        snprintf(spec, sizeof spec, "%s?%s", in, cases[c]);
        spdl_data d;
        load_ok(spec, &l, &d);
        snprintf(out, sizeof out, "%s/out%zu.npy", dir, c);
        cr_assert_eq(spdl_npy_write(out, d.x, d.n, d.nin, err, sizeof err), 0, "%s", err);
        fprintf(list, "%s %s\n", out, cases[c]);
        spdl_data_free(&d);
    }
    fclose(list);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 img_py.py %s/in.npy %d %d %s/cases.txt", dir, C, N, dir);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "cannot run /usr/bin/python3");
    if (WEXITSTATUS(st) == 77)
        cr_skip_test("numpy is not installed");
    cr_assert_eq(WEXITSTATUS(st), 0, "img_py.py found a difference (its output says where)");
}

/* ---- builtin:mnist ------------------------------------------------------------------- */

static const int mnist_counts[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};

Test(mnist, rows_counts_and_pixels)
{
    size_t dims[3] = {1, 28, 28};
    spdl_data_layout l = layout(3, dims, 784, 1, 10);
    spdl_data d, raw;
    load_ok("builtin:mnist", &l, &d);
    cr_assert_eq(d.n, 10000);
    cr_assert_eq(d.nin, 784);
    cr_assert_eq(d.nclass, 10);
    cr_assert_str_eq(d.desc, "builtin:mnist (28x28 MNIST digits, pixels / 255)");
    int count[10] = {0};
    for (size_t i = 0; i < d.n; i++)
        count[(int)d.t[i]]++;
    cr_assert_arr_eq(count, mnist_counts, sizeof count);
    /* round robin over the classes: the first ten are 0..9 */
    for (int i = 0; i < 10; i++)
        cr_assert_eq(d.t[i], i);
    load_ok("builtin:mnist?scale=0", &l, &raw);
    double hi = 0, sum = 0;
    for (size_t k = 0; k < d.n * 784; k++) {
        cr_assert(raw.x[k] >= 0 && raw.x[k] <= 255 && raw.x[k] == floor(raw.x[k]));
        cr_assert_eq(d.x[k], raw.x[k] / 255.0);
        hi = fmax(hi, raw.x[k]);
        sum += d.x[k];
    }
    cr_assert_eq(hi, 255);
    cr_assert_float_eq(sum / (d.n * 784.0), 0.1311, 1e-4, "mean pixel %g", sum / (d.n * 784.0));
    cr_assert_str_eq(raw.desc, "builtin:mnist (28x28 MNIST digits, pixels 0..255)");
    spdl_data_free(&d);
    spdl_data_free(&raw);
}

Test(mnist, prefixes_stay_balanced_and_shapes_vary)
{
    spdl_data_layout flat = layout(0, NULL, 784, 1, 10);
    spdl_data d;
    load_ok("builtin:mnist?n=100", &flat, &d);
    cr_assert_eq(d.n, 100);
    int count[10] = {0};
    for (size_t i = 0; i < d.n; i++)
        count[(int)d.t[i]]++;
    for (int c = 0; c < 10; c++)
        cr_assert_eq(count[c], 10);
    spdl_data_free(&d);
    size_t sq[2] = {28, 28};
    spdl_data_layout l2 = layout(2, sq, 784, 1, -1);
    spdl_data a, r;
    load_ok("builtin:mnist?n=20", &l2, &a);
    load_ok("builtin:mnist?n=20&rotate=90", &l2, &r);
    for (size_t i = 0; i < 28; i++)
        for (size_t j = 0; j < 28; j++)
            cr_assert_eq(r.x[5 * 784 + i * 28 + j], a.x[5 * 784 + j * 28 + 27 - i]);
    spdl_data_free(&a);
    spdl_data_free(&r);
    spdl_data_layout bad = layout(0, NULL, 64, 1, -1);
    expect_err("builtin:mnist", &bad, SPDL_EMODEL, "builtin:mnist has 784 inputs per sample, the model has 64");
    expect_err("builtin:mnist?scale=3", &flat, SPDL_EINVAL,
               "builtin:mnist: scale=3: expected scale=1 (pixels / 255) or scale=0 (pixels 0..255)");
    spdl_data_layout c3 = layout(0, NULL, 784, 1, 3);
    expect_err("builtin:mnist", &c3, SPDL_EMODEL, "builtin:mnist has 10 classes, the model has 3");
}

Test(mnist, a_wrong_file_is_refused)
{
    spdl_data_layout flat = layout(0, NULL, 784, 1, -1);
    const char *p = path_of("mnist.u8.gz");
    setenv("SPDL_DATA", dir, 1);
    char want[600];
    /* too short */
    gzFile gz = gzopen(p, "wb");
    gzwrite(gz, "abc", 3);
    gzclose(gz);
    snprintf(want, sizeof want, "%s: not spdl's MNIST file: expected 7850000 bytes (10000 images of 28x28 pixels and "
             "a label) when uncompressed, found 3", p);
    expect_err("builtin:mnist", &flat, SPDL_EFORMAT, want);
    /* the right length, a bad label */
    static unsigned char buf[7850000];
    memset(buf, 0, sizeof buf);
    buf[784] = 10;
    gz = gzopen(p, "wb");
    gzwrite(gz, buf, sizeof buf);
    gzclose(gz);
    snprintf(want, sizeof want, "%s: not spdl's MNIST file: record 1 has label 10, expected 0..9", p);
    expect_err("builtin:mnist", &flat, SPDL_EFORMAT, want);
    /* the right length and class counts, other pixels */
    size_t i = 0;
    for (int c = 0; c < 10; c++)
        for (int k = 0; k < mnist_counts[c]; k++, i++)
            buf[i * 785 + 784] = (unsigned char)c;
    gz = gzopen(p, "wb");
    gzwrite(gz, buf, sizeof buf);
    gzclose(gz);
    spdl_data d;
    cr_assert_eq(spdl_data_load_layout("builtin:mnist", &flat, 1, &d, err, sizeof err), SPDL_EFORMAT);
    snprintf(want, sizeof want, "%s: not spdl's MNIST file: expected class counts 1001/1127/991/1032/980/863/1014/"
             "1070/944/978 and CRC-32 0x253cdb88, found 1001/1127/991/1032/980/863/1014/1070/944/978 and 0x", p);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_assert(strstr(err, "(tools/mnist_convert.py makes the file; data/README.md)"), "%s", err);
    /* a truncated gzip stream */
    FILE *f = fopen(p, "rb+");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(p, len / 2), 0);
    cr_assert_eq(spdl_data_load_layout("builtin:mnist", &flat, 1, &d, err, sizeof err), SPDL_EFORMAT, "%s", err);
    /* missing */
    remove(p);
    cr_assert_eq(spdl_data_load_layout("builtin:mnist", &flat, 1, &d, err, sizeof err), SPDL_EIO);
    snprintf(want, sizeof want, "builtin:mnist: cannot find mnist.u8.gz; looked in %s, ", dir);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
}

/* ---- builtin:waves ---------------------------------------------------------------- */

Test(waves, shapes_lengths_and_classes)
{
    size_t d1[2] = {1, 32};
    spdl_data_layout l = layout(2, d1, 32, 1, 4);
    spdl_data d;
    load_ok("builtin:waves?noise=0", &l, &d);
    cr_assert_eq(d.n, 1000);
    cr_assert_eq(d.nin, 32);
    cr_assert_eq(d.nclass, 4);
    cr_assert_str_eq(d.desc, "builtin:waves (n=1000, length 32, noise=0, cycles=3, seed=1)");
    for (size_t i = 0; i < d.n; i++) {
        const double *x = d.x + i * 32;
        int c = (int)d.t[i];
        cr_assert_eq(c, (int)(i % 4));
        double lo = 1e9, hi = -1e9, sum = 0;
        for (int j = 0; j < 32; j++) {
            lo = fmin(lo, x[j]);
            hi = fmax(hi, x[j]);
            sum += x[j];
        }
        cr_assert(hi <= 1.5 && lo >= -1.5, "sample %zu: %g..%g", i, lo, hi);
        if (c == 0) /* whole periods of a sine sum to zero */
            cr_assert_float_eq(sum, 0, 1e-9, "sample %zu: sum %g", i, sum);
        if (c == 1) { /* a square wave takes two values, +a and -a */
            cr_assert_float_eq(lo, -hi, 1e-12);
            for (int j = 0; j < 32; j++)
                cr_assert(x[j] == lo || x[j] == hi);
            cr_assert(hi >= 0.5 && hi < 1.5);
        }
    }
    spdl_data_free(&d);
    /* R[L]: any length; noise is added */
    spdl_data_layout v = layout(0, NULL, 20, 1, -1);
    load_ok("builtin:waves?n=8&cycles=5&seed=4", &v, &d);
    cr_assert_str_eq(d.desc, "builtin:waves (n=8, length 20, noise=0.1, cycles=5, seed=4)");
    spdl_data_free(&d);
}

Test(waves, deterministic_and_errors)
{
    size_t d1[2] = {1, 32};
    spdl_data_layout l = layout(2, d1, 32, 1, 4);
    spdl_data a, b, c;
    load_ok("builtin:waves?seed=7", &l, &a);
    load_ok("builtin:waves?seed=7", &l, &b);
    load_ok("builtin:waves?seed=8", &l, &c);
    cr_assert_eq(memcmp(a.x, b.x, a.n * 32 * sizeof(double)), 0);
    cr_assert_neq(memcmp(a.x, c.x, a.n * 32 * sizeof(double)), 0);
    spdl_data_free(&a);
    spdl_data_free(&b);
    spdl_data_free(&c);
    size_t d2[2] = {2, 16};
    spdl_data_layout two = layout(2, d2, 32, 1, 4);
    expect_err("builtin:waves", &two, SPDL_EMODEL,
               "builtin:waves makes signals R[1, L] (one channel of L samples), the model's input is R[2, 16]");
    expect_err("builtin:waves?cycles=9", &l, SPDL_EINVAL,
               "builtin:waves: cycles=9 needs signals of at least 36 samples (4 per period), the model's input "
               "R[1, 32] has 32");
    expect_err("builtin:waves?cycles=0", &l, SPDL_EINVAL, "builtin:waves: cycles=0: expected an integer from 1 to 1000");
    expect_err("builtin:waves?cycles=2.5", &l, SPDL_EINVAL,
               "builtin:waves: cycles=2.5: expected an integer from 1 to 1000");
    spdl_data_layout c3 = layout(2, d1, 32, 1, 3);
    expect_err("builtin:waves", &c3, SPDL_EMODEL, "builtin:waves has 4 classes, the model has 3");
    expect_err("builtin:waves?zoom=1", &l, SPDL_EINVAL,
               "builtin:waves: unknown key 'zoom' (known keys: n, noise, cycles, phase, seed, split, part, rotate, mirror, shift, permute)");
    expect_err("builtin:waves?rotate=90", &l, SPDL_EINVAL,
               "builtin:waves: rotate= acts on images, but the model's input R[1, 32] is not an image R[c, n, n] or "
               "R[n, n]");
}

/* phase=X: every signal starts at X of a period (the other draws as with a
 * random phase); shift=S turns every signal cyclically by S samples
 * (numpy.roll), shift=random by a random S per signal, seeded */
Test(waves, phase_and_shift)
{
    size_t d1[2] = {1, 32}, dv[1] = {32};
    spdl_data_layout l = layout(2, d1, 32, 1, 4), v = layout(1, dv, 32, 1, 4);
    spdl_data a, b, c, r1, r2;
    load_ok("builtin:waves?n=40&noise=0&phase=0.25&cycles=1", &l, &a);
    cr_assert_str_eq(a.desc, "builtin:waves (n=40, length 32, noise=0, cycles=1, phase=0.25, seed=1)");
    for (size_t i = 0; i < a.n; i += 4) /* sines: a sin(2 pi (j / 32 + 1/4)) = a cos(2 pi j / 32) */
        for (int j = 0; j < 32; j++)
            cr_assert_float_eq(a.x[i * 32 + (size_t)j], a.x[i * 32] * cos(2 * M_PI * j / 32.0), 1e-12);
    load_ok("builtin:waves?n=40&noise=0&phase=0.25&cycles=1&shift=5", &l, &b);
    cr_assert_str_eq(b.desc, "builtin:waves (n=40, length 32, noise=0, cycles=1, phase=0.25, seed=1), shifted 5 "
                             "samples (cyclic)");
    load_ok("builtin:waves?n=40&noise=0&phase=0.25&cycles=1&shift=-27", &v, &c);
    for (size_t i = 0; i < a.n; i++)
        for (size_t j = 0; j < 32; j++) {
            cr_assert(b.x[i * 32 + (j + 5) % 32] == a.x[i * 32 + j]);
            cr_assert(c.x[i * 32 + (j + 5) % 32] == a.x[i * 32 + j], "shift=-27 is shift=5 on R[32]");
        }
    load_ok("builtin:waves?n=40&shift=random", &l, &r1);
    load_ok("builtin:waves?n=40&shift=random", &l, &r2);
    cr_assert(memcmp(r1.x, r2.x, 40 * 32 * sizeof *r1.x) == 0, "shift=random is seeded");
    cr_assert_str_eq(r1.desc, "builtin:waves (n=40, length 32, noise=0.1, cycles=3, seed=1), shifted by a random "
                              "number of samples per signal (cyclic, seed=1)");
    spdl_data_free(&a), spdl_data_free(&b), spdl_data_free(&c), spdl_data_free(&r1), spdl_data_free(&r2);
    expect_err("builtin:waves?phase=1", &l, SPDL_EINVAL, "builtin:waves: phase=1: expected phase=random or a number "
               "in [0, 1) (the fraction of a period every signal starts at)");
    expect_err("builtin:waves?shift=1.5", &l, SPDL_EINVAL, "builtin:waves: shift=1.5: expected shift=random or a "
               "whole number of samples (cyclic, to the right)");
    expect_err("builtin:waves?shift=1&mirror=1", &l, SPDL_EINVAL, "builtin:waves: shift= acts on signals and "
               "rotate=/mirror= on images: give one or the other");
    size_t di[3] = {1, 8, 8};
    spdl_data_layout img = layout(3, di, 64, 1, 10);
    expect_err("builtin:digits?shift=1", &img, SPDL_EINVAL, "builtin:digits: shift= acts on signals, but the "
               "model's input R[1, 8, 8] is not a signal R[c, n] or R[n]");
}

/* ---- builtin:pointsets -------------------------------------------------------------- */

Test(pointsets, shapes_channels_first)
{
    size_t d1[2] = {2, 16};
    spdl_data_layout l = layout(2, d1, 32, 1, 3);
    spdl_data d;
    load_ok("builtin:pointsets?noise=0&angle=0", &l, &d);
    cr_assert_eq(d.n, 1000);
    cr_assert_str_eq(d.desc, "builtin:pointsets (n=1000, 16 points, noise=0, zoom=0, angle=0, seed=1)");
    for (size_t i = 0; i < d.n; i++) {
        const double *x = d.x + i * 32, *y = x + 16;
        int c = (int)d.t[i];
        cr_assert_eq(c, (int)(i % 3));
        for (int j = 0; j < 16; j++) {
            double r = hypot(x[j], y[j]);
            if (c == 0)
                cr_assert_float_eq(r, 1, 1e-12);
            else if (c == 1)
                cr_assert_float_eq(fmax(fabs(x[j]), fabs(y[j])), 0.8, 1e-12);
            else
                cr_assert(x[j] == 0 || y[j] == 0, "a cross point off the axes: (%g, %g)", x[j], y[j]);
            cr_assert(r <= 1 + 1e-12 + (c == 1) * 0.14);
        }
    }
    spdl_data_free(&d);
    /* random turns and sizes: the radii of a circle stay within the zoom */
    load_ok("builtin:pointsets?noise=0&zoom=0.3&n=300", &l, &d);
    cr_assert_str_eq(d.desc, "builtin:pointsets (n=300, 16 points, noise=0, zoom=0.3, angle=random, seed=1)");
    double lo = 9, hi = 0;
    int offaxis = 0;
    for (size_t i = 0; i < d.n; i++) {
        const double *x = d.x + i * 32, *y = x + 16;
        if (d.t[i] == 0)
            for (int j = 0; j < 16; j++) {
                double r = hypot(x[j], y[j]);
                cr_assert_float_eq(r, hypot(x[0], y[0]), 1e-12, "one circle has one radius");
                lo = fmin(lo, r);
                hi = fmax(hi, r);
            }
        if (d.t[i] == 2)
            for (int j = 0; j < 16; j++)
                offaxis += fabs(x[j]) > 1e-9 && fabs(y[j]) > 1e-9;
    }
    cr_assert(lo >= 0.7 - 1e-12 && hi <= 1.3 + 1e-12 && lo < 0.75 && hi > 1.25, "radii %g..%g", lo, hi);
    cr_assert_gt(offaxis, 100, "the crosses were not turned");
    spdl_data_free(&d);
    /* any number of points */
    size_t d5[2] = {2, 5};
    spdl_data_layout l5 = layout(2, d5, 10, 1, -1);
    load_ok("builtin:pointsets?n=9&noise=0.2&seed=2", &l5, &d);
    cr_assert_eq(d.nin, 10);
    cr_assert_str_eq(d.desc, "builtin:pointsets (n=9, 5 points, noise=0.2, zoom=0, angle=random, seed=2)");
    spdl_data_free(&d);
}

Test(pointsets, errors)
{
    spdl_data_layout flat = layout(0, NULL, 32, 1, 3);
    expect_err("builtin:pointsets", &flat, SPDL_EMODEL,
               "builtin:pointsets makes sets of points in the plane, R[2, m] (channels first: x[0, j], x[1, j] is "
               "point j), the model's input is R[32]");
    size_t d1[2] = {2, 16};
    spdl_data_layout l = layout(2, d1, 32, 1, 3);
    expect_err("builtin:pointsets?angle=left", &l, SPDL_EINVAL,
               "builtin:pointsets: angle=left: expected angle=random or an angle in degrees");
    expect_err("builtin:pointsets?zoom=0.95", &l, SPDL_EINVAL,
               "builtin:pointsets: zoom=0.95 is out of range (between 0 and 0.9)");
    spdl_data_layout c4 = layout(2, d1, 32, 1, 4);
    expect_err("builtin:pointsets", &c4, SPDL_EMODEL, "builtin:pointsets has 3 classes, the model has 4");
    spdl_data_layout den = layout(2, d1, 32, 0, -1);
    spdl_data d;
    load_ok("builtin:pointsets?n=10", &den, &d); /* a density model takes the points */
    cr_assert_null(d.t);
    spdl_data_free(&d);
}

/* ---- order=angle and permute= (sets R[c, n], DESIGN §8 S(n)) ----------------------- */

/* Is every set of b a reordering of the same set of a (sets of `channels` x m,
 * columns compared bit for bit, each column of a used once)? Writes the
 * order found, b[:, j] = a[:, perm[j]], into perm. */
static int set_reordering(const double *a, const double *b, size_t channels, size_t m, size_t *perm)
{
    int used[64] = {0};
    cr_assert(m <= 64);
    for (size_t j = 0; j < m; j++) {
        size_t k = 0;
        for (; k < m; k++) {
            int same = !used[k];
            for (size_t c = 0; same && c < channels; c++)
                same = memcmp(&a[c * m + k], &b[c * m + j], sizeof *a) == 0;
            if (same)
                break;
        }
        if (k == m)
            return 0;
        used[k] = 1;
        perm[j] = k;
    }
    return 1;
}

Test(pointsets, order_angle_sorts_every_set)
{
    size_t d1[2] = {2, 16}, perm[16];
    spdl_data_layout l = layout(2, d1, 32, 1, 3);
    spdl_data drawn, sorted, by_draw, ties;
    load_ok("builtin:pointsets?n=300", &l, &drawn);
    load_ok("builtin:pointsets?n=300&order=angle", &l, &sorted);
    load_ok("builtin:pointsets?n=300&order=draw", &l, &by_draw);
    cr_assert_str_eq(sorted.desc, "builtin:pointsets (n=300, 16 points, noise=0.05, zoom=0, angle=random, "
                                  "order=angle, seed=1)");
    cr_assert_str_eq(by_draw.desc, drawn.desc, "order=draw is the default");
    cr_assert(memcmp(by_draw.x, drawn.x, 300 * 32 * sizeof *drawn.x) == 0, "order=draw is the default");
    int moved = 0;
    for (size_t i = 0; i < sorted.n; i++) {
        const double *x = sorted.x + i * 32, *y = x + 16;
        cr_assert(sorted.t[i] == drawn.t[i], "the labels stay");
        cr_assert(set_reordering(drawn.x + i * 32, x, 2, 16, perm), "set %zu is not the drawn set reordered", i);
        for (int j = 1; j < 16; j++)
            cr_assert(atan2(y[j - 1], x[j - 1]) <= atan2(y[j], x[j]), "set %zu: points %d and %d out of order", i,
                      j - 1, j);
        for (int j = 0; j < 16; j++)
            moved += perm[j] != (size_t)j;
    }
    cr_assert_gt(moved, 300 * 12, "the draw order was nearly sorted already?");
    /* equal angles (the arms of an unturned, noiseless cross) keep the draw order */
    load_ok("builtin:pointsets?n=3&noise=0&angle=0&order=angle", &l, &ties);
    const double *x = ties.x + 2 * 32, *y = x + 16;
    spdl_data plain;
    load_ok("builtin:pointsets?n=3&noise=0&angle=0", &l, &plain);
    cr_assert(set_reordering(plain.x + 2 * 32, x, 2, 16, perm));
    for (int j = 1; j < 16; j++)
        if (atan2(y[j - 1], x[j - 1]) == atan2(y[j], x[j]))
            cr_assert_lt(perm[j - 1], perm[j], "points %d and %d on one arm left the draw order", j - 1, j);
    spdl_data_free(&drawn), spdl_data_free(&sorted), spdl_data_free(&by_draw), spdl_data_free(&ties);
    spdl_data_free(&plain);
}

Test(pointsets, permute_reorders_members)
{
    size_t d1[2] = {2, 16}, perm[16], prev[16];
    spdl_data_layout l = layout(2, d1, 32, 1, 3);
    spdl_data a, rev, rnd, rnd2, back;
    load_ok("builtin:pointsets?n=200&order=angle", &l, &a);
    load_ok("builtin:pointsets?n=200&order=angle&permute=reverse", &l, &rev);
    load_ok("builtin:pointsets?n=200&order=angle&permute=random", &l, &rnd);
    load_ok("builtin:pointsets?n=200&order=angle&permute=random", &l, &rnd2);
    cr_assert_str_eq(rev.desc, "builtin:pointsets (n=200, 16 points, noise=0.05, zoom=0, angle=random, order=angle, "
                               "seed=1), members of every set in reverse order");
    cr_assert_str_eq(rnd.desc, "builtin:pointsets (n=200, 16 points, noise=0.05, zoom=0, angle=random, order=angle, "
                               "seed=1), members of every set in a random order (seed=1)");
    cr_assert(memcmp(rnd.x, rnd2.x, 200 * 32 * sizeof *rnd.x) == 0, "permute=random is seeded");
    int identity = 0, same_as_prev = 0;
    for (size_t i = 0; i < a.n; i++) {
        const double *x = a.x + i * 32;
        cr_assert(rev.t[i] == a.t[i] && rnd.t[i] == a.t[i], "the labels stay");
        for (size_t c = 0; c < 2; c++)
            for (size_t j = 0; j < 16; j++)
                cr_assert(rev.x[i * 32 + c * 16 + j] == x[c * 16 + 15 - j], "reverse: set %zu, [%zu, %zu]", i, c, j);
        cr_assert(set_reordering(x, rnd.x + i * 32, 2, 16, perm), "set %zu is not a reordering of its members", i);
        int is_identity = 1;
        for (size_t j = 0; j < 16; j++)
            is_identity &= perm[j] == j;
        identity += is_identity;
        same_as_prev += i > 0 && memcmp(perm, prev, sizeof perm) == 0;
        memcpy(prev, perm, sizeof perm);
    }
    cr_assert_eq(identity, 0, "permute=random left %d sets in order", identity);
    cr_assert_eq(same_as_prev, 0, "permute=random reused a permutation: one per set");
    /* reverse twice is the identity: the reversed sets written to a file and reversed again */
    double *rows = malloc(200 * 33 * sizeof *rows);
    cr_assert_not_null(rows);
    for (size_t i = 0; i < 200; i++) {
        memcpy(rows + i * 33, rev.x + i * 32, 32 * sizeof *rows);
        rows[i * 33 + 32] = rev.t[i];
    }
    cr_assert_eq(spdl_npy_write(path_of("rev.npy"), rows, 200, 33, err, sizeof err), 0, "%s", err);
    free(rows);
    char spec[300];
    snprintf(spec, sizeof spec, "%s?permute=reverse", path_of("rev.npy"));
    load_ok(spec, &l, &back);
    cr_assert(memcmp(back.x, a.x, 200 * 32 * sizeof *a.x) == 0, "reverse twice is not the identity");
    cr_assert(memcmp(back.t, a.t, 200 * sizeof *a.t) == 0);
    spdl_data_free(&a), spdl_data_free(&rev), spdl_data_free(&rnd), spdl_data_free(&rnd2), spdl_data_free(&back);
}

Test(pointsets, permute_and_order_errors)
{
    size_t d1[2] = {2, 16}, di[3] = {1, 8, 8};
    spdl_data_layout l = layout(2, d1, 32, 1, 3), img = layout(3, di, 64, 1, 10), flat = layout(0, NULL, 64, 1, 10);
    expect_err("builtin:pointsets?permute=sideways", &l, SPDL_EINVAL, "builtin:pointsets: permute=sideways: expected "
               "permute=reverse (the members of every set in reverse order) or permute=random (a random order per "
               "set)");
    expect_err("builtin:pointsets?order=size", &l, SPDL_EINVAL, "builtin:pointsets: order=size: expected order=draw "
               "(the points in the order they were drawn, the default) or order=angle (sorted by polar angle around "
               "the origin)");
    expect_err("builtin:pointsets?permute=random&shift=1", &l, SPDL_EINVAL, "builtin:pointsets: permute= and shift= "
               "both reorder the last axis: give one or the other");
    expect_err("builtin:pointsets?permute=reverse&mirror=1", &l, SPDL_EINVAL, "builtin:pointsets: permute= acts on "
               "sets and rotate=/mirror= on images: give one or the other");
    expect_err("builtin:digits?permute=reverse", &img, SPDL_EINVAL, "builtin:digits: permute= reorders the members "
               "of sets, but the model's input R[1, 8, 8] is not a set R[c, n]");
    expect_err("builtin:digits?permute=random", &flat, SPDL_EINVAL, "builtin:digits: permute= reorders the members "
               "of sets, but the model's input R[64] is not a set R[c, n] (declare it as R[1, 64] to reorder its 64 "
               "numbers)");
    expect_err("builtin:pointsets?sort=angle", &l, SPDL_EINVAL, "builtin:pointsets: unknown key 'sort' (known keys: "
               "n, noise, zoom, angle, order, seed, split, part, rotate, mirror, shift, permute)");
    size_t dw[2] = {1, 32};
    spdl_data_layout w = layout(2, dw, 32, 1, 4);
    expect_err("builtin:waves?order=angle", &w, SPDL_EINVAL, "builtin:waves: unknown key 'order' (known keys: n, "
               "noise, cycles, phase, seed, split, part, rotate, mirror, shift, permute)");
}
