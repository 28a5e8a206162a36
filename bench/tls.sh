#!/bin/sh
# `gate serve --tls-cert` figures (issue 14 §3): TLS connections per second a server accepts,
# with a full handshake each (`openssl s_time -new`) and with session resumption (`-reuse`),
# each connection fetching `/healthz`. Uses GATE_BIN (default target/release/gate; build it
# with `cargo build --release`), openssl (`.ci/deps/tls.sh`), a throw-away CA in a temp dir.
# Knobs: GATE_BENCH_SECS (5).
set -eu
cd "$(dirname "$0")/.."
bin=${GATE_BIN:-target/release/gate}
secs=${GATE_BENCH_SECS:-5}
[ -x "$bin" ] || { echo "error: no $bin; run cargo build --release or set GATE_BIN" >&2; exit 1; }
command -v openssl >/dev/null || { echo "error: openssl missing; run .ci/deps/tls.sh" >&2; exit 1; }
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=gate bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >s.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout s.key -out s.csr \
    -subj /CN=localhost 2>/dev/null
openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out s.pem -days 2 \
    -extfile s.ext 2>/dev/null
XDG_STATE_HOME="$dir/state" HOME="$dir" "$OLDPWD/$bin" serve --listen 127.0.0.1:0 \
    --db "$dir/server.db" --audit-log "$dir/audit.jsonl" --tls-cert s.pem --tls-key s.key \
    2>"$dir/serve.err" &
pid=$!
i=0
while ! grep -q "listening on https://" "$dir/serve.err"; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$dir/serve.err" >&2; exit 1; }; sleep 0.05
done
addr=$(sed -n 's/.*listening on https:\/\/\([^ ]*\).*/\1/p' "$dir/serve.err")
printf 'GET /healthz HTTP/1.0\r\n\r\n' >req
# Wall-clock rate: s_time's "N connections in T real seconds" (its other line divides by the
# client's own CPU time).
rate() {
    openssl s_time -connect "$addr" -CAfile ca.pem -verify 1 -time "$secs" "$@" 2>/dev/null |
        sed -n 's/^\([0-9]*\) connections in \([0-9]*\) real seconds.*/\1 \2/p' | head -1 |
        awk '{ if ($2 > 0) printf "%.0f", $1 / $2; else print "?" }'
}
full=$(rate -new -www /healthz)
reuse=$(rate -reuse -www /healthz)
echo "tls: full handshake + GET /healthz: $full connections/s (openssl s_time -new, ${secs}s, $bin)"
echo "tls: resumed session + GET /healthz: $reuse connections/s (openssl s_time -reuse)"
