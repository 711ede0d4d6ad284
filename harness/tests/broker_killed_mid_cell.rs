//! A broker killed in the middle of a cell fails that cell with the
//! reason, the next cell gets a fresh broker (and a responder connected to
//! it), and nothing else is lost; the broker's processes and directories
//! are gone when the run ends.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use wirebench_reports::model::CellStatus;

#[test]
fn a_broker_killed_mid_cell_fails_that_cell_only() {
    if !common::broker_installed("nats-server") {
        return;
    }
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let killed = "multiply/json/nats/c1";
    let flags = [
        "--transports",
        "nats",
        "--formats",
        "json",
        "--workloads",
        "multiply",
        "--concurrency",
        "1,4",
        "--timeout",
        "1s",
        "--broker-crash-in",
        killed,
    ];
    let child = common::command(&out, &flags)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "one cell fails: {stderr}");
    let results = wirebench_reports::model::Results::read(&out.join("results.json")).unwrap();
    let statuses = common::statuses(&results);
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    for (key, status) in &statuses {
        let cell = &results.cells[key];
        if key == killed {
            assert_eq!(*status, CellStatus::Failed, "{key}");
            let error = cell.error.as_deref().unwrap();
            assert!(error.contains("nats broker") && error.contains("signal 9"), "{error}");
            assert!(error.contains("fresh one was started"), "{error}");
        } else {
            assert_eq!(*status, CellStatus::Ok, "{key}: {:?}", cell.error);
            let m = cell.metrics.as_ref().unwrap();
            assert!(
                m.broker_cpu.as_deref().is_some_and(|b| b.starts_with("broker process tree")),
                "{key}: {:?}",
                m.broker_cpu
            );
            assert!(m.broker_user_us_per_call.is_some(), "{key}");
        }
    }
    // Two daemons ran (the killed one and its replacement), each with its log.
    let logs = std::fs::read_dir(out.join("brokers")).unwrap().count();
    assert_eq!(logs, 2, "one log per broker start");
    // Nothing of either is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("wirebench-nats-{pid}-")))
        .collect();
    assert!(leftovers.is_empty(), "broker directories left: {leftovers:?}");
    // nats-server runs with its configuration in that directory: no
    // process may still name it.
    let marker = format!("wirebench-nats-{pid}-");
    let running: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(running.is_empty(), "broker processes left: {running:?}");
}
