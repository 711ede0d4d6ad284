//! A small run end to end: every cell verified, a complete results file,
//! exit status 0.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use wirebench_reports::model::CellStatus;

#[test]
fn a_small_run_writes_a_complete_results_file() {
    let (output, results) =
        run("--formats bincode,json --transports tcp,udp,inproc --workloads multiply,echo-64KiB --concurrency 1,4", 0);
    // 2 workloads x 2 loads x (3 raw + 3 x 2 formats)
    assert_eq!(results.cells.len(), 2 * 2 * (3 + 6), "{:?}", statuses(&results));
    for cell in results.cells.values() {
        match (cell.transport.as_str(), cell.workload.as_str()) {
            // 64 KiB does not fit a 1472-byte datagram: unsupported, with why.
            ("udp", "echo-64KiB") => {
                assert_eq!(cell.status, CellStatus::Unsupported, "{}", cell.key);
                assert!(cell.error.as_deref().unwrap().contains("1472"), "{:?}", cell.error);
            }
            _ => {
                assert_eq!(cell.status, CellStatus::Ok, "{}: {:?}", cell.key, cell.error);
                let m = cell.metrics.as_ref().unwrap();
                assert!(m.calls > 0 && m.latency.p50 > 0 && m.latency.p50 <= m.latency.p99);
                assert_eq!(m.errors + m.timeouts + m.wrong_replies, 0);
                assert!(cell.histogram.is_some());
                // At least the planned 3 sub-windows; more if a slow cell was extended.
                assert!(cell.samples.len() >= 3, "{}", cell.samples.len());
                if cell.format != "raw" {
                    assert!(m.overhead_p50.is_some(), "{} has no overhead", cell.key);
                    assert!(m.request_zstd_bytes.is_some());
                }
                if cell.transport == "tcp" {
                    assert!(m.server_user_us_per_call.is_some(), "{}: {}", cell.key, m.server_cpu);
                }
                // Hundreds of small calls per window: the 12-byte frame
                // header shows, and window-edge effects do not.
                if cell.transport == "tcp" && cell.workload == "multiply" && cell.format != "raw" {
                    let framed = (m.request_bytes + 12) as f64;
                    let sent = m.wire_sent_per_call.unwrap();
                    assert!((sent - framed).abs() < 1.0, "{}: {sent} bytes sent per call, frame is {framed}", cell.key);
                }
            }
        }
    }
    // The environment and configuration are recorded.
    assert!(results.environment.rustc.starts_with("rustc"));
    assert_eq!(results.config.duration_ms, 60);
    assert_eq!(results.config.server, "process");
    assert!(!results.interrupted);
    assert!(results.formats.contains_key("bincode") && results.transports.contains_key("udp"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("results:") && stdout.contains("36 cells: 30 ok, 0 failed, 6 unsupported"), "{stdout}");
}

#[test]
fn list_prints_the_cells_without_running_them() {
    let dir = temp();
    let output = command(
        &out_dir(&dir),
        &["--list", "--formats", "protobuf", "--transports", "grpc", "--workloads", "multiply", "--concurrency", "1"],
    )
    .output()
    .unwrap();
    assert!(output.status.success());
    let keys = String::from_utf8(output.stdout).unwrap();
    assert_eq!(keys, "multiply/raw/http2/c1\nmultiply/protobuf/grpc/c1\n");
    assert!(!out_dir(&dir).exists(), "--list must not run anything");
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = temp();
    for flags in [&["--formats", "xml"][..], &["--duration", "soon"], &["--concurrency", "0"], &["--bogus"]] {
        let output = command(&out_dir(&dir), flags).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn in_process_servers_are_measured_too() {
    let (_, results) =
        run("--in-process --formats protobuf --transports tcp,quic --workloads multiply --concurrency 1", 0);
    assert_eq!(results.config.server, "in-process");
    assert_eq!(results.cells.len(), 4);
    for cell in results.cells.values() {
        assert_eq!(cell.status, CellStatus::Ok, "{}: {:?}", cell.key, cell.error);
        let m = cell.metrics.as_ref().unwrap();
        assert!(m.server_cpu.starts_with("in-process"), "{}", m.server_cpu);
    }
}

#[test]
fn poisson_open_loop_runs_at_its_mean_rate() {
    let (_, results) = run(
        "--formats bincode --transports udp --workloads multiply --rate 2000 --poisson --concurrency 8 --duration 1s",
        0,
    );
    let cell = &results.cells["multiply/bincode/udp/p2000c8"];
    assert_eq!(cell.load.model, "open-poisson");
    let m = cell.metrics.as_ref().unwrap();
    // 2000/s for 1 s: Poisson counts stay well within +-10%.
    assert!((1800..=2200).contains(&m.calls), "{} calls", m.calls);
    assert!(m.latency_uncorrected.is_some() && m.send_lag_p99_ns.is_some());
}
