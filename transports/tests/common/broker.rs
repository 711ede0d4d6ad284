//! Starting a real broker daemon for a test, as the harness does.

use std::time::Duration;

use wirebench_transports::broker::{BrokerError, BrokerSettings, RunningBroker, StartOptions};
use wirebench_transports::{Address, Endpoint, Server, ServerConfig, TransportKind};

/// Whether a missing broker fails the test (`WIREBENCH_REQUIRE_BROKERS=1`,
/// as CI sets it) instead of skipping it.
pub fn required() -> bool {
    std::env::var_os("WIREBENCH_REQUIRE_BROKERS").is_some_and(|v| v == "1")
}

/// A started broker and the directory of its log.
pub struct TestBroker {
    pub broker: RunningBroker,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// The broker's endpoint, for clients.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.broker.info().kind, Address::Inet(self.broker.address()))
    }

    /// Starts the responder against it.
    pub async fn serve(&self, config: ServerConfig) -> Server {
        let kind = self.broker.info().kind;
        wirebench_transports::serve_kind(kind, &Address::Inet(self.broker.address()), config)
            .await
            .unwrap_or_else(|e| panic!("{kind} responder: {e}; broker log: {}", self.broker.log_tail()))
    }
}

/// Starts `kind`'s daemon with `max_message`, or says `skipped` and
/// returns `None` when it is not installed (unless required).
pub async fn start_with(kind: TransportKind, max_message: usize) -> Option<TestBroker> {
    let info = kind.broker().unwrap_or_else(|| panic!("{kind} is not a broker"));
    let dir = tempfile::tempdir().unwrap();
    let options = StartOptions {
        settings: BrokerSettings { max_message },
        cpus: None,
        log: dir.path().join(format!("{kind}.log")),
    };
    match RunningBroker::start(&info, &options).await {
        Ok(broker) => Some(TestBroker { broker, dir }),
        Err(BrokerError::NotInstalled(hint)) if !required() => {
            eprintln!("skipped: {hint}");
            None
        }
        Err(e) => panic!("{kind}: {e}"),
    }
}

/// Starts `kind`'s daemon with the default message limit.
pub async fn start(kind: TransportKind) -> Option<TestBroker> {
    start_with(kind, wirebench_transports::frame::DEFAULT_MAX_MESSAGE).await
}

/// A short deadline for broker tests.
pub const DEADLINE: Duration = Duration::from_secs(10);
