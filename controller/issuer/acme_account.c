/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACME accounts (acme_account.h): the process-wide table of account contexts, the sealed account
 * key in the store, newAccount with onlyReturnExisting, contact, terms of service and External
 * Account Binding (RFC 8555 sections 7.3, 7.3.1 and 7.3.4).
 */
#include "issuer/acme_account.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/log.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "issuer/acme_jws.h"
#include "secret.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)
/* The table key: namespace/issuer|server|alg|bundle digest|eab kid. */
#define ACCOUNT_KEY_MAX 2048

struct acme_account {
    struct acme_account *next;
    char key[ACCOUNT_KEY_MAX];
    pthread_mutex_t lock; /* held while registering; guards kid */
    struct acme_client *client;
    EVP_PKEY *pkey; /* set under lock once, then only read */
    char kid[ACME_ACCOUNT_KID_MAX];
};

/* The table of contexts: few (one per ACME Issuer), kept for the process's life. */
static struct {
    pthread_mutex_t lock;
    struct acme_account *head;
} accounts = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct acme_client *acme_account_client(struct acme_account *a)
{
    return a->client;
}

EVP_PKEY *acme_account_key(struct acme_account *a)
{
    return a->pkey;
}

void acme_account_kid(struct acme_account *a, char buf[ACME_ACCOUNT_KID_MAX])
{
    pthread_mutex_lock(&a->lock);
    snprintf(buf, ACME_ACCOUNT_KID_MAX, "%s", a->kid);
    pthread_mutex_unlock(&a->lock);
}

static const char *alg_name(const struct aegis_acme_issuer *spec)
{
    return spec->account_key_algorithm == AEGIS_ACME_ACCOUNT_KEY_ALGORITHM_RS256 ? "RS256"
                                                                                 : "ES256";
}

/* The CA bundle of spec.acme.caBundle (NULL: none given). */
static int read_bundle(const struct issuer_request *req, char **pem, struct issuer_result *res,
                       struct aegis_err *err)
{
    const struct aegis_pem_source *src = &req->issuer->acme.ca_bundle;
    size_t len;
    int rc;

    *pem = NULL;
    if (!HAS(&req->issuer->acme, API_F_ACME_ISSUER_CA_BUNDLE))
        return 0;
    rc = secret_read_pem_source(src, req->cert_namespace, req->secrets_dir, "spec.acme.caBundle",
                                pem, &len, err);
    if (rc < 0)
        res->reason =
            rc == -AEGIS_E_NOTFOUND ? ISSUER_REASON_SECRET_NOT_FOUND : ISSUER_REASON_INVALID_ISSUER;
    return rc;
}

/* Finds or adds the context for req (not yet registered). */
static int context(const struct issuer_request *req, struct acme_account **out,
                   struct issuer_result *res, struct aegis_err *err)
{
    const struct aegis_acme_issuer *spec = &req->issuer->acme;
    unsigned char digest[SHA256_DIGEST_LENGTH] = {0};
    char key[ACCOUNT_KEY_MAX], hex[2 * SHA256_DIGEST_LENGTH + 1];
    char *bundle = NULL;
    struct acme_account *a;
    int rc = read_bundle(req, &bundle, res, err);

    if (rc < 0)
        return rc;
    if (bundle != NULL)
        SHA256((const unsigned char *)bundle, strlen(bundle), digest);
    for (size_t i = 0; i < sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    snprintf(key, sizeof(key), "%s/%s|%s|%s|%s|%s", req->cert_namespace, req->issuer_name,
             spec->server, alg_name(spec), hex,
             spec->external_account_binding.key_id != NULL ? spec->external_account_binding.key_id
                                                           : "");
    pthread_mutex_lock(&accounts.lock);
    for (a = accounts.head; a != NULL; a = a->next) {
        if (strcmp(a->key, key) == 0)
            break;
    }
    if (a == NULL) {
        a = aegis_calloc(1, sizeof(*a));
        snprintf(a->key, sizeof(a->key), "%s", key);
        pthread_mutex_init(&a->lock, NULL);
        rc = acme_client_new(spec->server, bundle, &a->client, err);
        if (rc < 0) {
            pthread_mutex_destroy(&a->lock);
            free(a);
            a = NULL;
            res->reason = ISSUER_REASON_INVALID_ISSUER;
        } else {
            a->next = accounts.head;
            accounts.head = a;
        }
    }
    pthread_mutex_unlock(&accounts.lock);
    pki_secret_free_str(bundle);
    *out = a;
    return rc;
}

/* The stored account key and URL, when they are for this server and algorithm. a->lock held. */
static void load_stored(struct acme_account *a, const struct issuer_request *req,
                        const struct store_id *id)
{
    const struct aegis_acme_issuer *spec = &req->issuer->acme;
    struct store_record rec;
    struct aegis_err ignored;
    EVP_PKEY *k = NULL;

    if (store_get(req->store, id, &rec, &ignored) < 0)
        return;
    if (rec.key_pem != NULL && rec.meta.extra != NULL &&
        strcmp(json_string_value(json_object_get(rec.meta.extra, "server")) ?: "", spec->server) ==
            0 &&
        pki_key_from_pem(rec.key_pem, strlen(rec.key_pem), &k, &ignored) == 0) {
        const char *alg = acme_jws_alg(k);

        if (alg != NULL && strcmp(alg, alg_name(spec)) == 0) {
            a->pkey = k;
            k = NULL;
            snprintf(a->kid, sizeof(a->kid), "%s",
                     json_string_value(json_object_get(rec.meta.extra, "kid")) ?: "");
        }
    }
    EVP_PKEY_free(k);
    store_record_dispose(&rec);
}

/* Stores a->pkey with the server and a->kid. a->lock held. */
static int save(struct acme_account *a, const struct issuer_request *req, const struct store_id *id,
                struct aegis_err *err)
{
    struct store_record rec;
    size_t len;
    int rc;

    store_record_init(&rec);
    rc = pki_key_to_pem(a->pkey, &rec.key_pem, &len, err);
    if (rc == 0) {
        rec.meta.source = aegis_strdup("acme");
        rec.meta.extra = json_pack("{s:s, s:s}", "server", req->issuer->acme.server, "kid", a->kid);
        rc = store_put(req->store, id, &rec, err);
    }
    store_record_dispose(&rec);
    return rc;
}

/* The EAB member of the newAccount payload, when spec.acme.externalAccountBinding is given. */
static int eab(const struct issuer_request *req, struct acme_account *a, const char *url,
               json_t **out, struct issuer_result *res, struct aegis_err *err)
{
    const struct aegis_external_account_binding *b = &req->issuer->acme.external_account_binding;
    unsigned char *mac = NULL;
    size_t mac_len = 0;
    char *text = NULL;
    size_t text_len = 0;
    int rc;

    *out = NULL;
    if (b->key_id == NULL) {
        if (acme_client_eab_required(a->client)) {
            res->reason = ISSUER_REASON_INVALID_ISSUER;
            return aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.externalAccountBinding",
                                 "the CA requires External Account Binding: give keyID and "
                                 "hmacKeySecretRef from your CA account");
        }
        return 0;
    }
    rc = secret_read(req->secrets_dir, req->cert_namespace, b->hmac_key_secret_ref.name,
                     b->hmac_key_secret_ref.key, &text, &text_len, err);
    if (rc < 0) {
        res->reason =
            rc == -AEGIS_E_NOTFOUND ? ISSUER_REASON_SECRET_NOT_FOUND : ISSUER_REASON_INVALID_ISSUER;
        return rc;
    }
    rc = acme_jws_b64url_decode(text, &mac, &mac_len, err);
    if (rc < 0) {
        res->reason = ISSUER_REASON_INVALID_ISSUER;
        rc = aegis_err_set(err, rc, "spec.acme.externalAccountBinding.hmacKeySecretRef",
                           "the EAB HMAC key in Secret %s key %s is not base64url: copy it as "
                           "the CA shows it",
                           b->hmac_key_secret_ref.name, b->hmac_key_secret_ref.key);
    }
    if (rc == 0)
        rc = acme_jws_eab(b->key_id, mac, mac_len, a->pkey, url, out, err);
    if (rc < 0 && res->reason == ISSUER_REASON_PENDING)
        res->reason = ISSUER_REASON_SIGNING_FAILED;
    pki_secret_free((char *)mac, mac_len);
    pki_secret_free(text, text_len);
    return rc;
}

/* newAccount (RFC 8555 7.3), or only a lookup with only_existing. a->lock held. */
static int new_account(struct acme_account *a, const struct issuer_request *req, bool only_existing,
                       struct acme_response *resp, struct issuer_result *res, struct aegis_err *err)
{
    const struct aegis_acme_issuer *spec = &req->issuer->acme;
    json_t *payload = json_object(), *binding = NULL;
    const char *url;
    char *text = NULL;
    int rc = acme_client_dir_url(a->client, "newAccount", req->now, &url, err);

    if (rc < 0) {
        res->reason = ISSUER_REASON_REJECTED;
        goto out;
    }
    if (only_existing) {
        json_object_set_new(payload, "onlyReturnExisting", json_true());
    } else {
        json_object_set_new(payload, "termsOfServiceAgreed", json_true());
        if (spec->email != NULL && spec->email[0] != '\0')
            json_object_set_new(payload, "contact", json_pack("[s+]", "mailto:", spec->email));
        rc = eab(req, a, url, &binding, res, err);
        if (rc < 0)
            goto out;
        if (binding != NULL)
            json_object_set_new(payload, "externalAccountBinding", binding);
    }
    text = json_dumps(payload, JSON_COMPACT);
    rc = acme_client_post(a->client, a->pkey, NULL, url, text, "newAccount", NULL, req->now, resp,
                          err);
    if (rc == 0 && resp->location == NULL)
        rc = aegis_err_set(err, -AEGIS_E_STATE, "acme",
                           "the CA answered newAccount without the account URL (Location)");
    if (rc < 0 && res->reason == ISSUER_REASON_PENDING)
        res->reason = ISSUER_REASON_REJECTED;
out:
    json_decref(payload);
    free(text);
    return rc;
}

/* Makes sure a has a key and a registered account. a->lock held. */
static int ensure(struct acme_account *a, const struct issuer_request *req,
                  struct issuer_result *res, struct aegis_err *err)
{
    struct acme_response resp;
    struct store_id id;
    bool stored_key;
    int rc = store_id_set(&id, STORE_KIND_ACME_ACCOUNT, req->cert_namespace, req->issuer_name, err);

    if (rc < 0) {
        res->reason = ISSUER_REASON_INVALID_ISSUER;
        return rc;
    }
    if (a->pkey == NULL)
        load_stored(a, req, &id);
    if (a->kid[0] != '\0')
        return 0;
    stored_key = a->pkey != NULL;
    if (!stored_key) {
        rc = pki_key_generate(req->issuer->acme.account_key_algorithm ==
                                      AEGIS_ACME_ACCOUNT_KEY_ALGORITHM_RS256
                                  ? PKI_KEY_RSA_2048
                                  : PKI_KEY_EC_P256,
                              &a->pkey, err);
        /* The key is stored before the CA sees it: a crash after registering finds it again
         * (onlyReturnExisting) instead of leaving an account nobody holds the key of. */
        if (rc == 0)
            rc = save(a, req, &id, err);
        if (rc < 0) {
            res->reason = ISSUER_REASON_STORE_ERROR;
            EVP_PKEY_free(a->pkey);
            a->pkey = NULL;
            return rc;
        }
    }
    acme_response_init(&resp);
    rc = -AEGIS_E_NOTFOUND;
    if (stored_key) {
        struct aegis_err lookup = {0};

        rc = new_account(a, req, true, &resp, res, &lookup);
        if (rc < 0 && strcmp(resp.problem.type, "accountDoesNotExist") != 0) {
            *err = lookup;
            goto out;
        }
        res->reason = ISSUER_REASON_PENDING;
    }
    if (rc < 0) {
        rc = new_account(a, req, false, &resp, res, err);
        if (rc < 0)
            goto out;
        aegis_log(AEGIS_LOG_INFO, "acme", "Issuer %s/%s: account %s registered at %s",
                  req->cert_namespace, req->issuer_name, resp.location, req->issuer->acme.server);
    }
    snprintf(a->kid, sizeof(a->kid), "%s", resp.location);
    rc = save(a, req, &id, err);
    if (rc < 0)
        res->reason = ISSUER_REASON_STORE_ERROR;
out:
    if (rc < 0 && res->reason == ISSUER_REASON_PENDING)
        res->reason = ISSUER_REASON_REJECTED;
    acme_response_dispose(&resp);
    return rc;
}

int acme_account_get(const struct issuer_request *req, struct acme_account **out,
                     struct issuer_result *res, struct aegis_err *err)
{
    struct acme_account *a = NULL;
    int rc = context(req, &a, res, err);

    *out = NULL;
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->lock);
    rc = ensure(a, req, res, err);
    pthread_mutex_unlock(&a->lock);
    if (rc == 0)
        *out = a;
    return rc;
}

void acme_account_forget(struct acme_account *a)
{
    pthread_mutex_lock(&a->lock);
    /* The key stays: the next acme_account_get looks it up, then registers it again. */
    a->kid[0] = '\0';
    pthread_mutex_unlock(&a->lock);
}
