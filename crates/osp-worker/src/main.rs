//! The `osp-worker` binary: parse the configuration, start logging, call the library, exit
//! with its outcome. `osp-worker migrate` applies the database schema.

use std::collections::HashMap;
use std::process::ExitCode;

use osp_config::{LogSettings, MigrateConfig, Sources, TelemetrySettings, WorkerConfig};
use osp_runtime::threads::Threads;

const USAGE: &str = "usage: osp-worker [run | migrate | --version | --help]

  run       run the worker (the default)
  migrate   apply the database schema, then exit

Configuration comes from the environment and the TOML file named by OSP_CONFIG;
see docs/configuration.md.";

#[expect(
    clippy::print_stdout,
    reason = "--version and --help answer on standard output"
)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.as_slice() {
        [] => "run",
        [one] => one.as_str(),
        _ => "--usage-error",
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let read_file = |path: &std::path::Path| std::fs::read_to_string(path);
    let sources = Sources {
        env: &env,
        read_file: &read_file,
    };
    match command {
        "run" => match WorkerConfig::load(&sources) {
            Ok(config) => {
                let (log, telemetry) = (config.log.clone(), config.telemetry.clone());
                let runtime = Threads::configured(
                    config.worker.runtime_threads,
                    telemetry.otlp_endpoint.is_some(),
                );
                execute(runtime, &log, Some(&telemetry), run(config))
            }
            Err(error) => config_error(&error),
        },
        "migrate" => match MigrateConfig::load(&sources) {
            Ok(config) => execute(Threads::Main, &config.log.clone(), None, migrate(config)),
            Err(error) => config_error(&error),
        },
        "--version" | "-V" => {
            println!("osp-worker {}", osp_worker::VERSION);
            ExitCode::SUCCESS
        }
        "--help" | "-h" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// A bad configuration stops the process before anything binds or connects.
fn config_error(error: &osp_config::ConfigError) -> ExitCode {
    eprintln!("osp-worker: {error}");
    ExitCode::from(2)
}

fn execute(
    threads: Threads,
    log: &LogSettings,
    telemetry: Option<&TelemetrySettings>,
    job: impl Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let runtime = match threads.runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("osp-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // The OTLP exporter lives on the runtime; the guard flushes spans before exit.
        let telemetry = match telemetry {
            Some(telemetry) => {
                osp_runtime::logging::init_with_telemetry(log, telemetry, "osp-worker").map(Some)
            }
            None => osp_runtime::logging::init(log).map(|()| None),
        };
        let _flush_on_exit = match telemetry {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("osp-worker: {error}");
                return ExitCode::from(2);
            }
        };
        match job.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "osp-worker failed");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    tracing::info!(config = %config, "configuration loaded");
    let shutdown = async {
        match osp_runtime::shutdown::signal_received().await {
            Ok(signal) => tracing::info!(signal, "shutdown requested"),
            Err(error) => tracing::error!(%error, "cannot listen for signals"),
        }
    };
    osp_worker::run(config, shutdown).await?;
    Ok(())
}

async fn migrate(config: MigrateConfig) -> anyhow::Result<()> {
    let report = osp_worker::migrate(&config).await?;
    tracing::info!(%report, "migrations done");
    Ok(())
}
