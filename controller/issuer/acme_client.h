/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACME client's transport (RFC 8555 sections 6 and 7.1): libcurl requests to one CA, the
 * directory, a pool of Replay-Nonces (every answer's nonce is kept for the next request; a
 * badNonce answer is retried with a fresh one up to ACME_CLIENT_BADNONCE_RETRIES times),
 * POST-as-GET, problem documents (RFC 7807 / RFC 8555 section 6.7, subproblems per identifier)
 * turned into plain-words messages, Retry-After turned into a Unix time, Link headers.
 *
 * One struct acme_client per CA directory URL and trust bundle; it is thread-safe (issue() runs
 * on worker threads): the nonce pool and the connection cache are behind their own locks.
 *
 * Metrics: every request is counted in aegis_acme_client_request_count{host,path,method,status}
 * and timed in aegis_acme_client_request_duration_seconds{host,path,method}; `path` is the kind
 * of ACME resource (directory, newNonce, newAccount, newOrder, order, authz, challenge, finalize,
 * certificate, revokeCert, account), not the URL, so the series stay few.
 */
#ifndef AEGIS_ACME_CLIENT_H
#define AEGIS_ACME_CLIENT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"

struct aegis_textbuf;

/* Named limits of what the client reads from a CA. */
#define ACME_CLIENT_BODY_MAX ((size_t)1024 * 1024) /* one response body (a chain fits) */
#define ACME_CLIENT_HEADER_MAX 8192                /* one response header line */
#define ACME_CLIENT_LINKS_MAX 8                    /* alternate chains kept per response */
#define ACME_CLIENT_NONCES_MAX 64                  /* nonces kept in the pool */
#define ACME_CLIENT_BADNONCE_RETRIES 10            /* fresh-nonce retries of one request */
#define ACME_CLIENT_CONNECT_TIMEOUT_MS 5000
#define ACME_CLIENT_TIMEOUT_MS 10000              /* one request, all included */
#define ACME_CLIENT_RETRY_AFTER_MAX_S (24 * 3600) /* a longer Retry-After is cut to this */
#define ACME_CLIENT_SUBPROBLEMS_MAX 16            /* subproblems put into one message */

/* ACME error types (urn:ietf:params:acme:error:<name>) the issuer acts on. */
#define ACME_ERR_PREFIX "urn:ietf:params:acme:error:"

/* A problem document, reduced to what the issuer uses. */
struct acme_problem {
    char type[128]; /* the type without ACME_ERR_PREFIX ("badNonce", "rateLimited"), or "" */
    char message[AEGIS_ERR_MSG_MAX]; /* detail and subproblems in plain words */
};

struct acme_response {
    long status;  /* HTTP status; 0 when no answer came */
    json_t *json; /* the body when it is JSON, else NULL */
    char *body;   /* the raw body (NUL-terminated), e.g. a PEM chain */
    size_t body_len;
    char *location;                          /* Location header, or NULL */
    char *alternates[ACME_CLIENT_LINKS_MAX]; /* Link rel="alternate" URLs */
    size_t n_alternates;
    int64_t retry_after; /* Unix seconds from Retry-After; 0 when absent */
    struct acme_problem problem;
};

void acme_response_init(struct acme_response *r);
void acme_response_dispose(struct acme_response *r);

struct acme_client;

/*
 * A client for the directory at url, trusting ca_pem (PEM certificates; NULL: the system store).
 * The directory is read on first use. Both strings are copied.
 */
int acme_client_new(const char *url, const char *ca_pem, struct acme_client **out,
                    struct aegis_err *err);
void acme_client_free(struct acme_client *c);

/*
 * A directory entry ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"), read from
 * the CA on the first call; borrowed, valid for the client's life. Returns 0 or a negative code
 * when the directory cannot be read (err says why) or has no such entry.
 */
int acme_client_dir_url(struct acme_client *c, const char *name, int64_t now, const char **url,
                        struct aegis_err *err);
/* Whether the directory's meta says externalAccountRequired (after acme_client_dir_url). */
bool acme_client_eab_required(struct acme_client *c);

/*
 * POSTs payload (NULL: POST-as-GET) to url signed with key, with kid (NULL: the jwk). path_label
 * names the resource for the metrics. accept is the Accept header (NULL: JSON). Returns 0 for a
 * 2xx answer; else a negative code with err saying what the CA said (resp->problem holds the
 * type, resp->retry_after the time to come back), -EIO when the CA could not be reached.
 */
int acme_client_post(struct acme_client *c, EVP_PKEY *key, const char *kid, const char *url,
                     const char *payload, const char *path_label, const char *accept, int64_t now,
                     struct acme_response *resp, struct aegis_err *err);

/* ---- parsing, exposed for the unit tests and the fuzz target ---- */

/* Fills p from a problem document (type, detail, subproblems with their identifiers). */
void acme_problem_parse(const json_t *doc, struct acme_problem *p);
/*
 * Parses a Retry-After value (delta seconds or an HTTP date) against now into Unix seconds, at
 * most now + ACME_CLIENT_RETRY_AFTER_MAX_S; 0 when it cannot be parsed.
 */
int64_t acme_retry_after_parse(const char *value, int64_t now);
/*
 * The code acme_client_post returns for a non-2xx answer: -EAGAIN when the CA rate-limits (HTTP
 * 429, or a rateLimited problem whatever the status: RFC 8555 section 6.6), so the issuer waits
 * for Retry-After and keeps the order; -AEGIS_E_STATE for every other refusal.
 */
int acme_client_error_code(long status, const struct acme_problem *p);
/*
 * Appends to resp->alternates the targets of rel="alternate" links of one Link header value
 * (several links separated by commas).
 */
void acme_link_parse(const char *value, struct acme_response *resp);

/* ---- metrics ---- */

/* Appends the client's series to b (cmetrics.c's /metrics). Thread-safe. */
void acme_client_metrics_render(struct aegis_textbuf *b);
/* Forgets every series (tests). */
void acme_client_metrics_reset(void);

#endif
