//! The zerorpc server: one ROUTER socket, owned by one thread that serves
//! every call in arrival order, as zerorpc's gevent server runs on one
//! thread.
//!
//! A request is answered as soon as it is read, unless a (test-only) stall
//! holds the server: requests read meanwhile wait in a bounded queue, and
//! each gets a `_zpc_hb` heartbeat every period it waits, as zerorpc's
//! server heartbeats an open channel, so a Python client does not give up
//! on it. When the queue is full the server stops reading and libzmq's
//! high-water marks hold the rest back.
//!
//! Bad input, as zerorpc's server treats it: an event that does not parse
//! is dropped; a method that does not exist, the wrong number of
//! arguments, or an argument that does not decode is an `ERR` reply. libzmq
//! refuses a ZMTP frame above `ZMQ_MAXMSGSIZE` (the server's
//! `max_message` plus the envelope allowance) by closing that connection
//! before allocating for it, fails a peer whose ZMTP handshake does not
//! finish in 30 s, and ZMTP heartbeats close a connection stalled in the
//! middle of a frame. Other connections are served throughout. One gap is
//! libzmq's: bytes whose first is not 0xFF are taken for a ZMTP/1.0 peer
//! (libzmq cannot refuse those, and 1.0 has no heartbeats), so such a
//! connection stays open while its peer keeps it open; what it sends
//! becomes events that do not parse, and is dropped.

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::time::Instant;
use wirebench_formats::codec::respond_owned;
use wirebench_formats::format::msgpack::MsgPack;
use wirebench_formats::{Code, Format, FormatId, Method, Status};

use super::event::{self, Ids};
use super::evented::Evented;
use super::{ENVELOPE_ALLOWANCE, HEARTBEAT, KIND, io_error};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{Address, Endpoint, TransportError};

/// Server settings beyond [`ServerConfig`].
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// The period of `_zpc_hb` on channels that wait (zerorpc's 5 s).
    pub heartbeat: Duration,
    /// The ZMTP heartbeat (`ZMQ_HEARTBEAT_IVL` and `ZMQ_HEARTBEAT_TIMEOUT`):
    /// a peer that answers no ZMTP PING within this, such as one stalled in
    /// the middle of a frame, is disconnected.
    pub zmtp_heartbeat: Duration,
    /// `ZMQ_HANDSHAKE_IVL`: a peer whose ZMTP handshake is not done within
    /// this is disconnected (libzmq's default, 30 s).
    pub handshake: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            heartbeat: HEARTBEAT,
            zmtp_heartbeat: Duration::from_secs(10),
            handshake: Duration::from_secs(30),
        }
    }
}

/// Requests read but not yet served, at most (during a stall).
const MAX_QUEUE: usize = 4096;
/// Frames of one message kept: a routing envelope deeper than this (a
/// hostile message of a million frames) is dropped.
const MAX_PARTS: usize = 16;
/// Longest message id answered (zerorpc's are 32 bytes).
const MAX_ID: usize = 256;
/// Messages read before the server yields to its runtime.
const BATCH: usize = 256;
/// The service's name, for zerorpc's introspection calls.
const NAME: &str = "Bench";

/// Binds `listen` and serves the Bench service over zerorpc until shut
/// down, on a thread of its own.
pub async fn serve_with(
    listen: &Address,
    config: ServerConfig,
    options: ServeOptions,
) -> Result<Server, TransportError> {
    let address = listen.inet(KIND)?;
    let fail = |e: zmq::Error| TransportError::io(KIND, "bind", address, io_error(e));
    let socket = super::context().socket(zmq::ROUTER).map_err(fail)?;
    // Replies already handed to libzmq still go out after shutdown.
    socket.set_linger(1000).map_err(fail)?;
    let limit = i64::try_from(config.max_message.saturating_add(ENVELOPE_ALLOWANCE)).unwrap_or(i64::MAX);
    socket.set_maxmsgsize(limit).map_err(fail)?;
    socket.set_ipv6(address.is_ipv6()).map_err(fail)?;
    let zmtp = i32::try_from(options.zmtp_heartbeat.as_millis()).unwrap_or(i32::MAX).max(1);
    socket.set_heartbeat_ivl(zmtp).map_err(fail)?;
    socket.set_heartbeat_timeout(zmtp).map_err(fail)?;
    let handshake = i32::try_from(options.handshake.as_millis()).unwrap_or(i32::MAX).max(1);
    socket.set_handshake_ivl(handshake).map_err(fail)?;
    let bind = if address.port() == 0 {
        format!("tcp://{}:*", if address.is_ipv6() { format!("[{}]", address.ip()) } else { address.ip().to_string() })
    } else {
        super::tcp_endpoint(address)
    };
    socket.bind(&bind).map_err(fail)?;
    let local = bound_address(&socket)
        .ok_or_else(|| TransportError::Config(format!("zerorpc: cannot read the address bound for {bind}")))?;
    let handler = Handler::new(&config);
    let max_queue_bytes = config.max_message.saturating_mul(4).max(64 << 20);
    // The thread starts here, not in the task that waits for it: the
    // server serves as soon as this returns, even while the caller's
    // runtime is busy (or blocked) and has not polled that task yet.
    Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |shutdown, set| {
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("zerorpc-server".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(run(socket, handler, options, max_queue_bytes, shutdown)),
                Err(e) => tracing::warn!("zerorpc server: cannot start its runtime: {e}"),
            }
            let _ = done.send(());
        });
        if let Err(e) = &thread {
            tracing::warn!("zerorpc server: cannot start its thread: {e}");
        }
        async move {
            // Resolves when the thread ends (or at once if it never started:
            // `done` was dropped with its closure).
            let _ = finished.await;
            set
        }
    }))
}

/// The address libzmq bound (`ZMQ_LAST_ENDPOINT`, `tcp://IP:PORT`).
fn bound_address(socket: &zmq::Socket) -> Option<std::net::SocketAddr> {
    let endpoint = socket.get_last_endpoint().ok()?.ok()?;
    endpoint.strip_prefix("tcp://")?.parse().ok()
}

/// What a request calls.
#[derive(Debug)]
enum Target {
    Bench(Method),
    /// zerorpc's introspection: `_zerorpc_ping`, `_zerorpc_name`,
    /// `_zerorpc_list`, `_zerorpc_inspect`.
    Builtin(Builtin),
    /// Answered with zerorpc's `NameError`.
    Unknown(String),
}

#[derive(Debug, Clone, Copy)]
enum Builtin {
    Ping,
    Name,
    List,
    Inspect,
}

impl Target {
    fn of(name: &str) -> Target {
        if let Some(method) = super::method_of(name) {
            return Target::Bench(method);
        }
        match name {
            "_zerorpc_ping" => Target::Builtin(Builtin::Ping),
            "_zerorpc_name" => Target::Builtin(Builtin::Name),
            "_zerorpc_list" => Target::Builtin(Builtin::List),
            "_zerorpc_inspect" => Target::Builtin(Builtin::Inspect),
            other => Target::Unknown(other.chars().take(MAX_ID).collect()),
        }
    }
}

/// A request read from the socket.
struct Request {
    identity: Vec<zmq::Message>,
    frame: zmq::Message,
    message_id: Vec<u8>,
    target: Target,
    args_at: usize,
    version: u64,
    /// When the next heartbeat is due, while it waits.
    beat: Instant,
}

struct Serving {
    io: Evented,
    handler: Arc<Handler>,
    ids: Ids,
    queue: VecDeque<Request>,
    queued_bytes: usize,
    max_queue_bytes: usize,
    options: ServeOptions,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// More to read right away, after a yield.
    More,
    /// Nothing to do until the socket, the stall or a heartbeat says so.
    Wait,
}

enum Woke {
    Shutdown,
    Readable,
    Admitted,
    Beat,
    Failed(std::io::Error),
}

async fn run(
    socket: zmq::Socket,
    handler: Arc<Handler>,
    options: ServeOptions,
    max_queue_bytes: usize,
    mut shutdown: ShutdownSignal,
) {
    let io = match Evented::new(socket) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!("zerorpc server: cannot register its socket: {e}");
            return;
        }
    };
    let mut s =
        Serving { io, handler, ids: Ids::new(), queue: VecDeque::new(), queued_bytes: 0, max_queue_bytes, options };
    loop {
        match s.step() {
            Ok(Step::More) => {
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => break,
                    _ = tokio::task::yield_now() => continue,
                }
            }
            Ok(Step::Wait) => {}
            Err(e) => {
                tracing::warn!("zerorpc server stopped: {e}");
                break;
            }
        }
        let beat = s.queue.iter().map(|r| r.beat).min();
        let woke = tokio::select! {
            biased;
            _ = shutdown.wait() => Woke::Shutdown,
            ready = s.io.fd().readable(), if s.can_read() => match ready {
                Ok(mut guard) => {
                    guard.clear_ready();
                    Woke::Readable
                }
                Err(e) => Woke::Failed(e),
            },
            _ = s.handler.admit(), if !s.queue.is_empty() => Woke::Admitted,
            _ = tokio::time::sleep_until(beat.unwrap_or_else(Instant::now)), if beat.is_some() => Woke::Beat,
        };
        match woke {
            Woke::Shutdown => break,
            Woke::Readable | Woke::Admitted => {}
            Woke::Beat => s.beat(),
            Woke::Failed(e) => {
                tracing::warn!("zerorpc server stopped: {e}");
                break;
            }
        }
    }
    // Requests already read are answered before the socket closes.
    while let Some(request) = s.queue.pop_front() {
        s.serve(&request);
    }
}

/// Whether the handler admits a request now (no stall in progress),
/// without waiting.
fn admitted_now(handler: &Handler) -> bool {
    let admit = pin!(handler.admit());
    admit.poll(&mut Context::from_waker(Waker::noop())).is_ready()
}

impl Serving {
    fn can_read(&self) -> bool {
        self.queue.len() < MAX_QUEUE && self.queued_bytes < self.max_queue_bytes
    }

    /// Serves what is admitted and reads what is there, up to a batch.
    fn step(&mut self) -> std::io::Result<Step> {
        let mut budget = BATCH;
        loop {
            while !self.queue.is_empty() && admitted_now(&self.handler) {
                if let Some(request) = self.queue.pop_front() {
                    self.queued_bytes -= request.frame.len();
                    self.serve(&request);
                }
            }
            // ZMQ_EVENTS is read again after every send and receive: those
            // can consume the descriptor's signal.
            if !self.can_read() || !self.io.readable_now()? {
                return Ok(Step::Wait);
            }
            if budget == 0 {
                return Ok(Step::More);
            }
            budget -= 1;
            self.read_one()?;
        }
    }

    /// Reads one message and serves or queues it.
    fn read_one(&mut self) -> std::io::Result<()> {
        let socket = self.io.socket();
        let mut parts = Vec::with_capacity(3);
        let mut too_many = false;
        loop {
            let part = socket.recv_msg(zmq::DONTWAIT).map_err(io_error)?;
            let more = part.get_more();
            if parts.len() < MAX_PARTS {
                parts.push(part);
            } else {
                too_many = true;
            }
            if !more {
                break;
            }
        }
        if too_many {
            tracing::debug!("zerorpc server: dropped a message of more than {MAX_PARTS} frames");
            return Ok(());
        }
        let Some(frame) = parts.pop() else { return Ok(()) };
        // zerorpc's Events.recv: of more than two frames all but the last
        // two are the routing identity (the one before the event is the
        // empty delimiter); of two, the first is.
        if parts.len() >= 2 {
            parts.pop();
        }
        let identity = parts;
        let envelope = match event::parse(&frame) {
            Ok(e) => e,
            Err(e) => {
                // zerorpc's server logs such an event and carries on.
                tracing::debug!("zerorpc server: dropped an event: {e}");
                return Ok(());
            }
        };
        // Events of open channels (the client's heartbeats, flow control)
        // need no answer: this server heartbeats waiting channels on its own
        // clock, and answers each as soon as it can.
        if envelope.response_to.is_some() || envelope.name == event::HEARTBEAT || envelope.name == event::MORE {
            return Ok(());
        }
        // zerorpc cannot answer an event without an id to respond to.
        let Some(message_id) = envelope.message_id.filter(|id| id.len() <= MAX_ID) else {
            tracing::debug!("zerorpc server: dropped a request without a usable message id");
            return Ok(());
        };
        let request = Request {
            message_id: message_id.to_vec(),
            target: Target::of(envelope.name),
            args_at: envelope.args_at,
            version: envelope.server_version(),
            beat: Instant::now() + self.options.heartbeat,
            identity,
            frame,
        };
        if self.queue.is_empty() && admitted_now(&self.handler) {
            self.serve(&request);
        } else {
            self.queued_bytes += request.frame.len();
            self.queue.push_back(request);
        }
        Ok(())
    }

    /// Heartbeats every waiting request whose beat is due (protocol v2 and
    /// up; zerorpc's v1 channels are passive).
    fn beat(&mut self) {
        let now = Instant::now();
        for i in 0..self.queue.len() {
            if self.queue[i].beat > now {
                continue;
            }
            self.queue[i].beat = now + self.options.heartbeat;
            if self.queue[i].version < 2 {
                continue;
            }
            let (_, id) = self.ids.next();
            let mut out = Vec::with_capacity(96);
            event::write_heartbeat(&mut out, &id, &self.queue[i].message_id);
            self.send(&self.queue[i].identity, out);
        }
    }

    /// Answers `request` with `OK` or `ERR`.
    fn serve(&mut self, request: &Request) {
        self.handler.count_call(FormatId::MsgPack);
        let (_, reply_id) = self.ids.next();
        let mut out = Vec::with_capacity(64);
        let answered = match &request.target {
            Target::Bench(method) => self.bench(&mut out, &reply_id, request, *method),
            Target::Builtin(builtin) => {
                event::write_head(&mut out, &reply_id, Some(&request.message_id), event::OK);
                write_builtin(&mut out, *builtin);
                Ok(())
            }
            Target::Unknown(name) => Err(Status::new(Code::Unimplemented, name.clone())),
        };
        if let Err(status) = answered {
            out.clear();
            event::write_error(&mut out, &reply_id, &request.message_id, request.version, &status);
        }
        self.send(&request.identity, out);
    }

    fn bench(&self, out: &mut Vec<u8>, reply_id: &[u8], request: &Request, method: Method) -> Result<(), Status> {
        let name = super::method_name(method);
        let arg = match event::single_arg(&request.frame[request.args_at..]) {
            Ok(Ok(arg)) => arg,
            // What Python says when a function gets the wrong arguments.
            Ok(Err(n)) => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    format!("{name}() takes 1 positional argument but {n} were given"),
                ));
            }
            Err(e) => return Err(Status::new(Code::InvalidArgument, e.to_string())),
        };
        let decoded = MsgPack::decode_request(method, arg).map_err(Status::from)?;
        let reply = respond_owned(self.handler.service(), &decoded)?;
        event::write_head(out, reply_id, Some(&request.message_id), event::OK);
        super::write_result(out, &reply).map_err(|e| Status::new(Code::Internal, format!("zerorpc: {name}: {e}")))
    }

    /// Sends `identity`, the empty delimiter, and `event`. A ROUTER drops a
    /// message for a peer that is gone or full rather than block.
    fn send(&self, identity: &[zmq::Message], event: Vec<u8>) {
        let socket = self.io.socket();
        let sent = (|| {
            for part in identity {
                socket.send(&part[..], zmq::SNDMORE | zmq::DONTWAIT)?;
            }
            socket.send(&b""[..], zmq::SNDMORE | zmq::DONTWAIT)?;
            socket.send(event, zmq::DONTWAIT)
        })();
        if let Err(e) = sent {
            tracing::debug!("zerorpc server: a reply was not sent: {e}");
        }
    }
}

/// The result of an introspection call, as zerorpc's server answers it.
fn write_builtin(out: &mut Vec<u8>, builtin: Builtin) {
    const METHODS: [(&str, &str); 3] = [
        ("multiply", "Multiply {a, b} -> {product}; OverflowError on 64-bit overflow."),
        ("echo", "Echo {payload} -> {payload}."),
        ("digest", "Digest {records} -> {records, checksum} over every field of every record."),
    ];
    event::write_array_len(out, 1);
    match builtin {
        Builtin::Ping => {
            event::write_array_len(out, 2);
            event::write_str(out, "pong");
            event::write_str(out, NAME);
        }
        Builtin::Name => event::write_str(out, NAME),
        Builtin::List => {
            event::write_array_len(out, METHODS.len() as u32);
            for (name, _) in METHODS {
                event::write_str(out, name);
            }
        }
        Builtin::Inspect => {
            // {"name": ..., "methods": {name: {"args": [{"name": "request"}], "doc": ...}}}
            event::write_map_len(out, 2);
            event::write_str(out, "name");
            event::write_str(out, NAME);
            event::write_str(out, "methods");
            event::write_map_len(out, METHODS.len() as u32);
            for (name, doc) in METHODS {
                event::write_str(out, name);
                event::write_map_len(out, 2);
                event::write_str(out, "args");
                event::write_array_len(out, 1);
                event::write_map_len(out, 1);
                event::write_str(out, "name");
                event::write_str(out, "request");
                event::write_str(out, "doc");
                event::write_str(out, doc);
            }
        }
    }
}
