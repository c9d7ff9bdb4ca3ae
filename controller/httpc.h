/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libcurl plumbing shared by the controller's HTTP API clients (the ACME client and the
 * Cloudflare API client): one easy handle per request with a size-limited response body, header
 * lines handed to the caller, timeouts, the CA bundle and a connection share; Retry-After; the
 * per host/resource/method/status request metrics; a bounded append for answers' messages.
 *
 * What a request means (envelopes, problem documents, nonces, error classes) stays with each
 * client. Thread-safe: nothing is shared but the metrics, which lock.
 */
#ifndef AEGIS_HTTPC_H
#define AEGIS_HTTPC_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/promtext.h"

#define HTTPC_HEADER_MAX 8192 /* one response header line read; a longer one is passed over */
#define HTTPC_HOST_MAX 128    /* a metrics host label */
#define HTTPC_LABEL_MAX 32    /* a metrics resource label */
#define HTTPC_METHOD_MAX 8    /* a metrics method label */
#define HTTPC_BUCKETS 11      /* request duration histogram buckets (+Inf apart) */

/* curl_global_init, once per process (it is not thread-safe itself). */
void httpc_global_init(void);

struct httpc_request {
    const char *method; /* "GET", "HEAD", "POST", "DELETE", ... */
    const char *url;
    struct curl_slist *headers; /* the request's own headers (User-Agent is set here) */
    const char *body;           /* sent as is; NULL: none */
    const char *ca_pem;         /* trusted CAs (PEM); NULL: the system bundle */
    CURLSH *share;              /* connection/TLS-session cache; NULL: none */
    long connect_timeout_ms, timeout_ms;
    size_t body_max;   /* a larger answer fails the request with -AEGIS_E_LIMIT */
    size_t header_max; /* header lines this long or longer are not handed on */
    /* Each header line (the status line too), NUL-terminated, CRLF kept; NULL: none read. */
    void (*on_header)(void *ctx, char *line);
    void *ctx;
};

struct httpc_response {
    long status; /* 0: no answer */
    char *body;  /* NUL-terminated, NULL when empty: the caller frees it */
    size_t len;
    double seconds;              /* until the answer (or the failure) */
    char error[CURL_ERROR_SIZE]; /* why no answer came */
};

/*
 * One request. Returns 0 when an answer came (any status), -AEGIS_E_LIMIT when its body is larger
 * than rq->body_max, -EIO when none came (resp->error says why), -ENOMEM when curl could not
 * start. The caller words the message: it knows what the request was for.
 */
int httpc_perform(const struct httpc_request *rq, struct httpc_response *resp);

/* The trimmed value of header line when it is the header name ("Retry-After"), else NULL. */
const char *httpc_header_match(char *line, const char *name);

/* Retry-After (seconds or an HTTP date) as Unix seconds, at most max_s from now; 0 if invalid. */
int64_t httpc_retry_after_parse(const char *value, int64_t now, int64_t max_s);

/* The host of url into out ("?" and -AEGIS_E_INVALID when url is not a URL). */
int httpc_url_host(const char *url, char *out, size_t size);

/* Appends s to buf (size bytes) at *len, cutting what does not fit. */
void httpc_cat(char *buf, size_t size, size_t *len, const char *s);

/* ---- metrics ---- */

struct httpc_series {
    char host[HTTPC_HOST_MAX], path[HTTPC_LABEL_MAX], method[HTTPC_METHOD_MAX];
    long status;
    uint64_t count;
    uint64_t buckets[HTTPC_BUCKETS + 1];
    double sum;
};

/* One client's series; past max, new series are dropped (an API cannot grow our memory). */
struct httpc_metrics {
    pthread_mutex_t lock;
    struct httpc_series *v;
    size_t n, max;
};

#define HTTPC_METRICS_INIT(array)                                                                  \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .v = (array), .n = 0,                                   \
        .max = sizeof(array) / sizeof((array)[0])                                                  \
    }

void httpc_metrics_observe(struct httpc_metrics *m, const char *host, const char *path,
                           const char *method, long status, double seconds);
/*
 * Appends the counter family count_name{host,path,method,status} and, when duration_name is not
 * NULL, the histogram duration_name{host,path,method} (statuses merged).
 */
void httpc_metrics_render(struct httpc_metrics *m, struct aegis_textbuf *b, const char *count_name,
                          const char *count_help, const char *duration_name,
                          const char *duration_help);
void httpc_metrics_reset(struct httpc_metrics *m);

#endif
