/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/challenges.c: versions grow on changes only, a token is published
 * only after a push carrying a version that held it was acknowledged (and a changed key
 * authorization needs a new acknowledgement), snapshots are sorted copies, cleanup removes, the
 * wake callback fires on every change, and the publisher interface reaches the same set.
 */
#include <string.h>

#include "challenges.h"
#include "check.h"

static int wakes;

static void wake(void *ctx)
{
    (void)ctx;
    wakes++;
}

int main(void)
{
    struct challenges *c = challenges_new(wake, NULL);
    const struct issuer_http01 *h = challenges_http01(c);
    struct challenges_snapshot s;
    uint64_t v1;

    CHECK_INT(challenges_version(c), 0, "a new set is at version 0");
    CHECK(h->present(h->ctx, "tok-b", "tok-b.tp", NULL) == 0, "present through the publisher");
    v1 = challenges_version(c);
    CHECK(v1 == 1 && wakes == 1, "the version grows and the loop is woken");
    CHECK(!h->published(h->ctx, "tok-b"), "not published before a push was acknowledged");
    CHECK(challenges_present(c, "tok-b", "tok-b.tp", NULL) == 0 && challenges_version(c) == v1 &&
              wakes == 1,
          "presenting the same again changes nothing");
    challenges_present(c, "tok-a", "tok-a.tp", NULL);
    challenges_snapshot(c, &s);
    CHECK(s.n == 2 && strcmp(s.v[0].token, "tok-a") == 0 &&
              strcmp(s.v[1].key_authorization, "tok-b.tp") == 0 && s.version == 2,
          "the snapshot is a sorted copy with its version");
    challenges_acknowledged(c, v1);
    CHECK(challenges_published(c, "tok-b"), "tok-b was in an acknowledged version");
    CHECK(!challenges_published(c, "tok-a"), "tok-a came after it");
    challenges_acknowledged(c, s.version);
    CHECK(challenges_published(c, "tok-a"), "published once its version is acknowledged");
    challenges_snapshot_free(&s);
    challenges_present(c, "tok-a", "other.tp", NULL);
    CHECK(!challenges_published(c, "tok-a"), "a changed key authorization needs a new push");
    h->cleanup(h->ctx, "tok-a");
    CHECK(!challenges_published(c, "tok-a") && challenges_version(c) == 4 && wakes == 4,
          "cleanup removes it, grows the version and wakes");
    h->cleanup(h->ctx, "tok-none");
    CHECK(challenges_version(c) == 4, "cleanup of an unknown token changes nothing");
    CHECK(challenges_present(c, "t", "x", NULL) == 0, "a short token is fine");
    {
        char big[600];
        struct aegis_err e = {0};

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        CHECK(challenges_present(c, big, "x", &e) == -AEGIS_E_LIMIT,
              "an oversized token is refused");
    }
    challenges_free(c);
    return check_done();
}
