//! Randomised fault exploration: a fault schedule generated purely from a seed, run on top of a
//! base scenario, and a shrinker that reduces a failing schedule to a minimal one. Everything
//! here is deterministic: the same seed and base give the same schedule, the same run and the
//! same shrunk result.

use std::path::{Path, PathBuf};

use ssm_channel::rng::Rng;
use ssm_channel::{Impl, ImplName, Role};
use ssm_fault::{
    ApiAction, ApiErrorKind, ApiOp, ApiRule, Corruption, Direction, FaultPlan, FrameAction, FrameMatch,
    FrameRule, SeqRange, Side, TimedAction, TimedFault,
};
use ssm_scenario::check::Verdict;
use ssm_scenario::{Scenario, Trace, What};
use ssm_spec::Req;
use ssm_wire::MessageType;

use crate::{run_one, scenario_seed, Backend, RunOptions, ScenarioResult};

/// The highest sequence number a generated rule targets.
pub const MAX_SEQ: i64 = 5;

/// Mixed into the seed so the schedule's random stream differs from the simulator's.
const SCHEDULE_SALT: u64 = 0x6578_706c_6f72_6521;

/// What a base scenario produces, as far as the generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The highest stream sequence number in each direction (`-1` for none), indexed by
    /// [`Direction::index`].
    pub max_seq: [i64; 2],
    /// The session ends on purpose (the scenario expects an end, terminates or finishes). A
    /// lost or late frame there may legitimately stay unacknowledged forever once one side is
    /// gone, so such a base gets only duplicates: no loss, delay, reorder, reset or API error.
    pub ends: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape { max_seq: [MAX_SEQ; 2], ends: false }
    }
}

impl Shape {
    /// The stream messages a run wrote, capped at [`MAX_SEQ`].
    pub fn of_trace(trace: &Trace) -> Shape {
        let mut max_seq = [-1i64; 2];
        for r in &trace.records {
            let What::Wrote { by, bytes, .. } = &r.what else { continue };
            let Ok(f) = ssm_wire::decode(bytes) else { continue };
            let (dir, want) = match by {
                Role::Client => (Direction::ToAgent, MessageType::InputStreamData),
                Role::Agent => (Direction::ToClient, MessageType::OutputStreamData),
            };
            if f.message_type == want && f.sequence_number >= 0 {
                let m = &mut max_seq[dir.index()];
                *m = (*m).max(f.sequence_number.min(MAX_SEQ));
            }
        }
        Shape { max_seq, ends: false }
    }

    /// Whether `sc` ends its session on purpose (see [`Shape::ends`]).
    pub fn scenario_ends(sc: &Scenario) -> bool {
        use ssm_scenario::model::{AgentApp, Step, WaitEvent};
        sc.expect.end.as_deref().is_some_and(|e| e != "running")
            || matches!(sc.agent_app, AgentApp::Script { exit_code: Some(_), .. })
            || sc.steps.iter().any(|s| {
                matches!(
                    s,
                    Step::Terminate { .. }
                        | Step::Finish { .. }
                        | Step::WaitFor { event: WaitEvent::Ended, .. }
                )
            })
    }
}

/// The implementation under test and the harness's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub imp: ImplName,
    pub peer: ImplName,
}

fn roles_of(name: &ImplName) -> Vec<Role> {
    match (name.role, name.imp) {
        (Some(r), _) => vec![r],
        (None, Impl::Mutant(m)) => m.roles().to_vec(),
        (None, _) => vec![Role::Client, Role::Agent],
    }
}

impl Pair {
    /// Why the pair cannot run `sc`, if it cannot.
    pub fn mismatch(&self, sc: &Scenario) -> Option<String> {
        if !roles_of(&self.imp).contains(&sc.under_test) {
            return Some(format!("judges the {}; {} cannot play it", sc.under_test, self.imp));
        }
        let plays = sc.under_test.peer();
        if !roles_of(&self.peer).contains(&plays) {
            return Some(format!("the peer plays the {plays}; {} cannot", self.peer));
        }
        None
    }
}

/// Why exploration could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error("cannot serialise the scenario as TOML: {0}")]
    Toml(#[from] toml::ser::Error),
    #[error("the written scenario does not load: {0}")]
    Load(#[from] Box<ssm_scenario::ScenarioError>),
    #[error("the written scenario does not load back as the same scenario")]
    RoundTrip,
    #[error("the written scenario does not reproduce the failure: {0}")]
    NotReproduced(String),
}

/// Generates the fault schedule of `seed` for a base of shape `shape`: 1 to 4 frame rules (drop,
/// duplicate, delay, reorder or a corrupt digest, each on the first copy of one message or one
/// acknowledgement), optionally a client reset and optionally a burst of ResumeSession errors.
/// Every fault is transient: a conformant pair must survive it.
pub fn generate(seed: u64, shape: &Shape) -> FaultPlan {
    let mut rng = Rng::new(seed ^ SCHEDULE_SALT);
    let mut plan = FaultPlan::default();
    let n = rng.range(1, 4);
    let mut tries = 0;
    while (plan.frames.len() as u64) < n && tries < 32 {
        tries += 1;
        let Some(when) = pick_match(&mut rng, shape) else { break };
        let action = if shape.ends {
            FrameAction::Duplicate { copies: u32::try_from(rng.range(1, 2)).unwrap_or(1) }
        } else {
            pick_action(&mut rng)
        };
        if plan.frames.iter().any(|r| r.when == when) {
            continue;
        }
        plan.frames.push(FrameRule { name: None, when, action });
    }
    let reset = rng.range(0, 2) == 0;
    let burst = rng.range(0, 2) == 0;
    if reset && !shape.ends {
        plan.timed.push(TimedFault {
            name: None,
            at_ms: rng.range(20, 3_000),
            action: TimedAction::Reset { side: Side::Client },
        });
    }
    if burst && !shape.ends {
        let error = if rng.range(0, 1) == 0 { ApiErrorKind::Internal } else { ApiErrorKind::Throttled };
        let count = rng.range(1, 3);
        plan.api.push(ApiRule {
            name: None,
            op: ApiOp::ResumeSession,
            nth: Some(1),
            count: if count > 1 { Some(count) } else { None },
            from_ms: None,
            until_ms: None,
            action: ApiAction::Error { error },
        });
    }
    name_rules(&mut plan);
    plan
}

fn pick_match(rng: &mut Rng, shape: &Shape) -> Option<FrameMatch> {
    // (direction, data?) choices that the base actually produces.
    let mut choices = Vec::new();
    for d in Direction::BOTH {
        if shape.max_seq[d.index()] >= 0 {
            choices.push((d, true));
        }
        // Acks travelling in `d` acknowledge the data of the other direction.
        let other = match d {
            Direction::ToAgent => Direction::ToClient,
            Direction::ToClient => Direction::ToAgent,
        };
        if shape.max_seq[other.index()] >= 0 {
            choices.push((d, false));
        }
    }
    if choices.is_empty() {
        return None;
    }
    let i = usize::try_from(rng.range(0, choices.len() as u64 - 1)).unwrap_or(0);
    let (direction, data) = choices.get(i).copied()?;
    let mut m = FrameMatch { direction: Some(direction), nth: Some(1), ..FrameMatch::default() };
    if data {
        let hi = shape.max_seq[direction.index()];
        let seq = i64::try_from(rng.range(0, u64::try_from(hi).unwrap_or(0))).unwrap_or(0);
        m.message_type = Some(
            match direction {
                Direction::ToAgent => "input_stream_data",
                Direction::ToClient => "output_stream_data",
            }
            .to_owned(),
        );
        m.seq = Some(SeqRange::one(seq));
    } else {
        let other = match direction {
            Direction::ToAgent => Direction::ToClient,
            Direction::ToClient => Direction::ToAgent,
        };
        let hi = shape.max_seq[other.index()];
        let seq = i64::try_from(rng.range(0, u64::try_from(hi).unwrap_or(0))).unwrap_or(0);
        m.acks_only = true;
        m.acked_seq = Some(SeqRange::one(seq));
    }
    Some(m)
}

fn pick_action(rng: &mut Rng) -> FrameAction {
    match rng.range(0, 4) {
        0 => FrameAction::Drop {},
        1 => FrameAction::Duplicate { copies: u32::try_from(rng.range(1, 2)).unwrap_or(1) },
        2 => FrameAction::Delay { delay_ms: rng.range(1, 30) * 50 },
        3 => FrameAction::Reorder {
            window: u32::try_from(rng.range(1, 3)).unwrap_or(1),
            max_hold_ms: ssm_fault::DEFAULT_MAX_HOLD_MS,
        },
        _ => FrameAction::Corrupt { field: Corruption::Digest {} },
    }
}

/// A human description of a frame rule, used as its name.
fn describe_frame(r: &FrameRule) -> String {
    let w = &r.when;
    let dir = w.direction.map_or("any", |d| d.name());
    let what = if w.acks_only {
        format!("ack of seq {}", w.acked_seq.map_or(-1, |s| s.lo))
    } else {
        format!("{} seq {}", w.message_type.as_deref().unwrap_or("frame"), w.seq.map_or(-1, |s| s.lo))
    };
    let nth = match (w.nth, w.count) {
        (Some(1) | None, None | Some(1)) => "the first".to_owned(),
        (n, c) => format!("copies {}+{}", n.unwrap_or(1), c.unwrap_or(1)),
    };
    let action = match &r.action {
        FrameAction::Duplicate { copies } => format!("duplicate x{copies}"),
        FrameAction::Delay { delay_ms } => format!("delay {delay_ms} ms"),
        FrameAction::Reorder { window, .. } => format!("reorder by {window}"),
        FrameAction::Corrupt { field } => format!("corrupt {}", field.name()),
        a => a.name().to_owned(),
    };
    format!("{action}: {nth} {dir} {what}")
}

/// Names every rule `explore-N: what it does` (names must be unique in a scenario).
fn name_rules(plan: &mut FaultPlan) {
    let mut n = 0;
    for r in &mut plan.frames {
        r.name = Some(format!("explore-{n}: {}", describe_frame(r)));
        n += 1;
    }
    for t in &mut plan.timed {
        set_name(&mut t.name, n, &format!("{} at {} ms", timed_what(&t.action), t.at_ms));
        n += 1;
    }
    for a in &mut plan.api {
        let what = match &a.action {
            ApiAction::Error { error } => format!("{} fails with {}", a.op, error.code()),
            other => format!("{} {other:?}", a.op),
        };
        let calls = a.effective_count().unwrap_or(1);
        set_name(&mut a.name, n, &format!("{what}, {calls} call(s)"));
        n += 1;
    }
}

fn set_name(slot: &mut Option<String>, n: usize, what: &str) {
    *slot = Some(format!("explore-{n}: {what}"));
}

fn timed_what(a: &TimedAction) -> String {
    match a {
        TimedAction::Reset { side } => format!("reset the {side}"),
        TimedAction::Close { side, code } => format!("close the {side} with {code}"),
        other => format!("{other:?}"),
    }
}

/// The seed the simulator runs a base with for explore seed `seed`: the base's own, or one
/// derived from the seed and the id, kept below 2^63 so a scenario file can carry it.
pub fn sim_seed(seed: u64, base: &Scenario) -> u64 {
    base.seed.unwrap_or(scenario_seed(seed, base) >> 1)
}

/// `base` with the pair's peer, the explore seed and `plan` added after its own faults.
pub fn case(base: &Scenario, pair: &Pair, seed: u64, plan: &FaultPlan) -> Scenario {
    let mut sc = base.clone();
    sc.peer = match pair.peer.imp {
        Impl::Conformant => None,
        _ => Some(pair.peer.to_string()),
    };
    sc.seed = Some(sim_seed(seed, base));
    sc.faults.frames.extend(plan.frames.iter().cloned());
    sc.faults.timed.extend(plan.timed.iter().cloned());
    sc.faults.api.extend(plan.api.iter().cloned());
    sc
}

/// Runs a scenario (its own seed and peer) with `imp` under test, without expected failures.
pub fn run_scenario(imp: ImplName, path: &Path, sc: &Scenario) -> ScenarioResult {
    let opts = RunOptions {
        backend: Backend::Sim,
        imp,
        under_test: None,
        seed: 0,
        strict: false,
        jobs: 1,
        filters: Vec::new(),
    };
    run_one(&opts, path, sc, &[])
}

/// Whether a verdict counts as a failure for exploration: FAIL. An ERROR means a cited
/// requirement was never exercised, which a random schedule can cause by steering the session
/// elsewhere; [`is_inconclusive`] counts those.
pub fn is_failure(v: Verdict) -> bool {
    matches!(v, Verdict::Fail)
}

/// A run that says nothing either way: ERROR (a cited requirement was not exercised).
pub fn is_inconclusive(v: Verdict) -> bool {
    matches!(v, Verdict::Error)
}

/// What a failure is about: the requirement in its headline, or the headline's words before the
/// first colon, numbers left out (`step timed out`).
pub fn failure_key(r: &ScenarioResult) -> String {
    let h = r.reason.as_deref().unwrap_or("");
    let first = h.split_whitespace().next().unwrap_or("").trim_end_matches(':');
    if let Ok(req) = first.parse::<Req>() {
        return req.to_string();
    }
    let head = h.split(':').next().unwrap_or("");
    head.split_whitespace().filter(|w| !w.chars().all(|c| c.is_ascii_digit())).collect::<Vec<_>>().join(" ")
}

/// The symptoms a shrunk schedule must keep besides the headline: whether the stream diverged,
/// a step timed out, or the run did not finish. Removing a rule may lose other, incidental
/// failures, but not these: "the stream stalls" is the failure, not only its first requirement.
pub fn symptoms(r: &ScenarioResult) -> [bool; 3] {
    let Some(j) = &r.judgement else { return [false; 3] };
    [
        !j.integrity.is_empty(),
        j.problems.iter().any(|p| p.starts_with("step ")),
        j.problems.iter().any(|p| p.starts_with("did not finish")),
    ]
}

/// The requirements a run failed: failed checks, then stream divergences.
pub fn failing_requirements(r: &ScenarioResult) -> Vec<Req> {
    let mut out: Vec<Req> = Vec::new();
    if let Some(j) = &r.judgement {
        for q in j.requirements.iter().filter(|q| q.outcome == "fail") {
            if !out.contains(&q.req) {
                out.push(q.req);
            }
        }
        for d in &j.integrity {
            if !out.contains(&d.req) {
                out.push(d.req);
            }
        }
    }
    out
}

/// A base scenario ready for exploration.
#[derive(Debug, Clone)]
pub struct Base {
    pub path: PathBuf,
    pub scenario: Scenario,
    pub shape: Shape,
}

/// Runs `sc` once without extra faults with the pair: its shape, or why it cannot be a base
/// (the pair cannot run it, or it fails already without any added fault).
pub fn prepare(path: &Path, sc: &Scenario, pair: &Pair) -> Result<Base, String> {
    if let Some(why) = pair.mismatch(sc) {
        return Err(why);
    }
    let (base, r) = base_of(path, sc, pair);
    if is_failure(r.verdict) {
        return Err(format!(
            "fails without added faults: {} {}",
            r.verdict.name(),
            r.reason.as_deref().unwrap_or("")
        ));
    }
    Ok(base)
}

/// `sc` as a base whatever its run without added faults did, and that run.
pub fn base_of(path: &Path, sc: &Scenario, pair: &Pair) -> (Base, ScenarioResult) {
    let r = run_scenario(pair.imp, path, &case(sc, pair, 0, &FaultPlan::default()));
    let mut shape = Shape::of_trace(&r.trace);
    shape.ends = Shape::scenario_ends(sc);
    (Base { path: path.to_path_buf(), scenario: sc.clone(), shape }, r)
}

/// The base explore seed `seed` runs on: round robin over the bases.
pub fn base_for(bases: &[Base], seed: u64) -> Option<&Base> {
    if bases.is_empty() {
        return None;
    }
    let i = usize::try_from(seed % bases.len() as u64).unwrap_or(0);
    bases.get(i)
}

/// Greedy shrinking: removes every frame, timed and API rule whose removal keeps
/// `still_fails` true (repeating until nothing more can go), then tries `nth = 1` and the
/// default `count` on what is left. The result is 1-minimal: removing any one remaining rule
/// makes the run pass.
pub fn shrink(plan: &FaultPlan, still_fails: &mut dyn FnMut(&FaultPlan) -> bool) -> FaultPlan {
    let mut cur = plan.clone();
    loop {
        let mut changed = false;
        for list in 0..3 {
            let mut i = 0;
            while i < list_len(&cur, list) {
                let mut cand = cur.clone();
                remove(&mut cand, list, i);
                if still_fails(&cand) {
                    cur = cand;
                    changed = true;
                } else {
                    i += 1;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for i in 0..cur.frames.len() {
        let simpler = [
            |m: &mut FrameMatch| {
                if m.nth.is_some_and(|n| n > 1) {
                    m.nth = Some(1);
                    true
                } else {
                    false
                }
            },
            |m: &mut FrameMatch| {
                if m.count.is_some() && m.nth.is_some() {
                    m.count = None;
                    true
                } else {
                    false
                }
            },
        ];
        for f in simpler {
            let mut cand = cur.clone();
            if let Some(r) = cand.frames.get_mut(i) {
                if f(&mut r.when) && still_fails(&cand) {
                    cur = cand;
                }
            }
        }
    }
    for i in 0..cur.api.len() {
        for step in 0..2 {
            let mut cand = cur.clone();
            let Some(a) = cand.api.get_mut(i) else { continue };
            let touched = match step {
                0 if a.nth.is_some_and(|n| n > 1) => {
                    a.nth = Some(1);
                    true
                }
                1 if a.count.is_some_and(|c| c > 1) => {
                    a.count = None;
                    true
                }
                _ => false,
            };
            if touched && still_fails(&cand) {
                cur = cand;
            }
        }
    }
    name_rules(&mut cur);
    cur
}

fn list_len(p: &FaultPlan, list: usize) -> usize {
    match list {
        0 => p.frames.len(),
        1 => p.timed.len(),
        _ => p.api.len(),
    }
}

fn remove(p: &mut FaultPlan, list: usize, i: usize) {
    match list {
        0 => {
            p.frames.remove(i);
        }
        1 => {
            p.timed.remove(i);
        }
        _ => {
            p.api.remove(i);
        }
    }
}

/// A failing seed, shrunk.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub base_id: String,
    pub base_path: PathBuf,
    /// The schedule the seed generated.
    pub original: FaultPlan,
    /// The minimal schedule that still fails the same way.
    pub minimal: FaultPlan,
    /// [`failure_key`] of the original run (kept by the shrinker when it is a requirement).
    pub key: String,
    /// The run of the minimal schedule.
    pub result: ScenarioResult,
    /// Runs the shrinker made.
    pub shrink_runs: usize,
}

/// The names of the [`symptoms`] that hold.
pub fn symptom_names(flags: [bool; 3]) -> Vec<&'static str> {
    ["the stream diverged", "a step timed out", "the run did not finish"]
        .into_iter()
        .zip(flags)
        .filter_map(|(n, f)| f.then_some(n))
        .collect()
}

impl Failure {
    /// What makes two failures the same: the base, the headline and the symptoms.
    pub fn signature(&self) -> String {
        let mut s = format!("{} {}", self.base_id, self.key);
        for n in symptom_names(symptoms(&self.result)) {
            s.push_str("; ");
            s.push_str(n);
        }
        s
    }

    /// The headline of the minimal run.
    pub fn headline(&self) -> &str {
        self.result.reason.as_deref().unwrap_or("failed")
    }
}

/// Shrinks a failing `plan` on `base`: a candidate must still fail, with the same headline
/// ([`failure_key`]) and every [`symptoms`] flag of `original`. Returns the minimal plan, its
/// run and the number of runs made.
pub fn shrink_case(
    base: &Base,
    pair: &Pair,
    seed: u64,
    plan: &FaultPlan,
    original: &ScenarioResult,
) -> (FaultPlan, ScenarioResult, usize) {
    let key = failure_key(original);
    let want = symptoms(original);
    let mut runs = 0usize;
    let mut still = |p: &FaultPlan| {
        runs += 1;
        let r = run_scenario(pair.imp, &base.path, &case(&base.scenario, pair, seed, p));
        let got = symptoms(&r);
        is_failure(r.verdict) && failure_key(&r) == key && want.iter().zip(got).all(|(w, g)| !w || g)
    };
    let minimal = shrink(plan, &mut still);
    let result = run_scenario(pair.imp, &base.path, &case(&base.scenario, pair, seed, &minimal));
    (minimal, result, runs + 1)
}

/// What one seed did.
#[derive(Debug, Clone)]
pub struct SeedOutcome {
    pub seed: u64,
    pub base_id: String,
    pub verdict: Verdict,
    pub failure: Option<Box<Failure>>,
}

/// Runs explore seed `seed` on its base and shrinks it if it fails.
pub fn explore_seed(bases: &[Base], pair: &Pair, seed: u64) -> Option<SeedOutcome> {
    let base = base_for(bases, seed)?;
    let plan = generate(seed, &base.shape);
    let r = run_scenario(pair.imp, &base.path, &case(&base.scenario, pair, seed, &plan));
    let failure = if is_failure(r.verdict) {
        let key = failure_key(&r);
        let (minimal, result, shrink_runs) = shrink_case(base, pair, seed, &plan, &r);
        Some(Box::new(Failure {
            seed,
            base_id: base.scenario.id.clone(),
            base_path: base.path.clone(),
            original: plan,
            minimal,
            key,
            result,
            shrink_runs,
        }))
    } else {
        None
    };
    Some(SeedOutcome { seed, base_id: base.scenario.id.clone(), verdict: r.verdict, failure })
}

/// The trace digest of explore seed `seed` on `base` (for cross-process determinism checks).
pub fn trace_digest(base: &Base, pair: &Pair, seed: u64) -> String {
    let plan = generate(seed, &base.shape);
    run_scenario(pair.imp, &base.path, &case(&base.scenario, pair, seed, &plan)).trace.digest_hex()
}

/// A fault plan as the `[faults]` section of a scenario file.
pub fn plan_toml(plan: &FaultPlan) -> Result<String, ExploreError> {
    #[derive(serde::Serialize)]
    struct Wrap<'a> {
        faults: &'a FaultPlan,
    }
    Ok(toml::to_string(&Wrap { faults: plan })?)
}

/// The id of the regression scenario for a failure.
pub fn regression_id(f: &Failure) -> String {
    format!("explore-{}-{}", f.base_id, f.seed)
}

/// The shrunk failure as a regular scenario: the base with the peer, the seed and the minimal
/// faults, citing the requirements the minimal run failed.
pub fn regression_scenario(base: &Base, pair: &Pair, f: &Failure) -> Scenario {
    let mut sc = case(&base.scenario, pair, f.seed, &f.minimal);
    sc.id = regression_id(f);
    sc.title = format!("Found by explore on {}: {}", f.base_id, f.key);
    sc.description = format!(
        "Found by `ssm-harness explore` with seed {} on {} (impl {}, peer {}), shrunk from {} to {} \
         rule(s). {} fails: {}. Replay: ssm-harness explore {} --from-seed {} --seeds 1 --impl {} \
         --peer {}. Base scenario: {}",
        f.seed,
        f.base_id,
        pair.imp,
        pair.peer,
        rule_count(&f.original),
        rule_count(&f.minimal),
        pair.imp,
        f.headline(),
        f.base_id,
        f.seed,
        pair.imp,
        pair.peer,
        base.scenario.title
    );
    sc.tags = vec!["regression".to_owned(), "explore".to_owned()];
    let failing = failing_requirements(&f.result);
    if !failing.is_empty() {
        sc.requirements = failing;
    }
    sc
}

/// How many rules a plan has in all three lists.
pub fn rule_count(p: &FaultPlan) -> usize {
    p.frames.len() + p.timed.len() + p.api.len()
}

/// The regression file for a failure: its file name and text. The text is checked to load with
/// the scenario loader as the same scenario, and to fail again with the same key.
pub fn regression_file(base: &Base, pair: &Pair, f: &Failure) -> Result<(String, String), ExploreError> {
    let sc = regression_scenario(base, pair, f);
    let file = format!("{}.toml", sc.id);
    let text = toml::to_string(&sc)?;
    let parsed = ssm_scenario::parse_scenario(Path::new(&file), &text).map_err(Box::new)?;
    if parsed != sc {
        return Err(ExploreError::RoundTrip);
    }
    let again = run_scenario(pair.imp, Path::new(&file), &parsed);
    if !is_failure(again.verdict) || failure_key(&again) != failure_key(&f.result) {
        return Err(ExploreError::NotReproduced(format!(
            "{} {}",
            again.verdict.name(),
            again.reason.as_deref().unwrap_or("")
        )));
    }
    Ok((file, text))
}
