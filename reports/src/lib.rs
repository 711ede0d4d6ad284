//! The results of a wirebench run and everything rendered from them.
//!
//! - [`model`]: the results file (versioned JSON), read and written
//!   atomically.
//! - [`histogram`]: latency histograms as they are stored in it.
//!
//! The key design decision: reports are rendered from a results file
//! alone, never from a live run, so any report can be regenerated, shared
//! and compared later.

pub mod histogram;
pub mod model;

pub use model::{Cell, CellStatus, Results, SCHEMA_VERSION};
