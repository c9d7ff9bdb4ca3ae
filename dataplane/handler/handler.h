/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request handlers, one per file in this directory, called by the router (router.c) once it
 * knows the request's host: the ACME HTTP-01 responder, the HTTPS redirect, HSTS, and the proxy.
 * A handler function returns 0 when it has answered the request, -1 when the request is not its
 * own (only dp_acme_http01_handle declines).
 */
#ifndef DP_HANDLER_H
#define DP_HANDLER_H

#include <stdint.h>

#include <h2o.h>

#include "aegis/err.h"
#include "aegis/rconf.h"
#include "gen.h"

/* acme_http01.c: GET/HEAD /.well-known/acme-challenge/<token> answers the token's key
 * authorization (RFC 8555 8.3) as text/plain, an unknown token 404; other paths return -1. */
int dp_acme_http01_handle(const struct rconf *rc, h2o_req_t *req);

/* redirect.c: 301 to https://host[:port]/path?query; host is the request's, already matched to a
 * configured name, and port is left out when 443. */
int dp_redirect_handle(h2o_req_t *req, const char *host, size_t host_len, uint16_t port);

/* hsts.c: the header value for h ("max-age=31536000; includeSubDomains; preload"), malloc'd;
 * {NULL, 0} when the host sends none. */
h2o_iovec_t dp_hsts_value(const struct rconf_host *h);
/* hsts.c: adds the vhost's Strict-Transport-Security header to the response of req, whatever
 * produces it (proxy, error). */
void dp_hsts_attach(h2o_req_t *req, const struct dp_vhost *v);

/*
 * proxy.c - the balancing reverse proxy (weighted round robin over healthy upstreams, retries on
 * connect errors, passive ejection, 502/503/504 with a short body; see the file's comment).
 * dp_proxy_vhost_init prepares v's upstreams (v->upstreams, v->upstream_ssl) when the generation
 * is built; dp_proxy_register registers the generation's one proxy handler on pathconf (a hidden
 * path that contexts initialize, so each worker gets its pools) and sets every vhost's v->proxy;
 * dp_proxy_vhost_dispose releases what dp_proxy_vhost_init made (accepts a partly made v).
 *
 * CONTRACT (the admin API relies on it):
 * - v->upstream_ssl is the client SSL_CTX with the host's upstream TLS settings (CA bundle or
 *   system store, client certificate, expected name, insecureSkipVerify) for its first https://
 *   upstream, NULL when the host has none; dp_proxy_upstream_name gives the name sent as SNI and
 *   verified (the serverName override, else the URL's host).
 * - dp_proxy_upstream_report fills what GET /status shows for upstream i of v.
 */
int dp_proxy_vhost_init(struct dp_vhost *v, struct aegis_err *err);
void dp_proxy_vhost_dispose(struct dp_vhost *v);
void dp_proxy_register(h2o_pathconf_t *pathconf, struct dp_gen *g);
int dp_proxy_handle(const struct dp_vhost *v, h2o_req_t *req);
const char *dp_proxy_upstream_name(const struct rconf_host *h, const struct rconf_upstream *u);
struct dp_upstream_report;
void dp_proxy_upstream_report(const struct dp_vhost *v, size_t i, struct dp_upstream_report *out);

/* client_cert.c: removes any X-Client-Cert-Verified, -Subject and -SAN header the client sent,
 * then, on HTTPS requests for a host with clientAuth optional or require, adds them for the
 * connection's verified client certificate (Verified: NONE when there is none). */
void dp_client_cert_headers(h2o_req_t *req, const struct rconf_host *h);

#endif
