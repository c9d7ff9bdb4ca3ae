/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one table of DNS-01 providers (dns01.h). Adding one is a file under controller/issuer/ and
 * a row here.
 */
#include "issuer/dns01.h"

#include <stddef.h>

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)

const struct dns01_provider_ops *const dns01_registry[] = {
    &dns01_exec_ops,
    &dns01_cloudflare_ops,
    NULL,
};

int dns01_for_spec(const struct aegis_acme_solver_dns01 *spec,
                   const struct dns01_provider_ops **ops, struct aegis_err *err)
{
    for (size_t i = 0; dns01_registry[i] != NULL; i++) {
        if (HAS(spec, dns01_registry[i]->spec_field)) {
            *ops = dns01_registry[i];
            return 0;
        }
    }
    *ops = NULL;
    if (HAS(spec, API_F_ACME_SOLVER_DNS01_CLOUDFLARE))
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "spec.acme.solvers[].dns01.cloudflare",
                             "the Cloudflare DNS-01 provider is not available in this version of "
                             "Aegis: use dns01.exec");
    return aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.solvers[].dns01",
                         "the dns01 solver names no provider: give exec");
}
