/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API server (admin.h). The unix socket is the local way in: its file is mode 0600, so
 * only the dataplane's user (and root) can connect. The TCP listener is TLS-only: h2o's accept
 * context always starts a handshake on it, and a plaintext request fails that handshake.
 */
#include "admin.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <h2o.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "aegis/limits.h"
#include "aegis/net.h"
#include "log.h"
#include "server.h"

/* Pending connections per admin socket. */
#define ADMIN_BACKLOG 64
/* How long a stopping admin waits for its connections (an idle HTTP/1 keep-alive connection only
 * notices at its request timeout: those are abandoned to the process exit). */
#define ADMIN_DRAIN_MS 2000
#define ADMIN_POLL_MS 50

struct admin_handler {
    h2o_handler_t super;
    struct dp_admin *admin;
};

struct admin_conn {
    struct dp_admin *admin;
    void (*prev_cb)(void *data);
    void *prev_data;
};

struct dp_admin {
    pthread_t thread;
    bool running;
    const struct dp_admin_backend *backend;
    char *socket_path; /* to remove at stop */
    h2o_evloop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_hostconf_t *hosts[2];
    h2o_accept_ctx_t unix_accept, tcp_accept;
    h2o_socket_t *unix_sock, *tcp_sock;
    SSL_CTX *ssl_ctx;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t stop_message;
    bool stopping;
    size_t nconns;
    /* dp_admin_free lets the stopped thread end (dp_admin_stop says why it waits) */
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
    bool parked; /* the thread stopped serving and waits */
    bool released;
    bool stopped; /* dp_admin_stop ran */
};

/* ---- requests ---------------------------------------------------------------------------------- */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct dp_admin *a = ((struct admin_handler *)self)->admin;
    struct dp_admin_response resp;
    const char *body = req->entity.base != NULL ? req->entity.base : "";

    dp_admin_dispatch(a->backend, req->method.base, req->method.len, req->path.base, req->path.len,
                      body, req->entity.len, &resp);
    dp_log(resp.status >= 400 ? DP_LOG_WARNING : DP_LOG_INFO, "admin: %.*s %.*s: %d",
           (int)req->method.len, req->method.base, (int)(req->path.len > 200 ? 200 : req->path.len),
           req->path.base, resp.status);
    req->res.status = resp.status;
    req->res.reason = resp.reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    if (resp.allow != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, resp.allow,
                       strlen(resp.allow));
    /* h2o_send_inline copies the body into the request's pool. */
    h2o_send_inline(req, resp.body, strlen(resp.body));
    free(resp.body);
    return 0;
}

/* ---- connections ------------------------------------------------------------------------------- */

static void on_conn_close(void *data)
{
    struct admin_conn *c = data;
    void (*prev)(void *) = c->prev_cb;
    void *prev_data = c->prev_data;

    c->admin->nconns--;
    free(c);
    if (prev != NULL)
        prev(prev_data);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct dp_admin *a = listener->data;
    h2o_accept_ctx_t *actx = listener == a->unix_sock ? &a->unix_accept : &a->tcp_accept;
    h2o_socket_t *sock;

    if (err != NULL || a->stopping)
        return;
    sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    {
        struct admin_conn *c = aegis_calloc(1, sizeof(*c));

        c->admin = a;
        c->prev_cb = sock->on_close.cb;
        c->prev_data = sock->on_close.data;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        a->nconns++;
    }
    h2o_accept(actx, sock);
}

/* ---- sockets ----------------------------------------------------------------------------------- */

/* Removes a socket file left by a process that is gone; refuses a live one or a non-socket. */
static int clear_stale(const char *path, struct aegis_err *err)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd, r;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : aegis_err_set(err, -errno, path, "%s", strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return aegis_err_set(err, -EEXIST, path,
                             "exists and is not a socket; remove it or choose another "
                             "--admin-socket");
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return aegis_err_set(err, -errno, path, "socket: %s", strerror(errno));
    r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (r == 0)
        return aegis_err_set(err, -EADDRINUSE, path,
                             "another process is listening on this socket (is another dataplane "
                             "running?)");
    if (unlink(path) != 0 && errno != ENOENT)
        return aegis_err_set(err, -errno, path, "cannot remove the stale socket: %s",
                             strerror(errno));
    dp_log(DP_LOG_INFO, "admin: replaced the stale socket %s", path);
    return 0;
}

static int open_unix(const char *path, int *out, struct aegis_err *err)
{
    struct sockaddr_un sun;
    mode_t old;
    int fd = -1, r;

    *out = -1;
    if (strlen(path) >= sizeof(sun.sun_path))
        return aegis_err_set(err, -ENAMETOOLONG, path, "a unix socket path is at most %zu bytes",
                             sizeof(sun.sun_path) - 1);
    r = clear_stale(path, err);
    if (r < 0)
        return r;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return aegis_err_set(err, -errno, path, "socket: %s", strerror(errno));
    /* The file is created owner-only from the start (no window with wider permissions): the
     * umask is process-wide, but no other thread creates files while the admin starts. */
    old = umask(0177);
    r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (r != 0 || chmod(path, 0600) != 0 || listen(fd, ADMIN_BACKLOG) != 0) {
        r = aegis_err_set(err, -errno, path, "cannot listen: %s", strerror(errno));
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

static int open_tcp(const char *spec, int *out, struct aegis_err *err)
{
    return aegis_net_listen(spec, ADMIN_BACKLOG, "--admin-listen", "is another dataplane running?",
                            out, err);
}

/* ---- the thread -------------------------------------------------------------------------------- */

static void close_listener(h2o_socket_t **sock)
{
    if (*sock != NULL) {
        h2o_socket_read_stop(*sock);
        h2o_socket_close(*sock);
        *sock = NULL;
    }
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct dp_admin *a = H2O_STRUCT_FROM_MEMBER(struct dp_admin, receiver, receiver);

    /* The stop message is the only one; h2o wants the list empty afterwards. */
    for (h2o_linklist_t *node = messages->next; node != messages;) {
        h2o_linklist_t *next = node->next;

        node->next = node->prev = NULL;
        node = next;
    }
    h2o_linklist_init_anchor(messages);
    a->stopping = true;
}

static void *run(void *arg)
{
    struct dp_admin *a = arg;
    int64_t deadline;

    dp_log_set_thread("admin");
    /* A pushed configuration's server (loops, queues, listeners) is made on this thread. */
    dp_server_thread_buffers_unshared();
    while (!a->stopping)
        h2o_evloop_run(a->loop, INT32_MAX);
    close_listener(&a->unix_sock);
    close_listener(&a->tcp_sock);
    h2o_context_request_shutdown(&a->ctx);
    deadline = aegis_monotonic_ms() + ADMIN_DRAIN_MS;
    while (a->nconns > 0 && aegis_monotonic_ms() < deadline)
        h2o_evloop_run(a->loop, ADMIN_POLL_MS);
    h2o_evloop_run(a->loop, 0);
    pthread_mutex_lock(&a->park_lock);
    a->parked = true;
    pthread_cond_broadcast(&a->park_cond);
    while (!a->released)
        pthread_cond_wait(&a->park_cond, &a->park_lock);
    pthread_mutex_unlock(&a->park_lock);
    return NULL;
}

static void admin_free(struct dp_admin *a)
{
    if (a->nconns > 0) {
        /* A connection still holds the context: leave it all to the process exit. */
        dp_log(DP_LOG_WARNING, "admin: %zu connection(s) still open at stop: abandoned", a->nconns);
        return;
    }
    close_listener(&a->unix_sock);
    close_listener(&a->tcp_sock);
    if (a->loop != NULL) {
        h2o_evloop_run(a->loop, 0);
        if (h2o_timeout_is_linked(&a->ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&a->ctx.http2._graceful_shutdown_timeout);
        h2o_multithread_unregister_receiver(a->queue, &a->receiver);
        h2o_multithread_destroy_queue(a->queue);
        h2o_context_dispose(&a->ctx);
        h2o_evloop_run(a->loop, 0);
        h2o_config_dispose(&a->config);
        h2o_evloop_destroy(a->loop);
    }
    if (a->socket_path != NULL) {
        unlink(a->socket_path);
        free(a->socket_path);
    }
    SSL_CTX_free(a->ssl_ctx);
    pthread_cond_destroy(&a->park_cond);
    pthread_mutex_destroy(&a->park_lock);
    free(a);
}

int dp_admin_start(const struct dp_admin_opts *o, const struct dp_admin_backend *backend,
                   struct dp_admin **out, struct aegis_err *err)
{
    struct dp_admin *a = aegis_calloc(1, sizeof(*a));
    struct admin_handler *handler;
    h2o_pathconf_t *path;
    int fd, r = 0;

    *out = NULL;
    pthread_mutex_init(&a->park_lock, NULL);
    pthread_cond_init(&a->park_cond, NULL);
    a->backend = backend;
    a->ssl_ctx = o->ssl_ctx;
    h2o_config_init(&a->config);
    a->config.server_name = h2o_iovec_init(H2O_STRLIT("aegis-dataplane-admin"));
    a->config.max_request_entity_size = AEGIS_LIMIT_RCONF_BYTES;
    a->hosts[0] =
        h2o_config_register_host(&a->config, h2o_iovec_init(H2O_STRLIT("admin.invalid")), 65535);
    path = h2o_config_register_path(a->hosts[0], "/", 0);
    handler = (struct admin_handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->admin = a;
    a->loop = h2o_evloop_create();
    h2o_context_init(&a->ctx, a->loop, &a->config);
    a->queue = h2o_multithread_create_queue(a->loop);
    h2o_multithread_register_receiver(a->queue, &a->receiver, on_message);

    if (o->socket_path != NULL) {
        r = open_unix(o->socket_path, &fd, err);
        if (r < 0)
            goto out;
        a->socket_path = aegis_strdup(o->socket_path);
        a->unix_accept = (h2o_accept_ctx_t){.ctx = &a->ctx, .hosts = a->hosts};
        a->unix_sock = h2o_evloop_socket_create(a->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        a->unix_sock->data = a;
        h2o_socket_read_start(a->unix_sock, on_accept);
    }
    if (o->listen != NULL) {
        r = open_tcp(o->listen, &fd, err);
        if (r < 0)
            goto out;
        a->tcp_accept =
            (h2o_accept_ctx_t){.ctx = &a->ctx, .hosts = a->hosts, .ssl_ctx = a->ssl_ctx};
        a->tcp_sock = h2o_evloop_socket_create(a->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        a->tcp_sock->data = a;
        h2o_socket_read_start(a->tcp_sock, on_accept);
    }
    r = pthread_create(&a->thread, NULL, run, a);
    if (r != 0) {
        r = aegis_err_set(err, -r, "admin", "cannot start the admin thread: %s", strerror(r));
        goto out;
    }
    a->running = true;
    *out = a;
    a = NULL;
out:
    if (a != NULL)
        admin_free(a);
    return r;
}

void dp_admin_stop(struct dp_admin *a)
{
    if (a == NULL || a->stopped)
        return;
    a->stopped = true;
    if (!a->running)
        return;
    h2o_multithread_send_message(&a->receiver, &a->stop_message);
    /* Until the thread parks, a request still being drained may call the backend. */
    pthread_mutex_lock(&a->park_lock);
    while (!a->parked)
        pthread_cond_wait(&a->park_cond, &a->park_lock);
    pthread_mutex_unlock(&a->park_lock);
}

void dp_admin_free(struct dp_admin *a)
{
    if (a == NULL)
        return;
    dp_admin_stop(a);
    if (a->running) {
        pthread_mutex_lock(&a->park_lock);
        a->released = true;
        pthread_cond_broadcast(&a->park_cond);
        pthread_mutex_unlock(&a->park_lock);
        pthread_join(a->thread, NULL);
        a->running = false;
    }
    admin_free(a);
}
