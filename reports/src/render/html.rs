//! `index.html`: one self-contained page. The static parts (header,
//! verdicts, warnings, status, properties, environment) are rendered here;
//! the heat maps, charts and the table of all cells are drawn by the
//! page's own script from the data embedded in it. Nothing is fetched:
//! a Content-Security-Policy blocks every request.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::histogram;
use crate::model::{Cell, CellStatus, Results};

use super::RenderError;
use super::markdown::environment_line;
use super::text::{self, html as esc};
use super::view::{self, View};
use crate::replicates::{self, Fastest, IntervalSource, Metric};

const TEMPLATE: &str = include_str!("../../assets/report.html");
const STYLE: &str = include_str!("../../assets/report.css");
const SCRIPT: &str = include_str!("../../assets/report.js");

/// The page's Content-Security-Policy: inline script and style only,
/// images only from data: URLs, nothing fetched.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

/// The latency spectrum's points, as "nines" (-log10(1 - q)): 50%, then
/// every tenth of a nine from 0.4 (60.2%) to 4 (99.99%).
fn spectrum_nines() -> Vec<f64> {
    let mut nines = vec![std::f64::consts::LOG10_2];
    nines.extend((4..=40).map(|i| f64::from(i) / 10.0));
    nines
}

/// The quantile for a number of nines, rounded so it prints short.
fn quantile(nines: f64) -> f64 {
    let q = 1.0 - 10f64.powf(-nines);
    (q * 1e9).round() / 1e9
}

/// The HTML report of a run.
pub fn html(results: &Results) -> Result<String, RenderError> {
    let view = View::new(results);
    let data = page_data(&view);
    // `<` only occurs inside JSON strings, where \u003c means the same;
    // this keeps `</script>` and `<!--` out of the script element.
    let json = serde_json::to_string(&data)?.replace('<', "\\u003c");
    let title = format!("wirebench: {} matrix, {}", results.config.matrix, results.environment.started_at);
    Ok(fill(
        TEMPLATE,
        &[
            ("{{CSP}}", CSP),
            ("{{TITLE}}", &esc(&title)),
            ("{{STYLE}}", STYLE),
            ("{{HEADER}}", &header(&view)),
            ("{{BANNER}}", &banner(&view)),
            ("{{STATUS}}", &status(&view)),
            ("{{PROPERTIES}}", &properties(&view)),
            ("{{ENVIRONMENT}}", &environment(results)),
            ("{{DATA}}", &json),
            ("{{SCRIPT}}", SCRIPT),
        ],
    ))
}

/// Replaces each marker in `template` once, left to right; inserted text
/// is never searched for markers.
fn fill(template: &str, parts: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + parts.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    for (marker, value) in parts {
        match rest.find(marker) {
            Some(at) => {
                out.push_str(&rest[..at]);
                out.push_str(value);
                rest = &rest[at + marker.len()..];
            }
            None => debug_assert!(false, "template lacks {marker}"),
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------
// The data the script draws from.

#[derive(Serialize)]
struct PageData<'a> {
    formats: Vec<&'a str>,
    transports: Vec<&'a str>,
    workloads: Vec<WorkloadData<'a>>,
    loads: Vec<LoadData<'a>>,
    colors: BTreeMap<&'a str, &'static str>,
    transport_colors: BTreeMap<&'a str, &'static str>,
    /// The quantiles of every cell's `spectrum`.
    quantiles: Vec<f64>,
    /// `format/transport` of the default reference cell.
    reference: String,
    interrupted: bool,
    /// Keys the run planned and did not record (shown as "not run"; other
    /// absent cells are outside the matrix).
    missing: Vec<String>,
    /// Per workload, load and timing metric: the fastest networked cell,
    /// or the cells tied for fastest (`replicates::fastest`).
    winners: Vec<WinnerData<'a>>,
    cells: Vec<CellData<'a>>,
}

#[derive(Serialize)]
struct WinnerData<'a> {
    workload: &'a str,
    load: &'a str,
    /// `p50`, `p99` or `rate` (the page's metric ids).
    metric: &'static str,
    /// The fastest cell's key, or every tied cell's, best first.
    cells: Vec<&'a str>,
    tied: bool,
    /// How the intervals were made.
    how: String,
}

/// A cell's replicates of one metric: each replicate's value and the
/// 95% interval of their geometric mean.
#[derive(Serialize)]
struct ReplicateData {
    v: Vec<f64>,
    lo: f64,
    hi: f64,
}

#[derive(Serialize)]
struct ReplicatesData {
    p50: Option<ReplicateData>,
    p99: Option<ReplicateData>,
    rate: Option<ReplicateData>,
}

#[derive(Serialize)]
struct WorkloadData<'a> {
    id: &'a str,
    kind: &'a str,
    size: Option<u64>,
}

#[derive(Serialize)]
struct LoadData<'a> {
    label: &'a str,
    model: &'a str,
    in_flight: usize,
    connections: usize,
    rate: Option<f64>,
}

#[derive(Serialize)]
struct CellData<'a> {
    key: &'a str,
    workload: &'a str,
    format: &'a str,
    transport: &'a str,
    load: &'a str,
    status: CellStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_shape: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<&'a crate::model::Metrics>,
    /// Sub-window samples.
    nsamples: usize,
    /// Replicates (sample groups with calls).
    nrep: usize,
    /// With two or more replicates: their values and intervals.
    #[serde(skip_serializing_if = "Option::is_none")]
    reps: Option<ReplicatesData>,
    /// Latency at `quantiles` (ns), cut where less than one call lies
    /// beyond; corrected for open-loop cells.
    #[serde(skip_serializing_if = "Option::is_none")]
    spectrum: Option<Vec<u64>>,
    /// Open loop: the uncorrected spectrum.
    #[serde(skip_serializing_if = "Option::is_none")]
    spectrum_uncorrected: Option<Vec<u64>>,
    /// Why a histogram could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    histogram_error: Option<String>,
}

fn page_data<'a>(view: &View<'a>) -> PageData<'a> {
    let results = view.results;
    let nines = spectrum_nines();
    let quantiles: Vec<f64> = nines.iter().map(|&n| quantile(n)).collect();
    let cells = decode_all(&view.cells_in_order(), &quantiles);
    let mut formats: Vec<&str> = view.formats.clone();
    formats.push(view::RAW);
    let colors = formats.iter().map(|f| (*f, view::format_color(f))).collect();
    let transport_colors = view.transports.iter().map(|t| (*t, view::transport_color(t))).collect();
    PageData {
        formats: view.formats.clone(),
        transports: view.transports.clone(),
        workloads: view.workloads.iter().map(|w| WorkloadData { id: w.id, kind: w.kind, size: w.size }).collect(),
        loads: view
            .loads
            .iter()
            .map(|l| LoadData {
                label: l.label,
                model: &l.load.model,
                in_flight: l.load.in_flight,
                connections: l.load.connections,
                rate: l.load.rate,
            })
            .collect(),
        colors,
        transport_colors,
        quantiles,
        reference: format!("{}/{}", view::REFERENCE.0, view::REFERENCE.1),
        interrupted: results.interrupted,
        missing: view.missing(),
        winners: winners(view),
        cells,
    }
}

/// Cell data with spectra, decoding histograms on every core available
/// (they are the slow part).
fn decode_all<'a>(cells: &[&'a Cell], quantiles: &[f64]) -> Vec<CellData<'a>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = cells.len().div_ceil(threads).max(16);
    std::thread::scope(|scope| {
        let handles: Vec<_> = cells
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|c| cell_data(c, quantiles)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn cell_data<'a>(cell: &'a Cell, quantiles: &[f64]) -> CellData<'a> {
    let mut histogram_error = None;
    let mut spectrum_of = |text: Option<&String>| match text.map(|t| spectrum(t, quantiles)) {
        Some(Ok(points)) => Some(points),
        Some(Err(e)) => {
            histogram_error = Some(e);
            None
        }
        None => None,
    };
    let spectrum = spectrum_of(cell.histogram.as_ref());
    let spectrum_uncorrected = spectrum_of(cell.histogram_uncorrected.as_ref());
    CellData {
        key: &cell.key,
        workload: &cell.workload,
        format: &cell.format,
        transport: &cell.transport,
        load: view::load_label(cell),
        status: cell.status,
        error: cell.error.as_deref(),
        baseline: cell.baseline.as_deref(),
        raw_shape: cell.raw_shape,
        metrics: cell.metrics.as_ref(),
        nsamples: cell.samples.len(),
        nrep: replicates::values(cell, Metric::P50).len(),
        reps: replicates_data(cell),
        spectrum,
        spectrum_uncorrected,
        histogram_error,
    }
}

fn replicates_data(cell: &Cell) -> Option<ReplicatesData> {
    let rule = view::rule();
    let of = |metric: Metric| {
        let values = replicates::values(cell, metric);
        let e = replicates::Estimate::of(cell, metric, &rule)?;
        (e.source == IntervalSource::Replicates).then(|| ReplicateData {
            v: values.iter().map(|(_, v)| round_sig(*v)).collect(),
            lo: round_sig(e.best.min(e.worst)),
            hi: round_sig(e.best.max(e.worst)),
        })
    };
    let data = ReplicatesData { p50: of(Metric::P50), p99: of(Metric::P99), rate: of(Metric::CallsPerSec) };
    (data.p50.is_some() || data.p99.is_some() || data.rate.is_some()).then_some(data)
}

fn winners<'a>(view: &View<'a>) -> Vec<WinnerData<'a>> {
    let mut out = Vec::new();
    for w in &view.workloads {
        for l in view.loads_of(w.id) {
            for (metric, id) in [(Metric::P50, "p50"), (Metric::P99, "p99"), (Metric::CallsPerSec, "rate")] {
                let fastest = view::fastest_at(view, w.id, l.label, metric);
                if matches!(fastest, Fastest::Nothing) {
                    continue;
                }
                out.push(WinnerData {
                    workload: w.id,
                    load: l.label,
                    metric: id,
                    cells: fastest.cells().iter().map(|c| c.key.as_str()).collect(),
                    tied: matches!(fastest, Fastest::Tied(_)),
                    how: view::source_text(&fastest, metric).replace('`', ""),
                });
            }
        }
    }
    out
}

/// Latency (ns) at each quantile, stopping where less than one recorded
/// call lies beyond the quantile (the curve's resolution ends there).
fn spectrum(encoded: &str, quantiles: &[f64]) -> Result<Vec<u64>, String> {
    let h = histogram::decode(encoded)?;
    let n = h.len() as f64;
    if h.is_empty() {
        return Ok(Vec::new());
    }
    let usable: Vec<f64> = quantiles.iter().copied().take_while(|q| (1.0 - q) * n >= 1.0 - 1e-9).collect();
    Ok(h.value_at_quantiles(usable).collect())
}

/// Four significant digits are plenty for a rate on a chart.
fn round_sig(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return if v.is_finite() { v } else { 0.0 };
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

// ---------------------------------------------------------------------
// The static parts.

fn header(view: &View<'_>) -> String {
    let r = view.results;
    let e = &r.environment;
    let mut out = String::new();
    let _ = write!(out, "<h1>wirebench <span class=\"sub\">{} matrix</span></h1>", esc(&r.config.matrix));
    let finished = if e.finished_at.is_empty() { "unfinished".to_owned() } else { esc(&e.finished_at) };
    let commit = if e.git_commit.is_empty() { "unknown" } else { text::short_commit(&e.git_commit) };
    let _ = write!(
        out,
        "<p class=\"meta\">Run <b>{}</b> → {finished} · commit <code title=\"{}\">{}</code>{} · {} cells · {} {}</p>",
        esc(if e.started_at.is_empty() { "-" } else { &e.started_at }),
        esc(&e.git_commit),
        esc(commit),
        if e.git_dirty { " <span class=\"warn\">(uncommitted changes)</span>" } else { "" },
        r.cells.len(),
        esc(&r.tool.name),
        esc(&r.tool.version),
    );
    let verdicts = view.verdicts();
    if !verdicts.is_empty() {
        out.push_str("<ul class=\"verdicts\">");
        for v in verdicts {
            let _ = write!(out, "<li><b>{}</b>: ", esc(v.workload));
            out.push_str(&verdict_html(&v));
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
    out
}

fn swatch_cell(c: &Cell) -> String {
    format!(
        "<span class=\"swatch\" style=\"background:{}\"></span><b>{}</b> over <b>{}</b>",
        view::format_color(&c.format),
        esc(&c.format),
        esc(&c.transport)
    )
}

fn p50_text(c: &Cell) -> String {
    view::estimated_p50(c).map_or("-".into(), |v| text::ns(v.round() as u64))
}

fn verdict_html(v: &view::Verdict<'_>) -> String {
    let load = v.load.unwrap_or("-");
    let how = esc(&view::source_text(&v.fastest, Metric::P50).replace('`', ""));
    let reference = |best: &Cell| match (v.reference, v.ratio_of(best)) {
        (Some(r), Some(ratio)) => format!(
            ": <b class=\"{}\">{}</b> the stock gRPC reference ({})",
            if ratio <= 1.0 { "good" } else { "bad" },
            text::ratio(ratio),
            p50_text(r)
        ),
        _ => " <span class=\"muted\">(no gRPC reference cell measured at this load)</span>".to_owned(),
    };
    match &v.fastest {
        Fastest::One { best, runner_up } => {
            let mut out = format!(
                "fastest networked cell {}, p50 <b>{}</b> at {}",
                swatch_cell(best.0),
                p50_text(best.0),
                esc(load)
            );
            if let Some((r, _)) = runner_up {
                let _ = write!(
                    out,
                    ", ahead of the runner-up {}/{} ({}) <span class=\"muted\">({how})</span>",
                    esc(&r.format),
                    esc(&r.transport),
                    p50_text(r)
                );
            }
            out.push_str(&reference(best.0));
            out
        }
        Fastest::Tied(cells) => {
            const SHOWN: usize = 4;
            let names: Vec<String> =
                cells.iter().take(SHOWN).map(|(c, _)| format!("{} ({})", swatch_cell(c), p50_text(c))).collect();
            let more = if cells.len() > SHOWN { format!(" and {} more", cells.len() - SHOWN) } else { String::new() };
            format!(
                "no single fastest cell at {}: {}{more} are tied within noise <span class=\"muted\">({how})</span>{}",
                esc(load),
                names.join(", "),
                reference(cells[0].0)
            )
        }
        Fastest::Nothing => format!("<span class=\"warn\">no networked cell measured at {}</span>", esc(load)),
    }
}

fn banner(view: &View<'_>) -> String {
    let r = view.results;
    let mut out = String::new();
    let failed = view.count(CellStatus::Failed);
    if r.interrupted && r.cells.is_empty() {
        out.push_str(
            "<div class=\"banner bad\" role=\"alert\"><b>⚠ The run was interrupted</b> before its first cell \
             finished.</div>",
        );
    } else if r.interrupted {
        let missing = view.missing().len();
        let _ = write!(
            out,
            "<div class=\"banner bad\" role=\"alert\"><b>⚠ The run was interrupted.</b> Only {} cells were recorded; \
             {missing} cells of the matrix are missing and shown as <span class=\"sym\">∅ not run</span>. \
             <a href=\"#status\">Status</a></div>",
            r.cells.len()
        );
    }
    if failed > 0 {
        let first: Vec<String> = view
            .cells_in_order()
            .into_iter()
            .filter(|c| c.status == CellStatus::Failed)
            .take(3)
            .map(|c| format!("<code>{}</code>", esc(&c.key)))
            .collect();
        let _ = write!(
            out,
            "<div class=\"banner bad\" role=\"alert\"><b>✗ {failed} cell{} failed</b>: {}{}. \
             <a href=\"#status\">Failures and reasons</a></div>",
            if failed == 1 { "" } else { "s" },
            first.join(", "),
            if failed > 3 { ", …" } else { "" }
        );
    }
    if r.cells.is_empty() {
        out.push_str(
            "<div class=\"banner bad\" role=\"alert\"><b>This results file has no cells</b>: nothing was measured, \
             so there is nothing to chart. The run's environment and configuration are below.</div>",
        );
    }
    out
}

fn status_class(status: CellStatus) -> &'static str {
    match status {
        CellStatus::Ok => "ok",
        CellStatus::Failed => "failed",
        CellStatus::Unsupported => "unsupported",
    }
}

fn status(view: &View<'_>) -> String {
    let r = view.results;
    let mut out = String::new();
    let missing = view.missing();
    let _ = write!(
        out,
        "<p class=\"counts\"><b>{}</b> cells: <span class=\"badge ok\">{} ok</span> \
         <span class=\"badge failed\">{} failed</span> <span class=\"badge unsupported\">{} unsupported</span> \
         <span class=\"badge missing\">{} not run</span>{}</p>",
        r.cells.len(),
        view.count(CellStatus::Ok),
        view.count(CellStatus::Failed),
        view.count(CellStatus::Unsupported),
        missing.len(),
        if r.interrupted { " <span class=\"warn\">(interrupted)</span>" } else { "" }
    );
    out.push_str(
        "<p class=\"legend\">Every cell, per workload: rows formats (and the raw baseline), columns transports, \
         one mark per load: <span class=\"mark ok\">✓</span> ok, <span class=\"mark failed\">✗</span> failed, \
         <span class=\"mark unsupported\">–</span> unsupported, <span class=\"mark missing\">∅</span> not run. \
         Hover for the key and the reason.</p><div class=\"status-grids\">",
    );
    for w in &view.workloads {
        let loads = view.loads_of(w.id);
        let mut rows: Vec<&str> = view.formats.clone();
        rows.push(view::RAW);
        let _ = write!(out, "<table class=\"status-grid\"><caption>{}</caption>", esc(w.id));
        family_header(&mut out, view, 1);
        out.push_str("<tr><th></th>");
        for t in &view.transports {
            let _ = write!(out, "<th>{}</th>", esc(t));
        }
        out.push_str("</tr>");
        for f in rows {
            let _ = write!(out, "<tr><th>{}</th>", esc(f));
            for t in &view.transports {
                out.push_str("<td>");
                for l in &loads {
                    match view.cell(w.id, f, t, l.label) {
                        Some(c) => {
                            let (sym, why) = match c.status {
                                CellStatus::Ok => ("✓", String::new()),
                                CellStatus::Failed => ("✗", format!(": {}", c.error.as_deref().unwrap_or("failed"))),
                                CellStatus::Unsupported => {
                                    ("–", format!(": {}", c.error.as_deref().unwrap_or("unsupported")))
                                }
                            };
                            let _ = write!(
                                out,
                                "<span class=\"mark {}\" title=\"{} {}{}\">{sym}</span>",
                                status_class(c.status),
                                esc(&c.key),
                                status_class(c.status),
                                esc(&why)
                            );
                        }
                        None if f == view::RAW => {}
                        None if !view.planned(&format!("{}/{f}/{t}/{}", w.id, l.label)) => {}
                        None => {
                            let _ = write!(
                                out,
                                "<span class=\"mark missing\" title=\"{}/{f}/{t}/{}: not run\">∅</span>",
                                esc(w.id),
                                esc(l.label)
                            );
                        }
                    }
                }
                out.push_str("</td>");
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
    }
    out.push_str("</div>");

    let cells = view.cells_in_order();
    let failed: Vec<&&Cell> = cells.iter().filter(|c| c.status == CellStatus::Failed).collect();
    if !failed.is_empty() {
        out.push_str("<h3 id=\"failed\">Failed cells</h3><table class=\"list\"><tr><th>cell</th><th>reason</th><th>errors</th><th>timeouts</th><th>wrong replies</th></tr>");
        for c in failed {
            let m = c.metrics.as_ref();
            let _ = write!(
                out,
                "<tr class=\"failed\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.key),
                esc(c.error.as_deref().unwrap_or("no reason given")),
                m.map_or("-".into(), |m| m.errors.to_string()),
                m.map_or("-".into(), |m| m.timeouts.to_string()),
                m.map_or("-".into(), |m| m.wrong_replies.to_string()),
            );
        }
        out.push_str("</table>");
    }
    let unsupported: Vec<&&Cell> = cells.iter().filter(|c| c.status == CellStatus::Unsupported).collect();
    if !unsupported.is_empty() {
        let _ = write!(
            out,
            "<details><summary>Unsupported cells ({}), with reasons</summary><table class=\"list\"><tr><th>cell</th><th>reason</th></tr>",
            unsupported.len()
        );
        for c in unsupported {
            let _ = write!(
                out,
                "<tr class=\"unsupported\"><td><code>{}</code></td><td>{}</td></tr>",
                esc(&c.key),
                esc(c.error.as_deref().unwrap_or("no reason given"))
            );
        }
        out.push_str("</table></details>");
    }
    if !missing.is_empty() {
        let _ = write!(
            out,
            "<details{}><summary>Cells not run ({}): {}</summary><p class=\"keys\">",
            if r.interrupted { " open" } else { "" },
            missing.len(),
            if r.interrupted {
                "the run was interrupted before them"
            } else {
                "the matrix implies them, the file lacks them"
            }
        );
        for key in &missing {
            let _ = write!(out, "<code>{}</code> ", esc(key));
        }
        out.push_str("</p></details>");
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn properties(view: &View<'_>) -> String {
    let r = view.results;
    let mut out = String::new();
    out.push_str("<h3>Formats</h3>");
    if r.formats.is_empty() {
        out.push_str("<p class=\"muted\">The results file lists no format properties.</p>");
    } else {
        out.push_str(
            "<div class=\"scroll\"><table class=\"list props\"><tr><th>format</th><th>library</th><th>self-describing</th>\
             <th>schema</th><th>zero-copy</th><th>validation</th><th>unvalidated access</th><th>layout</th></tr>",
        );
        let mut names: Vec<&String> = r.formats.keys().collect();
        names.sort_by(|a, b| view::cmp_formats(a, b));
        for name in names {
            let f = &r.formats[name];
            let _ = write!(
                out,
                "<tr><th><span class=\"swatch\" style=\"background:{}\"></span>{}</th><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                view::format_color(name),
                esc(name),
                esc(&f.library),
                yes_no(f.self_describing),
                esc(&f.schema),
                yes_no(f.zero_copy),
                esc(&f.validation),
                yes_no(f.unvalidated_access),
                esc(&f.layout)
            );
        }
        out.push_str("</table></div>");
    }
    out.push_str("<h3>Transports</h3>");
    if r.transports.is_empty() {
        out.push_str("<p class=\"muted\">The results file lists no transport properties.</p>");
    } else {
        out.push_str(
            "<p class=\"legend\">Own transports carry every format with wirebench's framing; frameworks are \
             stock RPC systems with their own client, server, framing and codec, each carrying one format; \
             brokers relay wirebench's frames through a real message broker.</p>\
             <div class=\"scroll\"><table class=\"list props\"><tr><th>transport</th><th>format</th><th>library</th>\
             <th>security</th><th>delivery</th><th>multiplexing</th><th>framing</th><th>bytes on the wire</th></tr>",
        );
        let mut names: Vec<&String> = r.transports.keys().collect();
        let rank = |n: &str| view::FAMILIES.iter().position(|f| *f == view::family_of(r, n));
        names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| view::cmp_transports(a, b)));
        let mut family = "";
        for name in names {
            let t = &r.transports[name];
            let this = view::family_of(r, name);
            if this != family {
                family = this;
                let _ = write!(out, "<tr class=\"group\"><th colspan=\"8\">{}</th></tr>", esc(family_title(family)));
            }
            let _ = write!(
                out,
                "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                esc(t.format.as_deref().unwrap_or("any")),
                esc(&t.library),
                esc(&t.security),
                esc(&t.delivery),
                esc(&t.multiplexing),
                esc(&t.framing),
                esc(&t.wire_bytes)
            );
        }
        out.push_str("</table></div>");
    }
    out
}

/// The plural heading of a family.
fn family_title(family: &str) -> &str {
    match family {
        "transport" => "own transports",
        "framework" => "frameworks",
        "broker" => "brokers",
        other => other,
    }
}

/// A header row spanning each family's columns, after `lead` empty cells;
/// nothing when every column is an own transport.
fn family_header(out: &mut String, view: &View<'_>, lead: usize) {
    if view.transports.iter().all(|t| view.family(t) == "transport") {
        return;
    }
    out.push_str("<tr class=\"families\">");
    for _ in 0..lead {
        out.push_str("<th></th>");
    }
    let mut i = 0;
    while i < view.transports.len() {
        let family = view.family(view.transports[i]);
        let span = view.transports[i..].iter().take_while(|t| view.family(t) == family).count();
        let _ = write!(out, "<th colspan=\"{span}\">{}</th>", esc(family_title(family)));
        i += span;
    }
    out.push_str("</tr>");
}

fn kv(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table class=\"kv\">");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</table>");
}

fn environment(r: &Results) -> String {
    let e = &r.environment;
    let c = &r.config;
    let mut out = String::new();
    let _ = write!(out, "<p>{}</p><div class=\"cols\"><div><h3>Machine and build</h3>", esc(&environment_line(r)));
    kv(
        &mut out,
        &[
            ("CPU", e.cpu_model.clone()),
            ("cores", e.cores.to_string()),
            ("OS", e.os.clone()),
            ("kernel", e.kernel.clone()),
            ("host", e.hostname.clone()),
            ("rustc", e.rustc.clone()),
            ("build", e.build_profile.clone()),
            ("commit", format!("{}{}", e.git_commit, if e.git_dirty { " (uncommitted changes)" } else { "" })),
            ("started", e.started_at.clone()),
            ("finished", if e.finished_at.is_empty() { "unfinished".into() } else { e.finished_at.clone() }),
            ("command", e.command.join(" ")),
            ("written by", format!("{} {} (schema version {})", r.tool.name, r.tool.version, r.schema_version)),
        ],
    );
    out.push_str("</div><div><h3>Run configuration</h3>");
    kv(
        &mut out,
        &[
            ("matrix", c.matrix.clone()),
            ("quick", yes_no(c.quick).into()),
            ("measured window per cell", format!("{} ms", c.duration_ms)),
            ("warm-up per cell", format!("{} ms", c.warmup_ms)),
            ("samples per cell", c.samples.to_string()),
            ("seed", c.seed.to_string()),
            ("server", c.server.clone()),
            ("CPU pinning", c.pinning.clone()),
            ("client threads", c.client_threads.to_string()),
            ("per-call timeout", format!("{} ms", c.timeout_ms)),
            ("udp datagram limit", format!("{} B", c.max_datagram)),
            ("http2 over TLS", yes_no(c.tls).into()),
            ("interrupted", yes_no(r.interrupted).into()),
        ],
    );
    out.push_str("</div><div><h3>Library versions</h3>");
    let versions: Vec<(&str, String)> = e.crate_versions.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    if versions.is_empty() {
        out.push_str("<p class=\"muted\">none recorded</p>");
    } else {
        kv(&mut out, &versions);
    }
    out.push_str("</div></div>");
    if let Some(instructions) = &r.instructions {
        let _ = write!(
            out,
            "<h3>Instruction counts</h3><p>Measured with {}: exact and repeatable, per call.</p>",
            esc(&instructions.tool)
        );
        let rows: Vec<(&str, String)> =
            instructions.counts.iter().map(|(k, v)| (k.as_str(), format!("{v} instructions"))).collect();
        kv(&mut out, &rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_markers_once_and_never_inside_values() {
        let out = fill("a{{X}}b{{Y}}c", &[("{{X}}", "{{Y}}"), ("{{Y}}", "2")]);
        assert_eq!(out, "a{{Y}}b2c");
    }

    #[test]
    fn spectrum_matches_single_quantile_lookups() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 0..50_000u64 {
            h.record(1_000 + (v * v) % 9_000_017).unwrap();
        }
        let encoded = histogram::encode(&h).unwrap();
        let qs: Vec<f64> = spectrum_nines().into_iter().map(quantile).collect();
        let points = spectrum(&encoded, &qs).unwrap();
        // 50,000 calls resolve up to 99.998%: every point but none past it.
        assert_eq!(points.len(), qs.len());
        for (q, v) in qs.iter().zip(&points) {
            assert_eq!(*v, h.value_at_quantile(*q), "q={q}");
        }
        let mut small = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in 1..=100u64 {
            small.record(v * 1000).unwrap();
        }
        let points = spectrum(&histogram::encode(&small).unwrap(), &qs).unwrap();
        assert!(points.len() < qs.len() && points.len() > 10, "{}", points.len());
        assert!(spectrum("garbage", &qs).is_err());
        assert_eq!(quantile(std::f64::consts::LOG10_2), 0.5);
        assert_eq!(quantile(4.0), 0.9999);
    }

    #[test]
    fn rounds_to_four_significant_digits() {
        assert_eq!(round_sig(123_456.7), 123_500.0);
        assert_eq!(round_sig(0.0), 0.0);
        assert_eq!(round_sig(f64::NAN), 0.0);
    }
}
