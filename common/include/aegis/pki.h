/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X.509 and key helpers over OpenSSL 3's public EVP/X509 APIs (no deprecated calls): key
 * generation, keys and certificate chains to and from PEM, X.509v3 signing (RFC 5280 profile:
 * random 127-bit serials, SKI/AKI, critical basicConstraints and keyUsage, extendedKeyUsage,
 * subjectAltName), CSRs (PKCS#10, RFC 2986, SANs in an extension request), CRLs, fingerprints.
 *
 * Conventions: functions return 0 or a negative code (err.h) and fill the optional err; objects
 * handed back through an out pointer belong to the caller (EVP_PKEY_free, X509_free,
 * pki_chain_free, ...). Buffers holding private key bytes are freed with pki_secret_free, which
 * cleanses them first. Error messages never contain key material. Times are Unix seconds, given
 * by the caller (from an injected clock), never read here.
 */
#ifndef AEGIS_PKI_H
#define AEGIS_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"

/* ---- keys ------------------------------------------------------------------------------------ */

/* X(name, text) - the key types Aegis generates and accepts for issuance. */
#define PKI_KEY_TYPES(X)                                                                           \
    X(RSA_2048, "RSA 2048")                                                                        \
    X(RSA_3072, "RSA 3072")                                                                        \
    X(RSA_4096, "RSA 4096")                                                                        \
    X(EC_P256, "ECDSA P-256")                                                                      \
    X(EC_P384, "ECDSA P-384")                                                                      \
    X(ED25519, "Ed25519")

enum pki_key_type {
#define PKI_KEY_TYPE_ENUM(name, text) PKI_KEY_##name,
    PKI_KEY_TYPES(PKI_KEY_TYPE_ENUM)
#undef PKI_KEY_TYPE_ENUM
        PKI_KEY_COUNT_
};
extern const char *const pki_key_type_names[PKI_KEY_COUNT_];

/*
 * Maps a Certificate's privateKey {algorithm, size} to a key type. size 0 takes the default
 * (RSA 2048, ECDSA P-256); Ed25519 ignores size. -AEGIS_E_INVALID for an unsupported size.
 */
int pki_key_type_from_spec(enum aegis_key_algorithm alg, int64_t size, enum pki_key_type *type,
                           struct aegis_err *err);
/* The type of key, or -AEGIS_E_UNSUPPORTED (e.g. RSA 1024, P-521, DSA). */
int pki_key_type_of(const EVP_PKEY *key, enum pki_key_type *type);
/* Generates a new private key of type into *key (caller frees with EVP_PKEY_free). */
int pki_key_generate(enum pki_key_type type, EVP_PKEY **key, struct aegis_err *err);

/*
 * Writes the private key as unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY") into a new
 * NUL-terminated buffer *pem of *len bytes (len may be NULL). Free it with pki_secret_free.
 */
int pki_key_to_pem(EVP_PKEY *key, char **pem, size_t *len, struct aegis_err *err);
/*
 * Reads the first private key of pem (len bytes, at most AEGIS_LIMIT_PEM_BYTES): PKCS#8, or the
 * traditional RSA/EC forms. Encrypted keys are refused (-AEGIS_E_UNSUPPORTED), as is a PEM with no
 * key (-AEGIS_E_NOTFOUND). Never asks for a passphrase.
 */
int pki_key_from_pem(const char *pem, size_t len, EVP_PKEY **key, struct aegis_err *err);
/* Writes the public key as SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"); free with free(). */
int pki_pubkey_to_pem(EVP_PKEY *key, char **pem, size_t *len, struct aegis_err *err);
/* Cleanses len bytes of buf, then frees it; accepts NULL. */
void pki_secret_free(char *buf, size_t len);
/* Cleanses and frees a NUL-terminated secret string; accepts NULL. */
void pki_secret_free_str(char *s);

/* ---- certificates ---------------------------------------------------------------------------- */

/*
 * Reads every CERTIFICATE block of pem (len bytes, at most AEGIS_LIMIT_PEM_BYTES), in file order,
 * into a new stack (free with pki_chain_free). Blocks of other types (keys, parameters) are
 * skipped; a malformed certificate is an error; more than AEGIS_LIMIT_CHAIN_CERTS certificates is
 * -AEGIS_E_LIMIT; none at all is -AEGIS_E_NOTFOUND.
 */
int pki_chain_from_pem(const char *pem, size_t len, STACK_OF(X509) * *chain, struct aegis_err *err);
/* Writes every certificate of chain, in order, as PEM into a new buffer (free with free()). */
int pki_chain_to_pem(const STACK_OF(X509) * chain, char **pem, size_t *len, struct aegis_err *err);
/* One certificate as PEM into a new buffer (free with free()). */
int pki_cert_to_pem(X509 *cert, char **pem, size_t *len, struct aegis_err *err);
/* Frees a chain and its certificates; accepts NULL. */
void pki_chain_free(STACK_OF(X509) * chain);

/* 0 when key is the private key of cert's public key, else -AEGIS_E_INVALID (with a message). */
int pki_key_matches_cert(X509 *cert, EVP_PKEY *key, struct aegis_err *err);

#define PKI_FINGERPRINT_HEX_SIZE 65 /* 64 lowercase hex digits + NUL */
/* SHA-256 of the certificate's DER, lowercase hex without separators. */
int pki_fingerprint_sha256(X509 *cert, char out[PKI_FINGERPRINT_HEX_SIZE]);

#define PKI_SERIAL_HEX_SIZE 67 /* up to 20 bytes (RFC 5280) + sign + NUL, with room to spare */
/*
 * The serial as uppercase hex without separators or leading zero bytes ("0" for zero; an odd
 * digit count gets a leading 0), as BN_bn2hex, store metadata and `openssl x509 -serial` write it.
 */
int pki_serial_hex(const X509 *cert, char out[PKI_SERIAL_HEX_SIZE]);
/*
 * Normalizes a serial typed by a user (hex, any case, optional "0x" prefix and ':' separators, as
 * `openssl x509 -serial` or -text print it) to the form pki_serial_hex gives.
 */
int pki_serial_normalize(const char *in, char out[PKI_SERIAL_HEX_SIZE], struct aegis_err *err);

/* notBefore and notAfter of cert as Unix seconds (either pointer may be NULL). */
int pki_cert_validity(const X509 *cert, int64_t *not_before, int64_t *not_after);

/* ---- usages ---------------------------------------------------------------------------------- */

/*
 * X(name, text, key usage bit, extended key usage NID) - the API's `usages` strings and what each
 * one sets in the certificate. A 0 column means "none of that kind". The KU_* and NID_* names come
 * from <openssl/x509v3.h>, included where the table is expanded.
 */
#define PKI_USAGES(X)                                                                              \
    X(DIGITAL_SIGNATURE, "digital signature", KU_DIGITAL_SIGNATURE, 0)                             \
    X(CONTENT_COMMITMENT, "content commitment", KU_NON_REPUDIATION, 0)                             \
    X(KEY_ENCIPHERMENT, "key encipherment", KU_KEY_ENCIPHERMENT, 0)                                \
    X(KEY_AGREEMENT, "key agreement", KU_KEY_AGREEMENT, 0)                                         \
    X(CERT_SIGN, "cert sign", KU_KEY_CERT_SIGN, 0)                                                 \
    X(CRL_SIGN, "crl sign", KU_CRL_SIGN, 0)                                                        \
    X(SERVER_AUTH, "server auth", 0, NID_server_auth)                                              \
    X(CLIENT_AUTH, "client auth", 0, NID_client_auth)                                              \
    X(CODE_SIGNING, "code signing", 0, NID_code_sign)                                              \
    X(EMAIL_PROTECTION, "email protection", 0, NID_email_protect)                                  \
    X(OCSP_SIGNING, "ocsp signing", 0, NID_OCSP_sign)

/* Bit positions; the mask of usage U is PKI_USAGE(U), e.g. PKI_USAGE(SERVER_AUTH). */
enum pki_usage_bit {
#define PKI_USAGE_BIT_ENUM(name, text, ku, eku) PKI_USAGE_BIT_##name,
    PKI_USAGES(PKI_USAGE_BIT_ENUM)
#undef PKI_USAGE_BIT_ENUM
        PKI_USAGE_COUNT_
};
#define PKI_USAGE(name) (1u << PKI_USAGE_BIT_##name)
extern const char *const pki_usage_names[PKI_USAGE_COUNT_];

/* The API's default usages: digital signature, key encipherment, server auth. */
#define PKI_USAGES_DEFAULT                                                                         \
    (PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(KEY_ENCIPHERMENT) | PKI_USAGE(SERVER_AUTH))

/*
 * ORs the usages named in v[0..n) into *mask (set to 0 first). An unknown name is
 * -AEGIS_E_INVALID naming it and listing the valid ones.
 */
int pki_usages_parse(char *const *v, size_t n, unsigned *mask, struct aegis_err *err);
/* Writes the names of mask, joined by ", ", into buf (truncated to size). */
void pki_usages_format(unsigned mask, char *buf, size_t size);

/* ---- signing --------------------------------------------------------------------------------- */

/* A borrowed list of strings. */
struct pki_strs {
    char *const *v;
    size_t n;
};

/* What a certificate says. Everything is borrowed; unused lists are {NULL, 0}. */
struct pki_cert_req {
    const char *common_name;                  /* NULL: none (the SANs carry the names) */
    const struct aegis_x509_subject *subject; /* O, OU, C, ST, L, street, postalCode; NULL: none */
    struct pki_strs dns;                      /* dNSName SANs; "*." wildcards allowed */
    struct pki_strs ip;                       /* iPAddress SANs, IPv4 or IPv6 text */
    struct pki_strs uri;                      /* uniformResourceIdentifier SANs */
    struct pki_strs email;                    /* rfc822Name SANs */
    bool is_ca;                               /* basicConstraints CA:TRUE */
    int path_len;                             /* with is_ca: pathLenConstraint; < 0: none */
    unsigned usages;                          /* PKI_USAGE mask; 0: PKI_USAGES_DEFAULT */
    int64_t not_before;                       /* Unix seconds */
    int64_t not_after;                        /* Unix seconds, > not_before */
    const char *crl_url;                      /* cRLDistributionPoints URI; NULL: none */
    const X509_NAME *subject_name; /* when set, the whole subject (e.g. a CSR's), used instead
                                      of common_name and subject */
};

/*
 * Makes and signs an X.509v3 certificate for subject_key's public key (a private key is fine,
 * only its public half is used). issuer_cert NULL makes it self-signed: the issuer name is the
 * subject and issuer_key must be subject_key's private key. With a CA certificate, issuer_key is
 * that CA's private key; keyCertSign on the issuer is not checked here (the caller chose it).
 *
 * Extensions: subjectKeyIdentifier, authorityKeyIdentifier (keyid), basicConstraints (critical),
 * keyUsage (critical, from the usages; a CA always gets keyCertSign and cRLSign),
 * extendedKeyUsage (when any EKU usage is set), subjectAltName (when any SAN is given; critical
 * when the subject is empty, per RFC 5280 4.2.1.6), cRLDistributionPoints (when crl_url is set).
 * Serial: 128 random bits with the top bit cleared, so it is positive and at most 16 bytes.
 * Signature: SHA-256 with the issuer key; Ed25519 signs without a separate digest.
 * Subject: C, ST, L, street, postalCode, O, OU, serialNumber, CN; a self-signed certificate with
 * no subject takes its first SAN (when at most 64 characters) as CN, as an issuer must be named.
 * usages 0 means PKI_USAGES_DEFAULT, without keyEncipherment for non-RSA keys (RFC 8813).
 * More than AEGIS_LIMIT_SANS SANs is -AEGIS_E_LIMIT. The certificate goes to *out.
 */
int pki_sign(const struct pki_cert_req *req, EVP_PKEY *subject_key, X509 *issuer_cert,
             EVP_PKEY *issuer_key, X509 **out, struct aegis_err *err);

/* ---- certificate signing requests ------------------------------------------------------------ */

/*
 * Makes a PKCS#10 CSR for key with req's subject and SANs (as an extensionRequest attribute;
 * is_ca, usages and validity are not carried) and signs it with key. The CSR goes to *out.
 */
int pki_csr_make(const struct pki_cert_req *req, EVP_PKEY *key, X509_REQ **out,
                 struct aegis_err *err);
/* The CSR as PEM ("BEGIN CERTIFICATE REQUEST") into a new buffer (free with free()). */
int pki_csr_to_pem(X509_REQ *csr, char **pem, size_t *len, struct aegis_err *err);

/* An owned list of strings. */
struct pki_strlist {
    char **v;
    size_t n;
};

/* What a CSR asks for; every member is owned (pki_csr_info_dispose releases them). */
struct pki_csr_info {
    char *common_name; /* NULL when the subject has none */
    struct pki_strlist dns, ip, uri, email;
    EVP_PKEY *public_key;
    X509_NAME *subject; /* the whole subject, as requested */
};

/*
 * Reads the first CERTIFICATE REQUEST of pem (at most AEGIS_LIMIT_PEM_BYTES), checks its
 * signature against its own public key (-AEGIS_E_CRYPTO when it does not verify) and extracts the
 * subject, the requested SANs (at most AEGIS_LIMIT_SANS) and the public key into *info (which is
 * initialized here; dispose it even on failure).
 */
int pki_csr_read(const char *pem, size_t len, struct pki_csr_info *info, struct aegis_err *err);
void pki_csr_info_dispose(struct pki_csr_info *info);

/* ---- revocation lists ------------------------------------------------------------------------ */

/* X(name, text, RFC 5280 CRLReason code) - the reason codes a revocation can carry. */
#define PKI_CRL_REASONS(X)                                                                         \
    X(UNSPECIFIED, "unspecified", 0)                                                               \
    X(KEY_COMPROMISE, "keyCompromise", 1)                                                          \
    X(CA_COMPROMISE, "cACompromise", 2)                                                            \
    X(AFFILIATION_CHANGED, "affiliationChanged", 3)                                                \
    X(SUPERSEDED, "superseded", 4)                                                                 \
    X(CESSATION_OF_OPERATION, "cessationOfOperation", 5)                                           \
    X(CERTIFICATE_HOLD, "certificateHold", 6)                                                      \
    X(PRIVILEGE_WITHDRAWN, "privilegeWithdrawn", 9)

enum pki_crl_reason {
#define PKI_CRL_REASON_ENUM(name, text, code) PKI_CRL_REASON_##name,
    PKI_CRL_REASONS(PKI_CRL_REASON_ENUM)
#undef PKI_CRL_REASON_ENUM
        PKI_CRL_REASON_COUNT_
};
extern const char *const pki_crl_reason_names[PKI_CRL_REASON_COUNT_];
/* The reason named text (case-insensitive), or -AEGIS_E_INVALID listing the valid names. */
int pki_crl_reason_parse(const char *text, enum pki_crl_reason *reason, struct aegis_err *err);

struct pki_revoked {
    char serial_hex[PKI_SERIAL_HEX_SIZE]; /* as pki_serial_hex gives it */
    int64_t revoked_at;                   /* Unix seconds */
    enum pki_crl_reason reason;
};

/*
 * Makes a v2 CRL signed by issuer_key for issuer_cert listing revoked[0..n), with thisUpdate,
 * nextUpdate, a cRLNumber of number and an authorityKeyIdentifier. The CRL goes to *out.
 */
int pki_crl_make(X509 *issuer_cert, EVP_PKEY *issuer_key, const struct pki_revoked *revoked,
                 size_t n, int64_t this_update, int64_t next_update, uint64_t number,
                 X509_CRL **out, struct aegis_err *err);
/* The CRL as PEM ("BEGIN X509 CRL") or DER into a new buffer (free with free()). */
int pki_crl_to_pem(X509_CRL *crl, char **pem, size_t *len, struct aegis_err *err);
int pki_crl_to_der(X509_CRL *crl, unsigned char **der, size_t *len, struct aegis_err *err);

#endif
