//! The capnp-rpc server fed bad bytes: garbage, segment tables that lie
//! about their size, frames stalled halfway, many stalled connections at
//! once; and Multiply's overflow as a Cap'n Proto exception. The offending
//! connection is closed; every other connection keeps being served, and
//! memory stays bounded by the server's limit, whatever is declared.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use capnp_rpc::{RpcSystem, rpc_twoparty_capnp::Side, twoparty};
use common::faults::*;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use wirebench_formats::bench_capnp::bench;
use wirebench_formats::{Batch, Code, OwnedRequest, Workload};
use wirebench_transports::framework::capnp_rpc::CapnpRpc;
use wirebench_transports::{CallError, Framework, TransportKind};

/// A segment table: the count less one, then each segment's size in
/// words, padded to a whole word.
fn segment_table(sizes: &[u32]) -> Vec<u8> {
    let mut table = (sizes.len() as u32 - 1).to_le_bytes().to_vec();
    for size in sizes {
        table.extend_from_slice(&size.to_le_bytes());
    }
    if !table.len().is_multiple_of(8) {
        table.extend_from_slice(&[0; 4]);
    }
    table
}

/// capnp-rpc's own client on a fresh connection, for calls our client
/// cannot make. Must run inside a LocalSet.
async fn raw_client(address: std::net::SocketAddr) -> bench::Client {
    let tcp = TcpStream::connect(address).await.unwrap();
    let (read, write) = tcp.into_split();
    let network = twoparty::VatNetwork::new(read.compat(), write.compat_write(), Side::Client, Default::default());
    let mut system = RpcSystem::new(Box::new(network), None);
    let client: bench::Client = system.bootstrap(Side::Server);
    tokio::task::spawn_local(system);
    client
}

async fn local<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::LocalSet::new().run_until(f).await
}

#[tokio::test(flavor = "current_thread")]
async fn garbage_and_lying_lengths_close_only_their_connection() {
    local(async {
        let server = start_limited(TransportKind::CapnpRpc).await;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("an HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
            ("more segments than capnp allows", [0xff, 0xff, 0, 0, 1, 0, 0, 0].to_vec()),
            ("a message of 2^28 words", segment_table(&[1 << 28])),
            ("one word over the limit", segment_table(&[(MAX_MESSAGE / 8 + 1024 + 1) as u32])),
            ("a whole frame of garbage words", [segment_table(&[4]), vec![0xa5; 32]].concat()),
        ];
        for (what, bytes) in cases {
            let mut socket = TcpStream::connect(address(&server)).await.unwrap();
            socket.write_all(&bytes).await.unwrap();
            assert_closed(&mut socket, what).await;
            assert_served_by::<CapnpRpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_half_frame_does_not_block_others() {
    local(async {
        let server = start_limited(TransportKind::CapnpRpc).await;
        let mut staller = TcpStream::connect(address(&server)).await.unwrap();
        staller.write_all(&[segment_table(&[100]), vec![0; 16]].concat()).await.unwrap();
        // While it stalls, another connection gets a hundred calls through.
        let data = dataset(Workload::Multiply);
        let served = tokio::time::timeout(Duration::from_secs(10), async {
            let client = CapnpRpc::connect(server.endpoint(), &client_config()).await.unwrap();
            for _ in 0..100 {
                check_reply(&data, &client.call(&model_request(&data)).await.unwrap());
            }
        })
        .await;
        assert!(served.is_ok(), "a stalled client blocked the server");
        drop(staller);
        server.shutdown().await;
    })
    .await;
}

/// capnp-rpc (capnp-futures) allocates a message's declared size once the
/// segment table passes the traversal limit, so what a stalled connection
/// can hold is bounded by the limit (the server's `max_message`), and a
/// claim beyond it allocates nothing.
#[tokio::test(flavor = "current_thread")]
async fn memory_is_bounded_by_the_limit_whatever_connections_declare() {
    local(async {
        let server = start_limited(TransportKind::CapnpRpc).await;
        assert_served_by::<CapnpRpc>(&server, &[Workload::Digest { records: 10 }], 1).await;

        // 64 connections claiming 2 GiB each: refused before allocating.
        let before = rss_kib();
        for _ in 0..64 {
            let mut socket = TcpStream::connect(address(&server)).await.unwrap();
            socket.write_all(&segment_table(&[1 << 28])).await.unwrap();
            assert_closed(&mut socket, "a 2 GiB claim").await;
        }
        let grown = rss_kib().saturating_sub(before);
        assert!(grown < 8 << 10, "refused claims grew RSS by {grown} KiB");

        // 16 connections claiming just under the limit (1 MiB) and sending
        // 64 KiB of it: each holds at most the limit.
        let before = rss_kib();
        let mut stalled = Vec::new();
        for _ in 0..16 {
            let mut socket = TcpStream::connect(address(&server)).await.unwrap();
            socket.write_all(&segment_table(&[(MAX_MESSAGE / 8) as u32])).await.unwrap();
            socket.write_all(&vec![0; 64 << 10]).await.unwrap();
            stalled.push(socket);
        }
        assert_served_by::<CapnpRpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
        let grown = rss_kib().saturating_sub(before);
        let bound = (16 * (MAX_MESSAGE + (64 << 10)) + (8 << 20)) as u64 / 1024;
        assert!(grown < bound, "16 stalled connections grew RSS by {grown} KiB, over {bound} KiB");
        drop(stalled);
        assert_served_by::<CapnpRpc>(&server, &[Workload::Digest { records: 10 }], 1).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn overflow_is_a_failed_exception_naming_its_status() {
    local(async {
        let server = start_limited(TransportKind::CapnpRpc).await;
        let client = CapnpRpc::connect(server.endpoint(), &client_config()).await.unwrap();
        match client.call(&OwnedRequest::<Batch>::Multiply { a: i64::MAX, b: 2 }).await {
            Err(CallError::Status(s)) => {
                assert_eq!(s.code, Code::OutOfRange, "{s}");
                assert!(s.message.contains("overflows"), "{s}");
            }
            other => panic!("overflow got {other:?}"),
        }
        // The same connection still serves.
        let data = dataset(Workload::Echo { size: 1024 });
        check_reply(&data, &client.call(&model_request(&data)).await.unwrap());

        // On the wire it is an exception of type `failed`, as any Cap'n
        // Proto peer sees it; an unknown method is capnp's `unimplemented`.
        let raw = raw_client(address(&server)).await;
        let mut call = raw.multiply_request();
        call.get().set_a(i64::MAX);
        call.get().set_b(2);
        let e = call.send().promise.await.err().unwrap();
        assert_eq!(e.kind, capnp::ErrorKind::Failed, "{e}");
        assert!(e.extra.contains("OUT_OF_RANGE: "), "{e}");
        let unknown = raw
            .client
            .new_call::<capnp::any_pointer::Owned, capnp::any_pointer::Owned>(
                <bench::Client as capnp::traits::HasTypeId>::TYPE_ID,
                9,
                None,
            )
            .send()
            .promise
            .await
            .err()
            .unwrap();
        assert_eq!(unknown.kind, capnp::ErrorKind::Unimplemented, "{unknown}");
        server.shutdown().await;
    })
    .await;
}
