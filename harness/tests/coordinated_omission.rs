//! Open-loop latency is timed from each call's intended send time. A
//! server that pauses 50 ms every 500 ms must raise the corrected p99 to
//! the pause's scale, while the uncorrected figure (timed from the actual
//! send, which waited for the stalled call) stays low. Generous bounds:
//! the effect is three orders of magnitude.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use wirebench_reports::model::CellStatus;

#[test]
fn a_stalling_server_shows_in_corrected_latency_only() {
    let (_, results) = run(
        "--formats bincode --transports tcp --workloads multiply --rate 1000 --concurrency 1 --duration 2s \
         --warmup 100ms --server-stall 50ms/500ms",
        0,
    );
    let cell = &results.cells["multiply/bincode/tcp/r1000c1"];
    assert_eq!(cell.status, CellStatus::Ok, "{:?}", cell.error);
    let m = cell.metrics.as_ref().unwrap();
    assert_eq!(m.latency_kind, "corrected");
    let corrected = m.latency.p99;
    let uncorrected = m.latency_uncorrected.unwrap().p99;
    eprintln!("corrected p99 {corrected} ns, uncorrected p99 {uncorrected} ns, send lag p99 {:?}", m.send_lag_p99_ns);
    // About 10% of calls are due during a pause and wait up to 50 ms.
    assert!(corrected > 20_000_000, "corrected p99 {corrected} ns is not at the stall's scale");
    assert!(uncorrected < 10_000_000, "uncorrected p99 {uncorrected} ns should stay low");
    assert!(cell.histogram_uncorrected.is_some());
    // 1000 calls/s for 2 s.
    assert!((1500..=2100).contains(&m.calls), "{} calls", m.calls);
}
