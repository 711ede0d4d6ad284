//! The fastest cell is named only when its interval separates it from
//! every other; otherwise the cells tied within noise are named. Intervals
//! come from replicates (two or more) or from the single-replicate rule.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use wirebench_reports::model::{Cell, CellStatus, PassFigures, Results, Sample};
use wirebench_reports::render;
use wirebench_reports::replicates::{Fastest, IntervalSource, Metric, SingleReplicateRule, fastest};

/// A copy of a real cell named `key`, with one replicate (pass) per entry
/// of `p50s`: its whole-window p50 that, and three sub-windows around it.
fn cell(key: &str, p50s: &[f64]) -> Cell {
    let fixture = common::load("quick-slice.json");
    let mut c = fixture.cells.values().find(|c| c.status == CellStatus::Ok).unwrap().clone();
    c.key = key.to_owned();
    c.passes = p50s
        .iter()
        .enumerate()
        .map(|(g, p50)| PassFigures {
            pass: g as u32,
            group: g as u32,
            offset_s: 10.0 * g as f64,
            status: CellStatus::Ok,
            error: None,
            calls: 300,
            duration_s: 0.1,
            p50_ns: *p50 as u64,
            p99_ns: (p50 * 3.0) as u64,
            calls_per_sec: 1e9 / p50,
        })
        .collect();
    c.samples = p50s
        .iter()
        .enumerate()
        .flat_map(|(g, p50)| {
            [0.99, 1.0, 1.01].map(|f| Sample {
                group: g as u32,
                calls: 100,
                p50_ns: (p50 * f) as u64,
                p99_ns: (p50 * f * 3.0) as u64,
                calls_per_sec: 1e9 / (p50 * f),
            })
        })
        .collect();
    c
}

fn keys(f: &Fastest<'_>) -> Vec<String> {
    f.cells().iter().map(|c| c.key.clone()).collect()
}

#[test]
fn replicates_that_keep_apart_name_one_cell() {
    let rule = SingleReplicateRule::default();
    let cells =
        [cell("a", &[100.0, 102.0, 101.0]), cell("b", &[110.0, 111.0, 109.0]), cell("c", &[150.0, 140.0, 160.0])];
    let f = fastest(&cells, Metric::P50, &rule);
    let Fastest::One { best, runner_up } = &f else { panic!("{f:?}") };
    assert_eq!((best.0.key.as_str(), runner_up.as_ref().unwrap().0.key.as_str()), ("a", "b"));
    assert_eq!(best.1.source, IntervalSource::Replicates);
    assert_eq!(best.1.replicates, 3);
    assert!(best.1.worst < runner_up.as_ref().unwrap().1.best, "{f:?}");
    // By calls/s too (higher is better).
    assert_eq!(keys(&fastest(&cells, Metric::CallsPerSec, &rule)), ["a"]);
}

#[test]
fn replicates_that_overlap_are_tied() {
    let rule = SingleReplicateRule::default();
    // b's replicates straddle a's: 5% apart on average, but b moved 20%
    // from one pass to the next.
    let cells = [cell("a", &[100.0, 101.0, 99.0]), cell("b", &[95.0, 115.0, 105.0]), cell("c", &[300.0, 310.0, 305.0])];
    let f = fastest(&cells, Metric::P50, &rule);
    assert!(matches!(f, Fastest::Tied(_)), "{f:?}");
    assert_eq!(keys(&f), ["a", "b"], "c is apart and not tied");
    assert_eq!(f.source(), Some(IntervalSource::Replicates));
}

#[test]
fn one_replicate_each_uses_the_single_replicate_rule() {
    let rule = SingleReplicateRule::default();
    // Within x1.8 of each other: tied; the third is 2x away: not.
    let tied = [cell("a", &[100.0]), cell("b", &[170.0]), cell("c", &[200.0])];
    let f = fastest(&tied, Metric::P50, &rule);
    assert_eq!(keys(&f), ["a", "b"]);
    assert_eq!(f.source(), Some(IntervalSource::SingleReplicateRule));
    // 2x ahead of every other: named.
    let apart = [cell("a", &[100.0]), cell("b", &[200.0]), cell("c", &[210.0])];
    let f = fastest(&apart, Metric::P50, &rule);
    assert!(matches!(&f, Fastest::One { best, .. } if best.0.key == "a"), "{f:?}");
    // Mixed: a with replicates, b with one; the source says so.
    let mixed = [cell("a", &[100.0, 101.0]), cell("b", &[105.0])];
    let f = fastest(&mixed, Metric::P50, &rule);
    assert_eq!(keys(&f), ["a", "b"]);
    assert_eq!(f.source(), None);
    assert!(matches!(fastest(&[] as &[Cell], Metric::P50, &rule), Fastest::Nothing));
}

/// The quick-slice file as a run of three passes where `multiply/bincode/
/// udp/c1` is far ahead of every other networked cell and passes agree
/// within 1%; or where nothing was slowed and passes disagree by 20%.
fn report_fixture(ahead: bool) -> Results {
    let fixture = common::load("quick-slice.json");
    let noise = common::NoiseModel { drift: 0.0, sigma: if ahead { 0.01 } else { 0.2 }, uneven: false };
    common::with_passes(&fixture, "r", 3, noise, 9, |k| {
        let networked = !k.contains("/raw/") && !k.contains("/inproc/");
        if ahead && networked && k.starts_with("multiply/") && k != "multiply/bincode/udp/c1" { 3.0 } else { 1.0 }
    })
}

#[test]
fn reports_name_the_fastest_only_when_it_is_apart() {
    let results = report_fixture(true);
    let md = render::markdown(&results);
    assert!(
        md.contains("- **multiply**: `bincode` over `udp`, p50 ") && md.contains(", ahead of the runner-up `"),
        "{md}"
    );
    assert!(md.contains("(95% intervals over 3 replicates)"), "{md}");
    let html = render::html(&results).unwrap();
    assert!(html.contains("<li><b>multiply</b>: fastest networked cell"), "header");
    assert!(html.contains("\"winners\":[") && html.contains("\"cells\":[\"multiply/bincode/udp/c1\"],\"tied\":false"));
    assert!(html.contains("\"nrep\":3"), "replicate counts for the table");

    let results = report_fixture(false);
    let md = render::markdown(&results);
    assert!(md.contains("- **multiply**: no single fastest cell at c1: `"), "{md}");
    assert!(md.contains("are tied within noise (95% intervals over 3 replicates)"), "{md}");
    // Every tied cell is bold in its table, not one picked by a hair.
    let html = render::html(&results).unwrap();
    assert!(html.contains(",\"tied\":true,"), "tied winners in the page data");
}

#[test]
fn a_single_run_report_says_it_used_the_rule() {
    let md = render::markdown(&common::load("quick-slice.json"));
    assert!(
        md.contains("are tied within noise (one replicate each: the single-replicate rule, cells within ×1.80"),
        "{md}"
    );
    assert!(md.contains("`--passes 4` or more narrows it"), "{md}");
}
