//! Reports rendered from a results file: one self-contained HTML page,
//! a Markdown summary (for a PR comment or `$GITHUB_STEP_SUMMARY`) and a
//! CSV of every cell.
//!
//! Everything here reads a [`Results`] and nothing else, and never fails
//! on odd content: failed, unsupported and missing cells, zero cells or an
//! interrupted run all render, with the gaps shown. Only an unreadable or
//! unwritable file is an error.

use std::path::{Path, PathBuf};

use crate::model::{self, ReadError, Results};

mod csv;
mod html;
mod links;
mod markdown;
mod text;
mod view;

pub use csv::{COLUMNS as CSV_COLUMNS, csv};
pub use html::{CSP, html};
pub use markdown::markdown;

/// The files [`render_all`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The self-contained HTML report.
    pub html: PathBuf,
    /// The Markdown summary.
    pub markdown: PathBuf,
    /// One CSV row per cell.
    pub csv: PathBuf,
}

impl Rendered {
    /// All three paths, HTML first.
    pub fn paths(&self) -> [&Path; 3] {
        [&self.html, &self.markdown, &self.csv]
    }
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The results file could not be read, is not a results file, or is
    /// from a newer wirebench.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The output directory could not be created.
    #[error("cannot create the report directory {path}: {cause}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// A report file could not be written.
    #[error("cannot write {path}: {cause}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The page's data could not be serialized (a bug).
    #[error("cannot serialize the report data: {0}")]
    Data(#[from] serde_json::Error),
}

/// File names inside the output directory.
pub const HTML_FILE: &str = "index.html";
/// The Markdown summary's file name.
pub const MARKDOWN_FILE: &str = "summary.md";
/// The CSV's file name.
pub const CSV_FILE: &str = "results.csv";

/// Renders `index.html`, `summary.md` and `results.csv` into `out_dir`
/// (created if missing), each written atomically.
pub fn render_all(results: &Results, out_dir: &Path) -> Result<Rendered, RenderError> {
    std::fs::create_dir_all(out_dir)
        .map_err(|cause| RenderError::CreateDir { path: out_dir.display().to_string(), cause })?;
    let rendered =
        Rendered { html: out_dir.join(HTML_FILE), markdown: out_dir.join(MARKDOWN_FILE), csv: out_dir.join(CSV_FILE) };
    let page = html(results)?;
    write(&rendered.html, page.as_bytes())?;
    write(&rendered.markdown, markdown(results).as_bytes())?;
    write(&rendered.csv, csv(results).as_bytes())?;
    Ok(rendered)
}

/// Reads a results file and renders it into `out_dir`, or next to the
/// file when `out_dir` is `None`: backs `wirebench report`.
pub fn render_file(results_path: &Path, out_dir: Option<&Path>) -> Result<Rendered, RenderError> {
    let results = Results::read(results_path)?;
    let dir = match out_dir {
        Some(dir) => dir.to_path_buf(),
        None => results_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf(),
    };
    render_all(&results, &dir)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    model::write_atomic(path, bytes).map_err(|cause| RenderError::Write { path: path.display().to_string(), cause })
}
