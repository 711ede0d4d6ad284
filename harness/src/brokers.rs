//! The broker daemons of a run: one per broker row of the matrix, started
//! before the server process (which then serves `--transport nats --listen
//! <the broker's address>`), pinned to the server's CPUs, checked between
//! cells, replaced when one died, and stopped with the run.
//!
//! A broker row whose daemon is not installed has its cells `unsupported`
//! with the install command as the reason; one that is installed but will
//! not start has them `failed` with the daemon's own words. `--connect
//! nats=HOST:PORT` (any broker) uses an existing broker instead: nothing is
//! started for it, and its CPU is not ours to count.

use std::collections::BTreeMap;
use std::path::Path;

use wirebench_transports::broker::daemon::{TreeCpu, tree_cpu};
use wirebench_transports::broker::{BrokerError, BrokerSettings, RunningBroker, StartOptions};
use wirebench_transports::cpu::CpuTime;
use wirebench_transports::{Endpoint, Family, TransportKind};

/// Where a broker row's broker is.
#[derive(Debug)]
enum Slot {
    /// Started by this run.
    Running(RunningBroker),
    /// An existing broker (`--connect`).
    External(Endpoint),
    /// Not installed: its cells are unsupported, with this reason.
    Missing(String),
    /// Installed, but it did not start: its cells fail, with this reason.
    Broken(String),
}

/// What a cell of a broker row cannot do without.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// Unsupported, with the reason.
    Unsupported(String),
    /// Failed, with the reason.
    Failed(String),
}

/// Where a broker cell's broker CPU comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerCpuSource {
    /// Not a broker cell.
    None,
    /// The daemon's process tree, rooted at these pids.
    Tree(Vec<u32>),
    /// A broker this run does not own; the reason.
    Unavailable(String),
}

impl BrokerCpuSource {
    /// The tree's CPU now, if this source has one.
    pub fn read(&self) -> Option<TreeCpu> {
        match self {
            BrokerCpuSource::Tree(roots) => tree_cpu(roots),
            _ => None,
        }
    }

    /// How the figure is measured (or why there is none), for the cell;
    /// `None` for cells of other rows.
    pub fn describe(&self, processes: Option<usize>) -> Option<String> {
        match self {
            BrokerCpuSource::None => None,
            BrokerCpuSource::Tree(_) => Some(match processes {
                Some(n) => format!(
                    "broker process tree ({n} processes), /proc/PID/stat utime+stime with reaped children, {} ticks/s",
                    wirebench_transports::broker::daemon::clock_ticks()
                ),
                None => "unavailable: the broker's processes were gone at the window's edge".into(),
            }),
            BrokerCpuSource::Unavailable(why) => Some(format!("unavailable: {why}")),
        }
    }
}

/// The difference of two tree readings.
pub fn tree_since(now: TreeCpu, then: TreeCpu) -> CpuTime {
    now.cpu.since(then.cpu)
}

/// The brokers of a run.
#[derive(Debug)]
pub struct Brokers {
    slots: BTreeMap<TransportKind, Slot>,
    settings: BrokerSettings,
    cpus: Option<Vec<usize>>,
    log_dir: std::path::PathBuf,
    /// Daemons started so far (names the log of each start).
    starts: usize,
}

/// The broker rows among `transports`.
pub fn broker_rows(transports: &[TransportKind]) -> Vec<TransportKind> {
    transports.iter().copied().filter(|t| t.family() == Family::Broker).collect()
}

impl Brokers {
    /// Starts a daemon for each broker row of `transports` that `external`
    /// does not name, with the run's message limit, pinned to `cpus`; logs
    /// go to `out_dir/brokers/`.
    pub fn start(
        transports: &[TransportKind],
        external: &[(TransportKind, Endpoint)],
        max_message: usize,
        cpus: Option<Vec<usize>>,
        out_dir: &Path,
    ) -> Brokers {
        let mut brokers = Brokers {
            slots: BTreeMap::new(),
            settings: BrokerSettings { max_message },
            cpus,
            log_dir: out_dir.join("brokers"),
            starts: 0,
        };
        for kind in broker_rows(transports) {
            let slot = match external.iter().find(|(k, _)| *k == kind) {
                Some((_, endpoint)) => Slot::External(endpoint.clone()),
                None => brokers.launch(kind),
            };
            brokers.slots.insert(kind, slot);
        }
        brokers
    }

    fn launch(&mut self, kind: TransportKind) -> Slot {
        let Some(info) = kind.broker() else { return Slot::Broken(format!("{kind} is not a broker")) };
        self.starts += 1;
        let options = StartOptions {
            settings: self.settings,
            cpus: self.cpus.clone(),
            log: self.log_dir.join(format!("{kind}-{}.log", self.starts)),
        };
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return Slot::Broken(format!("{kind}: cannot start a runtime to wait for the broker: {e}")),
        };
        match runtime.block_on(RunningBroker::start(&info, &options)) {
            Ok(running) => {
                tracing::info!("{kind}: {} ready at {}", info.daemon.binary, running.address());
                Slot::Running(running)
            }
            Err(BrokerError::NotInstalled(hint)) => Slot::Missing(hint),
            Err(e) => Slot::Broken(e.to_string()),
        }
    }

    /// The address the responder of `kind` connects to, if it has one.
    pub fn listen(&self, kind: TransportKind) -> Option<String> {
        match self.slots.get(&kind)? {
            Slot::Running(r) => Some(r.address().to_string()),
            Slot::External(e) => Some(e.address.to_string()),
            Slot::Missing(_) | Slot::Broken(_) => None,
        }
    }

    /// Every broker row with an address, and that address.
    pub fn listen_all(&self) -> BTreeMap<TransportKind, String> {
        self.slots.keys().filter_map(|&k| Some((k, self.listen(k)?))).collect()
    }

    /// Why a cell of `kind` cannot run, if it cannot.
    pub fn unavailable(&self, kind: TransportKind) -> Option<Unavailable> {
        match self.slots.get(&kind)? {
            Slot::Missing(reason) => Some(Unavailable::Unsupported(reason.clone())),
            Slot::Broken(reason) => Some(Unavailable::Failed(reason.clone())),
            Slot::Running(_) | Slot::External(_) => None,
        }
    }

    /// Where a cell of `kind` reads its broker CPU from.
    pub fn cpu_source(&self, kind: TransportKind) -> BrokerCpuSource {
        match self.slots.get(&kind) {
            None => BrokerCpuSource::None,
            Some(Slot::Running(r)) => BrokerCpuSource::Tree(r.roots()),
            Some(Slot::External(e)) => {
                BrokerCpuSource::Unavailable(format!("an existing broker at {} (--connect), not this run's", e.address))
            }
            Some(Slot::Missing(_) | Slot::Broken(_)) => BrokerCpuSource::Unavailable("no broker".into()),
        }
    }

    /// The largest body `kind`'s broker carries, for broker rows.
    pub fn body_limit(&self, kind: TransportKind) -> Option<usize> {
        kind.broker().map(|info| info.body_limit(&self.settings))
    }

    /// If `kind`'s daemon has died: says how and starts a fresh one (on new
    /// ports). The caller must then reconnect the responder to
    /// [`Brokers::listen`]. `None` while it runs (or is not ours).
    pub fn replace_if_dead(&mut self, kind: TransportKind) -> Option<String> {
        let Some(Slot::Running(running)) = self.slots.get_mut(&kind) else { return None };
        let (which, how) = running.exited()?;
        let log = running.log().display().to_string();
        // Dropping it stops what is left of its tree and removes its directory.
        self.slots.remove(&kind);
        let fresh = self.launch(kind);
        let note = match &fresh {
            Slot::Running(r) => {
                format!("the {kind} broker ({which}) {how}; a fresh one was started at {}", r.address())
            }
            Slot::Broken(e) | Slot::Missing(e) => {
                format!("the {kind} broker ({which}) {how}, and starting a fresh one failed: {e}")
            }
            Slot::External(_) => format!("the {kind} broker ({which}) {how}"),
        };
        self.slots.insert(kind, fresh);
        Some(format!("{note} (its log: {log})"))
    }
}

/// Before a cell: replaces its broker if it died since the last cell, and
/// says why the cell cannot run if its row has no broker (`unsupported`
/// when not installed, `failed` when it would not start).
pub fn before_cell(
    spec: &crate::plan::CellSpec,
    servers: &mut crate::servers::Servers,
    options: &crate::servers::ServerOptions,
    out_dir: &Path,
) -> Option<wirebench_reports::model::Cell> {
    if let Some(note) = servers.check_broker(spec.transport, options, out_dir) {
        tracing::warn!("{note}");
    }
    match servers.broker_unavailable(spec.transport)? {
        Unavailable::Unsupported(reason) => Some(crate::cell::unsupported(spec, reason)),
        Unavailable::Failed(reason) => Some(crate::cell::failed(spec, reason, None)),
    }
}

/// After a cell: if its broker died during it, the cell fails with how
/// (whatever the cell itself saw), and a fresh broker with a responder
/// connected to it is there for the next cell.
pub fn after_cell(
    cell: &mut wirebench_reports::model::Cell,
    servers: &mut crate::servers::Servers,
    options: &crate::servers::ServerOptions,
    out_dir: &Path,
) {
    let Some(kind) = TransportKind::from_name(&cell.transport) else { return };
    if let Some(note) = servers.check_broker(kind, options, out_dir) {
        let seen = cell.error.take().map(|e| format!(" (the cell saw: {e})")).unwrap_or_default();
        cell.status = wirebench_reports::model::CellStatus::Failed;
        cell.error = Some(format!("{note}; it died during this cell{seen}"));
    }
}
