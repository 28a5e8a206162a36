#!/usr/bin/env bash
# The web page's OIDC sign-in tests (tests/integration/oidc_web.rs) start a real OpenID provider:
# the npm package `oidc-provider`, pinned in tests/integration/oidc_provider/package-lock.json,
# on the machine's Node.js (20 or later). Installs Debian's nodejs and npm when missing, then the
# locked packages into tests/integration/oidc_provider/node_modules (gitignored) when they are not
# there yet.
set -euo pipefail
cd "$(dirname "$0")/../../tests/integration/oidc_provider"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: tests/integration/oidc_web.rs needs Node.js 20+ and npm;" \
      "install them (apt-get install nodejs npm) or run this script as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "error: tests/integration/oidc_web.rs needs Node.js 20 or later (oidc-provider 8); this is $(node --version)" >&2
  exit 1
fi
want=$(node -p 'require("./package-lock.json").packages["node_modules/oidc-provider"].version')
have=$(node -p 'try { require("./node_modules/oidc-provider/package.json").version } catch { "" }')
if [ "$have" = "$want" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
