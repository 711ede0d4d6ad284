//! The command line. `wirebench` alone runs the default matrix.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use wirebench_formats::dataset::{DEFAULT_SEED, parse_size};
use wirebench_formats::{FormatId, Workload};
use wirebench_transports::{ClientConfig, Endpoint, ServerConfig, TransportKind};

use crate::plan::{self, ConfigFile, LoadModel, LoadSpec, Matrix, Timing};
use crate::run::{self, RunOptions};
use crate::servers::{Mode, ServerOptions};
use crate::{affinity, commands, instructions, progress, serve};
use wirebench_reports::Results;

/// Exit status: some cell failed.
pub const EXIT_FAILED_CELLS: u8 = 1;
/// Exit status: bad usage or input.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: interrupted (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "wirebench",
    version,
    about = "Compares serialization formats over transports: latency, throughput, bytes and CPU per call.",
    args_override_self = true,
    long_about = "Compares serialization formats over transports: latency, throughput, bytes and CPU per call.\n\n\
                  Without a command, runs the default matrix (like `wirebench run`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the comparison matrix and write a results file (the default).
    Run(Box<RunArgs>),
    /// Serve every format on the given transports until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// List the formats and their properties.
    Formats,
    /// Write an encoded request (or reply) to stdout.
    Dump(DumpArgs),
    /// Print encoded and zstd-compressed sizes of every format and workload.
    Sizes(SizesArgs),
    /// Render a results file: index.html, summary.md, results.csv.
    Report(ReportArgs),
    /// Compare two results files: a verdict per cell and metric; exit 3 on
    /// a regression.
    Compare(CompareArgs),
    /// Merge repeated runs of one matrix on one machine: each run stays a
    /// replicate of its own.
    Merge(MergeArgs),
    /// Write a results file in another tool's format.
    Export(ExportArgs),
    /// Count instructions per encode/decode/access with valgrind's callgrind.
    Instructions(InstructionsArgs),
    /// The callgrind child of `instructions` (internal).
    #[command(name = "__count", hide = true)]
    Count(CountArgs),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The results file.
    results: PathBuf,
    /// Output directory (default: next to the results file).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The base results file.
    base: PathBuf,
    /// The new results file.
    new: PathBuf,
    /// The smallest timing change that matters, percent (above 0, below
    /// 100).
    #[arg(long, default_value_t = 5.0, value_name = "PERCENT", value_parser = percent, allow_negative_numbers = true)]
    threshold: f64,
    /// Instruction-count threshold, percent (above 0, below 100).
    #[arg(long, default_value_t = 1.0, value_name = "PERCENT", value_parser = percent, allow_negative_numbers = true)]
    instructions_threshold: f64,
    /// Significance level after correcting for the number of comparisons
    /// (above 0, at most 0.5); intervals are 1 - alpha.
    #[arg(long, default_value_t = 0.05, value_parser = alpha, allow_negative_numbers = true)]
    alpha: f64,
    /// Multiple-comparison correction.
    #[arg(long, value_enum, default_value_t = CorrectionArg::Holm)]
    correction: CorrectionArg,
    /// Also fail (exit 3) when an exact metric changed.
    #[arg(long, value_enum)]
    fail_on: Option<FailOn>,
    /// Ignore `{cell}:{metric}` matching this glob (`*`, `?`, `[...]`);
    /// repeatable.
    #[arg(long, value_name = "GLOB", value_parser = glob)]
    ignore: Vec<String>,
    /// Compare runs from different machines anyway (timings meaningless).
    #[arg(long)]
    force: bool,
    /// Write comparison.html and comparison.md here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `--correction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CorrectionArg {
    /// Holm-Bonferroni (family-wise error rate).
    Holm,
    /// Benjamini-Hochberg (false discovery rate).
    #[value(alias = "benjamini-hochberg")]
    Bh,
}

/// `--fail-on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FailOn {
    /// An exact metric (encoded or wire bytes) changed.
    Changed,
}

/// A percentage above 0 and below 100.
fn percent(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number (a percentage, e.g. 5)"))?;
    if value > 0.0 && value < 100.0 {
        Ok(value)
    } else {
        Err(format!("{value}% is out of range: a percentage above 0 and below 100"))
    }
}

/// A significance level above 0 and at most 0.5.
fn alpha(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number (e.g. 0.05)"))?;
    if value > 0.0 && value <= 0.5 {
        Ok(value)
    } else {
        Err(format!("{value} is out of range: a probability above 0 and at most 0.5 (e.g. 0.05)"))
    }
}

/// A valid `--ignore` glob.
fn glob(text: &str) -> Result<String, String> {
    wirebench_reports::compare::Glob::new(text).map(|_| text.to_owned()).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Results files of the same matrix on the same machine.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Where to write the merged file.
    #[arg(long, short)]
    output: PathBuf,
    /// Merge runs with no cell in common or from different machines
    /// anyway.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The results file.
    results: PathBuf,
    /// bencher, github-smaller, github-bigger or markdown.
    #[arg(long)]
    to: String,
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct InstructionsArgs {
    /// Formats, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    formats: Option<Vec<String>>,
    /// Workloads (default: the default matrix's).
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Add the counts to this results file (rewritten atomically).
    #[arg(long, conflicts_with = "out")]
    into: Option<PathBuf>,
    /// Write a results file holding only the counts.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The valgrind binary.
    #[arg(long, default_value = "valgrind")]
    valgrind: PathBuf,
    /// Data seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

#[derive(Debug, Args)]
struct CountArgs {
    #[arg(long)]
    format: String,
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    #[arg(long)]
    seed: u64,
}

#[derive(Debug, Args, Default)]
struct RunArgs {
    /// A small matrix for smoke tests and CI: one size per workload,
    /// short windows (about 40 seconds).
    #[arg(long)]
    quick: bool,
    /// Formats, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    formats: Option<Vec<String>>,
    /// Transports, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    transports: Option<Vec<String>>,
    /// Workloads: multiply, echo-<size>, digest-<records>, or echo/digest
    /// for all default sizes.
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Echo payload sizes, e.g. 16B,1KiB (replaces the echo sizes).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<String>>,
    /// Digest batch sizes in records, e.g. 1,100 (replaces the digest sizes).
    #[arg(long, value_delimiter = ',')]
    records: Option<Vec<String>>,
    /// Calls in flight, one cell per value (default: 1,64).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<String>>,
    /// Connections per cell, calls spread over them (default: 1).
    #[arg(long)]
    connections: Option<usize>,
    /// Measured window per cell, e.g. 200ms, 2s.
    #[arg(long)]
    duration: Option<String>,
    /// Discarded warm-up per cell.
    #[arg(long)]
    warmup: Option<String>,
    /// Sub-windows per cell, the samples for statistics across runs.
    #[arg(long)]
    samples: Option<u32>,
    /// Open loop: this many calls per second per cell, latency corrected
    /// for coordinated omission (uncorrected kept too). Concurrency is
    /// then the most calls allowed in flight.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop with Poisson arrivals instead of a constant rate.
    #[arg(long, requires = "rate")]
    poisson: bool,
    /// A TOML matrix file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the cells that would run, and exit.
    #[arg(long)]
    list: bool,
    /// Run the servers inside this process instead of a child process.
    #[arg(long, conflicts_with = "connect")]
    in_process: bool,
    /// Drive a running `wirebench serve`: T=ADDR[,T=ADDR...], with
    /// #sha256:PIN for quic and TLS (as `serve` prints them).
    #[arg(long)]
    connect: Option<String>,
    /// Output directory (default: wirebench-results/<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Per-call deadline (default: 10s; 5s with --quick).
    #[arg(long)]
    timeout: Option<String>,
    /// http2 over TLS (h2c otherwise).
    #[arg(long)]
    tls: bool,
    /// udp datagram limit in bytes (default 1472, at most 65507).
    #[arg(long)]
    max_datagram: Option<usize>,
    /// CPU pinning: auto (client on CPU 0, server on the rest), off, or
    /// CLIENT/SERVER CPU lists like 0/1-3.
    #[arg(long, default_value = "auto")]
    pin: String,
    /// Data seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Test only: the server answers wrongly.
    #[arg(long, hide = true)]
    server_fault: Option<String>,
    /// Test only: the server pauses PAUSE every PERIOD, e.g. 50ms/500ms.
    #[arg(long, hide = true)]
    server_stall: Option<String>,
    /// Test only: the server process aborts after this long.
    #[arg(long, hide = true)]
    server_crash_after: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A transport to serve; repeat for more. Pairs with --listen in order.
    #[arg(long = "transport", required = true)]
    transports: Vec<String>,
    /// Address for the --transport before it (default 127.0.0.1:0; a path
    /// for unix).
    #[arg(long = "listen")]
    listens: Vec<String>,
    /// Serve http2 over TLS with a generated certificate.
    #[arg(long)]
    tls: bool,
    /// Largest request body accepted.
    #[arg(long, default_value_t = wirebench_transports::frame::DEFAULT_MAX_MESSAGE)]
    max_message: usize,
    /// udp datagram limit.
    #[arg(long, default_value_t = wirebench_transports::udp::DEFAULT_MAX_DATAGRAM)]
    max_datagram: usize,
    /// Pin the server to these CPUs, e.g. 1-3.
    #[arg(long)]
    cpus: Option<String>,
    /// Runtime worker threads (default: one per CPU it may use).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Test only: answer wrongly (wrong-replies).
    #[arg(long, hide = true)]
    fault: Option<String>,
    /// Test only: pause PAUSE every PERIOD.
    #[arg(long, hide = true)]
    stall: Option<String>,
    /// Test only: abort after this long.
    #[arg(long, hide = true)]
    crash_after: Option<String>,
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// The format.
    #[arg(long)]
    format: String,
    /// multiply, echo or digest (or a full id like echo-1KiB).
    #[arg(long)]
    workload: String,
    /// Echo payload bytes (default 1KiB).
    #[arg(long)]
    size: Option<String>,
    /// Digest records (default 100).
    #[arg(long)]
    records: Option<usize>,
    /// Data seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// The encoded reply instead of the request.
    #[arg(long)]
    reply: bool,
    /// A hex dump instead of raw bytes.
    #[arg(long)]
    hex: bool,
}

#[derive(Debug, Args)]
struct SizesArgs {
    /// Data seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

/// Runs the command line; the process's exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            // A value a parse function refused: its message names the
            // option, the value and the range, so one line says it all.
            let text = e.render().to_string();
            let _ = writeln_stderr(text.lines().next().unwrap_or("error: invalid value"));
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match dispatch(cli.command.unwrap_or_else(|| Command::Run(Box::default()))) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln_stderr(&format!("wirebench: {e:#}"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn writeln_stderr(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run_command(*args),
        Command::Serve(args) => {
            serve::serve(serve_options(args)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Formats => {
            print!("{}", commands::formats());
            Ok(ExitCode::SUCCESS)
        }
        Command::Dump(args) => {
            let size =
                args.size.as_deref().map(|s| parse_size(s).with_context(|| format!("bad size {s:?}"))).transpose()?;
            let request = commands::DumpRequest {
                format: args.format.parse().map_err(anyhow::Error::msg)?,
                workload: commands::workload(&args.workload, size, args.records)?,
                seed: args.seed,
                reply: args.reply,
                hex: args.hex,
            };
            commands::dump(request, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sizes(args) => {
            print!("{}", commands::sizes(&Workload::defaults(), args.seed)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let rendered = wirebench_reports::render_file(&args.results, args.out.as_deref())?;
            for path in rendered.paths() {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare(args) => compare_command(args),
        Command::Merge(args) => {
            let runs = args
                .inputs
                .iter()
                .map(|p| Results::read(p).map(|r| (p.display().to_string(), r)))
                .collect::<Result<Vec<_>, _>>()?;
            let merged = wirebench_reports::exports::merge(runs, args.force)?;
            merged.write_atomic(&args.output).with_context(|| format!("cannot write {}", args.output.display()))?;
            println!("merged {} runs into {}", args.inputs.len(), args.output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            let results = Results::read(&args.results)?;
            let text = match args.to.as_str() {
                "bencher" => wirebench_reports::exports::bencher(&results),
                "github-smaller" => wirebench_reports::exports::github_smaller(&results),
                "github-bigger" => wirebench_reports::exports::github_bigger(&results),
                "markdown" => wirebench_reports::render::markdown(&results),
                other => bail!("unknown export {other:?}: expected bencher, github-smaller, github-bigger or markdown"),
            };
            match args.out {
                Some(path) => wirebench_reports::model::write_atomic(&path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Instructions(args) => instructions_command(args),
        Command::Count(args) => {
            let format: FormatId = args.format.parse().map_err(anyhow::Error::msg)?;
            instructions::child(format, &plan::parse_workloads(&args.workloads)?, args.seed)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit status of `compare` on a regression.
pub const EXIT_REGRESSION: u8 = 3;

fn compare_command(args: CompareArgs) -> anyhow::Result<ExitCode> {
    use wirebench_reports::compare::{self, Correction, Options};
    let base = Results::read(&args.base)?;
    let new = Results::read(&args.new)?;
    let options = Options {
        threshold: args.threshold / 100.0,
        instructions_threshold: args.instructions_threshold / 100.0,
        alpha: args.alpha,
        correction: match args.correction {
            CorrectionArg::Holm => Correction::Holm,
            CorrectionArg::Bh => Correction::BenjaminiHochberg,
        },
        ignore: args.ignore,
        force: args.force,
        ..Options::default()
    };
    let fail_on_changed = args.fail_on == Some(FailOn::Changed);
    let comparison = compare::compare(&base, &new, &options)
        .with_context(|| format!("cannot compare {} with {}", args.base.display(), args.new.display()))?;
    let markdown = compare::markdown(&comparison);
    print!("{markdown}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        wirebench_reports::model::write_atomic(&dir.join("comparison.md"), markdown.as_bytes())?;
        wirebench_reports::model::write_atomic(&dir.join("comparison.html"), compare::html(&comparison).as_bytes())?;
        println!("\ncomparison: {}", dir.join("comparison.html").display());
    }
    Ok(if comparison.regressed() || (fail_on_changed && comparison.changed()) {
        ExitCode::from(EXIT_REGRESSION)
    } else {
        ExitCode::SUCCESS
    })
}

fn instructions_command(args: InstructionsArgs) -> anyhow::Result<ExitCode> {
    let formats = match &args.formats {
        Some(f) => plan::parse_names(f, |s| s.parse::<FormatId>())?,
        None => FormatId::ALL.to_vec(),
    };
    let workloads = match &args.workloads {
        Some(w) => plan::parse_workloads(w)?,
        None => Workload::defaults(),
    };
    let counts = instructions::count(&args.valgrind, &formats, &workloads, args.seed)?;
    for (key, n) in &counts.counts {
        println!("{key:<40} {n:>14}");
    }
    match (&args.into, &args.out) {
        (Some(path), _) => {
            let mut results = Results::read(path)?;
            results.instructions = Some(counts);
            results.write_atomic(path).with_context(|| format!("cannot write {}", path.display()))?;
            println!("instruction counts added to {}", path.display());
        }
        (None, Some(path)) => {
            let options = RunOptions {
                matrix: Matrix { name: "instructions".into(), formats, transports: vec![], workloads, loads: vec![] },
                timing: Timing::DEFAULT,
                seed: args.seed,
                mode: Mode::Process,
                client: ClientConfig::default(),
                server: ServerOptions { config: ServerConfig::default(), cpus: None, crash_after: None },
                client_cpus: None,
                out_dir: PathBuf::new(),
                quiet: true,
                quick: false,
            };
            let mut results = run::empty_results(&options, &[]);
            results.instructions = Some(counts);
            results.environment.finished_at = crate::environment::now_rfc3339();
            results.write_atomic(path).with_context(|| format!("cannot write {}", path.display()))?;
            println!("instruction counts: {}", path.display());
        }
        (None, None) => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Pairs each `--transport` with the `--listen` that follows it (before the
/// next `--transport`), in command-line order. Clap keeps the two lists
/// apart, which loses which address belongs to which transport when one is
/// omitted.
fn pair_listens(argv: &[String]) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    let mut args = argv.iter().skip_while(|a| a.as_str() != "serve").skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next().cloned()).context("a flag is missing its value");
        match flag {
            "--transport" => pairs.push((value()?, None)),
            "--listen" => {
                let address = value()?;
                match pairs.last_mut() {
                    Some((_, slot @ None)) => *slot = Some(address),
                    Some((t, Some(_))) => bail!("two --listen for --transport {t}"),
                    None => bail!("--listen {address} comes before any --transport"),
                }
            }
            _ => {}
        }
    }
    Ok(pairs)
}

fn serve_options(args: ServeArgs) -> anyhow::Result<serve::ServeOptions> {
    let argv: Vec<String> = std::env::args().collect();
    let pairs = pair_listens(&argv)?;
    if pairs.len() != args.transports.len() {
        bail!("cannot pair --transport and --listen flags: put each --listen after its --transport");
    }
    let mut listen = Vec::new();
    for (t, address) in pairs {
        let kind: TransportKind = t.parse().map_err(anyhow::Error::msg)?;
        let address = address.unwrap_or_else(|| "127.0.0.1:0".into());
        listen.push((kind, address));
    }
    let config = ServerConfig {
        max_message: args.max_message,
        max_datagram: args.max_datagram,
        tls: args.tls,
        fault: args.fault.as_deref().map(serve::parse_fault).transpose()?.unwrap_or_default(),
        stall: args.stall.as_deref().map(serve::parse_stall).transpose()?,
    };
    Ok(serve::ServeOptions {
        listen,
        config,
        worker_threads: args.worker_threads,
        cpus: args.cpus.as_deref().map(affinity::parse_cpus).transpose().map_err(anyhow::Error::msg)?,
        crash_after: args.crash_after.as_deref().map(plan::parse_duration).transpose()?,
    })
}

/// Builds the run's options from flags over a config file over defaults.
fn run_options(args: &RunArgs) -> anyhow::Result<RunOptions> {
    let file = args.config.as_deref().map(ConfigFile::read).transpose()?.unwrap_or_default();
    let mut matrix = if args.quick { Matrix::quick() } else { Matrix::default_matrix() };
    let mut timing = if args.quick { Timing::QUICK } else { Timing::DEFAULT };
    if let Some(path) = &args.config {
        matrix.name = file.name.clone().unwrap_or_else(|| path.display().to_string());
    }

    if let Some(formats) = args.formats.as_ref().or(file.formats.as_ref()) {
        matrix.formats = plan::parse_names(formats, |s| s.parse::<FormatId>())?;
    }
    if let Some(transports) = args.transports.as_ref().or(file.transports.as_ref()) {
        matrix.transports = plan::parse_names(transports, |s| s.parse::<TransportKind>())?;
    }
    if let Some(workloads) = args.workloads.as_ref().or(file.workloads.as_ref()) {
        matrix.workloads = plan::parse_workloads(workloads)?;
    }
    if let Some(sizes) = &args.sizes {
        let sizes = plan::parse_names(sizes, |s| parse_size(s).ok_or_else(|| format!("bad size {s:?}")))?;
        let had_echo = matrix.workloads.iter().any(|w| matches!(w, Workload::Echo { .. }));
        matrix.workloads.retain(|w| !matches!(w, Workload::Echo { .. }));
        if had_echo || args.workloads.is_none() {
            matrix.workloads.extend(sizes.into_iter().map(|size| Workload::Echo { size }));
        }
    }
    if let Some(records) = &args.records {
        let records =
            plan::parse_names(records, |s| s.parse::<usize>().map_err(|e| format!("bad record count {s:?}: {e}")))?;
        let had_digest = matrix.workloads.iter().any(|w| matches!(w, Workload::Digest { .. }));
        matrix.workloads.retain(|w| !matches!(w, Workload::Digest { .. }));
        if had_digest || args.workloads.is_none() {
            matrix.workloads.extend(records.into_iter().map(|records| Workload::Digest { records }));
        }
    }
    matrix.workloads.sort();
    matrix.workloads.dedup();

    let concurrency: Vec<usize> = match (&args.concurrency, &file.concurrency) {
        (Some(c), _) => {
            plan::parse_names(c, |s| s.parse::<usize>().map_err(|e| format!("bad concurrency {s:?}: {e}")))?
        }
        (None, Some(c)) => c.clone(),
        (None, None) => matrix.loads.iter().map(|l| l.in_flight).collect(),
    };
    if concurrency.contains(&0) {
        bail!("concurrency must be at least 1");
    }
    let connections = args.connections.or(file.connections).unwrap_or(1).max(1);
    let model = match args.rate.or(file.rate) {
        Some(rate) if rate > 0.0 && rate.is_finite() => {
            LoadModel::Open { rate, poisson: args.poisson || file.poisson.unwrap_or(false) }
        }
        Some(rate) => bail!("--rate must be a positive number, not {rate}"),
        None => LoadModel::Closed,
    };
    matrix.loads = concurrency.iter().map(|&in_flight| LoadSpec { model, in_flight, connections }).collect();

    if let Some(d) = args.duration.as_ref().or(file.duration.as_ref()) {
        timing.duration = plan::parse_duration(d)?;
    }
    if let Some(d) = args.warmup.as_ref().or(file.warmup.as_ref()) {
        timing.warmup = plan::parse_duration(d)?;
    }
    if let Some(s) = args.samples.or(file.samples) {
        timing.samples = s.max(1);
    }
    if let Some(t) = &args.timeout {
        timing.timeout = plan::parse_duration(t)?;
    }
    if timing.duration < Duration::from_millis(1) {
        bail!("--duration must be at least 1ms");
    }

    let mode = match &args.connect {
        Some(spec) => Mode::Remote(parse_connect(spec)?),
        None if args.in_process => Mode::InProcess,
        None => Mode::Process,
    };
    let max_datagram = args.max_datagram.unwrap_or(wirebench_transports::udp::DEFAULT_MAX_DATAGRAM);
    let client =
        ClientConfig { connections, timeout: timing.timeout, max_datagram, tls: args.tls, ..ClientConfig::default() };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (client_cpus, server_cpus) = match args.pin.as_str() {
        "off" => (None, None),
        "auto" => match affinity::default_split(cores) {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        },
        lists => {
            let (c, s) =
                lists.split_once('/').context("--pin takes auto, off, or CLIENT/SERVER CPU lists like 0/1-3")?;
            (
                Some(affinity::parse_cpus(c).map_err(anyhow::Error::msg)?),
                Some(affinity::parse_cpus(s).map_err(anyhow::Error::msg)?),
            )
        }
    };
    let server_config = ServerConfig {
        max_datagram,
        tls: args.tls,
        fault: args.server_fault.as_deref().map(serve::parse_fault).transpose()?.unwrap_or_default(),
        stall: args.server_stall.as_deref().map(serve::parse_stall).transpose()?,
        ..ServerConfig::default()
    };
    Ok(RunOptions {
        matrix,
        timing,
        seed: args.seed,
        server: ServerOptions {
            config: server_config,
            cpus: if matches!(mode, Mode::Remote(_)) { None } else { server_cpus },
            crash_after: args.server_crash_after.as_deref().map(plan::parse_duration).transpose()?,
        },
        mode,
        client,
        client_cpus,
        out_dir: args.out.clone().unwrap_or_else(run::default_out_dir),
        quiet: args.quiet,
        quick: args.quick,
    })
}

/// Parses `tcp=127.0.0.1:5000,quic=host:5001#sha256:...`.
fn parse_connect(spec: &str) -> anyhow::Result<Vec<(TransportKind, Endpoint)>> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (t, address) = item.split_once('=').with_context(|| format!("--connect takes T=ADDR, not {item:?}"))?;
            let kind: TransportKind = t.parse().map_err(anyhow::Error::msg)?;
            Ok((kind, Endpoint::parse(kind, address).map_err(anyhow::Error::msg)?))
        })
        .collect()
}

fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let options = run_options(&args)?;
    if args.list {
        let cells = options.matrix.cells();
        for cell in &cells {
            println!("{}", cell.key());
        }
        eprintln_note(&format!("{} cells", cells.len()));
        return Ok(ExitCode::SUCCESS);
    }
    if !crate::environment::optimized() && !options.quiet {
        eprintln_note("note: this is a debug build; measure with `cargo run --release`");
    }
    let out_dir = options.out_dir.clone();
    let summary = run::run(options)?;
    println!("{}", progress::summary(&summary.results));
    println!("results: {}", summary.results_path.display());
    match wirebench_reports::render_all(&summary.results, &out_dir) {
        Ok(rendered) => {
            println!("report:  {}", rendered.html.display());
            println!("summary: {}", rendered.markdown.display());
        }
        // The results file is complete either way; rendering can be redone
        // with `wirebench report`.
        Err(e) => eprintln_note(&format!("wirebench: could not render the report: {e}")),
    }
    Ok(if summary.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.results.any_failed() {
        ExitCode::from(EXIT_FAILED_CELLS)
    } else {
        ExitCode::SUCCESS
    })
}

fn eprintln_note(s: &str) {
    let _ = writeln_stderr(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> RunOptions {
        let mut argv = vec!["wirebench", "run"];
        argv.extend(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Command::Run(run)) = cli.command else { panic!() };
        run_options(&run).unwrap()
    }

    #[test]
    fn flags_shape_the_matrix() {
        let o = parse(&[
            "--formats",
            "json,bincode",
            "--transports",
            "tcp",
            "--workloads",
            "echo",
            "--sizes",
            "64KiB",
            "--concurrency",
            "1,8",
        ]);
        assert_eq!(o.matrix.formats, vec![FormatId::Json, FormatId::Bincode]);
        assert_eq!(o.matrix.workloads, vec![Workload::Echo { size: 65536 }]);
        assert_eq!(o.matrix.loads.iter().map(|l| l.in_flight).collect::<Vec<_>>(), vec![1, 8]);
        let open = parse(&["--rate", "1000", "--poisson", "--concurrency", "4"]);
        assert_eq!(open.matrix.loads[0].to_string(), "p1000c4");
        let quick = parse(&["--quick"]);
        assert_eq!(quick.timing, Timing::QUICK);
        assert_eq!(quick.matrix.workloads.len(), 3);
    }

    #[test]
    fn listens_pair_with_the_transport_before_them() {
        let argv: Vec<String> =
            "wirebench serve --transport tcp --listen 0.0.0.0:1 --transport quic --transport=unix --listen=/s --tls"
                .split(' ')
                .map(String::from)
                .collect();
        assert_eq!(
            pair_listens(&argv).unwrap(),
            vec![("tcp".into(), Some("0.0.0.0:1".into())), ("quic".into(), None), ("unix".into(), Some("/s".into()))]
        );
        let bad: Vec<String> = "wirebench serve --listen x --transport tcp".split(' ').map(String::from).collect();
        assert!(pair_listens(&bad).is_err());
    }

    #[test]
    fn connect_specs_parse() {
        let pin = format!("#sha256:{}", "ab".repeat(32));
        let parsed = parse_connect(&format!("tcp=127.0.0.1:1,quic=127.0.0.1:2{pin}")).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(parsed[1].1.pin.is_some());
        assert!(parse_connect("tcp").is_err());
        assert!(parse_connect("smtp=1.2.3.4:25").is_err());
    }
}
