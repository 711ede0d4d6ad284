//! The wirebench harness: the `wirebench` command.
//!
//! - [`options`], [`limits`]: the command line's options and the range of
//!   every value, checked before any work starts.
//! - [`plan`]: the matrix, its cells and their keys.
//! - [`servers`]: the server side: a child `wirebench serve` process (so
//!   client and server CPU are counted apart), in-process, or remote;
//!   [`brokers`]: the broker daemons of the broker rows, started first.
//! - [`cell`]: one cell: connect, measure, verify, describe.
//! - [`measure`]: the closed- and open-loop load generators and what they
//!   record (HdrHistograms, CPU, bytes on the wire).
//! - [`run`], [`passes`]: the matrix, cell by cell and pass by pass,
//!   into an atomically written results file that survives failures and
//!   Ctrl-C.
//! - [`link`]: `--link`: the emulated links a run crosses, measured and
//!   recorded, torn down on every way out.
//! - [`clients`]: `--clients K`: K client processes per cell, started
//!   together, merged exactly.
//! - [`remote`]: the server's own machine, read over the control
//!   connection.
//! - [`serve`], [`commands`]: the other subcommands.
//! - [`instructions`], [`call_counts`], [`syscalls`], [`valgrind`]: exact
//!   costs, counted under valgrind: instructions per codec operation, and
//!   instructions and system calls per whole call, client and server.
//!
//! The key design decision: the measured window is defined by the
//! snapshots taken at its edges (client thread CPU, wire counters, server
//! CPU), and only calls completing between them are recorded, so every
//! per-call figure divides quantities measured over the same interval.

pub mod affinity;
pub mod brokers;
pub mod call_counts;
pub mod cell;
pub mod cli;
pub mod clients;
pub(crate) mod codec;
pub mod commands;
pub mod environment;
pub mod faults;
pub mod instructions;
pub mod limits;
pub mod link;
pub mod measure;
pub mod modes;
pub mod options;
pub mod output;
pub mod passes;
pub mod plan;
pub mod progress;
pub mod remote;
pub mod run;
pub mod serve;
pub mod servers;
pub mod syscalls;
pub mod valgrind;
