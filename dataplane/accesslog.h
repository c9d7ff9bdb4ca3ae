/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The access log and the request metrics: an h2o logger registered on each generation's
 * catch-all path. h2o calls it once for every request it routed, when the request is disposed
 * (after the last byte of the response, or after the client went away). It counts the request in
 * metrics.h under its host, status and duration, and, when --access-log is given, writes one line
 * in logfmt (docs/metrics.md#access-log):
 *
 *   ts=2025-06-15T12:00:00.123Z host=default/app authority=app.example.com client=192.0.2.1
 *   method=GET path=/index.html proto=HTTP/2 status=200 bytes=512 dur_ms=1.234 tls=TLSv1.3
 *   sni=app.example.com upstream=http://10.0.0.5:8080
 *
 * (one line). The query string is never written: it often carries tokens and session ids.
 * Lines are buffered per worker context and written as runs of whole lines, each write(2) at most
 * DP_ACCESSLOG_LINE_MAX bytes (PIPE_BUF), so lines of different workers never interleave, on a
 * pipe as on a file opened for appending; a line is written at the latest a second after it was
 * made, and the context's disposal (a stop, a swapped-out generation) writes what is left.
 */
#ifndef DP_ACCESSLOG_H
#define DP_ACCESSLOG_H

#include <h2o.h>

#include "aegis/err.h"

struct dp_gen;

/* The longest line written (PIPE_BUF on Linux: atomic on a pipe too); longer values are cut. */
#define DP_ACCESSLOG_LINE_MAX 4096

/* The name of the request environment variable (h2o_req_getenv) in which the proxy leaves the
 * URL of the upstream that answered; "upstream=-" when it is not set. */
#define DP_ACCESSLOG_UPSTREAM_ENV "AEGIS_UPSTREAM"

/* Opens the access log before the workers start: "-" is standard output, anything else a file
 * opened for appending (created with mode 0640). */
int dp_accesslog_open(const char *path, struct aegis_err *err);
/* Closes it, once no worker runs. */
void dp_accesslog_close(void);
/* Registers the logger of generation g (borrowed: it outlives the pathconf) on pathconf. */
void dp_accesslog_register(h2o_pathconf_t *pathconf, struct dp_gen *g);

#endif
