//! `telecom-billing-worker`: the service's worker binary. Configuration as for `osp-worker`
//! (the environment and `OSP_CONFIG`; `MANIFEST_PATH` names the seed-shaped manifest), the
//! service's schema applied, then the worker builder runs until SIGTERM.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use osp_config::{Sources, WorkerConfig};

fn main() -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let read_file = |path: &std::path::Path| std::fs::read_to_string(path);
    let config = match WorkerConfig::load(&Sources {
        env: &env,
        read_file: &read_file,
    }) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("telecom-billing-worker: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("telecom-billing-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if let Err(error) = osp_runtime::logging::init(&config.log) {
            eprintln!("telecom-billing-worker: {error}");
            return ExitCode::from(2);
        }
        match run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "telecom-billing-worker failed");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let client = osp_activities::db::connect(config.database.url.expose())
        .await
        .context("connecting to apply the service's schema")?;
    telecom_billing::migrate(&client)
        .await
        .context("applying the service's schema")?;
    drop(client);
    let shutdown = async {
        match osp_runtime::shutdown::signal_received().await {
            Ok(signal) => tracing::info!(signal, "shutdown requested"),
            Err(error) => tracing::error!(%error, "cannot listen for signals"),
        }
    };
    telecom_billing::worker(config).run(shutdown).await?;
    Ok(())
}
