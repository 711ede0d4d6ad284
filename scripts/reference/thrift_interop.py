"""Apache Thrift for Python (PyPI `thrift`, code from `thrift --gen py` of
formats/schemas/bench.thrift) against wirebench's Thrift RPC rows.

    thrift_interop.py client HOST:PORT --protocol compact|binary --name ROW
        Python's generated Bench client, framed transport, calls a
        wirebench server: Multiply, Echo and Digest with values of its own
        (the Digest answer checked against checksum.py, written from
        formats/src/checksum.rs's documentation), the declared BenchError
        for Multiply's overflow and for a record outside the schema, each
        on the same connection as the calls after it.

    thrift_interop.py server --protocol compact|binary --name ROW
        A Python Thrift server (TThreadedServer, framed transport)
        implementing Bench with checksum.py, for wirebench's own client to
        call (`wirebench run --connect ROW=HOST:PORT`). Prints
        `listening ROW 127.0.0.1:PORT` once it accepts connections.

Needs PYTHONPATH to hold thrift's generated package (wirebench_thrift) and
this directory (checksum.py).
"""

import argparse
import random
import struct
import sys

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.server import TServer
from thrift.transport import TSocket, TTransport

import checksum
from wirebench_thrift import Bench
from wirebench_thrift import ttypes as TT

U32, U64 = (1 << 32) - 1, (1 << 64) - 1
OUT_OF_RANGE, INVALID_ARGUMENT = 11, 3

PROTOCOLS = {
    "compact": (TCompactProtocol.TCompactProtocol, TCompactProtocol.TCompactProtocolFactory),
    "binary": (TBinaryProtocol.TBinaryProtocol, TBinaryProtocol.TBinaryProtocolFactory),
}


def signed(value, bits):
    """The contract's unsigned values travel as the signed type of their width."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def model(r):
    """A Thrift record as checksum.py's dict."""
    return dict(id=r.id & U64, user_id=r.user_id & U32, timestamp_micros=r.timestamp_micros, name=r.name,
                email=r.email, kind=r.kind, score=r.score, weight=r.weight, active=r.active, tags=r.tags,
                attributes=[(a.key, a.value) for a in r.attributes],
                location=None if r.location is None else (r.location.latitude, r.location.longitude,
                                                          r.location.city),
                fingerprint=r.fingerprint)


def records(n, seed):
    """Records of Python's own making: the edges of every field (ids over
    2^63, negative times, non-ASCII text, empty lists, -0.0, no location)."""
    rng = random.Random(seed)
    words = ["a", "bc", "München", "東京", "", "x" * 40, "emoji 🦀"]
    out = []
    for i in range(n):
        out.append(TT.Record(
            id=signed(rng.choice([i, U64, 1 << 63, rng.getrandbits(64)]), 64),
            user_id=signed(rng.choice([0, U32, rng.getrandbits(32)]), 32),
            timestamp_micros=rng.choice([-5, 0, 1_700_000_000_000_000 + i, -(1 << 63)]),
            name=rng.choice(words), email=f"user{i}@example.com",
            kind=rng.randrange(5),
            score=rng.choice([0.0, -0.0, 1.5, rng.uniform(-1e9, 1e9)]),
            weight=f32(rng.uniform(-10, 10)),
            active=rng.random() < 0.5,
            tags=[rng.choice(words) for _ in range(rng.randrange(4))],
            attributes=[TT.Attribute(key=rng.choice(words), value=rng.choice(words))
                        for _ in range(rng.randrange(3))],
            location=None if rng.random() < 0.3 else TT.Location(latitude=rng.uniform(-90, 90),
                                                                 longitude=rng.uniform(-180, 180),
                                                                 city=rng.choice(words)),
            fingerprint=rng.randbytes(rng.randrange(17))))
    return out


def expect_error(call, code, what):
    try:
        call()
    except TT.BenchError as e:
        if e.code != code:
            raise AssertionError(f"{what}: BenchError code {e.code}, expected {code}: {e.message}")
        return e
    raise AssertionError(f"{what}: no BenchError")


def run_client(address, protocol, name):
    host, port = address.rsplit(":", 1)
    socket = TSocket.TSocket(host, int(port))
    socket.setTimeout(60_000)
    transport = TTransport.TFramedTransport(socket)
    client = Bench.Client(PROTOCOLS[protocol][0](transport))
    transport.open()
    try:
        for a, b in [(6, 7), (-3, 1 << 40), (0, -(1 << 63)), (-(1 << 62), 2)]:
            got = client.Multiply(TT.MultiplyRequest(a=a, b=b)).product
            assert got == a * b, f"Multiply({a}, {b}) = {got}"
        e = expect_error(lambda: client.Multiply(TT.MultiplyRequest(a=(1 << 63) - 1, b=2)), OUT_OF_RANGE,
                         "Multiply overflow")
        assert "overflow" in e.message, e.message
        assert client.Multiply(TT.MultiplyRequest(a=2, b=3)).product == 6, "after the overflow"

        rng = random.Random(20240612)
        for payload in [b"", bytes(range(256)), rng.randbytes(1 << 20)]:
            got = client.Echo(TT.EchoRequest(payload=payload)).payload
            assert got == payload, f"Echo of {len(payload)} bytes came back as {len(got)} different bytes"

        for n in [0, 1, 100, 1000]:
            batch = records(n, n)
            want = checksum.digest([model(r) for r in batch])
            reply = client.Digest(TT.Batch(records=batch))
            got = (reply.records & U32, reply.checksum & U64)
            assert got == want, f"Digest of {n} records: {got}, checksum.py says {want}"
        bad = records(3, 7)
        bad[1].kind = 77
        expect_error(lambda: client.Digest(TT.Batch(records=bad)), INVALID_ARGUMENT, "a kind outside the schema")
        batch = records(10, 10)
        want = checksum.digest([model(r) for r in batch])
        reply = client.Digest(TT.Batch(records=batch))
        assert (reply.records & U32, reply.checksum & U64) == want, "Digest after the refused batch"
    finally:
        transport.close()
    print(f"thrift_interop: Python's Thrift client ({protocol}) called {name} at {address}: "
          "Multiply, Echo (0 B, 256 B, 1 MiB), Digest (0, 1, 100, 1000 records), "
          "BenchError for overflow and for a bad kind: ok")


class Handler:
    """Bench in Python: checksum.py computes the digest."""

    def Multiply(self, request):
        product = request.a * request.b
        if not -(1 << 63) <= product < 1 << 63:
            raise TT.BenchError(code=OUT_OF_RANGE, message=f"{request.a} * {request.b} overflows a 64-bit integer")
        return TT.MultiplyReply(product=product)

    def Echo(self, request):
        return TT.EchoReply(payload=request.payload)

    def Digest(self, batch):
        for i, r in enumerate(batch.records):
            if not 0 <= r.kind <= 4:
                raise TT.BenchError(code=INVALID_ARGUMENT, message=f"record {i}: kind {r.kind} is not in the schema")
            if f32(r.weight) != r.weight:
                raise TT.BenchError(code=INVALID_ARGUMENT,
                                    message=f"record {i}: weight {r.weight} is not a 32-bit float")
        n, total = checksum.digest([model(r) for r in batch.records])
        return TT.DigestReply(records=signed(n, 32), checksum=signed(total, 64))


def run_server(protocol, name):
    transport = TSocket.TServerSocket(host="127.0.0.1", port=0)
    transport.listen()
    port = transport.handle.getsockname()[1]
    # serve() calls listen() again, which would bind a second socket: this
    # one is bound already.
    transport.listen = lambda: None
    server = TServer.TThreadedServer(Bench.Processor(Handler()), transport, TTransport.TFramedTransportFactory(),
                                     PROTOCOLS[protocol][1](), daemon=True)
    print(f"listening {name} 127.0.0.1:{port}", flush=True)
    server.serve()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["client", "server"])
    parser.add_argument("address", nargs="?")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), required=True)
    parser.add_argument("--name", required=True, help="the wirebench row, for messages")
    args = parser.parse_args()
    if args.role == "client":
        if not args.address:
            parser.error("client needs HOST:PORT")
        run_client(args.address, args.protocol, args.name)
    else:
        run_server(args.protocol, args.name)


if __name__ == "__main__":
    sys.exit(main())
