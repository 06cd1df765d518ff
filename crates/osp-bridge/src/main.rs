//! The `osp-bridge` binary: parse the command line and the configuration, then either run
//! the bridge until SIGTERM or SIGINT (exit 0 once it has drained) or run one `jobs` command.

use std::collections::HashMap;
use std::process::ExitCode;
use std::task::Poll;

use clap::{Parser, Subcommand};
use osp_activities::jobs::{JobFilter, JobStatus};
use osp_bridge::{JobsCommand, run_jobs};
use osp_config::{BridgeConfig, Sources};
use osp_runtime::threads::Threads;
use uuid::Uuid;

/// Turns queued workflow jobs into Temporal workflow starts. Configuration comes from the
/// environment and the TOML file named by OSP_CONFIG; see docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "osp-bridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Operate the workflow queue (docs/operations.md).
    #[command(subcommand)]
    Jobs(Jobs),
}

#[derive(Debug, Subcommand)]
enum Jobs {
    /// List jobs, most recently changed first.
    List {
        /// pending, processing, completed or failed.
        #[arg(long)]
        status: Option<JobStatus>,
        /// The routed event type.
        #[arg(long = "route", value_name = "EVENT_TYPE")]
        event_type: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show one job, its error and its event chain.
    Show { job_id: Uuid },
    /// Make a failed job pending again, with its route's whole attempt budget.
    Retry {
        job_id: Uuid,
        /// Recorded in the job's workflow.queue.retried event.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Pause a route: its events are still queued, its jobs stay pending, none fails.
    Pause { event_type: String },
    /// Resume a paused route: its pending jobs are due again.
    Resume { event_type: String },
}

impl From<Jobs> for JobsCommand {
    fn from(jobs: Jobs) -> Self {
        match jobs {
            Jobs::List {
                status,
                event_type,
                limit,
            } => JobsCommand::List(JobFilter {
                status,
                event_type,
                limit,
            }),
            Jobs::Show { job_id } => JobsCommand::Show(job_id),
            Jobs::Retry { job_id, reason } => JobsCommand::Retry { job_id, reason },
            Jobs::Pause { event_type } => JobsCommand::SetRoute {
                event_type,
                paused: true,
            },
            Jobs::Resume { event_type } => JobsCommand::SetRoute {
                event_type,
                paused: false,
            },
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "a jobs command answers on standard output"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let read_file = |path: &std::path::Path| std::fs::read_to_string(path);
    let config = match BridgeConfig::load(&Sources {
        env: &env,
        read_file: &read_file,
    }) {
        Ok(config) => config,
        Err(error) => {
            // A bad configuration stops the process before anything binds or connects.
            eprintln!("osp-bridge: {error}");
            return ExitCode::from(2);
        }
    };
    let threads = Threads::configured(
        config.bridge.runtime_threads,
        config.telemetry.otlp_endpoint.is_some(),
    );
    let runtime = match threads.runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("osp-bridge: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Jobs(jobs)) = cli.command {
        return runtime.block_on(async {
            match run_jobs(&config.database, &jobs.into()).await {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    // The whole cause chain, once: "cannot connect to the database: ... refused".
                    eprintln!("osp-bridge: {:#}", anyhow::Error::from(error));
                    ExitCode::FAILURE
                }
            }
        });
    }
    runtime.block_on(async {
        // The OTLP exporter lives on the runtime; the guard flushes spans before exit.
        let _flush_on_exit = match osp_runtime::logging::init_with_telemetry(
            &config.log,
            &config.telemetry,
            "osp-bridge",
        ) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("osp-bridge: {error}");
                return ExitCode::from(2);
            }
        };
        match run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "osp-bridge failed");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: BridgeConfig) -> anyhow::Result<()> {
    tracing::info!(config = %config, "configuration loaded");
    // The first poll installs the handlers: from here on a SIGTERM drains instead of killing
    // the process, even one that comes while the bridge is still connecting.
    let mut signal = Box::pin(osp_runtime::shutdown::signal_received());
    let early = futures::poll!(signal.as_mut());
    let shutdown = async move {
        let received = match early {
            Poll::Ready(received) => received,
            Poll::Pending => signal.await,
        };
        match received {
            Ok(signal) => tracing::info!(signal, "shutdown requested; draining"),
            Err(error) => {
                // Without signals the process can still be stopped, only not gracefully.
                tracing::error!(%error, "cannot listen for signals");
                std::future::pending::<()>().await;
            }
        }
    };
    osp_bridge::run(config, shutdown).await?;
    Ok(())
}
