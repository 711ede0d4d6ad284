//! A closed stdout or stderr never loses a run's results, and the printing
//! commands end quietly on a closed pipe (`wirebench ... | head`).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use wirebench_reports::model::Results;

/// Runs `command` with its stdout (or stderr) a pipe whose reading end is
/// already closed; its exit status and stderr.
fn with_closed(mut command: Command, stream: &str) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    match stream {
        "stdout" => command.stdout(writer).stderr(Stdio::piped()),
        _ => command.stderr(writer).stdout(Stdio::piped()),
    };
    let output = command.stdin(Stdio::null()).output().unwrap();
    let said = String::from_utf8_lossy(if stream == "stdout" { &output.stderr } else { &output.stdout }).into_owned();
    (output.status.code(), said)
}

const MATRIX: &str = "--formats json,bincode --transports inproc,tcp --workloads multiply --concurrency 1";

#[test]
fn a_run_with_a_closed_stdout_or_stderr_keeps_every_cell_and_its_report() {
    for stream in ["stdout", "stderr"] {
        let dir = common::temp();
        let out = common::out_dir(&dir);
        let mut command = common::command(&out, &MATRIX.split_whitespace().collect::<Vec<_>>());
        // Progress lines, not --quiet: they must not kill the run either.
        command.args(["--samples", "2"]);
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wirebench"));
        command.args(args.iter().filter(|a| *a != "--quiet"));
        let (code, said) = with_closed(command, stream);
        assert_eq!(code, Some(0), "closed {stream}: {said}");
        assert!(!said.contains("panicked"), "{said}");
        let results = Results::read(&out.join("results.json")).unwrap();
        assert_eq!(results.planned.len(), results.cells.len(), "every planned cell is in the file");
        assert!(!results.cells.is_empty());
        assert!(results.cells.values().all(|c| c.status == wirebench_reports::CellStatus::Ok));
        for file in ["index.html", "summary.md", "results.csv"] {
            assert!(out.join(file).exists(), "closed {stream}: no {file}");
        }
    }
}

#[test]
fn printing_commands_end_quietly_on_a_closed_stdout() {
    let dir = common::temp();
    let out = common::out_dir(&dir);
    common::run_into(&out, MATRIX, 0);
    let results = out.join("results.json").display().to_string();
    for args in [
        vec!["run", "--list"],
        vec!["--list"],
        vec!["formats"],
        vec!["sizes"],
        vec!["dump", "--format", "json", "--workload", "echo", "--size", "1MiB"],
        vec!["dump", "--format", "json", "--workload", "digest", "--records", "1000", "--hex"],
        vec!["report", &results, "--out", dir.path().to_str().unwrap()],
        vec!["export", &results, "--to", "markdown"],
        vec!["compare", &results, &results],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wirebench"));
        command.args(&args);
        let (code, said) = with_closed(command, "stdout");
        assert_eq!(code, Some(0), "{args:?}: {said}");
        assert!(said.trim().is_empty() || !said.contains("panicked"), "{args:?}: {said}");
        assert!(!said.contains("Broken pipe"), "{args:?} complained: {said}");
    }
}
