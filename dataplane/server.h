/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server: one generation, the front TLS contexts (one per HTTPS address, for the life of the
 * process), and the workers. main.c creates it from a validated configuration, starts it, and
 * stops it on SIGTERM or SIGINT.
 */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stdbool.h>

#include "aegis/err.h"
#include "aegis/rconf.h"

struct dp_server;

/*
 * Builds a server for rc (taking a reference) with n_workers workers: checks that no other process
 * holds the addresses, builds the TLS contexts and the generation, and opens every worker's
 * sockets. Nothing is served until dp_server_start.
 */
int dp_server_new(struct rconf *rc, unsigned n_workers, struct dp_server **out,
                  struct aegis_err *err);
int dp_server_start(struct dp_server *s, struct aegis_err *err);
/*
 * Stops accepting, lets every worker finish its connections (up to its drain deadline) and joins
 * them. Returns true when every connection finished.
 */
bool dp_server_stop(struct dp_server *s);
/* Frees the server. After an incomplete drain the h2o state still referenced by open connections
 * is left alone for the process exit to reclaim. Accepts NULL. */
void dp_server_free(struct dp_server *s);

#endif
