//! tcp and unix servers fed bad bytes: oversized, garbage, truncated,
//! unknown calls and formats, undecodable requests, stalled clients. The
//! offending connection is closed (framing errors) or answered with a
//! status (request errors); every other connection keeps being served.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::faults::assert_closed;
use common::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wirebench_formats::format::bincode::Bincode;
use wirebench_formats::{Code, Format, FormatId, Method, Workload};
use wirebench_transports::frame::{Header, Preamble};
use wirebench_transports::{Address, CallError, Client, ServerConfig, TransportKind};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn raw_socket(address: &Address) -> Box<dyn Stream> {
    match address {
        Address::Inet(a) => Box::new(tokio::net::TcpStream::connect(a).await.unwrap()),
        Address::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await.unwrap()),
        Address::InProc => unreachable!(),
    }
}

/// A well-behaved client on another connection is served.
async fn assert_served(server: &wirebench_transports::Server) {
    let client = StreamClientOf::connect(server.endpoint(), &client_config()).await;
    call_checked::<Bincode, _>(&client, &dataset(Workload::Digest { records: 10 })).await.unwrap();
}

async fn each_stream_transport(test: impl AsyncFn(TransportKind, &wirebench_transports::Server)) {
    for kind in [TransportKind::Tcp, TransportKind::Unix] {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig { max_message: 1 << 20, ..ServerConfig::default() };
        let server = start(kind, config, dir.path()).await;
        test(kind, &server).await;
        assert_served(&server).await;
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_its_connection() {
    each_stream_transport(async |kind, server| {
        let mut bystander = raw_socket(&server.endpoint().address).await;
        bystander.write_all(&Preamble::Rpc.to_bytes()).await.unwrap();
        let mut attacker = raw_socket(&server.endpoint().address).await;
        attacker.write_all(&Preamble::Rpc.to_bytes()).await.unwrap();
        // Declares 4 GiB; only the length field is sent.
        attacker.write_all(&[0xff, 0xff, 0xff, 0xf0]).await.unwrap();
        assert_closed(&mut attacker, &format!("{kind} oversized frame")).await;
        // The bystander's connection still works.
        let request =
            Bincode::encode_request(&mut Vec::new(), &wirebench_formats::OwnedRequest::Multiply { a: 6, b: 7 })
                .unwrap()
                .to_vec();
        let mut frame = Header::request(1, Method::Multiply.id(), FormatId::Bincode as u8, request.len() as u32)
            .to_bytes()
            .to_vec();
        frame.extend_from_slice(&request);
        bystander.write_all(&frame).await.unwrap();
        let mut reply = [0u8; 12];
        bystander.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply[10], 0, "status of the bystander's call");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_protocol_violations_close_the_connection() {
    each_stream_transport(async |kind, server| {
        let address = &server.endpoint().address;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("a bad preamble mode", b"WB\x01\x09".to_vec()),
            (
                "reserved flag bits",
                [Preamble::Rpc.to_bytes(), Header { flags: 0x80, ..Header::request(1, 1, 1, 0) }.to_bytes().to_vec()]
                    .concat(),
            ),
            (
                "a reply sent to the server",
                [Preamble::Rpc.to_bytes(), Header::reply_to(&Header::request(1, 1, 1, 0), 0, 0).to_bytes().to_vec()]
                    .concat(),
            ),
            ("a length shorter than the header", [Preamble::Rpc.to_bytes(), vec![0, 0, 0, 3, 0, 0, 0, 0]].concat()),
        ];
        for (what, bytes) in cases {
            let mut socket = raw_socket(address).await;
            socket.write_all(&bytes).await.unwrap();
            assert_closed(&mut socket, &format!("{kind}: {what}")).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_and_hang_up_harms_no_one() {
    each_stream_transport(async |_kind, server| {
        let mut socket = raw_socket(&server.endpoint().address).await;
        socket.write_all(&Preamble::Rpc.to_bytes()).await.unwrap();
        let mut frame = Header::request(1, 1, FormatId::Json as u8, 100).to_bytes().to_vec();
        frame.extend_from_slice(b"{\"a\":");
        socket.write_all(&frame).await.unwrap();
        drop(socket);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_calls_formats_and_undecodable_requests_get_a_status_and_the_connection_stays() {
    each_stream_transport(async |kind, server| {
        let client = StreamClientOf::connect(server.endpoint(), &client_config()).await;
        match client.call(Method::Digest, FormatId::Protobuf, &[0x0a, 0xff]).await {
            Err(CallError::Status(s)) => {
                assert_eq!(s.code, Code::InvalidArgument, "{s}");
                assert!(s.message.contains("protobuf"), "{s}");
            }
            other => panic!("{kind}: undecodable request got {other:?}"),
        }
        let overflow = wirebench_formats::OwnedRequest::Multiply { a: i64::MAX, b: 2 };
        let overflow = Bincode::encode_request(&mut Vec::new(), &overflow).unwrap().to_vec();
        match client.call(Method::Multiply, FormatId::Bincode, &overflow).await {
            Err(CallError::Status(s)) => assert_eq!(s.code, Code::OutOfRange, "{s}"),
            other => panic!("{kind}: overflow got {other:?}"),
        }
        // Same connection, still fine.
        let ok = Bincode::encode_request(&mut Vec::new(), &wirebench_formats::OwnedRequest::Multiply { a: 2, b: 3 })
            .unwrap()
            .to_vec();
        client.call(Method::Multiply, FormatId::Bincode, &ok).await.unwrap();

        // Unknown call id and format: only possible on a raw socket.
        let mut socket = raw_socket(&server.endpoint().address).await;
        socket.write_all(&Preamble::Rpc.to_bytes()).await.unwrap();
        for (call, format) in [(9u8, FormatId::Json as u8), (1, 99)] {
            socket.write_all(&Header::request(5, call, format, 0).to_bytes()).await.unwrap();
            let mut head = [0u8; 12];
            socket.read_exact(&mut head).await.unwrap();
            let header = wirebench_transports::frame::parse_header(&head, 1 << 20).unwrap().unwrap();
            assert_eq!(
                (header.request_id, header.status),
                (5, Code::Unimplemented.value()),
                "{kind} call {call} format {format}"
            );
            let mut message = vec![0; header.body_len as usize];
            socket.read_exact(&mut message).await.unwrap();
            assert!(String::from_utf8(message).unwrap().contains("unknown"));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalled_mid_frame_does_not_block_others() {
    each_stream_transport(async |kind, server| {
        let mut staller = raw_socket(&server.endpoint().address).await;
        staller.write_all(&Preamble::Rpc.to_bytes()).await.unwrap();
        staller.write_all(&Header::request(1, 1, 1, 500).to_bytes()[..7]).await.unwrap();
        // While it stalls, others get a hundred calls through.
        let data = dataset(Workload::Multiply);
        let served = tokio::time::timeout(Duration::from_secs(10), async {
            let client = StreamClientOf::connect(server.endpoint(), &client_config()).await;
            for _ in 0..100 {
                call_checked::<Bincode, _>(&client, &data).await.unwrap();
            }
        })
        .await;
        assert!(served.is_ok(), "{kind}: a stalled client blocked the server");
        drop(staller);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_already_served_go_out_before_a_protocol_error_closes() {
    each_stream_transport(async |kind, server| {
        let request =
            Bincode::encode_request(&mut Vec::new(), &wirebench_formats::OwnedRequest::Multiply { a: 6, b: 7 })
                .unwrap()
                .to_vec();
        let mut bytes = Preamble::Rpc.to_bytes();
        bytes.extend_from_slice(
            &Header::request(1, Method::Multiply.id(), FormatId::Bincode as u8, request.len() as u32).to_bytes(),
        );
        bytes.extend_from_slice(&request);
        bytes.extend_from_slice(&Header { flags: 0x80, ..Header::request(2, 1, 1, 0) }.to_bytes());
        let mut socket = raw_socket(&server.endpoint().address).await;
        socket.write_all(&bytes).await.unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut reply)).await;
        let header = wirebench_transports::frame::parse_header(&reply, 1 << 20).unwrap();
        assert_eq!(header.map(|h| (h.request_id, h.status)), Some((1, 0)), "{kind}: the served reply was lost");
    })
    .await;
}
