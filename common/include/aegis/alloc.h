/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one allocator wrapper. Out of memory is not an error the daemons can recover from in a
 * useful way, so every allocation goes through these and aborts with a message on failure.
 */
#ifndef AEGIS_ALLOC_H
#define AEGIS_ALLOC_H

#include <stddef.h>

void *aegis_malloc(size_t size);
void *aegis_calloc(size_t nmemb, size_t size);
void *aegis_realloc(void *ptr, size_t size);
/* Grows *ptr (an array of *cap elements of elsize) so that it holds at least need elements. */
void aegis_grow(void **ptr, size_t *cap, size_t need, size_t elsize);
char *aegis_strdup(const char *s);
char *aegis_strndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *aegis_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
