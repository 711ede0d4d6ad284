//! Writing to stdout and stderr without ever panicking.
//!
//! `print!` panics when stdout is a closed pipe (`wirebench ... | head`).
//! A run must never lose its results to that, and a printing command
//! should end quietly, as ripgrep does. Everything the harness prints goes
//! through here: [`stdout`] reports a failed write to its caller (a
//! closed pipe is [`is_closed_pipe`]), [`stderr`] drops errors, since
//! there is nowhere left to report them.

use std::io::Write;

/// Writes `text` to stdout and flushes it.
pub fn stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `text` and a newline to stdout; errors are the caller's.
pub fn line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes `text` and a newline to stderr, ignoring a closed stderr.
pub fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
    let _ = err.flush();
}

/// Whether `error` (anywhere in its chain) is a write to a closed pipe.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().filter_map(|e| e.downcast_ref::<std::io::Error>()).any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
