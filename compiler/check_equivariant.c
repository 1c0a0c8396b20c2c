/* check_equivariant.c - `require equivariant(G)` and `invariant(G)`
 * (DESIGN §4, §8), proved.
 *
 * Every step-program value gets a field type: how the declared group acts
 * on it (trivial; spatial [c, n, n] and regular [c, |G|, n, n] or [c, |G|]
 * for C4 and D4; the sequence [c, n] of Z(n); the set [c, n] of S(n)). The
 * input has the group's type; parameter code is trivial. The typing rules
 * of §8, applied to the values in the order the step program computes
 * them: lift and group convolutions (and their transposes) map to regular
 * fields; elementwise maps, sums, scalar multiples, channel-mixing products
 * K * v, and pad/join/slices along the channel axis preserve a type; a bias
 * must be constant on every orbit (a scalar or a channel bias R[c]); group
 * pooling and spatial and set means give invariants. A flow's or repeat
 * block's layer is its updates, made of those operations (the schemes'
 * stages are sums and scalar multiples), so an equivariant field gives an
 * equivariant layer (B-series methods are affine-equivariant: McLachlan,
 * Modin, Munthe-Kaas & Verdier 2016); the state must keep its type through
 * the layer. Anything else breaks equivariance, and the first value in
 * program order whose own operation breaks it is reported with its fix. */
#include <math.h>
#include <string.h>

#include "check.h"

/* T_UNIFORM: one number in every entry (a state set to 0): fixed by every
 * action, so it joins any field type. */
typedef enum { T_TRIVIAL, T_UNIFORM, T_SPATIAL, T_REGULAR, T_REGULAR_VEC, T_SEQ, T_SET, T_BROKEN } FType;

static const char *const ftype_names[] = {"trivial", "uniform", "spatial", "regular", "regular (pooled over space)",
                                          "a sequence", "a set", "not equivariant"};

enum { /* the rules a proof used, for the certificate */
    R_POINTWISE = 1, R_BIAS = 2, R_MIX = 4, R_LIFT = 8, R_GCONV = 16, R_CHANNELS = 32, R_POOL = 64, R_LAYER = 128,
    R_POOL2 = 256,
};

typedef struct Eq {
    Arena *a;
    const StepProgram *p;
    const Group *g;
    FType *t;           /* per value; T_BROKEN also when an operand is */
    bool *done;
    int cause;          /* the first value whose own operation broke it, or -1 */
    const char *why, *fix;
    unsigned rules;
} Eq;

/* The first axis the group acts on for a value of type t and rank r: the
 * axes before it are channels. */
static int acted_from(FType t, int rank)
{
    switch (t) {
    case T_SEQ: case T_SET: return rank - 1;
    default: return 1;
    }
}

static bool is_field(FType t) { return t != T_TRIVIAL && t != T_UNIFORM && t != T_BROKEN; }

/* The type of a value that is of type a and of type b (a state entering a
 * layer as a and leaving it as b). */
static FType join(FType a, FType b)
{
    if (a == b || b == T_UNIFORM)
        return a;
    if (a == T_UNIFORM)
        return b;
    return T_BROKEN;
}

static FType type_of(Eq *q, int v);

static FType broke(Eq *q, const Val *v, const char *why, const char *fix)
{
    if (q->cause < 0 || v->id < q->cause) {
        q->cause = v->id;
        q->why = why;
        q->fix = fix;
    }
    return T_BROKEN;
}

/* An elementwise operation's type from its operands'. */
static FType elementwise_type(Eq *q, const Val *v)
{
    const Val *A = q->p->vals[v->a], *B = v->b >= 0 ? q->p->vals[v->b] : NULL;
    FType ta = type_of(q, v->a), tb = B ? type_of(q, v->b) : T_UNIFORM;
    if (ta == T_BROKEN || tb == T_BROKEN)
        return T_BROKEN;
    if (!is_field(ta) && !is_field(tb))
        return ta == T_UNIFORM && tb == T_UNIFORM && v->op != OP_FILL ? T_UNIFORM : T_TRIVIAL;
    if (is_field(ta) && is_field(tb)) {
        if (ta != tb || !shape_eq(A->shape, B->shape))
            return broke(q, v, "it combines values on which the group acts differently", NULL);
        q->rules |= R_POINTWISE;
        return ta;
    }
    /* a field and a value that is not: that one must be constant on every orbit */
    const Val *triv = is_field(ta) ? B : A;
    FType ft = is_field(ta) ? ta : tb, tt = is_field(ta) ? tb : ta;
    if (!triv || triv->shape.rank == 0 || tt == T_UNIFORM) {
        q->rules |= R_POINTWISE;
        return ft;
    }
    if (v->bcast == BCAST_CHANNEL && triv->shape.rank == 1 && acted_from(ft, v->shape.rank) >= 1) {
        q->rules |= R_BIAS;
        return ft;
    }
    return broke(q, v, "a bias (or factor) that is not constant on the group's orbits: the group moves the entries it is added to",
                 "use a channel bias R[c] (one number per channel) or a scalar");
}

/* Ops along the leading (channel) axis only: slices, pad, join. */
static bool channel_slice(const Val *v, const Val *a, FType t)
{
    if (v->shape.rank != a->shape.rank || acted_from(t, a->shape.rank) < 1)
        return false; /* an index that drops an axis moves the group's axes */
    for (int ax = 1; ax < a->shape.rank; ax++)
        if (v->lo[ax] != 0 || v->hi[ax] != a->shape.dim[ax])
            return false;
    return true;
}

static FType op_type(Eq *q, const Val *v)
{
    const StepProgram *p = q->p;
    if (v->vary != VARY_SAMPLE || v->op == OP_LABEL)
        return v->op == OP_CONST || (v->op == OP_FILL && p->vals[v->a]->op == OP_CONST) ? T_UNIFORM : T_TRIVIAL;
    switch (v->op) {
    case OP_INPUT:
        switch (q->g->kind) {
        case GROUP_C4: case GROUP_D4: return T_SPATIAL;
        case GROUP_Z: return T_SEQ;
        case GROUP_S: return T_SET;
        }
        return T_BROKEN;
    case OP_STATE: /* set when its segment is typed (model snapshots, block inputs) */
        return q->done[v->id] ? q->t[v->id] : broke(q, v, "a state the checker could not follow", NULL);
    case OP_STORE: case OP_COPY:
        return type_of(q, v->a);
    case OP_FILL: { /* one scalar in every entry */
        FType t = type_of(q, v->a);
        return t == T_TRIVIAL || t == T_UNIFORM ? T_UNIFORM : t;
    }
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_NEG: case OP_POW: case OP_ACT:
        return elementwise_type(q, v);
    case OP_SOFTMAX: { /* over every entry: the group permutes entries */
        FType t = type_of(q, v->a);
        if (is_field(t))
            q->rules |= R_POINTWISE;
        return t;
    }
    case OP_SUM: case OP_MEAN: {
        FType t = type_of(q, v->a);
        if (t == T_BROKEN)
            return t;
        if (is_field(t))
            q->rules |= R_POOL;
        return T_TRIVIAL;
    }
    case OP_MATMUL: {
        FType t = type_of(q, v->b);
        if (!is_field(t))
            return t;
        const Val *b = p->vals[v->b];
        if (acted_from(t, b->shape.rank) < 1)
            return broke(q, v, "a matrix product over the axis the group acts on mixes what the group moves",
                         q->g->kind == GROUP_S ? "pool first (mean_set), or multiply channels only: K * v with v : R[c, n]"
                                               : "pool first (gpool, mean_space), or multiply channels only");
        q->rules |= R_MIX;
        return t;
    }
    case OP_SLICE: case OP_PAD: {
        FType t = type_of(q, v->a);
        if (!is_field(t))
            return t;
        const Val *a = p->vals[v->a];
        bool ok = v->op == OP_PAD ? acted_from(t, a->shape.rank) >= 1 : channel_slice(v, a, t);
        if (!ok && v->op == OP_SLICE && v->shape.rank < a->shape.rank && acted_from(t, a->shape.rank) >= 1)
            return broke(q, v, "an index that drops the channel axis (the field types keep it: R[c, n], R[c, n, n], ...)",
                         "keep the axis with a range, x[0:1], or mix the channels with a product K * x");
        if (!ok)
            return broke(q, v, v->op == OP_PAD ? "padding along the axis the group acts on"
                                               : "a slice along a grid, group or set axis",
                         "slice and pad along the channel axis only (a centred crop can be equivariant, but it is not proved)");
        q->rules |= R_CHANNELS;
        return t;
    }
    case OP_JOIN: {
        FType t = T_TRIVIAL;
        bool any = false;
        for (int i = 0; i < v->nargs; i++) {
            FType ti = type_of(q, v->args[i]);
            if (ti == T_BROKEN)
                return T_BROKEN;
            if (i > 0 && ti != t)
                return broke(q, v, "it joins values on which the group acts differently",
                             "join fields of one type along the channel axis");
            t = ti;
            any |= is_field(ti);
        }
        if (any && acted_from(t, p->vals[v->args[0]]->shape.rank) < 1)
            return broke(q, v, "a join along the axis the group acts on", "join along the channel axis");
        if (any)
            q->rules |= R_CHANNELS;
        return t;
    }
    case OP_LIFT: { /* a uniform value is fixed by every action, so its image is too */
        FType t = type_of(q, v->b);
        if (t != T_SPATIAL && t != T_UNIFORM)
            return t == T_BROKEN ? T_BROKEN : broke(q, v, "lift needs a spatial field R[c, n, n]", NULL);
        q->rules |= R_LIFT;
        return T_REGULAR;
    }
    case OP_GCONV: case OP_GCONV_T: {
        FType t = type_of(q, v->b), want = q->g->kind == GROUP_Z ? T_SEQ : T_REGULAR;
        if (t == T_BROKEN)
            return t;
        if (t == T_UNIFORM) /* a state set to 0: fixed by every action, so the convolution of it is too */
            t = want;
        if (t != want)
            return broke(q, v, q->g->kind == GROUP_Z ? "a Z(n) convolution needs the sequence R[c, n]"
                                                     : "a group convolution needs a regular field R[c, |G|, n, n]",
                         q->g->kind == GROUP_Z ? NULL : "lift the input first");
        q->rules |= R_GCONV;
        return t;
    }
    case OP_GPOOL: {
        FType t = type_of(q, v->a);
        if (t == T_BROKEN)
            return t;
        q->rules |= R_POOL;
        return t == T_REGULAR ? T_SPATIAL : T_TRIVIAL; /* regular vectors and Z(n) sequences pool to invariants */
    }
    case OP_MEAN_SPACE: {
        FType t = type_of(q, v->a);
        if (t == T_BROKEN)
            return t;
        q->rules |= R_POOL;
        return t == T_REGULAR ? T_REGULAR_VEC : T_TRIVIAL;
    }
    case OP_POOL2: { /* blocks map to blocks on an even grid (the resolver requires one) */
        FType t = type_of(q, v->a);
        if (t == T_SPATIAL || t == T_REGULAR) {
            q->rules |= R_POOL2;
            return t;
        }
        return is_field(t) ? broke(q, v, "pool2 pools grid axes, which this group does not act on", NULL) : t;
    }
    case OP_MEAN_SET: {
        FType t = type_of(q, v->a);
        if (t == T_BROKEN)
            return t;
        q->rules |= R_POOL;
        return T_TRIVIAL;
    }
    case OP_CE: case OP_MSE: case OP_NLL:
        return T_TRIVIAL; /* the loss: not part of the map */
    default: {
        bool fields = false;
        if (v->a >= 0)
            fields |= is_field(type_of(q, v->a));
        if (v->b >= 0)
            fields |= is_field(type_of(q, v->b));
        return fields ? broke(q, v, arena_printf(q->a, "%s is not known to commute with the group", op_names[v->op]), NULL)
                      : T_TRIVIAL;
    }
    }
}

static FType type_of(Eq *q, int v)
{
    if (v < 0)
        return T_TRIVIAL;
    if (!q->done[v]) {
        q->t[v] = op_type(q, q->p->vals[v]);
        q->done[v] = true;
    }
    return q->t[v];
}

static void set_type(Eq *q, int v, FType t)
{
    q->t[v] = t;
    q->done[v] = true;
}

/* A layer: its variables enter with the types they have, leave with the
 * types its updates give them, and enter the next layer with both (a state
 * set to 0 becomes the field its updates make it); retyped until the types
 * entering are the types leaving. */
static void type_block(Eq *q, const Seg *sg, FType *st)
{
    const StepProgram *p = q->p;
    const Model *m = p->m;
    FType *in = ARENA_ARRAY(q->a, FType, sg->nvars + 1);
    for (int k = 0; k < sg->nvars; k++)
        in[k] = m->states[sg->vars[k]]->hidden ? T_TRIVIAL : st[sg->vars[k]];
    int cause = q->cause, first_cause = -1;
    const char *why = q->why, *fix = q->fix, *first_why = NULL, *first_fix = NULL;
    bool stable = false;
    for (int iter = 0; iter < 8 && !stable; iter++) {
        q->cause = cause, q->why = why, q->fix = fix; /* only the last round's findings count (but see below) */
        for (int i = 0; i < sg->ncode; i++)
            q->done[sg->code[i]] = false;
        for (int k = 0; k < sg->nvars; k++)
            set_type(q, sg->inputs[k], in[k]);
        for (int i = 0; i < sg->ncode; i++)
            type_of(q, sg->code[i]);
        stable = true;
        for (int k = 0; k < sg->nvars; k++) {
            if (m->states[sg->vars[k]]->hidden)
                continue;
            FType j = join(in[k], type_of(q, sg->finals[k]));
            stable &= j == in[k];
            if (j == T_BROKEN && in[k] != T_BROKEN && first_cause < 0 && q->cause != cause)
                first_cause = q->cause, first_why = q->why, first_fix = q->fix;
            in[k] = j;
        }
    }
    /* a state broken in one round enters the next broken and breaks nothing of its own there: keep what broke it */
    if (q->cause == cause && first_cause >= 0)
        q->cause = first_cause, q->why = first_why, q->fix = first_fix;
    for (int k = 0; k < sg->nupd; k++) {
        const Update *u = &sg->upd[k];
        FType t = type_of(q, u->value), was = type_of(q, u->old);
        if (!m->states[u->state]->hidden && t != T_BROKEN && join(was, t) != was)
            broke(q, p->vals[u->value], arena_printf(q->a, "the update makes '%s' %s, but it enters the layer %s",
                                                     m->states[u->state]->name, ftype_names[t], ftype_names[was]),
                  "keep each state's type through the layer");
    }
    for (int k = 0; k < sg->nvars; k++)
        st[sg->vars[k]] = stable ? type_of(q, sg->finals[k]) : T_BROKEN;
    q->rules |= R_LAYER;
}

/* Types every value in program order; returns the output's type. */
static FType infer(Eq *q)
{
    const StepProgram *p = q->p;
    const Model *m = p->m;
    FType *st = ARENA_ARRAY(q->a, FType, m->nstates + 1); /* each state's current type */
    for (int s = 0; s < p->nsegs; s++) {
        const Seg *sg = &p->segs[s];
        if (sg->kind == SEG_CODE) {
            for (int i = 0; i < sg->ncode; i++) {
                const Val *v = p->vals[sg->code[i]];
                if (v->op == OP_STATE)
                    set_type(q, v->id, st[v->index]);
                FType t = type_of(q, v->id);
                if (v->op == OP_STORE)
                    st[v->index] = t;
            }
            continue;
        }
        type_block(q, sg, st);
    }
    return type_of(q, p->out);
}

static const char *rules_text(Arena *a, unsigned r)
{
    static const struct { unsigned bit; const char *text; } names[] = {
        {R_LIFT, "lift maps the input to a regular field"},
        {R_GCONV, "group convolutions (and their transposes) map regular fields to regular fields"},
        {R_POINTWISE, "elementwise maps, sums and scalar multiples preserve a type"},
        {R_BIAS, "channel biases are constant on orbits"},
        {R_MIX, "channel-mixing products K * v act alike on every member"},
        {R_CHANNELS, "pad, join and slices along the channel axis"},
        {R_LAYER, "each layer's updates are built of these, so the flow is equivariant for any step"},
        {R_POOL2, "pool2 maps the aligned 2x2 blocks of an even grid to blocks, so it preserves a type"},
        {R_POOL, "pooling (gpool, mean_space, mean_set, sum) gives invariants"},
    };
    char buf[1024] = "";
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((r & names[i].bit) && n < sizeof buf)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? "; " : "", names[i].text);
    return arena_strdup(a, buf);
}

void check_equivariant(Arena *a, Certificate *c)
{
    const StepProgram *p = c->p;
    const Model *m = p->m;
    Verdict *ve = &c->v[REQ_EQUIVARIANT], *vi = &c->v[REQ_INVARIANT];
    const Group *g = m->ngroups ? m->groups[0] : NULL;
    for (int i = 0; i < m->nreqs; i++)
        if ((m->reqs[i].kind == REQ_EQUIVARIANT || m->reqs[i].kind == REQ_INVARIANT) && m->reqs[i].group)
            g = m->reqs[i].group;
    if (!g)
        return;
    ve->theorem = vi->theorem = "field types (DESIGN §8): each operation maps fields to fields by a rule of the "
                                "group action, and equivariant maps compose";
    ve->reference = vi->reference = "Cohen & Welling 2016 (group CNNs); Zaheer et al. 2017 (Deep Sets); McLachlan, "
                                    "Modin, Munthe-Kaas & Verdier 2016 (B-series methods are affine-equivariant)";
    Eq q = {a, p, g, ARENA_ARRAY(a, FType, p->nvals + 1), ARENA_ARRAY(a, bool, p->nvals + 1), -1, NULL, NULL, 0};
    FType out = infer(&q);
    if (out == T_UNIFORM)
        out = T_TRIVIAL;
    if (out == T_BROKEN) {
        const Val *v = p->vals[q.cause >= 0 ? q.cause : p->out];
        const char *why = arena_printf(a, "the output is not %s-equivariant: %s", g->name, q.why ? q.why : "an operation breaks it");
        for (int k = 0; k < 2; k++) {
            Verdict *vv = k ? vi : ve;
            verdict_set(vv, false, LEVEL_REFUSED, NAN, why);
            verdict_note(a, vv, v->span, "the first operation whose result is not equivariant");
            if (q.fix)
                verdict_note(a, vv, NO_SPAN, "%s", q.fix);
        }
        return;
    }
    const char *rules = rules_text(a, q.rules);
    verdict_set(ve, true, LEVEL_PROVED, NAN,
                arena_printf(a, "the output is %s under %s: %s", ftype_names[out], g->name, rules));
    if (out == T_TRIVIAL) {
        verdict_set(vi, true, LEVEL_PROVED, NAN, arena_printf(a, "the output is invariant under %s: %s", g->name, rules));
        return;
    }
    verdict_set(vi, false, LEVEL_REFUSED, NAN,
                arena_printf(a, "the output is %s under %s, not invariant", ftype_names[out], g->name));
    verdict_note(a, vi, p->vals[p->out]->span, "the output");
    verdict_note(a, vi, NO_SPAN, "%s", q.g->kind == GROUP_S ? "pool over the set first (mean_set)"
                                       : q.g->kind == GROUP_Z ? "pool over the sequence first (gpool)"
                                                               : "pool first: gpool, then mean_space");
}
