//! CloudWeGo Volo's Thrift RPC (`volo-thrift` 0.12): the `Bench` service of
//! `formats/schemas/bench.thrift`, as volo-build 0.12 (on pilota-build)
//! generates it (code committed in `generated/volo_bench.rs`, written by
//! `scripts/codegen-volo`), served by Volo's own server and called by
//! Volo's own client.
//!
//! Wire: Volo's default codec is TTHeader around a framed message, which
//! Apache Thrift's implementations do not read. Both ends here are built
//! with `DefaultMakeCodec::framed()`'s stack instead (`MakeFramedCodec`
//! around `MakeThriftCodec`), which is Apache's `TFramedTransport`: a
//! 4-byte big-endian length, then one TMessage. The protocol is the
//! `MakeThriftCodec` default, strict TBinaryProtocol, so the row's format
//! is `thrift-binary`. (Volo's server detects the protocol and the framing
//! of each request and answers in kind; its client writes binary.)
//! Failures travel as the declared exception `BenchError`, or as Thrift's
//! `TApplicationException` for what Volo itself refuses.
//!
//! Threading, as Volo's users run it: the server is Volo's accept loop and
//! one tokio task per connection, on the multi-thread runtime of
//! `wirebench serve`; the accept side is ours only in that the listener is
//! bound first (to learn port 0) and handed to Volo as its `Incoming`,
//! which ends at shutdown. The client is Volo's non-multiplexed client:
//! one call at a time per connection, connections taken from Volo's pool
//! and opened as concurrent calls need them, so `--connections` does not
//! apply (Volo has no such setting) and N calls in flight use up to N
//! connections.
//!
//! Limits: the framed codec refuses a frame over `max_message` (checked
//! before the frame is allocated), both ways. Volo owns its client sockets
//! (its pool and transport), so wire bytes are not counted.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use volo::net::conn::Conn;
use volo::net::incoming::{Incoming, MakeIncoming};
use volo_thrift::codec::DefaultMakeCodec;
use volo_thrift::codec::default::framed::MakeFramedCodec;
use volo_thrift::codec::default::thrift::MakeThriftCodec;
use volo_thrift::{ClientError, MaybeException, ServerError};

use wirebench_formats::{
    Batch, Code, CodecError, DigestReply, FormatId, OwnedRequest, RecordView, Reply, Status, contract::Kind,
};

use crate::framework::{Framework, FrameworkClient};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{Address, CallError, ClientConfig, Counters, Endpoint, TransportError, TransportKind, TransportProperties};

#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
mod generated {
    include!("../generated/volo_bench.rs");
}

use generated::volo_bench::wirebench as vg;

const KIND: TransportKind = TransportKind::VoloThrift;

/// CloudWeGo Volo Thrift, framed transport, binary protocol.
#[derive(Debug)]
pub struct VoloThrift;

impl Framework for VoloThrift {
    const KIND: TransportKind = KIND;
    const FORMAT: FormatId = FormatId::ThriftBinary;
    const BASELINE: TransportKind = TransportKind::Tcp;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "volo-thrift 0.12 (CloudWeGo Volo's generated client and server, pilota 0.13), TBinaryProtocol",
        security: "none",
        delivery: "reliable, ordered (TCP)",
        multiplexing: "one call at a time per connection; Volo's client pool opens a connection per call in \
                       flight (--connections does not apply), a server task per connection",
        framing: "TFramedTransport (4-byte length, frames up to max_message), TMessage envelope; not TTHeader",
        wire_bytes: "not counted (Volo owns its client sockets)",
    };
    type Request = VoloRequest;
    type Client = VoloClient;

    fn prepare(request: &OwnedRequest<Batch>) -> VoloRequest {
        match request {
            OwnedRequest::Multiply { a, b } => VoloRequest::Multiply(vg::MultiplyRequest { a: *a, b: *b }),
            OwnedRequest::Echo { payload } => {
                VoloRequest::Echo(vg::EchoRequest { payload: bytes::Bytes::copy_from_slice(payload) })
            }
            OwnedRequest::Digest { batch } => VoloRequest::Digest(to_volo(batch)),
        }
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<VoloClient, TransportError> {
        VoloClient::connect(endpoint, config)
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve(listen, config).await
    }
}

/// A request as a Volo application holds it: the generated structs.
#[derive(Clone, Debug)]
pub enum VoloRequest {
    /// `MultiplyRequest`.
    Multiply(vg::MultiplyRequest),
    /// `EchoRequest`.
    Echo(vg::EchoRequest),
    /// `Batch`.
    Digest(vg::Batch),
}

/// The contract's batch as pilota's structs: unsigned values as the
/// signed type of their width, `weight` widened exactly, as the schema
/// says.
fn to_volo(batch: &Batch) -> vg::Batch {
    vg::Batch {
        records: batch
            .records
            .iter()
            .map(|r| vg::Record {
                id: r.id as i64,
                user_id: r.user_id as i32,
                timestamp_micros: r.timestamp_micros,
                name: r.name.clone().into(),
                email: r.email.clone().into(),
                kind: vg::Kind::from(i32::from(r.kind.value())),
                score: r.score,
                weight: f64::from(r.weight),
                active: r.active,
                tags: r.tags.iter().map(|t| t.clone().into()).collect(),
                attributes: r
                    .attributes
                    .iter()
                    .map(|a| vg::Attribute { key: a.key.clone().into(), value: a.value.clone().into() })
                    .collect(),
                location: r.location.as_ref().map(|l| vg::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    city: l.city.clone().into(),
                }),
                fingerprint: bytes::Bytes::copy_from_slice(&r.fingerprint),
            })
            .collect(),
    }
}

impl RecordView for vg::Record {
    fn id(&self) -> u64 {
        self.id as u64
    }
    fn user_id(&self) -> u32 {
        self.user_id as u32
    }
    fn timestamp_micros(&self) -> i64 {
        self.timestamp_micros
    }
    fn name(&self) -> Result<&str, CodecError> {
        Ok(&self.name)
    }
    fn email(&self) -> Result<&str, CodecError> {
        Ok(&self.email)
    }
    fn kind(&self) -> Result<Kind, CodecError> {
        let value = self.kind.inner();
        u32::try_from(value).ok().and_then(Kind::from_value).ok_or_else(|| {
            CodecError::decode("volo-thrift", "Record", format_args!("kind {value} is not in the schema"))
        })
    }
    fn score(&self) -> f64 {
        self.score
    }
    fn weight(&self) -> f32 {
        // Exact: `check` rejects a double that is not an f32 first.
        self.weight as f32
    }
    fn active(&self) -> bool {
        self.active
    }
    fn for_each_tag(&self, mut f: impl FnMut(&str)) -> Result<usize, CodecError> {
        self.tags.iter().for_each(|t| f(t));
        Ok(self.tags.len())
    }
    fn for_each_attribute(&self, mut f: impl FnMut(&str, &str)) -> Result<usize, CodecError> {
        self.attributes.iter().for_each(|a| f(&a.key, &a.value));
        Ok(self.attributes.len())
    }
    fn location(&self, f: impl FnOnce(f64, f64, &str)) -> Result<bool, CodecError> {
        match &self.location {
            Some(l) => {
                f(l.latitude, l.longitude, &l.city);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn fingerprint(&self) -> Result<&[u8], CodecError> {
        Ok(&self.fingerprint)
    }
}

/// Rejects a record the schema's comment rules out: a `weight` that is
/// not an f32 widened.
fn check(batch: &vg::Batch) -> Result<(), CodecError> {
    for (i, r) in batch.records.iter().enumerate() {
        let w = r.weight;
        if !(w.is_nan() || f64::from(w as f32) == w) {
            return Err(CodecError::decode(
                "volo-thrift",
                "Batch",
                format_args!("record {i}: weight {w} is not a 32-bit float"),
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ server

/// The `Bench` service: the formats' service logic, the same faults as
/// every other server.
struct BenchService {
    handler: Arc<Handler>,
}

impl BenchService {
    async fn enter(&self) {
        self.handler.admit().await;
        self.handler.count_call(FormatId::ThriftBinary);
    }
}

/// A refused call, as the schema declares it.
fn bench_error(status: Status) -> vg::BenchError {
    vg::BenchError { code: i32::from(status.code.value()), message: status.message.into() }
}

impl vg::Bench for BenchService {
    async fn multiply(
        &self,
        request: vg::MultiplyRequest,
    ) -> Result<MaybeException<vg::MultiplyReply, vg::BenchMultiplyException>, ServerError> {
        self.enter().await;
        Ok(match self.handler.service().multiply(request.a, request.b) {
            Ok(product) => MaybeException::Ok(vg::MultiplyReply { product }),
            Err(status) => MaybeException::Exception(vg::BenchMultiplyException::Error(bench_error(status))),
        })
    }

    async fn echo(
        &self,
        request: vg::EchoRequest,
    ) -> Result<MaybeException<vg::EchoReply, vg::BenchEchoException>, ServerError> {
        self.enter().await;
        // The reply shares the request's buffer, unless a test fault made
        // the service answer something else.
        let payload = match self.handler.service().echo(&request.payload) {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(wrong) => Some(bytes::Bytes::from(wrong)),
        }
        .unwrap_or(request.payload);
        Ok(MaybeException::Ok(vg::EchoReply { payload }))
    }

    async fn digest(
        &self,
        batch: vg::Batch,
    ) -> Result<MaybeException<vg::DigestReply, vg::BenchDigestException>, ServerError> {
        self.enter().await;
        let digest = check(&batch).and_then(|()| self.handler.service().digest(&batch.records));
        Ok(match digest {
            // u32 and u64 as the signed types of their width.
            Ok(d) => MaybeException::Ok(vg::DigestReply { records: d.records as i32, checksum: d.checksum as i64 }),
            Err(e) => MaybeException::Exception(vg::BenchDigestException::Error(bench_error(e.into()))),
        })
    }
}

/// The framed codec (Apache's `TFramedTransport`) with strict binary
/// inside, frames up to `max_message`.
fn codec(max_message: usize) -> DefaultMakeCodec<MakeFramedCodec<MakeThriftCodec>> {
    let limit = i32::try_from(max_message).unwrap_or(i32::MAX);
    DefaultMakeCodec::new(MakeFramedCodec::new(MakeThriftCodec::default()).with_max_frame_size(limit))
}

/// How long the accept side waits at shutdown for Volo's connection
/// tasks of the last accepted connections to start.
const SHUTDOWN_SETTLE: Duration = Duration::from_millis(100);

/// The bound listener, handed to Volo's server as its source of
/// connections; it ends at shutdown, which ends Volo's accept loop.
#[derive(Debug)]
struct Accept {
    /// Dropped at shutdown: Volo keeps its source of connections until
    /// its own grace period ends, and a connection still in the kernel's
    /// backlog would sit there, neither served nor closed, until then. A
    /// closed listener resets it at once.
    listener: Option<TcpListener>,
    shutdown: ShutdownSignal,
}

impl MakeIncoming for Accept {
    type Incoming = Accept;

    async fn make_incoming(self) -> io::Result<Accept> {
        Ok(self)
    }
}

impl Incoming for Accept {
    async fn accept(&mut self) -> io::Result<Option<Conn>> {
        loop {
            let Some(listener) = &self.listener else { return Ok(None) };
            let accepted = tokio::select! {
                biased;
                () = self.shutdown.wait() => None,
                accepted = listener.accept() => Some(accepted),
            };
            match accepted {
                None => {
                    self.listener = None;
                    // Volo's server, once this returns None, notifies the
                    // connection tasks that exist to close; one spawned for
                    // a connection accepted just before, not yet started,
                    // would miss that and keep its idle connection open.
                    // A moment lets it start (and count itself).
                    tokio::time::sleep(SHUTDOWN_SETTLE).await;
                    return Ok(None);
                }
                Some(Ok((stream, _))) => return Ok(Some(Conn::from(stream))),
                Some(Err(e)) => {
                    // Out of file descriptors and the like: an error here
                    // would end Volo's server, so back off and go on.
                    tracing::warn!("{KIND}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Binds `listen` and runs Volo's server on it until shut down. At
/// shutdown Volo stops accepting, lets open connections finish (its own
/// grace period, cut short by the server's drain limit).
async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
    let address = listen.inet(KIND)?;
    let listener = TcpListener::bind(address).await.map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let local = listener.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let service = BenchService { handler: Handler::new(&config) };
    let server = vg::BenchServer::new(service).make_codec(codec(config.max_message));
    Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |mut shutdown, mut connections| async move {
        let incoming = Accept { listener: Some(listener), shutdown: shutdown.clone() };
        connections.spawn(async move {
            if let Err(e) = server.run(incoming).await {
                tracing::warn!("{KIND}: server failed: {e}");
            }
        });
        shutdown.wait().await;
        connections
    }))
}

// ------------------------------------------------------------------ client

/// Volo's generated client, framed binary, on Volo's connection pool.
#[derive(Clone)]
pub struct VoloClient {
    client: vg::BenchClient,
    timeout: Duration,
}

impl std::fmt::Debug for VoloClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoloClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl VoloClient {
    /// Builds the client; Volo connects on the first call (and whenever
    /// its pool has no idle connection), so an unreachable server shows on
    /// the first call.
    fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<VoloClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let client = vg::BenchClientBuilder::new("wirebench-bench")
            .make_codec(codec(config.max_message))
            .address(volo::net::Address::from(address))
            .connect_timeout(Some(config.timeout))
            .rpc_timeout(Some(config.timeout))
            .build();
        Ok(VoloClient { client, timeout: config.timeout })
    }
}

impl FrameworkClient for VoloClient {
    type Request = VoloRequest;

    /// The generated client takes its argument by value, so each call
    /// clones the prepared one (pilota's strings and bytes are shared, so
    /// the clone copies no payload), as an application building a request
    /// would.
    async fn call(&self, request: &VoloRequest) -> Result<Reply<'static>, CallError> {
        let call = async {
            match request.clone() {
                VoloRequest::Multiply(m) => match self.client.multiply(m).await.map_err(from_volo)? {
                    MaybeException::Ok(r) => Ok(Reply::Multiply { product: r.product }),
                    MaybeException::Exception(vg::BenchMultiplyException::Error(e)) => Err(status(e)),
                },
                VoloRequest::Echo(e) => match self.client.echo(e).await.map_err(from_volo)? {
                    MaybeException::Ok(r) => Ok(Reply::Echo { payload: r.payload.to_vec().into() }),
                    MaybeException::Exception(vg::BenchEchoException::Error(e)) => Err(status(e)),
                },
                VoloRequest::Digest(b) => match self.client.digest(b).await.map_err(from_volo)? {
                    MaybeException::Ok(d) => {
                        Ok(Reply::Digest(DigestReply { records: d.records as u32, checksum: d.checksum as u64 }))
                    }
                    MaybeException::Exception(vg::BenchDigestException::Error(e)) => Err(status(e)),
                },
            }
        };
        crate::with_timeout(self.timeout, call).await
    }

    fn counters(&self) -> Option<Counters> {
        None
    }
}

/// The declared exception as a status.
fn status(e: vg::BenchError) -> CallError {
    CallError::Status(match u32::try_from(e.code).ok().and_then(Code::from_value) {
        Some(code) => Status::new(code, e.message.to_string()),
        None => Status::new(Code::Internal, format!("status {}: {}", e.code, e.message)),
    })
}

/// A failed call as wirebench reports it.
fn from_volo(e: ClientError) -> CallError {
    use pilota::thrift::ApplicationExceptionKind as A;
    match e {
        ClientError::Application(a) => {
            let code = match a.kind() {
                A::UNKNOWN_METHOD => Code::Unimplemented,
                A::PROTOCOL_ERROR => Code::InvalidArgument,
                _ => Code::Internal,
            };
            CallError::Status(Status::new(code, format!("volo-thrift: {a}")))
        }
        ClientError::Transport(t) => CallError::Io(format!("volo-thrift: {t}")),
        ClientError::Protocol(p) => CallError::Protocol(format!("volo-thrift: {p}")),
        ClientError::Biz(b) => CallError::Status(Status::new(Code::Internal, format!("volo-thrift: {b}"))),
    }
}
