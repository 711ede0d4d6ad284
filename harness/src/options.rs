//! `wirebench run`'s options: command-line flags over a matrix file over
//! clap's defaults, checked as a whole before any server starts.
//!
//! Clap's attributes are the one source of every default (`--quick` picks
//! its own through `default_value_if`), so `wirebench`, `wirebench run` and
//! `cargo run --release` mean the same thing. A value is accepted as given
//! or refused: nothing is rounded, clamped or silently dropped, and values
//! that cannot work together (a size over the message limit, `--connect`
//! without a transport the matrix asks for, CPUs that do not exist) are
//! usage errors found here, not failures found cell by cell.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use wirebench_formats::dataset::{DEFAULT_SEED, format_size};
use wirebench_formats::{Dataset, FormatId, FormatVisitor, Workload};
use wirebench_link::LinkSpec;
use wirebench_transports::{ClientConfig, Endpoint, Family, ServerConfig, TransportKind};

use crate::affinity;
use crate::cell::Sizes;
use crate::limits::{self, Parser};
use crate::plan::{CallMode, ConfigFile, FormatChoice, LoadModel, LoadSpec, Matrix, Slice, Timing};
use crate::run::RunOptions;
use crate::servers::{Mode, ServerOptions};

/// What `--workloads` names: a workload, or a kind whose sizes come from
/// `--sizes` / `--records`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadChoice {
    /// One workload.
    One(Workload),
    /// `echo`: one echo per `--sizes` value.
    Echo,
    /// `digest`: one digest per `--records` value.
    Digest,
}

fn workload_choice(s: &str) -> Result<WorkloadChoice, String> {
    match s.trim() {
        "echo" => Ok(WorkloadChoice::Echo),
        "digest" => Ok(WorkloadChoice::Digest),
        id => limits::parse_workload(id).map(WorkloadChoice::One),
    }
}

/// A value of `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeChoice {
    /// `rr`.
    Rr,
    /// `oneway`.
    Oneway,
    /// `stream` (replies from `--stream-replies`).
    Stream,
    /// `pubsub` (subscribers from `--subscribers`).
    Pubsub,
}

fn mode_choice(s: &str) -> Result<ModeChoice, String> {
    match s.trim() {
        "rr" => Ok(ModeChoice::Rr),
        "oneway" => Ok(ModeChoice::Oneway),
        "stream" => Ok(ModeChoice::Stream),
        "pubsub" => Ok(ModeChoice::Pubsub),
        other => Err(format!("unknown mode {other:?}; expected rr, oneway, stream or pubsub")),
    }
}

/// What `--formats` names: every format, each framework's own, or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formats {
    /// `all`.
    All,
    /// `own`: each stock framework's own format, nothing elsewhere.
    Own,
    /// One format.
    One(FormatId),
}

fn format_choice(s: &str) -> Result<Formats, String> {
    match s.trim() {
        "all" => Ok(Formats::All),
        "own" => Ok(Formats::Own),
        name => name.parse().map(Formats::One),
    }
}

/// What `--transports` names: all, a family, or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transports {
    /// `all`.
    All,
    /// `transports`, `frameworks` or `brokers`.
    Family(Family),
    /// One transport.
    One(TransportKind),
}

fn transport_choice(s: &str) -> Result<Transports, String> {
    match s.trim() {
        "all" => Ok(Transports::All),
        "transports" => Ok(Transports::Family(Family::Transport)),
        "frameworks" => Ok(Transports::Family(Family::Framework)),
        "brokers" => Ok(Transports::Family(Family::Broker)),
        name => name.parse().map(Transports::One),
    }
}

fn format_choices(choices: &[Formats]) -> Vec<FormatChoice> {
    let mut out = Vec::new();
    for choice in choices {
        let add: Vec<FormatChoice> = match choice {
            Formats::All => FormatId::ALL.iter().map(|&f| FormatChoice::One(f)).collect(),
            Formats::Own => vec![FormatChoice::Own],
            Formats::One(f) => vec![FormatChoice::One(*f)],
        };
        for c in add {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

fn transport_kinds(choices: &[Transports]) -> Vec<TransportKind> {
    let mut out: Vec<TransportKind> = TransportKind::ALL
        .iter()
        .copied()
        .filter(|t| {
            choices.iter().any(|c| match c {
                Transports::All => true,
                Transports::Family(f) => t.family() == *f,
                Transports::One(one) => one == t,
            })
        })
        .collect();
    out.dedup();
    out
}

fn connect_item(s: &str) -> Result<(TransportKind, Endpoint), String> {
    let (t, address) = s.trim().split_once('=').ok_or_else(|| format!("expected T=ADDR, not {s:?}"))?;
    let kind: TransportKind = t.parse()?;
    if kind == TransportKind::Inproc {
        return Err("inproc has no server to connect to: it always runs in this process".into());
    }
    // A broker row takes its broker's URL too: nats://HOST:PORT.
    let address = kind.broker().map_or(address, |b| wirebench_transports::broker::strip_scheme(b.scheme, address));
    let endpoint = Endpoint::parse(kind, address)?;
    let needs_pin = kind == TransportKind::Quic;
    if needs_pin && endpoint.pin.is_none() {
        return Err(format!(
            "{kind} needs the server's certificate pin: {kind}=ADDR#sha256:HEX, as `wirebench serve` prints it"
        ));
    }
    Ok((kind, endpoint))
}

/// CPU pinning: `auto`, `off`, or `CLIENT/SERVER` CPU lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pin {
    /// Client on the first usable CPU, server on the others.
    Auto,
    /// No pinning.
    Off,
    /// These lists.
    Lists(Vec<usize>, Vec<usize>),
}

fn pin_choice(s: &str) -> Result<Pin, String> {
    const USAGE: &str = "expected auto, off, or CLIENT/SERVER CPU lists like 0/1-3";
    match s.trim() {
        "auto" => Ok(Pin::Auto),
        "off" => Ok(Pin::Off),
        lists => {
            let (c, s) = lists.split_once('/').ok_or_else(|| USAGE.to_owned())?;
            let client = affinity::parse_cpus(c).map_err(|e| format!("{e}; {USAGE}"))?;
            let server = affinity::parse_cpus(s).map_err(|e| format!("{e}; {USAGE}"))?;
            if client.is_empty() || server.is_empty() {
                return Err(USAGE.into());
            }
            Ok(Pin::Lists(client, server))
        }
    }
}

/// The flags of `wirebench run` (also accepted with no command at all).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// A small matrix for smoke tests and the CI gate: one size per
    /// workload, short windows, four passes (about 40 seconds on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Formats, comma-separated; all; or own (each framework's own). Any of
    /// --formats, --transports, --workloads, --sizes, --records,
    /// --concurrency makes the matrix their full product; without them it
    /// is the built-in default (or --quick) matrix's slices.
    #[arg(long, value_name = "F,..", value_delimiter = ',', default_value = "all",
          value_parser = Parser::new(format_choice))]
    pub formats: Vec<Formats>,
    /// Transports, comma-separated; all; or a family: transports,
    /// frameworks, brokers.
    #[arg(long, value_name = "T,..", value_delimiter = ',', default_value = "all",
          value_parser = Parser::new(transport_choice))]
    pub transports: Vec<Transports>,
    /// Workloads: multiply, echo-SIZE, digest-RECORDS, or the kinds echo
    /// and digest, which take their sizes from --sizes and --records.
    #[arg(long, value_name = "W,..", value_delimiter = ',', default_value = "multiply,echo,digest",
          value_parser = Parser::new(workload_choice))]
    pub workloads: Vec<WorkloadChoice>,
    /// Echo payload sizes of the echo kind, 1B to 64MiB.
    #[arg(long, value_name = "SIZE,..", value_delimiter = ',', default_value = "16B,1KiB,64KiB,1MiB",
          default_value_if("quick", "true", "1KiB"),
          value_parser = limits::bytes(limits::ECHO_SIZE))]
    pub sizes: Vec<usize>,
    /// Digest batch sizes of the digest kind, 1 to 100000 records.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "1,100,1000",
          default_value_if("quick", "true", "10"),
          value_parser = limits::count_usize(limits::RECORDS), allow_hyphen_values = true)]
    pub records: Vec<usize>,
    /// Calls in flight, one cell per value, 1 to 4096.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "1,64",
          value_parser = limits::count_usize(limits::CONCURRENCY), allow_hyphen_values = true)]
    pub concurrency: Vec<usize>,
    /// Connections per cell, calls spread over them, 1 to 1024.
    #[arg(long, value_name = "N", default_value = "1",
          value_parser = limits::count_usize(limits::CONNECTIONS), allow_hyphen_values = true)]
    pub connections: usize,
    /// Measured window per cell and pass, 1ms to 1h.
    #[arg(long, value_name = "TIME", default_value = "150ms",
          default_value_if("quick", "true", "20ms"),
          value_parser = limits::span(limits::DURATION), allow_hyphen_values = true)]
    pub duration: Duration,
    /// Discarded warm-up per cell and pass, 0s to 10min.
    #[arg(long, value_name = "TIME", default_value = "40ms",
          default_value_if("quick", "true", "5ms"),
          value_parser = limits::span(limits::WARMUP), allow_hyphen_values = true)]
    pub warmup: Duration,
    /// Sub-windows per cell and pass (samples for statistics), 1 to 1000.
    #[arg(long, value_name = "N", default_value = "10",
          value_parser = limits::count(limits::SAMPLES), allow_hyphen_values = true)]
    pub samples: u64,
    /// Interleaved passes over the whole matrix, each in a seeded shuffled
    /// order, so each cell has replicates minutes apart, 1 to 100.
    #[arg(long, value_name = "N", default_value = "1",
          default_value_if("quick", "true", "4"),
          value_parser = limits::count(limits::PASSES), allow_hyphen_values = true)]
    pub passes: u64,
    /// Open loop: this many calls per second per cell (above 0, at most 1e7),
    /// latency corrected for coordinated omission (uncorrected kept too).
    /// Concurrency is then the most calls allowed in flight.
    #[arg(long, value_name = "R", value_parser = Parser::new(limits::parse_rate), allow_hyphen_values = true)]
    pub rate: Option<f64>,
    /// Open loop with Poisson arrivals instead of a constant rate.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Call modes, comma-separated or repeated, each an axis value: rr
    /// (request-response), oneway (no reply; the server counts arrivals),
    /// stream (one request, --stream-replies replies), pubsub (one
    /// publisher, --subscribers subscribers).
    #[arg(long, value_name = "rr|oneway|stream|pubsub", value_delimiter = ',', default_value = "rr",
          value_parser = Parser::new(mode_choice))]
    pub mode: Vec<ModeChoice>,
    /// Replies per request of the stream mode, 1 to 10000.
    #[arg(long, value_name = "K", default_value = "16",
          value_parser = limits::count(limits::STREAM_REPLIES), allow_hyphen_values = true)]
    pub stream_replies: u64,
    /// Subscribers of the pubsub mode, 1 to 64.
    #[arg(long, value_name = "K", default_value = "4",
          value_parser = limits::count(limits::SUBSCRIBERS), allow_hyphen_values = true)]
    pub subscribers: u64,
    /// A TOML matrix file; flags override it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Print the cells that would run, and exit.
    #[arg(long)]
    pub list: bool,
    /// Run the servers inside this process instead of a child process.
    #[arg(long, conflicts_with = "connect")]
    pub in_process: bool,
    /// Put client and server on an emulated network link: a profile (lan,
    /// wan, lossy, mobile) or rtt=,loss=,rate=,queue=,jitter= keys; repeat
    /// to make link an axis of the matrix. Needs root and /dev/net/tun.
    #[arg(long = "link", value_name = "SPEC", value_parser = Parser::new(crate::link::parse_spec),
          conflicts_with_all = ["in_process", "connect"])]
    pub link: Vec<LinkSpec>,
    /// Client processes per cell, 1 to 250, each driving the cell's load,
    /// started together; their histograms are merged.
    #[arg(long, value_name = "K", default_value = "1",
          value_parser = limits::count_usize(limits::CLIENTS), allow_hyphen_values = true)]
    pub clients: usize,
    /// Drive a running `wirebench serve`: T=ADDR[,T=ADDR..], with #sha256:PIN
    /// for quic and for http2 with --tls (as `serve` prints them). A broker
    /// row (nats, rabbitmq, redis, mqtt) names an existing broker instead of
    /// starting one; with brokers alone the responders still run here.
    #[arg(long, value_name = "T=ADDR,..", value_delimiter = ',', value_parser = Parser::new(connect_item))]
    pub connect: Option<Vec<(TransportKind, Endpoint)>>,
    /// Output directory (default: wirebench-results/UTC-TIME, made unique).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Per-call deadline, 1ms to 10min.
    #[arg(long, value_name = "TIME", default_value = "10s",
          default_value_if("quick", "true", "5s"),
          value_parser = limits::span(limits::TIMEOUT), allow_hyphen_values = true)]
    pub timeout: Duration,
    /// http2 over TLS (h2c otherwise).
    #[arg(long)]
    pub tls: bool,
    /// udp datagram limit in bytes, header included, 64 to 65507.
    #[arg(long, value_name = "BYTES", default_value_t = wirebench_transports::udp::DEFAULT_MAX_DATAGRAM,
          value_parser = limits::bytes(limits::MAX_DATAGRAM), allow_hyphen_values = true)]
    pub max_datagram: usize,
    /// Largest message body, request or reply, 1KiB to 1GiB (the server's
    /// limit too).
    #[arg(long, value_name = "SIZE", default_value = "16MiB",
          value_parser = limits::bytes(limits::MAX_MESSAGE), allow_hyphen_values = true)]
    pub max_message: usize,
    /// CPU pinning: auto (client on the first usable CPU, server on the
    /// rest), off, or CLIENT/SERVER CPU lists like 0/1-3.
    #[arg(long, value_name = "auto|off|C/S", default_value = "auto", value_parser = Parser::new(pin_choice))]
    pub pin: Pin,
    /// Data seed, any 64-bit value.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED,
          value_parser = limits::count(limits::SEED), allow_hyphen_values = true)]
    pub seed: u64,
    /// Test only: the server answers wrongly.
    #[arg(long, hide = true)]
    pub server_fault: Option<String>,
    /// Test only: the server pauses PAUSE every PERIOD, e.g. 50ms/500ms.
    #[arg(long, hide = true)]
    pub server_stall: Option<String>,
    /// Test only: the server busy-waits DELAY in every call (of the formats
    /// after `:`), e.g. 10us or 10us:json,bincode: a real slowdown.
    #[arg(long, hide = true, value_parser = Parser::new(crate::serve::parse_inject))]
    pub server_inject_delay: Option<wirebench_transports::Inject>,
    /// Test only: the server process aborts after this long.
    #[arg(long, hide = true, value_parser = limits::span(limits::TEST_DELAY))]
    pub server_crash_after: Option<Duration>,
    /// Test only: the broker of the cell with this key is killed halfway
    /// through its measured window.
    #[arg(long, hide = true, value_name = "KEY")]
    pub broker_crash_in: Option<String>,
    /// Test only: the child server of the cell with this key is aborted
    /// (SIGABRT) halfway through its measured window.
    #[arg(long, hide = true, value_name = "KEY")]
    pub server_crash_in: Option<String>,
}

/// The option names of [`RunArgs`] that a matrix file may also set, so
/// [`resolve`] knows which flags were given on the command line.
pub trait Given {
    /// Whether `id` (a field name of [`RunArgs`]) came from the command line.
    fn given(&self, id: &str) -> bool;
}

/// Nothing given on the command line (a slice's own sizes come from its
/// kinds, never from a conflict with the command line's).
struct NoneGiven;

impl Given for NoneGiven {
    fn given(&self, _: &str) -> bool {
        false
    }
}

impl Given for clap::ArgMatches {
    fn given(&self, id: &str) -> bool {
        self.try_contains_id(id).unwrap_or(false)
            && self.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    }
}

fn each<T>(items: &[String], parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    items.iter().map(|s| parse(s)).collect()
}

fn each_count(items: &[u64], range: limits::Count) -> Result<Vec<usize>, String> {
    items.iter().map(|&n| range.check(n).map(|n| n as usize)).collect()
}

/// Builds a run's options from its flags (and matrix file), checking them
/// as a whole. `given` tells flags typed on the command line from
/// defaults, so a matrix file can sit between the two.
pub fn resolve(args: &RunArgs, given: &dyn Given) -> anyhow::Result<RunOptions> {
    let file = match &args.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::builtin(args.quick),
    };
    let path = args.config.as_ref().map(|p| p.display().to_string());
    let path = path.as_deref();

    // The command line's value, else the matrix file's (through the same
    // range checks), else clap's default.
    macro_rules! pick {
        ($id:literal, $flag:expr, $key:ident, $parse:expr) => {
            match (&file.$key, given.given($id)) {
                (Some(value), false) => ($parse)(value)
                    .map_err(|e: String| anyhow::anyhow!("{}: {}: {e}", path.unwrap_or("--config"), $id))?,
                _ => $flag,
            }
        };
    }
    let formats = pick!("formats", args.formats.clone(), formats, |v: &Vec<String>| each(v, format_choice));
    let transports =
        pick!("transports", args.transports.clone(), transports, |v: &Vec<String>| each(v, transport_choice));
    let workloads = pick!("workloads", args.workloads.clone(), workloads, |v: &Vec<String>| each(v, workload_choice));
    let sizes = pick!("sizes", args.sizes.clone(), sizes, |v: &Vec<String>| each(v, |s| limits::ECHO_SIZE.parse(s)));
    let records = pick!("records", args.records.clone(), records, |v: &Vec<u64>| each_count(v, limits::RECORDS));
    let concurrency =
        pick!("concurrency", args.concurrency.clone(), concurrency, |v: &Vec<u64>| each_count(v, limits::CONCURRENCY));
    let connections = pick!("connections", args.connections, connections, |n: &u64| limits::CONNECTIONS
        .check(*n)
        .map(|n| n as usize));
    let duration = pick!("duration", args.duration, duration, |s: &String| limits::DURATION.parse(s));
    let warmup = pick!("warmup", args.warmup, warmup, |s: &String| limits::WARMUP.parse(s));
    let samples = pick!("samples", args.samples, samples, |n: &u64| limits::SAMPLES.check(*n));
    let timeout = pick!("timeout", args.timeout, timeout, |s: &String| limits::TIMEOUT.parse(s));
    let passes = pick!("passes", args.passes, passes, |n: &u64| limits::PASSES.check(*n));
    let rate = pick!("rate", args.rate, rate, |r: &f64| limits::parse_rate(&r.to_string()).map(Some));
    let links = pick!("link", args.link.clone(), link, |v: &Vec<String>| each(v, crate::link::parse_spec));
    let clients = pick!("clients", args.clients, clients, |n: &u64| limits::CLIENTS.check(*n).map(|n| n as usize));
    let poisson = args.poisson || file.poisson.unwrap_or(false);
    if poisson && rate.is_none() {
        bail!("poisson needs a rate (--rate R)");
    }
    let mode = pick!("mode", args.mode.clone(), mode, |v: &Vec<String>| each(v, mode_choice));
    let stream_replies =
        pick!("stream_replies", args.stream_replies, stream_replies, |n: &u64| limits::STREAM_REPLIES.check(*n));
    let subscribers = pick!("subscribers", args.subscribers, subscribers, |n: &u64| limits::SUBSCRIBERS.check(*n));
    let explicit_axes = ["formats", "transports", "workloads", "sizes", "records", "concurrency"];
    let slices = file.slice.as_ref().filter(|_| !explicit_axes.iter().any(|id| given.given(id)));
    let modes = to_modes(&mode, stream_replies as u32, subscribers as u32);

    let model = match rate {
        Some(rate) => LoadModel::Open { rate, poisson },
        None => LoadModel::Closed,
    };
    let loads_of = |concurrency: &[usize]| {
        let mut loads: Vec<LoadSpec> = Vec::new();
        for &in_flight in concurrency {
            let load = LoadSpec { model, in_flight, connections };
            if !loads.contains(&load) {
                loads.push(load);
            }
        }
        loads
    };
    let name = match (&file.name, path) {
        (Some(name), _) => name.clone(),
        (None, Some(path)) => path.to_owned(),
        (None, None) if args.quick => "quick".into(),
        (None, None) => "default".into(),
    };
    let mut matrix = match slices {
        Some(slices) => {
            let mut out = Vec::new();
            for (i, slice) in slices.iter().enumerate() {
                let at = |e: String| anyhow::anyhow!("{}: slice {}: {e}", path.unwrap_or("the built-in matrix"), i + 1);
                let formats = match &slice.formats {
                    Some(v) => format_choices(&each(v, format_choice).map_err(at)?),
                    None => format_choices(&formats),
                };
                let transports = match &slice.transports {
                    Some(v) => transport_kinds(&each(v, transport_choice).map_err(at)?),
                    None => transport_kinds(&transports),
                };
                let choices = match &slice.workloads {
                    Some(v) => each(v, workload_choice).map_err(at)?,
                    None => workloads.clone(),
                };
                let slice_workloads = expand_workloads(&choices, &sizes, &records, &NoneGiven, false, false)?;
                let concurrency = match &slice.concurrency {
                    Some(v) => each_count(v, limits::CONCURRENCY).map_err(at)?,
                    None => concurrency.clone(),
                };
                // The slice's own modes, unless --mode sets every slice's.
                let own_modes = match (&slice.mode, given.given("mode")) {
                    (Some(v), false) => Some(each(v, mode_choice).map_err(at)?),
                    _ => None,
                };
                out.push(Slice {
                    formats,
                    transports,
                    workloads: slice_workloads,
                    loads: loads_of(&concurrency),
                    modes: own_modes.as_ref().map(|m| to_modes(m, stream_replies as u32, subscribers as u32)),
                });
            }
            Matrix { name, slices: out, clients: 1, links: Vec::new(), modes: modes.clone() }
        }
        _ => {
            let workloads =
                expand_workloads(&workloads, &sizes, &records, given, file.sizes.is_some(), file.records.is_some())?;
            let slice = Slice {
                formats: format_choices(&formats),
                transports: transport_kinds(&transports),
                workloads,
                loads: loads_of(&concurrency),
                modes: None,
            };
            Matrix { name, slices: vec![slice], clients: 1, links: Vec::new(), modes: modes.clone() }
        }
    };
    check_mode_counts(
        &matrix.all_modes(),
        given.given("stream_replies") || file.stream_replies.is_some(),
        given.given("subscribers") || file.subscribers.is_some(),
    )?;

    // `--connect` with brokers only: existing brokers, and the responders
    // and every other server still run here. With any other transport: a
    // remote server, whose responders use the brokers named.
    let connect = args.connect.clone().unwrap_or_default();
    let brokers_only = !connect.is_empty() && connect.iter().all(|(t, _)| t.broker().is_some());
    let mode = match &args.connect {
        Some(endpoints) if !brokers_only => Mode::Remote(endpoints.clone()),
        _ if args.in_process => Mode::InProcess,
        _ => Mode::Process,
    };
    let explicit = given.given("transports") || file.transports.is_some();
    if let Mode::Remote(endpoints) = &mode {
        check_connect(endpoints, &mut matrix, explicit, args.tls)?;
    } else if brokers_only {
        // Unless the transports were chosen, only the brokers named and
        // inproc run; chosen ones that are not named run here.
        let mut none = Matrix::product(String::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        check_connect(&connect, if explicit { &mut none } else { &mut matrix }, false, false)?;
    }
    check_links(
        &links,
        file.link.is_some() && !given.given("link"),
        args.in_process,
        args.connect.is_some(),
        args.list,
    )?;
    if clients > 1 && matrix.all_modes().iter().any(|m| *m != CallMode::Rr) {
        bail!("--clients {clients} runs request-response cells only: drop --clients or keep --mode rr");
    }
    matrix.clients = clients;
    matrix.links = links;
    let timing = Timing { warmup, duration, samples: samples as u32, timeout };

    let (client_cpus, server_cpus) = pins(&args.pin)?;
    let client = ClientConfig {
        connections,
        timeout,
        max_datagram: args.max_datagram,
        max_message: args.max_message,
        tls: args.tls,
    };
    let server_config = ServerConfig {
        max_message: args.max_message,
        max_datagram: args.max_datagram,
        tls: args.tls,
        fault: args.server_fault.as_deref().map(crate::serve::parse_fault).transpose()?.unwrap_or_default(),
        stall: args.server_stall.as_deref().map(crate::serve::parse_stall).transpose()?,
        inject: args.server_inject_delay.clone(),
        ..ServerConfig::default()
    };
    check_messages(&matrix, args.max_message, args.seed)?;
    Ok(RunOptions {
        matrix,
        timing,
        seed: args.seed,
        server: ServerOptions {
            config: server_config,
            cpus: if matches!(mode, Mode::Remote(_)) { None } else { server_cpus },
            crash_after: args.server_crash_after,
            netns: None,
            listen_ip: None,
            external_brokers: if brokers_only { connect.clone() } else { Vec::new() },
            broker_crash_in: args.broker_crash_in.clone(),
            server_crash_in: args.server_crash_in.clone(),
        },
        mode,
        client,
        client_cpus,
        out_dir: args.out.clone(),
        quiet: args.quiet,
        quick: args.quick,
        passes: passes as u32,
    })
}

/// Refuses a mode's count for a mode the matrix does not have (nothing is
/// dropped silently); `modes` are every mode of the matrix.
fn check_mode_counts(modes: &[CallMode], replies_given: bool, subscribers_given: bool) -> anyhow::Result<()> {
    if replies_given && !modes.iter().any(|m| matches!(m, CallMode::Stream { .. })) {
        bail!("--stream-replies sets the replies of the stream mode, which --mode does not include: add --mode stream");
    }
    if subscribers_given && !modes.iter().any(|m| matches!(m, CallMode::Pubsub { .. })) {
        bail!(
            "--subscribers sets the subscribers of the pubsub mode, which --mode does not include: add --mode pubsub"
        );
    }
    Ok(())
}

/// The modes with their counts.
fn to_modes(choices: &[ModeChoice], replies: u32, subscribers: u32) -> Vec<CallMode> {
    let mut modes = Vec::new();
    for choice in choices {
        let mode = match choice {
            ModeChoice::Rr => CallMode::Rr,
            ModeChoice::Oneway => CallMode::Oneway,
            ModeChoice::Stream => CallMode::Stream { replies },
            ModeChoice::Pubsub => CallMode::Pubsub { subscribers },
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    modes
}

/// Expands the workload kinds with their sizes, refusing sizes that
/// apply to nothing and sizes given twice.
fn expand_workloads(
    choices: &[WorkloadChoice],
    sizes: &[usize],
    records: &[usize],
    given: &dyn Given,
    sizes_in_file: bool,
    records_in_file: bool,
) -> anyhow::Result<Vec<Workload>> {
    let has = |c: WorkloadChoice| choices.contains(&c);
    let explicit = |f: fn(&Workload) -> bool| {
        choices.iter().find_map(|c| match c {
            WorkloadChoice::One(w) if f(w) => Some(*w),
            _ => None,
        })
    };
    for (option, set, kind, one) in [
        (
            "--sizes",
            given.given("sizes") || sizes_in_file,
            WorkloadChoice::Echo,
            explicit(|w| matches!(w, Workload::Echo { .. })),
        ),
        (
            "--records",
            given.given("records") || records_in_file,
            WorkloadChoice::Digest,
            explicit(|w| matches!(w, Workload::Digest { .. })),
        ),
    ] {
        let name = if kind == WorkloadChoice::Echo { "echo" } else { "digest" };
        if set && !has(kind) {
            match one {
                Some(w) => bail!(
                    "{option} sets the sizes of the `{name}` workload kind, and --workloads names {w} instead: \
                     give `--workloads {name} {option} ..` or the sizes in the workload ids"
                ),
                None => {
                    bail!("{option} sets the sizes of the `{name}` workload kind, which --workloads does not include")
                }
            }
        }
    }
    let mut out = Vec::new();
    for choice in choices {
        match choice {
            WorkloadChoice::One(w) => out.push(*w),
            WorkloadChoice::Echo => out.extend(sizes.iter().map(|&size| Workload::Echo { size })),
            WorkloadChoice::Digest => out.extend(records.iter().map(|&records| Workload::Digest { records })),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `--connect`: each transport once, and every transport the matrix asks
/// for connected (inproc always runs here). Without `--transports`, the
/// matrix's transports are the connected ones and inproc, the codec floor.
fn check_connect(
    endpoints: &[(TransportKind, Endpoint)],
    matrix: &mut Matrix,
    explicit: bool,
    tls: bool,
) -> anyhow::Result<()> {
    let connected: Vec<TransportKind> = endpoints.iter().map(|(t, _)| *t).collect();
    for (i, t) in connected.iter().enumerate() {
        if connected[..i].contains(t) {
            bail!("--connect names {t} twice");
        }
    }
    if tls && let Some((_, e)) = endpoints.iter().find(|(t, e)| *t == TransportKind::Http2 && e.pin.is_none()) {
        bail!("--connect http2={e} with --tls needs the server's certificate pin: http2=ADDR#sha256:HEX");
    }
    if !explicit {
        matrix.retain_transports(|t| connected.contains(&t) || t == TransportKind::Inproc);
        return Ok(());
    }
    let missing: Vec<&str> = matrix
        .transports()
        .iter()
        .filter(|t| **t != TransportKind::Inproc && !connected.contains(t))
        .map(|t| t.name())
        .collect();
    if !missing.is_empty() {
        bail!(
            "--transports asks for {} but --connect gives no server for {}: add T=ADDR to --connect or drop them",
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

/// `--link`: each link once, a server process to put behind it, and a
/// machine that can emulate one (root, /dev/net/tun, `ip`), found before
/// anything starts. `--list` only names cells, so it needs no link.
fn check_links(links: &[LinkSpec], from_file: bool, in_process: bool, connect: bool, list: bool) -> anyhow::Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = links.iter().map(crate::link::name).collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            bail!("--link {name} is given twice (specs with the same figures are the same link)");
        }
    }
    // The flags conflict in clap; a matrix file's links meet them here.
    if from_file && (in_process || connect) {
        let other = if in_process { "--in-process" } else { "--connect" };
        bail!("a link puts the server process behind the emulator; {other} cannot cross one");
    }
    if !list {
        wirebench_link::check_available().map_err(|e| anyhow::anyhow!("--link: {e}"))?;
    }
    Ok(())
}

/// The CPUs this process may use.
fn usable_cpus() -> Vec<usize> {
    affinity::usable_cpus()
        .unwrap_or_else(|_| (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect())
}

/// The client's and the server's CPUs, if pinned.
type Pins = (Option<Vec<usize>>, Option<Vec<usize>>);

fn pins(pin: &Pin) -> anyhow::Result<Pins> {
    let usable = usable_cpus();
    Ok(match pin {
        Pin::Off => (None, None),
        Pin::Auto => match affinity::default_split(&usable) {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        },
        Pin::Lists(client, server) => {
            for cpu in client.iter().chain(server) {
                if !usable.contains(cpu) {
                    bail!(
                        "--pin: CPU {cpu} is not one this process can use (usable: {})",
                        affinity::format_cpus(&usable)
                    );
                }
            }
            (Some(client.clone()), Some(server.clone()))
        }
    })
}

struct LargestMessage<'a>(&'a Dataset);

impl FormatVisitor for LargestMessage<'_> {
    type Output = Result<Sizes, String>;
    fn visit<F: wirebench_formats::Format>(self) -> Result<Sizes, String> {
        Sizes::of::<F>(self.0)
    }
}

/// Every message of the matrix fits `--max-message`, and the messages of
/// all calls in flight fit in memory; refused before the run otherwise.
fn check_messages(matrix: &Matrix, max_message: usize, seed: u64) -> anyhow::Result<()> {
    let in_flight = matrix.loads().iter().map(|l| l.in_flight).max().unwrap_or(1);
    let formats = matrix.formats();
    for workload in matrix.workloads() {
        if workload == Workload::Multiply {
            continue;
        }
        let data = Dataset::generate(workload, seed);
        let mut largest = (0u64, FormatId::ALL[0]);
        for &format in &formats {
            let sizes = format.visit(LargestMessage(&data)).map_err(anyhow::Error::msg)?;
            let biggest = sizes.request.max(sizes.reply);
            if biggest > largest.0 {
                largest = (biggest, format);
            }
        }
        let (bytes, format) = largest;
        if bytes > max_message as u64 {
            bail!(
                "{workload} encodes to {bytes} bytes in {format}, over --max-message {}: raise --max-message (up to {}) or choose smaller sizes",
                format_size(max_message),
                format_size(limits::MAX_MESSAGE.max)
            );
        }
        let memory = bytes.saturating_mul(2).saturating_mul(in_flight as u64);
        if memory > limits::CLIENT_MESSAGE_MEMORY as u64 {
            bail!(
                "{workload} with {in_flight} calls in flight needs {} MiB for its {format} messages, over the {} MiB limit: lower --concurrency or the size",
                memory >> 20,
                limits::CLIENT_MESSAGE_MEMORY >> 20
            );
        }
    }
    Ok(())
}
