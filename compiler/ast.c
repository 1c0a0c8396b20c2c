/* ast.c - AST constructors called by the grammar actions, and the AST dump.
 * Constructors only allocate and link; every judgement about meaning is left
 * to the resolver, which can report it with a location. */
#include "ast.h"

#include <string.h>

static Span tok_span(Token t) { return t.span; }

Name ast_name(Arena *a, const Diags *d, Token t)
{
    const SourceFile *f = diag_file(d, t.span.file);
    Name n = {"", t.span};
    if (f && t.span.off + t.span.len <= f->len) {
        const char *s = f->text + t.span.off;
        size_t len = t.span.len;
        if (len >= 1 && s[0] == '"') { /* a string: drop the quotes */
            len -= (len >= 2 && s[len - 1] == '"') ? 2 : 1;
            s++;
        }
        n.s = arena_strndup(a, s, len);
    }
    return n;
}

static Expr *new_expr(Arena *a, ExprKind k, Span sp)
{
    Expr *e = ARENA_NEW(a, Expr);
    e->kind = k;
    e->span = sp;
    e->op_span = sp;
    e->depth = 1;
    return e;
}

static int list_depth(ExprList l)
{
    int d = 0;
    for (const Expr *x = l.head; x; x = x->next)
        if (x->depth > d)
            d = x->depth;
    return d;
}

Expr *ast_num(Arena *a, Token t)
{
    Expr *e = new_expr(a, E_NUM, tok_span(t));
    e->num = t.num;
    return e;
}

Expr *ast_ident(Arena *a, const Diags *d, Token t)
{
    Expr *e = new_expr(a, E_NAME, tok_span(t));
    e->name = ast_name(a, d, t);
    return e;
}

Expr *ast_unary(Arena *a, ExprKind k, Token op, Expr *x)
{
    Expr *e = new_expr(a, k, span_join(tok_span(op), x->span));
    e->op_span = tok_span(op);
    e->lhs = x;
    e->depth = x->depth + 1;
    return e;
}

Expr *ast_binary(Arena *a, ExprKind k, Expr *l, Token op, Expr *r)
{
    Expr *e = new_expr(a, k, span_join(l->span, r->span));
    e->op_span = tok_span(op);
    e->lhs = l;
    e->rhs = r;
    e->depth = (l->depth > r->depth ? l->depth : r->depth) + 1;
    return e;
}

Expr *ast_postfix(Arena *a, ExprKind k, Expr *l, ExprList args, Token close)
{
    Expr *e = new_expr(a, k, span_join(l->span, tok_span(close)));
    e->op_span = l->span;
    e->lhs = l;
    e->args = args;
    e->depth = (l->depth > list_depth(args) ? l->depth : list_depth(args)) + 1;
    return e;
}

Expr *ast_array(Arena *a, Token open, ExprList args, Token close)
{
    Expr *e = new_expr(a, E_ARRAY, span_join(tok_span(open), tok_span(close)));
    e->args = args;
    e->depth = list_depth(args) + 1;
    return e;
}

Expr *ast_paren(Expr *e, Token open, Token close)
{
    /* Keep the inner node; widen its span so carets cover the parentheses. */
    e->span = span_join(tok_span(open), tok_span(close));
    return e;
}

ExprList ast_exprs_add(ExprList l, Expr *e)
{
    e->next = NULL;
    if (l.tail)
        l.tail->next = e;
    else
        l.head = e;
    l.tail = e;
    l.len++;
    return l;
}

TypeExpr *ast_type(Arena *a, Name name)
{
    TypeExpr *t = ARENA_NEW(a, TypeExpr);
    t->name = name;
    t->span = name.span;
    return t;
}

TypeExpr *ast_type_arg(Arena *a, TypeExpr *t, Expr *lo, Expr *hi)
{
    TypeArg *arg = ARENA_NEW(a, TypeArg);
    arg->lo = lo;
    arg->hi = hi;
    arg->span = hi ? span_join(lo->span, hi->span) : lo->span;
    if (t->args_tail)
        t->args_tail->next = arg;
    else
        t->args = arg;
    t->args_tail = arg;
    t->nargs++;
    return t;
}

TypeExpr *ast_type_end(TypeExpr *t, Token close)
{
    t->span = span_join(t->span, tok_span(close));
    return t;
}

Decl *ast_decl(Arena *a, DeclKind k, Token start, Name name, Token end)
{
    Decl *d = ARENA_NEW(a, Decl);
    d->kind = k;
    d->span = span_join(tok_span(start), tok_span(end));
    d->name = name;
    return d;
}

Decl *ast_decl_typed(Decl *d, TypeExpr *t)
{
    d->type = t;
    return d;
}

Decl *ast_decl_value(Decl *d, Expr *e)
{
    d->value = e;
    return d;
}

Decl *ast_decl_on(Decl *d, Name on)
{
    d->on = on;
    return d;
}

Decl *ast_decl_param(Arena *a, Token start, Name name, TypeExpr *t, Decl *opts, Token end)
{
    Decl *d = opts ? opts : ARENA_NEW(a, Decl);
    d->kind = D_PARAM;
    d->span = span_join(tok_span(start), tok_span(end));
    d->name = name;
    d->type = t;
    return d;
}

Decl *ast_param_per_layer(Arena *a, Decl *opts, Token per, Token layer)
{
    Decl *d = opts ? opts : ARENA_NEW(a, Decl);
    if (d->per_layer++ == 0)
        d->per_layer_span = span_join(tok_span(per), tok_span(layer));
    else
        d->per_layer_span = span_join(tok_span(per), tok_span(layer)); /* point at the repeat */
    return d;
}

Decl *ast_param_where(Arena *a, Decl *opts, Token where, Name fn, Name of, Expr *bound)
{
    Decl *d = opts ? opts : ARENA_NEW(a, Decl);
    d->nwhere++;
    d->where_span = span_join(tok_span(where), bound->span);
    d->norm_fn = fn;
    d->norm_of = of;
    d->norm_bound = bound;
    return d;
}

Decl *ast_flow(Arena *a, Token start, Expr *t0, Expr *t1, Expr *n, Name scheme, DeclList body, Token end)
{
    Decl *d = ARENA_NEW(a, Decl);
    d->kind = D_FLOW;
    d->span = span_join(tok_span(start), tok_span(end));
    d->name = (Name){"flow", tok_span(start)};
    d->t0 = t0;
    d->t1 = t1;
    d->layers = n;
    d->scheme = scheme;
    d->body = body;
    return d;
}

Decl *ast_repeat(Arena *a, Token start, Expr *n, DeclList body, Token end)
{
    Decl *d = ARENA_NEW(a, Decl);
    d->kind = D_REPEAT;
    d->span = span_join(tok_span(start), tok_span(end));
    d->name = (Name){"repeat", tok_span(start)};
    d->layers = n;
    d->body = body;
    return d;
}

Decl *ast_equation(Arena *a, const Diags *d, Token deriv, Expr *e, Token end)
{
    Decl *q = ARENA_NEW(a, Decl);
    q->kind = D_EQUATION;
    q->span = span_join(tok_span(deriv), tok_span(end));
    /* `dy/dt` names y: skip the leading 'd' and the trailing "/dt". */
    Name n = ast_name(a, d, deriv);
    size_t len = strlen(n.s);
    n.s = arena_strndup(a, n.s + 1, len >= 4 ? len - 4 : 0);
    n.span = (Span){deriv.span.file, deriv.span.off + 1, deriv.span.len >= 4 ? deriv.span.len - 4 : 0};
    q->name = n;
    q->value = e;
    return q;
}

Decl *ast_assign(Arena *a, Name target, Expr *e, Token end)
{
    Decl *q = ARENA_NEW(a, Decl);
    q->kind = D_ASSIGN;
    q->span = span_join(target.span, tok_span(end));
    q->name = target;
    q->value = e;
    return q;
}

Decl *ast_steps(Arena *a, Token start, Expr *hmax, Token end)
{
    Decl *q = ARENA_NEW(a, Decl);
    q->kind = D_STEPS;
    q->span = span_join(tok_span(start), tok_span(end));
    q->name = (Name){"steps", tok_span(start)};
    q->hmax = hmax;
    return q;
}

Decl *ast_require(Arena *a, Token start, ReqList reqs, Token end)
{
    Decl *q = ARENA_NEW(a, Decl);
    q->kind = D_REQUIRE;
    q->span = span_join(tok_span(start), tok_span(end));
    q->name = (Name){"require", tok_span(start)};
    q->reqs = reqs;
    return q;
}

Require *ast_req(Arena *a, Name name, Expr *bound, Name *arg, Span end)
{
    Require *r = ARENA_NEW(a, Require);
    r->name = name;
    r->bound = bound;
    if (arg)
        r->arg = *arg;
    r->span = span_join(name.span, end);
    return r;
}

Require *ast_req_sized(Require *r, Expr *size, Token close)
{
    r->arg_size = size;
    r->arg.span = span_join(r->arg.span, tok_span(close));
    return r;
}

ReqList ast_reqs_add(ReqList l, Require *r)
{
    if (l.tail)
        l.tail->next = r;
    else
        l.head = r;
    l.tail = r;
    return l;
}

DeclList ast_decls_add(DeclList l, Decl *d)
{
    d->next = NULL;
    if (l.tail)
        l.tail->next = d;
    else
        l.head = d;
    l.tail = d;
    return l;
}

Item *ast_item(Arena *a, ItemKind k, Token start, Name name, Token end, int file)
{
    Item *it = ARENA_NEW(a, Item);
    it->kind = k;
    it->span = span_join(tok_span(start), tok_span(end));
    it->name = name;
    it->file = file;
    return it;
}

Item *ast_item_end(Item *it, Token end)
{
    it->span = span_join(it->span, tok_span(end));
    return it;
}

Item *ast_item_value(Item *it, Expr *value, Token end)
{
    it->value = value;
    return ast_item_end(it, end);
}

Item *ast_scheme_field(Arena *a, Item *s, Name name, Expr *value)
{
    SchemeField *f = ARENA_NEW(a, SchemeField);
    f->name = name;
    f->value = value;
    if (s->fields_tail)
        s->fields_tail->next = f;
    else
        s->fields = f;
    s->fields_tail = f;
    s->span = span_join(s->span, value->span);
    return s;
}

Item *ast_def_param(Arena *a, Item *def, Name param)
{
    (void)a;
    if (def->nparams < (int)(sizeof def->params / sizeof def->params[0]))
        def->params[def->nparams] = param;
    def->nparams++;
    return def;
}

Item *ast_model(Item *m, DeclList decls)
{
    m->decls = decls;
    return m;
}

void ast_add_item(Ast *ast, Item *it)
{
    if (ast->items_tail)
        ast->items_tail->next = it;
    else
        ast->items = it;
    ast->items_tail = it;
}

/* ---- dump ---------------------------------------------------------------- */

static const char *expr_op[] = {
    [E_ADD] = "+", [E_SUB] = "-", [E_MUL] = "*", [E_EMUL] = ".*", [E_DIV] = "/", [E_POW] = "^", [E_RANGE] = ":",
};

void ast_dump_expr(FILE *out, const Expr *e)
{
    switch (e->kind) {
    case E_NUM: fprintf(out, "%.17g", e->num); break;
    case E_NAME: fputs(e->name.s, out); break;
    case E_NEG: fputs("(-", out); ast_dump_expr(out, e->lhs); fputc(')', out); break;
    case E_ADD: case E_SUB: case E_MUL: case E_EMUL: case E_DIV: case E_POW: case E_RANGE:
        fputc('(', out);
        ast_dump_expr(out, e->lhs);
        fprintf(out, " %s ", expr_op[e->kind]);
        ast_dump_expr(out, e->rhs);
        fputc(')', out);
        break;
    case E_TRANSPOSE: ast_dump_expr(out, e->lhs); fputc('\'', out); break;
    case E_CALL: case E_INDEX: case E_ARRAY:
        if (e->kind != E_ARRAY)
            ast_dump_expr(out, e->lhs);
        fputc(e->kind == E_CALL ? '(' : '[', out);
        for (const Expr *x = e->args.head; x; x = x->next) {
            ast_dump_expr(out, x);
            if (x->next)
                fputs(", ", out);
        }
        fputc(e->kind == E_CALL ? ')' : ']', out);
        break;
    }
}

static void dump_type(FILE *out, const TypeExpr *t)
{
    fprintf(out, "%s[", t->name.s);
    for (const TypeArg *a = t->args; a; a = a->next) {
        ast_dump_expr(out, a->lo);
        if (a->hi) {
            fputs(" -> ", out);
            ast_dump_expr(out, a->hi);
        }
        if (a->next)
            fputs(", ", out);
    }
    fputc(']', out);
}

static const char *decl_kw[] = {
    [D_INPUT] = "input", [D_LABEL] = "label", [D_TARGET] = "target", [D_STATE] = "state",
    [D_PARAM] = "param", [D_GROUP] = "group", [D_FLOW] = "flow", [D_REPEAT] = "repeat",
    [D_OUTPUT] = "output", [D_LOSS] = "loss", [D_REQUIRE] = "require", [D_LET] = "let",
    [D_EQUATION] = "equation", [D_ASSIGN] = "assign", [D_STEPS] = "steps",
};

static void dump_decls(FILE *out, const Decl *d, int indent)
{
    for (; d; d = d->next) {
        fprintf(out, "%*s%s", indent, "", decl_kw[d->kind]);
        switch (d->kind) {
        case D_FLOW:
            fputs(" over [", out);
            ast_dump_expr(out, d->t0);
            fputs(", ", out);
            ast_dump_expr(out, d->t1);
            fputs("] in ", out);
            ast_dump_expr(out, d->layers);
            fprintf(out, " layers by %s\n", d->scheme.s);
            dump_decls(out, d->body.head, indent + 2);
            continue;
        case D_REPEAT:
            fputc(' ', out);
            ast_dump_expr(out, d->layers);
            fputs(" layers\n", out);
            dump_decls(out, d->body.head, indent + 2);
            continue;
        case D_REQUIRE:
            for (const Require *r = d->reqs.head; r; r = r->next) {
                fprintf(out, " %s", r->name.s);
                if (r->bound) {
                    fputs(" <= ", out);
                    ast_dump_expr(out, r->bound);
                }
                if (r->arg.s) {
                    fprintf(out, "(%s", r->arg.s);
                    if (r->arg_size) {
                        fputc('(', out);
                        ast_dump_expr(out, r->arg_size);
                        fputc(')', out);
                    }
                    fputc(')', out);
                }
                if (r->next)
                    fputc(',', out);
            }
            break;
        case D_STEPS:
            fputs(" learned", out);
            if (d->hmax) {
                fputs(" <= ", out);
                ast_dump_expr(out, d->hmax);
            }
            break;
        case D_GROUP:
            fprintf(out, " %s", d->name.s);
            if (d->value) {
                fputc('(', out);
                ast_dump_expr(out, d->value);
                fputc(')', out);
            }
            fprintf(out, " acts on %s", d->on.s);
            break;
        default:
            if (d->name.s)
                fprintf(out, " %s", d->name.s);
            if (d->type) {
                fputs(" : ", out);
                dump_type(out, d->type);
            }
            if (d->per_layer)
                fputs(" per layer", out);
            if (d->nwhere) {
                fprintf(out, " where %s(%s) <= ", d->norm_fn.s, d->norm_of.s);
                ast_dump_expr(out, d->norm_bound);
            }
            if (d->value) {
                fputs(" = ", out);
                ast_dump_expr(out, d->value);
            }
        }
        fputc('\n', out);
    }
}

void ast_dump(FILE *out, const Ast *ast)
{
    for (const Item *it = ast->items; it; it = it->next) {
        switch (it->kind) {
        case I_IMPORT: fprintf(out, "import \"%s\"\n", it->name.s); break;
        case I_SCHEME:
            fprintf(out, "scheme %s\n", it->name.s);
            for (const SchemeField *f = it->fields; f; f = f->next) {
                fprintf(out, "  %s = ", f->name.s);
                ast_dump_expr(out, f->value);
                fputc('\n', out);
            }
            break;
        case I_DEF:
            fprintf(out, "def %s(", it->name.s);
            for (int i = 0; i < it->nparams && i < 16; i++)
                fprintf(out, "%s%s", i ? ", " : "", it->params[i].s);
            fputs(") = ", out);
            ast_dump_expr(out, it->value);
            fputc('\n', out);
            break;
        case I_LET:
            fprintf(out, "let %s = ", it->name.s);
            ast_dump_expr(out, it->value);
            fputc('\n', out);
            break;
        case I_MODEL:
            fprintf(out, "model %s\n", it->name.s);
            dump_decls(out, it->decls.head, 2);
            break;
        }
    }
}

const char *shape_str(Arena *a, Shape s)
{
    char buf[96];
    int n = snprintf(buf, sizeof buf, "R[");
    if (s.rank == 0)
        return "scalar";
    for (int i = 0; i < s.rank; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%d", i ? "," : "", s.dim[i]);
    snprintf(buf + n, sizeof buf - (size_t)n, "]");
    return arena_strdup(a, buf);
}
