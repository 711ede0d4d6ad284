//! docs/results-schema.md documents every field, and its example reads.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use wirebench_reports::Results;

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results-schema.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Field names in a results value; map keys (cell keys, format names,
/// crate names) are data, not fields.
fn field_names(v: &Value, parent: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            let is_map = matches!(parent, "cells" | "formats" | "transports" | "crate_versions" | "counts");
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

#[test]
fn every_field_of_the_model_is_documented() {
    let mut names = BTreeSet::new();
    for fixture in ["quick-slice.json", "open-loop.json"] {
        let mut results = common::load(fixture);
        // Fill the optional parts so they serialize too.
        results.instructions = Some(wirebench_reports::model::Instructions {
            tool: "callgrind".into(),
            counts: [("multiply/json/encode".to_owned(), 1)].into(),
        });
        for cell in results.cells.values_mut() {
            if let Some(m) = cell.metrics.as_mut() {
                m.wire_probe_bytes.get_or_insert(1);
                m.server_user_us_per_call.get_or_insert(1.0);
                m.server_system_us_per_call.get_or_insert(1.0);
                m.broker_user_us_per_call.get_or_insert(1.0);
                m.broker_system_us_per_call.get_or_insert(1.0);
                m.broker_cpu.get_or_insert_with(|| "broker process tree".into());
            }
        }
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
