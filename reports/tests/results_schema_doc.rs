//! docs/results-schema.md documents every field, and its example reads.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use wirebench_reports::Results;
use wirebench_reports::model::{Mode, OnewayFigures};

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results-schema.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Field names in a results value; map keys (cell keys, format names,
/// crate names) are data, not fields.
fn field_names(v: &Value, parent: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            let is_map =
                matches!(parent, "cells" | "formats" | "transports" | "crate_versions" | "counts" | "syscalls");
            for (k, child) in map {
                if !is_map {
                    out.insert(k.clone());
                }
                field_names(child, if is_map { "" } else { k }, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| field_names(i, parent, out)),
        _ => {}
    }
}

use wirebench_reports::model as m;

/// A link with every optional part filled.
fn link_record() -> m::LinkRecord {
    let direction = m::LossDirectionCheck { sent: 10, received: 10, rate: 0.0, low: 0.0, high: 0.1 };
    m::LinkRecord {
        name: "wan".into(),
        spec: "rtt=40ms,rate=100mbit,queue=512KiB".into(),
        rtt_ns: 40_000_000,
        loss: 0.0,
        rate_bps: Some(100_000_000),
        queue_bytes: Some(512 * 1024),
        jitter_ns: 0,
        clients: 1,
        seed: 1,
        validation: Some(m::LinkValidation {
            rtt: m::RttCheck {
                expected_ns: 1,
                sent: 1,
                received: 1,
                p50_ns: Some(1),
                p99_ns: Some(1),
                min_ns: Some(1),
                max_ns: Some(1),
            },
            loss: m::LossCheck { setting: 0.0, up: direction.clone(), down: direction },
            throughput: m::ThroughputCheck {
                setting_bps: Some(1),
                goodput_bps: 1.0,
                wire_bps: 1.0,
                bytes: 1,
                window_s: 1.0,
                congestion_control: "bbr".into(),
            },
            emulator: m::EmulatorCheck { through_link_ns: 1, loopback_ns: 1, added_ns: 1 },
            forwarder_cpu_us: 1,
            forwarded_packets: 1,
            device_drops: 0,
            elapsed_s: 1.0,
        }),
        validation_error: Some("example".into()),
        usage: Some(m::LinkUsage { forwarder_error: Some("example".into()), ..m::LinkUsage::default() }),
    }
}

#[test]
fn every_field_of_the_model_is_documented() {
    let mut names = BTreeSet::new();
    for fixture in ["quick-slice.json", "open-loop.json"] {
        let mut results = common::load(fixture);
        // Fill the optional parts so they serialize too.
        results.instructions = Some(wirebench_reports::model::Instructions {
            tool: "callgrind".into(),
            counts: [("multiply/json/encode".to_owned(), 1)].into(),
            calls: Some(20),
            warmup_calls: Some(5),
            syscalls: [("multiply/json/tcp/call/client".to_owned(), 4.0)].into(),
        });
        for cell in results.cells.values_mut() {
            if let Some(m) = cell.metrics.as_mut() {
                m.wire_probe_bytes.get_or_insert(1);
                m.server_user_us_per_call.get_or_insert(1.0);
                m.server_system_us_per_call.get_or_insert(1.0);
                m.broker_user_us_per_call.get_or_insert(1.0);
                m.broker_system_us_per_call.get_or_insert(1.0);
                m.oneway.get_or_insert_with(|| OnewayFigures { latency: Some(m.latency), ..Default::default() });
                m.stream.get_or_insert_with(Default::default);
                m.pubsub.get_or_insert_with(Default::default);
                m.broker_cpu.get_or_insert_with(|| "broker process tree".into());
            }
            cell.link = Some(m::CellLink { name: "wan".into(), spec: "rtt=40ms,rate=100mbit,queue=512KiB".into() });
            cell.clients = vec![m::ClientFigures {
                client: 0,
                status: wirebench_reports::CellStatus::Failed,
                error: Some("1 timeouts".into()),
                calls: 1,
                duration_s: 0.1,
                calls_per_sec: 10.0,
                p50_ns: 1,
                p99_ns: 1,
                cpu_us_per_call: 1.0,
            }];
            cell.mode = Mode { kind: "stream".into(), replies: Some(4), subscribers: Some(2) };
            cell.histogram_first_reply = cell.histogram.clone();
        }
        for info in results.transports.values_mut() {
            info.family = "transport".into();
        }
        results.links = vec![link_record()];
        results.server_environment = Some(m::ServerEnvironment::default());
        field_names(&serde_json::to_value(&results).unwrap(), "", &mut names);
    }
    let doc = doc();
    let missing: Vec<&String> = names.iter().filter(|n| !doc.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "fields not in docs/results-schema.md: {missing:?}");
    assert!(names.len() > 80, "{} fields", names.len());
}

#[test]
fn the_example_is_a_results_file() {
    let doc = doc();
    let start = doc.find("```json\n").expect("a json example") + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let results = Results::parse(&doc.as_bytes()[start..end], "the example").unwrap();
    assert_eq!(results.cells.len(), 2);
    // It renders.
    let html = wirebench_reports::render::html(&results).unwrap();
    assert!(html.contains("echo-1KiB/json/grpc/c1"));
}
