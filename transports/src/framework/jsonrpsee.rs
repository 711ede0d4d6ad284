//! JSON-RPC 2.0 over HTTP/1.1 with jsonrpsee: its own server
//! (`jsonrpsee-server`, HTTP only) and its own HTTP client
//! (`jsonrpsee-http-client`, hyper), the `Bench` service declared with
//! jsonrpsee's `#[rpc]` macro.
//!
//! Methods `bench_multiply`, `bench_echo` and `bench_digest` (jsonrpsee's
//! namespace convention), parameters by name, so that `params` and
//! `result` are exactly the messages of wirebench's `json` format:
//! `{"a":..,"b":..}` -> `{"product":..}`, `{"payload":"<base64>"}` ->
//! `{"payload":"<base64>"}`, `{"records":[..]}` -> `{"records":..,
//! "checksum":..}`. A status is a JSON-RPC error object whose `code` is the
//! status code's number (as in [`Code::value`]; JSON-RPC leaves codes
//! outside -32768..-32000 to the application), `message` the status
//! message and `data` the code's name: Multiply's overflow is
//! `{"code":11,"message":"... overflows a 64-bit integer","data":"OUT_OF_RANGE"}`.
//! jsonrpsee's own errors (-32602 invalid params, -32601 unknown method,
//! -32700 parse error) map to `INVALID_ARGUMENT` and `UNIMPLEMENTED`.
//!
//! HTTP/1.1 carries one call per connection at a time, so hyper's pool
//! opens a connection per call in flight (kept alive between calls);
//! `--connections` does not apply. The client's sockets are hyper's
//! (jsonrpsee takes no connector), so bytes on the wire are not counted.
//! Limits: request and response bodies at the server's `max_message`;
//! jsonrpsee's default of 100 concurrent HTTP requests is raised to
//! [`MAX_IN_FLIGHT`], the harness's largest `--concurrency`.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee::server::{ServerConfig as RpcServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use wirebench_formats::{Batch, Code, DigestReply, FormatId, OwnedRequest, Record, Reply, Status};

use crate::framework::{Framework, FrameworkClient};
use crate::server::{Handler, Server, ServerConfig};
use crate::{Address, CallError, ClientConfig, Counters, Endpoint, TransportError, TransportKind, TransportProperties};

const KIND: TransportKind = TransportKind::Jsonrpsee;

/// Concurrent HTTP requests the server takes (jsonrpsee's default is 100,
/// and it answers 429 beyond): the harness's largest `--concurrency`.
pub const MAX_IN_FLIGHT: u32 = 4096;

/// Bytes allowed for the JSON-RPC envelope beyond the largest message.
const ENVELOPE: usize = 1024;

/// JSON-RPC's own error codes that mean the request was malformed.
const INVALID: [i32; 3] = [
    jsonrpsee::types::error::PARSE_ERROR_CODE,
    jsonrpsee::types::error::INVALID_REQUEST_CODE,
    jsonrpsee::types::error::INVALID_PARAMS_CODE,
];

/// A byte field as the `json` format writes it: standard base64 with
/// padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&base64::display::Base64Display::new(&self.0, &STANDARD))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Base64, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Base64)
            .map_err(|e| serde::de::Error::custom(format_args!("invalid base64: {e}")))
    }
}

/// Multiply's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiplyResult {
    /// `a * b`.
    pub product: i64,
}

/// Echo's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoResult {
    /// The payload.
    pub payload: Base64,
}

#[allow(missing_docs, missing_debug_implementations, unreachable_pub, clippy::all)]
mod service {
    use jsonrpsee::proc_macros::rpc;
    use jsonrpsee::types::ErrorObjectOwned;

    use super::{Base64, DigestReply, EchoResult, MultiplyResult, Record};

    /// The Bench service.
    #[rpc(server, client, namespace = "bench")]
    pub trait Bench {
        /// `a * b`, or an error object with code 11 (`OUT_OF_RANGE`).
        #[method(name = "multiply", param_kind = map)]
        async fn multiply(&self, a: i64, b: i64) -> Result<MultiplyResult, ErrorObjectOwned>;
        /// The same payload.
        #[method(name = "echo", param_kind = map)]
        async fn echo(&self, payload: Base64) -> Result<EchoResult, ErrorObjectOwned>;
        /// The digest of a batch; the parameter is the batch's one field.
        #[method(name = "digest", param_kind = map)]
        async fn digest(&self, records: Vec<Record>) -> Result<DigestReply, ErrorObjectOwned>;
    }
}

pub use service::{BenchClient, BenchServer};

/// A status as a JSON-RPC error object.
fn to_error(status: Status) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(i32::from(status.code.value()), status.message, Some(status.code.name()))
}

/// A failed jsonrpsee call, as a call error.
fn from_client(e: ClientError, timeout: std::time::Duration) -> CallError {
    match e {
        ClientError::Call(object) => {
            let code = object.code();
            let status = match u32::try_from(code).ok().and_then(Code::from_value) {
                Some(code) => Status::new(code, object.message()),
                None if INVALID.contains(&code) => Status::new(Code::InvalidArgument, object.message()),
                None if code == jsonrpsee::types::error::METHOD_NOT_FOUND_CODE => {
                    Status::new(Code::Unimplemented, object.message())
                }
                None => Status::new(Code::Internal, format!("error {code}: {}", object.message())),
            };
            CallError::Status(status)
        }
        ClientError::RequestTimeout => CallError::Timeout(timeout),
        ClientError::ParseError(e) => CallError::Protocol(format!("jsonrpsee: reply does not parse: {e}")),
        ClientError::Transport(e) => CallError::Io(format!("jsonrpsee: {e}")),
        other => CallError::Protocol(format!("jsonrpsee: {other}")),
    }
}

/// jsonrpsee, HTTP.
#[derive(Debug)]
pub struct Jsonrpsee;

impl Framework for Jsonrpsee {
    const KIND: TransportKind = KIND;
    const FORMAT: FormatId = FormatId::Json;
    const BASELINE: TransportKind = TransportKind::Tcp;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "jsonrpsee 0.26 (its HTTP server and hyper-based HTTP client)",
        security: "none (plain HTTP)",
        delivery: "reliable, ordered (TCP)",
        multiplexing: "HTTP/1.1 keep-alive: one call at a time per connection, a pooled connection per call in flight",
        framing: "HTTP/1.1 POST with a JSON-RPC 2.0 body",
        wire_bytes: "not counted: jsonrpsee's HTTP client owns its sockets (hyper's connector)",
    };
    type Request = OwnedRequest<Batch>;
    type Client = JsonrpseeClient;

    fn prepare(request: &OwnedRequest<Batch>) -> OwnedRequest<Batch> {
        request.clone()
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<JsonrpseeClient, TransportError> {
        JsonrpseeClient::connect(endpoint, config)
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve(listen, config).await
    }
}

/// The service behind the jsonrpsee server.
#[derive(Debug)]
struct BenchService {
    handler: Arc<Handler>,
}

#[jsonrpsee::core::async_trait]
impl BenchServer for BenchService {
    async fn multiply(&self, a: i64, b: i64) -> Result<MultiplyResult, ErrorObjectOwned> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Json);
        let product = self.handler.service().multiply(a, b).map_err(to_error)?;
        Ok(MultiplyResult { product })
    }

    async fn echo(&self, payload: Base64) -> Result<EchoResult, ErrorObjectOwned> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Json);
        let payload = match self.handler.service().echo(&payload.0) {
            Cow::Borrowed(_) => payload,
            Cow::Owned(wrong) => Base64(wrong),
        };
        Ok(EchoResult { payload })
    }

    async fn digest(&self, records: Vec<Record>) -> Result<DigestReply, ErrorObjectOwned> {
        self.handler.admit().await;
        self.handler.count_call(FormatId::Json);
        self.handler.service().digest(&records).map_err(|e| to_error(e.into()))
    }
}

fn body_limit(max_message: usize) -> u32 {
    u32::try_from(max_message.saturating_add(ENVELOPE)).unwrap_or(u32::MAX)
}

/// Binds `listen` and serves `Bench` with jsonrpsee's HTTP server until
/// shut down (jsonrpsee's stop, which lets calls in progress finish).
pub async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
    let address = listen.inet(KIND)?;
    let limit = body_limit(config.max_message);
    let settings = RpcServerConfig::builder()
        .http_only()
        .max_request_body_size(limit)
        .max_response_body_size(limit)
        .max_connections(MAX_IN_FLIGHT)
        .build();
    let server = jsonrpsee::server::Server::builder()
        .set_config(settings)
        .build(address)
        .await
        .map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let local = server.local_addr().map_err(|e| TransportError::io(KIND, "bind", address, e))?;
    let handle: ServerHandle = server.start(BenchService { handler: Handler::new(&config) }.into_rpc());
    Ok(Server::spawn(Endpoint::new(KIND, Address::Inet(local)), move |mut shutdown, connections| async move {
        shutdown.wait().await;
        if handle.stop().is_ok() {
            handle.stopped().await;
        }
        connections
    }))
}

/// jsonrpsee's HTTP client.
#[derive(Debug)]
pub struct JsonrpseeClient {
    client: HttpClient,
    timeout: std::time::Duration,
}

impl JsonrpseeClient {
    /// A client of `endpoint` (hyper connects lazily, per call in flight).
    pub fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<JsonrpseeClient, TransportError> {
        let address = endpoint.address.inet(KIND)?;
        let limit = body_limit(config.max_message);
        let client = HttpClientBuilder::default()
            .request_timeout(config.timeout)
            .max_request_size(limit)
            .max_response_size(limit)
            .set_tcp_no_delay(true)
            .build(format!("http://{address}"))
            .map_err(|e| TransportError::Config(format!("jsonrpsee: bad address {address}: {e}")))?;
        Ok(JsonrpseeClient { client, timeout: config.timeout })
    }

    /// One call through the generated client, which takes its parameters
    /// by value: each call clones the prepared request, as an application
    /// building one would.
    pub async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        let err = |e| from_client(e, self.timeout);
        let call = async {
            Ok(match request {
                OwnedRequest::Multiply { a, b } => {
                    Reply::Multiply { product: self.client.multiply(*a, *b).await.map_err(err)?.product }
                }
                OwnedRequest::Echo { payload } => {
                    let echoed = self.client.echo(Base64(payload.clone())).await.map_err(err)?;
                    Reply::Echo { payload: Cow::Owned(echoed.payload.0) }
                }
                OwnedRequest::Digest { batch } => {
                    Reply::Digest(self.client.digest(batch.records.clone()).await.map_err(err)?)
                }
            })
        };
        crate::with_timeout(self.timeout, call).await
    }
}

impl FrameworkClient for JsonrpseeClient {
    type Request = OwnedRequest<Batch>;

    async fn call(&self, request: &OwnedRequest<Batch>) -> Result<Reply<'static>, CallError> {
        JsonrpseeClient::call(self, request).await
    }

    fn counters(&self) -> Option<Counters> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflow_is_the_documented_error_object() {
        let object = to_error(Status::new(Code::OutOfRange, "9 * 9 overflows a 64-bit integer"));
        let json = serde_json::to_string(&object).unwrap();
        assert_eq!(json, r#"{"code":11,"message":"9 * 9 overflows a 64-bit integer","data":"OUT_OF_RANGE"}"#);
        match from_client(ClientError::Call(object), std::time::Duration::from_secs(1)) {
            CallError::Status(s) => assert_eq!(s, Status::new(Code::OutOfRange, "9 * 9 overflows a 64-bit integer")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jsonrpc_errors_map_to_statuses() {
        let status = |code| match from_client(
            ClientError::Call(ErrorObjectOwned::owned::<()>(code, "m", None)),
            std::time::Duration::from_secs(1),
        ) {
            CallError::Status(s) => s.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(-32602), Code::InvalidArgument);
        assert_eq!(status(-32700), Code::InvalidArgument);
        assert_eq!(status(-32601), Code::Unimplemented);
        assert_eq!(status(-32000), Code::Internal);
    }

    #[test]
    fn params_and_results_are_the_json_formats_messages() {
        let payload = serde_json::to_string(&EchoResult { payload: Base64(b"hi!".to_vec()) }).unwrap();
        assert_eq!(payload, r#"{"payload":"aGkh"}"#);
        let back: EchoResult = serde_json::from_str(&payload).unwrap();
        assert_eq!(back.payload.0, b"hi!");
        assert!(serde_json::from_str::<EchoResult>(r#"{"payload":"***"}"#).is_err());
    }
}
