//! udp: oversized messages refused before sending, garbage dropped, lost
//! datagrams as timeouts, duplicate and late replies counted and dropped,
//! replies over the limit answered with a status.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use tokio::net::UdpSocket;
use wirebench_formats::format::bincode::Bincode;
use wirebench_formats::{Code, Format, FormatId, Method, OwnedRequest, Workload};
use wirebench_transports::frame::{self, Header};
use wirebench_transports::udp::Udp;
use wirebench_transports::{
    Address, CallError, Client, ClientConfig, Endpoint, ServerConfig, Transport, TransportKind,
};

fn multiply(a: i64, b: i64) -> Vec<u8> {
    Bincode::encode_request(&mut Vec::new(), &OwnedRequest::Multiply { a, b }).unwrap().to_vec()
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_sending_with_both_sizes() {
    // No server at all: nothing may be sent, so the error comes at once.
    let endpoint = Endpoint::new(TransportKind::Udp, Address::Inet("127.0.0.1:9".parse().unwrap()));
    let client = Udp::connect(&endpoint, &client_config()).await.unwrap();
    let payload = vec![7u8; 1500];
    let err = client.call(Method::Echo, FormatId::Bincode, &payload).await.unwrap_err();
    let CallError::TooLarge { size, limit, .. } = &err else { panic!("{err}") };
    assert_eq!((*size, *limit), (1512, 1472));
    assert!(err.to_string().contains("1512") && err.to_string().contains("1472"), "{err}");
    assert_eq!(client.counters().bytes_sent, 0, "nothing was sent");
}

#[tokio::test]
async fn garbage_datagrams_are_dropped_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Udp, ServerConfig::default(), dir.path()).await;
    let Address::Inet(address) = server.endpoint().address else { unreachable!() };
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for datagram in [&b"hello"[..], &[0xff; 40], &Header::request(1, 1, 1, 50).to_bytes(), b"WBRW"] {
        junk.send_to(datagram, address).await.unwrap();
    }
    let client = Udp::connect(server.endpoint(), &client_config()).await.unwrap();
    call_checked::<Bincode, _>(&client, &dataset(Workload::Multiply)).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn lost_datagrams_show_as_timeouts() {
    // A socket that reads nothing: every request is lost.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::new(TransportKind::Udp, Address::Inet(silent.local_addr().unwrap()));
    let config = ClientConfig { timeout: Duration::from_millis(200), ..client_config() };
    let client = Udp::connect(&endpoint, &config).await.unwrap();
    let started = std::time::Instant::now();
    let err = client.call(Method::Multiply, FormatId::Bincode, &multiply(2, 3)).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A fake server that answers every request twice, and late.
async fn echo_twice(socket: UdpSocket, delay: Duration) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
        let (header, _) = frame::parse_datagram(&buf[..n], 1 << 20).unwrap();
        let body = Bincode::encode_reply(&mut Vec::new(), &wirebench_formats::Reply::Multiply { product: 6 })
            .unwrap()
            .to_vec();
        let mut reply = Header::reply_to(&header, 0, body.len() as u32).to_bytes().to_vec();
        reply.extend_from_slice(&body);
        tokio::time::sleep(delay).await;
        socket.send_to(&reply, peer).await.unwrap();
        socket.send_to(&reply, peer).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_late_replies_are_counted_and_dropped() {
    let fake = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::new(TransportKind::Udp, Address::Inet(fake.local_addr().unwrap()));
    tokio::spawn(echo_twice(fake, Duration::from_millis(300)));
    let config = ClientConfig { timeout: Duration::from_millis(100), ..client_config() };
    let client = Udp::connect(&endpoint, &config).await.unwrap();
    // Times out; both replies come later.
    assert!(matches!(
        client.call(Method::Multiply, FormatId::Bincode, &multiply(2, 3)).await,
        Err(CallError::Timeout(_))
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The next call reads them first: both late, dropped; then its own two.
    let patient = ClientConfig { timeout: Duration::from_secs(2), ..client_config() };
    let client2 = Udp::connect(&endpoint, &patient).await.unwrap();
    let reply = client2.call(Method::Multiply, FormatId::Bincode, &multiply(2, 3)).await.unwrap();
    assert_eq!(
        Bincode::decode_reply(Method::Multiply, &reply).unwrap(),
        wirebench_formats::Reply::Multiply { product: 6 }
    );
    // The duplicate of client2's own reply is read by its next call.
    let _ = client2.call(Method::Multiply, FormatId::Bincode, &multiply(2, 3)).await.unwrap();
    assert!(client2.counters().late_replies >= 1, "{:?}", client2.counters());
    // client's late pair: read when it calls again.
    let _ = client.call(Method::Multiply, FormatId::Bincode, &multiply(2, 3)).await;
    assert!(client.counters().late_replies >= 2, "{:?}", client.counters());
}

#[tokio::test]
async fn a_reply_over_the_servers_limit_is_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let small = ServerConfig { max_datagram: 600, ..ServerConfig::default() };
    let server = start(TransportKind::Udp, small, dir.path()).await;
    let client = Udp::connect(server.endpoint(), &client_config()).await.unwrap();
    let request =
        Bincode::encode_request(&mut Vec::new(), &OwnedRequest::Echo { payload: vec![1; 1000] }).unwrap().to_vec();
    match client.call(Method::Echo, FormatId::Bincode, &request).await {
        Err(CallError::Status(s)) => {
            assert_eq!(s.code, Code::ResourceExhausted);
            assert!(s.message.contains("600"), "{s}");
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_called_before_the_server_was_up_recovers() {
    // A port with nobody on it: the first call's datagram draws an ICMP
    // "port unreachable", which must not break the client for good.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let endpoint = Endpoint::new(TransportKind::Udp, Address::Inet(port));
    let config = ClientConfig { timeout: Duration::from_millis(200), ..client_config() };
    let client = Udp::connect(&endpoint, &config).await.unwrap();
    for _ in 0..2 {
        assert!(client.call(Method::Multiply, FormatId::Bincode, &multiply(2, 3)).await.is_err());
    }
    let server = wirebench_transports::serve_kind(TransportKind::Udp, &Address::Inet(port), ServerConfig::default())
        .await
        .unwrap();
    call_checked::<Bincode, _>(&client, &dataset(Workload::Multiply)).await.unwrap();
    server.shutdown().await;
}
