#!/usr/bin/env python3
"""`gate serve` under load (issue 10, "Tests and figures"): throughput and second-approval -> run
latency with C concurrent clients and 3 approver loops, and a correctness check of every request.

    python3 bench/server-load.py [GATE] [--clients C] [--requests N] [--warmup W]
    python3 bench/server-load.py --compare OLD_GATE [GATE] [--rounds R] ...

GATE defaults to target/release/gate (next to this script's repository). Each run starts a real
`gate serve --listen 127.0.0.1:0` with a throw-away database, audit log and XDG directories in a
fresh temp dir (TMPDIR chooses the disk: the fsyncs are most of the cost) and a server policy
where `deploy` needs 2 approvals from group `ops` (op1, op2, op3). Then:

- C client threads (default 200), each on its own keep-alive connection, loop: create a request
  (`POST /v1/requests` as alice, argv `deploy svc-C-K`, cwd `/srv`, the digest), then long-poll
  `GET /v1/requests/{id}?wait=30s` until it is no longer pending.
- 3 approver threads (op1, op2, op3), each on its own keep-alive connection, loop: list
  `GET /v1/requests?status=pending` and approve every request they have not approved yet
  (`POST /v1/requests/{id}/approve`); a 409 (another approver completed it first) is expected.

Figures, over N requests (default 1000) after W warm-up completions (default 100):
- throughput: N / the time from the W-th to the (W+N)-th completion (a client's long-poll
  answering `approved`);
- second-approval -> run latency: from the moment the approve call that made the request
  `approved` returned 200 to the moment its client's long-poll returned `approved` (p50, p99,
  max; negative when the long-poll woke before the approver had read its answer);
- the server's CPU time per request over the same window (/proc/PID/stat).
Correctness, over every request of the run (warm-up included): it ends `approved` with exactly
two approvals by two distinct ops; any that does not gets a line. `gate log verify` of the
server's audit log must say it is intact.

--compare OLD_GATE runs the same load on OLD_GATE and GATE alternately (A B A B; --rounds R
each, default 2), then prints both sets of figures pooled over their rounds and new/old ratios.
Exit status: 0 when every request was correct (and, with --compare, both binaries were), 1
otherwise. The load average is printed with every run: the machine is shared.
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
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPROVERS = ["op1", "op2", "op3"]
NEEDED = 2
SERVER_POLICY = """version: 1
defaults: { timeout: 10m }
groups:
  ops: [op1, op2, op3]
rules:
  - name: bench-deploy
    match: { program: deploy }
    decision: approve
    approval: { approvers: [ops], min_approvals: 2, timeout: 10m }
"""
CWD = "/srv"
MAX_COST = 0.20  # issue 10: the new server may cost at most 20% throughput or latency


def loadavg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(ok):
    return "PASS" if ok else "MISS"


def pct(sorted_values, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_values:
        return float("nan")
    rank = -(-p * len(sorted_values) // 100)  # ceil
    return sorted_values[min(max(int(rank), 1), len(sorted_values)) - 1]


def digest(argv, cwd):
    """SHA-256 hex of the RFC 8785 canonical JSON of {argv, cwd, env, payload}: for plain ASCII
    strings, sorted keys and no whitespace are the canonical form."""
    canon = json.dumps({"argv": argv, "cwd": cwd, "env": {}, "payload": []},
                       sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


class Server:
    """A running `gate serve` in its own temp dir: SIGTERM on stop, SIGKILL after 5 s."""

    def __init__(self, gate):
        self.gate = gate
        self.home = tempfile.mkdtemp(prefix="gate-load-")
        for d in ("state", "config", "home"):
            os.makedirs(os.path.join(self.home, d), mode=0o700)
        self.policy = os.path.join(self.home, "server-policy.yaml")
        with open(self.policy, "w") as f:
            f.write(SERVER_POLICY)
        self.db = os.path.join(self.home, "server.db")
        self.audit = os.path.join(self.home, "server-audit.jsonl")
        self.env = {
            "XDG_STATE_HOME": os.path.join(self.home, "state"),
            "XDG_CONFIG_HOME": os.path.join(self.home, "config"),
            "HOME": os.path.join(self.home, "home"),
            "GATE_LOG": os.path.join(self.home, "audit.jsonl"),
            "GATE_SPOOL": os.path.join(self.home, "spool"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NO_COLOR": "1",
        }
        self.stderr_path = os.path.join(self.home, "server-stderr.txt")
        self.proc = subprocess.Popen(
            [gate, "--policy", self.policy, "serve", "--listen", "127.0.0.1:0",
             "--db", self.db, "--audit-log", self.audit],
            env=self.env, cwd=self.home, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
        if not found.wait(20) or self.addr is None:
            self.stop()
            sys.exit(f"{gate} serve did not say where it listens; see {self.stderr_path}")
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)

    def token(self, principal):
        out = subprocess.run(
            [self.gate, "serve", "token", "issue", "--db", self.db, "--principal", principal],
            env=self.env, cwd=self.home, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if out.returncode != 0:
            self.stop()
            sys.exit(f"gate serve token issue --principal {principal} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    def cpu_secs(self):
        """utime + stime of the server (all threads), in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def verify_log(self):
        """`gate log verify` of the server's audit log: (exit code, its last line of output)."""
        out = subprocess.run([self.gate, "log", "verify", self.audit], env=self.env, cwd=self.home,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True)
        text = (out.stdout + out.stderr).strip().splitlines()
        return out.returncode, (text[-1] if text else "")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self):
        shutil.rmtree(self.home, ignore_errors=True)


class Api:
    """One keep-alive HTTP/1.1 connection with a principal's token."""

    def __init__(self, server, token):
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=90)

    def call(self, method, path, body=None):
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            # The server may close a kept-alive connection (idle timeout); one fresh try.
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=90)
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return resp.status, doc, raw

    def close(self):
        self.conn.close()


class Run:
    """The shared state of one load run."""

    def __init__(self, warmup, n):
        self.warmup, self.n = warmup, n
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set at the (W+N)-th completion: clients stop creating
        self.clients_done = threading.Event()
        self.completed = 0
        self.window = [None, None]  # monotonic time of the W-th and (W+N)-th completion
        self.cpu = [None, None]
        self.approved_at = {}  # id -> monotonic time the completing approve call returned 200
        self.approve_sent = {}  # id -> monotonic time the completing approve call was sent
        self.seen_at = {}  # id -> (monotonic time the long-poll returned approved, completion #)
        self.final = {}  # id -> the request as the client last saw it
        self.created = 0
        self.approvals_200 = 0
        self.approvals_409 = 0
        self.errors = []

    def error(self, text):
        with self.lock:
            self.errors.append(text)
        if len(self.errors) <= 20:
            print(f"  error: {text}", flush=True)


def client(run, server, token, c):
    api = Api(server, token)
    k = 0
    try:
        while not run.stop.is_set():
            argv = ["deploy", f"svc-{c}-{k}"]
            k += 1
            status, doc, raw = api.call("POST", "/v1/requests", {
                "argv": argv, "cwd": CWD, "digest": digest(argv, CWD),
                "reason": "load bench", "timeout_secs": 600})
            if status != 201 or not doc or "id" not in doc:
                run.error(f"client {c}: create answered {status} {raw[:200]!r}")
                return
            rid = doc["id"]
            with run.lock:
                run.created += 1
            while doc.get("status") == "pending":
                status, doc, raw = api.call("GET", f"/v1/requests/{rid}?wait=30s")
                if status != 200 or not doc:
                    run.error(f"client {c}: long-poll of {rid} answered {status} {raw[:200]!r}")
                    return
            t = time.monotonic()
            with run.lock:
                run.final[rid] = doc
                if doc.get("status") != "approved":
                    continue
                run.completed += 1
                run.seen_at[rid] = (t, run.completed)
                if run.completed == run.warmup:
                    run.window[0] = t
                    run.cpu[0] = server.cpu_secs()
                if run.completed == run.warmup + run.n:
                    run.window[1] = t
                    run.cpu[1] = server.cpu_secs()
                    run.stop.set()
    except (OSError, http.client.HTTPException) as e:
        run.error(f"client {c}: {e!r}")
    finally:
        api.close()


def approver(run, server, token, me):
    api = Api(server, token)
    mine = set()
    try:
        while not run.clients_done.is_set():
            status, doc, raw = api.call("GET", "/v1/requests?status=pending")
            if status != 200 or not doc:
                run.error(f"{me}: list answered {status} {raw[:200]!r}")
                return
            todo = [r["id"] for r in doc.get("requests", [])
                    if r["id"] not in mine
                    and me not in {a.get("principal") for a in r.get("approvals", [])}]
            for rid in todo:
                mine.add(rid)
                sent = time.monotonic()
                status, doc, raw = api.call("POST", f"/v1/requests/{rid}/approve", {})
                t = time.monotonic()
                if status == 200:
                    with run.lock:
                        run.approvals_200 += 1
                        if doc.get("status") == "approved":
                            run.approved_at[rid] = t
                            run.approve_sent[rid] = sent
                elif status == 409:
                    with run.lock:
                        run.approvals_409 += 1
                else:
                    run.error(f"{me}: approve {rid} answered {status} {raw[:200]!r}")
            if not todo:
                time.sleep(0.005)
    except (OSError, http.client.HTTPException) as e:
        run.error(f"{me}: {e!r}")
    finally:
        api.close()


def one_run(gate, args, label):
    """One load run on a fresh server; returns its figures (a dict) after printing them."""
    load_before = loadavg()
    server = Server(gate)
    try:
        alice = server.token("alice")
        tokens = {me: server.token(me) for me in APPROVERS}
        run = Run(args.warmup, args.requests)
        clients = [threading.Thread(target=client, args=(run, server, alice, c), daemon=True)
                   for c in range(args.clients)]
        approvers = [threading.Thread(target=approver, args=(run, server, tokens[me], me),
                                      daemon=True) for me in APPROVERS]
        for t in approvers + clients:
            t.start()
        deadline = time.monotonic() + args.timeout
        for t in clients:
            t.join(max(0.0, deadline - time.monotonic()))
        timed_out = any(t.is_alive() for t in clients)
        run.clients_done.set()
        for t in approvers:
            t.join(10)
        server.stop()
        verify_rc, verify_line = server.verify_log()
    finally:
        server.stop()

    fig = {"label": label, "load": (load_before, loadavg()), "ok": True}
    with run.lock:
        if timed_out:
            run.error(f"clients still running after {args.timeout:.0f} s")
        # Correctness over every request the clients saw decided.
        bad = 0
        for rid, doc in run.final.items():
            approvals = doc.get("approvals", [])
            who = {a.get("principal") for a in approvals}
            if (doc.get("status") != "approved" or len(approvals) != NEEDED
                    or len(who) != NEEDED or not who <= set(APPROVERS)):
                bad += 1
                print(f"  WRONG {rid}: status {doc.get('status')}, approvals "
                      f"{[a.get('principal') for a in approvals]}")
        unseen = run.created - len(run.final)
        if unseen:
            print(f"  WRONG {unseen} created request(s) never seen decided by their client")
        missing_approve = [rid for rid in run.seen_at if rid not in run.approved_at]
        fig.update(
            created=run.created, decided=len(run.final), bad=bad + unseen,
            errors=len(run.errors), a200=run.approvals_200, a409=run.approvals_409,
            verify=[(verify_rc, verify_line)], no_completing_approve=len(missing_approve))
        if run.window[1] is None:
            fig["ok"] = False
            print(f"  {label}: the run did not reach {args.warmup + args.requests} completions "
                  f"(completed {run.completed}); see {server.stderr_path}")
            fig.update(seconds=None, latencies=[], cpu=None)
            return fig, server
        span = run.window[1] - run.window[0]
        measured = [(rid, seen) for rid, (seen, nth) in run.seen_at.items()
                    if args.warmup < nth <= args.warmup + args.requests and rid in run.approved_at]
        lats = sorted((seen - run.approved_at[rid]) * 1e3 for rid, seen in measured)
        from_sent = sorted((seen - run.approve_sent[rid]) * 1e3 for rid, seen in measured)
        fig.update(seconds=span, latencies=lats, from_sent=from_sent, cpu=run.cpu[1] - run.cpu[0])
    fig["ok"] = fig["bad"] == 0 and fig["errors"] == 0 and verify_rc == 0 and not timed_out
    print_figures(fig, args.requests)
    return fig, server


def print_figures(fig, n, rounds=1):
    label = fig["label"]
    if fig.get("seconds"):
        lats = fig["latencies"]
        print(f"{label}: throughput {n * rounds / fig['seconds']:.1f} requests approved/s "
              f"({n * rounds} requests in {fig['seconds']:.2f} s)")
        print(f"{label}: second approval -> run p50 {pct(lats, 50):.1f} ms  p99 {pct(lats, 99):.1f} ms"
              f"  max {max(lats):.1f} ms  (n = {len(lats)})")
        sent = fig["from_sent"]
        print(f"{label}: second approval sent -> run p50 {pct(sent, 50):.1f} ms  p99 {pct(sent, 99):.1f} ms"
              f"  max {max(sent):.1f} ms  (the approve call's own time included)")
        print(f"{label}: server CPU {fig['cpu'] * 1e3 / (n * rounds):.2f} ms per request")
    print(f"{label}: correctness: {fig['decided'] - fig['bad']}/{fig['created']} requests approved "
          f"with exactly {NEEDED} approvals; {fig['errors']} error(s); approve calls {fig['a200']} x 200, "
          f"{fig['a409']} x 409")
    if fig.get("no_completing_approve"):
        print(f"{label}: {fig['no_completing_approve']} approved request(s) whose completing "
              f"approve call was not seen")
    for rc, line in fig["verify"]:
        print(f"{label}: gate log verify (server log): exit {rc}: {line}")
    print(f"{label}: load average before {fig['load'][0]}, after {fig['load'][1]}", flush=True)


def pool(figs, label):
    """Figures of several rounds of one binary pooled: time summed, latencies merged."""
    ok = [f for f in figs if f.get("seconds")]
    return {
        "label": label,
        "seconds": sum(f["seconds"] for f in ok) if len(ok) == len(figs) else None,
        "latencies": sorted(x for f in ok for x in f["latencies"]),
        "from_sent": sorted(x for f in ok for x in f["from_sent"]),
        "cpu": sum(f["cpu"] for f in ok),
        "created": sum(f["created"] for f in figs),
        "decided": sum(f["decided"] for f in figs),
        "bad": sum(f["bad"] for f in figs),
        "errors": sum(f["errors"] for f in figs),
        "a200": sum(f["a200"] for f in figs),
        "a409": sum(f["a409"] for f in figs),
        "no_completing_approve": sum(f["no_completing_approve"] for f in figs),
        "verify": [v for f in figs for v in f["verify"]],
        "load": (figs[0]["load"][0], figs[-1]["load"][1]),
        "ok": all(f["ok"] for f in figs),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gate", nargs="?", default=os.path.join(REPO, "target/release/gate"),
                   help="the gate binary (default: target/release/gate)")
    p.add_argument("--compare", metavar="OLD_GATE", help="also run OLD_GATE, alternating (A B A B)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each binary with --compare (2)")
    p.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    p.add_argument("--requests", type=int, default=1000, help="measured requests per run (1000)")
    p.add_argument("--warmup", type=int, default=100, help="completions before measuring (100)")
    p.add_argument("--timeout", type=float, default=600, help="give up a run after this many s")
    p.add_argument("--keep", action="store_true", help="keep each run's temp dir (and say where)")
    args = p.parse_args()
    if args.clients < 1 or args.requests < 1 or args.warmup < 1 or args.rounds < 1:
        p.error("--clients, --requests, --warmup and --rounds must be at least 1")
    bins = [("new", os.path.abspath(args.gate))]
    if args.compare:
        bins.insert(0, ("old", os.path.abspath(args.compare)))
    for _, b in bins:
        if not os.access(b, os.X_OK):
            p.error(f"{b}: not an executable gate binary")

    print(f"gate serve load: {args.clients} clients, {len(APPROVERS)} approvers, {NEEDED} approvals "
          f"each, {args.requests} measured requests after {args.warmup} warm-up; temp dirs under "
          f"{tempfile.gettempdir()}; {os.cpu_count()} CPUs, load average {loadavg()}")
    for name, b in bins:
        print(f"  {name}: {b}")
    rounds = args.rounds if args.compare else 1
    figs = {name: [] for name, _ in bins}
    for r in range(rounds):
        for name, b in bins:  # A B A B
            fig, server = one_run(b, args, f"{name}#{r + 1}" if args.compare else name)
            figs[name].append(fig)
            if args.keep or not fig["ok"]:
                print(f"  kept {server.home}")
            else:
                server.remove()
    if not args.compare:
        sys.exit(0 if figs["new"][0]["ok"] else 1)

    print(f"\npooled over {rounds} rounds each:")
    pooled = {name: pool(figs[name], name) for name, _ in bins}
    for name, _ in bins:
        print_figures(pooled[name], args.requests, rounds)
    old, new = pooled["old"], pooled["new"]
    if old["seconds"] and new["seconds"]:
        # The target: the new binary costs at most MAX_COST of throughput or latency.
        tput = old["seconds"] / new["seconds"]
        print(f"new/old: throughput {tput:.3f} ({100 * (tput - 1):+.1f}%)  "
              f"{verdict(tput >= 1 - MAX_COST)}")
        for key, name in (("latencies", "second approval -> run"),
                          ("from_sent", "second approval sent -> run")):
            for q in (50, 99):
                a, b = pct(old[key], q), pct(new[key], q)
                print(f"new/old: {name} p{q} {b:.1f} ms vs {a:.1f} ms ({b - a:+.1f} ms)  "
                      f"{verdict(b <= a * (1 + MAX_COST))}")
            print(f"new/old: {name} max {max(new[key]):.1f} ms vs {max(old[key]):.1f} ms")
        print(f"new/old: server CPU per request {new['cpu'] / old['cpu']:.3f}")
    sys.exit(0 if old["ok"] and new["ok"] else 1)


if __name__ == "__main__":
    main()
