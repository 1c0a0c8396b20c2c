/* test_tableau.c - tableau checks, computed orders and stability
 * polynomials: the std/schemes.spn tableaus, other textbook schemes, and
 * broken tableaus with the condition they violate. */
#include <math.h>

#include "unit.h"

/* A scheme from rows of numbers: c[s], a[s][s] row-major, b[s]. */
static Scheme make(int s, const double *c, const double *a, const double *b)
{
    Scheme sc;
    memset(&sc, 0, sizeof sc);
    sc.name = "t";
    sc.kind = SCHEME_RK;
    sc.stages = s;
    for (int i = 0; i < s; i++) {
        sc.c[i] = c[i];
        sc.b[i] = b[i];
        for (int j = 0; j < s; j++)
            sc.a[i][j] = a[i * s + j];
    }
    return sc;
}

static int order_of(Scheme sc)
{
    char detail[256];
    const char *bad = tableau_check(&sc, detail, sizeof detail);
    cr_assert_null(bad, "unexpected violation: %s (%s)", bad, detail);
    return sc.order;
}

Test(tableau, euler_heun_kutta3_rk4)
{
    double c1[] = {0}, a1[] = {0}, b1[] = {1};
    cr_assert_eq(order_of(make(1, c1, a1, b1)), 1);

    double c2[] = {0, 1}, a2[] = {0, 0, 1, 0}, b2[] = {0.5, 0.5};
    cr_assert_eq(order_of(make(2, c2, a2, b2)), 2);

    double c3[] = {0, 0.5, 1}, a3[] = {0, 0, 0, 0.5, 0, 0, -1, 2, 0}, b3[] = {1.0 / 6, 2.0 / 3, 1.0 / 6};
    cr_assert_eq(order_of(make(3, c3, a3, b3)), 3);

    double c4[] = {0, 0.5, 0.5, 1};
    double a4[] = {0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0};
    double b4[] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
    cr_assert_eq(order_of(make(4, c4, a4, b4)), 4);
}

Test(tableau, other_textbook_schemes)
{
    /* explicit midpoint and Ralston: order 2 */
    double cm[] = {0, 0.5}, am[] = {0, 0, 0.5, 0}, bm[] = {0, 1};
    cr_assert_eq(order_of(make(2, cm, am, bm)), 2);
    double cr[] = {0, 2.0 / 3}, ar[] = {0, 0, 2.0 / 3, 0}, br[] = {0.25, 0.75};
    cr_assert_eq(order_of(make(2, cr, ar, br)), 2);
    /* Heun's third-order method */
    double ch[] = {0, 1.0 / 3, 2.0 / 3}, ah[] = {0, 0, 0, 1.0 / 3, 0, 0, 0, 2.0 / 3, 0}, bh[] = {0.25, 0, 0.75};
    cr_assert_eq(order_of(make(3, ch, ah, bh)), 3);
    /* Kutta's 3/8 rule: order 4 */
    double c8[] = {0, 1.0 / 3, 2.0 / 3, 1};
    double a8[] = {0, 0, 0, 0, 1.0 / 3, 0, 0, 0, -1.0 / 3, 1, 0, 0, 1, -1, 1, 0};
    double b8[] = {0.125, 0.375, 0.375, 0.125};
    cr_assert_eq(order_of(make(4, c8, a8, b8)), 4);
}

Test(tableau, lower_orders_are_found)
{
    /* consistent but only first order: b weights the first stage only */
    double c[] = {0, 1}, a[] = {0, 0, 1, 0}, b[] = {1, 0};
    cr_assert_eq(order_of(make(2, c, a, b)), 1);
    /* rk4 with b of the trapezoid on its outer stages: order 2, not 3 */
    double c4[] = {0, 0.5, 0.5, 1};
    double a4[] = {0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0};
    double b4[] = {0.5, 0, 0, 0.5};
    cr_assert_eq(order_of(make(4, c4, a4, b4)), 2);
    /* a three-stage scheme meeting Sbc^2 = 1/3 but not Sbac = 1/6 */
    double c3[] = {0, 0.5, 1}, a3[] = {0, 0, 0, 0.5, 0, 0, 0, 1, 0}, b3[] = {1.0 / 6, 2.0 / 3, 1.0 / 6};
    cr_assert_eq(order_of(make(3, c3, a3, b3)), 2);
}

Test(tableau, stability_polynomials)
{
    double c4[] = {0, 0.5, 0.5, 1};
    double a4[] = {0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0};
    double b4[] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
    Scheme rk4 = make(4, c4, a4, b4);
    order_of(rk4);
    char detail[256];
    cr_assert_null(tableau_check(&rk4, detail, sizeof detail));
    double want[] = {1, 1, 0.5, 1.0 / 6, 1.0 / 24};
    for (int k = 0; k <= 4; k++)
        cr_assert_float_eq(rk4.poly[k], want[k], 1e-15, "R(z) coefficient %d", k);

    double c1[] = {0}, a1[] = {0}, b1[] = {1};
    Scheme eu = make(1, c1, a1, b1);
    cr_assert_null(tableau_check(&eu, detail, sizeof detail));
    cr_assert_eq(eu.poly[0], 1);
    cr_assert_eq(eu.poly[1], 1);
    cr_assert_eq(eu.poly[2], 0);
}

/* The violated condition and its detail for a broken tableau. */
static void expect_violation(Scheme sc, const char *cond, const char *detail)
{
    char buf[256];
    const char *bad = tableau_check(&sc, buf, sizeof buf);
    cr_assert_not_null(bad, "expected '%s' to be violated", cond);
    cr_assert_str_eq(bad, cond);
    cr_assert_str_eq(buf, detail);
}

Test(tableau, broken_tableaus)
{
    double ci[] = {0, 1}, ai[] = {0, 0, 0.5, 0.5}, bi[] = {0.5, 0.5};
    expect_violation(make(2, ci, ai, bi), "explicit (strictly lower-triangular a)",
                     "a[1][1] = 0.5, but an explicit scheme has a[i][j] = 0 for j >= i");
    double cu[] = {0, 1}, au[] = {0, 1, 1, 0}, bu[] = {0.5, 0.5};
    expect_violation(make(2, cu, au, bu), "explicit (strictly lower-triangular a)",
                     "a[0][1] = 1, but an explicit scheme has a[i][j] = 0 for j >= i");
    double cc[] = {0, 0.5}, ac[] = {0, 0, 1, 0}, bc[] = {0.5, 0.5};
    expect_violation(make(2, cc, ac, bc), "c_i = sum_j a_ij", "c[1] = 0.5 but a[1][0] + ... + a[1][1] = 1");
    double c0[] = {0.5}, a0[] = {0}, b0[] = {1};
    expect_violation(make(1, c0, a0, b0), "c_i = sum_j a_ij", "c[0] = 0.5 but a[0][0] + ... + a[0][0] = 0");
    double cb[] = {0, 1}, ab[] = {0, 0, 1, 0}, bb[] = {0.5, 0.4};
    expect_violation(make(2, cb, ab, bb), "order 1: sum_i b_i = 1", "b[0] + ... + b[1] = 0.9; a consistent scheme needs 1");
}

Test(tableau, rounding_within_tolerance_is_accepted)
{
    /* 1/3 written with 16 digits: c_i and sum b agree to 1e-12 */
    double c[] = {0, 0.3333333333333333}, a[] = {0, 0, 0.3333333333333333, 0}, b[] = {0.25, 0.75000000000000001};
    Scheme s = make(2, c, a, b);
    char buf[256];
    cr_assert_null(tableau_check(&s, buf, sizeof buf), "%s", buf);
}

Test(tableau, builtin_partitioned_schemes)
{
    const Scheme *v = tableau_builtin("verlet");
    cr_assert_not_null(v);
    cr_assert_eq(v->kind, SCHEME_VERLET);
    cr_assert_eq(v->order, 2);
    const Scheme *se = tableau_builtin("symplectic_euler");
    cr_assert_not_null(se);
    cr_assert_eq(se->kind, SCHEME_SYMPLECTIC_EULER);
    cr_assert_eq(se->order, 1);
    cr_assert_null(tableau_builtin("rk4"), "rk4 is a tableau in std/schemes.spn, not built in");
    cr_assert_null(tableau_builtin(""));
}

/* The scheme a flow resolves to, with the stdlib prelude loaded. */
static void expect_flow_scheme(const char *scheme, int stages, int order)
{
    char src[1024];
    snprintf(src, sizeof src,
             "model m { input x : R[2]; state u : R[2] = x; param A : R[2, 2] per layer;\n"
             "  flow over [0, 1] in 4 layers by %s { du/dt = tanh(A * u); }\n"
             "  output p = u; loss sum(p); }",
             scheme);
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, src);
    cr_assert_not_null(m, "%s", unit_diags(&u));
    const Scheme *s = m->blocks[0]->scheme;
    cr_assert_str_eq(s->name, scheme);
    cr_assert_eq(s->stages, stages, "%s stages", scheme);
    cr_assert_eq(s->order, order, "%s order", scheme);
    cr_assert_eq(m->blocks[0]->h, 0.25);
    unit_free(&u);
}

Test(tableau, stdlib_schemes_through_the_resolver)
{
    expect_flow_scheme("euler", 1, 1);
    expect_flow_scheme("heun", 2, 2);
    expect_flow_scheme("kutta3", 3, 3);
    expect_flow_scheme("rk4", 4, 4);
}

Test(tableau, stdlib_rk4_numbers_are_table_1)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "model m { input x : R[2]; state u : R[2] = x; param A : R[2, 2] per layer;\n"
                              "  flow over [0, 1] in 4 layers by rk4 { du/dt = tanh(A * u); }\n"
                              "  output p = u; loss sum(p); }");
    cr_assert_not_null(m, "%s", unit_diags(&u));
    const Scheme *s = m->blocks[0]->scheme;
    double c[] = {0, 0.5, 0.5, 1}, b[] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6};
    double a[4][4] = {{0}, {0.5}, {0, 0.5}, {0, 0, 1}};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(s->c[i], c[i]);
        cr_assert_eq(s->b[i], b[i]);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(s->a[i][j], a[i][j]);
    }
    unit_free(&u);
}

Test(tableau, broken_scheme_in_a_file)
{
    Unit u;
    unit_init(&u);
    Model *m = unit_model(&u, "scheme bad {\n  c = [0, 1];\n  a = [[0, 0], [1, 0]];\n  b = [1, 1];\n}\n"
                              "model m { input x : R[2]; state u : R[2] = x; param A : R[2, 2] per layer;\n"
                              "  flow over [0, 1] in 4 layers by bad { du/dt = tanh(A * u); }\n"
                              "  output p = u; loss sum(p); }");
    cr_assert_null(m);
    const char *out = unit_diags(&u);
    cr_assert(strstr(out, "t.spn:1:8: error: scheme 'bad' violates order 1: sum_i b_i = 1\n"), "%s", out);
    cr_assert(strstr(out, "note: b[0] + ... + b[1] = 2; a consistent scheme needs 1\n"), "%s", out);
    unit_free(&u);
}
