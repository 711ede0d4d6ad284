//! bitcode 0.6 through its derive API (`bitcode::Encode`/`Decode`), the one
//! its documentation recommends for speed and size over its serde API.
//! The derives live on this module's own message types ([`bc`]), which
//! are what a bitcode user's application holds (as the prost types are for
//! Protobuf); `prepare`/`to_model` convert outside every timed loop.
//!
//! bitcode's format is its own: columnar (all values of one field of every
//! record together, then bit-packed), documented only by its source, and
//! "subject to change between major versions". No implementation outside
//! Rust reads it, so `formats/tests/golden/bitcode/` pins the bytes of
//! this version and no cross-language check is possible. Messages: Multiply
//! `bc::MultiplyRequest`/`bc::MultiplyReply`; Echo the payload as a bare
//! byte list (a one-field struct encodes exactly as its field); Digest
//! `bc::Batch`/`bc::DigestReply`.
//!
//! Encoding reuses a `bitcode::Buffer` per caller, the library's way to
//! keep its allocations between messages. Decoding checks every length
//! against the input before it allocates for it (the library sums each
//! column's lengths and checks them against the bytes left; a packed
//! column unpacks to at most 8 values per input byte), which
//! `formats/tests/hostile_input.rs` checks with its allocation bound.

use std::borrow::Cow;

use crate::FormatId;
use crate::checksum::RecordView;
use crate::codec::{CodecError, Format, Properties};
use crate::contract::{self, Kind, Method, OwnedRequest, Reply, Status};
use crate::service::Service;

/// bitcode.
#[derive(Debug)]
pub struct Bitcode;

const NAME: &str = "bitcode";

/// The message types with bitcode's derives.
pub mod bc {
    use ::bitcode::{Decode, Encode};

    /// Multiply's request.
    #[derive(Encode, Decode, Clone, Copy, Debug, PartialEq)]
    pub struct MultiplyRequest {
        /// Left operand.
        pub a: i64,
        /// Right operand.
        pub b: i64,
    }

    /// Multiply's reply.
    #[derive(Encode, Decode, Clone, Copy, Debug, PartialEq)]
    pub struct MultiplyReply {
        /// `a * b`.
        pub product: i64,
    }

    /// The event kind; bitcode refuses a variant index outside it.
    #[derive(Encode, Decode, Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kind {
        /// 0.
        Unknown,
        /// 1.
        Click,
        /// 2.
        View,
        /// 3.
        Purchase,
        /// 4.
        Refund,
    }

    /// A key/value attribute.
    #[derive(Encode, Decode, Clone, Debug, PartialEq)]
    pub struct Attribute {
        /// Name.
        pub key: String,
        /// Value.
        pub value: String,
    }

    /// Where an event happened.
    #[derive(Encode, Decode, Clone, Debug, PartialEq)]
    pub struct Location {
        /// Degrees north.
        pub latitude: f64,
        /// Degrees east.
        pub longitude: f64,
        /// City name.
        pub city: String,
    }

    /// One row of Digest, fields in the contract's order.
    #[derive(Encode, Decode, Clone, Debug, PartialEq)]
    pub struct Record {
        /// Row id.
        pub id: u64,
        /// Owning user.
        pub user_id: u32,
        /// Microseconds since the Unix epoch.
        pub timestamp_micros: i64,
        /// Display name.
        pub name: String,
        /// E-mail address.
        pub email: String,
        /// Event kind.
        pub kind: Kind,
        /// Score.
        pub score: f64,
        /// Weight.
        pub weight: f32,
        /// Whether the row is active.
        pub active: bool,
        /// Tags.
        pub tags: Vec<String>,
        /// Attributes.
        pub attributes: Vec<Attribute>,
        /// Optional location.
        pub location: Option<Location>,
        /// A small byte field.
        pub fingerprint: Vec<u8>,
    }

    /// Digest's request.
    #[derive(Encode, Decode, Clone, Debug, PartialEq, Default)]
    pub struct Batch {
        /// The rows.
        pub records: Vec<Record>,
    }

    /// Digest's reply.
    #[derive(Encode, Decode, Clone, Copy, Debug, PartialEq)]
    pub struct DigestReply {
        /// How many records the server read.
        pub records: u32,
        /// The checksum.
        pub checksum: u64,
    }
}

/// Reusable encoding state: bitcode's own buffer.
#[derive(Default)]
pub struct Scratch(::bitcode::Buffer);

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("bitcode::Scratch").finish_non_exhaustive()
    }
}

fn bc_kind(kind: Kind) -> bc::Kind {
    match kind {
        Kind::Unknown => bc::Kind::Unknown,
        Kind::Click => bc::Kind::Click,
        Kind::View => bc::Kind::View,
        Kind::Purchase => bc::Kind::Purchase,
        Kind::Refund => bc::Kind::Refund,
    }
}

fn model_kind(kind: bc::Kind) -> Kind {
    match kind {
        bc::Kind::Unknown => Kind::Unknown,
        bc::Kind::Click => Kind::Click,
        bc::Kind::View => Kind::View,
        bc::Kind::Purchase => Kind::Purchase,
        bc::Kind::Refund => Kind::Refund,
    }
}

/// The model batch as bitcode's types (outside timed loops).
pub fn to_bc(batch: &contract::Batch) -> bc::Batch {
    bc::Batch {
        records: batch
            .records
            .iter()
            .map(|r| bc::Record {
                id: r.id,
                user_id: r.user_id,
                timestamp_micros: r.timestamp_micros,
                name: r.name.clone(),
                email: r.email.clone(),
                kind: bc_kind(r.kind),
                score: r.score,
                weight: r.weight,
                active: r.active,
                tags: r.tags.clone(),
                attributes: r
                    .attributes
                    .iter()
                    .map(|a| bc::Attribute { key: a.key.clone(), value: a.value.clone() })
                    .collect(),
                location: r.location.as_ref().map(|l| bc::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    city: l.city.clone(),
                }),
                fingerprint: r.fingerprint.clone(),
            })
            .collect(),
    }
}

fn to_model_batch(batch: bc::Batch) -> contract::Batch {
    contract::Batch {
        records: batch
            .records
            .into_iter()
            .map(|r| contract::Record {
                id: r.id,
                user_id: r.user_id,
                timestamp_micros: r.timestamp_micros,
                name: r.name,
                email: r.email,
                kind: model_kind(r.kind),
                score: r.score,
                weight: r.weight,
                active: r.active,
                tags: r.tags,
                attributes: r
                    .attributes
                    .into_iter()
                    .map(|a| contract::Attribute { key: a.key, value: a.value })
                    .collect(),
                location: r.location.map(|l| contract::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    city: l.city,
                }),
                fingerprint: r.fingerprint,
            })
            .collect(),
    }
}

#[inline]
fn read<'a, T: ::bitcode::Decode<'a>>(message: &'static str, bytes: &'a [u8]) -> Result<T, CodecError> {
    ::bitcode::decode(bytes).map_err(|e| CodecError::decode(NAME, message, e))
}

impl Format for Bitcode {
    const ID: FormatId = FormatId::Bitcode;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = "bitcode";
    const PROPERTIES: Properties = Properties {
        library: "bitcode 0.6 (derive)",
        self_describing: false,
        schema: "the Rust types (no IDL)",
        zero_copy: false,
        validation: "full parse to owned values",
        unvalidated_access: false,
        layout: "columnar, bit-packed; fields in contract order",
    };

    type Request = OwnedRequest<bc::Batch>;
    type Scratch = Scratch;

    fn prepare(request: &OwnedRequest<contract::Batch>) -> Self::Request {
        match request {
            OwnedRequest::Multiply { a, b } => OwnedRequest::Multiply { a: *a, b: *b },
            OwnedRequest::Echo { payload } => OwnedRequest::Echo { payload: payload.clone() },
            OwnedRequest::Digest { batch } => OwnedRequest::Digest { batch: to_bc(batch) },
        }
    }

    fn to_model(request: Self::Request) -> OwnedRequest<contract::Batch> {
        match request {
            OwnedRequest::Multiply { a, b } => OwnedRequest::Multiply { a, b },
            OwnedRequest::Echo { payload } => OwnedRequest::Echo { payload },
            OwnedRequest::Digest { batch } => OwnedRequest::Digest { batch: to_model_batch(batch) },
        }
    }

    #[inline(always)]
    fn encode_request<'s>(scratch: &'s mut Scratch, request: &Self::Request) -> Result<&'s [u8], CodecError> {
        Ok(match request {
            OwnedRequest::Multiply { a, b } => scratch.0.encode(&bc::MultiplyRequest { a: *a, b: *b }),
            OwnedRequest::Echo { payload } => scratch.0.encode(payload.as_slice()),
            OwnedRequest::Digest { batch } => scratch.0.encode(batch),
        })
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let bc::MultiplyRequest { a, b } = read(message, bytes)?;
                OwnedRequest::Multiply { a, b }
            }
            Method::Echo => OwnedRequest::Echo { payload: read(message, bytes)? },
            Method::Digest => OwnedRequest::Digest { batch: read(message, bytes)? },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Scratch, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        Ok(match reply {
            Reply::Multiply { product } => scratch.0.encode(&bc::MultiplyReply { product: *product }),
            Reply::Echo { payload } => scratch.0.encode(payload.as_ref()),
            Reply::Digest(d) => scratch.0.encode(&bc::DigestReply { records: d.records, checksum: d.checksum }),
        })
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: read::<bc::MultiplyReply>(message, bytes)?.product },
            Method::Echo => Reply::Echo { payload: Cow::Owned(read::<Vec<u8>>(message, bytes)?) },
            Method::Digest => {
                let bc::DigestReply { records, checksum } = read(message, bytes)?;
                Reply::Digest(contract::DigestReply { records, checksum })
            }
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        Ok(match request {
            OwnedRequest::Multiply { a, b } => Reply::Multiply { product: service.multiply(*a, *b)? },
            OwnedRequest::Echo { payload } => Reply::Echo { payload: service.echo(payload) },
            OwnedRequest::Digest { batch } => Reply::Digest(service.digest(&batch.records)?),
        })
    }
}

impl RecordView for bc::Record {
    fn id(&self) -> u64 {
        self.id
    }
    fn user_id(&self) -> u32 {
        self.user_id
    }
    fn timestamp_micros(&self) -> i64 {
        self.timestamp_micros
    }
    fn name(&self) -> Result<&str, CodecError> {
        Ok(&self.name)
    }
    fn email(&self) -> Result<&str, CodecError> {
        Ok(&self.email)
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        Ok(model_kind(self.kind))
    }
    fn score(&self) -> f64 {
        self.score
    }
    fn weight(&self) -> f32 {
        self.weight
    }
    fn active(&self) -> bool {
        self.active
    }
    fn for_each_tag(&self, mut f: impl FnMut(&str)) -> Result<usize, CodecError> {
        self.tags.iter().for_each(|t| f(t));
        Ok(self.tags.len())
    }
    fn for_each_attribute(&self, mut f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        self.attributes.iter().for_each(|a| f(&a.key, &a.value));
        Ok(self.attributes.len())
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        match &self.location {
            Some(l) => {
                f(l.latitude, l.longitude, &l.city);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        Ok(&self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn conversions_keep_every_field() {
        let batch = crate::dataset::batch(20, 5);
        assert_eq!(to_model_batch(to_bc(&batch)), batch);
    }

    #[test]
    fn a_borrowed_payload_encodes_as_an_owned_one() {
        let payload = vec![1u8, 2, 3, 250];
        let borrowed = ::bitcode::Buffer::new().encode(payload.as_slice()).to_vec();
        assert_eq!(borrowed, ::bitcode::encode(&payload));
    }
}
