/* parse.h - drives the Lemon parser with tokens from the lexer.
 *
 * One loop, as in SQLite's tokenize.c: lex a token, check nesting, hand it to
 * the parser. The nesting limit turns 100,000 open parentheses into one
 * diagnostic instead of a stack overflow anywhere downstream. */
#ifndef SPDL_PARSE_H
#define SPDL_PARSE_H

#include "ast.h"

/* Brackets open at once, and levels of one expression tree (a chain
 * a + b + c + ... is as deep as it is long): every later phase walks trees
 * recursively, so this bounds their stack use. */
enum { PARSE_MAX_NESTING = 256, PARSE_MAX_DEPTH = 1000 };

typedef struct ParseState {
    Arena *arena;
    Diags *d;
    Ast *ast;
    int file;
    bool stop;          /* unrecoverable: stack overflow or nesting limit */
    int quiet;          /* tokens left whose syntax errors follow a lexical error */
    bool failed;        /* the input ended while recovering from an error */
    bool eof_reported;  /* "unexpected end of input" was reported */
    Token prev;         /* last token handed to the parser */
    Token open[PARSE_MAX_NESTING]; /* unclosed brackets, for "to close" notes */
    int depth;
} ParseState;

/* Parses one registered file and appends its items to ast. */
void parse_file(Arena *a, Diags *d, int file, Ast *ast);

/* Called from the grammar. */
void parse_syntax_error(ParseState *ps, int kind, Token t);
void parse_stack_overflow(ParseState *ps);
/* Returns e, or reports an expression deeper than PARSE_MAX_DEPTH and stops. */
Expr *parse_expr(ParseState *ps, Expr *e);

/* Lemon's entry points (generated in parser.c). */
void *spdl_lemonAlloc(void *(*alloc)(size_t));
void  spdl_lemon(void *p, int kind, Token t, ParseState *ps);
void  spdl_lemonFree(void *p, void (*dealloc)(void *));
void  spdl_lemonInit(void *p);
void  spdl_lemonFinalize(void *p);
int   spdl_lemonFallback(int kind);

#endif
