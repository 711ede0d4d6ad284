//! The call modes' part of the reports: mode cells with their own figures
//! (a oneway cell has no call latency, a stream cell two, a pubsub cell one
//! per delivery), and "RPC or MQ?": each broker's request-reply cell beside
//! the direct tcp cell of the same format, workload and load, and the
//! throughput of oneway and pubsub beside request-response. Built from
//! whatever transports the results hold: a transport is a broker when the
//! file says its family is `broker`.

use std::fmt::Write as _;

use super::text::{self, html as esc, md_cell};
use super::view::{self, load_label};
use crate::model::{Cell, CellStatus, Metrics, Results};

/// A mode cell's figures, as words for one table cell each.
struct ModeRow<'a> {
    cell: &'a Cell,
    /// Throughput: what per second.
    rate: String,
    /// Latency: of what, p50 and p99.
    latency: String,
    /// Counts: sent and delivered, or replies, or deliveries and lost.
    counts: String,
}

fn mode_row(cell: &Cell) -> ModeRow<'_> {
    let empty = |cell| ModeRow { cell, rate: String::new(), latency: String::new(), counts: String::new() };
    let Some(m) = cell.metrics.as_ref().filter(|_| cell.status == CellStatus::Ok) else { return empty(cell) };
    if let Some(o) = &m.oneway {
        let latency = match o.latency {
            Some(l) => format!("send to receipt: p50 {}, p99 {}", text::ns(l.p50), text::ns(l.p99)),
            None => o.clock.clone(),
        };
        return ModeRow {
            cell,
            rate: format!("{} sent/s, {} delivered/s", text::rate(o.sent_per_sec), text::rate(o.delivered_per_sec)),
            latency,
            counts: format!("{} sent, {} delivered, {} lost", o.sent, o.delivered, o.lost),
        };
    }
    if let Some(s) = &m.stream {
        return ModeRow {
            cell,
            rate: format!("{} replies/s", text::rate(s.replies_per_sec)),
            latency: format!(
                "first reply: p50 {}, p99 {}; last reply: p50 {}, p99 {}",
                text::ns(s.first_reply.p50),
                text::ns(s.first_reply.p99),
                text::ns(s.last_reply.p50),
                text::ns(s.last_reply.p99)
            ),
            counts: format!("{} streams of {} replies", s.streams, s.replies_per_stream),
        };
    }
    if let Some(p) = &m.pubsub {
        return ModeRow {
            cell,
            rate: format!(
                "{} deliveries/s ({} messages/s)",
                text::rate(p.deliveries_per_sec),
                text::rate(p.messages_per_sec)
            ),
            latency: format!("publish to delivery: p50 {}, p99 {}", text::ns(p.latency.p50), text::ns(p.latency.p99)),
            counts: format!(
                "{} messages to {} subscribers: {} delivered, {} lost",
                p.messages, p.subscribers, p.deliveries, p.lost
            ),
        };
    }
    empty(cell)
}

fn status_word(cell: &Cell) -> &'static str {
    match cell.status {
        CellStatus::Ok => "ok",
        CellStatus::Failed => "failed",
        CellStatus::Unsupported => "unsupported",
    }
}

/// The mode cells in key order.
fn mode_cells(results: &Results) -> Vec<&Cell> {
    results.cells.values().filter(|c| !c.mode.is_rr()).collect()
}

/// A broker's request-reply cell beside the direct tcp cell.
#[derive(Debug)]
struct HopRow<'a> {
    broker: &'a Cell,
    direct: Option<&'a Cell>,
}

impl HopRow<'_> {
    /// The broker's p50 minus the direct cell's: the extra hop.
    fn extra_p50(&self) -> Option<i64> {
        let b = view::ok_metrics(self.broker)?.latency.p50 as i64;
        let d = view::ok_metrics(self.direct?)?.latency.p50 as i64;
        Some(b - d)
    }
}

fn is_broker(results: &Results, transport: &str) -> bool {
    results.transports.get(transport).is_some_and(|t| t.family == "broker")
}

fn hops(results: &Results) -> Vec<HopRow<'_>> {
    results
        .cells
        .values()
        .filter(|c| c.mode.is_rr() && c.format != view::RAW && is_broker(results, &c.transport))
        .map(|broker| {
            let key = format!("{}/{}/tcp/{}", broker.workload, broker.format, load_label(broker));
            HopRow { broker, direct: results.cells.get(&key) }
        })
        .collect()
}

/// One workload, format, transport and load across the modes.
#[derive(Debug)]
struct ThroughputRow<'a> {
    /// `workload/format/transport/load`.
    coords: String,
    rr: Option<&'a Cell>,
    modes: Vec<&'a Cell>,
}

fn throughput_rows(results: &Results) -> Vec<ThroughputRow<'_>> {
    let mut rows: Vec<ThroughputRow<'_>> = Vec::new();
    for cell in mode_cells(results).into_iter().filter(|c| c.status == CellStatus::Ok) {
        let coords = format!("{}/{}/{}/{}", cell.workload, cell.format, cell.transport, load_label(cell));
        match rows.iter_mut().find(|r| r.coords == coords) {
            Some(row) => row.modes.push(cell),
            None => {
                let rr = results.cells.get(&coords);
                rows.push(ThroughputRow { coords, rr, modes: vec![cell] });
            }
        }
    }
    rows
}

/// What a mode cell moves per second, and of what.
fn throughput(m: &Metrics) -> Option<(f64, &'static str)> {
    if let Some(o) = &m.oneway {
        return Some((o.delivered_per_sec, "delivered/s"));
    }
    if let Some(p) = &m.pubsub {
        return Some((p.deliveries_per_sec, "deliveries/s"));
    }
    m.stream.as_ref().map(|s| (s.replies_per_sec, "replies/s"))
}

fn broker_cpu(m: &Metrics) -> Option<f64> {
    Some(m.broker_user_us_per_call? + m.broker_system_us_per_call.unwrap_or(0.0))
}

fn p50_of(cell: Option<&Cell>) -> String {
    cell.and_then(view::p50).map_or_else(|| "–".into(), text::ns)
}

fn signed_ns(d: i64) -> String {
    if d < 0 { format!("−{}", text::ns(d.unsigned_abs())) } else { format!("+{}", text::ns(d as u64)) }
}

/// The HTML sections `#modes` and `#rpc-or-mq`.
pub(crate) fn html(results: &Results) -> String {
    let mut out = String::new();
    out.push_str("<section id=\"modes\">\n<h2>Call modes</h2>\n");
    let cells = mode_cells(results);
    if cells.is_empty() {
        out.push_str("<p class=\"muted\">This run has request-response cells only (<code>--mode rr</code>).</p>\n");
    } else {
        out.push_str(
            "<p class=\"help\">Cells of the modes beyond request-response, each with its own figures: \
             <b>oneway</b> messages have no reply, so no call latency: the server counts what arrives, and the \
             latency is from the send to the server's receipt, both ends reading one machine's clock (unavailable \
             with a remote server); <b>stream</b> cells time the first and the last of K verified replies; \
             <b>pubsub</b> cells time each delivery from the publish, per subscriber. Lost messages are counted, \
             never hidden in a rate.</p>\n",
        );
        out.push_str(
            "<div class=\"scroll\"><table class=\"modes\"><thead><tr><th>cell</th><th>mode</th><th>status</th>\
             <th>throughput</th><th>latency</th><th>counts</th></tr></thead><tbody>\n",
        );
        for c in cells {
            let r = mode_row(c);
            let detail = if c.status == CellStatus::Ok { String::new() } else { c.error.clone().unwrap_or_default() };
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"{}\" title=\"{}\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                esc(&r.cell.key),
                esc(&c.mode.label()),
                status_word(c),
                esc(&detail),
                if detail.is_empty() {
                    status_word(c).to_owned()
                } else {
                    format!("{}: {}", status_word(c), esc(&detail))
                },
                esc(&r.rate),
                esc(&r.latency),
                esc(&r.counts)
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</section>\n<section id=\"rpc-or-mq\">\n<h2>RPC or MQ?</h2>\n");
    out.push_str(&rpc_or_mq_html(results));
    out.push_str("</section>\n");
    out
}

fn rpc_or_mq_html(results: &Results) -> String {
    let mut out = String::new();
    out.push_str(
        "<p class=\"help\">Through a broker, a request-reply call takes an extra hop: each broker's \
         request-reply cell beside the direct tcp cell of the same format, workload and load, the difference of \
         their p50s, and the broker daemon's CPU per call where the results have it. Below, oneway and pubsub \
         throughput beside request-response on the same transport, format, workload and load.</p>\n",
    );
    let hops = hops(results);
    if hops.is_empty() {
        out.push_str(
            "<p class=\"muted\">No broker cells in this run: the request-reply comparison needs a transport of the \
             broker family.</p>\n",
        );
    } else {
        out.push_str(
            "<div class=\"scroll\"><table class=\"rpc-or-mq\"><thead><tr><th>broker cell</th><th>p50</th>\
             <th>direct tcp p50</th><th>extra hop (p50)</th><th>ratio</th><th>broker CPU per call</th></tr>\
             </thead><tbody>\n",
        );
        for h in &hops {
            let ratio = match (h.broker_p50(), h.direct.and_then(view::p50)) {
                (Some(b), Some(d)) if d > 0 => text::ratio(b as f64 / d as f64),
                _ => "–".into(),
            };
            let cpu =
                view::ok_metrics(h.broker).and_then(broker_cpu).map_or_else(|| "–".into(), |us| format!("{us:.1} µs"));
            let direct = h.direct.map_or_else(|| "not in this run".into(), |_| p50_of(h.direct));
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&h.broker.key),
                esc(&p50_of(Some(h.broker))),
                esc(&direct),
                esc(&h.extra_p50().map_or_else(|| "–".into(), signed_ns)),
                esc(&ratio),
                esc(&cpu)
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    let rows = throughput_rows(results);
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No oneway, stream or pubsub cell measured in this run.</p>\n");
    } else {
        out.push_str(
            "<div class=\"scroll\"><table class=\"rpc-or-mq\"><thead><tr><th>cell</th><th>request-response</th>\
             <th>other modes</th></tr></thead><tbody>\n",
        );
        for r in &rows {
            let rr =
                r.rr.and_then(view::ok_metrics)
                    .map_or_else(|| "–".into(), |m| format!("{} calls/s", text::rate(m.calls_per_sec)));
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&r.coords),
                esc(&rr),
                esc(&others(r))
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    out
}

impl HopRow<'_> {
    fn broker_p50(&self) -> Option<u64> {
        view::p50(self.broker)
    }
}

/// The other modes' throughput of a row, with their ratio to rr.
fn others(r: &ThroughputRow<'_>) -> String {
    let rr = r.rr.and_then(view::ok_metrics).map(|m| m.calls_per_sec).filter(|v| *v > 0.0);
    let parts: Vec<String> = r
        .modes
        .iter()
        .filter_map(|c| {
            let (v, what) = throughput(c.metrics.as_ref()?)?;
            let vs = rr.map_or_else(String::new, |rr| format!(", {} of rr", text::ratio(v / rr)));
            Some(format!("{}: {} {what}{vs}", c.mode.label(), text::rate(v)))
        })
        .collect();
    parts.join("; ")
}

/// The Markdown sections, appended to the summary; nothing when the run
/// has neither mode nor broker cells.
pub(crate) fn markdown(results: &Results, out: &mut String) {
    let cells = mode_cells(results);
    let hops = hops(results);
    if cells.is_empty() && hops.is_empty() {
        return;
    }
    if !cells.is_empty() {
        let _ = writeln!(out, "### Call modes\n");
        let _ = writeln!(out, "| cell | status | throughput | latency | counts |\n|---|---|---|---|---|");
        for c in cells {
            let r = mode_row(c);
            let status = match (&c.status, &c.error) {
                (CellStatus::Ok, _) | (_, None) => status_word(c).to_owned(),
                (_, Some(e)) => format!("{}: {e}", status_word(c)),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                md_cell(&c.key),
                md_cell(&status),
                md_cell(&r.rate),
                md_cell(&r.latency),
                md_cell(&r.counts)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "### RPC or MQ?\n");
    if hops.is_empty() {
        let _ = writeln!(out, "_No broker cells in this run._\n");
    } else {
        let _ = writeln!(
            out,
            "| broker cell | p50 | direct tcp p50 | extra hop (p50) | broker CPU per call |\n|---|---|---|---|---|"
        );
        for h in &hops {
            let cpu =
                view::ok_metrics(h.broker).and_then(broker_cpu).map_or_else(|| "–".into(), |us| format!("{us:.1} µs"));
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                md_cell(&h.broker.key),
                p50_of(Some(h.broker)),
                h.direct.map_or_else(|| "not in this run".into(), |_| p50_of(h.direct)),
                h.extra_p50().map_or_else(|| "–".into(), signed_ns),
                cpu
            );
        }
        out.push('\n');
    }
    let rows = throughput_rows(results);
    if !rows.is_empty() {
        let _ = writeln!(out, "| cell | request-response | other modes |\n|---|---|---|");
        for r in &rows {
            let rr =
                r.rr.and_then(view::ok_metrics)
                    .map_or_else(|| "–".into(), |m| format!("{} calls/s", text::rate(m.calls_per_sec)));
            let _ = writeln!(out, "| `{}` | {} | {} |", md_cell(&r.coords), rr, md_cell(&others(r)));
        }
        out.push('\n');
    }
}
