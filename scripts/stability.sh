#!/usr/bin/env bash
# Runs two back-to-back `--quick` matrices and reports how many ok cells
# agree on p50 within 10% (the harness's stability target). Usage:
#   scripts/stability.sh [OUT_DIR]       (builds the release binary first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/stability}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wirebench
bin=$root/target/release/wirebench
rm -rf "$out"
for run in a b; do
  "$bin" run --quick --quiet --out "$out/$run" >/dev/null || true
done
python3 - "$out/a/results.json" "$out/b/results.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["cells"] for p in sys.argv[1:3])
rows = []
for key, ca in a.items():
    cb = b.get(key)
    if not cb or ca["status"] != "ok" or cb["status"] != "ok":
        continue
    pa, pb = ca["metrics"]["latency"]["p50"], cb["metrics"]["latency"]["p50"]
    rows.append((abs(pb / pa - 1), key, pa, pb))
if not rows:
    sys.exit("no cell is ok in both runs: nothing to compare")
rows.sort(reverse=True)
within = sum(1 for d, *_ in rows if d <= 0.10)
print(f"{within} of {len(rows)} ok cells agree on p50 within 10% ({100 * within / len(rows):.1f}%)")
for label, pred in [("c1", lambda k: k.endswith("/c1")), ("c64", lambda k: k.endswith("/c64"))]:
    sub = [r for r in rows if pred(r[1])]
    ok = sum(1 for d, *_ in sub if d <= 0.10)
    print(f"  {label}: {ok} of {len(sub)}")
print("largest differences:")
for d, key, pa, pb in rows[:12]:
    print(f"  {key:40} {pa / 1e3:10.1f}us {pb / 1e3:10.1f}us {100 * d:6.1f}%")
PY
