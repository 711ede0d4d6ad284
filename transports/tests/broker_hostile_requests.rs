//! Hostile bytes published to a broker's request subject never crash the
//! responder: garbage bodies get an error status back, a raw request whose
//! length lies is dropped (its caller times out), requests with missing or
//! nonsense headers get an error status; and the responder goes on serving.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::broker;
use common::*;
use wirebench_formats::{Code, FormatId, Method, Workload};
use wirebench_transports::{CallError, Client, ClientConfig, RawClient, RawShape, ServerConfig, Transport};

async fn hostile<T: Transport>() {
    let Some(broker) = broker::start(T::KIND).await else { return };
    let responder = broker.serve(ServerConfig::default()).await;
    let config = ClientConfig { timeout: Duration::from_millis(700), ..client_config() };
    let client = T::connect(&broker.endpoint(), &config).await.unwrap();
    // Garbage in every format, for every method: an error status each.
    let garbage: [&[u8]; 3] = [b"\xff\xfe\xfd garbage", &[0u8; 64], b"{\"a\": 1, \"b\":"];
    for &format in FormatId::ALL {
        for method in [Method::Multiply, Method::Echo, Method::Digest] {
            for bytes in garbage {
                match client.call(method, format, bytes).await {
                    Err(CallError::Status(s)) => assert_ne!(s.code, Code::Ok, "{}", T::KIND),
                    // Some formats read some garbage as a valid message; the
                    // reply is then a real one.
                    Ok(_) => {}
                    Err(e) => panic!("{} {format} {method:?}: {e}", T::KIND),
                }
            }
        }
    }
    // A raw request whose reply length lies (4 GiB): dropped, not answered.
    let lying = RawShape { request: 16, reply: u32::MAX as usize };
    let raw = T::connect_raw(&broker.endpoint(), &config, lying).await.unwrap();
    match raw.ping().await {
        Err(CallError::Timeout(_)) => {}
        other => panic!("{}: a lying raw length was answered: {other:?}", T::KIND),
    }
    // Still serving, on a fresh client and on the old one.
    let data = dataset(Workload::Echo { size: 1024 });
    call_checked::<wirebench_formats::format::json::Json, _>(&client, &data).await.unwrap();
    let fresh = T::connect(&broker.endpoint(), &client_config()).await.unwrap();
    call_checked::<wirebench_formats::format::protobuf::Protobuf, _>(&fresh, &data).await.unwrap();
    responder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_responder_survives_hostile_requests() {
    hostile::<wirebench_transports::broker::nats::Nats>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_responder_survives_hostile_requests() {
    hostile::<wirebench_transports::broker::rabbitmq::Rabbitmq>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_responder_survives_hostile_requests() {
    hostile::<wirebench_transports::broker::redis::Redis>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_responder_survives_hostile_requests() {
    hostile::<wirebench_transports::broker::mqtt::Mqtt>().await;
}

/// Below our client, with NATS's own: requests with no headers, nonsense
/// headers, or no reply subject at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_requests_with_bad_headers_get_an_error_status() {
    use wirebench_transports::broker::nats::{CALL_HEADER, FORMAT_HEADER, STATUS_HEADER, SUBJECT};
    let Some(broker) = broker::start(wirebench_transports::TransportKind::Nats).await else { return };
    let responder = broker.serve(ServerConfig::default()).await;
    let nats = async_nats::connect(format!("nats://{}", broker.broker.address())).await.unwrap();
    // No reply subject: nothing to answer, nothing breaks.
    nats.publish(SUBJECT, Bytes::from_static(b"fire and forget")).await.unwrap();
    let status = |m: &async_nats::Message| {
        m.headers.as_ref().and_then(|h| h.get(STATUS_HEADER)).map(|v| v.as_str().to_owned()).unwrap()
    };
    let bare = nats.request(SUBJECT, Bytes::from_static(b"no headers")).await.unwrap();
    assert_eq!(status(&bare), u32::from(Code::InvalidArgument.value()).to_string());
    for (call, format) in [("99", "1"), ("1", "250"), ("x", "1"), ("1", "-1"), ("300", "1")] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CALL_HEADER, call);
        headers.insert(FORMAT_HEADER, format);
        let reply = nats.request_with_headers(SUBJECT, headers, Bytes::from_static(b"{}")).await.unwrap();
        assert_ne!(status(&reply), "0", "call {call} format {format}");
    }
    responder.shutdown().await;
}
