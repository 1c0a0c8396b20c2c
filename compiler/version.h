/* version.h - the compiler's version, printed by --version and written into
 * the header comment of every generated file. */
#ifndef SPDL_VERSION_H
#define SPDL_VERSION_H
#define SPDL_VERSION "0.1.0"
#endif
