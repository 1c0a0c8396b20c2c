/* analysis.c - the step-program analyses the guarantee checkers share (see
 * analysis.h). Everything here reads Vals: the same values, with the same
 * operands, that emit_c.c turns into C. */
#include "analysis.h"

#include <math.h>
#include <string.h>

/* ---- activations and scalars ---------------------------------------------------- */

bool an_act(const Val *v, ActFacts *out)
{
    if (!v || v->op != OP_ACT)
        return false;
    const BuiltinInfo *bi = &builtin_info[v->fn];
    out->dmin = v->fn == FN_LEAKY_RELU ? v->num : bi->dmin;
    out->dmax = bi->dmax;
    out->monotone = bi->monotone;
    out->lip = bi->lipschitz ? fmax(fabs(out->dmin), fabs(out->dmax)) : INFINITY;
    return true;
}

double block_step(const Block *b)
{
    if (!b->learned)
        return b->h;
    return b->has_hmax ? b->hmax : b->t1 - b->t0;
}

static bool is_const(const StepProgram *p, int v) { return v >= 0 && p->vals[v]->op == OP_CONST && p->vals[v]->shape.rank == 0; }

/* A bound on |v| for a parameter-code scalar: constants, and learned steps
 * (0 <= dt_k <= hmax, or T, after M_project), through products and sums. */
static bool scalar_bound(const StepProgram *p, int id, double *out)
{
    const Val *v = step_val(p, id);
    double x, y;
    if (!v || v->vary == VARY_SAMPLE || v->shape.rank != 0)
        return false;
    switch (v->op) {
    case OP_CONST:
        *out = fabs(v->num);
        return true;
    case OP_PARAM: {
        const Param *pm = p->m->params[v->index];
        if (pm->kind != PK_STEPS || !pm->block)
            return false;
        *out = block_step(pm->block);
        return true;
    }
    case OP_NEG:
        return scalar_bound(p, v->a, out);
    case OP_ADD: case OP_SUB:
        if (!scalar_bound(p, v->a, &x) || !scalar_bound(p, v->b, &y))
            return false;
        *out = x + y;
        return true;
    case OP_MUL:
        if (!scalar_bound(p, v->a, &x) || !scalar_bound(p, v->b, &y))
            return false;
        *out = x * y;
        return true;
    case OP_DIV:
        if (!scalar_bound(p, v->a, &x) || !is_const(p, v->b) || p->vals[v->b]->num == 0)
            return false;
        *out = x / fabs(p->vals[v->b]->num);
        return true;
    default:
        return false;
    }
}

/* ---- structured matrices ---------------------------------------------------------- */

double mat_norm(const MatInfo *mi) { return mi->skew + fabs(mi->alpha) + mi->gen; }

static void param_bound(MatInfo *m, const Param *pm, Span sp, double *slot)
{
    if (pm->has_norm) {
        *slot = pm->norm_bound;
        return;
    }
    *slot = INFINITY;
    if (!m->unbounded) {
        m->unbounded = pm;
        m->unbounded_span = sp;
    }
}

static void take_unbounded(MatInfo *out, const MatInfo *l, const MatInfo *r)
{
    const MatInfo *src = l->unbounded ? l : r;
    out->unbounded = src->unbounded;
    out->unbounded_span = src->unbounded_span;
}

/* v's operand a has v's own shape (the full operand of a broadcast). */
static bool full_a(const StepProgram *p, const Val *v) { return shape_eq(p->vals[v->a]->shape, v->shape); }

bool an_mat(const StepProgram *p, int id, MatInfo *out)
{
    memset(out, 0, sizeof *out);
    const Val *v = step_val(p, id);
    if (!v || v->vary == VARY_SAMPLE || v->shape.rank != 2)
        return false;
    MatInfo l, r;
    switch (v->op) {
    case OP_IDENTITY:
        out->alpha = 1;
        return true;
    case OP_PARAM: {
        const Param *pm = p->m->params[v->index];
        if (pm->kind != PK_FREE)
            return false;
        param_bound(out, pm, pm->span, &out->gen);
        return true;
    }
    case OP_SKEW: { /* a skew[n] parameter: the bound is on S itself */
        const Val *raw = step_val(p, v->a);
        if (!raw || raw->op != OP_PARAM || p->m->params[raw->index]->kind != PK_SKEW)
            return false;
        param_bound(out, p->m->params[raw->index], p->m->params[raw->index]->span, &out->skew);
        return true;
    }
    case OP_CAYLEY: /* orthogonal: |Q| = 1 whatever the skew numbers */
        out->gen = 1;
        return true;
    case OP_COPY:
    case OP_TRANSPOSE: /* S' = -S is skew with the same norm; I' = I; |G'| = |G| */
        return an_mat(p, v->a, out);
    case OP_NEG:
        if (!an_mat(p, v->a, out))
            return false;
        out->alpha = -out->alpha;
        return true;
    case OP_ADD:
    case OP_SUB: {
        if (v->bcast == BCAST_SCALAR) { /* M + c adds c to every entry: |c 1 1'| = |c| sqrt(m n) */
            double c;
            if (!full_a(p, v) || !scalar_bound(p, v->b, &c) || !an_mat(p, v->a, out))
                return false;
            out->gen += c * sqrt((double)v->shape.dim[0] * v->shape.dim[1]);
            return true;
        }
        if (v->bcast != BCAST_NONE)
            return false;
        /* X - X' and X' - X are skew with |.| <= 2|X| */
        const Val *L = p->vals[v->a], *R = p->vals[v->b];
        if (v->op == OP_SUB && ((R->op == OP_TRANSPOSE && R->a == v->a) || (L->op == OP_TRANSPOSE && L->a == v->b))) {
            if (!an_mat(p, R->op == OP_TRANSPOSE && R->a == v->a ? v->a : v->b, &l))
                return false;
            out->skew = 2 * mat_norm(&l);
            take_unbounded(out, &l, &l);
            return true;
        }
        if (!an_mat(p, v->a, &l) || !an_mat(p, v->b, &r))
            return false;
        double sg = v->op == OP_SUB ? -1 : 1;
        out->skew = l.skew + r.skew;
        out->alpha = l.alpha + sg * r.alpha;
        out->gen = l.gen + r.gen;
        take_unbounded(out, &l, &r);
        return true;
    }
    case OP_MUL:
    case OP_DIV: {
        if (v->op == OP_MUL && v->bcast == BCAST_NONE) { /* Schur: |A .* B| <= |A| |B| */
            if (!an_mat(p, v->a, &l) || !an_mat(p, v->b, &r))
                return false;
            out->gen = mat_norm(&l) * mat_norm(&r);
            take_unbounded(out, &l, &r);
            return true;
        }
        if (v->bcast != BCAST_SCALAR || !full_a(p, v) || !is_const(p, v->b))
            return false;
        double c = p->vals[v->b]->num;
        if (v->op == OP_DIV) {
            if (c == 0)
                return false;
            c = 1 / c;
        }
        if (!an_mat(p, v->a, out))
            return false;
        out->skew *= fabs(c);
        out->gen *= fabs(c);
        out->alpha *= c;
        return true;
    }
    case OP_MATMUL:
        if (!an_mat(p, v->a, &l) || !an_mat(p, v->b, &r))
            return false;
        out->gen = mat_norm(&l) * mat_norm(&r); /* a product has no structure we use */
        take_unbounded(out, &l, &r);
        return true;
    default: /* lu[n]: its norm bound is on the stored numbers, not on L U */
        return false;
    }
}

/* The declared bound of a group-convolution kernel value, or INFINITY. */
static double conv_norm(const StepProgram *p, int k)
{
    const Val *v = p->vals[k];
    if (v->op != OP_PARAM)
        return INFINITY;
    const Param *pm = p->m->params[v->index];
    return pm->has_norm ? pm->norm_bound : INFINITY;
}

int an_conv_grid(const StepProgram *p, const Param *pm)
{
    int n = 0;
    for (int i = 0; i < p->nvals; i++) {
        const Val *v = p->vals[i];
        if ((v->op != OP_LIFT && v->op != OP_GCONV && v->op != OP_GCONV_T) || v->a < 0 || v->b < 0)
            continue;
        const Val *k = p->vals[v->a], *x = p->vals[v->b];
        if (k->op == OP_PARAM && k->index == pm->index && x->shape.rank >= 2 && x->shape.dim[x->shape.rank - 1] > n)
            n = x->shape.dim[x->shape.rank - 1];
    }
    if (n == 0 && p->m->in_shape.rank >= 2)
        n = p->m->in_shape.dim[p->m->in_shape.rank - 1];
    return n;
}

/* ---- Lipschitz bounds of values ----------------------------------------------------- */

struct LipCtx {
    Arena *a;
    const StepProgram *p;
    int seg;                /* layer context: the block segment; -1: model */
    double input_w;
    unsigned gen;           /* current generation: stamps below equal to it are valid */
    unsigned *leaf_stamp, *memo_stamp;
    double *leaf_w, *memo;
    int *leaf_group, *leaf_state;
    const Blame **why;      /* per value with an infinite bound (leaf or cached): the culprit */
    double *group_w;
    const Blame **group_why;
    int ngroups;
};

LipCtx *an_lip_new(Arena *a, const StepProgram *p)
{
    LipCtx *cx = ARENA_NEW(a, LipCtx);
    size_t n = (size_t)p->nvals + 1;
    cx->a = a;
    cx->p = p;
    cx->leaf_stamp = ARENA_ARRAY(a, unsigned, n);
    cx->memo_stamp = ARENA_ARRAY(a, unsigned, n);
    cx->leaf_w = ARENA_ARRAY(a, double, n);
    cx->memo = ARENA_ARRAY(a, double, n);
    cx->leaf_group = ARENA_ARRAY(a, int, n);
    cx->leaf_state = ARENA_ARRAY(a, int, n);
    cx->why = ARENA_ARRAY(a, const Blame *, n);
    cx->ngroups = p->nsegs + p->m->nstates + 2;
    cx->group_w = ARENA_ARRAY(a, double, (size_t)cx->ngroups);
    cx->group_why = ARENA_ARRAY(a, const Blame *, (size_t)cx->ngroups);
    return cx;
}

void an_lip_reset(LipCtx *cx, int seg, double input_w)
{
    cx->gen++;
    cx->seg = seg;
    cx->input_w = input_w;
    for (int g = 0; g < cx->ngroups; g++) {
        cx->group_w[g] = NAN;
        cx->group_why[g] = NULL;
    }
}

void an_lip_leaf(LipCtx *cx, int v, double w, int group, int state, const Blame *why)
{
    cx->leaf_stamp[v] = cx->gen;
    cx->leaf_w[v] = w;
    cx->leaf_group[v] = group >= 0 && group < cx->ngroups ? group : -1;
    cx->leaf_state[v] = state;
    cx->why[v] = why;
}

void an_lip_group(LipCtx *cx, int group, double w, const Blame *why)
{
    if (group >= 0 && group < cx->ngroups) {
        cx->group_w[group] = w;
        cx->group_why[group] = why;
    }
}

static double culprit(LipCtx *cx, const Blame **first, const char *what, const Param *pm, Span sp, const char *fix)
{
    if (!*first) {
        Blame *b = ARENA_NEW(cx->a, Blame);
        b->what = what;
        b->param = pm;
        b->span = sp;
        b->fix = fix;
        *first = b;
    }
    return INFINITY;
}

static double lip(LipCtx *cx, int id, const Blame **first);

/* the child's bound; the first infinite child names the culprit */
static double child(LipCtx *cx, int id, const Blame **first)
{
    const Blame *w = NULL;
    double r = lip(cx, id, &w);
    if ((isinf(r) || isnan(r)) && !*first)
        *first = w;
    return r;
}

static double times(double k, double l) { return k == 0 || l == 0 ? 0 : k * l; }

/* For join(s1, ..., sk) of leaves that are distinct states of one group: the group. */
static int join_group(const LipCtx *cx, const Val *v)
{
    int g = -1;
    for (int i = 0; i < v->nargs; i++) {
        int x = v->args[i];
        if (cx->leaf_stamp[x] != cx->gen || cx->leaf_group[x] < 0)
            return -1;
        for (int j = 0; j < i; j++)
            if (cx->leaf_state[v->args[j]] == cx->leaf_state[x])
                return -1;
        if (i > 0 && cx->leaf_group[x] != g)
            return -1;
        g = cx->leaf_group[x];
    }
    return g >= 0 && !isnan(cx->group_w[g]) ? g : -1;
}

static double lip_op(LipCtx *cx, const Val *v, const Blame **first)
{
    const StepProgram *p = cx->p;
    if (cx->seg >= 0 && v->seg != cx->seg) {
        if (v->op == OP_INPUT)
            return culprit(cx, first, "the block reads the model's input: a layer map is bounded as a function of the state only",
                           NULL, v->span, NULL);
        return culprit(cx, first, "the block reads a value computed before it: a layer map is bounded as a function of the state only",
                       NULL, v->span, NULL);
    }
    switch (v->op) {
    case OP_INPUT:
        if (isinf(cx->input_w))
            return culprit(cx, first, "the block reads the model's input: a layer map is bounded as a function of the state only",
                           NULL, v->span, NULL);
        return cx->input_w;
    case OP_STATE:
        return culprit(cx, first,
                       arena_printf(cx->a, "it reads '%s' as it was before an earlier update of the layer; each update is "
                                           "bounded as a map of the variables' current values",
                                    p->m->states[v->index]->name),
                       NULL, v->span, NULL);
    case OP_COPY:
    case OP_NEG:
    case OP_SLICE:
    case OP_PAD:
    case OP_TRANSPOSE:
    case OP_SOFTMAX: /* the softmax Jacobian diag(p) - p p' has norm <= 1 */
        return child(cx, v->a, first);
    case OP_ADD:
    case OP_SUB: {
        double la = child(cx, v->a, first), lb = child(cx, v->b, first);
        /* a broadcast operand counts once per copy: sqrt(copies) */
        const Val *A = p->vals[v->a], *B = p->vals[v->b];
        if (A->size < v->size && A->size > 0)
            la = times(la, sqrt((double)v->size / (double)A->size));
        if (B->size < v->size && B->size > 0)
            lb = times(lb, sqrt((double)v->size / (double)B->size));
        return la + lb;
    }
    case OP_MUL: {
        const Val *A = p->vals[v->a], *B = p->vals[v->b];
        if (A->vary == VARY_SAMPLE && B->vary == VARY_SAMPLE)
            return culprit(cx, first, "a product of two values that depend on the sample is not globally Lipschitz", NULL,
                           v->span, "multiply a sample value by parameters or constants only, e.g. A * u or c * u");
        const Val *k = A->vary == VARY_SAMPLE ? B : A, *x = k == A ? B : A;
        double kn, lx = child(cx, x->id, first);
        if (k->shape.rank == 0 && x->size == v->size) {
            if (!scalar_bound(p, k->id, &kn))
                return culprit(cx, first, "a factor whose size has no bound", NULL, k->span, NULL);
        } else if (x->size == v->size && k->op == OP_FILL && is_const(p, k->a)) {
            kn = fabs(p->vals[k->a]->num);
        } else {
            const Param *pm = k->op == OP_PARAM ? p->m->params[k->index] : NULL;
            return culprit(cx, first, "a factor whose size has no bound", pm, k->span, NULL);
        }
        return times(kn, lx);
    }
    case OP_DIV: {
        const Val *B = p->vals[v->b];
        if (B->vary == VARY_SAMPLE || !is_const(p, v->b) || B->num == 0)
            return culprit(cx, first, "a division by a value that is not a constant is not globally Lipschitz", NULL, v->span,
                           NULL);
        return child(cx, v->a, first) / fabs(B->num);
    }
    case OP_POW:
        if (v->num == 1)
            return child(cx, v->a, first);
        return culprit(cx, first, "a power is not globally Lipschitz", NULL, v->span, NULL);
    case OP_ACT: {
        ActFacts af;
        an_act(v, &af);
        if (isinf(af.lip))
            return culprit(cx, first, "exp is not globally Lipschitz", NULL, v->span,
                           "use a Lipschitz activation (tanh, sigmoid, softplus, relu), or keep exp out of the classifier's path");
        return times(af.lip, child(cx, v->a, first));
    }
    case OP_MATMUL: { /* the operand first: the culprit named is the first in program order */
        double lb = child(cx, v->b, first);
        MatInfo mi;
        const Val *k = p->vals[v->a];
        if (k->op == OP_LU)
            return culprit(cx, first, "is an lu[n] parameter: a norm bound would hold for its stored numbers, not for L U",
                           p->m->params[p->vals[k->a]->index], k->span, NULL);
        if (!an_mat(p, v->a, &mi))
            return culprit(cx, first, "a matrix expression the checker cannot bound", NULL, k->span, NULL);
        double kn = mat_norm(&mi);
        if (isinf(kn))
            return culprit(cx, first, "has no norm bound", mi.unbounded, mi.unbounded_span, NULL);
        return times(kn, lb);
    }
    case OP_FILL:
        return times(sqrt((double)v->size), child(cx, v->a, first));
    case OP_JOIN: {
        int g = join_group(cx, v);
        if (g >= 0) { /* distinct states: a coordinate projection of their joint vector */
            if (isinf(cx->group_w[g]) && !*first)
                *first = cx->group_why[g];
            return cx->group_w[g];
        }
        double s = 0;
        for (int i = 0; i < v->nargs; i++) {
            double l = child(cx, v->args[i], first);
            s += l * l;
        }
        return sqrt(s);
    }
    case OP_SUM:
        return times(sqrt((double)p->vals[v->a]->size), child(cx, v->a, first));
    case OP_MEAN:
        return child(cx, v->a, first) / sqrt((double)p->vals[v->a]->size);
    case OP_MEAN_SPACE: { /* a mean over n = H W positions: 1/sqrt(n) */
        const Shape s = p->vals[v->a]->shape;
        return child(cx, v->a, first) / sqrt((double)s.dim[s.rank - 1] * s.dim[s.rank - 2]);
    }
    case OP_GPOOL: /* a mean over the group axis */
        return child(cx, v->a, first) / sqrt((double)p->vals[v->a]->shape.dim[1]);
    case OP_POOL2: /* each output the mean of its own 4 inputs: norm 1/2 */
        return child(cx, v->a, first) / 2;
    case OP_MEAN_SET: { /* a mean over the n members */
        const Shape s = p->vals[v->a]->shape;
        return child(cx, v->a, first) / sqrt((double)s.dim[s.rank - 1]);
    }
    case OP_LIFT:
    case OP_GCONV:
    case OP_GCONV_T: { /* a kernel's bound is on the operator v -> conv(K, v) (DESIGN §8), and on its transpose */
        double lx = child(cx, v->b, first), kn = conv_norm(p, v->a);
        if (isinf(kn))
            return culprit(cx, first, "has no norm bound", p->m->params[p->vals[v->a]->index], p->vals[v->a]->span, NULL);
        return times(kn, lx);
    }
    case OP_CE:
    case OP_MSE:
    case OP_NLL:
        return culprit(cx, first, "a function the checker has no Lipschitz bound for", NULL, v->span, NULL);
    default:
        return culprit(cx, first, "an expression the checker cannot bound", NULL, v->span, NULL);
    }
}

static double lip(LipCtx *cx, int id, const Blame **first)
{
    const Val *v = cx->p->vals[id];
    if (v->vary != VARY_SAMPLE)
        return 0; /* constant with respect to the sample */
    if (cx->leaf_stamp[id] == cx->gen || cx->memo_stamp[id] == cx->gen) {
        double r = cx->leaf_stamp[id] == cx->gen ? cx->leaf_w[id] : cx->memo[id];
        if ((isinf(r) || isnan(r)) && !*first)
            *first = cx->why[id];
        return r;
    }
    const Blame *w = NULL;
    double r = lip_op(cx, v, &w);
    cx->memo_stamp[id] = cx->gen;
    cx->memo[id] = r;
    cx->why[id] = isinf(r) || isnan(r) ? w : NULL;
    if ((isinf(r) || isnan(r)) && !*first)
        *first = w;
    return r;
}

double an_lip(LipCtx *cx, int v, Blame *b)
{
    const Blame *w = NULL;
    double r = lip(cx, v, &w);
    if ((isinf(r) || isnan(r)) && b && !b->what && w)
        *b = *w;
    return isnan(r) ? INFINITY : r;
}

/* ---- vector fields ---------------------------------------------------------------- */

static Span equation_span(const Block *b, int k)
{
    int n = 0;
    for (int i = 0; i < b->nitems; i++)
        if (b->items[i]->kind == D_EQUATION && n++ == k)
            return b->items[i]->span;
    return b->span;
}

/* v = c * core: strips constant scalar factors and negations. */
static int strip_scalar(const StepProgram *p, int id, double *c)
{
    *c = 1;
    for (int guard = 0; guard < 64; guard++) {
        const Val *v = p->vals[id];
        if (v->op == OP_NEG) {
            *c = -*c;
            id = v->a;
        } else if ((v->op == OP_MUL || v->op == OP_DIV) && v->bcast == BCAST_SCALAR && full_a(p, v) && is_const(p, v->b) &&
                   p->vals[v->b]->num != 0) {
            *c = v->op == OP_MUL ? *c * p->vals[v->b]->num : *c / p->vals[v->b]->num;
            id = v->a;
        } else {
            break;
        }
    }
    return id;
}

/* v = [c *] act(inner) or [c *] inner: peels a constant factor and one activation. */
static int peel(const StepProgram *p, int id, double *c, ActFacts *af)
{
    int e = strip_scalar(p, id, c);
    if (an_act(p->vals[e], af))
        return p->vals[e]->a;
    *af = (ActFacts){1, 1, 1, true}; /* no activation: the identity */
    return e;
}

/* v with its bias terms removed: v = core +/- P or P + core, P parameter
 * code (a vector, a scalar or a channel bias: constant, it leaves the
 * Jacobian alone), repeatedly; -1 when both sides depend on the sample. */
static int strip_bias(const StepProgram *p, int id)
{
    for (int guard = 0; guard < 64; guard++) {
        const Val *v = p->vals[id];
        if (v->op != OP_ADD && v->op != OP_SUB)
            return id;
        if (p->vals[v->b]->vary != VARY_SAMPLE)
            id = v->a;
        else if (v->op == OP_ADD && p->vals[v->a]->vary != VARY_SAMPLE)
            id = v->b;
        else
            return -1;
    }
    return -1;
}

/* v = M u [+/- P] with M a parameter-code matrix. */
static bool match_affine(const StepProgram *p, int id, int u, int *M)
{
    int c = strip_bias(p, id);
    const Val *v = c >= 0 ? p->vals[c] : NULL;
    if (!v || v->op != OP_MATMUL || v->b != u || p->vals[v->a]->vary == VARY_SAMPLE || p->vals[v->a]->shape.rank != 2)
        return false;
    *M = v->a;
    return true;
}

/* v = gconv(k, u) [+/- P] with the kernel value k. */
static bool match_conv(const StepProgram *p, int id, int u, int k)
{
    int c = strip_bias(p, id);
    return c >= 0 && p->vals[c]->op == OP_GCONV && p->vals[c]->a == k && p->vals[c]->b == u;
}

/* M2 is the transpose of M, up to sign *sign. */
static bool transposed(const StepProgram *p, int M, int M2, double *sign)
{
    *sign = 1;
    if (p->vals[M2]->op == OP_NEG) {
        *sign = -1;
        M2 = p->vals[M2]->a;
    }
    return (p->vals[M2]->op == OP_TRANSPOSE && p->vals[M2]->a == M) || (p->vals[M]->op == OP_TRANSPOSE && p->vals[M]->a == M2);
}

void an_field(const StepProgram *p, const Seg *s, FieldInfo *fi)
{
    const Block *b = s->blk;
    memset(fi, 0, sizeof *fi);
    fi->cls = FIELD_GENERIC;
    fi->span = b->span;
    fi->why = "it is not sigma(M u + b), -M' sigma(M u + b) or a Hamiltonian pair";
    if (b->kind != BLOCK_FLOW || !s->field)
        return;
    int nv = b->nvars;
    if (nv == 1) {
        int u = s->field_at[0], M = -1;
        fi->span = equation_span(b, 0);
        double c;
        ActFacts af;
        int inner = peel(p, s->field[0], &c, &af);
        if (match_affine(p, inner, u, &M) && an_mat(p, M, &fi->mat)) {
            fi->cls = FIELD_AFFINE;
            fi->act = af;
            fi->mat.skew *= fabs(c);
            fi->mat.gen *= fabs(c);
            fi->mat.alpha *= c;
            fi->scale = c;
            return;
        }
        /* -c M2 sigma(M u + b) with M2 = M', the constant anywhere in the product */
        double c_out, c_mat;
        const Val *e = p->vals[strip_scalar(p, s->field[0], &c_out)];
        if (e->op == OP_GCONV_T) { /* -c gconv'(k, sigma(gconv(k, u) + b)) */
            int in2 = peel(p, e->b, &c, &af);
            if (match_conv(p, in2, u, e->a)) {
                fi->mat = (MatInfo){0};
                fi->conv = p->m->params[p->vals[e->a]->index];
                fi->mat.gen = conv_norm(p, e->a);
                if (isinf(fi->mat.gen)) {
                    fi->mat.unbounded = p->m->params[p->vals[e->a]->index];
                    fi->mat.unbounded_span = fi->mat.unbounded->span;
                }
                double coef = c_out * c;
                if (coef < 0 && af.monotone && af.dmin >= 0) {
                    fi->cls = FIELD_GRADIENT;
                    fi->act = af;
                    fi->scale = -coef;
                    return;
                }
                fi->why = coef >= 0 ? "gconv'(k, sigma(gconv(k, u) + b)) with a positive sign is a gradient ascent"
                                    : "the gradient form needs a monotone activation with sigma' >= 0";
                return;
            }
        }
        if (e->op == OP_MATMUL && p->vals[e->a]->vary != VARY_SAMPLE) {
            int M2 = strip_scalar(p, e->a, &c_mat);
            int in2 = peel(p, e->b, &c, &af);
            double tsign;
            if (match_affine(p, in2, u, &M) && transposed(p, M, M2, &tsign) && an_mat(p, M, &fi->mat)) {
                double coef = c_out * c_mat * tsign * c;
                if (coef < 0 && af.monotone && af.dmin >= 0) {
                    fi->cls = FIELD_GRADIENT;
                    fi->act = af;
                    fi->scale = -coef;
                    return;
                }
                fi->why = coef >= 0 ? "M' sigma(M u + b) with a positive sign is a gradient ascent: its Jacobian is positive semidefinite"
                                    : "the gradient form needs a monotone activation with sigma' >= 0";
            }
        }
        return;
    }
    if (nv == 2) {
        double c1, c2, tsign;
        ActFacts a1, a2;
        int M1 = -1, M2 = -1;
        int i1 = peel(p, s->field[0], &c1, &a1), i2 = peel(p, s->field[1], &c2, &a2);
        fi->span = span_join(equation_span(b, 0), equation_span(b, 1));
        /* dy/dt reads z (variable 1), dz/dt reads y (variable 0) */
        if (match_affine(p, i1, s->field_at[0 * 2 + 1], &M1) && match_affine(p, i2, s->field_at[1 * 2 + 0], &M2) &&
            transposed(p, M1, M2, &tsign) && an_mat(p, M1, &fi->mat)) {
            if (c1 * c2 * tsign < 0 && a1.dmin >= 0 && a2.dmin >= 0) {
                fi->cls = FIELD_HAMILTONIAN;
                fi->act = a1;
                fi->act2 = a2;
                fi->scale = fabs(c1 * c2);
                return;
            }
            fi->why = "the pair dy/dt = f(K z), dz/dt = g(K' y) needs opposite signs (and monotone f, g) to be Hamiltonian";
            return;
        }
        fi->why = "a two-variable field is recognised as dy/dt = f(K z + b), dz/dt = -g(K' y + c)";
    }
}

/* ---- non-expansive layers -------------------------------------------------------------- */

/* K = [[A, 0], [b', 0]] of an explicit tableau. */
static void ssp_matrix(const Scheme *sc, double K[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1])
{
    int s = sc->stages;
    memset(K, 0, sizeof(double) * (SCHEME_MAX_STAGES + 1) * (SCHEME_MAX_STAGES + 1));
    for (int i = 0; i < s; i++)
        for (int j = 0; j < s; j++)
            K[i][j] = sc->a[i][j];
    for (int j = 0; j < s; j++)
        K[s][j] = sc->b[j];
}

/* The radius of absolute monotonicity (Kraaijevanger 1991): the largest r
 * with (I + r K)^{-1} 1 >= 0 and r K (I + r K)^{-1} >= 0 entrywise, where
 * K = [[A, 0], [b', 0]]. The set of such r is an interval [0, R]; bisection. */
static bool abs_monotone(const Scheme *sc, double r)
{
    int s = sc->stages, n = s + 1;
    double K[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1];
    ssp_matrix(sc, K);
    /* X = (I + r K)^{-1}: I + r K is unit lower triangular for explicit schemes */
    double X[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1] = {{0}};
    for (int col = 0; col < n; col++)
        for (int i = 0; i < n; i++) {
            double v = i == col ? 1 : 0;
            for (int k = 0; k < i; k++)
                v -= r * K[i][k] * X[k][col];
            X[i][col] = v;
        }
    const double tol = -1e-13 * (1 + r);
    for (int i = 0; i < n; i++) {
        double rowsum = 0;
        for (int j = 0; j < n; j++)
            rowsum += X[i][j];
        if (rowsum < tol)
            return false;
        for (int j = 0; j < n; j++) {
            double q = 0;
            for (int k = 0; k < n; k++)
                q += r * K[i][k] * X[k][j];
            if (q < tol)
                return false;
        }
    }
    return true;
}

double scheme_ssp(const Scheme *sc)
{
    if (sc->kind != SCHEME_RK)
        return 0;
    /* R > 0 iff K >= 0 and K^2 has no nonzero where K has a zero
     * (Kraaijevanger 1991, Thm. 4.2); tested exactly, not by a tolerance */
    int s = sc->stages;
    double K[SCHEME_MAX_STAGES + 1][SCHEME_MAX_STAGES + 1];
    ssp_matrix(sc, K);
    for (int i = 0; i <= s; i++)
        for (int j = 0; j <= s; j++) {
            if (K[i][j] < 0)
                return 0;
            double k2 = 0;
            for (int k = 0; k <= s; k++)
                k2 += K[i][k] * K[k][j];
            if (k2 != 0 && K[i][j] == 0)
                return 0;
        }
    double lo = 0, hi = 1;
    while (abs_monotone(sc, hi) && hi < 1e6)
        hi *= 2;
    for (int i = 0; i < 60; i++) {
        double m = 0.5 * (lo + hi);
        if (abs_monotone(sc, m))
            lo = m;
        else
            hi = m;
    }
    return lo;
}

bool an_nonexpansive(Arena *a, const StepProgram *p, const Seg *s, const char **reason, Span *at, const char **note,
                     const char **fix)
{
    const Block *b = s->blk;
    *reason = NULL;
    *fix = NULL;
    *note = "in this flow";
    *at = b->span;
    if (b->kind != BLOCK_FLOW) {
        *reason = "a repeat block's layers are not proved non-expansive";
        return false;
    }
    FieldInfo fi;
    an_field(p, s, &fi);
    *at = fi.span;
    if (fi.cls != FIELD_GRADIENT) {
        const char *is = fi.cls == FIELD_AFFINE        ? "sigma(M u + b)"
                         : fi.cls == FIELD_HAMILTONIAN ? "a Hamiltonian pair (volume-preserving, not contractive)"
                                                       : NULL;
        *reason = is ? arena_printf(a, "the field is %s, not a gradient flow -K' sigma(K u + b)", is)
                     : arena_printf(a, "the field is not a gradient flow -K' sigma(K u + b) (%s)", fi.why);
        *fix = "write the field as du/dt = -K' * relu(K * u + b) (or tanh, sigmoid, softplus)";
        return false;
    }
    double n = mat_norm(&fi.mat);
    if (isinf(n)) {
        *reason = fi.conv ? "the field's convolution kernel has no norm bound, so no step is non-expansive for every parameter value"
                          : "the field's matrix has no norm bound, so no step is non-expansive for every parameter value";
        if (fi.mat.unbounded) {
            *at = fi.mat.unbounded->span;
            *note = arena_printf(a, "'%s' is declared without a norm bound", fi.mat.unbounded->name);
            *fix = arena_printf(a, "bound it: `param %s : ... where norm(%s) <= c;`", fi.mat.unbounded->name, fi.mat.unbounded->name);
        }
        return false;
    }
    const Scheme *sc = b->scheme;
    double r = scheme_ssp(sc);
    double L = fi.scale * fi.act.dmax * n * n;
    double h = block_step(b);
    if (r <= 0) {
        *reason = arena_printf(a, "%s has SSP coefficient 0: it is not a convex combination of Euler steps (Kraaijevanger "
                                  "1991), so Euler's non-expansiveness does not carry over",
                               sc->name);
        *at = b->scheme_span;
        *note = "the scheme";
        *fix = "use euler or heun (SSP coefficient 1)";
        return false;
    }
    double hsafe = L > 0 ? 2 * r / L : INFINITY;
    /* K, or the map gconv(k, .) whose norm a kernel's bound is on */
    const char *K = fi.conv ? arena_printf(a, "gconv(%s, .)", fi.conv->name) : "K";
    if (h > hsafe) {
        *reason = arena_printf(a, "the step h = %.6g exceeds 2 r / (c d |%s|^2) = 2 * %.6g / %.6g = %.6g", h, K, r, L, hsafe);
        *fix = arena_printf(a, "use at least %.0f layers (h <= %.6g), or a norm bound %s <= %.6g", ceil((b->t1 - b->t0) / hsafe),
                            hsafe, fi.conv ? arena_printf(a, "norm(%s)", fi.conv->name) : "|K|",
                            sqrt(2 * r / (fi.scale * fi.act.dmax * h)));
        return false;
    }
    *reason = arena_printf(a, "%s step of the gradient flow: h = %.6g <= 2 r / (c d |%s|^2) = %.6g (r = %.6g, |%s| <= %.6g)",
                           sc->name, h, K, hsafe, r, K, n);
    return true;
}

/* ---- layer bounds -------------------------------------------------------------------- */

/* new = old + x, x + old or old - x: x, else -1. */
static int added_term(const StepProgram *p, const Update *u)
{
    const Val *n = p->vals[u->value];
    if (n->op == OP_COPY && n->a >= 0)
        n = p->vals[n->a];
    if ((n->op != OP_ADD && n->op != OP_SUB) || n->bcast != BCAST_NONE)
        return -1;
    if (n->a == u->old)
        return n->b;
    if (n->op == OP_ADD && n->b == u->old)
        return n->a;
    return -1;
}

/* Leaves for the update group starting at k: the variables' current values. */
static void layer_leaves(LipCtx *cx, const StepProgram *p, int seg, int k)
{
    const Seg *s = &p->segs[seg];
    int *cur = ARENA_ARRAY(cx->a, int, s->nvars + 1);
    step_current(p, s, k, cur);
    an_lip_reset(cx, seg, INFINITY);
    an_lip_group(cx, 0, 1, NULL);
    for (int j = 0; j < s->nvars; j++)
        an_lip_leaf(cx, cur[j], 1, 0, s->vars[j], NULL);
}

static int group_end(const Seg *s, int k)
{
    int e = k;
    while (e < s->nupd && s->upd[e].group == s->upd[k].group)
        e++;
    return e;
}

double an_layer_lipschitz(LipCtx *cx, const StepProgram *p, int seg, Blame *b)
{
    const Seg *s = &p->segs[seg];
    int visible = 0;
    for (int j = 0; j < s->nvars; j++)
        visible += !p->m->states[s->vars[j]]->hidden;
    double beta = 1;
    for (int k = 0; k < s->nupd;) {
        int end = group_end(s, k), written = 0;
        layer_leaves(cx, p, seg, k);
        bool shears = true;
        double sx2 = 0, se2 = 0;
        for (int j = k; j < end; j++) {
            const Update *u = &s->upd[j];
            if (p->m->states[u->state]->hidden)
                continue; /* the log-determinant: not part of the map of the states */
            written++;
            int x = added_term(p, u);
            if (x >= 0) {
                double lx = an_lip(cx, x, b);
                sx2 += lx * lx;
            } else {
                shears = false;
            }
            double le = an_lip(cx, u->value, b);
            se2 += le * le;
        }
        if (written) {
            /* (others, e(all)) is sqrt(1 + |e|^2)-Lipschitz, e alone |e|; v + x(all) is 1 + |x| */
            double g = written == visible ? sqrt(se2) : sqrt(1 + se2);
            if (shears)
                g = fmin(g, 1 + sqrt(sx2));
            beta *= g;
        }
        k = end;
    }
    return beta;
}

double an_residual_q(LipCtx *cx, const StepProgram *p, int seg, int k, int x, Blame *b)
{
    const Seg *s = &p->segs[seg];
    int start = k;
    while (start > 0 && s->upd[start - 1].group == s->upd[k].group)
        start--;
    int end = group_end(s, start);
    layer_leaves(cx, p, seg, start);
    if (end - start == 1)
        return an_lip(cx, x, b);
    /* simultaneous updates invert together: the joint map's bound */
    double q2 = 0;
    for (int j = start; j < end; j++) {
        if (p->m->states[s->upd[j].state]->hidden)
            continue;
        int xj = added_term(p, &s->upd[j]);
        double l = xj >= 0 ? an_lip(cx, xj, b) : INFINITY;
        q2 += l * l;
    }
    return sqrt(q2);
}
