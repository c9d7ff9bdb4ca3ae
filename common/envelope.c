/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed envelope (envelope.h): AES-256-GCM from NIST SP 800-38D through OpenSSL's EVP
 * interface, a fresh 96-bit random nonce per seal, and a versioned header that names the key.
 * The header and the caller's record identity are both authenticated as associated data, so
 * any change to either, to the nonce, the ciphertext or the tag fails the tag check; a failure
 * never yields plaintext.
 */
/* The test entry points are defined here, so their prototypes must be visible. */
#define AEGIS_ENVELOPE_TESTING
#include "aegis/envelope.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"

#define KEY_ID_OFF 8
#define NONCE_OFF 16

/*
 * One AES-256-GCM pass. Encrypting writes tag; decrypting checks it and returns -AEGIS_E_CRYPTO
 * on a mismatch, after which out must be discarded (the caller cleanses it). EVP takes int
 * lengths, which the callers' limits keep far below INT_MAX.
 */
int envelope__gcm_raw(bool encrypt, const unsigned char key[32], const unsigned char *iv,
                      size_t ivlen, const unsigned char *aad, size_t aadlen,
                      const unsigned char *in, size_t n, unsigned char *out, unsigned char tag[16])
{
    EVP_CIPHER_CTX *ctx = NULL;
    int len = 0, rc = -AEGIS_E_CRYPTO;
    int enc = encrypt ? 1 : 0;

    if (n > AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES + 64 || aadlen > 65536 || ivlen == 0 ||
        ivlen > 128)
        return -AEGIS_E_LIMIT;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)ivlen, NULL) != 1)
        goto out;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1)
        goto out;
    if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto out;
    if (n > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
        goto out;
    if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ENVELOPE_TAG_BYTES, tag) != 1)
        goto out;
    /* For decryption this is where the tag is compared (in constant time, by OpenSSL). */
    if (EVP_CipherFinal_ex(ctx, out + (n > 0 ? len : 0), &len) != 1)
        goto out;
    if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ENVELOPE_TAG_BYTES, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* The GCM associated data: the whole header, then the record identity. */
static unsigned char *make_aad(const unsigned char *header, const char *aad, size_t *len)
{
    size_t alen = strlen(aad);
    unsigned char *buf = aegis_malloc(ENVELOPE_HEADER_BYTES + alen + 1);

    memcpy(buf, header, ENVELOPE_HEADER_BYTES);
    /* The NUL is copied too (and left out of *len), which keeps the copy a whole string. */
    memcpy(buf + ENVELOPE_HEADER_BYTES, aad, alen + 1);
    *len = ENVELOPE_HEADER_BYTES + alen;
    return buf;
}

static int check_aad(const char *aad, struct aegis_err *err)
{
    if (aad == NULL || aad[0] == '\0')
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "envelope: the associated data (record identity) is empty");
    if (strnlen(aad, AEGIS_LIMIT_ENVELOPE_AAD_BYTES + 1) > AEGIS_LIMIT_ENVELOPE_AAD_BYTES)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL,
                             "envelope: the record identity is longer than %u bytes",
                             (unsigned)AEGIS_LIMIT_ENVELOPE_AAD_BYTES);
    return 0;
}

int envelope__seal_nonce(const struct aegis_masterkey *mk, const char *aad, const void *pt,
                         size_t n, const unsigned char nonce[ENVELOPE_NONCE_BYTES],
                         unsigned char **out, size_t *outlen, struct aegis_err *err)
{
    unsigned char *buf = NULL, *ad = NULL;
    size_t adlen = 0, total;
    int rc;

    *out = NULL;
    *outlen = 0;
    rc = check_aad(aad, err);
    if (rc < 0)
        goto out;
    if (n > AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, aad,
                           "envelope: a sealed value is limited to %u bytes, this one has %zu",
                           (unsigned)AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES, n);
        goto out;
    }
    total = n + ENVELOPE_OVERHEAD;
    buf = aegis_malloc(total);
    memcpy(buf, ENVELOPE_MAGIC, 4);
    buf[4] = ENVELOPE_VERSION;
    buf[5] = ENVELOPE_ALG_AES_256_GCM;
    buf[6] = 0;
    buf[7] = 0;
    memcpy(buf + KEY_ID_OFF, mk->id, MASTERKEY_ID_BYTES);
    memcpy(buf + NONCE_OFF, nonce, ENVELOPE_NONCE_BYTES);
    ad = make_aad(buf, aad, &adlen);
    rc = envelope__gcm_raw(true, mk->key, nonce, ENVELOPE_NONCE_BYTES, ad, adlen, pt, n,
                           buf + ENVELOPE_HEADER_BYTES, buf + ENVELOPE_HEADER_BYTES + n);
    if (rc < 0) {
        aegis_err_set(err, rc, aad, "envelope: AES-256-GCM encryption failed");
        goto out;
    }
    *out = buf;
    *outlen = total;
    buf = NULL;
out:
    free(buf);
    free(ad);
    return rc;
}

int envelope_seal(const struct aegis_masterkey *mk, const char *aad, const void *pt, size_t n,
                  unsigned char **out, size_t *outlen, struct aegis_err *err)
{
    unsigned char nonce[ENVELOPE_NONCE_BYTES];

    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        *out = NULL;
        *outlen = 0;
        return aegis_err_set(err, -AEGIS_E_CRYPTO, aad,
                             "envelope: the random generator failed to make a nonce");
    }
    return envelope__seal_nonce(mk, aad, pt, n, nonce, out, outlen, err);
}

/* Checks the header's fixed parts; the reserved bytes must be zero so they can gain a meaning. */
static int parse_header(const unsigned char *in, size_t len, struct aegis_err *err)
{
    if (len < ENVELOPE_OVERHEAD)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "envelope: truncated (%zu bytes; at least %d expected)", len,
                             ENVELOPE_OVERHEAD);
    if (memcmp(in, ENVELOPE_MAGIC, 4) != 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "envelope: not a sealed value (bad magic)");
    if (in[4] != ENVELOPE_VERSION)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "envelope: version %u is not supported (this build reads %d)", in[4],
                             ENVELOPE_VERSION);
    if (in[5] != ENVELOPE_ALG_AES_256_GCM)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "envelope: algorithm %u is not supported",
                             in[5]);
    if (in[6] != 0 || in[7] != 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "envelope: reserved header bytes are not zero");
    if (len - ENVELOPE_OVERHEAD > AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "envelope: larger than the %u-byte limit",
                             (unsigned)AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES);
    return 0;
}

int envelope_key_id(const unsigned char *in, size_t len, unsigned char id[MASTERKEY_ID_BYTES])
{
    int rc = parse_header(in, len, NULL);

    if (rc < 0)
        return rc;
    memcpy(id, in + KEY_ID_OFF, MASTERKEY_ID_BYTES);
    return 0;
}

int envelope_open(const struct aegis_keyring *ring, const char *aad, const unsigned char *in,
                  size_t len, unsigned char **pt, size_t *ptlen, struct aegis_err *err)
{
    const struct aegis_masterkey *mk;
    unsigned char *buf = NULL, *ad = NULL;
    unsigned char tag[ENVELOPE_TAG_BYTES];
    char idhex[MASTERKEY_ID_HEX_LEN + 1];
    size_t n = 0, adlen = 0;
    int rc;

    *pt = NULL;
    *ptlen = 0;
    rc = check_aad(aad, err);
    if (rc < 0)
        goto out;
    rc = parse_header(in, len, err);
    if (rc < 0)
        goto out;
    mk = masterkey_ring_find(ring, in + KEY_ID_OFF);
    if (mk == NULL) {
        masterkey_id_hex(in + KEY_ID_OFF, idhex, sizeof(idhex));
        rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, aad,
                           "sealed with master key id %s, which is not the configured master "
                           "key; set AEGIS_MASTER_KEY or --master-key-file to the key with that id",
                           idhex);
        goto out;
    }
    n = len - ENVELOPE_OVERHEAD;
    memcpy(tag, in + len - ENVELOPE_TAG_BYTES, ENVELOPE_TAG_BYTES);
    buf = aegis_malloc(n + 1);
    ad = make_aad(in, aad, &adlen);
    rc = envelope__gcm_raw(false, mk->key, in + NONCE_OFF, ENVELOPE_NONCE_BYTES, ad, adlen,
                           in + ENVELOPE_HEADER_BYTES, n, buf, tag);
    if (rc < 0) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, aad,
                           "the sealed value failed authentication: it was altered or belongs "
                           "to another record");
        goto out;
    }
    buf[n] = '\0';
    *pt = buf;
    *ptlen = n;
    buf = NULL;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, n + 1);
        free(buf);
    }
    free(ad);
    return rc;
}

void envelope_free_plaintext(unsigned char *pt, size_t n)
{
    if (pt == NULL)
        return;
    OPENSSL_cleanse(pt, n + 1);
    free(pt);
}
