/* parser.y - the .spn grammar (Lemon). Every action is one line that calls
 * an AST constructor from ast.c; the parser itself owns no memory. Error
 * recovery resynchronises at ';' and '}' so one run reports several errors.
 * Lemon must report no conflicts: the Makefile fails the build if it does. */

%include {
#include <assert.h>
#include <stdlib.h>
#include "parser.h"
#include "parse.h"
}

%name spdl_lemon
%token_prefix TK_
%token_type {Token}
%extra_argument {ParseState *ps}
%token_destructor { (void)ps; (void)$$; }
%syntax_error { parse_syntax_error(ps, yymajor, TOKEN); }
%stack_overflow { parse_stack_overflow(ps); }
%parse_failure { ps->failed = true; }
%stack_size 2000

/* Keywords that read as names where a name is the only thing that fits. */
%fallback IDENT OVER IN BY ACTS ON STEPS LEARNED LAYER LAYERS PER.

%left PLUS MINUS.
%left STAR DOTSTAR SLASH.
%right UMINUS.
%right CARET.
%left TICK LPAREN LBRACKET.

%type name {Name}
%type expr {Expr *}
%type postfix {Expr *}
%type primary {Expr *}
%type index {Expr *}
%type args {ExprList}
%type indices {ExprList}
%type type {TypeExpr *}
%type targs {TypeExpr *}
%type decls {DeclList}
%type decl {Decl *}
%type popts {Decl *}
%type body {DeclList}
%type bitem {Decl *}
%type reqs {ReqList}
%type req {Require *}
%type scheme {Item *}
%type def {Item *}

file ::= items.
items ::= .
items ::= items item.

item ::= IMPORT(A) STRING(P) SEMI(Z).                     { ast_add_item(ps->ast, ast_item(ps->arena, I_IMPORT, A, ast_name(ps->arena, ps->d, P), Z, ps->file)); }
item ::= scheme(S) RBRACE(Z).                             { ast_add_item(ps->ast, ast_item_end(S, Z)); }
item ::= def(D) RPAREN EQ expr(E) SEMI(Z).                { ast_add_item(ps->ast, ast_item_value(D, E, Z)); }
item ::= LET(A) name(N) EQ expr(E) SEMI(Z).               { ast_add_item(ps->ast, ast_item_value(ast_item(ps->arena, I_LET, A, N, A, ps->file), E, Z)); }
item ::= MODEL(A) name(N) LBRACE decls(D) RBRACE(Z).      { ast_add_item(ps->ast, ast_model(ast_item(ps->arena, I_MODEL, A, N, Z, ps->file), D)); }
item ::= error SEMI.
item ::= error RBRACE.

scheme(S) ::= SCHEME(A) name(N) LBRACE.                   { S = ast_item(ps->arena, I_SCHEME, A, N, A, ps->file); }
scheme(S) ::= scheme(T) name(N) EQ expr(E) SEMI.          { S = ast_scheme_field(ps->arena, T, N, E); }
scheme(S) ::= scheme(T) error SEMI.                       { S = T; }

def(D) ::= DEF(A) name(N) LPAREN name(P).                 { D = ast_def_param(ps->arena, ast_item(ps->arena, I_DEF, A, N, A, ps->file), P); }
def(D) ::= def(T) COMMA name(P).                          { D = ast_def_param(ps->arena, T, P); }

decls(L) ::= .                                            { L = (DeclList){0}; }
decls(L) ::= decls(M) decl(D).                            { L = ast_decls_add(M, D); }
decls(L) ::= decls(M) error SEMI.                         { L = M; }

decl(D) ::= INPUT(A) name(N) COLON type(T) SEMI(Z).       { D = ast_decl_typed(ast_decl(ps->arena, D_INPUT, A, N, Z), T); }
decl(D) ::= LABEL(A) name(N) COLON type(T) SEMI(Z).       { D = ast_decl_typed(ast_decl(ps->arena, D_LABEL, A, N, Z), T); }
decl(D) ::= TARGET(A) name(N) COLON type(T) SEMI(Z).      { D = ast_decl_typed(ast_decl(ps->arena, D_TARGET, A, N, Z), T); }
decl(D) ::= STATE(A) name(N) COLON type(T) EQ expr(E) SEMI(Z). { D = ast_decl_value(ast_decl_typed(ast_decl(ps->arena, D_STATE, A, N, Z), T), E); }
decl(D) ::= PARAM(A) name(N) COLON type(T) popts(O) SEMI(Z). { D = ast_decl_param(ps->arena, A, N, T, O, Z); }
decl(D) ::= GROUP(A) name(N) ACTS ON name(X) SEMI(Z).     { D = ast_decl_on(ast_decl(ps->arena, D_GROUP, A, N, Z), X); }
decl(D) ::= GROUP(A) name(N) LPAREN expr(E) RPAREN ACTS ON name(X) SEMI(Z). { D = ast_decl_value(ast_decl_on(ast_decl(ps->arena, D_GROUP, A, N, Z), X), E); }
decl(D) ::= FLOW(A) OVER LBRACKET expr(T0) COMMA expr(T1) RBRACKET IN expr(K) LAYERS BY name(S) LBRACE body(B) RBRACE(Z). { D = ast_flow(ps->arena, A, T0, T1, K, S, B, Z); }
decl(D) ::= REPEAT(A) expr(K) LAYERS LBRACE body(B) RBRACE(Z). { D = ast_repeat(ps->arena, A, K, B, Z); }
decl(D) ::= OUTPUT(A) name(N) EQ expr(E) SEMI(Z).         { D = ast_decl_value(ast_decl(ps->arena, D_OUTPUT, A, N, Z), E); }
decl(D) ::= LOSS(A) expr(E) SEMI(Z).                      { D = ast_decl_value(ast_decl(ps->arena, D_LOSS, A, (Name){0}, Z), E); }
decl(D) ::= REQUIRE(A) reqs(R) SEMI(Z).                   { D = ast_require(ps->arena, A, R, Z); }
decl(D) ::= LET(A) name(N) EQ expr(E) SEMI(Z).            { D = ast_decl_value(ast_decl(ps->arena, D_LET, A, N, Z), E); }

popts(O) ::= .                                            { O = NULL; }
popts(O) ::= popts(P) PER(A) LAYER(B).                    { O = ast_param_per_layer(ps->arena, P, A, B); }
popts(O) ::= popts(P) WHERE(A) name(F) LPAREN name(X) RPAREN LE expr(E). { O = ast_param_where(ps->arena, P, A, F, X, E); }

body(L) ::= .                                             { L = (DeclList){0}; }
body(L) ::= body(M) bitem(D).                             { L = ast_decls_add(M, D); }
body(L) ::= body(M) error SEMI.                           { L = M; }

bitem(D) ::= DERIV(A) EQ expr(E) SEMI(Z).                 { D = ast_equation(ps->arena, ps->d, A, E, Z); }
bitem(D) ::= name(N) EQ expr(E) SEMI(Z).                  { D = ast_assign(ps->arena, N, E, Z); }
bitem(D) ::= STEPS(A) LEARNED SEMI(Z).                    { D = ast_steps(ps->arena, A, NULL, Z); }
bitem(D) ::= STEPS(A) LEARNED LE expr(E) SEMI(Z).         { D = ast_steps(ps->arena, A, E, Z); }
bitem(D) ::= LET(A) name(N) EQ expr(E) SEMI(Z).           { D = ast_decl_value(ast_decl(ps->arena, D_LET, A, N, Z), E); }

reqs(L) ::= req(R).                                       { L = ast_reqs_add((ReqList){0}, R); }
reqs(L) ::= reqs(M) COMMA req(R).                         { L = ast_reqs_add(M, R); }
req(R) ::= name(N).                                       { R = ast_req(ps->arena, N, NULL, NULL, N.span); }
req(R) ::= name(N) LE expr(E).                            { R = ast_req(ps->arena, N, E, NULL, E->span); }
req(R) ::= name(N) LPAREN name(G) RPAREN(Z).              { R = ast_req(ps->arena, N, NULL, &G, Z.span); }
req(R) ::= name(N) LPAREN name(G) LPAREN expr(E) RPAREN(Y) RPAREN(Z). { R = ast_req_sized(ast_req(ps->arena, N, NULL, &G, Z.span), E, Y); }

type(T) ::= targs(A) RBRACKET(Z).                         { T = ast_type_end(A, Z); }
targs(T) ::= name(N) LBRACKET expr(E).                    { T = ast_type_arg(ps->arena, ast_type(ps->arena, N), E, NULL); }
targs(T) ::= name(N) LBRACKET expr(E) ARROW expr(F).      { T = ast_type_arg(ps->arena, ast_type(ps->arena, N), E, F); }
targs(T) ::= targs(A) COMMA expr(E).                      { T = ast_type_arg(ps->arena, A, E, NULL); }
targs(T) ::= targs(A) COMMA expr(E) ARROW expr(F).        { T = ast_type_arg(ps->arena, A, E, F); }

name(N) ::= IDENT(T).                                     { N = ast_name(ps->arena, ps->d, T); }

expr(E) ::= expr(L) PLUS(O) expr(R).                      { E = parse_expr(ps, ast_binary(ps->arena, E_ADD, L, O, R)); }
expr(E) ::= expr(L) MINUS(O) expr(R).                     { E = parse_expr(ps, ast_binary(ps->arena, E_SUB, L, O, R)); }
expr(E) ::= expr(L) STAR(O) expr(R).                      { E = parse_expr(ps, ast_binary(ps->arena, E_MUL, L, O, R)); }
expr(E) ::= expr(L) DOTSTAR(O) expr(R).                   { E = parse_expr(ps, ast_binary(ps->arena, E_EMUL, L, O, R)); }
expr(E) ::= expr(L) SLASH(O) expr(R).                     { E = parse_expr(ps, ast_binary(ps->arena, E_DIV, L, O, R)); }
expr(E) ::= expr(L) CARET(O) expr(R).                     { E = parse_expr(ps, ast_binary(ps->arena, E_POW, L, O, R)); }
expr(E) ::= MINUS(O) expr(X). [UMINUS]                    { E = parse_expr(ps, ast_unary(ps->arena, E_NEG, O, X)); }
expr(E) ::= postfix(P).                                   { E = P; }

postfix(E) ::= primary(P).                                { E = P; }
postfix(E) ::= postfix(L) TICK(O).                        { E = parse_expr(ps, ast_unary(ps->arena, E_TRANSPOSE, O, L)); }
postfix(E) ::= postfix(L) LPAREN args(A) RPAREN(Z).       { E = parse_expr(ps, ast_postfix(ps->arena, E_CALL, L, A, Z)); }
postfix(E) ::= postfix(L) LPAREN RPAREN(Z).               { E = parse_expr(ps, ast_postfix(ps->arena, E_CALL, L, (ExprList){0}, Z)); }
postfix(E) ::= postfix(L) LBRACKET indices(A) RBRACKET(Z). { E = parse_expr(ps, ast_postfix(ps->arena, E_INDEX, L, A, Z)); }

primary(E) ::= NUMBER(T).                                 { E = ast_num(ps->arena, T); }
primary(E) ::= IDENT(T).                                  { E = ast_ident(ps->arena, ps->d, T); }
primary(E) ::= LPAREN(A) expr(X) RPAREN(Z).               { E = ast_paren(X, A, Z); }
primary(E) ::= LBRACKET(A) args(L) RBRACKET(Z).           { E = parse_expr(ps, ast_array(ps->arena, A, L, Z)); }

args(L) ::= expr(E).                                      { L = ast_exprs_add((ExprList){0}, E); }
args(L) ::= args(M) COMMA expr(E).                        { L = ast_exprs_add(M, E); }
indices(L) ::= index(E).                                  { L = ast_exprs_add((ExprList){0}, E); }
indices(L) ::= indices(M) COMMA index(E).                 { L = ast_exprs_add(M, E); }
index(E) ::= expr(X).                                     { E = X; }
index(E) ::= expr(L) COLON(O) expr(R).                    { E = parse_expr(ps, ast_binary(ps->arena, E_RANGE, L, O, R)); }
