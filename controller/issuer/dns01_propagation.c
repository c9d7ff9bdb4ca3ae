/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS-01 propagation checks (dns01_propagation.h) with glibc's resolver: res_ninit on a private
 * res_state, the solver's nameservers put in its list, one TXT query with res_nquery, the answer
 * walked with ns_initparse/ns_parserr.
 */
#include "issuer/dns01_propagation.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "aegis/alloc.h"
#include "aegis/net.h"

#define WHERE "spec.acme.solvers[].dns01.nameservers"

int dns01_nameservers_check(const struct aegis_acme_solver_dns01 *spec, struct aegis_err *err)
{
    if (spec->nameservers.n > DNS01_NAMESERVERS_MAX)
        return aegis_err_set(err, -AEGIS_E_LIMIT, WHERE, "give at most %d nameservers",
                             DNS01_NAMESERVERS_MAX);
    for (size_t i = 0; i < spec->nameservers.n; i++) {
        const char *s = spec->nameservers.v[i];
        struct sockaddr_storage sa;
        socklen_t len;

        if (aegis_net_parse_addr(s, strlen(s), &sa, &len) < 0 || sa.ss_family != AF_INET)
            return aegis_err_set(err, -AEGIS_E_INVALID, WHERE,
                                 "\"%s\" is not a numeric IPv4 ADDR:PORT (e.g. 10.0.0.53:53)", s);
    }
    return 0;
}

bool dns01_answer_has_txt(const unsigned char *msg, size_t len, const char *value)
{
    size_t want = strlen(value);
    ns_msg handle;

    if (len > DNS01_ANSWER_MAX || ns_initparse(msg, (int)len, &handle) < 0)
        return false;
    for (int i = 0; i < ns_msg_count(handle, ns_s_an); i++) {
        const unsigned char *rd;
        char joined[1024];
        size_t rdlen, o = 0, n = 0;
        ns_rr rr;

        if (ns_parserr(&handle, ns_s_an, i, &rr) < 0)
            return false;
        if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
            continue;
        rd = ns_rr_rdata(rr);
        rdlen = ns_rr_rdlen(rr);
        /* RDATA: one or more <length byte><bytes> character-strings (RFC 1035 3.3.14). */
        while (o < rdlen) {
            size_t l = rd[o++];

            if (l > rdlen - o || n + l >= sizeof(joined))
                break;
            memcpy(joined + n, rd + o, l);
            n += l;
            o += l;
        }
        if (o == rdlen && n == want && memcmp(joined, value, n) == 0)
            return true;
    }
    return false;
}

int dns01_txt_visible(const struct aegis_acme_solver_dns01 *spec, const char *fqdn,
                      const char *value, bool *visible, struct aegis_err *err)
{
    struct __res_state rs;
    unsigned char *answer = NULL;
    int n, rc = 0;

    *visible = false;
    rc = dns01_nameservers_check(spec, err);
    if (rc < 0)
        return rc;
    memset(&rs, 0, sizeof(rs));
    if (res_ninit(&rs) < 0)
        return aegis_err_set(err, -EIO, "dns01", "cannot set up the resolver (/etc/resolv.conf)");
    if (spec->nameservers.n > 0) {
        rs.nscount = 0;
        for (size_t i = 0; i < spec->nameservers.n; i++) {
            struct sockaddr_storage sa;
            socklen_t len;

            aegis_net_parse_addr(spec->nameservers.v[i], strlen(spec->nameservers.v[i]), &sa, &len);
            memcpy(&rs.nsaddr_list[rs.nscount++], &sa, sizeof(struct sockaddr_in));
        }
    }
    rs.retrans = DNS01_QUERY_TIMEOUT_S;
    rs.retry = DNS01_QUERY_TRIES;
    /* The record is asked for as written, never completed with the search list. */
    rs.options &= ~(unsigned long)(RES_DEFNAMES | RES_DNSRCH);
    answer = aegis_malloc(DNS01_ANSWER_MAX);
    n = res_nquery(&rs, fqdn, ns_c_in, ns_t_txt, answer, DNS01_ANSWER_MAX);
    if (n >= 0) {
        *visible = dns01_answer_has_txt(answer, (size_t)(n < DNS01_ANSWER_MAX ? n : 0), value);
    } else if (rs.res_h_errno != HOST_NOT_FOUND && rs.res_h_errno != NO_DATA) {
        /* NXDOMAIN and NODATA are answers (not there yet); anything else is no answer. */
        rc = aegis_err_set(
            err, -EIO, "dns01", "no answer to the TXT query for %s from %s (%s)", fqdn,
            spec->nameservers.n > 0 ? spec->nameservers.v[0] : "the system's resolvers",
            hstrerror(rs.res_h_errno));
    }
    free(answer);
    res_nclose(&rs);
    return rc;
}
