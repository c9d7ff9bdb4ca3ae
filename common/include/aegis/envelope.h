/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed envelope: AES-256-GCM (NIST SP 800-38D) through OpenSSL EVP, with a versioned
 * binary header naming the master key that sealed it.
 *
 *   offset  size  field
 *   0       4     magic "AEGE"
 *   4       1     version (1)
 *   5       1     algorithm (1 = AES-256-GCM)
 *   6       2     reserved, zero
 *   8       8     key id (masterkey.h)
 *   16      12    nonce, random per seal (RAND_bytes)
 *   28      n     ciphertext
 *   28+n    16    GCM tag
 *
 * The GCM associated data is the 28-byte header followed by the caller's aad string (the record
 * identity, "certificate/default/app/tls.key"): neither the header nor the identity can change
 * without the tag failing, so a ciphertext cannot be moved to another record.
 */
#ifndef AEGIS_ENVELOPE_H
#define AEGIS_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"

#define ENVELOPE_MAGIC "AEGE"
#define ENVELOPE_VERSION 1
#define ENVELOPE_ALG_AES_256_GCM 1
#define ENVELOPE_HEADER_BYTES 28
#define ENVELOPE_NONCE_BYTES 12
#define ENVELOPE_TAG_BYTES 16
#define ENVELOPE_OVERHEAD (ENVELOPE_HEADER_BYTES + ENVELOPE_TAG_BYTES)

/*
 * Seals n bytes of pt (n <= AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES) under mk with aad (a string of
 * at most AEGIS_LIMIT_ENVELOPE_AAD_BYTES). On success *out (the caller frees it) holds
 * n + ENVELOPE_OVERHEAD bytes.
 */
int envelope_seal(const struct aegis_masterkey *mk, const char *aad, const void *pt, size_t n,
                  unsigned char **out, size_t *outlen, struct aegis_err *err);
/*
 * Opens an envelope with the ring key named by its key id, checking aad. On success *pt holds
 * *ptlen bytes plus a NUL (so PEM text is a C string); the caller cleanses and frees it
 * (envelope_free_plaintext). Errors: -AEGIS_E_INVALID (not an envelope, truncated, unknown
 * version), -AEGIS_E_NOTFOUND (no key with that id in the ring; the message names the id),
 * -AEGIS_E_CRYPTO (authentication failed: wrong key, tampered data or wrong aad), -AEGIS_E_LIMIT.
 */
int envelope_open(const struct aegis_keyring *ring, const char *aad, const unsigned char *in,
                  size_t len, unsigned char **pt, size_t *ptlen, struct aegis_err *err);
/* Reads the key id of an envelope without opening it; -AEGIS_E_INVALID when not an envelope. */
int envelope_key_id(const unsigned char *in, size_t len, unsigned char id[MASTERKEY_ID_BYTES]);
/* OPENSSL_cleanse + free of n bytes (plus the NUL envelope_open adds); accepts NULL. */
void envelope_free_plaintext(unsigned char *pt, size_t n);

#ifdef AEGIS_ENVELOPE_TESTING
/*
 * Test-only: envelope_seal with a given nonce, for known-answer tests. Never call it elsewhere:
 * a repeated nonce under one key breaks GCM.
 */
int envelope__seal_nonce(const struct aegis_masterkey *mk, const char *aad, const void *pt,
                         size_t n, const unsigned char nonce[ENVELOPE_NONCE_BYTES],
                         unsigned char **out, size_t *outlen, struct aegis_err *err);
/* Test-only: raw AES-256-GCM with the caller's AAD (no header), for NIST vectors. */
int envelope__gcm_raw(bool encrypt, const unsigned char key[32], const unsigned char *iv,
                      size_t ivlen, const unsigned char *aad, size_t aadlen,
                      const unsigned char *in, size_t n, unsigned char *out, unsigned char tag[16]);
#endif

#endif
