#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `aegisctl store rotate-key` killed at every step, end to end:
#  - a store of N records (EC, RSA and Ed25519 keys made with the openssl CLI, imported with the
#    test helper tests/tools/store_put.c) plus one history entry: N + 1 sealed keys;
#  - for every k in 0..N+1, a fresh store, rotate-key started with the test hook
#    AEGIS_TEST_ROTATE_PAUSE_AFTER=k (it stops after k re-sealed keys and waits), SIGKILLed
#    there; then every record still opens (`aegisctl store show` checks the key opens and prints
#    its public key's SHA-256, compared with openssl's), a re-run finishes, master.key changed,
#    master.key.next is gone, and every record opens again;
#  - the same with the key in AEGIS_MASTER_KEY and the new one from --new-key-file;
#  - list/show never print key material, no file on disk holds it, and a missing or wrong key
#    gives a clear error.
# Environment: AEGISCTL, AEGIS_BUILD_DIR (for tests/tools/store_put). Ends with
# "N passed, N failed"; exit status 1 on any failure.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
BUILD=${AEGIS_BUILD_DIR:-$SRC/build}
AEGISCTL=${AEGISCTL:-$BUILD/aegisctl}
PUT=$BUILD/tests/tools/store_put
for tool in "$AEGISCTL" "$PUT"; do
    if [[ ! -x $tool ]]; then
        bail_out "$tool not found; set AEGISCTL and AEGIS_BUILD_DIR"
    fi
done
unset AEGIS_MASTER_KEY AEGIS_NEW_MASTER_KEY AEGIS_STATE_DIR AEGIS_TEST_ROTATE_PAUSE_AFTER

pids=()
kill_pids() {
    local p
    for p in "${pids[@]}"; do
        kill -9 "$p" 2>/dev/null || true
    done
}
on_exit kill_pids

check() { # check NAME COMMAND...
    local name=$1
    shift
    if "$@" >"$TMP/check.out" 2>&1; then
        ok "$name"
    else
        notok "$name" "$(tail -5 "$TMP/check.out")"
    fi
}

# ---- keys and certificates -----------------------------------------------------------------------
KEYS=$TMP/keys
mkdir -p "$KEYS"
make_pair() { # make_pair NAME ALGORITHM-ARGS...
    local name=$1
    shift
    openssl genpkey "$@" -out "$KEYS/$name.key" 2>/dev/null
    openssl req -x509 -new -key "$KEYS/$name.key" -subj "/CN=$name.example" -days 30 \
        -addext "subjectAltName=DNS:$name.example" -out "$KEYS/$name.crt" 2>/dev/null
    openssl pkey -in "$KEYS/$name.key" -pubout -outform DER | sha256sum | cut -d' ' -f1 \
        >"$KEYS/$name.pub"
}
make_pair app -algorithm EC -pkeyopt ec_paramgen_curve:P-256
make_pair api -algorithm RSA -pkeyopt rsa_keygen_bits:2048
make_pair edge -algorithm ED25519
make_pair app-old -algorithm EC -pkeyopt ec_paramgen_curve:P-384
RECORDS=(certificate/default/app certificate/prod/api ca/aegis-system/edge)
NAMES=(app api edge)
N=${#RECORDS[@]}
SEALED=$((N + 1)) # plus the history entry of app

# fill STATE: app gets a history entry (its first certificate), then the N records.
fill() {
    local state=$1 i
    "$PUT" --state-dir "$state" --source custom --cert "$KEYS/app-old.crt" \
        --key "$KEYS/app-old.key" "${RECORDS[0]}"
    for i in "${!RECORDS[@]}"; do
        "$PUT" --state-dir "$state" --source custom --cert "$KEYS/${NAMES[$i]}.crt" \
            --key "$KEYS/${NAMES[$i]}.key" "${RECORDS[$i]}"
    done
}

# all_open STATE [aegisctl flags...]: every record's key opens and is the right key.
all_open() {
    local state=$1 i out want
    shift
    for i in "${!RECORDS[@]}"; do
        if ! out=$("$AEGISCTL" store show --state-dir "$state" "$@" "${RECORDS[$i]}" 2>&1); then
            echo "${RECORDS[$i]}: $out"
            return 1
        fi
        want=$(cat "$KEYS/${NAMES[$i]}.pub")
        if ! grep -q "public key SHA-256 $want" <<<"$out"; then
            echo "${RECORDS[$i]}: wrong key: $(grep privateKey <<<"$out")"
            return 1
        fi
    done
}

# pause_and_kill STATE K [env/flags via ROTATE_ARGS]: runs rotate-key until the hook pauses it
# after K re-sealed keys, then SIGKILLs it.
pause_and_kill() {
    local state=$1 k=$2 pid i
    AEGIS_TEST_ROTATE_PAUSE_AFTER=$k "$AEGISCTL" store rotate-key --state-dir "$state" \
        "${ROTATE_ARGS[@]}" >"$TMP/rot.out" 2>"$TMP/rot.err" &
    pid=$!
    pids+=("$pid")
    for ((i = 0; i < 600; i++)); do
        grep -q "paused after $k " "$TMP/rot.err" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q "paused after $k " "$TMP/rot.err"; then
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        cat "$TMP/rot.err"
        return 1
    fi
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
}

no_temp_files() {
    [[ -z $(find "$1" -name '.*.tmp.*' -print -quit) ]]
}

no_key_on_disk() { # no file holds a PEM private key or the first body line of one
    local state=$1 name line
    ! grep -rqa "PRIVATE KEY" "$state" || return 1
    for name in "${NAMES[@]}" app-old; do
        line=$(sed -n 2p "$KEYS/$name.key")
        ! grep -rqaF -- "$line" "$state" || return 1
    done
}

# ---- 1. state-directory key, killed after every step ----------------------------------------------
ROTATE_ARGS=()
for ((k = 0; k <= SEALED; k++)); do
    S=$TMP/state-$k
    fill "$S"
    old=$(cat "$S/master.key")
    if ! pause_and_kill "$S" "$k" >"$TMP/pk.out" 2>&1; then
        notok "state key: rotate-key pauses after $k" "$(cat "$TMP/pk.out")"
        continue
    fi
    check "state key, killed after $k of $SEALED: master.key.next kept" test -f "$S/master.key.next"
    check "state key, killed after $k: master.key unchanged" test "$(cat "$S/master.key")" = "$old"
    check "state key, killed after $k: every record opens" all_open "$S"
    check "state key, killed after $k: no temp file left" no_temp_files "$S"
    check "state key, killed after $k: re-run finishes" "$AEGISCTL" store rotate-key --state-dir "$S"
    check "state key, killed after $k: master.key.next gone" test ! -e "$S/master.key.next"
    check "state key, killed after $k: master.key changed" test "$(cat "$S/master.key")" != "$old"
    check "state key, killed after $k: every record opens after" all_open "$S"
    check "state key, killed after $k: master.key is 0600" \
        test "$(stat -c %a "$S/master.key")" = 600
done

# ---- 2. key from the environment, new key from a file --------------------------------------------
S=$TMP/state-env
OLD=$(openssl rand -hex 32)
NEW=$(openssl rand -hex 32)
printf '%s\n' "$NEW" >"$TMP/new.key"
chmod 600 "$TMP/new.key"
export AEGIS_MASTER_KEY=$OLD
fill "$S"
check "env key: records made with AEGIS_MASTER_KEY, no master.key written" test ! -e "$S/master.key"
out=$("$AEGISCTL" store rotate-key --state-dir "$S" 2>&1) && rc=0 || rc=$?
if [[ $rc -ne 0 ]] && grep -q -- "--new-key-file" <<<"$out"; then
    ok "env key: rotate-key without a new key says to give one"
else
    notok "env key: rotate-key without a new key says to give one" "$out"
fi
chmod 644 "$TMP/new.key"
out=$("$AEGISCTL" store rotate-key --state-dir "$S" --new-key-file "$TMP/new.key" 2>&1) &&
    rc=0 || rc=$?
if [[ $rc -ne 0 ]] && grep -q "chmod 600" <<<"$out"; then
    ok "env key: a world-readable new key file is refused"
else
    notok "env key: a world-readable new key file is refused" "$out"
fi
chmod 600 "$TMP/new.key"
ROTATE_ARGS=(--new-key-file "$TMP/new.key")
if pause_and_kill "$S" 2 >"$TMP/pk.out" 2>&1; then
    ok "env key: rotate-key paused after 2 and killed"
else
    notok "env key: rotate-key paused after 2 and killed" "$(cat "$TMP/pk.out")"
fi
out=$(all_open "$S" 2>&1) && rc=0 || rc=$?
if [[ $rc -ne 0 ]] && grep -q "rotate-key --new-key-file" <<<"$out"; then
    ok "env key, interrupted: the old key alone says how to finish"
else
    notok "env key, interrupted: the old key alone says how to finish" "$out"
fi
check "env key: re-run with the same new key finishes" \
    "$AEGISCTL" store rotate-key --state-dir "$S" --new-key-file "$TMP/new.key"
grep -q "AEGIS_MASTER_KEY" "$TMP/check.out" &&
    ok "env key: rotate-key says to switch AEGIS_MASTER_KEY" ||
    notok "env key: rotate-key says to switch AEGIS_MASTER_KEY" "$(cat "$TMP/check.out")"
export AEGIS_MASTER_KEY=$NEW
check "env key: every record opens with the new key" all_open "$S"
export AEGIS_MASTER_KEY=$OLD
out=$("$AEGISCTL" store show --state-dir "$S" "${RECORDS[0]}" 2>&1) && rc=0 || rc=$?
if [[ $rc -ne 0 ]] && grep -q "sealed with master key id" <<<"$out"; then
    ok "env key: the old key opens nothing, with a clear error"
else
    notok "env key: the old key opens nothing, with a clear error" "$out"
fi
unset AEGIS_MASTER_KEY
check "env key: --master-key-file works as well" all_open "$S" --master-key-file "$TMP/new.key"

# ---- 3. no key material in output or on disk; missing keys ----------------------------------------
S=$TMP/state-0
out=$("$AEGISCTL" store list --state-dir "$S" 2>&1)
if grep -q "certificate/default/app" <<<"$out" && grep -q "app.example" <<<"$out" &&
    ! grep -q "PRIVATE KEY" <<<"$out"; then
    ok "list shows records and no key"
else
    notok "list shows records and no key" "$out"
fi
out=$("$AEGISCTL" store list --state-dir "$S" --output json 2>&1)
if /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d) == 3, d' \
    <<<"$out" && ! grep -q "PRIVATE KEY" <<<"$out"; then
    ok "list --output json"
else
    notok "list --output json" "$out"
fi
out=$("$AEGISCTL" store show --state-dir "$S" certificate/default/app 2>&1)
if grep -q "BEGIN CERTIFICATE" <<<"$out" && grep -q "history:.*revision 1" <<<"$out" &&
    ! grep -q "PRIVATE KEY" <<<"$out"; then
    ok "show prints metadata, history and certificate, never the key"
else
    notok "show prints metadata, history and certificate, never the key" "$out"
fi
for k in 0 "$SEALED"; do
    check "no key material on disk in state-$k" no_key_on_disk "$TMP/state-$k"
done
check "env store: no key material on disk" no_key_on_disk "$TMP/state-env"
mv "$S/master.key" "$TMP/master.key.saved"
out=$("$AEGISCTL" store show --state-dir "$S" certificate/default/app 2>&1) && rc=0 || rc=$?
if [[ $rc -ne 0 ]] && grep -q "were sealed with master key id" <<<"$out" &&
    grep -q "AEGIS_MASTER_KEY or --master-key-file" <<<"$out"; then
    ok "a missing master key: a clear error naming the key id"
else
    notok "a missing master key: a clear error naming the key id" "$out"
fi
check "a missing master key: no new key was made" test ! -e "$S/master.key"
out=$("$AEGISCTL" store show --state-dir "$S" --no-key certificate/default/app 2>&1)
if grep -q "not opened" <<<"$out" && grep -q "BEGIN CERTIFICATE" <<<"$out"; then
    ok "show --no-key works without a key"
else
    notok "show --no-key works without a key" "$out"
fi
out=$("$AEGISCTL" store show --state-dir "$S" certificate/default/nothing --no-key 2>&1) &&
    rc=0 || rc=$?
if [[ $rc -eq 1 ]] && grep -q "no such record" <<<"$out"; then
    ok "show of a missing record"
else
    notok "show of a missing record" "$out"
fi
out=$("$AEGISCTL" store show --state-dir "$S" bad-id 2>&1) && rc=0 || rc=$?
if [[ $rc -eq 2 ]] && grep -q "KIND/NAMESPACE/NAME" <<<"$out"; then
    ok "show of a malformed name is a usage error"
else
    notok "show of a malformed name is a usage error" "$out"
fi

finish
