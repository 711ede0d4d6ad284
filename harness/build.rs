//! Records what the results file's environment section needs to know about
//! the build: rustc, the git commit, the profile, and the locked versions
//! of the libraries that shape the results.

use std::process::Command;

const CRATES: &[&str] = &[
    "tokio",
    "quinn",
    "rustls",
    "h2",
    "hyper",
    "tonic",
    "prost",
    "serde_json",
    "rmp-serde",
    "flatbuffers",
    "capnp",
    "bincode",
    "hdrhistogram",
    "zstd",
];

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!("cargo:rustc-env=WIREBENCH_RUSTC={}", output(&rustc, &["-V"]).unwrap_or_else(|| "unknown".into()));

    let commit = output("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=WIREBENCH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=WIREBENCH_GIT_DIRTY={dirty}");
    for path in ["../.git/HEAD", "../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }

    let profile = std::env::var("PROFILE").unwrap_or_default();
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=WIREBENCH_PROFILE={profile} (opt-level {opt})");

    // name=version pairs from the lockfile, for the crates listed above.
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = \"") {
            name = n.strip_suffix('"').map(str::to_owned);
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = \""), name.take())
            && CRATES.contains(&n.as_str())
        {
            versions.push(format!("{n}={}", v.trim_end_matches('"')));
        }
    }
    println!("cargo:rustc-env=WIREBENCH_CRATE_VERSIONS={}", versions.join(","));
}
