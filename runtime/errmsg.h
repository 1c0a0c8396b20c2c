/* errmsg.h - how libspdl's readers (data, safetensors) report an error:
 * a message into the caller's buffer and an error code back, so every
 * failure path is one `return spdl_fail(err, errlen, CODE, "...", ...)`. */
#ifndef SPDL_ERRMSG_H
#define SPDL_ERRMSG_H

#include <stddef.h>

#if defined(__GNUC__)
#define SPDL_PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define SPDL_PRINTF_LIKE(a, b)
#endif

/* Writes the message into err (when err and errlen allow), returns code. */
SPDL_PRINTF_LIKE(4, 5)
int spdl_fail(char *err, size_t errlen, int code, const char *fmt, ...);

/* strerror(e) into buf (thread-safe), or "error E". */
const char *spdl_errno_text(int e, char *buf, size_t len);

#endif
