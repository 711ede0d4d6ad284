#!/usr/bin/env bash
# How well whole-call counts repeat: runs the same `wirebench instructions`
# RUNS times (default 3) and prints, per transport, the largest difference
# between any two runs of any cell, for instructions and system calls per
# call, client and server: the README's repeatability table. Usage:
#   scripts/call-count-repeat.sh [RUNS] [-- INSTRUCTIONS-OPTIONS..]
# (default options: the quick matrix's workloads, every format and
# transport, `--calls 20`; builds the release binary first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
bin=${WIREBENCH_BIN:-$root/target/release/wirebench}
if [ -z "${WIREBENCH_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wirebench
fi
out=$root/target/call-count-repeat
rm -rf "$out"
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  "$bin" instructions "$@" --out "$out/$run.json" >/dev/null
done
python3 - "$out"/*.json <<'PY'
import json, sys
from collections import defaultdict
runs = [json.load(open(p))["instructions"] for p in sys.argv[1:]]
# transport -> (metric, side) -> (largest relative difference, its key, absolute difference)
worst = defaultdict(dict)
cells = defaultdict(set)
for metric, field in [("instructions", "counts"), ("syscalls", "syscalls")]:
    keys = set.intersection(*(set(k for k in r.get(field, {}) if "/call/" in k) for r in runs))
    for key in keys:
        workload, fmt, transport, _, side = key.split("/")
        cells[transport].add((workload, fmt))
        values = [r[field][key] for r in runs]
        lo, hi = min(values), max(values)
        rel = (hi - lo) / lo if lo > 0 else (0.0 if hi == 0 else float("inf"))
        best = worst[transport].get((metric, side))
        if best is None or rel > best[0]:
            worst[transport][(metric, side)] = (rel, key, hi - lo)
if not worst:
    sys.exit("no whole-call counts in the runs: nothing to compare")
print(f"{len(runs)} runs; largest difference between runs of any cell (relative, absolute per call)\n")
print("| transport | cells | instructions, client | instructions, server | syscalls, client | syscalls, server |")
print("|---|---:|---:|---:|---:|---:|")
def show(entry, metric):
    if entry is None:
        return "-"
    rel, _, diff = entry
    return f"{100 * rel:.2f}% ({diff:.0f})" if metric == "instructions" else f"{100 * rel:.2f}% ({diff:.2f})"
for transport in sorted(worst):
    w = worst[transport]
    row = [show(w.get((m, s)), m) for m in ("instructions", "syscalls") for s in ("client", "server")]
    print(f"| {transport} | {len(cells[transport])} | " + " | ".join(row) + " |")
PY
