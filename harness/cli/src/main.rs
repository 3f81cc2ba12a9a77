//! `ssm-harness`: conformance, fault-injection and fuzz harness for the SSM Session Manager
//! data channel. Each command lives in its own module; this file only parses and dispatches.

mod baseline;
mod cli;
mod client_cmd;
mod exit;
mod explore_cmd;
mod frame_cmd;
mod input;
mod logging;
mod mock_cmd;
mod mutants_cmd;
mod output;
mod requirements_cmd;
mod run_cmd;

use std::process::ExitCode;

use clap::Parser as _;

use crate::output::diag;

/// The arguments; invoked as `session-manager-plugin` (a symlink), the binary is the client and
/// takes the plugin's arguments as they are.
fn argv() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_stem().map(|s| s.to_string_lossy().into_owned()));
    if invoked_as.as_deref() == Some("session-manager-plugin") {
        let rest = args.split_off(1);
        args = vec!["ssm-harness".into(), "client".into(), "--".into()];
        args.extend(rest);
    }
    args
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_from(argv()) {
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
