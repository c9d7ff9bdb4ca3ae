/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The balancing reverse proxy. One h2o handler per generation serves every host; per worker
 * context it keeps, per host it has served, one socket pool and one HTTP/1 client context per
 * upstream and the running weights of the smooth weighted round robin (upstream.c) - so workers
 * share no mutable state on the request path but the health atomics.
 *
 * A request:
 * 1. The edge client-certificate headers are set (client_cert.c).
 * 2. An upstream is picked (healthy, not ejected, not tried yet for this request) and a
 *    connection to it is taken from its pool - an idle one h2o checks is still open, or a new one
 *    made within timeouts.connectMs. A failure here (refused, unreachable, connect timeout)
 *    ejects the upstream (health.c) and the next one is tried: nothing was sent yet, so the
 *    request is retried on every upstream at most once.
 * 3. The connection goes back to the pool and the request is handed to h2o's proxy
 *    (h2o_reprocess_request with per-request overrides: this pool, this client context, the
 *    Location rewrite), which takes the first open connection of the pool - the one just made or
 *    checked, or an older open one - does the TLS handshake when the connection is new, sends the
 *    request with X-Forwarded-For/-Proto and streams the response, websockets included.
 * 4. Errors h2o's proxy answers itself (a 502 "Gateway Error" it logs under lib/core/proxy.c)
 *    are turned into ours by a per-request prefilter: 504 for a read timeout, 502 for a TLS
 *    failure (which also ejects the upstream) or a broken response. A 502 the upstream sent is
 *    passed through untouched.
 *
 * Only h2o's public API is used except the socket pool's timer (upstream.c). Why not h2o's own
 * proxy registration per host: each registration makes a pool whose timer list sits on the first
 * worker's loop, and every loop iteration walks every list, so per-event cost grew with the
 * number of hosts. Here pools and timer lists are per worker, made on first use, and the timer
 * lists are shared by duration (upstream.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "aegis/alloc.h"
#include "handler.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "upstream.h"

/* Idle upstream connections are kept this long. It must not be 0: h2o 2.2.5 connects in cleartext
 * to an https:// upstream with preserve_host when keep-alive is off (H2O-NOTES). */
#define UPSTREAM_KEEPALIVE_MS 2000
/* The module name h2o's proxy logs its own errors under (lib/core/proxy.c, 2.2.5). */
#define H2O_PROXY_MODULE "lib/core/proxy.c"

/* X(name, status, reason, body, metric): the errors the proxy answers with, and the kind they are
 * counted as in aegis_dataplane_upstream_errors_total (metrics.h). */
#define PROXY_ERRORS(X)                                                                            \
    X(NO_UPSTREAM, 503, "Service Unavailable", "no upstream is available\n", NO_HEALTHY)           \
    X(CONNECT, 502, "Bad Gateway", "upstream connection refused\n", CONNECT)                       \
    X(CONNECT_TIMEOUT, 504, "Gateway Timeout", "upstream connect timeout\n", CONNECT_TIMEOUT)      \
    X(READ_TIMEOUT, 504, "Gateway Timeout", "upstream read timeout\n", READ_TIMEOUT)               \
    X(TLS, 502, "Bad Gateway", "upstream TLS handshake failed\n", TLS)                             \
    X(PROTOCOL, 502, "Bad Gateway", "upstream connection failed or broken response\n", PROTOCOL)

enum proxy_error {
#define PROXY_ERROR_ENUM(name, status, reason, body, metric) PROXY_ERR_##name,
    PROXY_ERRORS(PROXY_ERROR_ENUM)
#undef PROXY_ERROR_ENUM
};

static const struct {
    const char *reason;
    const char *body;
    int status;
    enum dp_upstream_error metric;
} proxy_errors[] = {
#define PROXY_ERROR_ROW(name, status, reason, body, metric)                                        \
    {reason, body, status, DP_UPSTREAM_ERR_##metric},
    PROXY_ERRORS(PROXY_ERROR_ROW)
#undef PROXY_ERROR_ROW
};

struct proxy_handler {
    h2o_handler_t super;
    struct dp_gen *gen; /* borrowed: the generation owns the configuration this handler is in */
};

/* Per worker context, per upstream of a host. */
struct ctx_upstream {
    h2o_socketpool_t pool;
    h2o_http1client_ctx_t client;
};

/* Per worker context, per host served at least once. */
struct ctx_host {
    struct ctx_host *next; /* in proxy_ctx.made */
    size_t n;
    h2o_timeout_t *connect_timeout;
    int64_t *cw; /* the round robin's running weights */
    struct ctx_upstream *ups;
};

/* How often idle upstream connections past their keep-alive are closed. */
#define SWEEP_INTERVAL_MS 1000

struct proxy_ctx {
    h2o_context_t *ctx;
    struct ctx_host **hosts; /* by vhost index; NULL until the host is first served */
    struct ctx_host *made;
    struct dp_timeouts timeouts;
    /* The sweep of idle upstream connections runs on a timer list of its own, not on the
     * context's one_sec_timeout: an entry that is always linked there would keep a replaced
     * context from ever looking idle (the live swap disposes a context only when every one of
     * h2o's lists is empty). */
    h2o_timeout_t *sweep_timeout;
    h2o_timeout_entry_t sweep;
};

/* One request until it is handed to h2o's proxy (in the request's pool). */
struct attempt {
    h2o_req_t *req;
    const struct dp_vhost *v;
    struct proxy_ctx *pc;
    struct ctx_host *ch;
    int idx;        /* the upstream being connected to */
    uint64_t tried; /* bit i: upstream i was tried */
    enum proxy_error last;
    h2o_socketpool_connect_request_t *connect_req;
    h2o_timeout_entry_t timer;
};

struct error_prefilter {
    h2o_req_prefilter_t super;
    const struct dp_vhost *v;
    int idx;
};

struct body_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
};

const char *dp_proxy_upstream_name(const struct rconf_host *h, const struct rconf_upstream *u)
{
    return h->upstream_tls.server_name ? h->upstream_tls.server_name : u->host;
}

/* Counts one failure of an upstream of v in the metrics. */
static void count(const struct dp_vhost *v, enum proxy_error e)
{
    dp_metrics_upstream_error(v->metrics, proxy_errors[e].metric);
}

static void send_error(h2o_req_t *req, enum proxy_error e)
{
    h2o_send_error_generic(req, proxy_errors[e].status, proxy_errors[e].reason,
                           proxy_errors[e].body, H2O_SEND_ERROR_KEEP_HEADERS);
}

/* ---- per worker context ----------------------------------------------------------------------- */

static void on_sweep(h2o_timeout_entry_t *entry)
{
    struct proxy_ctx *pc = H2O_STRUCT_FROM_MEMBER(struct proxy_ctx, sweep, entry);

    for (struct ctx_host *ch = pc->made; ch != NULL; ch = ch->next) {
        for (size_t i = 0; i < ch->n; i++)
            dp_upstream_pool_sweep(&ch->ups[i].pool);
    }
    h2o_timeout_link(pc->ctx->loop, pc->sweep_timeout, &pc->sweep);
}

static void on_context_init(h2o_handler_t *self, h2o_context_t *ctx)
{
    struct proxy_handler *ph = (struct proxy_handler *)self;
    struct proxy_ctx *pc = aegis_calloc(1, sizeof(*pc));

    pc->ctx = ctx;
    pc->hosts = aegis_calloc(ph->gen->rc->n_hosts + 1, sizeof(*pc->hosts));
    pc->sweep.cb = on_sweep;
    pc->sweep_timeout = dp_timeouts_get(&pc->timeouts, ctx->loop, SWEEP_INTERVAL_MS);
    h2o_timeout_link(ctx->loop, pc->sweep_timeout, &pc->sweep);
    h2o_context_set_handler_context(ctx, self, pc);
}

static void on_context_dispose(h2o_handler_t *self, h2o_context_t *ctx)
{
    struct proxy_ctx *pc = h2o_context_get_handler_context(ctx, self);
    struct ctx_host *ch, *next;

    if (pc == NULL)
        return;
    h2o_timeout_unlink(&pc->sweep);
    for (ch = pc->made; ch != NULL; ch = next) {
        next = ch->next;
        for (size_t i = 0; i < ch->n; i++)
            dp_upstream_pool_dispose(&ch->ups[i].pool, ctx->loop, true);
        free(ch->ups);
        free(ch->cw);
        free(ch);
    }
    dp_timeouts_dispose(&pc->timeouts, ctx->loop);
    free(pc->hosts);
    free(pc);
}

static struct ctx_host *ctx_host_new(struct proxy_ctx *pc, const struct dp_vhost *v)
{
    const struct rconf_host *h = v->host;
    h2o_loop_t *loop = pc->ctx->loop;
    struct ctx_host *ch = aegis_calloc(1, sizeof(*ch));
    h2o_timeout_t *read_timeout =
        dp_timeouts_get(&pc->timeouts, loop, (uint64_t)h->read_timeout_ms);

    ch->n = h->n_upstreams;
    ch->connect_timeout = dp_timeouts_get(&pc->timeouts, loop, (uint64_t)h->connect_timeout_ms);
    ch->cw = aegis_calloc(ch->n, sizeof(*ch->cw));
    ch->ups = aegis_calloc(ch->n, sizeof(*ch->ups));
    for (size_t i = 0; i < ch->n; i++) {
        struct ctx_upstream *cu = &ch->ups[i];

        dp_upstream_pool_init(&v->upstreams[i], &cu->pool, loop, UPSTREAM_KEEPALIVE_MS, true);
        cu->client.loop = loop;
        cu->client.getaddr_receiver = &pc->ctx->receivers.hostinfo_getaddr;
        cu->client.io_timeout = read_timeout;
        cu->client.websocket_timeout = h->websocket ? read_timeout : NULL;
        cu->client.ssl_ctx = v->upstreams[i].ssl;
    }
    ch->next = pc->made;
    pc->made = ch;
    return ch;
}

/* ---- errors of h2o's proxy -------------------------------------------------------------------- */

static void body_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                         h2o_send_state_t state)
{
    struct body_ostream *o = (struct body_ostream *)self;

    (void)bufs;
    /* h2o's error body comes in one piece (h2o_send_inline); none for HEAD. */
    h2o_ostream_send_next(self, req, &o->body, bufcnt != 0 ? 1 : 0, state);
}

/* The message h2o's proxy logged when it answered req itself, copied into buf; NULL when the
 * response is not one of its own errors. */
static const char *h2o_proxy_error(h2o_req_t *req, char *buf, size_t size)
{
    if (req->res.status != 502)
        return NULL;
    for (size_t i = req->error_logs.size; i-- > 0;) {
        const h2o_req_error_log_t *e = &req->error_logs.entries[i];

        if (e->module != NULL && strcmp(e->module, H2O_PROXY_MODULE) == 0) {
            snprintf(buf, size, "%.*s", (int)e->msg.len, e->msg.base);
            return buf;
        }
    }
    return NULL;
}

static enum proxy_error classify(const struct dp_upstream *up, const char *msg)
{
    if (strcmp(msg, "I/O timeout") == 0)
        return PROXY_ERR_READ_TIMEOUT;
    if (strcmp(msg, "connection timeout") == 0)
        return PROXY_ERR_CONNECT_TIMEOUT;
    if (strcmp(msg, "connection failed") == 0 || strcmp(msg, "failed to connect to host") == 0 ||
        strcmp(msg, "socket create error") == 0)
        return PROXY_ERR_CONNECT;
    /* h2o reports a failed verification as the bare X509 error string, and a TLS 1.3 upstream
     * refuses a missing client certificate after the client finished its handshake, so that the
     * alert arrives as an I/O error instead of the response head: ask OpenSSL. */
    if (strncmp(msg, "ssl ", 4) == 0 || (up->conf->tls && dp_upstream_tls_failed()))
        return PROXY_ERR_TLS;
    return PROXY_ERR_PROTOCOL;
}

static void on_setup_ostream(h2o_req_prefilter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    const struct error_prefilter *p = (const struct error_prefilter *)self;
    const struct dp_upstream *up = &p->v->upstreams[p->idx];
    char buf[256], reason[320];
    const char *msg = h2o_proxy_error(req, buf, sizeof(buf));
    struct body_ostream *o;
    enum proxy_error e;

    if (msg != NULL) {
        e = classify(up, msg);
        count(p->v, e);
        switch (e) {
        case PROXY_ERR_TLS:
            snprintf(reason, sizeof(reason), "TLS handshake failed: %s",
                     dp_upstream_tls_reason(msg));
            dp_upstream_health_eject(up->health, reason);
            break;
        case PROXY_ERR_CONNECT:
        case PROXY_ERR_CONNECT_TIMEOUT:
            snprintf(reason, sizeof(reason), "%s", msg);
            dp_upstream_health_eject(up->health, reason);
            break;
        default:
            snprintf(reason, sizeof(reason), "%s", msg);
            break;
        }
        dp_log(DP_LOG_WARNING, "host %s: upstream %s: %d %s", p->v->host->name, up->conf->url,
               proxy_errors[e].status, reason);
        req->res.status = proxy_errors[e].status;
        req->res.reason = proxy_errors[e].reason;
        req->res.content_length = strlen(proxy_errors[e].body);
        o = (struct body_ostream *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = body_do_send;
        o->body = h2o_iovec_init(proxy_errors[e].body, req->res.content_length);
        slot = &o->super.next;
    }
    h2o_setup_next_prefilter(self, req, slot);
}

/* ---- a request -------------------------------------------------------------------------------- */

static void try_next(struct attempt *a);

static void on_attempt_dispose(void *data)
{
    struct attempt *a = data;

    /* The client went away while an upstream connection was being made. */
    if (a->connect_req != NULL)
        h2o_socketpool_cancel_connect(a->connect_req);
    a->connect_req = NULL;
    h2o_timeout_unlink(&a->timer);
}

/* The upstream path: the URL's prefix (without its trailing slash) before the request's. */
static h2o_iovec_t upstream_path(h2o_req_t *req, const struct rconf_upstream *u)
{
    size_t len = strlen(u->path);

    if (len <= 1 || req->path.len == 0 || req->path.base[0] != '/')
        return req->path;
    if (u->path[len - 1] == '/')
        len--;
    return h2o_concat(&req->pool, h2o_iovec_init(u->path, len), req->path);
}

static void hand_off(struct attempt *a)
{
    h2o_req_t *req = a->req;
    const struct rconf_host *h = a->v->host;
    struct dp_upstream *up = &a->v->upstreams[a->idx];
    h2o_req_overrides_t *o = h2o_mem_alloc_pool(&req->pool, sizeof(*o));
    struct error_prefilter *p;
    const h2o_url_scheme_t *scheme = up->url.scheme;
    h2o_iovec_t authority = up->url.authority;
    h2o_iovec_t path = upstream_path(req, up->conf);

    memset(o, 0, sizeof(*o));
    o->socketpool = &a->ch->ups[a->idx].pool;
    o->client_ctx = &a->ch->ups[a->idx].client;
    /* A Location pointing at the upstream's URL is rewritten to the client's scheme and host;
     * the part after the upstream's prefix is kept. */
    o->location_rewrite.match = &up->url;
    o->location_rewrite.path_prefix =
        up->url.path.len > 0 && up->url.path.base[up->url.path.len - 1] == '/'
            ? h2o_iovec_init(H2O_STRLIT("/"))
            : h2o_iovec_init(H2O_STRLIT(""));
    if (h->preserve_host) {
        scheme = req->scheme;
        authority = req->authority;
    }
    p = (struct error_prefilter *)h2o_add_prefilter(req, sizeof(*p));
    p->super.on_setup_ostream = on_setup_ostream;
    p->v = a->v;
    p->idx = a->idx;
    /* For the access log's upstream= field; the URL lives as long as the generation, which the
     * request's connection holds. */
    *h2o_req_getenv(req, H2O_STRLIT(DP_ACCESSLOG_UPSTREAM_ENV), 1) =
        h2o_iovec_init(up->conf->url, strlen(up->conf->url));
    h2o_reprocess_request(req, req->method, scheme, authority, path, o, 0);
}

static void fail(struct attempt *a, enum proxy_error e, const char *reason)
{
    count(a->v, e);
    dp_upstream_health_eject(a->v->upstreams[a->idx].health, reason);
    a->last = e;
    try_next(a);
}

static void on_connect(h2o_socket_t *sock, const char *errstr, void *data)
{
    struct attempt *a = data;
    h2o_socketpool_t *pool = &a->ch->ups[a->idx].pool;

    a->connect_req = NULL;
    h2o_timeout_unlink(&a->timer);
    if (sock == NULL) {
        dp_log(DP_LOG_DEBUG, "host %s: upstream %s: %s", a->v->host->name,
               a->v->upstreams[a->idx].conf->url, errstr);
        fail(a, PROXY_ERR_CONNECT, "connect refused or unreachable");
        return;
    }
    /* The connection is open (new, or idle and checked by the pool): h2o's proxy takes the
     * pool's first open one. */
    if (h2o_socketpool_return(pool, sock) != 0) {
        fail(a, PROXY_ERR_CONNECT, "cannot pool the connection");
        return;
    }
    hand_off(a);
}

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    struct attempt *a = H2O_STRUCT_FROM_MEMBER(struct attempt, timer, entry);

    h2o_socketpool_cancel_connect(a->connect_req);
    a->connect_req = NULL;
    fail(a, PROXY_ERR_CONNECT_TIMEOUT, "connect timeout");
}

static void try_next(struct attempt *a)
{
    const struct dp_vhost *v = a->v;
    h2o_context_t *ctx = a->pc->ctx;
    int i = dp_upstream_pick(v->upstreams, v->host->n_upstreams, a->ch->cw, a->tried);

    if (i < 0) {
        if (a->tried == 0) {
            count(v, PROXY_ERR_NO_UPSTREAM);
            send_error(a->req, PROXY_ERR_NO_UPSTREAM);
        } else {
            send_error(a->req, a->last);
        }
        return;
    }
    a->idx = i;
    a->tried |= (uint64_t)1 << i;
    /* A live idle connection to this upstream: nothing to connect, so nothing to retry. */
    if (dp_upstream_pool_idle_alive(&a->ch->ups[i].pool)) {
        hand_off(a);
        return;
    }
    h2o_timeout_link(ctx->loop, a->ch->connect_timeout, &a->timer);
    /* May call on_connect before returning (an idle connection, or an immediate refusal). */
    h2o_socketpool_connect(&a->connect_req, &a->ch->ups[i].pool, ctx->loop,
                           &ctx->receivers.hostinfo_getaddr, on_connect, a);
}

int dp_proxy_handle(const struct dp_vhost *v, h2o_req_t *req)
{
    struct proxy_handler *ph = (struct proxy_handler *)v->proxy;
    struct proxy_ctx *pc = h2o_context_get_handler_context(req->conn->ctx, &ph->super);
    size_t idx = (size_t)(v - ph->gen->vhosts);
    struct attempt *a;

    dp_client_cert_headers(req, v->host);
    if (pc->hosts[idx] == NULL)
        pc->hosts[idx] = ctx_host_new(pc, v);
    a = h2o_mem_alloc_shared(&req->pool, sizeof(*a), on_attempt_dispose);
    memset(a, 0, sizeof(*a));
    a->req = req;
    a->v = v;
    a->pc = pc;
    a->ch = pc->hosts[idx];
    a->timer.cb = on_connect_timeout;
    try_next(a);
    return 0;
}

/* ---- the generation --------------------------------------------------------------------------- */

int dp_proxy_vhost_init(struct dp_vhost *v, struct aegis_err *err)
{
    const struct rconf_host *h = v->host;
    int r = 0;

    v->upstreams = aegis_calloc(h->n_upstreams, sizeof(*v->upstreams));
    for (size_t i = 0; i < h->n_upstreams; i++) {
        const struct rconf_upstream *u = &h->upstreams[i];
        const char *name = dp_proxy_upstream_name(h, u);
        SSL_CTX *ssl = NULL, *made = NULL;

        /* Upstreams verified under the same name share one context. */
        for (size_t j = 0; u->tls && j < i && ssl == NULL; j++) {
            if (h->upstreams[j].tls &&
                strcmp(dp_proxy_upstream_name(h, &h->upstreams[j]), name) == 0)
                ssl = v->upstreams[j].ssl;
        }
        if (u->tls && ssl == NULL) {
            r = dp_upstream_ssl_ctx_new(h, name, &made, err);
            if (r < 0)
                return r;
            ssl = made;
        }
        r = dp_upstream_init(&v->upstreams[i], h, u, ssl, err);
        SSL_CTX_free(made);
        if (r < 0)
            return r;
        if (v->upstream_ssl == NULL && ssl != NULL) {
            SSL_CTX_up_ref(ssl);
            v->upstream_ssl = ssl;
        }
    }
    return 0;
}

void dp_proxy_vhost_dispose(struct dp_vhost *v)
{
    for (size_t i = 0; v->upstreams != NULL && i < v->host->n_upstreams; i++)
        dp_upstream_dispose(&v->upstreams[i]);
    free(v->upstreams);
    v->upstreams = NULL;
    SSL_CTX_free(v->upstream_ssl);
    v->upstream_ssl = NULL;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    /* Requests reach the proxy through the router (dp_proxy_handle), never by h2o's routing. */
    (void)self;
    (void)req;
    return -1;
}

void dp_proxy_register(h2o_pathconf_t *pathconf, struct dp_gen *g)
{
    struct proxy_handler *ph = (struct proxy_handler *)h2o_create_handler(pathconf, sizeof(*ph));

    ph->super.on_context_init = on_context_init;
    ph->super.on_context_dispose = on_context_dispose;
    ph->super.on_req = on_req;
    ph->gen = g;
    for (size_t i = 0; i < g->rc->n_hosts; i++)
        g->vhosts[i].proxy = &ph->super;
}

void dp_proxy_upstream_report(const struct dp_vhost *v, size_t i, struct dp_upstream_report *out)
{
    dp_upstream_health_report(v->upstreams[i].health, out);
}
