/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The router (router.h). Why 421: h2o routes by the Host header, not by the SNI, and HTTP/2
 * clients reuse a connection for every name its certificate covers (RFC 9113 9.1.1). Without the
 * check, a client that passed client-certificate authentication for one host - or that reached a
 * host with a weaker minimum version - could send requests for another on the same connection.
 * Two hosts are interchangeable only when the handshake would have chosen the same certificate
 * and TLS policy for both (rconf_sel_compatible).
 */
#include "router.h"

#include <string.h>

#include "conn.h"
#include "gen.h"
#include "handler/handler.h"
#include "log.h"
#include "worker.h"

struct router {
    h2o_handler_t super;
    struct dp_gen *gen;
};

static int send_error(h2o_req_t *req, int status, const char *reason, const char *body)
{
    h2o_send_error_generic(req, status, reason, body, H2O_SEND_ERROR_KEEP_HEADERS);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct dp_gen *g = ((struct router *)self)->gen;
    const struct rconf *rc = g->rc;
    const struct rconf_host *host;
    struct rconf_sel sel;
    struct dp_conn *conn;
    const char *end;
    h2o_iovec_t name;
    uint16_t port;

    conn = dp_conn_of_req(req);
    /* A connection accepted under an older generation: h2o's HTTP/1 shutdown is only a flag, so
     * this response closes the connection and the client's next one gets the current
     * configuration. (HTTP/2 connections were sent GOAWAY by the swap.) */
    if (conn != NULL && !dp_worker_ctx_is_current(conn->ctx))
        req->http1_is_persistent = 0;
    if (req->input.scheme != &H2O_URL_SCHEME_HTTPS && dp_acme_http01_handle(rc, req) == 0)
        return 0;
    if (req->input.authority.len == 0)
        return send_error(req, 400, "Bad Request", "missing Host\n");
    end = h2o_url_parse_hostport(req->input.authority.base, req->input.authority.len, &name, &port);
    if (end != req->input.authority.base + req->input.authority.len)
        return send_error(req, 400, "Bad Request", "malformed Host\n");

    if (req->input.scheme != &H2O_URL_SCHEME_HTTPS) {
        host = rconf_find_host(rc, name.base, name.len, false);
        if (host == NULL)
            return send_error(req, 404, "Not Found", "no such host\n");
        if (host->force_https)
            return dp_redirect_handle(req, name.base, name.len, rc->redirect_port);
        return dp_proxy_handle(dp_gen_vhost(g, host), req);
    }

    host = rconf_find_host(rc, name.base, name.len, true);
    if (host == NULL)
        return send_error(req, 404, "Not Found", "no such host\n");
    /* A TLS connection without a selection cannot happen (the handshake fails first); refusing
     * it keeps a broken assumption from turning into a policy bypass. */
    if (conn == NULL || !conn->selected || conn->gen != g ||
        rconf_select(rc, name.base, name.len, &sel) != 0 || !rconf_sel_compatible(&conn->sel, &sel))
        return send_error(req, 421, "Misdirected Request",
                          "this connection cannot serve this host; open a new connection\n");
    dp_hsts_attach(req, dp_gen_vhost(g, host));
    return dp_proxy_handle(dp_gen_vhost(g, host), req);
}

void dp_router_register(h2o_pathconf_t *pathconf, struct dp_gen *g)
{
    struct router *r = (struct router *)h2o_create_handler(pathconf, sizeof(*r));

    r->super.on_req = on_req;
    r->gen = g;
}
