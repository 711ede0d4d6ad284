#!/usr/bin/env python3
"""Python's zerorpc package (PyPI zerorpc 0.6, on pyzmq's libzmq and gevent)
against wirebench's zerorpc row, in both directions.

Usage:
    zerorpc_peer.py client HOST:PORT [--held SECONDS]
        zerorpc.Client calls our server: every Bench method with answers
        checked (Digest against checksum.py), Multiply's overflow as
        zerorpc's OverflowError, zerorpc's errors for bad calls, its
        introspection calls, its command-line tool, and many calls in
        flight. With --held, the first call is made while the server is
        stalled for about that long (wirebench serve --stall): it succeeds
        only if the server heartbeats the waiting channel, as zerorpc's
        client gives up on a silent server after 15 to 20 seconds.
    zerorpc_peer.py server HOST:PORT [--slow-first SECONDS]
        zerorpc.Server serves Bench (port 0: any free port) and prints
        `listening zerorpc HOST:PORT`. Digest is computed by checksum.py.
        With --slow-first, the first call sleeps that long before it is
        answered: our client must heartbeat, or this server drops the call
        as lost after 15 to 20 seconds.

The Bench methods take one argument and return one value, each the map of
wirebench's msgpack format (docs/protocol.md, the zerorpc section).
Prints one line per check and exits non-zero if any failed.
"""

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gevent
import zerorpc
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checksum import digest as reference_digest  # noqa: E402

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
M64 = (1 << 64) - 1
failures = 0


def check(what, ok, detail=""):
    global failures
    if not ok:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} zerorpc {what}{': ' + str(detail) if detail else ''}", flush=True)
    return ok


def to_checksum_record(r):
    """A record as our msgpack maps carry it, in checksum.py's shape."""
    for field, kind in [("id", int), ("user_id", int), ("timestamp_micros", int), ("name", str), ("email", str),
                        ("kind", int), ("score", float), ("weight", float), ("active", bool), ("tags", list),
                        ("attributes", list), ("fingerprint", bytes)]:
        if not isinstance(r[field], kind):
            raise TypeError(f"record field {field} is {type(r[field]).__name__}, not {kind.__name__}")
    location = r["location"]
    return dict(r, attributes=[(a["key"], a["value"]) for a in r["attributes"]],
                location=None if location is None else (location["latitude"], location["longitude"],
                                                        location["city"]))


class Bench(object):
    """The Bench service as a Python zerorpc user writes it."""

    def __init__(self, slow_first=0.0):
        self.slow_first = slow_first

    def _maybe_slow(self):
        if self.slow_first:
            delay, self.slow_first = self.slow_first, 0.0
            gevent.sleep(delay)

    def multiply(self, request):
        """Multiply {a, b} -> {product}; OverflowError on 64-bit overflow."""
        self._maybe_slow()
        a, b = request["a"], request["b"]
        product = a * b
        if not I64_MIN <= product <= I64_MAX:
            raise OverflowError(f"{a} * {b} overflows a 64-bit integer")
        return {"product": product}

    def echo(self, request):
        """Echo {payload} -> {payload}."""
        self._maybe_slow()
        payload = request["payload"]
        if not isinstance(payload, bytes):
            raise TypeError(f"payload is {type(payload).__name__}, not bytes")
        return {"payload": payload}

    def digest(self, request):
        """Digest {records} -> {records, checksum}."""
        self._maybe_slow()
        records, checksum = reference_digest(to_checksum_record(r) for r in request["records"])
        return {"records": records, "checksum": checksum}


def make_records(n, seed):
    rng = random.Random(seed)
    records = []
    for i in range(n):
        records.append({
            "id": rng.randrange(0, 1 << 64),
            "user_id": rng.randrange(0, 1 << 32),
            "timestamp_micros": rng.randrange(-(1 << 62), 1 << 62),
            "name": rng.choice(["Ada Lovelace", "Grace Hopper", "Émilie du Châtelet", ""]),
            "email": f"user{i}@example.com",
            "kind": rng.randrange(0, 5),
            "score": rng.uniform(-1e6, 1e6),
            "weight": rng.choice([0.25, 1.5, -0.0, 0.1]),
            "active": rng.random() < 0.5,
            "tags": [rng.choice(["a", "bc", "ünï", "x" * 40]) for _ in range(rng.randrange(0, 4))],
            "attributes": [{"key": f"k{j}", "value": f"v{rng.randrange(100)}"} for j in range(rng.randrange(0, 3))],
            "location": None if rng.random() < 0.3 else {"latitude": rng.uniform(-90, 90),
                                                          "longitude": rng.uniform(-180, 180),
                                                          "city": rng.choice(["München", "Lyon", "東京"])},
            "fingerprint": bytes(rng.randrange(256) for _ in range(16)),
        })
    return records


def remote_error(call):
    try:
        result = call()
    except zerorpc.RemoteError as e:
        return e
    return f"no error, the result {result!r}"


def run_client(address, held):
    endpoint = f"tcp://{address}"
    client = zerorpc.Client(timeout=60 if held else 10)
    client.connect(endpoint)

    if held:
        started = time.monotonic()
        reply = client.multiply({"a": 6, "b": -7})
        waited = time.monotonic() - started
        check(f"a call held {waited:.1f}s by a stalled server, kept alive by its heartbeats",
              reply == {"product": -42} and waited > 20, f"{reply!r} after {waited:.1f}s")
        client.close()
        return

    check("multiply", client.multiply({"a": 6, "b": -7}) == {"product": -42})
    check("multiply at the edges", client.multiply({"a": I64_MIN, "b": 1}) == {"product": I64_MIN})
    e = remote_error(lambda: client.multiply({"a": I64_MAX, "b": 2}))
    check("multiply overflow is OverflowError", isinstance(e, zerorpc.RemoteError) and e.name == "OverflowError"
          and "overflows" in e.msg, e)
    for size in [0, 16, 1024, 1 << 20]:
        payload = os.urandom(size)
        reply = client.echo({"payload": payload})
        check(f"echo {size} bytes", isinstance(reply["payload"], bytes) and reply["payload"] == payload)
    for n in [0, 1, 100]:
        records = make_records(n, seed=n)
        want_records, want_checksum = reference_digest(to_checksum_record(r) for r in records)
        reply = client.digest({"records": records})
        check(f"digest {n} records", reply == {"records": want_records, "checksum": want_checksum},
              f"{reply!r} != {want_checksum:#x}")

    e = remote_error(lambda: client("nonexistent", {}))
    check("an unknown method is NameError", isinstance(e, zerorpc.RemoteError) and e.name == "NameError", e)
    e = remote_error(lambda: client.multiply(1, 2))
    check("two arguments are refused", isinstance(e, zerorpc.RemoteError) and e.name == "ValueError"
          and "1 positional argument" in e.msg, e)
    e = remote_error(lambda: client.multiply({"a": "six", "b": 7}))
    check("an undecodable argument is ValueError", isinstance(e, zerorpc.RemoteError) and e.name == "ValueError", e)
    e = remote_error(lambda: client.echo({"payload": "text, not bytes"}))
    check("a str payload is refused", isinstance(e, zerorpc.RemoteError) and e.name == "ValueError", e)

    check("_zerorpc_ping", client._zerorpc_ping() == ["pong", "Bench"])
    check("_zerorpc_list", sorted(client._zerorpc_list()) == ["digest", "echo", "multiply"])
    inspect = client._zerorpc_inspect()
    check("_zerorpc_inspect", inspect["name"] == "Bench" and sorted(inspect["methods"]) == ["digest", "echo", "multiply"])

    # Many calls in flight on one client, each its own answer.
    pending = [(i, client("multiply", {"a": i, "b": 1000}, **{"async": True})) for i in range(200)]
    check("200 calls in flight", all(r.get() == {"product": i * 1000} for i, r in pending))
    client.close()

    cli = shutil.which("zerorpc")
    if check("the zerorpc command-line tool is installed", cli is not None):
        # Not `zerorpc --json ENDPOINT multiply ...`: zerorpc 0.6.3's cli.py
        # prints a result through collections.Iterator, which Python 3.10
        # removed, so the CLI fails on any call that returns (an upstream
        # bug, not the server's). Listing the methods does not reach it.
        out = subprocess.run([cli, endpoint], capture_output=True, text=True, timeout=30)
        check("zerorpc CLI lists the methods", out.returncode == 0
              and all(m in out.stdout for m in ["multiply", "echo", "digest"]), out.stdout.strip() or out.stderr)


def run_server(address, slow_first):
    server = zerorpc.Server(Bench(slow_first))
    host, port = address.rsplit(":", 1)
    server.bind(f"tcp://{host}:{'*' if port == '0' else port}")
    bound = server._events._socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    print(f"listening zerorpc {bound.removeprefix('tcp://')}", flush=True)
    server.run()


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("client", "server"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, address, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    seconds = float(rest[1]) if len(rest) == 2 and rest[0] in ("--held", "--slow-first") else 0.0
    if mode == "client":
        run_client(address, seconds)
        print(f"zerorpc_peer.py client: {failures} failed", flush=True)
        return 1 if failures else 0
    run_server(address, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
