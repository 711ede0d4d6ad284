//! A responder that subscribes late does not make the first calls
//! vanish: through every broker, calls made before any responder exists
//! either wait in the broker and are served once it subscribes (RabbitMQ's
//! queue, Redis's stream), or fail visibly (NATS answers "no responders",
//! MQTT discards and the call times out). Each call ends one way or the
//! other within its deadline, and the same client works once the responder
//! is there.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::broker;
use common::*;
use wirebench_formats::{Code, FormatId, Workload};
use wirebench_transports::{CallError, Client, ClientConfig, ServerConfig, Transport, TransportKind};

const EARLY: usize = 8;

async fn late_responder<T: Transport>() {
    let Some(broker) = broker::start(T::KIND).await else { return };
    let config = ClientConfig { timeout: Duration::from_secs(3), ..client_config() };
    let client = std::sync::Arc::new(T::connect(&broker.endpoint(), &config).await.unwrap());
    let data = dataset(Workload::Multiply);
    let request = encode(FormatId::Json, &data);
    let mut early = tokio::task::JoinSet::new();
    for _ in 0..EARLY {
        let (client, request) = (client.clone(), request.clone());
        early.spawn(async move { client.call(data.workload.method(), FormatId::Json, &request).await });
    }
    // The calls are out before anyone serves them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let responder = broker.serve(ServerConfig::default()).await;
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    while let Some(outcome) = early.join_next().await {
        outcomes.push(outcome.unwrap());
    }
    // Every call ended, within its deadline (and a margin for the machine).
    assert_eq!(outcomes.len(), EARLY);
    assert!(started.elapsed() < Duration::from_secs(10), "{}: calls hung", T::KIND);
    for outcome in &outcomes {
        match (T::KIND, outcome) {
            (_, Ok(reply)) => check(FormatId::Json, &data, reply),
            (TransportKind::Nats, Err(CallError::Status(s))) => assert_eq!(s.code, Code::Unavailable, "{s}"),
            (TransportKind::Mqtt, Err(CallError::Timeout(_))) => {}
            (kind, Err(e)) => panic!("{kind}: an early call failed: {e}"),
        }
    }
    if matches!(T::KIND, TransportKind::Rabbitmq | TransportKind::Redis) {
        assert!(outcomes.iter().all(Result::is_ok), "{}: requests wait in the broker: {outcomes:?}", T::KIND);
    }
    // Served from now on, on the same client.
    call_checked::<wirebench_formats::format::json::Json, _>(&*client, &data).await.unwrap();
    responder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_early_calls_fail_visibly() {
    late_responder::<wirebench_transports::broker::nats::Nats>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_early_calls_wait_in_the_queue() {
    late_responder::<wirebench_transports::broker::rabbitmq::Rabbitmq>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_early_calls_wait_in_the_stream() {
    late_responder::<wirebench_transports::broker::redis::Redis>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_early_calls_time_out_visibly() {
    late_responder::<wirebench_transports::broker::mqtt::Mqtt>().await;
}
