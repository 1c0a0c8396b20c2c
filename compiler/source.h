/* source.h - reading .spn files and resolving imports.
 *
 * `import "p"` is searched relative to the importing file, then in each -I
 * directory, then in each SPDL_PATH entry, then (for "std/..." paths) in the
 * standard library directory. The standard library's std/schemes.spn is
 * loaded first as a prelude, so `euler` needs no import. Files are loaded
 * once (by real path); an import cycle is an error that shows the chain. */
#ifndef SPDL_SOURCE_H
#define SPDL_SOURCE_H

#include "ast.h"

enum { SOURCE_MAX_BYTES = 64 << 20, SOURCE_MAX_INCLUDE = 32 };

typedef struct SourceOpts {
    const char *include[SOURCE_MAX_INCLUDE];
    int ninclude;
    const char *stdlib_dir;   /* NULL: next to the executable, then the install dir */
    bool no_prelude;
} SourceOpts;

/* Loads the prelude, path and everything it imports into ast. Returns the
 * file index of path, or -1 if it could not be read (reported). */
int source_load(Arena *a, Diags *d, const char *path, const SourceOpts *opts, Ast *ast);

/* Reads a whole file into the registry; -1 and a diagnostic at `from` on failure. */
int source_read(Diags *d, const char *path, Span from);

/* The standard library directory in use ("" if only the built-in copy). */
const char *source_stdlib_dir(Arena *a, const SourceOpts *opts);

#endif
