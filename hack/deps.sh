#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs every build and test dependency of Aegis from Debian 12's packages. This is the only
# place the list lives: CI, hack/quickstart.sh and hack/test.sh all call this script (`--bench` adds
# the peers and load generators of hack/bench/dataplane.sh, which CI does not need). It is
# idempotent: when every package is already installed it changes nothing and needs no network.
set -euo pipefail

packages=(
    # Build
    build-essential cmake pkg-config git
    # clang for the sanitizer and fuzz builds (libFuzzer ships in libclang-rt-14-dev), and lint
    clang libclang-rt-14-dev clang-format clang-tidy cppcheck
    # Libraries
    libssl-dev openssl libyaml-dev libcurl4-openssl-dev libjansson-dev libinotifytools0-dev
    libh2o-evloop-dev
    # Tests: /usr/bin/python3 with these modules runs the schema and protocol tests (websockets
    # for the websocket echo through the proxy, cryptography for certificates the tests make);
    # promtool (from prometheus) checks /metrics and the alerting rules; systemd-analyze checks
    # the unit files
    curl python3 python3-yaml python3-ruamel.yaml python3-jsonschema python3-websockets
    python3-cryptography prometheus systemd
    # pebble ships pebble and pebble-challtestsrv (the ACME test CA and its mock DNS) for
    # tests/controller/test_acme.py
    pebble
)
# kubectl drives tests/k8s/apiserver.py, the Kubernetes API test server, in
# tests/k8s/test_apiserver.py: Debian's kubernetes-client (1.20) when no kubectl is installed. A
# kubectl from another package (e.g. Google's kubectl package) owns /usr/bin/kubectl and makes
# kubernetes-client fail to install, so it is kept.
if ! command -v kubectl >/dev/null 2>&1; then
    packages+=(kubernetes-client)
fi
# --bench: the peers and load generators of hack/bench/dataplane.sh, and lego, the ACME client
# hack/bench/acme.sh compares with (run by hand, not by CI).
bench_packages=(h2o nginx-light haproxy wrk nghttp2-client linux-perf python3-cryptography lego)
if [[ ${1:-} == --bench ]]; then
    packages+=("${bench_packages[@]}")
elif (($#)); then
    echo "usage: $0 [--bench]" >&2
    exit 2
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ $status != installed ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#packages[@]} packages are installed"
    exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}"
