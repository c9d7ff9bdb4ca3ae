/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus text format writer (promtext.h).
 */
#include "aegis/promtext.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aegis/alloc.h"

void aegis_textbuf_put(struct aegis_textbuf *b, const char *s, size_t n)
{
    aegis_grow((void **)&b->p, &b->cap, b->len + n + 1, 1);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void aegis_textbuf_puts(struct aegis_textbuf *b, const char *s)
{
    aegis_textbuf_put(b, s, strlen(s));
}

void aegis_textbuf_printf(struct aegis_textbuf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        aegis_textbuf_put(b, small, (size_t)n);
        return;
    }
    aegis_grow((void **)&b->p, &b->cap, b->len + (size_t)n + 1, 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void aegis_prom_label_value(struct aegis_textbuf *b, const char *s)
{
    for (const char *run = s;; s++) {
        const char *esc = NULL;

        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '"')
            esc = "\\\"";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s != '\0')
            continue;
        aegis_textbuf_put(b, run, (size_t)(s - run));
        if (esc == NULL)
            return;
        aegis_textbuf_puts(b, esc);
        run = s + 1;
    }
}

void aegis_prom_family(struct aegis_textbuf *b, const char *name, const char *type,
                       const char *help)
{
    aegis_textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}
