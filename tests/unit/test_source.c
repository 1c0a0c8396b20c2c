/* test_source.c - reading files and resolving imports: relative to the
 * importer, then -I, then SPDL_PATH, then the stdlib directory; imports are
 * loaded once; cycles and missing files are diagnosed with the chain. */
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

static char root[64];

/* Writes root/rel (creating directories) with text. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static const char *P(const char *rel)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 512, "%s/%s", root, rel);
    return b;
}

static void setup(void)
{
    strcpy(root, "/tmp/spdl-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    unsetenv("SPDL_PATH");
    unsetenv("SPDL_STDLIB");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(source, .init = setup, .fini = teardown);

/* Loads root/main.spn with opts; returns the names of top-level lets, in
 * item order, joined by spaces. */
static const char *load(Unit *u, SourceOpts *opts)
{
    static char names[512];
    names[0] = '\0';
    u->file = source_load(&u->arena, &u->d, P("main.spn"), opts, &u->ast);
    for (Item *it = u->ast.items; it; it = it->next)
        if (it->kind == I_LET) {
            strcat(names, names[0] ? " " : "");
            strcat(names, it->name.s);
        }
    return names;
}

Test(source, relative_to_the_importing_file)
{
    put("main.spn", "import \"sub/a.spn\"; let m = 1;");
    put("sub/a.spn", "import \"b.spn\"; let a = 1;");   /* sub/b.spn, relative to sub/a.spn */
    put("sub/b.spn", "let b = 1;");
    put("b.spn", "let wrong = 1;");
    Unit u;
    unit_init(&u);
    SourceOpts o = {.no_prelude = true};
    cr_assert_str_eq(load(&u, &o), "m a b");
    cr_assert_eq(u.d.errors, 0, "%s", unit_diags(&u));
    unit_free(&u);
}

Test(source, search_order_relative_then_I_then_SPDL_PATH_then_stdlib)
{
    put("main.spn", "import \"one.spn\"; import \"two.spn\"; import \"three.spn\"; import \"std/four.spn\";");
    put("one.spn", "let one_rel = 1;");
    put("inc/one.spn", "let one_inc = 1;");
    put("inc/two.spn", "let two_inc = 1;");
    put("path2/two.spn", "let two_path = 1;");
    put("path2/three.spn", "let three_path = 1;");
    put("lib/four.spn", "let four_lib = 1;");
    put("lib/schemes.spn", "let prelude = 1;");
    char sp[300];
    snprintf(sp, sizeof sp, "%s:%s", P("path1"), P("path2"));
    setenv("SPDL_PATH", sp, 1);
    Unit u;
    unit_init(&u);
    SourceOpts o = {.ninclude = 1, .stdlib_dir = P("lib")};
    o.include[0] = P("inc");
    cr_assert_str_eq(load(&u, &o), "prelude one_rel two_inc three_path four_lib");
    cr_assert_eq(u.d.errors, 0, "%s", unit_diags(&u));
    unit_free(&u);
}

Test(source, missing_import_lists_every_place_searched)
{
    put("main.spn", "\nimport \"nope.spn\";");
    setenv("SPDL_PATH", "/nonexistent/sp1::/nonexistent/sp2", 1);
    Unit u;
    unit_init(&u);
    SourceOpts o = {.ninclude = 1, .no_prelude = true};
    o.include[0] = "/nonexistent/inc";
    load(&u, &o);
    cr_assert_eq(u.d.errors, 1);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:2:8: error: cannot find import 'nope.spn'\n"
             "    2 | import \"nope.spn\";\n"
             "      |        ^~~~~~~~~~\n"
             "%s:2:8: note: searched: %s/nope.spn, /nonexistent/inc/nope.spn, /nonexistent/sp1/nope.spn, "
             "/nonexistent/sp2/nope.spn\n"
             "%s:2:8: note: add a directory to the search path with -I DIR or SPDL_PATH\n",
             P("main.spn"), P("main.spn"), root, P("main.spn"));
    cr_assert_str_eq(unit_diags(&u), want);
    unit_free(&u);
}

Test(source, each_file_is_loaded_once)
{
    put("main.spn", "import \"b.spn\"; import \"c.spn\"; import \"./b.spn\";");
    put("b.spn", "import \"d.spn\"; let b = 1;");
    put("c.spn", "import \"d.spn\"; let c = 1;");
    put("d.spn", "let d = 1;");
    Unit u;
    unit_init(&u);
    SourceOpts o = {.no_prelude = true};
    cr_assert_str_eq(load(&u, &o), "b d c");
    cr_assert_eq(u.d.errors, 0, "%s", unit_diags(&u));
    unit_free(&u);
}

Test(source, cycle_names_the_chain)
{
    put("main.spn", "import \"b.spn\";");
    put("b.spn", "import \"main.spn\";");
    Unit u;
    unit_init(&u);
    SourceOpts o = {.no_prelude = true};
    load(&u, &o);
    cr_assert_eq(u.d.errors, 1);
    char want[512];
    snprintf(want, sizeof want, "%s:1:8: error: import cycle: %s -> %s -> %s", P("b.spn"), P("main.spn"),
             P("b.spn"), P("main.spn"));
    cr_assert_str_eq(unit_first_line(&u), want);
    unit_free(&u);
}

Test(source, a_file_importing_itself)
{
    put("main.spn", "import \"main.spn\";");
    Unit u;
    unit_init(&u);
    SourceOpts o = {.no_prelude = true};
    load(&u, &o);
    char want[512];
    snprintf(want, sizeof want, "%s:1:8: error: import cycle: '%s' imports itself", P("main.spn"), P("main.spn"));
    cr_assert_str_eq(unit_first_line(&u), want);
    unit_free(&u);
}

Test(source, built_in_prelude_when_no_stdlib_is_installed)
{
    put("main.spn", "import \"std/schemes.spn\"; let m = 1;");
    Unit u;
    unit_init(&u);
    SourceOpts o = {.stdlib_dir = P("nowhere")};
    load(&u, &o);
    cr_assert_eq(u.d.errors, 0, "%s", unit_diags(&u));
    cr_assert_str_eq(diag_file(&u.d, 0)->path, "<builtin>/std/schemes.spn");
    int schemes = 0;
    for (Item *it = u.ast.items; it; it = it->next)
        schemes += it->kind == I_SCHEME && it->prelude;
    cr_assert_eq(schemes, 4, "euler, heun, kutta3, rk4");
    unit_free(&u);
}

Test(source, unreadable_inputs)
{
    Unit u;
    unit_init(&u);
    cr_assert_eq(source_read(&u.d, P("absent.spn"), NO_SPAN), -1);
    mkdir(P("dir.spn"), 0755);
    cr_assert_eq(source_read(&u.d, P("dir.spn"), NO_SPAN), -1);
    char want[1024];
    snprintf(want, sizeof want,
             "spdlc: error: cannot open '%s': No such file or directory\n"
             "spdlc: error: '%s' is a directory, not a .spn file\n",
             P("absent.spn"), P("dir.spn"));
    cr_assert_str_eq(unit_diags(&u), want);
    unit_free(&u);
}

Test(source, nul_bytes_are_kept)
{
    FILE *f = fopen(P("nul.spn"), "wb");
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    Unit u;
    unit_init(&u);
    int id = source_read(&u.d, P("nul.spn"), NO_SPAN);
    cr_assert_geq(id, 0);
    const SourceFile *sf = diag_file(&u.d, id);
    cr_assert_eq(sf->len, 3);
    cr_assert_eq(sf->text[1], '\0');
    cr_assert_eq(sf->text[2], 'b');
    cr_assert_eq(sf->text[3], '\0', "NUL sentinel after the text");
    unit_free(&u);
}
