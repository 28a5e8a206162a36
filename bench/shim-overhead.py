#!/usr/bin/env python3
"""A shim's overhead next to the allow path (issue 13, "Figures"): `true` run directly,
`gate -- true` (the run form) and `true` through a gate shim (a directory of `gate shim install`
links first on PATH), interleaved run by run in one process so load from other processes and
the disk's fsync latency hit all three alike. Prints each one's median and p90, their overhead
over `true` itself, and the shim's cost over the run form.

    python3 bench/shim-overhead.py [GATE] [N] [POLICY]

GATE defaults to target/release/gate (`cargo build --release`), N to 300, POLICY to the shipped
policies/demo.yaml (which allows `true`). gate runs with the audit log on (signed, fsynced) in a
private temp dir on disk (set TMPDIR to choose which disk), with an empty config directory. The
script checks that every run left its decision and result records, and that the shim's
decisions say `command.shim`. Exit status 0 when the shim costs at most 1 ms over the run form
(it should cost about nothing: the same process, under another name), 1 otherwise.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
gate = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/gate"))
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
policy = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "policies/demo.yaml"))
TARGET_MS = 1.0

if not os.access(gate, os.X_OK):
    sys.exit(f"no gate binary at {gate}: build it with `cargo build --release` or name one")
if not os.path.isfile(policy):
    sys.exit(f"no policy at {policy}")
true = shutil.which("true", path="/usr/bin:/bin")
if true is None:
    sys.exit("no `true` in /usr/bin or /bin")

top = tempfile.mkdtemp(prefix="gate-shim-bench-")
os.makedirs(os.path.join(top, "config"), mode=0o700)
shims = os.path.join(top, "shims")
log = os.path.join(top, "audit.jsonl")
base = {"HOME": top, "XDG_STATE_HOME": top, "NO_COLOR": "1",
        "XDG_CONFIG_HOME": os.path.join(top, "config"), "GATE_POLICY": policy, "GATE_LOG": log}
plain_env = dict(base, PATH="/usr/bin:/bin")
shim_env = dict(base, PATH=f"{shims}:/usr/bin:/bin")

r = subprocess.run([gate, "shim", "install", "--dir", shims, "true"], env=plain_env,
                   stdin=subprocess.DEVNULL, capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"`gate shim install true` exited {r.returncode}: {r.stderr.strip()}")

series = {
    "true": ([true], plain_env),
    "run form": ([gate, "--", "true"], plain_env),
    "shim": ([os.path.join(shims, "true")], shim_env),
}
times = {k: [] for k in series}


def run(argv, env):
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` exited {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
    return t


warm = 10
order = list(series)
for i in range(n + warm):
    # Rotate the order so none of the three always runs right after another.
    for k in order[i % 3:] + order[:i % 3]:
        t = run(*series[k])
        if i >= warm:
            times[k].append(t)

with open(log) as f:
    records = [json.loads(line) for line in f]
runs = 2 * (n + warm)
if len(records) != 1 + 2 * runs:
    sys.exit(f"the audit log holds {len(records)} records, expected {1 + 2 * runs}")
shimmed = sum(1 for rec in records if rec["kind"] == "decision" and "shim" in rec["request"]["command"])
if shimmed != n + warm:
    sys.exit(f"{shimmed} decisions say `command.shim`, expected {n + warm}")

med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
for k, v in times.items():
    v.sort()
    line = f"{k:8} median {med[k]:7.3f} ms  p90 {v[int(len(v) * 0.9)] * 1e3:7.3f} ms"
    if k != "true":
        line += f"  overhead {med[k] - med['true']:6.3f} ms"
    print(line)
extra = med["shim"] - med["run form"]
print(f"shim over run form: {extra:+.3f} ms (median; target <= {TARGET_MS:.1f} ms: "
      f"{'PASS' if extra <= TARGET_MS else 'MISS'})")
print(f"n = {n} runs each after {warm} warm-up runs; load average {os.getloadavg()[0]:.2f}")
shutil.rmtree(top, ignore_errors=True)
sys.exit(0 if extra <= TARGET_MS else 1)
