//! Cap'n Proto with the capnp crate, from `formats/schemas/bench.capnp`.
//!
//! Messages use the standard stream serialization (segment table, then
//! segments). `capnp` is unpacked and zero-copy: the server reads the
//! request where it lies, with the library's bounds checks on every access.
//! `capnp-packed` is the same message through the standard packing; its
//! server unpacks into a reused buffer and then reads in place, so it is
//! labelled not zero-copy.
//!
//! Building reuses one first segment between messages ([`SegmentPool`]),
//! sized to the largest message seen, so steady-state messages are single
//! segment and allocate nothing.

use std::borrow::Cow;
use std::ptr::NonNull;

use ::capnp::message::{self, Allocator, HeapAllocator, ReaderOptions, ReaderSegments};
use ::capnp::serialize::NoAllocSliceSegments;

use crate::FormatId;
use crate::bench_capnp as cp;
use crate::checksum::RecordView;
use crate::codec::{CodecError, Format, Properties, respond_owned};
use crate::contract::{
    Accessed, Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply, Status,
};
use crate::service::Service;

/// Cap'n Proto, unpacked.
pub type Capnp = CapnpFormat<false>;
/// Cap'n Proto, packed.
pub type CapnpPacked = CapnpFormat<true>;

/// Cap'n Proto; `PACKED` selects the packed serialization.
#[derive(Debug)]
pub struct CapnpFormat<const PACKED: bool>;

/// Largest unpacked message the packed reader will build: the unpacked
/// size of a frame at the transports' default 16 MiB limit is well below.
const MAX_UNPACKED_BYTES: usize = 64 << 20;
/// Words a reader may visit per word of message (see `options`).
const TRAVERSAL_PER_WORD: u64 = 4;
/// A packed zero-word run is 2 bytes for up to 256 words, so no valid
/// packed message unpacks to more than this many bytes per input byte.
const MAX_PACKED_EXPANSION: usize = 1024;

/// Reusable encoding state: the segment pool, the serialized bytes, and
/// (packed only) the buffer requests are unpacked into.
#[derive(Debug, Default)]
pub struct Scratch {
    pool: SegmentPool,
    out: Vec<u8>,
    unpacked: Vec<u8>,
}

/// A capnp segment allocator that keeps its first segment between
/// messages and grows it to the largest message seen.
#[derive(Debug)]
pub struct SegmentPool {
    // u64 gives the 8-byte alignment capnp segments need.
    first: Vec<u64>,
    first_in_use: bool,
    heap: HeapAllocator,
}

impl Default for SegmentPool {
    fn default() -> SegmentPool {
        SegmentPool { first: vec![0; 1024], first_in_use: false, heap: HeapAllocator::new() }
    }
}

impl SegmentPool {
    /// Largest pooled first segment: 64 MiB, the capnp traversal limit.
    const MAX_WORDS: usize = 8 << 20;

    /// Grows the first segment to hold `words` (called between messages);
    /// false if that is beyond the pool's maximum.
    fn reserve(&mut self, words: usize) -> bool {
        if self.first_in_use || words > Self::MAX_WORDS {
            return false;
        }
        if words > self.first.len() {
            self.first = vec![0; words.next_power_of_two().min(Self::MAX_WORDS)];
        }
        true
    }
}

// SAFETY: the first segment is handed out only while not in use, stays put
// (it is resized only between messages, when not in use), and is zeroed
// over every word the builder used before it is handed out again; the
// initial contents are zero. Other segments come from capnp's own
// HeapAllocator.
unsafe impl Allocator for SegmentPool {
    fn allocate_segment(&mut self, minimum_size: u32) -> (NonNull<u8>, u32) {
        let len = u32::try_from(self.first.len()).unwrap_or(u32::MAX);
        if !self.first_in_use && minimum_size <= len {
            self.first_in_use = true;
            (NonNull::from(&mut self.first[..len as usize]).cast::<u8>(), len)
        } else {
            self.heap.allocate_segment(minimum_size)
        }
    }

    unsafe fn deallocate_segment(&mut self, ptr: NonNull<u8>, word_size: u32, words_used: u32) {
        if ptr.as_ptr() == self.first.as_mut_ptr().cast::<u8>() {
            self.first[..words_used as usize].fill(0);
            self.first_in_use = false;
        } else {
            // SAFETY: forwarded unchanged from the builder, which got this
            // segment from `self.heap`.
            unsafe { self.heap.deallocate_segment(ptr, word_size, words_used) }
        }
    }
}

impl<const PACKED: bool> CapnpFormat<PACKED> {
    const NAME: &'static str = if PACKED { "capnp-packed" } else { "capnp" };

    fn err(message: &'static str, e: impl std::fmt::Display) -> CodecError {
        CodecError::decode(Self::NAME, message, e)
    }

    /// Builds a message with `build` and serializes it into `out`.
    ///
    /// Output is always single-segment (up to the pool's growth): when a
    /// message outgrows the pooled first segment, the pool grows and the
    /// message is built again, so the bytes never depend on what the
    /// scratch built before. The rebuild happens once per growth.
    #[inline]
    fn write<'s>(
        pool: &mut SegmentPool,
        out: &'s mut Vec<u8>,
        message: &'static str,
        build: impl Fn(&mut message::Builder<&mut SegmentPool>) -> Result<(), CodecError>,
    ) -> Result<&'s [u8], CodecError> {
        loop {
            let mut builder = message::Builder::new(&mut *pool);
            build(&mut builder)?;
            let segments = builder.get_segments_for_output();
            if segments.len() > 1 {
                let words: usize = segments.iter().map(|s| s.len() / 8).sum();
                drop(builder);
                if pool.reserve(words) {
                    continue;
                }
                // Too large to pool: keep the multi-segment message.
                let mut builder = message::Builder::new(&mut *pool);
                build(&mut builder)?;
                return Self::serialize(out, message, &builder);
            }
            return Self::serialize(out, message, &builder);
        }
    }

    fn serialize<'s, A: Allocator>(
        out: &'s mut Vec<u8>,
        message: &'static str,
        builder: &message::Builder<A>,
    ) -> Result<&'s [u8], CodecError> {
        out.clear();
        let written = if PACKED {
            ::capnp::serialize_packed::write_message(&mut *out, builder)
        } else {
            ::capnp::serialize::write_message(&mut *out, builder)
        };
        written.map_err(|e| CodecError::encode(Self::NAME, message, e))?;
        Ok(out)
    }

    /// Opens a message in place (unpacked) or unpacked into `buffer`
    /// (packed), rejecting bytes after it.
    #[inline]
    fn read<'b>(
        message: &'static str,
        bytes: &'b [u8],
        buffer: &'b mut Vec<u8>,
    ) -> Result<message::Reader<NoAllocSliceSegments<'b>>, CodecError> {
        let mut rest = bytes;
        let mut flat = if PACKED { Self::unpack(message, &mut rest, buffer)? } else { bytes };
        let options = Self::options(flat.len());
        let reader = ::capnp::serialize::read_message_from_flat_slice_no_alloc(&mut flat, options)
            .map_err(|e| Self::err(message, e))?;
        if !PACKED {
            rest = flat;
        }
        if !rest.is_empty() {
            return Err(Self::err(message, format_args!("{} trailing bytes after the message", rest.len())));
        }
        Ok(reader)
    }

    /// Reader options for a message of `bytes` bytes.
    ///
    /// The traversal limit (the words a reader may visit) is scaled to the
    /// message instead of capnp's fixed 64 MiB default. Reading every field
    /// of a message visits each word about once; but a list of zero-sized
    /// structs costs one word per element and no space at all, so a
    /// 32-byte message can hold millions of (default-valued) records.
    /// With a limit proportional to the message, the work a message can
    /// cause is proportional to its size.
    fn options(bytes: usize) -> ReaderOptions {
        let words = (bytes / 8) as u64;
        let mut options = ReaderOptions::new();
        options.traversal_limit_in_words(Some(words.saturating_mul(TRAVERSAL_PER_WORD).saturating_add(1024) as usize));
        options
    }

    /// Unpacks the message at the start of `rest` into `buffer` and returns
    /// the unpacked bytes, advancing `rest` past it. `buffer` grows only as
    /// far as the input could legitimately expand, never by what a segment
    /// table merely claims.
    fn unpack<'b>(message: &'static str, rest: &mut &[u8], buffer: &'b mut Vec<u8>) -> Result<&'b [u8], CodecError> {
        let limit = rest.len().saturating_mul(MAX_PACKED_EXPANSION).clamp(64, MAX_UNPACKED_BYTES);
        if buffer.len() < 1024.min(limit) {
            buffer.resize(1024.min(limit), 0);
        }
        let (used, consumed) = loop {
            let start = buffer.as_ptr() as usize;
            let capacity = buffer.len();
            let mut input = *rest;
            let attempt =
                ::capnp::serialize_packed::read_message_no_alloc(&mut input, &mut buffer[..], ReaderOptions::new());
            match attempt {
                Ok(reader) => {
                    let segments = reader.into_segments();
                    let used = (0..segments.len() as u32)
                        .filter_map(|i| segments.get_segment(i))
                        .map(|s| s.as_ptr() as usize + s.len() - start)
                        .max()
                        .unwrap_or(0);
                    break (used, rest.len() - input.len());
                }
                Err(e) if e.kind == ::capnp::ErrorKind::BufferNotLargeEnough && capacity < limit => {}
                Err(e) => return Err(Self::err(message, e)),
            }
            buffer.resize((capacity * 2).min(limit), 0);
        };
        *rest = &rest[consumed..];
        Ok(&buffer[..used])
    }
}

/// Re-borrows `inner`, a slice of a message read in place from `outer`,
/// with `outer`'s lifetime: capnp's readers borrow the message reader, not
/// the bytes under it. `None` if `inner` does not lie within `outer`.
fn within<'b>(outer: &'b [u8], inner: &[u8]) -> Option<&'b [u8]> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    outer.get(start..start.checked_add(inner.len())?)
}

fn cp_kind(kind: Kind) -> cp::Kind {
    match kind {
        Kind::Unknown => cp::Kind::Unknown,
        Kind::Click => cp::Kind::Click,
        Kind::View => cp::Kind::View,
        Kind::Purchase => cp::Kind::Purchase,
        Kind::Refund => cp::Kind::Refund,
    }
}

fn len_u32(format: &'static str, len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| CodecError::encode(format, "Batch", format_args!("a list of {len} elements")))
}

fn build_batch(format: &'static str, root: cp::batch::Builder<'_>, batch: &Batch) -> Result<(), CodecError> {
    let mut records = root.init_records(len_u32(format, batch.records.len())?);
    for (i, r) in batch.records.iter().enumerate() {
        let mut rb = records.reborrow().get(i as u32);
        rb.set_id(r.id);
        rb.set_user_id(r.user_id);
        rb.set_timestamp_micros(r.timestamp_micros);
        rb.set_name(r.name.as_str());
        rb.set_email(r.email.as_str());
        rb.set_kind(cp_kind(r.kind));
        rb.set_score(r.score);
        rb.set_weight(r.weight);
        rb.set_active(r.active);
        let mut tags = rb.reborrow().init_tags(len_u32(format, r.tags.len())?);
        for (j, tag) in r.tags.iter().enumerate() {
            tags.set(j as u32, tag.as_str());
        }
        let mut attributes = rb.reborrow().init_attributes(len_u32(format, r.attributes.len())?);
        for (j, a) in r.attributes.iter().enumerate() {
            let mut ab = attributes.reborrow().get(j as u32);
            ab.set_key(a.key.as_str());
            ab.set_value(a.value.as_str());
        }
        if let Some(l) = &r.location {
            let mut lb = rb.reborrow().init_location();
            lb.set_latitude(l.latitude);
            lb.set_longitude(l.longitude);
            lb.set_city(l.city.as_str());
        }
        rb.set_fingerprint(&r.fingerprint);
    }
    Ok(())
}

/// Builds `batch` into `root`, as the `capnp` format does: for Cap'n Proto
/// RPC, whose `Bench.digest` parameters are a `Batch` struct built in place
/// in the framework's own call message.
pub fn build_batch_into(root: cp::batch::Builder<'_>, batch: &Batch) -> Result<(), CodecError> {
    build_batch(Capnp::NAME, root, batch)
}

/// The Digest of a `Batch` read in place (every field of every record, as
/// the `capnp` format's server reads it): for Cap'n Proto RPC's server,
/// whose parameters arrive inside the framework's own call message.
pub fn digest_in_place(service: &Service, batch: cp::batch::Reader<'_>) -> Result<DigestReply, CodecError> {
    service.digest(records(Capnp::NAME, batch)?)
}

/// A record read in place, tagged with the format name for its errors.
struct RecordReader<'a> {
    format: &'static str,
    inner: cp::record::Reader<'a>,
}

impl RecordReader<'_> {
    fn err(&self, e: impl std::fmt::Display) -> CodecError {
        CodecError::decode(self.format, "Record", e)
    }
}

fn text<'a>(format: &'static str, t: ::capnp::Result<::capnp::text::Reader<'a>>) -> Result<&'a str, CodecError> {
    t.and_then(|t| t.to_str().map_err(Into::into)).map_err(|e| CodecError::decode(format, "Record", e))
}

impl RecordView for RecordReader<'_> {
    fn id(&self) -> u64 {
        self.inner.get_id()
    }
    fn user_id(&self) -> u32 {
        self.inner.get_user_id()
    }
    fn timestamp_micros(&self) -> i64 {
        self.inner.get_timestamp_micros()
    }
    fn name(&self) -> Result<&str, CodecError> {
        text(self.format, self.inner.get_name())
    }
    fn email(&self) -> Result<&str, CodecError> {
        text(self.format, self.inner.get_email())
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        let kind = self.inner.get_kind().map_err(|e| self.err(format_args!("kind {} is not in the schema", e.0)))?;
        Ok(match kind {
            cp::Kind::Unknown => Kind::Unknown,
            cp::Kind::Click => Kind::Click,
            cp::Kind::View => Kind::View,
            cp::Kind::Purchase => Kind::Purchase,
            cp::Kind::Refund => Kind::Refund,
        })
    }
    fn score(&self) -> f64 {
        self.inner.get_score()
    }
    fn weight(&self) -> f32 {
        self.inner.get_weight()
    }
    fn active(&self) -> bool {
        self.inner.get_active()
    }
    fn for_each_tag(&self, mut f: impl FnMut(&str)) -> Result<usize, CodecError> {
        let tags = self.inner.get_tags().map_err(|e| self.err(e))?;
        for tag in tags.iter() {
            f(text(self.format, tag)?);
        }
        Ok(tags.len() as usize)
    }
    fn for_each_attribute(&self, mut f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        let attributes = self.inner.get_attributes().map_err(|e| self.err(e))?;
        for a in attributes.iter() {
            f(text(self.format, a.get_key())?, text(self.format, a.get_value())?);
        }
        Ok(attributes.len() as usize)
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        if !self.inner.has_location() {
            return Ok(false);
        }
        let l = self.inner.get_location().map_err(|e| self.err(e))?;
        f(l.get_latitude(), l.get_longitude(), text(self.format, l.get_city())?);
        Ok(true)
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        self.inner.get_fingerprint().map_err(|e| self.err(e))
    }
}

fn records<'a>(
    format: &'static str,
    batch: cp::batch::Reader<'a>,
) -> Result<impl Iterator<Item = RecordReader<'a>>, CodecError> {
    let list = batch.get_records().map_err(|e| CodecError::decode(format, "Batch", e))?;
    Ok(list.into_iter().map(move |inner| RecordReader { format, inner }))
}

fn owned_record(r: &RecordReader<'_>) -> Result<Record, CodecError> {
    let mut tags = Vec::new();
    r.for_each_tag(|t| tags.push(t.to_owned()))?;
    let mut attributes = Vec::new();
    r.for_each_attribute(|k, v| attributes.push(Attribute { key: k.to_owned(), value: v.to_owned() }))?;
    let mut location = None;
    r.location(|latitude, longitude, city| location = Some(Location { latitude, longitude, city: city.to_owned() }))?;
    Ok(Record {
        id: r.id(),
        user_id: r.user_id(),
        timestamp_micros: r.timestamp_micros(),
        name: r.name()?.to_owned(),
        email: r.email()?.to_owned(),
        kind: r.kind()?,
        score: r.score(),
        weight: r.weight(),
        active: r.active(),
        tags,
        attributes,
        location,
        fingerprint: r.fingerprint()?.to_vec(),
    })
}

impl<const PACKED: bool> Format for CapnpFormat<PACKED> {
    const ID: FormatId = if PACKED { FormatId::CapnpPacked } else { FormatId::Capnp };
    const NAME: &'static str = Self::NAME;
    const GRPC_SUBTYPE: &'static str = Self::NAME;
    const PROPERTIES: Properties = Properties {
        library: "capnp 0.27",
        self_describing: false,
        schema: "formats/schemas/bench.capnp",
        zero_copy: !PACKED,
        validation: if PACKED {
            "unpacked into a reused buffer, then bounds-checked on every in-place read"
        } else {
            "bounds-checked on every in-place read (no separate pass)"
        },
        unvalidated_access: false,
        layout: if PACKED {
            "stream serialization (segment table + segments), packed"
        } else {
            "stream serialization (segment table + segments), unpacked"
        },
    };

    type Request = OwnedRequest<Batch>;
    type Scratch = Scratch;

    fn prepare(request: &OwnedRequest<Batch>) -> Self::Request {
        request.clone()
    }

    fn to_model(request: Self::Request) -> OwnedRequest<Batch> {
        request
    }

    #[inline(always)]
    fn encode_request<'s>(scratch: &'s mut Scratch, request: &Self::Request) -> Result<&'s [u8], CodecError> {
        let Scratch { pool, out, .. } = scratch;
        match request {
            OwnedRequest::Multiply { a, b } => Self::write(pool, out, "MultiplyRequest", |m| {
                let mut root = m.init_root::<cp::multiply_request::Builder<'_>>();
                root.set_a(*a);
                root.set_b(*b);
                Ok(())
            }),
            OwnedRequest::Echo { payload } => Self::write(pool, out, "EchoRequest", |m| {
                m.init_root::<cp::echo_request::Builder<'_>>().set_payload(payload);
                Ok(())
            }),
            OwnedRequest::Digest { batch } => Self::write(pool, out, "Batch", |m| {
                build_batch(Self::NAME, m.init_root::<cp::batch::Builder<'_>>(), batch)
            }),
        }
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        let mut buffer = Vec::new();
        let reader = Self::read(message, bytes, &mut buffer)?;
        let err = |e| Self::err(message, e);
        Ok(match method {
            Method::Multiply => {
                let m = reader.get_root::<cp::multiply_request::Reader<'_>>().map_err(err)?;
                OwnedRequest::Multiply { a: m.get_a(), b: m.get_b() }
            }
            Method::Echo => {
                let e = reader.get_root::<cp::echo_request::Reader<'_>>().map_err(err)?;
                OwnedRequest::Echo { payload: e.get_payload().map_err(err)?.to_vec() }
            }
            Method::Digest => {
                let batch = reader.get_root::<cp::batch::Reader<'_>>().map_err(err)?;
                let records = records(Self::NAME, batch)?.map(|r| owned_record(&r)).collect::<Result<_, _>>()?;
                OwnedRequest::Digest { batch: Batch { records } }
            }
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Scratch, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        let Scratch { pool, out, .. } = scratch;
        match reply {
            Reply::Multiply { product } => Self::write(pool, out, "MultiplyReply", |m| {
                m.init_root::<cp::multiply_reply::Builder<'_>>().set_product(*product);
                Ok(())
            }),
            Reply::Echo { payload } => Self::write(pool, out, "EchoReply", |m| {
                m.init_root::<cp::echo_reply::Builder<'_>>().set_payload(payload);
                Ok(())
            }),
            Reply::Digest(d) => Self::write(pool, out, "DigestReply", |m| {
                let mut root = m.init_root::<cp::digest_reply::Builder<'_>>();
                root.set_records(d.records);
                root.set_checksum(d.checksum);
                Ok(())
            }),
        }
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        let mut buffer = Vec::new();
        let reader = Self::read(message, bytes, &mut buffer)?;
        let err = |e| Self::err(message, e);
        Ok(match method {
            Method::Multiply => Reply::Multiply {
                product: reader.get_root::<cp::multiply_reply::Reader<'_>>().map_err(err)?.get_product(),
            },
            Method::Echo => {
                let payload =
                    reader.get_root::<cp::echo_reply::Reader<'_>>().map_err(err)?.get_payload().map_err(err)?;
                Reply::Echo {
                    payload: match within(bytes, payload) {
                        Some(in_place) => Cow::Borrowed(in_place),
                        None => Cow::Owned(payload.to_vec()),
                    },
                }
            }
            Method::Digest => {
                let d = reader.get_root::<cp::digest_reply::Reader<'_>>().map_err(err)?;
                Reply::Digest(DigestReply { records: d.get_records(), checksum: d.get_checksum() })
            }
        })
    }

    #[inline]
    fn access_request(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        if PACKED {
            return Err(CodecError::unsupported(Self::NAME, "access in place"));
        }
        let message = method.request_message();
        let mut unused = Vec::new();
        let reader = Self::read(message, bytes, &mut unused)?;
        let err = |e| Self::err(message, e);
        Ok(match method {
            Method::Multiply => {
                let m = reader.get_root::<cp::multiply_request::Reader<'_>>().map_err(err)?;
                Accessed::Multiply { a: m.get_a(), b: m.get_b() }
            }
            Method::Echo => {
                let payload =
                    reader.get_root::<cp::echo_request::Reader<'_>>().map_err(err)?.get_payload().map_err(err)?;
                // Unpacked messages are read from `bytes` itself.
                Accessed::Echo {
                    payload: within(bytes, payload)
                        .ok_or_else(|| err(::capnp::Error::failed(String::from("payload outside the message"))))?,
                }
            }
            Method::Digest => {
                let batch = reader.get_root::<cp::batch::Reader<'_>>().map_err(err)?;
                Accessed::Digest(Service::new().digest(records(Self::NAME, batch)?)?)
            }
        })
    }

    #[inline]
    fn respond<'r>(service: &Service, request: &'r Self::Request) -> Result<Reply<'r>, Status> {
        respond_owned(service, request)
    }

    #[inline]
    fn serve<'s>(
        service: &Service,
        scratch: &'s mut Scratch,
        method: Method,
        request: &[u8],
    ) -> Result<&'s [u8], Status> {
        let message = method.request_message();
        let Scratch { pool, out, unpacked } = scratch;
        let reader = Self::read(message, request, unpacked)?;
        let err = |e| Self::err(message, e);
        match method {
            Method::Multiply => {
                let m = reader.get_root::<cp::multiply_request::Reader<'_>>().map_err(err)?;
                let product = service.multiply(m.get_a(), m.get_b())?;
                Ok(Self::write(pool, out, "MultiplyReply", |m| {
                    m.init_root::<cp::multiply_reply::Builder<'_>>().set_product(product);
                    Ok(())
                })?)
            }
            Method::Echo => {
                let payload =
                    reader.get_root::<cp::echo_request::Reader<'_>>().map_err(err)?.get_payload().map_err(err)?;
                let payload = service.echo(payload);
                Ok(Self::write(pool, out, "EchoReply", |m| {
                    m.init_root::<cp::echo_reply::Builder<'_>>().set_payload(&payload);
                    Ok(())
                })?)
            }
            Method::Digest => {
                let batch = reader.get_root::<cp::batch::Reader<'_>>().map_err(err)?;
                let d = service.digest(records(Self::NAME, batch)?)?;
                Ok(Self::write(pool, out, "DigestReply", |m| {
                    let mut root = m.init_root::<cp::digest_reply::Builder<'_>>();
                    root.set_records(d.records);
                    root.set_checksum(d.checksum);
                    Ok(())
                })?)
            }
        }
    }
}
