//! A format with its type erased, for the end-to-end cells.
//!
//! A cell's measurement loop is generic over its caller, and its caller
//! over the transport: were it generic over the format as well, every loop
//! would be compiled once per format and transport and mode (fifteen times
//! more code, and most of the release build's time). Instead the caller
//! holds a [`Codec`]: the prepared request behind one trait object and the
//! format's reply decoder as a function pointer. That is two indirect calls
//! per call, nanoseconds against the microseconds of a round trip; the
//! micro-benchmarks (`benches/`), which time the codec alone, stay
//! monomorphized over [`Format`].

use std::any::Any;
use std::sync::Arc;

use wirebench_formats::{CodecError, Dataset, Format, FormatId, FormatVisitor, Method, Reply};

/// Per-task encoding state of a [`Codec`]: the format's own scratch,
/// made on first use.
#[derive(Default)]
pub(crate) struct Scratch(Option<Box<dyn Any>>);

/// A prepared request of some format.
trait Prepared: Send + Sync {
    fn encode<'s>(&self, scratch: &'s mut Scratch) -> Result<&'s [u8], String>;
    fn matches(&self, method: Method, bytes: &[u8]) -> Result<bool, CodecError>;
}

struct Request<F: Format>(F::Request);

impl<F: Format> Prepared for Request<F> {
    fn encode<'s>(&self, scratch: &'s mut Scratch) -> Result<&'s [u8], String> {
        if !scratch.0.as_ref().is_some_and(|s| s.is::<F::Scratch>()) {
            scratch.0 = Some(Box::new(F::Scratch::default()));
        }
        match scratch.0.as_mut().and_then(|s| s.downcast_mut::<F::Scratch>()) {
            Some(s) => F::encode_request(s, &self.0).map_err(|e| e.to_string()),
            None => Err(format!("{}: no encoding scratch", F::NAME)),
        }
    }

    fn matches(&self, method: Method, bytes: &[u8]) -> Result<bool, CodecError> {
        F::decode_request(method, bytes).map(|request| request == self.0)
    }
}

/// One format's request, prepared once per cell, and its reply decoder.
#[derive(Clone)]
pub(crate) struct Codec {
    id: FormatId,
    request: Arc<dyn Prepared>,
    decode_reply: for<'b> fn(Method, &'b [u8]) -> Result<Reply<'b>, CodecError>,
}

impl Codec {
    /// The format `id`'s codec for `data`'s request.
    pub(crate) fn new(id: FormatId, data: &Dataset) -> Codec {
        id.visit(Make(data))
    }

    /// The format, as the wire's format byte.
    pub(crate) fn id(&self) -> FormatId {
        self.id
    }

    /// Encodes the prepared request into `scratch`.
    pub(crate) fn encode_request<'s>(&self, scratch: &'s mut Scratch) -> Result<&'s [u8], String> {
        self.request.encode(scratch)
    }

    /// Decodes reply bytes of `method`.
    pub(crate) fn decode_reply<'b>(&self, method: Method, bytes: &'b [u8]) -> Result<Reply<'b>, CodecError> {
        (self.decode_reply)(method, bytes)
    }

    /// Decodes request bytes of `method` (a pubsub delivery): whether they
    /// are the prepared request.
    pub(crate) fn is_request(&self, method: Method, bytes: &[u8]) -> Result<bool, CodecError> {
        self.request.matches(method, bytes)
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("format", &self.id).finish_non_exhaustive()
    }
}

struct Make<'a>(&'a Dataset);

impl FormatVisitor for Make<'_> {
    type Output = Codec;

    fn visit<F: Format>(self) -> Codec {
        Codec {
            id: F::ID,
            request: Arc::new(Request::<F>(F::prepare(&self.0.request()))),
            decode_reply: F::decode_reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirebench_formats::Workload;

    #[test]
    fn every_format_round_trips_through_its_erased_codec() {
        for workload in [Workload::Multiply, Workload::Echo { size: 64 }, Workload::Digest { records: 8 }] {
            let data = Dataset::generate(workload, 7);
            for &id in FormatId::ALL {
                let codec = Codec::new(id, &data);
                let mut scratch = Scratch::default();
                let bytes = codec.encode_request(&mut scratch).expect("encodes").to_vec();
                assert!(codec.is_request(workload.method(), &bytes).expect("decodes"), "{id}: {workload}");
                // The scratch is reused, and a second encoding is the same.
                assert_eq!(codec.encode_request(&mut scratch).expect("encodes again"), &bytes[..], "{id}");
                assert!(codec.decode_reply(workload.method(), b"\xff\xff\xff").is_err(), "{id}: garbage");
            }
        }
    }
}
