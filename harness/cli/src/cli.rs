//! The command line: one subcommand per module.

use clap::{Parser, Subcommand};

use crate::exit::{self, Status};
use crate::output::Output;
use crate::{client_cmd, explore_cmd, frame_cmd, mock_cmd, mutants_cmd, requirements_cmd, run_cmd};

/// Conformance, fault-injection and fuzz harness for the SSM Session Manager data channel
#[derive(Debug, Parser)]
#[command(name = "ssm-harness", version, after_help = exit::help(exit::VIOLATION_ANY))]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the conformance suite (scenarios on the simulator)
    Run(run_cmd::RunArgs),
    /// Run the suite against every mutant and show which scenarios catch it
    Mutants(mutants_cmd::MutantsArgs),
    /// The coverage matrix: every requirement, the scenarios citing it, its last outcome
    Requirements(requirements_cmd::RequirementsArgs),
    /// Decode, check and build single data-channel frames
    Frame(frame_cmd::FrameArgs),
    /// Run random fault schedules on base scenarios and shrink every failure to a regression
    Explore(explore_cmd::ExploreArgs),
    /// Serve a mock SSM service on loopback (API with SigV4, data channel, agent) for real clients
    Mock(mock_cmd::MockArgs),
    /// The reference client, with the session-manager-plugin command line
    Client(client_cmd::ClientArgs),
}

impl Cli {
    /// Runs the chosen command. An error is a usage or I/O error.
    pub fn run(&self, out: &mut Output) -> anyhow::Result<Status> {
        match &self.command {
            Command::Run(args) => run_cmd::run(args, out),
            Command::Mutants(args) => mutants_cmd::run(args, out),
            Command::Requirements(args) => requirements_cmd::run(args, out),
            Command::Frame(args) => frame_cmd::run(args, out),
            Command::Explore(args) => explore_cmd::run(args, out),
            Command::Mock(args) => mock_cmd::run(args, out),
            Command::Client(args) => client_cmd::run(args, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The help text exactly as `ssm-harness <args> --help` prints it. The width is fixed so
    /// that the snapshots do not depend on the terminal if help wrapping is ever enabled.
    fn help(args: &[&str]) -> String {
        let argv = std::iter::once("ssm-harness").chain(args.iter().copied()).chain(["--help"]);
        let err = Cli::command().term_width(100).try_get_matches_from(argv).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        err.render().to_string()
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_root() {
        insta::assert_snapshot!(help(&[]));
    }

    #[test]
    fn help_run() {
        insta::assert_snapshot!(help(&["run"]));
    }

    #[test]
    fn help_requirements() {
        insta::assert_snapshot!(help(&["requirements"]));
    }

    #[test]
    fn help_mutants() {
        insta::assert_snapshot!(help(&["mutants"]));
    }

    #[test]
    fn help_explore() {
        insta::assert_snapshot!(help(&["explore"]));
    }

    #[test]
    fn help_mock() {
        insta::assert_snapshot!(help(&["mock"]));
    }

    #[test]
    fn help_client() {
        insta::assert_snapshot!(help(&["client"]));
    }

    #[test]
    fn help_frame() {
        insta::assert_snapshot!(help(&["frame"]));
    }

    #[test]
    fn help_frame_decode() {
        insta::assert_snapshot!(help(&["frame", "decode"]));
    }

    #[test]
    fn help_frame_encode() {
        insta::assert_snapshot!(help(&["frame", "encode"]));
    }
}
