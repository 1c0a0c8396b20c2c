/* resolve.h - the checked model: names bound, shapes and structure known.
 *
 * The resolver walks the AST once, binds every name, gives every expression
 * a Type (shape, what it varies with, group field), folds constants, and
 * builds the Model that every later phase reads: inputs, states, parameters
 * with their structure (skew, orth, lu, group kernels, norm bounds), the
 * flow and repeat blocks with their schemes, the output, the loss and the
 * required guarantees. It reports every error it finds in one run. */
#ifndef SPDL_RESOLVE_H
#define SPDL_RESOLVE_H

#include <stddef.h>

#include "ast.h"
#include "tableau.h"

/* The built-in functions, with the facts about them that checks need. */
typedef enum {
    FN_NONE,
    FN_TANH, FN_RELU, FN_SIGMOID, FN_SOFTPLUS, FN_IDENTITY, FN_EXP, FN_LEAKY_RELU,
    FN_SOFTMAX, FN_CROSS_ENTROPY, FN_MSE, FN_NLL_GAUSSIAN, FN_SMOOTH,
    FN_PAD, FN_JOIN, FN_SUM, FN_MEAN,
    FN_LIFT, FN_GCONV, FN_GCONV_T, FN_GPOOL, FN_MEAN_SPACE, FN_MEAN_SET, FN_POOL2,
    FN_COUNT
} Builtin;

typedef struct BuiltinInfo {
    const char *name;
    int min_args, max_args;
    bool activation;        /* elementwise sigma: the facts below apply */
    double dmin, dmax;      /* range of sigma' (leaky_relu: dmin is its slope a) */
    bool monotone;          /* sigma' >= 0 */
    bool lipschitz;         /* globally Lipschitz (exp is not) */
} BuiltinInfo;

extern const BuiltinInfo builtin_info[FN_COUNT];

typedef enum { GROUP_C4, GROUP_D4, GROUP_Z, GROUP_S } GroupKind;

typedef struct Group {
    const char *name;       /* "C4", "D4", "Z(8)", "S(5)" */
    GroupKind kind;
    int n;                  /* Z(n), S(n) */
    int order;              /* |G| */
    Span span;
    struct Sym *acts_on;
} Group;

typedef enum {
    PK_FREE,    /* R[...]                               */
    PK_SKEW,    /* skew[n]: n(n-1)/2 numbers, value A - A'    */
    PK_ORTH,    /* orth[n]: Cayley transform of a skew matrix */
    PK_LU,      /* lu[n]: P L U, unit lower L, diag(U) = exp(s) */
    PK_LIFT,    /* lift[G, cin -> cout, k]               */
    PK_GCONV,   /* gconv[G, cin -> cout, k]              */
    PK_STEPS,   /* the learned step sizes of a flow      */
} ParamKind;

typedef struct Param {
    const char *name;
    Span span;
    Decl *decl;
    int index;              /* declaration order; theta order */
    ParamKind kind;
    Shape shape;            /* the value an expression sees (n x n for skew) */
    Shape store;            /* how one layer's copy is stored (spdl_param.shape) */
    size_t nstore;          /* numbers stored per layer */
    bool per_layer;
    int layers;             /* copies: the block's N for per-layer, else 1 */
    struct Block *block;    /* the block that uses a per-layer parameter */
    bool has_norm;
    double norm_bound;      /* where norm(P) <= norm_bound */
    Span norm_span;
    Group *group;           /* lift / gconv */
    int cin, cout, ksize;
    size_t offset, size;    /* in theta: size = nstore * layers */
    bool used;
} Param;

typedef struct State {
    const char *name;
    Span span;
    Decl *decl;
    int index;
    Shape shape;
    size_t size, offset;    /* in the state vector s */
    Expr *init;
    FieldKind field;
    bool hidden;            /* the log-determinant nll_gaussian needs: not in s */
} State;

typedef enum { BLOCK_FLOW, BLOCK_REPEAT } BlockKind;

typedef struct Block {
    BlockKind kind;
    Decl *decl;
    Span span;
    int index;
    int layers;
    double t0, t1, h;       /* flow: h = (t1 - t0) / layers; repeat: h = 1 */
    const Scheme *scheme;   /* flow only */
    Span scheme_span;
    bool learned;           /* steps learned */
    bool has_hmax;
    double hmax;
    Param *dt;              /* the learned steps parameter */
    Span steps_span;
    /* D_EQUATION / D_ASSIGN / D_LET items of the body, in source order */
    Decl **items;
    int nitems;
    State **vars;           /* flow: states with an equation, written order */
    int nvars;
} Block;

typedef enum {
    REQ_STABLE, REQ_LIPSCHITZ, REQ_NONEXPANSIVE, REQ_INVERTIBLE, REQ_EQUIVARIANT, REQ_INVARIANT,
    REQ_COUNT
} ReqKind;

extern const char *const req_names[REQ_COUNT];

typedef struct Req {
    ReqKind kind;
    Span span;
    double bound;           /* lipschitz <= bound */
    Group *group;           /* equivariant(G), invariant(G) */
} Req;

typedef enum {
    S_INPUT, S_LABEL, S_TARGET, S_STATE, S_PARAM, S_GROUP, S_LET, S_CONST, S_OUTPUT,
    S_SCHEME, S_DEF, S_MODEL,
} SymKind;

typedef struct Sym {
    SymKind kind;
    const char *name;
    Span span;
    int order;              /* position among the model's declarations */
    int visit;              /* 1 while its declaration is resolved (S_DEF: the
                               recursion check; 2 when done) */
    bool bad;               /* S_DEF: recursive, reported: calls are poisoned */
    Type type;
    double value;           /* S_CONST */
    Expr *expr;             /* S_LET, S_OUTPUT: the value */
    Decl *decl;
    Item *item;             /* S_SCHEME, S_DEF, S_MODEL */
    State *state;
    Param *param;
    Group *group;
    const Scheme *scheme;
    bool prelude;
    bool used;
    int low;                /* lowering's scratch: the value a let is bound to */
} Sym;

typedef struct Model {
    const char *name;
    Span span;
    Item *item;
    Sym *input;
    Shape in_shape;
    size_t nin;
    Sym *label;             /* label c : class[n] */
    Sym *target;            /* target t : R[m] */
    int nclass;
    size_t ntarget;         /* doubles per sample in `target` (DESIGN §6) */
    State **states;         /* declared states, then (last) the hidden logdet */
    int nstates;
    size_t state_size;      /* of the declared states: the state vector s */
    State *logdet;          /* log|det ds/ds0| accumulated through the layers, if nll_gaussian is used */
    Param **params;
    int nparams;
    size_t theta_size;
    Group **groups;
    int ngroups;
    Block **blocks;
    int nblocks;
    Sym *output;
    Shape out_shape;
    size_t nout;
    Expr *loss;
    Span loss_span;
    Req reqs[16];
    int nreqs;
    Decl **decls;           /* every model declaration, in source order */
    int ndecls;
} Model;

typedef struct ResolveResult {
    Model *model;           /* NULL if there were errors or no model */
    Model **models;         /* every model in the file */
    int nmodels;
} ResolveResult;

/* Resolves the models of main_file (items of other files provide schemes,
 * defs and constants). `only` picks a model by name when there are several. */
ResolveResult resolve(Arena *a, Diags *d, Ast *ast, int main_file, const char *only);
/* A coarser level of the model (spdlc build --levels, --grid-levels). */
typedef struct Coarsening {
    int layers; /* every flow in 1/layers of its layers, over the same interval */
    int grid;   /* the images 1/grid the size per side: the grid axes of the input
                   (acted on by C4 or D4) and of every state on a grid */
} Coarsening;

/* The same at a coarser level: a located error where a flow's count or a
 * grid is not divisible. Repeat blocks keep their layers: they discretise
 * nothing. A state is on a grid when its initial value is a spatial or
 * regular field, or, for a constant initial value (or one the checker
 * cannot type), when it is R[..., m, m] of rank 3 or 4 with m the input's
 * grid over a power of two (the grid after some pool2). Parameters keep
 * their declared shapes: a model whose parameters depend on the grid has no
 * grid levels (its coarse level does not type-check). An image target is
 * refused. It rebinds the AST's names (Decl.sem), so lower a result before
 * resolving the AST again. */
ResolveResult resolve_coarse(Arena *a, Diags *d, Ast *ast, int main_file, const char *only, Coarsening c);

size_t shape_size(Shape s);
bool   shape_eq(Shape a, Shape b);
/* "R[8,8]" */
const char *type_str(Arena *a, Type t);

#endif
