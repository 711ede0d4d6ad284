//! The results file: one JSON document per run, `schema_version` first.
//! Everything a report shows comes from here and nowhere else.
//!
//! Compatibility: a reader accepts any file whose `schema_version` is at
//! most [`SCHEMA_VERSION`]; fields added later are optional, so older files
//! still read. A newer file is refused with a clear error rather than
//! misread. `docs/results-schema.md` documents every field.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::links::{
    CellLink, ClientFigures, EmulatorCheck, LinkRecord, LinkUsage, LinkValidation, LossCheck, LossDirectionCheck,
    RttCheck, ServerEnvironment, ThroughputCheck,
};

/// The version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 2;

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Format version of this file.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// Where and with what it ran.
    pub environment: Environment,
    /// How it was asked to run.
    pub config: RunConfig,
    /// A unique id of the `wirebench run` that wrote this file (random,
    /// hex). `merge` refuses a run it already holds. Empty in files older
    /// than schema version 2.
    #[serde(default)]
    pub run_id: String,
    /// What each sample group is: one entry per group, naming the run and
    /// the pass it was measured in. Empty means one group, 0, of this run.
    /// `run --passes N` writes groups 0..N; `merge` renumbers every run's
    /// groups so they stay apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<Replicate>,
    /// `merge` only: every merged run's id, environment and configuration,
    /// in merge order (the first is also `environment` and `config`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<MergedRun>,
    /// Properties of every format in the run, by name.
    #[serde(default)]
    pub formats: BTreeMap<String, FormatInfo>,
    /// Properties of every transport in the run, by name.
    #[serde(default)]
    pub transports: BTreeMap<String, TransportInfo>,
    /// One entry per cell, keyed `{workload}/{format}/{transport}/{load}`.
    pub cells: BTreeMap<String, Cell>,
    /// The key of every cell the run meant to measure, in run order; a key
    /// not in `cells` never ran (the run was interrupted). Empty in files
    /// older than version 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<String>,
    /// Deterministic instruction counts of encode and decode, if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Instructions>,
    /// The run stopped early (Ctrl-C): cells not in `cells` never ran.
    #[serde(default)]
    pub interrupted: bool,
    /// `--link`: every emulated link of the run, in run order, with what
    /// was measured of it. Empty: client and server shared loopback (or a
    /// real network, with `--connect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkRecord>,
    /// The server's machine as it reported it over the control connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_environment: Option<ServerEnvironment>,
}

/// The writer of a results file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `wirebench`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The machine and build a run happened on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Operating system name.
    pub os: String,
    /// Host name.
    pub hostname: String,
    /// `rustc -V` of the build.
    pub rustc: String,
    /// Versions of the libraries that shape the results.
    pub crate_versions: BTreeMap<String, String>,
    /// Commit the binary was built from (`unknown` outside git).
    pub git_commit: String,
    /// The build had uncommitted changes.
    pub git_dirty: bool,
    /// `release`, `debug`, ... with the optimization level.
    pub build_profile: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; empty while running.
    pub finished_at: String,
    /// The command line.
    pub command: Vec<String>,
}

/// How the run was configured (what makes two runs comparable).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Measured window per cell, milliseconds.
    pub duration_ms: u64,
    /// Discarded warm-up per cell, milliseconds.
    pub warmup_ms: u64,
    /// Sub-windows per cell (samples for statistics).
    pub samples: u32,
    /// Data seed.
    pub seed: u64,
    /// `process` (a spawned `wirebench serve`), `in-process`, or `remote`.
    pub server: String,
    /// CPU pinning: `client:<cpus> server:<cpus>`, or `off`.
    pub pinning: String,
    /// Client threads.
    pub client_threads: usize,
    /// Per-call deadline, milliseconds.
    pub timeout_ms: u64,
    /// udp datagram limit, bytes.
    pub max_datagram: usize,
    /// http2 over TLS.
    pub tls: bool,
    /// `--quick` was given.
    pub quick: bool,
    /// Free-form name of the matrix (`default`, `quick`, a config file).
    pub matrix: String,
    /// Interleaved passes over the matrix (`--passes`); 1 in older files.
    #[serde(default = "one")]
    pub passes: u32,
}

fn one() -> u32 {
    1
}

/// A format's properties, as the formats crate declares them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatInfo {
    /// Library and version.
    pub library: String,
    /// Readable without a schema.
    pub self_describing: bool,
    /// Where the schema lives.
    pub schema: String,
    /// The server reads requests in place.
    pub zero_copy: bool,
    /// How input is checked.
    pub validation: String,
    /// An unchecked access variant exists (micro-benchmarks only).
    pub unvalidated_access: bool,
    /// Layout notes.
    pub layout: String,
}

/// A transport's properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportInfo {
    /// The family: `transport` (wirebench's own, any format), `framework`
    /// (a stock RPC framework) or `broker` (a message broker); empty in
    /// older files (the reports then treat grpc as a framework and every
    /// other name as a transport).
    #[serde(default)]
    pub family: String,
    /// The one format a framework carries; none for transports that carry
    /// any format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Library.
    pub library: String,
    /// Encryption and authentication.
    pub security: String,
    /// Delivery guarantees.
    pub delivery: String,
    /// How calls share a connection.
    pub multiplexing: String,
    /// Per-message framing.
    pub framing: String,
    /// How bytes on the wire are counted.
    pub wire_bytes: String,
}

/// What happened to a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    /// Measured; every reply verified.
    Ok,
    /// Ran and failed (errors, timeouts, wrong replies, a crash).
    Failed,
    /// Cannot run (the transport cannot carry it); `error` says why.
    Unsupported,
}

/// The load a cell was driven with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// `closed`, `open-constant` or `open-poisson`.
    pub model: String,
    /// Calls in flight (closed), or the most allowed in flight (open).
    pub in_flight: usize,
    /// Connections (sockets) the calls are spread over.
    pub connections: usize,
    /// Target calls per second (open loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Client processes, each driving the load above (`--clients`; the
    /// key's `k` part); 1 in older files.
    #[serde(default = "one_usize")]
    pub clients: usize,
}

fn one_usize() -> usize {
    1
}

/// How a cell's calls are made: request-response, or one of the other
/// call modes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mode {
    /// `rr` (request-response), `oneway`, `stream` or `pubsub`.
    pub kind: String,
    /// `stream`: replies per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies: Option<u32>,
    /// `pubsub`: subscribers of the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribers: Option<u32>,
}

impl Default for Mode {
    fn default() -> Mode {
        Mode { kind: "rr".into(), replies: None, subscribers: None }
    }
}

impl Mode {
    /// Request-response: the mode of cells that do not say.
    pub fn is_rr(&self) -> bool {
        self.kind == "rr"
    }

    /// The mode as its key segment says it: `rr`, `oneway`, `stream16`,
    /// `pubsub4`.
    pub fn label(&self) -> String {
        match (self.kind.as_str(), self.replies, self.subscribers) {
            ("stream", Some(k), _) => format!("stream{k}"),
            ("pubsub", _, Some(k)) => format!("pubsub{k}"),
            (kind, _, _) => kind.to_owned(),
        }
    }
}

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// `{workload}/{format}/{transport}/{load}`, then `/{mode}` for the
    /// modes other than request-response.
    pub key: String,
    /// `multiply`, `echo-1KiB`, `digest-100`.
    pub workload: String,
    /// `multiply`, `echo` or `digest`.
    pub workload_kind: String,
    /// Echo payload bytes or digest records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Format name, or `raw` for a transport's ping-pong baseline.
    pub format: String,
    /// Transport name.
    pub transport: String,
    /// The load.
    pub load: Load,
    /// The call mode; request-response when absent (every file before
    /// modes).
    #[serde(default, skip_serializing_if = "Mode::is_rr")]
    pub mode: Mode,
    /// `ok`, `failed` or `unsupported`.
    pub status: CellStatus,
    /// Why it failed or is unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Key of the raw baseline cell this one is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Request and reply bytes of the raw baseline (raw cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_shape: Option<[u64; 2]>,
    /// Measurements (ok cells; failed cells keep what was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Per-sub-window figures, for statistics across samples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    /// The latency histogram (HdrHistogram V2 + deflate, base64), in
    /// nanoseconds: corrected latency for open-loop cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
    /// Open loop only: the uncorrected latency histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_uncorrected: Option<String>,
    /// Stream cells only: the histogram of the time to the first reply
    /// (`histogram` is the time to the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_first_reply: Option<String>,
    /// With `--passes N`: each pass's own figures, in pass order. The
    /// cell's `metrics` and histograms are over all passes together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passes: Vec<PassFigures>,
    /// The emulated link the cell ran over (the key's `@` part); absent on
    /// loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<CellLink>,
    /// With `--clients K` (K > 1): each client process's own share, in
    /// client order (the last pass's, with `--passes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientFigures>,
}

/// One sample group: which run and which pass of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicate {
    /// The sample group (`Sample::group`).
    pub group: u32,
    /// The run (`Results::run_id`).
    pub run_id: String,
    /// The pass within that run, from 0.
    pub pass: u32,
}

/// A run folded into a merged file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedRun {
    /// Its `run_id` (for files older than version 2: a digest of its
    /// environment, so the same file is still recognised).
    pub run_id: String,
    /// Where it ran.
    pub environment: Environment,
    /// How it ran.
    pub config: RunConfig,
}

/// A cell's figures in one pass of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassFigures {
    /// The pass, from 0.
    pub pass: u32,
    /// Its sample group (`Sample::group`).
    pub group: u32,
    /// When the cell's pass started, seconds after the run started.
    pub offset_s: f64,
    /// `ok`, `failed` or `unsupported` in this pass.
    pub status: CellStatus,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Calls recorded in the pass's measured window.
    pub calls: u64,
    /// The pass's measured window, seconds.
    pub duration_s: f64,
    /// Median latency, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Calls per second over the pass's window.
    pub calls_per_sec: f64,
}

/// Latency percentiles in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Fastest call.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th.
    pub p99: u64,
    /// 99.9th.
    pub p999: u64,
    /// 99.99th.
    pub p9999: u64,
    /// Slowest call.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// What a cell measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Calls completed in the measured window.
    pub calls: u64,
    /// The measured window, seconds.
    pub duration_s: f64,
    /// Completed calls per second.
    pub calls_per_sec: f64,
    /// Encoded request and reply bytes per second, MB (10^6).
    pub mb_per_sec: f64,
    /// What `latency` measures: `call` (closed loop: from the call's start
    /// to its verified reply) or `corrected` (open loop: from the intended
    /// send time, coordinated omission corrected).
    pub latency_kind: String,
    /// Latency.
    pub latency: Latency,
    /// Open loop only: from the actual send time (not corrected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_uncorrected: Option<Latency>,
    /// Open loop only: how late the generator sent, 99th percentile, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_ns: Option<u64>,
    /// Encoded request bytes (the message, no framing).
    pub request_bytes: u64,
    /// Encoded reply bytes.
    pub reply_bytes: u64,
    /// zstd (level 3) size of the request (absent for raw cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_zstd_bytes: Option<u64>,
    /// zstd (level 3) size of the reply (absent for raw cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_zstd_bytes: Option<u64>,
    /// Bytes written to the wire per call, framing included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_sent_per_call: Option<f64>,
    /// Bytes read from the wire per call, framing included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_received_per_call: Option<f64>,
    /// Bytes on the wire (sent plus received) of one call made alone
    /// after the warm-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_probe_bytes: Option<u64>,
    /// The transport makes `wire_probe_bytes` exact (tcp, unix, udp);
    /// elsewhere protocol chatter (acknowledgements, window updates) makes
    /// it vary from call to call.
    #[serde(default)]
    pub wire_exact: bool,
    /// Client CPU per call, user, microseconds.
    pub client_user_us_per_call: f64,
    /// Client CPU per call, system, microseconds.
    pub client_system_us_per_call: f64,
    /// Server CPU per call, user, microseconds (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_user_us_per_call: Option<f64>,
    /// Server CPU per call, system, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_system_us_per_call: Option<f64>,
    /// How the server CPU was measured, or why it is absent.
    pub server_cpu: String,
    /// Broker rows: the broker daemon's CPU per call (its whole process
    /// tree), user, microseconds; part of the server side, reported apart
    /// from the responder's `server_*` figures. Absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_user_us_per_call: Option<f64>,
    /// Broker rows: the broker's CPU per call, system, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_system_us_per_call: Option<f64>,
    /// Broker rows: how the broker CPU was measured, or why it is absent;
    /// absent for other rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu: Option<String>,
    /// Calls that ended in an error status or a transport error.
    pub errors: u64,
    /// Calls that got no reply in time.
    pub timeouts: u64,
    /// Replies that decoded but said the wrong thing.
    pub wrong_replies: u64,
    /// Replies that arrived for no waiting call (dropped).
    pub late_replies: u64,
    /// p50 over the raw baseline's p50 at the same size and load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_p50: Option<f64>,
    /// Oneway cells: what was sent and what arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oneway: Option<OnewayFigures>,
    /// Stream cells: replies and their timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamFigures>,
    /// Pubsub cells: messages, deliveries and their timing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubsub: Option<PubsubFigures>,
}

/// A oneway cell's own figures. Counts are of messages sent in the
/// measured window (by their send time), which the server counted by the
/// window bin each carried.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OnewayFigures {
    /// Messages sent in the window.
    pub sent: u64,
    /// Of those, messages the server counted.
    pub delivered: u64,
    /// `sent - delivered`: never hidden in a rate; any on a reliable
    /// transport fails the cell.
    pub lost: u64,
    /// Of the delivered, messages the server's service refused.
    pub refused: u64,
    /// `sent` per second of the window.
    pub sent_per_sec: f64,
    /// `delivered` per second of the window.
    pub delivered_per_sec: f64,
    /// Send-to-receipt latency, ns, where both ends read one clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// How the latency was measured (`one machine's CLOCK_MONOTONIC`), or
    /// why it is absent (`unavailable: ...`).
    pub clock: String,
    /// Every message of the cell (warm-up and probes too), sent.
    pub sent_total: u64,
    /// Every message of the cell, counted by the server.
    pub delivered_total: u64,
}

/// A stream cell's own figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// Replies each request asked for (K).
    pub replies_per_stream: u32,
    /// Streams completed in the window (every reply verified).
    pub streams: u64,
    /// Their replies: `streams` times K.
    pub replies: u64,
    /// Replies per second.
    pub replies_per_sec: f64,
    /// From the request to its first reply, ns.
    pub first_reply: Latency,
    /// From the request to its last reply, ns.
    pub last_reply: Latency,
}

/// A pubsub cell's own figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PubsubFigures {
    /// Subscribers of the topic (K).
    pub subscribers: u32,
    /// Messages published whose deliveries ended in the window.
    pub messages: u64,
    /// Their deliveries that arrived (each verified).
    pub deliveries: u64,
    /// `messages` times K.
    pub expected: u64,
    /// `expected - deliveries`: reported, and on a reliable transport a
    /// failure of the cell.
    pub lost: u64,
    /// Messages per second.
    pub messages_per_sec: f64,
    /// Deliveries per second.
    pub deliveries_per_sec: f64,
    /// From the publish to each delivery, ns.
    pub latency: Latency,
}

/// One sub-window of a cell's measured window (of one pass).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Which replicate (run and pass, see `Results::replicates`) the
    /// sample comes from: 0 in a plain one-pass run; each pass of
    /// `--passes` and each run `wirebench merge` folds in has its own, so a
    /// comparison can tell a cell's replicate-to-replicate noise from the
    /// noise within one window.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub group: u32,
    /// Calls completed in the sub-window.
    pub calls: u64,
    /// Median latency, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Calls per second in the sub-window.
    pub calls_per_sec: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Instruction counts (valgrind callgrind): exact and repeatable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Instructions {
    /// The tool and version, e.g. `valgrind-3.19.0 callgrind`.
    pub tool: String,
    /// `{workload}/{format}/{operation}` -> instructions for one codec
    /// operation; `{workload}/{format}/{transport}/call/{client|server}`
    /// -> instructions per whole call on that side.
    pub counts: BTreeMap<String, u64>,
    /// Whole calls: how many calls of each cell were counted (after
    /// `warmup_calls` that were not); the `call` keys are per call, over
    /// these. Absent without whole-call counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Whole calls: the calls made before each cell's counted ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_calls: Option<u64>,
    /// `{workload}/{format}/{transport}/call/{client|server}` -> system
    /// calls per call on that side, over the same calls as `counts`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub syscalls: BTreeMap<String, f64>,
}

/// Why a results file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// Not JSON, or not a results file.
    #[error("{path} is not a wirebench results file: {reason}")]
    Malformed {
        /// The path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Written by a newer wirebench.
    #[error("{path} has schema version {found}; this wirebench reads up to version {supported}: use a newer wirebench")]
    TooNew {
        /// The path.
        path: String,
        /// The file's version.
        found: u32,
        /// What this build reads.
        supported: u32,
    },
}

impl Results {
    /// Reads and checks a results file.
    pub fn read(path: &Path) -> Result<Results, ReadError> {
        let name = path.display().to_string();
        let text = std::fs::read(path).map_err(|cause| ReadError::Io { path: name.clone(), cause })?;
        Results::parse(&text, &name)
    }

    /// Parses results from bytes; `name` labels errors.
    pub fn parse(text: &[u8], name: &str) -> Result<Results, ReadError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: Option<u32>,
        }
        let malformed = |reason: String| ReadError::Malformed { path: name.to_owned(), reason };
        let version: Version = serde_json::from_slice(text).map_err(|e| malformed(e.to_string()))?;
        match version.schema_version {
            None => return Err(malformed("it has no schema_version".into())),
            Some(0) => return Err(malformed("schema_version 0 does not exist: versions start at 1".into())),
            Some(found) if found > SCHEMA_VERSION => {
                return Err(ReadError::TooNew { path: name.to_owned(), found, supported: SCHEMA_VERSION });
            }
            Some(_) => {}
        }
        let results: Results = serde_json::from_slice(text).map_err(|e| malformed(e.to_string()))?;
        results.check().map_err(malformed)?;
        Ok(results)
    }

    /// What serde cannot check: every stored histogram decodes, and every
    /// cell sits under its own key.
    fn check(&self) -> Result<(), String> {
        for (key, cell) in &self.cells {
            if cell.key != *key {
                return Err(format!("the cell under {key:?} says its key is {:?}", cell.key));
            }
            for encoded in
                [&cell.histogram, &cell.histogram_uncorrected, &cell.histogram_first_reply].into_iter().flatten()
            {
                crate::histogram::decode(encoded).map_err(|e| format!("cell {key}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Writes the file atomically: a reader (or a crash) sees the old file
    /// or the new one, never half of one.
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, &json)
    }

    /// Whether any cell failed.
    pub fn any_failed(&self) -> bool {
        self.cells.values().any(|c| c.status == CellStatus::Failed)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("results");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(version: u32) -> String {
        format!(
            r#"{{"schema_version":{version},"tool":{{"name":"wirebench","version":"0"}},
            "environment":{{"cpu_model":"","cores":2,"kernel":"","os":"","hostname":"","rustc":"",
            "crate_versions":{{}},"git_commit":"","git_dirty":false,"build_profile":"","started_at":"",
            "finished_at":"","command":[]}},
            "config":{{"duration_ms":1,"warmup_ms":1,"samples":1,"seed":1,"server":"process","pinning":"off",
            "client_threads":1,"timeout_ms":1,"max_datagram":1472,"tls":false,"quick":false,"matrix":"t"}},
            "cells":{{}}}}"#
        )
    }

    #[test]
    fn reads_current_and_refuses_newer_versions() {
        assert!(Results::parse(minimal(1).as_bytes(), "a.json").is_ok());
        let err = Results::parse(minimal(3).as_bytes(), "b.json").unwrap_err();
        assert!(matches!(err, ReadError::TooNew { found: 3, supported: 2, .. }), "{err}");
        assert!(err.to_string().contains("newer wirebench"), "{err}");
        let err = Results::parse(b"{\"cells\":{}}", "c.json").unwrap_err();
        assert!(err.to_string().contains("no schema_version"), "{err}");
        assert!(Results::parse(b"not json", "d.json").is_err());
        let err = Results::parse(minimal(0).as_bytes(), "e.json").unwrap_err();
        assert!(err.to_string().contains("versions start at 1"), "{err}");
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = std::env::temp_dir().join(format!("wirebench-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
