//! ZeroRPC: the protocol of the Python `zerorpc` package (0.6, protocol
//! v3) on libzmq, the engine Python's zerorpc runs on, through the `zmq`
//! crate (whose `zmq-sys` builds libzmq 4.3 from source with the C++
//! compiler, so a fresh machine needs nothing installed by hand).
//!
//! On the wire (`docs/protocol.md` has the bytes):
//! - ZeroMQ over TCP (ZMTP 3): the client is a DEALER socket, the server a
//!   ROUTER socket. A request is the two frames `["", event]`; the server
//!   answers through the ROUTER's peer identity, `[identity, "", event]`.
//! - An event is the MessagePack array `[header, name, args]` ([`event`]):
//!   header `{"message_id": id, "v": 3}`, plus `"response_to": id` on every
//!   event of the channel a request opened. Replies are `OK` with
//!   `[result]` or `ERR` with `[exception name, message, traceback]`;
//!   `_zpc_hb` heartbeats keep a channel alive past 5 seconds.
//! - The Bench methods are `multiply`, `echo` and `digest`, each taking one
//!   argument, the same MessagePack map as wirebench's `msgpack` format
//!   (`{"a", "b"}`, `{"payload"}`, `{"records"}`), and returning the same
//!   map as that format's reply (`{"product"}`, `{"payload"}`,
//!   `{"records", "checksum"}`), so a Python zerorpc peer reads and writes
//!   plain dictionaries. Errors carry Python exception names (Multiply
//!   overflow is `OverflowError`; [`event::exception_name`]).
//!
//! How it runs on tokio: libzmq's sockets are synchronous, so both sides
//! drive them through the socket's `ZMQ_FD` with tokio's `AsyncFd`, as
//! Python's zerorpc drives them through gevent ([`evented`]). libzmq's own
//! I/O thread moves the bytes; no thread of ours sits between a caller and
//! the socket.
//! - The client ([`client`]) is single-threaded: the calls of one cell
//!   share each DEALER socket, matched to their replies by message id, and
//!   a waiting caller reads the socket for everyone when no one else is
//!   (at one call in flight the caller reads its own reply, no task hop).
//! - The server ([`server`]) is single-threaded like zerorpc's gevent
//!   server: one thread owns the ROUTER socket and serves every call in
//!   arrival order.
//!
//! Wire bytes: libzmq owns its TCP connections, so they cannot be wrapped;
//! the client finds each connection's file descriptor through
//! `zmq_socket_monitor` and reads the kernel's TCP counters of it
//! ([`evented::TcpBytes`]): exact TCP payload, ZMTP framing included.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use wirebench_formats::{Batch, DigestReply, FormatId, Method, OwnedRequest, Reply};

use crate::framework::Framework;
use crate::server::{Server, ServerConfig};
use crate::{Address, ClientConfig, Endpoint, TransportError, TransportKind, TransportProperties};

pub mod client;
pub mod event;
pub mod evented;
pub mod server;

pub use client::{ClientOptions, ZeroRpcClient};
pub use server::{ServeOptions, serve_with};

const KIND: TransportKind = TransportKind::ZeroRpc;

/// zerorpc's heartbeat period (`heartbeat=5` in its `Client` and `Server`).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Room for the event envelope (header, name, array markers) on top of the
/// largest message: libzmq's `ZMQ_MAXMSGSIZE` is set to `max_message` plus
/// this, on both sides.
pub const ENVELOPE_ALLOWANCE: usize = 4096;

/// The ZeroRPC row.
#[derive(Debug)]
pub struct ZeroRpc;

impl Framework for ZeroRpc {
    const KIND: TransportKind = KIND;
    const FORMAT: FormatId = FormatId::MsgPack;
    const BASELINE: TransportKind = TransportKind::Tcp;
    const PROPERTIES: TransportProperties = TransportProperties {
        library: "zmq 0.10 (libzmq 4.3.4 built from source), zerorpc protocol v3 (our client and server)",
        security: "none",
        delivery: "reliable, ordered per connection; libzmq reconnects",
        multiplexing: "calls matched by message id on one DEALER socket; server single-threaded",
        framing: "ZMTP 3 frames; MessagePack event [header, name, args]",
        wire_bytes: "exact TCP payload from the kernel's counters of libzmq's connections (ZMTP framing included)",
    };
    type Request = OwnedRequest<Batch>;
    type Client = ZeroRpcClient;

    fn prepare(request: &OwnedRequest<Batch>) -> OwnedRequest<Batch> {
        request.clone()
    }

    async fn connect(endpoint: &Endpoint, config: &ClientConfig) -> Result<ZeroRpcClient, TransportError> {
        ZeroRpcClient::connect(endpoint, config, ClientOptions::default()).await
    }

    async fn serve(listen: &Address, config: ServerConfig) -> Result<Server, TransportError> {
        serve_with(listen, config, ServeOptions::default()).await
    }
}

/// The process's libzmq context, shared by every socket as zerorpc shares
/// `Context.get_instance()`: one libzmq I/O thread.
pub(crate) fn context() -> &'static zmq::Context {
    static CONTEXT: OnceLock<zmq::Context> = OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

/// A zmq error as an I/O error, for [`TransportError`]'s messages.
pub(crate) fn io_error(e: zmq::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.to_raw())
}

/// libzmq's endpoint string for a socket address.
pub(crate) fn tcp_endpoint(address: std::net::SocketAddr) -> String {
    format!("tcp://{address}")
}

/// The zerorpc method name of a Bench method.
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Multiply => "multiply",
        Method::Echo => "echo",
        Method::Digest => "digest",
    }
}

/// The Bench method of a zerorpc method name.
pub fn method_of(name: &str) -> Option<Method> {
    Method::ALL.into_iter().find(|m| method_name(*m) == name)
}

/// The method a request calls.
fn method_of_request(request: &OwnedRequest<Batch>) -> Method {
    match request {
        OwnedRequest::Multiply { .. } => Method::Multiply,
        OwnedRequest::Echo { .. } => Method::Echo,
        OwnedRequest::Digest { .. } => Method::Digest,
    }
}

// The argument and result maps, written straight into the event buffer
// with rmp-serde's named layout: the same bytes as wirebench's msgpack
// format (a test below checks it), without encoding twice.

#[derive(Serialize)]
struct MultiplyArgs {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct MultiplyResult {
    product: i64,
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(serialize_with = "as_bin")]
    payload: &'a [u8],
}

fn as_bin<S: serde::Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Appends a request's one argument, as wirebench's msgpack request.
pub(crate) fn write_args(out: &mut Vec<u8>, request: &OwnedRequest<Batch>) -> Result<(), rmp_serde::encode::Error> {
    event::write_array_len(out, 1);
    match request {
        OwnedRequest::Multiply { a, b } => rmp_serde::encode::write_named(out, &MultiplyArgs { a: *a, b: *b }),
        OwnedRequest::Echo { payload } => rmp_serde::encode::write_named(out, &Payload { payload }),
        OwnedRequest::Digest { batch } => rmp_serde::encode::write_named(out, batch),
    }
}

/// Appends an `OK` reply's `[result]`, as wirebench's msgpack reply.
pub(crate) fn write_result(out: &mut Vec<u8>, reply: &Reply<'_>) -> Result<(), rmp_serde::encode::Error> {
    event::write_array_len(out, 1);
    match reply {
        Reply::Multiply { product } => rmp_serde::encode::write_named(out, &MultiplyResult { product: *product }),
        Reply::Echo { payload } => rmp_serde::encode::write_named(out, &Payload { payload }),
        Reply::Digest(d) => {
            rmp_serde::encode::write_named(out, &DigestReply { records: d.records, checksum: d.checksum })
        }
    }
}

/// A reply decoded from a result, owned.
pub(crate) fn owned(reply: Reply<'_>) -> Reply<'static> {
    match reply {
        Reply::Multiply { product } => Reply::Multiply { product },
        Reply::Echo { payload } => Reply::Echo { payload: Cow::Owned(payload.into_owned()) },
        Reply::Digest(d) => Reply::Digest(d),
    }
}

#[cfg(test)]
mod tests {
    use wirebench_formats::Format;
    use wirebench_formats::dataset::{DEFAULT_SEED, Dataset};
    use wirebench_formats::format::msgpack::MsgPack;
    use wirebench_formats::{Workload, codec::respond_owned};

    use super::*;

    fn workloads() -> [Workload; 4] {
        [
            Workload::Multiply,
            Workload::Echo { size: 0 },
            Workload::Echo { size: 70_000 },
            Workload::Digest { records: 20 },
        ]
    }

    #[test]
    fn arguments_and_results_are_wirebench_msgpack_messages() {
        for workload in workloads() {
            let data = Dataset::generate(workload, DEFAULT_SEED);
            let request = data.request();
            let mut ours = Vec::new();
            write_args(&mut ours, &request).unwrap();
            let theirs = MsgPack::encode_request(&mut Vec::new(), &request).unwrap().to_vec();
            assert_eq!(ours[0], 0x91, "{workload}: one argument");
            assert_eq!(ours[1..], theirs[..], "{workload} request");

            let reply = respond_owned(&wirebench_formats::Service::new(), &request).unwrap();
            ours.clear();
            write_result(&mut ours, &reply).unwrap();
            let theirs = MsgPack::encode_reply(&mut Vec::new(), &reply).unwrap().to_vec();
            assert_eq!(ours[1..], theirs[..], "{workload} reply");
            assert_eq!(owned(MsgPack::decode_reply(workload.method(), &ours[1..]).unwrap()), reply);
        }
    }

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(method_of(method_name(m)), Some(m));
        }
        assert_eq!(method_of("Multiply"), None);
    }
}
