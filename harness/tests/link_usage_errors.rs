//! `--link` and `--clients` refuse what cannot work before anything
//! starts, with exit status 2 and one line: a bad spec names its key and
//! range, a machine without root or TUN is told what is missing, and a
//! link cannot sit in front of an in-process or remote server.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::process::Command;

fn wirebench(args: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wirebench")).args(args.split_whitespace()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(args: &str, says: &[&str]) {
    let (code, _, stderr) = wirebench(args);
    assert_eq!(code, Some(2), "{args}: {stderr}");
    assert_eq!(stderr.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{args}: one line: {stderr}");
    for s in says {
        assert!(stderr.contains(s), "{args}: {stderr:?} does not say {s:?}");
    }
}

#[test]
fn bad_specs_name_the_key_and_the_range() {
    refused("run --list --link loss=150%", &["--link", "loss must be between 0% and 100%, not 150%"]);
    refused("run --list --link rtt=11s", &["--link", "rtt"]);
    refused("run --list --link speed=1gbit", &["unknown link key `speed`"]);
    refused("run --list --link queue=64KiB", &["queue", "needs a rate"]);
    refused("run --list --link wan --link rtt=40ms,rate=100mbit,queue=512KiB", &["--link wan is given twice"]);
    refused("run --list --clients 0", &["--clients", "from 1 to 250"]);
    refused("run --list --clients 251", &["--clients", "from 1 to 250"]);
}

#[test]
fn a_link_cannot_front_an_in_process_or_remote_server() {
    refused("run --list --link wan --in-process", &["--link", "--in-process"]);
    refused("run --list --link wan --connect tcp=127.0.0.1:1", &["--link", "--connect"]);
}

#[test]
fn list_names_linked_cells_without_a_link() {
    let (code, stdout, stderr) = wirebench(
        "run --list --link wan --link rtt=20ms --clients 2 --formats bincode --transports tcp,unix --workloads multiply --concurrency 64",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let keys: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        keys,
        [
            "multiply/raw/tcp/c64k2@wan",
            "multiply/raw/unix/c64k2@wan",
            "multiply/bincode/tcp/c64k2@wan",
            "multiply/bincode/unix/c64k2@wan",
            "multiply/raw/tcp/c64k2@rtt=20ms",
            "multiply/raw/unix/c64k2@rtt=20ms",
            "multiply/bincode/tcp/c64k2@rtt=20ms",
            "multiply/bincode/unix/c64k2@rtt=20ms",
        ]
    );
}

/// Runs `wirebench` as the unprivileged user `nobody` (needs root and
/// util-linux's setpriv to get there).
fn as_nobody(args: &str, dir: &std::path::Path) -> Option<(Option<i32>, String)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err() {
        println!("skipped: needs root and setpriv to run as nobody");
        return None;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"])
        .arg(env!("CARGO_BIN_EXE_wirebench"))
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap();
    Some((out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

#[test]
fn without_root_a_link_is_a_usage_error_found_before_anything_starts() {
    let dir = common::temp();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = dir.path().join("out");
    let Some((code, stderr)) = as_nobody(
        &format!("run --quiet --link wan --formats bincode --transports tcp --out {}", out.display()),
        dir.path(),
    ) else {
        return;
    };
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("wirebench: --link: link emulation unavailable: not root"), "{stderr}");
    assert!(stderr.contains("CAP_NET_ADMIN") && stderr.contains("CAP_SYS_ADMIN"), "{stderr}");
    assert!(!out.exists(), "nothing started: no output directory");
    // --list needs no link, so it works anywhere.
    let (code, stderr) = as_nobody("run --list --link wan --formats bincode --transports tcp", dir.path()).unwrap();
    assert_eq!(code, Some(0), "{stderr}");
}
