//! The server side of a run: a spawned `wirebench serve` process (the
//! default, so client and server CPU are measured apart), servers inside
//! this process (`--in-process`), or a remote server (`--connect`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use wirebench_transports::{Address, Endpoint, Server, ServerConfig, TransportKind};

use crate::affinity;
use crate::brokers::{BrokerCpuSource, Brokers, Unavailable};
use crate::cell::ServerCpuSource;

/// How the server side runs.
#[derive(Clone, Debug)]
pub enum Mode {
    /// A child `wirebench serve` process.
    Process,
    /// Servers in this process, on their own runtime.
    InProcess,
    /// Already running elsewhere.
    Remote(Vec<(TransportKind, Endpoint)>),
}

/// Options for the servers this run starts.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Limits, TLS, test faults.
    pub config: ServerConfig,
    /// CPUs for the server (process or runtime threads).
    pub cpus: Option<Vec<usize>>,
    /// Test-only: the child aborts after this long (first start only).
    pub crash_after: Option<Duration>,
    /// `--link`: the child starts in this network namespace (the link's
    /// server side)...
    pub netns: Option<PathBuf>,
    /// ...and listens on this address (default 127.0.0.1).
    pub listen_ip: Option<std::net::IpAddr>,
    /// Existing brokers (`--connect` with a broker row): no daemon is
    /// started for them; the responder connects to them.
    pub external_brokers: Vec<(TransportKind, Endpoint)>,
    /// Test-only: kill the broker halfway through the cell of this key.
    pub broker_crash_in: Option<String>,
    /// Test-only: abort the child server halfway through the cell of
    /// this key.
    pub server_crash_in: Option<String>,
}

/// The running servers of a run.
#[derive(Debug)]
pub struct Servers {
    endpoints: BTreeMap<TransportKind, Endpoint>,
    child: Option<ChildServer>,
    /// Keeps in-process servers (and the inproc handler) alive.
    _local: Vec<Server>,
    /// In-process unix sockets live here; removed with the servers.
    _sockets: Option<SocketDir>,
    _runtime: Option<tokio::runtime::Runtime>,
    control: ServerCpuSource,
    /// The broker daemons: declared last, so they are dropped after the
    /// servers, whose responders thus stop before their brokers do.
    brokers: Brokers,
}

#[derive(Debug)]
struct ChildServer {
    child: Child,
    args: Vec<String>,
    log: PathBuf,
    transports: Vec<TransportKind>,
    /// Where each broker row's responder connects.
    brokers: BTreeMap<TransportKind, String>,
    _unix_dir: SocketDir,
}

impl Servers {
    /// Starts what `mode` asks for, serving `transports`.
    pub fn start(
        mode: &Mode,
        transports: &[TransportKind],
        options: &ServerOptions,
        out_dir: &Path,
    ) -> anyhow::Result<Servers> {
        // inproc always runs here: it is the codec-only floor.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.cpus.as_ref().map_or(2, Vec::len).max(1))
            .enable_all()
            .on_thread_start({
                let cpus = options.cpus.clone();
                move || {
                    if let Some(cpus) = &cpus {
                        let _ = affinity::pin_current_thread(cpus);
                    }
                }
            })
            .build()
            .context("cannot start the server runtime")?;
        let mut local = Vec::new();
        let mut endpoints = BTreeMap::new();
        // Broker daemons first: the responders connect to them. In remote
        // mode every broker row's broker is the one `--connect` names.
        let external = match mode {
            Mode::Remote(given) => given.clone(),
            _ => options.external_brokers.clone(),
        };
        let brokers = Brokers::start(transports, &external, options.config.max_message, options.cpus.clone(), out_dir);
        let listen = brokers.listen_all();
        // A broker row without a broker has nothing to serve.
        let wanted: Vec<TransportKind> = transports
            .iter()
            .copied()
            .filter(|&t| t != TransportKind::Inproc && (t.broker().is_none() || listen.contains_key(&t)))
            .collect();
        if transports.contains(&TransportKind::Inproc) {
            let server = runtime.block_on(wirebench_transports::serve_kind(
                TransportKind::Inproc,
                &Address::InProc,
                options.config.clone(),
            ))?;
            endpoints.insert(TransportKind::Inproc, server.endpoint().clone());
            local.push(server);
        }
        let mut child = None;
        let mut sockets = None;
        let control = match mode {
            Mode::Process => {
                let spawned = ChildServer::spawn(&wanted, &listen, options, out_dir)?;
                for (kind, endpoint) in spawned.1 {
                    endpoints.insert(kind, endpoint);
                }
                child = Some(spawned.0);
                control_source(endpoints[&TransportKind::Tcp].clone(), options)
            }
            Mode::InProcess => {
                let unix_dir = sockets.insert(SocketDir::new()?);
                for &kind in control_first(&wanted).iter() {
                    let listen = listen.get(&kind).cloned().unwrap_or_else(|| listen_address(kind, &unix_dir.0, None));
                    let address = Address::parse(kind, &listen).map_err(anyhow::Error::msg)?;
                    let server = runtime
                        .block_on(wirebench_transports::serve_kind(kind, &address, options.config.clone()))
                        .with_context(|| format!("cannot serve {kind} in process"))?;
                    endpoints.insert(kind, server.endpoint().clone());
                    local.push(server);
                }
                ServerCpuSource::InProcess
            }
            Mode::Remote(given) => {
                for (kind, endpoint) in given {
                    endpoints.insert(*kind, endpoint.clone());
                }
                match endpoints.get(&TransportKind::Tcp) {
                    Some(tcp) => ServerCpuSource::Control(tcp.clone()),
                    None => ServerCpuSource::Unavailable("the remote server has no tcp endpoint for its stats"),
                }
            }
        };
        Ok(Servers { endpoints, child, _local: local, _sockets: sockets, _runtime: Some(runtime), control, brokers })
    }

    /// Why a cell of `kind` cannot run for want of its broker, if so.
    pub fn broker_unavailable(&self, kind: TransportKind) -> Option<Unavailable> {
        self.brokers.unavailable(kind)
    }

    /// Where a cell of `kind` reads its broker CPU from.
    pub fn broker_cpu(&self, kind: TransportKind) -> BrokerCpuSource {
        self.brokers.cpu_source(kind)
    }

    /// The largest body `kind`'s broker carries (broker rows only).
    pub fn broker_limit(&self, kind: TransportKind) -> Option<usize> {
        self.brokers.body_limit(kind)
    }

    /// If `kind`'s broker has died: starts a fresh one, reconnects the
    /// responder to it (a new server process, or a new in-process
    /// responder), and says what happened.
    pub fn check_broker(&mut self, kind: TransportKind, options: &ServerOptions, out_dir: &Path) -> Option<String> {
        let note = self.brokers.replace_if_dead(kind)?;
        let Some(listen) = self.brokers.listen(kind) else {
            self.endpoints.remove(&kind);
            return Some(note);
        };
        let mut calm = options.clone();
        calm.crash_after = None;
        if let Some(child) = self.child.as_mut() {
            let transports = child.transports.clone();
            let mut brokers = child.brokers.clone();
            brokers.insert(kind, listen);
            // The old server process goes first: its responder's broker is gone.
            let restarted = ChildServer::spawn(&transports, &brokers, &calm, out_dir);
            return Some(match restarted {
                Ok((new, endpoints)) => {
                    for (kind, endpoint) in endpoints {
                        self.endpoints.insert(kind, endpoint);
                    }
                    if let Some(tcp) = self.endpoints.get(&TransportKind::Tcp) {
                        self.control = ServerCpuSource::Control(tcp.clone());
                    }
                    *child = new;
                    format!("{note}, with a new server process connected to it")
                }
                Err(e) => format!("{note}, but restarting the server process failed: {e:#}"),
            });
        }
        if let (Some(runtime), true) = (&self._runtime, matches!(self.control, ServerCpuSource::InProcess)) {
            let served = Address::parse(kind, &listen).map_err(anyhow::Error::msg).and_then(|address| {
                Ok(runtime.block_on(wirebench_transports::serve_kind(kind, &address, calm.config.clone()))?)
            });
            return Some(match served {
                Ok(server) => {
                    self.endpoints.insert(kind, server.endpoint().clone());
                    self._local.push(server);
                    format!("{note}, with a new responder connected to it")
                }
                Err(e) => format!("{note}, but its new responder failed: {e:#}"),
            });
        }
        Some(note)
    }

    /// Where to reach `kind`, if it is served.
    pub fn endpoint(&self, kind: TransportKind) -> Option<&Endpoint> {
        self.endpoints.get(&kind)
    }

    /// Where server CPU time comes from.
    pub fn cpu_source(&self) -> ServerCpuSource {
        self.control.clone()
    }

    /// If the child server has died, says how, starts a new one (without
    /// test faults that kill it) and returns the description.
    pub fn check_child(&mut self, options: &ServerOptions, out_dir: &Path) -> Option<String> {
        let child = self.child.as_mut()?;
        let status = child.child.try_wait().ok().flatten()?;
        let how = describe_exit(status);
        let transports = child.transports.clone();
        let mut calm = options.clone();
        calm.crash_after = None;
        let brokers = child.brokers.clone();
        match ChildServer::spawn(&transports, &brokers, &calm, out_dir) {
            Ok((new, endpoints)) => {
                for (kind, endpoint) in endpoints {
                    self.endpoints.insert(kind, endpoint);
                }
                if let Some(tcp) = self.endpoints.get(&TransportKind::Tcp) {
                    self.control = control_source(tcp.clone(), options);
                }
                *child = new;
                Some(format!("the server process {how}; a new one was started"))
            }
            Err(e) => Some(format!("the server process {how}, and restarting it failed: {e:#}")),
        }
    }

    /// The child server's process id, if there is a child.
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.child.id())
    }

    /// The server process's log file, if there is a child.
    pub fn log(&self) -> Option<&Path> {
        self.child.as_ref().map(|c| c.log.as_path())
    }

    /// The command line that starts the child server.
    pub fn child_command(&self) -> Option<&[String]> {
        self.child.as_ref().map(|c| c.args.as_slice())
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".into(),
    }
}

/// The stats call on the child's tcp endpoint, from inside its namespace
/// when it has one.
fn control_source(tcp: Endpoint, options: &ServerOptions) -> ServerCpuSource {
    match &options.netns {
        Some(netns) => ServerCpuSource::ControlInNetns(tcp, netns.clone()),
        None => ServerCpuSource::Control(tcp),
    }
}

/// tcp first: it carries the server-stats call.
fn control_first(transports: &[TransportKind]) -> Vec<TransportKind> {
    let mut all = vec![TransportKind::Tcp];
    all.extend(transports.iter().copied().filter(|&t| t != TransportKind::Tcp));
    all
}

/// A fresh directory for Unix sockets (one per server start, so a
/// restarted server never shares one with its dead predecessor), removed
/// when dropped: on success, on failure and on unwinding alike.
#[derive(Debug)]
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> anyhow::Result<SocketDir> {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wirebench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(SocketDir(dir))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn listen_address(kind: TransportKind, unix_dir: &Path, ip: Option<std::net::IpAddr>) -> String {
    match kind {
        TransportKind::Unix => unix_dir.join("wirebench.sock").display().to_string(),
        _ => std::net::SocketAddr::new(ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()), 0).to_string(),
    }
}

impl ChildServer {
    /// Spawns `wirebench serve` for `transports` (plus tcp, for the stats
    /// call) and waits for its `listening` lines.
    fn spawn(
        transports: &[TransportKind],
        brokers: &BTreeMap<TransportKind, String>,
        options: &ServerOptions,
        out_dir: &Path,
    ) -> anyhow::Result<(ChildServer, Vec<(TransportKind, Endpoint)>)> {
        let unix_dir = SocketDir::new()?;
        let transports = control_first(transports);
        let mut args = vec!["serve".to_owned()];
        for &kind in &transports {
            args.extend([
                "--transport".into(),
                kind.name().into(),
                "--listen".into(),
                brokers.get(&kind).cloned().unwrap_or_else(|| listen_address(kind, &unix_dir.0, options.listen_ip)),
            ]);
        }
        let c = &options.config;
        args.extend([
            "--max-message".into(),
            c.max_message.to_string(),
            "--max-datagram".into(),
            c.max_datagram.to_string(),
        ]);
        if c.tls {
            args.push("--tls".into());
        }
        if c.fault == wirebench_formats::Fault::WrongReplies {
            args.extend(["--fault".into(), "wrong-replies".into()]);
        }
        if let Some(inject) = &c.inject {
            let formats = inject
                .formats
                .as_ref()
                .map(|f| format!(":{}", f.iter().map(|f| f.name()).collect::<Vec<_>>().join(",")));
            args.extend([
                "--inject-delay".into(),
                format!("{}ns{}", inject.delay.as_nanos(), formats.unwrap_or_default()),
            ]);
        }
        if let Some(stall) = c.stall {
            args.extend(["--stall".into(), format!("{}us/{}us", stall.duration.as_micros(), stall.every.as_micros())]);
        }
        if let Some(cpus) = &options.cpus {
            args.extend(["--cpus".into(), affinity::format_cpus(cpus)]);
        }
        if let Some(after) = options.crash_after {
            args.extend(["--crash-after".into(), format!("{}ms", after.as_millis())]);
        }
        let log = out_dir.join("server.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let exe = std::env::current_exe().context("cannot find the wirebench binary")?;
        let mut command = Command::new(&exe);
        command.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        // SAFETY: only async-signal-safe calls between fork and exec: the
        // child gets SIGTERM if we die, and its own process group, so a
        // Ctrl-C meant for the run does not kill it mid-cell.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        if let Some(netns) = &options.netns {
            wirebench_link::command_in_netns(&mut command, netns)?;
        }
        let mut child = command.spawn().with_context(|| format!("cannot start {}", exe.display()))?;
        let stdout = child.stdout.take().context("no stdout from the server")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on stdout.
                    continue;
                }
            }
        });
        let mut endpoints = Vec::new();
        while endpoints.len() < transports.len() {
            let line = match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let said = last_line(&log).map(|l| format!(": it said {l:?}")).unwrap_or_default();
                    bail!("the server did not report its sockets{said}; see {}", log.display());
                }
            };
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("listening"), Some(kind), Some(address)) => {
                    let kind: TransportKind = kind.parse().map_err(anyhow::Error::msg)?;
                    endpoints.push((kind, Endpoint::parse(kind, address).map_err(anyhow::Error::msg)?));
                }
                _ => tracing::debug!("server: {line}"),
            }
        }
        Ok((ChildServer { child, args, log, transports, brokers: brokers.clone(), _unix_dir: unix_dir }, endpoints))
    }
}

/// The last non-empty line of a log file.
fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_owned)
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // SIGTERM first, for a graceful shutdown; then make sure.
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        // The socket directory goes with `self._unix_dir` after this.
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
