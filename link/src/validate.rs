//! Measuring a link against its setting: what the harness stores with every
//! linked run, and what the accuracy tests and benchmark assert and print.
//!
//! - **RTT**: paced UDP pings from a client namespace to an echo socket in
//!   the server namespace; each carries its send time, so pings in flight
//!   together do not disturb each other's figure. The *expected* RTT is the
//!   setting plus the ping's serialization both ways plus the jitter (the
//!   median of the sum of two uniform draws on `0..=jitter` is `jitter`).
//! - **Loss**: paced small UDP packets below the link's rate, counted at the
//!   echo socket (uplink) and back at the client (downlink), each with its
//!   99% Wilson interval.
//! - **Throughput**: one TCP bulk transfer client to server, measured over a
//!   window after a warm-up (slow start, queue filling): goodput at the
//!   receiver and IP bytes the emulator forwarded, both in bit/s.
//! - **Emulator latency**: the median ping through a temporary `rtt=0ms`
//!   link minus the median ping over loopback inside its server namespace:
//!   what the TUN devices and the forwarder add to every round trip.
//! - **CPU**: the forwarding thread's CPU time over the validation.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::driver::Link;
use crate::error::LinkError;
use crate::netns::enter_netns;
use crate::spec::LinkSpec;
use crate::stats::{Z99, quantile, wilson_interval};
use crate::sys;

/// The UDP payload of a probe: with IPv4 and UDP headers a 64-byte packet.
pub const PROBE_PAYLOAD: usize = 36;
const PROBE_PACKET: u64 = PROBE_PAYLOAD as u64 + 28;
/// The most probes a late sender sends back to back to catch up.
const MAX_CATCH_UP: u32 = 8;
const KIND_PING: u8 = 1;
const KIND_LOSS: u8 = 2;

/// Runs `f` on a thread of its own inside the namespace at `path` (so the
/// caller's thread never changes namespace) and returns its result. Sockets
/// it creates stay in that namespace wherever they are used afterwards.
pub fn run_in_netns<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> Result<T, LinkError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let guard = enter_netns(path)?;
            let result = f().map_err(|e| LinkError::io(format!("in network namespace {}", path.display()), e));
            guard.leave()?;
            result
        })
        .join()
        .map_err(|_| LinkError::Panicked("measurement"))?
    })
}

/// How to measure the RTT.
#[derive(Clone, Copy, Debug)]
pub struct RttPlan {
    /// The client namespace to ping from.
    pub client: usize,
    /// Pings to send.
    pub pings: usize,
    /// Time between pings.
    pub interval: Duration,
    /// How long to wait for the last reply.
    pub timeout: Duration,
}

impl RttPlan {
    /// A plan scaled to `spec`: pings at least 1 ms and two serialization
    /// times apart (so none waits behind another in the queue), as many as
    /// fit in about a second, from 5 to 500.
    pub fn for_spec(spec: &LinkSpec, client: usize) -> RttPlan {
        let ser = serialization(spec, PROBE_PACKET);
        let interval = (ser * 2).max(Duration::from_millis(1));
        let pings = (Duration::from_secs(1).as_nanos() / interval.as_nanos()).clamp(5, 500) as usize;
        RttPlan { client, pings, interval, timeout: reply_timeout(spec) }
    }
}

/// The round-trip time a link showed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rtt {
    /// The RTT the setting implies for a probe (see the module doc).
    pub expected: Duration,
    /// Pings sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Median reply time (`None` without replies).
    pub p50: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
    /// Fastest reply.
    pub min: Option<Duration>,
    /// Slowest reply.
    pub max: Option<Duration>,
}

impl Rtt {
    fn from_samples(expected: Duration, sent: u64, mut samples: Vec<Duration>) -> Rtt {
        samples.sort();
        Rtt {
            expected,
            sent,
            received: samples.len() as u64,
            p50: quantile(&samples, 0.5),
            p99: quantile(&samples, 0.99),
            min: samples.first().copied(),
            max: samples.last().copied(),
        }
    }
}

/// Loss measured in one direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossDirection {
    /// Packets that entered this direction.
    pub sent: u64,
    /// Packets that came out of it.
    pub received: u64,
    /// `1 − received / sent` (0 when nothing was sent).
    pub rate: f64,
    /// The 99% Wilson interval of the rate.
    pub interval: (f64, f64),
}

impl LossDirection {
    fn new(sent: u64, received: u64) -> LossDirection {
        let lost = sent.saturating_sub(received);
        let rate = if sent == 0 { 0.0 } else { lost as f64 / sent as f64 };
        LossDirection { sent, received, rate, interval: wilson_interval(lost, sent, Z99) }
    }

    /// Whether `p` lies in the interval.
    pub fn contains(&self, p: f64) -> bool {
        self.interval.0 <= p && p <= self.interval.1
    }
}

/// How to measure loss.
#[derive(Clone, Copy, Debug)]
pub struct LossPlan {
    /// The client namespace to send from.
    pub client: usize,
    /// Probes to send.
    pub packets: u64,
    /// Probes per second.
    pub rate_pps: u64,
    /// How long to wait for the last echo.
    pub timeout: Duration,
}

impl LossPlan {
    /// A plan scaled to `spec`: probes at 20000 per second or half the
    /// link's rate if that is less, for up to 2 s and at most 20000 of them
    /// (at least 10: a link too slow for that takes longer).
    pub fn for_spec(spec: &LinkSpec, client: usize) -> LossPlan {
        let rate_pps = match spec.rate_bps() {
            Some(bps) => (bps / (2 * 8 * PROBE_PACKET)).clamp(1, 20_000),
            None => 20_000,
        };
        LossPlan { client, packets: (rate_pps * 2).clamp(10, 20_000), rate_pps, timeout: reply_timeout(spec) }
    }
}

/// The loss a link showed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// The setting, per direction (0 to 1).
    pub setting: f64,
    /// Client to server.
    pub up: LossDirection,
    /// Server to client (of what reached the server, echoed).
    pub down: LossDirection,
}

/// How to measure TCP throughput.
#[derive(Clone, Copy, Debug)]
pub struct ThroughputPlan {
    /// The client namespace that sends.
    pub client: usize,
    /// Transfer time not measured (slow start, the queue filling).
    pub warmup: Duration,
    /// The measured window after it.
    pub window: Duration,
}

impl ThroughputPlan {
    /// A plan scaled to `spec`: warm-up of 8 RTTs (0.3 to 3 s), window of
    /// 10 RTTs (1 to 5 s).
    pub fn for_spec(spec: &LinkSpec, client: usize) -> ThroughputPlan {
        let rtt = spec.rtt();
        ThroughputPlan {
            client,
            warmup: (rtt * 8).clamp(Duration::from_millis(300), Duration::from_secs(3)),
            window: (rtt * 10).clamp(Duration::from_secs(1), Duration::from_secs(5)),
        }
    }
}

/// The TCP throughput a link carried.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    /// The link's rate (`None`: unlimited).
    pub setting_bps: Option<u64>,
    /// Application bytes per second at the receiver, in bit/s.
    pub goodput_bps: f64,
    /// IP bytes per second the emulator forwarded that way, in bit/s, over
    /// the whole window (TCP/IP headers included): what TCP got.
    pub wire_bps: f64,
    /// The median of the window's [`THROUGHPUT_SLICES`] equal slices' wire
    /// rates: what the link carries while it is busy, the figure to hold
    /// against the rate. A stretch in which the machine did not run the
    /// forwarder or the sender (a stalled VM, a busy neighbour) lowers a
    /// few slices and the mean, not the median; a link that carries the
    /// wrong rate moves every slice.
    pub wire_bps_median: f64,
    /// CPU time the hypervisor took from this machine during the window
    /// (`steal` in `/proc/stat`, summed over CPUs; `None` where it is not
    /// reported): time in which nothing here ran.
    pub steal: Option<Duration>,
    /// Application bytes received in the window.
    pub bytes: u64,
    /// The window's exact length.
    pub window: Duration,
    /// The TCP congestion control in the client namespace (inherited from
    /// the host: it decides how TCP meets loss and the queue).
    pub congestion_control: String,
}

/// What the emulator itself adds to a round trip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmulatorLatency {
    /// Median ping through an `rtt=0ms` link.
    pub through_link: Duration,
    /// Median ping over loopback in one namespace.
    pub loopback: Duration,
    /// `through_link − loopback`.
    pub added: Duration,
}

/// A link measured against its setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    /// The link's setting.
    pub spec: LinkSpec,
    /// Its round-trip time.
    pub rtt: Rtt,
    /// Its loss.
    pub loss: Loss,
    /// Its TCP throughput.
    pub throughput: Throughput,
    /// The emulator's own latency at zero delay.
    pub emulator: EmulatorLatency,
    /// The forwarder's CPU time during the validation.
    pub forwarder_cpu: Duration,
    /// Packets it forwarded meanwhile.
    pub forwarded_packets: u64,
    /// Packets the kernel dropped in a full TUN queue meanwhile (the
    /// forwarder fell behind): the emulator's losses, not the link's.
    pub device_drops: u64,
    /// How long the validation took.
    pub elapsed: Duration,
}

/// Measures `link` against its setting from client 0 (see the module doc),
/// in a few seconds scaled to the spec (a link of 10 s RTT takes longer).
/// Fails if the link carries nothing at all (e.g. `loss=100%`).
pub fn validate(link: &Link) -> Result<Validation, LinkError> {
    let start = Instant::now();
    let spec = *link.spec();
    let before = link.stats();
    let drops_before = device_drops(link)?;
    let rtt = measure_rtt(link, &RttPlan::for_spec(&spec, 0))?;
    let loss = measure_loss(link, &LossPlan::for_spec(&spec, 0))?;
    let throughput = measure_throughput(link, &ThroughputPlan::for_spec(&spec, 0))?;
    let after = link.stats();
    let device_drops = device_drops(link)?.saturating_sub(drops_before);
    let emulator = measure_emulator_latency(link.seed())?;
    Ok(Validation {
        spec,
        rtt,
        loss,
        throughput,
        emulator,
        forwarder_cpu: after.forwarder_cpu.saturating_sub(before.forwarder_cpu),
        forwarded_packets: after.total().forwarded - before.total().forwarded,
        device_drops,
        elapsed: start.elapsed(),
    })
}

fn device_drops(link: &Link) -> Result<u64, LinkError> {
    Ok(link.device_counters()?.iter().map(|d| d.tx_dropped).sum())
}

/// The time `bytes` take at the spec's rate.
fn serialization(spec: &LinkSpec, bytes: u64) -> Duration {
    match spec.rate_bps() {
        Some(bps) => Duration::from_nanos((u128::from(bytes) * 8 * 1_000_000_000 / u128::from(bps)) as u64),
        None => Duration::ZERO,
    }
}

/// How long a reply may take: the RTT, both jitters, a full queue's drain
/// both ways, and a second of slack for a loaded machine.
fn reply_timeout(spec: &LinkSpec) -> Duration {
    let queue = serialization(spec, spec.queue_bytes().unwrap_or(0));
    spec.rtt() + spec.jitter() * 2 + queue * 2 + Duration::from_secs(1)
}

/// An echo socket in the server namespace and a connected socket in the
/// client's, on `port` 0.
fn udp_pair(link: &Link, client: usize) -> Result<(UdpSocket, UdpSocket), LinkError> {
    let server_ip = link.server_addr();
    let client_ip = link.client_addr(client)?;
    let echo = run_in_netns(link.server_netns(), || UdpSocket::bind(SocketAddr::new(server_ip, 0)))?;
    let echo_addr = echo.local_addr().map_err(|e| LinkError::io("reading the echo socket's address", e))?;
    let sock = run_in_netns(link.client_netns(client)?, || {
        let s = UdpSocket::bind(SocketAddr::new(client_ip, 0))?;
        s.connect(echo_addr)?;
        Ok(s)
    })?;
    Ok((echo, sock))
}

/// Echoes every datagram back to its sender until `stop`, counting them.
fn echo_loop(echo: &UdpSocket, stop: &AtomicBool, received: &AtomicU64) -> io::Result<()> {
    echo.set_read_timeout(Some(Duration::from_millis(10)))?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match echo.recv_from(&mut buf) {
            Ok((n, from)) => {
                received.fetch_add(1, Ordering::Relaxed);
                // A failed echo is a lost echo; the client counts it.
                let _ = echo.send_to(&buf[..n], from);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn probe(kind: u8, seq: u64) -> [u8; PROBE_PAYLOAD] {
    let mut p = [0u8; PROBE_PAYLOAD];
    p[0] = kind;
    p[1..9].copy_from_slice(&seq.to_le_bytes());
    p[9..17].copy_from_slice(&sys::monotonic_ns().to_le_bytes());
    p
}

/// Sends `count` probes of `kind` paced at `interval` from `sock`, while
/// receiving their echoes on the same socket until all are back or
/// `timeout` after the last send: the RTT of each echo, by sequence number.
fn paced_probes(
    sock: &UdpSocket,
    kind: u8,
    count: u64,
    interval: Duration,
    timeout: Duration,
) -> Result<Vec<Option<Duration>>, LinkError> {
    let io_err = |what: &str, e| LinkError::io(format!("{what} on the probe socket"), e);
    sys::set_recv_buffer(sock.as_raw_fd(), 8 << 20);
    let receiver = sock.try_clone().map_err(|e| io_err("cloning", e))?;
    receiver.set_read_timeout(Some(Duration::from_millis(20))).map_err(|e| io_err("setting a timeout", e))?;
    let sent_all = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| -> io::Result<()> {
            let mut next = Instant::now();
            for seq in 0..count {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > interval * MAX_CATCH_UP {
                    // Descheduled for a while: resume the pace from now
                    // rather than catch up in one burst, which would overflow
                    // queues on the way (the TUN's, the echo socket's) and
                    // count as loss what is the measurement's own doing.
                    next = now;
                }
                next += interval;
                match sock.send(&probe(kind, seq)) {
                    Ok(_) => {}
                    // The local queue was full: that probe is lost, as on a
                    // real host; everything else is a failure.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) => {
                        done.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            sent_all.store(sys::monotonic_ns(), Ordering::Relaxed);
            Ok(())
        });
        let mut rtts = vec![None; count as usize];
        let mut got = 0u64;
        let mut buf = [0u8; 2048];
        loop {
            let finished = sent_all.load(Ordering::Relaxed);
            if got == count
                || done.load(Ordering::Relaxed)
                || (finished > 0 && sys::monotonic_ns().saturating_sub(finished) > timeout.as_nanos() as u64)
            {
                break;
            }
            match receiver.recv(&mut buf) {
                Ok(n) => {
                    let now = sys::monotonic_ns();
                    if n != PROBE_PAYLOAD || buf[0] != kind {
                        continue;
                    }
                    let seq = u64::from_le_bytes(buf[1..9].try_into().unwrap_or_default());
                    let sent = u64::from_le_bytes(buf[9..17].try_into().unwrap_or_default());
                    if let Some(slot @ None) = rtts.get_mut(seq as usize) {
                        *slot = Some(Duration::from_nanos(now.saturating_sub(sent)));
                        got += 1;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(io_err("receiving", e)),
            }
        }
        match sender.join() {
            Ok(Ok(())) => Ok(rtts),
            Ok(Err(e)) => Err(io_err("sending", e)),
            Err(_) => Err(LinkError::Panicked("probe sender")),
        }
    })
}

/// Runs `probes` against an echo thread on `echo`: the probes' RTTs and the
/// count the echo socket received.
fn with_echo<T>(echo: &UdpSocket, probes: impl FnOnce() -> Result<T, LinkError>) -> Result<(T, u64), LinkError> {
    sys::set_recv_buffer(echo.as_raw_fd(), 8 << 20);
    let stop = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    std::thread::scope(|s| {
        let echoer = s.spawn(|| echo_loop(echo, &stop, &received));
        let result = probes();
        stop.store(true, Ordering::Relaxed);
        let echoed = echoer.join().map_err(|_| LinkError::Panicked("echo"))?;
        echoed.map_err(|e| LinkError::io("echoing probes", e))?;
        Ok((result?, received.load(Ordering::Relaxed)))
    })
}

/// Pings from client `plan.client` to the server namespace.
pub fn measure_rtt(link: &Link, plan: &RttPlan) -> Result<Rtt, LinkError> {
    let (echo, sock) = udp_pair(link, plan.client)?;
    let (rtts, _) =
        with_echo(&echo, || paced_probes(&sock, KIND_PING, plan.pings as u64, plan.interval, plan.timeout))?;
    let spec = link.spec();
    let expected = spec.rtt() + serialization(spec, PROBE_PACKET) * 2 + spec.jitter();
    Ok(Rtt::from_samples(expected, plan.pings as u64, rtts.into_iter().flatten().collect()))
}

/// Sends paced probes from client `plan.client` and counts what arrives
/// each way.
pub fn measure_loss(link: &Link, plan: &LossPlan) -> Result<Loss, LinkError> {
    let (echo, sock) = udp_pair(link, plan.client)?;
    let interval = Duration::from_nanos(1_000_000_000 / plan.rate_pps.max(1));
    let (rtts, at_server) = with_echo(&echo, || paced_probes(&sock, KIND_LOSS, plan.packets, interval, plan.timeout))?;
    let back = rtts.iter().filter(|r| r.is_some()).count() as u64;
    Ok(Loss {
        setting: link.spec().loss(),
        up: LossDirection::new(plan.packets, at_server),
        down: LossDirection::new(at_server, back),
    })
}

/// One TCP bulk transfer from client `plan.client` to the server namespace.
pub fn measure_throughput(link: &Link, plan: &ThroughputPlan) -> Result<Throughput, LinkError> {
    let server_ip = link.server_addr();
    let client_ip = link.client_addr(plan.client)?;
    let listener = run_in_netns(link.server_netns(), || TcpListener::bind(SocketAddr::new(server_ip, 0)))?;
    let addr = listener.local_addr().map_err(|e| LinkError::io("reading the listener's address", e))?;
    let connect_timeout = reply_timeout(link.spec()) * 3;
    let (mut sender, congestion_control) = run_in_netns(link.client_netns(plan.client)?, || {
        let cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")?.trim().to_owned();
        Ok((socket_bound_stream(client_ip, addr, connect_timeout)?, cc))
    })
    .map_err(|e| LinkError::Validation(format!("TCP connection through the link failed: {e}")))?;
    let (receiver, _) = listener.accept().map_err(|e| LinkError::io("accepting the TCP transfer", e))?;
    let mut reading = receiver.try_clone().map_err(|e| LinkError::io("cloning the TCP receiver", e))?;
    let received = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let received = &received;
    std::thread::scope(|s| -> Result<Throughput, LinkError> {
        let reader = s.spawn(move || -> io::Result<()> {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match reading.read(&mut buf)? {
                    0 => return Ok(()),
                    n => {
                        received.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        });
        let writer = s.spawn(|| -> io::Result<()> {
            let chunk = vec![0x5au8; 64 * 1024];
            // Bounded, so a stalled link cannot hold the writer forever.
            sender.set_write_timeout(Some(Duration::from_secs(2)))?;
            while !stop.load(Ordering::Relaxed) {
                match sender.write(&chunk) {
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    // Once stopped, the receiver closes on unread data:
                    // the resulting reset is the end, not a failure.
                    Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        std::thread::sleep(plan.warmup);
        let steal0 = steal_time();
        let (t0, b0, w0) = (Instant::now(), received.load(Ordering::Relaxed), up_bytes(link, plan.client));
        let mut slices = Vec::with_capacity(THROUGHPUT_SLICES as usize);
        let (mut t_prev, mut w_prev) = (t0, w0);
        for k in 1..=THROUGHPUT_SLICES {
            // Absolute deadlines: a late wake-up shortens the next slice
            // instead of stretching the window.
            std::thread::sleep((t0 + plan.window * k / THROUGHPUT_SLICES).saturating_duration_since(Instant::now()));
            let (t, w) = (Instant::now(), up_bytes(link, plan.client));
            slices.push((w - w_prev) as f64 * 8.0 / (t - t_prev).as_secs_f64().max(1e-9));
            (t_prev, w_prev) = (t, w);
        }
        let (t1, b1, w1) = (t_prev, received.load(Ordering::Relaxed), w_prev);
        let steal = steal_time().zip(steal0).map(|(b, a)| b.saturating_sub(a));
        stop.store(true, Ordering::Relaxed);
        // Do not wait for the sender's buffers to drain through the link (at
        // a slow rate that takes minutes): end the reader now, and close the
        // connection under the writer.
        let _ = receiver.shutdown(std::net::Shutdown::Read);
        let read = reader.join().map_err(|_| LinkError::Panicked("TCP receiver"))?;
        drop(receiver);
        let wrote = writer.join().map_err(|_| LinkError::Panicked("TCP sender"))?;
        wrote.map_err(|e| LinkError::io("sending the TCP transfer", e))?;
        read.map_err(|e| LinkError::io("receiving the TCP transfer", e))?;
        let window = t1 - t0;
        let secs = window.as_secs_f64();
        Ok(Throughput {
            setting_bps: link.spec().rate_bps(),
            goodput_bps: (b1 - b0) as f64 * 8.0 / secs,
            wire_bps: (w1 - w0) as f64 * 8.0 / secs,
            wire_bps_median: {
                slices.sort_by(f64::total_cmp);
                quantile(&slices, 0.5).unwrap_or(0.0)
            },
            steal,
            bytes: b1 - b0,
            window,
            congestion_control,
        })
    })
}

/// How many equal slices [`measure_throughput`] cuts its window into.
pub const THROUGHPUT_SLICES: u32 = 30;

/// Steal time so far, summed over CPUs, from the first line of
/// `/proc/stat` (its eighth value, in clock ticks).
fn steal_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_steal(&stat, sys::clock_ticks_per_second()?)
}

fn parse_steal(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let line = stat.lines().next()?;
    let mut fields = line.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: u64 = fields.nth(7)?.parse().ok()?;
    Some(Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1)))
}

fn up_bytes(link: &Link, client: usize) -> u64 {
    link.stats().up.get(client).map_or(0, |c| c.forwarded_bytes)
}

/// A TCP stream from `local` to `remote` (binding the client's address, so
/// the source is explicit rather than chosen by routing).
fn socket_bound_stream(local: IpAddr, remote: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    // std cannot bind before connecting; in a client namespace the only
    // route to the server leaves from the client's address anyway, so a
    // plain connect has the same source. Check it rather than assume it.
    let stream = TcpStream::connect_timeout(&remote, timeout)?;
    let source = stream.local_addr()?.ip();
    if source != local {
        return Err(io::Error::other(format!("connected from {source}, not the client's address {local}")));
    }
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The packet rate a link forwarded under a UDP flood.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacketRate {
    /// Probes the client's socket accepted.
    pub sent: u64,
    /// Probes the server's socket received.
    pub received: u64,
    /// Packets per second the emulator forwarded client to server.
    pub forwarded_pps: f64,
    /// Packets the kernel dropped in full TUN queues meanwhile.
    pub device_drops: u64,
    /// The forwarder's CPU time meanwhile.
    pub forwarder_cpu: Duration,
    /// The flood's length.
    pub duration: Duration,
}

/// Floods the link with 64-byte UDP packets from client `client` for
/// `duration`, as fast as one sending thread can: what the forwarder
/// sustains (on an unlimited link, its own ceiling).
pub fn measure_packet_rate(link: &Link, client: usize, duration: Duration) -> Result<PacketRate, LinkError> {
    let (echo, sock) = udp_pair(link, client)?;
    sys::set_recv_buffer(echo.as_raw_fd(), 8 << 20);
    echo.set_read_timeout(Some(Duration::from_millis(20))).map_err(|e| LinkError::io("setting a timeout", e))?;
    let drops_before = device_drops(link)?;
    let before = link.stats();
    let stop = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let (sent, elapsed, forwarded) = std::thread::scope(|s| -> Result<(u64, Duration, u64), LinkError> {
        let counter = s.spawn(|| -> io::Result<()> {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                match echo.recv(&mut buf) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        let start = Instant::now();
        let up_before = before.up.get(client).map_or(0, |c| c.forwarded);
        let mut sent = 0u64;
        let payload = [0u8; PROBE_PAYLOAD];
        let mut result = Ok(());
        while start.elapsed() < duration {
            match sock.send(&payload) {
                Ok(_) => sent += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) || e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    result = Err(LinkError::io("flooding the link", e));
                    break;
                }
            }
        }
        let elapsed = start.elapsed();
        let forwarded = link.stats().up.get(client).map_or(0, |c| c.forwarded) - up_before;
        // Let the last packets arrive before the count stops.
        std::thread::sleep(link.spec().one_way() + link.spec().jitter() + Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        counter
            .join()
            .map_err(|_| LinkError::Panicked("flood receiver"))?
            .map_err(|e| LinkError::io("counting the flood", e))?;
        result.map(|()| (sent, elapsed, forwarded))
    })?;
    let after = link.stats();
    Ok(PacketRate {
        sent,
        received: received.load(Ordering::Relaxed),
        forwarded_pps: forwarded as f64 / elapsed.as_secs_f64(),
        device_drops: device_drops(link)?.saturating_sub(drops_before),
        forwarder_cpu: after.forwarder_cpu.saturating_sub(before.forwarder_cpu),
        duration: elapsed,
    })
}

/// The emulator's own latency: a temporary `rtt=0ms` link with one client,
/// pinged through and compared with loopback in its server namespace.
pub fn measure_emulator_latency(seed: u64) -> Result<EmulatorLatency, LinkError> {
    let link = Link::up(&LinkSpec::ZERO, 1, seed)?;
    let plan = RttPlan { client: 0, pings: 300, interval: Duration::from_millis(1), timeout: Duration::from_secs(1) };
    let through = measure_rtt(&link, &plan)?;
    let loopback_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (echo, sock) = run_in_netns(link.server_netns(), || {
        let echo = UdpSocket::bind(SocketAddr::new(loopback_ip, 0))?;
        let sock = UdpSocket::bind(SocketAddr::new(loopback_ip, 0))?;
        sock.connect(echo.local_addr()?)?;
        Ok((echo, sock))
    })?;
    let (rtts, _) =
        with_echo(&echo, || paced_probes(&sock, KIND_PING, plan.pings as u64, plan.interval, plan.timeout))?;
    let loopback = Rtt::from_samples(Duration::ZERO, plan.pings as u64, rtts.into_iter().flatten().collect());
    link.teardown()?;
    let (Some(through_link), Some(loopback)) = (through.p50, loopback.p50) else {
        return Err(LinkError::Validation("no ping came back through a zero link or over loopback".to_owned()));
    };
    Ok(EmulatorLatency { through_link, loopback, added: through_link.saturating_sub(loopback) })
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn mbit(bps: f64) -> String {
    format!("{:.1} Mbit/s", bps / 1e6)
}

fn pct(p: f64) -> String {
    format!("{:.3}%", p * 100.0)
}

/// A few lines for a log: each figure, its setting and their ratio.
impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "link {}", self.spec)?;
        let r = &self.rtt;
        match (r.p50, r.p99) {
            (Some(p50), Some(p99)) => writeln!(
                f,
                "  rtt p50 {} p99 {} over {} of {} pings (expected {}, p50 ×{:.3})",
                ms(p50),
                ms(p99),
                r.received,
                r.sent,
                ms(r.expected),
                if r.expected.is_zero() { f64::NAN } else { p50.as_secs_f64() / r.expected.as_secs_f64() }
            )?,
            _ => writeln!(f, "  rtt: none of {} pings came back", r.sent)?,
        }
        for (name, d) in [("up", &self.loss.up), ("down", &self.loss.down)] {
            writeln!(
                f,
                "  loss {name} {} of {} (99%: {} to {}; setting {})",
                pct(d.rate),
                d.sent,
                pct(d.interval.0),
                pct(d.interval.1),
                pct(self.loss.setting)
            )?;
        }
        let t = &self.throughput;
        let setting = t.setting_bps.map_or("unlimited".to_owned(), |b| mbit(b as f64));
        let ratio = t.setting_bps.map_or(String::new(), |b| {
            format!(", wire ×{:.3}, median slice ×{:.3}", t.wire_bps / b as f64, t.wire_bps_median / b as f64)
        });
        writeln!(
            f,
            "  tcp ({}) {} goodput, {} on the wire (setting {setting}{ratio})",
            t.congestion_control,
            mbit(t.goodput_bps),
            mbit(t.wire_bps)
        )?;
        let e = &self.emulator;
        writeln!(
            f,
            "  emulator adds {} at zero delay ({} through it, {} over loopback)",
            ms(e.added),
            ms(e.through_link),
            ms(e.loopback)
        )?;
        let per_packet = if self.forwarded_packets == 0 {
            Duration::ZERO
        } else {
            self.forwarder_cpu / self.forwarded_packets.min(u64::from(u32::MAX)) as u32
        };
        write!(
            f,
            "  forwarder cpu {} for {} packets ({:.2} µs each), {} dropped by full TUN queues; validation took {:.1} s",
            ms(self.forwarder_cpu),
            self.forwarded_packets,
            per_packet.as_secs_f64() * 1e6,
            self.device_drops,
            self.elapsed.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_scale_with_the_spec() {
        let wan: LinkSpec = "wan".parse().unwrap();
        let rtt = RttPlan::for_spec(&wan, 0);
        assert_eq!(rtt.interval, Duration::from_millis(1));
        assert_eq!(rtt.pings, 500);
        assert!(rtt.timeout > Duration::from_millis(40));
        let slow: LinkSpec = "rate=10kbit".parse().unwrap();
        let rtt = RttPlan::for_spec(&slow, 0);
        // 64 bytes at 10 kbit/s take 51.2 ms, so pings go 102.4 ms apart.
        assert_eq!(rtt.interval, Duration::from_micros(102_400));
        assert_eq!(rtt.pings, 9);
        assert_eq!(RttPlan::for_spec(&"rate=1kbit".parse().unwrap(), 0).pings, 5);
        let loss = LossPlan::for_spec(&wan, 0);
        assert_eq!((loss.rate_pps, loss.packets), (20_000, 20_000));
        let loss = LossPlan::for_spec(&"rate=1mbit".parse().unwrap(), 0);
        assert_eq!((loss.rate_pps, loss.packets), (976, 1_952));
        let loss = LossPlan::for_spec(&"rate=1kbit".parse().unwrap(), 0);
        assert_eq!((loss.rate_pps, loss.packets), (1, 10));
        let t = ThroughputPlan::for_spec(&wan, 0);
        assert_eq!((t.warmup, t.window), (Duration::from_millis(320), Duration::from_secs(1)));
        let far = ThroughputPlan::for_spec(&"rtt=10s".parse().unwrap(), 0);
        assert_eq!((far.warmup, far.window), (Duration::from_secs(3), Duration::from_secs(5)));
    }

    #[test]
    fn loss_direction_of_nothing_sent() {
        let d = LossDirection::new(0, 0);
        assert_eq!(d.rate, 0.0);
        assert_eq!(d.interval, (0.0, 1.0));
        let d = LossDirection::new(10_000, 9_900);
        assert!((d.rate - 0.01).abs() < 1e-12);
        assert!(d.contains(0.01) && !d.contains(0.02));
    }

    #[test]
    fn steal_is_the_eighth_value_of_the_cpu_line() {
        let stat = "cpu  858389 33 109971 2341260 35492 0 7350 12525 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_steal(stat, 100), Some(Duration::from_millis(125_250)));
        assert_eq!(parse_steal("cpu  1 2 3 4 5 6 7\n", 100), None, "a kernel without the field");
        assert_eq!(parse_steal("cpu0 1 2 3 4 5 6 7 8\n", 100), None, "not the summary line");
        assert_eq!(parse_steal("cpu  1 2 3 4 5 6 7 x\n", 100), None);
        assert_eq!(parse_steal("", 100), None);
    }
}
