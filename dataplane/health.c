/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upstream health (health.h): the shared per-upstream records and the active checker.
 *
 * Records live in one process-wide table keyed by (host name, upstream URL) and are reference
 * counted by the generations using them, so a configuration swap finds the same record again and
 * keeps its verdict. Workers only read two atomics per pick (healthy, ejected_until); the checker
 * thread and a worker that saw a connect error write them.
 *
 * Rules:
 * - An upstream starts healthy. With a healthCheck, it turns unhealthy after unhealthyThreshold
 *   consecutive failed checks (connect error, timeout, TLS failure, a status outside 200-399) and
 *   healthy again after healthyThreshold consecutive passing ones.
 * - Passive ejection: a connect error seen by a worker (refused, connect timeout, TLS handshake
 *   failure) ejects the upstream for DP_HEALTH_EJECT_MS; a passing active check ends it earlier.
 *
 * The checker is one thread with its own h2o event loop and HTTP/1 client: GET <path> with the
 * host's upstream TLS context and SNI (the same pools as the proxy's, by address with the SNI
 * name), one check at a time per upstream, the next one intervalMs after the previous ended.
 */
#include "health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o.h>

#include "aegis/alloc.h"
#include "gen.h"
#include "log.h"
#include "upstream.h"

/* Buckets of the record table: a power of two; chains stay short up to a few 10,000 upstreams. */
#define REGISTRY_BUCKETS 16384
/* A check's connection is not kept: every check opens a new one, as a client would. The pool
 * still needs a keep-alive value; it only matters if an upstream ignores "Connection: close". */
#define CHECK_KEEPALIVE_MS 1000

struct dp_upstream_health {
    struct dp_upstream_health *next; /* in its bucket */
    size_t refs;                     /* under registry_lock */
    char *host;
    char *url;
    atomic_bool healthy;
    atomic_int_fast64_t ejected_until; /* CLOCK_MONOTONIC ms; 0: not ejected */
    unsigned successes, failures;      /* consecutive check results (checker thread only) */
    pthread_mutex_t lock;              /* guards the report fields below */
    int64_t last_change_ms;
    char last_error[128];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dp_upstream_health *registry[REGISTRY_BUCKETS];

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t bucket_of(const char *host, const char *url)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    for (const char *p = host; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separates ("ab", "c") from ("a", "bc") */
    for (const char *p = url; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h & (REGISTRY_BUCKETS - 1));
}

struct dp_upstream_health *dp_upstream_health_get(const char *host, const char *url)
{
    size_t b = bucket_of(host, url);
    struct dp_upstream_health *uh;

    pthread_mutex_lock(&registry_lock);
    for (uh = registry[b]; uh != NULL; uh = uh->next) {
        if (strcmp(uh->host, host) == 0 && strcmp(uh->url, url) == 0)
            break;
    }
    if (uh == NULL) {
        uh = aegis_calloc(1, sizeof(*uh));
        uh->host = aegis_strdup(host);
        uh->url = aegis_strdup(url);
        atomic_init(&uh->healthy, true);
        atomic_init(&uh->ejected_until, 0);
        pthread_mutex_init(&uh->lock, NULL);
        uh->next = registry[b];
        registry[b] = uh;
    }
    uh->refs++;
    pthread_mutex_unlock(&registry_lock);
    return uh;
}

void dp_upstream_health_put(struct dp_upstream_health *uh)
{
    struct dp_upstream_health **pp;
    bool last;

    if (uh == NULL)
        return;
    pthread_mutex_lock(&registry_lock);
    last = --uh->refs == 0;
    if (last) {
        for (pp = &registry[bucket_of(uh->host, uh->url)]; *pp != uh; pp = &(*pp)->next)
            ;
        *pp = uh->next;
    }
    pthread_mutex_unlock(&registry_lock);
    if (last) {
        pthread_mutex_destroy(&uh->lock);
        free(uh->host);
        free(uh->url);
        free(uh);
    }
}

bool dp_upstream_health_usable(struct dp_upstream_health *uh)
{
    int_fast64_t until;

    if (!atomic_load_explicit(&uh->healthy, memory_order_relaxed))
        return false;
    until = atomic_load_explicit(&uh->ejected_until, memory_order_relaxed);
    /* The clock is read only while an ejection is pending. */
    return until == 0 || mono_ms() >= until;
}

bool dp_upstream_health_healthy(struct dp_upstream_health *uh)
{
    return atomic_load_explicit(&uh->healthy, memory_order_relaxed);
}

static void set_error(struct dp_upstream_health *uh, const char *reason, bool changed)
{
    pthread_mutex_lock(&uh->lock);
    snprintf(uh->last_error, sizeof(uh->last_error), "%s", reason);
    if (changed)
        uh->last_change_ms = wall_ms();
    pthread_mutex_unlock(&uh->lock);
}

void dp_upstream_health_eject(struct dp_upstream_health *uh, const char *reason)
{
    int_fast64_t now = mono_ms();
    int_fast64_t prev = atomic_exchange(&uh->ejected_until, now + DP_HEALTH_EJECT_MS);

    /* Several workers may see the same failure at once: only the first one logs it. */
    if (prev == 0 || prev <= now) {
        dp_log(DP_LOG_WARNING, "host %s: upstream %s: ejected for %d s (%s)", uh->host, uh->url,
               DP_HEALTH_EJECT_MS / 1000, reason);
        set_error(uh, reason, false);
    }
}

void dp_upstream_health_report(struct dp_upstream_health *uh, struct dp_upstream_report *out)
{
    int_fast64_t until = atomic_load(&uh->ejected_until);

    memset(out, 0, sizeof(*out));
    out->healthy = atomic_load(&uh->healthy);
    out->ejected = until != 0 && mono_ms() < until;
    pthread_mutex_lock(&uh->lock);
    out->last_change_ms = uh->last_change_ms;
    snprintf(out->last_error, sizeof(out->last_error), "%s", uh->last_error);
    pthread_mutex_unlock(&uh->lock);
}

/* ---- the checker ------------------------------------------------------------------------------ */

struct check {
    struct dp_health *h;
    const struct rconf_host *host;
    const struct dp_upstream *up;
    h2o_socketpool_t pool;
    h2o_http1client_ctx_t client_ctx;
    h2o_http1client_t *client; /* the check in flight; NULL between checks */
    h2o_timeout_entry_t next;  /* the wait for the next check */
    h2o_timeout_t *interval;
    h2o_iovec_t request;
};

struct dp_health {
    pthread_t thread;
    bool started;
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t wake;    /* only wakes the loop up; the state is under lock */
    h2o_multithread_receiver_t getaddr; /* h2o's resolver answers here (pools by name) */
    pthread_mutex_t lock;
    struct dp_gen *pending; /* the next generation to check (a reference), under lock */
    bool has_pending;
    bool stop;
    /* Checker thread only: */
    struct dp_gen *gen;
    struct check *checks;
    size_t n_checks;
    struct dp_timeouts timeouts;
};

static void start_check(struct check *c);

static void check_done(struct check *c, bool ok, const char *reason)
{
    const struct rconf_health_check *hc = &c->host->health_check;
    struct dp_upstream_health *uh = c->up->health;

    c->client = NULL;
    if (ok) {
        uh->failures = 0;
        /* A passing check ends a passive ejection: the upstream answers again. */
        atomic_store(&uh->ejected_until, 0);
        if (!atomic_load(&uh->healthy) && ++uh->successes >= hc->healthy_threshold) {
            uh->successes = 0;
            atomic_store(&uh->healthy, true);
            set_error(uh, "", true);
            dp_log(DP_LOG_INFO, "host %s: upstream %s: healthy", uh->host, uh->url);
        }
    } else {
        uh->successes = 0;
        if (atomic_load(&uh->healthy) && ++uh->failures >= hc->unhealthy_threshold) {
            uh->failures = 0;
            atomic_store(&uh->healthy, false);
            set_error(uh, reason, true);
            dp_log(DP_LOG_INFO, "host %s: upstream %s: unhealthy (%s)", uh->host, uh->url, reason);
        } else if (!atomic_load(&uh->healthy)) {
            set_error(uh, reason, false);
        }
        dp_log(DP_LOG_DEBUG, "host %s: upstream %s: check failed (%s)", uh->host, uh->url, reason);
    }
    h2o_timeout_link(c->h->loop, c->interval, &c->next);
}

/* A short reason for an error of h2o's HTTP/1 client (buf: room for a TLS reason). */
static const char *check_reason(const struct check *c, const char *errstr, char *buf, size_t size)
{
    if (strcmp(errstr, "connection failed") == 0 ||
        strcmp(errstr, "failed to connect to host") == 0)
        return "connect refused";
    if (strcmp(errstr, "connection timeout") == 0 || strcmp(errstr, "I/O timeout") == 0)
        return "timeout";
    if (strncmp(errstr, "ssl ", 4) == 0 || (c->up->ssl != NULL && dp_upstream_tls_failed())) {
        snprintf(buf, size, "TLS handshake failed: %s", dp_upstream_tls_reason(errstr));
        return buf;
    }
    return errstr;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       h2o_header_t *headers, size_t num_headers, int rlen)
{
    struct check *c = client->data;
    char reason[320];

    (void)minor_version;
    (void)msg;
    (void)headers;
    (void)num_headers;
    (void)rlen;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        check_done(c, false, check_reason(c, errstr, reason, sizeof(reason)));
        return NULL;
    }
    snprintf(reason, sizeof(reason), "status %d", status);
    check_done(c, status >= 200 && status <= 399, reason);
    /* The body is not read: returning NULL closes the connection. */
    return NULL;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct check *c = client->data;
    char reason[320];

    if (errstr != NULL) {
        check_done(c, false, check_reason(c, errstr, reason, sizeof(reason)));
        return NULL;
    }
    *reqbufs = &c->request;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

static void start_check(struct check *c)
{
    h2o_http1client_connect_with_pool(&c->client, c, &c->client_ctx, &c->pool, on_connect);
}

static void on_next(h2o_timeout_entry_t *entry)
{
    start_check(H2O_STRUCT_FROM_MEMBER(struct check, next, entry));
}

static void clear_checks(struct dp_health *h)
{
    for (size_t i = 0; i < h->n_checks; i++) {
        struct check *c = &h->checks[i];

        if (c->client != NULL)
            h2o_http1client_cancel(c->client);
        h2o_timeout_unlink(&c->next);
        dp_upstream_pool_dispose(&c->pool, h->loop, false);
        free(c->request.base);
    }
    free(h->checks);
    h->checks = NULL;
    h->n_checks = 0;
    dp_gen_unref(h->gen);
    h->gen = NULL;
}

static void apply_gen(struct dp_health *h, struct dp_gen *g)
{
    size_t n = 0;

    clear_checks(h);
    h->gen = g;
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->rc->n_hosts; i++) {
        if (g->rc->hosts[i].health_check.enabled)
            n += g->rc->hosts[i].n_upstreams;
    }
    h->checks = aegis_calloc(n + 1, sizeof(*h->checks));
    for (size_t i = 0; i < g->rc->n_hosts; i++) {
        const struct rconf_host *host = &g->rc->hosts[i];
        const struct dp_vhost *v = &g->vhosts[i];

        if (!host->health_check.enabled)
            continue;
        for (size_t j = 0; j < host->n_upstreams; j++) {
            struct check *c = &h->checks[h->n_checks++];
            const struct dp_upstream *up = &v->upstreams[j];
            char *req;

            c->h = h;
            c->host = host;
            c->up = up;
            dp_upstream_pool_init(up, &c->pool, h->loop, CHECK_KEEPALIVE_MS, false);
            c->client_ctx.loop = h->loop;
            c->client_ctx.getaddr_receiver = &h->getaddr;
            c->client_ctx.io_timeout =
                dp_timeouts_get(&h->timeouts, h->loop, (uint64_t)host->health_check.timeout_ms);
            c->client_ctx.ssl_ctx = up->ssl;
            c->interval =
                dp_timeouts_get(&h->timeouts, h->loop, (uint64_t)host->health_check.interval_ms);
            c->next.cb = on_next;
            req = aegis_asprintf("GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: aegis-health-check"
                                 "\r\nConnection: close\r\n\r\n",
                                 host->health_check.path, (int)up->url.authority.len,
                                 up->url.authority.base);
            c->request = h2o_iovec_init(req, strlen(req));
        }
    }
    /* The first checks run at once, so that a down upstream is found without waiting a whole
     * interval after a start or a swap. */
    for (size_t i = 0; i < h->n_checks; i++)
        start_check(&h->checks[i]);
}

static void on_wake(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    /* Only send_message(receiver, NULL) is used: there is never a message to take. */
    (void)receiver;
    (void)messages;
}

static void *run(void *arg)
{
    struct dp_health *h = arg;

    dp_log_set_thread("health");
    for (;;) {
        struct dp_gen *g = NULL;
        bool stop, has;

        pthread_mutex_lock(&h->lock);
        stop = h->stop;
        has = h->has_pending;
        if (has) {
            g = h->pending;
            h->pending = NULL;
            h->has_pending = false;
        }
        pthread_mutex_unlock(&h->lock);
        if (has)
            apply_gen(h, g);
        if (stop)
            break;
        h2o_evloop_run(h->loop, INT32_MAX);
    }
    clear_checks(h);
    return NULL;
}

int dp_health_new(struct dp_health **out, struct aegis_err *err)
{
    struct dp_health *h = aegis_calloc(1, sizeof(*h));
    int r;

    *out = NULL;
    pthread_mutex_init(&h->lock, NULL);
    h->loop = h2o_evloop_create();
    h->queue = h2o_multithread_create_queue(h->loop);
    h2o_multithread_register_receiver(h->queue, &h->wake, on_wake);
    h2o_multithread_register_receiver(h->queue, &h->getaddr, h2o_hostinfo_getaddr_receiver);
    r = pthread_create(&h->thread, NULL, run, h);
    if (r != 0) {
        dp_health_free(h);
        return aegis_err_set(err, -r, NULL, "cannot start the health checker: %s", strerror(r));
    }
    h->started = true;
    *out = h;
    return 0;
}

void dp_health_set_gen(struct dp_health *h, struct dp_gen *g)
{
    struct dp_gen *old;

    pthread_mutex_lock(&h->lock);
    old = h->pending;
    h->pending = dp_gen_ref(g);
    h->has_pending = true;
    pthread_mutex_unlock(&h->lock);
    dp_gen_unref(old);
    h2o_multithread_send_message(&h->wake, NULL);
}

void dp_health_free(struct dp_health *h)
{
    if (h == NULL)
        return;
    if (h->started) {
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_mutex_unlock(&h->lock);
        h2o_multithread_send_message(&h->wake, NULL);
        pthread_join(h->thread, NULL);
    }
    dp_gen_unref(h->pending);
    /* Cancelled checks closed their sockets; one more turn frees them. */
    h2o_evloop_run(h->loop, 0);
    dp_timeouts_dispose(&h->timeouts, h->loop);
    h2o_multithread_unregister_receiver(h->queue, &h->getaddr);
    h2o_multithread_unregister_receiver(h->queue, &h->wake);
    h2o_multithread_destroy_queue(h->queue);
    h2o_evloop_run(h->loop, 0);
    h2o_evloop_destroy(h->loop);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
