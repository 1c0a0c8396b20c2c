/* test_lexer.c - every token kind with its line, column and length; the
 * derivative token; numbers; comments; strings; bad bytes. */
#include "unit.h"

typedef struct Want {
    int kind;
    int line, col, len;
    const char *text;
} Want;

/* Lexes src and checks the tokens one by one against want (ending with the
 * end-of-input token, kind 0). */
static void expect_tokens(const char *src, const Want *want, int n)
{
    Unit u;
    unit_init(&u);
    Lexer lx;
    lex_init(&lx, &u.d, unit_text(&u, src));
    for (int i = 0; i < n; i++) {
        Token t;
        int k = lex_next(&lx, &t);
        cr_assert_eq(k, t.kind);
        cr_assert_eq(t.kind, want[i].kind, "token %d: kind %s, expected %s", i, lex_kind_name(t.kind),
                     lex_kind_name(want[i].kind));
        cr_assert_eq(t.line, want[i].line, "token %d (%s): line %d, expected %d", i, want[i].text, t.line,
                     want[i].line);
        cr_assert_eq(t.col, want[i].col, "token %d (%s): col %d, expected %d", i, want[i].text, t.col, want[i].col);
        cr_assert_eq((int)t.span.len, want[i].len, "token %d (%s): length %u, expected %d", i, want[i].text,
                     t.span.len, want[i].len);
        if (want[i].text)
            cr_assert_str_eq(span_text(&u.d, t.span), want[i].text);
    }
    cr_assert_eq(u.d.errors, 0, "unexpected diagnostics: %s", unit_diags(&u));
    unit_free(&u);
}

Test(lexer, every_punctuation_token)
{
    const char *src = "<= -> + - * / ^ ' ( ) [ ] { } , ; : =";
    const Want w[] = {
        {TK_LE, 1, 1, 2, "<="},       {TK_ARROW, 1, 4, 2, "->"},     {TK_PLUS, 1, 7, 1, "+"},
        {TK_MINUS, 1, 9, 1, "-"},     {TK_STAR, 1, 11, 1, "*"},      {TK_SLASH, 1, 13, 1, "/"},
        {TK_CARET, 1, 15, 1, "^"},    {TK_TICK, 1, 17, 1, "'"},      {TK_LPAREN, 1, 19, 1, "("},
        {TK_RPAREN, 1, 21, 1, ")"},   {TK_LBRACKET, 1, 23, 1, "["},  {TK_RBRACKET, 1, 25, 1, "]"},
        {TK_LBRACE, 1, 27, 1, "{"},   {TK_RBRACE, 1, 29, 1, "}"},    {TK_COMMA, 1, 31, 1, ","},
        {TK_SEMI, 1, 33, 1, ";"},     {TK_COLON, 1, 35, 1, ":"},     {TK_EQ, 1, 37, 1, "="},
        {0, 1, 38, 0, ""},
    };
    expect_tokens(src, w, sizeof w / sizeof w[0]);
}

Test(lexer, every_keyword)
{
    static const struct { const char *word; int kind; } kw[] = {
        {"model", TK_MODEL},   {"input", TK_INPUT},     {"label", TK_LABEL},   {"target", TK_TARGET},
        {"state", TK_STATE},   {"param", TK_PARAM},     {"per", TK_PER},       {"layer", TK_LAYER},
        {"layers", TK_LAYERS}, {"where", TK_WHERE},     {"flow", TK_FLOW},     {"over", TK_OVER},
        {"in", TK_IN},         {"by", TK_BY},           {"repeat", TK_REPEAT}, {"output", TK_OUTPUT},
        {"loss", TK_LOSS},     {"require", TK_REQUIRE}, {"import", TK_IMPORT}, {"scheme", TK_SCHEME},
        {"group", TK_GROUP},   {"acts", TK_ACTS},       {"on", TK_ON},         {"let", TK_LET},
        {"def", TK_DEF},       {"steps", TK_STEPS},     {"learned", TK_LEARNED},
    };
    enum { N = sizeof kw / sizeof kw[0] };
    /* one keyword per line, indented by its index */
    char src[2048] = "";
    Want w[N + 1];
    for (int i = 0; i < N; i++) {
        size_t n = strlen(src);
        snprintf(src + n, sizeof src - n, "%*s%s\n", i, "", kw[i].word);
        w[i] = (Want){kw[i].kind, i + 1, i + 1, (int)strlen(kw[i].word), kw[i].word};
        cr_assert_str_eq(lex_kind_name(kw[i].kind), kw[i].word);
    }
    w[N] = (Want){0, N + 1, 1, 0, ""};
    expect_tokens(src, w, N + 1);
}

Test(lexer, identifiers_numbers_strings_derivatives)
{
    const char *src = "x _a9 Wout\n  3 2.5 .5 7. 1e3 2.5E-3 6e+2\n\t\"std/schemes.spn\" dy/dt dh2/dt";
    const Want w[] = {
        {TK_IDENT, 1, 1, 1, "x"},          {TK_IDENT, 1, 3, 3, "_a9"},
        {TK_IDENT, 1, 7, 4, "Wout"},       {TK_NUMBER, 2, 3, 1, "3"},
        {TK_NUMBER, 2, 5, 3, "2.5"},       {TK_NUMBER, 2, 9, 2, ".5"},
        {TK_NUMBER, 2, 12, 2, "7."},       {TK_NUMBER, 2, 15, 3, "1e3"},
        {TK_NUMBER, 2, 19, 6, "2.5E-3"},   {TK_NUMBER, 2, 26, 4, "6e+2"},
        {TK_STRING, 3, 2, 17, "\"std/schemes.spn\""},
        {TK_DERIV, 3, 20, 5, "dy/dt"},     {TK_DERIV, 3, 26, 6, "dh2/dt"},
        {0, 3, 32, 0, ""},
    };
    expect_tokens(src, w, sizeof w / sizeof w[0]);
}

Test(lexer, number_values)
{
    static const struct { const char *src; double v; } cases[] = {
        {"0", 0}, {"3", 3}, {"2.5", 2.5}, {".5", 0.5}, {"7.", 7}, {"1e3", 1000}, {"2.5E-3", 0.0025},
        {"6e+2", 600}, {"1e-4", 1e-4}, {"1.7976931348623157e308", 1.7976931348623157e308},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Unit u;
        unit_init(&u);
        Lexer lx;
        lex_init(&lx, &u.d, unit_text(&u, cases[i].src));
        Token t;
        cr_assert_eq(lex_next(&lx, &t), TK_NUMBER, "%s", cases[i].src);
        cr_assert_eq(t.num, cases[i].v, "%s lexed as %.17g", cases[i].src, t.num);
        cr_assert_eq(lex_next(&lx, &t), 0, "%s is one token", cases[i].src);
        unit_free(&u);
    }
}

Test(lexer, an_exponent_needs_digits)
{
    /* "1e" is the number 1 and the name e; "1e+" adds a '+'. */
    const Want w[] = {
        {TK_NUMBER, 1, 1, 1, "1"}, {TK_IDENT, 1, 2, 1, "e"}, {TK_NUMBER, 1, 4, 1, "2"},
        {TK_IDENT, 1, 5, 1, "e"},  {TK_PLUS, 1, 6, 1, "+"},  {0, 1, 7, 0, ""},
    };
    expect_tokens("1e 2e+", w, sizeof w / sizeof w[0]);
}

Test(lexer, derivative_versus_division)
{
    /* dy/dt is one token; a fraction stays three tokens and is folded later;
     * spaces, a longer tail or a missing 'd' make ordinary division. */
    const Want w[] = {
        {TK_NUMBER, 1, 1, 1, "1"},  {TK_SLASH, 1, 2, 1, "/"},    {TK_NUMBER, 1, 3, 1, "6"},
        {TK_DERIV, 1, 5, 5, "dy/dt"},
        {TK_IDENT, 1, 11, 2, "dy"}, {TK_SLASH, 1, 14, 1, "/"},   {TK_IDENT, 1, 16, 2, "dt"},
        {TK_IDENT, 1, 19, 2, "dy"}, {TK_SLASH, 1, 21, 1, "/"},   {TK_IDENT, 1, 22, 3, "dtx"},
        {TK_IDENT, 1, 26, 1, "y"},  {TK_SLASH, 1, 27, 1, "/"},   {TK_IDENT, 1, 28, 2, "dt"},
        {TK_IDENT, 1, 31, 1, "d"},  {TK_SLASH, 1, 32, 1, "/"},   {TK_IDENT, 1, 33, 2, "dt"},
        {TK_DERIV, 1, 36, 6, "ddt/dt"},
        {TK_IDENT, 1, 43, 1, "a"},  {TK_SLASH, 1, 44, 1, "/"},   {TK_IDENT, 1, 45, 1, "b"},
        {TK_DERIV, 1, 47, 5, "du/dt"},
        {0, 1, 52, 0, ""},
    };
    /* the last derivative ends the file: the lookahead sees the NUL sentinel */
    expect_tokens("1/6 dy/dt dy / dt dy/dtx y/dt d/dt ddt/dt a/b du/dt", w, sizeof w / sizeof w[0]);
}

Test(lexer, derivative_followed_by_punctuation)
{
    const Want w[] = {
        {TK_DERIV, 1, 1, 5, "dz/dt"}, {TK_EQ, 1, 6, 1, "="}, {TK_MINUS, 1, 7, 1, "-"},
        {TK_IDENT, 1, 8, 1, "z"},     {TK_SEMI, 1, 9, 1, ";"}, {0, 1, 10, 0, ""},
    };
    expect_tokens("dz/dt=-z;", w, sizeof w / sizeof w[0]);
}

Test(lexer, comments_and_line_counting)
{
    const char *src = "a // to the end of the line\n"
                      "b /* one\n"
                      "two\n"
                      "   three */ c\n"
                      "/* /* not nested */ d\r\n"
                      "\te";
    const Want w[] = {
        {TK_IDENT, 1, 1, 1, "a"}, {TK_IDENT, 2, 1, 1, "b"}, {TK_IDENT, 4, 13, 1, "c"},
        {TK_IDENT, 5, 21, 1, "d"}, {TK_IDENT, 6, 2, 1, "e"}, {0, 6, 3, 0, ""},
    };
    expect_tokens(src, w, sizeof w / sizeof w[0]);
}

Test(lexer, transpose_after_names_and_brackets)
{
    const Want w[] = {
        {TK_IDENT, 1, 1, 1, "K"}, {TK_TICK, 1, 2, 1, "'"}, {TK_STAR, 1, 4, 1, "*"},
        {TK_LPAREN, 1, 6, 1, "("}, {TK_IDENT, 1, 7, 1, "A"}, {TK_RPAREN, 1, 8, 1, ")"},
        {TK_TICK, 1, 9, 1, "'"}, {TK_IDENT, 1, 11, 5, "gconv"}, {TK_TICK, 1, 16, 1, "'"},
        {TK_LPAREN, 1, 17, 1, "("}, {TK_RPAREN, 1, 18, 1, ")"}, {0, 1, 19, 0, ""},
    };
    expect_tokens("K' * (A)' gconv'()", w, sizeof w / sizeof w[0]);
}

/* Lexes all of src and returns the diagnostics. */
static const char *lex_all(Unit *u, const char *src, int len, int *ntokens)
{
    int f = diag_add_file(&u->d, "t.spn", src, (uint32_t)len, NULL);
    Lexer lx;
    lex_init(&lx, &u->d, f);
    Token t;
    int n = 0;
    while (lex_next(&lx, &t))
        n++;
    if (ntokens)
        *ntokens = n;
    return unit_diags(u);
}

Test(lexer, bad_bytes_are_reported_and_skipped)
{
    static const struct { const char *src; const char *first; } cases[] = {
        {"a @ b", "t.spn:1:3: error: unexpected character '@'"},
        {"a $ b", "t.spn:1:3: error: unexpected character '$'"},
        {"a # b", "t.spn:1:3: error: unexpected character '#'"},
        {"a < b", "t.spn:1:3: error: unexpected character '<'"},
        {"a > b", "t.spn:1:3: error: unexpected character '>'"},
        {"a . b", "t.spn:1:3: error: unexpected character '.'"},
        {"a \x01 b", "t.spn:1:3: error: unexpected control character 0x01"},
        {"a \x7f b", "t.spn:1:3: error: unexpected control character 0x7f"},
        {"a \xff b", "t.spn:1:3: error: invalid UTF-8 byte 0xff"},
        {"a \xc3 b", "t.spn:1:3: error: invalid UTF-8 byte 0xc3"},
        {"a \xc3\xa9 b", "t.spn:1:3: error: non-ASCII character '\xc3\xa9' in program text"},
        {"a \xe2\x88\x82 b", "t.spn:1:3: error: non-ASCII character '\xe2\x88\x82' in program text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Unit u;
        unit_init(&u);
        int n;
        const char *out = lex_all(&u, cases[i].src, (int)strlen(cases[i].src), &n);
        cr_assert_eq(u.d.errors, 1, "case %zu: %s", i, out);
        cr_assert_eq(n, 2, "case %zu: the bad byte is skipped, a and b remain", i);
        cr_assert(strncmp(out, cases[i].first, strlen(cases[i].first)) == 0, "case %zu: got\n%s", i, out);
        unit_free(&u);
    }
}

Test(lexer, nul_byte_is_a_bad_byte_not_the_end)
{
    Unit u;
    unit_init(&u);
    int n;
    const char *out = lex_all(&u, "a\0b", 3, &n);
    cr_assert_eq(n, 2, "lexing continues after the NUL");
    cr_assert(strstr(out, "t.spn:1:2: error: NUL byte in program text\n"), "%s", out);
    unit_free(&u);
}

Test(lexer, unterminated_comment)
{
    Unit u;
    unit_init(&u);
    int n;
    const char *src = "a\n  /* never\nclosed";
    const char *out = lex_all(&u, src, (int)strlen(src), &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out, "t.spn:2:3: error: unterminated comment\n"
                          "    2 |   /* never\n"
                          "      |   ^~\n"
                          "t.spn:2:3: note: a '/*' comment ends with '*/'\n");
    unit_free(&u);
}

Test(lexer, unterminated_string_stops_at_the_line_end)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "import \"abc;\nx");
    Lexer lx;
    lex_init(&lx, &u.d, f);
    Token t;
    cr_assert_eq(lex_next(&lx, &t), TK_IMPORT);
    cr_assert_eq(lex_next(&lx, &t), TK_STRING);
    cr_assert_str_eq(span_text(&u.d, t.span), "\"abc;");
    cr_assert_eq(lex_next(&lx, &t), TK_IDENT);
    cr_assert_eq(t.line, 2);
    cr_assert(strstr(unit_diags(&u), "t.spn:1:8: error: unterminated string\n"));
    unit_free(&u);
}

Test(lexer, numbers_out_of_range)
{
    Unit u;
    unit_init(&u);
    int f = unit_text(&u, "1e999 1e308");
    Lexer lx;
    lex_init(&lx, &u.d, f);
    Token t;
    cr_assert_eq(lex_next(&lx, &t), TK_NUMBER);
    cr_assert_eq(t.num, 0, "an overflowing literal is reported and reads as 0");
    cr_assert_eq(lex_next(&lx, &t), TK_NUMBER);
    cr_assert_eq(t.num, 1e308);
    cr_assert_str_eq(unit_first_line(&u), "t.spn:1:1: error: number does not fit in a double");
    unit_free(&u);

    char big[700];
    memset(big, '1', 600);
    big[600] = '\0';
    unit_init(&u);
    lex_init(&lx, &u.d, unit_text(&u, big));
    cr_assert_eq(lex_next(&lx, &t), TK_NUMBER);
    cr_assert_eq(t.span.len, 600);
    cr_assert_str_eq(unit_first_line(&u), "t.spn:1:1: error: number literal is too long (600 characters)");
    unit_free(&u);
}

Test(lexer, kind_names_for_messages)
{
    cr_assert_str_eq(lex_kind_name(0), "end of input");
    cr_assert_str_eq(lex_kind_name(TK_IDENT), "identifier");
    cr_assert_str_eq(lex_kind_name(TK_NUMBER), "number");
    cr_assert_str_eq(lex_kind_name(TK_STRING), "string");
    cr_assert_str_eq(lex_kind_name(TK_DERIV), "derivative");
    cr_assert_str_eq(lex_kind_name(TK_LE), "'<='");
    cr_assert_str_eq(lex_kind_name(TK_TICK), "'''");
    cr_assert_str_eq(lex_kind_name(TK_SEMI), "';'");
}

Test(lexer, columns_count_bytes_and_tabs_as_one)
{
    const Want w[] = {
        {TK_IDENT, 1, 3, 1, "a"}, {TK_IDENT, 2, 2, 1, "b"}, {0, 2, 3, 0, ""},
    };
    expect_tokens("\t\ta\r\n\tb", w, sizeof w / sizeof w[0]);
}
