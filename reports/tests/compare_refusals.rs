//! A comparison that would judge nothing is an error, not a pass: no cell
//! in common, a side with no ok cell, bad settings or a bad pattern.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use wirebench_reports::CellStatus;
use wirebench_reports::compare::{CompareError, Options, compare};

#[test]
fn no_cells_in_common_is_an_error() {
    let base = common::load("quick-slice.json");
    let empty = common::load("empty.json");
    let err = compare(&base, &empty, &Options::default()).unwrap_err();
    assert!(matches!(err, CompareError::NoCommonCells { base: 76, new: 0 }), "{err}");
    assert!(err.to_string().contains("no cell in common"), "{err}");
    let err = compare(&empty, &empty, &Options::default()).unwrap_err();
    assert!(matches!(err, CompareError::NoCommonCells { .. }), "{err}");
    let mut renamed = base.clone();
    renamed.cells = renamed.cells.into_iter().map(|(k, c)| (format!("other-{k}"), c)).collect();
    assert!(matches!(compare(&base, &renamed, &Options::default()), Err(CompareError::NoCommonCells { .. })));
}

#[test]
fn a_side_with_no_ok_cell_is_an_error() {
    let base = common::load("quick-slice.json");
    let mut dead = base.clone();
    for cell in dead.cells.values_mut() {
        cell.status = CellStatus::Failed;
    }
    let err = compare(&base, &dead, &Options::default()).unwrap_err();
    assert!(matches!(err, CompareError::NoOkCells { side: "new", .. }), "{err}");
    let err = compare(&dead, &base, &Options::default()).unwrap_err();
    assert!(err.to_string().contains("the base file has no ok cell"), "{err}");
}

#[test]
fn bad_settings_and_patterns_are_errors() {
    let base = common::load("quick-slice.json");
    for options in [
        Options { threshold: 0.0, ..Options::default() },
        Options { threshold: 5.0, ..Options::default() },
        Options { instructions_threshold: -0.01, ..Options::default() },
        Options { alpha: 0.0, ..Options::default() },
    ] {
        let err = compare(&base, &base, &options).unwrap_err();
        assert!(matches!(err, CompareError::Options(_)), "{err}");
        assert!(err.to_string().contains("fraction") || err.to_string().contains("alpha"), "{err}");
    }
    let mut options = Options::default();
    options.single.cell.p50 = 1.0;
    assert!(compare(&base, &base, &options).unwrap_err().to_string().contains("single-replicate cell ratio of p50"));
    let err = compare(&base, &base, &Options { ignore: vec!["[".into()], ..Options::default() }).unwrap_err();
    assert!(matches!(err, CompareError::Glob(_)) && err.to_string().contains("not closed"), "{err}");
}
