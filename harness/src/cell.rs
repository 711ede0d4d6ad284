//! Running one cell: pick the transport and format types, connect, measure,
//! and turn the measurement into a results-file cell.
//!
//! Dispatch happens once per cell through the registries' visitors; from
//! there on the load loop is monomorphized over the transport (or stock
//! framework), and reaches the format through `crate::codec::Codec`: two
//! indirect calls per call, where a loop per format and transport would
//! compile fifteen times the code.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use wirebench_formats::{Dataset, Format, FormatId, FormatVisitor, Method};
use wirebench_reports::histogram;
use wirebench_reports::model::{Cell, CellStatus, Metrics, Sample};
use wirebench_transports::cpu::CpuTime;
use wirebench_transports::frame::HEADER_LEN;
use wirebench_transports::stream::StreamClient;
use wirebench_transports::{
    Client, ClientConfig, Counters, Endpoint, Framework, FrameworkClient, RawClient, RawShape, Transport,
    TransportKind, TransportVisitor,
};

use crate::brokers::BrokerCpuSource;
use crate::codec::{self, Codec};
use crate::measure::{self, Caller, Completed, Failure, Measured, NoServerCpu, ServerCpu};
use crate::modes;
use crate::plan::{CallMode, CellSpec, LoadModel, Subject, Timing};

/// Where a cell's server CPU time comes from.
#[derive(Clone, Debug)]
pub enum ServerCpuSource {
    /// The server-stats control call on this tcp endpoint.
    Control(Endpoint),
    /// The same, over a connection made inside this network namespace
    /// (the server's, with `--link`: the control calls do not cross the
    /// link).
    ControlInNetns(Endpoint, std::path::PathBuf),
    /// The server runs in this process: process CPU minus the client
    /// thread's.
    InProcess,
    /// Not measurable; the reason.
    Unavailable(&'static str),
}

/// Everything a cell needs to run.
#[derive(Clone, Debug)]
pub struct CellJob {
    /// The cell.
    pub spec: CellSpec,
    /// Its data.
    pub data: Arc<Dataset>,
    /// The server to call (for raw cells: the baseline transport's).
    pub endpoint: Endpoint,
    /// Client settings.
    pub client: ClientConfig,
    /// Warm-up, window, samples.
    pub timing: Timing,
    /// The raw ping-pong sizes of this workload.
    pub raw_shape: RawShape,
    /// Server CPU source.
    pub server_cpu: ServerCpuSource,
    /// Seed for open-loop arrivals.
    pub seed: u64,
    /// Set in a `--clients` child process: its start gate and where its
    /// raw totals go.
    pub child: Option<Arc<crate::clients::ChildHooks>>,
    /// The server's tcp endpoint, for the oneway-report control call.
    pub control: Option<Endpoint>,
    /// Client and server read one machine's clock (not a remote server):
    /// oneway send-to-receipt latency is meaningful.
    pub same_clock: bool,
    /// Broker rows: where the broker's CPU comes from.
    pub broker_cpu: BrokerCpuSource,
    /// Broker rows: the largest message body the broker carries.
    pub broker_limit: Option<usize>,
}

/// How a cell ended.
#[derive(Debug)]
pub enum Outcome {
    /// A finished cell (ok, failed or unsupported).
    Done(Box<Cell>),
    /// The run was interrupted during the cell; it is not recorded.
    Interrupted,
}

/// Runs `job` on the calling thread (which it owns for the duration).
pub fn run(job: &CellJob, stop: Arc<AtomicBool>) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Outcome::Done(Box::new(failed(&job.spec, format!("cannot start a runtime: {e}"), None))),
    };
    // Inside a LocalSet: a framework whose client is not Send (Cap'n Proto
    // RPC) spawns its connection driver with spawn_local.
    tokio::task::LocalSet::new().block_on(&runtime, async {
        match job.spec.subject {
            Subject::Raw => job.spec.transport.visit(RawCell { job, stop }).await,
            Subject::Format(format) => job.spec.transport.visit(FormatCell { job, format, stop }).await,
        }
    })
}

type BoxFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + 'a>>;

/// A cell's skeleton: its key and axes, no measurements yet.
pub fn skeleton(spec: &CellSpec, status: CellStatus, error: Option<String>) -> Cell {
    Cell {
        key: spec.key(),
        workload: spec.workload.to_string(),
        workload_kind: spec.workload.kind().to_owned(),
        size: spec.workload.size().map(|s| s as u64),
        format: spec.subject.to_string(),
        transport: spec.transport.name().to_owned(),
        load: wirebench_reports::model::Load { clients: spec.clients, ..spec.load.to_model() },
        status,
        error,
        baseline: spec.baseline_key(),
        raw_shape: None,
        metrics: None,
        samples: Vec::new(),
        histogram: None,
        histogram_uncorrected: None,
        histogram_first_reply: None,
        passes: Vec::new(),
        link: spec.link.as_ref().map(crate::link::cell_link),
        clients: Vec::new(),
        mode: spec.mode.to_model(),
    }
}

/// An unsupported cell.
pub fn unsupported(spec: &CellSpec, reason: String) -> Cell {
    skeleton(spec, CellStatus::Unsupported, Some(reason))
}

/// A failed cell, with whatever was measured.
pub fn failed(spec: &CellSpec, error: String, metrics: Option<Metrics>) -> Cell {
    let mut cell = skeleton(spec, CellStatus::Failed, Some(error));
    cell.metrics = metrics;
    cell
}

// ---------------------------------------------------------------- callers

/// A format's request over a framed transport.
struct Framed<C: Client> {
    client: C,
    codec: Codec,
    method: Method,
    data: Arc<Dataset>,
    inproc: bool,
    counts_wire: bool,
}

impl<C: Client> Caller for Framed<C> {
    type Scratch = codec::Scratch;

    async fn call(&self, scratch: &mut codec::Scratch) -> Result<Completed, Failure> {
        let request = self.codec.encode_request(scratch).map_err(Failure::Error)?;
        let reply = self.client.call(self.method, self.codec.id(), request).await?;
        let decoded = self.codec.decode_reply(self.method, &reply).map_err(|e| Failure::Wrong(e.to_string()))?;
        let done = Instant::now();
        self.data.verify(&decoded).map_err(|w| Failure::Wrong(w.0))?;
        Ok(done.into())
    }

    fn counters(&self) -> Option<Counters> {
        self.counts_wire.then(|| self.client.counters())
    }

    fn never_waits(&self) -> bool {
        self.inproc
    }
}

/// A transport's raw ping-pong (never waits, counts wire bytes).
struct Raw<R: RawClient>(R, bool, bool);

impl<R: RawClient> Caller for Raw<R> {
    type Scratch = ();

    async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
        self.0.ping().await?;
        Ok(Instant::now().into())
    }

    fn counters(&self) -> Option<Counters> {
        self.2.then(|| self.0.counters())
    }

    fn never_waits(&self) -> bool {
        self.1
    }
}

/// A stock framework's call: its own client with its own request type.
struct Stock<F: Framework> {
    client: F::Client,
    request: F::Request,
    data: Arc<Dataset>,
}

impl<F: Framework> Caller for Stock<F> {
    type Scratch = ();

    async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
        let reply = self.client.call(&self.request).await?;
        let done = Instant::now();
        self.data.verify(&reply).map_err(|w| Failure::Wrong(w.0))?;
        Ok(done.into())
    }

    fn client_cpu_process(&self) -> bool {
        true
    }

    fn counters(&self) -> Option<Counters> {
        self.client.counters()
    }
}

/// Connection attempts before a cell gives up on its server.
pub const CONNECT_ATTEMPTS: u32 = 5;
/// The wait after the first failed attempt; it doubles after each.
const CONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// Connects, retrying a failed attempt with exponential backoff (20, 40,
/// 80, 160 ms): a server that is still starting gets its chance, one that
/// cannot be reached fails the cell after [`CONNECT_ATTEMPTS`] attempts
/// with the last connect error as its reason.
pub async fn connect_retrying<T, E, F>(mut connect: impl FnMut() -> F) -> Result<T, String>
where
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut wait = CONNECT_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=CONNECT_ATTEMPTS {
        match connect().await {
            Ok(client) => return Ok(client),
            Err(e) => last = e.to_string(),
        }
        if attempt < CONNECT_ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    // The waits double from CONNECT_BACKOFF: their sum is (2^(n-1) - 1) of it.
    let waited = CONNECT_BACKOFF * ((1 << (CONNECT_ATTEMPTS - 1)) - 1);
    Err(format!("cannot connect after {CONNECT_ATTEMPTS} attempts over {waited:?}: {last}"))
}

// ------------------------------------------------------------ server CPU

/// The server-stats control call over its own tcp connection.
pub(crate) struct ControlCpu(StreamClient<tokio::net::TcpStream>);

impl ServerCpu for ControlCpu {
    async fn read(&mut self) -> Option<CpuTime> {
        self.0.server_stats().await.ok().map(|s| s.cpu)
    }
}

/// The in-process server's CPU: the process minus this client thread.
pub(crate) struct InProcessCpu;

impl ServerCpu for InProcessCpu {
    async fn read(&mut self) -> Option<CpuTime> {
        Some(CpuTime::process().since(CpuTime::thread()))
    }
}

pub(crate) enum AnyServerCpu {
    Control(ControlCpu),
    InProcess(InProcessCpu),
    None(NoServerCpu),
}

impl ServerCpu for AnyServerCpu {
    async fn read(&mut self) -> Option<CpuTime> {
        match self {
            AnyServerCpu::Control(c) => c.read().await,
            AnyServerCpu::InProcess(c) => c.read().await,
            AnyServerCpu::None(c) => c.read().await,
        }
    }
}

/// The server's CPU source, with the broker's process tree read at the
/// same two edges of the window (right after the server's figure), so
/// broker CPU covers the interval server CPU does.
struct WithBroker {
    server: AnyServerCpu,
    broker: BrokerCpuSource,
    reads: Vec<Option<wirebench_transports::broker::daemon::TreeCpu>>,
}

impl ServerCpu for WithBroker {
    async fn read(&mut self) -> Option<CpuTime> {
        let server = self.server.read().await;
        if !matches!(self.broker, BrokerCpuSource::None) {
            self.reads.push(self.broker.read());
        }
        server
    }
}

impl WithBroker {
    /// The broker's CPU over the window, and how it was measured (`None`
    /// for cells of other rows).
    fn result(&self) -> (Option<CpuTime>, Option<String>) {
        let first = self.reads.first().copied().flatten();
        let last = self.reads.last().copied().flatten();
        match (first, last, self.reads.len() >= 2) {
            (Some(a), Some(b), true) => {
                (Some(crate::brokers::tree_since(b, a)), self.broker.describe(Some(a.processes.max(b.processes))))
            }
            _ => (None, self.broker.describe(None)),
        }
    }
}

/// Opens the server CPU source; returns it and how it measures.
pub(crate) async fn server_cpu(job: &CellJob) -> (AnyServerCpu, String) {
    if job.spec.transport == TransportKind::Inproc {
        return (AnyServerCpu::None(NoServerCpu), "inproc: the server's work is in the client's CPU".into());
    }
    match &job.server_cpu {
        ServerCpuSource::Control(endpoint) => {
            let config = ClientConfig { connections: 1, ..job.client.clone() };
            match <wirebench_transports::tcp::Tcp as Transport>::connect(endpoint, &config).await {
                Ok(client) => (AnyServerCpu::Control(ControlCpu(client)), "server process, getrusage".into()),
                Err(e) => (AnyServerCpu::None(NoServerCpu), format!("unavailable: control connection failed: {e}")),
            }
        }
        ServerCpuSource::ControlInNetns(endpoint, netns) => {
            let config = ClientConfig { connections: 1, ..job.client.clone() };
            match crate::link::control_client(endpoint, netns, &config).await {
                Ok(client) => (AnyServerCpu::Control(ControlCpu(client)), "server process, getrusage".into()),
                Err(e) => (AnyServerCpu::None(NoServerCpu), format!("unavailable: {e}")),
            }
        }
        ServerCpuSource::InProcess => {
            (AnyServerCpu::InProcess(InProcessCpu), "in-process: process CPU minus the client thread's".into())
        }
        ServerCpuSource::Unavailable(why) => (AnyServerCpu::None(NoServerCpu), format!("unavailable: {why}")),
    }
}

// --------------------------------------------------------------- visitors

struct FormatCell<'a> {
    job: &'a CellJob,
    format: FormatId,
    stop: Arc<AtomicBool>,
}

impl<'a> TransportVisitor for FormatCell<'a> {
    type Output = BoxFuture<'a>;

    fn visit<T: Transport>(self) -> BoxFuture<'a> {
        Box::pin(format_cell::<T>(self.job, self.format, self.stop))
    }

    fn visit_framework<F: Framework>(self) -> BoxFuture<'a> {
        let (job, stop) = (self.job, self.stop);
        Box::pin(async move {
            if self.format != F::FORMAT {
                let reason =
                    format!("{} is a stock framework that carries {} only, not {}", F::KIND, F::FORMAT, self.format);
                return Outcome::Done(Box::new(unsupported(&job.spec, reason)));
            }
            let sizes = match F::FORMAT.visit(SizesOf(&job.data)) {
                Ok(sizes) => sizes,
                Err(e) => return Outcome::Done(Box::new(failed(&job.spec, e, None))),
            };
            if let CallMode::Pubsub { .. } = job.spec.mode {
                let reason = format!(
                    "{} is a stock RPC framework: it has no publish/subscribe (pubsub runs through brokers and udp multicast)",
                    F::KIND
                );
                return Outcome::Done(Box::new(unsupported(&job.spec, reason)));
            }
            let client = match connect_retrying(|| F::connect(&job.endpoint, &job.client)).await {
                Ok(c) => c,
                Err(e) => return Outcome::Done(Box::new(failed(&job.spec, e, None))),
            };
            match job.spec.mode {
                CallMode::Rr => {
                    let caller =
                        Stock::<F> { client, request: F::prepare(&job.data.request()), data: job.data.clone() };
                    measure_cell(job, Rc::new(caller), sizes, stop).await
                }
                CallMode::Oneway => modes::stock_oneway_cell::<F>(job, client, sizes, stop).await,
                CallMode::Stream { replies } => modes::stock_stream_cell::<F>(job, client, replies, sizes, stop).await,
                CallMode::Pubsub { .. } => unreachable!("refused above"),
            }
        })
    }
}

/// The encoded sizes of a format given by value.
struct SizesOf<'a>(&'a Dataset);

impl FormatVisitor for SizesOf<'_> {
    type Output = Result<Sizes, String>;
    fn visit<F: Format>(self) -> Result<Sizes, String> {
        Sizes::of::<F>(self.0)
    }
}

/// A format's cell over own transport `T` (the format erased: see
/// [`crate::codec`]).
async fn format_cell<T: Transport>(job: &CellJob, format: FormatId, stop: Arc<AtomicBool>) -> Outcome {
    let sizes = match format.visit(SizesOf(&job.data)) {
        Ok(sizes) => sizes,
        Err(e) => return Outcome::Done(Box::new(failed(&job.spec, e, None))),
    };
    if T::KIND == TransportKind::Udp {
        let limit = job.client.max_datagram;
        // Oneway and published messages carry a 16-byte extension,
        // and get no reply.
        let frames = match job.spec.mode {
            CallMode::Rr | CallMode::Stream { .. } => {
                vec![("request", HEADER_LEN + sizes.request as usize), ("reply", HEADER_LEN + sizes.reply as usize)]
            }
            CallMode::Oneway | CallMode::Pubsub { .. } => {
                vec![("request", HEADER_LEN + 16 + sizes.request as usize)]
            }
        };
        for (what, bytes) in frames {
            if bytes > limit {
                let reason = format!(
                    "udp: a {bytes}-byte {what} frame exceeds the {limit}-byte datagram limit (--max-datagram, up to 65507)"
                );
                return Outcome::Done(Box::new(unsupported(&job.spec, reason)));
            }
        }
    }
    if let Some(reason) = over_broker_limit(job, sizes.request.max(sizes.reply)) {
        return Outcome::Done(Box::new(unsupported(&job.spec, reason)));
    }
    let client = match connect_retrying(|| T::connect(&job.endpoint, &job.client)).await {
        Ok(c) => c,
        Err(e) => return Outcome::Done(Box::new(failed(&job.spec, e, None))),
    };
    let codec = Codec::new(format, &job.data);
    match job.spec.mode {
        CallMode::Rr => {
            let caller = Framed::<T::Client> {
                client,
                codec,
                method: job.spec.workload.method(),
                data: job.data.clone(),
                inproc: T::KIND == TransportKind::Inproc,
                counts_wire: T::COUNTS_WIRE,
            };
            measure_cell(job, Rc::new(caller), sizes, stop).await
        }
        CallMode::Oneway => modes::oneway_cell::<T>(job, client, codec, sizes, stop).await,
        CallMode::Stream { replies } => modes::stream_cell::<T>(job, client, codec, replies, sizes, stop).await,
        CallMode::Pubsub { subscribers } => modes::pubsub_cell::<T>(job, client, codec, subscribers, sizes, stop).await,
    }
}

struct RawCell<'a> {
    job: &'a CellJob,
    stop: Arc<AtomicBool>,
}

impl<'a> TransportVisitor for RawCell<'a> {
    type Output = BoxFuture<'a>;

    fn visit<T: Transport>(self) -> BoxFuture<'a> {
        let (job, stop) = (self.job, self.stop);
        Box::pin(async move {
            let shape = job.raw_shape;
            if T::KIND == TransportKind::Udp && shape.request.max(shape.reply) > job.client.max_datagram {
                let reason = format!(
                    "udp: a {}-byte datagram exceeds the {}-byte datagram limit (--max-datagram, up to 65507)",
                    shape.request.max(shape.reply),
                    job.client.max_datagram
                );
                return Outcome::Done(Box::new(unsupported(&job.spec, reason)));
            }
            if let Some(reason) = over_broker_limit(job, shape.request.max(shape.reply) as u64) {
                return Outcome::Done(Box::new(unsupported(&job.spec, reason)));
            }
            let raw = match connect_retrying(|| T::connect_raw(&job.endpoint, &job.client, shape)).await {
                Ok(r) => r,
                Err(e) => return Outcome::Done(Box::new(failed(&job.spec, e, None))),
            };
            let sizes = Sizes {
                request: shape.request as u64,
                reply: shape.reply as u64,
                request_zstd: None,
                reply_zstd: None,
            };
            let caller = Raw(raw, T::KIND == TransportKind::Inproc, T::COUNTS_WIRE);
            match measure_cell(job, Rc::new(caller), sizes, stop).await {
                Outcome::Done(mut cell) => {
                    cell.raw_shape = Some([shape.request as u64, shape.reply as u64]);
                    Outcome::Done(cell)
                }
                other => other,
            }
        })
    }

    fn visit_framework<F: Framework>(self) -> BoxFuture<'a> {
        // Plans never ask for a framework's raw cell: its floor is the raw
        // ping-pong of the transport under it.
        let spec = self.job.spec;
        Box::pin(async move {
            let reason = format!("{}'s floor is raw {}", F::KIND, F::BASELINE);
            Outcome::Done(Box::new(unsupported(&spec, reason)))
        })
    }
}

// ------------------------------------------------------------- measuring

/// Encoded sizes of a cell's messages.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Request bytes.
    pub request: u64,
    /// Reply bytes.
    pub reply: u64,
    /// zstd (level 3) of the request.
    pub request_zstd: Option<u64>,
    /// zstd (level 3) of the reply.
    pub reply_zstd: Option<u64>,
}

impl Sizes {
    /// Encodes the workload's request and correct reply in `F` once.
    pub fn of<F: Format>(data: &Dataset) -> Result<Sizes, String> {
        let mut scratch = F::Scratch::default();
        let request =
            F::encode_request(&mut scratch, &F::prepare(&data.request())).map_err(|e| e.to_string())?.to_vec();
        let reply = F::encode_reply(&mut scratch, &data.reply()).map_err(|e| e.to_string())?.to_vec();
        let zstd = |bytes: &[u8]| zstd::bulk::compress(bytes, 3).ok().map(|z| z.len() as u64);
        Ok(Sizes {
            request: request.len() as u64,
            reply: reply.len() as u64,
            request_zstd: zstd(&request),
            reply_zstd: zstd(&reply),
        })
    }
}

/// Bytes on the wire of one call made alone, after two to settle
/// connection state (HTTP/2 header tables, QUIC flow control).
pub(crate) async fn probe<C: Caller>(caller: &C) -> Option<u64> {
    let mut scratch = C::Scratch::default();
    for _ in 0..2 {
        caller.call(&mut scratch).await.ok()?;
    }
    let before = caller.counters()?;
    caller.call(&mut scratch).await.ok()?;
    let used = caller.counters()?.since(before);
    Some(used.bytes_sent + used.bytes_received)
}

/// A broker row's message that its broker cannot carry: the reason.
fn over_broker_limit(job: &CellJob, largest: u64) -> Option<String> {
    let limit = job.broker_limit?;
    (largest > limit as u64).then(|| {
        format!(
            "{}: a {largest}-byte message exceeds the broker's {limit}-byte limit (--max-message, or the broker's own ceiling)",
            job.spec.transport
        )
    })
}

async fn measure_cell<C: Caller>(job: &CellJob, caller: Rc<C>, sizes: Sizes, stop: Arc<AtomicBool>) -> Outcome {
    match measure_only(job, caller, stop).await {
        Some((measured, server_cpu, probe)) => {
            Outcome::Done(Box::new(measured_cell(job, measured, sizes, server_cpu, probe)))
        }
        None => Outcome::Interrupted,
    }
}

/// How the server side's CPU was read over a window: the server's own
/// source, and a broker's process tree on broker rows.
pub(crate) struct ServerReads {
    /// How the server's CPU was read.
    how: String,
    /// The broker's CPU over the window and how it was read.
    broker: (Option<CpuTime>, Option<String>),
}

/// Measures `caller` (wire probe, warm-up, window): the measurement, how
/// the server side's CPU was read, the probe's bytes; `None` if
/// interrupted.
pub(crate) async fn measure_only<C: Caller>(
    job: &CellJob,
    caller: Rc<C>,
    stop: Arc<AtomicBool>,
) -> Option<(Measured, ServerReads, Option<u64>)> {
    let (server, server_cpu) = server_cpu(job).await;
    let mut server = WithBroker { server, broker: job.broker_cpu.clone(), reads: Vec::new() };
    let probe = if job.spec.transport == TransportKind::Inproc { None } else { probe(&*caller).await };
    // A `--clients` child: connected and probed, it waits for the others.
    if let Some(child) = &job.child
        && !child.start().await
    {
        return None;
    }
    let measured = measure::run(caller, job.spec.load, job.timing, job.seed, &mut server, stop).await;
    if measured.interrupted {
        return None;
    }
    if let Some(child) = &job.child {
        child.keep(&measured);
    }
    let reads = ServerReads { how: server_cpu, broker: server.result() };
    Some((measured, reads, probe))
}

/// A measurement as a results-file cell, with its wire probe.
pub(crate) fn measured_cell(
    job: &CellJob,
    measured: Measured,
    sizes: Sizes,
    reads: ServerReads,
    probe: Option<u64>,
) -> Cell {
    let calls = measured.calls_to_close.max(1) as f64;
    let mut cell = to_cell(job, measured, sizes, reads.how);
    if let Some(m) = cell.metrics.as_mut() {
        m.wire_probe_bytes = probe;
        m.wire_exact = matches!(job.spec.transport, TransportKind::Tcp | TransportKind::Unix | TransportKind::Udp);
        // Broker CPU is part of the server side, reported apart.
        let (broker, how) = reads.broker;
        let per_call = |d: std::time::Duration| d.as_secs_f64() * 1e6 / calls;
        m.broker_user_us_per_call = broker.map(|c| per_call(c.user));
        m.broker_system_us_per_call = broker.map(|c| per_call(c.system));
        m.broker_cpu = how;
    }
    cell
}

/// Turns a measurement into a results-file cell: `failed` if any call
/// failed (the measurements are kept), `ok` otherwise.
fn to_cell(job: &CellJob, m: Measured, sizes: Sizes, server_cpu: String) -> Cell {
    // Client CPU and wire counters were read at the window's close, which
    // is a timer wake-up after its end: per call, they divide by the calls
    // completed by then.
    let calls = m.calls_to_close.max(1) as f64;
    let secs = m.window.as_secs_f64().max(1e-9);
    let per_call = |d: std::time::Duration| d.as_secs_f64() * 1e6 / calls;
    let wire = m.wire.filter(|_| job.spec.transport != TransportKind::Inproc);
    let open = matches!(job.spec.load.model, LoadModel::Open { .. });
    let metrics = Metrics {
        calls: m.calls,
        duration_s: secs,
        calls_per_sec: m.calls as f64 / secs,
        mb_per_sec: m.calls as f64 * (sizes.request + sizes.reply) as f64 / secs / 1e6,
        latency_kind: if open { "corrected" } else { "call" }.to_owned(),
        latency: crate::passes::latency(&m.latency),
        latency_uncorrected: m.uncorrected.as_ref().map(crate::passes::latency),
        send_lag_p99_ns: m.send_lag.as_ref().map(|h| h.value_at_quantile(0.99)),
        request_bytes: sizes.request,
        reply_bytes: sizes.reply,
        request_zstd_bytes: sizes.request_zstd,
        reply_zstd_bytes: sizes.reply_zstd,
        wire_sent_per_call: wire.map(|w| w.bytes_sent as f64 / calls),
        wire_received_per_call: wire.map(|w| w.bytes_received as f64 / calls),
        wire_probe_bytes: None,
        wire_exact: false,
        client_user_us_per_call: per_call(m.client_cpu.user),
        client_system_us_per_call: per_call(m.client_cpu.system),
        server_user_us_per_call: m.server_cpu.map(|c| per_call(c.user)),
        server_system_us_per_call: m.server_cpu.map(|c| per_call(c.system)),
        server_cpu: if m.server_cpu.is_some()
            || server_cpu.starts_with("unavailable")
            || server_cpu.starts_with("inproc")
        {
            server_cpu
        } else {
            "unavailable: the server did not answer the stats call".into()
        },
        // Set by measure_cell, which holds the broker's readings.
        broker_user_us_per_call: None,
        broker_system_us_per_call: None,
        broker_cpu: None,
        errors: m.errors,
        timeouts: m.timeouts,
        wrong_replies: m.wrong,
        late_replies: m.wire.map_or(0, |w| w.late_replies),
        overhead_p50: None,
        oneway: None,
        stream: None,
        pubsub: None,
    };
    let sample_secs = secs / m.samples.len().max(1) as f64;
    let samples = m
        .samples
        .iter()
        .map(|h| Sample {
            group: 0,
            calls: h.len(),
            p50_ns: if h.is_empty() { 0 } else { h.value_at_quantile(0.5) },
            p99_ns: if h.is_empty() { 0 } else { h.value_at_quantile(0.99) },
            calls_per_sec: h.len() as f64 / sample_secs,
        })
        .collect();
    let failures = m.errors + m.timeouts + m.wrong;
    let mut cell = if failures > 0 {
        let mut kinds = Vec::new();
        for (n, what) in [(m.errors, "errors"), (m.timeouts, "timeouts"), (m.wrong, "wrong replies")] {
            if n > 0 {
                kinds.push(format!("{n} {what}"));
            }
        }
        let first = m.first_failure.unwrap_or_default();
        failed(&job.spec, format!("{} ({} calls recorded); first: {first}", kinds.join(", "), m.calls), Some(metrics))
    } else if m.calls == 0 {
        failed(&job.spec, "no call completed in the measured window".into(), Some(metrics))
    } else {
        let mut cell = skeleton(&job.spec, CellStatus::Ok, None);
        cell.metrics = Some(metrics);
        cell
    };
    cell.samples = samples;
    cell.histogram = histogram::encode(&m.latency).ok();
    cell.histogram_uncorrected = m.uncorrected.as_ref().and_then(|h| histogram::encode(h).ok());
    cell.histogram_first_reply = m.first.as_ref().and_then(|h| histogram::encode(h).ok());
    cell
}
