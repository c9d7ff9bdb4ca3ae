/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics listener (metrics_server.h): the shared small HTTP server (aegis/httpd.h) with one
 * handler, GET /metrics.
 */
#include "metrics_server.h"

#include <stdlib.h>

#include <h2o.h>

#include "aegis/alloc.h"
#include "aegis/httpd.h"
#include "log.h"
#include "metrics.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct dp_metrics_server {
    struct aegis_httpd *httpd;
};

static int on_req(void *data, h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized, method = req->method;
    char *text;
    size_t len = 0;

    (void)data;
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/metrics"))) {
        h2o_send_error_404(req, "Not Found", "not found; metrics are at /metrics\n", 0);
        return 0;
    }
    if (!h2o_memis(method.base, method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(method.base, method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        h2o_send_error_generic(req, 405, "Method Not Allowed", "use GET\n",
                               H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    text = dp_metrics_render(&len);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT(CONTENT_TYPE));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, text, len); /* copies the body into the request's pool */
    free(text);
    return 0;
}

static void name_thread(void)
{
    dp_log_set_thread("metrics");
}

int dp_metrics_server_start(const char *addr, struct dp_metrics_server **out, struct aegis_err *err)
{
    struct aegis_httpd_opts o = {
        .addr = addr,
        .flag = "--metrics-listen",
        .holder = "is another dataplane running?",
        .on_req = on_req,
        .thread_init = name_thread,
    };
    struct aegis_httpd *httpd = NULL;
    int r = aegis_httpd_start(&o, &httpd, err);

    *out = NULL;
    if (r < 0)
        return r;
    *out = aegis_calloc(1, sizeof(**out));
    (*out)->httpd = httpd;
    dp_log(DP_LOG_INFO, "metrics on http://%s/metrics", addr);
    return 0;
}

void dp_metrics_server_stop(struct dp_metrics_server *s)
{
    size_t left;

    if (s == NULL)
        return;
    left = aegis_httpd_stop(s->httpd);
    if (left > 0)
        dp_log(DP_LOG_WARNING, "metrics listener: %zu scrape(s) still open at stop: abandoned",
               left);
    free(s);
}
