#!/usr/bin/env bash
# How far the CI gate can be trusted, from real runs of one build on this
# machine: false alarms of idle pairs, and detection of real slowdowns made
# with the test-only injected server delay (`--server-inject-delay`, a
# busy-wait in every call of the server).
#
#   scripts/false-alarm.sh idle PAIRS PASSES [OUT]
#       PAIRS pairs of `--quick --passes PASSES` runs, A then B, each pair
#       compared; prints one line per pair and a total.
#   scripts/false-alarm.sh detect CASE REPS PASSES [OUT]
#       REPS repetitions of: a base run, a slowed run, compare. CASE:
#         double   every call slowed by the median c1 p50 of the base run
#                  (about 2x at the median c1 cell); flagged = exit 3
#         subset   json and bincode calls slowed by 20% of the median c1
#                  p50 of those formats' cells; flagged = exactly those
#                  formats' cells regressed, no other cell
#         uniform  every call slowed by 20% of the median c1 p50; flagged =
#                  the all-cells (*) row of p50 regressed
#
# Every run is `wirebench run --quick` (the gate's matrix); the quick
# matrix's own passes are used unless PASSES says otherwise. Results stay
# in OUT (default target/false-alarm) for a second look.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:?usage: false-alarm.sh idle PAIRS PASSES [OUT] | detect CASE REPS PASSES [OUT]}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p wirebench
bin=$root/target/release/wirebench

run() { # out passes [extra flags]
  local out=$1 passes=$2
  shift 2
  "$bin" run --quick --quiet --passes "$passes" --out "$out" "$@" >/dev/null || true
}

verdicts() { # comparison.md -> "regressed N, improved N, ..."
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
counts = dict((v, int(n)) for n, v in re.findall(r"(\d+) (regressed|broken|changed|improved|unchanged|inconclusive)", text))
print(", ".join(f"{v} {k}" for k, v in counts.items()))
PY
}

median_c1_p50() { # results.json [formats] -> ns
  python3 - "$@" <<'PY'
import json, statistics, sys
cells = json.load(open(sys.argv[1]))["cells"].values()
formats = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None
p50 = [c["metrics"]["latency"]["p50"] for c in cells
       if c["status"] == "ok" and c["format"] != "raw" and c["transport"] != "inproc"
       and c["key"].endswith("/c1") and (formats is None or c["format"] in formats)]
print(int(statistics.median(p50)))
PY
}

flagged() { # comparison dir -> the regressed rows as "key:metric"
  python3 - "$1/comparison.md" <<'PY'
import sys
for line in open(sys.argv[1]):
    cols = [c.strip() for c in line.split("|")]
    if len(cols) > 3 and "regressed" in cols:
        print(cols[1] + ":" + cols[2])
PY
}

case "$what" in
  idle)
    pairs=${2:?PAIRS}
    passes=${3:?PASSES}
    out=${4:-$root/target/false-alarm}/idle-p$passes
    rm -rf "$out" && mkdir -p "$out"
    alarms=0
    for i in $(seq 1 "$pairs"); do
      run "$out/$i-a" "$passes"
      run "$out/$i-b" "$passes"
      set +e
      "$bin" compare "$out/$i-a/results.json" "$out/$i-b/results.json" --out "$out/$i" > "$out/$i.md"
      code=$?
      set -e
      [ "$code" = 3 ] && alarms=$((alarms + 1))
      echo "idle pair $i (passes $passes): exit $code: $(verdicts "$out/$i.md")"
    done
    echo "idle, passes $passes: $alarms of $pairs pairs raised a false alarm (exit 3)"
    ;;
  detect)
    case_=${2:?CASE}
    reps=${3:?REPS}
    passes=${4:?PASSES}
    out=${5:-$root/target/false-alarm}/detect-$case_-p$passes
    rm -rf "$out" && mkdir -p "$out"
    caught=0
    for i in $(seq 1 "$reps"); do
      run "$out/$i-base" "$passes"
      case "$case_" in
        double) delay=$(median_c1_p50 "$out/$i-base/results.json"); inject="${delay}ns" ;;
        uniform) delay=$(( $(median_c1_p50 "$out/$i-base/results.json") / 5 )); inject="${delay}ns" ;;
        subset) delay=$(( $(median_c1_p50 "$out/$i-base/results.json" json,bincode) / 5 )); inject="${delay}ns:json,bincode" ;;
        *) echo "unknown case $case_: double, subset or uniform" >&2; exit 2 ;;
      esac
      run "$out/$i-slow" "$passes" --server-inject-delay "$inject"
      set +e
      "$bin" compare "$out/$i-base/results.json" "$out/$i-slow/results.json" --out "$out/$i" > "$out/$i.md"
      code=$?
      set -e
      rows=$(flagged "$out/$i")
      case "$case_" in
        double) ok=$([ "$code" = 3 ] && echo yes || echo no) ;;
        uniform) ok=$(echo "$rows" | grep -q '^\*.*:p50$' && echo yes || echo no) ;;
        subset)
          cells=$(echo "$rows" | grep -v '^\*' | cut -d: -f1 | sort -u)
          others=$(echo "$cells" | grep -v -E '/(json|bincode)/' | grep -c . || true)
          ours=$(echo "$cells" | grep -c -E '/(json|bincode)/' || true)
          ok=$([ "$ours" -gt 0 ] && [ "$others" = 0 ] && echo yes || echo no)
          ;;
      esac
      [ "$ok" = yes ] && caught=$((caught + 1))
      echo "$case_ $i (inject $inject, passes $passes): exit $code, flagged: $ok; $(verdicts "$out/$i.md")"
      [ "$case_" = subset ] && echo "  cells of json/bincode flagged: $ours, other cells flagged: $others"
    done
    echo "$case_, passes $passes: detected in $caught of $reps"
    ;;
  *)
    echo "usage: false-alarm.sh idle PAIRS PASSES [OUT] | detect CASE REPS PASSES [OUT]" >&2
    exit 2
    ;;
esac
