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

/// One line about a cell.
pub fn describe(cell: &Cell) -> String {
    match (cell.status, &cell.metrics) {
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
/// the lowest load, the stock gRPC reference, and the highest throughput
/// at the highest load; then the cell counts.
pub fn summary(results: &Results) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let ok = |c: &&Cell| c.status == CellStatus::Ok && c.metrics.is_some();
    let networked = |c: &&Cell| c.format != "raw" && c.transport != "inproc";
    // Natural order: multiply, echo by size, digest by size.
    let mut workloads: Vec<&str> = results.cells.values().map(|c| c.workload.as_str()).collect();
    workloads.sort_by_key(|w| w.parse::<wirebench_formats::Workload>().ok());
    workloads.dedup();
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:<30} {:>10} {:>7} {:>12} {:<30}",
        "workload", "best p50", "cell (lowest load)", "grpc p50", "vs grpc", "best calls/s", "cell (highest load)"
    );
    for w in workloads {
        let cells: Vec<&Cell> =
            results.cells.values().filter(|c| c.workload == w).filter(ok).filter(networked).collect();
        let min_load = cells.iter().map(|c| c.load.in_flight).min().unwrap_or(1);
        let max_load = cells.iter().map(|c| c.load.in_flight).max().unwrap_or(1);
        let p50 = |c: &Cell| c.metrics.as_ref().map_or(u64::MAX, |m| m.latency.p50);
        let best = cells.iter().filter(|c| c.load.in_flight == min_load).min_by_key(|c| p50(c));
        let grpc = cells.iter().find(|c| c.load.in_flight == min_load && c.transport == "grpc");
        let fastest = cells.iter().filter(|c| c.load.in_flight == max_load).max_by(|a, b| {
            let t = |c: &Cell| c.metrics.as_ref().map_or(0.0, |m| m.calls_per_sec);
            t(a).total_cmp(&t(b))
        });
        let short = |c: Option<&&Cell>| {
            c.map(|c| format!("{}/{}/{}", c.format, c.transport, c.load.in_flight)).unwrap_or_default()
        };
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:<30} {:>10} {:>7} {:>12} {:<30}",
            w,
            best.map(|c| human_ns(p50(c))).unwrap_or_else(|| "-".into()),
            short(best),
            grpc.map(|c| human_ns(p50(c))).unwrap_or_else(|| "-".into()),
            match (best, grpc) {
                (Some(b), Some(g)) => format!("{:.2}x", p50(b) as f64 / p50(g) as f64),
                _ => "-".into(),
            },
            fastest
                .and_then(|c| c.metrics.as_ref())
                .map(|m| format!("{:.0}", m.calls_per_sec))
                .unwrap_or_else(|| "-".into()),
            short(fastest),
        );
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

    #[test]
    fn human_units() {
        assert_eq!(human_ns(812), "812ns");
        assert_eq!(human_ns(23_450), "23.4µs");
        assert_eq!(human_ns(1_200_000), "1.20ms");
        assert_eq!(human_ns(2_500_000_000), "2.50s");
    }
}
