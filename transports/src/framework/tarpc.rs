//! tarpc with its serde transport over TCP: the `Bench` service declared
//! as a `#[tarpc::service]` trait (tarpc's schema is Rust code), its
//! generated client and server, frames of tokio-util's length-delimited
//! codec (a 4-byte big-endian length, then the message) and tokio-serde's
//! bincode codec.
//!
//! That codec is **bincode 1.x** (`bincode::DefaultOptions`: varint
//! integers, little-endian), tarpc's own, not the 2.0.1 that the `bincode`
//! format pins: the row's format is bincode in the sense of its layout
//! family, and its bytes are bincode 1's encoding of tarpc's own envelope
//! (`ClientMessage`/`Response` with context, request id and the generated
//! request and response enums). The model types (`Batch`, `Record`,
//! `DigestReply`) travel with their serde derives, as a tarpc user would
//! send them.
//!
//! Errors are part of the service's signature, tarpc's way: Multiply and
//! Digest return `Result<_, RemoteStatus>`, a serde struct with the status
//! code and message. tarpc's own failures (deadline, disconnect, a server
//! that aborted the request) are `RpcError`s.
//!
//! As tarpc's own TCP helpers do, except that sockets get TCP_NODELAY and
//! the client's socket is wrapped by the counting layer, so the
//! length-delimited framing sits directly on the socket. The frame limit
//! is the server's `max_message` plus room for the envelope; a longer
//! frame ends the connection (tokio-util's codec refuses it before
//! reading it).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context, serde_transport};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::length_delimited::{self, LengthDelimitedCodec};
use wirebench_formats::{Batch, Code, DigestReply, FormatId, OwnedRequest, Reply, Status};

use crate::counting::Counting;
use crate::framework::{Framework, FrameworkClient};
use crate::server::{Handler, Server, ServerConfig};
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, LiveCounters, TransportError, TransportKind,
    TransportProperties,
};

const KIND: TransportKind = TransportKind::Tarpc;

/// Bytes allowed for tarpc's envelope (context, ids, enum tags) beyond the
/// largest message body.
const ENVELOPE: usize = 1024;

#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all)]
mod service {
    use super::{Batch, DigestReply, Payload, RemoteStatus};

    /// The Bench service: Multiply, Echo, Digest.
    #[tarpc::service]
    pub trait Bench {
        /// `a * b`, or `OUT_OF_RANGE` on overflow.
        async fn multiply(a: i64, b: i64) -> Result<i64, RemoteStatus>;
        /// The same payload.
        async fn echo(payload: Payload) -> Payload;
        /// The record count and checksum of every field of every record.
        async fn digest(batch: Batch) -> Result<DigestReply, RemoteStatus>;
    }
}

pub use service::{Bench, BenchClient};

/// A byte payload, serialized with serde's `bytes` (one length, then the
/// bytes) rather than as a sequence of `u8`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Payload, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Payload, E> {
                Ok(Payload(b.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload(b))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// A status as the service returns it: the code's number (as in
/// [`Code::value`]) and the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// The status code.
    pub code: u8,
    /// Why.
    pub message: String,
}

impl From<Status> for RemoteStatus {
    fn from(s: Status) -> RemoteStatus {
        RemoteStatus { code: s.code.value(), message: s.message }
    }
}

impl From<RemoteStatus> for CallError {
    fn from(s: RemoteStatus) -> CallError {
        CallError::Status(match Code::from_value(u32::from(s.code)) {
            Some(code) => Status::new(code, s.message),
            None => Status::new(Code::Internal, format!("status {}: {}", s.code, s.message)),
        })
    }
}

fn from_rpc(e: tarpc::client::RpcError, timeout: Duration) -> CallError {
    use tarpc::client::RpcError;
    match e {
        RpcError::DeadlineExceeded => CallError::Timeout(timeout),
        RpcError::Shutdown => CallError::Closed("tarpc: the client's connection is shut down".into()),
        RpcError::Send(e) => CallError::Closed(format!("tarpc: cannot send the request: {e}")),
        RpcError::Channel(e) => CallError::Closed(format!("tarpc: the channel failed: {e}")),
        RpcError::Server(e) => CallError::Status(Status::new(Code::Internal, format!("tarpc server: {}", e.detail))),
    }
}

/// tarpc over TCP.
#[derive(Debug)]
pub struct Tarpc;

impl Framework for Tarpc {
    const KIND: TransportKind = KIND;
    const FORMAT: FormatId = FormatId::Bincode;
    const BASELINE: TransportKind = TransportKind::Tcp;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "tarpc 0.38 (serde transport; tokio-serde's bincode codec, which is bincode 1.x, not the format's 2.0.1)",
        security: "none",
        delivery: "reliable, ordered (TCP)",
        multiplexing: "many calls in flight per connection (request ids); one server task per request",
        framing: "4-byte big-endian length (tokio-util length-delimited), bincode 1 envelope",
        wire_bytes: "exact at the I/O layer (TCP stream)",
    };
    type Request = OwnedRequest<Batch>;
    type Client = TarpcClient;

    fn prepare(request: &OwnedRequest<Batch>) -> OwnedRequest<Batch> {
        request.clone()
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<TarpcClient, TransportError> {
        TarpcClient::connect(endpoint, config).await
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve(listen, config).await
    }
}

/// The framing of both sides: tarpc's default length-delimited codec with
/// the frame limit set for `max_message`.
fn framing(max_message: usize) -> length_delimited::Builder {
    let mut builder = LengthDelimitedCodec::builder();
    builder.max_frame_length(max_message.saturating_add(ENVELOPE));
    builder
}

/// The service behind the tarpc server.
#[derive(Clone, Debug)]
struct BenchServer {
    handler: Arc<Handler>,
}

impl Bench for BenchServer {
    async fn multiply(self, _: context::Context, a: i64, b: i64) -> Result<i64, RemoteStatus> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Bincode);
        self.handler.service().multiply(a, b).map_err(RemoteStatus::from)
    }

    async fn echo(self, _: context::Context, payload: Payload) -> Payload {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Bincode);
        // The reply moves the request's bytes unless a test fault made the
        // service answer something else.
        match self.handler.service().echo(&payload.0) {
            std::borrow::Cow::Borrowed(_) => payload,
            std::borrow::Cow::Owned(wrong) => Payload(wrong),
        }
    }

    async fn digest(self, _: context::Context, batch: Batch) -> Result<DigestReply, RemoteStatus> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Bincode);
        self.handler.service().digest(&batch.records).map_err(|e| Status::from(e).into())
    }
}

/// Binds `listen` and serves `Bench` until shut down: one task per
/// connection, one task per request, as tarpc's examples serve.
pub async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
    let address = listen.inet(KIND)?;
    let listener = TcpListener::bind(address).await.map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let local = listener.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let handler = Handler::new(&config);
    let max = config.max_message;
    Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |mut shutdown, mut connections| async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!("tarpc: nodelay: {e}");
                        }
                        let transport = serde_transport::new(framing(max).new_framed(tcp), Bincode::default());
                        let server = BenchServer { handler: handler.clone() };
                        let mut shutdown = shutdown.clone();
                        connections.spawn(async move {
                            let requests = BaseChannel::with_defaults(transport)
                                .execute(server.serve())
                                .for_each(|response| async move {
                                    tokio::spawn(response);
                                });
                            tokio::select! {
                                () = requests => {}
                                () = shutdown.wait() => {}
                            }
                        });
                    }
                    Err(e) => tracing::debug!("tarpc accept: {e}"),
                },
                () = shutdown.wait() => return connections,
            }
        }
    }))
}

/// tarpc's generated client, one per connection; calls go round-robin.
#[derive(Debug)]
pub struct TarpcClient {
    clients: Vec<BenchClient>,
    next: Cell<usize>,
    counters: Arc<LiveCounters>,
    timeout: Duration,
}

impl TarpcClient {
    /// Connects `config.connections` clients, each with its dispatch task.
    pub async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<TarpcClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let counters = Arc::new(LiveCounters::default());
        let mut clients = Vec::new();
        for _ in 0..config.connections.max(1) {
            let tcp = TcpStream::connect(address).await.map_err(|e| TransportError::io(KIND, "connect", address, e))?;
            tcp.set_nodelay(true).map_err(|e| TransportError::io(KIND, "connect", address, e))?;
            let framed = framing(config.max_message).new_framed(Counting::new(tcp, counters.clone()));
            let transport = serde_transport::new(framed, Bincode::default());
            clients.push(BenchClient::new(client::Config::default(), transport).spawn());
        }
        Ok(TarpcClient { clients, next: Cell::new(0), counters, timeout: config.timeout })
    }

    /// One call through the generated client, which takes its arguments by
    /// value: each call clones the prepared request, as an application
    /// building one would. The deadline travels in tarpc's context.
    pub async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        let client = &self.clients[i % self.clients.len()];
        let mut ctx = context::current();
        ctx.deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        let call = async move {
            Ok(match request {
                OwnedRequest::Multiply { a, b } => {
                    Reply::Multiply { product: client.multiply(ctx, *a, *b).await.map_err(|e| from_rpc(e, timeout))?? }
                }
                OwnedRequest::Echo { payload } => {
                    let echoed = client.echo(ctx, Payload(payload.clone())).await.map_err(|e| from_rpc(e, timeout))?;
                    Reply::Echo { payload: echoed.0.into() }
                }
                OwnedRequest::Digest { batch } => {
                    Reply::Digest(client.digest(ctx, batch.clone()).await.map_err(|e| from_rpc(e, timeout))??)
                }
            })
        };
        crate::with_timeout(timeout, call).await
    }

    /// Bytes on the wire so far.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}

impl FrameworkClient for TarpcClient {
    type Request = OwnedRequest<Batch>;

    async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        TarpcClient::call(self, request).await
    }

    fn counters(&self) -> Option<Counters> {
        Some(TarpcClient::counters(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_status_keeps_its_code() {
        let sent = RemoteStatus::from(Status::new(Code::OutOfRange, "overflows"));
        assert!(matches!(CallError::from(sent), CallError::Status(s) if s.code == Code::OutOfRange));
        let unknown = RemoteStatus { code: 200, message: "what".into() };
        assert!(matches!(CallError::from(unknown), CallError::Status(s) if s.code == Code::Internal));
    }
}
