//! The load generators and what they record.
//!
//! A cell runs on one client thread with a single-threaded tokio runtime:
//! every caller task, the window task and (open loop) the dispatcher share
//! it, so recording needs no locks and a reply reaches its caller with no
//! cross-thread wake-up.
//!
//! The measured window is defined by its snapshots, not by timers: the
//! window task reads the client thread's CPU time, the wire counters and
//! the server's CPU time, and only then opens recording; at the end it
//! closes recording and reads them again. Latencies, calls, bytes and CPU
//! therefore cover exactly the same interval. Calls finishing during the
//! warm-up or after the window are not recorded; failures are counted
//! whenever they happen, warm-up included.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use wirebench_formats::dataset::SplitMix64;
use wirebench_transports::cpu::CpuTime;
use wirebench_transports::{CallError, Counters};

use crate::plan::{LoadModel, LoadSpec, Timing};

/// Highest latency a histogram holds: 60 s, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// A window is extended until at least this many calls completed in it,
/// and, in a closed loop, until every call slot completed
/// [`MIN_ROUNDS`] calls on average (see [`min_calls`])...
pub const MIN_CALLS: u64 = 20;
/// With N calls in flight, each call's latency is mostly the queue of the
/// other N - 1, so a window of a few rounds measures a few queue states,
/// and its p50 moves from run to run. Eight rounds at least.
pub const MIN_ROUNDS: u64 = 8;
/// ...but never beyond this many times its planned length (or 2 s).
/// The window grows in whole planned lengths, so it always splits into
/// exactly `--samples` equal sub-windows.
const MAX_EXTENSION: u32 = 10;
/// A cell gives up after this many failed calls: they are counted and
/// the cell fails anyway, and a peer that fails every call at once would
/// otherwise be called millions of times in a window.
pub const MAX_FAILURES: u64 = 1000;

/// The calls a measured window needs before it may end (up to its cap).
pub fn min_calls(load: &LoadSpec) -> u64 {
    match load.model {
        LoadModel::Closed => MIN_CALLS.max(MIN_ROUNDS * load.in_flight as u64),
        LoadModel::Open { .. } => MIN_CALLS,
    }
}

/// One complete call as a cell makes it: encode, send, receive, decode,
/// verify.
pub trait Caller: 'static {
    /// Per-task reusable state (the format's encoding scratch).
    type Scratch: Default + 'static;

    /// A pubsub caller: each call's latencies are those of its deliveries
    /// ([`Caller::deliveries`]), one per subscriber that got the message,
    /// never the call's own.
    const FANOUT: bool = false;

    /// Makes one call. `Ok` holds the instant the reply was decoded, taken
    /// before it was verified, so verification is not timed; a reply that
    /// fails verification is an error, never a measured call.
    fn call(&self, scratch: &mut Self::Scratch) -> impl Future<Output = Result<Completed, Failure>>;

    /// Wire counters of the underlying client; `None` where its bytes
    /// cannot be counted (a framework that owns its sockets).
    fn counters(&self) -> Option<Counters>;

    /// Whether the client's CPU is the whole process's rather than the
    /// cell's thread: a stock framework's client may work on threads of
    /// its own (libzmq's I/O threads, a blocking client per connection),
    /// which the cell thread's clock would leave out. The servers run in
    /// another process, so the client process's other threads are idle.
    fn client_cpu_process(&self) -> bool {
        false
    }

    /// Whether calls complete without ever suspending (inproc). Such a
    /// caller must yield after every call, or one task would run call after
    /// call and starve the others and the window task.
    fn never_waits(&self) -> bool {
        false
    }

    /// A [`Caller::FANOUT`] caller: the instants the last call's
    /// deliveries arrived, left in its scratch.
    fn deliveries(scratch: &Self::Scratch) -> &[Instant] {
        let _ = scratch;
        &[]
    }

    /// Hears the measured window open (again, each time it is extended)
    /// and close: a oneway caller labels each send with the sub-window it
    /// falls in, since its latency is measured on the server.
    fn window(&self, window: Window) {
        let _ = window;
    }
}

/// How a call completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    /// When: its reply decoded (a stream: its last reply; pubsub: its last
    /// delivery).
    pub done: Instant,
    /// A stream call: when its first reply was decoded.
    pub first: Option<Instant>,
    /// Pubsub on a lossy transport: subscribers the message never reached
    /// (reported, not a failure).
    pub missing: u32,
}

impl From<Instant> for Completed {
    fn from(done: Instant) -> Completed {
        Completed { done, first: None, missing: 0 }
    }
}

/// The measured window as a [`Caller`] hears of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Calls completing in `[start, end)` are recorded, in sub-windows of
    /// `bin` counted from `start`.
    Open {
        /// The window's start.
        start: Instant,
        /// Its end as planned so far.
        end: Instant,
        /// One sub-window's length.
        bin: Duration,
    },
    /// Closed: nothing more is recorded.
    Closed,
}

/// Why a call did not count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection is gone (closed, reset, broken framing): no later
    /// call on it can succeed, so the cell stops at once instead of
    /// failing call after call.
    Broken(String),
    /// A status or transport error.
    Error(String),
    /// No reply in time.
    Timeout,
    /// The reply decoded but was wrong, or did not decode.
    Wrong(String),
    /// The transport does not offer the call mode (found by a cell's
    /// first call, which makes the cell unsupported); why.
    Unsupported(String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Failure {
        match e {
            CallError::Timeout(_) => Failure::Timeout,
            CallError::Unsupported(why) => Failure::Unsupported(why),
            e @ (CallError::Closed(_) | CallError::Io(_) | CallError::Protocol(_)) => Failure::Broken(e.to_string()),
            other => Failure::Error(other.to_string()),
        }
    }
}

/// Where the server's CPU time comes from.
pub trait ServerCpu {
    /// The server's CPU time so far, if it can be known.
    fn read(&mut self) -> impl Future<Output = Option<CpuTime>>;
}

/// No server CPU (remote servers without a control channel, inproc).
#[derive(Debug)]
pub struct NoServerCpu;

impl ServerCpu for NoServerCpu {
    async fn read(&mut self) -> Option<CpuTime> {
        None
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // 3 significant digits from 1 ns to 60 s.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

/// Everything measured in one cell.
#[derive(Debug)]
pub struct Measured {
    /// Latency (corrected, for open loop), ns.
    pub latency: Histogram<u64>,
    /// Open loop: latency from the actual send, ns.
    pub uncorrected: Option<Histogram<u64>>,
    /// Open loop: actual send minus intended send, ns.
    pub send_lag: Option<Histogram<u64>>,
    /// Stream calls: latency to the first reply (corrected, for open
    /// loop), ns.
    pub first: Option<Histogram<u64>>,
    /// Per-sub-window latency histograms: exactly the planned number,
    /// of equal length, their calls adding up to `calls`.
    pub samples: Vec<Histogram<u64>>,
    /// The measured window's length (a whole multiple of the planned one).
    pub window: Duration,
    /// Planned windows it lasted: its bins are this many per sample.
    pub windows: u32,
    /// Pubsub: deliveries the recorded calls never got (lossy transports).
    pub missing: u64,
    /// How late the window's end snapshots were taken after its end (the
    /// timer's wake-up lag; CPU and wire counters cover this much more).
    pub close_lag: Duration,
    /// Calls recorded (completed in the window).
    pub calls: u64,
    /// Calls completed between the window's opening and the instant its
    /// end snapshots were taken: `calls` plus those that finished during
    /// the close lag. Client CPU and wire bytes are read over that longer
    /// interval, so their per-call figures divide by this count.
    pub calls_to_close: u64,
    /// Errors, timeouts and wrong replies, over the whole cell.
    pub errors: u64,
    /// See `errors`.
    pub timeouts: u64,
    /// See `errors`.
    pub wrong: u64,
    /// The first failure's description.
    pub first_failure: Option<String>,
    /// Client thread CPU over the window.
    pub client_cpu: CpuTime,
    /// Server CPU over the window, if known.
    pub server_cpu: Option<CpuTime>,
    /// Wire counters over the window.
    pub wire: Option<Counters>,
    /// The run was interrupted before the window closed.
    pub interrupted: bool,
}

enum Phase {
    Warmup,
    /// Calls completing in `[start, end)` are recorded; `bin` is the
    /// length of one planned sub-window.
    Measuring {
        start: Instant,
        end: Instant,
        bin: Duration,
    },
    Done,
}

struct Recorder {
    phase: Phase,
    latency: Histogram<u64>,
    uncorrected: Option<Histogram<u64>>,
    send_lag: Option<Histogram<u64>>,
    first: Option<Histogram<u64>>,
    missing: u64,
    /// One histogram per planned sub-window length since the window
    /// opened (none where no call completed: a slow cell's extended window
    /// has many empty bins); regrouped into the planned number of samples
    /// at the end.
    bins: Vec<Option<Histogram<u64>>>,
    broken: bool,
    calls: u64,
    /// Calls that completed after the window's end but before it closed.
    after_end: u64,
    errors: u64,
    timeouts: u64,
    wrong: u64,
    first_failure: Option<String>,
}

impl Recorder {
    fn new(open: bool) -> Recorder {
        Recorder {
            phase: Phase::Warmup,
            latency: histogram(),
            uncorrected: open.then(histogram),
            send_lag: open.then(histogram),
            first: None,
            missing: 0,
            bins: Vec::new(),
            broken: false,
            after_end: 0,
            calls: 0,
            errors: 0,
            timeouts: 0,
            wrong: 0,
            first_failure: None,
        }
    }

    /// No more calls: the window closed, the connection broke, or too
    /// many calls failed.
    fn done(&self) -> bool {
        matches!(self.phase, Phase::Done) || self.broken || self.failures() >= MAX_FAILURES
    }

    fn failures(&self) -> u64 {
        self.errors + self.timeouts + self.wrong
    }

    /// Records a call that completed as `c`, timed from `base` (its start,
    /// or in an open loop its intended send; then `sent` is its actual
    /// send), if the window is open. A fanout call records each of its
    /// `deliveries` instead of itself.
    fn record(&mut self, c: Completed, base: Instant, sent: Option<Instant>, fanout: bool, deliveries: &[Instant]) {
        let Phase::Measuring { start, end, bin } = self.phase else { return };
        // The window is [start, end): a call that completes after its end
        // (before the window task woke to close it) is not in it.
        if c.done < start {
            return;
        }
        if c.done >= end {
            self.after_end += 1;
            return;
        }
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let index = (c.done.duration_since(start).as_nanos() / bin.as_nanos().max(1)) as usize;
        // `end` is at most MAX_EXTENSION planned windows (or 2 s) away, so
        // the bins stay few; the bound only guards the arithmetic.
        let index = index.min(MAX_BINS);
        if self.bins.len() <= index {
            self.bins.resize_with(index + 1, || None);
        }
        let one = [c.done];
        let timed: &[Instant] = if fanout { deliveries } else { &one };
        for &t in timed {
            let latency = ns(t.saturating_duration_since(base));
            self.latency.saturating_record(latency);
            self.bins[index].get_or_insert_with(histogram).saturating_record(latency);
            if let (Some(h), Some(sent)) = (&mut self.uncorrected, sent) {
                h.saturating_record(ns(t.saturating_duration_since(sent)));
            }
        }
        if let (Some(h), Some(sent)) = (&mut self.send_lag, sent) {
            h.saturating_record(ns(sent.saturating_duration_since(base)));
        }
        if let Some(first) = c.first {
            self.first.get_or_insert_with(histogram).saturating_record(ns(first.saturating_duration_since(base)));
        }
        self.missing += u64::from(c.missing);
        self.calls += 1;
    }

    fn fail(&mut self, failure: Failure) {
        let text = match &failure {
            Failure::Broken(e) => {
                self.errors += 1;
                self.broken = true;
                e.clone()
            }
            Failure::Error(e) => {
                self.errors += 1;
                e.clone()
            }
            Failure::Timeout => {
                self.timeouts += 1;
                "no reply within the deadline".to_owned()
            }
            Failure::Wrong(w) => {
                self.wrong += 1;
                w.clone()
            }
            // A mode found unsupported mid-window: nothing later can work.
            Failure::Unsupported(why) => {
                self.errors += 1;
                self.broken = true;
                format!("unsupported: {why}")
            }
        };
        self.first_failure.get_or_insert(text);
    }
}

/// Runs one cell's load on the current thread's runtime: warm-up, then
/// the measured window, then waits for calls in flight.
pub async fn run<C: Caller>(
    caller: Rc<C>,
    load: LoadSpec,
    timing: Timing,
    seed: u64,
    server: &mut impl ServerCpu,
    stop: Arc<AtomicBool>,
) -> Measured {
    let open = matches!(load.model, LoadModel::Open { .. });
    let recorder = Rc::new(RefCell::new(Recorder::new(open)));
    let local = tokio::task::LocalSet::new();

    match load.model {
        LoadModel::Closed => {
            for _ in 0..load.in_flight.max(1) {
                let (caller, recorder, stop) = (caller.clone(), recorder.clone(), stop.clone());
                local.spawn_local(async move {
                    let mut scratch = C::Scratch::default();
                    let never_waits = caller.never_waits();
                    while !recorder.borrow().done() && !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match caller.call(&mut scratch).await {
                            Ok(c) => recorder.borrow_mut().record(c, started, None, C::FANOUT, C::deliveries(&scratch)),
                            Err(failure) => recorder.borrow_mut().fail(failure),
                        }
                        // Outside the timed interval: let the other callers
                        // and the window task run.
                        if never_waits {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::task::consume_budget().await;
                        }
                    }
                });
            }
        }
        LoadModel::Open { rate, poisson } => {
            let (caller, recorder, stop) = (caller.clone(), recorder.clone(), stop.clone());
            local.spawn_local(dispatch(caller, recorder, stop, rate, poisson, load.in_flight.max(1), seed));
        }
    }

    // The window task: snapshots define the window.
    let window = local
        .run_until(async {
            let timer = PreciseTimer::new();
            let began = Instant::now();
            timer.sleep_until(began + timing.warmup).await;
            // The server's figure needs a round trip, during which calls go
            // on; the client's snapshots and the window's opening are taken
            // together after it, with no task running in between.
            let server0 = server.read().await;
            let client_clock = if caller.client_cpu_process() { CpuTime::process } else { CpuTime::thread };
            let cpu0 = client_clock();
            let wire0 = caller.counters();
            let start = Instant::now();
            let samples = timing.samples.max(1);
            let bin = timing.duration / samples;
            let planned = bin * samples;
            let mut end = start + planned;
            recorder.borrow_mut().phase = Phase::Measuring { start, end, bin };
            caller.window(Window::Open { start, end, bin });
            // The planned window, extended by whole planned windows while
            // fewer than `min_calls` completed in it: slow cells still
            // measure enough, up to a cap, and the window still splits into
            // exactly `samples` equal sub-windows.
            let needed = min_calls(&load);
            let most = MAX_EXTENSION.max(Duration::from_secs(2).as_nanos().div_ceil(planned.as_nanos().max(1)) as u32);
            let mut windows = 1;
            loop {
                while Instant::now() < end && !stop.load(Ordering::Relaxed) && !recorder.borrow().done() {
                    // Wake at least every 50 ms to notice an interrupt.
                    timer.sleep_until(end.min(Instant::now() + Duration::from_millis(50))).await;
                }
                let enough = recorder.borrow().calls >= needed || recorder.borrow().done();
                if enough || windows >= most || stop.load(Ordering::Relaxed) {
                    break;
                }
                windows += 1;
                end += planned;
                if let Phase::Measuring { end: open_until, .. } = &mut recorder.borrow_mut().phase {
                    *open_until = end;
                }
                caller.window(Window::Open { start, end, bin });
            }
            // A window cut short (interrupt, broken connection, too many
            // failures) ends now; a full one at its planned end.
            let closed_at = Instant::now();
            let end = end.min(closed_at);
            recorder.borrow_mut().phase = Phase::Done;
            caller.window(Window::Closed);
            let window = end.saturating_duration_since(start);
            let close_lag = closed_at.saturating_duration_since(end);
            let cpu = client_clock().since(cpu0);
            let wire = caller.counters().zip(wire0).map(|(now, then)| now.since(then));
            let server = match (server0, server.read().await) {
                (Some(a), Some(b)) => Some(b.since(a)),
                _ => None,
            };
            (window, close_lag, windows, cpu, wire, server)
        })
        .await;
    // Let calls in flight finish (each has its deadline).
    local.await;

    let (window, close_lag, windows, client_cpu, wire, server_cpu) = window;
    let interrupted = stop.load(Ordering::Relaxed);
    let r = Rc::try_unwrap(recorder).map(RefCell::into_inner).unwrap_or_else(|shared| {
        // Every task has finished, so no other reference remains; but if
        // one did, take the data rather than fail the cell.
        std::mem::replace(&mut *shared.borrow_mut(), Recorder::new(false))
    });
    let samples = regroup(r.bins, timing.samples.max(1) as usize, windows as usize);
    Measured {
        latency: r.latency,
        uncorrected: r.uncorrected,
        send_lag: r.send_lag,
        first: r.first,
        samples,
        window,
        windows,
        missing: r.missing,
        close_lag,
        calls: r.calls,
        calls_to_close: r.calls + r.after_end,
        errors: r.errors,
        timeouts: r.timeouts,
        wrong: r.wrong,
        first_failure: r.first_failure,
        client_cpu,
        server_cpu,
        wire,
        interrupted,
    }
}

/// Bins never exceed this many (a guard: the window's cap keeps them far
/// fewer).
const MAX_BINS: usize = 1 << 16;

/// Regroups the per-bin histograms of a window of `windows` planned windows
/// into exactly `samples` sub-windows of `windows` bins each.
pub(crate) fn regroup(bins: Vec<Option<Histogram<u64>>>, samples: usize, windows: usize) -> Vec<Histogram<u64>> {
    let mut out: Vec<Histogram<u64>> = (0..samples).map(|_| histogram()).collect();
    for (i, bin) in bins.iter().enumerate() {
        let Some(bin) = bin else { continue };
        let j = (i / windows.max(1)).min(samples - 1);
        // Same bounds on both sides: adding cannot fail.
        let _ = out[j].add(bin);
    }
    out
}

/// The open-loop dispatcher: calls are due on a schedule (constant or
/// Poisson) fixed in advance; latency counts from the due time.
async fn dispatch<C: Caller>(
    caller: Rc<C>,
    recorder: Rc<RefCell<Recorder>>,
    stop: Arc<AtomicBool>,
    rate: f64,
    poisson: bool,
    in_flight: usize,
    seed: u64,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let scratches: Rc<RefCell<Vec<C::Scratch>>> = Rc::new(RefCell::new(Vec::new()));
    let timer = PreciseTimer::new();
    let mut rng = SplitMix64::new(seed);
    let mean_gap = 1.0 / rate.max(1e-9);
    let mut due = Instant::now();
    while !recorder.borrow().done() && !stop.load(Ordering::Relaxed) {
        timer.sleep_until(due).await;
        // When every slot is busy the call waits here; its wait counts in
        // its corrected latency, not in its uncorrected one.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let intended = due;
        let gap = if poisson { -mean_gap * (1.0 - rng.unit()).ln() } else { mean_gap };
        due += Duration::from_secs_f64(gap);
        let (caller, recorder, scratches) = (caller.clone(), recorder.clone(), scratches.clone());
        tokio::task::spawn_local(async move {
            let mut scratch = scratches.borrow_mut().pop().unwrap_or_default();
            let sent = Instant::now();
            let outcome = caller.call(&mut scratch).await;
            drop(permit);
            match outcome {
                Ok(c) => recorder.borrow_mut().record(c, intended, Some(sent), C::FANOUT, C::deliveries(&scratch)),
                Err(failure) => recorder.borrow_mut().fail(failure),
            }
            scratches.borrow_mut().push(scratch);
        });
    }
}

/// A sleep with sub-millisecond precision: tokio's timer wheel has 1 ms
/// granularity, which would smear an open loop's send times. Uses a
/// timerfd with the thread's timer slack set to 1 ns; falls back to
/// tokio's timer if timerfd is unavailable.
pub struct PreciseTimer {
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl std::fmt::Debug for PreciseTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreciseTimer").field("timerfd", &self.fd.is_some()).finish()
    }
}

impl PreciseTimer {
    /// A timer for the current runtime.
    pub fn new() -> PreciseTimer {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscalls; the fd is checked before being owned.
        let fd = unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0);
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        let fd = (fd >= 0)
            .then(|| {
                // SAFETY: a fresh, valid descriptor that nothing else owns;
                // the OwnedFd keeps it open for as long as the AsyncFd
                // lives and always reports the same descriptor.
                unsafe {
                    let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
                    tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE).ok()
                }
            })
            .flatten();
        PreciseTimer { fd }
    }

    /// Sleeps until `deadline`.
    pub async fn sleep_until(&self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        let wait = deadline - now;
        let Some(fd) = &self.fd else {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        };
        if wait < Duration::from_micros(20) {
            // Too short to arm a timer: yield until it passes.
            while Instant::now() < deadline {
                tokio::task::yield_now().await;
            }
            return;
        }
        use std::os::fd::AsRawFd;
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a valid itimerspec.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                tokio::time::sleep_until(deadline.into()).await;
                return;
            };
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from our fd.
            let n = unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
            if n == 8 {
                return;
            }
            ready.clear_ready();
        }
    }
}

impl Default for PreciseTimer {
    fn default() -> PreciseTimer {
        PreciseTimer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        delay: Duration,
        fail_every: Option<u64>,
        n: RefCell<u64>,
    }

    impl Caller for Fake {
        type Scratch = ();
        async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
            let n = {
                let mut n = self.n.borrow_mut();
                *n += 1;
                *n
            };
            tokio::time::sleep(self.delay).await;
            if self.fail_every.is_some_and(|k| n % k == 0) {
                return Err(Failure::Wrong(format!("call {n}")));
            }
            Ok(Instant::now().into())
        }
        fn counters(&self) -> Option<Counters> {
            Some(Counters { bytes_sent: *self.n.borrow() * 10, bytes_received: 0, late_replies: 0 })
        }
    }

    fn timing(ms: u64) -> Timing {
        Timing {
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(ms),
            samples: 4,
            timeout: Duration::from_secs(1),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn closed_loop_records_only_the_window_and_counts_failures() {
        let fake = Rc::new(Fake { delay: Duration::from_millis(2), fail_every: Some(10), n: RefCell::new(0) });
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 4, connections: 1 };
        let m = rt().block_on(run(fake.clone(), load, timing(200), 1, &mut NoServerCpu, Arc::default()));
        let total = *fake.n.borrow();
        assert!(m.calls > 0 && m.calls < total, "warm-up calls are not recorded: {} of {total}", m.calls);
        assert!(m.wrong >= total / 10 - 1, "every 10th call is wrong: {} of {total}", m.wrong);
        assert!(m.first_failure.as_deref().unwrap().starts_with("call "));
        assert_eq!(m.samples.iter().map(Histogram::len).sum::<u64>(), m.calls);
        assert!(m.window >= Duration::from_millis(200));
        assert!(m.wire.unwrap().bytes_sent > 0);
        assert!(m.latency.value_at_quantile(0.5) >= 2_000_000, "latency includes the 2 ms call");
        assert!(m.uncorrected.is_none());
    }

    #[test]
    fn samples_are_exactly_the_planned_sub_windows() {
        for samples in [1, 4, 10] {
            let fake = Rc::new(Fake { delay: Duration::from_millis(3), fail_every: None, n: RefCell::new(0) });
            let load = LoadSpec { model: LoadModel::Closed, in_flight: 2, connections: 1 };
            let t = Timing { samples, ..timing(100) };
            let m = rt().block_on(run(fake, load, t, 1, &mut NoServerCpu, Arc::default()));
            assert_eq!(m.samples.len(), samples as usize, "--samples {samples}");
            assert_eq!(m.samples.iter().map(Histogram::len).sum::<u64>(), m.calls, "the samples' calls add up");
            // The window is its planned length exactly (enough calls came),
            // not the instant the window task happened to wake.
            assert_eq!(m.window, Duration::from_millis(100));
        }
    }

    #[test]
    fn a_broken_connection_stops_the_cell_at_once() {
        struct Broken(RefCell<u64>);
        impl Caller for Broken {
            type Scratch = ();
            async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
                *self.0.borrow_mut() += 1;
                Err(Failure::Broken("connection closed: reset".into()))
            }
            fn counters(&self) -> Option<Counters> {
                Some(Counters::default())
            }
            fn never_waits(&self) -> bool {
                true
            }
        }
        let caller = Rc::new(Broken(RefCell::new(0)));
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 4, connections: 1 };
        let m = rt().block_on(run(caller.clone(), load, timing(200), 1, &mut NoServerCpu, Arc::default()));
        assert!(*caller.0.borrow() <= 4, "one failed call per caller, not a tight loop: {}", caller.0.borrow());
        assert_eq!(m.errors, *caller.0.borrow());
        assert!(m.first_failure.unwrap().contains("reset"));
    }

    #[test]
    fn failing_calls_stop_after_the_failure_limit() {
        let fake = Rc::new(Fake { delay: Duration::ZERO, fail_every: Some(1), n: RefCell::new(0) });
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 1, connections: 1 };
        let m = rt().block_on(run(fake.clone(), load, timing(300), 1, &mut NoServerCpu, Arc::default()));
        assert_eq!(m.wrong, MAX_FAILURES);
        assert_eq!(*fake.n.borrow(), MAX_FAILURES);
    }

    /// A caller that never suspends, like inproc.
    struct Instant_ {
        n: RefCell<u64>,
    }

    impl Caller for Instant_ {
        type Scratch = ();
        async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
            *self.n.borrow_mut() += 1;
            Ok(Instant::now().into())
        }
        fn counters(&self) -> Option<Counters> {
            Some(Counters::default())
        }
        fn never_waits(&self) -> bool {
            true
        }
    }

    #[test]
    fn callers_that_never_wait_still_end_their_window() {
        let caller = Rc::new(Instant_ { n: RefCell::new(0) });
        // 64 callers: without a yield per call, each would run a whole
        // cooperative budget of calls before the window task ran again.
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 64, connections: 1 };
        let started = Instant::now();
        let m = rt().block_on(run(caller, load, timing(100), 1, &mut NoServerCpu, Arc::default()));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(m.window < Duration::from_millis(150), "the window overran: {:?}", m.window);
        assert!(m.calls > 1000, "{}", m.calls);
    }

    #[test]
    fn slow_calls_extend_the_window_until_enough_complete() {
        // 40 ms calls, 1 in flight, a 50 ms window: 1 call at most as planned.
        let fake = Rc::new(Fake { delay: Duration::from_millis(40), fail_every: None, n: RefCell::new(0) });
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 1, connections: 1 };
        let m = rt().block_on(run(fake, load, timing(50), 1, &mut NoServerCpu, Arc::default()));
        assert!(m.calls >= MIN_CALLS, "{} calls", m.calls);
        assert!(m.window >= Duration::from_millis(40 * MIN_CALLS), "{:?}", m.window);
        assert_eq!(m.samples.len(), 4, "exactly the planned sub-windows");
        assert_eq!(m.samples.iter().map(Histogram::len).sum::<u64>(), m.calls);
        assert_eq!(
            m.window.as_nanos() % Duration::from_millis(50).as_nanos(),
            0,
            "whole planned windows: {:?}",
            m.window
        );
    }

    #[test]
    fn many_calls_in_flight_extend_the_window_to_enough_rounds() {
        // 10 ms calls, 16 in flight, a 30 ms window: about 3 rounds (48
        // calls) as planned, MIN_ROUNDS (8) rounds needed.
        let fake = Rc::new(Fake { delay: Duration::from_millis(10), fail_every: None, n: RefCell::new(0) });
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 16, connections: 1 };
        assert_eq!(min_calls(&load), 128);
        let m = rt().block_on(run(fake, load, timing(30), 1, &mut NoServerCpu, Arc::default()));
        assert!(m.calls >= 128, "{} calls", m.calls);
        assert!(m.window >= Duration::from_millis(70), "{:?}", m.window);
        // An open loop's calls are set by its rate, not by rounds.
        let open = LoadSpec { model: LoadModel::Open { rate: 100.0, poisson: false }, ..load };
        assert_eq!(min_calls(&open), MIN_CALLS);
    }

    #[test]
    fn an_interrupt_stops_the_cell_early() {
        let fake = Rc::new(Fake { delay: Duration::from_millis(1), fail_every: None, n: RefCell::new(0) });
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::Relaxed);
        });
        let load = LoadSpec { model: LoadModel::Closed, in_flight: 1, connections: 1 };
        let started = Instant::now();
        let m = rt().block_on(run(fake, load, timing(60_000), 1, &mut NoServerCpu, stop));
        assert!(m.interrupted);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn open_loop_keeps_both_latencies() {
        let fake = Rc::new(Fake { delay: Duration::from_millis(1), fail_every: None, n: RefCell::new(0) });
        let load = LoadSpec { model: LoadModel::Open { rate: 500.0, poisson: false }, in_flight: 4, connections: 1 };
        let m = rt().block_on(run(fake, load, timing(300), 7, &mut NoServerCpu, Arc::default()));
        let u = m.uncorrected.unwrap();
        assert_eq!(u.len(), m.calls);
        // 500/s for 0.3 s: about 150 calls.
        assert!((100..=200).contains(&m.calls), "{} calls", m.calls);
        assert!(m.latency.value_at_quantile(0.5) >= u.value_at_quantile(0.5));
        assert!(m.send_lag.unwrap().len() == m.calls);
    }

    #[test]
    fn the_precise_timer_is_precise_enough() {
        rt().block_on(async {
            let timer = PreciseTimer::new();
            assert!(timer.fd.is_some(), "timerfd is available on Linux");
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let deadline = Instant::now() + Duration::from_micros(300);
                timer.sleep_until(deadline).await;
                let late = Instant::now().saturating_duration_since(deadline);
                worst = worst.max(late);
                assert!(Instant::now() >= deadline, "woke early");
            }
            // Only reported: a loaded machine may be late; never early.
            eprintln!("precise timer: worst lateness {worst:?} over 20 sleeps of 300 us");
        });
    }
}
