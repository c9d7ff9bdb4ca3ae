#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The controller's HTTP port (--http-listen) with the real binaries: the read-only status API,
# /healthz, /readyz and /metrics, and the Prometheus alerting rules of manifests/prometheus/.
#
# The controller starts with --no-dataplane and a dataplane socket nobody listens on, so its
# pushes fail: /readyz must say 503 and why, /healthz 200. Then a dataplane is started on that
# socket; the controller's retry reaches it and /readyz flips to 200. Checked then: every object
# and list path against the status files, 404 (unknown object, kind, path, a name that tries to
# leave the status directory) and 405 with a Kubernetes-style body, `promtool check metrics` on a
# scrape, and the values - expiration and renewal equal the status's notAfter and renewalTime,
# ready_status 1 on condition="True", the push counters equal the pushes the log reports, the
# generation is the last one pushed, the issuances counted; no private key in any answer or log.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE (default: build/...).

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "dataplane"))
from dptest import (DATAPLANE, SRC, free_port, metric, no_sanitizer_report,  # noqa: E402
                    parse_metrics, path, result, run, sanitizer_env, scrape, start_dataplane,
                    summary, track, wait_for)

CONTROLLER = os.environ.get("AEGIS_CONTROLLER", os.path.join(SRC, "build", "aegis-controller"))
API = "/apis/aegis.dev/v1alpha1"

RESOURCES = """apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {name: local}
spec: {ca: {}}
---
apiVersion: aegis.dev/v1alpha1
kind: Certificate
metadata: {name: web}
spec: {dnsNames: [web.test], issuerRef: {name: local}}
---
apiVersion: aegis.dev/v1alpha1
kind: Host
metadata: {name: app}
spec:
  hostnames: [app.test]
  upstreams: [{url: "http://127.0.0.1:9"}]
  tls: {mode: acme, issuerRef: {name: local}}
"""

bodies = []  # every answer, checked for key material at the end


def get(port, target, method="GET"):
    """(status, headers, body text) of one request to the controller's HTTP port."""
    r = run(["curl", "-sS", "--max-time", "10", "-X", method, "-D", path("api.headers"),
             "-o", path("api.body"), "-w", "%{http_code}", f"http://127.0.0.1:{port}{target}"])
    headers = {}
    try:
        for line in open(path("api.headers")).read().splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = open(path("api.body")).read()
    except OSError:
        body = ""
    bodies.append(body)
    return int(r.stdout.decode() or 0), headers, body


def get_json(port, target, method="GET"):
    status, headers, body = get(port, target, method)
    try:
        return status, headers, json.loads(body)
    except ValueError:
        return status, headers, None


def status_file(kind, name):
    try:
        with open(path(f"state/status/{kind}/default/{name}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def value(samples, name, **labels):
    """dptest.metric for series with a "name" label (which its signature takes for itself)."""
    labels = {k.rstrip("_"): v for k, v in labels.items()}
    return samples.get((name, tuple(sorted(labels.items()))), None)


def unix(rfc3339):
    return int(datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


def check_rules():
    rules = os.path.join(SRC, "manifests", "prometheus")
    r = run(["promtool", "check", "rules", os.path.join(rules, "aegis-alerts.yaml")])
    result(r.returncode == 0, "promtool check rules passes on manifests/prometheus/aegis-alerts.yaml",
           [r.stdout.decode(), r.stderr.decode()])
    r = run(["promtool", "test", "rules", "aegis-alerts.test.yaml"], cwd=rules)
    result(r.returncode == 0, "the alerts fire as their unit tests expect (promtool test rules)",
           [r.stdout.decode(), r.stderr.decode()])


def check_not_ready(port):
    ok = wait_for(lambda: get(port, "/readyz")[0] == 503 and "push" in bodies[-1], timeout=15)
    result(ok, "/readyz is 503 and says why while pushes fail", [bodies[-1]])
    status, _, body = get(port, "/healthz")
    result(status == 200 and body.strip() == "ok", "/healthz is 200 while the loop runs",
           [status, body])


def check_objects(port):
    for kind, plural, name in (("Issuer", "issuers", "local"), ("Certificate", "certificates",
                                                                  "web"),
                               ("Certificate", "certificates", "app-tls"), ("Host", "hosts", "app")):
        status, headers, doc = get_json(port, f"{API}/namespaces/default/{plural}/{name}")
        result(status == 200 and headers.get("content-type") == "application/json" and
               doc == status_file(kind, name) and doc["kind"] == kind and doc["name"] == name,
               f"GET .../{plural}/{name} answers its status file", [status, headers, doc])
    for target in (f"{API}/namespaces/default/certificates", f"{API}/certificates",
                   f"{API}/certificates/"):
        status, _, doc = get_json(port, target)
        names = [i["name"] for i in doc.get("items", [])] if doc else None
        result(status == 200 and doc["kind"] == "CertificateList" and
               names == ["app-tls", "web"] and
               doc["items"][1] == status_file("Certificate", "web"),
               f"GET {target} lists both Certificates", [status, doc])
    status, _, doc = get_json(port, f"{API}/hosts")
    result(status == 200 and [i["name"] for i in doc["items"]] == ["app"], "GET .../hosts lists the Host",
           [status, doc])
    status, _, doc = get_json(port, f"{API}/namespaces/other/issuers")
    result(status == 200 and doc["items"] == [], "an empty namespace lists nothing", [status, doc])
    for target in (f"{API}/namespaces/default/certificates/nope", f"{API}/namespaces/default/widgets",
                   f"{API}/namespaces/default/certificates/..", "/apis/aegis.dev/v1alpha1/namespaces/"
                   "default/certificates/%2e%2e%2fIssuer%2fdefault%2flocal", f"{API}/namespaces/default",
                   f"{API}/namespaces/default/hosts/app/extra", "/nope", "/"):
        status, _, doc = get_json(port, target)
        result(status == 404 and doc is not None and doc.get("kind") == "Status" and
               doc.get("code") == 404 and doc.get("reason") == "NotFound",
               f"GET {target} is 404 with a Status object", [status, doc])
    for method, target in (("POST", f"{API}/namespaces/default/certificates/web"),
                           ("DELETE", f"{API}/certificates"), ("PUT", "/metrics")):
        status, headers, _ = get(port, target, method)
        result(status == 405 and headers.get("allow") == "GET, HEAD", f"{method} {target} is 405",
               [status, headers])


def check_metrics(port, log_text):
    status, ctype, text = scrape(port)
    bodies.append(text)
    result(status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8",
           "/metrics answers the text format 0.0.4", [status, ctype])
    r = run(["promtool", "check", "metrics"], input=text.encode())
    result(r.returncode == 0, "promtool check metrics passes on a scrape",
           [r.stdout.decode(), r.stderr.decode(), text[:3000]])
    m = parse_metrics(text)
    for name in ("web", "app-tls"):
        st = status_file("Certificate", name)["status"]
        labels = {"namespace": "default", "name_": name, "issuer_name": "local"}
        result(value(m, "aegis_certificate_expiration_timestamp_seconds", **labels) ==
               unix(st["notAfter"]) and
               value(m, "aegis_certificate_renewal_timestamp_seconds", **labels) ==
               unix(st["renewalTime"]),
               f"{name}: expiration and renewal timestamps equal the status's notAfter and "
               "renewalTime", [st, [k for k in m if k[0].startswith("aegis_certificate")]])
        result(value(m, "aegis_certificate_ready_status", condition="True", **labels) == 1 and
               value(m, "aegis_certificate_ready_status", condition="False", **labels) == 0 and
               value(m, "aegis_certificate_ready_status", condition="Unknown", **labels) == 0,
               f"{name}: ready_status is 1 on condition=\"True\" only")
        result(("aegis_certificate_served_mismatch", (("name", name), ("namespace", "default")))
               in m, f"{name}: served_mismatch is exposed (0)")
    result(value(m, "aegis_issuer_ready_status", namespace="default", name_="local",
                  condition="True") == 1, "the Issuer's ready_status is 1 on condition=\"True\"")
    result(metric(m, "aegis_issuance_total", issuer_type="ca", result="success") == 2 and
           metric(m, "aegis_issuance_total", issuer_type="ca", result="failure") == 0,
           "two issuances by the CA issuer are counted, no failure",
           [k for k in m.items() if k[0][0] == "aegis_issuance_total"])
    result(metric(m, "aegis_reconcile_total", kind="Certificate", result="success") >= 2 and
           metric(m, "aegis_reconcile_total", kind="Issuer", result="success") >= 1 and
           metric(m, "aegis_reconcile_total", kind="Host", result="success") >= 1 and
           metric(m, "aegis_reconcile_duration_seconds_count") >= 1,
           "reconciles are counted by kind and timed",
           [k for k in m.items() if k[0][0].startswith("aegis_reconcile")])
    served = re.findall(r'configuration (\d+) served by the dataplane', log_text)
    failed = len(re.findall(r'level=warn module=push', log_text))
    ok_pushes = metric(m, "aegis_dataplane_push_total", result="success")
    bad_pushes = metric(m, "aegis_dataplane_push_total", result="failure")
    result(served and failed >= 1 and ok_pushes == len(served) and bad_pushes == failed and
           metric(m, "aegis_dataplane_push_duration_seconds_count") == len(served) + failed,
           "the push counters equal the pushes the log reports (failed, then served)",
           [served, failed, ok_pushes, bad_pushes])
    result(served and metric(m, "aegis_dataplane_config_generation") == int(served[-1]),
           "aegis_dataplane_config_generation is the generation last pushed",
           [served, metric(m, "aegis_dataplane_config_generation")])
    now = time.time()
    result(abs(metric(m, "process_start_time_seconds") - now) < 120 and
           metric(m, "process_open_fds") > 3 and metric(m, "process_resident_memory_bytes") > 0 and
           ("process_cpu_seconds_total", ()) in m and metric(m, "aegis_controller_healthy") == 1,
           "process metrics from /proc/self are exposed",
           [k for k in m.items() if k[0][0].startswith("process_")])


def main():
    started = time.time()
    for binary in (CONTROLLER, DATAPLANE):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is not built")
    check_rules()
    port, hp, hs = free_port(), free_port(), free_port()
    os.makedirs(path("res"))
    os.makedirs(path("dp"), mode=0o700)
    with open(path("res/all.yaml"), "w") as f:
        f.write(RESOURCES)
    sock = path("dp/admin.sock")
    log = open(path("controller.log"), "w+")
    p = track(subprocess.Popen(
        [CONTROLLER, "--watch", path("res"), "--state-dir", path("state"), "--no-dataplane",
         "--dataplane-socket", sock, "--http", f"127.0.0.1:{hp}", "--https", f"127.0.0.1:{hs}",
         "--workers", "1", "--http-listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=log, env=sanitizer_env()))
    if not wait_for(lambda: get(port, "/healthz")[0] != 0, timeout=15):
        log.seek(0)
        sys.exit("the controller's HTTP port did not come up:\n" + log.read())

    check_not_ready(port)
    dp, dp_log = start_dataplane(None, "dataplane", [],
                                 ["--admin-socket", sock, "--state-dir", path("dp")], workers=1)
    ok = wait_for(lambda: get(port, "/readyz")[0] == 200, timeout=15)
    result(ok, "/readyz flips to 200 once a push reaches the dataplane", [bodies[-1]])
    wait_for(lambda: status_file("Host", "app") is not None and
             status_file("Host", "app")["status"]["conditions"][0]["status"] == "True")

    check_objects(port)
    log.flush()
    check_metrics(port, open(path("controller.log")).read())

    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    log.seek(0)
    text = log.read()
    result(rc == 0, "the controller stops on SIGTERM with status 0", [rc, text[-2000:]])
    dp.send_signal(signal.SIGTERM)
    dp.wait(timeout=20)
    leaked = [b[:200] for b in bodies if "PRIVATE KEY" in b]
    if "PRIVATE KEY" in text:
        leaked.append("controller log")
    result(not leaked, "no private key in any answer or in the log", leaked)
    result(no_sanitizer_report(text), "no sanitizer report", [text[-3000:]])
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
