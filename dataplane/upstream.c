/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upstreams (upstream.h): per-generation upstream data, the client TLS context of a host's
 * upstreams, socket pools, and the smooth weighted round robin.
 *
 * Upstream TLS: h2o's HTTP/1 client does the handshake itself on a pool's new connection, with
 * the pool's peer name as SNI and as the name it checks (lib/common/http1client.c, 2.2.5). A pool
 * made by address would send the address, so its peer name is replaced by the serverName
 * override (or the URL's host). h2o's own name check only runs under TLS 1.2; the same name is
 * pinned on the context with X509_VERIFY_PARAM so that TLS 1.3 is checked too.
 */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "handler/handler.h"
#include "health.h"
#include "log.h"

/* Pool capacity is not enforced by h2o 2.2.5 ("FIXME respect capacity"); this only documents that
 * the number of idle and busy connections per upstream per worker follows the load. */
#define POOL_CAPACITY SIZE_MAX

/* The reason of this thread's last certificate verification failure ("" when none). */
static _Thread_local char verify_reason[128];
static _Thread_local char reason_buf[256];

static int ssl_fail(struct aegis_err *err, const char *host, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return aegis_err_set(err, -AEGIS_E_CRYPTO, host, "upstream TLS: %s: %s", what, buf);
}

static int on_verify(int ok, X509_STORE_CTX *x)
{
    if (!ok)
        snprintf(verify_reason, sizeof(verify_reason), "certificate verify failed: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
    return ok;
}

const char *dp_upstream_tls_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();

    if (verify_reason[0] != '\0') {
        snprintf(reason_buf, sizeof(reason_buf), "%s", verify_reason);
    } else if (e != 0 && ERR_reason_error_string(e) != NULL) {
        snprintf(reason_buf, sizeof(reason_buf), "%s", ERR_reason_error_string(e));
    } else {
        snprintf(reason_buf, sizeof(reason_buf), "%s", fallback);
    }
    verify_reason[0] = '\0';
    ERR_clear_error();
    return reason_buf;
}

bool dp_upstream_tls_failed(void)
{
    unsigned long e = ERR_peek_last_error();

    return verify_reason[0] != '\0' || (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL);
}

int dp_upstream_ssl_ctx_new(const struct rconf_host *h, const char *name, SSL_CTX **out,
                            struct aegis_err *err)
{
    const struct rconf_upstream_tls *t = &h->upstream_tls;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    unsigned char ip[16];
    int r = 0;

    if (ctx == NULL) {
        r = ssl_fail(err, h->name, "cannot create a context");
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (t->insecure_skip_verify) {
        dp_log(DP_LOG_WARNING,
               "host %s: upstream certificates are not verified (insecureSkipVerify): anyone on "
               "the path to %s can impersonate it",
               h->name, name);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
        int ok;

        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, on_verify);
        if (t->ca != NULL) {
            X509_STORE *store = SSL_CTX_get_cert_store(ctx);

            for (int i = 0; i < sk_X509_num(t->ca); i++) {
                if (X509_STORE_add_cert(store, sk_X509_value(t->ca, i)) != 1) {
                    r = ssl_fail(err, h->name, "cannot load caPEM");
                    goto out;
                }
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            r = ssl_fail(err, h->name, "cannot load the system trust store");
            goto out;
        }
        if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
            ok = X509_VERIFY_PARAM_set1_ip_asc(param, name);
        else
            ok = X509_VERIFY_PARAM_set1_host(param, name, 0);
        if (ok != 1) {
            r = ssl_fail(err, h->name, "cannot set the expected upstream name");
            goto out;
        }
    }
    if (t->client != NULL &&
        SSL_CTX_use_cert_and_key(ctx, t->client->leaf, t->client->key, t->client->chain, 1) != 1) {
        r = ssl_fail(err, h->name, "cannot use the client certificate");
        goto out;
    }
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return r;
}

/* Resolves host (a DNS name) to its first address, blocking. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;

    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

int dp_upstream_init(struct dp_upstream *up, const struct rconf_host *h,
                     const struct rconf_upstream *u, SSL_CTX *ssl, struct aegis_err *err)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&up->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&up->addr;

    memset(up, 0, sizeof(*up));
    up->conf = u;
    if (h2o_url_parse(u->url, strlen(u->url), &up->url) != 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, h->name, "upstream URL %s is not understood",
                             u->url);
    if (inet_pton(AF_INET, u->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(u->port);
        up->addr_len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, u->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(u->port);
        up->addr_len = sizeof(*sin6);
    } else if (u->tls && h->upstream_tls.server_name != NULL) {
        /* A pool by name uses the name for DNS and for SNI alike; an SNI override needs a pool
         * by address. Resolved once, when the generation is built (off the workers' loops). */
        if (resolve(u->host, u->port, &up->addr, &up->addr_len) != 0)
            dp_log(DP_LOG_WARNING,
                   "host %s: upstream %s: cannot resolve %s now; connecting by name, with SNI %s "
                   "instead of serverName %s",
                   h->name, u->url, u->host, u->host, h->upstream_tls.server_name);
    }
    if (u->tls) {
        up->sni = dp_proxy_upstream_name(h, u);
        if (up->addr_len == 0)
            up->sni = u->host;
        SSL_CTX_up_ref(ssl);
        up->ssl = ssl;
    }
    up->health = dp_upstream_health_get(h->name, u->url);
    return 0;
}

void dp_upstream_dispose(struct dp_upstream *up)
{
    SSL_CTX_free(up->ssl);
    up->ssl = NULL;
    dp_upstream_health_put(up->health);
    up->health = NULL;
}

void dp_upstream_pool_init(const struct dp_upstream *up, h2o_socketpool_t *pool, h2o_loop_t *loop,
                           uint64_t keepalive_ms, bool detach_timer)
{
    const struct rconf_upstream *u = up->conf;

    if (up->addr_len != 0) {
        h2o_socketpool_init_by_address(pool, (struct sockaddr *)&up->addr, up->addr_len, u->tls,
                                       POOL_CAPACITY);
        if (up->sni != NULL) {
            free(pool->peer.host.base);
            pool->peer.host = h2o_strdup(NULL, up->sni, strlen(up->sni));
        }
    } else {
        h2o_socketpool_init_by_hostport(pool, h2o_iovec_init(u->host, strlen(u->host)), u->port,
                                        u->tls, POOL_CAPACITY);
    }
    /* Mandatory: the pool reads the loop's clock through the timer's loop. */
    h2o_socketpool_set_timeout(pool, loop, keepalive_ms);
    if (detach_timer) {
        h2o_timeout_unlink(&pool->_interval_cb.entry);
        h2o_timeout_dispose(loop, &pool->_interval_cb.timeout);
    }
}

void dp_upstream_pool_sweep(h2o_socketpool_t *pool)
{
    /* The pool's own timer callback closes expired idle connections, then links itself again to
     * the pool's timer list, which is no longer on the loop: unlink it, it is called from here. */
    pool->_interval_cb.entry.cb(&pool->_interval_cb.entry);
    h2o_timeout_unlink(&pool->_interval_cb.entry);
}

/*
 * An idle connection as h2o 2.2.5 keeps it in a pool's list (lib/common/socketpool.c, struct
 * pool_entry_t, private): the exported socket first, then the list link. Only the fd is read.
 */
struct h2o_pool_entry {
    h2o_socket_export_t sockinfo;
    h2o_linklist_t link;
    uint64_t added_at;
};

bool dp_upstream_pool_idle_alive(h2o_socketpool_t *pool)
{
    const struct h2o_pool_entry *e;
    char c;

    /* The pool belongs to one worker context: its list is only touched by this thread. */
    if (h2o_linklist_is_empty(&pool->_shared.sockets))
        return false;
    /* h2o's connect takes the first entry, after the same liveness check. */
    e = H2O_STRUCT_FROM_MEMBER(struct h2o_pool_entry, link, pool->_shared.sockets.next);
    return recv(e->sockinfo.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == -1 &&
           (errno == EAGAIN || errno == EWOULDBLOCK);
}

void dp_upstream_pool_dispose(h2o_socketpool_t *pool, h2o_loop_t *loop, bool detached_timer)
{
    /* h2o_socketpool_dispose takes the timer list off the loop: put it back first. */
    if (detached_timer)
        h2o_timeout_init(loop, &pool->_interval_cb.timeout, 1000);
    h2o_socketpool_dispose(pool);
}

static int pick(const struct dp_upstream *ups, size_t n, int64_t *cw, uint64_t skip,
                bool allow_ejected)
{
    int64_t total = 0;
    int best = -1;

    for (size_t i = 0; i < n; i++) {
        if ((skip & ((uint64_t)1 << i)) != 0)
            continue;
        if (allow_ejected ? !dp_upstream_health_healthy(ups[i].health)
                          : !dp_upstream_health_usable(ups[i].health))
            continue;
        cw[i] += ups[i].conf->weight;
        total += ups[i].conf->weight;
        if (best < 0 || cw[i] > cw[best])
            best = (int)i;
    }
    if (best >= 0)
        cw[best] -= total;
    return best;
}

int dp_upstream_pick(const struct dp_upstream *ups, size_t n, int64_t *cw, uint64_t skip)
{
    int i = pick(ups, n, cw, skip, false);

    /* Every healthy upstream is ejected: trying one beats refusing the request (an ejection is
     * a guess from one error; only the active checks' verdict is a reason to give up). */
    return i >= 0 ? i : pick(ups, n, cw, skip, true);
}

struct dp_timeout_slot {
    uint64_t ms;
    h2o_timeout_t timeout;
};

h2o_timeout_t *dp_timeouts_get(struct dp_timeouts *t, h2o_loop_t *loop, uint64_t ms)
{
    struct dp_timeout_slot *slot;

    /* Linear: a configuration uses a handful of distinct durations, and callers look a duration
     * up once per host and worker, not per request. */
    for (size_t i = 0; i < t->n; i++) {
        if (t->slots[i]->ms == ms)
            return &t->slots[i]->timeout;
    }
    slot = aegis_calloc(1, sizeof(*slot));
    slot->ms = ms;
    h2o_timeout_init(loop, &slot->timeout, ms);
    t->slots = aegis_realloc(t->slots, (t->n + 1) * sizeof(*t->slots));
    t->slots[t->n++] = slot;
    return &slot->timeout;
}

void dp_timeouts_dispose(struct dp_timeouts *t, h2o_loop_t *loop)
{
    for (size_t i = 0; i < t->n; i++) {
        h2o_timeout_dispose(loop, &t->slots[i]->timeout);
        free(t->slots[i]);
    }
    free(t->slots);
    t->slots = NULL;
    t->n = 0;
}
