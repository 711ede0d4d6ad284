#!/usr/bin/env bash
# The CI gate's false-alarm rate: runs pairs of `--quick` matrices of the
# same build and compares each pair, counting timing verdicts. Then does
# the same the way the bench workflow does: base and head runs
# interleaved (A B A B ..., ROUNDS rounds), each side merged, then
# compared. Usage:
#   scripts/false-alarm.sh [PAIRS] [INTERLEAVED] [OUT_DIR] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pairs=${1:-3}
interleaved=${2:-1}
out=${3:-$root/target/false-alarm}
rounds=${4:-4}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p wirebench
bin=$root/target/release/wirebench
rm -rf "$out"
mkdir -p "$out"
summarize() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
counts = dict((v, int(n)) for n, v in re.findall(r"(\d+) (regressed|broken|changed|improved|unchanged|inconclusive)", text))
print("  " + ", ".join(f"{v} {k}" for k, v in counts.items()))
for line in text.splitlines():
    if line.startswith("| regressed") or line.startswith("| broken") or line.startswith("| changed"):
        print("  " + line)
PY
}
for i in $(seq 1 "$pairs"); do
  "$bin" run --quick --quiet --out "$out/pair$i-a" >/dev/null || true
  "$bin" run --quick --quiet --out "$out/pair$i-b" >/dev/null || true
  set +e
  "$bin" compare "$out/pair$i-a/results.json" "$out/pair$i-b/results.json" > "$out/pair$i.md"
  code=$?
  set -e
  echo "pair $i: exit $code"
  summarize "$out/pair$i.md"
done
for j in $(seq 1 "$interleaved"); do
  for round in $(seq 1 "$rounds"); do
    "$bin" run --quick --quiet --out "$out/inter$j-a$round" >/dev/null || true
    "$bin" run --quick --quiet --out "$out/inter$j-b$round" >/dev/null || true
  done
  "$bin" merge "$out/inter$j"-a*/results.json -o "$out/inter$j-a.json" >/dev/null
  "$bin" merge "$out/inter$j"-b*/results.json -o "$out/inter$j-b.json" >/dev/null
  set +e
  "$bin" compare "$out/inter$j-a.json" "$out/inter$j-b.json" > "$out/interleaved$j.md"
  code=$?
  set -e
  echo "interleaved $j ($rounds rounds of A B, each side merged): exit $code"
  summarize "$out/interleaved$j.md"
done
