/* test_error.c - every SPDL_E* code has its own message. */
#include <criterion/criterion.h>
#include <string.h>

#include "spdl.h"

Test(error, every_code_has_a_distinct_message)
{
    int codes[] = {SPDL_OK, SPDL_EINVAL, SPDL_ELABEL, SPDL_ENOCONV, SPDL_ENONFINITE, SPDL_EIO,
                   SPDL_ENOMEM, SPDL_EFORMAT, SPDL_EMODEL, SPDL_ENOTSUP};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert(strcmp(spdl_strerror(codes[i]), "unknown error code") != 0, "code %d", codes[i]);
        for (size_t j = 0; j < i; j++)
            cr_assert(strcmp(spdl_strerror(codes[i]), spdl_strerror(codes[j])) != 0);
    }
    cr_assert_str_eq(spdl_strerror(12345), "unknown error code");
}
