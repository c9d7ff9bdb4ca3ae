/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Named string formats (format.h, docs/formats.md). Each check accepts exactly the language of
 * the format's JSON Schema pattern and maxLength (code points, as JSON Schema counts them), with
 * `$` meaning the end of the string; the only extra checks are the C-only ones docs/formats.md
 * names (PEM structure and base64 bodies) and that a NUL byte always fails. Also durations, and
 * the edit distance behind "did you mean ...?" suggestions.
 */
#include "aegis/format.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "aegis/limits.h"

static const char *const format_names[] = {
#define AEGIS_FORMAT_NAME(e, name, what) name,
    AEGIS_FORMATS(AEGIS_FORMAT_NAME)
#undef AEGIS_FORMAT_NAME
};

static const char *const format_whats[] = {
#define AEGIS_FORMAT_WHAT(e, name, what) what,
    AEGIS_FORMATS(AEGIS_FORMAT_WHAT)
#undef AEGIS_FORMAT_WHAT
};

const char *aegis_format_name(enum aegis_format f)
{
    if ((unsigned)f >= AEGIS_FMT_COUNT_)
        return "";
    return format_names[f];
}

const char *aegis_format_what(enum aegis_format f)
{
    if ((unsigned)f >= AEGIS_FMT_COUNT_)
        return "a string";
    return format_whats[f];
}

/* The schemas' maxLength values (docs/formats.md). */
enum {
    MAX_DNS_NAME = 253,
    MAX_DNS_LABEL = 63,
    MAX_SECRET_KEY = 253,
    MAX_URL = 2048,
    MAX_EMAIL = 254,
    MAX_PEM = 262144,
    MAX_FILE_PATH = 4096,
    MAX_DURATION = 64,
    LABEL_MAX = 63, /* one label of a DNS name */
};

/* JSON Schema's maxLength counts code points: every byte that is not a UTF-8 continuation. */
static size_t codepoints(const char *s, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Bytes other than controls (0x00-0x20: controls and space) and DEL; anything >= 0x80 passes. */
static bool is_graph_or_high(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

static bool fail(const char **why, const char *hint)
{
    if (why != NULL)
        *why = hint;
    return false;
}

/*
 * Labels joined by '.': for dns-name/hostname a label is 1-63 of [A-Za-z0-9-] not starting or
 * ending with '-'; for dns-subdomain (lower) the letters are lowercase and there is no per-label
 * limit, as in the pattern.
 */
static bool check_labels(const char *s, size_t len, bool lower, size_t label_max, const char **why)
{
    size_t i, start = 0;

    if (len == 0)
        return fail(why, "is empty");
    for (i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : '.';

        if (c == '.') {
            size_t n = i - start;

            if (n == 0)
                return fail(why, "has an empty label (a leading, trailing or doubled '.')");
            if (label_max != 0 && n > label_max)
                return fail(why, "has a label longer than 63 characters");
            if (s[start] == '-' || s[i - 1] == '-')
                return fail(why, "has a label that starts or ends with '-'");
            start = i + 1;
            continue;
        }
        if (c == '-' || is_digit(c) || (c >= 'a' && c <= 'z'))
            continue;
        if (!lower && c >= 'A' && c <= 'Z')
            continue;
        if (c == '*')
            return fail(why, "'*' is only allowed as the whole first label (\"*.example.com\")");
        if (lower && c >= 'A' && c <= 'Z')
            return fail(why, "contains an uppercase letter; use lowercase");
        if (c == '_')
            return fail(why, "contains '_', which DNS names do not allow");
        return fail(why, lower ? "contains a character other than a-z, 0-9, '-' and '.'"
                               : "contains a character other than letters, digits, '-' and '.'");
    }
    return true;
}

static bool check_dns_name(const char *s, size_t len, bool wildcard, const char **why)
{
    if (len > MAX_DNS_NAME)
        return fail(why, "is longer than 253 characters");
    if (len >= 2 && s[0] == '*' && s[1] == '.') {
        if (!wildcard)
            return fail(why, "must not be a wildcard");
        s += 2;
        len -= 2;
    }
    return check_labels(s, len, false, LABEL_MAX, why);
}

static bool check_dns_label(const char *s, size_t len, const char **why)
{
    if (len > MAX_DNS_LABEL)
        return fail(why, "is longer than 63 characters");
    if (memchr(s, '.', len) != NULL)
        return fail(why, "contains '.'");
    return check_labels(s, len, true, 0, why);
}

static bool check_secret_key(const char *s, size_t len, const char **why)
{
    size_t i;

    if (len == 0)
        return fail(why, "is empty");
    if (len > MAX_SECRET_KEY)
        return fail(why, "is longer than 253 characters");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
            return fail(why, "contains a character other than letters, digits, '-', '_' and '.'");
    }
    return true;
}

static bool check_ip(const char *s, size_t len, const char **why)
{
    /* The longest IPv6 text inet_pton takes is 45 characters; anything longer is invalid. */
    char tmp[64];
    unsigned char bin[16];
    size_t i;

    if (len == 0)
        return fail(why, "is empty");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_hex(c) && c != ':' && c != '.')
            return fail(why, c == '%' ? "must not have a zone (\"%...\")"
                                      : "contains a character that is not in an IP address");
    }
    if (len >= sizeof(tmp))
        return fail(why, "is too long for an IP address");
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET, tmp, bin) == 1 || inet_pton(AF_INET6, tmp, bin) == 1)
        return true;
    return fail(why, "is not an IPv4 address (no leading zeros) or an IPv6 address");
}

/* url and https-url: the pattern of docs/formats.md, decided left to right. */
static bool check_url(const char *s, size_t len, bool https_only, const char **why)
{
    size_t i, start, port_len;
    unsigned long port;

    if (codepoints(s, len) > MAX_URL)
        return fail(why, "is longer than 2048 characters");
    if (len >= 8 && memcmp(s, "https://", 8) == 0)
        i = 8;
    else if (!https_only && len >= 7 && memcmp(s, "http://", 7) == 0)
        i = 7;
    else
        return fail(why, https_only ? "must start with https://"
                                    : "must start with http:// or https://");
    start = i;
    if (i < len && s[i] == '[') {
        for (i++; i < len && (is_hex((unsigned char)s[i]) || s[i] == ':' || s[i] == '.'); i++)
            ;
        if (i == start + 1 || i >= len || s[i] != ']')
            return fail(why, "has an invalid bracketed IPv6 host");
        i++;
    } else {
        for (; i < len && (is_alnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-'); i++)
            ;
        if (i == start)
            return fail(why, "has no host");
    }
    if (i < len && s[i] == ':') {
        start = ++i;
        port = 0;
        for (; i < len && is_digit((unsigned char)s[i]) && i - start < 6; i++)
            port = port * 10 + (unsigned long)(s[i] - '0');
        port_len = i - start;
        if (port_len == 0 || port_len > 5 || s[start] == '0' || port > 65535)
            return fail(why, "has an invalid port (1-65535, no leading zero)");
    }
    if (i == len)
        return true;
    if (s[i] != '/')
        return fail(why, "has an invalid host (letters, digits, '-' and '.', or [IPv6])");
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '?' || c == '#')
            return fail(why, "must not have a query or a fragment");
        if (!is_graph_or_high(c))
            return fail(why, "contains a space or a control character");
    }
    return true;
}

static bool check_uri(const char *s, size_t len, const char **why)
{
    size_t i;

    if (codepoints(s, len) > MAX_URL)
        return fail(why, "is longer than 2048 characters");
    if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return fail(why, "must start with a scheme (\"mailto:\", \"https:\", ...)");
    for (i = 1; i < len && s[i] != ':'; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!is_alnum(c) && c != '+' && c != '.' && c != '-')
            return fail(why, "must start with a scheme (\"mailto:\", \"https:\", ...)");
    }
    if (i == len)
        return fail(why, "has no ':' after the scheme");
    if (i + 1 == len)
        return fail(why, "has nothing after the scheme");
    for (i++; i < len; i++) {
        if (!is_graph_or_high((unsigned char)s[i]))
            return fail(why, "contains a space or a control character");
    }
    return true;
}

static bool check_email(const char *s, size_t len, const char **why)
{
    size_t i, at, start;

    if (len > MAX_EMAIL)
        return fail(why, "is longer than 254 characters");
    for (at = 0; at < len && s[at] != '@'; at++) {
        unsigned char c = (unsigned char)s[at];

        if (!is_alnum(c) && !strchr("._%+-", c))
            return fail(why, "has an invalid character before the '@'");
    }
    if (at == len)
        return fail(why, "has no '@'");
    if (at == 0)
        return fail(why, "has nothing before the '@'");
    /* The domain: two or more non-empty labels of [A-Za-z0-9-]. */
    start = at + 1;
    for (i = start; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)s[i] : '.';

        if (c == '.') {
            if (i == start)
                return fail(why, "has an empty part in the domain");
            start = i + 1;
        } else if (!is_alnum(c) && c != '-') {
            return fail(why, "has an invalid character in the domain");
        }
    }
    if (memchr(s + at + 1, '.', len - at - 1) == NULL)
        return fail(why, "has a domain without a '.'");
    return true;
}

static const char *find(const char *s, size_t len, const char *needle)
{
    return memmem(s, len, needle, strlen(needle));
}

static bool is_label_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || is_digit(c) || c == ' ';
}

/* Reads "[A-Z0-9 ]+-----" at *p (within end); returns the label length, or 0 when malformed. */
static size_t pem_label(const char **p, const char *end)
{
    const char *q = *p;
    size_t n;

    while (q < end && is_label_char((unsigned char)*q))
        q++;
    n = (size_t)(q - *p);
    if (n == 0 || (size_t)(end - q) < 5 || memcmp(q, "-----", 5) != 0)
        return 0;
    *p = q + 5;
    return n;
}

static bool is_b64(unsigned char c)
{
    return is_alnum(c) || c == '+' || c == '/';
}

/* Base64 ignoring whitespace: groups of four, '=' padding (at most two) only at the end. */
static bool pem_body_ok(const char *s, size_t len)
{
    size_t i, n = 0, pad = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f')
            continue;
        if (c == '=') {
            pad++;
        } else if (!is_b64(c) || pad > 0) {
            return false;
        }
        n++;
    }
    return n > 0 && n % 4 == 0 && pad <= 2;
}

/*
 * PEM text: the pattern finds one BEGIN ... END pair anywhere; C also requires that every block
 * is complete, that its END label equals its BEGIN label, that its body is base64, and that
 * there are at most AEGIS_LIMIT_PEM_BLOCKS blocks. Text outside the blocks is allowed (RFC 7468
 * explanatory text, "Bag Attributes" from openssl).
 */
static bool check_pem(const char *s, size_t len, const char **why)
{
    static const char *const bad_b64[] = {
        "block 1 has invalid base64",  "block 2 has invalid base64",  "block 3 has invalid base64",
        "block 4 has invalid base64",  "block 5 has invalid base64",  "block 6 has invalid base64",
        "block 7 has invalid base64",  "block 8 has invalid base64",  "block 9 has invalid base64",
        "block 10 has invalid base64", "block 11 has invalid base64", "block 12 has invalid base64",
        "block 13 has invalid base64", "block 14 has invalid base64", "block 15 has invalid base64",
        "block 16 has invalid base64",
    };
    const char *p = s, *end = s + len;
    size_t blocks = 0;

    _Static_assert(sizeof(bad_b64) / sizeof(bad_b64[0]) == AEGIS_LIMIT_PEM_BLOCKS,
                   "one message per allowed PEM block");
    if (codepoints(s, len) > MAX_PEM)
        return fail(why, "is longer than 262144 characters");
    for (;;) {
        const char *begin = find(p, (size_t)(end - p), "-----BEGIN ");
        const char *label, *body, *stop, *next;
        size_t label_len, end_len;

        if (begin == NULL)
            break;
        if (blocks == AEGIS_LIMIT_PEM_BLOCKS)
            return fail(why, "has more than 16 PEM blocks");
        blocks++;
        label = begin + 11;
        p = label;
        label_len = pem_label(&p, end);
        if (label_len == 0)
            return fail(why, "has a malformed \"-----BEGIN ...-----\" line");
        body = p;
        stop = find(body, (size_t)(end - body), "-----END ");
        next = find(body, (size_t)(end - body), "-----BEGIN ");
        if (stop == NULL || (next != NULL && next < stop))
            return fail(why, "has a BEGIN line without its END line");
        p = stop + 9;
        end_len = pem_label(&p, end);
        if (end_len == 0)
            return fail(why, "has a malformed \"-----END ...-----\" line");
        if (end_len != label_len || memcmp(stop + 9, label, label_len) != 0)
            return fail(why, "END label does not match BEGIN label");
        if (!pem_body_ok(body, (size_t)(stop - body)))
            return fail(why, bad_b64[blocks - 1]);
    }
    if (blocks == 0)
        return fail(why, "has no \"-----BEGIN ...-----\" line");
    return true;
}

static bool check_url_path(const char *s, size_t len, const char **why)
{
    size_t i;

    if (codepoints(s, len) > MAX_URL)
        return fail(why, "is longer than 2048 characters");
    if (len == 0 || s[0] != '/')
        return fail(why, "must start with '/'");
    for (i = 1; i < len; i++) {
        if (!is_graph_or_high((unsigned char)s[i]))
            return fail(why, "contains a space or a control character");
    }
    return true;
}

/* Reads exactly n digits at s[*i]. */
static bool digits(const char *s, size_t len, size_t *i, size_t n)
{
    size_t k;

    for (k = 0; k < n; k++, (*i)++) {
        if (*i >= len || !is_digit((unsigned char)s[*i]))
            return false;
    }
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

/* The pattern only: ranges (month 13, hour 25) are not checked, as the schema cannot. */
static bool check_date_time(const char *s, size_t len, const char **why)
{
    static const char *const hint = "must look like 2024-01-31T12:00:00Z (RFC 3339)";
    size_t i = 0;

    if (!digits(s, len, &i, 4) || !expect(s, len, &i, '-') || !digits(s, len, &i, 2) ||
        !expect(s, len, &i, '-') || !digits(s, len, &i, 2))
        return fail(why, hint);
    if (i >= len || (s[i] != 'T' && s[i] != 't'))
        return fail(why, hint);
    i++;
    if (!digits(s, len, &i, 2) || !expect(s, len, &i, ':') || !digits(s, len, &i, 2) ||
        !expect(s, len, &i, ':') || !digits(s, len, &i, 2))
        return fail(why, hint);
    if (i < len && s[i] == '.') {
        i++;
        if (!digits(s, len, &i, 1))
            return fail(why, hint);
        while (i < len && is_digit((unsigned char)s[i]))
            i++;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        i++;
        if (!digits(s, len, &i, 2) || !expect(s, len, &i, ':') || !digits(s, len, &i, 2))
            return fail(why, hint);
    } else {
        return fail(why, "needs a time zone (\"Z\" or \"+01:00\")");
    }
    if (i != len)
        return fail(why, hint);
    return true;
}

bool aegis_format_check(enum aegis_format f, const char *s, size_t len, const char **why)
{
    if (why != NULL)
        *why = NULL;
    if (s == NULL)
        return fail(why, "is missing");
    if (memchr(s, '\0', len) != NULL)
        return fail(why, "contains a NUL character");
    switch (f) {
    case AEGIS_FMT_NONE:
        return true;
    case AEGIS_FMT_DNS_NAME:
        return check_dns_name(s, len, true, why);
    case AEGIS_FMT_HOSTNAME:
        return check_dns_name(s, len, false, why);
    case AEGIS_FMT_DNS_SUBDOMAIN:
        if (len > MAX_DNS_NAME)
            return fail(why, "is longer than 253 characters");
        return check_labels(s, len, true, 0, why);
    case AEGIS_FMT_DNS_LABEL:
        return check_dns_label(s, len, why);
    case AEGIS_FMT_SECRET_KEY:
        return check_secret_key(s, len, why);
    case AEGIS_FMT_IP:
        return check_ip(s, len, why);
    case AEGIS_FMT_URL:
        return check_url(s, len, false, why);
    case AEGIS_FMT_HTTPS_URL:
        return check_url(s, len, true, why);
    case AEGIS_FMT_URI:
        return check_uri(s, len, why);
    case AEGIS_FMT_EMAIL:
        return check_email(s, len, why);
    case AEGIS_FMT_PEM:
        return check_pem(s, len, why);
    case AEGIS_FMT_FILE_PATH:
        if (len == 0)
            return fail(why, "is empty");
        if (codepoints(s, len) > MAX_FILE_PATH)
            return fail(why, "is longer than 4096 characters");
        return true;
    case AEGIS_FMT_URL_PATH:
        return check_url_path(s, len, why);
    case AEGIS_FMT_DATE_TIME:
        return check_date_time(s, len, why);
    case AEGIS_FMT_COUNT_:
        break;
    }
    return fail(why, "has an unknown format");
}

/* ---- durations ------------------------------------------------------------------------------ */

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)
/* The C-only ceiling of docs/formats.md: 100 years of 365 days. */
#define MS_DURATION_MAX (36500 * MS_DAY)
/* Fraction digits past these are below a millisecond for every unit and are ignored. */
#define FRACTION_DIGITS 9

int aegis_duration_parse(const char *s, size_t len, int64_t *ms)
{
    int64_t total = 0;
    bool over = false;
    size_t i = 0;

    if (s == NULL || len == 0 || len > MAX_DURATION)
        return -AEGIS_E_INVALID;
    while (i < len) {
        int64_t whole = 0, frac = 0, scale = 1, unit;
        size_t start = i, nfrac = 0;

        for (; i < len && is_digit((unsigned char)s[i]); i++) {
            /* 64 characters at most: saturate rather than overflow, and report the limit. */
            if (whole > MS_DURATION_MAX)
                over = true;
            else
                whole = whole * 10 + (s[i] - '0');
        }
        if (i == start)
            return -AEGIS_E_INVALID;
        if (i < len && s[i] == '.') {
            start = ++i;
            for (; i < len && is_digit((unsigned char)s[i]); i++) {
                if (nfrac < FRACTION_DIGITS) {
                    frac = frac * 10 + (s[i] - '0');
                    scale *= 10;
                    nfrac++;
                }
            }
            if (i == start)
                return -AEGIS_E_INVALID;
        }
        if (i + 1 < len && s[i] == 'm' && s[i + 1] == 's') {
            unit = 1;
            i += 2;
        } else if (i < len && s[i] == 's') {
            unit = MS_SECOND;
            i++;
        } else if (i < len && s[i] == 'm') {
            unit = MS_MINUTE;
            i++;
        } else if (i < len && s[i] == 'h') {
            unit = MS_HOUR;
            i++;
        } else if (i < len && s[i] == 'd') {
            unit = MS_DAY;
            i++;
        } else {
            return -AEGIS_E_INVALID;
        }
        if (over || whole > MS_DURATION_MAX / unit) {
            over = true;
            continue;
        }
        /* frac < scale <= 1e9 and unit <= 8.64e7, so frac * unit stays below 2^63. */
        total += whole * unit + frac * unit / scale;
        if (total > MS_DURATION_MAX)
            over = true;
    }
    if (over)
        return -AEGIS_E_LIMIT;
    *ms = total;
    return 0;
}

int aegis_duration_format(int64_t ms, char *buf, size_t size)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {
        {3600000, "h"},
        {60000, "m"},
        {1000, "s"},
        {1, "ms"},
    };
    char tmp[64];
    size_t len = 0, u;
    uint64_t v;

    if (ms == 0)
        return snprintf(buf, size, "0s");
    if (ms < 0) {
        tmp[len++] = '-';
        v = (uint64_t)(-(ms + 1)) + 1; /* no overflow at INT64_MIN */
    } else {
        v = (uint64_t)ms;
    }
    for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        uint64_t n = v / units[u].ms;
        int w;

        if (n == 0)
            continue;
        v -= n * units[u].ms;
        w = snprintf(tmp + len, sizeof(tmp) - len, "%llu%s", (unsigned long long)n, units[u].unit);
        if (w > 0)
            len += (size_t)w;
    }
    return snprintf(buf, size, "%s", tmp);
}

/* ---- suggestions ---------------------------------------------------------------------------- */

static unsigned char fold(char c)
{
    return (unsigned char)tolower((unsigned char)c);
}

size_t aegis_edit_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b), i, j, best, *row, result;

    if ((la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    /* One row of the Levenshtein table, updated in place (diag holds the cell up-left). */
    row = aegis_calloc(lb + 1, sizeof(*row));
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        best = row[0];
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = fold(a[i - 1]) == fold(b[j - 1]) ? 0 : 1;
            size_t v = diag + cost;

            if (up + 1 < v)
                v = up + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best)
                best = v;
        }
        if (best > cap) {
            free(row);
            return cap + 1;
        }
    }
    result = row[lb] > cap ? cap + 1 : row[lb];
    free(row);
    return result;
}

/* One name is the other plus a plural ending or a short completion: dnsName/dnsNames. */
static bool is_variant(const char *word, const char *cand)
{
    size_t lw = strlen(word), lc = strlen(cand), shorter = lw < lc ? lw : lc;
    size_t longer = lw < lc ? lc : lw, i;

    if (shorter < 3 || shorter * 2 < longer)
        return false;
    for (i = 0; i < shorter; i++) {
        if (fold(word[i]) != fold(cand[i]))
            return false;
    }
    return true;
}

const char *aegis_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t i, wlen, cap, best_d = (size_t)-1;
    const char *best = NULL;

    if (word == NULL || word[0] == '\0')
        return NULL;
    wlen = strlen(word);
    cap = wlen / 3 > 1 ? wlen / 3 : 1;
    for (i = 0; i < n; i++) {
        size_t d;

        if (cands[i] == NULL)
            continue;
        d = aegis_edit_distance(word, cands[i], cap);
        if (d > cap && is_variant(word, cands[i]))
            d = cap; /* a prefix variant counts as close, but behind a real near-miss */
        if (d <= cap && d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}
