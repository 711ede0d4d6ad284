//! Instruction counts come from valgrind's callgrind and repeat exactly:
//! two runs of the same build give the same counts, whatever else the
//! machine is doing. Skipped (and says so) without valgrind, unless
//! WIREBENCH_REQUIRE_VALGRIND=1.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;

use wirebench_reports::Results;

fn valgrind_present() -> bool {
    Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn count(out: &std::path::Path) -> Results {
    let status = Command::new(env!("CARGO_BIN_EXE_wirebench"))
        .args(["instructions", "--formats", "bincode,flatbuffers", "--workloads", "multiply,digest-10"])
        // Codec operations only: tests/call_counts_repeat.rs counts whole calls.
        .args(["--transports", "none", "--out"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    Results::read(out).unwrap()
}

#[test]
fn two_runs_count_the_same_instructions() {
    if !valgrind_present() {
        assert!(
            std::env::var("WIREBENCH_REQUIRE_VALGRIND").as_deref() != Ok("1"),
            "valgrind not found, and WIREBENCH_REQUIRE_VALGRIND=1"
        );
        eprintln!("skipped: valgrind not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = count(&dir.path().join("a.json")).instructions.unwrap();
    let b = count(&dir.path().join("b.json")).instructions.unwrap();
    assert!(a.tool.contains("valgrind"), "{}", a.tool);
    // bincode: encode and decode; flatbuffers: also access. Two workloads.
    assert_eq!(a.counts.len(), 2 * 2 + 2 * 3, "{:?}", a.counts);
    assert_eq!(a.counts, b.counts, "instruction counts differ between two runs");
    for (key, n) in &a.counts {
        assert!(*n > 0, "{key}");
    }
    // More records, more instructions.
    assert!(a.counts["digest-10/bincode/decode"] > a.counts["multiply/bincode/decode"]);
}
