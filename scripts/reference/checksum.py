"""The wirebench Digest checksum, reimplemented in Python from the
documentation in formats/src/checksum.rs alone.

A record is a dict with the contract's field names: id, user_id,
timestamp_micros, name, email, kind (int 0-4), score, weight, active, tags
(list of str), attributes (list of (key, value)), location (None or
(latitude, longitude, city)), fingerprint (bytes).
"""

import struct

M = (1 << 64) - 1
K = 0x517CC1B727220A95
START = 0x243F6A8885A308D3


def _f64(x):
    # -0.0 folds to +0.0: proto3 drops it as a default value.
    return 0 if x == 0.0 else struct.unpack("<Q", struct.pack("<d", x))[0]


def _f32(x):
    return 0 if x == 0.0 else struct.unpack("<I", struct.pack("<f", x))[0]


class Checksum:
    def __init__(self):
        self.state = START
        self.records = 0

    def word(self, w):
        rot = ((self.state << 5) | (self.state >> 59)) & M
        self.state = ((rot ^ (w & M)) * K) & M

    def bytes(self, b):
        self.word(len(b))
        for i in range(0, len(b), 8):
            chunk = b[i:i + 8].ljust(8, b"\0")
            self.word(int.from_bytes(chunk, "little"))

    def record(self, r):
        self.word(r["id"])
        self.word(r["user_id"])
        self.word(r["timestamp_micros"])
        self.bytes(r["name"].encode())
        self.bytes(r["email"].encode())
        self.word(r["kind"])
        self.word(_f64(r["score"]))
        self.word(_f32(r["weight"]))
        self.word(1 if r["active"] else 0)
        for tag in r["tags"]:
            self.bytes(tag.encode())
        self.word(len(r["tags"]))
        for key, value in r["attributes"]:
            self.bytes(key.encode())
            self.bytes(value.encode())
        self.word(len(r["attributes"]))
        if r["location"] is None:
            self.word(0)
        else:
            lat, lon, city = r["location"]
            self.word(1)
            self.word(_f64(lat))
            self.word(_f64(lon))
            self.bytes(city.encode())
        self.bytes(r["fingerprint"])
        self.records += 1

    def finish(self):
        self.word(self.records)
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return self.records, z ^ (z >> 31)


def digest(records):
    c = Checksum()
    for r in records:
        c.record(r)
    return c.finish()


if __name__ == "__main__":
    # The record pinned in checksum.rs's unit test.
    known = dict(id=7, user_id=42, timestamp_micros=-5 & M, name="Ada Lovelace", email="ada@example.com",
                 kind=3, score=1.5, weight=0.25, active=True, tags=["a", "bc"], attributes=[("k", "v")],
                 location=(1.0, 2.0, "München"), fingerprint=bytes([1, 2, 3]))
    records, checksum = digest([known])
    assert (records, checksum) == (1, 0xAB544E8C9AD35235), hex(checksum)
    print("checksum.py: known record ok")
