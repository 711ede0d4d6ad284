//! An interrupted run's report counts the cells actually missing: those
//! the run planned and did not finish, not those an inferred product of
//! the axes seen so far lacks.

#![allow(clippy::unwrap_used)]

mod common;

use wirebench_reports::render::html;

#[test]
fn the_banner_counts_the_planned_cells_that_never_ran() {
    let mut results = common::load("quick-slice.json");
    let present: Vec<String> = results.cells.keys().cloned().collect();
    // The run planned 220 more cells of workloads, formats and transports
    // that never started, so no cell in the file hints at them.
    let mut planned = present.clone();
    for i in 0..220 {
        planned.push(format!("echo-{}B/json/tcp/c1", 100 + i));
    }
    // ... and the last three it had started are gone too.
    for key in present.iter().rev().take(3) {
        results.cells.remove(key);
    }
    results.planned = planned;
    results.interrupted = true;
    let page = html(&results).unwrap();
    assert!(
        page.contains(&format!("Only {} cells were recorded; 223 cells of the matrix are missing", present.len() - 3)),
        "{}",
        &page[..page.find("banner").map_or(0, |i| (i + 600).min(page.len()))]
    );
}
