/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libcurl plumbing of the controller's HTTP API clients (httpc.h): the easy handle, the
 * bounded body, header lines, Retry-After and the request metrics.
 */
#include "httpc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/err.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void httpc_global_init(void)
{
    pthread_once(&curl_once, curl_init_once);
}

/* ---- one request ---------------------------------------------------------------------------- */

struct xfer {
    const struct httpc_request *rq;
    char *buf;
    size_t len, cap;
    bool too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n, max = x->rq->body_max;

    if (x->len + len > max) {
        x->too_big = true;
        return 0;
    }
    if (x->len + len + 1 > x->cap) {
        x->cap = (x->len + len + 1) * 2;
        if (x->cap > max + 1)
            x->cap = max + 1;
        x->buf = aegis_realloc(x->buf, x->cap);
    }
    memcpy(x->buf + x->len, data, len);
    x->len += len;
    x->buf[x->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    char line[HTTPC_HEADER_MAX];

    /* Longer than any header the clients read: passed over. */
    if (x->rq->on_header == NULL || len >= sizeof(line) || len >= x->rq->header_max)
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    x->rq->on_header(x->rq->ctx, line);
    return len;
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int httpc_perform(const struct httpc_request *rq, struct httpc_response *resp)
{
    struct xfer x = {.rq = rq};
    double started = mono_s();
    CURL *h;
    CURLcode cc;
    int rc = 0;

    httpc_global_init();
    memset(resp, 0, sizeof(*resp));
    h = curl_easy_init();
    if (h == NULL) {
        snprintf(resp->error, sizeof(resp->error), "%s", "curl_easy_init failed");
        return -ENOMEM;
    }
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "aegis-controller/" AEGIS_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, rq->headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, resp->error);
    /* Requests run on worker threads: no signals for the resolver's timeouts. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    if (rq->share != NULL)
        curl_easy_setopt(h, CURLOPT_SHARE, rq->share);
    if (rq->ca_pem != NULL) {
        struct curl_blob blob = {(void *)rq->ca_pem, strlen(rq->ca_pem), CURL_BLOB_COPY};

        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (strcmp(rq->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    if (rq->body != NULL)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        resp->body = x.buf;
        resp->len = x.len;
        x.buf = NULL;
    } else {
        rc = x.too_big ? -AEGIS_E_LIMIT : -EIO;
        if (resp->error[0] == '\0')
            snprintf(resp->error, sizeof(resp->error), "%s", curl_easy_strerror(cc));
    }
    resp->seconds = mono_s() - started;
    free(x.buf);
    curl_easy_cleanup(h);
    return rc;
}

/* ---- headers -------------------------------------------------------------------------------- */

const char *httpc_header_match(char *line, const char *name)
{
    size_t n = strlen(name);
    char *v, *end;

    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        *--end = '\0';
    return v;
}

int64_t httpc_retry_after_parse(const char *value, int64_t now, int64_t max_s)
{
    char *end = NULL;
    long long secs;
    time_t t;
    int64_t at;

    while (*value == ' ' || *value == '\t')
        value++;
    if (*value == '\0')
        return 0;
    errno = 0;
    secs = strtoll(value, &end, 10);
    if (end != value && errno == 0 && (*end == '\0' || *end == ' ' || *end == '\r')) {
        if (secs < 0)
            return 0;
        return secs > max_s ? now + max_s : now + secs;
    }
    t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return 0;
    at = (int64_t)t;
    if (at < now)
        return now;
    return at > now + max_s ? now + max_s : at;
}

int httpc_url_host(const char *url, char *out, size_t size)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int rc = -AEGIS_E_INVALID;

    snprintf(out, size, "%s", "?");
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        snprintf(out, size, "%s", host);
        rc = 0;
    }
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

void httpc_cat(char *buf, size_t size, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + 1 >= size)
        return;
    if (n > size - 1 - *len)
        n = size - 1 - *len;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

/* ---- metrics -------------------------------------------------------------------------------- */

static const double bucket_s[HTTPC_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10};

void httpc_metrics_observe(struct httpc_metrics *m, const char *host, const char *path,
                           const char *method, long status, double seconds)
{
    struct httpc_series *s = NULL;
    size_t b = 0;

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && s == NULL; i++) {
        struct httpc_series *x = &m->v[i];

        if (x->status == status && strcmp(x->host, host) == 0 && strcmp(x->path, path) == 0 &&
            strcmp(x->method, method) == 0)
            s = x;
    }
    if (s == NULL && m->n < m->max) {
        s = &m->v[m->n++];
        memset(s, 0, sizeof(*s));
        snprintf(s->host, sizeof(s->host), "%s", host);
        snprintf(s->path, sizeof(s->path), "%s", path);
        snprintf(s->method, sizeof(s->method), "%s", method);
        s->status = status;
    }
    if (s != NULL) {
        while (b < HTTPC_BUCKETS && seconds > bucket_s[b])
            b++;
        s->count++;
        s->buckets[b]++;
        s->sum += seconds;
    }
    pthread_mutex_unlock(&m->lock);
}

static void put_labels(struct aegis_textbuf *b, const struct httpc_series *s, bool with_status)
{
    aegis_textbuf_puts(b, "host=\"");
    aegis_prom_label_value(b, s->host);
    aegis_textbuf_puts(b, "\",path=\"");
    aegis_prom_label_value(b, s->path);
    aegis_textbuf_printf(b, "\",method=\"%s\"", s->method);
    if (with_status)
        aegis_textbuf_printf(b, ",status=\"%ld\"", s->status);
}

/* One histogram per host, resource and method: the statuses of a series are merged. */
static void render_duration(const struct httpc_metrics *m, struct aegis_textbuf *b,
                            const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct httpc_series *s = &m->v[i];
        uint64_t buckets[HTTPC_BUCKETS + 1] = {0}, cum = 0;
        double sum = 0;
        bool first = true;

        for (size_t j = 0; j < m->n; j++) {
            const struct httpc_series *t = &m->v[j];

            if (strcmp(t->host, s->host) != 0 || strcmp(t->path, s->path) != 0 ||
                strcmp(t->method, s->method) != 0)
                continue;
            if (j < i) {
                first = false;
                break;
            }
            for (size_t k = 0; k <= HTTPC_BUCKETS; k++)
                buckets[k] += t->buckets[k];
            sum += t->sum;
        }
        if (!first)
            continue;
        for (size_t k = 0; k <= HTTPC_BUCKETS; k++) {
            cum += buckets[k];
            aegis_textbuf_printf(b, "%s_bucket{", name);
            put_labels(b, s, false);
            if (k < HTTPC_BUCKETS)
                aegis_textbuf_printf(b, ",le=\"%g\"} %" PRIu64 "\n", bucket_s[k], cum);
            else
                aegis_textbuf_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        aegis_textbuf_printf(b, "%s_sum{", name);
        put_labels(b, s, false);
        aegis_textbuf_printf(b, "} %.6f\n", sum);
        aegis_textbuf_printf(b, "%s_count{", name);
        put_labels(b, s, false);
        aegis_textbuf_printf(b, "} %" PRIu64 "\n", cum);
    }
}

void httpc_metrics_render(struct httpc_metrics *m, struct aegis_textbuf *b, const char *count_name,
                          const char *count_help, const char *duration_name,
                          const char *duration_help)
{
    pthread_mutex_lock(&m->lock);
    aegis_prom_family(b, count_name, "counter", count_help);
    for (size_t i = 0; i < m->n; i++) {
        aegis_textbuf_printf(b, "%s{", count_name);
        put_labels(b, &m->v[i], true);
        aegis_textbuf_printf(b, "} %" PRIu64 "\n", m->v[i].count);
    }
    if (duration_name != NULL) {
        aegis_prom_family(b, duration_name, "histogram", duration_help);
        render_duration(m, b, duration_name);
    }
    pthread_mutex_unlock(&m->lock);
}

void httpc_metrics_reset(struct httpc_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->n = 0;
    pthread_mutex_unlock(&m->lock);
}
