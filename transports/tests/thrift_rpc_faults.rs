//! The Apache Thrift servers (`thrift-rpc`, compact; `thrift-rpc-binary`)
//! fed bad bytes: garbage, frame lengths that lie, list and string lengths
//! that lie inside a frame, unknown methods, a client stalled mid-frame.
//! The offending connection is answered with a Thrift exception or
//! closed; every other connection keeps being served, and memory stays
//! within the limits the server is configured with.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::faults::*;
use common::*;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol, TFieldIdentifier,
    TInputProtocol, TListIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};
use wirebench_formats::dataset::batch;
use wirebench_formats::format::thrift::ThriftRequest;
use wirebench_formats::{Batch, Code, OwnedRequest, Workload};
use wirebench_transports::framework::thrift_rpc::{FRAME_LIMIT, ThriftRpc, ThriftRpcBinary};
use wirebench_transports::{CallError, Framework, FrameworkClient, Server, ServerConfig, TransportKind};

const KINDS: [TransportKind; 2] = [TransportKind::ThriftRpc, TransportKind::ThriftRpcBinary];
/// A Thrift message written with `kind`'s protocol, framed.
fn framed(kind: TransportKind, write: impl FnOnce(&mut dyn TOutputProtocol)) -> Vec<u8> {
    let mut body = Vec::new();
    if kind == TransportKind::ThriftRpc {
        write(&mut TCompactOutputProtocol::new(&mut body));
    } else {
        write(&mut TBinaryOutputProtocol::new(&mut body, true));
    }
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}

/// Reads one reply frame and returns its message header and, for an
/// exception, the `TApplicationException`.
fn read_reply(kind: TransportKind, socket: &mut TcpStream) -> (TMessageIdentifier, Option<thrift::ApplicationError>) {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    socket.read_exact(&mut body).unwrap();
    let mut rest = &body[..];
    let mut input: Box<dyn TInputProtocol + '_> = if kind == TransportKind::ThriftRpc {
        Box::new(TCompactInputProtocol::new(&mut rest))
    } else {
        Box::new(TBinaryInputProtocol::new(&mut rest, true))
    };
    let ident = input.read_message_begin().unwrap();
    let error = (ident.message_type == TMessageType::Exception)
        .then(|| thrift::Error::read_application_error_from_in_protocol(&mut *input).unwrap());
    (ident, error)
}

/// A call of `method` whose argument struct is written by `args`.
fn call_message(kind: TransportKind, method: &str, args: impl FnOnce(&mut dyn TOutputProtocol)) -> Vec<u8> {
    framed(kind, |o| {
        o.write_message_begin(&TMessageIdentifier::new(method, TMessageType::Call, 7)).unwrap();
        o.write_struct_begin(&TStructIdentifier::new("args")).unwrap();
        args(o);
        o.flush().unwrap();
    })
}

/// The RSS checks measure this whole process: one at a time.
static RSS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A well-behaved client on another connection is served, `rounds` times
/// every method.
async fn assert_served(kind: TransportKind, server: &Server, rounds: usize) {
    match kind {
        TransportKind::ThriftRpc => {
            assert_served_by::<ThriftRpc>(
                server,
                &[Workload::Multiply, Workload::Echo { size: 1024 }, Workload::Digest { records: 10 }],
                rounds,
            )
            .await
        }
        _ => {
            assert_served_by::<ThriftRpcBinary>(
                server,
                &[Workload::Multiply, Workload::Echo { size: 1024 }, Workload::Digest { records: 10 }],
                rounds,
            )
            .await
        }
    }
}

async fn each_thrift_server(test: impl AsyncFn(TransportKind, &Server)) {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let server =
            start(kind, ServerConfig { max_message: MAX_MESSAGE, ..ServerConfig::default() }, dir.path()).await;
        test(kind, &server).await;
        assert_served(kind, &server, 1).await;
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_impossible_frame_lengths_close_only_that_connection() {
    each_thrift_server(async |kind, server| {
        let mut bystander = socket(server);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // "GET " read as a frame length is 1.2 GB, over the frame limit.
            ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("a negative frame length", vec![0xff, 0xff, 0xff, 0xff, 0]),
            ("a frame over the crate's limit", ((FRAME_LIMIT + 1) as u32).to_be_bytes().to_vec()),
            ("a frame that is not a Thrift message", [&8u32.to_be_bytes()[..], b"\x00garbage"].concat()),
        ];
        for (what, bytes) in cases {
            let mut attacker = socket(server);
            attacker.write_all(&bytes).unwrap();
            assert_closed_sync(&mut attacker, &format!("{kind}: {what}"));
        }
        // The bystander, connected all along, still gets its answer.
        let multiply = call_message(kind, "Multiply", |o| {
            o.write_field_begin(&TFieldIdentifier::new("request", TType::Struct, 1)).unwrap();
            o.write_struct_begin(&TStructIdentifier::new("MultiplyRequest")).unwrap();
            o.write_field_begin(&TFieldIdentifier::new("a", TType::I64, 1)).unwrap();
            o.write_i64(6).unwrap();
            o.write_field_end().unwrap();
            o.write_field_begin(&TFieldIdentifier::new("b", TType::I64, 2)).unwrap();
            o.write_i64(7).unwrap();
            o.write_field_end().unwrap();
            o.write_field_stop().unwrap();
            o.write_struct_end().unwrap();
            o.write_field_end().unwrap();
            o.write_field_stop().unwrap();
            o.write_struct_end().unwrap();
            o.write_message_end().unwrap();
        });
        bystander.write_all(&multiply).unwrap();
        let (ident, error) = read_reply(kind, &mut bystander);
        assert_eq!(
            (ident.name.as_str(), ident.message_type, ident.sequence_number),
            ("Multiply", TMessageType::Reply, 7)
        );
        assert!(error.is_none(), "{kind}: {error:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_gets_an_application_exception() {
    each_thrift_server(async |kind, server| {
        let mut s = socket(server);
        s.write_all(&call_message(kind, "Divide", |o| {
            o.write_field_stop().unwrap();
            o.write_struct_end().unwrap();
            o.write_message_end().unwrap();
        }))
        .unwrap();
        let (ident, error) = read_reply(kind, &mut s);
        assert_eq!((ident.name.as_str(), ident.sequence_number), ("Divide", 7));
        let error = error.unwrap_or_else(|| panic!("{kind}: no exception"));
        assert_eq!(error.kind, thrift::ApplicationErrorKind::UnknownMethod, "{kind}: {error:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_list_and_string_lengths_inside_a_frame_allocate_nothing_for_the_lie() {
    let _one_at_a_time = RSS.lock().await;
    each_thrift_server(async |kind, server| {
        let before = rss_bytes();
        // Batches claiming more records than they hold: the generated code
        // reserves a list's capacity before reading it, so the server's
        // container limit must refuse the length first. 2^31 - 1 is over
        // the message limit too; MAX_MESSAGE / 2 one-byte records would fit
        // a message, but not their 200-odd bytes each in memory.
        let records = |count: i32| {
            call_message(kind, "Digest", move |o| {
                o.write_field_begin(&TFieldIdentifier::new("batch", TType::Struct, 1)).unwrap();
                o.write_struct_begin(&TStructIdentifier::new("Batch")).unwrap();
                o.write_field_begin(&TFieldIdentifier::new("records", TType::List, 1)).unwrap();
                o.write_list_begin(&TListIdentifier::new(TType::Struct, count)).unwrap();
            })
        };
        let lies: Vec<(&str, Vec<u8>)> = vec![
            ("2^31 - 1 records", records(i32::MAX)),
            ("MAX_MESSAGE / 2 records", records((MAX_MESSAGE / 2) as i32)),
            (
                "an echo payload",
                call_message(kind, "Echo", |o| {
                    o.write_field_begin(&TFieldIdentifier::new("request", TType::Struct, 1)).unwrap();
                    o.write_struct_begin(&TStructIdentifier::new("EchoRequest")).unwrap();
                    o.write_field_begin(&TFieldIdentifier::new("payload", TType::String, 1)).unwrap();
                    // The length only: a 2^31 - 1 byte payload that never comes.
                    if kind == TransportKind::ThriftRpc {
                        o.write_byte(0xff).unwrap();
                        for b in [0xff, 0xff, 0xff, 0x07] {
                            o.write_byte(b).unwrap();
                        }
                    } else {
                        o.write_i32(i32::MAX).unwrap();
                    }
                }),
            ),
        ];
        for (what, message) in lies {
            for _ in 0..4 {
                let mut s = socket(server);
                s.write_all(&message).unwrap();
                let (_, error) = read_reply(kind, &mut s);
                let error = error.unwrap_or_else(|| panic!("{kind} {what}: no exception"));
                assert!(error.message.contains("exceeds maximum"), "{kind} {what}: {error:?}");
            }
        }
        let grown = rss_bytes().saturating_sub(before);
        assert!(grown < 64 << 20, "{kind}: RSS grew by {grown} bytes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_lying_frames_hold_at_most_one_frame_each_and_block_no_one() {
    let _one_at_a_time = RSS.lock().await;
    each_thrift_server(async |kind, server| {
        let before = rss_bytes();
        // Two bytes of a frame length; then frames declaring just under the
        // crate's limit with a few bytes sent. The crate's framed transport
        // reserves the declared frame before reading it (its limit is
        // fixed), so each costs at most one frame, never more.
        let mut stallers = Vec::new();
        let mut s = socket(server);
        s.write_all(&[0, 0]).unwrap();
        stallers.push(s);
        const LIARS: usize = 4;
        for _ in 0..LIARS {
            let mut s = socket(server);
            s.write_all(&((FRAME_LIMIT - 1) as u32).to_be_bytes()).unwrap();
            s.write_all(&[0x82, 0x21, 0x01]).unwrap();
            stallers.push(s);
        }
        // While they stall, others get a hundred calls through.
        let served = tokio::time::timeout(Duration::from_secs(20), assert_served(kind, server, 34)).await;
        assert!(served.is_ok(), "{kind}: stalled clients blocked the server");
        let grown = rss_bytes().saturating_sub(before);
        assert!(grown < LIARS * FRAME_LIMIT + (64 << 20), "{kind}: RSS grew by {grown} bytes");
        drop(stallers);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_declared_exceptions_and_the_connection_stays() {
    async fn check<F: Framework<Request = ThriftRequest>>(server: &Server) {
        let client = F::connect(server.endpoint(), &client_config()).await.unwrap();
        let overflow = F::prepare(&OwnedRequest::<Batch>::Multiply { a: i64::MAX, b: 2 });
        match client.call(&overflow).await {
            Err(CallError::Status(s)) => {
                assert_eq!(s.code, Code::OutOfRange, "{s}");
                assert!(s.message.contains("overflow"), "{s}");
            }
            other => panic!("{}: overflow got {other:?}", F::KIND),
        }
        let bad = batch(3, wirebench_formats::dataset::DEFAULT_SEED);
        let mut request = F::prepare(&OwnedRequest::Digest { batch: bad });
        if let ThriftRequest::Digest(b) = &mut request {
            // Not an f32: the contract's weight is one.
            b.records[1].weight = thrift::OrderedFloat(0.1);
            b.records[2].kind = wirebench_formats::format::thrift::th::Kind(77);
        }
        match client.call(&request).await {
            Err(CallError::Status(s)) => assert_eq!(s.code, Code::InvalidArgument, "{s}"),
            other => panic!("{}: a bad batch got {other:?}", F::KIND),
        }
        // The same connection still serves.
        let data = dataset(Workload::Digest { records: 5 });
        check_reply(&data, &client.call(&F::prepare(&model_request(&data))).await.unwrap());
    }
    each_thrift_server(async |kind, server| match kind {
        TransportKind::ThriftRpc => check::<ThriftRpc>(server).await,
        _ => check::<ThriftRpcBinary>(server).await,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_max_message_is_refused_and_the_server_goes_on() {
    each_thrift_server(async |kind, server| {
        async fn big<F: Framework>(server: &Server) -> CallError {
            let client = F::connect(server.endpoint(), &client_config()).await.unwrap();
            let echo = F::prepare(&OwnedRequest::<Batch>::Echo { payload: vec![7; MAX_MESSAGE + 1] });
            client.call(&echo).await.unwrap_err()
        }
        let err = match kind {
            TransportKind::ThriftRpc => big::<ThriftRpc>(server).await,
            _ => big::<ThriftRpcBinary>(server).await,
        };
        assert!(matches!(&err, CallError::Status(s) if s.message.contains("exceeds maximum")), "{kind}: {err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_idle_connections() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let server = start(kind, ServerConfig::default(), dir.path()).await;
        let mut idle = socket(&server);
        tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await.unwrap();
        assert_closed_sync(&mut idle, &format!("{kind}: idle connection at shutdown"));
    }
}
