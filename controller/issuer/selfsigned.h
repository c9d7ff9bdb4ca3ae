/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The selfSigned issuer (each certificate signs itself with its own key), and the fallback
 * certificate served for names that have nothing else: one self-signed certificate covering
 * every given hostname, so that a handshake for a configured name still completes (with a
 * certificate the client will not trust) instead of failing without one.
 */
#ifndef AEGIS_ISSUER_SELFSIGNED_H
#define AEGIS_ISSUER_SELFSIGNED_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "issuer/issuer.h"

extern const struct issuer_ops issuer_selfsigned_ops;

#define SELFSIGNED_FALLBACK_LIFETIME_S (365 * 86400LL)
#define SELFSIGNED_FALLBACK_CN "Aegis self-signed fallback"

/*
 * Makes one self-signed certificate (ECDSA P-256, valid from now - ISSUER_BACKDATE_S for
 * SELFSIGNED_FALLBACK_LIFETIME_S, server auth) whose SANs are names[0..n): IP addresses become
 * IP SANs, everything else DNS SANs (wildcards allowed); duplicates are dropped. n must be
 * between 1 and AEGIS_LIMIT_SANS. *chain (one certificate; pki_chain_free) and *key
 * (EVP_PKEY_free) belong to the caller.
 */
int selfsigned_fallback(char *const *names, size_t n, int64_t now, STACK_OF(X509) * *chain,
                        EVP_PKEY **key, struct aegis_err *err);

#endif
