//! results.csv: one row per cell, one column per metric, RFC 4180.

mod common;

use common::load;
use wirebench_reports::model::CellStatus;
use wirebench_reports::render::{self, CSV_COLUMNS};

/// A strict RFC 4180 reader: CRLF records, quoted fields with "" escapes.
fn parse(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            '\n' => panic!("a bare LF ends a record"),
            c => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(field.is_empty() && row.is_empty(), "the last record lacks its CRLF");
    rows
}

#[test]
fn has_a_header_and_a_row_per_cell() {
    for name in ["quick-slice.json", "interrupted.json", "open-loop.json", "empty.json"] {
        let results = load(name);
        let rows = parse(&render::csv(&results));
        assert_eq!(rows[0], CSV_COLUMNS, "{name}");
        assert_eq!(rows.len(), results.cells.len() + 1, "{name}");
        for row in &rows {
            assert_eq!(row.len(), CSV_COLUMNS.len(), "{name}: {row:?}");
        }
        let mut keys: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
        keys.sort();
        let expected: Vec<&str> = results.cells.keys().map(String::as_str).collect();
        assert_eq!(keys, expected, "{name}");
    }
}

#[test]
fn values_read_back_exactly() {
    let results = load("quick-slice.json");
    let rows = parse(&render::csv(&results));
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    for row in &rows[1..] {
        let cell = &results.cells[&row[0]];
        assert_eq!(row[col("status")], format!("{:?}", cell.status).to_lowercase());
        match &cell.metrics {
            Some(m) => {
                assert_eq!(row[col("p50_ns")].parse::<u64>().unwrap(), m.latency.p50);
                assert_eq!(row[col("p9999_ns")].parse::<u64>().unwrap(), m.latency.p9999);
                assert_eq!(row[col("calls_per_sec")].parse::<f64>().unwrap(), m.calls_per_sec);
                assert_eq!(row[col("client_user_us_per_call")].parse::<f64>().unwrap(), m.client_user_us_per_call);
                assert_eq!(row[col("request_bytes")].parse::<u64>().unwrap(), m.request_bytes);
                assert_eq!(row[col("overhead_p50")].parse::<f64>().ok(), m.overhead_p50);
                assert_eq!(row[col("wire_sent_per_call")].parse::<f64>().ok(), m.wire_sent_per_call);
            }
            None => assert_eq!(row[col("p50_ns")], ""),
        }
        assert_eq!(row[col("samples")], cell.samples.len().to_string());
        assert_eq!(row[col("in_flight")], cell.load.in_flight.to_string());
    }
    // The failed cell's reason, with a comma and quotes, survives quoting.
    let failed = results.cells.values().find(|c| c.status == CellStatus::Failed).unwrap();
    let row = rows.iter().find(|r| r[0] == failed.key).unwrap();
    assert_eq!(&row[col("error")], failed.error.as_ref().unwrap());
    assert_eq!(row[col("timeouts")], "37");
}

#[test]
fn open_loop_cells_have_both_latencies() {
    let results = load("open-loop.json");
    let rows = parse(&render::csv(&results));
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    for row in &rows[1..] {
        assert_eq!(row[col("load_model")], "open-constant");
        assert_eq!(row[col("rate")], "5000");
        assert_eq!(row[col("latency_kind")], "corrected");
        assert!(row[col("uncorrected_p99_ns")].parse::<u64>().is_ok());
        assert_eq!(row[col("send_lag_p99_ns")], "41000");
    }
}
