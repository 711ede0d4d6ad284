//! Deterministic CPU cost: instructions per encode, decode and in-place
//! access, counted by valgrind's callgrind.
//!
//! `wirebench instructions` starts one `wirebench __count --format F`
//! child per format under `valgrind --tool=callgrind
//! --toggle-collect=wirebench_measured --dump-after=wirebench_measured`.
//! The child prepares every workload's data outside the measured
//! function, warms each operation once, then calls it once inside
//! [`wirebench_measured`]: callgrind counts only what runs in there and
//! writes one profile per call, in a fixed order. Instruction counts do
//! not depend on the machine's load, so two runs of the same build agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use wirebench_formats::{Dataset, Format, FormatId, FormatVisitor, Method, Workload};
use wirebench_reports::model::Instructions;

/// The operations counted, in the order the child runs them.
pub const OPERATIONS: [&str; 3] = ["encode", "decode", "access"];

/// The function whose inclusive cost callgrind counts. Not inlined and not
/// mangled, so callgrind finds it by this name.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn wirebench_measured(op: &mut dyn FnMut()) {
    op();
}

/// The (workload, operation) pairs `__count` measures for `F`, in order.
pub fn plan<F: Format>(workloads: &[Workload]) -> Vec<(Workload, &'static str)> {
    let mut plan = Vec::new();
    for &w in workloads {
        for op in OPERATIONS {
            if op != "access" || F::PROPERTIES.zero_copy {
                plan.push((w, op));
            }
        }
    }
    plan
}

struct Count<'a>(&'a [Workload], u64);

impl FormatVisitor for Count<'_> {
    type Output = anyhow::Result<()>;

    /// The child's work: each operation once to warm up, once measured.
    fn visit<F: Format>(self) -> anyhow::Result<()> {
        for (workload, op) in plan::<F>(self.0) {
            let data = Dataset::generate(workload, self.1);
            let method: Method = workload.method();
            let native = F::prepare(&data.request());
            let mut scratch = F::Scratch::default();
            let encoded = F::encode_request(&mut scratch, &native)?.to_vec();
            let mut failed = None;
            let mut run = || match op {
                "encode" => {
                    if let Err(e) = F::encode_request(&mut scratch, &native) {
                        failed = Some(e);
                    }
                }
                "decode" => match F::decode_request(method, &encoded) {
                    // Dropped outside the measured call: decoding is counted,
                    // freeing the result is not.
                    Ok(decoded) => std::mem::forget(std::hint::black_box(decoded)),
                    Err(e) => failed = Some(e),
                },
                _ => {
                    if let Err(e) = F::access_request(method, &encoded).map(std::hint::black_box) {
                        failed = Some(e);
                    }
                }
            };
            run();
            wirebench_measured(&mut run);
            if let Some(e) = failed {
                bail!("{} {workload} {op}: {e}", F::NAME);
            }
        }
        Ok(())
    }
}

/// `wirebench __count`: the child side.
pub fn child(format: FormatId, workloads: &[Workload], seed: u64) -> anyhow::Result<()> {
    format.visit(Count(workloads, seed))
}

struct Planned<'a>(&'a [Workload]);

impl FormatVisitor for Planned<'_> {
    type Output = Vec<(Workload, &'static str)>;
    fn visit<F: Format>(self) -> Self::Output {
        plan::<F>(self.0)
    }
}

/// The `Ir` total of a callgrind profile.
pub fn total(profile: &str) -> Option<u64> {
    profile
        .lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The valgrind version line, or an error saying how to get valgrind.
pub fn valgrind_version(valgrind: &Path) -> anyhow::Result<String> {
    let out = Command::new(valgrind).arg("--version").output().with_context(|| {
        format!("cannot run {}: install valgrind (Debian: apt-get install valgrind)", valgrind.display())
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Counts every format's operations on `workloads`.
pub fn count(valgrind: &Path, formats: &[FormatId], workloads: &[Workload], seed: u64) -> anyhow::Result<Instructions> {
    let version = valgrind_version(valgrind)?;
    let exe = std::env::current_exe().context("cannot find the wirebench binary")?;
    let dir = std::env::temp_dir().join(format!("wirebench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut counts = BTreeMap::new();
    let workload_list: Vec<String> = workloads.iter().map(ToString::to_string).collect();
    for &format in formats {
        let out = dir.join(format!("{}.out", format.name()));
        let status = Command::new(valgrind)
            .args(["--tool=callgrind", "--toggle-collect=wirebench_measured", "--dump-after=wirebench_measured"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg("--quiet")
            .arg(&exe)
            .args([
                "__count",
                "--format",
                format.name(),
                "--seed",
                &seed.to_string(),
                "--workloads",
                &workload_list.join(","),
            ])
            .status()
            .with_context(|| format!("cannot run {}", valgrind.display()))?;
        if !status.success() {
            bail!("callgrind of {format} failed: {status}");
        }
        let planned = format.visit(Planned(workloads));
        let dumps = dump_files(&out, planned.len())?;
        for ((workload, op), path) in planned.into_iter().zip(dumps) {
            let profile = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let n = total(&profile).with_context(|| format!("no instruction total in {}", path.display()))?;
            counts.insert(format!("{workload}/{format}/{op}"), n);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Instructions { tool: format!("{version} callgrind"), counts, ..Instructions::default() })
}

/// The counts as a table: one line per key, whole calls with their system
/// calls per call.
pub fn table(counts: &Instructions) -> String {
    let mut table = String::new();
    for (key, n) in &counts.counts {
        match counts.syscalls.get(key) {
            Some(s) => table.push_str(&format!("{key:<48} {n:>14} {s:>9.2} syscalls\n")),
            None => table.push_str(&format!("{key:<48} {n:>14}\n")),
        }
    }
    table
}

/// The numbered dump files of one callgrind run, in dump order. Callgrind
/// names the dumps of `--callgrind-out-file=X` as `X.1`, `X.2`, ...
fn dump_files(out: &Path, expected: usize) -> anyhow::Result<Vec<PathBuf>> {
    let files: Vec<PathBuf> = (1..=expected).map(|i| PathBuf::from(format!("{}.{i}", out.display()))).collect();
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        bail!("callgrind wrote no {} ({} dumps expected)", missing.display(), expected);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_from_profiles() {
        assert_eq!(total("version: 1\nevents: Ir\nsummary: 12345\n"), Some(12345));
        assert_eq!(total("totals: 77 3\n"), Some(77));
        assert_eq!(total("nothing"), None);
    }

    #[test]
    fn plans_include_access_only_for_zero_copy_formats() {
        let w = [Workload::Multiply];
        assert_eq!(FormatId::FlatBuffers.visit(Planned(&w)).len(), 3);
        assert_eq!(FormatId::Json.visit(Planned(&w)).len(), 2);
    }

    #[test]
    fn the_child_runs_every_operation_natively() {
        child(FormatId::Capnp, &[Workload::Multiply, Workload::Digest { records: 3 }], 1).unwrap();
    }
}
