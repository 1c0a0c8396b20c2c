/* emit_c.h - C emission of a step program (DESIGN §6).
 *
 * Writes DIR/M.h and DIR/M.c: the forward pass, the exact adjoint of the
 * discrete computation (reverse mode through every stage, layer, the output
 * and the loss), parameter initialisation and projection, and the model
 * descriptor libspdl's driver uses. Samples are processed in tiles of
 * SPDL_BT lanes, feature-major inside a tile, so every inner loop runs over
 * lanes with a compile-time trip count and vectorises. Each layer's input
 * state is stored (--memory=store); the backward sweep recomputes one layer's
 * intermediates from it and reverses them. */
#ifndef SPDL_EMIT_C_H
#define SPDL_EMIT_C_H

#include "check.h"

typedef enum { MEMORY_STORE, MEMORY_INVERT, MEMORY_CHECKPOINT } MemoryMode;

typedef struct EmitOpts {
    const char *dir;
    const char *prefix; /* of the files and C names (DIR/P.h, P_forward, ...); NULL: the model's name.
                           The descriptor's name is the model's either way */
    bool fp32;          /* --precision float: compute in float */
    bool standalone;    /* also write spdl.h next to M.h */
    MemoryMode memory;
    const char *source_path;    /* as given on the command line, for comments */
    const char *source_hash;    /* FNV-1a of the source text */
    double lipschitz;           /* the certificate's bound on x -> logits, INFINITY if none */
    const Certificate *cert;    /* the inverse of each update, when the model inverts */
} EmitOpts;

/* Returns 0, or 1 after reporting an error (I/O, unsupported construct). */
int emit_c(Arena *a, Diags *d, const StepProgram *p, const EmitOpts *o);

/* FNV-1a 64 of a buffer, as 16 hex digits (arena copy). */
const char *emit_hash(Arena *a, const char *text, size_t len);

#endif
