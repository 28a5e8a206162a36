#!/usr/bin/env bash
# schemathesis (from PyPI) for tests/integration/server_api.rs: fuzzes a live `gate serve` against
# docs/openapi.yaml. Idempotent: installs only when no working schemathesis 3.x is found.
#
# schemathesis 3.x runs only with Hypothesis <= 6.131.14 (newer ones fail every operation with
# "'many' object has no attribute 'more'", fixed in schemathesis 4), so Hypothesis is pinned too.
# 3.x has no `python3 -m schemathesis`; its module entry point is `schemathesis.cli`.
set -euo pipefail

works() {
  { schemathesis --version >/dev/null 2>&1 || python3 -m schemathesis.cli --version >/dev/null 2>&1; } &&
    python3 - <<'PY' 2>/dev/null
import sys
import hypothesis
v = tuple(int(x) for x in hypothesis.__version__.split(".")[:3])
sys.exit(0 if v <= (6, 131, 14) else 1)
PY
}

if works; then
  exit 0
fi
if ! command -v python3 >/dev/null; then
  echo "error: schemathesis needs python3; install it (apt-get install python3 python3-pip)" >&2
  exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip
  else
    echo "error: schemathesis needs pip; install python3-pip" >&2
    exit 1
  fi
fi
pkgs=('schemathesis>=3.39,<4' 'hypothesis>=6.108,<=6.131.14')
# Debian's system Python is "externally managed" (PEP 668); CI machines are throw-away.
python3 -m pip install --quiet "${pkgs[@]}" 2>/dev/null ||
  python3 -m pip install --quiet --break-system-packages "${pkgs[@]}"
if ! works; then
  echo "error: schemathesis was installed but does not run; try: python3 -m pip install ${pkgs[*]}" >&2
  exit 1
fi
schemathesis --version 2>/dev/null || python3 -m schemathesis.cli --version
