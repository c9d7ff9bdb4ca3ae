#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The dataplane benchmark (issue 4, "Benchmark"; run by hand, never by ctest): aegis-dataplane
# side by side with the standalone h2o, nginx and HAProxy from Debian, configured the same way -
# one worker each pinned to core 0, the load generator and the upstream (a small nginx answering
# a 64-byte body) pinned to core 1, the same ECDSA P-256 certificate, TLS 1.3 - in one run:
#   h1      HTTP/1.1 keep-alive over TLS       wrk -t1 -c32
#   h2      HTTP/2                             h2load -c16 -m10
#   newconn a new TLS connection per request   wrk -t1 -c8 -H "Connection: close" (wrk never
#           resumes a session, so each request is a full TLS 1.3 handshake: X25519 + ECDSA)
# each as req/s and as the proxy's CPU time per request (utime+stime from /proc/PID/stat before
# and after the run, over the requests done): req/s is capped by the client on 2 cores, CPU per
# request is the figure that compares. Each row runs --runs times (default 2) and the best (lowest
# CPU per request) is kept: other work on the machine only ever adds to it.
# Then: aegis h1 with --access-log (its cost); aegis with 10,000 hosts and certificates (h1, h2:
# per-request CPU must stay flat); idle RSS with 1 and 10,000 hosts (aegis, nginx, HAProxy; h2o
# with 1); and, when aegis-dataplane has --admin-socket, the time of a 10,000-host swap and the
# socket errors and failed requests during 100 swaps under load (skipped with a message otherwise).
#
# Usage: hack/bench/dataplane.sh [--seconds S] [--runs R] [--no-10k] [--no-build]
#                                [--build-dir DIR] [--keep]
# Needs: hack/deps.sh --bench (h2o, nginx-light, haproxy, wrk, nghttp2-client, python3-cryptography).
# Takes about 4 minutes with the defaults (S=5, R=2).
set -euo pipefail

seconds=5
runs=2
tenk=1
build=1
keep=0
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
build_dir=$root/build/bench

while (($#)); do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-10k) tenk=0; shift ;;
    --no-build) build=0; shift ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

for tool in h2o nginx haproxy wrk h2load taskset curl /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run hack/deps.sh --bench" >&2; exit 1; }
done
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    { echo "missing python3-cryptography: run hack/deps.sh --bench" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aegis-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if ((keep)); then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port [seconds [pid: give up when it exits]]
    local deadline=$((SECONDS + ${2:-30}))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        [[ -z ${3:-} ]] || kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
}

hz=$(getconf CLK_TCK)
cpu_ticks() { # pid: utime+stime of every thread, in clock ticks (fields 14 and 15)
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# ---- build and setup ---------------------------------------------------------------------------
if ((build)); then
    say "building aegis-dataplane (RelWithDebInfo, no sanitizers) in $build_dir"
    cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
        >/dev/null
    cmake --build "$build_dir" -j2 --target aegis-dataplane >/dev/null
fi
dp=$build_dir/aegis-dataplane
[[ -x $dp ]] || { echo "$dp is not built" >&2; exit 1; }

port=$(free_port)
up_port=$(free_port)
counts=(1)
((tenk)) && counts+=(10000)
say "making certificates and configurations (${counts[*]} hosts)"
/usr/bin/python3 "$root/hack/bench/dp_setup.py" "$tmp" "$port" "$up_port" "${counts[@]}"
mkdir -p "$tmp/up" "$tmp/nginx" "$tmp/logs"

# The upstream: nginx on core 1 answering 64 bytes.
cat >"$tmp/up/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $tmp/up/nginx.pid;
error_log $tmp/logs/upstream.err warn;
events { worker_connections 4096; }
http {
    access_log off; client_body_temp_path $tmp/up; proxy_temp_path $tmp/up;
    fastcgi_temp_path $tmp/up; uwsgi_temp_path $tmp/up; scgi_temp_path $tmp/up;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$up_port; location / { default_type text/plain;
        return 200 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"; } }
}
EOF
taskset -c 1 nginx -c "$tmp/up/nginx.conf" -p "$tmp/up" &
pids+=($!)
wait_port "$up_port" || { echo "the upstream nginx did not start" >&2; exit 1; }

# ---- the proxies -------------------------------------------------------------------------------
write_configs() { # n
    local n=$1
    cat >"$tmp/nginx/nginx-$n.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $tmp/nginx/nginx-$n.pid;
error_log $tmp/logs/nginx.err warn; worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off; client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx;
    fastcgi_temp_path $tmp/nginx; uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
    keepalive_requests 1000000;
    ssl_protocols TLSv1.3; ssl_ecdh_curve X25519:prime256v1;
    server_names_hash_max_size 65536; server_names_hash_bucket_size 128;
    upstream upstream { server 127.0.0.1:$up_port; keepalive 64; keepalive_requests 1000000; }
    include $tmp/nginx-hosts-$n.conf;
}
EOF
    cat >"$tmp/haproxy-$n.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.3
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$port ssl crt-list $tmp/haproxy-$n.crtlist alpn h2,http/1.1
    default_backend be
backend be
    server s1 127.0.0.1:$up_port
EOF
    if [[ -f $tmp/h2o-hosts-$n.yaml ]]; then
        {
            echo "num-threads: 1"
            echo "error-log: $tmp/logs/h2o.err"
            echo "pid-file: $tmp/h2o-$n.pid"
            echo "user: $(id -un)"
            echo "http1-request-timeout: 30"
            echo "hosts:"
            cat "$tmp/h2o-hosts-$n.yaml"
        } >"$tmp/h2o-$n.yaml"
    fi
}

proxy_pid=
start_proxy() { # kind n [extra aegis args...]
    local kind=$1 n=$2
    shift 2
    write_configs "$n"
    case $kind in
    aegis) taskset -c 0 "$dp" --config "$tmp/aegis-$n.json" --workers 1 --log-level warning \
        "$@" 2>>"$tmp/logs/aegis.err" & ;;
    h2o) taskset -c 0 h2o -c "$tmp/h2o-$n.yaml" 2>>"$tmp/logs/h2o.err" & ;;
    nginx) taskset -c 0 nginx -c "$tmp/nginx/nginx-$n.conf" -p "$tmp/nginx" & ;;
    haproxy) taskset -c 0 haproxy -db -f "$tmp/haproxy-$n.cfg" 2>>"$tmp/logs/haproxy.err" & ;;
    esac
    proxy_pid=$!
    pids+=("$proxy_pid")
    if ! wait_port "$port" 120 "$proxy_pid"; then
        say "$kind with $n hosts did not start (logs in $tmp/logs)"
        proxy_pid=
        return 1
    fi
    # A first request warms caches and the upstream connection.
    curl -sk -o /dev/null "https://localhost:$port/" || true
}

stop_proxy() {
    [[ -n $proxy_pid ]] || return 0
    kill -TERM "$proxy_pid" 2>/dev/null || true
    # The dataplane drains; a hard stop after 5 s keeps the run short.
    for _ in $(seq 50); do kill -0 "$proxy_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
    proxy_pid=
    # Wait for the port to be free again.
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; sleep 0.1; done
}

# One load run against the current proxy: sets req_s, cpu_us (per request), nreq, errors.
load() { # scenario
    local out t0 t1
    t0=$(cpu_ticks "$proxy_pid")
    case $1 in
    h1) out=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" "https://localhost:$port/" 2>&1) ;;
    newconn) out=$(taskset -c 1 wrk -t1 -c8 -d"${seconds}s" -H "Connection: close" \
        "https://localhost:$port/" 2>&1) ;;
    h2) out=$(taskset -c 1 h2load -c16 -m10 -D "$seconds" "https://localhost:$port/" 2>&1) ;;
    esac
    t1=$(cpu_ticks "$proxy_pid")
    if [[ $1 == h2 ]]; then
        nreq=$(awk '/^requests:/ { print $8 }' <<<"$out")
        req_s=$(awk '/^finished in/ { print $4 }' <<<"$out" | tr -d ',')
        errors=$(awk '/^requests:/ { print $10 + $12 + $14 }' <<<"$out")
    else
        nreq=$(awk '/requests in/ { print $1 }' <<<"$out")
        req_s=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        errors=$(awk '/Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
                      /Non-2xx/ { e += $NF } END { print e + 0 }' <<<"$out")
    fi
    nreq=${nreq:-0}
    req_s=${req_s:-0}
    if ((nreq > 0)); then
        cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$nreq" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
    else
        cpu_us=nan
        say "no request done: $out"
    fi
}

declare -A R_REQ R_CPU R_ERR
# best of $runs: key kind/scenario/n
measure() { # kind n scenario [label]
    local kind=$1 n=$2 sc=$3 key="${4:-$1}/$3/$2" best_cpu="" best_req="" err_total=0
    for ((r = 0; r < runs; r++)); do
        # New connections right after the keep-alive rows run slower on the h2o-based proxies
        # (aegis: 850 instead of 2,000 req/s, p99 10 ms) until the previous row's idle state has
        # gone; a pause gives every proxy the same clean start. CPU per request is unaffected.
        [[ $sc != newconn ]] || sleep 3
        load "$sc"
        err_total=$((err_total + errors))
        say "  $key run $((r + 1)): $req_s req/s, $cpu_us us/req, $nreq requests, $errors errors"
        if [[ -z $best_cpu ]] || awk -v a="$cpu_us" -v b="$best_cpu" 'BEGIN { exit !(a < b) }'; then
            best_cpu=$cpu_us
            best_req=$req_s
        fi
    done
    R_REQ[$key]=$best_req
    R_CPU[$key]=$best_cpu
    R_ERR[$key]=$err_total
}

declare -A RSS
kinds=(aegis h2o nginx haproxy)
scenarios=(h1 h2 newconn)

say "== one host: ${seconds}s per run, best of $runs"
for kind in "${kinds[@]}"; do
    start_proxy "$kind" 1 || continue
    sleep 1
    RSS[$kind/1]=$(rss_kb "$proxy_pid")
    for sc in "${scenarios[@]}"; do
        measure "$kind" 1 "$sc"
    done
    stop_proxy
done

say "== aegis with --access-log (a file)"
if start_proxy aegis 1 --access-log "$tmp/logs/access.log"; then
    measure aegis 1 h1 aegis+log
    stop_proxy
fi

if ((tenk)); then
    say "== 10,000 hosts and certificates"
    for kind in aegis nginx haproxy; do
        start=$SECONDS
        start_proxy "$kind" 10000 || continue
        say "  $kind started with 10,000 hosts in $((SECONDS - start)) s"
        sleep 2
        RSS[$kind/10000]=$(rss_kb "$proxy_pid")
        if [[ $kind == aegis ]]; then
            measure aegis 10000 h1
            measure aegis 10000 h2
        fi
        stop_proxy
    done
fi

# ---- swaps (needs the admin API) ---------------------------------------------------------------
swap_ms="" swap_errors="" swap_failed=""
if "$dp" --help 2>&1 | grep -q -- '--admin-socket'; then
    say "== swaps through the admin API"
    sock=$tmp/admin.sock
    gen_config() { # n generation -> file
        /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["generation"]=int(sys.argv[2]); json.dump(c, open(sys.argv[3], "w"))' \
            "$tmp/aegis-$1.json" "$2" "$tmp/swap-$1-$2.json"
        echo "$tmp/swap-$1-$2.json"
    }
    put_config() { # file -> http status
        curl -s -o "$tmp/logs/put.out" -w '%{http_code}' --unix-socket "$sock" -X PUT \
            -H 'Content-Type: application/json' --data-binary "@$1" http://localhost/config
    }
    if ((tenk)) && start_proxy aegis 10000 --admin-socket "$sock"; then
        f=$(gen_config 10000 2)
        t0=$(date +%s%N)
        st=$(put_config "$f")
        t1=$(date +%s%N)
        swap_ms=$(((t1 - t0) / 1000000))
        say "  10,000-host swap: HTTP $st in $swap_ms ms ($(head -c 200 "$tmp/logs/put.out"))"
        stop_proxy
    fi
    if start_proxy aegis 1 --admin-socket "$sock"; then
        for g in $(seq 2 101); do gen_config 1 "$g" >/dev/null; done
        taskset -c 1 wrk -t1 -c32 -d60s "https://localhost:$port/" >"$tmp/logs/swap-wrk.out" 2>&1 &
        wrk_pid=$!
        pids+=("$wrk_pid")
        sleep 1
        bad=0
        for g in $(seq 2 101); do
            st=$(put_config "$tmp/swap-1-$g.json")
            [[ $st == 2* ]] || bad=$((bad + 1))
        done
        kill -INT "$wrk_pid" 2>/dev/null || true
        wait "$wrk_pid" 2>/dev/null || true
        out=$(cat "$tmp/logs/swap-wrk.out")
        swap_errors=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")
        swap_failed=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
        say "  100 swaps under wrk: ${swap_errors:-0} socket errors, ${swap_failed:-0} non-2xx, $bad refused swaps"
        stop_proxy
    fi
else
    say "== swaps: skipped - this aegis-dataplane has no --admin-socket (the admin API is not built yet)"
fi

# ---- the report --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2fx", a / b; else printf "-" }'; }
echo
echo "Dataplane benchmark: 1 proxy worker on core 0, load generator + upstream on core 1,"
echo "TLS 1.3, ECDSA P-256; ${seconds}s per run, best of $runs runs (lowest CPU per request)."
echo
printf '%-9s' "row"
for kind in "${kinds[@]}"; do printf ' | %-20s' "$kind req/s  us/req"; done
printf ' | %s\n' "aegis CPU/req vs h2o, nginx, haproxy"
for sc in "${scenarios[@]}"; do
    printf '%-9s' "$sc"
    for kind in "${kinds[@]}"; do
        printf ' | %9s %10s' "${R_REQ[$kind/$sc/1]:--}" "${R_CPU[$kind/$sc/1]:--}"
    done
    printf ' |'
    for kind in h2o nginx haproxy; do
        printf ' %s' "$(ratio "${R_CPU[aegis/$sc/1]:-}" "${R_CPU[$kind/$sc/1]:-}")"
    done
    echo
done
echo
echo "errors (socket errors + non-2xx, summed over runs):"
for sc in "${scenarios[@]}"; do
    printf '  %-8s' "$sc"
    for kind in "${kinds[@]}"; do printf ' %s=%s' "$kind" "${R_ERR[$kind/$sc/1]:--}"; done
    echo
done
echo
printf 'aegis h1 with --access-log: %s req/s, %s us/req (%s of without)\n' \
    "${R_REQ[aegis+log/h1/1]:--}" "${R_CPU[aegis+log/h1/1]:--}" \
    "$(ratio "${R_CPU[aegis+log/h1/1]:-}" "${R_CPU[aegis/h1/1]:-}")"
if ((tenk)); then
    for sc in h1 h2; do
        printf 'aegis %-3s with 10,000 hosts: %s req/s, %s us/req (%s of 1 host)\n' "$sc" \
            "${R_REQ[aegis/$sc/10000]:--}" "${R_CPU[aegis/$sc/10000]:--}" \
            "$(ratio "${R_CPU[aegis/$sc/10000]:-}" "${R_CPU[aegis/$sc/1]:-}")"
    done
fi
echo
echo "idle RSS (MB):"
for kind in "${kinds[@]}"; do
    printf '  %-8s 1 host: %-8s 10,000 hosts: %s\n' "$kind" \
        "$(awk -v k="${RSS[$kind/1]:-}" 'BEGIN { if (k != "") printf "%.1f", k / 1024; else printf "-" }')" \
        "$(awk -v k="${RSS[$kind/10000]:-}" 'BEGIN { if (k != "") printf "%.1f", k / 1024; else printf "-" }')"
done
echo
if [[ -n $swap_ms || -n $swap_errors ]]; then
    echo "10,000-host swap: ${swap_ms:--} ms; 100 swaps under load: ${swap_errors:-0} socket errors, ${swap_failed:-0} failed requests"
else
    echo "swaps: not measured (no --admin-socket in this aegis-dataplane)"
fi
