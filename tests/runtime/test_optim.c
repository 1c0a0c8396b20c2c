/* test_optim.c - the optimisers (optim.c) against the update rules as
 * published, written out here independently: SGD with heavy-ball momentum,
 * Adam with bias correction (Kingma & Ba 2015, Algorithm 1) and decoupled
 * weight decay (Loshchilov & Hutter 2019, AdamW; PyTorch's torch.optim.AdamW
 * multiplies the parameters by 1 - lr * decay before the Adam step). */
#include <criterion/criterion.h>
#include <math.h>

#include "optim.h"

enum { N = 5, STEPS = 7 };

static double grad_at(int step, int i, const double *theta) { return sin(1.0 + step + 3.0 * i) + 0.5 * theta[i]; }

static void reference(spdl_optim_kind kind, double lr, double decay, const double *scale, double *theta)
{
    double m[N] = {0}, v[N] = {0};
    for (int t = 1; t <= STEPS; t++) {
        double g[N], a = lr * scale[t - 1];
        for (int i = 0; i < N; i++)
            g[i] = grad_at(t, i, theta);
        for (int i = 0; i < N; i++) {
            theta[i] *= 1 - a * decay;
            if (kind == SPDL_SGD) {
                m[i] = 0.9 * m[i] + g[i];
                theta[i] -= a * m[i];
            } else {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                double mhat = m[i] / (1 - pow(0.9, t)), vhat = v[i] / (1 - pow(0.999, t));
                theta[i] -= a * mhat / (sqrt(vhat) + 1e-8);
            }
        }
    }
}

static void compare(spdl_optim_kind kind, double lr, double decay)
{
    const double scale[STEPS] = {1, 0.9, 0.75, 0.5, 0.3, 0.1, 0.02};
    double want[N], got[N], g[N];
    for (int i = 0; i < N; i++)
        want[i] = got[i] = 1.0 - 0.4 * i;
    reference(kind, lr, decay, scale, want);
    spdl_optim o;
    cr_assert_eq(spdl_optim_init(&o, kind, N, lr), 0);
    o.decay = decay;
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++)
            g[i] = grad_at(t, i, got);
        spdl_optim_step(&o, got, g, scale[t - 1]);
    }
    spdl_optim_free(&o);
    for (int i = 0; i < N; i++)
        cr_assert(fabs(got[i] - want[i]) <= 1e-14 * (1 + fabs(want[i])), "%s decay %g: theta[%d] = %.17g, expected %.17g",
                  spdl_optim_name(kind), decay, i, got[i], want[i]);
}

Test(optim, adam_follows_kingma_and_ba) { compare(SPDL_ADAM, 0.01, 0); }
Test(optim, adamw_decays_before_the_step) { compare(SPDL_ADAM, 0.01, 0.3); }
Test(optim, sgd_with_momentum) { compare(SPDL_SGD, 0.05, 0); }
Test(optim, sgd_with_decoupled_decay) { compare(SPDL_SGD, 0.05, 0.3); }

/* with a zero gradient, decay alone shrinks every parameter by (1 - lr decay) per step */
Test(optim, decay_alone_is_geometric)
{
    double theta[N] = {1, -2, 3, -4, 5}, zero[N] = {0};
    spdl_optim o;
    cr_assert_eq(spdl_optim_init(&o, SPDL_ADAM, N, 0.1), 0);
    o.decay = 0.5;
    for (int t = 0; t < 10; t++)
        spdl_optim_step(&o, theta, zero, 1);
    spdl_optim_free(&o);
    for (int i = 0; i < N; i++)
        cr_assert(fabs(theta[i] - (i % 2 ? -1.0 : 1.0) * (i + 1) * pow(0.95, 10)) < 1e-14);
}
