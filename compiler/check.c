/* check.c - runs the guarantee checkers, prints certificates, and holds the
 * analyses they share: activation facts, structured matrix expressions and
 * Lipschitz bounds of expressions. */
#include "check.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "summary.h"

const char *const level_names[] = {"proved", "linearized", "refused", "unchecked"};

void verdict_note(Arena *a, Verdict *v, Span sp, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    VNote *n = ARENA_NEW(a, VNote);
    n->span = sp;
    n->msg = arena_strdup(a, buf);
    if (v->notes_tail)
        v->notes_tail->next = n;
    else
        v->notes = n;
    v->notes_tail = n;
}

void verdict_set(Verdict *v, bool holds, Level level, double bound, const char *reason)
{
    v->evaluated = true;
    v->holds = holds;
    v->level = level;
    v->bound = bound;
    v->reason = reason;
}

/* ---- activations ----------------------------------------------------------- */

bool act_facts(const Expr *call, ActFacts *out)
{
    if (!call || call->kind != E_CALL)
        return false;
    const BuiltinInfo *bi = &builtin_info[call->fn];
    if (!bi->activation)
        return false;
    out->dmin = call->fn == FN_LEAKY_RELU ? call->num : bi->dmin;
    out->dmax = bi->dmax;
    out->monotone = bi->monotone;
    out->lip = bi->lipschitz ? fmax(fabs(out->dmin), fabs(out->dmax)) : INFINITY;
    return true;
}

/* ---- expressions -------------------------------------------------------------- */

const Expr *expr_unlet(const Expr *e)
{
    for (int guard = 0; e && e->kind == E_NAME && e->sym && (e->sym->kind == S_LET) && e->sym->expr && guard < 1000; guard++)
        e = e->sym->expr;
    return e;
}

static const Param *param_of(const Expr *e)
{
    e = expr_unlet(e);
    return e && e->kind == E_NAME && e->sym && e->sym->kind == S_PARAM ? e->sym->param : NULL;
}

static bool is_identity(const Expr *e)
{
    e = expr_unlet(e);
    return e && e->kind == E_NAME && !e->sym && e->type.shape.rank == 2;
}

double mat_norm(const MatInfo *mi) { return mi->skew + fabs(mi->alpha) + mi->gen; }

static void mat_unbounded(MatInfo *m, const Param *p, Span sp)
{
    if (!m->unbounded) {
        m->unbounded = p;
        m->unbounded_span = sp;
    }
}

bool mat_info(const Expr *e0, MatInfo *out)
{
    const Expr *e = expr_unlet(e0);
    memset(out, 0, sizeof *out);
    if (!e || e->type.vary == VARY_SAMPLE || e->type.shape.rank != 2)
        return false;
    if (is_identity(e)) {
        out->alpha = 1;
        return true;
    }
    const Param *p = param_of(e);
    if (p) {
        double c = p->has_norm ? p->norm_bound : INFINITY;
        if (!p->has_norm)
            mat_unbounded(out, p, e->span);
        if (p->kind == PK_SKEW)
            out->skew = c;
        else
            out->gen = c;
        return true;
    }
    MatInfo l, r;
    switch (e->kind) {
    case E_TRANSPOSE:
        if (!mat_info(e->lhs, out))
            return false;
        return true; /* S' = -S is skew with the same norm; I' = I; |G'| = |G| */
    case E_NEG:
        if (!mat_info(e->lhs, out))
            return false;
        out->alpha = -out->alpha;
        return true;
    case E_ADD:
    case E_SUB: {
        /* X - X' and X' - X are skew with |.| <= 2|X| */
        const Expr *L = expr_unlet(e->lhs), *R = expr_unlet(e->rhs);
        if (e->kind == E_SUB && R->kind == E_TRANSPOSE && param_of(R->lhs) && param_of(R->lhs) == param_of(L)) {
            if (!mat_info(L, &l))
                return false;
            out->skew = 2 * mat_norm(&l);
            out->unbounded = l.unbounded;
            out->unbounded_span = l.unbounded_span;
            return true;
        }
        if (!mat_info(e->lhs, &l) || !mat_info(e->rhs, &r))
            return false;
        double sg = e->kind == E_SUB ? -1 : 1;
        out->skew = l.skew + r.skew;
        out->alpha = l.alpha + sg * r.alpha;
        out->gen = l.gen + r.gen;
        out->unbounded = l.unbounded ? l.unbounded : r.unbounded;
        out->unbounded_span = l.unbounded ? l.unbounded_span : r.unbounded_span;
        return true;
    }
    case E_MUL: {
        const Expr *L = expr_unlet(e->lhs), *R = expr_unlet(e->rhs);
        if (L->has_value && L->type.shape.rank == 0 && mat_info(R, &r)) {
            *out = r;
            out->skew *= fabs(L->num);
            out->gen *= fabs(L->num);
            out->alpha *= L->num;
            return true;
        }
        if (R->has_value && R->type.shape.rank == 0 && mat_info(L, &l)) {
            *out = l;
            out->skew *= fabs(R->num);
            out->gen *= fabs(R->num);
            out->alpha *= R->num;
            return true;
        }
        if (!mat_info(L, &l) || !mat_info(R, &r))
            return false;
        out->gen = mat_norm(&l) * mat_norm(&r); /* a product has no structure we use */
        out->unbounded = l.unbounded ? l.unbounded : r.unbounded;
        out->unbounded_span = l.unbounded ? l.unbounded_span : r.unbounded_span;
        return true;
    }
    default:
        return false;
    }
}

/* |v|_2 bound of a parameter-only vector or scalar expression; INFINITY if
 * it has no bound (we only need it for elementwise products). */
static double vec_bound(const Expr *e)
{
    e = expr_unlet(e);
    if (e->has_value && e->type.shape.rank == 0)
        return fabs(e->num);
    return INFINITY;
}

static double blame(Blame *b, const char *what, const Param *p, Span sp)
{
    if (!b->what) {
        b->what = what;
        b->param = p;
        b->span = sp;
    }
    return INFINITY;
}

static bool model_let(const LipCtx *cx, const Sym *s)
{
    return s->kind == S_LET && s->order >= 0 && s->order < cx->m->ndecls && cx->m->decls[s->order] == s->decl;
}

/* For join(s1, ..., sk) of distinct states: in a layer context (states
 * weighted 1) -1; in a model context, the group all of them belong to; -2
 * otherwise. */
static int join_of_states(const Expr *e, const LipCtx *cx)
{
    int g = -2;
    for (const Expr *x = e->args.head; x; x = x->next) {
        const Expr *v = expr_unlet(x);
        if (v->kind != E_NAME || !v->sym || v->sym->kind != S_STATE)
            return -2;
        for (const Expr *y = e->args.head; y != x; y = y->next)
            if (expr_unlet(y)->sym == v->sym)
                return -2;
        int vg = !cx->state_w ? -1 : cx->state_group ? cx->state_group[v->sym->state->index] : -2;
        if (cx->state_w && vg < 0)
            return -2;
        if (x != e->args.head && vg != g)
            return -2;
        g = vg;
    }
    return g;
}

double expr_lipschitz(const Expr *e0, const LipCtx *cx, Blame *b)
{
    const Expr *e = e0;
    while (e->kind == E_NAME && e->sym && e->sym->kind == S_LET && e->sym->expr && !model_let(cx, e->sym))
        e = e->sym->expr; /* a let inside a block: part of the same expression */
    if (e->type.vary != VARY_SAMPLE)
        return 0; /* constant with respect to the sample */
    switch (e->kind) {
    case E_NAME:
        if (e->sym && e->sym->kind == S_INPUT) {
            if (isinf(cx->input_w))
                return blame(b, "the block reads the model's input: a layer map is bounded as a function of the state only", NULL,
                             e->span);
            return cx->input_w;
        }
        if (e->sym && e->sym->kind == S_STATE)
            return cx->state_w ? cx->state_w[e->sym->state->index] : 1;
        if (e->sym && e->sym->kind == S_OUTPUT)
            return expr_lipschitz(e->sym->expr, cx, b);
        if (e->sym && model_let(cx, e->sym)) {
            if (!cx->let_w)
                return blame(b, "the block reads a value computed before it: a layer map is bounded as a function of the state only",
                             NULL, e->span);
            return cx->let_w[e->sym->order];
        }
        return blame(b, "a value the checker cannot follow", NULL, e->span);
    case E_NEG:
        return expr_lipschitz(e->lhs, cx, b);
    case E_ADD:
    case E_SUB:
        return expr_lipschitz(e->lhs, cx, b) + expr_lipschitz(e->rhs, cx, b);
    case E_MUL: {
        const Expr *L = expr_unlet(e->lhs), *R = expr_unlet(e->rhs);
        if (L->type.vary != VARY_SAMPLE || R->type.vary != VARY_SAMPLE) {
            const Expr *k = L->type.vary != VARY_SAMPLE ? L : R, *x = k == L ? R : L;
            double kn;
            if (k->type.shape.rank == 2) {
                MatInfo mi;
                if (!mat_info(k, &mi))
                    return blame(b, "a matrix expression the checker cannot bound", NULL, k->span);
                kn = mat_norm(&mi);
                if (isinf(kn))
                    return blame(b, "has no norm bound", mi.unbounded, mi.unbounded_span);
            } else {
                kn = vec_bound(k);
                if (isinf(kn))
                    return blame(b, "a factor whose size has no bound", param_of(k), k->span);
            }
            return kn * expr_lipschitz(x, cx, b);
        }
        if (!b->what)
            b->fix = "multiply a sample value by parameters or constants only, e.g. A * u or c * u";
        return blame(b, "a product of two values that depend on the sample is not globally Lipschitz", NULL, e->op_span);
    }
    case E_DIV: {
        const Expr *R = expr_unlet(e->rhs);
        if (R->type.vary == VARY_SAMPLE || !R->has_value)
            return blame(b, "a division by a value that is not a constant is not globally Lipschitz", NULL, e->op_span);
        return expr_lipschitz(e->lhs, cx, b) / fabs(R->num);
    }
    case E_POW:
        if (e->rhs->has_value && e->rhs->num == 1)
            return expr_lipschitz(e->lhs, cx, b);
        return blame(b, "a power is not globally Lipschitz", NULL, e->op_span);
    case E_INDEX:
        return expr_lipschitz(e->lhs, cx, b);
    case E_CALL: {
        ActFacts af;
        if (act_facts(e, &af)) {
            if (isinf(af.lip)) {
                if (!b->what)
                    b->fix = "use a Lipschitz activation (tanh, sigmoid, softplus, relu), or keep exp out of the "
                             "classifier's path";
                return blame(b, "exp is not globally Lipschitz", NULL, e->span);
            }
            return af.lip * expr_lipschitz(e->args.head, cx, b);
        }
        switch ((Builtin)e->fn) {
        case FN_IDENTITY:
        case FN_PAD:
        case FN_SOFTMAX: /* the softmax Jacobian diag(p) - p p' has norm <= 1 */
            return expr_lipschitz(e->args.head, cx, b);
        case FN_JOIN: {
            int g = join_of_states(e, cx);
            if (g != -2) /* distinct states: a coordinate projection of their joint vector */
                return g >= 0 ? cx->group_w[g] : 1;
            double s = 0;
            for (const Expr *x = e->args.head; x; x = x->next) {
                double l = expr_lipschitz(x, cx, b);
                s += l * l;
            }
            return sqrt(s);
        }
        case FN_MEAN_SPACE: { /* a mean over n = H W positions: 1/sqrt(n) */
            const Shape s = e->args.head->type.shape;
            return expr_lipschitz(e->args.head, cx, b) / sqrt((double)s.dim[s.rank - 1] * s.dim[s.rank - 2]);
        }
        case FN_GPOOL: /* a mean over the group axis */
            return expr_lipschitz(e->args.head, cx, b) / sqrt((double)e->args.head->type.shape.dim[1]);
        case FN_LIFT:
        case FN_GCONV:
        case FN_GCONV_T:
            return blame(b, "is a group-convolution kernel, which has no norm bound yet", param_of(e->args.head),
                         e->args.head->span);
        case FN_SUM:
            return sqrt((double)shape_size(e->args.head->type.shape)) * expr_lipschitz(e->args.head, cx, b);
        case FN_MEAN:
            return expr_lipschitz(e->args.head, cx, b) / sqrt((double)shape_size(e->args.head->type.shape));
        default:
            return blame(b, "a function the checker has no Lipschitz bound for", NULL, e->span);
        }
    }
    default:
        return blame(b, "an expression the checker cannot bound", NULL, e->span);
    }
}

/* ---- the certificate -------------------------------------------------------- */

Certificate *check_model(Arena *a, Diags *d, const StepProgram *p)
{
    (void)d;
    Certificate *c = ARENA_NEW(a, Certificate);
    c->p = p;
    c->lipschitz = INFINITY;
    c->block_step_lip = ARENA_ARRAY(a, double, p->nsegs + 1);
    c->block_nonexpansive = ARENA_ARRAY(a, bool, p->nsegs + 1);
    for (int i = 0; i < REQ_COUNT; i++) {
        c->v[i].kind = (ReqKind)i;
        c->v[i].bound = NAN;
        c->v[i].level = LEVEL_UNCHECKED;
    }
    for (int i = 0; i < p->m->nreqs; i++) {
        Verdict *v = &c->v[p->m->reqs[i].kind];
        v->required = true;
        v->req_span = p->m->reqs[i].span;
        if (p->m->reqs[i].kind == REQ_LIPSCHITZ)
            v->bound = p->m->reqs[i].bound;
    }
    check_stable(a, c);
    check_lipschitz(a, c);      /* counts the layers proved non-expansive as 1 */
    check_nonexpansive(a, c);   /* then: L <= 1 */
    check_invertible(a, c);
    return c;
}

int check_report(Diags *d, const Certificate *c)
{
    int failed = 0;
    for (int i = 0; i < c->p->m->nreqs; i++) {
        const Req *q = &c->p->m->reqs[i];
        const Verdict *v = &c->v[q->kind];
        if (v->level == LEVEL_UNCHECKED) {
            Diag *g = diag_warning(d, q->span, "guarantee '%s' is not checked yet", req_names[q->kind]);
            diag_note(d, g, NO_SPAN, "spdlc cannot prove or refute it; it is not part of the certificate");
            continue;
        }
        if (v->holds)
            continue;
        failed++;
        Diag *g = diag_error(d, q->span, "required guarantee '%s' does not hold: %s", req_names[q->kind],
                             v->reason ? v->reason : "refused");
        for (const VNote *n = v->notes; n; n = n->next)
            diag_note(d, g, n->span, "%s", n->msg);
    }
    return failed;
}

static void print_text(FILE *out, const Certificate *c)
{
    const Model *m = c->p->m;
    fprintf(out, "certificate for model %s\n", m->name);
    bool any = false;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < REQ_COUNT; k++) {
            const Verdict *v = &c->v[k];
            if (!v->evaluated || v->required != (pass == 0))
                continue;
            if (pass == 1 && !any)
                fprintf(out, "  also (not required):\n");
            any = true;
            char head[64];
            snprintf(head, sizeof head, "%s", req_names[k]);
            for (int i = 0; i < m->nreqs; i++)
                if (k == REQ_LIPSCHITZ && m->reqs[i].kind == REQ_LIPSCHITZ)
                    snprintf(head, sizeof head, "lipschitz <= %g", m->reqs[i].bound);
            fprintf(out, "  %-16s %-6s %-10s %s\n", head, v->holds ? "holds" : "FAILS", level_names[v->level],
                    v->reason ? v->reason : "");
            if (v->theorem && v->required)
                fprintf(out, "  %-16s theorem: %s\n", "", v->theorem);
            if (v->reference && v->required)
                fprintf(out, "  %-16s reference: %s\n", "", v->reference);
        }
    for (int i = 0; i < m->nreqs; i++)
        if (c->v[m->reqs[i].kind].level == LEVEL_UNCHECKED)
            fprintf(out, "  %-16s %-6s %-10s no checker decides this guarantee yet\n", req_names[m->reqs[i].kind], "-",
                    "unchecked");
}

static void print_json(FILE *out, const Certificate *c)
{
    fputs(", \"guarantees\": {", out);
    bool first = true;
    for (int k = 0; k < REQ_COUNT; k++) {
        const Verdict *v = &c->v[k];
        if (!v->evaluated && !(v->required && v->level == LEVEL_UNCHECKED))
            continue;
        fprintf(out, "%s\"%s\": {\"holds\": %s, \"level\": ", first ? "" : ", ", req_names[k],
                v->holds ? "true" : "false");
        first = false;
        /* DESIGN §4's levels; a guarantee nobody checks yet is reported refused */
        json_str(out, v->level == LEVEL_UNCHECKED ? "refused" : level_names[v->level]);
        fputs(", \"bound\": ", out);
        json_num(out, v->bound);
        fputs(", \"reason\": ", out);
        json_str(out, v->level == LEVEL_UNCHECKED ? "not checked yet" : v->reason ? v->reason : "");
        fprintf(out, ", \"required\": %s", v->required ? "true" : "false");
        if (v->theorem) {
            fputs(", \"theorem\": ", out);
            json_str(out, v->theorem);
        }
        if (v->reference) {
            fputs(", \"reference\": ", out);
            json_str(out, v->reference);
        }
        if (v->inverse_kind) {
            fputs(", \"inverse\": ", out);
            json_str(out, v->inverse_kind);
            fputs(", \"logdet\": ", out);
            json_str(out, v->logdet_kind ? v->logdet_kind : "none");
            if (v->logdet_terms)
                fprintf(out, ", \"logdet_terms\": %d, \"logdet_truncation\": %.17g", v->logdet_terms,
                        v->logdet_truncation);
            if (v->fixed_point_iters)
                fprintf(out, ", \"iterations\": %d", v->fixed_point_iters);
        }
        fputc('}', out);
    }
    fputs("}}\n", out);
}

void check_print(FILE *out, Arena *a, const Certificate *c, bool json)
{
    (void)a;
    if (json)
        print_json(out, c);
    else
        print_text(out, c);
}

/* ---- vector fields ---------------------------------------------------------------- */

double block_step(const Block *b)
{
    if (!b->learned)
        return b->h;
    return b->has_hmax ? b->hmax : b->t1 - b->t0;
}

static bool is_var(const Expr *e, const State *v)
{
    e = expr_unlet(e);
    return e && e->kind == E_NAME && e->sym && e->sym->kind == S_STATE && e->sym->state == v;
}

/* e = M * v, M * v + b, b + M * v, M * v - b with M and b parameter-only. */
static bool match_affine(const Expr *e0, const State *v, const Expr **M)
{
    const Expr *e = expr_unlet(e0);
    if (e->kind == E_ADD || e->kind == E_SUB) {
        const Expr *L = expr_unlet(e->lhs), *R = expr_unlet(e->rhs);
        if (R->type.vary != VARY_SAMPLE)
            return match_affine(L, v, M);
        if (e->kind == E_ADD && L->type.vary != VARY_SAMPLE)
            return match_affine(R, v, M);
        return false;
    }
    if (e->kind == E_MUL && expr_unlet(e->lhs)->type.vary != VARY_SAMPLE && expr_unlet(e->lhs)->type.shape.rank == 2 &&
        is_var(e->rhs, v)) {
        *M = expr_unlet(e->lhs);
        return true;
    }
    return false;
}

/* e = c * core: strips constant scalar factors and negations. */
static const Expr *strip_scalar(const Expr *e0, double *c)
{
    const Expr *e = expr_unlet(e0);
    *c = 1;
    for (int guard = 0; guard < 16; guard++) {
        if (e->kind == E_NEG) {
            *c = -*c;
            e = expr_unlet(e->lhs);
        } else if (e->kind == E_MUL && expr_unlet(e->lhs)->has_value && expr_unlet(e->lhs)->type.shape.rank == 0) {
            *c *= expr_unlet(e->lhs)->num;
            e = expr_unlet(e->rhs);
        } else if (e->kind == E_MUL && expr_unlet(e->rhs)->has_value && expr_unlet(e->rhs)->type.shape.rank == 0) {
            *c *= expr_unlet(e->rhs)->num;
            e = expr_unlet(e->lhs);
        } else {
            break;
        }
    }
    return e;
}

/* e = [c *] act(inner) or [c *] inner: peels a constant factor and one activation. */
static const Expr *peel(const Expr *e0, double *c, ActFacts *af)
{
    const Expr *e = strip_scalar(e0, c);
    if (act_facts(e, af))
        return expr_unlet(e->args.head);
    *af = (ActFacts){1, 1, 1, true}; /* no activation: the identity */
    return e;
}

static const Param *mat_param(const Expr *e)
{
    e = expr_unlet(e);
    return e->kind == E_NAME && e->sym && e->sym->kind == S_PARAM ? e->sym->param : NULL;
}

/* M2 is the transpose of M (as written: K and K'), up to sign *sign. */
static bool transposed(const Expr *M, const Expr *M2, double *sign)
{
    M = expr_unlet(M);
    M2 = expr_unlet(M2);
    *sign = 1;
    if (M2->kind == E_NEG) {
        *sign = -1;
        M2 = expr_unlet(M2->lhs);
    }
    if (M2->kind == E_TRANSPOSE && mat_param(M2->lhs) && mat_param(M2->lhs) == mat_param(M))
        return true;
    if (M->kind == E_TRANSPOSE && mat_param(M->lhs) && mat_param(M->lhs) == mat_param(M2))
        return true;
    return false;
}

static const Expr *equation(const Block *b, int k)
{
    int n = 0;
    for (int i = 0; i < b->nitems; i++)
        if (b->items[i]->kind == D_EQUATION && n++ == k)
            return b->items[i]->value;
    return NULL;
}

static Span equation_span(const Block *b, int k)
{
    int n = 0;
    for (int i = 0; i < b->nitems; i++)
        if (b->items[i]->kind == D_EQUATION && n++ == k)
            return b->items[i]->span;
    return b->span;
}

void field_classify(const Block *b, FieldInfo *fi)
{
    memset(fi, 0, sizeof *fi);
    fi->cls = FIELD_GENERIC;
    fi->span = b->span;
    fi->why = "it is not sigma(M u + b), -M' sigma(M u + b) or a Hamiltonian pair";
    if (b->kind != BLOCK_FLOW)
        return;
    if (b->nvars == 1) {
        const State *u = b->vars[0];
        const Expr *rhs = equation(b, 0), *M = NULL;
        fi->span = equation_span(b, 0);
        double c;
        ActFacts af;
        const Expr *inner = peel(rhs, &c, &af);
        if (match_affine(inner, u, &M) && mat_info(M, &fi->mat)) {
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
        const Expr *e = strip_scalar(rhs, &c_out);
        const Expr *M2 = e->kind == E_MUL ? strip_scalar(e->lhs, &c_mat) : NULL;
        if (M2 && M2->type.shape.rank == 2 && M2->type.vary != VARY_SAMPLE) {
            const Expr *in2 = peel(e->rhs, &c, &af);
            double tsign;
            if (match_affine(in2, u, &M) && transposed(M, M2, &tsign) && mat_info(M, &fi->mat)) {
                double coef = c_out * c_mat * tsign * c;
                if (coef < 0 && af.monotone && af.dmin >= 0) {
                    fi->cls = FIELD_GRADIENT;
                    fi->act = af;
                    fi->scale = -coef;
                    return;
                }
                fi->why = coef >= 0 ? "M' sigma(M u + b) with a positive sign is a gradient ascent: its Jacobian is positive semidefinite"
                                    : "the gradient form needs a monotone activation with sigma' >= 0";
                return;
            }
        }
        return;
    }
    if (b->nvars == 2) {
        const State *y = b->vars[0], *z = b->vars[1];
        double c1, c2;
        ActFacts a1, a2;
        const Expr *M1 = NULL, *M2 = NULL;
        const Expr *i1 = peel(equation(b, 0), &c1, &a1), *i2 = peel(equation(b, 1), &c2, &a2);
        fi->span = span_join(equation_span(b, 0), equation_span(b, 1));
        double tsign;
        if (match_affine(i1, z, &M1) && match_affine(i2, y, &M2) && transposed(M1, M2, &tsign) &&
            mat_info(M1, &fi->mat)) {
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
