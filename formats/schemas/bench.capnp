# The wirebench RPC contract, Cap'n Proto. The one source of the Cap'n Proto
# schema; `scripts/regen-schemas.sh` generates
# formats/src/generated/bench_capnp.rs from it (capnp + capnpc-rust).
#
# Messages use the standard stream serialization (segment table + segments),
# unpacked; the `capnp-packed` format is the same message, packed.

@0xee748132bbed3899;

struct MultiplyRequest {
  a @0 :Int64;
  b @1 :Int64;
}

struct MultiplyReply {
  product @0 :Int64;
}

struct EchoRequest {
  payload @0 :Data;
}

struct EchoReply {
  payload @0 :Data;
}

enum Kind {
  unknown @0;
  click @1;
  view @2;
  purchase @3;
  refund @4;
}

struct Attribute {
  key @0 :Text;
  value @1 :Text;
}

struct Location {
  latitude @0 :Float64;
  longitude @1 :Float64;
  city @2 :Text;
}

struct Record {
  id @0 :UInt64;
  userId @1 :UInt32;
  timestampMicros @2 :Int64;
  name @3 :Text;
  email @4 :Text;
  kind @5 :Kind;
  score @6 :Float64;
  weight @7 :Float32;
  active @8 :Bool;
  tags @9 :List(Text);
  attributes @10 :List(Attribute);
  # A null pointer when the record has no location.
  location @11 :Location;
  fingerprint @12 :Data;
}

struct Batch {
  records @0 :List(Record);
}

struct DigestReply {
  records @0 :UInt32;
  checksum @1 :UInt64;
}

# The Bench service for Cap'n Proto RPC (the `capnp-rpc` framework row):
# each method's parameter and result structs are the messages above, so a
# call carries the same struct the `capnp` format encodes, inside Cap'n
# Proto RPC's own Call and Return messages. Multiply's overflow is an
# exception of type `failed` whose reason starts with the status name
# (`OUT_OF_RANGE: ...`).
interface Bench {
  multiply @0 MultiplyRequest -> MultiplyReply;
  echo @1 EchoRequest -> EchoReply;
  digest @2 Batch -> DigestReply;
}
