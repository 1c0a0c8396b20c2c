/* safetensors.h - weights and checkpoints in the safetensors format.
 *
 * The published layout: an 8-byte little-endian unsigned header length N,
 * N bytes of UTF-8 JSON mapping each tensor name to
 * {"dtype": "F64", "shape": [...], "data_offsets": [begin, end]} (offsets
 * relative to the data section) plus an optional "__metadata__" object of
 * string -> string, then the raw little-endian data. spdl writes F64 only and
 * reads F64 (and F32, converted). No global state: safe from several threads. */
#ifndef SPDL_SAFETENSORS_H
#define SPDL_SAFETENSORS_H

#include <stddef.h>

#include "spdl.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spdl_tensor { char *name; int rank; size_t shape[4]; double *data; size_t size; } spdl_tensor;
typedef struct spdl_st {
    spdl_tensor *t; size_t nt;
    char **meta_key, **meta_val; size_t nmeta;   /* __metadata__ */
} spdl_st;

/* Writes atomically: a unique temp file in the same directory (mkstemp), write, fsync, rename over path,
   fsync the directory. Tensors are F64; metadata strings are JSON-escaped.
   Each tensor needs a unique non-empty UTF-8 name other than "__metadata__", 0 <= rank <= 4,
   size == the product of shape[0..rank) (1 for rank 0) and finite data (SPDL_ENONFINITE otherwise, and
   the file at `path` is left as it was). The header is padded with spaces so the data starts at a multiple
   of 8 bytes. A new file gets mode 0644; an existing file keeps its mode. */
int  spdl_st_write(const char *path, const spdl_tensor *t, size_t nt, const char *const *meta_key,
                   const char *const *meta_val, size_t nmeta, char *err, size_t errlen);

/* Removes the temp files ".BASE.XXXXXX" next to path that a killed spdl_st_write left (those no live
   writer holds locked). spdl_st_write calls it; a program may call it at start. */
void spdl_st_remove_stale(const char *path);

/* Reads and validates: header length within the file, JSON well-formed (a small strict JSON parser:
   objects, arrays, strings with escapes incl. \uXXXX, numbers, no trailing garbage, nesting limited), every
   tensor F64 (F32 is accepted and converted), offsets inside the data section, end - begin == 8 * product(shape),
   no overlapping tensors (and no bytes that belong to no tensor), all values finite (a NaN or infinity is
   SPDL_ENONFINITE naming the tensor). Tensors keep the header's order. On failure `out` is left empty. */
int  spdl_st_read(const char *path, spdl_st *out, char *err, size_t errlen);

/* The tensor or metadata value of that name, or NULL. */
const spdl_tensor *spdl_st_find(const spdl_st *st, const char *name);
const char *spdl_st_meta(const spdl_st *st, const char *key);

void spdl_st_free(spdl_st *st);

#ifdef __cplusplus
}
#endif

#endif
