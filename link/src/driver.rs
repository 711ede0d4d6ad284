//! The driver: namespaces, TUN devices and the forwarding thread.
//!
//! Topology: one server namespace and K client namespaces, each with one
//! TUN device `wbtun` (MTU 1500, `txqueuelen` 10000, IPv6 off, loopback
//! up). The server is `10.201.0.1`, client `i` is `10.201.1.(i+1)`; every
//! namespace routes `10.201.0.0/16` into its TUN. One forwarding thread
//! holds every TUN descriptor: what client `i` sends goes through its
//! uplink queue to the server's TUN; what the server sends is routed by its
//! IPv4 destination to that client's downlink queue. Clients reach only the
//! server, not each other.
//!
//! The forwarder waits in `epoll` on the TUN descriptors, a stop eventfd
//! and one `timerfd` armed at the absolute time of the earliest departure
//! (`TFD_TIMER_ABSTIME` on `CLOCK_MONOTONIC`, the queues' clock), with the
//! thread's timer slack at 1 ns.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::LinkError;
use crate::netns::{self, enter_netns, netns_path};
use crate::queue::{Counters, DirectionConfig, LinkQueue, Verdict};
use crate::rng::SplitMix64;
use crate::spec::LinkSpec;
use crate::sys::{self, Epoll, Event, Timer};

/// The link's MTU: Ethernet's, so TCP segments and the udp transport's
/// default datagram limit are what they are on a real network.
pub const MTU: usize = 1500;

/// The TUN queue length: the default 500 drops bursts (a TCP window at
/// 200 Mbit/s) inside the sending namespace, silently, before the emulator
/// ever sees them.
pub const TXQUEUELEN: u32 = 10_000;

/// The most clients the address plan holds (`10.201.1.1` to `10.201.1.250`).
pub const MAX_CLIENTS: usize = 250;

/// The TUN device's name in every namespace.
pub const TUN_NAME: &str = "wbtun";

const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const FIRST_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 1);
const ROUTE: &str = "10.201.0.0/16";

/// A packet buffer's size: an MTU-sized packet and room to notice a larger
/// one (which offloads off should make impossible).
const BUFFER: usize = 2048;
/// Packets read from one TUN per wake-up before the others get their turn.
const READ_BATCH: usize = 64;
/// Free buffers kept for reuse.
const POOL_MAX: usize = 4096;

const TOKEN_STOP: u64 = 0;
const TOKEN_TIMER: u64 = 1;
const TOKEN_SERVER: u64 = 2;
const TOKEN_CLIENT0: u64 = 3;

/// One side of a link for [`Link::client_addr`] and friends.
fn client_addr_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST_CLIENT) + i as u32)
}

/// What the whole link did so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// Per client: client to server.
    pub up: Vec<Counters>,
    /// Per client: server to client.
    pub down: Vec<Counters>,
    /// Packets from the server to an address that is no client's (or not
    /// IPv4), dropped.
    pub unroutable: u64,
    /// Packets larger than the MTU read from a TUN, dropped (offloads off
    /// should keep this 0).
    pub oversize: u64,
    /// Failed writes into a TUN (the packet is lost).
    pub write_errors: u64,
    /// Failed reads from a TUN (the device is then no longer watched).
    pub read_errors: u64,
    /// Departures written, and how late after their departure time in
    /// total and at most: the emulator's own timing error.
    pub departures: u64,
    /// Sum of the lateness of every departure.
    pub late_total: Duration,
    /// The latest departure.
    pub late_max: Duration,
    /// The forwarding thread's CPU time (user + system, from its CPU clock).
    pub forwarder_cpu: Duration,
    /// The forwarding thread's user time (from `/proc`, in clock ticks).
    pub forwarder_user: Duration,
    /// The forwarding thread's system time (from `/proc`, in clock ticks).
    pub forwarder_system: Duration,
    /// Why the forwarder stopped, if it stopped on an error.
    pub forwarder_error: Option<String>,
}

impl LinkStats {
    /// Every direction's counters added up.
    pub fn total(&self) -> Counters {
        let mut t = Counters::default();
        for c in self.up.iter().chain(&self.down) {
            t.forwarded += c.forwarded;
            t.forwarded_bytes += c.forwarded_bytes;
            t.lost += c.lost;
            t.lost_bytes += c.lost_bytes;
            t.queue_dropped += c.queue_dropped;
            t.queue_dropped_bytes += c.queue_dropped_bytes;
            t.limit_dropped += c.limit_dropped;
            t.limit_dropped_bytes += c.limit_dropped_bytes;
        }
        t
    }
}

/// The kernel's view of one TUN device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Packets the namespace received (the emulator wrote).
    pub rx_packets: u64,
    /// Packets the namespace sent (the emulator read, or was to).
    pub tx_packets: u64,
    /// Packets dropped on the way in.
    pub rx_dropped: u64,
    /// Packets dropped on the way out: the TUN queue was full.
    pub tx_dropped: u64,
}

impl DeviceCounters {
    /// The line of `device` in a `/proc/net/dev` text.
    fn parse(text: &str, device: &str) -> Option<DeviceCounters> {
        let line = text.lines().find_map(|l| l.trim_start().strip_prefix(device)?.strip_prefix(':'))?;
        let f: Vec<u64> = line.split_whitespace().map(|v| v.parse().ok()).collect::<Option<_>>()?;
        // Receive: bytes packets errs drop fifo frame compressed multicast;
        // then transmit: bytes packets errs drop fifo colls carrier compressed.
        Some(DeviceCounters {
            rx_packets: *f.get(1)?,
            rx_dropped: *f.get(3)?,
            tx_packets: *f.get(9)?,
            tx_dropped: *f.get(11)?,
        })
    }
}

/// Counters the forwarder publishes and [`Link::stats`] reads.
#[derive(Debug, Default)]
struct AtomicCounters([AtomicU64; 8]);

impl AtomicCounters {
    fn store(&self, c: &Counters) {
        let values = [
            c.forwarded,
            c.forwarded_bytes,
            c.lost,
            c.lost_bytes,
            c.queue_dropped,
            c.queue_dropped_bytes,
            c.limit_dropped,
            c.limit_dropped_bytes,
        ];
        for (a, v) in self.0.iter().zip(values) {
            a.store(v, Ordering::Relaxed);
        }
    }

    fn load(&self) -> Counters {
        let v: Vec<u64> = self.0.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        Counters {
            forwarded: v[0],
            forwarded_bytes: v[1],
            lost: v[2],
            lost_bytes: v[3],
            queue_dropped: v[4],
            queue_dropped_bytes: v[5],
            limit_dropped: v[6],
            limit_dropped_bytes: v[7],
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    up: Vec<AtomicCounters>,
    down: Vec<AtomicCounters>,
    unroutable: AtomicU64,
    oversize: AtomicU64,
    write_errors: AtomicU64,
    read_errors: AtomicU64,
    departures: AtomicU64,
    late_total_ns: AtomicU64,
    late_max_ns: AtomicU64,
    tid: AtomicU32,
    error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct State {
    forwarder: Option<JoinHandle<()>>,
    stop: Option<Event>,
    cpu_clock: Option<libc::clockid_t>,
    /// The forwarder's CPU when it stopped (its clock dies with it).
    final_cpu: Option<(Duration, Duration, Duration)>,
    torn_down: bool,
}

#[derive(Debug)]
struct Inner {
    spec: LinkSpec,
    seed: u64,
    names: Vec<String>,
    paths: Vec<PathBuf>,
    shared: Arc<Shared>,
    state: Mutex<State>,
}

/// An emulated link: namespaces, TUN devices and the forwarder, removed on
/// drop, on [`Link::teardown`], or by [`teardown_all`] from a signal path.
#[derive(Debug)]
pub struct Link {
    inner: Arc<Inner>,
}

/// A handle that can tear a link down from elsewhere (a signal path)
/// without owning it.
#[derive(Debug, Clone)]
pub struct TeardownHandle(Weak<Inner>);

impl TeardownHandle {
    /// Tears the link down if it is still up.
    pub fn teardown(&self) -> Result<(), LinkError> {
        match self.0.upgrade() {
            Some(inner) => inner.teardown(),
            None => Ok(()),
        }
    }
}

/// Every link of this process still up, for [`teardown_all`].
static LIVE: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
/// Tells apart the links of one process.
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind
    // (flags, handles); teardown must still run, so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tears down every link of this process: what a SIGINT or SIGTERM path
/// calls before exiting. Takes locks and runs `ip`, so it is not for a raw
/// signal handler: call it from a thread that waits for the signal (e.g. a
/// `tokio::signal` task). Returns the first error after trying them all.
pub fn teardown_all() -> Result<(), LinkError> {
    let links: Vec<Arc<Inner>> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
    let mut first = Ok(());
    for link in links {
        if let Err(e) = link.teardown()
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

/// Removes, when dropped, the namespaces of a link still being built, so a
/// failure or a panic half-way leaves nothing behind.
struct Building {
    names: Vec<String>,
    armed: bool,
}

impl Drop for Building {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = netns::delete_all(&self.names)
        {
            eprintln!("wirebench-link: cleaning up a link that failed to come up: {e}");
        }
    }
}

impl Link {
    /// Brings up a link of `spec` between one server namespace and `clients`
    /// client namespaces, each client with its own pair of queues, losses
    /// and jitter drawn from `seed`. Removes the leftovers of dead
    /// processes first. Needs what [`crate::check_available`] checks.
    pub fn up(spec: &LinkSpec, clients: usize, seed: u64) -> Result<Link, LinkError> {
        if !(1..=MAX_CLIENTS).contains(&clients) {
            return Err(LinkError::Clients { requested: clients, max: MAX_CLIENTS });
        }
        crate::netns::check_available()?;
        netns::remove_stale()?;

        let pid = std::process::id();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let mut names = vec![format!("wb{pid}n{seq}s")];
        names.extend((0..clients).map(|i| format!("wb{pid}n{seq}c{i}")));
        let paths: Vec<PathBuf> = names.iter().map(|n| netns_path(n)).collect();
        let mut building = Building { names: names.clone(), armed: true };

        netns::add_all(&names)?;
        let tuns = open_tuns(&paths)?;
        configure(&names)?;

        let forwarder = Forwarder::new(spec, seed, tuns)?;
        let shared = Arc::clone(&forwarder.shared);
        let stop = Event::new().map_err(|e| LinkError::io("creating the forwarder's stop eventfd", e))?;
        let stop_fd = stop.fd();
        forwarder
            .epoll
            .add(stop_fd, TOKEN_STOP)
            .map_err(|e| LinkError::io("watching the forwarder's stop eventfd", e))?;
        let handle = std::thread::Builder::new()
            .name("wirebench-link".to_owned())
            .spawn(move || forwarder.run())
            .map_err(|e| LinkError::io("starting the forwarding thread", e))?;
        let cpu_clock = sys::thread_cpu_clock(handle.as_pthread_t()).ok();

        let inner = Arc::new(Inner {
            spec: *spec,
            seed,
            names,
            paths,
            shared,
            state: Mutex::new(State {
                forwarder: Some(handle),
                // The eventfd stays open as long as the state: the forwarder
                // watches its descriptor number.
                stop: Some(stop),
                cpu_clock,
                final_cpu: None,
                torn_down: false,
            }),
        });
        building.armed = false;
        let mut live = lock(&LIVE);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&inner));
        Ok(Link { inner })
    }

    /// The spec the link runs with.
    pub fn spec(&self) -> &LinkSpec {
        &self.inner.spec
    }

    /// The seed of its losses and jitter.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// How many client namespaces it has.
    pub fn clients(&self) -> usize {
        self.inner.paths.len() - 1
    }

    /// The server's namespace (`/run/netns/NAME`), for [`enter_netns`] or
    /// [`crate::command_in_netns`].
    pub fn server_netns(&self) -> &Path {
        &self.inner.paths[0]
    }

    /// Client `i`'s namespace.
    pub fn client_netns(&self, i: usize) -> Result<&Path, LinkError> {
        self.inner
            .paths
            .get(i + 1)
            .map(PathBuf::as_path)
            .ok_or(LinkError::NoSuchClient { index: i, clients: self.clients() })
    }

    /// Every namespace's name, the server's first.
    pub fn netns_names(&self) -> &[String] {
        &self.inner.names
    }

    /// The server's address, reachable from every client namespace.
    pub fn server_addr(&self) -> IpAddr {
        IpAddr::V4(SERVER_ADDR)
    }

    /// Client `i`'s address (the source of its packets).
    pub fn client_addr(&self, i: usize) -> Result<IpAddr, LinkError> {
        if i >= self.clients() {
            return Err(LinkError::NoSuchClient { index: i, clients: self.clients() });
        }
        Ok(IpAddr::V4(client_addr_v4(i)))
    }

    /// What the link did so far, and the forwarder's CPU time.
    pub fn stats(&self) -> LinkStats {
        let s = &self.inner.shared;
        let (cpu, user, system) = self.inner.forwarder_cpu();
        LinkStats {
            up: s.up.iter().map(AtomicCounters::load).collect(),
            down: s.down.iter().map(AtomicCounters::load).collect(),
            unroutable: s.unroutable.load(Ordering::Relaxed),
            oversize: s.oversize.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            read_errors: s.read_errors.load(Ordering::Relaxed),
            departures: s.departures.load(Ordering::Relaxed),
            late_total: Duration::from_nanos(s.late_total_ns.load(Ordering::Relaxed)),
            late_max: Duration::from_nanos(s.late_max_ns.load(Ordering::Relaxed)),
            forwarder_cpu: cpu,
            forwarder_user: user,
            forwarder_system: system,
            forwarder_error: lock(&s.error).clone(),
        }
    }

    /// The kernel's counters of each namespace's TUN device, the server's
    /// first (from `/proc/net/dev` inside each namespace). `tx_dropped`
    /// counts packets the kernel dropped because the forwarder did not read
    /// them in time: losses that are the emulator's, not the link's.
    pub fn device_counters(&self) -> Result<Vec<DeviceCounters>, LinkError> {
        self.inner
            .paths
            .iter()
            .map(|path| {
                let text =
                    crate::validate::run_in_netns(path, || std::fs::read_to_string("/proc/thread-self/net/dev"))?;
                DeviceCounters::parse(&text, TUN_NAME).ok_or_else(|| {
                    LinkError::io(
                        format!("reading {TUN_NAME}'s counters in {}", path.display()),
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "no such line in /proc/net/dev"),
                    )
                })
            })
            .collect()
    }

    /// A handle for tearing the link down from a signal path.
    pub fn teardown_handle(&self) -> TeardownHandle {
        TeardownHandle(Arc::downgrade(&self.inner))
    }

    /// Stops the forwarder (its TUN devices go with their descriptors) and
    /// deletes every namespace. Idempotent; also done on drop.
    pub fn teardown(&self) -> Result<(), LinkError> {
        self.inner.teardown()
    }

    /// Whether [`Link::teardown`] ran.
    pub fn is_torn_down(&self) -> bool {
        lock(&self.inner.state).torn_down
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Err(e) = self.inner.teardown() {
            eprintln!("wirebench-link: {e}");
        }
    }
}

impl Inner {
    fn teardown(&self) -> Result<(), LinkError> {
        let mut state = lock(&self.state);
        if state.torn_down {
            return Ok(());
        }
        state.torn_down = true;
        state.final_cpu = Some(self.read_cpu(&state));
        let signalled = match &state.stop {
            Some(stop) => match stop.signal() {
                Ok(()) => true,
                Err(e) => {
                    *lock(&self.shared.error) = Some(format!("cannot signal the forwarder to stop: {e}"));
                    false
                }
            },
            None => false,
        };
        if let Some(handle) = state.forwarder.take() {
            // Unsignalled, the join would hang; the forwarder then lives until
            // the process exits, and the namespaces still go.
            if signalled && handle.join().is_err() {
                *lock(&self.shared.error) = Some("the forwarding thread panicked".to_owned());
            }
        }
        state.stop = None;
        state.cpu_clock = None;
        // The namespaces go with the lock held: a second caller (the
        // second Ctrl-C's teardown, which exits right after) waits for
        // them instead of seeing `torn_down` and leaving them half-deleted.
        let deleted = netns::delete_all(&self.names);
        drop(state);
        deleted
    }

    fn forwarder_cpu(&self) -> (Duration, Duration, Duration) {
        let state = lock(&self.state);
        match state.final_cpu {
            Some(cpu) => cpu,
            None => self.read_cpu(&state),
        }
    }

    fn read_cpu(&self, state: &State) -> (Duration, Duration, Duration) {
        let total = state.cpu_clock.and_then(|c| sys::cpu_clock_time(c).ok()).unwrap_or_default();
        let tid = self.shared.tid.load(Ordering::Relaxed);
        let (user, system) = if tid == 0 { (Duration::ZERO, Duration::ZERO) } else { proc_thread_times(tid) };
        (total, user, system)
    }
}

/// User and system time of thread `tid` of this process from
/// `/proc/self/task/TID/stat` (fields 14 and 15, in clock ticks).
fn proc_thread_times(tid: u32) -> (Duration, Duration) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    // The command name (field 2) may contain spaces; fields after it are
    // counted from its closing parenthesis.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf only reads its argument.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After ")": state is field 3, so utime (14) is index 11, stime (15) 12.
    let to_duration = |t: u64| Duration::from_nanos(t.saturating_mul(1_000_000_000) / hz);
    (to_duration(ticks(11)), to_duration(ticks(12)))
}

/// Disables IPv6 and opens the TUN device in each namespace, from a thread
/// of its own that enters each in turn and goes back: whatever happens, no
/// caller's thread changes namespace.
fn open_tuns(paths: &[PathBuf]) -> Result<Vec<OwnedFd>, LinkError> {
    let paths = paths.to_vec();
    let worker = std::thread::Builder::new()
        .name("wirebench-link-setup".to_owned())
        .spawn(move || -> Result<Vec<OwnedFd>, LinkError> {
            let mut fds = Vec::with_capacity(paths.len());
            for path in &paths {
                let guard = enter_netns(path)?;
                disable_ipv6(path)?;
                let fd = sys::open_tun(TUN_NAME)
                    .map_err(|e| LinkError::io(format!("creating TUN device {TUN_NAME} in {}", path.display()), e))?;
                fds.push(fd);
                guard.leave()?;
            }
            Ok(fds)
        })
        .map_err(|e| LinkError::io("starting the namespace set-up thread", e))?;
    worker.join().map_err(|_| LinkError::Panicked("namespace set-up"))?
}

/// Turns IPv6 off in the calling thread's namespace, for interfaces that
/// exist (`all`) and that will (`default`): router solicitations and
/// link-local traffic would otherwise cross the link and skew its counts.
/// `/proc/sys/net` shows the namespace of the thread that opens it.
fn disable_ipv6(path: &Path) -> Result<(), LinkError> {
    for scope in ["all", "default"] {
        let file = format!("/proc/sys/net/ipv6/conf/{scope}/disable_ipv6");
        match std::fs::write(&file, "1") {
            Ok(()) => {}
            // A kernel without IPv6 has nothing to disable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LinkError::io(format!("writing {file} in {}", path.display()), e)),
        }
    }
    Ok(())
}

/// Addresses, routes, MTU, queue length and links up, one `ip -batch` per
/// namespace.
fn configure(names: &[String]) -> Result<(), LinkError> {
    for (i, name) in names.iter().enumerate() {
        let addr = if i == 0 { SERVER_ADDR } else { client_addr_v4(i - 1) };
        let batch = format!(
            "link set dev lo up\n\
             link set dev {TUN_NAME} mtu {MTU} txqueuelen {TXQUEUELEN} up\n\
             addr add {addr}/32 dev {TUN_NAME}\n\
             route add {ROUTE} dev {TUN_NAME} src {addr}\n"
        );
        netns::ip(&["-n", name, "-batch", "-"], Some(&batch))?;
    }
    Ok(())
}

/// A packet in a queue: a fixed buffer and the length of the packet in it
/// (buffers are reused without clearing: only `len` bytes are ever read).
#[derive(Debug)]
struct Packet {
    buf: Box<[u8; BUFFER]>,
    len: usize,
}

impl Packet {
    fn new() -> Packet {
        Packet { buf: Box::new([0; BUFFER]), len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The forwarding thread's state: every TUN, every queue.
struct Forwarder {
    epoll: Epoll,
    timer: Timer,
    server: OwnedFd,
    clients: Vec<OwnedFd>,
    up: Vec<LinkQueue<Packet>>,
    down: Vec<LinkQueue<Packet>>,
    pool: Vec<Packet>,
    shared: Arc<Shared>,
    armed: Option<u64>,
    unwatched: Vec<bool>,
    /// Clients whose queues changed since the last publish (with K clients,
    /// publishing all of them on every wake-up would cost more than the
    /// packets).
    dirty: Vec<bool>,
    dirty_list: Vec<usize>,
}

impl Forwarder {
    fn new(spec: &LinkSpec, seed: u64, mut tuns: Vec<OwnedFd>) -> Result<Forwarder, LinkError> {
        let server = tuns.remove(0);
        let clients = tuns;
        let config = DirectionConfig::from_spec(spec);
        let queue = |k: u64| LinkQueue::new(config, SplitMix64::stream(seed, k), SplitMix64::stream(seed, k + 1));
        // Streams 4i, 4i+1: client i's uplink loss and jitter; 4i+2, 4i+3:
        // its downlink's.
        let up = (0..clients.len() as u64).map(|i| queue(4 * i)).collect();
        let down = (0..clients.len() as u64).map(|i| queue(4 * i + 2)).collect();
        let epoll = Epoll::new().map_err(|e| LinkError::io("creating the forwarder's epoll", e))?;
        let timer = Timer::new().map_err(|e| LinkError::io("creating the forwarder's timerfd", e))?;
        let watch = |fd: i32, token: u64| epoll.add(fd, token).map_err(|e| LinkError::io("watching a TUN device", e));
        watch(timer.fd(), TOKEN_TIMER)?;
        watch(server.as_raw_fd(), TOKEN_SERVER)?;
        for (i, fd) in clients.iter().enumerate() {
            watch(fd.as_raw_fd(), TOKEN_CLIENT0 + i as u64)?;
        }
        let shared = Arc::new(Shared {
            up: (0..clients.len()).map(|_| AtomicCounters::default()).collect(),
            down: (0..clients.len()).map(|_| AtomicCounters::default()).collect(),
            ..Shared::default()
        });
        let unwatched = vec![false; clients.len() + 1];
        let dirty = vec![false; clients.len()];
        Ok(Forwarder {
            epoll,
            timer,
            server,
            clients,
            up,
            down,
            pool: Vec::new(),
            shared,
            armed: None,
            unwatched,
            dirty,
            dirty_list: Vec::new(),
        })
    }

    fn run(mut self) {
        self.shared.tid.store(sys::gettid() as u32, Ordering::Relaxed);
        sys::tighten_timer_slack();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            self.deliver(sys::monotonic_ns());
            self.publish_dirty();
            if let Err(e) = self.arm() {
                self.fail(format!("arming the timerfd: {e}"));
                return;
            }
            let n = match self.epoll.wait(&mut events) {
                Ok(n) => n,
                Err(e) => {
                    self.fail(format!("epoll_wait: {e}"));
                    return;
                }
            };
            for event in &events[..n] {
                match event.u64 {
                    TOKEN_STOP => return,
                    TOKEN_TIMER => {
                        self.timer.clear();
                        self.armed = None;
                    }
                    TOKEN_SERVER => self.read_from(None),
                    token => self.read_from(Some((token - TOKEN_CLIENT0) as usize)),
                }
            }
        }
    }

    fn fail(&mut self, message: String) {
        self.publish_dirty();
        *lock(&self.shared.error) = Some(message);
    }

    /// Reads up to a batch of packets from the server's TUN (`None`) or
    /// client `i`'s, and queues each on its direction.
    fn read_from(&mut self, client: Option<usize>) {
        let slot = client.map_or(0, |i| i + 1);
        let fd = match client {
            None => self.server.as_raw_fd(),
            Some(i) => match self.clients.get(i) {
                Some(fd) => fd.as_raw_fd(),
                None => return,
            },
        };
        for _ in 0..READ_BATCH {
            let mut buf = self.pool.pop().unwrap_or_else(Packet::new);
            let n = match sys::read_nonblocking(fd, &mut buf.buf[..]) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.recycle(buf);
                    return;
                }
                Err(_) => {
                    // A TUN that fails to read would wake us forever
                    // (level-triggered); stop watching it and say so.
                    self.shared.read_errors.fetch_add(1, Ordering::Relaxed);
                    if !self.unwatched[slot] {
                        self.unwatched[slot] = true;
                        let _ = self.epoll.remove(fd);
                    }
                    self.recycle(buf);
                    return;
                }
            };
            if n > MTU {
                self.shared.oversize.fetch_add(1, Ordering::Relaxed);
                self.recycle(buf);
                continue;
            }
            buf.len = n;
            let now = sys::monotonic_ns();
            let (i, queue) = match client {
                Some(i) => (i, &mut self.up[i]),
                None => match self.route(buf.bytes()) {
                    Some(i) => (i, &mut self.down[i]),
                    None => {
                        self.shared.unroutable.fetch_add(1, Ordering::Relaxed);
                        self.recycle(buf);
                        continue;
                    }
                },
            };
            let verdict = queue.push(now, n, buf);
            self.mark(i);
            match verdict {
                Verdict::Queued { .. } => {}
                Verdict::Lost(b) | Verdict::QueueDrop(b) | Verdict::Full(b) => self.recycle(b),
            }
        }
    }

    /// The client a packet from the server is for, by IPv4 destination.
    fn route(&self, packet: &[u8]) -> Option<usize> {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return None;
        }
        let dst = u32::from_be_bytes([packet[16], packet[17], packet[18], packet[19]]);
        let i = dst.checked_sub(u32::from(FIRST_CLIENT))? as usize;
        (i < self.down.len()).then_some(i)
    }

    /// Writes every packet whose departure time has come.
    fn deliver(&mut self, now: u64) {
        for i in 0..self.up.len() {
            let mut moved = false;
            while let Some(departure) = self.up[i].next_departure().filter(|&d| d <= now) {
                if let Some(packet) = self.up[i].pop(now) {
                    let fd = self.server.as_raw_fd();
                    self.write(fd, packet, departure);
                    moved = true;
                }
            }
            while let Some(departure) = self.down[i].next_departure().filter(|&d| d <= now) {
                if let Some(packet) = self.down[i].pop(now) {
                    let fd = self.clients[i].as_raw_fd();
                    self.write(fd, packet, departure);
                    moved = true;
                }
            }
            if moved {
                self.mark(i);
            }
        }
    }

    fn mark(&mut self, client: usize) {
        if !self.dirty[client] {
            self.dirty[client] = true;
            self.dirty_list.push(client);
        }
    }

    fn write(&mut self, fd: i32, packet: Packet, departure: u64) {
        if sys::write_packet(fd, packet.bytes()).is_err() {
            self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        let late = sys::monotonic_ns().saturating_sub(departure);
        self.shared.departures.fetch_add(1, Ordering::Relaxed);
        self.shared.late_total_ns.fetch_add(late, Ordering::Relaxed);
        self.shared.late_max_ns.fetch_max(late, Ordering::Relaxed);
        self.recycle(packet);
    }

    fn recycle(&mut self, buf: Packet) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(buf);
        }
    }

    /// Arms the timer at the earliest departure, if that changed.
    fn arm(&mut self) -> std::io::Result<()> {
        let next = self.up.iter().chain(&self.down).filter_map(LinkQueue::next_departure).min();
        if let Some(at) = next
            && self.armed != Some(at)
        {
            self.timer.set_at(at)?;
            self.armed = Some(at);
        }
        Ok(())
    }

    /// Makes the changed queues' counters visible to [`Link::stats`].
    fn publish_dirty(&mut self) {
        for i in self.dirty_list.drain(..) {
            self.dirty[i] = false;
            self.shared.up[i].store(&self.up[i].counters());
            self.shared.down[i].store(&self.down[i].counters());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_line() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n \
                    wbtun: 135191768  109784    0    2    0     0          0         0  3444268   61505    0    7    0     0       0          0\n";
        assert_eq!(
            DeviceCounters::parse(text, "wbtun"),
            Some(DeviceCounters { rx_packets: 109_784, tx_packets: 61_505, rx_dropped: 2, tx_dropped: 7 })
        );
        assert_eq!(DeviceCounters::parse(text, "eth0"), None);
    }

    #[test]
    fn client_addresses_follow_the_plan() {
        assert_eq!(client_addr_v4(0), Ipv4Addr::new(10, 201, 1, 1));
        assert_eq!(client_addr_v4(MAX_CLIENTS - 1), Ipv4Addr::new(10, 201, 1, 250));
    }
}
