/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logfmt lines handed to a sink installed by the binary (common/ never prints). The level and
 * the sink are read without a lock: they are set once at start-up, before threads exist, and
 * a torn read of an int-sized level is not possible on the platforms we build for; the atomic
 * types make that explicit.
 */
#include "aegis/log.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aegis/err.h"

static const char *const level_names[] = {
#define AEGIS_LOG_LEVEL_NAME(e, name) name,
    AEGIS_LOG_LEVELS(AEGIS_LOG_LEVEL_NAME)
#undef AEGIS_LOG_LEVEL_NAME
};

static _Atomic int cur_level = AEGIS_LOG_INFO;
static aegis_log_sink_fn _Atomic cur_sink;
static void *_Atomic cur_arg;

static const char REDACTED[] = "[redacted private key]";

void aegis_log_set_sink(aegis_log_sink_fn sink, void *arg)
{
    atomic_store(&cur_arg, arg);
    atomic_store(&cur_sink, sink);
}

void aegis_log_set_level(enum aegis_log_level level)
{
    atomic_store(&cur_level, (int)level);
}

enum aegis_log_level aegis_log_get_level(void)
{
    return (enum aegis_log_level)atomic_load(&cur_level);
}

int aegis_log_level_parse(const char *name, enum aegis_log_level *level)
{
    for (int i = 0; i < AEGIS_LOG_LEVEL_COUNT_; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (enum aegis_log_level)i;
            return 0;
        }
    }
    return -AEGIS_E_INVALID;
}

const char *aegis_log_level_name(enum aegis_log_level level)
{
    return (unsigned)level < AEGIS_LOG_LEVEL_COUNT_ ? level_names[level] : "?";
}

/* The label of a "-----BEGIN <label>-----" line at p names a private key. */
static bool is_key_begin(const char *p, const char **label_end)
{
    static const char begin[] = "-----BEGIN ";
    const char *end;

    if (strncmp(p, begin, sizeof(begin) - 1) != 0)
        return false;
    end = strstr(p + sizeof(begin) - 1, "-----");
    if (end == NULL)
        return false;
    *label_end = end + 5;
    /* Any label ending in "PRIVATE KEY" (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8). */
    return end - (p + sizeof(begin) - 1) >= 11 && strncmp(end - 11, "PRIVATE KEY", 11) == 0;
}

size_t aegis_log_redact(char *text)
{
    size_t n = 0;
    char *p = text;

    while ((p = strstr(p, "-----BEGIN ")) != NULL) {
        const char *label_end = NULL;
        char *stop;
        size_t rest;

        if (!is_key_begin(p, &label_end)) {
            p += 11;
            continue;
        }
        stop = strstr(label_end, "-----END ");
        if (stop != NULL) {
            char *close = strstr(stop + 9, "-----");

            stop = close != NULL ? close + 5 : stop + strlen(stop);
        } else {
            stop = p + strlen(p);
        }
        /* The redaction text is never longer than a block: BEGIN line alone is longer. */
        rest = strlen(stop);
        memcpy(p, REDACTED, sizeof(REDACTED) - 1);
        memmove(p + sizeof(REDACTED) - 1, stop, rest + 1);
        p += sizeof(REDACTED) - 1;
        n++;
    }
    return n;
}

/* Appends s to buf as a logfmt quoted value. */
static size_t put_quoted(char *buf, size_t o, size_t size, const char *s)
{
    if (o + 1 < size)
        buf[o++] = '"';
    for (; *s != '\0' && o + 5 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (*s != '\0' && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    if (o + 1 < size)
        buf[o++] = '"';
    buf[o] = '\0';
    return o;
}

void aegis_vlog(enum aegis_log_level level, const char *module, const char *fmt, va_list ap)
{
    aegis_log_sink_fn sink = atomic_load(&cur_sink);
    char msg[AEGIS_LOG_LINE_MAX];
    char line[AEGIS_LOG_LINE_MAX + 128];
    struct timespec ts;
    struct tm tm;
    size_t o;

    if (sink == NULL || (int)level > atomic_load(&cur_level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    aegis_log_redact(msg);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    o = strftime(line, sizeof(line), "time=%Y-%m-%dT%H:%M:%S", &tm);
    o += (size_t)snprintf(line + o, sizeof(line) - o,
                          ".%03ldZ level=%s module=%s msg=", ts.tv_nsec / 1000000,
                          aegis_log_level_name(level), module != NULL ? module : "-");
    put_quoted(line, o, sizeof(line), msg);
    sink(level, line, atomic_load(&cur_arg));
}

void aegis_log(enum aegis_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    aegis_vlog(level, module, fmt, ap);
    va_end(ap);
}
