//! The lifecycle every broker daemon shares, written once: find the
//! binary, pick free loopback ports, write a throwaway configuration into
//! a fresh directory, spawn the daemon in its own process group (pinned to
//! the server's CPUs, told to die with us), wait until a real client
//! handshake succeeds, count the CPU of its whole process tree, and stop
//! it and everything it spawned, removing the directory, on every path
//! (drop, error, interrupted run).
//!
//! The process tree is read from `/proc`: every process whose ancestry
//! reaches one of the daemon's own processes. Brokers fork helpers that
//! leave the process group (Erlang's `erl_child_setup` and
//! `inet_gethost` call `setsid`), so stopping signals the group and then
//! every descendant found in `/proc` before the signals, since a child
//! whose parent died is re-parented and no longer shows its ancestry.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::cpu::CpuTime;

use super::{BrokerInfo, BrokerSettings};

/// A broker daemon that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The daemon's binary is not installed; the message says how to get it.
    #[error("{0}")]
    NotInstalled(String),
    /// The throwaway directory or log could not be made.
    #[error("{broker}: cannot prepare {path}: {cause}")]
    Setup {
        /// Broker name.
        broker: &'static str,
        /// The path.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// Its configuration could not be written.
    #[error("{broker}: {message}")]
    Config {
        /// Broker name.
        broker: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The binary would not start.
    #[error("{broker}: cannot start {binary}: {cause}")]
    Spawn {
        /// Broker name.
        broker: &'static str,
        /// The program.
        binary: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// It exited before it was ready.
    #[error("{broker}: {binary} {how} during start-up; its log ends: {log}")]
    Exited {
        /// Broker name.
        broker: &'static str,
        /// The program.
        binary: String,
        /// How it ended.
        how: String,
        /// The last lines of its log.
        log: String,
    },
    /// No handshake succeeded within the deadline.
    #[error("{broker}: no client handshake succeeded within {deadline:?} (last: {last}); its log ends: {log}")]
    NotReady {
        /// Broker name.
        broker: &'static str,
        /// The deadline.
        deadline: Duration,
        /// The last handshake error.
        last: String,
        /// The last lines of its log.
        log: String,
    },
}

/// How to start a daemon.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Its limits.
    pub settings: BrokerSettings,
    /// CPUs to pin it (and everything it spawns) to.
    pub cpus: Option<Vec<usize>>,
    /// Its log (stdout and stderr), appended to.
    pub log: PathBuf,
}

/// Looks `binary` up on `PATH`, then in the sbin directories (daemons
/// live there and root's `PATH` may lack them).
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path).chain(sbin).map(|dir| dir.join(binary)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A free loopback port: bound to port 0 and released. Another process
/// can take it before the daemon binds it; [`RunningBroker::start`] then
/// retries with new ports.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Start attempts when a port race is lost (the daemon exits at once).
const ATTEMPTS: u32 = 3;
/// How long a stopping daemon gets after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running daemon and everything it spawned. Dropping it stops them
/// all and removes its directory.
#[derive(Debug)]
pub struct RunningBroker {
    info: BrokerInfo,
    /// Helpers first, the broker last.
    children: Vec<Child>,
    pgid: libc::pid_t,
    dir: PathBuf,
    address: SocketAddr,
    log: PathBuf,
    started: Instant,
}

impl RunningBroker {
    /// Starts `info`'s daemon on free loopback ports and waits until a
    /// client handshake succeeds.
    pub async fn start(info: &BrokerInfo, options: &StartOptions) -> Result<RunningBroker, BrokerError> {
        let broker = info.kind.name();
        let binary =
            find_binary(info.daemon.binary).ok_or_else(|| BrokerError::NotInstalled(info.daemon.install_hint()))?;
        if let Some(parent) = options.log.parent() {
            std::fs::create_dir_all(parent).map_err(|cause| BrokerError::Setup {
                broker,
                path: parent.display().to_string(),
                cause,
            })?;
        }
        let mut attempt = 1;
        loop {
            match RunningBroker::start_once(info, options, &binary).await {
                Err(BrokerError::Exited { .. }) if attempt < ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn start_once(
        info: &BrokerInfo,
        options: &StartOptions,
        binary: &Path,
    ) -> Result<RunningBroker, BrokerError> {
        let broker = info.kind.name();
        let setup = |path: &Path, cause| BrokerError::Setup { broker, path: path.display().to_string(), cause };
        let dir = throwaway_dir(broker).map_err(|cause| setup(&std::env::temp_dir(), cause))?;
        let mut ports = Vec::with_capacity(1 + info.extra_ports);
        while ports.len() < 1 + info.extra_ports {
            let port = free_port().map_err(|cause| setup(Path::new("127.0.0.1:0"), cause))?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, ports[0]));
        // From here on, dropping `running` stops whatever was spawned and
        // removes the directory, whichever way this function returns.
        let mut running = RunningBroker {
            info: *info,
            children: Vec::new(),
            pgid: 0,
            dir,
            address,
            log: options.log.clone(),
            started: Instant::now(),
        };
        let commands = (info.commands)(binary, &running.dir, &ports, &options.settings)
            .map_err(|e| BrokerError::Config { broker, message: e.to_string() })?;
        for mut command in commands {
            let program = command.get_program().to_string_lossy().into_owned();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&options.log)
                .map_err(|cause| setup(&options.log, cause))?;
            let log2 = log.try_clone().map_err(|cause| setup(&options.log, cause))?;
            command.stdin(Stdio::null()).stdout(log).stderr(log2);
            let pgid = running.pgid;
            let cpus = options.cpus.clone().unwrap_or_default();
            // SAFETY: only async-signal-safe calls between fork and exec, on
            // data prepared before the fork: the daemon dies with this
            // thread, leaves our process group (a Ctrl-C meant for the run
            // does not reach it) for its own, and is pinned.
            unsafe {
                command.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    libc::setpgid(0, pgid);
                    if !cpus.is_empty() {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        for &cpu in &cpus {
                            libc::CPU_SET(cpu, &mut set);
                        }
                        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    }
                    Ok(())
                });
            }
            let child = command.spawn().map_err(|cause| BrokerError::Spawn { broker, binary: program, cause })?;
            if running.pgid == 0 {
                running.pgid = child.id() as libc::pid_t;
            }
            running.children.push(child);
        }
        running.wait_ready().await?;
        Ok(running)
    }

    /// Polls the readiness handshake until it succeeds, the daemon exits,
    /// or the deadline passes.
    async fn wait_ready(&mut self) -> Result<(), BrokerError> {
        let broker = self.info.kind.name();
        let deadline = self.info.start_deadline;
        let until = Instant::now() + deadline;
        let mut last = String::from("no attempt finished");
        loop {
            if let Some((binary, how)) = self.exited() {
                return Err(BrokerError::Exited { broker, binary, how, log: self.log_tail() });
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BrokerError::NotReady { broker, deadline, last, log: self.log_tail() });
            }
            // Each attempt gets at most a second: a broker whose port is
            // open before it serves may hold a handshake unanswered.
            match tokio::time::timeout(left.min(Duration::from_secs(1)), (self.info.ready)(self.address)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "the handshake got no answer within 1 s".into(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Which broker.
    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    /// Where clients reach it.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its own processes (helpers, then the broker): the roots of the
    /// process tree whose CPU counts as the broker's.
    pub fn roots(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// If one of its own processes has ended: which, and how.
    pub fn exited(&mut self) -> Option<(String, String)> {
        let program = self.info.daemon.binary;
        let last = self.children.len().saturating_sub(1);
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                let which = if i == last { program.to_owned() } else { format!("helper {i} of {program}") };
                return Some((which, describe_exit(status)));
            }
        }
        None
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 8)
    }

    /// Sends SIGKILL to the broker's own process alone (fault tests: a
    /// broker that dies mid-cell).
    pub fn kill(&mut self) {
        if let Some(child) = self.children.last_mut() {
            let _ = child.kill();
        }
    }

    /// How long it has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops it and everything it spawned: SIGTERM to the process group and
    /// to every descendant, up to `GRACE` for them to exit, then SIGKILL.
    /// Idempotent; also what dropping does.
    pub fn stop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let tree = descendants(&self.roots());
        signal_all(self.pgid, &tree, libc::SIGTERM);
        let until = Instant::now() + GRACE;
        while Instant::now() < until {
            let reaped = self.children.iter_mut().all(|c| c.try_wait().ok().flatten().is_some());
            if reaped && tree.iter().all(|&pid| !alive(pid)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left, and anything spawned since the first look.
        let mut rest = descendants(&self.roots());
        rest.extend(tree);
        signal_all(self.pgid, &rest, libc::SIGKILL);
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal_all(pgid: libc::pid_t, pids: &BTreeSet<u32>, signal: libc::c_int) {
    // SAFETY: signalling a process group we created and processes that
    // descend from our own children.
    unsafe {
        if pgid > 0 {
            libc::kill(-pgid, signal);
        }
        for &pid in pids {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    read_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// A fresh directory under the temporary directory, private to this start.
fn throwaway_dir(broker: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..1000 {
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wirebench-{broker}-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name for a broker directory"))
}

/// How a process ended, in words.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".into(),
    }
}

/// The last `lines` non-empty lines of a log, joined by ` | `.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(log) else { return format!("(no log at {})", log.display()) };
    let text = String::from_utf8_lossy(&text);
    let mut tail: Vec<&str> = text.lines().rev().filter(|l| !l.trim().is_empty()).take(lines).collect();
    tail.reverse();
    if tail.is_empty() { "(empty)".into() } else { tail.join(" | ") }
}

// ---------------------------------------------------------------- /proc

/// The fields of `/proc/PID/stat` the tree needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    ppid: u32,
    /// utime + cutime, in clock ticks (a process's own time and that of
    /// its children it reaped).
    user: u64,
    /// stime + cstime.
    system: u64,
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15),
    // cutime (16), cstime (17); fields[0] is field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    let ticks = |n: usize| field(n).map(|v| v.max(0) as u64);
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: u32::try_from(field(4)?).ok()?,
        user: ticks(14)? + ticks(16)?,
        system: ticks(15)? + ticks(17)?,
    })
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process in `/proc` with its parent.
fn all_processes() -> BTreeMap<u32, Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return BTreeMap::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .collect()
}

/// `roots` and every process descending from them.
fn tree(roots: &[u32], all: &BTreeMap<u32, Stat>) -> BTreeSet<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (&pid, stat) in all {
        children.entry(stat.ppid).or_default().push(pid);
    }
    let mut found: BTreeSet<u32> = BTreeSet::new();
    let mut queue: Vec<u32> = roots.iter().copied().filter(|pid| all.contains_key(pid)).collect();
    while let Some(pid) = queue.pop() {
        if found.insert(pid) {
            queue.extend(children.get(&pid).into_iter().flatten());
        }
    }
    found
}

/// The descendants of `roots` (roots included) right now.
fn descendants(roots: &[u32]) -> BTreeSet<u32> {
    tree(roots, &all_processes())
}

/// CPU time of a process tree, from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeCpu {
    /// User and system time of every live process of the tree, plus what
    /// its members reaped from children that ended.
    pub cpu: CpuTime,
    /// Processes counted.
    pub processes: usize,
}

/// The clock ticks per second of `/proc`'s times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// The CPU time of `roots` and all their descendants. `None` if none of
/// the roots is alive.
pub fn tree_cpu(roots: &[u32]) -> Option<TreeCpu> {
    let all = all_processes();
    let members = tree(roots, &all);
    if members.is_empty() {
        return None;
    }
    let hz = clock_ticks();
    let (mut user, mut system) = (0u64, 0u64);
    for pid in &members {
        if let Some(stat) = all.get(pid) {
            user += stat.user;
            system += stat.system;
        }
    }
    let micros = |ticks: u64| Duration::from_micros(ticks.saturating_mul(1_000_000) / hz);
    Some(TreeCpu { cpu: CpuTime { user: micros(user), system: micros(system) }, processes: members.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_name() {
        let line = "17387 (beam.smp) S 17379 17363 17363 0 -1 4194560 1 0 0 0 120 30 5 7 20 0 1 0 1 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.state, stat.ppid, stat.user, stat.system), ('S', 17379, 125, 37));
        let odd = "42 (a) b (c)) R 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0 0";
        let stat = parse_stat(odd).unwrap();
        assert_eq!((stat.state, stat.ppid, stat.user, stat.system), ('R', 1, 3, 4));
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S").is_none());
    }

    #[test]
    fn trees_follow_parents() {
        let s = |ppid| Stat { state: 'S', ppid, user: 0, system: 0 };
        let all: BTreeMap<u32, Stat> = [(10, s(1)), (11, s(10)), (12, s(11)), (13, s(1)), (14, s(13))].into();
        assert_eq!(tree(&[10], &all), [10, 11, 12].into());
        assert_eq!(tree(&[10, 13], &all), [10, 11, 12, 13, 14].into());
        assert!(tree(&[99], &all).is_empty());
    }

    #[test]
    fn this_process_tree_has_cpu_time() {
        let me = std::process::id();
        let cpu = tree_cpu(&[me]).unwrap();
        assert!(cpu.processes >= 1);
        assert!(tree_cpu(&[u32::MAX - 1]).is_none());
    }

    #[test]
    fn binaries_are_found_on_path_and_in_sbin() {
        assert!(find_binary("sh").is_some());
        assert!(find_binary("surely-not-a-wirebench-binary").is_none());
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
