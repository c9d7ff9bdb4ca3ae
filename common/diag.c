/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics (diag.h): the list of every problem found in the input, kept with its place and
 * resource, sorted the way a compiler reports them, and formatted in compiler style:
 *   file:line:col: [warning: ]Kind ns/name: path: message
 * The list is bounded by AEGIS_LIMIT_DIAGS; past it, diagnostics are only counted.
 */
#include "aegis/diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"

void aegis_diags_init(struct aegis_diags *d)
{
    memset(d, 0, sizeof(*d));
}

static void diag_dispose(struct aegis_diag *dg)
{
    free(dg->file);
    free(dg->kind);
    free(dg->ns);
    free(dg->name);
    free(dg->path);
    free(dg->msg);
}

void aegis_diags_dispose(struct aegis_diags *d)
{
    size_t i;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++)
        diag_dispose(&d->v[i]);
    free(d->v);
    memset(d, 0, sizeof(*d));
}

static char *dup_or_null(const char *s)
{
    return s ? aegis_strdup(s) : NULL;
}

/* Tells the compiler fmt is a printf format fed from ap (diag.h leaves the attribute off). */
void aegis_diags_vadd(struct aegis_diags *d, enum aegis_severity sev,
                      const struct aegis_diag_loc *loc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

void aegis_diags_vadd(struct aegis_diags *d, enum aegis_severity sev,
                      const struct aegis_diag_loc *loc, const char *fmt, va_list ap)
{
    struct aegis_diag *dg;
    va_list aq;
    int n;

    /* The counts include what is dropped, so a summary line stays true past the limit. */
    if (sev == AEGIS_SEV_ERROR)
        d->nerrors++;
    else
        d->nwarnings++;
    if (d->n >= AEGIS_LIMIT_DIAGS) {
        d->dropped++;
        return;
    }
    aegis_grow((void **)&d->v, &d->cap, d->n + 1, sizeof(*d->v));
    dg = &d->v[d->n++];
    memset(dg, 0, sizeof(*dg));
    dg->sev = sev;
    if (loc != NULL) {
        dg->file = dup_or_null(loc->file);
        dg->mark = loc->mark;
        dg->kind = dup_or_null(loc->kind);
        dg->ns = dup_or_null(loc->ns);
        dg->name = dup_or_null(loc->name);
        dg->path = dup_or_null(loc->path);
    }
    va_copy(aq, ap);
    n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) {
        /* A format the C library cannot render is a programming error; keep something. */
        dg->msg = aegis_strdup(fmt);
        return;
    }
    dg->msg = aegis_malloc((size_t)n + 1);
    vsnprintf(dg->msg, (size_t)n + 1, fmt, ap);
}

void aegis_diags_add(struct aegis_diags *d, enum aegis_severity sev,
                     const struct aegis_diag_loc *loc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    aegis_diags_vadd(d, sev, loc, fmt, ap);
    va_end(ap);
}

/* Diagnostics without a file sort first, then by file name, line and column. */
static int place_cmp(const struct aegis_diag *a, const struct aegis_diag *b)
{
    int c;

    if (a->file == NULL || b->file == NULL) {
        c = (a->file != NULL) - (b->file != NULL);
        if (c != 0)
            return c;
    } else {
        c = strcmp(a->file, b->file);
        if (c != 0)
            return c;
    }
    if (a->mark.line != b->mark.line)
        return a->mark.line < b->mark.line ? -1 : 1;
    if (a->mark.col != b->mark.col)
        return a->mark.col < b->mark.col ? -1 : 1;
    return 0;
}

void aegis_diags_sort(struct aegis_diags *d)
{
    struct aegis_diag *tmp, *src, *dst, *swap;
    size_t width, lo, mid, hi, i, j, k;

    if (d->n < 2)
        return;
    /* qsort is not stable; a bottom-up merge sort keeps the order of diagnostics at one place. */
    tmp = aegis_calloc(d->n, sizeof(*tmp));
    src = d->v;
    dst = tmp;
    for (width = 1; width < d->n; width *= 2) {
        for (lo = 0; lo < d->n; lo += 2 * width) {
            mid = lo + width < d->n ? lo + width : d->n;
            hi = lo + 2 * width < d->n ? lo + 2 * width : d->n;
            i = lo;
            j = mid;
            k = lo;
            while (i < mid && j < hi)
                dst[k++] = place_cmp(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        swap = src;
        src = dst;
        dst = swap;
    }
    if (src != d->v)
        memcpy(d->v, src, d->n * sizeof(*d->v));
    free(tmp);
}

/* An snprintf-style appender: writes what fits, always NUL-terminates, counts what it needed. */
struct out {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL,
                  o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

size_t aegis_diag_format(const struct aegis_diag *dg, char *buf, size_t size)
{
    struct out o = {buf, size, 0};

    if (size > 0)
        buf[0] = '\0';
    if (dg->file != NULL) {
        if (dg->mark.line == 0)
            put(&o, "%s: ", dg->file);
        else if (dg->mark.col == 0)
            put(&o, "%s:%u: ", dg->file, dg->mark.line);
        else
            put(&o, "%s:%u:%u: ", dg->file, dg->mark.line, dg->mark.col);
    }
    if (dg->sev == AEGIS_SEV_WARNING)
        put(&o, "warning: ");
    if (dg->kind != NULL) {
        if (dg->name == NULL)
            put(&o, "%s: ", dg->kind);
        else if (dg->ns == NULL)
            put(&o, "%s %s: ", dg->kind, dg->name);
        else
            put(&o, "%s %s/%s: ", dg->kind, dg->ns, dg->name);
    }
    if (dg->path != NULL)
        put(&o, "%s: ", dg->path);
    put(&o, "%s", dg->msg ? dg->msg : "");
    return o.len;
}
