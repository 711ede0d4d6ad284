//! What every transport's server shares: the handler that turns a request
//! into a reply through the formats' service, the count of oneway
//! sessions, the test-only faults, and the handle that shuts a server down
//! gracefully.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use tokio::sync::watch;
use tokio::task::JoinSet;
use wirebench_formats::{Code, Fault, FormatId, Method, ServerScratch, Service, Status};

use crate::Endpoint;
use crate::cpu::CpuTime;
use crate::frame::{DEFAULT_MAX_MESSAGE, NO_BIN};
use crate::mode::{
    BIN_DIGITS, BinCount, OnewayMeta, OnewayReport, ReportRequest, SESSION_DIGITS, latency_histogram, monotonic_ns,
};
use crate::udp::DEFAULT_MAX_DATAGRAM;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted; a frame declaring more closes its
    /// connection before anything is allocated for it.
    pub max_message: usize,
    /// Largest udp reply datagram (header included). Requests are read up
    /// to the UDP maximum (65,507 bytes) whatever this says.
    pub max_datagram: usize,
    /// http2: serve over TLS with a certificate generated at start-up.
    pub tls: bool,
    /// Test-only: answer wrongly.
    pub fault: Fault,
    /// Test-only: pause all RPC serving periodically, like a GC pause (the
    /// raw ping-pong floor, which has no service, is not paused).
    pub stall: Option<Stall>,
    /// The count of oneway sessions. Clones of a config share it, so every
    /// server of a process started from one config counts into the same
    /// sessions, and the report control call on tcp reads what a udp, quic
    /// or http2 server (or a broker's responder) counted.
    pub oneway: Arc<OnewaySessions>,
    /// Test-only: a fixed busy-wait added to every call (of some formats),
    /// a real slowdown to prove that `compare` catches one.
    pub inject: Option<Inject>,
    /// Called with each call's number (0, 1, ...) as the handler starts
    /// serving it; `wirebench instructions` marks its counted windows
    /// with it.
    pub on_call: Option<CallHook>,
}

/// A function the handler calls at the start of every call, with the
/// call's number.
#[derive(Clone)]
pub struct CallHook(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for CallHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallHook")
    }
}

/// A busy-wait of `delay` in every call of `formats` (all when `None`):
/// CPU spent on the server's thread, as slower code would spend it, not a
/// sleep that frees the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inject {
    /// How long each call spins.
    pub delay: Duration,
    /// The formats slowed down; `None` for all.
    pub formats: Option<Vec<FormatId>>,
}

impl Inject {
    /// Spins for the delay if `format` is one of those slowed down.
    #[inline]
    fn spin(&self, format: FormatId) {
        if self.formats.as_ref().is_none_or(|f| f.contains(&format)) {
            let until = Instant::now() + self.delay;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_message: DEFAULT_MAX_MESSAGE,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            tls: false,
            fault: Fault::None,
            stall: None,
            inject: None,
            oneway: Arc::default(),
            on_call: None,
        }
    }
}

/// The most replies a stream request may ask for; more is refused with
/// `INVALID_ARGUMENT`.
pub const MAX_STREAM_REPLIES: u32 = 1 << 20;

/// Oneway sessions a server keeps at once; a new one beyond this evicts
/// the oldest.
pub(crate) const MAX_SESSIONS: usize = 256;
/// Window bins a session counts apart; messages with a higher bin are
/// counted as overflow.
pub(crate) const MAX_BINS: u32 = 1 << 16;
/// Per-bin latency histograms kept at once, over all sessions (each about
/// 30 KB); bins beyond it are counted without one.
pub(crate) const MAX_BIN_HISTOGRAMS: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters only: consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server's count of every oneway session: what arrived, when it was
/// sent, in which sub-window of the client's measurement.
#[derive(Debug, Default)]
pub struct OnewaySessions {
    inner: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<u32, Session>,
    /// Session ids, oldest first, for eviction.
    order: VecDeque<u32>,
    /// Per-bin histograms alive over all sessions.
    bin_histograms: usize,
}

#[derive(Debug)]
struct Session {
    delivered: u64,
    errors: u64,
    first_error: Option<String>,
    overflow: u64,
    latency: Option<Histogram<u64>>,
    bins: BTreeMap<u32, (u64, Option<Histogram<u64>>)>,
}

impl Session {
    fn new() -> Session {
        Session { delivered: 0, errors: 0, first_error: None, overflow: 0, latency: None, bins: BTreeMap::new() }
    }

    fn histograms(&self) -> usize {
        self.bins.values().filter(|(_, h)| h.is_some()).count()
    }
}

impl OnewaySessions {
    /// Counts one arrival of `meta` at `received_ns` ([`monotonic_ns`]):
    /// `refused` is the service's reason if it refused the message.
    pub fn record(&self, meta: OnewayMeta, received_ns: u64, refused: Option<&str>) {
        let mut guard = lock(&self.inner);
        let sessions = &mut *guard;
        if !sessions.by_id.contains_key(&meta.session) {
            if sessions.by_id.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions.order.pop_front()
                && let Some(gone) = sessions.by_id.remove(&oldest)
            {
                sessions.bin_histograms -= gone.histograms();
            }
            sessions.by_id.insert(meta.session, Session::new());
            sessions.order.push_back(meta.session);
        }
        let room = sessions.bin_histograms < MAX_BIN_HISTOGRAMS;
        let Some(session) = sessions.by_id.get_mut(&meta.session) else { return };
        session.delivered += 1;
        if let Some(why) = refused {
            session.errors += 1;
            session.first_error.get_or_insert_with(|| why.to_owned());
        }
        if meta.bin == NO_BIN {
            return;
        }
        if meta.bin >= MAX_BINS {
            session.overflow += 1;
            return;
        }
        // A send time in the future (another machine's clock) records as
        // the smallest latency; the client knows the clocks differ and
        // does not report it.
        let ns = received_ns.saturating_sub(meta.sent_ns).max(1);
        session.latency.get_or_insert_with(|| latency_histogram(SESSION_DIGITS)).saturating_record(ns);
        let mut made = false;
        let (count, histogram) = session.bins.entry(meta.bin).or_insert_with(|| {
            made = room;
            (0, room.then(|| latency_histogram(BIN_DIGITS)))
        });
        *count += 1;
        if let Some(h) = histogram {
            h.saturating_record(ns);
        }
        if made {
            sessions.bin_histograms += 1;
        }
    }

    /// Takes the count of `request.session` once `request.expected`
    /// messages arrived, or no message of it arrived for the quiet period,
    /// or the deadline passed. The session is forgotten; an unknown one
    /// reports nothing delivered.
    pub async fn report(&self, request: ReportRequest) -> OnewayReport {
        let asked = Instant::now();
        let mut last = (self.delivered(request.session), Instant::now());
        while last.0 < request.expected && asked.elapsed() < request.deadline() && last.1.elapsed() < request.quiet() {
            // Polling keeps the per-message path free of wake-ups; a few
            // milliseconds at the end of a cell cost nothing.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let now = self.delivered(request.session);
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        self.take(request.session)
    }

    fn delivered(&self, session: u32) -> u64 {
        lock(&self.inner).by_id.get(&session).map_or(0, |s| s.delivered)
    }

    fn take(&self, id: u32) -> OnewayReport {
        let mut sessions = lock(&self.inner);
        let Some(session) = sessions.by_id.remove(&id) else { return OnewayReport::default() };
        sessions.order.retain(|s| *s != id);
        sessions.bin_histograms -= session.histograms();
        drop(sessions);
        OnewayReport {
            delivered: session.delivered,
            errors: session.errors,
            first_error: session.first_error,
            overflow: session.overflow,
            latency: session.latency.unwrap_or_else(|| latency_histogram(SESSION_DIGITS)),
            bins: session
                .bins
                .into_iter()
                .map(|(index, (delivered, latency))| BinCount { index, delivered, latency })
                .collect(),
        }
    }
}

/// A periodic server pause: for `duration` out of every `every`, no
/// request is served; requests arriving then wait for the pause to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The period.
    pub every: Duration,
    /// The pause at the start of each period.
    pub duration: Duration,
}

impl Stall {
    /// How long a request arriving `since_start` into the server's life
    /// must wait.
    pub fn wait_at(&self, since_start: Duration) -> Duration {
        let period = self.every.as_nanos().max(1);
        let phase = Duration::from_nanos((since_start.as_nanos() % period) as u64);
        self.duration.saturating_sub(phase)
    }
}

/// The transport-independent server: service, faults, counters.
#[derive(Debug)]
pub struct Handler {
    service: Service,
    stall: Option<Stall>,
    inject: Option<Inject>,
    started: Instant,
    pub(crate) max_message: usize,
    pub(crate) max_datagram: usize,
    calls: AtomicU64,
    on_call: Option<CallHook>,
    /// The server-environment reply body, captured once.
    environment: Vec<u8>,
    oneway: Arc<OnewaySessions>,
}

impl Handler {
    /// A handler for `config`.
    pub fn new(config: &ServerConfig) -> Arc<Handler> {
        Arc::new(Handler {
            service: Service::with_fault(config.fault),
            stall: config.stall,
            inject: config.inject.clone(),
            started: Instant::now(),
            max_message: config.max_message,
            max_datagram: config.max_datagram,
            calls: AtomicU64::new(0),
            on_call: config.on_call.clone(),
            environment: crate::host::HostInfo::capture().encode(),
            oneway: config.oneway.clone(),
        })
    }

    /// The service (for the tonic reference, which decodes itself).
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Waits out a stall, if one is configured and in progress.
    #[inline]
    pub async fn admit(&self) {
        if let Some(stall) = &self.stall {
            let wait = stall.wait_at(self.started.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// [`Handler::admit`] for a server that serves each connection on a
    /// blocking thread of its own (Apache Thrift's).
    pub fn admit_blocking(&self) {
        if let Some(stall) = &self.stall {
            let wait = stall.wait_at(self.started.elapsed());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }

    /// Serves one request: `call` and `format` as they came off the wire.
    #[inline]
    pub fn handle<'s>(
        &self,
        scratch: &'s mut ServerScratch,
        call: u8,
        format: u8,
        body: &[u8],
    ) -> Result<&'s [u8], Status> {
        self.number_call();
        let method =
            Method::from_id(call).ok_or_else(|| Status::new(Code::Unimplemented, format!("unknown call id {call}")))?;
        let format = FormatId::from_wire(format)
            .ok_or_else(|| Status::new(Code::Unimplemented, format!("unknown format id {format}")))?;
        if let Some(inject) = &self.inject {
            inject.spin(format);
        }
        wirebench_formats::serve(&self.service, scratch, format, method, body)
    }

    /// Serves a oneway request as a call whose reply is dropped, and
    /// counts it in its session (with the send-to-receipt latency, read
    /// on arrival, before serving).
    pub fn oneway(&self, scratch: &mut ServerScratch, meta: OnewayMeta, call: u8, format: u8, body: &[u8]) {
        let received = monotonic_ns();
        match self.handle(scratch, call, format, body) {
            Ok(_) => self.oneway.record(meta, received, None),
            Err(status) => self.oneway.record(meta, received, Some(&status.to_string())),
        }
    }

    /// The oneway sessions this handler counts into.
    pub fn oneway_sessions(&self) -> &OnewaySessions {
        &self.oneway
    }

    /// Checks the reply count a stream request asks for.
    pub fn check_replies(&self, replies: u32) -> Result<u32, Status> {
        if (1..=MAX_STREAM_REPLIES).contains(&replies) {
            Ok(replies)
        } else {
            Err(Status::new(
                Code::InvalidArgument,
                format!("a stream of {replies} replies: the server sends 1 to {MAX_STREAM_REPLIES}"),
            ))
        }
    }

    /// Counts a call of `format` served outside [`Handler::handle`] (the
    /// stock frameworks decode their own requests), with its test-only
    /// injected delay.
    pub fn count_call(&self, format: FormatId) {
        self.number_call();
        if let Some(inject) = &self.inject {
            inject.spin(format);
        }
    }

    /// Counts a call and tells the hook its number.
    #[inline]
    fn number_call(&self) {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = &self.on_call {
            (hook.0)(n);
        }
    }

    /// Counts a request refused before its format was known (a broker
    /// request with unreadable ids or an oversized body), as
    /// [`Handler::handle`] counts its early refusals: without the
    /// injected delay.
    pub fn count_refused(&self) {
        self.number_call();
    }

    /// Calls served so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The reply body of the server-stats control call: user and system
    /// CPU microseconds of the whole server process, and calls served, as
    /// three u64 BE.
    pub fn stats_body(&self) -> [u8; 24] {
        let cpu = CpuTime::process();
        let mut out = [0u8; 24];
        out[0..8].copy_from_slice(&(cpu.user.as_micros() as u64).to_be_bytes());
        out[8..16].copy_from_slice(&(cpu.system.as_micros() as u64).to_be_bytes());
        out[16..24].copy_from_slice(&self.calls().to_be_bytes());
        out
    }

    /// The reply body of the server-environment control call (see
    /// [`crate::host`]).
    pub fn environment_body(&self) -> &[u8] {
        &self.environment
    }
}

/// Tells a server's tasks to stop.
#[derive(Clone, Debug)]
pub(crate) struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// Resolves once shutdown is asked for.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// A running server. Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How long connections get to finish in-flight calls at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

impl Server {
    /// Runs `accept` (an accept loop that spawns each connection into the
    /// given set) until shutdown, then drains the connections.
    pub(crate) fn spawn<F, Fut>(endpoint: Endpoint, accept: F) -> Server
    where
        F: FnOnce(ShutdownSignal, JoinSet<()>) -> Fut,
        Fut: std::future::Future<Output = JoinSet<()>> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        let signal = ShutdownSignal(rx);
        let run = accept(signal, JoinSet::new());
        let task = tokio::spawn(async move { drain(run.await).await });
        Server { endpoint, stop, task: Some(task) }
    }

    /// As [`Server::spawn`], for a server whose futures are not `Send`
    /// (Cap'n Proto RPC): `accept` runs on a thread of its own (`name`),
    /// on a current-thread runtime inside a `LocalSet`, and spawns its
    /// connections with `JoinSet::spawn_local`. [`Server::shutdown`]
    /// waits for that thread to drain its connections.
    pub(crate) fn on_thread<F, Fut>(endpoint: Endpoint, name: &str, accept: F) -> std::io::Result<Server>
    where
        F: FnOnce(ShutdownSignal, JoinSet<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = JoinSet<()>> + 'static,
    {
        let (stop, rx) = watch::channel(false);
        let signal = ShutdownSignal(rx);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            tokio::task::LocalSet::new()
                .block_on(&runtime, async move { drain(accept(signal, JoinSet::new()).await).await });
            let _ = done.send(());
        })?;
        let task = tokio::spawn(async move {
            let _ = finished.await;
        });
        Ok(Server { endpoint, stop, task: Some(task) })
    }

    /// Where clients reach it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Stops accepting, lets open connections finish their calls (up to
    /// a few seconds), and waits for that.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Lets `connections` finish (up to [`DRAIN`]), then closes what is left.
async fn drain(mut connections: JoinSet<()>) {
    let drained = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!("{} connections still open after {DRAIN:?}; closing them", connections.len());
        connections.abort_all();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_waits_only_inside_the_pause() {
        let s = Stall { every: Duration::from_millis(500), duration: Duration::from_millis(50) };
        assert_eq!(s.wait_at(Duration::from_millis(0)), Duration::from_millis(50));
        assert_eq!(s.wait_at(Duration::from_millis(20)), Duration::from_millis(30));
        assert_eq!(s.wait_at(Duration::from_millis(50)), Duration::ZERO);
        assert_eq!(s.wait_at(Duration::from_millis(499)), Duration::ZERO);
        assert_eq!(s.wait_at(Duration::from_millis(510)), Duration::from_millis(40));
    }

    fn meta(session: u32, seq: u32, bin: u32, sent_ns: u64) -> OnewayMeta {
        OnewayMeta { session, seq, sent_ns, bin }
    }

    #[test]
    fn sessions_count_bins_latency_and_refusals_apart() {
        let s = OnewaySessions::default();
        s.record(meta(1, 1, NO_BIN, 100), 200, None);
        s.record(meta(1, 2, 0, 100), 1100, None);
        s.record(meta(1, 3, 0, 100), 2100, None);
        s.record(meta(1, 4, 5, 100), 5100, Some("bad request"));
        s.record(meta(1, 5, MAX_BINS, 100), 5100, None);
        s.record(meta(2, 1, 0, 100), 900, None);
        let r = tokio_test_block_on(s.report(ReportRequest { session: 1, expected: 5, quiet_ms: 1, deadline_ms: 1 }));
        assert_eq!((r.delivered, r.errors, r.overflow), (5, 1, 1));
        assert_eq!(r.first_error.as_deref(), Some("bad request"));
        assert_eq!(r.latency.len(), 3, "only messages with a bin under the limit are timed");
        assert_eq!(r.bins.iter().map(|b| (b.index, b.delivered)).collect::<Vec<_>>(), vec![(0, 2), (5, 1)]);
        assert_eq!(r.bins[0].latency.as_ref().unwrap().len(), 2);
        // Taken once: the session is gone, the other one stays.
        let again =
            tokio_test_block_on(s.report(ReportRequest { session: 1, expected: 0, quiet_ms: 1, deadline_ms: 1 }));
        assert_eq!(again.delivered, 0);
        assert_eq!(lock(&s.inner).bin_histograms, 1);
    }

    #[test]
    fn sessions_and_histograms_are_bounded() {
        let s = OnewaySessions::default();
        for session in 0..(MAX_SESSIONS as u32 + 10) {
            for bin in 0..20 {
                s.record(meta(session, 1, bin, 0), 10, None);
            }
        }
        let inner = lock(&s.inner);
        assert_eq!(inner.by_id.len(), MAX_SESSIONS);
        assert!(!inner.by_id.contains_key(&0), "the oldest session was evicted");
        assert!(inner.bin_histograms <= MAX_BIN_HISTOGRAMS);
        assert_eq!(inner.bin_histograms, inner.by_id.values().map(Session::histograms).sum::<usize>());
    }

    #[test]
    fn a_report_waits_for_the_expected_count_but_not_forever() {
        let s = Arc::new(OnewaySessions::default());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let late = s.clone();
        let r = rt.block_on(async move {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                late.record(meta(7, 1, 0, 0), 10, None);
            });
            s.report(ReportRequest { session: 7, expected: 1, quiet_ms: 1000, deadline_ms: 5000 }).await
        });
        assert_eq!(r.delivered, 1, "the report waited for the message on its way");
        let s = OnewaySessions::default();
        let started = Instant::now();
        let r = rt.block_on(s.report(ReportRequest { session: 8, expected: 10, quiet_ms: 50, deadline_ms: 5000 }));
        assert_eq!(r.delivered, 0);
        assert!(started.elapsed() < Duration::from_secs(4), "a quiet session ends the wait");
    }

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn unknown_call_and_format_are_unimplemented() {
        let h = Handler::new(&ServerConfig::default());
        let mut scratch = ServerScratch::default();
        assert_eq!(h.handle(&mut scratch, 9, 1, b"").unwrap_err().code, Code::Unimplemented);
        assert_eq!(h.handle(&mut scratch, 1, 99, b"").unwrap_err().code, Code::Unimplemented);
        assert_eq!(h.handle(&mut scratch, 1, 1, b"{").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(h.calls(), 3);
    }
}
