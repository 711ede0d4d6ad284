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
//! is `thrift-binary`. Only that is read, both ways: Volo's own decoder
//! would also take TCompactProtocol and unframed messages, which our
//! check below cannot vouch for (see "Hostile bytes").
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
//!
//! Hostile bytes: pilota 0.13's generated readers trust the wire. A list
//! count goes straight into `Vec::with_capacity`, so a frame of a few bytes
//! claiming 2^31 - 1 records makes the allocation fail and the whole
//! process abort; a string length past the frame's end panics in
//! `Bytes::split_to`. So both ends decode through `MakeValidatingCodec`,
//! ours: the framed codec hands it each frame's payload, and
//! `validate::check_message` walks that payload's structure once (no
//! allocation, depth bounded) before pilota sees it, refusing a frame that
//! is not exactly one strict binary message, any length or count that is
//! negative or more than the bytes left could hold, an unknown type id and
//! nesting past `validate::MAX_DEPTH` (the list is in that module's doc).
//! A refused frame is a decode error: Volo's server answers it with a
//! `TApplicationException` and closes that connection; the client fails
//! the call. What reaches Volo's decoder without a frame (it would decode
//! it straight from the socket, trusting every claim) is refused the same
//! way.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pilota::thrift::{ProtocolExceptionKind, ThriftException, new_protocol_exception};
use tokio::io::AsyncRead;
use tokio::net::TcpListener;
use volo::net::conn::Conn;
use volo::net::incoming::{Incoming, MakeIncoming};
use volo::util::buf_reader::BufReader;
use volo_thrift::codec::DefaultMakeCodec;
use volo_thrift::codec::default::framed::MakeFramedCodec;
use volo_thrift::codec::default::thrift::{MakeThriftCodec, ThriftCodec};
use volo_thrift::codec::default::{MakeZeroCopyCodec, ZeroCopyDecoder};
use volo_thrift::context::ThriftContext;
use volo_thrift::{ClientError, EntryMessage, MaybeException, ServerError, ThriftMessage};

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

mod validate;

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
        // pilota 0.13 makes string fields from the frame's bytes without
        // checking them (`FastStr::from_bytes_unchecked`): a peer's invalid
        // UTF-8 is refused here, before anything reads them as text.
        let attributes = r.attributes.iter().flat_map(|a| [&a.key, &a.value]);
        let city = r.location.iter().map(|l| &l.city);
        let texts = [&r.name, &r.email].into_iter().chain(r.tags.iter()).chain(attributes).chain(city);
        for text in texts {
            if let Err(e) = std::str::from_utf8(text.as_bytes()) {
                return Err(CodecError::decode(
                    "volo-thrift",
                    "Batch",
                    format_args!("record {i}: a string is not UTF-8 ({e})"),
                ));
            }
        }
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
/// inside, frames up to `max_message`, each checked before it is decoded.
fn codec(max_message: usize) -> DefaultMakeCodec<MakeFramedCodec<MakeValidatingCodec>> {
    let limit = i32::try_from(max_message).unwrap_or(i32::MAX);
    DefaultMakeCodec::new(MakeFramedCodec::new(MakeValidatingCodec::default()).with_max_frame_size(limit))
}

/// Volo's `MakeThriftCodec`, its decoder behind [`validate::check_message`];
/// the encoder is Volo's own.
#[derive(Clone, Copy, Debug, Default)]
struct MakeValidatingCodec(MakeThriftCodec);

impl MakeZeroCopyCodec for MakeValidatingCodec {
    type Encoder = ThriftCodec;
    type Decoder = ValidatingDecoder;

    fn make_codec(&self) -> (ThriftCodec, ValidatingDecoder) {
        let (encoder, decoder) = self.0.make_codec();
        (encoder, ValidatingDecoder(decoder))
    }
}

/// Volo's Thrift decoder, handed only payloads that passed the check.
#[derive(Clone, Copy, Debug)]
struct ValidatingDecoder(ThriftCodec);

impl ZeroCopyDecoder for ValidatingDecoder {
    /// The framed codec's path: `bytes` is one whole frame's payload (the
    /// length already read and checked against `max_message`).
    fn decode<Msg: Send + EntryMessage, Cx: ThriftContext>(
        &mut self,
        cx: &mut Cx,
        bytes: &mut Bytes,
    ) -> Result<Option<ThriftMessage<Msg>>, ThriftException> {
        validate::check_message(bytes).map_err(refused)?;
        self.0.decode(cx, bytes)
    }

    /// The framed codec falls back to this when the bytes do not start
    /// with a frame (a length, then `80 01` or compact's `82`): Volo's
    /// decoder would read the message straight from the socket, reserving
    /// whatever it claims. Refused.
    fn decode_async<Msg: Send + EntryMessage, Cx: ThriftContext, R: AsyncRead + Unpin + Send + Sync>(
        &mut self,
        _cx: &mut Cx,
        _reader: &mut BufReader<R>,
    ) -> impl Future<Output = Result<Option<ThriftMessage<Msg>>, ThriftException>> + Send {
        std::future::ready(Err(new_protocol_exception(
            ProtocolExceptionKind::BadVersion,
            "volo-thrift: not a frame (a 4-byte length, then a strict binary message); \
             unframed messages are refused",
        )))
    }
}

/// A refused frame as Volo's decode error.
fn refused(e: validate::Invalid) -> ThriftException {
    use validate::Invalid as I;
    let kind = match e {
        I::NotStrictBinary { .. } => ProtocolExceptionKind::BadVersion,
        I::Negative { .. } => ProtocolExceptionKind::NegativeSize,
        I::TooDeep { .. } => ProtocolExceptionKind::DepthLimit,
        I::Truncated { .. } | I::TooLong { .. } | I::TooMany { .. } | I::UnknownType { .. } | I::Trailing { .. } => {
            ProtocolExceptionKind::InvalidData
        }
    };
    new_protocol_exception(kind, format!("volo-thrift: frame refused before decoding: {e}"))
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

#[cfg(test)]
mod tests {
    use pilota::thrift::TMessageType;
    use volo_thrift::context::{ClientContext, ServerContext};

    use super::validate::tests::{digest_call, message};
    use super::*;

    fn decode(bytes: Vec<u8>) -> Result<Option<ThriftMessage<vg::BenchRequestRecv>>, ThriftException> {
        let (_, mut decoder) = MakeValidatingCodec::default().make_codec();
        decoder.decode(&mut ServerContext::default(), &mut Bytes::from(bytes))
    }

    #[test]
    fn a_valid_request_is_checked_then_decoded_by_volo() {
        let decoded = decode(digest_call(1000)).unwrap().unwrap();
        match decoded.data {
            Ok(vg::BenchRequestRecv::Digest(args)) => assert_eq!(args.batch.records.len(), 1000),
            Ok(other) => panic!("decoded {other:?}"),
            Err(e) => panic!("decoded an exception: {e}"),
        }
    }

    fn batch_of(bytes: Vec<u8>) -> vg::Batch {
        match decode(bytes).unwrap().unwrap().data {
            Ok(vg::BenchRequestRecv::Digest(args)) => args.batch,
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_is_refused_before_it_is_read() {
        let mut m = digest_call(1);
        let name = batch_of(m.clone()).records[0].name.to_string();
        let at = m.windows(name.len()).position(|w| w == name.as_bytes()).unwrap();
        m[at] = 0xff;
        // pilota takes the bytes as they are; the check refuses them.
        let err = check(&batch_of(m)).unwrap_err();
        assert!(err.to_string().contains("record 0: a string is not UTF-8"), "{err}");
        assert!(check(&batch_of(digest_call(10))).is_ok());
    }

    #[test]
    fn a_lying_list_never_reaches_pilota() {
        // Were it decoded, pilota would reserve 2^31 - 1 records and the
        // allocation failure would abort this test process.
        let mut m = digest_call(0);
        let count = m.len() - 6; // then the stops of Batch and the arguments
        m[count..count + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let Err(e) = decode(m) else { panic!("a list of 2^31 - 1 records was decoded") };
        let ThriftException::Protocol(e) = e else { panic!("{e}") };
        assert_eq!(e.kind(), ProtocolExceptionKind::InvalidData, "{e}");
        assert!(e.message().contains("claims 2147483647 elements"), "{e}");
    }

    #[test]
    fn a_string_past_the_frame_never_reaches_pilota() {
        // pilota's `split_to` would panic.
        let echo = vg::BenchEchoArgsSend { request: vg::EchoRequest { payload: vec![1; 8].into() } };
        let mut m = message("Echo", TMessageType::Call, &echo);
        let len = m.len() - 2 - 8 - 4;
        m[len..len + 4].copy_from_slice(&1000i32.to_be_bytes());
        assert!(decode(m).is_err());
    }

    #[test]
    fn replies_are_checked_on_the_client_too() {
        let (_, mut decoder) = MakeValidatingCodec::default().make_codec();
        let mut cx =
            ClientContext::new(7, volo::context::RpcInfo::with_role(volo::context::Role::Client), TMessageType::Call);
        let reply = vg::BenchDigestResultSend::Ok(vg::DigestReply { records: 3, checksum: -1 });
        let mut m = message("Digest", TMessageType::Reply, &reply);
        let decoded: ThriftMessage<vg::BenchResponseRecv> =
            decoder.decode(&mut cx, &mut Bytes::from(m.clone())).unwrap().unwrap();
        assert!(matches!(decoded.data, Ok(vg::BenchResponseRecv::Digest(vg::BenchDigestResultRecv::Ok(_)))));
        m.push(0);
        assert!(decoder.decode::<vg::BenchResponseRecv, _>(&mut cx, &mut Bytes::from(m)).is_err());
    }
}
