/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS-01 propagation: whether a TXT record a provider published is visible yet, asked of the
 * solver's nameservers (spec.acme.solvers[].dns01.nameservers, IPv4 ADDR:PORT) or the system's
 * resolvers, through glibc's resolver (res_nquery and ns_parse of libresolv, with a private
 * res_state per call, so it is safe on the issuance workers). One query per call, bounded by
 * DNS01_QUERY_TIMEOUT_S: the ACME issuer asks again on its next call (PENDING) until the record
 * is seen or propagationTimeout has passed, so no worker sleeps on DNS.
 */
#ifndef AEGIS_DNS01_PROPAGATION_H
#define AEGIS_DNS01_PROPAGATION_H

#include <stdbool.h>
#include <stddef.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"

/* One query: the resolver's per-try timeout, and how many tries per nameserver. */
#define DNS01_QUERY_TIMEOUT_S 2
#define DNS01_QUERY_TRIES 1
/* The biggest DNS answer read (TCP fallback included). */
#define DNS01_ANSWER_MAX 8192
/* Nameservers of one solver (glibc's MAXNS). */
#define DNS01_NAMESERVERS_MAX 3
/* The ACME issuer looks again this long after a record was not visible. */
#define DNS01_PROPAGATION_POLL_S 2

/* Checks spec->nameservers (numeric IPv4 ADDR:PORT, at most DNS01_NAMESERVERS_MAX). */
int dns01_nameservers_check(const struct aegis_acme_solver_dns01 *spec, struct aegis_err *err);

/*
 * Asks whether fqdn ("_acme-challenge.example.com.") has a TXT record holding value. Returns 0
 * with *visible (false also when the name does not exist yet), or a negative code when no
 * nameserver answered (err says which and why; the caller treats it as not visible yet).
 */
int dns01_txt_visible(const struct aegis_acme_solver_dns01 *spec, const char *fqdn,
                      const char *value, bool *visible, struct aegis_err *err);

/*
 * Whether a DNS answer message (wire format, len bytes) holds a TXT record in its answer section
 * whose character-strings, joined, equal value. False for a malformed message. Exposed for the
 * unit tests.
 */
bool dns01_answer_has_txt(const unsigned char *msg, size_t len, const char *value);

#endif
