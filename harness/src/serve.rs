//! `wirebench serve`: serves every format on each named transport until
//! SIGINT or SIGTERM, printing one line per bound socket:
//! `listening <transport> <address>` (with `#sha256:<pin>` for TLS).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use wirebench_formats::Fault;
use wirebench_transports::{Address, ServerConfig, Stall, TransportKind};

use crate::affinity;

/// What to serve and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `(transport, listen address)` pairs.
    pub listen: Vec<(TransportKind, String)>,
    /// Server settings (limits, TLS, test faults).
    pub config: ServerConfig,
    /// Runtime worker threads (default: one per usable CPU).
    pub worker_threads: Option<usize>,
    /// Pin the process to these CPUs.
    pub cpus: Option<Vec<usize>>,
    /// Test-only: abort the process after this long, to simulate a crash.
    pub crash_after: Option<Duration>,
}

/// Parses `50ms/500ms` (pause / period).
pub fn parse_stall(s: &str) -> anyhow::Result<Stall> {
    let (pause, every) = s.split_once('/').context("a stall is PAUSE/PERIOD, e.g. 50ms/500ms")?;
    let stall = Stall { duration: crate::plan::parse_duration(pause)?, every: crate::plan::parse_duration(every)? };
    if stall.every.is_zero() || stall.duration > stall.every {
        bail!("a stall's pause must be at most its period: {s}");
    }
    Ok(stall)
}

/// Parses `10us` or `10us:json,bincode`: a busy-wait per call, for every
/// format or the ones named.
pub fn parse_inject(s: &str) -> Result<wirebench_transports::Inject, String> {
    let (delay, formats) = match s.split_once(':') {
        Some((delay, formats)) => (delay, Some(formats)),
        None => (s, None),
    };
    let delay = crate::limits::Span { min: std::time::Duration::from_nanos(1), max: std::time::Duration::from_secs(1) }
        .parse(delay)?;
    let formats = formats
        .map(|f| f.split(',').map(|name| name.trim().parse::<wirebench_formats::FormatId>()).collect())
        .transpose()?;
    Ok(wirebench_transports::Inject { delay, formats })
}

/// Parses a test fault name.
pub fn parse_fault(s: &str) -> anyhow::Result<Fault> {
    match s {
        "wrong-replies" => Ok(Fault::WrongReplies),
        "none" => Ok(Fault::None),
        other => bail!("unknown fault {other:?}: expected wrong-replies"),
    }
}

/// Runs the server until a signal.
pub fn serve(options: ServeOptions) -> anyhow::Result<()> {
    if options.listen.is_empty() {
        bail!("nothing to serve: give --transport T [--listen ADDR] at least once");
    }
    if let Some(cpus) = &options.cpus {
        affinity::pin_current_thread(cpus).context("cannot pin the server")?;
    }
    let workers = options
        .worker_threads
        .or(options.cpus.as_ref().map(Vec::len))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    runtime.block_on(async {
        let mut servers = Vec::new();
        for (kind, listen) in &options.listen {
            if *kind == TransportKind::Inproc {
                bail!("inproc has no socket to serve: it runs inside `wirebench run`");
            }
            let address = Address::parse(*kind, listen).map_err(anyhow::Error::msg)?;
            let server = wirebench_transports::serve_kind(*kind, &address, options.config.clone())
                .await
                .with_context(|| format!("cannot serve {kind} on {listen}"))?;
            println!("listening {kind} {}", server.endpoint());
            servers.push(server);
        }
        std::io::stdout().flush().context("stdout")?;
        if let Some(after) = options.crash_after {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                std::process::abort();
            });
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        for server in servers {
            server.shutdown().await;
        }
        Ok(())
    })
}
