//! The call modes beyond request-response, as cells: their callers, and
//! the figures each adds to its cell. The measured window is the one of
//! [`crate::measure`] (warm-up discarded, edge snapshots, exactly
//! `--samples` equal sub-windows, every reply or delivery verified,
//! failures counted), so a mode cell compares with its rr cell.
//!
//! - **oneway**: a call is one message sent; it completes when the
//!   transport accepted it, so N in flight is N sends not yet accepted
//!   (written to the socket, or queued within flow control). Each message
//!   carries its send time and the sub-window of the window it was sent in
//!   (by the client's clock); the server counts arrivals and times them,
//!   and the oneway-report control call (tcp) brings the counts back after
//!   the window. Lost is sent minus delivered, by sub-window of the send.
//!   The send-to-receipt latency compares two readings of
//!   `CLOCK_MONOTONIC`, one machine's clock: with a remote server it is
//!   unavailable.
//! - **stream**: a call is one request and its K replies, each decoded and
//!   verified; it completes at its last reply. Time to the first and to
//!   the last reply, replies per second.
//! - **pubsub**: a call is one published message; it completes when every
//!   subscriber got it, each delivery decoded and verified, so N in flight
//!   is N messages not yet delivered to everyone. Each delivery's latency,
//!   from before the publish to its arrival at the subscriber's socket,
//!   both in this process.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use wirebench_formats::{Dataset, Method};
use wirebench_reports::histogram;
use wirebench_reports::model::{self, CellStatus, OnewayFigures, PubsubFigures, Sample, StreamFigures};
use wirebench_transports::mode::{NO_BIN, monotonic_ns};
use wirebench_transports::stream::StreamClient;
use wirebench_transports::{
    Client, ClientConfig, Counters, Framework, FrameworkClient, Handler, OnewayMeta, OnewayReport, PublishMeta,
    ReportRequest, Transport, TransportKind,
};

use crate::cell::{self, CellJob, Outcome, Sizes};
use crate::codec::{self, Codec};
use crate::measure::{Caller, Completed, Failure, Window};
use crate::passes;

/// How long a lossy transport's message may be on its way before it
/// counts as lost: loopback delivers in microseconds, and a lost message
/// holds its call slot this long.
pub const LOSS_WAIT: Duration = Duration::from_millis(250);

/// What `clock` says when the send-to-receipt latency is measured.
pub const ONE_CLOCK: &str = "one machine's CLOCK_MONOTONIC (client and server on this host)";

/// A random id for a oneway session or a pubsub topic, from the kernel's
/// random source (the clock and pid if it cannot be read): two clients of
/// one server never share one.
pub fn session_id() -> u32 {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok() {
        return u32::from_be_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

fn done(cell: model::Cell) -> Outcome {
    Outcome::Done(Box::new(cell))
}

/// Makes one call before anything is measured: a mode the transport does
/// not offer makes the cell unsupported, with the transport's reason.
async fn first_call<C: Caller>(job: &CellJob, caller: &C) -> Result<(), model::Cell> {
    let mut scratch = C::Scratch::default();
    match caller.call(&mut scratch).await {
        Ok(_) => Ok(()),
        Err(Failure::Unsupported(why)) => Err(cell::unsupported(&job.spec, format!("{}: {why}", job.spec.transport))),
        // Anything else shows in the window, counted like every failure.
        Err(_) => Ok(()),
    }
}

// --------------------------------------------------------------- oneway

/// What a oneway caller counts of its own sends.
#[derive(Debug, Default)]
struct Sends {
    seq: Cell<u32>,
    /// The window as last heard: start, end, sub-window length.
    window: Cell<Option<(Instant, Instant, Duration)>>,
    in_window: Cell<u64>,
    total: Cell<u64>,
}

impl Sends {
    /// The next message's metadata: its number and the sub-window its send
    /// falls in.
    fn next(&self, session: u32) -> OnewayMeta {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let now = Instant::now();
        let bin = match self.window.get() {
            Some((start, end, bin)) if now >= start && now < end => {
                let i = now.duration_since(start).as_nanos() / bin.as_nanos().max(1);
                u32::try_from(i).unwrap_or(NO_BIN - 1).min(NO_BIN - 1)
            }
            _ => NO_BIN,
        };
        OnewayMeta { session, seq, sent_ns: monotonic_ns(), bin }
    }

    /// Counts a send the transport accepted.
    fn sent(&self, meta: OnewayMeta) {
        self.total.set(self.total.get() + 1);
        if meta.bin != NO_BIN {
            self.in_window.set(self.in_window.get() + 1);
        }
    }

    fn hear(&self, window: Window) {
        self.window.set(match window {
            Window::Open { start, end, bin } => Some((start, end, bin)),
            Window::Closed => None,
        });
    }
}

/// Oneway messages of a format over a transport.
struct Oneway<C: Client> {
    client: C,
    codec: Codec,
    method: Method,
    session: u32,
    sends: Sends,
    inproc: bool,
}

impl<C: Client> Caller for Oneway<C> {
    type Scratch = codec::Scratch;

    async fn call(&self, scratch: &mut codec::Scratch) -> Result<Completed, Failure> {
        let request = self.codec.encode_request(scratch).map_err(Failure::Error)?;
        let meta = self.sends.next(self.session);
        self.client.send_oneway(self.method, self.codec.id(), meta, request).await?;
        self.sends.sent(meta);
        Ok(Instant::now().into())
    }

    fn counters(&self) -> Option<Counters> {
        Some(self.client.counters())
    }

    fn never_waits(&self) -> bool {
        self.inproc
    }

    fn window(&self, window: Window) {
        self.sends.hear(window);
    }
}

/// Oneway messages through a stock framework's own fire-and-forget call.
struct StockOneway<F: Framework> {
    client: F::Client,
    request: F::Request,
    session: u32,
    sends: Sends,
}

impl<F: Framework> Caller for StockOneway<F> {
    type Scratch = ();

    async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
        let meta = self.sends.next(self.session);
        self.client.send_oneway(&self.request, meta).await?;
        self.sends.sent(meta);
        Ok(Instant::now().into())
    }

    fn counters(&self) -> Option<Counters> {
        self.client.counters()
    }

    fn window(&self, window: Window) {
        self.sends.hear(window);
    }
}

/// Where a oneway cell reads the server's count.
enum Reporter {
    /// The oneway-report control call on the server's tcp endpoint.
    Control(StreamClient<tokio::net::TcpStream>),
    /// The inproc server's handler, in this process.
    Handler(Arc<Handler>),
}

impl Reporter {
    async fn open(job: &CellJob) -> Result<Reporter, String> {
        if job.spec.transport == TransportKind::Inproc {
            return job.endpoint.inproc.clone().map(Reporter::Handler).ok_or_else(|| "inproc has no handler".into());
        }
        let Some(control) = &job.control else {
            return Err(
                "the server has no tcp endpoint for the oneway-report control call (add tcp=ADDR to --connect)".into(),
            );
        };
        let config = ClientConfig { connections: 1, ..job.client.clone() };
        <wirebench_transports::tcp::Tcp as Transport>::connect(control, &config)
            .await
            .map(Reporter::Control)
            .map_err(|e| format!("cannot reach the server's count: {e}"))
    }

    async fn report(&self, request: ReportRequest) -> Result<OnewayReport, String> {
        match self {
            Reporter::Control(c) => {
                c.oneway_report(request).await.map_err(|e| format!("the oneway report failed: {e}"))
            }
            Reporter::Handler(h) => Ok(h.oneway_sessions().report(request).await),
        }
    }
}

/// A oneway cell over own transport `T`.
pub(crate) async fn oneway_cell<T: Transport>(
    job: &CellJob,
    client: T::Client,
    codec: Codec,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let caller = Oneway::<T::Client> {
        client,
        codec,
        method: job.spec.workload.method(),
        session: session_id(),
        sends: Sends::default(),
        inproc: T::KIND == TransportKind::Inproc,
    };
    let session = caller.session;
    run_oneway(job, Rc::new(caller), |c| &c.sends, session, T::LOSSY, sizes, stop).await
}

/// A oneway cell over stock framework `F`.
pub async fn stock_oneway_cell<F: Framework>(
    job: &CellJob,
    client: F::Client,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let caller = StockOneway::<F> {
        client,
        request: F::prepare(&job.data.request()),
        session: session_id(),
        sends: Sends::default(),
    };
    let session = caller.session;
    run_oneway(job, Rc::new(caller), |c| &c.sends, session, false, sizes, stop).await
}

async fn run_oneway<C: Caller>(
    job: &CellJob,
    caller: Rc<C>,
    sends: fn(&C) -> &Sends,
    session: u32,
    lossy: bool,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    if let Err(cell) = first_call(job, &*caller).await {
        return done(cell);
    }
    let reporter = match Reporter::open(job).await {
        Ok(r) => r,
        Err(why) => return done(cell::failed(&job.spec, why, None)),
    };
    let Some((measured, server_cpu, probe)) = cell::measure_only(job, caller.clone(), stop).await else {
        return Outcome::Interrupted;
    };
    let s = sends(&caller);
    let (sent, sent_total) = (s.in_window.get(), s.total.get());
    // A reliable transport's messages all arrive: wait for them up to the
    // deadline. A lossy one's may not: stop once its session goes quiet.
    let deadline_ms = u32::try_from(job.timing.timeout.as_millis()).unwrap_or(u32::MAX);
    let quiet_ms = if lossy { LOSS_WAIT.as_millis() as u32 } else { deadline_ms };
    let request = ReportRequest { session, expected: sent_total, quiet_ms, deadline_ms };
    let report = match reporter.report(request).await {
        Ok(report) => report,
        Err(why) => {
            let mut cell =
                cell::measured_cell(job, measured, Sizes { reply: 0, reply_zstd: None, ..sizes }, server_cpu, probe);
            cell.status = CellStatus::Failed;
            cell.error = Some(why);
            return done(cell);
        }
    };
    let shape = (measured.windows, job.timing.samples.max(1), measured.window);
    let mut cell = cell::measured_cell(job, measured, Sizes { reply: 0, reply_zstd: None, ..sizes }, server_cpu, probe);
    oneway_figures(&mut cell, &report, Counts { sent, sent_total }, shape, job.same_clock, lossy, sizes.request);
    done(cell)
}

/// A oneway cell's own sends.
#[derive(Clone, Copy, Debug)]
struct Counts {
    sent: u64,
    sent_total: u64,
}

/// Replaces a oneway cell's client-side figures (its "calls" are sends,
/// timed to the transport's acceptance) with the server's count: calls are
/// deliveries, latency is send to receipt, the samples are the server's
/// per-sub-window counts; and fails it for loss where loss cannot happen.
fn oneway_figures(
    cell: &mut model::Cell,
    report: &OnewayReport,
    counts: Counts,
    (windows, samples, window): (u32, u32, Duration),
    same_clock: bool,
    lossy: bool,
    request_bytes: u64,
) {
    let bins_total = u64::from(windows.max(1)) * u64::from(samples);
    let in_window = |index: u32| u64::from(index) < bins_total;
    let delivered: u64 = report.bins.iter().filter(|b| in_window(b.index)).map(|b| b.delivered).sum();
    let lost = counts.sent.saturating_sub(delivered);
    let secs = window.as_secs_f64().max(1e-9);
    let latency = same_clock.then(|| passes::latency(&report.latency)).filter(|_| !report.latency.is_empty());
    let clock = if same_clock {
        ONE_CLOCK.to_owned()
    } else {
        "unavailable: the server is remote, its clock is not this one's".to_owned()
    };
    // The server's per-bin counts, regrouped into the planned samples.
    let sample_secs = secs / f64::from(samples);
    let mut groups: Vec<(u64, Option<Histogram<u64>>)> = (0..samples).map(|_| (0, None)).collect();
    for bin in report.bins.iter().filter(|b| in_window(b.index)) {
        let j = ((bin.index / windows.max(1)) as usize).min(samples as usize - 1);
        groups[j].0 += bin.delivered;
        match (&mut groups[j].1, &bin.latency) {
            (Some(sum), Some(h)) => {
                let _ = sum.add(h);
            }
            (slot @ None, Some(h)) => *slot = Some(h.clone()),
            _ => {}
        }
    }
    let quantile = |h: &Option<Histogram<u64>>, q: f64| {
        h.as_ref().filter(|h| same_clock && !h.is_empty()).map_or(0, |h| h.value_at_quantile(q))
    };
    cell.samples = groups
        .iter()
        .map(|(n, h)| Sample {
            group: 0,
            calls: *n,
            p50_ns: quantile(h, 0.5),
            p99_ns: quantile(h, 0.99),
            calls_per_sec: *n as f64 / sample_secs,
        })
        .collect();
    cell.histogram = if same_clock { histogram::encode(&report.latency).ok() } else { None };
    cell.histogram_uncorrected = None;
    let Some(m) = cell.metrics.as_mut() else { return };
    m.calls = delivered;
    m.calls_per_sec = delivered as f64 / secs;
    m.mb_per_sec = delivered as f64 * request_bytes as f64 / secs / 1e6;
    m.latency_kind = if latency.is_some() { "send-to-receipt" } else { "unavailable" }.to_owned();
    m.latency = latency.unwrap_or_default();
    m.latency_uncorrected = None;
    m.oneway = Some(OnewayFigures {
        sent: counts.sent,
        delivered,
        lost,
        refused: report.errors,
        sent_per_sec: counts.sent as f64 / secs,
        delivered_per_sec: delivered as f64 / secs,
        latency,
        clock,
        sent_total: counts.sent_total,
        delivered_total: report.delivered,
    });
    let mut problems = Vec::new();
    if report.errors > 0 {
        let first = report.first_error.as_deref().unwrap_or("no reason given");
        problems.push(format!("the server refused {} oneway messages; first: {first}", report.errors));
    }
    if delivered > counts.sent || report.delivered > counts.sent_total {
        problems.push(format!(
            "the server counted more messages than were sent ({delivered} of {} in the window, {} of {} in all)",
            counts.sent, report.delivered, counts.sent_total
        ));
    }
    if !lossy && report.delivered < counts.sent_total {
        problems.push(format!(
            "{} of {} oneway messages were lost ({lost} of {} sent in the window) on a transport that must not lose any",
            counts.sent_total - report.delivered,
            counts.sent_total,
            counts.sent
        ));
    }
    if report.overflow > 0 {
        problems.push(format!("{} messages carried a sub-window over the server's limit", report.overflow));
    }
    if !problems.is_empty() {
        let why = problems.join("; ");
        cell.error = Some(match (cell.status, cell.error.take()) {
            (CellStatus::Failed, Some(e)) => format!("{e}; {why}"),
            _ => why,
        });
        cell.status = CellStatus::Failed;
    } else if cell.status == CellStatus::Failed && cell.metrics.as_ref().is_some_and(|m| m.calls > 0) {
        // "no call completed" was about sends; deliveries decide now.
        let only_empty = cell.error.as_deref() == Some("no call completed in the measured window");
        if only_empty {
            cell.status = CellStatus::Ok;
            cell.error = None;
        }
    }
}

// --------------------------------------------------------------- stream

/// Replies of a stream, checked as they come.
struct Check<'a> {
    data: &'a Dataset,
    first: Option<Instant>,
    last: Option<Instant>,
    wrong: Option<String>,
}

impl<'a> Check<'a> {
    fn new(data: &'a Dataset) -> Check<'a> {
        Check { data, first: None, last: None, wrong: None }
    }

    /// Times a decoded reply (before it is verified) and verifies it.
    fn reply(&mut self, decoded: Result<wirebench_formats::Reply<'_>, String>) -> ControlFlow<()> {
        let at = Instant::now();
        let verified = decoded.and_then(|r| self.data.verify(&r).map_err(|w| w.0));
        if let Err(wrong) = verified {
            self.wrong = Some(wrong);
            return ControlFlow::Break(());
        }
        self.first.get_or_insert(at);
        self.last = Some(at);
        ControlFlow::Continue(())
    }

    fn completed(self, got: u32, replies: u32) -> Result<Completed, Failure> {
        if let Some(wrong) = self.wrong {
            return Err(Failure::Wrong(wrong));
        }
        match (self.first, self.last) {
            (Some(first), Some(last)) if got == replies => Ok(Completed { done: last, first: Some(first), missing: 0 }),
            _ => Err(Failure::Wrong(format!("a stream of {got} replies, {replies} asked for"))),
        }
    }
}

/// Stream calls of a format over a transport.
struct Stream<C: Client> {
    client: C,
    codec: Codec,
    method: Method,
    replies: u32,
    data: Arc<Dataset>,
}

impl<C: Client> Caller for Stream<C> {
    type Scratch = codec::Scratch;

    async fn call(&self, scratch: &mut codec::Scratch) -> Result<Completed, Failure> {
        let request = self.codec.encode_request(scratch).map_err(Failure::Error)?;
        let method = self.method;
        let mut check = Check::new(&self.data);
        let codec = &self.codec;
        let got = self
            .client
            .call_stream(method, codec.id(), request, self.replies, |body| {
                check.reply(codec.decode_reply(method, &body).map_err(|e| e.to_string()))
            })
            .await?;
        check.completed(got, self.replies)
    }

    fn counters(&self) -> Option<Counters> {
        Some(self.client.counters())
    }
}

/// Stream calls through a stock framework's own server streaming.
struct StockStream<F: Framework> {
    client: F::Client,
    request: F::Request,
    replies: u32,
    data: Arc<Dataset>,
}

impl<F: Framework> Caller for StockStream<F> {
    type Scratch = ();

    async fn call(&self, _: &mut ()) -> Result<Completed, Failure> {
        let mut check = Check::new(&self.data);
        let got = self.client.call_stream(&self.request, self.replies, |reply| check.reply(Ok(reply))).await?;
        check.completed(got, self.replies)
    }

    fn counters(&self) -> Option<Counters> {
        self.client.counters()
    }
}

/// A stream cell over own transport `T`.
pub(crate) async fn stream_cell<T: Transport>(
    job: &CellJob,
    client: T::Client,
    codec: Codec,
    replies: u32,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let caller =
        Stream::<T::Client> { client, codec, method: job.spec.workload.method(), replies, data: job.data.clone() };
    run_stream(job, Rc::new(caller), replies, sizes, stop).await
}

/// A stream cell over stock framework `F`.
pub async fn stock_stream_cell<F: Framework>(
    job: &CellJob,
    client: F::Client,
    replies: u32,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let caller = StockStream::<F> { client, request: F::prepare(&job.data.request()), replies, data: job.data.clone() };
    run_stream(job, Rc::new(caller), replies, sizes, stop).await
}

async fn run_stream<C: Caller>(
    job: &CellJob,
    caller: Rc<C>,
    replies: u32,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    if let Err(cell) = first_call(job, &*caller).await {
        return done(cell);
    }
    let Some((measured, server_cpu, probe)) = cell::measure_only(job, caller, stop).await else {
        return Outcome::Interrupted;
    };
    let first = measured.first.as_ref().map(passes::latency).unwrap_or_default();
    let mut cell = cell::measured_cell(job, measured, sizes, server_cpu, probe);
    if let Some(m) = cell.metrics.as_mut() {
        let secs = m.duration_s.max(1e-9);
        let streams = m.calls;
        m.mb_per_sec = streams as f64 * (sizes.request + u64::from(replies) * sizes.reply) as f64 / secs / 1e6;
        m.latency_kind = if m.latency_kind == "corrected" { "last-reply-corrected" } else { "last-reply" }.to_owned();
        m.stream = Some(StreamFigures {
            replies_per_stream: replies,
            streams,
            replies: streams * u64::from(replies),
            replies_per_sec: (streams * u64::from(replies)) as f64 / secs,
            first_reply: first,
            last_reply: m.latency,
        });
    }
    done(cell)
}

// --------------------------------------------------------------- pubsub

/// A published message on its way to the subscribers.
struct Pending {
    /// Subscribers that got it, one bit each.
    seen: u64,
    /// When each delivery arrived.
    got: Vec<Instant>,
    wrong: Option<String>,
    all: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What the subscribers' readers share with the publisher's calls.
#[derive(Default)]
struct Routes {
    pending: HashMap<u64, Pending>,
    /// Deliveries of messages no call waits for any more (after their
    /// deadline), or a second delivery to one subscriber.
    late: u64,
    /// The error that ended a subscription, if one did.
    broken: Option<String>,
}

/// Per-task state of a pubsub caller.
#[derive(Default)]
struct PubsubScratch {
    format: codec::Scratch,
    /// The last call's delivery instants (its buffer reused).
    deliveries: Vec<Instant>,
}

/// Messages of a format published to a topic, delivered to subscribers.
struct Pubsub<C: Client> {
    publisher: C,
    subscribers: Vec<C>,
    topic: String,
    codec: Codec,
    method: Method,
    k: u32,
    next: Cell<u64>,
    routes: Rc<RefCell<Routes>>,
    deadline: Duration,
    lossy: bool,
}

impl<C: Client> Caller for Pubsub<C> {
    type Scratch = PubsubScratch;
    const FANOUT: bool = true;

    async fn call(&self, scratch: &mut Self::Scratch) -> Result<Completed, Failure> {
        if let Some(e) = self.routes.borrow().broken.clone() {
            return Err(Failure::Broken(e));
        }
        let body = self.codec.encode_request(&mut scratch.format).map_err(Failure::Error)?;
        let seq = self.next.get() + 1;
        self.next.set(seq);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut got = std::mem::take(&mut scratch.deliveries);
        got.clear();
        self.routes.borrow_mut().pending.insert(seq, Pending { seen: 0, got, wrong: None, all: Some(tx) });
        let meta = PublishMeta { seq, sent_ns: monotonic_ns() };
        let published = self.publisher.publish(&self.topic, self.method, self.codec.id(), meta, body).await;
        let arrived = match published {
            Ok(()) => tokio::time::timeout(self.deadline, rx).await.is_ok(),
            Err(_) => false,
        };
        let entry = self.routes.borrow_mut().pending.remove(&seq);
        let Some(entry) = entry else { return Err(Failure::Error(format!("message {seq} vanished"))) };
        scratch.deliveries = entry.got;
        published?;
        if let Some(wrong) = entry.wrong {
            return Err(Failure::Wrong(wrong));
        }
        let missing = self.k.saturating_sub(scratch.deliveries.len() as u32);
        if missing > 0 && !self.lossy {
            return Err(Failure::Timeout);
        }
        // Lossy: what did not arrive by the deadline is reported missing.
        let _ = arrived;
        let first = scratch.deliveries.iter().min().copied();
        let last = scratch.deliveries.iter().max().copied().unwrap_or_else(Instant::now);
        Ok(Completed { done: last, first, missing })
    }

    fn counters(&self) -> Option<Counters> {
        let mut sum = self.publisher.counters();
        for s in &self.subscribers {
            sum = sum + s.counters();
        }
        Some(sum)
    }

    fn deliveries(scratch: &Self::Scratch) -> &[Instant] {
        &scratch.deliveries
    }
}

/// Reads one subscription until it ends, verifying each delivery and
/// handing its arrival to the call waiting for its message.
async fn route(
    mut subscription: wirebench_transports::Subscription,
    index: u32,
    k: u32,
    method: Method,
    expected: Codec,
    routes: Rc<RefCell<Routes>>,
) {
    while let Some(delivery) = subscription.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                routes.borrow_mut().broken.get_or_insert_with(|| format!("subscriber {index}: {e}"));
                return;
            }
        };
        let wrong = match expected.is_request(method, &delivery.body) {
            Ok(true) => None,
            Ok(false) => Some(format!("subscriber {index} got message {} with other contents", delivery.seq)),
            Err(e) => Some(format!("subscriber {index}: message {} does not decode: {e}", delivery.seq)),
        };
        let mut routes = routes.borrow_mut();
        let Some(pending) = routes.pending.get_mut(&delivery.seq) else {
            routes.late += 1;
            continue;
        };
        let bit = 1u64 << index;
        if pending.seen & bit != 0 {
            routes.late += 1;
            continue;
        }
        pending.seen |= bit;
        pending.got.push(delivery.received);
        if let Some(w) = wrong {
            pending.wrong.get_or_insert(w);
        }
        if pending.got.len() as u32 == k
            && let Some(all) = pending.all.take()
        {
            let _ = all.send(());
        }
    }
}

/// A pubsub cell over `T`: `publisher` and `k` more clients, each
/// subscribed to a fresh topic.
pub(crate) async fn pubsub_cell<T: Transport>(
    job: &CellJob,
    publisher: T::Client,
    codec: Codec,
    k: u32,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let topic = format!("wirebench.{:08x}", session_id());
    let method = job.spec.workload.method();
    let routes = Rc::new(RefCell::new(Routes::default()));
    let mut subscribers = Vec::new();
    let mut readers = Vec::new();
    for index in 0..k {
        let client = match cell::connect_retrying(|| T::connect(&job.endpoint, &job.client)).await {
            Ok(c) => c,
            Err(e) => return done(cell::failed(&job.spec, format!("subscriber {index}: {e}"), None)),
        };
        let subscription = match client.subscribe(&topic).await {
            Ok(s) => s,
            Err(wirebench_transports::CallError::Unsupported(why)) => {
                return done(cell::unsupported(&job.spec, format!("{}: {why}", T::KIND)));
            }
            Err(e) => return done(cell::failed(&job.spec, format!("subscriber {index} cannot subscribe: {e}"), None)),
        };
        let reader = route(subscription, index, k, method, codec.clone(), routes.clone());
        readers.push(tokio::task::spawn_local(reader));
        subscribers.push(client);
    }
    let deadline = if T::LOSSY { job.timing.timeout.min(LOSS_WAIT) } else { job.timing.timeout };
    let caller = Pubsub::<T::Client> {
        publisher,
        subscribers,
        topic,
        codec,
        method,
        k,
        next: Cell::new(0),
        routes: routes.clone(),
        deadline,
        lossy: T::LOSSY,
    };
    let outcome = run_pubsub(job, Rc::new(caller), k, routes, sizes, stop).await;
    for reader in readers {
        reader.abort();
    }
    outcome
}

async fn run_pubsub<C: Caller>(
    job: &CellJob,
    caller: Rc<C>,
    k: u32,
    routes: Rc<RefCell<Routes>>,
    sizes: Sizes,
    stop: Arc<AtomicBool>,
) -> Outcome {
    if let Err(cell) = first_call(job, &*caller).await {
        return done(cell);
    }
    let Some((measured, server_cpu, probe)) = cell::measure_only(job, caller, stop).await else {
        return Outcome::Interrupted;
    };
    let missing = measured.missing;
    let deliveries = measured.latency.len();
    let sizes = Sizes { reply: 0, reply_zstd: None, ..sizes };
    let mut cell = cell::measured_cell(job, measured, sizes, server_cpu, probe);
    if let Some(m) = cell.metrics.as_mut() {
        let secs = m.duration_s.max(1e-9);
        let messages = m.calls;
        m.calls = deliveries;
        m.calls_per_sec = deliveries as f64 / secs;
        m.mb_per_sec = deliveries as f64 * sizes.request as f64 / secs / 1e6;
        m.late_replies += routes.borrow().late;
        m.latency_kind = if m.latency_kind == "corrected" { "delivery-corrected" } else { "delivery" }.to_owned();
        m.pubsub = Some(PubsubFigures {
            subscribers: k,
            messages,
            deliveries,
            expected: messages * u64::from(k),
            lost: missing,
            messages_per_sec: messages as f64 / secs,
            deliveries_per_sec: deliveries as f64 / secs,
            latency: m.latency,
        });
    }
    done(cell)
}

/// Folds the mode figures of a cell's passes (sums; rates over the summed
/// windows; latencies from the folded histograms, which the caller sets).
pub fn fold(cell: &mut model::Cell, passes: &[&model::Cell]) {
    let metrics: Vec<&model::Metrics> = passes.iter().filter_map(|c| c.metrics.as_ref()).collect();
    let secs: f64 = metrics.iter().map(|m| m.duration_s).sum::<f64>().max(1e-9);
    let Some(m) = cell.metrics.as_mut() else { return };
    let ow: Vec<&OnewayFigures> = metrics.iter().filter_map(|m| m.oneway.as_ref()).collect();
    if let (Some(o), false) = (m.oneway.as_mut(), ow.is_empty()) {
        let sum = |f: fn(&OnewayFigures) -> u64| ow.iter().map(|o| f(o)).sum::<u64>();
        o.sent = sum(|o| o.sent);
        o.delivered = sum(|o| o.delivered);
        o.lost = sum(|o| o.lost);
        o.refused = sum(|o| o.refused);
        o.sent_total = sum(|o| o.sent_total);
        o.delivered_total = sum(|o| o.delivered_total);
        o.sent_per_sec = o.sent as f64 / secs;
        o.delivered_per_sec = o.delivered as f64 / secs;
        o.latency = o.latency.map(|_| m.latency);
    }
    let st: Vec<&StreamFigures> = metrics.iter().filter_map(|m| m.stream.as_ref()).collect();
    if let (Some(s), false) = (m.stream.as_mut(), st.is_empty()) {
        s.streams = st.iter().map(|s| s.streams).sum();
        s.replies = st.iter().map(|s| s.replies).sum();
        s.replies_per_sec = s.replies as f64 / secs;
        s.last_reply = m.latency;
        if let Some(h) = cell.histogram_first_reply.as_deref().and_then(|h| histogram::decode(h).ok()) {
            s.first_reply = passes::latency(&h);
        }
    }
    let ps: Vec<&PubsubFigures> = metrics.iter().filter_map(|m| m.pubsub.as_ref()).collect();
    if let (Some(p), false) = (m.pubsub.as_mut(), ps.is_empty()) {
        p.messages = ps.iter().map(|p| p.messages).sum();
        p.deliveries = ps.iter().map(|p| p.deliveries).sum();
        p.expected = ps.iter().map(|p| p.expected).sum();
        p.lost = ps.iter().map(|p| p.lost).sum();
        p.messages_per_sec = p.messages as f64 / secs;
        p.deliveries_per_sec = p.deliveries as f64 / secs;
        p.latency = m.latency;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_labelled_with_the_sub_window_they_fall_in() {
        let s = Sends::default();
        assert_eq!(s.next(1).bin, NO_BIN, "before the window opens");
        let start = Instant::now();
        s.hear(Window::Open { start, end: start + Duration::from_secs(60), bin: Duration::from_secs(10) });
        let meta = s.next(1);
        assert_eq!((meta.seq, meta.bin), (2, 0));
        s.sent(meta);
        s.hear(Window::Open {
            start: start - Duration::from_secs(25),
            end: start + Duration::from_secs(60),
            bin: Duration::from_secs(10),
        });
        assert_eq!(s.next(1).bin, 2, "25 s into 10 s sub-windows");
        s.hear(Window::Closed);
        let after = s.next(1);
        assert_eq!(after.bin, NO_BIN);
        s.sent(after);
        assert_eq!((s.in_window.get(), s.total.get()), (1, 2));
        // The window's end is exclusive.
        s.hear(Window::Open { start: start - Duration::from_secs(5), end: start, bin: Duration::from_secs(1) });
        assert_eq!(s.next(1).bin, NO_BIN);
    }

    fn report(bins: &[(u32, u64)], latency_ns: u64) -> OnewayReport {
        let mut r = OnewayReport::default();
        for &(index, delivered) in bins {
            let mut h = wirebench_transports::mode::latency_histogram(2);
            for _ in 0..delivered {
                h.record(latency_ns).unwrap();
                r.latency.record(latency_ns).unwrap();
            }
            r.bins.push(wirebench_transports::mode::BinCount { index, delivered, latency: Some(h) });
            r.delivered += delivered;
        }
        r
    }

    fn ok_cell() -> model::Cell {
        let mut c = model::Cell {
            key: "multiply/json/tcp/c1/oneway".into(),
            workload: "multiply".into(),
            workload_kind: "multiply".into(),
            size: None,
            format: "json".into(),
            transport: "tcp".into(),
            load: model::Load { model: "closed".into(), in_flight: 1, connections: 1, rate: None, clients: 1 },
            mode: model::Mode { kind: "oneway".into(), replies: None, subscribers: None },
            status: CellStatus::Ok,
            error: None,
            baseline: None,
            raw_shape: None,
            metrics: Some(model::Metrics::default()),
            samples: Vec::new(),
            histogram: None,
            histogram_uncorrected: None,
            histogram_first_reply: None,
            passes: Vec::new(),
            link: None,
            clients: Vec::new(),
        };
        c.metrics.as_mut().unwrap().latency_kind = "call".into();
        c
    }

    #[test]
    fn oneway_figures_count_by_sub_window_and_fail_loss_where_it_cannot_happen() {
        // 2 samples, 3 planned windows: bins 0..6; bin 6 is past the end.
        let r = report(&[(0, 10), (2, 5), (4, 7), (6, 3)], 20_000);
        let mut cell = ok_cell();
        let counts = Counts { sent: 22, sent_total: 40 };
        let mut all = r.clone();
        all.delivered = 40;
        oneway_figures(&mut cell, &all, counts, (3, 2, Duration::from_secs(2)), true, false, 10);
        let o = cell.metrics.as_ref().unwrap().oneway.clone().unwrap();
        assert_eq!((o.sent, o.delivered, o.lost), (22, 22, 0));
        assert_eq!(cell.status, CellStatus::Ok, "{:?}", cell.error);
        assert_eq!(cell.samples.iter().map(|s| s.calls).collect::<Vec<_>>(), vec![15, 7], "bins 0-2 and 3-5");
        assert!(cell.samples.iter().all(|s| s.p50_ns > 19_000 && s.p50_ns < 21_000));
        let m = cell.metrics.as_ref().unwrap();
        assert_eq!((m.calls, m.latency_kind.as_str()), (22, "send-to-receipt"));
        assert_eq!(m.calls_per_sec, 11.0);

        // A reliable transport that lost two: failed, loss reported.
        let mut lossy_report = r.clone();
        lossy_report.bins[0].delivered = 8;
        lossy_report.delivered = 38;
        let mut cell = ok_cell();
        oneway_figures(&mut cell, &lossy_report, counts, (3, 2, Duration::from_secs(2)), true, false, 10);
        assert_eq!(cell.status, CellStatus::Failed);
        assert!(cell.error.as_deref().unwrap().contains("2 of 40 oneway messages were lost"), "{:?}", cell.error);
        assert_eq!(cell.metrics.as_ref().unwrap().oneway.as_ref().unwrap().lost, 2);
        // The same on udp: reported, not a failure.
        let mut cell = ok_cell();
        oneway_figures(&mut cell, &lossy_report, counts, (3, 2, Duration::from_secs(2)), true, true, 10);
        assert_eq!(cell.status, CellStatus::Ok);
        assert_eq!(cell.metrics.as_ref().unwrap().oneway.as_ref().unwrap().lost, 2);
        // A remote server: counts, no latency.
        let mut cell = ok_cell();
        oneway_figures(&mut cell, &all, counts, (3, 2, Duration::from_secs(2)), false, false, 10);
        let m = cell.metrics.as_ref().unwrap();
        assert_eq!(m.latency_kind, "unavailable");
        assert!(m.oneway.as_ref().unwrap().latency.is_none() && cell.histogram.is_none());
        assert!(cell.samples.iter().all(|s| s.p50_ns == 0));
        // Refusals and duplicates fail the cell.
        let mut refused = all.clone();
        refused.errors = 1;
        refused.first_error = Some("bad".into());
        let mut cell = ok_cell();
        oneway_figures(&mut cell, &refused, counts, (3, 2, Duration::from_secs(2)), true, true, 10);
        assert!(cell.error.unwrap().contains("refused 1"));
        let mut cell = ok_cell();
        oneway_figures(
            &mut cell,
            &all,
            Counts { sent: 20, sent_total: 40 },
            (3, 2, Duration::from_secs(2)),
            true,
            true,
            10,
        );
        assert!(cell.error.unwrap().contains("more messages than were sent"));
    }
}
