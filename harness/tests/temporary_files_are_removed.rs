//! Temporary socket directories are removed on every exit path: after an
//! in-process run, after a child-server run, and after a run whose server
//! crashed.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;

fn leftovers(pid: u32) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("wirebench-{pid}-")))
        .collect()
}

fn run_and_check(extra: &[&str], exits: &[i32]) -> String {
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let mut args =
        vec!["--formats", "json", "--transports", "unix,tcp", "--workloads", "multiply", "--concurrency", "1"];
    args.extend(extra);
    let child = common::command(&out, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(exits.contains(&output.status.code().unwrap_or(-1)), "{extra:?}: {:?}: {stderr}", output.status);
    assert!(leftovers(pid).is_empty(), "{extra:?} left {:?}", leftovers(pid));
    // What the run said about its server: warnings, and the cells' errors.
    let results = std::fs::read_to_string(out.join("results.json")).unwrap();
    format!("{stderr}\n{results}")
}

#[test]
fn in_process_runs_remove_their_socket_directory() {
    run_and_check(&["--in-process"], &[0]);
}

#[test]
fn child_server_runs_remove_their_socket_directory() {
    run_and_check(&[], &[0]);
}

#[test]
fn a_run_whose_server_crashes_removes_every_socket_directory() {
    // The child server aborts as soon as it has reported its sockets; a
    // new one is started with a new directory (before the first cell, or
    // after a cell that failed with it), and both directories must be gone
    // at the end.
    let said = run_and_check(&["--server-crash-after", "0s"], &[0, 1]);
    assert!(said.contains("a new one was started"), "the crash was seen and the server restarted: {said}");
}
