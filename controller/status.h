/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The status model: what the controller tells about each resource, in the shape of the CRDs'
 * status subresource (schemas/api.yaml's IssuerStatus, CertificateStatus, HostStatus, held in
 * their generated structs). Kubernetes-style conditions (Ready; Issuing for Certificates, as
 * cert-manager has them) with reason, message, observedGeneration and a lastTransitionTime that
 * moves only when the condition's status does; a top-level observedGeneration (which kstatus,
 * Argo CD and Flux read to know that the status is current); a Certificate's validity, renewal
 * time, revision, serial, fingerprint, issuer and failure bookkeeping.
 *
 * Statuses are filled from decisions (decide.h) and store metadata here; the reconciler writes
 * them out (a file in directory mode, the status subresource in Kubernetes). Times are RFC 3339
 * UTC strings with second precision. Nothing here holds key material: only public metadata goes
 * in, and every message is scrubbed of PEM private-key blocks and invalid UTF-8 before it is
 * stored, so a status can be printed, logged and served as it is.
 */
#ifndef AEGIS_STATUS_H
#define AEGIS_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"
#include "aegis/store.h"
#include "decide.h"

/* Condition types. */
#define STATUS_CONDITION_READY "Ready"
#define STATUS_CONDITION_ISSUING "Issuing"

/* "YYYY-MM-DDTHH:MM:SSZ" and its NUL, with room to spare. */
#define STATUS_TIME_MAX 32
/* Messages are cut (at a character boundary) to this many bytes, below the schema's 4096. */
#define STATUS_MESSAGE_MAX 1024
/* Reasons are cut to the schema's maxLength. */
#define STATUS_REASON_MAX 128

/*
 * Writes t (Unix seconds) as RFC 3339 UTC ("2025-06-15T00:00:00Z") into buf. Returns 0, or
 * -AEGIS_E_INVALID for a time outside the years 0000-9999 or a buf shorter than 21 bytes.
 */
int status_time_format(int64_t t, char *buf, size_t size);
/*
 * Parses an RFC 3339 time ("T" or "t", "Z" or a +hh:mm offset, an optional fraction which is
 * dropped) into Unix seconds. Returns 0 or -AEGIS_E_INVALID.
 */
int status_time_parse(const char *s, int64_t *t);

/* The condition of that type in v[0..n), or NULL. */
const struct aegis_condition *status_condition_find(const struct aegis_condition *v, size_t n,
                                                    const char *type);
/*
 * Sets the condition of that type in the list *v (n entries; grown with the allocator, freed by
 * api_dispose of the status holding it): status, reason, message (both may be NULL) and
 * observedGeneration are replaced; lastTransitionTime becomes now only when the condition is
 * new or its status changes. Returns true when anything changed.
 */
bool status_condition_set(struct aegis_condition **v, size_t *n, const char *type,
                          enum aegis_condition_status status, const char *reason,
                          const char *message, int64_t generation, int64_t now);

/* ---- Certificates ---- */

/* Everything the Certificate's status is made from. Every pointer is borrowed. */
struct status_cert_input {
    const struct decide_cert_result *decision; /* required */
    const struct store_meta *stored;           /* the stored record's metadata; NULL when none */
    const struct decide_failures *failures;    /* NULL: none */
    const char *issuer_message; /* why the Issuer is not ready, for the messages; may be NULL */
    /* What an issuance that answered PENDING in this step waits for (issuer_result.message, e.g.
     * "waiting for the CA to validate"), added to the Issuing condition; NULL or "": none. */
    const char *pending_message;
};

/*
 * Brings st (a status read back, or zeroed) up to date at now: observedGeneration, the Ready and
 * Issuing conditions, the certificate's facts (cleared when nothing is stored) and the failure
 * bookkeeping (cleared when there are no failures; nextRetryTime is the end of the backoff).
 * Returns true when anything changed, so an unchanged status need not be written.
 */
bool status_certificate_update(struct aegis_certificate_status *st,
                               const struct status_cert_input *in, int64_t now);

/*
 * The failure bookkeeping a status holds, for the decision after a restart: attempts, last
 * failure time and the failure's reason and message (from a False Issuing condition). The spec
 * hash of the failures is not part of the status, so it comes back "" (see decide_failures).
 */
void status_certificate_failures(const struct aegis_certificate_status *st,
                                 struct decide_failures *out);

/* ---- Hosts and Issuers ---- */

struct status_host_input {
    const struct decide_host_result *decision; /* required */
    int64_t generation;
    const char *cert_ns;      /* the bound Certificate, for messages; NULL with tls.mode none */
    const char *cert_name;    /* ... */
    const char *cert_message; /* the Certificate's Ready message when it is not ready; or NULL */
    bool conflict; /* an explicit Certificate took the place of the implicit one (decide.h) */
};

/* Sets observedGeneration and the Ready condition. Returns true when anything changed. */
bool status_host_update(struct aegis_host_status *st, const struct status_host_input *in,
                        int64_t now);

/* Sets observedGeneration and the Ready condition. Returns true when anything changed. */
bool status_issuer_update(struct aegis_issuer_status *st, int64_t generation, bool ready,
                          const char *reason, const char *message, int64_t now);

/* ---- JSON ---- */

/*
 * A status struct of type (&api_t_certificate_status, &api_t_host_status or
 * &api_t_issuer_status) as the JSON object of the CRD's status: present fields only. Any string
 * holding a PEM private-key block is replaced by "<redacted>". The caller owns the result.
 */
json_t *status_to_json(const struct api_type *type, const void *st);
/*
 * Reads a status JSON object into st (caller's storage of type->size bytes, initialised here;
 * api_dispose frees it) through api_decode, the decoder resources go through: known fields only,
 * types, enums, formats, lengths, bounds, required fields, the type's rules. Returns 0, or
 * -AEGIS_E_INVALID with err naming the field of the first error (st is then left empty).
 */
int status_from_json(const struct api_type *type, const json_t *j, void *st, struct aegis_err *err);

#endif
