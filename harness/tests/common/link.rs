//! For the tests of linked runs: skip without root or TUN (unless
//! `WIREBENCH_REQUIRE_LINK=1`), one linked run at a time, and what a run
//! must not leave behind.

use std::process::{Child, Output};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Whether links can be emulated here. Without root, `/dev/net/tun` or
/// `ip`, prints `skipped: <why>` and returns false, unless
/// `WIREBENCH_REQUIRE_LINK=1` makes that a failure.
pub fn available() -> bool {
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

/// Held by each linked test: links share the machine's cores, and their
/// timings are the point.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The namespaces process `pid` made that are still in /run/netns.
pub fn netns_of(pid: u32) -> Vec<String> {
    let prefix = format!("wb{pid}n");
    match std::fs::read_dir(wirebench_link::NETNS_DIR) {
        Ok(entries) => {
            entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(&prefix)).collect()
        }
        Err(_) => Vec::new(),
    }
}

/// Live `wirebench serve` processes started with `--max-message
/// <marker>`: each test gives its run a message limit of its own, so its
/// server can be told from every other test's.
pub fn servers_with(marker: usize) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let marker = marker.to_string();
            args.iter().any(|a| *a == b"serve")
                && args.windows(2).any(|w| w[0] == b"--max-message" && w[1] == marker.as_bytes())
        })
        .collect()
}

/// Waits for a spawned run, then checks it left no namespace and no
/// server behind.
pub fn finish(child: Child, marker: usize) -> Output {
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    // The server gets SIGTERM and a moment to stop; give it that moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !servers_with(marker).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(netns_of(pid), Vec::<String>::new(), "namespaces left behind");
    assert_eq!(servers_with(marker), Vec::<u32>::new(), "server processes left behind");
    output
}
