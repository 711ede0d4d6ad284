//! Every call has a deadline: a silent or dead server gives an error, not
//! a hang.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::*;
use wirebench_formats::format::bincode::Bincode;
use wirebench_formats::{FormatId, Method, Workload};
use wirebench_transports::{
    Address, CallError, Client, ClientConfig, Endpoint, ServerConfig, Transport, TransportKind,
};

fn short() -> ClientConfig {
    ClientConfig { timeout: Duration::from_millis(300), ..ClientConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_and_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for kind in [TransportKind::Tcp, TransportKind::Http2] {
        let endpoint = Endpoint::new(kind, Address::Inet(address));
        let started = Instant::now();
        let outcome = match kind {
            TransportKind::Tcp => match wirebench_transports::tcp::Tcp::connect(&endpoint, &short()).await {
                Ok(c) => c.call(Method::Multiply, FormatId::Bincode, &[2, 4]).await.map(drop),
                Err(e) => Err(CallError::Closed(e.to_string())),
            },
            _ => match wirebench_transports::http2::Http2::connect(&endpoint, &short()).await {
                Ok(c) => c.call(Method::Multiply, FormatId::Bincode, &[2, 4]).await.map(drop),
                Err(e) => Err(CallError::Closed(e.to_string())),
            },
        };
        assert!(outcome.is_err(), "{kind}: a silent server answered?");
        assert!(started.elapsed() < Duration::from_secs(3), "{kind}: took {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_to_a_silent_port_fails_within_the_deadline() {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut endpoint = Endpoint::new(TransportKind::Quic, Address::Inet(silent.local_addr().unwrap()));
    endpoint.pin = Some(wirebench_transports::CertPin([1; 32]));
    let started = Instant::now();
    assert!(wirebench_transports::quic::Quic::connect(&endpoint, &short()).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_an_error_at_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let endpoint = Endpoint::new(TransportKind::Tcp, Address::Inet(port));
    let err = wirebench_transports::tcp::Tcp::connect(&endpoint, &short()).await.unwrap_err();
    assert!(err.to_string().contains("connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_fails_calls_instead_of_hanging() {
    for kind in [TransportKind::Tcp, TransportKind::Unix, TransportKind::Http2, TransportKind::Quic] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(kind, ServerConfig::default(), dir.path()).await;
        let endpoint = server.endpoint().clone();
        let data = dataset(Workload::Multiply);
        let started = Instant::now();
        let failed = match kind {
            TransportKind::Tcp => {
                let c = wirebench_transports::tcp::Tcp::connect(&endpoint, &short()).await.unwrap();
                call_checked::<Bincode, _>(&c, &data).await.unwrap();
                server.shutdown().await;
                call_checked::<Bincode, _>(&c, &data).await.is_err()
            }
            TransportKind::Unix => {
                let c = wirebench_transports::unix::Unix::connect(&endpoint, &short()).await.unwrap();
                call_checked::<Bincode, _>(&c, &data).await.unwrap();
                server.shutdown().await;
                call_checked::<Bincode, _>(&c, &data).await.is_err()
            }
            TransportKind::Http2 => {
                let c = wirebench_transports::http2::Http2::connect(&endpoint, &short()).await.unwrap();
                call_checked::<Bincode, _>(&c, &data).await.unwrap();
                server.shutdown().await;
                call_checked::<Bincode, _>(&c, &data).await.is_err()
            }
            _ => {
                let c = wirebench_transports::quic::Quic::connect(&endpoint, &short()).await.unwrap();
                call_checked::<Bincode, _>(&c, &data).await.unwrap();
                server.shutdown().await;
                call_checked::<Bincode, _>(&c, &data).await.is_err()
            }
        };
        assert!(failed, "{kind}: a call to a stopped server succeeded");
        assert!(started.elapsed() < Duration::from_secs(8), "{kind}: took {:?}", started.elapsed());
    }
}
