//! Every decoder of every format, fed bad bytes: truncated messages,
//! random bytes, mutated messages, wrong types, lengths that claim more
//! than the buffer holds, and nesting bombs. Each must return an error (or,
//! where the format allows it, a different valid value), never panic, and
//! never allocate in proportion to a claimed length rather than the input.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use wirebench_formats::dataset::{DEFAULT_SEED, Dataset, MULTIPLY_OPERANDS};
use wirebench_formats::format::hessian::Hessian;
use wirebench_formats::format::thrift::{ThriftBinary, ThriftCompact};
use wirebench_formats::{
    Batch, CodecError, Format, FormatId, FormatVisitor, Method, OwnedRequest, ServerScratch, Service, Workload,
};

/// Tracks the largest single allocation made by the current thread, so a
/// decoder that trusts a claimed length is caught even if it fails later.
struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping touches only a
// const-initialized thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(layout.size())));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = PEAK.try_with(|p| p.set(p.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Runs every decoder of `F` on `bytes` as `method`; returns whether each
/// accepted it, in order: request, reply, access, serve.
struct DecodeAll<'a>(Method, &'a [u8]);

impl FormatVisitor for DecodeAll<'_> {
    type Output = [bool; 4];
    fn visit<F: Format>(self) -> [bool; 4] {
        let DecodeAll(method, bytes) = self;
        let request = F::decode_request(method, bytes).is_ok();
        let reply = F::decode_reply(method, bytes).is_ok();
        let access = F::access_request(method, bytes).is_ok();
        let mut scratch = ServerScratch::default();
        let served = wirebench_formats::serve(&Service::new(), &mut scratch, F::ID, method, bytes).is_ok();
        [request, reply, access, served]
    }
}

fn decode_all(format: FormatId, method: Method, bytes: &[u8]) -> [bool; 4] {
    format.visit(DecodeAll(method, bytes))
}

struct EncodeRequest<'a>(&'a OwnedRequest<Batch>);
impl FormatVisitor for EncodeRequest<'_> {
    type Output = Vec<u8>;
    fn visit<F: Format>(self) -> Vec<u8> {
        F::encode_request(&mut F::Scratch::default(), &F::prepare(self.0)).unwrap().to_vec()
    }
}

fn valid_request(format: FormatId, workload: Workload) -> Vec<u8> {
    let data = Dataset::generate(workload, DEFAULT_SEED);
    let request = match workload {
        Workload::Multiply => OwnedRequest::Multiply { a: MULTIPLY_OPERANDS.0, b: MULTIPLY_OPERANDS.1 },
        Workload::Echo { .. } => OwnedRequest::Echo { payload: data.payload },
        Workload::Digest { .. } => OwnedRequest::Digest { batch: data.batch },
    };
    format.visit(EncodeRequest(&request))
}

const SMALL: [Workload; 3] = [Workload::Multiply, Workload::Echo { size: 40 }, Workload::Digest { records: 3 }];

/// How many bytes may be cut from the end of a message and leave it valid.
/// A protobuf message cut at a field boundary is a valid, smaller message;
/// a FlatBuffers buffer may end in up to 7 bytes of alignment padding.
fn harmless_cut(format: FormatId, len: usize) -> usize {
    match format {
        FormatId::Protobuf => len,
        FormatId::FlatBuffers => 7,
        _ => 0,
    }
}

#[test]
fn truncated_messages_are_rejected() {
    for &format in FormatId::ALL {
        for workload in SMALL {
            let method = workload.method();
            let bytes = valid_request(format, workload);
            let must_fail = bytes.len().saturating_sub(harmless_cut(format, bytes.len()));
            for cut in 0..bytes.len() {
                let accepted = decode_all(format, method, &bytes[..cut]);
                if cut < must_fail {
                    assert!(
                        !accepted[0] && !accepted[3],
                        "{format} {workload}: a {cut}-byte prefix of {} bytes was accepted",
                        bytes.len()
                    );
                }
            }
        }
    }
}

#[test]
fn messages_of_another_method_do_not_panic() {
    for &format in FormatId::ALL {
        for workload in SMALL {
            let bytes = valid_request(format, workload);
            for method in Method::ALL {
                decode_all(format, method, &bytes);
            }
        }
    }
}

/// Requests of the right shape with a field of the wrong type: the request
/// decoder and the server refuse them. (Some are valid replies: `08 01` is
/// a protobuf DigestReply.)
#[test]
fn wrong_types_are_rejected() {
    let cases: &[(FormatId, Method, &[u8])] = &[
        (FormatId::Json, Method::Multiply, br#"{"a":"1","b":2}"#),
        (FormatId::Json, Method::Multiply, br#"{"a":1.5,"b":2}"#),
        (FormatId::Json, Method::Multiply, br#"{"a":1}"#),
        (FormatId::Json, Method::Echo, br#"{"payload":[1,2,3]}"#),
        (FormatId::Json, Method::Echo, br#"{"payload":"not base64!"}"#),
        (FormatId::Json, Method::Digest, br#"{"records":{}}"#),
        (FormatId::Json, Method::Digest, br#"{"records":[{"id":1}]}"#),
        (FormatId::Json, Method::Multiply, br#"{"a":1,"b":2} trailing"#),
        // {"a": "x", "b": 1}
        (FormatId::MsgPack, Method::Multiply, &[0x82, 0xa1, b'a', 0xa1, b'x', 0xa1, b'b', 0x01]),
        // {"payload": 7}
        (FormatId::MsgPack, Method::Echo, &[0x81, 0xa7, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0x07]),
        // {"a": 1, "b": 2} followed by a stray byte
        (FormatId::MsgPack, Method::Multiply, &[0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x02, 0xc0]),
        // field 1 (int64) sent as length-delimited
        (FormatId::Protobuf, Method::Multiply, &[0x0a, 0x01, 0x00]),
        // field 1 (records) sent as a varint
        (FormatId::Protobuf, Method::Digest, &[0x08, 0x01]),
        // a record whose name is not UTF-8
        (FormatId::Protobuf, Method::Digest, &[0x0a, 0x04, 0x22, 0x02, 0xff, 0xfe]),
        // bincode: a bool of 2, a kind of 9, a string that is not UTF-8
        (FormatId::Bincode, Method::Echo, &[0x05, 0x01]),
        (FormatId::Bincode, Method::Multiply, &[0x02]),
        (FormatId::Bincode, Method::Multiply, &[0x02, 0x04, 0x00]),
        // CBOR: {"a": "1", "b": 2}; {"payload": [1, 2, 3]}; a stray byte after
        // {"a": 1, "b": 2}
        (FormatId::Cbor, Method::Multiply, b"\xa2\x61a\x61\x31\x61b\x02"),
        (FormatId::Cbor, Method::Echo, b"\xa1\x67payload\x83\x01\x02\x03"),
        (FormatId::Cbor, Method::Multiply, b"\xa2\x61a\x01\x61b\x02\xf6"),
        // Avro: a boolean of 2 and a union branch of 2 in an otherwise valid
        // record; a trailing byte after Multiply
        (FormatId::Avro, Method::Digest, &avro_record(0x02, 0x00)),
        (FormatId::Avro, Method::Digest, &avro_record(0x01, 0x04)),
        (FormatId::Avro, Method::Multiply, &[0x02, 0x04, 0x00]),
        // postcard: a trailing byte after Multiply
        (FormatId::Postcard, Method::Multiply, &[0x02, 0x04, 0x00]),
        // bitcode: an empty message; a trailing byte after Multiply
        (FormatId::Bitcode, Method::Multiply, &[]),
        (
            FormatId::Bitcode,
            Method::Multiply,
            &[0x02, 0xd3, 0x02, 0x96, 0x49, 0x00, 0xfa, 0xed, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00],
        ),
        // rkyv: too short to hold the root
        (FormatId::Rkyv, Method::Multiply, &[0x01, 0x02, 0x03]),
        // Thrift: a MultiplyRequest without its required `b`; a stray byte
        // after the struct.
        (FormatId::ThriftBinary, Method::Multiply, &[0x0a, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 7, 0x00]),
        (FormatId::ThriftCompact, Method::Multiply, &[0x16, 0x0e, 0x00]),
        (FormatId::ThriftCompact, Method::Multiply, &[0x16, 0x0e, 0x16, 0x0e, 0x00, 0x00]),
        // Hessian: `a` as a string, a payload as a string, a MultiplyRequest
        // sent where a Batch is due, and a stray byte after the object.
        (FormatId::Hessian, Method::Multiply, b"C\x19wirebench.MultiplyRequest\x92\x01a\x01b\x60\x01x\xe1"),
        (FormatId::Hessian, Method::Echo, b"C\x15wirebench.EchoRequest\x91\x07payload\x60\x01x"),
        (FormatId::Hessian, Method::Digest, b"C\x19wirebench.MultiplyRequest\x92\x01a\x01b\x60\xe1\xe1"),
        (FormatId::Hessian, Method::Multiply, b"C\x19wirebench.MultiplyRequest\x92\x01a\x01b\x60\xe1\xe1N"),
    ];
    for (format, method, bytes) in cases {
        let [request, _, access, served] = decode_all(*format, *method, bytes);
        assert!(!request && !access && !served, "{format} {method} accepted {:?}", String::from_utf8_lossy(bytes));
    }
    // The Avro cases differ from a valid record in one byte only.
    assert!(decode_all(FormatId::Avro, Method::Digest, &avro_record(0x01, 0x00))[0], "the unmutated record is valid");
}

/// One Avro Digest request of one record, with `active` and the location
/// union branch given (valid: 0x00/0x01 and 0x00).
fn avro_record(active: u8, location: u8) -> Vec<u8> {
    let mut bytes = vec![0x02, 0x02, 0x02, 0x02, 0x02, b'a', 0x02, b'b', 0x02];
    bytes.extend(1.5f64.to_le_bytes());
    bytes.extend(0.5f32.to_le_bytes());
    bytes.extend([active, 0x00, 0x00, location, 0x00, 0x00]);
    bytes
}

#[test]
fn out_of_schema_enum_values_are_rejected_by_every_format() {
    // One record whose kind is 9: every format must refuse to digest it.
    let data = Dataset::generate(Workload::Digest { records: 1 }, DEFAULT_SEED);
    let json = serde_json::to_vec(&data.batch).unwrap();
    let json = String::from_utf8(json).unwrap();
    let kind = format!(r#""kind":"{}""#, data.batch.records[0].kind.name());
    let bad = json.replace(&kind, r#""kind":"nine""#);
    assert_ne!(bad, json);
    assert_eq!(decode_all(FormatId::Json, Method::Digest, bad.as_bytes()), [false; 4]);

    // protobuf keeps unknown enum values (proto3 enums are open); the
    // server must still refuse to digest them.
    let mut pb = wirebench_formats::protobuf::to_pb(&data.batch);
    pb.records[0].kind = 9;
    let bytes = prost::Message::encode_to_vec(&pb);
    let accepted = decode_all(FormatId::Protobuf, Method::Digest, &bytes);
    assert!(!accepted[3], "protobuf server digested kind 9");

    // Thrift enums are open too: decoded, then refused by the server.
    let mut native = wirebench_formats::format::thrift::to_thrift(&data.batch);
    native.records[0].kind = wirebench_formats::format::thrift::th::Kind(9);
    let request = wirebench_formats::format::thrift::ThriftRequest::Digest(native);
    for format in [FormatId::ThriftBinary, FormatId::ThriftCompact] {
        let bytes = match format {
            FormatId::ThriftBinary => ThriftBinary::encode_request(&mut Vec::new(), &request).unwrap().to_vec(),
            _ => ThriftCompact::encode_request(&mut Vec::new(), &request).unwrap().to_vec(),
        };
        assert!(!decode_all(format, Method::Digest, &bytes)[3], "{format} server digested kind 9");
    }

    // Hessian: the kind is the int after the email.
    let mut bytes = valid_request_of(FormatId::Hessian, &data.batch);
    let record = &data.batch.records[0];
    let at = bytes.windows(record.email.len()).position(|w| w == record.email.as_bytes()).unwrap() + record.email.len();
    assert_eq!(bytes[at], 0x90 + record.kind.value(), "the kind follows the email");
    bytes[at] = 0x99;
    assert_eq!(decode_all(FormatId::Hessian, Method::Digest, &bytes), [false; 4]);
}

fn valid_request_of(format: FormatId, batch: &Batch) -> Vec<u8> {
    format.visit(EncodeRequest(&OwnedRequest::Digest { batch: batch.clone() }))
}

fn check_bounded(format: FormatId, method: Method, bytes: &[u8]) {
    PEAK.with(|p| p.set(0));
    let accepted = decode_all(format, method, bytes);
    let peak = PEAK.with(Cell::get);
    assert_eq!(accepted, [false; 4], "{format} {method}: accepted a lying length: {bytes:02x?}");
    // Allowed: a fixed amount, or a multiple of the input (capnp-packed may
    // legitimately expand up to 1024x).
    let bound = (64 << 10).max(1024 * bytes.len());
    assert!(peak <= bound, "{format} {method}: allocated {peak} bytes for a {}-byte input", bytes.len());
}

#[test]
fn claimed_lengths_beyond_the_input_allocate_nothing_proportional() {
    // MessagePack: bin32 and array32 claiming 4 GiB.
    check_bounded(FormatId::MsgPack, Method::Echo, b"\x81\xa7payload\xc6\xff\xff\xff\xff\x00");
    check_bounded(FormatId::MsgPack, Method::Digest, b"\x81\xa7records\xdd\xff\xff\xff\xff\x80");
    check_bounded(FormatId::MsgPack, Method::Digest, b"\x81\xa7records\x91\xdf\xff\xff\xff\xff");
    // Protobuf: a 2^40-byte field.
    check_bounded(FormatId::Protobuf, Method::Echo, &[0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x00]);
    check_bounded(FormatId::Protobuf, Method::Digest, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x22]);
    // bincode: a 2^40-byte payload, 2^40 records, a 2^40-byte name.
    check_bounded(FormatId::Bincode, Method::Echo, &[0xfd, 0, 0, 0, 0, 0, 1, 0, 0, 0x01]);
    check_bounded(FormatId::Bincode, Method::Digest, &[0xfd, 0, 0, 0, 0, 0, 1, 0, 0, 0x01]);
    check_bounded(FormatId::Bincode, Method::Digest, &[0x01, 0x01, 0x01, 0x01, 0xfd, 0, 0, 0, 0, 0, 1, 0, 0, 0x41]);
    // Cap'n Proto: a segment table claiming a 2 GiB segment; 2^29 segments.
    let huge_segment = [0u8, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0];
    check_bounded(FormatId::Capnp, Method::Digest, &huge_segment);
    check_bounded(FormatId::Capnp, Method::Digest, &[0xff, 0xff, 0xff, 0x1f, 1, 0, 0, 0, 0, 0, 0, 0]);
    // Packed: the same segment table, packed (tag 0xf0: bytes 4-7 set).
    check_bounded(FormatId::CapnpPacked, Method::Digest, &[0xf0, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00]);
    // Packed: a short zero-run bomb (each 2 bytes claim 2 KiB of zeros).
    let mut bomb = vec![0x10, 0x01];
    bomb.extend(std::iter::repeat_n([0x00, 0xff], 8).flatten());
    check_bounded(FormatId::CapnpPacked, Method::Digest, &bomb);

    // FlatBuffers and Cap'n Proto lists: a valid message with its payload
    // length patched to claim ~4 GiB / 2^29 elements.
    let echo = valid_request(FormatId::FlatBuffers, Workload::Echo { size: 40 });
    let data = Dataset::generate(Workload::Echo { size: 40 }, DEFAULT_SEED).payload;
    let at = echo.windows(data.len()).position(|w| w == data).unwrap() - 4;
    let mut lying = echo.clone();
    lying[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    check_bounded(FormatId::FlatBuffers, Method::Echo, &lying);

    let echo = valid_request(FormatId::Capnp, Workload::Echo { size: 40 });
    // The root struct's one pointer is the data list: its upper 29 bits
    // are the element count.
    let pointer = 16;
    let mut lying = echo.clone();
    let word = u64::from_le_bytes(lying[pointer..pointer + 8].try_into().unwrap());
    assert_eq!(word & 3, 1, "expected a list pointer at byte {pointer}: {echo:02x?}");
    lying[pointer..pointer + 8].copy_from_slice(&(word | (0x1fff_ffffu64 << 35)).to_le_bytes());
    check_bounded(FormatId::Capnp, Method::Echo, &lying);

    // CBOR: a byte string, an array and a text string claiming 2^31 (and a
    // byte string claiming 2^64 - 1).
    check_bounded(FormatId::Cbor, Method::Echo, b"\xa1\x67payload\x5a\x80\x00\x00\x00\x00");
    check_bounded(FormatId::Cbor, Method::Echo, b"\xa1\x67payload\x5b\xff\xff\xff\xff\xff\xff\xff\xff\x00");
    check_bounded(FormatId::Cbor, Method::Digest, b"\xa1\x67records\x9a\x80\x00\x00\x00\xa0");
    check_bounded(FormatId::Cbor, Method::Digest, b"\xa1\x67records\x81\xa1\x64name\x7a\x80\x00\x00\x00a");
    // Avro: a payload, a records array and a name claiming 2^31 (zigzag
    // varint 80 80 80 80 10); a negative length. Three bytes follow the
    // count, so that no reading of them is a valid DigestReply either.
    check_bounded(FormatId::Avro, Method::Echo, &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]);
    check_bounded(FormatId::Avro, Method::Echo, &[0x01, 0x00]);
    check_bounded(FormatId::Avro, Method::Digest, &[0x80, 0x80, 0x80, 0x80, 0x10, 0x02, 0x02, 0x02]);
    check_bounded(FormatId::Avro, Method::Digest, &[0x02, 0x02, 0x02, 0x02, 0x80, 0x80, 0x80, 0x80, 0x10, 0x41]);
    // postcard: the same three claims as LEB128 varints (80 80 80 80 08).
    check_bounded(FormatId::Postcard, Method::Echo, &[0x80, 0x80, 0x80, 0x80, 0x08, 0x00]);
    check_bounded(FormatId::Postcard, Method::Digest, &[0x80, 0x80, 0x80, 0x80, 0x08, 0x01, 0x01, 0x01]);
    check_bounded(FormatId::Postcard, Method::Digest, &[0x01, 0x01, 0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x08, 0x41]);
    // bitcode: a length of 255 or more is the byte ff then the length in a
    // packed integer column (02: 32-bit words); here 2^31 payload bytes and
    // 2^31 records.
    check_bounded(FormatId::Bitcode, Method::Echo, &[0xff, 0x02, 0x00, 0x00, 0x00, 0x80, 0x07]);
    check_bounded(FormatId::Bitcode, Method::Digest, &[0xff, 0x02, 0x00, 0x00, 0x00, 0x80, 0x01, 0x01, 0x01]);
    // rkyv: a valid message with its payload's length patched to 2^31.
    let echo = valid_request(FormatId::Rkyv, Workload::Echo { size: 40 });
    let len = echo.len() - 4;
    assert_eq!(echo[len..], 40u32.to_le_bytes(), "the root is (offset, length) at the end: {echo:02x?}");
    let mut lying = echo.clone();
    lying[len..].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    check_bounded(FormatId::Rkyv, Method::Echo, &lying);
}

/// Varints that do not end where their type must: 11 bytes for a 64-bit
/// integer; for postcard also a 10th byte with bits beyond 64 (Avro's
/// reference implementations drop those bits, so Avro need not refuse it).
#[test]
fn overlong_varints_are_rejected() {
    let eleven = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    for (format, varint) in
        [(FormatId::Avro, &eleven[..]), (FormatId::Postcard, &eleven), (FormatId::Postcard, &overflow)]
    {
        // Multiply's `a`, then a valid `b`.
        let mut bytes = varint.to_vec();
        bytes.push(0x02);
        check_bounded(format, Method::Multiply, &bytes);
    }
    // The longest valid form is accepted: ten bytes for i64::MIN.
    let ten = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02];
    for format in [FormatId::Avro, FormatId::Postcard] {
        let decoded = format.visit(DecodeRequest(Method::Multiply, &ten));
        assert_eq!(decoded, Some(OwnedRequest::Multiply { a: i64::MIN, b: 1 }), "{format}");
    }
}

struct DecodeRequest<'a>(Method, &'a [u8]);
impl FormatVisitor for DecodeRequest<'_> {
    type Output = Option<OwnedRequest<Batch>>;
    fn visit<F: Format>(self) -> Self::Output {
        F::decode_request(self.0, self.1).ok().map(F::to_model)
    }
}

/// rkyv's relative pointers, pointing outside the buffer: before it, past
/// its end, and into the root itself. Validation refuses each request;
/// nothing is allocated for them. (Any 12 bytes at the end of a buffer are
/// a valid archived DigestReply, so the reply decoder is not asked to
/// refuse a Digest request.)
#[test]
fn rkyv_pointers_out_of_bounds_are_rejected() {
    for workload in [Workload::Echo { size: 40 }, Workload::Digest { records: 3 }] {
        let bytes = valid_request(FormatId::Rkyv, workload);
        // The root of both messages is one list: (i32 offset, u32 length),
        // the offset relative to the pointer itself, at the end.
        let at = bytes.len() - 8;
        let offset = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert!(offset < 0, "{workload}: the list lies before its pointer");
        for bad in [i32::MIN, -(at as i32) - 1, 1, 8, 0x7fff_ffff] {
            let mut lying = bytes.clone();
            lying[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            PEAK.with(|p| p.set(0));
            let [request, _, access, served] = decode_all(FormatId::Rkyv, workload.method(), &lying);
            assert!(!request && !access && !served, "{workload}: offset {bad} was accepted");
            let peak = PEAK.with(Cell::get);
            assert!(peak <= 64 << 10, "{workload}: offset {bad}: allocated {peak} bytes");
        }
    }
    // Thrift: lists of records, payloads and names claiming 2^31 - 1, 2^31
    // (negative as an i32) and 48 Mi elements or bytes (under the
    // library's own 100 MiB limits, so only the limits set from the input
    // stop them).
    for size in [0x7fff_ffffu32, 0x8000_0000, 0x0300_0000] {
        let be = size.to_be_bytes();
        check_bounded(FormatId::ThriftBinary, Method::Digest, &[&[0x0f, 0x00, 0x01, 0x0c][..], &be, &[0x00]].concat());
        check_bounded(FormatId::ThriftBinary, Method::Echo, &[&[0x0b, 0x00, 0x01][..], &be, &[0x00]].concat());
        let name = [&[0x0f, 0x00, 0x01, 0x0c, 0, 0, 0, 1, 0x0b, 0x00, 0x04][..], &be, b"x"].concat();
        check_bounded(FormatId::ThriftBinary, Method::Digest, &name);
        let mut varint = Vec::new();
        let mut v = size;
        while v >= 0x80 {
            varint.push(v as u8 | 0x80);
            v >>= 7;
        }
        varint.push(v as u8);
        check_bounded(FormatId::ThriftCompact, Method::Digest, &[&[0x19, 0xfc][..], &varint, &[0x00]].concat());
        check_bounded(FormatId::ThriftCompact, Method::Echo, &[&[0x18][..], &varint, &[0x00]].concat());
        check_bounded(FormatId::ThriftCompact, Method::Digest, &[&[0x19, 0x1c, 0x48][..], &varint, b"x"].concat());
    }

    // Hessian: a 2^31 - 1 record list, a final binary chunk claiming 64 KiB,
    // a class definition claiming 2^31 - 1 fields, and a string claiming
    // 64 Ki characters.
    const BATCH: &[u8] = b"C\x0fwirebench.Batch\x91\x07records\x60";
    check_bounded(FormatId::Hessian, Method::Digest, &[BATCH, b"\x58I\x7f\xff\xff\xff\x60"].concat());
    check_bounded(FormatId::Hessian, Method::Echo, b"C\x15wirebench.EchoRequest\x91\x07payload\x60B\xff\xff\x00");
    check_bounded(FormatId::Hessian, Method::Digest, b"C\x0fwirebench.BatchI\x7f\xff\xff\xff\x07records");
    check_bounded(FormatId::Hessian, Method::Digest, &[BATCH, b"\x79C\x10wirebench.RecordS\xff\xffid"].concat());
}

/// Hessian references: to nothing, to a value still being read, and many
/// references to one large record, which would make a 20 KB message decode
/// to thousands of copies of it.
#[test]
fn hessian_references_are_checked_and_their_expansion_bounded() {
    const BATCH: &[u8] = b"C\x0fwirebench.Batch\x91\x07records\x60";
    // The batch is value 0 and its list value 1; value 5 does not exist.
    // Then a record that is the list it is in, and an object of a class
    // not defined yet.
    for (tail, error) in [
        (&b"\x79\x51\x95"[..], "reference 5 with 2 values defined"),
        (b"\x79\x51\x91", "reference 1 is to a value still being read"),
        (b"\x79\x61", "object of class 1 with 1 classes defined"),
    ] {
        let bytes = [BATCH, tail].concat();
        check_bounded(FormatId::Hessian, Method::Digest, &bytes);
        let err = Hessian::decode_request(Method::Digest, &bytes).unwrap_err();
        assert!(err.to_string().contains(error), "{err}");
    }

    let mut batch = Dataset::generate(Workload::Digest { records: 1 }, DEFAULT_SEED).batch;
    batch.records[0].tags = vec![String::new(); 5000];
    let one = valid_request_of(FormatId::Hessian, &batch);
    assert_eq!(one[BATCH.len()], 0x79, "a one-record list follows the batch header");
    let mut bomb = one.clone();
    bomb[BATCH.len()] = 0x57; // a variable-length list, so references can follow
    for _ in 0..5000 {
        bomb.extend([0x51, 0x92]); // the record: value 2
    }
    bomb.push(b'Z');
    check_bounded(FormatId::Hessian, Method::Digest, &bomb);
    let err = Hessian::decode_request(Method::Digest, &bomb).unwrap_err();
    assert!(err.to_string().contains("units of work per input byte"), "{err}");
    // A few references are what Java writes for shared objects: fine.
    let mut shared = one;
    shared[BATCH.len()] = 0x7b;
    shared.extend([0x51, 0x92, 0x51, 0x92]);
    let OwnedRequest::Digest { batch: back } = Hessian::decode_request(Method::Digest, &shared).unwrap() else {
        unreachable!()
    };
    assert_eq!(back.records, vec![batch.records[0].clone(); 3]);
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// Found by cargo-fuzz (fuzz/regressions/): a list of zero-sized structs
/// takes no space, so 32 bytes of Cap'n Proto used to decode to 8 million
/// records (5 s and 1.5 GB). The work a message causes must be bounded by
/// its size: it is rejected, and what it allocates is bounded (the time is
/// not asserted; the rejection is what bounds it).
#[test]
fn tiny_messages_cannot_claim_millions_of_records() {
    let unpacked = from_hex("0000000003000000000000000000010001000000070000000048e80100000000");
    let packed = from_hex("100340011101070e48e801");
    for (format, bytes) in [(FormatId::Capnp, &unpacked), (FormatId::CapnpPacked, &packed)] {
        PEAK.with(|p| p.set(0));
        // The reply decoder reads two scalars whatever the root holds; the
        // request paths are the ones that walk the records.
        let [request, _, access, served] = decode_all(format, Method::Digest, bytes);
        assert!(!request && !access && !served, "{format} accepted a tiny message as millions of records");
        assert!(PEAK.with(Cell::get) < 1 << 20, "{format}: allocated {} bytes", PEAK.with(Cell::get));
    }
}

#[test]
fn nesting_bombs_are_rejected_without_overflowing_the_stack() {
    let deep_json = format!("{{\"records\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(decode_all(FormatId::Json, Method::Digest, deep_json.as_bytes()), [false; 4]);
    let mut deep_msgpack = b"\x81\xa7records".to_vec();
    deep_msgpack.extend(std::iter::repeat_n(0x91, 100_000));
    deep_msgpack.push(0x90);
    assert_eq!(decode_all(FormatId::MsgPack, Method::Digest, &deep_msgpack), [false; 4]);
    // Protobuf: nested length-delimited fields, each claiming the rest.
    let mut deep_pb = Vec::new();
    for _ in 0..200 {
        let mut outer = vec![0x0a];
        let mut len = deep_pb.len();
        while len >= 0x80 {
            outer.push((len as u8) | 0x80);
            len >>= 7;
        }
        outer.push(len as u8);
        outer.extend(deep_pb);
        deep_pb = outer;
    }
    decode_all(FormatId::Protobuf, Method::Digest, &deep_pb);
    // Thrift: an unknown struct field nested 100,000 deep.
    let mut deep_thrift = [0x0c, 0x00, 0x02].repeat(100_000);
    deep_thrift.extend(std::iter::repeat_n(0x00, 100_001));
    assert_eq!(decode_all(FormatId::ThriftBinary, Method::Digest, &deep_thrift), [false; 4]);
    let mut deep_compact = [0x2c].repeat(100_000);
    deep_compact.extend(std::iter::repeat_n(0x00, 100_001));
    assert_eq!(decode_all(FormatId::ThriftCompact, Method::Digest, &deep_compact), [false; 4]);
    // Hessian: a batch as a map with an unknown field of nested lists.
    let mut deep_hessian = b"H\x05extra".to_vec();
    deep_hessian.extend(std::iter::repeat_n(0x79, 100_000));
    deep_hessian.extend(b"\x78Z");
    assert_eq!(decode_all(FormatId::Hessian, Method::Digest, &deep_hessian), [false; 4]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), method in 0usize..3) {
        for &format in FormatId::ALL {
            decode_all(format, Method::ALL[method], &bytes);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        workload in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let workload = SMALL[workload];
        for &format in FormatId::ALL {
            let mut bytes = valid_request(format, workload);
            for (at, byte, kind) in &edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = *byte,
                    1 => bytes.insert(i, *byte),
                    _ => { bytes.remove(i); }
                }
            }
            decode_all(format, workload.method(), &bytes);
        }
    }
}

#[test]
fn decode_errors_name_the_format_and_message() {
    let err = wirebench_formats::format::json::Json::decode_request(Method::Digest, b"{").unwrap_err();
    assert!(matches!(&err, CodecError::Decode(d) if d.format == "json" && d.message == "Batch"), "{err}");
    assert_eq!(std::mem::size_of::<CodecError>(), 16, "errors stay small for the hot path");
    assert!(err.to_string().starts_with("json: cannot decode Batch: "), "{err}");
}
