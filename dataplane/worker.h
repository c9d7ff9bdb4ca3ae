/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker threads: each runs its own h2o event loop and context over its own SO_REUSEPORT listening
 * sockets, so workers share nothing on the request path but the immutable generation.
 *
 * Stopping is graceful: the worker closes its listening sockets, asks h2o to shut its connections
 * down (HTTP/2 GOAWAY; HTTP/1 connections close after their current response) and keeps running
 * until its last connection is gone or the drain deadline passes.
 */
#ifndef DP_WORKER_H
#define DP_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "aegis/err.h"
#include "aegis/rconf.h"

struct dp_gen;
struct dp_worker;

/* What a worker listens on: an address, and the front TLS context for HTTPS (NULL: plain). */
struct dp_listen_spec {
    const struct rconf_listener *addr;
    SSL_CTX *ssl_ctx;
};

struct dp_worker_listener {
    struct dp_worker *worker;
    h2o_socket_t *sock; /* NULL once closed */
    h2o_accept_ctx_t accept_ctx;
    bool tls;
};

struct dp_worker {
    unsigned id;
    pthread_t thread;
    bool running;       /* the thread was started and not joined */
    bool ctx_inited;    /* ctx holds a context to dispose */
    bool drained;       /* the worker stopped with no connection left */
    struct dp_gen *gen; /* a reference */
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    struct dp_worker_listener *listeners;
    size_t n_listeners;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t stop_message;
    size_t nconns; /* open connections, touched only by the worker's thread */
    bool stopping;
    uint64_t deadline_ms; /* when stopping gives up waiting for connections */
};

/*
 * Prepares worker id to serve gen (taking a reference) on the n listeners of specs: creates its
 * loop and context and opens its sockets. Runs on the calling thread; dp_worker_start then hands
 * the worker to its own thread. On failure, dp_worker_dispose still releases what was made.
 */
int dp_worker_init(struct dp_worker *w, unsigned id, struct dp_gen *gen,
                   const struct dp_listen_spec *specs, size_t n, struct aegis_err *err);
int dp_worker_start(struct dp_worker *w, struct aegis_err *err);
/* Asks the worker to stop (any thread); dp_worker_join waits for it. */
void dp_worker_request_stop(struct dp_worker *w);
void dp_worker_join(struct dp_worker *w);
/*
 * Releases the worker's generation reference. The loop stays: h2o's proxy handlers keep timers on
 * the first worker's loop until the generation is disposed, so dp_worker_destroy_loop comes after.
 */
void dp_worker_dispose(struct dp_worker *w);
void dp_worker_destroy_loop(struct dp_worker *w);

/* A connection of w was closed (conn.c; on w's thread). */
void dp_worker_conn_closed(struct dp_worker *w);

#endif
