//! Server streaming on tcp, unix, quic, http2 and the stock tonic row:
//! one request, K replies, each decoded and checked, in order, with many
//! streams and plain calls in flight on one connection at once. A stream
//! abandoned half way leaves the connection usable; a reply count out of
//! range is refused with a status; udp and inproc say why they cannot.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;

use common::*;
use wirebench_formats::{Code, FormatId, Workload};
use wirebench_transports::{
    CallError, Client, ClientConfig, Endpoint, Framework, FrameworkClient, MAX_STREAM_REPLIES, ServerConfig, Transport,
    TransportKind, TransportVisitor,
};

type Boxed = Pin<Box<dyn Future<Output = ()>>>;

fn workloads() -> [Workload; 4] {
    [
        Workload::Multiply,
        Workload::Echo { size: 16 },
        Workload::Echo { size: 100_000 },
        Workload::Digest { records: 50 },
    ]
}

struct Streams {
    endpoint: Endpoint,
    config: ClientConfig,
}

impl TransportVisitor for Streams {
    type Output = Boxed;

    fn visit<T: Transport>(self) -> Boxed {
        Box::pin(async move {
            let client = T::connect(&self.endpoint, &self.config).await.unwrap();
            for workload in workloads() {
                let data = dataset(workload);
                for format in [FormatId::Json, FormatId::Protobuf, FormatId::Capnp] {
                    let request = encode(format, &data);
                    for replies in [1, 16] {
                        let mut seen = 0;
                        let got = client
                            .call_stream(workload.method(), format, &request, replies, |body| {
                                check(format, &data, &body);
                                seen += 1;
                                ControlFlow::Continue(())
                            })
                            .await
                            .unwrap_or_else(|e| panic!("{} {format} {workload}: {e}", T::KIND));
                        assert_eq!((got, seen), (replies, replies), "{} {format} {workload}", T::KIND);
                    }
                }
            }
            // Many streams and plain calls at once on one connection.
            let data = dataset(Workload::Echo { size: 1024 });
            let request = encode(FormatId::Bincode, &data);
            let streams = (0..8).map(|_| {
                client.call_stream(data.workload.method(), FormatId::Bincode, &request, 32, |body| {
                    check(FormatId::Bincode, &data, &body);
                    ControlFlow::Continue(())
                })
            });
            let calls = (0..8).map(|_| client.call(data.workload.method(), FormatId::Bincode, &request));
            let (streamed, called) = tokio::join!(futures_join(streams.collect()), futures_join(calls.collect()));
            assert!(streamed.iter().all(|r| matches!(r, Ok(32))), "{}: {streamed:?}", T::KIND);
            for reply in called {
                check(FormatId::Bincode, &data, &reply.unwrap());
            }
            // Abandoned after 3 of 100: the connection goes on.
            let mut seen = 0;
            let got = client
                .call_stream(data.workload.method(), FormatId::Bincode, &request, 100, |_| {
                    seen += 1;
                    if seen == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                })
                .await
                .unwrap();
            assert_eq!(got, 3);
            check(
                FormatId::Bincode,
                &data,
                &client.call(data.workload.method(), FormatId::Bincode, &request).await.unwrap(),
            );
            // Out of range: a status, not a hang.
            for replies in [0, MAX_STREAM_REPLIES + 1] {
                match client
                    .call_stream(data.workload.method(), FormatId::Bincode, &request, replies, |_| {
                        ControlFlow::Continue(())
                    })
                    .await
                {
                    Err(CallError::Status(s)) => assert_eq!(s.code, Code::InvalidArgument, "{}: {s}", T::KIND),
                    other => panic!("{}: {replies} replies gave {other:?}", T::KIND),
                }
            }
            check(
                FormatId::Bincode,
                &data,
                &client.call(data.workload.method(), FormatId::Bincode, &request).await.unwrap(),
            );
        })
    }

    fn visit_framework<F: Framework>(self) -> Boxed {
        Box::pin(async move {
            let client = F::connect(&self.endpoint, &self.config).await.unwrap();
            for workload in workloads() {
                let data = dataset(workload);
                let request = F::prepare(&model_request(&data));
                let mut seen = 0;
                let got = client
                    .call_stream(&request, 16, |reply| {
                        check_reply(&data, &reply);
                        seen += 1;
                        ControlFlow::Continue(())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{} {workload}: {e}", F::KIND));
                assert_eq!((got, seen), (16, 16));
            }
        })
    }
}

/// Awaits every future of `all` together, in order.
async fn futures_join<F: Future>(all: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<Pin<Box<F>>> = all.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|v| v.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_streaming_transport_delivers_k_checked_replies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for kind in
        [TransportKind::Tcp, TransportKind::Unix, TransportKind::Quic, TransportKind::Http2, TransportKind::Grpc]
    {
        let server = start(kind, ServerConfig::default(), dir.path()).await;
        kind.visit(Streams { endpoint: endpoint(&server), config: client_config() }).await;
        server.shutdown().await;
    }
}

struct Refuses {
    endpoint: Endpoint,
}

impl TransportVisitor for Refuses {
    type Output = Pin<Box<dyn Future<Output = String>>>;
    fn visit<T: Transport>(self) -> Self::Output {
        Box::pin(async move {
            let client = T::connect(&self.endpoint, &client_config()).await.unwrap();
            match client
                .call_stream(wirebench_formats::Method::Multiply, FormatId::Json, b"{}", 4, |_| {
                    ControlFlow::Continue(())
                })
                .await
            {
                Err(CallError::Unsupported(why)) => why,
                other => panic!("{}: expected unsupported, got {other:?}", T::KIND),
            }
        })
    }
    fn visit_framework<F: Framework>(self) -> Self::Output {
        Box::pin(async { unreachable!("frameworks are not asked") })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_inproc_say_why_they_cannot_stream() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [TransportKind::Udp, TransportKind::Inproc] {
        let server = start(kind, ServerConfig::default(), dir.path()).await;
        let why = kind.visit(Refuses { endpoint: endpoint(&server) }).await;
        assert!(!why.is_empty(), "{kind}");
        if kind == TransportKind::Udp {
            assert!(why.contains("flow control"), "{why}");
        }
        server.shutdown().await;
    }
}
