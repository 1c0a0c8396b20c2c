/* diag.h - source files and GCC-style diagnostics.
 *
 * Every token, AST node and IR instruction carries a Span into a SourceFile
 * registered here. Diagnostics are collected as {severity, span, message,
 * notes} and printed as `file:line:col: error: message`, the source line and
 * a caret underline; line and column are computed only when printed. */
#ifndef SPDL_DIAG_H
#define SPDL_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"

typedef struct Span {
    int file;          /* index into Diags.files; -1 for "no location" */
    uint32_t off, len; /* byte range in the file's text */
} Span;

#define NO_SPAN ((Span){-1, 0, 0})

typedef struct SourceFile {
    const char *path;  /* as the user named it, or as the import resolved it */
    const char *text;  /* NUL-terminated copy; len excludes the NUL */
    uint32_t len;
    const char *real;  /* canonical path, for import-once */
    uint32_t *line_start; /* offset of each line, for line:col in O(log n) */
    uint32_t nlines;
} SourceFile;

typedef enum { SEV_ERROR, SEV_WARNING, SEV_NOTE } Severity;

typedef struct DiagNote {
    struct DiagNote *next;
    Span span;         /* NO_SPAN: printed under the parent's location */
    const char *msg;
} DiagNote;

typedef struct Diag {
    struct Diag *next;
    Severity sev;
    Span span;
    const char *msg;
    DiagNote *notes, **notes_tail;
} Diag;

enum { DIAG_MAX_ERRORS = 20 };

typedef struct Diags {
    Arena *arena;
    SourceFile *files;
    int nfiles, capfiles;
    Diag *head, **tail;
    Diag *sink;        /* absorbs notes of diagnostics past the cap */
    int errors, warnings, dropped;
    bool stopped;      /* a phase gave up early because of the cap */
    bool color;
    bool mute_warnings; /* drop warnings (a phase run again, as for the levels of spdlc build --levels) */
    FILE *out;
} Diags;

void diag_init(Diags *d, Arena *a, FILE *out);
/* Registers text (copied, NUL-terminated) and returns the file index. */
int  diag_add_file(Diags *d, const char *path, const char *text, uint32_t len, const char *real);
const SourceFile *diag_file(const Diags *d, int file);

Diag *diag_error(Diags *d, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
Diag *diag_warning(Diags *d, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void  diag_note(Diags *d, Diag *parent, Span sp, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* True once DIAG_MAX_ERRORS errors were reported: phases should stop early.
 * A true answer is remembered, so the final note can say checking stopped. */
bool  diag_full(Diags *d);
/* Prints and forgets everything collected so far. */
void  diag_flush(Diags *d);

void  span_line_col(const Diags *d, Span sp, int *line, int *col);
Span  span_join(Span a, Span b);
/* The spanned text, for messages ("'foo'"); arena copy. */
const char *span_text(const Diags *d, Span sp);

#endif
