/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Revocation for the acme issuer (RFC 8555 section 7.6): revokeCert with the certificate's DER
 * and a reason code, signed with the Issuer's account key (kid), so the CA checks that the
 * account holds the authorizations for the certificate's names. The account is the one the
 * issuer uses (acme_account.h): a stored key is looked up, never replaced.
 */
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/log.h"
#include "issuer/acme.h"
#include "issuer/acme_account.h"
#include "issuer/acme_client.h"
#include "issuer/acme_jws.h"

/* RFC 5280 CRLReason codes run from 0 to 10 (7 is unused). */
#define REASON_MAX 10

int acme__revoke(const struct issuer_revoke_request *req, struct aegis_err *err)
{
    /* The account functions take an issuance request: only its Issuer side is used here. */
    struct issuer_request ir = {
        .cert_namespace = req->issuer_namespace,
        .cert_name = "",
        .issuer_name = req->issuer_name,
        .issuer = req->issuer,
        .now = req->now,
        .store = req->store,
        .secrets_dir = req->secrets_dir,
    };
    struct issuer_result res;
    struct acme_account *acct = NULL;
    struct acme_response resp;
    char kid[ACME_ACCOUNT_KID_MAX];
    unsigned char *der = NULL;
    char *b64 = NULL, *payload = NULL;
    const char *url = NULL;
    int len, rc;

    if (req->reason < 0 || req->reason > REASON_MAX || req->reason == 7)
        return aegis_err_set(err, -AEGIS_E_INVALID, "--reason",
                             "%d is not an RFC 5280 reason code (0-10 but 7)", req->reason);
    issuer_result_init(&res);
    acme_response_init(&resp);
    rc = acme_account_get(&ir, &acct, &res, err);
    if (rc == 0)
        rc = acme_client_dir_url(acme_account_client(acct), "revokeCert", req->now, &url, err);
    if (rc < 0)
        goto out;
    len = i2d_X509(req->cert, &der);
    if (len <= 0) {
        rc = aegis_err_set(err, -AEGIS_E_CRYPTO, "acme", "cannot encode the certificate");
        goto out;
    }
    b64 = acme_jws_b64url(der, (size_t)len);
    payload = aegis_asprintf("{\"certificate\":\"%s\",\"reason\":%d}", b64, req->reason);
    acme_account_kid(acct, kid);
    rc = acme_client_post(acme_account_client(acct), acme_account_key(acct), kid, url, payload,
                          "revokeCert", NULL, req->now, &resp, err);
    if (rc == 0)
        aegis_log(AEGIS_LOG_INFO, "acme", "Issuer %s/%s: certificate revoked at %s (reason %d)",
                  req->issuer_namespace, req->issuer_name, req->issuer->acme.server, req->reason);
out:
    OPENSSL_free(der);
    free(b64);
    free(payload);
    acme_response_dispose(&resp);
    issuer_result_dispose(&res);
    return rc;
}
