/* emit_c.c - C emission (see emit_c.h).
 *
 * The work buffer the caller owns holds, in order: the parameters converted
 * to `real`, the parameter code's values (per layer where they depend on k),
 * their adjoints and the gradient (zeroed once per call), then one tile's
 * sample data: input, labels, state buffers, model-level values, the layer
 * values of each block (one set per layer under --memory=store, so the
 * adjoint recomputes nothing) and its tape of layer inputs, and the
 * adjoints of the sample values. Every buffer has a compile-time offset, so
 * generated loops index `w + constant` (or `w + constant + k * stride`) and
 * the C compiler sees that they do not overlap. Elementwise chains are
 * fused (plan_fusion), so most of a layer's intermediate values have no
 * buffer at all. */
#include "emit_c.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis.h"
#include "summary.h"
#include "version.h"

extern const char spdl_kernels_text[];
extern const unsigned spdl_kernels_len;
extern const char spdl_header_text[];
extern const unsigned spdl_header_len;

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
    size_t x, gx, lab, scratch, madj_begin, madj_end;
    size_t pscratch;          /* 2 n^2 for lu / orth kernels */
    size_t gscratch;          /* C4/D4 convolutions: the expanded filter bank and its gradient */
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
    bool *gfused;             /* its adjoint is computed inside its adjoint's loops, never stored */
    int *user;                /* a fused value's one consumer */
    int *transpose_of;        /* a live transpose of each value, or -1 */
    size_t *lstride;          /* per segment: the layer values of layer k live at + k * lstride */
    int nptr;                 /* operand pointers declared in the current block */
    const char *hoist[8];     /* per-row operand reads loop_open puts outside the lane loop */
    int nhoist;
    bool row_braced;          /* loop_open opened a braced row loop for them */
    int indent;
} E;

static const Val *VAL(E *e, int id) { return e->p->vals[id]; }

static Home home(const Val *v)
{
    if (v->seg < 0)
        return H_GLOBAL;
    if (v->vary != VARY_SAMPLE)
        return H_LAYERP;
    return v->layer ? H_LAYERS : H_MODEL;
}

static bool is_lit(const Val *v) { return v->op == OP_CONST && v->shape.rank == 0; }

static void out(E *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(E *e, const char *fmt, ...)
{
    fprintf(e->f, "%*s", e->indent * 4, "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->f, fmt, ap);
    va_end(ap);
    fputc('\n', e->f);
}

static void nl(E *e) { fputc('\n', e->f); }

static const char *S_(E *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *S_(E *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *buf = arena_alloc(e->a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return buf;
}

static const char *lit(E *e, double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        return S_(e, "%.1f", x);
    return S_(e, "%.17g", x);
}

/* ---- layout ----------------------------------------------------------------------- */

static size_t alloc(E *e, size_t n)
{
    size_t off = e->total;
    e->total += (n + 7) & ~(size_t)7; /* 64-byte aligned in double, 32 in float */
    return off;
}

static int block_var(const Seg *s, int state)
{
    for (int k = 0; k < s->nvars; k++)
        if (s->vars[k] == state)
            return k;
    return -1;
}

static int input_var(const Seg *s, int v)
{
    for (int k = 0; k < s->nvars; k++)
        if (s->inputs[k] == v)
            return k;
    return -1;
}

static int final_var(const Seg *s, int v)
{
    for (int k = 0; k < s->nvars; k++)
        if (s->finals[k] == v)
            return k;
    return -1;
}

static bool is_alias(E *e, const Val *v)
{
    if (is_lit(v) || v->op == OP_PARAM || v->op == OP_INPUT || v->op == OP_LABEL || v->op == OP_STORE)
        return true;
    if (home(v) == H_LAYERS) {
        const Seg *s = &e->p->segs[v->seg];
        return input_var(s, v->id) >= 0 || final_var(s, v->id) >= 0;
    }
    return false;
}

static bool is_elementwise(Op op);

/* Marks the buffers code other than a fused consumer's loop reads: what
 * the adjoint of each operation reads (its own value or its operands'),
 * what the inverse and log-determinant read, and the program's results. */
static void mark_read(E *e, bool *read)
{
    const StepProgram *p = e->p;
    for (int i = 0; i < p->nvals; i++) {
        const Val *v = p->vals[i];
        if (v->dead)
            continue;
        bool a = false, b = false, self = false;
        switch (v->op) {
        case OP_ADD: case OP_SUB: case OP_NEG: case OP_COPY: case OP_FILL: break;
        case OP_MUL: a = v->b >= 0 && !is_lit(VAL(e, v->b)); b = !is_lit(VAL(e, v->a)); break;
        case OP_DIV: b = self = true; break;
        case OP_POW: a = true; break;
        case OP_ACT:
            switch ((Builtin)v->fn) {
            case FN_TANH: case FN_SIGMOID: case FN_EXP: self = true; break;
            case FN_RELU: case FN_LEAKY_RELU: case FN_SOFTPLUS: a = true; break;
            default: break;
            }
            break;
        case OP_MATMUL: a = b = true; break;
        default:
            a = b = self = true;
            for (int j = 0; j < v->nargs; j++)
                read[v->args[j]] = true;
        }
        if (a && v->a >= 0)
            read[v->a] = true;
        if (b && v->b >= 0)
            read[v->b] = true;
        if (self)
            read[i] = true;
    }
    if (p->out >= 0)
        read[p->out] = true;
    if (p->loss_sample >= 0)
        read[p->loss_sample] = true;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        for (int j = 0; sg->kind == SEG_BLOCK && j < sg->nupd; j++) {
            read[sg->upd[j].value] = read[sg->upd[j].old] = true;
            if (!e->o->cert || !e->o->cert->has_inverse)
                continue;
            const UpdInfo *ui = &e->o->cert->inverse[s][j].info;
            if (ui->kind == UPD_RESIDUAL && ui->x >= 0)
                read[ui->x] = true; /* read by index in the fixed-point loop */
            if (ui->kind == UPD_AFFINE && ui->s >= 0)
                read[ui->s] = true; /* the log-determinant's sum */
        }
    }
}

/* Fusion: an elementwise layer value used once, by an elementwise consumer
 * over the same rows, has an adjoint that is never stored: its own adjoint
 * loops compute the consumer's contribution (adj_at). If nothing else reads
 * its value either, the value is not stored: its consumer's loop computes
 * it (operand_at). Chains such as y + h * tanh(K z + b) after the product
 * become one loop each way. */
static void plan_fusion(E *e)
{
    const StepProgram *p = e->p;
    int nv = p->nvals;
    int *uses = ARENA_ARRAY(e->a, int, nv), *user = e->user = ARENA_ARRAY(e->a, int, nv);
    bool *read = ARENA_ARRAY(e->a, bool, nv);
    e->fused = ARENA_ARRAY(e->a, bool, nv);
    e->transpose_of = ARENA_ARRAY(e->a, int, nv);
    for (int i = 0; i < nv; i++)
        e->transpose_of[i] = -1;
    for (int i = 0; i < nv; i++) {
        const Val *v = p->vals[i];
        if (v->dead)
            continue;
        if (v->op == OP_TRANSPOSE && e->transpose_of[v->a] < 0)
            e->transpose_of[v->a] = i;
        int ops[2] = {v->a, v->b};
        for (int j = 0; j < 2; j++)
            if (ops[j] >= 0)
                uses[ops[j]]++, user[ops[j]] = i;
        for (int j = 0; j < v->nargs; j++)
            uses[v->args[j]]++, user[v->args[j]] = i;
    }
    mark_read(e, read);
    e->gfused = ARENA_ARRAY(e->a, bool, nv);
    for (int i = 0; i < nv; i++) {
        const Val *v = p->vals[i];
        if (v->dead || !is_elementwise(v->op) || home(v) != H_LAYERS || is_alias(e, v) || uses[i] != 1)
            continue;
        const Val *c = p->vals[user[i]];
        e->gfused[i] = is_elementwise(c->op) && c->seg == v->seg && c->vary == VARY_SAMPLE && c->size == v->size;
        e->fused[i] = e->gfused[i] && !read[i];
    }
}

/* --memory=checkpoint keeps ceil(log2 N) + 1 layer inputs */
static int nsnap(int N)
{
    int s = 1;
    while ((1 << (s - 1)) < N)
        s++;
    return s;
}

static void layout(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    int nv = p->nvals;
    e->fwd = ARENA_ARRAY(e->a, size_t, nv);
    e->adj = ARENA_ARRAY(e->a, size_t, nv);
    for (int i = 0; i < nv; i++)
        e->fwd[i] = e->adj[i] = NONE;
    plan_fusion(e);
    e->theta = alloc(e, m->theta_size);
    size_t nmax = 1;
    for (int i = 0; i < nv; i++)
        if (p->vals[i]->op == OP_CAYLEY || p->vals[i]->op == OP_LU)
            nmax = nmax > (size_t)p->vals[i]->shape.dim[0] ? nmax : (size_t)p->vals[i]->shape.dim[0];
    e->pscratch = alloc(e, 2 * nmax * nmax);
    size_t bank = 0;
    for (int i = 0; i < nv; i++) {
        const Val *v = p->vals[i];
        if ((v->op == OP_LIFT || v->op == OP_GCONV || v->op == OP_GCONV_T) && !v->dead) {
            const Param *pm = m->params[p->vals[v->a]->index];
            if (pm->group->kind != GROUP_Z) {
                size_t b = (size_t)pm->cout * (size_t)pm->group->order * (size_t)pm->cin *
                           (size_t)(pm->kind == PK_GCONV ? pm->group->order : 1) * (size_t)pm->ksize * (size_t)pm->ksize;
                bank = bank > b ? bank : b;
            }
        }
    }
    e->gscratch = alloc(e, 2 * bank);
    /* parameter code values */
    for (int i = 0; i < p->ngcode; i++) {
        const Val *v = VAL(e, p->gcode[i]);
        if (!is_alias(e, v))
            e->fwd[v->id] = alloc(e, v->size);
    }
    for (int s = 0; s < p->nsegs; s++)
        for (int i = 0; i < p->segs[s].npcode; i++) {
            const Val *v = VAL(e, p->segs[s].pcode[i]);
            if (!is_alias(e, v))
                e->fwd[v->id] = alloc(e, v->size * (size_t)p->segs[s].blk->layers);
        }
    /* their adjoints and the gradient: one region, zeroed once per call */
    e->padj_begin = e->total;
    e->gtheta = alloc(e, m->theta_size);
    for (int i = 0; i < p->ngcode; i++) {
        const Val *v = VAL(e, p->gcode[i]);
        if (!is_alias(e, v) && v->vary != VARY_CONST)
            e->adj[v->id] = alloc(e, v->size);
    }
    for (int s = 0; s < p->nsegs; s++)
        for (int i = 0; i < p->segs[s].npcode; i++) {
            const Val *v = VAL(e, p->segs[s].pcode[i]);
            if (!is_alias(e, v))
                e->adj[v->id] = alloc(e, v->size * (size_t)p->segs[s].blk->layers);
        }
    e->padj_end = e->total;
    /* one tile */
    e->x = alloc(e, m->nin * BT);
    e->lab = alloc(e, (m->ntarget ? m->ntarget : 1) * BT);
    e->S = ARENA_ARRAY(e->a, size_t, m->nstates + 1);
    e->gS = ARENA_ARRAY(e->a, size_t, m->nstates + 1);
    e->gS2 = ARENA_ARRAY(e->a, size_t, m->nstates + 1);
    for (int i = 0; i < m->nstates; i++)
        e->S[i] = alloc(e, m->states[i]->size * BT);
    size_t maxrows = m->nin;
    e->tape = ARENA_ARRAY(e->a, size_t, p->nsegs);
    e->nsnap = ARENA_ARRAY(e->a, int, p->nsegs);
    e->stride = ARENA_ARRAY(e->a, size_t, p->nsegs);
    e->varoff = ARENA_ARRAY(e->a, size_t *, p->nsegs);
    e->lstride = ARENA_ARRAY(e->a, size_t, p->nsegs);
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        size_t begin = e->total;
        for (int i = 0; i < sg->ncode; i++) {
            const Val *v = VAL(e, sg->code[i]);
            if (v->size > maxrows)
                maxrows = v->size;
            if (!is_alias(e, v) && !e->fused[v->id])
                e->fwd[v->id] = alloc(e, v->size * BT);
        }
        if (sg->kind != SEG_BLOCK)
            continue;
        /* store: every layer keeps its values, so the adjoint need not
         * recompute the layer. (Keeping only those the adjoint reads would
         * mix k-strided and fixed addresses off w, which gcc -O2 cannot
         * prove disjoint, and the lane loops would not vectorise.) */
        if (e->o->memory == MEMORY_STORE && e->total > begin) {
            e->lstride[s] = e->total - begin;
            alloc(e, e->lstride[s] * (size_t)(sg->blk->layers - 1));
        }
        e->varoff[s] = ARENA_ARRAY(e->a, size_t, sg->nvars);
        size_t st = 0;
        for (int k = 0; k < sg->nvars; k++) {
            e->varoff[s][k] = st;
            st += m->states[sg->vars[k]]->size;
        }
        e->stride[s] = st;
        e->nsnap[s] = nsnap(sg->blk->layers);
        size_t slots = e->o->memory == MEMORY_STORE  ? (size_t)sg->blk->layers + 1
                       : e->o->memory == MEMORY_INVERT ? 2
                                                       : (size_t)e->nsnap[s] + 2;
        e->tape[s] = alloc(e, st * BT * slots);
    }
    e->scratch = alloc(e, maxrows * BT);
    e->ld = alloc(e, BT);
    const Certificate *c = e->o->cert;
    size_t ldwork = 0;
    for (int s = 0; c && c->has_logdet && s < p->nsegs; s++) {
        size_t n = e->stride[s];
        if (c->logdet_way[s] == LOGDET_JACOBIAN && (n + 1) * n > ldwork)
            ldwork = (n + 1) * n; /* the rows, and the basis vector */
        else if (c->logdet_way[s] == LOGDET_SERIES && 3 * n > ldwork)
            ldwork = 3 * n; /* the probe and two powers */
    }
    e->ldwork = alloc(e, ldwork * BT);
    e->minv = ARENA_ARRAY(e->a, size_t *, p->nsegs + 1);
    for (int s = 0; c && c->has_inverse && s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        e->minv[s] = ARENA_ARRAY(e->a, size_t, sg->nupd + 1);
        for (int k = 0; k < sg->nupd; k++)
            if (c->inverse[s][k].info.kind == UPD_LINEAR) {
                int n = VAL(e, c->inverse[s][k].info.mat)->shape.dim[0];
                e->minv[s][k] = alloc(e, (size_t)n * n * (size_t)sg->blk->layers);
            }
    }
    /* sample adjoints: the model-level ones are zeroed per tile */
    e->madj_begin = e->total;
    e->gx = alloc(e, m->nin * BT);
    for (int i = 0; i < m->nstates; i++) {
        e->gS[i] = alloc(e, m->states[i]->size * BT);
        e->gS2[i] = alloc(e, m->states[i]->size * BT);
    }
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_CODE)
            continue;
        for (int i = 0; i < sg->ncode; i++) {
            const Val *v = VAL(e, sg->code[i]);
            if (!is_alias(e, v))
                e->adj[v->id] = alloc(e, v->size * BT);
        }
    }
    e->madj_end = e->total;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        for (int i = 0; i < sg->ncode; i++) {
            const Val *v = VAL(e, sg->code[i]);
            if (!is_alias(e, v))
                e->adj[v->id] = alloc(e, v->size * BT);
        }
    }
}

/* ---- buffers as C expressions ----------------------------------------------------- */

static const Param *param_of(E *e, const Val *v) { return e->m->params[v->index]; }

/* The forward buffer of v in the current context (k is the layer index). */
static const char *F(E *e, int id)
{
    const Val *v = VAL(e, id);
    if (is_lit(v))
        return lit(e, v->num);
    switch (home(v)) {
    case H_GLOBAL:
        if (v->op == OP_PARAM)
            return S_(e, "(w + %zu)", e->theta + param_of(e, v)->offset);
        return S_(e, "(w + %zu)", e->fwd[id]);
    case H_LAYERP:
        if (v->op == OP_PARAM)
            return S_(e, "(w + %zu + k * %zu)", e->theta + param_of(e, v)->offset, param_of(e, v)->nstore);
        return S_(e, "(w + %zu + k * %zu)", e->fwd[id], v->size);
    case H_MODEL:
        if (v->op == OP_INPUT)
            return S_(e, "(w + %zu)", e->x);
        if (v->op == OP_LABEL)
            return S_(e, "(w + %zu)", e->lab);
        return S_(e, "(w + %zu)", e->fwd[id]);
    case H_LAYERS: {
        const Seg *s = &e->p->segs[v->seg];
        int k = input_var(s, id);
        if (k >= 0)
            return S_(e, "(tin + %zu)", e->varoff[v->seg][k] * BT);
        k = final_var(s, id);
        if (k >= 0)
            return S_(e, "(tout + %zu)", e->varoff[v->seg][k] * BT);
        if (e->lstride[v->seg])
            return S_(e, "(w + %zu + k * %zu)", e->fwd[id], e->lstride[v->seg]);
        return S_(e, "(w + %zu)", e->fwd[id]);
    }
    }
    return "?";
}

/* The adjoint buffer of v. */
static const char *G(E *e, int id)
{
    const Val *v = VAL(e, id);
    switch (home(v)) {
    case H_GLOBAL:
        if (v->op == OP_PARAM)
            return S_(e, "(w + %zu)", e->gtheta + param_of(e, v)->offset);
        return S_(e, "(w + %zu)", e->adj[id]);
    case H_LAYERP:
        if (v->op == OP_PARAM)
            return S_(e, "(w + %zu + k * %zu)", e->gtheta + param_of(e, v)->offset, param_of(e, v)->nstore);
        return S_(e, "(w + %zu + k * %zu)", e->adj[id], v->size);
    case H_MODEL:
        if (v->op == OP_INPUT)
            return S_(e, "(w + %zu)", e->gx);
        return S_(e, "(w + %zu)", e->adj[id]);
    case H_LAYERS: {
        const Seg *s = &e->p->segs[v->seg];
        int k = input_var(s, id);
        if (k >= 0)
            return S_(e, "(gin + %zu)", e->varoff[v->seg][k] * BT);
        k = final_var(s, id);
        if (k >= 0)
            return S_(e, "(gout + %zu)", e->varoff[v->seg][k] * BT);
        return S_(e, "(w + %zu)", e->adj[id]);
    }
    }
    return "?";
}

/* ---- adjoint bookkeeping ------------------------------------------------------------ */

/* Whether a contribution to o's adjoint may assign (=) instead of add:
 * only layer values, the first time the reverse sweep reaches them. */
static bool first(E *e, int o)
{
    const Val *v = VAL(e, o);
    bool was = e->touched[o];
    e->touched[o] = true;
    if (home(v) != H_LAYERS)
        return false;
    const Seg *s = &e->p->segs[v->seg];
    if (final_var(s, o) >= 0)
        return false;
    return !was;
}

static bool wants_adj(E *e, int o) { return o >= 0 && e->active[o]; }

/* For contributions that cover only part of o or reduce into it: zero o
 * first when this is the first contribution, then always add. */
static void partial(E *e, int o, size_t rows)
{
    if (first(e, o))
        out(e, "memset(%s, 0, sizeof(real) * %zu);", G(e, o), rows);
}

static size_t rows_of(const Val *v) { return v->size ? v->size : 1; }

static size_t lanes_of(const Val *v) { return v->vary == VARY_SAMPLE ? BT : 1; }

/* ---- comments ------------------------------------------------------------------------ */

static void comment(E *e, const Val *v, const char *what)
{
    int line, col;
    span_line_col(e->d, v->span, &line, &col);
    const char *t = span_text(e->d, v->span);
    char buf[80];
    size_t n = 0;
    for (const char *c = t; *c && n < sizeof buf - 4; c++) {
        char ch = *c == '\n' || *c == '\t' || *c == '\r' ? ' ' : *c;
        if (ch == ' ' && n && buf[n - 1] == ' ')
            continue;
        if (ch == '/' && n && buf[n - 1] == '*')
            buf[n++] = ' ';
        if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
            ch = '?';
        buf[n++] = ch;
    }
    if (*t && strlen(t) > n)
        buf[n++] = '.', buf[n++] = '.';
    buf[n] = '\0';
    if (line)
        out(e, "/* line %d: %s%s%s */", line, what, n ? ": " : "", buf);
    else
        out(e, "/* %s */", what);
}

/* ---- elementwise operations ------------------------------------------------------------- */

typedef struct Acc {
    AccKind kind;
    const char *name;   /* the restrict pointer declared for it, or the literal */
    size_t inner;       /* channel broadcast: result rows per operand row (1: none) */
} Acc;

/* Declares a restrict pointer `name` to operand o (forward buffer, or the
 * adjoint when adjoint is set) and says how it is indexed in a loop over
 * the result res. */
static Acc operand(E *e, int o, const Val *res, const char *name, bool adjoint, bool writable)
{
    const Val *v = VAL(e, o);
    Acc a = {AC_LIT, NULL, 1};
    if (is_lit(v) && !adjoint) {
        a.name = S_(e, "(real)%s", lit(e, v->num));
        return a;
    }
    out(e, "%sreal *restrict %s = %s;", writable ? "" : "const ", name, adjoint ? G(e, o) : F(e, o));
    a.name = name;
    bool sample = v->vary == VARY_SAMPLE;
    if (v->shape.rank == 0)
        a.kind = sample ? AC_LANE : AC_SCAL;
    else {
        a.kind = sample ? AC_TILE : AC_VEC;
        if (v->size != res->size && v->size)
            a.inner = res->size / v->size;
    }
    return a;
}

static const char *at(E *e, Acc a)
{
    switch (a.kind) {
    case AC_LIT: return a.name;
    case AC_LANE: return S_(e, "%s[l]", a.name);
    case AC_SCAL: return S_(e, "%s[0]", a.name);
    case AC_TILE:
        return a.inner > 1 ? S_(e, "%s[(i / %zu) * SPDL_BT + l]", a.name, a.inner) : S_(e, "%s[i * SPDL_BT + l]", a.name);
    case AC_VEC:
        return a.inner > 1 ? S_(e, "%s[i / %zu]", a.name, a.inner) : S_(e, "%s[i]", a.name);
    }
    return "?";
}

/* Opens the loop over res's rows (and lanes); a per-row operand read is
 * hoisted out of the lane loop, which gcc would not vectorise with it. */
static void loop_open(E *e, const Val *res)
{
    if (res->vary == VARY_SAMPLE && e->nhoist) {
        out(e, "for (size_t i = 0; i < %zu; i++) {", rows_of(res));
        e->indent++;
        for (int h = 0; h < e->nhoist; h++)
            out(e, "%s", e->hoist[h]);
        e->nhoist = 0;
        out(e, "for (int l = 0; l < SPDL_BT; l++) {");
        e->indent++;
        e->row_braced = true;
        return;
    }
    out(e, "for (size_t i = 0; i < %zu; i++)", rows_of(res));
    if (res->vary == VARY_SAMPLE) {
        e->indent++;
        out(e, "for (int l = 0; l < SPDL_BT; l++) {");
    } else {
        out(e, "{");
    }
    e->indent++;
}

static void loop_close(E *e, const Val *res)
{
    e->indent--;
    out(e, "}");
    if (res->vary == VARY_SAMPLE) {
        e->indent--;
        if (e->row_braced)
            out(e, "}");
        e->row_braced = false;
    }
}

static const char *act_expr(E *e, const Val *v, const char *a)
{
    switch ((Builtin)v->fn) {
    case FN_TANH: return S_(e, "(real)spdl_tanh(%s)", a);
    case FN_RELU: return S_(e, "(real)spdl_select(%s > 0, %s, 0.0)", a, a);
    case FN_SIGMOID: return S_(e, "(real)spdl_sigmoid(%s)", a);
    case FN_SOFTPLUS: return S_(e, "(real)spdl_softplus(%s)", a);
    case FN_EXP: return S_(e, "(real)spdl_exp(%s)", a);
    case FN_LEAKY_RELU: return S_(e, "(real)spdl_select(%s > 0, %s, %s * %s)", a, a, lit(e, v->num), a);
    default: return a;
    }
}

/* d act / d a, times g; y is the forward result. */
static const char *act_adj(E *e, const Val *v, const char *g, const char *a, const char *y)
{
    switch ((Builtin)v->fn) {
    case FN_TANH: return S_(e, "%s * (1 - %s * %s)", g, y, y);
    case FN_RELU: return S_(e, "(real)spdl_select(%s > 0, %s, 0.0)", a, g);
    case FN_SIGMOID: return S_(e, "%s * %s * (1 - %s)", g, y, y);
    case FN_SOFTPLUS: return S_(e, "%s * (real)spdl_sigmoid(%s)", g, a);
    case FN_EXP: return S_(e, "%s * %s", g, y);
    case FN_LEAKY_RELU: return S_(e, "%s * (real)spdl_select(%s > 0, 1.0, %s)", g, a, lit(e, v->num));
    default: return g;
    }
}

static bool is_elementwise(Op op)
{
    return op == OP_ADD || op == OP_SUB || op == OP_MUL || op == OP_DIV || op == OP_NEG || op == OP_POW ||
           op == OP_ACT || op == OP_COPY || op == OP_FILL;
}

static const char *pow_expr(E *e, const char *a, double c)
{
    if (c == 2)
        return S_(e, "%s * %s", a, a);
    if (c == 1)
        return a;
    if (c == 0.5)
        return S_(e, "(real)sqrt(%s)", a);
    if (c == 3)
        return S_(e, "%s * %s * %s", a, a, a);
    return S_(e, "(real)pow(%s, %s)", a, lit(e, c));
}

/* v's value at row i, lane l from its operands' values a and b */
static const char *ew_expr(E *e, const Val *v, const char *a, const char *b)
{
    switch (v->op) {
    case OP_ADD: return S_(e, "%s + %s", a, b);
    case OP_SUB: return S_(e, "%s - %s", a, b);
    case OP_MUL: return S_(e, "%s * %s", a, b);
    case OP_DIV: return S_(e, "%s / %s", a, b);
    case OP_NEG: return S_(e, "-%s", a);
    case OP_POW: return pow_expr(e, a, v->num);
    case OP_ACT: return act_expr(e, v, a);
    case OP_COPY: case OP_FILL: return a;
    default: return "0";
    }
}

/* Operand o of an elementwise loop over res, at row i, lane l: a restrict
 * pointer into its buffer, declared here, or for a fused value the
 * expression that computes it from its own operands. */
static const char *operand_at(E *e, int o, const Val *res)
{
    const Val *v = VAL(e, o);
    if (e->fused[o]) { /* operands in order: the declared names must not depend on the C compiler */
        const char *a = operand_at(e, v->a, res);
        const char *b = v->b >= 0 ? operand_at(e, v->b, res) : "0";
        return S_(e, "(%s)", ew_expr(e, v, a, b));
    }
    int n = e->nptr++;
    const char *name = n == 0 ? "A" : n == 1 ? "B" : S_(e, "P%d", n);
    Acc acc = operand(e, o, res, name, false, false);
    if (acc.kind != AC_VEC || res->vary != VARY_SAMPLE || e->nhoist == (int)(sizeof e->hoist / sizeof *e->hoist))
        return at(e, acc);
    e->hoist[e->nhoist++] = S_(e, "const real %s_i = %s;", name, at(e, acc));
    return S_(e, "%s_i", name);
}

static void ew_forward(E *e, const Val *v)
{
    out(e, "real *restrict Y = %s;", F(e, v->id));
    e->nptr = e->nhoist = 0;
    const char *a = operand_at(e, v->a, v);
    const char *b = v->b >= 0 ? operand_at(e, v->b, v) : "0";
    loop_open(e, v);
    out(e, "%s = %s;", v->vary == VARY_SAMPLE ? "Y[i * SPDL_BT + l]" : "Y[i]", ew_expr(e, v, a, b));
    loop_close(e, v);
}

/* Elementwise v's contribution to the adjoint of its first operand (or of
 * its second, of_b), in G_ (v's adjoint), A_ and B_ (the operands' values)
 * and Y_ (v's value). */
static const char *contrib(E *e, const Val *v, bool of_b)
{
    const Val *a = VAL(e, v->a), *b = v->b >= 0 ? VAL(e, v->b) : NULL;
    switch (v->op) {
    case OP_SUB: return of_b ? "-G_" : "G_";
    case OP_NEG: return "-G_";
    case OP_MUL:
        if (of_b)
            return is_lit(a) ? S_(e, "G_ * (real)%s", lit(e, a->num)) : "G_ * A_";
        return is_lit(b) ? S_(e, "G_ * (real)%s", lit(e, b->num)) : "G_ * B_";
    case OP_DIV:
        if (of_b)
            return "-G_ * Y_ / B_";
        return is_lit(b) ? S_(e, "G_ / (real)%s", lit(e, b->num)) : "G_ / B_";
    case OP_POW: return S_(e, "G_ * (real)%s * %s", lit(e, v->num), pow_expr(e, "A_", v->num - 1));
    case OP_ACT: return act_adj(e, v, "G_", "A_", "Y_");
    default: return "G_"; /* add, copy, fill */
    }
}

/* The adjoint of x (gfused) at row i, lane l of a loop over res: its one
 * consumer's contribution, from the consumer's adjoint. The values the
 * contribution reads are stored: mark_read saw them. */
static const char *adj_at(E *e, int x, const Val *res)
{
    const Val *c = VAL(e, e->user[x]);
    const char *t = contrib(e, c, c->b == x), *r_ = "";
    const char *val[3] = {NULL, NULL, NULL}; /* A_, B_, Y_, each declared once */
    for (const char *p = t; *p; p++) {
        const char *r = NULL;
        if (p[1] == '_' && (p == t || !(p[-1] == '_' || (p[-1] >= 'A' && p[-1] <= 'z')))) {
            if (p[0] == 'G')
                r = e->gfused[c->id] ? adj_at(e, c->id, res)
                                     : at(e, operand(e, c->id, res, S_(e, "Q%d", e->nptr++), true, false));
            else if (p[0] == 'A' || p[0] == 'B' || p[0] == 'Y') {
                int k = p[0] == 'A' ? 0 : p[0] == 'B' ? 1 : 2, o = k == 0 ? c->a : k == 1 ? c->b : c->id;
                if (!val[k])
                    val[k] = at(e, operand(e, o, res, S_(e, "Q%d", e->nptr++), false, false));
                r = val[k];
            }
        }
        if (r)
            r_ = S_(e, "%s%s", r_, r), p++;
        else
            r_ = S_(e, "%s%c", r_, *p);
    }
    return S_(e, "(%s)", r_);
}

/* Adds contrib (an expression in A_, B_, Y_, G_) into the adjoint of
 * operand o, reducing over lanes, rows or channels as o's shape needs. */
/* gsrc >= 0: v's adjoint is already in gsrc's adjoint buffer (see
 * ew_adjoint). Returns whether o's adjoint was assigned (not added to). */
static bool ew_contrib(E *e, const Val *v, int o, const char *contrib, int gsrc)
{
    if (!wants_adj(e, o))
        return false;
    if (e->gfused[o]) { /* o's adjoint loops compute this contribution (adj_at) */
        e->touched[o] = true;
        return false;
    }
    const Val *ov = VAL(e, o);
    bool full = ov->vary == v->vary && ov->size == v->size;
    bool assign = full && first(e, o);
    if (!full)
        partial(e, o, rows_of(ov) * lanes_of(ov));
    out(e, "{");
    e->indent++;
    Acc GO = operand(e, o, v, "GO", true, true);
    e->nptr = 0;
    const char *gy = gsrc >= 0           ? at(e, operand(e, gsrc, v, "GY", true, false))
                     : e->gfused[v->id] ? adj_at(e, v->id, v)
                                        : at(e, operand(e, v->id, v, "GY", true, false));
    bool need_a = strstr(contrib, "A_") != NULL, need_b = strstr(contrib, "B_") != NULL,
         need_y = strstr(contrib, "Y_") != NULL;
    Acc A = need_a ? operand(e, v->a, v, "A", false, false) : (Acc){0};
    Acc B = need_b ? operand(e, v->b, v, "B", false, false) : (Acc){0};
    Acc Yv = need_y ? operand(e, v->id, v, "Yf", false, false) : (Acc){0};
    bool lane_reduce = v->vary == VARY_SAMPLE && ov->vary != VARY_SAMPLE;
    bool scalar_target = ov->shape.rank == 0 && v->shape.rank != 0;
    if (lane_reduce)
        out(e, "real t_[SPDL_BT], s_ = 0;");
    else if (scalar_target && v->vary != VARY_SAMPLE)
        out(e, "real s_ = 0;");
    out(e, "for (size_t i = 0; i < %zu; i++) {", rows_of(v));
    e->indent++;
    if (v->vary == VARY_SAMPLE) {
        out(e, "for (int l = 0; l < SPDL_BT; l++) {");
        e->indent++;
    }
    out(e, "const real G_ = %s;", gy);
    if (need_a)
        out(e, "const real A_ = %s;", at(e, A));
    if (need_b)
        out(e, "const real B_ = %s;", at(e, B));
    if (need_y)
        out(e, "const real Y_ = %s;", at(e, Yv));
    if (lane_reduce)
        out(e, "t_[l] = %s;", contrib);
    else if (scalar_target && v->vary != VARY_SAMPLE)
        out(e, "s_ += %s;", contrib);
    else
        out(e, "%s %s %s;", at(e, GO), assign ? "=" : "+=", contrib);
    if (v->vary == VARY_SAMPLE) {
        e->indent--;
        out(e, "}");
    }
    if (lane_reduce)
        out(e, "s_ += spdl_lane_sum(t_);");
    if (lane_reduce && !scalar_target) {
        out(e, "%s += s_;", at(e, (Acc){AC_VEC, GO.name, GO.inner}));
        out(e, "s_ = 0;");
    }
    e->indent--;
    out(e, "}");
    if (scalar_target && (lane_reduce || v->vary != VARY_SAMPLE))
        out(e, "%s[0] += s_;", GO.name);
    e->indent--;
    out(e, "}");
    return assign;
}

/* When v's adjoint is an expression (gfused) and the first contribution
 * assigned it unchanged to a full-size operand (the product before a bias
 * add), the second reads that buffer instead of evaluating it again. */
static void ew_adjoint(E *e, const Val *v)
{
    bool copied = ew_contrib(e, v, v->a, contrib(e, v, false), -1) && e->gfused[v->id] &&
                  (v->op == OP_ADD || v->op == OP_SUB);
    if (v->b >= 0 && v->op != OP_POW && v->op != OP_ACT)
        ew_contrib(e, v, v->b, contrib(e, v, true), copied ? v->a : -1);
}

/* ---- the other operations ---------------------------------------------------------- */

static void copy_rows(E *e, const char *dst, const char *src, size_t rows, bool sample, bool add)
{
    if (!add) {
        out(e, "memcpy(%s, %s, sizeof(real) * %zu);", dst, src, rows * (sample ? BT : 1));
        return;
    }
    out(e, "for (size_t j = 0; j < %zu; j++)", rows * (sample ? BT : 1));
    out(e, "    %s[j] += %s[j];", dst, src);
}

/* The input row each output row of a slice reads, for the forward and
 * the adjoint: loops over the kept ranges of every axis but the last, which
 * is contiguous. */
static void slice_rows(E *e, const Val *v, const char *Y, const char *A, bool adjoint, bool assign)
{
    const Val *in = VAL(e, v->a);
    int r = v->fn;
    size_t lanes = lanes_of(v);
    size_t stride[MAX_RANK];
    size_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        stride[i] = s;
        s *= (size_t)in->shape.dim[i];
    }
    out(e, "{");
    e->indent++;
    out(e, "size_t o = 0;");
    for (int i = 0; i < r - 1; i++) {
        out(e, "for (size_t i%d = %d; i%d < %d; i%d++)", i, v->lo[i], i, v->hi[i], i);
        e->indent++;
    }
    out(e, "{");
    e->indent++;
    char idx[256] = "0";
    int n = 0;
    for (int i = 0; i < r - 1; i++)
        n += snprintf(idx + n, sizeof idx - (size_t)n, "%s i%d * %zu", i ? " +" : "", i, stride[i]);
    size_t run = (size_t)(v->hi[r - 1] - v->lo[r - 1]);
    out(e, "const size_t src = (%s + %d) * %zu;", r > 1 ? idx : "0", v->lo[r - 1], lanes);
    if (!adjoint)
        out(e, "memcpy(%s + o, %s + src, sizeof(real) * %zu);", Y, A, run * lanes);
    else {
        out(e, "for (size_t j = 0; j < %zu; j++)", run * lanes);
        out(e, "    %s[src + j] %s %s[o + j];", A, assign ? "=" : "+=", Y);
    }
    out(e, "o += %zu;", run * lanes);
    e->indent--;
    out(e, "}");
    for (int i = 0; i < r - 1; i++)
        e->indent--;
    e->indent--;
    out(e, "}");
}

/* A stored value holding the transpose of matrix a, row-major, or -1:
 * a's operand when a is a transpose, or a transpose of a in the program
 * (K' next to K in a Hamiltonian pair). Structured parameters (skew, lu,
 * orth) are not stored as their matrix, so they do not count. */
static int transposed(E *e, int a)
{
    const Val *v = VAL(e, a);
    if (v->shape.rank != 2)
        return -1;
    if (v->op == OP_TRANSPOSE) {
        const Val *s = VAL(e, v->a);
        return s->op != OP_PARAM || param_of(e, s)->kind == PK_FREE ? s->id : -1;
    }
    if (v->op == OP_PARAM && param_of(e, v)->kind != PK_FREE)
        return -1;
    int t = e->transpose_of[a];
    return t >= 0 && home(VAL(e, t)) == home(v) && e->fwd[t] != NONE ? t : -1;
}

static void matmul_forward(E *e, const Val *v)
{
    const Val *A = VAL(e, v->a), *B = VAL(e, v->b);
    int m = A->shape.dim[0], n = A->shape.dim[1];
    int p = B->shape.rank == 2 ? B->shape.dim[1] : 1;
    if (v->vary == VARY_SAMPLE) {
        out(e, "const real *restrict A = %s;", F(e, v->a));
        out(e, "const real *restrict B = %s;", F(e, v->b));
        out(e, "real *restrict Y = %s;", F(e, v->id));
        for (int c = 0; c < p; c++)
            out(e, "spdl_gemm(%d, SPDL_BT, %d, A, %d, 1, B + %d, %d, Y + %d, %d, 0);", m, n, n, c * BT, p * BT, c * BT,
                p * BT);
        return;
    }
    out(e, "const real *restrict A = %s;", F(e, v->a));
    out(e, "const real *restrict B = %s;", F(e, v->b));
    out(e, "real *restrict Y = %s;", F(e, v->id));
    out(e, "for (size_t i = 0; i < %d; i++)", m);
    out(e, "    for (size_t c = 0; c < %d; c++) {", p);
    out(e, "        real s = 0;");
    out(e, "        for (size_t j = 0; j < %d; j++)", n);
    out(e, "            s += A[i * %d + j] * B[j * %d + c];", n, p);
    out(e, "        Y[i * %d + c] = s;", p);
    out(e, "    }");
}

static void matmul_adjoint(E *e, const Val *v)
{
    const Val *A = VAL(e, v->a), *B = VAL(e, v->b);
    int m = A->shape.dim[0], n = A->shape.dim[1];
    int p = B->shape.rank == 2 ? B->shape.dim[1] : 1;
    /* dA reads B, dB reads A: declare only what is read (no unused variables) */
    bool ga = wants_adj(e, v->a), gb = wants_adj(e, v->b);
    if (v->vary == VARY_SAMPLE) {
        int t = gb ? transposed(e, v->a) : -1;
        if (gb && t < 0)
            out(e, "const real *restrict A = %s;", F(e, v->a));
        if (ga)
            out(e, "const real *restrict B = %s;", F(e, v->b));
        out(e, "const real *restrict GY = %s;", G(e, v->id));
        if (gb) { /* dB (+)= A' dY */
            bool assign = first(e, v->b);
            out(e, "real *restrict GB = %s;", G(e, v->b));
            if (t >= 0) /* A' is stored row by row: the faster product */
                out(e, "const real *restrict AT = %s;", F(e, t));
            for (int c = 0; c < p; c++)
                out(e, "spdl_gemm(%d, SPDL_BT, %d, %s, %d, %d, GY + %d, %d, GB + %d, %d, %d);", n, m, t >= 0 ? "AT" : "A",
                    t >= 0 ? m : 1, t >= 0 ? 1 : n, c * BT, p * BT, c * BT, p * BT, assign ? 0 : 1);
        }
        if (ga) { /* dA += dY B' (summed over lanes and columns) */
            first(e, v->a);
            out(e, "real *restrict T = w + %zu;", e->scratch);
            out(e, "real *restrict GA = %s;", G(e, v->a));
            for (int c = 0; c < p; c++) {
                out(e, "spdl_transpose_tile(%d, B + %d, %d, T);", n, c * BT, p * BT);
                out(e, "spdl_gemm(%d, %d, SPDL_BT, GY + %d, %d, 1, T, %d, GA, %d, 1);", m, n, c * BT, p * BT, n, n);
            }
        }
        return;
    }
    if (gb)
        out(e, "const real *restrict A = %s;", F(e, v->a));
    if (ga)
        out(e, "const real *restrict B = %s;", F(e, v->b));
    out(e, "const real *restrict GY = %s;", G(e, v->id));
    if (ga) {
        first(e, v->a);
        out(e, "real *restrict GA = %s;", G(e, v->a));
        out(e, "for (size_t i = 0; i < %d; i++)", m);
        out(e, "    for (size_t j = 0; j < %d; j++)", n);
        out(e, "        for (size_t c = 0; c < %d; c++)", p);
        out(e, "            GA[i * %d + j] += GY[i * %d + c] * B[j * %d + c];", n, p, p);
    }
    if (gb) {
        first(e, v->b);
        out(e, "real *restrict GB = %s;", G(e, v->b));
        out(e, "for (size_t i = 0; i < %d; i++)", m);
        out(e, "    for (size_t j = 0; j < %d; j++)", n);
        out(e, "        for (size_t c = 0; c < %d; c++)", p);
        out(e, "            GB[j * %d + c] += A[i * %d + j] * GY[i * %d + c];", p, n, p);
    }
}

/* Z(n) convolutions (runtime/spdl_kernels.h: spdl_zconv and its transpose):
 * the kernel's sizes as "cout, cin, k, n". */
static const char *zconv_dims(E *e, const Val *v)
{
    const Param *pm = param_of(e, VAL(e, v->a));
    return S_(e, "%d, %d, %d, %d", pm->cout, pm->cin, pm->ksize, pm->group->n);
}

/* C4/D4 lift and gconv (spdl_gbank, spdl_corr2): the bank WB in the work
 * buffer, expanded from the kernel here, and the correlation's sizes as
 * "cout |G|, cin (|G|), k, n". */
static const char *gconv_bank(E *e, const Val *v, const char **dims)
{
    const Param *pm = param_of(e, VAL(e, v->a));
    int G = pm->group->order, gc = pm->kind == PK_GCONV;
    out(e, "real *restrict WB = w + %zu;", e->gscratch);
    out(e, "spdl_gbank(%d, %d, %d, %d, %d, %s, WB);", G, gc, pm->cout, pm->cin, pm->ksize, F(e, v->a));
    const Shape s = VAL(e, v->id)->shape;
    *dims = S_(e, "%d, %d, %d, %d", pm->cout * G, pm->cin * (gc ? G : 1), pm->ksize, s.dim[s.rank - 1]);
    return S_(e, "%d, %d, %d, %d, %d", G, gc, pm->cout, pm->cin, pm->ksize);
}

static bool cyclic(E *e, const Val *v) { return param_of(e, VAL(e, v->a))->group->kind == GROUP_Z; }

static void zconv_forward(E *e, const Val *v)
{
    if (!cyclic(e, v)) {
        const char *dims;
        gconv_bank(e, v, &dims);
        out(e, "spdl_corr2%s(%s, WB, %s, %s, 0);", v->op == OP_GCONV_T ? "_t" : "", dims, F(e, v->b), F(e, v->id));
        return;
    }
    out(e, "spdl_zconv%s(%s, %s, %s, %s, 0);", v->op == OP_GCONV_T ? "_t" : "", zconv_dims(e, v), F(e, v->a), F(e, v->b),
        F(e, v->id));
}

/* lift and gconv: dX (+)= corr'(W, dY), dW = sum dY X(shifted); gconv': dV (+)= corr(W, dZ), dW = sum V dZ(shifted);
 * then dK += the bank's transpose of dW. */
static void gconv_adjoint(E *e, const Val *v)
{
    bool t = v->op == OP_GCONV_T;
    const char *dims, *bank = gconv_bank(e, v, &dims);
    if (wants_adj(e, v->b)) {
        bool assign = first(e, v->b);
        out(e, "spdl_corr2%s(%s, WB, %s, %s, %d);", t ? "" : "_t", dims, G(e, v->id), G(e, v->b), assign ? 0 : 1);
    }
    if (wants_adj(e, v->a)) {
        first(e, v->a);
        const Param *pm = param_of(e, VAL(e, v->a));
        size_t nb = (size_t)pm->cout * (size_t)pm->group->order * (size_t)pm->cin *
                    (size_t)(pm->kind == PK_GCONV ? pm->group->order : 1) * (size_t)pm->ksize * (size_t)pm->ksize;
        out(e, "real *restrict GWB = w + %zu;", e->gscratch + ((nb + 7) & ~(size_t)7));
        out(e, "memset(GWB, 0, sizeof(real) * %zu);", nb);
        out(e, "spdl_corr2_dw(%s, %s, %s, GWB);", dims, t ? F(e, v->b) : G(e, v->id), t ? G(e, v->id) : F(e, v->b));
        out(e, "spdl_gbank_adj(%s, GWB, %s);", bank, G(e, v->a));
    }
}

/* gconv: dX (+)= conv'(K, dY), dK += sum dY X(shifted); gconv': dW (+)= conv(K, dZ), dK += sum W dZ(shifted). */
static void zconv_adjoint(E *e, const Val *v)
{
    if (!cyclic(e, v)) {
        gconv_adjoint(e, v);
        return;
    }
    bool t = v->op == OP_GCONV_T;
    if (wants_adj(e, v->b)) {
        bool assign = first(e, v->b);
        out(e, "spdl_zconv%s(%s, %s, %s, %s, %d);", t ? "" : "_t", zconv_dims(e, v), F(e, v->a), G(e, v->id), G(e, v->b),
            assign ? 0 : 1);
    }
    if (wants_adj(e, v->a)) {
        first(e, v->a);
        out(e, "spdl_zconv_dk(%s, %s, %s, %s);", zconv_dims(e, v), t ? F(e, v->b) : G(e, v->id), t ? G(e, v->id) : F(e, v->b),
            G(e, v->a));
    }
}

/* The smooth regulariser's h: the nominal step of the block using P. */
static double smooth_h(E *e, const Val *pv)
{
    const Param *pm = param_of(e, pv);
    return pm->block ? pm->block->h : 1;
}

/* gpool, mean_space and mean_set average the middle axis of their operand
 * seen as [A, R, B] (row-major, lanes innermost): gpool axis 1 of
 * [c, |G|, n, n] or [c, |G|] (Z(n): [c, n]), mean_space the two grid axes,
 * mean_set the set axis. */
static void axis_mean_dims(E *e, const Val *v, size_t *A, size_t *R, size_t *B)
{
    const Shape s = VAL(e, v->a)->shape;
    size_t n = VAL(e, v->a)->size;
    switch (v->op) {
    case OP_GPOOL:
        *A = (size_t)s.dim[0];
        *R = (size_t)s.dim[1];
        break;
    case OP_MEAN_SPACE:
        *R = (size_t)s.dim[s.rank - 1] * (size_t)s.dim[s.rank - 2];
        *A = n / *R;
        break;
    default: /* OP_MEAN_SET */
        *R = (size_t)s.dim[s.rank - 1];
        *A = n / *R;
        break;
    }
    *B = n / (*A * *R);
}

static void comment_mean(E *e, size_t A, size_t R, size_t B)
{
    out(e, "/* the mean over the middle axis of [%zu, %zu, %zu] */", A, R, B);
}

static void op_forward(E *e, const Val *v)
{
    const StepProgram *p = e->p;
    if (is_alias(e, v) && v->op != OP_STORE) {
        const Seg *s = home(v) == H_LAYERS ? &p->segs[v->seg] : NULL;
        if (!s || final_var(s, v->id) < 0)
            return;
    }
    if ((v->op == OP_STATE && home(v) == H_LAYERS) || e->fused[v->id])
        return;
    out(e, "{");
    e->indent++;
    comment(e, v, op_names[v->op]);
    if (is_elementwise(v->op)) {
        ew_forward(e, v);
    } else {
        switch (v->op) {
        case OP_MATMUL:
            matmul_forward(e, v);
            break;
        case OP_LIFT:
        case OP_GCONV:
        case OP_GCONV_T:
            zconv_forward(e, v);
            break;
        case OP_STORE: {
            const Val *a = VAL(e, v->a);
            const char *dst = S_(e, "(w + %zu)", e->S[v->index]);
            if (a->vary == VARY_SAMPLE)
                copy_rows(e, dst, F(e, v->a), a->size, true, false);
            else {
                out(e, "real *restrict Y = %s;", dst);
                out(e, "const real *restrict A = %s;", F(e, v->a));
                out(e, "for (size_t i = 0; i < %zu; i++)", v->size);
                out(e, "    for (int l = 0; l < SPDL_BT; l++)");
                out(e, "        Y[i * SPDL_BT + l] = A[%s];", a->shape.rank ? "i" : "0");
            }
            break;
        }
        case OP_STATE:
            copy_rows(e, F(e, v->id), S_(e, "(w + %zu)", e->S[v->index]), v->size, true, false);
            break;
        case OP_SKEW: {
            int n = v->shape.dim[0];
            out(e, "const real *restrict A = %s;", F(e, v->a));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "size_t q = 0;");
            out(e, "for (size_t i = 0; i < %d; i++) {", n);
            out(e, "    Y[i * %d + i] = 0;", n);
            out(e, "    for (size_t j = i + 1; j < %d; j++, q++) {", n);
            out(e, "        Y[i * %d + j] = A[q];", n);
            out(e, "        Y[j * %d + i] = -A[q];", n);
            out(e, "    }");
            out(e, "}");
            break;
        }
        case OP_LU:
            out(e, "spdl_lu_compose(%d, %s, %s);", v->shape.dim[0], F(e, v->a), F(e, v->id));
            break;
        case OP_LU_LOGDET: {
            int n = VAL(e, v->a)->shape.dim[0];
            out(e, "%s[0] = spdl_lu_logdet(%d, %s);", F(e, v->id), n, F(e, v->a));
            break;
        }
        case OP_CAYLEY:
            out(e, "spdl_cayley(%d, %s, %s, w + %zu);", v->shape.dim[0], F(e, v->a), F(e, v->id), e->pscratch);
            break;
        case OP_IDENTITY: {
            int n = v->shape.dim[0];
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "for (size_t i = 0; i < %d; i++)", n * n);
            out(e, "    Y[i] = (i %% %d == i / %d) ? 1 : 0;", n, n);
            break;
        }
        case OP_TRANSPOSE: {
            int m = VAL(e, v->a)->shape.dim[0], n = VAL(e, v->a)->shape.dim[1];
            out(e, "const real *restrict A = %s;", F(e, v->a));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "for (size_t i = 0; i < %d; i++)", m);
            out(e, "    for (size_t j = 0; j < %d; j++)", n);
            out(e, "        Y[j * %d + i] = A[i * %d + j];", m, n);
            break;
        }
        case OP_SLICE:
            slice_rows(e, v, F(e, v->id), F(e, v->a), false, false);
            break;
        case OP_PAD: {
            const Val *a = VAL(e, v->a);
            size_t lanes = lanes_of(v);
            copy_rows(e, F(e, v->id), F(e, v->a), a->size, v->vary == VARY_SAMPLE, false);
            out(e, "memset(%s + %zu, 0, sizeof(real) * %zu);", F(e, v->id), a->size * lanes, (v->size - a->size) * lanes);
            break;
        }
        case OP_JOIN: {
            size_t off = 0;
            for (int i = 0; i < v->nargs; i++) {
                const Val *a = VAL(e, v->args[i]);
                copy_rows(e, S_(e, "%s + %zu", F(e, v->id), off * lanes_of(v)), F(e, v->args[i]), a->size,
                          v->vary == VARY_SAMPLE, false);
                off += a->size;
            }
            break;
        }
        case OP_POOL2: {
            size_t m = (size_t)v->shape.dim[v->shape.rank - 1], L = lanes_of(v), maps = v->size / (m * m);
            out(e, "const real *restrict X = %s;", F(e, v->a));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "for (size_t c = 0; c < %zu; c++)", maps);
            out(e, "    for (size_t i = 0; i < %zu; i++)", m);
            out(e, "        for (size_t j = 0; j < %zu; j++) {", m);
            out(e, "            const real *restrict x = X + ((c * %zu + 2 * i) * %zu + 2 * j) * %zu;", 2 * m, 2 * m, L);
            out(e, "            real *restrict y = Y + ((c * %zu + i) * %zu + j) * %zu;", m, m, L);
            out(e, "            for (size_t l = 0; l < %zu; l++)", L);
            out(e, "                y[l] = (real)0.25 * ((x[l] + x[%zu + l]) + (x[%zu + l] + x[%zu + l]));", L, 2 * m * L,
                2 * m * L + L);
            out(e, "        }");
            break;
        }
        case OP_GPOOL:
        case OP_MEAN_SPACE:
        case OP_MEAN_SET: {
            size_t A, R, B, L = lanes_of(v);
            axis_mean_dims(e, v, &A, &R, &B);
            comment_mean(e, A, R, B);
            out(e, "const real *restrict X = %s;", F(e, v->a));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "memset(Y, 0, sizeof(real) * %zu);", A * B * L);
            out(e, "for (size_t a = 0; a < %zu; a++)", A);
            out(e, "    for (size_t r = 0; r < %zu; r++)", R);
            out(e, "        for (size_t j = 0; j < %zu; j++)", B * L);
            out(e, "            Y[a * %zu + j] += X[(a * %zu + r) * %zu + j];", B * L, R, B * L);
            out(e, "for (size_t j = 0; j < %zu; j++)", A * B * L);
            out(e, "    Y[j] = Y[j] / (real)%zu;", R);
            break;
        }
        case OP_SUM:
        case OP_MEAN: {
            const Val *a = VAL(e, v->a);
            out(e, "const real *restrict A = %s;", F(e, v->a));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            const char *scale = v->op == OP_MEAN ? S_(e, " / (real)%zu", a->size) : "";
            if (v->vary == VARY_SAMPLE) {
                out(e, "for (int l = 0; l < SPDL_BT; l++)");
                out(e, "    Y[l] = 0;");
                out(e, "for (size_t i = 0; i < %zu; i++)", a->size);
                out(e, "    for (int l = 0; l < SPDL_BT; l++)");
                out(e, "        Y[l] += A[i * SPDL_BT + l];");
                if (*scale) {
                    out(e, "for (int l = 0; l < SPDL_BT; l++)");
                    out(e, "    Y[l] = Y[l]%s;", scale);
                }
            } else {
                out(e, "real s = 0;");
                out(e, "for (size_t i = 0; i < %zu; i++)", a->size);
                out(e, "    s += A[i];");
                out(e, "Y[0] = s%s;", scale);
            }
            break;
        }
        case OP_SOFTMAX:
            out(e, "spdl_softmax(%zu, %s, %s);", v->size, F(e, v->a), F(e, v->id));
            break;
        case OP_CE: {
            const Val *a = VAL(e, v->a);
            if (v->logits)
                out(e, "spdl_ce_logits(%zu, %s, %s, %s);", a->size, F(e, v->a), F(e, v->b), F(e, v->id));
            else {
                out(e, "const real *restrict P = %s;", F(e, v->a));
                out(e, "const real *restrict C = %s;", F(e, v->b));
                out(e, "real *restrict Y = %s;", F(e, v->id));
                out(e, "for (int l = 0; l < SPDL_BT; l++)");
                out(e, "    Y[l] = -(real)log(P[(size_t)C[l] * SPDL_BT + l]);");
            }
            break;
        }
        case OP_MSE: {
            const Val *a = VAL(e, v->a);
            out(e, "const real *restrict P = %s;", F(e, v->a));
            out(e, "const real *restrict T = %s;", F(e, v->b));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "for (int l = 0; l < SPDL_BT; l++)");
            out(e, "    Y[l] = 0;");
            out(e, "for (size_t i = 0; i < %zu; i++)", a->size);
            out(e, "    for (int l = 0; l < SPDL_BT; l++) {");
            if (v->is_class)
                out(e, "        const real d = P[i * SPDL_BT + l] - (real)(T[l] == (real)i);");
            else
                out(e, "        const real d = P[i * SPDL_BT + l] - T[i * SPDL_BT + l];");
            out(e, "        Y[l] += d * d;");
            out(e, "    }");
            break;
        }
        case OP_NLL: {
            /* 0.5 |z|^2 + d/2 log(2 pi) - log|det dz/dx| */
            const Val *a = VAL(e, v->a);
            out(e, "const real *restrict Z = %s;", F(e, v->a));
            out(e, "real *restrict Y = %s;", F(e, v->id));
            out(e, "for (int l = 0; l < SPDL_BT; l++)");
            out(e, "    Y[l] = (real)%s;", lit(e, 0.5 * (double)a->size * log(2 * 3.14159265358979323846)));
            out(e, "for (size_t i = 0; i < %zu; i++)", a->size);
            out(e, "    for (int l = 0; l < SPDL_BT; l++)");
            out(e, "        Y[l] += (real)0.5 * Z[i * SPDL_BT + l] * Z[i * SPDL_BT + l];");
            if (v->b >= 0) {
                out(e, "const real *restrict LD = %s;", F(e, v->b));
                out(e, "for (int l = 0; l < SPDL_BT; l++)");
                out(e, "    Y[l] -= LD[l];");
            }
            break;
        }
        case OP_SMOOTH: {
            out(e, "real s = 0;");
            for (int i = 0; i < v->nargs; i++) {
                const Val *pv = VAL(e, v->args[i]);
                const Param *pm = param_of(e, pv);
                out(e, "{");
                out(e, "    const real *restrict P = %s;", F(e, v->args[i]));
                out(e, "    real t = 0;");
                out(e, "    for (size_t j = %zu; j < %zu; j++)", pm->nstore, pm->size);
                out(e, "        t += (P[j] - P[j - %zu]) * (P[j] - P[j - %zu]);", pm->nstore, pm->nstore);
                out(e, "    s += t / (real)%s;", lit(e, smooth_h(e, pv)));
                out(e, "}");
            }
            out(e, "%s[0] = s;", F(e, v->id));
            break;
        }
        default:
            out(e, "#error \"spdlc: no code for %s\"", op_names[v->op]);
        }
    }
    e->indent--;
    out(e, "}");
}

static void op_adjoint(E *e, const Val *v)
{
    if (v->op == OP_STATE && home(v) == H_LAYERS)
        return;
    bool any = false;
    if (v->op == OP_STORE || v->op == OP_STATE)
        any = true;
    else {
        int ops[2] = {v->a, v->b};
        for (int j = 0; j < 2; j++)
            if (wants_adj(e, ops[j])) {
                any |= !e->gfused[ops[j]];
                e->touched[ops[j]] |= e->gfused[ops[j]]; /* its own adjoint computes the contribution */
            }
        for (int i = 0; i < v->nargs; i++)
            any |= wants_adj(e, v->args[i]);
    }
    if (!any)
        return;
    out(e, "{");
    e->indent++;
    comment(e, v, S_(e, "adjoint of %s", op_names[v->op]));
    if (is_elementwise(v->op)) {
        ew_adjoint(e, v);
    } else {
        switch (v->op) {
        case OP_MATMUL:
            matmul_adjoint(e, v);
            break;
        case OP_LIFT:
        case OP_GCONV:
        case OP_GCONV_T:
            zconv_adjoint(e, v);
            break;
        case OP_STORE: {
            const char *gs = S_(e, "(w + %zu)", e->gS[v->index]);
            const Val *a = VAL(e, v->a);
            if (wants_adj(e, v->a)) {
                if (a->vary == VARY_SAMPLE) {
                    bool assign = first(e, v->a);
                    out(e, "real *restrict GA = %s;", G(e, v->a));
                    out(e, "const real *restrict GS = %s;", gs);
                    out(e, "for (size_t j = 0; j < %zu; j++)", v->size * BT);
                    out(e, "    GA[j] %s GS[j];", assign ? "=" : "+=");
                } else {
                    out(e, "real *restrict GA = %s;", G(e, v->a));
                    out(e, "const real *restrict GS = %s;", gs);
                    out(e, "for (size_t i = 0; i < %zu; i++)", v->size);
                    out(e, "    GA[%s] += spdl_lane_sum(GS + i * SPDL_BT);", a->shape.rank ? "i" : "0");
                }
            }
            out(e, "memset(%s, 0, sizeof(real) * %zu);", gs, v->size * BT);
            e->gs_touched[v->index] = false;
            break;
        }
        case OP_STATE:
            copy_rows(e, S_(e, "(w + %zu)", e->gS[v->index]), G(e, v->id), v->size, true, true);
            e->gs_touched[v->index] = true;
            break;
        case OP_SKEW: {
            int n = v->shape.dim[0];
            out(e, "real *restrict GA = %s;", G(e, v->a));
            out(e, "const real *restrict GY = %s;", G(e, v->id));
            out(e, "size_t q = 0;");
            out(e, "for (size_t i = 0; i < %d; i++)", n);
            out(e, "    for (size_t j = i + 1; j < %d; j++, q++)", n);
            out(e, "        GA[q] += GY[i * %d + j] - GY[j * %d + i];", n, n);
            break;
        }
        case OP_LU:
            first(e, v->a);
            out(e, "spdl_lu_compose_adj(%d, %s, %s, %s);", v->shape.dim[0], F(e, v->a), G(e, v->id), G(e, v->a));
            break;
        case OP_LU_LOGDET: {
            int n = VAL(e, v->a)->shape.dim[0];
            first(e, v->a);
            out(e, "for (size_t i = 0; i < %d; i++)", n);
            out(e, "    %s[i * %d + i] += %s[0];", G(e, v->a), n, G(e, v->id));
            break;
        }
        case OP_CAYLEY: {
            int n = v->shape.dim[0];
            first(e, v->a);
            out(e, "spdl_cayley_adj(%d, %s, %s, %s, %s, w + %zu, w + %zu);", n, F(e, v->a), F(e, v->id), G(e, v->id),
                G(e, v->a), e->pscratch, e->pscratch + (size_t)n * n);
            break;
        }
        case OP_TRANSPOSE: {
            int m = VAL(e, v->a)->shape.dim[0], n = VAL(e, v->a)->shape.dim[1];
            out(e, "real *restrict GA = %s;", G(e, v->a));
            out(e, "const real *restrict GY = %s;", G(e, v->id));
            out(e, "for (size_t i = 0; i < %d; i++)", m);
            out(e, "    for (size_t j = 0; j < %d; j++)", n);
            out(e, "        GA[i * %d + j] += GY[j * %d + i];", n, m);
            break;
        }
        case OP_SLICE: {
            const Val *a = VAL(e, v->a);
            bool whole = a->size == v->size;
            bool assign = whole && first(e, v->a);
            if (!whole)
                partial(e, v->a, a->size * lanes_of(a));
            slice_rows(e, v, G(e, v->id), G(e, v->a), true, assign);
            break;
        }
        case OP_PAD: {
            const Val *a = VAL(e, v->a);
            bool assign = first(e, v->a);
            out(e, "real *restrict GA = %s;", G(e, v->a));
            out(e, "const real *restrict GY = %s;", G(e, v->id));
            out(e, "for (size_t j = 0; j < %zu; j++)", a->size * lanes_of(v));
            out(e, "    GA[j] %s GY[j];", assign ? "=" : "+=");
            break;
        }
        case OP_JOIN: {
            size_t off = 0;
            for (int i = 0; i < v->nargs; i++) {
                const Val *a = VAL(e, v->args[i]);
                if (wants_adj(e, v->args[i])) {
                    bool assign = first(e, v->args[i]);
                    out(e, "for (size_t j = 0; j < %zu; j++)", a->size * lanes_of(v));
                    out(e, "    %s[j] %s %s[%zu + j];", G(e, v->args[i]), assign ? "=" : "+=", G(e, v->id),
                        off * lanes_of(v));
                }
                off += a->size;
            }
            break;
        }
        case OP_POOL2: {
            size_t m = (size_t)v->shape.dim[v->shape.rank - 1], L = lanes_of(v), maps = v->size / (m * m);
            bool assign = first(e, v->a); /* every entry of the operand is in exactly one block */
            out(e, "real *restrict GX = %s;", G(e, v->a));
            out(e, "const real *restrict GY = %s;", G(e, v->id));
            out(e, "for (size_t c = 0; c < %zu; c++)", maps);
            out(e, "    for (size_t i = 0; i < %zu; i++)", 2 * m);
            out(e, "        for (size_t j = 0; j < %zu; j++) {", 2 * m);
            out(e, "            real *restrict gx = GX + ((c * %zu + i) * %zu + j) * %zu;", 2 * m, 2 * m, L);
            out(e, "            const real *restrict gy = GY + ((c * %zu + i / 2) * %zu + j / 2) * %zu;", m, m, L);
            out(e, "            for (size_t l = 0; l < %zu; l++)", L);
            out(e, "                gx[l] %s (real)0.25 * gy[l];", assign ? "=" : "+=");
            out(e, "        }");
            break;
        }
        case OP_GPOOL:
        case OP_MEAN_SPACE:
        case OP_MEAN_SET: {
            size_t A, R, B, L = lanes_of(v);
            axis_mean_dims(e, v, &A, &R, &B);
            comment_mean(e, A, R, B);
            bool assign = first(e, v->a); /* every entry of the operand is in exactly one mean */
            out(e, "real *restrict GX = %s;", G(e, v->a));
            out(e, "const real *restrict GY = %s;", G(e, v->id));
            out(e, "for (size_t a = 0; a < %zu; a++)", A);
            out(e, "    for (size_t r = 0; r < %zu; r++)", R);
            out(e, "        for (size_t j = 0; j < %zu; j++)", B * L);
            out(e, "            GX[(a * %zu + r) * %zu + j] %s GY[a * %zu + j] / (real)%zu;", R, B * L, assign ? "=" : "+=",
                B * L, R);
            break;
        }
        case OP_SUM:
        case OP_MEAN: {
            const Val *a = VAL(e, v->a);
            bool assign = first(e, v->a);
            const char *scale = v->op == OP_MEAN ? S_(e, " / (real)%zu", a->size) : "";
            out(e, "real *restrict GA = %s;", G(e, v->a));
            out(e, "const real *restrict GY = %s;", G(e, v->id));
            if (v->vary == VARY_SAMPLE) {
                out(e, "for (size_t i = 0; i < %zu; i++)", a->size);
                out(e, "    for (int l = 0; l < SPDL_BT; l++)");
                out(e, "        GA[i * SPDL_BT + l] %s GY[l]%s;", assign ? "=" : "+=", scale);
            } else {
                out(e, "for (size_t i = 0; i < %zu; i++)", a->size);
                out(e, "    GA[i] += GY[0]%s;", scale);
            }
            break;
        }
        case OP_SOFTMAX: {
            bool assign = first(e, v->a);
            out(e, "spdl_softmax_adj(%zu, %s, %s, %s, %d);", v->size, F(e, v->id), G(e, v->id), G(e, v->a), assign ? 0 : 1);
            break;
        }
        case OP_CE: {
            const Val *a = VAL(e, v->a);
            if (v->logits) {
                bool assign = first(e, v->a);
                out(e, "spdl_ce_logits_adj(%zu, %s, %s, %s, %s, %d);", a->size, F(e, v->a), F(e, v->b), G(e, v->id),
                    G(e, v->a), assign ? 0 : 1);
            } else {
                partial(e, v->a, a->size * BT);
                out(e, "const real *restrict P = %s;", F(e, v->a));
                out(e, "const real *restrict C = %s;", F(e, v->b));
                out(e, "const real *restrict GY = %s;", G(e, v->id));
                out(e, "real *restrict GP = %s;", G(e, v->a));
                out(e, "for (int l = 0; l < SPDL_BT; l++) {");
                out(e, "    const size_t j = (size_t)C[l] * SPDL_BT + l;");
                out(e, "    GP[j] -= GY[l] / P[j];");
                out(e, "}");
            }
            break;
        }
        case OP_MSE: {
            const Val *a = VAL(e, v->a);
            for (int side = 0; side < 2; side++) {
                int o = side ? v->b : v->a;
                if (!wants_adj(e, o) || (side && v->is_class))
                    continue;
                bool assign = first(e, o);
                out(e, "{");
                out(e, "    const real *restrict P = %s;", F(e, v->a));
                out(e, "    const real *restrict T = %s;", F(e, v->b));
                out(e, "    const real *restrict GY = %s;", G(e, v->id));
                out(e, "    real *restrict GO = %s;", G(e, o));
                out(e, "    for (size_t i = 0; i < %zu; i++)", a->size);
                out(e, "        for (int l = 0; l < SPDL_BT; l++) {");
                if (v->is_class)
                    out(e, "            const real d = P[i * SPDL_BT + l] - (real)(T[l] == (real)i);");
                else
                    out(e, "            const real d = P[i * SPDL_BT + l] - T[i * SPDL_BT + l];");
                out(e, "            GO[i * SPDL_BT + l] %s %s2 * GY[l] * d;", assign ? "=" : "+=", side ? "-" : "");
                out(e, "        }");
                out(e, "}");
            }
            break;
        }
        case OP_NLL: {
            const Val *a = VAL(e, v->a);
            if (wants_adj(e, v->a)) {
                bool assign = first(e, v->a);
                out(e, "{");
                out(e, "    const real *restrict Z = %s;", F(e, v->a));
                out(e, "    const real *restrict GY = %s;", G(e, v->id));
                out(e, "    real *restrict GZ = %s;", G(e, v->a));
                out(e, "    for (size_t i = 0; i < %zu; i++)", a->size);
                out(e, "        for (int l = 0; l < SPDL_BT; l++)");
                out(e, "            GZ[i * SPDL_BT + l] %s GY[l] * Z[i * SPDL_BT + l];", assign ? "=" : "+=");
                out(e, "}");
            }
            if (v->b >= 0 && wants_adj(e, v->b)) {
                bool assign = first(e, v->b);
                out(e, "for (int l = 0; l < SPDL_BT; l++)");
                out(e, "    %s[l] %s -%s[l];", G(e, v->b), assign ? "=" : "+=", G(e, v->id));
            }
            break;
        }
        case OP_SMOOTH:
            for (int i = 0; i < v->nargs; i++) {
                const Val *pv = VAL(e, v->args[i]);
                const Param *pm = param_of(e, pv);
                if (!wants_adj(e, v->args[i]))
                    continue;
                out(e, "{");
                out(e, "    const real *restrict P = %s;", F(e, v->args[i]));
                out(e, "    real *restrict GP = %s;", G(e, v->args[i]));
                out(e, "    const real g = 2 * %s[0] / (real)%s;", G(e, v->id), lit(e, smooth_h(e, pv)));
                out(e, "    for (size_t j = %zu; j < %zu; j++) {", pm->nstore, pm->size);
                out(e, "        const real d = g * (P[j] - P[j - %zu]);", pm->nstore);
                out(e, "        GP[j] += d;");
                out(e, "        GP[j - %zu] -= d;", pm->nstore);
                out(e, "    }");
                out(e, "}");
            }
            break;
        default:
            out(e, "#error \"spdlc: no adjoint for %s\"", op_names[v->op]);
        }
    }
    e->indent--;
    out(e, "}");
}

/* ---- functions ------------------------------------------------------------------------- */

static void emit_layer_logdet(E *e, int s);
static const char *align_work(E *e);

static void compute_active(E *e, Variant var)
{
    const StepProgram *p = e->p;
    for (int i = 0; i < p->nvals; i++) {
        const Val *v = p->vals[i];
        bool act;
        switch (v->op) {
        case OP_CONST: case OP_LABEL: case OP_IDENTITY: act = false; break;
        case OP_PARAM: case OP_STATE: act = true; break;
        case OP_INPUT: act = var == V_VJP; break;
        default:
            act = (v->a >= 0 && e->active[v->a]) || (v->b >= 0 && e->active[v->b]);
            for (int j = 0; j < v->nargs; j++)
                act |= e->active[v->args[j]];
        }
        e->active[i] = act && !v->dead;
    }
}

static const char *fn(E *e, const char *suffix) { return S_(e, "%s_%s", e->M, suffix); }

static void emit_prepare(E *e)
{
    const StepProgram *p = e->p;
    out(e, "/* Parameters into the work buffer, then the parameter code: once per call. */");
    out(e, "SPDL_MODEL_FN void %s(const double *theta, real *w)", fn(e, "prepare"));
    out(e, "{");
    e->indent++;
    if (e->m->theta_size) {
        out(e, "for (size_t i = 0; i < %zu; i++)", e->m->theta_size);
        out(e, "    w[%zu + i] = (real)theta[i];", e->theta);
    } else { /* no parameters: a loop to 0 would be a warning (gcc -Wtype-limits) */
        out(e, "(void)theta;");
        out(e, "(void)w;");
    }
    for (int i = 0; i < p->ngcode; i++)
        op_forward(e, VAL(e, p->gcode[i]));
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK || !sg->npcode)
            continue;
        out(e, "for (size_t k = 0; k < %d; k++) {", sg->blk->layers);
        e->indent++;
        for (int i = 0; i < sg->npcode; i++)
            op_forward(e, VAL(e, sg->pcode[i]));
        e->indent--;
        out(e, "}");
    }
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_prepare_adj(E *e)
{
    const StepProgram *p = e->p;
    out(e, "/* The parameter code in reverse: parameter-value adjoints into the gradient. */");
    out(e, "SPDL_MODEL_FN void %s(real *w)", fn(e, "prepare_adj"));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;");
    for (int s = p->nsegs - 1; s >= 0; s--) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK || !sg->npcode)
            continue;
        bool any = false;
        for (int i = 0; i < sg->npcode; i++)
            any |= VAL(e, sg->pcode[i])->op != OP_PARAM;
        if (!any)
            continue;
        out(e, "for (size_t k = %d; k-- > 0;) {", sg->blk->layers);
        e->indent++;
        for (int i = sg->npcode - 1; i >= 0; i--)
            op_adjoint(e, VAL(e, sg->pcode[i]));
        e->indent--;
        out(e, "}");
    }
    for (int i = p->ngcode - 1; i >= 0; i--)
        op_adjoint(e, VAL(e, p->gcode[i]));
    e->indent--;
    out(e, "}");
    nl(e);
}

static void mark_cone(E *e, int v, bool *in)
{
    if (v < 0 || in[v] || home(VAL(e, v)) != H_LAYERS)
        return;
    in[v] = true;
    const Val *x = VAL(e, v);
    mark_cone(e, x->a, in);
    mark_cone(e, x->b, in);
    for (int i = 0; i < x->nargs; i++)
        mark_cone(e, x->args[i], in);
}

/* Whether, under --memory=invert, the inverse of a layer leaves every value
 * of the layer in its buffer, so that the adjoint need not recompute the
 * layer: when every update is a shear, affine coupling or linear map (whose
 * inverses evaluate the terms at the restored states, as emit_layer_inverse
 * does) and those terms reach every stored value. Verlet and symplectic
 * Euler layers are such. */
static bool inverse_leaves_values(E *e, int s)
{
    const Seg *sg = &e->p->segs[s];
    if (e->o->memory != MEMORY_INVERT)
        return false;
    bool *in = ARENA_ARRAY(e->a, bool, e->p->nvals);
    for (int k = 0; k < sg->nvars; k++)
        in[sg->inputs[k]] = true;
    for (int j = 0; j < sg->nupd; j++)
        in[sg->upd[j].value] = true;
    for (int j = 0; j < sg->nupd; j++) {
        const UpdInfo *ui = &e->o->cert->inverse[s][j].info;
        switch (ui->kind) {
        case UPD_SHEAR: mark_cone(e, ui->x, in); break;
        case UPD_AFFINE: mark_cone(e, ui->e, in); mark_cone(e, ui->t, in); break;
        case UPD_LINEAR: mark_cone(e, ui->t, in); break;
        default: return false;
        }
    }
    for (int i = 0; i < sg->ncode; i++) {
        int v = sg->code[i];
        if (!in[v] && !e->fused[v] && !is_alias(e, VAL(e, v)))
            return false;
    }
    return true;
}

static void emit_layer(E *e, int s)
{
    const Seg *sg = &e->p->segs[s];
    int line, col;
    span_line_col(e->d, sg->span, &line, &col);
    out(e, "/* line %d: one layer of the %s block; reads tin, writes tout */", line,
        sg->blk->kind == BLOCK_FLOW ? "flow" : "repeat");
    out(e, "SPDL_MODEL_FN void %s(real *w, size_t k, const real *restrict tin, real *restrict tout)", fn(e, S_(e, "layer%d", s)));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;"); /* unused by a layer without parameters or scratch */
    out(e, "(void)k;");
    for (int i = 0; i < sg->ncode; i++)
        op_forward(e, VAL(e, sg->code[i]));
    e->indent--;
    out(e, "}");
    nl(e);
    /* the adjoint: recompute the layer from its stored input (unless stored), then reverse */
    out(e, "/* the adjoint of layer k: gout holds d loss / d tout, gin receives d loss / d tin */");
    out(e, "SPDL_MODEL_FN void %s(real *w, size_t k, const real *restrict tin, real *restrict tout, real *restrict gin, real *restrict gout)",
        fn(e, S_(e, "layer%d_adj", s)));
    out(e, "{");
    e->indent++;
    if (e->lstride[s])
        out(e, "/* --memory=store: the forward pass kept layer k's values */");
    else if (inverse_leaves_values(e, s))
        out(e, "/* --memory=invert: the layer's inverse left its values in place */");
    else
        out(e, "%s(w, k, tin, tout);", fn(e, S_(e, "layer%d", s)));
    for (int i = 0; i < sg->ncode; i++)
        e->touched[sg->code[i]] = final_var(sg, sg->code[i]) >= 0;
    for (int i = sg->ncode - 1; i >= 0; i--) {
        int v = sg->code[i];
        if (e->touched[v])
            op_adjoint(e, VAL(e, v));
    }
    for (int k = 0; k < sg->nvars; k++)
        if (!e->touched[sg->inputs[k]])
            out(e, "memset(gin + %zu, 0, sizeof(real) * %zu);", e->varoff[s][k] * BT,
                e->m->states[sg->vars[k]]->size * BT);
    out(e, "(void)w;");
    out(e, "(void)k;"); /* unused when the values are in place and the parameters shared */
    out(e, "(void)tin;");
    out(e, "(void)tout;");
    out(e, "(void)gin;");
    out(e, "(void)gout;");
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_load(E *e)
{
    const Model *m = e->m;
    out(e, "/* One tile of samples into feature-major order; lanes past nb are zero. */");
    out(e, "SPDL_MODEL_FN int %s(real *w, const double *x, const double *target, size_t t0, size_t nb)", fn(e, "load"));
    out(e, "{");
    e->indent++;
    out(e, "real *restrict X = w + %zu;", e->x);
    out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
    out(e, "    for (size_t i = 0; i < %zu; i++) {", m->nin);
    out(e, "        const double v = l < nb ? x[(t0 + l) * %zu + i] : 0.0;", m->nin);
    out(e, "        if (!isfinite(v))");
    out(e, "            return SPDL_ENONFINITE;");
    out(e, "        X[i * SPDL_BT + l] = (real)v;");
    out(e, "    }");
    if (m->ntarget) {
        out(e, "real *restrict C = w + %zu;", e->lab);
        out(e, "if (!target) {");
        out(e, "    memset(C, 0, sizeof(real) * %zu);", m->ntarget * BT);
        out(e, "    return SPDL_OK;");
        out(e, "}");
        if (m->label) {
            out(e, "for (size_t l = 0; l < SPDL_BT; l++) {");
            out(e, "    const double c = l < nb ? target[t0 + l] : 0.0;");
            out(e, "    if (!(c >= 0 && c < %d && c == floor(c)))", m->nclass);
            out(e, "        return SPDL_ELABEL;");
            out(e, "    C[l] = (real)c;");
            out(e, "}");
        } else {
            out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
            out(e, "    for (size_t i = 0; i < %zu; i++) {", m->ntarget);
            out(e, "        const double t = l < nb ? target[(t0 + l) * %zu + i] : 0.0;", m->ntarget);
            out(e, "        if (!isfinite(t))");
            out(e, "            return SPDL_ENONFINITE;");
            out(e, "        C[i * SPDL_BT + l] = (real)t;");
            out(e, "    }");
        }
    } else {
        out(e, "(void)target;");
    }
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_tile_forward(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    bool ld = e->o->cert && e->o->cert->has_inverse && e->o->cert->has_logdet;
    out(e, "/* The forward pass of one tile; keep: keep what the adjoint needs (every layer's");
    out(e, " * input, the snapshots, or nothing, by the memory mode); ld: if not NULL, add each");
    out(e, " * layer's log-determinant to it (per lane); hook: if not NULL, called with each");
    out(e, " * block's state slot before its first layer and after every layer. */");
    out(e, "SPDL_MODEL_FN void %s(real *w, int keep, real *ld, %s_hook hook, void *ctx)", fn(e, "tile_forward"), e->M);
    out(e, "{");
    e->indent++;
    out(e, "(void)keep;");
    out(e, "(void)ld;");
    bool blocks = false;
    for (int s = 0; s < p->nsegs; s++)
        blocks |= p->segs[s].kind == SEG_BLOCK;
    if (!blocks) { /* only blocks call the hook */
        out(e, "(void)hook;");
        out(e, "(void)ctx;");
    }
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind == SEG_CODE) {
            for (int i = 0; i < sg->ncode; i++)
                op_forward(e, VAL(e, sg->code[i]));
            continue;
        }
        size_t st = e->stride[s] * BT;
        int N = sg->blk->layers;
        out(e, "{");
        e->indent++;
        int line, col;
        span_line_col(e->d, sg->span, &line, &col);
        out(e, "/* line %d: %d layers */", line, N);
        /* store: slot k holds layer k's input when keeping; otherwise (and
         * in the other modes) two work slots alternate */
        size_t ws = e->o->memory == MEMORY_CHECKPOINT ? (size_t)e->nsnap[s] : 0;
        out(e, "real *tape = w + %zu, *work = tape + %zu;", e->tape[s], ws * st);
        for (int k = 0; k < sg->nvars; k++) {
            out(e, "memcpy(work + %zu, w + %zu, sizeof(real) * %zu);", e->varoff[s][k] * BT, e->S[sg->vars[k]],
                m->states[sg->vars[k]]->size * BT);
            if (e->o->memory == MEMORY_CHECKPOINT)
                out(e, "memcpy(tape + %zu, w + %zu, sizeof(real) * %zu); /* snapshot 0 */", e->varoff[s][k] * BT,
                    e->S[sg->vars[k]], m->states[sg->vars[k]]->size * BT);
        }
        out(e, "if (hook)");
        out(e, "    hook(ctx, w, %d, 0, work);", s);
        const char *keep = e->o->memory == MEMORY_STORE ? "keep" : "0";
        out(e, "for (size_t k = 0; k < %d; k++) {", N);
        out(e, "    const size_t a = %s ? k : (k & 1), b = %s ? k + 1 : ((k + 1) & 1);", keep, keep);
        out(e, "    %s(w, k, work + a * %zu, work + b * %zu);", fn(e, S_(e, "layer%d", s)), st, st);
        if (ld) {
            out(e, "    if (ld) {");
            emit_layer_logdet(e, s);
            out(e, "    }");
        }
        out(e, "    if (hook)");
        out(e, "        hook(ctx, w, %d, k + 1, work + b * %zu);", s, st);
        out(e, "}");
        out(e, "const size_t f = %s ? %d : %d;", keep, N, N & 1);
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(w + %zu, work + f * %zu + %zu, sizeof(real) * %zu);", e->S[sg->vars[k]], st,
                e->varoff[s][k] * BT, m->states[sg->vars[k]]->size * BT);
        e->indent--;
        out(e, "}");
    }
    e->indent--;
    out(e, "}");
    nl(e);
}

/* --memory=checkpoint: reverses layers [lo, hi) of a block from the snapshot
 * of layer lo's input at `level`, placing further snapshots where Revolve's
 * binomial schedule puts them. */
static void emit_revolve(E *e, int s)
{
    size_t st = e->stride[s] * BT;
    int ns = e->nsnap[s];
    const char *rev = fn(e, S_(e, "reverse%d", s));
    out(e, "/* --memory=checkpoint: reverse layers [lo, hi) of block %d from the snapshot at `level` */", s);
    out(e, "SPDL_MODEL_FN void %s(real *w, size_t lo, size_t hi, int level, real **ga, real **gb)", rev);
    out(e, "{");
    e->indent++;
    out(e, "real *tape = w + %zu, *snap = tape + (size_t)level * %zu, *a = tape + %zu, *b = a + %zu, *t;", e->tape[s], st,
        (size_t)ns * st, st);
    out(e, "while (hi > lo) {");
    e->indent++;
    out(e, "const int free = %d - level - 1;", ns);
    out(e, "if (hi - lo == 1 || free == 0) {");
    out(e, "    /* no snapshot left: recompute the last layer's input from the snapshot */");
    out(e, "    memcpy(a, snap, sizeof(real) * %zu);", st);
    out(e, "    for (size_t k = lo; k + 1 < hi; k++) {");
    out(e, "        %s(w, k, a, b);", fn(e, S_(e, "layer%d", s)));
    out(e, "        t = a, a = b, b = t;");
    out(e, "    }");
    out(e, "    %s(w, hi - 1, a, b, *gb, *ga);", fn(e, S_(e, "layer%d_adj", s)));
    out(e, "    t = *ga, *ga = *gb, *gb = t;");
    out(e, "    hi--;");
    out(e, "    continue;");
    out(e, "}");
    out(e, "const size_t m = spdl_revolve_split(hi - lo, free);");
    out(e, "memcpy(a, snap, sizeof(real) * %zu);", st);
    out(e, "for (size_t k = lo; k < lo + m; k++) {");
    out(e, "    %s(w, k, a, b);", fn(e, S_(e, "layer%d", s)));
    out(e, "    t = a, a = b, b = t;");
    out(e, "}");
    out(e, "memcpy(snap + %zu, a, sizeof(real) * %zu);", st, st);
    out(e, "%s(w, lo + m, hi, level + 1, ga, gb);", rev);
    out(e, "hi = lo + m;");
    e->indent--;
    out(e, "}");
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_tile_backward(E *e, Variant var)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    compute_active(e, var);
    for (int i = 0; i < p->nvals; i++)
        e->touched[i] = false;
    for (int i = 0; i < m->nstates; i++)
        e->gs_touched[i] = false;
    if (var == V_LOSS) {
        out(e, "/* The adjoint of one tile, seeded with d loss / d (per-sample loss) = scale. */");
        out(e, "SPDL_MODEL_FN int %s(real *w, size_t nb, real scale)", fn(e, "tile_backward_loss"));
    } else {
        out(e, "/* The adjoint of one tile, seeded with dy for the output. */");
        out(e, "SPDL_MODEL_FN int %s(real *w, const double *dy, size_t t0, size_t nb)", fn(e, "tile_backward_out"));
    }
    out(e, "{");
    e->indent++;
    out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->madj_begin, e->madj_end - e->madj_begin);
    if (var == V_LOSS) {
        if (p->loss_sample >= 0) {
            out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
            out(e, "    %s[l] = l < nb ? scale : 0;", G(e, p->loss_sample));
            e->touched[p->loss_sample] = true;
        } else {
            out(e, "(void)nb;");
            out(e, "(void)scale;");
        }
    } else {
        out(e, "real *restrict GY = %s;", G(e, p->out));
        out(e, "for (size_t l = 0; l < nb; l++)");
        out(e, "    for (size_t i = 0; i < %zu; i++)", m->nout);
        out(e, "        GY[i * SPDL_BT + l] = (real)dy[(t0 + l) * %zu + i];", m->nout);
        e->touched[p->out] = true;
    }
    for (int s = p->nsegs - 1; s >= 0; s--) {
        const Seg *sg = &p->segs[s];
        if (sg->kind == SEG_CODE) {
            for (int i = sg->ncode - 1; i >= 0; i--) {
                const Val *v = VAL(e, sg->code[i]);
                if (v->op == OP_STORE ? e->gs_touched[v->index] : e->touched[v->id])
                    op_adjoint(e, v);
            }
            continue;
        }
        bool any = false;
        for (int k = 0; k < sg->nvars; k++)
            any |= e->gs_touched[sg->vars[k]];
        if (!any)
            continue;
        size_t st = e->stride[s] * BT;
        int N = sg->blk->layers;
        out(e, "{");
        e->indent++;
        out(e, "real *tape = w + %zu;", e->tape[s]);
        out(e, "real *ga = w + %zu, *gb = w + %zu, *gt;", e->gslot[2 * s], e->gslot[2 * s + 1]);
        out(e, "(void)tape;");
        out(e, "(void)gt;");
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(ga + %zu, w + %zu, sizeof(real) * %zu);", e->varoff[s][k] * BT, e->gS[sg->vars[k]],
                m->states[sg->vars[k]]->size * BT);
        if (e->o->memory == MEMORY_STORE) {
            out(e, "for (size_t k = %d; k-- > 0;) {", N);
            out(e, "    %s(w, k, tape + k * %zu, tape + (k + 1) * %zu, gb, ga);", fn(e, S_(e, "layer%d_adj", s)), st, st);
            out(e, "    gt = ga;");
            out(e, "    ga = gb;");
            out(e, "    gb = gt;");
            out(e, "}");
        } else if (e->o->memory == MEMORY_INVERT) {
            /* each layer's input is rebuilt from its output by the inverse */
            out(e, "real *cur = tape + %d * %zu, *oth = tape + %d * %zu, *t;", N & 1, st, (N + 1) & 1, st);
            out(e, "for (size_t k = %d; k-- > 0;) {", N);
            out(e, "    const int rc = %s(w, k, oth, cur);", fn(e, S_(e, "layer%d_inv", s)));
            out(e, "    if (rc)");
            out(e, "        return rc;");
            out(e, "    %s(w, k, oth, cur, gb, ga);", fn(e, S_(e, "layer%d_adj", s)));
            out(e, "    gt = ga, ga = gb, gb = gt;");
            out(e, "    t = cur, cur = oth, oth = t;");
            out(e, "}");
        } else {
            out(e, "%s(w, 0, %d, 0, &ga, &gb);", fn(e, S_(e, "reverse%d", s)), N);
        }
        out(e, "(void)gb;");
        for (int k = 0; k < sg->nvars; k++) {
            out(e, "memcpy(w + %zu, ga + %zu, sizeof(real) * %zu);", e->gS[sg->vars[k]], e->varoff[s][k] * BT,
                m->states[sg->vars[k]]->size * BT);
            e->gs_touched[sg->vars[k]] = true;
        }
        e->indent--;
        out(e, "}");
        /* values the layer reads from outside it now have contributions */
        for (int i = 0; i < sg->ncode; i++) {
            const Val *v = VAL(e, sg->code[i]);
            int ops[2] = {v->a, v->b};
            for (int j = 0; j < 2; j++)
                if (ops[j] >= 0 && home(VAL(e, ops[j])) == H_MODEL)
                    e->touched[ops[j]] = true;
            for (int j = 0; j < v->nargs; j++)
                if (home(VAL(e, v->args[j])) == H_MODEL)
                    e->touched[v->args[j]] = true;
        }
    }
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

/* ---- the inverse (models proved invertible) ------------------------------------------ */

/* Emits the forward code of the values root needs that are not known yet:
 * sample values of this layer, skipping the states (known) and what is done. */
static void emit_needed(E *e, int root, const bool *known, bool *done)
{
    if (root < 0 || known[root] || done[root])
        return;
    const Val *v = VAL(e, root);
    if (home(v) != H_LAYERS)
        return; /* parameter code (prepared) */
    done[root] = true;
    emit_needed(e, v->a, known, done);
    emit_needed(e, v->b, known, done);
    for (int i = 0; i < v->nargs; i++)
        emit_needed(e, v->args[i], known, done);
    op_forward(e, v);
}

static const char *tol_lit(E *e) { return e->o->fp32 ? "1e-4" : "1e-10"; }

static void emit_layer_inverse(E *e, int s)
{
    const StepProgram *p = e->p;
    const Seg *sg = &p->segs[s];
    const UpdInverse *inv = e->o->cert->inverse[s];
    int line, col;
    span_line_col(e->d, sg->span, &line, &col);
    out(e, "/* line %d: the inverse of one layer: reads tout, writes tin (the updates undone in reverse) */", line);
    out(e, "SPDL_MODEL_FN int %s(real *w, size_t k, real *restrict tin, const real *restrict tout)", fn(e, S_(e, "layer%d_inv", s)));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;");
    out(e, "(void)k;");
    bool *known = ARENA_ARRAY(e->a, bool, p->nvals);
    bool *done = ARENA_ARRAY(e->a, bool, p->nvals);
    for (int i = 0; i < sg->nvars; i++)
        known[sg->inputs[i]] = true;
    for (int j = 0; j < sg->nupd; j++)
        known[sg->upd[j].value] = true;
    for (int j = sg->nupd - 1; j >= 0; j--) {
        const Update *u = &sg->upd[j];
        const UpdInfo *ui = &inv[j].info;
        const Val *nv = VAL(e, u->value);
        size_t n = nv->size * BT;
        out(e, "{");
        e->indent++;
        comment(e, nv, S_(e, "undo %s", u->what));
        (void)n;
        const char *oldp = F(e, u->old), *newp = F(e, u->value);
        switch (ui->kind) {
        case UPD_SHEAR: {
            emit_needed(e, ui->x, known, done);
            out(e, "real *restrict O = %s;", oldp);
            out(e, "const real *restrict N = %s;", newp);
            e->nptr = e->nhoist = 0;
            const char *x = operand_at(e, ui->x, nv);
            loop_open(e, nv);
            out(e, "O[i * SPDL_BT + l] = N[i * SPDL_BT + l] %s %s;", ui->sign > 0 ? "-" : "+", x);
            loop_close(e, nv);
            break;
        }
        case UPD_AFFINE: {
            emit_needed(e, ui->e, known, done);
            if (ui->t >= 0)
                emit_needed(e, ui->t, known, done);
            out(e, "real *restrict O = %s;", oldp);
            out(e, "const real *restrict N = %s;", newp);
            e->nptr = e->nhoist = 0;
            const char *ex = operand_at(e, ui->e, nv), *t = ui->t >= 0 ? operand_at(e, ui->t, nv) : "(real)0";
            loop_open(e, nv);
            out(e, "O[i * SPDL_BT + l] = (N[i * SPDL_BT + l] - %s) / %s;", t, ex);
            loop_close(e, nv);
            break;
        }
        case UPD_LINEAR: {
            int dim = VAL(e, ui->mat)->shape.dim[0];
            if (ui->t >= 0)
                emit_needed(e, ui->t, known, done);
            out(e, "real *restrict D = w + %zu;", e->scratch);
            out(e, "const real *restrict N = %s;", newp);
            e->nptr = e->nhoist = 0;
            const char *t = ui->t >= 0 ? operand_at(e, ui->t, nv) : "(real)0";
            loop_open(e, nv);
            out(e, "D[i * SPDL_BT + l] = N[i * SPDL_BT + l] - %s;", t);
            loop_close(e, nv);
            out(e, "spdl_gemm(%d, SPDL_BT, %d, w + %zu + k * %zu, %d, 1, D, SPDL_BT, %s, SPDL_BT, 0);", dim, dim,
                e->minv[s][j], (size_t)dim * dim, dim, oldp);
            break;
        }
        case UPD_RESIDUAL: {
            /* u = new - x(u), from u = new; the last pass checks the residual */
            out(e, "real *restrict O = %s;", oldp);
            out(e, "const real *restrict N = %s;", newp);
            out(e, "memcpy(O, N, sizeof(real) * %zu);", n);
            out(e, "for (int it = 0; it <= %d; it++) {", inv[j].iters);
            e->indent++;
            bool *done2 = ARENA_ARRAY(e->a, bool, p->nvals);
            memcpy(done2, done, sizeof(bool) * (size_t)p->nvals);
            emit_needed(e, ui->x, known, done2);
            out(e, "const real *restrict X = %s;", F(e, ui->x));
            out(e, "if (it == %d) { /* |u + x(u) - new| <= tol (1 + |new|) or no convergence */", inv[j].iters);
            out(e, "    for (size_t j = 0; j < %zu; j++)", n);
            out(e, "        if (!(fabs((double)(O[j] + X[j] - N[j])) <= %s * (1 + fabs((double)N[j]))))", tol_lit(e));
            out(e, "            return SPDL_ENOCONV;");
            out(e, "    break;");
            out(e, "}");
            out(e, "for (size_t j = 0; j < %zu; j++)", n);
            out(e, "    O[j] = N[j] - X[j];");
            e->indent--;
            out(e, "}");
            break;
        }
        case UPD_OTHER:
            out(e, "#error \"spdlc: an update without an inverse\"");
            break;
        }
        e->indent--;
        out(e, "}");
    }
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_prepare_inverse(E *e)
{
    const StepProgram *p = e->p;
    out(e, "/* The inverses of the orth and lu maps, per layer. */");
    out(e, "SPDL_MODEL_FN void %s(real *w)", fn(e, "prepare_inverse"));
    out(e, "{");
    e->indent++;
    out(e, "(void)w;");
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        for (int j = 0; j < sg->nupd; j++) {
            const UpdInfo *ui = &e->o->cert->inverse[s][j].info;
            if (ui->kind != UPD_LINEAR)
                continue;
            const Val *mv = VAL(e, ui->mat);
            int n = mv->shape.dim[0];
            out(e, "for (size_t k = 0; k < %d; k++) {", sg->blk->layers);
            e->indent++;
            if (mv->op == OP_LU) {
                out(e, "spdl_lu_inverse(%d, %s, w + %zu + k * %zu);", n, F(e, mv->a), e->minv[s][j], (size_t)n * n);
            } else { /* orth: Q^{-1} = Q' */
                out(e, "const real *restrict Q = %s;", F(e, mv->id));
                out(e, "real *restrict X = w + %zu + k * %zu;", e->minv[s][j], (size_t)n * n);
                out(e, "for (size_t i = 0; i < %d; i++)", n);
                out(e, "    for (size_t c = 0; c < %d; c++)", n);
                out(e, "        X[c * %d + i] = Q[i * %d + c];", n, n);
            }
            e->indent--;
            out(e, "}");
        }
    }
    e->indent--;
    out(e, "}");
    nl(e);
}

/* Copies the declared states between a tile's S buffers and sample-major s. */
static void emit_states_io(E *e, bool to_tile, const char *arr)
{
    const Model *m = e->m;
    for (int st = 0; st < m->nstates; st++) {
        const State *S = m->states[st];
        if (S->hidden) {
            if (to_tile)
                out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->S[st], S->size * BT);
            continue;
        }
        out(e, "for (size_t l = 0; l < SPDL_BT; l++)");
        out(e, "    for (size_t i = 0; i < %zu; i++)", S->size);
        if (to_tile)
            out(e, "        w[%zu + i * SPDL_BT + l] = l < nb ? (real)%s[(t0 + l) * %zu + %zu + i] : 0;", e->S[st], arr,
                m->state_size, S->offset);
        else
            out(e, "        if (l < nb) %s[(t0 + l) * %zu + %zu + i] = (double)w[%zu + i * SPDL_BT + l];", arr, m->state_size,
                S->offset, e->S[st]);
    }
}

static void emit_inverse_public(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    const char *M = e->M;
    out(e, "int %s_flow(const double *theta, size_t batch, const double *x, double *s, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !s || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s(w, 0, NULL, NULL, NULL);", fn(e, "tile_forward"));
    emit_states_io(e, false, "s");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "int %s_flow_inverse(const double *theta, size_t batch, const double *s, double *s0, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !s || !s0 || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "for (size_t i = 0; i < batch * %zu; i++)", m->state_size);
    out(e, "    if (!isfinite(s[i]))");
    out(e, "        return SPDL_ENONFINITE;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    emit_states_io(e, true, "s");
    for (int s = p->nsegs - 1; s >= 0; s--) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        size_t st = e->stride[s] * BT;
        out(e, "{");
        e->indent++;
        out(e, "real *a = w + %zu, *b = a + %zu, *t;", e->tape[s], st);
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(a + %zu, w + %zu, sizeof(real) * %zu);", e->varoff[s][k] * BT, e->S[sg->vars[k]],
                m->states[sg->vars[k]]->size * BT);
        out(e, "for (size_t k = %d; k-- > 0;) {", sg->blk->layers);
        out(e, "    const int rc = %s(w, k, b, a);", fn(e, S_(e, "layer%d_inv", s)));
        out(e, "    if (rc)");
        out(e, "        return rc;");
        out(e, "    t = a;");
        out(e, "    a = b;");
        out(e, "    b = t;");
        out(e, "}");
        out(e, "(void)b;");
        for (int k = 0; k < sg->nvars; k++)
            out(e, "memcpy(w + %zu, a + %zu, sizeof(real) * %zu);", e->S[sg->vars[k]], e->varoff[s][k] * BT,
                m->states[sg->vars[k]]->size * BT);
        e->indent--;
        out(e, "}");
    }
    emit_states_io(e, false, "s0");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    if (!e->o->cert->has_logdet)
        return;
    out(e, "int %s_logdet(const double *theta, size_t batch, const double *x, double *ld, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !ld || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "real *restrict LD = w + %zu;", e->ld);
    out(e, "memset(LD, 0, sizeof(real) * SPDL_BT);");
    out(e, "%s(w, 0, LD, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "for (size_t l = 0; l < nb; l++)");
    out(e, "    ld[t0 + l] = (double)LD[l];");
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

/* After layer k of segment s: add its log-determinant to LD (per lane). */
static void emit_layer_logdet(E *e, int s)
{
    const StepProgram *p = e->p;
    const Seg *sg = &p->segs[s];
    const UpdInverse *inv = e->o->cert->inverse[s];
    size_t n = e->stride[s], st = n * BT;
    const char *adj = fn(e, S_(e, "layer%d_adj", s));
    switch (e->o->cert->logdet_way[s]) {
    case LOGDET_STRUCTURE:
        break;
    case LOGDET_JACOBIAN:
        out(e, "    { /* log|det| of the layer Jacobian: row r is the adjoint of the basis vector e_r */");
        out(e, "        real *restrict jac = w + %zu, *restrict basis = jac + %zu;", e->ldwork, n * st);
        out(e, "        memset(basis, 0, sizeof(real) * %zu);", st);
        out(e, "        for (size_t r = 0; r < %zu; r++) {", n);
        out(e, "            for (int l = 0; l < SPDL_BT; l++)");
        out(e, "                basis[r * SPDL_BT + l] = 1;");
        out(e, "            %s(w, k, work + a * %zu, work + b * %zu, jac + r * %zu, basis);", adj, st, st, st);
        out(e, "            for (int l = 0; l < SPDL_BT; l++)");
        out(e, "                basis[r * SPDL_BT + l] = 0;");
        out(e, "        }");
        out(e, "        spdl_logabsdet_tile(%zu, jac, ld);", n);
        out(e, "    }");
        return;
    case LOGDET_SERIES: {
        int K = e->o->cert->series_terms[s];
        out(e, "    { /* Behrmann et al.: log det(I + J) = sum_j (-1)^(j+1) tr(J^j) / j, %d terms;", K);
        out(e, "       * tr(J^j) ~ z' J^j z over %d Rademacher probes z (Hutchinson) */", LOGDET_PROBES);
        out(e, "        real *restrict z = w + %zu, *pw = z + %zu, *nx = pw + %zu;", e->ldwork, st, st);
        out(e, "        for (uint64_t probe = 0; probe < %d; probe++) {", LOGDET_PROBES);
        out(e, "            spdl_rademacher_tile(%zu, work + a * %zu, probe * %zuu + k, z);", n, st, (size_t)1 << 20);
        out(e, "            memcpy(pw, z, sizeof(real) * %zu);", st);
        out(e, "            for (int j = 1; j <= %d; j++) { /* nx = (J - I)' pw */", K);
        out(e, "                %s(w, k, work + a * %zu, work + b * %zu, nx, pw);", adj, st, st);
        out(e, "                const real c = (real)((j & 1) ? 1 : -1) / (real)(j * %d);", LOGDET_PROBES);
        out(e, "                for (size_t i = 0; i < %zu; i++)", n);
        out(e, "                    for (int l = 0; l < SPDL_BT; l++) {");
        out(e, "                        nx[i * SPDL_BT + l] -= pw[i * SPDL_BT + l];");
        out(e, "                        ld[l] += c * z[i * SPDL_BT + l] * nx[i * SPDL_BT + l];");
        out(e, "                    }");
        out(e, "                real *t = pw;");
        out(e, "                pw = nx;");
        out(e, "                nx = t;");
        out(e, "            }");
        out(e, "        }");
        out(e, "    }");
        return;
    }
    }
    for (int j = 0; j < sg->nupd; j++) {
        const UpdInfo *ui = &inv[j].info;
        if (ui->kind == UPD_AFFINE) {
            const Val *sv = VAL(e, ui->s);
            out(e, "    for (size_t i = 0; i < %zu; i++) /* sum(s) of the coupling */", sv->size);
            out(e, "        for (int l = 0; l < SPDL_BT; l++)");
            out(e, "            ld[l] += %s[i * SPDL_BT + l];", F(e, ui->s));
        } else if (ui->kind == UPD_LINEAR && VAL(e, ui->mat)->op == OP_LU) {
            const Val *mv = VAL(e, ui->mat);
            out(e, "    { /* log|det| of lu: sum of the diagonal's logs */");
            out(e, "        const real d = spdl_lu_logdet(%d, %s);", mv->shape.dim[0], F(e, mv->a));
            out(e, "        for (int l = 0; l < SPDL_BT; l++)");
            out(e, "            ld[l] += d;");
            out(e, "    }");
        }
    }
}

static const char *align_work(E *e)
{
    (void)e;
    return "real *w = (real *)(((uintptr_t)work + 63) & ~(uintptr_t)63);";
}

static void emit_public(E *e)
{
    const StepProgram *p = e->p;
    const Model *m = e->m;
    const char *M = e->M;
    /* parameter table */
    out(e, "static const spdl_param %s_param_table[] = {", M);
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        char shape[128] = "";
        int n = 0;
        for (int d = 0; d < 6; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%d", d ? ", " : "", d < pm->store.rank ? pm->store.dim[d] : 0);
        out(e, "    {\"%s\", %zu, %zu, %d, %d, {%s}},", pm->name, pm->offset, pm->size, pm->layers, pm->store.rank, shape);
    }
    if (!m->nparams)
        out(e, "    {\"\", 0, 0, 0, 0, {0, 0, 0, 0, 0, 0}},");
    out(e, "};");
    nl(e);
    out(e, "const spdl_param *%s_params(size_t *count)", M);
    out(e, "{");
    out(e, "    if (count)");
    out(e, "        *count = %d;", m->nparams);
    out(e, "    return %s_param_table;", M);
    out(e, "}");
    nl(e);
    out(e, "size_t %s_work_size(size_t batch)", M);
    out(e, "{");
    out(e, "    (void)batch; /* tiles of SPDL_BT samples: the size does not depend on the batch */");
    out(e, "    return sizeof(real) * %zu + 64;", e->total);
    out(e, "}");
    nl(e);
    /* forward */
    out(e, "int %s_forward(const double *theta, size_t batch, const double *x, double *y, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !y || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s(w, 0, NULL, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "const real *restrict Y = %s;", F(e, p->out));
    out(e, "for (size_t l = 0; l < nb; l++)");
    out(e, "    for (size_t i = 0; i < %zu; i++)", m->nout);
    out(e, "        y[(t0 + l) * %zu + i] = (double)Y[i * SPDL_BT + l];", m->nout);
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    /* loss and gradient */
    out(e, "double %s_loss_grad(const double *theta, size_t batch, const double *x, const double *target, double *grad, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !work || batch == 0%s)", m->ntarget ? " || !target" : "");
    out(e, "    return NAN;");
    out(e, "%s", align_work(e));
    out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->padj_begin, e->padj_end - e->padj_begin);
    out(e, "%s(theta, w);", fn(e, "prepare"));
    if (e->o->memory == MEMORY_INVERT)
        out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "double total = 0;");
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "if (%s(w, x, target, t0, nb))", fn(e, "load"));
    out(e, "    return NAN;");
    out(e, "%s(w, grad != NULL, NULL, NULL, NULL);", fn(e, "tile_forward"));
    if (p->loss_sample >= 0) {
        out(e, "const real *restrict L = %s;", F(e, p->loss_sample));
        out(e, "for (size_t l = 0; l < nb; l++)");
        out(e, "    total += (double)L[l];");
    }
    out(e, "if (grad && %s(w, nb, (real)(1.0 / (double)batch)))", fn(e, "tile_backward_loss"));
    out(e, "    return NAN;");
    e->indent--;
    out(e, "}");
    out(e, "double loss = total / (double)batch;");
    if (p->loss_param >= 0) { /* the parameter-only terms, once; a constant has no gradient (DESIGN §3) */
        const Val *lp = VAL(e, p->loss_param);
        if (is_lit(lp))
            out(e, "loss += %s;", lit(e, lp->num));
        else
            out(e, "loss += (double)%s[0];", F(e, p->loss_param));
        if (lp->vary != VARY_CONST) {
            out(e, "if (grad)");
            out(e, "    %s[0] += 1;", G(e, p->loss_param));
        }
    }
    out(e, "if (grad) {");
    out(e, "    %s(w);", fn(e, "prepare_adj"));
    if (m->theta_size) {
        out(e, "    for (size_t i = 0; i < %zu; i++)", m->theta_size);
        out(e, "        grad[i] = (double)w[%zu + i];", e->gtheta);
    }
    out(e, "}");
    out(e, "return loss;");
    e->indent--;
    out(e, "}");
    nl(e);
    /* vjp */
    out(e, "int %s_vjp(const double *theta, size_t batch, const double *x, const double *dy, double *dx, double *dtheta, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !dy || !work || batch == 0 || (!dx && !dtheta))");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "memset(w + %zu, 0, sizeof(real) * %zu);", e->padj_begin, e->padj_end - e->padj_begin);
    out(e, "%s(theta, w);", fn(e, "prepare"));
    if (e->o->memory == MEMORY_INVERT)
        out(e, "%s(w);", fn(e, "prepare_inverse"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s(w, 1, NULL, NULL, NULL);", fn(e, "tile_forward"));
    out(e, "const int brc = %s(w, dy, t0, nb);", fn(e, "tile_backward_out"));
    out(e, "if (brc)");
    out(e, "    return brc;");
    out(e, "if (dx) {");
    out(e, "    const real *restrict GX = w + %zu;", e->gx);
    out(e, "    for (size_t l = 0; l < nb; l++)");
    out(e, "        for (size_t i = 0; i < %zu; i++)", m->nin);
    out(e, "            dx[(t0 + l) * %zu + i] = (double)GX[i * SPDL_BT + l];", m->nin);
    out(e, "}");
    e->indent--;
    out(e, "}");
    out(e, "if (dtheta) {");
    out(e, "    %s(w);", fn(e, "prepare_adj"));
    if (m->theta_size) {
        out(e, "    for (size_t i = 0; i < %zu; i++)", m->theta_size);
        out(e, "        dtheta[i] = (double)w[%zu + i];", e->gtheta);
    }
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
    /* trajectory */
    size_t rows = 0;
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK)
            rows += (size_t)p->segs[s].blk->layers + 1;
    /* the hook copies each block's states into the caller's array */
    out(e, "typedef struct { double *traj; size_t t0, nb; } %s_traj_ctx;", M);
    nl(e);
    out(e, "SPDL_MODEL_FN void %s(void *ctx, real *w, int seg, size_t k, const real *slot)", fn(e, "traj_hook"));
    out(e, "{");
    e->indent++;
    out(e, "const %s_traj_ctx *c = ctx;", M);
    out(e, "double *traj = c->traj;");
    out(e, "const size_t t0 = c->t0, nb = c->nb;");
    out(e, "(void)w;");
    out(e, "(void)slot;");
    out(e, "switch (seg) {");
    size_t row = 0;
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind != SEG_BLOCK)
            continue;
        out(e, "case %d:", s);
        e->indent++;
        for (int st = 0; st < m->nstates; st++) {
            int k = block_var(sg, st);
            const State *S = m->states[st];
            if (S->hidden)
                continue;
            /* block vars from the slot; other states as the block sees them */
            out(e, "for (size_t l = 0; l < nb; l++)");
            out(e, "    for (size_t i = 0; i < %zu; i++)", S->size);
            if (k >= 0)
                out(e, "        traj[((t0 + l) * %zu + %zu + k) * %zu + %zu + i] = (double)slot[(%zu + i) * SPDL_BT + l];", rows,
                    row, m->state_size, S->offset, e->varoff[s][k]);
            else
                out(e, "        traj[((t0 + l) * %zu + %zu + k) * %zu + %zu + i] = (double)w[%zu + i * SPDL_BT + l];", rows,
                    row, m->state_size, S->offset, e->S[st]);
        }
        out(e, "break;");
        e->indent--;
        row += (size_t)sg->blk->layers + 1;
    }
    out(e, "default:");
    out(e, "    (void)traj, (void)t0, (void)nb, (void)k;");
    out(e, "}");
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "/* Every state at the start and after each layer of every block (for plots). */");
    out(e, "int %s_trajectory(const double *theta, size_t batch, const double *x, double *traj, void *work)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta || !x || !traj || !work || batch == 0)");
    out(e, "    return SPDL_EINVAL;");
    out(e, "%s", align_work(e));
    out(e, "%s(theta, w);", fn(e, "prepare"));
    out(e, "for (size_t t0 = 0; t0 < batch; t0 += SPDL_BT) {");
    e->indent++;
    out(e, "const size_t nb = batch - t0 < SPDL_BT ? batch - t0 : SPDL_BT;");
    out(e, "const int rc = %s(w, x, NULL, t0, nb);", fn(e, "load"));
    out(e, "if (rc)");
    out(e, "    return rc;");
    out(e, "%s_traj_ctx ctx = {traj, t0, nb};", M);
    out(e, "%s(w, 0, NULL, %s, &ctx);", fn(e, "tile_forward"), fn(e, "traj_hook"));
    e->indent--;
    out(e, "}");
    out(e, "return SPDL_OK;");
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_init_project(E *e)
{
    const Model *m = e->m;
    const char *M = e->M;
    out(e, "/* Norm bounds (rigorous upper bounds, rescaling when exceeded) and the step simplex. */");
    out(e, "void %s_project(double *theta)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta)");
    out(e, "    return;");
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        if (pm->kind == PK_STEPS) {
            const Block *b = pm->block;
            double T = b->t1 - b->t0;
            out(e, "/* %s: 0 <= dt_k <= %g, sum dt_k = %g */", pm->name, b->has_hmax ? b->hmax : T, T);
            out(e, "spdl_project_capped_simplex(%d, theta + %zu, %s, %s);", pm->layers, pm->offset,
                lit(e, b->has_hmax ? b->hmax : T), lit(e, T));
            continue;
        }
        if (!pm->has_norm || pm->kind == PK_ORTH)
            continue;
        int r = pm->shape.dim[0], c = pm->shape.dim[1];
        out(e, "/* %s: norm <= %g */", pm->name, pm->norm_bound);
        out(e, "for (size_t k = 0; k < %d; k++) {", pm->layers);
        e->indent++;
        out(e, "double *P = theta + %zu + k * %zu;", pm->offset, pm->nstore);
        if ((pm->kind == PK_LIFT || pm->kind == PK_GCONV) && pm->group->kind != GROUP_Z) {
            /* C4/D4: the operator norm on the grid, from the symbols on its torus (DESIGN §8) */
            int n = an_conv_grid(e->p, pm);
            const char *dims = S_(e, "%d, %d, %d, %d, %d, %d", pm->group->order, pm->kind == PK_GCONV, pm->cout, pm->cin,
                                  pm->ksize, n);
            out(e, "double S[SPDL_GNORM_SCRATCH(%s)]; /* the map on %d x %d grids */", dims, n, n);
            out(e, "spdl_gconv_project(%s, P, %s, S);", dims, lit(e, pm->norm_bound));
            e->indent--;
            out(e, "}");
            continue;
        }
        if (pm->kind == PK_GCONV) { /* the operator norm on Z(n) sequences, from the kernel's symbols */
            out(e, "double M[4 * %d * %d];", pm->cout, pm->cin);
            out(e, "const double bound = spdl_zconv_norm_upper(%d, %d, %d, %d, P, M);", pm->cout, pm->cin, pm->ksize,
                pm->group->n);
        } else if (pm->kind == PK_SKEW) {
            out(e, "double A[%d * %d];", r, r);
            out(e, "size_t q = 0;");
            out(e, "for (size_t i = 0; i < %d; i++) {", r);
            out(e, "    A[i * %d + i] = 0;", r);
            out(e, "    for (size_t j = i + 1; j < %d; j++, q++) {", r);
            out(e, "        A[i * %d + j] = P[q];", r);
            out(e, "        A[j * %d + i] = -P[q];", r);
            out(e, "    }");
            out(e, "}");
            out(e, "const double bound = spdl_norm2_upper(%d, %d, A, %s, 1e-3);", r, r, lit(e, pm->norm_bound));
        } else {
            out(e, "const double bound = spdl_norm2_upper(%d, %d, P, %s, 1e-3);", r, c, lit(e, pm->norm_bound));
        }
        out(e, "if (bound > %s) {", lit(e, pm->norm_bound));
        out(e, "    const double scale = %s / bound * (1 - 0x1p-50);", lit(e, pm->norm_bound));
        out(e, "    for (size_t i = 0; i < %zu; i++)", pm->nstore);
        out(e, "        P[i] *= scale;");
        out(e, "}");
        e->indent--;
        out(e, "}");
    }
    e->indent--;
    out(e, "}");
    nl(e);
    out(e, "/* Deterministic initialisation: N(0, 1/fan_in) for matrices and kernels, zero biases, dt = T/N. */");
    out(e, "void %s_init(double *theta, uint64_t seed)", M);
    out(e, "{");
    e->indent++;
    out(e, "if (!theta)");
    out(e, "    return;");
    out(e, "uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x5350444cull;");
    out(e, "(void)s;");
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        if (pm->kind == PK_STEPS) {
            out(e, "for (size_t i = 0; i < %zu; i++) /* %s */", pm->size, pm->name);
            out(e, "    theta[%zu + i] = %s;", pm->offset, lit(e, pm->block->h));
            continue;
        }
        double fan = 0;
        if (pm->kind == PK_SKEW)
            fan = pm->shape.dim[0];
        else if ((pm->kind == PK_FREE && pm->shape.rank >= 2) || pm->kind == PK_LIFT || pm->kind == PK_GCONV)
            fan = (double)shape_size(pm->shape) / pm->shape.dim[0]; /* kernels: cin x taps (x |G|) */
        if (fan == 0) {
            out(e, "memset(theta + %zu, 0, sizeof(double) * %zu); /* %s */", pm->offset, pm->size, pm->name);
            continue;
        }
        out(e, "for (size_t i = 0; i < %zu; i++) /* %s */", pm->size, pm->name);
        out(e, "    theta[%zu + i] = spdl_rng_normal(&s) * %s;", pm->offset, lit(e, 1 / sqrt(fan)));
    }
    out(e, "%s_project(theta);", M);
    e->indent--;
    out(e, "}");
    nl(e);
}

static void emit_descriptor(E *e)
{
    const Model *m = e->m;
    const StepProgram *p = e->p;
    const char *M = e->M;
    size_t rows = 0;
    int nblocks = 0;
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK) {
            rows += (size_t)p->segs[s].blk->layers + 1;
            nblocks++;
        }
    out(e, "static const double %s_norm_bounds[] = {", M);
    for (int i = 0; i < m->nparams; i++)
        out(e, "    %s, /* %s */", m->params[i]->has_norm ? lit(e, m->params[i]->norm_bound) : "NAN", m->params[i]->name);
    if (!m->nparams)
        out(e, "    NAN,");
    out(e, "};");
    nl(e);
    const Val *ov = VAL(e, p->out);
    out(e, "const spdl_model *%s_model(void)", M);
    out(e, "{");
    e->indent++;
    out(e, "static const spdl_model model = {");
    out(e, "    \"%s\", \"%s\", %zu, %zu, %zu, %zu, %zu, %d, %d, {%d, %d, %d, %d}, %d, %zu,", M, e->o->source_hash, m->nin,
        m->nout, m->state_size, m->theta_size, m->ntarget, m->nclass, m->in_shape.rank, m->in_shape.dim[0],
        m->in_shape.rank > 1 ? m->in_shape.dim[1] : 0, m->in_shape.rank > 2 ? m->in_shape.dim[2] : 0,
        m->in_shape.rank > 3 ? m->in_shape.dim[3] : 0, nblocks, rows);
    out(e, "    %s_params, %s_work_size, %s_init, %s_project, %s_forward, %s_loss_grad, %s_vjp, %s_trajectory,", M, M, M,
        M, M, M, M, M);
    bool inv = e->o->cert && e->o->cert->has_inverse, ldt = inv && e->o->cert->has_logdet;
    out(e, "    %s, %s, %s,", inv ? S_(e, "%s_flow", M) : "NULL", inv ? S_(e, "%s_flow_inverse", M) : "NULL",
        ldt ? S_(e, "%s_logdet", M) : "NULL");
    out(e, "    %s, %d, %s_norm_bounds, %d,", isinf(e->o->lipschitz) || isnan(e->o->lipschitz) ? "INFINITY" : S_(e, "%.17g", e->o->lipschitz),
        ov->op == OP_SOFTMAX, M, p->density);
    out(e, "};");
    out(e, "return &model;");
    e->indent--;
    out(e, "}");
}

static void emit_header(E *e)
{
    const Model *m = e->m;
    const char *M = e->M;
    out(e, "/* %s.h - generated by spdlc %s from %s (source hash %s). Do not edit. */", M, SPDL_VERSION,
        e->o->source_path, e->o->source_hash);
    out(e, "#ifndef SPDL_MODEL_%s_H", M);
    out(e, "#define SPDL_MODEL_%s_H", M);
    nl(e);
    out(e, "#include <stddef.h>");
    out(e, "#include <stdint.h>");
    nl(e);
    out(e, "#include \"spdl.h\"");
    nl(e);
    out(e, "#ifdef __cplusplus");
    out(e, "extern \"C\" {");
    out(e, "#endif");
    nl(e);
    out(e, "enum { %s_NIN = %zu, %s_NOUT = %zu, %s_NSTATE = %zu, %s_NPARAM = %zu, %s_NTARGET = %zu };", M, m->nin, M,
        m->nout, M, m->state_size, M, m->theta_size, M, m->ntarget);
    nl(e);
    out(e, "const spdl_param *%s_params(size_t *count);", M);
    out(e, "size_t %s_work_size(size_t batch);", M);
    out(e, "void   %s_init(double *theta, uint64_t seed);", M);
    out(e, "void   %s_project(double *theta);", M);
    out(e, "int    %s_forward(const double *theta, size_t batch, const double *x, double *y, void *work);", M);
    out(e, "double %s_loss_grad(const double *theta, size_t batch, const double *x,", M);
    out(e, "                     const double *target, double *grad, void *work);");
    out(e, "int    %s_vjp(const double *theta, size_t batch, const double *x, const double *dy,", M);
    out(e, "              double *dx, double *dtheta, void *work);");
    out(e, "int    %s_trajectory(const double *theta, size_t batch, const double *x, double *traj, void *work);", M);
    if (e->o->cert && e->o->cert->has_inverse) {
        out(e, "/* the model is proved invertible (see spdlc check): */");
        out(e, "int    %s_flow(const double *theta, size_t batch, const double *x, double *s, void *work);", M);
        out(e, "int    %s_flow_inverse(const double *theta, size_t batch, const double *s, double *s0, void *work);", M);
        if (e->o->cert->has_logdet)
            out(e, "int    %s_logdet(const double *theta, size_t batch, const double *x, double *ld, void *work);", M);
    }
    out(e, "const spdl_model *%s_model(void);", M);
    nl(e);
    out(e, "#ifdef __cplusplus");
    out(e, "}");
    out(e, "#endif");
    nl(e);
    out(e, "#endif");
}

const char *emit_hash(Arena *a, const char *text, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ull;
    return arena_printf(a, "%016llx", (unsigned long long)h);
}

static FILE *open_out(E *e, const char *name)
{
    const char *path = S_(e, "%s/%s", e->o->dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        diag_error(e->d, NO_SPAN, "cannot write '%s': %s", path, strerror(errno));
    return f;
}

static int close_out(E *e, FILE *f, const char *name)
{
    if (fclose(f) != 0) {
        diag_error(e->d, NO_SPAN, "cannot write '%s/%s': %s", e->o->dir, name, strerror(errno));
        return 1;
    }
    return 0;
}

int emit_c(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o)
{
    const Model *m = p->m;
    E e = {.a = a, .d = d, .p = p, .m = m, .o = o, .M = m->name, .layer_seg = -1};
    for (int i = 0; i < m->nparams; i++) {
        const Param *pm = m->params[i];
        if (pm->kind == PK_SKEW && pm->has_norm && pm->shape.dim[0] > 128) {
            diag_error(d, pm->norm_span, "norm bounds on skew[n] with n > 128 are not supported yet");
            return 1;
        }
        if ((pm->kind == PK_GCONV || pm->kind == PK_LIFT) && pm->has_norm && pm->group->kind != GROUP_Z) {
            int rows = pm->group->order * pm->cout, cols = pm->kind == PK_GCONV ? pm->group->order * pm->cin : pm->cin;
            if ((size_t)rows * (size_t)cols > 65536) { /* M_project's scratch: 4 rows cols doubles on the stack */
                Diag *g = diag_error(d, pm->norm_span, "norm bounds on %s kernels with more than 65536 symbol entries are not supported yet",
                                     pm->group->name);
                diag_note(d, g, NO_SPAN, "the symbol of '%s' is %d x %d (|G| cout x %s)", pm->name, rows, cols,
                          pm->kind == PK_GCONV ? "|G| cin" : "cin");
                return 1;
            }
        }
        if (pm->kind == PK_GCONV && pm->has_norm && (size_t)pm->cout * (size_t)pm->cin > 4096) {
            diag_error(d, pm->norm_span, "norm bounds on convolution kernels with cout cin > 4096 are not supported yet");
            return 1;
        }
    }
    for (int i = 0; i < p->nvals; i++) {
        const Val *v = p->vals[i];
        const char *what = NULL;
        switch (v->op) {
        case OP_LIFT: case OP_GCONV: case OP_GCONV_T:
            if (v->vary != VARY_SAMPLE)
                what = "convolutions of parameters alone";
            break;
        default: break;
        }
        if (what && !v->dead) {
            Diag *g = diag_error(d, v->span, "code generation for %s is not implemented yet", what);
            diag_note(d, g, NO_SPAN, "`spdlc check` accepts this model; `emit` and `build` do not yet");
            return 1;
        }
    }
    if (o->memory == MEMORY_INVERT && !(o->cert && o->cert->has_inverse)) {
        Diag *g = diag_error(d, NO_SPAN, "--memory=invert needs a model proved invertible");
        diag_note(d, g, NO_SPAN, "`spdlc check` says why '%s' is not; --memory=checkpoint needs no inverse", m->name);
        return 1;
    }
    layout(&e);
    e.gslot = ARENA_ARRAY(a, size_t, 2 * p->nsegs);
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK) {
            e.gslot[2 * s] = alloc(&e, e.stride[s] * BT);
            e.gslot[2 * s + 1] = alloc(&e, e.stride[s] * BT);
        }
    e.touched = ARENA_ARRAY(a, bool, p->nvals);
    e.active = ARENA_ARRAY(a, bool, p->nvals);
    e.gs_touched = ARENA_ARRAY(a, bool, m->nstates + 1);
    mkdir(o->dir, 0777); /* an existing directory is fine; fopen reports the rest */

    FILE *h = open_out(&e, S_(&e, "%s.h", m->name));
    if (!h)
        return 1;
    e.f = h;
    emit_header(&e);
    if (close_out(&e, h, S_(&e, "%s.h", m->name)))
        return 1;

    FILE *c = open_out(&e, S_(&e, "%s.c", m->name));
    if (!c)
        return 1;
    e.f = c;
    out(&e, "/* %s.c - generated by spdlc %s from %s (source hash %s). Do not edit.", m->name, SPDL_VERSION,
        o->source_path, o->source_hash);
    out(&e, " * Samples are processed in tiles of SPDL_BT lanes, feature-major within a tile;");
    out(&e, " * comments name the .spn line each block comes from. */");
    out(&e, "#include \"%s.h\"", m->name);
    nl(&e);
    out(&e, "#include <math.h>");
    out(&e, "#include <stdint.h>");
    out(&e, "#include <string.h>");
    nl(&e);
    out(&e, "typedef %s real;", o->fp32 ? "float" : "double");
    out(&e, "#define SPDL_BT %d", BT);
    nl(&e);
    fwrite(spdl_kernels_text, 1, spdl_kernels_len, c);
    nl(&e);
    out(&e, "/* called with a block's state slot before its first layer and after every layer */");
    out(&e, "typedef void (*%s_hook)(void *ctx, real *w, int seg, size_t k, const real *slot);", m->name);
    nl(&e);
    compute_active(&e, V_VJP);
    emit_prepare(&e);
    emit_prepare_adj(&e);
    for (int s = 0; s < p->nsegs; s++)
        if (p->segs[s].kind == SEG_BLOCK) {
            compute_active(&e, V_VJP);
            emit_layer(&e, s);
        }
    if (o->cert && o->cert->has_inverse) {
        for (int s = 0; s < p->nsegs; s++)
            if (p->segs[s].kind == SEG_BLOCK)
                emit_layer_inverse(&e, s);
        emit_prepare_inverse(&e);
    }
    if (o->memory == MEMORY_CHECKPOINT)
        for (int s = 0; s < p->nsegs; s++)
            if (p->segs[s].kind == SEG_BLOCK)
                emit_revolve(&e, s);
    emit_load(&e);
    emit_tile_forward(&e);
    emit_tile_backward(&e, V_LOSS);
    emit_tile_backward(&e, V_VJP);
    emit_public(&e);
    if (o->cert && o->cert->has_inverse)
        emit_inverse_public(&e);
    emit_init_project(&e);
    emit_descriptor(&e);
    if (close_out(&e, c, S_(&e, "%s.c", m->name)))
        return 1;
    if (o->standalone) {
        FILE *sh = open_out(&e, "spdl.h");
        if (!sh)
            return 1;
        fwrite(spdl_header_text, 1, spdl_header_len, sh);
        if (close_out(&e, sh, "spdl.h"))
            return 1;
    }
    return 0;
}
