/* apitest.c - the generated functions' contract (DESIGN §6) beyond gradients:
 * bad arguments give an error code (or NaN), never a crash; two threads with
 * separate work buffers get the same bits as serial calls; results do not
 * depend on the work buffer's alignment; init is deterministic. Build with
 * the model's M.c, -DMODEL_FN=M_model and -pthread. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

static int failures;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

typedef struct Job {
    const spdl_model *m;
    const double *th, *x, *t;
    size_t B;
    double loss;
    double *grad;
    void *work;
} Job;

static void *run(void *arg)
{
    Job *j = arg;
    for (int rep = 0; rep < 20; rep++)
        j->loss = j->m->loss_grad(j->th, j->B, j->x, j->t, j->grad, j->work);
    return NULL;
}

int main(void)
{
    const spdl_model *m = MODEL_FN();
    size_t B = 150, P = m->nparam, NI = m->nin, NO = m->nout, NT = m->ntarget;
    size_t ws = m->work_size(B);
    CHECK(ws == m->work_size(1) && ws == m->work_size(100000), "work size depends on the batch");
    double *th = calloc(P, sizeof *th), *th2 = calloc(P, sizeof *th2), *g1 = calloc(P, sizeof *g1),
           *g2 = calloc(P, sizeof *g2), *g3 = calloc(P, sizeof *g3);
    double *x = calloc(B * NI, sizeof *x), *t = calloc(B * (NT ? NT : 1), sizeof *t), *y = calloc(B * NO, sizeof *y);
    double *dy = calloc(B * NO, sizeof *dy), *dx = calloc(B * NI, sizeof *dx);
    unsigned char *w1 = malloc(ws + 1), *w2 = malloc(ws), *w3 = malloc(ws);
    m->init(th, 42);
    m->init(th2, 42);
    CHECK(memcmp(th, th2, P * sizeof *th) == 0, "init is not deterministic");
    m->init(th2, 43);
    CHECK(P == 0 || memcmp(th, th2, P * sizeof *th) != 0, "init ignores the seed");
    memcpy(th2, th, P * sizeof *th);
    m->project(th2);
    CHECK(memcmp(th, th2, P * sizeof *th) == 0, "project is not idempotent after init");
    for (size_t i = 0; i < B * NI; i++)
        x[i] = sin(0.37 * (double)i);
    for (size_t i = 0; i < B * NT; i++)
        t[i] = m->nclass ? (double)(i % (size_t)m->nclass) : cos((double)i);
    for (size_t i = 0; i < B * NO; i++)
        dy[i] = 1.0 / (1 + (double)i);

    /* bad arguments */
    CHECK(m->forward(th, 0, x, y, w2) == SPDL_EINVAL, "forward batch 0");
    CHECK(m->forward(NULL, B, x, y, w2) == SPDL_EINVAL, "forward NULL theta");
    CHECK(m->forward(th, B, NULL, y, w2) == SPDL_EINVAL, "forward NULL x");
    CHECK(m->forward(th, B, x, NULL, w2) == SPDL_EINVAL, "forward NULL y");
    CHECK(m->forward(th, B, x, y, NULL) == SPDL_EINVAL, "forward NULL work");
    CHECK(isnan(m->loss_grad(th, 0, x, t, g1, w2)), "loss_grad batch 0");
    CHECK(isnan(m->loss_grad(NULL, B, x, t, g1, w2)), "loss_grad NULL theta");
    CHECK(isnan(m->loss_grad(th, B, x, t, g1, NULL)), "loss_grad NULL work");
    if (NT)
        CHECK(isnan(m->loss_grad(th, B, x, NULL, g1, w2)), "loss_grad NULL target");
    CHECK(m->vjp(th, 0, x, dy, dx, g1, w2) == SPDL_EINVAL, "vjp batch 0");
    CHECK(m->vjp(th, B, x, NULL, dx, g1, w2) == SPDL_EINVAL, "vjp NULL dy");
    CHECK(m->vjp(th, B, x, dy, NULL, NULL, w2) == SPDL_EINVAL, "vjp no outputs");
    CHECK(m->trajectory(th, B, x, NULL, w2) == SPDL_EINVAL, "trajectory NULL");
    if (m->nclass) {
        double keep = t[3];
        t[3] = 0.5;
        CHECK(isnan(m->loss_grad(th, B, x, t, g1, w2)), "a fractional label is accepted");
        t[3] = -1;
        CHECK(isnan(m->loss_grad(th, B, x, t, g1, w2)), "a negative label is accepted");
        t[3] = m->nclass;
        CHECK(isnan(m->loss_grad(th, B, x, t, g1, w2)), "label = nclass is accepted");
        t[3] = keep;
    }
    double keep = x[5];
    x[5] = NAN;
    CHECK(m->forward(th, B, x, y, w2) == SPDL_ENONFINITE, "a NaN input is not reported");
    x[5] = INFINITY;
    CHECK(isnan(m->loss_grad(th, B, x, t, g1, w2)), "an infinite input is not reported");
    x[5] = keep;

    /* alignment: a misaligned work pointer gives the same bits */
    double l1 = m->loss_grad(th, B, x, t, g1, w1 + 1);
    double l2 = m->loss_grad(th, B, x, t, g2, w2);
    CHECK(l1 == l2 && memcmp(g1, g2, P * sizeof *g1) == 0, "results depend on the work buffer's alignment");
    CHECK(isfinite(l1), "loss is not finite: %g", l1);
    CHECK(m->forward(th, B, x, y, w2) == SPDL_OK, "forward fails");
    CHECK(m->vjp(th, B, x, dy, dx, g3, w2) == SPDL_OK, "vjp fails");
    /* without dtheta (in double the tiles then skip the parameters' adjoints): the same dx */
    double *dx2 = calloc(B * NI, sizeof *dx2);
    CHECK(m->vjp(th, B, x, dy, dx2, NULL, w2) == SPDL_OK && memcmp(dx, dx2, B * NI * sizeof *dx) == 0,
          "vjp without dtheta gives another dx");
    free(dx2);
    /* loss only (grad NULL) gives the same loss */
    CHECK(m->loss_grad(th, B, x, t, NULL, w2) == l1, "loss without gradient differs");

    /* threads: separate work buffers, the same bits as serially */
    Job a = {m, th, x, t, B, 0, g2, w2}, b = {m, th, x, t, B, 0, g3, w3};
    memset(g2, 0, P * sizeof *g2);
    memset(g3, 0, P * sizeof *g3);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run, &a);
    pthread_create(&tb, NULL, run, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.loss == l1 && b.loss == l1, "threaded losses differ: %.17g %.17g %.17g", a.loss, b.loss, l1);
    CHECK(memcmp(g1, g2, P * sizeof *g1) == 0 && memcmp(g1, g3, P * sizeof *g1) == 0, "threaded gradients differ");

    /* the step in parts (M_tile_*): the same loss and gradient as one call, to
       rounding; every tile's adjoint from zero, summed in tile order, gives the
       same bits whichever work buffer ran it (M_tile_loss adds in place, so
       callers sum tiles that way: runtime/tiles.c); outputs equal M_forward's;
       bad arguments give NaN */
    CHECK(m->tile == 64 && m->tile_prepare && m->tile_loss && m->tile_finish, "no tile functions in the descriptor");
    size_t NA = m->nadj ? m->nadj : 1, ntiles = (B + m->tile - 1) / m->tile;
    double *acc = calloc(NA, sizeof *acc), *part = calloc(NA * ntiles, sizeof *part), *sum = calloc(NA, sizeof *sum),
           *one = calloc(NA, sizeof *one);
    double *gt = calloc(P ? P : 1, sizeof *gt), *gt2 = calloc(P ? P : 1, sizeof *gt2), *yt = calloc(B * NO, sizeof *yt);
    CHECK(m->tile_prepare(th, w2) == SPDL_OK && m->tile_prepare(th, w3) == SPDL_OK, "tile_prepare fails");
    double total = 0, total2 = 0;
    for (size_t k = 0; k < ntiles; k++) {
        size_t s0 = k * m->tile, nb = B - s0 < m->tile ? B - s0 : m->tile;
        memset(one, 0, NA * sizeof *one);
        total += m->tile_loss(w2, B, nb, x + s0 * NI, NT ? t + s0 * NT : NULL, yt + s0 * NO, one);
        for (size_t i = 0; i < m->nadj; i++)
            acc[i] += one[i];
        total2 += m->tile_loss(k % 2 ? w2 : w3, B, nb, x + s0 * NI, NT ? t + s0 * NT : NULL, NULL, part + k * NA);
    }
    for (size_t k = 0; k < ntiles; k++)
        for (size_t i = 0; i < m->nadj; i++)
            sum[i] += part[k * NA + i];
    double lt = total / (double)B + m->tile_finish(w2, acc, gt);
    double lt2 = total2 / (double)B + m->tile_finish(w3, sum, gt2);
    CHECK(lt == lt2 && memcmp(gt, gt2, P * sizeof *gt) == 0, "tiles on separate buffers give other bits");
    CHECK(fabs(lt - l1) <= 1e-12 * fmax(1, fabs(l1)), "tile loss %.17g, loss_grad %.17g", lt, l1);
    double gmax = 0, gerr = 0;
    for (size_t i = 0; i < P; i++) {
        gmax = fmax(gmax, fabs(g1[i]));
        gerr = fmax(gerr, fabs(gt[i] - g1[i]));
    }
    CHECK(gerr <= 1e-10 * fmax(1, gmax), "tile gradient differs from loss_grad's by %g (largest %g)", gerr, gmax);
    CHECK(m->forward(th, B, x, y, w2) == SPDL_OK && memcmp(y, yt, B * NO * sizeof *y) == 0,
          "tile outputs differ from forward's");
    CHECK(m->tile_prepare(NULL, w2) == SPDL_EINVAL && m->tile_prepare(th, NULL) == SPDL_EINVAL, "tile_prepare NULL");
    CHECK(m->tile_prepare(th, w2) == SPDL_OK, "tile_prepare fails");
    CHECK(isnan(m->tile_loss(w2, B, 0, x, t, NULL, acc)), "tile_loss nb 0");
    CHECK(isnan(m->tile_loss(w2, B, m->tile + 1, x, t, NULL, acc)), "tile_loss nb > tile");
    CHECK(isnan(m->tile_loss(w2, 3, 4, x, t, NULL, acc)), "tile_loss nb > batch");
    CHECK(isnan(m->tile_loss(NULL, B, 4, x, t, NULL, acc)), "tile_loss NULL work");
    CHECK(isnan(m->tile_loss(w2, B, 4, NULL, t, NULL, acc)), "tile_loss NULL x");
    if (NT)
        CHECK(isnan(m->tile_loss(w2, B, 4, x, NULL, NULL, acc)), "tile_loss NULL target");
    CHECK(isnan(m->tile_finish(NULL, acc, gt)) && isnan(m->tile_finish(w2, acc, NULL)), "tile_finish NULL");
    free(acc), free(part), free(sum), free(one), free(gt), free(gt2), free(yt);

    printf("%s: API contract %s (%d failure%s)\n", m->name, failures ? "FAILED" : "holds", failures,
           failures == 1 ? "" : "s");
    free(th), free(th2), free(g1), free(g2), free(g3), free(x), free(t), free(y), free(dy), free(dx);
    free(w1), free(w2), free(w3);
    return failures != 0;
}
