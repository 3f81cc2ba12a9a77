//! One scenario end to end on the simulator: conformant implementations pass it, and the same
//! seed gives the same trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ssm_channel::{Behaviour, Role};
use ssm_scenario::check::{judge, RunStatus, Verdict};
use ssm_sim::{run, RunEnd, SimInput};

fn scenario() -> ssm_scenario::Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/ack/ack-001.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    ssm_scenario::parse_scenario(&path, &text).unwrap()
}

fn input(sc: &ssm_scenario::Scenario, seed: u64) -> SimInput<'_> {
    SimInput {
        scenario: sc,
        client: Behaviour::conformant(Role::Client),
        agent: Behaviour::conformant(Role::Agent),
        seed,
    }
}

#[test]
fn conformant_pair_passes_the_smoke_scenario() {
    let sc = scenario();
    let out = run(&input(&sc, 1));
    assert_eq!(out.end, RunEnd::Settled);
    let status = RunStatus { settled: true, problem: None };
    let j = judge(&sc, &out.trace, &status, true);
    assert_eq!(j.verdict, Verdict::Pass, "{:#?}", j);
    assert!(j.requirements.iter().all(|r| r.outcome == "pass"));
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let sc = scenario();
    let a = run(&input(&sc, 7)).trace.digest_hex();
    let b = run(&input(&sc, 7)).trace.digest_hex();
    let c = run(&input(&sc, 8)).trace.digest_hex();
    assert_eq!(a, b);
    assert_ne!(a, c);
}
