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
# Every run is `wirebench run --quick --passes PASSES` (the gate's
# matrix). ROUNDS=N makes each side N runs in ABBA order (A B, B A, A B,
# ..., as .github/workflows/bench.yml runs base and head), merged with
# `wirebench merge` before the comparison; ROUNDS=1 (the default) is one
# run a side. Results stay in OUT (default target/false-alarm) for a
# second look.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:?usage: false-alarm.sh idle PAIRS PASSES [OUT] | detect CASE REPS PASSES [OUT]}
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin wirebench
bin=$root/target/release/wirebench

rounds=${ROUNDS:-1}
case "$rounds" in '' | *[!0-9]* | 0) echo "ROUNDS is a number of runs a side, 1 or more, not $rounds" >&2; exit 2 ;; esac

# The rest of a pair after A's first run: B's first run (flags $4..), then
# the other rounds in ABBA order (B A, A B, B A, ...), and each side's
# runs merged into $1.json and $2.json.
finish() { # a b passes [B's extra flags]
  local a=$1 b=$2 passes=$3 r
  shift 3
  run "$b-1" "$passes" "$@"
  for r in $(seq 2 "$rounds"); do
    if [ $((r % 2)) = 0 ]; then
      run "$b-$r" "$passes" "$@"
      run "$a-$r" "$passes"
    else
      run "$a-$r" "$passes"
      run "$b-$r" "$passes" "$@"
    fi
  done
  if [ "$rounds" -gt 1 ]; then
    "$bin" merge "$a"-[0-9]*/results.json --output "$a.json" >/dev/null
    "$bin" merge "$b"-[0-9]*/results.json --output "$b.json" >/dev/null
  else
    cp "$a-1/results.json" "$a.json"
    cp "$b-1/results.json" "$b.json"
  fi
}

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

largest() { # comparison.md -> the largest cell move per metric
  python3 - "$1" <<'PY'
import sys
rows, on = [], False
for line in open(sys.argv[1]):
    if "largest cell move" in line:
        on = True
        continue
    cols = [c.strip() for c in line.strip().strip("|").split("|")]
    if on and len(cols) == 4 and not set(cols[0]) <= set("-: "):
        rows.append(f"{cols[0]} {cols[3].replace('`', '')}")
    elif on and rows:
        break
print("largest moves: " + "; ".join(rows))
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

flagged() { # comparison dir -> the regressed rows as "key:metric" ("*:metric" for the all-cells rows)
  python3 - "$1/comparison.md" <<'PY'
import sys
table = None
for line in open(sys.argv[1]):
    if line.startswith("| metric | verdict |"):
        table = "*"
        continue
    if line.startswith("| verdict | cell |"):
        table = "cells"
        continue
    if not line.startswith("|"):
        table = None if line.strip() else table
        continue
    cols = [c.strip() for c in line.strip().strip("|").split("|")]
    if table == "*" and len(cols) > 1 and cols[1] == "regressed":
        print("*:" + cols[0])
    elif table == "cells" and len(cols) > 2 and cols[0] == "regressed":
        print(cols[1].strip("`") + ":" + cols[2])
PY
}

case "$what" in
  idle)
    pairs=${2:?PAIRS}
    passes=${3:?PASSES}
    out=${4:-$root/target/false-alarm}/idle-p$passes-r$rounds
    rm -rf "$out" && mkdir -p "$out"
    alarms=0
    for i in $(seq 1 "$pairs"); do
      run "$out/$i-a-1" "$passes"
      finish "$out/$i-a" "$out/$i-b" "$passes"
      set +e
      "$bin" compare "$out/$i-a.json" "$out/$i-b.json" --out "$out/$i" > "$out/$i.md"
      code=$?
      set -e
      [ "$code" = 3 ] && alarms=$((alarms + 1))
      echo "idle pair $i (passes $passes, rounds $rounds): exit $code: $(verdicts "$out/$i.md"); $(largest "$out/$i.md")"
    done
    echo "idle, passes $passes, rounds $rounds: $alarms of $pairs pairs raised a false alarm (exit 3)"
    ;;
  detect)
    case_=${2:?CASE}
    reps=${3:?REPS}
    passes=${4:?PASSES}
    out=${5:-$root/target/false-alarm}/detect-$case_-p$passes-r$rounds
    rm -rf "$out" && mkdir -p "$out"
    caught=0
    for i in $(seq 1 "$reps"); do
      run "$out/$i-base-1" "$passes"
      case "$case_" in
        double) delay=$(median_c1_p50 "$out/$i-base-1/results.json"); inject="${delay}ns" ;;
        uniform) delay=$(( $(median_c1_p50 "$out/$i-base-1/results.json") / 5 )); inject="${delay}ns" ;;
        subset) delay=$(( $(median_c1_p50 "$out/$i-base-1/results.json" json,bincode) / 5 )); inject="${delay}ns:json,bincode" ;;
        *) echo "unknown case $case_: double, subset or uniform" >&2; exit 2 ;;
      esac
      finish "$out/$i-base" "$out/$i-slow" "$passes" --server-inject-delay "$inject"
      set +e
      "$bin" compare "$out/$i-base.json" "$out/$i-slow.json" --out "$out/$i" > "$out/$i.md"
      code=$?
      set -e
      rows=$(flagged "$out/$i")
      case "$case_" in
        double) ok=$([ "$code" = 3 ] && echo yes || echo no) ;;
        uniform) ok=$(echo "$rows" | grep -q '^\*:p50$' && echo yes || echo no) ;;
        subset)
          cells=$(echo "$rows" | grep -v '^\*:' | cut -d: -f1 | sort -u)
          others=$(echo "$cells" | grep -v -E '/(json|bincode)/' | grep -c . || true)
          ours=$(echo "$cells" | grep -c -E '/(json|bincode)/' || true)
          ok=$([ "$ours" -gt 0 ] && [ "$others" = 0 ] && echo yes || echo no)
          ;;
      esac
      [ "$ok" = yes ] && caught=$((caught + 1))
      echo "$case_ $i (inject $inject, passes $passes, rounds $rounds): exit $code, flagged: $ok; $(verdicts "$out/$i.md")"
      [ "$case_" = subset ] && echo "  cells of json/bincode flagged: $ours, other cells flagged: $others"
    done
    echo "$case_, passes $passes, rounds $rounds: detected in $caught of $reps"
    ;;
  *)
    echo "usage: false-alarm.sh idle PAIRS PASSES [OUT] | detect CASE REPS PASSES [OUT]" >&2
    exit 2
    ;;
esac
