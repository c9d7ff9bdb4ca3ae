/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local dataplane's supervisor (supervise.h). posix_spawn rather than fork: the controller
 * may hold threads and large mappings, and the child only needs its command line.
 */
#include "supervise.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "aegis/log.h"

extern char **environ;

struct supervisor {
    char **argv;
    pid_t pid;
    int64_t started_ms;
    int64_t restart_at_ms; /* when to start the next child; 0: now */
    int64_t delay_ms;      /* the current restart delay */
};

int supervise_new(char *const *argv, struct supervisor **out, struct aegis_err *err)
{
    struct supervisor *s;
    size_t n = 0;

    if (argv == NULL || argv[0] == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, "supervise", "no dataplane command");
    while (argv[n] != NULL)
        n++;
    s = aegis_calloc(1, sizeof(*s));
    s->argv = aegis_calloc(n + 1, sizeof(*s->argv));
    for (size_t i = 0; i < n; i++)
        s->argv[i] = aegis_strdup(argv[i]);
    s->delay_ms = SUPERVISE_RESTART_MIN_MS;
    *out = s;
    return 0;
}

static void describe_exit(const struct supervisor *s, int status)
{
    if (WIFEXITED(status))
        aegis_log(WEXITSTATUS(status) == 0 ? AEGIS_LOG_INFO : AEGIS_LOG_ERROR, "dataplane",
                  "pid %d exited with status %d", (int)s->pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        aegis_log(AEGIS_LOG_ERROR, "dataplane", "pid %d was killed by signal %d", (int)s->pid,
                  WTERMSIG(status));
}

/*
 * Starts the child with default signal handling and an empty signal mask (the controller blocks
 * its signals for signalfd), in a process group of its own: a Ctrl-C reaches the controller,
 * which then stops the dataplane after itself has stopped pushing.
 */
static int spawn(struct supervisor *s)
{
    posix_spawnattr_t attr;
    sigset_t none, deflt;
    int rc;

    sigemptyset(&none);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGINT);
    sigaddset(&deflt, SIGHUP);
    sigaddset(&deflt, SIGPIPE);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setpgroup(&attr, 0);
    rc = posix_spawn(&s->pid, s->argv[0], NULL, &attr, s->argv, environ);
    posix_spawnattr_destroy(&attr);
    return rc;
}

int supervise_poll(struct supervisor *s, int64_t now_ms, int64_t *next_ms)
{
    int status, rc;

    *next_ms = now_ms + SUPERVISE_RESTART_MIN_MS;
    if (s->pid > 0) {
        pid_t got = waitpid(s->pid, &status, WNOHANG);

        if (got == 0)
            return 0;
        if (got == s->pid)
            describe_exit(s, status);
        /* It died: restart after the delay, which grows while it dies young. */
        if (now_ms - s->started_ms >= SUPERVISE_STABLE_MS)
            s->delay_ms = SUPERVISE_RESTART_MIN_MS;
        s->restart_at_ms = now_ms + s->delay_ms;
        aegis_log(AEGIS_LOG_WARN, "dataplane", "restarting it in %lld ms", (long long)s->delay_ms);
        s->delay_ms =
            s->delay_ms * 2 > SUPERVISE_RESTART_MAX_MS ? SUPERVISE_RESTART_MAX_MS : s->delay_ms * 2;
        s->pid = 0;
    }
    if (now_ms < s->restart_at_ms) {
        *next_ms = s->restart_at_ms;
        return 0;
    }
    rc = spawn(s);
    if (rc != 0) {
        aegis_log(AEGIS_LOG_ERROR, "dataplane", "cannot start %s: %s", s->argv[0], strerror(rc));
        s->pid = 0;
        s->restart_at_ms = now_ms + s->delay_ms;
        *next_ms = s->restart_at_ms;
        return 0;
    }
    s->started_ms = now_ms;
    aegis_log(AEGIS_LOG_INFO, "dataplane", "started %s (pid %d)", s->argv[0], (int)s->pid);
    return 1;
}

pid_t supervise_pid(const struct supervisor *s)
{
    return s != NULL ? s->pid : 0;
}

void supervise_free(struct supervisor *s)
{
    if (s == NULL)
        return;
    if (s->pid > 0) {
        int64_t deadline = aegis_monotonic_ms() + SUPERVISE_STOP_MS;
        int status;

        kill(s->pid, SIGTERM);
        while (waitpid(s->pid, &status, WNOHANG) == 0) {
            if (aegis_monotonic_ms() >= deadline) {
                aegis_log(AEGIS_LOG_ERROR, "dataplane", "pid %d did not stop: killed", (int)s->pid);
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                break;
            }
            usleep(20 * 1000);
        }
    }
    for (size_t i = 0; s->argv[i] != NULL; i++)
        free(s->argv[i]);
    free(s->argv);
    free(s);
}
