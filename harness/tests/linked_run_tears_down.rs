//! A linked run leaves nothing behind on any way out: a normal end with
//! failed cells, one Ctrl-C, two Ctrl-Cs (which do not wait for the run),
//! and a server that crashes mid-run (restarted inside the link). Needs
//! root and TUN (skipped otherwise, unless `WIREBENCH_REQUIRE_LINK=1`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::link;
use wirebench_reports::model::{CellStatus, Results};

fn spawn(out: &std::path::Path, marker: usize, extra: &[&str]) -> Child {
    let mut args = vec!["--link", "rtt=1ms", "--formats", "bincode", "--workloads", "multiply,echo-16B,echo-1KiB"];
    args.extend_from_slice(extra);
    let marker = marker.to_string();
    args.extend_from_slice(&["--max-message", &marker]);
    common::command(out, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits until the results file holds at least `cells` cells.
fn wait_for_cells(out: &std::path::Path, cells: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = Results::read(&out.join("results.json")).map(|r| r.cells.len()).unwrap_or(0);
        if done >= cells {
            return;
        }
        assert!(Instant::now() < deadline, "no cells written");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, times: usize) {
    for _ in 0..times {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn failed_cells_end_the_run_normally_and_everything_goes() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 204;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let child = spawn(&out, marker, &["--transports", "tcp", "--concurrency", "1", "--server-fault", "wrong-replies"]);
    let output = link::finish(child, marker);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let results = Results::read(&out.join("results.json")).unwrap();
    assert!(results.cells.values().any(|c| c.status == CellStatus::Failed));
}

#[test]
fn one_ctrl_c_stops_at_the_cell_and_everything_goes() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 205;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let child = spawn(&out, marker, &["--transports", "tcp,udp,quic", "--concurrency", "1,4", "--clients", "2"]);
    wait_for_cells(&out, 2);
    signal(&child, 1);
    let output = link::finish(child, marker);
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    let results = Results::read(&out.join("results.json")).unwrap();
    assert!(results.interrupted);
    assert_eq!(results.links.len(), 1);
}

#[test]
fn two_ctrl_cs_leave_at_once_and_everything_goes() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 206;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let child = spawn(&out, marker, &["--transports", "tcp,udp,quic", "--concurrency", "1,4", "--duration", "2s"]);
    wait_for_cells(&out, 1);
    signal(&child, 2);
    let output = link::finish(child, marker);
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    // The file on disk is whole as of its last write.
    assert!(Results::read(&out.join("results.json")).is_ok());
}

#[test]
fn a_server_crash_is_restarted_inside_the_link() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 207;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let crashed = "echo-16B/bincode/tcp/c1@rtt=1ms";
    let child = spawn(
        &out,
        marker,
        &["--transports", "tcp", "--concurrency", "1", "--duration", "150ms", "--server-crash-in", crashed],
    );
    let output = link::finish(child, marker);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let results = Results::read(&out.join("results.json")).unwrap();
    let failed: Vec<_> = results.cells.values().filter(|c| c.status == CellStatus::Failed).map(|c| &c.key).collect();
    assert_eq!(failed, [crashed], "{:?}", common::statuses(&results));
    let error = results.cells[crashed].error.as_deref().unwrap();
    assert!(error.contains("server process was killed by signal 6"), "{error}");
    // The last cells ran against the server restarted behind the link.
    let last: Vec<_> = results.cells.values().filter(|c| c.workload == "echo-1KiB").collect();
    assert!(last.iter().all(|c| c.status == CellStatus::Ok), "{:?}", common::statuses(&results));
}
