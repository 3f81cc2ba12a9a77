//! `ssm-harness`: conformance, fault-injection and fuzz harness for the SSM Session Manager
//! data channel. Each command lives in its own module; this file only parses and dispatches.

mod baseline;
mod cli;
mod exit;
mod explore_cmd;
mod frame_cmd;
mod input;
mod mutants_cmd;
mod output;
mod requirements_cmd;
mod run_cmd;

use std::process::ExitCode;

use clap::Parser as _;

use crate::output::diag;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout, usage errors to stderr; a closed stream is not an
            // error worth reporting.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { exit::SUCCESS });
        }
    };
    let mut out = output::Output::stdout();
    match cli.run(&mut out) {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            diag!("error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
