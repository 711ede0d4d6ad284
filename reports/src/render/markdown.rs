//! `summary.md`: the key tables in GitHub Markdown, small enough for a PR
//! comment or `$GITHUB_STEP_SUMMARY`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::{Cell, CellStatus, Results};

use super::text::{self, md_cell};
use super::view::{self, View};
use crate::replicates::{self, Fastest};

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
        let _ = writeln!(
            out,
            "**Fastest networked cell per workload (lowest load, by p50) vs the stock gRPC reference:** a cell is named \
             only when its interval is apart from every other cell's; otherwise the cells tied within noise are.\n"
        );
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
                "p50 latency at {} (lowest load), lower is better; **bold** = the fastest networked cell, or every cell \
                 tied for fastest within noise:\n",
                low.label
            );
            table(&mut out, &view, w.id, low.label, Metric::P50);
        }
        if let Some(high) = view.highest_load(w.id) {
            let _ = writeln!(
                out,
                "calls/s at {} (highest load), higher is better; **bold** = the fastest networked cell, or every cell \
                 tied for fastest within noise:\n",
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

/// `` `format/transport` 53.1µs `` for a named cell.
fn named(c: &Cell, value: String) -> String {
    format!("`{}/{}` {value}", md_cell(&c.format), md_cell(&c.transport))
}

fn verdict_line(v: &view::Verdict<'_>) -> String {
    let load = v.load.unwrap_or("-");
    let p50 = |c: &Cell| view::estimated_p50(c).map_or("-".into(), |v| text::ns(v.round() as u64));
    let reference = |line: &mut String, best: &Cell| match (v.reference, v.ratio_of(best)) {
        (Some(r), Some(ratio)) => {
            let _ = write!(line, ": {} the stock gRPC reference ({})", text::ratio(ratio), p50(r));
        }
        _ => line.push_str(" (no gRPC reference cell to compare with)"),
    };
    let how = view::source_text(&v.fastest, replicates::Metric::P50);
    match &v.fastest {
        Fastest::One { best, runner_up } => {
            let c = best.0;
            let mut line = format!(
                "**{}**: `{}` over `{}`, p50 {} at {load}",
                md_cell(v.workload),
                md_cell(&c.format),
                md_cell(&c.transport),
                p50(c)
            );
            if let Some((r, _)) = runner_up {
                let _ = write!(line, ", ahead of the runner-up {} ({how})", named(r, p50(r)));
            }
            reference(&mut line, c);
            line
        }
        Fastest::Tied(cells) => {
            const SHOWN: usize = 4;
            let names: Vec<String> = cells.iter().take(SHOWN).map(|(c, _)| named(c, p50(c))).collect();
            let more = if cells.len() > SHOWN { format!(" and {} more", cells.len() - SHOWN) } else { String::new() };
            let mut line = format!(
                "**{}**: no single fastest cell at {load}: {}{more} are tied within noise ({how})",
                md_cell(v.workload),
                names.join(", ")
            );
            reference(&mut line, cells[0].0);
            line
        }
        Fastest::Nothing => format!("**{}**: no networked cell measured at {load}", md_cell(v.workload)),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    P50,
    Rate,
}

fn table(out: &mut String, view: &View<'_>, workload: &str, load: &str, metric: Metric) {
    // The fastest networked cell, or every cell tied for fastest, bolded.
    let fastest = view::fastest_at(
        view,
        workload,
        load,
        match metric {
            Metric::P50 => replicates::Metric::P50,
            Metric::Rate => replicates::Metric::CallsPerSec,
        },
    );
    let bold: Vec<&str> = fastest.cells().iter().map(|c| c.key.as_str()).collect();
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
                None if !view.planned(&format!("{workload}/{f}/{t}/{load}")) => "·".to_owned(),
                None => "not run".to_owned(),
                Some(c) => match (c.status, view::ok_metrics(c)) {
                    (CellStatus::Ok, Some(m)) => {
                        let v = match metric {
                            Metric::P50 => text::ns(m.latency.p50),
                            Metric::Rate => text::rate(m.calls_per_sec),
                        };
                        if bold.contains(&c.key.as_str()) { format!("**{v}**") } else { v }
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
