//! Helpers shared by the transport tests: start a server of any transport
//! on loopback, connect a client, call and check.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::time::Duration;

pub mod broker;
pub mod faults;

use bytes::Bytes;
use wirebench_formats::dataset::{DEFAULT_SEED, Dataset, Expected, MULTIPLY_OPERANDS};
use wirebench_formats::{Batch, Format, FormatId, OwnedRequest, Reply, Workload};
use wirebench_transports::{Address, CallError, Client, ClientConfig, Endpoint, Server, ServerConfig, TransportKind};

/// A loopback address for `kind` (a fresh socket path for unix).
pub fn loopback(kind: TransportKind, dir: &std::path::Path) -> Address {
    match kind {
        TransportKind::Unix => {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Address::Unix(dir.join(format!("wirebench-{n}.sock")))
        }
        TransportKind::Inproc => Address::InProc,
        _ => Address::Inet("127.0.0.1:0".parse().unwrap()),
    }
}

/// Starts a server of `kind` on loopback.
pub async fn start(kind: TransportKind, config: ServerConfig, dir: &std::path::Path) -> Server {
    wirebench_transports::serve_kind(kind, &loopback(kind, dir), config).await.unwrap()
}

/// A client config with a short deadline, for tests.
pub fn client_config() -> ClientConfig {
    ClientConfig { timeout: Duration::from_secs(5), ..ClientConfig::default() }
}

pub fn model_request(data: &Dataset) -> OwnedRequest<Batch> {
    match data.workload {
        Workload::Multiply => OwnedRequest::Multiply { a: MULTIPLY_OPERANDS.0, b: MULTIPLY_OPERANDS.1 },
        Workload::Echo { .. } => OwnedRequest::Echo { payload: data.payload.clone() },
        Workload::Digest { .. } => OwnedRequest::Digest { batch: data.batch.clone() },
    }
}

pub fn dataset(workload: Workload) -> Dataset {
    Dataset::generate(workload, DEFAULT_SEED)
}

/// Checks a decoded reply against what the workload must get back.
pub fn check_reply(data: &Dataset, reply: &Reply<'_>) {
    match (data.expected, reply) {
        (Expected::Product(p), Reply::Multiply { product }) => assert_eq!(*product, p),
        (Expected::SamePayload, Reply::Echo { payload }) => assert!(payload.as_ref() == data.payload, "echo differs"),
        (Expected::Digest(d), Reply::Digest(got)) => assert_eq!(*got, d),
        (want, got) => panic!("expected {want:?}, got {got:?}"),
    }
}

/// Encodes the workload's request in `F`, calls, decodes and checks.
pub async fn call_checked<F: Format, C: Client>(client: &C, data: &Dataset) -> Result<(), CallError> {
    let request = F::prepare(&model_request(data));
    let mut scratch = F::Scratch::default();
    let bytes = F::encode_request(&mut scratch, &request).unwrap();
    let reply: Bytes = client.call(data.workload.method(), F::ID, bytes).await?;
    let decoded = F::decode_reply(data.workload.method(), &reply)
        .unwrap_or_else(|e| panic!("{} reply does not decode: {e}", F::NAME));
    check_reply(data, &decoded);
    Ok(())
}

/// Encodes a request of `format` for `data` (runtime format choice).
pub fn encode(format: FormatId, data: &Dataset) -> Vec<u8> {
    struct Encode<'a>(&'a Dataset);
    impl wirebench_formats::FormatVisitor for Encode<'_> {
        type Output = Vec<u8>;
        fn visit<F: Format>(self) -> Vec<u8> {
            F::encode_request(&mut F::Scratch::default(), &F::prepare(&model_request(self.0))).unwrap().to_vec()
        }
    }
    format.visit(Encode(data))
}

/// Decodes and checks a reply of `format` (runtime format choice).
pub fn check(format: FormatId, data: &Dataset, reply: &[u8]) {
    struct Check<'a>(&'a Dataset, &'a [u8]);
    impl wirebench_formats::FormatVisitor for Check<'_> {
        type Output = ();
        fn visit<F: Format>(self) {
            let decoded = F::decode_reply(self.0.workload.method(), self.1)
                .unwrap_or_else(|e| panic!("{} reply does not decode: {e}", F::NAME));
            check_reply(self.0, &decoded);
        }
    }
    format.visit(Check(data, reply))
}

/// An endpoint of `server` for a client, with the server's pin.
pub fn endpoint(server: &Server) -> Endpoint {
    server.endpoint().clone()
}

/// A tcp or unix client, chosen at run time.
pub enum StreamClientOf {
    Tcp(wirebench_transports::stream::StreamClient<tokio::net::TcpStream>),
    Unix(wirebench_transports::stream::StreamClient<tokio::net::UnixStream>),
}

impl StreamClientOf {
    pub async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> StreamClientOf {
        use wirebench_transports::Transport;
        match endpoint.transport {
            TransportKind::Tcp => {
                StreamClientOf::Tcp(wirebench_transports::tcp::Tcp::connect(endpoint, config).await.unwrap())
            }
            TransportKind::Unix => {
                StreamClientOf::Unix(wirebench_transports::unix::Unix::connect(endpoint, config).await.unwrap())
            }
            other => panic!("{other} is not a stream transport"),
        }
    }
}

impl Client for StreamClientOf {
    async fn call(
        &self,
        method: wirebench_formats::Method,
        format: FormatId,
        request: &[u8],
    ) -> Result<Bytes, CallError> {
        match self {
            StreamClientOf::Tcp(c) => c.call(method, format, request).await,
            StreamClientOf::Unix(c) => c.call(method, format, request).await,
        }
    }

    fn counters(&self) -> wirebench_transports::Counters {
        match self {
            StreamClientOf::Tcp(c) => c.counters(),
            StreamClientOf::Unix(c) => c.counters(),
        }
    }
}
