/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Named string formats of the API (DNS names, IPs, URLs, durations, PEM text, ...). Each format
 * here has a pattern in hack/gen-api.py that expresses the same language in the JSON Schemas and
 * CRDs; tests/unit/common/test_format.c and the schema agreement test keep the two in step.
 * Where C checks more than a regular expression can (PEM labels and base64 bodies), the
 * difference is named in the format's comment.
 */
#ifndef AEGIS_FORMAT_H
#define AEGIS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(ENUM, "schema name", "what a valid value is, for messages") */
#define AEGIS_FORMATS(X)                                                                           \
    X(NONE, "", "a string")                                                                        \
    X(DNS_NAME, "dns-name", "a valid DNS name")                                                    \
    X(HOSTNAME, "hostname", "a valid host name")                                                   \
    X(DNS_SUBDOMAIN, "dns-subdomain", "a valid name (lowercase letters, digits, '-' and '.')")     \
    X(DNS_LABEL, "dns-label", "a valid namespace (lowercase letters, digits and '-')")             \
    X(SECRET_KEY, "secret-key", "a valid Secret key (letters, digits, '-', '_' and '.')")          \
    X(IP, "ip", "a valid IPv4 or IPv6 address")                                                    \
    X(URL, "url", "a valid http:// or https:// URL")                                               \
    X(HTTPS_URL, "https-url", "a valid https:// URL")                                              \
    X(URI, "uri", "a valid URI")                                                                   \
    X(EMAIL, "email", "a valid email address")                                                     \
    X(PEM, "pem", "PEM text")                                                                      \
    X(FILE_PATH, "file-path", "a file path")                                                       \
    X(URL_PATH, "url-path", "a URL path starting with '/'")                                        \
    X(DATE_TIME, "date-time", "an RFC 3339 time")

enum aegis_format {
#define AEGIS_FORMAT_ENUM(e, name, what) AEGIS_FMT_##e,
    AEGIS_FORMATS(AEGIS_FORMAT_ENUM)
#undef AEGIS_FORMAT_ENUM
        AEGIS_FMT_COUNT_
};

/* "dns-name" etc.; "" for NONE. */
const char *aegis_format_name(enum aegis_format f);
/* "a valid DNS name" etc. */
const char *aegis_format_what(enum aegis_format f);

/*
 * Checks s (len bytes, may contain NULs which always fail) against format f. Returns true when
 * valid. When invalid and why is non-NULL, *why may be set to a static hint (or left NULL).
 */
bool aegis_format_check(enum aegis_format f, const char *s, size_t len, const char **why);

/*
 * Durations: one or more <number><unit> terms, number = digits with an optional decimal
 * fraction, unit = ms, s, m, h or d (d = 24h). "90d", "2160h", "1h30m", "1.5h", "500ms".
 * Returns 0 and the value in milliseconds, or -AEGIS_E_INVALID (bad syntax) or -AEGIS_E_LIMIT
 * (over 100 years).
 */
int aegis_duration_parse(const char *s, size_t len, int64_t *ms);
/* Formats ms as the shortest h/m/s/ms form ("2160h", "1h30m", "500ms"); returns snprintf's value. */
int aegis_duration_format(int64_t ms, char *buf, size_t size);

/* Edit distance, capped at cap+1 (for suggestions it only matters whether it is small). */
size_t aegis_edit_distance(const char *a, const char *b, size_t cap);
/* The candidate closest to word when close enough to be a likely typo, else NULL. */
const char *aegis_suggest(const char *word, const char *const *cands, size_t n);

#endif
