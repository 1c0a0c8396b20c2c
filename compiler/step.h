/* step.h - the step program: the one IR that checks and backends read.
 *
 * Lowering turns the checked model into values in SSA form. A value is
 * computed once per call and shared by all samples (VARY_CONST/VARY_PARAM:
 * "parameter code"), or once per sample (VARY_SAMPLE). The program is a list
 * of segments in execution order: model-level code (state initializers,
 * lets, the output, the loss) and blocks. A block is a layer template run for
 * k = 0..N-1: its parameter code reads the k-th copy of per-layer parameters,
 * its sample code reads the states at the start of the layer, and its updates
 * assign new state values in order. Schemes are expanded here: a Runge-Kutta
 * tableau into its stages, verlet and symplectic_euler into their ordered
 * half- and full-step updates (DESIGN §3), so every later phase sees only
 * assignments. Every value keeps the span of the source it came from. */
#ifndef SPDL_STEP_H
#define SPDL_STEP_H

#include "resolve.h"

typedef enum {
    OP_CONST,      /* num (scalar)                                        */
    OP_INPUT,      /* the sample's input                                  */
    OP_LABEL,      /* class index (as a number) or regression target      */
    OP_PARAM,      /* parameter `index` (its k-th copy if per layer)      */
    OP_STATE,      /* state `index`: in a block, its value at layer start;
                      at model level, a copy of its current value         */
    OP_STORE,      /* model level: state `index` := a                     */
    OP_COPY,       /* a                                                   */
    OP_FILL,       /* the scalar a in every entry of shape                */
    OP_SKEW,       /* n x n skew matrix from its n(n-1)/2 numbers a       */
    OP_CAYLEY,     /* orth[n]: (I - a)^{-1} (I + a), a skew               */
    OP_LU,         /* lu[n]: L U from the n x n numbers a                 */
    OP_LU_LOGDET,  /* log|det| of lu[n]: the sum of the diagonal of a     */
    OP_IDENTITY,   /* n x n identity                                      */
    OP_TRANSPOSE,  /* a'                                                  */
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, /* elementwise; scalar and channel broadcast */
    OP_NEG,
    OP_POW,        /* a ^ num                                             */
    OP_ACT,        /* fn(a), fn an activation; num = leaky slope          */
    OP_MATMUL,     /* a * b: a [m,n] shared by the samples, b [n] or [n,p] */
    OP_SLICE,      /* a[lo:hi, ...]                                       */
    OP_PAD,        /* a padded with zeros along axis 0                    */
    OP_JOIN,       /* args concatenated along axis 0                      */
    OP_SUM, OP_MEAN,
    OP_SOFTMAX,
    OP_CE,         /* cross_entropy(a, label b); fused with softmax when
                      `logits`: -log softmax(a)[c]                       */
    OP_MSE,        /* sum_i (a_i - b_i)^2; b a one-hot label if is_class */
    OP_NLL,        /* 0.5 |a|^2 + d/2 log(2 pi) - log det                 */
    OP_SMOOTH,     /* sum over args P of sum_k |P_{k+1} - P_k|^2 / h      */
    OP_LIFT, OP_GCONV, OP_GCONV_T, OP_GPOOL, OP_MEAN_SPACE, OP_MEAN_SET, OP_POOL2,
    OP_COUNT
} Op;

extern const char *const op_names[OP_COUNT];

typedef enum { SCOPE_GLOBAL = -1 } ScopeId;  /* else: segment index */

typedef struct Val {
    int id;
    Op op;
    Span span;
    Shape shape;
    size_t size;
    Vary vary;
    int scope;          /* SCOPE_GLOBAL for shared parameter code, else its segment */
    bool layer;         /* parameter code that depends on the layer k */
    int a, b;           /* operands, -1 if none */
    int *args;          /* OP_JOIN, OP_SMOOTH */
    int nargs;
    double num;
    int fn;             /* OP_ACT: Builtin */
    int index;          /* OP_PARAM, OP_STATE, OP_STORE */
    int lo[MAX_RANK], hi[MAX_RANK];  /* OP_SLICE ranges, OP_PAD: hi[0] = padded size */
    bool logits;        /* OP_CE fused with softmax */
    bool is_class;      /* OP_LABEL, OP_MSE: the label is a class index */
    int bcast;          /* elementwise broadcast of the smaller operand (BCAST_*) */
    int seg;            /* the segment whose code computes it; -1 global */
    bool dead;
} Val;

enum { BCAST_NONE, BCAST_SCALAR, BCAST_CHANNEL };

typedef struct Update {
    int state;          /* index into Model.states */
    int value;          /* the new value */
    int old;            /* the value it replaces */
    int group;          /* updates with equal group are simultaneous */
    Span span;          /* the equation or assignment */
    const char *what;   /* "y += h/2 F(z)" etc., for dumps and messages */
} Update;

typedef enum { SEG_CODE, SEG_BLOCK } SegKind;

typedef struct Seg {
    SegKind kind;
    int *code;          /* sample values in order (SEG_CODE: also OP_STORE) */
    int ncode, capcode;
    /* SEG_BLOCK */
    const Block *blk;
    int *pcode;         /* per-layer parameter code */
    int npcode, cappcode;
    int *inputs;        /* per block var: the OP_STATE value at layer start */
    int *finals;        /* per block var: the value at layer end */
    int *vars;          /* block vars (state indices) written by the layer */
    int nvars;
    Update *upd;
    int nupd, capupd;
    /* flow blocks: the vector field as the layer evaluates it, for the
     * checkers. field[e] is equation e's right-hand side (Block.vars order)
     * the first time the layer computes it (a Runge-Kutta scheme's first
     * stage, a partitioned scheme's first update of that variable), and
     * field_at[e * nvars + j] the value of block variable j it read then
     * (Block.vars order). */
    int *field;
    int *field_at;
    Span span;
} Seg;

typedef struct StepProgram {
    const Model *m;
    Val **vals;
    int nvals, capvals;
    int *gcode;         /* shared parameter code, computed once per call */
    int ngcode, capgcode;
    Seg *segs;
    int nsegs;
    int out;            /* the output value */
    int loss_sample;    /* per-sample loss (scalar), or -1 */
    int loss_param;     /* parameter-only loss terms, or -1 */
    int input, label;   /* the OP_INPUT / OP_LABEL values, or -1 */
    /* the model is a density whose input is its initial state and whose
     * output is its final state (both in declaration order): sampling and
     * nll_gaussian need exactly that (volume-preserving ends) */
    bool density;
    struct StepMarks *marks; /* visit marks for step_classify's dependence searches */
} StepProgram;

/* How an update's new value depends on the value it replaces (DESIGN §4
 * invertibility; the log-determinant of nll_gaussian). */
struct Seg;

typedef enum {
    UPD_SHEAR,      /* new = old + sign x, x independent of old           */
    UPD_AFFINE,     /* new = old * e + t, e = exp(s); s, t independent     */
    UPD_LINEAR,     /* new = M old + t, M an orth or lu parameter          */
    UPD_RESIDUAL,   /* new = old + x(old): invertible if x is contractive  */
    UPD_OTHER,      /* anything else                                       */
} UpdKind;

typedef struct UpdInfo {
    UpdKind kind;
    int x, sign;    /* SHEAR, RESIDUAL */
    int e, s;       /* AFFINE */
    int t;          /* AFFINE, LINEAR: the added term, or -1 */
    int mat;        /* LINEAR */
} UpdInfo;

/* The current values of the block's variables just before update k, one
 * per s->vars entry, into cur. */
void step_current(const struct StepProgram *p, const struct Seg *s, int k, int *cur);
/* Whether value v depends on value target (through sample operands). */
bool step_depends(const struct StepProgram *p, int v, int target);
/* Classifies update k of block segment s; the other variables' current
 * values are given (an update is a map of the current state). */
void step_classify(const struct StepProgram *p, const struct Seg *s, int k, UpdInfo *out);

/* Lowers a checked model. Reports (rare) unsupported constructs in d. */
StepProgram *step_lower(Arena *a, Diags *d, const Model *m);
/* `spdlc emit --dump-ir`: the program in a stable text form. */
void step_dump(FILE *out, const Diags *d, const StepProgram *p);

static inline const Val *step_val(const StepProgram *p, int id) { return id >= 0 ? p->vals[id] : NULL; }

#endif
