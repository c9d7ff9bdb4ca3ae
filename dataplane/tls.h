/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS termination. Each HTTPS listener has ONE front SSL_CTX for the life of the process: h2o keeps
 * a raw pointer to it and creates each connection's SSL lazily, so it is never freed while anything
 * runs (H2O-NOTES). The certificate is chosen per connection in the ClientHello callback, from the
 * server name, through the generation's hash tables (rconf_select) - the same cost for 1 host as
 * for 10,000 - and set on the SSL itself with the certificate and key parsed once by rconf_parse.
 * The same callback applies the host's minimum TLS version and client-certificate policy, and
 * binds the connection's sessions to its server name and policy.
 *
 * Fixed settings: TLS 1.2 and 1.3, Mozilla's "intermediate" cipher suites and groups, ALPN h2 then
 * http/1.1, no compression, no renegotiation, no server-side session cache (stateless tickets
 * only, encrypted under keys rotated every hour and accepted for two more).
 */
#ifndef DP_TLS_H
#define DP_TLS_H

#include <openssl/ssl.h>

#include "aegis/err.h"

/* State shared by the front contexts: ticket keys and the names already logged as unknown. */
struct dp_tls;

struct dp_tls *dp_tls_new(void);
/* Frees t; every context made from it must have been freed first. Accepts NULL. */
void dp_tls_free(struct dp_tls *t);

/*
 * A new front context using t (borrowed; it must outlive the context). Connections on it must
 * carry a dp_conn (conn.h); one without fails its handshake.
 */
int dp_tls_front_ctx_new(struct dp_tls *t, SSL_CTX **out, struct aegis_err *err);

/* Handshakes that found no certificate, since start (for tests and, later, metrics). */
unsigned long dp_tls_unknown_name_count(struct dp_tls *t);

#endif
