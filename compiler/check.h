/* check.h - the guarantee checker: proves or refuses what a model requires.
 *
 * Every checker reads the step program (and, through its blocks, the flow's
 * equations and scheme) and returns a Verdict: holds or not, the level of
 * the argument (DESIGN §4: proved, linearized, refused), a number (the
 * Lipschitz bound, the largest stable step, ...), the reason in words, the
 * theorem used and its reference, and notes that point at the source. A
 * verdict never claims more than its argument shows: when a premise is
 * missing (a norm bound, a structure), the verdict is refused and names it.
 * GUARANTEES.md states each rule, its assumptions and its reference. */
#ifndef SPDL_CHECK_H
#define SPDL_CHECK_H

#include "step.h"

typedef enum { LEVEL_PROVED, LEVEL_LINEARIZED, LEVEL_REFUSED, LEVEL_UNCHECKED } Level;

extern const char *const level_names[];

typedef struct VNote {
    Span span;          /* NO_SPAN for a note without a place */
    const char *msg;
    struct VNote *next;
} VNote;

typedef struct Verdict {
    ReqKind kind;
    bool evaluated;     /* the checker ran (false: not applicable to this model) */
    bool required;
    Span req_span;
    bool holds;
    Level level;
    double bound;       /* NAN when the guarantee has no number */
    const char *reason; /* one sentence: why it holds, or why not */
    const char *theorem;
    const char *reference;
    VNote *notes, *notes_tail; /* where to look: the offending parameter, scheme, step */
    /* invertible */
    const char *inverse_kind;   /* "explicit" or "fixed-point" */
    const char *logdet_kind;    /* "exact", "estimated" or "none" */
    int logdet_terms;           /* estimated: terms of the power series */
    double logdet_truncation;   /* estimated: bound on its truncation error */
    int fixed_point_iters;
} Verdict;

/* How one update is inverted (check_invertible.c, read by the emitter). */
typedef struct UpdInverse {
    UpdInfo info;
    int iters;          /* UPD_RESIDUAL: fixed-point iterations */
    double q;           /* UPD_RESIDUAL: the contraction factor bound */
} UpdInverse;

/* How M_logdet gets a block's per-layer log-determinant. */
typedef enum {
    LOGDET_STRUCTURE, /* exact from the structure: 0, sum(s), the lu diagonal */
    LOGDET_JACOBIAN,  /* log|det| of the layer Jacobian, row by row from the adjoint (residual steps, n <= 64) */
    LOGDET_SERIES,    /* Behrmann et al.'s power series with Hutchinson traces (residual steps, n > 64) */
} LogdetWay;

enum { LOGDET_JACOBIAN_MAX = 64, LOGDET_PROBES = 16, LOGDET_MAX_TERMS = 200 };

typedef struct Certificate {
    const StepProgram *p;
    Verdict v[REQ_COUNT];
    /* facts other phases use */
    double lipschitz;           /* the network's Lipschitz bound (x -> logits), or INFINITY */
    double *block_step_lip;     /* per segment: Lipschitz bound of one layer, or INFINITY */
    bool *block_nonexpansive;   /* per segment */
    UpdInverse **inverse;       /* per segment, per update (when invertible holds) */
    bool has_inverse;           /* every block inverts: M_flow_inverse and --memory=invert */
    bool has_logdet;            /* M_logdet exists (exact or estimated) */
    LogdetWay *logdet_way;      /* per segment */
    int *series_terms;          /* per segment, LOGDET_SERIES: terms of the power series */
    double logdet_truncation;   /* bound on the series' truncation error over the whole network */
} Certificate;

/* Runs every checker that applies to the model. */
Certificate *check_model(Arena *a, Diags *d, const StepProgram *p);
/* Reports each failed `require` as an error at its line, with notes; and a
 * warning for each requirement no checker decides yet. Returns the number
 * of failed requirements. */
int check_report(Diags *d, const Certificate *c);
/* The certificate: readable text, or the JSON of DESIGN §4 (the summary's
 * object is closed here). */
void check_print(FILE *out, Arena *a, const Certificate *c, bool json);

/* ---- shared by the checkers (check.c) ----------------------------------- */

void verdict_note(Arena *a, Verdict *v, Span sp, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void verdict_set(Verdict *v, bool holds, Level level, double bound, const char *reason);

/* The facts about an activation: sigma' in [dmin, dmax]; lip its Lipschitz
 * constant (INFINITY for exp); monotone when sigma' >= 0. */
typedef struct ActFacts {
    double dmin, dmax, lip;
    bool monotone;
} ActFacts;
bool act_facts(const Expr *call, ActFacts *out);

/* A parameter-only matrix expression written as S + alpha I + G, with S
 * skew-symmetric, |S| <= skew and |G| <= gen (INFINITY when unbounded). */
typedef struct MatInfo {
    double skew, alpha, gen;
    const Param *unbounded;     /* a parameter without a norm bound, if any */
    Span unbounded_span;
} MatInfo;
bool mat_info(const Expr *e, MatInfo *out);
double mat_norm(const MatInfo *mi); /* |M| <= skew + |alpha| + gen */

/* Follows `let` names to the expression they stand for. */
const Expr *expr_unlet(const Expr *e);

/* Why a bound is infinite: the first culprit found. */
typedef struct Blame {
    const char *what;       /* "has no norm bound", "exp is not globally Lipschitz", ... */
    const Param *param;     /* the parameter, when one is to blame */
    Span span;
    const char *fix;        /* a note with the fix, when there is one beyond bounding param */
} Blame;

/* How leaves count in a Lipschitz bound: state variable i with state_w[i]
 * (1 when state_w is NULL), the input with input_w, a model-level `let`
 * with let_w[its declaration index] (NULL: a model-level let is a fixed
 * value computed outside, which a block's layer map may not read). */
typedef struct LipCtx {
    const Model *m;
    const double *state_w;
    double input_w;
    const double *let_w;
    /* states whose joint vector is bounded as a whole: the group of each
     * state (-1: none) and the group's bound (model-level contexts) */
    const int *state_group;
    const double *group_w;
} LipCtx;

/* Lipschitz bound of a per-sample expression; INFINITY when unbounded, and
 * *b says why. */
double expr_lipschitz(const Expr *e, const LipCtx *cx, Blame *b);

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
} FieldInfo;

void field_classify(const Block *b, FieldInfo *fi);
/* The step the checks assume: T/N, or hmax (else T) for learned steps. */
double block_step(const Block *b);

/* The check modules. */
void check_stable(Arena *a, Certificate *c);
void check_lipschitz(Arena *a, Certificate *c);
void check_nonexpansive(Arena *a, Certificate *c);
void check_invertible(Arena *a, Certificate *c);

/* The SSP coefficient (radius of absolute monotonicity) of a tableau. */
double scheme_ssp(const Scheme *s);
/* Whether one layer of the block is proved non-expansive, with the reason
 * (and, if not, where to look and what would fix it). */
bool block_nonexpansive(Arena *a, const Block *b, const char **reason, Span *at, const char **note, const char **fix);

#endif
