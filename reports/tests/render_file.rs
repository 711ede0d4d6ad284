//! `render_file` and `render_all`: which files, where, and clear errors
//! for files that are not results of this wirebench.

mod common;

use std::path::Path;

use common::fixture;
use wirebench_reports::render::{self, RenderError};

fn copy_fixture(name: &str, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("results.json");
    std::fs::copy(fixture(name), &path).expect("copy the fixture");
    path
}

#[test]
fn writes_three_files_next_to_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = copy_fixture("quick-slice.json", dir.path());
    let rendered = render::render_file(&results, None).unwrap();
    assert_eq!(rendered.html, dir.path().join("index.html"));
    assert_eq!(rendered.markdown, dir.path().join("summary.md"));
    assert_eq!(rendered.csv, dir.path().join("results.csv"));
    for path in rendered.paths() {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len > 1000, "{} is {len} bytes", path.display());
    }
    // Nothing else left behind (atomic writes clean up).
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["index.html", "results.csv", "results.json", "summary.md"]);
}

#[test]
fn writes_into_a_new_out_dir_and_overwrites_old_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b/report");
    let rendered = render::render_file(&fixture("interrupted.json"), Some(&out)).unwrap();
    assert_eq!(rendered.html, out.join("index.html"));
    let first = std::fs::read_to_string(&rendered.markdown).unwrap();
    let again = render::render_file(&fixture("open-loop.json"), Some(&out)).unwrap();
    let second = std::fs::read_to_string(&again.markdown).unwrap();
    assert_ne!(first, second);
    assert!(second.contains("r5000c8"));
}

#[test]
fn a_bare_file_name_renders_into_the_current_directory_parent() {
    // `wirebench report results.json`: the parent of a bare name is "".
    let results = wirebench_reports::Results::read(&fixture("empty.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rendered = render::render_all(&results, dir.path()).unwrap();
    assert!(std::fs::read_to_string(rendered.html).unwrap().contains("This results file has no cells"));
}

#[test]
fn refuses_a_newer_schema_version_clearly() {
    let err = render::render_file(&fixture("newer-schema.json"), None).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RenderError::Read(wirebench_reports::model::ReadError::TooNew { found: 99, .. })), "{text}");
    assert!(text.contains("schema version 99"), "{text}");
    assert!(text.contains("use a newer wirebench"), "{text}");
}

#[test]
fn refuses_a_malformed_file_clearly() {
    let err = render::render_file(&fixture("malformed.json"), None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("malformed.json is not a wirebench results file"), "{text}");
    assert!(text.contains("EOF"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("other.json");
    std::fs::write(&wrong, br#"{"name": "not results", "schema_version": 1}"#).unwrap();
    let text = render::render_file(&wrong, None).unwrap_err().to_string();
    assert!(text.contains("is not a wirebench results file"), "{text}");
    assert!(text.contains("missing field"), "{text}");
}

#[test]
fn reports_a_missing_file_and_an_unwritable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = render::render_file(&dir.path().join("nope.json"), None).unwrap_err();
    assert!(err.to_string().starts_with("cannot read "), "{err}");
    assert!(err.to_string().contains("nope.json"), "{err}");

    // The output "directory" is a file.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = render::render_file(&fixture("empty.json"), Some(&blocker.join("sub"))).unwrap_err();
    assert!(matches!(err, RenderError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("cannot create the report directory"), "{err}");
}

/// Renders the results file named by WIREBENCH_RESULTS into
/// WIREBENCH_REPORT_OUT (default: next to it) and prints sizes and times:
/// `WIREBENCH_RESULTS=/tmp/wb-quick/results.json cargo test --release -p
/// wirebench-reports --test render_file -- --ignored --nocapture`.
#[test]
#[ignore = "needs WIREBENCH_RESULTS"]
fn render_the_file_in_wirebench_results() {
    let Some(path) = std::env::var_os("WIREBENCH_RESULTS") else {
        println!("skipped: WIREBENCH_RESULTS not set");
        return;
    };
    let out = std::env::var_os("WIREBENCH_REPORT_OUT").map(std::path::PathBuf::from);
    let start = std::time::Instant::now();
    let results = wirebench_reports::Results::read(Path::new(&path)).unwrap();
    let read = start.elapsed();
    let html = render::html(&results).unwrap();
    let rendered_html = start.elapsed() - read;
    let rendered = render::render_file(Path::new(&path), out.as_deref()).unwrap();
    println!(
        "{} cells: read {read:?}; html {} bytes in {rendered_html:?}; whole render_file {:?}",
        results.cells.len(),
        html.len(),
        start.elapsed() - read - rendered_html
    );
    for p in rendered.paths() {
        println!("{} ({} bytes)", p.display(), std::fs::metadata(p).unwrap().len());
    }
}
