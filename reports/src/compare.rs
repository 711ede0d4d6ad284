//! Comparing two results files: a verdict per cell and metric, judged by
//! the kind of metric.
//!
//! - Exact metrics (encoded bytes; bytes on the wire where the transport
//!   makes them exact): any difference is `changed`, for a human to
//!   approve, never noise.
//! - Instruction counts (callgrind): `regressed` above a threshold
//!   (default 1%), `improved` below its mirror.
//! - Timings (p50, p99, calls/s): judged on the cells' sub-window samples.
//!   A percentile bootstrap gives a confidence interval of the ratio of
//!   medians (new over base, oriented so that above 1 is worse) and a
//!   one-sided p-value against "no worse than the noise threshold"
//!   (default 5%), from a normal approximation of the bootstrap
//!   distribution of the log ratio (an empirical bootstrap p-value cannot
//!   go below 1/resamples, too coarse to survive a correction for
//!   hundreds of comparisons). The p-values of all timing comparisons are corrected
//!   for their number (Holm by default, Benjamini-Hochberg as an option).
//!   `regressed` needs both: the interval wholly beyond the threshold and a
//!   significant corrected p-value. `unchanged` needs the interval wholly
//!   within the threshold. Anything else is `inconclusive`.
//!
//!   A cell's sub-window samples are taken back to back, so they share
//!   whatever state the machine was in and say nothing about run-to-run
//!   noise. The comparison measures that noise itself, across cells: per
//!   metric, the median log ratio of all cells (the global shift) and the
//!   robust spread of cells around it. A cell is judged on how far it moved
//!   beyond the global shift, and must move beyond the larger of the
//!   threshold and 4 robust standard deviations of that spread; the global
//!   shift gets its own verdict (the `*` row).
//!
//!   That spread has heavy tails: in same-build pairs of `--quick` runs on
//!   a 2-core VM, the median cell moved 1-3% while a few cells moved 20-50%
//!   (a cell's connection, core and cache state are set per run), up to
//!   8 times the 90th-percentile movement. So when a side is a single run,
//!   a cell must also move beyond [`Options::tail_factor`] times the 90th
//!   percentile of all cells' movements: a single pair can only flag
//!   large changes, and says so in a warning. Several runs a side
//!   (`wirebench merge` keeps each run's samples apart) measure each cell's
//!   own run-to-run noise: the bootstrap is two-stage, runs then samples,
//!   the interval of a cell whose runs disagree widens accordingly, and
//!   the tail bound is not needed. The bench workflow runs base and head
//!   four times each, interleaved.
//!
//! The bootstrap uses a fixed seed: the same two files always give the
//! same verdicts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{Cell, CellStatus, Results, Sample};

/// What a comparison decided for one metric of one cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Worse beyond the threshold, with confidence.
    Regressed,
    /// The cell worked in the base and fails now.
    Broken,
    /// An exact metric differs: approve or fix.
    Changed,
    /// Better beyond the threshold, with confidence.
    Improved,
    /// Within the threshold, with confidence (or equal, for exact metrics).
    Unchanged,
    /// Not enough evidence either way.
    Inconclusive,
    /// Only in the new file.
    Added,
    /// Only in the base file.
    Removed,
    /// Matched an ignore pattern.
    Ignored,
}

impl Verdict {
    /// The word used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Broken => "broken",
            Verdict::Changed => "changed",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Added => "added",
            Verdict::Removed => "removed",
            Verdict::Ignored => "ignored",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a metric is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Any change matters.
    Exact,
    /// Deterministic counts: a relative threshold.
    Instructions,
    /// Noisy: statistics over samples.
    Timing,
    /// Whether the cell works at all.
    Status,
}

/// The multiple-comparison correction for timing p-values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Correction {
    /// Holm-Bonferroni: controls the family-wise error rate.
    Holm,
    /// Benjamini-Hochberg: controls the false discovery rate.
    BenjaminiHochberg,
}

/// Comparison settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Timing noise threshold (0.05 = 5%).
    pub threshold: f64,
    /// Instruction-count threshold (0.01 = 1%).
    pub instructions_threshold: f64,
    /// Significance level after correction.
    pub alpha: f64,
    /// The correction.
    pub correction: Correction,
    /// Bootstrap resamples per timing comparison.
    pub resamples: usize,
    /// Glob patterns over `{cell key}:{metric}`; matches are ignored.
    pub ignore: Vec<String>,
    /// Compare even when the runs come from different machines.
    pub force: bool,
    /// Robust standard deviations of the cross-cell spread a cell must move
    /// beyond (see the module docs).
    pub noise_sigmas: f64,
    /// When a side is a single run: multiples of the 90th percentile of
    /// the cells' movements a cell must also move beyond.
    pub tail_factor: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            threshold: 0.05,
            instructions_threshold: 0.01,
            alpha: 0.05,
            correction: Correction::Holm,
            resamples: 4000,
            ignore: Vec::new(),
            force: false,
            noise_sigmas: 4.0,
            tail_factor: 8.0,
        }
    }
}

/// One metric of one cell, compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Cell key, or `{workload}/{format}/{operation}` for instructions.
    pub key: String,
    /// Metric name.
    pub metric: &'static str,
    /// How it was judged.
    pub kind: Kind,
    /// Base value (median of samples for timings).
    pub base: Option<f64>,
    /// New value.
    pub new: Option<f64>,
    /// new / base, oriented so that above 1 is worse.
    pub ratio: Option<f64>,
    /// Confidence interval of the oriented ratio (timings).
    pub interval: Option<(f64, f64)>,
    /// Corrected p-value of "a regression beyond the threshold" (timings).
    pub p_value: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Higher is better (calls/s).
    pub higher_is_better: bool,
}

/// A whole comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Every compared metric.
    pub rows: Vec<Row>,
    /// Things the reader must know: different machines or settings.
    pub warnings: Vec<String>,
    /// The settings used.
    pub options: Options,
    /// Base and new run descriptions.
    pub base: String,
    /// See `base`.
    pub new: String,
}

/// Why two files cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Different machines, and `force` was not given.
    #[error("the runs come from different machines ({0}); timings are not comparable (use --force to compare anyway)")]
    DifferentMachines(String),
    /// Bad options.
    #[error("{0}")]
    Options(String),
}

impl Comparison {
    /// Rows with this verdict.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Whether anything regressed (or broke).
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Broken))
    }

    /// Whether an exact metric changed.
    pub fn changed(&self) -> bool {
        self.count(Verdict::Changed) > 0
    }
}

/// Simple glob: `*` any run of characters, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// A small deterministic generator for the bootstrap (SplitMix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((u128::from(z) * n as u128) >> 64) as usize
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The bootstrap of the oriented ratio of medians: its interval at
/// `1 - alpha`, and the one-sided p-values of "worse beyond threshold"
/// and "better beyond threshold".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bootstrap {
    /// Lower and upper bound.
    pub interval: (f64, f64),
    /// One-sided p-value of "no regression beyond the threshold".
    pub p_worse: f64,
    /// One-sided p-value of "no improvement beyond the threshold".
    pub p_better: f64,
}

/// Bootstraps `new/base` (or `base/new` when higher is better), divided
/// by `exp(shift)`, and tests it against `bound` (a log ratio): the
/// interval is of the shifted ratio, the p-values those of "not beyond
/// `bound`" in either direction.
///
/// The samples come in groups, one per run. The bootstrap is two-stage:
/// it resamples groups, then samples within each chosen group, so the
/// interval carries the cell's run-to-run variation. When a side has a
/// single group, both sides are pooled into one group each, and that is
/// the plain bootstrap of samples.
pub fn bootstrap(
    base: &[Vec<f64>],
    new: &[Vec<f64>],
    higher_is_better: bool,
    shift: f64,
    bound: f64,
    options: &Options,
    seed: u64,
) -> Option<Bootstrap> {
    if count(base) < 2 || count(new) < 2 {
        return None;
    }
    let pooled: [Vec<Vec<f64>>; 2];
    let (base, new) = if base.len() >= 2 && new.len() >= 2 {
        (base, new)
    } else {
        pooled = [vec![flatten(base)], vec![flatten(new)]];
        (&pooled[0][..], &pooled[1][..])
    };
    let mut rng = Rng(seed);
    let mut draw = |side: &[Vec<f64>], out: &mut Vec<f64>| {
        out.clear();
        for _ in 0..side.len() {
            let group = &side[rng.below(side.len())];
            for _ in 0..group.len() {
                out.push(group[rng.below(group.len())]);
            }
        }
        median(out)
    };
    let mut ratios = Vec::with_capacity(options.resamples);
    let (mut b, mut n) = (Vec::new(), Vec::new());
    for _ in 0..options.resamples {
        let mb = draw(base, &mut b);
        let mn = draw(new, &mut n);
        let ratio = if higher_is_better { mb / mn } else { mn / mb } / shift.exp();
        if ratio.is_finite() && ratio > 0.0 {
            ratios.push(ratio);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let mean = logs.iter().sum::<f64>() / logs.len() as f64;
    let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (logs.len() as f64 - 1.0).max(1.0)).sqrt();
    // P(log ratio <= x) under the normal approximation.
    let below = |x: f64| {
        if sd > 0.0 {
            normal_cdf((x - mean) / sd)
        } else if mean <= x {
            1.0
        } else {
            0.0
        }
    };
    Some(Bootstrap {
        interval: (quantile(&ratios, options.alpha / 2.0), quantile(&ratios, 1.0 - options.alpha / 2.0)),
        p_worse: below(bound),
        p_better: 1.0 - below(-bound),
    })
}

/// The standard normal CDF, via the complementary error function
/// (Numerical Recipes' `erfcc`, fractional error under 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// Corrects `p` values for their number.
pub fn correct(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![1.0; m];
    match correction {
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::BenjaminiHochberg => {
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((p[i] * m as f64 / (rank + 1) as f64).min(1.0));
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

/// Fewer comparable cells than this, and the spread across cells is not
/// estimated: the configured threshold alone applies.
pub const MIN_CELLS_FOR_NOISE: usize = 20;

/// Run-to-run noise of one timing metric, in log-ratio units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    /// Cells the estimate rests on.
    pub cells: usize,
    /// Median log ratio: how far everything moved.
    pub shift: f64,
    /// Robust standard deviation (1.4826 MAD) of cells around the shift.
    pub spread: f64,
    /// 90th percentile of the cells' distances from the shift (the tail).
    pub tail: f64,
    /// What the shift itself must exceed (the `*` row): the larger of the
    /// configured threshold and `noise_sigmas` spreads.
    pub shift_bound: f64,
    /// What a cell must exceed beyond the shift: `shift_bound`, and for a
    /// single run also `tail_factor` tails (the tail is about single
    /// cells, not about the median of all of them).
    pub bound: f64,
}

impl Noise {
    /// The noise of `logs` (one log ratio per cell); `single_run` when a
    /// side has one run only, so cells' own run-to-run noise is unknown.
    pub fn of(logs: &[f64], single_run: bool, options: &Options) -> Noise {
        let threshold = options.threshold.ln_1p();
        if logs.len() < MIN_CELLS_FOR_NOISE {
            return Noise {
                cells: logs.len(),
                shift: 0.0,
                spread: 0.0,
                tail: 0.0,
                shift_bound: threshold,
                bound: threshold,
            };
        }
        let shift = median(&mut logs.to_vec());
        let mut distances: Vec<f64> = logs.iter().map(|l| (l - shift).abs()).collect();
        let spread = 1.4826 * median(&mut distances);
        distances.sort_by(f64::total_cmp);
        let tail = distances[(distances.len() - 1) * 9 / 10];
        let shift_bound = threshold.max(options.noise_sigmas * spread);
        let bound = if single_run { shift_bound.max(options.tail_factor * tail) } else { shift_bound };
        Noise { cells: logs.len(), shift, spread, tail, shift_bound, bound }
    }
}

/// Timing metrics judged over samples.
const TIMINGS: [(&str, bool); 3] = [("p50", false), ("p99", false), ("calls/s", true)];

/// Sample values, one vector per run.
type Groups = Vec<Vec<f64>>;

/// A cell's samples of `metric`, grouped by the run they come from.
fn samples_of(samples: &[Sample], metric: &str) -> Groups {
    let mut groups: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.calls > 0) {
        let value = match metric {
            "p50" => s.p50_ns as f64,
            "p99" => s.p99_ns as f64,
            _ => s.calls_per_sec,
        };
        groups.entry(s.group).or_default().push(value);
    }
    groups.into_values().collect()
}

fn flatten(groups: &[Vec<f64>]) -> Vec<f64> {
    groups.iter().flatten().copied().collect()
}

/// Samples in all groups.
fn count(groups: &[Vec<f64>]) -> usize {
    groups.iter().map(Vec::len).sum()
}

/// The verdict on a log ratio that lies in `[lo, hi]`: beyond `bound`
/// with significance is a change; within the threshold, not merely within
/// the noise, is `unchanged` (a cell that moved 30% on a noisy machine is
/// not unchanged); anything else is inconclusive.
fn judge(lo: f64, hi: f64, bound: f64, threshold: f64, worse: bool, better: bool) -> Verdict {
    if lo > bound && worse {
        Verdict::Regressed
    } else if hi < -bound && better {
        Verdict::Improved
    } else if lo >= -threshold && hi <= threshold {
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

/// What must match for timings to be comparable, as `(what, value)`.
fn machine(r: &Results) -> Vec<(&'static str, String)> {
    vec![("CPU", r.environment.cpu_model.clone()), ("cores", r.environment.cores.to_string())]
}

fn settings(r: &Results) -> Vec<(&'static str, String)> {
    let c = &r.config;
    vec![
        ("build profile", r.environment.build_profile.clone()),
        ("window", format!("{} ms", c.duration_ms)),
        ("warm-up", format!("{} ms", c.warmup_ms)),
        ("samples", c.samples.to_string()),
        ("seed", c.seed.to_string()),
        ("server", c.server.clone()),
        ("pinning", c.pinning.clone()),
        ("tls", c.tls.to_string()),
        ("datagram limit", c.max_datagram.to_string()),
    ]
}

fn differences(a: Vec<(&'static str, String)>, b: Vec<(&'static str, String)>) -> Vec<String> {
    a.into_iter().zip(b).filter(|(x, y)| x.1 != y.1).map(|(x, y)| format!("{}: {} vs {}", x.0, x.1, y.1)).collect()
}

fn describe(r: &Results) -> String {
    let commit: String = r.environment.git_commit.chars().take(12).collect();
    format!(
        "{} ({}{}, {})",
        r.environment.started_at,
        commit,
        if r.environment.git_dirty { "+dirty" } else { "" },
        r.config.matrix
    )
}

/// Compares `base` with `new`.
pub fn compare(base: &Results, new: &Results, options: &Options) -> Result<Comparison, CompareError> {
    let in_unit = |x: f64| x > 0.0 && x < 1.0;
    if !in_unit(options.threshold) || !in_unit(options.alpha) || !in_unit(options.instructions_threshold) {
        return Err(CompareError::Options("thresholds and alpha must be between 0 and 1".into()));
    }
    let mut warnings = Vec::new();
    let machine_diff = differences(machine(base), machine(new));
    if !machine_diff.is_empty() {
        if !options.force {
            return Err(CompareError::DifferentMachines(machine_diff.join("; ")));
        }
        warnings.push(format!("different machines: {}; timing verdicts are not meaningful", machine_diff.join("; ")));
    }
    let settings_diff = differences(settings(base), settings(new));
    if !settings_diff.is_empty() {
        warnings.push(format!("different settings: {}; timing verdicts may reflect them", settings_diff.join("; ")));
    }
    for (which, r) in [("base", base), ("new", new)] {
        if r.interrupted {
            warnings.push(format!("the {which} run was interrupted: some cells are missing"));
        }
        if r.environment.build_profile.starts_with("debug") {
            warnings.push(format!("the {which} run is a debug build"));
        }
    }

    let ignored = |key: &str, metric: &str| {
        let text = format!("{key}:{metric}");
        options.ignore.iter().any(|p| glob(p, &text))
    };
    let mut rows = Vec::new();
    let keys: BTreeSet<&String> = base.cells.keys().chain(new.cells.keys()).collect();
    let mut pending: Vec<(usize, Groups, Groups)> = Vec::new();
    for key in keys {
        let (b, n) = (base.cells.get(key), new.cells.get(key));
        let row = |metric, kind, verdict| Row {
            key: key.clone(),
            metric,
            kind,
            base: None,
            new: None,
            ratio: None,
            interval: None,
            p_value: None,
            verdict,
            higher_is_better: false,
        };
        let (b, n) = match (b, n) {
            (Some(b), Some(n)) => (b, n),
            (None, Some(_)) => {
                rows.push(row(
                    "cell",
                    Kind::Status,
                    if ignored(key, "cell") { Verdict::Ignored } else { Verdict::Added },
                ));
                continue;
            }
            (Some(_), None) => {
                rows.push(row(
                    "cell",
                    Kind::Status,
                    if ignored(key, "cell") { Verdict::Ignored } else { Verdict::Removed },
                ));
                continue;
            }
            (None, None) => continue,
        };
        if b.status == CellStatus::Ok && n.status != CellStatus::Ok {
            let verdict = if ignored(key, "status") { Verdict::Ignored } else { Verdict::Broken };
            rows.push(row("status", Kind::Status, verdict));
            continue;
        }
        if b.status != CellStatus::Ok || n.status != CellStatus::Ok {
            continue;
        }
        exact_rows(key, b, n, &ignored, &mut rows);
        for (metric, higher_is_better) in TIMINGS {
            let (bs, ns) = (samples_of(&b.samples, metric), samples_of(&n.samples, metric));
            let mut r = row(metric, Kind::Timing, Verdict::Inconclusive);
            r.higher_is_better = higher_is_better;
            r.base = (!bs.is_empty()).then(|| median(&mut flatten(&bs)));
            r.new = (!ns.is_empty()).then(|| median(&mut flatten(&ns)));
            r.ratio = match (r.base, r.new) {
                (Some(b), Some(n)) if higher_is_better && n > 0.0 => Some(b / n),
                (Some(b), Some(n)) if !higher_is_better && b > 0.0 => Some(n / b),
                _ => None,
            };
            if ignored(key, metric) {
                r.verdict = Verdict::Ignored;
                rows.push(r);
                continue;
            }
            if r.ratio.is_none() || count(&bs) < 2 || count(&ns) < 2 {
                rows.push(r);
                continue;
            }
            pending.push((rows.len(), bs, ns));
            rows.push(r);
        }
    }

    // Run-to-run noise, per metric, from the spread of all cells' ratios.
    let single_run = pending.iter().any(|(_, bs, ns)| bs.len() < 2 || ns.len() < 2);
    let mut noise: BTreeMap<&'static str, Noise> = BTreeMap::new();
    for (metric, _) in TIMINGS {
        let logs: Vec<f64> = pending
            .iter()
            .filter(|(i, _, _)| rows[*i].metric == metric)
            .filter_map(|(i, _, _)| rows[*i].ratio)
            .filter(|r| *r > 0.0 && r.is_finite())
            .map(f64::ln)
            .collect();
        noise.insert(metric, Noise::of(&logs, single_run, options));
    }
    let threshold = options.threshold.ln_1p();
    for (metric, n) in &noise {
        if n.cells < MIN_CELLS_FOR_NOISE {
            continue;
        }
        let verdict = judge(n.shift, n.shift, n.shift_bound, threshold, true, true);
        let higher_is_better = *metric == "calls/s";
        rows.push(Row {
            key: "*".into(),
            metric,
            kind: Kind::Timing,
            base: None,
            new: None,
            ratio: Some(n.shift.exp()),
            interval: None,
            p_value: None,
            verdict: if ignored("*", metric) { Verdict::Ignored } else { verdict },
            higher_is_better,
        });
        if n.bound > threshold + 1e-12 || n.shift.abs() > threshold {
            warnings.push(format!(
                "{metric}: all cells moved by a median of {:+.1}% (oriented: + is worse), with a run-to-run spread of \
                 ±{:.1}% around it; cells are judged by how far they moved beyond the median and need more than {:.1}%",
                (n.shift.exp() - 1.0) * 100.0,
                (n.spread.exp() - 1.0) * 100.0,
                (n.bound.exp() - 1.0) * 100.0
            ));
        }
    }
    if noise.values().any(|n| n.cells >= MIN_CELLS_FOR_NOISE && n.bound > n.shift_bound) {
        warnings.push(format!(
            "a side is a single run, so no cell's own run-to-run noise is known: a cell must also move beyond {} times \
             the 90th percentile of all cells' movements, and only large changes can be flagged; merge several \
             interleaved runs a side (`wirebench merge`) for a sensitive verdict",
            options.tail_factor
        ));
    }
    // Each cell is judged against the cross-cell noise (never below the
    // threshold), whether or not it has several runs a side: a few runs
    // are too few to estimate one cell's run-to-run spread on their own
    // (measured: same-build interleaved pairs judged against the bare
    // threshold gave 12 and 11 false regressions; against this bound,
    // none). Several runs still help: the two-stage bootstrap widens the
    // interval of a cell whose runs disagree.
    let mut timing_rows: Vec<(usize, Bootstrap)> = Vec::new();
    for (i, bs, ns) in pending {
        let row = &rows[i];
        let n = noise[row.metric];
        // The seed depends on the cell and metric only.
        let seed = row
            .key
            .bytes()
            .chain(row.metric.bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, c| (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3));
        if let Some(boot) = bootstrap(&bs, &ns, row.higher_is_better, n.shift, n.bound, options, seed) {
            timing_rows.push((i, boot));
        }
    }

    // Correct the p-values of all timing comparisons together, each
    // direction on its own.
    let worse: Vec<f64> = timing_rows.iter().map(|(_, b)| b.p_worse).collect();
    let better: Vec<f64> = timing_rows.iter().map(|(_, b)| b.p_better).collect();
    let (worse, better) = (correct(&worse, options.correction), correct(&better, options.correction));
    for (j, (i, boot)) in timing_rows.iter().enumerate() {
        let (lo, hi) = boot.interval;
        let row = &mut rows[*i];
        let n = noise[row.metric];
        row.p_value = Some(worse[j]);
        // Shown on the raw scale: the shifted interval times the shift.
        row.interval = Some((lo * n.shift.exp(), hi * n.shift.exp()));
        let (worse, better) = (worse[j] < options.alpha, better[j] < options.alpha);
        row.verdict = judge(lo.ln(), hi.ln(), n.bound, threshold, worse, better);
    }

    instruction_rows(base, new, options, &ignored, &mut rows);
    Ok(Comparison { rows, warnings, options: options.clone(), base: describe(base), new: describe(new) })
}

fn exact_rows(key: &str, b: &Cell, n: &Cell, ignored: &impl Fn(&str, &str) -> bool, rows: &mut Vec<Row>) {
    let (Some(bm), Some(nm)) = (&b.metrics, &n.metrics) else { return };
    let mut exact: Vec<(&'static str, Option<u64>, Option<u64>)> = vec![
        ("request bytes", Some(bm.request_bytes), Some(nm.request_bytes)),
        ("reply bytes", Some(bm.reply_bytes), Some(nm.reply_bytes)),
        ("request zstd bytes", bm.request_zstd_bytes, nm.request_zstd_bytes),
        ("reply zstd bytes", bm.reply_zstd_bytes, nm.reply_zstd_bytes),
    ];
    if bm.wire_exact && nm.wire_exact {
        exact.push(("wire bytes per call", bm.wire_probe_bytes, nm.wire_probe_bytes));
    }
    for (metric, bv, nv) in exact {
        let (Some(bv), Some(nv)) = (bv, nv) else { continue };
        let verdict = if ignored(key, metric) {
            Verdict::Ignored
        } else if bv == nv {
            Verdict::Unchanged
        } else {
            Verdict::Changed
        };
        rows.push(Row {
            key: key.to_owned(),
            metric,
            kind: Kind::Exact,
            base: Some(bv as f64),
            new: Some(nv as f64),
            ratio: (bv > 0).then(|| nv as f64 / bv as f64),
            interval: None,
            p_value: None,
            verdict,
            higher_is_better: false,
        });
    }
}

fn instruction_rows(
    base: &Results,
    new: &Results,
    options: &Options,
    ignored: &impl Fn(&str, &str) -> bool,
    rows: &mut Vec<Row>,
) {
    let empty = BTreeMap::new();
    let b = base.instructions.as_ref().map_or(&empty, |i| &i.counts);
    let n = new.instructions.as_ref().map_or(&empty, |i| &i.counts);
    let keys: BTreeSet<&String> = b.keys().chain(n.keys()).collect();
    for key in keys {
        let (bv, nv) = (b.get(key).copied(), n.get(key).copied());
        let ratio = match (bv, nv) {
            (Some(b), Some(n)) if b > 0 => Some(n as f64 / b as f64),
            _ => None,
        };
        let t = options.instructions_threshold;
        let verdict = match (bv, nv, ratio) {
            _ if ignored(key, "instructions") => Verdict::Ignored,
            (None, Some(_), _) => Verdict::Added,
            (Some(_), None, _) => Verdict::Removed,
            (_, _, Some(r)) if r > 1.0 + t => Verdict::Regressed,
            (_, _, Some(r)) if r < 1.0 - t => Verdict::Improved,
            _ => Verdict::Unchanged,
        };
        rows.push(Row {
            key: key.clone(),
            metric: "instructions",
            kind: Kind::Instructions,
            base: bv.map(|v| v as f64),
            new: nv.map(|v| v as f64),
            ratio,
            interval: None,
            p_value: None,
            verdict,
            higher_is_better: false,
        });
    }
}

fn value(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if metric == "p50" || metric == "p99" => human_ns(v),
        Some(v) if metric == "calls/s" => format!("{v:.0}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn human_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

fn change(row: &Row) -> String {
    let Some(ratio) = row.ratio else { return "-".into() };
    // Shown as the change of the metric itself, not the oriented ratio.
    let shown = if row.higher_is_better { 1.0 / ratio } else { ratio };
    let mut s = format!("{:+.1}%", (shown - 1.0) * 100.0);
    if let Some((lo, hi)) = row.interval {
        let (lo, hi) = if row.higher_is_better { (1.0 / hi, 1.0 / lo) } else { (lo, hi) };
        s.push_str(&format!(" [{:+.1}%, {:+.1}%]", (lo - 1.0) * 100.0, (hi - 1.0) * 100.0));
    }
    s
}

/// The comparison in GitHub Markdown: a headline, the rows that need
/// attention, and the counts.
pub fn markdown(c: &Comparison) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let headline = if c.regressed() {
        "❌ **Regression**"
    } else if c.changed() {
        "⚠️ **Exact metrics changed**"
    } else {
        "✅ **No regression**"
    };
    let _ = writeln!(out, "## wirebench: {headline}\n");
    let _ = writeln!(out, "base: {}  \nnew: {}\n", c.base, c.new);
    for w in &c.warnings {
        let _ = writeln!(out, "> ⚠️ {w}");
    }
    if !c.warnings.is_empty() {
        out.push('\n');
    }
    let counts: Vec<String> = [
        Verdict::Regressed,
        Verdict::Broken,
        Verdict::Changed,
        Verdict::Improved,
        Verdict::Unchanged,
        Verdict::Inconclusive,
        Verdict::Added,
        Verdict::Removed,
        Verdict::Ignored,
    ]
    .iter()
    .filter(|v| c.count(**v) > 0)
    .map(|v| format!("{} {v}", c.count(*v)))
    .collect();
    let _ = writeln!(out, "{}\n", counts.join(" · "));
    let notable: Vec<&Row> = c
        .rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Broken | Verdict::Changed | Verdict::Improved))
        .collect();
    if !notable.is_empty() {
        let _ = writeln!(out, "| verdict | cell | metric | base | new | change [CI] | p (corrected) |");
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|");
        for r in notable.iter().take(200) {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} |",
                r.verdict,
                r.key,
                r.metric,
                value(r.metric, r.base),
                value(r.metric, r.new),
                change(r),
                r.p_value.map_or("-".into(), |p| format!("{p:.3}")),
            );
        }
        if notable.len() > 200 {
            let _ = writeln!(out, "\n{} more rows in the HTML comparison.", notable.len() - 200);
        }
    }
    let _ = writeln!(
        out,
        "\nTimings: bootstrap {}% interval of the ratio of sample medians, noise threshold {}%, {} correction, alpha {}. Instructions: threshold {}%. Exact metrics: any change.",
        ((1.0 - c.options.alpha) * 100.0).round(),
        c.options.threshold * 100.0,
        match c.options.correction {
            Correction::Holm => "Holm",
            Correction::BenjaminiHochberg => "Benjamini-Hochberg",
        },
        c.options.alpha,
        c.options.instructions_threshold * 100.0
    );
    out
}

/// The comparison as a self-contained HTML page: every row, filterable.
pub fn html(c: &Comparison) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut rows = String::new();
    for r in &c.rows {
        rows.push_str(&format!(
            "<tr class=\"{v}\"><td>{v}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&r.key),
            escape(r.metric),
            escape(&value(r.metric, r.base)),
            escape(&value(r.metric, r.new)),
            escape(&change(r)),
            r.p_value.map_or("-".into(), |p| format!("{p:.3}")),
            v = r.verdict.name()
        ));
    }
    let warnings: String = c.warnings.iter().map(|w| format!("<p class=\"warning\">{}</p>", escape(w))).collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>wirebench comparison</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }}
tr.regressed td, tr.broken td {{ background: #fde2e2; }} tr.changed td {{ background: #fff3cd; }}
tr.improved td {{ background: #e2f5e2; }} .warning {{ background: #fff3cd; padding: 0.5em; }}
</style></head><body>
<h1>wirebench comparison</h1>
<div class="md">{}</div>
{warnings}
<p><input id="filter" placeholder="filter rows" size="40"></p>
<table id="rows"><thead><tr><th>verdict</th><th>cell</th><th>metric</th><th>base</th><th>new</th><th>change [CI]</th><th>p</th></tr></thead>
<tbody>
{rows}</tbody></table>
<script>
document.getElementById('filter').addEventListener('input', e => {{
  const q = e.target.value.toLowerCase();
  for (const tr of document.querySelectorAll('#rows tbody tr')) tr.style.display = tr.textContent.toLowerCase().includes(q) ? '' : 'none';
}});
</script>
</body></html>
"#,
        escape(&format!("base: {} — new: {}", c.base, c.new)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*/json/*", "echo-1KiB/json/tcp/c1:p50"));
        assert!(glob("*:p99", "multiply/raw/udp/c64:p99"));
        assert!(!glob("*:p99", "multiply/raw/udp/c64:p50"));
        assert!(glob("a?c", "abc"));
    }

    #[test]
    fn holm_and_bh_adjust_as_published() {
        let p = [0.01, 0.04, 0.03, 0.005];
        let holm = correct(&p, Correction::Holm);
        assert_eq!(holm, vec![0.03, 0.06, 0.06, 0.02]);
        let bh = correct(&p, Correction::BenjaminiHochberg);
        let want = [0.02, 0.04, 0.04, 0.02];
        for (a, b) in bh.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{bh:?}");
        }
    }

    #[test]
    fn the_normal_cdf_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975_002_1).abs() < 1e-6);
        assert!((normal_cdf(-3.0) - 0.001_349_898).abs() < 1e-8);
        assert!(normal_cdf(-10.0) < 1e-20 && normal_cdf(-10.0) > 0.0);
    }

    #[test]
    fn the_bootstrap_sees_a_shift_and_not_noise() {
        let options = Options::default();
        let base = vec![(0..10).map(|i| 100.0 + f64::from(i % 3)).collect::<Vec<f64>>()];
        let slower = vec![base[0].iter().map(|x| x * 1.2).collect::<Vec<f64>>()];
        let t = options.threshold.ln_1p();
        let b = bootstrap(&base, &slower, false, 0.0, t, &options, 1).unwrap();
        assert!(b.interval.0 > 1.05 && b.p_worse < 1e-6, "{:?} {}", b.interval, b.p_worse);
        let same = bootstrap(&base, &base, false, 0.0, t, &options, 1).unwrap();
        assert!(same.interval.0 >= 0.95 && same.interval.1 <= 1.05, "{:?}", same.interval);
        assert!(same.p_worse > 0.5);
        assert!(bootstrap(&[vec![1.0]], &slower, false, 0.0, t, &options, 1).is_none());
        // The same 20% seen against a global shift of 20% is no change.
        let shifted = bootstrap(&base, &slower, false, 1.2f64.ln(), t, &options, 1).unwrap();
        assert!(shifted.interval.0 < 1.0 && shifted.interval.1 > 1.0, "{:?}", shifted.interval);
        // Two runs a side that disagree: the interval widens to cover both.
        let runs_a = vec![base[0].clone(), base[0].iter().map(|x| x * 1.3).collect()];
        let runs_b = vec![base[0].iter().map(|x| x * 1.25).collect(), base[0].iter().map(|x| x * 1.1).collect()];
        let wide = bootstrap(&runs_a, &runs_b, false, 0.0, t, &options, 1).unwrap();
        assert!(wide.interval.0 < 1.0 && wide.interval.1 > 1.05, "{:?}", wide.interval);
    }
}
