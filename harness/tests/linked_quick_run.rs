//! One linked run of the `--quick` matrix's shape passes: every cell that
//! can cross the link does, unix and inproc are unsupported with the
//! reason, the link is in the results and in every report, and nothing is
//! left behind. Needs root and TUN (skipped otherwise, unless
//! `WIREBENCH_REQUIRE_LINK=1`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::link;
use wirebench_reports::model::CellStatus;

#[test]
fn a_quick_run_over_lan_passes_and_every_report_names_the_link() {
    if !link::available() {
        return;
    }
    let _serial = link::serial();
    let marker = (16 << 20) + 202;
    let dir = common::temp();
    let out = common::out_dir(&dir);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wirebench"))
        .args(["run", "--quick", "--passes", "1", "--quiet", "--link", "lan", "--formats", "protobuf,bincode"])
        .args(["--max-message", &marker.to_string(), "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = link::finish(child, marker);
    let said = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{said}");
    let results = wirebench_reports::Results::read(&out.join("results.json")).unwrap();
    assert!(results.cells.len() > 50, "{} cells", results.cells.len());
    for cell in results.cells.values() {
        assert!(cell.key.ends_with("@lan"), "{}", cell.key);
        assert_eq!(cell.link.as_ref().unwrap().name, "lan");
        match cell.transport.as_str() {
            "unix" | "inproc" => {
                assert_eq!(cell.status, CellStatus::Unsupported, "{}", cell.key);
                assert!(
                    cell.error.as_deref().unwrap().contains("does not cross a link")
                        || cell.error.as_deref().unwrap().contains("no network to cross")
                );
            }
            _ => assert_ne!(cell.status, CellStatus::Failed, "{}: {:?}", cell.key, cell.error),
        }
    }
    assert!(results.cells.values().filter(|c| c.status == CellStatus::Ok).count() > 30);
    assert_eq!(results.links.len(), 1);
    assert_eq!(results.links[0].spec, "rtt=0.5ms,rate=1gbit,queue=256KiB");
    assert!(results.links[0].validation.is_some(), "{:?}", results.links[0].validation_error);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Over an emulated link: <b>lan (rtt=0.5ms,rate=1gbit,queue=256KiB)</b>"));
    assert!(html.contains("id=\"links-charts\""));
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("### Links") && summary.contains("### multiply over lan\n"), "{summary}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",link,link_spec,clients"));
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",lan,\"rtt=0.5ms,rate=1gbit,queue=256KiB\",1"),
        "{}",
        csv.lines().nth(1).unwrap()
    );
}
