//! `enter_netns` moves only the calling thread (and the threads it starts
//! meanwhile), and its guard moves it back; sockets made inside keep the
//! namespace; `command_in_netns` starts a child process inside one.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;

use wirebench_link::{Link, TUN_NAME, command_in_netns, enter_netns};

fn my_netns() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

#[test]
fn a_guard_moves_the_thread_and_back() {
    if !common::link_available() {
        return;
    }
    let link = Link::up(&"rtt=1ms".parse().unwrap(), 1, 1).unwrap();
    let home = my_netns();
    // A thread started before the move, asked while this one is inside.
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let (tell, told) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        asked.recv().unwrap();
        tell.send(my_netns()).unwrap();
    });
    let guard = enter_netns(link.server_netns()).unwrap();
    let inside = my_netns();
    assert_ne!(inside, home);
    ask.send(()).unwrap();
    assert_eq!(told.recv().unwrap(), home, "another thread moved too");
    other.join().unwrap();
    // A thread started from inside inherits the namespace (clone copies it).
    assert_eq!(std::thread::spawn(my_netns).join().unwrap(), inside);
    // A socket made here binds an address that exists only here.
    let sock = UdpSocket::bind(SocketAddr::new(link.server_addr(), 0)).unwrap();
    drop(guard);
    assert_eq!(my_netns(), home);
    assert!(UdpSocket::bind(SocketAddr::new(link.server_addr(), 0)).is_err(), "the address is not ours out here");
    assert_eq!(sock.local_addr().unwrap().ip(), link.server_addr());
    // leave() reports instead of aborting.
    let guard = enter_netns(link.client_netns(0).unwrap()).unwrap();
    assert_ne!(my_netns(), home);
    guard.leave().unwrap();
    assert_eq!(my_netns(), home);
    // A namespace that does not exist is an error, and no move.
    assert!(enter_netns(std::path::Path::new("/run/netns/wirebench-no-such-netns")).is_err());
    assert_eq!(my_netns(), home);
}

#[test]
fn a_child_process_starts_inside() {
    if !common::link_available() {
        return;
    }
    let link = Link::up(&"rtt=1ms".parse().unwrap(), 2, 1).unwrap();
    for i in 0..2 {
        let mut cmd = Command::new("ip");
        cmd.args(["-o", "-4", "addr", "show", "dev", TUN_NAME]);
        command_in_netns(&mut cmd, link.client_netns(i).unwrap()).unwrap();
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("inet {}/32", link.client_addr(i).unwrap())), "{text}");
    }
    let mut cmd = Command::new("true");
    assert!(command_in_netns(&mut cmd, std::path::Path::new("/run/netns/wirebench-no-such-netns")).is_err());
}
