#!/usr/bin/env python3
"""Renders the Teams card the gate server posts as HTML and screenshots it (docs/img/teams-card.png):

    python3 bench/teams-preview.py [GATE] [--out docs/img/teams-card.png]

Runs a real `gate serve` whose policy routes approvals to a `kind: teams` backend pointed at a
capturing stand-in of a Workflows webhook (202), asks it for approval with a client
`gate` waiting through a `kind: server` backend, takes the Adaptive Card it posted, renders the
subset gate uses (TextBlock with weight/size/fontType, FactSet, Action.OpenUrl) roughly as Teams
lays it out, and screenshots the page with headless chromium. The requester's reason carries
markdown and link attempts, so the picture shows how they read.
"""

import argparse
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CARDS = []


class Hook(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        CARDS.append(body["attachments"][0]["content"])
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()


def md(t):
    """The card's markdown subset → HTML; gate escapes requester text with backslashes."""
    t = html.escape(t)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"\\(.)", r"\1", t).replace("\n", "<br>")


def render(card):
    rows = []
    for e in card.get("body", []):
        if e["type"] == "TextBlock":
            cls = []
            if e.get("weight") == "Bolder":
                cls.append("b")
            if e.get("size") == "Medium":
                cls.append("m")
            if e.get("fontType") == "Monospace":
                cls.append("mono")
            rows.append(f'<div class="tb {" ".join(cls)}">{md(e["text"])}</div>')
        elif e["type"] == "FactSet":
            facts = "".join(
                f'<tr><th>{md(f["title"])}</th><td>{md(f["value"])}</td></tr>' for f in e["facts"]
            )
            rows.append(f'<table class="fs">{facts}</table>')
    acts = "".join(
        f'<span class="btn" title="{html.escape(a["url"])}">{html.escape(a["title"])}</span>'
        for a in card.get("actions", []) if a["type"] == "Action.OpenUrl"
    )
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ font: 14px/1.4 "Segoe UI", "Helvetica Neue", Arial, sans-serif; color: #242424; margin: 0; background: #f5f5f5; }}
.post {{ display: flex; padding: 16px 20px; width: 720px; }}
.avatar {{ width: 32px; height: 32px; border-radius: 50%; background: #5b5fc7; color: #fff;
  font-weight: 700; display: flex; align-items: center; justify-content: center; margin-right: 10px; flex: none; }}
.who {{ font-size: 12px; color: #616161; margin-bottom: 4px; }} .who b {{ color: #242424; }}
.card {{ background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; padding: 14px 16px; width: 640px; }}
.tb {{ margin: 4px 0; }} .b {{ font-weight: 600; }} .m {{ font-size: 17px; }}
.mono {{ font-family: Consolas, Menlo, monospace; background: #f5f5f5; padding: 6px 8px; border-radius: 4px; word-break: break-all; }}
.fs {{ border-collapse: collapse; margin: 8px 0; }} .fs th {{ text-align: left; font-weight: 600; padding: 2px 16px 2px 0; vertical-align: top; white-space: nowrap; }}
.fs td {{ padding: 2px 0; word-break: break-word; }}
.btn {{ display: inline-block; border: 1px solid #d1d1d1; border-radius: 4px; padding: 5px 14px; margin-top: 10px;
  font-weight: 600; color: #5b5fc7; }}
</style><div class="post"><div class="avatar">W</div><div>
<div class="who"><b>Workflows</b> · gate via the approvals workflow · 11:42 AM</div>
<div class="card">{''.join(rows)}<div>{acts}</div></div></div></div>"""


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("gate", nargs="?", default=f"{repo}/target/debug/gate")
    ap.add_argument("--out", default=f"{repo}/docs/img/teams-card.png")
    a = ap.parse_args()
    gate = os.path.abspath(a.gate)
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    d = tempfile.mkdtemp(prefix="gate-teams-preview-")
    env = {"PATH": os.environ["PATH"], "HOME": d, "XDG_STATE_HOME": f"{d}/state",
           "XDG_CONFIG_HOME": f"{d}/config", "NO_COLOR": "1",
           "TEAMS_WEBHOOK": f"http://127.0.0.1:{hook.server_address[1]}/workflows/x/triggers/manual/paths/invoke?sig=preview"}
    with open(f"{d}/server.yaml", "w") as f:
        f.write("""version: 1
defaults: { backend: chan, timeout: 30m }
context: { env: [AWS_PROFILE] }
groups: { security: [alice, bob, carol] }
backends:
  chan: { kind: teams, webhook: "env:TEAMS_WEBHOOK" }
rules:
  - name: iam-writes
    match: { program: aws, args: [iam, "{put,attach,create,delete,update}-*"] }
    decision: approve
    risk: high
    category: privilege-escalation
    approval: { approvers: [security], min_approvals: 2 }
""")
    db = f"{d}/server.db"
    srv = subprocess.Popen([gate, "--policy", f"{d}/server.yaml", "serve", "--listen", "127.0.0.1:0",
                            "--db", db, "--audit-log", f"{d}/server-audit.jsonl",
                            "--public-url", "https://gate.example.com"],
                           env=env, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in srv.stderr:
        if "listening on http://" in line:
            addr = line.split("listening on http://")[1].split()[0]
            break
    threading.Thread(target=lambda: [None for _ in srv.stderr], daemon=True).start()
    try:
        alice = subprocess.run([gate, "serve", "token", "issue", "--db", db, "--principal", "alice"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        vkey = subprocess.run([gate, "--policy", f"{d}/server.yaml", "serve", "key", "--db", db],
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
        with open(f"{d}/client.yaml", "w") as f:
            f.write(f"""version: 1
context: {{ env: [AWS_PROFILE] }}
backends: {{ team: {{ kind: server, url: "http://{addr}", key: "{vkey}" }} }}
rules:
  - {{ name: aws-iam, match: {{ program: aws, args: [iam] }}, decision: approve, approval: {{ backend: team }} }}
""")
        cenv = dict(env, GATE_TOKEN=alice, GATE_LOG=f"{d}/audit.jsonl", AWS_PROFILE="prod")
        client = subprocess.Popen([gate, "--policy", f"{d}/client.yaml", "--timeout", "30m", "--reason",
                                   "rotate the CI role's policy (OPS-1234) **now** [docs](https://evil.example)",
                                   "--", "aws", "iam", "put-role-policy", "--role-name", "ci",
                                   "--policy-name", "deploy", "--policy-document", "file://policy.json"],
                                  env=cenv, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not CARDS and time.time() < deadline:
            time.sleep(0.05)
        client.terminate()
        client.wait(timeout=10)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    if not CARDS:
        raise SystemExit("the server posted no card")
    page = f"{d}/card.html"
    with open(page, "w") as f:
        f.write(render(CARDS[0]))
    with open(f"{d}/card.json", "w") as f:
        json.dump(CARDS[0], f, indent=2)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={a.out}", "--window-size=760,480", f"file://{page}"],
                   check=True, capture_output=True)
    print(a.out)
    print(f"{d}/card.json")
    hook.shutdown()


if __name__ == "__main__":
    sys.exit(main())
