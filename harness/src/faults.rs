//! Test-only faults the harness injects into its own children in the
//! middle of a cell, so that the fault tests do not depend on timing:
//! `--server-crash-in KEY` aborts the child server (SIGABRT, as a crash
//! would) and `--broker-crash-in KEY` kills the cell's broker (SIGKILL),
//! halfway through the measured window of the cell `KEY`, the first time
//! it runs. The run's ordinary checks after the cell then see the death,
//! fail that cell and start a replacement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::brokers::BrokerCpuSource;

/// The armed faults of one cell. Joined when dropped: by then each
/// target has been signalled and has died (a zombie until the run reaps
/// it), so the checks after the cell cannot miss it.
#[derive(Debug)]
pub struct Crash(Vec<JoinHandle<()>>);

impl Drop for Crash {
    fn drop(&mut self) {
        for thread in self.0.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Arms the faults the run asks for in `spec`'s cell.
pub fn during(
    spec: &crate::plan::CellSpec,
    options: &crate::run::RunOptions,
    servers: &crate::servers::Servers,
) -> Crash {
    static SERVER_FIRED: AtomicBool = AtomicBool::new(false);
    static BROKER_FIRED: AtomicBool = AtomicBool::new(false);
    let key = spec.key();
    let after = options.timing.warmup + options.timing.duration / 2;
    let mut threads = Vec::new();
    if options.server.server_crash_in.as_deref() == Some(key.as_str())
        && let Some(pid) = servers.child_pid()
        && !SERVER_FIRED.swap(true, Ordering::SeqCst)
    {
        threads.push(kill_after(pid, libc::SIGABRT, after));
    }
    if options.server.broker_crash_in.as_deref() == Some(key.as_str())
        && let BrokerCpuSource::Tree(roots) = servers.broker_cpu(spec.transport)
        && let Some(&pid) = roots.last()
        && !BROKER_FIRED.swap(true, Ordering::SeqCst)
    {
        threads.push(kill_after(pid, libc::SIGKILL, after));
    }
    Crash(threads)
}

/// Sends `signal` to our child `pid` after `after`, then waits (up to
/// 10 s, for a core dump) until it is dead.
fn kill_after(pid: u32, signal: libc::c_int, after: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        // SAFETY: signalling our own child: its pid cannot be reused
        // before the main thread reaps it.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && alive(pid) {
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Whether `pid` is still running: not gone and not a zombie.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name, which may itself
    // hold spaces or parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}
