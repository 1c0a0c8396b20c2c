/* tableau.c - see tableau.h. The order conditions are the eight rooted-tree
 * conditions up to order 4 (Hairer, Norsett, Wanner, Solving ODEs I, II.2). */
#include "tableau.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool close_to(double x, double y) { return fabs(x - y) <= 1e-12 * (1 + fabs(y)); }

const char *tableau_check(Scheme *s, char *detail, size_t n)
{
    int st = s->stages;
    detail[0] = '\0';
    for (int i = 0; i < st; i++)
        for (int j = i; j < st; j++)
            if (s->a[i][j] != 0) {
                snprintf(detail, n, "a[%d][%d] = %g, but an explicit scheme has a[i][j] = 0 for j >= i", i, j,
                         s->a[i][j]);
                return "explicit (strictly lower-triangular a)";
            }
    for (int i = 0; i < st; i++) {
        double sum = 0;
        for (int j = 0; j < st; j++)
            sum += s->a[i][j];
        if (!close_to(s->c[i], sum)) {
            snprintf(detail, n, "c[%d] = %.15g but a[%d][0] + ... + a[%d][%d] = %.15g", i, s->c[i], i, i, st - 1, sum);
            return "c_i = sum_j a_ij";
        }
    }
    /* Order conditions: Sb = 1 | Sbc = 1/2 | Sbc^2 = 1/3, Sbac = 1/6 |
     * Sbc^3 = 1/4, Sbcac = 1/8, Sbac^2 = 1/12, Sbaac = 1/24. */
    double ac[SCHEME_MAX_STAGES] = {0}, ac2[SCHEME_MAX_STAGES] = {0}, aac[SCHEME_MAX_STAGES] = {0};
    for (int i = 0; i < st; i++)
        for (int j = 0; j < st; j++) {
            ac[i] += s->a[i][j] * s->c[j];
            ac2[i] += s->a[i][j] * s->c[j] * s->c[j];
        }
    for (int i = 0; i < st; i++)
        for (int j = 0; j < st; j++)
            aac[i] += s->a[i][j] * ac[j];
    double t[8] = {0};
    for (int i = 0; i < st; i++) {
        double b = s->b[i], c = s->c[i];
        t[0] += b;
        t[1] += b * c;
        t[2] += b * c * c;
        t[3] += b * ac[i];
        t[4] += b * c * c * c;
        t[5] += b * c * ac[i];
        t[6] += b * ac2[i];
        t[7] += b * aac[i];
    }
    static const double want[8] = {1, 1.0 / 2, 1.0 / 3, 1.0 / 6, 1.0 / 4, 1.0 / 8, 1.0 / 12, 1.0 / 24};
    static const int order_of[8] = {1, 2, 3, 3, 4, 4, 4, 4};
    if (!close_to(t[0], 1)) {
        snprintf(detail, n, "b[0] + ... + b[%d] = %.15g; a consistent scheme needs 1", st - 1, t[0]);
        return "order 1: sum_i b_i = 1";
    }
    s->order = 4;
    for (int k = 1; k < 8; k++)
        if (!close_to(t[k], want[k]) && order_of[k] - 1 < s->order)
            s->order = order_of[k] - 1;
    /* Stability polynomial: poly[k+1] = b' A^k 1. */
    double v[SCHEME_MAX_STAGES];
    for (int i = 0; i < st; i++)
        v[i] = 1;
    memset(s->poly, 0, sizeof s->poly);
    s->poly[0] = 1;
    for (int k = 0; k < st; k++) {
        double dot = 0;
        for (int i = 0; i < st; i++)
            dot += s->b[i] * v[i];
        s->poly[k + 1] = dot;
        double w[SCHEME_MAX_STAGES] = {0};
        for (int i = 0; i < st; i++)
            for (int j = 0; j < st; j++)
                w[i] += s->a[i][j] * v[j];
        memcpy(v, w, sizeof v);
    }
    return NULL;
}

static const Scheme builtins[] = {
    {.name = "verlet", .kind = SCHEME_VERLET, .stages = 0, .order = 2, .span = {-1, 0, 0}},
    {.name = "symplectic_euler", .kind = SCHEME_SYMPLECTIC_EULER, .stages = 0, .order = 1, .span = {-1, 0, 0}},
};

const Scheme *tableau_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    return NULL;
}
