//! UDP: one datagram per message, carrying the frame of
//! [`crate::frame`]; replies matched by request id; a deadline on
//! every call, so lost datagrams show as timeouts; late and duplicate
//! replies counted and dropped.
//!
//! A message that does not fit the datagram limit (by default what fits
//! one unfragmented packet of a 1500-byte MTU: 1472 bytes) is refused
//! before sending, with an error naming both sizes; it is never truncated.
//! The server answers a reply that would not fit with a
//! `RESOURCE_EXHAUSTED` status instead.
//!
//! Both sides ask the kernel for 4 MiB socket buffers so bursts of calls in
//! flight are not dropped before they are read (capped by
//! `net.core.rmem_max`; with a smaller cap, bursts lose datagrams sooner,
//! and that shows as timeouts).
//!
//! Raw ping-pong datagrams start with `WBRW`, a u32 BE sequence number and
//! the u32 BE reply length; the server answers with that many bytes, the
//! first 8 copied from the request.
//!
//! Call modes: oneway messages are datagrams with the oneway extension,
//! served and counted with no reply (loss shows in the count); there is no
//! server streaming (no flow control to pace K replies, no way to tell a
//! lost one from a late one). Publish/subscribe is IPv4 multicast on the
//! loopback interface, with no server at all: a topic names a group
//! `239.255.x.y` and a port (from a hash of its name, [`multicast_group`]),
//! every subscriber joins it on 127.0.0.1, and the publisher sends one
//! datagram (the publish extension) that the kernel copies to each.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use wirebench_formats::{Code, FormatId, Method, ServerScratch};

use crate::demux::{Arrived, Demux, Incoming};
use crate::frame::{self, Extension, HEADER_LEN, Header};
use crate::mode::{Delivery, OnewayMeta, PublishMeta, Subscription};
use crate::server::{Handler, Server, ServerConfig};
use crate::stream::reply_result;
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, LiveCounters, RawShape, Transport, TransportError,
    TransportKind, TransportProperties, with_timeout,
};

/// One unfragmented packet at a 1500-byte MTU: 1500 - 20 (IPv4) - 8 (UDP).
pub const DEFAULT_MAX_DATAGRAM: usize = 1472;
/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// Raw datagrams start with this.
const RAW_MAGIC: [u8; 4] = *b"WBRW";
/// Magic, sequence, reply length.
const RAW_TAG: usize = 12;

const KIND: TransportKind = TransportKind::Udp;

/// UDP.
#[derive(Debug)]
pub struct Udp;

fn check_limit(max_datagram: usize) -> Result<(), TransportError> {
    if !(HEADER_LEN..=MAX_DATAGRAM).contains(&max_datagram) {
        return Err(TransportError::Config(format!(
            "udp: the datagram limit must be between {HEADER_LEN} and {MAX_DATAGRAM} bytes, not {max_datagram}"
        )));
    }
    Ok(())
}

/// Socket buffers asked for: room for thousands of small datagrams, so a
/// burst of calls in flight is not dropped by the kernel before the peer
/// reads it. The kernel caps this at `net.core.rmem_max`/`wmem_max`.
const SOCKET_BUFFER: usize = 4 << 20;

/// Binds a UDP socket with large kernel buffers.
fn bind(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(address), socket2::Type::DGRAM, None)?;
    // Best effort: a smaller buffer still works, it just drops bursts sooner.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

async fn connect_socket(endpoint: &Endpoint) -> Result<UdpSocket, TransportError> {
    let server = endpoint.address.inet(KIND)?;
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = bind(local).map_err(|e| TransportError::io(KIND, "bind", local, e))?;
    socket.connect(server).await.map_err(|e| TransportError::io(KIND, "connect to", server, e))?;
    Ok(socket)
}

/// The receive side of a client socket.
#[derive(Debug)]
struct Receiver {
    socket: Arc<UdpSocket>,
    buf: Vec<u8>,
    max_message: usize,
    raw: bool,
}

impl Incoming for Receiver {
    async fn next(&mut self, counters: &LiveCounters) -> Result<Arrived, CallError> {
        loop {
            // recv is cancel-safe: a datagram is either taken whole or not.
            let n = match self.socket.recv(&mut self.buf).await {
                Ok(n) => n,
                // An ICMP "port unreachable" from an earlier send: nobody
                // was listening then. Those calls time out, like any lost
                // datagram; the socket stays usable for later ones.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e.into()),
            };
            counters.received(n);
            let datagram = &self.buf[..n];
            if self.raw {
                if n >= 8 && datagram[..4] == RAW_MAGIC {
                    let seq = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
                    return Ok(Arrived::single(seq, Ok(Bytes::new())));
                }
            } else if let Ok((header, body)) = frame::parse_datagram(datagram, self.max_message) {
                return Ok(Arrived::single(header.request_id, reply_result(&header, Bytes::copy_from_slice(body))));
            }
            // A stray or corrupt datagram belongs to no call.
            counters.late();
        }
    }
}

/// One client socket.
#[derive(Debug)]
struct Socket {
    socket: Arc<UdpSocket>,
    demux: Demux<Receiver>,
    send_buf: tokio::sync::Mutex<Vec<u8>>,
    next_id: AtomicU32,
}

impl Socket {
    async fn new(
        endpoint: &Endpoint,
        config: &ClientConfig,
        counters: Arc<LiveCounters>,
        raw: bool,
    ) -> Result<Socket, TransportError> {
        let socket = Arc::new(connect_socket(endpoint).await?);
        let receiver =
            Receiver { socket: socket.clone(), buf: vec![0; MAX_DATAGRAM + 1], max_message: config.max_message, raw };
        Ok(Socket {
            socket,
            demux: Demux::new(receiver, counters),
            send_buf: tokio::sync::Mutex::new(Vec::with_capacity(config.max_datagram)),
            next_id: AtomicU32::new(1),
        })
    }

    /// Sends what `fill` writes into the datagram buffer, then waits for
    /// the reply with the id `fill` was given.
    async fn exchange(&self, fill: impl FnOnce(u32, &mut Vec<u8>)) -> Result<Bytes, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let waiter = self.demux.register(id)?;
        {
            let mut buf = self.send_buf.lock().await;
            buf.clear();
            fill(id, &mut buf);
            let n = self.socket.send(&buf).await?;
            self.demux.counters.sent(n);
        }
        self.demux.wait(waiter).await
    }
}

/// The UDP RPC client.
#[derive(Debug)]
pub struct UdpClient {
    sockets: Vec<Socket>,
    next: AtomicUsize,
    counters: Arc<LiveCounters>,
    timeout: Duration,
    max_datagram: usize,
    max_message: usize,
    /// The publisher's multicast socket, made on the first publish.
    multicast: tokio::sync::OnceCell<UdpSocket>,
    publish_buf: tokio::sync::Mutex<Vec<u8>>,
}

/// The multicast group and port of a pubsub topic: `239.255.x.y` (the
/// administratively scoped range) and a port from 20000 to 49999, both
/// from the FNV-1a hash of the topic's name.
pub fn multicast_group(topic: &str) -> SocketAddrV4 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let ip = Ipv4Addr::new(239, 255, (h >> 8) as u8, h as u8);
    SocketAddrV4::new(ip, 20_000 + ((h >> 16) % 30_000) as u16)
}

fn pubsub_error(what: &str, group: SocketAddrV4, e: std::io::Error) -> CallError {
    CallError::Io(format!("udp multicast: cannot {what} {group} on 127.0.0.1: {e}"))
}

/// A subscriber's socket: bound to the group's address and port (so only
/// that group's datagrams arrive), shared with other subscribers of the
/// port, and a member of the group on the loopback interface.
fn multicast_receiver(group: SocketAddrV4) -> Result<UdpSocket, CallError> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| pubsub_error("open a socket for", group, e))?;
    socket.set_reuse_address(true).map_err(|e| pubsub_error("share the port of", group, e))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    socket.bind(&SocketAddr::V4(group).into()).map_err(|e| pubsub_error("bind", group, e))?;
    socket.join_multicast_v4(group.ip(), &Ipv4Addr::LOCALHOST).map_err(|e| pubsub_error("join", group, e))?;
    socket.set_nonblocking(true).map_err(|e| pubsub_error("configure", group, e))?;
    UdpSocket::from_std(socket.into()).map_err(|e| pubsub_error("register", group, e))
}

/// The publisher's socket: sends to groups through the loopback
/// interface, with a TTL of 0 so nothing leaves the machine, and loops its
/// datagrams back to local members.
fn multicast_sender() -> Result<UdpSocket, CallError> {
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| pubsub_error("open a socket for", any, e))?;
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).map_err(|e| pubsub_error("send through", any, e))?;
    socket.set_multicast_loop_v4(true).map_err(|e| pubsub_error("loop back", any, e))?;
    socket.set_multicast_ttl_v4(0).map_err(|e| pubsub_error("keep on the host", any, e))?;
    socket.bind(&SocketAddr::V4(any).into()).map_err(|e| pubsub_error("bind", any, e))?;
    socket.set_nonblocking(true).map_err(|e| pubsub_error("configure", any, e))?;
    UdpSocket::from_std(socket.into()).map_err(|e| pubsub_error("register", any, e))
}

/// Reads a subscriber socket until the subscription is dropped: published
/// frames become deliveries, anything else is counted and dropped.
async fn read_deliveries(
    socket: UdpSocket,
    tx: tokio::sync::mpsc::Sender<Result<Delivery, CallError>>,
    counters: Arc<LiveCounters>,
    max_message: usize,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(CallError::from(e))).await;
                return;
            }
        };
        let received = Instant::now();
        counters.received(n);
        let delivery = match frame::parse_datagram(&buf[..n], max_message) {
            Ok((header, body)) => match header.ext {
                Extension::Publish { seq, sent_ns } => {
                    Delivery { seq, sent_ns, received, body: Bytes::copy_from_slice(body) }
                }
                _ => {
                    counters.late();
                    continue;
                }
            },
            Err(_) => {
                counters.late();
                continue;
            }
        };
        if tx.send(Ok(delivery)).await.is_err() {
            return;
        }
    }
}

impl crate::Client for UdpClient {
    async fn call(&self, method: Method, format: FormatId, request: &[u8]) -> Result<Bytes, CallError> {
        let size = HEADER_LEN + request.len();
        if size > self.max_datagram {
            return Err(CallError::TooLarge { transport: "udp", size, limit: self.max_datagram });
        }
        let socket = &self.sockets[self.next.fetch_add(1, Ordering::Relaxed) % self.sockets.len()];
        let fill = |id, buf: &mut Vec<u8>| {
            Header::request(id, method.id(), format as u8, request.len() as u32).put(buf);
            buf.extend_from_slice(request);
        };
        with_timeout(self.timeout, socket.exchange(fill)).await
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
        let header = Header::oneway(meta.seq, method.id(), format as u8, request.len() as u32, meta.extension());
        let size = header.wire_len() + request.len();
        if size > self.max_datagram {
            return Err(CallError::TooLarge { transport: "udp", size, limit: self.max_datagram });
        }
        let socket = &self.sockets[self.next.fetch_add(1, Ordering::Relaxed) % self.sockets.len()];
        let send = async {
            let mut buf = socket.send_buf.lock().await;
            buf.clear();
            header.put(&mut *buf);
            buf.extend_from_slice(request);
            let n = socket.socket.send(&buf).await?;
            socket.demux.counters.sent(n);
            Ok(())
        };
        with_timeout(self.timeout, send).await
    }

    async fn call_stream<R>(
        &self,
        _method: Method,
        _format: FormatId,
        _request: &[u8],
        _replies: u32,
        _on_reply: R,
    ) -> Result<u32, CallError>
    where
        R: FnMut(Bytes) -> ControlFlow<()> + Send,
    {
        Err(CallError::Unsupported(
            "udp has no server streaming: with no flow control, K replies would overrun the receiver, and a lost \
             one could not be told from a late one"
                .into(),
        ))
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, CallError> {
        let group = multicast_group(topic);
        let socket = multicast_receiver(group)?;
        let (tx, rx) = Subscription::channel();
        let task = tokio::spawn(read_deliveries(socket, tx, self.counters.clone(), self.max_message));
        Ok(Subscription::new(rx, task))
    }

    async fn publish(
        &self,
        topic: &str,
        method: Method,
        format: FormatId,
        meta: PublishMeta,
        body: &[u8],
    ) -> Result<(), CallError> {
        let group = multicast_group(topic);
        let header = Header::publish(method.id(), format as u8, body.len() as u32, meta.seq, meta.sent_ns);
        let size = header.wire_len() + body.len();
        if size > self.max_datagram {
            return Err(CallError::TooLarge { transport: "udp", size, limit: self.max_datagram });
        }
        let socket = self.multicast.get_or_try_init(|| async { multicast_sender() }).await?;
        let send = async {
            let mut buf = self.publish_buf.lock().await;
            buf.clear();
            header.put(&mut *buf);
            buf.extend_from_slice(body);
            let n = socket.send_to(&buf, SocketAddr::V4(group)).await.map_err(|e| pubsub_error("send to", group, e))?;
            self.counters.sent(n);
            Ok(())
        };
        with_timeout(self.timeout, send).await
    }
}

/// The UDP raw ping-pong client.
#[derive(Debug)]
pub struct UdpRaw {
    sockets: Vec<Socket>,
    next: AtomicUsize,
    counters: Arc<LiveCounters>,
    timeout: Duration,
    shape: RawShape,
}

impl crate::RawClient for UdpRaw {
    async fn ping(&self) -> Result<(), CallError> {
        let socket = &self.sockets[self.next.fetch_add(1, Ordering::Relaxed) % self.sockets.len()];
        let shape = self.shape;
        let fill = |seq: u32, buf: &mut Vec<u8>| {
            buf.extend_from_slice(&RAW_MAGIC);
            buf.extend_from_slice(&seq.to_be_bytes());
            buf.extend_from_slice(&(shape.reply as u32).to_be_bytes());
            buf.resize(shape.request, 0x5a);
        };
        with_timeout(self.timeout, socket.exchange(fill)).await.map(drop)
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}

async fn sockets(
    endpoint: &Endpoint,
    config: &ClientConfig,
    raw: bool,
) -> Result<(Vec<Socket>, Arc<LiveCounters>), TransportError> {
    check_limit(config.max_datagram)?;
    let counters = Arc::new(LiveCounters::default());
    let mut sockets = Vec::new();
    for _ in 0..config.connections.max(1) {
        sockets.push(Socket::new(endpoint, config, counters.clone(), raw).await?);
    }
    Ok((sockets, counters))
}

impl Transport for Udp {
    const KIND: TransportKind = KIND;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "tokio",
        security: "none",
        delivery: "unreliable: loss shows as timeouts",
        multiplexing: "datagrams matched by request id",
        framing: "12-byte header, one message per datagram",
        wire_bytes: "exact (datagram payload)",
    };
    type Client = UdpClient;
    type Raw = UdpRaw;
    const LOSSY: bool = true;

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<UdpClient, TransportError> {
        let (sockets, counters) = sockets(endpoint, config, false).await?;
        Ok(UdpClient {
            sockets,
            next: AtomicUsize::new(0),
            counters,
            timeout: config.timeout,
            max_datagram: config.max_datagram,
            max_message: config.max_message,
            multicast: tokio::sync::OnceCell::new(),
            publish_buf: tokio::sync::Mutex::new(Vec::with_capacity(config.max_datagram)),
        })
    }

    async fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> Result<UdpRaw, TransportError> {
        for (what, size, min) in [("request", shape.request, RAW_TAG), ("reply", shape.reply, 8)] {
            if size < min || size > config.max_datagram {
                return Err(TransportError::Config(format!(
                    "udp: a raw {what} of {size} bytes is outside {min}..={} (the datagram limit)",
                    config.max_datagram
                )));
            }
        }
        let (sockets, counters) = sockets(endpoint, config, true).await?;
        Ok(UdpRaw { sockets, next: AtomicUsize::new(0), counters, timeout: config.timeout, shape })
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        check_limit(config.max_datagram)?;
        let address = listen.inet(KIND)?;
        let socket = bind(address).map_err(|e| TransportError::io(KIND, "bind", address, e))?;
        let local = socket.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
        let handler = Handler::new(&config);
        Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |mut shutdown, set| async move {
            tokio::select! {
                // A fixed polling order: a call then runs the same instructions
                // every time (`wirebench instructions` counts them).
                biased;
                () = serve_socket(socket, &handler) => {}
                () = shutdown.wait() => {}
            }
            set
        }))
    }
}

/// Serves datagrams until cancelled. A bad datagram is dropped (logged);
/// it has no connection to close and must not stop the others.
async fn serve_socket(socket: UdpSocket, handler: &Handler) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut out = Vec::with_capacity(handler.max_datagram);
    let mut scratch = ServerScratch::default();
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors of earlier sends surface here on some systems.
                tracing::debug!("udp: recv failed: {e}");
                continue;
            }
        };
        let datagram = &buf[..n];
        out.clear();
        if n >= RAW_TAG && datagram[..4] == RAW_MAGIC {
            let reply = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]) as usize;
            out.extend_from_slice(&datagram[..8]);
            out.resize(reply.clamp(8, handler.max_datagram), 0xa5);
        } else {
            let (header, body) = match frame::parse_datagram(datagram, handler.max_message) {
                Ok(frame) if !frame.0.is_reply() => frame,
                Ok(_) => {
                    tracing::warn!("udp: dropped a reply frame sent to the server by {peer}");
                    continue;
                }
                Err(e) => {
                    tracing::warn!("udp: dropped a bad datagram of {n} bytes from {peer}: {e}");
                    continue;
                }
            };
            handler.admit().await;
            match header.ext {
                Extension::None => {}
                Extension::Oneway(oneway) => {
                    let meta = OnewayMeta::from_frame(header.request_id, oneway);
                    handler.oneway(&mut scratch, meta, header.call, header.format, body);
                    continue;
                }
                Extension::Stream(_) => {
                    let why = "udp has no server streaming";
                    put_status(&mut out, &header, Code::Unimplemented.value(), why, handler.max_datagram);
                    send(&socket, &out, peer).await;
                    continue;
                }
                Extension::Publish { .. } => {
                    tracing::warn!("udp: dropped a published frame sent to the server by {peer}");
                    continue;
                }
            }
            match handler.handle(&mut scratch, header.call, header.format, body) {
                Ok(reply) if HEADER_LEN + reply.len() <= handler.max_datagram => {
                    Header::reply_to(&header, 0, reply.len() as u32).put(&mut out);
                    out.extend_from_slice(reply);
                }
                Ok(reply) => {
                    let message = format!(
                        "a {}-byte reply exceeds the {}-byte datagram limit",
                        HEADER_LEN + reply.len(),
                        handler.max_datagram
                    );
                    let status = wirebench_formats::Code::ResourceExhausted.value();
                    put_status(&mut out, &header, status, &message, handler.max_datagram);
                }
                Err(status) => {
                    put_status(&mut out, &header, status.code.value(), &status.message, handler.max_datagram)
                }
            }
        }
        send(&socket, &out, peer).await;
    }
}

/// An error reply; the message is cut to fit the datagram limit.
fn put_status(out: &mut Vec<u8>, request: &Header, status: u8, message: &str, max_datagram: usize) {
    let mut cut = message.len().min(max_datagram - HEADER_LEN);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let message = &message.as_bytes()[..cut];
    Header::reply_to(request, status, message.len() as u32).put(out);
    out.extend_from_slice(message);
}

async fn send(socket: &UdpSocket, datagram: &[u8], peer: SocketAddr) {
    if let Err(e) = socket.send_to(datagram, peer).await {
        tracing::debug!("udp: send to {peer} failed: {e}");
    }
}
