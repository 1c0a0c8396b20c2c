/* ast.h - the syntax tree of a .spn file, as the parser builds it.
 *
 * Nodes are plain structs in the arena; every node keeps the Span of the
 * source it came from, and binary operators also keep the operator's span so
 * that shape errors point at the operator. The resolver annotates expressions
 * in place (the fields after "resolved"). */
#ifndef SPDL_AST_H
#define SPDL_AST_H

#include <stdbool.h>

#include "arena.h"
#include "diag.h"
#include "lexer.h"

typedef struct Expr Expr;
typedef struct Decl Decl;
typedef struct Item Item;

typedef struct Name {
    const char *s;   /* arena copy */
    Span span;
} Name;

/* Singly linked lists with a tail pointer: left recursion in the grammar
 * appends in O(1) and keeps the source order. */
typedef struct ExprList {
    Expr *head, *tail;
    int len;
} ExprList;

typedef enum {
    E_NUM,       /* num */
    E_NAME,      /* name */
    E_NEG,       /* -lhs */
    E_ADD, E_SUB, E_MUL, E_EMUL, E_DIV, E_POW,  /* lhs op rhs; E_EMUL is `.*` */
    E_TRANSPOSE, /* lhs' */
    E_CALL,      /* lhs(args): lhs is a name or a transposed name */
    E_INDEX,     /* lhs[args]: each arg an index or E_RANGE */
    E_RANGE,     /* lhs:rhs inside an index */
    E_ARRAY,     /* [args] */
} ExprKind;

/* How the resolver classified a value. */
typedef enum {
    VARY_CONST,   /* a compile-time number */
    VARY_PARAM,   /* depends on parameters only: computed once per layer */
    VARY_SAMPLE,  /* depends on the input, a state or a label */
} Vary;

enum { MAX_RANK = 5 };   /* user tensors have rank <= 4; gconv kernels need 5 */

typedef struct Shape {
    int rank;               /* 0 for a scalar */
    int dim[MAX_RANK];
} Shape;

/* The action of a declared group on a tensor (DESIGN §4 field types). */
typedef enum {
    FIELD_NONE,       /* no group in the model, or not yet known */
    FIELD_TRIVIAL,    /* invariant: the group does not move it */
    FIELD_SPATIAL,    /* [c, H, W]: the group rotates/reflects the grid */
    FIELD_REGULAR,    /* [c, |G|, H, W]: rotates the grid, permutes the group axis */
    FIELD_REGULAR_VEC,/* [c, |G|]: permutes the group axis only */
    FIELD_BROKEN,     /* the value is not equivariant: see field_cause */
} FieldKind;

typedef struct Type {
    Shape shape;
    Vary vary;
    bool per_layer;         /* reads a `per layer` parameter */
    bool is_class;          /* a class label: shape [1], values 0..n-1 */
    int nclass;
    bool identity;          /* the polymorphic identity `I` (size from context) */
    FieldKind field;
    Span field_cause;       /* first operation that broke equivariance */
} Type;

struct Expr {
    ExprKind kind;
    Span span;          /* whole expression */
    Span op_span;       /* operator token, for binary/unary operators */
    double num;
    Name name;
    Expr *lhs, *rhs;
    ExprList args;
    Expr *next;         /* in an ExprList */
    int depth;          /* levels of the tree below and including this node */
    /* resolved */
    Type type;
    bool has_value;     /* constant folded: value in num */
    struct Sym *sym;    /* E_NAME: what it names */
    int fn;             /* E_CALL: the Builtin it calls (resolve.h) */
    bool poison;        /* an error was reported inside: do not report again */
};

typedef struct TypeArg {
    Expr *lo, *hi;      /* `lo -> hi` for lift/gconv channels; hi NULL otherwise */
    struct TypeArg *next;
    Span span;
} TypeArg;

typedef struct TypeExpr {
    Name name;          /* R, class, skew, orth, lu, lift, gconv */
    TypeArg *args, *args_tail;
    int nargs;
    Span span;
} TypeExpr;

typedef enum {
    D_INPUT, D_LABEL, D_TARGET, D_STATE, D_PARAM, D_GROUP,
    D_FLOW, D_REPEAT, D_OUTPUT, D_LOSS, D_REQUIRE, D_LET,
    /* inside flow and repeat blocks */
    D_EQUATION,  /* dy/dt = e */
    D_ASSIGN,    /* v = e */
    D_STEPS,     /* steps learned [<= hmax] */
} DeclKind;

typedef struct Require {
    Name name;          /* stable, lipschitz, nonexpansive, invertible, equivariant, invariant */
    Expr *bound;        /* lipschitz <= bound */
    Name arg;           /* equivariant(G) */
    Expr *arg_size;     /* equivariant(Z(n)): n; NULL for C4, D4 */
    Span span;
    struct Require *next;
} Require;

typedef struct DeclList {
    Decl *head, *tail;
} DeclList;

typedef struct ReqList {
    Require *head, *tail;
} ReqList;

struct Decl {
    DeclKind kind;
    Span span;          /* the whole declaration */
    Name name;          /* declared or assigned name; D_EQUATION: the state */
    TypeExpr *type;
    Expr *value;        /* initializer, rhs, loss */
    int per_layer;      /* how often `per layer` was written */
    Span per_layer_span;
    int nwhere;         /* how often `where` was written */
    Name norm_fn;       /* where norm_fn(norm_of) <= norm_bound */
    Name norm_of;
    Expr *norm_bound;
    Span where_span;
    Name on;            /* group G acts on `on` */
    /* flow / repeat */
    Expr *t0, *t1, *layers;
    Name scheme;
    DeclList body;
    Expr *hmax;         /* D_STEPS */
    ReqList reqs;       /* D_REQUIRE */
    Decl *next;
    void *sem;          /* resolver's record for this declaration */
};

typedef enum { I_IMPORT, I_SCHEME, I_DEF, I_LET, I_MODEL } ItemKind;

typedef struct SchemeField {
    Name name;          /* c, a, b */
    Expr *value;
    struct SchemeField *next;
} SchemeField;

struct Item {
    ItemKind kind;
    Span span;
    Name name;          /* scheme/def/let/model name; I_IMPORT: the path string */
    SchemeField *fields, *fields_tail;
    Name params[16];    /* def parameters */
    int nparams;
    Expr *value;        /* def body, let value */
    DeclList decls;     /* I_MODEL */
    int file;           /* the file the item is in */
    bool prelude;       /* from the implicitly loaded standard library */
    Item *next;
};

typedef struct Ast {
    Item *items, *items_tail;
} Ast;

/* Constructors, one per grammar action. */
Name  ast_name(Arena *a, const Diags *d, Token t);
Expr *ast_num(Arena *a, Token t);
Expr *ast_ident(Arena *a, const Diags *d, Token t);
Expr *ast_unary(Arena *a, ExprKind k, Token op, Expr *e);
Expr *ast_binary(Arena *a, ExprKind k, Expr *l, Token op, Expr *r);
Expr *ast_postfix(Arena *a, ExprKind k, Expr *l, ExprList args, Token close);
Expr *ast_array(Arena *a, Token open, ExprList args, Token close);
Expr *ast_paren(Expr *e, Token open, Token close);
ExprList ast_exprs_add(ExprList l, Expr *e);

TypeExpr *ast_type(Arena *a, Name name);
TypeExpr *ast_type_arg(Arena *a, TypeExpr *t, Expr *lo, Expr *hi);
TypeExpr *ast_type_end(TypeExpr *t, Token close);

Decl *ast_decl(Arena *a, DeclKind k, Token start, Name name, Token end);
Decl *ast_decl_typed(Decl *d, TypeExpr *t);
Decl *ast_decl_value(Decl *d, Expr *e);
Decl *ast_decl_on(Decl *d, Name on);
Decl *ast_decl_param(Arena *a, Token start, Name name, TypeExpr *t, Decl *opts, Token end);
Decl *ast_param_per_layer(Arena *a, Decl *opts, Token per, Token layer);
Decl *ast_param_where(Arena *a, Decl *opts, Token where, Name fn, Name of, Expr *bound);
Decl *ast_flow(Arena *a, Token start, Expr *t0, Expr *t1, Expr *n, Name scheme, DeclList body, Token end);
Decl *ast_repeat(Arena *a, Token start, Expr *n, DeclList body, Token end);
Decl *ast_equation(Arena *a, const Diags *d, Token deriv, Expr *e, Token end);
Decl *ast_assign(Arena *a, Name target, Expr *e, Token end);
Decl *ast_steps(Arena *a, Token start, Expr *hmax, Token end);
Decl *ast_require(Arena *a, Token start, ReqList reqs, Token end);
Require *ast_req(Arena *a, Name name, Expr *bound, Name *arg, Span end);
Require *ast_req_sized(Require *r, Expr *size, Token close);
ReqList  ast_reqs_add(ReqList l, Require *r);
DeclList ast_decls_add(DeclList l, Decl *d);

Item *ast_item(Arena *a, ItemKind k, Token start, Name name, Token end, int file);
Item *ast_item_end(Item *it, Token end);
Item *ast_item_value(Item *it, Expr *value, Token end);
Item *ast_scheme_field(Arena *a, Item *s, Name name, Expr *value);
Item *ast_def_param(Arena *a, Item *def, Name param);
Item *ast_model(Item *m, DeclList decls);
void  ast_add_item(Ast *ast, Item *it);

/* Stable text dump for `spdlc -d ast` and golden tests. */
void ast_dump(FILE *out, const Ast *ast);
void ast_dump_expr(FILE *out, const Expr *e);
const char *shape_str(Arena *a, Shape s);

#endif
