//! quic: the certificate pin is enforced, and bad streams are refused
//! without harming the connection they came on.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use wirebench_formats::format::bincode::Bincode;
use wirebench_formats::{Code, FormatId, Method, Workload};
use wirebench_transports::quic::Quic;
use wirebench_transports::{CallError, CertPin, Client, ServerConfig, Transport, TransportKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_pin_fails_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Quic, ServerConfig::default(), dir.path()).await;
    let mut endpoint = server.endpoint().clone();
    endpoint.pin = Some(CertPin([7; 32]));
    let err = Quic::connect(&endpoint, &client_config()).await.unwrap_err();
    assert!(err.to_string().contains("handshake"), "{err}");
    endpoint.pin = None;
    let err = Quic::connect(&endpoint, &client_config()).await.unwrap_err();
    assert!(err.to_string().contains("pin"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_streams_are_refused_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { max_message: 1024, ..ServerConfig::default() };
    let server = start(TransportKind::Quic, config, dir.path()).await;
    let client = Quic::connect(server.endpoint(), &client_config()).await.unwrap();
    // Over the server's limit: the stream is reset.
    let err = client.call(Method::Echo, FormatId::Bincode, &vec![0; 5000]).await.unwrap_err();
    assert!(matches!(err, CallError::Closed(_)), "{err}");
    // Undecodable and unknown: statuses.
    let err = client.call(Method::Digest, FormatId::Protobuf, &[0x0a, 0xff]).await.unwrap_err();
    assert!(matches!(&err, CallError::Status(s) if s.code == Code::InvalidArgument), "{err}");
    // The same connection still serves.
    call_checked::<Bincode, _>(&client, &dataset(Workload::Digest { records: 2 })).await.unwrap();
    server.shutdown().await;
}
