//! The `osp-tools` binary, the project's own tools (no user links this crate): `demo` (what
//! `make demo` runs), `scenario bootstrap --count N` (load against a running stack) and
//! `bench` (what `make bench` runs). Thin: parse the command, run it, stop everything on exit
//! or Ctrl-C.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

mod bench;
mod demo;
mod scenario;

use scenario::{BootstrapScenario, run_bootstrap};

/// The project's own tools: the demo, load scenarios and the benchmarks.
#[derive(Debug, clap::Parser)]
#[command(name = "osp-tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One bootstrap request on a throwaway local stack, and its whole event chain (`make demo`)
    Demo,
    /// Load against a running stack
    #[command(subcommand)]
    Scenario(Scenario),
    /// Worker and bridge figures on a throwaway stack (`make bench`)
    Bench(Box<bench::Options>),
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// Emits N bootstrap requests into DATABASE_URL's stack and reports the outcome
    Bootstrap {
        /// How many requests
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// How long to wait for all of them
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    // A bad command line exits 2 with clap's message, which names the option.
    let Cli { mut command } = clap::Parser::parse();
    if let Command::Bench(options) = &mut command {
        options.command = std::iter::once("osp-tools".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        // Before the runtime, whose threads inherit the affinity.
        if let Err(error) = bench::pin_cpus(options) {
            eprintln!("osp-tools bench: {error}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("osp-tools: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Dropping a command's future stops and removes everything it started.
        tokio::select! {
            code = run(command) => code,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: stopping everything");
                ExitCode::from(130)
            }
        }
    })
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Bench(options) => bench::run(&options).await,
        Command::Demo => match demo::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("osp-tools demo: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Scenario(Scenario::Bootstrap { count, timeout }) => {
            let Some(database_url) = std::env::var("DATABASE_URL")
                .ok()
                .or_else(|| std::env::var("SUPABASE_DB_URL").ok())
            else {
                eprintln!("osp-tools scenario: set DATABASE_URL to the stack's database");
                return ExitCode::from(2);
            };
            let scenario = BootstrapScenario {
                count: usize::try_from(count).unwrap_or(usize::MAX),
                timeout: Duration::from_secs(timeout),
                database_url,
            };
            match run_bootstrap(&scenario).await {
                Ok(report) => {
                    let _ = writeln!(std::io::stdout().lock(), "{report}");
                    if report.all_completed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => {
                    eprintln!("osp-tools scenario: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
