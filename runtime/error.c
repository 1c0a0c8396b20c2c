/* error.c - messages for the SPDL_E* codes of spdl.h. */
#include "spdl.h"

const char *spdl_strerror(int code)
{
    switch (code) {
    case SPDL_OK: return "success";
    case SPDL_EINVAL: return "invalid argument (a NULL pointer, batch 0, or a bad value)";
    case SPDL_ELABEL: return "a class label is not an integer in range";
    case SPDL_ENOCONV: return "the fixed-point inverse did not converge to its tolerance";
    case SPDL_ENONFINITE: return "a NaN or infinity appeared";
    case SPDL_EIO: return "input/output error";
    case SPDL_ENOMEM: return "out of memory";
    case SPDL_EFORMAT: return "malformed file";
    case SPDL_EMODEL: return "the file was made for another model";
    case SPDL_ENOTSUP: return "the model does not provide this function";
    }
    return "unknown error code";
}
