/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/issuer/acme_solver.c: a table of names against one Issuer's solvers -
 * exact dnsNames beat zones, the longest zone wins, an empty selector is the fallback, zones
 * match on label boundaries and case-insensitively, wildcards only go to DNS-01 (and say so when
 * none matches), and no match says what to add.
 */
#include <string.h>

#include "check.h"
#include "issuer/acme_solver.h"

#define BIT(f) (1ull << (f))

int main(void)
{
    char *zones_a[] = {"example.com"};
    char *zones_b[] = {"sub.example.com"};
    char *names_c[] = {"exact.sub.example.com"};
    struct aegis_acme_solver s[4];
    struct aegis_acme_issuer spec = {0};
    static const struct {
        const char *name;
        int want; /* index, or -1 for an error */
    } cases[] = {
        {"www.other.org", 0},         /* only the empty selector matches */
        {"example.com", 1},           /* zone example.com (dns01) */
        {"a.example.com", 1},         /* below it */
        {"notexample.com", 0},        /* not a label boundary */
        {"x.sub.example.com", 2},     /* the longer zone wins */
        {"EXACT.sub.example.com", 3}, /* an exact name beats every zone, any case */
        {"*.example.com", 1},         /* a wildcard: DNS-01 only */
        {"*.sub.example.com", 1},     /* zone sub.example.com is HTTP-01: skipped */
    };

    memset(s, 0, sizeof(s));
    s[0].present = BIT(API_F_ACME_SOLVER_HTTP01); /* empty selector, http01 */
    s[1].present = BIT(API_F_ACME_SOLVER_DNS01) | BIT(API_F_ACME_SOLVER_SELECTOR);
    s[1].selector.dns_zones = (struct aegis_strv){zones_a, NULL, 1};
    s[2].present = BIT(API_F_ACME_SOLVER_HTTP01) | BIT(API_F_ACME_SOLVER_SELECTOR);
    s[2].selector.dns_zones = (struct aegis_strv){zones_b, NULL, 1};
    s[3].present = BIT(API_F_ACME_SOLVER_HTTP01) | BIT(API_F_ACME_SOLVER_SELECTOR);
    s[3].selector.dns_names = (struct aegis_strv){names_c, NULL, 1};
    spec.solvers.v = s;
    spec.solvers.n = 4;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got = 99;
        struct aegis_err e = {0};
        int rc = acme_solver_select(&spec, cases[i].name, &got, &e);

        CHECK(rc == 0 && (int)got == cases[i].want, cases[i].name);
    }
    {
        struct aegis_acme_issuer http_only = {0};
        struct aegis_err e = {0};
        size_t got;

        http_only.solvers.v = s;
        http_only.solvers.n = 1;
        CHECK(acme_solver_select(&http_only, "*.example.com", &got, &e) == -AEGIS_E_NOTFOUND &&
                  strstr(e.msg, "only DNS-01") != NULL,
              "a wildcard with HTTP-01 solvers only: says DNS-01 is needed");
        http_only.solvers.v = s + 2;
        CHECK(acme_solver_select(&http_only, "www.other.org", &got, &e) == -AEGIS_E_NOTFOUND &&
                  strstr(e.msg, "no solver") != NULL,
              "no selector matches: says so");
    }
    return check_done();
}
