/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics registry (metrics.h) and its rendering in the Prometheus text exposition format,
 * version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/): HELP and TYPE
 * lines before each family, label values escaped (backslash, double quote, newline), histogram
 * buckets cumulative with an "+Inf" bucket equal to _count.
 *
 * Why the histogram is sharded and the host counters are not: every request of every worker
 * lands in the one histogram, so a single copy would bounce its cache lines between cores on
 * each request; a host's counters are only shared by the workers serving that host at once, and
 * sharding them would multiply 10,000 hosts' memory by the shard count.
 */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/promtext.h"
#include "aegis/rconf.h"

/* The default buckets of the Prometheus client libraries, in microseconds (0.005 s .. 10 s). */
static const uint64_t bucket_us[] = {5000,   10000,   25000,   50000,   100000,  250000,
                                     500000, 1000000, 2500000, 5000000, 10000000};
#define N_BUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))
/* Histogram shards; threads pick one round robin on first use (a power of two). */
#define N_SHARDS 16
#define CACHE_LINE 64
/* Status classes 1xx..5xx. */
#define N_CODES 5
/* The first size of the host hash table (a power of two); it doubles at load factor 1. */
#define HOST_TABLE_MIN 64

#define NAME_ENTRY_(name, label) label,
static const char *const upstream_error_names[] = {DP_UPSTREAM_ERRORS(NAME_ENTRY_)};
static const char *const tls_failure_names[] = {DP_TLS_FAILURES(NAME_ENTRY_)};
#undef NAME_ENTRY_

struct dp_host_metrics {
    atomic_uint_fast64_t requests[N_CODES];
    atomic_uint_fast64_t upstream_errors[DP_UPSTREAM_ERR__COUNT];
    /* Configuration-time state, under the registry lock. */
    uint64_t current_epoch; /* == registry.epoch when the current configuration has the host */
    bool has_cert;
    int64_t not_after;
    struct dp_host_metrics *next; /* hash chain */
    const char *name;             /* stored after the structure (no_host: "") */
};

struct shard {
    _Alignas(CACHE_LINE) atomic_uint_fast64_t buckets[N_BUCKETS + 1]; /* last: above every bound */
    atomic_uint_fast64_t sum_us;
};

static struct shard shards[N_SHARDS];
static atomic_uint next_shard;
static _Thread_local struct shard *my_shard;

static atomic_uint_fast64_t tls_handshakes;
static atomic_uint_fast64_t tls_failures[DP_TLS_FAIL__COUNT];
static atomic_int_fast64_t conns_active;
static atomic_int_fast64_t generation = -1; /* -1: no configuration applied yet */
static atomic_int_fast64_t last_swap_ms;

/* Requests that matched no configured host: always rendered, with host="". */
static struct dp_host_metrics no_host = {.name = ""};

static struct {
    pthread_mutex_t lock;
    struct dp_host_metrics **table;
    size_t size, n;
    uint64_t epoch;
    size_t n_current;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *dp_metrics_upstream_error_name(enum dp_upstream_error kind)
{
    return (unsigned)kind < DP_UPSTREAM_ERR__COUNT ? upstream_error_names[kind] : "unknown";
}

const char *dp_metrics_tls_failure_name(enum dp_tls_failure reason)
{
    return (unsigned)reason < DP_TLS_FAIL__COUNT ? tls_failure_names[reason] : "unknown";
}

/* ---- the host registry ------------------------------------------------------------------------ */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Called with reg.lock held. */
static void grow_table(void)
{
    size_t size = reg.size ? reg.size * 2 : HOST_TABLE_MIN;
    struct dp_host_metrics **t = aegis_calloc(size, sizeof(*t));

    for (size_t i = 0; i < reg.size; i++) {
        struct dp_host_metrics *h = reg.table[i], *next;

        for (; h != NULL; h = next) {
            size_t b = (size_t)hash_name(h->name) & (size - 1);

            next = h->next;
            h->next = t[b];
            t[b] = h;
        }
    }
    free(reg.table);
    reg.table = t;
    reg.size = size;
}

/* Called with reg.lock held. */
static struct dp_host_metrics *host_locked(const char *name)
{
    struct dp_host_metrics *h;
    size_t len = strlen(name), b;

    if (reg.n >= reg.size)
        grow_table();
    b = (size_t)hash_name(name) & (reg.size - 1);
    for (h = reg.table[b]; h != NULL; h = h->next) {
        if (strcmp(h->name, name) == 0)
            return h;
    }
    h = aegis_calloc(1, sizeof(*h) + len + 1);
    memcpy(h + 1, name, len + 1);
    h->name = (const char *)(h + 1);
    h->next = reg.table[b];
    reg.table[b] = h;
    reg.n++;
    return h;
}

struct dp_host_metrics *dp_metrics_host(const char *name)
{
    struct dp_host_metrics *h;

    pthread_mutex_lock(&reg.lock);
    h = host_locked(name);
    pthread_mutex_unlock(&reg.lock);
    return h;
}

/* The certificate a handshake for h's first name is served with (its bound one, else a stored
 * one or the fallback, as rconf_select chooses), or NULL. */
static const struct rconf_cert *served_cert(const struct rconf *rc, const struct rconf_host *h)
{
    struct rconf_sel sel;

    if (!h->tls)
        return NULL;
    if (h->cert != NULL)
        return h->cert;
    if (h->n_hostnames == 0 ||
        rconf_select(rc, h->hostnames[0], strlen(h->hostnames[0]), &sel) != 0)
        return NULL;
    return sel.cert;
}

void dp_metrics_config_applied(const struct rconf *rc)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    pthread_mutex_lock(&reg.lock);
    reg.epoch++;
    reg.n_current = rc->n_hosts;
    for (size_t i = 0; i < rc->n_hosts; i++) {
        struct dp_host_metrics *h = host_locked(rc->hosts[i].name);
        const struct rconf_cert *c = served_cert(rc, &rc->hosts[i]);

        h->current_epoch = reg.epoch;
        h->has_cert = c != NULL;
        h->not_after = c != NULL ? c->not_after : 0;
    }
    pthread_mutex_unlock(&reg.lock);
    atomic_store(&generation, rc->generation);
    atomic_store(&last_swap_ms, (int_fast64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

/* ---- the request path ------------------------------------------------------------------------- */

static struct shard *shard(void)
{
    if (my_shard == NULL)
        my_shard =
            &shards[atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % N_SHARDS];
    return my_shard;
}

void dp_metrics_request(struct dp_host_metrics *hm, int status, uint64_t duration_us)
{
    struct shard *s;
    size_t b = 0;

    if (status < 100 || status > 599)
        return;
    if (hm == NULL)
        hm = &no_host;
    atomic_fetch_add_explicit(&hm->requests[status / 100 - 1], 1, memory_order_relaxed);
    while (b < N_BUCKETS && duration_us > bucket_us[b])
        b++;
    s = shard();
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, duration_us, memory_order_relaxed);
}

void dp_metrics_upstream_error(struct dp_host_metrics *hm, enum dp_upstream_error kind)
{
    if ((unsigned)kind >= DP_UPSTREAM_ERR__COUNT)
        kind = DP_UPSTREAM_ERR_PROTOCOL;
    if (hm == NULL)
        hm = &no_host;
    atomic_fetch_add_explicit(&hm->upstream_errors[kind], 1, memory_order_relaxed);
}

void dp_metrics_tls_handshake(void)
{
    atomic_fetch_add_explicit(&tls_handshakes, 1, memory_order_relaxed);
}

void dp_metrics_tls_failure(enum dp_tls_failure reason)
{
    if ((unsigned)reason >= DP_TLS_FAIL__COUNT)
        reason = DP_TLS_FAIL_OTHER;
    atomic_fetch_add_explicit(&tls_failures[reason], 1, memory_order_relaxed);
}

void dp_metrics_conn_opened(void)
{
    atomic_fetch_add_explicit(&conns_active, 1, memory_order_relaxed);
}

void dp_metrics_conn_closed(void)
{
    atomic_fetch_sub_explicit(&conns_active, 1, memory_order_relaxed);
}

/* ---- rendering -------------------------------------------------------------------------------- */

/* One host's view for rendering, copied under the lock. */
struct host_view {
    const struct dp_host_metrics *h;
    bool has_cert;
    int64_t not_after;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct host_view *)a)->h->name, ((const struct host_view *)b)->h->name);
}

/* The hosts of the current configuration, sorted by name (a new array of *n). */
static struct host_view *current_hosts(size_t *n)
{
    struct host_view *v;
    size_t k = 0;

    pthread_mutex_lock(&reg.lock);
    v = aegis_calloc(reg.n_current + 1, sizeof(*v));
    for (size_t i = 0; i < reg.size && k < reg.n_current; i++) {
        for (const struct dp_host_metrics *h = reg.table[i]; h != NULL; h = h->next) {
            if (h->current_epoch == reg.epoch && reg.epoch != 0 && k < reg.n_current)
                v[k++] = (struct host_view){h, h->has_cert, h->not_after};
        }
    }
    pthread_mutex_unlock(&reg.lock);
    qsort(v, k, sizeof(*v), by_name);
    *n = k;
    return v;
}

static void render_requests(struct aegis_textbuf *b, const struct host_view *v, size_t n)
{
    aegis_prom_family(b, "aegis_dataplane_requests_total", "counter",
                      "Requests answered, by Host resource (\"\": none matched) and status class.");
    for (size_t i = 0; i <= n; i++) {
        const struct dp_host_metrics *h = i < n ? v[i].h : &no_host;

        for (int c = 0; c < N_CODES; c++) {
            uint64_t x = atomic_load_explicit(&h->requests[c], memory_order_relaxed);

            if (x == 0 && h != &no_host)
                continue;
            aegis_textbuf_puts(b, "aegis_dataplane_requests_total{host=\"");
            aegis_prom_label_value(b, h->name);
            aegis_textbuf_printf(b, "\",code=\"%dxx\"} %" PRIu64 "\n", c + 1, x);
        }
    }
}

static void render_histogram(struct aegis_textbuf *b)
{
    static const char *const name = "aegis_dataplane_request_duration_seconds";
    uint64_t counts[N_BUCKETS + 1] = {0}, sum_us = 0, cum = 0;

    for (size_t s = 0; s < N_SHARDS; s++) {
        for (size_t i = 0; i <= N_BUCKETS; i++)
            counts[i] += atomic_load_explicit(&shards[s].buckets[i], memory_order_relaxed);
        sum_us += atomic_load_explicit(&shards[s].sum_us, memory_order_relaxed);
    }
    aegis_prom_family(b, name, "histogram",
                      "Time from the first byte of a request to the last byte of its response.");
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += counts[i];
        /* %g prints the bounds as Prometheus clients do: 0.005, 0.01, ... 1, 2.5, 10. */
        aegis_textbuf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                             (double)bucket_us[i] / 1e6, cum);
    }
    /* _count is the +Inf bucket itself, so the two never disagree within one scrape. */
    cum += counts[N_BUCKETS];
    aegis_textbuf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    aegis_textbuf_printf(b, "%s_sum %" PRIu64 ".%06" PRIu64 "\n", name, sum_us / 1000000,
                         sum_us % 1000000);
    aegis_textbuf_printf(b, "%s_count %" PRIu64 "\n", name, cum);
}

static void render_upstream_errors(struct aegis_textbuf *b, const struct host_view *v, size_t n)
{
    aegis_prom_family(b, "aegis_dataplane_upstream_errors_total", "counter",
                      "Upstream failures by Host resource and kind.");
    for (size_t i = 0; i <= n; i++) {
        const struct dp_host_metrics *h = i < n ? v[i].h : &no_host;

        for (int k = 0; k < DP_UPSTREAM_ERR__COUNT; k++) {
            uint64_t x = atomic_load_explicit(&h->upstream_errors[k], memory_order_relaxed);

            if (x == 0)
                continue;
            aegis_textbuf_puts(b, "aegis_dataplane_upstream_errors_total{host=\"");
            aegis_prom_label_value(b, h->name);
            aegis_textbuf_printf(b, "\",kind=\"%s\"} %" PRIu64 "\n", upstream_error_names[k], x);
        }
    }
}

static void render_tls(struct aegis_textbuf *b)
{
    aegis_prom_family(b, "aegis_dataplane_tls_handshakes_total", "counter",
                      "TLS handshakes completed (full and resumed).");
    aegis_textbuf_printf(b, "aegis_dataplane_tls_handshakes_total %" PRIu64 "\n",
                         (uint64_t)atomic_load_explicit(&tls_handshakes, memory_order_relaxed));
    aegis_prom_family(b, "aegis_dataplane_tls_handshake_failures_total", "counter",
                      "TLS handshakes that failed with a fatal alert, by reason.");
    for (int r = 0; r < DP_TLS_FAIL__COUNT; r++)
        aegis_textbuf_printf(
            b, "aegis_dataplane_tls_handshake_failures_total{reason=\"%s\"} %" PRIu64 "\n",
            tls_failure_names[r],
            (uint64_t)atomic_load_explicit(&tls_failures[r], memory_order_relaxed));
}

static void render_config(struct aegis_textbuf *b, const struct host_view *v, size_t n)
{
    int64_t gen = atomic_load(&generation), swap_ms = atomic_load(&last_swap_ms);

    aegis_prom_family(b, "aegis_dataplane_connections_active", "gauge", "Client connections open.");
    aegis_textbuf_printf(b, "aegis_dataplane_connections_active %" PRId64 "\n",
                         (int64_t)atomic_load_explicit(&conns_active, memory_order_relaxed));
    aegis_prom_family(b, "aegis_dataplane_config_generation", "gauge",
                      "Generation of the configuration being served (-1: none yet).");
    aegis_textbuf_printf(b, "aegis_dataplane_config_generation %" PRId64 "\n", gen);
    aegis_prom_family(b, "aegis_dataplane_config_last_swap_timestamp_seconds", "gauge",
                      "When the configuration being served became current (Unix time; 0: never).");
    aegis_textbuf_printf(
        b, "aegis_dataplane_config_last_swap_timestamp_seconds %" PRId64 ".%03" PRId64 "\n",
        swap_ms / 1000, swap_ms % 1000);
    aegis_prom_family(b, "aegis_dataplane_config_hosts", "gauge",
                      "Hosts in the configuration being served.");
    aegis_textbuf_printf(b, "aegis_dataplane_config_hosts %zu\n", n);
    aegis_prom_family(
        b, "aegis_dataplane_certificate_not_after_timestamp_seconds", "gauge",
        "Expiry (notAfter, Unix time) of the certificate each TLS host is served with.");
    for (size_t i = 0; i < n; i++) {
        if (!v[i].has_cert)
            continue;
        aegis_textbuf_puts(b, "aegis_dataplane_certificate_not_after_timestamp_seconds{host=\"");
        aegis_prom_label_value(b, v[i].h->name);
        aegis_textbuf_printf(b, "\"} %" PRId64 "\n", v[i].not_after);
    }
}

char *dp_metrics_render(size_t *len)
{
    struct aegis_textbuf b = {NULL, 0, 0};
    size_t n = 0;
    struct host_view *v = current_hosts(&n);

    render_requests(&b, v, n);
    render_histogram(&b);
    render_upstream_errors(&b, v, n);
    render_tls(&b);
    render_config(&b, v, n);
    free(v);
    *len = b.len;
    return b.p;
}
