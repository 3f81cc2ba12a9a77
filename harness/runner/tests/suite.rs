//! The whole suite on the simulator: the conformant implementations pass every scenario, the
//! reference profiles break exactly the requirements the protocol reference says they deviate
//! from, and every scenario replays to a byte-identical trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ssm_channel::ImplName;
use ssm_runner::{run_one, select, Backend, RunOptions, ScenarioResult};
use ssm_scenario::check::Verdict;
use ssm_scenario::Scenario;

fn scenarios() -> Vec<(PathBuf, Scenario)> {
    select(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios"), &[]).unwrap()
}

fn opts(imp: &str) -> RunOptions {
    RunOptions {
        backend: Backend::Sim,
        imp: imp.parse::<ImplName>().unwrap(),
        under_test: None,
        seed: 1,
        strict: false,
        jobs: 1,
        filters: Vec::new(),
    }
}

fn run_all(imp: &str) -> Vec<ScenarioResult> {
    let o = opts(imp);
    scenarios().iter().map(|(p, s)| run_one(&o, p, s, &[])).collect()
}

fn failed_requirements(results: &[ScenarioResult]) -> BTreeSet<String> {
    results
        .iter()
        .filter_map(|r| r.judgement.as_ref())
        .flat_map(|j| {
            j.requirements
                .iter()
                .filter(|q| q.outcome == "fail")
                .map(|q| q.req.to_string())
                .chain(j.integrity.iter().map(|d| d.req.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn at_least_sixty_scenarios() {
    assert!(scenarios().len() >= 60, "{} scenarios", scenarios().len());
}

#[test]
fn conformant_passes_every_scenario() {
    for r in run_all("conformant") {
        assert_eq!(r.verdict, Verdict::Pass, "{}: {:?}", r.id, r.reason);
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// protocol.md section 9, "Ref" column: what the 2024-10 plugin does not do.
#[test]
fn plugin_2024_breaks_exactly_its_documented_deviations() {
    let got = failed_requirements(&run_all("plugin-2024"));
    let documented = set(&[
        "FRAME-010", // receive loop dies on a decoder panic
        "FRAME-011", // lengths not cross-checked
        "ACK-003",   // duplicates not re-acknowledged
        "ORD-001",   // delivers twice when the ack write fails
        "ORD-004",   // advances only after the ack is written
        "RTX-001",   // discards the oldest message beyond 10 000
        "RTX-004",   // resends the head on every tick after the first timeout
        "RTX-005",   // retransmits only the head
        "HS-002",    // unknown actions answered with status 0
        "RES-003",   // gives up resuming after 6 calls
        "RES-005",   // ignores the StreamUrl from ResumeSession
        "RES-007",   // input during an outage is fatal
        "PING-002",  // no pong deadline
    ]);
    assert_eq!(got, documented);
}

/// protocol.md section 9, "Ref" column: what the 2024-10 agent does not do.
#[test]
fn agent_2024_breaks_exactly_its_documented_deviations() {
    let got = failed_requirements(&run_all("agent-2024"));
    let documented = set(&[
        "FRAME-008", // never checks the digest
        "FRAME-010", // receive loop dies on a decoder panic
        "FRAME-011", // lengths not cross-checked
        "ORD-001",   // delivers twice when the ack write fails
        "ORD-004",
        "RTX-001", // sends a message beyond 100 000 unacknowledged without keeping it (rtx-012)
        "RTX-005", // retransmits only the head
        "RTX-007", // never gives up on a message
    ]);
    assert_eq!(got, documented);
}

#[test]
fn every_scenario_replays_to_the_same_trace() {
    let o = opts("conformant");
    for (p, s) in scenarios() {
        let a = run_one(&o, &p, &s, &[]).trace.digest_hex();
        let b = run_one(&o, &p, &s, &[]).trace.digest_hex();
        assert_eq!(a, b, "{} is not deterministic", s.id);
    }
}
