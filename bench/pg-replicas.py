#!/usr/bin/env python3
"""Two `gate serve` replicas on one throw-away PostgreSQL (issue 14, "Figures"):

    python3 bench/pg-replicas.py [GATE] [--workers 32] [--sequences 3000] [--wakes 300]
                                 [--records 200000] [--waiters 10000]

GATE defaults to target/release/gate. Needs Debian's postgresql (`.ci/deps/postgresql.sh`) and
root (the cluster runs as the `postgres` user, as PostgreSQL requires). The cluster is made with
initdb in a temp dir, listens on its own port on 127.0.0.1, keeps its default durability
(fsync on, synchronous_commit on), and is stopped at the end. Figures:

1. create -> approve -> complete sequences/s with W workers (default 32), each on its own
   keep-alive connections: create a request on one replica (`POST /v1/requests` as alice),
   approve it through the other (as op1), long-poll it on the first until `approved`.
   Target >= 1,000/s.
2. Cross-replica decision -> waiting client: a client long-polls replica A
   (`GET /v1/requests/{id}?wait=30s`), the approval goes through replica B; the time from the
   approve call's return to the long-poll's answer (and from the approve call's start), p50 and
   p99 over N samples, one at a time. Target p99 <= 100 ms.
3. Log ingest into PostgreSQL: R records (default 200,000) of valid hash-chained host logs, 8
   logs pushed in parallel in batches of 1,000 (`POST /v1/logs/{id}/records`, each with the
   host's signed checkpoint; a log's batches alternate between the replicas). Target >= 50,000
   records/s. Signing needs Python's `cryptography`.
4. 10,000 concurrent waiters (half on each replica, each its own connection, long-polling one of
   100 pending requests): each replica's RSS (VmRSS) with all of them waiting, then every request
   approved and every waiter's answer counted. Target <= 300 MB per replica.

Every figure prints with the load average: the machine is shared.
"""
import argparse
import asyncio
import base64
import hashlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_PASSWORD = "bench-pg-password"
POLICY = """version: 1
defaults: { timeout: 10m }
groups:
  ops: [op1, op2]
rules:
  - name: bench-deploy
    match: { program: deploy }
    decision: approve
    approval: { approvers: [ops], timeout: 10m }
"""


def loadavg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = -(-p * len(sorted_values) // 100)
    return sorted_values[min(max(int(rank), 1), len(sorted_values)) - 1]


def canon(v):
    """RFC 8785 for what these documents hold (ASCII strings, integers): sorted keys, no spaces."""
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(argv, cwd):
    return hashlib.sha256(canon({"argv": argv, "cwd": cwd, "env": {}, "payload": []}).encode()).hexdigest()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postgres:
    def __init__(self, top):
        bins = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.split(".")[0].isdigit()),
                      key=lambda d: int(d.split(".")[0])) if os.path.isdir("/usr/lib/postgresql") else []
        if not bins:
            sys.exit("PostgreSQL is missing: run `bash .ci/deps/postgresql.sh` as root")
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = os.path.join(top, "pg")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "pw"), "w") as f:
            f.write(PG_PASSWORD)
        subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        self.as_pg([f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", f"--pwfile={self.dir}/pw", "-E", "UTF8"])
        self.port = free_port()
        self.as_pg([f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o",
                    f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                    f"-c shared_buffers=256MB", "start"])
        self.as_pg([f"{self.bin}/psql", "-h", self.dir, "-p", str(self.port), "-U", "postgres", "-c", "CREATE DATABASE gate"])
        self.url = f"postgres://postgres:{PG_PASSWORD}@127.0.0.1:{self.port}/gate"

    def as_pg(self, argv):
        out = subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", *argv],
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{argv[0]} failed: {out.stdout}{out.stderr}")

    def stop(self):
        subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--",
                        f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop"],
                       capture_output=True)


class Replica:
    def __init__(self, gate, home, env, db, key):
        self.stderr_path = os.path.join(home, f"replica-{id(self)}.txt")
        self.proc = subprocess.Popen(
            [gate, "--policy", os.path.join(home, "policy.yaml"), "serve", "--listen", "127.0.0.1:0",
             "--db", db, "--key", key, "--max-connections", "12000"],
            env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        found = threading.Event()
        self.addr = None

        def drain():
            with open(self.stderr_path, "w") as out:
                for line in self.proc.stderr:
                    out.write(line)
                    out.flush()
                    if self.addr is None and "listening on http://" in line:
                        self.addr = line.split("listening on http://", 1)[1].split()[0]
                        found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(30) or self.addr is None:
            sys.exit(f"gate serve did not start; see {self.stderr_path}")
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Api:
    def __init__(self, replica, token):
        self.r = replica
        self.headers = {"Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection(replica.host, replica.port, timeout=120)

    def call(self, method, path, body=None, raw=None, ctype="application/json"):
        headers = dict(self.headers)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                text = resp.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.r.host, self.r.port, timeout=120)
                if attempt:
                    raise
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return resp.status, doc


def create(api, name):
    argv = ["deploy", name]
    st, doc = api.call("POST", "/v1/requests", {"argv": argv, "cwd": "/srv", "env": {}, "digest": digest(argv, "/srv"),
                                                "claims": {"user": "alice", "uid": 1000, "host": "bench"}})
    if st != 201:
        raise RuntimeError(f"create: {st} {doc}")
    return doc["id"]


def sequences(ra, rb, tokens, workers, n):
    done = [0]
    lock = threading.Lock()
    errors = []
    stop_at = [None]

    def worker(i):
        first, other = (ra, rb) if i % 2 == 0 else (rb, ra)
        mine, approver = Api(first, tokens["alice"]), Api(other, tokens["op1"])
        k = 0
        while True:
            with lock:
                if done[0] >= n:
                    return
            try:
                rid = create(mine, f"w{i}-{k}")
                st, doc = approver.call("POST", f"/v1/requests/{rid}/approve", {"comment": "ok"})
                if st != 200:
                    raise RuntimeError(f"approve: {st} {doc}")
                while True:
                    st, doc = mine.call("GET", f"/v1/requests/{rid}?wait=30s")
                    if st == 200 and doc["status"] != "pending":
                        break
                if doc["status"] != "approved":
                    raise RuntimeError(f"ended {doc['status']}")
            except Exception as e:  # noqa: BLE001 - reported, counted
                errors.append(str(e))
                return
            k += 1
            with lock:
                done[0] += 1

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    return done[0], took, errors


def wakes(ra, rb, tokens, n):
    waiter, approver, maker = Api(ra, tokens["alice"]), Api(rb, tokens["op1"]), Api(ra, tokens["alice"])
    after_return, after_start = [], []
    for k in range(n):
        rid = create(maker, f"wake-{k}")
        woke = {}

        def wait():
            st, doc = waiter.call("GET", f"/v1/requests/{rid}?wait=30s")
            woke["t"] = time.perf_counter()
            woke["status"] = doc["status"] if doc else st

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.05)  # the long-poll is parked on A
        s = time.perf_counter()
        st, doc = approver.call("POST", f"/v1/requests/{rid}/approve", {"comment": "ok"})
        r = time.perf_counter()
        t.join()
        if st != 200 or woke.get("status") != "approved":
            raise RuntimeError(f"wake sample {k}: approve {st}, waiter saw {woke}")
        after_return.append((woke["t"] - r) * 1000)
        after_start.append((woke["t"] - s) * 1000)
    return sorted(after_return), sorted(after_start)


class HostKey:
    """A host's Ed25519 checkpoint key in the C2SP signed-note format (docs/audit-log-format.md)."""

    def __init__(self, name="gate/bench"):
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives import serialization
        except ImportError:
            sys.exit("the log-ingest figure signs host checkpoints with Python's `cryptography`: "
                     "apt-get install python3-cryptography (or pip install cryptography)")
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        pub = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.id = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
        encoded = base64.b64encode(b"\x01" + pub).decode()
        self.vkey = f"{name}+{self.id.hex()}+{encoded}"

    def checkpoint(self, log_id, count, head_hex):
        text = f"gate/{log_id}\n{count}\n{base64.b64encode(bytes.fromhex(head_hex)).decode()}\n"
        sig = base64.b64encode(self.id + self.key.sign(text.encode())).decode()
        note = f"{text}\n\u2014 {self.name} {sig}\n"
        return base64.b64encode(note.encode()).decode()


def host_log(log_id, n, key):
    """A valid chained host log of n records: genesis naming `key`, then `result` records; and
    each record's hash."""
    prev = "0" * 64
    lines, hashes = [], []
    for seq in range(n):
        r = {"v": 1, "log_id": log_id, "seq": seq, "ts": "2026-11-28T12:00:00.000Z", "prev": prev}
        if seq == 0:
            r["kind"] = "genesis"
            r["genesis"] = {"host": "bench", "created_by": "bench", "key": key.vkey}
        else:
            r["kind"] = "result"
            r["request_id"] = f"req-{seq}"
            r["result"] = {"exit_code": 0, "duration_ms": seq % 1000}
        r["hash"] = hashlib.sha256(canon(r).encode()).hexdigest()
        prev = r["hash"]
        lines.append(canon(r))
        hashes.append(r["hash"])
    return lines, hashes


def ingest(ra, rb, token, total, logs=8, batch=1000):
    per = total // logs
    key = HostKey()
    prepared = []
    for i in range(logs):
        log_id = hashlib.md5(f"bench-log-{i}-{time.time()}".encode()).hexdigest()
        lines, hashes = host_log(log_id, per, key)
        batches = []
        for j in range(0, per, batch):
            end = min(j + batch, per)
            batches.append(("\n".join(lines[j:end]) + "\n", key.checkpoint(log_id, end, hashes[end - 1])))
        prepared.append((log_id, batches))
    errors = []

    def push(i, log_id, batches):
        # Batches of one log alternate between the replicas: one chain either way.
        apis = [Api(ra, token), Api(rb, token)]
        for j, (b, cp) in enumerate(batches):
            api = apis[(i + j) % 2]
            api.headers["Gate-Checkpoint"] = cp
            st, doc = api.call("POST", f"/v1/logs/{log_id}/records", raw=b.encode(), ctype="application/x-ndjson")
            if st != 200:
                errors.append(f"{st} {doc}")
                return

    t0 = time.perf_counter()
    ts = [threading.Thread(target=push, args=(i, lid, bs)) for i, (lid, bs) in enumerate(prepared)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * logs, time.perf_counter() - t0, errors


async def waiters(ra, rb, tokens, n, requests=100):
    maker = Api(ra, tokens["alice"])
    ids = [create(maker, f"many-{k}") for k in range(requests)]
    answers = {"approved": 0, "other": 0}
    parked = [0]

    async def one(i):
        r = ra if i % 2 == 0 else rb
        rid = ids[i % requests]
        reader, writer = await asyncio.open_connection(r.host, r.port)
        writer.write(f"GET /v1/requests/{rid}?wait=60s HTTP/1.1\r\nHost: {r.addr}\r\n"
                     f"Authorization: Bearer {tokens['alice']}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        parked[0] += 1
        data = await reader.read()
        writer.close()
        answers["approved" if b'"status":"approved"' in data else "other"] += 1

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    while parked[0] < n:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    rss = (ra.rss_mb(), rb.rss_mb())
    approver = Api(rb, tokens["op1"])
    t0 = time.perf_counter()
    for rid in ids:
        st, doc = approver.call("POST", f"/v1/requests/{rid}/approve", {"comment": "ok"})
        if st != 200:
            raise RuntimeError(f"approve {st} {doc}")
    await asyncio.gather(*tasks)
    return rss, answers, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gate", nargs="?", default=os.path.join(REPO, "target/release/gate"))
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--sequences", type=int, default=3000)
    ap.add_argument("--wakes", type=int, default=300)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--waiters", type=int, default=10_000)
    a = ap.parse_args()
    a.gate = os.path.abspath(a.gate)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    top = tempfile.mkdtemp(prefix="gate-pg-bench-")
    os.chmod(top, 0o755)
    pg = Postgres(top)
    try:
        run(a, top, pg)
    finally:
        pg.stop()
        shutil.rmtree(top, ignore_errors=True)


def run(a, top, pg):
    home = os.path.join(top, "home")
    os.makedirs(home, mode=0o700)
    env = {"XDG_STATE_HOME": os.path.join(home, "state"), "XDG_CONFIG_HOME": os.path.join(home, "config"),
           "HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_COLOR": "1"}
    with open(os.path.join(home, "policy.yaml"), "w") as f:
        f.write(POLICY)
    key = os.path.join(home, "server.key")
    subprocess.run([a.gate, "serve", "key", "--key", key], env=env, cwd=home, check=True, capture_output=True)
    replicas = []
    try:
        replicas = [Replica(a.gate, home, env, pg.url, key) for _ in range(2)]
        ra, rb = replicas
        tokens = {}
        for p in ("alice", "op1", "host1"):
            out = subprocess.run([a.gate, "serve", "token", "issue", "--db", pg.url, "--principal", p],
                                 env=env, cwd=home, capture_output=True, text=True, check=True)
            tokens[p] = out.stdout.strip()
        print(f"gate {a.gate}; PostgreSQL {pg.bin}; load {loadavg()}")

        done, took, errors = sequences(ra, rb, tokens, a.workers, a.sequences)
        print(f"1. create -> approve -> complete, {a.workers} workers across 2 replicas: "
              f"{done} in {took:.2f}s = {done / took:.0f} sequences/s (target >= 1000); "
              f"errors {len(errors)}{': ' + errors[0] if errors else ''}; load {loadavg()}")

        ret, start = wakes(ra, rb, tokens, a.wakes)
        print(f"2. decision on B -> client waiting on A, {len(ret)} samples: from the approve's return "
              f"p50 {pct(ret, 50):.1f} ms p99 {pct(ret, 99):.1f} ms max {ret[-1]:.1f} ms; from its start "
              f"p50 {pct(start, 50):.1f} ms p99 {pct(start, 99):.1f} ms (target p99 <= 100 ms); load {loadavg()}")

        n, took, errors = ingest(ra, rb, tokens["host1"], a.records)
        print(f"3. log ingest: {n} records in {took:.2f}s = {n / took:.0f} records/s (target >= 50000); "
              f"errors {len(errors)}{': ' + errors[0] if errors else ''}; load {loadavg()}")

        rss, answers, took = asyncio.run(waiters(ra, rb, tokens, a.waiters))
        print(f"4. {a.waiters} concurrent waiters across 2 replicas: RSS A {rss[0]:.0f} MB, B {rss[1]:.0f} MB "
              f"(target <= 300 MB each); after approving their requests: {answers['approved']} answered approved, "
              f"{answers['other']} otherwise, in {took:.2f}s; load {loadavg()}")
    finally:
        for r in replicas:
            r.stop()


if __name__ == "__main__":
    main()
