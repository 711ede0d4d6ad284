//! The CI gate's verdicts on doctored copies of a real results file:
//! exact metrics, instruction counts, status, ignore patterns and the
//! machine check. Timing statistics: `compare_replicates.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::PathBuf;

use wirebench_reports::Results;
use wirebench_reports::compare::{Comparison, Kind, Options, Verdict, compare};

fn fixture() -> Results {
    Results::read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quick-slice.json")).unwrap()
}

/// Makes `key` `factor` times slower: its whole-window figures and
/// samples (latencies times it, calls/s divided by it).
fn slow_down(results: &mut Results, key: &str, factor: f64) {
    common::scale_cell(results.cells.get_mut(key).unwrap(), factor);
}

/// A copy of `base` with every cell `factor(key)` times slower.
fn every_cell_slower(base: &Results, factor: impl Fn(&str) -> f64) -> Results {
    let mut new = base.clone();
    for key in base.cells.keys() {
        slow_down(&mut new, key, factor(key));
    }
    new
}

fn flagged(results: &Comparison) -> Vec<(String, &'static str)> {
    results
        .rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Broken | Verdict::Changed))
        .map(|r| (r.key.clone(), r.metric))
        .collect()
}

#[test]
fn a_file_compared_with_itself_has_no_regression() {
    let base = fixture();
    let c = compare(&base, &base, &Options::default()).unwrap();
    assert!(!c.regressed() && !c.changed(), "{:?}", flagged(&c));
    assert_eq!(c.count(Verdict::Improved), 0);
    // Exact metrics are unchanged; one replicate a side cannot show a
    // timing unchanged, and the warning says so.
    assert!(c.count(Verdict::Unchanged) > 100);
    assert!(c.rows.iter().filter(|r| r.verdict == Verdict::Unchanged).all(|r| r.kind != Kind::Timing));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("one replicate on a side"), "{:?}", c.warnings);
    // Several passes of the same values a side: the timings are unchanged.
    let passes = every_pass_the_same(&base, 3);
    let c = compare(&passes, &passes, &Options::default()).unwrap();
    assert!(!c.regressed() && c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.rows.iter().filter(|r| r.kind == Kind::Timing && r.key != "*").all(|r| r.verdict == Verdict::Unchanged));
    // The all-cells row's replicates are runs: one run a side is judged by
    // the fixed rule, which cannot say unchanged.
    assert!(c.rows.iter().filter(|r| r.key == "*").all(|r| r.verdict == Verdict::Inconclusive));
}

/// `base` as `n` replicates that measured exactly the same, as runs merged
/// by an older wirebench hold them: sample groups without pass figures
/// (so their values are the medians of their sub-windows).
fn every_pass_the_same(base: &Results, n: u32) -> Results {
    let mut out = base.clone();
    for cell in out.cells.values_mut() {
        let one = std::mem::take(&mut cell.samples);
        for g in 0..n {
            cell.samples.extend(one.iter().map(|s| wirebench_reports::model::Sample { group: g, ..*s }));
        }
    }
    out
}

const SLOWED: [&str; 3] = ["multiply/bincode/http2/c1", "digest-100/raw/http2/c1", "digest-100/protobuf/inproc/c1"];

#[test]
fn one_percent_slower_is_not_flagged() {
    let base = fixture();
    let new = every_cell_slower(&base, |_| 1.01);
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert!(!c.regressed(), "{:?}", flagged(&c));
    let (base, new) = (every_pass_the_same(&base, 3), every_pass_the_same(&new, 3));
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert!(!c.regressed(), "{:?}", flagged(&c));
}

#[test]
fn one_more_encoded_byte_is_changed_not_noise() {
    let base = fixture();
    let mut new = base.clone();
    let key = "digest-100/json/tcp/c1";
    new.cells.get_mut(key).unwrap().metrics.as_mut().unwrap().request_bytes += 1;
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert!(c.changed() && !c.regressed());
    assert_eq!(flagged(&c), vec![(key.to_owned(), "request bytes")]);
    let md = wirebench_reports::compare::markdown(&c);
    assert!(md.contains("Exact metrics changed") && md.contains(key), "{md}");
}

#[test]
fn instruction_counts_regress_above_their_threshold() {
    let mut base = fixture();
    let mut counts = std::collections::BTreeMap::new();
    counts.insert("multiply/json/encode".to_owned(), 1000u64);
    counts.insert("multiply/json/decode".to_owned(), 2000u64);
    // Whole-call keys, and any other shape: every key is judged alike.
    counts.insert("multiply/json/tcp/call/client".to_owned(), 50_000u64);
    counts.insert("multiply/json/tcp/call/server".to_owned(), 40_000u64);
    counts.insert("some/new/shape".to_owned(), 10u64);
    base.instructions =
        Some(wirebench_reports::model::Instructions { tool: "callgrind".into(), counts, ..Default::default() });
    let mut new = base.clone();
    let n = &mut new.instructions.as_mut().unwrap().counts;
    *n.get_mut("multiply/json/encode").unwrap() = 1005; // +0.5%: fine
    *n.get_mut("multiply/json/decode").unwrap() = 2050; // +2.5%: regression
    *n.get_mut("multiply/json/tcp/call/client").unwrap() = 51_000; // +2%: regression
    *n.get_mut("multiply/json/tcp/call/server").unwrap() = 39_000; // -2.5%: improvement
    n.remove("some/new/shape");
    n.insert("another/key".to_owned(), 1);
    let c = compare(&base, &new, &Options::default()).unwrap();
    let verdict = |k: &str| c.rows.iter().find(|r| r.key == k).unwrap().verdict;
    assert_eq!(verdict("multiply/json/encode"), Verdict::Unchanged);
    assert_eq!(verdict("multiply/json/decode"), Verdict::Regressed);
    assert_eq!(verdict("multiply/json/tcp/call/client"), Verdict::Regressed);
    assert_eq!(verdict("multiply/json/tcp/call/server"), Verdict::Improved);
    assert_eq!(verdict("some/new/shape"), Verdict::Removed);
    assert_eq!(verdict("another/key"), Verdict::Added);
    // Files of instruction counts alone compare too.
    let only = |r: &Results| Results { cells: Default::default(), ..r.clone() };
    let c = compare(&only(&base), &only(&new), &Options::default()).unwrap();
    assert!(c.regressed() && c.rows.iter().all(|r| r.kind == Kind::Instructions), "{:?}", c.rows);
}

#[test]
fn different_machines_are_refused_unless_forced() {
    let base = fixture();
    let mut new = base.clone();
    new.environment.cpu_model = "Some Other CPU".into();
    let err = compare(&base, &new, &Options::default()).unwrap_err();
    assert!(err.to_string().contains("different machines"), "{err}");
    let c = compare(&base, &new, &Options { force: true, ..Options::default() }).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("different machines")));
    // A merged file keeps every run's machine, and each is checked.
    let mut other_machine = base.clone();
    other_machine.run_id = "other".into();
    other_machine.environment.cores = 64;
    let mut same = base.clone();
    same.run_id = "same".into();
    let merged =
        wirebench_reports::exports::merge(vec![("a".into(), same), ("b".into(), other_machine)], true).unwrap();
    let err = compare(&base, &merged, &Options::default()).unwrap_err();
    assert!(err.to_string().contains("cores: 2 vs 64"), "{err}");
    // Different settings only warn.
    let mut other = base.clone();
    other.config.duration_ms += 1;
    let c = compare(&base, &other, &Options::default()).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("window")), "{:?}", c.warnings);
}

#[test]
fn ignored_and_broken_cells() {
    // Three replicates a side: one replicate of a cell is not judged.
    let base = every_pass_the_same(&fixture(), 3);
    let mut new = base.clone();
    slow_down(&mut new, SLOWED[0], 3.0);
    let broken = "multiply/bincode/tcp/c1";
    new.cells.get_mut(broken).unwrap().status = wirebench_reports::CellStatus::Failed;
    let options = Options { ignore: vec![format!("{}:*", SLOWED[0])], ..Options::default() };
    let c = compare(&base, &new, &options).unwrap();
    assert_eq!(flagged(&c), vec![(broken.to_owned(), "status")]);
    assert!(c.count(Verdict::Ignored) >= 3);
    // Without the pattern the tripled cell is flagged.
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert!(flagged(&c).contains(&(SLOWED[0].to_owned(), "p50")), "{:?}", flagged(&c));
    // Patterns are globs with classes; `*:p5?` ignores p50 everywhere,
    // the all-cells row included.
    let c = compare(&base, &new, &Options { ignore: vec!["*:p5[0-9]".into()], ..Options::default() }).unwrap();
    assert!(c.rows.iter().filter(|r| r.metric == "p50").all(|r| r.verdict == Verdict::Ignored));
    assert!(c.global("p50").is_some_and(|r| r.verdict == Verdict::Ignored));
}
