/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSR flow (csrflow.h): the key and a PKCS#10 CSR (RFC 2986) are made here and kept in the
 * store as the pending request csr/<ns>/<name>; the certificate an outside CA signs for it is
 * checked against that key (and like any custom certificate, import.c) and stored as
 * certificate/<ns>/<name>. The request is remembered by a digest of what it asked for, so the
 * same CSR is handed out until the Certificate's names, subject or key type change.
 */
#include "csrflow.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "aegis/alloc.h"
#include "aegis/pki.h"
#include "aegis/store.h"
#include "secret.h"

/* The meta.extra member of a pending request that holds the digest of what it asked for. */
#define REQUEST_DIGEST_KEY "request"
/* RFC 5280's upper bound for a CN (ub-common-name); a longer first dnsName is not copied to CN. */
#define CN_MAX 64

static void resource_name(const struct csrflow_request *req, char *buf, size_t size)
{
    snprintf(buf, size, "Certificate %s/%s", req->ns, req->name);
}

static const struct aegis_x509_subject *csr_subject(const struct aegis_certificate_spec *c)
{
    /* spec.csr.subject is the CSR's own; spec.subject is what the other flows use. */
    if (c->csr.subject.present != 0)
        return &c->csr.subject;
    return &c->subject;
}

static const char *csr_common_name(const struct aegis_certificate_spec *c)
{
    /* Many CAs still want a CN; the first dnsName is the usual choice when none is given. */
    if (c->common_name != NULL)
        return c->common_name;
    if (c->dns_names.n > 0 && strlen(c->dns_names.v[0]) <= CN_MAX)
        return c->dns_names.v[0];
    return NULL;
}

/* ---- what a request asks for ------------------------------------------------------------------ */

static void digest_str(EVP_MD_CTX *md, const char *tag, const char *s)
{
    /* Tag and value, each NUL-terminated, so that no two different requests hash the same. */
    EVP_DigestUpdate(md, tag, strlen(tag) + 1);
    EVP_DigestUpdate(md, s != NULL ? s : "", s != NULL ? strlen(s) + 1 : 1);
}

static void digest_strv(EVP_MD_CTX *md, const char *tag, const struct aegis_strv *v)
{
    char count[32];

    snprintf(count, sizeof(count), "%zu", v->n);
    digest_str(md, tag, count);
    for (size_t i = 0; i < v->n; i++)
        digest_str(md, tag, v->v[i]);
}

/* Hex SHA-256 of everything the CSR and its key depend on. */
static int request_digest(const struct aegis_certificate_spec *c, enum pki_key_type type,
                          char out[PKI_FINGERPRINT_HEX_SIZE], struct aegis_err *err)
{
    const struct aegis_x509_subject *s = csr_subject(c);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0;
    int rc = 0;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot hash the request");
        goto out;
    }
    digest_str(md, "v", "1");
    digest_str(md, "key", pki_key_type_names[type]);
    digest_str(md, "cn", csr_common_name(c));
    digest_strv(md, "dns", &c->dns_names);
    digest_strv(md, "ip", &c->ip_addresses);
    digest_strv(md, "uri", &c->uris);
    digest_strv(md, "email", &c->email_addresses);
    digest_strv(md, "o", &s->organizations);
    digest_strv(md, "ou", &s->organizational_units);
    digest_strv(md, "c", &s->countries);
    digest_strv(md, "st", &s->provinces);
    digest_strv(md, "l", &s->localities);
    digest_strv(md, "street", &s->street_addresses);
    digest_strv(md, "postal", &s->postal_codes);
    digest_str(md, "serial", s->serial_number);
    if (EVP_DigestFinal_ex(md, h, &hlen) != 1 || hlen != 32) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot hash the request");
        goto out;
    }
    for (unsigned i = 0; i < hlen; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
out:
    EVP_MD_CTX_free(md);
    return rc;
}

static const char *stored_digest(const struct store_record *rec)
{
    const json_t *v =
        rec->meta.extra != NULL ? json_object_get(rec->meta.extra, REQUEST_DIGEST_KEY) : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- making the CSR --------------------------------------------------------------------------- */

/* The key for a new CSR: the previous one for rotationPolicy Never when its type fits, else new. */
static int request_key(const struct csrflow_request *req, const struct store_record *old,
                       enum pki_key_type type, EVP_PKEY **key, struct aegis_err *err)
{
    enum pki_key_type old_type;

    *key = NULL;
    if (old != NULL && old->key_pem != NULL &&
        req->cert->private_key.rotation_policy == AEGIS_ROTATION_POLICY_NEVER &&
        pki_key_from_pem(old->key_pem, strlen(old->key_pem), key, NULL) == 0) {
        if (pki_key_type_of(*key, &old_type) == 0 && old_type == type)
            return 0;
        EVP_PKEY_free(*key);
        *key = NULL;
    }
    return pki_key_generate(type, key, err);
}

int csrflow_csr(const struct csrflow_request *req, char **csr_pem, bool *made,
                struct aegis_err *err)
{
    const struct aegis_certificate_spec *c = req->cert;
    char resource[STORE_ID_STR_MAX + 16], digest[PKI_FINGERPRINT_HEX_SIZE];
    struct store_record old, rec;
    struct pki_cert_req pr;
    struct store_id id;
    enum pki_key_type type;
    EVP_PKEY *key = NULL;
    X509_REQ *csr = NULL;
    const char *have;
    bool found;
    int rc;

    *csr_pem = NULL;
    if (made != NULL)
        *made = false;
    store_record_init(&old);
    store_record_init(&rec);
    resource_name(req, resource, sizeof(resource));
    rc = store_id_set(&id, CSRFLOW_STORE_KIND, req->ns, req->name, err);
    if (rc < 0)
        goto out;
    rc = pki_key_type_from_spec(c->private_key.algorithm, c->private_key.size, &type, err);
    if (rc == 0)
        rc = request_digest(c, type, digest, err);
    if (rc < 0)
        goto out;
    rc = store_get(req->store, &id, &old, err);
    if (rc < 0 && rc != -AEGIS_E_NOTFOUND)
        goto out;
    found = rc == 0;
    have = found ? stored_digest(&old) : NULL;
    if (found && !req->renew && old.csr_pem != NULL && old.key_pem != NULL && have != NULL &&
        strcmp(have, digest) == 0) {
        *csr_pem = aegis_strdup(old.csr_pem);
        rc = 0;
        goto out;
    }

    memset(&pr, 0, sizeof(pr));
    pr.common_name = csr_common_name(c);
    pr.subject = csr_subject(c);
    pr.dns = (struct pki_strs){c->dns_names.v, c->dns_names.n};
    pr.ip = (struct pki_strs){c->ip_addresses.v, c->ip_addresses.n};
    pr.uri = (struct pki_strs){c->uris.v, c->uris.n};
    pr.email = (struct pki_strs){c->email_addresses.v, c->email_addresses.n};
    pr.path_len = -1;
    rc = request_key(req, found ? &old : NULL, type, &key, err);
    if (rc == 0)
        rc = pki_csr_make(&pr, key, &csr, err);
    if (rc == 0)
        rc = pki_csr_to_pem(csr, &rec.csr_pem, NULL, err);
    if (rc == 0)
        rc = pki_key_to_pem(key, &rec.key_pem, NULL, err);
    if (rc < 0)
        goto out;
    rec.meta.source = aegis_strdup(import_source_names[IMPORT_SOURCE_CSR]);
    rec.meta.updated_at = req->now;
    rec.meta.extra = json_pack("{ss}", REQUEST_DIGEST_KEY, digest);
    rc = store_put(req->store, &id, &rec, err);
    if (rc < 0)
        goto out;
    *csr_pem = aegis_strdup(rec.csr_pem);
    if (made != NULL)
        *made = true;
out:
    if (rc < 0 && err != NULL && strncmp(err->where, "Certificate ", 12) != 0) {
        char msg[AEGIS_ERR_MSG_MAX];

        snprintf(msg, sizeof(msg), "%s", err->msg[0] ? err->msg : aegis_strerror(rc));
        aegis_err_set(err, rc, resource, "spec.csr: %s", msg);
    }
    X509_REQ_free(csr);
    EVP_PKEY_free(key);
    store_record_dispose(&old);
    store_record_dispose(&rec);
    return rc;
}

/* ---- taking the signed certificate ------------------------------------------------------------ */

int csrflow_import(const struct csrflow_request *req, const char *chain_pem, size_t len,
                   const char *field, struct import_result *res, bool *unchanged,
                   struct aegis_err *err)
{
    char resource[STORE_ID_STR_MAX + 16];
    struct store_record pending;
    struct pki_csr_info info;
    struct import_check chk;
    struct store_id id;
    STACK_OF(X509) *certs = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    if (unchanged != NULL)
        *unchanged = false;
    store_record_init(&pending);
    memset(&info, 0, sizeof(info));
    resource_name(req, resource, sizeof(resource));
    memset(&chk, 0, sizeof(chk));
    chk.resource = resource;
    chk.cert_field = field != NULL ? field : "spec.csr.certificate";
    chk.key_field = "the CSR's key";
    chk.now = req->now;
    chk.source = IMPORT_SOURCE_CSR;

    rc = store_id_set(&id, CSRFLOW_STORE_KIND, req->ns, req->name, err);
    if (rc < 0)
        goto out;
    rc = store_get(req->store, &id, &pending, err);
    if (rc == -AEGIS_E_NOTFOUND ||
        (rc == 0 && (pending.key_pem == NULL || pending.csr_pem == NULL))) {
        rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, resource,
                           "%s: no CSR has been made for this Certificate in this store, so "
                           "there is no key for the certificate (was the state directory "
                           "changed?); run `aegisctl csr get %s -n %s`, have that CSR signed, "
                           "and import the result",
                           chk.cert_field, req->name, req->ns);
        goto out;
    }
    if (rc < 0)
        goto out;
    /* The names to cover are those the CSR asked for: that is what the CA was asked to sign. */
    rc = pki_csr_read(pending.csr_pem, strlen(pending.csr_pem), &info, err);
    if (rc == 0)
        rc = pki_key_from_pem(pending.key_pem, strlen(pending.key_pem), &key, err);
    if (rc < 0) {
        char msg[AEGIS_ERR_MSG_MAX];

        snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "");
        rc = aegis_err_set(err, rc, resource, "the stored CSR request cannot be read: %s", msg);
        goto out;
    }
    chk.dns = (struct pki_strs){info.dns.v, info.dns.n};
    chk.ip = (struct pki_strs){info.ip.v, info.ip.n};
    rc = pki_chain_from_pem(chain_pem, len, &certs, err);
    if (rc < 0) {
        char msg[AEGIS_ERR_MSG_MAX];

        snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "");
        rc = aegis_err_set(err, rc, resource, "%s: %s", chk.cert_field, msg);
        goto out;
    }
    rc = import_validate(certs, key, &chk, res, err);
    if (rc < 0)
        goto out;
    /* The certificate record keeps the CSR it answers, as store.h describes. */
    res->rec.csr_pem = aegis_strdup(pending.csr_pem);
    rc = import_store(req->store, req->ns, req->name, res, unchanged, err);
out:
    pki_chain_free(certs);
    EVP_PKEY_free(key);
    pki_csr_info_dispose(&info);
    store_record_dispose(&pending);
    return rc;
}

int csrflow_reconcile(const struct csrflow_request *req, const char *secrets_dir,
                      enum csrflow_state *state, struct import_result *res, struct aegis_err *err)
{
    const struct aegis_csr_certificate *csr = &req->cert->csr;
    char *pem = NULL, *csr_pem = NULL;
    size_t len = 0;
    int rc;

    *state = CSRFLOW_WAITING;
    if (!API_HAS(csr, API_F_CSR_CERTIFICATE_CERTIFICATE)) {
        rc = csrflow_csr(req, &csr_pem, NULL, err);
        goto out;
    }
    rc = secret_read_pem_source(&csr->certificate, req->ns, secrets_dir, "spec.csr.certificate",
                                &pem, &len, err);
    if (rc < 0) {
        char resource[STORE_ID_STR_MAX + 16], msg[AEGIS_ERR_MSG_MAX];

        resource_name(req, resource, sizeof(resource));
        snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "");
        rc = aegis_err_set(err, rc, resource, "%s", msg);
        goto out;
    }
    rc = csrflow_import(req, pem, len, "spec.csr.certificate", res, NULL, err);
    if (rc == 0)
        *state = CSRFLOW_READY;
out:
    free(csr_pem);
    pki_secret_free(pem, len);
    return rc;
}
