/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/pki.c. Every key type is issued under every usage set, by a CA and
 * self-signed, and each certificate is read back with OpenSSL's own APIs: chain verification,
 * basicConstraints, keyUsage and extendedKeyUsage, SKI/AKI, SANs, validity, serial form,
 * signature algorithm, key match. Then PEM in and out (limits, encrypted and malformed input),
 * CSRs (made, read, tampered), CRLs, serial and usage parsing.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/limits.h"
#include "aegis/pki.h"
#include "check.h"

#define NOW 1750000000LL /* a fixed clock: 2025-06-15 */
#define DAY 86400LL

static char *dns[] = {"app.test", "*.app.test", "xn--bcher-kva.test"};
static char *ips[] = {"127.0.0.1", "::1", "10.1.2.3"};
static char *uris[] = {"spiffe://aegis.test/ns/default/sa/app"};
static char *emails[] = {"ops@app.test"};

struct usage_case {
    const char *name;
    unsigned usages;
    bool is_ca;
    unsigned want_ku;  /* X509_get_key_usage bits */
    uint32_t want_xku; /* X509_get_extended_key_usage bits; UINT32_MAX: no EKU extension */
};

static const struct usage_case usage_cases[] = {
    {"server", PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(KEY_ENCIPHERMENT) | PKI_USAGE(SERVER_AUTH),
     false, KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, XKU_SSL_SERVER},
    {"client", PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CLIENT_AUTH), false, KU_DIGITAL_SIGNATURE,
     XKU_SSL_CLIENT},
    {"server+client",
     PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(SERVER_AUTH) | PKI_USAGE(CLIENT_AUTH), false,
     KU_DIGITAL_SIGNATURE, XKU_SSL_SERVER | XKU_SSL_CLIENT},
    {"code signing", PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CODE_SIGNING), false,
     KU_DIGITAL_SIGNATURE, XKU_CODE_SIGN},
    {"email", PKI_USAGE(CONTENT_COMMITMENT) | PKI_USAGE(EMAIL_PROTECTION), false,
     KU_NON_REPUDIATION, XKU_SMIME},
    {"ocsp", PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(OCSP_SIGNING), false, KU_DIGITAL_SIGNATURE,
     XKU_OCSP_SIGN},
    {"key agreement", PKI_USAGE(KEY_AGREEMENT), false, KU_KEY_AGREEMENT, UINT32_MAX},
    {"sub-CA", PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN), true, KU_KEY_CERT_SIGN | KU_CRL_SIGN,
     UINT32_MAX},
    {"CA without usages", PKI_USAGE(DIGITAL_SIGNATURE), true,
     KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN, UINT32_MAX},
};

static EVP_PKEY *ca_key;
static X509 *ca_cert;

static struct pki_cert_req base_req(void)
{
    struct pki_cert_req r;

    memset(&r, 0, sizeof(r));
    r.common_name = "app.test";
    r.dns = (struct pki_strs){dns, 3};
    r.ip = (struct pki_strs){ips, 3};
    r.uri = (struct pki_strs){uris, 1};
    r.email = (struct pki_strs){emails, 1};
    r.path_len = -1;
    r.not_before = NOW - 60;
    r.not_after = NOW + 90 * DAY;
    return r;
}

static void make_ca(void)
{
    struct pki_cert_req r;
    struct aegis_err err = {0};

    memset(&r, 0, sizeof(r));
    r.common_name = "Test Root";
    r.is_ca = true;
    r.path_len = 1;
    r.usages = PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN);
    r.not_before = NOW - 3600;
    r.not_after = NOW + 3650 * DAY;
    CHECK(pki_key_generate(PKI_KEY_EC_P256, &ca_key, &err) == 0, "CA key");
    CHECK(pki_sign(&r, ca_key, NULL, ca_key, &ca_cert, &err) == 0, "CA certificate");
}

/* Verifies leaf against ca_cert as the only trust anchor, at NOW. */
static int verify_at(X509 *leaf, X509 *anchor, STACK_OF(X509) * untrusted, int64_t when)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok;

    X509_STORE_add_cert(store, anchor);
    X509_STORE_CTX_init(ctx, store, leaf, untrusted);
    X509_STORE_CTX_set_time(ctx, 0, (time_t)when);
    ok = X509_verify_cert(ctx);
    if (ok != 1)
        printf("#   verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok == 1;
}

static bool ext_critical(X509 *x, int nid)
{
    int i = X509_get_ext_by_NID(x, nid, -1);

    return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

/* Checks the SANs of x against base_req's lists, in order. */
static void check_sans(X509 *x, const char *label)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t nd = 0, ni = 0, nu = 0, ne = 0;
    bool ok = gens != NULL;
    char what[160];

    for (int i = 0; ok && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *s;
        char ip[INET6_ADDRSTRLEN];
        switch (gn->type) {
        case GEN_DNS:
            s = gn->d.dNSName;
            ok = nd < 3 && (size_t)ASN1_STRING_length(s) == strlen(dns[nd]) &&
                 memcmp(ASN1_STRING_get0_data(s), dns[nd], strlen(dns[nd])) == 0;
            nd++;
            break;
        case GEN_IPADD:
            s = gn->d.iPAddress;
            ok = ni < 3 &&
                 inet_ntop(ASN1_STRING_length(s) == 4 ? AF_INET : AF_INET6,
                           ASN1_STRING_get0_data(s), ip, sizeof(ip)) != NULL &&
                 strcmp(ip, ips[ni]) == 0;
            ni++;
            break;
        case GEN_URI:
            s = gn->d.uniformResourceIdentifier;
            ok = nu < 1 && strcmp((const char *)ASN1_STRING_get0_data(s), uris[0]) == 0;
            nu++;
            break;
        case GEN_EMAIL:
            s = gn->d.rfc822Name;
            ok = ne < 1 && strcmp((const char *)ASN1_STRING_get0_data(s), emails[0]) == 0;
            ne++;
            break;
        default:
            ok = false;
        }
    }
    snprintf(what, sizeof(what), "%s: SANs (3 DNS, 3 IP, 1 URI, 1 email)", label);
    CHECK(ok && nd == 3 && ni == 3 && nu == 1 && ne == 1, what);
    GENERAL_NAMES_free(gens);
    snprintf(what, sizeof(what), "%s: X509_check_host/ip/email match", label);
    CHECK(X509_check_host(x, "app.test", 0, 0, NULL) == 1 &&
              X509_check_host(x, "www.app.test", 0, 0, NULL) == 1 &&
              X509_check_host(x, "other.test", 0, 0, NULL) == 0 &&
              X509_check_ip_asc(x, "::1", 0) == 1 && X509_check_ip_asc(x, "10.1.2.4", 0) == 0 &&
              X509_check_email(x, "ops@app.test", 0, 0) == 1,
          what);
}

static void check_cert(X509 *x, EVP_PKEY *key, X509 *issuer, const struct usage_case *uc,
                       const char *label)
{
    char what[200], serial[PKI_SERIAL_HEX_SIZE], fp[PKI_FINGERPRINT_HEX_SIZE];
    const BASIC_CONSTRAINTS *bc;
    int64_t nb = 0, na = 0;
    uint32_t xku;
    const ASN1_OCTET_STRING *ski, *aki, *iski;
    int crit = 0;
    BASIC_CONSTRAINTS *bcv;
    struct aegis_err err = {0};

    (void)bc;
    snprintf(what, sizeof(what), "%s: version 3", label);
    CHECK_INT(X509_get_version(x), X509_VERSION_3, what);

    snprintf(what, sizeof(what), "%s: chain verifies", label);
    CHECK(verify_at(x, issuer ? issuer : x, NULL, NOW), what);

    bcv = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    snprintf(what, sizeof(what), "%s: basicConstraints critical, CA=%d", label, uc->is_ca);
    CHECK(bcv != NULL && crit == 1 && (bcv->ca != 0) == uc->is_ca, what);
    if (uc->is_ca) {
        snprintf(what, sizeof(what), "%s: pathLen 0", label);
        CHECK(bcv != NULL && bcv->pathlen != NULL && ASN1_INTEGER_get(bcv->pathlen) == 0, what);
    }
    BASIC_CONSTRAINTS_free(bcv);

    snprintf(what, sizeof(what), "%s: keyUsage critical", label);
    CHECK(ext_critical(x, NID_key_usage), what);
    snprintf(what, sizeof(what), "%s: keyUsage bits", label);
    CHECK_INT(X509_get_key_usage(x), uc->want_ku, what);

    xku = X509_get_extended_key_usage(x);
    snprintf(what, sizeof(what), "%s: extendedKeyUsage", label);
    if (uc->want_xku == UINT32_MAX)
        CHECK(X509_get_ext_by_NID(x, NID_ext_key_usage, -1) < 0, what);
    else
        CHECK_INT(xku, uc->want_xku, what);

    ski = X509_get0_subject_key_id(x);
    aki = X509_get0_authority_key_id(x);
    iski = X509_get0_subject_key_id(issuer ? issuer : x);
    snprintf(what, sizeof(what), "%s: SKI present, AKI = issuer's SKI", label);
    CHECK(ski != NULL && aki != NULL && iski != NULL && ASN1_STRING_cmp(aki, iski) == 0, what);

    check_sans(x, label);
    snprintf(what, sizeof(what), "%s: SAN not critical (subject present)", label);
    CHECK(!ext_critical(x, NID_subject_alt_name), what);

    snprintf(what, sizeof(what), "%s: validity as requested", label);
    CHECK(pki_cert_validity(x, &nb, &na) == 0 && nb == NOW - 60 && na == NOW + 90 * DAY, what);

    snprintf(what, sizeof(what), "%s: serial <= 128 bits, top bit clear", label);
    CHECK(pki_serial_hex(x, serial) == 0 &&
              (strlen(serial) < 32 || (strlen(serial) == 32 && serial[0] < '8')) &&
              ASN1_INTEGER_get_int64(&(int64_t){0}, X509_get0_serialNumber(x)) >= 0,
          what);
    snprintf(what, sizeof(what), "%s: fingerprint is 64 hex", label);
    CHECK(pki_fingerprint_sha256(x, fp) == 0 && strlen(fp) == 64, what);

    snprintf(what, sizeof(what), "%s: key matches", label);
    CHECK(pki_key_matches_cert(x, key, &err) == 0, what);
    ERR_clear_error();
}

static void test_issue_matrix(void)
{
    for (int t = 0; t < PKI_KEY_COUNT_; t++) {
        EVP_PKEY *key = NULL;
        enum pki_key_type back;
        struct aegis_err err = {0};
        char what[200];

        snprintf(what, sizeof(what), "generate %s", pki_key_type_names[t]);
        CHECK(pki_key_generate((enum pki_key_type)t, &key, &err) == 0, what);
        snprintf(what, sizeof(what), "%s: key type read back", pki_key_type_names[t]);
        CHECK(pki_key_type_of(key, &back) == 0 && back == (enum pki_key_type)t, what);

        for (size_t u = 0; u < sizeof(usage_cases) / sizeof(usage_cases[0]); u++) {
            const struct usage_case *uc = &usage_cases[u];
            struct pki_cert_req r = base_req();
            X509 *x = NULL;
            char label[120];

            r.usages = uc->usages;
            r.is_ca = uc->is_ca;
            r.path_len = uc->is_ca ? 0 : -1;
            snprintf(label, sizeof(label), "%s/%s", pki_key_type_names[t], uc->name);
            snprintf(what, sizeof(what), "%s: CA signs", label);
            CHECK(pki_sign(&r, key, ca_cert, ca_key, &x, &err) == 0, what);
            if (x != NULL) {
                check_cert(x, key, ca_cert, uc, label);
                snprintf(what, sizeof(what), "%s: signed with ecdsa-with-SHA256", label);
                CHECK_INT(X509_get_signature_nid(x), NID_ecdsa_with_SHA256, what);
            }
            X509_free(x);
        }

        /* Self-signed with the same key: the signature algorithm follows the key. */
        {
            struct pki_cert_req r = base_req();
            X509 *x = NULL;
            static const int want_sig[PKI_KEY_COUNT_] = {
                NID_sha256WithRSAEncryption, NID_sha256WithRSAEncryption,
                NID_sha256WithRSAEncryption, NID_ecdsa_with_SHA256,
                NID_ecdsa_with_SHA256,       NID_ED25519};
            const struct usage_case uc = {"self-signed", 0, false,
                                          t <= PKI_KEY_RSA_4096
                                              ? KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT
                                              : KU_DIGITAL_SIGNATURE,
                                          XKU_SSL_SERVER};
            char label[120];

            snprintf(label, sizeof(label), "%s/self-signed default usages", pki_key_type_names[t]);
            snprintf(what, sizeof(what), "%s: signs", label);
            CHECK(pki_sign(&r, key, NULL, key, &x, &err) == 0, what);
            if (x != NULL) {
                check_cert(x, key, NULL, &uc, label);
                snprintf(what, sizeof(what), "%s: signature algorithm", label);
                CHECK_INT(X509_get_signature_nid(x), want_sig[t], what);
            }
            X509_free(x);
        }

        /* The key through PEM and back. */
        {
            char *pem = NULL;
            size_t len = 0;
            EVP_PKEY *k2 = NULL;
            snprintf(what, sizeof(what), "%s: PKCS#8 PEM round trip", pki_key_type_names[t]);
            CHECK(pki_key_to_pem(key, &pem, &len, &err) == 0 &&
                      strstr(pem, "-----BEGIN PRIVATE KEY-----") == pem &&
                      pki_key_from_pem(pem, len, &k2, &err) == 0 && EVP_PKEY_eq(key, k2) == 1,
                  what);
            pki_secret_free(pem, len);
            EVP_PKEY_free(k2);
        }
        EVP_PKEY_free(key);
    }
}

static void test_key_spec(void)
{
    static const struct {
        enum aegis_key_algorithm alg;
        int64_t size;
        int rc;
        enum pki_key_type type;
    } cases[] = {
        {AEGIS_KEY_ALGORITHM_RSA, 0, 0, PKI_KEY_RSA_2048},
        {AEGIS_KEY_ALGORITHM_RSA, 2048, 0, PKI_KEY_RSA_2048},
        {AEGIS_KEY_ALGORITHM_RSA, 3072, 0, PKI_KEY_RSA_3072},
        {AEGIS_KEY_ALGORITHM_RSA, 4096, 0, PKI_KEY_RSA_4096},
        {AEGIS_KEY_ALGORITHM_RSA, 1024, -AEGIS_E_INVALID, 0},
        {AEGIS_KEY_ALGORITHM_ECDSA, 0, 0, PKI_KEY_EC_P256},
        {AEGIS_KEY_ALGORITHM_ECDSA, 256, 0, PKI_KEY_EC_P256},
        {AEGIS_KEY_ALGORITHM_ECDSA, 384, 0, PKI_KEY_EC_P384},
        {AEGIS_KEY_ALGORITHM_ECDSA, 521, -AEGIS_E_INVALID, 0},
        {AEGIS_KEY_ALGORITHM_ED25519, 0, 0, PKI_KEY_ED25519},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum pki_key_type t = PKI_KEY_COUNT_;
        struct aegis_err err = {0};
        int rc = pki_key_type_from_spec(cases[i].alg, cases[i].size, &t, &err);
        char what[120];

        snprintf(what, sizeof(what), "key spec %s %lld", api_key_algorithm_names[cases[i].alg],
                 (long long)cases[i].size);
        CHECK(rc == cases[i].rc && (rc < 0 || t == cases[i].type), what);
    }
}

static void test_pem_input(void)
{
    struct aegis_err err = {0};
    EVP_PKEY *k = NULL, *rsa1024 = NULL;
    STACK_OF(X509) *chain = NULL;
    char *cert_pem = NULL, *key_pem = NULL, *both = NULL, *big = NULL;
    size_t cert_len = 0, key_len = 0;
    enum pki_key_type t;
    BIO *bio;
    char *enc = NULL;
    long enc_len;

    pki_cert_to_pem(ca_cert, &cert_pem, &cert_len, &err);
    pki_key_to_pem(ca_key, &key_pem, &key_len, &err);

    /* A key and a certificate in one file: each reader takes its own block. */
    both = aegis_asprintf("junk before\n%s%s", key_pem, cert_pem);
    CHECK(pki_chain_from_pem(both, strlen(both), &chain, &err) == 0 && sk_X509_num(chain) == 1 &&
              X509_cmp(sk_X509_value(chain, 0), ca_cert) == 0,
          "chain from a file holding a key then a certificate");
    pki_chain_free(chain);
    chain = NULL;
    CHECK(pki_key_from_pem(both, strlen(both), &k, &err) == 0 && EVP_PKEY_eq(k, ca_key) == 1,
          "key from the same file");
    EVP_PKEY_free(k);
    k = NULL;

    CHECK(pki_chain_from_pem(key_pem, key_len, &chain, &err) == -AEGIS_E_NOTFOUND,
          "no certificate: NOTFOUND");
    CHECK(pki_key_from_pem(cert_pem, cert_len, &k, &err) == -AEGIS_E_NOTFOUND, "no key: NOTFOUND");
    CHECK(strstr(err.msg, "BEGIN") != NULL && strstr(err.msg, "MII") == NULL,
          "message names the block, carries no data");

    /* Eleven certificates: over AEGIS_LIMIT_CHAIN_CERTS. */
    big = aegis_strdup("");
    for (int i = 0; i <= AEGIS_LIMIT_CHAIN_CERTS; i++) {
        char *next = aegis_asprintf("%s%s", big, cert_pem);
        free(big);
        big = next;
    }
    CHECK(pki_chain_from_pem(big, strlen(big), &chain, &err) == -AEGIS_E_LIMIT,
          "more certificates than the limit");
    free(big);
    big = aegis_calloc(1, AEGIS_LIMIT_PEM_BYTES + 2);
    memset(big, 'x', AEGIS_LIMIT_PEM_BYTES + 1);
    CHECK(pki_chain_from_pem(big, AEGIS_LIMIT_PEM_BYTES + 1, &chain, &err) == -AEGIS_E_LIMIT,
          "chain PEM over the byte limit");
    CHECK(pki_key_from_pem(big, AEGIS_LIMIT_PEM_BYTES + 1, &k, &err) == -AEGIS_E_LIMIT,
          "key PEM over the byte limit");
    free(big);

    /* A corrupted certificate body is an error, not skipped. */
    {
        char *bad = aegis_strdup(cert_pem);
        bad[40] = bad[40] == 'A' ? 'B' : 'A';
        bad[41] = '*';
        CHECK(pki_chain_from_pem(bad, strlen(bad), &chain, &err) < 0 && chain == NULL,
              "corrupted certificate PEM rejected");
        free(bad);
    }

    /* An encrypted key is refused without prompting. */
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS8PrivateKey(bio, ca_key, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"pw");
    enc_len = BIO_get_mem_data(bio, &enc);
    CHECK(pki_key_from_pem(enc, (size_t)enc_len, &k, &err) == -AEGIS_E_UNSUPPORTED &&
              strstr(err.msg, "encrypted") != NULL,
          "encrypted key refused");
    BIO_free(bio);

    /* Traditional (non-PKCS#8) EC key form is accepted. */
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey_traditional(bio, ca_key, NULL, NULL, 0, NULL, NULL);
    enc_len = BIO_get_mem_data(bio, &enc);
    CHECK(strstr(enc, "BEGIN EC PRIVATE KEY") != NULL &&
              pki_key_from_pem(enc, (size_t)enc_len, &k, &err) == 0 && EVP_PKEY_eq(k, ca_key) == 1,
          "traditional EC key accepted");
    EVP_PKEY_free(k);
    k = NULL;
    BIO_free(bio);

    /* Weak keys are not a supported type. */
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    CHECK(pki_key_type_of(rsa1024, &t) == -AEGIS_E_UNSUPPORTED, "RSA 1024 is not a key type");
    CHECK(pki_key_matches_cert(ca_cert, rsa1024, &err) == -AEGIS_E_INVALID &&
              strstr(err.msg, "does not belong") != NULL,
          "mismatched key reported");
    EVP_PKEY_free(rsa1024);

    /* Chain to PEM and back keeps order. */
    {
        STACK_OF(X509) *two = sk_X509_new_null();
        STACK_OF(X509) *back = NULL;
        char *pem = NULL;
        size_t len = 0;
        X509 *leaf = NULL;
        EVP_PKEY *lk = NULL;
        struct pki_cert_req r = base_req();

        pki_key_generate(PKI_KEY_EC_P256, &lk, &err);
        pki_sign(&r, lk, ca_cert, ca_key, &leaf, &err);
        sk_X509_push(two, leaf);
        X509_up_ref(ca_cert);
        sk_X509_push(two, ca_cert);
        CHECK(pki_chain_to_pem(two, &pem, &len, &err) == 0 &&
                  pki_chain_from_pem(pem, len, &back, &err) == 0 && sk_X509_num(back) == 2 &&
                  X509_cmp(sk_X509_value(back, 0), leaf) == 0 &&
                  X509_cmp(sk_X509_value(back, 1), ca_cert) == 0,
              "chain PEM round trip, order kept");
        free(pem);
        pki_chain_free(back);
        pki_chain_free(two);
        EVP_PKEY_free(lk);
    }

    free(both);
    free(cert_pem);
    pki_secret_free(key_pem, key_len);
}

static void test_names(void)
{
    struct aegis_err err = {0};
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    struct pki_cert_req r = base_req();
    char *long_names[AEGIS_LIMIT_SANS + 1];
    char *org[] = {"Example Org"}, *ou[] = {"Ops", "Web"}, *c[] = {"DE"}, *bad_c[] = {"DEU"};
    struct aegis_x509_subject subj;
    char buf[256];

    pki_key_generate(PKI_KEY_EC_P256, &k, &err);

    /* Self-signed without any subject: the first SAN names it, and the SAN is critical. */
    r.common_name = NULL;
    CHECK(pki_sign(&r, k, NULL, k, &x, &err) == 0, "self-signed without subject");
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
    CHECK_STR(buf, "app.test", "CN taken from the first SAN");
    X509_free(x);
    x = NULL;

    /* CA-signed without subject: empty subject, critical SAN (RFC 5280 4.2.1.6). */
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == 0, "CA-signed without subject");
    CHECK(X509_NAME_entry_count(X509_get_subject_name(x)) == 0 &&
              ext_critical(x, NID_subject_alt_name),
          "empty subject, critical SAN");
    CHECK(verify_at(x, ca_cert, NULL, NOW), "empty-subject leaf verifies");
    X509_free(x);
    x = NULL;

    /* Subject fields. */
    memset(&subj, 0, sizeof(subj));
    subj.organizations = (struct aegis_strv){org, NULL, 1};
    subj.organizational_units = (struct aegis_strv){ou, NULL, 2};
    subj.countries = (struct aegis_strv){c, NULL, 1};
    r = base_req();
    r.subject = &subj;
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == 0, "with subject fields");
    X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
    CHECK_STR(buf, "/C=DE/O=Example Org/OU=Ops/OU=Web/CN=app.test", "subject order");
    X509_free(x);
    x = NULL;
    subj.countries = (struct aegis_strv){bad_c, NULL, 1};
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == -AEGIS_E_INVALID && x == NULL,
          "three-letter country rejected");

    /* Limits and bad values. */
    r = base_req();
    for (int i = 0; i <= AEGIS_LIMIT_SANS; i++)
        long_names[i] = "n.test";
    r.dns = (struct pki_strs){long_names, AEGIS_LIMIT_SANS + 1};
    r.ip = r.uri = r.email = (struct pki_strs){NULL, 0};
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == -AEGIS_E_LIMIT, "too many SANs");
    r = base_req();
    r.ip = (struct pki_strs){(char *[]){"300.1.1.1"}, 1};
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == -AEGIS_E_INVALID &&
              strstr(err.msg, "300.1.1.1") != NULL,
          "bad IP SAN named");
    r = base_req();
    r.dns = (struct pki_strs){(char *[]){"b\xc3\xbc"
                                         "cher.test"},
                              1};
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == -AEGIS_E_INVALID, "non-ASCII DNS name");
    r = base_req();
    r.common_name = "a-common-name-that-is-much-longer-than-sixty-four-characters.example.test";
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == -AEGIS_E_INVALID, "CN over 64 chars");
    r = base_req();
    r.not_after = r.not_before;
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == -AEGIS_E_INVALID, "empty validity");

    /* A CRL distribution point. */
    r = base_req();
    r.crl_url = "http://ca.test/crl.der";
    CHECK(pki_sign(&r, k, ca_cert, ca_key, &x, &err) == 0, "with CRL distribution point");
    {
        CRL_DIST_POINTS *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
        const GENERAL_NAME *gn =
            dps ? sk_GENERAL_NAME_value(sk_DIST_POINT_value(dps, 0)->distpoint->name.fullname, 0)
                : NULL;
        CHECK(gn != NULL && gn->type == GEN_URI &&
                  strcmp((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                         "http://ca.test/crl.der") == 0,
              "CRL distribution point URI");
        CRL_DIST_POINTS_free(dps);
    }
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_csr(void)
{
    struct aegis_err err = {0};
    EVP_PKEY *k = NULL, *other = NULL;
    X509_REQ *csr = NULL;
    char *pem = NULL;
    size_t len = 0;
    struct pki_csr_info info;
    struct pki_cert_req r = base_req();

    for (int t = PKI_KEY_EC_P256; t < PKI_KEY_COUNT_; t++) {
        char what[120];
        memset(&info, 0, sizeof(info));
        pki_key_generate((enum pki_key_type)t, &k, &err);
        snprintf(what, sizeof(what), "CSR made and read back (%s)", pki_key_type_names[t]);
        CHECK(pki_csr_make(&r, k, &csr, &err) == 0 && pki_csr_to_pem(csr, &pem, &len, &err) == 0 &&
                  pki_csr_read(pem, len, &info, &err) == 0,
              what);
        CHECK(info.common_name != NULL && strcmp(info.common_name, "app.test") == 0 &&
                  info.dns.n == 3 && strcmp(info.dns.v[1], "*.app.test") == 0 && info.ip.n == 3 &&
                  strcmp(info.ip.v[1], "::1") == 0 && info.uri.n == 1 && info.email.n == 1 &&
                  EVP_PKEY_eq(info.public_key, k) == 1,
              "CSR: CN, SANs and key extracted");
        pki_csr_info_dispose(&info);
        free(pem);
        pem = NULL;
        X509_REQ_free(csr);
        csr = NULL;
        EVP_PKEY_free(k);
        k = NULL;
    }

    /* A CSR whose public key was swapped after signing does not verify. */
    pki_key_generate(PKI_KEY_EC_P256, &k, &err);
    pki_key_generate(PKI_KEY_EC_P256, &other, &err);
    pki_csr_make(&r, k, &csr, &err);
    X509_REQ_set_pubkey(csr, other);
    pki_csr_to_pem(csr, &pem, &len, &err);
    CHECK(pki_csr_read(pem, len, &info, &err) == -AEGIS_E_CRYPTO &&
              strstr(err.msg, "signature") != NULL,
          "tampered CSR rejected");
    pki_csr_info_dispose(&info);
    free(pem);
    X509_REQ_free(csr);
    CHECK(pki_csr_read("not a csr", 9, &info, &err) == -AEGIS_E_INVALID, "garbage CSR rejected");
    pki_csr_info_dispose(&info);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void test_crl(void)
{
    struct aegis_err err = {0};
    struct pki_revoked rev[2];
    X509_CRL *crl = NULL;
    X509_REVOKED *entry = NULL;
    ASN1_INTEGER *serial;
    BIGNUM *bn = NULL;
    unsigned char *der = NULL;
    size_t der_len = 0;
    char *pem = NULL;
    int crit = 0;

    memset(rev, 0, sizeof(rev));
    snprintf(rev[0].serial_hex, sizeof(rev[0].serial_hex), "%s", "0a1b2c");
    rev[0].revoked_at = NOW - DAY;
    rev[0].reason = PKI_CRL_REASON_KEY_COMPROMISE;
    snprintf(rev[1].serial_hex, sizeof(rev[1].serial_hex), "%s", "7f");
    rev[1].revoked_at = NOW;
    rev[1].reason = PKI_CRL_REASON_UNSPECIFIED;
    CHECK(pki_crl_make(ca_cert, ca_key, rev, 2, NOW, NOW + 7 * DAY, 42, &crl, &err) == 0,
          "CRL made");
    CHECK(X509_CRL_verify(crl, X509_get0_pubkey(ca_cert)) == 1, "CRL signature verifies");
    CHECK(X509_CRL_get_version(crl) == X509_CRL_VERSION_2, "CRL v2");
    BN_hex2bn(&bn, "0A1B2C");
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    CHECK(X509_CRL_get0_by_serial(crl, &entry, serial) == 1, "revoked serial listed");
    {
        ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, &crit, NULL);
        CHECK(reason != NULL && ASN1_ENUMERATED_get(reason) == 1, "reason keyCompromise");
        ASN1_ENUMERATED_free(reason);
    }
    {
        ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
        CHECK(num != NULL && ASN1_INTEGER_get(num) == 42, "cRLNumber");
        ASN1_INTEGER_free(num);
    }
    CHECK(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), (time_t)(NOW + 7 * DAY)) == 0,
          "nextUpdate");
    CHECK(pki_crl_to_pem(crl, &pem, NULL, &err) == 0 && strstr(pem, "BEGIN X509 CRL") != NULL,
          "CRL PEM");
    CHECK(pki_crl_to_der(crl, &der, &der_len, &err) == 0 && der_len > 0 && der[0] == 0x30,
          "CRL DER");
    free(pem);
    free(der);
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    X509_CRL_free(crl);
}

static void test_parsers(void)
{
    struct aegis_err err = {0};
    char out[PKI_SERIAL_HEX_SIZE], buf[256];
    unsigned mask = 0;
    char *good[] = {"server auth", "client auth", "digital signature"};
    char *bad[] = {"server auth", "serverAuth"};
    enum pki_crl_reason reason;

    CHECK(pki_serial_normalize("0A:1b:2C", out, &err) == 0, "serial with colons");
    CHECK_STR(out, "0A1B2C", "serial normalized");
    CHECK(pki_serial_normalize("0x00ff", out, &err) == 0, "serial with 0x and a zero byte");
    CHECK_STR(out, "FF", "serial normalized without the zero byte");
    CHECK(pki_serial_normalize("xyz", out, &err) == -AEGIS_E_INVALID, "bad serial rejected");
    CHECK(pki_serial_normalize("", out, &err) == -AEGIS_E_INVALID, "empty serial rejected");

    CHECK(pki_usages_parse(good, 3, &mask, &err) == 0 &&
              mask ==
                  (PKI_USAGE(SERVER_AUTH) | PKI_USAGE(CLIENT_AUTH) | PKI_USAGE(DIGITAL_SIGNATURE)),
          "usages parsed");
    pki_usages_format(mask, buf, sizeof(buf));
    CHECK_STR(buf, "digital signature, server auth, client auth", "usages formatted");
    CHECK(pki_usages_parse(bad, 2, &mask, &err) == -AEGIS_E_INVALID &&
              strstr(err.msg, "serverAuth") != NULL && strstr(err.msg, "ocsp signing") != NULL,
          "unknown usage named with the valid list");
    for (size_t u = 0; u < PKI_USAGE_COUNT_; u++) {
        char *one[] = {(char *)pki_usage_names[u]};
        CHECK(pki_usages_parse(one, 1, &mask, &err) == 0 && mask == 1u << u, pki_usage_names[u]);
    }
    CHECK(pki_crl_reason_parse("keycompromise", &reason, &err) == 0 &&
              reason == PKI_CRL_REASON_KEY_COMPROMISE,
          "reason parsed, any case");
    CHECK(pki_crl_reason_parse("stolen", &reason, &err) == -AEGIS_E_INVALID &&
              strstr(err.msg, "superseded") != NULL,
          "unknown reason lists valid ones");
}

int main(void)
{
    make_ca();
    test_key_spec();
    test_issue_matrix();
    test_pem_input();
    test_names();
    test_csr();
    test_crl();
    test_parsers();
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    return check_done();
}
