//! Many clients per cell (`--clients K`): K client processes against one
//! server, started together, their measurements merged exactly.
//!
//! Each client is a `wirebench __client` child (with `--link`, started
//! inside its own client namespace). It reads its cell as one JSON line on
//! stdin ([`ClientJob`]), connects, makes its probe call, prints `ready`,
//! and waits. When every client is ready the parent writes `go` to all of
//! them at once; each then runs the cell's warm-up and measured window and
//! prints `result <JSON>` ([`ClientResult`]): its own cell and the raw
//! totals behind it. A client that fails before it is ready prints its
//! result straight away, and the others are told to stop (their stdin
//! closes) instead of going.
//!
//! The merge ([`merge`]) is exact where exactness exists: histograms add
//! (HdrHistograms of equal bounds merge without loss), calls and errors
//! sum, calls/s is the sum of each client's calls over its own window, and
//! CPU and bytes per call divide the clients' totals by their calls. The
//! server's CPU per call is its CPU rate (read by every client at its
//! window's edges, averaged) over the clients' summed call rate: with
//! equal windows that is the server's CPU over all calls, and it stays
//! right when a slow cell extends one client's window more than
//! another's.
//!
//! Children are spawned from the run's main thread (their parent-death
//! signal follows the spawning thread) in process groups of their own, so
//! a Ctrl-C meant for the run reaches the run, which then ends them.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use wirebench_formats::{Dataset, FormatId, Workload};
use wirebench_reports::histogram;
use wirebench_reports::model::{Cell, CellStatus, ClientFigures, Metrics, Sample};
use wirebench_transports::{Address, ClientConfig, Endpoint, RawShape, ServerConfig, TransportKind};

use crate::cell::{self, CellJob, Outcome, ServerCpuSource};
use crate::measure::Measured;
use crate::plan::{CallMode, CellSpec, LoadModel, LoadSpec, Subject, Timing};

/// How long every client gets to connect and make its probe call.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Slack on top of a cell's longest possible window before a client that
/// has not answered is given up on.
const RESULT_SLACK: Duration = Duration::from_secs(30);

// ----------------------------------------------------------------- the job

/// A cell as one client process receives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientJob {
    /// This client, from 0.
    pub index: usize,
    /// The cell's clients.
    pub clients: usize,
    /// `multiply`, `echo-1KiB`, ...
    pub workload: String,
    /// A format name, or `raw`.
    pub subject: String,
    /// The transport's name.
    pub transport: String,
    /// `closed`, `open-constant` or `open-poisson`.
    pub model: String,
    /// Open loop: calls per second (this client's).
    pub rate: Option<f64>,
    /// Calls in flight (closed), or the most allowed (open).
    pub in_flight: usize,
    /// Connections.
    pub connections: usize,
    /// The link's canonical spec, if the cell crosses one.
    pub link: Option<String>,
    /// The server, as `Endpoint` prints it (`inproc` for inproc).
    pub endpoint: String,
    /// Per-call deadline, ns.
    pub timeout_ns: u64,
    /// Largest message.
    pub max_message: usize,
    /// udp datagram limit.
    pub max_datagram: usize,
    /// http2 over TLS.
    pub tls: bool,
    /// Discarded warm-up, ns.
    pub warmup_ns: u64,
    /// Measured window, ns.
    pub duration_ns: u64,
    /// Sub-windows.
    pub samples: u32,
    /// The raw ping-pong's request and reply bytes.
    pub raw_shape: [usize; 2],
    /// The data seed.
    pub seed: u64,
    /// The open-loop arrival seed of this client.
    pub arrivals_seed: u64,
    /// Where the server's CPU comes from.
    pub server_cpu: ServerCpuJob,
    /// CPUs to pin the measuring thread to.
    pub cpus: Option<Vec<usize>>,
}

/// [`ServerCpuSource`] as a client process receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerCpuJob {
    /// The stats call on this tcp endpoint.
    Control {
        /// `ADDR`.
        endpoint: String,
    },
    /// The stats call on this tcp endpoint, connected from inside `netns`.
    ControlInNetns {
        /// `ADDR`.
        endpoint: String,
        /// The server's network namespace.
        netns: PathBuf,
    },
    /// Not measurable.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl ServerCpuJob {
    fn of(source: &ServerCpuSource) -> ServerCpuJob {
        match source {
            ServerCpuSource::Control(e) => ServerCpuJob::Control { endpoint: e.to_string() },
            ServerCpuSource::ControlInNetns(e, netns) => {
                ServerCpuJob::ControlInNetns { endpoint: e.to_string(), netns: netns.clone() }
            }
            ServerCpuSource::InProcess => ServerCpuJob::Unavailable {
                reason: "in-process servers: their CPU is the parent's, which a client process cannot read".into(),
            },
            ServerCpuSource::Unavailable(why) => ServerCpuJob::Unavailable { reason: (*why).to_owned() },
        }
    }

    fn source(&self) -> Result<ServerCpuSource, String> {
        let tcp = |s: &str| Endpoint::parse(TransportKind::Tcp, s);
        Ok(match self {
            ServerCpuJob::Control { endpoint } => ServerCpuSource::Control(tcp(endpoint)?),
            ServerCpuJob::ControlInNetns { endpoint, netns } => {
                ServerCpuSource::ControlInNetns(tcp(endpoint)?, netns.clone())
            }
            // A client process runs one cell and exits: leaking its one
            // reason string is how it becomes the `'static` the source
            // holds.
            ServerCpuJob::Unavailable { reason } => {
                ServerCpuSource::Unavailable(Box::leak(reason.clone().into_boxed_str()))
            }
        })
    }
}

impl ClientJob {
    /// The job of client `index` of `clients` for `job`.
    pub fn new(job: &CellJob, index: usize, clients: usize, cpus: Option<Vec<usize>>) -> ClientJob {
        let spec = &job.spec;
        let (model, rate) = match spec.load.model {
            LoadModel::Closed => ("closed", None),
            LoadModel::Open { rate, poisson: false } => ("open-constant", Some(rate)),
            LoadModel::Open { rate, poisson: true } => ("open-poisson", Some(rate)),
        };
        ClientJob {
            index,
            clients,
            workload: spec.workload.to_string(),
            subject: spec.subject.to_string(),
            transport: spec.transport.name().to_owned(),
            model: model.to_owned(),
            rate,
            in_flight: spec.load.in_flight,
            connections: spec.load.connections,
            link: spec.link.map(|l| l.to_string()),
            endpoint: job.endpoint.to_string(),
            timeout_ns: nanos(job.client.timeout),
            max_message: job.client.max_message,
            max_datagram: job.client.max_datagram,
            tls: job.client.tls,
            warmup_ns: nanos(job.timing.warmup),
            duration_ns: nanos(job.timing.duration),
            samples: job.timing.samples,
            raw_shape: [job.raw_shape.request, job.raw_shape.reply],
            seed: job.seed,
            // Each client its own arrivals: K copies of one schedule would
            // send in lockstep.
            arrivals_seed: job.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            server_cpu: ServerCpuJob::of(&job.server_cpu),
            cpus,
        }
    }

    /// The cell this job measures.
    fn spec(&self) -> Result<CellSpec, String> {
        let workload: Workload = self.workload.parse().map_err(|e| format!("{e}"))?;
        let subject = match self.subject.as_str() {
            "raw" => Subject::Raw,
            name => Subject::Format(name.parse::<FormatId>()?),
        };
        let transport: TransportKind = self.transport.parse()?;
        let model = match (self.model.as_str(), self.rate) {
            ("closed", None) => LoadModel::Closed,
            ("open-constant", Some(rate)) => LoadModel::Open { rate, poisson: false },
            ("open-poisson", Some(rate)) => LoadModel::Open { rate, poisson: true },
            (model, rate) => return Err(format!("no load model {model:?} with rate {rate:?}")),
        };
        let link = self.link.as_deref().map(crate::link::parse_spec).transpose()?;
        let load = LoadSpec { model, in_flight: self.in_flight, connections: self.connections };
        // Client processes measure request-response cells only (options.rs
        // refuses --clients with other modes).
        Ok(CellSpec { workload, subject, transport, load, clients: self.clients, link, mode: CallMode::Rr })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// --------------------------------------------------------------- the result

/// What a client process measured beyond its cell: the raw totals the
/// parent merges exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientTotals {
    /// The latency histogram (encoded as in results files).
    pub latency: String,
    /// Open loop: the uncorrected one.
    pub uncorrected: Option<String>,
    /// Open loop: the send lag.
    pub send_lag: Option<String>,
    /// Each sub-window's histogram.
    pub samples: Vec<String>,
    /// The measured window, ns.
    pub window_ns: u64,
    /// How late its end snapshots were taken, ns.
    pub close_lag_ns: u64,
    /// Calls recorded.
    pub calls: u64,
    /// Calls completed up to the end snapshots.
    pub calls_to_close: u64,
    /// Client CPU over the window, user, ns.
    pub client_user_ns: u64,
    /// Client CPU over the window, system, ns.
    pub client_system_ns: u64,
    /// Server CPU over the window, user, ns (if read).
    pub server_user_ns: Option<u64>,
    /// Server CPU over the window, system, ns.
    pub server_system_ns: Option<u64>,
    /// Wire bytes sent over the window (if counted).
    pub wire_sent: Option<u64>,
    /// Wire bytes received over the window.
    pub wire_received: Option<u64>,
}

impl ClientTotals {
    /// The totals of a measurement.
    pub fn of(m: &Measured) -> Result<ClientTotals, String> {
        let enc = |h: &Histogram<u64>| histogram::encode(h);
        Ok(ClientTotals {
            latency: enc(&m.latency)?,
            uncorrected: m.uncorrected.as_ref().map(enc).transpose()?,
            send_lag: m.send_lag.as_ref().map(enc).transpose()?,
            samples: m.samples.iter().map(enc).collect::<Result<_, _>>()?,
            window_ns: nanos(m.window),
            close_lag_ns: nanos(m.close_lag),
            calls: m.calls,
            calls_to_close: m.calls_to_close,
            client_user_ns: nanos(m.client_cpu.user),
            client_system_ns: nanos(m.client_cpu.system),
            server_user_ns: m.server_cpu.map(|c| nanos(c.user)),
            server_system_ns: m.server_cpu.map(|c| nanos(c.system)),
            wire_sent: m.wire.map(|w| w.bytes_sent),
            wire_received: m.wire.map(|w| w.bytes_received),
        })
    }
}

/// A client process's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientResult {
    /// Its cell, as a one-client cell of this key would be recorded.
    pub cell: Cell,
    /// The totals behind it; absent when it never measured (failed to
    /// connect, unsupported).
    pub totals: Option<ClientTotals>,
}

/// What a cell shares with the client process that runs it: the start
/// gate and where the totals go.
pub struct ChildHooks {
    gate: Box<dyn Fn() -> std::io::Result<bool> + Send + Sync>,
    totals: Mutex<Option<Result<ClientTotals, String>>>,
}

impl std::fmt::Debug for ChildHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildHooks").finish_non_exhaustive()
    }
}

impl ChildHooks {
    /// Says ready and waits for the start; `false` if told to stop
    /// instead.
    pub async fn start(self: &Arc<Self>) -> bool {
        let hooks = self.clone();
        match tokio::task::spawn_blocking(move || (hooks.gate)()).await {
            Ok(Ok(go)) => go,
            Ok(Err(e)) => {
                tracing::warn!("client: the start signal was lost: {e}");
                false
            }
            Err(_) => false,
        }
    }

    /// Keeps a measurement's totals for the result.
    pub fn keep(&self, measured: &Measured) {
        let mut slot = self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(ClientTotals::of(measured));
    }
}

// ------------------------------------------------------------ the child

/// `wirebench __client`: runs the job on stdin, answers on stdout.
pub fn child_main() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading the client job")?;
    let job: ClientJob = serde_json::from_str(&line).context("the client job is not valid")?;
    let result = run_job(&job)?;
    let json = serde_json::to_string(&result).context("encoding the client's result")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "result {json}").and_then(|()| out.flush()).context("writing the client's result")?;
    Ok(())
}

fn run_job(job: &ClientJob) -> anyhow::Result<ClientResult> {
    let spec = job.spec().map_err(anyhow::Error::msg)?;
    let timeout = Duration::from_nanos(job.timeout_ns);
    let client = ClientConfig {
        connections: job.connections,
        timeout,
        max_message: job.max_message,
        max_datagram: job.max_datagram,
        tls: job.tls,
    };
    let data = Arc::new(Dataset::generate(spec.workload, job.seed));
    let hooks = Arc::new(ChildHooks {
        gate: Box::new(|| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "ready")?;
            out.flush()?;
            let mut go = String::new();
            std::io::stdin().lock().read_line(&mut go)?;
            Ok(go.trim() == "go")
        }),
        totals: Mutex::new(None),
    });
    // inproc has no server to reach: each client process serves itself,
    // as a one-client run does in its own process. It is held until the
    // cell is done.
    let mut _inproc = None;
    let endpoint = if spec.transport == TransportKind::Inproc {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let config = ServerConfig {
            max_message: job.max_message,
            max_datagram: job.max_datagram,
            tls: job.tls,
            ..ServerConfig::default()
        };
        let server =
            runtime.block_on(wirebench_transports::serve_kind(TransportKind::Inproc, &Address::InProc, config))?;
        let endpoint = server.endpoint().clone();
        _inproc = Some((runtime, server));
        endpoint
    } else {
        Endpoint::parse(spec.transport, &job.endpoint).map_err(anyhow::Error::msg)?
    };
    let cell_job = CellJob {
        spec,
        data,
        endpoint,
        client,
        timing: Timing {
            warmup: Duration::from_nanos(job.warmup_ns),
            duration: Duration::from_nanos(job.duration_ns),
            samples: job.samples,
            timeout,
        },
        raw_shape: RawShape { request: job.raw_shape[0], reply: job.raw_shape[1] },
        server_cpu: job.server_cpu.source().map_err(anyhow::Error::msg)?,
        seed: job.arrivals_seed,
        child: Some(hooks.clone()),
        control: None,
        same_clock: true,
        broker_cpu: crate::brokers::BrokerCpuSource::None,
        broker_limit: None,
    };
    if let Some(cpus) = &job.cpus {
        let _ = crate::affinity::pin_current_thread(cpus);
    }
    let cell = match cell::run(&cell_job, Arc::new(AtomicBool::new(false))) {
        Outcome::Done(cell) => *cell,
        // Told to stop before going: the parent no longer waits for us.
        Outcome::Interrupted => bail!("stopped before the start"),
    };
    let totals = hooks.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    let totals = match totals {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => bail!("encoding the client's histograms: {e}"),
        None => None,
    };
    Ok(ClientResult { cell, totals })
}

// ------------------------------------------------------------ the parent

/// Where the clients of a cell run.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Client `i` starts in `netns[i]` (with `--link`); empty: here.
    pub netns: Vec<PathBuf>,
    /// CPUs for each client's measuring thread.
    pub cpus: Option<Vec<usize>>,
    /// Their stderr goes here.
    pub log: PathBuf,
}

enum Said {
    Ready,
    Result(Box<ClientResult>),
    /// Closed stdout without a result; the text is why.
    Gone(String),
}

struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `job` in `clients` client processes and merges their results;
/// `Interrupted` if `stop` was raised meanwhile.
pub fn run(job: &CellJob, clients: usize, placement: &Placement, stop: &AtomicBool) -> Outcome {
    match run_children(job, clients, placement, stop) {
        Ok(Some(cell)) => Outcome::Done(Box::new(cell)),
        Ok(None) => Outcome::Interrupted,
        Err(e) => Outcome::Done(Box::new(cell::failed(&job.spec, format!("{e:#}"), None))),
    }
}

fn run_children(
    job: &CellJob,
    clients: usize,
    placement: &Placement,
    stop: &AtomicBool,
) -> anyhow::Result<Option<Cell>> {
    let exe = std::env::current_exe().context("cannot find the wirebench binary")?;
    let (tx, rx) = mpsc::channel::<(usize, Said)>();
    let mut running: Vec<Running> = Vec::with_capacity(clients);
    for index in 0..clients {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&placement.log)
            .with_context(|| format!("cannot open {}", placement.log.display()))?;
        let mut command = Command::new(&exe);
        command.arg("__client").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
        // SAFETY: only async-signal-safe calls between fork and exec: the
        // client dies with the thread that started it, and has its own
        // process group, so the terminal's Ctrl-C reaches the run only.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        if let Some(netns) = placement.netns.get(index) {
            wirebench_link::command_in_netns(&mut command, netns)?;
        } else if !placement.netns.is_empty() {
            bail!("client {index} has no namespace: the link has {}", placement.netns.len());
        }
        let mut child = command.spawn().with_context(|| format!("cannot start client {index}"))?;
        let stdout = child.stdout.take().context("no stdout from a client")?;
        let mut stdin = child.stdin.take();
        let line = serde_json::to_string(&ClientJob::new(job, index, clients, placement.cpus.clone()))?;
        if let Some(pipe) = stdin.as_mut() {
            // A client that died at once is reported by its reader below.
            let _ = writeln!(pipe, "{line}").and_then(|()| pipe.flush());
        }
        running.push(Running { child, stdin });
        let tx = tx.clone();
        std::thread::spawn(move || read_client(index, stdout, &tx));
    }
    drop(tx);

    let mut results: Vec<Option<ClientResult>> = (0..clients).map(|_| None).collect();
    let mut ready = vec![false; clients];
    let answered = |ready: &[bool], results: &[Option<ClientResult>], i: usize| ready[i] || results[i].is_some();
    // Phase 1: every client ready (or done early).
    let deadline = Instant::now() + READY_TIMEOUT;
    while (0..clients).any(|i| !answered(&ready, &results, i)) {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if Instant::now() > deadline {
            bail!("clients did not connect within {READY_TIMEOUT:?}");
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((i, Said::Ready)) => ready[i] = true,
            Ok((i, Said::Result(r))) => results[i] = Some(*r),
            Ok((i, Said::Gone(why))) => bail!("client {i} of {clients} {why}; see {}", placement.log.display()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the clients' readers ended early"),
        }
    }
    // Phase 2: all go together, or none does.
    let all_ready = ready.iter().all(|r| *r);
    for r in &mut running {
        match (all_ready, r.stdin.as_mut()) {
            (true, Some(pipe)) => {
                let _ = pipe.write_all(b"go\n").and_then(|()| pipe.flush());
            }
            _ => drop(r.stdin.take()),
        }
    }
    if !all_ready {
        // Someone failed before the start: its result is the cell's.
        let first = results.iter().position(Option::is_some).unwrap_or(0);
        let result = results[first].take().context("a client's result went missing")?;
        let mut cell = result.cell;
        if cell.status == CellStatus::Ok {
            cell.status = CellStatus::Failed;
        }
        if cell.status == CellStatus::Failed {
            let why = cell.error.take().unwrap_or_else(|| "failed".into());
            cell.error = Some(format!("client {first} of {clients}: {why}"));
        }
        return Ok(Some(cell));
    }
    let t = &job.timing;
    let longest = t.warmup + (t.duration * 10).max(Duration::from_secs(2)) + t.timeout * 2 + RESULT_SLACK;
    let deadline = Instant::now() + longest;
    while results.iter().any(Option::is_none) {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if Instant::now() > deadline {
            let late: Vec<String> =
                results.iter().enumerate().filter(|(_, r)| r.is_none()).map(|(i, _)| i.to_string()).collect();
            bail!("client(s) {} did not finish within {longest:?}", late.join(", "));
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((i, Said::Result(r))) => results[i] = Some(*r),
            Ok((_, Said::Ready)) => {}
            Ok((i, Said::Gone(why))) => bail!("client {i} of {clients} {why}; see {}", placement.log.display()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the clients' readers ended early"),
        }
    }
    drop(running);
    let results: Vec<ClientResult> = results.into_iter().flatten().collect();
    merge(&job.spec, results).map(Some).map_err(anyhow::Error::msg)
}

fn read_client(index: usize, stdout: std::process::ChildStdout, tx: &mpsc::Sender<(usize, Said)>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let said = if line == "ready" {
            Said::Ready
        } else if let Some(json) = line.strip_prefix("result ") {
            match serde_json::from_str::<ClientResult>(json) {
                Ok(r) => Said::Result(Box::new(r)),
                Err(e) => Said::Gone(format!("sent a result that does not parse ({e})")),
            }
        } else {
            tracing::debug!("client {index}: {line}");
            continue;
        };
        let last = !matches!(said, Said::Ready);
        if tx.send((index, said)).is_err() || last {
            return;
        }
    }
    let _ = tx.send((index, Said::Gone("ended without a result".into())));
}

// ------------------------------------------------------------- the merge

fn decode(text: &str, what: &str, client: usize) -> Result<Histogram<u64>, String> {
    histogram::decode(text).map_err(|e| format!("client {client}'s {what} histogram: {e}"))
}

fn add_all<'a>(parts: impl Iterator<Item = (usize, &'a str)>, what: &str) -> Result<Option<Histogram<u64>>, String> {
    let mut sum: Option<Histogram<u64>> = None;
    for (client, text) in parts {
        let h = decode(text, what, client)?;
        match &mut sum {
            None => sum = Some(h),
            Some(s) => s.add(&h).map_err(|e| format!("adding client {client}'s {what} histogram: {e:?}"))?,
        }
    }
    Ok(sum)
}

/// Merges the clients' results of one cell into the cell (see the module
/// doc for what is exact and how the server's CPU is shared).
pub fn merge(spec: &CellSpec, results: Vec<ClientResult>) -> Result<Cell, String> {
    let k = results.len();
    let first = results.first().ok_or("no client result to merge")?;
    if let Some(r) = results.iter().find(|r| r.cell.key != first.cell.key) {
        return Err(format!("clients measured different cells: {} and {}", first.cell.key, r.cell.key));
    }
    let figures: Vec<ClientFigures> = results.iter().enumerate().map(|(i, r)| client_figures(i, r)).collect();
    if results.iter().all(|r| r.cell.status == CellStatus::Unsupported) {
        let mut cell = first.cell.clone();
        cell.clients = Vec::new();
        return Ok(cell);
    }
    let measured: Vec<(usize, &ClientResult, &ClientTotals, &Metrics)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r, r.totals.as_ref()?, r.cell.metrics.as_ref()?)))
        .collect();
    let failed = results.iter().enumerate().find(|(_, r)| r.cell.status != CellStatus::Ok);
    let Some(&(_, _, _, m0)) = measured.first() else {
        let (i, r) = failed.unwrap_or((0, first));
        let mut cell = cell::failed(spec, client_error(i, k, &r.cell), None);
        cell.clients = figures;
        return Ok(cell);
    };

    let latency = add_all(measured.iter().map(|(i, _, t, _)| (*i, t.latency.as_str())), "latency")?
        .ok_or("no latency histogram")?;
    let all_have = |f: &dyn Fn(&ClientTotals) -> bool| measured.iter().all(|(_, _, t, _)| f(t));
    let uncorrected = if all_have(&|t| t.uncorrected.is_some()) {
        add_all(measured.iter().filter_map(|(i, _, t, _)| Some((*i, t.uncorrected.as_deref()?))), "uncorrected")?
    } else {
        None
    };
    let send_lag = if all_have(&|t| t.send_lag.is_some()) {
        add_all(measured.iter().filter_map(|(i, _, t, _)| Some((*i, t.send_lag.as_deref()?))), "send lag")?
    } else {
        None
    };

    let secs = |t: &ClientTotals| (t.window_ns as f64 / 1e9).max(1e-9);
    let to_close = |t: &ClientTotals| ((t.window_ns + t.close_lag_ns) as f64 / 1e9).max(1e-9);
    let calls: u64 = measured.iter().map(|(_, _, t, _)| t.calls).sum();
    let calls_to_close: u64 = measured.iter().map(|(_, _, t, _)| t.calls_to_close).sum::<u64>().max(1);
    let rate: f64 = measured.iter().map(|(_, _, t, _)| t.calls as f64 / secs(t)).sum();
    let longest = measured.iter().map(|(_, _, t, _)| secs(t)).fold(0.0, f64::max);
    let duration_s = if rate > 0.0 { calls as f64 / rate } else { longest };
    let per_call_us = |ns: u64| ns as f64 / 1e3 / calls_to_close as f64;
    let sum = |f: &dyn Fn(&ClientTotals) -> u64| measured.iter().map(|(_, _, t, _)| f(t)).sum::<u64>();
    let sum_opt = |f: &dyn Fn(&ClientTotals) -> Option<u64>| -> Option<u64> {
        measured.iter().map(|(_, _, t, _)| f(t)).sum::<Option<u64>>()
    };
    // The server's CPU rate (each client read it over its own window) over
    // the clients' summed call rate up to their end snapshots.
    let call_rate_to_close: f64 = measured.iter().map(|(_, _, t, _)| t.calls_to_close as f64 / to_close(t)).sum();
    let server_per_call = |f: &dyn Fn(&ClientTotals) -> Option<u64>| -> Option<f64> {
        let rates: Vec<f64> =
            measured.iter().map(|(_, _, t, _)| Some(f(t)? as f64 / to_close(t))).collect::<Option<_>>()?;
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        (call_rate_to_close > 0.0).then(|| mean / 1e3 / call_rate_to_close)
    };
    let server_user = server_per_call(&|t| t.server_user_ns);
    let server_system = server_per_call(&|t| t.server_system_ns);
    let metric_sum = |f: &dyn Fn(&Metrics) -> u64| measured.iter().map(|(_, _, _, m)| f(m)).sum::<u64>();
    let wire = |f: &dyn Fn(&ClientTotals) -> Option<u64>| sum_opt(f).map(|b| b as f64 / calls_to_close as f64);
    let metrics = Metrics {
        calls,
        duration_s,
        calls_per_sec: rate,
        mb_per_sec: rate * (m0.request_bytes + m0.reply_bytes) as f64 / 1e6,
        latency_kind: m0.latency_kind.clone(),
        latency: crate::passes::latency(&latency),
        latency_uncorrected: uncorrected.as_ref().map(crate::passes::latency),
        send_lag_p99_ns: send_lag.as_ref().map(|h| h.value_at_quantile(0.99)),
        request_bytes: m0.request_bytes,
        reply_bytes: m0.reply_bytes,
        request_zstd_bytes: m0.request_zstd_bytes,
        reply_zstd_bytes: m0.reply_zstd_bytes,
        wire_sent_per_call: m0.wire_sent_per_call.and(wire(&|t| t.wire_sent)),
        wire_received_per_call: m0.wire_received_per_call.and(wire(&|t| t.wire_received)),
        wire_probe_bytes: m0.wire_probe_bytes,
        wire_exact: m0.wire_exact,
        client_user_us_per_call: per_call_us(sum(&|t| t.client_user_ns)),
        client_system_us_per_call: per_call_us(sum(&|t| t.client_system_ns)),
        server_user_us_per_call: server_user,
        server_system_us_per_call: server_system,
        server_cpu: if server_user.is_some() {
            format!("{}; its CPU rate over the {k} clients' call rate", m0.server_cpu)
        } else {
            m0.server_cpu.clone()
        },
        errors: metric_sum(&|m| m.errors),
        timeouts: metric_sum(&|m| m.timeouts),
        wrong_replies: metric_sum(&|m| m.wrong_replies),
        late_replies: metric_sum(&|m| m.late_replies),
        overhead_p50: None,
        broker_user_us_per_call: None,
        broker_system_us_per_call: None,
        broker_cpu: None,
        oneway: None,
        stream: None,
        pubsub: None,
    };

    // Sub-window j of the cell: every client's sub-window j, added.
    let nsamples = measured.iter().map(|(_, _, t, _)| t.samples.len()).min().unwrap_or(0);
    let mut samples = Vec::with_capacity(nsamples);
    for j in 0..nsamples {
        let h = add_all(measured.iter().map(|(i, _, t, _)| (*i, t.samples[j].as_str())), "sample")?
            .ok_or("no sample histogram")?;
        let rate: f64 = measured
            .iter()
            .map(|(i, _, t, _)| {
                let part = decode(&t.samples[j], "sample", *i).map_or(0, |h| h.len());
                part as f64 / (secs(t) / t.samples.len() as f64)
            })
            .sum();
        samples.push(Sample {
            group: 0,
            calls: h.len(),
            p50_ns: if h.is_empty() { 0 } else { h.value_at_quantile(0.5) },
            p99_ns: if h.is_empty() { 0 } else { h.value_at_quantile(0.99) },
            calls_per_sec: rate,
        });
    }

    let mut cell = match failed {
        Some((i, r)) => cell::failed(spec, client_error(i, k, &r.cell), Some(metrics)),
        None if calls == 0 => cell::failed(spec, "no call completed in the measured window".into(), Some(metrics)),
        None => {
            let mut cell = cell::skeleton(spec, CellStatus::Ok, None);
            cell.metrics = Some(metrics);
            cell
        }
    };
    cell.raw_shape = first.cell.raw_shape;
    cell.samples = samples;
    cell.histogram = Some(histogram::encode(&latency)?);
    cell.histogram_uncorrected = uncorrected.as_ref().map(histogram::encode).transpose()?;
    cell.clients = figures;
    Ok(cell)
}

fn client_error(i: usize, k: usize, cell: &Cell) -> String {
    format!("client {i} of {k}: {}", cell.error.as_deref().unwrap_or("failed"))
}

fn client_figures(i: usize, r: &ClientResult) -> ClientFigures {
    let m = r.cell.metrics.as_ref();
    ClientFigures {
        client: i,
        status: r.cell.status,
        error: r.cell.error.clone(),
        calls: m.map_or(0, |m| m.calls),
        duration_s: m.map_or(0.0, |m| m.duration_s),
        calls_per_sec: m.map_or(0.0, |m| m.calls_per_sec),
        p50_ns: m.map_or(0, |m| m.latency.p50),
        p99_ns: m.map_or(0, |m| m.latency.p99),
        cpu_us_per_call: m.map_or(0.0, |m| m.client_user_us_per_call + m.client_system_us_per_call),
    }
}

/// The client processes' log, beside the results.
pub fn log_path(out_dir: &Path) -> PathBuf {
    out_dir.join("clients.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    fn spec(clients: usize) -> CellSpec {
        CellSpec {
            workload: Workload::Multiply,
            subject: Subject::Format(FormatId::Json),
            transport: TransportKind::Tcp,
            load: LoadSpec { model: LoadModel::Closed, in_flight: 2, connections: 1 },
            clients,
            link: None,
            mode: CallMode::Rr,
        }
    }

    /// A client that made `values` calls in `window_ms`, its samples two
    /// halves of them, with the given CPU (ns) and server CPU read.
    fn client(values: &[u64], window_ms: u64, cpu_ns: u64, server_ns: u64) -> ClientResult {
        let h = hist(values);
        let (a, b) = values.split_at(values.len() / 2);
        let mut cell = cell::skeleton(&spec(2), CellStatus::Ok, None);
        cell.metrics = Some(Metrics {
            calls: values.len() as u64,
            duration_s: window_ms as f64 / 1e3,
            calls_per_sec: values.len() as f64 / (window_ms as f64 / 1e3),
            latency_kind: "call".into(),
            latency: crate::passes::latency(&h),
            request_bytes: 28,
            reply_bytes: 17,
            server_cpu: "server process, getrusage".into(),
            client_user_us_per_call: 1.0,
            wire_sent_per_call: Some(40.0),
            wire_received_per_call: Some(29.0),
            ..Metrics::default()
        });
        let n = values.len() as u64;
        ClientResult {
            cell,
            totals: Some(ClientTotals {
                latency: histogram::encode(&h).unwrap(),
                samples: vec![histogram::encode(&hist(a)).unwrap(), histogram::encode(&hist(b)).unwrap()],
                window_ns: window_ms * 1_000_000,
                calls: n,
                calls_to_close: n,
                client_user_ns: cpu_ns,
                server_user_ns: Some(server_ns),
                server_system_ns: Some(0),
                wire_sent: Some(40 * n),
                wire_received: Some(29 * n),
                ..ClientTotals::default()
            }),
        }
    }

    #[test]
    fn histograms_add_exactly_and_calls_sum() {
        let a: Vec<u64> = (1..=300).map(|i| 20_000 + i * 7).collect();
        let b: Vec<u64> = (1..=500).map(|i| 90_000 + i * 11).collect();
        let cell =
            merge(&spec(2), vec![client(&a, 100, 3_000_000, 10_000_000), client(&b, 100, 5_000_000, 10_000_000)])
                .unwrap();
        assert_eq!(cell.status, CellStatus::Ok, "{:?}", cell.error);
        let m = cell.metrics.as_ref().unwrap();
        assert_eq!(m.calls, 800);
        let merged = histogram::decode(cell.histogram.as_ref().unwrap()).unwrap();
        let mut expected = hist(&a);
        expected.add(hist(&b)).unwrap();
        assert_eq!(merged.len(), 800);
        for v in a.iter().chain(&b) {
            assert_eq!(merged.count_at(*v), expected.count_at(*v), "value {v}");
        }
        assert_eq!(m.latency.p50, expected.value_at_quantile(0.5));
        assert_eq!(m.latency.max, expected.max());
        // Calls/s add; the window is the one those calls and that rate imply.
        assert!((m.calls_per_sec - 8000.0).abs() < 1e-6, "{}", m.calls_per_sec);
        assert!((m.duration_s - 0.1).abs() < 1e-9);
        // Client CPU: 8 ms over 800 calls.
        assert!((m.client_user_us_per_call - 10.0).abs() < 1e-9, "{}", m.client_user_us_per_call);
        // The server ran 10 ms of CPU in 100 ms for all 800 calls (both
        // clients saw the same), not 20 ms.
        assert!((m.server_user_us_per_call.unwrap() - 12.5).abs() < 1e-9, "{:?}", m.server_user_us_per_call);
        assert!((m.wire_sent_per_call.unwrap() - 40.0).abs() < 1e-9);
        // Sub-windows add too.
        assert_eq!(cell.samples.len(), 2);
        assert_eq!(cell.samples.iter().map(|s| s.calls).sum::<u64>(), 800);
        assert_eq!(cell.clients.len(), 2);
        assert_eq!(cell.clients.iter().map(|c| c.calls).sum::<u64>(), m.calls);
        assert_eq!(cell.key, "multiply/json/tcp/c2k2");
    }

    #[test]
    fn one_failed_client_fails_the_cell_and_says_which() {
        let mut bad = client(&[30_000; 10], 100, 1, 1);
        bad.cell.status = CellStatus::Failed;
        bad.cell.error = Some("3 timeouts".into());
        let cell = merge(&spec(2), vec![client(&[20_000; 10], 100, 1, 1), bad]).unwrap();
        assert_eq!(cell.status, CellStatus::Failed);
        assert_eq!(cell.error.as_deref(), Some("client 1 of 2: 3 timeouts"));
        assert_eq!(cell.metrics.unwrap().calls, 20, "what was measured is kept");
        let mut none = client(&[1], 100, 1, 1);
        none.totals = None;
        none.cell = cell::failed(&spec(2), "cannot connect".into(), None);
        let cell = merge(&spec(2), vec![none.clone(), none]).unwrap();
        assert_eq!(cell.error.as_deref(), Some("client 0 of 2: cannot connect"));
    }

    #[test]
    fn jobs_survive_the_trip_to_the_child() {
        let job = CellJob {
            spec: CellSpec { link: Some("wan".parse().unwrap()), ..spec(3) },
            data: Arc::new(Dataset::generate(Workload::Multiply, 1)),
            endpoint: Endpoint::parse(TransportKind::Tcp, "10.201.0.1:4000").unwrap(),
            client: ClientConfig::default(),
            timing: Timing {
                warmup: Duration::from_millis(20),
                duration: Duration::from_millis(60),
                samples: 3,
                timeout: Duration::from_secs(5),
            },
            raw_shape: RawShape { request: 17, reply: 16 },
            server_cpu: ServerCpuSource::ControlInNetns(
                Endpoint::parse(TransportKind::Tcp, "10.201.0.1:4000").unwrap(),
                PathBuf::from("/run/netns/wb1n0s"),
            ),
            seed: 7,
            child: None,
            control: None,
            same_clock: true,
            broker_cpu: crate::brokers::BrokerCpuSource::None,
            broker_limit: None,
        };
        let sent = ClientJob::new(&job, 2, 3, Some(vec![0]));
        let back: ClientJob = serde_json::from_str(&serde_json::to_string(&sent).unwrap()).unwrap();
        assert_eq!(back.spec().unwrap(), job.spec);
        assert_eq!(back.spec().unwrap().key(), "multiply/json/tcp/c2k3@wan");
        assert!(
            matches!(back.server_cpu.source().unwrap(), ServerCpuSource::ControlInNetns(_, p) if p == Path::new("/run/netns/wb1n0s"))
        );
        assert_ne!(back.arrivals_seed, ClientJob::new(&job, 1, 3, None).arrivals_seed);
    }
}
