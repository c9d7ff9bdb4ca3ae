/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dataplane's log (log.h). Each line is formatted into a bounded buffer and written with one
 * write(2), which the kernel keeps whole for a pipe or file at this size, so that worker threads
 * need no lock to log.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static atomic_int max_level = DP_LOG_INFO;
static _Thread_local char thread_name[16] = "main";

void dp_log_set_level(enum dp_log_level level)
{
    atomic_store(&max_level, (int)level);
}

void dp_log_set_thread(const char *name)
{
    snprintf(thread_name, sizeof(thread_name), "%s", name);
}

void dp_log(enum dp_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error: ", "warning: ", "", "debug: "};
    char line[LINE_MAX_BYTES];
    struct tm tm;
    time_t now = time(NULL);
    size_t len;
    va_list ap;
    int n;

    if ((int)level > atomic_load(&max_level))
        return;
    gmtime_r(&now, &tm);
    len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
    n = snprintf(line + len, sizeof(line) - len, " aegis-dataplane[%s]: %s", thread_name,
                 names[level]);
    if (n > 0)
        len += (size_t)n;
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    va_end(ap);
    if (n > 0)
        len = len + (size_t)n < sizeof(line) - 1 ? len + (size_t)n : sizeof(line) - 2;
    line[len++] = '\n';
    /* A log line that cannot be written has nowhere else to go. */
    if (write(STDERR_FILENO, line, len) < 0)
        return;
}
