//! Exact costs of whole calls: instructions and system calls per call, on
//! the client side and on the server side, for every format × transport.
//!
//! `wirebench instructions` starts, per transport, a server process
//! (`wirebench __count-serve`) and a client process (`wirebench
//! __count-calls`), each under `valgrind --tool=callgrind
//! --trace-syscalls=yes`, and drives them one cell (format × workload) at
//! a time. Each side does a cell in a child forked for it (`child`), with
//! a single-threaded tokio runtime, over a new connection: `warmup` calls,
//! then `calls` counted ones, then one that closes the server's window
//! ([`Schedule`]), one call at a time, every reply verified. Both sides
//! mark their windows with valgrind client requests ([`crate::valgrind`])
//! at points that depend only on the number of calls made, never on time:
//!
//! - client: counting is on only from the start of each counted call's
//!   encode to the end of its decode, the span its latency covers, with
//!   everything the runtime does meanwhile; verification is not counted.
//! - server: the handler numbers the calls it serves; the counts are zeroed
//!   as it starts serving the first counted call and dumped as it starts
//!   serving the closing one: exactly `calls` cycles of the server's loop
//!   (read, serve, reply, wait).
//!
//! The system calls of a window are those valgrind's trace lists between
//! the same two points ([`crate::syscalls`]). The two processes run in
//! lockstep on one CPU (`lockstep`), so that the order in which each
//! sees the other's messages, and with it the path through the event loop,
//! is the same in every run. inproc has no server: its client count
//! includes the handler.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use wirebench_formats::{Dataset, Format, FormatId, FormatVisitor, Workload};
use wirebench_reports::model::Instructions;
use wirebench_transports::frame::HEADER_LEN;
use wirebench_transports::{Family, TransportKind};

use crate::cell::Sizes;
use crate::syscalls;

mod child;

pub use child::{CallsArgs, ServeArgs, calls_command, serve_command};

/// Calls made before each cell's counted ones: connection state (HTTP/2
/// header tables, QUIC flow control), buffers and allocator caches settle
/// in them.
pub const WARMUP_CALLS: u64 = 5;

/// Counted calls per cell by default.
pub const DEFAULT_CALLS: u64 = 20;

/// A cell's calls: `warmup`, then `calls` counted, then one that closes
/// the server's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Calls before the counted ones.
    pub warmup: u64,
    /// Counted calls.
    pub calls: u64,
}

impl Schedule {
    /// Calls per cell, the closing one included.
    pub fn cycle(self) -> u64 {
        self.warmup + self.calls + 1
    }
}

/// The side of a call a count belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The caller: encode, send, wait, receive, decode.
    Client,
    /// The server process: receive, decode, serve, encode, reply, wait.
    Server,
}

impl Side {
    /// `client` or `server`, as in keys.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// One counted cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallCell {
    /// The workload.
    pub workload: Workload,
    /// The format.
    pub format: FormatId,
    /// The transport.
    pub transport: TransportKind,
}

impl CallCell {
    /// `{workload}/{format}/{transport}/call/{side}`.
    pub fn key(self, side: Side) -> String {
        format!("{}/{}/{}/call/{}", self.workload, self.format, self.transport, side.name())
    }
}

/// What `--transports` names: every transport that can be counted, none
/// (codec operations only), or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportChoice {
    /// `all`.
    All,
    /// `none`.
    None,
    /// A transport by name.
    One(TransportKind),
}

/// Parses one item of `--transports`.
pub fn transport_choice(s: &str) -> Result<TransportChoice, String> {
    match s.trim() {
        "all" => Ok(TransportChoice::All),
        "none" => Ok(TransportChoice::None),
        name => {
            let kind: TransportKind = name.parse()?;
            if kind.family() == Family::Broker {
                return Err(format!("{kind} is a broker: whole calls through brokers are not counted yet"));
            }
            Ok(TransportChoice::One(kind))
        }
    }
}

/// The transports a `--transports` list names, in registry order; `all`
/// is every own transport and framework (brokers are not counted yet).
pub fn transports(choices: &[TransportChoice]) -> Result<Vec<TransportKind>, String> {
    if choices.contains(&TransportChoice::None) {
        if choices.len() > 1 {
            return Err("--transports none cannot be combined with transports".into());
        }
        return Ok(Vec::new());
    }
    let countable = |t: &&TransportKind| t.family() != Family::Broker;
    if choices.contains(&TransportChoice::All) {
        return Ok(TransportKind::ALL.iter().filter(countable).copied().collect());
    }
    Ok(TransportKind::ALL
        .iter()
        .filter(countable)
        .filter(|t| choices.contains(&TransportChoice::One(**t)))
        .copied()
        .collect())
}

/// The transports of `matrix` (brokers left out), each with the formats
/// the matrix runs over it: what `instructions` counts by default, the
/// quick matrix's cells.
pub fn matrix_pairs(matrix: &crate::plan::Matrix) -> Vec<(TransportKind, Vec<FormatId>)> {
    let mut pairs = Vec::new();
    for transport in matrix.transports().into_iter().filter(|t| t.family() != Family::Broker) {
        let mut formats: Vec<FormatId> = Vec::new();
        for slice in matrix.slices.iter().filter(|s| s.transports.contains(&transport)) {
            for choice in &slice.formats {
                let format = match *choice {
                    crate::plan::FormatChoice::One(f) => Some(f),
                    crate::plan::FormatChoice::Own => transport.own_format(),
                };
                if let Some(f) = format.filter(|f| !formats.contains(f)) {
                    formats.push(f);
                }
            }
        }
        pairs.push((transport, formats));
    }
    pairs
}

struct SizesOf<'a>(&'a Dataset);

impl FormatVisitor for SizesOf<'_> {
    type Output = Result<Sizes, String>;
    fn visit<F: Format>(self) -> Result<Sizes, String> {
        Sizes::of::<F>(self.0)
    }
}

/// The cells counted over `transport`, in the order both sides run them:
/// the formats it carries on every workload, less what the matrix records
/// as unsupported (a udp message over one datagram).
pub fn plan(
    transport: TransportKind,
    formats: &[FormatId],
    workloads: &[Workload],
    seed: u64,
) -> anyhow::Result<Vec<CallCell>> {
    let mut cells = Vec::new();
    for &workload in workloads {
        let data = Dataset::generate(workload, seed);
        for &format in formats.iter().filter(|&&f| transport.carries(f)) {
            if transport == TransportKind::Udp {
                let sizes = format.visit(SizesOf(&data)).map_err(anyhow::Error::msg)?;
                let limit = wirebench_transports::udp::DEFAULT_MAX_DATAGRAM;
                if HEADER_LEN + sizes.request.max(sizes.reply) as usize > limit {
                    continue;
                }
            }
            cells.push(CallCell { workload, format, transport });
        }
    }
    Ok(cells)
}

/// The label of every server-side profile.
const SERVER_DUMP: &str = "wirebench server window";

/// The log line a counting server writes as it stops, with the number of
/// calls it served.
const SERVED: &str = "wirebench-served";

// ------------------------------------------------------------ the parent

/// Whole-call counts of some transports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallCounts {
    /// `{workload}/{format}/{transport}/call/{side}` -> instructions per
    /// call (rounded to the nearest).
    pub instructions: BTreeMap<String, u64>,
    /// The same keys -> system calls per call.
    pub syscalls: BTreeMap<String, f64>,
    /// The same keys -> each system call's count over the window.
    pub syscall_names: BTreeMap<String, BTreeMap<String, u64>>,
}

/// What the parent asks for.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The valgrind binary.
    pub valgrind: &'a Path,
    /// Transports, each counted by its own pair of processes, each with
    /// the formats to count over it.
    pub transports: &'a [(TransportKind, Vec<FormatId>)],
    /// Workloads.
    pub workloads: &'a [Workload],
    /// Data seed.
    pub seed: u64,
    /// Calls per cell.
    pub schedule: Schedule,
    /// Keep the profiles and logs here (default: a temporary directory).
    pub profiles: Option<&'a Path>,
}

/// Counts the whole calls of `request` (in a temporary directory of its
/// own, removed afterwards) and adds them to `into`.
pub fn add(into: &mut Instructions, request: &Request<'_>) -> anyhow::Result<()> {
    if request.transports.is_empty() {
        return Ok(());
    }
    let temporary;
    let dir = match request.profiles {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir
        }
        None => {
            temporary = tempfile_dir()?;
            temporary.0.as_path()
        }
    };
    let counted = count(request, dir)?;
    into.counts.extend(counted.instructions);
    into.syscalls.extend(counted.syscalls);
    into.calls = Some(request.schedule.calls);
    into.warmup_calls = Some(request.schedule.warmup);
    Ok(())
}

/// A directory for profiles and logs, removed when dropped.
struct TempDir(PathBuf);

fn tempfile_dir() -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!("wirebench-calls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(TempDir(dir))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Counts the whole calls of every transport of `request`, keeping the
/// profiles and logs in `dir`.
pub fn count(request: &Request<'_>, dir: &Path) -> anyhow::Result<CallCounts> {
    let mut counts = CallCounts::default();
    let cpu = lockstep_cpu()?;
    for (transport, formats) in request.transports {
        let (transport, formats) = (*transport, formats.as_slice());
        let cells = plan(transport, formats, request.workloads, request.seed)?;
        if cells.is_empty() {
            continue;
        }
        count_transport(request, transport, formats, &cells, dir, cpu, &mut counts)
            .with_context(|| format!("counting {transport}"))?;
    }
    Ok(counts)
}

/// The valgrind arguments of a counted process whose files start with
/// `out`; `%p` makes every forked cell's profile and log its own.
fn valgrind_args(out: &Path) -> Vec<String> {
    vec![
        "--tool=callgrind".into(),
        "--quiet".into(),
        "--trace-syscalls=yes".into(),
        format!("--log-file={}.%p.log", out.display()),
        format!("--callgrind-out-file={}.%p.cg", out.display()),
    ]
}

fn count_transport(
    request: &Request<'_>,
    transport: TransportKind,
    formats: &[FormatId],
    cells: &[CallCell],
    dir: &Path,
    cpu: usize,
    counts: &mut CallCounts,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the wirebench binary")?;
    let schedule = request.schedule;
    let calls =
        ["--warmup-calls".to_owned(), schedule.warmup.to_string(), "--calls".into(), schedule.calls.to_string()];
    let server_out = dir.join(format!("{transport}-server"));
    let client_out = dir.join(format!("{transport}-client"));
    let mut server = None;
    if transport != TransportKind::Inproc {
        let mut args = vec!["__count-serve".to_owned(), "--transport".into(), transport.name().into()];
        args.extend(calls.iter().cloned());
        server = Some(Counted::spawn(request.valgrind, &exe, &server_out, &args, &[], cpu)?);
    }
    let workloads: Vec<String> = request.workloads.iter().map(ToString::to_string).collect();
    let formats: Vec<&str> = formats.iter().map(|f| f.name()).collect();
    let mut args = vec!["__count-calls".to_owned(), "--transport".into(), transport.name().into()];
    args.extend(["--formats".into(), formats.join(","), "--workloads".into(), workloads.join(",")]);
    args.extend(["--seed".into(), request.seed.to_string()]);
    args.extend(calls.iter().cloned());
    let mut client = Counted::spawn(request.valgrind, &exe, &client_out, &args, &["--collect-atstart=no"], cpu)?;
    let listen = match transport {
        TransportKind::Unix => dir.join(format!("{transport}.sock")).display().to_string(),
        _ => "127.0.0.1:0".into(),
    };
    for (k, &cell) in cells.iter().enumerate() {
        let mut server_pid = None;
        let mut command = format!("run {k}");
        if let Some(server) = server.as_mut() {
            server.send(&format!("serve {listen}"))?;
            let mut endpoint = None;
            // The parent's `forked` and the child's `listening`, in
            // either order.
            for _ in 0..2 {
                let line = server.line()?;
                if let Some(pid) = line.strip_prefix("forked ") {
                    server_pid = Some(pid.parse::<i32>().with_context(|| format!("the server said {line:?}"))?);
                } else if let Some(e) = line.strip_prefix(&format!("listening {transport} ")) {
                    endpoint = Some(e.to_owned());
                } else {
                    bail!("the server said {line:?}; see {}", server.stderr.display());
                }
            }
            let endpoint =
                endpoint.with_context(|| format!("the server did not listen; see {}", server.stderr.display()))?;
            command = format!("{command} {endpoint}");
        }
        client.send(&command)?;
        let client_pid = client.pid()?;
        let done = client.line()?;
        if done != format!("done {k} 0") {
            bail!("{}: the client ended with {done:?}; see {}", cell.key(Side::Client), client.stderr.display());
        }
        let mut sides = vec![(Side::Client, client_out.clone(), client_pid)];
        if let (Some(server), Some(pid)) = (server.as_mut(), server_pid) {
            // SAFETY: signals the cell's server, a child of our child
            // that has not been waited for yet (its parent prints
            // `exited` when it has).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let exited = server.line()?;
            if exited != format!("exited {pid} 0") {
                bail!("{}: the server ended with {exited:?}; see {}", cell.key(Side::Server), server.stderr.display());
            }
            sides.push((Side::Server, server_out.clone(), pid));
        }
        for (side, out, pid) in sides {
            let files = format!("{}.{pid}", out.display());
            let (label, total) = profile(Path::new(&format!("{files}.cg.1")))?;
            let log = read(Path::new(&format!("{files}.log")))?;
            let expected = match side {
                Side::Client => cell.key(side),
                Side::Server => SERVER_DUMP.to_owned(),
            };
            if label != expected {
                bail!("{files}.cg.1 is labelled {label:?}, not {expected:?}");
            }
            if side == Side::Server {
                let served = log
                    .lines()
                    .find_map(|l| l.split_once(&format!("** {SERVED} ")))
                    .and_then(|(_, n)| n.trim().parse::<u64>().ok())
                    .with_context(|| format!("{files}.log does not say how many calls the server served"))?;
                if served != schedule.cycle() {
                    bail!("{}: the server served {served} calls, not {}", cell.key(side), schedule.cycle());
                }
            }
            let windows = syscalls::windows(&log).with_context(|| format!("{files}.log"))?;
            let [window] = windows.as_slice() else {
                bail!("{files}.log has {} counted windows, not one", windows.len());
            };
            let key = cell.key(side);
            counts.instructions.insert(key.clone(), (total + schedule.calls / 2) / schedule.calls);
            counts.syscalls.insert(key.clone(), window.total() as f64 / schedule.calls as f64);
            counts.syscall_names.insert(key, window.calls.clone());
        }
    }
    client.finish()?;
    if let Some(server) = server {
        server.finish()?;
    }
    Ok(())
}

/// Runs a counted process in lockstep with its peer: both on `cpu`, both
/// at `SCHED_FIFO` priority 1, so exactly one of them runs at a time and a
/// process woken by its peer's message does not run until the running one
/// blocks. Each then runs from one wait to the next without interruption,
/// and which of a message's effects (the peer's read freeing buffer
/// space, its reply arriving) a process sees when it next looks no longer
/// depends on timing: the peer has done all of them or none. That is what
/// makes two runs count the same: with both processes free to run on two
/// CPUs, the same call takes one wake-up in one run and two in the next,
/// and instruction counts of a whole call moved by up to half.
fn lockstep(command: &mut Command, cpu: usize) {
    // SAFETY: only system calls between fork and exec (prctl,
    // sched_setaffinity, sched_setscheduler), none of which allocates.
    unsafe {
        command.pre_exec(move || {
            // A counted process must never outlive the count.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            crate::affinity::pin_current_thread(&[cpu])?;
            let param = libc::sched_param { sched_priority: 1 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What to say when the counted processes cannot be started in lockstep.
fn lockstep_failed(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        anyhow::anyhow!(
            "whole-call counts run client and server at SCHED_FIFO on one CPU, which needs root or an \
             RLIMIT_RTPRIO of at least 1 (e.g. `sudo prlimit --rtprio=1 --pid $$` for this shell); \
             `--transports none` counts codec operations only: {e}"
        )
    } else {
        anyhow::Error::new(e).context("cannot start a counted process")
    }
}

/// The CPU both counted processes share: the last this process may use.
fn lockstep_cpu() -> anyhow::Result<usize> {
    let usable = crate::affinity::usable_cpus().context("cannot read this process's CPUs")?;
    usable.last().copied().context("this process may use no CPU")
}

/// A counted process under valgrind, driven one line at a time.
struct Counted {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

/// How long a counted process may take to answer a command: valgrind
/// takes seconds to start, and a cell of the largest workloads minutes.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1800);

impl Counted {
    fn spawn(
        valgrind: &Path,
        exe: &Path,
        out: &Path,
        args: &[String],
        extra: &[&str],
        cpu: usize,
    ) -> anyhow::Result<Counted> {
        let stderr = PathBuf::from(format!("{}.stderr", out.display()));
        let file = std::fs::File::create(&stderr).with_context(|| format!("cannot create {}", stderr.display()))?;
        let mut command = Command::new(valgrind);
        command.args(valgrind_args(out)).args(extra).arg(exe).args(args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(file);
        lockstep(&mut command, cpu);
        let mut child = command.spawn().map_err(lockstep_failed)?;
        let stdout: ChildStdout = child.stdout.take().context("no stdout from a counted process")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Counted { stdin: child.stdin.take(), child, lines, stderr })
    }

    fn send(&mut self, command: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("a counted process's stdin is closed")?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("a counted process is gone; see {}", self.stderr.display()))
    }

    fn line(&mut self) -> anyhow::Result<String> {
        self.lines
            .recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("a counted process stopped answering; see {}", self.stderr.display()))
    }

    /// The pid of the child a command forked.
    fn pid(&mut self) -> anyhow::Result<i32> {
        let line = self.line()?;
        line.strip_prefix("forked ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("a counted process said {line:?}; see {}", self.stderr.display()))
    }

    /// Closes stdin, so the process ends, and waits for it.
    fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait().context("cannot wait for a counted process")?;
        if !status.success() {
            bail!("a counted process ended with {status}; see {}", self.stderr.display());
        }
        Ok(())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The label and instruction total of a profile dumped by a client
/// request.
fn profile(path: &Path) -> anyhow::Result<(String, u64)> {
    let profile = read(path)?;
    let label = profile
        .lines()
        .find_map(|l| l.strip_prefix("desc: Trigger: Client Request: "))
        .with_context(|| format!("{} was not dumped by a client request", path.display()))?;
    let total =
        crate::instructions::total(&profile).with_context(|| format!("no instruction total in {}", path.display()))?;
    Ok((label.to_owned(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_skip_what_a_transport_cannot_carry() {
        let formats = [FormatId::Json, FormatId::Protobuf];
        let workloads = [Workload::Multiply, Workload::Digest { records: 100 }];
        let tcp = plan(TransportKind::Tcp, &formats, &workloads, 1).unwrap();
        assert_eq!(tcp.len(), 4);
        assert_eq!(tcp[0].key(Side::Server), "multiply/json/tcp/call/server");
        // A digest of 100 records is no single datagram in any format.
        assert_eq!(plan(TransportKind::Udp, &formats, &workloads, 1).unwrap().len(), 2);
        let grpc = plan(TransportKind::Grpc, &formats, &workloads, 1).unwrap();
        assert!(grpc.iter().all(|c| c.format == FormatId::Protobuf) && grpc.len() == 2);
    }

    #[test]
    fn matrix_pairs_follow_the_slices() {
        use crate::plan::{FormatChoice, Matrix, Slice};
        let slice = |formats: Vec<FormatChoice>, transports: Vec<TransportKind>| Slice {
            formats,
            transports,
            workloads: vec![Workload::Multiply],
            loads: vec![],
            modes: None,
        };
        let json = FormatChoice::One(FormatId::Json);
        let mut matrix = Matrix::product("m".into(), vec![], vec![], vec![], vec![]);
        matrix.slices = vec![
            slice(vec![json, FormatChoice::One(FormatId::Bincode)], vec![TransportKind::Tcp]),
            slice(vec![json, FormatChoice::Own], vec![TransportKind::Tcp, TransportKind::Grpc]),
        ];
        assert_eq!(
            matrix_pairs(&matrix),
            vec![
                (TransportKind::Tcp, vec![FormatId::Json, FormatId::Bincode]),
                (TransportKind::Grpc, vec![FormatId::Json, FormatId::Protobuf]),
            ]
        );
    }

    #[test]
    fn transports_resolve_all_none_and_names() {
        let all = transports(&[TransportChoice::All]).unwrap();
        assert!(all.contains(&TransportKind::Grpc) && all.contains(&TransportKind::Inproc));
        assert!(all.iter().all(|t| t.family() != Family::Broker));
        assert_eq!(transports(&[TransportChoice::None]).unwrap(), vec![]);
        assert!(transports(&[TransportChoice::None, TransportChoice::One(TransportKind::Tcp)]).is_err());
        let two = [TransportChoice::One(TransportKind::Quic), TransportChoice::One(TransportKind::Tcp)];
        assert_eq!(transports(&two).unwrap(), vec![TransportKind::Tcp, TransportKind::Quic]);
        assert!(transport_choice("smtp").is_err());
    }
}
