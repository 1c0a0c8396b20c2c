/* step.c - lowering the checked model to the step program (see step.h).
 *
 * Values are hash-consed, so `A - A'` written in four RK stages is computed
 * once per layer, and each value is placed where its operands allow: shared
 * parameter code runs once per call, per-layer parameter code once per layer,
 * sample code that reads no block state is hoisted out of the layer loop. */
#include "step.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const op_names[OP_COUNT] = {
    [OP_CONST] = "const", [OP_INPUT] = "input", [OP_LABEL] = "label", [OP_PARAM] = "param",
    [OP_STATE] = "state", [OP_STORE] = "store", [OP_COPY] = "copy", [OP_FILL] = "fill", [OP_SKEW] = "skew", [OP_CAYLEY] = "cayley", [OP_LU] = "lu", [OP_LU_LOGDET] = "lu_logdet",
    [OP_IDENTITY] = "identity", [OP_TRANSPOSE] = "transpose", [OP_ADD] = "add", [OP_SUB] = "sub",
    [OP_MUL] = "mul", [OP_DIV] = "div", [OP_NEG] = "neg", [OP_POW] = "pow", [OP_ACT] = "act",
    [OP_MATMUL] = "matmul", [OP_SLICE] = "slice", [OP_PAD] = "pad", [OP_JOIN] = "join",
    [OP_SUM] = "sum", [OP_MEAN] = "mean", [OP_SOFTMAX] = "softmax", [OP_CE] = "cross_entropy",
    [OP_MSE] = "mse", [OP_NLL] = "nll_gaussian", [OP_SMOOTH] = "smooth", [OP_LIFT] = "lift",
    [OP_GCONV] = "gconv", [OP_GCONV_T] = "gconv'", [OP_GPOOL] = "gpool", [OP_MEAN_SPACE] = "mean_space", [OP_MEAN_SET] = "mean_set", [OP_POOL2] = "pool2",
};

/* Where a value lives, from cheapest to most often computed. */
typedef enum { HOME_GLOBAL, HOME_MODEL, HOME_LAYERP, HOME_LAYERS } Home;

typedef struct L {
    Arena *a;
    Diags *d;
    const Model *m;
    StepProgram *p;
    int *cur;           /* per state: its current value */
    int block_seg;      /* the block being lowered, or -1 */
    int model_seg;      /* the model-level code segment being appended to */
    Home *home;         /* per value */
    int caphome;
    /* hash-consing */
    int *table;
    int captable, ntable;
    int version;        /* makes model-level state snapshots distinct */
    bool failed;
} L;

static Home home_of(L *l, int v) { return v < 0 ? HOME_GLOBAL : l->home[v]; }

static Home join_home(Home a, Home b)
{
    if (a == HOME_LAYERS || b == HOME_LAYERS)
        return HOME_LAYERS;
    if ((a == HOME_LAYERP && b == HOME_MODEL) || (a == HOME_MODEL && b == HOME_LAYERP))
        return HOME_LAYERS;
    return a > b ? a : b;
}

static uint64_t val_hash(const Val *v)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ull)
    uint64_t bits;
    memcpy(&bits, &v->num, sizeof bits);
    MIX(v->op); MIX(v->a + 7); MIX(v->b + 11); MIX(bits); MIX(v->fn); MIX(v->index); MIX(v->scope + 3);
    MIX(v->logits); MIX(v->is_class); MIX(v->bcast); MIX(v->layer);
    for (int i = 0; i < MAX_RANK; i++) {
        MIX(v->lo[i]);
        MIX(v->hi[i]);
        MIX(v->shape.dim[i]);
    }
    MIX(v->shape.rank);
    for (int i = 0; i < v->nargs; i++)
        MIX(v->args[i]);
#undef MIX
    /* FNV's multiply only carries low bits upward; the table indexes with
     * the low bits, so fold the high ones down (splitmix64's finaliser). */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static bool val_same(const Val *x, const Val *y)
{
    if (x->op != y->op || x->a != y->a || x->b != y->b || x->fn != y->fn || x->index != y->index ||
        x->scope != y->scope || x->logits != y->logits || x->is_class != y->is_class || x->bcast != y->bcast ||
        x->nargs != y->nargs || x->layer != y->layer || !shape_eq(x->shape, y->shape) ||
        memcmp(&x->num, &y->num, sizeof x->num) != 0)
        return false;
    for (int i = 0; i < MAX_RANK; i++)
        if (x->lo[i] != y->lo[i] || x->hi[i] != y->hi[i])
            return false;
    for (int i = 0; i < x->nargs; i++)
        if (x->args[i] != y->args[i])
            return false;
    return true;
}

static void push_int(Arena *a, int **arr, int *n, int *cap, int x)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 16;
        int *na = ARENA_ARRAY(a, int, c);
        if (*n)
            memcpy(na, *arr, sizeof(int) * (size_t)*n);
        *arr = na;
        *cap = c;
    }
    (*arr)[(*n)++] = x;
}

static void table_grow(L *l)
{
    int cap = l->captable ? l->captable * 2 : 1024;
    int *t = ARENA_ARRAY(l->a, int, cap);
    for (int i = 0; i < cap; i++)
        t[i] = -1;
    for (int i = 0; i < l->captable; i++) {
        int v = l->table[i];
        if (v < 0)
            continue;
        size_t j = val_hash(l->p->vals[v]) & (size_t)(cap - 1);
        while (t[j] >= 0)
            j = (j + 1) & (size_t)(cap - 1);
        t[j] = v;
    }
    l->table = t;
    l->captable = cap;
}

static bool cse_ok(Op op) { return op != OP_STORE && op != OP_COPY && op != OP_STATE; }

/* Places and records a value; returns the existing one if an equal value
 * is already visible. */
static int emit(L *l, Val proto)
{
    StepProgram *p = l->p;
    Home h = HOME_GLOBAL;
    if (proto.op == OP_INPUT || proto.op == OP_LABEL)
        h = HOME_MODEL;
    else if (proto.op == OP_STATE)
        h = l->block_seg >= 0 && proto.layer ? HOME_LAYERS : HOME_MODEL;
    else if (proto.op == OP_PARAM)
        h = proto.layer ? HOME_LAYERP : HOME_GLOBAL;
    else if (proto.op == OP_STORE)
        h = HOME_MODEL;
    h = join_home(h, home_of(l, proto.a));
    h = join_home(h, home_of(l, proto.b));
    for (int i = 0; i < proto.nargs; i++)
        h = join_home(h, home_of(l, proto.args[i]));
    if (proto.op == OP_COPY)
        h = l->block_seg >= 0 ? HOME_LAYERS : join_home(h, HOME_MODEL);
    proto.layer = h == HOME_LAYERP || h == HOME_LAYERS;
    proto.vary = h == HOME_GLOBAL || h == HOME_LAYERP ? (proto.op == OP_CONST ? VARY_CONST : VARY_PARAM) : VARY_SAMPLE;
    proto.scope = h == HOME_GLOBAL ? SCOPE_GLOBAL : h == HOME_MODEL ? -2 : l->block_seg;
    proto.seg = h == HOME_GLOBAL ? -1 : h == HOME_MODEL ? l->model_seg : l->block_seg;
    proto.size = shape_size(proto.shape);
    if (cse_ok(proto.op)) {
        if (2 * (l->ntable + 1) > l->captable)
            table_grow(l);
        size_t j = val_hash(&proto) & (size_t)(l->captable - 1);
        for (; l->table[j] >= 0; j = (j + 1) & (size_t)(l->captable - 1))
            if (val_same(p->vals[l->table[j]], &proto))
                return l->table[j];
        l->table[j] = p->nvals;
        l->ntable++;
    }
    Val *v = ARENA_NEW(l->a, Val);
    *v = proto;
    v->id = p->nvals;
    if (p->nvals == p->capvals) {
        int cap = p->capvals ? p->capvals * 2 : 256;
        Val **nv = ARENA_ARRAY(l->a, Val *, cap);
        if (p->nvals)
            memcpy(nv, p->vals, sizeof *nv * (size_t)p->nvals);
        p->vals = nv;
        p->capvals = cap;
        Home *nh = ARENA_ARRAY(l->a, Home, cap);
        if (p->nvals)
            memcpy(nh, l->home, sizeof *nh * (size_t)p->nvals);
        l->home = nh;
    }
    p->vals[p->nvals] = v;
    l->home[p->nvals] = h;
    p->nvals++;
    /* Scalar constants are literals in generated code: no placement. */
    if (!(v->op == OP_CONST && v->shape.rank == 0)) {
        if (h == HOME_GLOBAL)
            push_int(l->a, &p->gcode, &p->ngcode, &p->capgcode, v->id);
        else if (h == HOME_MODEL) {
            Seg *s = &p->segs[l->model_seg];
            push_int(l->a, &s->code, &s->ncode, &s->capcode, v->id);
        } else {
            Seg *s = &p->segs[l->block_seg];
            if (h == HOME_LAYERP)
                push_int(l->a, &s->pcode, &s->npcode, &s->cappcode, v->id);
            else
                push_int(l->a, &s->code, &s->ncode, &s->capcode, v->id);
        }
    }
    return v->id;
}

static Val V(Op op, Span sp, Shape sh)
{
    Val v = {0};
    v.op = op;
    v.span = sp;
    v.shape = sh;
    v.a = v.b = -1;
    return v;
}

static const Val *val(L *l, int id) { return l->p->vals[id]; }

static int mk_const(L *l, double x, Span sp)
{
    Val v = V(OP_CONST, sp, (Shape){0});
    v.num = x;
    return emit(l, v);
}

static bool is_const(L *l, int id, double x)
{
    const Val *v = val(l, id);
    return v->op == OP_CONST && v->shape.rank == 0 && v->num == x;
}

/* Whether value id is c I, a multiple of the identity (I, c * I, I / c,
 * -(c I)); *c gets the multiple. */
static bool identity_scale(L *l, int id, double *c)
{
    const Val *v = val(l, id);
    double k;
    switch (v->op) {
    case OP_IDENTITY:
        *c = 1;
        return true;
    case OP_NEG:
        if (!identity_scale(l, v->a, &k))
            return false;
        *c = -k;
        return true;
    case OP_MUL: case OP_DIV:
        if (v->bcast != BCAST_SCALAR || val(l, v->b)->op != OP_CONST || !identity_scale(l, v->a, &k))
            return false;
        *c = v->op == OP_MUL ? k * val(l, v->b)->num : k / val(l, v->b)->num;
        return true;
    default:
        return false;
    }
}

static int unary(L *l, Op op, Span sp, int a, Shape sh)
{
    Val v = V(op, sp, sh);
    v.a = a;
    return emit(l, v);
}

/* Elementwise a op b with the result shape sh, simplifying the identities
 * of scalar arithmetic so RK coefficients of 0 and 1 cost nothing. */
static int elementwise(L *l, Op op, Span sp, int a, int b, Shape sh)
{
    const Val *va = val(l, a), *vb = val(l, b);
    if (va->op == OP_CONST && vb->op == OP_CONST && va->shape.rank == 0 && vb->shape.rank == 0) {
        double x = va->num, y = vb->num;
        return mk_const(l, op == OP_ADD ? x + y : op == OP_SUB ? x - y : op == OP_MUL ? x * y : x / y, sp);
    }
    if (op == OP_MUL && is_const(l, a, 1) && vb->shape.rank == sh.rank)
        return b;
    if ((op == OP_MUL || op == OP_DIV) && is_const(l, b, 1) && va->shape.rank == sh.rank)
        return a;
    if ((op == OP_ADD || op == OP_SUB) && is_const(l, b, 0) && va->shape.rank == sh.rank)
        return a;
    if (op == OP_ADD && is_const(l, a, 0) && vb->shape.rank == sh.rank)
        return b;
    if (op == OP_MUL && is_const(l, a, -1) && vb->shape.rank == sh.rank)
        return unary(l, OP_NEG, sp, b, sh);
    Val v = V(op, sp, sh);
    v.a = a;
    v.b = b;
    Shape sa = va->shape, sb = vb->shape;
    if (sa.rank == 0 || sb.rank == 0)
        v.bcast = shape_eq(sa, sb) ? BCAST_NONE : BCAST_SCALAR;
    else if (!shape_eq(sa, sb))
        v.bcast = BCAST_CHANNEL;
    /* Keep the full-shape operand first for broadcasts of commutative ops,
     * so backends see one form: a (full) op b (scalar or channel). */
    if (v.bcast != BCAST_NONE && shape_eq(sb, sh) && !shape_eq(sa, sh) && (op == OP_ADD || op == OP_MUL)) {
        v.a = b;
        v.b = a;
    }
    if (v.bcast != BCAST_NONE && shape_eq(sb, sh) && !shape_eq(sa, sh)) {
        /* scalar - x = -(x - scalar); scalar / x stays as written */
        if (op == OP_SUB) {
            Val w = v;
            w.a = b;
            w.b = a;
            return unary(l, OP_NEG, sp, emit(l, w), sh);
        }
    }
    return emit(l, v);
}

static int param_value(L *l, const Param *pm, Span sp)
{
    Val v = V(OP_PARAM, pm->span, pm->kind == PK_SKEW ? pm->store : pm->shape);
    v.index = pm->index;
    v.layer = pm->per_layer;
    (void)sp;
    int raw = emit(l, v);
    switch (pm->kind) {
    case PK_FREE:
    case PK_STEPS:
        return raw;
    case PK_SKEW:
        return unary(l, OP_SKEW, pm->span, raw, pm->shape);
    case PK_ORTH: /* the Cayley transform of the skew matrix */
        return unary(l, OP_CAYLEY, pm->span, unary(l, OP_SKEW, pm->span, raw, pm->shape), pm->shape);
    case PK_LU:
        return unary(l, OP_LU, pm->span, raw, pm->shape);
    case PK_LIFT:
    case PK_GCONV:
        return raw; /* the kernel: lift and gconv read it */
    }
    return raw;
}

static int lower(L *l, Expr *e);

static int lower_call(L *l, Expr *e)
{
    Expr *a0 = e->args.head, *a1 = a0 ? a0->next : NULL;
    Shape sh = e->type.shape;
    switch ((Builtin)e->fn) {
    case FN_TANH: case FN_RELU: case FN_SIGMOID: case FN_SOFTPLUS: case FN_EXP: case FN_LEAKY_RELU: {
        Val v = V(OP_ACT, e->span, sh);
        v.a = lower(l, a0);
        v.fn = e->fn;
        v.num = e->fn == FN_LEAKY_RELU ? e->num : 0;
        return emit(l, v);
    }
    case FN_IDENTITY:
        return lower(l, a0);
    case FN_SOFTMAX:
        return unary(l, OP_SOFTMAX, e->span, lower(l, a0), sh);
    case FN_CROSS_ENTROPY: {
        int p = lower(l, a0);
        Val v = V(OP_CE, e->span, (Shape){0});
        const Val *vp = val(l, p);
        if (vp->op == OP_SOFTMAX) { /* -log softmax(z)[c], computed stably from z */
            v.a = vp->a;
            v.logits = true;
        } else {
            v.a = p;
        }
        v.b = lower(l, a1);
        v.is_class = true;
        return emit(l, v);
    }
    case FN_MSE: {
        Val v = V(OP_MSE, e->span, (Shape){0});
        v.a = lower(l, a0);
        v.b = lower(l, a1);
        v.is_class = a1->type.is_class;
        return emit(l, v);
    }
    case FN_NLL_GAUSSIAN: {
        Val v = V(OP_NLL, e->span, (Shape){0});
        v.a = lower(l, a0);
        v.b = l->m->logdet ? l->cur[l->m->logdet->index] : -1;
        return emit(l, v);
    }
    case FN_SMOOTH: {
        Val v = V(OP_SMOOTH, e->span, (Shape){0});
        v.args = ARENA_ARRAY(l->a, int, e->args.len);
        for (Expr *x = a0; x; x = x->next) {
            Val pv = V(OP_PARAM, x->span, x->sym->param->store);
            pv.index = x->sym->param->index;
            pv.layer = false; /* smooth reads every layer's copy at once */
            pv.shape = (Shape){1, {(int)x->sym->param->size}};
            v.args[v.nargs++] = emit(l, pv);
        }
        return emit(l, v);
    }
    case FN_PAD: {
        Val v = V(OP_PAD, e->span, sh);
        v.a = lower(l, a0);
        v.hi[0] = sh.dim[0];
        return emit(l, v);
    }
    case FN_JOIN: {
        Val v = V(OP_JOIN, e->span, sh);
        v.args = ARENA_ARRAY(l->a, int, e->args.len);
        for (Expr *x = a0; x; x = x->next)
            v.args[v.nargs++] = lower(l, x);
        return emit(l, v);
    }
    case FN_SUM:
    case FN_MEAN: { /* of a scalar constant: the constant (a literal; emit has no buffer for it) */
        int x = lower(l, a0);
        if (val(l, x)->op == OP_CONST && val(l, x)->shape.rank == 0)
            return x;
        return unary(l, e->fn == FN_SUM ? OP_SUM : OP_MEAN, e->span, x, sh);
    }
    case FN_LIFT: case FN_GCONV: case FN_GCONV_T: {
        Val v = V(e->fn == FN_LIFT ? OP_LIFT : e->fn == FN_GCONV ? OP_GCONV : OP_GCONV_T, e->span, sh);
        v.a = lower(l, a0);
        v.b = lower(l, a1);
        return emit(l, v);
    }
    case FN_GPOOL:
        return unary(l, OP_GPOOL, e->span, lower(l, a0), sh);
    case FN_MEAN_SPACE:
        return unary(l, OP_MEAN_SPACE, e->span, lower(l, a0), sh);
    case FN_MEAN_SET:
        return unary(l, OP_MEAN_SET, e->span, lower(l, a0), sh);
    case FN_POOL2:
        return unary(l, OP_POOL2, e->span, lower(l, a0), sh);
    default:
        break;
    }
    diag_error(l->d, e->span, "internal: cannot lower call");
    l->failed = true;
    return mk_const(l, 0, e->span);
}

static int lower(L *l, Expr *e)
{
    if (e->has_value && e->type.shape.rank == 0)
        return mk_const(l, e->num, e->span);
    Shape sh = e->type.shape;
    switch (e->kind) {
    case E_NUM:
        return mk_const(l, e->num, e->span);
    case E_NAME: {
        Sym *s = e->sym;
        if (!s) { /* the identity I, sized by the resolver */
            Val v = V(OP_IDENTITY, e->span, sh);
            return emit(l, v);
        }
        switch (s->kind) {
        case S_CONST: return mk_const(l, s->value, e->span);
        case S_INPUT: return l->p->input;
        case S_LABEL: case S_TARGET: return l->p->label;
        case S_STATE: return l->cur[s->state->index];
        case S_PARAM: return param_value(l, s->param, e->span);
        case S_LET:
            if (s->low >= 0)
                return s->low;
            break; /* a let lowering never reached: the internal error below */
        case S_OUTPUT: return l->p->out;
        default: break;
        }
        break;
    }
    case E_NEG:
        return unary(l, OP_NEG, e->op_span, lower(l, e->lhs), sh);
    case E_ADD: case E_SUB: case E_DIV: {
        int a = lower(l, e->lhs), b = lower(l, e->rhs);
        return elementwise(l, e->kind == E_ADD ? OP_ADD : e->kind == E_SUB ? OP_SUB : OP_DIV, e->op_span, a, b, sh);
    }
    case E_MUL: {
        Type tl = e->lhs->type, tr = e->rhs->type;
        int a = lower(l, e->lhs), b = lower(l, e->rhs);
        const Val *va = val(l, a), *vb = val(l, b);
        /* c I times a matrix or vector is the product c x; times a scalar
         * it stays the matrix c I (DESIGN §3: I is never a number) */
        double c;
        if (va->shape.rank == 2 && vb->shape.rank >= 1 && identity_scale(l, a, &c))
            return elementwise(l, OP_MUL, e->op_span, mk_const(l, c, e->op_span), b, sh);
        if (vb->shape.rank == 2 && va->shape.rank == 2 && identity_scale(l, b, &c))
            return elementwise(l, OP_MUL, e->op_span, mk_const(l, c, e->op_span), a, sh);
        if (tl.shape.rank == 2 && tr.shape.rank >= 1) {
            Val v = V(OP_MATMUL, e->op_span, sh);
            v.a = a;
            v.b = b;
            return emit(l, v);
        }
        return elementwise(l, OP_MUL, e->op_span, a, b, sh);
    }
    case E_EMUL:
        return elementwise(l, OP_MUL, e->op_span, lower(l, e->lhs), lower(l, e->rhs), sh);
    case E_POW: {
        Val v = V(OP_POW, e->op_span, sh);
        v.a = lower(l, e->lhs);
        v.num = e->rhs->num;
        return emit(l, v);
    }
    case E_TRANSPOSE: {
        double c;
        int a = lower(l, e->lhs);
        if (identity_scale(l, a, &c)) /* (c I)' = c I */
            return a;
        return unary(l, OP_TRANSPOSE, e->op_span, a, sh);
    }
    case E_CALL:
        return lower_call(l, e);
    case E_INDEX: {
        Val v = V(OP_SLICE, e->span, sh);
        v.a = lower(l, e->lhs);
        const Shape in = e->lhs->type.shape;
        int axis = 0;
        for (Expr *x = e->args.head; x; x = x->next, axis++) {
            if (x->kind == E_RANGE) {
                v.lo[axis] = (int)x->lhs->num;
                v.hi[axis] = (int)x->rhs->num;
            } else {
                v.lo[axis] = (int)x->num;
                v.hi[axis] = (int)x->num + 1;
            }
        }
        for (; axis < in.rank; axis++) {
            v.lo[axis] = 0;
            v.hi[axis] = in.dim[axis];
        }
        v.fn = in.rank; /* the rank of the input: a single index drops an axis */
        return emit(l, v);
    }
    default:
        break;
    }
    diag_error(l->d, e->span, "internal: cannot lower expression");
    l->failed = true;
    return mk_const(l, 0, e->span);
}

/* ---- segments --------------------------------------------------------------- */

static int new_seg(L *l, SegKind kind)
{
    StepProgram *p = l->p;
    Seg *segs = ARENA_ARRAY(l->a, Seg, p->nsegs + 1);
    if (p->nsegs)
        memcpy(segs, p->segs, sizeof *segs * (size_t)p->nsegs);
    p->segs = segs;
    memset(&p->segs[p->nsegs], 0, sizeof(Seg));
    p->segs[p->nsegs].kind = kind;
    return p->nsegs++;
}

static void model_code(L *l)
{
    StepProgram *p = l->p;
    if (l->model_seg < 0 || l->model_seg != p->nsegs - 1)
        l->model_seg = new_seg(l, SEG_CODE);
}

static void store_state(L *l, const State *st, int value, Span sp)
{
    Val v = V(OP_STORE, sp, st->shape);
    v.a = value;
    v.index = st->index;
    emit(l, v);
    l->cur[st->index] = value;
}

static void push_update(L *l, Seg *s, Update u)
{
    if (s->nupd == s->capupd) {
        int cap = s->capupd ? s->capupd * 2 : 8;
        Update *nu = ARENA_ARRAY(l->a, Update, cap);
        if (s->nupd)
            memcpy(nu, s->upd, sizeof *nu * (size_t)s->nupd);
        s->upd = nu;
        s->capupd = cap;
    }
    s->upd[s->nupd++] = u;
}

static void add_update(L *l, Seg *s, const State *st, int value, int group, Span sp, const char *what)
{
    push_update(l, s, (Update){st->index, value, l->cur[st->index], group, sp, what});
    l->cur[st->index] = value;
}

/* Evaluates the flow's right-hand side for equation `only` (or all, -1) at
 * the current state values; returns the derivatives in out[var]. */
static void eval_field(L *l, const Block *b, int only, int *out)
{
    int eq = 0;
    for (int i = 0; i < b->nitems; i++) {
        Decl *it = b->items[i];
        if (it->kind == D_LET) {
            Sym *s = it->sem;
            if (s && s->kind != S_CONST)
                s->low = lower(l, it->value);
        } else if (it->kind == D_EQUATION) {
            if (only < 0 || only == eq)
                out[eq] = lower(l, it->value);
            eq++;
        }
    }
}

/* The span of each equation, by variable. */
static Span *eq_spans(L *l, const Block *b)
{
    Span *sp = ARENA_ARRAY(l->a, Span, b->nvars + 1);
    for (int i = 0, eq = 0; i < b->nitems && eq < b->nvars; i++)
        if (b->items[i]->kind == D_EQUATION)
            sp[eq++] = b->items[i]->span;
    return sp;
}

/* h as a value: the constant T/N, or the learned step dt[k]. */
static int step_value(L *l, const Block *b, double scale, Span sp)
{
    if (!b->learned)
        return mk_const(l, scale * b->h, sp);
    int dt = param_value(l, b->dt, sp);
    return elementwise(l, OP_MUL, sp, mk_const(l, scale, sp), dt, (Shape){0});
}

/* Keeps the field values f (equation `only`, or all) and the block
 * variables' values they read, for the checkers (Seg.field). */
static void record_field(L *l, Seg *s, const Block *b, int only, const int *f)
{
    int nv = b->nvars;
    for (int k = 0; k < nv; k++) {
        if (only >= 0 && k != only)
            continue;
        s->field[k] = f[k];
        for (int j = 0; j < nv; j++) {
            int at = l->cur[b->vars[j]->index];
            s->field_at[k * nv + j] = at;
        }
    }
}

static void lower_block(L *l, const Block *b)
{
    StepProgram *p = l->p;
    const Model *m = l->m;
    /* Hoisted sample code goes into a model segment before the block. */
    model_code(l);
    int seg = new_seg(l, SEG_BLOCK);
    l->block_seg = seg;
    Seg *s = &p->segs[seg];
    s->blk = b;
    s->span = b->span;
    /* The block's variables: flow states with equations, repeat targets. */
    int *vars = ARENA_ARRAY(l->a, int, m->nstates + 1);
    int nvars = 0;
    for (int i = 0; i < b->nitems; i++) {
        Decl *it = b->items[i];
        if (it->kind != D_EQUATION && it->kind != D_ASSIGN)
            continue;
        int si = it->sem ? ((const Sym *)it->sem)->state->index : -1;
        bool seen = false;
        for (int k = 0; k < nvars; k++)
            seen |= vars[k] == si;
        if (!seen && si >= 0)
            vars[nvars++] = si;
    }
    if (m->logdet)
        vars[nvars++] = m->logdet->index;
    s->vars = vars;
    s->nvars = nvars;
    s->inputs = ARENA_ARRAY(l->a, int, nvars);
    s->finals = ARENA_ARRAY(l->a, int, nvars);
    int *saved = ARENA_ARRAY(l->a, int, m->nstates);
    memcpy(saved, l->cur, sizeof(int) * (size_t)m->nstates);
    for (int k = 0; k < nvars; k++) {
        const State *st = m->states[vars[k]];
        Val v = V(OP_STATE, st->span, st->shape);
        v.index = st->index;
        v.layer = true;
        s->inputs[k] = emit(l, v);
        l->cur[st->index] = s->inputs[k];
    }
    if (b->kind == BLOCK_REPEAT) {
        for (int i = 0; i < b->nitems; i++) {
            Decl *it = b->items[i];
            if (it->kind == D_LET) {
                Sym *sy = it->sem;
                if (sy && sy->kind != S_CONST)
                    sy->low = lower(l, it->value);
                continue;
            }
            const Sym *sy = it->sem;
            int v = lower(l, it->value);
            add_update(l, s, sy->state, v, s->nupd, it->span, arena_printf(l->a, "%s = ...", sy->name));
        }
    } else {
        const Scheme *sc = b->scheme;
        int nv = b->nvars;
        const Span *eqspan = eq_spans(l, b);
        int *var_state = ARENA_ARRAY(l->a, int, nv);
        for (int k = 0; k < nv; k++)
            var_state[k] = b->vars[k]->index;
        int *f = ARENA_ARRAY(l->a, int, nv);
        s->field = ARENA_ARRAY(l->a, int, nv);
        s->field_at = ARENA_ARRAY(l->a, int, nv * nv);
        for (int k = 0; k < nv; k++)
            s->field[k] = -1;
        if (sc->kind == SCHEME_RK) {
            int st = sc->stages;
            int *K = ARENA_ARRAY(l->a, int, st * nv);     /* K[i*nv + var] */
            int *u0 = ARENA_ARRAY(l->a, int, nv);
            for (int k = 0; k < nv; k++)
                u0[k] = l->cur[var_state[k]];
            for (int i = 0; i < st; i++) {
                for (int k = 0; k < nv; k++) {
                    const State *stt = m->states[var_state[k]];
                    int u = u0[k];
                    for (int j = 0; j < i; j++) {
                        if (sc->a[i][j] == 0)
                            continue;
                        Span sp = eqspan[k];
                        int term = elementwise(l, OP_MUL, sp, step_value(l, b, sc->a[i][j], sp), K[j * nv + k], stt->shape);
                        u = elementwise(l, OP_ADD, sp, u, term, stt->shape);
                    }
                    l->cur[var_state[k]] = u;
                }
                eval_field(l, b, -1, f);
                for (int k = 0; k < nv; k++)
                    K[i * nv + k] = f[k];
                if (i == 0)
                    record_field(l, s, b, -1, f);
            }
            for (int k = 0; k < nv; k++)
                l->cur[var_state[k]] = u0[k];
            int *newv = ARENA_ARRAY(l->a, int, nv);
            for (int k = 0; k < nv; k++) {
                const State *stt = m->states[var_state[k]];
                Span sp = eqspan[k];
                int acc = -1;
                for (int i = 0; i < st; i++) {
                    if (sc->b[i] == 0)
                        continue;
                    int term = elementwise(l, OP_MUL, sp, step_value(l, b, sc->b[i], sp), K[i * nv + k], stt->shape);
                    acc = acc < 0 ? term : elementwise(l, OP_ADD, sp, acc, term, stt->shape);
                }
                newv[k] = acc < 0 ? u0[k] : elementwise(l, OP_ADD, sp, u0[k], acc, stt->shape);
            }
            for (int k = 0; k < nv; k++)
                add_update(l, s, m->states[var_state[k]], newv[k], 0, eqspan[k],
                           arena_printf(l->a, "%s += h sum_i b_i K_i (%s, %d stage%s)", m->states[var_state[k]]->name,
                                        sc->name, st, st == 1 ? "" : "s"));
        } else {
            /* Partitioned: update each variable in the order written, with the
             * right-hand side evaluated at the current values. verlet gives
             * the first variable two half steps around the others. */
            bool verlet = sc->kind == SCHEME_VERLET;
            int order[2 * SCHEME_MAX_STAGES + 2], scale2[2 * SCHEME_MAX_STAGES + 2], n = 0;
            if (nv > 2 * SCHEME_MAX_STAGES)
                nv = 2 * SCHEME_MAX_STAGES;
            for (int k = 0; k < nv; k++) {
                order[n] = k;
                scale2[n++] = verlet && k == 0 ? 1 : 2;
            }
            if (verlet) {
                order[n] = 0;
                scale2[n++] = 1;
            }
            for (int i = 0; i < n; i++) {
                int k = order[i];
                const State *stt = m->states[var_state[k]];
                Span sp = eqspan[k];
                eval_field(l, b, k, f);
                if (s->field[k] < 0)
                    record_field(l, s, b, k, f);
                int term = elementwise(l, OP_MUL, sp, step_value(l, b, scale2[i] / 2.0, sp), f[k], stt->shape);
                int v = elementwise(l, OP_ADD, sp, l->cur[stt->index], term, stt->shape);
                add_update(l, s, stt, v, i, sp,
                           arena_printf(l->a, "%s += %s F_%s", stt->name, scale2[i] == 1 ? "h/2" : "h", stt->name));
            }
        }
    }
    /* nll_gaussian: log|det| grows by sum(s) right after each affine
     * coupling v = v * exp(s) + t (shears add nothing), so every update stays
     * a map of the current state */
    if (m->logdet) {
        int nupd = s->nupd;
        Update *orig = ARENA_ARRAY(l->a, Update, nupd + 1);
        memcpy(orig, s->upd, sizeof *orig * (size_t)nupd);
        s->nupd = 0;
        for (int i = 0; i < nupd; i++) {
            push_update(l, s, orig[i]);
            UpdInfo ui;
            Seg probe = *s;
            probe.upd = orig;
            probe.nupd = nupd;
            step_classify(p, &probe, i, &ui);
            bool lu = ui.kind == UPD_LINEAR && p->vals[ui.mat]->op == OP_LU;
            if (ui.kind == UPD_SHEAR || (ui.kind == UPD_LINEAR && !lu))
                continue; /* volume preserving: shears, orth maps */
            if (ui.kind != UPD_AFFINE && !lu) {
                if (!l->failed) {
                    Diag *g = diag_error(l->d, orig[i].span, "nll_gaussian needs an exact log-determinant, and this update "
                                                             "has none");
                    diag_note(l->d, g, NO_SPAN, "use shears v = v + f(others), affine couplings v = v * exp(s(others)) + "
                                                "t(others), or orth/lu maps");
                }
                l->failed = true;
                continue;
            }
            int term = lu ? unary(l, OP_LU_LOGDET, orig[i].span, p->vals[ui.mat]->a, (Shape){0})
                          : unary(l, OP_SUM, orig[i].span, ui.s, (Shape){0});
            int ld = l->cur[m->logdet->index];
            int inc = unary(l, OP_FILL, orig[i].span, term, m->logdet->shape);
            add_update(l, s, m->logdet, elementwise(l, OP_ADD, orig[i].span, ld, inc, m->logdet->shape), s->nupd,
                       orig[i].span, lu ? "logdet += sum of the lu diagonal" : "logdet += sum(s) of this affine coupling");
        }
    }
    /* Each block var ends the layer in a value of its own, so backends can
     * alias the value's adjoint with the state's. */
    for (int k = 0; k < nvars; k++) {
        int v = l->cur[vars[k]];
        bool shared = home_of(l, v) != HOME_LAYERS || val(l, v)->op == OP_STATE;
        for (int j = 0; j < k; j++)
            shared |= s->finals[j] == v;
        if (shared)
            v = unary(l, OP_COPY, s->span, v, m->states[vars[k]]->shape);
        s->finals[k] = v;
    }
    l->block_seg = -1;
    memcpy(l->cur, saved, sizeof(int) * (size_t)m->nstates);
    /* After the block the model sees snapshots of the new state values. */
    model_code(l);
    for (int k = 0; k < nvars; k++) {
        const State *st = m->states[vars[k]];
        Val v = V(OP_STATE, b->span, st->shape);
        v.index = st->index;
        v.num = ++l->version;
        l->cur[st->index] = emit(l, v);
    }
}

/* Splits the loss into terms: per-sample ones are averaged over the batch,
 * parameter-only ones (regularisers) are added once (DESIGN §3). */
static void loss_terms(L *l, Expr *e, double sign, int *sample, int *param)
{
    if (e->kind == E_ADD || e->kind == E_SUB) {
        loss_terms(l, e->lhs, sign, sample, param);
        loss_terms(l, e->rhs, e->kind == E_SUB ? -sign : sign, sample, param);
        return;
    }
    int v = lower(l, e);
    if (sign < 0)
        v = unary(l, OP_NEG, e->span, v, (Shape){0});
    int *acc = e->type.vary == VARY_SAMPLE ? sample : param;
    *acc = *acc < 0 ? v : elementwise(l, OP_ADD, e->span, *acc, v, (Shape){0});
}

/* ---- update classes ------------------------------------------------------------- */

/* Visit marks over the program's values, cleared in O(1) by bumping the
 * generation: the searches below run once per update, and zeroing an array
 * of every value each time made checking quadratic. A program still being
 * lowered (no marks yet, or more values than marks) gets a fresh array. */
typedef struct StepMarks {
    unsigned *mark;
    int n;
    unsigned gen;
} StepMarks;

typedef struct Visit {
    unsigned *mark;
    unsigned gen;
    bool owned;
} Visit;

/* Reserves generations gen .. gen + count - 1: a search may mark values in
 * several roles. */
static Visit visit_begin(const StepProgram *p, unsigned count)
{
    StepMarks *m = p->marks;
    if (m && m->n >= p->nvals && m->gen < UINT_MAX - count) {
        m->gen += count;
        return (Visit){m->mark, m->gen - count + 1, false};
    }
    return (Visit){calloc((size_t)p->nvals + 1, sizeof(unsigned)), 1, true};
}

static void visit_end(Visit *v)
{
    if (v->owned)
        free(v->mark);
}

static bool visit(Visit *v, int i)
{
    if (v->mark[i] == v->gen)
        return true;
    v->mark[i] = v->gen;
    return false;
}

static bool depends(const StepProgram *p, int v, int target, Visit *seen)
{
    if (v < 0)
        return false;
    if (v == target)
        return true;
    const Val *x = p->vals[v];
    if (x->vary != VARY_SAMPLE || visit(seen, v))
        return false; /* visited, or another variable's current value (a stop) */
    if (depends(p, x->a, target, seen) || depends(p, x->b, target, seen))
        return true;
    for (int i = 0; i < x->nargs; i++)
        if (depends(p, x->args[i], target, seen))
            return true;
    return false;
}

/* stops: values the search must not look through (the other variables'
 * current values at an update), or NULL */
static bool depends_stop(const StepProgram *p, int v, int target, const int *stops, int nstops)
{
    Visit seen = visit_begin(p, 1);
    if (!seen.mark)
        return true; /* out of memory: assume the worst */
    for (int i = 0; i < nstops; i++)
        if (stops[i] >= 0 && stops[i] != target)
            visit(&seen, stops[i]);
    bool d = depends(p, v, target, &seen);
    visit_end(&seen);
    return d;
}

bool step_depends(const StepProgram *p, int v, int target) { return depends_stop(p, v, target, NULL, 0); }

/* The current values of the block's variables just before update k. */
typedef struct Cur {
    int *v; /* per block variable; NULL when out of memory */
    int n;
} Cur;

static Cur current_before(const StepProgram *p, const Seg *s, int k)
{
    Cur c = {malloc(sizeof(int) * ((size_t)s->nvars + 1)), s->nvars};
    if (!c.v)
        return (Cur){NULL, 0};
    step_current(p, s, k, c.v);
    return c;
}

void step_current(const StepProgram *p, const Seg *s, int k, int *cur)
{
    for (int i = 0; i < s->nvars; i++)
        cur[i] = s->inputs[i];
    int *pos = malloc(sizeof(int) * ((size_t)p->m->nstates + 1)); /* state -> its place in vars */
    if (pos) {
        for (int i = 0; i < s->nvars; i++)
            pos[s->vars[i]] = i;
        for (int j = 0; j < k; j++)
            cur[pos[s->upd[j].state]] = s->upd[j].value;
        free(pos);
        return;
    }
    for (int j = 0; j < k; j++)
        for (int i = 0; i < s->nvars; i++)
            if (s->vars[i] == s->upd[j].state)
                cur[i] = s->upd[j].value;
}

static bool is_exp(const StepProgram *p, int v) { return v >= 0 && p->vals[v]->op == OP_ACT && p->vals[v]->fn == FN_EXP; }

/* Whether v depends on old other than through the other variables'
 * current values (which an update map takes as given). */
static bool reads_old(const StepProgram *p, const Cur *c, int v, int old)
{
    return depends_stop(p, v, old, c->v, c->n);
}

/* new = old * exp(s) (either order) */
static bool scaled_old(const StepProgram *p, const Cur *c, int v, int old, UpdInfo *out)
{
    const Val *x = p->vals[v];
    if (x->op != OP_MUL || x->bcast != BCAST_NONE)
        return false;
    int e = x->a == old ? x->b : x->b == old ? x->a : -1;
    if (e < 0 || !is_exp(p, e) || reads_old(p, c, e, old))
        return false;
    out->e = e;
    out->s = p->vals[e]->a;
    return true;
}

static bool linear_old(const StepProgram *p, int v, int old, UpdInfo *out)
{
    const Val *x = p->vals[v];
    if (x->op != OP_MATMUL || x->b != old)
        return false;
    Op mop = p->vals[x->a]->op;
    if (mop != OP_LU && mop != OP_CAYLEY)
        return false;
    out->mat = x->a;
    return true;
}

/* The roles any_earlier marks values with, as generations above seen.gen. */
enum { ROLE_SEEN, ROLE_CURRENT, ROLE_BLOCK };

/* Whether v reads a value of the block's state that is not current at
 * update k (an earlier value of another variable): the update is then not a
 * map of the current state and cannot be undone from it. */
static bool reads_earlier(const StepProgram *p, int old, int v, Visit *seen)
{
    if (v < 0 || v == old)
        return false;
    unsigned mk = seen->mark[v];
    if (mk == seen->gen + ROLE_CURRENT)
        return false;
    const Val *x = p->vals[v];
    if (x->vary != VARY_SAMPLE || mk == seen->gen + ROLE_SEEN)
        return false;
    if (mk == seen->gen + ROLE_BLOCK)
        return true;
    seen->mark[v] = seen->gen + ROLE_SEEN;
    if (reads_earlier(p, old, x->a, seen) || reads_earlier(p, old, x->b, seen))
        return true;
    for (int i = 0; i < x->nargs; i++)
        if (reads_earlier(p, old, x->args[i], seen))
            return true;
    return false;
}

static bool any_earlier(const StepProgram *p, const Seg *s, const Cur *c, int old, const UpdInfo *u)
{
    Visit seen = visit_begin(p, 3);
    if (!seen.mark)
        return true;
    for (int i = 0; i < s->nvars; i++)
        seen.mark[s->inputs[i]] = seen.gen + ROLE_BLOCK;
    for (int j = 0; j < s->nupd; j++)
        seen.mark[s->upd[j].value] = seen.gen + ROLE_BLOCK;
    for (int i = 0; i < c->n; i++)
        seen.mark[c->v[i]] = seen.gen + ROLE_CURRENT;
    int roots[3] = {u->x, u->e, u->t};
    bool r = false;
    for (int i = 0; i < 3 && !r; i++)
        r = reads_earlier(p, old, roots[i], &seen);
    visit_end(&seen);
    return r;
}

static void classify(const StepProgram *p, const Seg *s, int k, const Cur *c, UpdInfo *out);

void step_classify(const StepProgram *p, const Seg *s, int k, UpdInfo *out)
{
    Cur c = current_before(p, s, k);
    classify(p, s, k, &c, out);
    if (out->kind != UPD_OTHER && (!c.v || any_earlier(p, s, &c, s->upd[k].old, out)))
        out->kind = UPD_OTHER; /* out of memory: assume the worst */
    free(c.v);
}

static void classify(const StepProgram *p, const Seg *s, int k, const Cur *c, UpdInfo *out)
{
    memset(out, 0, sizeof *out);
    out->x = out->e = out->s = out->t = out->mat = -1;
    out->sign = 1;
    out->kind = UPD_OTHER;
    const Update *u = &s->upd[k];
    int old = u->old, nw = u->value;
    const Val *n = p->vals[nw];
    if (n->op == OP_COPY && n->a >= 0)
        n = p->vals[n->a];
    if (n->bcast == BCAST_NONE && (n->op == OP_ADD || n->op == OP_SUB)) {
        int other = n->a == old ? n->b : (n->op == OP_ADD && n->b == old) ? n->a : -1;
        if (other >= 0) {
            out->x = other;
            out->sign = n->op == OP_SUB ? -1 : 1;
            out->kind = reads_old(p, c, other, old) ? (out->sign > 0 ? UPD_RESIDUAL : UPD_OTHER) : UPD_SHEAR;
            return;
        }
        /* (old * exp(s) or M old) + t */
        if (n->op == OP_ADD)
            for (int side = 0; side < 2; side++) {
                int prod = side ? n->b : n->a, t = side ? n->a : n->b;
                if (reads_old(p, c, t, old))
                    continue;
                if (scaled_old(p, c, prod, old, out)) {
                    out->kind = UPD_AFFINE;
                    out->t = t;
                    return;
                }
                if (linear_old(p, prod, old, out)) {
                    out->kind = UPD_LINEAR;
                    out->t = t;
                    return;
                }
            }
    }
    if (scaled_old(p, c, n->id, old, out)) {
        out->kind = UPD_AFFINE;
        return;
    }
    if (linear_old(p, n->id, old, out)) {
        out->kind = UPD_LINEAR;
        return;
    }
}

/* ---- dead code ----------------------------------------------------------------- */

static void mark(StepProgram *p, bool *live, int v)
{
    if (v < 0 || live[v])
        return;
    live[v] = true;
    const Val *x = p->vals[v];
    mark(p, live, x->a);
    mark(p, live, x->b);
    for (int i = 0; i < x->nargs; i++)
        mark(p, live, x->args[i]);
}

static void filter(const bool *live, int *code, int *n)
{
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (live[code[i]])
            code[k++] = code[i];
    *n = k;
}

static void eliminate_dead(L *l)
{
    StepProgram *p = l->p;
    bool *live = ARENA_ARRAY(l->a, bool, p->nvals);
    mark(p, live, p->out);
    mark(p, live, p->loss_sample);
    mark(p, live, p->loss_param);
    /* Stores, block inputs and finals define the state flow. */
    for (int i = 0; i < p->nsegs; i++) {
        Seg *s = &p->segs[i];
        if (s->kind == SEG_CODE) {
            for (int j = 0; j < s->ncode; j++)
                if (p->vals[s->code[j]]->op == OP_STORE)
                    mark(p, live, s->code[j]);
        } else {
            for (int k = 0; k < s->nvars; k++) {
                mark(p, live, s->finals[k]);
                mark(p, live, s->inputs[k]);
            }
            for (int k = 0; k < s->nupd; k++)
                mark(p, live, s->upd[k].value);
        }
    }
    for (int i = 0; i < p->nvals; i++)
        p->vals[i]->dead = !live[i];
    filter(live, p->gcode, &p->ngcode);
    for (int i = 0; i < p->nsegs; i++) {
        filter(live, p->segs[i].code, &p->segs[i].ncode);
        filter(live, p->segs[i].pcode, &p->segs[i].npcode);
    }
}

/* The states are slices x[a:b] covering the input in declaration order, and
 * the output joins them in the same order (or is the one state): then x is
 * the initial state and the output the final one. */
static bool density_layout(const Model *m)
{
    int nvis = 0, next = 0;
    for (int i = 0; i < m->nstates; i++) {
        const State *st = m->states[i];
        if (st->hidden)
            continue;
        nvis++;
        const Expr *e = st->init;
        if (m->in_shape.rank != 1 || st->shape.rank != 1)
            return false;
        if (e->kind == E_NAME && e->sym && e->sym->kind == S_INPUT) {
            if (next != 0 || st->shape.dim[0] != m->in_shape.dim[0])
                return false;
            next = st->shape.dim[0];
            continue;
        }
        if (e->kind != E_INDEX || e->lhs->kind != E_NAME || !e->lhs->sym || e->lhs->sym->kind != S_INPUT ||
            e->args.len != 1 || e->args.head->kind != E_RANGE || (int)e->args.head->lhs->num != next)
            return false;
        next = (int)e->args.head->rhs->num;
    }
    if (nvis == 0 || next != m->in_shape.dim[0])
        return false;
    const Expr *o = m->output->expr;
    if (o->kind == E_NAME && o->sym && o->sym->kind == S_STATE)
        return nvis == 1;
    if (o->kind != E_CALL || o->fn != FN_JOIN || o->args.len != nvis)
        return false;
    int k = 0;
    for (const Expr *x = o->args.head; x; x = x->next, k++)
        if (x->kind != E_NAME || !x->sym || x->sym->kind != S_STATE || x->sym->state != m->states[k])
            return false;
    return true;
}

/* Recursion depth is bounded by the parser's nesting limit; the value count
 * by the source size. */
StepProgram *step_lower(Arena *a, Diags *d, const Model *m)
{
    StepProgram *p = ARENA_NEW(a, StepProgram);
    p->m = m;
    p->out = p->loss_sample = p->loss_param = p->input = p->label = -1;
    L l = {.a = a, .d = d, .m = m, .p = p, .block_seg = -1, .model_seg = -1};
    l.cur = ARENA_ARRAY(a, int, m->nstates + 1);
    model_code(&l);
    p->input = emit(&l, V(OP_INPUT, m->input->span, m->in_shape));
    if (m->label || m->target) {
        Val v = V(OP_LABEL, (m->label ? m->label : m->target)->span, m->label ? (Shape){1, {1}} : m->target->type.shape);
        v.is_class = m->label != NULL;
        p->label = emit(&l, v);
    }
    if (m->logdet)
        store_state(&l, m->logdet, unary(&l, OP_FILL, m->logdet->span, mk_const(&l, 0, m->logdet->span), m->logdet->shape),
                    m->logdet->span);
    for (int i = 0; i < m->ndecls && !l.failed; i++) {
        Decl *dc = m->decls[i];
        Sym *s = dc->sem;
        switch (dc->kind) {
        case D_STATE: {
            const State *st = s->state;
            int v = lower(&l, dc->value);
            if (val(&l, v)->shape.rank == 0 && st->shape.rank > 0) /* `= 0`: every entry */
                v = unary(&l, OP_FILL, dc->value->span, v, st->shape);
            model_code(&l);
            /* a state is per sample even when its initial value is not: a
             * copy in every lane, which the model's sample code reads */
            if (val(&l, v)->vary != VARY_SAMPLE)
                v = unary(&l, OP_COPY, dc->value->span, v, st->shape);
            store_state(&l, st, v, dc->span);
            break;
        }
        case D_LET:
            if (s && s->kind != S_CONST) {
                model_code(&l);
                s->low = lower(&l, dc->value);
            }
            break;
        case D_FLOW:
        case D_REPEAT:
            lower_block(&l, dc->sem);
            break;
        case D_OUTPUT:
            model_code(&l);
            p->out = lower(&l, dc->value);
            break;
        case D_LOSS:
            model_code(&l);
            loss_terms(&l, dc->value, 1, &p->loss_sample, &p->loss_param);
            break;
        default:
            break;
        }
    }
    if (l.failed)
        return NULL;
    eliminate_dead(&l);
    p->marks = ARENA_NEW(a, StepMarks);
    p->marks->n = p->nvals;
    p->marks->mark = ARENA_ARRAY(a, unsigned, p->nvals + 1);
    p->density = density_layout(m);
    if (m->logdet && !p->density) {
        Diag *g = diag_error(d, m->loss_span, "nll_gaussian needs the output to be the flow's final state");
        diag_note(d, g, NO_SPAN, "initialise the states with slices x[a:b] that cover the input in order, and "
                                 "output their join in the same order, so the maps in and out of the flow preserve volume");
        return NULL;
    }
    return p;
}

/* ---- dump ------------------------------------------------------------------------ */

static void dump_val(FILE *out, const Diags *d, const StepProgram *p, int id)
{
    const Val *v = p->vals[id];
    int line, col;
    span_line_col(d, v->span, &line, &col);
    fprintf(out, "    %%%d = %s", v->id, op_names[v->op]);
    switch (v->op) {
    case OP_CONST: fprintf(out, " %.17g", v->num); break;
    case OP_PARAM: fprintf(out, " %s%s", p->m->params[v->index]->name, v->layer ? "[k]" : ""); break;
    case OP_STATE: case OP_STORE: fprintf(out, " %s", p->m->states[v->index]->name); break;
    case OP_ACT:
        fprintf(out, " %s", builtin_info[v->fn].name);
        if (v->fn == FN_LEAKY_RELU)
            fprintf(out, "(%g)", v->num);
        break;
    case OP_POW: fprintf(out, " ^%.17g", v->num); break;
    case OP_SLICE:
        fputs(" [", out);
        for (int i = 0; i < v->fn; i++)
            fprintf(out, "%s%d:%d", i ? "," : "", v->lo[i], v->hi[i]);
        fputc(']', out);
        break;
    case OP_CE: if (v->logits) fputs(" logits", out); break;
    default: break;
    }
    if (v->a >= 0)
        fprintf(out, " %%%d", v->a);
    if (v->b >= 0)
        fprintf(out, " %%%d", v->b);
    for (int i = 0; i < v->nargs; i++)
        fprintf(out, " %%%d", v->args[i]);
    if (v->bcast == BCAST_SCALAR)
        fputs(" (scalar)", out);
    else if (v->bcast == BCAST_CHANNEL)
        fputs(" (channel)", out);
    Arena a;
    arena_init(&a);
    fprintf(out, " : %s", shape_str(&a, v->shape));
    arena_free(&a);
    if (line)
        fprintf(out, "  ; line %d", line);
    fputc('\n', out);
}

void step_dump(FILE *out, const Diags *d, const StepProgram *p)
{
    const Model *m = p->m;
    fprintf(out, "step program %s\n", m->name);
    fprintf(out, "parameter code (once per call):\n");
    for (int i = 0; i < p->ngcode; i++)
        dump_val(out, d, p, p->gcode[i]);
    for (int si = 0; si < p->nsegs; si++) {
        const Seg *s = &p->segs[si];
        if (s->kind == SEG_CODE) {
            if (!s->ncode)
                continue;
            fprintf(out, "segment %d: model code (per sample):\n", si);
            for (int i = 0; i < s->ncode; i++)
                dump_val(out, d, p, s->code[i]);
            continue;
        }
        const Block *b = s->blk;
        int line, col;
        span_line_col(d, b->span, &line, &col);
        if (b->kind == BLOCK_FLOW)
            fprintf(out, "segment %d: flow over [%g, %g] in %d layers by %s, h = %s  ; line %d\n", si, b->t0, b->t1,
                    b->layers, b->scheme->name, b->learned ? "dt[k]" : "T/N", line);
        else
            fprintf(out, "segment %d: repeat %d layers  ; line %d\n", si, b->layers, line);
        fputs("  states:", out);
        for (int k = 0; k < s->nvars; k++)
            fprintf(out, " %s=%%%d", m->states[s->vars[k]]->name, s->inputs[k]);
        fputs("\n  parameter code (per layer k):\n", out);
        for (int i = 0; i < s->npcode; i++)
            dump_val(out, d, p, s->pcode[i]);
        fputs("  sample code (per layer k):\n", out);
        for (int i = 0; i < s->ncode; i++)
            dump_val(out, d, p, s->code[i]);
        fputs("  updates:\n", out);
        for (int i = 0; i < s->nupd; i++) {
            const Update *u = &s->upd[i];
            fprintf(out, "    %s := %%%d  (%s)\n", m->states[u->state]->name, u->value, u->what);
        }
        fputs("  layer end:", out);
        for (int k = 0; k < s->nvars; k++)
            fprintf(out, " %s=%%%d", m->states[s->vars[k]]->name, s->finals[k]);
        fputc('\n', out);
    }
    fprintf(out, "output %%%d\n", p->out);
    if (p->loss_sample >= 0)
        fprintf(out, "loss per sample %%%d (mean over the batch)\n", p->loss_sample);
    if (p->loss_param >= 0)
        fprintf(out, "loss once %%%d\n", p->loss_param);
}
