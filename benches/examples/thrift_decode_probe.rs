//! One side of the interface bench's `thrift-compact multiply decode` row,
//! alone in a loop, for counting instructions with callgrind (no hardware
//! counters on the VM):
//!
//! ```text
//! cargo build --release -p wirebench-benches --example thrift_decode_probe
//! valgrind --tool=callgrind target/release/examples/thrift_decode_probe direct 100000
//! valgrind --tool=callgrind target/release/examples/thrift_decode_probe interface 100000
//! ```
//!
//! Without valgrind it prints the time per decode.

#![allow(clippy::unwrap_used, missing_docs)] // a probe fails loudly by design

use std::hint::black_box;

use thrift::TConfiguration;
use thrift::protocol::{TCompactInputProtocol, TSerializable};
use wirebench_formats::dataset::MULTIPLY_OPERANDS;
use wirebench_formats::format::thrift::{ThriftCompact, ThriftRequest, th};
use wirebench_formats::{Format, Method};

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

fn main() {
    let mut args = std::env::args().skip(1);
    let (side, iterations) = (args.next(), args.next().and_then(|n| n.parse::<u32>().ok()));
    let (direct, iterations) = match (side.as_deref(), iterations) {
        (Some("direct"), Some(n)) if n > 0 => (true, n),
        (Some("interface"), Some(n)) if n > 0 => (false, n),
        _ => {
            eprintln!("usage: thrift_decode_probe direct|interface ITERATIONS (1 to 4294967295)");
            std::process::exit(2);
        }
    };
    let side = if direct { "direct" } else { "interface" };
    let (a, b) = MULTIPLY_OPERANDS;
    let bytes = ThriftCompact::encode_request(&mut Vec::new(), &ThriftRequest::Multiply(th::MultiplyRequest { a, b }))
        .unwrap()
        .to_vec();
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        if direct {
            let mut input = black_box(&bytes[..]);
            let config = bounded(input.len());
            let request =
                th::MultiplyRequest::read_from_in_protocol(&mut TCompactInputProtocol::with_config(&mut input, config));
            assert!(input.is_empty());
            black_box(request.unwrap());
        } else {
            black_box(ThriftCompact::decode_request(Method::Multiply, black_box(&bytes)).unwrap());
        }
    }
    println!("{side}: {:.1} ns a decode", started.elapsed().as_nanos() as f64 / f64::from(iterations));
}
