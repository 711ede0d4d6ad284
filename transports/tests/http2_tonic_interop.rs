//! With protobuf, our http2 transport is plain gRPC: a stock tonic client
//! calls our server, and our client calls a stock tonic server.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use wirebench_formats::protobuf::{PbRequest, Protobuf, pb};
use wirebench_formats::{Code, Format, FormatId, Method, OwnedRequest, Workload};
use wirebench_transports::framework::grpc::BenchClient;
use wirebench_transports::http2::Http2;
use wirebench_transports::{Address, CallError, Client, ServerConfig, Transport, TransportKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_calls_our_http2_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Http2, ServerConfig::default(), dir.path()).await;
    let Address::Inet(address) = server.endpoint().address else { unreachable!() };
    let mut client = BenchClient::connect(format!("http://{address}")).await.unwrap();

    let reply = client.multiply(pb::MultiplyRequest { a: 6, b: -7 }).await.unwrap().into_inner();
    assert_eq!(reply.product, -42);
    let reply = client.echo(pb::EchoRequest { payload: b"interop".to_vec() }).await.unwrap().into_inner();
    assert_eq!(reply.payload, b"interop");
    let data = dataset(Workload::Digest { records: 50 });
    let PbRequest::Digest(batch) = Protobuf::prepare(&model_request(&data)) else { unreachable!() };
    let reply = client.digest(batch).await.unwrap().into_inner();
    check_reply(
        &data,
        &wirebench_formats::Reply::Digest(wirebench_formats::DigestReply {
            records: reply.records,
            checksum: reply.checksum,
        }),
    );

    let status = client.multiply(pb::MultiplyRequest { a: i64::MAX, b: 2 }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange);
    assert!(status.message().contains("overflows"), "{}", status.message());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_http2_client_calls_a_tonic_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Grpc, ServerConfig::default(), dir.path()).await;
    let mut endpoint = server.endpoint().clone();
    endpoint.transport = TransportKind::Http2;
    let client = Http2::connect(&endpoint, &client_config()).await.unwrap();
    for workload in [
        Workload::Multiply,
        Workload::Echo { size: 1024 },
        Workload::Echo { size: 300_000 },
        Workload::Digest { records: 100 },
    ] {
        call_checked::<Protobuf, _>(&client, &dataset(workload)).await.unwrap();
    }
    let overflow =
        Protobuf::encode_request(&mut Vec::new(), &Protobuf::prepare(&OwnedRequest::Multiply { a: i64::MAX, b: 2 }))
            .unwrap()
            .to_vec();
    match client.call(Method::Multiply, FormatId::Protobuf, &overflow).await {
        Err(CallError::Status(s)) => assert_eq!(s.code, Code::OutOfRange, "{s}"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}
