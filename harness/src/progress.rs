//! What a run prints while it runs and when it ends: a progress bar on a
//! terminal, one line per cell otherwise, nothing with `--quiet`; then a
//! compact summary. Progress goes to stderr, so stdout carries only the
//! summary and the paths of what the run wrote; a closed stderr is
//! ignored, never fatal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use wirebench_reports::model::{Cell, CellStatus, Results};

/// Progress of a run.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    done: u64,
    total: u64,
}

impl Progress {
    /// Progress over `total` cells.
    pub fn new(total: u64, quiet: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:32}] {pos}/{len} cells, ETA {eta}  {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, plain: !quiet && !terminal, done: 0, total }
    }

    /// A cell starts.
    pub fn start(&mut self, key: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(key.to_owned());
        }
    }

    /// A cell finished.
    pub fn finish(&mut self, cell: &Cell) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if cell.status == CellStatus::Failed {
                bar.println(format!("failed: {}: {}", cell.key, cell.error.as_deref().unwrap_or("")));
            }
        } else if self.plain {
            crate::output::stderr(&format!("[{}/{}] {}", self.done, self.total, describe(cell)));
        }
    }

    /// The run ended.
    pub fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// One line about a cell: a mode cell with its own figures.
pub fn describe(cell: &Cell) -> String {
    match (cell.status, &cell.metrics) {
        (CellStatus::Ok, Some(m)) if m.oneway.is_some() || m.stream.is_some() || m.pubsub.is_some() => {
            format!("{} ok: {}", cell.key, mode_figures(m))
        }
        (CellStatus::Ok, Some(m)) => format!(
            "{} ok: p50 {} p99 {} {:.0} calls/s",
            cell.key,
            human_ns(m.latency.p50),
            human_ns(m.latency.p99),
            m.calls_per_sec
        ),
        (CellStatus::Unsupported, _) => format!("{} unsupported: {}", cell.key, cell.error.as_deref().unwrap_or("")),
        _ => format!("{} FAILED: {}", cell.key, cell.error.as_deref().unwrap_or("")),
    }
}

/// A mode cell's own figures in a few words.
fn mode_figures(m: &wirebench_reports::model::Metrics) -> String {
    if let Some(o) = &m.oneway {
        let latency = o.latency.map_or_else(
            || "send-to-receipt unavailable".into(),
            |l| format!("send-to-receipt p50 {} p99 {}", human_ns(l.p50), human_ns(l.p99)),
        );
        return format!(
            "sent {:.0}/s delivered {:.0}/s lost {} of {}, {latency}",
            o.sent_per_sec, o.delivered_per_sec, o.lost, o.sent
        );
    }
    if let Some(s) = &m.stream {
        return format!(
            "first reply p50 {}, last reply p50 {} p99 {}, {:.0} replies/s ({} per request)",
            human_ns(s.first_reply.p50),
            human_ns(s.last_reply.p50),
            human_ns(s.last_reply.p99),
            s.replies_per_sec,
            s.replies_per_stream
        );
    }
    if let Some(p) = &m.pubsub {
        return format!(
            "delivery p50 {} p99 {}, {:.0} deliveries/s to {} subscribers, lost {} of {}",
            human_ns(p.latency.p50),
            human_ns(p.latency.p99),
            p.deliveries_per_sec,
            p.subscribers,
            p.lost,
            p.expected
        );
    }
    String::new()
}

/// Nanoseconds for people: `812ns`, `23.4µs`, `1.20ms`, `2.5s`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// The end-of-run summary: per workload, the fastest networked cell at
/// the lowest load by p50 (with the stock gRPC reference) and at the
/// highest load by calls/s, each named only when its interval keeps it
/// apart from every other cell (`wirebench_reports::replicates::fastest`,
/// the same as the reports); otherwise the cells tied within noise. Then
/// the cell counts.
pub fn summary(results: &Results) -> String {
    use std::fmt::Write;
    use wirebench_reports::replicates::{Estimate, Fastest, IntervalSource, Metric, SingleReplicateRule, fastest};
    let rule = SingleReplicateRule::default();
    let mut out = String::new();
    let ok = |c: &&Cell| c.status == CellStatus::Ok && c.metrics.is_some();
    // Request-response cells: the other modes' figures are not calls.
    let networked = |c: &&Cell| c.format != "raw" && c.transport != "inproc" && c.mode.is_rr();
    // Natural order: multiply, echo by size, digest by size.
    let mut workloads: Vec<&str> = results.cells.values().map(|c| c.workload.as_str()).collect();
    workloads.sort_by_key(|w| w.parse::<wirebench_formats::Workload>().ok());
    workloads.dedup();
    let value = |c: &Cell, metric: Metric| {
        Estimate::of(c, metric, &rule).map_or_else(
            || "-".to_owned(),
            |e| match metric {
                Metric::CallsPerSec => format!("{:.0} calls/s", e.value),
                _ => human_ns(e.value.round() as u64),
            },
        )
    };
    let name = |c: &Cell, metric: Metric| format!("{}/{} {}", c.format, c.transport, value(c, metric));
    let describe = |f: &Fastest<'_>, metric: Metric| match f {
        Fastest::Nothing => "no networked cell measured".to_owned(),
        Fastest::One { best, .. } => name(best.0, metric),
        Fastest::Tied(cells) => {
            let shown: Vec<String> = cells.iter().take(3).map(|(c, _)| name(c, metric)).collect();
            let more = if cells.len() > 3 { format!(", +{} more", cells.len() - 3) } else { String::new() };
            format!("tied within noise: {}{more}", shown.join(", "))
        }
    };
    let mut sources = std::collections::BTreeSet::new();
    for w in workloads {
        let cells: Vec<&Cell> =
            results.cells.values().filter(|c| c.workload == w).filter(ok).filter(networked).collect();
        let min_load = cells.iter().map(|c| c.load.in_flight).min().unwrap_or(1);
        let max_load = cells.iter().map(|c| c.load.in_flight).max().unwrap_or(1);
        let at = |n: usize| cells.iter().copied().filter(move |c| c.load.in_flight == n);
        let latency = fastest(at(min_load), Metric::P50, &rule);
        let throughput = fastest(at(max_load), Metric::CallsPerSec, &rule);
        for f in [&latency, &throughput] {
            if !matches!(f, Fastest::Nothing) {
                sources.insert(f.source());
            }
        }
        let grpc = at(min_load).find(|c| c.transport == "grpc");
        let reference = match (grpc, latency.cells().first()) {
            (Some(g), Some(best)) => {
                let e = |c: &Cell| Estimate::of(c, Metric::P50, &rule).map(|e| e.value);
                match (e(best), e(g)) {
                    (Some(b), Some(g)) if g > 0.0 => format!("; grpc {} ({:.2}x)", human_ns(g.round() as u64), b / g),
                    _ => String::new(),
                }
            }
            _ => String::new(),
        };
        let _ = writeln!(out, "{w:<12} p50 at {min_load} in flight: {}{reference}", describe(&latency, Metric::P50));
        let _ =
            writeln!(out, "{:<12} calls/s at {max_load} in flight: {}", "", describe(&throughput, Metric::CallsPerSec));
    }
    let how = if sources.contains(&None) || sources.len() > 1 {
        "95% intervals over replicates where a cell has two or more, else the single-replicate rule".to_owned()
    } else if sources.contains(&Some(IntervalSource::Replicates)) {
        "95% intervals over each cell's replicates (passes)".to_owned()
    } else {
        format!(
            "one replicate each: cells within {:.1}x (p50) or {:.1}x (calls/s) cannot be told apart; --passes 4 or \
             more narrows it",
            rule.cell.p50, rule.cell.calls_per_sec
        )
    };
    if !sources.is_empty() {
        let _ = writeln!(out, "(a fastest cell is named only when its interval is apart from every other's: {how})");
    }
    let count = |s| results.cells.values().filter(|c| c.status == s).count();
    let _ = writeln!(
        out,
        "\n{} cells: {} ok, {} failed, {} unsupported{}",
        results.cells.len(),
        count(CellStatus::Ok),
        count(CellStatus::Failed),
        count(CellStatus::Unsupported),
        if results.interrupted { " (interrupted: the run did not finish)" } else { "" }
    );
    for cell in results.cells.values().filter(|c| c.status == CellStatus::Failed) {
        let _ = writeln!(out, "  failed: {}: {}", cell.key, cell.error.as_deref().unwrap_or(""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Results {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/data/quick-slice.json");
        Results::read(&path).unwrap()
    }

    #[test]
    fn the_summary_names_a_fastest_cell_only_when_it_is_apart() {
        let results = fixture();
        let text = summary(&results);
        assert!(text.contains("multiply     p50 at 1 in flight: tied within noise: "), "{text}");
        assert!(text.contains("one replicate each: cells within 1.8x (p50)"), "{text}");
        // Three passes that agree, and every other networked multiply cell
        // three times slower than bincode/udp: it is named.
        let mut passes = results.clone();
        for cell in passes.cells.values_mut() {
            let slow = cell.workload == "multiply"
                && cell.format != "raw"
                && cell.transport != "inproc"
                && cell.key != "multiply/bincode/udp/c1";
            let one = std::mem::take(&mut cell.samples);
            for g in 0..3u32 {
                cell.samples.extend(one.iter().map(|s| {
                    let f = if slow { 3.0 } else { 1.0 } * (1.0 + 0.01 * f64::from(g));
                    wirebench_reports::model::Sample {
                        group: g,
                        p50_ns: (s.p50_ns as f64 * f) as u64,
                        p99_ns: (s.p99_ns as f64 * f) as u64,
                        calls_per_sec: s.calls_per_sec / f,
                        ..*s
                    }
                }));
            }
        }
        let text = summary(&passes);
        assert!(text.contains("multiply     p50 at 1 in flight: bincode/udp "), "{text}");
        assert!(text.contains("; grpc "), "{text}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(812), "812ns");
        assert_eq!(human_ns(23_450), "23.4µs");
        assert_eq!(human_ns(1_200_000), "1.20ms");
        assert_eq!(human_ns(2_500_000_000), "2.50s");
    }
}
