/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the logger: levels, the logfmt line, quoting, and that private keys never get out. */
#include <stdlib.h>
#include <string.h>

#include "aegis/log.h"
#include "check.h"

static char last[AEGIS_LOG_LINE_MAX + 256];
static int calls;

static void sink(enum aegis_log_level level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    snprintf(last, sizeof(last), "%s", line);
    calls++;
}

static const char KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                          "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgc2VjcmV0c2VjcmV0\n"
                          "-----END PRIVATE KEY-----\n";

static void test_levels_and_format(void)
{
    enum aegis_log_level lv;

    aegis_log_set_sink(sink, NULL);
    aegis_log_set_level(AEGIS_LOG_INFO);
    calls = 0;
    aegis_log(AEGIS_LOG_DEBUG, "t", "hidden");
    CHECK_INT(calls, 0, "debug is dropped at level info");
    aegis_log(AEGIS_LOG_WARN, "store", "disk %s", "slow");
    CHECK_INT(calls, 1, "warn passes at level info");
    CHECK(strncmp(last, "time=", 5) == 0, "line starts with the time");
    CHECK(strstr(last, "Z level=warn module=store msg=\"disk slow\"") != NULL,
          "level, module and quoted message");
    aegis_log(AEGIS_LOG_ERROR, "t", "a \"quoted\"\nline\\");
    CHECK(strstr(last, "msg=\"a \\\"quoted\\\"\\nline\\\\\"") != NULL, "logfmt escaping");
    CHECK_INT(aegis_log_level_parse("debug", &lv), 0, "parse debug");
    CHECK_INT(lv, AEGIS_LOG_DEBUG, "debug parsed");
    CHECK(aegis_log_level_parse("loud", &lv) < 0, "unknown level refused");
}

static void test_redaction(void)
{
    char buf[1024];
    static const char *const labels[] = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
                                         "ENCRYPTED PRIVATE KEY"};

    snprintf(buf, sizeof(buf), "before %s after", KEY);
    CHECK_INT(aegis_log_redact(buf), 1, "one key block redacted");
    CHECK_STR(buf, "before [redacted private key]\n after", "block replaced, text kept");
    for (size_t i = 0; i < 4; i++) {
        char name[64];

        snprintf(buf, sizeof(buf), "-----BEGIN %s-----\nAAAA\n-----END %s-----", labels[i],
                 labels[i]);
        aegis_log_redact(buf);
        snprintf(name, sizeof(name), "%s redacted", labels[i]);
        CHECK_STR(buf, "[redacted private key]", name);
    }
    snprintf(buf, sizeof(buf), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----");
    CHECK_INT(aegis_log_redact(buf), 0, "certificates are not redacted");
    snprintf(buf, sizeof(buf), "cut -----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG");
    aegis_log_redact(buf);
    CHECK_STR(buf, "cut [redacted private key]", "an unterminated block is redacted to the end");

    aegis_log_set_sink(sink, NULL);
    aegis_log(AEGIS_LOG_ERROR, "t", "oops %s", KEY);
    CHECK(strstr(last, "PRIVATE KEY") == NULL && strstr(last, "c2VjcmV0") == NULL,
          "a key in a message never reaches the sink");
    aegis_log_set_sink(NULL, NULL);
}

static void test_long_message(void)
{
    char *big = malloc(3 * AEGIS_LOG_LINE_MAX);

    memset(big, 'x', 3 * AEGIS_LOG_LINE_MAX - 1);
    big[3 * AEGIS_LOG_LINE_MAX - 1] = '\0';
    aegis_log_set_sink(sink, NULL);
    aegis_log(AEGIS_LOG_ERROR, "t", "%s", big);
    CHECK(strlen(last) < AEGIS_LOG_LINE_MAX + 128, "long messages are cut");
    aegis_log_set_sink(NULL, NULL);
    free(big);
}

int main(void)
{
    test_levels_and_format();
    test_redaction();
    test_long_message();
    return check_done();
}
