//! Runs started in the same second, in the same directory, never write
//! into the same default output directory.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

#[test]
fn two_runs_started_together_get_two_directories() {
    let dir = common::temp();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_wirebench"))
            .args(["run", "--quiet", "--formats", "json", "--transports", "inproc", "--workloads", "multiply"])
            .args(["--concurrency", "1", "--duration", "30ms", "--warmup", "0s", "--samples", "2"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let mut runs: Vec<_> =
        std::fs::read_dir(dir.path().join("wirebench-results")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert!(run.join("results.json").exists(), "{}", run.display());
    }
    // Each run printed its own directory.
    let printed = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert_ne!(
        printed(&a).lines().find(|l| l.starts_with("results:")),
        printed(&b).lines().find(|l| l.starts_with("results:"))
    );
}
