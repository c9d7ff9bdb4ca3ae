# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
#
# Helpers shared by the integration tests, sourced by each tests/integration/NN-*.sh with
# `. "$(dirname "$0")/lib.sh"` after its `set -euo pipefail`. This file is not executable, so
# CMake does not register it as a test. It sets:
#   SRC     AEGIS_SOURCE_DIR, by default the repository holding this file;
#   TMP     a fresh temporary directory, removed at exit after the on_exit hooks have run;
#   n, passed, failed   the TAP counters;
# and provides:
#   ok NAME                  "ok N - NAME";
#   notok NAME [DETAIL...]   "not ok N - NAME", then each DETAIL's lines as "#   " comments;
#   bail_out MESSAGE         "Bail out! MESSAGE" and "0 passed, 1 failed", then exit 1;
#   on_exit FUNCTION         run FUNCTION at exit, before TMP is removed (stop servers here);
#   free_port                print a TCP port that is free on 127.0.0.1 right now;
#   wait_port PORT           wait up to 5 seconds for a listener on 127.0.0.1:PORT;
#   summary                  the closing "N passed, N failed" line; fails when one failed;
#   finish                   the TAP plan "1..N", then summary.
# The last line of a test is `summary` or `finish`, so the script's status is the verdict.

# SRC is for the scripts that source this file.
# shellcheck disable=SC2034
SRC=${AEGIS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

TMP=$(mktemp -d)
exit_hooks=()
on_exit() {
    exit_hooks+=("$1")
}
run_exit_hooks() {
    local h
    for h in "${exit_hooks[@]}"; do
        "$h" || true
    done
    rm -rf "$TMP"
}
trap run_exit_hooks EXIT

n=0
passed=0
failed=0
ok() {
    n=$((n + 1)); passed=$((passed + 1))
    echo "ok $n - $1"
}
notok() {
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    local l
    for l in "$@"; do
        printf '%s\n' "$l" | sed 's/^/#   /'
    done
}

bail_out() {
    echo "Bail out! $1"
    echo "0 passed, 1 failed"
    exit 1
}

# The kernel picks the port; another process may take it before the caller binds it, which the
# tests accept as very unlikely on a test machine.
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    local i
    for ((i = 0; i < 50; i++)); do
        if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

summary() {
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

finish() {
    echo "1..$n"
    summary
}
