/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing the Prometheus text exposition format (0.0.4) into a growing buffer: what the
 * dataplane's and the controller's /metrics share.
 */
#ifndef AEGIS_PROMTEXT_H
#define AEGIS_PROMTEXT_H

#include <stddef.h>

/* A NUL-terminated text that grows as it is written; start it zeroed, free(p) when done. */
struct aegis_textbuf {
    char *p;
    size_t len, cap;
};

void aegis_textbuf_put(struct aegis_textbuf *b, const char *s, size_t n);
void aegis_textbuf_puts(struct aegis_textbuf *b, const char *s);
void aegis_textbuf_printf(struct aegis_textbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A label value, escaped as the format requires: \\, \" and \n. */
void aegis_prom_label_value(struct aegis_textbuf *b, const char *s);
/* The "# HELP" and "# TYPE" lines of a metric family. */
void aegis_prom_family(struct aegis_textbuf *b, const char *name, const char *type,
                       const char *help);

#endif
