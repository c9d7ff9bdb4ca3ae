/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The renewal policy: when a certificate should be renewed, as a pure function of its validity,
 * the Certificate's renewBefore and an injected jitter value, so that tests can pin every edge and
 * the reconciler computes the same renewalTime on every pass (level-triggered).
 *
 * renewalTime = notAfter - renewBefore (renewBefore 0: a third of the lifetime, as cert-manager
 * does), moved earlier by a jitter of up to 1% of the lifetime (at most RENEWAL_JITTER_MAX_S) so
 * that certificates issued together do not all renew in the same second, and never later than
 * notAfter - min(RENEWAL_MIN_MARGIN_S, lifetime / 3), so that a renewBefore of a few seconds still
 * leaves time to renew. It never goes before notBefore: a renewBefore at least as long as the
 * lifetime, or an empty or negative lifetime, means "renew now" (renewalTime = notBefore).
 *
 * Times are Unix seconds in int64_t; the arithmetic cannot overflow for any input.
 */
#ifndef AEGIS_RENEWAL_H
#define AEGIS_RENEWAL_H

#include <stdbool.h>
#include <stdint.h>

/* The jitter is at most 1/RENEWAL_JITTER_DIVISOR of the lifetime ... */
#define RENEWAL_JITTER_DIVISOR 100
/* ... and at most one hour. */
#define RENEWAL_JITTER_MAX_S 3600
/* renewalTime is at least this long before notAfter (or a third of the lifetime, if shorter). */
#define RENEWAL_MIN_MARGIN_S 300

/*
 * The renewal time of a certificate valid from not_before to not_after (Unix seconds), renewed
 * renew_before seconds before it expires (<= 0: the default, a third of the lifetime), moved
 * earlier by jitter * min(lifetime / 100, RENEWAL_JITTER_MAX_S) seconds. jitter is a value in
 * [0, 1): from renewal_jitter_from_seed (stable) or a random source; values outside [0, 1) or NaN
 * count as 0. Always returns a time in [not_before, not_after] when not_before < not_after, and
 * not_before otherwise.
 */
int64_t renewal_time(int64_t not_before, int64_t not_after, int64_t renew_before, double jitter);

/*
 * A jitter value in [0, 1) derived from seed (splitmix64), so that one certificate always gets the
 * same jitter: seed it with renewal_seed_from_hex(fingerprint) and renewalTime stays put across
 * passes and restarts while certificates issued together still spread out.
 */
double renewal_jitter_from_seed(uint64_t seed);

/* The first 16 hex digits of hex (e.g. a SHA-256 fingerprint) as a number; 0 for no digits. */
uint64_t renewal_seed_from_hex(const char *hex);

/* Whether a certificate with this renewal time is due at now (Unix seconds): now >= renewal. */
bool renewal_due(int64_t now, int64_t renewal);

#endif
