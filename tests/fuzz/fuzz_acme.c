/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what the ACME client parses beyond jansson (controller/issuer/
 * acme_client.c): problem documents (detail, type, subproblems into a bounded message), Link
 * header values (alternate chains, at most ACME_CLIENT_LINKS_MAX kept) and Retry-After values
 * (bounded to ACME_CLIENT_RETRY_AFTER_MAX_S ahead). The input is split at the first two NULs:
 * a JSON problem document, a Link value, a Retry-After value.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "issuer/acme_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1750000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 3), *link, *retry, *end;
    struct acme_response resp;
    struct acme_problem p;
    json_t *doc;
    int64_t at;

    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    end = buf + size;
    link = buf + strlen(buf) + 1;
    retry = link <= end ? link + strlen(link) + 1 : end + 1;
    if (link > end)
        link = end;
    if (retry > end)
        retry = end;

    doc = json_loads(buf, 0, NULL);
    acme_problem_parse(doc, &p);
    if (strlen(p.message) >= sizeof(p.message) || strlen(p.type) >= sizeof(p.type))
        abort();
    json_decref(doc);

    acme_response_init(&resp);
    acme_link_parse(link, &resp);
    if (resp.n_alternates > ACME_CLIENT_LINKS_MAX)
        abort();
    acme_response_dispose(&resp);

    at = acme_retry_after_parse(retry, NOW);
    if (at != 0 && (at < NOW || at > NOW + ACME_CLIENT_RETRY_AFTER_MAX_S))
        abort();
    free(buf);
    return 0;
}
