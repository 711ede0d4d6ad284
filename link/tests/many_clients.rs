//! Several client namespaces each reach the server at once, over UDP and
//! TCP, from their own addresses, through their own pair of queues.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use wirebench_link::{Link, run_in_netns};

#[test]
fn every_client_reaches_the_server() {
    if !common::link_available() {
        return;
    }
    let clients = 4;
    let link = Link::up(&"rtt=4ms,rate=50mbit".parse().unwrap(), clients, 7).unwrap();
    let server_ip = link.server_addr();
    let listener = run_in_netns(link.server_netns(), || TcpListener::bind(SocketAddr::new(server_ip, 0))).unwrap();
    let tcp_addr = listener.local_addr().unwrap();
    let udp = run_in_netns(link.server_netns(), || UdpSocket::bind(SocketAddr::new(server_ip, 0))).unwrap();
    let udp_addr = udp.local_addr().unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // Each client sends a datagram naming itself.
    for i in 0..clients {
        let sock = run_in_netns(link.client_netns(i).unwrap(), || UdpSocket::bind("0.0.0.0:0")).unwrap();
        sock.send_to(format!("client {i}").as_bytes(), udp_addr).unwrap();
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..clients {
        let (n, from) = udp.recv_from(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap().to_owned();
        let i: usize = text.strip_prefix("client ").unwrap().parse().unwrap();
        assert_eq!(from.ip(), link.client_addr(i).unwrap(), "{text} came from {from}");
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, (0..clients).collect::<Vec<_>>());

    // All at once over TCP: each sends 200 KB and reads it back.
    let server = std::thread::spawn(move || {
        let mut peers = Vec::new();
        for _ in 0..clients {
            let (mut conn, peer) = listener.accept().unwrap();
            peers.push(peer.ip());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = conn.read(&mut buf).unwrap();
                    if n == 0 {
                        return;
                    }
                    conn.write_all(&buf[..n]).unwrap();
                }
            });
        }
        peers
    });
    let streams: Vec<TcpStream> = (0..clients)
        .map(|i| run_in_netns(link.client_netns(i).unwrap(), || TcpStream::connect(tcp_addr)).unwrap())
        .collect();
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..200_000u32).map(|k| (k as u8) ^ (i as u8)).collect();
                let mut reader = s.try_clone().unwrap();
                let expected = data.clone();
                let echo = std::thread::spawn(move || {
                    let mut got = vec![0u8; expected.len()];
                    reader.read_exact(&mut got).unwrap();
                    assert!(got == expected, "client {i} got other bytes back");
                });
                s.write_all(&data).unwrap();
                echo.join().unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut peers = server.join().unwrap();
    peers.sort();
    let mut expected: Vec<_> = (0..clients).map(|i| link.client_addr(i).unwrap()).collect();
    expected.sort();
    assert_eq!(peers, expected);

    // Every client's traffic went through its own queues.
    let stats = link.stats();
    for i in 0..clients {
        assert!(stats.up[i].forwarded_bytes > 200_000, "client {i} up: {:?}", stats.up[i]);
        assert!(stats.down[i].forwarded_bytes > 200_000, "client {i} down: {:?}", stats.down[i]);
    }
    assert_eq!(stats.unroutable, 0);
    assert_eq!(stats.oversize, 0);
}
