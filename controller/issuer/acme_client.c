/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACME transport (acme_client.h): libcurl, one easy handle per request sharing a connection
 * and TLS-session cache per CA (a CURLSH with locks), the nonce pool, problem documents, the
 * request metrics.
 */
#include "issuer/acme_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/promtext.h"
#include "issuer/acme_jws.h"

#define WHERE "acme"
/* Distinct metric series kept; later ones are dropped (a CA cannot grow our memory). */
#define ACME_METRICS_SERIES_MAX 256
#define ACME_DIR_NAME_MAX 32

struct acme_client {
    char *url;
    char *ca_pem;
    char host[128]; /* the directory's host, the metrics' host label */
    pthread_mutex_t lock;
    json_t *dir;
    char *nonces[ACME_CLIENT_NONCES_MAX];
    size_t n_nonces;
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static const double bucket_s[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))

struct series {
    char host[128], path[ACME_DIR_NAME_MAX], method[8];
    long status;
    uint64_t count;
    uint64_t buckets[N_BUCKETS + 1];
    double sum;
};

static struct {
    pthread_mutex_t lock;
    struct series v[ACME_METRICS_SERIES_MAX];
    size_t n;
} metrics = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void metrics_observe(const char *host, const char *path, const char *method, long status,
                            double seconds)
{
    struct series *s = NULL;
    size_t b = 0;

    pthread_mutex_lock(&metrics.lock);
    for (size_t i = 0; i < metrics.n && s == NULL; i++) {
        struct series *x = &metrics.v[i];

        if (x->status == status && strcmp(x->host, host) == 0 && strcmp(x->path, path) == 0 &&
            strcmp(x->method, method) == 0)
            s = x;
    }
    if (s == NULL && metrics.n < ACME_METRICS_SERIES_MAX) {
        s = &metrics.v[metrics.n++];
        memset(s, 0, sizeof(*s));
        snprintf(s->host, sizeof(s->host), "%s", host);
        snprintf(s->path, sizeof(s->path), "%s", path);
        snprintf(s->method, sizeof(s->method), "%s", method);
        s->status = status;
    }
    if (s != NULL) {
        while (b < N_BUCKETS && seconds > bucket_s[b])
            b++;
        s->count++;
        s->buckets[b]++;
        s->sum += seconds;
    }
    pthread_mutex_unlock(&metrics.lock);
}

static void put_labels(struct aegis_textbuf *b, const struct series *s, bool with_status)
{
    aegis_textbuf_puts(b, "host=\"");
    aegis_prom_label_value(b, s->host);
    aegis_textbuf_puts(b, "\",path=\"");
    aegis_prom_label_value(b, s->path);
    aegis_textbuf_printf(b, "\",method=\"%s\"", s->method);
    if (with_status)
        aegis_textbuf_printf(b, ",status=\"%ld\"", s->status);
}

void acme_client_metrics_render(struct aegis_textbuf *b)
{
    pthread_mutex_lock(&metrics.lock);
    aegis_prom_family(b, "aegis_acme_client_request_count", "counter",
                      "Requests to ACME CAs, by host, resource, method and HTTP status "
                      "(0: no answer).");
    for (size_t i = 0; i < metrics.n; i++) {
        aegis_textbuf_puts(b, "aegis_acme_client_request_count{");
        put_labels(b, &metrics.v[i], true);
        aegis_textbuf_printf(b, "} %" PRIu64 "\n", metrics.v[i].count);
    }
    aegis_prom_family(b, "aegis_acme_client_request_duration_seconds", "histogram",
                      "Time until an ACME CA answered a request.");
    /* One histogram per host, resource and method: the statuses of a series are merged. */
    for (size_t i = 0; i < metrics.n; i++) {
        const struct series *s = &metrics.v[i];
        uint64_t buckets[N_BUCKETS + 1] = {0}, cum = 0;
        double sum = 0;
        bool first = true;

        for (size_t j = 0; j < metrics.n; j++) {
            const struct series *t = &metrics.v[j];

            if (strcmp(t->host, s->host) != 0 || strcmp(t->path, s->path) != 0 ||
                strcmp(t->method, s->method) != 0)
                continue;
            if (j < i) {
                first = false;
                break;
            }
            for (size_t k = 0; k <= N_BUCKETS; k++)
                buckets[k] += t->buckets[k];
            sum += t->sum;
        }
        if (!first)
            continue;
        for (size_t k = 0; k <= N_BUCKETS; k++) {
            cum += buckets[k];
            aegis_textbuf_puts(b, "aegis_acme_client_request_duration_seconds_bucket{");
            put_labels(b, s, false);
            if (k < N_BUCKETS)
                aegis_textbuf_printf(b, ",le=\"%g\"} %" PRIu64 "\n", bucket_s[k], cum);
            else
                aegis_textbuf_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        aegis_textbuf_puts(b, "aegis_acme_client_request_duration_seconds_sum{");
        put_labels(b, s, false);
        aegis_textbuf_printf(b, "} %.6f\n", sum);
        aegis_textbuf_puts(b, "aegis_acme_client_request_duration_seconds_count{");
        put_labels(b, s, false);
        aegis_textbuf_printf(b, "} %" PRIu64 "\n", cum);
    }
    pthread_mutex_unlock(&metrics.lock);
}

void acme_client_metrics_reset(void)
{
    pthread_mutex_lock(&metrics.lock);
    metrics.n = 0;
    pthread_mutex_unlock(&metrics.lock);
}

/* ---- parsing -------------------------------------------------------------------------------- */

void acme_response_init(struct acme_response *r)
{
    memset(r, 0, sizeof(*r));
}

void acme_response_dispose(struct acme_response *r)
{
    json_decref(r->json);
    free(r->body);
    free(r->location);
    for (size_t i = 0; i < r->n_alternates; i++)
        free(r->alternates[i]);
    memset(r, 0, sizeof(*r));
}

/* Appends s to buf (size bytes) at *len, cutting what does not fit. */
static void cat(char *buf, size_t size, size_t *len, const char *s)
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

static const char *short_type(const char *type)
{
    size_t n = strlen(ACME_ERR_PREFIX);

    if (type == NULL)
        return "";
    return strncmp(type, ACME_ERR_PREFIX, n) == 0 ? type + n : type;
}

void acme_problem_parse(const json_t *doc, struct acme_problem *p)
{
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    const json_t *subs = json_object_get(doc, "subproblems");
    size_t len = 0;

    memset(p, 0, sizeof(*p));
    snprintf(p->type, sizeof(p->type), "%s", short_type(type));
    cat(p->message, sizeof(p->message), &len,
        detail != NULL && detail[0] != '\0' ? detail : "no detail given");
    if (p->type[0] != '\0') {
        cat(p->message, sizeof(p->message), &len, " (");
        cat(p->message, sizeof(p->message), &len, p->type);
        cat(p->message, sizeof(p->message), &len, ")");
    }
    if (json_is_array(subs)) {
        for (size_t i = 0; i < json_array_size(subs) && i < ACME_CLIENT_SUBPROBLEMS_MAX; i++) {
            const json_t *s = json_array_get(subs, i);
            const char *v =
                json_string_value(json_object_get(json_object_get(s, "identifier"), "value"));
            const char *d = json_string_value(json_object_get(s, "detail"));

            cat(p->message, sizeof(p->message), &len, "; ");
            cat(p->message, sizeof(p->message), &len, v != NULL ? v : "?");
            cat(p->message, sizeof(p->message), &len, ": ");
            cat(p->message, sizeof(p->message), &len, d != NULL ? d : "no detail");
            cat(p->message, sizeof(p->message), &len, " (");
            cat(p->message, sizeof(p->message), &len,
                short_type(json_string_value(json_object_get(s, "type"))));
            cat(p->message, sizeof(p->message), &len, ")");
        }
    }
}

int64_t acme_retry_after_parse(const char *value, int64_t now)
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
        at =
            secs > ACME_CLIENT_RETRY_AFTER_MAX_S ? now + ACME_CLIENT_RETRY_AFTER_MAX_S : now + secs;
        return at;
    }
    t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return 0;
    at = (int64_t)t;
    if (at < now)
        return now;
    return at > now + ACME_CLIENT_RETRY_AFTER_MAX_S ? now + ACME_CLIENT_RETRY_AFTER_MAX_S : at;
}

void acme_link_parse(const char *value, struct acme_response *resp)
{
    const char *p = value;

    /* Link: <url>; rel="alternate", <url2>;rel=up ... (RFC 8288). */
    while (*p != '\0' && resp->n_alternates < ACME_CLIENT_LINKS_MAX) {
        const char *lt = strchr(p, '<'), *gt, *next;
        char params[256];
        size_t plen;

        if (lt == NULL)
            return;
        gt = strchr(lt + 1, '>');
        if (gt == NULL)
            return;
        next = strchr(gt + 1, '<');
        plen = next != NULL ? (size_t)(next - gt - 1) : strlen(gt + 1);
        if (plen >= sizeof(params))
            plen = sizeof(params) - 1;
        memcpy(params, gt + 1, plen);
        params[plen] = '\0';
        if (strstr(params, "rel=\"alternate\"") != NULL || strstr(params, "rel=alternate") != NULL)
            resp->alternates[resp->n_alternates++] = aegis_strndup(lt + 1, (size_t)(gt - lt - 1));
        if (next == NULL)
            return;
        p = next;
    }
}

/* ---- the client ----------------------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    struct acme_client *c = ctx;

    (void)h;
    (void)access;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    struct acme_client *c = ctx;

    (void)h;
    pthread_mutex_unlock(&c->share_locks[data]);
}

int acme_client_new(const char *url, const char *ca_pem, struct acme_client **out,
                    struct aegis_err *err)
{
    struct acme_client *c;
    CURLU *u;
    char *host = NULL;

    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    u = curl_url();
    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.server",
                             "%s is not a URL: give the CA's directory URL, e.g. "
                             "https://acme-v02.api.letsencrypt.org/directory",
                             url);
    }
    c = aegis_calloc(1, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
    c->url = aegis_strdup(url);
    c->ca_pem = ca_pem != NULL ? aegis_strdup(ca_pem) : NULL;
    pthread_mutex_init(&c->lock, NULL);
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    c->share = curl_share_init();
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    *out = c;
    return 0;
}

void acme_client_free(struct acme_client *c)
{
    if (c == NULL)
        return;
    curl_share_cleanup(c->share);
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    for (size_t i = 0; i < c->n_nonces; i++)
        free(c->nonces[i]);
    json_decref(c->dir);
    pthread_mutex_destroy(&c->lock);
    free(c->url);
    free(c->ca_pem);
    free(c);
}

struct xfer {
    struct acme_client *c;
    struct acme_response *resp;
    char *buf;
    size_t len, cap;
    bool too_big;
    bool json;
    int64_t now; /* the caller's clock, for Retry-After dates */
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;

    if (x->len + len > ACME_CLIENT_BODY_MAX) {
        x->too_big = true;
        return 0;
    }
    if (x->len + len + 1 > x->cap) {
        x->cap = (x->len + len + 1) * 2;
        if (x->cap > ACME_CLIENT_BODY_MAX + 1)
            x->cap = ACME_CLIENT_BODY_MAX + 1;
        x->buf = aegis_realloc(x->buf, x->cap);
    }
    memcpy(x->buf + x->len, data, len);
    x->len += len;
    x->buf[x->len] = '\0';
    return len;
}

static void put_nonce(struct acme_client *c, const char *nonce)
{
    pthread_mutex_lock(&c->lock);
    if (c->n_nonces == ACME_CLIENT_NONCES_MAX) {
        /* The oldest is the likeliest to have expired. */
        free(c->nonces[0]);
        memmove(c->nonces, c->nonces + 1, (ACME_CLIENT_NONCES_MAX - 1) * sizeof(c->nonces[0]));
        c->n_nonces--;
    }
    c->nonces[c->n_nonces++] = aegis_strdup(nonce);
    pthread_mutex_unlock(&c->lock);
}

static char *take_nonce(struct acme_client *c)
{
    char *n = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->n_nonces > 0)
        n = c->nonces[--c->n_nonces];
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Trims the header value in place: leading blanks and the trailing CRLF. */
static char *header_value(char *line, size_t name_len)
{
    char *v = line + name_len, *end;

    while (*v == ' ' || *v == '\t')
        v++;
    end = v + strlen(v);
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        *--end = '\0';
    return v;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    size_t len = size * n;
    char line[ACME_CLIENT_HEADER_MAX];

    if (len >= sizeof(line))
        return len; /* longer than any header ACME uses: ignored */
    memcpy(line, data, len);
    line[len] = '\0';
    if (strncasecmp(line, "Replay-Nonce:", 13) == 0) {
        const char *v = header_value(line, 13);

        if (v[0] != '\0' && strlen(v) < 256)
            put_nonce(x->c, v);
    } else if (strncasecmp(line, "Location:", 9) == 0) {
        free(x->resp->location);
        x->resp->location = aegis_strdup(header_value(line, 9));
    } else if (strncasecmp(line, "Link:", 5) == 0) {
        acme_link_parse(header_value(line, 5), x->resp);
    } else if (strncasecmp(line, "Retry-After:", 12) == 0) {
        x->resp->retry_after = acme_retry_after_parse(header_value(line, 12), x->now);
    } else if (strncasecmp(line, "Content-Type:", 13) == 0) {
        const char *v = header_value(line, 13);

        x->json = strncasecmp(v, "application/json", 16) == 0 ||
                  strncasecmp(v, "application/problem+json", 24) == 0;
    } else if (strncasecmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100-continue): forget the last one's headers. */
        free(x->resp->location);
        x->resp->location = NULL;
        x->json = false;
    }
    return len;
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One HTTP request. method "GET", "HEAD" or "POST" (body: JOSE JSON). Returns 0 when an answer
 * came (any status) or -EIO with err.
 */
static int request(struct acme_client *c, const char *method, const char *url, const char *body,
                   const char *accept, const char *path_label, int64_t now,
                   struct acme_response *resp, struct aegis_err *err)
{
    struct xfer x = {.c = c, .resp = resp, .now = now};
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    double started = mono_s();
    CURLcode cc;
    int rc = 0;

    if (h == NULL)
        return aegis_err_set(err, -ENOMEM, WHERE, "curl_easy_init failed");
    hdrs = curl_slist_append(hdrs, "User-Agent: aegis-controller/" AEGIS_VERSION);
    if (accept != NULL) {
        char a[128];

        snprintf(a, sizeof(a), "Accept: %s", accept);
        hdrs = curl_slist_append(hdrs, a);
    }
    if (body != NULL)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ACME_CLIENT_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)ACME_CLIENT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
    if (c->ca_pem != NULL) {
        struct curl_blob blob = {c->ca_pem, strlen(c->ca_pem), CURL_BLOB_COPY};

        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    cc = curl_easy_perform(h);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    } else if (x.too_big) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, WHERE,
                           "the answer of the CA at %s is larger than %zu bytes", url,
                           ACME_CLIENT_BODY_MAX);
    } else {
        rc = aegis_err_set(err, -EIO, WHERE, "the CA at %s did not answer: %s", c->host,
                           errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
    }
    metrics_observe(c->host, path_label, method, rc == 0 ? resp->status : 0, mono_s() - started);
    if (rc == 0) {
        resp->body = x.buf != NULL ? x.buf : aegis_strdup("");
        resp->body_len = x.len;
        x.buf = NULL;
        if (x.json && resp->body_len > 0)
            resp->json = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (resp->status >= 400 && resp->json != NULL)
            acme_problem_parse(resp->json, &resp->problem);
    }
    free(x.buf);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

static int load_directory(struct acme_client *c, int64_t now, struct aegis_err *err)
{
    struct acme_response r;
    int rc;

    pthread_mutex_lock(&c->lock);
    if (c->dir != NULL) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);
    acme_response_init(&r);
    rc = request(c, "GET", c->url, NULL, NULL, "directory", now, &r, err);
    if (rc == 0 && (r.status != 200 || !json_is_object(r.json)))
        rc = aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.server",
                           "%s answered HTTP %ld without an ACME directory: check the URL", c->url,
                           r.status);
    if (rc == 0) {
        pthread_mutex_lock(&c->lock);
        if (c->dir == NULL)
            c->dir = json_incref(r.json);
        pthread_mutex_unlock(&c->lock);
    }
    acme_response_dispose(&r);
    return rc;
}

int acme_client_dir_url(struct acme_client *c, const char *name, int64_t now, const char **url,
                        struct aegis_err *err)
{
    int rc = load_directory(c, now, err);

    if (rc < 0)
        return rc;
    /* c->dir is set once and never replaced: the string stays valid for the client's life. */
    pthread_mutex_lock(&c->lock);
    *url = json_string_value(json_object_get(c->dir, name));
    pthread_mutex_unlock(&c->lock);
    if (*url == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.server",
                             "the ACME directory at %s has no %s", c->url, name);
    return 0;
}

bool acme_client_eab_required(struct acme_client *c)
{
    bool required;

    pthread_mutex_lock(&c->lock);
    required = c->dir != NULL && json_is_true(json_object_get(json_object_get(c->dir, "meta"),
                                                              "externalAccountRequired"));
    pthread_mutex_unlock(&c->lock);
    return required;
}

/* A nonce from the pool, else a fresh one from newNonce (RFC 8555 7.2). */
static int nonce(struct acme_client *c, int64_t now, char **out, struct aegis_err *err)
{
    struct acme_response r;
    const char *url;
    int rc;

    *out = take_nonce(c);
    if (*out != NULL)
        return 0;
    rc = acme_client_dir_url(c, "newNonce", now, &url, err);
    if (rc < 0)
        return rc;
    acme_response_init(&r);
    rc = request(c, "HEAD", url, NULL, NULL, "newNonce", now, &r, err);
    acme_response_dispose(&r);
    if (rc < 0)
        return rc;
    *out = take_nonce(c);
    if (*out == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE,
                             "the CA at %s gave no Replay-Nonce from newNonce", c->host);
    return 0;
}

int acme_client_post(struct acme_client *c, EVP_PKEY *key, const char *kid, const char *url,
                     const char *payload, const char *path_label, const char *accept, int64_t now,
                     struct acme_response *resp, struct aegis_err *err)
{
    int rc = 0;

    for (int attempt = 0; attempt <= ACME_CLIENT_BADNONCE_RETRIES; attempt++) {
        char *n = NULL, *body = NULL;

        acme_response_dispose(resp);
        rc = nonce(c, now, &n, err);
        if (rc == 0)
            rc = acme_jws_sign(key, kid, n, url, payload, &body, err);
        if (rc == 0)
            rc = request(c, "POST", url, body, accept != NULL ? accept : "application/json",
                         path_label, now, resp, err);
        free(n);
        free(body);
        if (rc < 0)
            return rc;
        /* A rejected nonce is the CA's normal way of saying "use a fresh one" (RFC 8555 6.5);
         * the answer carried one, now in the pool. */
        if (resp->status == 400 && strcmp(resp->problem.type, "badNonce") == 0)
            continue;
        break;
    }
    if (resp->status >= 200 && resp->status < 300)
        return 0;
    if (resp->problem.message[0] != '\0')
        return aegis_err_set(err, acme_client_error_code(resp->status, &resp->problem), WHERE,
                             "the CA said: %s", resp->problem.message);
    return aegis_err_set(err, acme_client_error_code(resp->status, &resp->problem), WHERE,
                         "the CA at %s answered HTTP %ld to %s", c->host, resp->status, path_label);
}

int acme_client_error_code(long status, const struct acme_problem *p)
{
    if (status == 429 || (p != NULL && strcmp(p->type, "rateLimited") == 0))
        return -EAGAIN;
    return -AEGIS_E_STATE;
}
