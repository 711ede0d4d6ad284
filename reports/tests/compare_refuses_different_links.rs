//! Cells on different networks are never compared: `compare` refuses runs
//! whose cells crossed different links (or loopback against a link), and a
//! link name whose figures differ between the files; with some links in
//! common it compares those and says the others were left out. `merge`
//! refuses a link name with two specs.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use wirebench_reports::compare::{CompareError, Options, Verdict, compare};
use wirebench_reports::exports::{MergeError, merge};
use wirebench_reports::model::{CellLink, LinkRecord, Results};

const WAN: &str = "rtt=40ms,rate=100mbit,queue=512KiB";
const LAN: &str = "rtt=0.5ms,rate=1gbit,queue=256KiB";

fn record(name: &str, spec: &str) -> LinkRecord {
    LinkRecord {
        name: name.into(),
        spec: spec.into(),
        rtt_ns: 0,
        loss: 0.0,
        rate_bps: None,
        queue_bytes: None,
        jitter_ns: 0,
        clients: 1,
        seed: 1,
        validation: None,
        validation_error: None,
        usage: None,
    }
}

/// The fixture's cells moved onto `links` (each a copy of every cell),
/// as `run --link` would key and record them.
fn on_links(links: &[(&str, &str)], run_id: &str) -> Results {
    let fixture = common::load("quick-slice.json");
    let mut out = Results { cells: Default::default(), run_id: run_id.into(), ..fixture.clone() };
    for (name, spec) in links {
        for cell in fixture.cells.values() {
            let mut c = cell.clone();
            c.key = format!("{}@{name}", c.key);
            c.baseline = c.baseline.map(|b| format!("{b}@{name}"));
            c.link = Some(CellLink { name: (*name).into(), spec: (*spec).into() });
            out.cells.insert(c.key.clone(), c);
        }
        out.links.push(record(name, spec));
    }
    out
}

#[test]
fn loopback_against_a_link_is_refused() {
    let loopback = common::load("quick-slice.json");
    let wan = on_links(&[("wan", WAN)], "b");
    let err = compare(&loopback, &wan, &Options::default()).unwrap_err();
    assert!(matches!(err, CompareError::DifferentLinks(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("base: loopback") && text.contains(&format!("new: wan = {WAN}")), "{text}");
    assert!(matches!(compare(&wan, &loopback, &Options::default()), Err(CompareError::DifferentLinks(_))));
}

#[test]
fn two_different_links_are_refused() {
    let err =
        compare(&on_links(&[("lan", LAN)], "a"), &on_links(&[("wan", WAN)], "b"), &Options::default()).unwrap_err();
    assert!(err.to_string().contains("base: lan") && err.to_string().contains("new: wan"), "{err}");
}

#[test]
fn one_name_with_two_specs_is_refused() {
    let redefined = "rtt=50ms,rate=100mbit,queue=512KiB";
    let err = compare(&on_links(&[("wan", WAN)], "a"), &on_links(&[("wan", redefined)], "b"), &Options::default())
        .unwrap_err();
    assert!(err.to_string().contains(&format!("link wan is {WAN} in base and {redefined} in new")), "{err}");
}

#[test]
fn the_same_link_compares_and_a_shared_one_compares_alone() {
    let same = compare(&on_links(&[("wan", WAN)], "a"), &on_links(&[("wan", WAN)], "b"), &Options::default()).unwrap();
    assert!(same.warnings.iter().all(|w| !w.contains("links")), "{:?}", same.warnings);
    assert!(same.rows.iter().filter(|r| r.key != "*").all(|r| r.key.ends_with("@wan")));

    let both = on_links(&[("lan", LAN), ("wan", WAN)], "a");
    let wan = on_links(&[("wan", WAN)], "b");
    let c = compare(&both, &wan, &Options::default()).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("only in base: lan")), "{:?}", c.warnings);
    for row in c.rows.iter().filter(|r| r.key.ends_with("@lan")) {
        assert_eq!(row.verdict, Verdict::Removed, "{}", row.key);
    }
    assert!(c.rows.iter().any(|r| r.key.ends_with("@wan") && r.metric == "p50"));
}

#[test]
fn merge_refuses_one_name_with_two_specs_and_unites_the_rest() {
    let a = on_links(&[("wan", WAN)], "a");
    let b = on_links(&[("wan", "rtt=50ms")], "b");
    let err = merge(vec![("a.json".into(), a.clone()), ("b.json".into(), b)], false).unwrap_err();
    assert!(matches!(err, MergeError::Settings { .. }) && err.to_string().contains("link wan"), "{err}");
    let c = on_links(&[("wan", WAN), ("lan", LAN)], "c");
    let merged = merge(vec![("a.json".into(), a), ("c.json".into(), c)], false).unwrap();
    let names: Vec<&str> = merged.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["wan", "lan"]);
}
