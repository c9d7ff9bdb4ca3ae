/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Cloudflare v4 API client (cloudflare_api.h): one libcurl easy handle per request, the
 * response envelope, the error-code table that turns Cloudflare's codes into a failure class and
 * a fix, paginated lists (page/per_page against result_info.total_pages), the zone walk, and the
 * request counter.
 */
#include "issuer/cloudflare_api.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/api_types.gen.h"
#include "aegis/pki.h"
#include "aegis/promtext.h"
#include "httpc.h"
#include "secret.h"

#define WHERE "cloudflare"
#define CF_METRICS_SERIES_MAX 128

/* ---- metrics -------------------------------------------------------------------------------- */

static struct httpc_series series[CF_METRICS_SERIES_MAX];
static struct httpc_metrics metrics = HTTPC_METRICS_INIT(series);

void cf_api_metrics_render(struct aegis_textbuf *b)
{
    httpc_metrics_render(&metrics, b, "aegis_cloudflare_api_request_count",
                         "Requests to the Cloudflare API, by host, resource, method and HTTP "
                         "status (0: no answer).",
                         NULL, NULL);
}

void cf_api_metrics_reset(void)
{
    httpc_metrics_reset(&metrics);
}

/* ---- the envelope --------------------------------------------------------------------------- */

void cf_response_init(struct cf_response *r)
{
    memset(r, 0, sizeof(*r));
}

void cf_response_dispose(struct cf_response *r)
{
    json_decref(r->body);
    memset(r, 0, sizeof(*r));
}

int cf_envelope_parse(const char *text, size_t len, struct cf_response *resp)
{
    const json_t *errors, *e, *success;
    size_t i;

    json_decref(resp->body);
    resp->body = NULL;
    resp->result = resp->result_info = NULL;
    resp->envelope = resp->success = false;
    resp->n_errors = resp->n_errors_total = 0;
    if (text == NULL || len == 0 || len > CF_API_BODY_MAX)
        return -AEGIS_E_SYNTAX;
    /* Depth is bounded by jansson itself (JSON_PARSER_MAX_DEPTH); the size by the check above. */
    resp->body = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    success = json_object_get(resp->body, "success");
    if (!json_is_object(resp->body) || !json_is_boolean(success))
        return -AEGIS_E_SYNTAX;
    resp->envelope = true;
    resp->success = json_is_true(success);
    resp->result = json_object_get(resp->body, "result");
    if (json_is_null(resp->result))
        resp->result = NULL;
    resp->result_info = json_object_get(resp->body, "result_info");
    if (!json_is_object(resp->result_info))
        resp->result_info = NULL;
    errors = json_object_get(resp->body, "errors");
    if (!json_is_array(errors))
        return 0;
    resp->n_errors_total = json_array_size(errors);
    json_array_foreach(errors, i, e)
    {
        struct cf_api_error *out;
        const char *msg;

        if (resp->n_errors == CF_API_ERRORS_MAX)
            break;
        out = &resp->errors[resp->n_errors++];
        out->code = json_is_integer(json_object_get(e, "code"))
                        ? (long)json_integer_value(json_object_get(e, "code"))
                        : 0;
        msg = json_string_value(json_object_get(e, "message"));
        snprintf(out->message, sizeof(out->message), "%s", msg != NULL ? msg : "no message");
    }
    return 0;
}

/*
 * What Cloudflare's error codes mean for us: their class and the likely fix. The codes are the
 * ones the public API returns for these endpoints (v4 API reference, Origin CA and DNS pages, and
 * the answers users report); a code not listed falls back to the HTTP status.
 * %P in a hint is replaced by the permission a token needs, %W by the spec field.
 */
#define CF_CODES(X)                                                                                \
    X(10000, -EACCES,                                                                              \
      "the credentials were refused: check that the secret holds a valid API token (or key) and "  \
      "that a token has the %P permission on the zone")                                            \
    X(9109, -EACCES,                                                                               \
      "the API token is not valid: check the secret (no stray characters, not expired or "         \
      "rolled)")                                                                                   \
    X(1000, -EACCES, "the API token is not valid: check the secret")                               \
    X(9103, -EACCES, "the global API key or its email is wrong: check the secret and %W.email")    \
    X(9106, -EACCES, "the credentials are missing: check the secret is not empty")                 \
    X(1016, -EACCES,                                                                               \
      "these credentials may not act on these names: give the token %P on the names' zone, or "    \
      "use an Origin CA key of the zone's account")                                                \
    X(6003, -EACCES,                                                                               \
      "the authentication headers are malformed: check the secret holds only the token or key "    \
      "(a token goes in apiTokenSecretRef, an Origin CA key in originCAKeySecretRef)")             \
    X(6111, -EACCES, "the API token is malformed: check the secret holds only the token")          \
    X(6102, -EACCES, "the account email is malformed: check %W.email")                             \
    X(6103, -EACCES, "the API key is malformed: check the secret holds only the key")              \
    X(1001, -AEGIS_E_NOTFOUND,                                                                     \
      "the zone was not found: check the zone is on this Cloudflare account and the token may "    \
      "read it")                                                                                   \
    X(1003, -AEGIS_E_NOTFOUND, "the zone id is not valid: check %W.zoneID (or leave it out)")      \
    X(7003, -AEGIS_E_NOTFOUND,                                                                     \
      "the object was not found (a wrong zone or record id): check %W.zoneID")                     \
    X(81044, -AEGIS_E_NOTFOUND, "the DNS record no longer exists")                                 \
    X(1010, -AEGIS_E_STATE,                                                                        \
      "a hostname is not valid for the Origin CA: each dnsName must be in a zone of this "         \
      "account, and a wildcard only as one leading \"*.\" label")                                  \
    X(1004, -AEGIS_E_STATE,                                                                        \
      "the request was refused: check the dnsNames (names of the account's zones) and "            \
      "%W.requestedValidity")                                                                      \
    X(81057, -AEGIS_E_EXISTS, "the DNS record already exists")                                     \
    X(81058, -AEGIS_E_EXISTS, "an identical DNS record already exists")                            \
    X(971, -EAGAIN, "Cloudflare throttles these requests: they are retried later")                 \
    X(1100, -EIO, "a temporary Cloudflare failure: retried later")                                 \
    X(1201, -EIO, "a temporary Cloudflare signing failure: retried later")

static const struct {
    long code;
    int class_;
    const char *hint;
} cf_codes[] = {
#define CF_CODE_ROW(code, cls, hint) {code, cls, hint},
    CF_CODES(CF_CODE_ROW)
#undef CF_CODE_ROW
};

static int code_class(long code, const char **hint)
{
    for (size_t i = 0; i < sizeof(cf_codes) / sizeof(cf_codes[0]); i++)
        if (cf_codes[i].code == code) {
            if (hint != NULL)
                *hint = cf_codes[i].hint;
            return cf_codes[i].class_;
        }
    return 0;
}

static int status_class(long status)
{
    if (status == 0 || status >= 500)
        return -EIO;
    if (status == 429)
        return -EAGAIN;
    if (status == 401 || status == 403)
        return -EACCES;
    if (status == 404)
        return -AEGIS_E_NOTFOUND;
    return -AEGIS_E_STATE;
}

int cf_api_classify(const struct cf_response *resp)
{
    int c;

    if (resp->status >= 200 && resp->status < 300 && resp->envelope && resp->success)
        return 0;
    /* Transport and server failures first: whatever a 5xx body says, it is worth a retry. */
    if (resp->status == 0 || resp->status >= 500)
        return -EIO;
    if (resp->status == 429)
        return -EAGAIN;
    for (size_t i = 0; i < resp->n_errors; i++) {
        c = code_class(resp->errors[i].code, NULL);
        if (c != 0)
            return c;
    }
    c = status_class(resp->status);
    /* A 2xx that is not a successful envelope is a broken answer, not a refusal. */
    return resp->status >= 200 && resp->status < 300 ? -EIO : c;
}

/* Appends hint with %P and %W replaced. */
static void cat_hint(const struct cf_api *api, const char *hint, char *buf, size_t size,
                     size_t *len)
{
    for (const char *p = hint; *p != '\0'; p++) {
        char one[2] = {*p, '\0'};

        if (p[0] == '%' && p[1] == 'P') {
            httpc_cat(buf, size, len,
                      api != NULL && api->permission != NULL ? api->permission : "the needed");
            p++;
        } else if (p[0] == '%' && p[1] == 'W') {
            httpc_cat(buf, size, len, api != NULL && api->where != NULL ? api->where : "the spec");
            p++;
        } else {
            httpc_cat(buf, size, len, one);
        }
    }
}

static const char *status_hint(long status)
{
    if (status == 0)
        return "the API could not be reached: check apiURL and the network; retried later";
    if (status >= 500)
        return "Cloudflare's API failed: retried later";
    if (status == 429)
        return "Cloudflare throttles these requests: retried after Retry-After";
    if (status == 401 || status == 403)
        return "the credentials were refused: check the secret and that a token has the %P "
               "permission";
    if (status == 404)
        return "not found: check apiURL and the zone";
    return NULL;
}

void cf_api_describe(const struct cf_api *api, const struct cf_response *resp, char *out,
                     size_t size)
{
    const char *hint = NULL;
    size_t len = 0;
    char num[64];

    if (size == 0)
        return;
    out[0] = '\0';
    if (resp->n_errors > 0) {
        httpc_cat(out, size, &len, "Cloudflare said: ");
        for (size_t i = 0; i < resp->n_errors; i++) {
            if (i > 0)
                httpc_cat(out, size, &len, "; ");
            httpc_cat(out, size, &len, resp->errors[i].message);
            snprintf(num, sizeof(num), " (code %ld)", resp->errors[i].code);
            httpc_cat(out, size, &len, num);
            if (hint == NULL)
                code_class(resp->errors[i].code, &hint);
        }
        if (resp->n_errors_total > resp->n_errors)
            httpc_cat(out, size, &len, "; ...");
    } else {
        snprintf(num, sizeof(num), "Cloudflare answered HTTP %ld", resp->status);
        httpc_cat(out, size, &len,
                  resp->status == 0 ? "no answer from Cloudflare"
                                    : (resp->envelope ? num
                                                      : "Cloudflare's answer is not an API "
                                                        "envelope"));
        if (resp->status != 0 && !resp->envelope) {
            snprintf(num, sizeof(num), " (HTTP %ld)", resp->status);
            httpc_cat(out, size, &len, num);
        }
    }
    if (hint == NULL)
        hint = status_hint(resp->status);
    if (hint != NULL) {
        httpc_cat(out, size, &len, ": ");
        cat_hint(api, hint, out, size, &len);
    }
}

int64_t cf_retry_after_parse(const char *value, int64_t now)
{
    return httpc_retry_after_parse(value, now, CF_API_RETRY_AFTER_MAX_S);
}

int cf_zone_candidates(const char *name, char *buf, size_t size,
                       const char *out[CF_API_ZONE_LABELS_MAX], size_t *n)
{
    size_t len, labels = 1;
    char *p;

    *n = 0;
    if (name == NULL || size == 0)
        return -AEGIS_E_INVALID;
    len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len >= size || len > CF_API_NAME_MAX)
        return -AEGIS_E_INVALID;
    memcpy(buf, name, len);
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '.' && (i == 0 || buf[i - 1] == '.' || i + 1 == len))
            return -AEGIS_E_INVALID; /* an empty label */
        if (buf[i] == '.')
            labels++;
    }
    p = buf;
    /* Labels such as _acme-challenge name records, never zones. */
    while (*p == '_' && strchr(p, '.') != NULL) {
        p = strchr(p, '.') + 1;
        labels--;
    }
    for (; labels >= 2 && *n < CF_API_ZONE_LABELS_MAX; labels--) {
        out[(*n)++] = p;
        p = strchr(p, '.') + 1;
    }
    return *n > 0 ? 0 : -AEGIS_E_INVALID;
}

/* ---- requests ------------------------------------------------------------------------------- */

struct hdr_ctx {
    struct cf_response *resp;
    int64_t now; /* the caller's clock, for Retry-After dates */
};

/* Reads Retry-After, the one header of the API's answers we use. */
static void on_header(void *ctx, char *line)
{
    struct hdr_ctx *c = ctx;
    const char *v = httpc_header_match(line, "Retry-After");

    if (v != NULL)
        c->resp->retry_after = cf_retry_after_parse(v, c->now);
}

int cf_api_read_secret(const char *secrets_dir, const char *ns,
                       const struct aegis_secret_key_selector *ref, const char *field, char **out,
                       struct aegis_err *err)
{
    char *buf = NULL, *start;
    size_t len = 0, n;
    int rc;

    *out = NULL;
    if (ref->name == NULL || ref->key == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, field, "give both name and key");
    rc = secret_read(secrets_dir, ns, ref->name, ref->key, &buf, &len, err);
    if (rc < 0)
        return rc;
    start = buf;
    while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n')
        start++;
    n = strlen(start);
    while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t' || start[n - 1] == '\r' ||
                     start[n - 1] == '\n'))
        n--;
    rc = 0;
    if (n == 0 || n > CF_API_SECRET_MAX)
        rc = aegis_err_set(err, -AEGIS_E_INVALID, field,
                           "Secret %s key %s is empty or longer than %d bytes: put the "
                           "Cloudflare credential alone in it",
                           ref->name, ref->key, CF_API_SECRET_MAX);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((unsigned char)start[i] < 0x20 || start[i] == 0x7f)
            rc = aegis_err_set(err, -AEGIS_E_INVALID, field,
                               "Secret %s key %s holds control characters or several lines: put "
                               "the Cloudflare credential alone in it",
                               ref->name, ref->key);
    if (rc == 0)
        *out = aegis_strndup(start, n);
    pki_secret_free(buf, len);
    return rc;
}

char *cf_api_escape(const char *s)
{
    char *e, *out;

    httpc_global_init();
    e = curl_easy_escape(NULL, s, 0);
    if (e == NULL)
        abort(); /* curl fails here only when out of memory, as aegis_malloc would abort */
    out = aegis_strdup(e);
    curl_free(e);
    return out;
}

/* Appends a header holding a credential; the buffer is wiped once curl copied it. */
static struct curl_slist *secret_header(struct curl_slist *h, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = aegis_malloc(n);

    snprintf(line, n, "%s: %s", name, value);
    h = curl_slist_append(h, line);
    OPENSSL_cleanse(line, n);
    free(line);
    return h;
}

int cf_api_call(const struct cf_api *api, const char *method, const char *path, const char *body,
                const char *label, int64_t now, struct cf_response *resp, struct aegis_err *err)
{
    struct hdr_ctx hc = {.resp = resp, .now = now};
    struct httpc_request rq = {.method = method,
                               .body = body,
                               .connect_timeout_ms = CF_API_CONNECT_TIMEOUT_MS,
                               .timeout_ms = CF_API_TIMEOUT_MS,
                               .body_max = CF_API_BODY_MAX,
                               .header_max = CF_API_HEADER_MAX,
                               .on_header = on_header,
                               .ctx = &hc};
    struct httpc_response hr;
    struct curl_slist *hdrs = NULL;
    char host[HTTPC_HOST_MAX], what[AEGIS_ERR_MSG_MAX];
    size_t base_len = strlen(api->base_url);
    char *url;
    int rc;

    cf_response_dispose(resp);
    if (base_len > 0 && api->base_url[base_len - 1] == '/')
        base_len--;
    url = aegis_asprintf("%.*s%s", (int)base_len, api->base_url, path);
    httpc_url_host(api->base_url, host, sizeof(host));
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body != NULL)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (api->auth == CF_AUTH_TOKEN) {
        size_t n = strlen(api->secret) + 8;
        char *v = aegis_malloc(n);

        snprintf(v, n, "Bearer %s", api->secret);
        hdrs = secret_header(hdrs, "Authorization", v);
        OPENSSL_cleanse(v, n);
        free(v);
    } else if (api->auth == CF_AUTH_SERVICE_KEY) {
        hdrs = secret_header(hdrs, "X-Auth-User-Service-Key", api->secret);
    } else {
        hdrs = secret_header(hdrs, "X-Auth-Email", api->email != NULL ? api->email : "");
        hdrs = secret_header(hdrs, "X-Auth-Key", api->secret);
    }
    rq.url = url;
    rq.headers = hdrs;
    rc = httpc_perform(&rq, &hr);
    httpc_metrics_observe(&metrics, host, label, method, rc == 0 ? hr.status : 0, hr.seconds);
    curl_slist_free_all(hdrs);
    free(url);
    if (rc < 0) {
        rc = rc == -AEGIS_E_LIMIT
                 ? aegis_err_set(err, rc, api->where,
                                 "Cloudflare's answer to %s %s is larger than %zu bytes", method,
                                 label, CF_API_BODY_MAX)
                 : aegis_err_set(err, rc, api->where,
                                 "Cloudflare's API at %s did not answer %s %s: %s; "
                                 "retried later (check apiURL and the network)",
                                 host, method, label, hr.error);
        return rc;
    }
    resp->status = hr.status;
    cf_envelope_parse(hr.body, hr.len, resp);
    free(hr.body);
    rc = cf_api_classify(resp);
    if (rc == 0)
        return 0;
    if (rc == -EAGAIN && resp->retry_after == 0)
        resp->retry_after = now + CF_API_RATE_LIMIT_RETRY_S;
    cf_api_describe(api, resp, what, sizeof(what));
    return aegis_err_set(err, rc, api->where, "%s %s: %s", method, label, what);
}

int cf_api_list(const struct cf_api *api, const char *path, const char *label, size_t max_items,
                int64_t now, json_t **items, struct aegis_err *err)
{
    json_t *all = json_array();
    int rc = 0;

    *items = NULL;
    for (int page = 1; page <= CF_API_PAGES_MAX; page++) {
        struct cf_response resp;
        char *p = aegis_asprintf("%s%cpage=%d&per_page=%d", path,
                                 strchr(path, '?') != NULL ? '&' : '?', page, CF_API_PER_PAGE);
        json_int_t pages;
        const json_t *v;
        size_t i;

        cf_response_init(&resp);
        rc = cf_api_call(api, "GET", p, NULL, label, now, &resp, err);
        free(p);
        if (rc == 0 && !json_is_array(resp.result))
            rc = aegis_err_set(err, -EIO, api->where,
                               "Cloudflare's answer to the %s list holds no result list", label);
        if (rc == 0 && json_array_size(all) + json_array_size(resp.result) > max_items)
            rc = aegis_err_set(err, -AEGIS_E_LIMIT, api->where,
                               "the %s list holds more than %zu items", label, max_items);
        if (rc < 0) {
            cf_response_dispose(&resp);
            break;
        }
        json_array_foreach(resp.result, i, v)
        {
            json_array_append(all, (json_t *)v);
        }
        pages = json_integer_value(json_object_get(resp.result_info, "total_pages"));
        if (json_array_size(resp.result) == 0 || pages <= page) {
            cf_response_dispose(&resp);
            *items = all;
            return 0;
        }
        cf_response_dispose(&resp);
        if (page == CF_API_PAGES_MAX)
            rc = aegis_err_set(err, -AEGIS_E_LIMIT, api->where,
                               "the %s list has more than %d pages", label, CF_API_PAGES_MAX);
    }
    json_decref(all);
    return rc;
}
