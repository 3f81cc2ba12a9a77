//! Selects scenarios, runs each on a backend with the chosen implementation under test, judges
//! the trace and reports every result as one stream of [`RunEvent`]s that all reporters consume.

pub mod explore;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;
use ssm_channel::{Behaviour, Impl, ImplName, Role};
use ssm_scenario::catalogue::{Catalogue, XFail};
use ssm_scenario::check::{judge, Judgement, RunStatus, Verdict};
use ssm_scenario::{Scenario, Trace};
use ssm_spec::Req;

/// Where scenarios run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The deterministic simulator.
    Sim,
    /// Real loopback sockets: the mock service and the reference client, with machine time
    /// `scale` times faster than real time. Every scenario is also run on the simulator; a
    /// different verdict is an ERROR (a harness bug, not a finding about the system under test).
    Mock { scale: u32 },
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
            Backend::Mock { .. } => "mock",
        }
    }
}

/// Which scenarios to run: each filter matches an id (exact or prefix ending in `*`), a
/// requirement id, or `tag:NAME`. No filter runs everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Id(String),
    IdPrefix(String),
    Req(Req),
    Tag(String),
}

impl Filter {
    pub fn parse(s: &str) -> Filter {
        if let Some(t) = s.strip_prefix("tag:") {
            Filter::Tag(t.to_owned())
        } else if let Ok(r) = s.parse::<Req>() {
            Filter::Req(r)
        } else if let Some(p) = s.strip_suffix('*') {
            Filter::IdPrefix(p.to_owned())
        } else {
            Filter::Id(s.to_owned())
        }
    }

    fn matches(&self, sc: &Scenario) -> bool {
        match self {
            Filter::Id(id) => sc.id == *id,
            Filter::IdPrefix(p) => sc.id.starts_with(p.as_str()),
            Filter::Req(r) => sc.requirements.contains(r),
            Filter::Tag(t) => sc.tags.iter().any(|x| x == t),
        }
    }
}

/// Everything a run is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub backend: Backend,
    pub imp: ImplName,
    /// Only scenarios that judge this role.
    pub under_test: Option<Role>,
    pub seed: u64,
    pub strict: bool,
    pub jobs: usize,
    pub filters: Vec<Filter>,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub id: String,
    pub title: String,
    pub file: PathBuf,
    pub requirements: Vec<Req>,
    pub tags: Vec<String>,
    pub under_test: Role,
    /// The implementation that played the role under test.
    #[serde(rename = "impl")]
    pub imp: String,
    pub seed: u64,
    pub verdict: Verdict,
    /// Why: the headline of a failure, the skip reason, the xfail reason.
    pub reason: Option<String>,
    pub judgement: Option<Judgement>,
    /// Virtual time the scenario took, in milliseconds.
    pub virtual_ms: u64,
    /// Wall time, in milliseconds.
    pub wall_ms: u64,
    /// A command line that replays exactly this run.
    pub replay: String,
    #[serde(skip)]
    pub trace: Trace,
}

/// Counts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub non_strict: usize,
    pub xfail: usize,
    pub skipped: usize,
    pub errors: usize,
}

impl Totals {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail => self.failed += 1,
            Verdict::NonStrict => self.non_strict += 1,
            Verdict::Xfail => self.xfail += 1,
            Verdict::Skip => self.skipped += 1,
            Verdict::Error => self.errors += 1,
        }
    }
}

/// Facts about the whole run, reported first.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub harness_version: &'static str,
    pub backend: Backend,
    #[serde(rename = "impl")]
    pub imp: String,
    pub under_test: Option<Role>,
    pub seed: u64,
    pub strict: bool,
    pub scenarios: usize,
}

/// The one event stream every reporter consumes.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Started(RunInfo),
    ScenarioFinished(Box<ScenarioResult>),
    Finished { totals: Totals, wall_ms: u64 },
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Scenario(#[from] Box<ssm_scenario::ScenarioError>),
    #[error("no scenario matches the filters")]
    NothingSelected,
}

/// Seed of one scenario in a run: the scenario's own, or one derived from the run seed and id.
pub fn scenario_seed(run_seed: u64, sc: &Scenario) -> u64 {
    if let Some(s) = sc.seed {
        return s;
    }
    // FNV-1a over the id, mixed with the run seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ run_seed;
    for b in sc.id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Loads and selects scenarios.
pub fn select(dir: &Path, filters: &[Filter]) -> Result<Vec<(PathBuf, Scenario)>, RunError> {
    let all = ssm_scenario::load_dir(dir).map_err(Box::new)?;
    let chosen: Vec<_> =
        all.into_iter().filter(|(_, s)| filters.is_empty() || filters.iter().any(|f| f.matches(s))).collect();
    if chosen.is_empty() {
        return Err(RunError::NothingSelected);
    }
    Ok(chosen)
}

/// Why a scenario does not apply to the implementation, if it does not.
fn skip_reason(opts: &RunOptions, sc: &Scenario) -> Option<String> {
    if let Some(r) = opts.under_test {
        if r != sc.under_test {
            return Some(format!("judges the {}, this run judges the {r}", sc.under_test));
        }
    }
    if let Some(r) = opts.imp.role {
        if r != sc.under_test {
            return Some(format!("judges the {}; {} is a {r}", sc.under_test, opts.imp));
        }
    }
    if let Impl::Mutant(m) = opts.imp.imp {
        if !m.roles().contains(&sc.under_test) {
            return Some(format!(
                "mutant {m} exists only for the {}",
                m.roles().iter().map(|r| r.name()).collect::<Vec<_>>().join("/")
            ));
        }
    }
    if let Backend::Mock { .. } = opts.backend {
        return mock_skip_reason(sc);
    }
    None
}

/// Scenarios the mock backend cannot run faithfully, and why (each is still run on the
/// simulator).
fn mock_skip_reason(sc: &Scenario) -> Option<String> {
    let burst = sc
        .steps
        .iter()
        .filter_map(|s| match s {
            ssm_scenario::model::Step::Send { repeat, .. } => *repeat,
            _ => None,
        })
        .max()
        .unwrap_or(1);
    if burst > MOCK_MAX_BURST {
        return Some(format!(
            "sends a burst of {burst} messages: with every expired message retransmitted, over real \
             sockets that is millions of websocket frames, minutes of CPU for one scenario (the mock \
             backend runs bursts of at most {MOCK_MAX_BURST})"
        ));
    }
    None
}

/// The largest `repeat` of a send step the mock backend runs.
const MOCK_MAX_BURST: u32 = 1000;

fn replay_command(opts: &RunOptions, sc: &Scenario) -> String {
    let mut cmd = format!("ssm-harness run --seed {} --impl {}", opts.seed, opts.imp);
    if opts.strict {
        cmd.push_str(" --strict");
    }
    if opts.backend != Backend::Sim {
        cmd.push_str(&format!(" --backend {}", opts.backend.name()));
    }
    cmd.push(' ');
    cmd.push_str(&sc.id);
    cmd
}

fn xfail_for<'a>(xfails: &'a [XFail], imp: &str, sc: &Scenario, j: &Judgement) -> Option<&'a XFail> {
    xfails.iter().find(|x| {
        x.scenario == sc.id
            && x.imp.as_deref().is_none_or(|i| i == imp)
            && x.requirement.is_none_or(|r| j.requirements.iter().any(|q| q.req == r && q.outcome == "fail"))
    })
}

/// Runs one scenario.
pub fn run_one(opts: &RunOptions, path: &Path, sc: &Scenario, xfails: &[XFail]) -> ScenarioResult {
    let seed = scenario_seed(opts.seed, sc);
    let imp = opts.imp.to_string();
    let mut result = ScenarioResult {
        id: sc.id.clone(),
        title: sc.title.clone(),
        file: path.to_path_buf(),
        requirements: sc.requirements.clone(),
        tags: sc.tags.clone(),
        under_test: sc.under_test,
        imp: imp.clone(),
        seed,
        verdict: Verdict::Skip,
        reason: None,
        judgement: None,
        virtual_ms: 0,
        wall_ms: 0,
        replay: replay_command(opts, sc),
        trace: Trace::default(),
    };
    if let Some(why) = skip_reason(opts, sc) {
        result.reason = Some(why);
        return result;
    }
    let started = Instant::now();
    let sut = Behaviour::for_impl(&opts.imp.imp, sc.under_test);
    let peer_impl =
        sc.peer.as_deref().and_then(|p| p.parse::<ImplName>().ok()).map_or(Impl::Conformant, |p| p.imp);
    let peer = Behaviour::for_impl(&peer_impl, sc.under_test.peer());
    let (client, agent) = match sc.under_test {
        Role::Client => (sut, peer),
        Role::Agent => (peer, sut),
    };
    let sim =
        ssm_sim::run(&ssm_sim::SimInput { scenario: sc, client: client.clone(), agent: agent.clone(), seed });
    let sim_status = match &sim.end {
        ssm_sim::RunEnd::Settled => RunStatus { settled: true, problem: None },
        ssm_sim::RunEnd::DidNotFinish { waiting_for } => RunStatus {
            settled: false,
            problem: Some(format!(
                "did not finish within {} ms of virtual time: {waiting_for}",
                sc.duration_ms
            )),
        },
        ssm_sim::RunEnd::StepTimedOut { index, step } => {
            RunStatus { settled: false, problem: Some(format!("step {index} timed out: {step}")) }
        }
    };
    let sim_judgement = judge(sc, &sim.trace, &sim_status, opts.strict);
    let (trace, elapsed, j, disagreement) = match opts.backend {
        Backend::Sim => (sim.trace, sim.elapsed, sim_judgement, None),
        Backend::Mock { scale } => {
            let net =
                ssm_net::world::run(&ssm_net::world::NetInput { scenario: sc, client, agent, seed, scale });
            let status = match &net.end {
                ssm_net::world::NetEnd::Settled => RunStatus { settled: true, problem: None },
                ssm_net::world::NetEnd::DidNotFinish { waiting_for } => RunStatus {
                    settled: false,
                    problem: Some(format!(
                        "did not finish within {} ms of machine time: {waiting_for}",
                        sc.duration_ms
                    )),
                },
                ssm_net::world::NetEnd::StepTimedOut { index, step } => {
                    RunStatus { settled: false, problem: Some(format!("step {index} timed out: {step}")) }
                }
                ssm_net::world::NetEnd::Error(e) => {
                    RunStatus { settled: false, problem: Some(format!("harness error: {e}")) }
                }
            };
            let harness_error = match &net.end {
                ssm_net::world::NetEnd::Error(e) => Some(format!("the mock backend failed: {e}")),
                _ => None,
            };
            let j = judge(sc, &net.trace, &status, opts.strict);
            let disagreement = harness_error.or_else(|| {
                (j.verdict != sim_judgement.verdict).then(|| {
                    format!(
                        "the backends disagree: sim {} ({}), mock {} ({})",
                        sim_judgement.verdict.name(),
                        sim_judgement.headline.clone().unwrap_or_else(|| "no finding".into()),
                        j.verdict.name(),
                        j.headline.clone().unwrap_or_else(|| "no finding".into()),
                    )
                })
            });
            (net.trace, net.elapsed, j, disagreement)
        }
    };
    let out_elapsed = elapsed;
    let mut verdict = j.verdict;
    let mut reason = j.headline.clone();
    if let Some(x) = xfail_for(xfails, &imp, sc, &j) {
        match verdict {
            Verdict::Fail | Verdict::NonStrict => {
                verdict = Verdict::Xfail;
                reason = Some(format!("expected failure: {}", x.reason));
            }
            Verdict::Pass => {
                verdict = Verdict::Fail;
                reason =
                    Some(format!("expected to fail ({}) but passed: remove the xfail.toml entry", x.reason));
            }
            _ => {}
        }
    }
    if let Some(d) = disagreement {
        verdict = Verdict::Error;
        reason = Some(d);
    }
    result.verdict = verdict;
    result.reason = reason;
    result.judgement = Some(j);
    result.virtual_ms = u64::try_from(out_elapsed.as_millis()).unwrap_or(u64::MAX);
    result.wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result.trace = trace;
    result
}

/// Runs the selected scenarios on `opts.jobs` threads, calling `sink` for every event on the
/// calling thread. Results arrive in completion order; reporters sort them.
pub fn run_all(
    opts: &RunOptions,
    scenarios: &[(PathBuf, Scenario)],
    _catalogue: &Catalogue,
    xfails: &[XFail],
    sink: &mut dyn FnMut(RunEvent),
) -> Totals {
    let started = Instant::now();
    sink(RunEvent::Started(RunInfo {
        harness_version: env!("CARGO_PKG_VERSION"),
        backend: opts.backend,
        imp: opts.imp.to_string(),
        under_test: opts.under_test,
        seed: opts.seed,
        strict: opts.strict,
        scenarios: scenarios.len(),
    }));
    let mut totals = Totals::default();
    let jobs = opts.jobs.max(1).min(scenarios.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<ScenarioResult>();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, sc)) = scenarios.get(i) else { break };
                if tx.send(run_one(opts, path, sc, xfails)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for r in rx {
            totals.add(r.verdict);
            sink(RunEvent::ScenarioFinished(Box::new(r)));
        }
    });
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    sink(RunEvent::Finished { totals, wall_ms });
    totals
}
