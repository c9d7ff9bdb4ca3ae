/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the admin API's request path (dataplane/admin_api.c): any method, request
 * target and body must give a JSON answer with a valid status, without a crash, a leak, undefined
 * behaviour or a hang. A fake backend stands in for the server: it serves a configuration the
 * inputs can replace through PUT /config, so the generation rule runs on accepted documents too.
 *
 * Input: "<METHOD> <target>\n<body>" (no space or newline: the whole input is the target).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin_api.h"
#include "aegis/rconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rconf *current;

static struct rconf *fake_current(void *self)
{
    (void)self;
    return current != NULL ? rconf_ref(current) : NULL;
}

static int fake_apply(void *self, struct rconf *prev, struct rconf *rc, const char *doc, size_t len,
                      const char *warnings, struct aegis_err *err)
{
    json_t *w = json_loads(warnings, JSON_DECODE_ANY, NULL);

    (void)self;
    (void)doc;
    (void)len;
    if (!json_is_array(w))
        abort(); /* the dispatch hands over the warnings as a JSON array */
    json_decref(w);
    if (prev != current)
        return -AEGIS_E_STATE;
    if (rc->generation % 7 == 3) /* stands in for a refused swap (changed listeners) */
        return aegis_err_set(err, -AEGIS_E_UNSUPPORTED, "listeners", "restart needed");
    rconf_unref(current);
    current = rconf_ref(rc);
    return 0;
}

static char *fake_status(void *self)
{
    (void)self;
    return strdup("{\"serving\":false}");
}

static int fake_test_upstream_tls(void *self, const char *host, char **body)
{
    (void)self;
    if (host[0] == '\0' || strlen(host) > 512)
        abort(); /* the dispatch refuses empty and oversized names */
    *body = strdup("{\"ok\":false}");
    return strchr(host, '/') != NULL ? 200 : 404;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dp_admin_backend backend = {NULL, fake_current, fake_apply, fake_status,
                                                    fake_test_upstream_tls};
    const char *in = (const char *)data;
    const char *sp = memchr(in, ' ', size);
    const char *nl = memchr(in, '\n', size);
    struct dp_admin_response resp;
    const char *method = "GET", *target = in, *body = "";
    size_t mlen = 3, tlen = size, blen = 0;
    json_t *doc;

    if (sp != NULL && (nl == NULL || sp < nl)) {
        method = in;
        mlen = (size_t)(sp - in);
        target = sp + 1;
        tlen = size - mlen - 1;
    }
    if (nl != NULL) {
        tlen = (size_t)(nl - target);
        body = nl + 1;
        blen = size - (size_t)(body - in);
    }
    dp_admin_dispatch(&backend, method, mlen, target, tlen, body, blen, &resp);
    if (resp.status < 200 || resp.status > 599 || resp.reason == NULL || resp.body == NULL)
        abort();
    if ((resp.status == 405) != (resp.allow != NULL))
        abort();
    doc = json_loads(resp.body, 0, NULL);
    if (doc == NULL)
        abort(); /* every answer is a JSON document */
    json_decref(doc);
    free(resp.body);
    /* Keep the served configuration small between inputs but exercise the generation rule. */
    if (current != NULL && current->generation > 1000) {
        rconf_unref(current);
        current = NULL;
    }
    return 0;
}
