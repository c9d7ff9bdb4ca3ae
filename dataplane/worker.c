/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker threads (worker.h).
 */
#include "worker.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "conn.h"
#include "gen.h"
#include "listener.h"
#include "log.h"

/* Connections accepted per wake-up of a listening socket, so one busy socket cannot starve the
 * connections already open. */
#define ACCEPT_BATCH 16
/* How long a stopping worker waits for its connections. An idle HTTP/1 keep-alive connection only
 * notices the shutdown at its request timeout (10 s by default in h2o). */
#define DRAIN_TIMEOUT_MS 15000
/* How often a stopping worker looks at its connection count and deadline. */
#define DRAIN_POLL_MS 50
/* How often a worker with retired contexts or generations to free looks at them: the loop is
 * otherwise woken only by its sockets and timers. */
#define REAP_POLL_MS 50

/* ---- contexts ---------------------------------------------------------------------------------- */

static struct dp_ctx *ctx_new(struct dp_worker *w, struct dp_gen *gen)
{
    struct dp_ctx *c = aegis_calloc(1, sizeof(*c));

    c->worker = w;
    c->gen = dp_gen_ref(gen);
    h2o_context_init(&c->ctx, w->loop, &gen->globalconf);
    c->accept = aegis_calloc(w->n_listeners + 1, sizeof(*c->accept));
    for (size_t i = 0; i < w->n_listeners; i++) {
        c->accept[i].ctx = &c->ctx;
        c->accept[i].hosts = gen->hosts;
        c->accept[i].ssl_ctx = w->listeners[i].ssl_ctx;
    }
    return c;
}

static bool timeout_empty(h2o_timeout_t *t)
{
    return h2o_linklist_is_empty(&t->_entries);
}

/*
 * True when h2o_context_dispose would find nothing pending on c: no connection of ours, none in
 * h2o's lists, no timer entry. The connection count drops in the socket's close callback, before
 * h2o has finished tearing the connection down, hence the second look at h2o's own state.
 */
static bool ctx_idle(struct dp_ctx *c)
{
    h2o_context_t *x = &c->ctx;

    if (c->nconns > 0 || !h2o_linklist_is_empty(&x->http1._conns) ||
        !h2o_linklist_is_empty(&x->http2._conns))
        return false;
    /* The HTTP/2 GOAWAY resend timer h2o_context_request_shutdown armed has nothing left to do. */
    if (h2o_timeout_is_linked(&x->http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&x->http2._graceful_shutdown_timeout);
    return timeout_empty(&x->zero_timeout) && timeout_empty(&x->one_sec_timeout) &&
           timeout_empty(&x->hundred_ms_timeout) && timeout_empty(&x->handshake_timeout) &&
           timeout_empty(&x->http1.req_timeout) && timeout_empty(&x->http2.idle_timeout) &&
           timeout_empty(&x->http2.graceful_shutdown_timeout) &&
           timeout_empty(&x->proxy.io_timeout);
}

static void ctx_free(struct dp_ctx *c)
{
    if (h2o_timeout_is_linked(&c->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&c->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&c->ctx);
    dp_gen_unref(c->gen);
    free(c->accept);
    free(c);
}

/* Disposes the retired contexts with nothing left on them and frees the unused generations of the
 * graveyard; at the top of the loop, outside every h2o callback. Returns true when something is
 * still waiting. */
static bool reap(struct dp_worker *w)
{
    struct dp_ctx **p = &w->retired;
    bool pending = false;

    while (*p != NULL) {
        struct dp_ctx *c = *p;

        /* No new connection reaches a retired context: once no handshake has been in progress
         * for the grace period, every connection it will have exists and has read its client
         * preface, so every one of them gets the first GOAWAY (worker.h). */
        if (!c->shutdown && !timeout_empty(&c->ctx.handshake_timeout)) {
            c->quiet_ms = 0;
        } else if (!c->shutdown && c->quiet_ms == 0) {
            c->quiet_ms = aegis_monotonic_ms();
        } else if (!c->shutdown && aegis_monotonic_ms() - c->quiet_ms >= DP_SHUTDOWN_GRACE_MS) {
            h2o_context_request_shutdown(&c->ctx);
            c->shutdown = true;
        }
        if (c->shutdown && ctx_idle(c)) {
            *p = c->next;
            dp_log(DP_LOG_DEBUG, "generation %lld: context disposed",
                   (long long)c->gen->rc->generation);
            ctx_free(c);
        } else {
            p = &c->next;
            pending = true;
        }
    }
    if (w->graveyard != NULL && dp_graveyard_reap(w->graveyard, true) > 0)
        pending = true;
    return pending;
}

/* ---- accepting --------------------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct dp_worker_listener *l = listener->data;
    struct dp_worker *w = l->worker;

    if (err != NULL || w->stopping)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);

        if (sock == NULL)
            break;
        dp_conn_attach(sock, w->cur, l->ssl_ctx != NULL);
        h2o_accept(&w->cur->accept[l - w->listeners], sock);
    }
}

/* ---- messages ---------------------------------------------------------------------------------- */

static void begin_stop(struct dp_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    w->deadline_ms = aegis_monotonic_ms() + DRAIN_TIMEOUT_MS;
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].sock != NULL) {
            h2o_socket_read_stop(w->listeners[i].sock);
            h2o_socket_close(w->listeners[i].sock);
            w->listeners[i].sock = NULL;
        }
    }
    h2o_context_request_shutdown(&w->cur->ctx);
    w->cur->shutdown = true;
    for (struct dp_ctx *c = w->retired; c != NULL; c = c->next) {
        if (!c->shutdown)
            h2o_context_request_shutdown(&c->ctx);
        c->shutdown = true;
    }
    dp_log(DP_LOG_DEBUG, "stopping: %zu connection(s) to finish", w->nconns);
}

static void do_swap(struct dp_worker *w, struct dp_gen *gen)
{
    struct dp_ctx *old = w->cur;

    if (w->stopping || old->gen == gen)
        return;
    w->cur = ctx_new(w, gen);
    old->next = w->retired;
    w->retired = old;
    /* The next reap shuts the old context down (HTTP/2 GOAWAY) once its handshakes are done;
     * HTTP/1 keep-alive connections are told by the router (Connection: close) at their next
     * request. */
    dp_log(DP_LOG_DEBUG, "generation %lld: serving; generation %lld: %zu connection(s) to finish",
           (long long)gen->rc->generation, (long long)old->gen->rc->generation, old->nconns);
}

static void msg_done(struct dp_worker_msg *m)
{
    pthread_mutex_lock(&m->lock);
    m->done = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct dp_worker *w = H2O_STRUCT_FROM_MEMBER(struct dp_worker, receiver, receiver);

    h2o_linklist_t *node = messages->next;

    /* Each message is detached before it is handled: a handled swap message belongs to its
     * sender again. h2o wants the list empty afterwards. */
    while (node != messages) {
        struct dp_worker_msg *m = H2O_STRUCT_FROM_MEMBER(struct dp_worker_msg, super.link, node);

        node = node->next;
        m->super.link.next = m->super.link.prev = NULL;
        if (m->kind == DP_WORKER_MSG_STOP) {
            begin_stop(w);
        } else {
            do_swap(w, m->gen);
            msg_done(m);
        }
    }
    h2o_linklist_init_anchor(messages);
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

int dp_worker_init(struct dp_worker *w, unsigned id, struct dp_gen *gen,
                   struct dp_graveyard *graveyard, const struct dp_listen_spec *specs, size_t n,
                   struct aegis_err *err)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->graveyard = graveyard;
    w->loop = h2o_evloop_create();
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_message);
    w->stop_message.kind = DP_WORKER_MSG_STOP;
    w->listeners = aegis_calloc(n + 1, sizeof(*w->listeners));
    for (size_t i = 0; i < n; i++) {
        struct dp_worker_listener *l = &w->listeners[i];
        int fd, r = dp_listener_open(specs[i].addr, &fd, err);

        if (r < 0)
            return r;
        l->worker = w;
        l->ssl_ctx = specs[i].ssl_ctx;
        l->sock = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        w->n_listeners++;
    }
    w->cur = ctx_new(w, gen);
    for (size_t i = 0; i < w->n_listeners; i++)
        h2o_socket_read_start(w->listeners[i].sock, on_accept);
    return 0;
}

static void *run(void *arg)
{
    struct dp_worker *w = arg;
    char name[16];

    snprintf(name, sizeof(name), "w%u", w->id);
    dp_log_set_thread(name);
    for (;;) {
        bool pending = reap(w);

        if (w->stopping && (w->nconns == 0 || aegis_monotonic_ms() >= w->deadline_ms))
            break;
        h2o_evloop_run(w->loop, w->stopping ? DRAIN_POLL_MS : pending ? REAP_POLL_MS : INT32_MAX);
    }
    /* One more turn frees the sockets closed during the last one. */
    h2o_evloop_run(w->loop, 0);
    w->drained = w->nconns == 0;
    if (!w->drained)
        dp_log(DP_LOG_WARNING, "%zu connection(s) still open after %d ms: abandoned", w->nconns,
               DRAIN_TIMEOUT_MS);
    else
        dp_log(DP_LOG_DEBUG, "stopped");
    return NULL;
}

int dp_worker_start(struct dp_worker *w, struct aegis_err *err)
{
    int r = pthread_create(&w->thread, NULL, run, w);

    if (r != 0)
        return aegis_err_set(err, -r, NULL, "cannot start worker %u: %s", w->id, strerror(r));
    w->running = true;
    return 0;
}

void dp_worker_swap(struct dp_worker *w, struct dp_gen *gen)
{
    struct dp_worker_msg m;

    memset(&m, 0, sizeof(m));
    m.kind = DP_WORKER_MSG_SWAP;
    m.gen = gen;
    pthread_mutex_init(&m.lock, NULL);
    pthread_cond_init(&m.cond, NULL);
    h2o_multithread_send_message(&w->receiver, &m.super);
    pthread_mutex_lock(&m.lock);
    while (!m.done)
        pthread_cond_wait(&m.cond, &m.lock);
    pthread_mutex_unlock(&m.lock);
    pthread_cond_destroy(&m.cond);
    pthread_mutex_destroy(&m.lock);
}

void dp_worker_request_stop(struct dp_worker *w)
{
    if (w->queue != NULL)
        h2o_multithread_send_message(&w->receiver, &w->stop_message.super);
}

void dp_worker_join(struct dp_worker *w)
{
    if (w->running) {
        pthread_join(w->thread, NULL);
        w->running = false;
    }
}

void dp_worker_dispose(struct dp_worker *w)
{
    if (w->loop == NULL)
        return;
    /* Sockets of a worker that never ran are closed here; a stopped one closed its own. */
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].sock != NULL) {
            h2o_socket_read_stop(w->listeners[i].sock);
            h2o_socket_close(w->listeners[i].sock);
            w->listeners[i].sock = NULL;
        }
    }
    h2o_evloop_run(w->loop, 0);
    while (w->retired != NULL) {
        struct dp_ctx *c = w->retired;

        w->retired = c->next;
        ctx_free(c);
    }
    if (w->cur != NULL)
        ctx_free(w->cur);
    w->cur = NULL;
    if (w->queue != NULL) {
        h2o_multithread_unregister_receiver(w->queue, &w->receiver);
        h2o_multithread_destroy_queue(w->queue);
        w->queue = NULL;
    }
    /* The contexts' message queues closed their sockets; one more turn frees them. */
    h2o_evloop_run(w->loop, 0);
    free(w->listeners);
    w->listeners = NULL;
}

void dp_worker_destroy_loop(struct dp_worker *w)
{
    if (w->loop != NULL)
        h2o_evloop_destroy(w->loop);
    w->loop = NULL;
}

void dp_worker_conn_opened(struct dp_ctx *c)
{
    c->nconns++;
    c->worker->nconns++;
}

void dp_worker_conn_closed(struct dp_ctx *c)
{
    c->nconns--;
    c->worker->nconns--;
}

bool dp_worker_ctx_is_current(const struct dp_ctx *c)
{
    return c->worker->cur == c;
}

/* ---- the graveyard ----------------------------------------------------------------------------- */

void dp_graveyard_init(struct dp_graveyard *gy)
{
    memset(gy, 0, sizeof(*gy));
    pthread_mutex_init(&gy->lock, NULL);
}

void dp_graveyard_add(struct dp_graveyard *gy, struct dp_gen *g)
{
    pthread_mutex_lock(&gy->lock);
    if (gy->n == gy->cap) {
        gy->cap = gy->cap ? gy->cap * 2 : 8;
        gy->v = aegis_realloc(gy->v, gy->cap * sizeof(*gy->v));
    }
    gy->v[gy->n++] = g;
    pthread_mutex_unlock(&gy->lock);
}

size_t dp_graveyard_reap(struct dp_graveyard *gy, bool only_unused)
{
    size_t kept = 0;

    pthread_mutex_lock(&gy->lock);
    for (size_t i = 0; i < gy->n; i++) {
        struct dp_gen *g = gy->v[i];

        /* Nobody takes a new reference to a generation that is no longer current, so a count of
         * one (ours) cannot grow again. */
        if (!only_unused || atomic_load_explicit(&g->refs, memory_order_acquire) == 1) {
            dp_log(DP_LOG_DEBUG, "generation %lld: freed", (long long)g->rc->generation);
            dp_gen_unref(g);
        } else {
            gy->v[kept++] = g;
        }
    }
    gy->n = kept;
    pthread_mutex_unlock(&gy->lock);
    return kept;
}

void dp_graveyard_dispose(struct dp_graveyard *gy)
{
    dp_graveyard_reap(gy, false);
    free(gy->v);
    pthread_mutex_destroy(&gy->lock);
}
