/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decision part of revokeOnDelete (controller/revoker.c): which Issuer a removed Certificate
 * had (the new snapshot first, else the old one), and that nothing is removed from the store or
 * queued unless that Issuer is a cloudflareOriginCA with revokeOnDelete and the stored
 * certificate came from it. The API calls themselves run in tests/controller/test_cloudflare.py.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/pki.h"
#include "aegis/store.h"
#include "check.h"
#include "revoker.h"
#include "testutil.h"

#define BIT(f) (1ull << (f))

static struct aegis_resource issuer_res(const char *name, bool cloudflare, bool revoke)
{
    struct aegis_resource r;

    memset(&r, 0, sizeof(r));
    r.kind = AEGIS_KIND_ISSUER;
    r.meta.name = (char *)name;
    r.meta.namespace = "default";
    if (cloudflare) {
        r.spec.issuer.present = BIT(API_F_ISSUER_SPEC_CLOUDFLARE_ORIGIN_CA);
        r.spec.issuer.cloudflare_origin_ca.present =
            BIT(API_F_CLOUDFLARE_ORIGIN_CA_ISSUER_API_TOKEN_SECRET_REF);
        r.spec.issuer.cloudflare_origin_ca.api_token_secret_ref.name = "cf";
        r.spec.issuer.cloudflare_origin_ca.api_token_secret_ref.key = "token";
        r.spec.issuer.cloudflare_origin_ca.revoke_on_delete = revoke;
    } else {
        r.spec.issuer.present = BIT(API_F_ISSUER_SPEC_SELF_SIGNED);
    }
    return r;
}

/* Stores a self-signed certificate for default/name with source. */
static void put_cert(struct store *st, const char *name, const char *source)
{
    char *names[] = {"app.test"};
    struct pki_cert_req req = {.dns = {names, 1}, .path_len = -1, .not_after = 2000000000};
    struct store_record rec;
    struct store_id id;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    size_t len;

    pki_key_generate(PKI_KEY_EC_P256, &key, NULL);
    pki_sign(&req, key, NULL, key, &x, NULL);
    sk_X509_push(chain, x);
    store_record_init(&rec);
    pki_chain_to_pem(chain, &rec.chain_pem, &len, NULL);
    pki_key_to_pem(key, &rec.key_pem, &len, NULL);
    store_meta_from_pem(&rec.meta, rec.chain_pem, NULL);
    rec.meta.source = strdup(source);
    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", name, NULL);
    store_put(st, &id, &rec, NULL);
    store_record_dispose(&rec);
    pki_chain_free(chain);
    EVP_PKEY_free(key);
}

static bool stored(struct store *st, const char *name)
{
    struct store_meta m;
    struct store_id id;
    int rc;

    store_meta_init(&m);
    store_id_set(&id, STORE_KIND_CERTIFICATE, "default", name, NULL);
    rc = store_get_meta(st, &id, &m, NULL);
    store_meta_dispose(&m);
    return rc == 0;
}

int main(void)
{
    char dir[] = "/tmp/aegis-test-revoker.XXXXXX";
    struct aegis_resource a = issuer_res("cf", true, true), b = issuer_res("cf", true, false),
                          c = issuer_res("self", false, false);
    struct aegis_resource *now_v[] = {&b}, *old_v[] = {&a, &c};
    struct aegis_resource_set now_set = {.v = now_v, .n = 1}, old_set = {.v = old_v, .n = 2};
    struct aegis_certificate_spec spec;
    struct store *st = NULL;
    struct revoker *rv;

    if (mkdtemp(dir) == NULL || testutil_store_open(dir, 0x42, &st, NULL) < 0) {
        printf("not ok 1 - cannot set up a store\n");
        return 1;
    }
    rv = revoker_new(st, dir);

    CHECK(revoker_find_issuer(&now_set, &old_set, "default", "cf") == &b.spec.issuer,
          "the Issuer of the new snapshot wins");
    CHECK(revoker_find_issuer(&now_set, &old_set, "default", "self") == &c.spec.issuer,
          "an Issuer deleted with the Certificate is found in the old snapshot");
    CHECK(revoker_find_issuer(&now_set, &old_set, "other", "cf") == NULL,
          "another namespace's Issuer is not it");

    memset(&spec, 0, sizeof(spec));
    spec.present = BIT(API_F_CERTIFICATE_SPEC_ISSUER_REF);
    spec.issuer_ref.name = "cf";
    put_cert(st, "app", "cloudflareOriginCA");
    CHECK_INT(revoker_certificate_removed(rv, "default", "app", &spec, &now_set, &old_set), 0,
              "revokeOnDelete false in the current Issuer: nothing to do");
    CHECK(stored(st, "app"), "the certificate stays stored");

    spec.issuer_ref.name = "self";
    CHECK_INT(revoker_certificate_removed(rv, "default", "app", &spec, &now_set, &old_set), 0,
              "a selfSigned Issuer: nothing to do");

    /* The Issuer with revokeOnDelete, deleted together with the Certificate. */
    old_set.v[1] = &a;
    a.meta.name = "cf-gone";
    spec.issuer_ref.name = "cf-gone";
    put_cert(st, "other", "ca");
    CHECK_INT(revoker_certificate_removed(rv, "default", "other", &spec, &now_set, &old_set), 0,
              "a stored certificate from another issuer is not revoked");
    CHECK(stored(st, "other"), "and stays stored");
    CHECK_INT(revoker_certificate_removed(rv, "default", "none", &spec, &now_set, &old_set), 0,
              "nothing stored: nothing to do");
    CHECK_INT(revoker_pending(rv), 0, "nothing queued");

    /* Origin CA certificate, revokeOnDelete: removed from the store at once and queued. The
     * revocation itself fails here (no secret; nothing goes to the network) and is logged. */
    put_cert(st, "app", "cloudflareOriginCA");
    CHECK_INT(revoker_certificate_removed(rv, "default", "app", &spec, &now_set, &old_set), 1,
              "revokeOnDelete: a revocation is queued");
    CHECK(!stored(st, "app"), "the certificate is removed from the store at once");
    for (int i = 0; i < 200 && revoker_pending(rv) > 0; i++) {
        struct timespec ts = {0, 10000000};

        nanosleep(&ts, NULL);
    }
    CHECK_INT(revoker_pending(rv), 0, "the revoker's thread took it (and failed: no secret)");

    revoker_free(rv);
    store_close(st);
    testutil_rm_rf(dir);
    return check_done();
}
