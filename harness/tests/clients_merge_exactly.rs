//! `--clients K`: K client processes per cell, started together, merged
//! into one cell: calls add up, the merged histogram holds every call,
//! sub-windows add up, each client's share is kept, and the key and the
//! load say K. On loopback, and (with root and TUN) across a link with a
//! client namespace each.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::link;
use wirebench_reports::model::{CellStatus, Results};

fn check_merged(results: &Results, suffix: &str) {
    let ok: Vec<_> = results.cells.values().filter(|c| c.status == CellStatus::Ok).collect();
    assert!(!ok.is_empty(), "{:?}", common::statuses(results));
    for cell in results.cells.values() {
        assert!(cell.key.ends_with(suffix), "{}", cell.key);
        assert_eq!(cell.load.clients, 2, "{}", cell.key);
    }
    for cell in ok {
        let m = cell.metrics.as_ref().unwrap();
        assert_eq!(cell.clients.len(), 2, "{}", cell.key);
        assert!(cell.clients.iter().all(|c| c.calls > 0), "{}: both clients measured", cell.key);
        assert_eq!(m.calls, cell.clients.iter().map(|c| c.calls).sum::<u64>(), "{}: calls add up", cell.key);
        let h = wirebench_reports::histogram::decode(cell.histogram.as_ref().unwrap()).unwrap();
        assert_eq!(h.len(), m.calls, "{}: the merged histogram holds every call", cell.key);
        assert_eq!(cell.samples.iter().map(|s| s.calls).sum::<u64>(), m.calls, "{}: sub-windows add up", cell.key);
        let rate: f64 = cell.clients.iter().map(|c| c.calls_per_sec).sum();
        assert!((m.calls_per_sec - rate).abs() <= 1e-6 * rate, "{}: calls/s add up", cell.key);
        // A merged median lies between the clients' medians (one
        // bucket's rounding either way).
        let (lo, hi) = (
            cell.clients.iter().map(|c| c.p50_ns).min().unwrap(),
            cell.clients.iter().map(|c| c.p50_ns).max().unwrap(),
        );
        assert!(
            h.lowest_equivalent(lo) <= m.latency.p50 && m.latency.p50 <= h.highest_equivalent(hi),
            "{}: p50 {} outside the clients' {lo}..{hi}",
            cell.key,
            m.latency.p50
        );
        if cell.transport != "inproc" {
            assert!(m.server_cpu.contains("2 clients"), "{}: {}", cell.key, m.server_cpu);
        }
    }
}

#[test]
fn two_clients_on_loopback_merge_exactly() {
    let (_, results) = common::run(
        "--clients 2 --formats bincode --transports tcp,udp,inproc --workloads multiply,echo-1KiB --concurrency 1,4",
        0,
    );
    assert_eq!(results.cells.len(), 2 * 2 * 6);
    assert!(results.cells.contains_key("multiply/bincode/tcp/c4k2"));
    check_merged(&results, "k2");
}

#[test]
fn two_clients_across_a_link_each_in_a_namespace_merge_exactly() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 203;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let child = common::command(
        &out,
        &[
            "--link",
            "rtt=2ms",
            "--clients",
            "2",
            "--formats",
            "bincode",
            "--transports",
            "tcp,quic",
            "--workloads",
            "multiply",
            "--concurrency",
            "4",
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
    let results = Results::read(&out.join("results.json")).unwrap();
    check_merged(&results, "k2@rtt=2ms");
    assert_eq!(results.links[0].clients, 2, "one namespace per client");
}
