#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The Cloudflare issuer and DNS-01 provider end to end, with the real controller and its
# supervised dataplane, against tests/cloudflare/cfapi.py (a Cloudflare v4 API test server, run
# in this process) and, for DNS-01, Pebble and pebble-challtestsrv (the API server pushes its TXT
# records to challtestsrv, Pebble validates against them):
# - Origin CA with an API token (origin-rsa, default validity) and with an Origin CA key
#   (origin-ecc, 7 days): issued, the chain verifies against the server's CA, the key types and
#   the wildcard name are right, renewalTime follows the real notAfter.
# - A token without the SSL permission, an unknown token: Ready=False with Cloudflare's words
#   and the fix.
# - The API down: the failure is in the status, the certificate is issued once it is back.
# - A 429 with Retry-After: waited for, then issued.
# - revokeOnDelete: removing the Certificate revokes its certificate and deletes the record.
# - ACME DNS-01 through the Cloudflare provider (API token; and the global key with email): a
#   wildcard certificate from Pebble; the TXT
#   records are deleted afterwards; a validation that fails (a zone whose records never reach
#   the DNS) leaves no record either.
#
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE (default: build/...).

import calendar
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "dataplane"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cloudflare"))
sys.path.insert(0, HERE)
from dptest import (free_port, no_sanitizer_report, parse_metrics,  # noqa
                    path, result, scrape, start_controller, stop, summary)
from acmetest import (cert_yaml, failure, issuer_yaml, prepare_pebble,  # noqa
                      start_challtestsrv, start_pebble, status, stored_names, wait_ready, write)
from cfapi import CFAPI  # noqa: E402

TOKEN_SSL = "cf-token-ssl-0123456789abcdef"
TOKEN_DNS = "cf-token-dns-0123456789abcdef"
ORIGIN_KEY = "v1.0-0123456789abcdef-origin-ca-key"
UNKNOWN_TOKEN = "cf-token-nobody-knows-this-one"
GLOBAL_KEY = "0123456789abcdef0123456789abcdef01234"


def origin_issuer(name, url, auth, extra=""):
    return f"""apiVersion: aegis.dev/v1alpha1
kind: Issuer
metadata: {{name: {name}}}
spec:
  cloudflareOriginCA:
    {auth}
    apiURL: {url}
{extra}"""


def acme_cf_issuer(name, port, url, zone, dns,
                   auth="apiTokenSecretRef: {name: cf, key: dns-token}", wait="120s"):
    return issuer_yaml(name, port, f"""      - dns01:
          cloudflare:
            {auth}
            apiURL: {url}
          # the records are visible at challtestsrv's DNS (which Pebble asks), not the system's
          nameservers: ['127.0.0.1:{dns}']
          propagationTimeout: {wait}
        selector: {{dnsZones: [{zone}]}}
""")


def stored(name):
    try:
        with open(path(f"state/store/certificate/default/{name}/current.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def leaf_text(name):
    rec = stored(name) or {}
    pem = rec.get("certificate", "")
    if not pem:
        return "", ""
    with open(path(f"{name}.chain.pem"), "w") as f:
        f.write(pem)
    r = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", path(f"{name}.chain.pem")],
                       capture_output=True)
    return pem, r.stdout.decode()


def verifies(name):
    """openssl verify of the stored leaf against the API server's CA."""
    r = subprocess.run(["openssl", "verify", "-CAfile", path("cf-ca.pem"),
                        path(f"{name}.chain.pem")], capture_output=True)
    return r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def ts(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) if s else 0


def wait_failure(name, needle, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in failure(name):
            return True
        time.sleep(0.2)
    return False


def main():
    started = time.time()
    prepare_pebble()
    cts, dns, cmgmt = start_challtestsrv()

    api = CFAPI(cmgmt)
    api.tokens[TOKEN_SSL] = {"ssl"}
    api.tokens[TOKEN_DNS] = {"dns", "zone"}
    api.service_keys.add(ORIGIN_KEY)
    api.global_keys["ops@example.test"] = GLOBAL_KEY
    api.add_zone("shop.test")
    dns_zone = api.add_zone("dns.test")
    fail_zone = api.add_zone("fail.test", push=False)
    key_zone = api.add_zone("key.test")
    url = f"http://127.0.0.1:{api.start()}/client/v4"
    with open(path("cf-ca.pem"), "w") as f:
        f.write(api.ca_pem())
    # A second API, down until the test brings it up on its port.
    late = CFAPI()
    late.tokens[TOKEN_SSL] = {"ssl"}
    late.add_zone("late.test")
    late.port = free_port()
    late_url = f"http://127.0.0.1:{late.port}/client/v4"

    hp, hs, mport = free_port(), free_port(), free_port()
    peb, port, _, _ = start_pebble("pebble", hp, dns)

    # A trailing newline, as `echo token > file` leaves it: trimmed by the controller.
    write("state/secrets/default/cf/token", TOKEN_SSL + "\n")
    write("state/secrets/default/cf/origin-key", ORIGIN_KEY)
    write("state/secrets/default/cf/dns-token", TOKEN_DNS)
    write("state/secrets/default/cf/unknown", UNKNOWN_TOKEN)
    write("state/secrets/default/cf/global-key", GLOBAL_KEY)

    token = "apiTokenSecretRef: {name: cf, key: token}"
    write("res/issuers.yaml", "---\n".join([
        origin_issuer("cf-token", url, token),
        origin_issuer("cf-key", url, "originCAKeySecretRef: {name: cf, key: origin-key}",
                      "    requestType: origin-ecc\n    requestedValidity: 7\n"),
        origin_issuer("cf-noperm", url, "apiTokenSecretRef: {name: cf, key: dns-token}"),
        origin_issuer("cf-unknown", url, "apiTokenSecretRef: {name: cf, key: unknown}"),
        origin_issuer("cf-late", late_url, token),
        origin_issuer("cf-revoke", url, "originCAKeySecretRef: {name: cf, key: origin-key}",
                      "    revokeOnDelete: true\n"),
        acme_cf_issuer("acme-cf", port, url, "dns.test", dns),
        # Its records never reach challtestsrv: no waiting, the CA is asked at once and refuses.
        acme_cf_issuer("acme-cf-fail", port, url, "fail.test", dns, wait="0s"),
        acme_cf_issuer("acme-cf-key", port, url, "key.test", dns,
                       "apiKeySecretRef: {name: cf, key: global-key}\n"
                       "            email: ops@example.test"),
    ]))
    write("res/certs.yaml", "---\n".join([
        cert_yaml("origin-rsa", "cf-token", ["shop.test", "*.shop.test"]),
        cert_yaml("origin-ecc", "cf-key", ["api.shop.test"]),
        cert_yaml("noperm", "cf-noperm", ["shop.test"]),
        cert_yaml("unknown", "cf-unknown", ["shop.test"]),
        cert_yaml("late", "cf-late", ["www.late.test"]),
        cert_yaml("wild", "acme-cf", ["dns.test", "*.dns.test"]),
        cert_yaml("acme-fail", "acme-cf-fail", ["www.fail.test"]),
        cert_yaml("keyauth", "acme-cf-key", ["key.test"]),
    ]))
    write("res/revoke.yaml", cert_yaml("revoke-me", "cf-revoke", ["gone.shop.test"]))
    p, log = start_controller("controller", hp, hs, "--http-listen", f"127.0.0.1:{mport}")

    # ---- the API down at first: the failure shows, then the API comes up
    ok = wait_failure("late", "did not answer")
    result(ok, "API down: the status names the failure (did not answer)", [failure("late")])
    late.up()

    # ---- Origin CA, API token, origin-rsa, wildcard
    c = wait_ready("origin-rsa")
    pem, text = leaf_text("origin-rsa")
    good, why = verifies("origin-rsa")
    result(c is not None and c["status"] == "True" and good,
           "API token: issued, the chain verifies against the API's CA", [c, why])
    result("Public-Key: (2048 bit)" in text and "rsaEncryption" in text and
           "DNS:*.shop.test" in text and "DNS:shop.test" in text,
           "origin-rsa (the default): RSA 2048, names shop.test and *.shop.test", [text[:1500]])
    st = status("Certificate", "origin-rsa") or {}
    life = ts(st.get("notAfter")) - ts(st.get("notBefore"))
    renew = ts(st.get("renewalTime")) - time.time()
    result(abs(life - 5475 * 86400) < 86400 and renew > 9 * 365 * 86400,
           "5475 days by default; renewalTime from the real notAfter (about 10 years ahead)", [st])
    tok = [r for r in api.requests if r[1] == "/client/v4/certificates" and r[2] == "token"]
    result(len(tok) >= 1, "it authenticated with the Bearer token", [api.requests[-10:]])

    # ---- Origin CA, Origin CA key, origin-ecc, 7 days
    c = wait_ready("origin-ecc")
    pem, text = leaf_text("origin-ecc")
    good, why = verifies("origin-ecc")
    st = status("Certificate", "origin-ecc") or {}
    life = ts(st.get("notAfter")) - ts(st.get("notBefore"))
    result(c is not None and c["status"] == "True" and good and "id-ecPublicKey" in text and
           "prime256v1" in text and abs(life - 7 * 86400) < 3600,
           "Origin CA key, origin-ecc, 7 days: an ECDSA P-256 certificate that verifies",
           [c, why, st, text[:1200]])
    sk = [r for r in api.requests if r[2] == "service-key"]
    result(len(sk) >= 1, "it authenticated with X-Auth-User-Service-Key", [api.requests[-10:]])

    # ---- wrong credentials
    c = wait_ready("noperm", "False")
    msg = failure("noperm")
    result(c is not None and c["status"] == "False" and "Authentication error (code 10000)" in msg
           and "SSL and Certificates - Edit" in msg,
           "a token without the permission: Ready=False, Cloudflare's words and the permission",
           [c, msg])
    c = wait_ready("unknown", "False")
    msg = failure("unknown")
    result(c is not None and c["status"] == "False" and "Invalid access token (code 9109)" in msg
           and "check the secret" in msg,
           "an unknown token: Ready=False, 'Invalid access token' and what to check", [c, msg])

    # ---- ACME DNS-01 through the Cloudflare provider: a wildcard from Pebble
    c = wait_ready("wild", timeout=60)
    names = stored_names("wild")
    result(c is not None and c["status"] == "True" and names == ["dns.test", "*.dns.test"],
           "ACME DNS-01 via Cloudflare: a wildcard certificate from Pebble",
           [c, failure("wild"), names])
    def dns_calls(zone, method):
        return [r for r in api.requests if r[0] == method and f"/zones/{zone}/dns_records" in r[1]]

    posts, dels = dns_calls(dns_zone, "POST"), dns_calls(dns_zone, "DELETE")
    left = api.records_of("dns.test")
    result(len(posts) == 2 and len(dels) == 2 and left == [],
           f"two TXT records created and deleted after success ({len(posts)}, {len(dels)})",
           [left, api.requests[-20:]])

    c = wait_ready("acme-fail", "False", timeout=60)
    left = api.records_of("fail.test")
    posts, dels = dns_calls(fail_zone, "POST"), dns_calls(fail_zone, "DELETE")
    result(c is not None and c["status"] == "False" and left == [] and len(posts) == 1 and
           len(dels) == 1, "a failed DNS-01 validation: Ready=False and its TXT record deleted",
           [c, failure("acme-fail"), left, posts, dels])

    c = wait_ready("keyauth", timeout=60)
    gk = [r for r in api.requests if r[2] == "global-key" and f"/zones/{key_zone}/" in r[1]]
    result(c is not None and c["status"] == "True" and len(gk) >= 2 and
           api.records_of("key.test") == [],
           "DNS-01 with the global API key and email (X-Auth-Email/X-Auth-Key), cleaned up",
           [c, failure("keyauth"), gk])

    # ---- 429 with Retry-After
    api.throttle = 1
    write("res/throttled.yaml", cert_yaml("throttled", "cf-token", ["t.shop.test"]))
    c = wait_ready("throttled", timeout=30)
    throttled = [r for r in api.requests if r[1] == "/client/v4/certificates"]
    st = status("Certificate", "throttled") or {}
    result(c is not None and c["status"] == "True" and not st.get("failedIssuanceAttempts"),
           "a 429 is waited out (Retry-After) without counting a failed attempt",
           [c, st, throttled[-3:]])

    # ---- revokeOnDelete
    c = wait_ready("revoke-me")
    serial = int(((stored("revoke-me") or {}).get("meta") or {}).get("serial", "0"), 16)
    os.unlink(path("res/revoke.yaml"))
    cert = api.certs.get(str(serial)) or {}
    deadline = time.time() + 20
    while time.time() < deadline and not cert.get("revoked_at"):
        time.sleep(0.2)
    dels = [r for r in api.requests if r[0] == "DELETE" and r[1].startswith("/client/v4/cert")]
    result(c is not None and c["status"] == "True" and cert.get("revoked_at") and
           stored("revoke-me") is None and len(dels) == 1,
           "revokeOnDelete: deleting the Certificate revokes it (DELETE /certificates/{serial}) "
           "and removes it from the store", [c, cert.get("revoked_at"), dels, serial])

    # ---- the API back
    c = wait_ready("late", timeout=90)
    result(c is not None and c["status"] == "True",
           "API down: retried with backoff and issued once it answered", [c, failure("late")])

    _, _, body = scrape(mport)
    samples = parse_metrics(body)
    n429 = sum(v for (n, labels), v in samples.items()
               if n == "aegis_cloudflare_api_request_count" and ("status", "429") in labels)
    n0 = sum(v for (n, labels), v in samples.items()
             if n == "aegis_cloudflare_api_request_count" and ("status", "0") in labels)
    result(n429 >= 1 and n0 >= 1,
           f"aegis_cloudflare_api_request_count counts the 429 ({n429:g}) and the unanswered "
           f"({n0:g})", [body[-1500:]])

    rc, text = stop(p, log)
    result(rc == 0 and no_sanitizer_report(text), "the controller stops cleanly, no sanitizer "
           "report", [text[-3000:]])
    secrets_seen = [s for s in (TOKEN_SSL, TOKEN_DNS, ORIGIN_KEY, UNKNOWN_TOKEN, GLOBAL_KEY)
                    if s in text]
    result(not secrets_seen and "PRIVATE KEY" not in text,
           "no token, Origin CA key or private key in the log", [secrets_seen])
    api.down()
    late.down()
    for proc in (peb, cts):
        proc.terminate()
        proc.wait()
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
