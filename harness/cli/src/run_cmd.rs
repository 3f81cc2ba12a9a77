//! `ssm-harness run`: the conformance suite.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use ssm_channel::{ImplName, Role};
use ssm_runner::{Backend, Filter, RunEvent, RunOptions, ScenarioResult, Totals};
use ssm_scenario::catalogue::{parse_xfail, Catalogue};
use ssm_scenario::check::Verdict;

use crate::exit::Status;
use crate::output::{diag, Output};

/// Exit status help for `run`.
const RUN_EXIT: &str = "Exit status:
  0  nothing failed (PASS, NON-STRICT without --strict, XFAIL, SKIP); with --against-baseline:
     every verdict matched the baseline
  1  a scenario FAILed: the system under test broke a requirement or an expectation; with
     --against-baseline: a verdict changed
  2  usage error, or a scenario, requirement or xfail file is malformed
  3  a scenario ended in ERROR: the harness or the environment failed";

#[derive(Debug, clap::Args)]
#[command(after_help = RUN_EXIT)]
pub struct RunArgs {
    /// Scenario ids (a trailing `*` matches a prefix), requirement ids (e.g. RES-006) or
    /// `tag:NAME`; none runs every scenario
    filters: Vec<String>,
    /// Implementation under test: conformant, plugin-2024 (a client), agent-2024 (an agent) or
    /// mutant:NAME
    #[arg(long = "impl", default_value = "conformant", value_parser = parse_impl)]
    imp: ImplName,
    /// Run only scenarios that judge this role
    #[arg(long, value_parser = parse_role)]
    under_test: Option<Role>,
    /// Run seed: every scenario's seed is derived from it and the scenario id
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SHOULD failures fail the run (NON-STRICT becomes FAIL)
    #[arg(long)]
    strict: bool,
    /// Where scenario files live
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// Where reports are written (one directory per run)
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Do not write a report directory
    #[arg(long)]
    no_report: bool,
    /// Terminal output: text lines, or one JSON summary on stdout
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// Scenarios run in parallel (default: the number of CPUs)
    #[arg(long)]
    jobs: Option<usize>,
    /// Compare every verdict with this expected-results file; any change in either direction
    /// fails the run (a ratchet), and the exit status then says only whether something changed
    #[arg(long, value_name = "FILE")]
    against_baseline: Option<PathBuf>,
    /// Write this run's verdicts as an expected-results file
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Where the scenarios run: the simulator, or real loopback sockets (the mock service and
    /// the reference client; every scenario is also simulated and a different verdict is an
    /// ERROR)
    #[arg(long, default_value = "sim", value_parser = ["sim", "mock"])]
    backend: String,
    /// With --backend mock: 0 runs on virtual time (one thread, a clock that jumps when every
    /// task waits); N runs on real time sped up N times
    #[arg(long, default_value_t = ssm_net::world::DEFAULT_SCALE, value_parser = clap::value_parser!(u32).range(0..=100))]
    time_scale: u32,
}

/// The backend a `--backend` value names.
pub(crate) fn backend(name: &str, time_scale: u32) -> Backend {
    match name {
        "mock" => Backend::Mock { scale: time_scale },
        _ => Backend::Sim,
    }
}

/// Parses `--impl` values, listing the mutants on error.
pub(crate) fn parse_impl(s: &str) -> Result<ImplName, String> {
    s.parse::<ImplName>().map_err(|e| {
        let names: Vec<&str> = ssm_channel::Mutant::ALL.iter().map(|m| m.name()).collect();
        format!("{e}; mutants: {}", names.join(", "))
    })
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "client" => Ok(Role::Client),
        "agent" => Ok(Role::Agent),
        _ => Err(format!("`{s}` is not a role: client or agent")),
    }
}

/// Outcome of `run` beyond the exit status: a malformed input is a usage error.
#[derive(Debug, thiserror::Error)]
pub enum RunCmdError {
    #[error("{0}")]
    Input(String),
}

/// `20261203T214700Z-conformant`: when the run started (UTC) and what it judged.
fn run_id(imp: &ImplName) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let stamp: String = ssm_wire::dump::format_epoch_ms(ms)
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let name: String =
        imp.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("{stamp}Z-{name}")
}

fn status_of(t: &Totals) -> Status {
    if t.errors > 0 {
        Status::Harness
    } else if t.failed > 0 {
        Status::Violation
    } else {
        Status::Success
    }
}

fn result_line(r: &ScenarioResult) -> String {
    let mut line = format!("{:<10} {:<28}", r.verdict.name(), r.id);
    if let Some(why) = &r.reason {
        line.push(' ');
        line.push_str(why);
    }
    if matches!(r.verdict, Verdict::Fail | Verdict::Error) {
        line.push_str(&format!("\n{:>10} replay: {}", "", r.replay));
    }
    line
}

/// What a scenario directory provides: the catalogue, the expected failures, the scenarios.
pub type Inputs = (Catalogue, Vec<ssm_scenario::catalogue::XFail>, Vec<(PathBuf, ssm_scenario::Scenario)>);

/// The catalogue, the expected failures and the selected scenarios of a scenario directory.
pub fn load_inputs(dir: &std::path::Path, filters: &[Filter]) -> Result<Inputs, RunCmdError> {
    let catalogue_path = dir.join("requirements.toml");
    let catalogue_text = std::fs::read_to_string(&catalogue_path)
        .with_context(|| format!("cannot read {}", catalogue_path.display()))
        .map_err(|e| RunCmdError::Input(format!("{e:#}")))?;
    let catalogue = Catalogue::parse(&catalogue_text)
        .map_err(|e| RunCmdError::Input(format!("{}: {e}", catalogue_path.display())))?;
    let xfail_path = dir.join("xfail.toml");
    let xfails = match std::fs::read_to_string(&xfail_path) {
        Ok(t) => parse_xfail(&t).map_err(|e| RunCmdError::Input(format!("{}: {e}", xfail_path.display())))?,
        Err(_) => Vec::new(),
    };
    let scenarios = ssm_runner::select(dir, filters).map_err(|e| RunCmdError::Input(e.to_string()))?;
    Ok((catalogue, xfails, scenarios))
}

pub fn run(args: &RunArgs, out: &mut Output) -> anyhow::Result<Status> {
    let filters: Vec<Filter> = args.filters.iter().map(|f| Filter::parse(f)).collect();
    let (catalogue, xfails, scenarios) = load_inputs(&args.scenarios, &filters)?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = RunOptions {
        backend: backend(&args.backend, args.time_scale),
        imp: args.imp,
        under_test: args.under_test,
        seed: args.seed,
        strict: args.strict,
        jobs,
        filters,
    };
    let text = args.format == "text";
    let tty = text && std::io::stderr().is_terminal();
    let bar = if tty {
        let pb = indicatif::ProgressBar::new(scenarios.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
            pb.set_style(style);
        }
        Some(pb)
    } else {
        None
    };
    let mut results: Vec<ScenarioResult> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let run_id = run_id(&args.imp);
    let mut reporter = if args.no_report {
        None
    } else {
        Some(
            ssm_report::Reporter::new(&args.report_dir, &run_id, &catalogue)
                .map_err(|e| RunCmdError::Input(format!("cannot write reports: {e}")))?,
        )
    };
    let mut report_error: Option<String> = None;
    let mut on_event = |ev: RunEvent| match ev {
        RunEvent::Started(info) => {
            let head = format!(
                "ssm-harness run: {} scenarios, impl {}, backend {}, seed {}{}",
                info.scenarios,
                info.imp,
                info.backend.name(),
                info.seed,
                if info.strict { ", strict" } else { "" }
            );
            if text {
                lines.push(head);
            }
        }
        RunEvent::ScenarioFinished(r) => {
            let line = result_line(&r);
            match &bar {
                Some(pb) => {
                    pb.inc(1);
                    pb.set_message(r.id.clone());
                    if !matches!(r.verdict, Verdict::Pass | Verdict::Skip) {
                        pb.println(line);
                    }
                }
                None if text => lines.push(line),
                None => {}
            }
            results.push(*r);
        }
        RunEvent::Finished { .. } => {}
    };
    let mut sink = |ev: RunEvent| {
        if let Some(r) = reporter.as_mut() {
            if let Err(e) = r.on_event(&ev) {
                report_error.get_or_insert_with(|| e.to_string());
            }
        }
        on_event(ev);
    };
    let started = std::time::Instant::now();
    let totals = ssm_runner::run_all(&opts, &scenarios, &catalogue, &xfails, &mut sink);
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let wall = started.elapsed();
    results.sort_by(|a, b| a.id.cmp(&b.id));
    if args.format == "json" {
        let v = serde_json::json!({
            "totals": totals,
            "wall_ms": wall.as_millis() as u64,
            "scenarios": results.iter().map(|r| serde_json::json!({
                "id": r.id, "verdict": r.verdict, "reason": r.reason, "replay": r.replay, "seed": r.seed,
            })).collect::<Vec<_>>(),
        });
        out.write(format!("{}\n", serde_json::to_string_pretty(&v)?).as_bytes())?;
    } else {
        for l in &lines {
            out.write(format!("{l}\n").as_bytes())?;
        }
        out.write(
            format!(
                "{} scenarios in {:.2} s: {} non-strict, {} xfail, {} errors\n{} passed, {} failed, {} skipped\n",
                results.len(),
                wall.as_secs_f64(),
                totals.non_strict,
                totals.xfail,
                totals.errors,
                totals.passed,
                totals.failed + totals.errors,
                totals.skipped
            )
            .as_bytes(),
        )?;
    }
    let baseline = crate::baseline::Baseline::of(&opts, &results);
    if let Some(path) = &args.write_baseline {
        baseline.write(path)?;
        diag!("baseline written: {}", path.display());
    }
    let mut baseline_changed = false;
    if let Some(path) = &args.against_baseline {
        let expected =
            crate::baseline::Baseline::read(path).map_err(|e| RunCmdError::Input(e.to_string()))?;
        let changes = expected.diff(&baseline, !opts.filters.is_empty());
        if changes.is_empty() {
            out.write(format!("baseline {}: no verdict changed\n", path.display()).as_bytes())?;
        } else {
            baseline_changed = true;
            for c in &changes {
                out.write(format!("BASELINE   {c}\n").as_bytes())?;
            }
            out.write(
                format!(
                    "baseline {}: {} verdict(s) changed; update it with --write-baseline if intended\n",
                    path.display(),
                    changes.len()
                )
                .as_bytes(),
            )?;
        }
    }
    if let Some(r) = reporter {
        match report_error {
            None => match r.finish() {
                Ok(dir) => diag!("report: {}", dir.join("index.html").display()),
                Err(e) => report_error = Some(e.to_string()),
            },
            Some(_) => drop(r),
        }
    }
    if let Some(e) = report_error {
        diag!("error: the report could not be written: {e}");
        return Ok(Status::Harness);
    }
    if totals.errors > 0 {
        diag!("{} scenario(s) ended in ERROR: the harness failed, not the system under test", totals.errors);
    }
    // Against a baseline, the expected failures are the point: only a change fails the run.
    if args.against_baseline.is_some() {
        return Ok(if baseline_changed { Status::Violation } else { Status::Success });
    }
    Ok(status_of(&totals))
}
