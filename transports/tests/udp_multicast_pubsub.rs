//! Publish/subscribe over udp multicast on loopback: every subscriber gets
//! every published message, intact, with its number and send time; topics
//! are kept apart. The transports with no broker or multicast say why they
//! cannot.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use wirebench_formats::{FormatId, Method, Workload};
use wirebench_transports::mode::monotonic_ns;
use wirebench_transports::udp::{Udp, multicast_group};
use wirebench_transports::{CallError, Client, PublishMeta, ServerConfig, Transport, TransportKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Udp, ServerConfig::default(), dir.path()).await;
    let topic = format!("wirebench.test.{}", std::process::id());
    let other = format!("{topic}.other");
    assert_ne!(multicast_group(&topic), multicast_group(&other));
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let client = Udp::connect(&endpoint(&server), &client_config()).await.unwrap();
        let subscription = client.subscribe(&topic).await.unwrap();
        subscribers.push((client, subscription));
    }
    let (_bystander, mut elsewhere) = {
        let c = Udp::connect(&endpoint(&server), &client_config()).await.unwrap();
        let s = c.subscribe(&other).await.unwrap();
        (c, s)
    };
    let publisher = Udp::connect(&endpoint(&server), &client_config()).await.unwrap();
    let data = dataset(Workload::Echo { size: 256 });
    let body = encode(FormatId::Protobuf, &data);
    let before = monotonic_ns();
    for seq in 1..=50u64 {
        let meta = PublishMeta { seq, sent_ns: monotonic_ns() };
        publisher.publish(&topic, Method::Echo, FormatId::Protobuf, meta, &body).await.unwrap();
        // Paced: loopback multicast does not lose what is not bursted.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    for (i, (_, subscription)) in subscribers.iter_mut().enumerate() {
        let mut seen = BTreeSet::new();
        while seen.len() < 50 {
            let d = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(d.body, body, "subscriber {i}: the bytes published");
            assert!(d.sent_ns >= before && d.sent_ns <= monotonic_ns());
            assert!(seen.insert(d.seq), "subscriber {i}: message {} twice", d.seq);
        }
        assert_eq!(seen, (1..=50).collect());
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(100), elsewhere.next()).await.is_err(),
        "another topic's subscriber got nothing"
    );
    assert!(publisher.counters().bytes_sent >= 50 * body.len() as u64);
    // A message over the datagram limit is refused before sending.
    let big = vec![0u8; 2000];
    let meta = PublishMeta { seq: 51, sent_ns: monotonic_ns() };
    assert!(matches!(
        publisher.publish(&topic, Method::Echo, FormatId::Protobuf, meta, &big).await,
        Err(CallError::TooLarge { .. })
    ));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_without_multicast_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(TransportKind::Tcp, ServerConfig::default(), dir.path()).await;
    let client = wirebench_transports::tcp::Tcp::connect(&endpoint(&server), &client_config()).await.unwrap();
    match client.subscribe("t").await {
        Err(CallError::Unsupported(why)) => assert!(why.contains("broker"), "{why}"),
        other => panic!("expected unsupported, got {other:?}"),
    }
    let meta = PublishMeta { seq: 1, sent_ns: 0 };
    assert!(matches!(
        client.publish("t", Method::Echo, FormatId::Json, meta, b"x").await,
        Err(CallError::Unsupported(_))
    ));
    server.shutdown().await;
}
