//! A process that owns a link and gets SIGTERM or SIGINT removes it on its
//! signal path with `teardown_all` (as the harness does). The test runs
//! itself as the child process: a re-run of this binary with an
//! environment variable set.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wirebench_link::{Link, NETNS_DIR, teardown_all};

const CHILD: &str = "WIREBENCH_LINK_SIGNAL_CHILD";

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // An atomic store is async-signal-safe; the teardown runs on a thread.
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// The child: bring a link up, say its names, wait for a signal, tear down.
fn child() -> ! {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let link = Link::up(&"rtt=1ms".parse().unwrap(), 2, 1).unwrap();
    println!("ready {}", link.netns_names().join(","));
    while !SIGNALLED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    teardown_all().unwrap();
    println!("torn down");
    // Exit without unwinding, as a signal path does; the link is already gone.
    std::process::exit(0)
}

fn run_and_signal(signal: libc::c_int) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signals_tear_the_link_down", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let names: Vec<String> = loop {
        let line = lines.next().expect("the child exited before its link was up").unwrap();
        // The harness may have begun the line with "test NAME ... ".
        if let Some((_, names)) = line.split_once("ready ") {
            break names.split(',').map(str::to_owned).collect();
        }
    };
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| Path::new(NETNS_DIR).join(n).exists()));
    // SAFETY: signals a child we own.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "child: {status}");
    assert!(lines.any(|l| l.is_ok_and(|l| l.ends_with("torn down"))));
    for n in &names {
        assert!(!Path::new(NETNS_DIR).join(n).exists(), "{n} left behind after signal {signal}");
    }
}

#[test]
fn signals_tear_the_link_down() {
    if std::env::var_os(CHILD).is_some() {
        child();
    }
    if !common::link_available() {
        return;
    }
    run_and_signal(libc::SIGTERM);
    run_and_signal(libc::SIGINT);
}
