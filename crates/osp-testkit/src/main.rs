//! The `osp-testkit` binary: `demo` (what `make demo` runs), `scenario bootstrap --count N`
//! (load against a running stack) and `bench` (what `make bench` runs). Thin: parse the
//! command, run it, stop everything on exit or Ctrl-C.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use osp_testkit::scenario::{BootstrapScenario, run_bootstrap};

const USAGE: &str = "usage: osp-testkit demo
       osp-testkit scenario bootstrap --count N [--timeout SECONDS]
         (emits N bootstrap requests into DATABASE_URL's stack and reports the outcome)
       osp-testkit bench [--only worker,ceiling,bridge] [options; see bench --help]
         (what `make bench` runs: worker and bridge figures on a throwaway stack)";

/// What the command line asks for.
enum Command {
    Demo,
    Bootstrap {
        count: usize,
        timeout: Duration,
    },
    /// The arguments after `bench`, parsed by the benchmark itself.
    Bench(Vec<String>),
}

fn parse(args: &[String]) -> Result<Command, String> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["demo"] => Ok(Command::Demo),
        ["bench", options @ ..] => Ok(Command::Bench(
            options.iter().map(|option| (*option).to_owned()).collect(),
        )),
        ["scenario", "bootstrap", options @ ..] => {
            let mut count = None;
            let mut timeout = Duration::from_secs(120);
            let mut rest = options.iter();
            while let Some(option) = rest.next() {
                let value = rest
                    .next()
                    .ok_or_else(|| format!("{option} needs a value"))?;
                match *option {
                    "--count" => {
                        count = Some(
                            value
                                .parse::<usize>()
                                .ok()
                                .filter(|count| *count > 0)
                                .ok_or_else(|| format!("--count {value}: not a positive number"))?,
                        );
                    }
                    "--timeout" => {
                        timeout =
                            Duration::from_secs(value.parse().map_err(|_| {
                                format!("--timeout {value}: not a number of seconds")
                            })?);
                    }
                    other => return Err(format!("unknown option {other}")),
                }
            }
            let count = count.ok_or("--count is required")?;
            Ok(Command::Bootstrap { count, timeout })
        }
        _ => Err("unknown command".to_owned()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("osp-testkit: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("osp-testkit: cannot start the async runtime: {error}");
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
        Command::Bench(args) => osp_testkit::bench::run(&args).await,
        Command::Demo => match osp_testkit::demo::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("osp-testkit demo: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Bootstrap { count, timeout } => {
            let Some(database_url) = std::env::var("DATABASE_URL")
                .ok()
                .or_else(|| std::env::var("SUPABASE_DB_URL").ok())
            else {
                eprintln!("osp-testkit scenario: set DATABASE_URL to the stack's database");
                return ExitCode::from(2);
            };
            let scenario = BootstrapScenario {
                count,
                timeout,
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
                    eprintln!("osp-testkit scenario: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
