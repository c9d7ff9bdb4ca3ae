/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloudflareOriginCA issuer: certificates from Cloudflare's Origin CA (`POST /certificates`
 * of the v4 API), trusted by Cloudflare's edge only - for origins behind Cloudflare's proxy,
 * where HTTP-01 may not reach the origin.
 *
 * The key is made here per spec.cloudflareOriginCA.requestType (origin-rsa: RSA 2048, the
 * default; origin-ecc: ECDSA P-256; a kept key of rotationPolicy Never is reused when it is of
 * that type) with a CSR for the Certificate's dnsNames (wildcards as the API allows them); the
 * certificate comes back in one call (DONE). Validity is requestedValidity days (5475, 15 years,
 * by default), not the Certificate's duration; renewal follows the certificate's real notAfter
 * (decide.h).
 *
 * Failures: unreachable API, 5xx and temporary codes are errors the reconciler backs off from
 * (1 min, 2 min, ...), with the status naming the failure; 429 is PENDING until Retry-After;
 * refusals carry Cloudflare's words and the likely fix (cloudflare_api.h).
 *
 * Revocation (spec.cloudflareOriginCA.revokeOnDelete): cloudflare_origin_revoke() revokes a
 * stored certificate by its serial number, which is what the API's certificate id is
 * (`DELETE /certificates/{id}`).
 */
#ifndef AEGIS_ISSUER_CLOUDFLARE_ORIGIN_H
#define AEGIS_ISSUER_CLOUDFLARE_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include "issuer/issuer.h"

extern const struct issuer_ops issuer_cloudflare_origin_ca_ops;

/* The token permission the Origin CA needs, named in messages. */
#define CF_ORIGIN_PERMISSION "Zone - SSL and Certificates - Edit"
/* The API's certificate id of a serial number (hex, as the store keeps it) in decimal. */
#define CF_ORIGIN_ID_MAX 64

/*
 * Revokes the certificate of serial (hex) at the Origin CA of spec (credentials resolved in ns
 * under secrets_dir). 0 also when Cloudflare no longer knows it; else a failure class of
 * cloudflare_api.h with err.
 */
int cloudflare_origin_revoke(const struct aegis_cloudflare_origin_ca_issuer *spec, const char *ns,
                             const char *secrets_dir, const char *serial_hex, int64_t now,
                             struct aegis_err *err);

/* The API id of a hex serial (its decimal value) into out; -AEGIS_E_INVALID for bad hex. */
int cloudflare_origin_id_of_serial(const char *serial_hex, char out[CF_ORIGIN_ID_MAX]);

#endif
