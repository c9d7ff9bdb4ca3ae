/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy - THE SEAM WHERE THE BALANCING PROXY GOES. This first version sends every request of
 * a host to its first upstream through h2o's built-in reverse proxy, one registration per host:
 * X-Forwarded-For and X-Forwarded-Proto (globalconf.proxy.emit_x_forwarded_headers), preserveHost,
 * websockets and the read timeout come from h2o. What h2o 2.2.5's proxy cannot do - several
 * upstreams, weights, health checks, retries, the connect timeout and the serverName override for
 * SNI - belongs to the balancing handler that replaces dp_proxy_register and dp_proxy_handle.
 *
 * Upstream TLS: each host with an https:// upstream gets its own client SSL_CTX - its CA bundle
 * (or the system store), its client certificate for mutual TLS, and the expected name set with
 * X509_VERIFY_PARAM_set1_host, because h2o 2.2.5 skips its own hostname check when the upstream
 * negotiates TLS 1.3 (H2O-NOTES).
 */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "handler.h"
#include "health.h"
#include "log.h"

/* Idle upstream connections are kept this long. It must not be 0: h2o 2.2.5 connects in cleartext
 * to an https:// upstream with preserve_host when keep-alive is off (H2O-NOTES). */
#define UPSTREAM_KEEPALIVE_MS 2000

static int ssl_fail(struct aegis_err *err, const char *host, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return aegis_err_set(err, -AEGIS_E_CRYPTO, host, "upstream TLS: %s: %s", what, buf);
}

static int upstream_ssl_ctx_new(const struct rconf_host *h, const struct rconf_upstream *u,
                                SSL_CTX **out, struct aegis_err *err)
{
    const struct rconf_upstream_tls *t = &h->upstream_tls;
    const char *name = dp_proxy_upstream_name(h, u);
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
               h->name, u->host);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
        int ok;

        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
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

const char *dp_proxy_upstream_name(const struct rconf_host *h, const struct rconf_upstream *u)
{
    return h->upstream_tls.server_name ? h->upstream_tls.server_name : u->host;
}

int dp_proxy_register(h2o_pathconf_t *pathconf, struct dp_vhost *v, struct aegis_err *err)
{
    const struct rconf_host *h = v->host;
    const struct rconf_upstream *u = &h->upstreams[0];
    h2o_proxy_config_vars_t pc;
    h2o_url_t url;
    int r;

    if (h2o_url_parse(u->url, strlen(u->url), &url) != 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, h->name, "upstream URL %s is not understood",
                             u->url);
    if (u->tls) {
        r = upstream_ssl_ctx_new(h, u, &v->upstream_ssl, err);
        if (r < 0)
            return r;
    }
    memset(&pc, 0, sizeof(pc));
    pc.io_timeout = (uint64_t)h->read_timeout_ms;
    pc.keepalive_timeout = UPSTREAM_KEEPALIVE_MS;
    pc.preserve_host = h->preserve_host;
    pc.websocket.enabled = h->websocket;
    pc.websocket.timeout = (uint64_t)h->read_timeout_ms;
    pc.ssl_ctx = v->upstream_ssl;
    h2o_proxy_register_reverse_proxy(pathconf, &url, &pc);
    v->proxy = pathconf->handlers.entries[pathconf->handlers.size - 1];
    return 0;
}

int dp_proxy_handle(const struct dp_vhost *v, h2o_req_t *req)
{
    return v->proxy->on_req(v->proxy, req);
}

void dp_proxy_upstream_report(const struct dp_vhost *v, size_t i, struct dp_upstream_report *out)
{
    /* The first version has no health checks: every upstream is reported healthy. */
    (void)v;
    (void)i;
    memset(out, 0, sizeof(*out));
    out->healthy = true;
}
