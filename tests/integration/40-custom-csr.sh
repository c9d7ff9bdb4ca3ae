#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Custom certificates and the CSR flow end to end through aegisctl, with material made by the
# OpenSSL CLI (a throwaway root and intermediate CA, leaves, PKCS#12 bundles):
#  - `certificate import --cert --key`: a matching pair is stored; importing it again, or with the
#    chain reversed, is "unchanged" (the revision stays 1); a mismatching key, an unrelated extra
#    certificate, an expired certificate, RSA 1024 and P-224 keys are refused with messages naming
#    the Certificate and the fix; one expiring within 30 days is stored with a warning;
#  - with resource files: the Certificate's dnsNames must be covered (a wildcard covers one label
#    only); a Certificate with issuerRef is refused;
#  - `certificate import --pkcs12`: the right password (also from a file with a newline, and a
#    legacy RC2/3DES bundle) is accepted, a wrong one is "wrong password";
#  - the CSR flow: `csr get` prints a CSR that `openssl req -verify` accepts, for the names of the
#    Certificate, the same one on every call; a throwaway CA (`openssl x509 -req`) signs it and
#    `csr import` stores the result (source csr, chain verifying with `openssl verify`); a
#    certificate signed from another CSR is refused;
#  - no private key material ever appears in any output or in the state directory.
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

export AEGIS_MASTER_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
export AEGIS_STATE_DIR=$TMP/state
# Every output of aegisctl, for the final check that no key material was printed.
ALL_OUT=$TMP/all-output

# ctl ARGS...: aegisctl with a time limit; stdout in $TMP/out, stderr in $TMP/err, status in rc.
ctl() {
    rc=0
    timeout 120 "$AEGISCTL" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    cat "$TMP/out" "$TMP/err" >>"$ALL_OUT"
}
# expect_ok NAME PATTERN: the last ctl succeeded and its stdout matches PATTERN.
expect_ok() {
    if ((rc == 0)) && grep -q -- "$2" "$TMP/out"; then
        ok "$1"
    else
        notok "$1" "exit $rc" "$(cat "$TMP/out" "$TMP/err")"
    fi
}
# expect_fail NAME PATTERN...: the last ctl failed with status 1 and stderr matches every PATTERN.
expect_fail() {
    local name=$1 p
    shift
    if ((rc != 1)); then
        notok "$name" "exit $rc, expected 1" "$(cat "$TMP/out" "$TMP/err")"
        return
    fi
    for p in "$@"; do
        if ! grep -q -- "$p" "$TMP/err"; then
            notok "$name" "stderr lacks: $p" "$(cat "$TMP/err")"
            return
        fi
    done
    ok "$name"
}
revision() {
    timeout 60 "$AEGISCTL" store list --output json |
        /usr/bin/python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["name"]==sys.argv[1] and x["kind"]=="certificate"]; print(r[0]["meta"]["revision"] if r else "none")' "$1"
}

O() { openssl "$@" 2>>"$TMP/openssl.log"; }
cd "$TMP"

# ---- a throwaway CA: root and intermediate ------------------------------------------------------
O req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -out root.crt \
    -days 365 -subj "/CN=Aegis Test Root" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
printf '%s\n' 'basicConstraints=critical,CA:TRUE,pathlen:0' 'keyUsage=critical,keyCertSign,cRLSign' \
    'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' >ca.ext
O req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout inter.key -out inter.csr \
    -subj "/CN=Aegis Test Intermediate"
O x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -days 365 \
    -extfile ca.ext -out inter.crt

# leaf NAME KEYOPTS DAYS SANS: NAME.key and NAME.crt signed by the intermediate.
leaf() {
    local name=$1 keyopts=$2 days=$3 sans=$4
    # shellcheck disable=SC2086
    O req -newkey $keyopts -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
    printf '%s\n' "subjectAltName=$sans" 'extendedKeyUsage=serverAuth' \
        'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' >"$name.ext"
    O x509 -req -in "$name.csr" -CA inter.crt -CAkey inter.key -CAcreateserial -days "$days" \
        -extfile "$name.ext" -out "$name.crt"
}
SANS='DNS:app.example.test,DNS:*.app.example.test,IP:10.0.0.1'
leaf app 'ec -pkeyopt ec_paramgen_curve:P-256' 90 "$SANS"
leaf soon 'rsa:2048' 10 "$SANS"
leaf weak 'rsa:1024' 90 "$SANS"
leaf p224 'ec -pkeyopt ec_paramgen_curve:P-224' 90 "$SANS"
cat app.crt inter.crt >app-chain.pem
cat inter.crt app.crt >app-reversed.pem
O req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stray.key -out stray.crt \
    -days 30 -subj "/CN=Unrelated Test Root"
cat app.crt inter.crt stray.crt >app-extra.pem

# An expired certificate: `openssl ca` is the 3.0 CLI's way to set past dates.
mkdir -p ca/newcerts
: >ca/index.txt
echo 1000 >ca/serial
cat >ca.cnf <<EOF
[ca]
default_ca = test
[test]
dir = $TMP/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
certificate = $TMP/inter.crt
private_key = $TMP/inter.key
default_md = sha256
policy = any
copy_extensions = copy
[any]
commonName = supplied
EOF
O req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout old.key -out old.csr \
    -subj /CN=old -addext "subjectAltName=$SANS"
O ca -batch -config ca.cnf -in old.csr -out old.crt -startdate 20200101000000Z \
    -enddate 20200201000000Z -notext

# ---- custom PEM pairs ----------------------------------------------------------------------------
ctl certificate import app --cert app-chain.pem --key app.key
expect_ok "a matching pair is imported" "Certificate default/app: imported (source custom"
ctl certificate import app --cert app-chain.pem --key app.key
expect_ok "the same pair again is unchanged" "unchanged, already stored"
ctl certificate import app --cert app-reversed.pem --key app.key
expect_ok "the reversed chain is put in order (so: unchanged)" "unchanged, already stored"
r=$(revision app)
if [[ $r == 1 ]]; then ok "the revision stayed 1"; else notok "the revision stayed 1" "got $r"; fi
ctl store show certificate/default/app --no-key
if ((rc == 0)) && [[ $(grep -c 'BEGIN CERTIFICATE' "$TMP/out") == 2 ]] &&
    awk '/BEGIN CERTIFICATE/{n++} n==1' "$TMP/out" | openssl x509 -noout -subject 2>/dev/null |
    grep -q 'CN *= *app'; then
    ok "the stored chain is leaf first, then the intermediate"
else
    notok "the stored chain is leaf first, then the intermediate" "$(cat "$TMP/out" "$TMP/err")"
fi

ctl certificate import app --cert app-chain.pem --key soon.key
expect_fail "a mismatching key is refused" "Certificate default/app" "--key soon.key does not match"
ctl certificate import app --cert app-extra.pem --key app.key
expect_fail "an unrelated extra certificate is refused" "not one chain" "Unrelated Test Root"
ctl certificate import old --cert old.crt --key old.key
expect_fail "an expired certificate is refused" "expired on 2020-02-01" "renew it"
ctl certificate import soon --cert soon.crt --key soon.key
if ((rc == 0)) && grep -q "warning: .*expires on .* in [0-9]* days" "$TMP/err"; then
    ok "a certificate expiring within 30 days is stored with a warning"
else
    notok "a certificate expiring within 30 days is stored with a warning" "$(cat "$TMP/err")"
fi
ctl certificate import weak --cert weak.crt --key weak.key
expect_fail "an RSA 1024 key is refused" "the key is RSA 1024" "the minimum is RSA 2048"
ctl certificate import p224 --cert p224.crt --key p224.key
expect_fail "a P-224 key is refused" "ECDSA secp224r1"

# ---- against the Certificate resource ------------------------------------------------------------
cat >certs.yaml <<EOF
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: covered}
spec:
  dnsNames: [app.example.test, www.app.example.test]
  ipAddresses: [10.0.0.1]
  custom: {certificate: {file: app-chain.pem}, privateKey: {file: app.key}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: deep}
spec:
  dnsNames: [a.b.app.example.test]
  custom: {certificate: {file: app-chain.pem}, privateKey: {file: app.key}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: other}
spec:
  dnsNames: [app.example.test, other.example.test]
  custom: {certificate: {file: app-chain.pem}, privateKey: {file: app.key}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: issued}
spec:
  dnsNames: [app.example.test]
  issuerRef: {name: local}
---
apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: local}
spec: {ca: {}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: csr-app}
spec:
  dnsNames: [csr.example.test, www.csr.example.test]
  ipAddresses: [127.0.0.1]
  csr:
    subject: {organizations: [Aegis Test]}
EOF
ctl certificate import covered --cert app-chain.pem --key app.key certs.yaml
expect_ok "names covered, one through the wildcard, and the IP" "imported"
ctl certificate import deep --cert app-chain.pem --key app.key certs.yaml
expect_fail "a wildcard covers one label only" 'does not cover spec.dnsNames\[0\] "a.b.app.example.test"'
ctl certificate import other --cert app-chain.pem --key app.key certs.yaml
expect_fail "a name the certificate lacks is refused" 'spec.dnsNames\[1\] "other.example.test"' \
    "it covers: app.example.test, \*.app.example.test, 10.0.0.1"
ctl certificate import issued --cert app-chain.pem --key app.key certs.yaml
expect_fail "a Certificate issued by an Issuer is refused" 'issued by Issuer "local"'

# ---- PKCS#12 -------------------------------------------------------------------------------------
O pkcs12 -export -in app-chain.pem -inkey app.key -out app.p12 -passout pass:right-password
O pkcs12 -export -legacy -in app-chain.pem -inkey app.key -out legacy.p12 \
    -passout pass:right-password
echo right-password >pw.txt
echo wrong-password >bad.txt
ctl certificate import bundle --pkcs12 app.p12 --password-file pw.txt
expect_ok "PKCS#12 with the right password (file with a newline)" "imported (source pkcs12"
ctl certificate import bundle --pkcs12 app.p12 --password-file bad.txt
expect_fail "PKCS#12 with a wrong password says so" "wrong password"
ctl certificate import bundle --pkcs12 app.p12
expect_fail "PKCS#12 without its password says so" "none was given"
ctl certificate import legacy --pkcs12 legacy.p12 --password-file pw.txt
expect_ok "a legacy RC2/3DES PKCS#12 bundle is read (legacy provider)" "imported (source pkcs12"
ctl certificate import bundle --pkcs12 app.crt --password-file pw.txt
expect_fail "a PEM file given as PKCS#12 is refused" "not a PKCS#12 bundle"

# ---- the CSR flow --------------------------------------------------------------------------------
ctl csr get csr-app certs.yaml
cp "$TMP/out" csr1.pem
if ((rc == 0)) && grep -q "made a new key and CSR" "$TMP/err" &&
    openssl req -in csr1.pem -noout -verify >/dev/null 2>&1; then
    ok "csr get makes a CSR that verifies"
else
    notok "csr get makes a CSR that verifies" "$(cat "$TMP/out" "$TMP/err")"
fi
text=$(openssl req -in csr1.pem -noout -text 2>&1 || true)
if grep -q "DNS:csr.example.test, DNS:www.csr.example.test, IP Address:127.0.0.1" <<<"$text" &&
    grep -q "O *= *Aegis Test" <<<"$text" && grep -q "CN *= *csr.example.test" <<<"$text"; then
    ok "the CSR asks for the Certificate's names and subject"
else
    notok "the CSR asks for the Certificate's names and subject" "$text"
fi
ctl csr get csr-app certs.yaml
if ((rc == 0)) && cmp -s "$TMP/out" csr1.pem; then
    ok "csr get prints the same CSR again"
else
    notok "csr get prints the same CSR again" "$(cat "$TMP/err")"
fi
ctl csr get covered certs.yaml
expect_fail "csr get on a Certificate without csr: is refused" "has no spec.csr"

O x509 -req -in csr1.pem -CA inter.crt -CAkey inter.key -CAcreateserial -days 30 \
    -copy_extensions copy -out signed.crt
cat inter.crt signed.crt >signed-chain.pem
ctl csr import csr-app --cert signed-chain.pem
expect_ok "the signed certificate is imported" "Certificate default/csr-app: imported"
ctl csr import csr-app --cert signed-chain.pem
expect_ok "importing it again is unchanged" "unchanged, already stored"
ctl store show certificate/default/csr-app
if ((rc == 0)) && grep -q "csr" "$TMP/out" &&
    grep -q "sealed; opens with the master key" "$TMP/out"; then
    awk '/BEGIN CERTIFICATE/,/END CERTIFICATE/' "$TMP/out" >stored.pem
    if openssl verify -CAfile root.crt -untrusted stored.pem stored.pem >/dev/null 2>&1; then
        ok "stored with source csr, its key, and a chain that verifies"
    else
        notok "stored with source csr, its key, and a chain that verifies" "$(cat stored.pem)"
    fi
else
    notok "stored with source csr, its key, and a chain that verifies" "$(cat "$TMP/out" "$TMP/err")"
fi

O req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout another.key \
    -out another.csr -subj /CN=csr.example.test \
    -addext "subjectAltName=DNS:csr.example.test,DNS:www.csr.example.test,IP:127.0.0.1"
O x509 -req -in another.csr -CA inter.crt -CAkey inter.key -CAcreateserial -days 30 \
    -copy_extensions copy -out another.crt
ctl csr import csr-app --cert another.crt
expect_fail "a certificate signed from another CSR is refused" \
    "does not match the key of the CSR made for Certificate default/csr-app; was it signed from another CSR?"
ctl csr import nothing --cert signed.crt
expect_fail "csr import without a CSR says to run csr get" "no CSR has been made"

# ---- no key material anywhere ------------------------------------------------------------------
leaks=$(grep -c "PRIVATE KEY-----" "$ALL_OUT" || true)
body=$(sed -n 2p app.key)
if [[ $leaks == 0 ]] && ! grep -qF -- "$body" "$ALL_OUT"; then
    ok "no private key in any aegisctl output"
else
    notok "no private key in any aegisctl output" "$leaks PEM key headers"
fi
if ! grep -rqF "PRIVATE KEY" "$AEGIS_STATE_DIR" && ! grep -rqF -- "$body" "$AEGIS_STATE_DIR"; then
    ok "no plain-text key in the state directory"
else
    notok "no plain-text key in the state directory"
fi

finish
