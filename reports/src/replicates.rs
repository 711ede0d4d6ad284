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
//! A replicate's value of a timing metric is its whole window's figure:
//! the pass's own p50, p99 or calls/s (`Cell::passes`), or for a run of
//! one pass the cell's metrics, the figures every report shows. Runs
//! merged by older versions have no whole-window figure per run; there a
//! replicate's value is the median of its sub-window samples, and a
//! comparison then uses that for every cell it puts together. With one
//! replicate there is no spread to measure, and a fixed, documented ratio
//! ([`SingleReplicateRule`]) stands in for it. `docs/statistics.md`
//! explains both.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Cell, CellStatus, Metrics, PassFigures, Sample};
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

    fn of_pass(self, p: &PassFigures) -> f64 {
        match self {
            Metric::P50 => p.p50_ns as f64,
            Metric::P99 => p.p99_ns as f64,
            Metric::CallsPerSec => p.calls_per_sec,
        }
    }

    fn of_metrics(self, m: &Metrics) -> f64 {
        match self {
            Metric::P50 => m.latency.p50 as f64,
            Metric::P99 => m.latency.p99 as f64,
            Metric::CallsPerSec => m.calls_per_sec,
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

/// Where a replicate's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueSource {
    /// The replicate's whole measured window: its pass figures
    /// (`Cell::passes`), or for a cell of one pass without them, the
    /// cell's own metrics. The same figures the reports show.
    WholeWindow,
    /// The median of the replicate's sub-window samples: for files whose
    /// replicates have no whole-window figures (runs merged by a
    /// wirebench older than schema version 2).
    SubWindowMedians,
}

/// Where `cell`'s replicate values can come from: whole windows when
/// every sample group has whole-window figures.
pub fn source_of(cell: &Cell) -> ValueSource {
    let groups: BTreeSet<u32> = cell.samples.iter().map(|s| s.group).collect();
    let whole = if cell.passes.is_empty() {
        groups.len() <= 1 && cell.metrics.is_some()
    } else {
        groups.iter().all(|g| cell.passes.iter().any(|p| p.group == *g))
    };
    if whole { ValueSource::WholeWindow } else { ValueSource::SubWindowMedians }
}

/// The source several cells can all use, so their values are alike.
pub fn common_source<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> ValueSource {
    cells.into_iter().map(source_of).max().unwrap_or(ValueSource::WholeWindow)
}

/// A cell's replicates of `metric`, `(group, value)` in group order, from
/// the best source it has ([`source_of`]).
pub fn values(cell: &Cell, metric: Metric) -> Vec<(u32, f64)> {
    values_from(cell, metric, source_of(cell))
}

/// A cell's replicates of `metric` from `source`: one per sample group.
/// Left out: passes that did not end `ok` or had no calls, samples without
/// calls, and values that are not positive and finite.
pub fn values_from(cell: &Cell, metric: Metric, source: ValueSource) -> Vec<(u32, f64)> {
    let failed_pass = |group: u32| cell.passes.iter().any(|p| p.group == group && p.status != CellStatus::Ok);
    let usable = |v: &(u32, f64)| v.1.is_finite() && v.1 > 0.0;
    match source {
        ValueSource::WholeWindow if !cell.passes.is_empty() => {
            let mut out: Vec<(u32, f64)> = cell
                .passes
                .iter()
                .filter(|p| p.status == CellStatus::Ok && p.calls > 0)
                .map(|p| (p.group, metric.of_pass(p)))
                .filter(usable)
                .collect();
            out.sort_by_key(|v| v.0);
            out
        }
        ValueSource::WholeWindow => {
            let group = cell.samples.first().map_or(0, |s| s.group);
            cell.metrics.iter().filter(|m| m.calls > 0).map(|m| (group, metric.of_metrics(m))).filter(usable).collect()
        }
        ValueSource::SubWindowMedians => {
            let mut groups: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
            for s in cell.samples.iter().filter(|s| s.calls > 0) {
                groups.entry(s.group).or_default().push(metric.of(s));
            }
            groups
                .into_iter()
                .filter(|(g, _)| !failed_pass(*g))
                .map(|(g, mut v)| (g, stats::median(&mut v)))
                .filter(usable)
                .collect()
        }
    }
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
        Estimate::from_source(cell, metric, rule, source_of(cell))
    }

    /// [`Estimate::of`] with the replicate values from `source`.
    pub fn from_source(
        cell: &Cell,
        metric: Metric,
        rule: &SingleReplicateRule,
        source: ValueSource,
    ) -> Option<Estimate> {
        let logs: Vec<f64> =
            values_from(cell, metric, source).into_iter().map(|(_, v)| metric.oriented_log(v)).collect();
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
    let cells: Vec<&'a Cell> = cells.into_iter().collect();
    // One source for all, so every estimate means the same thing.
    let source = common_source(cells.iter().copied());
    let mut estimates: Vec<(&'a Cell, Estimate)> =
        cells.iter().filter_map(|c| Estimate::from_source(c, metric, rule, source).map(|e| (*c, e))).collect();
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
