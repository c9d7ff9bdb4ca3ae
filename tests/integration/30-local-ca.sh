#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The local CA end to end through `aegisctl ca`, checked with the OpenSSL CLI and curl:
#  - `ca bundle` makes the CA on first use and prints the same root every time (and -o writes it);
#  - `ca sign` signs CSRs made by `openssl req` for every key type (RSA 2048/3072/4096, ECDSA
#    P-256/P-384, Ed25519) and usage set; each chain is leaf + intermediate, verifies with
#    `openssl verify -CAfile <bundle> -untrusted <intermediate>` for its purpose, and
#    `openssl x509 -text` shows the SANs, key usages, EKUs and basic constraints asked for;
#    the key matches; --duration sets the lifetime; --ca makes a sub-CA that can itself issue;
#  - a leaf served by `openssl s_server` on 127.0.0.1 is trusted by curl given the bundle and
#    refused without it;
#  - `ca revoke` puts a serial on the CRL (`openssl crl -text`, PEM and DER), the CRL verifies
#    against the intermediate, and `openssl verify -crl_check` then reports the leaf revoked;
#  - bad CSRs (tampered, RSA 1024, no names) are refused; no private key is ever printed.
# Everything lives in a temporary state directory with a test master key.
# Environment: AEGISCTL (default build/aegisctl), AEGIS_SOURCE_DIR. Ends with "N passed,
# N failed"; exit status 1 on any failure.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
AEGISCTL=${AEGISCTL:-$SRC/build/aegisctl}
cd "$SRC"
if [[ ! -x $AEGISCTL ]]; then
    bail_out "aegisctl not found at '$AEGISCTL'; set AEGISCTL"
fi

SERVER_PID=
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
on_exit stop_server

export AEGIS_MASTER_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
export AEGIS_STATE_DIR=$TMP/state

# check NAME CMD...: ok when CMD succeeds; shows its output otherwise.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$name"
    else
        notok "$name" "$out"
    fi
}

# ctl ARGS...: aegisctl with a time limit; stdout in $TMP/out, stderr in $TMP/err, status in rc.
ctl() {
    rc=0
    timeout 120 "$AEGISCTL" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
}

# ---- the trust bundle ----------------------------------------------------------------------------
ctl ca bundle
if ((rc == 0)) && grep -q 'BEGIN CERTIFICATE' "$TMP/out"; then
    ok "ca bundle makes the CA and prints the root"
else
    notok "ca bundle makes the CA and prints the root" "status $rc" "$(cat "$TMP/err")"
fi
cp "$TMP/out" "$TMP/bundle.pem"
ctl ca bundle -o "$TMP/aegis-local-ca.crt"
check "ca bundle -o writes the same root" cmp "$TMP/bundle.pem" "$TMP/aegis-local-ca.crt"
ctl ca bundle --state-dir "$TMP/state"
check "the root is kept in the store" cmp "$TMP/bundle.pem" "$TMP/out"
subject=$(openssl x509 -in "$TMP/bundle.pem" -noout -subject)
issuer=$(openssl x509 -in "$TMP/bundle.pem" -noout -issuer)
text=$(openssl x509 -in "$TMP/bundle.pem" -noout -text)
if [[ ${subject#subject=} == "${issuer#issuer=}" && $text == *"CA:TRUE, pathlen:1"* &&
    $text == *"prime256v1"* ]]; then
    ok "root: self-signed, CA pathlen 1, P-256"
else
    notok "root: self-signed, CA pathlen 1, P-256" "$subject" "$issuer"
fi
if ! grep -rqs 'PRIVATE KEY' "$TMP/state"; then
    ok "no plain-text private key in the state directory"
else
    notok "no plain-text private key in the state directory" "$(grep -rl 'PRIVATE KEY' "$TMP/state")"
fi
ctl --help
if grep -q '^  ca ' "$TMP/out"; then ok "aegisctl --help lists ca"; else notok "aegisctl --help lists ca"; fi
ctl ca --help
if ((rc == 0)) && grep -q 'aegis-local-ca.crt' "$TMP/out"; then
    ok "ca --help names aegis-local-ca.crt"
else
    notok "ca --help names aegis-local-ca.crt" "$(cat "$TMP/out" "$TMP/err")"
fi

# ---- signing CSRs: every key type x usage set ------------------------------------------------------
SAN="subjectAltName=DNS:app.test,DNS:*.app.test,IP:127.0.0.1,IP:::1,URI:spiffe://aegis.test/app,email:ops@app.test"

# csr NAME KEYSPEC...: makes $TMP/NAME.key and $TMP/NAME.csr with openssl req.
csr() {
    local name=$1
    shift
    openssl req -new -nodes "$@" -keyout "$TMP/$name.key" -out "$TMP/$name.csr" \
        -subj "/O=Aegis Test/CN=app.test" -addext "$SAN" 2>"$TMP/req.err"
}

declare -A KEYSPEC=(
    [rsa2048]="-newkey rsa:2048"
    [rsa3072]="-newkey rsa:3072"
    [rsa4096]="-newkey rsa:4096"
    [p256]="-newkey ec -pkeyopt ec_paramgen_curve:P-256"
    [p384]="-newkey ec -pkeyopt ec_paramgen_curve:P-384"
    [ed25519]="-newkey ed25519"
)
# usage set: NAME|--usages value ("" = default)|verify purpose|words x509 -text must show
USAGESETS=(
    "server||sslserver|Digital Signature;TLS Web Server Authentication;CA:FALSE"
    "client|digital signature, client auth|sslclient|Digital Signature;TLS Web Client Authentication"
    "both|digital signature,key encipherment,server auth,client auth|sslserver|Key Encipherment;TLS Web Server Authentication, TLS Web Client Authentication"
    "code|digital signature,code signing||Code Signing"
    "email|content commitment,email protection|smimesign|Non Repudiation;E-mail Protection"
    "ocsp|digital signature,ocsp signing||OCSP Signing"
)

# split NAME: $TMP/NAME.chain -> $TMP/NAME.leaf, $TMP/NAME.inter (and counts the certificates)
split_chain() {
    local name=$1
    awk -v a="$TMP/$name.leaf" -v b="$TMP/$name.inter" -v c="$TMP/$name.count" '
        /BEGIN CERTIFICATE/ { k++ }
        k == 1 { print > a } k == 2 { print > b }
        END { print k > c }' "$TMP/$name.chain"
}

for key in rsa2048 rsa3072 rsa4096 p256 p384 ed25519; do
    # shellcheck disable=SC2086
    if ! csr "$key" ${KEYSPEC[$key]}; then
        notok "$key: openssl req" "$(cat "$TMP/req.err")"
        continue
    fi
    for set in "${USAGESETS[@]}"; do
        IFS='|' read -r uname usages purpose words <<<"$set"
        name="$key-$uname"
        args=(ca sign --csr "$TMP/$key.csr" --duration 48h)
        [[ -n $usages ]] && args+=(--usages "$usages")
        ctl "${args[@]}"
        if ((rc != 0)); then
            notok "$name: ca sign" "status $rc" "$(cat "$TMP/err")"
            continue
        fi
        cp "$TMP/out" "$TMP/$name.chain"
        split_chain "$name"
        if [[ $(cat "$TMP/$name.count") == 2 ]] &&
            openssl x509 -in "$TMP/$name.inter" -noout -subject | grep -q 'Aegis Local Intermediate CA'; then
            ok "$name: chain is leaf + intermediate"
        else
            notok "$name: chain is leaf + intermediate" "$(cat "$TMP/$name.chain")"
            continue
        fi
        vargs=(-CAfile "$TMP/bundle.pem" -untrusted "$TMP/$name.inter")
        [[ -n $purpose ]] && vargs+=(-purpose "$purpose")
        check "$name: openssl verify${purpose:+ -purpose $purpose}" \
            openssl verify "${vargs[@]}" "$TMP/$name.leaf"
        text=$(openssl x509 -in "$TMP/$name.leaf" -noout -text)
        missing=()
        IFS=';' read -r -a want <<<"$words;DNS:app.test;DNS:*.app.test;IP Address:127.0.0.1;IP Address:0:0:0:0:0:0:0:1;URI:spiffe://aegis.test/app;email:ops@app.test;X509v3 Key Usage: critical;X509v3 Basic Constraints: critical;X509v3 Subject Key Identifier;X509v3 Authority Key Identifier;O = Aegis Test, CN = app.test"
        for w in "${want[@]}"; do
            [[ $text == *"$w"* ]] || missing+=("$w")
        done
        if ((${#missing[@]} == 0)); then
            ok "$name: x509 -text shows SANs, usages, EKU, constraints"
        else
            notok "$name: x509 -text shows SANs, usages, EKU, constraints" "missing: ${missing[*]}"
        fi
        if cmp -s <(openssl x509 -in "$TMP/$name.leaf" -noout -pubkey) \
            <(openssl pkey -in "$TMP/$key.key" -pubout); then
            ok "$name: certificate matches the CSR's key"
        else
            notok "$name: certificate matches the CSR's key"
        fi
        if openssl x509 -in "$TMP/$name.leaf" -noout -checkend $((47 * 3600)) >/dev/null &&
            ! openssl x509 -in "$TMP/$name.leaf" -noout -checkend $((49 * 3600)) >/dev/null; then
            ok "$name: --duration 48h"
        else
            notok "$name: --duration 48h" "$(openssl x509 -in "$TMP/$name.leaf" -noout -dates)"
        fi
    done
done
serial_bits=$(openssl x509 -in "$TMP/p256-server.leaf" -noout -serial | sed 's/serial=//')
if ((${#serial_bits} <= 32)) && [[ ${#serial_bits} -lt 32 || ${serial_bits:0:1} =~ [0-7] ]]; then
    ok "serial: at most 128 bits, positive"
else
    notok "serial: at most 128 bits, positive" "$serial_bits"
fi
if ! grep -qs 'PRIVATE KEY' "$TMP"/*.chain; then
    ok "no private key in any aegisctl output"
else
    notok "no private key in any aegisctl output"
fi

# ---- a sub-CA ---------------------------------------------------------------------------------------
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$TMP/sub.key" \
    -out "$TMP/sub.csr" -subj "/CN=Aegis Test Sub CA" 2>/dev/null
ctl ca sign --csr "$TMP/sub.csr" --ca --duration 720h
cp "$TMP/out" "$TMP/sub.crt"
text=$(openssl x509 -in "$TMP/sub.crt" -noout -text 2>&1 || true)
if ((rc == 0)) && [[ $text == *"CA:TRUE, pathlen:0"* && $text == *"Certificate Sign, CRL Sign"* ]]; then
    ok "sub-CA: CA:TRUE pathlen 0, cert and CRL sign"
else
    notok "sub-CA: CA:TRUE pathlen 0, cert and CRL sign" "$(cat "$TMP/err")" "$text"
fi
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$TMP/subleaf.key" \
    -out "$TMP/subleaf.csr" -subj "/CN=leaf.sub.test" -addext "subjectAltName=DNS:leaf.sub.test" \
    2>/dev/null
openssl x509 -req -in "$TMP/subleaf.csr" -CA "$TMP/sub.crt" -CAkey "$TMP/sub.key" \
    -CAcreateserial -CAserial "$TMP/sub.srl" -days 1 -out "$TMP/subleaf.crt" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:leaf.sub.test\n') 2>/dev/null
check "a leaf of the sub-CA verifies up to the local root" \
    openssl verify -CAfile "$TMP/bundle.pem" -untrusted "$TMP/sub.crt" "$TMP/subleaf.crt"

# ---- curl trusts a served leaf with the bundle ------------------------------------------------------
PORT=$(free_port)
openssl s_server -accept "127.0.0.1:$PORT" -cert "$TMP/p256-server.leaf" \
    -cert_chain "$TMP/p256-server.inter" -key "$TMP/p256.key" -www -quiet \
    >"$TMP/s_server.log" 2>&1 &
SERVER_PID=$!
wait_port "$PORT" || true
check "curl --cacert <(aegisctl ca bundle) trusts the served leaf" \
    curl -sS --max-time 10 --cacert <("$AEGISCTL" ca bundle) \
    --resolve "app.test:$PORT:127.0.0.1" -o /dev/null "https://app.test:$PORT/"
rc=0
curl -sS --max-time 10 --resolve "app.test:$PORT:127.0.0.1" -o /dev/null \
    "https://app.test:$PORT/" 2>"$TMP/curl.err" || rc=$?
if ((rc == 60)); then
    ok "plain curl (without the bundle) refuses it"
else
    notok "plain curl (without the bundle) refuses it" "curl status $rc" "$(cat "$TMP/curl.err")"
fi
rc=0
curl -sS --max-time 10 --cacert "$TMP/bundle.pem" --resolve "other.test:$PORT:127.0.0.1" \
    -o /dev/null "https://other.test:$PORT/" 2>"$TMP/curl.err" || rc=$?
if ((rc == 60)); then
    ok "curl with the bundle refuses a name the leaf does not cover"
else
    notok "curl with the bundle refuses a name the leaf does not cover" "curl status $rc"
fi
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

# ---- revocation -------------------------------------------------------------------------------------
ctl ca crl
cp "$TMP/out" "$TMP/crl0.pem"
if ((rc == 0)) && openssl crl -in "$TMP/crl0.pem" -noout -text | grep -q 'No Revoked Certificates'; then
    ok "ca crl: an empty CRL at first"
else
    notok "ca crl: an empty CRL at first" "$(cat "$TMP/err")"
fi
serial=$(openssl x509 -in "$TMP/rsa2048-server.leaf" -noout -serial)
ctl ca revoke --reason keyCompromise "$serial"
if ((rc == 0)); then ok "ca revoke $serial"; else notok "ca revoke" "$(cat "$TMP/err")"; fi
ctl ca crl
cp "$TMP/out" "$TMP/crl.pem"
crltext=$(openssl crl -in "$TMP/crl.pem" -noout -text)
if [[ $crltext == *"Serial Number: ${serial#serial=}"* && $crltext == *"Key Compromise"* ]]; then
    ok "openssl crl -text lists the revoked serial and reason"
else
    notok "openssl crl -text lists the revoked serial and reason" "$crltext"
fi
next=$(openssl crl -in "$TMP/crl.pem" -noout -nextupdate | sed 's/nextUpdate=//')
if (($(date -d "$next" +%s) <= $(date +%s) + 7 * 86400 + 60)); then
    ok "CRL nextUpdate within 7 days"
else
    notok "CRL nextUpdate within 7 days" "$next"
fi
check "the CRL verifies against the intermediate" \
    openssl crl -in "$TMP/crl.pem" -noout -CAfile <(cat "$TMP/rsa2048-server.inter" "$TMP/bundle.pem")
ctl ca crl --der
cp "$TMP/out" "$TMP/crl.der"
if ((rc == 0)) && openssl crl -inform DER -in "$TMP/crl.der" -noout -text |
    grep -q "Serial Number: ${serial#serial=}"; then
    ok "ca crl --der is the same list in DER"
else
    notok "ca crl --der is the same list in DER" "$(cat "$TMP/err")"
fi
rc=0
out=$(openssl verify -crl_check -CRLfile "$TMP/crl.pem" -CAfile "$TMP/bundle.pem" \
    -untrusted "$TMP/rsa2048-server.inter" "$TMP/rsa2048-server.leaf" 2>&1) || rc=$?
if ((rc != 0)) && [[ $out == *"certificate revoked"* ]]; then
    ok "openssl verify -crl_check: the revoked leaf is refused"
else
    notok "openssl verify -crl_check: the revoked leaf is refused" "$out"
fi
check "openssl verify -crl_check: another leaf still verifies" \
    openssl verify -crl_check -CRLfile "$TMP/crl.pem" -CAfile "$TMP/bundle.pem" \
    -untrusted "$TMP/p256-server.inter" "$TMP/p256-server.leaf"
ctl ca revoke not-hex
if ((rc == 2)) && grep -q 'serial' "$TMP/err"; then
    ok "ca revoke refuses a bad serial"
else
    notok "ca revoke refuses a bad serial" "status $rc" "$(cat "$TMP/err")"
fi

# ---- bad CSRs -----------------------------------------------------------------------------------------
openssl req -new -nodes -newkey rsa:1024 -keyout "$TMP/weak.key" -out "$TMP/weak.csr" \
    -subj "/CN=weak.test" -addext "subjectAltName=DNS:weak.test" 2>/dev/null
ctl ca sign --csr "$TMP/weak.csr"
if ((rc == 1)) && grep -q 'not supported' "$TMP/err" && ! grep -q BEGIN "$TMP/out"; then
    ok "an RSA 1024 CSR is refused"
else
    notok "an RSA 1024 CSR is refused" "status $rc" "$(cat "$TMP/err")"
fi
# Tampered: swap the public key of a CSR for another one without re-signing it.
/usr/bin/python3 - "$TMP/p256.csr" "$TMP/p384.csr" "$TMP/tampered.csr" <<'EOF'
import base64, re, sys
def der(p):
    t = open(p).read()
    b = re.search(r"-----BEGIN CERTIFICATE REQUEST-----(.*)-----END", t, re.S).group(1)
    return bytearray(base64.b64decode(b))
d = der(sys.argv[1])
d[-5] ^= 0x01  # flip a bit of the signature
body = base64.encodebytes(bytes(d)).decode()
open(sys.argv[3], "w").write("-----BEGIN CERTIFICATE REQUEST-----\n" + body + "-----END CERTIFICATE REQUEST-----\n")
EOF
ctl ca sign --csr "$TMP/tampered.csr"
if ((rc == 1)) && grep -q 'signature' "$TMP/err"; then
    ok "a CSR with a broken signature is refused"
else
    notok "a CSR with a broken signature is refused" "status $rc" "$(cat "$TMP/err")"
fi
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$TMP/none.key" \
    -out "$TMP/none.csr" -subj "/O=Nobody" 2>/dev/null
ctl ca sign --csr "$TMP/none.csr"
if ((rc == 1)) && grep -q 'names nothing' "$TMP/err"; then
    ok "a CSR naming nothing is refused"
else
    notok "a CSR naming nothing is refused" "status $rc" "$(cat "$TMP/err")"
fi
ctl ca sign --csr "$TMP/missing.csr"
if ((rc == 1)) && grep -q 'missing.csr' "$TMP/err"; then
    ok "a missing CSR file is named"
else
    notok "a missing CSR file is named" "status $rc" "$(cat "$TMP/err")"
fi
ctl ca sign --csr "$TMP/p256.csr" --usages "server auth,telepathy"
if ((rc == 2)) && grep -q 'telepathy' "$TMP/err"; then
    ok "an unknown usage is named"
else
    notok "an unknown usage is named" "status $rc" "$(cat "$TMP/err")"
fi
AEGIS_MASTER_KEY=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff ctl ca sign \
    --csr "$TMP/p256.csr"
if ((rc == 1)) && ! grep -q 'BEGIN' "$TMP/out"; then
    ok "a wrong master key signs nothing"
else
    notok "a wrong master key signs nothing" "status $rc" "$(cat "$TMP/err")"
fi

finish
