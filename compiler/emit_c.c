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
 * buffer at all. The passes that write the code are in emit_*.c (see
 * emit_internal.h); this file lays out the buffers and runs them. */
#include "emit_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "version.h"

extern const char spdl_kernels_text[];
extern const unsigned spdl_kernels_len;
extern const char spdl_header_text[];
extern const unsigned spdl_header_len;

const Val *VAL(E *e, int id) { return e->p->vals[id]; }

Home home(const Val *v)
{
    if (v->seg < 0)
        return H_GLOBAL;
    if (v->vary != VARY_SAMPLE)
        return H_LAYERP;
    return v->layer ? H_LAYERS : H_MODEL;
}

bool is_lit(const Val *v) { return v->op == OP_CONST && v->shape.rank == 0; }

void out(E *e, const char *fmt, ...)
{
    fprintf(e->f, "%*s", e->indent * 4, "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(e->f, fmt, ap);
    va_end(ap);
    fputc('\n', e->f);
}

void nl(E *e) { fputc('\n', e->f); }

const char *S_(E *e, const char *fmt, ...)
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

const char *lit(E *e, double x)
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

/* The scratch of a float build's 3 x 3 grid correlations by Winograd
 * (runtime/spdl_kernels.h, spdl_wino_tiles_): the transformed bank of
 * F(4x4, 3x3), 36 mo mi, with 2 x 36 skews of 16 elements between its
 * blocks' matrices, then blocks of tiles: about 4 MiB (the kernel
 * gradient's, whose products are sums along the block; the correlations
 * use 256 KiB of it), at least one 4 x 4 tile's 36 (mo + mi) BT, at most
 * what every tile of the n x n grid takes in either F(2x2) or F(4x4). */
static size_t wino_scratch(size_t mo, size_t mi, int n)
{
    const size_t per2 = 16 * (mo + mi) * BT, per4 = 36 * (mo + mi) * BT;
    const size_t t2 = (size_t)((n + 1) / 2) * (size_t)((n + 1) / 2), t4 = (size_t)((n + 3) / 4) * (size_t)((n + 3) / 4);
    size_t blocks = ((size_t)4 << 20) / sizeof(float), all = per2 * t2 > per4 * t4 ? per2 * t2 : per4 * t4;
    blocks = blocks < all ? blocks : all;
    blocks = blocks > per4 ? blocks : per4;
    return 36 * (mo * mi + 2 * 16) + blocks;
}

int block_var(const Seg *s, int state)
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

int final_var(const Seg *s, int v)
{
    for (int k = 0; k < s->nvars; k++)
        if (s->finals[k] == v)
            return k;
    return -1;
}

bool is_alias(E *e, const Val *v)
{
    if (is_lit(v) || v->op == OP_PARAM || v->op == OP_INPUT || v->op == OP_LABEL || v->op == OP_STORE)
        return true;
    if (home(v) == H_LAYERS) {
        const Seg *s = &e->p->segs[v->seg];
        return input_var(s, v->id) >= 0 || final_var(s, v->id) >= 0;
    }
    return false;
}


/* A transpose A' of a matrix stored row by row (parameter code), read only
 * as the left operand of products over samples, is never stored: the
 * products read A through strides (matmul_forward, matmul_adjoint), which
 * spares its copy and its adjoint per layer (their size grows with depth)
 * and the parameter code's transposes both ways. A transpose the inverse
 * reads as a linear update's matrix stays stored. */
static void plan_strided(E *e, const int *uses)
{
    const StepProgram *p = e->p;
    int nv = p->nvals;
    int *as_left = ARENA_ARRAY(e->a, int, nv);
    e->strided = ARENA_ARRAY(e->a, bool, nv);
    for (int i = 0; i < nv; i++) {
        const Val *v = p->vals[i];
        if (!v->dead && v->op == OP_MATMUL && v->vary == VARY_SAMPLE && v->b != v->a)
            as_left[v->a]++;
    }
    const Certificate *c = e->o->cert;
    for (int i = 0; i < nv; i++) {
        const Val *v = p->vals[i];
        if (v->dead || v->op != OP_TRANSPOSE || v->shape.rank != 2 || uses[i] == 0 || as_left[i] != uses[i] ||
            (home(v) != H_GLOBAL && home(v) != H_LAYERP))
            continue;
        const Val *s = VAL(e, v->a);
        if (home(s) != home(v) || (s->op == OP_PARAM && param_of(e, s)->kind != PK_FREE))
            continue;
        bool inverse_reads = false;
        for (int g = 0; c && c->has_inverse && g < p->nsegs; g++)
            for (int k = 0; p->segs[g].kind == SEG_BLOCK && k < p->segs[g].nupd; k++)
                inverse_reads |= c->inverse[g][k].info.kind == UPD_LINEAR && c->inverse[g][k].info.mat == i;
        e->strided[i] = !inverse_reads;
    }
}

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
            /* relu's derivative from its value (y > 0 exactly when a > 0), so that a + b before it fuses */
            case FN_TANH: case FN_SIGMOID: case FN_EXP: case FN_RELU: self = true; break;
            case FN_LEAKY_RELU: case FN_SOFTPLUS: a = true; break;
            default: break;
            }
            break;
        case OP_MATMUL: case OP_LIFT: case OP_GCONV: case OP_GCONV_T: a = b = true; break;
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
    bool *read = e->read = ARENA_ARRAY(e->a, bool, nv);
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
    plan_strided(e, uses);
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

/* --memory=store keeps a layer value for every layer when code other than the layer's forward pass reads it
 * (mark_read: an adjoint, the inverse, a result) */
static bool kept(const E *e, const Val *v) { return e->read[v->id]; }

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
    /* in double the code reads the caller's theta in place, through the
     * pointer prepare stores here (spdl_pointer_at); in float, a float copy */
    e->theta = alloc(e, e->o->fp32 ? m->theta_size : 2);
    size_t nmax = 1;
    for (int i = 0; i < nv; i++)
        if (p->vals[i]->op == OP_CAYLEY || p->vals[i]->op == OP_LU)
            nmax = nmax > (size_t)p->vals[i]->shape.dim[0] ? nmax : (size_t)p->vals[i]->shape.dim[0];
    e->pscratch = alloc(e, 2 * nmax * nmax);
    size_t bank = 0, wino = 0;
    for (int i = 0; i < nv; i++) {
        const Val *v = p->vals[i];
        if ((v->op == OP_LIFT || v->op == OP_GCONV || v->op == OP_GCONV_T) && !v->dead) {
            const Param *pm = m->params[p->vals[v->a]->index];
            if (pm->group->kind != GROUP_Z) {
                size_t mo = (size_t)pm->cout * (size_t)pm->group->order,
                       mi = (size_t)pm->cin * (size_t)(pm->kind == PK_GCONV ? pm->group->order : 1);
                size_t b = mo * mi * (size_t)pm->ksize * (size_t)pm->ksize;
                bank = bank > b ? bank : b;
                if (e->o->fp32 && pm->ksize == 3) {
                    size_t w = wino_scratch(mo, mi, v->shape.dim[v->shape.rank - 1]);
                    wino = wino > w ? wino : w;
                }
            }
        }
    }
    /* the bank, then its gradient GWB at the bank's size rounded up to 8 (gconv_adjoint):
     * 2 * bank alone is short by 4 when a C4 lift's 4 cout cin k k is an odd multiple of 4 */
    e->gscratch = alloc(e, 2 * ((bank + 7) & ~(size_t)7));
    e->nwscratch = wino;
    e->wscratch = alloc(e, wino);
    /* parameter code values */
    for (int i = 0; i < p->ngcode; i++) {
        const Val *v = VAL(e, p->gcode[i]);
        if (!is_alias(e, v) && !e->strided[v->id])
            e->fwd[v->id] = alloc(e, v->size);
    }
    for (int s = 0; s < p->nsegs; s++)
        for (int i = 0; i < p->segs[s].npcode; i++) {
            const Val *v = VAL(e, p->segs[s].pcode[i]);
            if (!is_alias(e, v) && !e->strided[v->id])
                e->fwd[v->id] = alloc(e, v->size * (size_t)p->segs[s].blk->layers);
        }
    /* their adjoints and the gradient: one region, zeroed once per call; in
     * double the gradient accumulates in the caller's array, whose address
     * each call stores at gradp, so the scratch does not grow with theta */
    e->gradp = e->o->fp32 ? NONE : alloc(e, 2);
    e->padj_begin = e->total;
    e->gtheta = e->o->fp32 ? alloc(e, m->theta_size) : NONE;
    for (int i = 0; i < p->ngcode; i++) {
        const Val *v = VAL(e, p->gcode[i]);
        if (!is_alias(e, v) && !e->strided[v->id] && v->vary != VARY_CONST)
            e->adj[v->id] = alloc(e, v->size);
    }
    for (int s = 0; s < p->nsegs; s++)
        for (int i = 0; i < p->segs[s].npcode; i++) {
            const Val *v = VAL(e, p->segs[s].pcode[i]);
            if (!is_alias(e, v) && !e->strided[v->id])
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
        /* store: every layer keeps the values its adjoint reads (first, k
         * layers' worth), so the adjoint need not recompute the layer; the
         * others have one place that every layer reuses (SPDL_LANES tells
         * gcc that the two kinds of address do not overlap) */
        const bool store = sg->kind == SEG_BLOCK && e->o->memory == MEMORY_STORE;
        size_t begin = e->total;
        for (int pass = 0; pass < (store ? 2 : 1); pass++) {
            for (int i = 0; i < sg->ncode; i++) {
                const Val *v = VAL(e, sg->code[i]);
                if (v->size > maxrows)
                    maxrows = v->size;
                if (!is_alias(e, v) && !e->fused[v->id] && (!store || kept(e, v) == (pass == 0)))
                    e->fwd[v->id] = alloc(e, v->size * BT);
            }
            if (pass == 0 && store && e->total > begin) {
                e->lstride[s] = e->total - begin;
                alloc(e, e->lstride[s] * (size_t)(sg->blk->layers - 1));
            }
        }
        if (sg->kind != SEG_BLOCK)
            continue;
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

/* the name of one of the model's functions: M_suffix */
const char *fn(E *e, const char *suffix) { return S_(e, "%s_%s", e->M, suffix); }

/* ---- buffers as C expressions ----------------------------------------------------- */

const Param *param_of(E *e, const Val *v) { return e->m->params[v->index]; }

/* Where the parameters are read: the caller's theta in double (its address
 * in the work buffer, so every function of the model reaches it through w),
 * the work buffer's float copy in float. */
static const char *theta_base(E *e)
{
    return e->o->fp32 ? S_(e, "(w + %zu)", e->theta) : S_(e, "spdl_pointer_at(w + %zu)", e->theta);
}

/* The forward buffer of v in the current context (k is the layer index). */
const char *F(E *e, int id)
{
    const Val *v = VAL(e, id);
    if (is_lit(v))
        return lit(e, v->num);
    switch (home(v)) {
    case H_GLOBAL:
        if (v->op == OP_PARAM)
            return S_(e, "(%s + %zu)", theta_base(e), param_of(e, v)->offset);
        return S_(e, "(w + %zu)", e->fwd[id]);
    case H_LAYERP:
        if (v->op == OP_PARAM)
            return S_(e, "(%s + %zu + k * %zu)", theta_base(e), param_of(e, v)->offset, param_of(e, v)->nstore);
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
        if (e->lstride[v->seg] && kept(e, v))
            return S_(e, "(w + %zu + k * %zu)", e->fwd[id], e->lstride[v->seg]);
        return S_(e, "(w + %zu)", e->fwd[id]);
    }
    }
    return "?";
}

/* Where the parameter gradient accumulates: the caller's array in double
 * (through its address in the work buffer), the work buffer in float. */
static const char *grad_base(E *e)
{
    return e->o->fp32 ? S_(e, "(w + %zu)", e->gtheta) : S_(e, "spdl_pointer_at(w + %zu)", e->gradp);
}

/* The adjoint buffer of v. */
const char *G(E *e, int id)
{
    const Val *v = VAL(e, id);
    switch (home(v)) {
    case H_GLOBAL:
        if (v->op == OP_PARAM)
            return S_(e, "(%s + %zu)", grad_base(e), param_of(e, v)->offset);
        return S_(e, "(w + %zu)", e->adj[id]);
    case H_LAYERP:
        if (v->op == OP_PARAM)
            return S_(e, "(%s + %zu + k * %zu)", grad_base(e), param_of(e, v)->offset, param_of(e, v)->nstore);
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

/* Whether a block has per-layer parameter code to run (a value other than
 * its parameters and the transposes products read through strides). */
bool has_layer_code(E *e, const Seg *sg)
{
    for (int i = 0; sg->kind == SEG_BLOCK && i < sg->npcode; i++) {
        const Val *v = VAL(e, sg->pcode[i]);
        if (v->op != OP_PARAM && !e->strided[v->id])
            return true;
    }
    return false;
}

/* ---- adjoint bookkeeping ------------------------------------------------------------ */

/* Whether a contribution to o's adjoint may assign (=) instead of add:
 * only layer values, the first time the reverse sweep reaches them. */
bool first(E *e, int o)
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

bool wants_adj(E *e, int o) { return o >= 0 && e->active[o]; }

/* M_vjp without dtheta stores no gradient address (double): a tile's
 * contributions of sample values v to parameter-level adjoints o are then
 * skipped, at run time. Opens the test where it is needed. */
bool grad_guard_open(E *e, const Val *v, int o)
{
    if (e->o->fp32 || v->vary != VARY_SAMPLE || VAL(e, o)->vary == VARY_SAMPLE)
        return false;
    out(e, "if (spdl_pointer_at(w + %zu)) {", e->gradp);
    e->indent++;
    return true;
}

void grad_guard_close(E *e, bool open)
{
    if (open) {
        e->indent--;
        out(e, "}");
    }
}

/* For contributions that cover only part of o or reduce into it: zero o
 * first when this is the first contribution, then always add. */
void partial(E *e, int o, size_t rows)
{
    if (first(e, o))
        out(e, "memset(%s, 0, sizeof(real) * %zu);", G(e, o), rows);
}

size_t rows_of(const Val *v) { return v->size ? v->size : 1; }

size_t lanes_of(const Val *v) { return v->vary == VARY_SAMPLE ? BT : 1; }

/* ---- comments ------------------------------------------------------------------------ */

void comment(E *e, const Val *v, const char *what)
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

const char *align_work(E *e)
{
    (void)e;
    return "real *w = (real *)(((uintptr_t)work + 63) & ~(uintptr_t)63);";
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
    E e = {.a = a, .d = d, .p = p, .m = m, .o = o, .M = o->prefix ? o->prefix : m->name, .layer_seg = -1};
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

    FILE *h = open_out(&e, S_(&e, "%s.h", e.M));
    if (!h)
        return 1;
    e.f = h;
    emit_header(&e);
    if (close_out(&e, h, S_(&e, "%s.h", e.M)))
        return 1;

    FILE *c = open_out(&e, S_(&e, "%s.c", e.M));
    if (!c)
        return 1;
    e.f = c;
    out(&e, "/* %s.c - generated by spdlc %s from %s (source hash %s). Do not edit.", e.M, SPDL_VERSION,
        o->source_path, o->source_hash);
    out(&e, " * Samples are processed in tiles of SPDL_BT lanes, feature-major within a tile;");
    out(&e, " * comments name the .spn line each block comes from. */");
    out(&e, "#include \"%s.h\"", e.M);
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
    out(&e, "typedef void (*%s_hook)(void *ctx, real *w, int seg, size_t k, const real *slot);", e.M);
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
    if (close_out(&e, c, S_(&e, "%s.c", e.M)))
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
