/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP Strict Transport Security (RFC 6797): every HTTPS response of a host with hsts enabled
 * carries its Strict-Transport-Security header, replacing one an upstream sent. It is added by a
 * per-request prefilter rather than to the response headers up front, because the proxy resets
 * the response when it forwards the request; a prefilter runs when the response starts, whoever
 * produces it. RFC 6797 7.2: the header is never sent over plain HTTP (the router only attaches it
 * on TLS connections).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "handler.h"

struct hsts_prefilter {
    h2o_req_prefilter_t super;
    h2o_iovec_t value;
};

h2o_iovec_t dp_hsts_value(const struct rconf_host *h)
{
    char *v;

    if (!h->tls || !h->hsts.enabled)
        return h2o_iovec_init(NULL, 0);
    v = aegis_asprintf("max-age=%lld%s%s", (long long)h->hsts.max_age,
                       h->hsts.include_subdomains ? "; includeSubDomains" : "",
                       h->hsts.preload ? "; preload" : "");
    return h2o_iovec_init(v, strlen(v));
}

static void on_setup_ostream(h2o_req_prefilter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    const struct hsts_prefilter *p = (const struct hsts_prefilter *)self;

    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY,
                   p->value.base, p->value.len, 1);
    h2o_setup_next_prefilter(self, req, slot);
}

void dp_hsts_attach(h2o_req_t *req, const struct dp_vhost *v)
{
    struct hsts_prefilter *p;

    if (v->hsts.len == 0)
        return;
    p = (struct hsts_prefilter *)h2o_add_prefilter(req, sizeof(*p));
    p->super.on_setup_ostream = on_setup_ostream;
    p->value = v->hsts;
}
