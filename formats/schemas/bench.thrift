// The wirebench RPC contract, Apache Thrift. The one source of the Thrift
// schema; `scripts/regen-schemas.sh` generates
// formats/src/generated/bench_thrift.rs from it (`thrift --gen rs`, the
// compiler of Debian's thrift-compiler 0.17).
//
// The `thrift-binary` and `thrift-compact` formats write these structs with
// TBinaryProtocol and TCompactProtocol: a bare struct per message (no
// TMessage envelope: the transport carries the call id, 1 Multiply,
// 2 Echo, 3 Digest, and the status).
//
// Thrift has no unsigned integers and no 32-bit float. The contract's
// unsigned fields travel as the signed type of the same width holding the
// same bits (two's complement: an id of 2^64 - 1 is the i64 -1), and
// `weight` (an f32) as a double that holds its value exactly; a reader
// narrows it back and rejects a double that is not an f32.
//
// Every field is `required` except `location`, which a record may lack:
// the writer always writes them, and a reader rejects a struct missing one.

namespace rs wirebench
namespace py wirebench_thrift

struct MultiplyRequest {
  1: required i64 a
  2: required i64 b
}

// Overflow is not a reply: it travels as status OUT_OF_RANGE.
struct MultiplyReply {
  1: required i64 product
}

struct EchoRequest {
  1: required binary payload
}

struct EchoReply {
  1: required binary payload
}

enum Kind {
  UNKNOWN = 0
  CLICK = 1
  VIEW = 2
  PURCHASE = 3
  REFUND = 4
}

struct Attribute {
  1: required string key
  2: required string value
}

struct Location {
  1: required double latitude
  2: required double longitude
  3: required string city
}

struct Record {
  // u64, as its bits.
  1: required i64 id
  // u32, as its bits.
  2: required i32 user_id
  3: required i64 timestamp_micros
  4: required string name
  5: required string email
  6: required Kind kind
  7: required double score
  // f32, widened exactly.
  8: required double weight
  9: required bool active
  10: required list<string> tags
  11: required list<Attribute> attributes
  // Absent when the record has no location.
  12: optional Location location
  13: required binary fingerprint
}

struct Batch {
  1: required list<Record> records
}

struct DigestReply {
  // u32, as its bits.
  1: required i32 records
  // u64, as its bits.
  2: required i64 checksum
}

// A call the service refused, as a Thrift service declares its errors:
// `code` is the contract's status code (11 OUT_OF_RANGE for Multiply's
// overflow, 3 INVALID_ARGUMENT for a Digest record outside the schema),
// `message` says why. Only the RPC rows (thrift-rpc, volo-thrift) send it;
// the thrift-binary and thrift-compact formats over wirebench's own
// transports leave the status to the transport.
exception BenchError {
  1: required i32 code
  2: required string message
}

// The service, as the Thrift RPC rows carry it (TMessage envelope, method
// names as below); the formats above write only its messages.
service Bench {
  MultiplyReply Multiply(1: MultiplyRequest request) throws (1: BenchError error)
  EchoReply Echo(1: EchoRequest request) throws (1: BenchError error)
  DigestReply Digest(1: Batch batch) throws (1: BenchError error)
}
