//! `ssm-harness explore`: random fault schedules. Each seed picks a base scenario, adds a fault
//! schedule generated from the seed alone, runs it, and shrinks a failing schedule to a minimal
//! one, written as a regression scenario. `--check-determinism` replays one seed in fresh
//! processes and compares the trace digests.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ssm_channel::ImplName;
use ssm_runner::explore::{self, Base, Failure, Pair, SeedOutcome};
use ssm_runner::Filter;

use crate::exit::Status;
use crate::output::{diag, Output};
use crate::run_cmd::{load_inputs, RunCmdError};

const EXPLORE_EXIT: &str = "Exit status:
  0  no seed failed (with --check-determinism: every replay gave the same trace)
  1  a seed FAILed: the minimal schedule, a replay command and a regression file are reported
     (with --check-determinism: the traces differ)
  2  usage error, a malformed scenario, requirement or xfail file, or no usable base scenario
  3  the harness failed: a regression file does not load or reproduce, a replay process failed";

#[derive(Debug, clap::Args)]
#[command(after_help = EXPLORE_EXIT)]
pub struct ExploreArgs {
    /// Base scenarios: ids (a trailing `*` matches a prefix), requirement ids or `tag:NAME`;
    /// none uses every scenario the pair can run
    filters: Vec<String>,
    /// How many seeds to run (at least one of --seeds and --time-budget is needed)
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// Stop starting new seeds after this many seconds of wall time
    #[arg(long, value_name = "SECS")]
    time_budget: Option<u64>,
    /// The first seed; seeds run S, S+1, ...
    #[arg(long, value_name = "S", default_value_t = 1)]
    from_seed: u64,
    /// Implementation under test: conformant, plugin-2024 (a client), agent-2024 (an agent) or
    /// mutant:NAME
    #[arg(long = "impl", default_value = "conformant", value_parser = crate::run_cmd::parse_impl)]
    imp: ImplName,
    /// The harness's peer, playing the other role: conformant, plugin-2024, agent-2024 or
    /// mutant:NAME
    #[arg(long, default_value = "conformant", value_parser = crate::run_cmd::parse_impl)]
    peer: ImplName,
    /// Seeds run in parallel (default: the number of CPUs)
    #[arg(long)]
    jobs: Option<usize>,
    /// Instead of exploring, run seed --from-seed N times, each in a fresh process, on every
    /// selected scenario (the first when none is given) and compare the trace digests
    #[arg(long, value_name = "N")]
    check_determinism: Option<u32>,
    /// Where scenario files live
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// Where shrunk failures are written as regression scenarios
    #[arg(long, value_name = "DIR", default_value = "scenarios/regressions")]
    write_regressions: PathBuf,
    /// Do not write regression scenarios
    #[arg(long)]
    no_write: bool,
    /// Internal: print the trace digest of seed --from-seed on this scenario and exit
    #[arg(long, hide = true, value_name = "ID")]
    trace_digest: Option<String>,
}

impl ExploreArgs {
    fn pair(&self) -> Pair {
        Pair { imp: self.imp, peer: self.peer }
    }

    fn replay(&self, id: &str, seed: u64) -> String {
        let mut cmd = format!(
            "ssm-harness explore {id} --from-seed {seed} --seeds 1 --impl {} --peer {}",
            self.imp, self.peer
        );
        if self.scenarios != Path::new("scenarios") {
            cmd.push_str(&format!(" --scenarios {}", self.scenarios.display()));
        }
        cmd
    }
}

pub fn run(args: &ExploreArgs, out: &mut Output) -> anyhow::Result<Status> {
    if let Some(id) = &args.trace_digest {
        return trace_digest(args, id, out);
    }
    if let Some(n) = args.check_determinism {
        return check_determinism(args, n, out);
    }
    if args.seeds.is_none() && args.time_budget.is_none() {
        return Err(RunCmdError::Input("give --seeds N, --time-budget SECS or both".into()).into());
    }
    if args.seeds == Some(0) {
        return Err(RunCmdError::Input("--seeds must be at least 1".into()).into());
    }
    explore_seeds(args, out)
}

/// The one scenario `id` as a base for the pair.
fn single_base(args: &ExploreArgs, id: &str) -> anyhow::Result<Base> {
    let (_, _, chosen) = load_inputs(&args.scenarios, &[Filter::Id(id.to_owned())])?;
    let (path, sc) = chosen.first().ok_or_else(|| RunCmdError::Input(format!("no scenario `{id}`")))?;
    if let Some(why) = args.pair().mismatch(sc) {
        return Err(RunCmdError::Input(format!("{id}: {why}")).into());
    }
    Ok(explore::base_of(path, sc, &args.pair()).0)
}

fn trace_digest(args: &ExploreArgs, id: &str, out: &mut Output) -> anyhow::Result<Status> {
    let base = single_base(args, id)?;
    let digest = explore::trace_digest(&base, &args.pair(), args.from_seed);
    out.write(format!("{digest}\n").as_bytes())?;
    Ok(Status::Success)
}

fn check_determinism(args: &ExploreArgs, n: u32, out: &mut Output) -> anyhow::Result<Status> {
    if n == 0 {
        return Err(RunCmdError::Input("--check-determinism needs at least 1 run".into()).into());
    }
    let filters: Vec<Filter> = args.filters.iter().map(|f| Filter::parse(f)).collect();
    let (_, _, chosen) = load_inputs(&args.scenarios, &filters)?;
    let pair = args.pair();
    let mut ids: Vec<String> =
        chosen.iter().filter(|(_, sc)| pair.mismatch(sc).is_none()).map(|(_, sc)| sc.id.clone()).collect();
    if filters.is_empty() {
        ids.truncate(1);
    }
    if ids.is_empty() {
        return Err(RunCmdError::Input(format!(
            "no selected scenario can run {} with peer {}",
            pair.imp, pair.peer
        ))
        .into());
    }
    let exe = std::env::current_exe()?;
    let seed = args.from_seed;
    out.write(
        format!(
            "ssm-harness explore: determinism of seed {seed} on {} scenario(s), impl {}, peer {}, {n} fresh processes each\n",
            ids.len(),
            pair.imp,
            pair.peer
        )
        .as_bytes(),
    )?;
    let mut differ = 0;
    for id in &ids {
        let local = explore::trace_digest(&single_base(args, id)?, &pair, seed);
        let mut digests: Vec<String> = Vec::new();
        for _ in 0..n {
            let o = Command::new(&exe)
                .arg("explore")
                .args(["--trace-digest", id])
                .args(["--from-seed", &seed.to_string()])
                .args(["--impl", &pair.imp.to_string()])
                .args(["--peer", &pair.peer.to_string()])
                .arg("--scenarios")
                .arg(&args.scenarios)
                .output();
            match o {
                Ok(o) if o.status.success() => {
                    digests.push(String::from_utf8_lossy(&o.stdout).trim().to_owned());
                }
                Ok(o) => {
                    diag!(
                        "error: the replay process for {id} failed ({}): {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    return Ok(Status::Harness);
                }
                Err(e) => {
                    diag!("error: cannot start {}: {e}", exe.display());
                    return Ok(Status::Harness);
                }
            }
        }
        let mut distinct: Vec<&String> = digests.iter().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() == 1 && distinct.first().is_some_and(|d| **d == local) {
            out.write(format!("SAME       {id:<28} seed {seed}: {n} processes, trace {local}\n").as_bytes())?;
        } else {
            differ += 1;
            out.write(format!("DIFFERENT  {id:<28} seed {seed}: this process {local}\n").as_bytes())?;
            for (i, d) in digests.iter().enumerate() {
                out.write(format!("{:>10} process {}: {d}\n", "", i + 1).as_bytes())?;
            }
        }
    }
    out.write(
        format!("{} of {} scenario(s) replayed byte-identically\n", ids.len() - differ, ids.len()).as_bytes(),
    )?;
    Ok(if differ == 0 { Status::Success } else { Status::Violation })
}

/// Progress on stderr: a bar on a terminal, a line every ten seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    by_seeds: bool,
    last_line: Instant,
}

impl Progress {
    fn new(seeds: Option<u64>, budget: Option<u64>) -> Self {
        let (len, by_seeds) = match (seeds, budget) {
            (Some(n), _) => (n, true),
            (None, b) => (b.unwrap_or(0), false),
        };
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new(len);
            let template = if by_seeds {
                "{bar:40} {pos}/{len} seeds {elapsed} {msg}"
            } else {
                "{bar:40} {pos}/{len} s {msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                pb.set_style(style);
            }
            pb
        });
        Progress { bar, by_seeds, last_line: Instant::now() }
    }

    fn update(&mut self, done: u64, failures: usize, started: Instant) {
        let elapsed = started.elapsed();
        match &self.bar {
            Some(pb) => {
                pb.set_position(if self.by_seeds { done } else { elapsed.as_secs() });
                pb.set_message(format!("{done} seeds, {failures} failures"));
            }
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(10) {
                    self.last_line = Instant::now();
                    diag!("explore: {done} seeds, {failures} failures, {:.0} s", elapsed.as_secs_f64());
                }
            }
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(pb) => pb.println(line),
            None => diag!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

fn explore_seeds(args: &ExploreArgs, out: &mut Output) -> anyhow::Result<Status> {
    let filters: Vec<Filter> = args.filters.iter().map(|f| Filter::parse(f)).collect();
    let (_, _, chosen) = load_inputs(&args.scenarios, &filters)?;
    let pair = args.pair();
    let mut bases: Vec<Base> = Vec::new();
    for (path, sc) in &chosen {
        match explore::prepare(path, sc, &pair) {
            Ok(b) => bases.push(b),
            // Without filters, scenarios for the other role are simply not candidates.
            Err(why) if !filters.is_empty() || pair.mismatch(sc).is_none() => {
                diag!("not a base: {}: {why}", sc.id);
            }
            Err(_) => {}
        }
    }
    if bases.is_empty() {
        return Err(RunCmdError::Input(format!(
            "no selected scenario can be a base for impl {} with peer {}",
            pair.imp, pair.peer
        ))
        .into());
    }
    let first = args.from_seed;
    let end = args.seeds.map_or(u64::MAX, |n| first.saturating_add(n));
    let budget = args.time_budget.map(Duration::from_secs);
    let range = match args.seeds {
        Some(n) => format!("seeds {first}..={}", first.saturating_add(n - 1)),
        None => format!("seeds from {first}"),
    };
    let jobs =
        args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    out.write(
        format!(
            "ssm-harness explore: {range}{}, {} base scenario(s), impl {}, peer {}, {jobs} jobs\n",
            budget.map_or(String::new(), |b| format!(" within {} s", b.as_secs())),
            bases.len(),
            pair.imp,
            pair.peer
        )
        .as_bytes(),
    )?;

    let started = Instant::now();
    let next = AtomicU64::new(first);
    let mut progress = Progress::new(args.seeds, args.time_budget);
    let mut outcomes: Vec<SeedOutcome> = Vec::new();
    let (tx, rx) = mpsc::channel::<SeedOutcome>();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, bases, pair) = (&next, &bases, &pair);
            s.spawn(move || loop {
                if budget.is_some_and(|b| started.elapsed() >= b) {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let Some(o) = explore::explore_seed(bases, pair, seed) else { break };
                if tx.send(o).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut failures = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(o) => {
                    if let Some(f) = &o.failure {
                        failures += 1;
                        if seen.insert(f.signature()) {
                            progress.println(&format!(
                                "FAIL seed {} on {}: {}",
                                f.seed,
                                f.base_id,
                                f.headline()
                            ));
                        }
                    }
                    outcomes.push(o);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            progress.update(outcomes.len() as u64, failures, started);
        }
    });
    progress.finish();
    let wall = started.elapsed();
    outcomes.sort_by_key(|o| o.seed);
    report(args, &bases, &outcomes, wall, out)
}

fn report(
    args: &ExploreArgs,
    bases: &[Base],
    outcomes: &[SeedOutcome],
    wall: Duration,
    out: &mut Output,
) -> anyhow::Result<Status> {
    let pair = args.pair();
    let failures: Vec<&Failure> = outcomes.iter().filter_map(|o| o.failure.as_deref()).collect();
    let inconclusive = outcomes.iter().filter(|o| explore::is_inconclusive(o.verdict)).count();
    // The first seed of each (base, headline) is the representative of that failure.
    let mut distinct: BTreeMap<String, Vec<&Failure>> = BTreeMap::new();
    for f in &failures {
        distinct.entry(f.signature()).or_default().push(f);
    }
    let mut representatives: Vec<&Failure> = distinct.values().filter_map(|v| v.first().copied()).collect();
    representatives.sort_by_key(|f| f.seed);
    let mut harness_failed = false;
    for f in &representatives {
        let same: Vec<String> = distinct
            .get(&f.signature())
            .map(|v| v.iter().skip(1).map(|g| g.seed.to_string()).collect())
            .unwrap_or_default();
        let mut text = format!(
            "\nFAIL seed {} on {}: {}\n  failure: {}\n  shrunk from {} to {} rule(s) in {} runs; minimal schedule:\n",
            f.seed,
            f.base_id,
            f.headline(),
            f.signature(),
            explore::rule_count(&f.original),
            explore::rule_count(&f.minimal),
            f.shrink_runs
        );
        match explore::plan_toml(&f.minimal) {
            Ok(t) => {
                for line in t.lines() {
                    text.push_str(&format!("    {line}\n"));
                }
            }
            Err(e) => text.push_str(&format!("    ({e})\n")),
        }
        text.push_str(&format!("  replay: {}\n", args.replay(&f.base_id, f.seed)));
        if !same.is_empty() {
            let shown: Vec<&str> = same.iter().take(12).map(String::as_str).collect();
            text.push_str(&format!(
                "  the same failure at {} more seed(s): {}{}\n",
                same.len(),
                shown.join(", "),
                if same.len() > shown.len() { ", ..." } else { "" }
            ));
        }
        if !args.no_write {
            let Some(base) = bases.iter().find(|b| b.scenario.id == f.base_id) else { continue };
            match write_regression(&args.write_regressions, base, &pair, f) {
                Ok((path, conformant)) => {
                    text.push_str(&format!("  regression: {}\n", path.display()));
                    if let Some(why) = conformant {
                        text.push_str(&format!(
                            "  note: a conformant {} fails it too: {why}\n",
                            base.scenario.under_test
                        ));
                    }
                }
                Err(e) => {
                    harness_failed = true;
                    diag!("error: seed {}: cannot write the regression scenario: {e}", f.seed);
                }
            }
        }
        out.write(text.as_bytes())?;
    }
    let n = outcomes.len();
    let per_min = if wall.as_secs_f64() > 0.0 { n as f64 * 60.0 / wall.as_secs_f64() } else { 0.0 };
    let range = match (outcomes.first(), outcomes.last()) {
        (Some(a), Some(b)) => format!(" ({}..={})", a.seed, b.seed),
        _ => String::new(),
    };
    out.write(
        format!(
            "\n{n} seeds{range}, {} failures ({} distinct), {per_min:.0} seeds/min{}\n",
            failures.len(),
            representatives.len(),
            if inconclusive > 0 {
                format!("; {inconclusive} inconclusive (a cited requirement was not exercised)")
            } else {
                String::new()
            }
        )
        .as_bytes(),
    )?;
    Ok(if harness_failed {
        Status::Harness
    } else if failures.is_empty() {
        Status::Success
    } else {
        Status::Violation
    })
}

/// Writes the regression scenario of `f` into `dir`; returns its path and, if a conformant
/// implementation in the same role fails it as well, why.
fn write_regression(
    dir: &Path,
    base: &Base,
    pair: &Pair,
    f: &Failure,
) -> anyhow::Result<(PathBuf, Option<String>)> {
    let (file, text) = explore::regression_file(base, pair, f)?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(&file);
    let header = format!(
        "# Written by `ssm-harness explore` (seed {}, impl {}, peer {}); shrunk to a minimal schedule.\n",
        f.seed, pair.imp, pair.peer
    );
    std::fs::write(&path, format!("{header}{text}"))?;
    let sc = ssm_scenario::parse_scenario(&path, &std::fs::read_to_string(&path)?).map_err(Box::new)?;
    let conformant: ImplName = "conformant".parse()?;
    let r = explore::run_scenario(conformant, &path, &sc);
    let why = (r.verdict != ssm_scenario::check::Verdict::Pass)
        .then(|| format!("{} {}", r.verdict.name(), r.reason.unwrap_or_default()));
    Ok((path, why))
}
