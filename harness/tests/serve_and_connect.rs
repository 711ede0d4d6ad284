//! `wirebench serve` in one process, `wirebench run --connect` in another:
//! the two halves of a two-machine run.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use wirebench_reports::model::CellStatus;

#[test]
fn serve_prints_its_sockets_and_run_drives_it() {
    let dir = temp();
    let sock = dir.path().join("wb.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_wirebench"))
        .args([
            "serve",
            "--transport",
            "tcp",
            "--listen",
            "127.0.0.1:0",
            "--transport",
            "quic",
            "--transport",
            "unix",
            "--listen",
        ])
        .arg(&sock)
        .args(["--transport", "http2", "--tls"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut connect = Vec::new();
    for expected in ["tcp", "quic", "unix", "http2"] {
        let line = lines.next().unwrap().unwrap();
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("listening"), "{line}");
        assert_eq!(words.next(), Some(expected), "{line}");
        let address = words.next().unwrap();
        if matches!(expected, "quic" | "http2") {
            assert!(address.contains("#sha256:"), "{expected} must advertise its pin: {line}");
        } else {
            assert!(!address.contains('#'), "{line}");
        }
        if expected != "unix" {
            assert!(!address.ends_with(":0"), "port 0 is resolved: {line}");
        }
        connect.push(format!("{expected}={address}"));
    }
    let connect = connect.join(",");
    let (_, results) =
        run(&format!("--connect {connect} --tls --formats protobuf --workloads multiply --concurrency 1"), 0);
    assert_eq!(results.config.server, "remote");
    // tcp, quic, unix, http2 (raw and protobuf each) and inproc; nothing else.
    let transports: std::collections::BTreeSet<_> = results.cells.values().map(|c| c.transport.as_str()).collect();
    assert_eq!(transports.into_iter().collect::<Vec<_>>(), vec!["http2", "inproc", "quic", "tcp", "unix"]);
    assert!(results.cells.values().all(|c| c.status == CellStatus::Ok), "{:?}", statuses(&results));
    // The remote server's tcp endpoint carried its CPU figures.
    let tcp = &results.cells["multiply/protobuf/tcp/c1"];
    assert!(tcp.metrics.as_ref().unwrap().server_user_us_per_call.is_some());

    // SIGTERM stops the server gracefully.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());
    assert!(!sock.exists(), "the unix socket file is removed at shutdown");
}

#[test]
fn serve_refuses_what_it_cannot_serve() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_wirebench")).args(["serve", "--transport", "inproc"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("inproc"));
    let output = Command::new(env!("CARGO_BIN_EXE_wirebench")).args(["serve", "--transport", "smtp"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}
