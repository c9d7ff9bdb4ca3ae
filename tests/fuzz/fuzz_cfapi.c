/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what the Cloudflare client parses (controller/issuer/cloudflare_api.c):
 * the response envelope (success, errors kept up to CF_API_ERRORS_MAX, result, result_info), its
 * failure class and plain-words description (bounded), Retry-After values and the zone walk of
 * a DNS name. The first two input bytes choose the HTTP status; the rest is split at the first
 * two NULs: a body, a Retry-After value, a DNS name.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "issuer/cloudflare_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1750000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct cf_api api = {
        .base_url = "https://x.test", .where = "w", .permission = "p"};
    const char *cands[CF_API_ZONE_LABELS_MAX];
    char desc[512], zbuf[CF_API_NAME_MAX + 1];
    struct cf_response r;
    char *buf, *retry, *name, *end;
    size_t body_len, n = 0;
    int64_t at;
    int c;

    if (size < 2)
        return 0;
    buf = malloc(size + 1);
    memcpy(buf, data + 2, size - 2);
    buf[size - 2] = buf[size - 1] = buf[size] = '\0';
    end = buf + (size - 2);
    body_len = strnlen(buf, size - 2);
    retry = buf + body_len + 1;
    if (retry > end)
        retry = end;
    name = retry + strlen(retry) + 1;
    if (name > end)
        name = end;

    cf_response_init(&r);
    r.status = (long)(((unsigned)data[0] << 8 | data[1]) % 600);
    cf_envelope_parse(buf, body_len, &r);
    if (r.n_errors > CF_API_ERRORS_MAX || r.n_errors > r.n_errors_total)
        abort();
    for (size_t i = 0; i < r.n_errors; i++)
        if (strlen(r.errors[i].message) >= CF_API_ERROR_TEXT_MAX)
            abort();
    c = cf_api_classify(&r);
    if (c != 0 && c != -EIO && c != -EAGAIN && c != -EACCES && c != -AEGIS_E_NOTFOUND &&
        c != -AEGIS_E_STATE && c != -AEGIS_E_EXISTS)
        abort();
    cf_api_describe(&api, &r, desc, sizeof(desc));
    if (strlen(desc) >= sizeof(desc))
        abort();
    cf_response_dispose(&r);

    at = cf_retry_after_parse(retry, NOW);
    if (at != 0 && (at < NOW || at > NOW + CF_API_RETRY_AFTER_MAX_S))
        abort();

    if (cf_zone_candidates(name, zbuf, sizeof(zbuf), cands, &n) == 0) {
        if (n == 0 || n > CF_API_ZONE_LABELS_MAX)
            abort();
        for (size_t i = 0; i < n; i++)
            if (strchr(cands[i], '.') == NULL || cands[i][0] == '.')
                abort();
    }
    free(buf);
    return 0;
}
