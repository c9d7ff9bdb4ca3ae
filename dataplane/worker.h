/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker threads: each runs its own h2o event loop over its own SO_REUSEPORT listening sockets, so
 * workers share nothing on the request path but the immutable generations.
 *
 * A worker serves one generation at a time through one h2o context (struct dp_ctx); a
 * configuration swap (dp_worker_swap) gives it a new context for the new generation, accepts new
 * connections on it, and asks the old context to shut down: HTTP/2 connections get GOAWAY, HTTP/1
 * ones close after their next response (the router adds Connection: close), websockets and long
 * streams run to their end. The shutdown waits until no TLS handshake has been in progress on the
 * old context for a moment (DP_SHUTDOWN_GRACE_MS): h2o sends the first, "shutdown imminent" GOAWAY
 * only to the HTTP/2 connections that exist when asked (one whose handshake completed later would
 * get only the final GOAWAY, a second after, dropping the request just sent on it), and it queues
 * that GOAWAY even on a connection whose client preface it has not read yet - before its own
 * SETTINGS, which the client takes for a protocol error. The old context is disposed at the top of the loop - never inside
 * a socket callback, since h2o_context_dispose asserts that no timer of the context is pending -
 * once its last connection is gone, and its generation reference goes with it.
 *
 * Stopping is graceful: the worker closes its listening sockets, shuts its contexts down and keeps
 * running until its last connection is gone or the drain deadline passes.
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

/* How long a retired context must have had no TLS handshake in progress before it is shut down:
 * long enough for a client that just finished its handshake to have sent the HTTP/2 preface. */
#define DP_SHUTDOWN_GRACE_MS 250

/* What a worker listens on: an address, and the front TLS context for HTTPS (NULL: plain). */
struct dp_listen_spec {
    const struct rconf_listener *addr;
    SSL_CTX *ssl_ctx;
};

struct dp_worker_listener {
    struct dp_worker *worker;
    h2o_socket_t *sock; /* NULL once closed */
    SSL_CTX *ssl_ctx;   /* the front TLS context; NULL: plain HTTP */
};

/* One h2o context of a worker, serving one generation. */
struct dp_ctx {
    h2o_context_t ctx;
    struct dp_worker *worker;
    struct dp_gen *gen; /* a reference, dropped when the context is disposed */
    /* One accept context per listener of the worker. h2o keeps a pointer to the accept context
     * while a TLS handshake is in progress and reads its context and hosts only when the
     * handshake completes, so each context has its own: a connection is served by the context
     * it was accepted (and counted) on, even when a swap happens during its handshake. */
    h2o_accept_ctx_t *accept;
    size_t nconns;       /* connections accepted on it and still open */
    bool shutdown;       /* h2o_context_request_shutdown was called */
    int64_t quiet_ms;    /* retired: when it was first seen with no handshake in progress; 0: not
                         * yet */
    struct dp_ctx *next; /* in the worker's list of retired contexts */
};

/*
 * Generations no longer current, kept until nothing else holds them and then freed by the worker
 * that owns the list (the first one). Why one thread: h2o 2.2.5's built-in proxy puts each socket
 * pool's timer on the loop of the first context initialized for the generation - the first
 * worker's, since swaps visit the workers in order - so the h2o configuration must be disposed on
 * that worker's thread (or once its loop has stopped).
 */
struct dp_graveyard {
    pthread_mutex_t lock;
    struct dp_gen **v; /* each a reference */
    size_t n, cap;
};

enum dp_worker_msg_kind {
    DP_WORKER_MSG_STOP,
    DP_WORKER_MSG_SWAP,
};

/* A message to a worker; a swap message stays the sender's (dp_worker_swap waits for it). */
struct dp_worker_msg {
    h2o_multithread_message_t super;
    enum dp_worker_msg_kind kind;
    struct dp_gen *gen; /* SWAP: the new generation (the worker takes its own reference) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

struct dp_worker {
    unsigned id;
    pthread_t thread;
    bool running; /* the thread was started and not joined */
    bool drained; /* the worker stopped with no connection left */
    h2o_evloop_t *loop;
    struct dp_ctx *cur;             /* new connections are accepted here; NULL before init */
    struct dp_ctx *retired;         /* shut down, disposed once their last connection is gone */
    struct dp_graveyard *graveyard; /* freed on this worker's thread; NULL but for worker 0 */
    struct dp_worker_listener *listeners;
    size_t n_listeners;
    h2o_multithread_queue_t *queue; /* the worker's own (a context's queue dies with it) */
    h2o_multithread_receiver_t receiver;
    struct dp_worker_msg stop_message;
    size_t nconns; /* open connections, touched only by the worker's thread */
    bool stopping;
    int64_t deadline_ms; /* when stopping gives up waiting for connections */
};

/*
 * Prepares worker id to serve gen (taking a reference) on the n listeners of specs: creates its
 * loop and context and opens its sockets. Runs on the calling thread; dp_worker_start then hands
 * the worker to its own thread. graveyard (may be NULL) is the list this worker reaps. On
 * failure, dp_worker_dispose still releases what was made.
 */
int dp_worker_init(struct dp_worker *w, unsigned id, struct dp_gen *gen,
                   struct dp_graveyard *graveyard, const struct dp_listen_spec *specs, size_t n,
                   struct aegis_err *err);
int dp_worker_start(struct dp_worker *w, struct aegis_err *err);
/*
 * Makes the running worker serve gen for new connections (from any other thread): blocks until
 * the worker has switched. Open connections finish on their own generation.
 */
void dp_worker_swap(struct dp_worker *w, struct dp_gen *gen);
/* Asks the worker to stop (any thread); dp_worker_join waits for it. */
void dp_worker_request_stop(struct dp_worker *w);
void dp_worker_join(struct dp_worker *w);
/*
 * Disposes the worker's contexts and releases their generation references. The loop stays: h2o's
 * proxy handlers keep timers on the first worker's loop until the generation is disposed, so
 * dp_worker_destroy_loop comes after.
 */
void dp_worker_dispose(struct dp_worker *w);
void dp_worker_destroy_loop(struct dp_worker *w);

/* A connection of w was accepted on / closed on c (conn.c; on w's thread). */
void dp_worker_conn_opened(struct dp_ctx *c);
void dp_worker_conn_closed(struct dp_ctx *c);
/* True when c is the worker's current context (on the worker's thread). */
bool dp_worker_ctx_is_current(const struct dp_ctx *c);

/* The graveyard: dp_graveyard_add hands it a generation reference (any thread); dp_graveyard_reap
 * frees those nothing else holds (only_unused) or all of them (on the owner's thread, or once
 * the loops have stopped). */
void dp_graveyard_init(struct dp_graveyard *gy);
void dp_graveyard_add(struct dp_graveyard *gy, struct dp_gen *g);
size_t dp_graveyard_reap(struct dp_graveyard *gy, bool only_unused);
void dp_graveyard_dispose(struct dp_graveyard *gy);

#endif
