//! The `osp-bridge` binary: parse the configuration, start logging, run the bridge until
//! SIGTERM or SIGINT, exit 0 once it has drained.

use std::collections::HashMap;
use std::process::ExitCode;
use std::task::Poll;

use osp_config::{BridgeConfig, Sources};

const USAGE: &str = "usage: osp-bridge [--version | --help]

Turns queued workflow jobs into Temporal workflow starts. Configuration comes from the
environment and the TOML file named by OSP_CONFIG; see docs/configuration.md.";

#[expect(
    clippy::print_stdout,
    reason = "--version and --help answer on standard output"
)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("--version" | "-V") => {
            println!("osp-bridge {}", osp_bridge::VERSION);
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("osp-bridge: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
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
