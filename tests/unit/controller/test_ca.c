/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/issuer/ca.c (and the issuer registry, the shared
 * helpers, the fake issuer and controller/secret.c): the local CA is made once
 * and reused (also by processes racing to make it), its root and intermediate
 * have the promised shape, certificates of every key type verify through the
 * chain it returns, sub-CAs can issue, the intermediate is replaced near its
 * end, given CAs from PEM and from secret files work and fail clearly, and the
 * CRL lists revocations and stays fresh.
 * The store lives in a temporary directory with an in-memory master key; time
 * is injected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "aegis/alloc.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "check.h"
#include "issuer/ca.h"
#include "issuer/issuer.h"
#include "secret.h"
#include "testutil.h"

#define NOW 1750000000LL
#define DAY 86400LL
#define YEAR (365 * DAY)

static char tmpdir[] = "/tmp/aegis-test-ca-XXXXXX";
static struct store *st;

/* Opens the store in dir with the test master key. */
static int store_at(const char *dir, struct store **out, struct aegis_err *err)
{
    return testutil_store_open(dir, 0x42, out, err);
}

static void open_store(void)
{
    struct aegis_err err = {0};
    char *dir = aegis_asprintf("%s/state", tmpdir);

    CHECK(store_at(dir, &st, &err) == 0, "store opened");
    if (st == NULL)
        printf("#   %s\n", err.msg);
    free(dir);
}

static int verify_chain(X509 *anchor, STACK_OF(X509) * chain, int64_t when, int purpose)
{
    X509_STORE *xs = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    int ok;

    for (int i = 1; i < sk_X509_num(chain); i++)
        sk_X509_push(untrusted, sk_X509_value(chain, i));
    X509_STORE_add_cert(xs, anchor);
    X509_STORE_CTX_init(ctx, xs, sk_X509_value(chain, 0), untrusted);
    X509_STORE_CTX_set_time(ctx, 0, (time_t)when);
    if (purpose)
        X509_STORE_CTX_set_purpose(ctx, purpose);
    ok = X509_verify_cert(ctx);
    if (ok != 1)
        printf("#   verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(xs);
    sk_X509_free(untrusted);
    ERR_clear_error();
    return ok == 1;
}

static long path_len(X509 *x)
{
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    long n = -2;

    if (bc != NULL && bc->ca)
        n = bc->pathlen ? ASN1_INTEGER_get(bc->pathlen) : -1;
    BASIC_CONSTRAINTS_free(bc);
    return n;
}

static void fp(X509 *x, char out[PKI_FINGERPRINT_HEX_SIZE])
{
    pki_fingerprint_sha256(x, out);
}

static void spec_init(struct aegis_certificate_spec *c, char **dns, size_t n)
{
    memset(c, 0, sizeof(*c));
    c->dns_names.v = dns;
    c->dns_names.n = n;
    c->duration_ms = 90 * DAY * 1000;
    c->private_key.algorithm = AEGIS_KEY_ALGORITHM_ECDSA;
}

static void req_init(struct issuer_request *r, const struct aegis_certificate_spec *c,
                     const struct aegis_issuer_spec *is, int64_t now)
{
    static char secrets[512];

    snprintf(secrets, sizeof(secrets), "%s/secrets", tmpdir);
    memset(r, 0, sizeof(*r));
    r->cert_namespace = "default";
    r->cert_name = "app";
    r->cert = c;
    r->issuer_name = "local";
    r->issuer = is;
    r->now = now;
    r->store = st;
    r->secrets_dir = secrets;
}

static void test_local_ca_shape(void)
{
    struct aegis_err err = {0};
    struct ca *a = NULL, *b = NULL;
    STACK_OF(X509) *chain = NULL;
    struct pki_cert_req req;
    EVP_PKEY *k = NULL;
    char fa[PKI_FINGERPRINT_HEX_SIZE], fb[PKI_FINGERPRINT_HEX_SIZE];
    char fia[PKI_FINGERPRINT_HEX_SIZE], fib[PKI_FINGERPRINT_HEX_SIZE];
    int64_t nb, na;
    enum pki_key_type t;
    X509 *root, *inter;

    CHECK(ca_local_open(st, NOW, &a, &err) == 0, "local CA made on first use");
    if (a == NULL) {
        printf("#   %s\n", err.msg);
        return;
    }
    CHECK(ca_local_open(st, NOW + DAY, &b, &err) == 0, "local CA opened again");
    root = ca_root(a);
    fp(root, fa);
    fp(ca_root(b), fb);
    CHECK_STR(fb, fa, "the same root the second time");

    /* Sign something to get the intermediate. */
    memset(&req, 0, sizeof(req));
    req.dns = (struct pki_strs){(char *[]){"x.test"}, 1};
    req.path_len = -1;
    req.not_before = NOW - 60;
    req.not_after = NOW + DAY;
    pki_key_generate(PKI_KEY_EC_P256, &k, &err);
    CHECK(ca_sign(a, &req, k, &chain, &err) == 0 && sk_X509_num(chain) == 2,
          "leaf signed: chain = leaf + intermediate");
    inter = sk_X509_value(chain, 1);
    fp(inter, fia);
    pki_chain_free(chain);
    chain = NULL;
    CHECK(ca_sign(b, &req, k, &chain, &err) == 0, "leaf signed by the reopened CA");
    fp(sk_X509_value(chain, 1), fib);
    CHECK_STR(fib, fia, "the same intermediate the second time");
    pki_chain_free(chain);
    chain = NULL;

    CHECK(X509_get_extension_flags(root) & EXFLAG_SS, "root is self-signed");
    CHECK_INT(path_len(root), 1, "root pathLen 1");
    CHECK(pki_cert_validity(root, &nb, &na) == 0 && nb == NOW - 60 && na - nb >= 10 * YEAR,
          "root valid 10 years");
    CHECK(pki_key_type_of(X509_get0_pubkey(root), &t) == 0 && t == PKI_KEY_EC_P256,
          "root key ECDSA P-256");
    CHECK(ca_sign(a, &req, k, &chain, &err) == 0, "another leaf");
    inter = sk_X509_value(chain, 1);
    CHECK_INT(path_len(inter), 0, "intermediate pathLen 0");
    CHECK(pki_cert_validity(inter, &nb, &na) == 0 && na - nb >= 5 * YEAR && na - nb < 6 * YEAR,
          "intermediate valid 5 years");
    CHECK(pki_key_type_of(X509_get0_pubkey(inter), &t) == 0 && t == PKI_KEY_EC_P256,
          "intermediate key ECDSA P-256");
    CHECK(X509_get_key_usage(inter) == (KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN),
          "intermediate keyUsage");
    CHECK(verify_chain(root, chain, NOW, X509_PURPOSE_SSL_SERVER), "leaf verifies to the root");
    pki_chain_free(chain);
    chain = NULL;

    /* The keys are sealed in the store: no PEM private key on disk. */
    {
        char *cmd = aegis_asprintf("grep -rl 'PRIVATE KEY' '%s/state' >/dev/null 2>&1", tmpdir);
        CHECK(system(cmd) != 0, "no plain-text private key under the state directory");
        free(cmd);
    }

    /* A leaf never outlives the intermediate. */
    req.not_after = NOW + 20 * YEAR;
    CHECK(ca_sign(a, &req, k, &chain, &err) == 0, "very long leaf signed");
    pki_cert_validity(sk_X509_value(chain, 0), NULL, &na);
    pki_cert_validity(sk_X509_value(chain, 1), NULL, &nb);
    CHECK(na == nb, "leaf notAfter capped at the intermediate's");
    pki_chain_free(chain);
    chain = NULL;

    /* Four and a half years on, the intermediate is replaced (same root). */
    ca_free(b);
    b = NULL;
    CHECK(ca_local_open(st, NOW + 4 * YEAR + 180 * DAY, &b, &err) == 0, "CA opened years later");
    fp(ca_root(b), fb);
    CHECK_STR(fb, fa, "root kept");
    req.not_before = NOW + 4 * YEAR + 180 * DAY - 60;
    req.not_after = req.not_before + DAY;
    CHECK(ca_sign(b, &req, k, &chain, &err) == 0, "leaf signed years later");
    fp(sk_X509_value(chain, 1), fib);
    CHECK(strcmp(fib, fia) != 0, "a new intermediate");
    CHECK(verify_chain(ca_root(b), chain, NOW + 4 * YEAR + 180 * DAY, 0),
          "leaf under the new intermediate verifies");
    pki_chain_free(chain);

    EVP_PKEY_free(k);
    ca_free(a);
    ca_free(b);
}

static void test_issue_key_types(void)
{
    static const struct {
        enum aegis_key_algorithm alg;
        enum pki_key_type want;
        int64_t size;
    } keys[] = {
        {AEGIS_KEY_ALGORITHM_RSA, PKI_KEY_RSA_2048, 2048},
        {AEGIS_KEY_ALGORITHM_RSA, PKI_KEY_RSA_3072, 3072},
        {AEGIS_KEY_ALGORITHM_RSA, PKI_KEY_RSA_4096, 4096},
        {AEGIS_KEY_ALGORITHM_ECDSA, PKI_KEY_EC_P256, 256},
        {AEGIS_KEY_ALGORITHM_ECDSA, PKI_KEY_EC_P384, 384},
        {AEGIS_KEY_ALGORITHM_ED25519, PKI_KEY_ED25519, 0},
    };
    char *dns[] = {"app.test", "*.app.test"};
    char *ips[] = {"127.0.0.1"};
    char *client[] = {"digital signature", "client auth"};
    struct aegis_issuer_spec is;

    memset(&is, 0, sizeof(is));
    is.present = 1u << API_F_ISSUER_SPEC_CA;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        for (int as_client = 0; as_client < 2; as_client++) {
            struct aegis_certificate_spec c;
            struct issuer_request r;
            struct issuer_result res;
            struct aegis_err err = {0};
            enum pki_key_type t;
            int64_t nb = 0, na = 0;
            char what[160];
            int rc;
            X509 *leaf;

            spec_init(&c, dns, 2);
            c.ip_addresses.v = ips;
            c.ip_addresses.n = 1;
            c.private_key.algorithm = keys[i].alg;
            c.private_key.size = keys[i].size;
            if (as_client) {
                c.usages.v = client;
                c.usages.n = 2;
            }
            req_init(&r, &c, &is, NOW);
            issuer_result_init(&res);
            rc = issuer_issue(&r, &res, &err);
            snprintf(what, sizeof(what), "%s %s: issued", pki_key_type_names[keys[i].want],
                     as_client ? "client" : "server");
            CHECK(rc == 0 && res.status == ISSUER_DONE && res.reason == ISSUER_REASON_ISSUED, what);
            if (rc < 0) {
                printf("#   %s\n", err.msg);
                issuer_result_dispose(&res);
                continue;
            }
            leaf = sk_X509_value(res.chain, 0);
            snprintf(what, sizeof(what), "%s: chain is leaf + intermediate, verifies",
                     pki_key_type_names[keys[i].want]);
            CHECK(sk_X509_num(res.chain) == 2 &&
                      verify_chain(res.ca, res.chain, NOW,
                                   as_client ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER),
                  what);
            snprintf(what, sizeof(what), "%s: key type and match",
                     pki_key_type_names[keys[i].want]);
            CHECK(pki_key_type_of(res.key, &t) == 0 && t == keys[i].want &&
                      pki_key_matches_cert(leaf, res.key, &err) == 0,
                  what);
            snprintf(what, sizeof(what), "%s: validity now-1m .. now+90d",
                     pki_key_type_names[keys[i].want]);
            CHECK(pki_cert_validity(leaf, &nb, &na) == 0 && nb == NOW - 60 && na == NOW + 90 * DAY,
                  what);
            snprintf(what, sizeof(what), "%s: EKU", pki_key_type_names[keys[i].want]);
            CHECK_INT(X509_get_extended_key_usage(leaf),
                      as_client ? XKU_SSL_CLIENT : XKU_SSL_SERVER, what);
            snprintf(what, sizeof(what), "%s: names", pki_key_type_names[keys[i].want]);
            CHECK(X509_check_host(leaf, "www.app.test", 0, 0, NULL) == 1 &&
                      X509_check_ip_asc(leaf, "127.0.0.1", 0) == 1,
                  what);
            issuer_result_dispose(&res);
        }
    }
}

static void test_sub_ca(void)
{
    char *dns[] = {"sub.test"};
    struct aegis_certificate_spec c;
    struct aegis_issuer_spec is;
    struct issuer_request r;
    struct issuer_result res;
    struct aegis_err err = {0};
    X509 *leaf = NULL;
    EVP_PKEY *lk = NULL;
    struct pki_cert_req lr;
    STACK_OF(X509) *full = NULL;

    memset(&is, 0, sizeof(is));
    is.present = 1u << API_F_ISSUER_SPEC_CA;
    spec_init(&c, dns, 1);
    c.common_name = "Sub CA";
    c.is_ca = true;
    req_init(&r, &c, &is, NOW);
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) == 0 && res.status == ISSUER_DONE, "sub-CA issued");
    if (res.chain == NULL)
        return;
    CHECK(sk_X509_num(res.chain) == 1, "sub-CA chain is the sub-CA alone (root-signed)");
    CHECK_INT(path_len(sk_X509_value(res.chain, 0)), 0, "sub-CA pathLen 0");
    CHECK(X509_get_key_usage(sk_X509_value(res.chain, 0)) ==
              (KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN),
          "sub-CA keyUsage");
    /* The sub-CA can issue a leaf that verifies up to the local root. */
    memset(&lr, 0, sizeof(lr));
    lr.dns = (struct pki_strs){(char *[]){"leaf.sub.test"}, 1};
    lr.path_len = -1;
    lr.not_before = NOW - 60;
    lr.not_after = NOW + DAY;
    pki_key_generate(PKI_KEY_EC_P256, &lk, &err);
    CHECK(pki_sign(&lr, lk, sk_X509_value(res.chain, 0), res.key, &leaf, &err) == 0,
          "sub-CA signs a leaf");
    full = sk_X509_new_null();
    sk_X509_push(full, leaf);
    sk_X509_push(full, sk_X509_value(res.chain, 0));
    CHECK(verify_chain(res.ca, full, NOW, X509_PURPOSE_SSL_SERVER),
          "leaf -> sub-CA -> local root verifies");
    sk_X509_free(full);
    X509_free(leaf);
    EVP_PKEY_free(lk);
    issuer_result_dispose(&res);
}

/* Makes a standalone CA (root, optionally with an intermediate) as PEM texts.
 */
static void make_given_ca(bool with_intermediate, bool is_ca, char **chain_pem, char **key_pem,
                          X509 **root_out)
{
    struct aegis_err err = {0};
    EVP_PKEY *rk = NULL, *ik = NULL;
    X509 *root = NULL, *inter = NULL;
    struct pki_cert_req r;
    char *a = NULL, *b = NULL;

    memset(&r, 0, sizeof(r));
    r.common_name = "Given Root";
    r.is_ca = is_ca;
    r.path_len = -1;
    r.usages = is_ca ? PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN) : 0;
    r.not_before = NOW - DAY;
    r.not_after = NOW + 3 * YEAR;
    pki_key_generate(PKI_KEY_EC_P384, &rk, &err);
    pki_sign(&r, rk, NULL, rk, &root, &err);
    if (with_intermediate) {
        r.common_name = "Given Intermediate";
        r.path_len = 0;
        pki_key_generate(PKI_KEY_RSA_2048, &ik, &err);
        pki_sign(&r, ik, root, rk, &inter, &err);
        pki_cert_to_pem(inter, &a, NULL, &err);
        pki_cert_to_pem(root, &b, NULL, &err);
        *chain_pem = aegis_asprintf("%s%s", a, b);
        pki_key_to_pem(ik, key_pem, NULL, &err);
    } else {
        pki_cert_to_pem(root, chain_pem, NULL, &err);
        pki_key_to_pem(rk, key_pem, NULL, &err);
    }
    *root_out = root;
    free(a);
    free(b);
    X509_free(inter);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
}

static int write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (f == NULL)
        return -1;
    ok = fputs(data, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void test_given_ca(void)
{
    char *dns[] = {"given.test"};
    struct aegis_certificate_spec c;
    struct aegis_issuer_spec is;
    struct issuer_request r;
    struct issuer_result res;
    struct aegis_err err = {0};
    char *chain_pem = NULL, *key_pem = NULL, *other_key = NULL, *dir = NULL, *path = NULL;
    X509 *root = NULL, *root2 = NULL;
    char *chain2 = NULL;
    char fa[PKI_FINGERPRINT_HEX_SIZE], fb[PKI_FINGERPRINT_HEX_SIZE];

    spec_init(&c, dns, 1);

    /* Inline PEM, root + intermediate: the chain is leaf + given intermediate. */
    make_given_ca(true, true, &chain_pem, &key_pem, &root);
    memset(&is, 0, sizeof(is));
    is.present = 1u << API_F_ISSUER_SPEC_CA;
    is.ca.present = (1u << API_F_CA_ISSUER_CERTIFICATE) | (1u << API_F_CA_ISSUER_PRIVATE_KEY);
    is.ca.certificate.pem = chain_pem;
    is.ca.private_key.pem = key_pem;
    req_init(&r, &c, &is, NOW);
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) == 0 && res.status == ISSUER_DONE,
          "given CA (inline, with intermediate) issues");
    if (res.chain != NULL) {
        CHECK(sk_X509_num(res.chain) == 2, "chain = leaf + given intermediate (root left out)");
        fp(res.ca, fa);
        fp(root, fb);
        CHECK_STR(fa, fb, "ca.crt is the given root");
        CHECK(verify_chain(root, res.chain, NOW, X509_PURPOSE_SSL_SERVER),
              "leaf verifies to the given root");
    }
    issuer_result_dispose(&res);
    CHECK(issuer_ca_ops.check(&is, "default", r.secrets_dir, &err) == 0, "check accepts it");

    /* Reversed chain: rejected with the order named. */
    {
        char *first = strstr(chain_pem + 1, "-----BEGIN CERTIFICATE-----");
        char *reversed = aegis_asprintf("%s%.*s", first, (int)(first - chain_pem), chain_pem);
        is.ca.certificate.pem = reversed;
        issuer_result_init(&res);
        CHECK(issuer_issue(&r, &res, &err) < 0 && res.reason == ISSUER_REASON_INVALID_ISSUER,
              "reversed CA chain rejected");
        CHECK(strstr(err.msg, "key does not belong") != NULL ||
                  strstr(err.msg, "out of order") != NULL,
              "message says why");
        issuer_result_dispose(&res);
        is.ca.certificate.pem = chain_pem;
        free(reversed);
    }

    /* A key that is not the CA's. */
    {
        EVP_PKEY *k = NULL;
        pki_key_generate(PKI_KEY_EC_P256, &k, &err);
        pki_key_to_pem(k, &other_key, NULL, &err);
        EVP_PKEY_free(k);
    }
    is.ca.private_key.pem = other_key;
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) < 0 && res.reason == ISSUER_REASON_INVALID_ISSUER &&
              strstr(err.msg, "does not belong") != NULL,
          "mismatched CA key rejected");
    CHECK(strstr(err.msg, "PRIVATE") == NULL, "no key material in the message");
    issuer_result_dispose(&res);
    is.ca.private_key.pem = key_pem;

    /* A certificate that is not a CA. */
    pki_secret_free_str(other_key);
    other_key = NULL;
    make_given_ca(false, false, &chain2, &other_key, &root2);
    is.ca.certificate.pem = chain2;
    is.ca.private_key.pem = other_key;
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) < 0 && strstr(err.msg, "not a CA") != NULL,
          "non-CA certificate rejected");
    issuer_result_dispose(&res);
    X509_free(root2);
    free(chain2);
    chain2 = NULL;

    /* secretRef: <secrets>/default/myca/tls.crt and tls.key. */
    dir = aegis_asprintf("%s/secrets/default/myca", tmpdir);
    path = aegis_asprintf("mkdir -p '%s'", dir);
    CHECK(system(path) == 0, "secret dir made");
    free(path);
    memset(&is.ca, 0, sizeof(is.ca));
    is.ca.present = 1u << API_F_CA_ISSUER_SECRET_REF;
    is.ca.secret_ref.name = "myca";
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) < 0 && res.reason == ISSUER_REASON_SECRET_NOT_FOUND &&
              strstr(err.msg, "myca/tls.crt") != NULL,
          "missing secret: SecretNotFound naming the path");
    issuer_result_dispose(&res);
    path = aegis_asprintf("%s/tls.crt", dir);
    write_file(path, chain_pem);
    free(path);
    path = aegis_asprintf("%s/tls.key", dir);
    write_file(path, key_pem);
    free(path);
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) == 0 && res.chain != NULL &&
              verify_chain(root, res.chain, NOW, X509_PURPOSE_SSL_SERVER),
          "secretRef CA issues");
    issuer_result_dispose(&res);

    /* certificate/privateKey from files. */
    memset(&is.ca, 0, sizeof(is.ca));
    is.ca.present = (1u << API_F_CA_ISSUER_CERTIFICATE) | (1u << API_F_CA_ISSUER_PRIVATE_KEY);
    is.ca.certificate.file = aegis_asprintf("%s/tls.crt", dir);
    is.ca.private_key.file = aegis_asprintf("%s/tls.key", dir);
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) == 0 && res.status == ISSUER_DONE, "file CA issues");
    issuer_result_dispose(&res);
    free(is.ca.certificate.file);
    free(is.ca.private_key.file);

    /* secret_read's guards. */
    {
        char *buf = NULL;
        size_t len = 0;
        CHECK(secret_read(r.secrets_dir, "default", "..", "tls.crt", &buf, &len, &err) ==
                  -AEGIS_E_INVALID,
              "secret name '..' refused");
        CHECK(secret_read(r.secrets_dir, "default", "myca", "a/b", &buf, &len, &err) ==
                  -AEGIS_E_INVALID,
              "secret key with '/' refused");
        CHECK(secret_read(r.secrets_dir, "default", "myca", "tls.key", &buf, &len, &err) == 0 &&
                  len == strlen(key_pem) && memcmp(buf, key_pem, len) == 0 && buf[len] == '\0',
              "secret read whole, NUL-terminated");
        pki_secret_free(buf, len);
        CHECK(secret_read_file(tmpdir, "a directory", &buf, &len, &err) == -AEGIS_E_INVALID,
              "a directory is not a secret file");
    }

    free(dir);
    X509_free(root);
    free(chain_pem);
    pki_secret_free_str(key_pem);
    pki_secret_free_str(other_key);
}

static void test_crl(void)
{
    struct aegis_err err = {0};
    X509_CRL *crl = NULL;
    X509_REVOKED *entry = NULL;
    struct ca *ca = NULL;
    ASN1_INTEGER *num;
    long n1, n2, n3;

    CHECK(ca_crl(st, NOW, &crl, &err) == 0 && crl != NULL, "empty CRL made");
    if (crl == NULL) {
        printf("#   %s\n", err.msg);
        return;
    }
    CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0, "nothing revoked yet");
    X509_CRL_free(crl);
    crl = NULL;

    CHECK(ca_revoke(st, "0A:1B:2C", PKI_CRL_REASON_KEY_COMPROMISE, NOW, &err) == 0, "revoke");
    CHECK(ca_revoke(st, "0a1b2c", PKI_CRL_REASON_SUPERSEDED, NOW + 10, &err) == 0,
          "revoke again: not an error");
    CHECK(ca_revoke(st, "ff", PKI_CRL_REASON_UNSPECIFIED, NOW, &err) == 0, "revoke another");
    CHECK(ca_revoke(st, "zz", PKI_CRL_REASON_UNSPECIFIED, NOW, &err) == -AEGIS_E_INVALID,
          "bad serial refused");
    CHECK(ca_crl(st, NOW + 60, &crl, &err) == 0, "CRL read");
    CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 2, "two serials listed once each");
    {
        BIGNUM *bn = NULL;
        ASN1_INTEGER *s;
        ASN1_ENUMERATED *reason;
        BN_hex2bn(&bn, "0a1b2c");
        s = BN_to_ASN1_INTEGER(bn, NULL);
        CHECK(X509_CRL_get0_by_serial(crl, &entry, s) == 1, "revoked serial found");
        reason = entry ? X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, NULL, NULL) : NULL;
        CHECK(reason != NULL && ASN1_ENUMERATED_get(reason) == 1,
              "first reason (keyCompromise) kept");
        ASN1_ENUMERATED_free(reason);
        ASN1_INTEGER_free(s);
        BN_free(bn);
    }
    ca_local_open(st, NOW, &ca, &err);
    {
        /* Signed by the current intermediate: compare with a fresh leaf's issuer.
     */
        struct pki_cert_req req;
        EVP_PKEY *k = NULL;
        STACK_OF(X509) *chain = NULL;
        memset(&req, 0, sizeof(req));
        req.dns = (struct pki_strs){(char *[]){"x.test"}, 1};
        req.path_len = -1;
        req.not_before = NOW;
        req.not_after = NOW + DAY;
        pki_key_generate(PKI_KEY_EC_P256, &k, &err);
        ca_sign(ca, &req, k, &chain, &err);
        CHECK(chain != NULL &&
                  X509_CRL_verify(crl, X509_get0_pubkey(sk_X509_value(chain, 1))) == 1 &&
                  X509_NAME_cmp(X509_CRL_get_issuer(crl),
                                X509_get_subject_name(sk_X509_value(chain, 1))) == 0,
              "CRL signed by the intermediate");
        pki_chain_free(chain);
        EVP_PKEY_free(k);
    }
    CHECK(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), (time_t)(NOW + 7 * DAY)) <= 0,
          "nextUpdate within 7 days");
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    n1 = ASN1_INTEGER_get(num);
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    crl = NULL;

    /* One day later the CRL is fresh enough; six days later it is rebuilt. */
    ca_crl(st, NOW + DAY, &crl, &err);
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    n2 = ASN1_INTEGER_get(num);
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    crl = NULL;
    CHECK_INT(n2, n1, "fresh CRL reused");
    ca_crl(st, NOW + 6 * DAY, &crl, &err);
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    n3 = ASN1_INTEGER_get(num);
    ASN1_INTEGER_free(num);
    CHECK(n3 == n1 + 1, "CRL rebuilt near nextUpdate, number up");
    CHECK(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(crl), (time_t)(NOW + 13 * DAY)) == 0,
          "new nextUpdate");
    CHECK(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 2, "entries kept");
    X509_CRL_free(crl);
    ca_free(ca);
}

static void test_registry_and_fake(void)
{
    struct aegis_issuer_spec is;
    const struct issuer_ops *ops = NULL;
    struct aegis_err err = {0};
    char *dns[] = {"fake.test"};
    struct aegis_certificate_spec c;
    struct issuer_request r;
    struct issuer_result res;
    EVP_PKEY *mine = NULL;

    memset(&is, 0, sizeof(is));
    CHECK(issuer_for_spec(&is, &ops, &err) == -AEGIS_E_INVALID, "empty Issuer spec");
    is.present = 1u << API_F_ISSUER_SPEC_ACME;
    CHECK(issuer_for_spec(&is, &ops, &err) == 0 && ops != NULL && strcmp(ops->name, "acme") == 0 &&
              ops->revoke != NULL,
          "acme found, and it can revoke");
    is.present = 1u << API_F_ISSUER_SPEC_CLOUDFLARE_ORIGIN_CA;
    CHECK(issuer_for_spec(&is, &ops, &err) == 0 && ops != NULL &&
              strcmp(ops->name, "cloudflareOriginCA") == 0,
          "cloudflareOriginCA found");
    is.present = 1u << API_F_ISSUER_SPEC_SELF_SIGNED;
    CHECK(issuer_for_spec(&is, &ops, &err) == 0 && ops != NULL &&
              strcmp(ops->name, "selfSigned") == 0,
          "selfSigned found");
    is.present = 1u << API_F_ISSUER_SPEC_CA;
    CHECK(issuer_for_spec(&is, &ops, &err) == 0 && ops == &issuer_ca_ops, "ca found");
    CHECK_STR(issuer_reason_names[ISSUER_REASON_SECRET_NOT_FOUND], "SecretNotFound",
              "reason names");

    /* A given key is certified as is (rotationPolicy Never). */
    spec_init(&c, dns, 1);
    req_init(&r, &c, &is, NOW);
    pki_key_generate(PKI_KEY_ED25519, &mine, &err);
    r.key = mine;
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) == 0 && res.key != NULL && EVP_PKEY_eq(res.key, mine) == 1,
          "given key reused");
    issuer_result_dispose(&res);
    r.key = NULL;

    /* Bad requests. */
    {
        char *bad_usage[] = {"server-auth"};
        c.usages.v = bad_usage;
        c.usages.n = 1;
        issuer_result_init(&res);
        CHECK(issuer_issue(&r, &res, &err) == -AEGIS_E_INVALID &&
                  res.reason == ISSUER_REASON_INVALID_REQUEST,
              "unknown usage: InvalidRequest");
        issuer_result_dispose(&res);
        c.usages.n = 0;
        c.private_key.algorithm = AEGIS_KEY_ALGORITHM_RSA;
        c.private_key.size = 1024;
        issuer_result_init(&res);
        CHECK(issuer_issue(&r, &res, &err) == -AEGIS_E_INVALID &&
                  res.reason == ISSUER_REASON_INVALID_REQUEST && strstr(err.msg, "1024") != NULL,
              "RSA 1024: InvalidRequest");
        issuer_result_dispose(&res);
        c.private_key.algorithm = AEGIS_KEY_ALGORITHM_ECDSA;
        c.private_key.size = 0;
    }

    /* The fake: pending twice, then done; then a scripted failure. */
    memset(&issuer_fake, 0, sizeof(issuer_fake));
    issuer_fake.pending_calls = 2;
    issuer_fake.pending_delay_s = 30;
    issuer_result_init(&res);
    CHECK(issuer_fake_ops.issue(&r, &res, &err) == 0 && res.status == ISSUER_PENDING &&
              res.retry_at == NOW + 30,
          "fake: pending, retry in 30s");
    issuer_result_dispose(&res);
    issuer_result_init(&res);
    CHECK(issuer_fake_ops.issue(&r, &res, &err) == 0 && res.status == ISSUER_PENDING,
          "fake: pending again");
    issuer_result_dispose(&res);
    issuer_result_init(&res);
    CHECK(issuer_fake_ops.issue(&r, &res, &err) == 0 && res.status == ISSUER_DONE &&
              res.chain != NULL && res.key != NULL,
          "fake: done");
    issuer_result_dispose(&res);
    issuer_fake.fail_code = -AEGIS_E_CRYPTO;
    issuer_fake.fail_reason = ISSUER_REASON_REJECTED;
    issuer_fake.fail_message = "no";
    issuer_result_init(&res);
    CHECK(issuer_fake_ops.issue(&r, &res, &err) == -AEGIS_E_CRYPTO &&
              res.reason == ISSUER_REASON_REJECTED && strcmp(err.msg, "no") == 0,
          "fake: scripted failure");
    issuer_result_dispose(&res);
    CHECK_INT(issuer_fake.calls, 4, "fake: calls counted");
    issuer_fake.fail_code = 0;
    issuer_override = &issuer_fake_ops;
    memset(&is, 0, sizeof(is)); /* even an empty spec goes to the override */
    issuer_result_init(&res);
    CHECK(issuer_issue(&r, &res, &err) == 0 && res.status == ISSUER_DONE && issuer_fake.calls == 5,
          "issuer_override routes issuer_issue to the fake");
    issuer_result_dispose(&res);
    issuer_override = NULL;
    EVP_PKEY_free(mine);
}

/* ---- processes making the local CA at once ------------------------------------------------- */

#define RACERS 8
#define RACE_RECORD 256 /* one child's answer: a fingerprint, or an error (cut short) */

/*
 * One racer: waits for the start (EOF on go), opens its own store in dir, opens the local CA and
 * writes its root's fingerprint (or "error: ...") as one record to out. Never returns.
 */
static void race_child(int go, int out, const char *dir)
{
    char rec[RACE_RECORD] = {0};
    struct aegis_err err = {0};
    struct store *mine = NULL;
    struct ca *ca = NULL;
    char c;
    int status = 1;

    alarm(120); /* a deadlock shows as a killed child, not a hung test */
    while (read(go, &c, 1) < 0 && errno == EINTR)
        ;
    if (store_at(dir, &mine, &err) == 0 && ca_local_open(mine, NOW, &ca, &err) == 0) {
        fp(ca_root(ca), rec);
        status = 0;
    } else {
        snprintf(rec, sizeof(rec), "error: %.240s", err.msg);
    }
    /* One write of at most PIPE_BUF bytes: the records of the children never interleave. */
    if (write(out, rec, sizeof(rec)) != (ssize_t)sizeof(rec))
        status = 1;
    ca_free(ca);
    store_close(mine);
    _exit(status); /* not exit(): the parent's buffered output must not be written twice */
}

/*
 * RACERS processes open the local CA of one fresh state directory at the same moment (released
 * together by closing a pipe): all must end up with the same root, stored once.
 */
static void test_local_ca_race(void)
{
    struct aegis_err err = {0};
    char *dir = aegis_asprintf("%s/race", tmpdir);
    char recs[RACERS][RACE_RECORD];
    char want[RACE_RECORD] = "";
    struct store *mine = NULL;
    struct store_meta meta;
    struct store_meta *hist = NULL;
    struct store_id id;
    struct ca *ca = NULL;
    int go[2] = {-1, -1}, res[2] = {-1, -1};
    size_t got = 0, n_hist = 0;
    int started = 0, clean = 0, same = 0;

    store_meta_init(&meta);
    if (pipe(go) != 0 || pipe(res) != 0) {
        CHECK(0, "race: pipes");
        goto out;
    }
    fflush(stdout);
    for (int i = 0; i < RACERS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            close(go[1]);
            close(res[0]);
            race_child(go[0], res[1], dir);
        }
        if (pid > 0)
            started++;
    }
    close(go[0]);
    close(res[1]);
    go[0] = res[1] = -1;
    close(go[1]); /* every child starts now */
    go[1] = -1;
    while (got < sizeof(recs)) {
        ssize_t r = read(res[0], (char *)recs + got, sizeof(recs) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    for (int i = 0; i < started; i++) {
        int status = 0;
        if (wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            clean++;
    }
    CHECK_INT(started, RACERS, "race: every child started");
    CHECK_INT(clean, RACERS, "race: every child opened the local CA");
    CHECK_INT(got, sizeof(recs), "race: every child answered");
    for (size_t i = 0; i < got / RACE_RECORD; i++) {
        recs[i][RACE_RECORD - 1] = '\0';
        if (strncmp(recs[i], "error: ", 7) == 0)
            printf("#   child %zu: %s\n", i, recs[i]);
        else if (want[0] == '\0')
            memcpy(want, recs[i], sizeof(want));
        same += strcmp(recs[i], want) == 0;
    }
    CHECK_INT(same, RACERS, "race: every child has the same root");
    CHECK(store_at(dir, &mine, &err) == 0 && ca_local_open(mine, NOW, &ca, &err) == 0,
          "race: the CA opens afterwards");
    if (ca != NULL) {
        char now_fp[PKI_FINGERPRINT_HEX_SIZE];
        fp(ca_root(ca), now_fp);
        CHECK_STR(now_fp, want, "race: the stored root is the one every child got");
    }
    /* Stored once: a second root would have been revision 2, the first one moved to history. */
    CHECK(mine != NULL &&
              store_id_set(&id, STORE_KIND_CA, CA_STORE_NAMESPACE, CA_ROOT_NAME, &err) == 0 &&
              store_get_meta(mine, &id, &meta, &err) == 0,
          "race: root record read");
    CHECK_INT(meta.revision, 1, "race: the root was written once");
    CHECK(mine != NULL && store_history_list(mine, &id, &hist, &n_hist, &err) == 0 && n_hist == 0,
          "race: no replaced root in the history");
out:
    for (int i = 0; i < 2; i++) {
        if (go[i] >= 0)
            close(go[i]);
        if (res[i] >= 0)
            close(res[i]);
    }
    store_meta_array_free(hist, n_hist);
    store_meta_dispose(&meta);
    ca_free(ca);
    store_close(mine);
    free(dir);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    open_store();
    if (st != NULL) {
        test_local_ca_shape();
        test_issue_key_types();
        test_sub_ca();
        test_given_ca();
        test_crl();
        test_registry_and_fake();
        test_local_ca_race();
    }
    store_close(st);
    testutil_rm_rf(tmpdir);
    return check_done();
}
