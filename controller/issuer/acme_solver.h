/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which of an ACME Issuer's solvers answers the challenge for one name (cert-manager's rules):
 * a solver whose selector lists the name in dnsNames beats one whose dnsZones hold it, a longer
 * matching zone beats a shorter one, any of those beats an empty selector (which matches every
 * name), and the first of equals wins. A wildcard name ("*.example.com") can only be validated
 * with DNS-01 (RFC 8555 section 7.1.3), so HTTP-01 solvers are skipped for it; zones are matched
 * against the name below the "*.". Pure: no I/O.
 */
#ifndef AEGIS_ACME_SOLVER_H
#define AEGIS_ACME_SOLVER_H

#include <stddef.h>

#include "aegis/api_types.gen.h"
#include "aegis/err.h"

/*
 * The index into spec->solvers of the solver for name, or -AEGIS_E_NOTFOUND with a message that
 * says what to add.
 */
int acme_solver_select(const struct aegis_acme_issuer *spec, const char *name, size_t *index,
                       struct aegis_err *err);

#endif
