#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The ACME benchmark (issue 6, "Benchmark"; run by hand, never by ctest): N Certificates (default
# 50) issued concurrently against one Pebble (PEBBLE_VA_NOSLEEP=1, no nonce rejection, no authz
# reuse) by aegis-controller - HTTP-01 answered by its supervised dataplane - and then, against a
# fresh Pebble whose httpPort points at a static webroot server, by N lego processes run at once
# (`lego --http --http.webroot`, one account registered beforehand, shared through --path).
# Reported for each: the wall time until all N certificates are issued, and the ACME requests per
# certificate as Pebble saw them (its "-> calling handler()" log lines; for aegis also the sum of
# aegis_acme_client_request_count from its /metrics, which must agree). aegis's time counts from
# the controller's start (dataplane start and account registration included); lego's from the
# start of the N processes (its account registration, done first, is left out).
#
# Usage: hack/bench/acme.sh [-n N] [--issue-workers W] [--no-build] [--build-dir DIR] [--keep]
# Needs: pebble, pebble-challtestsrv (hack/deps.sh) and lego (hack/deps.sh --bench).
# Takes about a minute with the defaults.
set -euo pipefail

n=50
workers=""
build=1
keep=0
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
build_dir=$root/build/bench

while (($#)); do
    case $1 in
    -n) n=$2; shift 2 ;;
    --issue-workers) workers=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in pebble pebble-challtestsrv lego openssl curl /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run hack/deps.sh --bench" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aegis-bench-acme.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if ((keep)); then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

if ((build)); then
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang >/dev/null
    cmake --build "$build_dir" -j2 --target aegis-controller aegis-dataplane >/dev/null
fi

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}
# Seconds since $1 (an $EPOCHREALTIME).
since() { /usr/bin/python3 -c "import sys; print(round($EPOCHREALTIME - float(sys.argv[1]), 3))" "$1"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pebble \
    -keyout "$tmp/pebble.key" -out "$tmp/pebble.crt" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null

dns=$(free_port)
cmgmt=$(free_port)
pebble-challtestsrv -dns01 "127.0.0.1:$dns" -management "127.0.0.1:$cmgmt" -http01 "" \
    -https01 "" -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" >"$tmp/challtestsrv.log" 2>&1 &
pids+=($!)
wait_port "$cmgmt"

# start_pebble NAME HTTP_PORT: sets $pebble_pid and $acme_port.
start_pebble() {
    acme_port=$(free_port)
    local mgmt
    mgmt=$(free_port)
    cat >"$tmp/$1.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$acme_port", "managementListenAddress": "127.0.0.1:$mgmt",
 "certificate": "$tmp/pebble.crt", "privateKey": "$tmp/pebble.key", "httpPort": $2,
 "tlsPort": $(free_port), "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
        pebble -config "$tmp/$1.json" -dnsserver "127.0.0.1:$dns" >"$tmp/$1.log" 2>&1 &
    pebble_pid=$!
    pids+=("$pebble_pid")
    wait_port "$acme_port"
}
# Requests Pebble answered on its ACME port (every request logs one handler line).
pebble_requests() { grep -c -- '-> calling handler()' "$tmp/$1.log" || true; }

# ---- aegis-controller --------------------------------------------------------------------------
hp=$(free_port)
hs=$(free_port)
api=$(free_port)
start_pebble pebble-aegis "$hp"
mkdir -p "$tmp/res"
cat >"$tmp/res/issuer.yaml" <<YAML
apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: pebble}
spec:
  acme:
    server: https://127.0.0.1:$acme_port/dir
    email: bench@example.test
    caBundle: {file: $tmp/pebble.crt}
    solvers: [{http01: {}}]
YAML
for i in $(seq "$n"); do
    printf -- '---\napiVersion: aegis.dev/v1alpha1\nkind: Certificate\nmetadata: {name: bench-%d}\nspec: {issuerRef: {name: pebble}, dnsNames: [bench-%d.test]}\n' "$i" "$i"
done >"$tmp/res/certs.yaml"
start=$EPOCHREALTIME
"$build_dir/aegis-controller" --watch "$tmp/res" --state-dir "$tmp/state" \
    --http "127.0.0.1:$hp" --https "127.0.0.1:$hs" --http-listen "127.0.0.1:$api" \
    --dataplane-bin "$build_dir/aegis-dataplane" ${workers:+--issue-workers "$workers"} \
    --log-level warn 2>"$tmp/controller.log" &
ctl=$!
pids+=("$ctl")
ready=0
for _ in $(seq 1200); do
    ready=$(/usr/bin/python3 -c '
import json, sys
n = 0
for f in sys.argv[1:]:
    try:
        c = [c for c in json.load(open(f))["status"]["conditions"] if c["type"] == "Ready"]
        n += bool(c and c[0]["status"] == "True")
    except (OSError, ValueError, KeyError):
        pass
print(n)' "$tmp"/state/status/Certificate/default/bench-*.json 2>/dev/null || echo 0)
    ((ready >= n)) && break
    sleep 0.2
done
aegis_s=$(since "$start")
((ready >= n)) || { echo "aegis: only $ready of $n certificates issued; see $tmp/controller.log" >&2; keep=1; exit 1; }
aegis_metric=$(curl -sS "http://127.0.0.1:$api/metrics" |
    awk '/^aegis_acme_client_request_count\{/ { s += $NF } END { print s + 0 }')
kill "$ctl"
wait "$ctl" 2>/dev/null || true
kill "$pebble_pid"
wait "$pebble_pid" 2>/dev/null || true
aegis_req=$(pebble_requests pebble-aegis)

# ---- lego --------------------------------------------------------------------------------------
mkdir -p "$tmp/webroot"
# http.server's listen backlog of 5 drops Pebble's concurrent validations (3 per challenge): a
# deeper one, so that lego's numbers are not those of the webroot server.
/usr/bin/python3 - "$hp" "$tmp/webroot" >"$tmp/webroot.log" 2>&1 <<'PY' &
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
PY
pids+=($!)
wait_port "$hp"
start_pebble pebble-lego "$hp"
export LEGO_CA_CERTIFICATES=$tmp/pebble.crt
lego_args=(--server "https://127.0.0.1:$acme_port/dir" --accept-tos --email bench@example.test
    --path "$tmp/lego" --http --http.webroot "$tmp/webroot" --key-type ec256)
# The account first (lego registers it with the first certificate): not counted.
lego "${lego_args[@]}" --domains warmup.test run >"$tmp/lego-warmup.log" 2>&1 ||
    { echo "lego could not register its account: see $tmp/lego-warmup.log" >&2; keep=1; exit 1; }
before=$(pebble_requests pebble-lego)
start=$EPOCHREALTIME
lpids=()
for i in $(seq "$n"); do
    lego "${lego_args[@]}" --domains "bench-$i.test" run >"$tmp/lego-$i.log" 2>&1 &
    lpids+=($!)
done
failed=0
for p in "${lpids[@]}"; do
    wait "$p" || failed=$((failed + 1))
done
lego_s=$(since "$start")
lego_req=$(($(pebble_requests pebble-lego) - before))
((failed == 0)) || { echo "lego: $failed of $n runs failed; see $tmp/lego-*.log" >&2; keep=1; exit 1; }

# ---- report ------------------------------------------------------------------------------------
/usr/bin/python3 - "$n" "$aegis_s" "$aegis_req" "$aegis_metric" "$lego_s" "$lego_req" "${workers:-4}" <<'PY'
import sys
n, a_s, a_req, a_met, l_s, l_req, workers = sys.argv[1:]
n = int(n); a_s, l_s = float(a_s), float(l_s); a_req, l_req = int(a_req), int(l_req)
print(f"{n} certificates, HTTP-01, Pebble 2.4.0 with PEBBLE_VA_NOSLEEP=1")
print(f"{'client':<34} {'total s':>8} {'requests':>9} {'req/cert':>9}")
print(f"{'aegis-controller (%s workers)' % workers:<34} {a_s:8.2f} {a_req:9d} {a_req / n:9.2f}"
      f"   (its metrics: {float(a_met) / n:.2f}/cert)")
print(f"{'lego x%d at once' % n:<34} {l_s:8.2f} {l_req:9d} {l_req / n:9.2f}")
print(f"ratios aegis/lego: time {a_s / l_s:.2f}, requests per certificate {a_req / l_req:.2f}")
PY
