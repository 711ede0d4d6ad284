//! Message brokers: the third family of rows.
//!
//! A broker row carries any format, like wirebench's own transports, but
//! every message goes through a real broker process: the client publishes
//! the format's bytes, the responder (part of `wirebench serve`, connected
//! to the broker) serves them and publishes the reply. So a broker is a
//! [`Transport`] (its `serve` starts the responder against the broker at
//! `listen`, its clients connect to the broker) plus a [`Broker`]: how to
//! start the daemon from its Debian package on a free loopback port with a
//! throwaway configuration, and how to tell it is ready.
//!
//! One file per broker, implementing both, plus one line in the `brokers`
//! group of the registry in `lib.rs`. The lifecycle they share (finding the
//! binary, the throwaway directory, pinning, counting the daemon's CPU,
//! stopping it and everything it spawned on every exit path) lives here
//! once.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::{Transport, TransportError};

/// The daemon a broker row needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// The executable, looked up on `PATH` and in `/usr/sbin`.
    pub binary: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

impl Daemon {
    /// What to run to get it, for an `unsupported` cell's reason.
    pub fn install_hint(&self) -> String {
        format!("{} is not installed: apt-get install -y {}", self.binary, self.package)
    }
}

/// A broker transport's daemon.
pub trait Broker: Transport {
    /// Its daemon.
    const DAEMON: Daemon;

    /// Writes a throwaway configuration into `dir` (empty, owned by this
    /// run) and returns the command that starts the daemon at `binary`
    /// listening on `127.0.0.1:port` only.
    fn command(binary: &Path, dir: &Path, port: u16) -> Result<Command, TransportError>;

    /// Succeeds once a real client handshake with the broker at `address`
    /// succeeds (an open port is not enough: some brokers open theirs
    /// before they can serve).
    fn ready(address: SocketAddr) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// A broker's lifecycle as plain functions, so the harness can start any
/// broker of the registry without knowing its type.
#[derive(Clone, Copy, Debug)]
pub struct BrokerInfo {
    /// Its daemon.
    pub daemon: Daemon,
    /// [`Broker::command`].
    pub command: fn(&Path, &Path, u16) -> Result<Command, TransportError>,
}

impl BrokerInfo {
    /// The lifecycle of `B`.
    pub fn of<B: Broker>() -> BrokerInfo {
        BrokerInfo { daemon: B::DAEMON, command: B::command }
    }
}
