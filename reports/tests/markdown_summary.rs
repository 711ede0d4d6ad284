//! summary.md: the key tables, failures and the environment, small.

mod common;

use common::{default_size_matrix, load};
use wirebench_reports::render;

#[test]
fn has_a_table_per_workload_with_every_format_and_transport() {
    let results = load("quick-slice.json");
    let md = render::markdown(&results);
    assert!(md.starts_with("## wirebench results: quick matrix\n"), "{md}");
    for w in ["### multiply", "### digest-100"] {
        assert!(md.contains(w), "{w}");
    }
    assert!(md.contains("p50 latency at c1 (lowest load)"));
    assert!(md.contains("calls/s at c64 (highest load)"));
    assert!(md.contains("| format | tcp | udp | http2 | inproc | grpc |\n|---|---:|---:|---:|---:|---:|\n"), "{md}");
    // Each table: header, rule and one row per format.
    for f in ["json", "protobuf", "bincode"] {
        assert_eq!(md.matches(&format!("\n| {f} |")).count(), 4, "{f}: 2 workloads x 2 tables");
    }
    // Values as the terminal prints them; the best cell bold.
    let p50 = results.cells["multiply/protobuf/tcp/c1"].metrics.as_ref().unwrap().latency.p50;
    assert!(md.contains(&format!("{:.1}µs", p50 as f64 / 1e3)), "protobuf/tcp p50");
    assert_eq!(md.matches("**").count() % 2, 0);
    assert!(md.matches(" | **").count() >= 4, "a bold best cell per table");
    // Verdicts against the gRPC reference.
    assert!(md.contains("the stock gRPC reference ("), "{md}");
}

#[test]
fn lists_failed_and_unsupported_cells_with_reasons() {
    let md = render::markdown(&load("quick-slice.json"));
    assert!(md.contains("> [!CAUTION]\n> 1 cell(s) failed"), "{md}");
    assert!(md.contains("### Failed cells\n\n- `multiply/json/udp/c64`: 37 calls timed out after 5000 ms"), "{md}");
    // Table-breaking and HTML characters in a reason are neutralized.
    assert!(md.contains("(\"a,b\" &lt;script&gt;)"), "{md}");
    assert!(md.contains("| FAILED |"), "the failed cell in its table");
    assert!(md.contains("### Unsupported cells"));
    assert!(md.contains("- `json/grpc` (4 cells): the stock gRPC reference carries protobuf only, not json"), "{md}");
    assert!(md.contains("- `json/udp` (2 cells): udp: a 44274-byte request frame exceeds the 1472-byte"), "{md}");
    assert!(md.contains("| n/a |"));
}

#[test]
fn says_what_an_interrupted_run_misses() {
    let md = render::markdown(&load("interrupted.json"));
    assert!(md.contains("> [!WARNING]\n> The run was interrupted"), "{md}");
    assert!(md.contains("### Missing cells"), "{md}");
    assert!(md.contains("- `echo-1KiB/protobuf/grpc/c64`"), "{md}");
    assert!(md.contains("| not run |"), "{md}");
    assert!(md.contains("→ unfinished"), "{md}");
}

#[test]
fn says_so_when_there_are_no_cells() {
    let md = render::markdown(&load("empty.json"));
    assert!(md.contains("_The results file has no cells: nothing was measured._"), "{md}");
    assert!(md.contains("<sub>AMD EPYC (2 cores)"), "the environment line: {md}");
}

#[test]
fn ends_with_an_environment_line() {
    let md = render::markdown(&load("quick-slice.json"));
    let last = md.trim_end().lines().last().unwrap();
    assert!(last.starts_with("<sub>") && last.ends_with("</sub>"), "{last}");
    for part in ["AMD EPYC (2 cores)", "Debian", "rustc 1.95.0", "release (opt-level 3)", "pinning client:0 server:1"] {
        assert!(last.contains(part), "{part}: {last}");
    }
}

#[test]
fn fits_a_pr_comment_for_the_default_matrix() {
    let md = render::markdown(&default_size_matrix());
    println!("{} bytes", md.len());
    assert!(md.len() < 64 * 1024, "{} bytes", md.len());
    assert_eq!(md.matches("\n### ").count(), 8 + 1, "8 workloads and the unsupported list");
}
