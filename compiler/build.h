/* build.h - `spdlc build`: emit the model's C, compile it with the system C
 * compiler and link it with libspdl's driver into one program; or, with
 * --python (DESIGN §10), into DIR/libM.so and the ctypes module DIR/M.py that
 * the spdl Python package (python/spdl) loads. */
#ifndef SPDL_BUILD_H
#define SPDL_BUILD_H

#include "emit_c.h"

/* Returns 0, or 1 after reporting the error. */
int build_exe(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o, const char *exe);

/* Writes outdir/libM.so (the generated code and libspdl's spdl_strerror,
 * -fPIC -O2) and outdir/M.py, which embeds the `spdlc check --json` object of
 * the model and o->cert. Returns 0, or 1 after reporting the error. */
int build_python(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o, const char *outdir);

#endif
