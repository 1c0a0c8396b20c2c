/* check_nonexpansive.c - `require nonexpansive` (DESIGN §4), proved.
 *
 * A flow du/dt = -c M' sigma(M u + b) with sigma monotone and
 * 0 <= sigma' <= d is a gradient flow of the convex function
 * f(u) = c sum_i phi((M u + b)_i), phi' = sigma, whose gradient is
 * L-Lipschitz with L = c d |M|^2. By the Baillon-Haddad theorem grad f is
 * (1/L)-co-coercive, so the Euler step u - h grad f(u) is non-expansive for
 * h <= 2/L. An explicit Runge-Kutta scheme with SSP coefficient r > 0 is a
 * convex combination of Euler steps of size h/r, hence non-expansive for
 * h <= 2 r / L; r = 0 (classical rk4, kutta3) proves nothing. The
 * guarantee is about the flow: every layer of every block non-expansive, so
 * the blocks map the state 1-Lipschitz (the read-out's norm is the
 * lipschitz guarantee's business). The field's form and the scheme's SSP
 * coefficient are analysis.c's (an_nonexpansive), which check_lipschitz.c
 * also reads. */
#include <math.h>

#include "check.h"

void check_nonexpansive(Arena *a, Certificate *c)
{
    const StepProgram *p = c->p;
    Verdict *v = &c->v[REQ_NONEXPANSIVE];
    v->theorem = "Baillon-Haddad: the gradient of a convex function with L-Lipschitz gradient is 1/L-co-coercive, so "
                 "u - h grad f(u) is non-expansive for h <= 2/L; SSP schemes are convex combinations of such steps";
    v->reference = "Celledoni et al. 2021 (Sec. 3); Baillon & Haddad 1977; Gottlieb, Ketcheson & Shu 2011 (SSP methods)";
    const char *why = NULL;
    bool any = false;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        any = true;
        const char *reason, *note, *fix;
        Span at;
        bool ok = an_nonexpansive(a, p, sg, &reason, &at, &note, &fix);
        if (!ok) {
            if (!why)
                why = reason;
            verdict_note(a, v, at, "%s", note);
            if (fix)
                verdict_note(a, v, NO_SPAN, "%s", fix);
        }
    }
    if (!p->nsegs || !any) {
        verdict_set(v, false, LEVEL_REFUSED, NAN, "the model has no flow or repeat block");
        return;
    }
    if (why)
        verdict_set(v, false, LEVEL_REFUSED, NAN, why);
    else
        verdict_set(v, true, LEVEL_PROVED, 1, "every layer is non-expansive, so the flow maps the state 1-Lipschitz");
}
