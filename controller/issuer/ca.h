/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CA issuer (Issuer spec `ca`) and the local CA behind `ca: {}`.
 *
 * The local CA is a root (10 years, pathLen 1) and an intermediate (5 years, pathLen 0), made on
 * first use, both ECDSA P-256, their keys sealed in the store (kind "ca", namespace
 * CA_STORE_NAMESPACE, names "root" and "intermediate"). Leaves are signed by the intermediate
 * (chain = leaf + intermediate); CA certificates (isCA) are signed by the root, as the
 * intermediate's pathLen 0 forbids CAs below it (chain = the sub-CA alone). The intermediate is
 * replaced from the root when it has less than CA_INTERMEDIATE_RENEW_S left; a leaf never
 * outlives its issuer (its notAfter is capped).
 *
 * `ca: {secretRef}` or `ca: {certificate, privateKey}` sign with a given CA instead; its chain
 * (minus a self-signed root) follows the leaf.
 *
 * The revocation list (RFC 5280 v2 CRL, signed by the intermediate) lists what ca_revoke was
 * given; it is rebuilt on each revocation and by ca_crl when nextUpdate is near, and kept in the
 * store record "crl" (public JSON), so `aegisctl ca crl` and the controller agree.
 */
#ifndef AEGIS_ISSUER_CA_H
#define AEGIS_ISSUER_CA_H

#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "aegis/pki.h"
#include "issuer/issuer.h"

#define CA_STORE_NAMESPACE "aegis-system"
#define CA_ROOT_NAME "root"
#define CA_INTERMEDIATE_NAME "intermediate"
#define CA_CRL_NAME "crl"

#define CA_ROOT_LIFETIME_S (3652 * 86400LL)         /* 10 years, leap days included */
#define CA_INTERMEDIATE_LIFETIME_S (1826 * 86400LL) /* 5 years */
#define CA_INTERMEDIATE_RENEW_S (365 * 86400LL)     /* replaced when less than a year is left */
#define CA_CRL_LIFETIME_S (7 * 86400LL)             /* nextUpdate = thisUpdate + 7 days */
#define CA_CRL_REFRESH_S (2 * 86400LL) /* rebuilt when nextUpdate is nearer than this */

/* The file name users know the trust bundle by. */
#define CA_BUNDLE_FILE_NAME "aegis-local-ca.crt"

extern const struct issuer_ops issuer_ca_ops;

/* A loaded CA: the signing certificate and key, the chain above it, the trust anchor. */
struct ca;

/*
 * Opens the local CA in st, creating the root and intermediate on first use (and a missing or
 * nearly expired intermediate), as of now (Unix seconds). *ca is freed with ca_free. The opened
 * CA is kept and shared (a reference each) while the store holds the same pairs; it is
 * thread-safe to use from several issuances at once (signing only reads it).
 */
int ca_local_open(struct store *st, int64_t now, struct ca **ca, struct aegis_err *err);
/* Drops the kept local CA (tests that replace a store; the daemon's exit). */
void ca_local_forget(void);
/*
 * A given CA: chain_pem is its certificate (first) and optionally the chain above it; key_pem
 * its private key. Checks the key matches, the certificate is a CA (basicConstraints CA:TRUE)
 * and may sign certificates (keyUsage keyCertSign when keyUsage is present).
 */
int ca_from_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
                struct ca **ca, struct aegis_err *err);
void ca_free(struct ca *ca);

/* The trust anchor (the root; for a given CA, the last certificate of its chain). Borrowed. */
X509 *ca_root(const struct ca *ca);
/* The trust bundle as PEM (the root certificate) into a new buffer (free with free()). */
int ca_bundle_pem(const struct ca *ca, char **pem, size_t *len, struct aegis_err *err);

/*
 * Signs req for subject_key's public key. Leaves: by the intermediate (or the given CA), chain =
 * leaf + the issuer's chain without the root; req->not_after is capped at the signer's notAfter.
 * req->is_ca with the local CA: signed by the root, pathLen 0, chain = the certificate alone.
 * *chain is freed with pki_chain_free.
 */
int ca_sign(struct ca *ca, const struct pki_cert_req *req, EVP_PKEY *subject_key,
            STACK_OF(X509) * *chain, struct aegis_err *err);

/*
 * Revokes serial (any form pki_serial_normalize takes) of the local CA in st as of now, and
 * rebuilds the CRL. Revoking a serial twice keeps the first entry (and is not an error).
 */
int ca_revoke(struct store *st, const char *serial, enum pki_crl_reason reason, int64_t now,
              struct aegis_err *err);
/*
 * The local CA's current CRL into *crl (X509_CRL_free), rebuilt and stored first when there is
 * none yet or its nextUpdate is within CA_CRL_REFRESH_S of now.
 */
int ca_crl(struct store *st, int64_t now, X509_CRL **crl, struct aegis_err *err);

#endif
