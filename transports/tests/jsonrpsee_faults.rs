//! The jsonrpsee server fed bad requests: bytes that are not HTTP, bodies
//! that lie about their length or exceed the limit, requests stalled
//! halfway, many stalled connections at once; and JSON-RPC's own errors
//! (unparsable, unknown method, bad params) and Multiply's overflow as
//! error objects. Broken HTTP closes its connection; every other
//! connection keeps being served, and memory stays bounded.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::faults::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wirebench_formats::{Batch, Code, OwnedRequest, Workload};
use wirebench_transports::framework::jsonrpsee::Jsonrpsee;
use wirebench_transports::{CallError, Framework, Server, TransportKind};

/// Reads what the server sends until it closes the connection; fails if
/// it keeps it open.
async fn read_until_closed(socket: &mut TcpStream, what: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "{what}: the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

fn post_head(length: usize) -> String {
    format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
}

fn chunked_head() -> Vec<u8> {
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
}

fn chunk(bytes: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat()
}

/// `len` bytes of a JSON object that never ends.
fn body(len: usize) -> Vec<u8> {
    let mut body = vec![b' '; len];
    body[0] = b'{';
    body
}

/// One JSON-RPC request on its own connection: the HTTP status and the
/// parsed response body.
async fn rpc(server: &Server, body: &str) -> (u16, serde_json::Value) {
    let mut socket = TcpStream::connect(address(server)).await.unwrap();
    let request = post_head(body.len()).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n") + body;
    socket.write_all(request.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut socket, body).await;
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, json) = response.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_http_and_oversized_bodies_close_only_their_connection() {
    let server = start_limited(TransportKind::Jsonrpsee).await;
    let over = MAX_MESSAGE + 1024 + 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("binary garbage", vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0xff, 0x00, b'\r', b'\n', b'\r', b'\n'], " 400 "),
        ("a declared length one byte over the limit", post_head(over).into_bytes(), " 413 "),
        // jsonrpsee reads a length beyond u32 as unknown and counts what
        // arrives instead: the body is refused at the limit, as an
        // internal error (-32603), jsonrpsee's answer to a body stream
        // that fails.
        ("a length of 10^15 bytes", [post_head(1_000_000_000_000_000).into_bytes(), body(over)].concat(), " 500 "),
        ("a chunked body over the limit", [chunked_head(), chunk(&body(over))].concat(), " 500 "),
    ];
    for (what, bytes, status) in cases {
        let mut socket = TcpStream::connect(address(&server)).await.unwrap();
        // The server may answer and close before reading it all.
        let _ = socket.write_all(&bytes).await;
        let response = read_until_closed(&mut socket, what).await;
        assert!(response.starts_with("HTTP/1.1") && response.contains(status), "{what}: {response:.300}");
        assert_served_by::<Jsonrpsee>(&server, &[Workload::Digest { records: 10 }], 1).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonrpc_errors_are_error_objects() {
    let server = start_limited(TransportKind::Jsonrpsee).await;
    let cases = [
        (r#"{"jsonrpc":"2.0","id":1,"method":"bench_multiply","params":{"a":1"#, -32700, "parse"),
        (r#"{"jsonrpc":"2.0","id":1,"method":"bench_divide","params":{"a":1,"b":2}}"#, -32601, "method"),
        (r#"{"jsonrpc":"2.0","id":1,"method":"bench_multiply","params":{"a":"x","b":2}}"#, -32602, "params"),
        (r#"{"jsonrpc":"2.0","id":1,"method":"bench_echo","params":{"payload":"***"}}"#, -32602, "base64"),
        (r#"{"jsonrpc":"2.0","id":1,"method":"bench_digest","params":{"records":[{"id":1}]}}"#, -32602, "params"),
    ];
    for (body, code, says) in cases {
        let (http, reply) = rpc(&server, body).await;
        assert_eq!(http, 200, "{body}");
        assert_eq!(reply["error"]["code"], code, "{body}: {reply}");
        let message = reply["error"].to_string().to_lowercase();
        assert!(message.contains(says), "{body}: {reply}");
    }
    // Overflow: the status code's number, the message, the code's name.
    let (_, reply) =
        rpc(&server, r#"{"jsonrpc":"2.0","id":7,"method":"bench_multiply","params":{"a":9223372036854775807,"b":2}}"#)
            .await;
    assert_eq!(
        reply,
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "error": {
            "code": 11, "message": "9223372036854775807 * 2 overflows a 64-bit integer", "data": "OUT_OF_RANGE"}})
    );
    // Positional params work too (jsonrpsee's server takes both).
    let (_, reply) = rpc(&server, r#"{"jsonrpc":"2.0","id":"x","method":"bench_multiply","params":[6,-7]}"#).await;
    assert_eq!(reply, serde_json::json!({"jsonrpc": "2.0", "id": "x", "result": {"product": -42}}));

    // Our client maps the overflow back to its status.
    let client = Jsonrpsee::connect(server.endpoint(), &client_config()).await.unwrap();
    match client.call(&OwnedRequest::<Batch>::Multiply { a: i64::MAX, b: 2 }).await {
        Err(CallError::Status(s)) => {
            assert_eq!(s.code, Code::OutOfRange, "{s}");
            assert!(s.message.contains("overflows"), "{s}");
        }
        other => panic!("overflow got {other:?}"),
    }
    assert_served_by::<Jsonrpsee>(&server, &[Workload::Digest { records: 10 }], 1).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_half_request_does_not_block_others() {
    let server = start_limited(TransportKind::Jsonrpsee).await;
    let mut staller = TcpStream::connect(address(&server)).await.unwrap();
    staller.write_all((post_head(500) + r#"{"jsonrpc":"2.0","#).as_bytes()).await.unwrap();
    let data = dataset(Workload::Multiply);
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        let client = Jsonrpsee::connect(server.endpoint(), &client_config()).await.unwrap();
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
async fn stalled_requests_declaring_the_limit_keep_memory_bounded() {
    let server = start_limited(TransportKind::Jsonrpsee).await;
    assert_served_by::<Jsonrpsee>(&server, &[Workload::Digest { records: 10 }], 1).await;
    let before = rss_kib();
    // Each declares a body at the limit (1 MiB) and sends 64 KiB of it:
    // 64 MiB declared, 4 MiB sent.
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut socket = TcpStream::connect(address(&server)).await.unwrap();
        socket.write_all(post_head(MAX_MESSAGE).as_bytes()).await.unwrap();
        socket.write_all(&vec![b' '; 64 << 10]).await.unwrap();
        stalled.push(socket);
    }
    assert_served_by::<Jsonrpsee>(&server, &[Workload::Digest { records: 10 }], 1).await;
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 24 << 10, "64 stalled requests grew RSS by {grown} KiB");
    drop(stalled);
    assert_served_by::<Jsonrpsee>(&server, &[Workload::Digest { records: 10 }], 1).await;
    server.shutdown().await;
}
