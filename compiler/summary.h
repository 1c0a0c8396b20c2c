/* summary.h - the readable and the JSON description of a checked model that
 * `spdlc check` prints, and a small JSON writer shared with certificates. */
#ifndef SPDL_SUMMARY_H
#define SPDL_SUMMARY_H

#include <stdio.h>

#include "resolve.h"

void summary_print(FILE *out, Arena *a, const Model *m, bool json);

/* JSON helpers: strings escaped per RFC 8259, numbers as %.17g (null if not finite). */
void json_str(FILE *out, const char *s);
void json_num(FILE *out, double x);
const char *param_kind_str(Arena *a, const Param *p);

#endif
