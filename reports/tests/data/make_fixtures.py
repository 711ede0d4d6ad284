#!/usr/bin/env python3
"""Makes the report test fixtures from a real results file.

    python3 make_fixtures.py /tmp/wb-quick/results.json

(the file written by `wirebench run --quick --out /tmp/wb-quick`). The
fixtures are small slices of it, some edited by hand-written rules below
to have failed, open-loop and missing cells and an interrupted run.
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
src = json.load(open(sys.argv[1]))


def base(cells):
    out = {k: copy.deepcopy(v) for k, v in src.items() if k != "cells"}
    out["cells"] = cells
    out["formats"] = {k: v for k, v in src["formats"].items() if any(c["format"] == k for c in cells.values())}
    out["transports"] = {k: v for k, v in src["transports"].items() if any(c["transport"] == k for c in cells.values())}
    return out


def pick(workloads, formats, transports, loads):
    cells = {}
    for k, c in src["cells"].items():
        w, f, t, l = k.split("/")
        if w in workloads and (f in formats or f == "raw") and t in transports and l in loads:
            cells[k] = copy.deepcopy(c)
    return cells


def write(name, data):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


# 1. A normal slice, plus one failed cell and an odd error text.
cells = pick({"multiply", "digest-100"}, {"json", "protobuf", "bincode"}, {"tcp", "udp", "http2", "inproc", "grpc"}, {"c1", "c64"})
failed = cells["multiply/json/udp/c64"]
failed["status"] = "failed"
failed["error"] = '37 calls timed out after 5000 ms; 2 wrong replies ("a,b" <script>)'
failed["metrics"]["timeouts"] = 37
failed["metrics"]["wrong_replies"] = 2
write("quick-slice.json", base(cells))

# 2. An interrupted run: Ctrl-C after some cells of the second workload.
cells = pick({"multiply", "echo-1KiB"}, {"json", "protobuf", "capnp"}, {"tcp", "unix", "grpc", "http2"}, {"c1", "c64"})
order = sorted(cells, key=lambda k: (k.split("/")[0] != "multiply", k.split("/")[3] != "c1", k))
keep = order[: len(order) - 9]
data = base({k: cells[k] for k in keep})
data["interrupted"] = True
data["environment"]["finished_at"] = ""
write("interrupted.json", data)

# 3. Open loop: corrected and uncorrected latency.
cells = pick({"echo-1KiB"}, {"json", "protobuf", "msgpack"}, {"tcp"}, {"c1", "c64"})
out = {}
for k, c in cells.items():
    w, f, t, l = k.split("/")
    if l != "c1":
        continue
    slow = cells[f"{w}/{f}/{t}/c64"]
    c = copy.deepcopy(c)
    label = "r5000c8"
    c["key"] = f"{w}/{f}/{t}/{label}"
    c["load"] = {"model": "open-constant", "in_flight": 8, "connections": 1, "rate": 5000.0}
    if c.get("baseline"):
        c["baseline"] = f"{w}/raw/{t}/{label}"
    m = c["metrics"]
    m["latency_kind"] = "corrected"
    m["latency_uncorrected"] = dict(m["latency"])
    m["latency"] = dict(slow["metrics"]["latency"])
    m["send_lag_p99_ns"] = 41000
    c["histogram_uncorrected"] = c["histogram"]
    c["histogram"] = slow["histogram"]
    out[c["key"]] = c
write("open-loop.json", base(out))

# 4. No cells at all (a run stopped before its first cell).
data = base({})
data["interrupted"] = True
data["environment"]["finished_at"] = ""
write("empty.json", data)

# 5. Written by a future wirebench.
data = base(pick({"multiply"}, {"json"}, {"tcp"}, {"c1"}))
data["schema_version"] = 99
data["some_new_field"] = {"x": 1}
write("newer-schema.json", data)

# 6. Cut off mid-write (not what write_atomic leaves, but what a copy may).
text = json.dumps(base(pick({"multiply"}, {"json"}, {"tcp"}, {"c1"})), indent=1)
with open(os.path.join(HERE, "malformed.json"), "w") as f:
    f.write(text[: len(text) // 2])
