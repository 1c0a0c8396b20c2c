/* test_kernels.c - the losses of spdl_kernels.h (pasted into every model's
 * generated C) keep their precision at extreme logits. */
#include <criterion/criterion.h>
#include <math.h>

#include "rt_kernels.h"

/* cross-entropy from logits of one sample (lane 0 of a tile; the other lanes
 * repeat it) */
static double ce(int n, const double *z, int c)
{
    static double Z[16 * SPDL_BT], C[SPDL_BT], L[SPDL_BT];
    cr_assert(n <= 16);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < SPDL_BT; l++)
            Z[i * SPDL_BT + l] = z[i];
    for (int l = 0; l < SPDL_BT; l++)
        C[l] = c;
    spdl_ce_logits(n, Z, C, L);
    for (int l = 1; l < SPDL_BT; l++)
        cr_assert(L[l] == L[0] || (isnan(L[l]) && isnan(L[0])));
    return L[0];
}

static void near(double got, double want, double rtol)
{
    cr_assert(fabs(got - want) <= rtol * fabs(want), "got %.17g, want %.17g", got, want);
}

Test(kernels, ce_logits_of_equal_huge_logits_is_log_n)
{
    /* before: 0 at 1e17 (log 2 rounded away against 1e17), 0.75 at 1e15 */
    double scales[] = {1, 1e8, 1e15, 1e17, 1e300, -1e300};
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        double z2[2] = {scales[k], scales[k]};
        near(ce(2, z2, 0), log(2.0), 1e-15);
        near(ce(2, z2, 1), log(2.0), 1e-15);
        double z10[10];
        for (int i = 0; i < 10; i++)
            z10[i] = scales[k];
        near(ce(10, z10, 7), log(10.0), 1e-15);
    }
}

Test(kernels, ce_logits_keeps_small_differences_of_huge_logits)
{
    /* z = (s + 1, s): -log softmax = log(1 + e^-1) for class 0, 1 + that for class 1 */
    double s = 1e15, z[2] = {s + 1, s};
    near(ce(2, z, 0), log1p(exp(-1.0)), 1e-14);
    near(ce(2, z, 1), 1 + log1p(exp(-1.0)), 1e-14);
    /* a wrong class far below the winner: the loss is the gap */
    double w[3] = {1e17, 0, -1e17};
    near(ce(3, w, 1), 1e17, 1e-15);
    near(ce(3, w, 2), 2e17, 1e-15);
    cr_assert_eq(ce(3, w, 0), 0);
}

Test(kernels, ce_logits_of_a_nan_is_nan)
{
    double z[2] = {NAN, 1};
    cr_assert(isnan(ce(2, z, 0)) || isnan(ce(2, z, 1)));
}
