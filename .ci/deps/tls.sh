#!/usr/bin/env bash
# The TLS tests (tests/integration/server_tls.rs) make a throw-away CA and certificates with the
# `openssl` CLI, read the served certificate with `openssl s_client`, and fetch pages with curl:
# installs Debian's `openssl` and `curl` when either is missing.
set -euo pipefail

if command -v openssl >/dev/null && command -v curl >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/integration/server_tls.rs needs Debian's openssl and curl;" \
    "install them (apt-get install openssl curl) or run this script as root" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl curl
command -v openssl >/dev/null && command -v curl >/dev/null || {
  echo "error: openssl or curl still missing after apt-get install" >&2
  exit 1
}
