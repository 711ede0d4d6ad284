//! The matrix: which cells a run measures, in which order, under which
//! names.
//!
//! A cell is one workload, one format (or `raw`, the transport's
//! ping-pong floor), one transport, one load and one call mode. Its key,
//! used in the results file, the reports and `--list`, reads
//! `{workload}/{format}/{transport}/{load}[/{mode}][@{link}]`, where load
//! is `c1` (closed loop, 1 call in flight), `c64x4` (64 in flight over 4
//! connections), `r1000c8` (open loop at 1000 calls/s, at most 8 in
//! flight) or `p1000c8` (the same with Poisson arrivals), then `k4` with
//! four client processes (`--clients`); the mode segment is there for the
//! modes other than request-response: `oneway`, `stream16` (16 replies per
//! request), `pubsub4` (4 subscribers); and `@wan` when the cell crosses an
//! emulated link (`--link`; the link's profile name or its canonical spec).

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use wirebench_formats::{FormatId, Workload};
use wirebench_link::LinkSpec;
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
            clients: 1,
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
    /// Client processes, each driving `load` (`--clients`).
    pub clients: usize,
    /// The emulated link crossed; `None` on loopback.
    pub link: Option<LinkSpec>,
    /// The call mode.
    pub mode: CallMode,
}

impl CellSpec {
    /// `{workload}/{format}/{transport}/{load}[k{clients}][/{mode}][@{link}]`:
    /// a loopback request-response cell of one client keeps the key it
    /// always had; the mode segment is there for the modes other than
    /// request-response.
    pub fn key(&self) -> String {
        let mut key = format!("{}/{}/{}/{}", self.workload, self.subject, self.transport, self.load);
        if self.clients > 1 {
            key.push_str(&format!("k{}", self.clients));
        }
        if let Some(mode) = self.mode.segment() {
            key.push('/');
            key.push_str(&mode);
        }
        if let Some(link) = &self.link {
            key.push('@');
            key.push_str(&crate::link::name(link));
        }
        key
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

/// A format choice of a slice: one format, or each framework's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatChoice {
    /// This format on every transport of the slice (an unsupported cell
    /// where a transport cannot carry it, so reports show the gap).
    One(FormatId),
    /// Each stock framework's own format; nothing on the other families.
    Own,
}

/// One product of axes; a matrix is a union of slices.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// Formats.
    pub formats: Vec<FormatChoice>,
    /// Transports.
    pub transports: Vec<TransportKind>,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Loads.
    pub loads: Vec<LoadSpec>,
    /// Its own call modes (a matrix file's `modes`), or `None`: the
    /// matrix's.
    pub modes: Option<Vec<CallMode>>,
}

/// A matrix: a union of products of axes (slices). The built-in default
/// and quick matrices are several slices (`harness/matrices/*.toml`), so
/// each format runs the workloads and loads that tell it apart within the
/// time budget; any axis given on the command line makes the matrix one
/// full product.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// A name for reports.
    pub name: String,
    /// Its slices.
    pub slices: Vec<Slice>,
    /// Client processes per cell (`--clients`).
    pub clients: usize,
    /// The emulated links, an axis of the matrix (the outermost); empty:
    /// loopback.
    pub links: Vec<LinkSpec>,
    /// Call modes, an axis over every slice that has none of its own
    /// (`--mode`).
    pub modes: Vec<CallMode>,
}

impl Matrix {
    /// The full product of the axes.
    pub fn product(
        name: String,
        formats: Vec<FormatId>,
        transports: Vec<TransportKind>,
        workloads: Vec<Workload>,
        loads: Vec<LoadSpec>,
    ) -> Matrix {
        let formats = formats.into_iter().map(FormatChoice::One).collect();
        Matrix {
            name,
            slices: vec![Slice { formats, transports, workloads, loads, modes: None }],
            clients: 1,
            links: Vec::new(),
            modes: vec![CallMode::Rr],
        }
    }

    /// Every format the matrix names (each framework's own, for `own`).
    pub fn formats(&self) -> Vec<FormatId> {
        union(self.slices.iter().flat_map(|s| {
            s.formats.iter().flat_map(move |choice| match *choice {
                FormatChoice::One(f) => vec![f],
                FormatChoice::Own => s.transports.iter().filter_map(|t| t.own_format()).collect(),
            })
        }))
    }

    /// Every transport of the matrix, in registry order.
    pub fn transports(&self) -> Vec<TransportKind> {
        union(self.slices.iter().flat_map(|s| s.transports.iter().copied()))
    }

    /// Every workload, in order.
    pub fn workloads(&self) -> Vec<Workload> {
        union(self.slices.iter().flat_map(|s| s.workloads.iter().copied()))
    }

    /// Every load, in the order first seen.
    pub fn loads(&self) -> Vec<LoadSpec> {
        let mut out: Vec<LoadSpec> = Vec::new();
        for load in self.slices.iter().flat_map(|s| s.loads.iter().copied()) {
            if !out.contains(&load) {
                out.push(load);
            }
        }
        out
    }

    /// Every call mode of the matrix: its own, then the slices'.
    pub fn all_modes(&self) -> Vec<CallMode> {
        let mut out = self.modes.clone();
        for mode in self.slices.iter().filter_map(|s| s.modes.as_ref()).flatten() {
            if !out.contains(mode) {
                out.push(*mode);
            }
        }
        out
    }

    /// Keeps only the transports `keep` accepts, in every slice.
    pub fn retain_transports(&mut self, keep: impl Fn(TransportKind) -> bool) {
        for slice in &mut self.slices {
            slice.transports.retain(|&t| keep(t));
        }
        self.slices.retain(|s| !s.transports.is_empty());
    }

    /// The cells, in run order: per workload and load, the raw baseline of
    /// each transport in play first, then every slice's cells. A format a
    /// transport cannot carry is still a cell (recorded as unsupported), so
    /// reports show the gap; [`FormatChoice::Own`] asks for none of those.
    pub fn cells(&self) -> Vec<CellSpec> {
        let mut cells: Vec<CellSpec> = Vec::new();
        let links: Vec<Option<LinkSpec>> =
            if self.links.is_empty() { vec![None] } else { self.links.iter().copied().map(Some).collect() };
        let clients = self.clients.max(1);
        for link in links {
            self.cells_of(link, clients, &mut cells);
        }
        cells
    }

    /// The cells of one link, in run order.
    fn cells_of(&self, link: Option<LinkSpec>, clients: usize, cells: &mut Vec<CellSpec>) {
        for workload in self.workloads() {
            for load in self.loads() {
                let here: Vec<&Slice> =
                    self.slices.iter().filter(|s| s.workloads.contains(&workload) && s.loads.contains(&load)).collect();
                let mut formatted = Vec::new();
                for mode in self.all_modes() {
                    for slice in here.iter().filter(|s| s.modes.as_ref().unwrap_or(&self.modes).contains(&mode)) {
                        for &transport in &slice.transports {
                            for choice in &slice.formats {
                                let format = match *choice {
                                    FormatChoice::One(f) => Some(f),
                                    FormatChoice::Own => transport.own_format(),
                                };
                                if let Some(format) = format {
                                    let subject = Subject::Format(format);
                                    let cell = CellSpec { workload, subject, transport, load, clients, link, mode };
                                    if !formatted.contains(&cell) {
                                        formatted.push(cell);
                                    }
                                }
                            }
                        }
                    }
                }
                // A framework is measured against the raw ping-pong of the
                // transport under it, even if that transport is not itself
                // in the matrix; the floor is request-response, so only
                // with rr cells to compare.
                let raws = union(formatted.iter().filter(|c| c.mode == CallMode::Rr).map(|c| c.transport.baseline()));
                cells.extend(raws.into_iter().map(|transport| CellSpec {
                    workload,
                    subject: Subject::Raw,
                    transport,
                    load,
                    clients,
                    link,
                    mode: CallMode::Rr,
                }));
                cells.extend(formatted);
            }
        }
    }
}

/// The distinct items, sorted.
fn union<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = items.collect();
    out.sort();
    out.dedup();
    out
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
    /// Emulated links (`--link`), each a profile or a spec.
    pub link: Option<Vec<String>>,
    /// Client processes per cell.
    pub clients: Option<u64>,
    /// Call modes: `rr`, `oneway`, `stream`, `pubsub`.
    pub mode: Option<Vec<String>>,
    /// Replies per request of the `stream` mode.
    pub stream_replies: Option<u64>,
    /// Subscribers of the `pubsub` mode.
    pub subscribers: Option<u64>,
    /// The matrix as a union of products: each slice names its own
    /// `formats` (`own`: each framework's own), `transports` (names, or the
    /// families `transports`, `frameworks`, `brokers`), `workloads` and
    /// `concurrency`; what a slice omits comes from the file's top level,
    /// then from the command line's defaults.
    pub slice: Option<Vec<SliceFile>>,
}

/// One `[[slice]]` of a matrix file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceFile {
    /// Format names, `all`, or `own`.
    pub formats: Option<Vec<String>>,
    /// Transport names, family names, or `all`.
    pub transports: Option<Vec<String>>,
    /// Workload ids or kinds.
    pub workloads: Option<Vec<String>>,
    /// Calls in flight.
    pub concurrency: Option<Vec<u64>>,
    /// Call modes (`rr`, `oneway`, `stream`, `pubsub`; the counts are the
    /// matrix's `stream_replies` and `subscribers`): this slice's own,
    /// unless `--mode` is given, which sets every slice's.
    pub mode: Option<Vec<String>>,
}

impl ConfigFile {
    /// Reads a matrix file.
    pub fn read(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid matrix file", path.display()))
    }

    /// A built-in matrix: `harness/matrices/{default,quick}.toml`.
    pub fn builtin(quick: bool) -> ConfigFile {
        let (name, text) = if quick {
            ("quick", include_str!("../matrices/quick.toml"))
        } else {
            ("default", include_str!("../matrices/default.toml"))
        };
        // The files are part of the binary and parsed by a test.
        toml::from_str(text).unwrap_or_else(|e| panic!("the built-in {name} matrix does not parse: {e}"))
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
        Matrix::product(
            "test".into(),
            FormatId::ALL.to_vec(),
            TransportKind::ALL.to_vec(),
            Workload::defaults(),
            vec![closed(1), closed(64)],
        )
    }

    #[test]
    fn keys_read_as_documented() {
        let cell = CellSpec {
            workload: Workload::Echo { size: 1024 },
            subject: Subject::Format(FormatId::Json),
            transport: TransportKind::Tcp,
            load: closed(64),
            clients: 1,
            link: None,
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
    fn clients_and_links_extend_keys_as_the_grammar_says() {
        let wan: LinkSpec = "wan".parse().unwrap();
        let cell = CellSpec {
            workload: Workload::Multiply,
            subject: Subject::Format(FormatId::Bincode),
            transport: TransportKind::Tcp,
            load: LoadSpec { model: LoadModel::Closed, in_flight: 64, connections: 1 },
            clients: 1,
            link: Some(wan),
            mode: CallMode::Rr,
        };
        assert_eq!(cell.key(), "multiply/bincode/tcp/c64@wan");
        let oneway = CellSpec { mode: CallMode::Oneway, clients: 2, ..cell };
        assert_eq!(oneway.key(), "multiply/bincode/tcp/c64k2/oneway@wan");
        assert_eq!(cell.baseline_key().as_deref(), Some("multiply/raw/tcp/c64@wan"));
        let many = CellSpec { clients: 4, load: LoadSpec { connections: 2, ..cell.load }, ..cell };
        assert_eq!(many.key(), "multiply/bincode/tcp/c64x2k4@wan");
        // A spec that is no profile is named by its canonical form, which
        // has no `/`, so the key still splits into its parts.
        let odd = CellSpec { link: Some("rtt=20ms,loss=0.5%".parse().unwrap()), clients: 2, ..cell };
        assert_eq!(odd.key(), "multiply/bincode/tcp/c64k2@rtt=20ms,loss=0.5%");
        // A spec with a profile's figures is that profile.
        let named = CellSpec { link: Some("rtt=40ms,rate=100mbit,queue=512KiB".parse().unwrap()), ..cell };
        assert_eq!(named.key(), "multiply/bincode/tcp/c64@wan");
        assert_eq!(CellSpec { link: None, clients: 1, ..cell }.key(), "multiply/bincode/tcp/c64");
    }

    #[test]
    fn links_are_the_outermost_axis() {
        let links: Vec<LinkSpec> = vec!["lan".parse().unwrap(), "wan".parse().unwrap()];
        let one = everything().cells();
        let two = Matrix { links: links.clone(), clients: 2, ..everything() }.cells();
        assert_eq!(two.len(), 2 * one.len());
        assert!(two[..one.len()].iter().all(|c| c.link == Some(links[0]) && c.clients == 2));
        assert!(two[one.len()..].iter().all(|c| c.link == Some(links[1])));
        let keys: std::collections::HashSet<_> = two.iter().map(CellSpec::key).collect();
        assert_eq!(keys.len(), two.len(), "keys are unique across links");
        for cell in &two {
            if let Some(baseline) = cell.baseline_key() {
                assert!(keys.contains(&baseline), "{} has no baseline {baseline} on its link", cell.key());
            }
        }
    }

    #[test]
    fn a_full_product_has_every_cell_and_every_baseline() {
        let cells = everything().cells();
        let formats = FormatId::ALL.len();
        let transports = TransportKind::ALL.len();
        let raws: std::collections::BTreeSet<_> = TransportKind::ALL.iter().map(|t| t.baseline()).collect();
        let per_point = transports * formats + raws.len();
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
        let mut only_grpc = everything();
        only_grpc.slices[0].transports = vec![TransportKind::Grpc];
        assert!(only_grpc.cells().iter().any(|c| c.subject == Subject::Raw && c.transport == TransportKind::Http2));
    }

    #[test]
    fn slices_union_without_repeats_and_own_formats_only_on_frameworks() {
        let slice = |formats: Vec<FormatChoice>, transports: Vec<TransportKind>, workloads: Vec<Workload>| Slice {
            formats,
            transports,
            workloads,
            loads: vec![closed(1)],
            modes: None,
        };
        let m = Matrix {
            name: "t".into(),
            slices: vec![
                slice(
                    vec![FormatChoice::One(FormatId::Json), FormatChoice::One(FormatId::Bincode)],
                    vec![TransportKind::Tcp],
                    vec![Workload::Multiply, Workload::Echo { size: 16 }],
                ),
                slice(
                    vec![FormatChoice::One(FormatId::Json)],
                    vec![TransportKind::Tcp, TransportKind::Udp],
                    vec![Workload::Multiply],
                ),
                slice(vec![FormatChoice::Own], vec![TransportKind::Grpc, TransportKind::Tcp], vec![Workload::Multiply]),
            ],
            clients: 1,
            links: Vec::new(),
            modes: vec![CallMode::Rr],
        };
        let keys: Vec<String> = m.cells().iter().map(CellSpec::key).collect();
        assert_eq!(
            keys,
            vec![
                "multiply/raw/tcp/c1",
                "multiply/raw/udp/c1",
                "multiply/raw/http2/c1",
                "multiply/json/tcp/c1",
                "multiply/bincode/tcp/c1",
                "multiply/json/udp/c1",
                "multiply/protobuf/grpc/c1",
                "echo-16B/raw/tcp/c1",
                "echo-16B/json/tcp/c1",
                "echo-16B/bincode/tcp/c1",
            ]
        );
        assert_eq!(m.formats(), vec![FormatId::Json, FormatId::Protobuf, FormatId::Bincode]);
    }

    #[test]
    fn the_built_in_matrices_parse() {
        for quick in [false, true] {
            let file = ConfigFile::builtin(quick);
            assert!(file.slice.as_ref().is_some_and(|s| !s.is_empty()));
        }
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
