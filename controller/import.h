/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Custom certificates: a certificate chain and private key supplied by the user (inline PEM, a
 * file, or a Secret key), or a PKCS#12 bundle (RFC 7292) with its password, checked and turned
 * into a store record (leaf-first chain PEM, PKCS#8 key PEM, metadata with source "custom" or
 * "pkcs12"). The CSR flow (csrflow.h) runs the same checks on the certificate an outside CA
 * signed for its key.
 *
 * Checks, each failing with a message that names the resource, the field and the fix:
 *   - the private key belongs to one of the certificates (the leaf);
 *   - the certificates form one chain: it is put in order (leaf, then each issuer, verified by
 *     signature) whatever order they came in; duplicates are dropped; a certificate that is not
 *     part of the leaf's chain is refused;
 *   - the leaf covers every dnsName and ipAddress of the Certificate (RFC 6125 wildcards: "*" as
 *     the whole leftmost label, matching exactly one label);
 *   - no certificate of the chain has expired; the leaf expiring within IMPORT_EXPIRY_WARN_S
 *     (30 days) or not yet valid is a warning, not an error;
 *   - the key is RSA of at least 2048 bits, ECDSA P-256, P-384 or P-521, or Ed25519.
 * A wrong PKCS#12 password is reported as such. Importing a certificate that is already stored
 * (the same leaf fingerprint and the same chain) changes nothing, not even the revision.
 *
 * Private key bytes live only in memory and are cleansed when released; no message ever holds
 * key material. Time is given by the caller (the injected clock).
 */
#ifndef AEGIS_IMPORT_H
#define AEGIS_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"
#include "aegis/pki.h"
#include "aegis/store.h"

/* A leaf expiring within this many seconds of now is imported with a warning. */
#define IMPORT_EXPIRY_WARN_S (30 * 86400LL)
/* Warnings one import can carry, and the length of each. */
#define IMPORT_WARNINGS_MAX 4
#define IMPORT_WARNING_LEN 256

/* X(name, text) - where a certificate came from; text is the store's meta.source. */
#define IMPORT_SOURCES(X)                                                                          \
    X(CUSTOM, "custom")                                                                            \
    X(PKCS12, "pkcs12")                                                                            \
    X(CSR, "csr")

enum import_source {
#define IMPORT_SOURCE_ENUM(name, text) IMPORT_SOURCE_##name,
    IMPORT_SOURCES(IMPORT_SOURCE_ENUM)
#undef IMPORT_SOURCE_ENUM
        IMPORT_SOURCE_COUNT_
};
extern const char *const import_source_names[IMPORT_SOURCE_COUNT_];

/* What to check an import against, and how to name things in messages. Everything is borrowed. */
struct import_check {
    const char *resource;   /* "Certificate default/app": the where of every error; NULL: none */
    const char *cert_field; /* "spec.custom.certificate", "--cert app.pem": names the chain */
    const char *key_field;  /* "spec.custom.privateKey", "--key app.key": names the key */
    struct pki_strs dns;    /* names the leaf must cover ("*.x" only by an equal wildcard) */
    struct pki_strs ip;     /* addresses the leaf must cover */
    int64_t now;            /* Unix seconds, from the injected clock */
    enum import_source source;
};

/* The outcome of a successful check; initialized by import_result_init. */
struct import_result {
    struct store_record rec; /* chain_pem (leaf first), key_pem (PKCS#8), meta (with source) */
    size_t n_warnings;
    char warnings[IMPORT_WARNINGS_MAX][IMPORT_WARNING_LEN];
};

void import_result_init(struct import_result *res);
/* Cleanses the key and frees everything; res can be initialized again. */
void import_result_dispose(struct import_result *res);

/*
 * Checks certs (borrowed, in any order, at most AEGIS_LIMIT_CHAIN_CERTS) and key (borrowed)
 * against chk as described at the top, and fills res (initialized by the caller) on success.
 * Returns 0, -AEGIS_E_INVALID (mismatch, not one chain, expired, weak key, names not covered),
 * -AEGIS_E_NOTFOUND (no certificate) or -AEGIS_E_LIMIT, with err saying what to fix.
 */
int import_validate(STACK_OF(X509) * certs, EVP_PKEY *key, const struct import_check *chk,
                    struct import_result *res, struct aegis_err *err);

/*
 * Reads a PEM chain (chain_len bytes) and a PEM private key (key_len bytes) and checks them with
 * import_validate. The key buffer is not kept; the caller still cleanses it.
 */
int import_pem(const char *chain_pem, size_t chain_len, const char *key_pem, size_t key_len,
               const struct import_check *chk, struct import_result *res, struct aegis_err *err);

/*
 * Reads a DER PKCS#12 bundle of len bytes (at most AEGIS_LIMIT_SECRET_BYTES) with password (NULL
 * or "" for none; both are tried, as bundles differ in how they encode "no password"), then
 * checks its key and certificates with import_validate. A MAC that does not verify is "wrong
 * password"; a bundle encrypted with RC2 or 3DES loads OpenSSL's legacy provider on demand.
 */
int import_pkcs12(const unsigned char *der, size_t len, const char *password,
                  const struct import_check *chk, struct import_result *res, struct aegis_err *err);

/*
 * Drops the line end ("\n" or "\r\n") after a password read from a file or Secret, as
 * `openssl pkcs12 -passin file:` does; *len is updated. Only one line end is removed. A NULL
 * password is left alone.
 */
void import_password_trim(char *password, size_t *len);

/*
 * Reads the sources of a Certificate with spec.custom or spec.pkcs12 (inline PEM, files, Secret
 * keys under secrets_dir in namespace ns, via secret.h) and checks them against the spec's
 * dnsNames and ipAddresses at now. Errors name "Certificate <ns>/<name>" and the field.
 */
int import_from_spec(const struct aegis_certificate_spec *spec, const char *ns, const char *name,
                     const char *secrets_dir, int64_t now, struct import_result *res,
                     struct aegis_err *err);

/*
 * Stores res->rec as the record certificate/<ns>/<name>, unless that record already holds the
 * same leaf (SHA-256 fingerprint) with the same chain: then nothing is written and *unchanged
 * (may be NULL) is set, so the revision does not move.
 */
int import_store(struct store *st, const char *ns, const char *name,
                 const struct import_result *res, bool *unchanged, struct aegis_err *err);

/*
 * Whether the certificate name san (a dNSName SAN) covers the requested name, per RFC 6125 6.4:
 * case-insensitive, one trailing dot ignored; "*" only as the whole leftmost label of san,
 * standing for exactly one non-empty label, and only above at least two labels ("*.com" covers
 * nothing). A requested wildcard is covered only by the same wildcard.
 */
bool import_dns_covers(const char *san, const char *name);

#endif
