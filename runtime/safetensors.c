/* safetensors.c - reading and writing safetensors files.
 *
 * Reading loads the whole file, parses the header with a small strict JSON
 * parser (a tree of jval nodes, nesting bounded), checks every tensor entry
 * against the data section and converts the little-endian values. Every
 * malformed file ends in one line in err that names the file and, where there
 * is one, the tensor; nothing is read outside the bytes the file holds.
 * Writing builds the header in memory, then writes a mkstemp file next to the
 * target, fsyncs it, renames it over the target and fsyncs the directory, so
 * a reader sees the old file or the new one, never half of one. The writer
 * holds an flock on its temp file; one left by a killed writer (unlocked)
 * is removed at the next write of the same path. */
#include "safetensors.h"
#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER ((uint64_t)100 << 20) /* the reference implementation's limit */
#define MAX_DEPTH 64                     /* JSON nesting */

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* A name for a message: at most about 60 bytes, control bytes and bytes that
   are not UTF-8 as \xNN. */
static const char *quote(const char *s, char *out, size_t outlen)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (o + 8 >= outlen || i >= 60) {
            snprintf(out + o, outlen - o, "...");
            return out;
        }
        size_t k = utf8_seq(u + i, n - i);
        if (k == 0 || u[i] < 0x20 || u[i] == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", u[i]);
            i++;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- a small strict JSON parser ------------------------------------------ */

enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval {
    int type;
    size_t pos;          /* byte offset in the header */
    char *str;           /* J_STR: the decoded text, NUL-terminated */
    int isuint;          /* J_NUM: a non-negative integer that fits in u */
    uint64_t u;
    size_t n;            /* J_ARR, J_OBJ: members */
    struct jval *items;
    char **keys;         /* J_OBJ: decoded keys */
} jval;

typedef struct {
    const unsigned char *s;
    size_t len, i;
    int depth;
    size_t errpos;
    char msg[128];
} jparser;

static void j_free(jval *v)
{
    if (!v)
        return;
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        j_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

SPDL_PRINTF_LIKE(2, 3)
static int j_err(jparser *p, const char *fmt, ...)
{
    if (!p->msg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->msg, sizeof p->msg, fmt, ap);
        va_end(ap);
        p->errpos = p->i;
    }
    return -1;
}

static void j_ws(jparser *p)
{
    while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* four hex digits at p->s[p->i], within the string that ends at `end` */
static int j_hex4(jparser *p, size_t end, uint32_t *cp)
{
    if (end - p->i < 4)
        return -1;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p->s[p->i + (size_t)k]);
        if (h < 0)
            return -1;
        v = v << 4 | (uint32_t)h;
    }
    p->i += 4;
    *cp = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The escape at p->s[p->i] == '\\' of a string ending at `end`: appends its
   UTF-8 to o (never more bytes than the escape takes). Errors point at the
   backslash. */
static int j_escape(jparser *p, size_t end, char *o, size_t *n)
{
    size_t esc = p->i;
    unsigned char c = p->s[p->i + 1];
    p->i += 2;
    uint32_t cp, lo;
    switch (c) {
    case '"': o[(*n)++] = '"'; return 0;
    case '\\': o[(*n)++] = '\\'; return 0;
    case '/': o[(*n)++] = '/'; return 0;
    case 'b': o[(*n)++] = '\b'; return 0;
    case 'f': o[(*n)++] = '\f'; return 0;
    case 'n': o[(*n)++] = '\n'; return 0;
    case 'r': o[(*n)++] = '\r'; return 0;
    case 't': o[(*n)++] = '\t'; return 0;
    case 'u': break;
    default:
        p->i = esc;
        return j_err(p, "bad escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
    }
    if (j_hex4(p, end, &cp)) {
        p->i = esc;
        return j_err(p, "bad \\u escape (expected four hex digits)");
    }
    if (cp >= 0xd800 && cp <= 0xdbff) { /* a high surrogate needs its low half */
        if (end - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
            p->i = esc;
            return j_err(p, "unpaired surrogate \\u%04x", (unsigned)cp);
        }
        p->i += 2;
        if (j_hex4(p, end, &lo) || lo < 0xdc00 || lo > 0xdfff) {
            p->i = esc;
            return j_err(p, "unpaired surrogate \\u%04x", (unsigned)cp);
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        p->i = esc;
        return j_err(p, "unpaired surrogate \\u%04x", (unsigned)cp);
    }
    if (cp == 0) {
        p->i = esc;
        return j_err(p, "\\u0000 in a string is not supported");
    }
    *n += put_utf8(o + *n, cp);
    return 0;
}

/* The string at p->s[p->i] == '"', decoded into *out. Errors point at the
   opening quote or at the offending byte. */
static int j_string(jparser *p, char **out)
{
    size_t q = p->i, start = q + 1, end = start;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len)
        return j_err(p, "unterminated string");
    char *o = malloc(end - start + 1);
    if (!o)
        return j_err(p, "out of memory");
    size_t n = 0;
    p->i = start;
    while (p->i < end) {
        unsigned char c = p->s[p->i];
        if (c == '\\') {
            if (j_escape(p, end, o, &n)) {
                free(o);
                return -1;
            }
            continue;
        }
        if (c < 0x20) {
            free(o);
            return j_err(p, "control character 0x%02x in a string", c);
        }
        size_t k = utf8_seq(p->s + p->i, end - p->i);
        if (!k) {
            free(o);
            return j_err(p, "invalid UTF-8 in a string");
        }
        memcpy(o + n, p->s + p->i, k);
        n += k;
        p->i += k;
    }
    p->i = end + 1;
    o[n] = '\0';
    *out = o;
    return 0;
}

static int j_number(jparser *p, jval *v)
{
    size_t i = p->i;
    const unsigned char *s = p->s;
    int neg = 0, frac = 0;
    if (i < p->len && s[i] == '-')
        neg = 1, i++;
    if (i >= p->len || !(s[i] >= '0' && s[i] <= '9'))
        return j_err(p, "bad number");
    uint64_t u = 0;
    int over = 0;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') {
            unsigned d = s[i++] - '0';
            if (u > (UINT64_MAX - d) / 10)
                over = 1;
            else
                u = u * 10 + d;
        }
    }
    if (i < p->len && s[i] == '.') {
        frac = 1;
        i++;
        if (i >= p->len || !(s[i] >= '0' && s[i] <= '9'))
            return j_err(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        frac = 1;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->len || !(s[i] >= '0' && s[i] <= '9'))
            return j_err(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    v->type = J_NUM;
    v->isuint = !neg && !frac && !over;
    v->u = u;
    p->i = i;
    return 0;
}

static int j_value(jparser *p, jval *v);

/* appends a zeroed member to an array or object */
static jval *j_grow(jparser *p, jval *v, size_t *cap)
{
    if (v->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        jval *ni = realloc(v->items, nc * sizeof *ni);
        if (!ni)
            return j_err(p, "out of memory"), NULL;
        v->items = ni;
        if (v->type == J_OBJ) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk)
                return j_err(p, "out of memory"), NULL;
            v->keys = nk;
        }
        *cap = nc;
    }
    jval *m = &v->items[v->n];
    memset(m, 0, sizeof *m);
    if (v->type == J_OBJ)
        v->keys[v->n] = NULL;
    v->n++;
    return m;
}

static int j_container(jparser *p, jval *v, int obj)
{
    size_t cap = 0;
    v->type = obj ? J_OBJ : J_ARR;
    if (++p->depth > MAX_DEPTH)
        return j_err(p, "nesting deeper than %d", MAX_DEPTH);
    p->i++;
    j_ws(p);
    if (p->i < p->len && p->s[p->i] == (obj ? '}' : ']')) {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        jval *m = j_grow(p, v, &cap);
        if (!m)
            return -1;
        if (obj) {
            j_ws(p);
            if (p->i >= p->len || p->s[p->i] != '"')
                return j_err(p, "expected a string key");
            if (j_string(p, &v->keys[v->n - 1]))
                return -1;
            j_ws(p);
            if (p->i >= p->len || p->s[p->i] != ':')
                return j_err(p, "expected ':' after a key");
            p->i++;
        }
        if (j_value(p, m))
            return -1;
        j_ws(p);
        if (p->i < p->len && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->len && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            p->depth--;
            return 0;
        }
        return j_err(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int j_literal(jparser *p, const char *w, int type, jval *v)
{
    size_t n = strlen(w);
    if (p->len - p->i < n || memcmp(p->s + p->i, w, n) != 0)
        return j_err(p, "expected '%s'", w);
    p->i += n;
    v->type = type;
    return 0;
}

static int j_value(jparser *p, jval *v)
{
    j_ws(p);
    v->pos = p->i;
    if (p->i >= p->len)
        return j_err(p, "unexpected end of the header");
    switch (p->s[p->i]) {
    case '{': return j_container(p, v, 1);
    case '[': return j_container(p, v, 0);
    case '"': v->type = J_STR; return j_string(p, &v->str);
    case 't': return j_literal(p, "true", J_TRUE, v);
    case 'f': return j_literal(p, "false", J_FALSE, v);
    case 'n': return j_literal(p, "null", J_NULL, v);
    default:
        if (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))
            return j_number(p, v);
        return j_err(p, "unexpected character '%c'",
                     p->s[p->i] >= 0x20 && p->s[p->i] < 0x7f ? p->s[p->i] : '?');
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first key that appears twice in an object, or NULL (*oom on failure). */
static const char *j_duplicate_key(const jval *o, int *oom)
{
    *oom = 0;
    if (o->n < 2)
        return NULL;
    char **k = malloc(o->n * sizeof *k);
    if (!k) {
        *oom = 1;
        return NULL;
    }
    memcpy(k, o->keys, o->n * sizeof *k);
    qsort(k, o->n, sizeof *k, cmp_str);
    const char *dup = NULL;
    for (size_t i = 1; i < o->n && !dup; i++)
        if (strcmp(k[i - 1], k[i]) == 0)
            dup = k[i];
    free(k);
    return dup;
}

/* ---- reading ------------------------------------------------------------- */

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

typedef struct {
    size_t entry;      /* index in the header object */
    int f32;
    uint64_t begin, end;
    size_t out;        /* index in the output tensors */
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static const jval *j_get(const jval *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

/* Reads the file into memory: regular files only. */
static int slurp(const char *path, unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
    char eb[128];
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
        return spdl_fail(err, errlen, SPDL_EIO, "%s: is a directory, expected a safetensors file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return spdl_fail(err, errlen, SPDL_EIO, "%s: not a regular file, expected a safetensors file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX - 1) {
        close(fd);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: file too large", path);
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            if (r == 0)
                return spdl_fail(err, errlen, SPDL_EIO, "%s: the file shrank while being read", path);
            return spdl_fail(err, errlen, SPDL_EIO, "%s: cannot read: %s", path, spdl_errno_text(e, eb, sizeof eb));
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *outlen = size;
    return 0;
}

/* Checks one tensor entry of the header; fills sp and the output tensor's shape. */
static int check_entry(const char *path, const char *name, const jval *e, spdl_tensor *t, span *sp, char *err,
                       size_t errlen)
{
    char qn[256];
    quote(name, qn, sizeof qn);
    if (e->type != J_OBJ)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': the entry is not a JSON object", path, qn);
    for (size_t i = 0; i < e->n; i++) {
        const char *k = e->keys[i];
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets")) {
            char qk[256];
            return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': unexpected key \"%s\" (expected dtype, shape, "
                        "data_offsets)", path, qn, quote(k, qk, sizeof qk));
        }
    }
    const jval *dt = j_get(e, "dtype"), *sh = j_get(e, "shape"), *of = j_get(e, "data_offsets");
    if (!dt)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': missing \"dtype\"", path, qn);
    if (!sh)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': missing \"shape\"", path, qn);
    if (!of)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': missing \"data_offsets\"", path, qn);
    if (dt->type != J_STR)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': \"dtype\" is not a string", path, qn);
    size_t isz;
    if (strcmp(dt->str, "F64") == 0) {
        isz = 8;
        sp->f32 = 0;
    } else if (strcmp(dt->str, "F32") == 0) {
        isz = 4;
        sp->f32 = 1;
    } else {
        char qd[256];
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': dtype \"%s\" is not supported (F64, or F32 "
                    "converted to F64)", path, qn, quote(dt->str, qd, sizeof qd));
    }
    if (sh->type != J_ARR)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': \"shape\" is not an array", path, qn);
    if (sh->n > 4)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': rank %zu is not supported (at most 4)", path, qn,
                    sh->n);
    uint64_t count = 1;
    for (size_t i = 0; i < sh->n; i++) {
        const jval *d = &sh->items[i];
        if (d->type != J_NUM || !d->isuint)
            return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': \"shape\" is not an array of non-negative "
                        "integers", path, qn);
        if (d->u > SIZE_MAX || (d->u && count > (uint64_t)(SIZE_MAX / 8) / d->u))
            return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': shape too large", path, qn);
        count *= d->u;
        t->shape[i] = (size_t)d->u;
    }
    t->rank = (int)sh->n;
    t->size = (size_t)count;
    if (of->type != J_ARR || of->n != 2 || of->items[0].type != J_NUM || !of->items[0].isuint ||
        of->items[1].type != J_NUM || !of->items[1].isuint)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': \"data_offsets\" is not [begin, end] of "
                    "non-negative integers", path, qn);
    sp->begin = of->items[0].u;
    sp->end = of->items[1].u;
    if (sp->end < sp->begin)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                    path, qn, (unsigned long long)sp->begin, (unsigned long long)sp->end);
    if (sp->end - sp->begin != count * isz)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but "
                    "%llu %s values need %llu (the header lies about the size)", path, qn,
                    (unsigned long long)sp->begin, (unsigned long long)sp->end,
                    (unsigned long long)(sp->end - sp->begin), (unsigned long long)count, dt->str,
                    (unsigned long long)(count * isz));
    return 0;
}

static int read_header(const char *path, const unsigned char *buf, size_t size, spdl_st *out, char *err,
                       size_t errlen)
{
    char qn[256], qm[256];
    uint64_t hl = le64(buf);
    if (hl > size - 8)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: the header length %llu is larger than the rest of the file "
                    "(%zu bytes): truncated, or not a safetensors file", path, (unsigned long long)hl, size - 8);
    if (hl > MAX_HEADER)
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: the header length %llu exceeds the limit of %llu bytes", path,
                    (unsigned long long)hl, (unsigned long long)MAX_HEADER);
    jparser p;
    memset(&p, 0, sizeof p);
    p.s = buf + 8;
    p.len = (size_t)hl;
    jval root;
    memset(&root, 0, sizeof root);
    int rc = j_value(&p, &root);
    if (!rc) {
        j_ws(&p);
        if (p.i != p.len)
            rc = j_err(&p, "unexpected text after the JSON value");
    }
    if (rc) {
        j_free(&root);
        return spdl_fail(err, errlen, strcmp(p.msg, "out of memory") == 0 ? SPDL_ENOMEM : SPDL_EFORMAT,
                    "%s: the header is not valid JSON: %s at header byte %zu", path, p.msg, p.errpos);
    }
    if (root.type != J_OBJ) {
        j_free(&root);
        return spdl_fail(err, errlen, SPDL_EFORMAT, "%s: the header is not a JSON object", path);
    }
    int oom;
    const char *dup = j_duplicate_key(&root, &oom);
    if (dup || oom) {
        rc = oom ? spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path)
                 : spdl_fail(err, errlen, SPDL_EFORMAT, "%s: the header names '%s' twice", path, quote(dup, qn, sizeof qn));
        j_free(&root);
        return rc;
    }
    size_t ntensor = root.n, nspan = 0;
    const jval *meta = j_get(&root, "__metadata__");
    if (meta)
        ntensor--;
    size_t datalen = size - 8 - (size_t)hl;
    const unsigned char *data = buf + 8 + hl;
    span *sp = malloc((ntensor ? ntensor : 1) * sizeof *sp);
    out->t = calloc(ntensor ? ntensor : 1, sizeof *out->t);
    if (!sp || !out->t) {
        free(sp);
        j_free(&root);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path);
    }
    rc = 0;
    if (meta) {
        if (meta->type != J_OBJ)
            rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: \"__metadata__\" is not an object", path);
        else if ((dup = j_duplicate_key(meta, &oom)) || oom)
            rc = oom ? spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path)
                     : spdl_fail(err, errlen, SPDL_EFORMAT, "%s: \"__metadata__\" names '%s' twice", path,
                            quote(dup, qn, sizeof qn));
        for (size_t i = 0; !rc && i < meta->n; i++)
            if (meta->items[i].type != J_STR)
                rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: \"__metadata__\" value for '%s' is not a string", path,
                          quote(meta->keys[i], qn, sizeof qn));
        if (!rc && meta->n) {
            out->meta_key = calloc(meta->n, sizeof *out->meta_key);
            out->meta_val = calloc(meta->n, sizeof *out->meta_val);
            if (!out->meta_key || !out->meta_val)
                rc = spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path);
            for (size_t i = 0; !rc && i < meta->n; i++) {
                /* take the strings over from the tree */
                out->meta_key[i] = meta->keys[i];
                out->meta_val[i] = meta->items[i].str;
                ((jval *)meta)->keys[i] = NULL;
                ((jval *)meta)->items[i].str = NULL;
                out->nmeta++;
            }
        }
    }
    for (size_t i = 0; !rc && i < root.n; i++) {
        if (&root.items[i] == meta)
            continue;
        spdl_tensor *t = &out->t[nspan];
        sp[nspan].entry = i;
        sp[nspan].out = nspan;
        rc = check_entry(path, root.keys[i], &root.items[i], t, &sp[nspan], err, errlen);
        if (rc)
            break;
        if (sp[nspan].end > datalen) {
            rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of "
                      "the data section (%zu bytes): truncated, or the header lies", path,
                      quote(root.keys[i], qn, sizeof qn), (unsigned long long)sp[nspan].begin,
                      (unsigned long long)sp[nspan].end, datalen);
            break;
        }
        t->name = root.keys[i];
        root.keys[i] = NULL;
        out->nt++;
        nspan++;
    }
    if (!rc) {
        /* the tensors must tile the data section: no overlap, no stray bytes */
        qsort(sp, nspan, sizeof *sp, cmp_span);
        uint64_t at = 0;
        size_t last = 0; /* the span that ends at `at` */
        for (size_t k = 0; k < nspan && !rc; k++) {
            if (sp[k].begin < at)
                rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path,
                          quote(out->t[sp[last].out].name, qm, sizeof qm),
                          quote(out->t[sp[k].out].name, qn, sizeof qn));
            else if (sp[k].begin > at)
                rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: bytes [%llu, %llu) of the data section belong to no "
                          "tensor", path, (unsigned long long)at, (unsigned long long)sp[k].begin);
            if (sp[k].end > at) {
                at = sp[k].end;
                last = k;
            }
        }
        if (!rc && at != datalen)
            rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: bytes [%llu, %zu) of the data section belong to no tensor",
                      path, (unsigned long long)at, datalen);
    }
    /* values, in the header's order */
    for (size_t k = 0; k < nspan && !rc; k++) {
        spdl_tensor *t = &out->t[sp[k].out];
        t->data = malloc(t->size ? t->size * sizeof(double) : 1);
        if (!t->data) {
            rc = spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for tensor '%s'", path,
                      quote(t->name, qn, sizeof qn));
            break;
        }
        const unsigned char *q = data + sp[k].begin;
        for (size_t j = 0; j < t->size; j++) {
            double v;
            if (sp[k].f32) {
                uint32_t u = (uint32_t)q[4 * j] | (uint32_t)q[4 * j + 1] << 8 | (uint32_t)q[4 * j + 2] << 16 |
                             (uint32_t)q[4 * j + 3] << 24;
                float f;
                memcpy(&f, &u, sizeof f);
                v = f;
            } else {
                uint64_t u = le64(q + 8 * j);
                memcpy(&v, &u, sizeof v);
            }
            if (!isfinite(v)) {
                rc = spdl_fail(err, errlen, SPDL_ENONFINITE, "%s: tensor '%s' holds %s at element %zu", path,
                          quote(t->name, qn, sizeof qn), isnan(v) ? "a NaN" : "an infinity", j);
                break;
            }
            t->data[j] = v;
        }
    }
    free(sp);
    j_free(&root);
    return rc;
}

int spdl_st_read(const char *path, spdl_st *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !out)
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_read: NULL argument");
    unsigned char *buf;
    size_t size;
    int rc = slurp(path, &buf, &size, err, errlen);
    if (rc)
        return rc;
    if (size == 0)
        rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: the file is empty, expected a safetensors file", path);
    else if (size < 8)
        rc = spdl_fail(err, errlen, SPDL_EFORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length",
                  path, size);
    else
        rc = read_header(path, buf, size, out, err, errlen);
    free(buf);
    if (rc)
        spdl_st_free(out);
    return rc;
}

const spdl_tensor *spdl_st_find(const spdl_st *st, const char *name)
{
    if (!st || !name)
        return NULL;
    for (size_t i = 0; i < st->nt; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

const char *spdl_st_meta(const spdl_st *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = 0; i < st->nmeta; i++)
        if (strcmp(st->meta_key[i], key) == 0)
            return st->meta_val[i];
    return NULL;
}

void spdl_st_free(spdl_st *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->nt; i++) {
        free(st->t[i].name);
        free(st->t[i].data);
    }
    free(st->t);
    for (size_t i = 0; i < st->nmeta; i++) {
        free(st->meta_key[i]);
        free(st->meta_val[i]);
    }
    free(st->meta_key);
    free(st->meta_val);
    memset(st, 0, sizeof *st);
}

/* ---- writing ------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

SPDL_PRINTF_LIKE(2, 3)
static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* a JSON string literal of valid UTF-8 text */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': sb_str(b, "\\\""); break;
        case '\\': sb_str(b, "\\\\"); break;
        case '\n': sb_str(b, "\\n"); break;
        case '\r': sb_str(b, "\\r"); break;
        case '\t': sb_str(b, "\\t"); break;
        case '\b': sb_str(b, "\\b"); break;
        case '\f': sb_str(b, "\\f"); break;
        default:
            if (c < 0x20)
                sb_fmt(b, "\\u%04x", c);
            else
                sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int check_inputs(const spdl_tensor *t, size_t nt, const char *const *mk, const char *const *mv, size_t nm,
                        char *err, size_t errlen)
{
    char qn[256];
    if ((nt && !t) || (nm && (!mk || !mv)))
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: NULL argument");
    for (size_t i = 0; i < nt; i++) {
        const spdl_tensor *a = &t[i];
        if (!a->name || !a->name[0])
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: tensor %zu has no name", i);
        if (!utf8_valid(a->name))
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: tensor %zu: the name is not valid UTF-8", i);
        quote(a->name, qn, sizeof qn);
        if (strcmp(a->name, "__metadata__") == 0)
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: a tensor cannot be named __metadata__");
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[j].name, a->name) == 0)
                return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: two tensors are named '%s'", qn);
        if (a->rank < 0 || a->rank > 4)
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: tensor '%s': rank %d (expected 0 to 4)", qn,
                        a->rank);
        size_t count = 1;
        for (int k = 0; k < a->rank; k++) {
            if (a->shape[k] && count > SIZE_MAX / 8 / a->shape[k])
                return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: tensor '%s': shape too large", qn);
            count *= a->shape[k];
        }
        if (count != a->size)
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: tensor '%s': size %zu does not match its shape "
                        "(%zu elements)", qn, a->size, count);
        if (a->size && !a->data)
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: tensor '%s': no data", qn);
        for (size_t j = 0; j < a->size; j++)
            if (!isfinite(a->data[j]))
                return spdl_fail(err, errlen, SPDL_ENONFINITE, "spdl_st_write: tensor '%s' holds %s at element %zu; "
                            "nothing written", qn, isnan(a->data[j]) ? "a NaN" : "an infinity", j);
    }
    for (size_t i = 0; i < nm; i++) {
        if (!mk[i] || !mv[i])
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: metadata %zu is NULL", i);
        if (!utf8_valid(mk[i]) || !utf8_valid(mv[i]))
            return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: metadata '%s' is not valid UTF-8",
                        quote(mk[i], qn, sizeof qn));
        for (size_t j = 0; j < i; j++)
            if (strcmp(mk[j], mk[i]) == 0)
                return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: metadata key '%s' is given twice",
                            quote(mk[i], qn, sizeof qn));
    }
    return 0;
}

/* Is name ".BASE.XXXXXX", one of spdl_st_write's temp files for base? */
static int is_temp_of(const char *name, const char *base)
{
    size_t bl = strlen(base), nl = strlen(name);
    if (nl != bl + 8 || name[0] != '.' || strncmp(name + 1, base, bl) != 0 || name[bl + 1] != '.')
        return 0;
    for (size_t i = bl + 2; i < nl; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

void spdl_st_remove_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char dir[4096];
    if (dirlen + 2 > sizeof dir || !*base)
        return;
    snprintf(dir, sizeof dir, "%.*s", (int)dirlen, path);
    if (!slash)
        strcpy(dir, ".");
    else if (dirlen == 0)
        strcpy(dir, "/");
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_temp_of(e->d_name, base))
            continue;
        char p[4096 + 256];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        /* a live writer holds its lock until the rename; the kernel drops
           the lock of a killed one */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlink(p);
        close(fd);
    }
    closedir(d);
}

int spdl_st_write(const char *path, const spdl_tensor *t, size_t nt, const char *const *meta_key,
                  const char *const *meta_val, size_t nmeta, char *err, size_t errlen)
{
    char eb[128];
    if (err && errlen)
        err[0] = '\0';
    if (!path || !*path)
        return spdl_fail(err, errlen, SPDL_EINVAL, "spdl_st_write: no path");
    int rc = check_inputs(t, nt, meta_key, meta_val, nmeta, err, errlen);
    if (rc)
        return rc;

    /* the header */
    sbuf h = {0};
    sb_str(&h, "{");
    if (nmeta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i)
                sb_str(&h, ",");
            sb_json(&h, meta_key[i]);
            sb_str(&h, ":");
            sb_json(&h, meta_val[i]);
        }
        sb_str(&h, "}");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        if (i || nmeta)
            sb_str(&h, ",");
        sb_json(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"F64\",\"shape\":[");
        for (int k = 0; k < t[i].rank; k++)
            sb_fmt(&h, "%s%zu", k ? "," : "", t[i].shape[k]);
        sb_fmt(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
               (unsigned long long)(off + 8 * (uint64_t)t[i].size));
        off += 8 * (uint64_t)t[i].size;
    }
    sb_str(&h, "}");
    while (h.len % 8)
        sb_str(&h, " ");
    if (h.oom) {
        free(h.p);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory for the header", path);
    }

    /* a temp file next to the target: same filesystem, so rename is atomic */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t tl = strlen(path) + 16;
    char *tmp = malloc(tl), *dir = malloc(dirlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        free(h.p);
        return spdl_fail(err, errlen, SPDL_ENOMEM, "%s: out of memory", path);
    }
    if (slash) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
        if (dirlen == 0)
            strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    spdl_st_remove_stale(path);
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        snprintf(tmp, tl, "%.*s%s.%s.XXXXXX", (int)dirlen, path, slash ? "/" : "", base);
        fd = mkstemp(tmp);
        if (fd < 0)
            break;
        /* locked, and still ours: another writer's cleanup may have taken it
           for stale between mkstemp and flock */
        struct stat ts;
        if (flock(fd, LOCK_EX) != 0 || fstat(fd, &ts) != 0 || ts.st_nlink == 0) {
            close(fd);
            fd = -1;
            errno = EEXIST;
        }
    }
    if (fd < 0) {
        rc = spdl_fail(err, errlen, SPDL_EIO, "%s: cannot create a temporary file in %s: %s", path, dir,
                  spdl_errno_text(errno, eb, sizeof eb));
        free(tmp);
        free(dir);
        free(h.p);
        return rc;
    }
    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        mode = st.st_mode & 07777;
    int ok = fchmod(fd, mode) == 0;
    unsigned char len8[8], chunk[4096];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    ok = ok && write_all(fd, len8, 8) == 0 && write_all(fd, h.p, h.len) == 0;
    for (size_t i = 0; ok && i < nt; i++) {
        for (size_t j = 0; ok && j < t[i].size;) {
            size_t m = 0;
            for (; m < sizeof chunk / 8 && j < t[i].size; m++, j++) {
                uint64_t u;
                memcpy(&u, &t[i].data[j], sizeof u);
                for (int k = 0; k < 8; k++)
                    chunk[8 * m + (size_t)k] = (unsigned char)(u >> (8 * k));
            }
            ok = write_all(fd, chunk, 8 * m) == 0;
        }
    }
    ok = ok && fsync(fd) == 0;
    int e = errno;
    int lock = dup(fd); /* holds the lock past close, until the rename */
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (lock >= 0)
        close(lock);
    if (!ok) {
        unlink(tmp);
        rc = spdl_fail(err, errlen, SPDL_EIO, "%s: cannot write: %s", path, spdl_errno_text(e, eb, sizeof eb));
    } else {
        /* make the rename itself durable */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)) {
            rc = spdl_fail(err, errlen, SPDL_EIO, "%s: written, but cannot sync the directory %s: %s", path, dir,
                      spdl_errno_text(errno, eb, sizeof eb));
        }
        if (dfd >= 0)
            close(dfd);
    }
    free(tmp);
    free(dir);
    free(h.p);
    return rc;
}
