/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server (server.h): wiring of the generation, the TLS contexts and the workers, and the order
 * they are torn down in - contexts before the h2o configuration they use, the configuration (whose
 * proxy handlers hold timers on the first loop) before the loops, and the front TLS contexts last,
 * once no handshake can be pending.
 */
#include "server.h"

#include <stdlib.h>

#include "aegis/alloc.h"
#include "gen.h"
#include "health.h"
#include "listener.h"
#include "log.h"
#include "tls.h"
#include "worker.h"

struct dp_server {
    struct rconf *rc;
    struct dp_tls *tls;
    SSL_CTX **front; /* one per HTTPS address */
    size_t n_front;
    struct dp_gen *gen;
    struct dp_health *health; /* the upstream checker */
    struct dp_worker *workers;
    unsigned n_workers;
    unsigned n_inited; /* workers to dispose */
    bool abandoned;    /* a drain was incomplete */
};

/* Keeps what an incomplete drain leaves behind reachable until exit (see dp_server_free). */
static struct dp_server *abandoned_server;

int dp_server_new(struct rconf *rc, unsigned n_workers, struct dp_server **out,
                  struct aegis_err *err)
{
    struct dp_server *s = aegis_calloc(1, sizeof(*s));
    struct dp_listen_spec *specs = NULL;
    size_t n_specs = 0;
    int r = 0;

    *out = NULL;
    s->rc = rconf_ref(rc);
    for (size_t i = 0; i < rc->n_http + rc->n_https; i++) {
        r = dp_listener_probe(i < rc->n_http ? &rc->http[i] : &rc->https[i - rc->n_http], err);
        if (r < 0)
            goto out;
    }
    s->tls = dp_tls_new();
    s->front = aegis_calloc(rc->n_https + 1, sizeof(*s->front));
    for (; s->n_front < rc->n_https; s->n_front++) {
        r = dp_tls_front_ctx_new(s->tls, &s->front[s->n_front], err);
        if (r < 0)
            goto out;
    }
    r = dp_gen_new(rc, &s->gen, err);
    if (r < 0)
        goto out;
    r = dp_health_new(&s->health, err);
    if (r < 0)
        goto out;
    dp_health_set_gen(s->health, s->gen);

    specs = aegis_calloc(rc->n_http + rc->n_https + 1, sizeof(*specs));
    for (size_t i = 0; i < rc->n_http; i++)
        specs[n_specs++] = (struct dp_listen_spec){&rc->http[i], NULL};
    for (size_t i = 0; i < rc->n_https; i++)
        specs[n_specs++] = (struct dp_listen_spec){&rc->https[i], s->front[i]};
    s->n_workers = n_workers;
    s->workers = aegis_calloc(n_workers, sizeof(*s->workers));
    for (; s->n_inited < n_workers; s->n_inited++) {
        r = dp_worker_init(&s->workers[s->n_inited], s->n_inited, s->gen, specs, n_specs, err);
        if (r < 0) {
            s->n_inited++; /* partly made: disposed with the others */
            goto out;
        }
    }
    *out = s;
    s = NULL;
out:
    free(specs);
    dp_server_free(s);
    return r;
}

int dp_server_start(struct dp_server *s, struct aegis_err *err)
{
    for (unsigned i = 0; i < s->n_workers; i++) {
        int r = dp_worker_start(&s->workers[i], err);

        if (r < 0)
            return r;
    }
    return 0;
}

bool dp_server_stop(struct dp_server *s)
{
    bool drained = true;

    for (unsigned i = 0; i < s->n_inited; i++) {
        if (s->workers[i].running)
            dp_worker_request_stop(&s->workers[i]);
    }
    for (unsigned i = 0; i < s->n_inited; i++) {
        if (s->workers[i].running) {
            dp_worker_join(&s->workers[i]);
            drained &= s->workers[i].drained;
        }
    }
    s->abandoned = !drained;
    return drained;
}

void dp_server_free(struct dp_server *s)
{
    if (s == NULL)
        return;
    if (s->abandoned) {
        /* Open connections still use the contexts, the generation and the TLS contexts. */
        abandoned_server = s;
        return;
    }
    dp_health_free(s->health);
    for (unsigned i = 0; i < s->n_inited; i++) {
        dp_worker_join(&s->workers[i]);
        dp_worker_dispose(&s->workers[i]);
    }
    dp_gen_unref(s->gen);
    for (unsigned i = 0; i < s->n_inited; i++)
        dp_worker_destroy_loop(&s->workers[i]);
    free(s->workers);
    for (size_t i = 0; i < s->n_front; i++)
        SSL_CTX_free(s->front[i]);
    free(s->front);
    dp_tls_free(s->tls);
    rconf_unref(s->rc);
    free(s);
}
