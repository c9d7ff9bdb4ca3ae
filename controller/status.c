/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The status model (status.h): conditions with Kubernetes' lastTransitionTime rule, the
 * Certificate, Host and Issuer statuses filled from decisions and store metadata, RFC 3339
 * times, and the JSON form of the CRDs' status, read back with the checks the JSON Schema makes.
 * The tables of the generated API (api_types.gen.h) drive the JSON both ways, so the status
 * shape has one definition: schemas/api.yaml.
 */
#include "status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "aegis/yaml.h"

#define BIT(i) (UINT64_C(1) << (i))

/* ---- times ----------------------------------------------------------------------------------- */

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years RFC 3339 can write. */
#define TIME_MIN (-62167219200LL)
#define TIME_MAX 253402300799LL

int status_time_format(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (size > 0)
        buf[0] = '\0';
    if (t < TIME_MIN || t > TIME_MAX || size < 21 || gmtime_r(&tt, &tm) == NULL)
        return -AEGIS_E_INVALID;
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n decimal digits at s; -1 when one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int status_time_parse(const char *s, int64_t *t)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, off = 0;
    const char *p;

    if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
        (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return -AEGIS_E_INVALID;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60)
        return -AEGIS_E_INVALID;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return -AEGIS_E_INVALID;
    p = s + 19;
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return -AEGIS_E_INVALID;
        for (p++; *p >= '0' && *p <= '9'; p++)
            ; /* second precision: the fraction is dropped */
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -AEGIS_E_INVALID;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
    } else {
        return -AEGIS_E_INVALID;
    }
    /* A leap second (:60) counts as the first second of the next minute, as timegm does. */
    *t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    return 0;
}

/* ---- strings --------------------------------------------------------------------------------- */

/* The length of the UTF-8 sequence at s (at most n bytes), 0 when it is not valid UTF-8. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static bool holds_private_key(const char *s)
{
    return s != NULL && strstr(s, "-----BEGIN") != NULL && strstr(s, "PRIVATE KEY") != NULL;
}

/*
 * A copy of s fit for a status: no private-key block (an issuer or a library may echo its input
 * in an error), valid UTF-8 (jansson refuses anything else; a bad byte becomes '?'), at most
 * max - 1 bytes cut at a character boundary. NULL for NULL.
 */
static char *scrub(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, o = 0;
    char *out;

    if (s == NULL)
        return NULL;
    if (holds_private_key(s))
        return aegis_strdup("<redacted: the text held private key material>");
    n = strlen(s);
    out = aegis_malloc((n < max ? n : max - 1) + 1);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(p + i, n - i);

        if (o + (len != 0 ? len : 1) > max - 1)
            break;
        if (len == 0) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    out[o] = '\0';
    return out;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Replaces an owned string field (NULL clears it) and its present bit. */
static void set_field(char **field, uint64_t *present, int bit, const char *value)
{
    char *copy = value != NULL ? aegis_strdup(value) : NULL;

    free(*field);
    *field = copy;
    if (value != NULL)
        *present |= BIT(bit);
    else
        *present &= ~BIT(bit);
}

static void set_time_field(char **field, uint64_t *present, int bit, int64_t t)
{
    char buf[STATUS_TIME_MAX];

    set_field(field, present, bit, status_time_format(t, buf, sizeof(buf)) == 0 ? buf : NULL);
}

static void set_int_field(int64_t *field, uint64_t *present, int bit, bool set, int64_t value)
{
    *field = set ? value : 0;
    if (set)
        *present |= BIT(bit);
    else
        *present &= ~BIT(bit);
}

/* A time for a message; "(unknown)" for one RFC 3339 cannot write. */
static const char *mtime(int64_t t, char buf[STATUS_TIME_MAX])
{
    if (status_time_format(t, buf, STATUS_TIME_MAX) < 0)
        snprintf(buf, STATUS_TIME_MAX, "(unknown)");
    return buf;
}

/* ---- conditions ------------------------------------------------------------------------------ */

const struct aegis_condition *status_condition_find(const struct aegis_condition *v, size_t n,
                                                    const char *type)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].type != NULL && strcmp(v[i].type, type) == 0)
            return &v[i];
    return NULL;
}

bool status_condition_set(struct aegis_condition **v, size_t *n, const char *type,
                          enum aegis_condition_status status, const char *reason,
                          const char *message, int64_t generation, int64_t now)
{
    struct aegis_condition *c = (struct aegis_condition *)status_condition_find(*v, *n, type);
    char *r = scrub(reason, STATUS_REASON_MAX + 1);
    char *m = scrub(message, STATUS_MESSAGE_MAX);
    bool changed = false;

    if (generation < 0)
        generation = 0; /* the schema's minimum; hand-written files have no generation */
    if (c == NULL) {
        *v = aegis_realloc(*v, (*n + 1) * sizeof(**v));
        c = &(*v)[(*n)++];
        memset(c, 0, sizeof(*c));
        set_field(&c->type, &c->present, API_F_CONDITION_TYPE, type);
        c->status = AEGIS_CONDITION_STATUS_COUNT_; /* differs from any status: a transition */
        changed = true;
    }
    if (c->status != status || !API_HAS(c, API_F_CONDITION_LAST_TRANSITION_TIME)) {
        /* Kubernetes' rule: the time moves when the status does, not on every update. */
        set_time_field(&c->last_transition_time, &c->present, API_F_CONDITION_LAST_TRANSITION_TIME,
                       now);
        changed = true;
    }
    changed |= c->status != status || !str_eq(c->reason, r) || !str_eq(c->message, m) ||
               c->observed_generation != generation;
    c->status = status;
    c->present |= BIT(API_F_CONDITION_STATUS);
    set_field(&c->reason, &c->present, API_F_CONDITION_REASON, r);
    set_field(&c->message, &c->present, API_F_CONDITION_MESSAGE, m);
    set_int_field(&c->observed_generation, &c->present, API_F_CONDITION_OBSERVED_GENERATION, true,
                  generation);
    free(r);
    free(m);
    return changed;
}

/* ---- Certificates ---------------------------------------------------------------------------- */

/* What calls (or does not call) for a certificate, as a sentence for the messages. */
static void trigger_text(const struct decide_cert_result *d, const struct store_meta *m, char *buf,
                         size_t size)
{
    char t1[STATUS_TIME_MAX], t2[STATUS_TIME_MAX];
    const char *what = d->supplied ? "the supplied certificate" : "the certificate";
    size_t o;

    switch (d->trigger) {
    case DECIDE_REASON_UP_TO_DATE:
        if (d->supplied)
            snprintf(buf, size, "the supplied certificate is valid until %s",
                     mtime(m->not_after, t1));
        else
            snprintf(buf, size, "the certificate is up to date and valid until %s; renewal at %s",
                     mtime(m->not_after, t1), mtime(d->renewal_time, t2));
        return;
    case DECIDE_REASON_DOES_NOT_EXIST:
        snprintf(buf, size, "%s",
                 d->supplied ? "the supplied certificate has not been imported yet"
                             : "no certificate has been issued yet");
        return;
    case DECIDE_REASON_EXPIRED:
        snprintf(buf, size, "%s expired at %s%s", what, mtime(m->not_after, t1),
                 d->supplied ? "; supply a new one" : "");
        return;
    case DECIDE_REASON_REVOKED:
        snprintf(buf, size, "the certificate was revoked (aegisctl certificate revoke)");
        break;
    case DECIDE_REASON_RENEWING:
        snprintf(buf, size, "renewal time %s reached; the certificate is valid until %s",
                 mtime(d->renewal_time, t1), mtime(m->not_after, t2));
        return;
    case DECIDE_REASON_SPEC_CHANGED:
        if (d->changed_field < DECIDE_SPEC_FIELD_COUNT_)
            snprintf(buf, size, "spec.%s changed since the certificate was issued",
                     decide_spec_field_names[d->changed_field]);
        else
            snprintf(buf, size, "the spec changed since the certificate was issued");
        break;
    case DECIDE_REASON_SOURCE_CHANGED:
        snprintf(buf, size, "the supplied certificate changed");
        break;
    case DECIDE_REASON_WAITING_FOR_CERTIFICATE:
        snprintf(buf, size,
                 "waiting for the certificate: its source holds none yet (spec.csr: "
                 "aegisctl csr get, then aegisctl csr import or "
                 "spec.csr.certificate)");
        return;
    case DECIDE_REASON_ISSUER_NOT_READY:
    case DECIDE_REASON_BACKOFF_ACTIVE:
    case DECIDE_REASON_COUNT_:
        snprintf(buf, size, "%s", decide_reason_names[d->trigger]);
        return;
    }
    o = strlen(buf);
    if (d->valid && o < size)
        snprintf(buf + o, size - o,
                 "; the previous certificate, valid until %s, is served meanwhile",
                 mtime(m->not_after, t1));
}

static void cert_conditions(struct aegis_certificate_status *st, const struct status_cert_input *in,
                            int64_t now)
{
    const struct decide_cert_result *d = in->decision;
    const struct decide_failures *f = in->failures;
    /* msg may exceed STATUS_MESSAGE_MAX; status_condition_set cuts it at a character. */
    char text[STATUS_MESSAGE_MAX], msg[2 * STATUS_MESSAGE_MAX], t[STATUS_TIME_MAX];
    struct aegis_condition **v = &st->conditions.v;
    size_t *n = &st->conditions.n;
    int64_t gen = d->generation;
    const char *wait = "";
    char tail[STATUS_MESSAGE_MAX] = "";

    trigger_text(d, in->stored, text, sizeof(text));
    if (d->reason == DECIDE_REASON_ISSUER_NOT_READY) {
        snprintf(tail, sizeof(tail), "; waiting for the Issuer to be ready%s%s",
                 in->issuer_message != NULL ? ": " : "",
                 in->issuer_message != NULL ? in->issuer_message : "");
        wait = tail;
    } else if (d->reason == DECIDE_REASON_BACKOFF_ACTIVE && f != NULL) {
        snprintf(tail, sizeof(tail), "; %" PRIu32 " attempt%s failed in a row, the next is at %s",
                 f->attempts, f->attempts == 1 ? "" : "s", mtime(d->backoff_until, t));
        wait = tail;
    }

    /* Ready: a certificate is there, valid, and what the spec asks for. */
    snprintf(msg, sizeof(msg), "%s%s", text, wait);
    if (d->ready)
        status_condition_set(v, n, STATUS_CONDITION_READY, AEGIS_CONDITION_STATUS_TRUE, "Ready",
                             msg, gen, now);
    else
        status_condition_set(v, n, STATUS_CONDITION_READY, AEGIS_CONDITION_STATUS_FALSE,
                             decide_reason_names[d->trigger], msg, gen, now);

    /* Issuing, as cert-manager's: True while a certificate is being obtained. */
    if (d->issue && in->pending_message != NULL && in->pending_message[0] != '\0') {
        /* An issuer that is still working says what it waits for (order pending, rate limited
         * until T, DNS propagation ...): that is what a user watching the status wants to see. */
        snprintf(msg, sizeof(msg), "%s; %s", text, in->pending_message);
        status_condition_set(v, n, STATUS_CONDITION_ISSUING, AEGIS_CONDITION_STATUS_TRUE,
                             decide_reason_names[d->trigger], msg, gen, now);
    } else if (d->issue || d->reason == DECIDE_REASON_WAITING_FOR_CERTIFICATE)
        status_condition_set(v, n, STATUS_CONDITION_ISSUING, AEGIS_CONDITION_STATUS_TRUE,
                             decide_reason_names[d->trigger], text, gen, now);
    else if (d->reason == DECIDE_REASON_BACKOFF_ACTIVE)
        /* The failure's own words, so that they read the same after a restart. */
        status_condition_set(v, n, STATUS_CONDITION_ISSUING, AEGIS_CONDITION_STATUS_FALSE,
                             f != NULL && f->reason[0] != '\0' ? f->reason : "Failed",
                             f != NULL && f->message[0] != '\0' ? f->message : "issuance failed",
                             gen, now);
    else if (d->reason == DECIDE_REASON_ISSUER_NOT_READY)
        status_condition_set(v, n, STATUS_CONDITION_ISSUING, AEGIS_CONDITION_STATUS_FALSE,
                             decide_reason_names[d->reason], tail + 2 /* past "; " */, gen, now);
    else
        status_condition_set(v, n, STATUS_CONDITION_ISSUING, AEGIS_CONDITION_STATUS_FALSE,
                             decide_reason_names[d->reason],
                             d->reason == DECIDE_REASON_UP_TO_DATE ? "no issuance needed" : text,
                             gen, now);
    st->present |= BIT(API_F_CERTIFICATE_STATUS_CONDITIONS);
}

static void cert_facts(struct aegis_certificate_status *st, const struct store_meta *m,
                       const struct decide_cert_result *d)
{
    bool have = m != NULL && m->not_after != 0;
    uint64_t *p = &st->present;

    if (!have) {
        set_field(&st->not_before, p, API_F_CERTIFICATE_STATUS_NOT_BEFORE, NULL);
        set_field(&st->not_after, p, API_F_CERTIFICATE_STATUS_NOT_AFTER, NULL);
        set_field(&st->renewal_time, p, API_F_CERTIFICATE_STATUS_RENEWAL_TIME, NULL);
        set_field(&st->serial_number, p, API_F_CERTIFICATE_STATUS_SERIAL_NUMBER, NULL);
        set_field(&st->fingerprint_sha256, p, API_F_CERTIFICATE_STATUS_FINGERPRINT_SHA256, NULL);
        set_field(&st->issuer, p, API_F_CERTIFICATE_STATUS_ISSUER, NULL);
        set_int_field(&st->revision, p, API_F_CERTIFICATE_STATUS_REVISION, false, 0);
        return;
    }
    set_time_field(&st->not_before, p, API_F_CERTIFICATE_STATUS_NOT_BEFORE, m->not_before);
    set_time_field(&st->not_after, p, API_F_CERTIFICATE_STATUS_NOT_AFTER, m->not_after);
    set_time_field(&st->renewal_time, p, API_F_CERTIFICATE_STATUS_RENEWAL_TIME, d->renewal_time);
    {
        char *serial = scrub(m->serial, 129), *issuer = scrub(m->issuer, 1025);

        set_field(&st->serial_number, p, API_F_CERTIFICATE_STATUS_SERIAL_NUMBER, serial);
        set_field(&st->issuer, p, API_F_CERTIFICATE_STATUS_ISSUER, issuer);
        free(serial);
        free(issuer);
    }
    set_field(&st->fingerprint_sha256, p, API_F_CERTIFICATE_STATUS_FINGERPRINT_SHA256,
              m->fingerprint[0] != '\0' ? m->fingerprint : NULL);
    set_int_field(&st->revision, p, API_F_CERTIFICATE_STATUS_REVISION, true,
                  m->revision > INT64_MAX ? INT64_MAX : (int64_t)m->revision);
}

static void cert_failures(struct aegis_certificate_status *st, const struct decide_failures *f,
                          const struct decide_cert_result *d)
{
    bool failing = f != NULL && f->attempts > 0;
    uint64_t *p = &st->present;

    set_int_field(&st->failed_issuance_attempts, p,
                  API_F_CERTIFICATE_STATUS_FAILED_ISSUANCE_ATTEMPTS, failing,
                  failing ? (int64_t)f->attempts : 0);
    if (failing)
        set_time_field(&st->last_failure_time, p, API_F_CERTIFICATE_STATUS_LAST_FAILURE_TIME,
                       f->last_failure_time);
    else
        set_field(&st->last_failure_time, p, API_F_CERTIFICATE_STATUS_LAST_FAILURE_TIME, NULL);
    if (failing && d->backoff_until != 0)
        set_time_field(&st->next_retry_time, p, API_F_CERTIFICATE_STATUS_NEXT_RETRY_TIME,
                       d->backoff_until);
    else
        set_field(&st->next_retry_time, p, API_F_CERTIFICATE_STATUS_NEXT_RETRY_TIME, NULL);
}

/* Runs an update and says whether it changed the status's JSON form. */
static bool changed_since(const struct api_type *type, const void *st, json_t *before)
{
    json_t *after = status_to_json(type, st);
    bool changed = !json_equal(before, after);

    json_decref(before);
    json_decref(after);
    return changed;
}

bool status_certificate_update(struct aegis_certificate_status *st,
                               const struct status_cert_input *in, int64_t now)
{
    json_t *before = status_to_json(&api_t_certificate_status, st);

    set_int_field(&st->observed_generation, &st->present,
                  API_F_CERTIFICATE_STATUS_OBSERVED_GENERATION, true,
                  in->decision->generation > 0 ? in->decision->generation : 0);
    cert_facts(st, in->stored, in->decision);
    cert_failures(st, in->failures, in->decision);
    cert_conditions(st, in, now);
    return changed_since(&api_t_certificate_status, st, before);
}

void status_certificate_failures(const struct aegis_certificate_status *st,
                                 struct decide_failures *out)
{
    const struct aegis_condition *c;
    int64_t t;

    memset(out, 0, sizeof(*out));
    if (!API_HAS(st, API_F_CERTIFICATE_STATUS_FAILED_ISSUANCE_ATTEMPTS) ||
        st->failed_issuance_attempts <= 0)
        return;
    out->attempts = st->failed_issuance_attempts > UINT32_MAX
                        ? UINT32_MAX
                        : (uint32_t)st->failed_issuance_attempts;
    if (st->last_failure_time != NULL && status_time_parse(st->last_failure_time, &t) == 0)
        out->last_failure_time = t;
    c = status_condition_find(st->conditions.v, st->conditions.n, STATUS_CONDITION_ISSUING);
    if (c == NULL || c->status != AEGIS_CONDITION_STATUS_FALSE || c->reason == NULL)
        return;
    /* Our own reasons say why nothing is issued; any other is the failure's. */
    for (int r = 0; r < DECIDE_REASON_COUNT_; r++)
        if (strcmp(c->reason, decide_reason_names[r]) == 0)
            return;
    snprintf(out->reason, sizeof(out->reason), "%s", c->reason);
    snprintf(out->message, sizeof(out->message), "%s", c->message != NULL ? c->message : "");
}

/* ---- Hosts and Issuers ----------------------------------------------------------------------- */

bool status_host_update(struct aegis_host_status *st, const struct status_host_input *in,
                        int64_t now)
{
    json_t *before = status_to_json(&api_t_host_status, st);
    const struct decide_host_result *d = in->decision;
    const char *ns = in->cert_ns != NULL ? in->cert_ns : "default";
    const char *name = in->cert_name != NULL ? in->cert_name : "(none)";
    const char *served = d->serve == DECIDE_SERVE_CERTIFICATE
                             ? "its previous certificate is served meanwhile"
                             : "the self-signed fallback certificate is served meanwhile";
    char msg[STATUS_MESSAGE_MAX];

    switch (d->reason) {
    case DECIDE_HOST_REASON_READY:
        snprintf(msg, sizeof(msg), "serving Certificate %s/%s%s", ns, name,
                 in->conflict ? " (declared explicitly; it takes the place of the implicit one)"
                              : "");
        break;
    case DECIDE_HOST_REASON_PLAIN_HTTP:
        snprintf(msg, sizeof(msg), "tls.mode is none: plain HTTP only");
        break;
    case DECIDE_HOST_REASON_CERTIFICATE_NOT_FOUND:
        snprintf(msg, sizeof(msg), "Certificate %s/%s does not exist; %s", ns, name,
                 "the self-signed fallback certificate is served meanwhile");
        break;
    case DECIDE_HOST_REASON_NOT_SERVED:
        snprintf(msg, sizeof(msg), "not served: %s",
                 in->cert_message != NULL ? in->cert_message : "see the controller's log");
        break;
    case DECIDE_HOST_REASON_CONFIGURATION_REFUSED:
        snprintf(msg, sizeof(msg),
                 "the dataplane refused the configuration (%s); it keeps serving the previous one",
                 in->cert_message != NULL ? in->cert_message : "no reason given");
        break;
    case DECIDE_HOST_REASON_DATAPLANE_UNREACHABLE:
        snprintf(msg, sizeof(msg), "the configuration could not be pushed (%s); retrying",
                 in->cert_message != NULL ? in->cert_message : "no reason given");
        break;
    case DECIDE_HOST_REASON_CERTIFICATE_NOT_READY:
    case DECIDE_HOST_REASON_COUNT_:
        snprintf(msg, sizeof(msg), "Certificate %s/%s is not ready%s%s%s; %s", ns, name,
                 in->cert_message != NULL ? " (" : "",
                 in->cert_message != NULL ? in->cert_message : "",
                 in->cert_message != NULL ? ")" : "", served);
        break;
    }
    set_int_field(&st->observed_generation, &st->present, API_F_HOST_STATUS_OBSERVED_GENERATION,
                  true, in->generation > 0 ? in->generation : 0);
    status_condition_set(&st->conditions.v, &st->conditions.n, STATUS_CONDITION_READY,
                         d->ready ? AEGIS_CONDITION_STATUS_TRUE : AEGIS_CONDITION_STATUS_FALSE,
                         decide_host_reason_names[d->reason], msg, in->generation, now);
    st->present |= BIT(API_F_HOST_STATUS_CONDITIONS);
    return changed_since(&api_t_host_status, st, before);
}

bool status_issuer_update(struct aegis_issuer_status *st, int64_t generation, bool ready,
                          const char *reason, const char *message, int64_t now)
{
    json_t *before = status_to_json(&api_t_issuer_status, st);

    set_int_field(&st->observed_generation, &st->present, API_F_ISSUER_STATUS_OBSERVED_GENERATION,
                  true, generation > 0 ? generation : 0);
    status_condition_set(&st->conditions.v, &st->conditions.n, STATUS_CONDITION_READY,
                         ready ? AEGIS_CONDITION_STATUS_TRUE : AEGIS_CONDITION_STATUS_FALSE,
                         reason != NULL ? reason : (ready ? "Ready" : "NotReady"), message,
                         generation, now);
    st->present |= BIT(API_F_ISSUER_STATUS_CONDITIONS);
    return changed_since(&api_t_issuer_status, st, before);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

/* Replaces, in place, every string of j holding a private-key block. */
static void redact(json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_object(j)) {
        json_object_foreach(j, key, v)
        {
            if (json_is_string(v) && holds_private_key(json_string_value(v)))
                json_object_set_new(j, key, json_string("<redacted>"));
            else
                redact(v);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            if (json_is_string(v) && holds_private_key(json_string_value(v)))
                json_array_set_new(j, i, json_string("<redacted>"));
            else
                redact(v);
        }
    }
}

json_t *status_to_json(const struct api_type *type, const void *st)
{
    json_t *j = api_to_json(type, st);

    redact(j);
    return j;
}

int status_from_json(const struct api_type *type, const json_t *j, void *st, struct aegis_err *err)
{
    /* JSON is YAML: the text goes through the one decoder (api_decode) that checks resources,
     * so a status read back gets every check a spec gets. */
    struct aegis_diags diags;
    struct aegis_yfile *yf = NULL;
    struct api_ctx ctx = {.diags = &diags, .kind = type->name};
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = -AEGIS_E_INVALID;

    memset(st, 0, type->size);
    aegis_diags_init(&diags);
    if (text == NULL) {
        aegis_err_set(err, -AEGIS_E_INVALID, "", "cannot be encoded");
        goto out;
    }
    if (!json_is_object(j)) {
        aegis_err_set(err, -AEGIS_E_INVALID, "", "expected an object (%s)", type->name);
        goto out;
    }
    aegis_yaml_load_buffer("<status>", text, strlen(text), &yf, &diags);
    if (diags.nerrors == 0 && yf != NULL && yf->ndocs == 1)
        rc = api_decode(type, yf->docs[0].root, st, &ctx, "");
    if (rc < 0) {
        const struct aegis_diag *d = NULL;

        for (size_t i = 0; i < diags.n && d == NULL; i++) {
            if (diags.v[i].sev == AEGIS_SEV_ERROR)
                d = &diags.v[i];
        }
        aegis_err_set(err, -AEGIS_E_INVALID, d != NULL && d->path != NULL ? d->path : "", "%s",
                      d != NULL ? d->msg : "is not a valid status");
        api_dispose(type, st);
        memset(st, 0, type->size);
    }
out:
    aegis_yfile_free(yf);
    aegis_diags_dispose(&diags);
    free(text);
    return rc;
}
