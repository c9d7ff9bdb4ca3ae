/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's HTTP port (httpapi.h): one thread, one h2o event loop and context, one handler
 * that hands every request to statusapi.h. Built as the dataplane's metrics listener is
 * (dataplane/metrics_server.c): stopping sends a message through the context's queue that closes
 * the listening socket and asks h2o to shut the connections down, and the thread turns the loop
 * until the last one is gone or a short deadline passes.
 */
#include "httpapi.h"

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
#include "aegis/log.h"
#include "aegis/net.h"
#include "statusapi.h"

/* An idle keep-alive client is disconnected after this long (h2o's default is 10 s); it also
 * bounds how long a stop waits for one, since h2o 2.2.5 closes idle HTTP/1 connections only at
 * their request timeout. */
#define IDLE_TIMEOUT_MS 3000
/* How long a stop waits for open requests. */
#define DRAIN_TIMEOUT_MS (IDLE_TIMEOUT_MS + 1000)
#define DRAIN_POLL_MS 50
#define LISTEN_BACKLOG 64

struct httpapi {
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
    char *status_dir;
};

/* The one handler, with the server it answers for. */
struct handler {
    h2o_handler_t super;
    struct httpapi *s;
};

/* A connection's hook on its socket's on_close, to count open connections. */
struct conn {
    struct httpapi *s;
    void (*prev_cb)(void *data);
    void *prev_data;
};

/* Keeps a server whose drain was incomplete reachable until exit: its connections still use it. */
static struct httpapi *abandoned;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the handler ------------------------------------------------------------------------------ */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct httpapi *s = ((struct handler *)self)->s;
    struct statusapi_response res;

    statusapi_handle(s->status_dir, req->method.base, req->method.len, req->path_normalized.base,
                     req->path_normalized.len, (int64_t)time(NULL), &res);
    req->res.status = res.status;
    req->res.reason = res.reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, res.content_type,
                   strlen(res.content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    if (res.status == 405)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
    h2o_send_inline(req, res.body, res.len); /* copies the body into the request's pool */
    statusapi_response_dispose(&res);
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
    struct httpapi *s = listener->data;
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

static void close_listener(struct httpapi *s)
{
    if (s->listener != NULL) {
        h2o_socket_read_stop(s->listener);
        h2o_socket_close(s->listener);
        s->listener = NULL;
    }
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct httpapi *s = H2O_STRUCT_FROM_MEMBER(struct httpapi, receiver, receiver);

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
    struct httpapi *s = arg;
    uint64_t deadline = 0;

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

static void server_free(struct httpapi *s)
{
    if (s == NULL)
        return;
    if (s->nconns > 0) {
        aegis_log(AEGIS_LOG_WARN, "http", "%zu request(s) still open at stop: abandoned",
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
    free(s->status_dir);
    free(s);
}

int httpapi_start(const char *addr, const char *status_dir, struct httpapi **out,
                  struct aegis_err *err)
{
    struct httpapi *s = aegis_calloc(1, sizeof(*s));
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    struct handler *handler;
    int fd = -1, r;

    *out = NULL;
    s->status_dir = aegis_strdup(status_dir);
    r = aegis_net_listen(addr, LISTEN_BACKLOG, "--http-listen", "is another controller running?",
                         &fd, err);
    if (r < 0)
        goto out;
    s->loop = h2o_evloop_create();
    h2o_config_init(&s->globalconf);
    s->conf_inited = true;
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("aegis"));
    s->globalconf.http1.req_timeout = IDLE_TIMEOUT_MS;
    /* Every request reaches the first (only) host, whatever its Host header. */
    host =
        h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("controller")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (struct handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->s = s;
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
        r = aegis_err_set(err, -r, "--http-listen", "cannot start the HTTP thread: %s",
                          strerror(r));
        goto out;
    }
    s->running = true;
    aegis_log(AEGIS_LOG_INFO, "http", "status API, /healthz, /readyz and /metrics on http://%s",
              addr);
    *out = s;
    s = NULL;
out:
    if (fd >= 0)
        close(fd);
    server_free(s);
    return r;
}

void httpapi_stop(struct httpapi *s)
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
