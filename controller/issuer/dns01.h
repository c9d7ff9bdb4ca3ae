/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS-01 providers (RFC 8555 section 8.4): publish and remove the TXT record
 * "_acme-challenge.<name>." holding base64url(SHA-256(key authorization)). Each provider is one
 * `const struct dns01_provider_ops` in its own file, listed in the one table of dns01.c; the ACME
 * issuer picks the one whose member of spec.acme.solvers[].dns01 is present.
 *
 * Shipped: exec (dns01_exec.c, lego's exec protocol). Cloudflare is the next row of the table.
 * Providers are called from the issuance workers: they keep no global state.
 */
#ifndef AEGIS_DNS01_H
#define AEGIS_DNS01_H

#include "aegis/api_types.gen.h"
#include "aegis/err.h"

/* What a provider is given for one record. Every pointer is borrowed for the call. */
struct dns01_record {
    const struct aegis_acme_solver_dns01 *spec; /* the solver's dns01 member */
    const char *ns;                             /* the Issuer's namespace (for secretRefs) */
    const char *secrets_dir;
    const char *fqdn;  /* "_acme-challenge.example.com." (trailing dot, as lego passes it) */
    const char *value; /* the TXT value */
};

struct dns01_provider_ops {
    const char *name; /* the member of the dns01 solver: "exec", "cloudflare" */
    int spec_field;   /* API_F_ACME_SOLVER_DNS01_* */
    /* Publishes the record; 0 or a negative code with err saying what to fix. */
    int (*present)(const struct dns01_record *rec, struct aegis_err *err);
    /* Removes it; same contract (a failure is logged, never fatal to an issuance). */
    int (*cleanup)(const struct dns01_record *rec, struct aegis_err *err);
};

/* The registry (dns01.c), NULL-terminated. */
extern const struct dns01_provider_ops *const dns01_registry[];
/* The exec provider (dns01_exec.c). */
extern const struct dns01_provider_ops dns01_exec_ops;
/* The Cloudflare provider (dns01_cloudflare.c). */
extern const struct dns01_provider_ops dns01_cloudflare_ops;

/* The provider for spec, or -AEGIS_E_UNSUPPORTED with a message naming the missing one. */
int dns01_for_spec(const struct aegis_acme_solver_dns01 *spec,
                   const struct dns01_provider_ops **ops, struct aegis_err *err);

/* Bytes of a provider command's output kept for an error message. */
#define DNS01_EXEC_OUTPUT_MAX 2048
/* When spec.exec.timeout is 0 (never after defaulting). */
#define DNS01_EXEC_TIMEOUT_DEFAULT_MS 60000

#endif
