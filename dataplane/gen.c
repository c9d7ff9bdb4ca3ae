/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration generations (gen.h): from a validated rconf snapshot to an h2o configuration. The
 * snapshot was checked completely by rconf_parse, so what fails here is the environment (an
 * upstream TLS context OpenSSL cannot build), not the input.
 */
#include "gen.h"

#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "aegis/alloc.h"
#include "handler/handler.h"
#include "log.h"
#include "metrics.h"
#include "router.h"

/* Names of the two h2o hosts. No request reaches them by name: the accept contexts route every
 * request to the catch-all, and the proxy handler is called by the router directly. */
#define CATCH_ALL_NAME "aegis.catch-all.invalid"
#define UPSTREAMS_NAME "aegis.upstreams.invalid"

static void gen_free(struct dp_gen *g)
{
    if (g == NULL)
        return;
    h2o_config_dispose(&g->globalconf);
    for (size_t i = 0; g->vhosts != NULL && i < g->rc->n_hosts; i++) {
        dp_proxy_vhost_dispose(&g->vhosts[i]);
        free(g->vhosts[i].hsts.base);
    }
    free(g->vhosts);
    rconf_unref(g->rc);
    free(g);
}

int dp_gen_new(struct rconf *rc, struct dp_gen **out, struct aegis_err *err)
{
    struct dp_gen *g = aegis_calloc(1, sizeof(*g));
    h2o_hostconf_t *catch_all, *upstreams;
    h2o_pathconf_t *route, *proxies;
    int r = 0;

    *out = NULL;
    atomic_init(&g->refs, 1);
    g->rc = rconf_ref(rc);
    h2o_config_init(&g->globalconf);
    /* The Server header names the product, not its version. */
    g->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("aegis"));
    g->globalconf.proxy.emit_x_forwarded_headers = 1;
    g->globalconf.proxy.emit_via_header = 0;

    catch_all =
        h2o_config_register_host(&g->globalconf, h2o_iovec_init(H2O_STRLIT(CATCH_ALL_NAME)), 65535);
    route = h2o_config_register_path(catch_all, "/", 0);
    /* h2o would print its proxy's errors to stderr in its own format; the proxy logs them. */
    route->error_log.emit_request_errors = 0;
    dp_router_register(route, g);
    dp_accesslog_register(route, g);
    g->hosts[0] = catch_all;
    g->hosts[1] = NULL;

    upstreams =
        h2o_config_register_host(&g->globalconf, h2o_iovec_init(H2O_STRLIT(UPSTREAMS_NAME)), 65535);
    proxies = h2o_config_register_path(upstreams, "/", 0);
    dp_accesslog_register(proxies, g); /* a request reprocessed towards an upstream ends here */
    g->vhosts = aegis_calloc(rc->n_hosts + 1, sizeof(*g->vhosts));
    for (size_t i = 0; i < rc->n_hosts; i++) {
        struct dp_vhost *v = &g->vhosts[i];

        v->host = &rc->hosts[i];
        v->hsts = dp_hsts_value(v->host);
        v->metrics = dp_metrics_host(v->host->name);
        r = dp_proxy_vhost_init(v, err);
        if (r < 0)
            goto out;
    }
    dp_proxy_register(proxies, g);
    *out = g;
    g = NULL;
out:
    gen_free(g);
    return r;
}

struct dp_gen *dp_gen_ref(struct dp_gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void dp_gen_unref(struct dp_gen *g)
{
    if (g != NULL && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        gen_free(g);
}
