//! Oneway messages on every own transport: each one is served and counted
//! in its session, exactly; the window bins, the send-to-receipt latency
//! and the refusals come back in the report, over the tcp control call as
//! the harness reads them. Frameworks without a oneway call say so.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::future::Future;
use std::pin::Pin;

use common::*;
use wirebench_formats::{FormatId, Workload};
use wirebench_transports::mode::{NO_BIN, monotonic_ns};
use wirebench_transports::stream::StreamClient;
use wirebench_transports::{
    CallError, Client, ClientConfig, Endpoint, Framework, FrameworkClient, OnewayMeta, OnewayReport, ReportRequest,
    ServerConfig, Transport, TransportKind, TransportVisitor,
};

/// Sends `n` oneway messages of `format` and `data` over `T`, the even ones
/// in window bin `i % 3`, the odd ones outside the window, and gets the
/// report while the client is still connected (a QUIC client closing its
/// connection drops what it has not sent yet).
struct Send<'a> {
    endpoint: Endpoint,
    config: ClientConfig,
    session: u32,
    n: u32,
    format: FormatId,
    data: &'a wirebench_formats::Dataset,
    reporter: Option<Reporter<'a>>,
}

/// Where the report comes from.
struct Reporter<'a> {
    server: &'a wirebench_transports::Server,
    stats: &'a StreamClient<tokio::net::TcpStream>,
}

impl<'a> TransportVisitor for Send<'a> {
    type Output = Pin<Box<dyn Future<Output = Result<(u64, Option<OnewayReport>), CallError>> + 'a>>;
    fn visit<T: Transport>(self) -> Self::Output {
        Box::pin(async move {
            let client = T::connect(&self.endpoint, &self.config).await.unwrap();
            let request = encode(self.format, self.data);
            for seq in 1..=self.n {
                let bin = if seq % 2 == 0 { seq % 3 } else { NO_BIN };
                let meta = OnewayMeta { session: self.session, seq, sent_ns: monotonic_ns(), bin };
                client.send_oneway(self.data.workload.method(), self.format, meta, &request).await?;
            }
            let sent = u64::from(self.n);
            let Some(r) = self.reporter else { return Ok((sent, None)) };
            let request = ReportRequest { session: self.session, expected: sent, quiet_ms: 500, deadline_ms: 5000 };
            let report = report(T::KIND, r.server, r.stats, request).await;
            drop(client);
            Ok((sent, Some(report)))
        })
    }
    fn visit_framework<F: Framework>(self) -> Self::Output {
        Box::pin(async move {
            let client = F::connect(&self.endpoint, &self.config).await.unwrap();
            let request = F::prepare(&model_request(self.data));
            let meta = OnewayMeta { session: self.session, seq: 1, sent_ns: monotonic_ns(), bin: 0 };
            client.send_oneway(&request, meta).await.map(|()| (1, None))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_oneway_message_is_counted_in_its_session() {
    let dir = tempfile::tempdir().unwrap();
    // One config for every server: they share the oneway count, so the tcp
    // control call reads what udp, quic or http2 counted.
    let config = ServerConfig::default();
    let control = start(TransportKind::Tcp, config.clone(), dir.path()).await;
    let stats =
        <wirebench_transports::tcp::Tcp as Transport>::connect(&endpoint(&control), &client_config()).await.unwrap();
    let own = [
        TransportKind::Tcp,
        TransportKind::Unix,
        TransportKind::Udp,
        TransportKind::Http2,
        TransportKind::Quic,
        TransportKind::Inproc,
    ];
    let mut session = 0x5e55_0000;
    for kind in own {
        let server = start(kind, config.clone(), dir.path()).await;
        for (workload, format) in [
            (Workload::Multiply, FormatId::Json),
            (Workload::Echo { size: 1024 }, FormatId::Protobuf),
            (Workload::Digest { records: 4 }, FormatId::Bincode),
        ] {
            session += 1;
            let data = dataset(workload);
            let n = 60;
            let reporter = Some(Reporter { server: &server, stats: &stats });
            let send = Send {
                endpoint: endpoint(&server),
                config: client_config(),
                session,
                n,
                format,
                data: &data,
                reporter,
            };
            let (sent, report) = kind.visit(send).await.unwrap_or_else(|e| panic!("{kind} {format} {workload}: {e}"));
            let report = report.unwrap();
            let request = ReportRequest { session, expected: sent, quiet_ms: 500, deadline_ms: 5000 };
            assert_eq!(report.delivered, sent, "{kind} {format} {workload}: every message counted");
            assert_eq!(report.errors, 0, "{kind} {format} {workload}: {:?}", report.first_error);
            // The even messages carried bins 0, 1 and 2 (seq % 3).
            let bins: Vec<(u32, u64)> = report.bins.iter().map(|b| (b.index, b.delivered)).collect();
            assert_eq!(bins, vec![(0, 10), (1, 10), (2, 10)], "{kind} {format} {workload}");
            assert_eq!(report.latency.len(), 30, "only messages in the window are timed");
            assert!(report.latency.min() > 0 && report.latency.max() < 10_000_000_000, "{kind}: one machine's clock");
            for bin in &report.bins {
                assert_eq!(bin.latency.as_ref().map(|h| h.len()), Some(10));
            }
            // Taken once.
            let again = ReportRequest { expected: 0, ..request };
            assert_eq!(self::report(kind, &server, &stats, again).await.delivered, 0);
        }
        server.shutdown().await;
    }
}

/// The report of `request`: over the tcp control call, or from the inproc
/// server's handler (it runs in this process, with no socket).
async fn report(
    kind: TransportKind,
    server: &wirebench_transports::Server,
    stats: &StreamClient<tokio::net::TcpStream>,
    request: ReportRequest,
) -> OnewayReport {
    if kind == TransportKind::Inproc {
        return server.endpoint().inproc.as_ref().unwrap().oneway_sessions().report(request).await;
    }
    stats.oneway_report(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_are_counted_with_the_first_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig::default();
    let server = start(TransportKind::Tcp, config.clone(), dir.path()).await;
    let client =
        <wirebench_transports::tcp::Tcp as Transport>::connect(&endpoint(&server), &client_config()).await.unwrap();
    let method = Workload::Multiply.method();
    for seq in 1..=5 {
        let meta = OnewayMeta { session: 77, seq, sent_ns: monotonic_ns(), bin: 0 };
        let body: &[u8] = if seq == 3 { b"{not json" } else { br#"{"a":6,"b":7}"# };
        client.send_oneway(method, FormatId::Json, meta, body).await.unwrap();
    }
    let report = client
        .oneway_report(ReportRequest { session: 77, expected: 5, quiet_ms: 500, deadline_ms: 5000 })
        .await
        .unwrap();
    assert_eq!((report.delivered, report.errors), (5, 1));
    assert!(report.first_error.unwrap().contains("json"), "the decoder's reason");
    // The connection still serves calls after oneway messages.
    let data = dataset(Workload::Multiply);
    call_checked::<wirebench_formats::format::json::Json, _>(&client, &data).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_says_why_it_has_no_oneway_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Grpc, ServerConfig::default(), dir.path()).await;
    let data = dataset(Workload::Multiply);
    let send = Send {
        endpoint: endpoint(&server),
        config: client_config(),
        session: 1,
        n: 1,
        format: FormatId::Protobuf,
        data: &data,
        reporter: None,
    };
    match TransportKind::Grpc.visit(send).await {
        Err(CallError::Unsupported(why)) => assert!(why.contains("gRPC has no oneway"), "{why}"),
        other => panic!("expected unsupported, got {other:?}"),
    }
    server.shutdown().await;
}
