#!/usr/bin/env bash
# The syslog sink's tests (tests/integration/sink_syslog.rs) deliver to a real rsyslogd on loopback over UDP,
# TCP and TLS: installs Debian's `rsyslog`, its GnuTLS stream driver `rsyslog-gnutls`, and
# `openssl` (to make the test CA and server certificate) when any is missing. The tests run their
# own rsyslogd with a private configuration; the system's /etc/rsyslog.conf is never used.
set -euo pipefail

have() {
  command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || return 1
  command -v openssl >/dev/null 2>&1 || return 1
  # The gtls stream driver is a loadable module shipped by rsyslog-gnutls.
  local f
  for f in /usr/lib/*/rsyslog/lmnsd_gtls.so /usr/lib/rsyslog/lmnsd_gtls.so; do
    [ -e "$f" ] && return 0
  done
  return 1
}

if have; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/integration/sink_syslog.rs needs Debian's rsyslog, rsyslog-gnutls and openssl;" \
    "install them (apt-get install rsyslog rsyslog-gnutls openssl) or run this script as root" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsyslog rsyslog-gnutls openssl
have || {
  echo "error: rsyslogd, its gtls driver (lmnsd_gtls.so) or openssl still missing after apt-get install" >&2
  exit 1
}
