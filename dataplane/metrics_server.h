/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics listener (--metrics-listen ADDR:PORT): a thread of its own with its own h2o event
 * loop, serving GET /metrics (the exposition of metrics.h, "text/plain; version=0.0.4") over plain
 * HTTP/1.1, and 404 for anything else. It is kept apart from the workers so that a scrape never
 * delays a proxied request, and so that it answers even while the workers are busy. It carries no
 * secret (host names, counters, certificate expiry dates), hence no TLS.
 */
#ifndef DP_METRICS_SERVER_H
#define DP_METRICS_SERVER_H

#include "aegis/err.h"

struct dp_metrics_server;

/*
 * Binds addr ("127.0.0.1:9145", "[::1]:9145"; numeric addresses only) without SO_REUSEPORT - a
 * second dataplane on the same metrics port is refused with -EADDRINUSE - and starts the thread.
 */
int dp_metrics_server_start(const char *addr, struct dp_metrics_server **out,
                            struct aegis_err *err);
/* Stops accepting, waits briefly for open scrapes to finish, joins the thread and frees the
 * server. Accepts NULL. */
void dp_metrics_server_stop(struct dp_metrics_server *s);

#endif
