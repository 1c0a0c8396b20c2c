/* diag.c - see diag.h. Printing follows GCC 12: location, severity, message,
 * a gutter with the line number, the source line, and a caret underline
 * covering the whole span. Colour only when the output is a terminal. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void diag_init(Diags *d, Arena *a, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->arena = a;
    d->tail = &d->head;
    d->out = out;
    d->color = isatty(fileno(out)) && !getenv("NO_COLOR");
}

int diag_add_file(Diags *d, const char *path, const char *text, uint32_t len, const char *real)
{
    if (d->nfiles == d->capfiles) {
        int cap = d->capfiles ? d->capfiles * 2 : 8;
        SourceFile *f = ARENA_ARRAY(d->arena, SourceFile, cap);
        if (d->nfiles)
            memcpy(f, d->files, sizeof *f * (size_t)d->nfiles);
        d->files = f;
        d->capfiles = cap;
    }
    SourceFile *f = &d->files[d->nfiles];
    f->path = arena_strdup(d->arena, path);
    f->text = arena_strndup(d->arena, text, len);
    f->len = len;
    f->real = real ? arena_strdup(d->arena, real) : f->path;
    /* Line starts, so that printing many diagnostics for a large file does
     * not rescan it from the top each time. */
    uint32_t n = 1;
    for (const char *p = f->text, *end = f->text + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        n++;
    f->line_start = ARENA_ARRAY(d->arena, uint32_t, n);
    f->nlines = n;
    n = 1;
    for (uint32_t i = 0; i < len; i++)
        if (f->text[i] == '\n')
            f->line_start[n++] = i + 1;
    return d->nfiles++;
}

const SourceFile *diag_file(const Diags *d, int file)
{
    return file >= 0 && file < d->nfiles ? &d->files[file] : NULL;
}

static Diag *vreport(Diags *d, Severity sev, Span sp, const char *fmt, va_list ap)
{
    bool muted = sev == SEV_WARNING && d->mute_warnings;
    if (muted || (sev == SEV_ERROR && d->errors++ >= DIAG_MAX_ERRORS)) {
        d->dropped += !muted;
        if (!d->sink) {
            d->sink = ARENA_NEW(d->arena, Diag);
        }
        d->sink->notes = NULL;
        d->sink->notes_tail = &d->sink->notes;
        return d->sink;
    }
    if (sev == SEV_WARNING)
        d->warnings++;
    Diag *g = ARENA_NEW(d->arena, Diag);
    g->sev = sev;
    g->span = sp;
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    char *msg = arena_alloc(d->arena, (size_t)(n > 0 ? n : 0) + 1);
    vsnprintf(msg, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    g->msg = msg;
    g->notes_tail = &g->notes;
    *d->tail = g;
    d->tail = &g->next;
    return g;
}

Diag *diag_error(Diags *d, Span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    Diag *g = vreport(d, SEV_ERROR, sp, fmt, ap);
    va_end(ap);
    return g;
}

Diag *diag_warning(Diags *d, Span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    Diag *g = vreport(d, SEV_WARNING, sp, fmt, ap);
    va_end(ap);
    return g;
}

void diag_note(Diags *d, Diag *parent, Span sp, const char *fmt, ...)
{
    if (!parent || parent == d->sink)
        return;
    DiagNote *n = ARENA_NEW(d->arena, DiagNote);
    n->span = sp;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = arena_alloc(d->arena, (size_t)(len > 0 ? len : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)(len > 0 ? len : 0) + 1, fmt, ap);
    va_end(ap);
    n->msg = msg;
    *parent->notes_tail = n;
    parent->notes_tail = &n->next;
}

bool diag_full(Diags *d)
{
    if (d->errors < DIAG_MAX_ERRORS)
        return false;
    d->stopped = true;
    return true;
}

void span_line_col(const Diags *d, Span sp, int *line, int *col)
{
    const SourceFile *f = diag_file(d, sp.file);
    *line = *col = 0;
    if (!f)
        return;
    uint32_t off = sp.off <= f->len ? sp.off : f->len;
    /* the last line that starts at or before off */
    uint32_t lo = 0, hi = f->nlines - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (f->line_start[mid] <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    *line = (int)lo + 1;
    *col = (int)(off - f->line_start[lo]) + 1;
}

Span span_join(Span a, Span b)
{
    if (a.file < 0)
        return b;
    if (b.file != a.file)
        return a;
    uint32_t lo = a.off < b.off ? a.off : b.off;
    uint32_t hi = a.off + a.len > b.off + b.len ? a.off + a.len : b.off + b.len;
    return (Span){a.file, lo, hi - lo};
}

const char *span_text(const Diags *d, Span sp)
{
    const SourceFile *f = diag_file(d, sp.file);
    if (!f || sp.off > f->len)
        return "";
    uint32_t len = sp.len;
    if (len > f->len - sp.off)
        len = f->len - sp.off;
    return arena_strndup(d->arena, f->text + sp.off, len);
}

/* Colours as GCC uses them. */
static const char *sev_name[] = {"error", "warning", "note"};
static const char *sev_color[] = {"\033[1;31m", "\033[1;35m", "\033[1;36m"};

enum { SNIPPET_WIDTH = 160 };

/* Bytes in the UTF-8 character at p (1 for ASCII), or 0 if p starts no valid
 * character before end. */
static int utf8_char(const char *s, const char *end)
{
    const unsigned char *p = (const unsigned char *)s;
    int n = *p < 0x80 ? 1 : *p >= 0xC2 && *p < 0xE0 ? 2 : *p >= 0xE0 && *p < 0xF0 ? 3 : *p >= 0xF0 && *p <= 0xF4 ? 4 : 0;
    if (n == 0 || (const char *)p + n > end)
        return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static void print_snippet(Diags *d, Span sp)
{
    const SourceFile *f = diag_file(d, sp.file);
    if (!f)
        return;
    int line, col;
    span_line_col(d, sp, &line, &col);
    uint32_t off = sp.off <= f->len ? sp.off : f->len;
    uint32_t ls = off - (uint32_t)(col - 1), le = off;
    while (le < f->len && f->text[le] != '\n')
        le++;
    /* Long lines get a window around the caret, so a 1 MB line prints a screen. */
    uint32_t ws = ls, we = le;
    bool cut_left = false, cut_right = false;
    if (le - ls > SNIPPET_WIDTH) {
        if (off > ls + SNIPPET_WIDTH / 2) {
            ws = off - SNIPPET_WIDTH / 2;
            cut_left = true;
        }
        if (we > ws + SNIPPET_WIDTH) {
            we = ws + SNIPPET_WIDTH;
            cut_right = true;
        }
    }
    /* One column per character: a valid UTF-8 sequence prints as itself, an
     * invalid byte as '?', a control byte as ' ', so the caret lines up and
     * garbage cannot drive the terminal. */
    fprintf(d->out, "%5d | %s", line, cut_left ? "..." : "");
    for (uint32_t i = ws; i < we;) {
        unsigned char c = (unsigned char)f->text[i];
        int n = utf8_char(f->text + i, f->text + we);
        if (n > 1)
            fwrite(f->text + i, 1, (size_t)n, d->out);
        else
            fputc(n == 0 ? '?' : (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : c, d->out);
        i += n ? (uint32_t)n : 1;
    }
    fprintf(d->out, "%s\n      | %s", cut_right ? "..." : "", cut_left ? "   " : "");
    for (uint32_t i = ws; i < off;) {
        int n = utf8_char(f->text + i, f->text + we);
        fputc(f->text[i] == '\t' ? '\t' : ' ', d->out);
        i += n ? (uint32_t)n : 1;
    }
    if (d->color)
        fputs("\033[1;32m", d->out);
    fputc('^', d->out);
    uint32_t end = off + (sp.len ? sp.len : 1);
    if (end > we)
        end = we;
    for (uint32_t i = off; i < end;) {
        int n = utf8_char(f->text + i, f->text + end);
        if (i > off)
            fputc('~', d->out);
        i += n ? (uint32_t)n : 1;
    }
    if (d->color)
        fputs("\033[0m", d->out);
    fputc('\n', d->out);
}

static void print_one(Diags *d, Severity sev, Span sp, const char *msg, bool snippet)
{
    const SourceFile *f = diag_file(d, sp.file);
    if (d->color)
        fputs("\033[1m", d->out);
    if (f) {
        int line, col;
        span_line_col(d, sp, &line, &col);
        fprintf(d->out, "%s:%d:%d: ", f->path, line, col);
    } else {
        fputs("spdlc: ", d->out);
    }
    if (d->color)
        fprintf(d->out, "%s%s:\033[0m\033[1m %s\033[0m\n", sev_color[sev], sev_name[sev], msg);
    else
        fprintf(d->out, "%s: %s\n", sev_name[sev], msg);
    if (snippet)
        print_snippet(d, sp);
}

void diag_flush(Diags *d)
{
    for (Diag *g = d->head; g; g = g->next) {
        print_one(d, g->sev, g->span, g->msg, true);
        for (DiagNote *n = g->notes; n; n = n->next) {
            bool own = n->span.file >= 0;
            print_one(d, SEV_NOTE, own ? n->span : g->span, n->msg, own);
        }
    }
    if (d->dropped)
        fprintf(d->out, "spdlc: note: %d more error%s not shown%s\n", d->dropped, d->dropped == 1 ? "" : "s",
                d->stopped ? "; checking stopped early" : "");
    else if (d->stopped)
        fprintf(d->out, "spdlc: note: checking stopped after %d errors\n", DIAG_MAX_ERRORS);
    d->dropped = 0;
    d->stopped = false;
    d->head = NULL;
    d->tail = &d->head;
    fflush(d->out);
}
