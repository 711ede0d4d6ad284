//! Comparing two results files: a verdict per cell and metric, judged by
//! the kind of metric. `docs/statistics.md` is the reviewer's version of
//! this comment, with the reasoning and the numbers.
//!
//! - Exact metrics (encoded bytes; bytes on the wire where the transport
//!   makes them exact): any difference is `changed`, for a human to
//!   approve, never noise.
//! - Instruction counts (callgrind; every key of `counts`): `regressed`
//!   above a threshold (default 1%), `improved` below its mirror.
//! - Timings (p50, p99, calls/s), judged on each cell's replicates only
//!   (its sample groups: passes of `run --passes`, runs folded in by
//!   `merge`; see [`crate::replicates`]), never on how other cells moved:
//!   - two or more replicates a side: Welch's t on the oriented logs of
//!     the replicates' values, one-sided against the threshold (default
//!     5%), the p-values of every timing test corrected together (Holm, or
//!     Benjamini-Hochberg). `regressed` needs a significant corrected
//!     p-value and the 95% interval wholly beyond the threshold;
//!     `unchanged` needs the interval wholly within it; anything else is
//!     `inconclusive`.
//!   - one replicate on a side: a cell is not judged (`inconclusive`, its
//!     move shown): same-build pairs of single runs on a 2-core VM moved
//!     single cells by up to ×5 on p50 and ×19 on p99, so no fixed ratio
//!     that could still see a doubling would keep idle pairs quiet
//!     (docs/statistics.md, section 5).
//!   - the all-cells row (`*`) per metric: per replicate, the mean over
//!     the cells both sides measured in every replicate of their oriented
//!     logs, averaged within each run; then Welch's t over the runs'
//!     means, or with one run a side (however many passes) the fixed
//!     [`SingleReplicateRule`]'s global ratios
//!     (a shift at least that large is `regressed`, or `improved`). A
//!     uniform slowdown of every cell shows here.
//!   - every timing row also says the smallest change it could have
//!     flagged ([`Row::detectable`]), and cells with a raw baseline show
//!     how their ratio to it changed ([`Row::control`]): the baseline ran
//!     in the same pass, so machine drift that hits both cancels.
//!
//! Nothing is random: the same two files always give the same verdicts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{Cell, CellStatus, Environment, Results};
use crate::replicates::{self, Metric};
use crate::stats::{self, Welch};

mod glob;
mod output;

pub use crate::replicates::{Ratios, SingleReplicateRule};
pub use crate::stats::Correction;
pub use glob::{Glob, GlobError};
pub use output::{html, markdown};

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

    /// Every verdict, in the order counts are reported.
    pub const ALL: [Verdict; 9] = [
        Verdict::Regressed,
        Verdict::Broken,
        Verdict::Changed,
        Verdict::Improved,
        Verdict::Unchanged,
        Verdict::Inconclusive,
        Verdict::Added,
        Verdict::Removed,
        Verdict::Ignored,
    ];
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
    /// Noisy: statistics over replicates.
    Timing,
    /// Whether the cell works at all.
    Status,
}

/// Comparison settings. The command line validates its own ranges;
/// [`compare`] checks these again and refuses what is out of range.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The smallest timing change that matters (0.05 = 5%): `regressed`
    /// means confidently beyond it, `unchanged` confidently within it.
    pub threshold: f64,
    /// Instruction-count threshold (0.01 = 1%).
    pub instructions_threshold: f64,
    /// Significance level after correction, and 1 - the intervals'
    /// confidence (0.05: 95% intervals).
    pub alpha: f64,
    /// The correction over all timing tests.
    pub correction: Correction,
    /// Glob patterns over `{cell key}:{metric}`; matches are ignored.
    pub ignore: Vec<String>,
    /// Compare even when the runs come from different machines.
    pub force: bool,
    /// What judges the `*` row with one replicate on a side (cells with
    /// one replicate are not judged).
    pub single: SingleReplicateRule,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            threshold: 0.05,
            instructions_threshold: 0.01,
            alpha: 0.05,
            correction: Correction::Holm,
            ignore: Vec::new(),
            force: false,
            single: SingleReplicateRule::default(),
        }
    }
}

impl Options {
    fn check(&self) -> Result<(), CompareError> {
        let bad = |what: &str, value: f64, range: &str| {
            Err(CompareError::Options(format!("{what} is {value}; it must be {range}")))
        };
        let fraction = |x: f64| x > 0.0 && x < 1.0;
        if !fraction(self.threshold) {
            return bad("the timing threshold", self.threshold, "a fraction above 0 and below 1 (0.05 = 5%)");
        }
        if !fraction(self.instructions_threshold) {
            return bad(
                "the instruction threshold",
                self.instructions_threshold,
                "a fraction above 0 and below 1 (0.01 = 1%)",
            );
        }
        if !(self.alpha > 0.0 && self.alpha <= 0.5) {
            return bad("alpha", self.alpha, "above 0 and at most 0.5");
        }
        for (scope, ratios) in [("cell", self.single.cell), ("global", self.single.global)] {
            for metric in Metric::ALL {
                let r = ratios.of(metric);
                if !(r > 1.0 && r.is_finite()) {
                    return bad(&format!("the single-replicate {scope} ratio of {}", metric.name()), r, "above 1");
                }
            }
        }
        Ok(())
    }
}

/// How a timing row was judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Judgement {
    /// Welch's t over this many replicates a side.
    Replicates {
        /// Base replicates (cells: of this cell; the `*` row: replicate means).
        base: usize,
        /// New replicates.
        new: usize,
        /// Welch-Satterthwaite degrees of freedom.
        df: f64,
    },
    /// A side had one replicate: the `*` row by the single-replicate
    /// rule, a cell not at all.
    SingleReplicate {
        /// Base replicates.
        base: usize,
        /// New replicates.
        new: usize,
        /// The ratio that flags (the `*` row); `None`: a cell, not judged.
        ratio: Option<f64>,
    },
    /// A side had no replicate with calls: not judged.
    NoData,
}

/// How a cell's ratio to its raw baseline (same pass, same run) changed:
/// the control that cancels machine drift hitting both alike.
#[derive(Clone, Debug, PartialEq)]
pub struct Control {
    /// The raw baseline's key.
    pub baseline: String,
    /// new (cell / baseline) over base (cell / baseline), oriented so that
    /// above 1 is worse.
    pub ratio: f64,
    /// Its 95% interval (two or more paired replicates a side).
    pub interval: Option<(f64, f64)>,
}

/// One metric of one cell, compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Cell key, `*` for the all-cells row, or an instruction key.
    pub key: String,
    /// Metric name.
    pub metric: &'static str,
    /// How it was judged.
    pub kind: Kind,
    /// Base value (timings: the geometric mean of the replicates).
    pub base: Option<f64>,
    /// New value.
    pub new: Option<f64>,
    /// new / base, oriented so that above 1 is worse.
    pub ratio: Option<f64>,
    /// 95% interval of the oriented ratio (timings over replicates).
    pub interval: Option<(f64, f64)>,
    /// Corrected p-value of "no change beyond the threshold" in the
    /// direction observed: against a regression when the ratio is above 1,
    /// against an improvement below (timings over replicates).
    pub p_value: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// Higher is better (calls/s).
    pub higher_is_better: bool,
    /// Timing rows: how they were judged.
    pub judgement: Option<Judgement>,
    /// Timing rows: the smallest oriented ratio that would have been
    /// flagged had this row been the only regression.
    pub detectable: Option<f64>,
    /// Timing rows of cells with a raw baseline in both files.
    pub control: Option<Control>,
}

impl Row {
    fn new(key: &str, metric: &'static str, kind: Kind, verdict: Verdict) -> Row {
        Row {
            key: key.to_owned(),
            metric,
            kind,
            base: None,
            new: None,
            ratio: None,
            interval: None,
            p_value: None,
            verdict,
            higher_is_better: false,
            judgement: None,
            detectable: None,
            control: None,
        }
    }
}

/// Per timing metric: the smallest change this comparison could have
/// flagged, as oriented ratios (1.2 = 20% worse).
#[derive(Clone, Debug, PartialEq)]
pub struct Detectable {
    /// The metric.
    pub metric: &'static str,
    /// The `*` row's.
    pub global: Option<f64>,
    /// How the `*` row was judged.
    pub global_judgement: Option<Judgement>,
    /// The median over cells judged over replicates.
    pub cell_median: Option<f64>,
    /// Cells judged over replicates.
    pub cells_by_replicates: usize,
    /// Cells not judged: one replicate on a side.
    pub cells_by_rule: usize,
    /// The largest oriented move of a judged cell, and its key.
    pub largest_move: Option<(String, f64)>,
}

/// A whole comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Every compared metric; the `*` rows first.
    pub rows: Vec<Row>,
    /// Things the reader must know: different machines or settings, one
    /// replicate a side.
    pub warnings: Vec<String>,
    /// What this comparison could detect, per timing metric.
    pub detectable: Vec<Detectable>,
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
    /// The files share no cell (and, without cells, no instruction count):
    /// nothing would be judged.
    #[error("the files have no cell in common (base: {base} cells, new: {new} cells): nothing to judge")]
    NoCommonCells {
        /// Cells in the base file.
        base: usize,
        /// Cells in the new file.
        new: usize,
    },
    /// A side has cells but none of them is ok.
    #[error("the {side} file has no ok cell ({cells} cells, none ok): nothing to judge")]
    NoOkCells {
        /// `base` or `new`.
        side: &'static str,
        /// Its cells.
        cells: usize,
    },
    /// The runs crossed different networks (emulated links, or loopback
    /// against a link), or a link of one name has other figures on each
    /// side: their cells measure different networks, never the code.
    #[error("the runs crossed different links ({0}): a cell is only compared with the same cell on the same link")]
    DifferentLinks(String),
    /// An `--ignore` pattern is not a glob.
    #[error(transparent)]
    Glob(#[from] GlobError),
    /// Settings out of range.
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

    /// The `*` row of `metric`.
    pub fn global(&self, metric: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == "*" && r.metric == metric)
    }
}

/// The environments of every run a file holds (a merged file keeps each).
pub fn environments(r: &Results) -> Vec<&Environment> {
    if r.merged.is_empty() { vec![&r.environment] } else { r.merged.iter().map(|m| &m.environment).collect() }
}

/// What must match for timings to be comparable, as `(what, value)`.
fn machine(e: &Environment) -> Vec<(&'static str, String)> {
    vec![("CPU", e.cpu_model.clone()), ("cores", e.cores.to_string())]
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

/// Replicates a file holds: the most sample groups any cell has.
fn replicate_count(r: &Results) -> usize {
    r.cells.values().map(|c| c.samples.iter().map(|s| s.group).collect::<BTreeSet<u32>>().len()).max().unwrap_or(0)
}

fn describe(r: &Results) -> String {
    let commit: String = r.environment.git_commit.chars().take(12).collect();
    let runs = r.merged.len().max(1);
    let replicates = replicate_count(r);
    format!(
        "{} ({}{}, {}; {} replicate{} from {} run{})",
        r.environment.started_at,
        commit,
        if r.environment.git_dirty { "+dirty" } else { "" },
        r.config.matrix,
        replicates,
        if replicates == 1 { "" } else { "s" },
        runs,
        if runs == 1 { "" } else { "s" },
    )
}

/// The networks a file's cells crossed: link name to canonical spec, with
/// `loopback` for cells on no link (from the cells themselves, so a merged
/// file or one whose `links` were lost says the same).
fn networks(r: &Results) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cell in r.cells.values() {
        match &cell.link {
            Some(l) => out.entry(l.name.clone()).or_insert_with(|| l.spec.clone()),
            None => out.entry(LOOPBACK.to_owned()).or_insert_with(|| LOOPBACK.to_owned()),
        };
    }
    for l in &r.links {
        out.entry(l.name.clone()).or_insert_with(|| l.spec.clone());
    }
    out
}

/// What a cell on no link is called when links are compared.
const LOOPBACK: &str = "loopback";

fn describe_networks(n: &BTreeMap<String, String>) -> String {
    let names: Vec<String> =
        n.iter().map(|(name, spec)| if name == spec { name.clone() } else { format!("{name} = {spec}") }).collect();
    if names.is_empty() { "no cells".into() } else { names.join(", ") }
}

/// Refuses runs whose cells crossed different networks, and a link name
/// with other figures on each side (a profile redefined between versions);
/// with some links in common, the others' cells are only added or removed,
/// and the warning says so.
fn check_links(base: &Results, new: &Results) -> Result<Option<String>, CompareError> {
    let (b, n) = (networks(base), networks(new));
    for (name, spec) in &b {
        if let Some(other) = n.get(name)
            && other != spec
        {
            return Err(CompareError::DifferentLinks(format!("link {name} is {spec} in base and {other} in new")));
        }
    }
    let common = b.keys().filter(|k| n.contains_key(*k)).count();
    if common == 0 && !b.is_empty() && !n.is_empty() {
        return Err(CompareError::DifferentLinks(format!(
            "base: {}; new: {}",
            describe_networks(&b),
            describe_networks(&n)
        )));
    }
    let only = |x: &BTreeMap<String, String>, y: &BTreeMap<String, String>| {
        x.keys().filter(|k| !y.contains_key(*k)).cloned().collect::<Vec<_>>()
    };
    let (only_base, only_new) = (only(&b, &n), only(&n, &b));
    if only_base.is_empty() && only_new.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    if !only_base.is_empty() {
        parts.push(format!("only in base: {}", only_base.join(", ")));
    }
    if !only_new.is_empty() {
        parts.push(format!("only in new: {}", only_new.join(", ")));
    }
    Ok(Some(format!(
        "different links ({}): their cells are removed or added, never compared across links",
        parts.join("; ")
    )))
}

/// Refuses a comparison that would judge nothing.
fn check_judgeable(base: &Results, new: &Results) -> Result<(), CompareError> {
    if base.cells.is_empty() && new.cells.is_empty() {
        // Files of instruction counts only (`wirebench instructions --out`).
        let counts = |r: &Results| r.instructions.as_ref().map(|i| i.counts.keys().cloned().collect::<BTreeSet<_>>());
        if let (Some(b), Some(n)) = (counts(base), counts(new))
            && b.intersection(&n).next().is_some()
        {
            return Ok(());
        }
        return Err(CompareError::NoCommonCells { base: 0, new: 0 });
    }
    if !base.cells.keys().any(|k| new.cells.contains_key(k)) {
        return Err(CompareError::NoCommonCells { base: base.cells.len(), new: new.cells.len() });
    }
    for (side, r) in [("base", base), ("new", new)] {
        if !r.cells.values().any(|c| c.status == CellStatus::Ok) {
            return Err(CompareError::NoOkCells { side, cells: r.cells.len() });
        }
    }
    Ok(())
}

/// A timing test waiting for the correction.
struct Pending {
    row: usize,
    welch: Welch,
}

/// Compares `base` with `new`.
pub fn compare(base: &Results, new: &Results, options: &Options) -> Result<Comparison, CompareError> {
    options.check()?;
    let globs = options.ignore.iter().map(|p| Glob::new(p)).collect::<Result<Vec<_>, _>>()?;
    let ignored = |key: &str, metric: &str| {
        let text = format!("{key}:{metric}");
        globs.iter().any(|g| g.matches(&text))
    };
    let mut warnings = Vec::new();
    if let Some(warning) = check_links(base, new)? {
        warnings.push(warning);
    }
    check_judgeable(base, new)?;

    let reference = machine(environments(base)[0]);
    let mut machine_diff: Vec<String> = Vec::new();
    for env in environments(base).into_iter().chain(environments(new)) {
        for d in differences(reference.clone(), machine(env)) {
            if !machine_diff.contains(&d) {
                machine_diff.push(d);
            }
        }
    }
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

    let threshold = options.threshold.ln_1p();
    let mut rows: Vec<Row> = Vec::new();
    let mut cell_tests: Vec<Pending> = Vec::new();
    // Cells whose timings are compared: both ok.
    let mut judged: Vec<(&Cell, &Cell)> = Vec::new();
    let keys: BTreeSet<&String> = base.cells.keys().chain(new.cells.keys()).collect();
    for key in keys {
        let (b, n) = match (base.cells.get(key), new.cells.get(key)) {
            (Some(b), Some(n)) => (b, n),
            (None, Some(_)) => {
                let v = if ignored(key, "cell") { Verdict::Ignored } else { Verdict::Added };
                rows.push(Row::new(key, "cell", Kind::Status, v));
                continue;
            }
            (Some(_), None) => {
                let v = if ignored(key, "cell") { Verdict::Ignored } else { Verdict::Removed };
                rows.push(Row::new(key, "cell", Kind::Status, v));
                continue;
            }
            (None, None) => continue,
        };
        if b.status == CellStatus::Ok && n.status != CellStatus::Ok {
            let v = if ignored(key, "status") { Verdict::Ignored } else { Verdict::Broken };
            rows.push(Row::new(key, "status", Kind::Status, v));
            continue;
        }
        if b.status != CellStatus::Ok || n.status != CellStatus::Ok {
            continue;
        }
        exact_rows(key, b, n, &ignored, &mut rows);
        judged.push((b, n));
        for metric in Metric::ALL {
            let source = replicates::common_source([b, n]);
            let logs = |c: &Cell| -> Vec<f64> {
                replicates::values_from(c, metric, source).into_iter().map(|(_, v)| metric.oriented_log(v)).collect()
            };
            let (bl, nl) = (logs(b), logs(n));
            let mut row = Row::new(key, metric.name(), Kind::Timing, Verdict::Inconclusive);
            row.higher_is_better = metric.higher_is_better();
            if !bl.is_empty() {
                row.base = Some(metric.from_oriented_log(stats::mean(&bl)));
            }
            if !nl.is_empty() {
                row.new = Some(metric.from_oriented_log(stats::mean(&nl)));
            }
            row.control = control(base, new, b, n, metric, options.alpha);
            if ignored(key, metric.name()) {
                row.verdict = Verdict::Ignored;
                if !bl.is_empty() && !nl.is_empty() {
                    row.ratio = Some((stats::mean(&nl) - stats::mean(&bl)).exp());
                }
                rows.push(row);
                continue;
            }
            if let Some(welch) = judge_timing(&mut row, &bl, &nl, None) {
                cell_tests.push(Pending { row: rows.len(), welch });
            }
            rows.push(row);
        }
    }

    // The all-cells rows go first (when there are cells at all: a file of
    // instruction counts alone has none).
    let mut tests: Vec<Pending> = Vec::new();
    let mut all: Vec<Row> = Vec::new();
    for metric in Metric::ALL.iter().copied().filter(|_| !judged.is_empty()) {
        let mut row = Row::new("*", metric.name(), Kind::Timing, Verdict::Inconclusive);
        row.higher_is_better = metric.higher_is_better();
        let cells: Vec<(&Cell, &Cell)> =
            judged.iter().copied().filter(|(b, _)| !ignored(&b.key, metric.name())).collect();
        if ignored("*", metric.name()) {
            row.verdict = Verdict::Ignored;
        } else if let Some((bg, ng)) = global_means(&cells, metric) {
            let (bg, ng) = (by_run(base, bg), by_run(new, ng));
            if let Some(welch) = judge_timing(&mut row, &bg, &ng, Some(options.single.global.of(metric))) {
                tests.push(Pending { row: all.len(), welch });
            }
        } else {
            row.judgement = Some(Judgement::NoData);
        }
        all.push(row);
    }
    let shift = all.len();
    let cell_tests: Vec<Pending> = cell_tests.into_iter().map(|p| Pending { row: p.row + shift, ..p }).collect();
    all.append(&mut rows);
    let mut rows = all;

    // Two families, each corrected on its own at half of alpha, so the
    // whole comparison's chance of a false verdict stays within alpha:
    // the all-cells rows (a handful of tests: the gate's view of a shift
    // of everything) and the cells (hundreds: a cell's own change). In one
    // family the few `*` tests would pay for the hundreds of cells.
    let families = [tests, cell_tests];
    let split = if families.iter().all(|f| !f.is_empty()) { 2.0 } else { 1.0 };
    for family in &families {
        decide(&mut rows, family, options.alpha / split, threshold, options);
    }

    let detectable = summarize_detectable(&rows);
    let unjudged = detectable.iter().map(|d| d.cells_by_rule).max().unwrap_or(0);
    if unjudged > 0 {
        let limits: Vec<String> = detectable
            .iter()
            .filter(|d| matches!(d.global_judgement, Some(Judgement::SingleReplicate { .. })))
            .filter_map(|d| {
                d.global.map(|g| format!("{} ({})", output::change_text(g, d.metric == "calls/s"), d.metric))
            })
            .collect();
        let global = if limits.is_empty() {
            String::new()
        } else {
            format!(
                "; the all-cells row (*) was judged by the single-replicate rule, which flags a shift of every cell of {} or more",
                limits.join(", ")
            )
        };
        warnings.push(format!(
            "{unjudged} cell{} had one replicate on a side, so {} not judged (one run a side moves single cells by \
             chance far beyond any change worth catching){global}; run both sides with `--passes 4` or more (or \
             merge several runs a side) to judge cells (docs/statistics.md says how small a change that detects)",
            if unjudged == 1 { "" } else { "s" },
            if unjudged == 1 { "it was" } else { "they were" },
        ));
    }

    instruction_rows(base, new, options, &ignored, &mut rows);
    Ok(Comparison { rows, warnings, detectable, options: options.clone(), base: describe(base), new: describe(new) })
}

/// Decides the timing tests of one family at level `alpha`, each
/// direction corrected on its own; intervals stay at the options' alpha.
fn decide(rows: &mut [Row], pending: &[Pending], alpha: f64, threshold: f64, options: &Options) {
    let worse: Vec<f64> = pending.iter().map(|p| p.welch.p_above(threshold)).collect();
    let better: Vec<f64> = pending.iter().map(|p| p.welch.p_below(threshold)).collect();
    let (worse, better) = (stats::correct(&worse, options.correction), stats::correct(&better, options.correction));
    let family = pending.len().max(1) as f64;
    for (j, p) in pending.iter().enumerate() {
        let row = &mut rows[p.row];
        let (lo, hi) = p.welch.interval(options.alpha);
        row.p_value = Some(if p.welch.difference >= 0.0 { worse[j] } else { better[j] });
        row.interval = Some((lo.exp(), hi.exp()));
        // A lone regression is tested at alpha / family by either
        // correction's first step, and must clear the interval too.
        let needed = p.welch.quantile(alpha / family).max(p.welch.quantile(options.alpha / 2.0));
        row.detectable = Some((threshold + needed * p.welch.standard_error).exp());
        row.verdict = if worse[j] < alpha && lo > threshold {
            Verdict::Regressed
        } else if better[j] < alpha && hi < -threshold {
            Verdict::Improved
        } else if lo >= -threshold && hi <= threshold {
            Verdict::Unchanged
        } else {
            Verdict::Inconclusive
        };
    }
}

/// Judges one timing row from its oriented logs: with two or more a side,
/// returns the Welch test for the correction to decide; otherwise applies
/// the single-replicate `ratio`, or with none leaves the row unjudged.
fn judge_timing(row: &mut Row, bl: &[f64], nl: &[f64], ratio: Option<f64>) -> Option<Welch> {
    if bl.is_empty() || nl.is_empty() {
        row.judgement = Some(Judgement::NoData);
        return None;
    }
    let d = stats::mean(nl) - stats::mean(bl);
    row.ratio = Some(d.exp());
    match Welch::of(bl, nl) {
        Some(welch) => {
            row.judgement = Some(Judgement::Replicates { base: bl.len(), new: nl.len(), df: welch.df });
            Some(welch)
        }
        None => {
            row.judgement = Some(Judgement::SingleReplicate { base: bl.len(), new: nl.len(), ratio });
            let ratio = ratio?;
            row.detectable = Some(ratio);
            row.verdict = if d >= ratio.ln() {
                Verdict::Regressed
            } else if d <= -ratio.ln() {
                Verdict::Improved
            } else {
                Verdict::Inconclusive
            };
            None
        }
    }
}

/// The all-cells row's replicates: `means` (one per sample group, in
/// group order) averaged within each run of `r`. Passes of one run share
/// that run's state (the server process, the machine's mood of those
/// seconds): idle same-build runs of the quick matrix, four passes each,
/// shifted every cell together by up to 12.5% from one run to the next,
/// well beyond the spread of their passes. So the shift of everything is
/// judged over runs (merged, and interleaved in time: the workflow's
/// procedure), and with one run a side by the fixed rule.
fn by_run(r: &Results, means: PerGroup) -> Vec<f64> {
    let mut runs: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (group, mean) in means {
        let run = r.replicates.iter().find(|x| x.group == group).map_or(r.run_id.as_str(), |x| x.run_id.as_str());
        runs.entry(run).or_default().push(mean);
    }
    runs.values().map(|v| stats::mean(v)).collect()
}

/// Per sample group, a value: `(group, value)` in group order.
type PerGroup = Vec<(u32, f64)>;

/// Per replicate (sample group) of each side, the mean over `cells` of
/// their oriented logs, over the cells that have a value in every
/// replicate of both sides (so each mean is over the same cells).
fn global_means(cells: &[(&Cell, &Cell)], metric: Metric) -> Option<(PerGroup, PerGroup)> {
    /// A cell's oriented logs by group, base and new.
    type ByGroup = (BTreeMap<u32, f64>, BTreeMap<u32, f64>);
    let per_cell: Vec<ByGroup> = cells
        .iter()
        .map(|(b, n)| {
            let source = replicates::common_source([*b, *n]);
            let logs = |c: &Cell| {
                replicates::values_from(c, metric, source)
                    .into_iter()
                    .map(|(g, v)| (g, metric.oriented_log(v)))
                    .collect()
            };
            (logs(b), logs(n))
        })
        .filter(|(b, n): &ByGroup| !b.is_empty() && !n.is_empty())
        .collect();
    let groups = |side: usize| -> BTreeSet<u32> {
        per_cell.iter().flat_map(|c| if side == 0 { c.0.keys() } else { c.1.keys() }).copied().collect()
    };
    let (bg, ng) = (groups(0), groups(1));
    let complete: Vec<&ByGroup> = per_cell
        .iter()
        .filter(|(b, n)| bg.iter().all(|g| b.contains_key(g)) && ng.iter().all(|g| n.contains_key(g)))
        .collect();
    if complete.is_empty() {
        return None;
    }
    // Every cell in `complete` has every group of both sides: the
    // lookups below cannot miss.
    let means = |groups: &BTreeSet<u32>, side: usize| -> PerGroup {
        groups
            .iter()
            .map(|g| {
                let values: Vec<f64> = complete.iter().map(|c| if side == 0 { c.0[g] } else { c.1[g] }).collect();
                (*g, stats::mean(&values))
            })
            .collect()
    };
    Some((means(&bg, 0), means(&ng, 1)))
}

/// How the cell's ratio to its raw baseline changed, pairing each
/// replicate with the baseline's replicate of the same group.
fn control(base: &Results, new: &Results, b: &Cell, n: &Cell, metric: Metric, alpha: f64) -> Option<Control> {
    let key = b.baseline.as_ref().filter(|k| n.baseline.as_ref() == Some(*k))?;
    let (bb, nb) = (base.cells.get(key)?, new.cells.get(key)?);
    if bb.status != CellStatus::Ok || nb.status != CellStatus::Ok {
        return None;
    }
    let source = replicates::common_source([b, n, bb, nb]);
    let paired = |cell: &Cell, baseline: &Cell| -> Vec<f64> {
        let floor: BTreeMap<u32, f64> = replicates::values_from(baseline, metric, source).into_iter().collect();
        replicates::values_from(cell, metric, source)
            .into_iter()
            .filter_map(|(g, v)| floor.get(&g).map(|f| metric.oriented_log(v) - metric.oriented_log(*f)))
            .collect()
    };
    let (bo, no) = (paired(b, bb), paired(n, nb));
    if bo.is_empty() || no.is_empty() {
        return None;
    }
    let ratio = (stats::mean(&no) - stats::mean(&bo)).exp();
    let interval = Welch::of(&bo, &no).map(|w| {
        let (lo, hi) = w.interval(alpha);
        (lo.exp(), hi.exp())
    });
    Some(Control { baseline: key.clone(), ratio, interval })
}

fn summarize_detectable(rows: &[Row]) -> Vec<Detectable> {
    Metric::ALL
        .iter()
        .map(|metric| {
            let name = metric.name();
            let timing = || rows.iter().filter(move |r| r.kind == Kind::Timing && r.metric == name);
            let global = timing().find(|r| r.key == "*");
            let cells: Vec<&Row> = timing().filter(|r| r.key != "*").collect();
            let mut by_replicates: Vec<f64> = cells
                .iter()
                .filter(|r| matches!(r.judgement, Some(Judgement::Replicates { .. })))
                .filter_map(|r| r.detectable)
                .collect();
            let cells_by_rule =
                cells.iter().filter(|r| matches!(r.judgement, Some(Judgement::SingleReplicate { .. }))).count();
            let largest_move = cells
                .iter()
                .filter(|r| r.verdict != Verdict::Ignored)
                .filter_map(|r| r.ratio.map(|x| (r.key.clone(), x)))
                .max_by(|a, b| a.1.ln().abs().total_cmp(&b.1.ln().abs()));
            Detectable {
                metric: name,
                global: global.and_then(|r| r.detectable),
                global_judgement: global.and_then(|r| r.judgement),
                cells_by_replicates: by_replicates.len(),
                cell_median: (!by_replicates.is_empty()).then(|| stats::median(&mut by_replicates)),
                cells_by_rule,
                largest_move,
            }
        })
        .collect()
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
        let mut row = Row::new(key, metric, Kind::Exact, verdict);
        row.base = Some(bv as f64);
        row.new = Some(nv as f64);
        row.ratio = (bv > 0).then(|| nv as f64 / bv as f64);
        rows.push(row);
    }
}

/// Every key of either file's instruction `counts`, whatever its shape
/// (codec operations and whole calls alike), and of its whole calls'
/// `syscalls`, judged by the instruction threshold.
fn instruction_rows(
    base: &Results,
    new: &Results,
    options: &Options,
    ignored: &impl Fn(&str, &str) -> bool,
    rows: &mut Vec<Row>,
) {
    // Instruction counts, then system calls per call.
    let values = |r: &Results| -> [BTreeMap<String, f64>; 2] {
        match &r.instructions {
            Some(i) => [i.counts.iter().map(|(k, v)| (k.clone(), *v as f64)).collect(), i.syscalls.clone()],
            None => Default::default(),
        }
    };
    for ((metric, b), n) in ["instructions", "syscalls"].into_iter().zip(values(base)).zip(values(new)) {
        let keys: BTreeSet<&String> = b.keys().chain(n.keys()).collect();
        for key in keys {
            let (bv, nv) = (b.get(key).copied(), n.get(key).copied());
            let ratio = match (bv, nv) {
                (Some(b), Some(n)) if b > 0.0 => Some(n / b),
                // No system calls on either side is no change; from none
                // to some is any change at all.
                (Some(_), Some(n)) => Some(if n == 0.0 { 1.0 } else { f64::INFINITY }),
                _ => None,
            };
            let t = options.instructions_threshold;
            let verdict = match (bv, nv, ratio) {
                _ if ignored(key, metric) => Verdict::Ignored,
                (None, Some(_), _) => Verdict::Added,
                (Some(_), None, _) => Verdict::Removed,
                (_, _, Some(r)) if r > 1.0 + t => Verdict::Regressed,
                (_, _, Some(r)) if r < 1.0 - t => Verdict::Improved,
                _ => Verdict::Unchanged,
            };
            let mut row = Row::new(key, metric, Kind::Instructions, verdict);
            row.base = bv;
            row.new = nv;
            row.ratio = ratio.filter(|r| r.is_finite());
            rows.push(row);
        }
    }
}
