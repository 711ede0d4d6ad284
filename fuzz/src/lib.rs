//! The logic shared by the fuzz targets in `fuzz_targets/`, one per format,
//! and by the `seed-corpus` example that writes the seed corpora.
//!
//! # Input layout
//!
//! A fuzz input is one or more messages joined by [`SEPARATOR`]:
//!
//! ```text
//! method message [SEPARATOR method message]...
//! ```
//!
//! `method` is one byte: a call id (1 Multiply, 2 Echo, 3 Digest) picks that
//! method, any other byte picks `Method::ALL[byte % 3]` (see [`method_of`]).
//! The rest of the part, up to the next separator, is the message. An input
//! without a separator is a single message: first byte the method, the rest
//! the message bytes. At most [`MAX_MESSAGES`] messages are read.
//!
//! Every message goes through every decoder of the format: `decode_request`,
//! `decode_reply`, `access_request` and the server path `serve`. The server
//! path reuses one [`ServerScratch`] for all messages of an input, as a
//! server connection does, so state left in the scratch by one message can
//! affect the next.
//!
//! A decoder must return `Err` for bad input: a panic, a timeout or an
//! allocation beyond libFuzzer's limits is a finding.

use std::borrow::Cow;

use wirebench_formats::dataset::{DEFAULT_SEED, Dataset, Expected, MULTIPLY_OPERANDS};
use wirebench_formats::{Batch, Format, Method, OwnedRequest, Reply, ServerScratch, Service, Workload};

/// Separates the messages of one fuzz input.
pub const SEPARATOR: &[u8] = b"\xfe\xedWB";

/// The most messages one input is split into.
pub const MAX_MESSAGES: usize = 8;

/// The method a method byte picks: the call id if it is one, else
/// `Method::ALL[byte % 3]`, so every byte picks some method.
pub fn method_of(byte: u8) -> Method {
    Method::from_id(byte).unwrap_or(Method::ALL[usize::from(byte) % Method::ALL.len()])
}

/// The parts of `data` between separators (all of it if there is none).
pub fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                rest = Some(&current[at + SEPARATOR.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The fuzz target body: runs every decoder of `F` on every message of
/// `data`. Results are ignored; only panics, hangs and huge allocations
/// are findings.
pub fn fuzz<F: Format>(data: &[u8]) {
    let service = Service::new();
    let mut scratch = ServerScratch::default();
    for part in split(data).take(MAX_MESSAGES) {
        let Some((&method, message)) = part.split_first() else { continue };
        decode_all::<F>(&service, &mut scratch, method_of(method), message);
    }
}

/// Every decoder of `F` on one message.
fn decode_all<F: Format>(service: &Service, scratch: &mut ServerScratch, method: Method, message: &[u8]) {
    let _ = std::hint::black_box(F::decode_request(method, message));
    let _ = std::hint::black_box(F::decode_reply(method, message));
    // Zero-copy formats only; the others return Err at once. The unsafe
    // `Format::access_request_unchecked` (FlatBuffers, rkyv) is
    // deliberately not called: it is only valid on trusted bytes.
    let _ = std::hint::black_box(F::access_request(method, message));
    let _ = std::hint::black_box(wirebench_formats::serve(service, scratch, F::ID, method, message));
}

/// The fuzz target of `F`: `decode_<name>`, with `-` as `_`.
pub fn target_name<F: Format>() -> String {
    format!("decode_{}", F::NAME.replace('-', "_"))
}

/// The workloads whose requests and replies seed every corpus.
pub const SEED_WORKLOADS: [Workload; 3] =
    [Workload::Multiply, Workload::Echo { size: 16 }, Workload::Digest { records: 3 }];

/// One seed input: a file name and its bytes.
#[derive(Debug)]
pub struct Seed {
    /// File name inside the target's corpus directory.
    pub name: String,
    /// The fuzz input: method byte, then the message.
    pub bytes: Vec<u8>,
}

fn model_request(data: &Dataset) -> OwnedRequest<Batch> {
    match data.workload {
        Workload::Multiply => {
            let (a, b) = MULTIPLY_OPERANDS;
            OwnedRequest::Multiply { a, b }
        }
        Workload::Echo { .. } => OwnedRequest::Echo { payload: data.payload.clone() },
        Workload::Digest { .. } => OwnedRequest::Digest { batch: data.batch.clone() },
    }
}

fn expected_reply(data: &Dataset) -> Reply<'_> {
    match data.expected {
        Expected::Product(product) => Reply::Multiply { product },
        Expected::SamePayload => Reply::Echo { payload: Cow::Borrowed(&data.payload) },
        Expected::Digest(d) => Reply::Digest(d),
    }
}

fn with_method(method: Method, message: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + message.len());
    bytes.push(method.id());
    bytes.extend_from_slice(message);
    bytes
}

fn encode_request<F: Format>(request: &OwnedRequest<Batch>) -> Vec<u8> {
    let native = F::prepare(request);
    match F::encode_request(&mut F::Scratch::default(), &native) {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => panic!("{}: encoding a seed request failed: {e}", F::NAME),
    }
}

fn encode_reply<F: Format>(reply: &Reply<'_>) -> Vec<u8> {
    match F::encode_reply(&mut F::Scratch::default(), reply) {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => panic!("{}: encoding a seed reply failed: {e}", F::NAME),
    }
}

/// The seed corpus of `F`: a valid request and a valid reply of every
/// [`SEED_WORKLOADS`] entry (generated from `DEFAULT_SEED`, method byte
/// first), an overflowing Multiply request (the service's error path), and
/// one multi-message input (Digest, Multiply, Echo requests) that exercises
/// server scratch reuse.
pub fn seeds<F: Format>() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut requests = Vec::new();
    for workload in SEED_WORKLOADS {
        let data = Dataset::generate(workload, DEFAULT_SEED);
        let method = workload.method();
        let request = encode_request::<F>(&model_request(&data));
        let reply = encode_reply::<F>(&expected_reply(&data));
        // A seed must be valid, or it seeds nothing but the error paths.
        let mut scratch = ServerScratch::default();
        let served = wirebench_formats::serve(&Service::new(), &mut scratch, F::ID, method, &request);
        assert!(
            F::decode_request(method, &request).is_ok() && F::decode_reply(method, &reply).is_ok() && served.is_ok(),
            "{}/{workload}: a seed does not decode",
            F::NAME
        );
        let (request, reply) = (with_method(method, &request), with_method(method, &reply));
        seeds.push(Seed { name: format!("request-{workload}"), bytes: request.clone() });
        seeds.push(Seed { name: format!("reply-{workload}"), bytes: reply });
        requests.push(request);
    }
    let overflow = encode_request::<F>(&OwnedRequest::Multiply { a: i64::MAX, b: 2 });
    seeds.push(Seed { name: "request-multiply-overflow".to_owned(), bytes: with_method(Method::Multiply, &overflow) });
    // Largest first, so later messages meet a scratch a bigger one used.
    requests.reverse();
    seeds.push(Seed { name: "requests-digest-echo-multiply".to_owned(), bytes: requests.join(SEPARATOR) });
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_bytes() {
        assert_eq!(method_of(1), Method::Multiply);
        assert_eq!(method_of(2), Method::Echo);
        assert_eq!(method_of(3), Method::Digest);
        assert_eq!(method_of(0), Method::Multiply);
        assert_eq!(method_of(4), Method::Echo);
        assert_eq!(method_of(255), Method::Multiply);
    }

    #[test]
    fn splitting() {
        let parts: Vec<&[u8]> = split(b"").collect();
        assert_eq!(parts, [b"" as &[u8]]);
        let parts: Vec<&[u8]> = split(b"\x01ab").collect();
        assert_eq!(parts, [b"\x01ab" as &[u8]]);
        let joined = [b"\x01ab" as &[u8], b"\x02", b""].join(SEPARATOR);
        let parts: Vec<&[u8]> = split(&joined).collect();
        assert_eq!(parts, [b"\x01ab" as &[u8], b"\x02", b""]);
    }
}
