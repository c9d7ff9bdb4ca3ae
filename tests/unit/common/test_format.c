/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/format.c: valid and invalid values of every named format (the language
 * of docs/formats.md), durations both ways, edit distance and "did you mean" suggestions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/err.h"
#include "aegis/format.h"
#include "aegis/limits.h"
#include "check.h"

struct fcase {
    enum aegis_format f;
    bool ok;
    const char *s;
};

static const struct fcase cases[] = {
    /* dns-name */
    {AEGIS_FMT_DNS_NAME, true, "example.com"},
    {AEGIS_FMT_DNS_NAME, true, "a"},
    {AEGIS_FMT_DNS_NAME, true, "localhost"},
    {AEGIS_FMT_DNS_NAME, true, "*.example.com"},
    {AEGIS_FMT_DNS_NAME, true, "*.com"},
    {AEGIS_FMT_DNS_NAME, true, "Example.COM"},
    {AEGIS_FMT_DNS_NAME, true, "xn--bcher-kva.example"},
    {AEGIS_FMT_DNS_NAME, true, "a-b.c-d.e"},
    {AEGIS_FMT_DNS_NAME, true, "1.2.3.4"},
    {AEGIS_FMT_DNS_NAME, false, ""},
    {AEGIS_FMT_DNS_NAME, false, "*"},
    {AEGIS_FMT_DNS_NAME, false, "*."},
    {AEGIS_FMT_DNS_NAME, false, "*.*.example.com"},
    {AEGIS_FMT_DNS_NAME, false, "a.*.example.com"},
    {AEGIS_FMT_DNS_NAME, false, "*example.com"},
    {AEGIS_FMT_DNS_NAME, false, "exa mple.com"},
    {AEGIS_FMT_DNS_NAME, false, "example.com."},
    {AEGIS_FMT_DNS_NAME, false, ".example.com"},
    {AEGIS_FMT_DNS_NAME, false, "a..b"},
    {AEGIS_FMT_DNS_NAME, false, "-a.com"},
    {AEGIS_FMT_DNS_NAME, false, "a-.com"},
    {AEGIS_FMT_DNS_NAME, false, "a.com-"},
    {AEGIS_FMT_DNS_NAME, false, "under_score.com"},
    {AEGIS_FMT_DNS_NAME, false, "caf\xc3\xa9.com"},
    {AEGIS_FMT_DNS_NAME, false, "example.com\n"},
    /* hostname */
    {AEGIS_FMT_HOSTNAME, true, "app.example.com"},
    {AEGIS_FMT_HOSTNAME, true, "backend"},
    {AEGIS_FMT_HOSTNAME, false, "*.example.com"},
    {AEGIS_FMT_HOSTNAME, false, "a..b"},
    {AEGIS_FMT_HOSTNAME, false, ""},
    /* dns-subdomain */
    {AEGIS_FMT_DNS_SUBDOMAIN, true, "letsencrypt"},
    {AEGIS_FMT_DNS_SUBDOMAIN, true, "a.b-c.d"},
    {AEGIS_FMT_DNS_SUBDOMAIN, true, "0"},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "Upper"},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "a_b"},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "-a"},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "a-"},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "a.-b"},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "a."},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, ""},
    {AEGIS_FMT_DNS_SUBDOMAIN, false, "*.a"},
    /* dns-label */
    {AEGIS_FMT_DNS_LABEL, true, "default"},
    {AEGIS_FMT_DNS_LABEL, true, "kube-system"},
    {AEGIS_FMT_DNS_LABEL, true, "9"},
    {AEGIS_FMT_DNS_LABEL, false, "a.b"},
    {AEGIS_FMT_DNS_LABEL, false, "Default"},
    {AEGIS_FMT_DNS_LABEL, false, "-x"},
    {AEGIS_FMT_DNS_LABEL, false, "x-"},
    {AEGIS_FMT_DNS_LABEL, false, ""},
    /* secret-key */
    {AEGIS_FMT_SECRET_KEY, true, "tls.crt"},
    {AEGIS_FMT_SECRET_KEY, true, "api_token-2"},
    {AEGIS_FMT_SECRET_KEY, true, "."},
    {AEGIS_FMT_SECRET_KEY, true, ".."},
    {AEGIS_FMT_SECRET_KEY, false, ""},
    {AEGIS_FMT_SECRET_KEY, false, "a/b"},
    {AEGIS_FMT_SECRET_KEY, false, "a b"},
    {AEGIS_FMT_SECRET_KEY, false, "a:b"},
    /* ip */
    {AEGIS_FMT_IP, true, "127.0.0.1"},
    {AEGIS_FMT_IP, true, "0.0.0.0"},
    {AEGIS_FMT_IP, true, "255.255.255.255"},
    {AEGIS_FMT_IP, true, "::1"},
    {AEGIS_FMT_IP, true, "::"},
    {AEGIS_FMT_IP, true, "2001:db8::1"},
    {AEGIS_FMT_IP, true, "2001:DB8:0:0:0:0:0:1"},
    {AEGIS_FMT_IP, true, "::ffff:192.0.2.1"},
    {AEGIS_FMT_IP, true, "fe80::1:2:3:4"},
    {AEGIS_FMT_IP, false, ""},
    {AEGIS_FMT_IP, false, "256.0.0.1"},
    {AEGIS_FMT_IP, false, "1.2.3"},
    {AEGIS_FMT_IP, false, "1.2.3.4.5"},
    {AEGIS_FMT_IP, false, "01.2.3.4"},
    {AEGIS_FMT_IP, false, "1.2.3.04"},
    {AEGIS_FMT_IP, false, " 1.2.3.4"},
    {AEGIS_FMT_IP, false, "1.2.3.4 "},
    {AEGIS_FMT_IP, false, "fe80::1%eth0"},
    {AEGIS_FMT_IP, false, "1:2:3:4:5:6:7:8:9"},
    {AEGIS_FMT_IP, false, "1::2::3"},
    {AEGIS_FMT_IP, false, "12345::1"},
    {AEGIS_FMT_IP, false, "localhost"},
    {AEGIS_FMT_IP, false, "[::1]"},
    {AEGIS_FMT_IP, false, "0x7f.0.0.1"},
    {AEGIS_FMT_IP, false, "000000000000000000000000000000000000000000000000000000000000000001"},
    /* url */
    {AEGIS_FMT_URL, true, "http://example.com"},
    {AEGIS_FMT_URL, true, "https://example.com/"},
    {AEGIS_FMT_URL, true, "http://10.0.0.5:8080"},
    {AEGIS_FMT_URL, true, "http://a:1"},
    {AEGIS_FMT_URL, true, "http://a:65535/x"},
    {AEGIS_FMT_URL, true, "https://[::1]:8443/path/to"},
    {AEGIS_FMT_URL, true, "https://acme-v02.api.letsencrypt.org/directory"},
    {AEGIS_FMT_URL, true, "http://a/%20~!$&'()*+,;=:@"},
    {AEGIS_FMT_URL, true, "http://a/caf\xc3\xa9"},
    {AEGIS_FMT_URL, true, "http://..."},
    {AEGIS_FMT_URL, false, "ftp://example.com"},
    {AEGIS_FMT_URL, false, "http://"},
    {AEGIS_FMT_URL, false, "http:///x"},
    {AEGIS_FMT_URL, false, "http://a:0"},
    {AEGIS_FMT_URL, false, "http://a:080"},
    {AEGIS_FMT_URL, false, "http://a:65536"},
    {AEGIS_FMT_URL, false, "http://a:100000"},
    {AEGIS_FMT_URL, false, "http://a:"},
    {AEGIS_FMT_URL, false, "http://a:b"},
    {AEGIS_FMT_URL, false, "http://a/b?c=d"},
    {AEGIS_FMT_URL, false, "http://a/b#frag"},
    {AEGIS_FMT_URL, false, "http://a?b"},
    {AEGIS_FMT_URL, false, "http://a/b c"},
    {AEGIS_FMT_URL, false, "http://a/\x7f"},
    {AEGIS_FMT_URL, false, "http://user@a/"},
    {AEGIS_FMT_URL, false, "http://a_b/"},
    {AEGIS_FMT_URL, false, "http://[::1"},
    {AEGIS_FMT_URL, false, "http://[]/"},
    {AEGIS_FMT_URL, false, "http://[g::1]/"},
    {AEGIS_FMT_URL, false, "HTTP://a"},
    {AEGIS_FMT_URL, false, " http://a"},
    /* https-url */
    {AEGIS_FMT_HTTPS_URL, true, "https://example.com/dir"},
    {AEGIS_FMT_HTTPS_URL, true, "https://[2001:db8::1]:443"},
    {AEGIS_FMT_HTTPS_URL, false, "http://example.com/dir"},
    {AEGIS_FMT_HTTPS_URL, false, "https:/example.com"},
    /* uri */
    {AEGIS_FMT_URI, true, "mailto:ops@example.com"},
    {AEGIS_FMT_URI, true, "https://example.com/a?b#c"},
    {AEGIS_FMT_URI, true, "urn:ietf:params:acme:error:malformed"},
    {AEGIS_FMT_URI, true, "a+b.c-d:x"},
    {AEGIS_FMT_URI, true, "x::"},
    {AEGIS_FMT_URI, true, "spiffe://trust/ns/caf\xc3\xa9"},
    {AEGIS_FMT_URI, false, ""},
    {AEGIS_FMT_URI, false, "mailto:"},
    {AEGIS_FMT_URI, false, ":x"},
    {AEGIS_FMT_URI, false, "1http:x"},
    {AEGIS_FMT_URI, false, "ht_tp:x"},
    {AEGIS_FMT_URI, false, "nocolon"},
    {AEGIS_FMT_URI, false, "a:b c"},
    {AEGIS_FMT_URI, false, "a:b\t"},
    /* email */
    {AEGIS_FMT_EMAIL, true, "ops@example.com"},
    {AEGIS_FMT_EMAIL, true, "first.last+tag%x_y-z@sub.example-1.org"},
    {AEGIS_FMT_EMAIL, true, "a@b.c"},
    {AEGIS_FMT_EMAIL, true, "a@-.-"},
    {AEGIS_FMT_EMAIL, false, "ops@localhost"},
    {AEGIS_FMT_EMAIL, false, "@example.com"},
    {AEGIS_FMT_EMAIL, false, "ops@"},
    {AEGIS_FMT_EMAIL, false, "ops"},
    {AEGIS_FMT_EMAIL, false, "a@b@c.d"},
    {AEGIS_FMT_EMAIL, false, "a@b..c"},
    {AEGIS_FMT_EMAIL, false, "a@.b.c"},
    {AEGIS_FMT_EMAIL, false, "a@b.c."},
    {AEGIS_FMT_EMAIL, false, "a b@c.d"},
    {AEGIS_FMT_EMAIL, false, "a@b_c.d"},
    {AEGIS_FMT_EMAIL, false, "\"a\"@b.c"},
    /* file-path */
    {AEGIS_FMT_FILE_PATH, true, "/etc/aegis/tls.crt"},
    {AEGIS_FMT_FILE_PATH, true, "relative path with spaces"},
    {AEGIS_FMT_FILE_PATH, false, ""},
    /* url-path */
    {AEGIS_FMT_URL_PATH, true, "/"},
    {AEGIS_FMT_URL_PATH, true, "/healthz"},
    {AEGIS_FMT_URL_PATH, true, "/a?b=c#d"},
    {AEGIS_FMT_URL_PATH, true, "/caf\xc3\xa9"},
    {AEGIS_FMT_URL_PATH, false, ""},
    {AEGIS_FMT_URL_PATH, false, "healthz"},
    {AEGIS_FMT_URL_PATH, false, "/a b"},
    {AEGIS_FMT_URL_PATH, false, "/a\x7f"},
    {AEGIS_FMT_URL_PATH, false, "/a\n"},
    /* date-time */
    {AEGIS_FMT_DATE_TIME, true, "2024-01-31T12:00:00Z"},
    {AEGIS_FMT_DATE_TIME, true, "2024-01-31t12:00:00z"},
    {AEGIS_FMT_DATE_TIME, true, "2024-01-31T12:00:00.123456789+05:30"},
    {AEGIS_FMT_DATE_TIME, true, "2024-01-31T12:00:00-00:00"},
    {AEGIS_FMT_DATE_TIME, true, "9999-99-99T99:99:99Z"}, /* the pattern checks no ranges */
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31 12:00:00Z"},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31T12:00:00"},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31T12:00Z"},
    {AEGIS_FMT_DATE_TIME, false, "2024-1-31T12:00:00Z"},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31T12:00:00.Z"},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31T12:00:00+0530"},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31T12:00:00+05:30 "},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31T12:00:00ZZ"},
    {AEGIS_FMT_DATE_TIME, false, "2024-01-31"},
    {AEGIS_FMT_DATE_TIME, false, ""},
    /* none */
    {AEGIS_FMT_NONE, true, ""},
    {AEGIS_FMT_NONE, true, "anything at all"},
};

#define CERT_BODY                                                                                  \
    "MIIBszCCAVmgAwIBAgIUQ0k1\n"                                                                   \
    "dGVzdA==\n"

static const struct {
    const char *s;
    bool ok;
    const char *why; /* expected hint when invalid, or NULL to not check it */
} pem_cases[] = {
    {"-----BEGIN CERTIFICATE-----\n" CERT_BODY "-----END CERTIFICATE-----\n", true, NULL},
    {"-----BEGIN CERTIFICATE-----\r\n"
     "MIIB szCC\r\n\tAVmg\r\n"
     "-----END CERTIFICATE-----",
     true, NULL},
    {"Bag Attributes\n  friendlyName: x\n-----BEGIN PRIVATE KEY-----\nQUJD\n"
     "-----END PRIVATE KEY-----\ntrailing text\n",
     true, NULL},
    {"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
     "-----BEGIN CERTIFICATE-----\nQUI=\n-----END CERTIFICATE-----\n"
     "-----BEGIN RSA PRIVATE KEY-----\nQQ==\n-----END RSA PRIVATE KEY-----\n",
     true, NULL},
    {"-----BEGIN X509 CRL-----\nQUJD\n-----END X509 CRL-----", true, NULL},
    {"", false, NULL},
    {"just text", false, NULL},
    {"-----BEGIN CERTIFICATE-----\nQUJD\n", false, NULL},
    {"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n"
     "QUJD\n",
     false, NULL},
    {"-----BEGIN CERTIFICATE-----\nQUJD\n-----END PRIVATE KEY-----\n", false,
     "END label does not match BEGIN label"},
    {"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
     "-----BEGIN CERTIFICATE-----\nQU*D\n-----END CERTIFICATE-----\n",
     false, "block 2 has invalid base64"},
    {"-----BEGIN CERTIFICATE-----\nQUJ\n-----END CERTIFICATE-----", false,
     "block 1 has invalid base64"},
    {"-----BEGIN CERTIFICATE-----\nQU=D\n-----END CERTIFICATE-----", false,
     "block 1 has invalid base64"},
    {"-----BEGIN CERTIFICATE-----\nQ===\n-----END CERTIFICATE-----", false,
     "block 1 has invalid base64"},
    {"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----", false, NULL},
    {"-----BEGIN certificate-----\nQUJD\n-----END certificate-----", false, NULL},
    {"-----BEGIN CERTIFICATE----\nQUJD\n-----END CERTIFICATE-----", false, NULL},
    {"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE", false, NULL},
    {"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nQUJD\n"
     "-----END RSA PRIVATE KEY-----",
     false, "block 1 has invalid base64"},
};

static void test_formats(void)
{
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = "unset";
        bool ok = aegis_format_check(cases[i].f, cases[i].s, strlen(cases[i].s), &why);
        char what[200];

        snprintf(what, sizeof(what), "%s \"%s\" is %s", aegis_format_name(cases[i].f), cases[i].s,
                 cases[i].ok ? "valid" : "invalid");
        CHECK(ok == cases[i].ok, what);
        if (!ok && why != NULL)
            printf("#   why: %s\n", why);
        CHECK(ok ? why == NULL : 1, "a valid value leaves why NULL");
        /* why is optional */
        CHECK(aegis_format_check(cases[i].f, cases[i].s, strlen(cases[i].s), NULL) == cases[i].ok,
              "why may be NULL");
    }
}

static void test_pem(void)
{
    size_t i;

    for (i = 0; i < sizeof(pem_cases) / sizeof(pem_cases[0]); i++) {
        const char *why = NULL;
        bool ok = aegis_format_check(AEGIS_FMT_PEM, pem_cases[i].s, strlen(pem_cases[i].s), &why);
        char what[64];

        snprintf(what, sizeof(what), "pem case %zu is %s", i,
                 pem_cases[i].ok ? "valid" : "invalid");
        CHECK(ok == pem_cases[i].ok, what);
        if (!ok) {
            CHECK(why != NULL, "an invalid PEM says why");
            if (pem_cases[i].why != NULL)
                CHECK_STR(why, pem_cases[i].why, "the PEM hint");
        }
    }
}

/* Values at and past the maxLength of each format, and NUL bytes. */
static void test_lengths(void)
{
    static const struct {
        enum aegis_format f;
        const char *prefix, *fill;
        size_t max;
    } lens[] = {
        {AEGIS_FMT_DNS_SUBDOMAIN, "", "a", 253},
        {AEGIS_FMT_DNS_LABEL, "", "a", 63},
        {AEGIS_FMT_SECRET_KEY, "", "k", 253},
        {AEGIS_FMT_URL, "http://a/", "x", 2048},
        {AEGIS_FMT_HTTPS_URL, "https://a/", "x", 2048},
        {AEGIS_FMT_URI, "urn:", "x", 2048},
        {AEGIS_FMT_EMAIL, "a@b.", "c", 254},
        {AEGIS_FMT_URL_PATH, "/", "p", 2048},
        {AEGIS_FMT_FILE_PATH, "/", "f", 4096},
        /* Code points, not bytes: each "é" is two bytes but one character. */
        {AEGIS_FMT_URL_PATH, "/", "\xc3\xa9", 2048},
        {AEGIS_FMT_FILE_PATH, "", "\xc3\xa9", 4096},
    };
    static char buf[9000];
    size_t i, k;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t plen = strlen(lens[i].prefix), flen = strlen(lens[i].fill), len = plen, chars = plen;
        char what[96];

        memcpy(buf, lens[i].prefix, plen);
        while (chars < lens[i].max) {
            memcpy(buf + len, lens[i].fill, flen);
            len += flen;
            chars++;
        }
        snprintf(what, sizeof(what), "%s of %zu characters is valid", aegis_format_name(lens[i].f),
                 lens[i].max);
        CHECK(aegis_format_check(lens[i].f, buf, len, NULL), what);
        memcpy(buf + len, lens[i].fill, flen);
        snprintf(what, sizeof(what), "%s of %zu characters is too long",
                 aegis_format_name(lens[i].f), lens[i].max + 1);
        CHECK(!aegis_format_check(lens[i].f, buf, len + flen, NULL), what);
    }

    /* dns-name: 253 characters in all and 63 per label. */
    for (k = 0; k < 4; k++) {
        memset(buf + k * 64, 'a', 63);
        buf[k * 64 + 63] = '.';
    }
    CHECK(aegis_format_check(AEGIS_FMT_DNS_NAME, buf, 253, NULL), "dns-name of 253 is valid");
    buf[253] = 'a';
    CHECK(!aegis_format_check(AEGIS_FMT_DNS_NAME, buf, 254, NULL), "dns-name of 254 is invalid");
    memset(buf, 'a', 64);
    CHECK(aegis_format_check(AEGIS_FMT_DNS_NAME, buf, 63, NULL), "a 63-character label");
    CHECK(!aegis_format_check(AEGIS_FMT_DNS_NAME, buf, 64, NULL), "a 64-character label");
    buf[0] = '*';
    buf[1] = '.';
    memset(buf + 2, 'a', 251);
    for (k = 60; k < 253; k += 60)
        buf[k] = '.';
    CHECK(aegis_format_check(AEGIS_FMT_DNS_NAME, buf, 253, NULL), "*. counts in the 253");
    buf[253] = 'a';
    CHECK(!aegis_format_check(AEGIS_FMT_DNS_NAME, buf, 254, NULL), "*. counts in the 253 (254)");
    CHECK(!aegis_format_check(AEGIS_FMT_HOSTNAME, buf, 253, NULL), "hostname has no wildcard");
    /* dns-subdomain has no per-label limit. */
    memset(buf, 'a', 200);
    CHECK(aegis_format_check(AEGIS_FMT_DNS_SUBDOMAIN, buf, 200, NULL), "a 200-character label");

    for (i = 0; i < AEGIS_FMT_COUNT_; i++) {
        char what[96];

        snprintf(what, sizeof(what), "a NUL byte fails %s",
                 aegis_format_name((enum aegis_format)i));
        CHECK(!aegis_format_check((enum aegis_format)i, "/a\0b", 4, NULL), what);
    }
    CHECK(
        !aegis_format_check(AEGIS_FMT_PEM, "-----BEGIN A-----\nQUJD\n-----END A-----\0", 39, NULL),
        "a NUL byte fails pem");
    CHECK(aegis_format_check(AEGIS_FMT_IP, "1.2.3.4XX", 7, NULL), "ip reads len bytes only");
}

static void test_pem_blocks(void)
{
    static char buf[4096];
    const char *block = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
    size_t blen = strlen(block), i;
    const char *why = NULL;

    /* Each copy includes the NUL, which the next copy overwrites. */
    for (i = 0; i < AEGIS_LIMIT_PEM_BLOCKS; i++)
        memcpy(buf + i * blen, block, blen + 1);
    CHECK(aegis_format_check(AEGIS_FMT_PEM, buf, AEGIS_LIMIT_PEM_BLOCKS * blen, NULL),
          "AEGIS_LIMIT_PEM_BLOCKS blocks are allowed");
    memcpy(buf + i * blen, block, blen + 1);
    CHECK(!aegis_format_check(AEGIS_FMT_PEM, buf, (AEGIS_LIMIT_PEM_BLOCKS + 1) * blen, &why),
          "one more block is refused");
    CHECK(why != NULL && strstr(why, "16") != NULL, "the hint names the limit");
}

static void test_names(void)
{
    CHECK_STR(aegis_format_name(AEGIS_FMT_DNS_NAME), "dns-name", "format name");
    CHECK_STR(aegis_format_name(AEGIS_FMT_DATE_TIME), "date-time", "last format name");
    CHECK_STR(aegis_format_name(AEGIS_FMT_NONE), "", "NONE has no name");
    CHECK_STR(aegis_format_what(AEGIS_FMT_HTTPS_URL), "a valid https:// URL", "format what");
    CHECK_STR(aegis_format_name(AEGIS_FMT_COUNT_), "", "out of range name");
}

static const struct {
    const char *s;
    int rc;
    int64_t ms;
} durations[] = {
    {"90d", 0, INT64_C(90) * 86400000},
    {"2160h", 0, INT64_C(2160) * 3600000},
    {"1h30m", 0, 5400000},
    {"1.5h", 0, 5400000},
    {"500ms", 0, 500},
    {"0s", 0, 0},
    {"10s", 0, 10000},
    {"2m", 0, 120000},
    {"1m5s", 0, 65000},
    {"1d1h1m1s1ms", 0, 86400000 + 3600000 + 60000 + 1000 + 1},
    {"1s1s", 0, 2000},
    {"0.5s", 0, 500},
    {"1.25m", 0, 75000},
    {"0.001s", 0, 1},
    {"1.0000000000000000000000001s", 0, 1000},
    {"007s", 0, 7000},
    {"36500d", 0, INT64_C(36500) * 86400000},
    {"36500d1ms", -AEGIS_E_LIMIT, 0},
    {"36501d", -AEGIS_E_LIMIT, 0},
    {"876000h1s", -AEGIS_E_LIMIT, 0},
    {"99999999999999999999999999h", -AEGIS_E_LIMIT, 0},
    {"99999999999999999999999999h1x", -AEGIS_E_INVALID, 0},
    {"", -AEGIS_E_INVALID, 0},
    {"s", -AEGIS_E_INVALID, 0},
    {"10", -AEGIS_E_INVALID, 0},
    {"-1s", -AEGIS_E_INVALID, 0},
    {"+1s", -AEGIS_E_INVALID, 0},
    {"1w", -AEGIS_E_INVALID, 0},
    {"1y", -AEGIS_E_INVALID, 0},
    {"1us", -AEGIS_E_INVALID, 0},
    {"1S", -AEGIS_E_INVALID, 0},
    {"1 s", -AEGIS_E_INVALID, 0},
    {" 1s", -AEGIS_E_INVALID, 0},
    {"1s ", -AEGIS_E_INVALID, 0},
    {"1.s", -AEGIS_E_INVALID, 0},
    {".5s", -AEGIS_E_INVALID, 0},
    {"1h30", -AEGIS_E_INVALID, 0},
    {"1msx", -AEGIS_E_INVALID, 0},
    {"1h 30m", -AEGIS_E_INVALID, 0},
    {"1e3s", -AEGIS_E_INVALID, 0},
    {"0x10s", -AEGIS_E_INVALID, 0},
    {"1111111111111111111111111111111111111111111111111111111111111s", -AEGIS_E_LIMIT, 0},
    {"11111111111111111111111111111111111111111111111111111111111111111s", -AEGIS_E_INVALID, 0},
};

static void test_durations(void)
{
    size_t i;

    for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        int64_t ms = -12345;
        int rc = aegis_duration_parse(durations[i].s, strlen(durations[i].s), &ms);
        char what[128];

        snprintf(what, sizeof(what), "duration \"%s\" rc", durations[i].s);
        CHECK_INT(rc, durations[i].rc, what);
        if (durations[i].rc == 0) {
            snprintf(what, sizeof(what), "duration \"%s\" value", durations[i].s);
            CHECK_INT(ms, durations[i].ms, what);
        } else {
            CHECK_INT(ms, -12345, "a failed parse leaves *ms alone");
        }
    }
    {
        int64_t ms = 0;

        CHECK_INT(aegis_duration_parse("1s\0", 3, &ms), -AEGIS_E_INVALID, "NUL in a duration");
        CHECK_INT(aegis_duration_parse("2s9", 2, &ms), 0, "parse reads len bytes only");
        CHECK_INT(ms, 2000, "parse reads len bytes only (value)");
    }
}

static const struct {
    int64_t ms;
    const char *want;
} formatted[] = {
    {0, "0s"},
    {500, "500ms"},
    {1000, "1s"},
    {1500, "1s500ms"},
    {60000, "1m"},
    {5400000, "1h30m"},
    {INT64_C(2160) * 3600000, "2160h"},
    {INT64_C(90) * 86400000, "2160h"},
    {3600000 + 1, "1h1ms"},
    {3661001, "1h1m1s1ms"},
    {-1500, "-1s500ms"},
};

static void test_duration_format(void)
{
    size_t i;
    char buf[64], small[4];
    int n;

    for (i = 0; i < sizeof(formatted) / sizeof(formatted[0]); i++) {
        int64_t back = -1;

        n = aegis_duration_format(formatted[i].ms, buf, sizeof(buf));
        CHECK_STR(buf, formatted[i].want, formatted[i].want);
        CHECK_INT(n, strlen(formatted[i].want), "format returns the length");
        if (formatted[i].ms >= 0) {
            CHECK(aegis_duration_parse(buf, strlen(buf), &back) == 0 && back == formatted[i].ms,
                  "the formatted duration parses back");
        }
    }
    n = aegis_duration_format(5400000, small, sizeof(small));
    CHECK_INT(n, 5, "a short buffer gets snprintf's value");
    CHECK_STR(small, "1h3", "a short buffer holds a prefix");
    n = aegis_duration_format(INT64_MIN, buf, sizeof(buf));
    CHECK(n > 0 && buf[0] == '-', "INT64_MIN formats");
}

static void test_distance(void)
{
    static const struct {
        const char *a, *b;
        size_t cap, want;
    } d[] = {
        {"", "", 5, 0},
        {"abc", "abc", 5, 0},
        {"abc", "ABC", 5, 0},
        {"kitten", "sitting", 5, 3},
        {"kitten", "sitting", 2, 3},
        {"flaw", "lawn", 5, 2},
        {"", "abcd", 10, 4},
        {"abcd", "", 2, 3},
        {"dnsName", "dnsNames", 3, 1},
        {"issuerref", "issuerRef", 1, 0},
        {"abcdefgh", "hgfedcba", 3, 4},
    };
    size_t i;

    for (i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        char what[96];

        snprintf(what, sizeof(what), "distance(%s, %s) cap %zu", d[i].a, d[i].b, d[i].cap);
        CHECK_INT(aegis_edit_distance(d[i].a, d[i].b, d[i].cap), d[i].want, what);
    }
}

static void test_suggest(void)
{
    static const char *const fields[] = {"dnsNames",    "ipAddresses", "issuerRef", "duration",
                                         "renewBefore", "privateKey",  "usages",    "secretName"};
    static const char *const kinds[] = {"Issuer", "Certificate", "Host"};
    static const struct {
        const char *word;
        const char *const *cands;
        size_t n;
        const char *want;
    } s[] = {
        {"dnsName", fields, 8, "dnsNames"},
        {"dnsnames", fields, 8, "dnsNames"},
        {"DNSNAMES", fields, 8, "dnsNames"},
        {"ipAdresses", fields, 8, "ipAddresses"},
        {"isuserRef", fields, 8, "issuerRef"},
        {"issuer", fields, 8, "issuerRef"},
        {"duraton", fields, 8, "duration"},
        {"renewbefore", fields, 8, "renewBefore"},
        {"usage", fields, 8, "usages"},
        {"privatekeys", fields, 8, "privateKey"},
        {"color", fields, 8, NULL},
        {"x", fields, 8, NULL},
        {"", fields, 8, NULL},
        {"completelyDifferent", fields, 8, NULL},
        {"Certficate", kinds, 3, "Certificate"},
        {"host", kinds, 3, "Host"},
        {"Hots", kinds, 3, NULL},
        {"Issuers", kinds, 3, "Issuer"},
        {"Secret", kinds, 3, NULL},
        {"dnsNames", fields, 0, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        char what[96];

        snprintf(what, sizeof(what), "suggest(%s)", s[i].word);
        CHECK_STR(aegis_suggest(s[i].word, s[i].cands, s[i].n), s[i].want, what);
    }
}

int main(void)
{
    test_formats();
    test_pem();
    test_lengths();
    test_pem_blocks();
    test_names();
    test_durations();
    test_duration_format();
    test_distance();
    test_suggest();
    return check_done();
}
