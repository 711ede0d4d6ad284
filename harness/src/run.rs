//! `wirebench run`: the matrix, cell by cell, into a results file.
//!
//! Nothing is lost on the way: the results file is rewritten atomically as
//! cells finish (at most every half second, and always at the end), a
//! failing cell is recorded and the run goes on, a crashed server process
//! is restarted for the next cell, and Ctrl-C stops after recording every
//! finished cell in a valid file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use wirebench_formats::protobuf::Protobuf;
use wirebench_formats::{Dataset, FormatId, Workload};
use wirebench_reports::SCHEMA_VERSION;
use wirebench_reports::model::{
    Cell, CellStatus, FormatInfo, PassFigures, Replicate, Results, RunConfig, Tool, TransportInfo,
};
use wirebench_transports::{ClientConfig, RawShape, TransportKind};

use crate::affinity;
use crate::cell::{self, CellJob, Outcome, Sizes};
use crate::environment;
use crate::passes;
use crate::plan::{CellSpec, Matrix, Timing};
use crate::progress::Progress;
use crate::servers::{Mode, ServerOptions, Servers};

/// Everything `wirebench run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The matrix.
    pub matrix: Matrix,
    /// Per-cell timing.
    pub timing: Timing,
    /// Data seed.
    pub seed: u64,
    /// Where the servers run.
    pub mode: Mode,
    /// Client settings.
    pub client: ClientConfig,
    /// Server settings.
    pub server: ServerOptions,
    /// CPUs of the client thread.
    pub client_cpus: Option<Vec<usize>>,
    /// Output directory (default: a new one under `wirebench-results/`).
    pub out_dir: Option<PathBuf>,
    /// No progress output.
    pub quiet: bool,
    /// `--quick` was given (recorded in the results).
    pub quick: bool,
    /// Interleaved passes over the matrix.
    pub passes: u32,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunSummary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// The results file.
    pub results_path: PathBuf,
    /// The results.
    pub results: Results,
    /// The run was interrupted.
    pub interrupted: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);
/// A second signal arrived while links were up.
static SECOND: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // A second Ctrl-C: leave now. The file on disk is complete as of
        // the last write (writes are atomic). Links must be torn down
        // first, which takes locks and runs `ip`: the relay thread does it.
        if !crate::link::any_up() {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(130) };
        }
        SECOND.store(true, Ordering::SeqCst);
    }
}

/// Stops the run at the next cell boundary on SIGINT (Ctrl-C) or SIGTERM.
fn install_interrupt() -> Arc<AtomicBool> {
    // SAFETY: installing a handler that only touches an atomic (and
    // `_exit`s on the second signal).
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
    let flag = Arc::new(AtomicBool::new(false));
    let relay = flag.clone();
    // Cells watch an Arc; relay the static flag into it.
    std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        relay.store(true, Ordering::SeqCst);
        while !SECOND.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::link::teardown_on_second_signal();
    });
    flag
}

/// The raw ping-pong sizes of a workload: its protobuf request and reply
/// (protobuf is the reference encoding, as gRPC's), at least 16 bytes.
pub fn raw_shape(data: &Dataset) -> RawShape {
    let sizes =
        Sizes::of::<Protobuf>(data).unwrap_or(Sizes { request: 16, reply: 16, request_zstd: None, reply_zstd: None });
    RawShape { request: (sizes.request as usize).max(16), reply: (sizes.reply as usize).max(16) }
}

/// The transports a run serves: the matrix's and their baselines'.
pub fn transports_needed(cells: &[CellSpec]) -> Vec<TransportKind> {
    let mut all: Vec<TransportKind> = cells.iter().map(|c| c.transport).collect();
    all.sort();
    all.dedup();
    all
}

fn format_infos(formats: &[FormatId]) -> BTreeMap<String, FormatInfo> {
    formats
        .iter()
        .map(|f| {
            let p = f.properties();
            let info = FormatInfo {
                library: p.library.into(),
                self_describing: p.self_describing,
                schema: p.schema.into(),
                zero_copy: p.zero_copy,
                validation: p.validation.into(),
                unvalidated_access: p.unvalidated_access,
                layout: p.layout.into(),
            };
            (f.name().to_owned(), info)
        })
        .collect()
}

fn transport_infos(transports: &[TransportKind]) -> BTreeMap<String, TransportInfo> {
    transports
        .iter()
        .map(|t| {
            let p = t.properties();
            let info = TransportInfo {
                family: t.family().name().into(),
                format: t.own_format().map(|f| f.name().to_owned()),
                library: p.library.into(),
                security: p.security.into(),
                delivery: p.delivery.into(),
                multiplexing: p.multiplexing.into(),
                framing: p.framing.into(),
                wire_bytes: p.wire_bytes.into(),
            };
            (t.name().to_owned(), info)
        })
        .collect()
}

/// A results file with no cells yet.
pub fn empty_results(options: &RunOptions, cells: &[CellSpec]) -> Results {
    let pinning = match (&options.client_cpus, &options.server.cpus) {
        (Some(c), Some(s)) => format!("client:{} server:{}", affinity::format_cpus(c), affinity::format_cpus(s)),
        _ => "off".into(),
    };
    let server = match options.mode {
        Mode::Process => "process",
        Mode::InProcess => "in-process",
        Mode::Remote(_) => "remote",
    };
    Results {
        schema_version: SCHEMA_VERSION,
        tool: Tool { name: "wirebench".into(), version: env!("CARGO_PKG_VERSION").into() },
        environment: environment::capture(),
        config: RunConfig {
            duration_ms: options.timing.duration.as_millis() as u64,
            warmup_ms: options.timing.warmup.as_millis() as u64,
            samples: options.timing.samples,
            seed: options.seed,
            server: server.into(),
            pinning,
            client_threads: 1,
            timeout_ms: options.client.timeout.as_millis() as u64,
            max_datagram: options.client.max_datagram,
            tls: options.client.tls,
            quick: options.quick,
            matrix: options.matrix.name.clone(),
            passes: options.passes.max(1),
        },
        run_id: new_run_id(),
        replicates: Vec::new(),
        merged: Vec::new(),
        formats: format_infos(&options.matrix.formats()),
        transports: transport_infos(&transports_needed(cells)),
        cells: BTreeMap::new(),
        planned: Vec::new(),
        instructions: None,
        interrupted: false,
        links: Vec::new(),
        server_environment: None,
    }
}

/// A fresh run id: 128 random bits in hex (from the kernel's random
/// source; the clock and pid if it cannot be read, which is still unique
/// enough to tell two runs apart).
pub fn new_run_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes[..12].copy_from_slice(&nanos.to_le_bytes()[..12]);
        bytes[12..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets every cell's overhead over its raw baseline, from the cells as
/// they stand (all passes so far).
fn set_overheads(cells: &mut BTreeMap<String, Cell>) {
    let keys: Vec<String> = cells.keys().cloned().collect();
    for key in keys {
        let Some(mut cell) = cells.remove(&key) else { continue };
        set_overhead(&mut cell, cells);
        cells.insert(key, cell);
    }
}

/// Sets a cell's overhead over its raw baseline, if both are measured.
fn set_overhead(cell: &mut Cell, cells: &BTreeMap<String, Cell>) {
    let baseline_p50 = cell
        .baseline
        .as_ref()
        .and_then(|key| cells.get(key))
        .filter(|b| b.status == CellStatus::Ok)
        .and_then(|b| b.metrics.as_ref())
        .map(|m| m.latency.p50);
    if let (Some(metrics), Some(base)) = (cell.metrics.as_mut(), baseline_p50)
        && base > 0
    {
        metrics.overhead_p50 = Some(metrics.latency.p50 as f64 / base as f64);
    }
}

/// Runs one cell on a fresh thread pinned to the client CPUs (inside the
/// link's first client namespace with `--link`); a panic in the cell fails
/// the cell, not the run.
fn run_on_client_thread(
    job: CellJob,
    stop: Arc<AtomicBool>,
    cpus: Option<Vec<usize>>,
    netns: Option<PathBuf>,
) -> Outcome {
    let spec = job.spec;
    let thread = std::thread::Builder::new().name("wirebench-client".into()).spawn(move || {
        if let Some(cpus) = &cpus {
            let _ = affinity::pin_current_thread(cpus);
        }
        // The runtime and its sockets are made on this thread, so inside.
        let _inside = match netns.as_deref().map(wirebench_link::enter_netns).transpose() {
            Ok(guard) => guard,
            Err(e) => return Outcome::Done(Box::new(cell::failed(&job.spec, e.to_string(), None))),
        };
        cell::run(&job, stop)
    });
    match thread.map(std::thread::JoinHandle::join) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::Done(Box::new(cell::failed(&spec, format!("the cell panicked: {message}"), None)))
        }
        Err(e) => Outcome::Done(Box::new(cell::failed(&spec, format!("cannot start a client thread: {e}"), None))),
    }
}

/// Runs one pass of one cell: `None` if the run was interrupted during it.
fn run_cell(
    spec: &CellSpec,
    options: &RunOptions,
    side: &mut Side,
    datasets: &BTreeMap<Workload, Arc<Dataset>>,
    shapes: &BTreeMap<Workload, RawShape>,
    stop: &Arc<AtomicBool>,
    out_dir: &Path,
) -> Option<Cell> {
    if spec.link.is_some()
        && let Some(reason) = crate::link::unsupported_cell(spec)
    {
        return Some(cell::unsupported(spec, reason.to_owned()));
    }
    let server_options = side.server_options.clone();
    let network = side.network.as_ref();
    let (servers, network) = match (&mut side.servers, network) {
        (Some(servers), network) => (servers, network),
        (None, Some(network)) => {
            let why = network.validation_error().unwrap_or("it did not come up");
            let name = crate::link::name(network.spec());
            return Some(cell::failed(spec, format!("link {name} failed its validation: {why}"), None));
        }
        (None, None) => return Some(cell::failed(spec, "no servers for this cell".into(), None)),
    };
    // A server that died between cells is restarted before the next.
    if let Some(note) = servers.check_child(&server_options, out_dir) {
        tracing::warn!("{note}");
    }
    // A broker that died between cells is replaced before the next; a
    // broker row without a broker cannot run.
    if let Some(cell) = crate::brokers::before_cell(spec, servers, &options.server, out_dir) {
        return Some(cell);
    }
    let Some(endpoint) = servers.endpoint(spec.transport).cloned() else {
        return Some(cell::unsupported(spec, format!("no {} server in this run", spec.transport)));
    };
    let job = CellJob {
        spec: *spec,
        data: datasets[&spec.workload].clone(),
        endpoint,
        client: options.client.clone(),
        timing: options.timing,
        raw_shape: shapes[&spec.workload],
        server_cpu: servers.cpu_source(),
        seed: options.seed,
        child: None,
        control: servers.endpoint(TransportKind::Tcp).cloned(),
        same_clock: !matches!(options.mode, Mode::Remote(_)),
        broker_cpu: servers.broker_cpu(spec.transport),
        broker_limit: servers.broker_limit(spec.transport),
    };
    let crash = crate::faults::during(spec, options, servers);
    let outcome = if spec.clients > 1 {
        let netns = match network {
            Some(n) => match (0..spec.clients).map(|i| n.client_netns(i)).collect::<anyhow::Result<Vec<_>>>() {
                Ok(netns) => netns,
                Err(e) => return Some(cell::failed(spec, format!("{e:#}"), None)),
            },
            None => Vec::new(),
        };
        let placement = crate::clients::Placement {
            netns,
            cpus: options.client_cpus.clone(),
            log: crate::clients::log_path(out_dir),
        };
        crate::clients::run(&job, spec.clients, &placement, stop)
    } else {
        let netns = match network.map(|n| n.client_netns(0)).transpose() {
            Ok(netns) => netns,
            Err(e) => return Some(cell::failed(spec, format!("{e:#}"), None)),
        };
        run_on_client_thread(job, stop.clone(), options.client_cpus.clone(), netns)
    };
    let mut cell = match outcome {
        Outcome::Interrupted => return None,
        Outcome::Done(cell) => *cell,
    };
    drop(crash);
    // A broker that died during the cell fails it, and the next cell gets
    // a fresh one.
    crate::brokers::after_cell(&mut cell, servers, &options.server, out_dir);
    // A server that died during the cell fails it, whatever the cell
    // itself saw.
    if let Some(note) = servers.check_child(&server_options, out_dir) {
        let seen = cell.error.take().map(|e| format!(" (the cell saw: {e})")).unwrap_or_default();
        cell.status = CellStatus::Failed;
        cell.error = Some(format!("{note} during this cell{seen}"));
    }
    Some(cell)
}

/// Runs the matrix and writes `results.json` into the output directory.
pub fn run(options: RunOptions) -> anyhow::Result<RunSummary> {
    // Which transports a remote server offers was checked with the options:
    // every cell of the matrix has a server.
    let cells = options.matrix.cells();
    let out_dir = create_out_dir(options.out_dir.as_deref())?;
    let results_path = out_dir.join("results.json");
    let stop = install_interrupt();

    let datasets: BTreeMap<Workload, Arc<Dataset>> =
        options.matrix.workloads().into_iter().map(|w| (w, Arc::new(Dataset::generate(w, options.seed)))).collect();
    let shapes: BTreeMap<Workload, RawShape> = datasets.iter().map(|(&w, d)| (w, raw_shape(d))).collect();

    // One side per link (its network, then its servers inside), or
    // loopback's; dropped in reverse, servers before their network.
    let mut sides: Vec<Side> = Vec::new();
    if options.matrix.links.is_empty() {
        sides.push(Side::loopback(&options, &transports_needed(&cells), &out_dir)?);
    } else {
        for spec in &options.matrix.links {
            sides.push(Side::linked(&options, spec, &transports_needed(&cells), &out_dir)?);
        }
    }
    let mut results = empty_results(&options, &cells);
    results.planned = cells.iter().map(CellSpec::key).collect();
    results.links = sides.iter().filter_map(|s| s.network.as_ref()).map(|n| n.record(options.seed)).collect();
    results.server_environment = sides.iter().find_map(|s| {
        let servers = s.servers.as_ref()?;
        crate::remote::server_environment(&servers.cpu_source(), &options.client)
            .map_err(|e| tracing::warn!("the server did not describe its machine: {e}"))
            .ok()
    });
    results.write_atomic(&results_path).with_context(|| format!("cannot write {}", results_path.display()))?;

    let passes = options.passes.max(1);
    if passes > 1 {
        let id = results.run_id.clone();
        results.replicates = (0..passes).map(|pass| Replicate { group: pass, run_id: id.clone(), pass }).collect();
    }
    let mut progress = Progress::new(cells.len() as u64 * u64::from(passes), options.quiet);
    let mut last_write = Instant::now();
    let mut interrupted = false;
    let started = Instant::now();
    // Each cell's passes so far, in pass order.
    let mut done: Vec<Vec<(Cell, PassFigures)>> = vec![Vec::new(); cells.len()];
    'passes: for pass in 0..passes {
        for index in passes::order(cells.len(), options.seed, pass, passes) {
            let spec = &cells[index];
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break 'passes;
            }
            progress.start(&spec.key());
            let offset_s = started.elapsed().as_secs_f64();
            let side_index = options.matrix.links.iter().position(|l| Some(*l) == spec.link).unwrap_or(0);
            let side = &mut sides[side_index];
            let Some(mut cell) = run_cell(spec, &options, side, &datasets, &shapes, &stop, &out_dir) else {
                interrupted = true;
                break 'passes;
            };
            progress.finish(&cell);
            let figures = passes::tag(&mut cell, pass, offset_s);
            done[index].push((cell, figures));
            if let Some(folded) = passes::fold(&done[index]) {
                results.cells.insert(folded.key.clone(), folded);
            }
            if last_write.elapsed() > Duration::from_millis(500) {
                set_overheads(&mut results.cells);
                results
                    .write_atomic(&results_path)
                    .with_context(|| format!("cannot write {}", results_path.display()))?;
                last_write = Instant::now();
            }
        }
    }
    set_overheads(&mut results.cells);
    progress.done();
    results.interrupted = interrupted;
    results.environment.finished_at = environment::now_rfc3339();
    results.links = sides.iter().filter_map(|s| s.network.as_ref()).map(|n| n.record(options.seed)).collect();
    results.write_atomic(&results_path).with_context(|| format!("cannot write {}", results_path.display()))?;
    // Servers first, then the networks they were in (Side's field order),
    // last side first.
    while let Some(side) = sides.pop() {
        drop(side);
    }
    Ok(RunSummary { out_dir, results_path, results, interrupted })
}

/// One side of a run's cells: the network they cross (none on loopback)
/// and the servers behind it. Fields drop in order: servers, then the
/// network they were inside.
#[derive(Debug)]
struct Side {
    /// `None` when the link failed its validation (its cells are failed).
    servers: Option<Servers>,
    /// The options the servers were started with (and restart with).
    server_options: ServerOptions,
    network: Option<crate::link::Network>,
}

impl Side {
    fn loopback(options: &RunOptions, transports: &[TransportKind], out_dir: &Path) -> anyhow::Result<Side> {
        let servers = Servers::start(&options.mode, transports, &options.server, out_dir)?;
        Ok(Side { servers: Some(servers), server_options: options.server.clone(), network: None })
    }

    /// Brings up `spec`, measures it, and starts the server process in its
    /// server namespace for the transports that cross a link.
    fn linked(
        options: &RunOptions,
        spec: &wirebench_link::LinkSpec,
        transports: &[TransportKind],
        out_dir: &Path,
    ) -> anyhow::Result<Side> {
        let network = crate::link::Network::up(spec, options.matrix.clients.max(1), options.seed, options.quiet)?;
        let server_options = ServerOptions {
            netns: Some(network.server_netns()),
            listen_ip: Some(network.server_ip()),
            ..options.server.clone()
        };
        if network.validation_error().is_some() {
            return Ok(Side { servers: None, server_options, network: Some(network) });
        }
        let crossing: Vec<TransportKind> =
            transports.iter().copied().filter(|t| crate::link::unsupported(*t).is_none()).collect();
        let servers = Servers::start(&options.mode, &crossing, &server_options, out_dir)
            .with_context(|| format!("cannot start the server behind link {}", crate::link::name(spec)))?;
        Ok(Side { servers: Some(servers), server_options, network: Some(network) })
    }
}

/// Creates the run's output directory: the one asked for (which may
/// exist), or a new `wirebench-results/<UTC time>/`, with `-2`, `-3`, ...
/// appended when another run took that name first (runs started in the
/// same second never share a directory).
pub fn create_out_dir(asked: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = asked {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        return Ok(dir.to_owned());
    }
    let parent = Path::new("wirebench-results");
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    unique_dir(parent, &environment::stamp())
}

/// Creates `parent/name`, or `parent/name-N` for the first N from 2 that is
/// free. `create_dir` fails if the directory exists, so two runs racing for
/// a name both get one of their own.
pub fn unique_dir(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
    for n in 1..10_000u32 {
        let dir = if n == 1 { parent.join(name) } else { parent.join(format!("{name}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    anyhow::bail!("cannot find a free name for {name} in {}", parent.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_directories_never_collide() {
        let parent = tempfile::tempdir().unwrap();
        let a = unique_dir(parent.path(), "20261201-120000").unwrap();
        let b = unique_dir(parent.path(), "20261201-120000").unwrap();
        let c = unique_dir(parent.path(), "20261201-120000").unwrap();
        assert_eq!(a.file_name().unwrap(), "20261201-120000");
        assert_eq!(b.file_name().unwrap(), "20261201-120000-2");
        assert_eq!(c.file_name().unwrap(), "20261201-120000-3");
    }

    #[test]
    fn raw_shapes_follow_protobuf_sizes() {
        let small = raw_shape(&Dataset::generate(Workload::Multiply, 1));
        // protobuf Multiply: a 17-byte request, an 11-byte reply (floored at 16).
        assert_eq!((small.request, small.reply), (17, 16));
        let echo = raw_shape(&Dataset::generate(Workload::Echo { size: 1024 }, 1));
        assert!(echo.request > 1024 && echo.request < 1040, "{echo:?}");
        let digest = raw_shape(&Dataset::generate(Workload::Digest { records: 100 }, 1));
        assert!(digest.request > 5000 && digest.reply == 16, "{digest:?}");
    }

    #[test]
    fn overhead_is_the_ratio_of_p50s() {
        use crate::plan::Subject;
        let spec = |subject| CellSpec {
            workload: Workload::Multiply,
            subject,
            transport: TransportKind::Tcp,
            load: crate::plan::LoadSpec { model: crate::plan::LoadModel::Closed, in_flight: 1, connections: 1 },
            clients: 1,
            link: None,
            mode: crate::plan::CallMode::Rr,
        };
        let with_p50 = |spec: &CellSpec, p50| {
            let mut c = cell::skeleton(spec, CellStatus::Ok, None);
            let mut m = wirebench_reports::model::Metrics::default();
            m.latency.p50 = p50;
            c.metrics = Some(m);
            c
        };
        let raw = with_p50(&spec(Subject::Raw), 20_000);
        let mut cells = BTreeMap::new();
        cells.insert(raw.key.clone(), raw);
        let mut json = with_p50(&spec(Subject::Format(FormatId::Json)), 25_000);
        set_overhead(&mut json, &cells);
        assert_eq!(json.metrics.unwrap().overhead_p50, Some(1.25));
    }
}
