#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The acme issuer end to end against Pebble (Let's Encrypt's ACME test CA) and
# pebble-challtestsrv (its mock DNS server), started and stopped here, with the real controller
# and its supervised dataplane:
# - HTTP-01: a Host with tls.issuerRef to an acme Issuer; Pebble validates by fetching the token
#   from the dataplane's HTTP listener; curl then verifies the served chain against Pebble's root
#   (/roots/0 of its management API).
# - DNS-01 with the exec provider (a script writing TXT records into challtestsrv), a wildcard.
# - EAB: right HMAC issues, wrong HMAC gives Ready=False with the CA's words.
# - PEBBLE_WFE_NONCEREJECT=50: issued anyway through badNonce retries (seen in the metrics).
# - preferredChain: with PEBBLE_ALTERNATE_ROOTS=1 the alternate chain to the named root is kept.
# - A token that is not served: Ready=False with the CA's detail, backed off (attempts 1,
#   nextRetryTime a minute ahead, no second order meanwhile).
# - Crash safety: the controller killed (-9) mid-order while Pebble is stopped (SIGSTOP); after the
#   restart and SIGCONT the same order completes, Pebble saw one newOrder.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE (default: build/...).

import calendar
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dptest import (CONTROLLER, DATAPLANE, free_port, no_sanitizer_report, parse_metrics,  # noqa
                    path, result, run, scrape, start_controller, start_upstream, stop, summary)
from acmetest import (CHALLTESTSRV, EAB_HMAC, EAB_KID, PEBBLE, cert_yaml, failure,  # noqa
                      issuer_yaml, make_pebble_cert, pebble_root, start_challtestsrv,
                      start_pebble, status, stored_names, wait_ready, write)

def subject_cn(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline"],
                       input=pem.encode(), capture_output=True)
    for line in r.stdout.decode().splitlines():
        if "commonName" in line:
            return line.split("=", 1)[1].strip()
    return ""


def chain_top_issuer(name):
    """The issuer CN of the last certificate of the stored chain."""
    try:
        with open(path(f"state/store/certificate/default/{name}/current.json")) as f:
            pem = json.load(f)["certificate"]
    except (OSError, ValueError, KeyError):
        return None
    last = "-----BEGIN CERTIFICATE-----" + pem.split("-----BEGIN CERTIFICATE-----")[-1]
    r = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-nameopt", "multiline"],
                       input=last.encode(), capture_output=True)
    for line in r.stdout.decode().splitlines():
        if "commonName" in line:
            return line.split("=", 1)[1].strip()
    return ""


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def count_in(log, needle):
    log.seek(0)
    return log.read().count(needle)


HOLD_SCRIPT = """#!/bin/sh
# lego-style exec DNS-01 hook writing into pebble-challtestsrv; waits while {hold} exists.
action=$1 fqdn=$2 value=$3
touch {started}
i=0
while [ -e {hold} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
case $action in
present) body="{{\\"host\\":\\"$fqdn\\",\\"value\\":\\"$value\\"}}"; ep=set-txt ;;
cleanup) body="{{\\"host\\":\\"$fqdn\\"}}"; ep=clear-txt ;;
*) echo "unknown action $action"; exit 2 ;;
esac
curl -sS --fail -X POST -d "$body" http://127.0.0.1:{mgmt}/$ep
"""


def main():
    started = time.time()
    for binary in (CONTROLLER, DATAPLANE, PEBBLE, CHALLTESTSRV):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing (hack/deps.sh installs pebble)")
    make_pebble_cert()
    upstream = start_upstream()
    hp, hs, api = free_port(), free_port(), free_port()
    cts, dns, cmgmt = start_challtestsrv()
    # A name the CA resolves elsewhere: its token is never served.
    run(["curl", "-sS", "-X", "POST", "-d", '{"host":"unserved.test","addresses":["127.0.0.2"]}',
         f"http://127.0.0.1:{cmgmt}/add-a"])
    peb, port, pmgmt, plog = start_pebble("pebble", hp, dns)
    peb_eab, port_eab, _, _ = start_pebble("pebble-eab", hp, dns, eab=True)
    peb_nr, port_nr, pmgmt_nr, _ = start_pebble("pebble-nonce", hp, dns,
                                                 env={"PEBBLE_WFE_NONCEREJECT": "50"})
    peb_r, port_r, pmgmt_r, rlog = start_pebble("pebble-resume", hp, dns)
    peb_alt, port_alt, pmgmt_alt, _ = start_pebble("pebble-alt", hp, dns,
                                                   env={"PEBBLE_ALTERNATE_ROOTS": "1"})
    alt_cn = subject_cn(pebble_root(pmgmt_alt, 1))

    hold, hold_started = path("hold"), path("hold.started")
    write("dns-hook.sh", HOLD_SCRIPT.format(hold=path("nohold"), started=path("dns.started"),
                                            mgmt=cmgmt), 0o755)
    write("hold-hook.sh", HOLD_SCRIPT.format(hold=hold, started=hold_started, mgmt=cmgmt), 0o755)
    write("state/secrets/default/eab/hmac", EAB_HMAC)
    write("state/secrets/default/eab-wrong/hmac", EAB_HMAC[::-1])

    http01 = "      - http01: {}\n"
    dns01 = f"""      - dns01: {{exec: {{command: [{path("dns-hook.sh")}], timeout: 20s}}}}
        selector: {{dnsZones: [dns.test]}}
      - http01: {{}}
"""
    eab = "    externalAccountBinding: {keyID: " + EAB_KID + \
          ", hmacKeySecretRef: {name: %s, key: hmac}}\n"
    write("res/issuers.yaml", "---\n".join([
        issuer_yaml("pebble", port, dns01),
        issuer_yaml("pebble-eab", port_eab, http01, eab % "eab"),
        issuer_yaml("pebble-eab-wrong", port_eab, http01, eab % "eab-wrong"),
        issuer_yaml("pebble-nonce", port_nr, http01),
        issuer_yaml("pebble-alt", port_alt, http01, f"    preferredChain: {alt_cn}\n"),
        issuer_yaml("pebble-resume", port_r,
                    f"      - dns01: {{exec: {{command: [{path('hold-hook.sh')}], "
                    "timeout: 60s}}\n"),
    ]))
    write("res/web.yaml", f"""apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {{name: web}}
spec:
  hostnames: [web.test, www.web.test]
  upstreams: [{{url: "http://127.0.0.1:{upstream}"}}]
  tls: {{mode: acme, issuerRef: {{name: pebble}}}}
""")
    write("res/certs.yaml", "---\n".join([
        cert_yaml("wild", "pebble", ["dns.test", "*.dns.test"]),
        cert_yaml("eab-ok", "pebble-eab", ["eab.test"]),
        cert_yaml("eab-bad", "pebble-eab-wrong", ["eab-bad.test"]),
        cert_yaml("nonce", "pebble-nonce", ["nonce.test", "nonce2.test"]),
        cert_yaml("unserved", "pebble", ["unserved.test"]),
        cert_yaml("alt", "pebble-alt", ["alt.test"]),
    ]))
    p, log = start_controller("controller", hp, hs, "--http-listen", f"127.0.0.1:{api}")

    # ---- HTTP-01 through the dataplane
    c = wait_ready("web-tls")
    result(c is not None and c["status"] == "True", "HTTP-01: the Host's certificate is issued",
           [c, status("Certificate", "web-tls")])
    write("pebble-root.pem", pebble_root(pmgmt))
    ok = False
    for _ in range(50):
        r = run(["curl", "-sS", "--max-time", "5", "--cacert", path("pebble-root.pem"),
                 "--resolve", f"www.web.test:{hs}:127.0.0.1", f"https://www.web.test:{hs}/"])
        ok = r.returncode == 0
        if ok:
            break
        time.sleep(0.2)
    result(ok, "curl verifies the served chain against Pebble's root (/roots/0)",
           [r.stderr.decode(errors="replace")])

    # ---- DNS-01, wildcard
    c = wait_ready("wild")
    st = status("Certificate", "wild") or {}
    result(c is not None and c["status"] == "True" and os.path.exists(path("dns.started")),
           "DNS-01 with the exec provider: a wildcard certificate is issued", [c, st])
    names = stored_names("wild")
    result(names == ["dns.test", "*.dns.test"], "it names dns.test and *.dns.test", [names])

    # ---- EAB
    c = wait_ready("eab-ok")
    result(c is not None and c["status"] == "True", "EAB with the right HMAC: issued", [c])
    c = wait_ready("eab-bad", "False")
    result(c is not None and c["status"] == "False" and "CA said" in failure("eab-bad"),
           "EAB with a wrong HMAC: Ready=False with the CA's words", [c, failure("eab-bad")])

    # ---- badNonce
    c = wait_ready("nonce")
    _, _, body = scrape(api)
    samples = parse_metrics(body)
    bad = sum(v for (n, labels), v in samples.items()
              if n == "aegis_acme_client_request_count" and ("status", "400") in labels and
              ("host", "127.0.0.1") in labels)
    result(c is not None and c["status"] == "True" and bad > 0,
           f"PEBBLE_WFE_NONCEREJECT=50: issued through {int(bad)} badNonce retries",
           [c, failure("nonce")])

    # ---- preferredChain: the alternate chain (Link rel="alternate") to Pebble's second root
    c = wait_ready("alt")
    top = chain_top_issuer("alt")
    result(c is not None and c["status"] == "True" and alt_cn and top == alt_cn,
           "preferredChain takes the alternate chain leading to the named root",
           [c, top, alt_cn])

    # ---- a token that is not served
    c = wait_ready("unserved", "False")
    st = status("Certificate", "unserved") or {}
    nrt = st.get("nextRetryTime")
    ahead = nrt and calendar.timegm(time.strptime(nrt, "%Y-%m-%dT%H:%M:%SZ")) - time.time()
    result(c is not None and c["status"] == "False" and "127.0.0.2" in failure("unserved") and
           st.get("failedIssuanceAttempts") == 1 and ahead and ahead > 30,
           "a token not served: Ready=False with the CA's detail, backed off a minute", [c, st])

    # ---- crash safety: controller killed mid-order with Pebble stopped, then both back
    orders_before = count_in(rlog, "/order-plz")
    write(hold, "")
    write("res/resume.yaml", cert_yaml("resume", "pebble-resume", ["resume.test"]))
    got = False
    for _ in range(100):
        if os.path.exists(hold_started):
            got = True
            break
        time.sleep(0.1)
    result(got and os.path.exists(path("state/store/acme-order/default/resume/current.json")),
           "the order is opened and persisted, its challenge being presented", [])
    peb_r.send_signal(signal.SIGSTOP)
    kids = children(p.pid)
    p.kill()
    p.wait()
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)
    os.unlink(hold)
    p, log2 = start_controller("controller2", hp, hs, "--http-listen", f"127.0.0.1:{api}")
    time.sleep(2)
    peb_r.send_signal(signal.SIGCONT)
    c = wait_ready("resume", timeout=60)
    orders = count_in(rlog, "/order-plz") - orders_before
    result(c is not None and c["status"] == "True" and orders == 1,
           f"after the restart the same order completes ({orders} newOrder at Pebble)",
           [c, status("Certificate", "resume")])

    rc, text = stop(p, log2)
    _, text1 = stop(p, log) if False else (0, open(path("controller.log")).read())
    result(rc == 0 and no_sanitizer_report(text) and no_sanitizer_report(text1),
           "the controller stops cleanly, no sanitizer report", [text[-3000:]])
    result("PRIVATE KEY" not in text + text1 and EAB_HMAC not in text + text1,
           "no private key or EAB HMAC key in the logs", [])
    for proc in (peb, peb_eab, peb_nr, peb_r, peb_alt, cts):
        proc.terminate()
        proc.wait()
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
