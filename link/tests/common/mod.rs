//! Shared by the device tests: skip without root or TUN (unless
//! `WIREBENCH_REQUIRE_LINK=1`), and one lock so timing tests of one binary
//! do not run at the same time.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Whether the device tests can run here. Without root, `/dev/net/tun` or
/// `ip` they print `skipped: <why>` and pass, unless
/// `WIREBENCH_REQUIRE_LINK=1` makes that a failure.
pub fn link_available() -> bool {
    match wirebench_link::check_available() {
        Ok(()) => true,
        Err(e) => {
            if std::env::var("WIREBENCH_REQUIRE_LINK").is_ok_and(|v| v == "1") {
                panic!("WIREBENCH_REQUIRE_LINK=1 but {e}");
            }
            println!("skipped: {e}");
            false
        }
    }
}

/// Held by each timing test for its whole run.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Our namespaces present in /run/netns right now.
pub fn our_netns() -> Vec<String> {
    let prefix = format!("wb{}n", std::process::id());
    match std::fs::read_dir(wirebench_link::NETNS_DIR) {
        Ok(entries) => {
            entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(&prefix)).collect()
        }
        Err(_) => Vec::new(),
    }
}
