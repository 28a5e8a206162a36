#!/usr/bin/env python3
"""The allow path next to sudo's (issue 9, section 6): `/bin/true`, `sudo -n /bin/true` and
`gate -- /bin/true` interleaved run by run in one process, so load from other processes and the
disk's fsync latency hit all three alike. Prints each one's median and p90, gate's and sudo's
overhead over /bin/true, the gate/sudo ratio, and PASS/MISS against the targets:
gate's overhead <= 3 ms and below sudo's.

    python3 bench/allow-vs-sudo.py [GATE] [N] [POLICY]

GATE defaults to target/release/gate, N to 300, POLICY to the shipped policies/demo.yaml. gate
runs with the audit log on (a signed, fsynced log) in a private temp dir on disk (set TMPDIR to
choose which disk), with an empty config directory so nothing else is configured. sudo must be
installed and `sudo -n /bin/true` must work without a password (as root it does): the script
says how to get it otherwise. Exit status 0 when both targets hold, 1 when one is missed.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
gate = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/gate"))
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
policy = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "policies/demo.yaml"))
TARGET_MS = 3.0

if not os.access(gate, os.X_OK):
    sys.exit(f"no gate binary at {gate}: build it with `cargo build --release` or name one")
if not os.path.isfile(policy):
    sys.exit(f"no policy at {policy}")
sudo = shutil.which("sudo")
if sudo is None:
    sys.exit("sudo is not installed: `apt-get install -y sudo` (Debian/Ubuntu) or `dnf install -y sudo`, then run again")
probe = subprocess.run([sudo, "-n", "/bin/true"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
if probe.returncode != 0:
    sys.exit(f"`sudo -n /bin/true` fails ({probe.stderr.strip()}): run as root, or allow this user "
             "NOPASSWD for /bin/true in /etc/sudoers.d/, then run again")

top = tempfile.mkdtemp(prefix="gate-vs-sudo-")
os.makedirs(os.path.join(top, "config"), mode=0o700)
log = os.path.join(top, "audit.jsonl")
env = {"PATH": "/usr/bin:/bin", "HOME": top, "XDG_STATE_HOME": top, "NO_COLOR": "1",
       "XDG_CONFIG_HOME": os.path.join(top, "config"), "GATE_POLICY": policy, "GATE_LOG": log}
series = {
    "true": (["/bin/true"], None),
    "sudo": ([sudo, "-n", "/bin/true"], None),
    "gate": ([gate, "--", "/bin/true"], env),
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

with open(log, "rb") as f:
    records = sum(1 for _ in f)
if records != 1 + 2 * (n + warm):
    sys.exit(f"the audit log holds {records} records, expected {1 + 2 * (n + warm)} (genesis + decision and result per run)")

med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
for k, v in times.items():
    v.sort()
    line = f"{k:5} median {med[k]:7.3f} ms  p90 {v[int(len(v) * 0.9)] * 1e3:7.3f} ms"
    if k != "true":
        line += f"  overhead {med[k] - med['true']:6.3f} ms"
    print(line)
gate_over = med["gate"] - med["true"]
sudo_over = med["sudo"] - med["true"]
ratio = gate_over / sudo_over if sudo_over > 0 else float("inf")
ok_abs = gate_over <= TARGET_MS
ok_rel = gate_over < sudo_over
print(f"gate/sudo overhead ratio {ratio:.2f} (target < 1.00): {'PASS' if ok_rel else 'MISS'}")
print(f"gate overhead {gate_over:.3f} ms (target <= {TARGET_MS:.1f} ms): {'PASS' if ok_abs else 'MISS'}")
print(f"runs: {n} each after {warm} warm-up, gate {gate}, policy {policy}, log {log}, "
      f"load average {os.getloadavg()[0]:.2f}")
shutil.rmtree(top, ignore_errors=True)
sys.exit(0 if ok_abs and ok_rel else 1)
