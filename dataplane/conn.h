/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-connection state. h2o 2.2.5 has no field for an application's per-connection data and no
 * getter for a connection's SNI, so the state hangs on the socket's public on_close hook: it is
 * created when the socket is accepted, found again from the socket (in a request, through the
 * connection's get_socket callback) or from the SSL (in the TLS callbacks, through the SSL's BIO),
 * and freed when h2o disposes the socket. Every connection holds a reference to the generation it
 * was accepted under, so a configuration swap cannot free what it uses, and is counted on the
 * worker context it was accepted on, which is disposed only once its last connection is gone.
 */
#ifndef DP_CONN_H
#define DP_CONN_H

#include <stdbool.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "aegis/rconf.h"

struct dp_ctx;
struct dp_gen;
struct dp_worker;

struct dp_conn {
    struct dp_worker *worker;
    struct dp_ctx *ctx; /* the worker context it was accepted on (counts it) */
    struct dp_gen *gen; /* a reference: ctx's generation */
    bool tls;
    bool selected;             /* the TLS handshake selected a certificate */
    struct rconf_sel sel;      /* that selection, pointing into gen's snapshot */
    unsigned char binding[32]; /* what its sessions are bound to: SNI and policy */
    char sni[256];             /* the normalized server name; "" when none */
    SSL *ssl; /* the connection's SSL once its ClientHello was accepted (h2o has no getter for it);
               * lives as long as the socket: for the verified client certificate */
    void (*prev_close_cb)(void *data);
    void *prev_close_data;
};

/*
 * Creates the state of a socket just accepted on worker context ctx (taking a reference to its
 * generation, counting the connection on ctx) and hooks it to the socket's on_close, chaining any
 * hook already there. dp_worker_conn_closed is called when the socket is disposed.
 */
struct dp_conn *dp_conn_attach(h2o_socket_t *sock, struct dp_ctx *ctx, bool tls);
/* The state of a socket, or NULL when it has none. */
struct dp_conn *dp_conn_of_socket(h2o_socket_t *sock);
/* The state of the socket an SSL of an accepted connection belongs to, or NULL. */
struct dp_conn *dp_conn_of_ssl(const SSL *ssl);
/* The state of the connection a request arrived on, or NULL. */
struct dp_conn *dp_conn_of_req(h2o_req_t *req);

#endif
