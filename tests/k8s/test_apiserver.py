#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The Kubernetes API test server (tests/k8s/apiserver.py) against the real kubectl and direct
# HTTP: `kubectl apply -f crds/`, the examples applied, `kubectl get certificates` with the
# CRD's printer columns, `kubectl describe`, re-apply (merge patch; generation), `kubectl delete`;
# then watch events in order, bookmarks, 410 Gone for an expired resourceVersion and the relist
# after it, the status subresource, generation, 409 on a stale resourceVersion, pagination,
# selectors, the Table of one object, the built-in kinds (Secrets, Leases, EndpointSlices,
# Events in both groups, Namespaces) and 401 without the token.
#
# Environment: KUBECTL (default /usr/bin/kubectl, Debian's kubernetes-client).

import base64
import glob
import http.client
import json
import os
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "dataplane"))
sys.path.insert(0, HERE)
from apiserver import APIServer, write_kubeconfig, write_serviceaccount  # noqa: E402
from dptest import SRC, path, result, summary  # noqa: E402

KUBECTL = os.environ.get("KUBECTL", "/usr/bin/kubectl")
TOKEN = "aegis-k8s-test-token"
CERTS = "/apis/aegis.dev/v1alpha1/namespaces/default/certificates"


class Client:
    """Direct HTTP(S) requests to the server, JSON in and out."""

    def __init__(self, srv, token=TOKEN):
        self.srv, self.token = srv, token
        self.ctx = None
        if srv.ca_pem:
            self.ctx = ssl.create_default_context(cadata=srv.ca_pem.decode())

    def conn(self, timeout=10):
        if self.ctx:
            return http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=self.ctx,
                                               timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=timeout)

    def req(self, method, url, body=None, ctype="application/json", headers=None):
        c = self.conn()
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = ctype
        c.request(method, url, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        self.last_headers = r.headers
        return r.status, (json.loads(raw) if raw else None), r.getheader("Content-Type")

    def watch(self, url, timeout=5):
        """Opens a watch; returns (status, next_event) where next_event() is the next decoded
        line or None at the end of the stream or on timeout."""
        c = self.conn(timeout=timeout)
        c.request("GET", url, headers={"Authorization": f"Bearer {self.token}"})
        r = c.getresponse()

        def next_event():
            try:
                line = r.readline()
            except (TimeoutError, OSError):
                return None
            return json.loads(line) if line.strip() else None
        next_event.close = c.close
        return r.status, r.getheader("Transfer-Encoding"), next_event


def kubectl(*args, check=True):
    env = dict(os.environ, HOME=path("home"), KUBECONFIG=path("kubeconfig"))
    p = subprocess.run([KUBECTL, "--cache-dir", path("kcache"), *args], env=env,
                       capture_output=True, text=True, timeout=30, check=False)
    if check and p.returncode != 0:
        print(f"# kubectl {' '.join(args)} failed ({p.returncode}):\n# {p.stderr.strip()}")
    return p


def cert_obj(name, dns, issuer="local"):
    return {"apiVersion": "aegis.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"issuerRef": {"name": issuer}, "dnsNames": [dns]}}


def test_auth():
    srv = APIServer(token=TOKEN).start()  # plain HTTP: what a libcurl client may use
    try:
        st, body, _ = Client(srv, token=None).req("GET", "/api/v1/namespaces")
        result(st == 401 and body.get("kind") == "Status" and body.get("code") == 401 and
               body.get("reason") == "Unauthorized" and body.get("status") == "Failure",
               "401 with a Status body without the bearer token", [body])
        st, _, _ = Client(srv, token="wrong").req("GET", "/version")
        result(st == 401, "401 with a wrong token")
        st, body, _ = Client(srv).req("GET", "/version")
        result(st == 200 and body.get("major") == "1", "GET /version with the token")
        # Token rotation: the server takes the new token, the old one is refused.
        sa = write_serviceaccount(path("sa"), "rotated", namespace="aegis-system")
        srv.token = open(os.path.join(sa, "token"), encoding="utf-8").read()
        st_old, _, _ = Client(srv).req("GET", "/version")
        st_new, _, _ = Client(srv, token="rotated").req("GET", "/version")
        ns = open(os.path.join(sa, "namespace"), encoding="utf-8").read()
        result(st_old == 401 and st_new == 200 and ns == "aegis-system",
               "service-account files; a rotated token replaces the old one")
    finally:
        srv.stop()


def test_kubectl(srv, cl):
    write_kubeconfig(path("kubeconfig"), srv.url, TOKEN, srv.ca_pem)
    os.makedirs(path("home"), exist_ok=True)
    p = kubectl("apply", "-f", os.path.join(SRC, "crds"))
    result(p.returncode == 0 and p.stdout.count("created") == 3,
           "kubectl apply -f crds/ creates the three CRDs", [p.stdout, p.stderr])
    p = kubectl("get", "crds", "-o", "name")
    result(p.returncode == 0 and sorted(p.stdout.split()) == [
        f"customresourcedefinition.apiextensions.k8s.io/{k}.aegis.dev"
        for k in ("certificates", "hosts", "issuers")], "kubectl get crds", [p.stdout])
    st, crd, _ = cl.req("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                        "certificates.aegis.dev")
    status = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
    result(st == 200 and conds.get("Established") == "True", "the CRD is Established", [conds])
    _, apis, _ = cl.req("GET", "/apis")
    groups = {g["name"] for g in apis["groups"]}
    result({"aegis.dev", "apiextensions.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
            "events.k8s.io"} <= groups, "/apis lists the groups", [sorted(groups)])
    _, rl, _ = cl.req("GET", "/apis/aegis.dev/v1alpha1")
    names = {r["name"] for r in rl["resources"]}
    result({"certificates", "certificates/status", "hosts", "issuers"} <= names,
           "/apis/aegis.dev/v1alpha1 lists the kinds and their status subresources",
           [sorted(names)])

    examples = sorted(glob.glob(os.path.join(SRC, "examples", "*.yaml")))
    p = kubectl("apply", *sum((["-f", e] for e in examples), []))
    created = p.stdout.count(" created")
    result(p.returncode == 0 and created >= 10,
           f"kubectl apply the examples ({created} objects created)", [p.stdout, p.stderr])

    p = kubectl("get", "certificates")
    head = p.stdout.splitlines()[0].split() if p.stdout else []
    result(p.returncode == 0 and head == ["NAME", "READY", "ISSUER", "EXPIRES", "AGE"] and
           "app-local" in p.stdout, "kubectl get certificates shows the printer columns",
           [p.stdout, p.stderr])
    # A status through the subresource, as the controller will write it: READY shows it.
    st, _, _ = cl.req("PATCH", CERTS + "/app-local/status",
                      {"status": {"notAfter": "2020-01-01T00:00:00Z", "conditions": [
                          {"type": "Ready", "status": "True", "reason": "Issued",
                           "message": "issued by local"}]}},
                      ctype="application/merge-patch+json")
    p = kubectl("get", "certificates", "app-local", "-o", "wide")
    lines = p.stdout.splitlines()
    row = lines[1].split() if len(lines) > 1 else []
    result(st == 200 and lines and lines[0].split() == ["NAME", "READY", "ISSUER", "EXPIRES",
                                                         "RENEWAL", "STATUS", "AGE"]
           and row[:3] == ["app-local", "True", "local"] and "issued by local" in lines[1],
           "kubectl get -o wide: Ready from the status condition, priority-1 columns",
           [p.stdout, p.stderr])
    p = kubectl("get", "acert", "app-local", "-o", "json")
    obj = json.loads(p.stdout) if p.returncode == 0 else {}
    result(obj.get("metadata", {}).get("generation") == 1 and
           obj["metadata"].get("uid") and obj["metadata"].get("creationTimestamp"),
           "kubectl get -o json by short name: uid, creationTimestamp, generation 1")
    p = kubectl("describe", "certificate", "app-local")
    result(p.returncode == 0 and "Name:         app-local" in p.stdout and
           "Issuer Ref:" in p.stdout and "issued by local" in p.stdout,
           "kubectl describe certificate", [p.stdout, p.stderr])

    # Re-apply with one spec change: a merge patch; generation 2, status kept.
    local = open(os.path.join(SRC, "examples", "local-ca.yaml"), encoding="utf-8").read()
    with open(path("local-changed.yaml"), "w", encoding="utf-8") as f:
        f.write(local.replace("renewBefore: 720h", "renewBefore: 700h"))
    p = kubectl("apply", "-f", path("local-changed.yaml"))
    _, obj, _ = cl.req("GET", CERTS + "/app-local")
    patches = [r for r in srv.requests if r[0] == "PATCH" and "/app-local" in r[1]
               and "/status" not in r[1]]
    result(p.returncode == 0 and "certificate.aegis.dev/app-local configured" in p.stdout and
           "issuer.aegis.dev/local unchanged" in p.stdout and patches and
           obj["spec"]["renewBefore"] == "700h" and obj["metadata"]["generation"] == 2 and
           obj["status"]["conditions"][0]["status"] == "True",
           "kubectl apply again: patched, generation 2, status kept", [p.stdout, p.stderr])
    p = kubectl("apply", "-f", path("local-changed.yaml"))
    _, obj2, _ = cl.req("GET", CERTS + "/app-local")
    result("app-local unchanged" in p.stdout and
           obj2["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"],
           "kubectl apply unchanged writes nothing", [p.stdout])

    p = kubectl("delete", "certificate", "app-local")
    p2 = kubectl("get", "certificate", "app-local", check=False)
    result(p.returncode == 0 and "deleted" in p.stdout and p2.returncode != 0 and
           "NotFound" in p2.stderr, "kubectl delete; then get says NotFound",
           [p.stdout, p.stderr, p2.stderr])
    p = kubectl("get", "secrets,leases,endpointslices,namespaces")
    result(p.returncode == 0 and "namespace/default" in p.stdout,
           "kubectl get of the built-in kinds", [p.stdout, p.stderr])


def test_watch(srv, cl):
    st, lst, _ = cl.req("GET", CERTS)
    rv = lst["metadata"]["resourceVersion"]
    st, te, nxt = cl.watch(f"{CERTS}?watch=1&resourceVersion={rv}")
    result(st == 200 and te == "chunked", "a watch answers 200, chunked")
    cl.req("POST", CERTS, cert_obj("w1", "w1.example.test"))
    _, o, _ = cl.req("GET", CERTS + "/w1")
    o["spec"]["dnsNames"].append("w2.example.test")
    cl.req("PUT", CERTS + "/w1", o)
    cl.req("PATCH", CERTS + "/w1/status", {"status": {"notAfter": "2030-01-01T00:00:00Z"}},
           ctype="application/merge-patch+json")
    cl.req("DELETE", CERTS + "/w1")
    events = [nxt() for _ in range(4)]
    nxt.close()
    types = [e and e["type"] for e in events]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e]
    result(types == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"] and rvs == sorted(rvs) and
           len(set(rvs)) == 4 and int(rv) < rvs[0] and
           events[2]["object"]["status"]["notAfter"] == "2030-01-01T00:00:00Z",
           "watch: ADDED, MODIFIED (spec), MODIFIED (status), DELETED in order, rising "
           "resourceVersions", [types, rvs])

    # A label-selector watch: an object whose labels leave the selector is DELETED for it, one
    # whose labels enter it ADDED.
    _, lst, _ = cl.req("GET", CERTS)
    st, _, nxt = cl.watch(f"{CERTS}?watch=1&labelSelector=tier%3Dedge&resourceVersion="
                          + lst["metadata"]["resourceVersion"])
    cl.req("POST", CERTS, cert_obj("sel", "sel.example.test"))
    for tier in ("edge", "core", "edge"):
        cl.req("PATCH", CERTS + "/sel", {"metadata": {"labels": {"tier": tier}}},
               ctype="application/merge-patch+json")
    cl.req("PATCH", CERTS + "/sel", {"spec": {"dnsNames": ["sel2.example.test"]}},
           ctype="application/merge-patch+json")
    cl.req("DELETE", CERTS + "/sel")
    types = [(e or {}).get("type") for e in (nxt(), nxt(), nxt(), nxt(), nxt())]
    nxt.close()
    result(types == ["ADDED", "DELETED", "ADDED", "MODIFIED", "DELETED"],
           "labelSelector watch: entering is ADDED, leaving DELETED", [types])

    # A dropped watch: the stream ends; watching again from the last resourceVersion seen
    # misses nothing written in between.
    _, lst, _ = cl.req("GET", CERTS)
    st, _, nxt = cl.watch(f"{CERTS}?watch=1&resourceVersion=" + lst["metadata"]["resourceVersion"])
    cl.req("POST", CERTS, cert_obj("d1", "d1.example.test"))
    e1 = nxt()
    srv.drop_watches()
    end = nxt()
    nxt.close()
    cl.req("POST", CERTS, cert_obj("d2", "d2.example.test"))
    st, _, nxt = cl.watch(f"{CERTS}?watch=1&resourceVersion="
                          + e1["object"]["metadata"]["resourceVersion"])
    e2 = nxt()
    nxt.close()
    result(e1["object"]["metadata"]["name"] == "d1" and end is None and
           e2 and e2["type"] == "ADDED" and e2["object"]["metadata"]["name"] == "d2",
           "drop_watches ends the stream; a new watch from the last resourceVersion resumes",
           [e1, end, e2])

    # Injected faults, for the client's retries: 500 once, then the real answer; 429 has
    # Retry-After.
    srv.inject("GET", r"/certificates/d1$", 500)
    srv.inject("PUT", r"/certificates/d1/status", 429)
    st1, b1, _ = cl.req("GET", CERTS + "/d1")
    st2, d1, _ = cl.req("GET", CERTS + "/d1")
    c = cl.conn()
    c.request("PUT", CERTS + "/d1/status", body=json.dumps(d1),
              headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    result(st1 == 500 and b1["reason"] == "InternalError" and st2 == 200 and r.status == 429 and
           r.getheader("Retry-After") == "1", "inject: 500 once, then 200; 429 with Retry-After",
           [st1, st2, r.status])

    # Bookmarks: nothing changes, yet the watch hears the current resourceVersion.
    _, lst, _ = cl.req("GET", CERTS)
    rv = lst["metadata"]["resourceVersion"]
    cl.req("POST", "/api/v1/namespaces/default/secrets",
           {"metadata": {"name": "unrelated"}, "data": {}})
    st, _, nxt = cl.watch(f"{CERTS}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}")
    ev = nxt()
    nxt.close()
    _, cur, _ = cl.req("GET", "/api/v1/namespaces/default/secrets")
    result(ev and ev["type"] == "BOOKMARK" and ev["object"]["kind"] == "Certificate" and
           int(ev["object"]["metadata"]["resourceVersion"]) >= int(cur["metadata"]
                                                                  ["resourceVersion"]) > int(rv),
           "allowWatchBookmarks: a BOOKMARK with the current resourceVersion", [ev])

    # No resourceVersion: the current objects as ADDED first.
    st, _, nxt = cl.watch(f"{CERTS}?watch=1&timeoutSeconds=1")
    first = []
    while (e := nxt()) is not None:
        first.append(e)
    nxt.close()
    result(first and all(e["type"] == "ADDED" for e in first) and
           len(first) == len(lst["items"]), "watch without resourceVersion: current state as "
           "ADDED, ends at timeoutSeconds", [len(first), len(lst["items"])])


def test_gone():
    srv = APIServer(token=TOKEN, history=5, bookmark_interval=0.3, tls=False).start()
    cl = Client(srv)
    try:
        _, lst, _ = cl.req("GET", "/api/v1/namespaces/default/secrets")
        old = lst["metadata"]["resourceVersion"]
        for i in range(8):
            cl.req("POST", "/api/v1/namespaces/default/secrets",
                   {"metadata": {"name": f"s{i}"}, "type": "Opaque"})
        st, _, nxt = cl.watch(f"/api/v1/namespaces/default/secrets?watch=1&resourceVersion={old}")
        ev, end = nxt(), nxt()
        nxt.close()
        result(st == 200 and ev and ev["type"] == "ERROR" and ev["object"]["code"] == 410 and
               ev["object"]["reason"] == "Expired" and end is None,
               "watch from a resourceVersion older than the history: ERROR 410 Expired, "
               "stream ends", [ev])
        # The client relists and watches from the list's resourceVersion: no event lost.
        _, lst, _ = cl.req("GET", "/api/v1/namespaces/default/secrets")
        st, _, nxt = cl.watch("/api/v1/namespaces/default/secrets?watch=1&resourceVersion="
                              + lst["metadata"]["resourceVersion"])
        cl.req("DELETE", "/api/v1/namespaces/default/secrets/s3")
        ev = nxt()
        nxt.close()
        result(len(lst["items"]) == 8 and ev and ev["type"] == "DELETED" and
               ev["object"]["metadata"]["name"] == "s3", "relist then watch: the next event",
               [ev])
        # A continue token from before a compaction is 410 too.
        _, page, _ = cl.req("GET", "/api/v1/namespaces/default/secrets?limit=2")
        srv.compact()
        st, body, _ = cl.req("GET", "/api/v1/namespaces/default/secrets?limit=2&continue="
                             + page["metadata"]["continue"])
        result(st == 410 and body["reason"] == "Expired", "an expired continue token: 410",
               [st, body])
    finally:
        srv.stop()


def test_semantics(srv, cl):
    st, c, _ = cl.req("POST", CERTS, dict(cert_obj("s1", "s1.example.test"),
                                          status={"notAfter": "2099-01-01T00:00:00Z"}))
    result(st == 201 and "status" not in c and c["metadata"]["generation"] == 1,
           "create ignores status (status subresource)", [c])
    c["status"] = {"notAfter": "2031-01-01T00:00:00Z"}
    c["metadata"].setdefault("labels", {})["x"] = "y"
    st, u, _ = cl.req("PUT", CERTS + "/s1", c)
    result(st == 200 and "status" not in u and u["metadata"]["generation"] == 1 and
           u["metadata"]["labels"] == {"x": "y"},
           "PUT on the main resource ignores status; a label change keeps the generation", [u])
    u["spec"]["dnsNames"] = ["other.example.test"]
    u["status"] = {"notAfter": "2032-01-01T00:00:00Z"}
    st, s, _ = cl.req("PUT", CERTS + "/s1/status", u)
    result(st == 200 and s["status"] == {"notAfter": "2032-01-01T00:00:00Z"} and
           s["spec"]["dnsNames"] == ["s1.example.test"] and s["metadata"]["generation"] == 1 and
           int(s["metadata"]["resourceVersion"]) > int(u["metadata"]["resourceVersion"]),
           "PUT .../status changes only status (spec ignored, generation kept)", [s])
    st, body, _ = cl.req("PUT", CERTS + "/s1", u)  # u carries the older resourceVersion
    result(st == 409 and body["reason"] == "Conflict" and body["kind"] == "Status",
           "409 Conflict on a stale resourceVersion", [st, body])
    s["spec"]["dnsNames"] = ["s2.example.test"]
    st, g, _ = cl.req("PUT", CERTS + "/s1", s)
    result(st == 200 and g["metadata"]["generation"] == 2 and
           g["status"]["notAfter"] == "2032-01-01T00:00:00Z",
           "a spec change bumps generation to 2", [g])
    st, _, _ = cl.req("PUT", CERTS + "/s1", {"apiVersion": "aegis.dev/v1alpha1",
                                             "kind": "Certificate",
                                             "metadata": {"name": "s1"}, "spec": {}})
    result(st == 422, "PUT without resourceVersion on a custom resource: 422")
    st, body, _ = cl.req("POST", CERTS, cert_obj("s1", "x.example.test"))
    result(st == 409 and body["reason"] == "AlreadyExists", "409 AlreadyExists")
    st, body, _ = cl.req("GET", CERTS + "/nope")
    result(st == 404 and body["reason"] == "NotFound" and body["details"]["name"] == "nope",
           "404 NotFound Status with details")
    nons = cert_obj("n", "n.example.test")
    del nons["metadata"]["namespace"]
    st, body, _ = cl.req("POST", "/apis/aegis.dev/v1alpha1/namespaces/nons/certificates", nons)
    result(st == 404 and "namespaces" in body["message"], "create in a missing namespace: 404")
    st, _, _ = cl.req("PATCH", CERTS + "/s1", {"spec": {"x": 1}},
                      ctype="application/strategic-merge-patch+json")
    result(st == 415, "strategic merge patch on a custom resource: 415 (as the real server)")

    # The CRD's schema: unknown fields pruned with a Warning (400 with fieldValidation=Strict),
    # defaults filled in, invalid values 422 with causes, on the status subresource too.
    body = cert_obj("v1", "v1.example.test")
    body["spec"]["bogus"] = 1
    st, v, _ = cl.req("POST", CERTS, body)
    warn = cl.last_headers.get_all("Warning") or []
    result(st == 201 and "bogus" not in v["spec"] and v["spec"]["duration"] == "2160h" and
           v["spec"]["issuerRef"]["kind"] == "Issuer" and
           any('unknown field \\"spec.bogus\\"' in w for w in warn),
           "schema: unknown field pruned with a Warning header, defaults filled in", [v, warn])
    body["metadata"]["name"] = "v2"
    st, err, _ = cl.req("POST", CERTS + "?fieldValidation=Strict", body)
    result(st == 400 and "spec.bogus" in err["message"], "fieldValidation=Strict: 400", [err])
    bad = cert_obj("v3", "v3.example.test")
    bad["spec"]["privateKey"] = {"algorithm": "DSA"}
    st, err, _ = cl.req("POST", CERTS, bad)
    fields = [c["field"] for c in (err.get("details") or {}).get("causes", [])]
    result(st == 422 and err["reason"] == "Invalid" and fields == ["spec.privateKey.algorithm"],
           "schema: an enum violation is 422 Invalid naming the field", [err])
    v["status"] = {"notAfter": "tomorrow"}
    st, err, _ = cl.req("PUT", CERTS + "/v1/status", v)
    result(st == 422 and "status.notAfter" in err["message"],
           "schema: the status subresource is validated too", [err])

    # Table of one object, for kubectl get NAME.
    st, t, _ = cl.req("GET", CERTS + "/s1", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    cols = [c["name"] for c in t.get("columnDefinitions", [])]
    result(st == 200 and t["kind"] == "Table" and cols[:4] == ["Name", "Ready", "Issuer",
                                                                "Expires"]
           and t["rows"][0]["cells"][0] == "s1" and t["rows"][0]["cells"][2] == "local"
           and t["rows"][0]["object"]["kind"] == "PartialObjectMetadata",
           "Table: additionalPrinterColumns, PartialObjectMetadata rows", [t])

    # Pagination over the Secrets, and selectors.
    for i in range(7):
        cl.req("POST", "/api/v1/namespaces/default/secrets",
               {"metadata": {"name": f"page-{i}", "labels": {"set": "page",
                                                            "odd": str(i % 2)}},
                "stringData": {"k": f"v{i}"}})
    seen, pages, cont, remaining = [], 0, "", []
    while True:
        url = "/api/v1/namespaces/default/secrets?labelSelector=set%3Dpage&limit=3"
        _, page, _ = cl.req("GET", url + (f"&continue={cont}" if cont else ""))
        pages += 1
        seen += [i["metadata"]["name"] for i in page["items"]]
        remaining.append(page["metadata"].get("remainingItemCount"))
        cont = page["metadata"].get("continue")
        if not cont or pages > 5:
            break
    result(pages == 3 and sorted(seen) == [f"page-{i}" for i in range(7)] and
           remaining == [4, 1, None], "limit/continue pagination: 3+3+1, remainingItemCount",
           [seen, remaining])
    _, odd, _ = cl.req("GET", "/api/v1/namespaces/default/secrets?labelSelector="
                       "set%3Dpage,odd%20in%20(1)")
    _, one, _ = cl.req("GET", "/api/v1/secrets?fieldSelector=metadata.name%3Dpage-4")
    result(len(odd["items"]) == 3 and [i["metadata"]["name"] for i in one["items"]] ==
           ["page-4"], "labelSelector (=, in) and fieldSelector metadata.name, all namespaces")
    data = one["items"][0].get("data", {})
    result(base64.b64decode(data.get("k", "")) == b"v4" and "stringData" not in one["items"][0],
           "Secret stringData is stored as base64 data")

    # Leases (leader election), EndpointSlices, Events in both groups.
    lease = {"metadata": {"name": "aegis-controller"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    st, le, _ = cl.req("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", lease)
    le["spec"]["holderIdentity"] = "b"
    st2, _, _ = cl.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/"
                       "aegis-controller", le)
    st3, _, _ = cl.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/"
                       "aegis-controller", le)
    result(st == 201 and st2 == 200 and st3 == 409, "Lease: create, update, then 409 for the "
           "loser of a race (same resourceVersion)")
    st, _, _ = cl.req("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                      {"metadata": {"name": "dp-abc", "labels": {
                          "kubernetes.io/service-name": "aegis-dataplane-admin"}},
                       "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
                       "ports": [{"name": "admin", "port": 9443}]})
    _, eps, _ = cl.req("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
                       "?labelSelector=kubernetes.io%2Fservice-name%3Daegis-dataplane-admin")
    result(st == 201 and len(eps["items"]) == 1, "EndpointSlice by service-name label")
    _, crt, _ = cl.req("GET", CERTS + "/s1")
    ev = {"metadata": {"generateName": "s1."}, "eventTime": "2026-01-01T00:00:00.000000Z",
          "reportingController": "aegis.dev/controller", "reportingInstance": "c-1",
          "action": "Issue", "reason": "Issued", "type": "Normal", "note": "certificate issued",
          "regarding": {"apiVersion": "aegis.dev/v1alpha1", "kind": "Certificate",
                        "name": "s1", "namespace": "default", "uid": crt["metadata"]["uid"]}}
    st, e, _ = cl.req("POST", "/apis/events.k8s.io/v1/namespaces/default/events", ev)
    _, core, _ = cl.req("GET", "/api/v1/namespaces/default/events?fieldSelector="
                        "involvedObject.name%3Ds1")
    result(st == 201 and e["metadata"]["name"].startswith("s1.") and
           [i.get("message") for i in core["items"]] == ["certificate issued"],
           "events.k8s.io/v1 Event, seen as a core v1 Event (involvedObject, message)", [core])
    p = kubectl("describe", "certificate", "s1")
    result("certificate issued" in p.stdout and "Issued" in p.stdout,
           "kubectl describe shows the Event", [p.stdout, p.stderr])

    # Finalizers: DELETE marks the object; removing the last finalizer deletes it.
    cl.req("POST", "/api/v1/namespaces/default/secrets",
           {"metadata": {"name": "fin", "finalizers": ["aegis.dev/cleanup"]}})
    st, d, _ = cl.req("DELETE", "/api/v1/namespaces/default/secrets/fin")
    st2, _, _ = cl.req("GET", "/api/v1/namespaces/default/secrets/fin")
    cl.req("PATCH", "/api/v1/namespaces/default/secrets/fin", {"metadata": {"finalizers": None}},
           ctype="application/merge-patch+json")
    st3, _, _ = cl.req("GET", "/api/v1/namespaces/default/secrets/fin")
    result(st == 200 and d["metadata"].get("deletionTimestamp") and st2 == 200 and st3 == 404,
           "finalizers: DELETE sets deletionTimestamp; removing the finalizer deletes",
           [st, st2, st3])

    # Owner references: deleting the owner deletes the dependent (the garbage collector).
    st, _, _ = cl.req("POST", "/api/v1/namespaces/default/secrets", {
        "metadata": {"name": "s1-key", "ownerReferences": [{
            "apiVersion": "aegis.dev/v1alpha1", "kind": "Certificate", "name": "s1",
            "uid": crt["metadata"]["uid"], "controller": True}]}, "type": "aegis.dev/encrypted"})
    cl.req("DELETE", CERTS + "/s1")
    st2, _, _ = cl.req("GET", "/api/v1/namespaces/default/secrets/s1-key")
    result(st == 201 and st2 == 404, "deleting the owner deletes the owned Secret")


def guarded(test, *args):
    """Runs one group of checks; an exception (an answer of the wrong shape) is a failure."""
    try:
        test(*args)
    except Exception as e:  # noqa: BLE001 - any error is a failed check, reported as such
        result(False, f"{test.__name__} raised {type(e).__name__}: {e}")


def main():
    t0 = time.monotonic()
    started = time.time()
    if not os.access(KUBECTL, os.X_OK):
        result(False, f"{KUBECTL} is missing: hack/deps.sh installs it (kubernetes-client)")
        return summary(started)
    test_auth()
    srv = APIServer(token=TOKEN, history=1000, bookmark_interval=0.5, tls=True).start()
    cl = Client(srv)
    try:
        for test in (test_kubectl, test_watch, test_semantics):
            guarded(test, srv, cl)
    finally:
        srv.stop()
    guarded(test_gone)
    result(time.monotonic() - t0 < 30, f"took {time.monotonic() - t0:.1f} s (< 30 s)")
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
