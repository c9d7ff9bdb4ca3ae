/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin API's request dispatch (docs/dataplane.md, "Admin API"), as a pure function over
 * (method, path, body): no socket, no h2o, no thread, so it can be unit-tested and fuzzed. What it
 * needs from the running dataplane comes through struct dp_admin_backend (admin_backend.c is the
 * real one; tests/fuzz/fuzz_admin.c has a fake).
 *
 *   PUT  /config                            a whole rendered configuration; swapped in when valid
 *   GET  /status                            generation, hosts, certificates, upstream health
 *   POST /hosts/{namespace/name}/test-upstream-tls
 *                                           a TLS handshake with the host's first upstream
 *
 * Every answer is JSON. Unknown path: 404; known path, wrong method: 405 with Allow.
 */
#ifndef DP_ADMIN_API_H
#define DP_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"
#include "aegis/rconf.h"

/* What the dispatch needs from the dataplane. Every function is called on the caller's thread. */
struct dp_admin_backend {
    void *self;
    /* The current configuration (a new reference), or NULL while there is none. */
    struct rconf *(*current)(void *self);
    /*
     * Makes rc (validated, parsed from doc/len) the served configuration if prev (the result of
     * current(), may be NULL) is still the current one: -AEGIS_E_STATE when another change came
     * first. warnings is the JSON array of rc's validation warnings. Other errors (with err)
     * leave the old configuration serving.
     */
    int (*apply)(void *self, struct rconf *prev, struct rconf *rc, const char *doc, size_t len,
                 const char *warnings, struct aegis_err *err);
    /* The GET /status document (a new string, free()). */
    char *(*status)(void *self);
    /* POST /hosts/{name}/test-upstream-tls: *body gets the JSON answer (a new string); returns
     * the HTTP status (200, or 404 for an unknown host). */
    int (*test_upstream_tls)(void *self, const char *host, char **body);
};

struct dp_admin_response {
    int status;         /* HTTP status code */
    const char *reason; /* its reason phrase (static) */
    const char *allow;  /* the Allow header of a 405 (static), else NULL */
    char *body;         /* JSON, a new string (free()) */
};

/*
 * Answers one request. path is the request target as received (percent-encoded; a query string
 * is ignored); body is the request body (len bytes, need not be NUL-terminated). resp->body must
 * be freed by the caller.
 */
void dp_admin_dispatch(const struct dp_admin_backend *b, const char *method, size_t method_len,
                       const char *path, size_t path_len, const char *body, size_t body_len,
                       struct dp_admin_response *resp);

/* What PUT /config does with a valid document, given the current one (pure: the rule alone). */
enum dp_admin_verdict {
    DP_ADMIN_APPLY,    /* newer generation, or no configuration yet: swap */
    DP_ADMIN_SAME,     /* same generation and SHA-256: nothing to do (200) */
    DP_ADMIN_OLDER,    /* lower generation: 409 */
    DP_ADMIN_CONFLICT, /* same generation, other content: 409 */
};
enum dp_admin_verdict dp_admin_verdict(const struct rconf *cur, const struct rconf *next);

/*
 * Percent-decodes one path segment (len bytes) into out (size bytes, NUL-terminated). Returns the
 * decoded length, or -1 for a malformed escape, a decoded NUL or an output that does not fit.
 */
int dp_admin_unescape(const char *in, size_t len, char *out, size_t size);

/* Lowercase hex of a SHA-256 (65 bytes with the NUL). */
void dp_admin_hex(const unsigned char *bin, size_t n, char *out);

#endif
