//! Cap'n Proto RPC with the `capnp-rpc` crate: the `Bench` interface of
//! `formats/schemas/bench.capnp`, whose parameter and result structs are
//! the messages the `capnp` format encodes, carried inside Cap'n Proto
//! RPC's own `Call` and `Return` messages over the two-party network
//! (`twoparty::VatNetwork`) on TCP.
//!
//! capnp-rpc is single-threaded by design (its capabilities are `Rc`s):
//! the client's connection driver (`RpcSystem`) runs in the cell's
//! `LocalSet` with `spawn_local`, and the server runs on one thread of its
//! own with a current-thread runtime and a `LocalSet`, the way its users
//! run it (`Server::on_thread`). Many calls are in flight per connection
//! (Cap'n Proto's question ids match them).
//!
//! Errors travel as Cap'n Proto exceptions: a status is an exception of
//! type `failed` whose reason is `<STATUS NAME>: <message>` (Multiply's
//! overflow: `OUT_OF_RANGE: ...`); an unknown method is capnp's own
//! `unimplemented`. The client maps both back to [`CallError::Status`].

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ::capnp::message::ReaderOptions;
use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty};
use futures::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use wirebench_formats::bench_capnp::bench;
use wirebench_formats::format::capnp::{build_batch_into, digest_in_place};
use wirebench_formats::{Batch, Code, DigestReply, FormatId, OwnedRequest, Reply, Status};

use crate::counting::Counting;
use crate::framework::{Framework, FrameworkClient};
use crate::server::{Handler, Server, ServerConfig, ShutdownSignal};
use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, LiveCounters, TransportError, TransportKind,
    TransportProperties,
};

const KIND: TransportKind = TransportKind::CapnpRpc;

/// Words of RPC envelope (the `Message`, `Call` or `Return` and payload
/// pointers) allowed beyond the largest message body.
const ENVELOPE_WORDS: usize = 1024;

/// Cap'n Proto RPC.
#[derive(Debug)]
pub struct CapnpRpc;

impl Framework for CapnpRpc {
    const KIND: TransportKind = KIND;
    const FORMAT: FormatId = FormatId::Capnp;
    const BASELINE: TransportKind = TransportKind::Tcp;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "capnp-rpc 0.27 (two-party network on TCP; one server thread with a LocalSet)",
        security: "none",
        delivery: "reliable, ordered (TCP)",
        multiplexing: "many calls in flight per connection (question ids)",
        framing: "Cap'n Proto RPC messages, stream serialization, unpacked",
        wire_bytes: "exact at the I/O layer (TCP stream; each call's Finish message included)",
    };
    type Request = OwnedRequest<Batch>;
    type Client = CapnpRpcClient;

    fn prepare(request: &OwnedRequest<Batch>) -> OwnedRequest<Batch> {
        request.clone()
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<CapnpRpcClient, TransportError> {
        CapnpRpcClient::connect(endpoint, config).await
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve(listen, config)
    }
}

/// The traversal limit for messages of up to `max_message` body bytes.
///
/// capnp checks a message's declared size against it before allocating,
/// and it also bounds the words a reader visits (a list of zero-sized
/// structs is one word per element), so a message's work is bounded by
/// the limit, whatever its content.
fn reader_options(max_message: usize) -> ReaderOptions {
    let mut options = ReaderOptions::new();
    options.traversal_limit_in_words(Some((max_message / 8).saturating_add(ENVELOPE_WORDS)));
    options
}

/// A status as a Cap'n Proto exception: `failed`, reason `<NAME>: <message>`.
fn to_exception(status: Status) -> ::capnp::Error {
    ::capnp::Error::failed(format!("{}: {}", status.code.name(), status.message))
}

/// A Cap'n Proto exception from the server, as a call error.
fn from_exception(e: ::capnp::Error) -> CallError {
    let reason = e.extra.strip_prefix("remote exception: ").unwrap_or(&e.extra);
    match e.kind {
        ::capnp::ErrorKind::Failed => {
            let coded = reason.split_once(": ").and_then(|(name, message)| {
                let code = (0..=u32::from(u8::MAX)).filter_map(Code::from_value).find(|c| c.name() == name)?;
                Some(Status::new(code, message))
            });
            CallError::Status(coded.unwrap_or_else(|| Status::new(Code::Internal, reason)))
        }
        ::capnp::ErrorKind::Unimplemented => CallError::Status(Status::new(Code::Unimplemented, reason)),
        ::capnp::ErrorKind::Overloaded => CallError::Status(Status::new(Code::Unavailable, reason)),
        ::capnp::ErrorKind::Disconnected => CallError::Closed(reason.to_owned()),
        _ => CallError::Protocol(reason.to_owned()),
    }
}

/// The `Bench` capability the server bootstraps: the formats' service
/// logic, the same faults as every other server.
struct BenchImpl {
    handler: Arc<Handler>,
}

impl bench::Server for BenchImpl {
    async fn multiply(
        self: Rc<Self>,
        params: bench::MultiplyParams,
        mut results: bench::MultiplyResults,
    ) -> Result<(), ::capnp::Error> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Capnp);
        let m = params.get()?;
        let product = self.handler.service().multiply(m.get_a(), m.get_b()).map_err(to_exception)?;
        results.get().set_product(product);
        Ok(())
    }

    async fn echo(
        self: Rc<Self>,
        params: bench::EchoParams,
        mut results: bench::EchoResults,
    ) -> Result<(), ::capnp::Error> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Capnp);
        let payload = params.get()?.get_payload()?;
        results.get().set_payload(&self.handler.service().echo(payload));
        Ok(())
    }

    async fn digest(
        self: Rc<Self>,
        params: bench::DigestParams,
        mut results: bench::DigestResults,
    ) -> Result<(), ::capnp::Error> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Capnp);
        let d = digest_in_place(self.handler.service(), params.get()?).map_err(|e| to_exception(e.into()))?;
        let mut reply = results.get();
        reply.set_records(d.records);
        reply.set_checksum(d.checksum);
        Ok(())
    }
}

/// Binds `listen` and serves `Bench` on a thread of its own until shut down.
pub fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
    let address = listen.inet(KIND)?;
    let listener = std::net::TcpListener::bind(address).map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let local = listener.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    listener.set_nonblocking(true).map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let handler = Handler::new(&config);
    let options = reader_options(config.max_message);
    let endpoint = Endpoint::new(KIND, Address::Inet(local));
    Server::on_thread(endpoint, "capnp-rpc server", move |mut shutdown, mut connections| async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("capnp-rpc: cannot listen on {local}: {e}");
                return connections;
            }
        };
        // One capability for every connection, as a capnp-rpc server
        // hands out its bootstrap interface.
        let bench: bench::Client = capnp_rpc::new_client(BenchImpl { handler });
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        let bench = bench.clone();
                        connections.spawn_local(serve_connection(tcp, bench, options, shutdown.clone()));
                    }
                    Err(e) => tracing::debug!("capnp-rpc accept: {e}"),
                },
                () = shutdown.wait() => return connections,
            }
        }
    })
    .map_err(|e| TransportError::io(KIND, "start a server thread for", local, e))
}

/// Runs one connection's RPC system until the peer leaves, breaks the
/// protocol (capnp-rpc ends the connection), or the server shuts down.
async fn serve_connection(tcp: TcpStream, bench: bench::Client, options: ReaderOptions, mut shutdown: ShutdownSignal) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("capnp-rpc: nodelay: {e}");
    }
    let (read, write) = tcp.into_split();
    let network = twoparty::VatNetwork::new(
        BufReader::new(read.compat()),
        BufWriter::new(write.compat_write()),
        Side::Server,
        options,
    );
    let system = RpcSystem::new(Box::new(network), Some(bench.client));
    tokio::select! {
        ended = system => if let Err(e) = ended {
            tracing::debug!("capnp-rpc connection closed: {e}");
        },
        () = shutdown.wait() => {}
    }
}

/// The capnp-rpc client: one `RpcSystem` per connection, each driven by a
/// task of the caller's `LocalSet`; calls go round-robin over them.
#[derive(Debug)]
pub struct CapnpRpcClient {
    connections: Vec<Connection>,
    next: Cell<usize>,
    counters: Arc<LiveCounters>,
    timeout: Duration,
}

struct Connection {
    bench: bench::Client,
    driver: AbortHandle,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Drop for CapnpRpcClient {
    fn drop(&mut self) {
        for c in &self.connections {
            c.driver.abort();
        }
    }
}

impl CapnpRpcClient {
    /// Connects `config.connections` connections and bootstraps `Bench` on
    /// each. Must run inside a `LocalSet`: each connection's driver is
    /// spawned on it.
    pub async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<CapnpRpcClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let counters = Arc::new(LiveCounters::default());
        let mut connections = Vec::new();
        for _ in 0..config.connections.max(1) {
            let tcp = TcpStream::connect(address).await.map_err(|e| TransportError::io(KIND, "connect", address, e))?;
            tcp.set_nodelay(true).map_err(|e| TransportError::io(KIND, "connect", address, e))?;
            let (read, write) = tcp.into_split();
            let network = twoparty::VatNetwork::new(
                BufReader::new(Counting::new(read, counters.clone()).compat()),
                BufWriter::new(Counting::new(write, counters.clone()).compat_write()),
                Side::Client,
                reader_options(config.max_message),
            );
            let mut system = RpcSystem::new(Box::new(network), None);
            let bench: bench::Client = system.bootstrap(Side::Server);
            let driver = tokio::task::spawn_local(async move {
                if let Err(e) = system.await {
                    tracing::debug!("capnp-rpc client connection closed: {e}");
                }
            });
            connections.push(Connection { bench, driver: driver.abort_handle() });
        }
        Ok(CapnpRpcClient { connections, next: Cell::new(0), counters, timeout: config.timeout })
    }

    /// One call: the request built in a fresh call message, as capnp-rpc's
    /// API builds every request; the reply read from the return message.
    pub async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        let bench = &self.connections[i % self.connections.len()].bench;
        let call = async move {
            Ok(match request {
                OwnedRequest::Multiply { a, b } => {
                    let mut call = bench.multiply_request();
                    let mut params = call.get();
                    params.set_a(*a);
                    params.set_b(*b);
                    let response = call.send().promise.await.map_err(from_exception)?;
                    Reply::Multiply { product: response.get().map_err(from_exception)?.get_product() }
                }
                OwnedRequest::Echo { payload } => {
                    let mut call = bench.echo_request();
                    call.get().set_payload(payload);
                    let response = call.send().promise.await.map_err(from_exception)?;
                    let payload = response.get().and_then(|r| r.get_payload()).map_err(from_exception)?;
                    Reply::Echo { payload: Cow::Owned(payload.to_vec()) }
                }
                OwnedRequest::Digest { batch } => {
                    let mut call = bench.digest_request();
                    build_batch_into(call.get(), batch)
                        .map_err(|e| CallError::Protocol(format!("capnp-rpc: cannot build the request: {e}")))?;
                    let response = call.send().promise.await.map_err(from_exception)?;
                    let d = response.get().map_err(from_exception)?;
                    Reply::Digest(DigestReply { records: d.get_records(), checksum: d.get_checksum() })
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

impl FrameworkClient for CapnpRpcClient {
    type Request = OwnedRequest<Batch>;

    async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        CapnpRpcClient::call(self, request).await
    }

    fn counters(&self) -> Option<Counters> {
        Some(CapnpRpcClient::counters(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_survives_the_exception_round_trip() {
        let sent = to_exception(Status::new(Code::OutOfRange, "9 * 9 overflows: badly"));
        // What capnp-rpc hands the client for a remote `failed` exception.
        let received = ::capnp::Error { kind: sent.kind, extra: format!("remote exception: {}", sent.extra) };
        match from_exception(received) {
            CallError::Status(s) => assert_eq!(s, Status::new(Code::OutOfRange, "9 * 9 overflows: badly")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_exceptions_map_to_their_kind() {
        let e = |kind, extra: &str| ::capnp::Error { kind, extra: extra.to_owned() };
        assert!(matches!(
            from_exception(e(::capnp::ErrorKind::Failed, "remote exception: no status here")),
            CallError::Status(s) if s.code == Code::Internal && s.message == "no status here"
        ));
        assert!(matches!(
            from_exception(e(::capnp::ErrorKind::Unimplemented, "Method not implemented.")),
            CallError::Status(s) if s.code == Code::Unimplemented
        ));
        assert!(matches!(from_exception(e(::capnp::ErrorKind::Disconnected, "gone")), CallError::Closed(_)));
    }
}
