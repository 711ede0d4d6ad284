//! The HTML report: self-contained, complete and honest about gaps.

mod common;

use common::{attribute_values, default_size_matrix, load};
use wirebench_reports::model::CellStatus;
use wirebench_reports::render::{self, CSP};

const FIXTURES: [&str; 4] = ["quick-slice.json", "interrupted.json", "open-loop.json", "empty.json"];

#[test]
fn is_self_contained_with_a_csp() {
    for name in FIXTURES {
        let html = render::html(&load(name)).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(
            html.contains(&format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">")),
            "{name}: no CSP"
        );
        for attr in ["src", "href", "action", "srcset", "poster", "data"] {
            for value in attribute_values(&html, attr) {
                let v = value.trim().to_ascii_lowercase();
                assert!(
                    !v.starts_with("http:") && !v.starts_with("https:") && !v.starts_with("//"),
                    "{name}: {attr}={value}"
                );
            }
        }
        // No element loads anything but inline content.
        for tag in ["<link rel=\"stylesheet\"", "<script src", "<img src=\"http", "@import", "url(http"] {
            assert!(!html.contains(tag), "{name}: {tag}");
        }
        // Exactly one data block and one script, neither cut short.
        assert_eq!(html.matches("<script").count(), 2, "{name}");
        assert_eq!(html.matches("</script>").count(), 2, "{name}");
        assert!(html.trim_end().ends_with("</html>"), "{name}");
    }
}

#[test]
fn names_every_cell() {
    for name in FIXTURES {
        let results = load(name);
        let html = render::html(&results).unwrap();
        for key in results.cells.keys() {
            assert!(html.contains(&format!("\"key\":\"{key}\"")), "{name}: {key} missing from the data");
        }
    }
}

#[test]
fn data_cannot_close_its_script_element() {
    let mut results = load("quick-slice.json");
    let cell = results.cells.values_mut().find(|c| c.status == CellStatus::Failed).unwrap();
    cell.error = Some("evil </script><script>alert(1)</script> <!-- end".into());
    let html = render::html(&results).unwrap();
    let data_start = html.find("<script type=\"application/json\" id=\"data\">").unwrap();
    let data_end = data_start + html[data_start..].find("</script>").unwrap();
    let data = &html[data_start..data_end];
    assert!(!data[1..].contains('<'), "a '<' inside the data block");
    // The escaped text still decodes to the original.
    let json_start = data.find('>').unwrap() + 1;
    let value: serde_json::Value = serde_json::from_str(&data[json_start..]).unwrap();
    assert!(value.to_string().contains("evil </script><script>alert(1)</script>"));
    // And in the static status table it is escaped HTML.
    assert!(html.contains("evil &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn shows_failed_unsupported_and_missing_cells() {
    let results = load("quick-slice.json");
    let html = render::html(&results).unwrap();
    assert!(html.contains("class=\"banner bad\""), "no banner for a failed cell");
    assert!(html.contains("1 cell failed"));
    assert!(html.contains("<code>multiply/json/udp/c64</code>"));
    // The reason, escaped, in the failed list.
    assert!(html.contains("37 calls timed out after 5000 ms; 2 wrong replies (&quot;a,b&quot; &lt;script&gt;)"));
    // Unsupported cells with their reasons.
    assert!(html.contains("the stock gRPC reference carries protobuf only, not json"));
    assert!(html.contains("digest-100/json/udp/c1 unsupported: udp: a "), "status mark tooltip");

    let interrupted = render::html(&load("interrupted.json")).unwrap();
    assert!(interrupted.contains("The run was interrupted."));
    assert!(interrupted.contains("class=\"mark missing\""), "missing cells are marked");
    assert!(interrupted.contains("echo-1KiB/protobuf/grpc/c64"), "a missing cell is named");
    assert!(interrupted.contains("unfinished"));
}

#[test]
fn a_file_with_no_cells_renders_a_page_that_says_so() {
    let html = render::html(&load("empty.json")).unwrap();
    assert!(html.contains("This results file has no cells"));
    assert!(html.contains("The run was interrupted</b> before its first cell finished."));
    assert!(html.contains("id=\"cells\""));
    assert!(html.contains("Run configuration"));
}

#[test]
fn open_loop_cells_carry_both_spectra() {
    let results = load("open-loop.json");
    let html = render::html(&results).unwrap();
    assert!(html.contains("\"latency_kind\":\"corrected\""));
    assert_eq!(html.matches("\"spectrum_uncorrected\":[").count(), 4, "every open-loop cell, the raw baseline too");
    assert!(html.contains("coordinated omission"));
}

#[test]
fn header_names_commit_time_and_verdicts() {
    let results = load("quick-slice.json");
    let html = render::html(&results).unwrap();
    assert!(html.contains(&results.environment.started_at));
    assert!(html.contains(&results.environment.git_commit[..12]));
    // One replicate a side: nothing stands apart by the single-replicate
    // rule, so each workload names the cells tied for fastest.
    for w in ["multiply", "digest-100"] {
        assert!(html.contains(&format!("<li><b>{w}</b>: no single fastest cell at c1: ")), "{w}");
    }
    assert!(
        html.contains("are tied within noise <span class=\"muted\">(one replicate each: the single-replicate rule")
    );
    assert!(html.contains("the stock gRPC reference"));
}

#[test]
fn the_default_matrix_renders_small_and_fast() {
    let results = default_size_matrix();
    assert_eq!(results.cells.len(), 880);
    let start = std::time::Instant::now();
    let html = render::html(&results).unwrap();
    let elapsed = start.elapsed();
    println!("{} cells: {} bytes of HTML in {elapsed:?}", results.cells.len(), html.len());
    assert!(html.len() < 5_000_000, "{} bytes", html.len());
    // One second in a release build; debug builds are several times slower.
    let budget = if cfg!(debug_assertions) { 15.0 } else { 1.0 };
    assert!(elapsed.as_secs_f64() < budget, "{elapsed:?}");
    for key in results.cells.keys() {
        assert!(html.contains(key.as_str()));
    }
}

/// Writes the synthetic default-size matrix to WIREBENCH_SYNTH_OUT, for
/// measuring `render_file` on a big file.
#[test]
#[ignore = "writes a file named by WIREBENCH_SYNTH_OUT"]
fn write_the_default_size_matrix() {
    let Some(path) = std::env::var_os("WIREBENCH_SYNTH_OUT") else {
        println!("skipped: WIREBENCH_SYNTH_OUT not set");
        return;
    };
    let path = std::path::PathBuf::from(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    default_size_matrix().write_atomic(&path).unwrap();
    println!("wrote {}", path.display());
}
