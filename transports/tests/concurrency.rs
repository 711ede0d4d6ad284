//! Many calls in flight on one connection (and over several): every call
//! gets its own reply, never another's.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use common::*;
use wirebench_formats::format::bincode::Bincode;
use wirebench_formats::{Batch, Format, Method, OwnedRequest, Reply};
use wirebench_transports::{
    ClientConfig, Endpoint, Family, Framework, FrameworkClient, ServerConfig, Transport, TransportKind,
    TransportVisitor,
};

const CALLS: usize = 300;

struct Flood {
    endpoint: Endpoint,
    config: ClientConfig,
}

impl TransportVisitor for Flood {
    type Output = Pin<Box<dyn Future<Output = ()>>>;
    fn visit<T: Transport>(self) -> Self::Output {
        Box::pin(async move {
            let client = Arc::new(T::connect(&self.endpoint, &self.config).await.unwrap());
            let mut calls = tokio::task::JoinSet::new();
            for i in 0..CALLS {
                let client = client.clone();
                calls.spawn(async move {
                    use wirebench_transports::Client;
                    let (request, want) = distinct(i);
                    let method = want.method();
                    let mut scratch = Vec::new();
                    let bytes = Bincode::encode_request(&mut scratch, &request).unwrap().to_vec();
                    let reply = client.call(method, Bincode::ID, &bytes).await.unwrap();
                    assert_eq!(Bincode::decode_reply(method, &reply).unwrap(), want, "call {i}");
                });
            }
            while let Some(done) = calls.join_next().await {
                done.unwrap();
            }
            use wirebench_transports::Client;
            assert_eq!(client.counters().late_replies, 0);
            let _ = Method::ALL;
        })
    }
    fn visit_framework<F: Framework>(self) -> Self::Output {
        Box::pin(async move {
            // A framework client need not be Send: its calls run together
            // on this thread.
            let client = std::rc::Rc::new(F::connect(&self.endpoint, &self.config).await.unwrap());
            let local = tokio::task::LocalSet::new();
            for i in 0..CALLS {
                let client = client.clone();
                local.spawn_local(async move {
                    let (request, want) = distinct(i);
                    let reply = client.call(&F::prepare(&request)).await.unwrap();
                    assert_eq!(reply, want, "{} call {i}", F::KIND);
                });
            }
            local.await;
        })
    }
}

/// Call `i`'s request and its only right reply: distinct, so a reply
/// delivered to the wrong caller cannot go unnoticed.
fn distinct(i: usize) -> (OwnedRequest<Batch>, Reply<'static>) {
    if i.is_multiple_of(2) {
        let a = i as i64 + 1;
        (OwnedRequest::<Batch>::Multiply { a, b: 1000 }, Reply::Multiply { product: a * 1000 })
    } else {
        let payload = format!("call {i} of {CALLS}").into_bytes();
        (OwnedRequest::Echo { payload: payload.clone() }, Reply::Echo { payload: payload.into() })
    }
}

async fn flood(kind: TransportKind, connections: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(kind, ServerConfig::default(), dir.path()).await;
    let config = ClientConfig { connections, ..client_config() };
    kind.visit(Flood { endpoint: endpoint(&server), config }).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_matched_on_every_transport() {
    for kind in [
        TransportKind::Tcp,
        TransportKind::Unix,
        TransportKind::Udp,
        TransportKind::Http2,
        TransportKind::Quic,
        TransportKind::Inproc,
    ] {
        flood(kind, 1).await;
        flood(kind, 3).await;
    }
}

/// Every stock framework, many calls in flight over its own client.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_calls_are_matched_on_every_framework() {
    // Inside a LocalSet, as a cell runs: a client that is not Send drives
    // its connection with spawn_local.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for &kind in TransportKind::ALL.iter().filter(|t| t.family() == Family::Framework) {
                flood(kind, 1).await;
                flood(kind, 2).await;
            }
        })
        .await;
}

/// The same on a single-threaded runtime, where the leader/follower reader
/// must hand over without a second thread to rescue it.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_calls_are_matched_on_one_thread() {
    for kind in [TransportKind::Tcp, TransportKind::Udp, TransportKind::Http2, TransportKind::Quic] {
        flood(kind, 1).await;
    }
}
