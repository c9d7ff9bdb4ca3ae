/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every issuer shares: the result's lifetime, the leaf key (reused or generated per the
 * Certificate's privateKey), and the translation of a Certificate spec into a pki_cert_req
 * (names, subject, usages, isCA, validity from duration against the injected clock).
 */
#include "issuer/issuer.h"

#include <string.h>

#include "aegis/pki.h"

const char *const issuer_reason_names[ISSUER_REASON_COUNT_] = {
#define ISSUER_REASON_NAME(name, text) text,
    ISSUER_REASONS(ISSUER_REASON_NAME)
#undef ISSUER_REASON_NAME
};

/* A Certificate without duration (built by hand, not decoded) gets the API's default, 2160h. */
#define ISSUER_DEFAULT_DURATION_S (2160 * 3600LL)

void issuer_result_init(struct issuer_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = ISSUER_PENDING;
    res->reason = ISSUER_REASON_PENDING;
}

void issuer_result_dispose(struct issuer_result *res)
{
    pki_chain_free(res->chain);
    EVP_PKEY_free(res->key);
    X509_free(res->ca);
    issuer_result_init(res);
}

int issuer__leaf_key(const struct issuer_request *req, EVP_PKEY **key, struct issuer_result *res,
                     struct aegis_err *err)
{
    enum pki_key_type type;
    int rc;

    *key = NULL;
    if (req->key != NULL) {
        if (EVP_PKEY_up_ref(req->key) != 1) {
            res->reason = ISSUER_REASON_SIGNING_FAILED;
            return aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot reference the key");
        }
        *key = req->key;
        return 0;
    }
    rc = pki_key_type_from_spec(req->cert->private_key.algorithm, req->cert->private_key.size,
                                &type, err);
    if (rc < 0) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return rc;
    }
    rc = pki_key_generate(type, key, err);
    if (rc < 0)
        res->reason = ISSUER_REASON_SIGNING_FAILED;
    return rc;
}

int issuer__cert_req(const struct aegis_certificate_spec *cert, int64_t now,
                     struct pki_cert_req *out, struct issuer_result *res, struct aegis_err *err)
{
    int64_t duration_s = cert->duration_ms / 1000;
    int rc;

    memset(out, 0, sizeof(*out));
    out->common_name = cert->common_name;
    out->subject = &cert->subject;
    out->dns = (struct pki_strs){cert->dns_names.v, cert->dns_names.n};
    out->ip = (struct pki_strs){cert->ip_addresses.v, cert->ip_addresses.n};
    out->uri = (struct pki_strs){cert->uris.v, cert->uris.n};
    out->email = (struct pki_strs){cert->email_addresses.v, cert->email_addresses.n};
    out->is_ca = cert->is_ca;
    out->path_len = cert->is_ca ? 0 : -1;
    rc = pki_usages_parse(cert->usages.v, cert->usages.n, &out->usages, err);
    if (rc < 0) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return rc;
    }
    /* A CA asked for without usages signs certificates and CRLs, and nothing else. */
    if (cert->is_ca && out->usages == 0)
        out->usages = PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(CERT_SIGN) | PKI_USAGE(CRL_SIGN);
    if (cert->duration_ms == 0)
        duration_s = ISSUER_DEFAULT_DURATION_S;
    if (duration_s < 60) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.duration",
                             "duration must be at least 1m");
    }
    out->not_before = now - ISSUER_BACKDATE_S;
    out->not_after = now + duration_s;
    if (cert->dns_names.n + cert->ip_addresses.n + cert->uris.n + cert->email_addresses.n == 0 &&
        cert->common_name == NULL) {
        res->reason = ISSUER_REASON_INVALID_REQUEST;
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec",
                             "the certificate names nothing: give dnsNames, ipAddresses, uris, "
                             "emailAddresses or commonName");
    }
    return 0;
}
