#!/usr/bin/env bash
# zerorpc interop: Python's zerorpc package (PyPI zerorpc 0.6.3, on pyzmq's
# libzmq and gevent) against wirebench's zerorpc row, both ways, driven by
# scripts/reference/zerorpc_peer.py:
#
# 1. zerorpc.Client calls `wirebench serve --transport zerorpc`: every method
#    checked (Digest against checksum.py), Multiply's overflow as
#    OverflowError, bad calls, introspection, zerorpc's CLI, 200 in flight.
# 2. `wirebench run --connect zerorpc=...` calls a zerorpc.Server (Digest
#    computed by checksum.py) and must exit 0: every reply verified.
# 3. Heartbeats (--heartbeats, about a minute): a Python call held 24 s by a
#    stalled server of ours, and a call of ours held 24 s by a slow Python
#    server. zerorpc gives up on a silent peer after 15 to 20 s, so each
#    succeeds only if the side that waits heartbeats as zerorpc does.
#
# Needs: cargo, Python 3 with zerorpc. With --install, pip-installs zerorpc.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
heartbeats=0
for arg in "$@"; do
  case "$arg" in
    --install) python3 -m pip install -q 'zerorpc==0.6.3' ;;
    --heartbeats) heartbeats=1 ;;
    *) echo "usage: $0 [--install] [--heartbeats]" >&2; exit 2 ;;
  esac
done
python3 -c 'import zerorpc' 2>/dev/null || { echo "zerorpc (Python) is not installed: run $0 --install" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wirebench
bin="$root/target/release/wirebench"
peer="$root/scripts/reference/zerorpc_peer.py"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a server (the rest of the arguments) and sets $address from its
# `listening zerorpc ADDRESS` line.
start() {
  local log="$work/server-$#-$RANDOM.out"
  # Created here: the child opens its redirections after the fork, and the
  # first sed below may run before it has.
  : >"$log"
  "$@" >"$log" 2>"$log.err" &
  pids+=($!)
  for _ in $(seq 100); do
    address=$(sed -n 's/^listening zerorpc //p' "$log" | head -n 1)
    [ -n "$address" ] && return 0
    sleep 0.1
  done
  echo "the server did not start: $*" >&2
  cat "$log.err" >&2
  exit 1
}

echo "--- the Python zerorpc client calls our server"
start "$bin" serve --transport zerorpc --listen 127.0.0.1:0
python3 "$peer" client "$address"

echo "--- our client calls a Python zerorpc server (wirebench run --connect)"
start python3 "$peer" server 127.0.0.1:0
"$bin" run --quick --quiet --connect "zerorpc=$address" --transports zerorpc --formats msgpack --out "$work/run"
echo "ok   zerorpc wirebench run against the Python server: every cell ok"

if [ "$heartbeats" = 1 ]; then
  echo "--- heartbeats: a Python call held by our stalled server"
  start "$bin" serve --transport zerorpc --listen 127.0.0.1:0 --stall 24s/600s
  python3 "$peer" client "$address" --held 24

  echo "--- heartbeats: our call held by a slow Python server"
  start python3 "$peer" server 127.0.0.1:0 --slow-first 24
  "$bin" run --quiet --connect "zerorpc=$address" --transports zerorpc --formats msgpack --workloads multiply \
    --concurrency 1 --timeout 60s --warmup 0s --duration 100ms --out "$work/held"
  echo "ok   zerorpc a call of ours held 24 s by the Python server, kept alive by heartbeats"
fi
echo "interop-zerorpc.sh: all checks passed"
