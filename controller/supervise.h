/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local dataplane of directory mode: the controller starts aegis-dataplane as a child, talks
 * to it over its 0600 admin socket, restarts it when it dies (after 1 s, doubling to 30 s while
 * it keeps dying within a minute of starting) and stops it with SIGTERM when the controller
 * stops. `--no-dataplane` skips all of this for a dataplane run separately.
 */
#ifndef AEGIS_SUPERVISE_H
#define AEGIS_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "aegis/err.h"

#define SUPERVISE_RESTART_MIN_MS 1000
#define SUPERVISE_RESTART_MAX_MS 30000
/* A child that ran this long before dying starts the backoff afresh. */
#define SUPERVISE_STABLE_MS 60000
/* How long a stopping child gets after SIGTERM before SIGKILL. */
#define SUPERVISE_STOP_MS 20000

struct supervisor;

/* argv (NULL-terminated, copied) is the dataplane's command line; argv[0] its path. */
int supervise_new(char *const *argv, struct supervisor **out, struct aegis_err *err);
/*
 * Reaps and (re)starts the child at now_ms (monotonic). Returns 1 when a new child was started
 * (its configuration must be pushed again), 0 otherwise; *next_ms is when to call again.
 */
int supervise_poll(struct supervisor *s, int64_t now_ms, int64_t *next_ms);
/* The running child's pid, or 0. */
pid_t supervise_pid(const struct supervisor *s);
/* Stops the child (SIGTERM, then SIGKILL after SUPERVISE_STOP_MS) and frees s. Accepts NULL. */
void supervise_free(struct supervisor *s);

#endif
