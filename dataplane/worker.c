/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker threads (worker.h).
 */
#include "worker.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aegis/alloc.h"
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

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
        w->nconns++;
        dp_conn_attach(sock, w, w->gen, l->tls);
        h2o_accept(&l->accept_ctx, sock);
    }
}

static void begin_stop(struct dp_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    w->deadline_ms = now_ms() + DRAIN_TIMEOUT_MS;
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].sock != NULL) {
            h2o_socket_read_stop(w->listeners[i].sock);
            h2o_socket_close(w->listeners[i].sock);
            w->listeners[i].sock = NULL;
        }
    }
    h2o_context_request_shutdown(&w->ctx);
    dp_log(DP_LOG_DEBUG, "stopping: %zu connection(s) to finish", w->nconns);
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct dp_worker *w = H2O_STRUCT_FROM_MEMBER(struct dp_worker, receiver, receiver);

    /* The stop message is the only one sent to a worker; h2o wants the list emptied. */
    if (h2o_linklist_is_linked(&w->stop_message.link))
        h2o_linklist_unlink(&w->stop_message.link);
    assert(h2o_linklist_is_empty(messages));
    begin_stop(w);
}

int dp_worker_init(struct dp_worker *w, unsigned id, struct dp_gen *gen,
                   const struct dp_listen_spec *specs, size_t n, struct aegis_err *err)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->gen = dp_gen_ref(gen);
    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, &gen->globalconf);
    w->ctx_inited = true;
    h2o_multithread_register_receiver(w->ctx.queue, &w->receiver, on_message);
    w->listeners = aegis_calloc(n + 1, sizeof(*w->listeners));
    for (size_t i = 0; i < n; i++) {
        struct dp_worker_listener *l = &w->listeners[i];
        int fd, r = dp_listener_open(specs[i].addr, &fd, err);

        if (r < 0)
            return r;
        l->worker = w;
        l->tls = specs[i].ssl_ctx != NULL;
        l->accept_ctx.ctx = &w->ctx;
        l->accept_ctx.hosts = gen->hosts;
        l->accept_ctx.ssl_ctx = specs[i].ssl_ctx;
        l->sock = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        w->n_listeners++;
        h2o_socket_read_start(l->sock, on_accept);
    }
    return 0;
}

static void *run(void *arg)
{
    struct dp_worker *w = arg;
    char name[16];

    snprintf(name, sizeof(name), "w%u", w->id);
    dp_log_set_thread(name);
    while (!w->stopping || (w->nconns > 0 && now_ms() < w->deadline_ms))
        h2o_evloop_run(w->loop, w->stopping ? DRAIN_POLL_MS : INT32_MAX);
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

void dp_worker_request_stop(struct dp_worker *w)
{
    if (w->ctx_inited)
        h2o_multithread_send_message(&w->receiver, &w->stop_message);
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
    if (w->ctx_inited) {
        /* Sockets of a worker that never ran are closed here; a stopped one closed its own. */
        for (size_t i = 0; i < w->n_listeners; i++) {
            if (w->listeners[i].sock != NULL) {
                h2o_socket_read_stop(w->listeners[i].sock);
                h2o_socket_close(w->listeners[i].sock);
                w->listeners[i].sock = NULL;
            }
        }
        h2o_evloop_run(w->loop, 0);
        /* h2o_context_request_shutdown armed a timer to resend HTTP/2 GOAWAY frames a second
         * later; with no connection left there is nothing to resend, and h2o_context_dispose
         * asserts that no timer is pending. */
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
        h2o_multithread_unregister_receiver(w->ctx.queue, &w->receiver);
        h2o_context_dispose(&w->ctx);
        /* The context's message queue closed its socket; one more turn frees it. */
        h2o_evloop_run(w->loop, 0);
        w->ctx_inited = false;
    }
    free(w->listeners);
    w->listeners = NULL;
    dp_gen_unref(w->gen);
    w->gen = NULL;
}

void dp_worker_destroy_loop(struct dp_worker *w)
{
    if (w->loop != NULL)
        h2o_evloop_destroy(w->loop);
    w->loop = NULL;
}

void dp_worker_conn_closed(struct dp_worker *w)
{
    w->nconns--;
}
