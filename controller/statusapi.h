/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the controller's HTTP port answers, kept free of h2o so that it can be tested and fuzzed
 * alone (httpapi.h serves it). Read-only, nothing secret:
 *
 *   GET /apis/aegis.dev/v1alpha1/namespaces/{ns}/{issuers|certificates|hosts}/{name}
 *       one object, {"kind","namespace","name","status"}, read from the status file the reconcile
 *       loop writes (<status_dir>/<Kind>/<ns>/<name>.json) - reading files keeps this thread out
 *       of the loop's memory, and the files are replaced atomically, so a read never sees half
 *   GET /apis/aegis.dev/v1alpha1/namespaces/{ns}/{kind}   {"kind":"<Kind>List","items":[...]}
 *   GET /apis/aegis.dev/v1alpha1/{kind}                   the same over every namespace
 *   GET /healthz   200 "ok" while the loop beats (cmetrics.h), else 503 with why
 *   GET /readyz    200 "ok" once reconciled and pushed, else 503 with why
 *   GET /metrics   the Prometheus exposition (cmetrics.h)
 *
 * HEAD is answered like GET; other methods get 405 with an Allow header. Unknown paths and objects
 * get 404 with a Kubernetes-style Status object ({"kind":"Status","status":"Failure","reason":
 * "NotFound","code":404,"message":...}).
 */
#ifndef AEGIS_STATUSAPI_H
#define AEGIS_STATUSAPI_H

#include <stddef.h>
#include <stdint.h>

/* The API's path prefix (group aegis.dev, version v1alpha1, as the CRDs). */
#define STATUSAPI_PREFIX "/apis/aegis.dev/v1alpha1"
/* Largest status file served; one is a few KiB. */
#define STATUSAPI_FILE_MAX (1024 * 1024)
/* Longest namespace or name accepted in a path (a DNS subdomain, as Kubernetes names). */
#define STATUSAPI_NAME_MAX 253

struct statusapi_response {
    int status;               /* 200, 404, 405, 503 */
    const char *reason;       /* "OK", ... */
    const char *content_type; /* static */
    char *body;               /* owned; NUL-terminated, len bytes */
    size_t len;
};

/*
 * Answers one request (method and path: not NUL-terminated; path without the query string) at
 * now (Unix seconds), reading status files below status_dir. Fills out; release it with
 * statusapi_response_dispose.
 */
void statusapi_handle(const char *status_dir, const char *method, size_t method_len,
                      const char *path, size_t path_len, int64_t now,
                      struct statusapi_response *out);

void statusapi_response_dispose(struct statusapi_response *r);

#endif
