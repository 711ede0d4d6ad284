//! A server that cannot be reached, or that speaks another protocol, fails
//! its cells quickly with the reason, instead of being called in a tight
//! loop for the whole window.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A child that cannot outlive a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
use wirebench_reports::model::CellStatus;

#[test]
fn a_closed_port_fails_the_cell_after_bounded_retries() {
    // A port nothing listens on: bind one, learn it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let (_, results) = run(
        &format!(
            "--formats bincode --workloads multiply --concurrency 1 --transports tcp --connect tcp=127.0.0.1:{port}"
        ),
        1,
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let cells: Vec<_> = results.cells.values().collect();
    assert!(!cells.is_empty());
    for cell in cells {
        assert_eq!(cell.status, CellStatus::Failed, "{}", cell.key);
        let error = cell.error.as_deref().unwrap();
        assert!(error.contains("cannot connect after 5 attempts"), "{}: {error}", cell.key);
        assert!(error.contains("refused"), "the connect error is the reason: {error}");
    }
}

#[test]
fn a_server_speaking_another_protocol_is_called_a_few_times_not_millions() {
    // An http2 server behind a tcp endpoint: every connection breaks.
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_wirebench"))
            .args(["serve", "--transport", "http2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = BufReader::new(server.0.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let address = line.split(' ').nth(2).unwrap().to_owned();
    let (_, results) = run(
        &format!("--formats bincode --workloads multiply --concurrency 1,64 --transports tcp --connect tcp={address}"),
        1,
    );
    for cell in results.cells.values() {
        assert_eq!(cell.status, CellStatus::Failed, "{}", cell.key);
        let errors = cell.metrics.as_ref().map_or(0, |m| m.errors + m.timeouts);
        assert!(errors <= 64, "{}: {errors} errors: a broken connection ends the cell", cell.key);
        assert!(cell.error.is_some());
    }
}
