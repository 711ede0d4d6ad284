//! Apache Avro with the `apache-avro` crate, from `formats/schemas/bench.avsc`:
//! the binary encoding of one datum per message, with neither the object
//! container file header nor the single-object prefix (the schema is agreed
//! in advance, as the RPC contract is). Python's `fastavro.schemaless_reader`
//! with the same `.avsc` reads these bytes (`scripts/crosscheck-wire.sh`).
//!
//! Layout, from the schema: fields in schema order with no names or tags;
//! `long`s as zigzag varints; `double`/`float` little-endian IEEE-754;
//! `boolean` one byte; `string`/`bytes` a long length then the bytes;
//! arrays one block (a long count, the items, then a 0); `kind` an enum
//! (its index as a long, the symbols being the lowercase names); `location`
//! the union `["null", Location]` (branch index 0 or 1, then the value).
//! Avro has no unsigned types: `id` and `checksum` (u64) are the `long`
//! with the same 64 bits, `user_id` and `records` (u32) plain `long`s.
//!
//! The crate's schema-aware serde path is used both ways (`write_ser` and
//! `read_deser`: values go straight between the Rust types and the bytes,
//! not through `apache_avro::types::Value`), bytes fields through the crate's
//! `apache_avro::serde::bytes` helper. Writers and readers are built once
//! per message type, from the schema parsed once.
//!
//! Hostile input: the crate allocates a `bytes` or `string` field's claimed
//! length (up to its global 512 MiB limit) before it reads the bytes. So
//! every message is first walked against its schema without allocating
//! ([`check_lengths`]): each length and array count must fit in the bytes
//! left, every varint must end within 10 bytes, and the datum must end
//! where the input does. Only then does the crate decode it.

use std::borrow::Cow;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::writer::datum::GenericDatumWriter;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FormatId;
use crate::codec::{CodecError, Format, Properties, respond_owned};
use crate::contract::{Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply, Status};
use crate::format::serde_repr::list;
use crate::service::Service;

/// Avro.
#[derive(Debug)]
pub struct Avro;

const NAME: &str = "avro";

/// The schema file, compiled in.
pub const SCHEMA: &str = include_str!("../../schemas/bench.avsc");

/// The message types of `bench.avsc`, in the file's order; the constants
/// below index it (and [`CODECS`]).
const MESSAGES: [&str; 6] = ["MultiplyRequest", "MultiplyReply", "EchoRequest", "EchoReply", "Batch", "DigestReply"];
const MULTIPLY_REQUEST: usize = 0;
const MULTIPLY_REPLY: usize = 1;
const ECHO_REQUEST: usize = 2;
const ECHO_REPLY: usize = 3;
const BATCH: usize = 4;
const DIGEST_REPLY: usize = 5;

/// The parsed schema file: a union of the six message records.
static PARSED: LazyLock<Schema> = LazyLock::new(|| {
    // Invariant: `SCHEMA` is a constant compiled into the binary, and the
    // unit tests below parse it; parsing cannot fail at run time.
    #[allow(clippy::expect_used)]
    Schema::parse_str(SCHEMA).expect("bench.avsc parses (checked by the unit tests)")
});

/// One message type's schema, writer and reader.
struct Message {
    schema: &'static Schema,
    names: ResolvedSchema<'static>,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
}

/// Every message type, indexed as [`MESSAGES`].
static CODECS: LazyLock<Vec<Message>> = LazyLock::new(|| {
    // Invariant: as for `PARSED`; the tests build every message's codec.
    #[allow(clippy::expect_used)]
    messages().expect("bench.avsc has every message and resolves (checked by the unit tests)")
});

fn messages() -> Result<Vec<Message>, String> {
    let Schema::Union(union) = &*PARSED else {
        return Err("bench.avsc is not a list of records".into());
    };
    MESSAGES
        .iter()
        .map(|&name| {
            let schema = union
                .variants()
                .iter()
                .find(|s| matches!(s, Schema::Record(r) if r.name.name() == name))
                .ok_or_else(|| format!("bench.avsc has no record {name}"))?;
            let resolved = || ResolvedSchema::try_from(schema).map_err(|e| format!("{name}: {e}"));
            Ok(Message {
                schema,
                names: resolved()?,
                writer: GenericDatumWriter::builder(schema)
                    .resolved_schemata(resolved()?)
                    .build()
                    .map_err(|e| format!("{name}: {e}"))?,
                reader: GenericDatumReader::builder(schema)
                    .resolved_writer_schemata(resolved()?)
                    .build()
                    .map_err(|e| format!("{name}: {e}"))?,
            })
        })
        .collect()
}

#[inline]
fn write<'s, T: Serialize>(scratch: &'s mut Vec<u8>, message: usize, value: &T) -> Result<&'s [u8], CodecError> {
    scratch.clear();
    CODECS[message].writer.write_ser(scratch, value).map_err(|e| CodecError::encode(NAME, MESSAGES[message], e))?;
    Ok(scratch)
}

#[inline]
fn read<T: DeserializeOwned>(index: usize, bytes: &[u8]) -> Result<T, CodecError> {
    let (codec, message) = (&CODECS[index], MESSAGES[index]);
    let mut rest = bytes;
    check_lengths(codec.schema, codec.names.get_names(), &mut rest, 0)
        .map_err(|e| CodecError::decode(NAME, message, e))?;
    if !rest.is_empty() {
        return Err(CodecError::decode(NAME, message, format_args!("{} trailing bytes after the message", rest.len())));
    }
    let mut reader = bytes;
    codec.reader.read_deser(&mut reader).map_err(|e| CodecError::decode(NAME, message, e))
}

/// Nesting deeper than this is refused. `bench.avsc` nests four deep
/// (Batch, records, Record, location); the limit only guards the walk
/// against a recursive schema.
const MAX_DEPTH: usize = 32;

/// Walks one datum of `schema` at the start of `input`, advancing past it,
/// without allocating: every `bytes`/`string` length and array block count
/// must fit in the bytes left (each array item of `bench.avsc` takes at
/// least one byte), every varint must end within 10 bytes. Values are not
/// checked here (UTF-8, enum and union indexes out of range): the decoder
/// does that.
pub fn check_lengths(schema: &Schema, names: &NamesRef<'_>, input: &mut &[u8], depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    match schema {
        Schema::Null => {}
        Schema::Boolean => skip(input, 1)?,
        Schema::Int | Schema::Long | Schema::Enum(_) => {
            long(input)?;
        }
        Schema::Float => skip(input, 4)?,
        Schema::Double => skip(input, 8)?,
        Schema::Bytes | Schema::String => {
            let len = long(input)?;
            let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
            if len > input.len() {
                return Err(format!("a length of {len} bytes with {} left", input.len()));
            }
            *input = &input[len..];
        }
        Schema::Record(record) => {
            for field in &record.fields {
                check_lengths(&field.schema, names, input, depth + 1)?;
            }
        }
        Schema::Array(array) => loop {
            let count = long(input)?;
            if count == 0 {
                break;
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                long(input)?;
            }
            let count = count.unsigned_abs();
            if count > input.len() as u64 {
                return Err(format!("an array block of {count} items with {} bytes left", input.len()));
            }
            for _ in 0..count {
                check_lengths(&array.items, names, input, depth + 1)?;
            }
        },
        Schema::Union(union) => {
            let index = long(input)?;
            let variant = usize::try_from(index)
                .ok()
                .and_then(|i| union.variants().get(i))
                .ok_or_else(|| format!("union branch {index} is not in the schema"))?;
            check_lengths(variant, names, input, depth + 1)?;
        }
        Schema::Ref { name } => {
            let schema = names.get(name).ok_or_else(|| format!("unresolved schema reference {name}"))?;
            check_lengths(schema, names, input, depth + 1)?;
        }
        other => {
            return Err(format!(
                "schema type {:?} is not used by bench.avsc",
                apache_avro::schema::SchemaKind::from(other)
            ));
        }
    }
    Ok(())
}

fn skip(input: &mut &[u8], n: usize) -> Result<(), String> {
    if input.len() < n {
        return Err(format!("{n} bytes needed, {} left", input.len()));
    }
    *input = &input[n..];
    Ok(())
}

/// A zigzag varint `long`: at most 10 bytes.
fn long(input: &mut &[u8]) -> Result<i64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = input.split_first().ok_or("the input ends inside a varint")?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("a varint longer than 10 bytes".into())
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "MultiplyRequest")]
struct MultiplyRequest {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "MultiplyReply")]
struct MultiplyReply {
    product: i64,
}

/// Echo's request and reply have one shape under two names (the schema
/// checks the record name), so the name is a value here.
struct Echo<'a> {
    name: &'static str,
    payload: &'a [u8],
}

impl Serialize for Echo<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct(self.name, 1)?;
        s.serialize_field("payload", &AvroBytes(self.payload))?;
        s.end()
    }
}

#[derive(Deserialize)]
#[serde(rename = "EchoRequest")]
struct EchoRequestIn {
    #[serde(with = "apache_avro::serde::bytes")]
    payload: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename = "EchoReply")]
struct EchoReplyIn {
    #[serde(with = "apache_avro::serde::bytes")]
    payload: Vec<u8>,
}

/// A borrowed byte field through the crate's bytes helper.
struct AvroBytes<'a>(&'a [u8]);

impl Serialize for AvroBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        apache_avro::serde::bytes::serialize(self.0, serializer)
    }
}

/// A u64 as the `long` with the same bits.
mod long_bits {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(*v as i64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        i64::deserialize(deserializer).map(|v| v as u64)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Kind", rename = "Kind", rename_all = "lowercase")]
enum KindDef {
    Unknown,
    Click,
    View,
    Purchase,
    Refund,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Record", rename = "Record")]
struct RecordDef {
    #[serde(with = "long_bits")]
    id: u64,
    user_id: u32,
    timestamp_micros: i64,
    name: String,
    email: String,
    #[serde(with = "KindDef")]
    kind: Kind,
    score: f64,
    weight: f32,
    active: bool,
    #[serde(with = "list")]
    tags: Vec<String>,
    #[serde(with = "list")]
    attributes: Vec<Attribute>,
    location: Option<Location>,
    #[serde(with = "apache_avro::serde::bytes")]
    fingerprint: Vec<u8>,
}

/// A record as an array item: the remote derive above, as a type.
#[derive(Deserialize)]
#[serde(transparent)]
struct RecordIn(#[serde(with = "RecordDef")] Record);

struct RecordOut<'a>(&'a Record);

impl Serialize for RecordOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RecordDef::serialize(self.0, serializer)
    }
}

mod records {
    use super::*;

    pub(super) fn serialize<S: Serializer>(records: &[Record], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(records.iter().map(RecordOut))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Record>, D::Error> {
        // `RecordIn` is a transparent newtype, so this collects in place.
        Ok(list::deserialize::<D, RecordIn>(deserializer)?.into_iter().map(|r| r.0).collect())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Batch", rename = "Batch")]
struct BatchDef {
    #[serde(with = "records")]
    records: Vec<Record>,
}

struct BatchOut<'a>(&'a Batch);

impl Serialize for BatchOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        BatchDef::serialize(self.0, serializer)
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
struct BatchIn(#[serde(with = "BatchDef")] Batch);

#[derive(Serialize, Deserialize)]
#[serde(remote = "DigestReply", rename = "DigestReply")]
struct DigestReplyDef {
    records: u32,
    #[serde(with = "long_bits")]
    checksum: u64,
}

struct DigestOut<'a>(&'a DigestReply);

impl Serialize for DigestOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DigestReplyDef::serialize(self.0, serializer)
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
struct DigestIn(#[serde(with = "DigestReplyDef")] DigestReply);

impl Format for Avro {
    const ID: FormatId = FormatId::Avro;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = "avro";
    const PROPERTIES: Properties = Properties {
        library: "apache-avro 0.22",
        self_describing: false,
        schema: "formats/schemas/bench.avsc",
        zero_copy: false,
        validation: "lengths walked against the schema, then a full parse to owned values",
        unvalidated_access: false,
        layout: "one binary datum per message, no container or single-object header",
    };

    type Request = OwnedRequest<Batch>;
    type Scratch = Vec<u8>;

    fn prepare(request: &OwnedRequest<Batch>) -> Self::Request {
        request.clone()
    }

    fn to_model(request: Self::Request) -> OwnedRequest<Batch> {
        request
    }

    #[inline(always)]
    fn encode_request<'s>(scratch: &'s mut Vec<u8>, request: &Self::Request) -> Result<&'s [u8], CodecError> {
        match request {
            OwnedRequest::Multiply { a, b } => write(scratch, MULTIPLY_REQUEST, &MultiplyRequest { a: *a, b: *b }),
            OwnedRequest::Echo { payload } => write(scratch, ECHO_REQUEST, &Echo { name: "EchoRequest", payload }),
            OwnedRequest::Digest { batch } => write(scratch, BATCH, &BatchOut(batch)),
        }
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        Ok(match method {
            Method::Multiply => {
                let MultiplyRequest { a, b } = read(MULTIPLY_REQUEST, bytes)?;
                OwnedRequest::Multiply { a, b }
            }
            Method::Echo => OwnedRequest::Echo { payload: read::<EchoRequestIn>(ECHO_REQUEST, bytes)?.payload },
            Method::Digest => OwnedRequest::Digest { batch: read::<BatchIn>(BATCH, bytes)?.0 },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Vec<u8>, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        match reply {
            Reply::Multiply { product } => write(scratch, MULTIPLY_REPLY, &MultiplyReply { product: *product }),
            Reply::Echo { payload } => write(scratch, ECHO_REPLY, &Echo { name: "EchoReply", payload }),
            Reply::Digest(d) => write(scratch, DIGEST_REPLY, &DigestOut(d)),
        }
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: read::<MultiplyReply>(MULTIPLY_REPLY, bytes)?.product },
            Method::Echo => Reply::Echo { payload: Cow::Owned(read::<EchoReplyIn>(ECHO_REPLY, bytes)?.payload) },
            Method::Digest => Reply::Digest(read::<DigestIn>(DIGEST_REPLY, bytes)?.0),
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        respond_owned(service, request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_schema_file_has_every_message() {
        let messages = messages().unwrap();
        assert_eq!(messages.len(), MESSAGES.len());
        for (message, name) in messages.iter().zip(MESSAGES) {
            assert!(matches!(message.schema, Schema::Record(r) if r.name.name() == name));
        }
    }

    #[test]
    fn varints_longer_than_ten_bytes_are_refused() {
        let mut ten = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..];
        assert_eq!(long(&mut ten), Ok(i64::MIN));
        let mut eleven = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00][..];
        assert!(long(&mut eleven).is_err());
    }

    #[test]
    fn ids_above_i64_max_keep_their_bits() {
        let mut record = crate::dataset::batch(1, 1).records.remove(0);
        record.id = u64::MAX - 1;
        let request = OwnedRequest::Digest { batch: Batch { records: vec![record] } };
        let mut scratch = Vec::new();
        let bytes = Avro::encode_request(&mut scratch, &request).unwrap().to_vec();
        assert_eq!(Avro::decode_request(Method::Digest, &bytes).unwrap(), request);
        // The id is the first field of the first record: zigzag(-2) = 3.
        assert_eq!(&bytes[..2], &[0x02, 0x03]);
    }
}
