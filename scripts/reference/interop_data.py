"""What the framework interop clients send and how they report: a small
batch of records covering every field's cases (a location and none,
non-ASCII text, empty and several tags and attributes, extreme integers),
its expected Digest from checksum.py, and the check/exit helpers.

Standard library only; imported by interop_capnp_rpc.py and
interop_jsonrpc.py next to this file.
"""

import struct
import sys

from checksum import digest

I64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


RECORDS = [
    dict(id=1, user_id=7, timestamp_micros=1_700_000_000_000_001, name="Ada", email="ada@example.org", kind=1,
         score=0.5, weight=f32(1.25), active=True, tags=["a", "bb"], attributes=[("k", "v"), ("x", "")],
         location=(51.5, -0.125, "London"), fingerprint=bytes(range(16))),
    dict(id=U64_MAX, user_id=(1 << 32) - 1, timestamp_micros=-(1 << 63), name="Zoë — 東京", email="", kind=4,
         score=-1e300, weight=f32(-3.5), active=False, tags=[], attributes=[], location=None,
         fingerprint=b"\xff" * 16),
    dict(id=0, user_id=0, timestamp_micros=0, name="", email="e@x", kind=0, score=0.0, weight=0.0, active=True,
         tags=["only"], attributes=[("ключ", "значение")], location=(-33.9, 151.2, "Sydney"), fingerprint=b""),
]

EXPECTED_DIGEST = digest(RECORDS)

KINDS = ["unknown", "click", "view", "purchase", "refund"]

failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(what)


def finish(name):
    if failures:
        print(f"{name}: {len(failures)} checks failed", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: all checks passed")
