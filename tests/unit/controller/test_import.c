/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/import.c. Every certificate and key is made at test
 * time (pki.h and OpenSSL): a root, two intermediates and a leaf, plus an
 * unrelated root. Covered: matching and mismatching pairs; chains given in
 * order, reversed, shuffled, with duplicates, with an unrelated certificate or
 * a missing intermediate; expired leaf and intermediate; the 30-day warning and
 * not-yet-valid; RSA 1024 and P-224 refused, RSA 2048, P-384 and Ed25519
 * accepted; name coverage (DNS, wildcard per RFC 6125, IP); PKCS#12 with the
 * right, wrong and missing password, without a password, without a key, legacy
 * RC2 (loading the legacy provider on demand), an iteration count over the
 * limit and garbage; reading from a Certificate spec (inline, file, Secret);
 * storing with deduplication; and that no message holds key material.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "aegis/masterkey.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "check.h"
#include "import.h"

#define NOW 1750000000LL /* 2025-06-15 */
#define DAY 86400LL

static EVP_PKEY *root_key, *i1_key, *i2_key, *leaf_key, *other_key, *other_leaf_key;
static X509 *root, *i1, *i2, *leaf, *other_root, *other_leaf;
static char tmpdir[] = "/tmp/aegis-test-import.XXXXXX";

static char *leaf_dns[] = {"app.test", "*.app.test"};
static char *leaf_ip[] = {"10.0.0.1", "2001:db8::1"};

static EVP_PKEY *gen(enum pki_key_type t)
{
    EVP_PKEY *k = NULL;

    if (pki_key_generate(t, &k, NULL) != 0)
        abort();
    return k;
}

/* A certificate for key signed by issuer (self-signed when issuer is NULL). */
static X509 *mk(const char *cn, bool ca, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                int64_t nb, int64_t na, char **dns, size_t ndns, char **ip, size_t nip)
{
    struct pki_cert_req r;
    struct aegis_err err;
    X509 *x = NULL;

    memset(&r, 0, sizeof(r));
    r.common_name = cn;
    r.is_ca = ca;
    r.path_len = ca ? 2 : -1;
    r.usages = ca ? 0 : PKI_USAGES_DEFAULT;
    r.dns = (struct pki_strs){dns, ndns};
    r.ip = (struct pki_strs){ip, nip};
    r.not_before = nb;
    r.not_after = na;
    if (pki_sign(&r, key, issuer, issuer ? issuer_key : key, &x, &err) != 0) {
        printf("# pki_sign %s: %s\n", cn, err.msg);
        abort();
    }
    return x;
}

static X509 *mk_leaf(EVP_PKEY *key, int64_t nb, int64_t na)
{
    return mk("app.test", false, key, i2, i2_key, nb, na, leaf_dns, 2, leaf_ip, 2);
}

/* Concatenated PEM of certs (a NULL-terminated list); free(). */
static char *pem_of(X509 *first, ...)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    char *pem = NULL;
    va_list ap;

    va_start(ap, first);
    for (X509 *x = first; x != NULL; x = va_arg(ap, X509 *))
        sk_X509_push(sk, x);
    va_end(ap);
    if (pki_chain_to_pem(sk, &pem, NULL, NULL) != 0)
        abort();
    sk_X509_free(sk);
    return pem;
}

static char *key_pem(EVP_PKEY *k)
{
    char *pem = NULL;

    if (pki_key_to_pem(k, &pem, NULL, NULL) != 0)
        abort();
    return pem;
}

static struct import_check base_check(void)
{
    static char *want_dns[] = {"app.test", "www.app.test"};
    struct import_check chk;

    memset(&chk, 0, sizeof(chk));
    chk.resource = "Certificate default/app";
    chk.cert_field = "spec.custom.certificate";
    chk.key_field = "spec.custom.privateKey";
    chk.dns = (struct pki_strs){want_dns, 2};
    chk.now = NOW;
    chk.source = IMPORT_SOURCE_CUSTOM;
    return chk;
}

/* Runs import_pem on a chain PEM and key; returns rc, leaves the result in res.
 */
static int run_pem(const char *chain, EVP_PKEY *key, const struct import_check *chk,
                   struct import_result *res, struct aegis_err *err)
{
    char *kp = key_pem(key);
    int rc;

    memset(err, 0, sizeof(*err));
    import_result_dispose(res);
    rc = import_pem(chain, strlen(chain), kp, strlen(kp), chk, res, err);
    pki_secret_free_str(kp);
    return rc;
}

/* The subjects' CNs of a chain PEM, joined by ">". */
static void chain_cns(const char *pem, char *buf, size_t size)
{
    STACK_OF(X509) *sk = NULL;

    buf[0] = '\0';
    if (pki_chain_from_pem(pem, strlen(pem), &sk, NULL) != 0)
        return;
    for (int i = 0; i < sk_X509_num(sk); i++) {
        char cn[128] = "";

        X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(sk, i)), NID_commonName, cn,
                                  sizeof(cn));
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ">" : "", cn);
    }
    pki_chain_free(sk);
}

static bool has(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

static void setup(void)
{
    root_key = gen(PKI_KEY_EC_P256);
    i1_key = gen(PKI_KEY_EC_P256);
    i2_key = gen(PKI_KEY_EC_P384);
    leaf_key = gen(PKI_KEY_EC_P256);
    other_key = gen(PKI_KEY_EC_P256);
    other_leaf_key = gen(PKI_KEY_EC_P256);
    root =
        mk("Test Root", true, root_key, NULL, NULL, NOW - DAY, NOW + 3650 * DAY, NULL, 0, NULL, 0);
    i1 = mk("Test Intermediate 1", true, i1_key, root, root_key, NOW - DAY, NOW + 1800 * DAY, NULL,
            0, NULL, 0);
    i2 = mk("Test Intermediate 2", true, i2_key, i1, i1_key, NOW - DAY, NOW + 900 * DAY, NULL, 0,
            NULL, 0);
    leaf = mk_leaf(leaf_key, NOW - DAY, NOW + 90 * DAY);
    other_root = mk("Other Root", true, other_key, NULL, NULL, NOW - DAY, NOW + 3650 * DAY, NULL, 0,
                    NULL, 0);
    other_leaf = mk("app.test", false, other_leaf_key, other_root, other_key, NOW - DAY,
                    NOW + 90 * DAY, leaf_dns, 2, NULL, 0);
}

static void teardown(void)
{
    EVP_PKEY *keys[] = {root_key, i1_key, i2_key, leaf_key, other_key, other_leaf_key};
    X509 *certs[] = {root, i1, i2, leaf, other_root, other_leaf};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
}

static void test_pairs_and_chains(void)
{
    struct import_check chk = base_check();
    struct import_result res;
    struct aegis_err err;
    char cns[512], fp[PKI_FINGERPRINT_HEX_SIZE];
    char *pem;
    int rc;

    import_result_init(&res);

    pem = pem_of(leaf, i2, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK_INT(rc, 0, "matching pair with chain in order is accepted");
    chain_cns(res.rec.chain_pem, cns, sizeof(cns));
    CHECK_STR(cns, "app.test>Test Intermediate 2>Test Intermediate 1", "chain kept in order");
    CHECK(has(res.rec.key_pem, "BEGIN PRIVATE KEY"), "key PEM is PKCS#8");
    CHECK_STR(res.rec.meta.source, "custom", "source custom");
    pki_fingerprint_sha256(leaf, fp);
    CHECK_STR(res.rec.meta.fingerprint, fp, "fingerprint of the leaf");
    CHECK_INT(res.rec.meta.n_dns_names, 2, "metadata names");
    CHECK_INT(res.rec.meta.updated_at, NOW, "updatedAt from the injected clock");
    CHECK_INT(res.n_warnings, 0, "no warnings");
    free(pem);

    pem = pem_of(leaf, NULL);
    rc = run_pem(pem, other_leaf_key, &chk, &res, &err);
    CHECK_INT(rc, -AEGIS_E_INVALID, "mismatching key is refused");
    CHECK_STR(err.where, "Certificate default/app", "mismatch names the resource");
    CHECK(has(err.msg, "spec.custom.privateKey does not match the certificate in "
                       "spec.custom.certificate"),
          "mismatch names both fields");
    CHECK(!has(err.msg, "PRIVATE KEY") && !has(err.where, "PRIVATE"), "no key material in it");
    free(pem);

    pem = pem_of(i1, i2, leaf, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    chain_cns(res.rec.chain_pem, cns, sizeof(cns));
    CHECK(rc == 0 && strcmp(cns, "app.test>Test Intermediate 2>Test Intermediate 1") == 0,
          "reversed chain is put in order");
    free(pem);

    pem = pem_of(i1, leaf, root, i2, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    chain_cns(res.rec.chain_pem, cns, sizeof(cns));
    CHECK(rc == 0 && strcmp(cns, "app.test>Test Intermediate 2>Test Intermediate 1>Test Root") == 0,
          "shuffled chain with root is put in order");
    free(pem);

    pem = pem_of(leaf, i2, i2, i1, leaf, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    chain_cns(res.rec.chain_pem, cns, sizeof(cns));
    CHECK(rc == 0 && strcmp(cns, "app.test>Test Intermediate 2>Test Intermediate 1") == 0,
          "duplicates are dropped");
    free(pem);

    pem = pem_of(leaf, i2, i1, other_root, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK_INT(rc, -AEGIS_E_INVALID, "unrelated extra certificate is refused");
    CHECK(has(err.msg, "not one chain") && has(err.msg, "CN=Other Root"),
          "message names the stray certificate");
    free(pem);

    pem = pem_of(leaf, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "Intermediate 1") &&
              has(err.msg, "add the intermediates"),
          "missing intermediate is refused");
    free(pem);

    pem = pem_of(i2, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "does not match any certificate of"),
          "key of none of the certificates");
    free(pem);

    rc = run_pem("no certificate here", leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && has(err.msg, "spec.custom.certificate"),
          "no certificate names the field");

    pem = pem_of(leaf, NULL);
    memset(&err, 0, sizeof(err));
    import_result_dispose(&res);
    rc = import_pem(pem, strlen(pem),
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END "
                    "ENCRYPTED PRIVATE KEY-----\n",
                    70, &chk, &res, &err);
    CHECK(rc < 0 && has(err.msg, "spec.custom.privateKey") && has(err.msg, "encrypted"),
          "encrypted key: says to decrypt it");
    free(pem);
    import_result_dispose(&res);
}

static void test_validity(void)
{
    struct import_check chk = base_check();
    struct import_result res;
    struct aegis_err err;
    X509 *x, *inter;
    char *pem;
    int rc;

    import_result_init(&res);
    x = mk_leaf(leaf_key, NOW - 100 * DAY, NOW - DAY);
    pem = pem_of(x, i2, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "expired on 2025-06-14"),
          "expired leaf is refused with its date");
    free(pem);
    X509_free(x);

    x = mk_leaf(leaf_key, NOW - 60 * DAY, NOW + 10 * DAY);
    pem = pem_of(x, i2, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == 0 && res.n_warnings == 1 && has(res.warnings[0], "expires on 2025-06-25") &&
              has(res.warnings[0], "in 10 days"),
          "expiring within 30 days: a warning");
    free(pem);
    X509_free(x);

    x = mk_leaf(leaf_key, NOW - 60 * DAY, NOW + 31 * DAY);
    pem = pem_of(x, i2, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == 0 && res.n_warnings == 0, "31 days left: no warning");
    free(pem);
    X509_free(x);

    x = mk_leaf(leaf_key, NOW + DAY, NOW + 90 * DAY);
    pem = pem_of(x, i2, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == 0 && res.n_warnings == 1 && has(res.warnings[0], "not valid before"),
          "not yet valid: a warning");
    free(pem);
    X509_free(x);

    inter = mk("Test Intermediate 2", true, i2_key, i1, i1_key, NOW - 900 * DAY, NOW - DAY, NULL, 0,
               NULL, 0);
    pem = pem_of(leaf, inter, i1, NULL);
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "intermediate certificate") &&
              has(err.msg, "Intermediate 2"),
          "expired intermediate is refused");
    free(pem);
    X509_free(inter);
    import_result_dispose(&res);
}

static EVP_PKEY *keygen_q(const char *type, const char *curve, size_t bits)
{
    EVP_PKEY *k = curve != NULL ? EVP_PKEY_Q_keygen(NULL, NULL, type, curve)
                                : EVP_PKEY_Q_keygen(NULL, NULL, type, bits);

    if (k == NULL)
        abort();
    return k;
}

static void test_key_strength(void)
{
    struct {
        const char *name;
        EVP_PKEY *key;
        bool ok;
        const char *says;
    } cases[] = {
        {"RSA 1024 is refused", keygen_q("RSA", NULL, 1024), false, "the key is RSA 1024"},
        {"P-224 is refused", keygen_q("EC", "P-224", 0), false, "ECDSA secp224r1"},
        {"RSA 2048 is accepted", gen(PKI_KEY_RSA_2048), true, NULL},
        {"P-384 is accepted", gen(PKI_KEY_EC_P384), true, NULL},
        {"Ed25519 is accepted", gen(PKI_KEY_ED25519), true, NULL},
    };
    struct import_check chk = base_check();
    struct import_result res;
    struct aegis_err err;

    import_result_init(&res);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509 *x = mk_leaf(cases[i].key, NOW - DAY, NOW + 90 * DAY);
        char *pem = pem_of(x, i2, i1, NULL);
        int rc = run_pem(pem, cases[i].key, &chk, &res, &err);

        if (cases[i].ok)
            CHECK(rc == 0, cases[i].name);
        else
            CHECK(rc == -AEGIS_E_INVALID && has(err.msg, cases[i].says) &&
                      has(err.msg, "the minimum is RSA 2048, ECDSA P-256 or Ed25519"),
                  cases[i].name);
        free(pem);
        X509_free(x);
        EVP_PKEY_free(cases[i].key);
    }
    import_result_dispose(&res);
}

static void test_coverage(void)
{
    static const struct {
        const char *san, *name;
        bool want;
    } dns[] = {
        {"app.test", "app.test", true},
        {"APP.Test", "app.TEST", true},
        {"app.test.", "app.test", true},
        {"app.test", "app.test.", true},
        {"*.app.test", "www.app.test", true},
        {"*.app.test", "WWW.APP.TEST", true},
        {"*.app.test", "app.test", false},
        {"*.app.test", "a.b.app.test", false},
        {"*.app.test", ".app.test", false},
        {"*.app.test", "*.app.test", true},
        {"*.app.test", "*.b.app.test", false},
        {"*.test", "app.test", false},
        {"*.*.test", "a.b.test", false},
        {"w*.app.test", "www.app.test", false},
        {"www.*.test", "www.app.test", false},
        {"www.app.test", "*.app.test", false},
        {"", "app.test", false},
        {"*.", "a.", false},
        {"*", "app", false},
        {"xn--bcher-kva.test", "xn--bcher-kva.test", true},
    };
    struct import_check chk = base_check();
    struct import_result res;
    struct aegis_err err;
    char name[128];
    char *pem = pem_of(leaf, i2, i1, NULL);
    char *ok_ips[] = {"10.0.0.1", "2001:DB8:0:0::1"}, *bad_ip[] = {"10.0.0.2"};
    char *bad_dns[] = {"app.test", "a.b.app.test"};
    int rc;

    for (size_t i = 0; i < sizeof(dns) / sizeof(dns[0]); i++) {
        snprintf(name, sizeof(name), "covers(\"%s\", \"%s\") = %s", dns[i].san, dns[i].name,
                 dns[i].want ? "yes" : "no");
        CHECK(import_dns_covers(dns[i].san, dns[i].name) == dns[i].want, name);
    }
    import_result_init(&res);
    chk.ip = (struct pki_strs){ok_ips, 2};
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK_INT(rc, 0, "leaf covers dnsNames (one through the wildcard) and both IPs");

    chk.dns = (struct pki_strs){bad_dns, 2};
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID &&
              has(err.msg, "does not cover spec.dnsNames[1] \"a.b.app.test\"") &&
              has(err.msg, "app.test, *.app.test, 10.0.0.1, 2001:db8::1"),
          "a name two labels under the wildcard is not covered; the message "
          "lists the SANs");

    chk = base_check();
    chk.ip = (struct pki_strs){bad_ip, 1};
    rc = run_pem(pem, leaf_key, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "spec.ipAddresses[0] 10.0.0.2"),
          "an IP not in the SANs is not covered");
    free(pem);
    import_result_dispose(&res);
}

/* A PKCS#12 bundle of leaf, key and intermediates as DER; free(). */
static unsigned char *p12_der(const char *pass, EVP_PKEY *key, X509 *cert, bool with_ca, int nid,
                              int mac_iter, size_t *len)
{
    STACK_OF(X509) *ca = sk_X509_new_null();
    PKCS12 *p12;
    unsigned char *der = NULL;
    int n;

    if (with_ca) {
        sk_X509_push(ca, i1);
        sk_X509_push(ca, i2);
    }
    p12 = PKCS12_create(pass, "app", key, cert, ca, nid, nid, 0, mac_iter, 0);
    sk_X509_free(ca);
    if (p12 == NULL) {
        ERR_print_errors_fp(stdout);
        abort();
    }
    n = i2d_PKCS12(p12, &der);
    PKCS12_free(p12);
    if (n <= 0)
        abort();
    *len = (size_t)n;
    return der;
}

/*
 * A bundle encrypted with RC2-40 and 3DES, as `openssl pkcs12 -export -legacy`
 * writes it, made in a child process so that this process has not loaded the
 * legacy provider when it imports.
 */
static unsigned char *legacy_der(size_t *len)
{
    unsigned char *buf = aegis_malloc(65536);
    int fds[2], status = 0;
    size_t n = 0;
    ssize_t r;
    pid_t pid;

    if (pipe(fds) != 0)
        abort();
    pid = fork();
    if (pid == 0) {
        size_t dlen = 0;
        unsigned char *der;

        close(fds[0]);
        if (OSSL_PROVIDER_load(NULL, "legacy") == NULL ||
            OSSL_PROVIDER_load(NULL, "default") == NULL)
            _exit(3);
        der = p12_der("secret", leaf_key, leaf, true, NID_pbe_WithSHA1And40BitRC2_CBC, 1, &dlen);
        if (write(fds[1], der, dlen) != (ssize_t)dlen)
            _exit(4);
        _exit(0);
    }
    close(fds[1]);
    while ((r = read(fds[0], buf + n, 65536 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    waitpid(pid, &status, 0);
    *len = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? n : 0;
    return buf;
}

static void test_pkcs12(void)
{
    struct import_check chk = base_check();
    struct import_result res;
    struct aegis_err err;
    unsigned char *der;
    size_t len = 0;
    char cns[512];
    int rc;

    chk.source = IMPORT_SOURCE_PKCS12;
    chk.cert_field = chk.key_field = "spec.pkcs12.bundle";
    import_result_init(&res);

    der = p12_der("s3cret", leaf_key, leaf, true, 0, 1, &len);
    rc = import_pkcs12(der, len, "s3cret", &chk, &res, &err);
    chain_cns(res.rec.chain_pem, cns, sizeof(cns));
    CHECK(rc == 0 && strcmp(cns, "app.test>Test Intermediate 2>Test Intermediate 1") == 0,
          "PKCS#12 with the right password: chain in order");
    CHECK_STR(res.rec.meta.source, "pkcs12", "source pkcs12");
    import_result_dispose(&res);
    memset(&err, 0, sizeof(err));
    rc = import_pkcs12(der, len, "wrong", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "spec.pkcs12.bundle: wrong password") &&
              strcmp(err.where, "Certificate default/app") == 0,
          "PKCS#12 with a wrong password says \"wrong password\"");
    rc = import_pkcs12(der, len, NULL, &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "none was given"),
          "PKCS#12 without the password it needs");
    free(der);

    der = p12_der(NULL, leaf_key, leaf, true, 0, 1, &len);
    rc = import_pkcs12(der, len, NULL, &chk, &res, &err);
    CHECK_INT(rc, 0, "PKCS#12 without a password, none given");
    import_result_dispose(&res);
    rc = import_pkcs12(der, len, "", &chk, &res, &err);
    CHECK_INT(rc, 0, "PKCS#12 without a password, \"\" given");
    import_result_dispose(&res);
    free(der);

    der = p12_der("", leaf_key, leaf, false, 0, 1, &len);
    rc = import_pkcs12(der, len, NULL, &chk, &res, &err);
    CHECK_INT(rc, 0, "PKCS#12 with an empty password, none given");
    import_result_dispose(&res);
    free(der);

    der = p12_der("s3cret", NULL, leaf, false, 0, 1, &len);
    rc = import_pkcs12(der, len, "s3cret", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "holds no private key"), "PKCS#12 without a key");
    free(der);

    der = p12_der("s3cret", other_leaf_key, NULL, true, 0, 1, &len);
    rc = import_pkcs12(der, len, "s3cret", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "does not match"),
          "PKCS#12 whose key matches none of its certificates");
    free(der);

    der = p12_der("s3cret", leaf_key, leaf, false, 0, AEGIS_LIMIT_PKCS12_ITERATIONS + 1, &len);
    rc = import_pkcs12(der, len, "s3cret", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_LIMIT && has(err.msg, "iterations"),
          "PKCS#12 with a MAC iteration count over the limit");
    free(der);

    rc = import_pkcs12((const unsigned char *)"garbage", 7, "x", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "not a PKCS#12 bundle"), "garbage is refused");
    rc = import_pkcs12((const unsigned char *)"", 0, "x", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID, "empty input is refused");

    der = legacy_der(&len);
    CHECK(len > 0, "legacy bundle made (child process)");
    CHECK(!OSSL_PROVIDER_available(NULL, "legacy"), "legacy provider not loaded before");
    rc = import_pkcs12(der, len, "wrong", &chk, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "wrong password") &&
              !OSSL_PROVIDER_available(NULL, "legacy"),
          "legacy bundle, wrong password: told so, legacy provider still not "
          "loaded");
    rc = import_pkcs12(der, len, "secret", &chk, &res, &err);
    if (rc != 0)
        printf("# %s\n", err.msg);
    CHECK(rc == 0 && OSSL_PROVIDER_available(NULL, "legacy"),
          "legacy RC2 bundle opens; the legacy provider was loaded on demand");
    free(der);
    import_result_dispose(&res);
}

static void test_password_trim(void)
{
    char a[] = "pw\n", b[] = "pw\r\n", c[] = "pw", d[] = "pw\n\n", e[] = "";
    size_t la = 3, lb = 4, lc = 2, ld = 4, le = 0;

    import_password_trim(a, &la);
    import_password_trim(b, &lb);
    import_password_trim(c, &lc);
    import_password_trim(d, &ld);
    import_password_trim(e, &le);
    CHECK(la == 2 && strcmp(a, "pw") == 0, "trim \\n");
    CHECK(lb == 2 && strcmp(b, "pw") == 0, "trim \\r\\n");
    CHECK(lc == 2 && strcmp(c, "pw") == 0, "nothing to trim");
    CHECK(ld == 3 && strcmp(d, "pw\n") == 0, "only one line end");
    CHECK(le == 0, "empty");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        abort();
}

static void test_from_spec(void)
{
    struct aegis_certificate_spec spec;
    struct import_result res;
    struct aegis_err err;
    char *chain = pem_of(leaf, i2, i1, NULL), *kp = key_pem(leaf_key), *dns[] = {"app.test"};
    char path[256], secrets[256], cfile[512], pfile[512];
    unsigned char *der;
    size_t len;
    int rc;

    import_result_init(&res);
    snprintf(secrets, sizeof(secrets), "%s/secrets", tmpdir);
    snprintf(path, sizeof(path), "%s/secrets/default/app-tls", tmpdir);
    if (mkdir(secrets, 0700) != 0 ||
        snprintf(cfile, sizeof(cfile), "%s/secrets/default", tmpdir) <= 0 ||
        mkdir(cfile, 0700) != 0 || mkdir(path, 0700) != 0)
        abort();
    snprintf(cfile, sizeof(cfile), "%s/tls.key", path);
    write_file(cfile, kp, strlen(kp));
    snprintf(cfile, sizeof(cfile), "%s/chain.pem", tmpdir);
    write_file(cfile, chain, strlen(chain));

    memset(&spec, 0, sizeof(spec));
    spec.dns_names.v = dns;
    spec.dns_names.n = 1;
    spec.present = 1u << API_F_CERTIFICATE_SPEC_CUSTOM;
    spec.custom.certificate.file = cfile;
    spec.custom.private_key.secret_ref.name = "app-tls";
    spec.custom.private_key.secret_ref.key = "tls.key";
    rc = import_from_spec(&spec, "default", "app", secrets, NOW, &res, &err);
    CHECK(rc == 0 && has(res.rec.meta.source, "custom"),
          "spec.custom: certificate from a file, key from a Secret");
    import_result_dispose(&res);

    spec.custom.certificate.file = NULL;
    spec.custom.certificate.pem = chain;
    spec.custom.private_key.secret_ref.key = "missing.key";
    rc = import_from_spec(&spec, "default", "app", secrets, NOW, &res, &err);
    CHECK(rc == -AEGIS_E_NOTFOUND && strcmp(err.where, "Certificate default/app") == 0 &&
              has(err.msg, "spec.custom.privateKey") && has(err.msg, "missing.key"),
          "spec.custom: a missing Secret key names the resource, field and path");

    spec.custom.private_key.secret_ref.name = NULL;
    spec.custom.private_key.pem = key_pem(other_leaf_key);
    rc = import_from_spec(&spec, "default", "app", secrets, NOW, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "spec.custom.privateKey does not match"),
          "spec.custom: inline key of another certificate");
    pki_secret_free_str(spec.custom.private_key.pem);

    der = p12_der("pw", leaf_key, leaf, true, 0, 1, &len);
    snprintf(pfile, sizeof(pfile), "%s/bundle.p12", tmpdir);
    write_file(pfile, der, len);
    free(der);
    snprintf(cfile, sizeof(cfile), "%s/password", path);
    write_file(cfile, "pw\n", 3);
    memset(&spec, 0, sizeof(spec));
    spec.dns_names.v = dns;
    spec.dns_names.n = 1;
    spec.present = 1u << API_F_CERTIFICATE_SPEC_PKCS12;
    spec.pkcs12.present = 1u << API_F_PKCS12_CERTIFICATE_PASSWORD;
    spec.pkcs12.bundle.file = pfile;
    spec.pkcs12.password.secret_ref.name = "app-tls";
    spec.pkcs12.password.secret_ref.key = "password";
    rc = import_from_spec(&spec, "default", "app", secrets, NOW, &res, &err);
    CHECK(rc == 0 && has(res.rec.meta.source, "pkcs12"),
          "spec.pkcs12: bundle from a file, password (with newline) from a Secret");
    import_result_dispose(&res);

    write_file(cfile, "nope\n", 5);
    rc = import_from_spec(&spec, "default", "app", secrets, NOW, &res, &err);
    CHECK(rc == -AEGIS_E_INVALID && has(err.msg, "spec.pkcs12.bundle: wrong password"),
          "spec.pkcs12: wrong password");
    free(chain);
    pki_secret_free_str(kp);
    import_result_dispose(&res);
}

static void test_store(void)
{
    struct aegis_keyring ring;
    struct aegis_masterkey mk;
    unsigned char kb[MASTERKEY_BYTES];
    struct import_check chk = base_check();
    struct import_result res;
    struct store_meta meta;
    struct store_id id;
    struct store *st = NULL;
    struct aegis_err err;
    char dir[512], *pem;
    bool unchanged = true;
    X509 *renewed;
    int rc;

    memset(kb, 7, sizeof(kb));
    masterkey_set(&mk, kb);
    masterkey_ring_init(&ring);
    masterkey_ring_add(&ring, &mk, NULL);
    snprintf(dir, sizeof(dir), "%s/state", tmpdir);
    rc = store_open_fs(dir, &ring, &st, &err);
    CHECK_INT(rc, 0, "store opens");
    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", "app", NULL);
    import_result_init(&res);

    pem = pem_of(leaf, i2, i1, NULL);
    run_pem(pem, leaf_key, &chk, &res, &err);
    rc = import_store(st, "default", "app", &res, &unchanged, &err);
    CHECK(rc == 0 && !unchanged, "first import is stored");
    rc = import_store(st, "default", "app", &res, &unchanged, &err);
    CHECK(rc == 0 && unchanged, "same certificate again: unchanged");
    run_pem(pem, leaf_key, &chk, &res, &err); /* parsed afresh: still the same */
    rc = import_store(st, "default", "app", &res, &unchanged, &err);
    CHECK(rc == 0 && unchanged, "same certificate read again: unchanged");
    store_get_meta(st, &id, &meta, NULL);
    CHECK_INT(meta.revision, 1, "revision did not move");
    store_meta_dispose(&meta);
    free(pem);

    pem = pem_of(leaf, i2, i1, root, NULL);
    run_pem(pem, leaf_key, &chk, &res, &err);
    rc = import_store(st, "default", "app", &res, &unchanged, &err);
    store_get_meta(st, &id, &meta, NULL);
    CHECK(rc == 0 && !unchanged && meta.revision == 2, "same leaf with a longer chain is stored");
    store_meta_dispose(&meta);
    free(pem);

    renewed = mk_leaf(leaf_key, NOW, NOW + 90 * DAY);
    pem = pem_of(renewed, i2, i1, NULL);
    run_pem(pem, leaf_key, &chk, &res, &err);
    rc = import_store(st, "default", "app", &res, &unchanged, &err);
    store_get_meta(st, &id, &meta, NULL);
    CHECK(rc == 0 && !unchanged && meta.revision == 3, "a renewed certificate is stored");
    store_meta_dispose(&meta);
    free(pem);
    X509_free(renewed);

    import_result_dispose(&res);
    store_close(st);
    masterkey_ring_dispose(&ring);
}

int main(void)
{
    char cmd[600];

    if (mkdtemp(tmpdir) == NULL)
        return 1;
    setup();
    test_pairs_and_chains();
    test_validity();
    test_key_strength();
    test_coverage();
    test_pkcs12();
    test_password_trim();
    test_from_spec();
    test_store();
    teardown();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# cannot remove %s\n", tmpdir);
    return check_done();
}
