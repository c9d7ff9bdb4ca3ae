/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A configuration generation: the rendered configuration (rconf) turned into what h2o serves - an
 * h2o_globalconf_t with one catch-all host whose router handler (router.c) dispatches every request
 * by a hash lookup of its Host, plus one dp_vhost per configured host carrying what the handlers
 * need (its proxy handler, its precomputed HSTS value, its upstream TLS context).
 *
 * Routing through a catch-all rather than one h2o host per name keeps the per-request cost flat:
 * h2o 2.2.5 matches the Host against its host list linearly.
 *
 * Lifetime: reference counted. The server holds one reference, every worker context and every
 * connection accepted under the generation one more; the last dp_gen_unref disposes the h2o
 * configuration, after every context using it has been disposed.
 */
#ifndef DP_GEN_H
#define DP_GEN_H

#include <stdatomic.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "aegis/err.h"
#include "aegis/rconf.h"

struct dp_upstream;

struct dp_vhost {
    const struct rconf_host *host;
    h2o_handler_t *proxy;  /* handler/proxy.c: the generation's balancing proxy (one for all) */
    SSL_CTX *upstream_ssl; /* for https:// upstreams; NULL otherwise */
    h2o_iovec_t hsts;      /* the Strict-Transport-Security value; len 0: none */
    struct dp_upstream *upstreams; /* upstream.h: parallel to host->upstreams */
    /* metrics.h: the host's counters (valid for the process), filled by dp_gen_new */
    struct dp_host_metrics *metrics;
};

struct dp_gen {
    atomic_size_t refs;
    struct rconf *rc; /* a reference */
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hosts[2]; /* {catch-all, NULL}: what the accept contexts route to */
    struct dp_vhost *vhosts;  /* parallel to rc->hosts */
};

/* Builds a generation serving rc (taking a reference to it) into *out. */
int dp_gen_new(struct rconf *rc, struct dp_gen **out, struct aegis_err *err);
struct dp_gen *dp_gen_ref(struct dp_gen *g);
/* Drops a reference; the last one frees the generation. Accepts NULL. */
void dp_gen_unref(struct dp_gen *g);

/* The vhost of host h, which must belong to g's snapshot. */
static inline const struct dp_vhost *dp_gen_vhost(const struct dp_gen *g,
                                                  const struct rconf_host *h)
{
    return &g->vhosts[h - g->rc->hosts];
}

#endif
