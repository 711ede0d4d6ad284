//! bincode 2.0.x (pinned: 3.0.0 is a tombstone, and the crate is flagged
//! unmaintained, RUSTSEC-2025-0141), `config::standard()`: little-endian,
//! variable-length integers (zigzag for signed), lengths as varint `u64`,
//! `Option` as a 0/1 byte, `kind` as its varint value, fields in the
//! order of the contract.
//!
//! Encoding uses bincode's own `Encode` impls. Decoding is written out per
//! message because bincode's `Vec` and `String` decoders allocate a claimed
//! length before checking that the input holds it (bounded only by a
//! compile-time limit); here every length is checked against the bytes
//! left first, so hostile input cannot make the decoder allocate more than
//! the input's size.

use std::borrow::Cow;

use ::bincode::de::read::Reader;
use ::bincode::de::{Decode, Decoder};
use ::bincode::enc::{Encode, Encoder};
use ::bincode::error::{AllowedEnumVariants, DecodeError, EncodeError};

use crate::FormatId;
use crate::codec::{CodecError, Format, Properties, respond_owned};
use crate::contract::{Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply, Status};
use crate::service::Service;

/// bincode.
#[derive(Debug)]
pub struct Bincode;

const NAME: &str = "bincode";

fn config() -> ::bincode::config::Configuration {
    ::bincode::config::standard()
}

/// A length prefix, checked against the input left: every element of a
/// list takes at least one byte, so a longer claim is a lie.
fn decode_len<D: Decoder>(d: &mut D) -> Result<usize, DecodeError> {
    let claimed = u64::decode(d)?;
    let len = usize::try_from(claimed).map_err(|_| DecodeError::OutsideUsizeRange(claimed))?;
    if d.reader().peek_read(len).is_none() {
        return Err(DecodeError::UnexpectedEnd { additional: len });
    }
    Ok(len)
}

fn decode_bytes<D: Decoder>(d: &mut D) -> Result<Vec<u8>, DecodeError> {
    let len = decode_len(d)?;
    let mut bytes = vec![0; len];
    d.reader().read(&mut bytes)?;
    Ok(bytes)
}

fn decode_string<D: Decoder>(d: &mut D) -> Result<String, DecodeError> {
    String::from_utf8(decode_bytes(d)?).map_err(|e| DecodeError::Utf8 { inner: e.utf8_error() })
}

fn decode_list<D: Decoder, T>(
    d: &mut D,
    mut item: impl FnMut(&mut D) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let len = decode_len(d)?;
    let mut list = Vec::with_capacity(len);
    for _ in 0..len {
        list.push(item(d)?);
    }
    Ok(list)
}

impl Encode for Kind {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        u32::from(self.value()).encode(e)
    }
}

impl<C> Decode<C> for Kind {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Kind, DecodeError> {
        let found = u32::decode(d)?;
        Kind::from_value(found).ok_or(DecodeError::UnexpectedVariant {
            type_name: "Kind",
            allowed: &AllowedEnumVariants::Range { min: 0, max: 4 },
            found,
        })
    }
}

impl Encode for Attribute {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.key.encode(e)?;
        self.value.encode(e)
    }
}

impl<C> Decode<C> for Attribute {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Attribute, DecodeError> {
        Ok(Attribute { key: decode_string(d)?, value: decode_string(d)? })
    }
}

impl Encode for Location {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.latitude.encode(e)?;
        self.longitude.encode(e)?;
        self.city.encode(e)
    }
}

impl<C> Decode<C> for Location {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Location, DecodeError> {
        Ok(Location { latitude: f64::decode(d)?, longitude: f64::decode(d)?, city: decode_string(d)? })
    }
}

impl Encode for Record {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.id.encode(e)?;
        self.user_id.encode(e)?;
        self.timestamp_micros.encode(e)?;
        self.name.encode(e)?;
        self.email.encode(e)?;
        self.kind.encode(e)?;
        self.score.encode(e)?;
        self.weight.encode(e)?;
        self.active.encode(e)?;
        self.tags.encode(e)?;
        self.attributes.encode(e)?;
        self.location.encode(e)?;
        self.fingerprint.encode(e)
    }
}

impl<C> Decode<C> for Record {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Record, DecodeError> {
        Ok(Record {
            id: u64::decode(d)?,
            user_id: u32::decode(d)?,
            timestamp_micros: i64::decode(d)?,
            name: decode_string(d)?,
            email: decode_string(d)?,
            kind: Kind::decode(d)?,
            score: f64::decode(d)?,
            weight: f32::decode(d)?,
            active: bool::decode(d)?,
            tags: decode_list(d, decode_string)?,
            attributes: decode_list(d, Attribute::decode)?,
            location: Option::<Location>::decode(d)?,
            fingerprint: decode_bytes(d)?,
        })
    }
}

impl Encode for Batch {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.records.encode(e)
    }
}

impl<C> Decode<C> for Batch {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Batch, DecodeError> {
        Ok(Batch { records: decode_list(d, Record::decode)? })
    }
}

impl Encode for DigestReply {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.records.encode(e)?;
        self.checksum.encode(e)
    }
}

impl<C> Decode<C> for DigestReply {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<DigestReply, DecodeError> {
        Ok(DigestReply { records: u32::decode(d)?, checksum: u64::decode(d)? })
    }
}

/// An echo payload on the wire: just the byte string.
struct Payload<'a>(&'a [u8]);

impl Encode for Payload<'_> {
    #[inline]
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.0.encode(e)
    }
}

struct OwnedPayload(Vec<u8>);

impl<C> Decode<C> for OwnedPayload {
    #[inline]
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<OwnedPayload, DecodeError> {
        decode_bytes(d).map(OwnedPayload)
    }
}

#[inline]
fn write<'s>(scratch: &'s mut Vec<u8>, message: &'static str, value: &impl Encode) -> Result<&'s [u8], CodecError> {
    scratch.clear();
    ::bincode::encode_into_std_write(value, scratch, config()).map_err(|e| CodecError::encode(NAME, message, e))?;
    Ok(scratch)
}

#[inline]
fn read<T: Decode<()>>(message: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) =
        ::bincode::decode_from_slice(bytes, config()).map_err(|e| CodecError::decode(NAME, message, e))?;
    if read != bytes.len() {
        return Err(CodecError::decode(
            NAME,
            message,
            format_args!("{} trailing bytes after the message", bytes.len() - read),
        ));
    }
    Ok(value)
}

impl Format for Bincode {
    const ID: FormatId = FormatId::Bincode;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = "bincode";
    const PROPERTIES: Properties = Properties {
        library: "bincode 2.0.1 (pinned)",
        self_describing: false,
        schema: "the Rust types (no IDL)",
        zero_copy: false,
        validation: "full parse to owned values; lengths checked against the input",
        unvalidated_access: false,
        layout: "config::standard(): varint integers, fields in contract order",
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
            OwnedRequest::Multiply { a, b } => write(scratch, "MultiplyRequest", &(*a, *b)),
            OwnedRequest::Echo { payload } => write(scratch, "EchoRequest", &Payload(payload)),
            OwnedRequest::Digest { batch } => write(scratch, "Batch", batch),
        }
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let (a, b) = read::<(i64, i64)>(message, bytes)?;
                OwnedRequest::Multiply { a, b }
            }
            Method::Echo => OwnedRequest::Echo { payload: read::<OwnedPayload>(message, bytes)?.0 },
            Method::Digest => OwnedRequest::Digest { batch: read(message, bytes)? },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Vec<u8>, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        match reply {
            Reply::Multiply { product } => write(scratch, "MultiplyReply", product),
            Reply::Echo { payload } => write(scratch, "EchoReply", &Payload(payload)),
            Reply::Digest(d) => write(scratch, "DigestReply", d),
        }
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: read(message, bytes)? },
            Method::Echo => Reply::Echo { payload: Cow::Owned(read::<OwnedPayload>(message, bytes)?.0) },
            Method::Digest => Reply::Digest(read(message, bytes)?),
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        respond_owned(service, request)
    }
}
