//! Exports to other tools' formats, and merging repeated runs.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::PathBuf;

use serde_json::Value;
use wirebench_reports::exports::{bencher, github_bigger, github_smaller, merge};
use wirebench_reports::{CellStatus, Results};

fn fixture() -> Results {
    Results::read(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quick-slice.json")).unwrap()
}

#[test]
fn bencher_metric_format_has_every_ok_cell_and_its_measures() {
    let results = fixture();
    let bmf: Value = serde_json::from_str(&bencher(&results)).unwrap();
    let ok: Vec<_> = results.cells.values().filter(|c| c.status == CellStatus::Ok).collect();
    assert_eq!(bmf.as_object().unwrap().len(), ok.len());
    let cell = ok[0];
    let measures = &bmf[&cell.key];
    let p50 = cell.metrics.as_ref().unwrap().latency.p50 as f64;
    assert_eq!(measures["latency"]["value"].as_f64(), Some(p50));
    let (lo, hi) =
        (measures["latency"]["lower_value"].as_f64().unwrap(), measures["latency"]["upper_value"].as_f64().unwrap());
    assert!(lo <= hi, "{lo} {hi}");
    for m in ["latency-p99", "throughput", "encoded-bytes", "cpu-us"] {
        assert!(measures[m]["value"].as_f64().is_some(), "{m}");
    }
}

#[test]
fn github_action_benchmark_formats_split_smaller_and_bigger() {
    let results = fixture();
    let smaller: Value = serde_json::from_str(&github_smaller(&results)).unwrap();
    let bigger: Value = serde_json::from_str(&github_bigger(&results)).unwrap();
    let ok = results.cells.values().filter(|c| c.status == CellStatus::Ok).count();
    let bigger = bigger.as_array().unwrap();
    assert_eq!(bigger.len(), ok);
    assert!(bigger.iter().all(|e| e["unit"] == "calls/s" && e["value"].as_f64().unwrap() > 0.0));
    let smaller = smaller.as_array().unwrap();
    assert!(smaller.iter().all(|e| e["name"].is_string() && e["unit"].is_string() && e["value"].is_number()));
    assert!(smaller.iter().any(|e| e["name"].as_str().unwrap().ends_with(" p50") && e["unit"] == "ns"));
}

#[test]
fn merging_runs_keeps_their_samples_apart_and_keeps_failures() {
    let mut a = fixture();
    a.run_id = "run-a".into();
    let mut b = a.clone();
    b.run_id = "run-b".into();
    let key = a.cells.keys().find(|k| a.cells[*k].status == CellStatus::Ok).unwrap().clone();
    b.cells.get_mut(&key).unwrap().status = CellStatus::Failed;
    b.cells.get_mut(&key).unwrap().error = Some("boom".into());
    let merged = merge(vec![("a.json".into(), a.clone()), ("b.json".into(), b)], false).unwrap();
    for (k, cell) in &merged.cells {
        assert_eq!(cell.samples.len(), 2 * a.cells[k].samples.len(), "{k}");
    }
    assert_eq!(merged.cells[&key].status, CellStatus::Failed);
    assert_eq!(merged.cells[&key].error.as_deref(), Some("boom"));
    let mut other = a.clone();
    other.run_id = "run-c".into();
    other.config.duration_ms += 1;
    let err = merge(vec![("a.json".into(), a), ("c.json".into(), other)], true).unwrap_err();
    assert!(err.to_string().contains("different settings") && err.to_string().contains("c.json"), "{err}");
    assert!(merge(vec![], false).is_err());
}
