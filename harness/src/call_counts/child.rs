//! The two counted processes, `wirebench __count-serve` and `wirebench
//! __count-calls`, each run under valgrind by `wirebench instructions`.
//!
//! Each is driven over stdin and stdout, one line per command, and does
//! every cell in a child forked for it: every cell starts from the same
//! state of the process (its heap above all: the cost of `malloc` depends
//! on what earlier allocations left behind, and one format's cells moved
//! the next format's counts by a tenth), so a cell's count does not depend
//! on the cells before it, and the translations valgrind made for the
//! parent are not made again.
//!
//! - server: `serve ADDR` forks a child that serves the transport on
//!   `ADDR` with a single-threaded runtime, prints `listening <transport>
//!   <endpoint>`, marks its window by the calls it serves
//!   ([`server_hook`]), and stops on SIGTERM; the parent prints `forked
//!   PID` at the fork and `exited PID CODE` when the child has ended.
//! - client: `run K [ENDPOINT]` forks a child that makes the calls of the
//!   plan's cell K over one connection, marking the counted ones; the
//!   parent prints `forked PID` and `done K CODE`.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use wirebench_formats::{Dataset, FormatId};
use wirebench_transports::{
    Address, CallHook, Client, ClientConfig, Endpoint, Framework, FrameworkClient, ServerConfig, Transport,
    TransportKind, TransportVisitor,
};

use super::{CallCell, SERVED, SERVER_DUMP, Schedule, Side};
use crate::codec::{self, Codec};
use crate::limits::{self, Parser as Ranged};
use crate::{output, syscalls, valgrind};

/// `wirebench __count-serve` (internal: started by `instructions`).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long, value_parser = Ranged::new(|s: &str| s.trim().parse::<TransportKind>()))]
    transport: TransportKind,
    #[arg(long, value_parser = limits::count(limits::CALLS))]
    warmup_calls: u64,
    #[arg(long, value_parser = limits::count(limits::CALLS))]
    calls: u64,
}

/// `wirebench __count-calls` (internal: started by `instructions`).
#[derive(Debug, clap::Args)]
pub struct CallsArgs {
    #[arg(long, value_parser = Ranged::new(|s: &str| s.trim().parse::<TransportKind>()))]
    transport: TransportKind,
    #[arg(long, value_delimiter = ',', value_parser = Ranged::new(|s: &str| s.trim().parse::<FormatId>()))]
    formats: Vec<FormatId>,
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    #[arg(long, value_parser = limits::count(limits::SEED))]
    seed: u64,
    #[arg(long, value_parser = limits::count(limits::CALLS))]
    warmup_calls: u64,
    #[arg(long, value_parser = limits::count(limits::CALLS))]
    calls: u64,
}

/// Runs `__count-serve` until stdin ends.
pub fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    if args.transport == TransportKind::Inproc {
        bail!("inproc has no server process: its calls are counted in the client");
    }
    let schedule = Schedule { warmup: args.warmup_calls, calls: args.calls };
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read a command")?;
        let listen = line.strip_prefix("serve ").with_context(|| format!("unknown command {line:?}"))?;
        let address = Address::parse(args.transport, listen).map_err(anyhow::Error::msg)?;
        let (pid, code) = forked(|| serve_cell(args.transport, &address, schedule))?;
        output::line(&format!("exited {pid} {code}"))?;
    }
    Ok(())
}

/// Runs `__count-calls` until stdin ends.
pub fn calls_command(args: CallsArgs) -> anyhow::Result<()> {
    let schedule = Schedule { warmup: args.warmup_calls, calls: args.calls };
    let workloads = crate::plan::parse_workloads(&args.workloads)?;
    let cells = super::plan(args.transport, &args.formats, &workloads, args.seed)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read a command")?;
        let mut words = line.split(' ');
        let (Some("run"), Some(k), connect, None) = (words.next(), words.next(), words.next(), words.next()) else {
            bail!("unknown command {line:?}");
        };
        let k: usize = k.parse().with_context(|| format!("bad cell number in {line:?}"))?;
        let cell = *cells.get(k).with_context(|| format!("no cell {k}: the plan has {}", cells.len()))?;
        let (_, code) = forked(|| call_cell(cell, connect, args.seed, schedule))?;
        output::line(&format!("done {k} {code}"))?;
    }
    Ok(())
}

/// Runs `work` in a child process and waits for it to end; the child's
/// pid and exit code (128 + the signal if a signal ended it). Prints
/// `forked PID` as soon as the child exists.
fn forked(work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<(i32, i32)> {
    // Both streams are flushed first, or the child would write out the
    // parent's buffered text a second time.
    std::io::stdout().flush().context("stdout")?;
    std::io::stderr().flush().context("stderr")?;
    // SAFETY: this process has one thread (the counted processes start no
    // runtime and no thread before forking: every runtime lives in a
    // child), so the child may run anything, as after any fork of a
    // single-threaded program.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot fork");
    }
    if pid == 0 {
        let code = match work() {
            Ok(()) => 0,
            Err(e) => {
                output::stderr(&format!("wirebench: {e:#}"));
                1
            }
        };
        let _ = std::io::stdout().flush();
        // SAFETY: ends the child at once, as a forked child should: no
        // destructor or exit handler of the parent's runs twice.
        unsafe { libc::_exit(code) }
    }
    output::line(&format!("forked {pid}"))?;
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` outlives the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("cannot wait for the cell's process");
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    Ok((pid, code))
}

// ------------------------------------------------------------ server side

/// The hook that marks the server's window: calls are numbered from 0 as
/// the handler starts serving them; the counts are zeroed as it starts
/// the first counted call and dumped as it starts the closing call, so
/// the window is exactly `calls` cycles of the server's loop (read, serve,
/// reply, wait) with everything its runtime does in between.
pub(super) fn server_hook(schedule: Schedule, served: Arc<AtomicU64>) -> CallHook {
    let counted = schedule.warmup + schedule.calls;
    CallHook(Arc::new(move |n: u64| {
        served.store(n + 1, Ordering::Relaxed);
        // The marks are written before the counts are zeroed and after
        // they are dumped, so their formatting is never counted.
        if n == schedule.warmup {
            valgrind::log(&format!("{} server", syscalls::START));
            valgrind::zero_stats();
        } else if n == counted {
            valgrind::dump_stats_at(SERVER_DUMP);
            valgrind::log(&format!("{} server", syscalls::END));
        }
    }))
}

/// One cell's server: serves `transport` on `address` until SIGTERM.
fn serve_cell(transport: TransportKind, address: &Address, schedule: Schedule) -> anyhow::Result<()> {
    let served = Arc::new(AtomicU64::new(0));
    let config = ServerConfig { on_call: Some(server_hook(schedule, served.clone())), ..ServerConfig::default() };
    // One thread: what runs, and in which order, depends only on the calls.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    runtime.block_on(async {
        // Listening for SIGTERM before saying where to connect: the
        // signal comes only after the calls.
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let server = wirebench_transports::serve_kind(transport, address, config)
            .await
            .with_context(|| format!("cannot serve {transport} on {address}"))?;
        output::line(&format!("listening {transport} {}", server.endpoint()))?;
        terminate.recv().await;
        server.shutdown().await;
        valgrind::log(&format!("{SERVED} {}", served.load(Ordering::Relaxed)));
        Ok(())
    })
}

// ------------------------------------------------------------ client side

/// Deadline of one call. Generous: under valgrind a call of the largest
/// workloads takes seconds, and a timeout is an error, never a count.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

fn client_config() -> ClientConfig {
    ClientConfig { connections: 1, timeout: CALL_TIMEOUT, ..ClientConfig::default() }
}

/// One cell's client: connects to `connect` (or serves inproc itself) and
/// makes the cell's calls, every reply verified.
fn call_cell(cell: CallCell, connect: Option<&str>, seed: u64, schedule: Schedule) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    // A LocalSet: a framework whose client is not Send spawns its
    // connection driver with spawn_local.
    tokio::task::LocalSet::new().block_on(&runtime, async {
        let (endpoint, _inproc) = match connect {
            Some(text) => (Endpoint::parse(cell.transport, text).map_err(anyhow::Error::msg)?, None),
            None if cell.transport == TransportKind::Inproc => {
                let config = ServerConfig::default();
                let server = wirebench_transports::serve_kind(TransportKind::Inproc, &Address::InProc, config).await?;
                (server.endpoint().clone(), Some(server))
            }
            None => bail!("{} needs the server's endpoint", cell.transport),
        };
        let data = Dataset::generate(cell.workload, seed);
        cell.transport.visit(Job { endpoint: &endpoint, cell, data: &data, schedule }).await
    })
}

type LocalFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

struct Job<'a> {
    endpoint: &'a Endpoint,
    cell: CallCell,
    data: &'a Dataset,
    schedule: Schedule,
}

impl<'a> TransportVisitor for Job<'a> {
    type Output = LocalFuture<'a>;

    fn visit<T: Transport>(self) -> LocalFuture<'a> {
        Box::pin(async move {
            let client = T::connect(self.endpoint, &client_config())
                .await
                .with_context(|| format!("cannot connect to {} at {}", T::KIND, self.endpoint))?;
            framed(&client, self.cell, self.data, self.schedule).await
        })
    }

    fn visit_framework<F: Framework>(self) -> LocalFuture<'a> {
        Box::pin(async move {
            let client = F::connect(self.endpoint, &client_config())
                .await
                .with_context(|| format!("cannot connect to {} at {}", F::KIND, self.endpoint))?;
            let key = self.cell.key(Side::Client);
            let request = F::prepare(&self.data.request());
            let marks = Marks { key: &key, schedule: self.schedule };
            for i in 0..self.schedule.cycle() {
                marks.before(i);
                // The framework's own call, as `cell::Stock` makes it.
                let reply = client.call(&request).await;
                marks.after_reply(i);
                let reply = reply.map_err(|e| anyhow::anyhow!("{key}: call {i}: {e}"))?;
                self.data.verify(&reply).map_err(|w| anyhow::anyhow!("{key}: call {i}: {}", w.0))?;
                marks.after_verify(i);
            }
            Ok(())
        })
    }
}

/// A format over one of wirebench's own transports, through the erased
/// codec the measured cell calls through.
async fn framed<C: Client>(client: &C, cell: CallCell, data: &Dataset, schedule: Schedule) -> anyhow::Result<()> {
    let key = cell.key(Side::Client);
    let codec = Codec::new(cell.format, data);
    let method = cell.workload.method();
    let mut scratch = codec::Scratch::default();
    let marks = Marks { key: &key, schedule };
    for i in 0..schedule.cycle() {
        marks.before(i);
        // The steps of a measured call (`cell::Framed`): encode, call,
        // decode.
        let reply = match codec.encode_request(&mut scratch) {
            Ok(encoded) => client.call(method, codec.id(), encoded).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let decoded = reply
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|reply| codec.decode_reply(method, reply).map_err(|e| format!("undecodable reply: {e}")));
        marks.after_reply(i);
        let decoded = decoded.map_err(|e| anyhow::anyhow!("{key}: call {i}: {e}"))?;
        data.verify(&decoded).map_err(|w| anyhow::anyhow!("{key}: call {i}: {}", w.0))?;
        marks.after_verify(i);
    }
    Ok(())
}

/// The client's marks of one cell. Counting is off outside them
/// (`--collect-atstart=no`): it covers each counted call from the start of
/// its encode to the end of its decode, the span its latency covers, with
/// everything the runtime does meanwhile; verification is not counted.
struct Marks<'a> {
    key: &'a str,
    schedule: Schedule,
}

impl Marks<'_> {
    fn counted(&self, i: u64) -> bool {
        (self.schedule.warmup..self.schedule.warmup + self.schedule.calls).contains(&i)
    }

    /// Before call `i` encodes.
    fn before(&self, i: u64) {
        if i == self.schedule.warmup {
            valgrind::log(&format!("{} {}", syscalls::START, self.key));
            valgrind::zero_stats();
        }
        if self.counted(i) {
            valgrind::toggle_collect();
        }
    }

    /// After call `i` decoded its reply (or failed).
    fn after_reply(&self, i: u64) {
        if self.counted(i) {
            valgrind::toggle_collect();
        }
    }

    /// After call `i` was verified.
    fn after_verify(&self, i: u64) {
        if i + 1 == self.schedule.warmup + self.schedule.calls {
            valgrind::dump_stats_at(self.key);
            valgrind::log(&format!("{} {}", syscalls::END, self.key));
        }
    }
}

#[cfg(test)]
mod tests {
    use wirebench_formats::Workload;

    use super::*;

    #[test]
    fn a_cell_runs_natively_against_inproc_and_tcp() {
        // Without valgrind the marks are no-ops: this runs every step of
        // the client side for real, replies verified.
        let schedule = Schedule { warmup: 1, calls: 2 };
        for (format, workload) in
            [(FormatId::Capnp, Workload::Multiply), (FormatId::Json, Workload::Digest { records: 3 })]
        {
            let cell = CallCell { workload, format, transport: TransportKind::Inproc };
            call_cell(cell, None, 1, schedule).unwrap();
        }
        // And against a counting server, whose hook numbers the calls.
        let served = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let config = ServerConfig { on_call: Some(server_hook(schedule, served.clone())), ..ServerConfig::default() };
        let address = Address::parse(TransportKind::Tcp, "127.0.0.1:0").unwrap();
        let server = runtime.block_on(wirebench_transports::serve_kind(TransportKind::Tcp, &address, config)).unwrap();
        let cell = CallCell { workload: Workload::Multiply, format: FormatId::Bincode, transport: TransportKind::Tcp };
        call_cell(cell, Some(&server.endpoint().to_string()), 1, schedule).unwrap();
        assert_eq!(served.load(Ordering::Relaxed), schedule.cycle());
        runtime.block_on(server.shutdown());
    }
}
