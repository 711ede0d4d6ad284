//! `summary.md`: the key tables in GitHub Markdown, small enough for a PR
//! comment or `$GITHUB_STEP_SUMMARY`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{Cell, CellStatus, Results};

use super::text::{self, md_cell};
use super::view::{self, View};

/// At most this many failed cells are listed one per line.
const MAX_FAILED_LISTED: usize = 60;
/// At most this many missing cells are listed.
const MAX_MISSING_LISTED: usize = 30;

/// The Markdown summary of a run.
pub fn markdown(results: &Results) -> String {
    let view = View::new(results);
    let env = &results.environment;
    let mut out = String::new();
    let _ = writeln!(out, "## wirebench results: {} matrix\n", md_cell(&results.config.matrix));
    let dirty = if env.git_dirty { " (uncommitted changes)" } else { "" };
    let _ = writeln!(
        out,
        "{} cells, run {} → {}, commit `{}`{dirty}, {} {}.\n",
        results.cells.len(),
        md_cell(or_dash(&env.started_at)),
        md_cell(if env.finished_at.is_empty() { "unfinished" } else { &env.finished_at }),
        md_cell(text::short_commit(or_dash(&env.git_commit))),
        md_cell(&results.tool.name),
        md_cell(&results.tool.version),
    );

    // Warnings first.
    let failed = view.count(CellStatus::Failed);
    if results.interrupted {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> The run was interrupted: cells it did not reach are missing from these tables.\n"
        );
    }
    if failed > 0 {
        let _ = writeln!(out, "> [!CAUTION]\n> {failed} cell(s) failed: see [Failed cells](#failed-cells).\n");
    }
    if results.cells.is_empty() {
        let _ = writeln!(out, "_The results file has no cells: nothing was measured._\n");
    }

    // Verdicts.
    let verdicts = view.verdicts();
    if !verdicts.is_empty() {
        let _ = writeln!(out, "**Fastest networked cell per workload (lowest load) vs the stock gRPC reference:**\n");
        for v in &verdicts {
            let _ = writeln!(out, "- {}", verdict_line(v));
        }
        out.push('\n');
    }

    // Per workload: p50 at the lowest load, calls/s at the highest.
    for w in &view.workloads {
        let _ = writeln!(out, "### {}\n", md_cell(w.id));
        if let Some(low) = view.lowest_load(w.id) {
            let _ = writeln!(
                out,
                "p50 latency at {} (lowest load), lower is better; **bold** = best networked cell:\n",
                low.label
            );
            table(&mut out, &view, w.id, low.label, Metric::P50);
        }
        if let Some(high) = view.highest_load(w.id) {
            let _ = writeln!(
                out,
                "calls/s at {} (highest load), higher is better; **bold** = best networked cell:\n",
                high.label
            );
            table(&mut out, &view, w.id, high.label, Metric::Rate);
        }
    }

    // What did not measure.
    let failed_cells: Vec<&Cell> =
        view.cells_in_order().into_iter().filter(|c| c.status == CellStatus::Failed).collect();
    if !failed_cells.is_empty() {
        let _ = writeln!(out, "### Failed cells\n");
        for c in failed_cells.iter().take(MAX_FAILED_LISTED) {
            let _ =
                writeln!(out, "- `{}`: {}", md_cell(&c.key), md_cell(c.error.as_deref().unwrap_or("no reason given")));
        }
        if failed_cells.len() > MAX_FAILED_LISTED {
            let _ = writeln!(out, "- … and {} more (see results.csv)", failed_cells.len() - MAX_FAILED_LISTED);
        }
        out.push('\n');
    }
    // Unsupported cells mostly repeat a reason: group them by format,
    // transport and reason (with sizes taken out of the reason).
    let mut unsupported: BTreeMap<(usize, usize, String), (String, usize)> = BTreeMap::new();
    for c in view.cells_in_order().into_iter().filter(|c| c.status == CellStatus::Unsupported) {
        let f = view.formats.iter().position(|f| *f == c.format).unwrap_or(usize::MAX);
        let t = view.transports.iter().position(|t| *t == c.transport).unwrap_or(usize::MAX);
        let reason = c.error.clone().unwrap_or_else(|| "no reason given".into());
        let entry =
            unsupported.entry((f, t, format!("{}/{}", c.format, c.transport))).or_insert_with(|| (reason.clone(), 0));
        entry.1 += 1;
        if entry.0 != reason {
            entry.0 = generalize(&entry.0, &reason);
        }
    }
    if !unsupported.is_empty() {
        let _ = writeln!(out, "### Unsupported cells\n");
        for ((_, _, pair), (reason, n)) in &unsupported {
            let _ = writeln!(
                out,
                "- `{}` ({n} cell{}): {}",
                md_cell(pair),
                if *n == 1 { "" } else { "s" },
                md_cell(reason)
            );
        }
        out.push('\n');
    }
    let missing = view.missing();
    if !missing.is_empty() {
        let why = if results.interrupted { "the run was interrupted before them" } else { "not in the results file" };
        let _ = writeln!(
            out,
            "### Missing cells\n\n{} cell(s) that the matrix implies were not run ({why}):\n",
            missing.len()
        );
        for key in missing.iter().take(MAX_MISSING_LISTED) {
            let _ = writeln!(out, "- `{}`", md_cell(key));
        }
        if missing.len() > MAX_MISSING_LISTED {
            let _ = writeln!(out, "- … and {} more", missing.len() - MAX_MISSING_LISTED);
        }
        out.push('\n');
    }

    let _ = writeln!(out, "<sub>{}</sub>", md_cell(&environment_line(results)));
    out
}

/// One line about where and how the run happened.
pub(crate) fn environment_line(results: &Results) -> String {
    let e = &results.environment;
    let c = &results.config;
    let mut parts = vec![
        format!("{} ({} cores)", or_dash(&e.cpu_model), e.cores),
        format!("{}, kernel {}", or_dash(&e.os), or_dash(&e.kernel)),
        or_dash(&e.rustc).to_owned(),
        or_dash(&e.build_profile).to_owned(),
        format!("server {}", or_dash(&c.server)),
        format!("pinning {}", or_dash(&c.pinning)),
        format!("{} ms per cell in {} samples after {} ms warm-up", c.duration_ms, c.samples, c.warmup_ms),
    ];
    if c.tls {
        parts.push("TLS".into());
    }
    parts.push(format!("{} {}", results.tool.name, results.tool.version));
    parts.join(" · ")
}

fn or_dash(s: &str) -> &str {
    if s.trim().is_empty() { "-" } else { s }
}

/// Two reasons that differ, as one: the common words, with `…` for the
/// rest.
fn generalize(a: &str, b: &str) -> String {
    let aw: Vec<&str> = a.split(' ').collect();
    let bw: Vec<&str> = b.split(' ').collect();
    if aw.len() != bw.len() {
        return if a.len() <= b.len() { a.to_owned() } else { b.to_owned() };
    }
    aw.iter().zip(&bw).map(|(x, y)| if x == y { *x } else { "…" }).collect::<Vec<_>>().join(" ")
}

fn verdict_line(v: &view::Verdict<'_>) -> String {
    let load = v.load.unwrap_or("-");
    match (v.best, v.best.and_then(|c| c.metrics.as_ref())) {
        (Some(best), Some(m)) => {
            let mut line = format!(
                "**{}**: `{}` over `{}`, p50 {} at {load}",
                md_cell(v.workload),
                md_cell(&best.format),
                md_cell(&best.transport),
                text::ns(m.latency.p50)
            );
            match (v.reference.and_then(|r| r.metrics.as_ref()), v.ratio()) {
                (Some(r), Some(ratio)) => {
                    let _ =
                        write!(line, ": {} the stock gRPC reference ({})", text::ratio(ratio), text::ns(r.latency.p50));
                }
                _ => line.push_str(" (no gRPC reference cell to compare with)"),
            }
            line
        }
        _ => format!("**{}**: no networked cell measured at {load}", md_cell(v.workload)),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    P50,
    Rate,
}

fn table(out: &mut String, view: &View<'_>, workload: &str, load: &str, metric: Metric) {
    let value = |c: &Cell| {
        view::ok_metrics(c).map(|m| match metric {
            Metric::P50 => m.latency.p50 as f64,
            Metric::Rate => -m.calls_per_sec,
        })
    };
    // The best networked cell, bolded.
    let best = view
        .formats
        .iter()
        .flat_map(|f| view.transports.iter().map(move |t| (*f, *t)))
        .filter_map(|(f, t)| view.cell(workload, f, t, load))
        .filter(|c| view::networked(c))
        .filter_map(|c| value(c).map(|v| (v, c.key.as_str())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k);
    let _ = write!(out, "| format |");
    for t in &view.transports {
        let _ = write!(out, " {} |", md_cell(t));
    }
    let _ = write!(out, "\n|---|");
    for _ in &view.transports {
        out.push_str("---:|");
    }
    out.push('\n');
    for f in &view.formats {
        let _ = write!(out, "| {} |", md_cell(f));
        for t in &view.transports {
            let text = match view.cell(workload, f, t, load) {
                None => "not run".to_owned(),
                Some(c) => match (c.status, view::ok_metrics(c)) {
                    (CellStatus::Ok, Some(m)) => {
                        let v = match metric {
                            Metric::P50 => text::ns(m.latency.p50),
                            Metric::Rate => text::rate(m.calls_per_sec),
                        };
                        if best == Some(c.key.as_str()) { format!("**{v}**") } else { v }
                    }
                    (CellStatus::Unsupported, _) => "n/a".to_owned(),
                    (CellStatus::Failed, _) => "FAILED".to_owned(),
                    (CellStatus::Ok, None) => "no data".to_owned(),
                },
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_generalize() {
        assert_eq!(
            generalize("a 18118-byte request exceeds the limit", "a 23647-byte request exceeds the limit"),
            "a … request exceeds the limit"
        );
    }
}
