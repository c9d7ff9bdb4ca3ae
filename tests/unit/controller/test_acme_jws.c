/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/issuer/acme_jws.c: base64url both ways, the RFC 7638 section 3.1
 * thumbprint example, JWKs of EC and RSA keys, key authorizations and the DNS-01 value, JWS
 * requests (ES256 as r||s, RS256) verified with OpenSSL over the signing input with kid and with
 * jwk headers, POST-as-GET's empty payload, and the EAB inner JWS checked with HMAC-SHA256.
 */
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/pki.h"
#include "check.h"
#include "issuer/acme_jws.h"

static const char rfc7638_jwk[] =
    "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK"
    "7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
    "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLy"
    "rdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\","
    "\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";

static void test_b64url(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"\xfb\xff", "-_8"}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *e = acme_jws_b64url(cases[i].in, strlen(cases[i].in));
        unsigned char *d = NULL;
        size_t len = 0;

        CHECK_STR(e, cases[i].out, "base64url encodes without padding");
        CHECK(acme_jws_b64url_decode(e, &d, &len, NULL) == 0 && len == strlen(cases[i].in) &&
                  memcmp(d, cases[i].in, len) == 0,
              "and decodes back");
        free(e);
        free(d);
    }
    {
        unsigned char *d = NULL;
        size_t len;

        CHECK(acme_jws_b64url_decode("ab$d", &d, &len, NULL) == -AEGIS_E_INVALID,
              "a bad character is refused");
        CHECK(acme_jws_b64url_decode("abcde", &d, &len, NULL) == -AEGIS_E_INVALID,
              "an impossible length is refused");
    }
}

static void test_rfc7638(void)
{
    json_t *jwk = json_loads(rfc7638_jwk, 0, NULL);
    char tp[ACME_JWS_THUMBPRINT_SIZE] = "";

    CHECK(acme_jws_thumbprint_jwk(jwk, tp, NULL) == 0, "the RFC 7638 example hashes");
    CHECK_STR(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
              "its thumbprint is the RFC's (members alg and kid left out)");
    json_decref(jwk);
}

/* Verifies a flattened JWS body with key; returns the decoded protected header (new ref). */
static json_t *verify(const char *body, EVP_PKEY *key, const char **payload_b64, bool *ok)
{
    json_t *doc = json_loads(body, 0, NULL), *hdr = NULL;
    const char *p = json_string_value(json_object_get(doc, "protected"));
    const char *pl = json_string_value(json_object_get(doc, "payload"));
    const char *s = json_string_value(json_object_get(doc, "signature"));
    unsigned char *sig = NULL, *ph = NULL, *der = NULL;
    size_t sig_len = 0, ph_len = 0;
    char *input;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    *ok = false;
    if (p == NULL || pl == NULL || s == NULL || acme_jws_b64url_decode(s, &sig, &sig_len, NULL) ||
        acme_jws_b64url_decode(p, &ph, &ph_len, NULL))
        goto out;
    hdr = json_loadb((const char *)ph, ph_len, 0, NULL);
    input = malloc(strlen(p) + strlen(pl) + 2);
    snprintf(input, strlen(p) + strlen(pl) + 2, "%s.%s", p, pl);
    if (EVP_PKEY_is_a(key, "EC")) {
        /* r||s back to DER for OpenSSL. */
        ECDSA_SIG *es = ECDSA_SIG_new();
        int der_len;

        if (sig_len != 64) {
            ECDSA_SIG_free(es);
            free(input);
            goto out;
        }
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        der_len = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        *ok =
            EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
            EVP_DigestVerify(md, der, (size_t)der_len, (unsigned char *)input, strlen(input)) == 1;
    } else {
        *ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, (unsigned char *)input, strlen(input)) == 1;
    }
    free(input);
    *payload_b64 = pl;
out:
    OPENSSL_free(der);
    free(sig);
    free(ph);
    EVP_MD_CTX_free(md);
    /* The payload pointer lives in doc: keep doc alive through the header's reference. */
    if (hdr != NULL)
        json_object_set_new(hdr, "__doc", doc);
    else
        json_decref(doc);
    return hdr;
}

static void test_sign(enum pki_key_type type, const char *alg)
{
    EVP_PKEY *key = NULL;
    char *body = NULL, *ka = NULL;
    const char *pl = NULL;
    json_t *hdr, *jwk = NULL;
    bool ok;
    char tp[ACME_JWS_THUMBPRINT_SIZE];

    CHECK(pki_key_generate(type, &key, NULL) == 0, "a key is made");
    CHECK_STR(acme_jws_alg(key), alg, "its JWS alg");
    CHECK(acme_jws_jwk(key, &jwk, NULL) == 0 &&
              json_object_size(jwk) == (strcmp(alg, "ES256") == 0 ? 4u : 3u),
          "its JWK holds exactly the required members");
    if (strcmp(alg, "ES256") == 0)
        CHECK(strlen(json_string_value(json_object_get(jwk, "x"))) == 43,
              "EC coordinates are 32 bytes (43 base64url characters)");
    json_decref(jwk);

    CHECK(acme_jws_sign(key, NULL, "nonce-1", "https://ca.test/new-acct", "{\"a\":1}", &body,
                        NULL) == 0,
          "a request with jwk is signed");
    hdr = verify(body, key, &pl, &ok);
    CHECK(ok, "its signature verifies with OpenSSL");
    CHECK_STR(json_string_value(json_object_get(hdr, "alg")), alg, "protected alg");
    CHECK_STR(json_string_value(json_object_get(hdr, "nonce")), "nonce-1", "protected nonce");
    CHECK_STR(json_string_value(json_object_get(hdr, "url")), "https://ca.test/new-acct",
              "protected url");
    CHECK(json_is_object(json_object_get(hdr, "jwk")) && json_object_get(hdr, "kid") == NULL,
          "jwk and no kid");
    CHECK_STR(pl, "eyJhIjoxfQ", "the payload is base64url of the JSON");
    json_decref(hdr);
    free(body);

    CHECK(acme_jws_sign(key, "https://ca.test/acct/1", "n2", "https://ca.test/order/1", NULL, &body,
                        NULL) == 0,
          "a POST-as-GET with kid is signed");
    hdr = verify(body, key, &pl, &ok);
    CHECK(ok, "its signature verifies");
    CHECK_STR(json_string_value(json_object_get(hdr, "kid")), "https://ca.test/acct/1",
              "kid is the account URL");
    CHECK(json_object_get(hdr, "jwk") == NULL, "no jwk beside kid");
    CHECK_STR(pl, "", "POST-as-GET's payload is empty");
    json_decref(hdr);
    free(body);

    CHECK(acme_jws_key_authorization("tok", key, &ka, NULL) == 0 &&
              acme_jws_thumbprint(key, tp, NULL) == 0,
          "a key authorization is made");
    CHECK(ka != NULL && strncmp(ka, "tok.", 4) == 0 && strcmp(ka + 4, tp) == 0,
          "it is token.thumbprint");
    free(ka);
    EVP_PKEY_free(key);
}

static void test_eab(void)
{
    static const unsigned char hmac_key[] = "0123456789abcdef0123456789abcdef";
    EVP_PKEY *key = NULL;
    json_t *eab = NULL, *hdr;
    unsigned char mac[EVP_MAX_MD_SIZE], *ph = NULL, *sig = NULL;
    unsigned int mac_len = 0;
    size_t ph_len = 0, sig_len = 0;
    char *input;
    const char *p, *pl;

    pki_key_generate(PKI_KEY_EC_P256, &key, NULL);
    CHECK(acme_jws_eab("kid-1", hmac_key, 32, key, "https://ca.test/new-acct", &eab, NULL) == 0,
          "an EAB JWS is made");
    p = json_string_value(json_object_get(eab, "protected"));
    pl = json_string_value(json_object_get(eab, "payload"));
    acme_jws_b64url_decode(p, &ph, &ph_len, NULL);
    hdr = json_loadb((const char *)ph, ph_len, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(hdr, "alg")), "HS256", "EAB alg HS256");
    CHECK_STR(json_string_value(json_object_get(hdr, "kid")), "kid-1", "EAB kid");
    CHECK(json_object_get(hdr, "nonce") == NULL, "no nonce in the inner JWS (RFC 8555 7.3.4)");
    input = malloc(strlen(p) + strlen(pl) + 2);
    snprintf(input, strlen(p) + strlen(pl) + 2, "%s.%s", p, pl);
    HMAC(EVP_sha256(), hmac_key, 32, (unsigned char *)input, strlen(input), mac, &mac_len);
    acme_jws_b64url_decode(json_string_value(json_object_get(eab, "signature")), &sig, &sig_len,
                           NULL);
    CHECK(sig_len == mac_len && memcmp(sig, mac, mac_len) == 0, "the MAC is HMAC-SHA256");
    free(input);
    free(ph);
    free(sig);
    json_decref(hdr);
    json_decref(eab);
    EVP_PKEY_free(key);
}

static void test_dns01_value(void)
{
    char *v = acme_jws_dns01_value("token.thumb");

    CHECK(v != NULL && strlen(v) == 43, "the DNS-01 value is base64url of a SHA-256");
    free(v);
}

int main(void)
{
    test_b64url();
    test_rfc7638();
    test_sign(PKI_KEY_EC_P256, "ES256");
    test_sign(PKI_KEY_RSA_2048, "RS256");
    test_eab();
    test_dns01_value();
    {
        EVP_PKEY *k = NULL;

        pki_key_generate(PKI_KEY_EC_P384, &k, NULL);
        CHECK(acme_jws_alg(k) == NULL, "P-384 is not an account key algorithm here");
        EVP_PKEY_free(k);
    }
    return check_done();
}
