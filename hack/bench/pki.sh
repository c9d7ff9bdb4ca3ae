#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Benchmarks the local CA and the store (bench_pki, in process) against the OpenSSL CLI doing the
# same work in the same run, and prints the ratios aegis/peer. Run by hand, never by ctest: the
# numbers are for reading (see hack/bench/README.md for what each line measures and how to read
# it on a noisy machine).
#
# Usage: hack/bench/pki.sh [-n N] [--seconds S] [--repeat R] [--build-dir D] [--no-build]
#                          [--tmp-dir D]
#   -n N           OpenSSL commands per peer line (default 50)
#   --seconds S    bench_pki's wall-clock budget per line (default 2; a line also runs at
#                  least N operations, so the slow RSA lines get as many samples as the peers)
#   --repeat R     run everything R times and report the median of each line (default 1)
#   --build-dir D  where bench_pki is built (default build/bench: Release, no sanitizers)
#   --no-build     use the bench_pki already in the build directory
#   --tmp-dir D    where the throwaway state directory and OpenSSL CA go (default $TMPDIR or
#                  /tmp); fsync costs depend on its file system
set -euo pipefail

caller=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)

n=50
seconds=2
repeat=1
build=$root/build/bench
do_build=1
tmp_base=${TMPDIR:-/tmp}

usage() {
    sed -n '9,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case $1 in
    -n | --n) n=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --tmp-dir) tmp_base=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
# Paths given on the command line are relative to where the script was started.
[[ $build == /* ]] || build=$caller/$build
[[ $tmp_base == /* ]] || tmp_base=$caller/$tmp_base
[[ $n =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || {
    echo "pki.sh: -n and --repeat want positive integers" >&2
    exit 2
}

work=$(mktemp -d "$tmp_base/aegis-bench.XXXXXX")
# On failure, the OpenSSL CLI's messages say why (they are kept out of the table otherwise).
on_exit() {
    local rc=$?
    # 130: interrupted, nothing to explain. Key generation's progress dots are left out.
    if ((rc != 0 && rc != 130)) && [[ -s $work/openssl.log ]]; then
        echo "pki.sh: failed; the OpenSSL CLI's last words:" >&2
        grep -Ev '^[.+*-]*$' "$work/openssl.log" | tail -n 20 >&2
    fi
    rm -rf "$work"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- build -----------------------------------------------------------------------------------------
bench=$build/hack/bench/bench_pki
if ((do_build)); then
    echo "== building bench_pki in $build (Release, no sanitizers)" >&2
    if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DAEGIS_BENCH=ON \
        -DAEGIS_SANITIZE=OFF -DAEGIS_FUZZ=OFF &&
        cmake --build "$build" -j2 --target bench_pki; } >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        echo "pki.sh: the build failed" >&2
        exit 1
    fi
fi
[[ -x $bench ]] || {
    echo "pki.sh: $bench is missing (build it, or drop --no-build)" >&2
    exit 1
}

# ---- the peers ---------------------------------------------------------------------------------
# The leaf every peer makes is the one bench_pki's issuer_issue makes: same names, 90 days.
subj=/CN=bench.example.com
san=subjectAltName=DNS:bench.example.com,DNS:www.bench.example.com,IP:127.0.0.1
declare -A newkey=(
    [p256]="-newkey ec -pkeyopt ec_paramgen_curve:P-256"
    [rsa2048]="-newkey rsa:2048"
)

# A throwaway OpenSSL CA with a P-256 key, as the local CA's intermediate has.
make_openssl_ca() {
    local d=$1
    mkdir -p "$d/newcerts"
    : >"$d/index.txt"
    echo 1000 >"$d/serial"
    cat >"$d/ca.cnf" <<EOF
[ ca ]
default_ca = bench_ca

[ bench_ca ]
dir = $d
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/ca.crt
private_key = \$dir/ca.key
serial = \$dir/serial
default_md = sha256
default_days = 90
policy = policy_any
unique_subject = no
copy_extensions = copy
x509_extensions = leaf_ext

[ policy_any ]
commonName = supplied

[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1826 \
        -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=bench OpenSSL CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>>"$work/openssl.log"
}

# Prints "id<TAB>count<TAB>seconds" for n runs of the command (its own process each time).
time_loop() {
    local id=$1 t0 t1 i
    shift
    t0=$EPOCHREALTIME
    for ((i = 0; i < n; i++)); do
        "$@" >/dev/null 2>>"$work/openssl.log"
    done
    t1=$EPOCHREALTIME
    printf '%s\t%d\t%s\n' "$id" "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}

# req -new then ca -batch, n times; prints the pair and the ca step alone (signing a ready CSR).
time_req_ca() {
    local kind=$1 d=$2 t0 t1 t2 i ca_total=0 all_total=0
    for ((i = 0; i < n; i++)); do
        t0=$EPOCHREALTIME
        # shellcheck disable=SC2086 # newkey holds several words on purpose
        openssl req -new ${newkey[$kind]} -nodes -keyout "$d/leaf.key" -out "$d/leaf.csr" \
            -subj "$subj" -addext "$san" 2>>"$work/openssl.log"
        t1=$EPOCHREALTIME
        openssl ca -batch -config "$d/ca.cnf" -notext -in "$d/leaf.csr" -out "$d/leaf.crt" \
            2>>"$work/openssl.log"
        t2=$EPOCHREALTIME
        read -r ca_total all_total < <(awk -v c="$ca_total" -v a="$all_total" -v t0="$t0" \
            -v t1="$t1" -v t2="$t2" 'BEGIN { printf "%.6f %.6f\n", c + t2 - t1, a + t2 - t0 }')
    done
    # The last certificate must verify: a peer that fails fast is no peer.
    openssl verify -CAfile "$d/ca.crt" "$d/leaf.crt" >/dev/null
    printf 'peer.reqca.%s\t%d\t%s\n' "$kind" "$n" "$all_total"
    printf 'peer.ca.%s\t%d\t%s\n' "$kind" "$n" "$ca_total"
}

# The peers of one key kind: self-signed with keygen, then req + ca against a fresh OpenSSL CA.
run_peers() {
    local kind=$1 d
    d=$work/peers-$kind
    mkdir -p "$d"
    # shellcheck disable=SC2086
    time_loop "peer.x509.$kind" openssl req -x509 ${newkey[$kind]} -nodes -days 90 \
        -keyout "$d/leaf.key" -out "$d/leaf.crt" -subj "$subj" -addext "$san"
    make_openssl_ca "$d/ca"
    time_req_ca "$kind" "$d/ca"
    rm -rf "$d"
}

# bench_pki for the lines matching its arguments (--only ...), in a fresh state directory.
run_bench() {
    rm -rf "$work/state"
    "$bench" --seconds "$seconds" --min-count "$n" --state-dir "$work/state" --tsv "$@" |
        cut -f1-3
    rm -rf "$work/state"
}

# ---- run ---------------------------------------------------------------------------------------
# Each aegis line runs right before the peers it is compared with, so that both see the same
# load on a shared machine; the start-up cost is measured once per key kind and its median used.
for ((r = 1; r <= repeat; r++)); do
    echo "== run $r/$repeat: bench_pki (${seconds}s per line) beside the OpenSSL CLI ($n each)" >&2
    {
        run_bench --only keygen. --only ca.open --only sign.
        for kind in p256 rsa2048; do
            time_loop peer.version openssl version
            run_bench --only "issue.$kind" --only "issue-keyed.$kind"
            run_peers "$kind"
        done
        run_bench --only store. --only floor.
    } >"$work/run-$r.tsv"
done

# ---- report ------------------------------------------------------------------------------------
/usr/bin/python3 - "$work" "$repeat" "$n" "$seconds" <<'PY'
import statistics, sys

work, repeat, n, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rates = {}
order = []
for r in range(1, repeat + 1):
    with open(f"{work}/run-{r}.tsv") as f:
        for line in f:
            ident, count, secs = line.rstrip("\n").split("\t")
            if ident not in rates:
                rates[ident] = []
                order.append(ident)
            rates[ident].append(int(count) / float(secs) if float(secs) > 0 else 0.0)
med = {k: statistics.median(v) for k, v in rates.items()}
startup = 1.0 / med["peer.version"]  # seconds per `openssl version` process, shell loop included

def adjusted(rate, procs):
    t = 1.0 / rate - procs * startup
    return 1.0 / t if t > 0 else None

def fmt(x):
    return "n/a" if x is None else f"{x:.1f}"

how = f"median of {repeat} runs" if repeat > 1 else "one run: use --repeat 3 for a median"
print(f"\n== aegis, in process (bench_pki, {seconds}s per line; {how})")
print(f"{'operation':<22}{'ops/s':>12}")
for k in order:
    if not k.startswith("peer."):
        print(f"{k:<22}{med[k]:>12.1f}")

peers = [
    # id, what, processes per operation
    ("peer.version", "openssl version (process start-up)", 1),
    ("peer.x509.p256", "openssl req -x509 -newkey ec P-256", 1),
    ("peer.x509.rsa2048", "openssl req -x509 -newkey rsa:2048", 1),
    ("peer.reqca.p256", "openssl req -new (P-256) + openssl ca", 2),
    ("peer.reqca.rsa2048", "openssl req -new (RSA 2048) + openssl ca", 2),
    ("peer.ca.p256", "openssl ca alone (P-256 CSR ready)", 1),
    ("peer.ca.rsa2048", "openssl ca alone (RSA 2048 CSR ready)", 1),
]
print(f"\n== peers, the OpenSSL CLI ({n} commands each, one process per command)")
print(f"{'command':<44}{'procs':>6}{'raw ops/s':>12}{'adj ops/s':>12}")
for k, what, procs in peers:
    adj = None if k == "peer.version" else adjusted(med[k], procs)
    print(f"{what:<44}{procs:>6}{med[k]:>12.1f}{fmt(adj):>12}")
print(f"(adj: less {startup * 1000:.2f} ms of process start-up per process, "
      "as measured by `openssl version`)")

pairs = [
    # aegis line, peer line, processes per peer operation (0: an in-process floor)
    ("issue.p256", "peer.x509.p256", 1),
    ("issue.p256", "peer.reqca.p256", 2),
    ("issue.rsa2048", "peer.x509.rsa2048", 1),
    ("issue.rsa2048", "peer.reqca.rsa2048", 2),
    ("issue-keyed.p256", "peer.ca.p256", 1),
    ("issue-keyed.rsa2048", "peer.ca.rsa2048", 1),
    ("store.put", "floor.write", 0),
    ("store.update", "floor.write", 0),
    ("store.get", "floor.read", 0),
]
print("\n== ratios aegis/peer (ops/s over ops/s: above 1, aegis does more per second)")
print(f"{'aegis':<21}{'ops/s':>9}  {'peer':<20}{'raw ops/s':>10}{'ratio':>8}"
      f"{'adj ops/s':>11}{'ratio':>8}")
for a, p, procs in pairs:
    if a not in med or p not in med:
        continue
    adj = adjusted(med[p], procs) if procs else None
    ratio_adj = None if adj is None else med[a] / adj
    print(f"{a:<21}{med[a]:>9.1f}  {p:<20}{med[p]:>10.1f}{med[a] / med[p]:>8.2f}"
          f"{fmt(adj):>11}{fmt(ratio_adj) if ratio_adj is None else f'{ratio_adj:.2f}':>8}")
PY
