/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The acme issuer (acme.h): the order state machine of RFC 8555 section 7.4 over issuer.h's
 * PENDING contract. Each issue() call loads the persisted order (or makes one), reads its state
 * from the CA and takes the next steps - answer authorizations, finalize, download - until it is
 * done, it must wait longer than ACME_POLL_BUDGET_MS, or it fails.
 */
#include "issuer/acme.h"

#include <errno.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "aegis/log.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "issuer/acme_account.h"
#include "issuer/acme_client.h"
#include "issuer/acme_jws.h"
#include "issuer/acme_solver.h"
#include "issuer/dns01.h"
#include "issuer/dns01_propagation.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)
#define WHERE "acme"
#define PEM_CHAIN "application/pem-certificate-chain"
/* "_acme-challenge." + a name + "." */
#define FQDN_MAX 300

/* One issue() call. */
struct run {
    const struct issuer_request *req;
    struct issuer_result *res;
    struct acme_account *acct;
    char kid[ACME_ACCOUNT_KID_MAX];
    struct store_id id;
    json_t *st;    /* the order's persisted state (meta.extra); NULL: no order */
    EVP_PKEY *key; /* the Certificate's new key, persisted with the order */
    char digest[2 * SHA256_DIGEST_LENGTH + 1];
    int64_t deadline_ms; /* polling budget (monotonic) */
    int64_t retry_at;    /* the latest Retry-After seen */
    char wait_msg[256];  /* what a STEP_WAIT_DNS waits for */
    /* The order as the CA's last answer to newOrder or finalize showed it (a new reference), so
     * that the next round reads it without asking again; NULL: ask. */
    json_t *order;
    int64_t poll_ms; /* the next poll step; grows from ACME_POLL_FIRST_MS to ACME_POLL_STEP_MS */
};

/* ---- requests ------------------------------------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int post(struct run *r, const char *url, const char *payload, const char *label,
                const char *accept, struct acme_response *resp, struct aegis_err *err)
{
    int rc = acme_client_post(acme_account_client(r->acct), acme_account_key(r->acct), r->kid, url,
                              payload, label, accept, r->req->now, resp, err);

    if (resp->retry_after > r->retry_at)
        r->retry_at = resp->retry_after;
    if (rc < 0 && strcmp(resp->problem.type, "accountDoesNotExist") == 0)
        acme_account_forget(r->acct);
    return rc;
}

/* POST-as-GET of a JSON object into *out (a new reference). */
static int get_json(struct run *r, const char *url, const char *label, json_t **out,
                    struct acme_response *resp, struct aegis_err *err)
{
    int rc = post(r, url, NULL, label, NULL, resp, err);

    *out = NULL;
    if (rc == 0 && !json_is_object(resp->json))
        rc = aegis_err_set(err, -AEGIS_E_STATE, WHERE, "the CA's answer to %s is not a JSON object",
                           label);
    if (rc == 0)
        *out = json_incref(resp->json);
    return rc;
}

static const char *str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s != NULL ? s : "";
}

/* ---- the persisted order -------------------------------------------------------------------- */

/* Identifies what was asked: a changed spec or Issuer starts a new order. */
static void request_digest(const struct issuer_request *req, char out[2 * SHA256_DIGEST_LENGTH + 1])
{
    const struct aegis_certificate_spec *c = req->cert;
    unsigned char d[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char num[64];

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, req->issuer->acme.server, strlen(req->issuer->acme.server) + 1);
    EVP_DigestUpdate(ctx, req->issuer_name, strlen(req->issuer_name) + 1);
    for (size_t i = 0; i < c->dns_names.n; i++)
        EVP_DigestUpdate(ctx, c->dns_names.v[i], strlen(c->dns_names.v[i]) + 1);
    snprintf(num, sizeof(num), "|%d|%lld|%d", (int)c->private_key.algorithm,
             (long long)c->private_key.size, req->key != NULL);
    EVP_DigestUpdate(ctx, num, strlen(num));
    EVP_DigestFinal_ex(ctx, d, NULL);
    EVP_MD_CTX_free(ctx);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int save(struct run *r, struct aegis_err *err)
{
    struct store_record rec;
    size_t len;
    int rc;

    store_record_init(&rec);
    rc = pki_key_to_pem(r->key, &rec.key_pem, &len, err);
    if (rc == 0) {
        rec.meta.source = aegis_strdup("acme");
        rec.meta.extra = json_deep_copy(r->st);
        rec.meta.updated_at = r->req->now;
        rc = store_put(r->req->store, &r->id, &rec, err);
    }
    store_record_dispose(&rec);
    if (rc < 0)
        r->res->reason = ISSUER_REASON_STORE_ERROR;
    return rc;
}

/* Removes what was published for the order's challenges (failures are logged only). */
static void cleanup_challenges(const struct issuer_request *req, const json_t *st)
{
    const json_t *p;
    size_t i;

    json_array_foreach(json_object_get(st, "presented"), i, p)
    {
        const char *type = str(p, "type");

        if (strcmp(type, "http-01") == 0 && req->http01 != NULL) {
            req->http01->cleanup(req->http01->ctx, str(p, "token"));
        } else if (strcmp(type, "dns-01") == 0) {
            size_t idx = (size_t)json_integer_value(json_object_get(p, "solver"));
            const struct dns01_provider_ops *ops = NULL;
            struct aegis_err e = {0};

            if (idx >= req->issuer->acme.solvers.n)
                continue;
            if (dns01_for_spec(&req->issuer->acme.solvers.v[idx].dns01, &ops, &e) == 0) {
                struct dns01_record rec = {&req->issuer->acme.solvers.v[idx].dns01,
                                           req->cert_namespace, req->secrets_dir, str(p, "fqdn"),
                                           str(p, "value")};

                if (ops->cleanup(&rec, &e) < 0)
                    aegis_log(AEGIS_LOG_WARN, WHERE, "Certificate %s/%s: DNS-01 cleanup: %s",
                              req->cert_namespace, req->cert_name, e.msg);
            }
        }
    }
}

/* Ends the order: its challenges cleaned up, its record deleted. */
static void drop(struct run *r)
{
    struct aegis_err ignored;

    if (r->st == NULL)
        return;
    cleanup_challenges(r->req, r->st);
    store_delete(r->req->store, &r->id, &ignored);
    json_decref(r->st);
    r->st = NULL;
}

/* Loads the persisted order when it is for this request; drops a stale one. */
static int load(struct run *r, struct aegis_err *err)
{
    struct store_record rec;
    struct aegis_err e = {0};
    int rc = store_get(r->req->store, &r->id, &rec, &e);

    if (rc == -AEGIS_E_NOTFOUND)
        return 0;
    if (rc < 0) {
        r->res->reason = ISSUER_REASON_STORE_ERROR;
        *err = e;
        return rc;
    }
    r->st = rec.meta.extra != NULL ? json_incref(rec.meta.extra) : json_object();
    if (strcmp(str(r->st, "request"), r->digest) != 0 ||
        json_integer_value(json_object_get(r->st, "created")) + ACME_ORDER_MAX_AGE_S <
            r->req->now ||
        rec.key_pem == NULL ||
        pki_key_from_pem(rec.key_pem, strlen(rec.key_pem), &r->key, &e) < 0) {
        aegis_log(AEGIS_LOG_INFO, WHERE,
                  "Certificate %s/%s: the order in flight is for another "
                  "request or too old; a new one is made",
                  r->req->cert_namespace, r->req->cert_name);
        drop(r);
    }
    store_record_dispose(&rec);
    return 0;
}

/* newOrder for every dnsName, persisted with the new key before anything else is done. */
static int new_order(struct run *r, struct aegis_err *err)
{
    const struct aegis_certificate_spec *c = r->req->cert;
    json_t *ids = json_array(), *payload;
    struct acme_response resp;
    const char *url;
    char *text;
    int rc;

    rc = acme_client_dir_url(acme_account_client(r->acct), "newOrder", r->req->now, &url, err);
    if (rc < 0) {
        json_decref(ids);
        return rc;
    }
    EVP_PKEY_free(r->key);
    r->key = NULL;
    rc = issuer__leaf_key(r->req, &r->key, r->res, err);
    if (rc < 0) {
        json_decref(ids);
        return rc;
    }
    for (size_t i = 0; i < c->dns_names.n; i++)
        json_array_append_new(ids,
                              json_pack("{s:s, s:s}", "type", "dns", "value", c->dns_names.v[i]));
    payload = json_pack("{s:o}", "identifiers", ids);
    text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    acme_response_init(&resp);
    rc = post(r, url, text, "newOrder", NULL, &resp, err);
    free(text);
    if (rc == 0 && (resp.location == NULL || !json_is_object(resp.json) ||
                    !json_is_array(json_object_get(resp.json, "authorizations")) ||
                    json_array_size(json_object_get(resp.json, "authorizations")) > ACME_AUTHZ_MAX))
        rc = aegis_err_set(err, -AEGIS_E_STATE, WHERE,
                           "the CA's answer to newOrder lacks the order URL or authorizations");
    if (rc == 0) {
        r->st = json_pack("{s:s, s:s, s:s, s:O, s:[], s:[], s:[], s:I, s:i}", "request", r->digest,
                          "url", resp.location, "finalize", str(resp.json, "finalize"),
                          "authorizations", json_object_get(resp.json, "authorizations"),
                          "presented", "challenged", "answered", "created", (json_int_t)r->req->now,
                          "transportFailures", 0);
        json_decref(r->order);
        r->order = json_incref(resp.json);
        aegis_log(AEGIS_LOG_INFO, WHERE, "Certificate %s/%s: order %s opened",
                  r->req->cert_namespace, r->req->cert_name, resp.location);
        rc = save(r, err);
    }
    acme_response_dispose(&resp);
    return rc;
}

/* ---- authorizations ------------------------------------------------------------------------- */

static bool in_list(const json_t *arr, const char *s)
{
    const json_t *v;
    size_t i;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static const json_t *presented(const json_t *st, const char *authz)
{
    const json_t *p;
    size_t i;

    json_array_foreach(json_object_get(st, "presented"), i, p)
    {
        if (strcmp(str(p, "authz"), authz) == 0)
            return p;
    }
    return NULL;
}

/* The CA's error of a failed authorization, in words. */
static void authz_error(const json_t *authz, const char *name, struct aegis_err *err)
{
    const json_t *ch;
    size_t i;

    json_array_foreach(json_object_get(authz, "challenges"), i, ch)
    {
        const json_t *e = json_object_get(ch, "error");

        if (json_is_object(e)) {
            struct acme_problem p;

            acme_problem_parse(e, &p);
            aegis_err_set(err, -AEGIS_E_STATE, WHERE, "the CA could not validate %s with %s: %s",
                          name, str(ch, "type"), p.message);
            return;
        }
    }
    aegis_err_set(err, -AEGIS_E_STATE, WHERE, "the authorization of %s is %s", name,
                  str(authz, "status"));
}

/* Presents the challenge's answer (once per order for DNS-01; HTTP-01 every time, idempotent:
 * the challenge set lives in memory and a restarted controller must publish it again). */
static int present(struct run *r, const char *authz_url, size_t solver, const char *type,
                   const char *token, const char *keyauth, const char *dns_name,
                   struct aegis_err *err)
{
    const struct aegis_acme_solver *s = &r->req->issuer->acme.solvers.v[solver];
    const json_t *p = presented(r->st, authz_url);
    char fqdn[FQDN_MAX];
    char *value;
    int rc;

    if (strcmp(type, "http-01") == 0) {
        if (r->req->http01 == NULL) {
            r->res->reason = ISSUER_REASON_INVALID_ISSUER;
            return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "spec.acme.solvers[].http01",
                                 "no dataplane answers HTTP-01 challenges here: use a dns01 "
                                 "solver");
        }
        rc = r->req->http01->present(r->req->http01->ctx, token, keyauth, err);
        if (rc == 0 && p == NULL) {
            json_array_append_new(json_object_get(r->st, "presented"),
                                  json_pack("{s:s, s:s, s:s, s:I}", "authz", authz_url, "type",
                                            type, "token", token, "solver", (json_int_t)solver));
            rc = save(r, err);
        }
        return rc;
    }
    if (p != NULL)
        return 0;
    {
        const struct dns01_provider_ops *ops = NULL;
        struct dns01_record rec;

        rc = dns01_for_spec(&s->dns01, &ops, err);
        if (rc < 0) {
            r->res->reason = ISSUER_REASON_INVALID_ISSUER;
            return rc;
        }
        snprintf(fqdn, sizeof(fqdn), "_acme-challenge.%s.", dns_name);
        value = acme_jws_dns01_value(keyauth);
        rec = (struct dns01_record){&s->dns01, r->req->cert_namespace, r->req->secrets_dir, fqdn,
                                    value};
        rc = ops->present(&rec, err);
        if (rc == 0) {
            json_array_append_new(json_object_get(r->st, "presented"),
                                  json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "authz", authz_url,
                                            "type", type, "fqdn", fqdn, "value", value, "solver",
                                            (json_int_t)solver, "at", (json_int_t)r->req->now));
            rc = save(r, err);
        } else {
            r->res->reason = ISSUER_REASON_REJECTED;
        }
        free(value);
    }
    return rc;
}

enum step { STEP_DONE, STEP_WAIT, STEP_WAIT_DNS, STEP_WAIT_PUBLISH };

/*
 * DNS-01: whether the CA may be told to validate - the record is visible at the solver's
 * nameservers, or propagationTimeout (0: no check) has passed since it was presented, when the
 * CA is asked anyway (its resolvers may see what ours do not, e.g. split-horizon DNS). Otherwise
 * r->wait_msg says what is awaited. One query per call: the order comes back PENDING.
 */
static bool dns_visible(struct run *r, const char *authz_url, size_t solver)
{
    const struct aegis_acme_solver_dns01 *d = &r->req->issuer->acme.solvers.v[solver].dns01;
    const json_t *p = presented(r->st, authz_url);
    int64_t since = r->req->now - json_integer_value(json_object_get(p, "at"));
    int64_t limit = d->propagation_timeout_ms / 1000;
    const char *at = d->nameservers.n > 0 ? d->nameservers.v[0] : "the system's resolvers";
    struct aegis_err e = {0};
    bool visible = false;

    if (limit <= 0 || p == NULL)
        return true;
    if (dns01_txt_visible(d, str(p, "fqdn"), str(p, "value"), &visible, &e) == 0 && visible)
        return true;
    if (since >= limit) {
        aegis_log(AEGIS_LOG_WARN, WHERE,
                  "Certificate %s/%s: the TXT record %s is not visible at %s after %lld s "
                  "(propagationTimeout); asking the CA to validate anyway",
                  r->req->cert_namespace, r->req->cert_name, str(p, "fqdn"), at, (long long)since);
        return true;
    }
    snprintf(r->wait_msg, sizeof(r->wait_msg),
             "waiting for the TXT record %.100s to be visible at %.64s (%lld s of %lld s)%s%.60s",
             str(p, "fqdn"), at, (long long)since, (long long)limit, e.msg[0] != '\0' ? ": " : "",
             e.msg);
    return false;
}

/* One pending authorization: answer its challenge. */
static int authz_step(struct run *r, const char *url, enum step *step, struct aegis_err *err)
{
    struct acme_response resp;
    json_t *authz = NULL;
    const json_t *ident, *ch, *chosen = NULL;
    char name[FQDN_MAX], *keyauth = NULL;
    const char *status, *type;
    size_t solver = 0, i;
    int rc;

    acme_response_init(&resp);
    rc = get_json(r, url, "authz", &authz, &resp, err);
    if (rc < 0)
        goto out;
    status = str(authz, "status");
    ident = json_object_get(authz, "identifier");
    snprintf(name, sizeof(name), "%s%s",
             json_is_true(json_object_get(authz, "wildcard")) ? "*." : "", str(ident, "value"));
    if (strcmp(status, "valid") == 0)
        goto out;
    if (strcmp(status, "pending") != 0) {
        authz_error(authz, name, err);
        rc = -AEGIS_E_STATE;
        r->res->reason = ISSUER_REASON_REJECTED;
        goto out;
    }
    rc = acme_solver_select(&r->req->issuer->acme, name, &solver, err);
    if (rc < 0) {
        r->res->reason = ISSUER_REASON_INVALID_ISSUER;
        goto out;
    }
    type = HAS(&r->req->issuer->acme.solvers.v[solver], API_F_ACME_SOLVER_DNS01) ? "dns-01"
                                                                                 : "http-01";
    json_array_foreach(json_object_get(authz, "challenges"), i, ch)
    {
        if (strcmp(str(ch, "type"), type) == 0)
            chosen = ch;
    }
    if (chosen == NULL) {
        r->res->reason = ISSUER_REASON_REJECTED;
        rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "spec.acme.solvers",
                           "the CA offers no %s challenge for %s: choose another solver for it",
                           type, name);
        goto out;
    }
    rc = acme_jws_key_authorization(str(chosen, "token"), acme_account_key(r->acct), &keyauth, err);
    if (rc == 0)
        rc = present(r, url, solver, type, str(chosen, "token"), keyauth, str(ident, "value"), err);
    if (rc < 0)
        goto out;
    if (strcmp(type, "http-01") == 0) {
        /* The loop renders and pushes a new token at once (challenges.h wakes it): waiting
         * here for the acknowledgement, within the call's budget, saves the CA a second look
         * at the order and the authorization. */
        while (!r->req->http01->published(r->req->http01->ctx, str(chosen, "token")) &&
               aegis_monotonic_ms() + ACME_PUBLISH_STEP_MS < r->deadline_ms)
            sleep_ms(ACME_PUBLISH_STEP_MS);
        if (!r->req->http01->published(r->req->http01->ctx, str(chosen, "token"))) {
            *step = STEP_WAIT_PUBLISH;
            goto out;
        }
    }
    if (strcmp(str(chosen, "status"), "pending") == 0 &&
        !in_list(json_object_get(r->st, "challenged"), str(chosen, "url"))) {
        struct acme_response cr;

        if (strcmp(type, "dns-01") == 0 && !dns_visible(r, url, solver)) {
            *step = STEP_WAIT_DNS;
            goto out;
        }

        acme_response_init(&cr);
        rc = post(r, str(chosen, "url"), "{}", "challenge", NULL, &cr, err);
        acme_response_dispose(&cr);
        if (rc < 0)
            goto out;
        json_array_append_new(json_object_get(r->st, "challenged"),
                              json_string(str(chosen, "url")));
        if (json_is_array(json_object_get(r->st, "answered")))
            json_array_append_new(json_object_get(r->st, "answered"), json_string(url));
        rc = save(r, err);
    }
    if (*step == STEP_DONE)
        *step = STEP_WAIT;
out:
    free(keyauth);
    json_decref(authz);
    acme_response_dispose(&resp);
    return rc;
}

/*
 * An answered HTTP-01 challenge stays published until the CA decided it: the challenge set lives
 * in memory, so a restarted controller must present the token again (idempotent otherwise).
 */
static int republish(struct run *r, const char *authz_url, struct aegis_err *err)
{
    const json_t *p = presented(r->st, authz_url);
    char *keyauth = NULL;
    int rc;

    if (p == NULL || strcmp(str(p, "type"), "http-01") != 0 || r->req->http01 == NULL)
        return 0;
    rc = acme_jws_key_authorization(str(p, "token"), acme_account_key(r->acct), &keyauth, err);
    if (rc == 0)
        rc = r->req->http01->present(r->req->http01->ctx, str(p, "token"), keyauth, err);
    free(keyauth);
    return rc;
}

/* Why an invalid order failed: the first failed authorization's error. */
static void order_error(struct run *r, const json_t *order, struct aegis_err *err)
{
    const json_t *u;
    size_t i;

    if (json_is_object(json_object_get(order, "error"))) {
        struct acme_problem p;

        acme_problem_parse(json_object_get(order, "error"), &p);
        aegis_err_set(err, -AEGIS_E_STATE, WHERE, "the CA refused the order: %s", p.message);
        return;
    }
    json_array_foreach(json_object_get(r->st, "authorizations"), i, u)
    {
        struct acme_response resp;
        struct aegis_err e = {0};
        json_t *authz = NULL;

        acme_response_init(&resp);
        if (get_json(r, json_string_value(u), "authz", &authz, &resp, &e) == 0 &&
            strcmp(str(authz, "status"), "invalid") == 0) {
            authz_error(authz, str(json_object_get(authz, "identifier"), "value"), err);
            json_decref(authz);
            acme_response_dispose(&resp);
            return;
        }
        json_decref(authz);
        acme_response_dispose(&resp);
    }
    aegis_err_set(err, -AEGIS_E_STATE, WHERE, "the CA marked the order invalid without saying why");
}

/* ---- finalize and download ------------------------------------------------------------------ */

static int finalize(struct run *r, struct aegis_err *err)
{
    const struct aegis_certificate_spec *c = r->req->cert;
    struct pki_cert_req cr = {0};
    struct acme_response resp;
    X509_REQ *csr = NULL;
    unsigned char *der = NULL;
    char *b64 = NULL, *text = NULL;
    int len, rc;

    cr.dns = (struct pki_strs){c->dns_names.v, c->dns_names.n};
    /* A common name, as CAs still copy one from the CSR; only when it fits (RFC 5280: 64). */
    if (c->dns_names.n > 0 && strlen(c->dns_names.v[0]) <= 64)
        cr.common_name = c->dns_names.v[0];
    rc = pki_csr_make(&cr, r->key, &csr, err);
    if (rc < 0) {
        r->res->reason = ISSUER_REASON_SIGNING_FAILED;
        return rc;
    }
    len = i2d_X509_REQ(csr, &der);
    X509_REQ_free(csr);
    if (len <= 0) {
        r->res->reason = ISSUER_REASON_SIGNING_FAILED;
        return aegis_err_set(err, -AEGIS_E_CRYPTO, WHERE, "cannot encode the CSR");
    }
    b64 = acme_jws_b64url(der, (size_t)len);
    OPENSSL_free(der);
    text = aegis_asprintf("{\"csr\":\"%s\"}", b64);
    acme_response_init(&resp);
    rc = post(r, str(r->st, "finalize"), text, "finalize", NULL, &resp, err);
    /* The answer is the order (RFC 8555 7.4): often already valid, else processing. */
    if (rc == 0 && json_is_object(resp.json) &&
        json_is_string(json_object_get(resp.json, "status"))) {
        json_decref(r->order);
        r->order = json_incref(resp.json);
    }
    acme_response_dispose(&resp);
    free(b64);
    free(text);
    return rc;
}

/* The common name of the issuer of the chain's last certificate (the root it leads to). */
static void top_issuer_cn(STACK_OF(X509) * chain, char *out, size_t size)
{
    X509 *top = sk_X509_value(chain, sk_X509_num(chain) - 1);

    out[0] = '\0';
    if (top == NULL ||
        X509_NAME_get_text_by_NID(X509_get_issuer_name(top), NID_commonName, out, (int)size) < 0)
        out[0] = '\0';
}

static int fetch_chain(struct run *r, const char *url, STACK_OF(X509) * *chain,
                       struct acme_response *resp, struct aegis_err *err)
{
    int rc = post(r, url, NULL, "certificate", PEM_CHAIN, resp, err);

    *chain = NULL;
    if (rc == 0)
        rc = pki_chain_from_pem(resp->body, resp->body_len, chain, err);
    if (rc == 0 && sk_X509_num(*chain) < 1)
        rc = aegis_err_set(err, -AEGIS_E_STATE, WHERE, "the CA's certificate download is empty");
    return rc;
}

static int download(struct run *r, const char *url, struct aegis_err *err)
{
    const char *preferred = r->req->issuer->acme.preferred_chain;
    struct acme_response resp;
    STACK_OF(X509) *chain = NULL;
    char cn[256];
    int rc;

    acme_response_init(&resp);
    rc = fetch_chain(r, url, &chain, &resp, err);
    if (rc < 0)
        goto out;
    top_issuer_cn(chain, cn, sizeof(cn));
    if (preferred != NULL && preferred[0] != '\0' && strcmp(cn, preferred) != 0) {
        for (size_t i = 0; i < resp.n_alternates; i++) {
            struct acme_response alt;
            STACK_OF(X509) *other = NULL;
            struct aegis_err e = {0};

            acme_response_init(&alt);
            if (fetch_chain(r, resp.alternates[i], &other, &alt, &e) == 0) {
                top_issuer_cn(other, cn, sizeof(cn));
                if (strcmp(cn, preferred) == 0) {
                    pki_chain_free(chain);
                    chain = other;
                    other = NULL;
                    i = resp.n_alternates;
                }
            }
            pki_chain_free(other);
            acme_response_dispose(&alt);
        }
    }
    rc = pki_key_matches_cert(sk_X509_value(chain, 0), r->key, err);
    if (rc < 0)
        goto out;
    r->res->chain = chain;
    chain = NULL;
    if (EVP_PKEY_up_ref(r->key) == 1)
        r->res->key = r->key;
    r->res->status = ISSUER_DONE;
    r->res->reason = ISSUER_REASON_ISSUED;
out:
    pki_chain_free(chain);
    acme_response_dispose(&resp);
    if (rc < 0)
        r->res->reason = ISSUER_REASON_REJECTED;
    return rc;
}

/* ---- the state machine ---------------------------------------------------------------------- */

static void pending(struct run *r, int64_t at, const char *what)
{
    size_t n = strnlen(what, sizeof(r->res->message) - 1);

    r->res->status = ISSUER_PENDING;
    r->res->reason = ISSUER_REASON_PENDING;
    r->res->retry_at = at > r->req->now ? at : r->req->now + ACME_RETRY_S;
    /* A CA's message may be longer than the status message: cut, as intended. */
    memcpy(r->res->message, what, n);
    r->res->message[n] = '\0';
}

/* Waits a poll step when the budget allows; else answers PENDING. Returns true to go on. */
static bool wait_or_pending(struct run *r, const char *what)
{
    /* A CA usually decides within milliseconds: look again soon, then less often. */
    int64_t step = r->poll_ms < ACME_POLL_FIRST_MS ? ACME_POLL_FIRST_MS : r->poll_ms;

    if (r->retry_at <= r->req->now && aegis_monotonic_ms() + step < r->deadline_ms) {
        sleep_ms(step);
        r->poll_ms = step * 2 < ACME_POLL_STEP_MS ? step * 2 : ACME_POLL_STEP_MS;
        return true;
    }
    pending(r, r->retry_at > r->req->now ? r->retry_at : r->req->now + ACME_RETRY_S, what);
    return false;
}

/* Steps the order until it is done, must wait, or fails. */
static int advance(struct run *r, struct aegis_err *err)
{
    for (int round = 0; round < ACME_ROUNDS_MAX; round++) {
        struct acme_response resp;
        json_t *order = NULL;
        const char *status;
        int rc = 0;

        if (r->order != NULL) {
            order = r->order;
            r->order = NULL;
        } else {
            acme_response_init(&resp);
            rc = get_json(r, str(r->st, "url"), "order", &order, &resp, err);
            acme_response_dispose(&resp);
            if (rc < 0)
                return rc;
        }
        status = str(order, "status");
        if (strcmp(status, "pending") == 0) {
            enum step step = STEP_DONE;
            const json_t *u;
            size_t i;

            json_array_foreach(json_object_get(r->st, "authorizations"), i, u)
            {
                enum step s = STEP_WAIT;

                /* An authorization whose challenge was posted needs no second look: the order
                 * turns ready or invalid when it is decided. */
                if (in_list(json_object_get(r->st, "answered"), json_string_value(u))) {
                    rc = republish(r, json_string_value(u), err);
                    if (rc < 0)
                        break;
                    if (s > step)
                        step = s;
                    continue;
                }
                s = STEP_DONE;
                rc = authz_step(r, json_string_value(u), &s, err);
                if (rc < 0)
                    break;
                if (s > step)
                    step = s;
            }
            json_decref(order);
            if (rc < 0)
                return rc;
            if (step == STEP_WAIT_PUBLISH) {
                /* The dataplanes serve the token only after the loop rendered and pushed it. */
                pending(r, r->req->now + ACME_RETRY_S,
                        "waiting for the dataplanes to serve the HTTP-01 token");
                return 0;
            }
            if (step == STEP_WAIT_DNS) {
                pending(r, r->req->now + DNS01_PROPAGATION_POLL_S, r->wait_msg);
                return 0;
            }
            if (step == STEP_WAIT && !wait_or_pending(r, "waiting for the CA to validate"))
                return 0;
            continue;
        }
        if (strcmp(status, "ready") == 0) {
            json_decref(order);
            rc = finalize(r, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (strcmp(status, "processing") == 0) {
            json_decref(order);
            if (!wait_or_pending(r, "waiting for the CA to sign"))
                return 0;
            continue;
        }
        if (strcmp(status, "valid") == 0) {
            char *cert = aegis_strdup(str(order, "certificate"));

            json_decref(order);
            rc = download(r, cert, err);
            free(cert);
            return rc;
        }
        order_error(r, order, err);
        json_decref(order);
        r->res->reason = ISSUER_REASON_REJECTED;
        return -AEGIS_E_STATE;
    }
    pending(r, r->req->now + ACME_RETRY_S, "the order is progressing");
    return 0;
}

static int check_request(const struct issuer_request *req, struct issuer_result *res,
                         struct aegis_err *err)
{
    if (req->cert->dns_names.n == 0) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.dnsNames",
                             "an ACME certificate needs at least one dnsName");
    }
    if (req->cert->ip_addresses.n > 0) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "spec.ipAddresses",
                             "the acme issuer certifies dnsNames only: remove ipAddresses");
    }
    if (req->cert->dns_names.n > ACME_AUTHZ_MAX) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return aegis_err_set(err, -AEGIS_E_LIMIT, "spec.dnsNames",
                             "an ACME order takes at most %d names", ACME_AUTHZ_MAX);
    }
    return 0;
}

static int acme_issue(const struct issuer_request *req, struct issuer_result *res,
                      struct aegis_err *err)
{
    struct run r = {.req = req, .res = res};
    int rc = check_request(req, res, err);

    if (rc < 0)
        return rc;
    r.deadline_ms = aegis_monotonic_ms() + ACME_POLL_BUDGET_MS;
    rc = store_id_set(&r.id, STORE_KIND_ACME_ORDER, req->cert_namespace, req->cert_name, err);
    if (rc < 0) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return rc;
    }
    request_digest(req, r.digest);
    rc = acme_account_get(req, &r.acct, res, err);
    if (rc == 0) {
        acme_account_kid(r.acct, r.kid);
        rc = load(&r, err);
    }
    if (rc == 0 && r.st == NULL)
        rc = new_order(&r, err);
    if (rc == 0)
        rc = advance(&r, err);
    if (rc == -EIO && r.st != NULL) {
        /* The CA is unreachable mid-order: keep the order and come back later. */
        json_int_t n = json_integer_value(json_object_get(r.st, "transportFailures")) + 1;
        int64_t delay = ACME_TRANSPORT_RETRY_S;
        struct aegis_err ignored;

        for (json_int_t i = 1; i < n && delay < ACME_TRANSPORT_RETRY_MAX_S; i++)
            delay *= 2;
        if (delay > ACME_TRANSPORT_RETRY_MAX_S)
            delay = ACME_TRANSPORT_RETRY_MAX_S;
        json_object_set_new(r.st, "transportFailures", json_integer(n));
        save(&r, &ignored);
        aegis_log(AEGIS_LOG_WARN, WHERE, "Certificate %s/%s: %s; retrying in %lld s",
                  req->cert_namespace, req->cert_name, err->msg, (long long)delay);
        pending(&r, req->now + delay, err->msg);
        rc = 0;
    } else if (rc == -EAGAIN) {
        /* Rate limited: the CA says when to come back. */
        aegis_log(AEGIS_LOG_WARN, WHERE, "Certificate %s/%s: %s", req->cert_namespace,
                  req->cert_name, err->msg);
        pending(&r, r.retry_at > req->now ? r.retry_at : req->now + ACME_RATE_LIMIT_RETRY_S,
                err->msg);
        rc = 0;
    } else if (rc == 0 && r.st != NULL && res->status == ISSUER_PENDING &&
               json_integer_value(json_object_get(r.st, "transportFailures")) != 0) {
        struct aegis_err ignored;

        json_object_set_new(r.st, "transportFailures", json_integer(0));
        save(&r, &ignored);
    }
    if (rc < 0 || res->status == ISSUER_DONE) {
        /* Done or failed: the next attempt starts a new order. */
        drop(&r);
        if (rc < 0 && res->reason == ISSUER_REASON_PENDING)
            res->reason = ISSUER_REASON_REJECTED;
    }
    if (rc < 0)
        aegis_log(AEGIS_LOG_WARN, WHERE, "Certificate %s/%s: %s", req->cert_namespace,
                  req->cert_name, err->msg);
    json_decref(r.st);
    json_decref(r.order);
    EVP_PKEY_free(r.key);
    return rc;
}

static int acme_check(const struct aegis_issuer_spec *spec, const char *ns, const char *secrets_dir,
                      struct aegis_err *err)
{
    const struct aegis_acme_issuer *a = &spec->acme;

    (void)ns;
    (void)secrets_dir;
    for (size_t i = 0; i < a->solvers.n; i++) {
        const struct dns01_provider_ops *ops;

        if (HAS(&a->solvers.v[i], API_F_ACME_SOLVER_DNS01) &&
            dns01_for_spec(&a->solvers.v[i].dns01, &ops, err) < 0)
            return -AEGIS_E_UNSUPPORTED;
        if (HAS(&a->solvers.v[i], API_F_ACME_SOLVER_DNS01) &&
            dns01_nameservers_check(&a->solvers.v[i].dns01, err) < 0)
            return -AEGIS_E_INVALID;
    }
    if (HAS(a, API_F_ACME_ISSUER_EXTERNAL_ACCOUNT_BINDING) &&
        (a->external_account_binding.key_id == NULL ||
         a->external_account_binding.hmac_key_secret_ref.name == NULL))
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.externalAccountBinding",
                             "give both keyID and hmacKeySecretRef");
    return 0;
}

const struct issuer_ops issuer_acme_ops = {
    .name = "acme",
    .spec_field = API_F_ISSUER_SPEC_ACME,
    .check = acme_check,
    .issue = acme_issue,
    .revoke = acme__revoke,
};
