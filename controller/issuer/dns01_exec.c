/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exec DNS-01 provider, lego's protocol: runs spec.exec.command with the extra arguments
 * `present|cleanup <fqdn> <value>` - directly, no shell, so names and values are never parsed -
 * and succeeds on exit status 0. A command that runs longer than spec.exec.timeout is killed.
 * On failure, the first DNS01_EXEC_OUTPUT_MAX bytes of its output go into the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/clock.h"
#include "issuer/dns01.h"

#define WHERE "spec.acme.solvers[].dns01.exec"
#define ARGS_MAX 40 /* the schema's 32 command words plus action, name, value, NULL */

extern char **environ;

/* Reads the child's output until EOF or the deadline; returns false on timeout. */
static bool collect(int fd, int64_t deadline_ms, char *out, size_t size, size_t *len)
{
    for (;;) {
        int64_t left = deadline_ms - aegis_monotonic_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char buf[512];
        ssize_t n;

        if (left <= 0)
            return false;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true;
        if (*len + 1 < size) {
            size_t k = (size_t)n < size - 1 - *len ? (size_t)n : size - 1 - *len;

            memcpy(out + *len, buf, k);
            *len += k;
            out[*len] = '\0';
        }
    }
}

static int run(const char *action, const struct dns01_record *rec, struct aegis_err *err)
{
    const struct aegis_acme_dns01_exec *spec = &rec->spec->exec;
    int64_t timeout = spec->timeout_ms > 0 ? spec->timeout_ms : DNS01_EXEC_TIMEOUT_DEFAULT_MS;
    char *argv[ARGS_MAX], output[DNS01_EXEC_OUTPUT_MAX] = "";
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    size_t n = 0, out_len = 0;
    int fds[2], status = 0, rc;
    pid_t pid;
    bool done;

    if (spec->command.n == 0 || spec->command.n + 4 > ARGS_MAX)
        return aegis_err_set(err, -AEGIS_E_INVALID, WHERE, "command needs 1 to 32 words");
    for (size_t i = 0; i < spec->command.n; i++)
        argv[n++] = spec->command.v[i];
    argv[n++] = (char *)action;
    argv[n++] = (char *)rec->fqdn;
    argv[n++] = (char *)rec->value;
    argv[n] = NULL;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return aegis_err_set(err, -errno, WHERE, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    /* The controller blocks SIGINT, SIGTERM and SIGHUP for its signalfd; the hook must not
     * inherit that mask (a blocked SIGTERM would make it unkillable by its own scripts). */
    sigemptyset(&none);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigmask(&attr, &none);
    rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return aegis_err_set(err, -rc, WHERE,
                             "cannot run %s: %s (fix spec.acme.solvers[].dns01."
                             "exec.command)",
                             argv[0], strerror(rc));
    }
    done = collect(fds[0], aegis_monotonic_ms() + timeout, output, sizeof(output), &out_len);
    close(fds[0]);
    if (!done)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    while (out_len > 0 && (output[out_len - 1] == '\n' || output[out_len - 1] == '\r'))
        output[--out_len] = '\0';
    if (!done)
        return aegis_err_set(
            err, -ETIMEDOUT, WHERE, "%s %s %s took longer than %lld ms and was killed; output: %s",
            argv[0], action, rec->fqdn, (long long)timeout, out_len ? output : "(none)");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return aegis_err_set(err, -AEGIS_E_STATE, WHERE, "%s %s %s failed (%s %d); output: %s",
                             argv[0], action, rec->fqdn,
                             WIFEXITED(status) ? "exit status" : "signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                             out_len ? output : "(none)");
    return 0;
}

static int exec_present(const struct dns01_record *rec, struct aegis_err *err)
{
    return run("present", rec, err);
}

static int exec_cleanup(const struct dns01_record *rec, struct aegis_err *err)
{
    return run("cleanup", rec, err);
}

const struct dns01_provider_ops dns01_exec_ops = {
    .name = "exec",
    .spec_field = API_F_ACME_SOLVER_DNS01_EXEC,
    .present = exec_present,
    .cleanup = exec_cleanup,
};
