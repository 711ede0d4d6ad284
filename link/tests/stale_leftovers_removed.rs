//! A process killed outright (SIGKILL: no teardown runs) leaves its
//! namespaces; they are found by the dead owner's pid in their names and
//! removed by `remove_stale`, which the next `Link::up` also calls.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wirebench_link::{Link, NETNS_DIR, remove_stale, stale_netns};

const CHILD: &str = "WIREBENCH_LINK_KILLED_CHILD";

/// Starts a child that brings a link up and waits, kills it with SIGKILL,
/// and returns the names it left.
fn killed_child_leftovers() -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_killed_owner_leaves_names_that_are_removed", "--nocapture", "--test-threads=1"])
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
    child.kill().unwrap();
    child.wait().unwrap();
    names
}

#[test]
fn a_killed_owner_leaves_names_that_are_removed() {
    if std::env::var_os(CHILD).is_some() {
        let link = Link::up(&"rtt=1ms".parse().unwrap(), 2, 1).unwrap();
        println!("ready {}", link.netns_names().join(","));
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    if !common::link_available() {
        return;
    }
    let exists = |n: &String| Path::new(NETNS_DIR).join(n).exists();

    let left = killed_child_leftovers();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(exists), "SIGKILL runs no teardown, so the names stay");
    let stale = stale_netns().unwrap();
    assert!(left.iter().all(|n| stale.contains(n)), "{left:?} not in {stale:?}");
    let removed = remove_stale().unwrap();
    assert!(left.iter().all(|n| removed.contains(n)));
    assert!(!left.iter().any(exists));

    // The next Link::up cleans up by itself, and keeps the live link's.
    let left = killed_child_leftovers();
    assert!(left.iter().all(exists));
    let link = Link::up(&"rtt=1ms".parse().unwrap(), 1, 1).unwrap();
    assert!(!left.iter().any(exists));
    assert!(stale_netns().unwrap().iter().all(|n| !link.netns_names().contains(n)));
    assert!(link.netns_names().iter().all(exists));
}
