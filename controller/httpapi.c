/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's HTTP port (httpapi.h): the shared small HTTP server (aegis/httpd.h) with one
 * handler that hands every request to statusapi.h.
 */
#include "httpapi.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o.h>

#include "aegis/alloc.h"
#include "aegis/httpd.h"
#include "aegis/log.h"
#include "statusapi.h"

struct httpapi {
    struct aegis_httpd *httpd;
    char *status_dir;
};

/* A server whose connections outlived the stop: kept reachable until exit, as aegis_httpd does. */
static struct httpapi *abandoned;

static int on_req(void *data, h2o_req_t *req)
{
    struct httpapi *s = data;
    struct statusapi_response res;

    statusapi_handle(s->status_dir, req->method.base, req->method.len, req->path_normalized.base,
                     req->path_normalized.len, (int64_t)time(NULL), &res);
    req->res.status = res.status;
    req->res.reason = res.reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, res.content_type,
                   strlen(res.content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    if (res.status == 405)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
    h2o_send_inline(req, res.body, res.len); /* copies the body into the request's pool */
    statusapi_response_dispose(&res);
    return 0;
}

int httpapi_start(const char *addr, const char *status_dir, struct httpapi **out,
                  struct aegis_err *err)
{
    struct httpapi *s = aegis_calloc(1, sizeof(*s));
    struct aegis_httpd_opts o = {
        .addr = addr,
        .flag = "--http-listen",
        .holder = "is another controller running?",
        .on_req = on_req,
        .data = s,
    };
    int r;

    *out = NULL;
    s->status_dir = aegis_strdup(status_dir);
    r = aegis_httpd_start(&o, &s->httpd, err);
    if (r < 0) {
        free(s->status_dir);
        free(s);
        return r;
    }
    aegis_log(AEGIS_LOG_INFO, "http", "status API, /healthz, /readyz and /metrics on http://%s",
              addr);
    *out = s;
    return 0;
}

void httpapi_stop(struct httpapi *s)
{
    size_t left;

    if (s == NULL)
        return;
    left = aegis_httpd_stop(s->httpd);
    if (left > 0) {
        /* The abandoned connections may still read status_dir: it stays too. */
        aegis_log(AEGIS_LOG_WARN, "http", "%zu request(s) still open at stop: abandoned", left);
        abandoned = s;
        return;
    }
    free(s->status_dir);
    free(s);
}
