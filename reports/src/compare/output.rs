//! A comparison for people: GitHub Markdown (the PR comment and job
//! summary) and a self-contained HTML page with every row.

use std::fmt::Write as _;

use super::{Comparison, Detectable, Judgement, Kind, Row, Verdict};

/// An oriented ratio as the change of the metric itself: `+80.0%` for a
/// latency, `-44.4%` for calls/s (the same ratio, seen from the rate).
/// Ratios of ten or more read as factors (`×12`, `÷12`), and beyond
/// ten thousand as "beyond": with very few replicates the smallest
/// detectable change can be astronomically large, and a number with fifty
/// digits says nothing more.
pub(crate) fn change_text(oriented: f64, higher_is_better: bool) -> String {
    let (up, down) = if higher_is_better { ("÷", "×") } else { ("×", "÷") };
    if oriented.is_nan() {
        return "-".into();
    }
    if oriented > 1e4 {
        return format!("beyond {up}10000");
    }
    if oriented < 1e-4 {
        return format!("beyond {down}10000");
    }
    if oriented >= 10.0 {
        return format!("{up}{oriented:.0}");
    }
    if oriented <= 0.1 {
        return format!("{down}{:.0}", 1.0 / oriented);
    }
    let shown = if higher_is_better { 1.0 / oriented } else { oriented };
    format!("{:+.1}%", (shown - 1.0) * 100.0)
}

fn value(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if metric == "p50" || metric == "p99" => human_ns(v),
        Some(v) if metric == "syscalls" => format!("{v:.2}"),
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

fn interval_text(interval: Option<(f64, f64)>, higher_is_better: bool) -> String {
    match interval {
        None => String::new(),
        Some((lo, hi)) => {
            let (a, b) = if higher_is_better { (hi, lo) } else { (lo, hi) };
            format!(" [{}, {}]", change_text(a, higher_is_better), change_text(b, higher_is_better))
        }
    }
}

fn change(row: &Row) -> String {
    let Some(ratio) = row.ratio else { return "-".into() };
    if row.kind != Kind::Timing {
        return format!("{:+.1}%", (ratio - 1.0) * 100.0);
    }
    change_text(ratio, row.higher_is_better) + &interval_text(row.interval, row.higher_is_better)
}

fn control(row: &Row) -> String {
    match &row.control {
        None => "-".into(),
        Some(c) => change_text(c.ratio, row.higher_is_better) + &interval_text(c.interval, row.higher_is_better),
    }
}

fn judged_by(r: &Row) -> String {
    // The all-cells row's replicates are runs (compare's `by_run`).
    let unit = if r.key == "*" { "runs" } else { "replicates" };
    match r.judgement {
        Some(Judgement::Replicates { base, new, df }) => {
            format!("Welch's t, {base} + {new} {unit} ({df:.1} df)")
        }
        Some(Judgement::SingleReplicate { base, new, ratio: Some(ratio) }) => {
            format!("single-replicate rule ({base} + {new} {unit}): flags ×{ratio:.2} or more")
        }
        Some(Judgement::SingleReplicate { base, new, ratio: None }) => {
            format!("not judged: {base} + {new} replicates (a cell needs two or more a side)")
        }
        Some(Judgement::NoData) => "not judged: a side has no replicate".into(),
        None => "-".into(),
    }
}

fn p(row: &Row) -> String {
    row.p_value.map_or("-".into(), |p| if p < 0.001 { format!("{p:.1e}") } else { format!("{p:.3}") })
}

fn headline(c: &Comparison) -> &'static str {
    if c.regressed() {
        "❌ **Regression**"
    } else if c.changed() {
        "⚠️ **Exact metrics changed**"
    } else {
        "✅ **No regression**"
    }
}

fn counts(c: &Comparison) -> String {
    let counts: Vec<String> =
        Verdict::ALL.iter().filter(|v| c.count(**v) > 0).map(|v| format!("{} {v}", c.count(*v))).collect();
    counts.join(" · ")
}

fn detectable_cell(d: &Detectable) -> String {
    let hib = d.metric == "calls/s";
    match (d.cell_median, d.cells_by_rule) {
        (Some(m), 0) => format!("{} (median of {} cells)", change_text(m, hib), d.cells_by_replicates),
        (Some(m), n) => format!(
            "{} (median of {} cells); {n} cells with one replicate not judged",
            change_text(m, hib),
            d.cells_by_replicates,
        ),
        (None, 0) => "-".into(),
        (None, n) => format!("not judged ({n} cells with one replicate a side: use --passes)"),
    }
}

fn detectable_global(d: &Detectable) -> String {
    match d.global {
        None => "-".into(),
        Some(g) => {
            let how = match d.global_judgement {
                Some(Judgement::Replicates { .. }) => "over replicates",
                Some(Judgement::SingleReplicate { .. }) => "single-replicate rule",
                _ => "",
            };
            format!("{} ({how})", change_text(g, d.metric == "calls/s"))
        }
    }
}

fn largest(d: &Detectable) -> String {
    d.largest_move.as_ref().map_or("-".into(), |(k, r)| format!("`{k}` {}", change_text(*r, d.metric == "calls/s")))
}

fn method(c: &Comparison) -> String {
    format!(
        "Timings: each cell's replicates (passes and merged runs; a replicate's value is its whole window's \
         figure), never other cells. Two or more a side: Welch's t on log values, one-sided against the {}% \
         threshold, {} correction within two families (the `*` rows; {} cell tests) at half of alpha {} each, {}% \
         intervals. One replicate on a side: cells \
         are not judged; the `*` row is, by the single-replicate rule (it flags at ×{:.2} p50, ×{:.2} p99, ×{:.2} \
         calls/s). `vs raw`: the change of the cell's ratio to its raw baseline of the same pass. Instructions and system \
         calls per call: threshold {}%. Exact metrics: any change. Details: docs/statistics.md.",
        c.options.threshold * 100.0,
        c.options.correction.name(),
        c.rows.iter().filter(|r| r.key != "*" && matches!(r.judgement, Some(Judgement::Replicates { .. }))).count(),
        c.options.alpha,
        ((1.0 - c.options.alpha) * 100.0).round(),
        c.options.single.global.p50,
        c.options.single.global.p99,
        c.options.single.global.calls_per_sec,
        c.options.instructions_threshold * 100.0
    )
}

fn notable(c: &Comparison) -> Vec<&Row> {
    c.rows
        .iter()
        .filter(|r| r.key != "*")
        .filter(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Broken | Verdict::Changed | Verdict::Improved))
        .collect()
}

/// The comparison in GitHub Markdown: the headline, the all-cells rows,
/// what could have been detected, the rows that need attention.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## wirebench: {}\n", headline(c));
    let _ = writeln!(out, "base: {}  \nnew: {}\n", c.base, c.new);
    for w in &c.warnings {
        let _ = writeln!(out, "> ⚠️ {w}");
    }
    if !c.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "{}\n", counts(c));
    let globals: Vec<&Row> = c.rows.iter().filter(|r| r.key == "*").collect();
    if !globals.is_empty() {
        let _ = writeln!(out, "**All cells (`*`)**, the mean move of every cell both sides measured:\n");
        let _ = writeln!(out, "| metric | verdict | change [CI] | p (corrected) | judged by |");
        let _ = writeln!(out, "|---|---|---:|---:|---|");
        for r in globals {
            let _ = writeln!(out, "| {} | {} | {} | {} | {} |", r.metric, r.verdict, change(r), p(r), judged_by(r));
        }
        out.push('\n');
    }
    if !c.detectable.is_empty() {
        let _ = writeln!(
            out,
            "**Smallest change this comparison could flag** (one change alone; latency up, calls/s down):\n"
        );
        let _ = writeln!(out, "| metric | all cells (`*`) | one cell | largest cell move |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for d in &c.detectable {
            let _ =
                writeln!(out, "| {} | {} | {} | {} |", d.metric, detectable_global(d), detectable_cell(d), largest(d));
        }
        out.push('\n');
    }
    let notable = notable(c);
    if !notable.is_empty() {
        let _ = writeln!(out, "| verdict | cell | metric | base | new | change [CI] | vs raw [CI] | p (corrected) |");
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
        for r in notable.iter().take(200) {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                r.verdict,
                r.key,
                r.metric,
                value(r.metric, r.base),
                value(r.metric, r.new),
                change(r),
                control(r),
                p(r),
            );
        }
        if notable.len() > 200 {
            let _ = writeln!(out, "\n{} more rows in the HTML comparison.", notable.len() - 200);
        }
    }
    let _ = writeln!(out, "\n{}", method(c));
    out
}

/// The comparison as a self-contained HTML page: every row, filterable.
pub fn html(c: &Comparison) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut rows = String::new();
    for r in &c.rows {
        let _ = writeln!(
            rows,
            "<tr class=\"{v}\"><td>{v}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.key),
            escape(r.metric),
            escape(&value(r.metric, r.base)),
            escape(&value(r.metric, r.new)),
            escape(&change(r)),
            escape(&control(r)),
            escape(&p(r)),
            escape(&r.detectable.map_or("-".into(), |d| change_text(d, r.higher_is_better))),
            escape(&judged_by(r)),
            v = r.verdict.name()
        );
    }
    let warnings: String = c.warnings.iter().map(|w| format!("<p class=\"warning\">{}</p>", escape(w))).collect();
    let mut detect = String::new();
    for d in &c.detectable {
        let _ = write!(
            detect,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(d.metric),
            escape(&detectable_global(d)),
            escape(&detectable_cell(d)),
            escape(&largest(d).replace('`', ""))
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>wirebench comparison</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }} td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }}
tr.regressed td, tr.broken td {{ background: #fde2e2; }} tr.changed td {{ background: #fff3cd; }}
tr.improved td {{ background: #e2f5e2; }} .warning {{ background: #fff3cd; padding: 0.5em; }}
</style></head><body>
<h1>wirebench comparison: {headline}</h1>
<p>base: {base}<br>new: {new}</p>
{warnings}
<p>{counts}</p>
<h2>Smallest change this comparison could flag</h2>
<p>One change alone; latency up, calls/s down.</p>
<table id="detectable"><thead><tr><th>metric</th><th>all cells (*)</th><th>one cell</th><th>largest cell move</th></tr></thead>
<tbody>{detect}</tbody></table>
<h2>Every row</h2>
<p><input id="filter" placeholder="filter rows" size="40"></p>
<table id="rows"><thead><tr><th>verdict</th><th>cell</th><th>metric</th><th>base</th><th>new</th><th>change [CI]</th><th>vs raw [CI]</th><th>p (corrected)</th><th>would flag</th><th>judged by</th></tr></thead>
<tbody>
{rows}</tbody></table>
<p>{method}</p>
<script>
document.getElementById('filter').addEventListener('input', e => {{
  const q = e.target.value.toLowerCase();
  for (const tr of document.querySelectorAll('#rows tbody tr')) tr.style.display = tr.textContent.toLowerCase().includes(q) ? '' : 'none';
}});
</script>
</body></html>
"#,
        headline = escape(&headline(c).replace("**", "")),
        base = escape(&c.base),
        new = escape(&c.new),
        counts = escape(&counts(c)),
        method = escape(&method(c)),
    )
}

#[cfg(test)]
mod tests {
    use super::change_text;

    #[test]
    fn changes_read_as_percentages_then_factors() {
        assert_eq!(change_text(1.2, false), "+20.0%");
        assert_eq!(change_text(1.25, true), "-20.0%");
        assert_eq!(change_text(0.8, false), "-20.0%");
        assert_eq!(change_text(12.4, false), "×12");
        assert_eq!(change_text(12.4, true), "÷12");
        assert_eq!(change_text(0.05, false), "÷20");
        assert_eq!(change_text(f64::INFINITY, false), "beyond ×10000");
        assert_eq!(change_text(1e300, true), "beyond ÷10000");
    }
}
