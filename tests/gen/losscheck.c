/* losscheck.c - the loss and the output of a generated model against a
 * computation by hand from theta, x and the target (issue 15: constant terms
 * in the loss, sums and means of constants). DESIGN §3: the loss of a batch
 * is the mean over the batch of the terms that depend on a sample, plus the
 * parameter-only terms (constants among them) once.
 *
 * Build with the model's M.c, -DMODEL_FN=M_model and -DREF=M, where this
 * file defines M_sample (one sample's output p and its loss terms) and M_once
 * (the parameter-only terms); tests/gen.sh does for every model with such a
 * pair. Checks batches of 1, 5 and 70 (two tiles, the second partial: a term
 * counted per tile or per lane would show) and exits 1 on a difference
 * beyond 1e-12 (relative). theta is in declaration order, matrices row-major. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

static double mse(const double *p, const double *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (p[i] - y[i]) * (p[i] - y[i]);
    return s;
}

static double matvec_row(const double *W, int cols, int i, const double *x)
{
    double s = 0;
    for (int j = 0; j < cols; j++)
        s += W[i * cols + j] * x[j];
    return s;
}

/* -log softmax(z)[c] */
static double ce(const double *z, int n, double c, double *p)
{
    double mx = z[0], s = 0;
    for (int i = 1; i < n; i++)
        mx = fmax(mx, z[i]);
    for (int i = 0; i < n; i++)
        s += exp(z[i] - mx);
    for (int i = 0; i < n; i++)
        p[i] = exp(z[i] - mx) / s;
    return -log(p[(int)c]);
}

/* loss_const: p = W x + b; loss 2 * mse(p, y) + 1.5 */
static double loss_const_sample(const double *th, const double *x, const double *t, double *p)
{
    const double *W = th, *b = th + 6;
    for (int i = 0; i < 2; i++)
        p[i] = matvec_row(W, 3, i, x) + b[i];
    return 2 * mse(p, t, 2);
}
static double loss_const_once(const double *th)
{
    (void)th;
    return 1.5;
}

/* loss_const_mix: p = tanh(W x); loss 3 + mse(p, y) - 0.5 + 0.1 * sum(W ^ 2) + 0 * 1 */
static double loss_const_mix_sample(const double *th, const double *x, const double *t, double *p)
{
    for (int i = 0; i < 2; i++)
        p[i] = tanh(matvec_row(th, 3, i, x));
    return mse(p, t, 2);
}
static double loss_const_mix_once(const double *th)
{
    double s = 0;
    for (int i = 0; i < 6; i++)
        s += th[i] * th[i];
    return 3 - 0.5 + 0.1 * s + 0;
}

/* ce_const: p = softmax(W x + w); loss cross_entropy(p, c) + 0.1 */
static double ce_const_sample(const double *th, const double *x, const double *t, double *p)
{
    double z[3];
    for (int i = 0; i < 3; i++)
        z[i] = matvec_row(th, 2, i, x) + th[6 + i];
    return ce(z, 3, t[0], p);
}
static double ce_const_once(const double *th)
{
    (void)th;
    return 0.1;
}

/* mean_const: p = W x + mean(5) + sum(2 * 3) * mean(1) * x; loss mse(p, y) */
static double mean_const_sample(const double *th, const double *x, const double *t, double *p)
{
    for (int i = 0; i < 2; i++)
        p[i] = matvec_row(th, 2, i, x) + 5 + 6 * 1 * x[i];
    return mse(p, t, 2);
}
static double mean_const_once(const double *th)
{
    (void)th;
    return 0;
}

/* no_param: p = softmax(x); loss cross_entropy(p, c) */
static double no_param_sample(const double *th, const double *x, const double *t, double *p)
{
    (void)th;
    return ce(x, 3, t[0], p);
}
static double no_param_once(const double *th)
{
    (void)th;
    return 0;
}

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

static uint64_t rng = 2718281828;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng >> 11) + 0.5) * 0x1.0p-53;
}

int main(void)
{
    const spdl_model *m = MODEL_FN();
    size_t P = m->nparam, NI = m->nin, NO = m->nout, NT = m->ntarget ? m->ntarget : 1;
    const size_t batches[] = {1, 5, 70};
    double *th = calloc(P + 1, sizeof *th), p[64];
    int fail = 0;
    if (NO > sizeof p / sizeof *p)
        return 1;
    m->init(th, 11);
    for (size_t i = 0; i < P; i++)
        th[i] += 0.2 * (urand() - 0.5);
    for (size_t k = 0; k < sizeof batches / sizeof *batches; k++) {
        size_t B = batches[k];
        double *x = calloc(B * NI, sizeof *x), *t = calloc(B * NT, sizeof *t), *y = calloc(B * NO, sizeof *y);
        void *w = malloc(m->work_size(B));
        for (size_t i = 0; i < B * NI; i++)
            x[i] = 2 * urand() - 1;
        for (size_t i = 0; i < B * NT; i++)
            t[i] = m->nclass ? (double)(int)(urand() * m->nclass) : 2 * urand() - 1;
        double want = 0, dout = 0;
        int rc = m->forward(th, B, x, y, w);
        for (size_t s = 0; s < B; s++) {
            want += CAT(REF, _sample)(th, x + s * NI, t + s * NT, p);
            for (size_t i = 0; i < NO; i++)
                dout = fmax(dout, fabs(y[s * NO + i] - p[i]) / fmax(1, fabs(p[i])));
        }
        want = want / (double)B + CAT(REF, _once)(th);
        double got = m->loss_grad(th, B, x, t, NULL, w);
        double err = fabs(got - want) / fmax(1, fabs(want));
        printf("%s: batch %zu: loss %.17g, by hand %.17g (rel. error %.2e); output rel. error %.2e (rc %d)\n", m->name, B,
               got, want, err, dout, rc);
        if (!(err <= 1e-12) || !(dout <= 1e-12) || rc != 0)
            fail = 1;
        free(x), free(t), free(y), free(w);
    }
    free(th);
    if (fail)
        printf("FAIL %s: the loss or the output differs from the computation by hand\n", m->name);
    return fail;
}
