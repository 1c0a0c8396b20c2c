/* check.h - the guarantee checker: proves or refuses what a model requires.
 *
 * Every checker reads the step program, through the analyses of
 * analysis.h (and, from its blocks, the scheme, the step size and the
 * layer count), and returns a Verdict: holds or not, the level of
 * the argument (DESIGN §4: proved, linearized, refused), a number (the
 * Lipschitz bound, the largest stable step, ...), the reason in words, the
 * theorem used and its reference, and notes that point at the source. A
 * verdict never claims more than its argument shows: when a premise is
 * missing (a norm bound, a structure), the verdict is refused and names it.
 * GUARANTEES.md states each rule, its assumptions and its reference. */
#ifndef SPDL_CHECK_H
#define SPDL_CHECK_H

#include "analysis.h"

typedef enum { LEVEL_PROVED, LEVEL_LINEARIZED, LEVEL_REFUSED } Level;

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
    /* the checkers' scratch for Lipschitz bounds (analysis.h), allocated
     * once: the model's values, and one layer's */
    LipCtx *model_lip, *layer_lip;
} Certificate;

/* Runs every checker that applies to the model. */
Certificate *check_model(Arena *a, Diags *d, const StepProgram *p);
/* Reports each failed `require` as an error at its line, with notes.
 * Returns the number of failed requirements. */
int check_report(Diags *d, const Certificate *c);
/* The certificate: readable text, or the JSON of DESIGN §4 (the summary's
 * object is closed here). */
void check_print(FILE *out, Arena *a, const Certificate *c, bool json);

/* ---- shared by the checkers (check.c) ----------------------------------- */

void verdict_note(Arena *a, Verdict *v, Span sp, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void verdict_set(Verdict *v, bool holds, Level level, double bound, const char *reason);

/* The check modules. */
void check_stable(Arena *a, Certificate *c);
void check_lipschitz(Arena *a, Certificate *c);
void check_nonexpansive(Arena *a, Certificate *c);
void check_invertible(Arena *a, Certificate *c);
void check_equivariant(Arena *a, Certificate *c);

#endif
