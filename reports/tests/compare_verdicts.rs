//! The CI gate's verdicts on doctored copies of a real results file.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use wirebench_reports::Results;
use wirebench_reports::compare::{Comparison, Correction, Options, Verdict, compare};

fn fixture() -> Results {
    Results::read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quick-slice.json")).unwrap()
}

/// Scales every latency sample of `key` by `factor`, and its calls/s by
/// its inverse: the cell got `factor` times slower.
fn slow_down(results: &mut Results, key: &str, factor: f64) {
    let cell = results.cells.get_mut(key).unwrap();
    for s in &mut cell.samples {
        s.p50_ns = (s.p50_ns as f64 * factor) as u64;
        s.p99_ns = (s.p99_ns as f64 * factor) as u64;
        s.calls_per_sec /= factor;
    }
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

/// The cells flagged, each once.
fn flagged_keys(results: &Comparison) -> Vec<String> {
    let mut keys: Vec<String> = flagged(results).into_iter().map(|(k, _)| k).collect();
    keys.dedup();
    keys
}

/// The verdict of the global `*` row of `metric`.
fn global(results: &Comparison, metric: &str) -> Verdict {
    results.rows.iter().find(|r| r.key == "*" && r.metric == metric).unwrap().verdict
}

#[test]
fn a_file_compared_with_itself_has_no_regression() {
    let base = fixture();
    let c = compare(&base, &base, &Options::default()).unwrap();
    assert!(!c.regressed() && !c.changed(), "{:?}", flagged(&c));
    assert_eq!(c.count(Verdict::Improved), 0);
    assert!(c.count(Verdict::Unchanged) > 100);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

const SLOWED: [&str; 3] = ["multiply/bincode/http2/c1", "digest-100/raw/http2/c1", "digest-100/protobuf/inproc/c1"];

/// SLOWED in the order comparisons list cells.
fn slowed_sorted() -> Vec<String> {
    let mut keys: Vec<String> = SLOWED.iter().map(|s| s.to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn cells_twenty_percent_slower_are_flagged_and_no_others() {
    let base = fixture();
    let mut new = base.clone();
    for key in SLOWED {
        slow_down(&mut new, key, 1.2);
    }
    for correction in [Correction::Holm, Correction::BenjaminiHochberg] {
        let c = compare(&base, &new, &Options { correction, ..Options::default() }).unwrap();
        assert!(c.regressed());
        assert_eq!(flagged_keys(&c), slowed_sorted(), "{correction:?}");
        // p50 of each slowed cell is a regression with an interval above 1.05.
        for key in SLOWED {
            let row = c.rows.iter().find(|r| r.key == key && r.metric == "p50").unwrap();
            assert_eq!(row.verdict, Verdict::Regressed, "{key}");
            assert!(row.interval.unwrap().0 > 1.05, "{key}: {:?}", row.interval);
            assert!((row.ratio.unwrap() - 1.2).abs() < 0.01, "{key}: {:?}", row.ratio);
        }
    }
}

#[test]
fn one_percent_slower_is_not_flagged() {
    let base = fixture();
    let new = every_cell_slower(&base, |_| 1.01);
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
    base.instructions = Some(wirebench_reports::model::Instructions { tool: "callgrind".into(), counts });
    let mut new = base.clone();
    let n = &mut new.instructions.as_mut().unwrap().counts;
    *n.get_mut("multiply/json/encode").unwrap() = 1005; // +0.5%: fine
    *n.get_mut("multiply/json/decode").unwrap() = 2050; // +2.5%: regression
    let c = compare(&base, &new, &Options::default()).unwrap();
    let verdict = |k: &str| c.rows.iter().find(|r| r.key == k).unwrap().verdict;
    assert_eq!(verdict("multiply/json/encode"), Verdict::Unchanged);
    assert_eq!(verdict("multiply/json/decode"), Verdict::Regressed);
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
    // Different settings only warn.
    let mut other = base.clone();
    other.config.duration_ms += 1;
    let c = compare(&base, &other, &Options::default()).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("window")), "{:?}", c.warnings);
}

#[test]
fn ignored_and_broken_cells() {
    let base = fixture();
    let mut new = base.clone();
    slow_down(&mut new, SLOWED[0], 1.5);
    let broken = "multiply/bincode/tcp/c1";
    new.cells.get_mut(broken).unwrap().status = wirebench_reports::CellStatus::Failed;
    let options = Options { ignore: vec![format!("{}:*", SLOWED[0])], ..Options::default() };
    let c = compare(&base, &new, &options).unwrap();
    assert_eq!(flagged(&c), vec![(broken.to_owned(), "status")]);
    assert!(c.count(Verdict::Ignored) >= 3);
}

/// A deterministic log-normal factor per cell (Box-Muller over SplitMix64).
fn noise_factor(key: &str, sigma: f64) -> f64 {
    let mut z = key.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, c| (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3));
    let mut next = || {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((x ^ (x >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (u1, u2) = (next().max(1e-12), next());
    let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (sigma * normal).exp()
}

/// What a noisy machine does between two runs of one build: every cell
/// lands somewhere else (here: log-normal, 30%), and the whole run is
/// 15% slower. Sub-window samples inside a cell stay tight, so each cell
/// alone looks like a confident change. None of it is a regression.
#[test]
fn a_noisy_machine_is_not_a_regression() {
    let base = fixture();
    let new = every_cell_slower(&base, |key| 1.15 * noise_factor(key, 0.3));
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert!(!c.regressed(), "false alarms: {:?}", flagged(&c));
    assert!(c.warnings.iter().any(|w| w.contains("run-to-run spread")), "{:?}", c.warnings);
    // Without the cross-cell estimate this would be many false alarms.
    let naive = compare(&base, &new, &Options { noise_sigmas: 0.0, tail_factor: 0.0, ..Options::default() }).unwrap();
    assert!(naive.count(Verdict::Regressed) > 10, "{}", naive.count(Verdict::Regressed));
}

/// What same-build pairs of real runs showed: most cells move a little
/// (here 5%), a few jump far (here three cells, 35%). With one run a side
/// nothing tells those few from a regression, so nothing is flagged, and a
/// warning says why.
#[test]
fn a_single_pair_with_heavy_tails_is_not_a_regression() {
    let base = fixture();
    let new = every_cell_slower(&base, |key| {
        let jump = if SLOWED.contains(&key) { 1.35 } else { 1.0 };
        jump * noise_factor(key, 0.05)
    });
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert!(!c.regressed(), "false alarms: {:?}", flagged(&c));
    assert!(c.warnings.iter().any(|w| w.contains("single run")), "{:?}", c.warnings);
    // Judged by the spread alone, the jumps are confident regressions.
    let untailed = compare(&base, &new, &Options { tail_factor: 0.0, ..Options::default() }).unwrap();
    assert!(untailed.regressed(), "the jumps should stand out without the tail bound");
}

/// The tail bound is about single cells: a single pair with 5% noise
/// per cell, where every cell got 30% slower, still shows it in the
/// global rows.
#[test]
fn a_global_slowdown_shows_through_the_tail_bound_of_a_single_pair() {
    let base = fixture();
    let new = every_cell_slower(&base, |key| 1.3 * noise_factor(key, 0.05));
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert_eq!(global(&c, "p50"), Verdict::Regressed);
    assert!(c.warnings.iter().any(|w| w.contains("single run")), "{:?}", c.warnings);
}

/// A quiet machine and a change that slows every cell by 20%: the global
/// rows say so.
#[test]
fn a_global_slowdown_on_a_quiet_machine_is_a_regression() {
    let base = fixture();
    let new = every_cell_slower(&base, |key| 1.2 * noise_factor(key, 0.01));
    let c = compare(&base, &new, &Options::default()).unwrap();
    assert_eq!(global(&c, "p50"), Verdict::Regressed);
    assert_eq!(global(&c, "calls/s"), Verdict::Regressed);
    assert!(c.regressed());
}

/// The workflow's procedure: four runs a side, interleaved, merged. Each run
/// lands each cell a little elsewhere (3%); the head also makes three
/// cells 20% slower. Exactly those are flagged.
#[test]
fn interleaved_runs_catch_a_real_regression_and_not_the_noise() {
    let fixture = fixture();
    let run = |name: &str, slowed: bool| {
        every_cell_slower(&fixture, |key| {
            let jump = if slowed && SLOWED.contains(&key) { 1.2 } else { 1.0 };
            jump * noise_factor(&format!("{name}{key}"), 0.03)
        })
    };
    // Four runs a side, as the workflow takes: with two, a cell's group
    // bootstrap is too coarse to clear a 20% change at this noise (it
    // takes about 35%).
    let runs = 4;
    let base = wirebench_reports::exports::merge((0..runs).map(|i| run(&format!("a{i}"), false)).collect()).unwrap();
    let head = wirebench_reports::exports::merge((0..runs).map(|i| run(&format!("b{i}"), true)).collect()).unwrap();
    assert!(base.cells.values().any(|c| c.samples.iter().any(|s| s.group > 0)), "merge keeps runs apart");
    let c = compare(&base, &head, &Options::default()).unwrap();
    assert_eq!(flagged_keys(&c), slowed_sorted());
    // And the same procedure on two sides of one build flags nothing.
    let same = wirebench_reports::exports::merge((0..runs).map(|i| run(&format!("c{i}"), false)).collect()).unwrap();
    let c = compare(&base, &same, &Options::default()).unwrap();
    assert!(!c.regressed(), "{:?}", flagged(&c));
}
