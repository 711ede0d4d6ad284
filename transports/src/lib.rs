//! wirebench's transports: the second axis of every comparison, in three
//! families of rows (see [`Family`] and the registry at the bottom of this
//! file):
//!
//! 1. wirebench's own thin transports, carrying any format through one
//!    interface, [`Client::call`]: method, format and encoded request in,
//!    reply bytes (or a [`Status`]) out, shareable by many tasks with many
//!    calls in flight. One server per transport serves every format through
//!    the service of `wirebench-formats` until shut down.
//! 2. [`framework`]: stock RPC frameworks, each with its own client,
//!    server and codec, carrying its own format only ([`Framework`]).
//! 3. [`broker`]: message brokers, which are transports whose messages go
//!    through a broker process the harness starts ([`broker::Broker`]).
//!
//! - [`frame`]: the frame of tcp/unix/udp/quic, pure code over buffers.
//! - [`grpc_wire`]: the gRPC message prefix and status trailers, pure too.
//! - [`host`]: the server-environment control call's body, pure too.
//! - [`mode`]: the call modes beyond request-response (oneway, stream,
//!   publish/subscribe): their metadata, the server's oneway count and its
//!   bytes. A transport opts into a mode by implementing its [`Client`]
//!   method; the defaults answer [`CallError::Unsupported`].
//! - [`stream`]: framed RPC over any byte stream, used by [`tcp`] and
//!   [`unix`].
//! - [`udp`], [`http2`], [`quic`], [`inproc`]: the other transports.
//! - [`tls`]: certificates generated at start-up and pinned by clients.
//!
//! The key design decision: a client waiting for its reply reads the
//! connection itself when no one else is (a leader/follower reader), so at
//! one call in flight a reply reaches its caller with no task hop, and at
//! many in flight one reader drains replies for all. Every transport also
//! offers a raw ping-pong client ([`RawClient`]): the same bytes with no
//! codec, the floor each cell is measured against.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
pub use wirebench_formats::{Code, FormatId, Method, Status};

pub mod broker;
mod counting;
pub mod cpu;
mod demux;
pub mod frame;
pub mod framework;
pub mod grpc_wire;
pub mod host;
pub mod http2;
pub mod inproc;
pub mod mode;
pub mod quic;
mod server;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod unix;

pub use framework::{Framework, FrameworkClient};
pub use mode::{Delivery, OnewayMeta, OnewayReport, PublishMeta, ReportRequest, Subscription};
pub use server::{CallHook, Handler, Inject, MAX_STREAM_REPLIES, OnewaySessions, Server, ServerConfig, Stall};
pub use tls::CertPin;

/// A transport's client: one or more connections to one server.
pub trait Client: Send + Sync + 'static {
    /// Calls `method` with an encoded `request` of `format`; the reply's
    /// encoded bytes, or the status the server answered with.
    fn call(
        &self,
        method: Method,
        format: FormatId,
        request: &[u8],
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send;

    /// Bytes on the wire and reply anomalies so far, over all connections.
    fn counters(&self) -> Counters;

    /// Mode `oneway`: sends `request` without a reply; the server counts
    /// it in `meta.session` (see [`OnewaySessions`]). Resolves once the
    /// transport accepted the message (written to the socket, or queued
    /// within flow control), so calls in flight are sends not yet accepted.
    fn send_oneway(
        &self,
        method: Method,
        format: FormatId,
        meta: OnewayMeta,
        request: &[u8],
    ) -> impl Future<Output = Result<(), CallError>> + Send {
        let _ = (method, format, meta, request);
        std::future::ready(Err(CallError::Unsupported("it has no oneway messages".into())))
    }

    /// Mode `stream`: one request, `replies` replies (server streaming).
    /// Each reply's body goes to `on_reply` as it arrives, in order;
    /// `Break` abandons the stream. The replies delivered; a stream that
    /// ends early or runs long is a protocol error.
    fn call_stream<R>(
        &self,
        method: Method,
        format: FormatId,
        request: &[u8],
        replies: u32,
        on_reply: R,
    ) -> impl Future<Output = Result<u32, CallError>> + Send
    where
        R: FnMut(Bytes) -> ControlFlow<()> + Send,
    {
        let _ = (method, format, request, replies, on_reply);
        std::future::ready(Err(CallError::Unsupported("it has no server streaming".into())))
    }

    /// Mode `pubsub`: subscribes this client to `topic`; every message
    /// published to it from then on is delivered to the subscription.
    fn subscribe(&self, topic: &str) -> impl Future<Output = Result<Subscription, CallError>> + Send {
        let _ = topic;
        std::future::ready(Err(CallError::Unsupported(
            "publish/subscribe needs a broker or multicast; this transport connects one client to one server".into(),
        )))
    }

    /// Mode `pubsub`: publishes `body` (a `method` request in `format`)
    /// to `topic`. Resolves once the transport accepted it.
    fn publish(
        &self,
        topic: &str,
        method: Method,
        format: FormatId,
        meta: PublishMeta,
        body: &[u8],
    ) -> impl Future<Output = Result<(), CallError>> + Send {
        let _ = (topic, method, format, meta, body);
        std::future::ready(Err(CallError::Unsupported(
            "publish/subscribe needs a broker or multicast; this transport connects one client to one server".into(),
        )))
    }
}

/// The raw ping-pong baseline of a transport: fixed-size requests and
/// replies with no codec and no framing beyond what the transport needs.
pub trait RawClient: Send + Sync + 'static {
    /// Sends one request and waits for its reply.
    fn ping(&self) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Bytes on the wire so far.
    fn counters(&self) -> Counters;
}

/// A transport as a type, so the harness can monomorphize over it.
pub trait Transport: Send + Sync + 'static {
    /// Registry id.
    const KIND: TransportKind;
    /// What it is, for reports.
    const PROPERTIES: TransportProperties;
    /// Whether its clients' [`Client::counters`] count bytes on the wire:
    /// false where the client library owns its socket out of reach (its
    /// properties say so), and then the harness reports no wire bytes.
    const COUNTS_WIRE: bool = true;
    /// The RPC client.
    type Client: Client;
    /// The raw baseline client.
    type Raw: RawClient;

    /// Connects `config.connections` connections to `endpoint`.
    fn connect(
        endpoint: &Endpoint,
        config: &ClientConfig,
    ) -> impl Future<Output = Result<Self::Client, TransportError>> + Send;

    /// Connects a raw ping-pong client of `shape` to `endpoint`.
    fn connect_raw(
        endpoint: &Endpoint,
        config: &ClientConfig,
        shape: RawShape,
    ) -> impl Future<Output = Result<Self::Raw, TransportError>> + Send;

    /// Binds `listen` and serves until [`Server::shutdown`].
    fn serve(listen: &Address, config: ServerConfig) -> impl Future<Output = Result<Server, TransportError>> + Send;

    /// Whether it may lose messages without an error (udp): oneway and
    /// publish/subscribe loss is then reported, not a failure of the cell.
    /// On the others any loss fails the cell.
    const LOSSY: bool = false;
}

/// Calls back with a transport as a type; see [`TransportKind::visit`].
pub trait TransportVisitor {
    /// What the visit returns.
    type Output;
    /// A transport that carries any format: one of wirebench's own, or a
    /// broker.
    fn visit<T: Transport>(self) -> Self::Output;
    /// A stock framework, which carries its own format only.
    fn visit_framework<F: Framework>(self) -> Self::Output;
}

/// The three families of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// wirebench's own thin transports, carrying any format.
    Transport,
    /// Stock RPC frameworks, each with its own client, server and codec.
    Framework,
    /// Message brokers, started by the harness, carrying any format.
    Broker,
}

impl Family {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Transport => "transport",
            Family::Framework => "framework",
            Family::Broker => "broker",
        }
    }
}

macro_rules! registry {
    (
        transports { $($t:ident => $tname:literal, $tty:ty;)* }
        frameworks { $($f:ident => $fname:literal, $fty:ty;)* }
        brokers { $($b:ident => $bname:literal, $bty:ty;)* }
    ) => {
        /// A transport's id: a row of the matrix, in one of three families.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TransportKind {
            $(#[doc = concat!("`", $tname, "`")] $t,)*
            $(#[doc = concat!("`", $fname, "` (framework)")] $f,)*
            $(#[doc = concat!("`", $bname, "` (broker)")] $b,)*
        }

        impl TransportKind {
            /// Every transport, in report order: own transports, frameworks,
            /// brokers.
            pub const ALL: &'static [TransportKind] =
                &[$(TransportKind::$t,)* $(TransportKind::$f,)* $(TransportKind::$b,)*];

            /// The name in CLI flags, cell keys and reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(TransportKind::$t => $tname,)*
                    $(TransportKind::$f => $fname,)*
                    $(TransportKind::$b => $bname,)*
                }
            }

            /// Its family.
            pub fn family(self) -> Family {
                match self {
                    $(TransportKind::$t => Family::Transport,)*
                    $(TransportKind::$f => Family::Framework,)*
                    $(TransportKind::$b => Family::Broker,)*
                }
            }

            /// Calls `visitor` with the transport's type.
            pub fn visit<V: TransportVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(TransportKind::$t => visitor.visit::<$tty>(),)*
                    $(TransportKind::$f => visitor.visit_framework::<$fty>(),)*
                    $(TransportKind::$b => visitor.visit::<$bty>(),)*
                }
            }

            /// What the transport is, for the reports.
            pub fn properties(self) -> TransportProperties {
                match self {
                    $(TransportKind::$t => <$tty as Transport>::PROPERTIES,)*
                    $(TransportKind::$f => <$fty as Framework>::PROPERTIES,)*
                    $(TransportKind::$b => <$bty as Transport>::PROPERTIES,)*
                }
            }

            /// Whether it may lose messages without an error
            /// ([`Transport::LOSSY`]; frameworks never do).
            pub fn lossy(self) -> bool {
                match self {
                    $(TransportKind::$t => <$tty as Transport>::LOSSY,)*
                    $(TransportKind::$f => false,)*
                    $(TransportKind::$b => <$bty as Transport>::LOSSY,)*
                }
            }

            /// The one format a framework carries; `None` for the families
            /// that carry every format.
            pub fn own_format(self) -> Option<FormatId> {
                match self {
                    $(TransportKind::$f => Some(<$fty as Framework>::FORMAT),)*
                    _ => None,
                }
            }

            /// The transport whose raw ping-pong is this one's floor: itself
            /// for own transports and brokers, the transport under it for a
            /// framework.
            pub fn baseline(self) -> TransportKind {
                match self {
                    $(TransportKind::$f => <$fty as Framework>::BASELINE,)*
                    other => other,
                }
            }

            /// A broker's daemon and how to start it; `None` for the other
            /// families.
            pub fn broker(self) -> Option<broker::BrokerInfo> {
                match self {
                    $(TransportKind::$b => Some(broker::BrokerInfo::of::<$bty>()),)*
                    _ => None,
                }
            }
        }

        /// Binds `listen` for `kind` and serves until shut down (every
        /// format, or a framework's own).
        pub async fn serve_kind(kind: TransportKind, listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
            match kind {
                $(TransportKind::$t => <$tty as Transport>::serve(listen, config).await,)*
                $(TransportKind::$f => <$fty as Framework>::serve(listen, config).await,)*
                $(TransportKind::$b => <$bty as Transport>::serve(listen, config).await,)*
            }
        }
    };
}

// The registry: one line per system, in its family.
registry! {
    transports {
        Tcp => "tcp", tcp::Tcp;
        Unix => "unix", unix::Unix;
        Udp => "udp", udp::Udp;
        Http2 => "http2", http2::Http2;
        Quic => "quic", quic::Quic;
        Inproc => "inproc", inproc::Inproc;
    }
    frameworks {
        Grpc => "grpc", framework::grpc::Grpc;
        ThriftRpc => "thrift-rpc", framework::thrift_rpc::ThriftRpc;
        ThriftRpcBinary => "thrift-rpc-binary", framework::thrift_rpc::ThriftRpcBinary;
        VoloThrift => "volo-thrift", framework::volo_thrift::VoloThrift;
        CapnpRpc => "capnp-rpc", framework::capnp_rpc::CapnpRpc;
        Tarpc => "tarpc", framework::tarpc::Tarpc;
        ZeroRpc => "zerorpc", framework::zerorpc::ZeroRpc;
        Jsonrpsee => "jsonrpsee", framework::jsonrpsee::Jsonrpsee;
    }
    brokers {
        Nats => "nats", broker::nats::Nats;
        Rabbitmq => "rabbitmq", broker::rabbitmq::Rabbitmq;
        Redis => "redis", broker::redis::Redis;
        Mqtt => "mqtt", broker::mqtt::Mqtt;
    }
}

impl TransportKind {
    /// The transport with this name.
    pub fn from_name(name: &str) -> Option<TransportKind> {
        TransportKind::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Whether it carries `format`: every format, except a framework,
    /// which carries its own only.
    pub fn carries(self, format: FormatId) -> bool {
        self.own_format().is_none_or(|own| own == format)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<TransportKind, String> {
        TransportKind::from_name(s).ok_or_else(|| {
            let names: Vec<_> = TransportKind::ALL.iter().map(|t| t.name()).collect();
            format!("unknown transport {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// What a transport is, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportProperties {
    /// The library that implements it.
    pub library: &'static str,
    /// Encryption and authentication.
    pub security: &'static str,
    /// Delivery guarantees.
    pub delivery: &'static str,
    /// How calls share a connection.
    pub multiplexing: &'static str,
    /// Framing per message.
    pub framing: &'static str,
    /// How bytes on the wire are counted.
    pub wire_bytes: &'static str,
}

/// Where a server listens or a client connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// An IP socket address (port 0 asks for any free port when listening).
    Inet(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// No socket: the in-process transport.
    InProc,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::InProc => f.write_str("inproc"),
        }
    }
}

impl Address {
    /// Parses an address for `transport`: a socket address for the IP
    /// transports, a path for unix, `inproc` for inproc.
    pub fn parse(transport: TransportKind, s: &str) -> Result<Address, String> {
        match transport {
            TransportKind::Unix => Ok(Address::Unix(PathBuf::from(s))),
            TransportKind::Inproc => Ok(Address::InProc),
            _ => {
                let resolved = std::net::ToSocketAddrs::to_socket_addrs(s)
                    .map_err(|e| format!("{transport}: cannot resolve {s:?}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{transport}: {s:?} resolves to no address"))?;
                Ok(Address::Inet(resolved))
            }
        }
    }

    /// The socket address, for the IP transports.
    pub fn inet(&self, transport: TransportKind) -> Result<SocketAddr, TransportError> {
        match self {
            Address::Inet(a) => Ok(*a),
            other => Err(TransportError::Config(format!("{transport} needs an IP address, not {other}"))),
        }
    }
}

/// A server as a client sees it: transport, address, and for the TLS
/// transports the pinned certificate. Printed as `ADDR` or
/// `ADDR#sha256:HEX`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Which transport.
    pub transport: TransportKind,
    /// Where.
    pub address: Address,
    /// The SHA-256 of the server's certificate (quic; http2 with TLS).
    pub pin: Option<CertPin>,
    /// The in-process server (inproc only).
    pub inproc: Option<Arc<Handler>>,
}

impl Endpoint {
    /// An endpoint without a pin.
    pub fn new(transport: TransportKind, address: Address) -> Endpoint {
        Endpoint { transport, address, pin: None, inproc: None }
    }

    /// Parses `ADDR` or `ADDR#sha256:HEX` for `transport`.
    pub fn parse(transport: TransportKind, s: &str) -> Result<Endpoint, String> {
        let (address, pin) = match s.split_once('#') {
            Some((address, pin)) => (address, Some(pin.parse::<CertPin>()?)),
            None => (s, None),
        };
        Ok(Endpoint { transport, address: Address::parse(transport, address)?, pin, inproc: None })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if let Some(pin) = &self.pin {
            write!(f, "#{pin}")?;
        }
        Ok(())
    }
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Connections to open (calls are spread over them round-robin).
    pub connections: usize,
    /// Deadline of every call; a dead server gives an error, not a hang.
    pub timeout: Duration,
    /// Largest reply body accepted.
    pub max_message: usize,
    /// Largest udp datagram sent or expected (header included).
    pub max_datagram: usize,
    /// http2: use TLS (the endpoint must carry the server's pin).
    pub tls: bool,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connections: 1,
            timeout: Duration::from_secs(10),
            max_message: frame::DEFAULT_MAX_MESSAGE,
            max_datagram: udp::DEFAULT_MAX_DATAGRAM,
            tls: false,
        }
    }
}

/// The sizes of a raw ping-pong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawShape {
    /// Bytes out per call.
    pub request: usize,
    /// Bytes back per call.
    pub reply: usize,
}

impl RawShape {
    /// Smallest request: udp and quic raw requests carry a 12-byte tag
    /// (magic, sequence, reply length) inside their own bytes.
    pub const MIN_REQUEST: usize = 12;
}

/// Totals of a client, read before and after a measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes written to the wire.
    pub bytes_sent: u64,
    /// Bytes read from the wire.
    pub bytes_received: u64,
    /// Replies that arrived for no waiting call (after a timeout, or a
    /// duplicate): counted and dropped.
    pub late_replies: u64,
}

impl Counters {
    /// `self - earlier`, field by field.
    pub fn since(self, earlier: Counters) -> Counters {
        Counters {
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
            late_replies: self.late_replies.saturating_sub(earlier.late_replies),
        }
    }
}

impl std::ops::Add for Counters {
    type Output = Counters;
    fn add(self, o: Counters) -> Counters {
        Counters {
            bytes_sent: self.bytes_sent + o.bytes_sent,
            bytes_received: self.bytes_received + o.bytes_received,
            late_replies: self.late_replies + o.late_replies,
        }
    }
}

/// Live counters shared by a connection's tasks.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    sent: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
}

impl LiveCounters {
    pub(crate) fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn late(&self) {
        self.late.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            bytes_sent: self.sent.load(Ordering::Relaxed),
            bytes_received: self.received.load(Ordering::Relaxed),
            late_replies: self.late.load(Ordering::Relaxed),
        }
    }
}

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error status.
    #[error("status {0}")]
    Status(Status),
    /// No reply within the deadline.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The message cannot be carried; refused before sending. The caller's
    /// misuse, not a fault of the peer.
    #[error("{transport}: a {size}-byte message exceeds the {limit}-byte limit")]
    TooLarge {
        /// Transport name.
        transport: &'static str,
        /// Message size, framing included.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection is gone.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The peer broke the protocol (the connection is closed).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An I/O error.
    #[error("i/o error: {0}")]
    Io(String),
    /// The transport does not offer this call mode; why. Nothing was sent.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl From<std::io::Error> for CallError {
    fn from(e: std::io::Error) -> CallError {
        CallError::Io(e.to_string())
    }
}

impl From<frame::FrameError> for CallError {
    fn from(e: frame::FrameError) -> CallError {
        CallError::Protocol(e.to_string())
    }
}

/// A failure to bind, listen or connect.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A socket operation failed.
    #[error("{transport}: cannot {action} {address}: {cause}")]
    Io {
        /// Transport name.
        transport: &'static str,
        /// What was attempted: `bind`, `connect`, ...
        action: &'static str,
        /// Where.
        address: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// A TLS or QUIC setup or handshake failure.
    #[error("{transport}: {message}")]
    Handshake {
        /// Transport name.
        transport: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The settings do not make sense for this transport.
    #[error("{0}")]
    Config(String),
}

impl TransportError {
    pub(crate) fn io(
        transport: TransportKind,
        action: &'static str,
        address: impl fmt::Display,
        cause: std::io::Error,
    ) -> TransportError {
        TransportError::Io { transport: transport.name(), action, address: address.to_string(), cause }
    }

    pub(crate) fn handshake(transport: TransportKind, message: impl fmt::Display) -> TransportError {
        TransportError::Handshake { transport: transport.name(), message: message.to_string() }
    }
}

/// Runs `call` with the deadline of `timeout`.
pub(crate) async fn with_timeout<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(CallError::Timeout(timeout)),
    }
}
