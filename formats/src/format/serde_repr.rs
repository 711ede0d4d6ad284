//! The serde representation shared by the self-describing formats (JSON
//! and MessagePack): the message structs, and how bytes and the `Kind` enum
//! are written. One generic [`SerdeFormat`] implements [`Format`] for any
//! serde data format plugged in through [`SerdeCodec`].
//!
//! Layout, for readers in other languages: every message is a map keyed by
//! the field names of the contract (`{"a":..,"b":..}`, `{"product":..}`,
//! `{"payload":..}`, `{"records":[..]}`, `{"records":..,"checksum":..}`);
//! a missing location is `null`; bytes are standard base64 with padding in
//! JSON and `bin` in MessagePack; `kind` is the lowercase name in JSON and
//! the wire value (0-4) in MessagePack; 64-bit integers are plain numbers.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::FormatId;
use crate::codec::{CodecError, Format, Properties, respond_owned};
use crate::contract::{Batch, DigestReply, Kind, Method, OwnedRequest, Reply, Status};
use crate::service::Service;

/// A serde data format.
pub trait SerdeCodec: Send + Sync + 'static {
    /// Registry id.
    const ID: FormatId;
    /// Format name.
    const NAME: &'static str;
    /// gRPC content-type subtype.
    const GRPC_SUBTYPE: &'static str;
    /// Properties for reports.
    const PROPERTIES: Properties;
    /// The library's error type.
    type Error: fmt::Display;
    /// Appends `value` to `out`.
    fn write<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), Self::Error>;
    /// Reads a `T` from the whole of `bytes`.
    fn read<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Self::Error>;
}

/// [`Format`] for any [`SerdeCodec`].
#[derive(Debug)]
pub struct SerdeFormat<C>(PhantomData<C>);

#[derive(Serialize, Deserialize)]
struct MultiplyRequest {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize)]
struct MultiplyReply {
    product: i64,
}

#[derive(Serialize)]
struct EchoOut<'a> {
    #[serde(with = "bytes")]
    payload: &'a [u8],
}

#[derive(Deserialize)]
struct EchoIn {
    #[serde(with = "bytes")]
    payload: Vec<u8>,
}

impl<C: SerdeCodec> SerdeFormat<C> {
    #[inline]
    fn write<'s, T: Serialize>(
        scratch: &'s mut Vec<u8>,
        message: &'static str,
        value: &T,
    ) -> Result<&'s [u8], CodecError> {
        scratch.clear();
        C::write(scratch, value).map_err(|e| CodecError::encode(C::NAME, message, e))?;
        Ok(scratch)
    }

    #[inline]
    fn read<'de, T: Deserialize<'de>>(message: &'static str, bytes: &'de [u8]) -> Result<T, CodecError> {
        C::read(bytes).map_err(|e| CodecError::decode(C::NAME, message, e))
    }
}

impl<C: SerdeCodec> Format for SerdeFormat<C> {
    const ID: FormatId = C::ID;
    const NAME: &'static str = C::NAME;
    const GRPC_SUBTYPE: &'static str = C::GRPC_SUBTYPE;
    const PROPERTIES: Properties = C::PROPERTIES;

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
            OwnedRequest::Multiply { a, b } => {
                Self::write(scratch, "MultiplyRequest", &MultiplyRequest { a: *a, b: *b })
            }
            OwnedRequest::Echo { payload } => Self::write(scratch, "EchoRequest", &EchoOut { payload }),
            OwnedRequest::Digest { batch } => Self::write(scratch, "Batch", batch),
        }
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let MultiplyRequest { a, b } = Self::read(message, bytes)?;
                OwnedRequest::Multiply { a, b }
            }
            Method::Echo => OwnedRequest::Echo { payload: Self::read::<EchoIn>(message, bytes)?.payload },
            Method::Digest => OwnedRequest::Digest { batch: Self::read(message, bytes)? },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Vec<u8>, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        match reply {
            Reply::Multiply { product } => Self::write(scratch, "MultiplyReply", &MultiplyReply { product: *product }),
            Reply::Echo { payload } => Self::write(scratch, "EchoReply", &EchoOut { payload }),
            Reply::Digest(digest) => Self::write(scratch, "DigestReply", digest),
        }
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: Self::read::<MultiplyReply>(message, bytes)?.product },
            Method::Echo => Reply::Echo { payload: Cow::Owned(Self::read::<EchoIn>(message, bytes)?.payload) },
            Method::Digest => Reply::Digest(Self::read::<DigestReply>(message, bytes)?),
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        respond_owned(service, request)
    }
}

/// List fields. serde's own `Vec` impl pre-allocates from the length a
/// message claims (up to 1 MiB), so 15 bytes of MessagePack claiming four
/// billion records would allocate a megabyte. This caps pre-allocation at
/// 64 KiB and lets the vector grow with what actually arrives.
pub(crate) mod list {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: Serialize>(list: &[T], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(list)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let cap = (64 << 10) / std::mem::size_of::<T>().max(1);
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cap));
                while let Some(item) = seq.next_element()? {
                    list.push(item);
                }
                Ok(list)
            }
        }
        deserializer.deserialize_seq(ListVisitor(PhantomData))
    }
}

/// Byte fields: base64 in human-readable formats, native bytes otherwise.
pub(crate) mod bytes {
    use base64::Engine as _;
    use base64::display::Base64Display;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    pub(crate) fn serialize<S: Serializer, T: AsRef<[u8]>>(bytes: &T, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&Base64Display::new(bytes.as_ref(), &STANDARD))
        } else {
            serializer.serialize_bytes(bytes.as_ref())
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, or a base64 string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
                STANDARD.decode(s).map_err(|e| E::custom(format_args!("invalid base64: {e}")))
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Vec<u8>, E> {
                Ok(b.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(b)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor)
        } else {
            deserializer.deserialize_bytes(BytesVisitor)
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.name())
        } else {
            serializer.serialize_u8(self.value())
        }
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a kind: unknown, click, view, purchase or refund (or 0-4)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Kind, E> {
                Kind::from_name(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
                u32::try_from(v)
                    .ok()
                    .and_then(Kind::from_value)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(KindVisitor)
        } else {
            deserializer.deserialize_u8(KindVisitor)
        }
    }
}
