/* data.c - data specs, CSV and .npy readers, the built-in generators, the
 * digits and MNIST sets, and the image transforms rotate= and mirror=.
 *
 * spdl_data_load parses a spec (path or builtin:NAME, then ?key=value&...),
 * reads or generates every sample into one spdl_data, then applies the
 * generic keys: n= caps a file (first N rows), rotate=/mirror= transform
 * every image (the model's input shape says what an image is), split=/part=
 * keep one part of a seeded permutation. Every failure returns a negative SPDL_E* code and one
 * line in err that names the file (and line and column for CSV).
 *
 * Numbers are read with strtod under a per-thread "C" LC_NUMERIC locale
 * (uselocale), so a program that set a comma-decimal locale still reads "0.5".
 * No global state: the RNG is a local splitmix64, buffers are the caller's or
 * malloc'ed per call. runtime/DATA.md documents the formats and generators. */
#include "data.h"
#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#ifndef SPDL_DATA_DIR
#define SPDL_DATA_DIR "/usr/local/share/spdl/data"
#endif

#define PI 3.14159265358979323846
#define MAX_BUILTIN_N 10000000u /* a generator makes at most this many samples */
#define MAX_KEYS 16
#define DIGITS_FILE "digits.csv.gz"
#define DIGITS_N 1797
#define MNIST_FILE "mnist.u8.gz"
#define MNIST_N 10000
#define MNIST_PIXELS 784
#define MNIST_CRC32 0x253cdb88u /* of the uncompressed bytes (tools/mnist_convert.py) */

/* ---- errors (spdl_fail, errmsg.h) --------------------------------------- */

/* Copies s[0..len) into out for quoting in a message: at most 40 bytes,
   control and non-ASCII bytes as \xNN, "..." when cut. */
static const char *quote(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= outlen || i >= 40) {
            snprintf(out + o, outlen - o, "...");
            return out;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* ---- allocation -------------------------------------------------------- */

/* n * m doubles, or NULL on overflow or out of memory (never NULL for 0). */
static double *alloc_doubles(size_t n, size_t m)
{
    if (m != 0 && n > SIZE_MAX / sizeof(double) / m)
        return NULL;
    size_t bytes = n * m * sizeof(double);
    return malloc(bytes ? bytes : 1);
}

/* ---- deterministic RNG: splitmix64 -------------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* uniform on [0, 1), 53 random bits */
static double rng_unif(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* uniform integer in [0, n), n >= 1, without modulo bias */
static uint64_t rng_below(rng_t *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

/* two independent standard normals (Box-Muller, u1 in (0, 1]) */
static void rng_gauss2(rng_t *r, double *g1, double *g2)
{
    double u1 = ((double)(rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = rng_unif(r);
    double rad = sqrt(-2.0 * log(u1));
    *g1 = rad * cos(2.0 * PI * u2);
    *g2 = rad * sin(2.0 * PI * u2);
}

/* The permutation behind split=: Fisher-Yates driven by splitmix64 seeded
   with seed ^ SPLIT_SALT (so it does not reuse a generator's stream). */
#define SPLIT_SALT 0xd1b54a32d192ed03u

static void permutation(size_t *idx, size_t n, uint64_t seed)
{
    rng_t r = {seed ^ SPLIT_SALT};
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        size_t tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
}

/* ---- numbers ------------------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int lower(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

static int word_eq(const char *s, size_t len, const char *w)
{
    size_t n = strlen(w);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != w[i])
            return 0;
    return 1;
}

/* Is s[0..len) one decimal number: [+-](digits[.digits]|.digits)[e[+-]digits],
   or [+-]nan / inf / infinity? On success stores the value (s must be followed
   by a byte that cannot continue a number, e.g. ',' or NUL). */
static int scan_number(const char *s, size_t len, double *v)
{
    size_t i = 0;
    if (len == 0)
        return 0;
    if (s[0] == '+' || s[0] == '-')
        i++;
    if (!(word_eq(s + i, len - i, "nan") || word_eq(s + i, len - i, "inf") ||
          word_eq(s + i, len - i, "infinity"))) {
        size_t d = 0;
        while (i < len && is_digit(s[i]))
            i++, d++;
        if (i < len && s[i] == '.') {
            i++;
            while (i < len && is_digit(s[i]))
                i++, d++;
        }
        if (d == 0)
            return 0;
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
            i++;
            if (i < len && (s[i] == '+' || s[i] == '-'))
                i++;
            size_t e = 0;
            while (i < len && is_digit(s[i]))
                i++, e++;
            if (e == 0)
                return 0;
        }
        if (i != len)
            return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end != s + len)
        return 0;
    *v = x;
    return 1;
}

/* Does s[0..len), a number scan_number accepted, denote an integer exactly?
   Its digits (integer part and fraction, concatenated) must all be zero past
   the decimal point that the exponent moves: "2", "2.0", "2e0", "20e-1" and
   "1.000000000000000000e+00" (numpy's savetxt) do; "1.5" and "1e-400" (which
   strtod rounds to 0) do not. */
static int text_is_integer(const char *s, size_t len)
{
    size_t i = 0, nint = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t d0 = i;
    while (i < len && is_digit(s[i]))
        i++, nint++;
    size_t f0 = i < len && s[i] == '.' ? i + 1 : i, nfrac = 0;
    for (i = f0; i < len && is_digit(s[i]); i++)
        nfrac++;
    long ex = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int neg = i < len && s[i] == '-';
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < len && is_digit(s[i]); i++)
            ex = ex < 100000000 ? ex * 10 + (s[i] - '0') : ex; /* saturates; far past any label */
        ex = neg ? -ex : ex;
    }
    /* digit k (0-based over integer then fraction digits) sits before the
       point iff k < nint + ex */
    long point = (long)nint + ex;
    for (size_t k = 0; k < nint + nfrac; k++) {
        char c = k < nint ? s[d0 + k] : s[f0 + (k - nint)];
        if (c != '0' && (long)k >= point)
            return 0;
    }
    return 1;
}

/* a decimal unsigned integer that fits in uint64_t */
static int scan_u64(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (!is_digit(*s))
            return 0;
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

/* "2 features and 1 label" and the like, for messages */
static const char *row_layout(size_t nin, size_t ntarget, int labels, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%zu feature%s", nin, nin == 1 ? "" : "s");
    if (ntarget && n >= 0 && (size_t)n < len) {
        if (labels)
            snprintf(buf + n, len - (size_t)n, " and 1 label");
        else
            snprintf(buf + n, len - (size_t)n, " and %zu target%s", ntarget, ntarget == 1 ? "" : "s");
    }
    return buf;
}

/* ---- reading a whole (optionally gzip-compressed) file -------------------- */

static int read_all(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    char eb[128];
    *out = NULL;
    *outlen = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return spdl_fail(err, errlen, SPDL_EIO, "%s: cannot open: %s", path, spdl_errno_text(errno, eb, sizeof eb));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return spdl_fail(err, errlen, SPDL_EIO, "%s: cannot stat: %s", path, spdl_errno_text(e, eb, sizeof eb));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return spdl_fail(err, errlen, SPDL_EIO, "%s: is a directory, expected a .csv or .npy file", path);
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory opening the file", path);
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        gzclose_r(gz);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory reading the file", path);
    }
    for (;;) {
        if (cap - len < (1 << 15)) {
            if (cap > SIZE_MAX / 4) {
                free(buf);
                gzclose_r(gz);
                return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: file too large", path);
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                gzclose_r(gz);
                return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory reading the file", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - len > (size_t)INT_MAX ? (size_t)INT_MAX : cap - len;
        int got = gzread(gz, buf + len, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            int code = zerr == Z_ERRNO ? SPDL_EIO : SPDL_EFORMAT;
            if (zerr == Z_ERRNO)
                msg = spdl_errno_text(errno, eb, sizeof eb);
            spdl_fail(err, errlen, code, "%s: cannot read: %s", path, msg);
            free(buf);
            gzclose_r(gz);
            return code;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    int zrc = gzclose_r(gz);
    if (zrc == Z_BUF_ERROR) {
        free(buf);
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: truncated gzip file", path);
    }
    if (zrc != Z_OK) {
        free(buf);
        return spdl_fail(err, errlen, SPDL_EIO, "%s: cannot read the file", path);
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

/* ---- CSV --------------------------------------------------------------- */

typedef struct {
    const char *path;
    size_t nin, ntarget;
    int labels;      /* the targets are class labels */
    int nclass;      /* > 0: labels must be below it */
} load_ctx;

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* The fields of one line [p, e): start/length after trimming blanks. */
typedef struct {
    const char *s;
    size_t len;
} field;

/* Checks one label value; returns 0 or writes the message (without location). */
static int check_label(const load_ctx *c, double v, char *msg, size_t len)
{
    if (!(v >= 0 && v == floor(v) && v < 1e9)) {
        snprintf(msg, len, "expected a class label (a non-negative integer)");
        return SPDL_ELABEL;
    }
    if (c->nclass > 0 && v >= c->nclass) {
        snprintf(msg, len, "expected a class label below %d (the model has %d classes)", c->nclass, c->nclass);
        return SPDL_ELABEL;
    }
    return 0;
}

/* Splits [ls, le) at commas into f[0..max) (blanks trimmed); returns the
   number of fields in the line, which may exceed max. */
static size_t split_fields(const char *ls, const char *le, field *f, size_t max)
{
    size_t n = 0;
    for (const char *fs = ls;;) {
        const char *fe = fs;
        while (fe < le && *fe != ',')
            fe++;
        if (n < max) {
            const char *a = fs, *b = fe;
            while (a < b && is_blank(*a))
                a++;
            while (b > a && is_blank(b[-1]))
                b--;
            f[n].s = a;
            f[n].len = (size_t)(b - a);
        }
        n++;
        if (fe == le)
            return n;
        fs = fe + 1;
    }
}

static int parse_csv(const load_ctx *c, const char *buf, size_t len, spdl_data *d, char *err, size_t errlen)
{
    const char *path = c->path;
    size_t ncol = c->nin + c->ntarget;
    char qb[200], lb[96], mb[128];
    const char *p = buf, *end = buf + len;

    if (len >= 3 && (unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbb && (unsigned char)p[2] == 0xbf)
        p += 3; /* UTF-8 byte order mark */
    size_t lines = 1;
    for (const char *q = p; q < end; q++)
        lines += *q == '\n';
    d->x = alloc_doubles(lines, c->nin);
    d->t = c->ntarget ? alloc_doubles(lines, c->ntarget) : NULL;
    if (!d->x || (c->ntarget && !d->t))
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for %zu rows", path, lines);
    int rc = 0, maxlabel = -1;
    size_t rows = 0, line = 0, cap = ncol;
    int seen_first = 0;
    field *f = malloc(cap * sizeof *f);
    if (!f)
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path);
    while (p < end) {
        line++;
        const char *ls = p, *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        p = nl ? nl + 1 : end;
        if (le > ls && le[-1] == '\r')
            le--;
        const char *q = ls;
        while (q < le && is_blank(*q))
            q++;
        if (q == le)
            continue; /* blank line */
        size_t total = split_fields(ls, le, f, cap);
        double v;
        if (!seen_first) {
            /* the first line is a header when none of its fields is a number,
               a row when all are; a mix is an error */
            seen_first = 1;
            if (total > cap) {
                field *nf = realloc(f, total * sizeof *f);
                if (!nf) {
                    rc = spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path);
                    break;
                }
                f = nf;
                cap = total;
                split_fields(ls, le, f, cap);
            }
            size_t numbers = 0, bad = total;
            for (size_t k = 0; k < total; k++) {
                if (scan_number(f[k].s, f[k].len, &v))
                    numbers++;
                else if (bad == total)
                    bad = k;
            }
            if (numbers == 0)
                continue;
            if (bad < total) {
                rc = spdl_fail(err, errlen, SPDL_EFORMAT,
                          "%s:%zu:%zu: expected a number, found %s%s%s (the first line mixes numbers and text: "
                          "neither a header nor a row)",
                          path, line, (size_t)(f[bad].s - ls) + 1, f[bad].len ? "'" : "an empty field",
                          f[bad].len ? quote(f[bad].s, f[bad].len, qb, sizeof qb) : "", f[bad].len ? "'" : "");
                break;
            }
        }
        if (total != ncol) {
            size_t col;
            if (total < ncol) {
                col = (size_t)(le - ls) + 1;
            } else {
                /* the column where field ncol+1 starts */
                const char *s = ls;
                for (size_t k = 0; k < ncol; k++)
                    s = (const char *)memchr(s, ',', (size_t)(le - s)) + 1;
                col = (size_t)(s - ls) + 1;
            }
            rc = spdl_fail(err, errlen, rows == 0 ? SPDL_EMODEL : SPDL_EFORMAT,
                      "%s:%zu:%zu: expected %zu number%s per row (%s), found %zu", path, line, col, ncol,
                      ncol == 1 ? "" : "s", row_layout(c->nin, c->ntarget, c->labels, lb, sizeof lb), total);
            break;
        }
        for (size_t k = 0; k < ncol && rc == 0; k++) {
            size_t col = (size_t)(f[k].s - ls) + 1;
            if (f[k].len == 0) {
                rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s:%zu:%zu: expected a number, found an empty field", path,
                          line, col);
            } else if (!scan_number(f[k].s, f[k].len, &v)) {
                rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s:%zu:%zu: expected a number, found '%s'", path, line, col,
                          quote(f[k].s, f[k].len, qb, sizeof qb));
            } else if (!isfinite(v)) {
                rc = spdl_fail(err, errlen, SPDL_ENONFINITE, "%s:%zu:%zu: expected a finite number, found '%s'", path,
                          line, col, quote(f[k].s, f[k].len, qb, sizeof qb));
            } else if (k < c->nin) {
                d->x[rows * c->nin + k] = v;
            } else {
                if (c->labels) {
                    rc = check_label(c, v, mb, sizeof mb);
                    if (!rc && !text_is_integer(f[k].s, f[k].len)) {
                        snprintf(mb, sizeof mb, "expected a class label (a non-negative integer)");
                        rc = SPDL_ELABEL;
                    }
                    if (rc) {
                        spdl_fail(err, errlen, rc, "%s:%zu:%zu: %s, found '%s'", path, line, col, mb,
                             quote(f[k].s, f[k].len, qb, sizeof qb));
                        break;
                    }
                    if ((int)v > maxlabel)
                        maxlabel = (int)v;
                }
                d->t[rows * c->ntarget + (k - c->nin)] = v;
            }
        }
        if (rc)
            break;
        rows++;
    }
    free(f);
    if (rc)
        return rc;
    if (rows == 0)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: %s", path,
                    len == 0 ? "the file is empty" : "no data rows (only a header or blank lines)");
    d->n = rows;
    d->nin = c->nin;
    d->ntarget = c->ntarget;
    d->nclass = c->labels ? maxlabel + 1 : 0;
    return 0;
}

/* ---- NumPy .npy ---------------------------------------------------------- */

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* A cursor over the header's Python dict literal. */
typedef struct {
    const char *p, *e;
} pcur;

static void py_ws(pcur *c)
{
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int py_eat(pcur *c, char ch)
{
    py_ws(c);
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* a '...' or "..." string without escapes */
static int py_string(pcur *c, const char **s, size_t *len)
{
    py_ws(c);
    if (c->p >= c->e || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char q = *c->p++;
    const char *st = c->p;
    while (c->p < c->e && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n')
            return 0;
        c->p++;
    }
    if (c->p >= c->e)
        return 0;
    *s = st;
    *len = (size_t)(c->p - st);
    c->p++;
    return 1;
}

static int py_word(pcur *c, const char *w)
{
    size_t n = strlen(w);
    py_ws(c);
    if ((size_t)(c->e - c->p) < n || memcmp(c->p, w, n) != 0)
        return 0;
    if (c->p + n < c->e) {
        char nx = c->p[n];
        if ((nx >= 'a' && nx <= 'z') || (nx >= 'A' && nx <= 'Z') || is_digit(nx) || nx == '_')
            return 0;
    }
    c->p += n;
    return 1;
}

/* a non-negative integer (old Python 2 files may add an L) */
static int py_int(pcur *c, uint64_t *v)
{
    py_ws(c);
    if (c->p >= c->e || !is_digit(*c->p))
        return 0;
    uint64_t x = 0;
    while (c->p < c->e && is_digit(*c->p)) {
        unsigned d = (unsigned)(*c->p++ - '0');
        if (x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    if (c->p < c->e && *c->p == 'L')
        c->p++;
    *v = x;
    return 1;
}

#define NPY_MAXRANK 8

typedef struct {
    const char *descr;
    size_t descr_len;
    int fortran;
    int rank; /* -1 until seen */
    uint64_t shape[NPY_MAXRANK];
} npy_header;

static const char *fmt_shape(const npy_header *h, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < h->rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%llu", i ? ", " : "", (unsigned long long)h->shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "%s)", h->rank == 1 ? "," : "");
    return buf;
}

/* Parses {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } */
static int npy_parse_header(const char *s, size_t len, npy_header *h, char *msg, size_t msglen)
{
    pcur c = {s, s + len};
    int seen_descr = 0, seen_fortran = 0;
    h->rank = -1;
    if (!py_eat(&c, '{'))
        return snprintf(msg, msglen, "the header is not a Python dict literal"), -1;
    for (;;) {
        if (py_eat(&c, '}'))
            break;
        const char *k;
        size_t kl;
        if (!py_string(&c, &k, &kl) || !py_eat(&c, ':'))
            return snprintf(msg, msglen, "malformed header dict at byte %zu", (size_t)(c.p - s)), -1;
        if (kl == 5 && memcmp(k, "descr", 5) == 0) {
            if (seen_descr)
                return snprintf(msg, msglen, "the header repeats 'descr'"), -1;
            seen_descr = 1;
            py_ws(&c);
            if (c.p < c.e && (*c.p == '[' || *c.p == '('))
                return snprintf(msg, msglen, "structured arrays (a list 'descr') are not supported; "
                                             "supported dtypes: '<f8', '<f4', '<i8', '<i4'"), -1;
            if (!py_string(&c, &h->descr, &h->descr_len))
                return snprintf(msg, msglen, "'descr' is not a string"), -1;
        } else if (kl == 13 && memcmp(k, "fortran_order", 13) == 0) {
            if (seen_fortran)
                return snprintf(msg, msglen, "the header repeats 'fortran_order'"), -1;
            seen_fortran = 1;
            if (py_word(&c, "True"))
                h->fortran = 1;
            else if (py_word(&c, "False"))
                h->fortran = 0;
            else
                return snprintf(msg, msglen, "'fortran_order' is not True or False"), -1;
        } else if (kl == 5 && memcmp(k, "shape", 5) == 0) {
            if (h->rank >= 0)
                return snprintf(msg, msglen, "the header repeats 'shape'"), -1;
            if (!py_eat(&c, '('))
                return snprintf(msg, msglen, "'shape' is not a tuple"), -1;
            h->rank = 0;
            for (;;) {
                if (py_eat(&c, ')'))
                    break;
                uint64_t v;
                if (!py_int(&c, &v))
                    return snprintf(msg, msglen, "'shape' is not a tuple of non-negative integers"), -1;
                if (h->rank == NPY_MAXRANK)
                    return snprintf(msg, msglen, "'shape' has more than %d dimensions", NPY_MAXRANK), -1;
                h->shape[h->rank++] = v;
                if (py_eat(&c, ')'))
                    break;
                if (!py_eat(&c, ','))
                    return snprintf(msg, msglen, "'shape' is not a tuple of non-negative integers"), -1;
            }
        } else {
            char qb[200];
            return snprintf(msg, msglen, "unexpected key '%s' in the header (expected 'descr', 'fortran_order', "
                                         "'shape')", quote(k, kl, qb, sizeof qb)), -1;
        }
        if (py_eat(&c, '}'))
            break;
        if (!py_eat(&c, ','))
            return snprintf(msg, msglen, "malformed header dict at byte %zu", (size_t)(c.p - s)), -1;
    }
    py_ws(&c);
    if (c.p != c.e)
        return snprintf(msg, msglen, "unexpected text after the header dict at byte %zu", (size_t)(c.p - s)), -1;
    if (!seen_descr || !seen_fortran || h->rank < 0)
        return snprintf(msg, msglen, "the header lacks '%s'",
                        !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape"), -1;
    return 0;
}

/* "[i, j]" or "[i]" for messages */
static void element_name(char *buf, size_t len, int rank, size_t i, size_t j)
{
    if (rank == 2)
        snprintf(buf, len, "[%zu, %zu]", i, j);
    else
        snprintf(buf, len, "[%zu]", i);
}

static int parse_npy(const load_ctx *c, const unsigned char *b, size_t len, spdl_data *d, char *err, size_t errlen)
{
    const char *path = c->path;
    char msg[256], sb[128], lb[96], qb[200];
    if (len < 10)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: truncated .npy file (%zu bytes, a header needs at least 10)",
                    path, len);
    if (memcmp(b, "\x93NUMPY", 6) != 0)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: not a NumPy .npy file (it does not start with \\x93NUMPY)",
                    path);
    size_t hs, hl;
    if (b[6] == 1 && b[7] == 0) {
        hs = 10;
        hl = (size_t)b[8] | (size_t)b[9] << 8;
    } else if (b[6] == 2 && b[7] == 0) {
        if (len < 12)
            return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: truncated .npy file (%zu bytes)", path, len);
        hs = 12;
        hl = le32(b + 8);
    } else {
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: .npy format version %u.%u is not supported (supported: 1.0, 2.0)",
                    path, b[6], b[7]);
    }
    if (hl > len - hs)
        return spdl_fail(err, errlen, SPDL_EFORMAT,
                    "%s: truncated .npy file: the header length %zu runs past the end of the file (%zu bytes)", path,
                    hl, len);
    npy_header h;
    memset(&h, 0, sizeof h);
    if (npy_parse_header((const char *)b + hs, hl, &h, msg, sizeof msg) != 0)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: %s", path, msg);

    static const struct {
        const char *name;
        size_t size;
        char kind;
    } types[] = {{"<f8", 8, 'f'}, {"<f4", 4, 'f'}, {"<i8", 8, 'i'}, {"<i4", 4, 'i'}};
    int ty = -1;
    for (int i = 0; i < 4; i++)
        if (h.descr_len == 3 && memcmp(h.descr, types[i].name, 3) == 0)
            ty = i;
    if (ty < 0) {
        const char *why = "is not supported";
        if (h.descr_len > 0 && h.descr[0] == '>')
            why = "is big-endian, which is not supported";
        else if (h.descr_len > 1 && h.descr[1] == 'O')
            why = "is an object array, which is not supported";
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: dtype '%s' %s (supported: '<f8', '<f4', '<i8', '<i4')", path,
                    quote(h.descr, h.descr_len, qb, sizeof qb), why);
    }
    if (h.fortran)
        return spdl_fail(err, errlen, SPDL_EFORMAT,
                    "%s: Fortran-order arrays are not supported (save a C-order array, e.g. np.ascontiguousarray)",
                    path);
    if (h.rank != 1 && h.rank != 2)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: a %d-dimensional array of shape %s is not supported (expected "
                    "(n,) or (n, k))", path, h.rank, fmt_shape(&h, sb, sizeof sb));
    size_t ncol = c->nin + c->ntarget;
    uint64_t rows = h.shape[0], cols = h.rank == 2 ? h.shape[1] : 1;
    if (cols != ncol)
        return spdl_fail(err, errlen, SPDL_EMODEL, "%s: shape %s has %llu number%s per sample, the model expects %zu (%s)",
                    path, fmt_shape(&h, sb, sizeof sb), (unsigned long long)cols, cols == 1 ? "" : "s", ncol,
                    row_layout(c->nin, c->ntarget, c->labels, lb, sizeof lb));
    size_t isz = types[ty].size;
    if (rows > SIZE_MAX / isz / ncol)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: shape %s is too large", path, fmt_shape(&h, sb, sizeof sb));
    size_t need = (size_t)rows * ncol * isz, have = len - hs - hl;
    if (have != need)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: %s: shape %s of '%s' needs %zu bytes of data, the file has %zu",
                    path, have < need ? "truncated" : "the header does not match the data", fmt_shape(&h, sb, sizeof sb),
                    types[ty].name, need, have);
    if (rows == 0)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: no samples (shape %s)", path, fmt_shape(&h, sb, sizeof sb));

    d->x = alloc_doubles((size_t)rows, c->nin);
    d->t = c->ntarget ? alloc_doubles((size_t)rows, c->ntarget) : NULL;
    if (!d->x || (c->ntarget && !d->t))
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for %llu samples", path, (unsigned long long)rows);
    const unsigned char *q = b + hs + hl;
    int maxlabel = -1;
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < ncol; j++, q += isz) {
            double v;
            if (types[ty].kind == 'f' && isz == 8) {
                uint64_t u = le64(q);
                memcpy(&v, &u, sizeof v);
            } else if (types[ty].kind == 'f') {
                uint32_t u = le32(q);
                float fv;
                memcpy(&fv, &u, sizeof fv);
                v = fv;
            } else if (isz == 8) {
                uint64_t u = le64(q);
                int64_t iv;
                memcpy(&iv, &u, sizeof iv);
                v = (double)iv;
            } else {
                uint32_t u = le32(q);
                int32_t iv;
                memcpy(&iv, &u, sizeof iv);
                v = iv;
            }
            char at[64];
            if (!isfinite(v)) {
                element_name(at, sizeof at, h.rank, i, j);
                return spdl_fail(err, errlen, SPDL_ENONFINITE, "%s: element %s is %s, expected a finite number", path, at,
                            isnan(v) ? "NaN" : "infinite");
            }
            if (j < c->nin) {
                d->x[i * c->nin + j] = v;
                continue;
            }
            if (c->labels) {
                int rc = check_label(c, v, msg, sizeof msg);
                if (rc) {
                    element_name(at, sizeof at, h.rank, i, j);
                    return spdl_fail(err, errlen, rc, "%s: element %s: %s, found %.17g", path, at, msg, v);
                }
                if ((int)v > maxlabel)
                    maxlabel = (int)v;
            }
            d->t[i * c->ntarget + (j - c->nin)] = v;
        }
    }
    d->n = (size_t)rows;
    d->nin = c->nin;
    d->ntarget = c->ntarget;
    d->nclass = c->labels ? maxlabel + 1 : 0;
    return 0;
}

/* ---- writing .npy -------------------------------------------------------- */

int spdl_npy_write(const char *path, const double *a, size_t rows, size_t cols, char *err, size_t errlen)
{
    char eb[128];
    if (!path || (!a && rows && cols))
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_npy_write: NULL argument");
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
    size_t hl = (size_t)n + 1; /* with the final newline */
    while ((10 + hl) % 64 != 0)
        hl++;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                             (unsigned char)(hl >> 8)};
    memset(hdr + n, ' ', hl - 1 - (size_t)n);
    hdr[hl - 1] = '\n';
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return spdl_fail(err, errlen, SPDL_EIO, "%s: cannot create: %s", path, spdl_errno_text(errno, eb, sizeof eb));
    int ok = fwrite(pre, 1, sizeof pre, fp) == sizeof pre && fwrite(hdr, 1, hl, fp) == hl;
    unsigned char buf[8 * 512];
    size_t total = rows * cols, k = 0;
    if (cols && rows > SIZE_MAX / cols)
        ok = 0;
    while (ok && k < total) {
        size_t m = 0;
        for (; m < 512 && k < total; m++, k++) {
            uint64_t u;
            memcpy(&u, &a[k], sizeof u);
            for (int i = 0; i < 8; i++)
                buf[8 * m + (size_t)i] = (unsigned char)(u >> (8 * i));
        }
        ok = fwrite(buf, 8, m, fp) == m;
    }
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        remove(path);
        return spdl_fail(err, errlen, SPDL_EIO, "%s: cannot write: %s", path, spdl_errno_text(e, eb, sizeof eb));
    }
    return 0;
}

/* ---- specs: SOURCE?key=value&key=value ---------------------------------- */

typedef struct {
    char *buf;          /* a copy of the spec, cut into the pieces below */
    const char *source; /* the path or builtin:NAME */
    size_t nkv;
    const char *key[MAX_KEYS], *val[MAX_KEYS];
} spec_t;

/* the generic keys */
typedef struct {
    int has_n;
    size_t n;
    int has_seed;
    uint64_t seed;
    int part; /* 0: no split; 1: train; 2: test */
    double split;
} common_t;

static int parse_spec(const char *spec, spec_t *s, char *err, size_t errlen)
{
    char qb[200];
    memset(s, 0, sizeof *s);
    size_t len = strlen(spec);
    s->buf = malloc(len + 1);
    if (!s->buf)
        return spdl_fail(err, errlen, SPDL_ENOMEM, "out of memory");
    memcpy(s->buf, spec, len + 1);
    s->source = s->buf;
    /* a file whose name contains '?' is taken whole */
    struct stat st;
    char *q = strchr(s->buf, '?');
    if (q && strncmp(spec, "builtin:", 8) != 0 && stat(spec, &st) == 0)
        q = NULL;
    if (q)
        *q++ = '\0';
    if (!*s->source)
        return spdl_fail(err, errlen, SPDL_EINVAL, "empty data spec: expected a .csv or .npy file or builtin:NAME");
    if (!q || !*q)
        return 0;
    for (char *item = q;;) {
        char *amp = strchr(item, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: expected key=value after '?', found '%s'", s->source,
                        quote(item, strlen(item), qb, sizeof qb));
        *eq = '\0';
        for (size_t i = 0; i < s->nkv; i++)
            if (strcmp(s->key[i], item) == 0)
                return spdl_fail(err, errlen, SPDL_EINVAL, "%s: key '%s' is given twice", s->source,
                            quote(item, strlen(item), qb, sizeof qb));
        if (s->nkv == MAX_KEYS)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: more than %d keys", s->source, MAX_KEYS);
        s->key[s->nkv] = item;
        s->val[s->nkv++] = eq + 1;
        if (!amp)
            return 0;
        item = amp + 1;
    }
}

static const char *spec_get(const spec_t *s, const char *key)
{
    for (size_t i = 0; i < s->nkv; i++)
        if (strcmp(s->key[i], key) == 0)
            return s->val[i];
    return NULL;
}

/* every key must be in `known` (space-separated) */
static int check_keys(const spec_t *s, const char *known, char *err, size_t errlen)
{
    char qb[200], list[160];
    for (size_t i = 0; i < s->nkv; i++) {
        size_t kl = strlen(s->key[i]);
        int ok = 0;
        for (const char *k = known; *k;) {
            size_t n = strcspn(k, " ");
            if (n == kl && memcmp(k, s->key[i], n) == 0)
                ok = 1;
            k += n;
            k += *k == ' ';
        }
        if (!ok) {
            size_t o = 0;
            for (const char *k = known; *k && o + 1 < sizeof list; k++)
                o += (size_t)snprintf(list + o, sizeof list - o, *k == ' ' ? ", " : "%c", *k);
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: unknown key '%s' (known keys: %s)", s->source,
                        quote(s->key[i], kl, qb, sizeof qb), list);
        }
    }
    return 0;
}

/* key=number in [lo, hi] (exclusive ends when open is set); absent: def */
static int get_double(const spec_t *s, const char *key, double def, double lo, double hi, int open, double *v,
                      char *err, size_t errlen)
{
    char qb[200];
    const char *val = spec_get(s, key);
    *v = def;
    if (!val)
        return 0;
    if (!scan_number(val, strlen(val), v) || !isfinite(*v))
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: %s=%s is not a number", s->source, key,
                    quote(val, strlen(val), qb, sizeof qb));
    if (open ? !(*v > lo && *v < hi) : !(*v >= lo && *v <= hi))
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: %s=%s is out of range (%s %g and %g)", s->source, key,
                    quote(val, strlen(val), qb, sizeof qb), open ? "strictly between" : "between", lo, hi);
    return 0;
}

static int get_common(const spec_t *s, common_t *cm, char *err, size_t errlen)
{
    char qb[200];
    memset(cm, 0, sizeof *cm);
    const char *v;
    uint64_t u;
    if ((v = spec_get(s, "n"))) {
        if (!scan_u64(v, &u) || u == 0 || u > SIZE_MAX / 2)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: n=%s is not a positive integer", s->source,
                        quote(v, strlen(v), qb, sizeof qb));
        cm->has_n = 1;
        cm->n = (size_t)u;
    }
    if ((v = spec_get(s, "seed"))) {
        if (!scan_u64(v, &cm->seed))
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: seed=%s is not a non-negative 64-bit integer", s->source,
                        quote(v, strlen(v), qb, sizeof qb));
        cm->has_seed = 1;
    }
    int rc = get_double(s, "split", 0, 0, 1, 1, &cm->split, err, errlen);
    if (rc)
        return rc;
    const char *part = spec_get(s, "part");
    if (part) {
        if (strcmp(part, "train") == 0)
            cm->part = 1;
        else if (strcmp(part, "test") == 0)
            cm->part = 2;
        else
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: part=%s: expected part=train or part=test", s->source,
                        quote(part, strlen(part), qb, sizeof qb));
    }
    if (cm->part && !spec_get(s, "split"))
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: part=%s needs split=F (0 < F < 1)", s->source, part);
    if (!cm->part && spec_get(s, "split"))
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: split=%s needs part=train or part=test", s->source,
                    spec_get(s, "split"));
    return 0;
}

/* ---- built-in generators ------------------------------------------------- */
/* Sample i has class c = i mod 2 (so the classes are balanced to within one
   sample); g1, g2 are standard normals (Box-Muller); every draw comes from
   one splitmix64 stream seeded with the seed, in sample order: one uniform,
   then g1 and g2. */

/* spirals: v ~ U[0,1), u = sqrt(v), angle a = 2 pi turns u, radius
   r = 0.1 + 0.9 u, x = (-1)^c r (cos a, sin a) + noise (g1, g2): two
   interleaved arms, the second the first turned by 180 degrees, inputs within
   about [-1, 1]. The square root spreads the points along the arms (density
   growing with the radius) instead of crowding the centre, where the arms are
   closest; the arms start 0.2 apart and lie 0.9 / (2 turns) apart radially. */
static void gen_spirals(size_t n, double noise, double turns, uint64_t seed, double *x, double *t)
{
    rng_t r = {seed};
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        double u = sqrt(rng_unif(&r)), g1, g2;
        rng_gauss2(&r, &g1, &g2);
        double a = 2.0 * PI * turns * u, rad = 0.1 + 0.9 * u, sg = c ? -1.0 : 1.0;
        x[2 * i] = sg * rad * cos(a) + noise * g1;
        x[2 * i + 1] = sg * rad * sin(a) + noise * g2;
        t[i] = c;
    }
}

/* moons: u ~ U[0,1), a = pi u; class 0: (cos a, sin a), class 1:
   (1 - cos a, 0.5 - sin a) (scikit-learn's two half circles), then shifted
   by (-0.5, -0.25) to centre them, plus noise (g1, g2). */
static void gen_moons(size_t n, double noise, uint64_t seed, double *x, double *t)
{
    rng_t r = {seed};
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        double u = rng_unif(&r), g1, g2;
        rng_gauss2(&r, &g1, &g2);
        double a = PI * u;
        double px = c ? 1.0 - cos(a) : cos(a), py = c ? 0.5 - sin(a) : sin(a);
        x[2 * i] = px - 0.5 + noise * g1;
        x[2 * i + 1] = py - 0.25 + noise * g2;
        t[i] = c;
    }
}

/* circles: u ~ U[0,1), a = 2 pi u; radius 1 for class 0 and `factor` for
   class 1: x = r (cos a, sin a) + noise (g1, g2). */
static void gen_circles(size_t n, double noise, double factor, uint64_t seed, double *x, double *t)
{
    rng_t r = {seed};
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 2);
        double u = rng_unif(&r), g1, g2;
        rng_gauss2(&r, &g1, &g2);
        double a = 2.0 * PI * u, rad = c ? factor : 1.0;
        x[2 * i] = rad * cos(a) + noise * g1;
        x[2 * i + 1] = rad * sin(a) + noise * g2;
        t[i] = c;
    }
}

/* waves: sample i has class c = i mod 4: 0 sine, 1 square, 2 triangle,
   3 sawtooth, each a 1-periodic shape w_c(u) with values in [-1, 1]. Draws
   per sample: a phase v ~ U[0,1) (drawn, then replaced by phase= when that
   is a number, so the other draws stay the same), a number of periods k = 1 + below(cycles),
   an amplitude a = 0.5 + U[0,1); then L normals g_j (Box-Muller pairs; for
   odd L the last pair's second is unused). x_j = a w_c(frac(k j / L + v)) +
   noise g_j: a whole number of periods in the window, so the signal is
   periodic on the L-cycle and a cyclic shift of it is another phase. */
static double wave_shape(int c, double u)
{
    switch (c) {
    case 0:
        return sin(2.0 * PI * u);
    case 1:
        return u < 0.5 ? 1.0 : -1.0;
    case 2:
        return u < 0.5 ? 4.0 * u - 1.0 : 3.0 - 4.0 * u;
    default:
        return 2.0 * u - 1.0;
    }
}

static void gen_waves(size_t n, size_t len, double noise, unsigned cycles, double fixed_phase, uint64_t seed,
                      double *x, double *t)
{
    rng_t r = {seed};
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 4);
        double phase = rng_unif(&r);
        if (fixed_phase >= 0)
            phase = fixed_phase;
        double k = (double)(1 + rng_below(&r, cycles));
        double amp = 0.5 + rng_unif(&r);
        double *xi = x + i * len;
        for (size_t j = 0; j < len; j += 2) {
            double g[2];
            rng_gauss2(&r, &g[0], &g[1]);
            for (size_t h = 0; h < 2 && j + h < len; h++) {
                double u = k * (double)(j + h) / (double)len + phase;
                xi[j + h] = amp * wave_shape(c, u - floor(u)) + noise * g[h];
            }
        }
        t[i] = c;
    }
}

/* pointsets: sample i has class c = i mod 3: 0 a circle of radius 1, 1 the
   outline of a square of half-side 0.8, 2 a cross (a plus sign) with arms of
   length 1, all centred at 0. Draws per sample: v_a (the turn theta = 2 pi
   v_a, or the fixed angle= in degrees), v_s (the size s = 1 + zoom (2 v_s -
   1)); then per point j: u1, u2, and two normals g1, g2. The point p_j on the
   shape: circle (cos 2 pi u1, sin 2 pi u1); square side q = floor(4 u2) at
   t = 2 u1 - 1: (0.8, 0.8 t), (-0.8, 0.8 t), (0.8 t, 0.8), (0.8 t, -0.8) for
   q = 0..3; cross arm q at distance u1: (u1, 0), (-u1, 0), (0, u1), (0, -u1).
   Point j is s R(theta) p_j + noise (g1, g2), stored channels first: x[0, j]
   and x[1, j]. The points are independent draws, so their order is random. */
static void gen_pointsets(size_t n, size_t m, double noise, double zoom, int random_angle, double angle_deg,
                          uint64_t seed, double *x, double *t)
{
    rng_t r = {seed};
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % 3);
        double va = rng_unif(&r), vs = rng_unif(&r);
        double th = random_angle ? 2.0 * PI * va : angle_deg * (PI / 180.0);
        double s = 1.0 + zoom * (2.0 * vs - 1.0), ct = s * cos(th), st = s * sin(th);
        double *xi = x + i * 2 * m;
        for (size_t j = 0; j < m; j++) {
            double u1 = rng_unif(&r), u2 = rng_unif(&r), g1, g2, px, py;
            rng_gauss2(&r, &g1, &g2);
            int q = (int)(4.0 * u2);
            if (c == 0) {
                px = cos(2.0 * PI * u1);
                py = sin(2.0 * PI * u1);
            } else if (c == 1) {
                double w = 0.8 * (2.0 * u1 - 1.0);
                px = q == 0 ? 0.8 : q == 1 ? -0.8 : w;
                py = q == 2 ? 0.8 : q == 3 ? -0.8 : w;
            } else {
                px = q == 0 ? u1 : q == 1 ? -u1 : 0.0;
                py = q == 2 ? u1 : q == 3 ? -u1 : 0.0;
            }
            xi[j] = ct * px - st * py + noise * g1;
            xi[m + j] = st * px + ct * py + noise * g2;
        }
        t[i] = c;
    }
}

/* order=angle: the points of every set sorted by polar angle around the
   origin, atan2(y, x) in [-pi, pi] ascending, equal angles in draw order (so
   the order is total and the same on every host with the same libm). A
   canonical order for a model that is not permutation-invariant to learn. */
typedef struct {
    double angle;
    size_t j;
} polar_t;

static int polar_cmp(const void *pa, const void *pb)
{
    const polar_t *a = pa, *b = pb;
    if (a->angle != b->angle)
        return a->angle < b->angle ? -1 : 1;
    return a->j < b->j ? -1 : a->j > b->j;
}

static int sort_points_by_angle(double *x, size_t n, size_t m)
{
    polar_t *order = malloc((m ? m : 1) * sizeof *order);
    double *tmp = alloc_doubles(2 * m, 1);
    if (!order || !tmp) {
        free(order);
        free(tmp);
        return SPDL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        double *xi = x + i * 2 * m;
        for (size_t j = 0; j < m; j++)
            order[j] = (polar_t){atan2(xi[m + j], xi[j]), j};
        qsort(order, m, sizeof *order, polar_cmp);
        for (size_t j = 0; j < m; j++) {
            tmp[j] = xi[order[j].j];
            tmp[m + j] = xi[m + order[j].j];
        }
        memcpy(xi, tmp, 2 * m * sizeof *tmp);
    }
    free(order);
    free(tmp);
    return 0;
}

/* ---- digits and mnist: data sets stored in data/ ---------------------------- */

static const int digits_counts[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
static const int mnist_counts[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};

/* Looks for `name` (the file of builtin:SET) in $SPDL_DATA, then relative to
   the running executable (/proc/self/exe): ../data and ../share/spdl/data
   from its directory, then in the compiled-in SPDL_DATA_DIR. */
static int find_data_file(const char *set, const char *name, char *path, size_t pathlen, char *err, size_t errlen)
{
    char tried[1024], exe[PATH_MAX];
    size_t o = 0;
    const char *dirs[4];
    char exe1[PATH_MAX + 32], exe2[PATH_MAX + 32];
    int nd = 0;
    const char *env = getenv("SPDL_DATA");
    if (env && *env)
        dirs[nd++] = env;
    else
        o += (size_t)snprintf(tried + o, sizeof tried - o, "$SPDL_DATA (not set)");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 2; up++) { /* the executable's directory's parent */
            char *slash = strrchr(exe, '/');
            if (slash && slash != exe)
                *slash = '\0';
            else
                strcpy(exe, "/");
        }
        const char *sep = strcmp(exe, "/") == 0 ? "" : "/";
        snprintf(exe1, sizeof exe1, "%s%sdata", exe, sep);
        snprintf(exe2, sizeof exe2, "%s%sshare/spdl/data", exe, sep);
        dirs[nd++] = exe1;
        dirs[nd++] = exe2;
    }
    dirs[nd++] = SPDL_DATA_DIR;
    for (int i = 0; i < nd; i++) {
        struct stat st;
        int w = snprintf(path, pathlen, "%s/%s", dirs[i], name);
        if (w > 0 && (size_t)w < pathlen && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            return 0;
        if (o < sizeof tried)
            o += (size_t)snprintf(tried + o, sizeof tried - o, "%s%s", o ? ", " : "", dirs[i]);
    }
    return spdl_fail(err, errlen, SPDL_EIO, "builtin:%s: cannot find %s; looked in %s (set SPDL_DATA to the "
                "directory that holds it, e.g. the repository's data/)", set, name, tried);
}

static int load_digits(int scale, spdl_data *d, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    int rc = find_data_file("digits", DIGITS_FILE, path, sizeof path, err, errlen);
    if (rc)
        return rc;
    char *buf;
    size_t len;
    rc = read_all(path, &buf, &len, err, errlen);
    if (rc)
        return rc;
    load_ctx c = {path, 64, 1, 1, 10};
    rc = parse_csv(&c, buf, len, d, err, errlen);
    free(buf);
    if (rc)
        return rc;
    int count[10] = {0};
    for (size_t i = 0; i < d->n; i++)
        count[(int)d->t[i]]++;
    if (d->n != DIGITS_N || memcmp(count, digits_counts, sizeof count) != 0)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: not the UCI digits file: expected %d rows with class counts "
                    "178/182/177/183/181/182/181/179/174/180, found %zu rows with %d/%d/%d/%d/%d/%d/%d/%d/%d/%d",
                    path, DIGITS_N, d->n, count[0], count[1], count[2], count[3], count[4], count[5], count[6],
                    count[7], count[8], count[9]);
    for (size_t k = 0; k < d->n * 64; k++) {
        double v = d->x[k];
        if (!(v >= 0 && v <= 16 && v == floor(v)))
            return spdl_fail(err, errlen, SPDL_EFORMAT, "%s:%zu: pixel %zu is %g, expected an integer in 0..16", path,
                        k / 64 + 1, k % 64 + 1, v);
        if (scale)
            d->x[k] = v / 16.0;
    }
    d->nclass = 10;
    return 0;
}

/* data/mnist.u8.gz (data/README.md): gzip of MNIST_N records of 785 bytes, the
   784 pixels 0..255 of a 28x28 image row-major, then the label 0..9. The
   length, the labels, the class counts and the CRC-32 of the uncompressed
   bytes must be those of the file tools/mnist_convert.py makes. */
static int load_mnist(int scale, spdl_data *d, char *err, size_t errlen)
{
    char path[PATH_MAX + 32];
    int rc = find_data_file("mnist", MNIST_FILE, path, sizeof path, err, errlen);
    if (rc)
        return rc;
    char *buf;
    size_t len;
    rc = read_all(path, &buf, &len, err, errlen);
    if (rc)
        return rc;
    const unsigned char *b = (const unsigned char *)buf;
    const size_t rec = MNIST_PIXELS + 1, want = (size_t)MNIST_N * rec;
    if (len != want) {
        free(buf);
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: not spdl's MNIST file: expected %zu bytes (%d images of "
                    "28x28 pixels and a label) when uncompressed, found %zu", path, want, MNIST_N, len);
    }
    int count[10] = {0};
    for (size_t i = 0; i < MNIST_N; i++) {
        unsigned lab = b[i * rec + MNIST_PIXELS];
        if (lab > 9) {
            free(buf);
            return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: not spdl's MNIST file: record %zu has label %u, "
                        "expected 0..9", path, i + 1, lab);
        }
        count[lab]++;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t o = 0; o < len; o += 1u << 20)
        crc = crc32(crc, b + o, (uInt)(len - o < (1u << 20) ? len - o : (1u << 20)));
    if (memcmp(count, mnist_counts, sizeof count) != 0 || crc != MNIST_CRC32) {
        free(buf);
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: not spdl's MNIST file: expected class counts "
                    "1001/1127/991/1032/980/863/1014/1070/944/978 and CRC-32 0x%08x, found %d/%d/%d/%d/%d/%d/%d/%d/"
                    "%d/%d and 0x%08lx (tools/mnist_convert.py makes the file; data/README.md)", path,
                    (unsigned)MNIST_CRC32, count[0], count[1], count[2], count[3], count[4], count[5], count[6],
                    count[7], count[8], count[9], (unsigned long)crc);
    }
    d->x = alloc_doubles(MNIST_N, MNIST_PIXELS);
    d->t = alloc_doubles(MNIST_N, 1);
    if (!d->x || !d->t) {
        free(buf);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for %d images", path, MNIST_N);
    }
    for (size_t i = 0; i < MNIST_N; i++) {
        for (size_t k = 0; k < MNIST_PIXELS; k++)
            d->x[i * MNIST_PIXELS + k] = scale ? b[i * rec + k] / 255.0 : b[i * rec + k];
        d->t[i] = b[i * rec + MNIST_PIXELS];
    }
    free(buf);
    d->n = MNIST_N;
    d->nin = MNIST_PIXELS;
    d->ntarget = 1;
    d->nclass = 10;
    return 0;
}

/* ---- shapes ------------------------------------------------------------------- */

/* a checked copy of the caller's layout, every shape spelled out (rank >= 1) */
typedef struct {
    size_t nin, ntarget;
    int nclass, labels;
    int in_rank, t_rank;
    size_t in_shape[4], t_shape[4];
} layout_t;

/* "R[1, 8, 8]" */
static const char *shape_text(int rank, const size_t *shape, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "R[");
    for (int i = 0; i < rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%zu", i ? ", " : "", shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
    return buf;
}

/* Is the shape an image, rank >= 2 with equal last two axes? Then *count
   images of *side x *side numbers each (the leading axes are channels). */
static int image_geom(int rank, const size_t *shape, size_t *count, size_t *side)
{
    if (rank < 2 || shape[rank - 1] != shape[rank - 2])
        return 0;
    *side = shape[rank - 1];
    *count = 1;
    for (int i = 0; i < rank - 2; i++)
        *count *= shape[i];
    return 1;
}

/* ---- image transforms: rotate= and mirror= (DESIGN §8) ---------------------- */

void spdl_image_transform(const double *src, double *dst, size_t n, int mirror, double degrees)
{
    double deg = fmod(degrees, 360.0);
    if (deg < 0)
        deg += 360.0;
    if (!isfinite(deg))
        deg = 0;
#define AT(i, j) src[(i) * n + (mirror ? n - 1 - (j) : (j))]
    if (fmod(deg, 90.0) == 0) { /* an exact permutation: R^k of (M a) */
        int k = (int)(deg / 90.0);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                dst[i * n + j] = k == 0 ? AT(i, j) : k == 1 ? AT(j, n - 1 - i) : k == 2 ? AT(n - 1 - i, n - 1 - j)
                                                                                       : AT(n - 1 - j, i);
        return;
    }
    /* bilinear: output pixel (i, j) reads (M a) at the point turned back by
       the angle about the centre c = (n - 1) / 2; pixels outside are zero */
    double c = ((double)n - 1.0) / 2.0, rad = deg * (PI / 180.0), ct = cos(rad), st = sin(rad);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double di = (double)i - c, dj = (double)j - c;
            double r = c + ct * di + st * dj, s = c - st * di + ct * dj;
            double r0 = floor(r), s0 = floor(s), fr = r - r0, fs = s - s0, v = 0;
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {
                    double ri = r0 + a, si = s0 + b, w = (a ? fr : 1 - fr) * (b ? fs : 1 - fs);
                    if (ri >= 0 && ri < (double)n && si >= 0 && si < (double)n && w != 0)
                        v += w * AT((size_t)ri, (size_t)si);
                }
            dst[i * n + j] = v;
        }
#undef AT
}

/* the transform the spec asks for */
typedef struct {
    int mirror;
    int rotate;       /* 0: no rotation; 1: by deg; 2: a random angle per image */
    double deg;
    uint64_t seed;    /* rotate=random: the angles' stream is seeded by seed ^ ROTATE_SALT */
    int shift;        /* 0: none; 1: by `by` samples; 2: a random shift per signal (seed ^ SHIFT_SALT) */
    long by;
    int permute;      /* 0: none; 1: reverse the members; 2: a random permutation per set (seed ^ PERMUTE_SALT) */
} xform_t;

enum { PERMUTE_NONE, PERMUTE_REVERSE, PERMUTE_RANDOM };

#define ROTATE_SALT 0x6a09e667f3bcc909u
#define SHIFT_SALT 0xbb67ae8584caa73bu
#define PERMUTE_SALT 0x3c6ef372fe94f82bu

static int get_xform(const spec_t *s, uint64_t seed, xform_t *xf, char *err, size_t errlen)
{
    char qb[200];
    memset(xf, 0, sizeof *xf);
    const char *m = spec_get(s, "mirror"), *r = spec_get(s, "rotate"), *sh = spec_get(s, "shift");
    const char *pm = spec_get(s, "permute");
    if (m) {
        if (strcmp(m, "0") != 0 && strcmp(m, "1") != 0)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: mirror=%s: expected mirror=1 (flip every image left to "
                        "right) or mirror=0", s->source, quote(m, strlen(m), qb, sizeof qb));
        xf->mirror = m[0] == '1';
    }
    if (r) {
        if (strcmp(r, "random") == 0) {
            xf->rotate = 2;
            xf->seed = seed;
        } else if (scan_number(r, strlen(r), &xf->deg) && isfinite(xf->deg)) {
            xf->rotate = 1;
        } else {
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: rotate=%s: expected rotate=90, 180, 270, random or an "
                        "angle in degrees (counter-clockwise)", s->source, quote(r, strlen(r), qb, sizeof qb));
        }
    }
    if (sh) {
        double by;
        xf->seed = seed;
        if (strcmp(sh, "random") == 0)
            xf->shift = 2;
        else if (scan_number(sh, strlen(sh), &by) && by == floor(by) && fabs(by) <= 1e9)
            xf->shift = 1, xf->by = (long)by;
        else
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: shift=%s: expected shift=random or a whole number of "
                        "samples (cyclic, to the right)", s->source, quote(sh, strlen(sh), qb, sizeof qb));
        if (xf->mirror || xf->rotate)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: shift= acts on signals and rotate=/mirror= on images: "
                        "give one or the other", s->source);
    }
    if (pm) {
        xf->seed = seed;
        if (strcmp(pm, "reverse") == 0)
            xf->permute = PERMUTE_REVERSE;
        else if (strcmp(pm, "random") == 0)
            xf->permute = PERMUTE_RANDOM;
        else
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: permute=%s: expected permute=reverse (the members of "
                        "every set in reverse order) or permute=random (a random order per set)", s->source,
                        quote(pm, strlen(pm), qb, sizeof qb));
        if (xf->shift)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: permute= and shift= both reorder the last axis: give one "
                        "or the other", s->source);
        if (xf->mirror || xf->rotate)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: permute= acts on sets and rotate=/mirror= on images: "
                        "give one or the other", s->source);
    }
    return 0;
}

/* ", mirrored and rotated 90 degrees" and the like, for desc */
static void xform_text(const xform_t *xf, char *buf, size_t len)
{
    double deg = xf->rotate == 1 ? fmod(xf->deg, 360.0) : 0;
    if (deg < 0)
        deg += 360.0;
    int exact = fmod(deg, 90.0) == 0;
    size_t o = (size_t)snprintf(buf, len, ", %s%s", xf->mirror ? "mirrored" : "", xf->mirror && xf->rotate ? " and " : "");
    if (o >= len)
        return;
    if (xf->rotate == 2)
        snprintf(buf + o, len - o, "rotated by a random angle per image (bilinear, seed=%llu)",
                 (unsigned long long)xf->seed);
    else if (xf->rotate == 1)
        snprintf(buf + o, len - o, "rotated %g degrees%s", deg, exact ? "" : " (bilinear)");
    else if (xf->shift == 2)
        snprintf(buf, len, ", shifted by a random number of samples per signal (cyclic, seed=%llu)",
                 (unsigned long long)xf->seed);
    else if (xf->shift == 1)
        snprintf(buf, len, ", shifted %ld sample%s (cyclic)", xf->by, xf->by == 1 || xf->by == -1 ? "" : "s");
    else if (xf->permute == PERMUTE_RANDOM)
        snprintf(buf, len, ", members of every set in a random order (seed=%llu)", (unsigned long long)xf->seed);
    else if (xf->permute == PERMUTE_REVERSE)
        snprintf(buf, len, ", members of every set in reverse order");
}

/* shift=: every channel of every input signal R[c, n] (or R[n]) turned
 * cyclically, (T x)[c, j] = x[c, (j - s) mod n] (numpy.roll(x, s, -1)): the
 * action of Z(n) (DESIGN §8), exact. */
static int apply_shift(spdl_data *d, const layout_t *L, const xform_t *xf, const char *source, char *err,
                       size_t errlen)
{
    char sb[96];
    if (L->in_rank != 1 && L->in_rank != 2)
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: shift= acts on signals, but the model's input %s is not a "
                    "signal R[c, n] or R[n]", source, shape_text(L->in_rank, L->in_shape, sb, sizeof sb));
    size_t n = L->in_shape[L->in_rank - 1], rows = L->in_rank == 2 ? L->in_shape[0] : 1;
    double *tmp = alloc_doubles(n, 1);
    if (!tmp)
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", source);
    rng_t r = {xf->seed ^ SHIFT_SALT};
    for (size_t i = 0; i < d->n; i++) {
        long by = xf->shift == 2 ? (long)rng_below(&r, (unsigned)n) : xf->by;
        size_t s = (size_t)(((by % (long)n) + (long)n) % (long)n);
        for (size_t c = 0; c < rows; c++) {
            double *x = d->x + i * d->nin + c * n;
            for (size_t j = 0; j < n; j++)
                tmp[(j + s) % n] = x[j];
            memcpy(x, tmp, n * sizeof *tmp);
        }
    }
    free(tmp);
    return 0;
}

/* permute=: the members (columns) of every input set R[c, n] reordered, the
 * same order for every channel: x'[c, j] = x[c, perm[j]] with perm[j] =
 * n - 1 - j (reverse) or a Fisher-Yates shuffle per set from splitmix64
 * seeded with seed ^ PERMUTE_SALT, sets in sample order (random). An element
 * of S(n) acting on the set axis (DESIGN §8), exact. */
static int apply_permute(spdl_data *d, const layout_t *L, const xform_t *xf, const char *source, char *err,
                         size_t errlen)
{
    char sb[96], hint[96] = "";
    if (L->in_rank != 2) {
        if (L->in_rank == 1)
            snprintf(hint, sizeof hint, " (declare it as R[1, %zu] to reorder its %zu numbers)", L->in_shape[0],
                     L->in_shape[0]);
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: permute= reorders the members of sets, but the model's "
                    "input %s is not a set R[c, n]%s", source,
                    shape_text(L->in_rank, L->in_shape, sb, sizeof sb), hint);
    }
    size_t channels = L->in_shape[0], n = L->in_shape[1];
    size_t *perm = malloc(n * sizeof *perm);
    double *tmp = alloc_doubles(n, 1);
    if (!perm || !tmp) {
        free(perm);
        free(tmp);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", source);
    }
    rng_t r = {xf->seed ^ PERMUTE_SALT};
    for (size_t i = 0; i < d->n; i++) {
        for (size_t j = 0; j < n; j++)
            perm[j] = xf->permute == PERMUTE_REVERSE ? n - 1 - j : j;
        for (size_t j = n; xf->permute == PERMUTE_RANDOM && j > 1; j--) {
            size_t k = (size_t)rng_below(&r, j), t = perm[j - 1];
            perm[j - 1] = perm[k];
            perm[k] = t;
        }
        for (size_t c = 0; c < channels; c++) {
            double *x = d->x + i * d->nin + c * n;
            for (size_t j = 0; j < n; j++)
                tmp[j] = x[perm[j]];
            memcpy(x, tmp, n * sizeof *tmp);
        }
    }
    free(perm);
    free(tmp);
    return 0;
}

/* applies xf to every input image (and image target) of d */
static int apply_xform(spdl_data *d, const layout_t *L, const xform_t *xf, const char *source, char *err, size_t errlen)
{
    size_t count, side, tcount = 0, tside = 0;
    char sb[96];
    if (!image_geom(L->in_rank, L->in_shape, &count, &side)) {
        const char *key = xf->rotate && xf->mirror ? "rotate= and mirror= act" : xf->rotate ? "rotate= acts"
                                                                                           : "mirror= acts";
        char hint[160] = "";
        size_t side1 = (size_t)floor(sqrt((double)L->nin) + 0.5);
        if (strcmp(source, "builtin:pointsets") == 0)
            snprintf(hint, sizeof hint, " (builtin:pointsets turns its shapes with angle=)");
        else if (L->in_rank == 1 && side1 * side1 == L->nin && side1 > 1)
            snprintf(hint, sizeof hint, " (declare it as R[1, %zu, %zu] to read each sample as one image)", side1,
                     side1);
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: %s on images, but the model's input %s is not an image "
                    "R[c, n, n] or R[n, n]%s", source, key, shape_text(L->in_rank, L->in_shape, sb, sizeof sb), hint);
    }
    int timg = d->t && !L->labels && image_geom(L->t_rank, L->t_shape, &tcount, &tside);
    size_t big = side > tside ? side : tside;
    double *tmp = alloc_doubles(big, big);
    if (!tmp)
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", source);
    rng_t r = {xf->seed ^ ROTATE_SALT};
    for (size_t i = 0; i < d->n; i++) {
        double deg = xf->rotate == 2 ? 360.0 * rng_unif(&r) : xf->rotate == 1 ? xf->deg : 0;
        for (size_t c = 0; c < count; c++) {
            double *img = d->x + i * d->nin + c * side * side;
            spdl_image_transform(img, tmp, side, xf->mirror, deg);
            memcpy(img, tmp, side * side * sizeof *tmp);
        }
        for (size_t c = 0; timg && c < tcount; c++) {
            double *img = d->t + i * d->ntarget + c * tside * tside;
            spdl_image_transform(img, tmp, tside, xf->mirror, deg);
            memcpy(img, tmp, tside * tside * sizeof *tmp);
        }
    }
    free(tmp);
    return 0;
}

/* ---- loading ------------------------------------------------------------- */

enum { B_SPIRALS, B_MOONS, B_CIRCLES, B_DIGITS, B_MNIST, B_WAVES, B_POINTSETS, NBUILTIN };

static const struct builtin {
    const char *name, *keys;
    size_t nin;  /* inputs per sample; 0: from the model's input shape */
    int nclass;
    int stored;  /* read from a file in data/ (n= keeps the first N), not generated */
} builtins[NBUILTIN] = {
    {"spirals", "n noise turns seed split part rotate mirror shift permute", 2, 2, 0},
    {"moons", "n noise seed split part rotate mirror shift permute", 2, 2, 0},
    {"circles", "n noise factor seed split part rotate mirror shift permute", 2, 2, 0},
    {"digits", "scale n seed split part rotate mirror shift permute", 64, 10, 1},
    {"mnist", "scale n seed split part rotate mirror shift permute", MNIST_PIXELS, 10, 1},
    {"waves", "n noise cycles phase seed split part rotate mirror shift permute", 0, 4, 0},
    {"pointsets", "n noise zoom angle order seed split part rotate mirror shift permute", 0, 3, 0},
};

static int find_builtin(const char *source)
{
    for (int i = 0; i < NBUILTIN; i++)
        if (strncmp(source, "builtin:", 8) == 0 && strcmp(source + 8, builtins[i].name) == 0)
            return i;
    return -1;
}

/* key=integer in [lo, hi]; absent: def */
static int get_uint(const spec_t *s, const char *key, unsigned def, unsigned lo, unsigned hi, unsigned *v, char *err,
                    size_t errlen)
{
    char qb[200];
    const char *val = spec_get(s, key);
    uint64_t u;
    *v = def;
    if (!val)
        return 0;
    if (!scan_u64(val, &u) || u < lo || u > hi)
        return spdl_fail(err, errlen, SPDL_EINVAL, "%s: %s=%s: expected an integer from %u to %u", s->source, key,
                    quote(val, strlen(val), qb, sizeof qb), lo, hi);
    *v = (unsigned)u;
    return 0;
}

static int load_builtin(const spec_t *s, const common_t *cm, const layout_t *L, uint64_t seed_arg, spdl_data *d,
                        char *base, size_t baselen, char *err, size_t errlen)
{
    int k = find_builtin(s->source);
    char qb[200], sb[96];
    if (k < 0)
        return spdl_fail(err, errlen, SPDL_EINVAL, "unknown data set '%s' (built-in sets: builtin:spirals, "
                    "builtin:moons, builtin:circles, builtin:digits, builtin:mnist, builtin:waves, builtin:pointsets)",
                    quote(s->source, strlen(s->source), qb, sizeof qb));
    const struct builtin *b = &builtins[k];
    int rc = check_keys(s, b->keys, err, errlen);
    if (rc)
        return rc;
    const char *shape = shape_text(L->in_rank, L->in_shape, sb, sizeof sb);
    size_t len = 0; /* waves: samples per signal; pointsets: points per set */
    if (b->nin && L->nin != b->nin)
        return spdl_fail(err, errlen, SPDL_EMODEL, "%s has %zu inputs per sample, the model has %zu", s->source,
                    b->nin, L->nin);
    if (k == B_WAVES) {
        if (L->in_rank == 1 || (L->in_rank == 2 && L->in_shape[0] == 1))
            len = L->in_shape[L->in_rank - 1];
        else
            return spdl_fail(err, errlen, SPDL_EMODEL, "%s makes signals R[1, L] (one channel of L samples), the "
                        "model's input is %s", s->source, shape);
    }
    if (k == B_POINTSETS) {
        if (L->in_rank == 2 && L->in_shape[0] == 2)
            len = L->in_shape[1];
        else
            return spdl_fail(err, errlen, SPDL_EMODEL, "%s makes sets of points in the plane, R[2, m] (channels "
                        "first: x[0, j], x[1, j] is point j), the model's input is %s", s->source, shape);
    }
    if (L->ntarget > 1 || (L->ntarget == 1 && L->nclass == 0))
        return spdl_fail(err, errlen, SPDL_EMODEL, "%s gives one class label per sample, the model expects %zu real "
                    "target%s", s->source, L->ntarget, L->ntarget == 1 ? "" : "s");
    if (L->nclass > 0 && L->nclass != b->nclass)
        return spdl_fail(err, errlen, SPDL_EMODEL, "%s has %d classes, the model has %d", s->source, b->nclass,
                    L->nclass);
    uint64_t seed = cm->has_seed ? cm->seed : seed_arg;
    unsigned long long sd = (unsigned long long)seed;
    if (b->stored) {
        const char *sc = spec_get(s, "scale");
        int top = k == B_DIGITS ? 16 : 255;
        if (sc && strcmp(sc, "0") != 0 && strcmp(sc, "1") != 0)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: scale=%s: expected scale=1 (pixels / %d) or scale=0 "
                        "(pixels 0..%d)", s->source, quote(sc, strlen(sc), qb, sizeof qb), top, top);
        int scale = !sc || strcmp(sc, "1") == 0;
        rc = k == B_DIGITS ? load_digits(scale, d, err, errlen) : load_mnist(scale, d, err, errlen);
        if (rc)
            return rc;
        snprintf(base, baselen, "builtin:%s (%s, pixels %s%d)", b->name,
                 k == B_DIGITS ? "8x8 UCI digits" : "28x28 MNIST digits", scale ? "/ " : "0..", top);
    } else {
        size_t n = cm->has_n ? cm->n : 1000;
        if (n > MAX_BUILTIN_N)
            return spdl_fail(err, errlen, SPDL_EINVAL, "%s: n=%zu is too large (at most %u)", s->source, n,
                        MAX_BUILTIN_N);
        double noise, turns = 0, factor = 0, zoom = 0, angle = 0, phase = -1;
        unsigned cycles = 0;
        int random_angle = 1, by_angle = 0;
        rc = get_double(s, "noise", k == B_MOONS || k == B_WAVES ? 0.1 : 0.05, 0, 10, 0, &noise, err, errlen);
        if (!rc && k == B_SPIRALS)
            rc = get_double(s, "turns", 1.5, 0, 100, 1, &turns, err, errlen);
        if (!rc && k == B_CIRCLES)
            rc = get_double(s, "factor", 0.5, 0, 1, 1, &factor, err, errlen);
        if (!rc && k == B_WAVES) {
            rc = get_uint(s, "cycles", 3, 1, 1000, &cycles, err, errlen);
            if (!rc && len < 4 * (size_t)cycles)
                rc = spdl_fail(err, errlen, SPDL_EINVAL, "%s: cycles=%u needs signals of at least %zu samples (4 per "
                          "period), the model's input %s has %zu", s->source, cycles, 4 * (size_t)cycles, shape, len);
            const char *ph = spec_get(s, "phase");
            if (!rc && ph && strcmp(ph, "random") != 0 &&
                (!scan_number(ph, strlen(ph), &phase) || !(phase >= 0 && phase < 1)))
                rc = spdl_fail(err, errlen, SPDL_EINVAL, "%s: phase=%s: expected phase=random or a number in [0, 1) "
                          "(the fraction of a period every signal starts at)", s->source,
                          quote(ph, strlen(ph), qb, sizeof qb));
        }
        if (!rc && k == B_POINTSETS) {
            rc = get_double(s, "zoom", 0, 0, 0.9, 0, &zoom, err, errlen);
            const char *a = spec_get(s, "angle");
            if (!rc && a && strcmp(a, "random") != 0) {
                if (!scan_number(a, strlen(a), &angle) || !isfinite(angle))
                    rc = spdl_fail(err, errlen, SPDL_EINVAL, "%s: angle=%s: expected angle=random or an angle in "
                              "degrees", s->source, quote(a, strlen(a), qb, sizeof qb));
                random_angle = 0;
            }
            const char *ord = spec_get(s, "order");
            if (!rc && ord && strcmp(ord, "draw") != 0 && strcmp(ord, "angle") != 0)
                rc = spdl_fail(err, errlen, SPDL_EINVAL, "%s: order=%s: expected order=draw (the points in the order "
                          "they were drawn, the default) or order=angle (sorted by polar angle around the origin)",
                          s->source, quote(ord, strlen(ord), qb, sizeof qb));
            by_angle = ord && strcmp(ord, "angle") == 0;
        }
        if (rc)
            return rc;
        size_t nin = k == B_WAVES ? len : k == B_POINTSETS ? 2 * len : 2;
        d->x = alloc_doubles(n, nin);
        d->t = alloc_doubles(n, 1);
        if (!d->x || !d->t)
            return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for %zu samples", s->source, n);
        switch (k) {
        case B_SPIRALS:
            gen_spirals(n, noise, turns, seed, d->x, d->t);
            snprintf(base, baselen, "%s (n=%zu, noise=%g, turns=%g, seed=%llu)", s->source, n, noise, turns, sd);
            break;
        case B_MOONS:
            gen_moons(n, noise, seed, d->x, d->t);
            snprintf(base, baselen, "%s (n=%zu, noise=%g, seed=%llu)", s->source, n, noise, sd);
            break;
        case B_CIRCLES:
            gen_circles(n, noise, factor, seed, d->x, d->t);
            snprintf(base, baselen, "%s (n=%zu, noise=%g, factor=%g, seed=%llu)", s->source, n, noise, factor, sd);
            break;
        case B_WAVES:
            gen_waves(n, len, noise, cycles, phase, seed, d->x, d->t);
            if (phase >= 0)
                snprintf(base, baselen, "%s (n=%zu, length %zu, noise=%g, cycles=%u, phase=%g, seed=%llu)", s->source,
                         n, len, noise, cycles, phase, sd);
            else
                snprintf(base, baselen, "%s (n=%zu, length %zu, noise=%g, cycles=%u, seed=%llu)", s->source, n, len,
                         noise, cycles, sd);
            break;
        default: {
            char angle_text[48];
            gen_pointsets(n, len, noise, zoom, random_angle, angle, seed, d->x, d->t);
            if (by_angle && sort_points_by_angle(d->x, n, len))
                return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", s->source);
            if (random_angle)
                snprintf(angle_text, sizeof angle_text, "random");
            else
                snprintf(angle_text, sizeof angle_text, "%g", angle);
            snprintf(base, baselen, "%s (n=%zu, %zu points, noise=%g, zoom=%g, angle=%s%s, seed=%llu)", s->source, n,
                     len, noise, zoom, angle_text, by_angle ? ", order=angle" : "", sd);
            break;
        }
        }
        d->n = n;
        d->nin = nin;
        d->ntarget = 1;
        d->nclass = b->nclass;
    }
    if (L->ntarget == 0) { /* a density model: drop the labels */
        free(d->t);
        d->t = NULL;
        d->ntarget = 0;
        d->nclass = 0;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int load_file(const spec_t *s, const layout_t *L, spdl_data *d, char *base, size_t baselen, char *err,
                     size_t errlen)
{
    int rc = check_keys(s, "n seed split part rotate mirror shift permute", err, errlen);
    if (rc)
        return rc;
    char *buf;
    size_t len;
    rc = read_all(s->source, &buf, &len, err, errlen);
    if (rc)
        return rc;
    load_ctx c = {s->source, L->nin, L->ntarget, L->labels, L->nclass > 0 ? L->nclass : 0};
    if ((len >= 6 && memcmp(buf, "\x93NUMPY", 6) == 0) || ends_with(s->source, ".npy") ||
        ends_with(s->source, ".npy.gz"))
        rc = parse_npy(&c, (const unsigned char *)buf, len, d, err, errlen);
    else
        rc = parse_csv(&c, buf, len, d, err, errlen);
    free(buf);
    snprintf(base, baselen, "%s", s->source);
    return rc;
}

/* dst = the samples idx[0..m) of src */
static int gather(const spdl_data *src, const size_t *idx, size_t m, spdl_data *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->x = alloc_doubles(m, src->nin);
    dst->t = src->ntarget ? alloc_doubles(m, src->ntarget) : NULL;
    if (!dst->x || (src->ntarget && !dst->t)) {
        spdl_data_free(dst);
        return SPDL_ENOMEM;
    }
    for (size_t i = 0; i < m; i++) {
        memcpy(dst->x + i * src->nin, src->x + idx[i] * src->nin, src->nin * sizeof(double));
        if (src->ntarget)
            memcpy(dst->t + i * src->ntarget, src->t + idx[i] * src->ntarget, src->ntarget * sizeof(double));
    }
    dst->n = m;
    dst->nin = src->nin;
    dst->ntarget = src->ntarget;
    dst->nclass = src->nclass;
    memcpy(dst->desc, src->desc, sizeof dst->desc);
    return 0;
}

/* the sizes of a split: test gets round(n * frac) */
static void split_sizes(size_t n, double frac, size_t *ntrain, size_t *ntest)
{
    *ntest = (size_t)floor((double)n * frac + 0.5);
    if (*ntest > n)
        *ntest = n;
    *ntrain = n - *ntest;
}

static void append(char *buf, size_t len, const char *fmt, ...) SPDL_PRINTF_LIKE(3, 4);

static void append(char *buf, size_t len, const char *fmt, ...)
{
    size_t o = strlen(buf);
    if (o + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + o, len - o, fmt, ap);
    va_end(ap);
}

static int load_inner(const char *spec, const layout_t *L, uint64_t seed, spdl_data *out, char *err, size_t errlen)
{
    spec_t s;
    common_t cm;
    xform_t xf;
    char base[sizeof out->desc];
    int rc = parse_spec(spec, &s, err, errlen);
    if (!rc)
        rc = get_common(&s, &cm, err, errlen);
    if (!rc)
        rc = get_xform(&s, cm.has_seed ? cm.seed : seed, &xf, err, errlen);
    int k = rc ? -1 : find_builtin(s.source);
    if (!rc) {
        if (strncmp(s.source, "builtin:", 8) == 0)
            rc = load_builtin(&s, &cm, L, seed, out, base, sizeof base, err, errlen);
        else
            rc = load_file(&s, L, out, base, sizeof base, err, errlen);
    }
    if (rc) {
        free(s.buf);
        spdl_data_free(out);
        return rc;
    }
    snprintf(out->desc, sizeof out->desc, "%s", base);
    int generated = k >= 0 && !builtins[k].stored;
    if (cm.has_n && !generated && cm.n < out->n) {
        append(out->desc, sizeof out->desc, ", first %zu of %zu samples", cm.n, out->n);
        out->n = cm.n;
    }
    if (xf.mirror || xf.rotate || xf.shift || xf.permute) {
        rc = xf.shift     ? apply_shift(out, L, &xf, s.source, err, errlen)
             : xf.permute ? apply_permute(out, L, &xf, s.source, err, errlen)
                          : apply_xform(out, L, &xf, s.source, err, errlen);
        if (!rc) {
            char xb[128];
            xform_text(&xf, xb, sizeof xb);
            append(out->desc, sizeof out->desc, "%s", xb);
        }
    }
    if (!rc && cm.part) {
        size_t ntrain, ntest, *idx = malloc((out->n ? out->n : 1) * sizeof *idx);
        split_sizes(out->n, cm.split, &ntrain, &ntest);
        const char *pn = cm.part == 1 ? "train" : "test";
        if (!idx) {
            rc = spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", s.source);
        } else if (ntrain == 0 || ntest == 0) {
            rc = spdl_fail(err, errlen, SPDL_EINVAL, "%s: split=%g of %zu samples leaves the %s part empty", s.source,
                      cm.split, out->n, ntrain == 0 ? "train" : "test");
        } else {
            permutation(idx, out->n, cm.seed);
            spdl_data part;
            rc = cm.part == 1 ? gather(out, idx, ntrain, &part) : gather(out, idx + ntrain, ntest, &part);
            if (rc) {
                spdl_fail(err, errlen, rc, "%s: out of memory", s.source);
            } else {
                append(part.desc, sizeof part.desc, ", %s part: %zu of %zu samples (split=%g, seed=%llu)", pn,
                       part.n, out->n, cm.split, (unsigned long long)cm.seed);
                spdl_data_free(out);
                *out = part;
            }
        }
        free(idx);
    }
    free(s.buf);
    if (rc)
        spdl_data_free(out);
    return rc;
}

/* copies a rank and shape (rank 0: R[size]) into a checked layout_t entry */
static int take_shape(int rank, const size_t *shape, size_t size, int *r, size_t *sh)
{
    if (rank < 0 || rank > 4)
        return 0;
    if (rank == 0) {
        *r = 1;
        sh[0] = size;
        return 1;
    }
    size_t p = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] == 0 || p > SIZE_MAX / shape[i])
            return 0;
        p *= shape[i];
        sh[i] = shape[i];
    }
    *r = rank;
    return p == size;
}

spdl_data_layout spdl_data_layout_of(const spdl_model *m)
{
    spdl_data_layout l;
    memset(&l, 0, sizeof l);
    if (!m)
        return l;
    l.nin = m->nin;
    l.ntarget = m->ntarget;
    l.nclass = m->ntarget == 0 ? -1 : m->nclass;
    if (m->in_rank >= 1 && m->in_rank <= 4) {
        l.in_rank = m->in_rank;
        memcpy(l.in_shape, m->in_shape, sizeof l.in_shape);
    }
    if (m->nclass == 0 && m->target_rank >= 1 && m->target_rank <= 4) {
        l.target_rank = m->target_rank;
        memcpy(l.target_shape, m->target_shape, sizeof l.target_shape);
    }
    return l;
}

int spdl_data_load_layout(const char *spec, const spdl_data_layout *layout, uint64_t seed, spdl_data *out,
                          char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!spec || !out || !layout)
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_data_load: NULL argument");
    size_t nin = layout->nin, ntarget = layout->ntarget;
    int nclass = layout->nclass;
    if (nin == 0)
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_data_load: the model has no inputs");
    if (nclass > 0 && ntarget != 1)
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_data_load: class labels need exactly one target per sample");
    if (ntarget > SIZE_MAX / 2 || nin > SIZE_MAX / 2 - ntarget)
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_data_load: too many inputs or targets");
    layout_t L;
    memset(&L, 0, sizeof L);
    L.nin = nin;
    L.ntarget = ntarget;
    L.nclass = nclass;
    L.labels = nclass > 0 || (nclass < 0 && ntarget == 1);
    if (!take_shape(layout->in_rank, layout->in_shape, nin, &L.in_rank, L.in_shape))
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_data_load: the input shape (rank %d) does not hold the "
                    "model's %zu inputs", layout->in_rank, nin);
    if (ntarget && !take_shape(layout->target_rank, layout->target_shape, ntarget, &L.t_rank, L.t_shape))
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_data_load: the target shape (rank %d) does not hold the "
                    "model's %zu targets", layout->target_rank, ntarget);
    /* strtod and printf see "0.5", whatever locale the program chose */
    locale_t cl = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = cl ? uselocale(cl) : (locale_t)0;
    int rc = load_inner(spec, &L, seed, out, err, errlen);
    if (cl) {
        uselocale(old);
        freelocale(cl);
    }
    return rc;
}

int spdl_data_load_ex(const char *spec, size_t nin, size_t ntarget, int nclass, uint64_t seed, spdl_data *out,
                      char *err, size_t errlen)
{
    spdl_data_layout l;
    memset(&l, 0, sizeof l);
    l.nin = nin;
    l.ntarget = ntarget;
    l.nclass = nclass;
    return spdl_data_load_layout(spec, &l, seed, out, err, errlen);
}

int spdl_data_load(const char *spec, size_t nin, size_t ntarget, uint64_t seed, spdl_data *out, char *err,
                   size_t errlen)
{
    return spdl_data_load_ex(spec, nin, ntarget, -1, seed, out, err, errlen);
}

void spdl_data_noise(double *x, size_t lo, size_t hi, size_t nin, uint64_t key, double sigma)
{
    for (size_t i = lo; i < hi; i++) {
        rng_t r = {key ^ (uint64_t)(i + 1) * 0xd1b54a32d192ed03u};
        r.s = rng_next(&r); /* rows of nearby keys and indices start far apart */
        double *row = x + i * nin;
        for (size_t j = 0; j < nin; j += 2) {
            double g1, g2;
            rng_gauss2(&r, &g1, &g2);
            row[j] += sigma * g1;
            if (j + 1 < nin)
                row[j + 1] += sigma * g2;
        }
    }
}

void spdl_data_free(spdl_data *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->t);
    memset(d, 0, sizeof *d);
}

int spdl_data_split(const spdl_data *d, double frac, uint64_t seed, spdl_data *train, spdl_data *val)
{
    if (train)
        memset(train, 0, sizeof *train);
    if (val)
        memset(val, 0, sizeof *val);
    if (!d || !train || !val || !(frac > 0 && frac < 1) || !d->x)
        return SPDL_EINVAL;
    size_t ntrain, nval;
    split_sizes(d->n, frac, &ntrain, &nval);
    if (ntrain == 0 || nval == 0)
        return SPDL_EINVAL;
    size_t *idx = malloc(d->n * sizeof *idx);
    if (!idx)
        return SPDL_ENOMEM;
    permutation(idx, d->n, seed);
    int rc = gather(d, idx, ntrain, train);
    if (!rc)
        rc = gather(d, idx + ntrain, nval, val);
    free(idx);
    if (rc) {
        spdl_data_free(train);
        spdl_data_free(val);
        return rc;
    }
    append(train->desc, sizeof train->desc, ", training part (%zu)", ntrain);
    append(val->desc, sizeof val->desc, ", validation part (%zu)", nval);
    return 0;
}
