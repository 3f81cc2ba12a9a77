//! The `summary.json` schema (version [`SCHEMA_VERSION`](crate::SCHEMA_VERSION)).
//!
//! These types are the schema: they are the report's own, not the harness's internal types, so a
//! change inside the harness cannot silently change the file. Field names are fixed; a change of
//! meaning or a removal bumps the version. They deserialize too, for tools that compare runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ssm_scenario::check::{Judgement, ReqResult, Verdict};
use ssm_spec::{Level, Req};

use crate::model::Run;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub harness_version: String,
    /// `sim`, ...
    pub backend: String,
    /// The implementation under test.
    #[serde(rename = "impl")]
    pub imp: String,
    /// The role the run judges, if it was restricted to one.
    pub under_test: Option<String>,
    pub seed: u64,
    pub strict: bool,
    pub totals: Totals,
    pub wall_ms: u64,
    /// Sorted by id.
    pub scenarios: Vec<ScenarioSummary>,
    /// Every requirement of the catalogue (and any other a result names), in the order of the
    /// protocol reference.
    pub requirements: BTreeMap<Req, RequirementCoverage>,
}

/// Counts by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub non_strict: usize,
    pub xfail: usize,
    pub skipped: usize,
    pub errors: usize,
}

/// One scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub id: String,
    pub title: String,
    pub file: String,
    pub tags: Vec<String>,
    pub under_test: String,
    #[serde(rename = "impl")]
    pub imp: String,
    /// The requirements the scenario cites.
    pub requirements: Vec<Req>,
    /// `PASS`, `FAIL`, `NON-STRICT`, `XFAIL`, `SKIP` or `ERROR`.
    pub outcome: String,
    pub seed: u64,
    /// Virtual time the scenario took.
    pub duration_ms: u64,
    pub wall_ms: u64,
    /// A command line that replays exactly this run.
    pub replay: String,
    /// The headline of a failure, the skip or xfail reason.
    pub reason: Option<String>,
    /// The first integrity divergence, else the first failing requirement result.
    pub witness: Option<Witness>,
    pub requirement_results: Vec<RequirementResult>,
}

/// The smallest evidence of what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Witness {
    /// The delivered stream diverged from the offered one.
    Integrity {
        req: Req,
        /// `client->agent` or `agent->client`.
        direction: String,
        /// Index of the first divergent message.
        message: usize,
        /// Byte offset in the concatenated stream.
        offset: usize,
        what: String,
        expected: String,
        got: String,
        /// Virtual time (ns).
        at: Option<u64>,
    },
    /// A requirement check failed.
    Requirement(RequirementResult),
}

/// One requirement's outcome in one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementResult {
    pub req: Req,
    pub level: Level,
    /// Listed in the scenario's `requirements`.
    pub cited: bool,
    /// `pass`, `fail` or `not_exercised`.
    pub outcome: String,
    pub detail: String,
    /// Virtual time (ns) of the witness.
    pub at: Option<u64>,
}

/// One requirement over the whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementCoverage {
    pub level: Level,
    /// From the catalogue; absent for a requirement the catalogue does not list.
    pub statement: Option<String>,
    /// The worst over all scenarios.
    pub outcome: Coverage,
    /// Scenarios that cite the requirement or failed it, sorted.
    pub scenarios: Vec<String>,
}

/// A requirement's outcome over a run, from best to worst. A failure inside an XFAIL scenario
/// still counts as a failure here: the implementation broke the requirement, knowingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// No scenario that ran cites it.
    NotCovered,
    /// Scenarios cite it but none exercised it.
    NotExercised,
    Pass,
    /// A SHOULD failed in a run that is not strict.
    NonStrict,
    Fail,
}

impl Coverage {
    pub fn name(self) -> &'static str {
        match self {
            Coverage::NotCovered => "not_covered",
            Coverage::NotExercised => "not_exercised",
            Coverage::Pass => "pass",
            Coverage::NonStrict => "non_strict",
            Coverage::Fail => "fail",
        }
    }
}

impl RequirementResult {
    fn of(r: &ReqResult) -> RequirementResult {
        RequirementResult {
            req: r.req,
            level: r.level,
            cited: r.cited,
            outcome: r.outcome.to_owned(),
            detail: r.detail.clone(),
            at: r.at,
        }
    }

    /// What this result says about its requirement.
    fn coverage(&self, strict: bool) -> Coverage {
        match self.outcome.as_str() {
            "fail" if self.level == Level::Must || strict => Coverage::Fail,
            "fail" => Coverage::NonStrict,
            "pass" => Coverage::Pass,
            _ => Coverage::NotExercised,
        }
    }
}

/// The first integrity divergence, else the earliest failing requirement result (the same
/// choice the judge makes for its headline).
pub(crate) fn witness(j: &Judgement) -> Option<Witness> {
    if let Some(d) = j.integrity.first() {
        return Some(Witness::Integrity {
            req: d.req,
            direction: d.direction.clone(),
            message: d.message,
            offset: d.offset,
            what: d.what.clone(),
            expected: d.expected.clone(),
            got: d.got.clone(),
            at: d.at,
        });
    }
    j.requirements
        .iter()
        .filter(|r| r.outcome == "fail")
        .min_by_key(|r| r.at.unwrap_or(u64::MAX))
        .map(|r| Witness::Requirement(RequirementResult::of(r)))
}

fn verdict_name(v: Verdict) -> String {
    v.name().to_owned()
}

impl Summary {
    pub(crate) fn of(run: &Run<'_>) -> Summary {
        let strict = run.info.strict;
        let scenarios: Vec<ScenarioSummary> = run
            .entries
            .iter()
            .map(|e| {
                let r = &e.result;
                ScenarioSummary {
                    id: r.id.clone(),
                    title: r.title.clone(),
                    file: r.file.to_string_lossy().replace('\\', "/"),
                    tags: r.tags.clone(),
                    under_test: r.under_test.name().to_owned(),
                    imp: r.imp.clone(),
                    requirements: r.requirements.clone(),
                    outcome: verdict_name(r.verdict),
                    seed: r.seed,
                    duration_ms: r.virtual_ms,
                    wall_ms: r.wall_ms,
                    replay: r.replay.clone(),
                    reason: r.reason.clone(),
                    witness: r.judgement.as_ref().and_then(witness),
                    requirement_results: r
                        .judgement
                        .as_ref()
                        .map(|j| j.requirements.iter().map(RequirementResult::of).collect())
                        .unwrap_or_default(),
                }
            })
            .collect();

        let mut requirements: BTreeMap<Req, RequirementCoverage> = BTreeMap::new();
        let fresh = |req: Req| {
            let listed = run.catalogue.get(req);
            RequirementCoverage {
                level: listed.map_or(req.level(), |c| c.level),
                statement: listed.map(|c| c.statement.clone()),
                outcome: Coverage::NotCovered,
                scenarios: Vec::new(),
            }
        };
        for c in &run.catalogue.requirements {
            requirements.entry(c.id).or_insert_with(|| fresh(c.id));
        }
        for s in &scenarios {
            let ran = s.outcome != Verdict::Skip.name();
            for &req in &s.requirements {
                let c = requirements.entry(req).or_insert_with(|| fresh(req));
                c.scenarios.push(s.id.clone());
                if ran {
                    c.outcome = c.outcome.max(Coverage::NotExercised);
                }
            }
            for rr in &s.requirement_results {
                let c = requirements.entry(rr.req).or_insert_with(|| fresh(rr.req));
                if rr.outcome == "fail" && !c.scenarios.contains(&s.id) {
                    c.scenarios.push(s.id.clone());
                }
                c.outcome = c.outcome.max(rr.coverage(strict));
            }
        }
        // Scenarios are visited in id order, so each list is already sorted.

        Summary {
            schema_version: crate::SCHEMA_VERSION,
            harness_version: run.info.harness_version.to_owned(),
            backend: run.info.backend.name().to_owned(),
            imp: run.info.imp.clone(),
            under_test: run.info.under_test.map(|r| r.name().to_owned()),
            seed: run.info.seed,
            strict,
            totals: Totals {
                passed: run.totals.passed,
                failed: run.totals.failed,
                non_strict: run.totals.non_strict,
                xfail: run.totals.xfail,
                skipped: run.totals.skipped,
                errors: run.totals.errors,
            },
            wall_ms: run.wall_ms,
            scenarios,
            requirements,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_orders_from_best_to_worst() {
        let order = [
            Coverage::NotCovered,
            Coverage::NotExercised,
            Coverage::Pass,
            Coverage::NonStrict,
            Coverage::Fail,
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        for c in order {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::Value::from(c.name()));
        }
    }

    #[test]
    fn a_failed_should_is_non_strict_unless_the_run_is_strict() {
        let r = RequirementResult {
            req: Req::Frame008,
            level: Level::Should,
            cited: true,
            outcome: "fail".into(),
            detail: String::new(),
            at: None,
        };
        assert_eq!(r.coverage(false), Coverage::NonStrict);
        assert_eq!(r.coverage(true), Coverage::Fail);
    }
}
