/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pure parts of the Cloudflare client (controller/issuer/cloudflare_api.c) and of the Origin
 * CA issuer: envelope parsing, the failure class of an answer, the plain-words description with
 * its fix, Retry-After, the zone walk, the certificate id of a serial; table-driven.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "issuer/cloudflare_api.h"
#include "issuer/cloudflare_origin.h"

#define NOW 1750000000LL

static const struct cf_api api = {
    .base_url = "https://api.example.test/client/v4",
    .where = "spec.cloudflareOriginCA",
    .permission = "Zone - SSL and Certificates - Edit",
};

static void parse(const char *body, long status, struct cf_response *r)
{
    cf_response_init(r);
    r->status = status;
    cf_envelope_parse(body, body != NULL ? strlen(body) : 0, r);
}

static void test_envelope(void)
{
    struct cf_response r;
    char big[CF_API_ERRORS_MAX * 40 + 64];
    size_t len = 0;

    parse("{\"success\":true,\"errors\":[],\"messages\":[],\"result\":{\"id\":\"1\"},"
          "\"result_info\":{\"page\":1,\"total_pages\":3}}",
          200, &r);
    CHECK(r.envelope && r.success && json_is_object(r.result) && r.result_info != NULL,
          "a success envelope: result and result_info");
    CHECK_INT(cf_api_classify(&r), 0, "a success is class 0");
    cf_response_dispose(&r);

    parse("{\"success\":false,\"errors\":[{\"code\":10000,\"message\":\"Authentication error\"}],"
          "\"messages\":[],\"result\":null}",
          403, &r);
    CHECK(r.envelope && !r.success && r.result == NULL && r.n_errors == 1 &&
              r.errors[0].code == 10000 && strcmp(r.errors[0].message, "Authentication error") == 0,
          "an error envelope: its code and message, result null");
    cf_response_dispose(&r);

    CHECK_INT(cf_envelope_parse("<html>502</html>", 16, &r), -AEGIS_E_SYNTAX, "HTML: no envelope");
    CHECK(!r.envelope && r.body == NULL, "HTML: nothing kept");
    CHECK_INT(cf_envelope_parse("{\"result\":1}", 12, &r), -AEGIS_E_SYNTAX,
              "an object without success is no envelope");
    CHECK_INT(cf_envelope_parse("{\"success\":true,\"success\":false}", 32, &r), -AEGIS_E_SYNTAX,
              "duplicate keys are refused");
    CHECK_INT(cf_envelope_parse(NULL, 0, &r), -AEGIS_E_SYNTAX, "an empty body is no envelope");
    cf_response_dispose(&r);

    /* More errors than kept: the rest is counted, not stored. */
    len = (size_t)snprintf(big, sizeof(big), "{\"success\":false,\"errors\":[");
    for (int i = 0; i < CF_API_ERRORS_MAX + 3; i++)
        len += (size_t)snprintf(big + len, sizeof(big) - len, "%s{\"code\":%d}", i ? "," : "",
                                1000 + i);
    snprintf(big + len, sizeof(big) - len, "]}");
    parse(big, 400, &r);
    CHECK(r.n_errors == CF_API_ERRORS_MAX && r.n_errors_total == CF_API_ERRORS_MAX + 3 &&
              strcmp(r.errors[0].message, "no message") == 0,
          "errors beyond CF_API_ERRORS_MAX are counted, a missing message is said");
    cf_response_dispose(&r);
}

static void test_classify(void)
{
    static const struct {
        long status;
        const char *body;
        int want;
        const char *what;
    } cases[] = {
        {0, NULL, -EIO, "no answer: retry"},
        {502, "<html>bad gateway</html>", -EIO, "502 HTML: retry"},
        {500, "{\"success\":false,\"errors\":[{\"code\":10000}]}", -EIO,
         "5xx whatever the code: retry"},
        {429, "{\"success\":false,\"errors\":[{\"code\":971}]}", -EAGAIN, "429: throttled"},
        {400, "{\"success\":false,\"errors\":[{\"code\":971}]}", -EAGAIN, "code 971: throttled"},
        {403, "{\"success\":false,\"errors\":[{\"code\":10000}]}", -EACCES, "10000: credentials"},
        {403, "{\"success\":false,\"errors\":[{\"code\":9109}]}", -EACCES, "9109: bad token"},
        {400, "{\"success\":false,\"errors\":[{\"code\":6003}]}", -EACCES, "6003: bad headers"},
        {400, "{\"success\":false,\"errors\":[{\"code\":1016}]}", -EACCES, "1016: not authorized"},
        {400, "{\"success\":false,\"errors\":[{\"code\":7003}]}", -AEGIS_E_NOTFOUND,
         "7003: bad zone id"},
        {404, "{\"success\":false,\"errors\":[{\"code\":81044}]}", -AEGIS_E_NOTFOUND,
         "81044: no record"},
        {400, "{\"success\":false,\"errors\":[{\"code\":81058}]}", -AEGIS_E_EXISTS,
         "81058: identical record"},
        {400, "{\"success\":false,\"errors\":[{\"code\":1100}]}", -EIO, "1100: temporary"},
        {400, "{\"success\":false,\"errors\":[{\"code\":1010}]}", -AEGIS_E_STATE,
         "1010: bad hostname"},
        {400, "{\"success\":false,\"errors\":[{\"code\":424242}]}", -AEGIS_E_STATE,
         "an unknown code: the status decides (400)"},
        {401, "{\"success\":false,\"errors\":[]}", -EACCES, "401 without codes: credentials"},
        {404, "not json", -AEGIS_E_NOTFOUND, "404 without an envelope: not found"},
        {200, "{\"success\":false,\"errors\":[{\"code\":10000}]}", -EACCES,
         "200 with success false: the code decides"},
        {200, "not json", -EIO, "200 without an envelope: a broken answer, retry"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cf_response r;

        parse(cases[i].body, cases[i].status, &r);
        CHECK_INT(cf_api_classify(&r), cases[i].want, cases[i].what);
        cf_response_dispose(&r);
    }
}

static void test_describe(void)
{
    static const struct {
        long status;
        const char *body;
        const char *needles[3];
    } cases[] = {
        {403,
         "{\"success\":false,\"errors\":[{\"code\":10000,\"message\":\"Authentication error\"}]}",
         {"Authentication error (code 10000)", "Zone - SSL and Certificates - Edit", NULL}},
        {400,
         "{\"success\":false,\"errors\":[{\"code\":1010,\"message\":\"Failed to validate "
         "requested hostname\"}]}",
         {"Failed to validate requested hostname (code 1010)", "dnsName must be in a zone", NULL}},
        {400,
         "{\"success\":false,\"errors\":[{\"code\":1003,\"message\":\"Invalid zone\"}]}",
         {"spec.cloudflareOriginCA.zoneID", NULL, NULL}},
        {0, NULL, {"no answer from Cloudflare", "retried later", NULL}},
        {503, "<html></html>", {"not an API envelope (HTTP 503)", "retried later", NULL}},
        {400,
         "{\"success\":false,\"errors\":[{\"code\":1,\"message\":\"a\"},{\"code\":2,\"message\":"
         "\"b\"}]}",
         {"a (code 1); b (code 2)", NULL, NULL}},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cf_response r;
        char out[AEGIS_ERR_MSG_MAX];
        bool ok = true;

        parse(cases[i].body, cases[i].status, &r);
        cf_api_describe(&api, &r, out, sizeof(out));
        for (size_t k = 0; k < 3 && cases[i].needles[k] != NULL; k++)
            ok &= strstr(out, cases[i].needles[k]) != NULL;
        if (!CHECK(ok, "the description names what was said and the fix"))
            printf("#   got: %s\n", out);
        cf_response_dispose(&r);
    }
    {
        struct cf_response r;
        char small[16];

        parse("{\"success\":false,\"errors\":[{\"code\":10000,\"message\":\"Authentication "
              "error\"}]}",
              403, &r);
        cf_api_describe(&api, &r, small, sizeof(small));
        CHECK(strlen(small) == sizeof(small) - 1, "a small buffer is filled and terminated");
        cf_response_dispose(&r);
    }
}

static void test_retry_after(void)
{
    CHECK_INT(cf_retry_after_parse("30", NOW), NOW + 30, "delta seconds");
    CHECK_INT(cf_retry_after_parse("999999999", NOW), NOW + CF_API_RETRY_AFTER_MAX_S,
              "a huge delta is cut");
    CHECK_INT(cf_retry_after_parse("-5", NOW), 0, "a negative delta is ignored");
    CHECK_INT(cf_retry_after_parse("soon", NOW), 0, "garbage is ignored");
    CHECK_INT(cf_retry_after_parse("Sun, 15 Jun 2025 15:23:20 GMT", NOW), NOW + 1000,
              "an HTTP date");
}

static void test_zone_walk(void)
{
    static const struct {
        const char *name;
        int rc;
        size_t n;
        const char *first, *last;
    } cases[] = {
        {"_acme-challenge.www.example.com.", 0, 2, "www.example.com", "example.com"},
        {"_acme-challenge.example.com", 0, 1, "example.com", "example.com"},
        {"a.b.c.example.co.uk", 0, 5, "a.b.c.example.co.uk", "co.uk"},
        {"_x._acme-challenge.example.com", 0, 1, "example.com", "example.com"},
        {"com", -AEGIS_E_INVALID, 0, NULL, NULL},
        {"_acme-challenge.com.", -AEGIS_E_INVALID, 0, NULL, NULL},
        {"a..example.com", -AEGIS_E_INVALID, 0, NULL, NULL},
        {".example.com", -AEGIS_E_INVALID, 0, NULL, NULL},
        {"", -AEGIS_E_INVALID, 0, NULL, NULL},
        {".", -AEGIS_E_INVALID, 0, NULL, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *out[CF_API_ZONE_LABELS_MAX];
        char buf[CF_API_NAME_MAX + 1];
        size_t n = 99;
        int rc = cf_zone_candidates(cases[i].name, buf, sizeof(buf), out, &n);

        CHECK_INT(rc, cases[i].rc, cases[i].name);
        CHECK_INT(n, cases[i].n, "candidate count");
        if (rc == 0 && n > 0) {
            CHECK_STR(out[0], cases[i].first, "most specific first");
            CHECK_STR(out[n - 1], cases[i].last, "the registrable parent last");
        }
    }
    {
        char name[CF_API_NAME_MAX + 10], buf[CF_API_NAME_MAX + 1];
        const char *out[CF_API_ZONE_LABELS_MAX];
        size_t n;

        memset(name, 'a', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        name[10] = '.';
        CHECK_INT(cf_zone_candidates(name, buf, sizeof(buf), out, &n), -AEGIS_E_INVALID,
                  "a name longer than CF_API_NAME_MAX is refused");
        /* 40 labels: at most CF_API_ZONE_LABELS_MAX candidates. */
        for (int i = 0; i < 40; i++)
            memcpy(name + 2 * i, "a.", 2);
        memcpy(name + 80, "com", 4);
        CHECK_INT(cf_zone_candidates(name, buf, sizeof(buf), out, &n), 0, "40 labels");
        CHECK_INT(n, CF_API_ZONE_LABELS_MAX, "candidates are bounded");
    }
}

static void test_serial_id(void)
{
    char id[CF_ORIGIN_ID_MAX];

    CHECK_INT(cloudflare_origin_id_of_serial("FF", id), 0, "hex serial");
    CHECK_STR(id, "255", "is its decimal value");
    CHECK_INT(cloudflare_origin_id_of_serial("44C81477C343B9DFB9BEF5EEA7CCF21E7B7D3D1B", id), 0,
              "a 160-bit serial");
    CHECK_STR(id, "392673304454598624111493940976570633217023753499", "160 bits in decimal");
    CHECK_INT(cloudflare_origin_id_of_serial("12:34", id), -AEGIS_E_INVALID, "colons refused");
    CHECK_INT(cloudflare_origin_id_of_serial("", id), -AEGIS_E_INVALID, "empty refused");
}

int main(void)
{
    test_envelope();
    test_classify();
    test_describe();
    test_retry_after();
    test_zone_walk();
    test_serial_id();
    return check_done();
}
