//! wirebench's speed targets, measured in one run of the real `wirebench
//! run` (server in its own process, as users run it) and printed as
//! ratios:
//!
//! - transports: p50 of the raw ping-pong and of Multiply with bincode at
//!   one call in flight, for tcp, unix, udp, http2, quic and grpc, each
//!   over the raw tcp ping-pong's p50 (goal: Multiply over our tcp within
//!   1.15x; our http2 faster than the stock gRPC reference);
//! - harness overhead: tcp + bincode Multiply p50 over raw tcp p50 (goal:
//!   within 1.15x);
//! - throughput at 64 in flight: our best cell against the stock gRPC
//!   reference (goal: above it).
//!
//! `cargo bench --bench targets` (1 s windows); `-- --quick` uses 300 ms
//! windows, `-- --test` 50 ms (a smoke run, not a measurement). It lives in
//! the harness package so that cargo builds the `wirebench` binary for it.

#![allow(clippy::unwrap_used, missing_docs)] // benches fail loudly by design

use std::process::Command;

use wirebench_reports::model::{Cell, CellStatus, Results};

fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--quick")
}

fn p50(results: &Results, key: &str) -> f64 {
    let cell: &Cell = results.cells.get(key).unwrap_or_else(|| panic!("no cell {key}"));
    assert_eq!(cell.status, CellStatus::Ok, "{key}: {:?}", cell.error);
    cell.metrics.as_ref().unwrap().latency.p50 as f64
}

fn main() {
    let window = if test_mode() {
        "50ms"
    } else if quick_mode() {
        "300ms"
    } else {
        "1s"
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("targets");
    // The binary of this package, built by cargo for its benches.
    let status = Command::new(env!("CARGO_BIN_EXE_wirebench"))
        .args(["run", "--quiet", "--formats", "bincode,protobuf", "--transports", "tcp,unix,udp,http2,quic,grpc"])
        .args(["--workloads", "multiply", "--concurrency", "1,64", "--warmup", "200ms", "--duration", window])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "wirebench run failed: {status}");
    let results = Results::read(&out.join("results.json")).unwrap();

    let raw_tcp = p50(&results, "multiply/raw/tcp/c1");
    println!("transports, 1 call in flight (multiply; raw = 17-byte request, 16-byte reply, protobuf's sizes)");
    println!("{:<8} {:>12} {:>10} {:>16} {:>10}", "", "raw p50", "/raw tcp", "bincode p50", "/raw tcp");
    for t in ["tcp", "unix", "udp", "http2", "quic", "grpc"] {
        let (raw_key, note) = if t == "grpc" { ("multiply/raw/http2/c1", " (raw http2)") } else { ("", "") };
        let raw =
            if raw_key.is_empty() { p50(&results, &format!("multiply/raw/{t}/c1")) } else { p50(&results, raw_key) };
        let format = if t == "grpc" { "protobuf" } else { "bincode" };
        let call = p50(&results, &format!("multiply/{format}/{t}/c1"));
        println!(
            "{t:<8} {:>10.1}µs {:>10.3} {:>14.1}µs {:>10.3}{}",
            raw / 1e3,
            raw / raw_tcp,
            call / 1e3,
            call / raw_tcp,
            if t == "grpc" { format!("{note}; grpc row is protobuf (stock tonic)") } else { String::new() }
        );
    }
    let tcp_ratio = p50(&results, "multiply/bincode/tcp/c1") / raw_tcp;
    println!("\nharness overhead: tcp+bincode Multiply p50 / raw tcp p50 = {tcp_ratio:.3} (goal: at most 1.15)");
    let http2 = p50(&results, "multiply/protobuf/http2/c1");
    let grpc = p50(&results, "multiply/protobuf/grpc/c1");
    println!(
        "http2 vs stock gRPC, protobuf Multiply p50: {:.1}µs vs {:.1}µs = {:.3} (goal: below 1)",
        http2 / 1e3,
        grpc / 1e3,
        http2 / grpc
    );

    let throughput = |c: &Cell| c.metrics.as_ref().map_or(0.0, |m| m.calls_per_sec);
    let best = results
        .cells
        .values()
        .filter(|c| c.status == CellStatus::Ok && c.format != "raw" && c.load.in_flight == 64)
        .max_by(|a, b| throughput(a).total_cmp(&throughput(b)))
        .unwrap();
    let grpc64 = throughput(&results.cells["multiply/protobuf/grpc/c64"]);
    println!(
        "throughput at 64 in flight: best cell {} {:.0} calls/s vs stock gRPC {:.0} calls/s = {:.2}x (goal: above 1)",
        best.key,
        throughput(best),
        grpc64,
        throughput(best) / grpc64
    );
}
