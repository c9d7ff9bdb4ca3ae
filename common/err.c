/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The error model (err.h): text for the project's error codes, generated from the one X-macro
 * table, with -errno passed through to strerror(), and the optional detail record.
 */
#include "aegis/err.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const texts[] = {
#define AEGIS_ERR_TEXT(name, text) text,
    AEGIS_ERRORS(AEGIS_ERR_TEXT)
#undef AEGIS_ERR_TEXT
};

const char *aegis_strerror(int code)
{
    int c;

    if (code == 0)
        return "success";
    if (code == INT_MIN)
        return "unknown error";
    /* Callers sometimes pass the positive form; both name the same error. */
    c = code < 0 ? -code : code;
    if (c > AEGIS_E_FIRST_ && c < AEGIS_E_LAST_)
        return texts[c - AEGIS_E_BASE];
    return strerror(c);
}

int aegis_err_set(struct aegis_err *err, int code, const char *where, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    snprintf(err->where, sizeof(err->where), "%s", where ? where : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}
