/* main.c - the spdlc driver: a flat list of phases.
 *
 *   load (read + lex + parse, imports)  ->  resolve (names, shapes)
 *   -> lower (step program)  ->  check (guarantees)
 *   -> the coarser levels of --levels (resolve, lower, check again)  ->  emit C  ->  build
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
    "  build FILE.spn --levels L -o EXE   the same, holding the model at N/2^(L-1), ..., N/2, N\n"
    "                                     layers of every flow (for EXE train --multilevel);\n"
    "                                     emit --levels L also writes DIR/M_level1.{h,c}, ...\n"
    "  build FILE.spn --grid-levels L -o EXE  the same for a C4/D4 image model: its images\n"
    "                                     1/2^(L-1), ..., 1/2, 1 the size, the same kernels\n"
    "  build FILE.spn --python -o DIR     DIR/libM.so and DIR/M.py: the model from\n"
    "                                     NumPy and PyTorch (the spdl package loads it)\n"
    "  build FILE.spn --mpi -o EXE        the program built by mpicc with libspdl_mpi.a: run\n"
    "                                     mpirun -np P EXE train ... to split each batch over\n"
    "                                     P ranks (bit-identical to one process)\n"
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
    bool json, standalone, dump_ir, python, mpi;
    int levels;         /* build --levels L or --grid-levels L; 0 without */
    bool grid_levels;   /* the levels coarsen the images, not the flows */
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
        } else if (!strcmp(a, "--levels") || !strcmp(a, "--grid-levels")) {
            NEED_ARG();
            char *end;
            long L = strtol(next, &end, 10);
            /* one level would be the model alone, which train --multilevel refuses */
            if (end == next || *end || L < 2 || L > BUILD_MAX_LEVELS)
                return usage_error(!strcmp(a, "--levels") ? "--levels takes a whole number from 2 to 16, not '%s'"
                                                          : "--grid-levels takes a whole number from 2 to 16, not '%s'",
                                   next);
            if (o->levels)
                return usage_error("%s", "give --levels (coarser in depth) or --grid-levels (coarser images), once");
            o->levels = (int)L;
            o->grid_levels = !strcmp(a, "--grid-levels");
        } else if (!strcmp(a, "--python")) {
            o->python = true;
        } else if (!strcmp(a, "--mpi")) {
            o->mpi = true;
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
    if (o->mpi && (strcmp(o->cmd, "build") || o->python))
        return usage_error("%s", o->python ? "--mpi builds a program for mpirun, not a Python module: give --mpi or "
                                             "--python"
                                           : "--mpi is an option of build (spdlc build FILE.spn --mpi -o EXE)");
    if (o->python && o->standalone)
        return usage_error("%s", "--standalone is an option of emit; build --python always includes what it needs");
    if (o->levels && (!strcmp(o->cmd, "check") || o->python))
        return usage_error("%s", o->grid_levels ? "--grid-levels is an option of emit and of build making a program "
                                                  "(spdlc build FILE.spn --grid-levels L -o EXE)"
                                                : "--levels is an option of emit and of build making a program "
                                                  "(spdlc build FILE.spn --levels L -o EXE)");
    if (o->python && !o->out)
        return usage_error("%s", "'build --python' needs -o DIR (the directory for libM.so and M.py)");
    if (strcmp(o->cmd, "check") && !o->out && !o->dump_ir)
        return usage_error("'%s' needs -o", o->cmd);
    return 0;
}

/* The levels below the model for --levels L (--grid-levels L): the model
 * again with every flow in 1/2^(L-1), ..., 1/2 of its layers (its images
 * 1/2^(L-1), ..., 1/2 the size per side), each resolved, lowered and
 * checked as the model was (whose warnings they would repeat), into
 * progs[0..L-2] and opts[0..L-2], coarsest first; the finest level is the
 * model itself, prog with *fine. Returns 0, or 1 after reporting. */
static int coarse_levels(Arena *a, Diags *d, Ast *ast, int file, const Options *o, const EmitOpts *fine,
                         const StepProgram **progs, EmitOpts *opts)
{
    int L = o->levels;
    d->mute_warnings = true;
    for (int l = 0; l < L - 1; l++) {
        int f = 1 << (L - 1 - l);
        Coarsening c = o->grid_levels ? (Coarsening){1, f} : (Coarsening){f, 1};
        ResolveResult r = resolve_coarse(a, d, ast, file, o->model, c);
        StepProgram *p = r.model && !d->errors ? step_lower(a, d, r.model) : NULL;
        Certificate *cert = p && !d->errors ? check_model(a, d, p) : NULL;
        if (!cert || check_report(d, cert) || d->errors) {
            Diag *g = o->grid_levels
                          ? diag_error(d, NO_SPAN, "level %d of --grid-levels %d, images 1/%d the size, does not build",
                                       l + 1, L, f)
                          : diag_error(d, NO_SPAN, "level %d of --levels %d, every flow in 1/%d of its layers, does "
                                                   "not build", l + 1, L, f);
            diag_note(d, g, NO_SPAN, o->grid_levels ? "the errors above are at that level (every grid %d times "
                                                      "coarser); ask for fewer levels"
                                                    : "the errors above are at that level (its steps are %d times the "
                                                      "model's); ask for fewer levels", f);
            d->mute_warnings = false;
            return 1;
        }
        progs[l] = p;
        opts[l] = *fine;
        opts[l].cert = cert;
        opts[l].lipschitz = cert->lipschitz;
    }
    d->mute_warnings = false;
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
        int L = o.levels ? o.levels : 1;
        const StepProgram **levels = ARENA_ARRAY(&arena, const StepProgram *, L);
        EmitOpts *level_opts = ARENA_ARRAY(&arena, EmitOpts, L);
        levels[L - 1] = prog;
        level_opts[L - 1] = eo;
        status = coarse_levels(&arena, &d, &ast, file, &o, &eo, levels, level_opts);
        for (int l = 0; !status && !strcmp(o.cmd, "emit") && l < L; l++) {
            level_opts[l].prefix = build_level_prefix(&arena, prog->m->name, l, L);
            status = emit_c(&arena, &d, levels[l], &level_opts[l]);
        }
        if (!status && o.python)
            status = build_python(&arena, &d, prog, &eo, o.out);
        else if (!status && !strcmp(o.cmd, "build"))
            status = build_exe(&arena, &d, L, levels, level_opts, o.mpi, o.out);
        diag_flush(&d);
    }
out:
    arena_free(&arena);
    return status;
}
