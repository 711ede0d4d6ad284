//! The network a run crossed, and who drove it: the emulated links of
//! `wirebench run --link` (each link's setting, what the run measured of
//! it, what the emulator did meanwhile), the server's own machine as it
//! reported it over the control connection, and the figures of each client
//! process of a cell run with `--clients K`.
//!
//! These are parts of the results file ([`crate::model::Results`]); every
//! field is optional there, so files written before links existed read.

use serde::{Deserialize, Serialize};

use crate::model::CellStatus;

/// The link a cell ran over: its name (a profile, or the canonical spec)
/// and its canonical spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellLink {
    /// `lan`, `wan`, `lossy`, `mobile`, or the canonical spec when the
    /// figures are no profile's; the `@` part of the cell's key.
    pub name: String,
    /// The canonical spec (`rtt=40ms,rate=100mbit,queue=512KiB`).
    pub spec: String,
}

/// One emulated link of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// As in [`CellLink::name`].
    pub name: String,
    /// The canonical spec.
    pub spec: String,
    /// The round-trip propagation delay, ns (each direction gets half).
    pub rtt_ns: u64,
    /// Loss probability of each direction, 0 to 1.
    pub loss: f64,
    /// Bottleneck rate of each direction, bit/s; absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
    /// Drop-tail queue of each direction, bytes (present with a rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_bytes: Option<u64>,
    /// Largest extra delay per packet and direction, ns.
    pub jitter_ns: u64,
    /// Client network namespaces (one per client process).
    pub clients: usize,
    /// Seed of the link's losses and jitter.
    pub seed: u64,
    /// What the run measured of the link before its cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<LinkValidation>,
    /// Why the validation failed (the link's cells are then failed too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_error: Option<String>,
    /// What the emulator did from the link's validation to the run's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<LinkUsage>,
}

/// A link measured against its setting (`wirebench_link::validate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkValidation {
    /// Round-trip time of paced UDP pings.
    pub rtt: RttCheck,
    /// Loss of paced probes, per direction.
    pub loss: LossCheck,
    /// One TCP bulk transfer, client to server.
    pub throughput: ThroughputCheck,
    /// What the emulator itself adds at zero delay.
    pub emulator: EmulatorCheck,
    /// The forwarding thread's CPU time during the validation, µs.
    pub forwarder_cpu_us: u64,
    /// Packets it forwarded meanwhile.
    pub forwarded_packets: u64,
    /// Packets the kernel dropped in a full TUN queue meanwhile: the
    /// emulator's own losses, not the link's.
    pub device_drops: u64,
    /// How long the validation took, seconds.
    pub elapsed_s: f64,
}

/// The RTT a link showed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RttCheck {
    /// The RTT the setting implies for a 64-byte probe: the RTT, the
    /// probe's serialization both ways, the median jitter, ns.
    pub expected_ns: u64,
    /// Pings sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Median reply time, ns (absent without replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ns: Option<u64>,
    /// 99th percentile, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<u64>,
    /// Fastest reply, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ns: Option<u64>,
    /// Slowest reply, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ns: Option<u64>,
}

/// The loss a link showed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossCheck {
    /// The setting, per direction, 0 to 1.
    pub setting: f64,
    /// Client to server.
    pub up: LossDirectionCheck,
    /// Server to client (of what reached the server, echoed).
    pub down: LossDirectionCheck,
}

/// Loss measured in one direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossDirectionCheck {
    /// Probes that entered this direction.
    pub sent: u64,
    /// Probes that came out of it.
    pub received: u64,
    /// `1 - received / sent`.
    pub rate: f64,
    /// The 99% Wilson interval of `rate`: its lower end.
    pub low: f64,
    /// Its upper end.
    pub high: f64,
}

/// The TCP throughput a link carried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputCheck {
    /// The link's rate, bit/s (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting_bps: Option<u64>,
    /// Application bytes per second at the receiver, in bit/s.
    pub goodput_bps: f64,
    /// IP bytes per second the emulator forwarded that way, bit/s: the
    /// figure to hold against the rate.
    pub wire_bps: f64,
    /// Application bytes received in the window.
    pub bytes: u64,
    /// The measured window, seconds.
    pub window_s: f64,
    /// The TCP congestion control of the namespaces (inherited from the
    /// host; it decides how TCP meets loss and the queue).
    pub congestion_control: String,
}

/// What the emulator adds to every round trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmulatorCheck {
    /// Median ping through an `rtt=0ms` link, ns.
    pub through_link_ns: u64,
    /// Median ping over loopback in one namespace, ns.
    pub loopback_ns: u64,
    /// `through_link_ns - loopback_ns`.
    pub added_ns: u64,
}

/// What the emulator did over the run (from the link's validation to the
/// end), all directions and clients together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkUsage {
    /// Seconds covered.
    pub duration_s: f64,
    /// Packets delivered.
    pub forwarded_packets: u64,
    /// Their IP bytes.
    pub forwarded_bytes: u64,
    /// Packets lost to the link's loss setting.
    pub lost_packets: u64,
    /// Packets dropped by a full drop-tail queue.
    pub queue_dropped: u64,
    /// Packets dropped by the emulator's memory bound.
    pub limit_dropped: u64,
    /// Packets the kernel dropped in full TUN queues (the forwarder fell
    /// behind): the emulator's losses, not the link's.
    pub device_drops: u64,
    /// Packets to no client, or over the MTU, or failed reads and writes.
    pub faults: u64,
    /// The latest a departure was written after its time, ns: the
    /// emulator's own timing error at its worst.
    pub late_max_ns: u64,
    /// The mean lateness of a departure, ns.
    pub late_mean_ns: u64,
    /// The forwarding thread's CPU time, seconds (user + system).
    pub forwarder_cpu_s: f64,
    /// Why the forwarder stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarder_error: Option<String>,
}

/// The server's machine, as the server reported it over the control
/// connection (`docs/protocol.md`, section 10.2): with `--connect` to
/// another host, the other machine of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEnvironment {
    /// The server's wirebench version.
    pub version: String,
    /// `model name` from its /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs available to the server process.
    pub cores: usize,
    /// Its kernel release.
    pub kernel: String,
    /// Its operating system.
    pub os: String,
    /// Its host name.
    pub hostname: String,
}

/// One client process of a cell run with `--clients K` (K > 1): its own
/// share of the cell, whose figures are all clients' together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientFigures {
    /// The client, from 0 (with `--link`, its namespace's index).
    pub client: usize,
    /// `ok`, `failed` or `unsupported` for this client.
    pub status: CellStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Calls recorded in its measured window.
    pub calls: u64,
    /// Its measured window, seconds.
    pub duration_s: f64,
    /// Its calls per second.
    pub calls_per_sec: f64,
    /// Its median latency, ns.
    pub p50_ns: u64,
    /// Its 99th percentile, ns.
    pub p99_ns: u64,
    /// Its CPU per call (user + system), µs.
    pub cpu_us_per_call: f64,
}
