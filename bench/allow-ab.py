#!/usr/bin/env python3
"""Allow path, before against after: `gate -- /bin/true` of two gate binaries, interleaved run by
run (A, B, /bin/true, B, A, /bin/true, ...), so that load from other processes and the disk's fsync
latency hit both alike; prints each one's median and p90 and its overhead over /bin/true, and
the median CPU time (user + system, from wait4; it includes the child's).

    python3 bench/allow-ab.py OLD_GATE NEW_GATE [N] [POLICY]

N defaults to 500, POLICY to policies/demo.yaml. Each binary gets its own private log
directory under a fresh temp dir, on disk (set TMPDIR=/dev/shm for the figure without fsync).
"""
import os, statistics, subprocess, sys, tempfile, time

if len(sys.argv) < 3:
    sys.exit(__doc__)
bins = {"old": sys.argv[1], "new": sys.argv[2]}
n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
policy = os.path.abspath(sys.argv[4] if len(sys.argv) > 4 else "policies/demo.yaml")
top = tempfile.mkdtemp(prefix="gate-ab-")
envs = {}
for k in bins:
    d = os.path.join(top, k)
    os.makedirs(os.path.join(d, "config"), mode=0o700)
    envs[k] = {"PATH": "/usr/bin:/bin", "HOME": d, "XDG_STATE_HOME": d, "NO_COLOR": "1",
               "XDG_CONFIG_HOME": os.path.join(d, "config"), "GATE_POLICY": policy,
               "GATE_LOG": os.path.join(d, "audit.jsonl")}
times = {k: [] for k in [*bins, "true"]}
# CPU time (user + system) of each run, from wait4: on a loaded machine the wall clock mostly
# measures the wait for a core and for the disk, CPU time what the binary itself costs.
cpu = {k: [] for k in [*bins, "true"]}
def run(argv, env=None, key=None):
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    t = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{argv[0]} exited {p.returncode}")
    if key is not None:
        cpu[key].append(ru.ru_utime + ru.ru_stime)
    return t
for i in range(n + 10):
    # ABBA order: whichever runs first after /bin/true pays no more than the other.
    for k, b in (list(bins.items()) if i % 2 == 0 else list(bins.items())[::-1]):
        t = run([b, "--", "/bin/true"], envs[k], k if i >= 10 else None)
        if i >= 10:
            times[k].append(t)
    t = run(["/bin/true"], None, "true" if i >= 10 else None)
    if i >= 10:
        times["true"].append(t)
base = statistics.median(times["true"])
for k, v in times.items():
    v.sort()
    line = f"{k:5} median {statistics.median(v) * 1e3:7.3f} ms  p90 {v[int(len(v) * 0.9)] * 1e3:7.3f} ms"
    if k != "true":
        line += f"  overhead {(statistics.median(v) - base) * 1e3:6.3f} ms"
    # gate's CPU time includes its child's (/bin/true), as the wall time does.
    line += f"  cpu median {statistics.median(cpu[k]) * 1e3:6.3f} ms"
    print(line)
print(f"runs: {n} each, logs under {top}, load average {os.getloadavg()[0]:.2f}")
