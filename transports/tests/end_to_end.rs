//! Every transport, every format, every workload, end to end on loopback:
//! each reply decoded and checked. Plus every raw baseline.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::future::Future;
use std::pin::Pin;

use common::broker;
use common::*;
use wirebench_formats::{FormatId, Workload};
use wirebench_transports::udp::DEFAULT_MAX_DATAGRAM;
use wirebench_transports::{
    CallError, Client, ClientConfig, Endpoint, Family, Framework, FrameworkClient, RawClient, RawShape, ServerConfig,
    Transport, TransportKind, TransportVisitor,
};

fn workloads() -> Vec<Workload> {
    vec![
        Workload::Multiply,
        Workload::Echo { size: 16 },
        Workload::Echo { size: 1024 },
        Workload::Echo { size: 200_000 },
        Workload::Digest { records: 1 },
        Workload::Digest { records: 100 },
    ]
}

type Boxed = Pin<Box<dyn Future<Output = ()>>>;

struct EveryFormat {
    endpoint: Endpoint,
    config: ClientConfig,
}

impl TransportVisitor for EveryFormat {
    type Output = Boxed;
    fn visit<T: Transport>(self) -> Boxed {
        Box::pin(async move {
            let client = T::connect(&self.endpoint, &self.config).await.unwrap();
            let before = client.counters();
            for workload in workloads() {
                let data = dataset(workload);
                for &format in FormatId::ALL {
                    let request = encode(format, &data);
                    let result = client.call(workload.method(), format, &request).await;
                    let fits = 12 + request.len() <= DEFAULT_MAX_DATAGRAM;
                    match result {
                        Ok(reply) => check(format, &data, &reply),
                        // udp refuses what does not fit, before sending.
                        Err(CallError::TooLarge { size, limit, .. }) if T::KIND == TransportKind::Udp && !fits => {
                            assert_eq!((size, limit), (12 + request.len(), DEFAULT_MAX_DATAGRAM));
                        }
                        // ...and the server refuses replies that would not fit.
                        Err(CallError::Status(s))
                            if T::KIND == TransportKind::Udp
                                && s.code == wirebench_formats::Code::ResourceExhausted => {}
                        Err(e) => panic!("{} {format} {workload}: {e}", T::KIND),
                    }
                }
            }
            let used = client.counters().since(before);
            if T::KIND != TransportKind::Inproc && T::COUNTS_WIRE {
                assert!(used.bytes_sent > 0 && used.bytes_received > 0, "{}: no bytes counted: {used:?}", T::KIND);
            }
            assert_eq!(used.late_replies, 0);

            let mut shapes = vec![
                RawShape { request: 16, reply: 16 },
                RawShape { request: 1024, reply: 16 },
                RawShape { request: 16, reply: 1024 },
            ];
            if T::KIND != TransportKind::Udp {
                // Several HTTP/2 DATA frames and QUIC packets each way.
                shapes.push(RawShape { request: 100_000, reply: 300_000 });
            }
            for shape in shapes {
                let raw = T::connect_raw(&self.endpoint, &self.config, shape).await.unwrap();
                let before = raw.counters();
                for _ in 0..5 {
                    raw.ping().await.unwrap_or_else(|e| panic!("{} raw {shape:?}: {e}", T::KIND));
                }
                let used = raw.counters().since(before);
                if matches!(T::KIND, TransportKind::Tcp | TransportKind::Unix | TransportKind::Udp) {
                    // Exact: no framing beyond the transport's own.
                    assert_eq!(used.bytes_sent, 5 * shape.request as u64, "{}", T::KIND);
                    assert_eq!(used.bytes_received, 5 * shape.reply as u64, "{}", T::KIND);
                }
            }
        })
    }
    fn visit_framework<F: Framework>(self) -> Boxed {
        Box::pin(async move {
            let client = F::connect(&self.endpoint, &self.config).await.unwrap();
            let before = client.counters();
            for workload in workloads() {
                let data = dataset(workload);
                let reply = client
                    .call(&F::prepare(&model_request(&data)))
                    .await
                    .unwrap_or_else(|e| panic!("{} {workload}: {e}", F::KIND));
                check_reply(&data, &reply);
            }
            if let (Some(before), Some(after)) = (before, client.counters()) {
                let used = after.since(before);
                assert!(used.bytes_sent > 0 && used.bytes_received > 0, "{}: no bytes counted: {used:?}", F::KIND);
            }
        })
    }
}

async fn every_format(kind: TransportKind, server_config: ServerConfig, config: ClientConfig) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(kind, server_config, dir.path()).await;
    kind.visit(EveryFormat { endpoint: endpoint(&server), config }).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_carries_every_format_and_workload() {
    every_format(TransportKind::Tcp, ServerConfig::default(), client_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_carries_every_format_and_workload() {
    every_format(TransportKind::Unix, ServerConfig::default(), client_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_carries_every_format_and_workload_that_fits() {
    every_format(TransportKind::Udp, ServerConfig::default(), client_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_carries_every_format_and_workload() {
    every_format(TransportKind::Http2, ServerConfig::default(), client_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_carries_every_format_and_workload() {
    let tls = ServerConfig { tls: true, ..ServerConfig::default() };
    every_format(TransportKind::Http2, tls, ClientConfig { tls: true, ..client_config() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_carries_every_format_and_workload() {
    every_format(TransportKind::Quic, ServerConfig::default(), client_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inproc_carries_every_format_and_workload() {
    every_format(TransportKind::Inproc, ServerConfig::default(), client_config()).await;
}

/// Every stock framework of the registry: its own client, its own server,
/// every workload, each reply checked.
#[tokio::test(flavor = "current_thread")]
async fn every_framework_carries_every_workload_of_its_format() {
    let frameworks: Vec<TransportKind> =
        TransportKind::ALL.iter().copied().filter(|t| t.family() == Family::Framework).collect();
    assert!(frameworks.contains(&TransportKind::Grpc));
    // Inside a LocalSet, as a cell runs: a client that is not Send drives
    // its connection with spawn_local.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for kind in frameworks {
                let dir = tempfile::tempdir().unwrap();
                let server = start(kind, ServerConfig::default(), dir.path()).await;
                kind.visit(EveryFormat { endpoint: endpoint(&server), config: client_config() }).await;
                server.shutdown().await;
            }
        })
        .await;
}

/// A broker row: its daemon started as the harness starts it, the
/// responder connected to it, every format and workload and the raw floor
/// through it.
async fn every_format_through(kind: TransportKind) {
    let Some(broker) = broker::start(kind).await else { return };
    let responder = broker.serve(ServerConfig::default()).await;
    kind.visit(EveryFormat { endpoint: broker.endpoint(), config: client_config() }).await;
    responder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_carries_every_format_and_workload() {
    every_format_through(TransportKind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_carries_every_format_and_workload() {
    every_format_through(TransportKind::Rabbitmq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_carries_every_format_and_workload() {
    every_format_through(TransportKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_carries_every_format_and_workload() {
    every_format_through(TransportKind::Mqtt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagram_limit_is_configurable_up_to_65507() {
    let dir = tempfile::tempdir().unwrap();
    let big = ServerConfig { max_datagram: 65_507, ..ServerConfig::default() };
    let server = start(TransportKind::Udp, big, dir.path()).await;
    let config = ClientConfig { max_datagram: 65_507, ..client_config() };
    let client = wirebench_transports::udp::Udp::connect(&endpoint(&server), &config).await.unwrap();
    let data = dataset(Workload::Echo { size: 60_000 });
    call_checked::<wirebench_formats::format::bincode::Bincode, _>(&client, &data).await.unwrap();
    let too_big = ClientConfig { max_datagram: 65_508, ..client_config() };
    let err = wirebench_transports::udp::Udp::connect(&endpoint(&server), &too_big).await.unwrap_err();
    assert!(err.to_string().contains("65507"), "{err}");
}
