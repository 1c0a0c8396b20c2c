/* rt_kernels.h - the generated code's kernels (spdl_kernels.h) in double,
 * for libspdl's own use: the random generator and the norm bounds. */
#ifndef SPDL_RT_KERNELS_H
#define SPDL_RT_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef double real;
#define SPDL_BT 64
#include "spdl_kernels.h"

#endif
