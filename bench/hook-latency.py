#!/usr/bin/env python3
"""The agent hook's answer for an allowed command (issue 13, figures): `gate hook claude-code`
fed Claude Code's PreToolUse JSON for `git status` on stdin, timed from the spawn to the end of
the process — reading the input, loading and classifying by the policy, appending and signing
the decision record (fsynced), writing the answer. Prints p50, p90 and p99 over N runs and
PASS/MISS against the target, p50 <= 5 ms.

    python3 bench/hook-latency.py [GATE] [N] [POLICY]

GATE defaults to target/release/gate, N to 500, POLICY to the shipped policies/demo.yaml. Each
run gets the same private temp dir (set TMPDIR to choose the disk), so the log grows as it
would over an agent session. Exit status 0 when the target holds, 1 when it is missed.
"""
import json, os, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
gate = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/gate"))
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
policy = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, "policies/demo.yaml"))
TARGET_MS = 5.0

if not os.access(gate, os.X_OK):
    sys.exit(f"no gate binary at {gate}: build it with `cargo build --release` or name one")
if not os.path.isfile(policy):
    sys.exit(f"no policy at {policy}")

top = tempfile.mkdtemp(prefix="gate-hook-bench-")
os.makedirs(os.path.join(top, "config"), mode=0o700)
env = {"PATH": "/usr/bin:/bin", "HOME": top, "XDG_STATE_HOME": top, "NO_COLOR": "1",
       "XDG_CONFIG_HOME": os.path.join(top, "config"), "GATE_POLICY": policy,
       "GATE_LOG": os.path.join(top, "audit.jsonl")}
payload = json.dumps({
    "session_id": "bench-session", "transcript_path": os.path.join(top, "t.jsonl"), "cwd": top,
    "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
    "tool_input": {"command": "git status", "description": "status"}, "tool_use_id": "toolu_bench",
}).encode()

def once():
    t = time.perf_counter()
    r = subprocess.run([gate, "hook", "claude-code"], input=payload, env=env, cwd=top,
                       capture_output=True)
    t = time.perf_counter() - t
    answer = r.stdout.decode(errors="replace")
    if r.returncode != 0 or '"permissionDecision":"allow"' not in answer:
        sys.exit(f"the hook did not allow `git status` (exit {r.returncode}): {answer}"
                 f"{r.stderr.decode(errors='replace')}")
    return t * 1000.0

for _ in range(20):
    once()
times = sorted(once() for _ in range(n))
q = statistics.quantiles(times, n=100)
p50, p90, p99 = statistics.median(times), q[89], q[98]
print(f"gate hook claude-code, allowed command, stdin JSON -> answer, whole process ({n} runs)")
print(f"  p50 {p50:.2f} ms   p90 {p90:.2f} ms   p99 {p99:.2f} ms")
ok = p50 <= TARGET_MS
print(f"  target p50 <= {TARGET_MS:.0f} ms: {'PASS' if ok else 'MISS'}")
sys.exit(0 if ok else 1)
