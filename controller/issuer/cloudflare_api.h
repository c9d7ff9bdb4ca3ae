/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client of Cloudflare's v4 API (https://api.cloudflare.com/client/v4) shared by the Origin
 * CA issuer (cloudflare_origin.c) and the DNS-01 provider (dns01_cloudflare.c): libcurl requests
 * authenticated by an API token (`Authorization: Bearer`), an Origin CA key
 * (`X-Auth-User-Service-Key`) or the legacy global key (`X-Auth-Email` + `X-Auth-Key`); the
 * response envelope `{success, errors[{code, message}], messages, result, result_info}`; errors
 * turned into plain words naming the likely fix; paginated lists.
 *
 * Failure classes (the return codes of cf_api_call and cf_api_classify):
 *   -EIO                the API was not reached, or answered 5xx, or a temporary error code
 *                       (1100, 1201): retry later
 *   -EAGAIN             429 or code 971 (throttled); resp->retry_after holds Retry-After
 *   -EACCES             the credentials are wrong or lack a permission (401/403, 10000, 9109,
 *                       1016, 6003 ...)
 *   -AEGIS_E_NOTFOUND   404, or a zone/record that does not exist (7003, 1001, 1003, 81044)
 *   -AEGIS_E_STATE      any other refusal (400 with the API's words)
 * Nothing here logs, and no message ever holds a credential.
 *
 * Metrics: aegis_cloudflare_api_request_count{host,path,method,status}, `path` a label chosen by
 * the caller ("certificates", "zones", "dns_records"), never the URL; status 0 when no answer.
 * Thread-safe: every call is its own easy handle; no state is shared but the metrics (locked).
 */
#ifndef AEGIS_CLOUDFLARE_API_H
#define AEGIS_CLOUDFLARE_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"

struct aegis_textbuf;

/* Named limits of what the client reads from the API. */
#define CF_API_BODY_MAX ((size_t)1024 * 1024) /* one response body */
#define CF_API_HEADER_MAX 4096                /* one response header line */
#define CF_API_ERRORS_MAX 8                   /* errors[] entries kept from one envelope */
#define CF_API_ERROR_TEXT_MAX 200             /* bytes of one error message kept */
#define CF_API_CONNECT_TIMEOUT_MS 5000
#define CF_API_TIMEOUT_MS 15000 /* one request, all included */
#define CF_API_PER_PAGE 100     /* items asked per page of a list */
#define CF_API_PAGES_MAX 50     /* pages read of one list */
#define CF_API_RETRY_AFTER_MAX_S (24 * 3600)
#define CF_API_RATE_LIMIT_RETRY_S 60 /* a 429 without Retry-After */
#define CF_API_NAME_MAX 256          /* a DNS name, with room for "_acme-challenge." */
#define CF_API_ZONE_LABELS_MAX 16    /* candidate zones tried for one name */
#define CF_API_SECRET_MAX 512        /* a token or key read from a secret */

/* Cloudflare's default API base URL (the schemas' default too). */
#define CF_API_DEFAULT_URL "https://api.cloudflare.com/client/v4"

enum cf_auth_kind {
    CF_AUTH_TOKEN,       /* Authorization: Bearer <token> */
    CF_AUTH_SERVICE_KEY, /* X-Auth-User-Service-Key: <Origin CA key> */
    CF_AUTH_GLOBAL_KEY,  /* X-Auth-Email + X-Auth-Key (legacy) */
};

/* One API endpoint with its credentials. Every pointer is borrowed. */
struct cf_api {
    const char *base_url; /* without a trailing slash is best; one is tolerated */
    enum cf_auth_kind auth;
    const char *secret;     /* the token or key */
    const char *email;      /* CF_AUTH_GLOBAL_KEY */
    const char *where;      /* the spec field messages name, e.g. "spec.cloudflareOriginCA" */
    const char *permission; /* what a token needs, e.g. "Zone - SSL and Certificates - Edit" */
};

struct cf_api_error {
    long code;
    char message[CF_API_ERROR_TEXT_MAX];
};

struct cf_response {
    long status;         /* HTTP status; 0 when no answer came */
    json_t *body;        /* the parsed envelope, or NULL */
    json_t *result;      /* borrowed from body: result, or NULL */
    json_t *result_info; /* borrowed from body: result_info, or NULL */
    bool envelope;       /* body is an object with a boolean success */
    bool success;        /* the envelope's success */
    struct cf_api_error errors[CF_API_ERRORS_MAX];
    size_t n_errors;       /* kept (at most CF_API_ERRORS_MAX) */
    size_t n_errors_total; /* in the envelope */
    int64_t retry_after;   /* Unix seconds from Retry-After; 0 when absent */
};

void cf_response_init(struct cf_response *r);
void cf_response_dispose(struct cf_response *r);

/*
 * One request: method ("GET", "POST", "DELETE"), path below base_url starting with '/' (query
 * included, already escaped), body (JSON text, or NULL), label for the metrics. Returns 0 when
 * the envelope says success, else one of the failure classes above with err naming the request,
 * what Cloudflare said and the likely fix. resp is filled either way (initialized by the caller).
 */
int cf_api_call(const struct cf_api *api, const char *method, const char *path, const char *body,
                const char *label, int64_t now, struct cf_response *resp, struct aegis_err *err);

/*
 * Every item of a paginated list (GET path, which may hold a query; page and per_page are
 * appended) into *items (a new JSON array). More than max_items items, or more than
 * CF_API_PAGES_MAX pages, is -AEGIS_E_LIMIT. Same failure classes as cf_api_call.
 */
int cf_api_list(const struct cf_api *api, const char *path, const char *label, size_t max_items,
                int64_t now, json_t **items, struct aegis_err *err);

struct aegis_secret_key_selector;

/*
 * Reads the credential ref names (in namespace ns, directory mode: secret.h) into *out, a new
 * string without surrounding blanks and newlines (a secret written with `echo` works), freed
 * with pki_secret_free_str. field names the reference in messages ("spec.cloudflareOriginCA.
 * apiTokenSecretRef"). A credential with control characters inside, or longer than
 * CF_API_SECRET_MAX, is -AEGIS_E_INVALID (it could not be sent as a header); a missing one is
 * -AEGIS_E_NOTFOUND. The messages never hold the credential.
 */
int cf_api_read_secret(const char *secrets_dir, const char *ns,
                       const struct aegis_secret_key_selector *ref, const char *field, char **out,
                       struct aegis_err *err);

/* Escapes s for a query value or a path segment into a new string (free with free()). */
char *cf_api_escape(const char *s);

/* ---- pure parts, exposed for the unit tests and the fuzz target ---- */

/*
 * Parses a response body (at most CF_API_BODY_MAX bytes, need not be NUL-terminated) into resp:
 * body, result, result_info, success and errors. Returns 0 for an envelope, -AEGIS_E_SYNTAX for
 * anything else (resp->envelope false, body kept when it is JSON).
 */
int cf_envelope_parse(const char *text, size_t len, struct cf_response *resp);

/* The failure class of an answer (0 when it is a success), from the status and error codes. */
int cf_api_classify(const struct cf_response *resp);

/*
 * The plain-words description of a failed answer into out: what Cloudflare said (each error
 * with its code) and the likely fix for the first error or status it knows.
 */
void cf_api_describe(const struct cf_api *api, const struct cf_response *resp, char *out,
                     size_t size);

/*
 * Parses a Retry-After value (delta seconds or an HTTP date) against now into Unix seconds, at
 * most now + CF_API_RETRY_AFTER_MAX_S; 0 when it cannot be parsed.
 */
int64_t cf_retry_after_parse(const char *value, int64_t now);

/*
 * The zones a DNS name may belong to, most specific first: the name without a trailing dot and
 * without leading labels that start with '_' (such as "_acme-challenge"), then each parent with
 * at least two labels ("a.b.example.com", "b.example.com", "example.com"). Fills out[0..*n) with
 * pointers into buf (size bytes, where the name is copied). -AEGIS_E_INVALID for a name that is
 * empty, too long (CF_API_NAME_MAX), has an empty label or fewer than two labels.
 */
int cf_zone_candidates(const char *name, char *buf, size_t size,
                       const char *out[CF_API_ZONE_LABELS_MAX], size_t *n);

/* ---- metrics ---- */

void cf_api_metrics_render(struct aegis_textbuf *b);
void cf_api_metrics_reset(void);

#endif
