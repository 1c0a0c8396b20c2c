/* build.c - see build.h.
 *
 * The generated sources go to a private temporary directory that is removed
 * on success and kept on failure: a C compiler error on generated code is a
 * bug in spdlc, and the kept sources are what a bug report needs. The
 * compiler runs without a shell ($CC, default cc; extra flags from
 * $SPDL_CFLAGS, which come later and so may override the -march), with
 * -O2 and the host's x86-64 level: -march=x86-64-v4 with AVX-512,
 * x86-64-v3 with AVX2 and FMA, so the tile loops and the matrix kernels
 * use the widest vectors there are; and with -Wall
 * -Wextra, since the generated code is promised to compile warning-free
 * (DESIGN §6): a warning is shown as the C compiler printed it, and the
 * sources it points into are kept, like a failure's (the program is still
 * built). With --levels the program holds every level's M_levelK.c too,
 * and its main hands their descriptors to spdl_main_levels.
 * With --python the same code is compiled -fPIC -shared into
 * DIR/libM.so, beside a ctypes module DIR/M.py that embeds the certificate;
 * both are written under temporary names and renamed into place. */
#include "build.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "summary.h"
#include "version.h"

static const char *exe_dir(Arena *a)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return ".";
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    return arena_strdup(a, buf);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* libspdl.a (or libspdl_mpi.a, `name`): $SPDL_LIB, next to spdlc (the build
 * tree), ../lib (installed), then the configured install dir. */
static const char *find_libspdl(Arena *a, const char *name, char *tried, size_t n)
{
    const char *ed = exe_dir(a);
    const char *env = getenv("SPDL_LIB");
    const char *cands[] = {
        env && *env ? arena_printf(a, "%s/%s", env, name) : NULL,
        arena_printf(a, "%s/%s", ed, name),
        arena_printf(a, "%s/../lib/%s", ed, name),
        arena_printf(a, "%s/%s", SPDL_LIB_DIR, name),
    };
    size_t k = 0;
    tried[0] = '\0';
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i])
            continue;
        if (exists(cands[i]))
            return cands[i];
        k += (size_t)snprintf(tried + k, k < n ? n - k : 0, "%s%s", k ? ", " : "", cands[i]);
    }
    return NULL;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The data directory (builtin:digits, builtin:mnist) the program should use unless the
 * user sets SPDL_DATA: the build tree's data/, or the installed one. */
static const char *find_data_dir(Arena *a)
{
    const char *ed = exe_dir(a);
    const char *cands[] = {arena_printf(a, "%s/../data", ed), arena_printf(a, "%s/../share/spdl/data", ed),
                           SPDL_DATA_DIR};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char real[PATH_MAX];
        if (is_dir(cands[i]) && realpath(cands[i], real))
            return arena_strdup(a, real);
    }
    return NULL;
}

/* The host's x86-64 level, for the intrinsics kernels of spdl_kernels.h:
 * v4 with AVX-512 (F, BW, CD, DQ, VL), v3 with AVX2 and FMA; NULL for the
 * portable build. */
static const char *host_march(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "-march=x86-64-v4";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "-march=x86-64-v3";
#endif
    return NULL;
}

/* Runs argv with stdout and stderr into log; returns the exit status, or
 * -1 if the program could not be started (errno set). */
static int run(char *const *argv, const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        close(fd);
        return -1;
    }
    fcntl(pipefd[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pipefd[0]);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        int e = errno;
        (void)!write(pipefd[1], &e, sizeof e);
        _exit(127);
    }
    close(fd);
    close(pipefd[1]);
    int e = 0;
    ssize_t got = read(pipefd[0], &e, sizeof e);
    close(pipefd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof e) {
        errno = e;
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Copies what the C compiler printed (warnings: it succeeded) to spdlc's
 * diagnostics stream, after the diagnostics so far; returns whether there
 * was anything. */
static bool show_warnings(Diags *d, const char *log)
{
    FILE *lf = fopen(log, "r");
    if (!lf)
        return false;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, lf);
    if (n)
        diag_flush(d);
    for (; n; n = fread(buf, 1, sizeof buf, lf))
        fwrite(buf, 1, n, d->out);
    bool any = ftell(lf) > 0;
    fclose(lf);
    return any;
}

/* The private temporary directory and what spdlc wrote into it. */
static void remove_dir(Arena *a, const char *dir)
{
    DIR *dp = opendir(dir);
    for (struct dirent *de; dp && (de = readdir(dp));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlink(arena_printf(a, "%s/%s", dir, de->d_name));
    if (dp)
        closedir(dp);
    rmdir(dir);
}

/* A private temporary directory for the generated sources (NULL after
 * reporting why not). */
static char *make_tmpdir(Arena *a, Diags *d)
{
    const char *tmpdir = getenv("TMPDIR");
    char *dir = arena_printf(a, "%s/spdl-build-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        diag_error(d, NO_SPAN, "cannot create a temporary directory in %s: %s", tmpdir && *tmpdir ? tmpdir : "/tmp",
                   strerror(errno));
        return NULL;
    }
    return dir;
}

/* Compiles the sources src[0..nsrc) in dir (the model's and a main or
 * glue file) with libspdl into `out`: a program, or with `shared` a shared
 * library (-fPIC -shared). Returns 0 (the temporary directory removed,
 * unless the compiler warned) or 1 after reporting the error. */
static int compile(Arena *a, Diags *d, const char *model, char *dir, const char *const *src, int nsrc,
                   const char *lib, bool shared, const char *mpicc, const char *out)
{
    const char *cc = getenv("CC");
    if (!cc || !*cc)
        cc = "cc";
    if (mpicc) { /* Open MPI's wrapper runs $OMPI_CC: $CC's compiler, with MPI's flags and libraries */
        if (strcmp(cc, "cc"))
            setenv("OMPI_CC", cc, 0);
        cc = mpicc;
    }
    char *argv[96];
    int n = 0;
    argv[n++] = (char *)cc;
    argv[n++] = "-std=c11";
    argv[n++] = "-Wall";
    argv[n++] = "-Wextra";
    argv[n++] = "-O2";
    const char *march = host_march();
    if (march)
        argv[n++] = (char *)march;
    if (shared) {
        argv[n++] = "-fPIC";
        argv[n++] = "-shared";
    }
    char *extra = getenv("SPDL_CFLAGS") ? arena_strdup(a, getenv("SPDL_CFLAGS")) : NULL;
    for (char *tok = extra ? strtok(extra, " \t") : NULL; tok && n < 48; tok = strtok(NULL, " \t"))
        argv[n++] = tok;
    argv[n++] = "-o";
    argv[n++] = (char *)out;
    argv[n++] = arena_printf(a, "-I%s", dir);
    for (int i = 0; i < nsrc && n < 88; i++)
        argv[n++] = (char *)src[i];
    argv[n++] = (char *)lib;
    argv[n++] = "-lz";
    argv[n++] = "-lm";
    argv[n++] = "-pthread"; /* libspdl's worker threads (runtime/pool.c) */
    argv[n] = NULL;
    const char *log = arena_printf(a, "%s/cc.log", dir);
    int st = run(argv, log);
    if (st < 0) {
        Diag *g = diag_error(d, NO_SPAN, "cannot run the C compiler '%s': %s", cc, strerror(errno));
        diag_note(d, g, NO_SPAN, "install one (apt-get install gcc) or set CC");
        remove_dir(a, dir);
        return 1;
    }
    if (st != 0) {
        Diag *g = diag_error(d, NO_SPAN, "internal error: %s rejected the code spdlc generated for '%s' (exit %d)", cc,
                             model, st);
        diag_note(d, g, NO_SPAN, "this is a bug in spdlc; the generated sources are kept in %s", dir);
        diag_note(d, g, NO_SPAN, "the compiler's messages are in %s", log);
        FILE *lf = fopen(log, "r");
        char line[512];
        for (int i = 0; lf && i < 8 && fgets(line, sizeof line, lf); i++) {
            line[strcspn(line, "\n")] = '\0';
            diag_note(d, g, NO_SPAN, "%s", line);
        }
        if (lf)
            fclose(lf);
        return 1;
    }
    if (show_warnings(d, log)) {
        Diag *g = diag_warning(d, NO_SPAN, "%s warned about the code spdlc generated for '%s'", cc, model);
        diag_note(d, g, NO_SPAN, "this is a bug in spdlc; the generated sources are kept in %s", dir);
        return 0;
    }
    remove_dir(a, dir);
    return 0;
}

static const char *libspdl_or_error(Arena *a, Diags *d, bool mpi)
{
    char tried[2048];
    const char *name = mpi ? "libspdl_mpi.a" : "libspdl.a";
    const char *lib = find_libspdl(a, name, tried, sizeof tried);
    if (!lib) {
        Diag *g = diag_error(d, NO_SPAN, "cannot find %s (looked at %s)", name, tried);
        diag_note(d, g, NO_SPAN, mpi ? "`make` builds it where mpicc exists (apt-get install libopenmpi-dev), or point "
                                       "SPDL_LIB at its directory"
                                     : "build it with `make`, or point SPDL_LIB at its directory");
    }
    return lib;
}

/* $MPICC (default mpicc) when it is on PATH (or a path that can be run);
 * NULL after reporting the error. */
static const char *find_mpicc(Arena *a, Diags *d)
{
    const char *mpicc = getenv("MPICC");
    if (!mpicc || !*mpicc)
        mpicc = "mpicc";
    if (strchr(mpicc, '/')) {
        if (access(mpicc, X_OK) == 0)
            return mpicc;
    } else {
        const char *path = getenv("PATH");
        char *p = arena_strdup(a, path && *path ? path : "/usr/bin:/bin");
        for (char *dir = strtok(p, ":"); dir; dir = strtok(NULL, ":"))
            if (access(arena_printf(a, "%s/%s", *dir ? dir : ".", mpicc), X_OK) == 0)
                return mpicc;
    }
    Diag *g = diag_error(d, NO_SPAN, "build --mpi needs the MPI compiler wrapper '%s', which is not installed (or not on "
                                     "PATH)", mpicc);
    diag_note(d, g, NO_SPAN, "install Open MPI (apt-get install openmpi-bin libopenmpi-dev), then run `make` again so "
                             "it builds libspdl_mpi.a; or set MPICC");
    return NULL;
}

int build_exe(Arena *a, Diags *d, int nlevels, const StepProgram *const *levels, const EmitOpts *opts, bool mpi,
              const char *exe)
{
    const char *model = levels[nlevels - 1]->m->name;
    const char *mpicc = mpi ? find_mpicc(a, d) : NULL;
    if (mpi && !mpicc)
        return 1;
    const char *lib = libspdl_or_error(a, d, mpi);
    char *dir = lib ? make_tmpdir(a, d) : NULL;
    if (!dir)
        return 1;
    const char **src = ARENA_ARRAY(a, const char *, nlevels + 1);
    const char **prefix = ARENA_ARRAY(a, const char *, nlevels);
    for (int l = 0; l < nlevels; l++) {
        EmitOpts eo = opts[l];
        eo.dir = dir;
        eo.standalone = true;
        eo.prefix = prefix[l] = build_level_prefix(a, model, l, nlevels);
        if (emit_c(a, d, levels[l], &eo)) {
            remove_dir(a, dir);
            return 1;
        }
        src[l] = arena_printf(a, "%s/%s.c", dir, prefix[l]);
    }
    const char *mainc = src[nlevels] = arena_printf(a, "%s/main.c", dir);
    const char *data = find_data_dir(a);
    FILE *f = fopen(mainc, "w");
    bool ok = f && fprintf(f, "/* generated by spdlc build: the program's main is libspdl's driver */\n"
                              "#define _POSIX_C_SOURCE 200809L\n#include <stdlib.h>\n\n") >= 0;
    for (int l = 0; ok && l < nlevels; l++)
        ok = fprintf(f, "#include \"%s.h\"\n", prefix[l]) >= 0;
    ok = ok && fprintf(f, "\nint main(int argc, char **argv)\n{\n") >= 0;
    if (ok && data && !strchr(data, '"') && !strchr(data, '\\'))
        ok = fprintf(f, "    setenv(\"SPDL_DATA\", \"%s\", 0); /* where builtin:digits and builtin:mnist live */\n", data) >= 0;
    if (nlevels == 1) {
        ok = ok && fprintf(f, "    return spdl_main(%s_model(), argc, argv);\n}\n", model) >= 0;
    } else {
        ok = ok && fprintf(f, "    /* the model at every level of --levels %d, coarsest first */\n"
                              "    const spdl_model *levels[] = {", nlevels) >= 0;
        for (int l = 0; ok && l < nlevels; l++)
            ok = fprintf(f, "%s%s_model()", l ? ", " : "", prefix[l]) >= 0;
        ok = ok && fprintf(f, "};\n    return spdl_main_levels(levels, %d, argc, argv);\n}\n", nlevels) >= 0;
    }
    if (!f || !ok || fclose(f) != 0) {
        diag_error(d, NO_SPAN, "cannot write %s: %s", mainc, strerror(errno));
        remove_dir(a, dir);
        return 1;
    }
    return compile(a, d, model, dir, src, nlevels + 1, lib, false, mpicc, exe);
}

const char *build_level_prefix(Arena *a, const char *model, int level, int nlevels)
{
    return level == nlevels - 1 ? model : arena_printf(a, "%s_level%d", model, level + 1);
}

/* ---- spdlc build --python (DESIGN §10) ------------------------------------- */

/* Python's keywords: a model of that name cannot be imported by `import`. */
static bool python_keyword(const char *s)
{
    static const char *const kw[] = {"False", "None", "True", "and", "as", "assert", "async", "await", "break",
                                     "class", "continue", "def", "del", "elif", "else", "except", "finally", "for",
                                     "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
                                     "pass", "raise", "return", "try", "while", "with", "yield"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (!strcmp(s, kw[i]))
            return true;
    return false;
}

/* The modules the spdl package and the model module import: a model of that
 * name would hide them (DIR comes before the standard library on sys.path). */
static bool python_shadows(const char *s)
{
    static const char *const mods[] = {"spdl", "numpy", "torch", "ctypes", "json", "os", "math", "threading",
                                       "warnings", "tempfile", "stat", "functools", "types"};
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++)
        if (!strcmp(s, mods[i]))
            return true;
    return false;
}

/* s inside the module's docstring: printable ASCII but backslashes and
 * quotes, the rest as '?' (a path is only a comment there). */
static void py_doc_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        fputc(c >= 0x20 && c < 0x7f && c != '\\' && c != '"' ? c : '?', f);
    }
}

/* A bytes literal of text: printable ASCII as itself, the rest as \xNN, so
 * the module is ASCII and the JSON's UTF-8 survives (.decode()). Lines are
 * broken after commas outside strings' reach: every 100 bytes or so. */
static void py_bytes(FILE *f, const char *s, size_t n)
{
    fputs("(\n    b\"", f);
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            col += (size_t)fprintf(f, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            col += (fputc(c, f), 1u);
        else
            col += (size_t)fprintf(f, "\\x%02x", c);
        if (col >= 100 && c == ',' && i + 1 < n) {
            fputs("\"\n    b\"", f);
            col = 0;
        }
    }
    fputs("\"\n)", f);
}

static int write_py(const char *path, const StepProgram *p, const EmitOpts *o, const char *cert, size_t cert_len)
{
    const char *M = p->m->name;
    const char *mem = o->memory == MEMORY_INVERT ? "invert" : o->memory == MEMORY_CHECKPOINT ? "checkpoint" : "store";
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "\"\"\"%s - generated by spdlc %s from ", M, SPDL_VERSION);
    py_doc_text(f, o->source_path);
    fprintf(f,
            " (source hash %s) with `spdlc build --python`. Do not edit.\n"
            "\n"
            "The model as NumPy functions (%s.Model) and, when PyTorch is importable, as a\n"
            "torch.nn.Module (%s.Module) and a torch.autograd.Function (%s.Function) whose\n"
            "backward is the generated adjoint. The code is lib%s.so next to this file\n"
            "(%s, --memory=%s); the loader is the spdl package.\n"
            "Nothing is compiled at import time. See help(spdl) for the API.\n"
            "\"\"\"\n"
            "import os as _os\n"
            "\n"
            "try:\n"
            "    import spdl as _spdl\n"
            "except ImportError as _e:\n"
            "    raise ImportError(\"the model module '%s' needs the spdl Python package: `make install` puts it \"\n"
            "                      \"where python3 finds it (from a build tree: PYTHONPATH=REPO/python)\") from _e\n"
            "\n"
            "# `spdlc check --json` of the model, when it was built\n"
            "_CERTIFICATE = ",
            o->source_hash, M, M, M, M, o->fp32 ? "float" : "double", mem, M);
    py_bytes(f, cert, cert_len);
    fprintf(f,
            "\n\n"
            "_binding = _spdl.load_model(\n"
            "    name=\"%s\",\n"
            "    library=_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), \"lib%s.so\"),\n"
            "    generator=\"%s\",\n"
            "    source_hash=\"%s\",\n"
            "    precision=\"%s\",\n"
            "    memory=\"%s\",\n"
            "    certificate=_CERTIFICATE.decode(\"utf-8\"),\n"
            ")\n"
            "Model = _binding.Model\n"
            "certificate = _binding.certificate\n"
            "\n"
            "\n"
            "def __getattr__(name):  # Module and Function: PyTorch is imported on first use\n"
            "    return _binding.module_attr(name)\n",
            M, M, SPDL_VERSION, o->source_hash, o->fp32 ? "float" : "double", mem);
    return fclose(f);
}

/* What `spdlc check --json` prints for the model, in an arena copy. */
static const char *certificate_json(Arena *a, const StepProgram *p, const EmitOpts *o, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    summary_print(f, a, p->m, true);
    check_print(f, a, o->cert, true);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    char *copy = arena_alloc(a, n + 1);
    memcpy(copy, buf, n + 1);
    free(buf);
    *len = n;
    return copy;
}

int build_python(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o, const char *outdir)
{
    const char *model = p->m->name;
    if (python_shadows(model)) {
        Diag *g = diag_error(d, p->m->span, "a model named '%s' cannot be built as a Python module", model);
        if (!strcmp(model, "spdl"))
            diag_note(d, g, NO_SPAN, "spdl.py would hide the spdl package every model module imports; rename the model");
        else
            diag_note(d, g, NO_SPAN, "%s.py would hide the module '%s' that the spdl package imports; rename the model",
                      model, model);
        return 1;
    }
    if (python_keyword(model))
        diag_warning(d, p->m->span, "'%s' is a Python keyword: load %s.py with importlib.import_module(\"%s\")", model,
                     model, model);
    struct stat st;
    if (stat(outdir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        Diag *g = diag_error(d, NO_SPAN, "'%s' is not a directory", outdir);
        diag_note(d, g, NO_SPAN, "with --python, -o names the directory for lib%s.so and %s.py", model, model);
        return 1;
    }
    /* another build may create it between the stat and the mkdir: EEXIST of a directory is fine */
    if (stat(outdir, &st) != 0 && mkdir(outdir, 0777) != 0 &&
        !(errno == EEXIST && stat(outdir, &st) == 0 && S_ISDIR(st.st_mode))) {
        diag_error(d, NO_SPAN, "cannot create the directory '%s': %s", outdir, strerror(errno));
        return 1;
    }
    size_t cert_len = 0;
    const char *cert = certificate_json(a, p, o, &cert_len);
    if (!cert) {
        diag_error(d, NO_SPAN, "out of memory for the certificate of '%s'", model);
        return 1;
    }
    const char *lib = libspdl_or_error(a, d, false);
    char *dir = lib ? make_tmpdir(a, d) : NULL;
    if (!dir)
        return 1;
    EmitOpts eo = *o;
    eo.dir = dir;
    eo.standalone = true;
    if (emit_c(a, d, p, &eo)) {
        remove_dir(a, dir);
        return 1;
    }
    /* spdl_strerror is the part of libspdl the Python side calls; the
     * reference pulls it out of the archive into the library */
    const char *glue = arena_printf(a, "%s/%s_python.c", dir, model);
    FILE *f = fopen(glue, "w");
    bool ok = f && fprintf(f,
                           "/* generated by spdlc build --python: what %s.py needs besides the model's API */\n"
                           "#include \"%s.h\"\n\n"
                           "const char *%s_strerror(int code);\n"
                           "const char *%s_strerror(int code) { return spdl_strerror(code); }\n",
                           model, model, model, model) >= 0;
    if (!f || !ok || fclose(f) != 0) {
        diag_error(d, NO_SPAN, "cannot write %s: %s", glue, strerror(errno));
        remove_dir(a, dir);
        return 1;
    }
    /* into a temporary name and renamed: a process that has the old library
     * mapped keeps its copy instead of crashing on a rewritten file */
    const char *so = arena_printf(a, "%s/lib%s.so", outdir, model);
    const char *so_tmp = arena_printf(a, "%s/.lib%s.so.%ld", outdir, model, (long)getpid());
    const char *src[] = {arena_printf(a, "%s/%s.c", dir, model), glue};
    if (compile(a, d, model, dir, src, 2, lib, true, NULL, so_tmp))
        return 1;
    if (rename(so_tmp, so) != 0) {
        diag_error(d, NO_SPAN, "cannot write '%s': %s", so, strerror(errno));
        unlink(so_tmp);
        return 1;
    }
    const char *py = arena_printf(a, "%s/%s.py", outdir, model);
    const char *py_tmp = arena_printf(a, "%s/.%s.py.%ld", outdir, model, (long)getpid());
    if (write_py(py_tmp, p, o, cert, cert_len) != 0 || rename(py_tmp, py) != 0) {
        diag_error(d, NO_SPAN, "cannot write '%s': %s", py, strerror(errno));
        unlink(py_tmp);
        return 1;
    }
    return 0;
}
