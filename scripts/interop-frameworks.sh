#!/usr/bin/env bash
# Interop of the stock framework rows with other languages' reference
# implementations (issue 12). Each check starts `wirebench serve` for one
# framework on a free loopback port and points a reference client at it:
#
#   capnp-rpc   pycapnp (Python on the C++ Cap'n Proto library) calls all
#               three methods and gets the overflow as a FAILED exception
#               (scripts/reference/interop_capnp_rpc.py)
#   jsonrpsee   a plain urllib JSON-RPC 2.0 client calls all three methods
#               and gets the overflow as an error object
#               (scripts/reference/interop_jsonrpc.py)
#
# tarpc has no implementation outside Rust: nothing to check against.
#
# Usage: interop-frameworks.sh [--install] [FRAMEWORK ..]   (default: all)
# Needs: cargo; Python 3 with pycapnp (PyPI). --install installs pycapnp.
# WIREBENCH=path/to/wirebench uses that binary instead of building one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
reference="$root/scripts/reference"
wanted=()
for arg in "$@"; do
  case "$arg" in
    --install) python3 -c 'import capnp' 2>/dev/null || python3 -m pip install -q pycapnp ;;
    capnp-rpc | jsonrpsee) wanted+=("$arg") ;;
    *) echo "usage: $0 [--install] [capnp-rpc] [jsonrpsee]" >&2; exit 2 ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(capnp-rpc jsonrpsee)

if [ -z "${WIREBENCH:-}" ]; then
  cargo build --quiet --release --locked --manifest-path "$root/Cargo.toml" --bin wirebench
  WIREBENCH="$root/target/release/wirebench"
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `wirebench serve` for $1 and sets $address from its listening line.
serve() {
  local kind=$1 out="$work/$1.out"
  # exec, so that $! is the server itself and not a subshell around it.
  # Created here: the child opens its redirections after the fork, and the
  # first sed below may run before it has.
  : >"$out"
  (exec "$WIREBENCH" serve --transport "$kind" --listen 127.0.0.1:0 >"$out" 2>"$work/$kind.err") &
  server=$!
  for _ in $(seq 100); do
    address=$(sed -n "s/^listening $kind //p" "$out")
    [ -n "$address" ] && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "interop: wirebench serve --transport $kind did not start:" >&2
  cat "$work/$kind.err" >&2
  exit 1
}

# Stops the server started by `serve`, which must exit cleanly on SIGTERM.
stop() {
  kill -TERM "$server"
  if ! wait "$server"; then
    echo "interop: wirebench serve exited with an error:" >&2
    cat "$work"/*.err >&2
    exit 1
  fi
  server=""
}

for kind in "${wanted[@]}"; do
  echo "=== $kind"
  serve "$kind"
  case "$kind" in
    capnp-rpc) python3 "$reference/interop_capnp_rpc.py" "$root" "$address" ;;
    jsonrpsee) python3 "$reference/interop_jsonrpc.py" "$address" ;;
  esac
  stop
done
