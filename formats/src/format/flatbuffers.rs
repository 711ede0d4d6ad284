//! FlatBuffers with the flatbuffers crate, from `formats/schemas/bench.fbs`.
//!
//! Zero-copy: the server verifies the request buffer (the library's
//! verifier: bounds, alignment, required fields, nesting) and then reads
//! every field in place. A reused `FlatBufferBuilder` builds each message;
//! the encoded bytes are the builder's finished slice, never copied.
//! [`access_request_unchecked`] skips the verifier and exists only for the
//! micro-benchmarks, labelled "unvalidated".

use std::borrow::Cow;

use ::flatbuffers::{FlatBufferBuilder, Follow, ForwardsUOffset, Vector, Verifiable, WIPOffset};

use crate::FormatId;
use crate::checksum::RecordView;
use crate::codec::{CodecError, Format, Properties, respond_owned};
use crate::contract::{
    Accessed, Attribute, Batch, DigestReply, Kind, Location, Method, OwnedRequest, Record, Reply, Status,
};
use crate::service::Service;

#[allow(
    missing_docs,
    unreachable_pub,
    unused_imports,
    missing_debug_implementations,
    unsafe_op_in_unsafe_fn,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
mod generated {
    include!("../generated/bench_generated.rs");
}

/// The types generated from `bench.fbs` (committed; regenerate with
/// `scripts/regen-schemas.sh`).
pub use generated::wirebench as fb;

/// FlatBuffers.
#[derive(Debug)]
pub struct FlatBuffers;

const NAME: &str = "flatbuffers";

/// A reused builder plus the offset lists a batch needs while building.
pub struct Scratch {
    builder: FlatBufferBuilder<'static>,
    records: Vec<WIPOffset<fb::Record<'static>>>,
    strings: Vec<WIPOffset<&'static str>>,
    attributes: Vec<WIPOffset<fb::Attribute<'static>>>,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            builder: FlatBufferBuilder::with_capacity(1024),
            records: Vec::new(),
            strings: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("flatbuffers::Scratch").finish_non_exhaustive()
    }
}

#[inline]
fn root<'b, T>(message: &'static str, bytes: &'b [u8]) -> Result<T::Inner, CodecError>
where
    T: Follow<'b> + Verifiable + 'b,
{
    ::flatbuffers::root::<T>(bytes).map_err(|e| CodecError::decode(NAME, message, e))
}

fn build_batch(scratch: &mut Scratch, batch: &Batch) -> WIPOffset<fb::Batch<'static>> {
    let Scratch { builder: b, records, strings, attributes } = scratch;
    records.clear();
    for r in &batch.records {
        let name = b.create_string(&r.name);
        let email = b.create_string(&r.email);
        strings.clear();
        strings.extend(r.tags.iter().map(|t| b.create_string(t)));
        let tags = b.create_vector(strings);
        attributes.clear();
        for a in &r.attributes {
            let key = b.create_string(&a.key);
            let value = b.create_string(&a.value);
            attributes.push(fb::Attribute::create(b, &fb::AttributeArgs { key: Some(key), value: Some(value) }));
        }
        let attrs = b.create_vector(attributes);
        let location = r.location.as_ref().map(|l| {
            let city = b.create_string(&l.city);
            fb::Location::create(
                b,
                &fb::LocationArgs { latitude: l.latitude, longitude: l.longitude, city: Some(city) },
            )
        });
        let fingerprint = b.create_vector(&r.fingerprint);
        records.push(fb::Record::create(
            b,
            &fb::RecordArgs {
                id: r.id,
                user_id: r.user_id,
                timestamp_micros: r.timestamp_micros,
                name: Some(name),
                email: Some(email),
                kind: fb::Kind(r.kind.value()),
                score: r.score,
                weight: r.weight,
                active: r.active,
                tags: Some(tags),
                attributes: Some(attrs),
                location,
                fingerprint: Some(fingerprint),
            },
        ));
    }
    let records = b.create_vector(records);
    fb::Batch::create(b, &fb::BatchArgs { records: Some(records) })
}

/// Finishes the builder with `root` and returns the message bytes.
#[inline]
fn finish<T>(scratch: &mut Scratch, root: WIPOffset<T>) -> &[u8] {
    scratch.builder.finish_minimal(root);
    scratch.builder.finished_data()
}

fn echo_payload(payload: Option<Vector<'_, u8>>) -> &[u8] {
    payload.map(|v| v.bytes()).unwrap_or_default()
}

fn owned_batch(batch: fb::Batch<'_>) -> Result<Batch, CodecError> {
    let records = batch
        .records()
        .iter()
        .map(|r| {
            let mut tags = Vec::new();
            r.for_each_tag(|t| tags.push(t.to_owned()))?;
            let mut attributes = Vec::new();
            r.for_each_attribute(|k, v| attributes.push(Attribute { key: k.to_owned(), value: v.to_owned() }))?;
            let mut location = None;
            RecordView::location(&r, |latitude, longitude, city| {
                location = Some(Location { latitude, longitude, city: city.to_owned() })
            })?;
            Ok(Record {
                id: r.id(),
                user_id: r.user_id(),
                timestamp_micros: r.timestamp_micros(),
                name: r.name().to_owned(),
                email: r.email().to_owned(),
                kind: RecordView::kind(&r)?,
                score: r.score(),
                weight: r.weight(),
                active: r.active(),
                tags,
                attributes,
                location,
                fingerprint: r.fingerprint().bytes().to_vec(),
            })
        })
        .collect::<Result<_, CodecError>>()?;
    Ok(Batch { records })
}

impl Format for FlatBuffers {
    const ID: FormatId = FormatId::FlatBuffers;
    const NAME: &'static str = NAME;
    const GRPC_SUBTYPE: &'static str = "flatbuffers";
    const PROPERTIES: Properties = Properties {
        library: "flatbuffers 25.12",
        self_describing: false,
        schema: "formats/schemas/bench.fbs",
        zero_copy: true,
        validation: "verifier pass over the buffer, then in-place reads",
        unvalidated_access: true,
        layout: "one root table per message; absent location = absent field",
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
        scratch.builder.reset();
        Ok(match request {
            OwnedRequest::Multiply { a, b } => {
                let root = fb::MultiplyRequest::create(&mut scratch.builder, &fb::MultiplyRequestArgs { a: *a, b: *b });
                finish(scratch, root)
            }
            OwnedRequest::Echo { payload } => {
                let payload = scratch.builder.create_vector(payload);
                let root =
                    fb::EchoRequest::create(&mut scratch.builder, &fb::EchoRequestArgs { payload: Some(payload) });
                finish(scratch, root)
            }
            OwnedRequest::Digest { batch } => {
                let root = build_batch(scratch, batch);
                finish(scratch, root)
            }
        })
    }

    #[inline(always)]
    fn decode_request(method: Method, bytes: &[u8]) -> Result<Self::Request, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let m = root::<fb::MultiplyRequest<'_>>(message, bytes)?;
                OwnedRequest::Multiply { a: m.a(), b: m.b() }
            }
            Method::Echo => OwnedRequest::Echo {
                payload: echo_payload(root::<fb::EchoRequest<'_>>(message, bytes)?.payload()).to_vec(),
            },
            Method::Digest => OwnedRequest::Digest { batch: owned_batch(root::<fb::Batch<'_>>(message, bytes)?)? },
        })
    }

    #[inline(always)]
    fn encode_reply<'s>(scratch: &'s mut Scratch, reply: &Reply<'_>) -> Result<&'s [u8], CodecError> {
        scratch.builder.reset();
        Ok(match reply {
            Reply::Multiply { product } => {
                let root =
                    fb::MultiplyReply::create(&mut scratch.builder, &fb::MultiplyReplyArgs { product: *product });
                finish(scratch, root)
            }
            Reply::Echo { payload } => {
                let payload = scratch.builder.create_vector(payload);
                let root = fb::EchoReply::create(&mut scratch.builder, &fb::EchoReplyArgs { payload: Some(payload) });
                finish(scratch, root)
            }
            Reply::Digest(d) => {
                let root = fb::DigestReply::create(
                    &mut scratch.builder,
                    &fb::DigestReplyArgs { records: d.records, checksum: d.checksum },
                );
                finish(scratch, root)
            }
        })
    }

    #[inline(always)]
    fn decode_reply(method: Method, bytes: &[u8]) -> Result<Reply<'_>, CodecError> {
        let message = method.reply_message();
        Ok(match method {
            Method::Multiply => Reply::Multiply { product: root::<fb::MultiplyReply<'_>>(message, bytes)?.product() },
            Method::Echo => Reply::Echo {
                payload: Cow::Borrowed(echo_payload(root::<fb::EchoReply<'_>>(message, bytes)?.payload())),
            },
            Method::Digest => {
                let d = root::<fb::DigestReply<'_>>(message, bytes)?;
                Reply::Digest(DigestReply { records: d.records(), checksum: d.checksum() })
            }
        })
    }

    #[inline]
    fn access_request(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        let message = method.request_message();
        Ok(match method {
            Method::Multiply => {
                let m = root::<fb::MultiplyRequest<'_>>(message, bytes)?;
                Accessed::Multiply { a: m.a(), b: m.b() }
            }
            Method::Echo => {
                Accessed::Echo { payload: echo_payload(root::<fb::EchoRequest<'_>>(message, bytes)?.payload()) }
            }
            Method::Digest => {
                Accessed::Digest(Service::new().digest(root::<fb::Batch<'_>>(message, bytes)?.records())?)
            }
        })
    }

    /// # Safety
    /// As [`access_request_unchecked`].
    #[inline]
    unsafe fn access_request_unchecked(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
        // SAFETY: forwarded; the caller guarantees `bytes` is valid.
        unsafe { access_request_unchecked(method, bytes) }
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
        let reply = match method {
            Method::Multiply => {
                let m = root::<fb::MultiplyRequest<'_>>(message, request)?;
                Reply::Multiply { product: service.multiply(m.a(), m.b())? }
            }
            Method::Echo => Reply::Echo {
                payload: service.echo(echo_payload(root::<fb::EchoRequest<'_>>(message, request)?.payload())),
            },
            Method::Digest => Reply::Digest(service.digest(root::<fb::Batch<'_>>(message, request)?.records())?),
        };
        Ok(Self::encode_reply(scratch, &reply)?)
    }
}

/// Reads every field of a request in place without running the verifier:
/// the "access (unvalidated)" operation of the micro-benchmarks.
///
/// # Safety
/// `bytes` must be a valid FlatBuffers message of `method`'s request type,
/// such as one this module encoded. Untrusted bytes must go through
/// [`FlatBuffers::access_request`] instead.
pub unsafe fn access_request_unchecked(method: Method, bytes: &[u8]) -> Result<Accessed<'_>, CodecError> {
    // SAFETY: the caller guarantees `bytes` is a valid message of this type.
    Ok(match method {
        Method::Multiply => {
            let m = unsafe { ::flatbuffers::root_unchecked::<fb::MultiplyRequest<'_>>(bytes) };
            Accessed::Multiply { a: m.a(), b: m.b() }
        }
        Method::Echo => Accessed::Echo {
            payload: echo_payload(unsafe { ::flatbuffers::root_unchecked::<fb::EchoRequest<'_>>(bytes) }.payload()),
        },
        Method::Digest => Accessed::Digest(
            Service::new().digest(unsafe { ::flatbuffers::root_unchecked::<fb::Batch<'_>>(bytes) }.records())?,
        ),
    })
}

impl RecordView for fb::Record<'_> {
    fn id(&self) -> u64 {
        fb::Record::id(self)
    }
    fn user_id(&self) -> u32 {
        fb::Record::user_id(self)
    }
    fn timestamp_micros(&self) -> i64 {
        fb::Record::timestamp_micros(self)
    }
    fn name(&self) -> Result<&str, CodecError> {
        Ok(fb::Record::name(self))
    }
    fn email(&self) -> Result<&str, CodecError> {
        Ok(fb::Record::email(self))
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        let kind = fb::Record::kind(self).0;
        Kind::from_value(u32::from(kind))
            .ok_or_else(|| CodecError::decode(NAME, "Record", format_args!("kind {kind} is not in the schema")))
    }
    fn score(&self) -> f64 {
        fb::Record::score(self)
    }
    fn weight(&self) -> f32 {
        fb::Record::weight(self)
    }
    fn active(&self) -> bool {
        fb::Record::active(self)
    }
    fn for_each_tag(&self, mut f: impl FnMut(&str)) -> Result<usize, CodecError> {
        let tags: Vector<'_, ForwardsUOffset<&str>> = fb::Record::tags(self);
        tags.iter().for_each(&mut f);
        Ok(tags.len())
    }
    fn for_each_attribute(&self, mut f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        let attributes = fb::Record::attributes(self);
        attributes.iter().for_each(|a| f(a.key(), a.value()));
        Ok(attributes.len())
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        Ok(match fb::Record::location(self) {
            Some(l) => {
                f(l.latitude(), l.longitude(), l.city());
                true
            }
            None => false,
        })
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        Ok(fb::Record::fingerprint(self).bytes())
    }
}
