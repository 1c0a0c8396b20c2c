/* tableau.h - integration schemes: Butcher tableaus and their properties.
 *
 * An explicit Runge-Kutta scheme is a tableau (c, a, b); `verlet` and
 * `symplectic_euler` are built-in partitioned schemes. The checks here are
 * the ones that need only the numbers: explicitness, c_i = sum_j a_ij, the
 * order conditions up to 4, and (for the stability checker) the stability
 * function R(z) = 1 + z b'(I - zA)^{-1} 1, which for an explicit scheme is a
 * polynomial of degree <= s. */
#ifndef SPDL_TABLEAU_H
#define SPDL_TABLEAU_H

#include <stdbool.h>

#include "diag.h"

enum { SCHEME_MAX_STAGES = 16 };

typedef enum { SCHEME_RK, SCHEME_VERLET, SCHEME_SYMPLECTIC_EULER } SchemeKind;

typedef struct Scheme {
    const char *name;
    Span span;
    SchemeKind kind;
    int stages;
    double a[SCHEME_MAX_STAGES][SCHEME_MAX_STAGES], b[SCHEME_MAX_STAGES], c[SCHEME_MAX_STAGES];
    int order;
    /* R(z) = sum_k poly[k] z^k, k = 0..stages */
    double poly[SCHEME_MAX_STAGES + 1];
} Scheme;

/* Fills order and poly; returns the name of the first violated consistency
 * condition (with *detail explaining), or NULL if the tableau is usable. */
const char *tableau_check(Scheme *s, char *detail, size_t detail_len);
const Scheme *tableau_builtin(const char *name);

#endif
