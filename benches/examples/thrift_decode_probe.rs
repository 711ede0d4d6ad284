//! The interface bench's `thrift-compact multiply decode` row, taken
//! apart: the direct call as the bench writes it (the library's `Result`
//! unwrapped), the direct call as a server writes it (the library's error
//! turned into the server's own with `?`, since a server must not panic on
//! a peer's bytes), and the call through `Format`.
//!
//! ```text
//! cargo build --release -p wirebench-benches --example thrift_decode_probe
//! target/release/examples/thrift_decode_probe compare
//! valgrind --tool=callgrind target/release/examples/thrift_decode_probe direct 100000
//! ```
//!
//! `compare` times the three interleaved (as the interface bench does) and
//! prints each one's ratio to the unwrapping direct call. `SIDE N` runs one
//! side `N` times alone and prints its time per decode, for counting
//! instructions with callgrind (no hardware counters on the VM).

#![allow(clippy::unwrap_used, missing_docs)] // a probe fails loudly by design

use std::hint::black_box;
use std::time::Duration;

use thrift::TConfiguration;
use thrift::protocol::{TCompactInputProtocol, TSerializable};
use wirebench_benches::{batch_for, interleaved};
use wirebench_formats::dataset::MULTIPLY_OPERANDS;
use wirebench_formats::format::thrift::{ThriftCompact, ThriftRequest, th};
use wirebench_formats::{CodecError, Format, Method};

/// The direct call's limits, as `benches/benches/interface.rs` sets them.
fn bounded(len: usize) -> TConfiguration {
    TConfiguration::builder()
        .max_message_size(Some(len))
        .max_frame_size(Some(len))
        .max_string_size(Some(len))
        .max_container_size(Some(len))
        .build()
        .unwrap()
}

/// The bench's direct side: the library's result unwrapped.
#[inline(never)]
fn direct(bytes: &[u8]) {
    let mut input = black_box(bytes);
    let config = bounded(input.len());
    let request =
        th::MultiplyRequest::read_from_in_protocol(&mut TCompactInputProtocol::with_config(&mut input, config));
    assert!(input.is_empty());
    black_box(request.unwrap());
}

/// A server's direct call: the library's error becomes the server's own
/// with `?` (any error type does; `CodecError` is at hand), trailing bytes
/// are an error too, and only the caller decides what a failure does.
#[inline(never)]
fn propagate(bytes: &[u8]) {
    let decode = || -> Result<th::MultiplyRequest, CodecError> {
        let mut input = black_box(bytes);
        let config = bounded(input.len());
        let request =
            th::MultiplyRequest::read_from_in_protocol(&mut TCompactInputProtocol::with_config(&mut input, config))
                .map_err(|e| CodecError::decode("thrift", "MultiplyRequest", e))?;
        if !input.is_empty() {
            return Err(CodecError::decode("thrift", "MultiplyRequest", "trailing bytes"));
        }
        Ok(request)
    };
    black_box(decode().unwrap());
}

/// Through the codec interface.
#[inline(never)]
fn interface(bytes: &[u8]) {
    black_box(ThriftCompact::decode_request(Method::Multiply, black_box(bytes)).unwrap());
}

/// A side of the comparison: its name and one decode.
type Side = (&'static str, fn(&[u8]));

const SIDES: [Side; 3] = [("direct", direct), ("propagate", propagate), ("interface", interface)];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (a, b) = MULTIPLY_OPERANDS;
    let bytes = ThriftCompact::encode_request(&mut Vec::new(), &ThriftRequest::Multiply(th::MultiplyRequest { a, b }))
        .unwrap()
        .to_vec();
    if args.len() == 1 && args[0] == "compare" {
        let batch = batch_for(Duration::from_millis(5), || direct(&bytes));
        println!("{:10} {:>10} {:>10} {:>7}", "side", "direct ns", "side ns", "ratio");
        for (name, side) in &SIDES[1..] {
            let (d, s) = interleaved(201, batch, || direct(&bytes), || side(&bytes));
            println!("{name:10} {d:10.1} {s:10.1} {:7.3}", s / d);
        }
        return;
    }
    let side = SIDES.iter().find(|(name, _)| args.first().is_some_and(|a| a == name));
    let iterations = args.get(1).and_then(|n| n.parse::<u32>().ok()).filter(|&n| n > 0);
    let (Some((name, side)), Some(iterations), 2) = (side, iterations, args.len()) else {
        eprintln!("usage: thrift_decode_probe compare | direct|propagate|interface ITERATIONS (1 to 4294967295)");
        std::process::exit(2);
    };
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        side(&bytes);
    }
    println!("{name}: {:.1} ns a decode", started.elapsed().as_nanos() as f64 / f64::from(iterations));
}
