/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/status.c, with time moved by hand: RFC 3339 times both ways;
 * conditions whose lastTransitionTime moves only when their status does; a Certificate's status
 * through missing -> issued -> restarts -> renewing -> failing -> recovered, each step checked
 * field by field; failure bookkeeping read back after a restart; Hosts bound to a missing or a
 * not-ready Certificate; no private key in any status even when a message carries one; and the
 * JSON form, which round-trips and is refused when it breaks the schema.
 *
 * With --dump, prints one JSON line per sample status ({"kind": ..., "status": ...}) for
 * tests/controller/test_status_schema.py to validate against the generated JSON Schemas.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "check.h"
#include "decide.h"
#include "status.h"

#define T0 1750000000LL /* 2025-06-15T15:06:40Z */
#define MIN 60LL
#define HOUR 3600LL
#define DAY 86400LL

static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                              "-----END PRIVATE KEY-----\n";

/* ---- times ---- */

static void test_times(void)
{
    static const struct {
        int64_t t;
        const char *s;
    } fmt[] = {
        {0, "1970-01-01T00:00:00Z"},
        {T0, "2025-06-15T15:06:40Z"},
        {951782400, "2000-02-29T00:00:00Z"},
        {-1, "1969-12-31T23:59:59Z"},
        {253402300799LL, "9999-12-31T23:59:59Z"},
        {-62167219200LL, "0000-01-01T00:00:00Z"},
    };
    static const struct {
        const char *s;
        int rc;
        int64_t t;
    } parse[] = {
        {"2025-06-15T15:06:40Z", 0, T0},
        {"2025-06-15t15:06:40z", 0, T0},
        {"2025-06-15T15:06:40.999999Z", 0, T0},
        {"2025-06-15T17:06:40+02:00", 0, T0},
        {"2025-06-15T10:06:40-05:00", 0, T0},
        {"2000-02-29T00:00:00Z", 0, 951782400},
        {"2016-12-31T23:59:60Z", 0, 1483228800},
        {"2001-02-29T00:00:00Z", -AEGIS_E_INVALID, 0},
        {"1900-02-29T00:00:00Z", -AEGIS_E_INVALID, 0},
        {"2025-13-01T00:00:00Z", -AEGIS_E_INVALID, 0},
        {"2025-06-31T00:00:00Z", -AEGIS_E_INVALID, 0},
        {"2025-06-15T24:00:00Z", -AEGIS_E_INVALID, 0},
        {"2025-06-15T15:06:40", -AEGIS_E_INVALID, 0},
        {"2025-06-15 15:06:40Z", -AEGIS_E_INVALID, 0},
        {"2025-06-15T15:06:40.Z", -AEGIS_E_INVALID, 0},
        {"2025-06-15T15:06:40+0200", -AEGIS_E_INVALID, 0},
        {"2025-06-15T15:06:40Zjunk", -AEGIS_E_INVALID, 0},
        {"", -AEGIS_E_INVALID, 0},
    };
    char buf[STATUS_TIME_MAX], name[128];
    int64_t t;
    bool ok = true;

    for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
        snprintf(name, sizeof(name), "format %" PRId64, fmt[i].t);
        CHECK_INT(status_time_format(fmt[i].t, buf, sizeof(buf)), 0, name);
        CHECK_STR(buf, fmt[i].s, name);
    }
    CHECK_INT(status_time_format(253402300800LL, buf, sizeof(buf)), -AEGIS_E_INVALID,
              "year 10000 cannot be written");
    CHECK_STR(buf, "", "... and leaves an empty string");
    CHECK_INT(status_time_format(T0, buf, 20), -AEGIS_E_INVALID, "a short buffer is refused");
    for (size_t i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
        int rc;

        t = 0;
        rc = status_time_parse(parse[i].s, &t);
        snprintf(name, sizeof(name), "parse \"%s\"", parse[i].s);
        CHECK(rc == parse[i].rc && (rc != 0 || t == parse[i].t), name);
    }
    for (int64_t x = -62167219200LL; x < 253402300799LL; x += 7777777 * 13 + 17) {
        if (status_time_format(x, buf, sizeof(buf)) != 0 || status_time_parse(buf, &t) != 0 ||
            t != x)
            ok = false;
    }
    CHECK(ok, "format then parse is the identity over the whole range");
}

/* ---- conditions ---- */

static void test_conditions(void)
{
    struct aegis_host_status st;
    const struct aegis_condition *c;
    char t0[STATUS_TIME_MAX], t1[STATUS_TIME_MAX];
    struct aegis_condition **v = &st.conditions.v;
    size_t *n = &st.conditions.n;

    memset(&st, 0, sizeof(st));
    status_time_format(T0, t0, sizeof(t0));
    status_time_format(T0 + HOUR, t1, sizeof(t1));

    CHECK(
        status_condition_set(v, n, "Ready", AEGIS_CONDITION_STATUS_FALSE, "Pending", "wait", 1, T0),
        "a new condition is a change");
    c = status_condition_find(*v, *n, "Ready");
    CHECK(c != NULL && c->status == AEGIS_CONDITION_STATUS_FALSE, "set");
    CHECK_STR(c ? c->last_transition_time : NULL, t0, "a new condition: transition now");

    CHECK(!status_condition_set(v, n, "Ready", AEGIS_CONDITION_STATUS_FALSE, "Pending", "wait", 1,
                                T0 + MIN),
          "the same again later: no change");
    c = status_condition_find(*v, *n, "Ready");
    CHECK_STR(c->last_transition_time, t0, "... and the time stays");

    CHECK(status_condition_set(v, n, "Ready", AEGIS_CONDITION_STATUS_FALSE, "Failing",
                               "other words", 2, T0 + 2 * MIN),
          "same status, new reason, message and generation: a change");
    c = status_condition_find(*v, *n, "Ready");
    CHECK_STR(c->last_transition_time, t0, "... but not a transition: the time stays");
    CHECK_STR(c->reason, "Failing", "reason replaced");
    CHECK_STR(c->message, "other words", "message replaced");
    CHECK_INT(c->observed_generation, 2, "observedGeneration replaced");

    CHECK(status_condition_set(v, n, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", "ok", 2,
                               T0 + HOUR),
          "status False -> True: a change");
    c = status_condition_find(*v, *n, "Ready");
    CHECK_STR(c->last_transition_time, t1, "a transition: the time moves");

    status_condition_set(v, n, "Issuing", AEGIS_CONDITION_STATUS_TRUE, "Renewing", NULL, 2,
                         T0 + 2 * HOUR);
    CHECK_INT(*n, 2, "a second type is a second condition");
    c = status_condition_find(*v, *n, "Ready");
    CHECK_STR(c->last_transition_time, t1, "other conditions untouched");
    c = status_condition_find(*v, *n, "Issuing");
    CHECK(c != NULL && !API_HAS(c, API_F_CONDITION_MESSAGE), "a NULL message is absent");
    CHECK(status_condition_find(*v, *n, "Nope") == NULL, "an absent type is not found");

    status_condition_set(v, n, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", key_pem, -3, T0);
    c = status_condition_find(*v, *n, "Ready");
    CHECK(strstr(c->message, "PRIVATE KEY") == NULL, "a message with a key is redacted");
    CHECK_INT(c->observed_generation, 0, "a negative generation is clamped to 0");
    status_condition_set(v, n, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", "bad \xff\xfe utf-8",
                         1, T0);
    c = status_condition_find(*v, *n, "Ready");
    CHECK_STR(c->message, "bad ?? utf-8", "invalid UTF-8 becomes '?'");
    api_dispose(&api_t_host_status, &st);
}

static void test_condition_truncation(void)
{
    struct aegis_issuer_status st;
    const struct aegis_condition *c;
    char *big = aegis_malloc(3 * STATUS_MESSAGE_MAX);

    memset(&st, 0, sizeof(st));
    /* "é" is two bytes: a cut must not split one. */
    for (size_t i = 0; i + 2 < 3 * STATUS_MESSAGE_MAX; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[3 * STATUS_MESSAGE_MAX - 2] = '\0';
    status_issuer_update(&st, 1, false, "Broken", big, T0);
    c = status_condition_find(st.conditions.v, st.conditions.n, "Ready");
    CHECK(c != NULL && strlen(c->message) < STATUS_MESSAGE_MAX, "a long message is cut");
    CHECK(c != NULL && strlen(c->message) % 2 == 0, "... at a character boundary");
    free(big);
    api_dispose(&api_t_issuer_status, &st);
}

/* ---- Certificates ---- */

struct cert {
    struct aegis_certificate_spec spec;
    char *names[2];
    struct store_meta meta;
    bool have;
    struct decide_spec_digest digest;
    bool have_digest;
    struct decide_failures fail;
    bool issuer_ready;
    struct decide_cert_result d;
    struct aegis_certificate_status st;
};

static void cert_init(struct cert *c)
{
    memset(c, 0, sizeof(*c));
    c->names[0] = "a.test";
    c->names[1] = "b.test";
    c->spec.present = (UINT64_C(1) << API_F_CERTIFICATE_SPEC_DNS_NAMES) |
                      (UINT64_C(1) << API_F_CERTIFICATE_SPEC_ISSUER_REF);
    c->spec.dns_names.v = c->names;
    c->spec.dns_names.n = 2;
    c->spec.issuer_ref.name = "local";
    c->spec.duration_ms = 90 * DAY * 1000;
    store_meta_init(&c->meta);
    c->issuer_ready = true;
}

static void cert_dispose(struct cert *c)
{
    store_meta_dispose(&c->meta);
    api_dispose(&api_t_certificate_status, &c->st);
}

/* Decides at now and updates the status from the decision; returns whether it changed. */
static bool cert_step(struct cert *c, int64_t now)
{
    struct decide_cert_input in = {.spec = &c->spec,
                                   .generation = 3,
                                   .stored = c->have ? &c->meta : NULL,
                                   .stored_digest = c->have_digest ? &c->digest : NULL,
                                   .failures = &c->fail,
                                   .issuer_ready = c->issuer_ready};
    struct status_cert_input sin = {.decision = &c->d,
                                    .stored = c->have ? &c->meta : NULL,
                                    .failures = &c->fail,
                                    .issuer_message = "Issuer default/local: the CA is missing"};

    decide_certificate(&in, now, &c->d);
    return status_certificate_update(&c->st, &sin, now);
}

static void cert_issue(struct cert *c, int64_t now)
{
    uint64_t revision = c->meta.revision;

    store_meta_dispose(&c->meta);
    store_meta_init(&c->meta);
    c->meta.not_before = now - 60;
    c->meta.not_after = now + 90 * DAY;
    c->meta.serial = aegis_strdup("0A1B2C");
    c->meta.issuer = aegis_strdup("CN=Aegis Local Intermediate,O=Aegis");
    c->meta.source = aegis_strdup("ca");
    c->meta.revision = revision + 1;
    snprintf(c->meta.fingerprint, sizeof(c->meta.fingerprint), "%064x", 7u);
    c->have = true;
    c->digest = c->d.digest;
    c->have_digest = true;
    decide_failure_clear(&c->fail);
}

static const struct aegis_condition *cond(const struct cert *c, const char *type)
{
    return status_condition_find(c->st.conditions.v, c->st.conditions.n, type);
}

static void check_cond(const struct cert *c, const char *type, enum aegis_condition_status want,
                       const char *reason, const char *what)
{
    const struct aegis_condition *x = cond(c, type);
    char name[160];

    snprintf(name, sizeof(name), "%s: %s is %s, %s", what, type, api_condition_status_names[want],
             reason);
    CHECK(x != NULL && x->status == want && x->reason != NULL && strcmp(x->reason, reason) == 0,
          name);
    if (x != NULL && (x->status != want || x->reason == NULL || strcmp(x->reason, reason) != 0))
        printf("#   got %s %s: %s\n", api_condition_status_names[x->status],
               x->reason ? x->reason : "(null)", x->message ? x->message : "(null)");
}

static void test_certificate_flow(void)
{
    struct cert c;
    char t[STATUS_TIME_MAX], ltt_ready[STATUS_TIME_MAX];
    int64_t renewal;
    struct decide_failures back;

    cert_init(&c);

    /* Missing: Ready False DoesNotExist, Issuing True. */
    CHECK(cert_step(&c, T0), "first status: a change");
    CHECK_INT(c.st.observed_generation, 3, "observedGeneration");
    CHECK(API_HAS(&c.st, API_F_CERTIFICATE_STATUS_OBSERVED_GENERATION), "... present");
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_FALSE, "DoesNotExist", "missing");
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_TRUE, "DoesNotExist", "missing");
    CHECK(c.st.not_after == NULL && !API_HAS(&c.st, API_F_CERTIFICATE_STATUS_REVISION),
          "missing: no certificate facts");

    /* Issued: the facts are filled, Ready True, Issuing False. */
    cert_issue(&c, T0 + 5);
    CHECK(cert_step(&c, T0 + 6), "issued: a change");
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", "issued");
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_FALSE, "UpToDate", "issued");
    status_time_format(T0 + 5 - 60, t, sizeof(t));
    CHECK_STR(c.st.not_before, t, "notBefore");
    status_time_format(T0 + 5 + 90 * DAY, t, sizeof(t));
    CHECK_STR(c.st.not_after, t, "notAfter");
    status_time_format(c.d.renewal_time, t, sizeof(t));
    CHECK_STR(c.st.renewal_time, t, "renewalTime from the decision");
    CHECK_INT(c.st.revision, 1, "revision");
    CHECK_STR(c.st.serial_number, "0A1B2C", "serialNumber");
    CHECK_STR(c.st.issuer, "CN=Aegis Local Intermediate,O=Aegis", "issuer");
    CHECK_INT(strlen(c.st.fingerprint_sha256), 64, "fingerprintSHA256");
    CHECK(!API_HAS(&c.st, API_F_CERTIFICATE_STATUS_FAILED_ISSUANCE_ATTEMPTS) &&
              c.st.last_failure_time == NULL && c.st.next_retry_time == NULL,
          "no failure bookkeeping");
    snprintf(ltt_ready, sizeof(ltt_ready), "%s", cond(&c, "Ready")->last_transition_time);
    renewal = c.d.renewal_time;

    /* Restarts and re-reads before renewalTime: nothing changes, no time moves. */
    CHECK(!cert_step(&c, T0 + HOUR), "an hour later: no change");
    CHECK(!cert_step(&c, T0 + 30 * DAY), "a month later: no change");
    CHECK_STR(cond(&c, "Ready")->last_transition_time, ltt_ready, "Ready's time kept");

    /* Renewing: still Ready (same time), Issuing True. */
    CHECK(cert_step(&c, renewal), "renewalTime: a change");
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", "renewing");
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_TRUE, "Renewing", "renewing");
    CHECK_STR(cond(&c, "Ready")->last_transition_time, ltt_ready, "renewing: Ready's time kept");
    status_time_format(renewal, t, sizeof(t));
    CHECK_STR(cond(&c, "Issuing")->last_transition_time, t, "Issuing's time moved");

    /* The renewal fails: bookkeeping, Issuing False with the failure's words, still Ready. */
    decide_failure_record(&c.fail, renewal, c.d.digest.hex, "Rejected",
                          "the CA refused the order: rateLimited");
    cert_step(&c, renewal + 10);
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", "failed renewal");
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_FALSE, "Rejected", "failed renewal");
    CHECK_STR(cond(&c, "Issuing")->message, "the CA refused the order: rateLimited",
              "the failure's message");
    CHECK_INT(c.st.failed_issuance_attempts, 1, "failedIssuanceAttempts");
    status_time_format(renewal, t, sizeof(t));
    CHECK_STR(c.st.last_failure_time, t, "lastFailureTime");
    status_time_format(renewal + MIN, t, sizeof(t));
    CHECK_STR(c.st.next_retry_time, t, "nextRetryTime: one minute later");
    CHECK(strstr(cond(&c, "Ready")->message, "1 attempt failed") != NULL,
          "Ready's message tells of the failure");

    /* After a restart the failures come back from the status (without their spec hash). */
    status_certificate_failures(&c.st, &back);
    CHECK_INT(back.attempts, 1, "restored attempts");
    CHECK_INT(back.last_failure_time, renewal, "restored lastFailureTime");
    CHECK_STR(back.reason, "Rejected", "restored reason");
    CHECK_STR(back.message, "the CA refused the order: rateLimited", "restored message");
    CHECK_STR(back.spec_hash, "", "the spec hash is not in the status");

    /* A second failure doubles the wait. */
    decide_failure_record(&c.fail, renewal + MIN, c.d.digest.hex, "Rejected", "again");
    cert_step(&c, renewal + MIN + 1);
    status_time_format(renewal + 3 * MIN, t, sizeof(t));
    CHECK_STR(c.st.next_retry_time, t, "second failure: two minutes later");
    CHECK_INT(c.st.failed_issuance_attempts, 2, "two attempts");

    /* The Issuer goes away. */
    c.issuer_ready = false;
    cert_step(&c, renewal + 10 * MIN);
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_FALSE, "IssuerNotReady", "no Issuer");
    CHECK(strstr(cond(&c, "Issuing")->message, "the CA is missing") != NULL,
          "the Issuer's problem is in the message");
    status_certificate_failures(&c.st, &back);
    CHECK_STR(back.reason, "", "IssuerNotReady is not taken for a failure reason");
    c.issuer_ready = true;

    /* Recovered: failures cleared, a new revision. */
    cert_step(&c, renewal + 10 * MIN);
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_TRUE, "Renewing", "retry");
    cert_issue(&c, renewal + 10 * MIN);
    cert_step(&c, renewal + 11 * MIN);
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_TRUE, "Ready", "renewed");
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_FALSE, "UpToDate", "renewed");
    CHECK_STR(cond(&c, "Ready")->last_transition_time, ltt_ready,
              "Ready stayed True through the renewal: its time never moved");
    CHECK_INT(c.st.revision, 2, "revision 2");
    CHECK(!API_HAS(&c.st, API_F_CERTIFICATE_STATUS_FAILED_ISSUANCE_ATTEMPTS) &&
              c.st.last_failure_time == NULL && c.st.next_retry_time == NULL,
          "failures cleared");

    /* The spec changes: Ready False SpecChanged naming the field, the old one still served. */
    c.names[1] = "c.test";
    cert_step(&c, renewal + 12 * MIN);
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_FALSE, "SpecChanged", "spec changed");
    CHECK(strstr(cond(&c, "Ready")->message, "spec.dnsNames changed") != NULL,
          "the message names the field");
    CHECK(strstr(cond(&c, "Ready")->message, "served meanwhile") != NULL,
          "... and says the previous certificate is served");
    check_cond(&c, "Issuing", AEGIS_CONDITION_STATUS_TRUE, "SpecChanged", "spec changed");

    /* Expired and not renewed: Ready False Expired. */
    cert_step(&c, c.meta.not_after);
    check_cond(&c, "Ready", AEGIS_CONDITION_STATUS_FALSE, "Expired", "expired");
    cert_dispose(&c);
}

static void test_certificate_no_key_material(void)
{
    struct cert c;
    json_t *j;
    char *text;

    cert_init(&c);
    decide_failure_record(&c.fail, T0, NULL, "SigningFailed", key_pem);
    cert_step(&c, T0 + 1);
    j = status_to_json(&api_t_certificate_status, &c.st);
    text = json_dumps(j, JSON_COMPACT);
    CHECK(text != NULL && strstr(text, "PRIVATE KEY") == NULL && strstr(text, "MC4CAQ") == NULL,
          "a failure message holding a key never reaches the status JSON");
    free(text);
    json_decref(j);

    /* Even a status built by hand with a key in it is redacted on the way out. */
    free(c.st.conditions.v[0].message);
    c.st.conditions.v[0].message = aegis_strdup(key_pem);
    j = status_to_json(&api_t_certificate_status, &c.st);
    text = json_dumps(j, JSON_COMPACT);
    CHECK(text != NULL && strstr(text, "PRIVATE KEY") == NULL, "status_to_json redacts");
    free(text);
    json_decref(j);
    cert_dispose(&c);
}

/* ---- Hosts ---- */

static void test_host(void)
{
    struct aegis_host_status st;
    struct decide_host_input hin = {.tls = true};
    struct decide_host_result d;
    struct status_host_input in = {
        .decision = &d, .generation = 7, .cert_ns = "default", .cert_name = "app-tls"};
    const struct aegis_condition *c;

    memset(&st, 0, sizeof(st));
    decide_host(&hin, &d);
    status_host_update(&st, &in, T0);
    c = status_condition_find(st.conditions.v, st.conditions.n, "Ready");
    CHECK(c != NULL && c->status == AEGIS_CONDITION_STATUS_FALSE, "missing Certificate: not ready");
    CHECK_STR(c ? c->reason : NULL, "CertificateNotFound", "... CertificateNotFound");
    CHECK(c && strstr(c->message, "default/app-tls does not exist") != NULL &&
              strstr(c->message, "fallback") != NULL,
          "... naming it and the fallback");
    CHECK_INT(st.observed_generation, 7, "observedGeneration");

    hin.cert_found = true;
    hin.cert_valid = true;
    decide_host(&hin, &d);
    in.cert_message = "spec.dnsNames changed since the certificate was issued";
    status_host_update(&st, &in, T0 + 1);
    c = status_condition_find(st.conditions.v, st.conditions.n, "Ready");
    CHECK_STR(c->reason, "CertificateNotReady", "not ready Certificate: CertificateNotReady");
    CHECK(strstr(c->message, "spec.dnsNames changed") != NULL &&
              strstr(c->message, "previous certificate") != NULL,
          "... with its reason, and the previous certificate still served");

    hin.cert_valid = false;
    decide_host(&hin, &d);
    status_host_update(&st, &in, T0 + 2);
    c = status_condition_find(st.conditions.v, st.conditions.n, "Ready");
    CHECK(strstr(c->message, "fallback") != NULL, "no valid certificate: the fallback");

    hin.cert_valid = hin.cert_ready = true;
    decide_host(&hin, &d);
    in.cert_message = NULL;
    CHECK(status_host_update(&st, &in, T0 + 3), "ready: a change");
    c = status_condition_find(st.conditions.v, st.conditions.n, "Ready");
    CHECK(c->status == AEGIS_CONDITION_STATUS_TRUE && strcmp(c->reason, "Ready") == 0,
          "ready Certificate: Ready");
    CHECK(!status_host_update(&st, &in, T0 + 4), "the same again: no change");
    api_dispose(&api_t_host_status, &st);
}

/* ---- JSON ---- */

static void test_json_roundtrip(void)
{
    struct cert c;
    struct aegis_certificate_status back;
    struct aegis_err err;
    json_t *a, *b;

    cert_init(&c);
    cert_step(&c, T0);
    cert_issue(&c, T0);
    decide_failure_record(&c.fail, T0 + DAY, "", "Rejected", "no \"quotes\" \xc3\xa9");
    cert_step(&c, c.d.renewal_time);
    a = status_to_json(&api_t_certificate_status, &c.st);
    CHECK(json_object_get(a, "observedGeneration") != NULL && json_object_get(a, "notAfter") &&
              json_object_get(a, "renewalTime") && json_object_get(a, "fingerprintSHA256") &&
              json_object_get(a, "failedIssuanceAttempts") && json_object_get(a, "lastFailureTime"),
          "the JSON has the CRD's field names");
    CHECK_INT(status_from_json(&api_t_certificate_status, a, &back, &err), 0, "reads back");
    b = status_to_json(&api_t_certificate_status, &back);
    CHECK(json_equal(a, b), "JSON -> struct -> JSON is the identity");
    CHECK_INT(back.conditions.n, 2, "two conditions back");
    json_decref(a);
    json_decref(b);
    api_dispose(&api_t_certificate_status, &back);
    cert_dispose(&c);
}

static void test_json_refused(void)
{
    static const struct {
        const char *name, *json, *where;
    } bad[] = {
        {"not an object", "[]", ""},
        {"unknown field", "{\"ready\": true}", "ready"},
        {"notAfter not a time", "{\"notAfter\": \"tomorrow\"}", "notAfter"},
        {"notAfter a number", "{\"notAfter\": 1750000000}", "notAfter"},
        {"negative revision", "{\"revision\": -1}", "revision"},
        {"revision a string", "{\"revision\": \"1\"}", "revision"},
        {"condition without type", "{\"conditions\": [{\"status\": \"True\"}]}",
         "conditions[0].type"},
        {"condition status not an enum",
         "{\"conditions\": [{\"type\": \"Ready\", \"status\": \"Yes\"}]}", "conditions[0].status"},
        {"conditions not a list", "{\"conditions\": {}}", "conditions"},
        {"unknown condition field",
         "{\"conditions\": [{\"type\": \"Ready\", \"status\": \"True\", \"since\": 1}]}",
         "conditions[0].since"},
        {"serial too long",
         "{\"serialNumber\": \"0123456789012345678901234567890123456789012345678901234567890123"
         "45678901234567890123456789012345678901234567890123456789012345678\"}",
         "serialNumber"},
    };
    char name[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct aegis_certificate_status st;
        struct aegis_err err = {0};
        json_t *j = json_loads(bad[i].json, 0, NULL);
        int rc;

        rc = status_from_json(&api_t_certificate_status, j, &st, &err);
        snprintf(name, sizeof(name), "refused: %s", bad[i].name);
        CHECK_INT(rc, -AEGIS_E_INVALID, name);
        snprintf(name, sizeof(name), "refused: %s, at %s", bad[i].name, bad[i].where);
        CHECK_STR(err.where, bad[i].where, name);
        CHECK(st.conditions.v == NULL && st.present == 0, "... and nothing is kept");
        json_decref(j);
    }
}

static void test_json_other_kinds(void)
{
    struct aegis_issuer_status is, isb;
    struct aegis_host_status hs, hsb;
    json_t *a, *b;

    memset(&is, 0, sizeof(is));
    memset(&hs, 0, sizeof(hs));
    status_issuer_update(&is, 2, true, NULL, "the local CA is ready", T0);
    a = status_to_json(&api_t_issuer_status, &is);
    CHECK_INT(status_from_json(&api_t_issuer_status, a, &isb, NULL), 0, "issuer status reads back");
    b = status_to_json(&api_t_issuer_status, &isb);
    CHECK(json_equal(a, b), "issuer status round-trips");
    json_decref(a);
    json_decref(b);

    a = json_pack("{s:I, s:[{s:s, s:s, s:s, s:s, s:s}]}", "observedGeneration", (json_int_t)4,
                  "served", "hostname", "app.test", "dataplane", "dp-0", "serialNumber", "0A",
                  "notAfter", "2025-09-13T15:06:40Z", "since", "2025-06-15T15:06:40Z");
    CHECK_INT(status_from_json(&api_t_host_status, a, &hsb, NULL), 0,
              "host status with served reads back");
    b = status_to_json(&api_t_host_status, &hsb);
    CHECK(json_equal(a, b), "host status round-trips");
    json_decref(a);
    json_decref(b);
    a = json_pack("{s:[{s:s}]}", "served", "dataplane", "dp-0");
    CHECK_INT(status_from_json(&api_t_host_status, a, &hs, NULL), -AEGIS_E_INVALID,
              "a served entry without hostname is refused");
    json_decref(a);
    api_dispose(&api_t_issuer_status, &is);
    api_dispose(&api_t_issuer_status, &isb);
    api_dispose(&api_t_host_status, &hs);
    api_dispose(&api_t_host_status, &hsb);
}

/* ---- samples for the schema test ---- */

static void dump_one(const char *kind, const struct api_type *type, const void *st)
{
    json_t *doc = json_pack("{s:s, s:o}", "kind", kind, "status", status_to_json(type, st));
    char *text = json_dumps(doc, JSON_COMPACT);

    printf("%s\n", text);
    free(text);
    json_decref(doc);
}

static int dump(void)
{
    struct cert c;
    struct aegis_host_status hs;
    struct aegis_issuer_status is;
    struct decide_host_input hin = {.tls = true, .cert_found = true, .cert_valid = true};
    struct decide_host_result hd;
    struct status_host_input in = {.decision = &hd, .generation = 2, .cert_name = "app-tls"};

    /* A Certificate at each step of its life. */
    cert_init(&c);
    cert_step(&c, T0);
    dump_one("Certificate", &api_t_certificate_status, &c.st);
    cert_issue(&c, T0);
    cert_step(&c, T0 + 1);
    dump_one("Certificate", &api_t_certificate_status, &c.st);
    decide_failure_record(&c.fail, c.d.renewal_time, "", "Rejected", key_pem);
    cert_step(&c, c.d.renewal_time + 1);
    dump_one("Certificate", &api_t_certificate_status, &c.st);
    c.issuer_ready = false;
    cert_step(&c, c.meta.not_after);
    dump_one("Certificate", &api_t_certificate_status, &c.st);
    cert_dispose(&c);

    memset(&hs, 0, sizeof(hs));
    decide_host(&hin, &hd);
    status_host_update(&hs, &in, T0);
    dump_one("Host", &api_t_host_status, &hs);
    api_dispose(&api_t_host_status, &hs);

    memset(&is, 0, sizeof(is));
    status_issuer_update(&is, 1, false, "SecretNotFound", "secret default/cf is missing", T0);
    dump_one("Issuer", &api_t_issuer_status, &is);
    api_dispose(&api_t_issuer_status, &is);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dump") == 0)
        return dump();
    test_times();
    test_conditions();
    test_condition_truncation();
    test_certificate_flow();
    test_certificate_no_key_material();
    test_host();
    test_json_roundtrip();
    test_json_refused();
    test_json_other_kinds();
    return check_done();
}
