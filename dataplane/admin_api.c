/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API's dispatch (admin_api.h): routing, percent-decoding, the configuration generation
 * rule and the JSON answers. The request bytes come from an authenticated peer (unix socket 0600
 * or mutual TLS), but they are still outside input: every length is bounded and every body is
 * parsed by jansson or rconf_parse.
 */
#include "admin_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aegis/alloc.h"
#include "aegis/diag.h"
#include "aegis/limits.h"

#define TEST_TLS_SUFFIX "/test-upstream-tls"
#define HOSTS_PREFIX "/hosts/"

void dp_admin_hex(const unsigned char *bin, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dp_admin_unescape(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];

        if (c == '%') {
            if (len - i < 3 || hexval(in[i + 1]) < 0 || hexval(in[i + 2]) < 0)
                return -1;
            c = hexval(in[i + 1]) * 16 + hexval(in[i + 2]);
            i += 2;
        }
        if (c == 0 || o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    if (size == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}

enum dp_admin_verdict dp_admin_verdict(const struct rconf *cur, const struct rconf *next)
{
    if (cur == NULL || next->generation > cur->generation)
        return DP_ADMIN_APPLY;
    if (next->generation < cur->generation)
        return DP_ADMIN_OLDER;
    return memcmp(cur->sha256, next->sha256, sizeof(cur->sha256)) == 0 ? DP_ADMIN_SAME
                                                                       : DP_ADMIN_CONFLICT;
}

/* ---- answers ----------------------------------------------------------------------------------- */

static void answer(struct dp_admin_response *resp, int status, const char *reason, json_t *doc)
{
    resp->status = status;
    resp->reason = reason;
    resp->body = json_dumps(doc, JSON_COMPACT);
    if (resp->body == NULL) /* only when out of memory */
        abort();
    json_decref(doc);
}

static void answer_error(struct dp_admin_response *resp, int status, const char *reason,
                         const char *msg)
{
    answer(resp, status, reason, json_pack("{s:s}", "error", msg));
}

static void answer_text(struct dp_admin_response *resp, int status, const char *reason, char *text)
{
    resp->status = status;
    resp->reason = reason;
    resp->body = text;
}

static void not_allowed(struct dp_admin_response *resp, const char *allow)
{
    char msg[64];

    snprintf(msg, sizeof(msg), "method not allowed; use %s", allow);
    answer_error(resp, 405, "Method Not Allowed", msg);
    resp->allow = allow;
}

/* ---- PUT /config ------------------------------------------------------------------------------- */

/* The "warnings" array of the diagnostics, as JSON text (a new string). */
static char *warnings_of(const struct aegis_diags *diags)
{
    char *all = rconf_diags_to_json(diags), *out = NULL;
    json_t *doc = json_loads(all, 0, NULL);
    json_t *w = doc != NULL ? json_object_get(doc, "warnings") : NULL;

    if (w != NULL)
        out = json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    free(all);
    return out != NULL ? out : aegis_strdup("[]");
}

static json_t *applied(const struct rconf *rc, bool changed, const char *warnings)
{
    char sha[65];
    json_t *w = warnings != NULL ? json_loads(warnings, JSON_DECODE_ANY, NULL) : NULL;

    dp_admin_hex(rc->sha256, sizeof(rc->sha256), sha);
    return json_pack("{s:I,s:s,s:b,s:o}", "generation", (json_int_t)rc->generation, "sha256", sha,
                     "changed", changed, "warnings", w != NULL ? w : json_array());
}

static void put_config(const struct dp_admin_backend *b, const char *body, size_t len,
                       struct dp_admin_response *resp)
{
    struct rconf *cur = NULL, *rc = NULL;
    struct aegis_diags diags;
    struct aegis_err err;
    char msg[256], *warnings = NULL;
    int r;

    aegis_diags_init(&diags);
    memset(&err, 0, sizeof(err));
    if (len > AEGIS_LIMIT_RCONF_BYTES) {
        answer_error(resp, 413, "Payload Too Large", "the configuration exceeds the size limit");
        goto out;
    }
    cur = b->current(b->self);
    r = rconf_parse(body, len, cur, &rc, &diags);
    if (r < 0) {
        answer_text(resp, 422, "Unprocessable Entity", rconf_diags_to_json(&diags));
        goto out;
    }
    switch (dp_admin_verdict(cur, rc)) {
    case DP_ADMIN_SAME:
        answer(resp, 200, "OK", applied(rc, false, NULL));
        goto out;
    case DP_ADMIN_OLDER:
        snprintf(msg, sizeof(msg), "generation %lld is lower than the current %lld",
                 (long long)rc->generation, (long long)cur->generation);
        answer_error(resp, 409, "Conflict", msg);
        goto out;
    case DP_ADMIN_CONFLICT:
        snprintf(msg, sizeof(msg),
                 "generation %lld is already served with other content; render a new generation",
                 (long long)rc->generation);
        answer_error(resp, 409, "Conflict", msg);
        goto out;
    case DP_ADMIN_APPLY:
        break;
    }
    warnings = warnings_of(&diags);
    r = b->apply(b->self, cur, rc, body, len, warnings, &err);
    if (r == -AEGIS_E_STATE) {
        answer_error(resp, 409, "Conflict",
                     "the configuration changed while this one was checked; send it again");
    } else if (r < 0) {
        answer(resp, r == -AEGIS_E_UNSUPPORTED || r == -AEGIS_E_INVALID ? 422 : 500,
               r == -AEGIS_E_UNSUPPORTED || r == -AEGIS_E_INVALID ? "Unprocessable Entity"
                                                                  : "Internal Server Error",
               json_pack("{s:[{s:s,s:s}],s:[],s:i}", "errors", "path", err.where, "message",
                         err.msg[0] ? err.msg : "the configuration could not be applied",
                         "warnings", "dropped", 0));
    } else {
        answer(resp, 200, "OK", applied(rc, true, warnings));
    }
out:
    free(warnings);
    rconf_unref(rc);
    rconf_unref(cur);
    aegis_diags_dispose(&diags);
}

/* ---- routing ----------------------------------------------------------------------------------- */

static bool is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

void dp_admin_dispatch(const struct dp_admin_backend *b, const char *method, size_t method_len,
                       const char *path, size_t path_len, const char *body, size_t body_len,
                       struct dp_admin_response *resp)
{
    const char *q = memchr(path, '?', path_len);
    size_t plen = q != NULL ? (size_t)(q - path) : path_len;
    size_t pre = strlen(HOSTS_PREFIX), suf = strlen(TEST_TLS_SUFFIX);

    memset(resp, 0, sizeof(*resp));
    if (is(path, plen, "/config")) {
        if (!is(method, method_len, "PUT"))
            not_allowed(resp, "PUT");
        else
            put_config(b, body, body_len, resp);
        return;
    }
    if (is(path, plen, "/status")) {
        if (!is(method, method_len, "GET"))
            not_allowed(resp, "GET");
        else
            answer_text(resp, 200, "OK", b->status(b->self));
        return;
    }
    if (plen > pre + suf && memcmp(path, HOSTS_PREFIX, pre) == 0 &&
        memcmp(path + plen - suf, TEST_TLS_SUFFIX, suf) == 0) {
        char name[AEGIS_LIMIT_RCONF_NAME_BYTES + 1];
        char *out = NULL;
        int status;

        /* The name is "namespace/name": its "/" may come percent-encoded (%2F) or as is. */
        if (dp_admin_unescape(path + pre, plen - pre - suf, name, sizeof(name)) <= 0) {
            answer_error(resp, 400, "Bad Request", "malformed host name in the path");
            return;
        }
        if (!is(method, method_len, "POST")) {
            not_allowed(resp, "POST");
            return;
        }
        status = b->test_upstream_tls(b->self, name, &out);
        answer_text(resp, status,
                    status == 200   ? "OK"
                    : status == 404 ? "Not Found"
                                    : "Error",
                    out);
        return;
    }
    answer_error(resp, 404, "Not Found", "no such endpoint; see docs/dataplane.md (Admin API)");
}
