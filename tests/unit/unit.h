/* unit.h - fixtures shared by the Criterion unit tests: the real arena,
 * diagnostics (into a memory stream, so tests read the exact text), lexer,
 * parser, resolver and the embedded standard library. */
#ifndef SPDL_UNIT_H
#define SPDL_UNIT_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "lexer.h"
#include "parse.h"
#include "parser.h"
#include "resolve.h"
#include "source.h"
#include "tableau.h"

extern const char spdl_prelude_text[];
extern const unsigned spdl_prelude_len;

typedef struct Unit {
    Arena arena;
    Diags d;
    FILE *out;          /* diagnostics go here (open_memstream) */
    char *buf;
    size_t len;
    Ast ast;
    int file;           /* the file under test */
} Unit;

static inline void unit_init(Unit *u)
{
    memset(u, 0, sizeof *u);
    arena_init(&u->arena);
    u->out = open_memstream(&u->buf, &u->len);
    cr_assert_not_null(u->out);
    diag_init(&u->d, &u->arena, u->out);
}

static inline void unit_free(Unit *u)
{
    fclose(u->out);
    free(u->buf);
    arena_free(&u->arena);
}

/* Registers text as file "t.spn" and returns its index. */
static inline int unit_text(Unit *u, const char *text)
{
    u->file = diag_add_file(&u->d, "t.spn", text, (uint32_t)strlen(text), NULL);
    return u->file;
}

/* Everything reported so far, as spdlc would print it (no colour). */
static inline const char *unit_diags(Unit *u)
{
    diag_flush(&u->d);
    fflush(u->out);
    return u->buf ? u->buf : "";
}

/* Parses text (no prelude); returns the number of errors. */
static inline int unit_parse(Unit *u, const char *text)
{
    parse_file(&u->arena, &u->d, unit_text(u, text), &u->ast);
    return u->d.errors;
}

/* The AST dump of everything parsed so far. */
static inline const char *unit_dump(Unit *u)
{
    static char *dump;
    size_t n;
    free(dump);
    dump = NULL;
    FILE *f = open_memstream(&dump, &n);
    ast_dump(f, &u->ast);
    fclose(f);
    return dump;
}

/* Loads the embedded std/schemes.spn as spdlc does, then parses and
 * resolves text. Returns the model, or NULL if there were errors. */
static inline Model *unit_model(Unit *u, const char *text)
{
    int pf = diag_add_file(&u->d, "<builtin>/std/schemes.spn", spdl_prelude_text, spdl_prelude_len, NULL);
    parse_file(&u->arena, &u->d, pf, &u->ast);
    for (Item *it = u->ast.items; it; it = it->next)
        it->prelude = true;
    parse_file(&u->arena, &u->d, unit_text(u, text), &u->ast);
    if (u->d.errors)
        return NULL;
    return resolve(&u->arena, &u->d, &u->ast, u->file, NULL).model;
}

/* The first line of the first diagnostic, without the "t.spn:L:C: " prefix
 * check: tests assert the whole line. */
static inline const char *unit_first_line(Unit *u)
{
    static char line[512];
    const char *s = unit_diags(u);
    size_t n = strcspn(s, "\n");
    if (n >= sizeof line)
        n = sizeof line - 1;
    memcpy(line, s, n);
    line[n] = '\0';
    return line;
}

#endif
