//! Framed RPC over a byte stream: the client, the server and the raw
//! ping-pong shared by [`crate::tcp`] and [`crate::unix`].
//!
//! Client: many calls in flight per connection, replies matched by request
//! id. Whoever waits for a reply and finds the read half free becomes the
//! reader: it reads frames until its own reply arrives, handing the others
//! to their callers. At one call in flight the caller reads its own reply;
//! no task sits between the socket and the caller.
//!
//! Server: one task per connection; it serves every complete request in
//! its buffer, then writes all their replies with one write.
//!
//! The other call modes: a oneway frame is served and counted, with no
//! reply; a stream request gets its replies as consecutive frames of its
//! request id; the oneway-report control call answers from the count.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use wirebench_formats::{Code, FormatId, Method, ServerScratch, Status};

use crate::demux::{Arrived, Demux, Incoming};
use crate::frame::{self, CALL_ENVIRONMENT, CALL_ONEWAY_REPORT, CALL_STATS, Extension, FrameError, Header, Preamble};
use crate::mode::{OnewayMeta, OnewayReport, ReportRequest};
use crate::server::{Handler, ShutdownSignal};
use crate::{CallError, ClientConfig, Counters, LiveCounters, RawShape, TransportError, TransportKind, with_timeout};

/// A byte stream that splits into owned halves without a lock.
pub trait SplitStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The read half.
    type Read: AsyncRead + Send + Unpin + std::fmt::Debug + 'static;
    /// The write half.
    type Write: AsyncWrite + Send + Unpin + std::fmt::Debug + 'static;
    /// Splits the stream.
    fn split(self) -> (Self::Read, Self::Write);
}

impl SplitStream for tokio::net::TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl SplitStream for tokio::net::UnixStream {
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// Read buffers grow by at least this much, so small frames arrive in
/// few reads.
const READ_CHUNK: usize = 16 << 10;
/// Replies at least this large are written straight from the codec's
/// buffer instead of being copied into the batch of small replies.
const DIRECT_WRITE: usize = 16 << 10;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves plain data behind; carry on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A read half and the bytes read from it that no frame has claimed yet.
#[derive(Debug)]
pub(crate) struct ReadState<R> {
    io: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> ReadState<R> {
    /// Reads more bytes. Cancel-safe: bytes read stay in `buf`.
    async fn fill(&mut self, counters: &LiveCounters) -> Result<(), CallError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(CallError::Closed("the peer closed the connection".into()));
        }
        counters.received(n);
        Ok(())
    }

    /// The next whole frame. Cancel-safe.
    async fn next_frame(&mut self, max_body: usize, counters: &LiveCounters) -> Result<(Header, Bytes), CallError> {
        loop {
            if let Some(frame) = frame::take_frame(&mut self.buf, max_body)? {
                return Ok(frame);
            }
            self.fill(counters).await?;
        }
    }
}

/// Writes `head` then `body` with as few syscalls as the OS allows.
async fn write_two<W: AsyncWrite + Unpin>(w: &mut W, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = w.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    w.write_all(body).await
}

impl<R: AsyncRead + Send + Unpin + 'static> Incoming for (ReadState<R>, usize) {
    async fn next(&mut self, counters: &LiveCounters) -> Result<Arrived, CallError> {
        let (header, body) = self.0.next_frame(self.1, counters).await?;
        let index = match header.ext {
            Extension::Stream(index) => Some(index),
            _ => None,
        };
        Ok(Arrived { id: header.request_id, index, reply: reply_result(&header, body) })
    }
}

/// One client connection.
#[derive(Debug)]
struct Connection<S: SplitStream> {
    writer: tokio::sync::Mutex<S::Write>,
    demux: Demux<(ReadState<S::Read>, usize)>,
    next_id: AtomicU32,
}

/// Marks the connection broken if a write is abandoned half way (a timed
/// out call dropped mid-frame would leave the peer out of sync).
struct WriteGuard<'a, S: SplitStream> {
    connection: &'a Connection<S>,
    done: bool,
}

impl<S: SplitStream> Drop for WriteGuard<'_, S> {
    fn drop(&mut self) {
        if !self.done {
            self.connection.demux.fail(CallError::Closed("a write was abandoned mid-frame".into()));
        }
    }
}

/// The outcome a reply frame carries: its body, or its status.
pub(crate) fn reply_result(header: &Header, body: Bytes) -> Result<Bytes, CallError> {
    if !header.is_reply() {
        return Err(FrameError::Direction { expected: "reply", got: "request" }.into());
    }
    if header.status == 0 {
        return Ok(body);
    }
    let message = String::from_utf8_lossy(&body).into_owned();
    Err(CallError::Status(match Code::from_value(u32::from(header.status)) {
        Some(code) => Status::new(code, message),
        None => Status::new(Code::Internal, format!("unknown status {}: {message}", header.status)),
    }))
}

impl<S: SplitStream> Connection<S> {
    fn new(stream: S, counters: Arc<LiveCounters>, max_message: usize) -> Connection<S> {
        let (read, write) = stream.split();
        let reader = (ReadState { io: read, buf: BytesMut::with_capacity(READ_CHUNK) }, max_message);
        Connection {
            writer: tokio::sync::Mutex::new(write),
            demux: Demux::new(reader, counters),
            next_id: AtomicU32::new(1),
        }
    }

    async fn write(&self, header: Header, body: &[u8]) -> Result<(), CallError> {
        let mut writer = self.writer.lock().await;
        let mut guard = WriteGuard { connection: self, done: false };
        let written = write_two(&mut *writer, &header.to_bytes(), body).await;
        guard.done = true;
        if let Err(e) = written {
            let e = CallError::from(e);
            self.demux.fail(e.clone());
            return Err(e);
        }
        self.demux.counters.sent(header.wire_len() + body.len());
        Ok(())
    }

    async fn call(&self, call: u8, format: u8, body: &[u8]) -> Result<Bytes, CallError> {
        let len = checked_len(body)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let waiter = self.demux.register(id)?;
        self.write(Header::request(id, call, format, len), body).await?;
        self.demux.wait(waiter).await
    }

    async fn send_oneway(&self, call: u8, format: u8, meta: OnewayMeta, body: &[u8]) -> Result<(), CallError> {
        let len = checked_len(body)?;
        if let Some(e) = self.demux.broken() {
            return Err(e);
        }
        self.write(Header::oneway(meta.seq, call, format, len, meta.extension()), body).await
    }

    async fn call_stream<R>(
        &self,
        call: u8,
        format: u8,
        body: &[u8],
        replies: u32,
        on_reply: R,
    ) -> Result<u32, CallError>
    where
        R: FnMut(Bytes) -> ControlFlow<()> + Send,
    {
        let len = checked_len(body)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let send = self.write(Header::stream(id, call, format, len, replies), body);
        self.demux.call_stream(id, send, replies, on_reply).await
    }
}

/// A body's length as a frame declares it, or why it cannot be sent.
fn checked_len(body: &[u8]) -> Result<u32, CallError> {
    frame::body_len(body.len()).ok_or(CallError::TooLarge {
        transport: "stream",
        size: body.len(),
        limit: frame::MAX_BODY as usize - frame::MAX_EXTENSION,
    })
}

/// The framed RPC client of a stream transport.
#[derive(Debug)]
pub struct StreamClient<S: SplitStream> {
    connections: Vec<Connection<S>>,
    next: AtomicUsize,
    counters: Arc<LiveCounters>,
    timeout: Duration,
}

impl<S: SplitStream> StreamClient<S> {
    /// Sends the RPC preamble on each stream and wraps them.
    pub async fn new(streams: Vec<S>, config: &ClientConfig) -> std::io::Result<StreamClient<S>> {
        let counters = Arc::new(LiveCounters::default());
        let mut connections = Vec::with_capacity(streams.len());
        for mut stream in streams {
            let preamble = Preamble::Rpc.to_bytes();
            stream.write_all(&preamble).await?;
            counters.sent(preamble.len());
            connections.push(Connection::new(stream, counters.clone(), config.max_message));
        }
        Ok(StreamClient { connections, next: AtomicUsize::new(0), counters, timeout: config.timeout })
    }

    /// The server's CPU time and call count (the server-stats control call).
    pub async fn server_stats(&self) -> Result<ServerStats, CallError> {
        let body = with_timeout(self.timeout, self.connections[0].call(CALL_STATS, 0, &[])).await?;
        ServerStats::parse(&body)
    }

    /// The server's machine (the server-environment control call).
    pub async fn server_environment(&self) -> Result<crate::host::HostInfo, CallError> {
        let body = with_timeout(self.timeout, self.connections[0].call(CALL_ENVIRONMENT, 0, &[])).await?;
        crate::host::HostInfo::parse(&body)
    }

    /// The server's count of a oneway session (the oneway-report control
    /// call): it answers once `request.expected` messages arrived, the
    /// session went quiet, or the request's deadline passed.
    pub async fn oneway_report(&self, request: ReportRequest) -> Result<OnewayReport, CallError> {
        let wait = self.timeout + request.deadline();
        let body = with_timeout(wait, self.connections[0].call(CALL_ONEWAY_REPORT, 0, &request.to_bytes())).await?;
        OnewayReport::parse(&body).map_err(|e| CallError::Protocol(e.to_string()))
    }

    fn pick(&self) -> &Connection<S> {
        &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()]
    }
}

impl<S: SplitStream> crate::Client for StreamClient<S> {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        with_timeout(self.timeout, self.pick().call(method.id(), format as u8, request)).await
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    async fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> Result<(), CallError> {
        with_timeout(self.timeout, self.pick().send_oneway(method.id(), format as u8, meta, request)).await
    }

    async fn call_stream<R>(
        &self,
        method: Method,
        format: FormatId,
        request: &[u8],
        replies: u32,
        on_reply: R,
    ) -> Result<u32, CallError>
    where
        R: FnMut(Bytes) -> ControlFlow<()> + Send,
    {
        let stream = self.pick().call_stream(method.id(), format as u8, request, replies, on_reply);
        with_timeout(self.timeout, stream).await
    }
}

/// What the server-stats control call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStats {
    /// The server process's CPU time.
    pub cpu: crate::cpu::CpuTime,
    /// Calls it has served.
    pub calls: u64,
}

impl ServerStats {
    fn parse(body: &[u8]) -> Result<ServerStats, CallError> {
        let field = |i: usize| -> Result<u64, CallError> {
            body.get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| CallError::Protocol(format!("server stats of {} bytes, expected 24", body.len())))
        };
        Ok(ServerStats {
            cpu: crate::cpu::CpuTime {
                user: Duration::from_micros(field(0)?),
                system: Duration::from_micros(field(1)?),
            },
            calls: field(2)?,
        })
    }
}

/// One raw ping-pong connection: requests and replies of fixed sizes,
/// matched first-in first-out (the stream keeps their order).
#[derive(Debug)]
struct RawConnection<S: SplitStream> {
    writer: tokio::sync::Mutex<S::Write>,
    waiting: Mutex<VecDeque<oneshot::Sender<()>>>,
    reader: tokio::sync::Mutex<ReadState<S::Read>>,
    broken: AtomicBool,
}

/// The raw ping-pong client of a stream transport.
#[derive(Debug)]
pub struct StreamRaw<S: SplitStream> {
    connections: Vec<RawConnection<S>>,
    next: AtomicUsize,
    request: Vec<u8>,
    reply_len: usize,
    counters: Arc<LiveCounters>,
    timeout: Duration,
}

impl<S: SplitStream> StreamRaw<S> {
    /// Sends the raw preamble of `shape` on each stream and wraps them.
    pub async fn new(streams: Vec<S>, config: &ClientConfig, shape: RawShape) -> std::io::Result<StreamRaw<S>> {
        let counters = Arc::new(LiveCounters::default());
        let too_big = |n: usize| u32::try_from(n).map_err(|_| std::io::Error::other("raw size over 4 GiB"));
        let preamble = Preamble::Raw { request: too_big(shape.request)?, reply: too_big(shape.reply)? }.to_bytes();
        let mut connections = Vec::with_capacity(streams.len());
        for mut stream in streams {
            stream.write_all(&preamble).await?;
            counters.sent(preamble.len());
            let (read, write) = stream.split();
            connections.push(RawConnection {
                writer: tokio::sync::Mutex::new(write),
                waiting: Mutex::new(VecDeque::new()),
                reader: tokio::sync::Mutex::new(ReadState { io: read, buf: BytesMut::with_capacity(READ_CHUNK) }),
                broken: AtomicBool::new(false),
            });
        }
        Ok(StreamRaw {
            connections,
            next: AtomicUsize::new(0),
            request: vec![0x5a; shape.request],
            reply_len: shape.reply,
            counters,
            timeout: config.timeout,
        })
    }

    async fn ping_on(&self, c: &RawConnection<S>) -> Result<(), CallError> {
        if c.broken.load(Ordering::Relaxed) {
            return Err(CallError::Closed("raw connection failed earlier".into()));
        }
        let (tx, mut rx) = oneshot::channel();
        {
            // Queue the waiter and send under one lock, so queue order is
            // wire order.
            let mut writer = c.writer.lock().await;
            lock(&c.waiting).push_back(tx);
            if let Err(e) = writer.write_all(&self.request).await {
                c.broken.store(true, Ordering::Relaxed);
                return Err(e.into());
            }
            self.counters.sent(self.request.len());
        }
        tokio::select! {
            biased;
            done = &mut rx => done.map_err(|_| CallError::Closed("raw connection failed".into())),
            mut reader = c.reader.lock() => {
                // Read replies (first in, first out) until ours is among them.
                while rx.try_recv().is_err() {
                    while reader.buf.len() < self.reply_len {
                        if let Err(e) = reader.fill(&self.counters).await {
                            c.broken.store(true, Ordering::Relaxed);
                            lock(&c.waiting).clear();
                            return Err(e);
                        }
                    }
                    let _ = reader.buf.split_to(self.reply_len);
                    match lock(&c.waiting).pop_front() {
                        Some(waiter) => {
                            if waiter.send(()).is_err() {
                                self.counters.late();
                            }
                        }
                        None => return Err(CallError::Protocol("raw reply with no request".into())),
                    }
                }
                Ok(())
            }
        }
    }
}

impl<S: SplitStream> crate::RawClient for StreamRaw<S> {
    async fn ping(&self) -> Result<(), CallError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        with_timeout(self.timeout, self.ping_on(&self.connections[i])).await
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}

/// Something that accepts streams: a TCP or Unix listener.
pub(crate) trait Listener: Send + 'static {
    type Stream: SplitStream;
    fn accept(&self) -> impl std::future::Future<Output = std::io::Result<(Self::Stream, String)>> + Send;
}

/// Accepts connections until shutdown, serving each in its own task.
pub(crate) async fn accept_loop<L: Listener>(
    kind: TransportKind,
    listener: L,
    handler: Arc<Handler>,
    mut shutdown: ShutdownSignal,
    mut connections: JoinSet<()>,
) -> JoinSet<()> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handler = handler.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, &handler, shutdown).await {
                            tracing::warn!("{kind} connection from {peer} closed: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("{kind}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = shutdown.wait() => return connections,
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}

/// Why a server closed a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves one stream connection until the peer leaves, breaks the
/// protocol, or the server shuts down.
pub(crate) async fn serve_connection<S: SplitStream>(
    stream: S,
    handler: &Handler,
    mut shutdown: ShutdownSignal,
) -> Result<(), ConnectionError> {
    let (mut read, mut write) = stream.split();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let preamble = loop {
        if let Some((preamble, len)) = Preamble::parse(&buf, handler.max_message)? {
            let _ = buf.split_to(len);
            break preamble;
        }
        tokio::select! {
            // A fixed polling order: a call then runs the same instructions
            // every time (`wirebench instructions` counts them).
            biased;
            n = read.read_buf(&mut buf) => if n? == 0 { return Ok(()) },
            () = shutdown.wait() => return Ok(()),
        }
    };
    match preamble {
        Preamble::Rpc => serve_rpc(&mut read, &mut write, buf, handler, shutdown).await,
        Preamble::Raw { request, reply } => {
            serve_raw(&mut read, &mut write, buf, request as usize, reply as usize, shutdown).await
        }
    }
}

async fn serve_rpc<R, W>(
    read: &mut R,
    write: &mut W,
    mut buf: BytesMut,
    handler: &Handler,
    mut shutdown: ShutdownSignal,
) -> Result<(), ConnectionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scratch = ServerScratch::default();
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        loop {
            let (header, body) = match frame::take_frame(&mut buf, handler.max_message) {
                Ok(Some(frame)) if !frame.0.is_reply() => frame,
                Ok(Some(_)) => {
                    return close_after(write, &out, FrameError::Direction { expected: "request", got: "reply" }).await;
                }
                Ok(None) => break,
                // Requests before the bad frame were served: their replies
                // go out before the connection closes.
                Err(e) => return close_after(write, &out, e).await,
            };
            handler.admit().await;
            if header.call == CALL_STATS {
                let stats = handler.stats_body();
                Header::reply_to(&header, 0, stats.len() as u32).put(&mut out);
                out.extend_from_slice(&stats);
                continue;
            }
            if header.call == CALL_ENVIRONMENT {
                let body = handler.environment_body();
                Header::reply_to(&header, 0, body.len() as u32).put(&mut out);
                out.extend_from_slice(body);
                continue;
            }
            if header.call == CALL_ONEWAY_REPORT {
                // The replies before it go out first: the report may wait.
                write.write_all(&out).await?;
                out.clear();
                match ReportRequest::parse(&body) {
                    Ok(request) => {
                        let mut report = Vec::new();
                        handler.oneway_sessions().report(request).await.encode(&mut report);
                        Header::reply_to(&header, 0, report.len() as u32).put(&mut out);
                        out.extend_from_slice(&report);
                    }
                    Err(e) => put_status(&mut out, &header, &Status::new(Code::InvalidArgument, e.to_string())),
                }
                continue;
            }
            match header.ext {
                Extension::Oneway(oneway) => {
                    let meta = OnewayMeta::from_frame(header.request_id, oneway);
                    handler.oneway(&mut scratch, meta, header.call, header.format, &body);
                }
                Extension::Stream(replies) => {
                    serve_stream(write, &mut out, handler, &mut scratch, &header, &body, replies).await?;
                }
                Extension::None => match handler.handle(&mut scratch, header.call, header.format, &body) {
                    Ok(reply) if reply.len() >= DIRECT_WRITE => {
                        write.write_all(&out).await?;
                        out.clear();
                        write_two(write, &Header::reply_to(&header, 0, reply.len() as u32).to_bytes(), reply).await?;
                    }
                    Ok(reply) => {
                        Header::reply_to(&header, 0, reply.len() as u32).put(&mut out);
                        out.extend_from_slice(reply);
                    }
                    Err(status) => put_status(&mut out, &header, &status),
                },
                Extension::Publish { .. } => {
                    let e = FrameError::Direction { expected: "request", got: "published message" };
                    return close_after(write, &out, e).await;
                }
            }
        }
        if !out.is_empty() {
            write.write_all(&out).await?;
            out.clear();
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            // A fixed polling order: a call then runs the same instructions
            // every time (`wirebench instructions` counts them).
            biased;
            n = read.read_buf(&mut buf) => if n? == 0 { return Ok(()) },
            () = shutdown.wait() => return Ok(()),
        }
    }
}

/// Appends an error reply with `status` to `request`.
fn put_status(out: &mut Vec<u8>, request: &Header, status: &Status) {
    let message = status.message.as_bytes();
    let header = match request.ext {
        Extension::Stream(_) => Header::stream_reply(request, status.code.value(), message.len() as u32, 0),
        _ => Header::reply_to(request, status.code.value(), message.len() as u32),
    };
    header.put(out);
    out.extend_from_slice(message);
}

/// Replies to a stream request: the reply, `replies` times, one frame
/// each (the service answers once; the frames repeat its bytes), or one
/// error frame. Small frames are batched into `out`, flushed as it fills.
async fn serve_stream<W: AsyncWrite + Unpin>(
    write: &mut W,
    out: &mut Vec<u8>,
    handler: &Handler,
    scratch: &mut ServerScratch,
    header: &Header,
    body: &[u8],
    replies: u32,
) -> std::io::Result<()> {
    let replies = match handler.check_replies(replies) {
        Ok(n) => n,
        Err(status) => {
            put_status(out, header, &status);
            return Ok(());
        }
    };
    let reply = match handler.handle(scratch, header.call, header.format, body) {
        Ok(reply) => reply,
        Err(status) => {
            put_status(out, header, &status);
            return Ok(());
        }
    };
    for index in 0..replies {
        let head = Header::stream_reply(header, 0, reply.len() as u32, index);
        if reply.len() >= DIRECT_WRITE {
            write.write_all(out).await?;
            out.clear();
            write_two(write, &head.to_bytes(), reply).await?;
        } else {
            head.put(out);
            out.extend_from_slice(reply);
            if out.len() >= 4 * READ_CHUNK {
                write.write_all(out).await?;
                out.clear();
            }
        }
    }
    Ok(())
}

/// Writes the replies already produced, then reports `error` (which closes
/// the connection).
async fn close_after<W: AsyncWrite + Unpin>(
    write: &mut W,
    out: &[u8],
    error: FrameError,
) -> Result<(), ConnectionError> {
    if !out.is_empty() {
        write.write_all(out).await?;
    }
    Err(error.into())
}

async fn serve_raw<R, W>(
    read: &mut R,
    write: &mut W,
    mut buf: BytesMut,
    request: usize,
    reply: usize,
    mut shutdown: ShutdownSignal,
) -> Result<(), ConnectionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let payload = vec![0xa5; reply];
    let mut out = Vec::new();
    loop {
        let mut due = 0;
        while buf.len() >= request {
            let _ = buf.split_to(request);
            due += 1;
        }
        // Like the RPC server, answer everything that arrived with one
        // write; large replies go out one by one, uncopied.
        if reply < DIRECT_WRITE {
            out.clear();
            for _ in 0..due {
                out.extend_from_slice(&payload);
            }
            write.write_all(&out).await?;
        } else {
            for _ in 0..due {
                write.write_all(&payload).await?;
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK.max(request));
        }
        tokio::select! {
            // A fixed polling order: a call then runs the same instructions
            // every time (`wirebench instructions` counts them).
            biased;
            n = read.read_buf(&mut buf) => if n? == 0 { return Ok(()) },
            () = shutdown.wait() => return Ok(()),
        }
    }
}

/// Connects `config.connections` streams with `connect`.
pub(crate) async fn connect_all<S, F, Fut>(
    kind: TransportKind,
    address: &str,
    config: &ClientConfig,
    connect: F,
) -> Result<Vec<S>, TransportError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<S>>,
{
    let mut streams = Vec::with_capacity(config.connections.max(1));
    for _ in 0..config.connections.max(1) {
        let stream = tokio::time::timeout(config.timeout, connect())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
            .and_then(|r| r)
            .map_err(|e| TransportError::io(kind, "connect to", address, e))?;
        streams.push(stream);
    }
    Ok(streams)
}
