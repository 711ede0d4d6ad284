//! With protobuf, our http2 server streaming is plain gRPC server
//! streaming: a stock tonic client streams from our server (through the
//! generated `*Stream` methods of bench.proto), and our client streams from
//! a stock tonic server, each reply checked.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::ops::ControlFlow;

use common::*;
use wirebench_formats::protobuf::{PbRequest, Protobuf, pb};
use wirebench_formats::{Format, FormatId, Reply, Workload};
use wirebench_transports::framework::grpc::BenchClient;
use wirebench_transports::http2::Http2;
use wirebench_transports::{Address, Client, ServerConfig, Transport, TransportKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_client_streams_from_our_http2_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Http2, ServerConfig::default(), dir.path()).await;
    let Address::Inet(address) = server.endpoint().address else { unreachable!() };
    let mut client = BenchClient::connect(format!("http://{address}")).await.unwrap();
    let counted = |message| {
        let mut r = tonic::Request::new(message);
        r.metadata_mut().insert("wirebench-replies", tonic::metadata::MetadataValue::from(12u32));
        r
    };

    let mut stream = client.multiply_stream(counted(pb::MultiplyRequest { a: 6, b: -7 })).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(reply) = stream.message().await.unwrap() {
        assert_eq!(reply.product, -42);
        n += 1;
    }
    assert_eq!(n, 12);

    let data = dataset(Workload::Digest { records: 50 });
    let PbRequest::Digest(batch) = Protobuf::prepare(&model_request(&data)) else { unreachable!() };
    let mut r = tonic::Request::new(batch);
    r.metadata_mut().insert("wirebench-replies", tonic::metadata::MetadataValue::from(12u32));
    let mut stream = client.digest_stream(r).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(d) = stream.message().await.unwrap() {
        check_reply(&data, &Reply::Digest(wirebench_formats::DigestReply { records: d.records, checksum: d.checksum }));
        n += 1;
    }
    assert_eq!(n, 12);

    // Without the count: a status, as tonic's own server answers.
    let status = client.echo_stream(pb::EchoRequest { payload: b"x".to_vec() }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("wirebench-replies"), "{}", status.message());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_http2_client_streams_from_a_tonic_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Grpc, ServerConfig::default(), dir.path()).await;
    let mut endpoint = server.endpoint().clone();
    endpoint.transport = TransportKind::Http2;
    let client = Http2::connect(&endpoint, &client_config()).await.unwrap();
    for workload in [Workload::Multiply, Workload::Echo { size: 300_000 }, Workload::Digest { records: 100 }] {
        let data = dataset(workload);
        let request =
            Protobuf::encode_request(&mut Vec::new(), &Protobuf::prepare(&model_request(&data))).unwrap().to_vec();
        let mut seen = 0;
        let got = client
            .call_stream(workload.method(), FormatId::Protobuf, &request, 9, |body| {
                check(FormatId::Protobuf, &data, &body);
                seen += 1;
                ControlFlow::Continue(())
            })
            .await
            .unwrap_or_else(|e| panic!("{workload}: {e}"));
        assert_eq!((got, seen), (9, 9), "{workload}");
    }
    server.shutdown().await;
}
