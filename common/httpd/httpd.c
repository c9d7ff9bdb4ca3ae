/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The small HTTP server (aegis/httpd.h). Stopping follows the dataplane workers' pattern: a
 * message through the context's queue closes the listening socket and asks h2o to shut the
 * connections down, and the thread turns the loop until the last one is gone or the drain time
 * passes, then disposes of everything it made.
 */
#include "aegis/httpd.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <h2o.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "aegis/net.h"

#define DRAIN_TIMEOUT_MS (AEGIS_HTTPD_IDLE_TIMEOUT_MS + 1000)
#define DRAIN_POLL_MS 50

struct aegis_httpd {
    struct aegis_httpd_opts opts;
    int fd; /* the listening socket until the thread takes it */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool ready; /* the thread made its context: stop_message can be sent */
    /* Made and used by the thread only. */
    h2o_evloop_t *loop;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener; /* NULL once closed */
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t stop_message;
    bool stopping;
    size_t nconns; /* open connections; what is left of them after the drain is returned */
};

/* The handler, with the server it answers for. */
struct handler {
    h2o_handler_t super;
    struct aegis_httpd *s;
};

/* A connection's hook on its socket's on_close, to count open connections. */
struct conn {
    struct aegis_httpd *s;
    void (*prev_cb)(void *data);
    void *prev_data;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct aegis_httpd *s = ((struct handler *)self)->s;

    return s->opts.on_req(s->opts.data, req);
}

static void on_socket_close(void *data)
{
    struct conn *c = data;
    void (*prev)(void *) = c->prev_cb;
    void *prev_data = c->prev_data;

    c->s->nconns--;
    free(c);
    if (prev != NULL)
        prev(prev_data);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct aegis_httpd *s = listener->data;
    h2o_socket_t *sock;
    struct conn *c;

    if (err != NULL || s->stopping)
        return;
    sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    c = aegis_calloc(1, sizeof(*c));
    c->s = s;
    c->prev_cb = sock->on_close.cb;
    c->prev_data = sock->on_close.data;
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = c;
    s->nconns++;
    h2o_accept(&s->accept_ctx, sock);
}

static void close_listener(struct aegis_httpd *s)
{
    if (s->listener != NULL) {
        h2o_socket_read_stop(s->listener);
        h2o_socket_close(s->listener);
        s->listener = NULL;
    }
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct aegis_httpd *s = H2O_STRUCT_FROM_MEMBER(struct aegis_httpd, receiver, receiver);

    /* The stop message is the only one sent; h2o wants the list emptied. */
    if (h2o_linklist_is_linked(&s->stop_message.link))
        h2o_linklist_unlink(&s->stop_message.link);
    assert(h2o_linklist_is_empty(messages));
    if (s->stopping)
        return;
    s->stopping = true;
    close_listener(s);
    h2o_context_request_shutdown(&s->ctx);
}

/* Makes the loop, the configuration, the context and the listening socket, on the thread. */
static void setup(struct aegis_httpd *s)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    struct handler *handler;

    s->loop = h2o_evloop_create();
    h2o_config_init(&s->globalconf);
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("aegis"));
    s->globalconf.http1.req_timeout = AEGIS_HTTPD_IDLE_TIMEOUT_MS;
    /* Every request reaches the first (only) host, whatever its Host header. */
    host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("aegis.invalid")),
                                    65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (struct handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->s = s;
    h2o_context_init(&s->ctx, s->loop, &s->globalconf);
    h2o_multithread_register_receiver(s->ctx.queue, &s->receiver, on_message);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->globalconf.hosts;
    s->listener = h2o_evloop_socket_create(s->loop, s->fd, H2O_SOCKET_FLAG_DONT_READ);
    s->fd = -1;
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
}

/* Disposes of what setup made, unless connections are still open (then all is left). */
static void teardown(struct aegis_httpd *s)
{
    if (s->nconns > 0)
        return;
    close_listener(s);
    h2o_evloop_run(s->loop, 0);
    /* As in the dataplane's workers: the HTTP/2 GOAWAY resend timer the shutdown request armed. */
    h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
    h2o_multithread_unregister_receiver(s->ctx.queue, &s->receiver);
    h2o_context_dispose(&s->ctx);
    h2o_evloop_run(s->loop, 0);
    h2o_config_dispose(&s->globalconf);
    h2o_evloop_destroy(s->loop);
    s->loop = NULL;
}

static void *run(void *arg)
{
    struct aegis_httpd *s = arg;
    int64_t deadline;

    if (s->opts.thread_init != NULL)
        s->opts.thread_init();
    setup(s);
    pthread_mutex_lock(&s->lock);
    s->ready = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    while (!s->stopping)
        h2o_evloop_run(s->loop, INT32_MAX);
    deadline = aegis_monotonic_ms() + DRAIN_TIMEOUT_MS;
    while (s->nconns > 0 && aegis_monotonic_ms() < deadline)
        h2o_evloop_run(s->loop, DRAIN_POLL_MS);
    /* One more turn frees the sockets closed during the last one. */
    h2o_evloop_run(s->loop, 0);
    teardown(s);
    return NULL;
}

int aegis_httpd_start(const struct aegis_httpd_opts *o, struct aegis_httpd **out,
                      struct aegis_err *err)
{
    struct aegis_httpd *s;
    int fd = -1, r;

    *out = NULL;
    r = aegis_net_listen(o->addr, AEGIS_HTTPD_BACKLOG, o->flag, o->holder, &fd, err);
    if (r < 0)
        return r;
    s = aegis_calloc(1, sizeof(*s));
    s->opts = *o;
    s->fd = fd;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    r = pthread_create(&s->thread, NULL, run, s);
    if (r != 0) {
        close(fd);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return aegis_err_set(err, -r, o->flag, "cannot start its thread: %s", strerror(r));
    }
    pthread_mutex_lock(&s->lock);
    while (!s->ready)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    *out = s;
    return 0;
}

/* Servers whose connections outlived the drain: kept reachable until exit (see stop). */
static struct aegis_httpd *abandoned;

size_t aegis_httpd_stop(struct aegis_httpd *s)
{
    size_t left;

    if (s == NULL)
        return 0;
    h2o_multithread_send_message(&s->receiver, &s->stop_message);
    pthread_join(s->thread, NULL);
    left = s->nconns;
    if (left > 0) {
        /* Open connections still use the context: leave it all to the process exit. */
        abandoned = s;
        return left;
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}
