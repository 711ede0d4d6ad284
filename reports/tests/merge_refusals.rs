//! `merge` keeps runs apart and refuses what would fake replicates: the
//! same run twice (also inside a merged file), matrices with no cell in
//! common, and runs from another machine, unless forced.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;

use wirebench_reports::Results;
use wirebench_reports::exports::{MergeError, merge, run_identity};

fn run(id: &str) -> Results {
    let mut r = common::load("quick-slice.json");
    r.run_id = id.to_owned();
    r
}

fn named(name: &str, r: &Results) -> (String, Results) {
    (name.to_owned(), r.clone())
}

#[test]
fn the_same_file_twice_is_refused() {
    // Schema version 1: no run id, recognised by its environment.
    let v1 = common::load("quick-slice.json");
    assert!(v1.run_id.is_empty());
    assert!(run_identity(&v1).starts_with("env-"));
    let err = merge(vec![named("a.json", &v1), named("b.json", &v1)], true).unwrap_err();
    assert!(matches!(err, MergeError::Duplicate { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("a.json") && text.contains("b.json") && !text.contains('\n'), "{text}");
    // Another run of the same command at another time is another run.
    let mut later = v1.clone();
    later.environment.started_at = "2026-11-22T18:00:00Z".into();
    assert!(merge(vec![named("a.json", &v1), named("b.json", &later)], false).is_ok());
    // Version 2: by run id.
    let err = merge(vec![named("a.json", &run("r1")), named("b.json", &run("r1"))], false).unwrap_err();
    assert!(err.to_string().contains("run r1"), "{err}");
}

#[test]
fn a_run_inside_a_merged_file_is_caught() {
    let m = merge(vec![named("a.json", &run("r1")), named("b.json", &run("r2"))], false).unwrap();
    assert_eq!(m.merged.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
    let err = merge(vec![named("m.json", &m), named("b2.json", &run("r2"))], false).unwrap_err();
    assert!(err.to_string().contains("b2.json") && err.to_string().contains("m.json"), "{err}");
    let err = merge(vec![named("c.json", &run("r3")), named("m.json", &m), named("m2.json", &m)], false).unwrap_err();
    assert!(matches!(&err, MergeError::Duplicate { run_id, .. } if run_id == "r1"), "{err}");
    // A merged file brings its runs along.
    let again = merge(vec![named("m.json", &m), named("c.json", &run("r3"))], false).unwrap();
    assert_eq!(again.merged.len(), 3);
    assert_eq!(again.replicates.len(), 3);
}

#[test]
fn disjoint_matrices_are_refused_unless_forced() {
    let a = run("r1");
    let mut b = run("r2");
    b.cells = b
        .cells
        .into_iter()
        .map(|(k, mut c)| {
            c.key = format!("x-{k}");
            (c.key.clone(), c)
        })
        .collect();
    let err = merge(vec![named("a.json", &a), named("b.json", &b)], false).unwrap_err();
    assert!(matches!(err, MergeError::Disjoint { .. }), "{err}");
    assert!(err.to_string().contains("no cell in common") && err.to_string().contains("--force"), "{err}");
    let m = merge(vec![named("a.json", &a), named("b.json", &b)], true).unwrap();
    assert_eq!(m.cells.len(), a.cells.len() + b.cells.len());
}

#[test]
fn different_machines_are_refused_unless_forced() {
    let a = run("r1");
    for (what, change) in [
        ("CPU", Box::new(|r: &mut Results| r.environment.cpu_model = "Other CPU".into()) as Box<dyn Fn(&mut Results)>),
        ("cores", Box::new(|r: &mut Results| r.environment.cores = 8)),
        ("host", Box::new(|r: &mut Results| r.environment.hostname = "elsewhere".into())),
        ("kernel", Box::new(|r: &mut Results| r.environment.kernel = "5.10.0".into())),
    ] {
        let mut b = run("r2");
        change(&mut b);
        let err = merge(vec![named("a.json", &a), named("b.json", &b)], false).unwrap_err();
        assert!(matches!(err, MergeError::DifferentMachines { .. }), "{what}: {err}");
        assert!(err.to_string().contains(&format!("{what}: ")), "{what}: {err}");
        let m = merge(vec![named("a.json", &a), named("b.json", &b)], true).unwrap();
        assert_ne!(m.merged[0].environment, m.merged[1].environment, "{what}");
    }
}

#[test]
fn every_environment_is_kept_and_groups_are_renumbered() {
    let mut a = run("r1");
    a.environment.started_at = "2026-01-01T00:00:00Z".into();
    // b: a run of two passes (groups 0 and 1).
    let mut b = common::with_passes(
        &run("r2"),
        "r2",
        2,
        common::NoiseModel { drift: 0.0, sigma: 0.01, uneven: false },
        3,
        |_| 1.0,
    );
    b.environment.started_at = "2026-01-01T01:00:00Z".into();
    let mut c = run("r3");
    c.environment.started_at = "2026-01-01T02:00:00Z".into();
    c.environment.finished_at = "2026-01-01T02:01:00Z".into();
    let m = merge(vec![named("a.json", &a), named("b.json", &b), named("c.json", &c)], false).unwrap();
    let started: Vec<&str> = m.merged.iter().map(|r| r.environment.started_at.as_str()).collect();
    assert_eq!(started, ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]);
    assert_eq!(m.environment.started_at, "2026-01-01T00:00:00Z");
    assert_eq!(m.environment.finished_at, "2026-01-01T02:01:00Z");
    let replicates: Vec<(u32, &str, u32)> = m.replicates.iter().map(|r| (r.group, r.run_id.as_str(), r.pass)).collect();
    assert_eq!(replicates, [(0, "r1", 0), (1, "r2", 0), (2, "r2", 1), (3, "r3", 0)]);
    for (key, cell) in &m.cells {
        let groups: BTreeSet<u32> = cell.samples.iter().map(|s| s.group).collect();
        if !cell.samples.is_empty() {
            assert_eq!(groups, (0..4).collect(), "{key}");
        }
        // Runs of one pass bring their whole-window figures as that pass;
        // b's passes are kept, renumbered.
        if cell.metrics.is_some() {
            let passes: Vec<u32> = cell.passes.iter().map(|p| p.group).collect();
            assert_eq!(passes, [0, 1, 2, 3], "{key}");
            assert_eq!(cell.passes[0].p50_ns, a.cells[key].metrics.as_ref().unwrap().latency.p50, "{key}");
        }
    }
    // The merged file reads back as it was written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    m.write_atomic(&path).unwrap();
    assert_eq!(Results::read(&path).unwrap(), m);
}
