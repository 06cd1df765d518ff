//! `osp-testkit bench` (what `make bench` runs): measures the worker and the bridge on a
//! throwaway local stack against the project's performance goals, and against what the same
//! Temporal server allows, so the figures read as fractions of the server's own limits.
//! Results are figures, never assertions: one JSON line per scenario on stdout, then a
//! Markdown report (also written to `--out`). See `docs/performance.md`.

mod bridge;
mod ceiling;
mod drive;
mod machine;
mod report;
mod stats;
mod temporal;
mod worker;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::Stack;

pub use stats::Summary;

/// The usage line printed on a bad command line.
pub const USAGE: &str =
    "usage: osp-testkit bench [--workflows N] [--concurrency C] [--rate R] [--seconds T]
                         [--backlog M] [--bridge-in-flight K] [--sweep-ms MS]
                         [--only worker,ceiling,bridge] [--out FILE]
  --workflows N        workflows per worker and ceiling run, raw starts per ceiling run (2000)
  --concurrency C      workflows or starts in flight in those runs (50)
  --rate R             bridge scenario: bootstrap events per second (half the raw start rate)
  --seconds T          bridge scenario: how long events are emitted at R (20)
  --backlog M          bridge scenario: events queued before the bridge starts, for its
                       throughput (1000)
  --bridge-in-flight K OSP_BRIDGE_MAX_IN_FLIGHT of the bridge (the --concurrency value, so
                       the bridge may ask the server as much as the raw-start client does)
  --sweep-ms MS        OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS of the sweeps-only run (the
                       bridge's default)
  --worker-env K=V     an extra environment variable for osp-worker (repeatable)
  --bridge-env K=V     an extra environment variable for osp-bridge (repeatable)
  --server-config K=V  a dynamic config value of the Temporal dev server, V in JSON
                       (repeatable; system.enableActivityEagerExecution=true)
  --only LIST          run only these scenarios (comma-separated)
  --out FILE           also write the Markdown report to FILE";

/// Why the benchmark could not run (a missed goal is not an error: it is a figure).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// The local stack could not start.
    #[error(transparent)]
    Stack(#[from] crate::StackError),
    /// An OSP binary could not be run or did not become ready.
    #[error(transparent)]
    Process(#[from] crate::ProcessError),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Ceiling,
    Worker,
    Bridge,
}

impl Scenario {
    fn parse(name: &str) -> Result<Self, BenchError> {
        match name {
            "ceiling" => Ok(Scenario::Ceiling),
            "worker" => Ok(Scenario::Worker),
            "bridge" => Ok(Scenario::Bridge),
            other => Err(BenchError::Usage(format!(
                "--only {other}: not a scenario (worker, ceiling, bridge)"
            ))),
        }
    }
}

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub workflows: usize,
    pub concurrency: usize,
    /// `None`: half the raw start rate measured in the same run.
    pub rate: Option<f64>,
    pub seconds: f64,
    pub backlog: usize,
    /// `None`: `concurrency`.
    pub bridge_in_flight: Option<usize>,
    pub sweep_ms: Option<u64>,
    pub only: Vec<Scenario>,
    /// Extra environment of the worker and the bridge processes (settings to compare).
    pub worker_env: Vec<(String, String)>,
    pub bridge_env: Vec<(String, String)>,
    /// `--dynamic-config-value`s of the Temporal dev server.
    pub server_config: Vec<(String, String)>,
    pub out: Option<std::path::PathBuf>,
    /// The command as typed, for the report.
    pub command: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workflows: 2000,
            concurrency: 50,
            rate: None,
            seconds: 20.0,
            backlog: 1000,
            bridge_in_flight: None,
            sweep_ms: None,
            only: vec![Scenario::Ceiling, Scenario::Worker, Scenario::Bridge],
            worker_env: Vec::new(),
            bridge_env: Vec::new(),
            server_config: Vec::new(),
            out: None,
            command: "osp-testkit bench".to_owned(),
        }
    }
}

impl Options {
    /// Parses the arguments after `bench`.
    pub fn parse(args: &[String]) -> Result<Self, BenchError> {
        let mut options = Options {
            command: std::iter::once("osp-testkit bench".to_owned())
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            ..Options::default()
        };
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let value = rest
                .next()
                .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
            let positive = |what: &str| -> Result<usize, BenchError> {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        BenchError::Usage(format!("{what} {value}: not a positive number"))
                    })
            };
            let positive_float = |what: &str| -> Result<f64, BenchError> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n > 0.0)
                    .ok_or_else(|| {
                        BenchError::Usage(format!("{what} {value}: not a positive number"))
                    })
            };
            match flag.as_str() {
                "--workflows" => options.workflows = positive(flag)?,
                "--concurrency" => options.concurrency = positive(flag)?,
                "--rate" => options.rate = Some(positive_float(flag)?),
                "--seconds" => options.seconds = positive_float(flag)?,
                "--backlog" => options.backlog = positive(flag)?,
                "--bridge-in-flight" => options.bridge_in_flight = Some(positive(flag)?),
                "--sweep-ms" => options.sweep_ms = Some(positive(flag)? as u64),
                "--only" => {
                    options.only = value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(Scenario::parse)
                        .collect::<Result<_, _>>()?;
                    if options.only.is_empty() {
                        return Err(BenchError::Usage("--only needs a scenario".to_owned()));
                    }
                }
                "--worker-env" => options.worker_env.push(key_value(flag, value)?),
                "--bridge-env" => options.bridge_env.push(key_value(flag, value)?),
                "--server-config" => options.server_config.push(key_value(flag, value)?),
                "--out" => options.out = Some(value.into()),
                other => return Err(BenchError::Usage(format!("unknown option {other}"))),
            }
        }
        Ok(options)
    }

    fn runs(&self, scenario: Scenario) -> bool {
        self.only.contains(&scenario)
    }

    /// The bridge's `OSP_BRIDGE_MAX_IN_FLIGHT`: `--bridge-in-flight`, else `--concurrency`.
    fn bridge_in_flight(&self) -> usize {
        self.bridge_in_flight.unwrap_or(self.concurrency)
    }
}

/// Splits `KEY=VALUE`.
fn key_value(flag: &str, value: &str) -> Result<(String, String), BenchError> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(BenchError::Usage(format!(
            "{flag} {value}: expected KEY=VALUE"
        ))),
    }
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

/// Runs the benchmark from the arguments after `bench`; prints usage and returns 2 on a bad
/// command line.
pub async fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(error) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "osp-testkit bench: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run_with(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "osp-testkit bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Everything one benchmark run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub ceiling: Option<ceiling::CeilingResults>,
    pub worker: Option<worker::WorkerResults>,
    pub bridge: Option<bridge::BridgeResults>,
}

/// Runs the scenarios `options` asks for on one fresh stack.
pub async fn run_with(options: &Options) -> Result<(), BenchError> {
    let started = Instant::now();
    let machine_before = machine::machine();
    // The binaries are checked first: a missing build should not cost a stack start.
    let worker_bin = options
        .runs(Scenario::Worker)
        .then(|| crate::osp_binary("osp-worker"))
        .transpose()?;
    let bridge_bin = options
        .runs(Scenario::Bridge)
        .then(|| crate::osp_binary("osp-bridge"))
        .transpose()?;
    progress!(
        "{} CPUs, load average {}; starting PostgreSQL, PgBouncer and the Temporal dev server",
        machine_before.cpus,
        machine_before.load_average
    );
    let stack = Stack::start_with(crate::TemporalOptions {
        dynamic_config: options.server_config.clone(),
        ..crate::TemporalOptions::default()
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

    let mut results = Results::default();
    if options.runs(Scenario::Ceiling) {
        let ceiling = ceiling::run(&client, options).await?;
        for line in ceiling.json_lines() {
            emit_line(&line);
        }
        results.ceiling = Some(ceiling);
    }
    if let Some(worker_bin) = &worker_bin {
        let worker = worker::run(&stack, &client, worker_bin, options).await?;
        emit_line(&worker.json_line());
        results.worker = Some(worker);
    }
    if let Some(bridge_bin) = &bridge_bin {
        let raw_rate = results.ceiling.as_ref().map(|c| c.raw_starts.throughput);
        let bridge = bridge::run(&stack, &client, bridge_bin, options, raw_rate).await?;
        for line in bridge.json_lines() {
            emit_line(&line);
        }
        results.bridge = Some(bridge);
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
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let options = Options::parse(&[]).unwrap();
        assert_eq!((options.workflows, options.concurrency), (2000, 50));
        assert!(options.rate.is_none());
        assert_eq!(options.only.len(), 3);

        let options = Options::parse(&args(
            "--workflows 10 --concurrency 2 --rate 55.5 --seconds 3 --only bridge,worker --out x.md --worker-env A=b=c",
        ))
        .unwrap();
        assert_eq!(options.worker_env, vec![("A".to_owned(), "b=c".to_owned())]);
        assert_eq!((options.workflows, options.concurrency), (10, 2));
        assert_eq!(options.rate, Some(55.5));
        assert_eq!(options.only, vec![Scenario::Bridge, Scenario::Worker]);
        assert!(options.runs(Scenario::Worker) && !options.runs(Scenario::Ceiling));
        assert_eq!(
            options.command,
            "osp-testkit bench --workflows 10 --concurrency 2 --rate 55.5 --seconds 3 --only bridge,worker --out x.md --worker-env A=b=c"
        );
    }

    #[test]
    fn bad_command_lines() {
        for line in [
            "--workflows 0",
            "--workflows",
            "--rate -1",
            "--only everything",
            "--frobnicate 1",
            "--worker-env novalue",
            "--bridge-env =x",
        ] {
            assert!(
                matches!(Options::parse(&args(line)), Err(BenchError::Usage(_))),
                "{line}"
            );
        }
    }
}
