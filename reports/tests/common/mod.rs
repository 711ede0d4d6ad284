//! Shared by the report tests: fixtures and a synthetic default-size
//! matrix.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use wirebench_reports::model::{Cell, CellStatus, Results};

/// A fixture's path (tests/data/NAME).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A fixture, read.
pub fn load(name: &str) -> Results {
    Results::read(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The default matrix's shape (7 formats x 7 transports + 6 raw
/// baselines, 8 workloads, c1 and c64: 880 cells), filled with real cells
/// of the quick-slice fixture, renamed.
pub fn default_size_matrix() -> Results {
    let mut results = load("quick-slice.json");
    let templates: Vec<Cell> =
        results.cells.values().filter(|c| c.status == CellStatus::Ok && c.format != "raw").cloned().collect();
    let raw_templates: Vec<Cell> =
        results.cells.values().filter(|c| c.status == CellStatus::Ok && c.format == "raw").cloned().collect();
    let formats = ["json", "msgpack", "protobuf", "flatbuffers", "capnp", "capnp-packed", "bincode"];
    let transports = ["tcp", "unix", "udp", "http2", "quic", "inproc", "grpc"];
    let workloads: [(&str, &str, Option<u64>); 8] = [
        ("multiply", "multiply", None),
        ("echo-16B", "echo", Some(16)),
        ("echo-1KiB", "echo", Some(1024)),
        ("echo-64KiB", "echo", Some(65536)),
        ("echo-1MiB", "echo", Some(1 << 20)),
        ("digest-1", "digest", Some(1)),
        ("digest-100", "digest", Some(100)),
        ("digest-1000", "digest", Some(1000)),
    ];
    let mut cells = std::collections::BTreeMap::new();
    let mut i = 0;
    for (w, kind, size) in workloads {
        for (load, in_flight) in [("c1", 1), ("c64", 64)] {
            for t in transports.iter().filter(|t| **t != "grpc") {
                let mut c = raw_templates[i % raw_templates.len()].clone();
                i += 1;
                rename(&mut c, w, kind, size, "raw", t, load, in_flight);
                c.baseline = None;
                cells.insert(c.key.clone(), c);
            }
            for t in transports {
                for f in formats {
                    let mut c = templates[i % templates.len()].clone();
                    i += 1;
                    rename(&mut c, w, kind, size, f, t, load, in_flight);
                    let base = if t == "grpc" { "http2" } else { t };
                    c.baseline = Some(format!("{w}/raw/{base}/{load}"));
                    if t == "grpc" && f != "protobuf" {
                        c.status = CellStatus::Unsupported;
                        c.error = Some(format!("the stock gRPC reference carries protobuf only, not {f}"));
                        c.metrics = None;
                        c.samples.clear();
                        c.histogram = None;
                    }
                    cells.insert(c.key.clone(), c);
                }
            }
        }
    }
    results.cells = cells;
    results
}

#[allow(clippy::too_many_arguments)]
fn rename(c: &mut Cell, w: &str, kind: &str, size: Option<u64>, f: &str, t: &str, load: &str, in_flight: usize) {
    c.key = format!("{w}/{f}/{t}/{load}");
    c.workload = w.into();
    c.workload_kind = kind.into();
    c.size = size;
    c.format = f.into();
    c.transport = t.into();
    c.load.in_flight = in_flight;
}

/// Values of `attr="..."` attributes in an HTML text.
pub fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    for quote in ['"', '\''] {
        let needle = format!("{attr}={quote}");
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            // Only whole attribute names: preceded by whitespace.
            let before = rest[..at].chars().last();
            rest = &rest[at + needle.len()..];
            let end = rest.find(quote).unwrap_or(rest.len());
            if before.is_some_and(char::is_whitespace) {
                out.push(&rest[..end]);
            }
        }
    }
    out
}
