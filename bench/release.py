#!/usr/bin/env python3
"""Credential release (issue 14 §5): what releasing secrets costs on `gate serve`.

    python3 bench/release.py [GATE] [--requests N] [--secrets S]

GATE defaults to target/release/gate, else target/debug/gate (say which in the figures: a debug
build is several times slower). Starts a real `gate serve --listen 127.0.0.1:0` with a throw-away
database, audit log and XDG directories in a fresh temp dir (TMPDIR chooses the disk: each
release, like each approval, fsyncs one event into the server's log), `GATE_SECRET_KEY` set, S
secrets stored with `gate serve secret set` (default 2), and a server policy whose rule releases
all of them. Then, one keep-alive connection, N times (default 300): create a request as erin,
approve it as alice, fetch its secrets as erin (`POST /v1/requests/{id}/release`), and a second
release that must be refused (409). Figures:

- `gate serve secret set`: wall time per call (process start, key check, seal, one SQLite write);
- approve and release latency, p50 / p99 / max (both record one event in the server's log before
  answering; the release also opens S AES-256-GCM values);
- correctness: every release answered 200 with exactly the stored values, every replay 409, and
  the server's log holds exactly N `released` events and no value.
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "6a3f1c9e2b7d4058a1e6c3b9f0d2e7a45b8c1f3e6d9a2b5c8e1f4a7d0b3c6e90"


def jcs(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(argv, cwd):
    doc = {"argv": argv, "cwd": cwd, "env": {}, "payload": []}
    return hashlib.sha256(jcs(doc).encode()).hexdigest()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gate", nargs="?")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--secrets", type=int, default=2)
    a = ap.parse_args()
    gate = a.gate
    if not gate:
        for b in ("release", "debug"):
            p = os.path.join(REPO, "target", b, "gate")
            if os.path.exists(p):
                gate = p
                break
    tmp = tempfile.mkdtemp(prefix="gate-release-bench-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.path.join(tmp, "home"),
        "XDG_STATE_HOME": os.path.join(tmp, "state"),
        "XDG_CONFIG_HOME": os.path.join(tmp, "config"),
        "GATE_SECRET_KEY": KEY,
        "NO_COLOR": "1",
    }
    db = os.path.join(tmp, "server.db")
    values = {f"s{i}": f"value-{i}-" + os.urandom(12).hex() for i in range(a.secrets)}
    set_times = []
    for name, value in values.items():
        t = time.perf_counter()
        subprocess.run([gate, "serve", "secret", "set", "--db", db, name], input=value.encode(),
                       env=env, check=True, capture_output=True)
        set_times.append(time.perf_counter() - t)
    release = ", ".join(f"V_{n.upper()}: \"secret:{n}\"" for n in values)
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(f"""version: 1
defaults: {{ timeout: 10m }}
groups:
  ops: [alice]
rules:
  - name: deploy
    match: {{ program: deploy }}
    decision: approve
    approval: {{ approvers: [ops] }}
    release: {{ {release} }}
""")
    tokens = {}
    for p in ("alice", "erin"):
        r = subprocess.run([gate, "serve", "token", "issue", "--db", db, "--principal", p],
                           env=env, check=True, capture_output=True)
        tokens[p] = r.stdout.decode().strip()
    audit = os.path.join(tmp, "server-audit.jsonl")
    srv = subprocess.Popen([gate, "--policy", policy, "serve", "--listen", "127.0.0.1:0",
                            "--db", db, "--audit-log", audit],
                           env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    addr = None
    for line in srv.stderr:
        line = line.decode()
        if "listening on http://" in line:
            addr = line.split("listening on http://")[1].split()[0]
            break
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))

    def call(method, path, token, body=None):
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": f"Bearer {tokens[token]}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")

    approve_t, release_t, bad = [], [], 0
    want = {f"V_{n.upper()}": v for n, v in values.items()}
    for i in range(a.requests):
        argv = ["deploy", f"svc-{i}"]
        d = digest(argv, "/srv")
        s, v = call("POST", "/v1/requests", "erin", {"argv": argv, "cwd": "/srv", "digest": d})
        assert s == 201, v
        rid = v["id"]
        t = time.perf_counter()
        s, v = call("POST", f"/v1/requests/{rid}/approve", "alice", {})
        approve_t.append(time.perf_counter() - t)
        assert s == 200, v
        t = time.perf_counter()
        s, v = call("POST", f"/v1/requests/{rid}/release", "erin", {"digest": d})
        release_t.append(time.perf_counter() - t)
        if s != 200 or v["variables"] != want:
            bad += 1
        s, v = call("POST", f"/v1/requests/{rid}/release", "erin", {"digest": d})
        if s != 409:
            bad += 1
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=20)
    log = open(audit).read()
    released = sum(1 for l in log.splitlines() if '"type":"released"' in l)
    leaked = any(v in log for v in values.values())
    ms = lambda x: f"{x * 1000:.2f} ms"
    print(f"gate: {gate}")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
    print(f"gate serve secret set: median {ms(pct(set_times, 50))} over {len(set_times)} calls")
    for name, xs in (("approve", approve_t), (f"release ({a.secrets} secrets)", release_t)):
        print(f"{name}: p50 {ms(pct(xs, 50))}  p99 {ms(pct(xs, 99))}  max {ms(max(xs))}  (N={len(xs)})")
    print(f"released events: {released} (want {a.requests}); values in the log: {leaked}; "
          f"wrong answers: {bad}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if (bad == 0 and released == a.requests and not leaked) else 1


if __name__ == "__main__":
    sys.exit(main())
