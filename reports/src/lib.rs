//! The results of a wirebench run and everything rendered from them.
//!
//! - [`model`]: the results file (versioned JSON), read and written
//!   atomically.
//! - [`histogram`]: latency histograms as they are stored in it.
//! - [`links`]: the emulated links a run crossed, the server's machine,
//!   and the client processes of a cell.
//! - [`render`]: the reports rendered from it: a self-contained HTML page,
//!   a Markdown summary and a CSV of every cell.
//! - [`compare`]: two results files judged against each other, metric by
//!   metric (the CI regression gate).
//! - [`exports`]: Bencher and github-action-benchmark formats, and merging
//!   repeated runs.
//! - [`replicates`]: a cell's replicates (passes and merged runs), its
//!   intervals, and the fastest of several cells said honestly.
//! - [`stats`]: Student's t, Welch's test and the corrections the
//!   verdicts rest on (`docs/statistics.md` explains them).
//!
//! The key design decisions: reports are rendered from a results file
//! alone, never from a live run, so any report can be regenerated, shared
//! and compared later; and every statement about noise (a regression, a
//! fastest cell) rests on replicates of the same cell, never on how other
//! cells moved.

pub mod compare;
pub mod exports;
pub mod histogram;
pub mod links;
pub mod model;
pub mod render;
pub mod replicates;
pub mod stats;

pub use model::{Cell, CellStatus, Results, SCHEMA_VERSION};
pub use render::{RenderError, Rendered, render_all, render_file};
