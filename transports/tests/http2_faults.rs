//! http2 (gRPC) servers fed bad requests: wrong content types, unknown
//! methods and formats, compressed or oversized messages, undecodable
//! requests, and bytes that are not HTTP/2 at all.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wirebench_formats::format::bincode::Bincode;
use wirebench_formats::{Code, FormatId, Method, Workload};
use wirebench_transports::http2::Http2;
use wirebench_transports::{Address, CallError, Client, ServerConfig, Transport, TransportKind};

struct Answer {
    http: u16,
    grpc_status: Option<String>,
    grpc_message: Option<String>,
}

/// Sends one request with an h2 client of our own and reports the answer.
async fn post(address: std::net::SocketAddr, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let request = http::Request::post(format!("http://{address}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut stream) = send.send_request(request, false).unwrap();
    // The server may answer before reading the body and close the stream
    // (an unknown method or format); then the body cannot be sent, and the
    // answer below is what the test checks.
    let _ = stream.send_data(Bytes::from(body), true);
    let response = response.await.unwrap();
    let http = response.status().as_u16();
    let header = |r: &http::HeaderMap, k: &str| r.get(k).map(|v| v.to_str().unwrap().to_owned());
    let mut grpc_status = header(response.headers(), "grpc-status");
    let mut grpc_message = header(response.headers(), "grpc-message");
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    if let Some(trailers) = body.trailers().await.unwrap() {
        grpc_status = grpc_status.or(header(&trailers, "grpc-status"));
        grpc_message = grpc_message.or(header(&trailers, "grpc-message"));
    }
    Answer { http, grpc_status, grpc_message }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grpc_requests_get_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { max_message: 1024, ..ServerConfig::default() };
    let server = start(TransportKind::Http2, config, dir.path()).await;
    let Address::Inet(address) = server.endpoint().address else { unreachable!() };
    let message = |m: &[u8]| [&[0u8][..], &(m.len() as u32).to_be_bytes(), m].concat();

    let a = post(address, "/wirebench.Bench/Multiply", "text/plain", message(b"x")).await;
    assert_eq!(a.http, 415, "not gRPC at all");

    let cases: Vec<(&str, &str, Vec<u8>, Code, &str)> = vec![
        ("/wirebench.Bench/Divide", "application/grpc+proto", message(b""), Code::Unimplemented, "unknown method"),
        ("/wirebench.Bench/Multiply", "application/grpc+xml", message(b""), Code::Unimplemented, "unknown format"),
        (
            "/wirebench.Bench/Multiply",
            "application/grpc",
            [&[1u8, 0, 0, 0, 1][..], b"x"].concat(),
            Code::Unimplemented,
            "compressed",
        ),
        ("/wirebench.Bench/Echo", "application/grpc", vec![0, 0, 0x10, 0, 0], Code::ResourceExhausted, "limit"),
        ("/wirebench.Bench/Echo", "application/grpc", vec![0, 0, 0, 0, 9, 1], Code::InvalidArgument, "declares"),
        ("/wirebench.Bench/Echo", "application/grpc", vec![0, 0], Code::InvalidArgument, "prefix"),
        (
            "/wirebench.Bench/Digest",
            "application/grpc+proto",
            message(&[0x0a, 0xff]),
            Code::InvalidArgument,
            "protobuf",
        ),
        ("/wirebench.Bench/Multiply", "application/grpc+json", message(b"{\"a\":1}"), Code::InvalidArgument, "json"),
    ];
    for (path, content_type, body, code, says) in cases {
        let a = post(address, path, content_type, body).await;
        assert_eq!(a.http, 200, "{path} {content_type}");
        assert_eq!(
            a.grpc_status.as_deref(),
            Some(code.value().to_string().as_str()),
            "{path} {content_type}: {:?}",
            a.grpc_message
        );
        let message = wirebench_transports::grpc_wire::decode_message(a.grpc_message.unwrap_or_default().as_bytes());
        assert!(message.contains(says), "{path} {content_type}: {message}");
    }
    // Still serving.
    let client = Http2::connect(server.endpoint(), &client_config()).await.unwrap();
    call_checked::<Bincode, _>(&client, &dataset(Workload::Digest { records: 3 })).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_http2_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Http2, ServerConfig::default(), dir.path()).await;
    let Address::Inet(address) = server.endpoint().address else { unreachable!() };
    let mut junk = tokio::net::TcpStream::connect(address).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), junk.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a non-HTTP/2 connection open");
    let client = Http2::connect(server.endpoint(), &client_config()).await.unwrap();
    call_checked::<Bincode, _>(&client, &dataset(Workload::Multiply)).await.unwrap();
    // An error status reaches our client as a status.
    let err = client.call(Method::Digest, FormatId::Protobuf, &[0x0a, 0xff]).await.unwrap_err();
    assert!(matches!(&err, CallError::Status(s) if s.code == Code::InvalidArgument), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_needs_the_right_pin() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Http2, ServerConfig { tls: true, ..ServerConfig::default() }, dir.path()).await;
    let tls = wirebench_transports::ClientConfig { tls: true, ..client_config() };
    let mut endpoint = server.endpoint().clone();
    assert!(endpoint.pin.is_some(), "a TLS server publishes its pin");
    endpoint.pin = Some(wirebench_transports::CertPin([0; 32]));
    let err = Http2::connect(&endpoint, &tls).await.unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    endpoint.pin = None;
    assert!(Http2::connect(&endpoint, &tls).await.is_err(), "TLS without a pin must not connect");
    server.shutdown().await;
}
