//! The `osp-testkit` binary: `demo` (what `make demo` runs). Thin: parse the command, run it,
//! stop everything on exit or Ctrl-C.

use std::process::ExitCode;

const USAGE: &str = "usage: osp-testkit demo";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    if command != Some("demo") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
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
        // Dropping the demo's future stops and removes everything it started.
        tokio::select! {
            result = osp_testkit::demo::run() => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("osp-testkit demo: {error:#}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: stopping everything");
                ExitCode::from(130)
            }
        }
    })
}
