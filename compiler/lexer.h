/* lexer.h - tokens of the .spn language.
 *
 * The lexer returns the parser's own token codes (TK_* from the Lemon-made
 * parse.h), so there is one numbering of token kinds. Bad bytes, unterminated
 * comments and strings are reported here and skipped, so the parser only
 * ever sees well-formed tokens. */
#ifndef SPDL_LEXER_H
#define SPDL_LEXER_H

#include "diag.h"

typedef struct Token {
    int kind;          /* TK_* ; 0 at end of input */
    Span span;
    int line, col;     /* 1-based; col counts bytes */
    double num;        /* TK_NUMBER */
} Token;

typedef struct Lexer {
    Diags *d;
    int file;
    const unsigned char *src, *cur, *marker, *tok, *lim, *line_start;
    int line;
} Lexer;

void lex_init(Lexer *lx, Diags *d, int file);
/* Fills *t with the next token and returns its kind (0 at the end). */
int  lex_next(Lexer *lx, Token *t);
/* A readable name for a token kind, for dumps and messages ("'('", "number"). */
const char *lex_kind_name(int kind);

#endif
