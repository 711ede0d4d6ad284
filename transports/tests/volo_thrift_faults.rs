//! Volo's Thrift server (`volo-thrift`, framed binary) fed bad bytes:
//! garbage, frame lengths that lie or exceed the limit, list lengths that
//! lie inside a frame, unframed and compact messages, unknown methods,
//! clients stalled mid-frame. The offending connection is answered with a
//! Thrift exception or closed; every other connection keeps being served,
//! and memory stays within the limit the server is configured with.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::faults::*;
use common::*;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactOutputProtocol, TFieldIdentifier, TInputProtocol,
    TListIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};
use wirebench_formats::{Batch, Code, OwnedRequest, Workload};
use wirebench_transports::framework::volo_thrift::VoloThrift;
use wirebench_transports::{CallError, Framework, FrameworkClient, Server, ServerConfig, TransportKind};

const KIND: TransportKind = TransportKind::VoloThrift;
/// A call of `method`, strict binary, framed, its argument struct written
/// by `args`.
fn call_message(method: &str, args: impl FnOnce(&mut dyn TOutputProtocol)) -> Vec<u8> {
    let mut body = Vec::new();
    {
        let o: &mut dyn TOutputProtocol = &mut TBinaryOutputProtocol::new(&mut body, true);
        o.write_message_begin(&TMessageIdentifier::new(method, TMessageType::Call, 7)).unwrap();
        o.write_struct_begin(&TStructIdentifier::new("args")).unwrap();
        args(o);
        o.flush().unwrap();
    }
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}

fn multiply_message(a: i64, b: i64) -> Vec<u8> {
    call_message("Multiply", |o| {
        o.write_field_begin(&TFieldIdentifier::new("request", TType::Struct, 1)).unwrap();
        o.write_struct_begin(&TStructIdentifier::new("MultiplyRequest")).unwrap();
        o.write_field_begin(&TFieldIdentifier::new("a", TType::I64, 1)).unwrap();
        o.write_i64(a).unwrap();
        o.write_field_end().unwrap();
        o.write_field_begin(&TFieldIdentifier::new("b", TType::I64, 2)).unwrap();
        o.write_i64(b).unwrap();
        o.write_field_end().unwrap();
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.write_field_end().unwrap();
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
        o.write_message_end().unwrap();
    })
}

/// A framed Digest call whose `records` list claims `count` records and
/// holds none, in strict binary or in TCompactProtocol.
fn lying_batch(count: i32, compact: bool) -> Vec<u8> {
    let mut body = Vec::new();
    {
        let mut o: Box<dyn TOutputProtocol + '_> = if compact {
            Box::new(TCompactOutputProtocol::new(&mut body))
        } else {
            Box::new(TBinaryOutputProtocol::new(&mut body, true))
        };
        o.write_message_begin(&TMessageIdentifier::new("Digest", TMessageType::Call, 7)).unwrap();
        o.write_struct_begin(&TStructIdentifier::new("args")).unwrap();
        o.write_field_begin(&TFieldIdentifier::new("batch", TType::Struct, 1)).unwrap();
        o.write_struct_begin(&TStructIdentifier::new("Batch")).unwrap();
        o.write_field_begin(&TFieldIdentifier::new("records", TType::List, 1)).unwrap();
        o.write_list_begin(&TListIdentifier::new(TType::Struct, count)).unwrap();
        o.flush().unwrap();
    }
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}

/// Reads one reply frame: its message header and, for an exception, the
/// `TApplicationException`.
fn read_reply(socket: &mut TcpStream) -> (TMessageIdentifier, Option<thrift::ApplicationError>) {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    socket.read_exact(&mut body).unwrap();
    let mut rest = &body[..];
    let mut input = TBinaryInputProtocol::new(&mut rest, true);
    let ident = input.read_message_begin().unwrap();
    let error = (ident.message_type == TMessageType::Exception)
        .then(|| thrift::Error::read_application_error_from_in_protocol(&mut input).unwrap());
    (ident, error)
}

/// The RSS checks measure this whole process: one at a time.
static RSS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn with_server(test: impl AsyncFn(&Server)) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(KIND, ServerConfig { max_message: MAX_MESSAGE, ..ServerConfig::default() }, dir.path()).await;
    test(&server).await;
    assert_served_by::<VoloThrift>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1024 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_impossible_frame_lengths_close_only_that_connection() {
    with_server(async |server| {
        let mut bystander = socket(server);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("a negative frame length", vec![0xff, 0xff, 0xff, 0xff, 0x80, 0x01, 0, 1]),
            ("a frame over max_message", [&((MAX_MESSAGE + 1) as u32).to_be_bytes()[..], &[0x80, 0x01]].concat()),
            ("a frame that is not a Thrift message", [&8u32.to_be_bytes()[..], b"\x80\x01garbage"].concat()),
        ];
        for (what, bytes) in cases {
            let mut attacker = socket(server);
            attacker.write_all(&bytes).unwrap();
            assert_closed_sync(&mut attacker, what);
        }
        // The bystander, connected all along, still gets its answer.
        bystander.write_all(&multiply_message(6, 7)).unwrap();
        let (ident, error) = read_reply(&mut bystander);
        assert_eq!(
            (ident.name.as_str(), ident.message_type, ident.sequence_number),
            ("Multiply", TMessageType::Reply, 7)
        );
        assert!(error.is_none(), "{error:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_gets_an_application_exception() {
    with_server(async |server| {
        let mut s = socket(server);
        s.write_all(&call_message("Divide", |o| {
            o.write_field_stop().unwrap();
            o.write_struct_end().unwrap();
            o.write_message_end().unwrap();
        }))
        .unwrap();
        let (ident, error) = read_reply(&mut s);
        assert_eq!(ident.name.as_str(), "Divide");
        let error = error.unwrap_or_else(|| panic!("no exception"));
        assert_eq!(error.kind, thrift::ApplicationErrorKind::UnknownMethod, "{error:?}");
    })
    .await;
}

// A list claiming more records than its frame holds is refused before pilota reserves the claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_list_lengths_inside_a_frame_allocate_nothing_for_the_lie() {
    let _one_at_a_time = RSS.lock().await;
    with_server(async |server| {
        let before = rss_bytes();
        // Batches claiming far more records than the frame holds.
        let records = |count: i32| lying_batch(count, false);
        for count in [i32::MAX, (MAX_MESSAGE / 2) as i32] {
            for _ in 0..4 {
                let mut s = socket(server);
                s.write_all(&records(count)).unwrap();
                // An exception or a closed connection; never an answer.
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
            }
        }
        let grown = rss_bytes().saturating_sub(before);
        assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
    })
    .await;
}

// Volo's own decoder would also read these, trusting their claims; they
// are refused, and only their connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_other_than_framed_strict_binary_are_refused() {
    with_server(async |server| {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("an unframed lying batch", lying_batch(i32::MAX, false)[4..].to_vec()),
            ("a framed compact lying batch", lying_batch(i32::MAX, true)),
            ("a framed compact call", {
                let mut body = Vec::new();
                {
                    let o: &mut dyn TOutputProtocol = &mut TCompactOutputProtocol::new(&mut body);
                    o.write_message_begin(&TMessageIdentifier::new("Multiply", TMessageType::Call, 7)).unwrap();
                    o.write_struct_begin(&TStructIdentifier::new("args")).unwrap();
                    o.write_field_stop().unwrap();
                    o.write_struct_end().unwrap();
                    o.write_message_end().unwrap();
                    o.flush().unwrap();
                }
                [&(body.len() as u32).to_be_bytes()[..], &body].concat()
            }),
        ];
        for (what, bytes) in cases {
            let mut attacker = socket(server);
            attacker.write_all(&bytes).unwrap();
            assert_closed_sync(&mut attacker, what);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_lying_frames_hold_at_most_one_frame_each_and_block_no_one() {
    let _one_at_a_time = RSS.lock().await;
    with_server(async |server| {
        let before = rss_bytes();
        // Two bytes of a frame length; then frames declaring just under the
        // limit with a few bytes sent: Volo reserves the declared frame
        // (checked against the limit first) before reading it.
        let mut stallers = Vec::new();
        let mut s = socket(server);
        s.write_all(&[0, 0]).unwrap();
        stallers.push(s);
        const LIARS: usize = 4;
        for _ in 0..LIARS {
            let mut s = socket(server);
            s.write_all(&((MAX_MESSAGE - 1) as u32).to_be_bytes()).unwrap();
            s.write_all(&[0x80, 0x01, 0x00, 0x01]).unwrap();
            stallers.push(s);
        }
        let served = tokio::time::timeout(
            Duration::from_secs(20),
            assert_served_by::<VoloThrift>(
                server,
                &[Workload::Multiply, Workload::Echo { size: 1024 }, Workload::Digest { records: 10 }],
                34,
            ),
        )
        .await;
        assert!(served.is_ok(), "stalled clients blocked the server");
        let grown = rss_bytes().saturating_sub(before);
        assert!(grown < LIARS * MAX_MESSAGE + (64 << 20), "RSS grew by {grown} bytes");
        drop(stallers);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_are_declared_exceptions_and_the_client_goes_on() {
    with_server(async |server| {
        let client = VoloThrift::connect(server.endpoint(), &client_config()).await.unwrap();
        let overflow = VoloThrift::prepare(&OwnedRequest::<Batch>::Multiply { a: i64::MAX, b: 2 });
        match client.call(&overflow).await {
            Err(CallError::Status(s)) => {
                assert_eq!(s.code, Code::OutOfRange, "{s}");
                assert!(s.message.contains("overflow"), "{s}");
            }
            other => panic!("overflow got {other:?}"),
        }
        let data = dataset(Workload::Digest { records: 5 });
        check_reply(&data, &client.call(&VoloThrift::prepare(&model_request(&data))).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_max_message_is_refused_and_the_server_goes_on() {
    with_server(async |server| {
        let config = wirebench_transports::ClientConfig { max_message: 4 * MAX_MESSAGE, ..client_config() };
        let client = VoloThrift::connect(server.endpoint(), &config).await.unwrap();
        let echo = VoloThrift::prepare(&OwnedRequest::<Batch>::Echo { payload: vec![7; MAX_MESSAGE + 1] });
        assert!(client.call(&echo).await.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(KIND, ServerConfig::default(), dir.path()).await;
    let mut idle = socket(&server);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await.unwrap();
    assert_closed_sync(&mut idle, "idle connection at shutdown");
}
