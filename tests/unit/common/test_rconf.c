/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/rconf.c: a complete document parses into the expected snapshot (defaults
 * included); each broken document is refused with an error at the right path, and every error of
 * a document with several is reported; certificate selection (bound, stored exact before wildcard,
 * fallback, none), host and token lookups, the 421 compatibility rule, reuse of parsed
 * certificates from a previous snapshot, reference counting and the JSON error list. The
 * certificates are made here with common/pki.c, so no fixture can go stale.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/limits.h"
#include "aegis/pki.h"
#include "aegis/rconf.h"
#include "check.h"

#define NOW 1750000000LL
#define DAY 86400LL

/* JSON-escaped PEM texts ("-----BEGIN...\n..." with the quotes), made once. */
static char *ca_cert, *a_cert, *a_key, *wild_cert, *wild_key, *store_cert, *store_key, *store2_cert,
    *store2_key, *fb_cert, *fb_key, *other_key, *a_key_enc, *a_key_trad;

static char *json_quote(const char *s)
{
    json_t *v = json_string(s);
    char *out = json_dumps(v, JSON_ENCODE_ANY);

    json_decref(v);
    return out;
}

static void make_cert(EVP_PKEY *ca_key, X509 *ca, char *const *names, size_t n, int64_t not_after,
                      char **cert_out, char **key_out, EVP_PKEY **key_ret)
{
    struct pki_cert_req r;
    struct aegis_err err;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    char *pem = NULL;

    memset(&r, 0, sizeof(r));
    r.dns.v = names;
    r.dns.n = n;
    r.not_before = NOW - DAY;
    r.not_after = not_after;
    r.is_ca = names == NULL;
    r.common_name = names == NULL ? "Test CA" : NULL;
    if (pki_key_generate(PKI_KEY_EC_P256, &key, &err) < 0 ||
        pki_sign(&r, key, ca, ca ? ca_key : key, &x, &err) < 0) {
        fprintf(stderr, "cannot make a certificate: %s\n", err.msg);
        exit(2);
    }
    pki_cert_to_pem(x, &pem, NULL, &err);
    *cert_out = json_quote(pem);
    free(pem);
    if (key_out != NULL) {
        pki_key_to_pem(key, &pem, NULL, &err);
        *key_out = json_quote(pem);
        pki_secret_free_str(pem);
    }
    X509_free(x);
    if (key_ret != NULL)
        *key_ret = key;
    else
        EVP_PKEY_free(key);
}

/* The key as encrypted PKCS#8 or in the traditional "EC PRIVATE KEY" form, JSON-quoted. */
static char *key_pem(EVP_PKEY *key, bool encrypted)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *text, *out;
    long len;
    int ok;

    if (encrypted)
        ok = PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), NULL, 0, NULL,
                                           (void *)"secret");
    else
        ok = PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL);
    if (ok != 1)
        exit(2);
    len = BIO_get_mem_data(bio, &data);
    text = aegis_strndup(data, (size_t)len);
    out = json_quote(text);
    free(text);
    BIO_free(bio);
    return out;
}

static void make_certs(void)
{
    static char *a[] = {"a.test", "www.a.test"}, *wild[] = {"*.wild.test"},
                *store[] = {"s.test", "*.store.test"}, *store2[] = {"s.test"},
                *fb[] = {"fallback.invalid"};
    EVP_PKEY *ca_key = NULL, *k = NULL;
    struct aegis_err err;
    X509 *ca = NULL;
    char *pem = NULL;
    struct pki_cert_req r;

    memset(&r, 0, sizeof(r));
    r.common_name = "Test CA";
    r.is_ca = true;
    r.path_len = -1;
    r.not_before = NOW - DAY;
    r.not_after = NOW + 365 * DAY;
    if (pki_key_generate(PKI_KEY_EC_P256, &ca_key, &err) < 0 ||
        pki_sign(&r, ca_key, NULL, ca_key, &ca, &err) < 0)
        exit(2);
    pki_cert_to_pem(ca, &pem, NULL, &err);
    ca_cert = json_quote(pem);
    free(pem);
    make_cert(ca_key, ca, a, 2, NOW + 90 * DAY, &a_cert, &a_key, &k);
    a_key_enc = key_pem(k, true);
    a_key_trad = key_pem(k, false);
    EVP_PKEY_free(k);
    k = NULL;
    make_cert(ca_key, ca, wild, 1, NOW + 90 * DAY, &wild_cert, &wild_key, NULL);
    make_cert(ca_key, ca, store, 2, NOW + 90 * DAY, &store_cert, &store_key, NULL);
    make_cert(ca_key, ca, store2, 1, NOW + 200 * DAY, &store2_cert, &store2_key, NULL);
    make_cert(ca_key, NULL, fb, 1, NOW + 90 * DAY, &fb_cert, &fb_key, NULL);
    make_cert(ca_key, ca, fb, 1, NOW + 90 * DAY, &pem, NULL, &k);
    free(pem);
    pki_key_to_pem(k, &pem, NULL, &err);
    other_key = json_quote(pem);
    pki_secret_free_str(pem);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
}

/* Replaces every @NAME@ of tmpl by the matching PEM (already JSON-quoted). */
static char *expand(const char *tmpl)
{
    static const struct {
        const char *name;
        char **value;
    } vars[] = {
        {"@CA@", &ca_cert},          {"@A_CERT@", &a_cert},         {"@A_KEY@", &a_key},
        {"@WILD_CERT@", &wild_cert}, {"@WILD_KEY@", &wild_key},     {"@S_CERT@", &store_cert},
        {"@S_KEY@", &store_key},     {"@S2_CERT@", &store2_cert},   {"@S2_KEY@", &store2_key},
        {"@FB_CERT@", &fb_cert},     {"@FB_KEY@", &fb_key},         {"@OTHER_KEY@", &other_key},
        {"@A_KEY_ENC@", &a_key_enc}, {"@A_KEY_TRAD@", &a_key_trad},
    };
    size_t cap = strlen(tmpl) + 1, len = 0;
    char *out = aegis_malloc(cap);

    while (*tmpl) {
        size_t i, n = sizeof(vars) / sizeof(vars[0]);

        for (i = 0; i < n; i++) {
            /* "@~NAME@" is the value without its quotes, to concatenate PEM texts. */
            bool bare = tmpl[0] == '@' && tmpl[1] == '~';
            const char *name = vars[i].name + 1;
            size_t vl = strlen(name), skip = bare ? 2 : 1;

            if (tmpl[0] == '@' && strncmp(tmpl + skip, name, vl) == 0) {
                const char *v = *vars[i].value + (bare ? 1 : 0);
                size_t add = strlen(*vars[i].value) - (bare ? 2 : 0);

                aegis_grow((void **)&out, &cap, len + add + 1, 1);
                memcpy(out + len, v, add);
                len += add;
                tmpl += skip + vl;
                break;
            }
        }
        if (i == n) {
            aegis_grow((void **)&out, &cap, len + 2, 1);
            out[len++] = *tmpl++;
        }
    }
    out[len] = '\0';
    return out;
}

static const char full_doc[] =
    "{\"version\": 1, \"generation\": 7,"
    " \"listeners\": {\"http\": [\"127.0.0.1:8080\", \"[::1]:8080\"],"
    "                 \"https\": [\"0.0.0.0:8443\"]},"
    " \"workers\": 2,"
    " \"hosts\": ["
    "  {\"name\": \"default/a\", \"hostnames\": [\"A.test\", \"www.a.test\"],"
    "   \"tls\": {\"certificatePEM\": @A_CERT@, \"privateKeyPEM\": @A_KEY@},"
    "   \"hsts\": {\"maxAge\": 600, \"includeSubdomains\": true},"
    "   \"upstreams\": [{\"url\": \"http://127.0.0.1:9000/base\", \"weight\": 3},"
    "                   {\"url\": \"https://[::1]\"}],"
    "   \"healthCheck\": {\"path\": \"/up\"},"
    "   \"upstreamTLS\": {\"caPEM\": @CA@, \"serverName\": \"Backend.internal\"},"
    "   \"timeouts\": {\"readMs\": 1500}, \"preserveHost\": true},"
    "  {\"name\": \"default/wild\", \"hostnames\": [\"*.wild.test\"],"
    "   \"tls\": {\"certificatePEM\": @WILD_CERT@, \"privateKeyPEM\": @WILD_KEY@,"
    "            \"minVersion\": \"1.3\"},"
    "   \"upstreams\": [{\"url\": \"http://127.0.0.1:9001\"}]},"
    "  {\"name\": \"default/c\", \"hostnames\": [\"c.test\", \"d.test\"], \"tls\": {},"
    "   \"forceHTTPS\": false, \"upstreams\": [{\"url\": \"http://127.0.0.1:9002\"}]},"
    "  {\"name\": \"default/plain\", \"hostnames\": [\"plain.test\", \"x.store.test\"],"
    "   \"upstreams\": [{\"url\": \"http://127.0.0.1:9003\"}], \"websocket\": false},"
    "  {\"name\": \"default/mtls\", \"hostnames\": [\"m.test\"],"
    "   \"tls\": {\"clientAuth\": {\"mode\": \"require\", \"caPEM\": @CA@}},"
    "   \"upstreams\": [{\"url\": \"http://127.0.0.1:9004\"}]}"
    " ],"
    " \"certificates\": ["
    "  {\"name\": \"default/s\", \"certificatePEM\": @S_CERT@, \"privateKeyPEM\": @S_KEY@},"
    "  {\"name\": \"default/s2\", \"certificatePEM\": @S2_CERT@, \"privateKeyPEM\": @S2_KEY@}"
    " ],"
    " \"fallback\": {\"certificatePEM\": @FB_CERT@, \"privateKeyPEM\": @FB_KEY@},"
    " \"acmeChallenges\": [{\"token\": \"tok-1_A\", \"keyAuthorization\": \"tok-1_A.thumb\"}]"
    "}";

static struct rconf *parse_ok(const char *tmpl, const struct rconf *prev, const char *what)
{
    char *doc = expand(tmpl);
    struct aegis_diags d;
    struct rconf *rc = NULL;
    char line[1024];
    int r;

    aegis_diags_init(&d);
    r = rconf_parse(doc, strlen(doc), prev, &rc, &d);
    CHECK(r == 0 && rc != NULL && d.nerrors == 0, what);
    for (size_t i = 0; i < d.n; i++) {
        aegis_diag_format(&d.v[i], line, sizeof(line));
        printf("#   %s\n", line);
    }
    aegis_diags_dispose(&d);
    free(doc);
    return rc;
}

static void test_full(void)
{
    struct rconf *rc = parse_ok(full_doc, NULL, "the full document parses");
    const struct rconf_host *a, *c, *plain;

    if (rc == NULL)
        return;
    CHECK_INT(rc->version, 1, "version");
    CHECK_INT(rc->generation, 7, "generation");
    CHECK_INT(rc->n_http, 2, "two http listeners");
    CHECK_INT(rc->n_https, 1, "one https listener");
    CHECK_STR(rc->http[1].text, "[::1]:8080", "IPv6 listener text");
    CHECK_INT(rc->http[1].addr.ss_family, AF_INET6, "IPv6 listener family");
    CHECK_INT(rc->redirect_port, 8443, "redirect port defaults to the first https listener");
    CHECK_INT(rc->workers, 2, "workers");
    CHECK_INT(rc->n_hosts, 5, "hosts");
    a = &rc->hosts[0];
    CHECK_STR(a->hostnames[0], "a.test", "hostnames are lowercased");
    CHECK(a->tls && a->cert != NULL, "bound certificate");
    CHECK(a->force_https, "forceHTTPS defaults to true with tls");
    CHECK(a->hsts.enabled && a->hsts.max_age == 600 && a->hsts.include_subdomains &&
              !a->hsts.preload,
          "hsts");
    CHECK_INT(a->n_upstreams, 2, "upstreams");
    CHECK_STR(a->upstreams[0].host, "127.0.0.1", "upstream host");
    CHECK_INT(a->upstreams[0].port, 9000, "upstream port");
    CHECK_STR(a->upstreams[0].path, "/base", "upstream path");
    CHECK_INT(a->upstreams[0].weight, 3, "upstream weight");
    CHECK(a->upstreams[1].tls, "https upstream");
    CHECK_STR(a->upstreams[1].host, "::1", "IPv6 upstream host without brackets");
    CHECK_INT(a->upstreams[1].port, 443, "https default port");
    CHECK_STR(a->upstreams[1].path, "/", "default path");
    CHECK(a->health_check.enabled && a->health_check.interval_ms == 10000 &&
              a->health_check.healthy_threshold == 2 && a->health_check.unhealthy_threshold == 3,
          "health check defaults");
    CHECK_STR(a->health_check.path, "/up", "health check path");
    CHECK(a->upstream_tls.enabled && a->upstream_tls.ca != NULL &&
              sk_X509_num(a->upstream_tls.ca) == 1,
          "upstream CA");
    CHECK_STR(a->upstream_tls.server_name, "backend.internal", "serverName lowercased");
    CHECK(a->connect_timeout_ms == 5000 && a->read_timeout_ms == 1500, "timeouts");
    CHECK(a->websocket && a->preserve_host, "websocket and preserveHost");
    CHECK(rc->hosts[1].min_version == RCONF_TLS_1_3, "minVersion 1.3");
    c = &rc->hosts[2];
    CHECK(c->tls && c->cert == NULL && !c->force_https, "tls without a bound certificate");
    plain = &rc->hosts[3];
    CHECK(!plain->tls && !plain->force_https && !plain->websocket, "plain host");
    CHECK(rc->hosts[4].client_auth.mode == RCONF_CLIENT_AUTH_REQUIRE &&
              rc->hosts[4].client_auth.store != NULL &&
              sk_X509_NAME_num(rc->hosts[4].client_auth.ca_names) == 1,
          "client auth");
    CHECK_INT(rc->n_certs, 2, "stored certificates");
    CHECK(rc->fallback != NULL, "fallback");
    CHECK(strlen(a->cert->fingerprint) == 64 && a->cert->not_after == NOW + 90 * DAY,
          "certificate metadata");
    CHECK_INT(a->cert->n_dns_names, 2, "SANs collected");
    rconf_unref(rc);
}

static void test_select(void)
{
    struct rconf *rc = parse_ok(full_doc, NULL, "parse for selection");
    struct rconf_sel s, t;
    static const struct {
        const char *name;
        int who;  /* which certificate: 0 a, 1 wild, 2 store, 3 store2, 4 fallback */
        int host; /* index of the host, -1 none */
    } cases[] = {
        {"a.test", 0, 0},        {"WWW.A.TEST.", 0, 0},    {"x.wild.test", 1, 1},
        {"wild.test", 4, -1},    {"a.b.wild.test", 4, -1}, {"s.test", 3, -1},
        {"y.store.test", 2, -1}, {"x.store.test", 2, -1},  {"c.test", 4, 2},
        {"plain.test", 4, -1},   {"unknown.test", 4, -1},  {"", 4, -1},
    };

    if (rc == NULL)
        return;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct rconf_cert *want[] = {rc->hosts[0].cert, rc->hosts[1].cert, rc->certs[0].cert,
                                           rc->certs[1].cert, rc->fallback};
        char what[128];
        int r = rconf_select(rc, cases[i].name, strlen(cases[i].name), &s);

        snprintf(what, sizeof(what), "select \"%s\"", cases[i].name);
        CHECK(r == 0 && s.cert == want[cases[i].who] &&
                  s.host == (cases[i].host < 0 ? NULL : &rc->hosts[cases[i].host]),
              what);
    }
    CHECK(rconf_select(rc, NULL, 0, &s) == 0 && s.cert == rc->fallback, "no SNI: fallback");
    rconf_select(rc, "x.wild.test", 11, &s);
    CHECK(s.min_version == RCONF_TLS_1_3, "selection carries the minimum version");
    rconf_select(rc, "m.test", 6, &s);
    CHECK(s.client_auth == &rc->hosts[4].client_auth, "selection carries client auth");

    /* 421: same certificate and policy, or not. */
    rconf_select(rc, "a.test", 6, &s);
    rconf_select(rc, "www.a.test", 10, &t);
    CHECK(rconf_sel_compatible(&s, &t), "two names of one host are compatible");
    rconf_select(rc, "x.wild.test", 11, &t);
    CHECK(!rconf_sel_compatible(&s, &t), "different certificates are not");
    rconf_select(rc, "c.test", 6, &s);
    rconf_select(rc, "unknown.test", 12, &t);
    CHECK(rconf_sel_compatible(&s, &t), "fallback under the default policy is compatible");
    rconf_select(rc, "m.test", 6, &t);
    CHECK(s.cert == t.cert && !rconf_sel_compatible(&s, &t),
          "same certificate, different client auth: not compatible");

    CHECK(rconf_find_host(rc, "plain.test", 10, false) == &rc->hosts[3], "find a plain host");
    CHECK(rconf_find_host(rc, "plain.test", 10, true) == NULL, "plain host is not a TLS host");
    CHECK(rconf_find_host(rc, "Q.Wild.Test", 11, true) == &rc->hosts[1], "find by wildcard");
    CHECK(rconf_find_host(rc, "a.test:443", 10, false) == NULL, "a port is not a name");
    CHECK(rconf_find_challenge(rc, "tok-1_A", 7) == &rc->challenges[0], "find a token");
    CHECK(rconf_find_challenge(rc, "tok-1_a", 7) == NULL, "tokens are case-sensitive");
    rconf_unref(rc);
}

static void test_no_fallback(void)
{
    struct rconf *rc = parse_ok(
        "{\"version\":1,\"generation\":0,\"listeners\":{\"https\":[\"[::]:443\"]},"
        "\"hosts\":[{\"name\":\"x\",\"hostnames\":[\"a.test\"],\"tls\":{\"certificatePEM\":"
        "@A_CERT@,\"privateKeyPEM\":@A_KEY@},\"upstreams\":[{\"url\":\"http://u\"}]}]}",
        NULL, "minimal document parses");
    struct rconf_sel s;

    if (rc == NULL)
        return;
    CHECK(rconf_select(rc, "a.test", 6, &s) == 0, "known name selects");
    CHECK_INT(rconf_select(rc, "b.test", 6, &s), -AEGIS_E_NOTFOUND, "unknown name: not found");
    CHECK_INT(rconf_select(rc, NULL, 0, &s), -AEGIS_E_NOTFOUND, "no name: not found");
    CHECK_INT(rc->redirect_port, 443, "redirect port");
    rconf_unref(rc);
}

static void test_reuse(void)
{
    struct rconf *one = parse_ok(full_doc, NULL, "first generation");
    struct rconf *two = parse_ok(full_doc, one, "second generation with prev");

    if (one != NULL && two != NULL) {
        CHECK(two->hosts[0].cert == one->hosts[0].cert, "identical certificate is shared");
        CHECK(two->fallback == one->fallback, "fallback is shared");
        rconf_unref(one);
        one = NULL;
        CHECK(two->hosts[0].cert->leaf != NULL, "shared certificate outlives the old snapshot");
        CHECK(rconf_ref(two) == two, "ref returns the snapshot");
        rconf_unref(two);
    }
    rconf_unref(one);
    rconf_unref(two);
    rconf_unref(NULL);
}

/* A host template with %s for the host's fields after the name. */
#define DOC(hostfields)                                                                            \
    "{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},"                 \
    "\"hosts\":[{\"name\":\"h\",\"hostnames\":[\"h.test\"]," hostfields "}]}"
#define UP "\"upstreams\":[{\"url\":\"http://127.0.0.1:1\"}]"

static const struct {
    const char *doc;
    int code;
    const char *path; /* NULL: the document */
    const char *msg;  /* a substring of the message */
} bad[] = {
    {"{\"version\": 1,", -AEGIS_E_SYNTAX, NULL, "not valid JSON"},
    {"[1]", -AEGIS_E_INVALID, NULL, "must be a JSON object"},
    {"{\"version\":1,\"version\":1}", -AEGIS_E_SYNTAX, NULL, "duplicate"},
    {"{\"version\":2,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[]}",
     -AEGIS_E_INVALID, "version", "not supported"},
    {"{\"version\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[]}", -AEGIS_E_INVALID,
     "generation", "required"},
    {"{\"version\":1,\"generation\":-1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[]}",
     -AEGIS_E_INVALID, "generation", "out of range"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hostz\":[]}",
     -AEGIS_E_INVALID, "hostz", "did you mean \"hosts\""},
    {"{\"version\":1,\"generation\":1,\"listeners\":{},\"hosts\":[]}", -AEGIS_E_INVALID,
     "listeners", "no address"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"1.2.3:80\"]},\"hosts\":[]}",
     -AEGIS_E_INVALID, "listeners.http[0]", "not an address"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"[::1]80\"]},\"hosts\":[]}",
     -AEGIS_E_INVALID, "listeners.http[0]", "not an address"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:0\"]},\"hosts\":[]}",
     -AEGIS_E_INVALID, "listeners.http[0]", "not an address"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"],"
     "\"https\":[\"127.0.0.1:80\"]},\"hosts\":[]}",
     -AEGIS_E_INVALID, "listeners.https[0]", "listed twice"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"workers\":"
     "999,\"hosts\":[]}",
     -AEGIS_E_INVALID, "workers", "out of range"},
    {DOC(UP ",\"forceHTTPS\":true"), -AEGIS_E_INVALID, "hosts[0].forceHTTPS", "no tls"},
    {DOC("\"upstreams\":[]"), -AEGIS_E_INVALID, "hosts[0].upstreams", "give 1 to"},
    {DOC("\"upstreams\":[{\"url\":\"ftp://x\"}]"), -AEGIS_E_INVALID, "hosts[0].upstreams[0].url",
     "not a valid http"},
    {DOC("\"upstreams\":[{\"url\":\"http://[zz]:80\"}]"), -AEGIS_E_INVALID,
     "hosts[0].upstreams[0].url", ""},
    {DOC("\"upstreams\":[{\"url\":\"http://x\",\"weight\":0}]"), -AEGIS_E_INVALID,
     "hosts[0].upstreams[0].weight", "out of range"},
    {DOC(UP ",\"tls\":{\"certificatePEM\":\"garbage\",\"privateKeyPEM\":@A_KEY@}"),
     -AEGIS_E_INVALID, "hosts[0].tls.certificatePEM", ""},
    {DOC(UP ",\"tls\":{\"certificatePEM\":@A_CERT@,\"privateKeyPEM\":@OTHER_KEY@}"),
     -AEGIS_E_INVALID, "hosts[0].tls.privateKeyPEM", "does not belong"},
    {DOC(UP ",\"tls\":{\"certificatePEM\":@A_CERT@,\"privateKeyPEM\":@A_KEY_ENC@}"),
     -AEGIS_E_INVALID, "hosts[0].tls.privateKeyPEM", "ncrypted"},
    {DOC(UP ",\"tls\":{\"certificatePEM\":@A_CERT@,\"privateKeyPEM\":@A_CERT@}"), -AEGIS_E_INVALID,
     "hosts[0].tls.privateKeyPEM", ""},
    {DOC(UP ",\"tls\":{\"certificatePEM\":@A_CERT@}"), -AEGIS_E_INVALID,
     "hosts[0].tls.privateKeyPEM", "required"},
    {DOC(UP ",\"tls\":{\"minVersion\":\"1.1\"}"), -AEGIS_E_INVALID, "hosts[0].tls.minVersion",
     "not one of"},
    {DOC(UP ",\"tls\":{\"clientAuth\":{\"mode\":\"require\"}}"), -AEGIS_E_INVALID,
     "hosts[0].tls.clientAuth.caPEM", "required"},
    {DOC(UP ",\"tls\":{\"clientAuth\":{\"mode\":\"optional\",\"caPEM\":\"x\"}}"), -AEGIS_E_INVALID,
     "hosts[0].tls.clientAuth.caPEM", ""},
    {DOC(UP ",\"upstreamTLS\":{\"insecureSkipVerify\":true,\"caPEM\":@CA@}"), -AEGIS_E_INVALID,
     "hosts[0].upstreamTLS.caPEM", "insecureSkipVerify"},
    {DOC(UP ",\"upstreamTLS\":{\"clientCertPEM\":@A_CERT@}"), -AEGIS_E_INVALID,
     "hosts[0].upstreamTLS.clientKeyPEM", "required"},
    {DOC(UP ",\"upstreamTLS\":{\"serverName\":\"bad name\"}"), -AEGIS_E_INVALID,
     "hosts[0].upstreamTLS.serverName", "not a valid host name"},
    {DOC(UP ",\"hsts\":{\"maxAge\":\"1\"}"), -AEGIS_E_INVALID, "hosts[0].hsts.maxAge",
     "must be an integer"},
    {DOC(UP ",\"healthCheck\":{\"path\":\"nope\"}"), -AEGIS_E_INVALID, "hosts[0].healthCheck.path",
     ""},
    {DOC(UP ",\"timeouts\":{\"readMs\":0}"), -AEGIS_E_INVALID, "hosts[0].timeouts.readMs",
     "out of range"},
    {DOC(UP ",\"websocket\":1"), -AEGIS_E_INVALID, "hosts[0].websocket", "must be a boolean"},
    {DOC(UP ",\"upstream\":[]"), -AEGIS_E_INVALID, "hosts[0].upstream", "did you mean"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":["
     "{\"name\":\"h\",\"hostnames\":[\"h.test\"]," UP "},"
     "{\"name\":\"i\",\"hostnames\":[\"H.TEST\"]," UP "}]}",
     -AEGIS_E_INVALID, "hosts[1].hostnames[0]", "already served by host \"h\""},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":["
     "{\"name\":\"h\",\"hostnames\":[\"h.test\"]," UP "},"
     "{\"name\":\"h\",\"hostnames\":[\"i.test\"]," UP "}]}",
     -AEGIS_E_INVALID, "hosts[1].name", "names two hosts"},
    {DOC(UP ",\"hostnames\":[\"a..b\"]"), -AEGIS_E_SYNTAX, NULL, "duplicate"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":["
     "{\"name\":\"h\",\"hostnames\":[\"a..b\"]," UP "}]}",
     -AEGIS_E_INVALID, "hosts[0].hostnames[0]", "not a valid DNS name"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[],"
     "\"acmeChallenges\":[{\"token\":\"abc\",\"keyAuthorization\":\"abd.x\"}]}",
     -AEGIS_E_INVALID, "acmeChallenges[0].keyAuthorization", "the token"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[],"
     "\"acmeChallenges\":[{\"token\":\"a/c\",\"keyAuthorization\":\"a/c.x\"}]}",
     -AEGIS_E_INVALID, "acmeChallenges[0].token", "base64url"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[],"
     "\"acmeChallenges\":[{\"token\":\"t\",\"keyAuthorization\":\"t.x\"},"
     "{\"token\":\"t\",\"keyAuthorization\":\"t.y\"}]}",
     -AEGIS_E_INVALID, "acmeChallenges[1].token", "listed twice"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[],"
     "\"certificates\":[{\"name\":\"c\",\"certificatePEM\":@A_CERT@,\"privateKeyPEM\":@A_KEY@},"
     "{\"name\":\"c\",\"certificatePEM\":@S_CERT@,\"privateKeyPEM\":@S_KEY@}]}",
     -AEGIS_E_INVALID, "certificates[1].name", "names two certificates"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[],"
     "\"fallback\":{\"certificatePEM\":@FB_CERT@,\"privateKeyPEM\":@A_KEY@}}",
     -AEGIS_E_INVALID, "fallback.privateKeyPEM", "does not belong"},
    {"{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"127.0.0.1:80\"]},\"hosts\":[],"
     "\"fallback\":{\"certificatePEM\":\"-----BEGIN CERTIFICATE-----\\u0000\","
     "\"privateKeyPEM\":@A_KEY@}}",
     -AEGIS_E_SYNTAX, NULL, "not allowed"},
};

/* A host whose certificatePEM and privateKeyPEM are the concatenations cert and key. */
#define DOC_TLS(cert, key)                                                                         \
    DOC(UP ",\"tls\":{\"certificatePEM\":\"" cert "\",\"privateKeyPEM\":\"" key "\"}")

static void test_key_forms(void)
{
    struct rconf *rc = parse_ok(DOC_TLS("@~A_CERT@", "@~A_KEY_TRAD@"), NULL,
                                "a traditional EC PRIVATE KEY is accepted");

    rconf_unref(rc);
    rc = parse_ok(DOC_TLS("@~A_KEY@@~A_CERT@", "@~A_CERT@@~A_KEY@"), NULL,
                  "the key is found after a certificate, the chain after a key");
    rconf_unref(rc);
}

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *doc = expand(bad[i].doc);
        struct aegis_diags d;
        struct rconf *rc = (struct rconf *)1;
        char what[256];
        bool found = false;
        int r;

        aegis_diags_init(&d);
        r = rconf_parse(doc, strlen(doc), NULL, &rc, &d);
        for (size_t j = 0; j < d.n; j++) {
            const struct aegis_diag *dg = &d.v[j];

            if (dg->sev == AEGIS_SEV_ERROR &&
                (bad[i].path == NULL ? dg->path == NULL
                                     : dg->path != NULL && strcmp(dg->path, bad[i].path) == 0) &&
                strstr(dg->msg, bad[i].msg) != NULL)
                found = true;
        }
        snprintf(what, sizeof(what), "bad document %zu: %s: %s", i,
                 bad[i].path ? bad[i].path : "(document)", bad[i].msg);
        CHECK(r == bad[i].code && rc == NULL && found, what);
        if (!found || r != bad[i].code) {
            printf("#   returned %d\n", r);
            for (size_t j = 0; j < d.n; j++) {
                aegis_diag_format(&d.v[j], what, sizeof(what));
                printf("#   %s\n", what);
            }
        }
        aegis_diags_dispose(&d);
        free(doc);
    }
}

static void test_every_error(void)
{
    static const char tmpl[] =
        "{\"version\":1,\"generation\":1,\"listeners\":{\"http\":[\"nope\"]},\"hosts\":["
        "{\"name\":\"h\",\"hostnames\":[\"h.test\"],\"upstreams\":[{\"url\":\"x\"}],"
        "\"tls\":{\"certificatePEM\":@A_CERT@,\"privateKeyPEM\":@OTHER_KEY@}},"
        "{\"name\":\"i\",\"hostnames\":[\"h.test\"],\"upstreams\":[{\"url\":\"http://ok\"}]}],"
        "\"acmeChallenges\":[{\"token\":\"t\",\"keyAuthorization\":\"u.v\"}]}";
    char *doc = expand(tmpl), *js;
    struct aegis_diags d;
    struct rconf *rc = NULL;
    json_t *parsed;

    aegis_diags_init(&d);
    CHECK(rconf_parse(doc, strlen(doc), NULL, &rc, &d) == -AEGIS_E_INVALID, "refused");
    CHECK_INT(d.nerrors, 5, "all five errors are reported");
    js = rconf_diags_to_json(&d);
    parsed = json_loads(js, 0, NULL);
    CHECK(parsed != NULL && json_array_size(json_object_get(parsed, "errors")) == 5 &&
              json_is_string(
                  json_object_get(json_array_get(json_object_get(parsed, "errors"), 0), "path")),
          "errors as JSON");
    json_decref(parsed);
    free(js);
    aegis_diags_dispose(&d);
    free(doc);
}

static void test_warnings(void)
{
    static const char tmpl[] =
        DOC("\"upstreams\":[{\"url\":\"https://u\"}],\"upstreamTLS\":{\"insecureSkipVerify\":true},"
            "\"tls\":{\"certificatePEM\":@A_CERT@,\"privateKeyPEM\":@A_KEY@}");
    char *doc = expand(tmpl);
    struct aegis_diags d;
    struct rconf *rc = NULL;

    aegis_diags_init(&d);
    CHECK(rconf_parse(doc, strlen(doc), NULL, &rc, &d) == 0 && rc != NULL,
          "warnings do not refuse the document");
    CHECK_INT(d.nwarnings, 2, "insecureSkipVerify and an uncovered hostname are warned about");
    rconf_unref(rc);
    aegis_diags_dispose(&d);
    free(doc);
}

static void test_limits(void)
{
    struct aegis_diags d;
    struct rconf *rc = NULL;
    char buf[8];

    aegis_diags_init(&d);
    CHECK_INT(rconf_parse("{}", (size_t)AEGIS_LIMIT_RCONF_BYTES + 1, NULL, &rc, &d), -AEGIS_E_LIMIT,
              "oversized document refused before parsing");
    aegis_diags_dispose(&d);
    CHECK_INT(rconf_name_normalize("AbC.", 4, buf, sizeof(buf)), 3, "normalize");
    CHECK_STR(buf, "abc", "normalized name");
    CHECK_INT(rconf_name_normalize("abcdefgh", 8, buf, sizeof(buf)), 0, "too long for the buffer");
    CHECK_INT(rconf_name_normalize(".", 1, buf, sizeof(buf)), 0, "empty");
}

int main(void)
{
    make_certs();
    test_full();
    test_select();
    test_no_fallback();
    test_key_forms();
    test_reuse();
    test_bad();
    test_every_error();
    test_warnings();
    test_limits();
    free(ca_cert);
    free(a_cert);
    free(a_key);
    free(wild_cert);
    free(wild_key);
    free(store_cert);
    free(store_key);
    free(store2_cert);
    free(store2_key);
    free(fb_cert);
    free(fb_key);
    free(other_key);
    free(a_key_enc);
    free(a_key_trad);
    return check_done();
}
