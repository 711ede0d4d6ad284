//! The RPC contract: call ids, the messages as plain Rust values, and the
//! status that travels instead of a reply when a call fails.
//!
//! The model types here are what an application using a serde or bincode
//! format would hold; Protobuf applications hold the prost types instead
//! (`protobuf::pb`), and the zero-copy formats read their own buffers. Each
//! format converts at most once, outside any timed loop.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A method of the `Bench` service, with its stable call id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Method {
    /// `{a, b}` -> `{product}`; overflow is an `OutOfRange` status.
    Multiply = 1,
    /// `{payload}` -> the same payload.
    Echo = 2,
    /// A batch of records -> `{records, checksum}` over every field.
    Digest = 3,
}

impl Method {
    /// Every method, in call-id order.
    pub const ALL: [Method; 3] = [Method::Multiply, Method::Echo, Method::Digest];

    /// The call id on the wire.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The method for a call id, if there is one.
    pub fn from_id(id: u8) -> Option<Method> {
        match id {
            1 => Some(Method::Multiply),
            2 => Some(Method::Echo),
            3 => Some(Method::Digest),
            _ => None,
        }
    }

    /// The method's name in the gRPC path (`/wirebench.Bench/<Name>`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Multiply => "Multiply",
            Method::Echo => "Echo",
            Method::Digest => "Digest",
        }
    }

    /// The method for a gRPC method name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The name of the request message (for error messages).
    pub fn request_message(self) -> &'static str {
        match self {
            Method::Multiply => "MultiplyRequest",
            Method::Echo => "EchoRequest",
            Method::Digest => "Batch",
        }
    }

    /// The name of the reply message (for error messages).
    pub fn reply_message(self) -> &'static str {
        match self {
            Method::Multiply => "MultiplyReply",
            Method::Echo => "EchoReply",
            Method::Digest => "DigestReply",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of event a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Kind {
    /// Proto3's zero value; the generator also produces it.
    #[default]
    Unknown = 0,
    /// A click.
    Click = 1,
    /// A page view.
    View = 2,
    /// A purchase.
    Purchase = 3,
    /// A refund.
    Refund = 4,
}

impl Kind {
    /// Every kind, in wire-value order.
    pub const ALL: [Kind; 5] = [Kind::Unknown, Kind::Click, Kind::View, Kind::Purchase, Kind::Refund];

    /// The wire value shared by every format.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The kind for a wire value; `None` for a value outside the schema.
    pub fn from_value(value: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| u32::from(k.value()) == value)
    }

    /// The lowercase name used by the self-describing formats.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unknown => "unknown",
            Kind::Click => "click",
            Kind::View => "view",
            Kind::Purchase => "purchase",
            Kind::Refund => "refund",
        }
    }

    /// The kind for a lowercase name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A key/value attribute of a record.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Attribute {
    /// Attribute name.
    pub key: String,
    /// Attribute value.
    pub value: String,
}

/// Where an event happened; optional in a record.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// City name (UTF-8, not always ASCII).
    pub city: String,
}

/// One realistic row of the Digest workload.
///
/// The serde derives are the JSON and MessagePack encodings: field names
/// as here, `fingerprint` as base64 in JSON and `bin` in MessagePack, `kind`
/// as its lowercase name in JSON and its wire value in MessagePack.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
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
    /// A double-precision score.
    pub score: f64,
    /// A single-precision weight.
    pub weight: f32,
    /// Whether the row is active.
    pub active: bool,
    /// Free-form tags, zero or more.
    #[serde(with = "crate::format::serde_repr::list")]
    pub tags: Vec<String>,
    /// Key/value attributes, zero or more.
    #[serde(with = "crate::format::serde_repr::list")]
    pub attributes: Vec<Attribute>,
    /// Optional nested struct.
    pub location: Option<Location>,
    /// A small byte field (16 bytes from the generator).
    #[serde(with = "crate::format::serde_repr::bytes")]
    pub fingerprint: Vec<u8>,
}

/// The request of Digest.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Batch {
    /// The rows, in order.
    #[serde(with = "crate::format::serde_repr::list")]
    pub records: Vec<Record>,
}

/// The reply of Digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct DigestReply {
    /// How many records the server read.
    pub records: u32,
    /// The checksum of every field of every record (see `checksum`).
    pub checksum: u64,
}

/// A request as the client side holds it before encoding. `B` is the
/// format's native batch type.
#[derive(Debug)]
pub enum Request<'a, B> {
    /// Multiply `a` by `b`.
    Multiply {
        /// Left operand.
        a: i64,
        /// Right operand.
        b: i64,
    },
    /// Echo `payload`.
    Echo {
        /// The bytes to echo.
        payload: &'a [u8],
    },
    /// Digest a batch.
    Digest {
        /// The batch.
        batch: &'a B,
    },
}

impl<B> Clone for Request<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Request<'_, B> {}

impl<B> Request<'_, B> {
    /// The method this request calls.
    pub fn method(&self) -> Method {
        match self {
            Request::Multiply { .. } => Method::Multiply,
            Request::Echo { .. } => Method::Echo,
            Request::Digest { .. } => Method::Digest,
        }
    }
}

/// A request decoded to owned values (the "decode" operation).
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedRequest<B> {
    /// Multiply `a` by `b`.
    Multiply {
        /// Left operand.
        a: i64,
        /// Right operand.
        b: i64,
    },
    /// Echo `payload`.
    Echo {
        /// The bytes to echo.
        payload: Vec<u8>,
    },
    /// Digest a batch.
    Digest {
        /// The batch.
        batch: B,
    },
}

/// A reply. Zero-copy formats borrow the echoed payload from the buffer;
/// the others own it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<'a> {
    /// The product.
    Multiply {
        /// `a * b`.
        product: i64,
    },
    /// The echoed payload.
    Echo {
        /// The payload.
        payload: Cow<'a, [u8]>,
    },
    /// The digest of a batch.
    Digest(DigestReply),
}

impl Reply<'_> {
    /// The method this reply answers.
    pub fn method(&self) -> Method {
        match self {
            Reply::Multiply { .. } => Method::Multiply,
            Reply::Echo { .. } => Method::Echo,
            Reply::Digest(_) => Method::Digest,
        }
    }
}

/// What an in-place read of a request found (the "access" operation of the
/// zero-copy formats): every field was read, nothing was copied.
#[derive(Clone, Debug, PartialEq)]
pub enum Accessed<'a> {
    /// The operands.
    Multiply {
        /// Left operand.
        a: i64,
        /// Right operand.
        b: i64,
    },
    /// The payload, in the buffer.
    Echo {
        /// The payload.
        payload: &'a [u8],
    },
    /// The checksum of the batch, computed in place.
    Digest(DigestReply),
}

/// A status code, numbered as gRPC's so that one table serves every
/// transport (the http2 transport sends them as `grpc-status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// The request was malformed or undecodable.
    InvalidArgument = 3,
    /// The call did not finish in time.
    DeadlineExceeded = 4,
    /// A message was larger than a limit.
    ResourceExhausted = 8,
    /// The arguments were valid but the result is out of range (Multiply
    /// overflow).
    OutOfRange = 11,
    /// Unknown method or format.
    Unimplemented = 12,
    /// A fault of the server.
    Internal = 13,
    /// The peer went away.
    Unavailable = 14,
}

impl Code {
    /// The numeric code on the wire.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The code for a wire value; unknown values map to `Internal`'s
    /// neighbour in meaning, `None`, so callers can report them verbatim.
    pub fn from_value(value: u32) -> Option<Code> {
        Some(match value {
            0 => Code::Ok,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            8 => Code::ResourceExhausted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            _ => return None,
        })
    }

    /// gRPC's name for the code.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed call: a code and a human-readable message, as in gRPC.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Status {
    /// What kind of failure.
    pub code: Code,
    /// Why, for a human.
    pub message: String,
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status { code, message: message.into() }
    }
}
