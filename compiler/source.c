/* source.c - see source.h. */
#include "source.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse.h"

extern const char spdl_prelude_text[];   /* stdlib/schemes.spn, embedded at build time */
extern const unsigned spdl_prelude_len;

#define PRELUDE_PATH "std/schemes.spn"
#define BUILTIN_PRELUDE "<builtin>/std/schemes.spn"

static int read_file(Diags *d, const char *path, Span from, const char *real)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        diag_error(d, from, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        diag_error(d, from, "'%s' is a directory, not a .spn file", path);
        return -1;
    }
    if (st.st_size > SOURCE_MAX_BYTES) {
        diag_error(d, from, "'%s' is too large (%lld bytes; the limit is %d)", path,
                   (long long)st.st_size, SOURCE_MAX_BYTES);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(d, from, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (len == cap) {
            if (cap >= (size_t)SOURCE_MAX_BYTES + 1) {
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    bool err = ferror(f) || !buf;
    fclose(f);
    if (err) {
        diag_error(d, from, "cannot read '%s': %s", path, buf ? strerror(errno) : "out of memory");
        free(buf);
        return -1;
    }
    if (len > SOURCE_MAX_BYTES) {
        diag_error(d, from, "'%s' is too large (the limit is %d bytes)", path, SOURCE_MAX_BYTES);
        free(buf);
        return -1;
    }
    int id = diag_add_file(d, path, buf, (uint32_t)len, real);
    free(buf);
    return id;
}

int source_read(Diags *d, const char *path, Span from)
{
    char real[PATH_MAX];
    return read_file(d, path, from, realpath(path, real) ? real : NULL);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && !S_ISDIR(st.st_mode);
}

static const char *exe_dir(Arena *a)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return arena_strdup(a, buf);
}

const char *source_stdlib_dir(Arena *a, const SourceOpts *opts)
{
    if (opts->stdlib_dir)
        return opts->stdlib_dir;
    const char *env = getenv("SPDL_STDLIB");
    if (env && *env)
        return env;
    const char *ed = exe_dir(a);
    if (ed) {
        /* build tree: build/spdlc next to stdlib/; installed: bin/ next to share/ */
        const char *cands[] = {"%s/../stdlib", "%s/../share/spdl/stdlib"};
        for (size_t i = 0; i < 2; i++) {
            char *dir = arena_printf(a, cands[i], ed);
            if (is_file(arena_printf(a, "%s/schemes.spn", dir)))
                return dir;
        }
    }
    if (is_file(SPDL_STDLIB_DIR "/schemes.spn"))
        return SPDL_STDLIB_DIR;
    return "";
}

typedef struct Loader {
    Arena *a;
    Diags *d;
    const SourceOpts *opts;
    Ast *ast;
    const char *stdlib;
    /* files fully loaded or being loaded, by real path */
    const char **seen;
    int nseen, capseen;
    /* the chain of imports being loaded, for cycle and missing-file notes */
    struct { const char *real; int file; Span at; } stack[64];
    int depth;
} Loader;

static void note_chain(Loader *L, Diag *g)
{
    for (int i = L->depth - 1; i >= 1; i--)
        diag_note(L->d, g, L->stack[i].at, "imported from here");
}

static char *dir_of(Arena *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? arena_strndup(a, path, (size_t)(slash - path)) : arena_strdup(a, ".");
}

/* Candidates in search order; returns the first that exists, or NULL with
 * the list of places tried in *tried. */
static const char *resolve_path(Loader *L, const char *importer, const char *p, char **tried)
{
    PtrVec cands = {0};
    if (p[0] == '/') {
        vec_push(L->a, &cands, arena_strdup(L->a, p));
    } else {
        vec_push(L->a, &cands, arena_printf(L->a, "%s/%s", dir_of(L->a, importer), p));
        for (int i = 0; i < L->opts->ninclude; i++)
            vec_push(L->a, &cands, arena_printf(L->a, "%s/%s", L->opts->include[i], p));
        const char *sp = getenv("SPDL_PATH");
        while (sp && *sp) {
            const char *colon = strchr(sp, ':');
            size_t n = colon ? (size_t)(colon - sp) : strlen(sp);
            if (n)
                vec_push(L->a, &cands, arena_printf(L->a, "%.*s/%s", (int)n, sp, p));
            sp = colon ? colon + 1 : NULL;
        }
        if (strncmp(p, "std/", 4) == 0 && L->stdlib[0])
            vec_push(L->a, &cands, arena_printf(L->a, "%s/%s", L->stdlib, p + 4));
    }
    size_t len = 1;
    for (int i = 0; i < cands.len; i++) {
        if (is_file(cands.items[i]))
            return cands.items[i];
        len += strlen(cands.items[i]) + 2;
    }
    char *t = arena_alloc(L->a, len);
    for (int i = 0; i < cands.len; i++) {
        strcat(t, cands.items[i]);
        if (i + 1 < cands.len)
            strcat(t, ", ");
    }
    *tried = t;
    return NULL;
}

static bool seen(Loader *L, const char *real)
{
    for (int i = 0; i < L->nseen; i++)
        if (strcmp(L->seen[i], real) == 0)
            return true;
    return false;
}

static void mark_seen(Loader *L, const char *real)
{
    if (L->nseen == L->capseen) {
        int cap = L->capseen ? L->capseen * 2 : 16;
        const char **s = ARENA_ARRAY(L->a, const char *, cap);
        if (L->nseen)
            memcpy(s, L->seen, sizeof *s * (size_t)L->nseen);
        L->seen = s;
        L->capseen = cap;
    }
    L->seen[L->nseen++] = real;
}

static void load_file(Loader *L, int file, Span at, bool prelude);

static void load_import(Loader *L, const Item *imp, const char *importer)
{
    const char *p = imp->name.s;
    if (!*p) {
        diag_error(L->d, imp->name.span, "empty import path");
        return;
    }
    char *tried = NULL;
    const char *path = resolve_path(L, importer, p, &tried);
    char real[PATH_MAX];
    const char *rp;
    if (path)
        rp = realpath(path, real) ? real : path;
    else if (strcmp(p, PRELUDE_PATH) == 0 && !L->opts->no_prelude)
        rp = BUILTIN_PRELUDE; /* the built-in copy, already loaded */
    else {
        Diag *g = diag_error(L->d, imp->name.span, "cannot find import '%s'", p);
        diag_note(L->d, g, NO_SPAN, "searched: %s", tried);
        note_chain(L, g);
        diag_note(L->d, g, NO_SPAN, "add a directory to the search path with -I DIR or SPDL_PATH");
        return;
    }
    for (int i = 0; i < L->depth; i++) {
        if (strcmp(L->stack[i].real, rp) == 0) {
            /* Name the whole loop: a.spn -> b.spn -> c.spn -> a.spn. */
            const char *chain = diag_file(L->d, L->stack[i].file)->path;
            for (int j = i + 1; j < L->depth; j++)
                chain = arena_printf(L->a, "%s -> %s", chain, diag_file(L->d, L->stack[j].file)->path);
            Diag *g = i == L->depth - 1
                          ? diag_error(L->d, imp->name.span, "import cycle: '%s' imports itself", chain)
                          : diag_error(L->d, imp->name.span, "import cycle: %s -> %s", chain,
                                       diag_file(L->d, L->stack[i].file)->path);
            for (int j = L->depth - 1; j > i; j--)
                diag_note(L->d, g, L->stack[j].at, "imported from here");
            diag_note(L->d, g, NO_SPAN, "remove one of the imports in the cycle");
            return;
        }
    }
    if (seen(L, rp))
        return; /* loaded once already: imports are idempotent */
    if (L->depth == (int)(sizeof L->stack / sizeof L->stack[0])) {
        Diag *g = diag_error(L->d, imp->name.span, "imports nested more than %d deep", L->depth);
        note_chain(L, g);
        return;
    }
    int file = read_file(L->d, path, imp->name.span, rp);
    if (file >= 0)
        load_file(L, file, imp->name.span, false);
}

static void load_file(Loader *L, int file, Span at, bool prelude)
{
    const SourceFile *f = diag_file(L->d, file);
    mark_seen(L, f->real);
    L->stack[L->depth].real = f->real;
    L->stack[L->depth].file = file;
    L->stack[L->depth].at = at;
    L->depth++;
    Item *before = L->ast->items_tail;
    parse_file(L->a, L->d, file, L->ast);
    Item *it = before ? before->next : L->ast->items;
    /* Imports are loaded after the file's own items are parsed; their items
     * are appended behind, which the resolver does not mind (it collects
     * every top-level name before resolving any body). */
    PtrVec imports = {0};
    for (; it; it = it->next) {
        it->prelude = prelude;
        if (it->kind == I_IMPORT)
            vec_push(L->a, &imports, it);
    }
    const char *path = f->path;
    for (int i = 0; i < imports.len && !diag_full(L->d); i++)
        load_import(L, imports.items[i], path);
    L->depth--;
}

int source_load(Arena *a, Diags *d, const char *path, const SourceOpts *opts, Ast *ast)
{
    Loader L = {.a = a, .d = d, .opts = opts, .ast = ast};
    L.stdlib = source_stdlib_dir(a, opts);
    if (!opts->no_prelude) {
        int pf = -1;
        const char *pp = L.stdlib[0] ? arena_printf(a, "%s/schemes.spn", L.stdlib) : NULL;
        if (pp && is_file(pp))
            pf = source_read(d, pp, NO_SPAN);
        if (pf < 0)
            pf = diag_add_file(d, BUILTIN_PRELUDE, spdl_prelude_text, spdl_prelude_len, BUILTIN_PRELUDE);
        load_file(&L, pf, NO_SPAN, true);
    }
    int file = source_read(d, path, NO_SPAN);
    if (file < 0)
        return -1;
    if (seen(&L, diag_file(d, file)->real))
        return file;
    load_file(&L, file, NO_SPAN, false);
    return file;
}
