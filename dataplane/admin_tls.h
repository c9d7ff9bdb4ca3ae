/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS side of the admin API's TCP listener: mutual TLS only. The server certificate and key
 * and the CA client certificates must chain to come, each on its own, from a file (--admin-cert,
 * --admin-key, --admin-ca), else from an environment variable holding the PEM text
 * (AEGIS_ADMIN_CERT_PEM, AEGIS_ADMIN_KEY_PEM, AEGIS_ADMIN_CA_PEM), else from the development PKI
 * (--admin-dev): a CA, a node certificate and a controller client certificate (SAN
 * "aegis-controller") made on first run in <state>/admin-dev/, keys sealed with the master key.
 *
 * A client is accepted when its certificate chains to the CA, is valid for client authentication
 * and carries one of the allowed DNS SANs (--admin-allowed-san; default "aegis-controller");
 * anything else fails the handshake. TLS 1.3, or 1.2 with forward-secret AEAD suites; no session
 * resumption, so every connection presents and verifies its certificate.
 */
#ifndef DP_ADMIN_TLS_H
#define DP_ADMIN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"

#define DP_ADMIN_DEFAULT_SAN "aegis-controller"
#define DP_ADMIN_MAX_SANS 16 /* --admin-allowed-san given at most this often */

struct dp_admin_tls_opts {
    const char *cert_file, *key_file, *ca_file; /* NULL: the environment, else dev */
    bool dev;                                   /* --admin-dev */
    const char *state_dir;                      /* dev: <state_dir>/admin-dev */
    const struct aegis_keyring *ring;           /* dev: seals the keys */
    const char *allowed_sans[DP_ADMIN_MAX_SANS];
    size_t n_allowed_sans; /* 0: DP_ADMIN_DEFAULT_SAN */
};

/* The server context of the TCP admin listener (caller frees it with SSL_CTX_free). */
int dp_admin_tls_ctx_new(const struct dp_admin_tls_opts *o, SSL_CTX **out, struct aegis_err *err);

/*
 * Makes the development PKI when it does not exist yet, then writes the controller's client
 * bundle to dir - ca.pem, controller.pem and controller.key (plaintext PEM, mode 0600) - for
 * --admin-dev-export: the only time a dev key leaves the sealed store, and only on request.
 */
int dp_admin_dev_export(const struct dp_admin_tls_opts *o, const char *dir, struct aegis_err *err);

#endif
