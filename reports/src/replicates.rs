//! A cell's replicates, and what they allow one to say.
//!
//! A replicate is one sample group of a cell (`Sample::group`): one pass
//! of `wirebench run --passes N`, or one run folded in by `wirebench
//! merge`. Replicates are minutes apart and carry the machine's drift;
//! the sub-window samples inside one replicate are back to back and do
//! not. So every judgement about noise here (compare's verdicts, the
//! reports' fastest cell, the intervals they show) rests on replicates,
//! never on sub-windows, and never on other cells.
//!
//! A replicate's value of a timing metric is the median of its
//! sub-window samples (p50, p99 or calls/s of each sub-window): the same
//! definition in every file, old or new, merged or not, and robust to one
//! stalled sub-window. With one replicate there is no spread to measure,
//! and a fixed, documented ratio ([`SingleReplicateRule`]) stands in for
//! it. `docs/statistics.md` explains both.

use std::collections::BTreeMap;

use crate::model::{Cell, CellStatus, Sample};
use crate::stats;

/// A timing metric judged over replicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Median latency.
    P50,
    /// 99th-percentile latency.
    P99,
    /// Throughput.
    CallsPerSec,
}

impl Metric {
    /// Every timing metric, in report order.
    pub const ALL: [Metric; 3] = [Metric::P50, Metric::P99, Metric::CallsPerSec];

    /// Its name in reports and in `--ignore` patterns.
    pub fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P99 => "p99",
            Metric::CallsPerSec => "calls/s",
        }
    }

    /// Higher is better (calls/s).
    pub fn higher_is_better(self) -> bool {
        self == Metric::CallsPerSec
    }

    fn of(self, s: &Sample) -> f64 {
        match self {
            Metric::P50 => s.p50_ns as f64,
            Metric::P99 => s.p99_ns as f64,
            Metric::CallsPerSec => s.calls_per_sec,
        }
    }

    /// `ln(value)` turned so that larger is worse: what every statistic
    /// here works on.
    pub fn oriented_log(self, value: f64) -> f64 {
        if self.higher_is_better() { -value.ln() } else { value.ln() }
    }

    /// The inverse of [`Metric::oriented_log`].
    pub fn from_oriented_log(self, log: f64) -> f64 {
        if self.higher_is_better() { (-log).exp() } else { log.exp() }
    }
}

/// Ratios per timing metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratios {
    /// For p50.
    pub p50: f64,
    /// For p99.
    pub p99: f64,
    /// For calls/s.
    pub calls_per_sec: f64,
}

impl Ratios {
    /// The ratio of `metric`.
    pub fn of(&self, metric: Metric) -> f64 {
        match metric {
            Metric::P50 => self.p50,
            Metric::P99 => self.p99,
            Metric::CallsPerSec => self.calls_per_sec,
        }
    }
}

/// What stands in for a spread that one replicate cannot measure: two
/// single-replicate values are told apart only when one is worse than the
/// other by at least this ratio (oriented: for calls/s, the base's rate
/// over the new one). github-action-benchmark's default alert ratio
/// (200%) is the anchor; see `docs/statistics.md` for where each number
/// comes from. They are settings, so they can be calibrated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SingleReplicateRule {
    /// One cell.
    pub cell: Ratios,
    /// The all-cells row (`*`): the geometric mean over cells of the
    /// ratios.
    pub global: Ratios,
}

impl Default for SingleReplicateRule {
    fn default() -> SingleReplicateRule {
        SingleReplicateRule {
            cell: Ratios { p50: 1.8, p99: 2.5, calls_per_sec: 1.8 },
            global: Ratios { p50: 1.5, p99: 2.0, calls_per_sec: 1.5 },
        }
    }
}

/// A cell's replicates of `metric`: `(group, value)`, one per sample
/// group, the value the median of the group's sub-window samples, in
/// group order. Samples without calls, groups of a pass that did not end
/// `ok`, and values that are not positive and finite are left out.
pub fn values(cell: &Cell, metric: Metric) -> Vec<(u32, f64)> {
    let failed_pass = |group: u32| cell.passes.iter().any(|p| p.group == group && p.status != CellStatus::Ok);
    let mut groups: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for s in cell.samples.iter().filter(|s| s.calls > 0) {
        groups.entry(s.group).or_default().push(metric.of(s));
    }
    groups
        .into_iter()
        .filter(|(g, _)| !failed_pass(*g))
        .map(|(g, mut v)| (g, stats::median(&mut v)))
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect()
}

/// The oriented logs of [`values`].
pub fn oriented_logs(cell: &Cell, metric: Metric) -> Vec<f64> {
    values(cell, metric).into_iter().map(|(_, v)| metric.oriented_log(v)).collect()
}

/// Where an interval comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IntervalSource {
    /// Student's t over two or more replicates.
    Replicates,
    /// One replicate: the value times and divided by the square root of
    /// the single-replicate ratio, so that two such intervals are apart
    /// exactly when the values are further apart than the ratio.
    SingleReplicateRule,
}

/// A cell's value of a metric with its 95% interval, in the metric's own
/// units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The geometric mean of the replicates (the value, for one).
    pub value: f64,
    /// The interval's better end (lower latency, higher rate).
    pub best: f64,
    /// The interval's worse end.
    pub worst: f64,
    /// Replicates it rests on.
    pub replicates: usize,
    /// How the interval was made.
    pub source: IntervalSource,
}

impl Estimate {
    /// The estimate of `cell`'s `metric`, or `None` when it has no
    /// replicate. The interval is 95% (Student's t over the replicates'
    /// oriented logs) with two or more, the single-replicate rule with one.
    pub fn of(cell: &Cell, metric: Metric, rule: &SingleReplicateRule) -> Option<Estimate> {
        let logs = oriented_logs(cell, metric);
        let (center, lo, hi, source) = match logs.len() {
            0 => return None,
            1 => {
                let half = rule.cell.of(metric).ln() / 2.0;
                (logs[0], logs[0] - half, logs[0] + half, IntervalSource::SingleReplicateRule)
            }
            _ => {
                let (lo, hi) = stats::mean_interval(&logs, 0.05)?;
                (stats::mean(&logs), lo, hi, IntervalSource::Replicates)
            }
        };
        Some(Estimate {
            value: metric.from_oriented_log(center),
            best: metric.from_oriented_log(lo),
            worst: metric.from_oriented_log(hi),
            replicates: logs.len(),
            source,
        })
    }

    fn oriented(&self, metric: Metric) -> (f64, f64, f64) {
        (metric.oriented_log(self.best), metric.oriented_log(self.value), metric.oriented_log(self.worst))
    }
}

/// The fastest of some cells by one metric, said honestly.
#[derive(Clone, Debug, PartialEq)]
pub enum Fastest<'a> {
    /// No candidate had a replicate.
    Nothing,
    /// One cell, and its interval is apart from every other's: the
    /// runner-up, if there is one, is named too.
    One {
        /// The fastest cell.
        best: (&'a Cell, Estimate),
        /// The next best.
        runner_up: Option<(&'a Cell, Estimate)>,
    },
    /// The cells whose intervals overlap the best one's: none of them can
    /// be called the fastest. Best estimate first; at least two.
    Tied(Vec<(&'a Cell, Estimate)>),
}

impl<'a> Fastest<'a> {
    /// The cells named: the fastest alone, or every tied one.
    pub fn cells(&self) -> Vec<&'a Cell> {
        match self {
            Fastest::Nothing => Vec::new(),
            Fastest::One { best, .. } => vec![best.0],
            Fastest::Tied(cells) => cells.iter().map(|(c, _)| *c).collect(),
        }
    }

    /// How the intervals were made, if all the same way; `None` when
    /// mixed or when nothing was named.
    pub fn source(&self) -> Option<IntervalSource> {
        let estimates: Vec<&Estimate> = match self {
            Fastest::Nothing => return None,
            Fastest::One { best, runner_up } => {
                std::iter::once(&best.1).chain(runner_up.iter().map(|r| &r.1)).collect()
            }
            Fastest::Tied(cells) => cells.iter().map(|(_, e)| e).collect(),
        };
        let first = estimates.first()?.source;
        estimates.iter().all(|e| e.source == first).then_some(first)
    }
}

/// The fastest of `cells` by `metric`: the cell with the best estimate,
/// named only when the worse end of its interval is still better than the
/// better end of every other cell's; otherwise every cell whose interval
/// reaches the best one's is tied with it. Ties of the estimate itself go
/// to the smaller key, so the answer is the same on every run.
pub fn fastest<'a>(
    cells: impl IntoIterator<Item = &'a Cell>,
    metric: Metric,
    rule: &SingleReplicateRule,
) -> Fastest<'a> {
    let mut estimates: Vec<(&'a Cell, Estimate)> =
        cells.into_iter().filter_map(|c| Estimate::of(c, metric, rule).map(|e| (c, e))).collect();
    estimates.sort_by(|a, b| {
        let (x, y) = (a.1.oriented(metric).1, b.1.oriented(metric).1);
        x.total_cmp(&y).then_with(|| a.0.key.cmp(&b.0.key))
    });
    let Some(best) = estimates.first().cloned() else { return Fastest::Nothing };
    let (_, _, best_worst) = best.1.oriented(metric);
    let tied: Vec<(&'a Cell, Estimate)> =
        estimates.iter().skip(1).filter(|(_, e)| e.oriented(metric).0 <= best_worst).cloned().collect();
    if tied.is_empty() {
        Fastest::One { best, runner_up: estimates.get(1).cloned() }
    } else {
        Fastest::Tied(std::iter::once(best).chain(tied).collect())
    }
}
