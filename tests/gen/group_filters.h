/* group_filters.h - DESIGN §8's C4/D4 action on k x k filters and the
 * expanded filter bank of a lift or gconv kernel, written out from the
 * definitions (never from runtime/spdl_kernels.h), for the tests that
 * build a kernel's map densely: tests/gen/projtest.c and
 * tests/unit/test_gconv_norm.c. Element e = k + 4 s: mirror first
 * ((M a)[i, j] = a[i, k-1-j]) when s = 1, then rotate e % 4 times
 * ((R a)[i, j] = a[j, k-1-i]). Filters up to 9 x 9. */
#ifndef GROUP_FILTERS_H
#define GROUP_FILTERS_H

#include <stdlib.h>
#include <string.h>

/* out = g_e w */
static inline void gf_act(int e, int k, const double *w, double *out)
{
    double a[81], b[81];
    memcpy(b, w, sizeof(double) * (size_t)(k * k));
    if (e >= 4)
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                b[i * k + j] = w[i * k + k - 1 - j];
    for (int t = 0; t < e % 4; t++) {
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                a[i * k + j] = b[j * k + k - 1 - i];
        memcpy(b, a, sizeof(double) * (size_t)(k * k));
    }
    memcpy(out, b, sizeof(double) * (size_t)(k * k));
}

/* idx(g_e^-1 g_f): the h with g_e g_h = g_f, found on a 3 x 3 test filter with distinct entries; -1 if none */
static inline int gf_quot(int G, int e, int f)
{
    double t[9], gf[9], gh[9], egh[9];
    for (int i = 0; i < 9; i++)
        t[i] = 1 + i * i;
    gf_act(f, 3, t, gf);
    for (int h = 0; h < G; h++) {
        gf_act(h, 3, t, gh);
        gf_act(e, 3, gh, egh);
        if (!memcmp(egh, gf, sizeof gf))
            return h;
    }
    return -1;
}

/* The bank of a lift (gconv = 0, K : R[cout, cin, k, k]) or gconv kernel (K : R[cout, cin, G, k, k]):
 * (cout G) x ci filters of k x k, ci = cin G for gconv, cin for lift; filter (o, e, j) is g_e applied to
 * K[o, j] (lift) or to K[o, j / G, idx(g_e^-1 g_(j % G))] (gconv). Malloc'd; NULL if a quotient is missing. */
static inline double *gf_bank(int G, int gconv, int cout, int cin, int k, const double *K)
{
    int ci = gconv ? cin * G : cin, k2 = k * k;
    double *W = malloc(sizeof(double) * (size_t)(cout * G * ci * k2));
    for (int o = 0; W && o < cout; o++)
        for (int e = 0; e < G; e++)
            for (int j = 0; j < ci; j++) {
                int h = gconv ? gf_quot(G, e, j % G) : 0;
                if (h < 0) {
                    free(W);
                    return NULL;
                }
                const double *src = gconv ? K + (((size_t)o * cin + (size_t)(j / G)) * G + (size_t)h) * k2
                                          : K + ((size_t)o * cin + (size_t)j) * k2;
                gf_act(e, k, src, W + (((size_t)o * G + (size_t)e) * ci + (size_t)j) * k2);
            }
    return W;
}

#endif
