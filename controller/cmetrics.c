/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's metrics registry (cmetrics.h) and its rendering in the Prometheus text
 * exposition format, version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
 * HELP and TYPE before each family, label values escaped, histogram buckets cumulative with an
 * "+Inf" bucket equal to _count. The process metrics follow the Prometheus client libraries'
 * process collector (process_cpu_seconds_total, ...), read from /proc/self at each scrape.
 *
 * Writers are the reconcile loop's thread (a few calls per step), the reader is the HTTP thread
 * (one render per scrape): one mutex is cheaper than anything cleverer at that rate. The heartbeat
 * alone is an atomic, because it is written on every turn of the loop.
 */
#include "cmetrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/promtext.h"
#include "issuer/acme_client.h"
#include "issuer/cloudflare_api.h"
#include "issuer/issuer.h"
#include "reconcile.h"

/* The default buckets of the Prometheus client libraries, in seconds. */
static const double bucket_s[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))
/* Issuer types kept; later ones are counted as the last. Far more than the registry holds. */
#define ISSUER_TYPES_MAX 32
/* The first size of the object table (a power of two); it doubles at load factor 1. */
#define TABLE_MIN 64
/* /proc/self/stat and /proc/stat lines read; the fields needed are in the first few hundred. */
#define PROC_LINE_MAX 1024
/* Longest "Kind/ns/name" key. */
#define KEY_MAX 600

struct histogram {
    uint64_t buckets[N_BUCKETS + 1]; /* last: above every bound */
    double sum;
};

struct issuance_counts {
    char type[RECONCILE_ISSUER_TYPE_NAME_MAX];
    uint64_t succeeded, failed;
    uint64_t reasons[ISSUER_REASON_COUNT_];
};

struct entry {
    struct entry *next; /* hash chain */
    int kind;           /* enum reconcile_kind */
    char *ns, *name, *issuer_name, *key;
    bool has_ready;
    enum aegis_condition_status ready;
    int64_t not_after, renewal_time;
    bool mismatch;
};

static struct {
    pthread_mutex_t lock;
    struct entry **table;
    size_t size, n;
    uint64_t reconciled[RECONCILE_KIND_COUNT][2];
    struct histogram reconcile_duration, push_duration;
    struct issuance_counts issuances[ISSUER_TYPES_MAX];
    size_t n_issuance_types;
    uint64_t pushes[2]; /* [0]: success, [1]: failure */
    int64_t generation; /* served by the dataplane after the last successful push; 0: none */
    uint64_t steps;
    bool pushed_ok;
    bool pushed_any;
    char push_error[CMETRICS_REASON_MAX];
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_int_fast64_t heartbeat;

static const char *const result_names[2] = {"success", "error"};
static const char *const push_result_names[2] = {"success", "failure"};
static const char *const condition_names[AEGIS_CONDITION_STATUS_COUNT_] = {"True", "False",
                                                                           "Unknown"};

/* ---- the object table (called with reg.lock held) --------------------------------------------- */

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void entry_free(struct entry *e)
{
    if (e == NULL)
        return;
    free(e->ns);
    free(e->name);
    free(e->issuer_name);
    free(e->key);
    free(e);
}

static void grow_table(void)
{
    size_t size = reg.size ? reg.size * 2 : TABLE_MIN;
    struct entry **t = aegis_calloc(size, sizeof(*t));

    for (size_t i = 0; i < reg.size; i++) {
        struct entry *e = reg.table[i], *next;

        for (; e != NULL; e = next) {
            size_t b = (size_t)hash_key(e->key) & (size - 1);

            next = e->next;
            e->next = t[b];
            t[b] = e;
        }
    }
    free(reg.table);
    reg.table = t;
    reg.size = size;
}

/* The entry's link in its chain (*link is NULL when there is none). */
static struct entry **find_link(const char *key)
{
    struct entry **link;

    if (reg.size == 0)
        grow_table();
    link = &reg.table[hash_key(key) & (reg.size - 1)];
    while (*link != NULL && strcmp((*link)->key, key) != 0)
        link = &(*link)->next;
    return link;
}

static int kind_index(const char *kind)
{
    for (int k = 0; k < RECONCILE_KIND_COUNT; k++) {
        if (strcmp(reconcile_kind_names[k], kind) == 0)
            return k;
    }
    return -1;
}

void cmetrics_object(const struct cmetrics_object *o)
{
    int kind = kind_index(o->kind);

    if (!o->removed && o->served_certificate != NULL && o->served_certificate[0] != '\0')
        cmetrics_set_served_mismatch(o->ns, o->served_certificate, o->served_mismatch);
    char key[KEY_MAX];
    struct entry **link, *e;

    if (kind < 0)
        return;
    snprintf(key, sizeof(key), "%s/%s/%s", o->kind, o->ns, o->name);
    pthread_mutex_lock(&reg.lock);
    link = find_link(key);
    e = *link;
    if (o->removed) {
        if (e != NULL) {
            *link = e->next;
            reg.n--;
            entry_free(e);
        }
        pthread_mutex_unlock(&reg.lock);
        return;
    }
    if (e == NULL) {
        if (reg.n >= reg.size) {
            grow_table();
            link = find_link(key);
        }
        e = aegis_calloc(1, sizeof(*e));
        e->kind = kind;
        e->ns = aegis_strdup(o->ns);
        e->name = aegis_strdup(o->name);
        e->key = aegis_strdup(key);
        *link = e;
        reg.n++;
    }
    free(e->issuer_name);
    e->issuer_name = aegis_strdup(o->issuer_name != NULL ? o->issuer_name : "");
    e->has_ready = o->has_ready;
    e->ready = o->ready;
    e->not_after = o->not_after;
    e->renewal_time = o->renewal_time;
    pthread_mutex_unlock(&reg.lock);
}

void cmetrics_set_served_mismatch(const char *ns, const char *name, bool mismatch)
{
    char key[KEY_MAX];
    struct entry *e;

    snprintf(key, sizeof(key), "Certificate/%s/%s", ns, name);
    pthread_mutex_lock(&reg.lock);
    e = *find_link(key);
    if (e != NULL)
        e->mismatch = mismatch;
    pthread_mutex_unlock(&reg.lock);
}

void cmetrics_reset(void)
{
    pthread_mutex_lock(&reg.lock);
    for (size_t i = 0; i < reg.size; i++) {
        struct entry *e = reg.table[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(reg.table);
    reg.table = NULL;
    reg.size = reg.n = 0;
    memset(reg.reconciled, 0, sizeof(reg.reconciled));
    memset(&reg.reconcile_duration, 0, sizeof(reg.reconcile_duration));
    memset(&reg.push_duration, 0, sizeof(reg.push_duration));
    memset(reg.issuances, 0, sizeof(reg.issuances));
    reg.n_issuance_types = 0;
    memset(reg.pushes, 0, sizeof(reg.pushes));
    reg.generation = 0;
    reg.steps = 0;
    reg.pushed_ok = reg.pushed_any = false;
    reg.push_error[0] = '\0';
    pthread_mutex_unlock(&reg.lock);
    atomic_store(&heartbeat, 0);
}

/* ---- the loop's reports ----------------------------------------------------------------------- */

static void observe(struct histogram *h, double v)
{
    size_t b = 0;

    while (b < N_BUCKETS && v > bucket_s[b])
        b++;
    h->buckets[b]++;
    h->sum += v;
}

/* The counters of an issuer type (reg.lock held). */
static struct issuance_counts *issuance_counts(const char *type)
{
    struct issuance_counts *c;

    for (size_t i = 0; i < reg.n_issuance_types; i++) {
        if (strcmp(reg.issuances[i].type, type) == 0)
            return &reg.issuances[i];
    }
    if (reg.n_issuance_types == ISSUER_TYPES_MAX)
        return &reg.issuances[ISSUER_TYPES_MAX - 1];
    c = &reg.issuances[reg.n_issuance_types++];
    snprintf(c->type, sizeof(c->type), "%s", type);
    return c;
}

void cmetrics_step(const struct reconcile_report *rep, double duration_s)
{
    pthread_mutex_lock(&reg.lock);
    reg.steps++;
    for (int k = 0; k < RECONCILE_KIND_COUNT; k++) {
        reg.reconciled[k][0] += rep->reconciled[k][0];
        reg.reconciled[k][1] += rep->reconciled[k][1];
    }
    for (size_t i = 0; i < rep->n_issuances; i++) {
        const struct reconcile_issuances *ri = &rep->issuances[i];
        struct issuance_counts *c = issuance_counts(ri->issuer_type);

        c->succeeded += ri->succeeded;
        for (int r = 0; r < ISSUER_REASON_COUNT_; r++) {
            c->failed += ri->failed[r];
            c->reasons[r] += ri->failed[r];
        }
    }
    observe(&reg.reconcile_duration, duration_s);
    pthread_mutex_unlock(&reg.lock);
}

void cmetrics_push(bool ok, const char *error, double duration_s, int64_t generation)
{
    pthread_mutex_lock(&reg.lock);
    reg.pushes[ok ? 0 : 1]++;
    reg.pushed_any = true;
    reg.pushed_ok = ok;
    if (ok) {
        reg.generation = generation;
        reg.push_error[0] = '\0';
    } else {
        snprintf(reg.push_error, sizeof(reg.push_error), "%s",
                 error != NULL && error[0] != '\0' ? error : "the push failed");
    }
    observe(&reg.push_duration, duration_s);
    pthread_mutex_unlock(&reg.lock);
}

void cmetrics_heartbeat(int64_t now)
{
    atomic_store(&heartbeat, now);
}

bool cmetrics_healthy(int64_t now)
{
    int64_t beat = atomic_load(&heartbeat);

    return beat != 0 && now - beat <= CMETRICS_HEARTBEAT_STALE_S;
}

bool cmetrics_ready(char *reason, size_t size)
{
    bool ready = false;

    pthread_mutex_lock(&reg.lock);
    if (reg.steps == 0)
        snprintf(reason, size, "the first snapshot has not been reconciled yet");
    else if (!reg.pushed_any)
        snprintf(reason, size, "no configuration has been pushed to the dataplane yet");
    else if (!reg.pushed_ok)
        snprintf(reason, size, "the last push to the dataplane failed: %s", reg.push_error);
    else
        ready = true;
    if (ready)
        snprintf(reason, size, "ok");
    pthread_mutex_unlock(&reg.lock);
    return ready;
}

void cmetrics_snake_case(const char *camel, char *out, size_t size)
{
    size_t n = 0;

    if (size == 0)
        return;
    for (const char *p = camel; *p != '\0' && n + 2 < size; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            if (n > 0)
                out[n++] = '_';
            out[n++] = (char)(*p - 'A' + 'a');
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* ---- rendering -------------------------------------------------------------------------------- */

static void render_histogram(struct aegis_textbuf *b, const char *name, const char *help,
                             const struct histogram *h)
{
    uint64_t cum = 0;

    aegis_prom_family(b, name, "histogram", help);
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += h->buckets[i];
        aegis_textbuf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, bucket_s[i], cum);
    }
    cum += h->buckets[N_BUCKETS];
    aegis_textbuf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    aegis_textbuf_printf(b, "%s_sum %.6f\n", name, h->sum);
    aegis_textbuf_printf(b, "%s_count %" PRIu64 "\n", name, cum);
}

static int by_key(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;

    if (x->kind != y->kind)
        return x->kind - y->kind;
    if (strcmp(x->ns, y->ns) != 0)
        return strcmp(x->ns, y->ns);
    return strcmp(x->name, y->name);
}

/* The entries of one kind, sorted (reg.lock held): v[*first .. *end). */
static void kind_range(struct entry **v, size_t n, int kind, size_t *first, size_t *end)
{
    *first = 0;
    while (*first < n && v[*first]->kind < kind)
        (*first)++;
    *end = *first;
    while (*end < n && v[*end]->kind == kind)
        (*end)++;
}

/* name{namespace="..",name=".."  (the caller closes the braces) */
static void put_object(struct aegis_textbuf *b, const char *metric, const struct entry *e)
{
    aegis_textbuf_printf(b, "%s{namespace=\"", metric);
    aegis_prom_label_value(b, e->ns);
    aegis_textbuf_put(b, "\",name=\"", 8);
    aegis_prom_label_value(b, e->name);
    aegis_textbuf_put(b, "\"", 1);
}

static void render_certificates(struct aegis_textbuf *b, struct entry **v, size_t n)
{
    size_t first, end;

    kind_range(v, n, RECONCILE_KIND_CERTIFICATE, &first, &end);
    aegis_prom_family(
        b, "aegis_certificate_expiration_timestamp_seconds", "gauge",
        "The notAfter of the stored certificate (Unix time); absent while none is stored.");
    for (size_t i = first; i < end; i++) {
        if (v[i]->not_after == 0)
            continue;
        put_object(b, "aegis_certificate_expiration_timestamp_seconds", v[i]);
        aegis_textbuf_put(b, ",issuer_name=\"", 14);
        aegis_prom_label_value(b, v[i]->issuer_name);
        aegis_textbuf_printf(b, "\"} %" PRId64 "\n", v[i]->not_after);
    }
    aegis_prom_family(
        b, "aegis_certificate_renewal_timestamp_seconds", "gauge",
        "When the stored certificate is renewed (Unix time); absent while none is stored.");
    for (size_t i = first; i < end; i++) {
        if (v[i]->renewal_time == 0)
            continue;
        put_object(b, "aegis_certificate_renewal_timestamp_seconds", v[i]);
        aegis_textbuf_put(b, ",issuer_name=\"", 14);
        aegis_prom_label_value(b, v[i]->issuer_name);
        aegis_textbuf_printf(b, "\"} %" PRId64 "\n", v[i]->renewal_time);
    }
    aegis_prom_family(
        b, "aegis_certificate_ready_status", "gauge",
        "The Certificate's Ready condition: 1 on the series of its status, 0 on the others.");
    for (size_t i = first; i < end; i++) {
        enum aegis_condition_status st =
            v[i]->has_ready ? v[i]->ready : AEGIS_CONDITION_STATUS_UNKNOWN;

        for (int c = 0; c < AEGIS_CONDITION_STATUS_COUNT_; c++) {
            put_object(b, "aegis_certificate_ready_status", v[i]);
            aegis_textbuf_put(b, ",issuer_name=\"", 14);
            aegis_prom_label_value(b, v[i]->issuer_name);
            aegis_textbuf_printf(b, "\",condition=\"%s\"} %d\n", condition_names[c], (int)st == c);
        }
    }
    aegis_prom_family(
        b, "aegis_certificate_served_mismatch", "gauge",
        "1 when a dataplane has served another certificate than the stored one for too long.");
    for (size_t i = first; i < end; i++) {
        put_object(b, "aegis_certificate_served_mismatch", v[i]);
        aegis_textbuf_printf(b, "} %d\n", v[i]->mismatch ? 1 : 0);
    }
}

static void render_issuers(struct aegis_textbuf *b, struct entry **v, size_t n)
{
    size_t first, end;

    kind_range(v, n, RECONCILE_KIND_ISSUER, &first, &end);
    aegis_prom_family(
        b, "aegis_issuer_ready_status", "gauge",
        "The Issuer's Ready condition: 1 on the series of its status, 0 on the others.");
    for (size_t i = first; i < end; i++) {
        enum aegis_condition_status st =
            v[i]->has_ready ? v[i]->ready : AEGIS_CONDITION_STATUS_UNKNOWN;

        for (int c = 0; c < AEGIS_CONDITION_STATUS_COUNT_; c++) {
            put_object(b, "aegis_issuer_ready_status", v[i]);
            aegis_textbuf_printf(b, ",condition=\"%s\"} %d\n", condition_names[c], (int)st == c);
        }
    }
}

static void render_loop(struct aegis_textbuf *b)
{
    char reason[RECONCILE_ISSUER_TYPE_NAME_MAX * 2];

    aegis_prom_family(
        b, "aegis_reconcile_total", "counter",
        "Objects reconciled, by kind and result (error: the object reports a failure).");
    for (int k = 0; k < RECONCILE_KIND_COUNT; k++) {
        for (int r = 0; r < 2; r++)
            aegis_textbuf_printf(b,
                                 "aegis_reconcile_total{kind=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                                 reconcile_kind_names[k], result_names[r], reg.reconciled[k][r]);
    }
    render_histogram(b, "aegis_reconcile_duration_seconds",
                     "Time taken by one reconcile step (every object due at once).",
                     &reg.reconcile_duration);
    /* Every registered issuer type has its series from the start, so that rate() and alerts
     * see the first issuance as an increase from 0. */
    for (size_t i = 0; issuer_registry[i] != NULL; i++)
        (void)issuance_counts(issuer_registry[i]->name);
    aegis_prom_family(b, "aegis_issuance_total", "counter",
                      "Completed issuances and imports, by issuer type and result.");
    for (size_t i = 0; i < reg.n_issuance_types; i++) {
        const struct issuance_counts *c = &reg.issuances[i];

        aegis_textbuf_printf(
            b, "aegis_issuance_total{issuer_type=\"%s\",result=\"success\"} %" PRIu64 "\n", c->type,
            c->succeeded);
        aegis_textbuf_printf(
            b, "aegis_issuance_total{issuer_type=\"%s\",result=\"failure\"} %" PRIu64 "\n", c->type,
            c->failed);
    }
    aegis_prom_family(b, "aegis_issuance_failures_total", "counter",
                      "Failed issuances and imports, by issuer type and reason.");
    for (size_t i = 0; i < reg.n_issuance_types; i++) {
        const struct issuance_counts *c = &reg.issuances[i];

        for (int r = 0; r < ISSUER_REASON_COUNT_; r++) {
            if (c->reasons[r] == 0)
                continue;
            cmetrics_snake_case(issuer_reason_names[r], reason, sizeof(reason));
            aegis_textbuf_printf(
                b, "aegis_issuance_failures_total{issuer_type=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                c->type, reason, c->reasons[r]);
        }
    }
    aegis_prom_family(b, "aegis_dataplane_push_total", "counter",
                      "Configurations pushed to the dataplane, by result.");
    for (int r = 0; r < 2; r++)
        aegis_textbuf_printf(b, "aegis_dataplane_push_total{result=\"%s\"} %" PRIu64 "\n",
                             push_result_names[r], reg.pushes[r]);
    render_histogram(b, "aegis_dataplane_push_duration_seconds",
                     "Time taken by one push to the dataplane, until it answered.",
                     &reg.push_duration);
    aegis_prom_family(b, "aegis_dataplane_config_generation", "gauge",
                      "Generation of the configuration the dataplane accepted last (0: none yet).");
    aegis_textbuf_printf(b, "aegis_dataplane_config_generation %" PRId64 "\n", reg.generation);
}

/* Fields of /proc/self/stat after the command (which may hold spaces and parentheses). */
struct proc_stat {
    double cpu_s, start_ticks;
    uint64_t vsize, rss_pages;
};

static int read_line(const char *path, const char *prefix, char *line, size_t size)
{
    FILE *f = fopen(path, "re");
    int rc = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, (int)size, f) != NULL) {
        if (prefix == NULL || strncmp(line, prefix, strlen(prefix)) == 0) {
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

static int proc_stat(struct proc_stat *ps)
{
    char line[PROC_LINE_MAX];
    const char *p;
    unsigned long long utime, stime, start, vsize;
    long long rss;
    long tck = sysconf(_SC_CLK_TCK);

    if (read_line("/proc/self/stat", NULL, line, sizeof(line)) < 0 || tck <= 0)
        return -1;
    p = strrchr(line, ')');
    if (p == NULL)
        return -1;
    /* Fields 3..: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14)
     * stime(15) cutime cstime priority nice threads itrealvalue starttime(22) vsize(23) rss(24). */
    if (sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) != 5)
        return -1;
    ps->cpu_s = (double)(utime + stime) / (double)tck;
    ps->start_ticks = (double)start / (double)tck;
    ps->vsize = vsize;
    ps->rss_pages = rss > 0 ? (uint64_t)rss : 0;
    return 0;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    const struct dirent *de;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void render_process(struct aegis_textbuf *b)
{
    struct proc_stat ps;
    char line[PROC_LINE_MAX];
    unsigned long long btime = 0;
    struct rlimit rl;
    long fds = count_fds();
    long page = sysconf(_SC_PAGESIZE);

    if (proc_stat(&ps) == 0) {
        aegis_prom_family(b, "process_cpu_seconds_total", "counter",
                          "Total user and system CPU time spent in seconds.");
        aegis_textbuf_printf(b, "process_cpu_seconds_total %.2f\n", ps.cpu_s);
        aegis_prom_family(b, "process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.");
        aegis_textbuf_printf(b, "process_resident_memory_bytes %" PRIu64 "\n",
                             ps.rss_pages * (uint64_t)(page > 0 ? page : 4096));
        aegis_prom_family(b, "process_virtual_memory_bytes", "gauge",
                          "Virtual memory size in bytes.");
        aegis_textbuf_printf(b, "process_virtual_memory_bytes %" PRIu64 "\n", ps.vsize);
        if (read_line("/proc/stat", "btime ", line, sizeof(line)) == 0 &&
            sscanf(line + 6, "%llu", &btime) == 1) {
            aegis_prom_family(b, "process_start_time_seconds", "gauge",
                              "Start time of the process since unix epoch in seconds.");
            aegis_textbuf_printf(b, "process_start_time_seconds %.2f\n",
                                 (double)btime + ps.start_ticks);
        }
    }
    if (fds >= 0) {
        aegis_prom_family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        aegis_textbuf_printf(b, "process_open_fds %ld\n", fds);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        aegis_prom_family(b, "process_max_fds", "gauge",
                          "Maximum number of open file descriptors.");
        aegis_textbuf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

char *cmetrics_render(int64_t now, size_t *len)
{
    struct aegis_textbuf b = {NULL, 0, 0};
    struct entry **v;
    size_t n = 0;

    pthread_mutex_lock(&reg.lock);
    v = aegis_calloc(reg.n + 1, sizeof(*v));
    for (size_t i = 0; i < reg.size; i++) {
        for (struct entry *e = reg.table[i]; e != NULL; e = e->next)
            v[n++] = e;
    }
    qsort(v, n, sizeof(*v), by_key);
    render_certificates(&b, v, n);
    render_issuers(&b, v, n);
    render_loop(&b);
    pthread_mutex_unlock(&reg.lock);
    free(v);
    acme_client_metrics_render(&b); /* its own lock */
    cf_api_metrics_render(&b);      /* its own lock */
    aegis_prom_family(&b, "aegis_controller_healthy", "gauge",
                      "1 while the reconcile loop runs (it beat within the last 30 s).");
    aegis_textbuf_printf(&b, "aegis_controller_healthy %d\n", cmetrics_healthy(now) ? 1 : 0);
    render_process(&b);
    *len = b.len;
    return b.p;
}
