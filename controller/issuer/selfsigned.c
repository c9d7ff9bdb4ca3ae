/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The selfSigned issuer: the certificate is signed by its own key (RFC 5280 section 3.2's
 * self-signed certificate); it is its own trust anchor, so the chain is the certificate alone
 * and ca.crt is the same certificate. Also the fallback certificate for names that have
 * nothing else to serve (see selfsigned.h).
 */
#include "issuer/selfsigned.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "aegis/pki.h"

/* Wraps a certificate as a one-element chain and a new reference for res->ca. */
static int single_chain(X509 *cert, STACK_OF(X509) * *chain, struct aegis_err *err)
{
    *chain = sk_X509_new_null();
    if (*chain == NULL || sk_X509_push(*chain, cert) <= 0) {
        sk_X509_free(*chain);
        *chain = NULL;
        return aegis_err_set(err, -AEGIS_E_CRYPTO, NULL, "cannot make the chain");
    }
    return 0;
}

static int selfsigned_issue(const struct issuer_request *req, struct issuer_result *res,
                            struct aegis_err *err)
{
    struct pki_cert_req creq;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;
    int rc;

    rc = issuer__cert_req(req->cert, req->now, &creq, res, err);
    if (rc < 0)
        goto out;
    /* A self-signed CA is a root: no path length limit, like any root. */
    if (creq.is_ca)
        creq.path_len = -1;
    rc = issuer__leaf_key(req, &key, res, err);
    if (rc < 0)
        goto out;
    rc = pki_sign(&creq, key, NULL, key, &cert, err);
    if (rc < 0) {
        res->reason =
            rc == -AEGIS_E_CRYPTO ? ISSUER_REASON_SIGNING_FAILED : ISSUER_REASON_INVALID_REQUEST;
        goto out;
    }
    rc = single_chain(cert, &chain, err);
    if (rc < 0) {
        res->reason = ISSUER_REASON_SIGNING_FAILED;
        goto out;
    }
    X509_up_ref(cert); /* one reference in the chain, one for res->ca */
    res->ca = cert;
    cert = NULL;
    res->chain = chain;
    chain = NULL;
    res->key = key;
    key = NULL;
    res->status = ISSUER_DONE;
    res->reason = ISSUER_REASON_ISSUED;
out:
    X509_free(cert);
    pki_chain_free(chain);
    EVP_PKEY_free(key);
    return rc;
}

const struct issuer_ops issuer_selfsigned_ops = {
    .name = "selfSigned",
    .spec_field = API_F_ISSUER_SPEC_SELF_SIGNED,
    .check = NULL,
    .issue = selfsigned_issue,
};

static bool is_ip(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool seen(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], s) == 0)
            return true;
    return false;
}

int selfsigned_fallback(char *const *names, size_t n, int64_t now, STACK_OF(X509) * *chain,
                        EVP_PKEY **key, struct aegis_err *err)
{
    char **dns = NULL, **ip = NULL;
    size_t ndns = 0, nip = 0;
    EVP_PKEY *k = NULL;
    X509 *cert = NULL;
    struct pki_cert_req req;
    int rc;

    *chain = NULL;
    *key = NULL;
    if (n == 0 || n > AEGIS_LIMIT_SANS) {
        rc = aegis_err_set(err, n == 0 ? -AEGIS_E_INVALID : -AEGIS_E_LIMIT, NULL,
                           "the fallback certificate needs 1 to %d names, not %zu",
                           AEGIS_LIMIT_SANS, n);
        goto out;
    }
    /* Borrowed pointers into names, split by kind. */
    dns = aegis_calloc(n, sizeof(*dns));
    ip = aegis_calloc(n, sizeof(*ip));
    for (size_t i = 0; i < n; i++) {
        if (is_ip(names[i])) {
            if (!seen(ip, nip, names[i]))
                ip[nip++] = names[i];
        } else if (!seen(dns, ndns, names[i])) {
            dns[ndns++] = names[i];
        }
    }
    memset(&req, 0, sizeof(req));
    req.common_name = SELFSIGNED_FALLBACK_CN;
    req.dns = (struct pki_strs){dns, ndns};
    req.ip = (struct pki_strs){ip, nip};
    req.path_len = -1;
    req.usages = PKI_USAGE(DIGITAL_SIGNATURE) | PKI_USAGE(SERVER_AUTH);
    req.not_before = now - ISSUER_BACKDATE_S;
    req.not_after = now + SELFSIGNED_FALLBACK_LIFETIME_S;
    /* P-256: the cheapest key every TLS client accepts; this certificate is made often. */
    rc = pki_key_generate(PKI_KEY_EC_P256, &k, err);
    if (rc < 0)
        goto out;
    rc = pki_sign(&req, k, NULL, k, &cert, err);
    if (rc < 0)
        goto out;
    rc = single_chain(cert, chain, err);
    if (rc < 0)
        goto out;
    cert = NULL;
    *key = k;
    k = NULL;
out:
    free(dns);
    free(ip);
    X509_free(cert);
    EVP_PKEY_free(k);
    return rc;
}
