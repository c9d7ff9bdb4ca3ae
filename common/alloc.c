/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The allocator wrapper (alloc.h). Every allocation of the project goes through here, so running
 * out of memory is handled in one place: a message on stderr and abort(). This is the only file
 * of common/ that prints, because an out-of-memory abort without a reason is hard to diagnose.
 */
#include "aegis/alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size)
{
    fprintf(stderr, "aegis: out of memory allocating %zu bytes\n", size);
    abort();
}

void *aegis_malloc(size_t size)
{
    /* malloc(0) may return NULL on success; asking for one byte keeps NULL meaning failure. */
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        oom(size);
    return p;
}

void *aegis_calloc(size_t nmemb, size_t size)
{
    void *p;

    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    if (nmemb > SIZE_MAX / size)
        oom(SIZE_MAX);
    p = calloc(nmemb, size);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *aegis_realloc(void *ptr, size_t size)
{
    /* realloc(p, 0) may free p; a one-byte block keeps the pointer valid for the caller. */
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        oom(size);
    return p;
}

void aegis_grow(void **ptr, size_t *cap, size_t need, size_t elsize)
{
    size_t ncap;

    if (need <= *cap)
        return;
    /* Doubling keeps appends amortised O(1); 8 avoids many tiny reallocations at the start. */
    ncap = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
    if (ncap < 8)
        ncap = 8;
    if (ncap < need)
        ncap = need;
    if (elsize != 0 && ncap > SIZE_MAX / elsize)
        oom(SIZE_MAX);
    *ptr = aegis_realloc(*ptr, ncap * elsize);
    *cap = ncap;
}

char *aegis_strdup(const char *s)
{
    return aegis_strndup(s, strlen(s));
}

char *aegis_strndup(const char *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    size_t len = nul ? (size_t)(nul - s) : n;
    char *p;

    if (len == SIZE_MAX)
        oom(SIZE_MAX);
    p = aegis_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *aegis_asprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        /* Only a bad format or an unconvertible wide string fails: a programming error. */
        fprintf(stderr, "aegis: aegis_asprintf: cannot format \"%s\"\n", fmt);
        abort();
    }
    p = aegis_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
