/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal TAP producer for the unit tests: each CHECK prints "ok N - ..." or "not ok N - ..."
 * with the place and the values, and check_done() prints the plan and a closing
 * "N passed, N failed" line and returns the exit status for main.
 *
 * Usage:
 *   int main(void) { CHECK(1 + 1 == 2, "sum"); CHECK_STR(got, "want", "name"); return check_done(); }
 * Test-only access to file-local functions goes through AEGIS_TESTABLE (see common/testable.h).
 */
#ifndef AEGIS_TEST_CHECK_H
#define AEGIS_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_n_, check_failed_;

static inline int check_report_(int ok, const char *file, int line, const char *what)
{
    check_n_++;
    if (!ok)
        check_failed_++;
    printf("%s %d - %s\n", ok ? "ok" : "not ok", check_n_, what ? what : "(null)");
    if (!ok)
        printf("#   at %s:%d\n", file, line);
    return ok;
}

#define CHECK(cond, what) check_report_(!!(cond), __FILE__, __LINE__, (what))

#define CHECK_STR(got, want, what)                                                                 \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        int ok_ = (g_ == NULL && w_ == NULL) || (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0); \
        if (!check_report_(ok_, __FILE__, __LINE__, (what)))                                       \
            printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");        \
    } while (0)

#define CHECK_INT(got, want, what)                                                                 \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (!check_report_(g_ == w_, __FILE__, __LINE__, (what)))                                  \
            printf("#   got:  %lld\n#   want: %lld\n", g_, w_);                                    \
    } while (0)

static inline int check_done(void)
{
    printf("1..%d\n", check_n_);
    printf("%d passed, %d failed\n", check_n_ - check_failed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
