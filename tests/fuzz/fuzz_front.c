/* fuzz_front.c - libFuzzer harness for the front end: lexer, parser and
 * resolver (names, shapes, tableaus, def expansion), with the standard
 * library prelude loaded, and the diagnostics printer. Each input is one
 * in-memory source file; imports are not followed (the harness reads no
 * files). Built and run by `make fuzz` (clang -fsanitize=fuzzer,address,
 * undefined); see tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "parse.h"
#include "resolve.h"
#include "summary.h"

extern const char spdl_prelude_text[];
extern const unsigned spdl_prelude_len;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w")))
        abort();
    if (size > UINT32_MAX / 2)
        return 0;
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a, null);
    Ast ast = {0};
    /* as source_load does: the prelude first, its items marked */
    int pf = diag_add_file(&d, "<builtin>/std/schemes.spn", spdl_prelude_text, spdl_prelude_len, NULL);
    parse_file(&a, &d, pf, &ast);
    for (Item *it = ast.items; it; it = it->next)
        it->prelude = true;
    int f = diag_add_file(&d, "fuzz.spn", (const char *)data, (uint32_t)size, NULL);
    parse_file(&a, &d, f, &ast);
    diag_flush(&d);
    /* as spdlc does: resolve only what parsed cleanly */
    if (d.errors == 0) {
        ResolveResult r = resolve(&a, &d, &ast, f, NULL);
        diag_flush(&d);
        if (r.model) {
            summary_print(null, &a, r.model, false);
            summary_print(null, &a, r.model, true);
        }
    }
    arena_free(&a);
    return 0;
}
