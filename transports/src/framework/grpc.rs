//! The reference row: a stock tonic client and server generated from
//! `formats/schemas/bench.proto` (committed code in `generated/`), with the
//! prost messages of the formats crate. Protobuf only. This is what users
//! would otherwise pick, so every other cell is compared against it.
//!
//! Stock means tonic's own API: the client hands tonic an owned request
//! message per call (tonic's API takes it by value) and gets an owned
//! reply. The only settings changed from tonic's defaults are the ones the
//! h2 transport changes too (TCP_NODELAY on the server, flow-control
//! windows, message size limits), so the comparison is like for like.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;
use wirebench_formats::protobuf::PbRequest;
use wirebench_formats::protobuf::pb;
use wirebench_formats::{Code, DigestReply, Reply, Status};

use wirebench_formats::{Batch, Format, FormatId, OwnedRequest};

use crate::counting::Counting;
use crate::framework::{Framework, FrameworkClient};
use crate::http2::{CONNECTION_WINDOW, STREAM_WINDOW};
use crate::server::{Handler, Server, ServerConfig};
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, LiveCounters, TransportError, TransportKind,
    TransportProperties,
};

#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
mod generated {
    include!("../generated/wirebench.rs");
}

pub use generated::bench_client::BenchClient;
pub use generated::bench_server::{Bench, BenchServer};

const KIND: TransportKind = TransportKind::Grpc;

/// The stock tonic reference.
#[derive(Debug)]
pub struct Grpc;

impl Framework for Grpc {
    const KIND: TransportKind = KIND;
    const FORMAT: FormatId = FormatId::Protobuf;
    const BASELINE: TransportKind = TransportKind::Http2;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "tonic (stock client and server, prost messages)",
        security: "none (h2c)",
        delivery: "reliable, ordered per stream",
        multiplexing: "one HTTP/2 stream per call",
        framing: "gRPC",
        wire_bytes: "exact at the I/O layer (HTTP/2 frames)",
    };
    type Request = PbRequest;
    type Client = GrpcClient;

    fn prepare(request: &OwnedRequest<Batch>) -> PbRequest {
        wirebench_formats::protobuf::Protobuf::prepare(request)
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<GrpcClient, TransportError> {
        GrpcClient::connect(endpoint, config).await
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve(listen, config).await
    }
}

impl FrameworkClient for GrpcClient {
    type Request = PbRequest;

    /// tonic's API takes an owned request message per call, so each call
    /// clones the prepared one, as an application building a request would.
    async fn call(&self, request: &PbRequest) -> Result<Reply<'static>, CallError> {
        GrpcClient::call(self, request.clone()).await
    }

    fn counters(&self) -> Option<Counters> {
        Some(GrpcClient::counters(self))
    }
}

fn to_tonic(status: Status) -> tonic::Status {
    tonic::Status::new(tonic::Code::from(i32::from(status.code.value())), status.message)
}

fn from_tonic(status: tonic::Status) -> CallError {
    let code = u32::try_from(status.code() as i32).ok().and_then(Code::from_value);
    CallError::Status(match code {
        Some(code) => Status::new(code, status.message()),
        None => Status::new(Code::Internal, format!("{:?}: {}", status.code(), status.message())),
    })
}

/// The service behind the stock tonic server: the formats' service logic,
/// the same faults as every other server.
#[derive(Debug)]
pub struct BenchService {
    handler: Arc<Handler>,
}

impl BenchService {
    /// A service answering through `handler`.
    pub fn new(handler: Arc<Handler>) -> BenchService {
        BenchService { handler }
    }
}

#[tonic::async_trait]
impl Bench for BenchService {
    async fn multiply(
        &self,
        request: tonic::Request<pb::MultiplyRequest>,
    ) -> Result<tonic::Response<pb::MultiplyReply>, tonic::Status> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Protobuf);
        let m = request.into_inner();
        let product = self.handler.service().multiply(m.a, m.b).map_err(to_tonic)?;
        Ok(tonic::Response::new(pb::MultiplyReply { product }))
    }

    async fn echo(
        &self,
        request: tonic::Request<pb::EchoRequest>,
    ) -> Result<tonic::Response<pb::EchoReply>, tonic::Status> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Protobuf);
        let payload = request.into_inner().payload;
        // The reply moves the request's bytes, as a tonic server would,
        // unless a test fault made the service answer something else.
        let payload = match self.handler.service().echo(&payload) {
            Cow::Borrowed(_) => None,
            Cow::Owned(wrong) => Some(wrong),
        }
        .unwrap_or(payload);
        Ok(tonic::Response::new(pb::EchoReply { payload }))
    }

    async fn digest(
        &self,
        request: tonic::Request<pb::Batch>,
    ) -> Result<tonic::Response<pb::DigestReply>, tonic::Status> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Protobuf);
        let batch = request.into_inner();
        let d = self.handler.service().digest(&batch.records).map_err(|e| to_tonic(e.into()))?;
        Ok(tonic::Response::new(pb::DigestReply { records: d.records, checksum: d.checksum }))
    }
}

/// Binds `listen` and serves the stock tonic server until shut down.
pub async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
    let address = listen.inet(KIND)?;
    let listener = TcpListener::bind(address).await.map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let local = listener.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let max = config.max_message;
    let handler = Handler::new(&config);
    let service =
        BenchServer::new(BenchService::new(handler)).max_decoding_message_size(max).max_encoding_message_size(max);
    Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |mut shutdown, set| async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let served = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::warn!("grpc server stopped: {e}");
        }
        set
    }))
}

/// The stock tonic client.
#[derive(Debug)]
pub struct GrpcClient {
    clients: Vec<BenchClient<Channel>>,
    next: AtomicUsize,
    counters: Arc<LiveCounters>,
    timeout: Duration,
}

impl GrpcClient {
    /// Connects `config.connections` channels; bytes are counted by a
    /// counting TCP stream under tonic.
    pub async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<GrpcClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let counters = Arc::new(LiveCounters::default());
        let mut clients = Vec::new();
        for _ in 0..config.connections.max(1) {
            let tonic_endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                .map_err(|e| TransportError::Config(format!("grpc: bad address {address}: {e}")))?
                .tcp_nodelay(true)
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .connect_timeout(config.timeout)
                .timeout(config.timeout);
            let counters = counters.clone();
            let connector = tower::service_fn(move |_: http::Uri| {
                let counters = counters.clone();
                async move {
                    let tcp = TcpStream::connect(address).await?;
                    tcp.set_nodelay(true)?;
                    Ok::<_, std::io::Error>(TokioIo::new(Counting::new(tcp, counters)))
                }
            });
            let channel = tonic_endpoint
                .connect_with_connector(connector)
                .await
                .map_err(|e| TransportError::handshake(KIND, format!("cannot connect to {address}: {e}")))?;
            clients.push(
                BenchClient::new(channel)
                    .max_decoding_message_size(config.max_message)
                    .max_encoding_message_size(config.max_message),
            );
        }
        Ok(GrpcClient { clients, next: AtomicUsize::new(0), counters, timeout: config.timeout })
    }

    /// One call with an owned request message, as tonic's API takes it.
    pub async fn call(&self, request: PbRequest) -> Result<Reply<'static>, CallError> {
        let mut client = self.clients[self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()].clone();
        let call = async move {
            Ok(match request {
                PbRequest::Multiply(m) => {
                    Reply::Multiply { product: client.multiply(m).await.map_err(from_tonic)?.into_inner().product }
                }
                PbRequest::Echo(e) => {
                    Reply::Echo { payload: Cow::Owned(client.echo(e).await.map_err(from_tonic)?.into_inner().payload) }
                }
                PbRequest::Digest(b) => {
                    let d = client.digest(b).await.map_err(from_tonic)?.into_inner();
                    Reply::Digest(DigestReply { records: d.records, checksum: d.checksum })
                }
            })
        };
        crate::with_timeout(self.timeout, call).await
    }

    /// Bytes on the wire so far.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }
}
