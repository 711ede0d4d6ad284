//! A link leaves nothing behind: not when dropped, not when torn down
//! explicitly (twice), not when a panic unwinds through its owner, and not
//! through its teardown handle or `teardown_all` from another thread.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::sync::Mutex;

use wirebench_link::{Link, LinkSpec, NETNS_DIR, teardown_all};

fn spec() -> LinkSpec {
    "rtt=2ms,loss=1%".parse().unwrap()
}

fn all_present(names: &[String]) -> bool {
    names.iter().all(|n| Path::new(NETNS_DIR).join(n).exists())
}

fn none_present(names: &[String]) -> bool {
    names.iter().all(|n| !Path::new(NETNS_DIR).join(n).exists())
}

#[test]
fn drop_removes_every_namespace() {
    // teardown_all reaches every link of the process: one test at a time.
    let _serial = common::serial();
    if !common::link_available() {
        return;
    }
    let link = Link::up(&spec(), 2, 1).unwrap();
    let names = link.netns_names().to_vec();
    assert_eq!(names.len(), 3);
    assert!(all_present(&names));
    drop(link);
    assert!(none_present(&names), "left behind: {:?}", common::our_netns());
}

#[test]
fn teardown_is_explicit_and_idempotent() {
    // teardown_all reaches every link of the process: one test at a time.
    let _serial = common::serial();
    if !common::link_available() {
        return;
    }
    let link = Link::up(&spec(), 1, 1).unwrap();
    let names = link.netns_names().to_vec();
    assert!(!link.is_torn_down());
    link.teardown().unwrap();
    assert!(link.is_torn_down());
    assert!(none_present(&names));
    link.teardown().unwrap();
    // Stats stay readable after teardown.
    assert_eq!(link.stats().up.len(), 1);
    drop(link);
}

#[test]
fn a_panic_in_the_owner_removes_everything() {
    // teardown_all reaches every link of the process: one test at a time.
    let _serial = common::serial();
    if !common::link_available() {
        return;
    }
    let names = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let link = Link::up(&spec(), 3, 1).unwrap();
        *names.lock().unwrap() = link.netns_names().to_vec();
        assert!(all_present(link.netns_names()));
        panic!("in the middle of a measurement");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 4);
    assert!(none_present(&names), "left behind: {:?}", common::our_netns());
}

#[test]
fn a_handle_or_teardown_all_removes_it_from_another_thread() {
    // teardown_all reaches every link of the process: one test at a time.
    let _serial = common::serial();
    if !common::link_available() {
        return;
    }
    let link = Link::up(&spec(), 1, 1).unwrap();
    let names = link.netns_names().to_vec();
    let handle = link.teardown_handle();
    std::thread::spawn(move || handle.teardown().unwrap()).join().unwrap();
    assert!(link.is_torn_down() && none_present(&names));

    let link = Link::up(&spec(), 1, 2).unwrap();
    let names = link.netns_names().to_vec();
    std::thread::spawn(|| teardown_all().unwrap()).join().unwrap();
    assert!(link.is_torn_down() && none_present(&names));
    // A handle outliving its link is harmless.
    let handle = link.teardown_handle();
    drop(link);
    handle.teardown().unwrap();
}

#[test]
fn bad_client_counts_create_nothing() {
    let _serial = common::serial();
    let before = common::our_netns();
    for clients in [0, wirebench_link::MAX_CLIENTS + 1] {
        let err = Link::up(&spec(), clients, 1).unwrap_err().to_string();
        assert!(err.contains(&format!("not {clients}")), "{err}");
    }
    assert_eq!(common::our_netns(), before);
}
