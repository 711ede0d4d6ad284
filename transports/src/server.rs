//! What every transport's server shares: the handler that turns a request
//! into a reply through the formats' service, the test-only faults, and
//! the handle that shuts a server down gracefully.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use wirebench_formats::{Code, Fault, FormatId, Method, ServerScratch, Service, Status};

use crate::Endpoint;
use crate::cpu::CpuTime;
use crate::frame::DEFAULT_MAX_MESSAGE;
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
    /// Test-only: a fixed busy-wait added to every call (of some formats),
    /// a real slowdown to prove that `compare` catches one.
    pub inject: Option<Inject>,
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

    /// Serves one request: `call` and `format` as they came off the wire.
    #[inline]
    pub fn handle<'s>(
        &self,
        scratch: &'s mut ServerScratch,
        call: u8,
        format: u8,
        body: &[u8],
    ) -> Result<&'s [u8], Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let method =
            Method::from_id(call).ok_or_else(|| Status::new(Code::Unimplemented, format!("unknown call id {call}")))?;
        let format = FormatId::from_wire(format)
            .ok_or_else(|| Status::new(Code::Unimplemented, format!("unknown format id {format}")))?;
        if let Some(inject) = &self.inject {
            inject.spin(format);
        }
        wirebench_formats::serve(&self.service, scratch, format, method, body)
    }

    /// Counts a call of `format` served outside [`Handler::handle`] (the
    /// stock frameworks decode their own requests), with its test-only
    /// injected delay.
    pub fn count_call(&self, format: FormatId) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(inject) = &self.inject {
            inject.spin(format);
        }
    }

    /// Counts a request refused before its format was known (a broker
    /// request with unreadable ids or an oversized body), as
    /// [`Handler::handle`] counts its early refusals: without the
    /// injected delay.
    pub fn count_refused(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
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
        let task = tokio::spawn(async move {
            let mut connections = run.await;
            let drained = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} });
            if drained.await.is_err() {
                tracing::warn!("{} connections still open after {DRAIN:?}; closing them", connections.len());
                connections.abort_all();
            }
        });
        Server { endpoint, stop, task: Some(task) }
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
