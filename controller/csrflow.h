/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CSR flow: a Certificate with `csr:` (and no issuerRef) gets its private key made here and
 * kept sealed in the store, and a PKCS#10 CSR (RFC 2986) for its names that the user takes to an
 * outside CA (`aegisctl csr get`). The certificate the CA signs comes back through
 * spec.csr.certificate or `aegisctl csr import`; it is checked against the stored key (and, like
 * a custom certificate, for chain order, names, expiry: import.h) and stored as the Certificate's
 * record with source "csr", which makes the Certificate ready.
 *
 * Storage: the pending request is the record csr/<namespace>/<name> (CSR PEM, sealed key, and in
 * meta.extra {"request": SHA-256 of what was asked}); the issued certificate is the usual record
 * certificate/<namespace>/<name> (chain, the same key, and the CSR it answers). Keeping the
 * request apart means a new CSR (the names changed, or a renewal with a new key) never takes
 * away the certificate being served until its successor is imported.
 *
 * Why not an issuer under controller/issuer/: issuers are chosen by an Issuer's spec and sign in
 * one call or a few; here the Certificate's own spec selects the flow and the signing happens
 * outside, at the user's pace, so it is its own step beside import.c.
 */
#ifndef AEGIS_CSRFLOW_H
#define AEGIS_CSRFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"
#include "import.h"

struct store;

/* The store kind of a pending request. */
#define CSRFLOW_STORE_KIND "csr"

enum csrflow_state {
    CSRFLOW_WAITING, /* the CSR exists; the signed certificate has not come back */
    CSRFLOW_READY,   /* the signed certificate is stored */
};

/* One Certificate with spec.csr. Every pointer is borrowed for the call. */
struct csrflow_request {
    const char *ns;                            /* metadata.namespace ("default" when unset) */
    const char *name;                          /* metadata.name */
    const struct aegis_certificate_spec *cert; /* the spec; csrflow_import may have NULL */
    struct store *store; /* opened with the master key: the request's key is sealed */
    int64_t now;         /* Unix seconds, from the injected clock */
    /*
     * Make a new CSR even when the stored one still matches the spec (a renewal): with
     * privateKey.rotationPolicy Always it gets a new key, with Never it keeps the key.
     */
    bool renew;
};

/*
 * The CSR for req as PEM in a new buffer *csr_pem (free with free()). The stored one is returned
 * while it matches the spec (names, subject, key type) and req->renew is false, so repeated calls
 * print the same CSR; otherwise a CSR is made, with a new key (or, for rotationPolicy Never, the
 * previous key when it has the requested type), and stored before it is returned. *made (may be
 * NULL) says whether a new CSR was made. The CSR's subject is spec.csr.subject (or spec.subject)
 * with spec.commonName, or the first dnsName as CN when commonName is not given.
 */
int csrflow_csr(const struct csrflow_request *req, char **csr_pem, bool *made,
                struct aegis_err *err);

/*
 * Takes the certificate the outside CA signed (chain_pem, len bytes: the leaf, and intermediates
 * in any order), checks that its key is the key of the stored CSR (a mismatch is a clear error
 * naming the Certificate), that it covers the names the CSR asked for, that it is one chain and
 * not expired, then stores it as certificate/<ns>/<name> (source "csr"). field names where the
 * certificate came from in messages ("spec.csr.certificate", "--cert signed.pem"). res
 * (initialized by the caller) receives the record and any warnings; *unchanged (may be NULL) is
 * set when the same certificate was already stored (nothing is written then).
 */
int csrflow_import(const struct csrflow_request *req, const char *chain_pem, size_t len,
                   const char *field, struct import_result *res, bool *unchanged,
                   struct aegis_err *err);

/*
 * The controller's step for a Certificate with spec.csr: with spec.csr.certificate, read it (pem,
 * file, or secretRef under secrets_dir) and import it (READY); without, make sure the CSR exists
 * (WAITING). res (initialized by the caller) receives the imported record and warnings.
 */
int csrflow_reconcile(const struct csrflow_request *req, const char *secrets_dir,
                      enum csrflow_state *state, struct import_result *res, struct aegis_err *err);

#endif
