/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cryptography of ACME (RFC 8555), without any I/O: the JSON Web Key of an account key
 * (RFC 7517/7518), its RFC 7638 thumbprint, key authorizations (RFC 8555 section 8.1), requests
 * signed as flattened JWS (RFC 7515 section 7.2.2) with ES256 (P-256; the signature is r||s, 64
 * bytes, not DER) or RS256, and the External Account Binding's inner HS256 JWS (section 7.3.4).
 *
 * Every function is pure and thread-safe. Nothing here prints or keeps key material.
 */
#ifndef AEGIS_ACME_JWS_H
#define AEGIS_ACME_JWS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "aegis/err.h"

/* base64url of a SHA-256 digest (43 characters) plus a NUL. */
#define ACME_JWS_THUMBPRINT_SIZE 44

/* The JWS "alg" of an account key: "ES256" (EC P-256) or "RS256" (RSA); NULL for another key. */
const char *acme_jws_alg(const EVP_PKEY *key);

/*
 * base64url without padding (RFC 7515 section 2) of len bytes, as a new NUL-terminated string
 * (free with free()).
 */
char *acme_jws_b64url(const void *data, size_t len);
/*
 * Decodes base64url (padding tolerated) into a new buffer *out of *len bytes (freed by the caller
 * with pki_secret_free when it is a key). -AEGIS_E_INVALID for a bad character or length.
 */
int acme_jws_b64url_decode(const char *text, unsigned char **out, size_t *len,
                           struct aegis_err *err);

/*
 * The public JWK of key (EC: crv, kty, x, y; RSA: e, kty, n), a new JSON object with exactly the
 * members RFC 7638 hashes. -AEGIS_E_UNSUPPORTED for a key acme_jws_alg refuses.
 */
int acme_jws_jwk(EVP_PKEY *key, json_t **jwk, struct aegis_err *err);

/*
 * The RFC 7638 thumbprint of a public JWK object (its required members, in lexicographic order,
 * without whitespace, hashed with SHA-256) as base64url into out.
 */
int acme_jws_thumbprint_jwk(const json_t *jwk, char out[ACME_JWS_THUMBPRINT_SIZE],
                            struct aegis_err *err);
/* The same for the public half of key. */
int acme_jws_thumbprint(EVP_PKEY *key, char out[ACME_JWS_THUMBPRINT_SIZE], struct aegis_err *err);

/* "<token>.<thumbprint>" (RFC 8555 section 8.1) into a new string (free()). */
int acme_jws_key_authorization(const char *token, EVP_PKEY *key, char **out, struct aegis_err *err);
/* The DNS-01 TXT value: base64url(SHA-256(key authorization)) into a new string (free()). */
char *acme_jws_dns01_value(const char *key_authorization);

/*
 * A request body: the flattened JWS JSON serialization of payload signed with key. The protected
 * header holds alg, nonce, url and either kid (when kid is non-NULL) or the jwk (account
 * creation, revocation by certificate key). payload NULL is the empty payload of POST-as-GET
 * (RFC 8555 section 6.3). *body is a new NUL-terminated string (free()).
 */
int acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                  const char *payload, char **body, struct aegis_err *err);

/*
 * The externalAccountBinding member of a newAccount payload (RFC 8555 section 7.3.4): a
 * flattened JWS with protected {alg: HS256, kid: eab_kid, url}, the account key's JWK as
 * payload, MACed with the hmac key (hmac_len bytes, borrowed; never copied into messages).
 * *out is a new JSON object.
 */
int acme_jws_eab(const char *eab_kid, const unsigned char *hmac, size_t hmac_len,
                 EVP_PKEY *account_key, const char *url, json_t **out, struct aegis_err *err);

#endif
