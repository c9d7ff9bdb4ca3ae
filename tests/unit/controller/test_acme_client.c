/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the pure parts of controller/issuer/acme_client.c behind rate limits: a table
 * of Retry-After values (delta seconds, HTTP dates in the three formats, a date in the past,
 * values beyond ACME_CLIENT_RETRY_AFTER_MAX_S, garbage) against a fixed clock; which answers
 * count as rate limited (HTTP 429 and the rateLimited problem type, RFC 8555 section 6.6) and
 * which are other refusals; and a rateLimited problem document turned into words.
 */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "check.h"
#include "issuer/acme_client.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date. */
#define NOW 784111777LL

static void test_retry_after(void)
{
    static const struct {
        const char *value;
        long long want; /* Unix seconds; 0: not understood */
    } cases[] = {
        {"120", NOW + 120},
        {"  30", NOW + 30},
        {"0", NOW},
        {"30\r", NOW + 30},
        {"-5", 0},
        {"", 0},
        {"soon", 0},
        {"12abc", 0},
        {"999999999", NOW + ACME_CLIENT_RETRY_AFTER_MAX_S},
        {"Sun, 06 Nov 1994 08:50:37 GMT", NOW + 60},   /* IMF-fixdate */
        {"Sunday, 06-Nov-94 08:51:37 GMT", NOW + 120}, /* RFC 850 */
        {"Sun Nov  6 08:52:37 1994", NOW + 180},       /* asctime */
        {"Sun, 06 Nov 1994 07:00:00 GMT", NOW},        /* already past: now */
        {"Wed, 06 Nov 1996 08:49:37 GMT", NOW + ACME_CLIENT_RETRY_AFTER_MAX_S}, /* cut */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[128];

        snprintf(what, sizeof(what), "Retry-After \"%s\"", cases[i].value);
        for (char *c = what; *c != '\0'; c++)
            if (*c == '\r')
                *c = '~'; /* keep the TAP line on one line */
        CHECK_INT(acme_retry_after_parse(cases[i].value, NOW), cases[i].want, what);
    }
}

static void test_rate_limited(void)
{
    struct acme_problem none = {0}, limited = {0}, nonce = {0}, p;
    json_t *doc;

    snprintf(limited.type, sizeof(limited.type), "rateLimited");
    snprintf(nonce.type, sizeof(nonce.type), "badNonce");
    CHECK_INT(acme_client_error_code(429, &none), -EAGAIN, "429 without a problem: rate limited");
    CHECK_INT(acme_client_error_code(429, NULL), -EAGAIN, "429, no problem parsed: rate limited");
    CHECK_INT(acme_client_error_code(403, &limited), -EAGAIN,
              "rateLimited under another status: rate limited");
    CHECK_INT(acme_client_error_code(400, &nonce), -AEGIS_E_STATE, "badNonce: another refusal");
    CHECK_INT(acme_client_error_code(500, &none), -AEGIS_E_STATE, "500: another refusal");
    CHECK_INT(acme_client_error_code(503, &none), -AEGIS_E_STATE, "503: another refusal");

    doc =
        json_pack("{s:s, s:s, s:[{s:s, s:s, s:{s:s, s:s}}]}", "type", ACME_ERR_PREFIX "rateLimited",
                  "detail", "too many certificates already issued for example.com", "subproblems",
                  "type", ACME_ERR_PREFIX "rateLimited", "detail", "5 per week", "identifier",
                  "type", "dns", "value", "www.example.com");
    acme_problem_parse(doc, &p);
    json_decref(doc);
    CHECK_STR(p.type, "rateLimited", "the type without the ACME prefix");
    CHECK_STR(p.message,
              "too many certificates already issued for example.com (rateLimited); "
              "www.example.com: 5 per week (rateLimited)",
              "detail, type and the subproblem per identifier in words");
    CHECK_INT(acme_client_error_code(429, &p), -EAGAIN, "the parsed problem: rate limited");
}

int main(void)
{
    test_retry_after();
    test_rate_limited();
    return check_done();
}
