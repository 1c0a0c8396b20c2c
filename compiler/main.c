/* main.c - the spdlc driver: a flat list of phases.
 *
 *   load (read + lex + parse, imports)  ->  resolve (names, shapes)
 *   -> lower (step program)  ->  check (guarantees)  ->  emit C  ->  build
 *
 * Each phase reports into one Diags; after each phase the driver prints what
 * was found and stops on errors. Exit codes: 0 ok, 1 errors in the program
 * (or a failed require), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "lexer.h"
#include "parse.h"
#include "resolve.h"
#include "source.h"
#include "step.h"
#include "summary.h"
#include "build.h"
#include "check.h"
#include "emit_c.h"
#include "version.h"


static const char usage[] =
    "usage: spdlc COMMAND FILE.spn [options]\n"
    "\n"
    "commands:\n"
    "  check FILE.spn [--json]            type-check, prove the `require`d guarantees,\n"
    "                                     print the certificate (exit 1 if one fails)\n"
    "  emit  FILE.spn -o DIR [--precision double|float] [--standalone]\n"
    "                                     write DIR/M.h and DIR/M.c\n"
    "  build FILE.spn -o EXE              emit, compile and link with libspdl\n"
    "  build FILE.spn --python -o DIR     DIR/libM.so and DIR/M.py: the model from\n"
    "                                     NumPy and PyTorch (the spdl package loads it)\n"
    "\n"
    "emit and build take --memory=store|invert|checkpoint: what the gradient keeps\n"
    "of the layers (every input; nothing, rebuilding inputs with the proved inverse;\n"
    "O(log N) snapshots by Revolve's binomial schedule)\n"
    "\n"
    "options:\n"
    "  -I DIR            search DIR for imports (before SPDL_PATH and the stdlib)\n"
    "  --model NAME      pick a model when the file has several\n"
    "  -d tokens|ast|step  dump a phase's result and stop\n"
    "  --dump-ir         (emit) print the step program instead of writing C\n"
    "  --help, --version\n";

typedef struct Options {
    const char *cmd, *file, *out, *model, *dump;
    bool json, standalone, dump_ir, python;
    const char *precision;
    MemoryMode memory;
    SourceOpts src;
} Options;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "spdlc: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'spdlc --help' for usage)\n");
    return 2;
}

static int parse_args(int argc, char **argv, Options *o)
{
    memset(o, 0, sizeof *o);
    o->precision = "double";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG() do { if (!next) return usage_error("option '%s' needs an argument", a); i++; } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "--version")) {
            printf("spdlc %s\n", SPDL_VERSION);
            exit(0);
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strncmp(a, "--memory", 8)) {
            const char *mv = a[8] == '=' ? a + 9 : a[8] ? NULL : next;
            if (!mv)
                return usage_error("unknown option '%s'", a);
            if (!a[8])
                NEED_ARG();
            if (!strcmp(mv, "store"))
                o->memory = MEMORY_STORE;
            else if (!strcmp(mv, "invert"))
                o->memory = MEMORY_INVERT;
            else if (!strcmp(mv, "checkpoint"))
                o->memory = MEMORY_CHECKPOINT;
            else
                return usage_error("--memory takes store, invert or checkpoint, not '%s'", mv);
        } else if (!strcmp(a, "--python")) {
            o->python = true;
        } else if (!strcmp(a, "--dump-ir")) {
            o->dump_ir = true;
        } else if (!strcmp(a, "--standalone")) {
            o->standalone = true;
        } else if (!strcmp(a, "-o")) {
            NEED_ARG();
            o->out = next;
        } else if (!strcmp(a, "--model")) {
            NEED_ARG();
            o->model = next;
        } else if (!strcmp(a, "-d")) {
            NEED_ARG();
            o->dump = next;
            if (strcmp(next, "tokens") && strcmp(next, "ast") && strcmp(next, "step"))
                return usage_error("-d takes tokens, ast or step, not '%s'", next);
        } else if (!strcmp(a, "--precision")) {
            NEED_ARG();
            o->precision = next;
            if (strcmp(next, "double") && strcmp(next, "float"))
                return usage_error("--precision takes double or float, not '%s'", next);
        } else if (!strncmp(a, "-I", 2)) {
            const char *dir = a[2] ? a + 2 : next;
            if (!a[2])
                NEED_ARG();
            if (o->src.ninclude == SOURCE_MAX_INCLUDE)
                return usage_error("too many -I directories (the limit is %s)", "32");
            o->src.include[o->src.ninclude++] = dir;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (!o->cmd && !o->dump) {
            o->cmd = a;
        } else if (!o->file) {
            o->file = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
#undef NEED_ARG
    }
    if (o->dump && !o->cmd) /* spdlc -d ast FILE */
        o->cmd = "check";
    if (!o->cmd)
        return usage_error("%s", "no command given");
    if (strcmp(o->cmd, "check") && strcmp(o->cmd, "emit") && strcmp(o->cmd, "build"))
        return usage_error("unknown command '%s' (the commands are check, emit and build)", o->cmd);
    if (!o->file)
        return usage_error("'%s' needs a .spn file", o->cmd);
    if (o->python && strcmp(o->cmd, "build"))
        return usage_error("--python is an option of build, not of '%s' (spdlc build FILE.spn --python -o DIR)",
                           o->cmd);
    if (o->python && o->standalone)
        return usage_error("%s", "--standalone is an option of emit; build --python always includes what it needs");
    if (o->python && !o->out)
        return usage_error("%s", "'build --python' needs -o DIR (the directory for libM.so and M.py)");
    if (strcmp(o->cmd, "check") && !o->out && !o->dump_ir)
        return usage_error("'%s' needs -o", o->cmd);
    return 0;
}

static void dump_tokens(Diags *d, int file)
{
    Lexer lx;
    lex_init(&lx, d, file);
    Token t;
    while (lex_next(&lx, &t)) {
        printf("%d:%d %s", t.line, t.col, lex_kind_name(t.kind));
        printf(" '%s'\n", span_text(d, t.span));
    }
}

int main(int argc, char **argv)
{
    Options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    Arena arena;
    arena_init(&arena);
    Diags d;
    diag_init(&d, &arena, stderr);
    int status = 0;

    if (o.dump && !strcmp(o.dump, "tokens")) {
        int f = source_read(&d, o.file, NO_SPAN);
        if (f >= 0)
            dump_tokens(&d, f);
        diag_flush(&d);
        status = d.errors ? 1 : 0;
        goto out;
    }

    Ast ast = {0};
    int file = source_load(&arena, &d, o.file, &o.src, &ast);
    diag_flush(&d);
    if (file < 0 || d.errors) {
        status = 1;
        goto out;
    }
    if (o.dump && !strcmp(o.dump, "ast")) {
        ast_dump(stdout, &ast);
        goto out;
    }

    ResolveResult res = resolve(&arena, &d, &ast, file, o.model);
    diag_flush(&d);
    if (!res.model || d.errors) {
        status = 1;
        goto out;
    }

    StepProgram *prog = step_lower(&arena, &d, res.model);
    diag_flush(&d);
    if (prog && ((o.dump && !strcmp(o.dump, "step")) || o.dump_ir)) {
        step_dump(stdout, &d, prog);
        goto out;
    }
    if (!prog) {
        status = 1;
        goto out;
    }
    Certificate *cert = check_model(&arena, &d, prog);
    int failed = check_report(&d, cert);
    if (!strcmp(o.cmd, "check")) {
        summary_print(stdout, &arena, res.model, o.json);
        check_print(stdout, &arena, cert, o.json);
    }
    diag_flush(&d);
    if (failed) {
        status = 1; /* a failed require stops every command (DESIGN §4) */
        goto out;
    }
    if (!strcmp(o.cmd, "emit") || !strcmp(o.cmd, "build")) {
        const SourceFile *sf = diag_file(&d, file);
        EmitOpts eo = {.dir = o.out, .fp32 = !strcmp(o.precision, "float"), .standalone = o.standalone,
                       .source_path = sf->path, .source_hash = emit_hash(&arena, sf->text, sf->len),
                       .lipschitz = cert->lipschitz, .cert = cert, .memory = o.memory};
        if (!strcmp(o.cmd, "emit"))
            status = emit_c(&arena, &d, prog, &eo);
        else if (o.python)
            status = build_python(&arena, &d, prog, &eo, o.out);
        else
            status = build_exe(&arena, &d, prog, &eo, o.out);
        diag_flush(&d);
    }
out:
    arena_free(&arena);
    return status;
}
