//! Results in other tools' formats, and merging runs into one file of
//! replicates.
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

use std::collections::BTreeSet;

use crate::model::{CellStatus, Environment, MergedRun, PassFigures, Replicate, Results, SCHEMA_VERSION};

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

/// Why runs cannot be merged. Each names the files involved.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("nothing to merge")]
    Empty,
    /// The runs were configured differently.
    #[error("cannot merge {other} into {first}: different settings ({detail})")]
    Settings {
        /// The first file.
        first: String,
        /// The file that differs.
        other: String,
        /// What differs.
        detail: String,
    },
    /// The same run twice: merging it would count it as two replicates.
    #[error(
        "cannot merge {second}: it holds run {run_id}, which {first} already holds (the same run twice is not two replicates)"
    )]
    Duplicate {
        /// The run's id.
        run_id: String,
        /// The file that brought it first.
        first: String,
        /// The file that brings it again.
        second: String,
    },
    /// No cell in common: not the same matrix.
    #[error("cannot merge {other} into {first}: they have no cell in common (use --force to merge anyway)")]
    Disjoint {
        /// The first file.
        first: String,
        /// The other one.
        other: String,
    },
    /// Different machines: their timings are not replicates of each other.
    #[error("cannot merge {other} into {first}: different machines ({detail}) (use --force to merge anyway)")]
    DifferentMachines {
        /// The first file.
        first: String,
        /// The other one.
        other: String,
        /// What differs.
        detail: String,
    },
}

/// The id a run is known by: its `run_id`, or for files without one
/// (schema version 1) a digest of its environment, which includes the
/// command line and the start time, so the same file is still recognised.
pub fn run_identity(results: &Results) -> String {
    if !results.run_id.is_empty() {
        return results.run_id.clone();
    }
    environment_digest(&results.environment)
}

fn environment_digest(environment: &Environment) -> String {
    // FNV-1a over the environment's JSON, twice with different offsets
    // for 128 bits: a fingerprint, not a secret.
    let json = serde_json::to_vec(environment).unwrap_or_default();
    let fnv = |offset: u64| json.iter().fold(offset, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    format!("env-{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142))
}

/// The runs a file holds: its `merged` list, or itself.
fn runs_of(results: &Results) -> Vec<MergedRun> {
    if results.merged.is_empty() {
        vec![MergedRun {
            run_id: run_identity(results),
            environment: results.environment.clone(),
            config: results.config.clone(),
        }]
    } else {
        results.merged.clone()
    }
}

/// What must be equal for two runs to be replicates of one machine.
fn machine(e: &Environment) -> [(&'static str, String); 4] {
    [
        ("CPU", e.cpu_model.clone()),
        ("cores", e.cores.to_string()),
        ("host", e.hostname.clone()),
        ("kernel", e.kernel.clone()),
    ]
}

/// The sample groups a file uses, in order: its `replicates`, else every
/// group its samples and passes name, else the one group 0.
fn groups_of(results: &Results) -> Vec<u32> {
    let mut groups: BTreeSet<u32> = results.replicates.iter().map(|r| r.group).collect();
    for cell in results.cells.values() {
        groups.extend(cell.samples.iter().map(|s| s.group));
        groups.extend(cell.passes.iter().map(|p| p.group));
    }
    if groups.is_empty() {
        groups.insert(0);
    }
    groups.into_iter().collect()
}

/// Merges runs of the same matrix into one file, each input given with
/// the name errors should call it by. Every input's sample groups are
/// renumbered so they stay apart (`replicates` says which run and pass
/// each group is), every run's environment and configuration is kept in
/// `merged`, and a cell's passes are kept (one is made from the cell's
/// figures for an input of a single pass that has none). Cells keep the
/// first run's metrics and histogram; a cell that failed in any run is
/// failed in the merge.
///
/// Refused: a run the merge already holds (by `run_id`, including the
/// runs inside a merged input), runs with other settings, and, unless
/// `force`, runs with no cell in common or from a different machine
/// (CPU, cores, host name, kernel).
pub fn merge(inputs: Vec<(String, Results)>, force: bool) -> Result<Results, MergeError> {
    let mut inputs = inputs.into_iter();
    let (first_name, first) = inputs.next().ok_or(MergeError::Empty)?;
    let mut merged = Results { merged: Vec::new(), replicates: Vec::new(), cells: BTreeMap::new(), ..first.clone() };
    merged.run_id = String::new();
    merged.instructions = None;
    merged.interrupted = false;
    let reference = machine(&first.environment);
    let mut holders: BTreeMap<String, String> = BTreeMap::new();
    let mut next_group = 0u32;
    for (name, run) in std::iter::once((first_name.clone(), first)).chain(inputs) {
        let (a, b) = (&merged.config, &run.config);
        if (a.duration_ms, a.warmup_ms, a.samples, a.seed, &a.server, a.tls)
            != (b.duration_ms, b.warmup_ms, b.samples, b.seed, &b.server, b.tls)
        {
            return Err(MergeError::Settings {
                first: first_name.clone(),
                other: name,
                detail: format!(
                    "{} ms/{} ms/{} samples/seed {}/{}/tls {} vs {} ms/{} ms/{} samples/seed {}/{}/tls {}",
                    a.duration_ms,
                    a.warmup_ms,
                    a.samples,
                    a.seed,
                    a.server,
                    a.tls,
                    b.duration_ms,
                    b.warmup_ms,
                    b.samples,
                    b.seed,
                    b.server,
                    b.tls
                ),
            });
        }
        for link in &run.links {
            match merged.links.iter().find(|l| l.name == link.name) {
                Some(l) if l.spec != link.spec => {
                    return Err(MergeError::Settings {
                        first: first_name.clone(),
                        other: name,
                        detail: format!("link {} is {} vs {}", link.name, l.spec, link.spec),
                    });
                }
                Some(_) => {}
                None => merged.links.push(link.clone()),
            }
        }
        let runs = runs_of(&run);
        for r in &runs {
            if let Some(holder) = holders.get(&r.run_id) {
                return Err(MergeError::Duplicate { run_id: r.run_id.clone(), first: holder.clone(), second: name });
            }
            holders.insert(r.run_id.clone(), name.clone());
            if !force {
                let other = machine(&r.environment);
                let detail: Vec<String> = reference
                    .iter()
                    .zip(&other)
                    .filter(|(x, y)| x.1 != y.1)
                    .map(|(x, y)| format!("{}: {} vs {}", x.0, x.1, y.1))
                    .collect();
                if !detail.is_empty() {
                    return Err(MergeError::DifferentMachines {
                        first: first_name.clone(),
                        other: name,
                        detail: detail.join("; "),
                    });
                }
            }
        }
        if !force && !merged.merged.is_empty() && !run.cells.keys().any(|k| merged.cells.contains_key(k)) {
            return Err(MergeError::Disjoint { first: first_name.clone(), other: name });
        }

        // Renumber this input's groups after every group merged so far.
        let groups = groups_of(&run);
        let renumber: BTreeMap<u32, u32> =
            groups.iter().enumerate().map(|(i, g)| (*g, next_group + i as u32)).collect();
        next_group += groups.len() as u32;
        let single_run_id = (runs.len() == 1).then(|| runs[0].run_id.clone());
        for (i, g) in groups.iter().enumerate() {
            let known = run.replicates.iter().find(|r| r.group == *g);
            merged.replicates.push(Replicate {
                group: renumber[g],
                run_id: known
                    .map(|r| r.run_id.clone())
                    .filter(|id| !id.is_empty())
                    .or_else(|| single_run_id.clone())
                    .unwrap_or_default(),
                pass: known.map_or(i as u32, |r| r.pass),
            });
        }
        merged.merged.extend(runs);
        merged.interrupted |= run.interrupted;
        if !run.environment.finished_at.is_empty() {
            merged.environment.finished_at = run.environment.finished_at.clone();
        }
        for (k, v) in &run.formats {
            merged.formats.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &run.transports {
            merged.transports.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // `groups_of` collected every group a sample or pass names, so the
        // lookups below cannot miss.
        for (key, mut cell) in run.cells {
            for sample in &mut cell.samples {
                sample.group = renumber[&sample.group];
            }
            for pass in &mut cell.passes {
                pass.group = renumber[&pass.group];
            }
            if cell.passes.is_empty()
                && groups.len() == 1
                && let Some(m) = &cell.metrics
            {
                // A run of one pass: its whole-window figures are that
                // pass's (the offset within the run is not known).
                cell.passes.push(PassFigures {
                    pass: 0,
                    group: renumber[&groups[0]],
                    offset_s: 0.0,
                    status: cell.status,
                    error: cell.error.clone(),
                    calls: m.calls,
                    duration_s: m.duration_s,
                    p50_ns: m.latency.p50,
                    p99_ns: m.latency.p99,
                    calls_per_sec: m.calls_per_sec,
                });
            }
            match merged.cells.get_mut(&key) {
                Some(existing) => {
                    existing.samples.extend(cell.samples);
                    existing.passes.extend(cell.passes);
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
    merged.schema_version = SCHEMA_VERSION;
    Ok(merged)
}
