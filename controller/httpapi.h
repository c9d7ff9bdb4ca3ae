/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's HTTP port (--http-listen ADDR:PORT): a thread of its own with its own h2o event
 * loop, serving the read-only status API, /healthz, /readyz and /metrics (statusapi.h) over plain
 * HTTP/1.1. It is kept off the reconcile loop's thread so that a scrape never delays a reconcile
 * and /healthz can tell a stuck loop. Nothing it serves is secret (statuses, names, counters),
 * hence no TLS; bind it to loopback or a management network.
 */
#ifndef AEGIS_HTTPAPI_H
#define AEGIS_HTTPAPI_H

#include "aegis/err.h"

struct httpapi;

/*
 * Binds addr ("127.0.0.1:9180", "[::1]:9180"; numeric addresses only; a port in use is
 * -EADDRINUSE) and starts the thread, which answers from the status files below status_dir
 * (copied).
 */
int httpapi_start(const char *addr, const char *status_dir, struct httpapi **out,
                  struct aegis_err *err);
/* Stops accepting, waits briefly for open requests, joins the thread, frees. Accepts NULL. */
void httpapi_stop(struct httpapi *s);

#endif
