//! From a trace to verdicts: per-requirement checks, stream integrity and the scenario's own
//! expectations, combined into one verdict per scenario.

pub mod integrity;
pub mod observe;
pub mod reqs;

use serde::Serialize;
use ssm_spec::{Level, Req};

use crate::model::Scenario;
use crate::trace::Trace;
use integrity::Divergence;
use observe::Observed;
use reqs::{Cx, Outcome};

/// A scenario's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    Pass,
    /// A SHOULD was broken and the run is not strict.
    NonStrict,
    /// An expected failure (xfail.toml).
    Xfail,
    Skip,
    /// The system under test broke a requirement or an expectation.
    Fail,
    /// The harness or the environment failed; the result says nothing about the system under test.
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Xfail => "XFAIL",
            Verdict::Skip => "SKIP",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        }
    }
}

/// One requirement's outcome in one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReqResult {
    pub req: Req,
    pub level: Level,
    /// Listed in the scenario's `requirements`.
    pub cited: bool,
    /// `pass`, `fail` or `not_exercised`.
    pub outcome: &'static str,
    pub detail: String,
    /// Virtual time (ns) of the witness.
    pub at: Option<u64>,
}

/// How the run itself ended, as the judge needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    pub settled: bool,
    /// Why it did not settle, or which step timed out.
    pub problem: Option<String>,
}

/// Everything the judge concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub requirements: Vec<ReqResult>,
    pub integrity: Vec<Divergence>,
    /// Failed expectations, step timeouts, runs that did not finish.
    pub problems: Vec<String>,
    /// Cited requirements the run never exercised.
    pub not_exercised: Vec<Req>,
    /// The first thing that went wrong, for one-line reports.
    pub headline: Option<String>,
    /// Virtual time (ns) of the first failure.
    pub first_failure_at: Option<u64>,
}

/// Judges one run of `sc`.
pub fn judge(sc: &Scenario, trace: &Trace, status: &RunStatus, strict: bool) -> Judgement {
    let o = Observed::from_trace(trace);
    let cx = Cx::new(&o, sc.under_test, &sc.session, sc.kms_encryption);
    let mut requirements = Vec::new();
    let mut not_exercised = Vec::new();
    for &req in Req::ALL {
        let cited = sc.requirements.contains(&req);
        let outcome =
            if req == Req::Ord001 { integrity_outcome(&o, sc, status) } else { reqs::check(&cx, req) };
        let (name, detail, at) = match outcome {
            Outcome::Pass(d) => ("pass", d, None),
            Outcome::Fail { detail, at } => ("fail", detail, at),
            Outcome::NotExercised(d) => {
                if cited {
                    not_exercised.push(req);
                }
                ("not_exercised", d, None)
            }
        };
        if cited || name == "fail" {
            requirements.push(ReqResult { req, level: req.level(), cited, outcome: name, detail, at });
        }
    }
    let mut integrity = Vec::new();
    if sc.expect.stream_intact {
        for from in [ssm_channel::Role::Client, ssm_channel::Role::Agent] {
            if let Some(d) = integrity::check_direction(&o, from, status.settled) {
                integrity.push(d);
            }
        }
    }
    let mut problems = Vec::new();
    if let Some(p) = &status.problem {
        problems.push(p.clone());
    }
    let sut = o.side(sc.under_test);
    if let Some(want) = &sc.expect.end {
        let got = sut.ended().map(|e| e.1);
        let ok = match (want.as_str(), &got) {
            ("running", None) => true,
            ("ended", Some(_)) => true,
            (w, Some(g)) => w == g,
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "expected the {} to end `{want}`, it {}",
                sc.under_test,
                got.map_or("did not end".to_owned(), |g| format!("ended `{g}`"))
            ));
        }
    }
    if let Some(code) = sc.expect.exit_code {
        let seen =
            o.client.events_of("exit_code").filter_map(|e| e.v.get("code").and_then(|c| c.as_i64())).last();
        if seen != Some(i64::from(code)) {
            problems.push(format!("expected exit code {code}, the client saw {seen:?}"));
        }
    }

    let must_fail = requirements.iter().any(|r| r.outcome == "fail" && (r.level == Level::Must || strict));
    let should_fail = requirements.iter().any(|r| r.outcome == "fail");
    let verdict = if must_fail || !integrity.is_empty() || !problems.is_empty() {
        Verdict::Fail
    } else if should_fail {
        // A SHOULD broken earlier can keep a cited requirement from being reached.
        Verdict::NonStrict
    } else if !not_exercised.is_empty() {
        Verdict::Error
    } else {
        Verdict::Pass
    };
    let first_req =
        requirements.iter().filter(|r| r.outcome == "fail").min_by_key(|r| r.at.unwrap_or(u64::MAX));
    // The headline is the earliest failure: usually the cause, where later ones are symptoms.
    let mut candidates: Vec<(u64, u8, String)> = Vec::new();
    if let Some(r) = first_req {
        candidates.push((r.at.unwrap_or(u64::MAX), 0, format!("{} {}: {}", r.req, r.level, r.detail)));
    }
    for d in &integrity {
        candidates.push((
            d.at.unwrap_or(u64::MAX),
            1,
            format!(
                "{}: {} stream, message {} at byte {}: {} (expected {}, got {})",
                d.req, d.direction, d.message, d.offset, d.what, d.expected, d.got
            ),
        ));
    }
    candidates.sort();
    let headline = if let Some((_, _, h)) = candidates.into_iter().next() {
        Some(h)
    } else if let Some(p) = problems.first() {
        Some(p.clone())
    } else if !not_exercised.is_empty() {
        Some(format!(
            "the scenario does not exercise {}",
            not_exercised.iter().map(|r| r.id()).collect::<Vec<_>>().join(", ")
        ))
    } else {
        None
    };
    let first_failure_at = integrity.iter().filter_map(|d| d.at).chain(first_req.and_then(|r| r.at)).min();
    Judgement { verdict, requirements, integrity, problems, not_exercised, headline, first_failure_at }
}

fn integrity_outcome(o: &Observed, sc: &Scenario, status: &RunStatus) -> Outcome {
    let mut n = 0;
    for from in [ssm_channel::Role::Client, ssm_channel::Role::Agent] {
        // ORD-001 is about what the side under test delivers.
        if from.peer() != sc.under_test {
            continue;
        }
        if let Some(d) = integrity::check_direction(o, from, status.settled) {
            if d.req == Req::Ord001 {
                return Outcome::Fail { detail: format!("{}: {}", d.direction, d.what), at: d.at };
            }
        }
        n += o.side(from.peer()).events_of("data").count();
    }
    if n == 0 {
        Outcome::NotExercised("nothing was delivered to the side under test".into())
    } else {
        Outcome::Pass(format!("{n} messages delivered once, in order"))
    }
}
