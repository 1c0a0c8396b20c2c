/* certify.c - `EXE certify`: what the trained weights guarantee.
 *
 * spdlc's certificate bounds the Lipschitz constant L of the map from the
 * input to the logits for every parameter value that satisfies the declared
 * norm bounds. certify first checks that the weights do satisfy them, with
 * rigorous upper bounds on each layer's spectral norm (Gram iteration; a
 * convolution kernel's map on its grid as M_project bounds it, from the
 * kernel's symbols: spdl_bound_norm), then
 * reports the clean accuracy and the certified accuracy at each radius E: a
 * prediction is certified when it is correct and its logit margin exceeds
 * sqrt(2) L E, since no perturbation of Euclidean norm at most E can move
 * z_c - z_j by more than |e_c - e_j| L E = sqrt(2) L E. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "weights.h"

enum { EPS_MAX = 16 };

int spdl_cmd_certify(const spdl_model *m, const spdl_args *a)
{
    double eps[EPS_MAX];
    int neps = 0;
    for (const char *s = a->eps_list; s && *s && neps < EPS_MAX;) {
        char *end;
        double e = strtod(s, &end);
        if (end == s || !(e >= 0))
            return spdl_error(a, "--eps takes radii like 0.1 or 0.1,0.3, not '%s'", a->eps_list);
        eps[neps++] = e;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return spdl_error(a, "--eps takes radii like 0.1 or 0.1,0.3, not '%s'", a->eps_list);
    }
    if (neps == 0)
        eps[neps++] = 0.1;
    if (!m->nclass)
        return spdl_error(a, "certify needs a classifier (a model with `label c : class[n]`)");
    if (!isfinite(m->lipschitz))
        return spdl_error(a, "model '%s' has no certified Lipschitz bound; `spdlc check` says which part is unbounded", m->name);
    spdl_data d;
    if (spdl_get_data(m, a, a->data, &d))
        return 1;
    size_t np;
    const spdl_param *ps = m->params(&np);
    double *theta = calloc(m->nparam ? m->nparam : 1, sizeof *theta);
    spdl_tiles *tl = NULL;
    double *y = malloc(sizeof(double) * d.n * m->nout);
    int status = 1;
    if (!theta || !y) {
        spdl_error(a, "out of memory");
        goto done;
    }
    if (spdl_get_weights(m, a, a->weights, theta))
        goto done;
    printf("norm bounds of the trained weights (rigorous upper bounds: Gram iteration; kernels as maps, from their symbols):\n");
    int violated = 0;
    for (size_t i = 0; i < np; i++) {
        if (isnan(m->norm_bound[i]))
            continue;
        int projected = spdl_param_projected(m, i, theta);
        if (projected < 0) {
            spdl_error(a, "out of memory");
            goto done;
        }
        if (!projected) { /* orth[n]: the Cayley transform, orthogonal whatever its generator */
            printf("  %-8s bound %-8g 1 (orthogonal by construction)\n", ps[i].name, m->norm_bound[i]);
            continue;
        }
        double worst = 0;
        printf("  %-8s bound %-8g", ps[i].name, m->norm_bound[i]);
        for (size_t k = 0; k < ps[i].layers; k++) {
            double nb;
            if (spdl_bound_norm(m, i, theta, k, &nb)) {
                spdl_error(a, "out of memory");
                goto done;
            }
            worst = fmax(worst, nb);
            if (ps[i].layers <= 12)
                printf(nb < 1e6 ? " %.4f" : " %.4g", nb);
        }
        if (ps[i].layers > 12)
            printf(worst < 1e6 ? " max over %zu layers %.6f" : " max over %zu layers %.6g", ps[i].layers, worst);
        int bad = worst > m->norm_bound[i] * (1 + 1e-9);
        violated |= bad;
        printf("%s\n", bad ? "  VIOLATED" : "");
    }
    if (violated) {
        spdl_error(a, "%s violates a declared norm bound, so the certificate does not apply to it", a->weights);
        goto done;
    }
    double L = m->lipschitz;
    long correct = 0, certified[EPS_MAX] = {0};
    if (spdl_new_tiles(m, a, d.n, &tl))
        goto done;
    size_t bad = 0;
    int rc = spdl_tiles_forward(tl, theta, d.n, d.x, y, &bad);
    if (rc) {
        spdl_error(a, "forward pass failed at sample %zu: %s", bad, spdl_strerror(rc));
        goto done;
    }
    for (size_t i = 0; i < d.n; i++) {
        const double *o = y + i * m->nout;
        int c = (int)d.t[i * m->ntarget];
        size_t best = 0, other = c == 0 ? 1 : 0;
        for (size_t k = 1; k < m->nout; k++)
            if (o[k] > o[best])
                best = k;
        for (size_t k = 0; k < m->nout; k++)
            if ((int)k != c && o[k] > o[other])
                other = k;
        if ((int)best != c)
            continue;
        correct++;
        /* the logit margin: from probabilities, log p_c - log p_j */
        double margin = m->output_softmax ? log(o[c]) - log(o[other]) : o[c] - o[other];
        for (int e = 0; e < neps; e++)
            certified[e] += margin > sqrt(2.0) * L * eps[e];
    }
    printf("Lipschitz bound of input -> logits (from spdlc's certificate): %.6g\n", L);
    printf("data: %s (%zu samples)\n", d.desc, d.n);
    printf("clean accuracy                 %.4f\n", (double)correct / (double)d.n);
    for (int e = 0; e < neps; e++)
        printf("certified accuracy at eps %-5g %.4f  (margin > %.4g)\n", eps[e], (double)certified[e] / (double)d.n,
               sqrt(2.0) * L * eps[e]);
    status = 0;
done:
    spdl_data_free(&d);
    spdl_tiles_free(tl);
    free(theta);
    free(y);
    return status;
}
