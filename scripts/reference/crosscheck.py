"""Decodes every golden vector of formats/tests/golden with another
language's reference implementation and checks that all formats carry the
same values and that every Digest reply is the checksum of its batch.

References: Python's json; msgpack (msgpack-python); Google's protobuf
runtime (descriptor from protoc); the FlatBuffers Python runtime (code from
flatc); pycapnp (the C++ Cap'n Proto library); Apache Thrift for Python
(PyPI thrift, pure-Python TBinaryProtocol and TCompactProtocol, code from
`thrift --gen py`); Caucho's Java Hessian (HessianCrosscheck.java decodes
the Hessian files first and writes what it read to hessian-values.json);
cbor2; fastavro's schemaless_reader with formats/schemas/bench.avsc.
bincode and postcard have no implementation outside Rust, so their bytes
are read by decoders written here: bincode's from the layout documented in
formats/src/format/bincode.rs, postcard's from postcard's wire format
specification. bitcode and rkyv have no implementation outside Rust and no
specification to write one from: their golden bytes are pinned by
formats/tests/golden.rs and only listed here.

Usage: crosscheck.py <repository root> <work dir>
The work dir holds bench.desc (protoc), flatc's python output, thrift's
python output in thrift-py/, and hessian/hessian-values.json (Java).
"""

import base64
import io
import json
import struct
import sys
from pathlib import Path

import cbor2
import fastavro
import msgpack
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from checksum import digest

root, work = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(work))
sys.path.insert(0, str(work / "thrift-py"))

import capnp  # noqa: E402
from thrift.protocol import TBinaryProtocol, TCompactProtocol  # noqa: E402
from thrift.transport import TTransport  # noqa: E402
from wirebench_thrift import ttypes as TT  # noqa: E402
from wirebench import (  # noqa: E402
    Batch as FbBatch, DigestReply as FbDigestReply, EchoReply as FbEchoReply, EchoRequest as FbEchoRequest,
    MultiplyReply as FbMultiplyReply, MultiplyRequest as FbMultiplyRequest,
)

KINDS = ["unknown", "click", "view", "purchase", "refund"]
U32, U64 = (1 << 32) - 1, (1 << 64) - 1
WORKLOADS = {"multiply": "Multiply", "echo-16B": "Echo", "digest-2": "Digest"}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def record(id, user_id, ts, name, email, kind, score, weight, active, tags, attributes, location, fingerprint):
    return dict(id=id, user_id=user_id, timestamp_micros=ts, name=name, email=email, kind=kind, score=score,
                weight=f32(weight), active=bool(active), tags=list(tags), attributes=[tuple(a) for a in attributes],
                location=None if location is None else tuple(location), fingerprint=bytes(fingerprint))


def golden(fmt, workload, what):
    text = (root / "formats/tests/golden" / fmt / f"{workload}.{what}.hex").read_text()
    return bytes.fromhex("".join(line for line in text.splitlines() if not line.startswith("#")))


# --- JSON ---------------------------------------------------------------------------------------------
def json_values(method, data, what):
    v = json.loads(data)
    if method == "Multiply":
        return v
    if method == "Echo":
        return {"payload": base64.b64decode(v["payload"], validate=True)}
    if what == "reply":
        return v
    return {"records": [record(r["id"], r["user_id"], r["timestamp_micros"], r["name"], r["email"],
                               KINDS.index(r["kind"]), r["score"], r["weight"], r["active"], r["tags"],
                               [(a["key"], a["value"]) for a in r["attributes"]],
                               None if r["location"] is None else (r["location"]["latitude"],
                                                                   r["location"]["longitude"],
                                                                   r["location"]["city"]),
                               base64.b64decode(r["fingerprint"], validate=True)) for r in v["records"]]}


# --- MessagePack --------------------------------------------------------------------------------------
def msgpack_values(method, data, what):
    return named_values(method, msgpack.unpackb(data, raw=False, strict_map_key=True), what)


def named_values(method, v, what):
    """A message decoded to maps keyed by field name, kind as an integer, bytes as bytes (MessagePack, CBOR)."""
    if method != "Digest" or what == "reply":
        return v
    return {"records": [record(r["id"], r["user_id"], r["timestamp_micros"], r["name"], r["email"], r["kind"],
                               r["score"], r["weight"], r["active"], r["tags"],
                               [(a["key"], a["value"]) for a in r["attributes"]],
                               None if r["location"] is None else (r["location"]["latitude"],
                                                                   r["location"]["longitude"],
                                                                   r["location"]["city"]),
                               r["fingerprint"]) for r in v["records"]]}


# --- CBOR ---------------------------------------------------------------------------------------------
def cbor_values(method, data, what):
    fo = io.BytesIO(data)
    v = cbor2.CBORDecoder(fo, allow_duplicate_keys=False).decode()
    if fo.tell() != len(data):
        raise ValueError(f"{len(data) - fo.tell()} trailing bytes")
    return named_values(method, v, what)


# --- Avro (formats/schemas/bench.avsc, one datum per message) -------------------------------------------
M64 = (1 << 64) - 1
AVRO_NAMED = {}
AVRO = {s["name"]: fastavro.parse_schema(s, named_schemas=AVRO_NAMED)
        for s in json.loads((root / "formats/schemas/bench.avsc").read_text())}
MESSAGES = {("Multiply", "request"): "MultiplyRequest", ("Multiply", "reply"): "MultiplyReply",
            ("Echo", "request"): "EchoRequest", ("Echo", "reply"): "EchoReply",
            ("Digest", "request"): "Batch", ("Digest", "reply"): "DigestReply"}


def avro_values(method, data, what):
    fo = io.BytesIO(data)
    v = fastavro.schemaless_reader(fo, AVRO[MESSAGES[(method, what)]], None)
    if fo.tell() != len(data):
        raise ValueError(f"{len(data) - fo.tell()} trailing bytes")
    if method != "Digest":
        return v
    # Avro has no unsigned longs: id and checksum are the u64 with the same bits.
    if what == "reply":
        return {"records": v["records"], "checksum": v["checksum"] & M64}
    return {"records": [record(r["id"] & M64, r["user_id"], r["timestamp_micros"], r["name"], r["email"],
                               KINDS.index(r["kind"]), r["score"], r["weight"], r["active"], r["tags"],
                               [(a["key"], a["value"]) for a in r["attributes"]],
                               None if r["location"] is None else (r["location"]["latitude"],
                                                                   r["location"]["longitude"],
                                                                   r["location"]["city"]),
                               r["fingerprint"]) for r in v["records"]]}


# --- Protobuf -----------------------------------------------------------------------------------------
fds = descriptor_pb2.FileDescriptorSet.FromString((work / "bench.desc").read_bytes())
pool = descriptor_pool.DescriptorPool()
for f in fds.file:
    pool.Add(f)
PB = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"wirebench.{name}"))
      for name in ["MultiplyRequest", "MultiplyReply", "EchoRequest", "EchoReply", "Batch", "DigestReply"]}


def protobuf_values(method, data, what):
    name = {("Multiply", "request"): "MultiplyRequest", ("Multiply", "reply"): "MultiplyReply",
            ("Echo", "request"): "EchoRequest", ("Echo", "reply"): "EchoReply",
            ("Digest", "request"): "Batch", ("Digest", "reply"): "DigestReply"}[(method, what)]
    m = PB[name].FromString(data)
    if name == "MultiplyRequest":
        return {"a": m.a, "b": m.b}
    if name == "MultiplyReply":
        return {"product": m.product}
    if method == "Echo":
        return {"payload": m.payload}
    if name == "DigestReply":
        return {"records": m.records, "checksum": m.checksum}
    return {"records": [record(r.id, r.user_id, r.timestamp_micros, r.name, r.email, r.kind, r.score, r.weight,
                               r.active, r.tags, [(a.key, a.value) for a in r.attributes],
                               (r.location.latitude, r.location.longitude, r.location.city)
                               if r.HasField("location") else None, r.fingerprint) for r in m.records]}


# --- FlatBuffers --------------------------------------------------------------------------------------
def flatbuffers_values(method, data, what):
    buf = bytearray(data)
    if (method, what) == ("Multiply", "request"):
        m = FbMultiplyRequest.MultiplyRequest.GetRootAs(buf, 0)
        return {"a": m.A(), "b": m.B()}
    if (method, what) == ("Multiply", "reply"):
        return {"product": FbMultiplyReply.MultiplyReply.GetRootAs(buf, 0).Product()}
    if method == "Echo":
        cls = FbEchoRequest.EchoRequest if what == "request" else FbEchoReply.EchoReply
        m = cls.GetRootAs(buf, 0)
        return {"payload": bytes(m.Payload(i) for i in range(m.PayloadLength()))}
    if what == "reply":
        m = FbDigestReply.DigestReply.GetRootAs(buf, 0)
        return {"records": m.Records(), "checksum": m.Checksum()}
    b = FbBatch.Batch.GetRootAs(buf, 0)
    out = []
    for i in range(b.RecordsLength()):
        r = b.Records(i)
        loc = r.Location()
        out.append(record(r.Id(), r.UserId(), r.TimestampMicros(), r.Name().decode(), r.Email().decode(), r.Kind(),
                          r.Score(), r.Weight(), r.Active(), [r.Tags(j).decode() for j in range(r.TagsLength())],
                          [(r.Attributes(j).Key().decode(), r.Attributes(j).Value().decode())
                           for j in range(r.AttributesLength())],
                          None if loc is None else (loc.Latitude(), loc.Longitude(), loc.City().decode()),
                          bytes(r.Fingerprint(j) for j in range(r.FingerprintLength()))))
    return {"records": out}


# --- Cap'n Proto --------------------------------------------------------------------------------------
CP = capnp.load(str(root / "formats/schemas/bench.capnp"))


def capnp_values(packed):
    def values(method, data, what):
        name = {("Multiply", "request"): "MultiplyRequest", ("Multiply", "reply"): "MultiplyReply",
                ("Echo", "request"): "EchoRequest", ("Echo", "reply"): "EchoReply",
                ("Digest", "request"): "Batch", ("Digest", "reply"): "DigestReply"}[(method, what)]
        cls = getattr(CP, name)
        if packed:
            return convert(name, cls.from_bytes_packed(data))
        with cls.from_bytes(data) as m:
            return convert(name, m)

    def convert(name, m):
        if name == "MultiplyRequest":
            return {"a": m.a, "b": m.b}
        if name == "MultiplyReply":
            return {"product": m.product}
        if name in ("EchoRequest", "EchoReply"):
            return {"payload": bytes(m.payload)}
        if name == "DigestReply":
            return {"records": m.records, "checksum": m.checksum}
        return {"records": [record(r.id, r.userId, r.timestampMicros, r.name, r.email, r.kind.raw, r.score,
                                   r.weight, r.active, list(r.tags), [(a.key, a.value) for a in r.attributes],
                                   (r.location.latitude, r.location.longitude, r.location.city)
                                   if r._has("location") else None, bytes(r.fingerprint)) for r in m.records]}
    return values


# --- bincode (layout of formats/src/format/bincode.rs) -------------------------------------------------
class Bincode:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uvar(self):
        b = self.take(1)[0]
        if b < 251:
            return b
        width = {251: 2, 252: 4, 253: 8, 254: 16}[b]
        return int.from_bytes(self.take(width), "little")

    def ivar(self):
        u = self.uvar()
        return (u >> 1) ^ -(u & 1)

    def f64(self):
        return struct.unpack("<d", self.take(8))[0]

    def f32(self):
        return struct.unpack("<f", self.take(4))[0]

    def bytes(self):
        return self.take(self.uvar())

    def str(self):
        return self.bytes().decode()

    def done(self, value):
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} trailing bytes")
        return value


def bincode_values(method, data, what):
    d = Bincode(data)
    if (method, what) == ("Multiply", "request"):
        return d.done({"a": d.ivar(), "b": d.ivar()})
    if (method, what) == ("Multiply", "reply"):
        return d.done({"product": d.ivar()})
    if method == "Echo":
        return d.done({"payload": d.bytes()})
    if what == "reply":
        return d.done({"records": d.uvar(), "checksum": d.uvar()})
    records = []
    for _ in range(d.uvar()):
        fields = [d.uvar(), d.uvar(), d.ivar(), d.str(), d.str(), d.uvar(), d.f64(), d.f32(), d.take(1)[0] == 1,
                  [d.str() for _ in range(d.uvar())], [(d.str(), d.str()) for _ in range(d.uvar())]]
        fields.append((d.f64(), d.f64(), d.str()) if d.take(1)[0] == 1 else None)
        fields.append(d.bytes())
        records.append(record(*fields))
    return d.done({"records": records})


# --- postcard (its wire format specification) -----------------------------------------------------------
class Postcard(Bincode):
    """Varints are LEB128 (at most 10 bytes for a u64), signed ones zigzagged; u8 is one raw byte."""

    def uvar(self):
        value = 0
        for i in range(10):
            b = self.take(1)[0]
            value |= (b & 0x7F) << (7 * i)
            if b < 0x80:
                return value
        raise ValueError("a varint longer than 10 bytes")

    def flag(self):
        b = self.take(1)[0]
        if b > 1:
            raise ValueError(f"a bool or option tag of {b}")
        return b == 1


def postcard_values(method, data, what):
    d = Postcard(data)
    if (method, what) == ("Multiply", "request"):
        return d.done({"a": d.ivar(), "b": d.ivar()})
    if (method, what) == ("Multiply", "reply"):
        return d.done({"product": d.ivar()})
    if method == "Echo":
        return d.done({"payload": d.bytes()})
    if what == "reply":
        return d.done({"records": d.uvar(), "checksum": d.uvar()})
    records = []
    for _ in range(d.uvar()):
        fields = [d.uvar(), d.uvar(), d.ivar(), d.str(), d.str(), d.take(1)[0], d.f64(), d.f32(), d.flag(),
                  [d.str() for _ in range(d.uvar())], [(d.str(), d.str()) for _ in range(d.uvar())]]
        fields.append((d.f64(), d.f64(), d.str()) if d.flag() else None)
        fields.append(d.bytes())
        records.append(record(*fields))
    return d.done({"records": records})


# Formats no other implementation reads and no specification describes: golden bytes pinned in Rust only.
PINNED_ONLY = ["bitcode", "rkyv"]

# --- Thrift (formats/schemas/bench.thrift) -----------------------------------------------------------
def thrift_values(protocol):
    def values(method, data, what):
        cls = {("Multiply", "request"): TT.MultiplyRequest, ("Multiply", "reply"): TT.MultiplyReply,
               ("Echo", "request"): TT.EchoRequest, ("Echo", "reply"): TT.EchoReply,
               ("Digest", "request"): TT.Batch, ("Digest", "reply"): TT.DigestReply}[(method, what)]
        buf = TTransport.TMemoryBuffer(data)
        m = cls()
        m.read(protocol(buf))
        m.validate()
        rest = buf.cstringio_buf.read()
        if rest:
            raise ValueError(f"{len(rest)} trailing bytes")
        if cls is TT.MultiplyRequest:
            return {"a": m.a, "b": m.b}
        if cls is TT.MultiplyReply:
            return {"product": m.product}
        if method == "Echo":
            return {"payload": m.payload}
        # Unsigned fields travel as the signed type of the same width.
        if cls is TT.DigestReply:
            return {"records": m.records & U32, "checksum": m.checksum & U64}
        out = []
        for r in m.records:
            r.validate()
            if f32(r.weight) != r.weight:
                raise ValueError(f"weight {r.weight} is not a 32-bit float")
            out.append(record(r.id & U64, r.user_id & U32, r.timestamp_micros, r.name, r.email, r.kind, r.score,
                              r.weight, r.active, r.tags, [(a.key, a.value) for a in r.attributes],
                              None if r.location is None else (r.location.latitude, r.location.longitude,
                                                               r.location.city), r.fingerprint))
        return {"records": out}
    return values


# --- Hessian (values as Caucho's Java Hessian read them, from HessianCrosscheck.java) ------------------
JAVA = {bytes.fromhex(e["hex"]): e["value"]
        for e in json.loads((work / "hessian" / "hessian-values.json").read_text())}


def bits64(b):
    return struct.unpack("<d", struct.pack("<q", b))[0]


def bits32(b):
    return struct.unpack("<f", struct.pack("<i", b))[0]


def hessian_values(method, data, what):
    if data not in JAVA:
        raise ValueError("Java did not decode these bytes")
    v = JAVA[data]
    if method == "Multiply":
        return v
    if method == "Echo":
        return {"payload": bytes.fromhex(v["payload"])}
    if what == "reply":
        return {"records": v["records"] & U32, "checksum": v["checksum"] & U64}
    return {"records": [record(r["id"] & U64, r["userId"] & U32, r["timestampMicros"], r["name"], r["email"],
                               r["kind"], bits64(r["scoreBits"]), bits32(r["weightBits"]), r["active"], r["tags"],
                               r["attributes"],
                               None if r["location"] is None else (bits64(r["location"]["latitudeBits"]),
                                                                   bits64(r["location"]["longitudeBits"]),
                                                                   r["location"]["city"]),
                               bytes.fromhex(r["fingerprint"])) for r in v["records"]]}


DECODERS = {
    "json": json_values, "msgpack": msgpack_values, "protobuf": protobuf_values, "flatbuffers": flatbuffers_values,
    "capnp": capnp_values(False), "capnp-packed": capnp_values(True), "bincode": bincode_values,
    "cbor": cbor_values, "avro": avro_values, "postcard": postcard_values,
    "thrift-binary": thrift_values(TBinaryProtocol.TBinaryProtocol),
    "thrift-compact": thrift_values(TCompactProtocol.TCompactProtocol), "hessian": hessian_values,
}

failures = 0
for workload, method in WORKLOADS.items():
    for what in ("request", "reply"):
        reference = None
        for fmt, decode in DECODERS.items():
            try:
                value = decode(method, golden(fmt, workload, what), what)
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                print(f"FAIL {fmt} {workload} {what}: {type(e).__name__}: {e}")
                failures += 1
                continue
            if reference is None:
                reference = (fmt, value)
                print(f"ok   {fmt:14} {workload:9} {what} (the reference for the others)")
            elif value != reference[1]:
                print(f"FAIL {fmt} {workload} {what}: differs from {reference[0]}:\n  {value}\n  {reference[1]}")
                failures += 1
            else:
                print(f"ok   {fmt:14} {workload:9} {what}")
        if method == "Digest" and what == "request":
            batch = reference[1]["records"]
        if method == "Digest" and what == "reply":
            want = digest([dict(r, timestamp_micros=r["timestamp_micros"] & ((1 << 64) - 1)) for r in batch])
            got = (reference[1]["records"], reference[1]["checksum"])
            if got != want:
                print(f"FAIL digest reply {got} is not the Python checksum {want} of the request batch")
                failures += 1
            else:
                print(f"ok   the digest reply is the Python checksum of the batch: {got[0]} records, {got[1]:#x}")

for fmt in PINNED_ONLY:
    files = sorted((root / "formats/tests/golden" / fmt).glob("*.hex"))
    if len(files) != 2 * len(WORKLOADS):
        print(f"FAIL {fmt}: {len(files)} golden files, expected {2 * len(WORKLOADS)}")
        failures += 1
    else:
        print(f"pinned {fmt:10} {len(files)} golden files; no reader outside Rust (checked by formats/tests/golden.rs)")

if failures:
    sys.exit(f"crosscheck: {failures} failure(s)")
print("crosscheck: every golden vector reads the same in every reference implementation")
