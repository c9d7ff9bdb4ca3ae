/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The renewal policy (renewal.h): a pure computation of renewalTime from a certificate's validity,
 * renewBefore and an injected jitter. No clock, no randomness and no I/O here: the caller passes
 * all of them, so the decision can be tested and repeated.
 */
#include "renewal.h"

#include <stddef.h>

/*
 * Every intermediate value stays between not_before and not_after, or is a difference of two
 * of them checked with __builtin_sub_overflow, so no input can overflow int64_t.
 */
int64_t renewal_time(int64_t not_before, int64_t not_after, int64_t renew_before, double jitter)
{
    int64_t lifetime, margin, latest, renewal, jitter_max, jitter_s;

    if (not_after <= not_before || __builtin_sub_overflow(not_after, not_before, &lifetime))
        return not_before; /* an empty, negative or unrepresentable lifetime: renew now */
    if (renew_before <= 0)
        renew_before = lifetime / 3;
    if (renew_before >= lifetime)
        return not_before; /* renewBefore covers the whole lifetime: renew as soon as valid */
    renewal = not_after - renew_before;

    /* A renewBefore of a few seconds would leave no time to renew before expiry. */
    margin = lifetime / 3 < RENEWAL_MIN_MARGIN_S ? lifetime / 3 : RENEWAL_MIN_MARGIN_S;
    latest = not_after - margin;
    if (renewal > latest)
        renewal = latest;

    /*
     * The jitter only ever moves renewal earlier: later could pass the margin, and a certificate
     * renewed a little early costs nothing while one renewed late may expire in use.
     */
    jitter_max = lifetime / RENEWAL_JITTER_DIVISOR;
    if (jitter_max > RENEWAL_JITTER_MAX_S)
        jitter_max = RENEWAL_JITTER_MAX_S;
    if (!(jitter >= 0.0 && jitter < 1.0)) /* also catches NaN */
        jitter = 0.0;
    jitter_s = (int64_t)(jitter * (double)jitter_max);
    if (jitter_s > jitter_max) /* rounding of jitter close to 1 */
        jitter_s = jitter_max;
    if (renewal - not_before < jitter_s)
        return not_before;
    return renewal - jitter_s;
}

double renewal_jitter_from_seed(uint64_t seed)
{
    /* splitmix64's finalizer: every seed bit reaches every output bit. */
    uint64_t z = seed + UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    /* The top 53 bits fill a double's mantissa exactly, so the result is < 1. */
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t renewal_seed_from_hex(const char *hex)
{
    uint64_t v = 0;

    for (size_t i = 0; hex != NULL && hex[i] != '\0' && i < 16; i++) {
        char c = hex[i];
        unsigned d;

        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        v = (v << 4) | d;
    }
    return v;
}

bool renewal_due(int64_t now, int64_t renewal)
{
    return now >= renewal;
}
