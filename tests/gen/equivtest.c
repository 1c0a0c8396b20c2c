/* equivtest.c - the generated forward pass is invariant, numerically, under
 * the group its model declares (DESIGN §8's actions, written here from the
 * text, not from the compiler).
 *
 * Build with the model's M.c and -DMODEL_FN=M_model; run as
 * `equivtest GROUP N` with GROUP one of S (permutations of the last axis of
 * x : R[c, N]), Z (cyclic shifts (T a)[i] = a[(i - 1) mod N]), C4 and D4
 * (x : R[c, N, N]; rotation (R a)[i, j] = a[j, N-1-i], mirror
 * (M a)[i, j] = a[i, N-1-j], R^k M^s on every channel alike). For
 * random parameters (init, then perturbed, then projected) and inputs, every
 * sample is transformed by a group element (S: 20 random permutations and
 * every transposition of neighbours; Z, C4, D4: every element) and the outputs must
 * equal the untransformed ones to 1e-12 relative; with a third argument
 * `equivariant`, the output is an image R[c', N, N] (or a sequence R[c', N])
 * and must be the transformed output instead (y(g x) = g y(x)). A planted check: a
 * change that is no group element (one entry moved) must change the
 * output, or the test is not looking. */
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
static void act(const double *in, double *out, size_t B, size_t C, size_t N, const size_t *perm)
{
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < N; i++) {
                out[(b * C + c) * N + i] = in[(b * C + c) * N + perm[i]];
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
    int equivariant = argc == 4 && strcmp(argv[3], "equivariant") == 0;
    if ((argc != 3 && !equivariant) || !strchr("SZCD", argv[1][0])) {
        fprintf(stderr, "usage: equivtest S|Z|C4|D4 N [equivariant]\n");
        return 2;
    }
    char G = argv[1][0];
    size_t N = (size_t)atoi(argv[2]), B = 7;
    int grid = G == 'C' || G == 'D';
    size_t cells = grid ? N * N : N; /* the entries one channel holds */
    if (N == 0 || m->nin % cells) {
        fprintf(stderr, "equivtest: the input (%zu numbers) is not R[c, %zu%s]\n", m->nin, N, grid ? ", n" : "");
        return 2;
    }
    size_t C = m->nin / cells, P = m->nparam, NO = m->nout;
    if (equivariant && NO % cells) {
        fprintf(stderr, "equivtest: the output (%zu numbers) is not R[c, %zu%s]\n", NO, N, grid ? ", n" : "");
        return 2;
    }
    double *gyx = malloc(B * NO * sizeof *gyx);
    double *th = malloc(P * sizeof *th), *x = malloc(B * m->nin * sizeof *x), *gx = malloc(B * m->nin * sizeof *gx);
    double *y = malloc(B * NO * sizeof *y), *gy = malloc(B * NO * sizeof *gy);
    size_t *perm = malloc(cells * sizeof *perm);
    void *w = malloc(m->work_size(B));
    if (!th || !x || !gx || !y || !gy || !gyx || !perm || !w)
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
    int rounds = G == 'Z' ? (int)N : G == 'C' ? 4 : G == 'D' ? 8 : 20 + (int)N - 1;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < cells; i++)
            perm[i] = i;
        if (grid) { /* g = R^k M^s: (g a)[i, j] = a[g^-1 (i, j)], mirror first, then k rotations */
            int k = r % 4, s = r / 4;
            for (size_t i = 0; i < N; i++)
                for (size_t j = 0; j < N; j++) {
                    size_t a = i, b = j; /* (R^k a)[i, j] = a[j, N-1-i] applied k times */
                    for (int t = 0; t < k; t++) {
                        size_t na = b, nb = N - 1 - a;
                        a = na, b = nb;
                    }
                    if (s)
                        b = N - 1 - b;
                    perm[i * N + j] = a * N + b;
                }
        } else if (G == 'Z') { /* T^r: (T^r a)[i] = a[(i - r) mod N] */
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
        act(x, gx, B, C, cells, perm);
        if (m->forward(th, B, gx, gy, w) != 0)
            return 1;
        if (equivariant)
            act(y, gyx, B, NO / cells, cells, perm);
        worst = fmax(worst, rel_diff(equivariant ? gyx : y, gy, B * NO));
        tried++;
    }
    /* planted: a change that is no group element (the first entry of every
     * sample moved by 0.5) must move the output */
    memcpy(gx, x, B * m->nin * sizeof *gx);
    for (size_t b = 0; b < B; b++)
        gx[b * m->nin] += 0.5;
    if (m->forward(th, B, gx, gy, w) != 0)
        return 1;
    double planted = rel_diff(y, gy, B * NO);
    printf("%s: %s on R[%zu, %zu%s]: %d group elements, worst %s %.2e (bound 1e-12); a change outside the "
           "group moves it by %.2e\n",
           m->name, argv[1], C, N, grid ? ", n" : "", tried,
           equivariant ? "|y(g x) - g y(x)| / |y|" : "output change", worst, planted);
    int ok = worst <= 1e-12 && planted > 1e-6;
    free(th), free(x), free(gx), free(y), free(gy), free(gyx), free(perm), free(w);
    return ok ? 0 : 1;
}
