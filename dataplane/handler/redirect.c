/* SPDX-License-Identifier: Apache-2.0 */
/*
 * forceHTTPS: a plain HTTP request for a host that forces HTTPS gets 301 Moved Permanently to the
 * same name, path and query over https://. The name comes from the request's Host only after it
 * matched a configured hostname, so the redirect cannot be steered to another site.
 */
#include <stdio.h>
#include <string.h>

#include "handler.h"

int dp_redirect_handle(h2o_req_t *req, const char *host, size_t host_len, uint16_t port)
{
    char port_text[8] = "";
    h2o_iovec_t url;

    if (port != 443)
        snprintf(port_text, sizeof(port_text), ":%u", (unsigned)port);
    /* input.path is the request target as received: the path and its query. */
    url = h2o_concat(&req->pool, h2o_iovec_init(H2O_STRLIT("https://")),
                     h2o_iovec_init(host, host_len), h2o_iovec_init(port_text, strlen(port_text)),
                     req->input.path);
    h2o_send_redirect(req, 301, "Moved Permanently", url.base, url.len);
    return 0;
}
