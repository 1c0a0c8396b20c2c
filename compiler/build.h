/* build.h - `spdlc build`: emit the model's C, compile it with the system C
 * compiler and link it with libspdl's driver into one program; or, with
 * --python (DESIGN §10), into DIR/libM.so and the ctypes module DIR/M.py that
 * the spdl Python package (python/spdl) loads. */
#ifndef SPDL_BUILD_H
#define SPDL_BUILD_H

#include "emit_c.h"

enum { BUILD_MAX_LEVELS = 16 }; /* spdlc build --levels: the coarsest flows have 1/2^15 of their layers */

/* The program of levels[0..nlevels), each emitted with its opts: one
 * level is the model's own program; with more (spdlc build --levels, the
 * coarsest first, the model itself last) main hands them all to
 * spdl_main_levels, for `EXE train --multilevel`. Returns 0, or 1 after
 * reporting the error. With mpi (build --mpi, DESIGN §9) the program is
 * compiled by $MPICC (default mpicc, which runs $CC) with libspdl_mpi.a,
 * for mpirun; a clear error where there is no mpicc. */
int build_exe(Arena *a, Diags *d, int nlevels, const StepProgram *const *levels, const EmitOpts *opts, bool mpi,
              const char *exe);
/* The C prefix of level `level` (0 the coarsest) of nlevels: the model's
 * name for the finest, M_levelK (K from 1) below it. */
const char *build_level_prefix(Arena *a, const char *model, int level, int nlevels);

/* Writes outdir/libM.so (the generated code and libspdl's spdl_strerror,
 * -fPIC -O2) and outdir/M.py, which embeds the `spdlc check --json` object of
 * the model and o->cert. Returns 0, or 1 after reporting the error. */
int build_python(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o, const char *outdir);

#endif
