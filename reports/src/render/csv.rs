//! `results.csv`: one row per cell, one column per metric, RFC 4180.

use std::fmt::Write as _;

use crate::model::{Cell, CellStatus, Latency, Results};

use super::view::View;

/// The header row, in column order. Latency columns are nanoseconds, CPU
/// columns microseconds per call, byte columns bytes (per call).
pub const COLUMNS: &[&str] = &[
    "key",
    "workload",
    "workload_kind",
    "size",
    "format",
    "transport",
    "load",
    "load_model",
    "in_flight",
    "connections",
    "rate",
    "status",
    "error",
    "baseline",
    "calls",
    "duration_s",
    "calls_per_sec",
    "mb_per_sec",
    "latency_kind",
    "min_ns",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "p999_ns",
    "p9999_ns",
    "max_ns",
    "mean_ns",
    "uncorrected_min_ns",
    "uncorrected_p50_ns",
    "uncorrected_p90_ns",
    "uncorrected_p99_ns",
    "uncorrected_p999_ns",
    "uncorrected_p9999_ns",
    "uncorrected_max_ns",
    "uncorrected_mean_ns",
    "send_lag_p99_ns",
    "request_bytes",
    "reply_bytes",
    "request_zstd_bytes",
    "reply_zstd_bytes",
    "wire_sent_per_call",
    "wire_received_per_call",
    "wire_probe_bytes",
    "wire_exact",
    "client_user_us_per_call",
    "client_system_us_per_call",
    "server_user_us_per_call",
    "server_system_us_per_call",
    "server_cpu",
    "broker_user_us_per_call",
    "broker_system_us_per_call",
    "broker_cpu",
    "errors",
    "timeouts",
    "wrong_replies",
    "late_replies",
    "overhead_p50",
    "raw_request_bytes",
    "raw_reply_bytes",
    "samples",
    "samples_p50_ns",
    "samples_calls_per_sec",
    "link",
    "link_spec",
    "clients",
];

/// Every cell as CSV, in natural order (workload, load, format,
/// transport), with a header row. Absent values are empty fields.
pub fn csv(results: &Results) -> String {
    let view = View::new(results);
    let mut out = String::with_capacity(512 * (results.cells.len() + 1));
    push_row(&mut out, COLUMNS.iter().map(|c| (*c).to_owned()));
    for cell in view.cells_in_order() {
        push_row(&mut out, row(cell));
    }
    out
}

fn row(cell: &Cell) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let status = match cell.status {
        CellStatus::Ok => "ok",
        CellStatus::Failed => "failed",
        CellStatus::Unsupported => "unsupported",
    };
    let mut r = vec![
        cell.key.clone(),
        cell.workload.clone(),
        cell.workload_kind.clone(),
        opt(cell.size.map(|s| s.to_string())),
        cell.format.clone(),
        cell.transport.clone(),
        super::view::load_label(cell).to_owned(),
        cell.load.model.clone(),
        cell.load.in_flight.to_string(),
        cell.load.connections.to_string(),
        opt(cell.load.rate.map(f)),
        status.to_owned(),
        opt(cell.error.clone()),
        opt(cell.baseline.clone()),
    ];
    let latency = |l: Option<&Latency>, r: &mut Vec<String>| match l {
        Some(l) => r.extend(
            [l.min, l.p50, l.p90, l.p99, l.p999, l.p9999, l.max].map(|v| v.to_string()).into_iter().chain([f(l.mean)]),
        ),
        None => r.extend(std::iter::repeat_n(String::new(), 8)),
    };
    match &cell.metrics {
        Some(m) => {
            r.extend([
                m.calls.to_string(),
                f(m.duration_s),
                f(m.calls_per_sec),
                f(m.mb_per_sec),
                m.latency_kind.clone(),
            ]);
            latency(Some(&m.latency), &mut r);
            latency(m.latency_uncorrected.as_ref(), &mut r);
            r.extend([
                opt(m.send_lag_p99_ns.map(|v| v.to_string())),
                m.request_bytes.to_string(),
                m.reply_bytes.to_string(),
                opt(m.request_zstd_bytes.map(|v| v.to_string())),
                opt(m.reply_zstd_bytes.map(|v| v.to_string())),
                opt(m.wire_sent_per_call.map(f)),
                opt(m.wire_received_per_call.map(f)),
                opt(m.wire_probe_bytes.map(|v| v.to_string())),
                m.wire_exact.to_string(),
                f(m.client_user_us_per_call),
                f(m.client_system_us_per_call),
                opt(m.server_user_us_per_call.map(f)),
                opt(m.server_system_us_per_call.map(f)),
                m.server_cpu.clone(),
                opt(m.broker_user_us_per_call.map(f)),
                opt(m.broker_system_us_per_call.map(f)),
                opt(m.broker_cpu.clone()),
                m.errors.to_string(),
                m.timeouts.to_string(),
                m.wrong_replies.to_string(),
                m.late_replies.to_string(),
                opt(m.overhead_p50.map(f)),
            ]);
        }
        None => r.extend(std::iter::repeat_n(String::new(), 5 + 8 + 8 + 22)),
    }
    r.push(opt(cell.raw_shape.map(|s| s[0].to_string())));
    r.push(opt(cell.raw_shape.map(|s| s[1].to_string())));
    r.push(cell.samples.len().to_string());
    r.push(cell.samples.iter().map(|s| s.p50_ns.to_string()).collect::<Vec<_>>().join(" "));
    r.push(cell.samples.iter().map(|s| f(s.calls_per_sec)).collect::<Vec<_>>().join(" "));
    r.push(opt(cell.link.as_ref().map(|l| l.name.clone())));
    r.push(opt(cell.link.as_ref().map(|l| l.spec.clone())));
    r.push(cell.load.clients.to_string());
    debug_assert_eq!(r.len(), COLUMNS.len());
    r
}

/// A float as the shortest text that reads back the same; empty if not
/// finite (CSV has no NaN).
fn f(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

fn push_row(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) || field.starts_with(' ') || field.ends_with(' ') {
            let _ = write!(out, "\"{}\"", field.replace('"', "\"\""));
        } else {
            out.push_str(&field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_rfc_4180_says() {
        let mut out = String::new();
        push_row(&mut out, ["a".to_owned(), "b,c".to_owned(), "say \"hi\"".to_owned(), "x\ny".to_owned()]);
        assert_eq!(out, "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\"\r\n");
    }
}
