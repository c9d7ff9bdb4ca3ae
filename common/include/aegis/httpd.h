/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small plain-HTTP server on a thread of its own - one h2o event loop, one context, every
 * request handed to one function - for the endpoints that must answer apart from the real work:
 * the dataplane's metrics listener and the controller's status API. Nothing it serves may be
 * secret: there is no TLS.
 *
 * Every h2o object (loop, configuration, context, listening socket, connections) is made, used
 * and disposed on the server's own thread: h2o 2.2.5 keeps socket buffers in a thread-local
 * prototype of the thread that made the socket (h2o_socket_buffer_prototype is __thread), so
 * objects that cross threads are how buffers get freed on the wrong one. Only the listening file
 * descriptor is opened by the caller, so that a bad address or a port in use is reported at once.
 *
 * Built into its own library (aegis-httpd) because it needs h2o, which the rest of common/ does
 * not link.
 */
#ifndef AEGIS_HTTPD_H
#define AEGIS_HTTPD_H

#include <stddef.h>

#include "aegis/err.h"

struct st_h2o_req_t;
struct aegis_httpd;

struct aegis_httpd_opts {
    const char *addr;   /* "127.0.0.1:9145", "[::1]:9145": numeric (aegis/net.h) */
    const char *flag;   /* the setting, for messages: "--metrics-listen" */
    const char *holder; /* what else may hold the port, for messages; NULL: nothing */
    /* Answers req on the server's thread (h2o's on_req contract: return 0 once answered). */
    int (*on_req)(void *data, struct st_h2o_req_t *req);
    void *data;
    /* Called first on the server's thread (to name it in a log), or NULL. */
    void (*thread_init)(void);
};

/* Idle keep-alive clients are dropped after this long (h2o's default is 10 s); a stop waits at
 * most this plus a second for open requests. */
#define AEGIS_HTTPD_IDLE_TIMEOUT_MS 3000
#define AEGIS_HTTPD_BACKLOG 64

/* Binds o->addr (a port in use is -EADDRINUSE, naming o->holder) and starts the thread. */
int aegis_httpd_start(const struct aegis_httpd_opts *o, struct aegis_httpd **out,
                      struct aegis_err *err);
/*
 * Stops accepting, lets open requests finish (up to the drain time), joins the thread and frees
 * the server. Returns how many connections were still open and are abandoned (their memory is
 * left to the process exit; the caller logs it). Accepts NULL.
 */
size_t aegis_httpd_stop(struct aegis_httpd *s);

#endif
