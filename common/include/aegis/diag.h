/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics: the list of every problem found in a set of input files, each naming the file,
 * line and column, the resource, the field path, and what to do. Validation reports all of them
 * rather than stopping at the first, so this list (not struct aegis_err) carries them.
 *
 * Printed form (compiler style):
 *   file:line:column: Certificate default/app: spec.dnsNames[2]: "exa mple.com" is not a valid DNS name
 *   file:line:column: warning: Host default/web: spec.upstreamTLS.insecureSkipVerify: ...
 */
#ifndef AEGIS_DIAG_H
#define AEGIS_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* A place in a source file; line and column are 1-based, 0 when unknown. */
struct aegis_mark {
    unsigned line;
    unsigned col;
};

enum aegis_severity {
    AEGIS_SEV_ERROR,
    AEGIS_SEV_WARNING,
};

struct aegis_diag {
    enum aegis_severity sev;
    char *file; /* NULL when not from a file */
    struct aegis_mark mark;
    char *kind; /* "Certificate"; NULL when the document has no known kind */
    char *ns;   /* NULL when unknown */
    char *name; /* NULL when unknown */
    char *path; /* "spec.dnsNames[2]"; NULL for the document or file as a whole */
    char *msg;
};

struct aegis_diags {
    struct aegis_diag *v;
    size_t n;
    size_t cap;
    size_t nerrors; /* errors, including those dropped past AEGIS_LIMIT_DIAGS */
    size_t nwarnings;
    size_t dropped;
};

/* Where a diagnostic belongs; every pointer is borrowed and copied by aegis_diags_add. */
struct aegis_diag_loc {
    const char *file;
    struct aegis_mark mark;
    const char *kind;
    const char *ns;
    const char *name;
    const char *path;
};

void aegis_diags_init(struct aegis_diags *d);
void aegis_diags_dispose(struct aegis_diags *d);
void aegis_diags_add(struct aegis_diags *d, enum aegis_severity sev,
                     const struct aegis_diag_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void aegis_diags_vadd(struct aegis_diags *d, enum aegis_severity sev,
                      const struct aegis_diag_loc *loc, const char *fmt, va_list ap);
/* Sorts by file, line, column, keeping the order of equal places. */
void aegis_diags_sort(struct aegis_diags *d);

/* Formats one diagnostic in the printed form above (no newline); returns the length it needed. */
size_t aegis_diag_format(const struct aegis_diag *dg, char *buf, size_t size);

#endif
