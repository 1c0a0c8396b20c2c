/* analysis.h - what the guarantee checkers know about step-program values.
 *
 * Every verdict is computed from the step program, the IR the emitter turns
 * into C, never from the AST: a `let`, `c * I` or a scheme's stages mean
 * here exactly what the generated code computes. This module holds the
 * analyses the checkers share: activation facts, structured matrices
 * (S + alpha I + G with norm bounds), Lipschitz bounds of values, the
 * structure of a flow's vector field, and per-layer bounds. What it cannot
 * classify it reports as unbounded or generic: it never assumes. */
#ifndef SPDL_ANALYSIS_H
#define SPDL_ANALYSIS_H

#include "step.h"

/* sigma' in [dmin, dmax]; lip its Lipschitz constant (INFINITY for exp);
 * monotone when sigma' >= 0. The identity when v is no activation. */
typedef struct ActFacts {
    double dmin, dmax, lip;
    bool monotone;
} ActFacts;
bool an_act(const Val *v, ActFacts *out);

/* A parameter-code matrix written as S + alpha I + G, with S skew-symmetric,
 * |S| <= skew and |G| <= gen (INFINITY when unbounded). */
typedef struct MatInfo {
    double skew, alpha, gen;
    const Param *unbounded;     /* a parameter without a norm bound, if any */
    Span unbounded_span;
} MatInfo;
bool an_mat(const StepProgram *p, int v, MatInfo *out);
double mat_norm(const MatInfo *mi); /* |M| <= skew + |alpha| + gen */

/* Why a bound is infinite: the first culprit found. */
typedef struct Blame {
    const char *what;       /* "has no norm bound", "exp is not globally Lipschitz", ... */
    const Param *param;     /* the parameter, when one is to blame */
    Span span;
    const char *fix;        /* a note with the fix, when there is one beyond bounding param */
} Blame;

/* Lipschitz bounds of sample values as functions of chosen leaves: values
 * with a weight (|d leaf| <= w |d x|), grouped so that a join of distinct
 * states of one group is a coordinate projection of the group's vector
 * (bounded by the group's weight). Results are cached until an_lip_reset. */
typedef struct LipCtx LipCtx;
LipCtx *an_lip_new(Arena *a, const StepProgram *p);
/* Forgets leaves, groups and cached bounds; seg >= 0 makes it a layer
 * context of that block (values computed outside it are not functions of
 * its state), -1 a model context (input_w: the input's weight). */
void an_lip_reset(LipCtx *cx, int seg, double input_w);
/* why: the culprit when w is infinite */
void an_lip_leaf(LipCtx *cx, int v, double w, int group, int state, const Blame *why);
void an_lip_group(LipCtx *cx, int group, double w, const Blame *why);
/* The bound of value v; INFINITY when unbounded, and *b says why. */
double an_lip(LipCtx *cx, int v, Blame *b);

/* The structure of a flow's vector field (DESIGN §4, GUARANTEES.md). */
typedef enum {
    FIELD_GENERIC,      /* no structure recognised: Lipschitz bounds only  */
    FIELD_AFFINE,       /* du/dt = c sigma(M u + b), M = S + alpha I + G    */
    FIELD_GRADIENT,     /* du/dt = -c M' sigma(M u + b), sigma monotone     */
    FIELD_HAMILTONIAN,  /* dy/dt = s1 f(M z + b), dz/dt = s2 g(+-M' y + c)  */
} FieldClass;

typedef struct FieldInfo {
    FieldClass cls;
    ActFacts act, act2;     /* the activation(s); identity when none        */
    MatInfo mat;            /* M (scaled by c for FIELD_AFFINE)             */
    double scale;           /* c of the gradient form, |s1 s2| of Hamilton  */
    Span span;              /* the equation(s)                              */
    const char *why;        /* FIELD_GENERIC: what did not match            */
    const Param *conv;      /* -c gconv'(k, sigma(gconv(k, u) + b)): k, whose
                               declared bound is on the map gconv(k, .)     */
} FieldInfo;

/* Classifies the field of flow segment s from its field values. */
void an_field(const StepProgram *p, const Seg *s, FieldInfo *fi);
/* The step the checks assume: T/N, or hmax (else T) for learned steps. */
double block_step(const Block *b);
/* The SSP coefficient (radius of absolute monotonicity) of a tableau. */
double scheme_ssp(const Scheme *s);

/* Whether one layer of block segment s is proved non-expansive, with the
 * reason (and, if not, where to look and what would fix it). */
bool an_nonexpansive(Arena *a, const StepProgram *p, const Seg *s, const char **reason, Span *at, const char **note,
                     const char **fix);
/* The Lipschitz bound of one layer of block segment s as a map of the
 * block's state vector: the product over its update groups (simultaneous
 * updates) of 1 + |x| for shears and residual updates v = v + x, else
 * sqrt(1 + |e|^2) (sqrt(sum |e_k|^2) when the group writes every variable),
 * each update read as a map of the variables' current values. */
double an_layer_lipschitz(LipCtx *cx, const StepProgram *p, int seg, Blame *b);
/* The Lipschitz bound q of x in the residual update k of segment seg,
 * v = v + x(v, others), over its group (the joint bound for simultaneous
 * updates). */
double an_residual_q(LipCtx *cx, const StepProgram *p, int seg, int k, int x, Blame *b);

/* The n x n grid on which a C4/D4 kernel's norm bound holds and M_project
 * enforces it (DESIGN §8): the largest grid the step program applies the
 * kernel to (lift, gconv or gconv'), since the map on a smaller grid is a
 * compression of the map on a larger one and so has no larger norm; the
 * input's grid when the kernel is never applied. */
int an_conv_grid(const StepProgram *p, const Param *pm);

#endif
