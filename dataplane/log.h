/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dataplane's log: one line per event on stderr, "2025-06-15T12:00:00Z aegis-dataplane[w1]:
 * warning: message", written with a single write(2) so lines of several worker threads never
 * interleave. Messages never contain key material.
 */
#ifndef DP_LOG_H
#define DP_LOG_H

enum dp_log_level {
    DP_LOG_ERROR,
    DP_LOG_WARNING,
    DP_LOG_INFO,
    DP_LOG_DEBUG,
};

/* Sets the most verbose level written (default DP_LOG_INFO). */
void dp_log_set_level(enum dp_log_level level);
/* Names the calling thread in its log lines ("main", "w0", ...); name is copied. */
void dp_log_set_thread(const char *name);
void dp_log(enum dp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
