/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The error model. Fallible functions return 0 or a negative code: -errno passes through, and
 * project codes live in their own range (AEGIS_E_BASE and up). Where a caller needs detail, an
 * optional struct aegis_err carries a fixed-size message and the place; nothing is allocated on
 * the error path.
 */
#ifndef AEGIS_ERR_H
#define AEGIS_ERR_H

#include <stddef.h>

#define AEGIS_E_BASE 10000

/* X(name, text) - the one table of project error codes. */
#define AEGIS_ERRORS(X)                                                                            \
    X(INVALID, "invalid input")                                                                    \
    X(SYNTAX, "syntax error")                                                                      \
    X(LIMIT, "input exceeds a limit")                                                              \
    X(NOTFOUND, "not found")                                                                       \
    X(EXISTS, "already exists")                                                                    \
    X(UNSUPPORTED, "not supported")                                                                \
    X(CRYPTO, "cryptographic operation failed")                                                    \
    X(STATE, "operation not valid in this state")

enum aegis_errcode {
    AEGIS_E_FIRST_ = AEGIS_E_BASE - 1,
#define AEGIS_ERR_ENUM(name, text) AEGIS_E_##name,
    AEGIS_ERRORS(AEGIS_ERR_ENUM)
#undef AEGIS_ERR_ENUM
        AEGIS_E_LAST_
};

#define AEGIS_ERR_MSG_MAX 512
#define AEGIS_ERR_WHERE_MAX 256

struct aegis_err {
    int code;                        /* the negative code also returned */
    char where[AEGIS_ERR_WHERE_MAX]; /* file:line:column, a YAML path, or a resource name */
    char msg[AEGIS_ERR_MSG_MAX];     /* what is wrong and how to fix it */
};

/* Text for a code returned by any aegis function (negative project code or -errno). */
const char *aegis_strerror(int code);

/*
 * Records an error in err (which may be NULL) and returns code, so callers can write
 * `return aegis_err_set(err, -AEGIS_E_INVALID, path, "...")`. where may be NULL.
 */
int aegis_err_set(struct aegis_err *err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
