//! Hostile bytes published to a broker's request subject never crash the
//! responder: garbage bodies get an error status back, a raw request whose
//! length lies is dropped (its caller times out), requests with missing or
//! nonsense headers get an error status, a stream request of garbage or
//! with a reply count out of range gets one error reply (not K); and the
//! responder goes on serving.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::ops::ControlFlow;
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
    // A stream of garbage: one error reply, never K of them.
    for bytes in garbage {
        match client.call_stream(Method::Multiply, FormatId::Json, bytes, 8, |_| ControlFlow::Continue(())).await {
            Err(CallError::Status(s)) => assert_eq!(s.code, Code::InvalidArgument, "{}", T::KIND),
            other => panic!("{}: a garbage stream request: {other:?}", T::KIND),
        }
    }
    // A valid stream after them: exactly its own replies, none left over.
    let multiply = dataset(Workload::Multiply);
    let request = encode(FormatId::Json, &multiply);
    let mut bodies = Vec::new();
    let got = client
        .call_stream(Method::Multiply, FormatId::Json, &request, 5, |b| {
            bodies.push(b);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    assert_eq!((got, bodies.len()), (5, 5), "{}", T::KIND);
    for body in &bodies {
        use wirebench_formats::Format;
        let reply = wirebench_formats::format::json::Json::decode_reply(Method::Multiply, body).unwrap();
        check_reply(&multiply, &reply);
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

/// Below our client, with NATS's own: stream requests whose reply count is
/// out of range or not a number get one error reply and nothing more; a
/// valid one gets its K replies, indexed 0 to K-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stream_requests_with_bad_counts_get_one_error_reply() {
    use futures_util::StreamExt;
    use wirebench_transports::broker::nats::{CALL_HEADER, FORMAT_HEADER, STATUS_HEADER, STREAM_HEADERS, SUBJECT};
    let Some(broker) = broker::start(wirebench_transports::TransportKind::Nats).await else { return };
    let responder = broker.serve(ServerConfig::default()).await;
    let nats = async_nats::connect(format!("nats://{}", broker.broker.address())).await.unwrap();
    let request = encode(FormatId::Json, &dataset(Workload::Multiply));
    let header = |m: &async_nats::Message, name: &str| {
        m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned())
    };
    for (count, replies) in [("0", 0), ("-1", 0), ("x", 0), ("1048577", 0), ("99999999999", 0), ("3", 3)] {
        let inbox = nats.new_inbox();
        let mut sub = nats.subscribe(inbox.clone()).await.unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CALL_HEADER, "1");
        headers.insert(FORMAT_HEADER, (FormatId::Json as u8).to_string().as_str());
        headers.insert(STREAM_HEADERS[0], count);
        nats.publish_with_reply_and_headers(SUBJECT, inbox, headers, Bytes::from(request.clone())).await.unwrap();
        let mut got = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
            got.push((header(&m, STATUS_HEADER), header(&m, STREAM_HEADERS[1])));
        }
        if replies == 0 {
            let refused = Some(u32::from(Code::InvalidArgument.value()).to_string());
            assert_eq!(got, vec![(refused, None)], "count {count:?}: one error reply, no index");
        } else {
            let want: Vec<_> = (0..replies).map(|i| (Some("0".to_owned()), Some(i.to_string()))).collect();
            assert_eq!(got, want, "count {count:?}");
        }
    }
    responder.shutdown().await;
}
