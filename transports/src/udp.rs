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

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use wirebench_formats::{FormatId, Method, ServerScratch};

use crate::demux::{self, Demux, Incoming};
use crate::frame::{self, HEADER_LEN, Header};
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
    async fn next(&mut self, counters: &LiveCounters) -> Result<(u32, demux::Reply), CallError> {
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
                    return Ok((seq, Ok(Bytes::new())));
                }
            } else if let Ok((header, body)) = frame::parse_datagram(datagram, self.max_message) {
                return Ok((header.request_id, reply_result(&header, Bytes::copy_from_slice(body))));
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

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<UdpClient, TransportError> {
        let (sockets, counters) = sockets(endpoint, config, false).await?;
        Ok(UdpClient {
            sockets,
            next: AtomicUsize::new(0),
            counters,
            timeout: config.timeout,
            max_datagram: config.max_datagram,
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
