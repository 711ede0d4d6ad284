//! The harness across a link: tcp Multiply at `rtt=20ms`, one call in
//! flight, never completes faster than the RTT (the emulator holds every
//! packet for its delay), and the link is measured and recorded with the
//! run. The accuracy target (p50 at most 20.6 ms: the RTT plus the
//! emulator, two stacks and the codec) is a speed figure, so it is
//! printed as a ratio, not asserted: a loaded machine moves it. Needs
//! root and TUN; skipped without them unless `WIREBENCH_REQUIRE_LINK=1`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::link;
use wirebench_reports::model::CellStatus;

#[test]
fn tcp_multiply_over_20ms_never_beats_the_rtt_and_records_the_link() {
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
    println!("p50 / rtt = {:.4} (target: at most 1.03, i.e. 20.6 ms)", p50 as f64 / 20e6);
    // The histogram keeps 3 significant digits: its minimum may read up to
    // 0.1% below the fastest call.
    assert!(m.latency.min >= 19_980_000, "a call took {} ns, less than the link's RTT", m.latency.min);
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
