//! `osp-tools bench` (what `make bench` runs): measures the worker (beside the seed's Node
//! worker running the same workflow), the bridge and the store's operations with and without
//! a large history on a throwaway local stack against the project's performance goals, and
//! against what the same Temporal server allows, so the figures read as fractions of the
//! server's own limits.
//! Results are figures, never assertions: one JSON line per scenario on stdout, then a
//! Markdown report (also written to `--out`). See `docs/performance.md`.

mod bridge;
mod ceiling;
mod cpus;
mod drive;
mod history;
mod machine;
mod node_peer;
mod report;
mod stats;
mod temporal;
mod worker;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use osp_stack::Stack;

/// Why the benchmark could not run (a missed goal is not an error: it is a figure).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The local stack could not start.
    #[error(transparent)]
    Stack(#[from] osp_stack::StackError),
    /// An OSP binary could not be run or did not become ready.
    #[error(transparent)]
    Process(#[from] osp_stack::ProcessError),
    /// A database statement failed.
    #[error("database: {0}")]
    Database(String),
    /// A Temporal call failed.
    #[error("temporal: {0}")]
    Temporal(String),
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A scenario could not produce figures.
    #[error("{0}")]
    Failed(String),
}

impl From<tokio_postgres::Error> for BenchError {
    fn from(error: tokio_postgres::Error) -> Self {
        BenchError::Database(osp_stack::postgres_detail(&error))
    }
}

impl From<osp_activities::db::DbError> for BenchError {
    fn from(error: osp_activities::db::DbError) -> Self {
        BenchError::Database(error.to_string())
    }
}

/// The scenarios, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Ceiling,
    Worker,
    /// The seed's Node worker on the worker scenario's workflow (after `worker`).
    Node,
    Bridge,
    History,
}

/// What to run, from the command line (`osp-tools bench --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Workflows per worker and ceiling run, raw starts per ceiling run
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = positive)]
    pub workflows: usize,
    /// Workflows or starts in flight in those runs
    #[arg(long, value_name = "C", default_value_t = 50, value_parser = positive)]
    pub concurrency: usize,
    /// Bridge scenario: bootstrap events per second, and raw starts per second of each
    /// run's baseline [default: half the raw start rate measured just before each run]
    #[arg(long, value_name = "R", allow_negative_numbers = true, value_parser = positive_float)]
    pub rate: Option<f64>,
    /// Bridge scenario: how long each run's baseline sends raw starts at R, and then how long
    /// events are emitted at R through the bridge
    #[arg(long, value_name = "T", default_value_t = 15.0, allow_negative_numbers = true,
          value_parser = positive_float)]
    pub seconds: f64,
    /// Bridge scenario: events queued before the bridge starts, for its throughput
    #[arg(long, value_name = "M", default_value_t = 1000, value_parser = positive)]
    pub backlog: usize,
    /// OSP_BRIDGE_MAX_IN_FLIGHT of the bridge [default: the --concurrency value, so the
    /// bridge may ask the server as much as the raw-start client does]
    #[arg(long, value_name = "K", value_parser = positive)]
    pub bridge_in_flight: Option<usize>,
    /// Bridge scenario: raw starts per second sent from the benchmark's client during each
    /// paced phase, whose acknowledgement shows how fast the server answers anyone under
    /// that load [default: none, so that the phase carries the bridge's load alone]
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = positive_float)]
    pub probe_rate: Option<f64>,
    /// Bridge scenario: run every variant on the one dev server of the whole benchmark,
    /// holding the open executions of the runs before it, instead of restarting it empty
    /// before each variant
    #[arg(long)]
    pub shared_server: bool,
    /// Give the Temporal dev server the first half of the CPUs (rounded down) and run
    /// everything else on the other half, instead of every process on every CPU
    /// (docs/performance.md: it isolates the server's figures, and halves the worker's
    /// throughput on two cores)
    #[arg(long)]
    pub split_cpus: bool,
    /// OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS of the sweeps-only run [default: the bridge's]
    #[arg(long, value_name = "MS", value_parser = positive_u64)]
    pub sweep_ms: Option<u64>,
    /// History scenario: domain events loaded before measuring (at least 10 per finished
    /// job; the rest go to streams of their own)
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = positive)]
    pub history_events: usize,
    /// History scenario: finished bootstrap jobs among them (10 events each)
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = positive)]
    pub history_jobs: usize,
    /// History scenario: bootstraps measured on each store (emit, claim, settle, five
    /// activity emits)
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = positive)]
    pub history_samples: usize,
    /// Run only these scenarios
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1..,
          default_value = "ceiling,worker,node,bridge,history")]
    pub only: Vec<Scenario>,
    /// Node scenario: the Node peer's folder, its packages installed by `make bench`'s
    /// bench-setup step
    #[arg(long, value_name = "DIR", default_value = node_peer::DEFAULT_DIR)]
    pub node_peer: std::path::PathBuf,
    /// An extra environment variable for osp-worker (repeatable; settings to compare)
    #[arg(long = "worker-env", value_name = "K=V", value_parser = key_value)]
    pub worker_env: Vec<(String, String)>,
    /// An extra environment variable for osp-bridge (repeatable)
    #[arg(long = "bridge-env", value_name = "K=V", value_parser = key_value)]
    pub bridge_env: Vec<(String, String)>,
    /// A dynamic config value of the Temporal dev server, V in JSON (repeatable;
    /// system.enableActivityEagerExecution=true)
    #[arg(long = "server-config", value_name = "K=V", value_parser = key_value)]
    pub server_config: Vec<(String, String)>,
    /// Also write the Markdown report to FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// The command as typed, for the report (set by the caller, not parsed).
    #[arg(skip)]
    pub command: String,
    /// The CPUs the server and the rest run on (set by [`pin_cpus`], not parsed); `None`:
    /// all on every CPU.
    #[arg(skip)]
    pub cpus: Option<cpus::CpuSplit>,
}

impl Options {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.contains(&scenario)
    }

    /// The bridge's `OSP_BRIDGE_MAX_IN_FLIGHT`: `--bridge-in-flight`, else `--concurrency`.
    fn bridge_in_flight(&self) -> usize {
        self.bridge_in_flight.unwrap_or(self.concurrency)
    }
}

/// `KEY=VALUE`, split at the first `=`.
fn key_value(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

/// A whole number above zero.
fn positive(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "not a positive number".to_owned())
}

fn positive_u64(value: &str) -> Result<u64, String> {
    positive(value).map(|n| n as u64)
}

/// A finite number above zero.
fn positive_float(value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| "not a positive number".to_owned())
}

/// Writes a progress line to stderr (stdout carries only the results).
macro_rules! progress {
    ($($arg:tt)*) => {{
        let mut err = std::io::stderr().lock();
        let _ = std::io::Write::write_fmt(&mut err, format_args!("bench: {}\n", format_args!($($arg)*)));
    }};
}
pub(crate) use progress;

/// Writes one result line to stdout.
fn emit_line(line: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// With `--split-cpus`, gives the Temporal dev server the first half of the CPUs and
/// restricts the calling thread, and so everything the bench starts after it, to the rest
/// (see `cpus.rs`). Call before the async runtime is built.
pub fn pin_cpus(options: &mut Options) -> Result<(), BenchError> {
    if options.split_cpus {
        options.cpus = cpus::pin_bench()?;
    }
    Ok(())
}

/// Runs the benchmark `options` describe.
pub async fn run(options: &Options) -> ExitCode {
    match run_with(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "osp-tools bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Everything one benchmark run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub ceiling: Option<ceiling::CeilingResults>,
    pub worker: Option<worker::WorkerResults>,
    pub node: Option<worker::WorkerResults>,
    pub bridge: Option<bridge::BridgeResults>,
    pub history: Option<history::HistoryResults>,
}

/// Runs the scenarios `options` asks for on one fresh stack.
pub async fn run_with(options: &Options) -> Result<(), BenchError> {
    let started = Instant::now();
    let machine_before = machine::machine();
    // The binaries are checked first: a missing build should not cost a stack start.
    let worker_bin = options
        .runs(Scenario::Worker)
        .then(|| osp_stack::osp_binary("osp-worker"))
        .transpose()?;
    let bridge_bin = options
        .runs(Scenario::Bridge)
        .then(|| osp_stack::osp_binary("osp-bridge"))
        .transpose()?;
    let node_peer = if options.runs(Scenario::Node) {
        Some(node_peer::locate(&options.node_peer).await?)
    } else {
        None
    };
    if options.runs(Scenario::History) {
        history::plan(options.history_events, options.history_jobs).map_err(BenchError::Failed)?;
    }
    progress!(
        "{} CPUs, load average {}; {}; starting PostgreSQL, PgBouncer and the Temporal dev server",
        machine_before.cpus,
        machine_before.load_average,
        report::cpu_placement(options)
    );
    let mut stack = Stack::start_with(osp_stack::TemporalOptions {
        dynamic_config: options.server_config.clone(),
        cpus: options
            .cpus
            .as_ref()
            .map(|split| split.server.clone())
            .unwrap_or_default(),
        ..osp_stack::TemporalOptions::default()
    })
    .await?;
    let mut migrator = osp_activities::db::connect(&stack.postgres.url("postgres")).await?;
    osp_activities::migrate(&mut migrator)
        .await
        .map_err(|error| BenchError::Database(error.to_string()))?;
    let versions = report::Versions::read(&migrator).await;
    drop(migrator);
    let client = temporal::connect(&stack.temporal.address()).await?;
    progress!("stack ready in {} ms", started.elapsed().as_millis());
    // Every figure below depends on where the processes ran, so the JSON says it first
    // (`null`: every process on every CPU).
    emit_line(&serde_json::json!({
        "scenario": "bench.cpus",
        "server": options.cpus.as_ref().map(|split| split.server.clone()),
        "rest": options.cpus.as_ref().map(|split| split.rest.clone()),
    }));

    let mut results = Results::default();
    // Wall time per part of the run, for the report: what to trim if `make bench` outgrows
    // its budget on a slower machine.
    let mut took = vec![("stack start", started.elapsed().as_secs_f64())];
    let mut mark = Instant::now();
    let mut lap = |part: &'static str| {
        took.push((part, mark.elapsed().as_secs_f64()));
        mark = Instant::now();
    };
    if options.runs(Scenario::Ceiling) {
        let ceiling = ceiling::run(&client, options).await?;
        for line in ceiling.json_lines() {
            emit_line(&line);
        }
        results.ceiling = Some(ceiling);
        lap("ceilings");
    }
    if let Some(worker_bin) = &worker_bin {
        let worker = worker::run(&stack, &client, worker_bin, options).await?;
        emit_line(&worker.json_line("worker.create_service"));
        results.worker = Some(worker);
        lap("worker");
    }
    if let Some(peer) = &node_peer {
        let node = node_peer::run(&stack, &client, peer, options).await?;
        emit_line(&node.json_line("node.create_service"));
        if let Some(osp) = &results.worker {
            emit_line(&node_peer::Comparison::of(osp, &node).json_line());
        }
        results.node = Some(node);
        lap("Node peer");
    }
    if let Some(bridge_bin) = &bridge_bin {
        let bridge = bridge::run(&mut stack, &client, bridge_bin, options).await?;
        for line in bridge.json_lines() {
            emit_line(&line);
        }
        results.bridge = Some(bridge);
        lap("bridge");
    }
    if options.runs(Scenario::History) {
        let history = history::run(&stack, options).await?;
        for line in history.json_lines() {
            emit_line(&line);
        }
        results.history = Some(history);
        lap("history");
    }
    drop(client);
    drop(stack);

    let machine_after = machine::machine();
    let markdown = report::markdown(
        &results,
        options,
        &report::RunInfo {
            machine: machine_before,
            load_after: machine_after.load_average,
            versions,
            seconds: started.elapsed().as_secs_f64(),
            took,
        },
    );
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "\n{markdown}");
    }
    if let Some(path) = &options.out {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| BenchError::Io {
                what: format!("creating {}", dir.display()),
                source,
            })?;
        }
        std::fs::write(path, &markdown).map_err(|source| BenchError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        progress!("report written to {}", path.display());
    }
    progress!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// How long the scenarios wait for work they started before reporting what is missing.
pub(crate) const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// `osp-tools bench` alone, as the binary's parser sees it.
    #[derive(Debug, clap::Parser)]
    struct Bench {
        #[command(flatten)]
        options: Options,
    }

    fn parse(line: &str) -> Result<Options, clap::Error> {
        Bench::try_parse_from(std::iter::once("bench").chain(line.split_whitespace()))
            .map(|bench| bench.options)
    }

    #[test]
    fn defaults_and_flags() {
        let options = parse("").unwrap();
        assert_eq!((options.workflows, options.concurrency), (2000, 50));
        assert!(options.rate.is_none());
        assert_eq!(options.only.len(), 5);
        assert!(options.runs(Scenario::Node));
        assert_eq!(
            options.node_peer,
            std::path::Path::new(node_peer::DEFAULT_DIR)
        );
        assert_eq!(
            (
                options.history_events,
                options.history_jobs,
                options.history_samples
            ),
            (1_000_000, 100_000, 2000)
        );

        let options = parse(
            "--workflows 10 --concurrency 2 --rate 55.5 --seconds 3 --only bridge,worker --out x.md --worker-env A=b=c --node-peer /p",
        )
        .unwrap();
        assert_eq!(options.worker_env, vec![("A".to_owned(), "b=c".to_owned())]);
        assert_eq!((options.workflows, options.concurrency), (10, 2));
        assert_eq!(options.rate, Some(55.5));
        assert_eq!(options.only, vec![Scenario::Bridge, Scenario::Worker]);
        assert!(options.runs(Scenario::Worker) && !options.runs(Scenario::Ceiling));
        assert!(!options.runs(Scenario::Node));
        assert_eq!(options.node_peer, std::path::Path::new("/p"));
    }

    #[test]
    fn bad_command_lines_name_the_option() {
        for (line, named) in [
            ("--workflows 0", "--workflows"),
            ("--workflows", "--workflows"),
            ("--rate -1", "--rate"),
            ("--only everything", "--only"),
            ("--frobnicate 1", "--frobnicate"),
            ("--worker-env novalue", "--worker-env"),
            ("--bridge-env =x", "--bridge-env"),
            ("--history-events 0", "--history-events"),
            ("--history-jobs x", "--history-jobs"),
        ] {
            let error = parse(line).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{line}");
            assert!(error.to_string().contains(named), "{line}: {error}");
        }
    }
}
