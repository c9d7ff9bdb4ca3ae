/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACME HTTP-01 responder (RFC 8555 8.3): on the plain HTTP listeners,
 * GET /.well-known/acme-challenge/<token> answers the key authorization the controller put in the
 * configuration for that token, as text/plain. It runs before any host lookup or redirect - a CA
 * validating a name must reach the token over plain HTTP even when the host forces HTTPS, and may
 * validate a name before its host exists. Tokens are exact, case-sensitive lookups.
 */
#include <string.h>

#include "handler.h"

#define CHALLENGE_PREFIX "/.well-known/acme-challenge/"

int dp_acme_http01_handle(const struct rconf *rc, h2o_req_t *req)
{
    static const size_t prefix_len = sizeof(CHALLENGE_PREFIX) - 1;
    const char *path = req->input.path.base;
    size_t len = req->input.path.len;
    const struct rconf_challenge *c;
    const char *query;
    size_t body_len;

    if (len < prefix_len || memcmp(path, CHALLENGE_PREFIX, prefix_len) != 0)
        return -1;
    if (!h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"))) {
        h2o_send_error_generic(req, 405, "Method Not Allowed", "method not allowed\n", 0);
        return 0;
    }
    /* The token ends at the query, if any; a CA sends none, but one must not hide the token. */
    query = memchr(path, '?', len);
    if (query != NULL)
        len = (size_t)(query - path);
    c = rconf_find_challenge(rc, path + prefix_len, len - prefix_len);
    if (c == NULL) {
        h2o_send_error_generic(req, 404, "Not Found", "unknown ACME challenge token\n", 0);
        return 0;
    }
    body_len = strlen(c->key_authorization);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body_len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, c->key_authorization, body_len);
    return 0;
}
