/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/issuer/selfsigned.c: the selfSigned issuer for
 * every key type (a one-certificate chain that is its own trust anchor, with
 * the requested names, usages and validity, CA or not) and the fallback
 * certificate covering a list of hostnames and addresses.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "aegis/limits.h"
#include "aegis/pki.h"
#include "check.h"
#include "issuer/issuer.h"
#include "issuer/selfsigned.h"

#define NOW 1750000000LL
#define DAY 86400LL

static int self_verifies(X509 *x, int purpose)
{
    X509_STORE *xs = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok;

    X509_STORE_add_cert(xs, x);
    X509_STORE_CTX_init(ctx, xs, x, NULL);
    X509_STORE_CTX_set_time(ctx, 0, (time_t)NOW);
    if (purpose)
        X509_STORE_CTX_set_purpose(ctx, purpose);
    ok = X509_verify_cert(ctx);
    if (ok != 1)
        printf("#   verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(xs);
    ERR_clear_error();
    return ok == 1;
}

static void test_issuer(void)
{
    static const struct {
        enum aegis_key_algorithm alg;
        int64_t size;
    } keys[] = {
        {AEGIS_KEY_ALGORITHM_RSA, 2048},  {AEGIS_KEY_ALGORITHM_RSA, 3072},
        {AEGIS_KEY_ALGORITHM_RSA, 4096},  {AEGIS_KEY_ALGORITHM_ECDSA, 256},
        {AEGIS_KEY_ALGORITHM_ECDSA, 384}, {AEGIS_KEY_ALGORITHM_ED25519, 0},
    };
    char *dns[] = {"self.test", "*.self.test"};
    char *emails[] = {"me@self.test"};
    char *usages[] = {"digital signature", "server auth", "client auth"};
    struct aegis_issuer_spec is;

    memset(&is, 0, sizeof(is));
    is.present = 1u << API_F_ISSUER_SPEC_SELF_SIGNED;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        for (int ca = 0; ca < 2; ca++) {
            struct aegis_certificate_spec c;
            struct issuer_request r;
            struct issuer_result res;
            struct aegis_err err = {0};
            X509 *x;
            int64_t nb = 0, na = 0;
            char what[160];
            const char *kname = api_key_algorithm_names[keys[i].alg];

            memset(&c, 0, sizeof(c));
            c.dns_names = (struct aegis_strv){dns, NULL, 2};
            c.email_addresses = (struct aegis_strv){emails, NULL, 1};
            c.duration_ms = 30 * DAY * 1000;
            c.private_key.algorithm = keys[i].alg;
            c.private_key.size = keys[i].size;
            c.is_ca = ca;
            if (!ca)
                c.usages = (struct aegis_strv){usages, NULL, 3};
            memset(&r, 0, sizeof(r));
            r.cert_namespace = "default";
            r.cert_name = "self";
            r.cert = &c;
            r.issuer = &is;
            r.now = NOW;
            issuer_result_init(&res);
            snprintf(what, sizeof(what), "%s-%lld %s: issued", kname, (long long)keys[i].size,
                     ca ? "CA" : "leaf");
            CHECK(issuer_issue(&r, &res, &err) == 0 && res.status == ISSUER_DONE &&
                      sk_X509_num(res.chain) == 1,
                  what);
            if (res.chain == NULL) {
                printf("#   %s\n", err.msg);
                continue;
            }
            x = sk_X509_value(res.chain, 0);
            snprintf(what, sizeof(what), "%s: self-signed, its own anchor (ca.crt)", kname);
            CHECK((X509_get_extension_flags(x) & EXFLAG_SS) && X509_cmp(x, res.ca) == 0 &&
                      self_verifies(x, ca ? 0 : X509_PURPOSE_SSL_CLIENT),
                  what);
            snprintf(what, sizeof(what), "%s: key matches", kname);
            CHECK(pki_key_matches_cert(x, res.key, &err) == 0, what);
            snprintf(what, sizeof(what), "%s: validity", kname);
            CHECK(pki_cert_validity(x, &nb, &na) == 0 && nb == NOW - ISSUER_BACKDATE_S &&
                      na == NOW + 30 * DAY,
                  what);
            snprintf(what, sizeof(what), "%s: names", kname);
            CHECK(X509_check_host(x, "a.self.test", 0, 0, NULL) == 1 &&
                      X509_check_email(x, "me@self.test", 0, 0) == 1,
                  what);
            snprintf(what, sizeof(what), "%s: CA flag %d, usages", kname, ca);
            if (ca)
                CHECK((X509_get_extension_flags(x) & EXFLAG_CA) &&
                          (X509_get_key_usage(x) & KU_KEY_CERT_SIGN),
                      what);
            else
                CHECK(!(X509_get_extension_flags(x) & EXFLAG_CA) &&
                          X509_get_extended_key_usage(x) == (XKU_SSL_SERVER | XKU_SSL_CLIENT),
                      what);
            issuer_result_dispose(&res);
        }
    }
}

static void test_fallback(void)
{
    char *names[] = {"a.test",    "B.test", "*.wild.test", "a.test",
                     "127.0.0.1", "::1",    "b.test",      "127.0.0.1"};
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    struct aegis_err err = {0};
    X509 *x;
    GENERAL_NAMES *gens;
    int64_t nb = 0, na = 0;
    enum pki_key_type t;
    char cn[128];

    CHECK(selfsigned_fallback(names, 8, NOW, &chain, &key, &err) == 0 && sk_X509_num(chain) == 1,
          "fallback made");
    if (chain == NULL)
        return;
    x = sk_X509_value(chain, 0);
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    CHECK(gens != NULL && sk_GENERAL_NAME_num(gens) == 5,
          "duplicates dropped (case-insensitive): 3 DNS + 2 IP");
    GENERAL_NAMES_free(gens);
    CHECK(X509_check_host(x, "a.test", 0, 0, NULL) == 1 &&
              X509_check_host(x, "b.test", 0, 0, NULL) == 1 &&
              X509_check_host(x, "x.wild.test", 0, 0, NULL) == 1 &&
              X509_check_host(x, "c.test", 0, 0, NULL) == 0,
          "covers every hostname, wildcard included");
    CHECK(X509_check_ip_asc(x, "127.0.0.1", 0) == 1 && X509_check_ip_asc(x, "::1", 0) == 1,
          "covers the addresses as IP SANs");
    CHECK(X509_check_host(x, "127.0.0.1", 0, 0, NULL) == 0, "an address is not a DNS SAN");
    CHECK(self_verifies(x, X509_PURPOSE_SSL_SERVER), "self-signed server certificate");
    CHECK(pki_cert_validity(x, &nb, &na) == 0 && nb == NOW - ISSUER_BACKDATE_S &&
              na == NOW + SELFSIGNED_FALLBACK_LIFETIME_S,
          "fallback validity");
    CHECK(pki_key_type_of(key, &t) == 0 && t == PKI_KEY_EC_P256 &&
              pki_key_matches_cert(x, key, &err) == 0,
          "fallback key P-256, matching");
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    CHECK_STR(cn, SELFSIGNED_FALLBACK_CN, "fallback CN");
    pki_chain_free(chain);
    EVP_PKEY_free(key);
    chain = NULL;
    key = NULL;

    CHECK(selfsigned_fallback(names, 0, NOW, &chain, &key, &err) == -AEGIS_E_INVALID &&
              chain == NULL && key == NULL,
          "no names: refused");
    CHECK(selfsigned_fallback(names, AEGIS_LIMIT_SANS + 1, NOW, &chain, &key, &err) ==
              -AEGIS_E_LIMIT,
          "too many names: refused");
    {
        char *bad[] = {"bad name.test"};
        CHECK(selfsigned_fallback(bad, 1, NOW, &chain, &key, &err) == -AEGIS_E_INVALID &&
                  chain == NULL && key == NULL,
              "a name with a space: refused, nothing leaked");
    }
}

int main(void)
{
    test_issuer();
    test_fallback();
    return check_done();
}
