#!/usr/bin/env bash
# Interop of the Thrift RPC rows with Apache Thrift for Python (PyPI
# `thrift`, code from `thrift --gen py`), as scripts/reference/thrift_interop.py
# drives it:
#
# 1. Python's Thrift client calls `wirebench serve` for thrift-rpc (compact),
#    thrift-rpc-binary and volo-thrift: every method, its own values, the
#    declared BenchError for Multiply's overflow and for a bad record.
# 2. wirebench's own thrift-rpc, thrift-rpc-binary and volo-thrift clients
#    call a Python Thrift server (TThreadedServer, framed; Digest computed by
#    checksum.py): `wirebench run --connect`, every reply verified, exit
#    status 0.
#
# Needs: cargo; `thrift` 0.17 (Debian: thrift-compiler); Python 3 with
# thrift. With --install, installs the last two itself (root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
  --install)
    command -v thrift >/dev/null || { apt-get update -qq && apt-get install -y -qq thrift-compiler; }
    python3 -c 'import thrift' 2>/dev/null || pip install -q thrift
    ;;
  "") ;;
  *) echo "usage: $0 [--install]" >&2; exit 2 ;;
esac

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

thrift --gen py -out "$work" "$root/formats/schemas/bench.thrift"
export PYTHONPATH="$work:$root/scripts/reference"
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin wirebench
wirebench="$root/target/release/wirebench"

# Starts "$@" in the background, its output in $work/$name.out, and sets
# $address to what it prints after `listening $name ` (within 30 s).
start() {
  local name=$1
  shift
  # Created here: the child opens its redirections after the fork, and the
  # first sed below may run before it has.
  : >"$work/$name.out"
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 300); do
    address=$(sed -n "s/^listening $name //p" "$work/$name.out" | head -n 1)
    [ -n "$address" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "interop-thrift: $* did not start listening:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

stop() {
  kill "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
}

# 1. Python's client, our servers.
for row in thrift-rpc:compact thrift-rpc-binary:binary volo-thrift:binary; do
  name=${row%%:*} protocol=${row#*:}
  start "$name" "$wirebench" serve --transport "$name"
  python3 "$root/scripts/reference/thrift_interop.py" client "$address" --protocol "$protocol" --name "$name"
  stop
done

# 2. Our client, Python's server.
for row in thrift-rpc:compact:thrift-compact thrift-rpc-binary:binary:thrift-binary volo-thrift:binary:thrift-binary; do
  IFS=: read -r name protocol format <<<"$row"
  start "$name" python3 "$root/scripts/reference/thrift_interop.py" server --protocol "$protocol" --name "$name"
  if ! "$wirebench" run --connect "$name=$address" --transports "$name" --formats "$format" \
    --workloads multiply,echo-1KiB,echo-64KiB,digest-100 --concurrency 1,8 --quiet --out "$work/run-$name" \
    >"$work/run-$name.log" 2>&1; then
    cat "$work/run-$name.log" >&2
    echo "interop-thrift: wirebench's $name client failed against Python's Thrift server" >&2
    exit 1
  fi
  # Exit status 0 says no cell failed; the row's cells must also have run
  # (the raw tcp floor is unsupported here: Python serves no tcp).
  python3 - "$work/run-$name/results.json" "$name" <<'PY'
import json, sys
cells = [c for c in json.load(open(sys.argv[1]))["cells"].values() if c["transport"] == sys.argv[2]]
bad = [c["key"] for c in cells if c["status"] != "ok"]
assert len(cells) == 8 and not bad, f"{sys.argv[2]}: {len(cells)} cells, not ok: {bad}"
calls = sum(c["metrics"]["calls"] for c in cells)
print(f"interop-thrift: wirebench's {sys.argv[2]} client called Python's Thrift server: "
      f"8 cells (Multiply, Echo 1 KiB and 64 KiB, Digest 100; 1 and 8 in flight), {calls} calls, every reply verified")
PY
  stop
done
