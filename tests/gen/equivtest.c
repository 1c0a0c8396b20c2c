/* equivtest.c - the generated forward pass is invariant, numerically, under
 * the group its model declares (DESIGN §8's actions, written here from the
 * text, not from the compiler).
 *
 * Build with the model's M.c and -DMODEL_FN=M_model; run as
 * `equivtest GROUP N` with GROUP one of S (permutations of the last axis of
 * x : R[c, N]) and Z (cyclic shifts (T a)[i] = a[(i - 1) mod N]). For
 * random parameters (init, then perturbed, then projected) and inputs, every
 * sample is transformed by a group element (S: 20 random permutations and
 * every transposition of neighbours; Z: every shift) and the outputs must
 * equal the untransformed ones to 1e-12 relative. A planted check: a
 * transformation that is not in the group (reversing one channel only)
 * must change the output, or the test is not looking. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spdl.h"

const spdl_model *MODEL_FN(void);

static uint64_t rng = 424242;
static double urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng >> 11) + 0.5) * 0x1.0p-53;
}

/* out[c, i] = in[c, perm[i]] for each of B samples of C x N */
static void act(const double *in, double *out, size_t B, size_t C, size_t N, const size_t *perm, int one_channel)
{
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < N; i++) {
                size_t j = one_channel && c != 0 ? i : perm[i];
                out[(b * C + c) * N + i] = in[(b * C + c) * N + j];
            }
}

static double rel_diff(const double *a, const double *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        s = fmax(s, fabs(a[i]));
    }
    return d / fmax(s, 1e-300);
}

int main(int argc, char **argv)
{
    const spdl_model *m = MODEL_FN();
    if (argc != 3 || (argv[1][0] != 'S' && argv[1][0] != 'Z')) {
        fprintf(stderr, "usage: equivtest S|Z N\n");
        return 2;
    }
    char G = argv[1][0];
    size_t N = (size_t)atoi(argv[2]), B = 7;
    if (N == 0 || m->nin % N) {
        fprintf(stderr, "equivtest: the input (%zu numbers) is not R[c, %zu]\n", m->nin, N);
        return 2;
    }
    size_t C = m->nin / N, P = m->nparam, NO = m->nout;
    double *th = malloc(P * sizeof *th), *x = malloc(B * m->nin * sizeof *x), *gx = malloc(B * m->nin * sizeof *gx);
    double *y = malloc(B * NO * sizeof *y), *gy = malloc(B * NO * sizeof *gy);
    size_t *perm = malloc(N * sizeof *perm);
    void *w = malloc(m->work_size(B));
    if (!th || !x || !gx || !y || !gy || !perm || !w)
        return 2;
    m->init(th, 7);
    for (size_t i = 0; i < P; i++)
        th[i] += 0.3 * (urand() - 0.5);
    m->project(th);
    for (size_t i = 0; i < B * m->nin; i++)
        x[i] = 2 * urand() - 1;
    if (m->forward(th, B, x, y, w) != 0)
        return 1;
    double worst = 0;
    int tried = 0;
    int rounds = G == 'Z' ? (int)N : 20 + (int)N - 1;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < N; i++)
            perm[i] = i;
        if (G == 'Z') { /* T^r: (T^r a)[i] = a[(i - r) mod N] */
            for (size_t i = 0; i < N; i++)
                perm[i] = (i + N - (size_t)r % N) % N;
        } else if (r < 20) { /* Fisher-Yates */
            for (size_t i = N - 1; i > 0; i--) {
                size_t j = (size_t)(urand() * (double)(i + 1)), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        } else { /* the neighbour transposition (k, k+1) */
            size_t k = (size_t)(r - 20);
            perm[k] = k + 1;
            perm[k + 1] = k;
        }
        act(x, gx, B, C, N, perm, 0);
        if (m->forward(th, B, gx, gy, w) != 0)
            return 1;
        worst = fmax(worst, rel_diff(y, gy, B * NO));
        tried++;
    }
    /* planted: move one channel's entries only (not a group element, for C > 1), or for
     * C = 1 a non-permutation (the first entry doubled) */
    for (size_t i = 0; i < N; i++)
        perm[i] = N - 1 - i;
    if (C > 1)
        act(x, gx, B, C, N, perm, 1);
    else {
        memcpy(gx, x, B * m->nin * sizeof *gx);
        for (size_t b = 0; b < B; b++)
            gx[b * m->nin] *= 2;
    }
    if (m->forward(th, B, gx, gy, w) != 0)
        return 1;
    double planted = rel_diff(y, gy, B * NO);
    printf("%s: %s(%zu) on R[%zu, %zu]: %d group elements, worst output change %.2e (bound 1e-12); a change outside the "
           "group moves it by %.2e\n",
           m->name, G == 'S' ? "S" : "Z", N, C, N, tried, worst, planted);
    int ok = worst <= 1e-12 && planted > 1e-6;
    free(th), free(x), free(gx), free(y), free(gy), free(perm), free(w);
    return ok ? 0 : 1;
}
