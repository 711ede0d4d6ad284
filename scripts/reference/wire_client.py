#!/usr/bin/env python3
"""A wirebench client written from docs/protocol.md alone, with the Python
standard library only. It proves the document: every check below follows
a statement of the document, run against a live server.

Usage:
    wire_client.py tcp HOST:PORT     framed RPC, pipelining, statuses,
                                     server-stats, server environment,
                                     bad input, raw mode
    wire_client.py unix PATH         the same over a Unix socket
    wire_client.py udp HOST:PORT     datagrams, limits, dropped garbage,
                                     WBRW raw datagrams

Prints one line per check ("ok" or "FAIL") and exits non-zero if any
check failed. Bodies are bincode (docs/protocol.md section 12.1), built
here by hand; golden vectors are read from formats/tests/golden when this
script sits in its repository. The Digest checksum comes from
checksum.py next to this file (also standard library only).
"""

import os
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checksum import digest as reference_digest  # noqa: E402

M64 = (1 << 64) - 1
I64_MAX = (1 << 63) - 1

# Section 1: call ids, format ids, status codes.
MULTIPLY, ECHO, DIGEST, STATS, ENVIRONMENT = 0x01, 0x02, 0x03, 0xF0, 0xF1
JSON, PROTOBUF, BINCODE = 0x01, 0x03, 0x07
OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, OUT_OF_RANGE, UNIMPLEMENTED = 0, 3, 8, 11, 12

# Sections 2 and 3: frame header, preamble, limits.
HEADER = struct.Struct(">IIBBBB")  # length, request id, call, format, status, flags
FLAG_REPLY = 0x01
PREAMBLE_RPC = b"WB\x01\x00"
MAX_MESSAGE = 16 << 20
# Section 5: udp.
DATAGRAM_LIMIT = 1472
RAW_MAGIC = b"WBRW"

DEADLINE = 5.0  # seconds: timeouts are the client's responsibility

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "formats" / "tests" / "golden"

failures = 0


def check(transport, what, ok, detail=""):
    global failures
    if not ok:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} {transport:4} {what}{': ' + detail if detail else ''}", flush=True)
    return ok


# --- bincode, section 12.1 ----------------------------------------------------------------------------

def uvarint(v):
    if v <= 250:
        return bytes([v])
    if v < 1 << 16:
        return b"\xfb" + v.to_bytes(2, "little")
    if v < 1 << 32:
        return b"\xfc" + v.to_bytes(4, "little")
    return b"\xfd" + v.to_bytes(8, "little")


def ivarint(v):
    return uvarint(((v << 1) ^ (v >> 63)) & M64)


def bstring(b):
    return uvarint(len(b)) + b


def f64(x):
    return struct.pack("<d", x)


def f32(x):
    return struct.pack("<f", x)


class BincodeReader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uvarint(self):
        b = self.take(1)[0]
        if b <= 250:
            return b
        width = {251: 2, 252: 4, 253: 8}.get(b)
        if width is None:
            raise ValueError(f"bad varint marker {b:#x}")
        return int.from_bytes(self.take(width), "little")

    def ivarint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def bytes(self):
        return self.take(self.uvarint())

    def end(self, value):
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} trailing bytes")
        return value


def multiply_request(a, b):
    return ivarint(a) + ivarint(b)


def multiply_reply(body):
    r = BincodeReader(body)
    return r.end(r.ivarint())


def echo_request(payload):
    return bstring(payload)


def echo_reply(body):
    r = BincodeReader(body)
    return r.end(r.bytes())


def record_bytes(r):
    out = uvarint(r["id"]) + uvarint(r["user_id"]) + ivarint(r["timestamp_micros"])
    out += bstring(r["name"].encode()) + bstring(r["email"].encode()) + uvarint(r["kind"])
    out += f64(r["score"]) + f32(r["weight"]) + bytes([1 if r["active"] else 0])
    out += uvarint(len(r["tags"])) + b"".join(bstring(t.encode()) for t in r["tags"])
    out += uvarint(len(r["attributes"]))
    out += b"".join(bstring(k.encode()) + bstring(v.encode()) for k, v in r["attributes"])
    if r["location"] is None:
        out += b"\x00"
    else:
        lat, lon, city = r["location"]
        out += b"\x01" + f64(lat) + f64(lon) + bstring(city.encode())
    return out + bstring(r["fingerprint"])


def batch_request(records):
    return uvarint(len(records)) + b"".join(record_bytes(r) for r in records)


def digest_reply(body):
    r = BincodeReader(body)
    records = r.uvarint()
    return r.end((records, r.uvarint()))


# Records built here; their checksum comes from checksum.py, not the server.
RECORDS = [
    dict(id=1, user_id=70000, timestamp_micros=-1_700_000_000_000_000, name="Zoë Ångström",
         email="zoe@example.org", kind=2, score=-0.0, weight=0.25, active=True, tags=["a", "longer-than-8-bytes"],
         attributes=[("k", "v"), ("lang", "ελληνικά")], location=(48.137, 11.575, "München"),
         fingerprint=bytes(range(16))),
    dict(id=(1 << 64) - 1, user_id=0, timestamp_micros=1, name="", email="x@y", kind=4, score=1e300, weight=-3.5,
         active=False, tags=[], attributes=[], location=None, fingerprint=b""),
]


def golden(fmt, name):
    path = GOLDEN / fmt / f"{name}.hex"
    text = path.read_text()
    return bytes.fromhex("".join(line for line in text.splitlines() if not line.startswith("#")))


# The golden Multiply (section 3.3), inline so the script also works alone.
GOLDEN_MULTIPLY = bytes.fromhex("fca6052c93fc0b241e00")
GOLDEN_PRODUCT = bytes.fromhex("fde3cd27e0f0a90800")
GOLDEN_ECHO = bytes.fromhex("10080ac004cda5720b8b585732dcd5cbde")
PB_MULTIPLY = bytes.fromhex("08d385d8cc0410fadbc3ffffffffffff01")
PB_PRODUCT = bytes.fromhex("088eb2b0fff8e0eafdff01")


# --- frames, section 2 --------------------------------------------------------------------------------

def frame(request_id, call, fmt, body, status=0, flags=0, length=None):
    if length is None:
        length = 8 + len(body)
    return HEADER.pack(length, request_id, call, fmt, status, flags) + body


def parse_header(head):
    length, request_id, call, fmt, status, flags = HEADER.unpack(head)
    if length < 8:
        raise ValueError(f"frame length {length} < 8")
    if length - 8 > MAX_MESSAGE:
        raise ValueError(f"frame body of {length - 8} bytes over the limit")
    if flags & ~FLAG_REPLY & 0xFF:
        raise ValueError(f"reserved flags {flags:#04x}")
    return dict(length=length, id=request_id, call=call, format=fmt, status=status, flags=flags)


class Expect:
    """One call and what the document says its reply must be."""

    def __init__(self, what, call, fmt, body, status=OK, check=None, message=None):
        self.what, self.call, self.fmt, self.body = what, call, fmt, body
        self.status, self.check, self.message = status, check, message

    def verify(self, transport, reply, body):
        problems = []
        if not reply["flags"] & FLAG_REPLY:
            problems.append("reply bit not set")
        if (reply["call"], reply["format"]) != (self.call, self.fmt):
            problems.append(f"call/format {reply['call']}/{reply['format']} not copied")
        if reply["status"] != self.status:
            problems.append(f"status {reply['status']} ({body[:80]!r}), expected {self.status}")
        elif self.status == OK:
            try:
                detail = self.check(body)
            except Exception as e:  # a decode failure is a mismatch
                detail = f"undecodable reply: {e}"
            if detail is not True:
                problems.append(str(detail))
        else:
            text = body.decode("utf-8", "replace")
            if self.message is not None and self.message not in text:
                problems.append(f"message {text!r} lacks {self.message!r}")
            if not problems:
                return check(transport, self.what, True, f"status {reply['status']} {text!r}")
        return check(transport, self.what, not problems, "; ".join(problems) or f"status {reply['status']}")


def equals(expected, decode=None):
    def test(body):
        value = decode(body) if decode else body
        if value != expected:
            return f"got {value!r:.100}, expected {expected!r:.100}"
        return True
    return test


def rpc_calls(with_large):
    """The calls sent pipelined on tcp/unix/udp, with their expected outcome."""
    calls = [
        Expect("multiply golden (bincode bytes equal golden reply)", MULTIPLY, BINCODE, GOLDEN_MULTIPLY,
               check=equals(GOLDEN_PRODUCT)),
        Expect("multiply golden decodes to -1219325915817714", MULTIPLY, BINCODE, GOLDEN_MULTIPLY,
               check=equals(-1219325915817714, multiply_reply)),
        Expect("multiply 6 * 7 = 42", MULTIPLY, BINCODE, multiply_request(6, 7), check=equals(42, multiply_reply)),
        Expect("multiply -3 * 5 = -15", MULTIPLY, BINCODE, multiply_request(-3, 5), check=equals(-15, multiply_reply)),
        Expect("multiply 2^40 * -3 (u64 varint form)", MULTIPLY, BINCODE, multiply_request(1 << 40, -3),
               check=equals(-(3 << 40), multiply_reply)),
        Expect("multiply i64::MIN * 1", MULTIPLY, BINCODE, multiply_request(-(1 << 63), 1),
               check=equals(-(1 << 63), multiply_reply)),
        Expect("multiply protobuf golden (format 3)", MULTIPLY, PROTOBUF, PB_MULTIPLY, check=equals(PB_PRODUCT)),
        Expect("multiply json (format 1)", MULTIPLY, JSON, b'{"a":1234567891,"b":-987654}',
               check=equals(b'{"product":-1219325915817714}')),
        Expect("echo golden 16 bytes", ECHO, BINCODE, GOLDEN_ECHO, check=equals(GOLDEN_ECHO)),
        Expect("echo empty payload", ECHO, BINCODE, echo_request(b""), check=equals(b"", echo_reply)),
        Expect("echo 1000 bytes (fb varint length)", ECHO, BINCODE, echo_request(bytes(range(250)) * 4),
               check=equals(bytes(range(250)) * 4, echo_reply)),
        Expect("digest of hand-built records = checksum.py", DIGEST, BINCODE, batch_request(RECORDS),
               check=equals(reference_digest(RECORDS), digest_reply)),
        Expect("digest of an empty batch", DIGEST, BINCODE, batch_request([]),
               check=equals(reference_digest([]), digest_reply)),
        Expect("multiply overflow i64::MAX * 2 -> OUT_OF_RANGE", MULTIPLY, BINCODE, multiply_request(I64_MAX, 2),
               status=OUT_OF_RANGE, message="9223372036854775807 * 2 overflows a 64-bit integer"),
        Expect("unknown call id 9 -> UNIMPLEMENTED", 9, BINCODE, multiply_request(1, 1),
               status=UNIMPLEMENTED, message="unknown call id 9"),
        Expect("unknown format id 99 -> UNIMPLEMENTED", MULTIPLY, 99, multiply_request(1, 1),
               status=UNIMPLEMENTED, message="unknown format id 99"),
        Expect("trailing byte after a bincode message -> INVALID_ARGUMENT", MULTIPLY, BINCODE,
               multiply_request(1, 1) + b"\x00", status=INVALID_ARGUMENT, message="bincode: cannot decode"),
        Expect("empty bincode body -> INVALID_ARGUMENT", ECHO, BINCODE, b"", status=INVALID_ARGUMENT),
        Expect("kind 5 in a record -> INVALID_ARGUMENT", DIGEST, BINCODE,
               batch_request([dict(RECORDS[1], kind=5)]), status=INVALID_ARGUMENT),
    ]
    try:
        calls.append(Expect("digest golden digest-2 (bytes equal golden reply)", DIGEST, BINCODE,
                            golden("bincode", "digest-2.request"), check=equals(golden("bincode", "digest-2.reply"))))
    except OSError:
        print("note golden vectors not found; digest-2 golden check skipped")
    if with_large:
        big = os.urandom(100_000)
        calls.append(Expect("echo 100000 bytes (fc varint length)", ECHO, BINCODE, echo_request(big),
                            check=equals(big, echo_reply)))
        calls.append(Expect("echo 1 MiB", ECHO, BINCODE, echo_request(big * 10 + b"!" * 48576),
                            check=equals(big * 10 + b"!" * 48576, echo_reply)))
    return calls


# --- tcp and unix, sections 3, 4, 10 ------------------------------------------------------------------

class Stream:
    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(DEADLINE)
        self.buf = b""
        self.sent = self.received = 0

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.received += len(chunk)
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        head = self.read_exact(4)
        length = struct.unpack(">I", head)[0]
        if length < 8 or length - 8 > MAX_MESSAGE:
            raise ValueError(f"bad reply length {length}")
        rest = self.read_exact(length)
        header = parse_header(head + rest[:8])
        return header, rest[8:]

    def closed_by_peer(self, within=DEADLINE):
        """True if the server closes the connection without sending anything."""
        self.sock.settimeout(within)
        got = b""
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return not got, got
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            return not got, got
        except socket.timeout:
            return False, got

    def close(self):
        self.sock.close()


def stream_connect(transport, address):
    if transport == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
    else:
        host, port = address.rsplit(":", 1)
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=DEADLINE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Stream(sock)


def server_stats(t, conn, request_id, fmt):
    conn.send(frame(request_id, STATS, fmt, b""))
    header, body = conn.read_frame()
    ok = (header["id"], header["call"], header["format"], header["status"], header["flags"], len(body)) == \
        (request_id, STATS, fmt, OK, FLAG_REPLY, 24)
    stats = struct.unpack(">QQQ", body) if len(body) == 24 else (0, 0, 0)
    check(t, f"server-stats (format byte {fmt} copied, 24-byte body)", ok,
          f"user {stats[0]} us, system {stats[1]} us, calls {stats[2]}" if ok else f"{header} {body!r}")
    return stats


def parse_environment(body):
    """Section 10.2: u32 BE cores, then five u16 BE length-prefixed UTF-8
    strings (at most 1024 bytes each), nothing after them."""
    if len(body) < 4:
        raise ValueError(f"{len(body)} bytes, shorter than the core count")
    (cores,) = struct.unpack(">I", body[:4])
    rest, fields = body[4:], []
    for name in ("version", "cpu_model", "kernel", "os", "hostname"):
        if len(rest) < 2:
            raise ValueError(f"the body ends before {name}'s length")
        (n,) = struct.unpack(">H", rest[:2])
        if n > 1024 or n > len(rest) - 2:
            raise ValueError(f"{name} declares {n} bytes, {len(rest) - 2} left")
        fields.append(rest[2:2 + n].decode("utf-8"))
        rest = rest[2 + n:]
    if rest:
        raise ValueError(f"{len(rest)} bytes after the last field")
    return cores, dict(zip(("version", "cpu_model", "kernel", "os", "hostname"), fields))


def server_environment(t, conn, request_id, local):
    conn.send(frame(request_id, ENVIRONMENT, 0, b""))
    header, body = conn.read_frame()
    ok = (header["id"], header["call"], header["status"], header["flags"]) == (request_id, ENVIRONMENT, OK, FLAG_REPLY)
    try:
        cores, fields = parse_environment(body)
    except (ValueError, UnicodeDecodeError) as e:
        check(t, "server-environment reply parses as section 10.2 says", False, f"{e}: {body!r}")
        return
    check(t, "server-environment reply parses as section 10.2 says", ok and cores >= 1,
          f"{cores} cores, {fields}")
    # The golden body of section 10.2 parses to the values it names.
    golden = bytes.fromhex("00000002 0005302e312e30 000458656f6e 0005362e312e30 000644656269616e 00026831"
                           .replace(" ", ""))
    check(t, "section 10.2's example body parses to its values", parse_environment(golden) ==
          (2, {"version": "0.1.0", "cpu_model": "Xeon", "kernel": "6.1.0", "os": "Debian", "hostname": "h1"}))
    if local:
        kernel = Path("/proc/sys/kernel/osrelease").read_text().strip()
        host = Path("/proc/sys/kernel/hostname").read_text().strip()
        check(t, "a server on this machine names this machine's kernel and host",
              (fields["kernel"], fields["hostname"]) == (kernel, host), f"{fields['kernel']}, {fields['hostname']}")


def first_byte_within(sock, seconds):
    """The next byte from `sock`, or None if none comes within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1)
    except socket.timeout:
        return None


def run_stream(t, address):
    # 3.2: preamble, then many requests pipelined before any reply is read.
    conn = stream_connect(t, address)
    conn.send(PREAMBLE_RPC)
    before = server_stats(t, conn, 0xFFFFFFFF, 0)

    calls = rpc_calls(with_large=True)
    ids = [0x5EED0000 + 7919 * i for i in range(len(calls))]  # distinct, not sequential
    conn.send(b"".join(frame(i, c.call, c.fmt, c.body) for i, c in zip(ids, calls)))
    replies = {}
    try:
        for _ in calls:
            header, body = conn.read_frame()
            replies[header["id"]] = (header, body)
    except Exception as e:
        check(t, "read pipelined replies", False, str(e))
    check(t, f"{len(calls)} pipelined requests, one write: every reply matched by request id",
          sorted(replies) == sorted(ids), f"{len(replies)} replies")
    for i, c in zip(ids, calls):
        if i in replies:
            c.verify(t, *replies[i])

    # Section 10: the count covers every call handed to the service, errors included, not stats.
    after = server_stats(t, conn, 0, BINCODE)
    check(t, "server-stats call count grew by exactly the calls sent", after[2] - before[2] == len(calls),
          f"{before[2]} -> {after[2]}, sent {len(calls)}")
    check(t, "server-stats CPU times do not go backwards", after[0] >= before[0] and after[1] >= before[1],
          f"user {before[0]} -> {after[0]}, system {before[1]} -> {after[1]}")

    # Section 10.2: the server's machine; not counted as a call.
    local = t == "unix" or address.rsplit(":", 1)[0].strip("[]") in ("127.0.0.1", "::1", "localhost")
    server_environment(t, conn, 0x0E0E0E0E, local)
    again = server_stats(t, conn, 1, 0)
    check(t, "the server-environment call is not counted as a call", again[2] == after[2],
          f"{after[2]} -> {again[2]}")

    # A frame split over several writes is reassembled.
    request = frame(77, MULTIPLY, BINCODE, multiply_request(-7, -6))
    for piece in (request[:3], request[3:13], request[13:]):
        conn.send(piece)
        time.sleep(0.05)
    header, body = conn.read_frame()
    check(t, "a frame sent in 3 pieces is answered once", header["id"] == 77 and multiply_reply(body) == 42,
          f"id {header['id']}, status {header['status']}")

    # Bytes on the wire (3.8): 12 + body each way per call, plus the preamble;
    # the four control calls (stats, stats, environment, stats) are bare headers.
    check(t, "bytes on the wire are the preamble plus whole frames",
          conn.sent == 4 + sum(12 + len(c.body) for c in calls) + 4 * 12 + len(request),
          f"sent {conn.sent}, received {conn.received}")

    # 3.2 half-close: every complete request is answered, then the server closes.
    half = stream_connect(t, address)
    half.send(PREAMBLE_RPC + b"".join(frame(i, MULTIPLY, BINCODE, multiply_request(i, 3)) for i in (1, 2, 3)))
    half.sock.shutdown(socket.SHUT_WR)
    got = []
    try:
        while True:
            header, body = half.read_frame()
            got.append((header["id"], multiply_reply(body)))
    except ConnectionError:
        pass
    check(t, "half-close: all requests answered, then the server closes", sorted(got) == [(1, 3), (2, 6), (3, 9)],
          str(got))
    half.close()

    # 3.5: framing errors close that connection, silently; others are unaffected.
    bad_inputs = [
        ("an HTTP request instead of a preamble", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("preamble mode 9", b"WB\x01\x09"),
        ("preamble version 2", b"WB\x02\x00"),
        ("declared body over 16 MiB, only the length sent", PREAMBLE_RPC + b"\xff\xff\xff\xf0"),
        ("declared body of 16 MiB + 1", PREAMBLE_RPC + struct.pack(">I", 8 + MAX_MESSAGE + 1)),
        ("frame length 3 (< 8)", PREAMBLE_RPC + b"\x00\x00\x00\x03\x00\x00\x00\x00"),
        ("reserved flag bit", PREAMBLE_RPC + frame(1, MULTIPLY, BINCODE, b"", flags=0x80)),
        ("reply bit on a request", PREAMBLE_RPC + frame(1, MULTIPLY, BINCODE, multiply_request(1, 1), flags=1)),
        ("raw preamble with request length 0", b"WB\x01\x01" + struct.pack(">II", 0, 8)),
        ("raw preamble with reply over 16 MiB", b"WB\x01\x01" + struct.pack(">II", 8, MAX_MESSAGE + 1)),
    ]
    for what, data in bad_inputs:
        bad = stream_connect(t, address)
        bad.send(data)
        closed, got = bad.closed_by_peer()
        check(t, f"closes the connection on {what}", closed, f"received {got[:40]!r}" if got else "")
        bad.close()
    # The exact limit is still accepted: a 16 MiB body is read (it does not decode as Multiply).
    edge = stream_connect(t, address)
    edge.send(PREAMBLE_RPC + frame(5, MULTIPLY, BINCODE, b"\x00" * MAX_MESSAGE))
    header, body = edge.read_frame()
    check(t, "a body of exactly 16 MiB is accepted (and answered with a status)",
          header["id"] == 5 and header["status"] == INVALID_ARGUMENT, body[:60].decode(errors="replace"))
    edge.close()
    conn.send(frame(78, MULTIPLY, BINCODE, multiply_request(11, 11)))
    header, body = conn.read_frame()
    check(t, "the first connection still serves after the bad ones", multiply_reply(body) == 121)
    conn.close()

    # 3.7 raw ping-pong: preamble mode 1, fixed sizes, FIFO, 0xa5 replies.
    raw = stream_connect(t, address)
    raw.send(b"WB\x01\x01" + struct.pack(">II", 64, 256) + b"\x5a" * 64 * 3)
    replies = raw.read_exact(3 * 256)
    check(t, "raw 64 -> 256: three pipelined pings get 768 bytes of 0xa5", replies == b"\xa5" * 768)
    raw.send(b"\x00" * 10)
    time.sleep(0.05)
    raw.send(b"\xff" * 54)
    check(t, "raw: a request split in two writes gets one reply", raw.read_exact(256) == b"\xa5" * 256)
    raw.send(b"\x5a" * 63)
    extra = first_byte_within(raw.sock, 0.3)
    check(t, "raw: an incomplete request gets no reply", extra is None, repr(extra))
    raw.close()
    empty = stream_connect(t, address)
    empty.send(b"WB\x01\x01" + struct.pack(">II", 16, 0) + b"\x5a" * 32)
    extra = first_byte_within(empty.sock, 0.3)
    check(t, "raw with reply length 0: nothing comes back, connection open", extra is None, repr(extra))
    empty.close()


# --- udp, section 5 -----------------------------------------------------------------------------------

class Datagrams:
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect((host.strip("[]"), int(port)))

    def send(self, data):
        self.sock.send(data)

    def receive(self, deadline):
        """Every datagram that arrives before `deadline` (a time.monotonic() value)."""
        out = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                out.append(self.sock.recv(65536))
            except socket.timeout:
                return out

    def receive_ids(self, ids, within=DEADLINE):
        """Reads until every id in `ids` has a reply (or the deadline passes)."""
        wanted, got, stray = set(ids), {}, []
        deadline = time.monotonic() + within
        while wanted - got.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            try:
                header = parse_header(d[:12])
                if header["length"] != len(d) - 4 or not header["flags"] & FLAG_REPLY:
                    raise ValueError("not one reply frame")
            except Exception:
                stray.append(d)
                continue
            got[header["id"]] = (header, d[12:])
        return got, stray


def run_udp(t, address):
    u = Datagrams(address)
    calls = rpc_calls(with_large=False)
    ids = [0xA0000000 + 31 * i for i in range(len(calls))]
    for i, c in zip(ids, calls):
        d = frame(i, c.call, c.fmt, c.body)
        assert len(d) <= DATAGRAM_LIMIT, (c.what, len(d))
        u.send(d)
    got, stray = u.receive_ids(ids)
    check(t, f"{len(calls)} datagrams sent before reading: every reply matched by request id",
          sorted(got) == sorted(ids) and not stray, f"{len(got)} replies, {len(stray)} stray")
    for i, c in zip(ids, calls):
        if i in got:
            c.verify(t, *got[i])

    # 5.1: no server-stats over udp.
    Expect("server-stats call 0xF0 over udp -> UNIMPLEMENTED", STATS, 0, b"", status=UNIMPLEMENTED,
           message="unknown call id 240").verify(t, *exchange(u, 900, STATS, 0, b""))
    # 5.1, 10.2: nor the server's environment.
    Expect("server-environment call 0xF1 over udp -> UNIMPLEMENTED", ENVIRONMENT, 0, b"", status=UNIMPLEMENTED,
           message="unknown call id 241").verify(t, *exchange(u, 899, ENVIRONMENT, 0, b""))

    # 5.2: the reply limit. Echo reply = 12 + 3 (fb varint) + n bytes.
    fits = 1472 - 12 - 3
    Expect(f"echo {fits} bytes: a 1472-byte reply datagram fits", ECHO, BINCODE, echo_request(b"x" * fits),
           check=equals(b"x" * fits, echo_reply)).verify(t, *exchange(u, 901, ECHO, BINCODE,
                                                                       echo_request(b"x" * fits)))
    Expect(f"echo {fits + 1} bytes: a 1473-byte reply -> RESOURCE_EXHAUSTED", ECHO, BINCODE, b"",
           status=RESOURCE_EXHAUSTED, message="a 1473-byte reply exceeds the 1472-byte datagram limit").verify(
        t, *exchange(u, 902, ECHO, BINCODE, echo_request(b"x" * (fits + 1))))
    # The server reads request datagrams over its own limit (up to 65507 bytes).
    big = echo_request(b"y" * 20000)
    Expect(f"a {12 + len(big)}-byte request datagram is read; its reply is RESOURCE_EXHAUSTED", ECHO, BINCODE,
           b"", status=RESOURCE_EXHAUSTED, message=f"a {12 + len(big)}-byte reply exceeds").verify(
        t, *exchange(u, 903, ECHO, BINCODE, big))

    # 5.4: garbage is dropped silently; serving goes on.
    good = frame(904, MULTIPLY, BINCODE, multiply_request(12, 12))
    garbage = [
        ("5 bytes", b"hello"),
        ("40 bytes of 0xff", b"\xff" * 40),
        ("a header declaring a 50-byte body, no body", frame(905, MULTIPLY, BINCODE, b"", length=58)),
        ("a frame with one extra byte", frame(906, MULTIPLY, BINCODE, multiply_request(1, 2)) + b"\x00"),
        ("length 7", frame(907, MULTIPLY, BINCODE, b"", length=7)),
        ("reserved flag bits", frame(908, MULTIPLY, BINCODE, multiply_request(1, 2), flags=0x02)),
        ("the reply bit", frame(909, MULTIPLY, BINCODE, multiply_request(1, 2), flags=0x01)),
        ("body over 16 MiB declared", frame(910, MULTIPLY, BINCODE, b"", length=8 + MAX_MESSAGE + 1)),
        ("WBRW with 4 bytes", b"WBRW"),
        ("WBRW with 11 bytes", b"WBRW" + b"\x00" * 7),
    ]
    for _, d in garbage:
        u.send(d)
    u.send(good)
    arrived = u.receive(time.monotonic() + 1.0)
    expected = frame(904, MULTIPLY, BINCODE, ivarint(144), flags=FLAG_REPLY)
    check(t, f"{len(garbage)} bad datagrams dropped without reply; the next request is served",
          arrived == [expected], f"{len(arrived)} datagrams: {[a[:16].hex() for a in arrived]}")

    # 5.5: raw WBRW datagrams.
    def raw(seq, reply_len, size):
        return RAW_MAGIC + struct.pack(">II", seq, reply_len) + b"\x5a" * (size - 12)

    for seq, reply_len, size, want in [(1, 256, 64, 256), (2, 2, 12, 8), (3, 100_000, 100, 1472), (4, 8, 1472, 8)]:
        u.send(raw(seq, reply_len, size))
        arrived = u.receive(time.monotonic() + 0.5)
        ok = len(arrived) == 1 and arrived[0] == RAW_MAGIC + struct.pack(">I", seq) + b"\xa5" * (want - 8)
        check(t, f"raw {size}-byte WBRW asking {reply_len} -> {want} bytes, tag copied", ok,
              f"got {[len(a) for a in arrived]}")
    for seq in (10, 11, 12):
        u.send(raw(seq, 32, 16))
    arrived = u.receive(time.monotonic() + 0.5)
    seqs = sorted(struct.unpack(">I", a[4:8])[0] for a in arrived if a[:4] == RAW_MAGIC and len(a) == 32)
    check(t, "three pipelined raw datagrams matched by sequence", seqs == [10, 11, 12], str(seqs))


def exchange(u, request_id, call, fmt, body):
    u.send(frame(request_id, call, fmt, body))
    got, _ = u.receive_ids([request_id])
    if request_id not in got:
        return dict(flags=0, call=-1, format=-1, status=-1), b"no reply"
    return got[request_id]


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("tcp", "unix", "udp"):
        print(__doc__, file=sys.stderr)
        return 2
    transport, address = sys.argv[1], sys.argv[2]
    try:
        if transport == "udp":
            run_udp(transport, address)
        else:
            run_stream(transport, address)
    except Exception as e:
        check(transport, "the run completed", False, f"{type(e).__name__}: {e}")
    print(f"{transport}: {'all checks passed' if failures == 0 else f'{failures} check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
