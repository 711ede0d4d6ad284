//! The matrix: which cells a run measures, in which order, under which
//! names.
//!
//! A cell is one workload, one format (or `raw`, the transport's
//! ping-pong floor), one transport, one load and one call mode. Its key,
//! used in the results file, the reports and `--list`, reads
//! `{workload}/{format}/{transport}/{load}[/{mode}]`, where load is `c1`
//! (closed loop, 1 call in flight), `c64x4` (64 in flight over 4
//! connections), `r1000c8` (open loop at 1000 calls/s, at most 8 in
//! flight) or `p1000c8` (the same with Poisson arrivals), and the mode
//! segment is there for the modes other than request-response: `oneway`,
//! `stream16` (16 replies per request), `pubsub4` (4 subscribers).

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use wirebench_formats::{FormatId, Workload};
use wirebench_transports::TransportKind;

/// How a cell's calls are issued.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoadModel {
    /// Each of `in_flight` callers issues its next call when its last
    /// reply arrives.
    Closed,
    /// Calls are due at a fixed rate (or Poisson arrivals at that mean
    /// rate) whether or not earlier ones finished; at most `in_flight` at
    /// once, later ones wait (and their wait counts in corrected latency).
    Open {
        /// Calls per second.
        rate: f64,
        /// Exponential gaps instead of constant ones.
        poisson: bool,
    },
}

/// The load of a cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadSpec {
    /// Closed or open loop.
    pub model: LoadModel,
    /// Calls in flight (closed) or the most allowed in flight (open).
    pub in_flight: usize,
    /// Connections the calls are spread over.
    pub connections: usize,
}

impl fmt::Display for LoadSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.model {
            LoadModel::Closed => write!(f, "c{}", self.in_flight)?,
            LoadModel::Open { rate, poisson } => {
                write!(f, "{}{}c{}", if poisson { "p" } else { "r" }, rate, self.in_flight)?
            }
        }
        if self.connections > 1 {
            write!(f, "x{}", self.connections)?;
        }
        Ok(())
    }
}

impl LoadSpec {
    /// The results file's description of this load.
    pub fn to_model(self) -> wirebench_reports::model::Load {
        let (model, rate) = match self.model {
            LoadModel::Closed => ("closed", None),
            LoadModel::Open { rate, poisson: false } => ("open-constant", Some(rate)),
            LoadModel::Open { rate, poisson: true } => ("open-poisson", Some(rate)),
        };
        wirebench_reports::model::Load {
            model: model.to_owned(),
            in_flight: self.in_flight,
            connections: self.connections,
            rate,
        }
    }
}

/// How a cell's calls are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallMode {
    /// Request-response: one reply per request.
    Rr,
    /// Fire-and-forget: no reply; the server counts what arrives.
    Oneway,
    /// Server streaming: `replies` replies per request.
    Stream {
        /// Replies per request.
        replies: u32,
    },
    /// One publisher, `subscribers` subscribers of a topic.
    Pubsub {
        /// Subscribers.
        subscribers: u32,
    },
}

impl CallMode {
    /// The key segment: none for request-response, so request-response
    /// keys are the keys of every run before modes.
    pub fn segment(self) -> Option<String> {
        match self {
            CallMode::Rr => None,
            CallMode::Oneway => Some("oneway".into()),
            CallMode::Stream { replies } => Some(format!("stream{replies}")),
            CallMode::Pubsub { subscribers } => Some(format!("pubsub{subscribers}")),
        }
    }

    /// `rr`, `oneway`, `stream` or `pubsub`.
    pub fn kind(self) -> &'static str {
        match self {
            CallMode::Rr => "rr",
            CallMode::Oneway => "oneway",
            CallMode::Stream { .. } => "stream",
            CallMode::Pubsub { .. } => "pubsub",
        }
    }

    /// The results file's description of this mode.
    pub fn to_model(self) -> wirebench_reports::model::Mode {
        let (replies, subscribers) = match self {
            CallMode::Stream { replies } => (Some(replies), None),
            CallMode::Pubsub { subscribers } => (None, Some(subscribers)),
            _ => (None, None),
        };
        wirebench_reports::model::Mode { kind: self.kind().into(), replies, subscribers }
    }
}

/// What a cell sends: a format's encoding, or raw bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A format.
    Format(FormatId),
    /// The transport's raw ping-pong baseline.
    Raw,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Format(format) => f.write_str(format.name()),
            Subject::Raw => f.write_str("raw"),
        }
    }
}

/// One cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CellSpec {
    /// The workload.
    pub workload: Workload,
    /// The format, or raw.
    pub subject: Subject,
    /// The transport.
    pub transport: TransportKind,
    /// The load.
    pub load: LoadSpec,
    /// The call mode.
    pub mode: CallMode,
}

impl CellSpec {
    /// `{workload}/{format}/{transport}/{load}`, then `/{mode}` for the
    /// modes other than request-response.
    pub fn key(&self) -> String {
        let key = format!("{}/{}/{}/{}", self.workload, self.subject, self.transport, self.load);
        match self.mode.segment() {
            Some(mode) => format!("{key}/{mode}"),
            None => key,
        }
    }

    /// The key of the raw baseline this cell is compared with: the raw
    /// ping-pong is a request-response floor, so mode cells have none.
    pub fn baseline_key(&self) -> Option<String> {
        match self.subject {
            Subject::Raw => None,
            Subject::Format(_) if self.mode != CallMode::Rr => None,
            Subject::Format(_) => {
                let raw = CellSpec { subject: Subject::Raw, transport: self.transport.baseline(), ..*self };
                Some(raw.key())
            }
        }
    }
}

/// Per-cell timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Discarded warm-up.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Sub-windows of the measured window (samples for statistics).
    pub samples: u32,
    /// Per-call deadline.
    pub timeout: Duration,
}

/// A matrix: the product of its axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// A name for reports.
    pub name: String,
    /// Formats.
    pub formats: Vec<FormatId>,
    /// Transports.
    pub transports: Vec<TransportKind>,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Loads.
    pub loads: Vec<LoadSpec>,
    /// Call modes.
    pub modes: Vec<CallMode>,
}

impl Matrix {
    /// The cells, in run order: per workload and load, each transport's raw
    /// baseline first (when request-response is a mode of the matrix), then
    /// per mode its transports and formats. A format or mode a transport
    /// cannot carry is still a cell (recorded as unsupported), so reports
    /// show the gap.
    pub fn cells(&self) -> Vec<CellSpec> {
        let mut cells = Vec::new();
        let mut raw_transports: Vec<TransportKind> = Vec::new();
        for t in &self.transports {
            // gRPC is measured against raw HTTP/2, even if http2 itself is
            // not in the matrix.
            if !raw_transports.contains(&t.baseline()) {
                raw_transports.push(t.baseline());
            }
        }
        raw_transports.sort();
        for &workload in &self.workloads {
            for &load in &self.loads {
                if self.modes.contains(&CallMode::Rr) {
                    for &transport in &raw_transports {
                        let mode = CallMode::Rr;
                        cells.push(CellSpec { workload, subject: Subject::Raw, transport, load, mode });
                    }
                }
                for &mode in &self.modes {
                    for &transport in &self.transports {
                        for &format in &self.formats {
                            cells.push(CellSpec { workload, subject: Subject::Format(format), transport, load, mode });
                        }
                    }
                }
            }
        }
        cells
    }
}

/// A matrix file (`--config`): every key optional, each the `run` flag
/// of the same name with the same range; command-line flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Name shown in reports.
    pub name: Option<String>,
    /// Format names, or `all`.
    pub formats: Option<Vec<String>>,
    /// Transport names, or `all`.
    pub transports: Option<Vec<String>>,
    /// Workload ids (`multiply`, `echo-1KiB`, `digest-100`) or kinds
    /// (`echo`, `digest`: sized by `sizes` and `records`).
    pub workloads: Option<Vec<String>>,
    /// Echo sizes of the `echo` kind, e.g. `["16B", "1KiB"]`.
    pub sizes: Option<Vec<String>>,
    /// Digest records of the `digest` kind.
    pub records: Option<Vec<u64>>,
    /// Calls in flight, one cell per value.
    pub concurrency: Option<Vec<u64>>,
    /// Connections per cell.
    pub connections: Option<u64>,
    /// Measured window, e.g. `"500ms"`.
    pub duration: Option<String>,
    /// Warm-up, e.g. `"100ms"`.
    pub warmup: Option<String>,
    /// Sub-windows per cell.
    pub samples: Option<u64>,
    /// Per-call deadline, e.g. `"5s"`.
    pub timeout: Option<String>,
    /// Interleaved passes over the matrix.
    pub passes: Option<u64>,
    /// Open loop at this many calls per second.
    pub rate: Option<f64>,
    /// Poisson arrivals for the open loop.
    pub poisson: Option<bool>,
    /// Call modes: `rr`, `oneway`, `stream`, `pubsub`.
    pub mode: Option<Vec<String>>,
    /// Replies per request of the `stream` mode.
    pub stream_replies: Option<u64>,
    /// Subscribers of the `pubsub` mode.
    pub subscribers: Option<u64>,
}

impl ConfigFile {
    /// Reads a matrix file.
    pub fn read(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid matrix file", path.display()))
    }
}

/// Parses a duration (see [`crate::limits::parse_duration`]), for values
/// whose range their caller checks.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    crate::limits::parse_duration(s).map_err(anyhow::Error::msg)
}

/// Parses workload ids, expanding a bare kind to the default sizes.
pub fn parse_workloads(items: &[String]) -> anyhow::Result<Vec<Workload>> {
    let mut out = Vec::new();
    for item in items {
        match item.as_str() {
            "echo" => out.extend(Workload::DEFAULT_ECHO_SIZES.map(|size| Workload::Echo { size })),
            "digest" => out.extend(Workload::DEFAULT_DIGEST_RECORDS.map(|records| Workload::Digest { records })),
            id => out.push(crate::limits::parse_workload(id).map_err(anyhow::Error::msg)?),
        }
    }
    out.dedup();
    Ok(out)
}

/// Parses a list of names with `parse`, naming the list in errors.
pub fn parse_names<T>(items: &[String], parse: impl Fn(&str) -> Result<T, String>) -> anyhow::Result<Vec<T>> {
    items.iter().map(|s| parse(s.trim()).map_err(anyhow::Error::msg)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(in_flight: usize) -> LoadSpec {
        LoadSpec { model: LoadModel::Closed, in_flight, connections: 1 }
    }

    fn everything() -> Matrix {
        Matrix {
            name: "test".into(),
            formats: FormatId::ALL.to_vec(),
            transports: TransportKind::ALL.to_vec(),
            workloads: Workload::defaults(),
            loads: vec![closed(1), closed(64)],
            modes: vec![CallMode::Rr],
        }
    }

    #[test]
    fn keys_read_as_documented() {
        let cell = CellSpec {
            workload: Workload::Echo { size: 1024 },
            subject: Subject::Format(FormatId::Json),
            transport: TransportKind::Tcp,
            load: closed(64),
            mode: CallMode::Rr,
        };
        assert_eq!(cell.key(), "echo-1KiB/json/tcp/c64");
        assert_eq!(cell.baseline_key().as_deref(), Some("echo-1KiB/raw/tcp/c64"));
        let grpc = CellSpec { transport: TransportKind::Grpc, subject: Subject::Format(FormatId::Protobuf), ..cell };
        assert_eq!(grpc.baseline_key().as_deref(), Some("echo-1KiB/raw/http2/c64"));
        let open = LoadSpec { model: LoadModel::Open { rate: 1000.0, poisson: true }, in_flight: 8, connections: 4 };
        assert_eq!(open.to_string(), "p1000c8x4");
        // keys.md: the mode segment, with its count, only beyond rr.
        let pubsub = CellSpec {
            workload: Workload::Multiply,
            transport: TransportKind::Udp,
            load: closed(1),
            mode: CallMode::Pubsub { subscribers: 4 },
            ..cell
        };
        assert_eq!(pubsub.key(), "multiply/json/udp/c1/pubsub4");
        assert_eq!(pubsub.baseline_key(), None, "the raw floor is request-response");
        let stream = CellSpec {
            subject: Subject::Format(FormatId::Protobuf),
            transport: TransportKind::Grpc,
            load: closed(1),
            mode: CallMode::Stream { replies: 16 },
            ..cell
        };
        assert_eq!(stream.key(), "echo-1KiB/protobuf/grpc/c1/stream16");
        assert_eq!(CellSpec { mode: CallMode::Oneway, ..cell }.key(), "echo-1KiB/json/tcp/c64/oneway");
    }

    #[test]
    fn modes_are_an_axis_and_raw_floors_come_with_rr() {
        let modes = vec![CallMode::Rr, CallMode::Oneway, CallMode::Stream { replies: 4 }];
        let m = Matrix { modes: modes.clone(), ..everything() };
        let cells = m.cells();
        let rr_only = everything().cells().len();
        let formats = FormatId::ALL.len() * TransportKind::ALL.len();
        assert_eq!(cells.len(), rr_only + 2 * 8 * 2 * formats);
        let keys: std::collections::HashSet<_> = cells.iter().map(CellSpec::key).collect();
        assert_eq!(keys.len(), cells.len(), "keys are unique");
        for mode in modes {
            assert!(cells.iter().any(|c| c.mode == mode));
        }
        assert!(cells.iter().filter(|c| c.subject == Subject::Raw).all(|c| c.mode == CallMode::Rr));
        let no_rr = Matrix { modes: vec![CallMode::Oneway], ..everything() };
        assert!(no_rr.cells().iter().all(|c| c.subject != Subject::Raw), "no floor without rr cells to compare");
    }

    #[test]
    fn the_default_matrix_has_every_cell_and_every_baseline() {
        let cells = everything().cells();
        let formats = FormatId::ALL.len();
        let transports = TransportKind::ALL.len();
        let per_point = transports * formats + (transports - 1);
        assert_eq!(cells.len(), 8 * 2 * per_point);
        let keys: std::collections::HashSet<_> = cells.iter().map(CellSpec::key).collect();
        assert_eq!(keys.len(), cells.len(), "keys are unique");
        for cell in &cells {
            if let Some(baseline) = cell.baseline_key() {
                assert!(keys.contains(&baseline), "{} has no baseline {baseline}", cell.key());
                let pos = |k: &str| cells.iter().position(|c| c.key() == k);
                assert!(pos(&baseline) < pos(&cell.key()), "baselines run first");
            }
        }
        // Only grpc's raw baseline comes from another transport.
        let only_grpc = Matrix { transports: vec![TransportKind::Grpc], ..everything() };
        assert!(only_grpc.cells().iter().any(|c| c.subject == Subject::Raw && c.transport == TransportKind::Http2));
    }

    #[test]
    fn durations_and_workloads_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        let w = parse_workloads(&["multiply".into(), "echo".into(), "digest-7".into()]).unwrap();
        assert_eq!(w.len(), 6);
        assert!(parse_workloads(&["nope".into()]).is_err());
    }

    #[test]
    fn config_files_parse_and_reject_unknown_keys() {
        let c: ConfigFile = toml::from_str("formats = [\"json\"]\nconcurrency = [1, 8]\nduration = \"1s\"").unwrap();
        assert_eq!(c.concurrency, Some(vec![1, 8]));
        assert!(toml::from_str::<ConfigFile>("formatz = []").is_err());
    }
}
