/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/renewal.c: a table of renewal times pinned for the
 * edge cases (the default third, explicit renewBefore, renewBefore at or past
 * the lifetime, empty and negative lifetimes, 1-hour, 90-day and 5475-day
 * certificates, the minimum margin, jitter at 0 and just under 1 and out of
 * range, int64 extremes), then properties over many generated inputs, the
 * seeded jitter and renewal_due.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "check.h"
#include "renewal.h"

#define NB 1750000000LL /* 2025-06-15 */
#define HOUR 3600LL
#define DAY 86400LL
/* The largest double below 1. */
#define ALMOST_ONE 0.99999999999999989

struct renewal_case {
    const char *name;
    int64_t not_before, not_after, renew_before;
    double jitter;
    int64_t want;
};

static const struct renewal_case cases[] = {
    {"90d, default: the last third", NB, NB + 90 * DAY, 0, 0.0, NB + 60 * DAY},
    {"90d, renewBefore 30d", NB, NB + 90 * DAY, 30 * DAY, 0.0, NB + 60 * DAY},
    {"90d, renewBefore 1d", NB, NB + 90 * DAY, DAY, 0.0, NB + 89 * DAY},
    {"90d, negative renewBefore is the default", NB, NB + 90 * DAY, -5, 0.0, NB + 60 * DAY},
    {"90d, jitter just under 1: at most 1h earlier", NB, NB + 90 * DAY, 0, ALMOST_ONE,
     NB + 60 * DAY - 3599},
    {"90d, jitter 0.5", NB, NB + 90 * DAY, 0, 0.5, NB + 60 * DAY - 1800},
    {"5475d, default", NB, NB + 5475 * DAY, 0, 0.0, NB + 3650 * DAY},
    {"5475d, jitter capped at 1h", NB, NB + 5475 * DAY, 0, ALMOST_ONE, NB + 3650 * DAY - 3599},
    {"1h, default: 20m before", NB, NB + HOUR, 0, 0.0, NB + 40 * 60},
    {"1h, jitter: at most 1% (36s)", NB, NB + HOUR, 0, ALMOST_ONE, NB + 40 * 60 - 35},
    {"1h, renewBefore 1s: kept 5m before expiry", NB, NB + HOUR, 1, 0.0, NB + HOUR - 300},
    {"5m, renewBefore 1s: margin is a third", NB, NB + 300, 1, 0.0, NB + 200},
    {"90d, renewBefore 1s: kept 5m before expiry", NB, NB + 90 * DAY, 1, 0.0, NB + 90 * DAY - 300},
    {"renewBefore longer than the lifetime: now", NB, NB + 90 * DAY, 100 * DAY, 0.0, NB},
    {"renewBefore equal to the lifetime: now", NB, NB + 90 * DAY, 90 * DAY, 0.7, NB},
    {"renewBefore 10s short of the lifetime, jitter stops at notBefore", NB, NB + 100 * DAY,
     100 * DAY - 10, 0.5, NB},
    {"zero lifetime", NB, NB, 0, 0.0, NB},
    {"negative lifetime", NB, NB - DAY, 0, 0.3, NB},
    {"one-second lifetime", NB, NB + 1, 0, 0.0, NB + 1},
    {"three-second lifetime", NB, NB + 3, 0, 0.0, NB + 2},
    {"jitter 1.0 counts as 0", NB, NB + 90 * DAY, 0, 1.0, NB + 60 * DAY},
    {"negative jitter counts as 0", NB, NB + 90 * DAY, 0, -0.5, NB + 60 * DAY},
    {"already expired: the time is in the past", NB - 200 * DAY, NB - 110 * DAY, 0, 0.0,
     NB - 140 * DAY},
    {"lifetime overflowing int64: now", INT64_MIN, INT64_MAX, 0, 0.5, INT64_MIN},
    {"notAfter INT64_MAX", 0, INT64_MAX, 0, 0.0, INT64_MAX - INT64_MAX / 3},
    {"notAfter INT64_MAX, renewBefore INT64_MAX", 0, INT64_MAX, INT64_MAX, 0.0, 0},
    {"notBefore INT64_MIN, renewBefore INT64_MIN", INT64_MIN, INT64_MIN + 3 * DAY, INT64_MIN, 0.0,
     INT64_MIN + 2 * DAY},
    {"negative times", -90 * DAY, 0, 0, 0.0, -30 * DAY},
};

static void test_table(void)
{
    char name[160];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct renewal_case *c = &cases[i];

        snprintf(name, sizeof(name), "renewal_time: %s", c->name);
        CHECK_INT(renewal_time(c->not_before, c->not_after, c->renew_before, c->jitter), c->want,
                  name);
    }
    CHECK_INT(renewal_time(NB, NB + 90 * DAY, 0, NAN), NB + 60 * DAY, "NaN jitter counts as 0");
}

/* A small deterministic generator for the property test (xorshift64*). */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static void test_properties(void)
{
    size_t bad_range = 0, bad_margin = 0, bad_later = 0, bad_jitter = 0;

    for (int i = 0; i < 100000; i++) {
        int64_t nb = (int64_t)(rng() % (4000000000ULL)) - 1000000000LL;
        int64_t life = (int64_t)(rng() % (6000 * DAY)) + 1;
        int64_t rb = (int64_t)(rng() % (uint64_t)(life * 2)) - life / 4;
        double j = (double)(rng() >> 11) / 9007199254740992.0;
        int64_t na = nb + life, r = renewal_time(nb, na, rb, j), r0 = renewal_time(nb, na, rb, 0);
        int64_t margin = life / 3 < RENEWAL_MIN_MARGIN_S ? life / 3 : RENEWAL_MIN_MARGIN_S;
        int64_t jmax = life / 100 < RENEWAL_JITTER_MAX_S ? life / 100 : RENEWAL_JITTER_MAX_S;

        if (r < nb || r > na)
            bad_range++;
        if (r > na - margin && r != nb)
            bad_margin++;
        if (r > r0)
            bad_later++;
        if (r0 - r > jmax)
            bad_jitter++;
    }
    CHECK_INT(bad_range, 0, "property: notBefore <= renewalTime <= notAfter");
    CHECK_INT(bad_margin, 0, "property: renewalTime <= notAfter - margin (or notBefore)");
    CHECK_INT(bad_later, 0, "property: jitter never makes renewal later");
    CHECK_INT(bad_jitter, 0, "property: jitter at most min(1% of lifetime, 1h)");
}

static void test_jitter_seed(void)
{
    size_t out_of_range = 0, repeats = 0;
    double prev = -1, lo = 1, hi = 0;

    for (uint64_t s = 0; s < 100000; s++) {
        double j = renewal_jitter_from_seed(s);

        if (!(j >= 0.0 && j < 1.0))
            out_of_range++;
        if (j == prev)
            repeats++;
        prev = j;
        lo = j < lo ? j : lo;
        hi = j > hi ? j : hi;
    }
    CHECK_INT(out_of_range, 0, "seeded jitter is in [0, 1)");
    CHECK_INT(repeats, 0, "consecutive seeds give different jitter");
    CHECK(lo < 0.001 && hi > 0.999, "seeded jitter spreads over [0, 1)");
    CHECK(renewal_jitter_from_seed(42) == renewal_jitter_from_seed(42), "seeded jitter is stable");
    CHECK(renewal_jitter_from_seed(UINT64_MAX) < 1.0, "seed UINT64_MAX stays below 1");
    CHECK(renewal_seed_from_hex("00000000000000ff") == 255, "seed from hex");
    CHECK(renewal_seed_from_hex("FFFFFFFFFFFFFFFFab") == UINT64_MAX, "seed reads 16 digits");
    CHECK(renewal_seed_from_hex("") == 0 && renewal_seed_from_hex(NULL) == 0,
          "seed of nothing is 0");
    CHECK(renewal_seed_from_hex("1g") == 1, "seed stops at a non-hex digit");
}

static void test_due(void)
{
    int64_t r = renewal_time(NB, NB + 90 * DAY, 0, 0.25);

    CHECK(!renewal_due(NB, r), "not due at notBefore");
    CHECK(!renewal_due(r - 1, r), "not due a second before");
    CHECK(renewal_due(r, r), "due at renewalTime");
    CHECK(renewal_due(NB + 91 * DAY, r), "due once expired");
    CHECK(renewal_due(NB, renewal_time(NB, NB, 0, 0)), "zero lifetime is due at once");
    CHECK(renewal_due(INT64_MAX, INT64_MAX) && !renewal_due(INT64_MIN, INT64_MAX), "extremes");
}

int main(void)
{
    test_table();
    test_properties();
    test_jitter_seed();
    test_due();
    return check_done();
}
