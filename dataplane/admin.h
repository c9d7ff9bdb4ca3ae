/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API server: an h2o event loop on a thread of its own, serving the dispatch of
 * admin_api.c on a unix socket (mode 0600) and, when configured, on TCP with mutual TLS
 * (admin_tls.h). Requests are handled one at a time on that thread; a PUT /config blocks it while
 * the configuration is validated and swapped in, never the workers.
 */
#ifndef DP_ADMIN_H
#define DP_ADMIN_H

#include <openssl/ssl.h>

#include "admin_api.h"
#include "aegis/err.h"

struct dp_admin;

struct dp_admin_opts {
    const char *socket_path; /* --admin-socket; NULL: none */
    const char *listen;      /* --admin-listen "ADDR:PORT" / "[V6]:PORT"; NULL: none */
    SSL_CTX *ssl_ctx;        /* with listen: the mutual TLS context (the admin takes it) */
};

/*
 * Opens the sockets and starts the thread; backend is borrowed and must outlive the admin. A
 * socket file left by a dataplane that is gone is replaced; one that still answers, or a path
 * that is not a socket, is refused.
 */
int dp_admin_start(const struct dp_admin_opts *o, const struct dp_admin_backend *backend,
                   struct dp_admin **out, struct aegis_err *err);
/*
 * Stops serving and returns once the requests in progress are done (or abandoned after the
 * drain time); the thread stays, idle, until dp_admin_free.
 * Why it must stay: h2o 2.2.5 keeps each socket's input buffer in a thread-local prototype of the
 * thread that created the socket (h2o_socket_buffer_prototype is __thread), and a configuration
 * pushed through the admin API creates the server's loops, queues and listeners on this thread.
 * They are disposed when the server is freed, which must therefore happen while this thread - and
 * its thread-local storage - still exists. Accepts NULL.
 */
void dp_admin_stop(struct dp_admin *a);
/* Lets the thread end, removes the socket file and frees a; after the server is freed. Accepts
 * NULL. */
void dp_admin_free(struct dp_admin *a);

#endif
