//! The one codec interface every format implements.
//!
//! Shaped for the hot path: encoding writes into caller-owned scratch that
//! is reused call after call (a `Vec<u8>` for most formats, the builder for
//! FlatBuffers and Cap'n Proto) and hands back the encoded bytes as a slice
//! of it, so no format pays for a copy its library would not make. The
//! server turns request bytes into reply bytes through [`Format::serve`],
//! which the zero-copy formats implement by reading the request in place.

use std::fmt;

use crate::FormatId;
use crate::contract::{Accessed, Batch, Code, Method, OwnedRequest, Reply, Status};
use crate::service::Service;

/// One serialization format. Every method is an associated function: a
/// format has no state but the caller's scratch, so the micro-benchmarks
/// monomorphize their timed loops over `F: Format` (the end-to-end cells
/// call through the harness's erased codec instead).
///
/// Every format marks its four message functions `#[inline(always)]`: each
/// matches on the method and holds the Digest batch's code beside
/// Multiply's, and left out of line it is one large function whose call,
/// frame and saved registers a 20 ns Multiply pays on every call (7 to
/// 9 ns of serde_json's, postcard's and prost's Multiply encode in the
/// `interface` bench). Inlined, the caller's match picks the arm and a
/// Multiply runs only Multiply's code, as a direct library call does.
pub trait Format: Send + Sync + 'static {
    /// The registry id, also the format byte on the wire.
    const ID: FormatId;
    /// The name in CLI flags, cell keys and reports.
    const NAME: &'static str;
    /// The subtype in `application/grpc+<subtype>`.
    const GRPC_SUBTYPE: &'static str;
    /// What the format is, for reports.
    const PROPERTIES: Properties;

    /// A request as an application using this library holds it before
    /// sending: the prost structs for Protobuf, the model structs for the
    /// rest. Built once per cell by [`Format::prepare`], outside timed loops.
    type Request: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;
    /// Reusable per-caller encoding state. One per client task or server
    /// connection; never shared.
    type Scratch: Default + Send + 'static;

    /// Converts a model request to this format's native request.
    fn prepare(request: &OwnedRequest<Batch>) -> Self::Request;

    /// Converts a native request back to the model (tests compare formats
    /// through it).
    fn to_model(request: Self::Request) -> OwnedRequest<Batch>;

    /// Encodes a request; the bytes live in `scratch` until the next call.
    fn encode_request<'s>(scratch: &'s mut Self::Scratch, request: &Self::Request) -> Result<&'s [u8], CodecError>;

    /// Decodes request bytes of `method` to an owned native request (the
    /// "decode" operation).
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError>;

    /// Encodes a reply; the bytes live in `scratch` until the next call.
    fn encode_reply<'s>(scratch: &'s mut Self::Scratch, reply: &Reply<'_>) -> Result<&'s [u8], CodecError>;

    /// Decodes reply bytes of `method`. Zero-copy formats borrow the echoed
    /// payload from `bytes`.
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError>;

    /// Reads every field of a request in place, validated (the "access"
    /// operation). Only the zero-copy formats support it.
    fn access_request(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        let _ = (method, bytes);
        Err(CodecError::unsupported(Self::NAME, "access in place"))
    }

    /// Reads every field of a request in place *without* validating it
    /// (the "access (unvalidated)" operation of the micro-benchmarks). Only
    /// the formats whose library offers it, as
    /// [`Properties::unvalidated_access`] says; never used on untrusted
    /// input, and never by the server.
    ///
    /// # Safety
    /// `bytes` must be a valid message of `method`'s request type, such as
    /// one this format encoded.
    unsafe fn access_request_unchecked(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        let _ = (method, bytes);
        Err(CodecError::unsupported(Self::NAME, "unvalidated access in place"))
    }

    /// The service's reply to a decoded request.
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status>;

    /// The server path: request bytes in, reply bytes (in `scratch`) out.
    /// The default decodes to owned, which is what the non-zero-copy
    /// formats' libraries do; the zero-copy formats override it to read in
    /// place.
    fn serve<'s>(
        service: &Service,
        scratch: &'s mut Self::Scratch,
        method: Method,
        request: &[u8],
    ) -> Result<&'s [u8], Status> {
        let request = Self::decode_request(method, request)?;
        let reply = Self::respond(service, &request)?;
        Ok(Self::encode_reply(scratch, &reply)?)
    }
}

/// The service's reply to a request held as model structs; shared by every
/// format whose native request is the model.
pub fn respond_owned<'r>(service: &Service, request: &'r OwnedRequest<Batch>) -> Result<Reply<'r>, Status> {
    Ok(match request {
        OwnedRequest::Multiply { a, b } => Reply::Multiply { product: service.multiply(*a, *b)? },
        OwnedRequest::Echo { payload } => Reply::Echo { payload: service.echo(payload) },
        OwnedRequest::Digest { batch } => Reply::Digest(service.digest(&batch.records)?),
    })
}

/// What a format is, for the `formats` command and the reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Properties {
    /// The library and version line, e.g. `serde_json 1`.
    pub library: &'static str,
    /// A reader needs no schema to make sense of the bytes.
    pub self_describing: bool,
    /// Where the schema lives: an IDL file in `formats/schemas/`, or the
    /// Rust types.
    pub schema: &'static str,
    /// The server reads requests in place, without building owned values.
    pub zero_copy: bool,
    /// How untrusted input is checked before the server reads it.
    pub validation: &'static str,
    /// The library offers an unchecked in-place read (benchmarked and
    /// labelled separately; never used on untrusted input).
    pub unvalidated_access: bool,
    /// Layout choices a reader of the bytes must know.
    pub layout: &'static str,
}

/// A failure of a codec. The details are boxed: errors are rare, and a
/// small error type keeps `Result<_, CodecError>` cheap to return on the
/// hot path, where every call returns one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid message (truncated, wrong types, lengths
    /// beyond the buffer, values outside the schema). The peer's fault.
    #[error("{}: cannot decode {}: {}", .0.format, .0.message, .0.reason)]
    Decode(Box<Detail>),
    /// The message could not be encoded (a value the format cannot
    /// represent). Our fault, not the peer's.
    #[error("{}: cannot encode {}: {}", .0.format, .0.message, .0.reason)]
    Encode(Box<Detail>),
    /// The format does not offer this operation.
    #[error("{}: does not support {}", .0.format, .0.message)]
    Unsupported(Box<Detail>),
}

/// What a [`CodecError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Format name.
    pub format: &'static str,
    /// Message name, e.g. `Batch` (the operation, for `Unsupported`).
    pub message: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl CodecError {
    /// A decode error of `format` for `message`.
    #[cold]
    pub fn decode(format: &'static str, message: &'static str, reason: impl fmt::Display) -> CodecError {
        CodecError::Decode(Box::new(Detail { format, message, reason: reason.to_string() }))
    }

    /// An encode error of `format` for `message`.
    #[cold]
    pub fn encode(format: &'static str, message: &'static str, reason: impl fmt::Display) -> CodecError {
        CodecError::Encode(Box::new(Detail { format, message, reason: reason.to_string() }))
    }

    /// `format` does not offer `operation`.
    #[cold]
    pub fn unsupported(format: &'static str, operation: &'static str) -> CodecError {
        CodecError::Unsupported(Box::new(Detail { format, message: operation, reason: String::new() }))
    }

    /// The details.
    pub fn detail(&self) -> &Detail {
        match self {
            CodecError::Decode(d) | CodecError::Encode(d) | CodecError::Unsupported(d) => d,
        }
    }
}

impl From<CodecError> for Status {
    fn from(e: CodecError) -> Status {
        let code = match e {
            CodecError::Decode(_) => Code::InvalidArgument,
            CodecError::Encode(_) => Code::Internal,
            CodecError::Unsupported(_) => Code::Unimplemented,
        };
        Status::new(code, e.to_string())
    }
}
