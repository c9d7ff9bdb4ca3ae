/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server (server.h): wiring of the generations, the TLS contexts and the workers, and the order
 * they are torn down in - contexts before the h2o configuration they use, the configuration (whose
 * proxy handlers hold timers on the first loop) before the loops, and the front TLS contexts last,
 * once no handshake can be pending.
 *
 * A swap visits the workers one after the other, the first one first: h2o 2.2.5's built-in proxy
 * registers each upstream socket pool's timer on the loop of the first context initialized for a
 * generation, and contexts initialized concurrently would race on it. The generation the swap
 * replaces goes to the first worker's graveyard, which frees it on that worker's thread once the
 * contexts, connections and readers holding it are gone.
 */
#include "server.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "gen.h"
#include "health.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "worker.h"

struct dp_server {
    pthread_mutex_t lock; /* guards gen for the readers of dp_server_gen */
    struct rconf *rc;     /* the first configuration: the listeners */
    struct dp_tls *tls;
    SSL_CTX **front; /* one per HTTPS address */
    size_t n_front;
    struct dp_gen *gen;            /* the current generation */
    struct dp_health *health;      /* the upstream checker */
    struct dp_graveyard graveyard; /* replaced generations, reaped by worker 0 */
    struct dp_worker *workers;
    unsigned n_workers;
    unsigned n_inited; /* workers to dispose */
    bool abandoned;    /* a drain was incomplete */
};

/* Keeps what an incomplete drain leaves behind reachable until exit (see dp_server_free). */
static struct dp_server *abandoned_server;

static void config_applied(struct dp_server *s, struct dp_gen *g)
{
    if (s->health != NULL)
        dp_health_set_gen(s->health, g);
    dp_metrics_config_applied(g->rc);
}

void dp_server_thread_buffers_unshared(void)
{
    h2o_socket_buffer_prototype.allocator.max = 0;
}

int dp_server_new(struct rconf *rc, unsigned n_workers, struct dp_server **out,
                  struct aegis_err *err)
{
    struct dp_server *s = aegis_calloc(1, sizeof(*s));
    struct dp_listen_spec *specs = NULL;
    size_t n_specs = 0;
    int r = 0;

    *out = NULL;
    pthread_mutex_init(&s->lock, NULL);
    dp_graveyard_init(&s->graveyard);
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
        r = dp_worker_init(&s->workers[s->n_inited], s->n_inited, s->gen,
                           s->n_inited == 0 ? &s->graveyard : NULL, specs, n_specs, err);
        if (r < 0) {
            s->n_inited++; /* partly made: disposed with the others */
            goto out;
        }
    }
    config_applied(s, s->gen);
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

static bool same_address(const struct rconf_listener *a, const struct rconf_listener *b)
{
    return a->addr_len == b->addr_len && memcmp(&a->addr, &b->addr, a->addr_len) == 0;
}

/* True when every address of a (n) is in b (m) and the other way round. */
static bool same_listeners(const struct rconf_listener *a, size_t n, const struct rconf_listener *b,
                           size_t m)
{
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;

        for (size_t j = 0; j < m && !found; j++)
            found = same_address(&a[i], &b[j]);
        if (!found)
            return false;
    }
    return true;
}

int dp_server_swap(struct dp_server *s, struct rconf *rc, struct aegis_err *err)
{
    struct dp_gen *g = NULL, *old;
    int r;

    if (!same_listeners(rc->http, rc->n_http, s->rc->http, s->rc->n_http) ||
        !same_listeners(rc->https, rc->n_https, s->rc->https, s->rc->n_https))
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "listeners",
                             "the listeners differ from the running ones; a running dataplane "
                             "keeps its sockets, restart it to listen on other addresses");
    r = dp_gen_new(rc, &g, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    old = s->gen;
    s->gen = g;
    pthread_mutex_unlock(&s->lock);
    /* The server's reference to the old generation moves to the graveyard before the first
     * worker switches, so that worker's next look at the graveyard finds it. */
    dp_graveyard_add(&s->graveyard, old);
    for (unsigned i = 0; i < s->n_workers; i++)
        dp_worker_swap(&s->workers[i], g);
    config_applied(s, g);
    return 0;
}

struct dp_gen *dp_server_gen(struct dp_server *s)
{
    struct dp_gen *g;

    pthread_mutex_lock(&s->lock);
    g = dp_gen_ref(s->gen);
    pthread_mutex_unlock(&s->lock);
    return g;
}

unsigned dp_server_workers(const struct dp_server *s)
{
    return s->n_workers;
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
    /* No loop runs any more: the generations can be freed from this thread. */
    dp_graveyard_dispose(&s->graveyard);
    dp_gen_unref(s->gen);
    for (unsigned i = 0; i < s->n_inited; i++)
        dp_worker_destroy_loop(&s->workers[i]);
    free(s->workers);
    for (size_t i = 0; i < s->n_front; i++)
        SSL_CTX_free(s->front[i]);
    free(s->front);
    dp_tls_free(s->tls);
    rconf_unref(s->rc);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
