//! What can go wrong bringing a link up, using it, or taking it down.

use std::io;
use std::path::PathBuf;

/// An error of the driver (the pure queue and the spec parser have none, or
/// their own: [`crate::SpecError`]).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// This machine or process cannot emulate a link; each entry says what is
    /// missing and how to get it.
    #[error("link emulation unavailable: {}", missing.join("; "))]
    Unavailable {
        /// What is missing, one entry per missing thing.
        missing: Vec<String>,
    },
    /// The caller asked for a number of clients the topology does not have.
    #[error("a link takes 1 to {max} clients, not {requested}")]
    Clients {
        /// What was asked.
        requested: usize,
        /// The most the address plan holds.
        max: usize,
    },
    /// A client index past the link's clients.
    #[error("client {index} does not exist: the link has {clients} clients")]
    NoSuchClient {
        /// The index asked for.
        index: usize,
        /// The link's clients.
        clients: usize,
    },
    /// An `ip` (iproute2) command failed or complained.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, with its batch input if any.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the names involved.
        context: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A network namespace could not be entered or left.
    #[error("network namespace {}: {source}", path.display())]
    Netns {
        /// The namespace's path.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Teardown left something behind.
    #[error("teardown left {} behind: {reason}", leftovers.join(", "))]
    Leftovers {
        /// The namespaces still present.
        leftovers: Vec<String>,
        /// Why they could not be removed.
        reason: String,
    },
    /// A measurement of the link could not be made.
    #[error("link validation: {0}")]
    Validation(String),
    /// A thread of the driver panicked.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// The link was already torn down.
    #[error("the link is torn down")]
    TornDown,
}

impl LinkError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> LinkError {
        LinkError::Io { context: context.into(), source }
    }
}
