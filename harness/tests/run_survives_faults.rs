//! Faults during a run: the cell is recorded as failed with the reason,
//! the other cells and the file survive, the exit status says so.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::*;
use wirebench_reports::model::CellStatus;

#[test]
fn a_server_that_dies_mid_run_fails_its_cell_and_is_restarted() {
    // The child server is aborted halfway through the measured window of
    // one cell: that cell fails with how, and only that one.
    let crashed = "echo-16B/bincode/tcp/c1";
    let (_, results) = run(
        &format!(
            "--formats bincode --transports tcp --workloads multiply,echo-16B,echo-1KiB,digest-1 --concurrency 1 \
             --server-crash-in {crashed}"
        ),
        1,
    );
    assert_eq!(results.cells.len(), 8);
    for (key, status) in statuses(&results) {
        let cell = &results.cells[&key];
        if key == crashed {
            assert_eq!(status, CellStatus::Failed, "{key}");
            let error = cell.error.as_deref().unwrap();
            assert!(
                error.contains("server process was killed by signal 6") && error.contains("during this cell"),
                "{error}"
            );
        } else {
            // The restarted server served the later cells.
            assert_eq!(status, CellStatus::Ok, "{key}: {:?}", cell.error);
        }
    }
}

#[test]
fn a_transport_that_times_out_every_call_fails_its_cells() {
    let started = Instant::now();
    let (_, results) = run(
        "--formats protobuf --transports udp --workloads multiply --concurrency 1 --timeout 100ms --server-stall 1h/1h",
        1,
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // The stall holds every RPC call (the raw floor has no service to stall).
    let rpc: Vec<_> = results.cells.values().filter(|c| c.format != "raw").collect();
    assert!(!rpc.is_empty());
    for cell in rpc {
        assert_eq!(cell.status, CellStatus::Failed, "{}", cell.key);
        let error = cell.error.as_deref().unwrap();
        assert!(error.contains("timeouts") || error.contains("no reply"), "{}: {error}", cell.key);
    }
}

#[test]
fn wrong_replies_fail_the_cell() {
    let (output, results) = run(
        "--formats json,capnp --transports tcp,grpc --workloads multiply,echo-16B,digest-1 --concurrency 1 \
         --server-fault wrong-replies",
        1,
    );
    for cell in results.cells.values().filter(|c| c.format != "raw" && c.status != CellStatus::Unsupported) {
        assert_eq!(cell.status, CellStatus::Failed, "{}", cell.key);
        let error = cell.error.as_deref().unwrap();
        assert!(error.contains("wrong replies"), "{}: {error}", cell.key);
        assert!(cell.metrics.as_ref().unwrap().wrong_replies > 0);
    }
    // The raw floor has nothing to verify against the service and stays ok.
    assert!(results.cells.values().filter(|c| c.format == "raw").all(|c| c.status == CellStatus::Ok));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("failed:"), "the summary lists failed cells: {stdout}");
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_finished_cells() {
    let dir = temp();
    let out = out_dir(&dir);
    let mut child = command(
        &out,
        &[
            "--formats",
            "bincode,protobuf,json",
            "--transports",
            "tcp,unix",
            "--workloads",
            "multiply,echo",
            "--duration",
            "200ms",
        ],
    )
    .spawn()
    .unwrap();
    // Wait until some cells are on disk, then interrupt.
    let results_path = out.join("results.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = wirebench_reports::Results::read(&results_path).map(|r| r.cells.len()).unwrap_or(0);
        if done >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no cells written");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let results = wirebench_reports::Results::read(&results_path).unwrap();
    assert!(results.interrupted);
    assert!(results.cells.len() >= 3, "{:?}", statuses(&results));
    assert!(results.cells.values().all(|c| c.status == CellStatus::Ok), "{:?}", statuses(&results));
    assert!(!results.environment.finished_at.is_empty());
}
