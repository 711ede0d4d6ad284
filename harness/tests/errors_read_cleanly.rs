//! Errors read as one clean line: an OS error is named once, not twice;
//! a corrupted results file is refused, not rendered; the server's log
//! holds plain text, no terminal colour codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

fn wirebench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wirebench")).args(args).output().unwrap()
}

#[test]
fn a_missing_file_is_named_once_with_its_reason_once() {
    let out = wirebench(&["report", "/nonexistent/results.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/results.json"), "{err}");
}

#[test]
fn a_corrupted_histogram_or_an_impossible_version_is_refused() {
    let dir = common::temp();
    let out = common::out_dir(&dir);
    common::run_into(&out, "--formats json --transports inproc --workloads multiply --concurrency 1", 0);
    let text = std::fs::read_to_string(out.join("results.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cell = value["cells"].as_object_mut().unwrap().values_mut().next().unwrap();
    let histogram = cell["histogram"].as_str().unwrap().to_owned();
    // Valid base64, wrong bytes inside.
    cell["histogram"] = serde_json::Value::String(format!("AAAA{}", &histogram[4..]));
    let corrupted = dir.path().join("corrupted.json");
    std::fs::write(&corrupted, serde_json::to_vec(&value).unwrap()).unwrap();
    let report = wirebench(&["report", corrupted.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert_eq!(report.status.code(), Some(2));
    let err = String::from_utf8_lossy(&report.stderr);
    assert!(err.contains("histogram") && err.contains("not a wirebench results file"), "{err}");

    value["schema_version"] = serde_json::Value::from(0);
    let zero = dir.path().join("zero.json");
    std::fs::write(&zero, serde_json::to_vec(&value).unwrap()).unwrap();
    let report = wirebench(&["report", zero.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert_eq!(report.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&report.stderr).contains("versions start at 1"));
}

#[test]
fn the_server_log_has_no_colour_codes() {
    use std::io::{BufRead, BufReader, Write};
    let dir = common::temp();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_wirebench"))
        .args(["serve", "--transport", "http2"])
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let line = BufReader::new(server.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let address = line.split(' ').nth(2).unwrap().to_owned();
    // Garbage instead of an HTTP/2 preface: the server logs a warning.
    let mut garbage = std::net::TcpStream::connect(&address).unwrap();
    garbage.write_all(b"this is not http/2\r\n\r\n").unwrap();
    drop(garbage);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&log_path).unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill().unwrap();
    let _ = server.wait();
    let log = std::fs::read(&log_path).unwrap();
    assert!(!log.is_empty(), "the server logged the broken connection");
    assert!(!log.contains(&0x1b), "ANSI escape in the log: {}", String::from_utf8_lossy(&log));
}
