//! Protobuf (proto3) with prost, from `formats/schemas/bench.proto`.
//!
//! An application using prost holds the generated structs, so this format's
//! native request is the prost message itself ([`PbRequest`]) and the
//! server computes the digest straight from the decoded `pb::Batch`,
//! without converting to the model.

use std::borrow::Cow;

use prost::Message;

use crate::FormatId;
use crate::checksum::RecordView;
use crate::codec::{CodecError, Format, Properties};
use crate::contract::{Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply, Status};
use crate::service::Service;

/// The prost messages generated from `bench.proto` (committed; regenerate
/// with `scripts/regen-schemas.sh`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod pb {
    include!("../generated/wirebench.rs");
}

/// Protobuf.
#[derive(Debug)]
pub struct Protobuf;

/// A request as a prost application holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum PbRequest {
    /// `MultiplyRequest`.
    Multiply(pb::MultiplyRequest),
    /// `EchoRequest`.
    Echo(pb::EchoRequest),
    /// `Batch`.
    Digest(pb::Batch),
}

const NAME: &str = "protobuf";

#[inline]
fn encode<'s>(scratch: &'s mut Vec<u8>, message: &impl Message) -> &'s [u8] {
    scratch.clear();
    // Encoding into a Vec cannot run out of room: prost's only error.
    message.encode(scratch).unwrap_or_else(|_| unreachable!("Vec<u8> grows as needed"));
    scratch
}

#[inline]
fn decode<M: Message + Default>(message: &'static str, bytes: &[u8]) -> Result<M, CodecError> {
    M::decode(bytes).map_err(|e| CodecError::decode(NAME, message, e))
}

impl Format for Protobuf {
    const ID: FormatId = FormatId::Protobuf;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = "proto";
    const PROPERTIES: Properties = Properties {
        library: "prost 0.14",
        self_describing: false,
        schema: "formats/schemas/bench.proto",
        zero_copy: false,
        validation: "full parse to owned values",
        unvalidated_access: false,
        layout: "proto3 wire format; absent location = unset message field",
    };

    type Request = PbRequest;
    type Scratch = Vec<u8>;

    fn prepare(request: &OwnedRequest<Batch>) -> PbRequest {
        match request {
            OwnedRequest::Multiply { a, b } => PbRequest::Multiply(pb::MultiplyRequest { a: *a, b: *b }),
            OwnedRequest::Echo { payload } => PbRequest::Echo(pb::EchoRequest { payload: payload.clone() }),
            OwnedRequest::Digest { batch } => PbRequest::Digest(to_pb(batch)),
        }
    }

    fn to_model(request: PbRequest) -> OwnedRequest<Batch> {
        match request {
            PbRequest::Multiply(m) => OwnedRequest::Multiply { a: m.a, b: m.b },
            PbRequest::Echo(e) => OwnedRequest::Echo { payload: e.payload },
            PbRequest::Digest(b) => OwnedRequest::Digest { batch: from_pb(b) },
        }
    }

    #[inline(always)]
    fn encode_request<'s>(scratch: &'s mut Vec<u8>, request: &PbRequest) -> Result<&'s [u8], CodecError> {
        Ok(match request {
            PbRequest::Multiply(m) => encode(scratch, m),
            PbRequest::Echo(e) => encode(scratch, e),
            PbRequest::Digest(b) => encode(scratch, b),
        })
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<PbRequest, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => PbRequest::Multiply(decode(message, bytes)?),
            Method::Echo => PbRequest::Echo(decode(message, bytes)?),
            Method::Digest => PbRequest::Digest(decode(message, bytes)?),
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Vec<u8>, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        Ok(match reply {
            Reply::Multiply { product } => encode(scratch, &pb::MultiplyReply { product: *product }),
            Reply::Echo { payload } => {
                // A prost server would move the request's Vec into the reply
                // struct; the reply here borrows it, so write the one field
                // with prost's own field encoders: the same bytes, no copy.
                scratch.clear();
                if !payload.is_empty() {
                    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, scratch);
                    prost::encoding::encode_varint(payload.len() as u64, scratch);
                    scratch.extend_from_slice(payload);
                }
                scratch
            }
            Reply::Digest(d) => encode(scratch, &pb::DigestReply { records: d.records, checksum: d.checksum }),
        })
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: decode::<pb::MultiplyReply>(message, bytes)?.product },
            Method::Echo => Reply::Echo { payload: Cow::Owned(decode::<pb::EchoReply>(message, bytes)?.payload) },
            Method::Digest => {
                let d: pb::DigestReply = decode(message, bytes)?;
                Reply::Digest(DigestReply { records: d.records, checksum: d.checksum })
            }
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r PbRequest) -> Result<Reply<'r>, Status> {
        Ok(match request {
            PbRequest::Multiply(m) => Reply::Multiply { product: service.multiply(m.a, m.b)? },
            PbRequest::Echo(e) => Reply::Echo { payload: service.echo(&e.payload) },
            PbRequest::Digest(b) => Reply::Digest(service.digest(&b.records)?),
        })
    }
}

impl RecordView for pb::Record {
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
        // proto3 enums are open: prost keeps values outside the schema.
        u32::try_from(self.kind)
            .ok()
            .and_then(Kind::from_value)
            .ok_or_else(|| CodecError::decode(NAME, "Record", format_args!("kind {} is not in the schema", self.kind)))
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

/// The prost batch of a model batch.
pub fn to_pb(batch: &Batch) -> pb::Batch {
    pb::Batch {
        records: batch
            .records
            .iter()
            .map(|r| pb::Record {
                id: r.id,
                user_id: r.user_id,
                timestamp_micros: r.timestamp_micros,
                name: r.name.clone(),
                email: r.email.clone(),
                kind: i32::from(r.kind.value()),
                score: r.score,
                weight: r.weight,
                active: r.active,
                tags: r.tags.clone(),
                attributes: r
                    .attributes
                    .iter()
                    .map(|a| pb::Attribute { key: a.key.clone(), value: a.value.clone() })
                    .collect(),
                location: r.location.as_ref().map(|l| pb::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    city: l.city.clone(),
                }),
                fingerprint: r.fingerprint.clone(),
            })
            .collect(),
    }
}

/// The model batch of a prost batch. A kind outside the schema becomes
/// `Kind::Unknown`; the server path rejects such records instead.
pub fn from_pb(batch: pb::Batch) -> Batch {
    Batch {
        records: batch
            .records
            .into_iter()
            .map(|r| Record {
                id: r.id,
                user_id: r.user_id,
                timestamp_micros: r.timestamp_micros,
                kind: u32::try_from(r.kind).ok().and_then(Kind::from_value).unwrap_or_default(),
                name: r.name,
                email: r.email,
                score: r.score,
                weight: r.weight,
                active: r.active,
                tags: r.tags,
                attributes: r.attributes.into_iter().map(|a| Attribute { key: a.key, value: a.value }).collect(),
                location: r.location.map(|l| Location { latitude: l.latitude, longitude: l.longitude, city: l.city }),
                fingerprint: r.fingerprint,
            })
            .collect(),
    }
}
