//! Every option of every command, fed zero, negative, huge, non-numeric,
//! NaN and empty values: each invocation either works or exits 2 with one
//! line on stderr; nothing panics and nothing aborts. The options come from
//! the command line's own definition, so a new option is swept without
//! editing this test. Each invocation runs under an address-space limit, so
//! an unbounded allocation shows as a failure instead of eating the
//! machine.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Values every option is tried with.
const VALUES: [&str; 7] = ["0", "-1", "99999999999999999999", "5000000000000000h", "x", "NaN", ""];

/// The most address space an invocation may take.
const MEMORY_LIMIT: u64 = 6 << 30;

/// What each command needs to get past its required arguments, and extra
/// flags that keep a valid invocation short (run lists its cells instead of
/// measuring them; instructions gets a valgrind that does not exist).
fn base(command: &str, results: &Path) -> Vec<String> {
    let r = results.display().to_string();
    let words: Vec<&str> = match command {
        "run" => vec!["run", "--list", "--formats", "json", "--workloads", "multiply", "--transports", "inproc"],
        "serve" => vec!["serve", "--transport", "tcp"],
        "dump" => vec!["dump", "--format", "json", "--workload", "multiply"],
        "sizes" => vec!["sizes"],
        "report" => vec!["report", &r],
        "compare" => vec!["compare", &r, &r],
        "merge" => vec!["merge", &r, "-o", "/dev/null"],
        "export" => vec!["export", &r, "--to", "bencher"],
        "instructions" => vec!["instructions", "--valgrind", "/nonexistent/valgrind", "--formats", "json"],
        other => vec![other],
    };
    words.into_iter().map(String::from).collect()
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs the binary with `args` under the memory limit; a server is
/// stopped after it has had time to start.
fn invoke(args: &[String], dir: &Path) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wirebench"));
    command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: MEMORY_LIMIT, rlim_max: MEMORY_LIMIT };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(if args[0] == "serve" { 3 } else { 60 });
    let mut timed_out = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        timed_out,
    }
}

/// Each (command, option) pair that takes a value, from the definition.
fn options() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cli = wirebench::cli::command();
    for sub in cli.get_subcommands() {
        let name = sub.get_name().to_owned();
        if sub.is_hide_set() || name == "help" {
            continue;
        }
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            // The test-only crash options abort the process on purpose.
            let aborts = long.ends_with("crash-after");
            if arg.get_action().takes_values() && long != "help" && long != "version" && !aborts {
                out.push((name.clone(), format!("--{long}")));
            }
        }
    }
    out
}

#[test]
fn no_value_of_any_option_crashes_wirebench() {
    let dir = common::temp();
    // A small real results file for the commands that read one.
    let (_, _) = common::run_into(
        &dir.path().join("r"),
        "--formats json --transports inproc --workloads multiply --concurrency 1",
        0,
    );
    let results = dir.path().join("r/results.json");
    let pairs = options();
    assert!(pairs.len() > 40, "the definition lists the options: {}", pairs.len());
    let mut cases: Vec<Vec<String>> = Vec::new();
    for (command, option) in &pairs {
        for value in VALUES {
            let mut args = base(command, &results);
            // The swept option replaces a value the base gives it.
            if let Some(i) = args.iter().position(|a| a == option) {
                args.drain(i..=i + 1);
            }
            args.push(format!("{option}={value}"));
            cases.push(args);
        }
    }
    // Two at a time: the sweep is long and the machine has two cores.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let halves: Vec<_> = cases
            .chunks(cases.len().div_ceil(2))
            .map(|chunk| {
                let dir = dir.path().to_owned();
                scope.spawn(move || {
                    let mut bad = Vec::new();
                    for args in chunk {
                        let o = invoke(args, &dir);
                        let what = format!("wirebench {}", args.join(" "));
                        if o.stderr.contains("panicked") || o.stdout.contains("panicked") {
                            bad.push(format!("{what}: panicked: {}", o.stderr));
                        } else if o.timed_out {
                            // A server that started and was stopped ran fine.
                            if !(args[0] == "serve" && o.stdout.starts_with("listening")) {
                                bad.push(format!("{what}: hung"));
                            }
                        } else if o.code == Some(0) {
                            // Accepted as given: fine.
                        } else if o.code == Some(2) {
                            let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                            if lines.len() != 1 || !lines[0].starts_with("wirebench: ") {
                                bad.push(format!("{what}: exit 2 without one line: {:?}", o.stderr));
                            }
                        } else {
                            bad.push(format!("{what}: exit {:?}: {}", o.code, o.stderr));
                        }
                    }
                    bad
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} invocations misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn out_of_range_values_name_the_option_and_the_range() {
    let dir = common::temp();
    for (args, says) in [
        ("run --samples 0 --list", "'--samples <N>': expected a whole number from 1 to 1000"),
        ("run --duration 99999999999999999999s --list", "'--duration <TIME>': expected a duration from 1ms to 1h"),
        ("run --concurrency -1 --list", "'--concurrency <N,..>': expected a whole number from 1 to 4096"),
        ("run --sizes 10GiB --list", "expected a size from 1B to 64MiB"),
        ("dump --format json --workload digest --records 100000000", "from 1 to 100000"),
        ("dump --format json --workload echo-1KiB --size 16", "--size"),
        ("serve --transport tcp --max-datagram 70000", "from 64B to 65507B"),
        ("serve --transport tcp --cpus 999", "CPU 999"),
        ("--quick --max-datagram 0 --list", "--max-datagram"),
    ] {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        let o = invoke(&args, dir.path());
        assert_eq!(o.code, Some(2), "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    }
}
