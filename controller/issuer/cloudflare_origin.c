/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloudflareOriginCA issuer (cloudflare_origin.h): key, CSR, `POST /certificates`, the
 * returned PEM checked against the key; revocation by serial number.
 */
#include "issuer/cloudflare_origin.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/log.h"
#include "aegis/pki.h"
#include "issuer/cloudflare_api.h"

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)
#define WHERE "spec.cloudflareOriginCA"

/* The validities (days) the API accepts; the schema has the same list. */
static const int64_t validities[] = {7, 30, 90, 365, 730, 1095, 5475};

/* The endpoint and credentials of spec; *secret is freed by the caller (pki_secret_free_str). */
static int api_of(const struct aegis_cloudflare_origin_ca_issuer *spec, const char *ns,
                  const char *secrets_dir, struct cf_api *api, char **secret, struct aegis_err *err)
{
    bool token = HAS(spec, API_F_CLOUDFLARE_ORIGIN_CA_ISSUER_API_TOKEN_SECRET_REF);

    memset(api, 0, sizeof(*api));
    api->base_url = spec->api_url != NULL ? spec->api_url : CF_API_DEFAULT_URL;
    api->auth = token ? CF_AUTH_TOKEN : CF_AUTH_SERVICE_KEY;
    api->where = WHERE;
    api->permission = CF_ORIGIN_PERMISSION;
    return cf_api_read_secret(
        secrets_dir, ns, token ? &spec->api_token_secret_ref : &spec->origin_ca_key_secret_ref,
        token ? WHERE ".apiTokenSecretRef" : WHERE ".originCAKeySecretRef", secret, err);
}

static int check_request(const struct issuer_request *req, struct issuer_result *res,
                         struct aegis_err *err)
{
    const struct aegis_certificate_spec *c = req->cert;
    bool ok = false;

    res->reason = ISSUER_REASON_INVALID_REQUEST;
    if (c->dns_names.n == 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.dnsNames",
                             "an Origin CA certificate needs at least one dnsName");
    if (c->ip_addresses.n + c->uris.n + c->email_addresses.n > 0)
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "spec",
                             "the Origin CA certifies hostnames only: remove ipAddresses, uris "
                             "and emailAddresses");
    if (c->is_ca)
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "spec.isCA",
                             "the Origin CA does not issue CA certificates: remove isCA");
    for (size_t i = 0; i < sizeof(validities) / sizeof(validities[0]); i++)
        ok |= req->issuer->cloudflare_origin_ca.requested_validity == validities[i];
    if (!ok) {
        res->reason = ISSUER_REASON_INVALID_ISSUER;
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE ".requestedValidity",
                             "give one of 7, 30, 90, 365, 730, 1095, 5475 (days)");
    }
    res->reason = ISSUER_REASON_PENDING;
    return 0;
}

/* The key for req: the kept one when it is of the requested type, else a new one. */
static int leaf_key(const struct issuer_request *req, enum pki_key_type want, EVP_PKEY **key,
                    struct issuer_result *res, struct aegis_err *err)
{
    enum pki_key_type have;
    int rc;

    *key = NULL;
    if (req->key != NULL && pki_key_type_of(req->key, &have) == 0 && have == want &&
        EVP_PKEY_up_ref(req->key) == 1) {
        *key = req->key;
        return 0;
    }
    rc = pki_key_generate(want, key, err);
    if (rc < 0)
        res->reason = ISSUER_REASON_SIGNING_FAILED;
    return rc;
}

static int make_csr(const struct issuer_request *req, EVP_PKEY *key, char **pem,
                    struct issuer_result *res, struct aegis_err *err)
{
    const struct aegis_certificate_spec *c = req->cert;
    struct pki_cert_req cr = {0};
    X509_REQ *csr = NULL;
    size_t len;
    int rc;

    cr.dns = (struct pki_strs){c->dns_names.v, c->dns_names.n};
    /* A common name only when it fits (RFC 5280: 64); the SANs carry the names. */
    if (strlen(c->dns_names.v[0]) <= 64)
        cr.common_name = c->dns_names.v[0];
    rc = pki_csr_make(&cr, key, &csr, err);
    if (rc == 0)
        rc = pki_csr_to_pem(csr, pem, &len, err);
    X509_REQ_free(csr);
    if (rc < 0)
        res->reason = ISSUER_REASON_SIGNING_FAILED;
    return rc;
}

static char *request_body(const struct issuer_request *req, const char *csr)
{
    const struct aegis_cloudflare_origin_ca_issuer *spec = &req->issuer->cloudflare_origin_ca;
    json_t *names = json_array(), *body;
    char *text;

    for (size_t i = 0; i < req->cert->dns_names.n; i++)
        json_array_append_new(names, json_string(req->cert->dns_names.v[i]));
    body = json_pack("{s:o, s:I, s:s, s:s}", "hostnames", names, "requested_validity",
                     (json_int_t)spec->requested_validity, "request_type",
                     api_origin_ca_request_type_names[spec->request_type], "csr", csr);
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* The certificate of a successful answer, checked against key, into res. */
static int take_certificate(const struct cf_response *resp, EVP_PKEY *key,
                            struct issuer_result *res, struct aegis_err *err)
{
    const char *pem = json_string_value(json_object_get(resp->result, "certificate"));
    STACK_OF(X509) *chain = NULL;
    int rc;

    res->reason = ISSUER_REASON_REJECTED;
    if (pem == NULL)
        return aegis_err_set(err, -AEGIS_E_STATE, WHERE,
                             "Cloudflare's answer holds no certificate; retried later");
    rc = pki_chain_from_pem(pem, strlen(pem), &chain, err);
    if (rc == 0 && sk_X509_num(chain) < 1)
        rc = aegis_err_set(err, -AEGIS_E_STATE, WHERE, "Cloudflare's certificate is empty");
    if (rc == 0)
        rc = pki_key_matches_cert(sk_X509_value(chain, 0), key, err);
    if (rc < 0) {
        pki_chain_free(chain);
        return rc;
    }
    if (EVP_PKEY_up_ref(key) != 1) {
        pki_chain_free(chain);
        res->reason = ISSUER_REASON_SIGNING_FAILED;
        return aegis_err_set(err, -AEGIS_E_CRYPTO, WHERE, "cannot reference the key");
    }
    res->chain = chain;
    res->key = key;
    res->status = ISSUER_DONE;
    res->reason = ISSUER_REASON_ISSUED;
    return 0;
}

static int origin_issue(const struct issuer_request *req, struct issuer_result *res,
                        struct aegis_err *err)
{
    const struct aegis_cloudflare_origin_ca_issuer *spec = &req->issuer->cloudflare_origin_ca;
    enum pki_key_type type = spec->request_type == AEGIS_ORIGIN_CA_REQUEST_TYPE_ORIGIN_ECC
                                 ? PKI_KEY_EC_P256
                                 : PKI_KEY_RSA_2048;
    struct cf_response resp;
    struct cf_api api;
    EVP_PKEY *key = NULL;
    char *secret = NULL, *csr = NULL, *body = NULL;
    int rc = check_request(req, res, err);

    cf_response_init(&resp);
    if (rc < 0)
        goto out;
    rc = api_of(spec, req->cert_namespace, req->secrets_dir, &api, &secret, err);
    if (rc < 0) {
        res->reason =
            rc == -AEGIS_E_NOTFOUND ? ISSUER_REASON_SECRET_NOT_FOUND : ISSUER_REASON_INVALID_ISSUER;
        goto out;
    }
    api.secret = secret;
    rc = leaf_key(req, type, &key, res, err);
    if (rc == 0)
        rc = make_csr(req, key, &csr, res, err);
    if (rc < 0)
        goto out;
    body = request_body(req, csr);
    rc = cf_api_call(&api, "POST", "/certificates", body, "certificates", req->now, &resp, err);
    if (rc == -EAGAIN) {
        /* Throttled: come back when Cloudflare says, without counting a failed attempt. */
        size_t n = strnlen(err->msg, sizeof(res->message) - 1);

        res->status = ISSUER_PENDING;
        res->reason = ISSUER_REASON_PENDING;
        res->retry_at = resp.retry_after > req->now ? resp.retry_after : req->now + 1;
        memcpy(res->message, err->msg, n);
        res->message[n] = '\0';
        aegis_log(AEGIS_LOG_WARN, "cloudflare", "Certificate %s/%s: %s", req->cert_namespace,
                  req->cert_name, err->msg);
        rc = 0;
        goto out;
    }
    if (rc < 0) {
        res->reason = ISSUER_REASON_REJECTED;
        goto out;
    }
    rc = take_certificate(&resp, key, res, err);
    if (rc == 0)
        aegis_log(AEGIS_LOG_INFO, "cloudflare", "Certificate %s/%s: issued by the Origin CA (%s)",
                  req->cert_namespace, req->cert_name,
                  json_string_value(json_object_get(resp.result, "id")) != NULL
                      ? json_string_value(json_object_get(resp.result, "id"))
                      : "no id");
out:
    if (rc < 0)
        aegis_log(AEGIS_LOG_WARN, "cloudflare", "Certificate %s/%s: %s", req->cert_namespace,
                  req->cert_name, err->msg);
    cf_response_dispose(&resp);
    EVP_PKEY_free(key);
    pki_secret_free_str(secret);
    free(csr);
    free(body);
    return rc;
}

static int origin_check(const struct aegis_issuer_spec *spec, const char *ns,
                        const char *secrets_dir, struct aegis_err *err)
{
    struct cf_api api;
    char *secret = NULL;
    int rc = api_of(&spec->cloudflare_origin_ca, ns, secrets_dir, &api, &secret, err);

    pki_secret_free_str(secret);
    return rc;
}

int cloudflare_origin_id_of_serial(const char *serial_hex, char out[CF_ORIGIN_ID_MAX])
{
    BIGNUM *bn = NULL;
    char *dec;
    size_t n = strlen(serial_hex);

    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (strchr("0123456789abcdefABCDEF", serial_hex[i]) == NULL)
            return -AEGIS_E_INVALID;
    if (n == 0 || n > 40 || BN_hex2bn(&bn, serial_hex) == 0)
        return -AEGIS_E_INVALID;
    dec = BN_bn2dec(bn);
    BN_free(bn);
    if (dec == NULL || strlen(dec) >= CF_ORIGIN_ID_MAX) {
        OPENSSL_free(dec);
        return -AEGIS_E_INVALID;
    }
    snprintf(out, CF_ORIGIN_ID_MAX, "%s", dec);
    OPENSSL_free(dec);
    return 0;
}

int cloudflare_origin_revoke(const struct aegis_cloudflare_origin_ca_issuer *spec, const char *ns,
                             const char *secrets_dir, const char *serial_hex, int64_t now,
                             struct aegis_err *err)
{
    struct cf_response resp;
    struct cf_api api;
    char id[CF_ORIGIN_ID_MAX], *secret = NULL, *path;
    int rc;

    if (cloudflare_origin_id_of_serial(serial_hex, id) < 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE, "serial %s is not hex", serial_hex);
    rc = api_of(spec, ns, secrets_dir, &api, &secret, err);
    if (rc < 0)
        return rc;
    api.secret = secret;
    path = aegis_asprintf("/certificates/%s", id);
    cf_response_init(&resp);
    rc = cf_api_call(&api, "DELETE", path, NULL, "certificates", now, &resp, err);
    /* Already revoked or unknown: what was asked for holds. */
    if (rc == -AEGIS_E_NOTFOUND)
        rc = 0;
    cf_response_dispose(&resp);
    free(path);
    pki_secret_free_str(secret);
    return rc;
}

const struct issuer_ops issuer_cloudflare_origin_ca_ops = {
    .name = "cloudflareOriginCA",
    .spec_field = API_F_ISSUER_SPEC_CLOUDFLARE_ORIGIN_CA,
    .check = origin_check,
    .issue = origin_issue,
};
