/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics listener (metrics_server.h): one thread, one h2o event loop and context, one
 * handler. Stopping follows the workers' pattern (worker.c): a message through the context's
 * queue closes the listening socket and asks h2o to shut the connections down, and the thread
 * turns the loop until the last one is gone or a short deadline passes.
 */
#include "metrics_server.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>

#include "aegis/alloc.h"
#include "aegis/net.h"
#include "log.h"
#include "metrics.h"

/* An idle keep-alive scraper is disconnected after this long (h2o's default is 10 s); it also
 * bounds how long a stop waits for one, since h2o 2.2.5 closes idle HTTP/1 connections only at
 * their request timeout. */
#define IDLE_TIMEOUT_MS 3000
/* How long a stop waits for open scrapes. */
#define DRAIN_TIMEOUT_MS (IDLE_TIMEOUT_MS + 1000)
#define DRAIN_POLL_MS 50
#define LISTEN_BACKLOG 64

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct dp_metrics_server {
    pthread_t thread;
    bool running;
    h2o_evloop_t *loop;
    h2o_globalconf_t globalconf;
    bool conf_inited;
    h2o_context_t ctx;
    bool ctx_inited;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener; /* NULL once closed */
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t stop_message;
    bool stopping;
    size_t nconns;
};

/* A connection's hook on its socket's on_close, to count open connections. */
struct conn {
    struct dp_metrics_server *s;
    void (*prev_cb)(void *data);
    void *prev_data;
};

/* Keeps a server whose drain was incomplete reachable until exit: its connections still use it. */
static struct dp_metrics_server *abandoned;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the handler ------------------------------------------------------------------------------ */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized, method = req->method;
    char *text;
    size_t len = 0;

    (void)self;
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        h2o_send_error_404(req, "Not Found", "not found; metrics are at /metrics\n", 0);
        return 0;
    }
    if (!h2o_memis(method.base, method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(method.base, method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        h2o_send_error_generic(req, 405, "Method Not Allowed", "use GET\n",
                               H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    text = dp_metrics_render(&len);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT(CONTENT_TYPE));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, text, len); /* copies the body into the request's pool */
    free(text);
    return 0;
}

/* ---- connections and the loop ----------------------------------------------------------------- */

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
    struct dp_metrics_server *s = listener->data;
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

static void close_listener(struct dp_metrics_server *s)
{
    if (s->listener != NULL) {
        h2o_socket_read_stop(s->listener);
        h2o_socket_close(s->listener);
        s->listener = NULL;
    }
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct dp_metrics_server *s =
        H2O_STRUCT_FROM_MEMBER(struct dp_metrics_server, receiver, receiver);

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

static void *run(void *arg)
{
    struct dp_metrics_server *s = arg;
    uint64_t deadline = 0;

    dp_log_set_thread("metrics");
    while (!s->stopping)
        h2o_evloop_run(s->loop, INT32_MAX);
    deadline = now_ms() + DRAIN_TIMEOUT_MS;
    while (s->nconns > 0 && now_ms() < deadline)
        h2o_evloop_run(s->loop, DRAIN_POLL_MS);
    /* One more turn frees the sockets closed during the last one. */
    h2o_evloop_run(s->loop, 0);
    return NULL;
}

/* ---- start and stop --------------------------------------------------------------------------- */

static void server_free(struct dp_metrics_server *s)
{
    if (s == NULL)
        return;
    if (s->nconns > 0) {
        dp_log(DP_LOG_WARNING, "metrics listener: %zu scrape(s) still open at stop: abandoned",
               s->nconns);
        abandoned = s;
        return;
    }
    close_listener(s);
    if (s->ctx_inited) {
        h2o_evloop_run(s->loop, 0);
        /* As in worker.c: the HTTP/2 GOAWAY resend timer armed by the shutdown request. */
        h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
        h2o_multithread_unregister_receiver(s->ctx.queue, &s->receiver);
        h2o_context_dispose(&s->ctx);
        h2o_evloop_run(s->loop, 0);
    }
    if (s->conf_inited)
        h2o_config_dispose(&s->globalconf);
    if (s->loop != NULL)
        h2o_evloop_destroy(s->loop);
    free(s);
}

int dp_metrics_server_start(const char *addr, struct dp_metrics_server **out, struct aegis_err *err)
{
    struct dp_metrics_server *s = aegis_calloc(1, sizeof(*s));
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;
    int fd = -1, r;

    *out = NULL;
    r = aegis_net_listen(addr, LISTEN_BACKLOG, "--metrics-listen", "is another dataplane running?",
                         &fd, err);
    if (r < 0)
        goto out;
    s->loop = h2o_evloop_create();
    h2o_config_init(&s->globalconf);
    s->conf_inited = true;
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("aegis"));
    s->globalconf.http1.req_timeout = IDLE_TIMEOUT_MS;
    /* Every request reaches the first (only) host, whatever its Host header. */
    host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("metrics")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    h2o_context_init(&s->ctx, s->loop, &s->globalconf);
    s->ctx_inited = true;
    h2o_multithread_register_receiver(s->ctx.queue, &s->receiver, on_message);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->globalconf.hosts;
    s->listener = h2o_evloop_socket_create(s->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    fd = -1;
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
    r = pthread_create(&s->thread, NULL, run, s);
    if (r != 0) {
        r = aegis_err_set(err, -r, "--metrics-listen", "cannot start the metrics thread: %s",
                          strerror(r));
        goto out;
    }
    s->running = true;
    dp_log(DP_LOG_INFO, "metrics on http://%s/metrics", addr);
    *out = s;
    s = NULL;
out:
    if (fd >= 0)
        close(fd);
    server_free(s);
    return r;
}

void dp_metrics_server_stop(struct dp_metrics_server *s)
{
    if (s == NULL)
        return;
    if (s->running) {
        h2o_multithread_send_message(&s->receiver, &s->stop_message);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    server_free(s);
}
