//! The zerorpc client: DEALER sockets, calls matched to replies by message
//! id, zerorpc's heartbeats, all on the caller's thread.
//!
//! There is no reader task. A caller waiting for its reply reads the
//! socket when no other caller is reading, routes every event it reads to
//! the call it answers (waking that caller), and hands the read side to
//! another waiting caller when its own reply is in. At one call in flight
//! a caller reads its own reply straight from libzmq.
//!
//! Like zerorpc's `Client`, a call that is still open after the heartbeat
//! period sends `_zpc_hb` on its channel every period, and gives up with
//! "lost remote" when the server has sent no heartbeat for two periods.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;
use wirebench_formats::format::msgpack::MsgPack;
use wirebench_formats::{Batch, Format, Method, OwnedRequest, Reply};

use super::event::{self, Ids};
use super::evented::{Evented, Monitor, TcpBytes};
use super::{ENVELOPE_ALLOWANCE, HEARTBEAT, KIND, io_error};
use crate::framework::FrameworkClient;
use crate::{CallError, ClientConfig, Counters, Endpoint, TransportError};

/// Client settings beyond [`ClientConfig`].
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// The heartbeat period (zerorpc's `heartbeat`, 5 s).
    pub heartbeat: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions { heartbeat: HEARTBEAT }
    }
}

/// A zerorpc client: one DEALER socket per connection, calls spread over
/// them round-robin.
#[derive(Debug)]
pub struct ZeroRpcClient {
    conns: Vec<Conn>,
    next: Cell<usize>,
    timeout: Duration,
    max_message: usize,
    heartbeat: Duration,
}

/// One DEALER socket and its open calls.
struct Conn {
    io: Evented,
    state: RefCell<State>,
    wire: RefCell<TcpBytes>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("io", &self.io).finish_non_exhaustive()
    }
}

struct State {
    ids: Ids,
    calls: HashMap<u32, Call>,
    /// The call whose caller is reading the socket.
    reader: Option<u32>,
    /// Replies that arrived for no open call.
    late: u64,
}

struct Call {
    waker: Option<Waker>,
    outcome: Option<Outcome>,
    /// When the server's last heartbeat on this channel arrived.
    remote_seen: Option<Instant>,
}

/// What a reply said, kept until its caller decodes it.
enum Outcome {
    /// `OK`: the frame and where its args start.
    Ok(zmq::Message, usize),
    /// `ERR`, or an event this client does not take for a reply.
    Err(CallError),
}

impl ZeroRpcClient {
    /// Connects `config.connections` DEALER sockets to `endpoint` and waits
    /// until each has completed its ZMTP handshake (libzmq would otherwise
    /// queue calls for a server that is not there).
    pub async fn connect(
        endpoint: &Endpoint,
        config: &ClientConfig,
        options: ClientOptions,
    ) -> Result<ZeroRpcClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let mut conns = Vec::new();
        for _ in 0..config.connections.max(1) {
            conns.push(Conn::connect(address, config).await?);
        }
        Ok(ZeroRpcClient {
            conns,
            next: Cell::new(0),
            timeout: config.timeout,
            max_message: config.max_message,
            heartbeat: options.heartbeat,
        })
    }

    /// One call: `request` as the one argument of its method.
    pub async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        let deadline = Instant::now() + self.timeout;
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        let conn = &self.conns[n % self.conns.len()];
        let method = super::method_of_request(request);
        let mut frame = Vec::with_capacity(128);
        let (id, message_id) = conn.ids_next();
        event::write_head(&mut frame, &message_id, None, super::method_name(method));
        super::write_args(&mut frame, request).map_err(|e| CallError::Protocol(format!("zerorpc: {e}")))?;
        let size = frame.len();
        if size > self.max_message + ENVELOPE_ALLOWANCE {
            return Err(CallError::TooLarge {
                transport: KIND.name(),
                size,
                limit: self.max_message + ENVELOPE_ALLOWANCE,
            });
        }
        let open = conn.open(id);
        crate::with_timeout(self.timeout, conn.send(frame)).await?;
        let outcome = open.wait(deadline, self.timeout, self.heartbeat, &message_id).await?;
        match outcome {
            Outcome::Ok(frame, args_at) => decode(method, &frame[args_at..]),
            Outcome::Err(e) => Err(e),
        }
    }

    /// Bytes on the wire so far, from the kernel's counters of libzmq's
    /// connections.
    pub fn counters(&self) -> Option<Counters> {
        let mut total = Counters::default();
        for conn in &self.conns {
            let (sent, received) = conn.wire.borrow_mut().read()?;
            total =
                total + Counters { bytes_sent: sent, bytes_received: received, late_replies: conn.state.borrow().late };
        }
        Some(total)
    }
}

impl FrameworkClient for ZeroRpcClient {
    type Request = OwnedRequest<Batch>;

    /// zerorpc's API takes the arguments by reference (they are packed on
    /// the call), so no copy is made.
    async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        ZeroRpcClient::call(self, request).await
    }

    fn counters(&self) -> Option<Counters> {
        ZeroRpcClient::counters(self)
    }
}

/// Decodes an `OK` reply's `[result]`.
fn decode(method: Method, args: &[u8]) -> Result<Reply<'static>, CallError> {
    let result = match event::single_arg(args) {
        Ok(Ok(result)) => result,
        Ok(Err(n)) => return Err(CallError::Protocol(format!("zerorpc: an OK reply with {n} values, not 1"))),
        Err(e) => return Err(CallError::Protocol(e.to_string())),
    };
    MsgPack::decode_reply(method, result)
        .map(super::owned)
        .map_err(|e| CallError::Protocol(format!("zerorpc: {method} result: {e}")))
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Before the fields drop: the socket, then the monitor's PAIR.
        Monitor::stop(self.io.socket_mut());
    }
}

impl Conn {
    async fn connect(address: SocketAddr, config: &ClientConfig) -> Result<Conn, TransportError> {
        let fail = |e: std::io::Error| TransportError::io(KIND, "connect", address, e);
        let zfail = |e: zmq::Error| fail(io_error(e));
        let socket = super::context().socket(zmq::DEALER).map_err(zfail)?;
        socket.set_linger(0).map_err(zfail)?;
        let limit = i64::try_from(config.max_message + ENVELOPE_ALLOWANCE).unwrap_or(i64::MAX);
        socket.set_maxmsgsize(limit).map_err(zfail)?;
        socket.set_ipv6(address.is_ipv6()).map_err(zfail)?;
        let watched = zmq::SocketEvent::CONNECTED.to_raw()
            | zmq::SocketEvent::DISCONNECTED.to_raw()
            | zmq::SocketEvent::CLOSED.to_raw()
            | zmq::SocketEvent::CONNECT_RETRIED.to_raw()
            | zmq::SocketEvent::HANDSHAKE_SUCCEEDED.to_raw()
            | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL.to_raw()
            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL.to_raw();
        let monitor = Monitor::start(&socket, watched).map_err(fail)?;
        let mut wire = TcpBytes::new(monitor, address);
        socket.connect(&super::tcp_endpoint(address)).map_err(zfail)?;
        let io = Evented::new(socket).map_err(fail)?;
        let handshake = async {
            loop {
                let Some(event) = wire.monitor().next().await? else { continue };
                wire.note(event);
                if event.is(zmq::SocketEvent::HANDSHAKE_SUCCEEDED) {
                    return Ok(());
                }
                if event.is(zmq::SocketEvent::CONNECT_RETRIED) {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"));
                }
                if event.is(zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL)
                    || event.is(zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL)
                {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "ZMTP handshake failed"));
                }
            }
        };
        let outcome = tokio::time::timeout(config.timeout, handshake).await;
        let state = State { ids: Ids::new(), calls: HashMap::new(), reader: None, late: 0 };
        // Built before the outcome is looked at, so a failed connect drops
        // it too, and its Drop stops the monitor.
        let conn = Conn { io, state: RefCell::new(state), wire: RefCell::new(wire) };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail(e)),
            Err(_) => {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no ZMTP handshake within {:?}", config.timeout),
                )));
            }
        }
        // From here the monitor is read only when the counters are: it
        // keeps the two events a connection makes in its life, not the
        // retries of one that is down, which would fill its queue in
        // under two minutes (see `Monitor`).
        {
            let mut wire = conn.wire.borrow_mut();
            wire.drain();
            let connection_events = zmq::SocketEvent::CONNECTED.to_raw() | zmq::SocketEvent::DISCONNECTED.to_raw();
            wire.monitor_mut().restart(conn.io.socket(), connection_events).map_err(fail)?;
        }
        Ok(conn)
    }

    fn ids_next(&self) -> (u32, [u8; event::ID_LEN]) {
        let mut st = self.state.borrow_mut();
        let State { ids, calls, .. } = &mut *st;
        loop {
            let (n, id) = ids.next();
            // A counter still in use (four billion calls ago) is skipped.
            if !calls.contains_key(&n) {
                return (n, id);
            }
        }
    }

    /// Registers call `id` before its request is sent.
    fn open(&self, id: u32) -> Open<'_> {
        self.state.borrow_mut().calls.insert(id, Call { waker: None, outcome: None, remote_seen: None });
        Open { conn: self, id }
    }

    /// Sends `["", frame]`, waiting while the socket is at its high-water
    /// mark.
    async fn send(&self, frame: Vec<u8>) -> Result<(), CallError> {
        self.io.events(zmq::POLLOUT).await?;
        self.send_now(frame)
    }

    /// Sends `["", frame]` now; the socket must be writable.
    fn send_now(&self, frame: Vec<u8>) -> Result<(), CallError> {
        let socket = self.io.socket();
        socket.send(&b""[..], zmq::SNDMORE | zmq::DONTWAIT).map_err(|e| CallError::Io(e.to_string()))?;
        // The rest of a message whose first frame was taken is always
        // taken: libzmq delivers messages whole.
        socket.send(frame, zmq::DONTWAIT).map_err(|e| CallError::Io(e.to_string()))?;
        self.after_io();
        Ok(())
    }

    /// A send can consume the descriptor's signal of an arrival; the
    /// reader, parked on that descriptor, must then look again.
    fn after_io(&self) {
        if self.io.readable_now().unwrap_or(true) {
            let st = self.state.borrow();
            if let Some(waker) = st.reader.and_then(|r| st.calls.get(&r)).and_then(|c| c.waker.as_ref()) {
                waker.wake_by_ref();
            }
        }
    }

    /// Reads every event that is there, routing each to its call.
    fn drain(&self) -> std::io::Result<()> {
        let socket = self.io.socket();
        while self.io.readable_now()? {
            // The last frame is the event: `["", event]` from a ROUTER, or
            // `[event]` from a peer that sends no delimiter.
            let mut frame = socket.recv_msg(zmq::DONTWAIT).map_err(io_error)?;
            while frame.get_more() {
                frame = socket.recv_msg(zmq::DONTWAIT).map_err(io_error)?;
            }
            self.route(frame);
        }
        Ok(())
    }

    fn route(&self, frame: zmq::Message) {
        let envelope = match event::parse(&frame) {
            Ok(e) => e,
            Err(e) => {
                // zerorpc's client logs such an event and carries on.
                tracing::debug!("zerorpc client: dropped an event: {e}");
                return;
            }
        };
        let mut st = self.state.borrow_mut();
        let id = envelope.response_to.and_then(|to| st.ids.counter(to));
        let name = envelope.name;
        let Some(call) = id.and_then(|id| st.calls.get_mut(&id)) else {
            if name == event::OK || name == event::ERR {
                st.late += 1;
            }
            return;
        };
        let outcome = match name {
            event::HEARTBEAT => {
                call.remote_seen = Some(Instant::now());
                return;
            }
            event::MORE => return,
            event::OK => {
                let at = envelope.args_at;
                Outcome::Ok(frame, at)
            }
            event::ERR => Outcome::Err(match event::error_args(envelope.args) {
                Ok((name, message)) => CallError::Status(event::status_of(&name, &message)),
                Err(e) => CallError::Protocol(e.to_string()),
            }),
            other => {
                Outcome::Err(CallError::Protocol(format!("zerorpc: a {other:?} event answers a request-reply call")))
            }
        };
        if call.outcome.is_some() {
            st.late += 1;
            return;
        }
        call.outcome = Some(outcome);
        if let Some(waker) = call.waker.take() {
            waker.wake();
        }
    }

    /// Sends a heartbeat on the channel `channel`, if the socket takes it
    /// now (a heartbeat that would wait is not worth sending late).
    fn heartbeat(&self, channel: &[u8]) -> Result<(), CallError> {
        if !self.io.socket().get_events().map_err(|e| CallError::Io(e.to_string()))?.contains(zmq::POLLOUT) {
            return Ok(());
        }
        let (_, message_id) = self.ids_next();
        let mut frame = Vec::with_capacity(96);
        event::write_heartbeat(&mut frame, &message_id, channel);
        self.send_now(frame)
    }
}

/// An open call. Dropping it (reply taken, timeout, cancel) closes the
/// channel, and if its caller was reading, hands the read side on.
struct Open<'a> {
    conn: &'a Conn,
    id: u32,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let mut st = self.conn.state.borrow_mut();
        st.calls.remove(&self.id);
        if st.reader == Some(self.id) {
            st.reader = None;
            // Wake one waiting caller to take over reading.
            if let Some(waker) = st.calls.values_mut().find_map(|c| c.waker.take()) {
                waker.wake();
            }
        }
    }
}

impl Open<'_> {
    /// Waits for the reply, reading for everyone while no one else is,
    /// and sends heartbeats while the call is open, as zerorpc does.
    async fn wait(
        self,
        deadline: Instant,
        timeout: Duration,
        period: Duration,
        channel: &[u8],
    ) -> Result<Outcome, CallError> {
        let started = Instant::now();
        let mut beat = started + period;
        let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline.min(beat)));
        std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(outcome) = self.poll_outcome(cx) {
                    return Poll::Ready(outcome);
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Poll::Ready(Err(CallError::Timeout(timeout)));
                }
                // zerorpc's HeartBeatOnChannel: the first beat starts the
                // clock on the remote; no remote beat for two periods after
                // that and the remote is lost.
                let seen = {
                    let mut st = self.conn.state.borrow_mut();
                    let Some(call) = st.calls.get_mut(&self.id) else {
                        return Poll::Ready(Err(CallError::Closed("zerorpc: the call was dropped".into())));
                    };
                    *call.remote_seen.get_or_insert(now)
                };
                if now > seen + 2 * period {
                    return Poll::Ready(Err(CallError::Closed(format!(
                        "zerorpc: lost remote after {:?} heartbeat",
                        2 * period
                    ))));
                }
                if let Err(e) = self.conn.heartbeat(channel) {
                    return Poll::Ready(Err(e));
                }
                beat += period;
                timer.as_mut().reset(deadline.min(beat));
            }
        })
        .await
    }

    fn poll_outcome(&self, cx: &mut std::task::Context<'_>) -> Poll<Result<Outcome, CallError>> {
        loop {
            {
                let mut st = self.conn.state.borrow_mut();
                let reader = st.reader;
                let Some(call) = st.calls.get_mut(&self.id) else {
                    return Poll::Ready(Err(CallError::Closed("zerorpc: the call was dropped".into())));
                };
                if let Some(outcome) = call.outcome.take() {
                    return Poll::Ready(match outcome {
                        Outcome::Err(e) => Err(e),
                        ok => Ok(ok),
                    });
                }
                call.waker = Some(cx.waker().clone());
                match reader {
                    Some(r) if r != self.id => return Poll::Pending,
                    _ => st.reader = Some(self.id),
                }
            }
            // This caller reads for everyone.
            match self.conn.io.poll_events(cx, zmq::POLLIN) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(CallError::Io(e.to_string()))),
                Poll::Ready(Ok(())) => {
                    if let Err(e) = self.conn.drain() {
                        return Poll::Ready(Err(CallError::Io(e.to_string())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_replies_and_wrong_shapes_are_protocol_errors() {
        let err = decode(Method::Multiply, &[0x92, 0x01, 0x02]).unwrap_err();
        assert!(err.to_string().contains("2 values"), "{err}");
        let err = decode(Method::Multiply, &[0x91, 0xa1, b'x']).unwrap_err();
        assert!(matches!(err, CallError::Protocol(_)), "{err}");
        assert_eq!(
            decode(Method::Multiply, &[0x91, 0x81, 0xa7, b'p', b'r', b'o', b'd', b'u', b'c', b't', 0x05]).unwrap(),
            Reply::Multiply { product: 5 }
        );
    }
}
