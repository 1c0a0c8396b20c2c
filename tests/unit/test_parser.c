/* test_parser.c - every construct of the grammar, checked through the AST
 * dump; precedence; spans; error recovery and the nesting limits. */
#include "unit.h"

/* Parses src, requires no errors, and compares the AST dump. */
static void expect_ast(const char *src, const char *dump)
{
    Unit u;
    unit_init(&u);
    int errors = unit_parse(&u, src);
    cr_assert_eq(errors, 0, "errors in\n%s\n%s", src, unit_diags(&u));
    cr_assert_str_eq(unit_dump(&u), dump);
    unit_free(&u);
}

/* The dump of one expression, parsed as a top-level let. */
static void expect_expr(const char *expr, const char *dump)
{
    char src[512], want[512];
    snprintf(src, sizeof src, "let t = %s;", expr);
    snprintf(want, sizeof want, "let t = %s\n", dump);
    expect_ast(src, want);
}

Test(parser, empty_input)
{
    expect_ast("", "");
    expect_ast("  // nothing\n/* at all */\n", "");
}

Test(parser, import_let_def_scheme)
{
    expect_ast("import \"std/schemes.spn\";\n"
               "let width = 8;\n"
               "def affine(A, u, b) = A * u + b;\n"
               "scheme midpoint { c = [0, 1/2]; a = [[0, 0], [1/2, 0]]; b = [0, 1]; }\n",
               "import \"std/schemes.spn\"\n"
               "let width = 8\n"
               "def affine(A, u, b) = ((A * u) + b)\n"
               "scheme midpoint\n"
               "  c = [0, (1 / 2)]\n"
               "  a = [[0, 0], [(1 / 2), 0]]\n"
               "  b = [0, 1]\n");
}

Test(parser, model_declarations)
{
    expect_ast("model m {\n"
               "    input  x : R[1, 8, 8];\n"
               "    label  c : class[10];\n"
               "    target t : R[3];\n"
               "    group  C4 acts on x;\n"
               "    group  Z(8) acts on x;\n"
               "    state  h : R[4] = pad(x, 4);\n"
               "    param  W : R[2, 8] where norm(W) <= 4;\n"
               "    param  K : R[8, 8] per layer where norm(K) <= 0.5;\n"
               "    param  S : skew[4];\n"
               "    param  Q : orth[4] per layer;\n"
               "    param  L : lu[4];\n"
               "    param  k0 : lift[C4, 1 -> 4, 3];\n"
               "    param  k : gconv[C4, 4 -> 4, 3] per layer;\n"
               "    let    y = W * h;\n"
               "    output p = softmax(y);\n"
               "    loss   cross_entropy(p, c) + 1e-4 * smooth(K);\n"
               "}\n",
               "model m\n"
               "  input x : R[1, 8, 8]\n"
               "  label c : class[10]\n"
               "  target t : R[3]\n"
               "  group C4 acts on x\n"
               "  group Z(8) acts on x\n"
               "  state h : R[4] = pad(x, 4)\n"
               "  param W : R[2, 8] where norm(W) <= 4\n"
               "  param K : R[8, 8] per layer where norm(K) <= 0.5\n"
               "  param S : skew[4]\n"
               "  param Q : orth[4] per layer\n"
               "  param L : lu[4]\n"
               "  param k0 : lift[C4, 1 -> 4, 3]\n"
               "  param k : gconv[C4, 4 -> 4, 3] per layer\n"
               "  let y = (W * h)\n"
               "  output p = softmax(y)\n"
               "  loss = (cross_entropy(p, c) + (0.0001 * smooth(K)))\n");
}

Test(parser, flow_and_repeat_blocks)
{
    expect_ast("model m {\n"
               "    flow over [0, 5] in 32 layers by verlet {\n"
               "        steps learned;\n"
               "        let g = K * z;\n"
               "        dy/dt = tanh(g + b);\n"
               "        dz/dt = -tanh(K' * y + b);\n"
               "    }\n"
               "    flow over [0, 2] in 16 layers by rk4 { steps learned <= 0.25; du/dt = -u; }\n"
               "    repeat 8 layers {\n"
               "        v = v * exp(tanh(S * u + s)) + (T * u + t);\n"
               "        u = u + tanh(P * v + q);\n"
               "    }\n"
               "}\n",
               "model m\n"
               "  flow over [0, 5] in 32 layers by verlet\n"
               "    steps learned\n"
               "    let g = (K * z)\n"
               "    equation y = tanh((g + b))\n"
               "    equation z = (-tanh(((K' * y) + b)))\n"
               "  flow over [0, 2] in 16 layers by rk4\n"
               "    steps learned <= 0.25\n"
               "    equation u = (-u)\n"
               "  repeat 8 layers\n"
               "    assign v = ((v * exp(tanh(((S * u) + s)))) + ((T * u) + t))\n"
               "    assign u = (u + tanh(((P * v) + q)))\n");
}

Test(parser, every_require_form)
{
    expect_ast("model m { require stable, lipschitz <= 1, nonexpansive; require invertible, equivariant(C4), "
               "invariant(D4); }",
               "model m\n"
               "  require stable, lipschitz <= 1, nonexpansive\n"
               "  require invertible, equivariant(C4), invariant(D4)\n");
}

Test(parser, precedence_and_associativity)
{
    expect_expr("a + b * c", "(a + (b * c))");
    expect_expr("a * b + c", "((a * b) + c)");
    expect_expr("a - b - c", "((a - b) - c)");
    expect_expr("a / b / c", "((a / b) / c)");
    expect_expr("a ^ b ^ c", "(a ^ (b ^ c))");
    expect_expr("-a ^ 2", "(-(a ^ 2))");
    expect_expr("-a * b", "((-a) * b)");
    expect_expr("- - a", "(-(-a))");
    expect_expr("a * -b", "(a * (-b))");
    expect_expr("(a + b) * c", "((a + b) * c)");
    expect_expr("1/6", "(1 / 6)");
    expect_expr("2 * x ^ 2", "(2 * (x ^ 2))");
}

Test(parser, postfix_operators)
{
    expect_expr("K'", "K'");
    expect_expr("K''", "K''");
    expect_expr("-K' * y", "((-K') * y)");
    expect_expr("(A - A')'", "(A - A')'");
    expect_expr("f()", "f()");
    expect_expr("f(a, b, c)", "f(a, b, c)");
    expect_expr("gconv'(k, h)", "gconv'(k, h)");
    expect_expr("x[1]", "x[1]");
    expect_expr("x[0:2]", "x[(0 : 2)]");
    expect_expr("A[1, 0:2]", "A[1, (0 : 2)]");
    expect_expr("x[0:1]'", "x[(0 : 1)]'");
    expect_expr("mean_space(gpool(h))", "mean_space(gpool(h))");
    expect_expr("[[1, 2], [3, 4]]", "[[1, 2], [3, 4]]");
    expect_expr("I", "I");
}

Test(parser, keywords_that_read_as_names)
{
    /* %fallback lets these keywords name things where only a name fits. */
    expect_ast("let over = 1; let in = 2; let by = 3; let on = 4; let steps = 5; let learned = 6; "
               "let layer = 7; let layers = 8; let per = 9; let acts = 10;",
               "let over = 1\nlet in = 2\nlet by = 3\nlet on = 4\nlet steps = 5\nlet learned = 6\n"
               "let layer = 7\nlet layers = 8\nlet per = 9\nlet acts = 10\n");
}

Test(parser, spans_point_at_operators_and_whole_expressions)
{
    Unit u;
    unit_init(&u);
    cr_assert_eq(unit_parse(&u, "let t = (a + bb) * c;"), 0);
    Expr *e = u.ast.items->value;
    cr_assert_eq(e->kind, E_MUL);
    cr_assert_str_eq(span_text(&u.d, e->span), "(a + bb) * c");
    cr_assert_str_eq(span_text(&u.d, e->op_span), "*");
    cr_assert_eq(e->lhs->kind, E_ADD);
    cr_assert_str_eq(span_text(&u.d, e->lhs->span), "(a + bb)");
    cr_assert_str_eq(span_text(&u.d, e->lhs->op_span), "+");
    cr_assert_str_eq(span_text(&u.d, e->lhs->rhs->span), "bb");
    cr_assert_eq(e->depth, 3);
    cr_assert_str_eq(span_text(&u.d, u.ast.items->span), "let t = (a + bb) * c;");
    unit_free(&u);
}

Test(parser, derivative_names_the_state)
{
    Unit u;
    unit_init(&u);
    cr_assert_eq(unit_parse(&u, "model m { flow over [0, 1] in 2 layers by euler { dhidden/dt = -hidden; } }"), 0);
    Decl *flow = u.ast.items->decls.head;
    cr_assert_eq(flow->kind, D_FLOW);
    Decl *eq = flow->body.head;
    cr_assert_eq(eq->kind, D_EQUATION);
    cr_assert_str_eq(eq->name.s, "hidden");
    cr_assert_str_eq(span_text(&u.d, eq->name.span), "hidden");
    unit_free(&u);
}

/* Parses src and returns the diagnostics; *errors gets the count. */
static const char *parse_errors(Unit *u, const char *src, int *errors)
{
    *errors = unit_parse(u, src);
    return unit_diags(u);
}

Test(parser, missing_semicolon)
{
    Unit u;
    unit_init(&u);
    int n;
    const char *out = parse_errors(&u, "model m {\n    input x : R[4]\n    label c : class[3];\n}\n", &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out, "t.spn:3:5: error: unexpected 'label'\n"
                          "    3 |     label c : class[3];\n"
                          "      |     ^~~~~\n"
                          "t.spn:2:19: note: is a ';' missing at the end of this line?\n"
                          "    2 |     input x : R[4]\n"
                          "      |                   ^\n");
    unit_free(&u);
}

Test(parser, unexpected_end_of_input_names_the_open_bracket)
{
    Unit u;
    unit_init(&u);
    int n;
    const char *out = parse_errors(&u, "model m {\n    output p = f(x", &n);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(out, "t.spn:2:19: error: unexpected end of input\n"
                          "    2 |     output p = f(x\n"
                          "      |                   ^\n"
                          "t.spn:2:17: note: to close this '('\n"
                          "    2 |     output p = f(x\n"
                          "      |                 ^\n");
    unit_free(&u);
    unit_init(&u);
    out = parse_errors(&u, "let a = 1", &n);
    cr_assert_eq(n, 1);
    cr_assert(strstr(out, "t.spn:1:10: error: unexpected end of input\n"), "%s", out);
    cr_assert(strstr(out, "note: the last declaration needs a ';'\n"), "%s", out);
    unit_free(&u);
}

Test(parser, recovery_reports_every_statement_once)
{
    Unit u;
    unit_init(&u);
    int n;
    const char *out = parse_errors(&u,
                                   "model m {\n"
                                   "    input x : R[4] R;\n"     /* error 1 */
                                   "    let a = (1 + ;\n"        /* error 2 */
                                   "    let b = 2;\n"            /* fine */
                                   "    flow over [0, 1] in 2 layers by euler {\n"
                                   "        du/dt = * u;\n"      /* error 3, inside a block */
                                   "    }\n"
                                   "    let c = 3 3;\n"          /* error 4 */
                                   "}\n"
                                   "let d = 4;\n",
                                   &n);
    cr_assert_eq(n, 4, "%s", out);
    cr_assert(strstr(out, "t.spn:2:20: error: unexpected identifier 'R'\n"), "%s", out);
    cr_assert(strstr(out, "t.spn:3:18: error: unexpected ';'\n"), "%s", out);
    cr_assert(strstr(out, "t.spn:6:17: error: unexpected '*'\n"), "%s", out);
    cr_assert(strstr(out, "t.spn:8:15: error: unexpected number '3'\n"), "%s", out);
    /* the declarations after each error were kept */
    const char *dump = unit_dump(&u);
    cr_assert(strstr(dump, "  let b = 2\n"), "%s", dump);
    cr_assert(strstr(dump, "let d = 4\n"), "%s", dump);
    unit_free(&u);
}

Test(parser, a_lexical_error_does_not_also_give_a_syntax_error)
{
    Unit u;
    unit_init(&u);
    int n;
    const char *out = parse_errors(&u, "let a = 1 @ 2;\nlet b = \"x;\nlet c = 3;\n", &n);
    cr_assert_eq(n, 2, "%s", out);
    cr_assert(strstr(out, "t.spn:1:11: error: unexpected character '@'\n"), "%s", out);
    cr_assert(strstr(out, "t.spn:2:9: error: unterminated string\n"), "%s", out);
    unit_free(&u);
}

Test(parser, bracket_nesting_limit)
{
    char src[1200] = "let t = ";
    for (int i = 0; i < 300; i++)
        strcat(src, "(");
    strcat(src, "1");
    Unit u;
    unit_init(&u);
    int n;
    const char *out = parse_errors(&u, src, &n);
    cr_assert_eq(n, 1, "%s", out);
    cr_assert_str_eq(unit_first_line(&u), "t.spn:1:265: error: brackets nested more than 256 deep");
    unit_free(&u);

    /* exactly 256 open brackets is fine */
    char ok[1200] = "let t = ";
    for (int i = 0; i < 256; i++)
        strcat(ok, "(");
    strcat(ok, "1");
    for (int i = 0; i < 256; i++)
        strcat(ok, ")");
    strcat(ok, ";");
    unit_init(&u);
    cr_assert_eq(unit_parse(&u, ok), 0, "%s", unit_diags(&u));
    unit_free(&u);
}

Test(parser, expression_depth_limit)
{
    /* x + x + ... is a left spine as deep as the chain is long */
    size_t cap = 8 + 4 * 1100 + 4;
    char *src = malloc(cap);
    strcpy(src, "let t = x");
    for (int i = 0; i < 999; i++)
        strcat(src, " + x");
    strcat(src, ";");
    Unit u;
    unit_init(&u);
    cr_assert_eq(unit_parse(&u, src), 0, "1000 levels are allowed: %s", unit_diags(&u));
    cr_assert_eq(u.ast.items->value->depth, 1000);
    unit_free(&u);

    strcpy(src, "let t = x");
    for (int i = 0; i < 1000; i++)
        strcat(src, " + x");
    strcat(src, ";");
    unit_init(&u);
    cr_assert_eq(unit_parse(&u, src), 1);
    cr_assert_str_eq(unit_first_line(&u), "t.spn:1:4007: error: expression more than 1000 levels deep");
    unit_free(&u);
    free(src);
}

Test(parser, parser_stack_limit)
{
    char *src = malloc(10100);
    strcpy(src, "let t = ");
    memset(src + 8, '-', 10000);
    strcpy(src + 10008, "x;");
    Unit u;
    unit_init(&u);
    cr_assert_eq(unit_parse(&u, src), 1);
    cr_assert(strstr(unit_first_line(&u), "error: expression nested too deeply"), "%s", unit_first_line(&u));
    unit_free(&u);
    free(src);
}

Test(parser, two_parsers_are_independent)
{
    /* the parser is reentrant: parse two files into two ASTs */
    Unit u;
    unit_init(&u);
    Ast a = {0}, b = {0};
    int fa = diag_add_file(&u.d, "a.spn", "let a = 1;", 10, NULL);
    int fb = diag_add_file(&u.d, "b.spn", "let b = 2; let c = 3;", 21, NULL);
    parse_file(&u.arena, &u.d, fa, &a);
    parse_file(&u.arena, &u.d, fb, &b);
    cr_assert_eq(u.d.errors, 0);
    cr_assert_str_eq(a.items->name.s, "a");
    cr_assert_null(a.items->next);
    cr_assert_str_eq(b.items->next->name.s, "c");
    cr_assert_eq(b.items->file, fb);
    unit_free(&u);
}

Test(parser, recovery_forgets_brackets_it_skipped)
{
    /* the '(' on line 2 is abandoned by recovery at ';': the open bracket at
     * the end of input is the model's '{' */
    Unit u;
    unit_init(&u);
    int n;
    const char *out = parse_errors(&u, "model m {\n    let a = (1 + ;\n    let b = [2, (3;\n", &n);
    cr_assert_eq(n, 3, "%s", out);
    cr_assert(strstr(out, "t.spn:4:1: error: unexpected end of input\n"), "%s", out);
    cr_assert(strstr(out, "t.spn:1:9: note: to close this '{'\n"), "%s", out);
    unit_free(&u);
}

Test(parser, require_with_a_sized_group)
{
    expect_ast("model m { require equivariant(Z(8)), invariant(S(2 * n)); }",
               "model m\n  require equivariant(Z(8)), invariant(S((2 * n)))\n");
}
