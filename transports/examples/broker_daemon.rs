//! Starts one broker daemon the way the harness does (throwaway directory,
//! free loopback port, readiness by a real handshake) and keeps it until
//! its standard input closes or it is interrupted, then stops it and
//! everything it spawned. `scripts/broker-interop.sh` uses it to give the
//! Python reference clients a broker and a `wirebench serve` responder.
//!
//! ```text
//! cargo run -p wirebench-transports --example broker_daemon -- nats [LOG]
//! ready nats 127.0.0.1:40123
//! ```

use std::io::Write;
use std::process::ExitCode;

use wirebench_transports::TransportKind;
use wirebench_transports::broker::{BrokerSettings, RunningBroker, StartOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: broker_daemon BROKER [LOG]  (BROKER: nats, rabbitmq, redis, mqtt)");
        return ExitCode::from(2);
    };
    let Some(info) = TransportKind::from_name(&name).and_then(|kind| kind.broker()) else {
        eprintln!("broker_daemon: {name:?} is not a broker (nats, rabbitmq, redis, mqtt)");
        return ExitCode::from(2);
    };
    let log = args.next().map_or_else(|| std::env::temp_dir().join(format!("wirebench-{name}.log")), Into::into);
    let options = StartOptions {
        settings: BrokerSettings { max_message: wirebench_transports::frame::DEFAULT_MAX_MESSAGE },
        cpus: None,
        log,
    };
    let broker = match RunningBroker::start(&info, &options).await {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("broker_daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready {name} {}", broker.address());
    if std::io::stdout().flush().is_err() {
        return ExitCode::FAILURE;
    }
    // Standard input closing is the script's way to say "stop"; a signal
    // is the other (dropping `broker` stops the daemon either way).
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("broker_daemon: cannot watch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(broker);
    // The blocking stdin reader may still be waiting: the runtime must not
    // wait for it on the way out.
    std::process::exit(0)
}
