#!/usr/bin/env bash
# Proves the broker rows speak each broker's protocol as its own ecosystem
# does: for each of nats, rabbitmq, redis and mqtt, starts the real daemon
# (transports/examples/broker_daemon.rs: the harness's own lifecycle), a
# `wirebench serve` responder connected to it, and the Python reference
# client of that broker (nats-py, pika, redis-py, paho-mqtt), which calls
# Multiply, Echo and Digest in json and the refusals of docs/protocol.md
# section 17 (scripts/reference/broker_client.py says which).
#
# Needs: nats-server, rabbitmq-server, redis-server, mosquitto (Debian
# packages of the same names), Python 3 with nats-py, pika, redis,
# paho-mqtt; and cargo. With --install, installs them itself (root).
# A broker that is not installed fails the check (this is CI's proof).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--install" ]; then
  missing=()
  for pair in nats-server:nats-server rabbitmq-server:rabbitmq-server redis-server:redis-server mosquitto:mosquitto; do
    bin=${pair%%:*}
    command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  python3 -m pip install -q nats-py pika redis paho-mqtt
fi

# Release, as CI has built it already; WIREBENCH_PROFILE=dev for a debug build.
profile=${WIREBENCH_PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cargo build --quiet --profile "$profile" --manifest-path "$root/Cargo.toml" --bin wirebench
cargo build --quiet --profile "$profile" --manifest-path "$root/Cargo.toml" -p wirebench-transports --example broker_daemon
wirebench=$root/target/$dir/wirebench
daemon=$root/target/$dir/examples/broker_daemon

work=$(mktemp -d)
serve_pid=
broker_pid=
cleanup() {
  # Only what this script started, by its id. Closing the daemon's stdin
  # (or SIGTERM) makes broker_daemon stop the broker and its helpers.
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
  serve_pid= broker_pid=
}
trap 'cleanup; rm -rf "$work"' EXIT

# Waits until FILE has a line starting with PREFIX and prints the rest;
# fails after SECONDS or when PID has exited.
await_line() {
  local file=$1 prefix=$2 seconds=$3 pid=$4 line
  for _ in $(seq $((seconds * 10))); do
    line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      printf '%s\n' "${line#"$prefix"}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

failed=0
for broker in nats rabbitmq redis mqtt; do
  # The daemon keeps running while its stdin (a fifo held open here) is.
  mkfifo "$work/$broker.in"
  "$daemon" "$broker" "$work/$broker.log" <"$work/$broker.in" >"$work/$broker.out" 2>&1 &
  broker_pid=$!
  exec 9>"$work/$broker.in"
  if ! address=$(await_line "$work/$broker.out" "ready $broker " 60 "$broker_pid"); then
    echo "FAIL $broker: the daemon did not start: $(cat "$work/$broker.out")" >&2
    failed=1; exec 9>&-; cleanup; continue
  fi
  "$wirebench" serve --transport "$broker" --listen "$address" >"$work/$broker.serve" 2>&1 &
  serve_pid=$!
  if ! await_line "$work/$broker.serve" "listening $broker " 30 "$serve_pid" >/dev/null; then
    echo "FAIL $broker: wirebench serve did not subscribe: $(cat "$work/$broker.serve")" >&2
    failed=1; exec 9>&-; cleanup; continue
  fi
  python3 "$root/scripts/reference/broker_client.py" "$broker" "$address" || failed=1
  exec 9>&-
  cleanup
done
if [ "$failed" != 0 ]; then
  echo "broker interop: some checks failed" >&2
  exit 1
fi
echo "broker interop: every reference client got every answer right"
