//! The command line. `wirebench` alone runs the default matrix.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use wirebench_formats::dataset::DEFAULT_SEED;
use wirebench_formats::{FormatId, Workload};
use wirebench_transports::{ServerConfig, TransportKind};

use crate::limits::{self, Parser as Ranged};
use crate::options::{self, Given, RunArgs};
use crate::plan::{self, Matrix};
use crate::run::{self, RunOptions};
use crate::{affinity, call_counts, commands, instructions, output, progress, serve};
use wirebench_reports::Results;

/// Exit status: some cell failed.
pub const EXIT_FAILED_CELLS: u8 = 1;
/// Exit status: bad usage or input.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: interrupted (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// `wirebench [run] [FLAGS]`: the flags of `run` work without the word, so
/// `cargo run --release -- --quick` is `wirebench run --quick`.
#[derive(Debug, Parser)]
#[command(
    name = "wirebench",
    version,
    about = "Compares serialization formats over transports: latency, throughput, bytes and CPU per call.",
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    long_about = "Compares serialization formats over transports: latency, throughput, bytes and CPU per call.\n\n\
                  Without a command, runs the matrix (like `wirebench run`, with the same flags)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
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
    /// Count instructions per encode/decode/access, and instructions and
    /// system calls per whole call, with valgrind's callgrind.
    Instructions(InstructionsArgs),
    /// The callgrind child of `instructions` (internal).
    #[command(name = "__count", hide = true)]
    Count(CountArgs),
    /// The counting server of `instructions` (internal).
    #[command(name = "__count-serve", hide = true)]
    CountServe(call_counts::ServeArgs),
    /// The counting client of `instructions` (internal).
    #[command(name = "__count-calls", hide = true)]
    CountCalls(call_counts::CallsArgs),
    /// One client process of a `run --clients K` cell (internal): its job
    /// on stdin, its result on stdout.
    #[command(name = "__client", hide = true)]
    Client,
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
    /// The target format.
    #[arg(long, value_enum)]
    to: ExportTo,
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExportTo {
    /// Bencher's JSON (bencher.dev).
    Bencher,
    /// github-action-benchmark, smaller is better (latencies, bytes).
    GithubSmaller,
    /// github-action-benchmark, bigger is better (calls/s).
    GithubBigger,
    /// The Markdown summary.
    Markdown,
}

#[derive(Debug, Args)]
struct InstructionsArgs {
    /// Formats, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = Ranged::new(|s: &str| s.trim().parse::<FormatId>()))]
    formats: Option<Vec<FormatId>>,
    /// Workloads: multiply, echo-SIZE, digest-RECORDS, or echo/digest
    /// for all default sizes (default: the default matrix's for codec
    /// operations, the quick matrix's for whole calls).
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Transports whose whole calls to count, comma-separated, all (every
    /// transport and framework), or none for codec operations only
    /// (default: the quick matrix's transports, each with its formats
    /// there, unless --formats is given: then all).
    #[arg(long, value_name = "T,..", value_delimiter = ',',
          value_parser = Ranged::new(call_counts::transport_choice))]
    transports: Option<Vec<call_counts::TransportChoice>>,
    /// Keep the whole calls' callgrind profiles and valgrind logs here, for
    /// callgrind_annotate (default: removed).
    #[arg(long, value_name = "DIR")]
    profiles: Option<PathBuf>,
    /// Calls counted per cell after the warm-up, 1 to 10000.
    #[arg(long, value_name = "N", default_value_t = call_counts::DEFAULT_CALLS,
          value_parser = limits::count(limits::CALLS), allow_hyphen_values = true)]
    calls: u64,
    /// Add the counts to this results file (rewritten atomically).
    #[arg(long, conflicts_with = "out")]
    into: Option<PathBuf>,
    /// Write a results file holding only the counts.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The valgrind binary.
    #[arg(long, default_value = "valgrind")]
    valgrind: PathBuf,
    /// Data seed, any 64-bit value.
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = limits::count(limits::SEED), allow_hyphen_values = true)]
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

#[derive(Debug, Args)]
struct ServeArgs {
    /// A transport to serve; repeat for more. Pairs with --listen in order.
    #[arg(long = "transport", required = true, value_parser = Ranged::new(|s: &str| s.trim().parse::<TransportKind>()))]
    transports: Vec<TransportKind>,
    /// Address for the --transport before it (default 127.0.0.1:0; a path
    /// for unix).
    #[arg(long = "listen")]
    listens: Vec<String>,
    /// Serve http2 over TLS with a generated certificate.
    #[arg(long)]
    tls: bool,
    /// Largest request body accepted, 1KiB to 1GiB.
    #[arg(long, value_name = "SIZE", default_value = "16MiB",
          value_parser = limits::bytes(limits::MAX_MESSAGE), allow_hyphen_values = true)]
    max_message: usize,
    /// udp datagram limit in bytes, header included, 64 to 65507.
    #[arg(long, value_name = "BYTES", default_value_t = wirebench_transports::udp::DEFAULT_MAX_DATAGRAM,
          value_parser = limits::bytes(limits::MAX_DATAGRAM), allow_hyphen_values = true)]
    max_datagram: usize,
    /// Pin the server to these CPUs, e.g. 1-3 (they must be usable here).
    #[arg(long, value_name = "CPUS", value_parser = Ranged::new(affinity::parse_usable_cpus))]
    cpus: Option<affinity::CpuList>,
    /// Runtime worker threads, 1 to 256 (default: one per CPU it may use).
    #[arg(long, value_name = "N", value_parser = limits::count_usize(limits::WORKER_THREADS), allow_hyphen_values = true)]
    worker_threads: Option<usize>,
    /// Test only: answer wrongly (wrong-replies).
    #[arg(long, hide = true)]
    fault: Option<String>,
    /// Test only: pause PAUSE every PERIOD.
    #[arg(long, hide = true)]
    stall: Option<String>,
    /// Test only: busy-wait DELAY in every call (of the formats after `:`),
    /// e.g. 10us or 10us:json,bincode.
    #[arg(long, hide = true, value_parser = Ranged::new(serve::parse_inject))]
    inject_delay: Option<wirebench_transports::Inject>,
    /// Test only: abort after this long.
    #[arg(long, hide = true, value_parser = limits::span(limits::TEST_DELAY))]
    crash_after: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// The format.
    #[arg(long, value_parser = Ranged::new(|s: &str| s.trim().parse::<FormatId>()))]
    format: FormatId,
    /// multiply, echo or digest (sized by --size or --records), or a full id
    /// like echo-1KiB.
    #[arg(long)]
    workload: String,
    /// Echo payload bytes, 1B to 64MiB (default 1KiB).
    #[arg(long, value_parser = limits::bytes(limits::ECHO_SIZE), allow_hyphen_values = true)]
    size: Option<usize>,
    /// Digest records, 1 to 100000 (default 100).
    #[arg(long, value_parser = limits::count_usize(limits::RECORDS), allow_hyphen_values = true)]
    records: Option<usize>,
    /// Data seed, any 64-bit value.
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = limits::count(limits::SEED), allow_hyphen_values = true)]
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
    /// Data seed, any 64-bit value.
    #[arg(long, default_value_t = DEFAULT_SEED, value_parser = limits::count(limits::SEED), allow_hyphen_values = true)]
    seed: u64,
}

/// Runs the command line; the process's exit status.
pub fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(&e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match cli.command {
        None => run_command(&cli.run, &matches),
        Some(Command::Run(args)) => {
            let sub = matches.subcommand_matches("run").unwrap_or(&matches);
            run_command(&args, sub)
        }
        Some(command) => dispatch(command),
    };
    match result {
        Ok(code) => code,
        // A printing command whose reader went away ends quietly.
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            output::stderr(&format!("wirebench: {}", one_line(&format!("{e:#}"))));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Prints a clap error as one line (help and version go to stdout whole).
fn usage_error(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    output::stderr(&format!("wirebench: {}", clap_one_line(&text)));
    ExitCode::from(EXIT_USAGE)
}

/// Clap's message without its "error:" prefix, blank lines, usage block
/// and "For more information" hint, joined into one line.
pub fn clap_one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    one_line(lines.join(" ").trim_start_matches("error: "))
}

/// Folds a message into one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The whole command line's definition (tests walk it option by option).
pub fn command() -> clap::Command {
    Cli::command()
}

/// The options `wirebench run` resolves to with no flags at all.
pub fn default_run_options() -> anyhow::Result<RunOptions> {
    resolve_run(["wirebench", "run"])
}

/// Resolves a `wirebench [run] FLAGS` command line to its run options,
/// exactly as [`main`] would (tests and the default-matrix helpers use it).
pub fn resolve_run<I, T>(argv: I) -> anyhow::Result<RunOptions>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| anyhow::anyhow!(clap_one_line(&e.render().to_string())))?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| anyhow::anyhow!(clap_one_line(&e.render().to_string())))?;
    match cli.command {
        None => options::resolve(&cli.run, &matches),
        Some(Command::Run(args)) => options::resolve(&args, matches.subcommand_matches("run").unwrap_or(&matches)),
        Some(_) => bail!("not a run command line"),
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(_) => unreachable!("run is dispatched by main"),
        Command::Serve(args) => {
            serve::serve(serve_options(args)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Formats => {
            output::stdout(&commands::formats())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dump(args) => {
            let request = commands::DumpRequest {
                format: args.format,
                workload: commands::workload(&args.workload, args.size, args.records)?,
                seed: args.seed,
                reply: args.reply,
                hex: args.hex,
            };
            commands::dump(request, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sizes(args) => {
            output::stdout(&commands::sizes(&Workload::defaults(), args.seed)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let rendered = wirebench_reports::render_file(&args.results, args.out.as_deref())?;
            for path in rendered.paths() {
                output::line(&path.display().to_string())?;
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
            output::line(&format!("merged {} runs into {}", args.inputs.len(), args.output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            let results = Results::read(&args.results)?;
            let text = match args.to {
                ExportTo::Bencher => wirebench_reports::exports::bencher(&results),
                ExportTo::GithubSmaller => wirebench_reports::exports::github_smaller(&results),
                ExportTo::GithubBigger => wirebench_reports::exports::github_bigger(&results),
                ExportTo::Markdown => wirebench_reports::render::markdown(&results),
            };
            match args.out {
                Some(path) => wirebench_reports::model::write_atomic(&path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => output::stdout(&text)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Instructions(args) => instructions_command(args),
        Command::Client => {
            crate::clients::child_main()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Count(args) => {
            let format: FormatId = args.format.parse().map_err(anyhow::Error::msg)?;
            instructions::child(format, &plan::parse_workloads(&args.workloads)?, args.seed)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CountServe(args) => {
            call_counts::serve_command(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CountCalls(args) => {
            call_counts::calls_command(args)?;
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
    // The verdict is the exit status; a reader that went away does not
    // change it.
    let _ = output::stdout(&markdown);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        wirebench_reports::model::write_atomic(&dir.join("comparison.md"), markdown.as_bytes())?;
        wirebench_reports::model::write_atomic(&dir.join("comparison.html"), compare::html(&comparison).as_bytes())?;
        let _ = output::line(&format!("\ncomparison: {}", dir.join("comparison.html").display()));
    }
    Ok(if comparison.regressed() || (fail_on_changed && comparison.changed()) {
        ExitCode::from(EXIT_REGRESSION)
    } else {
        ExitCode::SUCCESS
    })
}

fn instructions_command(args: InstructionsArgs) -> anyhow::Result<ExitCode> {
    let formats = args.formats.clone().unwrap_or_else(|| FormatId::ALL.to_vec());
    let (workloads, call_workloads) = match &args.workloads {
        Some(w) => (plan::parse_workloads(w)?, plan::parse_workloads(w)?),
        None => (Workload::defaults(), resolve_run(["wirebench", "run", "--quick"])?.matrix.workloads()),
    };
    // Whole calls: by default the quick matrix's cells, its transports each
    // with its formats there; named formats or transports, their product.
    let pairs = match (&args.formats, &args.transports) {
        (None, None) => call_counts::matrix_pairs(&resolve_run(["wirebench", "run", "--quick"])?.matrix),
        (_, choices) => {
            let choices = choices.as_deref().unwrap_or(&[call_counts::TransportChoice::All]);
            let transports = call_counts::transports(choices).map_err(anyhow::Error::msg)?;
            transports.into_iter().map(|t| (t, formats.clone())).collect()
        }
    };
    let transports: Vec<TransportKind> = pairs.iter().map(|(t, _)| *t).collect();
    let mut counts = instructions::count(&args.valgrind, &formats, &workloads, args.seed)?;
    let request = call_counts::Request {
        valgrind: &args.valgrind,
        transports: &pairs,
        workloads: &call_workloads,
        seed: args.seed,
        schedule: call_counts::Schedule { warmup: call_counts::WARMUP_CALLS, calls: args.calls },
        profiles: args.profiles.as_deref(),
    };
    call_counts::add(&mut counts, &request)?;
    // The counts are the result; a closed stdout must not lose them.
    let printed = output::stdout(&instructions::table(&counts));
    match (&args.into, &args.out) {
        (Some(path), _) => {
            let mut results = Results::read(path)?;
            results.instructions = Some(counts);
            results.write_atomic(path).with_context(|| format!("cannot write {}", path.display()))?;
            let _ = output::line(&format!("instruction counts added to {}", path.display()));
        }
        (None, Some(path)) => {
            let mut options = default_run_options()?;
            options.matrix = Matrix::product("instructions".into(), formats, transports, workloads, vec![]);
            options.seed = args.seed;
            let mut results = run::empty_results(&options, &[]);
            results.instructions = Some(counts);
            results.environment.finished_at = crate::environment::now_rfc3339();
            results.write_atomic(path).with_context(|| format!("cannot write {}", path.display()))?;
            let _ = output::line(&format!("instruction counts: {}", path.display()));
        }
        (None, None) => printed?,
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
    for ((t, address), kind) in pairs.into_iter().zip(&args.transports) {
        debug_assert_eq!(t.trim().parse::<TransportKind>().ok(), Some(*kind));
        let address = address.unwrap_or_else(|| "127.0.0.1:0".into());
        listen.push((*kind, address));
    }
    let config = ServerConfig {
        max_message: args.max_message,
        max_datagram: args.max_datagram,
        tls: args.tls,
        fault: args.fault.as_deref().map(serve::parse_fault).transpose()?.unwrap_or_default(),
        stall: args.stall.as_deref().map(serve::parse_stall).transpose()?,
        inject: args.inject_delay,
        ..ServerConfig::default()
    };
    Ok(serve::ServeOptions {
        listen,
        config,
        worker_threads: args.worker_threads,
        cpus: args.cpus.map(|c| c.0),
        crash_after: args.crash_after,
    })
}

fn run_command(args: &RunArgs, given: &dyn Given) -> anyhow::Result<ExitCode> {
    let options = options::resolve(args, given)?;
    if args.list {
        let cells = options.matrix.cells();
        let mut text = String::new();
        for cell in &cells {
            text.push_str(&cell.key());
            text.push('\n');
        }
        output::stdout(&text)?;
        output::stderr(&format!("{} cells", cells.len()));
        return Ok(ExitCode::SUCCESS);
    }
    if !crate::environment::optimized() && !options.quiet {
        output::stderr("note: this is a debug build; measure with `cargo run --release`");
    }
    let summary = run::run(options)?;
    // Everything below is also in the files; a closed stdout loses nothing.
    let out_dir = summary.out_dir.clone();
    let mut lines = vec![progress::summary(&summary.results), format!("results: {}", summary.results_path.display())];
    match wirebench_reports::render_all(&summary.results, &out_dir) {
        Ok(rendered) => {
            lines.push(format!("report:  {}", rendered.html.display()));
            lines.push(format!("summary: {}", rendered.markdown.display()));
            lines.push(format!("csv:     {}", rendered.csv.display()));
        }
        // The results file is complete either way; rendering can be redone
        // with `wirebench report`.
        Err(e) => output::stderr(&format!("wirebench: could not render the report: {e}")),
    }
    let _ = output::line(&lines.join("\n"));
    Ok(if summary.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if summary.results.any_failed() {
        ExitCode::from(EXIT_FAILED_CELLS)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::{LoadModel, Timing};

    fn resolve(argv: &str) -> RunOptions {
        resolve_run(argv.split_whitespace()).unwrap_or_else(|e| panic!("{argv}: {e:#}"))
    }

    fn error(argv: &str) -> String {
        format!("{:#}", resolve_run(argv.split_whitespace()).err().unwrap_or_else(|| panic!("{argv} was accepted")))
    }

    /// The comparable parts of a run's options.
    fn shape(o: &RunOptions) -> (Matrix, Timing, u64, usize, Duration, usize, usize, bool) {
        (
            o.matrix.clone(),
            o.timing,
            o.seed,
            o.client.connections,
            o.client.timeout,
            o.client.max_datagram,
            o.client.max_message,
            o.quick,
        )
    }

    #[test]
    fn no_command_means_run_with_the_same_defaults() {
        let bare = resolve("wirebench");
        let run = resolve("wirebench run");
        assert_eq!(shape(&bare), shape(&run));
        assert_eq!(bare.client_cpus, run.client_cpus);
        assert_eq!(bare.server.cpus, run.server.cpus);
        // What the README says the default matrix is.
        assert_eq!(bare.matrix.name, "default");
        assert_eq!(bare.matrix.formats(), FormatId::ALL.to_vec());
        assert_eq!(bare.matrix.transports(), TransportKind::ALL.to_vec());
        assert_eq!(bare.matrix.workloads(), Workload::defaults());
        assert_eq!(bare.matrix.loads().iter().map(|l| l.in_flight).collect::<Vec<_>>(), vec![1, 64]);
        assert!(bare.matrix.loads().iter().all(|l| l.model == LoadModel::Closed && l.connections == 1));
        assert_eq!(
            bare.timing,
            Timing {
                warmup: Duration::from_millis(40),
                duration: Duration::from_millis(150),
                samples: 10,
                timeout: Duration::from_secs(10)
            }
        );
        assert_eq!(bare.seed, DEFAULT_SEED);
        assert_eq!(bare.client.max_datagram, wirebench_transports::udp::DEFAULT_MAX_DATAGRAM);
        assert_eq!(bare.client.max_message, wirebench_transports::frame::DEFAULT_MAX_MESSAGE);
        assert!(bare.out_dir.is_none() && !bare.quiet && !bare.quick);
        if std::thread::available_parallelism().unwrap().get() >= 2 {
            assert!(bare.client_cpus.is_some() && bare.server.cpus.is_some(), "--pin auto splits the CPUs");
        }
    }

    #[test]
    fn built_in_slices_carry_their_own_modes_unless_mode_is_given() {
        let keys = |argv: &str| resolve(argv).matrix.cells().iter().map(|c| c.key()).collect::<Vec<_>>();
        let default = keys("wirebench");
        for key in [
            "multiply/protobuf/tcp/c64/oneway",
            "multiply/protobuf/nats/c64/oneway",
            "echo-1KiB/protobuf/grpc/c64/stream16",
            "multiply/protobuf/udp/c64/pubsub4",
            "multiply/protobuf/mqtt/c64/pubsub4",
        ] {
            assert!(default.contains(&key.to_owned()), "{key}");
        }
        // Each mode only on the slices that name it, never on the others.
        assert!(!default.iter().any(|k| k.ends_with("/pubsub4") && k.contains("/tcp/")));
        assert!(!default.iter().any(|k| k.ends_with("/oneway") && k.contains("/json/")));
        assert!(default.contains(&"multiply/json/tcp/c1".to_owned()));
        // --subscribers applies to the slices' pubsub; --mode sets every
        // slice's modes.
        assert!(keys("wirebench --subscribers 2").contains(&"multiply/protobuf/udp/c64/pubsub2".to_owned()));
        let rr = keys("wirebench --mode rr");
        assert!(rr.iter().all(|k| !k.contains("/oneway") && !k.contains("/stream") && !k.contains("/pubsub")));
        assert!(keys("wirebench --mode pubsub").iter().all(|k| k.ends_with("/pubsub4")));
        let quick = keys("wirebench --quick");
        assert!(quick.contains(&"multiply/protobuf/tcp/c64/oneway".to_owned()));
        assert!(quick.contains(&"multiply/protobuf/udp/c64/pubsub4".to_owned()));
    }

    #[test]
    fn the_default_matrix_runs_every_format_over_every_transport_that_carries_it() {
        let cells = resolve("wirebench").matrix.cells();
        // Every transport of wirebench's own and every broker carries any
        // format's bytes; a framework carries only its own format.
        for &transport in TransportKind::ALL.iter().filter(|t| t.family() != wirebench_transports::Family::Framework) {
            for &format in FormatId::ALL {
                assert!(
                    cells.iter().any(|c| c.transport == transport && c.subject == plan::Subject::Format(format)),
                    "the default matrix has no {} cell over {}",
                    format.name(),
                    transport.name()
                );
            }
        }
    }

    #[test]
    fn quick_works_with_and_without_the_command() {
        let bare = resolve("wirebench --quick");
        let run = resolve("wirebench run --quick");
        assert_eq!(shape(&bare), shape(&run));
        assert!(bare.quick);
        assert_eq!(bare.matrix.name, "quick");
        assert_eq!(
            bare.matrix.workloads(),
            vec![Workload::Multiply, Workload::Echo { size: 1024 }, Workload::Digest { records: 10 }]
        );
        assert_eq!(bare.timing.duration, Duration::from_millis(20));
        assert_eq!(bare.timing.warmup, Duration::from_millis(5));
        assert_eq!(bare.timing.timeout, Duration::from_secs(5));
        assert_eq!(bare.passes, 4);
        assert_eq!(resolve("wirebench run").passes, 1);
        // A flag given beside --quick wins over quick's default.
        assert_eq!(resolve("wirebench --quick --duration 1s").timing.duration, Duration::from_secs(1));
        assert_eq!(resolve("wirebench --quick --passes 1").passes, 1);
        assert_eq!(resolve("wirebench --quick --sizes 16B").matrix.workloads()[1], Workload::Echo { size: 16 });
    }

    #[test]
    fn flags_shape_the_matrix() {
        let o = resolve(
            "wirebench run --formats json,bincode --transports tcp --workloads echo --sizes 64KiB --concurrency 1,8",
        );
        assert_eq!(o.matrix.formats(), vec![FormatId::Json, FormatId::Bincode]);
        assert_eq!(o.matrix.workloads(), vec![Workload::Echo { size: 65536 }]);
        assert_eq!(o.matrix.loads().iter().map(|l| l.in_flight).collect::<Vec<_>>(), vec![1, 8]);
        let open = resolve("wirebench --rate 1000 --poisson --concurrency 4");
        assert_eq!(open.matrix.loads()[0].to_string(), "p1000c4");
        assert_eq!(resolve("wirebench --workloads echo-16B,multiply").matrix.workloads().len(), 2);
    }

    #[test]
    fn nothing_is_silently_rewritten() {
        for (argv, says) in [
            ("wirebench --connections 0", "--connections"),
            ("wirebench --samples 0", "--samples"),
            ("wirebench --concurrency 0", "--concurrency"),
            ("wirebench --timeout 0", "--timeout"),
            ("wirebench --duration 99999999999999999999s", "--duration"),
            ("wirebench --warmup 5000000000000000h", "--warmup"),
            ("wirebench --samples -1", "from 1 to 1000"),
            ("wirebench --samples 100000000", "from 1 to 1000"),
            ("wirebench --concurrency 10000000", "from 1 to 4096"),
            ("wirebench --records 100000000", "from 1 to 100000"),
            ("wirebench --sizes 10GiB", "from 1B to 64MiB"),
            ("wirebench --max-datagram 70000", "from 64B to 65507B"),
            ("wirebench --max-datagram 0", "--max-datagram"),
            ("wirebench --rate NaN", "--rate"),
            ("wirebench --workloads echo-16B --sizes 1KiB", "--sizes"),
            ("wirebench --workloads multiply --records 5", "--records"),
            ("wirebench --pin 5/6", "--pin"),
            ("wirebench --pin 0", "--pin"),
            ("wirebench --sizes 17MiB", "--max-message"),
            ("wirebench --connect quic=127.0.0.1:1", "pin"),
            ("wirebench --connect tcp=127.0.0.1:1 --transports unix", "unix"),
            ("wirebench --connect tcp=127.0.0.1:1 --transports tcp,udp", "udp"),
        ] {
            let e = error(argv);
            assert!(e.contains(says), "{argv}: {e}");
            assert!(!e.contains('\n'), "{argv}: one line: {e}");
        }
    }

    #[test]
    fn connect_alone_runs_the_connected_transports() {
        let o = resolve("wirebench --connect tcp=127.0.0.1:1");
        assert_eq!(o.matrix.transports(), vec![TransportKind::Tcp, TransportKind::Inproc]);
        let pin = format!("#sha256:{}", "ab".repeat(32));
        let o =
            resolve(&format!("wirebench --connect tcp=127.0.0.1:1,quic=127.0.0.1:2{pin} --transports tcp,quic,inproc"));
        assert_eq!(o.matrix.transports(), vec![TransportKind::Tcp, TransportKind::Quic, TransportKind::Inproc]);
        assert!(error("wirebench --connect smtp=1.2.3.4:25").contains("unknown transport"));
        assert!(error("wirebench --connect tcp").contains("T=ADDR"));
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
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn clap_errors_fold_into_one_line() {
        let text = "error: invalid value '0' for '--samples <N>': expected a whole number from 1 to 1000\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(text),
            "invalid value '0' for '--samples <N>': expected a whole number from 1 to 1000"
        );
    }
}
