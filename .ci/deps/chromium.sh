#!/usr/bin/env bash
# The web page's end-to-end test (tests/integration/server_web.rs) drives headless Chromium through
# chromedriver: installs Debian's `chromium` and `chromium-driver` when either is missing.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/integration/server_web.rs needs Debian's chromium and chromium-driver;" \
    "install them (apt-get install chromium chromium-driver) or run this script as root" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
command -v chromium >/dev/null && command -v chromedriver >/dev/null || {
  echo "error: chromium or chromedriver still missing after apt-get install" >&2
  exit 1
}
