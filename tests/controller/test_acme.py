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
# - DNS-01 propagation: a hook that publishes its record only seconds after it returned; the
#   controller waits until challtestsrv's DNS (the solver's nameservers) shows it, saying so in
#   the Issuing condition, before Pebble is asked to validate (which would fail earlier).
# - Rate limits: a proxy in front of Pebble answers the first newOrder with 429, a rateLimited
#   problem and Retry-After: 3; the Issuing condition shows the CA's words, and the order is made
#   after the wait, no sooner.
# - EAB: right HMAC issues, wrong HMAC gives Ready=False with the CA's words.
# - PEBBLE_WFE_NONCEREJECT=50: issued anyway through badNonce retries (seen in the metrics).
# - preferredChain: with PEBBLE_ALTERNATE_ROOTS=1 the alternate chain to the named root is kept.
# - A token that is not served: Ready=False with the CA's detail, backed off (attempts 1,
#   nextRetryTime a minute ahead, no second order meanwhile).
# - The Issuing condition says what a pending issuance waits for (the issuer's PENDING message).
# - Renewal: a Pebble issuing for SHORT_LIFETIME seconds (certificateValidityPeriod); the Host's
#   certificate is renewed two thirds in, the new one is served, and a client making TLS requests
#   all along (verifying against Pebble's root) never fails.
# - Revocation: aegisctl certificate revoke (keyCompromise); Pebble's management API reports the
#   serial revoked, and after SIGHUP the controller issues a new certificate.
# - Crash safety: the controller killed (-9) mid-order while Pebble is stopped (SIGSTOP); after the
#   restart and SIGCONT the same order completes, Pebble saw one newOrder.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE (default: build/...).

import calendar
import json
import os
import signal
import ssl
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dptest import (AEGISCTL, free_port, no_sanitizer_report,  # noqa
                    parse_metrics, path, result, run, scrape, start_controller, start_upstream,
                    stop, summary, wait_for)
from acmetest import (EAB_HMAC, EAB_KID, SHORT_LIFETIME, cert_yaml, failure,  # noqa
                      issuer_yaml, pebble_root, prepare_pebble,
                      start_challtestsrv, start_pebble, status, stored_names, wait_ready, write)

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


def stored_serial(name):
    try:
        with open(path(f"state/store/certificate/default/{name}/current.json")) as f:
            return json.load(f)["meta"]["serial"]
    except (OSError, ValueError, KeyError):
        return None


def der_serial(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True)
    return r.stdout.decode().strip().split("=", 1)[-1].upper()


class RateLimitProxy(threading.Thread):
    """HTTPS in front of a Pebble: its directory with newOrder pointing here, the first newOrder
    answered 429 (rateLimited, Retry-After: RETRY), later ones forwarded with this Host (Pebble
    checks the JWS url against it). Records when each newOrder came."""
    RETRY = 3

    def __init__(self, pebble_port):
        super().__init__(daemon=True)
        import http.server
        proxy = self
        self.times, self.limited = [], 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def forward(self, body=None):
                import http.client
                ctx = ssl.create_default_context(cafile=path("pebble.crt"))
                c = http.client.HTTPSConnection("127.0.0.1", pebble_port, context=ctx, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"127.0.0.1:{proxy.port}"
                c.request(self.command, self.path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                if self.path == "/dir":
                    d = json.loads(data)
                    d["newOrder"] = f"https://127.0.0.1:{proxy.port}/order-plz"
                    data = json.dumps(d).encode()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.forward()

            def do_HEAD(self):
                self.forward()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/order-plz":
                    proxy.times.append(time.time())
                    if proxy.limited == 0:
                        proxy.limited += 1
                        doc = json.dumps({"type": "urn:ietf:params:acme:error:rateLimited",
                                          "detail": "too many new orders recently"}).encode()
                        self.send_response(429)
                        self.send_header("Content-Type", "application/problem+json")
                        self.send_header("Retry-After", str(proxy.RETRY))
                        self.send_header("Content-Length", str(len(doc)))
                        self.end_headers()
                        self.wfile.write(doc)
                        return
                self.forward(body)

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(path("pebble.crt"), path("pebble.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)

    def run(self):
        self.server.serve_forever()


class IssuingWatch(threading.Thread):
    """Records every distinct Issuing message of some Certificates, from the controller's start
    (a pending message may last only a few seconds)."""

    def __init__(self, names):
        super().__init__(daemon=True)
        self.seen = {n: [] for n in names}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for n, msgs in self.seen.items():
                m = failure(n)
                if m and (not msgs or msgs[-1] != m):
                    msgs.append(m)
            time.sleep(0.02)

    def saw(self, name, needle):
        return next((m for m in self.seen[name] if needle in m), "")


class TLSClient(threading.Thread):
    """Makes HTTPS requests to host through the dataplane in a loop, verifying the chain against
    root; counts failures and records the leaf of every handshake."""

    def __init__(self, port, host, root):
        super().__init__(daemon=True)
        self.port, self.host = port, host
        self.ctx = ssl.create_default_context(cafile=root)
        self.stop = threading.Event()
        self.ok, self.failures, self.leaves = 0, [], []

    def run(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
                    with self.ctx.wrap_socket(raw, server_hostname=self.host) as t:
                        der = t.getpeercert(binary_form=True)
                        t.sendall(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n"
                                  "Connection: close\r\n\r\n".encode())
                        head = t.recv(64)
                        if not head.startswith(b"HTTP/1.1 200"):
                            raise OSError(f"answer {head!r}")
                if not self.leaves or self.leaves[-1] != der:
                    self.leaves.append(der)
                self.ok += 1
            except (OSError, ssl.SSLError) as e:
                self.failures.append(f"{time.time():.1f}: {e}")
            time.sleep(0.05)


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

# Returns at once and publishes the record DELAY seconds later, as a slow DNS provider would.
SLOW_SCRIPT = """#!/bin/sh
action=$1 fqdn=$2 value=$3
case $action in
present) (sleep {delay}; curl -sS --fail -X POST \\
          -d "{{\\"host\\":\\"$fqdn\\",\\"value\\":\\"$value\\"}}" \\
          http://127.0.0.1:{mgmt}/set-txt) >/dev/null 2>&1 & ;;
cleanup) curl -sS --fail -X POST -d "{{\\"host\\":\\"$fqdn\\"}}" \\
          http://127.0.0.1:{mgmt}/clear-txt ;;
esac
"""
SLOW_DELAY = 4


def main():
    started = time.time()
    prepare_pebble()
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
    peb_s, port_s, pmgmt_s, _ = start_pebble("pebble-short", hp, dns, validity=SHORT_LIFETIME)
    limiter = RateLimitProxy(port)
    limiter.start()

    hold, hold_started = path("hold"), path("hold.started")
    write("dns-hook.sh", HOLD_SCRIPT.format(hold=path("nohold"), started=path("dns.started"),
                                            mgmt=cmgmt), 0o755)
    write("hold-hook.sh", HOLD_SCRIPT.format(hold=hold, started=hold_started, mgmt=cmgmt), 0o755)
    write("slow-hook.sh", SLOW_SCRIPT.format(delay=SLOW_DELAY, mgmt=cmgmt), 0o755)
    write("state/secrets/default/eab/hmac", EAB_HMAC)
    write("state/secrets/default/eab-wrong/hmac", EAB_HMAC[::-1])

    http01 = "      - http01: {}\n"
    ns = f"nameservers: ['127.0.0.1:{dns}']"
    dns01 = f"""      - dns01: {{exec: {{command: [{path("dns-hook.sh")}], timeout: 20s}}, {ns}}}
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
        issuer_yaml("pebble-short", port_s, http01),
        issuer_yaml("pebble-limited", limiter.port, http01),
        issuer_yaml("pebble-resume", port_r,
                    f"      - dns01: {{exec: {{command: [{path('hold-hook.sh')}], "
                    f"timeout: 60s}}, {ns}}}\n"),
        issuer_yaml("pebble-slowdns", port,
                    f"      - dns01: {{exec: {{command: [{path('slow-hook.sh')}]}}, {ns}, "
                    "propagationTimeout: 30s}\n"),
    ]))
    write("res/web.yaml", f"""apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {{name: web}}
spec:
  hostnames: [web.test, www.web.test]
  upstreams: [{{url: "http://127.0.0.1:{upstream}"}}]
  tls: {{mode: acme, issuerRef: {{name: pebble}}}}
---
apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {{name: short}}
spec:
  hostnames: [short.test]
  upstreams: [{{url: "http://127.0.0.1:{upstream}"}}]
  tls: {{mode: acme, issuerRef: {{name: pebble-short}}}}
""")
    write("res/certs.yaml", "---\n".join([
        cert_yaml("wild", "pebble", ["dns.test", "*.dns.test"]),
        cert_yaml("eab-ok", "pebble-eab", ["eab.test"]),
        cert_yaml("eab-bad", "pebble-eab-wrong", ["eab-bad.test"]),
        cert_yaml("nonce", "pebble-nonce", ["nonce.test", "nonce2.test"]),
        cert_yaml("unserved", "pebble", ["unserved.test"]),
        cert_yaml("alt", "pebble-alt", ["alt.test"]),
        cert_yaml("slowdns", "pebble-slowdns", ["slow.test"]),
        cert_yaml("limited", "pebble-limited", ["limited.test"]),
    ]))
    watch = IssuingWatch(["slowdns", "limited"])
    watch.start()
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

    # ---- DNS-01 propagation: the CA is asked only once the record is visible
    c = wait_ready("slowdns")
    waited = watch.saw("slowdns", "waiting for the TXT record")
    result(c is not None and c["status"] == "True" and
           "_acme-challenge.slow.test. to be visible at 127.0.0.1:" in waited,
           f"DNS-01 published {SLOW_DELAY} s late: the controller waits until the nameserver "
           "shows it (saying so), then issues", [c, waited, failure("slowdns")])

    # ---- rate limited: 429 + Retry-After, the CA's words in the status, no order before the time
    c = wait_ready("limited")
    watch.stop.set()
    said = watch.saw("limited", "rateLimited")
    gap = limiter.times[1] - limiter.times[0] if len(limiter.times) >= 2 else 0
    result(c is not None and c["status"] == "True" and
           "too many new orders recently (rateLimited)" in said and len(limiter.times) == 2 and
           gap >= RateLimitProxy.RETRY - 1,
           f"429 rateLimited with Retry-After: {RateLimitProxy.RETRY}: the status says so, the "
           f"order is made again {gap:.1f} s later and issued",
           [c, said, limiter.times])

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

    # ---- renewal: a short lifetime, renewed and served with no failed request
    c = wait_ready("short-tls")
    write("short-root.pem", pebble_root(pmgmt_s))
    ok = wait_for(lambda: run(["curl", "-sS", "--max-time", "5", "--cacert",
                               path("short-root.pem"), "--resolve",
                               f"short.test:{hs}:127.0.0.1",
                               f"https://short.test:{hs}/"]).returncode == 0)
    first = stored_serial("short-tls")
    client = TLSClient(hs, "short.test", path("short-root.pem"))
    client.start()
    deadline = time.time() + SHORT_LIFETIME + 20
    while time.time() < deadline and len(client.leaves) < 2:
        time.sleep(0.2)
    time.sleep(1)
    client.stop.set()
    client.join()
    served = [der_serial(d) for d in client.leaves]
    now_stored = stored_serial("short-tls")
    result(ok and c is not None and c["status"] == "True" and len(served) >= 2 and
           served[0] == first and served[-1] == now_stored and now_stored != first,
           f"a {SHORT_LIFETIME} s certificate is renewed and the new one served "
           f"({' -> '.join(served)})", [c, first, now_stored, served])
    result(not client.failures and client.ok > 10,
           f"a client making TLS requests meanwhile saw no failure ({client.ok} requests)",
           client.failures[:5])

    # ---- revocation: aegisctl revokes at the CA, the controller re-issues on SIGHUP
    serial = stored_serial("web-tls")
    r = run([AEGISCTL, "certificate", "revoke", "web-tls", "--reason", "keyCompromise",
             "--state-dir", path("state"), path("res")], timeout=30)
    st = run(["curl", "-sS", "--max-time", "5", "--cacert", path("pebble.crt"),
              f"https://127.0.0.1:{pmgmt}/cert-status-by-serial/{serial}"]).stdout.decode()
    try:
        revoked = json.loads(st).get("Status") == "Revoked"
    except ValueError:
        revoked = False
    result(r.returncode == 0 and revoked,
           f"aegisctl certificate revoke: Pebble reports serial {serial} revoked",
           [r.stdout.decode(), r.stderr.decode(), st[:500]])
    p.send_signal(signal.SIGHUP)
    ok = wait_for(lambda: stored_serial("web-tls") not in (None, serial), timeout=30)
    c = wait_ready("web-tls")
    result(ok and c is not None and c["status"] == "True",
           "after SIGHUP the controller issues a new certificate for the revoked one",
           [c, serial, stored_serial("web-tls")])

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
    # Pebble does not answer: the issuance is pending, and the Issuing condition says why.
    base = "no certificate has been issued yet"
    ok = wait_for(lambda: failure("resume").startswith(base + "; "), timeout=30)
    result(ok, "while the CA does not answer, the Issuing condition says what is awaited",
           [failure("resume")])
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
    limiter.server.shutdown()
    limiter.server.server_close()
    for proc in (peb, peb_eab, peb_nr, peb_r, peb_alt, peb_s, cts):
        proc.terminate()
        proc.wait()
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
