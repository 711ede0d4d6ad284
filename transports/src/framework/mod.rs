//! Stock RPC frameworks: the second family of rows.
//!
//! A framework row is a real RPC framework used as its users use it: its
//! own client API, its own server, its own framing and codec, its own
//! threading model. wirebench puts nothing of its own under it; it only
//! calls the framework's client with the framework's request types,
//! verifies the reply, and serves the Bench service through the
//! framework's server with the shared service logic of `wirebench-formats`
//! (through [`Handler`], so test faults and call counting behave as in
//! every other server). Each framework carries one format, its own, and
//! names the raw ping-pong floor it is measured against.
//!
//! One file per framework, implementing [`Framework`], plus one line in
//! the `frameworks` group of the registry in `lib.rs`.
//!
//! [`Handler`]: crate::Handler

use std::future::Future;
use std::ops::ControlFlow;

use wirebench_formats::{Batch, FormatId, OwnedRequest, Reply};

use crate::{
    Address, CallError, ClientConfig, Counters, Endpoint, OnewayMeta, Server, ServerConfig, TransportError,
    TransportKind, TransportProperties,
};

pub mod capnp_rpc;
pub mod grpc;
pub mod jsonrpsee;
pub mod tarpc;
pub mod thrift_rpc;
pub mod volo_thrift;
pub mod zerorpc;

/// A stock RPC framework as a type, so the harness monomorphizes its timed
/// loop over it.
///
/// Futures are not required to be `Send`: a cell runs on one thread, and
/// some frameworks (Cap'n Proto RPC) are single-threaded by design. A
/// framework whose server must not be `Send` runs it on a thread of its own
/// inside [`Framework::serve`].
pub trait Framework: 'static {
    /// Registry id.
    const KIND: TransportKind;
    /// The one format it carries: its own codec's wire format.
    const FORMAT: FormatId;
    /// The own transport whose raw ping-pong is this framework's floor
    /// (the transport under it: tcp for a framework on TCP, http2 for one
    /// on HTTP/2).
    const BASELINE: TransportKind;
    /// What it is, for reports.
    const PROPERTIES: TransportProperties;

    /// A request as an application holds it before calling the framework's
    /// client: its generated or declared types. Built once per cell by
    /// [`Framework::prepare`], outside timed loops.
    type Request: Clone + 'static;
    /// The framework's client, connected.
    type Client: FrameworkClient<Request = Self::Request>;

    /// Converts a model request to the framework's request.
    fn prepare(request: &OwnedRequest<Batch>) -> Self::Request;

    /// Connects `config.connections` connections (or what the framework
    /// calls them) to `endpoint`.
    fn connect(
        endpoint: &Endpoint,
        config: &ClientConfig,
    ) -> impl Future<Output = Result<Self::Client, TransportError>>;

    /// Binds `listen` and serves the Bench service until [`Server::shutdown`].
    fn serve(listen: &Address, config: ServerConfig) -> impl Future<Output = Result<Server, TransportError>> + Send;
}

/// A framework's connected client.
pub trait FrameworkClient: 'static {
    /// The framework's request type.
    type Request;

    /// One call through the framework's own client API, as its users make
    /// it (an owned request per call where the API takes one by value).
    /// The reply, converted to the model for verification; converting is
    /// part of the call only where the framework's API hands back its own
    /// types and an application would read them.
    fn call(&self, request: &Self::Request) -> impl Future<Output = Result<Reply<'static>, CallError>>;

    /// Bytes on the wire so far, over all connections, if the framework's
    /// sockets can be counted (wrapped with the counting layer); `None`
    /// where it owns its sockets out of reach, and its properties say so.
    fn counters(&self) -> Option<Counters>;

    /// Mode `oneway`, through the framework's own fire-and-forget call,
    /// if it has one (its server counts the message with
    /// [`crate::Handler::oneway`]). The default answers why not.
    fn send_oneway(&self, request: &Self::Request, meta: OnewayMeta) -> impl Future<Output = Result<(), CallError>> {
        let _ = (request, meta);
        std::future::ready(Err(CallError::Unsupported("the framework has no oneway call".into())))
    }

    /// Mode `stream`, through the framework's own server streaming: one
    /// request, `replies` replies, each converted to the model and handed
    /// to `on_reply` in order (`Break` abandons the stream). The replies
    /// delivered.
    fn call_stream<R>(
        &self,
        request: &Self::Request,
        replies: u32,
        on_reply: R,
    ) -> impl Future<Output = Result<u32, CallError>>
    where
        R: FnMut(Reply<'static>) -> ControlFlow<()>,
    {
        let _ = (request, replies, on_reply);
        std::future::ready(Err(CallError::Unsupported("the framework has no server streaming".into())))
    }
}
