/* parse.c - see parse.h. */
#include "parse.h"

#include <stdlib.h>
#include <string.h>

#include "parser.h"

static bool is_open(int k) { return k == TK_LPAREN || k == TK_LBRACKET || k == TK_LBRACE; }
static bool is_close(int k) { return k == TK_RPAREN || k == TK_RBRACKET || k == TK_RBRACE; }

void parse_file(Arena *a, Diags *d, int file, Ast *ast)
{
    ParseState ps = {.arena = a, .d = d, .ast = ast, .file = file};
    Lexer lx;
    lex_init(&lx, d, file);
    void *parser = spdl_lemonAlloc(malloc);
    if (!parser) {
        diag_error(d, NO_SPAN, "out of memory");
        return;
    }
    Token t;
    for (;;) {
        int errs = d->errors;
        /* Past the error cap the lexer and parser keep going (both are
         * linear and drop what they report), so the final note can count
         * every error that was not shown. */
        int k = lex_next(&lx, &t);
        /* A syntax error caused by a bad byte, string or comment the lexer
         * already reported would only repeat it: stay quiet for this token
         * and the next. */
        ps.quiet = d->errors > errs ? 2 : ps.quiet > 0 ? ps.quiet - 1 : 0;
        if (is_open(k)) {
            if (ps.depth == PARSE_MAX_NESTING) {
                Diag *g = diag_error(d, t.span, "brackets nested more than %d deep", PARSE_MAX_NESTING);
                diag_note(d, g, NO_SPAN, "split the expression with `let`");
                ps.stop = true;
                break;
            }
            ps.open[ps.depth++] = t;
        } else if (is_close(k)) {
            /* Pop to the matching bracket: error recovery may have
             * discarded the closers of brackets opened since. */
            int open = k == TK_RPAREN ? TK_LPAREN : k == TK_RBRACKET ? TK_LBRACKET : TK_LBRACE;
            int i = ps.depth - 1;
            while (i >= 0 && ps.open[i].kind != open)
                i--;
            if (i >= 0)
                ps.depth = i;
        } else if (k == TK_SEMI) {
            /* ';' only ends a statement inside braces: a '(' or '[' still
             * open here was left behind by an error. */
            while (ps.depth > 0 && ps.open[ps.depth - 1].kind != TK_LBRACE)
                ps.depth--;
        }
        spdl_lemon(parser, k, t, &ps);
        if (k == 0 && ps.failed && !ps.eof_reported) {
            /* Lemon stays silent for three tokens after an error; an input
             * that ends that soon is still unfinished: say so. */
            parse_syntax_error(&ps, 0, t);
        }
        if (k == 0 || ps.stop)
            break;
        ps.prev = t;
    }
    spdl_lemonFree(parser, free);
}

static const char *describe(ParseState *ps, int kind, Token t)
{
    if (kind == TK_IDENT || kind == TK_NUMBER)
        return arena_printf(ps->arena, "%s '%s'", lex_kind_name(kind), span_text(ps->d, t.span));
    if (kind == TK_STRING)
        return arena_printf(ps->arena, "%s", span_text(ps->d, t.span));
    if (kind == TK_DERIV)
        return arena_printf(ps->arena, "'%s'", span_text(ps->d, t.span));
    if (kind >= TK_MODEL && spdl_lemonFallback(kind) == 0)
        return arena_printf(ps->arena, "'%s'", lex_kind_name(kind));
    if (spdl_lemonFallback(kind))
        return arena_printf(ps->arena, "'%s'", lex_kind_name(kind));
    return lex_kind_name(kind);
}

void parse_syntax_error(ParseState *ps, int kind, Token t)
{
    if (ps->stop || ps->quiet)
        return;
    if (kind == 0) {
        ps->eof_reported = true;
        Diag *g = diag_error(ps->d, t.span, "unexpected end of input");
        if (ps->depth > 0) {
            Token o = ps->open[ps->depth - 1];
            diag_note(ps->d, g, o.span, "to close this '%s'", span_text(ps->d, o.span));
        } else if (ps->prev.kind && ps->prev.kind != TK_SEMI && ps->prev.kind != TK_RBRACE) {
            diag_note(ps->d, g, NO_SPAN, "the last declaration needs a ';'");
        }
        return;
    }
    Diag *g = diag_error(ps->d, t.span, "unexpected %s", describe(ps, kind, t));
    Token p = ps->prev;
    if (p.kind && p.kind != TK_SEMI && p.kind != TK_LBRACE && p.kind != TK_RBRACE && t.line > p.line)
        diag_note(ps->d, g, (Span){p.span.file, p.span.off + p.span.len, 0},
                  "is a ';' missing at the end of this line?");
    else if (kind == TK_DERIV)
        diag_note(ps->d, g, NO_SPAN, "equations like 'dy/dt = ...' belong inside a flow block");
}

Expr *parse_expr(ParseState *ps, Expr *e)
{
    if (e->depth > PARSE_MAX_DEPTH && !ps->stop) {
        Diag *g = diag_error(ps->d, e->op_span, "expression more than %d levels deep", PARSE_MAX_DEPTH);
        diag_note(ps->d, g, NO_SPAN, "split it into parts with `let`");
        ps->stop = true;
    }
    return e;
}

void parse_stack_overflow(ParseState *ps)
{
    Diag *g = diag_error(ps->d, ps->prev.span, "expression nested too deeply");
    diag_note(ps->d, g, NO_SPAN, "split the expression with `let`");
    ps->stop = true;
}
