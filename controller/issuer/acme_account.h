/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACME accounts (RFC 8555 section 7.3) for the acme issuer: one process-wide context per Issuer
 * (namespace, name, server, key algorithm, trust bundle, EAB key id) holding the CA client
 * (acme_client.h), the account key and the account URL (kid). The key is kept sealed in the
 * store as acme-account/<ns>/<issuer>, the URL in that record's public metadata; a context is
 * made once and lives as long as the process. Each context has its own mutex, held while the
 * account is looked up or registered, so that concurrent issuances of one Issuer register one
 * account.
 */
#ifndef AEGIS_ACME_ACCOUNT_H
#define AEGIS_ACME_ACCOUNT_H

#include <openssl/evp.h>
#include <stddef.h>

#include "issuer/acme_client.h"
#include "issuer/issuer.h"

struct acme_account;

/* The longest account URL kept. */
#define ACME_ACCOUNT_KID_MAX 1024

/*
 * The account of req's Issuer, registered at the CA (made or looked up on the first call).
 * On error res->reason says which kind of failure it was.
 */
int acme_account_get(const struct issuer_request *req, struct acme_account **out,
                     struct issuer_result *res, struct aegis_err *err);

/* Borrowed for the process's life. */
struct acme_client *acme_account_client(struct acme_account *a);
EVP_PKEY *acme_account_key(struct acme_account *a);
/* The account URL into buf ("" when the account is not registered). */
void acme_account_kid(struct acme_account *a, char buf[ACME_ACCOUNT_KID_MAX]);
/* The CA does not know the account (any more, e.g. a test CA restarted): the next
 * acme_account_get registers it again. */
void acme_account_forget(struct acme_account *a);

#endif
