#!/usr/bin/env python3
"""Renders the Slack message gate posts as HTML and screenshots it (docs/img/slack-message.png):

    python3 bench/slack-preview.py [GATE] [--out docs/img/slack-message.png]

Runs a real gate (a `kind: slack` backend pointed at a capturing stand-in of chat.postMessage,
`--timeout 1s`), takes the blocks it posted, renders the Block Kit subset gate uses (header,
section text and fields, context, actions; mrkdwn bold, code, code blocks, entities, :emoji:,
`<!date^…|fallback>`) the way Slack lays it out, and screenshots the page with headless
chromium. Requester text in the example carries mention, link and backtick attempts, so the
picture shows how they read.
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POSTED = []
EMOJI = {"white_check_mark": "✅", "x": "❌", "hourglass": "⏳", "no_entry_sign": "🚫"}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        method = self.path.rsplit("/", 1)[-1]
        if method == "chat.postMessage":
            POSTED.append(body)
            out = {"ok": True, "channel": body["channel"], "ts": "1700000000.000100"}
        else:
            out = {"ok": True}
        raw = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        raw = json.dumps({"ok": True, "type": "message", "message": {"ts": "1700000000.000100"}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def mrkdwn(t):
    """Slack's mrkdwn subset → HTML. The text is already entity-escaped by gate."""
    t = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", lambda m: m.group(1), t)
    parts = re.split(r"(```.*?```)", t, flags=re.S)
    out = []
    for p in parts:
        if p.startswith("```") and p.endswith("```") and len(p) >= 6:
            out.append(f"<pre>{p[3:-3]}</pre>")
            continue
        p = re.sub(r"`([^`]+)`", r"<code>\1</code>", p)
        p = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"<b>\1</b>", p)
        p = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"<i>\1</i>", p)
        p = re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), p)
        out.append(p.replace("\n", "<br>"))
    return "".join(out)


def render(blocks):
    rows = []
    for b in blocks:
        t = b["type"]
        if t == "header":
            rows.append(f'<div class="h">{html.escape(b["text"]["text"])}</div>')
        elif t == "section":
            if "text" in b:
                rows.append(f'<div class="s">{mrkdwn(b["text"]["text"])}</div>')
            if "fields" in b:
                cells = "".join(f'<div class="f">{mrkdwn(f["text"])}</div>' for f in b["fields"])
                rows.append(f'<div class="fields">{cells}</div>')
        elif t == "context":
            rows.append('<div class="c">' + " ".join(mrkdwn(e["text"]) for e in b["elements"]) + "</div>")
        elif t == "actions":
            btns = "".join(
                f'<span class="btn {e.get("style", "")}">{html.escape(e["text"]["text"])}</span>'
                for e in b["elements"]
            )
            rows.append(f'<div class="a">{btns}</div>')
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ font: 15px/1.46 Lato, "Helvetica Neue", Arial, sans-serif; color: #1d1c1d; margin: 0; background: #fff; }}
.msg {{ display: flex; padding: 16px 20px; width: 760px; }}
.avatar {{ width: 36px; height: 36px; border-radius: 6px; background: #4a154b; color: #fff;
  font-weight: 900; display: flex; align-items: center; justify-content: center; margin-right: 10px; }}
.who b {{ font-weight: 900; }} .who span {{ color: #616061; font-size: 12px; margin-left: 6px; }}
.tag {{ background: #e8e8e8; color: #616061; font-size: 10px; padding: 1px 3px; border-radius: 2px; }}
.h {{ font-size: 18px; font-weight: 900; margin: 4px 0 8px; }}
.s, .fields {{ margin: 6px 0; }} .fields {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; }}
code {{ font: 12px Monaco, Menlo, Consolas, monospace; color: #e01e5a; background: #f6f6f6;
  border: 1px solid #ddd; border-radius: 3px; padding: 1px 3px; }}
pre {{ font: 12px/1.5 Monaco, Menlo, Consolas, monospace; background: #f8f8f8; border: 1px solid #ddd;
  border-radius: 4px; padding: 8px; margin: 4px 0; white-space: pre-wrap; word-break: break-all; }}
.c {{ color: #616061; font-size: 12px; margin: 6px 0; }}
.btn {{ display: inline-block; border: 1px solid #ccc; border-radius: 4px; padding: 3px 12px; margin-right: 8px; font-weight: 700; }}
.primary {{ background: #007a5a; color: #fff; border-color: #007a5a; }} .danger {{ background: #e01e5a; color: #fff; border-color: #e01e5a; }}
.react {{ display: inline-block; border: 1px solid #1264a3; background: #e8f5fa; border-radius: 12px; padding: 0 8px; font-size: 12px; margin-top: 4px; }}
</style><div class="msg"><div class="avatar">g</div><div>
<div class="who"><b>gate</b> <span class="tag">APP</span><span>11:42 AM</span></div>
{''.join(rows)}
<span class="react">✅ 1</span></div></div>"""


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser()
    ap.add_argument("gate", nargs="?", default=f"{repo}/target/debug/gate")
    ap.add_argument("--out", default=f"{repo}/docs/img/slack-message.png")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    d = tempfile.mkdtemp(prefix="gate-slack-preview-")
    policy = f"""version: 1
defaults: {{ decision: allow, backend: sec, timeout: 15m }}
context: {{ env: [AWS_PROFILE] }}
groups: {{ security: [alice, bob, carol] }}
identities: {{ alice: {{ slack: U024BE7LH }} }}
backends:
  sec: {{ kind: slack, channel: C0123ABCD, token: "env:TOK", api_url: "http://127.0.0.1:{srv.server_address[1]}/api/" }}
rules:
  - name: iam-writes
    match: {{ program: aws, args: [iam, "{{put,attach,create,delete,update}}-*"] }}
    decision: approve
    risk: high
    category: privilege-escalation
    approval: {{ approvers: [security], min_approvals: 2 }}
"""
    with open(f"{d}/p.yaml", "w") as f:
        f.write(policy)
    env = {"PATH": os.environ["PATH"], "HOME": d, "XDG_STATE_HOME": d, "XDG_CONFIG_HOME": d,
           "GATE_LOG": f"{d}/audit.jsonl", "GATE_POLICY": f"{d}/p.yaml", "TOK": "xoxb-preview",
           "AWS_PROFILE": "prod", "NO_COLOR": "1"}
    argv = [a.gate, "--timeout", "1s", "--reason",
            "rotate the CI role's policy (ticket OPS-1234) <!channel> `@here`", "--",
            "aws", "iam", "put-role-policy", "--role-name", "ci", "--policy-name", "deploy",
            "--policy-document", "file://policy.json"]
    subprocess.run(argv, env=env, cwd=d, capture_output=True)
    if not POSTED:
        raise SystemExit("gate posted nothing")
    page = f"{d}/message.html"
    with open(page, "w") as f:
        f.write(render(POSTED[0]["blocks"]))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={a.out}", "--window-size=800,560", f"file://{page}"],
                   check=True, capture_output=True)
    print(a.out)
    srv.shutdown()


if __name__ == "__main__":
    sys.exit(main())
