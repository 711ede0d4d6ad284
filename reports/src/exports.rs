//! Results in other tools' formats, and merging runs.
//!
//! - Bencher Metric Format (BMF): `{benchmark: {measure: {value, lower_value,
//!   upper_value}}}`, for `bencher run --adapter json`.
//! - github-action-benchmark's `customSmallerIsBetter` and
//!   `customBiggerIsBetter`: arrays of `{name, unit, value, range, extra}`.
//!
//! Benchmark names are cell keys (`{workload}/{format}/{transport}/{load}`)
//! and instruction keys (`{workload}/{format}/{operation}`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{CellStatus, Results};

/// Bencher Metric Format JSON.
pub fn bencher(results: &Results) -> String {
    let mut out: BTreeMap<String, BTreeMap<&str, Value>> = BTreeMap::new();
    for cell in results.cells.values().filter(|c| c.status == CellStatus::Ok) {
        let Some(m) = &cell.metrics else { continue };
        let measures = out.entry(cell.key.clone()).or_default();
        let sample_p50: Vec<u64> = cell.samples.iter().filter(|s| s.calls > 0).map(|s| s.p50_ns).collect();
        let mut latency = json!({ "value": m.latency.p50 as f64 });
        if let (Some(lo), Some(hi)) = (sample_p50.iter().min(), sample_p50.iter().max()) {
            latency["lower_value"] = json!(*lo as f64);
            latency["upper_value"] = json!(*hi as f64);
        }
        measures.insert("latency", latency);
        measures.insert("latency-p99", json!({ "value": m.latency.p99 as f64 }));
        measures.insert("throughput", json!({ "value": m.calls_per_sec }));
        measures.insert("encoded-bytes", json!({ "value": (m.request_bytes + m.reply_bytes) as f64 }));
        if let Some(wire) = m.wire_probe_bytes {
            measures.insert("wire-bytes", json!({ "value": wire as f64 }));
        }
        let cpu = m.client_user_us_per_call
            + m.client_system_us_per_call
            + m.server_user_us_per_call.unwrap_or(0.0)
            + m.server_system_us_per_call.unwrap_or(0.0);
        measures.insert("cpu-us", json!({ "value": cpu }));
    }
    if let Some(instructions) = &results.instructions {
        for (key, count) in &instructions.counts {
            out.entry(key.clone()).or_default().insert("instructions", json!({ "value": *count as f64 }));
        }
    }
    serde_json::to_string_pretty(&out).unwrap_or_else(|_| "{}".into())
}

/// One entry of github-action-benchmark's custom formats.
#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    unit: &'static str,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<String>,
}

/// github-action-benchmark `customSmallerIsBetter`: latencies, bytes,
/// instructions.
pub fn github_smaller(results: &Results) -> String {
    let mut entries = Vec::new();
    for cell in results.cells.values().filter(|c| c.status == CellStatus::Ok) {
        let Some(m) = &cell.metrics else { continue };
        let p50s: Vec<u64> = cell.samples.iter().filter(|s| s.calls > 0).map(|s| s.p50_ns).collect();
        let range = match (p50s.iter().min(), p50s.iter().max()) {
            (Some(lo), Some(hi)) => Some(format!("{} to {} ns across {} samples", lo, hi, p50s.len())),
            _ => None,
        };
        entries.push(Entry {
            name: format!("{} p50", cell.key),
            unit: "ns",
            value: m.latency.p50 as f64,
            range,
            extra: Some(format!("{} calls, latency {}", m.calls, m.latency_kind)),
        });
        entries.push(Entry {
            name: format!("{} p99", cell.key),
            unit: "ns",
            value: m.latency.p99 as f64,
            range: None,
            extra: None,
        });
        if let Some(wire) = m.wire_probe_bytes {
            entries.push(Entry {
                name: format!("{} wire bytes", cell.key),
                unit: "bytes",
                value: wire as f64,
                range: None,
                extra: None,
            });
        }
    }
    if let Some(instructions) = &results.instructions {
        for (key, count) in &instructions.counts {
            entries.push(Entry {
                name: format!("{key} instructions"),
                unit: "instructions",
                value: *count as f64,
                range: None,
                extra: Some(instructions.tool.clone()),
            });
        }
    }
    serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into())
}

/// github-action-benchmark `customBiggerIsBetter`: throughput.
pub fn github_bigger(results: &Results) -> String {
    let entries: Vec<Entry> = results
        .cells
        .values()
        .filter(|c| c.status == CellStatus::Ok)
        .filter_map(|c| {
            let m = c.metrics.as_ref()?;
            Some(Entry {
                name: format!("{} calls/s", c.key),
                unit: "calls/s",
                value: m.calls_per_sec,
                range: None,
                extra: None,
            })
        })
        .collect();
    serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into())
}

/// Why runs cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("nothing to merge")]
    Empty,
    /// The runs were configured differently.
    #[error("cannot merge runs with different settings: {0}")]
    Settings(String),
}

/// Merges repeated runs of the same matrix into one: cells keep the first
/// run's metrics and histogram, and pool every run's samples, each run's
/// in its own sample group, so a comparison sees each cell's run-to-run
/// variation, not only the variation within one run. A cell that failed in
/// any run is failed in the merge.
pub fn merge(runs: Vec<Results>) -> Result<Results, MergeError> {
    let mut runs = runs.into_iter();
    let mut merged = runs.next().ok_or(MergeError::Empty)?;
    for run in runs {
        let (a, b) = (&merged.config, &run.config);
        if (a.duration_ms, a.warmup_ms, a.samples, a.seed, &a.server, a.tls)
            != (b.duration_ms, b.warmup_ms, b.samples, b.seed, &b.server, b.tls)
        {
            return Err(MergeError::Settings(format!(
                "{} ms/{} ms/{} samples vs {} ms/{} ms/{} samples",
                a.duration_ms, a.warmup_ms, a.samples, b.duration_ms, b.warmup_ms, b.samples
            )));
        }
        merged.interrupted |= run.interrupted;
        merged.environment.finished_at = run.environment.finished_at.clone();
        // Every run keeps its own sample groups.
        let next = merged.cells.values().flat_map(|c| &c.samples).map(|s| s.group + 1).max().unwrap_or(1);
        for (key, mut cell) in run.cells {
            for sample in &mut cell.samples {
                sample.group += next;
            }
            match merged.cells.get_mut(&key) {
                Some(existing) => {
                    existing.samples.extend(cell.samples);
                    if cell.status == CellStatus::Failed && existing.status != CellStatus::Failed {
                        existing.status = CellStatus::Failed;
                        existing.error = cell.error;
                    }
                }
                None => {
                    merged.cells.insert(key, cell);
                }
            }
        }
        if let Some(more) = run.instructions {
            let mine = merged.instructions.get_or_insert_with(Default::default);
            for (key, count) in more.counts {
                mine.counts.entry(key).or_insert(count);
            }
            if mine.tool.is_empty() {
                mine.tool = more.tool;
            }
        }
    }
    Ok(merged)
}
