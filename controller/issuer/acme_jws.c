/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JWK, thumbprints, key authorizations and flattened JWS for ACME (acme_jws.h): RFC 7515, 7517,
 * 7518, 7638 and RFC 8555 sections 6.2, 7.3.4 and 8.1.
 */
#include "issuer/acme_jws.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"

#define WHERE "acme"
/* The byte length of a P-256 coordinate and of each half of an ES256 signature. */
#define P256_BYTES 32

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *acme_jws_b64url(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = aegis_malloc(len / 3 * 4 + 5), *o = out;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[(v >> 12) & 63];
        *o++ = b64url_alphabet[(v >> 6) & 63];
        *o++ = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;

        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

        *o++ = b64url_alphabet[v >> 18];
        *o++ = b64url_alphabet[(v >> 12) & 63];
        *o++ = b64url_alphabet[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

int acme_jws_b64url_decode(const char *text, unsigned char **out, size_t *len,
                           struct aegis_err *err)
{
    size_t n = strlen(text), bits = 0, o = 0;
    uint32_t acc = 0;
    unsigned char *buf;

    while (n > 0 &&
           (text[n - 1] == '=' || text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n % 4 == 1)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE,
                             "the base64url text has an impossible length (%zu characters)", n);
    buf = aegis_malloc(n / 4 * 3 + 3);
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(text[i]);

        if (v < 0) {
            pki_secret_free((char *)buf, n / 4 * 3 + 3);
            return aegis_err_set(err, -AEGIS_E_INVALID, WHERE,
                                 "the base64url text has a bad character at offset %zu", i);
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out = buf;
    *len = o;
    return 0;
}

const char *acme_jws_alg(const EVP_PKEY *key)
{
    char group[32];
    size_t glen = 0;

    if (key == NULL)
        return NULL;
    if (EVP_PKEY_is_a(key, "RSA"))
        return "RS256";
    if (EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) == 1 &&
        (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0))
        return "ES256";
    return NULL;
}

/* base64url of a big number, left-padded with zeros to pad bytes (0: its minimal length). */
static char *bn_b64url(const BIGNUM *bn, int pad)
{
    int n = pad > 0 ? pad : BN_num_bytes(bn);
    unsigned char *buf = aegis_malloc((size_t)n + 1);
    char *out;

    if (BN_bn2binpad(bn, buf, n) != n) {
        free(buf);
        return NULL;
    }
    out = acme_jws_b64url(buf, (size_t)n);
    free(buf);
    return out;
}

int acme_jws_jwk(EVP_PKEY *key, json_t **jwk, struct aegis_err *err)
{
    const char *alg = acme_jws_alg(key);
    BIGNUM *a = NULL, *b = NULL;
    char *sa = NULL, *sb = NULL;
    int rc = 0;

    *jwk = NULL;
    if (alg == NULL)
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, WHERE,
                             "an ACME account key must be ECDSA P-256 (ES256) or RSA (RS256)");
    if (strcmp(alg, "ES256") == 0) {
        if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) != 1 ||
            EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b) != 1) {
            rc = aegis_err_set(err, -AEGIS_E_CRYPTO, WHERE, "cannot read the EC public key");
            goto out;
        }
        sa = bn_b64url(a, P256_BYTES);
        sb = bn_b64url(b, P256_BYTES);
        if (sa != NULL && sb != NULL)
            *jwk = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", sa, "y", sb);
    } else {
        if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) != 1 ||
            EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b) != 1) {
            rc = aegis_err_set(err, -AEGIS_E_CRYPTO, WHERE, "cannot read the RSA public key");
            goto out;
        }
        sa = bn_b64url(a, 0);
        sb = bn_b64url(b, 0);
        if (sa != NULL && sb != NULL)
            *jwk = json_pack("{s:s, s:s, s:s}", "e", sb, "kty", "RSA", "n", sa);
    }
    if (*jwk == NULL)
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, WHERE, "cannot encode the public key as a JWK");
out:
    BN_free(a);
    BN_free(b);
    free(sa);
    free(sb);
    return rc;
}

int acme_jws_thumbprint_jwk(const json_t *jwk, char out[ACME_JWS_THUMBPRINT_SIZE],
                            struct aegis_err *err)
{
    /* RFC 7638 section 3.2: only the required members of each key type are hashed. */
    static const char *const ec[] = {"crv", "kty", "x", "y", NULL};
    static const char *const rsa[] = {"e", "kty", "n", NULL};
    static const char *const oct[] = {"k", "kty", NULL};
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *const *members;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    json_t *canon;
    char *text, *b64;

    if (kty == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE, "the JWK has no kty");
    if (strcmp(kty, "EC") == 0)
        members = ec;
    else if (strcmp(kty, "RSA") == 0)
        members = rsa;
    else if (strcmp(kty, "oct") == 0)
        members = oct;
    else
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, WHERE, "JWK key type %s is not supported",
                             kty);
    canon = json_object();
    for (size_t i = 0; members[i] != NULL; i++) {
        json_t *v = json_object_get(jwk, members[i]);

        if (!json_is_string(v)) {
            json_decref(canon);
            return aegis_err_set(err, -AEGIS_E_INVALID, WHERE, "the %s JWK has no member %s", kty,
                                 members[i]);
        }
        json_object_set(canon, members[i], v);
    }
    /* Sorted keys, "," and ":" without whitespace: the canonical form of RFC 7638 3.3. */
    text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(canon);
    if (text == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE, "cannot serialize the JWK");
    SHA256((const unsigned char *)text, strlen(text), digest);
    free(text);
    b64 = acme_jws_b64url(digest, sizeof(digest));
    snprintf(out, ACME_JWS_THUMBPRINT_SIZE, "%s", b64);
    free(b64);
    return 0;
}

int acme_jws_thumbprint(EVP_PKEY *key, char out[ACME_JWS_THUMBPRINT_SIZE], struct aegis_err *err)
{
    json_t *jwk = NULL;
    int rc = acme_jws_jwk(key, &jwk, err);

    if (rc == 0)
        rc = acme_jws_thumbprint_jwk(jwk, out, err);
    json_decref(jwk);
    return rc;
}

int acme_jws_key_authorization(const char *token, EVP_PKEY *key, char **out, struct aegis_err *err)
{
    char tp[ACME_JWS_THUMBPRINT_SIZE];
    int rc = acme_jws_thumbprint(key, tp, err);

    *out = rc == 0 ? aegis_asprintf("%s.%s", token, tp) : NULL;
    return rc;
}

char *acme_jws_dns01_value(const char *key_authorization)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)key_authorization, strlen(key_authorization), digest);
    return acme_jws_b64url(digest, sizeof(digest));
}

/* Signs input with key: RS256 (PKCS#1 v1.5) or ES256 converted from DER to r||s. */
static int sign_input(EVP_PKEY *key, const char *input, unsigned char **sig, size_t *sig_len,
                      struct aegis_err *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    size_t der_len = 0;
    ECDSA_SIG *es = NULL;
    int rc = -AEGIS_E_CRYPTO;

    *sig = NULL;
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &der_len, (const unsigned char *)input, strlen(input)) != 1)
        goto out;
    der = aegis_malloc(der_len);
    if (EVP_DigestSign(md, der, &der_len, (const unsigned char *)input, strlen(input)) != 1)
        goto out;
    if (strcmp(acme_jws_alg(key), "RS256") == 0) {
        *sig = der;
        *sig_len = der_len;
        der = NULL;
        rc = 0;
        goto out;
    }
    {
        /* JWS wants the two integers as fixed-size big-endian halves (RFC 7518 3.4). */
        const unsigned char *p = der;
        const BIGNUM *r, *s;

        es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        if (es == NULL)
            goto out;
        ECDSA_SIG_get0(es, &r, &s);
        *sig = aegis_malloc(2 * P256_BYTES);
        if (BN_bn2binpad(r, *sig, P256_BYTES) != P256_BYTES ||
            BN_bn2binpad(s, *sig + P256_BYTES, P256_BYTES) != P256_BYTES) {
            free(*sig);
            *sig = NULL;
            goto out;
        }
        *sig_len = 2 * P256_BYTES;
        rc = 0;
    }
out:
    if (rc < 0)
        aegis_err_set(err, rc, WHERE, "signing the ACME request failed");
    ECDSA_SIG_free(es);
    free(der);
    EVP_MD_CTX_free(md);
    return rc;
}

/* "<b64(protected)>.<b64(payload)>" and the two parts (each free()). */
static char *signing_input(const json_t *protected_hdr, const char *payload, char **p64,
                           char **pl64)
{
    char *ph = json_dumps(protected_hdr, JSON_COMPACT | JSON_SORT_KEYS);

    *p64 = acme_jws_b64url(ph, strlen(ph));
    *pl64 = payload != NULL ? acme_jws_b64url(payload, strlen(payload)) : aegis_strdup("");
    free(ph);
    return aegis_asprintf("%s.%s", *p64, *pl64);
}

int acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                  const char *payload, char **body, struct aegis_err *err)
{
    const char *alg = acme_jws_alg(key);
    json_t *hdr = NULL, *jwk = NULL, *out = NULL;
    char *p64 = NULL, *pl64 = NULL, *input = NULL, *s64 = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int rc = 0;

    *body = NULL;
    if (alg == NULL)
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, WHERE,
                             "an ACME account key must be ECDSA P-256 (ES256) or RSA (RS256)");
    hdr = json_pack("{s:s, s:s}", "alg", alg, "url", url);
    if (nonce != NULL)
        json_object_set_new(hdr, "nonce", json_string(nonce));
    if (kid != NULL) {
        json_object_set_new(hdr, "kid", json_string(kid));
    } else {
        rc = acme_jws_jwk(key, &jwk, err);
        if (rc < 0)
            goto out;
        json_object_set(hdr, "jwk", jwk);
    }
    input = signing_input(hdr, payload, &p64, &pl64);
    rc = sign_input(key, input, &sig, &sig_len, err);
    if (rc < 0)
        goto out;
    s64 = acme_jws_b64url(sig, sig_len);
    out = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", pl64, "signature", s64);
    *body = json_dumps(out, JSON_COMPACT);
out:
    json_decref(hdr);
    json_decref(jwk);
    json_decref(out);
    free(p64);
    free(pl64);
    free(input);
    free(s64);
    free(sig);
    return rc;
}

int acme_jws_eab(const char *eab_kid, const unsigned char *hmac, size_t hmac_len,
                 EVP_PKEY *account_key, const char *url, json_t **out, struct aegis_err *err)
{
    json_t *hdr = NULL, *jwk = NULL;
    char *jwk_text = NULL, *p64 = NULL, *pl64 = NULL, *input = NULL, *s64 = NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int rc;

    *out = NULL;
    rc = acme_jws_jwk(account_key, &jwk, err);
    if (rc < 0)
        goto out;
    jwk_text = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
    input = signing_input(hdr, jwk_text, &p64, &pl64);
    if (HMAC(EVP_sha256(), hmac, (int)hmac_len, (const unsigned char *)input, strlen(input), mac,
             &mac_len) == NULL) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, WHERE, "the EAB HMAC failed");
        goto out;
    }
    s64 = acme_jws_b64url(mac, mac_len);
    OPENSSL_cleanse(mac, sizeof(mac));
    *out = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", pl64, "signature", s64);
out:
    json_decref(hdr);
    json_decref(jwk);
    free(jwk_text);
    free(p64);
    free(pl64);
    free(input);
    free(s64);
    return rc;
}
