/* emit_ops.c - the forward and adjoint C of one step-program operation.
 *
 * Elementwise operations become loops over a value's rows and lanes,
 * fused into their one consumer's loop where plan_fusion allowed it; the
 * adjoint of each operation adds its operands' partials (assigning the
 * first, so adjoint buffers need no zeroing). The other operations
 * (products, convolutions, reductions, slices, structured matrices) call
 * the runtime's kernels with compile-time sizes. */
#include "emit_internal.h"

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
void loop_open(E *e, const Val *res)
{
    if (res->vary == VARY_SAMPLE && e->nhoist) {
        out(e, "for (size_t i = 0; i < %zu; i++) {", rows_of(res));
        e->indent++;
        for (int h = 0; h < e->nhoist; h++)
            out(e, "%s", e->hoist[h]);
        e->nhoist = 0;
        out(e, "SPDL_LANES {");
        e->indent++;
        e->row_braced = true;
        return;
    }
    out(e, "for (size_t i = 0; i < %zu; i++)", rows_of(res));
    if (res->vary == VARY_SAMPLE) {
        e->indent++;
        out(e, "SPDL_LANES {");
    } else {
        out(e, "{");
    }
    e->indent++;
}

void loop_close(E *e, const Val *res)
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
    case FN_TANH: return S_(e, "spdl_tanh_r(%s)", a);
    case FN_RELU: return S_(e, "spdl_select_r(%s > 0, %s, 0.0)", a, a);
    case FN_SIGMOID: return S_(e, "spdl_sigmoid_r(%s)", a);
    case FN_SOFTPLUS: return S_(e, "spdl_softplus_r(%s)", a);
    case FN_EXP: return S_(e, "spdl_exp_r(%s)", a);
    case FN_LEAKY_RELU: return S_(e, "spdl_select_r(%s > 0, %s, %s * %s)", a, a, lit(e, v->num), a);
    default: return a;
    }
}

/* d act / d a, times g; y is the forward result. */
static const char *act_adj(E *e, const Val *v, const char *g, const char *a, const char *y)
{
    switch ((Builtin)v->fn) {
    case FN_TANH: return S_(e, "%s * (1 - %s * %s)", g, y, y);
    case FN_RELU: return S_(e, "spdl_select_r(%s > 0, %s, 0.0)", y, g);
    case FN_SIGMOID: return S_(e, "%s * %s * (1 - %s)", g, y, y);
    case FN_SOFTPLUS: return S_(e, "%s * spdl_sigmoid_r(%s)", g, a);
    case FN_EXP: return S_(e, "%s * %s", g, y);
    case FN_LEAKY_RELU: return S_(e, "%s * spdl_select_r(%s > 0, 1.0, %s)", g, a, lit(e, v->num));
    default: return g;
    }
}

bool is_elementwise(Op op)
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
        return S_(e, "spdl_sqrt_r(%s)", a);
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
const char *operand_at(E *e, int o, const Val *res)
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
    bool guard = grad_guard_open(e, v, o); /* its braces scope the block's names */
    if (!full)
        partial(e, o, rows_of(ov) * lanes_of(ov));
    if (!guard) {
        out(e, "{");
        e->indent++;
    }
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
        out(e, "SPDL_LANES {");
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
    if (!guard) {
        e->indent--;
        out(e, "}");
    }
    grad_guard_close(e, guard);
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
    int p = (int)(B->size / (size_t)n); /* columns: every index of B after its first */
    if (v->vary == VARY_SAMPLE) {
        bool st = e->strided[v->a]; /* A = S', S stored n x m: A[i][j] at S + i + j m */
        out(e, "const real *restrict A = %s;", F(e, st ? A->a : v->a));
        out(e, "const real *restrict B = %s;", F(e, v->b));
        out(e, "real *restrict Y = %s;", F(e, v->id));
        for (int c = 0; c < p; c++)
            out(e, "spdl_gemm(%d, SPDL_BT, %d, A, %d, %d, B + %d, %d, Y + %d, %d, 0);", m, n, st ? 1 : n, st ? m : 1,
                c * BT, p * BT, c * BT, p * BT);
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
    int p = (int)(B->size / (size_t)n); /* columns: every index of B after its first */
    /* dA reads B, dB reads A: declare only what is read (no unused variables) */
    bool ga = wants_adj(e, v->a), gb = wants_adj(e, v->b);
    if (v->vary == VARY_SAMPLE) {
        /* A = S' with S (n x m) stored and A never (plan_strided): S is A' row by row */
        bool st = e->strided[v->a];
        if (st) /* the adjoint goes to S */
            ga = ga && wants_adj(e, A->a);
        int t = st ? A->a : gb ? transposed(e, v->a) : -1;
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
        if (ga) { /* dA += dY B' summed over lanes and columns; for A = S', dS += B dY' (dY turned) */
            int g = st ? A->a : v->a, rows = st ? n : m, cols = st ? m : n;
            const char *left = st ? "B" : "GY", *turned = st ? "GY" : "B";
            first(e, g);
            bool guard = grad_guard_open(e, v, g);
            out(e, "real *restrict T = w + %zu;", e->scratch);
            out(e, "real *restrict GA = %s;", G(e, g));
            for (int c = 0; c < p; c++) {
                out(e, "spdl_transpose_tile(%d, %s + %d, %d, T);", cols, turned, c * BT, p * BT);
                out(e, "spdl_gemm(%d, %d, SPDL_BT, %s + %d, %d, 1, T, %d, GA, %d, 1);", rows, cols, left, c * BT, p * BT,
                    cols, cols);
            }
            grad_guard_close(e, guard);
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

/* the correlations' scratch "S, ns": in float only, where the products'
 * rate bounds the step and F(2x2, 3x3) saves 2.25x of them; double builds
 * keep the tap-by-tap sums (already 2.4-3x PyTorch's float64 step) */
static const char *wino_scratch_args(E *e)
{
    return e->nwscratch ? S_(e, "w + %zu, %zu", e->wscratch, e->nwscratch) : "NULL, 0";
}

static bool cyclic(E *e, const Val *v) { return param_of(e, VAL(e, v->a))->group->kind == GROUP_Z; }

static void zconv_forward(E *e, const Val *v)
{
    if (!cyclic(e, v)) {
        const char *dims;
        gconv_bank(e, v, &dims);
        out(e, "spdl_corr2%s(%s, WB, %s, %s, 0, %s);", v->op == OP_GCONV_T ? "_t" : "", dims, F(e, v->b), F(e, v->id),
            wino_scratch_args(e));
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
        out(e, "spdl_corr2%s(%s, WB, %s, %s, %d, %s);", t ? "" : "_t", dims, G(e, v->id), G(e, v->b), assign ? 0 : 1,
            wino_scratch_args(e));
    }
    if (wants_adj(e, v->a)) {
        first(e, v->a);
        bool guard = grad_guard_open(e, v, v->a);
        const Param *pm = param_of(e, VAL(e, v->a));
        size_t nb = (size_t)pm->cout * (size_t)pm->group->order * (size_t)pm->cin *
                    (size_t)(pm->kind == PK_GCONV ? pm->group->order : 1) * (size_t)pm->ksize * (size_t)pm->ksize;
        out(e, "real *restrict GWB = w + %zu;", e->gscratch + ((nb + 7) & ~(size_t)7));
        out(e, "memset(GWB, 0, sizeof(real) * %zu);", nb);
        out(e, "spdl_corr2_dw(%s, %s, %s, GWB, %s);", dims, t ? F(e, v->b) : G(e, v->id), t ? G(e, v->id) : F(e, v->b),
            wino_scratch_args(e));
        out(e, "spdl_gbank_adj(%s, GWB, %s);", bank, G(e, v->a));
        grad_guard_close(e, guard);
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
        bool guard = grad_guard_open(e, v, v->a);
        out(e, "spdl_zconv_dk(%s, %s, %s, %s);", zconv_dims(e, v), t ? F(e, v->b) : G(e, v->id), t ? G(e, v->id) : F(e, v->b),
            G(e, v->a));
        grad_guard_close(e, guard);
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

void op_forward(E *e, const Val *v)
{
    const StepProgram *p = e->p;
    if (is_alias(e, v) && v->op != OP_STORE) {
        const Seg *s = home(v) == H_LAYERS ? &p->segs[v->seg] : NULL;
        if (!s || final_var(s, v->id) < 0)
            return;
    }
    if ((v->op == OP_STATE && home(v) == H_LAYERS) || e->fused[v->id] || e->strided[v->id])
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
                out(e, "    Y[l] = -spdl_log_r(P[(size_t)C[l] * SPDL_BT + l]);");
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

void op_adjoint(E *e, const Val *v)
{
    if ((v->op == OP_STATE && home(v) == H_LAYERS) || e->strided[v->id])
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
                    bool guard = grad_guard_open(e, v, v->a);
                    out(e, "real *restrict GA = %s;", G(e, v->a));
                    out(e, "const real *restrict GS = %s;", gs);
                    out(e, "for (size_t i = 0; i < %zu; i++)", v->size);
                    out(e, "    GA[%s] += spdl_lane_sum(GS + i * SPDL_BT);", a->shape.rank ? "i" : "0");
                    grad_guard_close(e, guard);
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
