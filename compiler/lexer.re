/* lexer.re - the .spn lexer (re2c). See lexer.h.
 *
 * The whole file is in memory with a NUL sentinel at text[len]; a NUL before
 * the end is an ordinary (bad) byte. `dy/dt` is one derivative token, so a
 * flow equation cannot be confused with a division; `1/6` stays three tokens
 * and is folded later. Keywords are looked up after an identifier matches,
 * which keeps the automaton small. */
#include "lexer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"

void lex_init(Lexer *lx, Diags *d, int file)
{
    const SourceFile *f = diag_file(d, file);
    memset(lx, 0, sizeof *lx);
    lx->d = d;
    lx->file = file;
    lx->src = lx->cur = lx->line_start = (const unsigned char *)f->text;
    lx->lim = lx->src + f->len;
    lx->line = 1;
}

static Span here(const Lexer *lx)
{
    return (Span){lx->file, (uint32_t)(lx->tok - lx->src), (uint32_t)(lx->cur - lx->tok)};
}

#define KW(w, k) {w, sizeof w - 1, k}
static const struct { const char *word; size_t len; int kind; } keywords[] = {
    KW("model", TK_MODEL),     KW("input", TK_INPUT),     KW("label", TK_LABEL),
    KW("target", TK_TARGET),   KW("state", TK_STATE),     KW("param", TK_PARAM),
    KW("per", TK_PER),         KW("layer", TK_LAYER),     KW("layers", TK_LAYERS),
    KW("where", TK_WHERE),     KW("flow", TK_FLOW),       KW("over", TK_OVER),
    KW("in", TK_IN),           KW("by", TK_BY),           KW("repeat", TK_REPEAT),
    KW("output", TK_OUTPUT),   KW("loss", TK_LOSS),       KW("require", TK_REQUIRE),
    KW("import", TK_IMPORT),   KW("scheme", TK_SCHEME),   KW("group", TK_GROUP),
    KW("acts", TK_ACTS),       KW("on", TK_ON),           KW("let", TK_LET),
    KW("def", TK_DEF),         KW("steps", TK_STEPS),     KW("learned", TK_LEARNED),
};
#undef KW

static int keyword_or_ident(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (keywords[i].len == n && keywords[i].word[0] == s[0] && memcmp(keywords[i].word, s, n) == 0)
            return keywords[i].kind;
    return TK_IDENT;
}

/* Length of the UTF-8 sequence starting at p, or 0 if it is malformed. */
static int utf8_len(const unsigned char *p, const unsigned char *lim)
{
    int n = *p >= 0xF0 && *p <= 0xF4 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC2 && *p < 0xE0 ? 2 : 0;
    if (*p >= 0xF5)
        n = 0;
    if (n == 0 || p + n > lim)
        return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static void bad_byte(Lexer *lx)
{
    unsigned char c = *lx->tok;
    if (c >= 0x80) {
        int n = utf8_len(lx->tok, lx->lim);
        if (n) {
            lx->cur = lx->tok + n;
            Diag *g = diag_error(lx->d, here(lx), "non-ASCII character '%.*s' in program text", n,
                                 (const char *)lx->tok);
            diag_note(lx->d, g, NO_SPAN, "identifiers are ASCII letters, digits and '_'");
        } else {
            diag_error(lx->d, here(lx), "invalid UTF-8 byte 0x%02x", c);
        }
    } else if (c == 0) {
        diag_error(lx->d, here(lx), "NUL byte in program text");
    } else if (c < 0x20 || c == 0x7f) {
        diag_error(lx->d, here(lx), "unexpected control character 0x%02x", c);
    } else {
        diag_error(lx->d, here(lx), "unexpected character '%c'", c);
    }
}

int lex_next(Lexer *lx, Token *t)
{
    const unsigned char *comment_start;
loop:
    lx->tok = lx->cur;
    t->line = lx->line;
    t->col = (int)(lx->tok - lx->line_start) + 1;
    t->num = 0;
#define TOKEN(k) do { t->kind = (k); t->span = here(lx); return t->kind; } while (0)
    /*!re2c
        re2c:api:style = free-form;
        re2c:define:YYCTYPE = "unsigned char";
        re2c:define:YYCURSOR = "lx->cur";
        re2c:define:YYMARKER = "lx->marker";
        re2c:define:YYLIMIT = "lx->lim";
        re2c:yyfill:enable = 0;
        re2c:eof = 0;

        id     = [a-zA-Z_][a-zA-Z0-9_]*;
        digits = [0-9]+;
        exp    = [eE] [+-]? digits;
        number = (digits ("." [0-9]*)? | "." digits) exp?;

        $                { t->kind = 0; t->span = (Span){lx->file, (uint32_t)(lx->lim - lx->src), 0}; return 0; }
        "\n"             { lx->line++; lx->line_start = lx->cur; goto loop; }
        [ \t\r\f\v]+     { goto loop; }
        "//" [^\n\x00]*  { goto loop; }
        "/*"             { comment_start = lx->tok; goto block_comment; }

        number           {
                             errno = 0;
                             char buf[512];
                             size_t n = (size_t)(lx->cur - lx->tok);
                             if (n >= sizeof buf) {
                                 diag_error(lx->d, here(lx), "number literal is too long (%zu characters)", n);
                                 t->num = 0;
                             } else {
                                 memcpy(buf, lx->tok, n);
                                 buf[n] = '\0';
                                 t->num = strtod(buf, NULL);
                                 if (isinf(t->num)) {
                                     Diag *g = diag_error(lx->d, here(lx), "number does not fit in a double");
                                     diag_note(lx->d, g, NO_SPAN, "the largest double is about 1.8e308");
                                     t->num = 0;
                                 } else if (t->num == 0 && errno == ERANGE) {
                                     Diag *g = diag_error(lx->d, here(lx), "number is too small for a double: it would be 0");
                                     diag_note(lx->d, g, NO_SPAN, "the smallest positive double is about 4.9e-324; write 0 if 0 is meant");
                                 }
                             }
                             TOKEN(TK_NUMBER);
                         }
        "d" id "/dt"     { TOKEN(TK_DERIV); }
        "d" id "/dt" [a-zA-Z0-9_]+ {
                             /* dy/dtx is dy / dtx: keep the name before the '/' */
                             lx->cur = memchr(lx->tok, '/', (size_t)(lx->cur - lx->tok));
                             TOKEN(keyword_or_ident(lx->tok, (size_t)(lx->cur - lx->tok)));
                         }
        id               { TOKEN(keyword_or_ident(lx->tok, (size_t)(lx->cur - lx->tok))); }
        ["] [^"\n\x00]* ["] { TOKEN(TK_STRING); }
        ["]              {
                             while (lx->cur < lx->lim && *lx->cur != '\n' && *lx->cur != '"')
                                 lx->cur++;
                             Diag *g = diag_error(lx->d, here(lx), "unterminated string");
                             diag_note(lx->d, g, NO_SPAN, "close it with '\"' on the same line");
                             TOKEN(TK_STRING);
                         }

        "<="  { TOKEN(TK_LE); }
        "->"  { TOKEN(TK_ARROW); }
        "+"   { TOKEN(TK_PLUS); }
        "-"   { TOKEN(TK_MINUS); }
        "*"   { TOKEN(TK_STAR); }
        ".*"  { TOKEN(TK_DOTSTAR); }
        "/"   { TOKEN(TK_SLASH); }
        "^"   { TOKEN(TK_CARET); }
        "'"   { TOKEN(TK_TICK); }
        "("   { TOKEN(TK_LPAREN); }
        ")"   { TOKEN(TK_RPAREN); }
        "["   { TOKEN(TK_LBRACKET); }
        "]"   { TOKEN(TK_RBRACKET); }
        "{"   { TOKEN(TK_LBRACE); }
        "}"   { TOKEN(TK_RBRACE); }
        ","   { TOKEN(TK_COMMA); }
        ";"   { TOKEN(TK_SEMI); }
        ":"   { TOKEN(TK_COLON); }
        "="   { TOKEN(TK_EQ); }

        *     { bad_byte(lx); goto loop; }
    */
block_comment:
    for (;;) {
        if (lx->cur >= lx->lim) {
            lx->tok = comment_start;
            lx->cur = comment_start + 2;
            Diag *g = diag_error(lx->d, here(lx), "unterminated comment");
            diag_note(lx->d, g, NO_SPAN, "a '/*' comment ends with '*/'");
            lx->cur = lx->lim;
            goto loop;
        }
        if (lx->cur[0] == '*' && lx->cur + 1 < lx->lim && lx->cur[1] == '/') {
            lx->cur += 2;
            goto loop;
        }
        if (*lx->cur == '\n') {
            lx->line++;
            lx->line_start = lx->cur + 1;
        }
        lx->cur++;
    }
#undef TOKEN
}

const char *lex_kind_name(int kind)
{
    switch (kind) {
    case 0: return "end of input";
    case TK_IDENT: return "identifier";
    case TK_NUMBER: return "number";
    case TK_STRING: return "string";
    case TK_DERIV: return "derivative";
    case TK_LE: return "'<='";
    case TK_ARROW: return "'->'";
    case TK_PLUS: return "'+'";
    case TK_MINUS: return "'-'";
    case TK_STAR: return "'*'";
    case TK_DOTSTAR: return "'.*'";
    case TK_SLASH: return "'/'";
    case TK_CARET: return "'^'";
    case TK_TICK: return "'''";
    case TK_LPAREN: return "'('";
    case TK_RPAREN: return "')'";
    case TK_LBRACKET: return "'['";
    case TK_RBRACKET: return "']'";
    case TK_LBRACE: return "'{'";
    case TK_RBRACE: return "'}'";
    case TK_COMMA: return "','";
    case TK_SEMI: return "';'";
    case TK_COLON: return "':'";
    case TK_EQ: return "'='";
    }
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (keywords[i].kind == kind)
            return keywords[i].word;
    return "token";
}
