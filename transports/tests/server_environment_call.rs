//! The server-environment control call (0xF1) over tcp and unix: the
//! server describes this machine, the call is not counted as a call
//! served, and the connection goes on serving RPCs after it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use wirebench_transports::host::HostInfo;
use wirebench_transports::stream::StreamClient;
use wirebench_transports::tcp::Tcp;
use wirebench_transports::unix::Unix;
use wirebench_transports::{Address, Client, ClientConfig, FormatId, Method, ServerConfig, Transport};

async fn check<S: wirebench_transports::stream::SplitStream>(client: StreamClient<S>) {
    let before = client.server_stats().await.unwrap();
    let info = client.server_environment().await.unwrap();
    assert_eq!(info, HostInfo::capture(), "the server is on this machine");
    assert!(info.cores >= 1 && !info.version.is_empty());
    let after = client.server_stats().await.unwrap();
    assert_eq!(after.calls, before.calls, "control calls are not calls served");
    // The connection still serves: Multiply 6 * 7 in json.
    let reply = client.call(Method::Multiply, FormatId::Json, br#"{"a":6,"b":7}"#).await.unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("42"), "{reply:?}");
}

#[test]
fn tcp_and_unix_servers_describe_their_machine() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = ClientConfig::default();
        let tcp = Tcp::serve(
            &Address::parse(wirebench_transports::TransportKind::Tcp, "127.0.0.1:0").unwrap(),
            ServerConfig::default(),
        )
        .await
        .unwrap();
        check(Tcp::connect(tcp.endpoint(), &config).await.unwrap()).await;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env.sock");
        let unix = Unix::serve(&Address::Unix(path), ServerConfig::default()).await.unwrap();
        check(Unix::connect(unix.endpoint(), &config).await.unwrap()).await;
        tcp.shutdown().await;
        unix.shutdown().await;
    });
}
