/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-connection state (conn.h). The one place that relies on a private detail of h2o 2.2.5: the
 * BIO h2o gives each SSL carries the h2o_socket_t as its data (lib/common/socket.c, setup_bio).
 * dp_conn_of_ssl checks what it finds before trusting it, and the TLS integration test fails if
 * the detail ever changes (no SNI-bound selection, no 421).
 */
#include "conn.h"

#include <stdlib.h>

#include "aegis/alloc.h"
#include "gen.h"
#include "metrics.h"
#include "worker.h"

static void on_socket_close(void *data)
{
    struct dp_conn *c = data;
    void (*prev)(void *) = c->prev_close_cb;
    void *prev_data = c->prev_close_data;

    dp_worker_conn_closed(c->ctx);
    dp_metrics_conn_closed();
    dp_gen_unref(c->gen);
    free(c);
    if (prev != NULL)
        prev(prev_data);
}

struct dp_conn *dp_conn_attach(h2o_socket_t *sock, struct dp_ctx *ctx, bool tls)
{
    struct dp_conn *c = aegis_calloc(1, sizeof(*c));

    c->worker = ctx->worker;
    c->ctx = ctx;
    c->gen = dp_gen_ref(ctx->gen);
    dp_worker_conn_opened(ctx);
    dp_metrics_conn_opened();
    c->tls = tls;
    c->prev_close_cb = sock->on_close.cb;
    c->prev_close_data = sock->on_close.data;
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = c;
    return c;
}

struct dp_conn *dp_conn_of_socket(h2o_socket_t *sock)
{
    if (sock == NULL || sock->on_close.cb != on_socket_close)
        return NULL;
    return sock->on_close.data;
}

struct dp_conn *dp_conn_of_ssl(const SSL *ssl)
{
    BIO *bio = SSL_get_rbio(ssl);
    h2o_socket_t *sock;

    if (bio == NULL)
        return NULL;
    sock = BIO_get_data(bio);
    /* The socket's ssl pointer is private, but being non-NULL is what a TLS socket looks like. */
    if (sock == NULL || sock->ssl == NULL)
        return NULL;
    return dp_conn_of_socket(sock);
}

struct dp_conn *dp_conn_of_req(h2o_req_t *req)
{
    if (req->conn == NULL || req->conn->callbacks->get_socket == NULL)
        return NULL;
    return dp_conn_of_socket(req->conn->callbacks->get_socket(req->conn));
}
