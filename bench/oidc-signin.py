#!/usr/bin/env python3
"""The web page's sign-in through an identity provider (issue 14 §4): how long it takes.

    python3 bench/oidc-signin.py [GATE] [-n 50]

Starts the real OpenID provider the tests use (`oidc-provider` on Node.js,
tests/integration/oidc_provider; `bash .ci/deps/oidc-provider.sh` installs it) and a real
`gate serve` whose policy signs people in through it, then signs in N times with plain HTTP and a
cookie jar instead of a browser: `GET /auth/login` → the provider's login and consent forms →
`GET /auth/callback`. Printed, each as median / p90 / max over the N runs:

- start: `/auth/login` (pending sign-in written to the store, redirect to the provider);
- callback: `/auth/callback` — take the pending sign-in, exchange the code at the provider's
  token endpoint, check the ID token (RS256 signature against the cached JWKS, claims, nonce),
  map the principal, write the session;
- whole: from `/auth/login` to the signed-in page, provider pages included.

Everything is on loopback; the provider's own time is part of "callback" (its token endpoint)
and of "whole". GATE defaults to target/release/gate, else target/debug/gate.
"""

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROVIDER = os.path.join(ROOT, "tests", "integration", "oidc_provider")
SECRET = "bench-client-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def opener(jar):
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect())


def fetch(op, url, data=None):
    """(status, location, body) without following redirects."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with op.open(urllib.request.Request(url, data=body), timeout=30) as r:
            return r.status, r.headers.get("location"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("location"), e.read().decode()


def follow(op, url, base):
    """Follows redirects by hand; the last (status, url, body)."""
    while True:
        status, loc, body = fetch(op, url)
        if status not in (301, 302, 303, 307, 308):
            return status, url, body
        url = urllib.parse.urljoin(base if loc.startswith("/") else url, loc)


def wait_listening(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gate", nargs="?")
    ap.add_argument("-n", type=int, default=50)
    a = ap.parse_args()
    gate = a.gate or next(
        p for p in (os.path.join(ROOT, "target", t, "gate") for t in ("release", "debug")) if os.path.exists(p)
    )
    if not os.path.exists(os.path.join(PROVIDER, "node_modules", "oidc-provider")):
        sys.exit("needs oidc-provider: bash .ci/deps/oidc-provider.sh")
    tmp = tempfile.mkdtemp(prefix="gate-oidc-bench-")
    gport, pport = free_port(), free_port()
    base, issuer = f"http://127.0.0.1:{gport}", f"http://127.0.0.1:{pport}"
    provider = subprocess.Popen(
        ["node", os.path.join(PROVIDER, "provider.mjs"), str(pport), f"{base}/auth/callback", SECRET],
        cwd=PROVIDER, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    policy = os.path.join(tmp, "server.yaml")
    with open(policy, "w") as f:
        f.write(
            "version: 1\nserver:\n  oidc:\n"
            f"    issuer: \"{issuer}\"\n    client_id: gate-web\n"
            "    client_secret: \"env:BENCH_OIDC_SECRET\"\n"
            "identities:\n  alice: { email: alice@example.com }\n"
        )
    env = dict(os.environ, HOME=tmp, XDG_STATE_HOME=tmp, XDG_CONFIG_HOME=tmp, BENCH_OIDC_SECRET=SECRET)
    server = subprocess.Popen(
        [gate, "--policy", policy, "serve", "--listen", f"127.0.0.1:{gport}", "--public-url", base,
         "--db", os.path.join(tmp, "server.db"), "--audit-log", os.path.join(tmp, "audit.jsonl")],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(pport, provider, "the provider")
        wait_listening(gport, server, "gate serve")
        start, callback, whole = [], [], []
        for i in range(a.n + 3):
            jar = http.cookiejar.CookieJar()
            op = opener(jar)
            t0 = time.perf_counter()
            status, loc, _ = fetch(op, f"{base}/auth/login")
            t1 = time.perf_counter()
            assert status == 303, status
            # The provider: its login form, then its consent form.
            status, url, body = follow(op, loc, issuer)
            action = re.search(r'action="([^"]+)"', body).group(1)
            status, loc, _ = fetch(op, urllib.parse.urljoin(issuer, action),
                                   {"prompt": "login", "login": "alice", "password": "x"})
            status, url, body = follow(op, urllib.parse.urljoin(issuer, loc), issuer)
            action = re.search(r'action="([^"]+)"', body).group(1)
            status, loc, _ = fetch(op, urllib.parse.urljoin(issuer, action), {"prompt": "consent"})
            # Through the provider's redirects up to gate's callback.
            url = urllib.parse.urljoin(issuer, loc)
            while not url.startswith(f"{base}/auth/callback"):
                status, loc, _ = fetch(op, url)
                url = urllib.parse.urljoin(url, loc)
            t2 = time.perf_counter()
            status, _, body = fetch(op, url)
            t3 = time.perf_counter()
            if status != 200 or "Signed in as" not in body:
                sys.exit(f"sign-in {i} failed: {status}\n{body[:500]}")
            if i >= 3:  # warm-up: discovery, JWKS, connections
                start.append((t1 - t0) * 1000)
                callback.append((t3 - t2) * 1000)
                whole.append((t3 - t0) * 1000)
        print(f"gate: {gate}")
        print(f"sign-ins: {a.n} (after 3 warm-up), loopback, oidc-provider on node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}")
        for name, xs in (("start (/auth/login)", start), ("callback (/auth/callback)", callback), ("whole sign-in", whole)):
            print(f"{name:28} median {statistics.median(xs):7.2f} ms   p90 {pct(xs, 90):7.2f} ms   max {max(xs):7.2f} ms")
    finally:
        for p in (server, provider):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
