/* build.h - `spdlc build`: emit the model's C, compile it with the system C
 * compiler and link it with libspdl's driver into one program. */
#ifndef SPDL_BUILD_H
#define SPDL_BUILD_H

#include "emit_c.h"

/* Returns 0, or 1 after reporting the error. */
int build_exe(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o, const char *exe);

#endif
