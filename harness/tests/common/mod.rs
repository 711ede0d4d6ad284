//! Runs the real `wirebench` binary for the harness tests.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wirebench_reports::model::{CellStatus, Results};

/// `wirebench run` with a tiny, fast matrix and `flags` (separated by
/// whitespace), into a fresh directory; the run must exit with `exit`.
pub fn run(flags: &str, exit: i32) -> (Output, Results) {
    let dir = temp();
    let out = out_dir(&dir);
    let output = command(&out, &flags.split_whitespace().collect::<Vec<_>>()).output().unwrap();
    let printed = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    assert_eq!(output.status.code(), Some(exit), "wirebench run {flags}\n{}", printed());
    let results = Results::read(&out.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{}", printed()));
    (output, results)
}

/// `wirebench run` with the tiny matrix and `flags` into `out`; the run
/// must exit with `exit`.
pub fn run_into(out: &Path, flags: &str, exit: i32) -> (Output, Results) {
    let output = command(out, &flags.split_whitespace().collect::<Vec<_>>()).output().unwrap();
    let printed = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(exit), "wirebench run {flags}\n{printed}");
    let results = Results::read(&out.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    (output, results)
}

/// The command of `run`, not started.
pub fn command(out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wirebench"));
    command
        .args(["run", "--quiet", "--duration", "60ms", "--warmup", "20ms", "--samples", "3", "--out"])
        .arg(out)
        .args(extra);
    command
}

pub fn statuses(results: &Results) -> Vec<(String, CellStatus)> {
    results.cells.values().map(|c| (c.key.clone(), c.status)).collect()
}

pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn out_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("out")
}

pub mod link;

/// Whether the broker `binary` is installed; CI requires it
/// (`WIREBENCH_REQUIRE_BROKERS=1`), elsewhere a test without it skips.
pub fn broker_installed(binary: &str) -> bool {
    let found = wirebench_transports::broker::daemon::find_binary(binary).is_some();
    if !found {
        assert!(
            std::env::var_os("WIREBENCH_REQUIRE_BROKERS").is_none_or(|v| v != "1"),
            "{binary} is required (WIREBENCH_REQUIRE_BROKERS=1) but not installed"
        );
        eprintln!("skipped: {binary} is not installed");
    }
    found
}
