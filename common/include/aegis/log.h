/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging for the daemons and the CLI. common/ never prints: this module formats one logfmt
 * line per event (time, level, module, message, key=value fields) and hands it to a sink that
 * the binary's main.c installs (stderr, a file, journald). Every line passes through a redaction
 * step that removes PEM private-key blocks, so a key that reaches a message by mistake still
 * never reaches the log.
 */
#ifndef AEGIS_LOG_H
#define AEGIS_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* X(ENUM, "name") - most to least severe. */
#define AEGIS_LOG_LEVELS(X)                                                                        \
    X(ERROR, "error")                                                                              \
    X(WARN, "warn")                                                                                \
    X(INFO, "info")                                                                                \
    X(DEBUG, "debug")

enum aegis_log_level {
#define AEGIS_LOG_LEVEL_ENUM(e, name) AEGIS_LOG_##e,
    AEGIS_LOG_LEVELS(AEGIS_LOG_LEVEL_ENUM)
#undef AEGIS_LOG_LEVEL_ENUM
        AEGIS_LOG_LEVEL_COUNT_
};

/* Longest line handed to a sink; longer messages are cut and end in "...". */
#define AEGIS_LOG_LINE_MAX 4096

/* Receives one complete line (no newline). Called from any thread; must be thread-safe. */
typedef void (*aegis_log_sink_fn)(enum aegis_log_level level, const char *line, void *arg);

/* Installs the sink (NULL: drop everything, the default) and its argument. */
void aegis_log_set_sink(aegis_log_sink_fn sink, void *arg);
/* Events less severe than level are dropped (default AEGIS_LOG_INFO). */
void aegis_log_set_level(enum aegis_log_level level);
enum aegis_log_level aegis_log_get_level(void);
/* "info" etc.; returns -AEGIS_E_INVALID for an unknown name. */
int aegis_log_level_parse(const char *name, enum aegis_log_level *level);
const char *aegis_log_level_name(enum aegis_log_level level);

/*
 * Logs msg (printf-style) from module ("store", "ca", ...). The message is quoted and escaped as
 * logfmt requires; the time is UTC with milliseconds.
 */
void aegis_log(enum aegis_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void aegis_vlog(enum aegis_log_level level, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Replaces every PEM block whose label names a private key ("PRIVATE KEY", "RSA PRIVATE KEY",
 * "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", ...) in the NUL-terminated text, in place, by
 * "[redacted private key]". An unterminated block is redacted to the end. Returns how many
 * blocks were redacted.
 */
size_t aegis_log_redact(char *text);

#endif
