#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `aegisctl get KIND` and `aegisctl describe` over the status files of a real controller run:
# aegis-controller --once (local CA, a local dataplane it starts) on an Issuer, an explicit
# Certificate, a Host with an implicit Certificate and a plain-HTTP Host, then:
#  - the tables' columns (READY, ISSUER, EXPIRES "89d", RENEWAL, AGE; HOSTNAMES, TLS, SERVED)
#    and -o wide's SERIAL, equal to the serial in the status file;
#  - with PATHs, resources joined with their status, "<unknown>" for one never reconciled;
#  - -o json and -o yaml parse and hold the status;
#  - describe certificate/host: conditions, serial, validity, what the dataplane serves;
#  - errors name the file and the fix: no status file, no status directory, an invalid file.
# Environment: AEGISCTL, AEGIS_CONTROLLER, AEGIS_DATAPLANE (default build/...), AEGIS_SOURCE_DIR.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
AEGISCTL=${AEGISCTL:-$SRC/build/aegisctl}
AEGIS_CONTROLLER=${AEGIS_CONTROLLER:-$SRC/build/aegis-controller}
AEGIS_DATAPLANE=${AEGIS_DATAPLANE:-$SRC/build/aegis-dataplane}
PY=/usr/bin/python3
cd "$SRC"
for b in "$AEGISCTL" "$AEGIS_CONTROLLER" "$AEGIS_DATAPLANE"; do
    [[ -x $b ]] || bail_out "$b is not built"
done

S=$TMP/state
mkdir -p "$TMP/res"
cat >"$TMP/res/all.yaml" <<'YAML'
apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: local}
spec: {ca: {}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: api}
spec: {dnsNames: [api.test], issuerRef: {name: local}}
---
apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {name: app}
spec:
  hostnames: [app.test]
  upstreams: [{url: "http://127.0.0.1:9"}]
  tls: {mode: acme, issuerRef: {name: local}}
---
apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {name: plain}
spec:
  hostnames: [plain.test]
  upstreams: [{url: "http://127.0.0.1:9"}]
  tls: {mode: none}
YAML

if ! timeout 60 "$AEGIS_CONTROLLER" --watch "$TMP/res" --state-dir "$S" --once --workers 1 \
    --http "127.0.0.1:$(free_port)" --https "127.0.0.1:$(free_port)" \
    --dataplane-bin "$AEGIS_DATAPLANE" 2>"$TMP/controller.log"; then
    bail_out "the controller run failed: $(tail -20 "$TMP/controller.log")"
fi
SERIAL=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["serialNumber"])' \
    "$S/status/Certificate/default/app-tls.json")

# expect NAME COMMAND... : runs the command, keeps stdout in $out, stderr in $err, status in $rc.
run() {
    rc=0
    out=$("$@" 2>"$TMP/err") || rc=$?
    err=$(cat "$TMP/err")
}

# row TABLE NAME: the row of NAME (second column) in a table, columns separated by 3+ spaces.
row() {
    awk -v n="$2" '$2 == n' <<<"$1"
}

run "$AEGISCTL" get certificates --state-dir "$S"
hdr=$(head -1 <<<"$out")
if [[ $rc == 0 && $hdr =~ ^NAMESPACE\ +NAME\ +READY\ +ISSUER\ +EXPIRES\ +RENEWAL\ +AGE$ ]]; then
    ok "get certificates: NAMESPACE NAME READY ISSUER EXPIRES RENEWAL AGE"
else
    notok "get certificates: the header" "$out" "$err"
fi
r=$(row "$out" app-tls)
# shellcheck disable=SC2206
f=($r)
if [[ ${f[2]:-} == True && ${f[3]:-} == Aegis && $r =~ \ (89|90)d\ +(59|60)d\ +[0-9]+s$ ]]; then
    ok "... the implicit Certificate is Ready, issued by the local CA, expires in 89d, renews in 59d"
else
    notok "... the row of app-tls" "$out"
fi

run "$AEGISCTL" get certificates -o wide -d "$S"
if [[ $(head -1 <<<"$out") == *"REVISION   SERIAL"*STATUS && $(row "$out" app-tls) == *" 1 "*"$SERIAL"* ]]; then
    ok "-o wide adds REVISION, SERIAL (the status file's) and STATUS"
else
    notok "-o wide" "$out"
fi

run "$AEGISCTL" get hosts -d "$S"
if [[ $(head -1 <<<"$out") =~ ^NAMESPACE\ +NAME\ +HOSTNAMES\ +TLS\ +READY\ +SERVED\ +AGE$ ]] &&
    [[ $(row "$out" app) =~ app\.test\ +\<unknown\>\ +True\ +True\ + ]] &&
    [[ $(row "$out" plain) =~ plain\.test\ +\<unknown\>\ +True\ +\<none\>\ + ]]; then
    ok "get hosts: Ready and Served=True for the TLS Host, SERVED <none> for plain HTTP"
else
    notok "get hosts" "$out" "$err"
fi

cat >"$TMP/res/later.yaml" <<'YAML'
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: later}
spec: {dnsNames: [later.test], issuerRef: {name: local}}
YAML
run "$AEGISCTL" get certs "$TMP/res" -d "$S"
if [[ $rc == 0 && $(row "$out" later) =~ later\ +\<unknown\>\ +local\ +\<unknown\>\ +\<unknown\>\ +\<unknown\>$ &&
    $(row "$out" api) =~ api\ +True\ +local\  && $(row "$out" app-tls) =~ app-tls\ +True\ +local\  ]]; then
    ok "with PATHs: resources (and implicit Certificates) joined with status, <unknown> when none"
else
    notok "get certs PATH" "$out" "$err"
fi
run "$AEGISCTL" get hosts -n other -d "$S"
if [[ $rc == 0 && -z $out && $err == *"No Host found in namespace other"* ]]; then
    ok "-n filters by namespace"
else
    notok "-n other" "$out" "$err"
fi

run "$AEGISCTL" get issuers -o json -d "$S"
if [[ $rc == 0 ]] && $PY -c '
import json, sys
d = json.loads(sys.argv[1])
it = d["items"]
assert d["kind"] == "List" and len(it) == 1 and it[0]["metadata"]["name"] == "local"
assert [c["status"] for c in it[0]["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
' "$out"; then
    ok "get issuers -o json: a List with the status"
else
    notok "-o json" "$out" "$err"
fi
run "$AEGISCTL" get hosts -o yaml -d "$S"
if [[ $rc == 0 ]] && $PY -c '
import sys, yaml
d = yaml.safe_load(sys.argv[1])
app = [i for i in d["items"] if i["metadata"]["name"] == "app"][0]
assert app["status"]["served"][0]["serialNumber"] == sys.argv[2], app
assert app["status"]["served"][0]["hostname"] == "app.test"
' "$out" "$SERIAL"; then
    ok "get hosts -o yaml: YAML with status.served"
else
    notok "-o yaml" "$out" "$err"
fi

run "$AEGISCTL" describe certificate app-tls -d "$S"
if [[ $rc == 0 && $out == *"Ready=True (Ready)"* && $out == *"Issuing=False (UpToDate)"* &&
    $out == *"Serial number:"*"$SERIAL"* && $out =~ Not\ after:.*\(in\ (89|90)d\)  &&
    $out == *"Fingerprint SHA-256:"* && $out == *"Failures:"* && $out == *"Events:"* ]]; then
    ok "describe certificate: conditions, serial, validity, fingerprint, failures, events"
else
    notok "describe certificate" "$out" "$err"
fi
run "$AEGISCTL" describe host app -d "$S"
if [[ $rc == 0 && $out == *"Served=True (Served)"* && $out == *"app.test (dataplane local)"* &&
    $out == *"Serial number:"*"$SERIAL"* && $out == *"Served since:"* ]]; then
    ok "describe host: the Served condition and what the dataplane serves"
else
    notok "describe host" "$out" "$err"
fi
run "$AEGISCTL" describe host app -o json -d "$S"
if [[ $rc == 0 ]] && $PY -c 'import json,sys; assert json.loads(sys.argv[1])["served"]' "$out"; then
    ok "describe -o json prints the status object"
else
    notok "describe -o json" "$out" "$err"
fi

run "$AEGISCTL" describe certificate nope -d "$S"
if [[ $rc == 1 && $err == *"no status for Certificate default/nope in $S/status: is aegis-controller running with --state-dir $S?"* ]]; then
    ok "describe of an unknown object names the directory and the fix"
else
    notok "describe nope" "$rc" "$err"
fi
run "$AEGISCTL" get hosts -d "$TMP/none"
if [[ $rc == 1 && $err == *"no status in $TMP/none/status: is aegis-controller running"* ]]; then
    ok "get without a status directory says so"
else
    notok "get without status dir" "$rc" "$err"
fi
printf '{"kind": "Host", "status": {"conditions": [{"type": "Ready"}]}}' \
    >"$S/status/Host/default/broken.json"
run "$AEGISCTL" get hosts -d "$S"
if [[ $rc == 1 && $err == *"$S/status/Host/default/broken.json: not a valid Host status"* &&
    $(row "$out" app) == *True* ]]; then
    ok "an invalid status file is named (exit 1); the others are still listed"
else
    notok "invalid status file" "$rc" "$out" "$err"
fi
if grep -q "PRIVATE KEY" <<<"$(cat "$TMP/controller.log")"; then
    notok "no private key in the controller's log"
else
    ok "no private key in the controller's log"
fi
finish
