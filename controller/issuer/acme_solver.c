/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Solver selection for ACME challenges (acme_solver.h).
 */
#include "issuer/acme_solver.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define HAS(obj, field) (((obj)->present >> (field)) & 1u)

/* Ranks: an exact dnsNames match, then zones by length (1000 + length), then an empty selector. */
#define RANK_NONE (-1)
#define RANK_ANY 0
#define RANK_ZONE 1000
#define RANK_NAME 100000

/* Whether name is zone or below it (case-insensitive, on label boundaries). */
static bool in_zone(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);

    while (z > 0 && zone[z - 1] == '.')
        z--;
    if (z == 0)
        return true;
    if (n < z || strncasecmp(name + n - z, zone, z) != 0)
        return false;
    return n == z || name[n - z - 1] == '.';
}

static int rank(const struct aegis_acme_solver *s, const char *name, const char *base)
{
    const struct aegis_acme_solver_selector *sel = &s->selector;
    int best = RANK_NONE;

    if (sel->dns_names.n == 0 && sel->dns_zones.n == 0)
        return RANK_ANY;
    for (size_t i = 0; i < sel->dns_names.n; i++) {
        if (strcasecmp(sel->dns_names.v[i], name) == 0)
            return RANK_NAME;
    }
    for (size_t i = 0; i < sel->dns_zones.n; i++) {
        int r = RANK_ZONE + (int)strlen(sel->dns_zones.v[i]);

        if (in_zone(base, sel->dns_zones.v[i]) && r > best)
            best = r;
    }
    return best;
}

int acme_solver_select(const struct aegis_acme_issuer *spec, const char *name, size_t *index,
                       struct aegis_err *err)
{
    bool wildcard = strncmp(name, "*.", 2) == 0;
    const char *base = wildcard ? name + 2 : name;
    int best = RANK_NONE;
    bool skipped_http = false;

    for (size_t i = 0; i < spec->solvers.n; i++) {
        const struct aegis_acme_solver *s = &spec->solvers.v[i];
        int r = rank(s, name, base);

        if (r == RANK_NONE)
            continue;
        if (wildcard && !HAS(s, API_F_ACME_SOLVER_DNS01)) {
            skipped_http = true;
            continue;
        }
        if (r > best) {
            best = r;
            *index = i;
        }
    }
    if (best != RANK_NONE)
        return 0;
    if (skipped_http)
        return aegis_err_set(err, -AEGIS_E_NOTFOUND, "spec.acme.solvers",
                             "%s is a wildcard name, which only DNS-01 can validate: add a dns01 "
                             "solver whose selector matches it",
                             name);
    return aegis_err_set(err, -AEGIS_E_NOTFOUND, "spec.acme.solvers",
                         "no solver's selector matches %s: add its name or zone to a selector, or "
                         "a solver without a selector",
                         name);
}
