#!/usr/bin/env python3
"""pycapnp (Python on the C++ Cap'n Proto library, its RPC system and
two-party network) calls wirebench's capnp-rpc server: the Bench interface
of formats/schemas/bench.capnp, all three methods, each answer checked
(Digest against checksum.py), and Multiply's overflow as a Cap'n Proto
exception of type FAILED whose reason starts with OUT_OF_RANGE.

Usage: interop_capnp_rpc.py <repository root> HOST:PORT
Prints one line per check and exits non-zero if any failed.
"""

import asyncio
import sys
from pathlib import Path

import capnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interop_data import EXPECTED_DIGEST, I64_MAX, RECORDS, check, finish  # noqa: E402

root, address = Path(sys.argv[1]), sys.argv[2]
host, port = address.rsplit(":", 1)
BENCH = capnp.load(str(root / "formats/schemas/bench.capnp"))


def fill(record, r):
    record.id = r["id"]
    record.userId = r["user_id"]
    record.timestampMicros = r["timestamp_micros"]
    record.name = r["name"]
    record.email = r["email"]
    record.kind = r["kind"]
    record.score = r["score"]
    record.weight = r["weight"]
    record.active = r["active"]
    tags = record.init("tags", len(r["tags"]))
    for i, tag in enumerate(r["tags"]):
        tags[i] = tag
    attributes = record.init("attributes", len(r["attributes"]))
    for i, (key, value) in enumerate(r["attributes"]):
        attributes[i].key = key
        attributes[i].value = value
    if r["location"] is not None:
        location = record.init("location")
        location.latitude, location.longitude, location.city = r["location"]
    record.fingerprint = r["fingerprint"]


async def main():
    stream = await capnp.AsyncIoStream.create_connection(host=host, port=int(port))
    client = capnp.TwoPartyClient(stream)
    bench = client.bootstrap().cast_as(BENCH.Bench)

    reply = await bench.multiply(a=6, b=-7)
    check("multiply 6 * -7", reply.product == -42, reply.product)
    reply = await bench.multiply(a=I64_MAX, b=1)
    check("multiply i64::MAX * 1", reply.product == I64_MAX, reply.product)

    for size in (0, 1, 1024, 200_000):
        payload = bytes((i * 31 + 7) % 256 for i in range(size))
        reply = await bench.echo(payload=payload)
        check(f"echo {size} bytes", bytes(reply.payload) == payload, len(bytes(reply.payload)))

    request = bench.digest_request()
    records = request.init("records", len(RECORDS))
    for i, r in enumerate(RECORDS):
        fill(records[i], r)
    reply = await request.send()
    got = (reply.records, reply.checksum)
    check("digest of 3 records = checksum.py's", got == EXPECTED_DIGEST, f"{got} != {EXPECTED_DIGEST}")
    reply = await bench.digest(records=[])
    check("digest of no records", (reply.records, reply.checksum) == __import__("checksum").digest([]),
          (reply.records, reply.checksum))

    try:
        reply = await bench.multiply(a=I64_MAX, b=2)
        check("overflow is an exception", False, f"got product {reply.product}")
    except capnp.KjException as e:
        check("overflow is an exception of type FAILED", str(e.type) == "FAILED", e.type)
        check("its reason starts with OUT_OF_RANGE", "OUT_OF_RANGE: " in e.description, e.description)
        check("and says it overflows", "overflows" in e.description, e.description)

    # The connection survives the exception.
    reply = await bench.multiply(a=3, b=4)
    check("multiply after the exception", reply.product == 12, reply.product)

    # Many calls in flight on the one connection, each answered right.
    replies = await asyncio.gather(*(bench.multiply(a=i, b=1000) for i in range(200)))
    check("200 calls in flight matched", [r.product for r in replies] == [i * 1000 for i in range(200)])


asyncio.run(capnp.run(main()))
finish("capnp-rpc interop (pycapnp client)")
