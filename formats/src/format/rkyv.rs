//! rkyv 0.8, zero-copy: the message is the archived value itself, and the
//! server reads the request where it lies in the frame, after bytecheck has
//! validated it (`rkyv::access`: every relative pointer and length in
//! bounds, every string UTF-8, every enum tag and `Option` tag valid).
//! [`access_request_unchecked`] skips the validation and exists only for
//! the micro-benchmarks, labelled "unvalidated".
//!
//! Format controls, which are part of the wire format: little-endian,
//! 32-bit relative pointers and lengths (rkyv's defaults), and **unaligned**
//! (the `unaligned` feature). Why unaligned: bytes off the network land at
//! whatever offset the transport's buffer gives them, and rkyv's default
//! archived primitives need their natural alignment (8 for `u64`/`f64`),
//! which validation checks. The alternative, copying every request into an
//! aligned buffer before access, would put a copy of the whole message
//! (1 MiB for the largest echo) in the server's path and make "zero-copy"
//! untrue. With `unaligned` every archived type has alignment 1, so the
//! request is validated and read at any offset, with no copy; reading an
//! unaligned `u64` costs nothing measurable on x86-64 and AArch64. The
//! bytes differ from an aligned build's (no padding), so the golden files
//! pin them.
//!
//! No implementation outside Rust reads rkyv's format (nor is its layout
//! specified apart from rkyv's source), so `formats/tests/golden/rkyv/`
//! pins the bytes and no cross-language check is possible.
//!
//! The derives live on this module's own message types ([`rk`]), which
//! are what an rkyv user's application holds; `prepare`/`to_model`
//! convert outside timed loops. Echo payloads are archived from a borrowed
//! slice (`InlineAsBox`), so neither side copies the payload into a vector
//! to encode it.

use std::borrow::Cow;

use ::rkyv::rancor;

use crate::FormatId;
use crate::checksum::RecordView;
use crate::codec::{CodecError, Format, Properties};
use crate::contract::{self, Accessed, Kind, Method, OwnedRequest, Reply, Status};
use crate::service::Service;

/// rkyv.
#[derive(Debug)]
pub struct Rkyv;

const NAME: &str = "rkyv";

/// The message types with rkyv's derives, and their archived forms.
pub mod rk {
    use ::rkyv::with::InlineAsBox;
    use ::rkyv::{Archive, Deserialize, Serialize};

    /// Multiply's request.
    #[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
    pub struct MultiplyRequest {
        /// Left operand.
        pub a: i64,
        /// Right operand.
        pub b: i64,
    }

    /// Multiply's reply.
    #[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
    pub struct MultiplyReply {
        /// `a * b`.
        pub product: i64,
    }

    /// Echo's request and reply: the payload, archived from a borrowed
    /// slice (it cannot be deserialized into this struct, only accessed).
    #[derive(Archive, Serialize, Debug)]
    pub struct Echo<'a> {
        /// The payload.
        #[rkyv(with = InlineAsBox)]
        pub payload: &'a [u8],
    }

    /// The event kind; validation refuses a tag outside it.
    #[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
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
    #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Attribute {
        /// Name.
        pub key: String,
        /// Value.
        pub value: String,
    }

    /// Where an event happened.
    #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Location {
        /// Degrees north.
        pub latitude: f64,
        /// Degrees east.
        pub longitude: f64,
        /// City name.
        pub city: String,
    }

    /// One row of Digest, fields in the contract's order.
    #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
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
    #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
    pub struct Batch {
        /// The rows.
        pub records: Vec<Record>,
    }

    /// Digest's reply.
    #[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
    pub struct DigestReply {
        /// How many records the server read.
        pub records: u32,
        /// The checksum.
        pub checksum: u64,
    }
}

/// Reusable encoding state: the output buffer. (rkyv's serializer arena is
/// its own thread-local, reused between messages.)
#[derive(Debug, Default)]
pub struct Scratch {
    out: Vec<u8>,
}

#[inline]
fn write<'s, T>(scratch: &'s mut Scratch, message: &'static str, value: &T) -> Result<&'s [u8], CodecError>
where
    T: for<'a> ::rkyv::Serialize<
            ::rkyv::api::high::HighSerializer<Vec<u8>, ::rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
        >,
{
    // The buffer moves into the serializer and back: its allocation is
    // reused (lost only if serializing fails).
    let mut out = std::mem::take(&mut scratch.out);
    out.clear();
    scratch.out = ::rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, out)
        .map_err(|e| CodecError::encode(NAME, message, e))?;
    Ok(&scratch.out)
}

/// Validates `bytes` as an archived `T` and returns it in place.
#[inline]
fn access<'b, T>(message: &'static str, bytes: &'b [u8]) -> Result<&'b T, CodecError>
where
    T: ::rkyv::Portable + for<'a> ::rkyv::bytecheck::CheckBytes<::rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    ::rkyv::access::<T, rancor::Error>(bytes).map_err(|e| CodecError::decode(NAME, message, e))
}

/// Validates and deserializes to owned values (the "decode" operation).
#[inline]
fn from_bytes<T>(message: &'static str, bytes: &[u8]) -> Result<T, CodecError>
where
    T: ::rkyv::Archive,
    T::Archived: for<'a> ::rkyv::bytecheck::CheckBytes<::rkyv::api::high::HighValidator<'a, rancor::Error>>
        + ::rkyv::Deserialize<T, ::rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    ::rkyv::from_bytes::<T, rancor::Error>(bytes).map_err(|e| CodecError::decode(NAME, message, e))
}

fn rk_kind(kind: Kind) -> rk::Kind {
    match kind {
        Kind::Unknown => rk::Kind::Unknown,
        Kind::Click => rk::Kind::Click,
        Kind::View => rk::Kind::View,
        Kind::Purchase => rk::Kind::Purchase,
        Kind::Refund => rk::Kind::Refund,
    }
}

fn model_kind(kind: rk::Kind) -> Kind {
    match kind {
        rk::Kind::Unknown => Kind::Unknown,
        rk::Kind::Click => Kind::Click,
        rk::Kind::View => Kind::View,
        rk::Kind::Purchase => Kind::Purchase,
        rk::Kind::Refund => Kind::Refund,
    }
}

fn archived_kind(kind: &rk::ArchivedKind) -> Kind {
    match kind {
        rk::ArchivedKind::Unknown => Kind::Unknown,
        rk::ArchivedKind::Click => Kind::Click,
        rk::ArchivedKind::View => Kind::View,
        rk::ArchivedKind::Purchase => Kind::Purchase,
        rk::ArchivedKind::Refund => Kind::Refund,
    }
}

/// The model batch as rkyv's types (outside timed loops).
pub fn to_rk(batch: &contract::Batch) -> rk::Batch {
    rk::Batch {
        records: batch
            .records
            .iter()
            .map(|r| rk::Record {
                id: r.id,
                user_id: r.user_id,
                timestamp_micros: r.timestamp_micros,
                name: r.name.clone(),
                email: r.email.clone(),
                kind: rk_kind(r.kind),
                score: r.score,
                weight: r.weight,
                active: r.active,
                tags: r.tags.clone(),
                attributes: r
                    .attributes
                    .iter()
                    .map(|a| rk::Attribute { key: a.key.clone(), value: a.value.clone() })
                    .collect(),
                location: r.location.as_ref().map(|l| rk::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    city: l.city.clone(),
                }),
                fingerprint: r.fingerprint.clone(),
            })
            .collect(),
    }
}

fn to_model_batch(batch: rk::Batch) -> contract::Batch {
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

impl Format for Rkyv {
    const ID: FormatId = FormatId::Rkyv;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = "rkyv";
    const PROPERTIES: Properties = Properties {
        library: "rkyv 0.8 (unaligned)",
        self_describing: false,
        schema: "the Rust types (no IDL)",
        zero_copy: true,
        validation: "bytecheck pass over the buffer, then in-place reads",
        unvalidated_access: true,
        layout: "little-endian, unaligned, 32-bit relative pointers; root at the end",
    };

    type Request = OwnedRequest<rk::Batch>;
    type Scratch = Scratch;

    fn prepare(request: &OwnedRequest<contract::Batch>) -> Self::Request {
        match request {
            OwnedRequest::Multiply { a, b } => OwnedRequest::Multiply { a: *a, b: *b },
            OwnedRequest::Echo { payload } => OwnedRequest::Echo { payload: payload.clone() },
            OwnedRequest::Digest { batch } => OwnedRequest::Digest { batch: to_rk(batch) },
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
        match request {
            OwnedRequest::Multiply { a, b } => write(scratch, "MultiplyRequest", &rk::MultiplyRequest { a: *a, b: *b }),
            OwnedRequest::Echo { payload } => write(scratch, "EchoRequest", &rk::Echo { payload }),
            OwnedRequest::Digest { batch } => write(scratch, "Batch", batch),
        }
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let rk::MultiplyRequest { a, b } = from_bytes(message, bytes)?;
                OwnedRequest::Multiply { a, b }
            }
            // The payload's owned form is the copy that deserializing would make.
            Method::Echo => {
                OwnedRequest::Echo { payload: access::<rk::ArchivedEcho<'_>>(message, bytes)?.payload.to_vec() }
            }
            Method::Digest => OwnedRequest::Digest { batch: from_bytes(message, bytes)? },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Scratch, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        match reply {
            Reply::Multiply { product } => write(scratch, "MultiplyReply", &rk::MultiplyReply { product: *product }),
            Reply::Echo { payload } => write(scratch, "EchoReply", &rk::Echo { payload }),
            Reply::Digest(d) => {
                write(scratch, "DigestReply", &rk::DigestReply { records: d.records, checksum: d.checksum })
            }
        }
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => {
                Reply::Multiply { product: access::<rk::ArchivedMultiplyReply>(message, bytes)?.product.to_native() }
            }
            Method::Echo => {
                Reply::Echo { payload: Cow::Borrowed(access::<rk::ArchivedEcho<'_>>(message, bytes)?.payload.get()) }
            }
            Method::Digest => {
                let d = access::<rk::ArchivedDigestReply>(message, bytes)?;
                Reply::Digest(contract::DigestReply {
                    records: d.records.to_native(),
                    checksum: d.checksum.to_native(),
                })
            }
        })
    }

    #[inline]
    fn access_request(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let m = access::<rk::ArchivedMultiplyRequest>(message, bytes)?;
                Accessed::Multiply { a: m.a.to_native(), b: m.b.to_native() }
            }
            Method::Echo => Accessed::Echo { payload: access::<rk::ArchivedEcho<'_>>(message, bytes)?.payload.get() },
            Method::Digest => {
                Accessed::Digest(Service::new().digest(access::<rk::ArchivedBatch>(message, bytes)?.records.iter())?)
            }
        })
    }

    /// # Safety
    /// `bytes` must be a valid rkyv message of `method`'s request type, such
    /// as one this module encoded.
    #[inline]
    unsafe fn access_request_unchecked(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        // SAFETY: forwarded; the caller guarantees `bytes` is valid.
        unsafe { access_request_unchecked(method, bytes) }
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        Ok(match request {
            OwnedRequest::Multiply { a, b } => Reply::Multiply { product: service.multiply(*a, *b)? },
            OwnedRequest::Echo { payload } => Reply::Echo { payload: service.echo(payload) },
            OwnedRequest::Digest { batch } => Reply::Digest(service.digest(&batch.records)?),
        })
    }

    #[inline]
    fn serve<'s>(
        service: &Service,
        scratch: &'s mut Scratch,
        method: Method,
        request: &[u8],
    ) -> Result<&'s [u8], Status> {
        let message = method.request_message();
        let reply = match method {
            Method::Multiply => {
                let m = access::<rk::ArchivedMultiplyRequest>(message, request)?;
                Reply::Multiply { product: service.multiply(m.a.to_native(), m.b.to_native())? }
            }
            Method::Echo => {
                Reply::Echo { payload: service.echo(access::<rk::ArchivedEcho<'_>>(message, request)?.payload.get()) }
            }
            Method::Digest => {
                Reply::Digest(service.digest(access::<rk::ArchivedBatch>(message, request)?.records.iter())?)
            }
        };
        Ok(Self::encode_reply(scratch, &reply)?)
    }
}

/// Reads every field of a request in place without validating it: the
/// "access (unvalidated)" operation of the micro-benchmarks.
///
/// # Safety
/// `bytes` must be a valid rkyv message of `method`'s request type, such
/// as one this module encoded. Untrusted bytes must go through
/// [`Rkyv::access_request`] instead.
pub unsafe fn access_request_unchecked(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
    // SAFETY: the caller guarantees `bytes` is a valid archive of the type.
    Ok(match method {
        Method::Multiply => {
            let m = unsafe { ::rkyv::access_unchecked::<rk::ArchivedMultiplyRequest>(bytes) };
            Accessed::Multiply { a: m.a.to_native(), b: m.b.to_native() }
        }
        Method::Echo => {
            Accessed::Echo { payload: unsafe { ::rkyv::access_unchecked::<rk::ArchivedEcho<'_>>(bytes) }.payload.get() }
        }
        Method::Digest => Accessed::Digest(
            Service::new().digest(unsafe { ::rkyv::access_unchecked::<rk::ArchivedBatch>(bytes) }.records.iter())?,
        ),
    })
}

impl RecordView for rk::ArchivedRecord {
    fn id(&self) -> u64 {
        self.id.to_native()
    }
    fn user_id(&self) -> u32 {
        self.user_id.to_native()
    }
    fn timestamp_micros(&self) -> i64 {
        self.timestamp_micros.to_native()
    }
    fn name(&self) -> Result<&str, CodecError> {
        Ok(self.name.as_str())
    }
    fn email(&self) -> Result<&str, CodecError> {
        Ok(self.email.as_str())
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        Ok(archived_kind(&self.kind))
    }
    fn score(&self) -> f64 {
        self.score.to_native()
    }
    fn weight(&self) -> f32 {
        self.weight.to_native()
    }
    fn active(&self) -> bool {
        self.active
    }
    fn for_each_tag(&self, mut f: impl FnMut(&str)) -> Result<usize, CodecError> {
        self.tags.iter().for_each(|t| f(t.as_str()));
        Ok(self.tags.len())
    }
    fn for_each_attribute(&self, mut f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        self.attributes.iter().for_each(|a| f(a.key.as_str(), a.value.as_str()));
        Ok(self.attributes.len())
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        Ok(match self.location.as_ref() {
            Some(l) => {
                f(l.latitude.to_native(), l.longitude.to_native(), l.city.as_str());
                true
            }
            None => false,
        })
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        Ok(self.fingerprint.as_slice())
    }
}

impl RecordView for rk::Record {
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

    use ::rkyv::util::AlignedVec;

    use super::*;
    use crate::dataset::{DEFAULT_SEED, Dataset, Workload};

    /// Copies `bytes` to an address one past an 8-byte boundary, the worst
    /// case for a `u64`, for the alignment tests.
    fn misaligned(bytes: &[u8]) -> (AlignedVec<8>, usize) {
        let mut buffer = AlignedVec::<8>::with_capacity(bytes.len() + 1);
        buffer.push(0);
        buffer.extend_from_slice(bytes);
        (buffer, 1)
    }

    #[test]
    fn conversions_keep_every_field() {
        let batch = crate::dataset::batch(20, 5);
        assert_eq!(to_model_batch(to_rk(&batch)), batch);
    }

    /// The reason for `unaligned`: a request at an odd address validates
    /// and reads the same as an aligned one, without a copy.
    #[test]
    fn requests_at_any_offset_are_read_in_place() {
        let data = Dataset::generate(Workload::Digest { records: 5 }, DEFAULT_SEED);
        let mut scratch = Scratch::default();
        let bytes = Rkyv::encode_request(&mut scratch, &Rkyv::prepare(&data.request())).unwrap().to_vec();
        let (buffer, at) = misaligned(&bytes);
        let odd = &buffer[at..];
        assert_eq!(odd.as_ptr() as usize % 8, 1);
        let want = Accessed::Digest(crate::Checksum::of_batch(&data.batch));
        assert_eq!(Rkyv::access_request(Method::Digest, odd).unwrap(), want);
        assert_eq!(Rkyv::access_request(Method::Digest, &bytes).unwrap(), want);
    }

    #[test]
    fn archived_types_have_alignment_one() {
        assert_eq!(std::mem::align_of::<rk::ArchivedBatch>(), 1);
        assert_eq!(std::mem::align_of::<rk::ArchivedRecord>(), 1);
        assert_eq!(std::mem::align_of::<rk::ArchivedMultiplyRequest>(), 1);
        assert_eq!(std::mem::align_of::<rk::ArchivedDigestReply>(), 1);
    }
}
