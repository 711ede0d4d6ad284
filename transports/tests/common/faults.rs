//! What the fault tests of the stock frameworks share: a server with a
//! small message limit, raw sockets to it, "the server closed this
//! connection" and "another client is still served", and this process's
//! resident memory.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use wirebench_formats::Workload;
use wirebench_transports::{Address, Framework, FrameworkClient, Server, ServerConfig, TransportKind};

use super::{check_reply, client_config, dataset, model_request};

/// The message limit of the servers under test.
pub const MAX_MESSAGE: usize = 1 << 20;

/// How long a read waits before the connection counts as kept open.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Starts `kind` on loopback with [`MAX_MESSAGE`].
pub async fn start_limited(kind: TransportKind) -> Server {
    let config = ServerConfig { max_message: MAX_MESSAGE, ..ServerConfig::default() };
    wirebench_transports::serve_kind(kind, &Address::Inet("127.0.0.1:0".parse().unwrap()), config).await.unwrap()
}

/// The server's IP address.
pub fn address(server: &Server) -> SocketAddr {
    match server.endpoint().address {
        Address::Inet(a) => a,
        ref other => panic!("not an IP address: {other}"),
    }
}

/// A blocking socket to the server, reads timing out after [`CLOSE_WAIT`].
pub fn socket(server: &Server) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(address(server)).unwrap();
    s.set_read_timeout(Some(CLOSE_WAIT)).unwrap();
    s
}

/// The server closed the connection: reads hit end of stream or a reset
/// (after whatever it wrote first).
pub fn assert_closed_sync(socket: &mut std::net::TcpStream, what: &str) {
    socket.set_read_timeout(Some(CLOSE_WAIT)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("{what}: the server kept the connection open")
            }
            Err(_) => return,
        }
    }
}

/// The same, on any tokio socket.
pub async fn assert_closed<S: AsyncRead + Unpin + ?Sized>(socket: &mut S, what: &str) {
    let mut buf = [0u8; 256];
    let outcome = tokio::time::timeout(CLOSE_WAIT, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "{what}: the server kept the connection open");
}

/// A well-behaved client of framework `F` on a fresh connection gets each
/// of `workloads` answered correctly, `rounds` times.
pub async fn assert_served_by<F: Framework>(server: &Server, workloads: &[Workload], rounds: usize) {
    let client = F::connect(server.endpoint(), &client_config()).await.unwrap();
    for _ in 0..rounds {
        for &workload in workloads {
            let data = dataset(workload);
            check_reply(&data, &client.call(&F::prepare(&model_request(&data))).await.unwrap());
        }
    }
}

/// Resident memory of this process (client, server and all), KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The same, bytes.
pub fn rss_bytes() -> usize {
    rss_kib() as usize * 1024
}
