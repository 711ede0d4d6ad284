//! The harness's own accuracy across a link: tcp Multiply at `rtt=20ms`,
//! one call in flight, has a p50 between 20 and 20.6 ms (the RTT, plus
//! the emulator, the two stacks and the codec). Needs root and TUN;
//! skipped without them unless `WIREBENCH_REQUIRE_LINK=1`. A loaded
//! machine widens the window (many calls), never the bound.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::link;
use wirebench_reports::model::CellStatus;

#[test]
fn tcp_multiply_over_20ms_has_a_p50_between_20_and_20_6_ms() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 201;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let child = common::command(
        &out,
        &[
            "--link",
            "rtt=20ms",
            "--formats",
            "bincode",
            "--transports",
            "tcp",
            "--workloads",
            "multiply",
            "--concurrency",
            "1",
            // About 150 calls: a p50 that a few late wake-ups cannot move.
            "--duration",
            "3s",
            "--samples",
            "10",
            "--max-message",
            &marker.to_string(),
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let output = link::finish(child, marker);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let results = wirebench_reports::Results::read(&out.join("results.json")).unwrap();
    let cell = &results.cells["multiply/bincode/tcp/c1@rtt=20ms"];
    assert_eq!(cell.status, CellStatus::Ok, "{:?}", cell.error);
    let m = cell.metrics.as_ref().unwrap();
    let p50 = m.latency.p50;
    println!("p50 {p50} ns over {} calls (min {} ns, p99 {} ns)", m.calls, m.latency.min, m.latency.p99);
    assert!(m.calls >= 100, "{} calls", m.calls);
    assert!((20_000_000..=20_600_000).contains(&p50), "p50 {p50} ns is not within 20 to 20.6 ms");
    assert_eq!(cell.link.as_ref().unwrap().spec, "rtt=20ms");
    // The link was measured and recorded with the run.
    let record = &results.links[0];
    assert_eq!((record.name.as_str(), record.rtt_ns), ("rtt=20ms", 20_000_000));
    let validation = record.validation.as_ref().unwrap();
    assert!(validation.rtt.received > 0 && validation.throughput.bytes > 0);
    assert!(!validation.throughput.congestion_control.is_empty());
    assert!(record.usage.as_ref().unwrap().forwarded_packets > 0);
    // The server's CPU was read from inside its namespace.
    assert!(m.server_user_us_per_call.is_some(), "{}", m.server_cpu);
    assert!(results.server_environment.is_some());
}
