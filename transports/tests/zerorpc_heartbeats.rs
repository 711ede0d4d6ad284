//! zerorpc's heartbeats (`_zpc_hb`), with a short period so the tests take
//! a second: a call held by a stalled server survives because the server
//! heartbeats it; a silent server is a lost remote; a server that
//! heartbeats but never answers runs into the call's deadline instead; and
//! our client heartbeats every call it keeps open, as zerorpc's does.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use wirebench_formats::{Batch, OwnedRequest, Reply};
use wirebench_transports::framework::zerorpc::{ClientOptions, ServeOptions, ZeroRpcClient, event, serve_with};
use wirebench_transports::{Address, CallError, ClientConfig, Endpoint, ServerConfig, Stall, TransportKind};

const PERIOD: Duration = Duration::from_millis(100);

fn multiply() -> OwnedRequest<Batch> {
    OwnedRequest::Multiply { a: 6, b: 7 }
}

async fn client(endpoint: &Endpoint, timeout: Duration) -> ZeroRpcClient {
    let config = ClientConfig { timeout, ..client_config() };
    ZeroRpcClient::connect(endpoint, &config, ClientOptions { heartbeat: PERIOD }).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_held_by_a_stalled_server_is_kept_alive_by_its_heartbeats() {
    // The server pauses for its first 1.5 s: fifteen periods, five times
    // what a client waits for a heartbeat before it gives up.
    let stall = Stall { every: Duration::from_secs(3600), duration: Duration::from_millis(1500) };
    let config = ServerConfig { stall: Some(stall), ..ServerConfig::default() };
    let options = ServeOptions { heartbeat: PERIOD, ..ServeOptions::default() };
    let server = serve_with(&Address::Inet("127.0.0.1:0".parse().unwrap()), config, options).await.unwrap();
    let client = client(server.endpoint(), Duration::from_secs(10)).await;
    let started = Instant::now();
    let reply = client.call(&multiply()).await.unwrap();
    assert_eq!(reply, Reply::Multiply { product: 42 });
    assert!(started.elapsed() >= Duration::from_millis(900), "the call was not held by the stall");

    // What the server sent meanwhile, seen by a raw DEALER: heartbeats on
    // the waiting channel, then the reply.
    let server2 = serve_with(
        &Address::Inet("127.0.0.1:0".parse().unwrap()),
        ServerConfig { stall: Some(stall), ..ServerConfig::default() },
        options,
    )
    .await
    .unwrap();
    let address = match server2.endpoint().address {
        Address::Inet(a) => a,
        _ => unreachable!(),
    };
    let names = tokio::task::spawn_blocking(move || {
        let dealer = zmq::Context::new().socket(zmq::DEALER).unwrap();
        dealer.set_linger(0).unwrap();
        dealer.set_rcvtimeo(5000).unwrap();
        dealer.connect(&format!("tcp://{address}")).unwrap();
        let mut request = Vec::new();
        event::write_head(&mut request, b"the channel", None, "multiply");
        request.extend_from_slice(&[0x91, 0x82, 0xa1, b'a', 0x06, 0xa1, b'b', 0x07]);
        dealer.send_multipart([&b""[..], &request], 0).unwrap();
        let mut names = Vec::new();
        loop {
            let parts = dealer
                .recv_multipart(0)
                .unwrap_or_else(|e| panic!("events until the reply: {e}: {names:?} from {address}"));
            let e = event::parse(parts.last().unwrap()).unwrap();
            assert_eq!(e.response_to, Some(&b"the channel"[..]));
            names.push(e.name.to_owned());
            if e.name != event::HEARTBEAT {
                return names;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(names.last().map(String::as_str), Some("OK"), "{names:?}");
    assert!(names.iter().filter(|n| *n == "_zpc_hb").count() >= 5, "{names:?}");
    server.shutdown().await;
    server2.shutdown().await;
}

/// A ROUTER of the test's own on a thread: it records every event it gets
/// for `run_for`, and heartbeats each request's channel every `beat` if
/// given, answering none.
/// Every event the mute server got: its name and the id it answers.
type Seen = Vec<(String, Vec<u8>)>;

fn mute_server(beat: Option<Duration>, run_for: Duration) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let router = zmq::Context::new().socket(zmq::ROUTER).unwrap();
    router.set_linger(0).unwrap();
    router.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = router.get_last_endpoint().unwrap().unwrap();
    let address: SocketAddr = endpoint.trim_start_matches("tcp://").parse().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        router.set_rcvtimeo(10).unwrap();
        let end = Instant::now() + run_for;
        let mut seen = Vec::new();
        let mut channels: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut next_beat = Instant::now();
        while Instant::now() < end {
            if let Ok(parts) = router.recv_multipart(0) {
                let e = event::parse(parts.last().unwrap()).unwrap();
                seen.push((e.name.to_owned(), e.response_to.unwrap_or_default().to_vec()));
                if e.response_to.is_none() {
                    channels.push((parts[0].clone(), e.message_id.unwrap().to_vec()));
                }
            }
            if let Some(beat) = beat
                && Instant::now() >= next_beat
            {
                next_beat = Instant::now() + beat;
                for (identity, channel) in &channels {
                    let mut hb = Vec::new();
                    event::write_heartbeat(&mut hb, b"server beat", channel);
                    router.send_multipart([&identity[..], &b""[..], &hb], 0).unwrap();
                }
            }
        }
        let _ = tx.send(seen);
    });
    (address, rx)
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_server_is_a_lost_remote_and_our_client_heartbeats_meanwhile() {
    let (address, seen) = mute_server(None, Duration::from_millis(1500));
    let endpoint = Endpoint::new(TransportKind::ZeroRpc, Address::Inet(address));
    let client = client(&endpoint, Duration::from_secs(10)).await;
    match client.call(&multiply()).await {
        Err(CallError::Closed(message)) => assert!(message.contains("lost remote"), "{message}"),
        other => panic!("a silent server gave {other:?}"),
    }
    drop(client);
    let seen = tokio::task::spawn_blocking(move || seen.recv().unwrap()).await.unwrap();
    let (request, channel) = (&seen[0].0, seen[0].1.clone());
    assert_eq!(request, "multiply");
    assert!(channel.is_empty(), "a request opens its channel");
    let beats = seen.iter().filter(|(name, _)| name == "_zpc_hb").count();
    assert!(beats >= 2, "our client sent {beats} heartbeats: {seen:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_that_heartbeats_but_never_answers_runs_into_the_deadline() {
    let (address, _seen) = mute_server(Some(Duration::from_millis(30)), Duration::from_secs(2));
    let endpoint = Endpoint::new(TransportKind::ZeroRpc, Address::Inet(address));
    // The deadline is ten periods away: without the server's heartbeats
    // the call would end after three as a lost remote.
    let client = client(&endpoint, Duration::from_secs(1)).await;
    match client.call(&multiply()).await {
        Err(CallError::Timeout(t)) => assert_eq!(t, Duration::from_secs(1)),
        other => panic!("a heartbeating server that never answers gave {other:?}"),
    }
}
