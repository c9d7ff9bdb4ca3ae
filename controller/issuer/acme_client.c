/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACME transport (acme_client.h): libcurl, one easy handle per request sharing a connection
 * and TLS-session cache per CA (a CURLSH with locks), the nonce pool, problem documents, the
 * request metrics.
 */
#include "issuer/acme_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aegis/alloc.h"
#include "aegis/promtext.h"
#include "httpc.h"
#include "issuer/acme_jws.h"

#define WHERE "acme"
/* Distinct metric series kept; later ones are dropped (a CA cannot grow our memory). */
#define ACME_METRICS_SERIES_MAX 256

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

/* ---- metrics -------------------------------------------------------------------------------- */

static struct httpc_series series[ACME_METRICS_SERIES_MAX];
static struct httpc_metrics metrics = HTTPC_METRICS_INIT(series);

void acme_client_metrics_render(struct aegis_textbuf *b)
{
    httpc_metrics_render(&metrics, b, "aegis_acme_client_request_count",
                         "Requests to ACME CAs, by host, resource, method and HTTP status "
                         "(0: no answer).",
                         "aegis_acme_client_request_duration_seconds",
                         "Time until an ACME CA answered a request.");
}

void acme_client_metrics_reset(void)
{
    httpc_metrics_reset(&metrics);
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
    httpc_cat(p->message, sizeof(p->message), &len,
              detail != NULL && detail[0] != '\0' ? detail : "no detail given");
    if (p->type[0] != '\0') {
        httpc_cat(p->message, sizeof(p->message), &len, " (");
        httpc_cat(p->message, sizeof(p->message), &len, p->type);
        httpc_cat(p->message, sizeof(p->message), &len, ")");
    }
    if (json_is_array(subs)) {
        for (size_t i = 0; i < json_array_size(subs) && i < ACME_CLIENT_SUBPROBLEMS_MAX; i++) {
            const json_t *s = json_array_get(subs, i);
            const char *v =
                json_string_value(json_object_get(json_object_get(s, "identifier"), "value"));
            const char *d = json_string_value(json_object_get(s, "detail"));

            httpc_cat(p->message, sizeof(p->message), &len, "; ");
            httpc_cat(p->message, sizeof(p->message), &len, v != NULL ? v : "?");
            httpc_cat(p->message, sizeof(p->message), &len, ": ");
            httpc_cat(p->message, sizeof(p->message), &len, d != NULL ? d : "no detail");
            httpc_cat(p->message, sizeof(p->message), &len, " (");
            httpc_cat(p->message, sizeof(p->message), &len,
                      short_type(json_string_value(json_object_get(s, "type"))));
            httpc_cat(p->message, sizeof(p->message), &len, ")");
        }
    }
}

int64_t acme_retry_after_parse(const char *value, int64_t now)
{
    return httpc_retry_after_parse(value, now, ACME_CLIENT_RETRY_AFTER_MAX_S);
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
    char host[HTTPC_HOST_MAX];

    *out = NULL;
    httpc_global_init();
    if (httpc_url_host(url, host, sizeof(host)) < 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, "spec.acme.server",
                             "%s is not a URL: give the CA's directory URL, e.g. "
                             "https://acme-v02.api.letsencrypt.org/directory",
                             url);
    c = aegis_calloc(1, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "%s", host);
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

struct hdr_ctx {
    struct acme_client *c;
    struct acme_response *resp;
    bool json;
    int64_t now; /* the caller's clock, for Retry-After dates */
};

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

static void on_header(void *ctx, char *line)
{
    struct hdr_ctx *x = ctx;
    const char *v;

    if ((v = httpc_header_match(line, "Replay-Nonce")) != NULL) {
        if (v[0] != '\0' && strlen(v) < 256)
            put_nonce(x->c, v);
    } else if ((v = httpc_header_match(line, "Location")) != NULL) {
        free(x->resp->location);
        x->resp->location = aegis_strdup(v);
    } else if ((v = httpc_header_match(line, "Link")) != NULL) {
        acme_link_parse(v, x->resp);
    } else if ((v = httpc_header_match(line, "Retry-After")) != NULL) {
        x->resp->retry_after = acme_retry_after_parse(v, x->now);
    } else if ((v = httpc_header_match(line, "Content-Type")) != NULL) {
        x->json = strncasecmp(v, "application/json", 16) == 0 ||
                  strncasecmp(v, "application/problem+json", 24) == 0;
    } else if (strncasecmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100-continue): forget the last one's headers. */
        free(x->resp->location);
        x->resp->location = NULL;
        x->json = false;
    }
}

/*
 * One HTTP request. method "GET", "HEAD" or "POST" (body: JOSE JSON). Returns 0 when an answer
 * came (any status) or -EIO with err.
 */
static int request(struct acme_client *c, const char *method, const char *url, const char *body,
                   const char *accept, const char *path_label, int64_t now,
                   struct acme_response *resp, struct aegis_err *err)
{
    struct hdr_ctx x = {.c = c, .resp = resp, .now = now};
    struct httpc_request rq = {.method = method,
                               .url = url,
                               .body = body,
                               .ca_pem = c->ca_pem,
                               .share = c->share,
                               .connect_timeout_ms = ACME_CLIENT_CONNECT_TIMEOUT_MS,
                               .timeout_ms = ACME_CLIENT_TIMEOUT_MS,
                               .body_max = ACME_CLIENT_BODY_MAX,
                               .header_max = ACME_CLIENT_HEADER_MAX,
                               .on_header = on_header,
                               .ctx = &x};
    struct httpc_response hr;
    struct curl_slist *hdrs = NULL;
    int rc;

    if (accept != NULL) {
        char a[128];

        snprintf(a, sizeof(a), "Accept: %s", accept);
        hdrs = curl_slist_append(hdrs, a);
    }
    if (body != NULL)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
    rq.headers = hdrs;
    rc = httpc_perform(&rq, &hr);
    curl_slist_free_all(hdrs);
    httpc_metrics_observe(&metrics, c->host, path_label, method, rc == 0 ? hr.status : 0,
                          hr.seconds);
    if (rc == -AEGIS_E_LIMIT)
        return aegis_err_set(err, rc, WHERE, "the answer of the CA at %s is larger than %zu bytes",
                             url, ACME_CLIENT_BODY_MAX);
    if (rc < 0)
        return aegis_err_set(err, rc, WHERE, "the CA at %s did not answer: %s", c->host, hr.error);
    resp->status = hr.status;
    resp->body = hr.body != NULL ? hr.body : aegis_strdup("");
    resp->body_len = hr.len;
    if (x.json && resp->body_len > 0)
        resp->json = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (resp->status >= 400 && resp->json != NULL)
        acme_problem_parse(resp->json, &resp->problem);
    return 0;
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
