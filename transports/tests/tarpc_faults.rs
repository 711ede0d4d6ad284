//! The tarpc server fed bad bytes: garbage, lengths over the frame limit,
//! frames that are not tarpc messages, frames stalled halfway, many
//! stalled connections at once; and Multiply's overflow as the service's
//! error value. The offending connection is closed; every other
//! connection keeps being served, and memory stays bounded by what was
//! sent, not by what was declared.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::faults::*;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wirebench_formats::{Batch, Code, OwnedRequest, Workload};
use wirebench_transports::framework::tarpc::Tarpc;
use wirebench_transports::{CallError, Framework, TransportKind};

/// A length-delimited frame: 4-byte big-endian length, then the bytes.
fn frame(body: &[u8]) -> Vec<u8> {
    [&(body.len() as u32).to_be_bytes()[..], body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_lying_lengths_close_only_their_connection() {
    let server = start_limited(TransportKind::Tarpc).await;
    let over = (MAX_MESSAGE + 1024 + 1) as u32;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("a length one byte over the limit", over.to_be_bytes().to_vec()),
        ("a length of 4 GiB", vec![0xff; 4]),
        ("a frame of garbage", frame(&[0xff; 64])),
        ("a frame with an unknown message variant", frame(&[0x07, 0x01, 0x02])),
        ("an empty frame", frame(&[])),
    ];
    for (what, bytes) in cases {
        let mut socket = TcpStream::connect(address(&server)).await.unwrap();
        socket.write_all(&bytes).await.unwrap();
        assert_closed(&mut socket, what).await;
        assert_served_by::<Tarpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_half_frame_does_not_block_others() {
    let server = start_limited(TransportKind::Tarpc).await;
    let mut staller = TcpStream::connect(address(&server)).await.unwrap();
    staller.write_all(&[&256u32.to_be_bytes()[..], &[0; 10]].concat()).await.unwrap();
    let data = dataset(Workload::Multiply);
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        let client = Tarpc::connect(server.endpoint(), &client_config()).await.unwrap();
        for _ in 0..100 {
            check_reply(&data, &client.call(&model_request(&data)).await.unwrap());
        }
    })
    .await;
    assert!(served.is_ok(), "a stalled client blocked the server");
    drop(staller);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_declaring_the_limit_keep_memory_bounded() {
    let server = start_limited(TransportKind::Tarpc).await;
    assert_served_by::<Tarpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
    let before = rss_kib();
    // Each declares a frame at the limit (1 MiB) and sends 64 KiB of it:
    // 64 MiB declared, 4 MiB sent.
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut socket = TcpStream::connect(address(&server)).await.unwrap();
        socket.write_all(&(MAX_MESSAGE as u32).to_be_bytes()).await.unwrap();
        socket.write_all(&vec![0; 64 << 10]).await.unwrap();
        stalled.push(socket);
    }
    assert_served_by::<Tarpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 24 << 10, "64 stalled connections grew RSS by {grown} KiB");
    drop(stalled);
    assert_served_by::<Tarpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_is_the_services_error_value_and_the_connection_stays() {
    let server = start_limited(TransportKind::Tarpc).await;
    let client = Tarpc::connect(server.endpoint(), &client_config()).await.unwrap();
    match client.call(&OwnedRequest::<Batch>::Multiply { a: i64::MAX, b: 2 }).await {
        Err(CallError::Status(s)) => {
            assert_eq!(s.code, Code::OutOfRange, "{s}");
            assert!(s.message.contains("overflows"), "{s}");
        }
        other => panic!("overflow got {other:?}"),
    }
    let data = dataset(Workload::Echo { size: 1024 });
    check_reply(&data, &client.call(&model_request(&data)).await.unwrap());
    // A request over the limit is refused by the client's own codec, and
    // the client reports it; the server is not harmed.
    let big = OwnedRequest::<Batch>::Echo { payload: vec![7; MAX_MESSAGE + 4096] };
    let small = wirebench_transports::ClientConfig { max_message: MAX_MESSAGE * 4, ..client_config() };
    let eager = Tarpc::connect(server.endpoint(), &small).await.unwrap();
    assert!(eager.call(&big).await.is_err(), "a frame over the server's limit was served");
    assert_served_by::<Tarpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
    server.shutdown().await;
}
