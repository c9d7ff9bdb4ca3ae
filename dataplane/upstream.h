/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upstreams: what a generation knows about each upstream of each host (its parsed URL and
 * address, the client SSL_CTX of the host's upstream TLS settings, its shared health record), the
 * socket pools built from it on each worker, and the smooth weighted round robin that picks one.
 *
 * Socket pools are h2o's (h2o_socketpool_t), one per upstream per worker context, so no lock is
 * contended on the request path. h2o 2.2.5 gives every pool its own one-second timer list on the
 * loop, and the loop walks every timer list on every iteration: 10,000 pools would make every
 * event of the worker pay for 10,000 lists. dp_upstream_pool_init takes the pool's list off the
 * loop again and dp_upstream_pool_sweep does its periodic work instead, called by the owner from
 * one timer for all its pools (the one place that relies on the private _interval_cb fields).
 */
#ifndef DP_UPSTREAM_H
#define DP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "aegis/err.h"
#include "aegis/rconf.h"

struct dp_upstream_health;

struct dp_upstream {
    const struct rconf_upstream *conf;
    h2o_url_t url; /* conf->url parsed (pointing into the snapshot): authority, Location rewrite */
    struct sockaddr_storage addr; /* the address to connect to; addr_len 0: resolve conf->host */
    socklen_t addr_len;
    const char *sni;                   /* the name sent as SNI and verified; NULL for http:// */
    SSL_CTX *ssl;                      /* a reference; NULL for http:// */
    struct dp_upstream_health *health; /* a reference */
};

/*
 * Prepares up for upstream u of host h: parses its URL and address and takes its health record.
 * ssl is the client context for u (NULL for http://); up takes a reference. Resolving a DNS name
 * happens here only when a serverName override needs the pool made by address (see upstream.c).
 */
int dp_upstream_init(struct dp_upstream *up, const struct rconf_host *h,
                     const struct rconf_upstream *u, SSL_CTX *ssl, struct aegis_err *err);
/* Releases what dp_upstream_init took. Accepts a zeroed up. */
void dp_upstream_dispose(struct dp_upstream *up);

/*
 * A client SSL_CTX with h's upstream TLS settings verifying name: the CA bundle or the system
 * store, the client certificate, the expected name pinned with X509_VERIFY_PARAM (h2o 2.2.5
 * skips its own check under TLS 1.3), insecureSkipVerify. A verification failure is recorded for
 * dp_upstream_tls_reason.
 */
int dp_upstream_ssl_ctx_new(const struct rconf_host *h, const char *name, SSL_CTX **out,
                            struct aegis_err *err);
/*
 * Why the last upstream TLS handshake of this thread failed, as far as OpenSSL tells: the
 * certificate verification error, else the last OpenSSL error (an alert from the upstream, ...),
 * else fallback. Clears both, so that a later failure does not repeat an old reason. The string
 * is valid until the next call on the same thread.
 */
const char *dp_upstream_tls_reason(const char *fallback);
/* Whether OpenSSL recorded a reason for dp_upstream_tls_reason on this thread: a failed
 * verification or an error of its TLS library. h2o's error strings do not tell (a verification
 * failure comes as the bare X509 error string, an alert after the handshake as an I/O error). */
bool dp_upstream_tls_failed(void);

/*
 * A socket pool for up on loop, keeping idle connections keepalive_ms. detach_timer: take the
 * pool's timer list off the loop (worker contexts; the owner then calls dp_upstream_pool_sweep
 * about once a second). For https:// the pool's peer name is up->sni: h2o's HTTP/1 client sends
 * it as SNI and checks the certificate against it.
 */
void dp_upstream_pool_init(const struct dp_upstream *up, h2o_socketpool_t *pool, h2o_loop_t *loop,
                           uint64_t keepalive_ms, bool detach_timer);
/* Closes the idle connections that outlived keepalive_ms (what the pool's own timer does). */
void dp_upstream_pool_sweep(h2o_socketpool_t *pool);
/*
 * True when the pool's next idle connection (the one h2o's proxy would take) is open: the request
 * can go to h2o's proxy at once, without the connect-and-return pass that makes a failed connect
 * retryable - that pass moves the socket out of the loop and back (fcntl, two epoll_ctl) twice
 * per request. Reads a private list of h2o 2.2.5's pool (upstream.c).
 */
bool dp_upstream_pool_idle_alive(h2o_socketpool_t *pool);
void dp_upstream_pool_dispose(h2o_socketpool_t *pool, h2o_loop_t *loop, bool detached_timer);

/*
 * Smooth weighted round robin (the algorithm of nginx): every usable upstream's current weight
 * grows by its weight, the largest wins and loses the total. Over any window the picks follow the
 * weights and are interleaved, not bursty. ups has n entries, cw n running weights (the caller's,
 * per worker, starting at 0); upstreams whose bit is set in skip, or that are unhealthy or ejected,
 * are left out - except that when every healthy upstream left is ejected, the ejected ones are
 * picked from (one connect error is a guess; the active checks' verdict is not). Returns the
 * index, or -1 when none is left.
 */
int dp_upstream_pick(const struct dp_upstream *ups, size_t n, int64_t *cw, uint64_t skip);

/*
 * Timer lists of one loop by duration. An h2o_timeout_t holds entries of one duration and the loop
 * walks every list each iteration, so lists are shared by everything with the same duration
 * (every host whose readMs is 60000 uses one list) instead of made per host or per pool.
 */
struct dp_timeouts {
    struct dp_timeout_slot **slots;
    size_t n;
};
/* The list of ms on loop, made on first use. */
h2o_timeout_t *dp_timeouts_get(struct dp_timeouts *t, h2o_loop_t *loop, uint64_t ms);
/* Disposes every list (each must be empty). */
void dp_timeouts_dispose(struct dp_timeouts *t, h2o_loop_t *loop);

#endif
