//! Shared by the report tests: fixtures and a synthetic default-size
//! matrix.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use wirebench_reports::model::{Cell, CellStatus, Results};

/// A fixture's path (tests/data/NAME).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A fixture, read.
pub fn load(name: &str) -> Results {
    Results::read(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The default matrix's shape (7 formats x 7 transports + 6 raw
/// baselines, 8 workloads, c1 and c64: 880 cells), filled with real cells
/// of the quick-slice fixture, renamed.
pub fn default_size_matrix() -> Results {
    let mut results = load("quick-slice.json");
    let templates: Vec<Cell> =
        results.cells.values().filter(|c| c.status == CellStatus::Ok && c.format != "raw").cloned().collect();
    let raw_templates: Vec<Cell> =
        results.cells.values().filter(|c| c.status == CellStatus::Ok && c.format == "raw").cloned().collect();
    let formats = ["json", "msgpack", "protobuf", "flatbuffers", "capnp", "capnp-packed", "bincode"];
    let transports = ["tcp", "unix", "udp", "http2", "quic", "inproc", "grpc"];
    let workloads: [(&str, &str, Option<u64>); 8] = [
        ("multiply", "multiply", None),
        ("echo-16B", "echo", Some(16)),
        ("echo-1KiB", "echo", Some(1024)),
        ("echo-64KiB", "echo", Some(65536)),
        ("echo-1MiB", "echo", Some(1 << 20)),
        ("digest-1", "digest", Some(1)),
        ("digest-100", "digest", Some(100)),
        ("digest-1000", "digest", Some(1000)),
    ];
    let mut cells = std::collections::BTreeMap::new();
    let mut i = 0;
    for (w, kind, size) in workloads {
        for (load, in_flight) in [("c1", 1), ("c64", 64)] {
            for t in transports.iter().filter(|t| **t != "grpc") {
                let mut c = raw_templates[i % raw_templates.len()].clone();
                i += 1;
                rename(&mut c, w, kind, size, "raw", t, load, in_flight);
                c.baseline = None;
                cells.insert(c.key.clone(), c);
            }
            for t in transports {
                for f in formats {
                    let mut c = templates[i % templates.len()].clone();
                    i += 1;
                    rename(&mut c, w, kind, size, f, t, load, in_flight);
                    let base = if t == "grpc" { "http2" } else { t };
                    c.baseline = Some(format!("{w}/raw/{base}/{load}"));
                    if t == "grpc" && f != "protobuf" {
                        c.status = CellStatus::Unsupported;
                        c.error = Some(format!("the stock gRPC reference carries protobuf only, not {f}"));
                        c.metrics = None;
                        c.samples.clear();
                        c.histogram = None;
                    }
                    cells.insert(c.key.clone(), c);
                }
            }
        }
    }
    results.cells = cells;
    results
}

#[allow(clippy::too_many_arguments)]
fn rename(c: &mut Cell, w: &str, kind: &str, size: Option<u64>, f: &str, t: &str, load: &str, in_flight: usize) {
    c.key = format!("{w}/{f}/{t}/{load}");
    c.workload = w.into();
    c.workload_kind = kind.into();
    c.size = size;
    c.format = f.into();
    c.transport = t.into();
    c.load.in_flight = in_flight;
}

/// Values of `attr="..."` attributes in an HTML text.
pub fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for quote in ['"', '\''] {
        let needle = format!("{attr}={quote}");
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            // Only whole attribute names: preceded by whitespace.
            let before = rest[..at].chars().last();
            rest = &rest[at + needle.len()..];
            let end = rest.find(quote).unwrap_or(rest.len());
            if before.is_some_and(char::is_whitespace) {
                out.push(&rest[..end]);
            }
        }
    }
    out
}

/// A seeded source of standard normal numbers (SplitMix64, Box-Muller):
/// the noise model of the synthetic verdict tests.
pub struct Normal(u64);

impl Normal {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Normal {
        Normal(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One standard normal draw.
    pub fn draw(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Scales a cell's samples by `factor`: latencies times it, calls/s
/// divided by it (the cell got `factor` times slower).
pub fn scale(samples: &mut [wirebench_reports::model::Sample], factor: f64) {
    for s in samples {
        s.p50_ns = (s.p50_ns as f64 * factor).round() as u64;
        s.p99_ns = (s.p99_ns as f64 * factor).round() as u64;
        s.calls_per_sec /= factor;
    }
}

/// Scales a cell's whole-window figures and samples by `factor`.
pub fn scale_cell(cell: &mut Cell, factor: f64) {
    scale(&mut cell.samples, factor);
    if let Some(m) = cell.metrics.as_mut() {
        m.latency.p50 = (m.latency.p50 as f64 * factor).round() as u64;
        m.latency.p99 = (m.latency.p99 as f64 * factor).round() as u64;
        m.calls_per_sec /= factor;
    }
    for p in &mut cell.passes {
        p.p50_ns = (p.p50_ns as f64 * factor).round() as u64;
        p.p99_ns = (p.p99_ns as f64 * factor).round() as u64;
        p.calls_per_sec /= factor;
    }
}

/// How replicates of a side differ, on the log scale: each replicate moves
/// every cell by one drift draw (`drift` standard deviation), and each
/// cell in it by its own draw (`sigma`).
#[derive(Clone, Copy, Debug)]
pub struct NoiseModel {
    pub drift: f64,
    pub sigma: f64,
    /// Cells differ in noise: each cell's sigma is `sigma` times 1 to 4,
    /// by a hash of its key.
    pub uneven: bool,
}

impl NoiseModel {
    fn sigma_of(&self, key: &str) -> f64 {
        if !self.uneven {
            return self.sigma;
        }
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        self.sigma * (1.0 + 3.0 * (h >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A `wirebench run --passes N`-like file made from the quick-slice cells:
/// `passes` sample groups, each a copy of the cell's real sub-window
/// samples, and a pass's whole-window figures made from the cell's
/// metrics, all scaled by the noise model's draw for that pass and cell,
/// times `slowdown(key)`.
pub fn with_passes(
    fixture: &Results,
    run_id: &str,
    passes: u32,
    noise: NoiseModel,
    seed: u64,
    slowdown: impl Fn(&str) -> f64,
) -> Results {
    let mut rng = Normal::new(seed);
    let mut out = fixture.clone();
    out.run_id = run_id.to_owned();
    out.config.passes = passes;
    out.replicates = (0..passes)
        .map(|p| wirebench_reports::model::Replicate { group: p, run_id: run_id.to_owned(), pass: p })
        .collect();
    let drifts: Vec<f64> = (0..passes).map(|_| noise.drift * rng.draw()).collect();
    for cell in out.cells.values_mut() {
        let original = std::mem::take(&mut cell.samples);
        cell.passes.clear();
        for (p, drift) in drifts.iter().enumerate() {
            let mut samples = original.clone();
            let factor = (drift + noise.sigma_of(&cell.key) * rng.draw()).exp() * slowdown(&cell.key);
            scale(&mut samples, factor);
            for s in &mut samples {
                s.group = p as u32;
            }
            cell.samples.extend(samples);
            if let Some(m) = &cell.metrics {
                cell.passes.push(wirebench_reports::model::PassFigures {
                    pass: p as u32,
                    group: p as u32,
                    offset_s: p as f64 * 30.0,
                    status: cell.status,
                    error: cell.error.clone(),
                    calls: m.calls,
                    duration_s: m.duration_s,
                    p50_ns: (m.latency.p50 as f64 * factor).round() as u64,
                    p99_ns: (m.latency.p99 as f64 * factor).round() as u64,
                    calls_per_sec: m.calls_per_sec / factor,
                });
            }
        }
    }
    out
}

/// One run made from the quick-slice cells: every cell `factor(key)`
/// times slower, with its own run id.
pub fn one_run(fixture: &Results, run_id: &str, factor: impl Fn(&str) -> f64) -> Results {
    let mut out = fixture.clone();
    out.run_id = run_id.to_owned();
    for cell in out.cells.values_mut() {
        let f = factor(&cell.key);
        scale_cell(cell, f);
    }
    out
}
