//! The test-only injected delay is a real slowdown of the server's calls,
//! for the formats it names only: what the false-alarm and detection
//! experiments (`scripts/false-alarm.sh`) rely on.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn an_injected_busy_wait_slows_exactly_the_formats_named() {
    let (_, results) = common::run(
        "--formats json,bincode --transports tcp --workloads multiply --concurrency 1 --server-inject-delay 2ms:json",
        0,
    );
    let p50 = |format: &str| results.cells[&format!("multiply/{format}/tcp/c1")].metrics.as_ref().unwrap().latency.p50;
    // The server spins 2 ms in every json call: no json call can be faster.
    assert!(p50("json") >= 2_000_000, "json p50 {} ns", p50("json"));
    // bincode is not slowed: a loopback call is tens of microseconds.
    assert!(p50("bincode") < 2_000_000, "bincode p50 {} ns", p50("bincode"));
    // The raw floor has no service and is never slowed.
    assert!(results.cells["multiply/raw/tcp/c1"].metrics.as_ref().unwrap().latency.p50 < 2_000_000);
}
