//! The harness side of `--link`: each link of a run brought up, measured
//! against its setting, recorded in the results, and taken down on every
//! way out of the run.
//!
//! A linked run puts the server process in the link's server namespace
//! (bound to the link's server address) and its client threads or
//! processes in client namespaces, so every call of every cell crosses the
//! emulator (`wirebench-link`, `docs/link.md`). Only the server-stats
//! control connection does not: it is opened from inside the server's
//! namespace, so the server's CPU is read at the window's edges without
//! a link round trip shifting them.
//!
//! Teardown: [`Network`] is dropped after the servers inside it (the run
//! holds them in that order), on a normal end, a failed cell, an error and
//! an unwinding panic alike; a second Ctrl-C, which does not wait for the
//! run, calls [`teardown_on_second_signal`] from the signal relay thread.
//! A process killed outright leaves names that the next run's `Link::up`
//! removes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use wirebench_link::{Link, LinkSpec, LinkStats, Validation};
use wirebench_reports::model::{
    CellLink, EmulatorCheck, LinkRecord, LinkUsage, LinkValidation, LossCheck, LossDirectionCheck, RttCheck,
    ThroughputCheck,
};
use wirebench_transports::stream::StreamClient;
use wirebench_transports::{ClientConfig, Endpoint, TransportKind};

/// A link's name in cell keys and reports: its profile's name when its
/// figures are a profile's, else its canonical spec (which has no `/`).
pub fn name(spec: &LinkSpec) -> String {
    spec.profile().map_or_else(|| spec.to_string(), str::to_owned)
}

/// The results file's description of a cell's link.
pub fn cell_link(spec: &LinkSpec) -> CellLink {
    CellLink { name: name(spec), spec: spec.to_string() }
}

/// Parses a `--link` value; the error names the key and its range.
pub fn parse_spec(s: &str) -> Result<LinkSpec, String> {
    s.trim().parse::<LinkSpec>().map_err(|e| e.to_string())
}

/// Why a transport cannot cross a link, if it cannot.
pub fn unsupported(transport: TransportKind) -> Option<&'static str> {
    match transport {
        TransportKind::Unix => Some(
            "unix does not cross a link: a Unix socket joins two processes through one filesystem, not two network \
             stacks",
        ),
        TransportKind::Inproc => Some("inproc has no network to cross: the server's handler runs in the client"),
        // The daemons run beside the harness, in its own network namespace:
        // the link would sit between the client and nothing it talks to.
        t if t.family() == wirebench_transports::Family::Broker => {
            Some("brokers do not cross a link yet: their daemons run on the harness's loopback, outside the link")
        }
        _ => None,
    }
}

/// Why a cell cannot cross a link, if it cannot: its transport's reason,
/// or its mode's.
pub fn unsupported_cell(spec: &crate::plan::CellSpec) -> Option<&'static str> {
    if let (TransportKind::Udp, crate::plan::CallMode::Pubsub { .. }) = (spec.transport, spec.mode) {
        return Some(
            "udp pubsub is IPv4 multicast among the client's own sockets: the publisher and every subscriber sit on \
             the client's side of the link, so nothing would cross it",
        );
    }
    unsupported(spec.transport)
}

/// Links currently up in this process, so a second Ctrl-C knows it must
/// tear them down instead of leaving at once.
static UP: AtomicUsize = AtomicUsize::new(0);
/// Links being brought up: their namespaces may exist before the link is
/// registered, so a second Ctrl-C then must wait for them, not leave.
static BUILDING: AtomicUsize = AtomicUsize::new(0);

/// Whether any link of this process is up or coming up (read in the
/// signal handler: atomic loads only).
pub fn any_up() -> bool {
    UP.load(Ordering::SeqCst) > 0 || BUILDING.load(Ordering::SeqCst) > 0
}

/// The second Ctrl-C with links up: tear every link down (which takes
/// locks and runs `ip`, so this runs on the relay thread, never in the
/// handler), then leave with the interrupted status. The server and client
/// processes inside the namespaces get their parent-death signal as this
/// process exits, which frees the namespaces.
pub fn teardown_on_second_signal() -> ! {
    // A link half-built removes its own namespaces if it fails, and is
    // registered for teardown once up: wait for it (bounded) either way.
    let deadline = Instant::now() + Duration::from_secs(20);
    while BUILDING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Err(e) = wirebench_link::teardown_all() {
        eprintln!("wirebench: tearing the links down: {e}");
    }
    // SAFETY: _exit ends the process without running destructors, which
    // the main thread may be in the middle of.
    unsafe { libc::_exit(130) }
}

/// One emulated link of a run: up, measured, and removed when dropped.
#[derive(Debug)]
pub struct Network {
    spec: LinkSpec,
    link: Link,
    validation: Result<Validation, String>,
    /// The emulator's counters when the validation ended.
    after_validation: LinkStats,
    drops_after_validation: u64,
    since: Instant,
}

impl Network {
    /// Brings up `spec` with `clients` client namespaces and measures it.
    /// A link that fails its validation still comes up (and is recorded
    /// with the reason); its cells are failed without running.
    pub fn up(spec: &LinkSpec, clients: usize, seed: u64, quiet: bool) -> anyhow::Result<Network> {
        let name = name(spec);
        BUILDING.fetch_add(1, Ordering::SeqCst);
        let link = Link::up(spec, clients, seed);
        if link.is_ok() {
            UP.fetch_add(1, Ordering::SeqCst);
        }
        BUILDING.fetch_sub(1, Ordering::SeqCst);
        let link = link.with_context(|| format!("cannot bring up link {name}"))?;
        if !quiet {
            crate::output::stderr(&format!("link {name} ({spec}): measuring it against its setting"));
        }
        let validation = wirebench_link::validate(&link).map_err(|e| e.to_string());
        let drops_after_validation = device_drops(&link);
        Ok(Network {
            spec: *spec,
            after_validation: link.stats(),
            drops_after_validation,
            link,
            validation,
            since: Instant::now(),
        })
    }

    /// The link's setting.
    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    /// Why the link failed its validation, if it did.
    pub fn validation_error(&self) -> Option<&str> {
        self.validation.as_ref().err().map(String::as_str)
    }

    /// The server's namespace.
    pub fn server_netns(&self) -> PathBuf {
        self.link.server_netns().to_owned()
    }

    /// Client `i`'s namespace.
    pub fn client_netns(&self, i: usize) -> anyhow::Result<PathBuf> {
        Ok(self.link.client_netns(i)?.to_owned())
    }

    /// The server's address, reachable from every client namespace.
    pub fn server_ip(&self) -> IpAddr {
        self.link.server_addr()
    }

    /// The results file's record of the link: setting, validation, and what
    /// the emulator did since.
    pub fn record(&self, seed: u64) -> LinkRecord {
        let spec = &self.spec;
        LinkRecord {
            name: name(spec),
            spec: spec.to_string(),
            rtt_ns: nanos(spec.rtt()),
            loss: spec.loss(),
            rate_bps: spec.rate_bps(),
            queue_bytes: spec.queue_bytes(),
            jitter_ns: nanos(spec.jitter()),
            clients: self.link.clients(),
            seed,
            validation: self.validation.as_ref().ok().map(validation_model),
            validation_error: self.validation.as_ref().err().cloned(),
            usage: Some(self.usage()),
        }
    }

    /// What the emulator did since the validation.
    fn usage(&self) -> LinkUsage {
        let now = self.link.stats();
        let (total, before) = (now.total(), self.after_validation.total());
        let counters = total.since(&before);
        let departures = now.departures.saturating_sub(self.after_validation.departures);
        let late = now.late_total.saturating_sub(self.after_validation.late_total);
        let faults = |s: &LinkStats| s.unroutable + s.oversize + s.write_errors + s.read_errors;
        LinkUsage {
            duration_s: self.since.elapsed().as_secs_f64(),
            forwarded_packets: counters.forwarded,
            forwarded_bytes: counters.forwarded_bytes,
            lost_packets: counters.lost,
            queue_dropped: counters.queue_dropped,
            limit_dropped: counters.limit_dropped,
            device_drops: device_drops(&self.link).saturating_sub(self.drops_after_validation),
            faults: faults(&now).saturating_sub(faults(&self.after_validation)),
            // The maximum is the link's whole life's: the validation's
            // bursts are part of what the emulator kept up with.
            late_max_ns: nanos(now.late_max),
            late_mean_ns: nanos(late).checked_div(departures).unwrap_or(0),
            forwarder_cpu_s: now.forwarder_cpu.saturating_sub(self.after_validation.forwarder_cpu).as_secs_f64(),
            forwarder_error: now.forwarder_error,
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(e) = self.link.teardown() {
            eprintln!("wirebench: {e}");
        }
        UP.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Packets the kernel dropped in the link's full TUN queues so far (0 if
/// the counters cannot be read: the record then understates, never
/// invents, the emulator's losses).
fn device_drops(link: &Link) -> u64 {
    link.device_counters().map_or(0, |c| c.iter().map(|d| d.tx_dropped).sum())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn validation_model(v: &Validation) -> LinkValidation {
    let opt = |d: Option<Duration>| d.map(nanos);
    let direction = |d: &wirebench_link::LossDirection| LossDirectionCheck {
        sent: d.sent,
        received: d.received,
        rate: d.rate,
        low: d.interval.0,
        high: d.interval.1,
    };
    LinkValidation {
        rtt: RttCheck {
            expected_ns: nanos(v.rtt.expected),
            sent: v.rtt.sent,
            received: v.rtt.received,
            p50_ns: opt(v.rtt.p50),
            p99_ns: opt(v.rtt.p99),
            min_ns: opt(v.rtt.min),
            max_ns: opt(v.rtt.max),
        },
        loss: LossCheck { setting: v.loss.setting, up: direction(&v.loss.up), down: direction(&v.loss.down) },
        throughput: ThroughputCheck {
            setting_bps: v.throughput.setting_bps,
            goodput_bps: v.throughput.goodput_bps,
            wire_bps: v.throughput.wire_bps,
            bytes: v.throughput.bytes,
            window_s: v.throughput.window.as_secs_f64(),
            congestion_control: v.throughput.congestion_control.clone(),
        },
        emulator: EmulatorCheck {
            through_link_ns: nanos(v.emulator.through_link),
            loopback_ns: nanos(v.emulator.loopback),
            added_ns: nanos(v.emulator.added),
        },
        forwarder_cpu_us: u64::try_from(v.forwarder_cpu.as_micros()).unwrap_or(u64::MAX),
        forwarded_packets: v.forwarded_packets,
        device_drops: v.device_drops,
        elapsed_s: v.elapsed.as_secs_f64(),
    }
}

/// A framed tcp client to `endpoint` whose socket is made inside the
/// network namespace at `netns` (the server's), so the control calls never
/// cross the link. The socket keeps its namespace on whatever thread uses
/// it afterwards.
pub async fn control_client(
    endpoint: &Endpoint,
    netns: &Path,
    config: &ClientConfig,
) -> Result<StreamClient<tokio::net::TcpStream>, String> {
    let address = endpoint.address.inet(TransportKind::Tcp).map_err(|e| e.to_string())?;
    let timeout = config.timeout;
    let stream = wirebench_link::run_in_netns(netns, move || {
        let stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
    .map_err(|e| format!("control connection to {address} in {}: {e}", netns.display()))?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| format!("control connection: {e}"))?;
    StreamClient::new(vec![stream], config).await.map_err(|e| format!("control connection to {address}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_multicast_pubsub_does_not_cross_a_link_but_its_other_modes_do() {
        use crate::plan::{CallMode, CellSpec, LoadModel, LoadSpec, Subject};
        let spec = |transport, mode| CellSpec {
            workload: wirebench_formats::Workload::Multiply,
            subject: Subject::Format(wirebench_formats::FormatId::Protobuf),
            transport,
            load: LoadSpec { model: LoadModel::Closed, in_flight: 1, connections: 1 },
            clients: 1,
            link: None,
            mode,
        };
        let pubsub = CallMode::Pubsub { subscribers: 4 };
        assert!(unsupported_cell(&spec(TransportKind::Udp, pubsub)).unwrap().contains("client's side"));
        assert!(unsupported_cell(&spec(TransportKind::Udp, CallMode::Oneway)).is_none());
        assert!(unsupported_cell(&spec(TransportKind::Tcp, pubsub)).is_none());
        assert!(unsupported_cell(&spec(TransportKind::Unix, CallMode::Rr)).unwrap().contains("filesystem"));
    }

    #[test]
    fn names_are_profiles_or_canonical_specs() {
        for (given, named) in [
            ("lan", "lan"),
            ("wan", "wan"),
            ("wan,loss=1%", "lossy"),
            ("rtt=60ms,loss=0.2%,rate=20mbit,queue=256KiB,jitter=5ms", "mobile"),
            ("rtt=20ms", "rtt=20ms"),
            ("rtt=40ms,rate=100mbit", "rtt=40ms,rate=100mbit,queue=489KiB"),
        ] {
            let spec = parse_spec(given).unwrap();
            assert_eq!(name(&spec), named, "{given}");
            assert!(!name(&spec).contains('/'));
            assert_eq!(parse_spec(&name(&spec)).unwrap(), spec, "a name parses back to its link");
        }
    }

    #[test]
    fn bad_specs_name_the_key_and_the_range() {
        let e = parse_spec("loss=150%").unwrap_err();
        assert!(e.contains("loss") && e.contains("0%") && e.contains("100%"), "{e}");
        let e = parse_spec("rtt=20s").unwrap_err();
        assert!(e.contains("rtt") && e.contains("10000ms"), "{e}");
        assert!(parse_spec("speed=1").unwrap_err().contains("speed"));
        assert!(parse_spec("").is_err());
    }

    #[test]
    fn only_unix_inproc_and_brokers_stay_on_this_side() {
        for t in TransportKind::ALL {
            let refused = unsupported(*t).is_some();
            let local = matches!(t, TransportKind::Unix | TransportKind::Inproc)
                || t.family() == wirebench_transports::Family::Broker;
            assert_eq!(refused, local, "{t}");
        }
    }
}
