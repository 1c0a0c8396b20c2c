/* emit_internal.h - what the C emitter's passes share (see emit_c.h).
 *
 * The emitter is one pass per file: emit_c.c lays out the work buffer and
 * names buffers as C expressions, then calls the others in order;
 * emit_ops.c writes the forward and adjoint code of one step-program
 * operation; emit_forward.c the parameter code, the layer functions and a
 * tile's forward pass; emit_adjoint.c the reverse sweeps (store, invert,
 * checkpoint); emit_inverse.c the inverse and the log-determinant;
 * emit_api.c the public functions, initialisation, projection, the model
 * descriptor and the header. All of them write through one E. */
#ifndef SPDL_EMIT_INTERNAL_H
#define SPDL_EMIT_INTERNAL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emit_c.h"

enum { BT = 64 };
#define NONE ((size_t)-1)

typedef enum { H_GLOBAL, H_MODEL, H_LAYERP, H_LAYERS } Home;
typedef enum { AC_TILE, AC_LANE, AC_VEC, AC_SCAL, AC_LIT } AccKind;
typedef enum { V_LOSS, V_VJP } Variant;

typedef struct E {
    Arena *a;
    Diags *d;
    const StepProgram *p;
    const Model *m;
    const EmitOpts *o;
    FILE *f;
    const char *M;
    size_t total;
    size_t theta, gtheta, padj_begin, padj_end;
    size_t gradp;             /* double: the address of the caller's gradient (gtheta is NONE) */
    size_t x, gx, lab, scratch, madj_begin, madj_end;
    size_t pscratch;          /* 2 n^2 for lu / orth kernels */
    size_t gscratch;          /* C4/D4 convolutions: the expanded filter bank and its gradient */
    size_t wscratch, nwscratch; /* float: the F(2x2, 3x3) correlations' scratch and its size (0: none) */
    size_t **minv;            /* per segment, per update: N copies of M^{-1} (linear updates) */
    size_t ld;                /* per-lane log-determinant accumulator */
    size_t ldwork;            /* residual layers' log-determinant: Jacobian rows or series vectors */
    size_t *fwd, *adj;
    size_t *S, *gS, *gS2;     /* per state */
    size_t *tape, *stride;    /* per segment */
    int *nsnap;               /* per segment: snapshots for --memory=checkpoint */
    size_t **varoff;          /* per segment, per block var: offset in a tape slot (rows) */
    bool *touched, *active;
    bool *gs_touched;         /* per state */
    size_t *gslot;            /* per segment: a block's two adjoint slots */
    int layer_seg;            /* the block whose layer function is being written, or -1 */
    bool *fused;              /* computed inside its one consumer's loop, never stored */
    bool *read;               /* read other than by a fused consumer's loop (mark_read) */
    bool *gfused;             /* its adjoint is computed inside its adjoint's loops, never stored */
    int *user;                /* a fused value's one consumer */
    int *transpose_of;        /* a live transpose of each value, or -1 */
    bool *strided;            /* a transpose only products read, through strides: never stored */
    size_t *lstride;          /* per segment: the layer values of layer k live at + k * lstride */
    int nptr;                 /* operand pointers declared in the current block */
    const char *hoist[8];     /* per-row operand reads loop_open puts outside the lane loop */
    int nhoist;
    bool row_braced;          /* loop_open opened a braced row loop for them */
    int indent;
} E;

/* emit_c.c */
const Val *VAL(E *e, int id);
Home home(const Val *v);
bool is_lit(const Val *v);
void out(E *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nl(E *e);
const char *S_(E *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *lit(E *e, double x);
int block_var(const Seg *s, int state);
int final_var(const Seg *s, int v);
bool is_alias(E *e, const Val *v);
const Param *param_of(E *e, const Val *v);
const char *F(E *e, int id);
const char *G(E *e, int id);
bool first(E *e, int o);
bool wants_adj(E *e, int o);
bool grad_guard_open(E *e, const Val *v, int o);
void grad_guard_close(E *e, bool open);
bool has_layer_code(E *e, const Seg *sg);
void partial(E *e, int o, size_t rows);
size_t rows_of(const Val *v);
size_t lanes_of(const Val *v);
void comment(E *e, const Val *v, const char *what);
const char *align_work(E *e);
const char *fn(E *e, const char *suffix);

/* emit_ops.c */
void loop_open(E *e, const Val *res);
void loop_close(E *e, const Val *res);
bool is_elementwise(Op op);
const char *operand_at(E *e, int o, const Val *res);
void op_forward(E *e, const Val *v);
void op_adjoint(E *e, const Val *v);

/* emit_forward.c */
void compute_active(E *e, Variant var);
void emit_prepare(E *e);
void emit_layer(E *e, int s);
void emit_load(E *e);
void emit_tile_forward(E *e);

/* emit_adjoint.c */
void emit_prepare_adj(E *e);
void emit_revolve(E *e, int s);
void emit_tile_backward(E *e, Variant var);

/* emit_inverse.c */
void emit_layer_inverse(E *e, int s);
void emit_prepare_inverse(E *e);
void emit_inverse_public(E *e);
void emit_layer_logdet(E *e, int s);

/* emit_api.c */
void emit_public(E *e);
void emit_init_project(E *e);
void emit_descriptor(E *e);
void emit_header(E *e);

#endif
