//! The zerorpc server fed bad bytes: garbage, a ZMTP frame with a lying
//! length, a stalled half frame, a stalled handshake, events that are not
//! zerorpc's, bad calls. Framing faults close that connection (libzmq does
//! it, as configured by the server); bad events are dropped and bad calls
//! answered with zerorpc's `ERR`, as zerorpc's own server does; every other
//! connection keeps being served, and memory stays bounded.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::faults::*;
use common::*;
use wirebench_formats::{Code, Workload};
use wirebench_transports::framework::zerorpc::{ServeOptions, ZeroRpc, event, serve_with};
use wirebench_transports::{Address, CallError, Framework, Server, ServerConfig};

async fn start_server() -> Server {
    let config = ServerConfig { max_message: MAX_MESSAGE, ..ServerConfig::default() };
    let options = ServeOptions {
        zmtp_heartbeat: Duration::from_millis(200),
        handshake: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    serve_with(&Address::Inet("127.0.0.1:0".parse().unwrap()), config, options).await.unwrap()
}

/// ZMTP 3.1's greeting (NULL mechanism, as client) and a READY command
/// for a DEALER: a handshake written by hand, so frames can lie.
fn zmtp_handshake() -> Vec<u8> {
    let mut bytes = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 1];
    bytes.extend_from_slice(b"NULL");
    bytes.extend_from_slice(&[0; 16]);
    bytes.push(0);
    bytes.extend_from_slice(&[0; 31]);
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&6u32.to_be_bytes());
    body.extend_from_slice(b"DEALER");
    bytes.extend_from_slice(&[0x04, body.len() as u8]);
    bytes.extend_from_slice(&body);
    bytes
}

/// A libzmq DEALER for hand-made events, with blocking receives that time
/// out (the server runs on a thread of its own).
struct RawDealer {
    socket: zmq::Socket,
}

impl RawDealer {
    fn connect(address: SocketAddr) -> RawDealer {
        let socket = zmq::Context::new().socket(zmq::DEALER).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_rcvtimeo(5000).unwrap();
        socket.connect(&format!("tcp://{address}")).unwrap();
        RawDealer { socket }
    }

    fn send(&self, event: &[u8]) {
        self.socket.send_multipart([&b""[..], event], 0).unwrap();
    }

    /// The next event's frame, or `None` if none comes within 5 s.
    fn recv(&self) -> Option<Vec<u8>> {
        let parts = self.socket.recv_multipart(0).ok()?;
        parts.last().cloned()
    }
}

/// A zerorpc request event: `[{"message_id": id, "v": 3}, name, args]`.
fn request(id: &[u8], name: &str, args: &[u8]) -> Vec<u8> {
    let mut e = Vec::new();
    event::write_head(&mut e, id, None, name);
    e.extend_from_slice(args);
    e
}

/// A reply's `response_to`, name and args.
fn parse_reply(frame: &[u8]) -> (Vec<u8>, String, Vec<u8>) {
    let e = event::parse(frame).unwrap();
    (e.response_to.unwrap().to_vec(), e.name.to_owned(), e.args.to_vec())
}

#[tokio::test(flavor = "current_thread")]
async fn garbage_and_lying_lengths_close_the_connection() {
    let server = start_server().await;
    let a = address(&server);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero bytes", vec![0; 100]),
        ("a frame declaring 2^60 bytes", [zmtp_handshake(), vec![0x02], (1u64 << 60).to_be_bytes().to_vec()].concat()),
        (
            "a frame one byte over the limit",
            [zmtp_handshake(), vec![0x02], ((MAX_MESSAGE + 4096 + 1) as u64).to_be_bytes().to_vec()].concat(),
        ),
        (
            "a greeting of another protocol version",
            [&[0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 9, 9][..], &[0; 52]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        let mut socket = TcpStream::connect(a).unwrap();
        socket.write_all(&bytes).unwrap();
        assert_closed_sync(&mut socket, what);
    }
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn stalled_half_frames_and_handshakes_are_closed_and_block_no_one() {
    let server = start_server().await;
    let a = address(&server);
    // Half a frame: declares 500 KB, sends 10 bytes, stalls. ZMTP
    // heartbeats (200 ms here) find it deaf and close it.
    let mut half = TcpStream::connect(a).unwrap();
    half.write_all(&[zmtp_handshake(), vec![0x02], 500_000u64.to_be_bytes().to_vec(), vec![b'x'; 10]].concat())
        .unwrap();
    // Half a greeting: the handshake deadline (500 ms here) closes it.
    let mut greeting = TcpStream::connect(a).unwrap();
    greeting.write_all(&zmtp_handshake()[..20]).unwrap();
    // While they stall, others get their calls through.
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    assert_closed_sync(&mut half, "a stalled half frame");
    assert_closed_sync(&mut greeting, "a stalled greeting");
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn zmtp_1_0_lookalike_garbage_is_dropped_while_others_are_served() {
    // libzmq takes a peer whose first byte is not 0xFF for ZMTP/1.0 and
    // cannot be told not to: its bytes become messages, which are not
    // zerorpc events and are dropped. The server stays fine.
    let server = start_server().await;
    let mut http = TcpStream::connect(address(&server)).unwrap();
    http.write_all(&b"GET / HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n".repeat(50)).unwrap();
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    drop(http);
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn events_that_are_not_zerorpc_are_dropped_and_the_connection_stays() {
    let server = start_server().await;
    let dealer = RawDealer::connect(address(&server));
    let bad: Vec<Vec<u8>> = vec![
        b"not msgpack at all".to_vec(),
        vec![0x92, 0x80, 0xa0],
        // A header key declaring 4 GiB.
        vec![0x93, 0x81, 0xdb, 0xff, 0xff, 0xff, 0xff],
        // A request without a message id.
        vec![0x93, 0x80, 0xa8, b'm', b'u', b'l', b't', b'i', b'p', b'l', b'y', 0x91, 0x80],
        // A heartbeat and a reply for channels that are not open.
        {
            let mut e = Vec::new();
            event::write_heartbeat(&mut e, b"hb", b"someone else's channel");
            e
        },
        {
            let mut e = Vec::new();
            event::write_head(&mut e, b"ok", Some(b"no such call"), "OK");
            e.extend_from_slice(&[0x91, 0x01]);
            e
        },
        vec![0xc1; 64],
    ];
    for event in &bad {
        dealer.send(event);
    }
    // The same connection still gets a good call answered, and the answer
    // is the first thing that comes back: nothing above was answered.
    let id = b"0000000100000000000000000000abcd";
    dealer.send(&request(id, "multiply", &[0x91, 0x82, 0xa1, b'a', 0x06, 0xa1, b'b', 0x07]));
    let (to, name, args) = parse_reply(&dealer.recv().expect("a reply to the good call"));
    assert_eq!((to.as_slice(), name.as_str()), (&id[..], "OK"));
    assert_eq!(args, [0x91, 0x81, 0xa7, b'p', b'r', b'o', b'd', b'u', b'c', b't', 42]);
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn bad_calls_get_zerorpc_errors() {
    let server = start_server().await;
    let dealer = RawDealer::connect(address(&server));
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("an unknown method", request(b"id-1", "launch", &[0x90]), "NameError", "launch"),
        ("two arguments", request(b"id-2", "multiply", &[0x92, 0x01, 0x02]), "ValueError", "1 positional argument"),
        ("no argument", request(b"id-3", "echo", &[0x90]), "ValueError", "but 0 were given"),
        (
            "a wrong-typed argument",
            request(b"id-4", "multiply", &[0x91, 0xa3, b'x', b'y', b'z']),
            "ValueError",
            "msgpack",
        ),
        (
            "an argument with a lying length",
            request(
                b"id-5",
                "echo",
                &[0x91, 0x81, 0xa7, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0xc6, 0xff, 0xff, 0xff, 0xff],
            ),
            "ValueError",
            "msgpack",
        ),
        (
            "an overflowing multiply",
            request(
                b"id-6",
                "multiply",
                &[0x91, 0x82, 0xa1, b'a', 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa1, b'b', 0x02],
            ),
            "OverflowError",
            "overflows",
        ),
    ];
    for (what, event, want_name, want_message) in cases {
        dealer.send(&event);
        let (_, name, args) = parse_reply(&dealer.recv().unwrap_or_else(|| panic!("{what}: no reply")));
        assert_eq!(name, "ERR", "{what}");
        let (error, message) = event::error_args(&args).unwrap();
        assert_eq!(error, want_name, "{what}: {message}");
        assert!(message.contains(want_message), "{what}: {message}");
    }
    // A protocol v1 request (no "v") gets v1's error form: [message].
    let mut v1 = vec![0x93, 0x81, 0xaa];
    v1.extend_from_slice(b"message_id");
    v1.extend_from_slice(&[0xa2, b'v', b'1', 0xa6]);
    v1.extend_from_slice(b"launch");
    v1.push(0x90);
    dealer.send(&v1);
    let (_, name, args) = parse_reply(&dealer.recv().unwrap());
    assert_eq!((name.as_str(), args.as_slice()), ("ERR", &[0x91, 0xa6, b'l', b'a', b'u', b'n', b'c', b'h'][..]));
    // Our own client maps zerorpc's error back to the status.
    let client = ZeroRpc::connect(server.endpoint(), &client_config()).await.unwrap();
    let overflow = wirebench_formats::OwnedRequest::Multiply { a: i64::MAX, b: 2 };
    match client.call(&overflow).await {
        Err(CallError::Status(s)) => assert_eq!(s.code, Code::OutOfRange, "{s}"),
        other => panic!("overflow got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn hostile_peers_leave_memory_bounded() {
    let server = start_server().await;
    let a = address(&server);
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    let before = rss_bytes();
    // 200 connections each declaring a frame of 2^60 bytes, 40 that
    // declare the largest allowed frame and stall, 2000 undecodable events
    // of 60 KB, 500 calls whose argument lies about its length.
    for _ in 0..200 {
        let mut s = TcpStream::connect(a).unwrap();
        s.write_all(&[zmtp_handshake(), vec![0x02], (1u64 << 60).to_be_bytes().to_vec()].concat()).unwrap();
    }
    let stallers: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(a).unwrap();
            s.write_all(
                &[zmtp_handshake(), vec![0x02], (MAX_MESSAGE as u64).to_be_bytes().to_vec(), vec![0; 100]].concat(),
            )
            .unwrap();
            s
        })
        .collect();
    let dealer = RawDealer::connect(a);
    let garbage = vec![0xc1u8; 60_000];
    for _ in 0..2000 {
        dealer.send(&garbage);
    }
    let lie = request(
        b"lying",
        "echo",
        &[0x91, 0x81, 0xa7, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0xc6, 0x7f, 0xff, 0xff, 0xff],
    );
    for _ in 0..500 {
        dealer.send(&lie);
    }
    for _ in 0..500 {
        let (_, name, _) = parse_reply(&dealer.recv().expect("an ERR for every lying call"));
        assert_eq!(name, "ERR");
    }
    assert_served_by::<ZeroRpc>(
        &server,
        &[Workload::Multiply, Workload::Echo { size: 1000 }, Workload::Digest { records: 10 }],
        1,
    )
    .await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
    drop(stallers);
    server.shutdown().await;
}
