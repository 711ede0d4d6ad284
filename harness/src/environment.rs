//! What a results file records about the machine and the build.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use wirebench_reports::model::Environment;

/// The environment of this process, now.
pub fn capture() -> Environment {
    Environment {
        cpu_model: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        os: os_name(),
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        rustc: env!("WIREBENCH_RUSTC").to_owned(),
        crate_versions: crate_versions(),
        git_commit: env!("WIREBENCH_GIT_COMMIT").to_owned(),
        git_dirty: env!("WIREBENCH_GIT_DIRTY") == "true",
        build_profile: env!("WIREBENCH_PROFILE").to_owned(),
        started_at: now_rfc3339(),
        finished_at: String::new(),
        command: std::env::args().collect(),
    }
}

/// Whether this binary was built with optimizations.
pub fn optimized() -> bool {
    !cfg!(debug_assertions)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn os_name() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

fn crate_versions() -> BTreeMap<String, String> {
    env!("WIREBENCH_CRATE_VERSIONS")
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The current time as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `secs` since the Unix epoch as RFC 3339, UTC.
pub fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// A compact timestamp for directory names: `20261122-161700`.
pub fn stamp() -> String {
    now_rfc3339().replace(['-', ':'], "").replace('T', "-").trim_end_matches('Z').to_owned()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_right() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_366_800), "2026-11-22T17:00:00Z");
    }

    #[test]
    fn the_build_is_described() {
        let env = capture();
        assert!(env.rustc.starts_with("rustc"), "{}", env.rustc);
        assert!(env.crate_versions.contains_key("tokio"), "{:?}", env.crate_versions);
        assert!(env.cores >= 1);
        assert!(!env.started_at.is_empty());
    }
}
