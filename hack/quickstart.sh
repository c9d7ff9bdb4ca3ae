#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command: on a fresh Debian 12 machine, installs the dependencies, builds
# Aegis in build/ (gcc, no sanitizers) and runs the main job on the embedded default - no
# internet needed: aegis-controller watching examples/quickstart/ (the built-in local CA and one
# Host for "localhost"), the local aegis-dataplane it starts on 127.0.0.1:8080 (HTTP) and :8443
# (HTTPS), a small upstream on 127.0.0.1:8081 serving examples/quickstart/www, and the
# controller's read-only status API and metrics on 127.0.0.1:9180. Once the page
# is served over verified HTTPS it prints the curl line to fetch it, and runs until Ctrl-C,
# which stops everything.
#
#   hack/quickstart.sh           build, start, wait for Ctrl-C
#   hack/quickstart.sh --check   build, start, fetch the page once, stop (exit status 0 when
#                                the page came over verified HTTPS)
#
# State (store, master key, statuses) goes to .aegis/quickstart.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=false
if [[ ${1:-} == --check ]]; then
    check=true
elif [[ $# -gt 0 ]]; then
    echo "usage: hack/quickstart.sh [--check]" >&2
    exit 2
fi

hack/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc
# Only the binaries: the tests are built and run by hack/test.sh.
cmake --build build -j"$(nproc)" --target aegisctl aegis-controller aegis-dataplane

echo
echo "== aegisctl validate examples/"
build/aegisctl validate examples/

state=.aegis/quickstart
mkdir -p "$state"
pids=()
stop() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop EXIT
trap 'exit 130' INT TERM

/usr/bin/python3 -m http.server 8081 --bind 127.0.0.1 --directory examples/quickstart/www \
    >"$state/upstream.log" 2>&1 &
pids+=($!)
build/aegis-controller --watch examples/quickstart --state-dir "$state" \
    --http 127.0.0.1:8080 --https 127.0.0.1:8443 --http-listen 127.0.0.1:9180 &
pids+=($!)

ca="$state/aegis-local-ca.crt"
for _ in $(seq 1 100); do
    if build/aegisctl ca bundle --state-dir "$state" -o "$ca" 2>/dev/null &&
        curl -sf --max-time 2 --cacert "$ca" https://localhost:8443/ >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done

echo
if ! curl -sS --max-time 5 --cacert "$ca" https://localhost:8443/; then
    echo "quickstart: https://localhost:8443/ is not served; see the log above" >&2
    exit 1
fi
echo
echo "== served. Fetch it yourself (the local CA's root is $ca):"
echo "   curl --cacert $ca https://localhost:8443/"
echo "   Statuses: $state/status/ and http://127.0.0.1:9180/apis/aegis.dev/v1alpha1/certificates"
echo "   Metrics:  http://127.0.0.1:9180/metrics - edit examples/quickstart/quickstart.yaml and watch."
if $check; then
    exit 0
fi
echo "   Ctrl-C stops everything."
wait "${pids[1]}"
