/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The acme issuer (RFC 8555): spec.acme of an Issuer. issue() is a resumable state machine over
 * the PENDING contract of issuer.h; each call makes a bounded number of requests (timeouts in
 * acme_client.h, polling at most ACME_POLL_BUDGET_MS) and returns PENDING with a retry time for
 * anything longer.
 *
 *   account   the account key is kept sealed in the store (acme-account/<ns>/<issuer>, ES256 by
 *             default, RS256 on request) with the account URL in its public metadata; a stored
 *             key without a URL is looked up with onlyReturnExisting before a new account is
 *             made; External Account Binding when spec.acme.externalAccountBinding is given. One
 *             mutex per account: concurrent Certificates of one Issuer make one account.
 *   order     one order for every dnsName, persisted as acme-order/<ns>/<certificate> (the
 *             order, finalize and authorization URLs and the challenges presented in public
 *             metadata, the Certificate's new private key sealed), so a restart resumes it.
 *   authz     per authorization the solver chosen by acme_solver.h; HTTP-01 through
 *             req->http01 (the challenge is posted only once published() says the dataplanes
 *             serve the token), DNS-01 through a provider of dns01.h.
 *   finalize  a CSR from the persisted key; polling honours Retry-After.
 *   download  the PEM chain; with spec.acme.preferredChain the Link rel="alternate" chains are
 *             read and the one whose top issuer's common name matches is taken.
 * Challenges are cleaned up once the order is valid or invalid.
 *
 * Failures (the CA's problem document in plain words) are errors the reconciler backs off from;
 * rateLimited/429 answers PENDING at the CA's Retry-After; an unreachable CA during an order
 * answers PENDING with a growing delay (ACME_TRANSPORT_RETRY_S doubling to _MAX_S), so the order
 * is kept.
 */
#ifndef AEGIS_ISSUER_ACME_H
#define AEGIS_ISSUER_ACME_H

#include "issuer/issuer.h"

extern const struct issuer_ops issuer_acme_ops;

/* issuer_acme_ops.revoke (acme_revoke.c): revokeCert signed with the Issuer's account key. */
int acme__revoke(const struct issuer_revoke_request *req, struct aegis_err *err);

/* Polling inside one issue() call: at most this long in total, first after ACME_POLL_FIRST_MS,
 * the step doubling up to ACME_POLL_STEP_MS. */
#define ACME_POLL_BUDGET_MS 3000
#define ACME_POLL_FIRST_MS 25
#define ACME_POLL_STEP_MS 200
/* Waiting, within that budget, for the dataplanes to acknowledge a new HTTP-01 token: this often
 * (a local render and push, usually done in tens of milliseconds). */
#define ACME_PUBLISH_STEP_MS 20
/* Requests-and-answers rounds of one issue() call (bounds the work whatever the CA says). */
#define ACME_ROUNDS_MAX 24
/* A PENDING wait when the CA gave no Retry-After. */
#define ACME_RETRY_S 1
/* A CA that cannot be reached mid-order: retried after 5 s, doubling up to 5 min. */
#define ACME_TRANSPORT_RETRY_S 5
#define ACME_TRANSPORT_RETRY_MAX_S 300
/* Rate limited without a Retry-After: come back after this. */
#define ACME_RATE_LIMIT_RETRY_S 60
/* Authorizations of one order (the Certificate's dnsNames are at most 100 in the schema). */
#define ACME_AUTHZ_MAX 100
/* An order persisted longer than this is dropped and a new one made (CAs expire them in days). */
#define ACME_ORDER_MAX_AGE_S (7 * 24 * 3600)

#endif
