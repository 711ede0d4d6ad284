//! Apache Thrift's own RPC: the `thrift` crate's generated `Bench` client
//! and processor (from `formats/schemas/bench.thrift`, code committed in
//! `formats/src/generated/bench_thrift.rs`), its framed transport and its
//! compact protocol (`thrift-rpc`) or binary protocol (`thrift-rpc-binary`,
//! strict). The bytes are what every Apache Thrift implementation speaks
//! with `TFramedTransport`: a 4-byte big-endian frame length, then one
//! TMessage (call or reply, method name, sequence id) holding the method's
//! argument or result struct. Failures travel as the declared exception
//! `BenchError` (the contract's status code and a message), or as Thrift's
//! `TApplicationException` for what the processor itself refuses.
//!
//! The crate's server and client are blocking, and they run here as their
//! users run them:
//!
//! - Server: the crate's model, one worker thread owning a connection for
//!   its whole life, reading a frame, running the generated processor,
//!   writing the reply frame. The crate's `TServer` cannot be used as it
//!   stands: `listen` binds its own address (so port 0 cannot be learned),
//!   never returns (so a server cannot be shut down) and runs connections
//!   on a fixed pool (so connection N+1 waits for one of N to close, and N
//!   stalled clients stop the server). The accept loop is therefore ours,
//!   on tokio, and each accepted socket is handed, as a blocking
//!   `std::net::TcpStream`, to a thread of its own that does exactly what
//!   `TServer`'s worker does: the crate's framed transports and protocols
//!   around the generated `BenchSyncProcessor`, `process` in a loop until
//!   the peer leaves or breaks the protocol.
//! - Client: the generated `BenchSyncClient` is one blocking call at a time
//!   on one connection (the protocol has sequence ids, but the crate's
//!   client, like Apache's others, waits for each reply before the next
//!   call). The harness calls from async tasks on one thread, so each
//!   connection's client lives on a thread of its own and async callers
//!   hand it their calls over a channel, getting the reply back on a
//!   oneshot: calling it on the caller's thread would block every other
//!   call and the harness's own timers. Calls beyond one per connection
//!   queue for it, which is the framework's concurrency: a Thrift user
//!   who wants more calls in flight opens more connections
//!   (`--connections`). The two thread hops per call are part of what is
//!   measured.
//!
//! Limits: the crate's framed transport refuses frames over
//! `TConfiguration::DEFAULT_MAX_FRAME_SIZE` (16,384,000 bytes) and cannot
//! be configured otherwise; below that, the protocols are configured to
//! `max_message` (strings, messages) and to a container length whose
//! up-front reservation by the generated code stays within one frame.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol, TInputProtocol,
    TOutputProtocol,
};
use thrift::server::TProcessor;
use thrift::transport::{TFramedReadTransport, TFramedWriteTransport};
use thrift::{ApplicationErrorKind, TConfiguration, TransportErrorKind};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use wirebench_formats::format::thrift::{ThriftCompact, ThriftFormat, ThriftRequest, th};
use wirebench_formats::{Batch, Code, DigestReply, Format, FormatId, OwnedRequest, Reply, Status};

use crate::framework::{Framework, FrameworkClient};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, LiveCounters, TransportError, TransportKind,
    TransportProperties,
};

/// Apache Thrift RPC, framed transport, compact protocol.
pub type ThriftRpc = ThriftRpcOf<true>;
/// Apache Thrift RPC, framed transport, binary protocol (strict).
pub type ThriftRpcBinary = ThriftRpcOf<false>;

/// Apache Thrift RPC; `COMPACT` selects TCompactProtocol over
/// TBinaryProtocol.
#[derive(Debug)]
pub struct ThriftRpcOf<const COMPACT: bool>;

/// The largest frame the crate's framed transport accepts.
pub const FRAME_LIMIT: usize = TConfiguration::DEFAULT_MAX_FRAME_SIZE;

impl<const COMPACT: bool> Framework for ThriftRpcOf<COMPACT> {
    const KIND: TransportKind = if COMPACT { TransportKind::ThriftRpc } else { TransportKind::ThriftRpcBinary };
    const FORMAT: FormatId = if COMPACT { FormatId::ThriftCompact } else { FormatId::ThriftBinary };
    const BASELINE: TransportKind = TransportKind::Tcp;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: if COMPACT {
            "thrift 0.25 (Apache Thrift's generated sync client and processor), TCompactProtocol"
        } else {
            "thrift 0.25 (Apache Thrift's generated sync client and processor), TBinaryProtocol (strict)"
        },
        security: "none",
        delivery: "reliable, ordered (TCP)",
        multiplexing: "one call at a time per connection (blocking client on its own thread; more calls queue), \
                       a server thread per connection",
        framing: "TFramedTransport (4-byte length, frames up to 16,384,000 bytes, the crate's fixed limit), \
                  TMessage envelope",
        wire_bytes: "exact at the socket (client side)",
    };
    type Request = ThriftRequest;
    type Client = ThriftRpcClient;

    fn prepare(request: &OwnedRequest<Batch>) -> ThriftRequest {
        // The generated structs are the same for both protocols.
        ThriftCompact::prepare(request)
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<ThriftRpcClient, TransportError> {
        ThriftRpcClient::connect::<COMPACT>(endpoint, config).await
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve::<COMPACT>(listen, config).await
    }
}

const fn kind(compact: bool) -> TransportKind {
    if compact { TransportKind::ThriftRpc } else { TransportKind::ThriftRpcBinary }
}

/// Protocol limits for messages of up to `max_message` bytes: strings and
/// messages up to it (and never over a frame), containers short enough
/// that reserving them up front, as the generated code does before reading
/// a list, takes no more memory than one frame even for the schema's
/// largest element, a `Record`.
fn limits(max_message: usize) -> thrift::Result<TConfiguration> {
    let limit = max_message.min(FRAME_LIMIT);
    TConfiguration::builder()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .max_string_size(Some(limit))
        .max_container_size(Some(limit / size_of::<th::Record>()))
        .build()
}

type InputProtocol = Box<dyn TInputProtocol + Send>;
type OutputProtocol = Box<dyn TOutputProtocol + Send>;

/// The crate's framed transports and the chosen protocol around a
/// connection's two halves, as `TServer` builds them for a connection.
fn protocols<const COMPACT: bool>(
    read: impl Read + Send + 'static,
    write: impl Write + Send + 'static,
    config: TConfiguration,
) -> (InputProtocol, OutputProtocol) {
    let (read, write) = (TFramedReadTransport::new(read), TFramedWriteTransport::new(write));
    if COMPACT {
        (
            Box::new(TCompactInputProtocol::with_config(read, config.clone())),
            Box::new(TCompactOutputProtocol::with_config(write, config)),
        )
    } else {
        (
            Box::new(TBinaryInputProtocol::with_config(read, true, config.clone())),
            Box::new(TBinaryOutputProtocol::with_config(write, true, config)),
        )
    }
}

// ------------------------------------------------------------------ server

/// The `Bench` service behind the generated processor: the formats'
/// service logic, the same faults as every other server.
struct BenchHandler<const COMPACT: bool> {
    handler: Arc<Handler>,
}

/// A refused call, as the schema declares it.
fn bench_error(status: Status) -> thrift::Error {
    th::BenchError::new(i32::from(status.code.value()), status.message).into()
}

impl<const COMPACT: bool> BenchHandler<COMPACT> {
    fn enter(&self) {
        self.handler.admit_blocking();
        self.handler.count_call(<ThriftRpcOf<COMPACT> as Framework>::FORMAT);
    }
}

impl<const COMPACT: bool> th::BenchSyncHandler for BenchHandler<COMPACT> {
    fn handle_multiply(&self, request: th::MultiplyRequest) -> thrift::Result<th::MultiplyReply> {
        self.enter();
        let product = self.handler.service().multiply(request.a, request.b).map_err(bench_error)?;
        Ok(th::MultiplyReply { product })
    }

    fn handle_echo(&self, request: th::EchoRequest) -> thrift::Result<th::EchoReply> {
        self.enter();
        // The reply moves the request's bytes, unless a test fault made the
        // service answer something else.
        let payload = match self.handler.service().echo(&request.payload) {
            Cow::Borrowed(_) => None,
            Cow::Owned(wrong) => Some(wrong),
        }
        .unwrap_or(request.payload);
        Ok(th::EchoReply { payload })
    }

    fn handle_digest(&self, batch: th::Batch) -> thrift::Result<th::DigestReply> {
        self.enter();
        ThriftFormat::<COMPACT>::check(&batch).map_err(|e| bench_error(e.into()))?;
        let d = self.handler.service().digest(&batch.records).map_err(|e| bench_error(e.into()))?;
        // u32 and u64 as the signed types of their width, as the schema says.
        Ok(th::DigestReply { records: d.records as i32, checksum: d.checksum as i64 })
    }
}

type Processor<const COMPACT: bool> = th::BenchSyncProcessor<BenchHandler<COMPACT>>;

/// Binds `listen` and serves until shut down: accepts on tokio, serves
/// each connection on a blocking thread of its own.
async fn serve<const COMPACT: bool>(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
    let kind = kind(COMPACT);
    let address = listen.inet(kind)?;
    let listener = TcpListener::bind(address).await.map_err(|e| TransportError::io(kind, "bind", address, e))?;
    let local = listener.local_addr().map_err(|e| TransportError::io(kind, "bind", address, e))?;
    let limits = limits(config.max_message).map_err(|e| TransportError::Config(format!("{kind}: {e}")))?;
    let processor: Arc<Processor<COMPACT>> =
        Arc::new(th::BenchSyncProcessor::new(BenchHandler { handler: Handler::new(&config) }));
    Ok(Server::spawn(Endpoint::new(kind, Address::Inet(local)), move |mut shutdown, mut connections| async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if let Err(e) = start_connection(stream, &processor, &limits, shutdown.clone(), &mut connections) {
                            tracing::warn!("{kind}: cannot serve {peer}: {e}");
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("{kind}: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = shutdown.wait() => return connections,
            }
            while connections.try_join_next().is_some() {}
        }
    }))
}

/// Hands an accepted connection to a thread of its own. A task in the
/// server's set waits for the thread, so shutdown drains it: at shutdown
/// it shuts the socket's read side, which ends the thread's wait for the
/// next request (a request already read is still answered).
fn start_connection<const COMPACT: bool>(
    stream: tokio::net::TcpStream,
    processor: &Arc<Processor<COMPACT>>,
    limits: &TConfiguration,
    mut shutdown: ShutdownSignal,
    connections: &mut JoinSet<()>,
) -> std::io::Result<()> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let (read, closer) = (stream.try_clone()?, stream.try_clone()?);
    let (processor, limits) = (processor.clone(), limits.clone());
    let (done, finished) = oneshot::channel::<()>();
    std::thread::Builder::new().name(format!("{}-conn", kind(COMPACT))).spawn(move || {
        let (mut input, mut output) = protocols::<COMPACT>(read, stream, limits);
        serve_connection(&*processor, &mut *input, &mut *output);
        let _ = done.send(());
    })?;
    connections.spawn(async move {
        let mut finished = finished;
        tokio::select! {
            _ = &mut finished => {}
            () = shutdown.wait() => {
                let _ = closer.shutdown(Shutdown::Read);
                let _ = finished.await;
            }
        }
    });
    Ok(())
}

/// `TServer`'s worker loop: process requests until the peer leaves or the
/// processor fails (a frame over the limit, bytes that are not a Thrift
/// message), then drop the connection.
fn serve_connection(processor: &dyn TProcessor, input: &mut dyn TInputProtocol, output: &mut dyn TOutputProtocol) {
    loop {
        match processor.process(input, output) {
            Ok(()) => {}
            Err(thrift::Error::Transport(e)) if e.kind == TransportErrorKind::EndOfFile => return,
            Err(e) => {
                tracing::debug!("thrift-rpc: closing a connection: {e}");
                return;
            }
        }
    }
}

// ------------------------------------------------------------------ client

/// A blocking socket half that counts what passes through it: the
/// counting layer's twin for the crate's `std::io` transports.
struct Counted<T> {
    inner: T,
    counters: Arc<LiveCounters>,
}

impl<T: Read> Read for Counted<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters.received(n);
        Ok(n)
    }
}

impl<T: Write> Write for Counted<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.counters.sent(n);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One call handed to a connection's thread.
struct Job {
    request: ThriftRequest,
    reply: oneshot::Sender<Result<Reply<'static>, CallError>>,
}

/// The stock Thrift client: one generated `BenchSyncClient` per
/// connection, each on a thread of its own.
#[derive(Debug)]
pub struct ThriftRpcClient {
    connections: Vec<mpsc::UnboundedSender<Job>>,
    next: Cell<usize>,
    counters: Arc<LiveCounters>,
    timeout: Duration,
}

type SyncClient = th::BenchSyncClient<InputProtocol, OutputProtocol>;

impl ThriftRpcClient {
    /// Connects `config.connections` connections, each with its client
    /// thread. Replies are read with the client's limits (`max_message`);
    /// a socket read or write that waits longer than the call deadline
    /// fails, and so ends, its connection.
    async fn connect<const COMPACT: bool>(
        endpoint: &Endpoint,
        config: &ClientConfig,
    ) -> Result<ThriftRpcClient, TransportError> {
        let kind = kind(COMPACT);
        let address = endpoint.address.inet(kind)?;
        let limits = limits(config.max_message).map_err(|e| TransportError::Config(format!("{kind}: {e}")))?;
        let counters = Arc::new(LiveCounters::default());
        let mut connections = Vec::new();
        for _ in 0..config.connections.max(1) {
            let stream = match tokio::time::timeout(config.timeout, tokio::net::TcpStream::connect(address)).await {
                Ok(connected) => connected.map_err(|e| TransportError::io(kind, "connect", address, e))?,
                Err(_) => {
                    let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within the deadline");
                    return Err(TransportError::io(kind, "connect", address, cause));
                }
            };
            let socket = || -> std::io::Result<(std::net::TcpStream, std::net::TcpStream)> {
                let stream = stream.into_std()?;
                stream.set_nonblocking(false)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(config.timeout))?;
                stream.set_write_timeout(Some(config.timeout))?;
                Ok((stream.try_clone()?, stream))
            };
            let (read, write) = socket().map_err(|e| TransportError::io(kind, "connect", address, e))?;
            let (input, output) = protocols::<COMPACT>(
                Counted { inner: read, counters: counters.clone() },
                Counted { inner: write, counters: counters.clone() },
                limits.clone(),
            );
            let (jobs, queue) = mpsc::unbounded_channel();
            let client = th::BenchSyncClient::new(input, output);
            std::thread::Builder::new()
                .name(format!("{kind}-client"))
                .spawn(move || run_connection(client, queue))
                .map_err(|e| TransportError::io(kind, "start a client thread for", address, e))?;
            connections.push(jobs);
        }
        Ok(ThriftRpcClient { connections, next: Cell::new(0), counters, timeout: config.timeout })
    }

    /// Bytes on the wire so far.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}

impl FrameworkClient for ThriftRpcClient {
    type Request = ThriftRequest;

    /// The generated client takes its argument struct by value, so each
    /// call clones the prepared one, as an application building a request
    /// would.
    async fn call(&self, request: &ThriftRequest) -> Result<Reply<'static>, CallError> {
        let i = self.next.get();
        self.next.set((i + 1) % self.connections.len());
        let (reply, answer) = oneshot::channel();
        let closed = || CallError::Closed("the thrift connection's client thread has ended".into());
        self.connections[i].send(Job { request: request.clone(), reply }).map_err(|_| closed())?;
        crate::with_timeout(self.timeout, async move { answer.await.map_err(|_| closed())? }).await
    }

    fn counters(&self) -> Option<Counters> {
        Some(ThriftRpcClient::counters(self))
    }
}

/// A connection's thread: runs each call through the generated client, in
/// order, until the client is dropped or the connection breaks. After a
/// break the calls still queued, and later ones, fail as `Closed`.
fn run_connection(mut client: SyncClient, mut queue: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = queue.blocking_recv() {
        let (result, broken) = call(&mut client, job.request);
        let _ = job.reply.send(result);
        if broken {
            return;
        }
    }
}

/// One call; `true` beside the result when the connection cannot carry
/// another (the stream is no longer at a message boundary).
fn call(client: &mut SyncClient, request: ThriftRequest) -> (Result<Reply<'static>, CallError>, bool) {
    use th::TBenchSyncClient;
    let result = match request {
        ThriftRequest::Multiply(m) => client.multiply(m).map(|r| Reply::Multiply { product: r.product }),
        ThriftRequest::Echo(e) => client.echo(e).map(|r| Reply::Echo { payload: Cow::Owned(r.payload) }),
        ThriftRequest::Digest(b) => client
            .digest(b)
            .map(|d| Reply::Digest(DigestReply { records: d.records as u32, checksum: d.checksum as u64 })),
    };
    match result {
        Ok(reply) => (Ok(reply), false),
        Err(e) => from_thrift(e),
    }
}

/// A failed call as wirebench reports it, and whether it broke the
/// connection.
fn from_thrift(e: thrift::Error) -> (Result<Reply<'static>, CallError>, bool) {
    match e {
        thrift::Error::User(e) => match e.downcast::<th::BenchError>() {
            Ok(e) => {
                let status = match u32::try_from(e.code).ok().and_then(Code::from_value) {
                    Some(code) => Status::new(code, e.message),
                    None => Status::new(Code::Internal, format!("status {}: {}", e.code, e.message)),
                };
                (Err(CallError::Status(status)), false)
            }
            // The generated client declares no other exception.
            Err(other) => (Err(CallError::Protocol(format!("undeclared thrift exception: {other}"))), false),
        },
        // Raised by the generated client itself on a reply header that does
        // not answer its call: the stream is out of step.
        thrift::Error::Application(a)
            if matches!(
                a.kind,
                ApplicationErrorKind::BadSequenceId
                    | ApplicationErrorKind::WrongMethodName
                    | ApplicationErrorKind::InvalidMessageType
            ) =>
        {
            (Err(CallError::Protocol(format!("thrift: {:?}: {}", a.kind, a.message))), true)
        }
        // A TApplicationException from the server (read in full), or a
        // reply without a result.
        thrift::Error::Application(a) => {
            let code = match a.kind {
                ApplicationErrorKind::UnknownMethod => Code::Unimplemented,
                ApplicationErrorKind::ProtocolError => Code::InvalidArgument,
                _ => Code::Internal,
            };
            (Err(CallError::Status(Status::new(code, format!("thrift {:?}: {}", a.kind, a.message)))), false)
        }
        thrift::Error::Transport(t) => {
            let e = match t.kind {
                TransportErrorKind::EndOfFile => CallError::Closed(format!("thrift: {}", t.message)),
                TransportErrorKind::TimedOut => CallError::Io(format!("thrift: timed out: {}", t.message)),
                _ => CallError::Io(format!("thrift: {:?}: {}", t.kind, t.message)),
            };
            (Err(e), true)
        }
        thrift::Error::Protocol(p) => (Err(CallError::Protocol(format!("thrift: {:?}: {}", p.kind, p.message))), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_keep_a_list_reservation_within_a_frame() {
        for max in [1024, 1 << 20, 16 << 20, usize::MAX] {
            let config = limits(max).unwrap();
            let limit = max.min(FRAME_LIMIT);
            assert_eq!(config.max_string_size(), Some(limit));
            let records = config.max_container_size().unwrap();
            assert!(records * size_of::<th::Record>() <= limit, "{max}");
            // Still room for any batch this suite sends in a frame.
            assert!(max < (1 << 20) || records >= 1000, "{max}: {records}");
        }
    }

    #[test]
    fn a_declared_exception_is_a_status_and_keeps_the_connection() {
        let e: thrift::Error = th::BenchError::new(11, "overflow".into()).into();
        let (result, broken) = from_thrift(e);
        assert!(!broken);
        match result {
            Err(CallError::Status(s)) => assert_eq!((s.code, s.message.as_str()), (Code::OutOfRange, "overflow")),
            other => panic!("{other:?}"),
        }
        let (result, _) = from_thrift(th::BenchError::new(99, "odd".into()).into());
        assert!(matches!(result, Err(CallError::Status(s)) if s.code == Code::Internal && s.message.contains("99")));
    }

    #[test]
    fn an_out_of_step_reply_breaks_the_connection() {
        let e = thrift::Error::Application(thrift::ApplicationError::new(ApplicationErrorKind::BadSequenceId, "x"));
        assert!(matches!(from_thrift(e), (Err(CallError::Protocol(_)), true)));
        let e = thrift::Error::Application(thrift::ApplicationError::new(ApplicationErrorKind::UnknownMethod, "x"));
        assert!(matches!(from_thrift(e), (Err(CallError::Status(s)), false) if s.code == Code::Unimplemented));
    }
}
