/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one table of issuers, and the lookup from an Issuer spec to the issuer that serves it.
 * Adding an issuer is a file under controller/issuer/ and a line here; nothing registers itself.
 */
#include "issuer/issuer.h"

#include "issuer/acme.h"
#include "issuer/ca.h"
#include "issuer/cloudflare_origin.h"
#include "issuer/selfsigned.h"

const struct issuer_ops *const issuer_registry[] = {
    &issuer_acme_ops,                 /* acme.c */
    &issuer_ca_ops,                   /* ca.c */
    &issuer_cloudflare_origin_ca_ops, /* cloudflare_origin.c */
    &issuer_selfsigned_ops,           /* selfsigned.c */
    NULL,
};

const struct issuer_ops *issuer_override;

int issuer_for_spec(const struct aegis_issuer_spec *spec, const struct issuer_ops **ops,
                    struct aegis_err *err)
{
    *ops = issuer_override;
    if (issuer_override != NULL)
        return 0;
    for (size_t i = 0; issuer_registry[i] != NULL; i++)
        if (API_HAS(spec, issuer_registry[i]->spec_field)) {
            *ops = issuer_registry[i];
            return 0;
        }
    return aegis_err_set(err, -AEGIS_E_INVALID, "spec",
                         "the Issuer names no kind: give one of acme, cloudflareOriginCA, ca, "
                         "selfSigned");
}

int issuer_issue(const struct issuer_request *req, struct issuer_result *res, struct aegis_err *err)
{
    const struct issuer_ops *ops;
    int rc = issuer_for_spec(req->issuer, &ops, err);

    if (rc < 0 || ops == NULL) {
        res->reason = rc == -AEGIS_E_UNSUPPORTED ? ISSUER_REASON_UNSUPPORTED_ISSUER
                                                 : ISSUER_REASON_INVALID_ISSUER;
        return rc;
    }
    return ops->issue(req, res, err);
}
