//! The report sets frameworks apart from own transports and shows the one
//! format each framework carries.

mod common;

use common::load;
use wirebench_reports::model::TransportInfo;
use wirebench_reports::render;

/// The quick slice with grpc marked as the framework it is and a second
/// framework added beside it.
fn with_frameworks() -> wirebench_reports::Results {
    let mut results = load("quick-slice.json");
    let grpc = results.transports.get_mut("grpc").expect("the fixture has grpc");
    grpc.family = "framework".into();
    grpc.format = Some("protobuf".into());
    let tcp = results.transports["tcp"].clone();
    results
        .transports
        .insert("tarpc".into(), TransportInfo { family: "framework".into(), format: Some("bincode".into()), ..tcp });
    for info in results.transports.values_mut().filter(|t| t.family.is_empty()) {
        info.family = "transport".into();
    }
    results
}

#[test]
fn the_properties_table_groups_families_and_names_each_frameworks_format() {
    let html = render::html(&with_frameworks()).unwrap();
    let own =
        html.find("<tr class=\"group\"><th colspan=\"8\">own transports</th></tr>").expect("own transports group");
    let fw = html.find("<tr class=\"group\"><th colspan=\"8\">frameworks</th></tr>").expect("frameworks group");
    assert!(own < fw, "own transports come first");
    let grpc = html.find("<tr><th>grpc</th><td>protobuf</td>").expect("grpc's row names its format");
    let tarpc = html.find("<tr><th>tarpc</th><td>bincode</td>").expect("tarpc's row names its format");
    let tcp = html.find("<tr><th>tcp</th><td>any</td>").expect("an own transport carries any format");
    assert!(tcp < fw && fw < grpc && fw < tarpc, "frameworks sit under their heading");
}

#[test]
fn the_status_grid_heads_framework_columns_apart() {
    let html = render::html(&with_frameworks()).unwrap();
    // tcp, udp, http2, inproc are own transports in the fixture's cells;
    // grpc is the one framework with cells.
    assert!(
        html.contains("<tr class=\"families\"><th></th><th colspan=\"4\">own transports</th><th colspan=\"1\">frameworks</th></tr>"),
        "a family header spans each family's columns"
    );
}

#[test]
fn files_without_families_still_set_grpc_apart() {
    let html = render::html(&load("quick-slice.json")).unwrap();
    assert!(html.contains("<th colspan=\"1\">frameworks</th>"), "grpc reads as a framework in older files");
}
