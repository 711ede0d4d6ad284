//! `wirebench compare` and `merge` at the command line: out-of-range
//! options and bad globs are refused in one line naming the option, the
//! value and the range (exit 2); a comparison with nothing to judge exits
//! 2; a regression exits 3.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/data/quick-slice.json")
}

fn wirebench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wirebench")).args(args).output().unwrap()
}

fn one_line_error(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn options_out_of_range_are_refused_in_their_own_units() {
    let f = fixture();
    let f = f.to_str().unwrap();
    for (flag, value, says) in [
        ("--threshold", "0", "0% is out of range: a percentage above 0 and below 100"),
        ("--threshold", "100", "a percentage above 0 and below 100"),
        ("--threshold", "five", "not a number"),
        ("--instructions-threshold", "-1", "-1% is out of range"),
        ("--alpha", "0.9", "0.9 is out of range: a probability above 0 and at most 0.5"),
        ("--ignore", "[", "invalid glob \"[\": a `[` is not closed by `]`"),
    ] {
        let err = one_line_error(&wirebench(&["compare", f, f, flag, value]), 2);
        assert!(
            err.contains(flag) && err.contains(&format!("'{value}'")) && err.contains(says),
            "{flag} {value}: {err}"
        );
        assert!(!err.contains("between 0 and 1"), "{err}");
    }
}

#[test]
fn nothing_to_judge_exits_2_and_a_regression_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let base = fixture();
    let empty = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/data/empty.json");
    let err = one_line_error(&wirebench(&["compare", base.to_str().unwrap(), empty.to_str().unwrap()]), 2);
    assert!(err.contains("no cell in common") && err.contains("empty.json"), "{err}");

    // Every cell three times slower: one run a side flags it.
    let mut slow = wirebench_reports::Results::read(&base).unwrap();
    for cell in slow.cells.values_mut() {
        for s in &mut cell.samples {
            s.p50_ns *= 3;
            s.p99_ns *= 3;
            s.calls_per_sec /= 3.0;
        }
        if let Some(m) = cell.metrics.as_mut() {
            m.latency.p50 *= 3;
            m.latency.p99 *= 3;
            m.calls_per_sec /= 3.0;
        }
    }
    let slow_path = dir.path().join("slow.json");
    slow.write_atomic(&slow_path).unwrap();
    let out = wirebench(&["compare", base.to_str().unwrap(), slow_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("❌ **Regression**"));

    // The same file twice is not two runs.
    let merged = dir.path().join("m.json");
    let err = one_line_error(
        &wirebench(&["merge", base.to_str().unwrap(), base.to_str().unwrap(), "-o", merged.to_str().unwrap()]),
        2,
    );
    assert!(err.contains("already holds") && err.contains("quick-slice.json"), "{err}");
    assert!(!merged.exists());
}
