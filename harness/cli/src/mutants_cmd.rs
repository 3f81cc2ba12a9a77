//! `ssm-harness mutants`: the mutation score. Runs the suite against every deliberately broken
//! implementation and shows which scenarios catch each one, through which requirement.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ssm_channel::{Impl, ImplName, Mutant};
use ssm_runner::{RunEvent, RunOptions};
use ssm_scenario::check::Verdict;

use crate::exit::Status;
use crate::output::{diag, Output};
use crate::run_cmd::{load_inputs, RunCmdError};

const MUTANTS_EXIT: &str = "Exit status:
  0  every mutant was caught by at least one scenario
  1  a mutant survived: the suite has a gap
  2  usage error, or a malformed scenario, requirement or xfail file
  3  with --backend mock: a scenario's verdict over real sockets differed from the simulator's
     (a bug in the harness; the scenarios are named on stderr)";

#[derive(Debug, clap::Args)]
#[command(after_help = MUTANTS_EXIT)]
pub struct MutantsArgs {
    /// Only these mutants (names as in `--impl mutant:NAME`); none runs all
    names: Vec<String>,
    /// Run seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where scenario files live
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// Scenarios run in parallel (default: the number of CPUs)
    #[arg(long)]
    jobs: Option<usize>,
    /// Where the scenarios run: the simulator, or real loopback sockets (see `run --backend`)
    #[arg(long, default_value = "sim", value_parser = ["sim", "mock"])]
    backend: String,
    /// With --backend mock: 0 runs on virtual time (one thread, a clock that jumps when every
    /// task waits); N runs on real time sped up N times
    #[arg(long, default_value_t = ssm_net::world::DEFAULT_SCALE, value_parser = clap::value_parser!(u32).range(0..=100))]
    time_scale: u32,
}

/// How one mutant fared.
#[derive(Debug, serde::Serialize)]
struct Score {
    mutant: &'static str,
    breaks: Vec<&'static str>,
    caught_by: Vec<(String, String)>,
}

pub fn run(args: &MutantsArgs, out: &mut Output) -> anyhow::Result<Status> {
    let (catalogue, xfails, scenarios) = load_inputs(&args.scenarios, &[])?;
    let mutants: Vec<Mutant> = if args.names.is_empty() {
        Mutant::ALL.to_vec()
    } else {
        args.names
            .iter()
            .map(|n| n.parse::<Mutant>().map_err(|e| RunCmdError::Input(e.to_string())))
            .collect::<Result<_, _>>()?
    };
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = std::time::Instant::now();
    let mut scores = Vec::new();
    let mut disagreed = 0usize;
    for m in mutants {
        let backend = crate::run_cmd::backend(&args.backend, args.time_scale);
        let opts = RunOptions {
            // Over real sockets only the scenarios that catch the mutant on the simulator are
            // run (each of them is simulated again there and must agree).
            backend: ssm_runner::Backend::Sim,
            imp: ImplName { imp: Impl::Mutant(m), role: None },
            under_test: None,
            seed: args.seed,
            strict: true,
            jobs,
            filters: Vec::new(),
        };
        let mut caught: Vec<(String, String)> = Vec::new();
        let mut sink = |ev: RunEvent| {
            if let RunEvent::ScenarioFinished(r) = ev {
                if matches!(r.verdict, Verdict::Fail | Verdict::NonStrict) {
                    let mut reqs: BTreeSet<String> = BTreeSet::new();
                    if let Some(j) = &r.judgement {
                        reqs.extend(
                            j.requirements.iter().filter(|q| q.outcome == "fail").map(|q| q.req.to_string()),
                        );
                        reqs.extend(j.integrity.iter().map(|d| format!("{} (stream)", d.req)));
                        if reqs.is_empty() {
                            reqs.extend(j.problems.iter().map(|p| p.chars().take(60).collect::<String>()));
                        }
                    }
                    caught.push((r.id.clone(), reqs.into_iter().collect::<Vec<_>>().join(", ")));
                }
            }
        };
        ssm_runner::run_all(&opts, &scenarios, &catalogue, &xfails, &mut sink);
        if backend != ssm_runner::Backend::Sim {
            let ids: BTreeSet<String> = caught.drain(..).map(|(id, _)| id).collect();
            let subset: Vec<_> = scenarios.iter().filter(|(_, sc)| ids.contains(&sc.id)).cloned().collect();
            let opts = RunOptions { backend, ..opts.clone() };
            let mut disagreements = Vec::new();
            let mut sink = |ev: RunEvent| {
                if let RunEvent::ScenarioFinished(r) = ev {
                    match r.verdict {
                        Verdict::Fail | Verdict::NonStrict => {
                            caught.push((r.id.clone(), "on the mock backend".into()))
                        }
                        Verdict::Error => {
                            disagreements.push((r.id.clone(), r.reason.clone().unwrap_or_default()))
                        }
                        _ => {}
                    }
                }
            };
            ssm_runner::run_all(&opts, &subset, &catalogue, &xfails, &mut sink);
            disagreed += disagreements.len();
            for (id, why) in disagreements {
                diag!("mutant:{}: {id}: {why}", m.name());
            }
        }
        caught.sort();
        scores.push(Score {
            mutant: m.name(),
            breaks: m.breaks().iter().map(|r| r.id()).collect(),
            caught_by: caught,
        });
    }
    let mut survived = 0;
    let mut text = String::new();
    for s in &scores {
        if s.caught_by.is_empty() {
            survived += 1;
            text.push_str(&format!("SURVIVED  mutant:{:<28} breaks {}\n", s.mutant, s.breaks.join(", ")));
            continue;
        }
        text.push_str(&format!("CAUGHT    mutant:{:<28} by {} scenario(s)\n", s.mutant, s.caught_by.len()));
        for (id, reqs) in s.caught_by.iter().take(5) {
            text.push_str(&format!("          {id:<14} {reqs}\n"));
        }
        if s.caught_by.len() > 5 {
            text.push_str(&format!("          ... and {} more\n", s.caught_by.len() - 5));
        }
    }
    text.push_str(&format!(
        "{} of {} mutants caught by {} scenarios in {:.2} s\n",
        scores.len() - survived,
        scores.len(),
        scenarios.len(),
        started.elapsed().as_secs_f64()
    ));
    if disagreed > 0 {
        text.push_str(&format!(
            "{disagreed} scenario run(s) where the mock backend and the simulator disagree: a harness bug\n"
        ));
    }
    out.write(text.as_bytes())?;
    Ok(if disagreed > 0 {
        Status::Harness
    } else if survived == 0 {
        Status::Success
    } else {
        Status::Violation
    })
}
