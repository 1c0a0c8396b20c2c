/* test_resolve.c - shape rules (matvec, matmul, elementwise, scalar, the
 * identity I, per-channel bias, slices, pad, join, transpose, builtins),
 * constant folding, and the model the resolver builds. */
#include "unit.h"

/* A model with these parameters in scope; `let t = EXPR;` is resolved and
 * its type (or the first error) is returned as text. */
static const char *shape_of(const char *expr)
{
    static char result[600];
    char src[2048];
    snprintf(src, sizeof src,
             "model m {\n"
             "    input x : R[4];\n"
             "    label c : class[3];\n"
             "    param A : R[4, 4];\n"
             "    param B : R[4, 3];\n"
             "    param v : R[4];\n"
             "    param w : R[3];\n"
             "    param T : R[4, 2, 2];\n"
             "    param S : skew[4];\n"
             "    let t = %s;\n"
             "    param W : R[3, 4];\n"
             "    output p = softmax(W * x);\n"
             "    loss cross_entropy(p, c);\n"
             "}\n",
             expr);
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, src);
    if (!m) {
        const char *line = unit_first_line(&u);
        const char *msg = strstr(line, "error: ");
        snprintf(result, sizeof result, "%s", msg ? msg : line);
    } else {
        Sym *s = NULL;
        for (int i = 0; i < m->ndecls; i++)
            if (m->decls[i]->kind == D_LET && !strcmp(m->decls[i]->name.s, "t"))
                s = m->decls[i]->sem;
        cr_assert_not_null(s);
        snprintf(result, sizeof result, "%s", type_str(&u.arena, s->type));
    }
    unit_free(&u);
    return result;
}

#define SHAPE(expr, want) cr_expect_str_eq(shape_of(expr), want, "shape of %s", expr)

Test(shapes, matrix_vector)
{
    SHAPE("A * x", "R[4]");
    SHAPE("B' * x", "R[3]");
    SHAPE("B * w", "R[4]");
    SHAPE("A * (A * x)", "R[4]");
    SHAPE("B * x", "error: cannot multiply R[4,3] by R[4]");
    SHAPE("B' * w", "error: cannot multiply R[3,4] by R[3]");
}

Test(shapes, matrix_matrix)
{
    SHAPE("A * B", "R[4,3]");
    SHAPE("B' * A", "R[3,4]");
    SHAPE("B' * B", "R[3,3]");
    SHAPE("B * A", "error: cannot multiply R[4,3] by R[4,4]");
}

Test(shapes, elementwise)
{
    SHAPE("x * v", "R[4]");
    SHAPE("x + v", "R[4]");
    SHAPE("x - v", "R[4]");
    SHAPE("x / v", "R[4]");
    SHAPE("A * A", "R[4,4]");
    SHAPE("x * w", "error: cannot multiply R[4] by R[3]");
    SHAPE("x + w", "error: cannot add R[4] and R[3]");
    SHAPE("x - w", "error: cannot subtract R[3] from R[4]");
    SHAPE("x / w", "error: cannot divide R[4] by R[3]");
    SHAPE("A + B", "error: cannot add R[4,4] and R[4,3]");
}

Test(shapes, scalars)
{
    SHAPE("2 * x", "R[4]");
    SHAPE("x * 2", "R[4]");
    SHAPE("x / 2", "R[4]");
    SHAPE("x + 1", "R[4]");
    SHAPE("1 - A", "R[4,4]");
    SHAPE("x ^ 2", "R[4]");
    SHAPE("sum(x) * v", "R[4]");
    SHAPE("x[1] * A", "R[4,4]");
    SHAPE("x ^ v", "error: the exponent must be a number known at compile time");
    SHAPE("x / 0", "error: division by zero");
}

Test(shapes, identity_takes_its_size_from_the_context)
{
    SHAPE("(A - A' - 0.1 * I) * x", "R[4]");
    SHAPE("I * x", "R[4]");
    SHAPE("A + I", "R[4,4]");
    SHAPE("I - A", "R[4,4]");
    SHAPE("I * B", "R[4,3]");
    SHAPE("B * I", "R[4,3]");
    SHAPE("2 * I * x", "R[4]");
    SHAPE("I' * x", "R[4]");
    SHAPE("B + I", "error: cannot add R[4,3] and I: I is square");
    SHAPE("I", "error: cannot tell the size of I here");
    SHAPE("I * T", "error: cannot multiply I by R[4,2,2]");
}

Test(shapes, identity_node_is_sized)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "model m { input x : R[3]; label c : class[3]; param A : R[3, 3];\n"
                              "  output p = softmax((A - I) * x); loss cross_entropy(p, c); }");
    cr_assert_not_null(m, "%s", unit_diags(&u));
    Expr *e = m->output->expr;         /* softmax(...) */
    Expr *mul = e->args.head;          /* (A - I) * x */
    Expr *id = mul->lhs->rhs;          /* I */
    cr_assert_eq(id->kind, E_NAME);
    cr_assert_str_eq(id->name.s, "I");
    cr_assert(!id->type.identity);
    cr_assert_str_eq(type_str(&u.arena, id->type), "R[3,3]");
    unit_free(&u);
}

Test(shapes, per_channel_bias)
{
    SHAPE("T + v", "R[4,2,2]");
    SHAPE("v + T", "R[4,2,2]");
    SHAPE("T - v", "R[4,2,2]");
    SHAPE("T + T", "R[4,2,2]");
    SHAPE("T + w", "error: cannot add R[4,2,2] and R[3]");
}

Test(shapes, slices_and_indices)
{
    SHAPE("x[0:2]", "R[2]");
    SHAPE("x[3:4]", "R[1]");
    SHAPE("x[1]", "scalar");
    SHAPE("A[0:2]", "R[2,4]");
    SHAPE("A[1]", "R[4]");
    SHAPE("A[1, 0:2]", "R[2]");
    SHAPE("A[0:2, 1:4]", "R[2,3]");
    SHAPE("T[0:2, 1]", "R[2,2]");
    SHAPE("x[0:5]", "error: a slice bound must be an integer in [0, 4], not 5");
    SHAPE("x[4]", "error: an index must be an integer in [0, 3], not 4");
    SHAPE("x[2:2]", "error: empty slice 2:2");
    SHAPE("x[3:1]", "error: empty slice 3:1");
    SHAPE("x[0.5:2]", "error: a slice bound must be an integer in [0, 4], not 0.5");
    SHAPE("x[0:2, 1]", "error: 2 indices for R[4]");
    SHAPE("x[v]", "error: an index must be a number known at compile time");
    SHAPE("sum(x)[0]", "error: cannot index scalar");
}

Test(shapes, pad)
{
    SHAPE("pad(x, 8)", "R[8]");
    SHAPE("pad(x, 4)", "R[4]");
    SHAPE("pad(T, 6)", "R[6,2,2]");
    SHAPE("pad(x, 2)", "error: pad to 2 is smaller than its input R[4]");
    SHAPE("pad(x, 2.5)", "error: the padded size must be an integer in [1, 100000000], not 2.5");
    SHAPE("pad(sum(x), 2)", "error: pad needs a tensor, got a scalar");
}

Test(shapes, join)
{
    SHAPE("join(x, v)", "R[8]");
    SHAPE("join(x, w)", "R[7]");
    SHAPE("join(x, v, w)", "R[11]");
    SHAPE("join(A, B')", "R[7,4]");
    SHAPE("join(T, T)", "R[8,2,2]");
    SHAPE("join(A, B)", "error: cannot join R[4,4] and R[4,3]: all but the first axis must agree");
    SHAPE("join(x, A)", "error: cannot join R[4] and R[4,4]: all but the first axis must agree");
}

Test(shapes, transpose)
{
    SHAPE("B'", "R[3,4]");
    SHAPE("B''", "R[4,3]");
    SHAPE("S'", "R[4,4]");
    SHAPE("x'", "error: cannot transpose R[4]: only matrices have a transpose");
    SHAPE("T'", "error: cannot transpose R[4,2,2]: only matrices have a transpose");
}

Test(shapes, builtins)
{
    SHAPE("tanh(A * x + v)", "R[4]");
    SHAPE("relu(T)", "R[4,2,2]");
    SHAPE("sigmoid(x)", "R[4]");
    SHAPE("softplus(x)", "R[4]");
    SHAPE("leaky_relu(x, 0.1)", "R[4]");
    SHAPE("exp(A)", "R[4,4]");
    SHAPE("softmax(x)", "R[4]");
    SHAPE("sum(A)", "scalar");
    SHAPE("mean(x)", "scalar");
    SHAPE("mean_space(T)", "R[4]");
    SHAPE("softmax(A)", "error: softmax needs a vector, got R[4,4]");
    SHAPE("leaky_relu(x, 2)", "error: the slope of leaky_relu must be in (0, 1), not 2");
    SHAPE("tanh(x, x)", "error: 'tanh' takes 1 argument, but 2 were given");
    SHAPE("join(x)", "error: 'join' takes 2 to 16 arguments, but 1 was given");
    SHAPE("tahn(x)", "error: unknown function 'tahn'");
    SHAPE("x(1)", "error: 'x' is not a function");
    SHAPE("smooth(A)", "error: smooth(...) is a regulariser: it belongs in the loss");
    SHAPE("c + 1", "error: a class label is not a number; use it in cross_entropy or mse");
}

Test(shapes, structured_parameters_read_as_matrices)
{
    SHAPE("S * x", "R[4]");
    SHAPE("S + A", "R[4,4]");
}

Test(constants, folding)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "let half = 1/2;\n"
                              "model m { input x : R[4]; label c : class[3]; param W : R[3, 4];\n"
                              "  let k = 2 ^ 3 - half * 4 + -1;\n"
                              "  output p = softmax(W * (k * x)); loss cross_entropy(p, c); }");
    cr_assert_not_null(m, "%s", unit_diags(&u));
    Sym *k = m->decls[3]->sem;
    cr_assert_str_eq(k->name, "k");
    cr_assert_eq(k->kind, S_CONST);
    cr_assert_eq(k->value, 5.0);
    unit_free(&u);
}

Test(constants, overflow_is_an_error)
{
    cr_expect_str_eq(shape_of("1e308 * 10 * x"), "error: constant overflows a double");
    cr_expect_str_eq(shape_of("(1 / 0) * x"), "error: division by zero");
}

Test(model, structure_sizes_and_offsets)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "model m {\n"
                              "  input x : R[4]; label c : class[3];\n"
                              "  state u : R[4] = x;\n"
                              "  state z : R[4] = 0;\n"
                              "  param S : skew[4];\n"
                              "  param Q : orth[4];\n"
                              "  param L : lu[4];\n"
                              "  param K : R[4, 4] per layer where norm(K) <= 2;\n"
                              "  flow over [0, 2] in 8 layers by verlet {\n"
                              "    steps learned <= 0.5;\n"
                              "    du/dt = tanh(K * z + S * u);\n"
                              "    dz/dt = -tanh(K' * u + Q * L * z);\n"
                              "  }\n"
                              "  param W : R[3, 4];\n"
                              "  output p = softmax(W * u);\n"
                              "  loss cross_entropy(p, c);\n"
                              "  require stable, lipschitz <= 3;\n"
                              "}\n");
    cr_assert_not_null(m, "%s", unit_diags(&u));
    cr_assert_eq(m->nin, 4);
    cr_assert_eq(m->nclass, 3);
    cr_assert_eq(m->ntarget, 1);
    cr_assert_eq(m->nstates, 2);
    cr_assert_eq(m->state_size, 8);
    cr_assert_eq(m->states[1]->offset, 4);
    /* S skew 6, Q orth 6 (norm 1), L lu 16, K 16 x 8 layers, dt 8, W 12 */
    cr_assert_eq(m->nparams, 6);
    cr_assert_str_eq(m->params[0]->name, "S");
    cr_assert_eq(m->params[0]->kind, PK_SKEW);
    cr_assert_eq(m->params[0]->size, 6);
    cr_assert_eq(m->params[1]->kind, PK_ORTH);
    cr_assert(m->params[1]->has_norm);
    cr_assert_eq(m->params[1]->norm_bound, 1);
    cr_assert_eq(m->params[2]->kind, PK_LU);
    cr_assert_eq(m->params[2]->size, 16);
    cr_assert_eq(m->params[3]->layers, 8);
    cr_assert_eq(m->params[3]->size, 128);
    cr_assert_eq(m->params[3]->norm_bound, 2);
    cr_assert_eq(m->params[3]->offset, 28);
    cr_assert_str_eq(m->params[4]->name, "dt");
    cr_assert_eq(m->params[4]->kind, PK_STEPS);
    cr_assert_eq(m->params[4]->size, 8);
    cr_assert_eq(m->params[5]->offset, 164);
    cr_assert_eq(m->theta_size, 176);
    cr_assert_eq(m->nblocks, 1);
    Block *b = m->blocks[0];
    cr_assert_eq(b->scheme->kind, SCHEME_VERLET);
    cr_assert_eq(b->layers, 8);
    cr_assert_eq(b->h, 0.25);
    cr_assert(b->learned && b->has_hmax && b->hmax == 0.5);
    cr_assert_eq(b->nvars, 2);
    cr_assert_str_eq(b->vars[0]->name, "u");
    cr_assert_eq(m->nreqs, 2);
    cr_assert_eq(m->reqs[1].kind, REQ_LIPSCHITZ);
    cr_assert_eq(m->reqs[1].bound, 3);
    cr_assert_eq(m->out_shape.rank, 1);
    cr_assert_eq(m->nout, 3);
    unit_free(&u);
}

Test(model, group_field_types)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "model m {\n"
                              "  input x : R[1, 8, 8]; label c : class[10];\n"
                              "  group C4 acts on x;\n"
                              "  param k0 : lift[C4, 1 -> 4, 3];\n"
                              "  param b0 : R[4];\n"
                              "  state h : R[4, 4, 8, 8] = relu(lift(k0, x) + b0);\n"
                              "  param k : gconv[C4, 4 -> 4, 3] per layer;\n"
                              "  flow over [0, 1] in 4 layers by euler { dh/dt = -gconv'(k, relu(gconv(k, h))); }\n"
                              "  param W : R[10, 4];\n"
                              "  output p = softmax(W * mean_space(gpool(h)));\n"
                              "  loss cross_entropy(p, c);\n"
                              "  require invariant(C4);\n"
                              "}\n");
    cr_assert_not_null(m, "%s", unit_diags(&u));
    cr_assert_eq(m->ngroups, 1);
    cr_assert_eq(m->groups[0]->order, 4);
    cr_assert_eq(m->states[0]->field, FIELD_REGULAR);
    cr_assert_eq(m->params[0]->kind, PK_LIFT);
    cr_assert_eq(m->params[0]->nstore, 4 * 1 * 3 * 3);
    cr_assert_eq(m->params[2]->kind, PK_GCONV);
    cr_assert_eq(m->params[2]->nstore, 4 * 4 * 4 * 3 * 3);
    cr_assert_eq(m->output->type.field, FIELD_TRIVIAL);
    cr_assert(m->reqs[0].group == m->groups[0]);
    unit_free(&u);
}

Test(model, def_expansion_is_a_tree)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "def sq(u) = u * u;\n"
                              "model m { input x : R[4]; label c : class[4];\n"
                              "  output p = softmax(sq(sq(x))); loss cross_entropy(p, c); }");
    cr_assert_not_null(m, "%s", unit_diags(&u));
    Expr *e = m->output->expr->args.head;   /* sq(sq(x)) expanded */
    cr_assert_eq(e->kind, E_MUL);
    cr_assert_eq(e->lhs->kind, E_MUL);
    cr_assert_neq(e->lhs, e->rhs, "each use of a parameter is its own copy");
    cr_assert_neq(e->lhs->lhs, e->rhs->lhs);
    cr_assert_str_eq(e->lhs->lhs->name.s, "x");
    unit_free(&u);
}

Test(model, first_error_of_each_kind)
{
    /* (model text, first diagnostic line) for resolver rules not covered by
     * the shape tests; the golden tests pin the full output. */
    static const struct { const char *src, *want; } cases[] = {
        {"model m { input x : R[4]; label c : class[3]; param W : R[3, 4]; output p = softmax(W * y); "
         "loss cross_entropy(p, c); }",
         "t.spn:1:89: error: unknown name 'y'"},
        {"model m { input x : R[4]; input y : R[4]; }", "t.spn:1:27: error: a model has one input"},
        {"model m { input x : R[4]; label c : class[3]; output p = softmax(W * x); param W : R[3, 4]; "
         "loss cross_entropy(p, c); }",
         "t.spn:1:66: error: 'W' is used before its declaration"},
        {"model m { input x : R[4]; state u : R[4] = x; param A : R[4, 4] per layer; flow over [2, 1] in 4 layers "
         "by euler { du/dt = A * u; } output p = u; loss sum(p); }",
         "t.spn:1:87: error: empty time interval [2, 1]"},
        {"model m { input x : R[4]; state u : R[4] = x; repeat 3.5 layers { u = u + 1; } output p = u; loss sum(p); }",
         "t.spn:1:54: error: the number of layers must be an integer in [1, 1000000], not 3.5"},
        {"model m { input x : R[4]; output p = x; loss sum(p); require lipschitz <= 0; }",
         "t.spn:1:75: error: the Lipschitz bound must be positive, not 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Unit u;
        unit_init(&u);
        cr_expect_null(unit_model(&u, cases[i].src), "case %zu", i);
        cr_expect_str_eq(unit_first_line(&u), cases[i].want, "case %zu", i);
        unit_free(&u);
    }
}
