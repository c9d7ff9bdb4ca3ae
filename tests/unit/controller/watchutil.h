/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs a directory watcher (controller/watch.h) until it is idle, for the tests that drive one:
 * no deadline left and the descriptor quiet for 20 ms, moving the injected clock *clk to each
 * deadline. Returns how many snapshots were made, or -1 when watch_process failed or the watcher
 * did not settle within a bounded number of steps (never a hang).
 */
#ifndef AEGIS_TEST_WATCHUTIL_H
#define AEGIS_TEST_WATCHUTIL_H

#include <poll.h>
#include <stdint.h>

#include "watch.h"

static inline int watchutil_settle(struct watch_source *w, int64_t *clk)
{
    struct pollfd pfd = {.fd = watch_fd(w), .events = POLLIN};
    int reloads = 0;

    for (int i = 0; i < 400; i++) {
        int64_t next;
        int rc = watch_process(w, *clk, &next);

        if (rc < 0)
            return -1;
        reloads += rc;
        if (next == WATCH_NO_DEADLINE) {
            if (poll(&pfd, 1, 20) == 0)
                return reloads;
        } else if (next > *clk) {
            *clk = next;
        }
    }
    return -1;
}

#endif
