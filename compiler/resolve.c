/* resolve.c - names, shapes, parameter structure and field types.
 * See resolve.h for what the phase produces. Errors poison the expression
 * they are found in, so one mistake gives one message, not a cascade. */
#include "resolve.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const req_names[REQ_COUNT] = {
    "stable", "lipschitz", "nonexpansive", "invertible", "equivariant", "invariant",
};

/* One table: names, arities and the activation facts the checkers read
 * (range of sigma', monotonicity, global Lipschitz continuity). */
const BuiltinInfo builtin_info[FN_COUNT] = {
    [FN_TANH] = {"tanh", 1, 1, true, 0, 1, true, true},
    [FN_RELU] = {"relu", 1, 1, true, 0, 1, true, true},
    [FN_SIGMOID] = {"sigmoid", 1, 1, true, 0, 0.25, true, true},
    [FN_SOFTPLUS] = {"softplus", 1, 1, true, 0, 1, true, true},
    [FN_IDENTITY] = {"identity", 1, 1, true, 1, 1, true, true},
    [FN_EXP] = {"exp", 1, 1, true, 0, INFINITY, true, false},
    [FN_LEAKY_RELU] = {"leaky_relu", 1, 2, true, 0.01, 1, true, true},
    [FN_SOFTMAX] = {"softmax", 1, 1, false, 0, 0, false, true},
    [FN_CROSS_ENTROPY] = {"cross_entropy", 2, 2, false, 0, 0, false, false},
    [FN_MSE] = {"mse", 2, 2, false, 0, 0, false, false},
    [FN_NLL_GAUSSIAN] = {"nll_gaussian", 1, 1, false, 0, 0, false, false},
    [FN_SMOOTH] = {"smooth", 1, 16, false, 0, 0, false, false},
    [FN_PAD] = {"pad", 2, 2, false, 0, 0, false, true},
    [FN_JOIN] = {"join", 2, 16, false, 0, 0, false, true},
    [FN_SUM] = {"sum", 1, 1, false, 0, 0, false, true},
    [FN_MEAN] = {"mean", 1, 1, false, 0, 0, false, true},
    [FN_LIFT] = {"lift", 2, 2, false, 0, 0, false, true},
    [FN_GCONV] = {"gconv", 2, 2, false, 0, 0, false, true},
    [FN_GCONV_T] = {"gconv'", 2, 2, false, 0, 0, false, true},
    [FN_GPOOL] = {"gpool", 1, 1, false, 0, 0, false, true},
    [FN_MEAN_SPACE] = {"mean_space", 1, 1, false, 0, 0, false, true},
    [FN_MEAN_SET] = {"mean_set", 1, 1, false, 0, 0, false, true},
    [FN_POOL2] = {"pool2", 1, 1, false, 0, 0, false, true},
};

static const char *const type_names[] = {"R", "class", "skew", "orth", "lu", "lift", "gconv"};

/* Def expansions nested at once, and the nodes one expression may grow to
 * by expanding defs (u * u nested k times doubles k times). */
enum { MAX_EXPANSION = 64, MAX_EXPANDED = 100000, MAX_TENSOR = 100000000 };

/* ---- symbol tables: open addressing, so a 10,000-line model stays linear -- */

typedef struct Scope {
    struct Scope *parent;
    Sym **slots;
    int cap, len;
} Scope;

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static Sym *scope_get(const Scope *sc, const char *name)
{
    if (!sc->cap)
        return NULL;
    for (uint32_t i = hash_str(name) & (uint32_t)(sc->cap - 1);; i = (i + 1) & (uint32_t)(sc->cap - 1)) {
        Sym *s = sc->slots[i];
        if (!s)
            return NULL;
        if (strcmp(s->name, name) == 0)
            return s;
    }
}

static void scope_put(Arena *a, Scope *sc, Sym *sym)
{
    if (2 * (sc->len + 1) > sc->cap) {
        int cap = sc->cap ? sc->cap * 2 : 32;
        Sym **slots = ARENA_ARRAY(a, Sym *, cap);
        for (int i = 0; i < sc->cap; i++) {
            Sym *s = sc->slots[i];
            if (!s)
                continue;
            uint32_t j = hash_str(s->name) & (uint32_t)(cap - 1);
            while (slots[j])
                j = (j + 1) & (uint32_t)(cap - 1);
            slots[j] = s;
        }
        sc->slots = slots;
        sc->cap = cap;
    }
    uint32_t j = hash_str(sym->name) & (uint32_t)(sc->cap - 1);
    while (sc->slots[j] && strcmp(sc->slots[j]->name, sym->name) != 0)
        j = (j + 1) & (uint32_t)(sc->cap - 1);
    if (!sc->slots[j])
        sc->len++;
    sc->slots[j] = sym;
}

static Sym *lookup(const Scope *sc, const char *name)
{
    for (; sc; sc = sc->parent) {
        Sym *s = scope_get(sc, name);
        if (s)
            return s;
    }
    return NULL;
}

/* ---- the resolver ----------------------------------------------------------- */

typedef struct R {
    Arena *a;
    Diags *d;
    Scope globals;
    Scope *scope;
    Model *m;
    int order;          /* position of the model declaration being resolved */
    Block *block;       /* the block being resolved, or NULL */
    bool in_loss, in_smooth;
    bool uses_nll;      /* the model's loss calls nll_gaussian */
    int nexp;           /* def expansions in progress */
    int depth;          /* rx recursion: bounded, since defs deepen trees */
    size_t expanded;    /* nodes made by def expansion in this expression */
    bool too_deep;      /* RESOLVE_MAX_DEPTH was reported for this expression */
    Coarsening coarse;  /* spdlc build --levels, --grid-levels; {1, 1} for the model itself */
    int grid_n;         /* the input's grid side at the finest level, once it is known (0: no grid) */
    struct { const char *name; Span at; } exp[MAX_EXPANSION];
} R;

static Type poison_type(void)
{
    Type t = {0};
    t.shape.rank = -1;
    return t;
}
static bool is_poison(Type t) { return t.shape.rank < 0; }

static Type scalar_type(Vary v)
{
    Type t = {0};
    t.vary = v;
    return t;
}

size_t shape_size(Shape s)
{
    size_t n = 1;
    for (int i = 0; i < s.rank; i++)
        n *= (size_t)s.dim[i];
    return n;
}

bool shape_eq(Shape a, Shape b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

const char *type_str(Arena *a, Type t)
{
    if (t.identity)
        return "I";
    if (t.is_class)
        return arena_printf(a, "class[%d]", t.nclass);
    return shape_str(a, t.shape);
}

/* Makes room for one more element in an arena array of n elements. The
 * capacity is implicit: 8, then the next power of two, so appending n
 * elements copies O(n), not O(n^2), and the arrays keep their plain
 * pointer-and-count form for the phases that read them. */
static void *grow(Arena *a, void *items, int n, size_t elem)
{
    if (n > 0 && (n < 8 || (n & (n - 1)) != 0))
        return items;
    size_t cap = n < 8 ? 8 : 2 * (size_t)n;
    void *p = arena_alloc(a, elem * cap);
    if (n)
        memcpy(p, items, elem * (size_t)n);
    return p;
}

static Shape shape1(int n) { return (Shape){1, {n}}; }
static Shape shape2(int m, int n) { return (Shape){2, {m, n}}; }

/* Adds "in the expansion of f" notes for errors inside def bodies. */
static Diag *error(R *r, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static Diag *error(R *r, Span sp, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* A def argument used twice in the body is resolved twice: report an
     * error in it once. NULL is a valid parent for diag_note. */
    for (const Diag *o = r->d->errors < DIAG_MAX_ERRORS ? r->d->head : NULL; o; o = o->next)
        if (o->sev == SEV_ERROR && o->span.file == sp.file && o->span.off == sp.off && o->span.len == sp.len &&
            strcmp(o->msg, buf) == 0)
            return NULL;
    Diag *g = diag_error(r->d, sp, "%s", buf);
    for (int i = r->nexp - 1; i >= 0; i--) {
        if (r->nexp - 1 - i == 4 && i > 0) { /* the innermost four are enough */
            diag_note(r->d, g, r->exp[0].at, "and %d more enclosing expansions, the outermost here", i);
            break;
        }
        diag_note(r->d, g, r->exp[i].at, "in the expansion of '%s' here", r->exp[i].name);
    }
    return g;
}

static Type fail(R *r, Expr *e, Span sp, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static Type fail(R *r, Expr *e, Span sp, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    error(r, sp, "%s", buf);
    e->poison = true;
    e->type = poison_type();
    return e->type;
}

/* ---- did you mean ------------------------------------------------------------- */

static int edit_distance(const char *s, const char *t, int limit)
{
    int n = (int)strlen(s), m = (int)strlen(t);
    if (abs(n - m) > limit || n > 64 || m > 64)
        return limit + 1;
    int prev[65], cur[65];
    for (int j = 0; j <= m; j++)
        prev[j] = j;
    for (int i = 1; i <= n; i++) {
        cur[0] = i;
        for (int j = 1; j <= m; j++) {
            int c = prev[j - 1] + (s[i - 1] != t[j - 1]);
            if (prev[j] + 1 < c)
                c = prev[j] + 1;
            if (cur[j - 1] + 1 < c)
                c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(int) * (size_t)(m + 1));
    }
    return prev[m];
}

typedef struct Suggest {
    const char *best;
    int dist, limit;
    bool off;           /* the error is past the cap: nobody reads the note */
} Suggest;

static void consider(Suggest *s, const char *name, const char *cand)
{
    if (s->off || !cand || strcmp(name, cand) == 0)
        return;
    /* A one-letter name is only a typo of the same letter in the other case. */
    if (!name[1] && !(cand[0] && !cand[1] && (cand[0] ^ 0x20) == name[0]))
        return;
    int d = edit_distance(name, cand, s->limit);
    if (d <= s->limit && (d < s->dist || (d == s->dist && strcmp(cand, s->best) < 0))) {
        s->best = cand;
        s->dist = d;
    }
}

/* Suggestions for the error g. Scanning every name in scope costs O(names)
 * per error, so it is skipped for errors past the cap, which are never
 * printed (990 unknown names among 20,000 lets took 49 s). */
static Suggest suggest_init(R *r, const Diag *g, const char *name)
{
    int n = (int)strlen(name);
    return (Suggest){NULL, 1000, n <= 3 ? 1 : n <= 6 ? 2 : 3, !g || g == r->d->sink};
}

static void consider_scopes(Suggest *s, const char *name, const Scope *sc, bool values_only)
{
    if (s->off)
        return;
    for (; sc; sc = sc->parent)
        for (int i = 0; i < sc->cap; i++) {
            Sym *y = sc->slots[i];
            if (!y)
                continue;
            if (values_only && (y->kind == S_SCHEME || y->kind == S_DEF || y->kind == S_MODEL))
                continue;
            consider(s, name, y->name);
        }
}

static void note_suggestion(R *r, Diag *g, Suggest s)
{
    if (s.best)
        diag_note(r->d, g, NO_SPAN, "did you mean '%s'?", s.best);
}

/* ---- constants -------------------------------------------------------------- */

static Type rx(R *r, Expr *e);

/* Resolves e and requires a compile-time number. */
static bool const_value(R *r, Expr *e, const char *what, double *out)
{
    Type t = rx(r, e);
    if (is_poison(t))
        return false;
    if (!e->has_value || t.shape.rank != 0) {
        error(r, e->span, "%s must be a number known at compile time", what);
        return false;
    }
    *out = e->num;
    return true;
}

static bool const_int(R *r, Expr *e, const char *what, int lo, int hi, int *out)
{
    double v;
    if (!const_value(r, e, what, &v))
        return false;
    if (v != floor(v) || v < lo || v > hi) {
        Diag *g = error(r, e->span, "%s must be an integer in [%d, %d], not %.17g", what, lo, hi, v);
        (void)g;
        return false;
    }
    *out = (int)v;
    return true;
}

/* ---- expressions ------------------------------------------------------------- */

static Vary vmax(Vary a, Vary b) { return a > b ? a : b; }

static Type combine(Type l, Type r, Shape s)
{
    Type t = {0};
    t.shape = s;
    t.vary = vmax(l.vary, r.vary);
    t.per_layer = l.per_layer || r.per_layer;
    return t;
}

/* Gives the polymorphic identity inside e the size n. */
static void fix_identity(Expr *e, int n)
{
    if (!e || !e->type.identity)
        return;
    e->type.identity = false;
    e->type.shape = shape2(n, n);
    fix_identity(e->lhs, n);
    fix_identity(e->rhs, n);
}

static bool is_square(Shape s) { return s.rank == 2 && s.dim[0] == s.dim[1]; }

/* Field types (DESIGN §4): how the model's group acts on a value. Only the
 * combinations spelled out here keep equivariance; the first operation that
 * breaks it is remembered for the equivariance checker's message. */
static FieldKind field_join(R *r, Type *out, Type a, Type b, Span at)
{
    (void)r;
    FieldKind fa = a.field, fb = b.field;
    if (fa == FIELD_BROKEN || fb == FIELD_BROKEN) {
        out->field_cause = fa == FIELD_BROKEN ? a.field_cause : b.field_cause;
        return FIELD_BROKEN;
    }
    if (fa == FIELD_NONE || fa == FIELD_TRIVIAL)
        return fb == FIELD_NONE ? fa : fb;
    if (fb == FIELD_NONE || fb == FIELD_TRIVIAL || fa == fb)
        return fa;
    out->field_cause = at;
    return FIELD_BROKEN;
}

static void set_broken(Type *t, Span at)
{
    if (t->field != FIELD_BROKEN) {
        t->field = FIELD_BROKEN;
        t->field_cause = at;
    }
}

static Type binary(R *r, Expr *e)
{
    Type L = rx(r, e->lhs), Rt = rx(r, e->rhs);
    if (is_poison(L) || is_poison(Rt)) {
        e->poison = true;
        return e->type = poison_type();
    }
    /* the operand types as text, only for messages (formatting them for
     * every operator cost a tenth of the resolver's time) */
#define ls type_str(r->a, L)
#define rs type_str(r->a, Rt)
    Shape sl = L.shape, sr = Rt.shape;
    bool lsc = sl.rank == 0 && !L.identity, rsc = sr.rank == 0 && !Rt.identity;
    Type t;
    if (L.is_class || Rt.is_class)
        return fail(r, e, e->op_span, "a class label is not a number; use it in cross_entropy or mse");
    if (e->lhs->has_value && e->rhs->has_value && lsc && rsc) {
        double x = e->lhs->num, y = e->rhs->num, v = 0;
        switch (e->kind) {
        case E_ADD: v = x + y; break;
        case E_SUB: v = x - y; break;
        case E_MUL: case E_EMUL: v = x * y; break;
        case E_DIV:
            if (y == 0)
                return fail(r, e, e->op_span, "division by zero");
            v = x / y;
            break;
        case E_POW: v = pow(x, y); break;
        default: break;
        }
        if (!isfinite(v))
            return fail(r, e, e->op_span, "constant overflows a double");
        t = scalar_type(VARY_CONST);
        e->has_value = true;
        e->num = v;
        return e->type = t;
    }
    switch (e->kind) {
    case E_ADD:
    case E_SUB: {
        if (L.identity && Rt.identity) {
            t = combine(L, Rt, sl);
            t.identity = true;
        } else if (lsc || rsc) {
            t = combine(L, Rt, lsc ? sr : sl);
            t.identity = lsc ? Rt.identity : L.identity;
        } else if (L.identity || Rt.identity) {
            Shape s = L.identity ? sr : sl;
            if (!is_square(s))
                return fail(r, e, e->op_span, e->kind == E_ADD ? "cannot add %s and %s: I is square"
                                                               : "cannot subtract %s from %s: I is square",
                            e->kind == E_ADD ? ls : rs, e->kind == E_ADD ? rs : ls);
            fix_identity(L.identity ? e->lhs : e->rhs, s.dim[0]);
            t = combine(L, Rt, s);
        } else if (shape_eq(sl, sr)) {
            t = combine(L, Rt, sl);
        } else if (sl.rank >= 2 && sr.rank == 1 && sr.dim[0] == sl.dim[0]) {
            t = combine(L, Rt, sl); /* a per-channel bias: along the leading axis */
        } else if (sr.rank >= 2 && sl.rank == 1 && sl.dim[0] == sr.dim[0]) {
            t = combine(L, Rt, sr);
        } else {
            Type p = fail(r, e, e->op_span, e->kind == E_ADD ? "cannot add %s and %s" : "cannot subtract %s from %s",
                          e->kind == E_ADD ? ls : rs, e->kind == E_ADD ? rs : ls);
            return p;
        }
        t.field = field_join(r, &t, L, Rt, e->op_span);
        /* A bias must be constant on group orbits: a full-shape parameter
         * added to a spatial field is not. */
        if ((L.field == FIELD_SPATIAL || L.field == FIELD_REGULAR) && Rt.vary != VARY_SAMPLE && shape_eq(sl, sr))
            set_broken(&t, e->op_span);
        if ((Rt.field == FIELD_SPATIAL || Rt.field == FIELD_REGULAR) && L.vary != VARY_SAMPLE && shape_eq(sl, sr))
            set_broken(&t, e->op_span);
        return e->type = t;
    }
    case E_MUL: {
        if (lsc || rsc) {
            t = combine(L, Rt, lsc ? sr : sl);
            t.identity = lsc ? Rt.identity : L.identity;
            t.field = field_join(r, &t, L, Rt, e->op_span);
            return e->type = t;
        }
        if (L.identity && Rt.identity) {
            t = combine(L, Rt, sl);
            t.identity = true;
            return e->type = t;
        }
        if (L.identity) {
            if (sr.rank != 1 && sr.rank != 2)
                return fail(r, e, e->op_span, "cannot multiply I by %s", rs);
            fix_identity(e->lhs, sr.dim[0]);
            t = combine(L, Rt, sr);
            t.field = Rt.field;
            return e->type = t;
        }
        if (Rt.identity) {
            if (sl.rank != 2)
                return fail(r, e, e->op_span, "cannot multiply %s by I", ls);
            fix_identity(e->rhs, sl.dim[1]);
            t = combine(L, Rt, sl);
            return e->type = t;
        }
        if (sl.rank == 2 && sr.rank >= 1 && sl.dim[1] == sr.dim[0]) {
            /* R[m, c] times R[c, ...]: the matrix product over the leading axis
             * (channel mixing of a field, DESIGN §8), every other index a column */
            if (L.vary == VARY_SAMPLE) {
                Diag *g = error(r, e->op_span, "cannot multiply by a matrix that depends on the sample (%s)", ls);
                diag_note(r->d, g, NO_SPAN, "the left side of a product is a parameter or a constant: K * v mixes the rows (channels) of v; a sample-dependent matrix times another is not in the language");
                if (L.field != FIELD_NONE && L.field != FIELD_TRIVIAL)
                    diag_note(r->d, g, NO_SPAN, "mixing the columns of a field would also mix what the group moves (the members of a set, the samples of a cycle): pool first (mean_set, gpool), or mix channels only");
                e->poison = true;
                return e->type = poison_type();
            }
            Shape prod = sr;
            prod.dim[0] = sl.dim[0];
            t = combine(L, Rt, prod);
            if (Rt.field == FIELD_TRIVIAL || Rt.field == FIELD_NONE)
                t.field = Rt.field;
            else
                set_broken(&t, e->op_span);
            return e->type = t;
        }
        if (shape_eq(sl, sr) && sl.rank != 2) { /* vectors, and tensors of rank 3 or more */
            t = combine(L, Rt, sl);
            t.field = field_join(r, &t, L, Rt, e->op_span);
            return e->type = t;
        }
        Diag *g = error(r, e->op_span, "cannot multiply %s by %s", ls, rs);
        if (sl.rank == 2 && sr.rank >= 1)
            diag_note(r->d, g, NO_SPAN, "a matrix R[m,n] multiplies a vector R[n], a matrix R[n,p] or a field R[n,...] along its first axis; here n = %d but the right side has %d rows",
                      sl.dim[1], sr.dim[0]);
        else
            diag_note(r->d, g, NO_SPAN, "'*' is scalar-tensor, matrix-vector, matrix-matrix, or elementwise for equal vectors; '.*' is elementwise for any equal shapes");
        if (shape_eq(sl, sr))
            diag_note(r->d, g, NO_SPAN, "for the elementwise product of two matrices write '.*'");
        e->poison = true;
        return e->type = poison_type();
    }
    case E_EMUL: {
        if (L.identity && Rt.identity)
            return fail(r, e, e->op_span, "cannot tell the size of I here");
        if (L.identity || Rt.identity) {
            Shape s = L.identity ? sr : sl;
            if (!is_square(s))
                return fail(r, e, e->op_span, "cannot multiply %s by %s elementwise: I is square", ls, rs);
            fix_identity(L.identity ? e->lhs : e->rhs, s.dim[0]);
            t = combine(L, Rt, s);
            return e->type = t;
        }
        if (!shape_eq(sl, sr)) {
            Diag *g = error(r, e->op_span, "cannot multiply %s by %s elementwise", ls, rs);
            diag_note(r->d, g, NO_SPAN, "'.*' multiplies tensors of equal shape; use '*' for a scalar multiple or a matrix product");
            e->poison = true;
            return e->type = poison_type();
        }
        t = combine(L, Rt, sl);
        t.field = field_join(r, &t, L, Rt, e->op_span);
        return e->type = t;
    }
    case E_DIV:
        if (rsc) {
            if (e->rhs->has_value && e->rhs->num == 0)
                return fail(r, e, e->op_span, "division by zero");
            t = combine(L, Rt, sl);
            t.identity = L.identity; /* I / 2 is the matrix I / 2 */
            t.field = L.field;
            return e->type = t;
        }
        if (shape_eq(sl, sr) && !L.identity && !Rt.identity) {
            t = combine(L, Rt, sl);
            t.field = field_join(r, &t, L, Rt, e->op_span);
            return e->type = t;
        }
        return fail(r, e, e->op_span, "cannot divide %s by %s", ls, rs);
    case E_POW:
        if (!rsc || !e->rhs->has_value)
            return fail(r, e, e->op_span, "the exponent must be a number known at compile time");
        if (L.identity)
            return fail(r, e, e->op_span, "cannot raise I to a power");
        t = combine(L, Rt, sl);
        t.field = L.field;
        return e->type = t;
    default:
        return fail(r, e, e->op_span, "internal: bad binary operator");
    }
#undef ls
#undef rs
}

static Sym *name_sym(R *r, Expr *e, const char *what)
{
    if (e->kind != E_NAME) {
        error(r, e->span, "%s must be a name", what);
        return NULL;
    }
    Sym *s = lookup(r->scope, e->name.s);
    if (!s) {
        Diag *g = error(r, e->span, "unknown name '%s'", e->name.s);
        Suggest sg = suggest_init(r, g, e->name.s);
        consider_scopes(&sg, e->name.s, r->scope, true);
        note_suggestion(r, g, sg);
    }
    return s;
}

static Param *kernel_arg(R *r, Expr *e, ParamKind kind, const char *fn)
{
    if (e->kind != E_NAME) {
        error(r, e->span, "the kernel must be a name");
        return NULL;
    }
    /* Resolving the name reports an unknown name, a use before the
     * declaration (the Param does not exist yet then) or inside it; a
     * poisoned result was reported, here or at a failed declaration. */
    if (is_poison(rx(r, e)))
        return NULL;
    Sym *s = e->sym;
    if (s->kind != S_PARAM || !s->param || s->param->kind != kind) {
        Diag *g = error(r, e->span, "%s needs a %s parameter, but '%s' is not one", fn,
                        kind == PK_LIFT ? "lift[G, cin -> cout, k]" : "gconv[G, cin -> cout, k]", s->name);
        diag_note(r->d, g, s->span, "'%s' is declared here", s->name);
        return NULL;
    }
    return s->param;
}

static Group *model_group(R *r)
{
    return r->m && r->m->ngroups > 0 ? r->m->groups[0] : NULL;
}

static Type call(R *r, Expr *e);

static Type name_ref(R *r, Expr *e)
{
    Sym *s = lookup(r->scope, e->name.s);
    if (!s) {
        if (strcmp(e->name.s, "I") == 0) {
            Type t = scalar_type(VARY_CONST);
            t.identity = true;
            t.shape = shape2(0, 0);
            return e->type = t;
        }
        Diag *g = error(r, e->span, "unknown name '%s'", e->name.s);
        Suggest sg = suggest_init(r, g, e->name.s);
        consider_scopes(&sg, e->name.s, r->scope, true);
        if (strlen(e->name.s) > 1)
            consider(&sg, e->name.s, "I");
        note_suggestion(r, g, sg);
        e->poison = true;
        return e->type = poison_type();
    }
    e->sym = s;
    s->used = true;
    if (s->visit == 1 && s->kind != S_DEF) {
        Diag *g = error(r, e->span, "'%s' is used in its own declaration", s->name);
        diag_note(r->d, g, s->span, "'%s' is declared here", s->name);
        e->poison = true;
        return e->type = poison_type();
    }
    /* Declarations of the model are visible from their position on. */
    if (s->order > r->order && r->m) {
        Diag *g = error(r, e->span, "'%s' is used before its declaration", s->name);
        diag_note(r->d, g, s->span, "'%s' is declared here", s->name);
        diag_note(r->d, g, NO_SPAN, "move the declaration of '%s' above this line", s->name);
        e->poison = true;
        return e->type = poison_type();
    }
    switch (s->kind) {
    case S_CONST:
        e->has_value = true;
        e->num = s->value;
        return e->type = scalar_type(VARY_CONST);
    case S_INPUT: case S_TARGET: case S_STATE: case S_LABEL: case S_OUTPUT: case S_LET:
        if (is_poison(s->type)) {
            e->poison = true;
            return e->type = poison_type();
        }
        return e->type = s->type;
    case S_PARAM: {
        Param *p = s->param;
        p->used = true;
        if (p->per_layer && !r->in_smooth) {
            if (!r->block) {
                Diag *g = error(r, e->span, "'%s' is a per-layer parameter, used outside a flow or repeat block", s->name);
                diag_note(r->d, g, p->decl->per_layer_span, "declared `per layer` here");
                diag_note(r->d, g, NO_SPAN, "use it inside a block, or drop `per layer` to share one copy");
                e->poison = true;
                return e->type = poison_type();
            }
            if (p->block && p->block != r->block) {
                Diag *g = error(r, e->span, "per-layer parameter '%s' is used in two blocks", s->name);
                diag_note(r->d, g, p->block->span, "it is first used in this block");
                diag_note(r->d, g, NO_SPAN, "declare one parameter per block");
                e->poison = true;
                return e->type = poison_type();
            }
            p->block = r->block;
            p->layers = r->block->layers;
        }
        return e->type = s->type;
    }
    case S_GROUP:
        return fail(r, e, e->span, "'%s' is a group, not a value", s->name);
    case S_SCHEME:
        return fail(r, e, e->span, "'%s' is a scheme, not a value", s->name);
    case S_DEF:
        return fail(r, e, e->span, "'%s' is a function; call it with arguments", s->name);
    case S_MODEL:
        return fail(r, e, e->span, "'%s' is a model, not a value", s->name);
    }
    return fail(r, e, e->span, "internal: unknown symbol kind");
}

static Type rx_node(R *r, Expr *e);

/* The parser bounds every tree it builds (PARSE_MAX_DEPTH); expanding defs
 * inside defs can stack those trees, so the recursion is bounded here too. */
enum { RESOLVE_MAX_DEPTH = 1500 };

static Type rx(R *r, Expr *e)
{
    if (e->poison)
        return e->type = poison_type();
    if (r->depth == 0) {
        r->expanded = 0;
        r->too_deep = false;
    }
    if (r->depth >= RESOLVE_MAX_DEPTH) {
        if (r->too_deep) { /* reported once for this expression */
            e->poison = true;
            return e->type = poison_type();
        }
        r->too_deep = true;
        return fail(r, e, e->span, "expression more than %d levels deep after expanding defs", RESOLVE_MAX_DEPTH);
    }
    r->depth++;
    Type t = rx_node(r, e);
    r->depth--;
    /* Declared tensors are bounded; products and joins of them must be too. */
    if (!is_poison(t) && !t.identity) {
        double n = 1;
        for (int i = 0; i < t.shape.rank; i++)
            n *= t.shape.dim[i];
        if (n > MAX_TENSOR)
            return fail(r, e, e->op_span, "this value would have %.0f elements; the limit is %d", n, MAX_TENSOR);
    }
    return t;
}

static Type rx_node(R *r, Expr *e)
{
    switch (e->kind) {
    case E_NUM:
        e->has_value = true;
        return e->type = scalar_type(VARY_CONST);
    case E_NAME:
        return name_ref(r, e);
    case E_NEG: {
        Type t = rx(r, e->lhs);
        if (is_poison(t)) {
            e->poison = true;
            return e->type = t;
        }
        if (t.is_class)
            return fail(r, e, e->op_span, "a class label is not a number");
        if (e->lhs->has_value) {
            e->has_value = true;
            e->num = -e->lhs->num;
        }
        return e->type = t;
    }
    case E_ADD: case E_SUB: case E_MUL: case E_EMUL: case E_DIV: case E_POW:
        return binary(r, e);
    case E_TRANSPOSE: {
        Type t = rx(r, e->lhs);
        if (is_poison(t)) {
            e->poison = true;
            return e->type = t;
        }
        if (t.identity)
            return e->type = t;
        if (t.shape.rank != 2) {
            Diag *g = error(r, e->op_span, "cannot transpose %s: only matrices have a transpose", type_str(r->a, t));
            (void)g;
            e->poison = true;
            return e->type = poison_type();
        }
        if (t.vary == VARY_SAMPLE)
            return fail(r, e, e->op_span, "cannot transpose a matrix that depends on the sample");
        t.shape = shape2(t.shape.dim[1], t.shape.dim[0]);
        return e->type = t;
    }
    case E_CALL:
        return call(r, e);
    case E_INDEX: {
        Type t = rx(r, e->lhs);
        if (is_poison(t)) {
            e->poison = true;
            return e->type = t;
        }
        if (t.identity || t.is_class || t.shape.rank == 0)
            return fail(r, e, e->op_span, "cannot index %s", type_str(r->a, t));
        if (e->args.len > t.shape.rank)
            return fail(r, e, e->span, "%d indices for %s", e->args.len, type_str(r->a, t));
        Shape s = {0};
        int axis = 0;
        for (Expr *x = e->args.head; x; x = x->next, axis++) {
            int n = t.shape.dim[axis], lo, hi;
            if (x->kind == E_RANGE) {
                if (!const_int(r, x->lhs, "a slice bound", 0, n, &lo) || !const_int(r, x->rhs, "a slice bound", 0, n, &hi)) {
                    e->poison = true;
                    return e->type = poison_type();
                }
                if (hi <= lo)
                    return fail(r, e, x->span, "empty slice %d:%d", lo, hi);
                x->type = scalar_type(VARY_CONST);
                s.dim[s.rank++] = hi - lo;
            } else {
                if (!const_int(r, x, "an index", 0, n - 1, &lo)) {
                    e->poison = true;
                    return e->type = poison_type();
                }
            }
        }
        for (; axis < t.shape.rank; axis++)
            s.dim[s.rank++] = t.shape.dim[axis];
        Type out = t;
        out.shape = s;
        if (t.field == FIELD_SPATIAL || t.field == FIELD_REGULAR)
            set_broken(&out, e->op_span);
        return e->type = out;
    }
    case E_RANGE:
        return fail(r, e, e->op_span, "a range a:b is only allowed inside an index");
    case E_ARRAY:
        return fail(r, e, e->span, "an array literal is only allowed in a scheme tableau");
    }
    return fail(r, e, e->span, "internal: unknown expression");
}

static int def_param(const Item *def, const Expr *e)
{
    if (def && e->kind == E_NAME)
        for (int i = 0; i < def->nparams; i++)
            if (strcmp(def->params[i].s, e->name.s) == 0)
                return i;
    return -1;
}

/* Nodes of e with def's parameters replaced by trees of argsize[i] nodes;
 * saturates above cap. */
static size_t tree_size(const Expr *e, const Item *def, const size_t *argsize, size_t cap)
{
    if (!e)
        return 0;
    int i = def_param(def, e);
    if (i >= 0)
        return argsize[i];
    size_t n = 1 + tree_size(e->lhs, def, argsize, cap);
    if (n <= cap)
        n += tree_size(e->rhs, def, argsize, cap);
    for (const Expr *x = e->args.head; x && n <= cap; x = x->next)
        n += tree_size(x, def, argsize, cap);
    return n > cap ? cap + 1 : n;
}

/* A deep copy of e with def's parameters replaced by deep copies of the
 * arguments: an expansion is a tree, never a graph with shared nodes. */
static Expr *clone_expr(Arena *a, const Expr *e, const Item *def, Expr **args)
{
    if (!e)
        return NULL;
    int i = def_param(def, e);
    if (i >= 0)
        return clone_expr(a, args[i], NULL, NULL);
    Expr *c = ARENA_NEW(a, Expr);
    *c = *e;
    c->next = NULL;
    c->lhs = clone_expr(a, e->lhs, def, args);
    c->rhs = clone_expr(a, e->rhs, def, args);
    c->args = (ExprList){0};
    for (const Expr *x = e->args.head; x; x = x->next)
        c->args = ast_exprs_add(c->args, clone_expr(a, x, def, args));
    return c;
}

static Type expand_def(R *r, Expr *e, Sym *s)
{
    Item *def = s->item;
    if (e->args.len != def->nparams) {
        Diag *g = error(r, e->span, "'%s' takes %d argument%s, but %d %s given", s->name, def->nparams,
                        def->nparams == 1 ? "" : "s", e->args.len, e->args.len == 1 ? "was" : "were");
        diag_note(r->d, g, def->span, "'%s' is defined here", s->name);
        e->poison = true;
        return e->type = poison_type();
    }
    if (s->bad) { /* recursive: reported at the def */
        e->poison = true;
        return e->type = poison_type();
    }
    if (r->nexp == MAX_EXPANSION) {
        Diag *g = error(r, e->span, "defs expanded inside each other more than %d deep", MAX_EXPANSION);
        diag_note(r->d, g, NO_SPAN, "name intermediate results with `let`");
        e->poison = true;
        return e->type = poison_type();
    }
    if (r->expanded > MAX_EXPANDED) { /* reported once for this expression */
        e->poison = true;
        return e->type = poison_type();
    }
    Expr *args[16];
    size_t argsize[16];
    int i = 0;
    for (Expr *x = e->args.head; x; x = x->next, i++) {
        args[i] = x;
        argsize[i] = tree_size(x, NULL, NULL, MAX_EXPANDED);
    }
    r->expanded += tree_size(def->value, def, argsize, MAX_EXPANDED);
    if (r->expanded > MAX_EXPANDED) {
        Diag *g = error(r, e->span, "expanding '%s' here makes the expression larger than %d nodes", s->name,
                        MAX_EXPANDED);
        diag_note(r->d, g, NO_SPAN, "each use of a def parameter copies the argument; name it with `let` first");
        e->poison = true;
        return e->type = poison_type();
    }
    Expr *body = clone_expr(r->a, def->value, def, args);
    r->exp[r->nexp].name = s->name;
    r->exp[r->nexp].at = e->span;
    r->nexp++;
    Type t = rx(r, body);
    r->nexp--;
    Expr *next = e->next;
    Span sp = e->span;
    *e = *body;          /* the call becomes its expansion; spans point at the def */
    e->next = next;
    e->op_span = e->kind == E_NAME || e->kind == E_NUM ? sp : e->op_span;
    return t;
}

static bool is_label_ref(R *r, Expr *x)
{
    return x->kind == E_NAME && x->sym && (x->sym->kind == S_LABEL) && r->m;
}

static Type call(R *r, Expr *e)
{
    Expr *callee = e->lhs;
    bool transposed = false;
    if (callee->kind == E_TRANSPOSE && callee->lhs->kind == E_NAME) {
        transposed = true;
        callee = callee->lhs;
    }
    if (callee->kind != E_NAME)
        return fail(r, e, callee->span, "only functions can be called");
    const char *name = callee->name.s;
    Sym *s = lookup(r->scope, name);
    if (s && s->kind == S_DEF && !transposed)
        return expand_def(r, e, s);
    Builtin fn = FN_NONE;
    for (int i = 1; i < FN_COUNT; i++)
        if (i != FN_GCONV_T && strcmp(builtin_info[i].name, name) == 0)
            fn = (Builtin)i;
    if (fn == FN_NONE) {
        if (s && s->kind != S_DEF)
            return fail(r, e, callee->span, "'%s' is not a function", name);
        Diag *g = error(r, callee->span, "unknown function '%s'", name);
        Suggest sg = suggest_init(r, g, name);
        for (int i = 1; i < FN_COUNT; i++)
            if (i != FN_GCONV_T)
                consider(&sg, name, builtin_info[i].name);
        for (const Scope *sc = r->scope; sc; sc = sc->parent)
            for (int i = 0; i < sc->cap; i++)
                if (sc->slots[i] && sc->slots[i]->kind == S_DEF)
                    consider(&sg, name, sc->slots[i]->name);
        note_suggestion(r, g, sg);
        e->poison = true;
        return e->type = poison_type();
    }
    if (transposed) {
        if (fn != FN_GCONV)
            return fail(r, e, e->lhs->op_span, "only gconv has a transpose, gconv'; '%s'' does not exist", name);
        fn = FN_GCONV_T;
    }
    e->fn = (int)fn;
    const BuiltinInfo *bi = &builtin_info[fn];
    int n = e->args.len;
    if (n < bi->min_args || n > bi->max_args) {
        if (bi->min_args == bi->max_args)
            return fail(r, e, e->span, "'%s' takes %d argument%s, but %d %s given", bi->name, bi->min_args,
                        bi->min_args == 1 ? "" : "s", n, n == 1 ? "was" : "were");
        return fail(r, e, e->span, "'%s' takes %d to %d arguments, but %d %s given", bi->name, bi->min_args,
                    bi->max_args, n, n == 1 ? "was" : "were");
    }
    Expr *a0 = e->args.head, *a1 = a0 ? a0->next : NULL;
    if (fn == FN_SMOOTH) {
        if (!r->in_loss)
            return fail(r, e, callee->span, "smooth(...) is a regulariser: it belongs in the loss");
        for (Expr *x = a0; x; x = x->next) {
            Sym *p = name_sym(r, x, "an argument of smooth");
            bool bad = !p;
            if (p && p->kind == S_PARAM) {
                /* reports a use before or inside the declaration (the
                 * Param does not exist yet then) */
                r->in_smooth = true;
                bad = is_poison(rx(r, x));
                r->in_smooth = false;
            }
            if (bad) {
                e->poison = true;
                return e->type = poison_type();
            }
            if (p->kind != S_PARAM || !p->param || !p->param->per_layer) {
                Diag *g = error(r, x->span, "smooth needs per-layer parameters; '%s' is not one", p->name);
                diag_note(r->d, g, NO_SPAN, "smooth(P) = sum_k |P_{k+1} - P_k|^2 / h penalises change between layers");
                e->poison = true;
                return e->type = poison_type();
            }
        }
        return e->type = scalar_type(VARY_PARAM);
    }
    if (fn == FN_LIFT || fn == FN_GCONV || fn == FN_GCONV_T) {
        Param *k = kernel_arg(r, a0, fn == FN_LIFT ? PK_LIFT : PK_GCONV, bi->name);
        Type x = rx(r, a1);
        if (!k || is_poison(x)) {
            e->poison = true;
            return e->type = poison_type();
        }
        int g = k->group->order;
        int cin = fn == FN_GCONV_T ? k->cout : k->cin, cout = fn == FN_GCONV_T ? k->cin : k->cout;
        if (k->group->kind == GROUP_Z) { /* sequences R[c, n] */
            Shape want = shape2(cin, k->group->n);
            if (!shape_eq(x.shape, want)) {
                error(r, a1->span, "%s with kernel '%s' needs R[%d,%d], got %s", bi->name, k->name, cin, k->group->n,
                      type_str(r->a, x));
                e->poison = true;
                return e->type = poison_type();
            }
            Type t = x;
            t.per_layer = x.per_layer || k->per_layer;
            t.vary = vmax(x.vary, VARY_PARAM);
            t.shape = shape2(cout, k->group->n);
            return e->type = t;
        }
        Shape want = fn == FN_LIFT ? (Shape){3, {cin, x.shape.dim[1], x.shape.dim[2]}}
                                   : (Shape){4, {cin, g, x.shape.dim[2], x.shape.dim[3]}};
        if (!shape_eq(x.shape, want) || (fn == FN_LIFT ? x.shape.dim[1] != x.shape.dim[2] : x.shape.dim[2] != x.shape.dim[3])) {
            Diag *dg = error(r, a1->span, "%s with kernel '%s' needs %s, got %s", bi->name, k->name,
                             fn == FN_LIFT ? arena_printf(r->a, "R[%d,n,n]", cin)
                                           : arena_printf(r->a, "R[%d,%d,n,n]", cin, g),
                             type_str(r->a, x));
            (void)dg;
            e->poison = true;
            return e->type = poison_type();
        }
        Type t = x;
        t.per_layer = x.per_layer || k->per_layer;
        t.vary = vmax(x.vary, VARY_PARAM);
        int hw = x.shape.dim[x.shape.rank - 1];
        t.shape = (Shape){4, {cout, g, hw, hw}};
        if (fn == FN_LIFT)
            t.field = x.field == FIELD_SPATIAL ? FIELD_REGULAR : x.field;
        else
            t.field = x.field == FIELD_REGULAR ? FIELD_REGULAR : x.field;
        FieldKind want_field = fn == FN_LIFT ? FIELD_SPATIAL : FIELD_REGULAR;
        if (x.field != FIELD_BROKEN && x.field != FIELD_NONE && x.field != want_field)
            set_broken(&t, e->op_span);
        return e->type = t;
    }
    Type ta = rx(r, a0);
    if (is_poison(ta)) {
        e->poison = true;
        return e->type = ta;
    }
    if (ta.identity)
        return fail(r, e, a0->span, "'%s' of I: I has no size here", bi->name);
    if (ta.is_class && fn != FN_CROSS_ENTROPY)
        return fail(r, e, a0->span, "a class label is not a number");
    Type t = ta;
    switch (fn) {
    case FN_LEAKY_RELU:
        e->num = 0.01;
        if (a1) {
            double a;
            if (!const_value(r, a1, "the slope of leaky_relu", &a)) {
                e->poison = true;
                return e->type = poison_type();
            }
            if (!(a > 0 && a < 1))
                return fail(r, e, a1->span, "the slope of leaky_relu must be in (0, 1), not %g", a);
            e->num = a;
        }
        /* fallthrough */
    case FN_TANH: case FN_RELU: case FN_SIGMOID: case FN_SOFTPLUS: case FN_IDENTITY: case FN_EXP:
        if (a0->has_value && fn == FN_IDENTITY) {
            e->has_value = true;
            e->num = a0->num;
        }
        return e->type = t;
    case FN_SOFTMAX:
        if (ta.shape.rank != 1)
            return fail(r, e, a0->span, "softmax needs a vector, got %s", type_str(r->a, ta));
        return e->type = t;
    case FN_CROSS_ENTROPY:
    case FN_MSE: {
        if (ta.shape.rank == 0 || (fn == FN_CROSS_ENTROPY && ta.shape.rank != 1))
            return fail(r, e, a0->span, "%s needs a vector of scores first, got %s", bi->name, type_str(r->a, ta));
        Type tb = rx(r, a1);
        if (is_poison(tb)) {
            e->poison = true;
            return e->type = tb;
        }
        /* against a class label the scores are a vector; against a real target any shape equal to the target's */
        if (ta.shape.rank != 1 && tb.is_class) {
            Diag *g = error(r, a0->span, "%s against a class label needs a vector of scores, got %s", bi->name,
                            type_str(r->a, ta));
            diag_note(r->d, g, NO_SPAN, "compare an image output with an image target: `target t : %s;`",
                      shape_str(r->a, ta.shape));
            e->poison = true;
            return e->type = poison_type();
        }
        int n = ta.shape.dim[0];
        if (fn == FN_CROSS_ENTROPY && !is_label_ref(r, a1)) {
            Diag *g = error(r, a1->span, "cross_entropy needs a class label as its second argument");
            diag_note(r->d, g, NO_SPAN, "declare one with `label c : class[%d];`, or use mse for a real target", n);
            e->poison = true;
            return e->type = poison_type();
        }
        if (tb.is_class ? tb.nclass != n : !shape_eq(tb.shape, ta.shape)) {
            return fail(r, e, a1->span, "%s compares %s with %s: the sizes differ", bi->name, type_str(r->a, ta),
                        type_str(r->a, tb));
        }
        Type out = scalar_type(vmax(ta.vary, tb.vary));
        out.per_layer = ta.per_layer || tb.per_layer;
        out.field = ta.field;
        return e->type = out;
    }
    case FN_NLL_GAUSSIAN:
        if (!r->in_loss)
            return fail(r, e, callee->span, "nll_gaussian(...) is a loss: it belongs in the loss");
        r->uses_nll = true;
        if (ta.shape.rank != 1)
            return fail(r, e, a0->span, "nll_gaussian needs a vector, got %s", type_str(r->a, ta));
        t = scalar_type(ta.vary);
        return e->type = t;
    case FN_PAD: {
        int n;
        if (ta.shape.rank < 1)
            return fail(r, e, a0->span, "pad needs a tensor, got a scalar");
        if (!const_int(r, a1, "the padded size", 1, MAX_TENSOR, &n)) {
            e->poison = true;
            return e->type = poison_type();
        }
        if (n < ta.shape.dim[0]) {
            Diag *g = error(r, a1->span, "pad to %d is smaller than its input %s", n, type_str(r->a, ta));
            diag_note(r->d, g, NO_SPAN, "pad(x, n) appends zeros to reach size n; to keep fewer entries, slice: x[0:%d]", n);
            e->poison = true;
            return e->type = poison_type();
        }
        t.shape.dim[0] = n;
        /* Zero channels are invariant: padding the channel axis keeps the field type. */
        return e->type = t;
    }
    case FN_JOIN: {
        Type out = ta;
        long long total = ta.shape.rank ? ta.shape.dim[0] : 0;
        if (ta.shape.rank < 1)
            return fail(r, e, a0->span, "join needs tensors, got a scalar");
        for (Expr *x = a1; x; x = x->next) {
            Type tx = rx(r, x);
            if (is_poison(tx)) {
                e->poison = true;
                return e->type = tx;
            }
            Shape a = ta.shape, b = tx.shape;
            bool ok = a.rank == b.rank && !tx.identity && !tx.is_class;
            for (int i = 1; ok && i < a.rank; i++)
                ok = a.dim[i] == b.dim[i];
            if (!ok)
                return fail(r, e, x->span, "cannot join %s and %s: all but the first axis must agree",
                            type_str(r->a, ta), type_str(r->a, tx));
            total += b.dim[0];
            if (total > MAX_TENSOR)
                return fail(r, e, e->span, "join makes an axis of %lld entries; the limit is %d", total, MAX_TENSOR);
            out.vary = vmax(out.vary, tx.vary);
            out.per_layer |= tx.per_layer;
            out.field = field_join(r, &out, out, tx, x->span);
        }
        out.shape.dim[0] = (int)total;
        return e->type = out;
    }
    case FN_SUM:
    case FN_MEAN:
        t.shape = (Shape){0};
        if (ta.field == FIELD_SPATIAL || ta.field == FIELD_REGULAR || ta.field == FIELD_REGULAR_VEC)
            t.field = FIELD_TRIVIAL;
        return e->type = t;
    case FN_GPOOL: {
        Group *g = model_group(r);
        if (!g)
            return fail(r, e, callee->span, "gpool needs a group: declare one with `group G acts on x;`");
        if ((ta.shape.rank != 4 && ta.shape.rank != 2) || ta.shape.dim[1] != g->order)
            return fail(r, e, a0->span, "gpool needs R[c, %d, n, n] or R[c, %d] (axis 1 is the group %s), got %s",
                        g->order, g->order, g->name, type_str(r->a, ta));
        t.shape = ta.shape.rank == 4 ? (Shape){3, {ta.shape.dim[0], ta.shape.dim[2], ta.shape.dim[3]}}
                                      : shape1(ta.shape.dim[0]);
        if (ta.field == FIELD_REGULAR)
            t.field = FIELD_SPATIAL;
        else if (ta.field == FIELD_REGULAR_VEC)
            t.field = FIELD_TRIVIAL;
        return e->type = t;
    }
    case FN_MEAN_SPACE:
        if (ta.shape.rank == 3)
            t.shape = shape1(ta.shape.dim[0]);
        else if (ta.shape.rank == 4)
            t.shape = shape2(ta.shape.dim[0], ta.shape.dim[1]);
        else
            return fail(r, e, a0->span, "mean_space needs R[c, n, n] or R[c, g, n, n], got %s", type_str(r->a, ta));
        if (ta.field == FIELD_SPATIAL)
            t.field = FIELD_TRIVIAL;
        else if (ta.field == FIELD_REGULAR)
            t.field = FIELD_REGULAR_VEC;
        return e->type = t;
    case FN_POOL2: { /* the mean over aligned 2 x 2 blocks of the grid (the last two axes) */
        const Shape s = ta.shape;
        if (s.rank < 2 || s.dim[s.rank - 1] != s.dim[s.rank - 2])
            return fail(r, e, a0->span, "pool2 needs a square grid in its last two axes, got %s", type_str(r->a, ta));
        if (s.dim[s.rank - 1] % 2) {
            Diag *dg = error(r, a0->span, "pool2 halves the grid, but it is %d x %d", s.dim[s.rank - 1], s.dim[s.rank - 1]);
            diag_note(r->d, dg, NO_SPAN, "an odd grid has no aligned 2 x 2 blocks (and rotations would not map blocks to blocks)");
            e->poison = true;
            return e->type = poison_type();
        }
        t.shape = s;
        t.shape.dim[s.rank - 1] /= 2;
        t.shape.dim[s.rank - 2] /= 2;
        return e->type = t;
    }
    case FN_MEAN_SET: {
        Group *g = model_group(r);
        if (!g || g->kind != GROUP_S)
            return fail(r, e, callee->span, "mean_set averages the members of a set: declare `group S(n) acts on x;`");
        if (ta.shape.rank != 2 || ta.shape.dim[1] != g->n)
            return fail(r, e, a0->span, "mean_set needs R[c, %d] (axis 1 is the set of %s), got %s", g->n, g->name,
                        type_str(r->a, ta));
        t.shape = shape1(ta.shape.dim[0]);
        t.field = FIELD_TRIVIAL;
        return e->type = t;
    }
    default:
        return fail(r, e, e->span, "internal: unhandled builtin");
    }
}

/* ---- declarations -------------------------------------------------------------- */

static Sym *new_sym(R *r, SymKind k, const char *name, Span sp)
{
    Sym *s = ARENA_NEW(r->a, Sym);
    s->kind = k;
    s->name = name;
    s->span = sp;
    s->low = -1;
    return s;
}

/* Declares name in the current scope; a duplicate is an error. */
static bool declare(R *r, Sym *s)
{
    Sym *old = scope_get(r->scope, s->name);
    if (!old && r->scope->parent && r->block)
        old = lookup(r->scope->parent, s->name);   /* block lets may not shadow model names */
    if (old && !old->prelude && old->kind != S_MODEL) {
        Diag *g = error(r, s->span, "'%s' is declared twice", s->name);
        diag_note(r->d, g, old->span, "the first declaration of '%s' is here", s->name);
        return false;
    }
    scope_put(r->a, r->scope, s);
    return true;
}

static const char *group_name_of(R *r, Expr *e, int *n)
{
    *n = 0;
    if (e->kind == E_NAME)
        return e->name.s;
    if (e->kind == E_CALL && e->lhs->kind == E_NAME && e->args.len == 1) {
        if (!const_int(r, e->args.head, "the group size", 1, 4096, n))
            return NULL;
        return arena_printf(r->a, "%s(%d)", e->lhs->name.s, *n);
    }
    error(r, e->span, "expected a group: C4, D4, Z(n) or S(n)");
    return NULL;
}

static Group *find_group(R *r, Expr *e)
{
    int n;
    const char *name = group_name_of(r, e, &n);
    if (!name)
        return NULL;
    for (int i = 0; i < r->m->ngroups; i++)
        if (strcmp(r->m->groups[i]->name, name) == 0)
            return r->m->groups[i];
    Diag *g = error(r, e->span, "unknown group '%s'", name);
    diag_note(r->d, g, NO_SPAN, "declare it with `group %s acts on x;`", name);
    return NULL;
}

/* R[d...] for inputs, states and targets. */
static bool tensor_type(R *r, TypeExpr *te, const char *what, Shape *out)
{
    if (strcmp(te->name.s, "R") != 0) {
        Diag *g = error(r, te->name.span, "%s must have a tensor type R[...], not '%s'", what, te->name.s);
        if (strcmp(te->name.s, "class") == 0)
            diag_note(r->d, g, NO_SPAN, "class[n] is the type of a `label`");
        else
            diag_note(r->d, g, NO_SPAN, "structured types (skew, orth, lu, lift, gconv) are for parameters");
        return false;
    }
    if (te->nargs < 1 || te->nargs > 4) {
        error(r, te->span, "a tensor has 1 to 4 dimensions, not %d", te->nargs);
        return false;
    }
    Shape s = {0};
    size_t total = 1;
    for (TypeArg *a = te->args; a; a = a->next) {
        if (a->hi) {
            error(r, a->span, "'->' only appears in lift and gconv types");
            return false;
        }
        int d;
        if (!const_int(r, a->lo, "a dimension", 1, MAX_TENSOR, &d))
            return false;
        total *= (size_t)d;
        if (total > MAX_TENSOR) {
            error(r, te->span, "tensor too large: more than %d elements", MAX_TENSOR);
            return false;
        }
        s.dim[s.rank++] = d;
    }
    *out = s;
    return true;
}

static bool check_type_name(R *r, TypeExpr *te)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(type_names[i], te->name.s) == 0)
            return true;
    Diag *g = error(r, te->name.span, "unknown type '%s'", te->name.s);
    Suggest sg = suggest_init(r, g, te->name.s);
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        consider(&sg, te->name.s, type_names[i]);
    note_suggestion(r, g, sg);
    if (!sg.best)
        diag_note(r->d, g, NO_SPAN, "the types are R, class, skew, orth, lu, lift and gconv");
    return false;
}

static void param_decl(R *r, Decl *d, Sym *s)
{
    TypeExpr *te = d->type;
    Param *p = ARENA_NEW(r->a, Param);
    p->name = s->name;
    p->span = d->name.span;
    p->decl = d;
    p->layers = 1;
    p->per_layer = d->per_layer > 0;
    s->param = p;
    s->type = poison_type();
    if (d->per_layer > 1)
        error(r, d->per_layer_span, "`per layer` is written twice");
    if (!check_type_name(r, te))
        return;
    const char *tn = te->name.s;
    int n = 0;
    if (strcmp(tn, "R") == 0) {
        if (!tensor_type(r, te, "a parameter", &p->shape))
            return;
        p->kind = PK_FREE;
        p->store = p->shape;
        p->nstore = shape_size(p->shape);
    } else if (!strcmp(tn, "skew") || !strcmp(tn, "orth") || !strcmp(tn, "lu")) {
        if (te->nargs != 1 || te->args->hi) {
            error(r, te->span, "%s[n] takes one size", tn);
            return;
        }
        if (!const_int(r, te->args->lo, "the size", 1, 4096, &n))
            return;
        if (n < 2 && strcmp(tn, "lu") != 0) {
            error(r, te->args->lo->span, "%s[n] needs n >= 2", tn);
            return;
        }
        p->kind = !strcmp(tn, "skew") ? PK_SKEW : !strcmp(tn, "orth") ? PK_ORTH : PK_LU;
        p->shape = shape2(n, n);
        p->nstore = p->kind == PK_LU ? (size_t)n * (size_t)n : (size_t)n * (size_t)(n - 1) / 2;
        p->store = p->kind == PK_LU ? shape2(n, n) : shape1((int)p->nstore);
    } else if (!strcmp(tn, "lift") || !strcmp(tn, "gconv")) {
        TypeArg *a0 = te->args, *a1 = a0 ? a0->next : NULL, *a2 = a1 ? a1->next : NULL;
        if (te->nargs != 3 || a0->hi || !a1->hi || a2->hi) {
            Diag *g = error(r, te->span, "%s takes [G, cin -> cout, k]", tn);
            diag_note(r->d, g, NO_SPAN, "for example %s[C4, 1 -> 4, 3]", tn);
            return;
        }
        p->group = find_group(r, a0->lo);
        if (!p->group)
            return;
        if (!const_int(r, a1->lo, "cin", 1, 4096, &p->cin) || !const_int(r, a1->hi, "cout", 1, 4096, &p->cout) ||
            !const_int(r, a2->lo, "the kernel size", 1, 31, &p->ksize))
            return;
        p->kind = !strcmp(tn, "lift") ? PK_LIFT : PK_GCONV;
        bool cyclic = p->group->kind == GROUP_Z;
        if (p->group->kind == GROUP_S || (cyclic && p->kind == PK_LIFT)) {
            Diag *g = error(r, a0->span, "%s[%s, ...] is not defined", tn, p->group->name);
            diag_note(r->d, g, NO_SPAN, cyclic ? "a Z(n) sequence is already a regular field: convolve it with gconv[Z(n), cin -> cout, k]"
                                               : "S(n) mixes channels only: multiply by K : R[m, c]");
            return;
        }
        if (p->ksize % 2 == 0 && !cyclic) {
            Diag *g = error(r, a2->span, "the kernel size must be odd, not %d", p->ksize);
            diag_note(r->d, g, NO_SPAN, "an odd kernel has a centre, which rotations keep fixed");
            return;
        }
        if (cyclic) { /* K[o, c, u]: circular, any k (DESIGN §8) */
            p->shape = (Shape){3, {p->cout, p->cin, p->ksize}};
            p->store = p->shape;
        } else if (p->kind == PK_LIFT) {
            p->shape = (Shape){4, {p->cout, p->cin, p->ksize, p->ksize}};
            p->store = p->shape;
        } else {
            p->shape = (Shape){5, {p->cout, p->cin, p->group->order, p->ksize, p->ksize}};
            p->store = p->shape; /* DESIGN §8: R[cout, cin, |G|, k, k] */
        }
        p->nstore = shape_size(p->shape);
        if (p->nstore > MAX_TENSOR) {
            error(r, te->span, "kernel too large: %zu numbers, more than %d", p->nstore, MAX_TENSOR);
            return;
        }
    } else {
        Diag *g = error(r, te->name.span, "a parameter cannot have type '%s'", tn);
        diag_note(r->d, g, NO_SPAN, "class[n] is the type of a `label`");
        return;
    }
    if (d->nwhere > 1)
        error(r, d->where_span, "only one `where` bound per parameter");
    if (d->nwhere) {
        p->norm_span = d->where_span;
        if (strcmp(d->norm_fn.s, "norm") != 0) {
            Diag *g = error(r, d->norm_fn.span, "unknown constraint '%s'", d->norm_fn.s);
            diag_note(r->d, g, NO_SPAN, "the constraint is `where norm(%s) <= c` (spectral norm)", s->name);
        } else if (strcmp(d->norm_of.s, s->name) != 0) {
            Diag *g = error(r, d->norm_of.span, "the bound names '%s', but the parameter is '%s'", d->norm_of.s, s->name);
            diag_note(r->d, g, NO_SPAN, "write `where norm(%s) <= c`", s->name);
        } else if ((p->shape.rank != 2 && p->kind != PK_LIFT && p->kind != PK_GCONV) || p->kind == PK_LU) {
            Diag *g = error(r, d->where_span, "a norm bound needs a matrix parameter; '%s' is %s", s->name,
                            p->kind == PK_LU ? "lu (its norm is not bounded by scaling)" : shape_str(r->a, p->shape));
            (void)g;
        } else {
            double c;
            if (const_value(r, d->norm_bound, "the norm bound", &c)) {
                if (!(c > 0))
                    error(r, d->norm_bound->span, "the norm bound must be positive, not %g", c);
                else {
                    p->has_norm = true;
                    p->norm_bound = c;
                }
            }
        }
    }
    if (p->kind == PK_ORTH && !p->has_norm) {
        p->has_norm = true;   /* orthogonal: the spectral norm is exactly 1 */
        p->norm_bound = 1;
    }
    Type t = scalar_type(VARY_PARAM);
    t.shape = p->shape;
    t.per_layer = p->per_layer;
    t.field = FIELD_TRIVIAL;
    s->type = t;
}

static void group_decl(R *r, Decl *d, Sym *s)
{
    Group *g = ARENA_NEW(r->a, Group);
    g->span = d->name.span;
    const char *nm = d->name.s;
    int n = 0;
    if (d->value && !const_int(r, d->value, "the group size", 1, 4096, &n))
        return;
    if (!d->value && !strcmp(nm, "C4")) {
        g->kind = GROUP_C4;
        g->order = 4;
    } else if (!d->value && !strcmp(nm, "D4")) {
        g->kind = GROUP_D4;
        g->order = 8;
    } else if (d->value && (!strcmp(nm, "Z") || !strcmp(nm, "S"))) {
        g->kind = nm[0] == 'Z' ? GROUP_Z : GROUP_S;
        g->n = n;
        g->order = nm[0] == 'Z' ? n : 0; /* S(n) is not enumerated */
    } else {
        Diag *dg = error(r, d->name.span, "unknown group '%s%s'", nm, d->value ? "(n)" : "");
        diag_note(r->d, dg, NO_SPAN, "the built-in groups are C4, D4, Z(n) and S(n)");
        return;
    }
    g->name = d->value ? arena_printf(r->a, "%s(%d)", nm, n) : nm;
    s->name = g->name;
    s->group = g;
    Sym *on = lookup(r->scope, d->on.s);
    if (!on || on->kind != S_INPUT) {
        Diag *dg = error(r, d->on.span, "a group acts on the model's input; '%s' is %s", d->on.s,
                         on ? "not the input" : "not declared");
        diag_note(r->d, dg, NO_SPAN, "declare `input %s : ...` before the group", d->on.s);
        return;
    }
    if (on->order > r->order) {
        Diag *dg = error(r, d->on.span, "'%s' is used before its declaration", d->on.s);
        diag_note(r->d, dg, on->span, "'%s' is declared here", d->on.s);
        return;
    }
    Shape sh = on->type.shape;
    if ((g->kind == GROUP_C4 || g->kind == GROUP_D4) && !(sh.rank == 3 && sh.dim[1] == sh.dim[2])) {
        Diag *dg = error(r, d->span, "%s rotates square grids, but '%s' is %s", g->name, on->name, shape_str(r->a, sh));
        diag_note(r->d, dg, NO_SPAN, "declare the input as R[channels, n, n]");
        return;
    }
    if ((g->kind == GROUP_Z || g->kind == GROUP_S) && !((sh.rank == 1 || sh.rank == 2) && sh.dim[sh.rank - 1] == n)) {
        Diag *dg = error(r, d->span, "%s acts on the last axis, of length %d, but '%s' is %s", g->name, n, on->name,
                         shape_str(r->a, sh));
        diag_note(r->d, dg, NO_SPAN, "declare the input as R[channels, %d]", n);
        return;
    }
    g->acts_on = on;
    on->type.field = g->kind == GROUP_C4 || g->kind == GROUP_D4 ? FIELD_SPATIAL : FIELD_REGULAR_VEC;
    r->m->groups = grow(r->a, r->m->groups, r->m->ngroups, sizeof *r->m->groups);
    r->m->groups[r->m->ngroups++] = g;
    if (r->m->ngroups > 1)
        error(r, d->span, "only one group per model is supported");
}

/* --grid-levels: is a state or target of shape sh (initial value of type
 * t, if any) on the grid? See resolve_coarse in resolve.h. */
static bool on_grid(R *r, Shape sh, const Type *t)
{
    if (!r->grid_n || sh.rank < 3)
        return false;
    if (t && (t->field == FIELD_SPATIAL || t->field == FIELD_REGULAR))
        return true;
    if (t && t->vary == VARY_SAMPLE && t->field != FIELD_NONE && t->field != FIELD_BROKEN)
        return false;
    int m = sh.dim[sh.rank - 1];
    if (sh.dim[sh.rank - 2] != m || r->grid_n % m)
        return false;
    int q = r->grid_n / m;
    return (q & (q - 1)) == 0;
}

/* The last two axes of *sh, a grid, at the level's size. */
static bool coarsen_grid(R *r, Span at, const char *name, Shape *sh)
{
    int f = r->coarse.grid, n = sh->dim[sh->rank - 1];
    if (n % f) {
        Diag *g = error(r, at, "the %dx%d grid of '%s' has no level with %d times fewer points per side", n, n, name, f);
        diag_note(r->d, g, NO_SPAN,
                  "--grid-levels L halves every grid L-1 times: each needs a multiple of 2^(L-1) = %d points per "
                  "side; ask for fewer grid levels", f);
        return false;
    }
    sh->dim[sh->rank - 2] = sh->dim[sh->rank - 1] = n / f;
    return true;
}

/* --grid-levels: the input of model `it` at the level's grid; it must be
 * the square grid a C4 or D4 group rotates. */
static bool coarsen_input(R *r, Item *it, Decl *in, Shape *sh)
{
    Decl *g = it->decls.head;
    while (g && !(g->kind == D_GROUP && !g->value && (!strcmp(g->name.s, "C4") || !strcmp(g->name.s, "D4")) &&
                  !strcmp(g->on.s, in->name.s)))
        g = g->next;
    if (!g) {
        Diag *dg = error(r, in->name.span, "--grid-levels coarsens images, but no C4 or D4 group acts on '%s'",
                         in->name.s);
        diag_note(r->d, dg, NO_SPAN, "the grid levels are those of an input R[c, n, n] that `group C4 acts on %s;` "
                                     "(or D4) declares; --levels L coarsens a model in depth", in->name.s);
        return false;
    }
    if (!(sh->rank == 3 && sh->dim[1] == sh->dim[2]))
        return true; /* the group's declaration says what is wrong */
    r->grid_n = sh->dim[2];
    return coarsen_grid(r, in->type->span, in->name.s, sh);
}

static bool same_shape_or_error(R *r, Span at, const char *what, Shape want, Type got)
{
    if (is_poison(got))
        return false;
    if (got.identity || got.is_class || !shape_eq(got.shape, want)) {
        error(r, at, "%s has shape %s, but should be %s", what, type_str(r->a, got), shape_str(r->a, want));
        return false;
    }
    return true;
}

static Param *steps_param(R *r, Block *b, Span at)
{
    Param *p = ARENA_NEW(r->a, Param);
    int k = 0;
    for (int i = 0; i < r->m->nblocks; i++)
        k += r->m->blocks[i] != b && r->m->blocks[i]->learned;
    p->name = k == 0 ? "dt" : arena_printf(r->a, "dt%d", k + 1);
    p->span = at;
    p->kind = PK_STEPS;
    p->shape = (Shape){0};
    p->store = (Shape){0};
    p->nstore = 1;
    p->per_layer = true;
    p->layers = b->layers;
    p->block = b;
    p->used = true;
    return p;
}

static void add_param(R *r, Param *p)
{
    r->m->params = grow(r->a, r->m->params, r->m->nparams, sizeof *r->m->params);
    p->index = r->m->nparams;
    r->m->params[r->m->nparams++] = p;
}

static void push_item(R *r, Block *b, Decl *d)
{
    b->items = grow(r->a, b->items, b->nitems, sizeof *b->items);
    b->items[b->nitems++] = d;
}

static void let_decl(R *r, Decl *d, Sym *s)
{
    Type t = rx(r, d->value);
    if (!is_poison(t) && t.identity)
        error(r, d->value->span, "cannot tell the size of I here");
    if (d->value->has_value) {
        s->kind = S_CONST;
        s->value = d->value->num;
    }
    s->type = t.identity ? poison_type() : t;
    s->expr = d->value;
}

static void block_decl(R *r, Decl *d)
{
    Block *b = ARENA_NEW(r->a, Block);
    b->kind = d->kind == D_FLOW ? BLOCK_FLOW : BLOCK_REPEAT;
    b->decl = d;
    b->span = d->span;
    b->index = r->m->nblocks;
    d->sem = b;
    const char *kw = b->kind == BLOCK_FLOW ? "flow" : "repeat";
    int n;
    if (!const_int(r, d->layers, "the number of layers", 1, 1000000, &n))
        return;
    int f = r->coarse.layers;
    if (b->kind == BLOCK_FLOW && f > 1) {
        if (n % f) {
            Diag *g = error(r, d->layers->span, "a flow of %d layers has no level with %d times fewer", n, f);
            diag_note(r->d, g, NO_SPAN,
                      "--levels builds every flow in 1/2, 1/4, ... down to 1/%d of its layers: give each flow a "
                      "multiple of %d layers, or ask for fewer levels", f, f);
            return;
        }
        n /= f;
    }
    b->layers = n;
    b->h = 1;
    if (b->kind == BLOCK_FLOW) {
        double t0, t1;
        if (!const_value(r, d->t0, "the start time", &t0) || !const_value(r, d->t1, "the end time", &t1))
            return;
        if (!(t1 > t0)) {
            Diag *g = error(r, span_join(d->t0->span, d->t1->span), "empty time interval [%g, %g]", t0, t1);
            diag_note(r->d, g, NO_SPAN, "a flow integrates forward in time: write [t0, t1] with t1 > t0");
            return;
        }
        b->t0 = t0;
        b->t1 = t1;
        b->h = (t1 - t0) / n;
        b->scheme_span = d->scheme.span;
        Sym *sc = lookup(r->scope, d->scheme.s);
        if (sc && sc->kind == S_SCHEME) {
            b->scheme = sc->scheme;
            sc->used = true;
        } else if (tableau_builtin(d->scheme.s)) {
            b->scheme = tableau_builtin(d->scheme.s);
        } else {
            Diag *g = error(r, d->scheme.span, "unknown scheme '%s'", d->scheme.s);
            Suggest sg = suggest_init(r, g, d->scheme.s);
            consider(&sg, d->scheme.s, "verlet");
            consider(&sg, d->scheme.s, "symplectic_euler");
            for (const Scope *s = r->scope; s; s = s->parent)
                for (int i = 0; i < s->cap; i++)
                    if (s->slots[i] && s->slots[i]->kind == S_SCHEME)
                        consider(&sg, d->scheme.s, s->slots[i]->name);
            note_suggestion(r, g, sg);
            diag_note(r->d, g, NO_SPAN, "std/schemes.spn defines euler, heun, kutta3 and rk4; verlet and symplectic_euler are built in");
        }
    }
    /* add the block now so that steps_param names count it */
    r->m->blocks = grow(r->a, r->m->blocks, r->m->nblocks, sizeof *r->m->blocks);
    r->m->blocks[r->m->nblocks++] = b;

    Scope bscope = {.parent = r->scope};
    r->scope = &bscope;
    r->block = b;
    for (Decl *it = d->body.head; it; it = it->next) {
        if (diag_full(r->d))
            break;
        switch (it->kind) {
        case D_LET: {
            Sym *s = new_sym(r, S_LET, it->name.s, it->name.span);
            s->decl = it;
            s->order = r->order;
            let_decl(r, it, s);
            if (declare(r, s)) {
                it->sem = s; /* lowering evaluates it in every layer and stage */
                push_item(r, b, it);
            }
            break;
        }
        case D_STEPS:
            if (b->kind != BLOCK_FLOW) {
                error(r, it->span, "`steps learned` belongs in a flow; a repeat block has no time step");
                break;
            }
            if (b->learned) {
                Diag *g = error(r, it->span, "`steps learned` is written twice");
                diag_note(r->d, g, b->steps_span, "first written here");
                break;
            }
            b->learned = true;
            b->steps_span = it->span;
            if (it->hmax) {
                double hmax;
                if (!const_value(r, it->hmax, "the largest step", &hmax))
                    break;
                if (!(hmax > 0)) {
                    error(r, it->hmax->span, "the largest step must be positive, not %g", hmax);
                    break;
                }
                double T = b->t1 - b->t0;
                if (hmax * b->layers < T * (1 - 1e-12)) {
                    Diag *g = error(r, it->hmax->span, "steps of at most %g cannot cover [%g, %g] in %d layers", hmax,
                                    b->t0, b->t1, b->layers);
                    diag_note(r->d, g, NO_SPAN, "the steps must sum to %g: allow at least %.17g, or more layers", T,
                              T / b->layers);
                    break;
                }
                b->has_hmax = true;
                b->hmax = hmax;
            }
            b->dt = steps_param(r, b, it->span);
            add_param(r, b->dt);
            break;
        case D_EQUATION:
        case D_ASSIGN: {
            bool eq = it->kind == D_EQUATION;
            if (eq && b->kind != BLOCK_FLOW) {
                Diag *g = error(r, it->span, "'d%s/dt' in a repeat block", it->name.s);
                diag_note(r->d, g, NO_SPAN, "a repeat block assigns: write `%s = ...;`", it->name.s);
                break;
            }
            if (!eq && b->kind == BLOCK_FLOW) {
                Diag *g = error(r, it->span, "assignment in a flow block");
                diag_note(r->d, g, NO_SPAN, "a flow block holds equations: write `d%s/dt = ...;`", it->name.s);
                break;
            }
            Sym *s = lookup(r->scope, it->name.s);
            Type t = rx(r, it->value);
            if (!s || s->kind != S_STATE) {
                Diag *g;
                if (s)
                    g = eq ? error(r, it->name.span, "'d%s/dt': '%s' is not a state", it->name.s, it->name.s)
                           : error(r, it->name.span, "cannot assign to '%s': it is not a state", it->name.s);
                else
                    g = eq ? error(r, it->name.span, "'d%s/dt': there is no state '%s'", it->name.s, it->name.s)
                           : error(r, it->name.span, "cannot assign to '%s': there is no state '%s'", it->name.s,
                                   it->name.s);
                if (s && s->kind == S_PARAM)
                    diag_note(r->d, g, s->span, "'%s' is a parameter: parameters are learned, not integrated", it->name.s);
                else if (s)
                    diag_note(r->d, g, s->span, "'%s' is declared here", it->name.s);
                else {
                    Suggest sg = suggest_init(r, g, it->name.s);
                    for (int i = 0; i < r->m->nstates; i++)
                        consider(&sg, it->name.s, r->m->states[i]->name);
                    note_suggestion(r, g, sg);
                    if (!sg.best)
                        diag_note(r->d, g, NO_SPAN, "declare it with `state %s : R[n] = ...;`", it->name.s);
                }
                break;
            }
            if (s->order > r->order) {
                Diag *g = error(r, it->name.span, "'%s' is used before its declaration", s->name);
                diag_note(r->d, g, s->span, "'%s' is declared here", s->name);
                break;
            }
            s->used = true;
            if (eq) {
                for (int i = 0; i < b->nvars; i++)
                    if (b->vars[i] == s->state) {
                        Diag *g = error(r, it->span, "two equations for d%s/dt", s->name);
                        for (int j = 0; j < b->nitems; j++)
                            if (b->items[j]->kind == D_EQUATION && strcmp(b->items[j]->name.s, s->name) == 0)
                                diag_note(r->d, g, b->items[j]->span, "the first is here");
                        s = NULL;
                        break;
                    }
                if (!s)
                    break;
            }
            const char *what = eq ? arena_printf(r->a, "d%s/dt", s->name) : arena_printf(r->a, "the new value of '%s'", s->name);
            if (!same_shape_or_error(r, it->value->span, what, s->state->shape, t))
                break;
            if (eq) {
                b->vars = grow(r->a, b->vars, b->nvars, sizeof *b->vars);
                b->vars[b->nvars++] = s->state;
            }
            if (t.field != s->state->field && s->state->field != FIELD_NONE && t.field != FIELD_NONE &&
                s->state->field != FIELD_BROKEN) {
                s->state->field = FIELD_BROKEN;
            }
            it->sem = s; /* the state it integrates or assigns */
            push_item(r, b, it);
            break;
        }
        default:
            error(r, it->span, "internal: unexpected item in a block");
        }
    }
    r->scope = bscope.parent;
    r->block = NULL;
    bool any = false;
    for (int i = 0; i < b->nitems; i++)
        any |= b->items[i]->kind != D_LET;
    if (!any && r->d->errors == 0) {
        Diag *g = error(r, d->span, "this %s block changes no state", kw);
        diag_note(r->d, g, NO_SPAN, b->kind == BLOCK_FLOW ? "add an equation `dy/dt = ...;` for a state y"
                                                          : "add an assignment `v = ...;` to a state v");
    }
    if (b->kind == BLOCK_FLOW && b->scheme && b->scheme->kind != SCHEME_RK && b->nvars == 1) {
        Diag *g = error(r, b->scheme_span, "%s is a partitioned scheme: it needs two or more state variables",
                        b->scheme->name);
        diag_note(r->d, g, NO_SPAN, "split the state (y, z) as in a Hamiltonian network, or use an explicit scheme like rk4");
    }
}

static void require_decl(R *r, Decl *d)
{
    for (Require *q = d->reqs.head; q; q = q->next) {
        int k = -1;
        for (int i = 0; i < REQ_COUNT; i++)
            if (strcmp(req_names[i], q->name.s) == 0)
                k = i;
        if (k < 0) {
            Diag *g = error(r, q->name.span, "unknown guarantee '%s'", q->name.s);
            Suggest sg = suggest_init(r, g, q->name.s);
            for (int i = 0; i < REQ_COUNT; i++)
                consider(&sg, q->name.s, req_names[i]);
            note_suggestion(r, g, sg);
            diag_note(r->d, g, NO_SPAN, "the guarantees are stable, lipschitz <= C, nonexpansive, invertible, equivariant(G), invariant(G)");
            continue;
        }
        Req req = {.kind = (ReqKind)k, .span = q->span};
        if (k == REQ_LIPSCHITZ) {
            if (!q->bound) {
                Diag *g = error(r, q->span, "lipschitz needs a bound");
                diag_note(r->d, g, NO_SPAN, "write `require lipschitz <= 1;`");
                continue;
            }
            if (!const_value(r, q->bound, "the Lipschitz bound", &req.bound))
                continue;
            if (!(req.bound > 0)) {
                error(r, q->bound->span, "the Lipschitz bound must be positive, not %g", req.bound);
                continue;
            }
        } else if (q->bound) {
            error(r, q->bound->span, "'%s' takes no bound; only lipschitz does", q->name.s);
            continue;
        }
        if (k == REQ_EQUIVARIANT || k == REQ_INVARIANT) {
            if (!q->arg.s) {
                Diag *g = error(r, q->span, "%s needs a group", q->name.s);
                diag_note(r->d, g, NO_SPAN, "write `require %s(C4);`", q->name.s);
                continue;
            }
            const char *gname = q->arg.s;
            if (q->arg_size) { /* Z(n), S(n): the name the group declaration made */
                int n;
                if (!const_int(r, q->arg_size, "the group size", 1, 4096, &n))
                    continue;
                gname = arena_printf(r->a, "%s(%d)", q->arg.s, n);
            }
            for (int i = 0; i < r->m->ngroups; i++)
                if (strcmp(r->m->groups[i]->name, gname) == 0)
                    req.group = r->m->groups[i];
            if (!req.group) {
                Diag *g = error(r, q->arg.span, "unknown group '%s'", gname);
                diag_note(r->d, g, NO_SPAN, "declare it with `group %s acts on x;`", gname);
                continue;
            }
        } else if (q->arg.s) {
            error(r, q->arg.span, "'%s' takes no group; only equivariant and invariant do", q->name.s);
            continue;
        }
        bool dup = false;
        for (int i = 0; i < r->m->nreqs; i++)
            if (r->m->reqs[i].kind == req.kind && r->m->reqs[i].group == req.group) {
                Diag *g = error(r, q->span, "'%s' is required twice", q->name.s);
                diag_note(r->d, g, r->m->reqs[i].span, "first required here");
                dup = true;
            }
        if (dup)
            continue;
        if (r->m->nreqs == (int)(sizeof r->m->reqs / sizeof r->m->reqs[0])) {
            error(r, q->span, "too many requirements");
            continue;
        }
        r->m->reqs[r->m->nreqs++] = req;
    }
}

static Model *resolve_model(R *r, Item *it)
{
    Model *m = ARENA_NEW(r->a, Model);
    m->name = it->name.s;
    m->span = it->name.span;
    m->item = it;
    r->m = m;
    Scope ms = {.parent = &r->globals};
    r->scope = &ms;
    int nd = 0, errs0 = r->d->errors;
    bool has_input = false, has_output = false, has_loss = false;
    for (Decl *d = it->decls.head; d; d = d->next) {
        nd++;
        has_input |= d->kind == D_INPUT;
        has_output |= d->kind == D_OUTPUT;
        has_loss |= d->kind == D_LOSS;
    }
    m->decls = ARENA_ARRAY(r->a, Decl *, nd ? nd : 1);
    /* First pass: every name the model declares, so that uses before the
     * declaration get their own message rather than "unknown name". */
    int order = 0;
    for (Decl *d = it->decls.head; d; d = d->next, order++) {
        m->decls[m->ndecls++] = d;
        d->sem = NULL; /* what an earlier resolve of the same tree recorded (spdlc build --levels) */
        SymKind k;
        switch (d->kind) {
        case D_INPUT: k = S_INPUT; break;
        case D_LABEL: k = S_LABEL; break;
        case D_TARGET: k = S_TARGET; break;
        case D_STATE: k = S_STATE; break;
        case D_PARAM: k = S_PARAM; break;
        case D_LET: k = S_LET; break;
        case D_OUTPUT: k = S_OUTPUT; break;
        case D_GROUP: continue; /* declared when resolved: Z(n) needs its n */
        default: continue;
        }
        Sym *s = new_sym(r, k, d->name.s, d->name.span);
        s->decl = d;
        s->order = order;
        s->type = poison_type();
        d->sem = s;
        if (!declare(r, s))
            d->sem = NULL;
    }
    order = 0;
    for (Decl *d = it->decls.head; d && !diag_full(r->d); d = d->next, order++) {
        r->order = order;
        Sym *s = d->sem;
        if (s)
            s->visit = 1; /* a use inside its own declaration is an error */
        switch (d->kind) {
        case D_INPUT:
            if (!s)
                break;
            if (m->input) {
                Diag *g = error(r, d->span, "a model has one input");
                diag_note(r->d, g, m->input->span, "the input is '%s'", m->input->name);
                diag_note(r->d, g, NO_SPAN, "combine inputs into one tensor");
                break;
            }
            if (!check_type_name(r, d->type) || !tensor_type(r, d->type, "the input", &m->in_shape))
                break;
            if (r->coarse.grid > 1 && !coarsen_input(r, it, d, &m->in_shape))
                r->grid_n = 0; /* reported: the rest resolves at the model's own size */
            m->input = s;
            m->nin = shape_size(m->in_shape);
            s->type = scalar_type(VARY_SAMPLE);
            s->type.shape = m->in_shape;
            break;
        case D_LABEL:
        case D_TARGET: {
            if (!s)
                break;
            if (m->label || m->target) {
                Sym *o = m->label ? m->label : m->target;
                Diag *g = error(r, d->span, "a model has at most one label or target");
                diag_note(r->d, g, o->span, "'%s' is declared here", o->name);
                break;
            }
            if (!check_type_name(r, d->type))
                break;
            if (d->kind == D_LABEL) {
                if (strcmp(d->type->name.s, "class") != 0 || d->type->nargs != 1 || d->type->args->hi) {
                    Diag *g = error(r, d->type->span, "a label has type class[n]");
                    diag_note(r->d, g, NO_SPAN, "for a real-valued target write `target %s : R[m];`", s->name);
                    break;
                }
                int n;
                if (!const_int(r, d->type->args->lo, "the number of classes", 2, 1000000, &n))
                    break;
                m->label = s;
                m->nclass = n;
                m->ntarget = 1;
                s->type = scalar_type(VARY_SAMPLE);
                s->type.is_class = true;
                s->type.nclass = n;
                s->type.shape = shape1(1);
            } else {
                Shape sh;
                if (!tensor_type(r, d->type, "a target", &sh))
                    break;
                if (r->coarse.grid > 1 && on_grid(r, sh, NULL)) {
                    Diag *g = error(r, d->type->span, "--grid-levels restricts the input images, not the target '%s'",
                                    s->name);
                    diag_note(r->d, g, NO_SPAN, "train an image-to-image model at one size, or with --levels (depth)");
                    break;
                }
                m->target = s;
                m->ntarget = 1;
                for (int i = 0; i < sh.rank; i++)
                    m->ntarget *= (size_t)sh.dim[i];
                s->type = scalar_type(VARY_SAMPLE);
                s->type.shape = sh;
            }
            s->type.field = FIELD_TRIVIAL;
            break;
        }
        case D_STATE: {
            if (!s)
                break;
            State *st = ARENA_NEW(r->a, State);
            st->name = s->name;
            st->span = d->name.span;
            st->decl = d;
            st->init = d->value;
            s->state = st;
            if (!check_type_name(r, d->type) || !tensor_type(r, d->type, "a state", &st->shape))
                break;
            Type t = rx(r, d->value);
            if (r->coarse.grid > 1 && !is_poison(t) && on_grid(r, st->shape, &t) &&
                !coarsen_grid(r, d->type->span, s->name, &st->shape))
                break;
            if (!is_poison(t) && !(t.shape.rank == 0 && !t.identity && !t.is_class))
                if (!same_shape_or_error(r, d->value->span, arena_printf(r->a, "the initial value of '%s'", s->name),
                                         st->shape, t))
                    break;
            if (is_poison(t))
                break;
            if (t.vary != VARY_SAMPLE && r->m->input) {
                /* fine: a constant or learned initial state */
            }
            st->field = t.field;
            st->index = m->nstates;
            st->size = shape_size(st->shape);
            m->states = grow(r->a, m->states, m->nstates, sizeof *m->states);
            m->states[m->nstates++] = st;
            s->type = scalar_type(VARY_SAMPLE);
            s->type.shape = st->shape;
            s->type.field = st->field;
            break;
        }
        case D_PARAM:
            if (!s)
                break;
            param_decl(r, d, s);
            if (!is_poison(s->type))
                add_param(r, s->param);
            break;
        case D_GROUP: {
            Sym *g = new_sym(r, S_GROUP, d->name.s, d->name.span);
            g->order = order;
            group_decl(r, d, g);
            if (g->group)
                declare(r, g);
            break;
        }
        case D_FLOW:
        case D_REPEAT:
            block_decl(r, d);
            break;
        case D_OUTPUT: {
            if (!s)
                break;
            if (m->output) {
                Diag *g = error(r, d->span, "a model has one output");
                diag_note(r->d, g, m->output->span, "the output is '%s'", m->output->name);
                break;
            }
            Type t = rx(r, d->value);
            if (is_poison(t))
                break;
            if (t.identity || t.is_class || t.shape.rank == 0) {
                error(r, d->value->span, "the output must be a tensor, not %s", type_str(r->a, t));
                break;
            }
            if (t.vary != VARY_SAMPLE && has_input) {
                Diag *g = error(r, d->value->span, "the output does not depend on the input");
                diag_note(r->d, g, NO_SPAN, "an output is computed from the input, states or other outputs");
                break;
            }
            m->output = s;
            m->out_shape = t.shape;
            m->nout = shape_size(t.shape);
            s->type = t;
            s->expr = d->value;
            break;
        }
        case D_LOSS: {
            if (m->loss) {
                Diag *g = error(r, d->span, "a model has one loss");
                diag_note(r->d, g, m->loss_span, "the loss is declared here");
                diag_note(r->d, g, NO_SPAN, "add the terms: `loss a + b;`");
                break;
            }
            r->in_loss = true;
            Type t = rx(r, d->value);
            r->in_loss = false;
            if (is_poison(t))
                break;
            if (t.shape.rank != 0 || t.identity) {
                error(r, d->value->span, "the loss must be a scalar, not %s", type_str(r->a, t));
                break;
            }
            if (t.vary != VARY_SAMPLE && has_input) {
                Diag *g = error(r, d->value->span, "the loss does not depend on the data");
                diag_note(r->d, g, NO_SPAN, "add a data term such as cross_entropy(p, c)");
                break;
            }
            m->loss = d->value;
            m->loss_span = d->span;
            break;
        }
        case D_REQUIRE:
            require_decl(r, d);
            break;
        case D_LET:
            if (s)
                let_decl(r, d, s);
            break;
        default:
            error(r, d->span, "internal: unexpected declaration");
        }
        if (s)
            s->visit = 2;
    }
    /* A declaration that failed without a message would let an incomplete
     * model through to the later phases: never accept one silently. */
    if (r->d->errors == 0 && (!m->input || !m->output || !m->loss) && has_input && has_output && has_loss)
        error(r, m->span, "internal: model '%s' was not fully resolved, but no error was reported", m->name);
    /* Missing declarations are reported even after other errors; a
     * declaration that is present but failed was reported already. */
    if (!has_input) {
        Diag *g = error(r, m->span, "model '%s' has no input", m->name);
        diag_note(r->d, g, NO_SPAN, "declare one: `input x : R[n];`");
    }
    if (!has_output) {
        Diag *g = error(r, m->span, "model '%s' has no output", m->name);
        diag_note(r->d, g, NO_SPAN, "declare one: `output p = softmax(W * x);`");
    }
    if (!has_loss) {
        Diag *g = error(r, m->span, "model '%s' has no loss", m->name);
        diag_note(r->d, g, NO_SPAN, m->label ? "add `loss cross_entropy(p, c);`" : "add a `loss ...;` declaration");
    }
    /* After an error, uses inside the poisoned expression were never seen:
     * "never used" would then be a false alarm. */
    bool clean = r->d->errors == errs0;
    for (int i = 0; i < m->nparams && clean; i++) {
        Param *p = m->params[i];
        if (!p->used)
            diag_warning(r->d, p->span, "parameter '%s' is never used", p->name);
        else if (p->per_layer && !p->block && p->kind != PK_STEPS) {
            Diag *g = error(r, p->span, "per-layer parameter '%s' is only used outside flow and repeat blocks", p->name);
            diag_note(r->d, g, NO_SPAN, "drop `per layer`");
        }
    }
    size_t off = 0;
    for (int i = 0; i < m->nparams; i++) {
        Param *p = m->params[i];
        p->offset = off;
        p->size = p->nstore * (size_t)p->layers;
        off += p->size;
    }
    m->theta_size = off;
    off = 0;
    for (int i = 0; i < m->nstates; i++) {
        m->states[i]->offset = off;
        off += m->states[i]->size;
    }
    m->state_size = off;
    if (r->uses_nll && r->d->errors == 0) {
        /* log|det| of the flow, threaded through the layers as a state */
        State *ld = ARENA_NEW(r->a, State);
        ld->name = "logdet";
        ld->span = m->loss_span;
        ld->shape = (Shape){1, {1}};
        ld->size = 1;
        ld->offset = off;
        ld->hidden = true;
        ld->index = m->nstates;
        State **ss = ARENA_ARRAY(r->a, State *, m->nstates + 1);
        if (m->nstates)
            memcpy(ss, m->states, sizeof *ss * (size_t)m->nstates);
        ss[m->nstates++] = ld;
        m->states = ss;
        m->logdet = ld;
    }
    r->uses_nll = false;
    r->m = NULL;
    r->scope = &r->globals;
    return m;
}

/* ---- globals ---------------------------------------------------------------- */

static void scheme_item(R *r, Item *it, Sym *s)
{
    Scheme *sc = ARENA_NEW(r->a, Scheme);
    sc->name = it->name.s;
    sc->span = it->name.span;
    sc->kind = SCHEME_RK;
    Expr *fc = NULL, *fa = NULL, *fb = NULL;
    for (SchemeField *f = it->fields; f; f = f->next) {
        Expr **slot = !strcmp(f->name.s, "a") ? &fa : !strcmp(f->name.s, "b") ? &fb : !strcmp(f->name.s, "c") ? &fc : NULL;
        if (!slot) {
            Diag *g = error(r, f->name.span, "unknown tableau field '%s'", f->name.s);
            diag_note(r->d, g, NO_SPAN, "a scheme has fields c, a and b");
            return;
        }
        if (*slot) {
            error(r, f->name.span, "tableau field '%s' is given twice", f->name.s);
            return;
        }
        *slot = f->value;
    }
    if (!fa || !fb || !fc) {
        Diag *g = error(r, it->name.span, "scheme '%s' is missing field '%s'", it->name.s, !fc ? "c" : !fa ? "a" : "b");
        diag_note(r->d, g, NO_SPAN, "a scheme needs c = [...]; a = [[...], ...]; b = [...];");
        return;
    }
    int st = fb->kind == E_ARRAY ? fb->args.len : 0;
    if (st < 1 || st > SCHEME_MAX_STAGES) {
        error(r, fb->span, "b must be a list of 1 to %d numbers", SCHEME_MAX_STAGES);
        return;
    }
    sc->stages = st;
    struct { Expr *e; double *out; const char *name; } vecs[2] = {{fb, sc->b, "b"}, {fc, sc->c, "c"}};
    for (int v = 0; v < 2; v++) {
        Expr *e = vecs[v].e;
        if (e->kind != E_ARRAY || e->args.len != st) {
            error(r, e->span, "%s must be a list of %d numbers, one per stage", vecs[v].name, st);
            return;
        }
        int i = 0;
        for (Expr *x = e->args.head; x; x = x->next, i++)
            if (!const_value(r, x, "a tableau entry", &vecs[v].out[i]))
                return;
    }
    if (fa->kind != E_ARRAY || fa->args.len != st) {
        error(r, fa->span, "a must be a %d x %d matrix: a list of %d rows", st, st, st);
        return;
    }
    int i = 0;
    for (Expr *row = fa->args.head; row; row = row->next, i++) {
        if (row->kind != E_ARRAY || row->args.len != st) {
            error(r, row->span, "row %d of a must have %d entries", i, st);
            return;
        }
        int j = 0;
        for (Expr *x = row->args.head; x; x = x->next, j++)
            if (!const_value(r, x, "a tableau entry", &sc->a[i][j]))
                return;
    }
    char detail[256];
    const char *bad = tableau_check(sc, detail, sizeof detail);
    if (bad) {
        Diag *g = error(r, it->name.span, "scheme '%s' violates %s", it->name.s, bad);
        diag_note(r->d, g, NO_SPAN, "%s", detail);
        return;
    }
    s->scheme = sc;
}

/* ---- recursion among defs ------------------------------------------------------ */

/* The calls by name in a def body (not of its own parameters). */
static void def_calls(Arena *a, Expr *e, const Item *def, PtrVec *out)
{
    if (!e)
        return;
    if (e->kind == E_CALL && e->lhs->kind == E_NAME && def_param(def, e->lhs) < 0)
        vec_push(a, out, e);
    def_calls(a, e->lhs, def, out);
    def_calls(a, e->rhs, def, out);
    for (Expr *x = e->args.head; x; x = x->next)
        def_calls(a, x, def, out);
}

/* A def is a macro: one that reaches itself through the calls in its body
 * would never finish expanding. This is a property of the call graph, so it
 * is checked once here (depth-first), not by watching expansions, where
 * f(f(x)) is a legitimate nesting. stack[k] was reached by the call at[k]. */
static void check_def(R *r, Sym *s, Sym **stack, Expr **at, int depth)
{
    s->visit = 1;
    stack[depth] = s;
    PtrVec calls = {0};
    def_calls(r->a, s->item->value, s->item, &calls);
    for (int i = 0; i < calls.len; i++) {
        Expr *c = calls.items[i];
        Sym *g = scope_get(&r->globals, c->lhs->name.s);
        if (!g || g->kind != S_DEF || g->visit == 2)
            continue;
        if (g->visit == 1) {
            int k = depth;
            while (stack[k] != g)
                k--;
            Diag *dg = error(r, c->span, "'%s' expands into itself", g->name);
            for (int j = k + 1; j <= depth; j++)
                diag_note(r->d, dg, at[j]->span, "'%s' calls '%s' here", stack[j - 1]->name, stack[j]->name);
            diag_note(r->d, dg, NO_SPAN, "a def is a macro: it cannot be recursive");
            for (int j = k; j <= depth; j++)
                stack[j]->bad = true;
            continue;
        }
        if (depth + 1 == MAX_EXPANSION) {
            Diag *dg = error(r, c->span, "defs call each other more than %d deep", MAX_EXPANSION);
            diag_note(r->d, dg, NO_SPAN, "name intermediate results with `let`");
            s->bad = true;
            continue;
        }
        at[depth + 1] = c;
        check_def(r, g, stack, at, depth + 1);
    }
    s->visit = 2;
}

ResolveResult resolve(Arena *a, Diags *d, Ast *ast, int main_file, const char *only)
{
    return resolve_coarse(a, d, ast, main_file, only, (Coarsening){1, 1});
}

ResolveResult resolve_coarse(Arena *a, Diags *d, Ast *ast, int main_file, const char *only, Coarsening c)
{
    R r = {.a = a, .d = d, .coarse = c};
    r.scope = &r.globals;
    ResolveResult res = {0};
    /* Global names first (prelude, imports, the main file), then models. */
    for (Item *it = ast->items; it; it = it->next) {
        if (it->kind == I_IMPORT)
            continue;
        SymKind k = it->kind == I_SCHEME ? S_SCHEME : it->kind == I_DEF ? S_DEF : it->kind == I_LET ? S_LET : S_MODEL;
        Sym *s = new_sym(&r, k, it->name.s, it->name.span);
        s->item = it;
        s->prelude = it->prelude;
        s->order = -1;
        s->type = poison_type();
        if (tableau_builtin(it->name.s) && k == S_SCHEME) {
            error(&r, it->name.span, "'%s' is a built-in scheme and cannot be redefined", it->name.s);
            continue;
        }
        Sym *old = scope_get(&r.globals, s->name);
        if (old && !(old->prelude && !it->prelude)) {
            if (old->prelude && it->prelude)
                continue;
            Diag *g = error(&r, it->name.span, "'%s' is defined twice", s->name);
            diag_note(d, g, old->span, "the first definition is here");
            continue;
        }
        if (it->kind == I_DEF) {
            if (it->nparams > 16) {
                error(&r, it->name.span, "a def takes at most 16 parameters");
                continue;
            }
            for (int i = 0; i < it->nparams; i++)
                for (int j = 0; j < i; j++)
                    if (!strcmp(it->params[i].s, it->params[j].s))
                        error(&r, it->params[i].span, "parameter '%s' is named twice", it->params[i].s);
        }
        scope_put(a, &r.globals, s);
        if (it->kind == I_SCHEME)
            scheme_item(&r, it, s);
        else if (it->kind == I_LET) {
            s->visit = 1;
            Type t = rx(&r, it->value);
            s->visit = 2;
            if (!is_poison(t)) {
                if (!it->value->has_value)
                    error(&r, it->value->span, "a top-level let must be a number known at compile time");
                else {
                    s->kind = S_CONST;
                    s->value = it->value->num;
                }
            }
        }
    }
    Sym *stack[MAX_EXPANSION];
    Expr *at[MAX_EXPANSION];
    for (Item *it = ast->items; it; it = it->next) {
        Sym *s = it->kind == I_DEF ? scope_get(&r.globals, it->name.s) : NULL;
        if (s && s->item == it && s->visit == 0)
            check_def(&r, s, stack, at, 0);
    }
    PtrVec models = {0};
    for (Item *it = ast->items; it; it = it->next)
        if (it->kind == I_MODEL && it->file == main_file && (!only || !strcmp(only, it->name.s)))
            vec_push(a, &models, it);
    if (models.len == 0) {
        if (only)
            diag_error(d, NO_SPAN, "no model named '%s' in %s", only, diag_file(d, main_file)->path);
        else if (d->errors == 0) {
            Diag *g = diag_error(d, (Span){main_file, 0, 0}, "no model in this file");
            diag_note(d, g, NO_SPAN, "a .spn file defines a model: `model name { ... }`");
        }
        return res;
    }
    res.models = ARENA_ARRAY(a, Model *, models.len);
    for (int i = 0; i < models.len && !diag_full(d); i++)
        res.models[res.nmodels++] = resolve_model(&r, models.items[i]);
    /* Diagnose unused prelude? no: the prelude is a library. */
    if (d->errors == 0)
        res.model = res.models[0];
    return res;
}
