#!/usr/bin/env python3
"""A plain JSON-RPC 2.0 client (Python's urllib and json, no jsonrpsee)
calls wirebench's jsonrpsee server over HTTP: bench_multiply, bench_echo
and bench_digest with parameters by name (the `json` format's messages),
each answer checked (Digest against checksum.py); Multiply's overflow as
the error object {"code": 11, "message": "...", "data": "OUT_OF_RANGE"};
JSON-RPC's own errors; a batch; positional parameters.

Usage: interop_jsonrpc.py HOST:PORT
Prints one line per check and exits non-zero if any failed.
"""

import base64
import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checksum import digest  # noqa: E402
from interop_data import EXPECTED_DIGEST, I64_MAX, KINDS, RECORDS, check, finish  # noqa: E402

URL = f"http://{sys.argv[1]}/"
next_id = 0


def post(body):
    request = urllib.request.Request(URL, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def call(method, params):
    global next_id
    next_id += 1
    status, reply = post({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params})
    ok = status == 200 and reply.get("jsonrpc") == "2.0" and reply.get("id") == next_id
    check(f"{method}: an HTTP 200 JSON-RPC 2.0 response with our id", ok, (status, reply))
    return reply


def record_json(r):
    """A record as the `json` format writes it (formats/src/format/serde_repr.rs)."""
    location = r["location"]
    return {"id": r["id"], "user_id": r["user_id"], "timestamp_micros": r["timestamp_micros"], "name": r["name"],
            "email": r["email"], "kind": KINDS[r["kind"]], "score": r["score"], "weight": r["weight"],
            "active": r["active"], "tags": r["tags"],
            "attributes": [{"key": k, "value": v} for k, v in r["attributes"]],
            "location": None if location is None else
            {"latitude": location[0], "longitude": location[1], "city": location[2]},
            "fingerprint": base64.b64encode(r["fingerprint"]).decode()}


reply = call("bench_multiply", {"a": 6, "b": -7})
check("multiply 6 * -7", reply.get("result") == {"product": -42}, reply)
reply = call("bench_multiply", {"a": I64_MAX, "b": 1})
check("multiply i64::MAX * 1", reply.get("result") == {"product": I64_MAX}, reply)

for size in (0, 1, 1024, 200_000):
    payload = bytes((i * 31 + 7) % 256 for i in range(size))
    encoded = base64.b64encode(payload).decode()
    reply = call("bench_echo", {"payload": encoded})
    check(f"echo {size} bytes (base64)", reply.get("result") == {"payload": encoded}, str(reply)[:200])

reply = call("bench_digest", {"records": [record_json(r) for r in RECORDS]})
want = {"records": EXPECTED_DIGEST[0], "checksum": EXPECTED_DIGEST[1]}
check("digest of 3 records = checksum.py's", reply.get("result") == want, f"{reply} != {want}")
records, checksum = digest([])
reply = call("bench_digest", {"records": []})
check("digest of no records", reply.get("result") == {"records": records, "checksum": checksum}, reply)

# Overflow: the documented error object.
reply = call("bench_multiply", {"a": I64_MAX, "b": 2})
error = reply.get("error", {})
check("overflow is an error object, no result", "result" not in reply and "error" in reply, reply)
check("its code is 11 (OUT_OF_RANGE's number)", error.get("code") == 11, error)
check("its data is OUT_OF_RANGE", error.get("data") == "OUT_OF_RANGE", error)
check("its message says it overflows", "overflows" in error.get("message", ""), error)

# JSON-RPC's own errors.
reply = call("bench_divide", {"a": 1, "b": 2})
check("an unknown method is -32601", reply.get("error", {}).get("code") == -32601, reply)
reply = call("bench_multiply", {"a": "six", "b": 2})
check("wrong params are -32602", reply.get("error", {}).get("code") == -32602, reply)
reply = call("bench_echo", {"payload": "not base64!"})
check("a payload that is not base64 is -32602", reply.get("error", {}).get("code") == -32602, reply)

# Positional parameters and a batch, both JSON-RPC 2.0.
reply = call("bench_multiply", [3, 4])
check("positional params", reply.get("result") == {"product": 12}, reply)
reply = call("bench_digest", [[record_json(r) for r in RECORDS]])
check("positional params of digest", reply.get("result") == want, reply)
status, replies = post([{"jsonrpc": "2.0", "id": "m", "method": "bench_multiply", "params": {"a": 2, "b": 21}},
                        {"jsonrpc": "2.0", "id": "e", "method": "bench_echo", "params": {"payload": "aGkh"}}])
by_id = {r.get("id"): r for r in replies} if isinstance(replies, list) else {}
check("a batch of two calls", status == 200 and by_id.get("m", {}).get("result") == {"product": 42}
      and by_id.get("e", {}).get("result") == {"payload": "aGkh"}, replies)

finish("jsonrpsee interop (urllib JSON-RPC 2.0 client)")
