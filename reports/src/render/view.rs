//! A results file seen the way reports show it: axes in natural order,
//! cells by coordinates, the gaps, and per-workload verdicts.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use crate::model::{Cell, CellStatus, Load, Metrics, Results};
use crate::replicates::{self, Fastest, IntervalSource, Metric, SingleReplicateRule};

/// The format name of a transport's raw ping-pong baseline.
pub(crate) const RAW: &str = "raw";
/// The stock gRPC reference: format and transport.
pub(crate) const REFERENCE: (&str, &str) = ("protobuf", "grpc");

/// Formats in the order the formats crate registers them; others follow
/// alphabetically.
const FORMAT_ORDER: [&str; 15] = [
    "json",
    "msgpack",
    "protobuf",
    "flatbuffers",
    "capnp",
    "capnp-packed",
    "bincode",
    "thrift-binary",
    "thrift-compact",
    "hessian",
    "cbor",
    "avro",
    "postcard",
    "bitcode",
    "rkyv",
];
/// Transports in the order the transports crate lists them, family by
/// family (own transports, frameworks, brokers).
const TRANSPORT_ORDER: [&str; 19] = [
    "tcp",
    "unix",
    "udp",
    "http2",
    "quic",
    "inproc",
    "grpc",
    "thrift-rpc",
    "thrift-rpc-binary",
    "volo-thrift",
    "capnp-rpc",
    "tarpc",
    "zerorpc",
    "jsonrpsee",
    "nats",
    "rabbitmq",
    "redis",
    "mqtt",
    "kafka",
];
/// The families of transports, in report order.
pub(crate) const FAMILIES: [&str; 3] = ["transport", "framework", "broker"];

/// The colour of each known format, the same in every chart (distinct
/// hues first, then lighter shades of them).
const FORMAT_COLORS: [(&str, &str); 16] = [
    ("json", "#e45756"),
    ("msgpack", "#f58518"),
    ("protobuf", "#4c78a8"),
    ("flatbuffers", "#54a24b"),
    ("capnp", "#b279a2"),
    ("capnp-packed", "#9d755d"),
    ("bincode", "#17a2a8"),
    ("thrift-binary", "#eeca3b"),
    ("thrift-compact", "#b8860b"),
    ("hessian", "#ff9da6"),
    ("cbor", "#8c564b"),
    ("avro", "#72b7b2"),
    ("postcard", "#bcbd22"),
    ("bitcode", "#393b79"),
    ("rkyv", "#d62728"),
    (RAW, "#555555"),
];
/// Colours for formats this build does not know, by a hash of the name.
const SPARE_COLORS: [&str; 6] = ["#8c6d31", "#7f7f7f", "#d6616b", "#637939", "#7b4173", "#a55194"];
/// Transport colours, used only where lines or bars stand for transports
/// (with a dash pattern each, so they are not mistaken for formats).
const TRANSPORT_COLORS: [(&str, &str); 7] = [
    ("tcp", "#003f5c"),
    ("unix", "#665191"),
    ("udp", "#d45087"),
    ("http2", "#f95d6a"),
    ("quic", "#ff7c43"),
    ("inproc", "#7a7a7a"),
    ("grpc", "#111111"),
];

/// A format's colour.
pub(crate) fn format_color(name: &str) -> &'static str {
    FORMAT_COLORS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).unwrap_or_else(|| spare(name))
}

/// A transport's colour.
pub(crate) fn transport_color(name: &str) -> &'static str {
    TRANSPORT_COLORS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c).unwrap_or_else(|| spare(name))
}

fn spare(name: &str) -> &'static str {
    let hash = name.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    SPARE_COLORS[hash as usize % SPARE_COLORS.len()]
}

fn rank_in(order: &[&str], name: &str) -> usize {
    order.iter().position(|n| *n == name).unwrap_or(order.len())
}

/// Orders format names: known ones first, in registry order.
pub(crate) fn cmp_formats(a: &str, b: &str) -> Ordering {
    let rank = |n: &str| (n == RAW, rank_in(&FORMAT_ORDER, n));
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// The family a results file gives a transport; files without one
/// (before frameworks had a family) name only own transports and grpc.
pub(crate) fn family_of<'r>(results: &'r Results, transport: &str) -> &'r str {
    match results.transports.get(transport) {
        Some(info) if !info.family.is_empty() => &info.family,
        _ if transport == REFERENCE.1 => "framework",
        _ => "transport",
    }
}

/// Orders transport names.
pub(crate) fn cmp_transports(a: &str, b: &str) -> Ordering {
    rank_in(&TRANSPORT_ORDER, a).cmp(&rank_in(&TRANSPORT_ORDER, b)).then_with(|| a.cmp(b))
}

/// Orders workloads: multiply, echo by size, digest by size, others.
pub(crate) fn cmp_workloads(a: &WorkloadInfo<'_>, b: &WorkloadInfo<'_>) -> Ordering {
    let rank = |w: &WorkloadInfo<'_>| match w.kind {
        "multiply" => 0,
        "echo" => 1,
        "digest" => 2,
        _ => 3,
    };
    rank(a).cmp(&rank(b)).then(a.kind.cmp(b.kind)).then(a.size.cmp(&b.size)).then(a.id.cmp(b.id))
}

/// Orders loads: closed before open, then by calls in flight,
/// connections and rate.
pub(crate) fn cmp_loads(a: &LoadInfo<'_>, b: &LoadInfo<'_>) -> Ordering {
    let model = |l: &Load| match l.model.as_str() {
        "closed" => 0,
        "open-constant" => 1,
        "open-poisson" => 2,
        _ => 3,
    };
    model(a.load)
        .cmp(&model(b.load))
        .then(a.load.in_flight.cmp(&b.load.in_flight))
        .then(a.load.connections.cmp(&b.load.connections))
        .then(a.load.rate.unwrap_or(0.0).total_cmp(&b.load.rate.unwrap_or(0.0)))
        .then(a.label.cmp(b.label))
}

/// The load part of a cell's key (`c1`, `c64x4`, `r1000c8`).
pub(crate) fn load_label(cell: &Cell) -> &str {
    cell.key.rsplit('/').next().unwrap_or("")
}

/// A workload as reports show it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkloadInfo<'a> {
    /// `echo-1KiB`.
    pub(crate) id: &'a str,
    /// `echo`.
    pub(crate) kind: &'a str,
    /// Payload bytes or records.
    pub(crate) size: Option<u64>,
}

/// A load as reports show it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadInfo<'a> {
    /// `c64`.
    pub(crate) label: &'a str,
    /// The load.
    pub(crate) load: &'a Load,
}

/// The fastest networked cell of a workload at its lowest load (by p50,
/// said honestly: one cell only when its interval is apart from every
/// other's), next to the stock gRPC reference.
#[derive(Clone, Debug)]
pub(crate) struct Verdict<'a> {
    /// The workload.
    pub(crate) workload: &'a str,
    /// The load compared at.
    pub(crate) load: Option<&'a str>,
    /// The fastest ok cell over a network transport, or the tied ones.
    pub(crate) fastest: Fastest<'a>,
    /// `protobuf/grpc` at the same load, if it measured.
    pub(crate) reference: Option<&'a Cell>,
}

impl Verdict<'_> {
    /// p50 of `cell` / the reference's p50, both the estimates the
    /// ranking used.
    pub(crate) fn ratio_of(&self, cell: &Cell) -> Option<f64> {
        let best = estimated_p50(cell)?;
        let reference = estimated_p50(self.reference?)?;
        (reference > 0.0).then(|| best / reference)
    }
}

/// A cell's p50 as [`replicates::fastest`] ranks it: the geometric mean
/// of its replicates' whole-window p50s (for one replicate, its p50).
pub(crate) fn estimated_p50(cell: &Cell) -> Option<f64> {
    replicates::Estimate::of(cell, Metric::P50, &rule()).map(|e| e.value)
}

/// The single-replicate rule reports use for intervals (compare's
/// defaults: the report has no settings).
pub(crate) fn rule() -> SingleReplicateRule {
    SingleReplicateRule::default()
}

/// The fastest networked cells of `workload` at `load` by `metric`.
pub(crate) fn fastest_at<'a>(view: &View<'a>, workload: &str, load: &str, metric: Metric) -> Fastest<'a> {
    let cells = view
        .results
        .cells
        .values()
        .filter(|c| c.workload == workload && load_label(c) == load && networked(c) && ok_metrics(c).is_some());
    replicates::fastest(cells, metric, &rule())
}

/// How a [`Fastest`] was decided, for people.
pub(crate) fn source_text(f: &Fastest<'_>, metric: Metric) -> String {
    let ratio = rule().cell.of(metric);
    match f.source() {
        Some(IntervalSource::Replicates) => {
            let n: Vec<usize> = match f {
                Fastest::One { best, runner_up } => {
                    std::iter::once(best.1.replicates).chain(runner_up.iter().map(|r| r.1.replicates)).collect()
                }
                Fastest::Tied(cells) => cells.iter().map(|c| c.1.replicates).collect(),
                Fastest::Nothing => Vec::new(),
            };
            let (lo, hi) = (n.iter().min().copied().unwrap_or(0), n.iter().max().copied().unwrap_or(0));
            let n = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
            format!("95% intervals over {n} replicates")
        }
        Some(IntervalSource::SingleReplicateRule) => format!(
            "one replicate each: the single-replicate rule, cells within ×{ratio:.2} of each other cannot be told \
             apart; `--passes 4` or more narrows it"
        ),
        None => format!(
            "95% intervals over replicates where a cell has two or more, else the single-replicate rule (×{ratio:.2})"
        ),
    }
}

/// A cell's median latency, if it measured one.
pub(crate) fn p50(cell: &Cell) -> Option<u64> {
    ok_metrics(cell).map(|m| m.latency.p50)
}

/// The metrics of an ok cell.
pub(crate) fn ok_metrics(cell: &Cell) -> Option<&Metrics> {
    if cell.status == CellStatus::Ok { cell.metrics.as_ref() } else { None }
}

/// Over a real network stack: not a raw baseline, not in-process.
pub(crate) fn networked(cell: &Cell) -> bool {
    cell.format != RAW && cell.transport != "inproc"
}

/// A results file indexed for rendering.
#[derive(Debug)]
pub(crate) struct View<'a> {
    /// The file.
    pub(crate) results: &'a Results,
    /// Workloads, natural order.
    pub(crate) workloads: Vec<WorkloadInfo<'a>>,
    /// Formats (without `raw`), registry order.
    pub(crate) formats: Vec<&'a str>,
    /// Transports of format cells, listed order.
    pub(crate) transports: Vec<&'a str>,
    /// Loads, lightest first.
    pub(crate) loads: Vec<LoadInfo<'a>>,
    by_coords: HashMap<(&'a str, &'a str, &'a str, &'a str), &'a Cell>,
}

impl<'a> View<'a> {
    /// Indexes `results`.
    pub(crate) fn new(results: &'a Results) -> View<'a> {
        let mut workloads: Vec<WorkloadInfo<'a>> = Vec::new();
        let mut formats = BTreeSet::new();
        let mut transports = BTreeSet::new();
        let mut loads: Vec<LoadInfo<'a>> = Vec::new();
        let mut by_coords = HashMap::with_capacity(results.cells.len());
        for cell in results.cells.values() {
            if !workloads.iter().any(|w| w.id == cell.workload) {
                workloads.push(WorkloadInfo { id: &cell.workload, kind: &cell.workload_kind, size: cell.size });
            }
            if cell.format != RAW {
                formats.insert(cell.format.as_str());
                transports.insert(cell.transport.as_str());
            }
            let label = load_label(cell);
            if !loads.iter().any(|l| l.label == label) {
                loads.push(LoadInfo { label, load: &cell.load });
            }
            by_coords.insert((cell.workload.as_str(), cell.format.as_str(), cell.transport.as_str(), label), cell);
        }
        workloads.sort_by(cmp_workloads);
        loads.sort_by(cmp_loads);
        let mut formats: Vec<&str> = formats.into_iter().collect();
        formats.sort_by(|a, b| cmp_formats(a, b));
        let mut transports: Vec<&str> = transports.into_iter().collect();
        transports.sort_by(|a, b| {
            let rank = |t: &str| FAMILIES.iter().position(|f| *f == family_of(results, t)).unwrap_or(FAMILIES.len());
            rank(a).cmp(&rank(b)).then_with(|| cmp_transports(a, b))
        });
        View { results, workloads, formats, transports, loads, by_coords }
    }

    /// The family of a transport (`transport`, `framework` or `broker`).
    pub(crate) fn family(&self, transport: &str) -> &'a str {
        family_of(self.results, transport)
    }

    /// The cell at these coordinates.
    pub(crate) fn cell(&self, workload: &str, format: &str, transport: &str, load: &str) -> Option<&'a Cell> {
        self.by_coords.get(&(workload, format, transport, load)).copied()
    }

    /// The loads a workload has cells at, lightest first.
    pub(crate) fn loads_of(&self, workload: &str) -> Vec<LoadInfo<'a>> {
        self.loads
            .iter()
            .copied()
            .filter(|l| self.results.cells.values().any(|c| c.workload == workload && load_label(c) == l.label))
            .collect()
    }

    /// The lightest load of a workload (fewest calls in flight).
    pub(crate) fn lowest_load(&self, workload: &str) -> Option<LoadInfo<'a>> {
        self.loads_of(workload).into_iter().next()
    }

    /// The heaviest load of a workload (most calls in flight; closed loop
    /// preferred).
    pub(crate) fn highest_load(&self, workload: &str) -> Option<LoadInfo<'a>> {
        let loads = self.loads_of(workload);
        let closed: Vec<_> = loads.iter().copied().filter(|l| l.load.model == "closed").collect();
        let pool = if closed.is_empty() { loads } else { closed };
        pool.into_iter().max_by(|a, b| a.load.in_flight.cmp(&b.load.in_flight).then(cmp_loads(b, a)))
    }

    /// Per workload: the fastest networked cell at the lowest load vs gRPC.
    pub(crate) fn verdicts(&self) -> Vec<Verdict<'a>> {
        self.workloads
            .iter()
            .map(|w| {
                let load = self.lowest_load(w.id);
                let fastest = match load {
                    Some(l) => fastest_at(self, w.id, l.label, Metric::P50),
                    None => Fastest::Nothing,
                };
                let reference =
                    load.and_then(|l| self.cell(w.id, REFERENCE.0, REFERENCE.1, l.label)).filter(|c| p50(c).is_some());
                Verdict { workload: w.id, load: load.map(|l| l.label), fastest, reference }
            })
            .collect()
    }

    /// Whether the run meant to measure `key`: every key of its plan (for
    /// files before version 2, which have no plan, every key).
    pub(crate) fn planned(&self, key: &str) -> bool {
        self.results.planned.is_empty() || self.results.planned.iter().any(|k| k == key)
    }

    /// Cells the run meant to measure but the file lacks: its planned
    /// keys (files before version 2, which did not list them: every
    /// workload x format x transport x load seen), plus baselines that
    /// cells name.
    pub(crate) fn missing(&self) -> Vec<String> {
        let mut missing = BTreeSet::new();
        let planned = &self.results.planned;
        missing.extend(planned.iter().filter(|k| !self.results.cells.contains_key(*k)).cloned());
        for w in self.workloads.iter().filter(|_| planned.is_empty()) {
            for l in &self.loads {
                for f in &self.formats {
                    for t in &self.transports {
                        if self.cell(w.id, f, t, l.label).is_none() {
                            missing.insert(format!("{}/{f}/{t}/{}", w.id, l.label));
                        }
                    }
                }
            }
        }
        for cell in self.results.cells.values() {
            if let Some(baseline) = &cell.baseline
                && !self.results.cells.contains_key(baseline)
            {
                missing.insert(baseline.clone());
            }
        }
        let mut missing: Vec<String> = missing.into_iter().collect();
        // Natural order of the parts, not alphabetical.
        missing.sort_by_cached_key(|k| self.sort_key(k));
        missing
    }

    /// A sort key for a cell key: workload, load, format, transport in
    /// natural order.
    pub(crate) fn sort_key(&self, key: &str) -> (usize, usize, usize, usize, String) {
        let parts: Vec<&str> = key.split('/').collect();
        let get = |i: usize| parts.get(i).copied().unwrap_or("");
        let w = self.workloads.iter().position(|w| w.id == get(0)).unwrap_or(usize::MAX);
        let l = self.loads.iter().position(|l| l.label == get(3)).unwrap_or(usize::MAX);
        let f = if get(1) == RAW {
            0
        } else {
            self.formats.iter().position(|f| *f == get(1)).map_or(usize::MAX, |i| i + 1)
        };
        let t = self.transports.iter().position(|t| *t == get(2)).unwrap_or(usize::MAX);
        (w, l, f, t, key.to_owned())
    }

    /// All cells in natural order.
    pub(crate) fn cells_in_order(&self) -> Vec<&'a Cell> {
        let mut cells: Vec<&Cell> = self.results.cells.values().collect();
        cells.sort_by_cached_key(|c| self.sort_key(&c.key));
        cells
    }

    /// How many cells have `status`.
    pub(crate) fn count(&self, status: CellStatus) -> usize {
        self.results.cells.values().filter(|c| c.status == status).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_natural() {
        let mut f = ["bincode", "raw", "zzz", "json", "capnp-packed", "capnp"];
        f.sort_by(|a, b| cmp_formats(a, b));
        assert_eq!(f, ["json", "capnp", "capnp-packed", "bincode", "zzz", "raw"]);
        let w = |id, kind, size| WorkloadInfo { id, kind, size };
        let mut ws = [
            w("digest-1", "digest", Some(1)),
            w("echo-1MiB", "echo", Some(1 << 20)),
            w("echo-16B", "echo", Some(16)),
            w("multiply", "multiply", None),
        ];
        ws.sort_by(cmp_workloads);
        let ids: Vec<_> = ws.iter().map(|w| w.id).collect();
        assert_eq!(ids, ["multiply", "echo-16B", "echo-1MiB", "digest-1"]);
        assert_eq!(format_color("json"), format_color("json"));
        assert!(format_color("brand-new").starts_with('#'));
    }
}
