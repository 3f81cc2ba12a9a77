//! The explore schedule generator and shrinker: determinism, the reference deadlock shrunk to
//! its two essential rules, and a conformant pair surviving random schedules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ssm_channel::ImplName;
use ssm_fault::{FaultPlan, FrameAction, FrameMatch, FrameRule, SeqRange};
use ssm_runner::explore::{self, Base, Pair, Shape};
use ssm_runner::{select, Filter};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn imp(s: &str) -> ImplName {
    s.parse().unwrap()
}

fn pair(i: &str, p: &str) -> Pair {
    Pair { imp: imp(i), peer: imp(p) }
}

#[test]
fn the_generator_is_deterministic_and_varies_with_the_seed() {
    let shape = Shape::default();
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..50u64 {
        let a = explore::generate(seed, &shape);
        let b = explore::generate(seed, &shape);
        assert_eq!(a, b, "seed {seed}");
        assert!((1..=4).contains(&a.frames.len()), "seed {seed}: {a:?}");
        assert!(a.timed.len() <= 1 && a.api.len() <= 1);
        distinct.insert(explore::plan_toml(&a).unwrap());
    }
    assert!(distinct.len() >= 45, "only {} distinct plans in 50 seeds", distinct.len());
    // The shape bounds the sequence numbers.
    let narrow = Shape { max_seq: [0, 1], ends: false };
    for seed in 0..200u64 {
        for r in explore::generate(seed, &narrow).frames {
            let s = r.when.seq.or(r.when.acked_seq).unwrap();
            assert!(s.lo <= 1, "seed {seed}: {r:?}");
        }
    }
}

#[test]
fn generated_plans_load_as_scenario_faults() {
    let all = select(&scenarios_dir(), &[Filter::parse("ack-001")]).unwrap();
    let (_, base) = &all[0];
    for seed in 0..300u64 {
        let plan = explore::generate(seed, &Shape::default());
        let mut sc = base.clone();
        sc.faults = plan.clone();
        let text = toml::to_string(&sc).unwrap();
        let back = ssm_scenario::parse_scenario(Path::new("ack-001.toml"), &text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        assert_eq!(back.faults, plan, "seed {seed}");
    }
}

fn rule(when: FrameMatch, action: FrameAction) -> FrameRule {
    FrameRule { name: None, when, action }
}

fn reg001_base() -> (Base, FaultPlan) {
    let all = select(&scenarios_dir(), &[Filter::parse("reg-001")]).unwrap();
    let (path, sc) = all[0].clone();
    let essential = sc.faults.clone();
    assert_eq!(essential.frames.len(), 2);
    let mut bare = sc.clone();
    bare.faults = FaultPlan::default();
    let mut plan = FaultPlan::default();
    // Two irrelevant rules around the two essential ones.
    plan.frames.push(rule(
        FrameMatch {
            direction: Some(ssm_fault::Direction::ToAgent),
            message_type: Some("input_stream_data".into()),
            seq: Some(SeqRange::one(0)),
            nth: Some(1),
            ..FrameMatch::default()
        },
        FrameAction::Delay { delay_ms: 50 },
    ));
    plan.frames.extend(essential.frames.iter().cloned());
    plan.frames.push(rule(
        FrameMatch {
            direction: Some(ssm_fault::Direction::ToClient),
            message_type: Some("output_stream_data".into()),
            seq: Some(SeqRange::one(0)),
            nth: Some(1),
            ..FrameMatch::default()
        },
        FrameAction::Duplicate { copies: 1 },
    ));
    (Base { path, scenario: bare, shape: Shape::default() }, plan)
}

#[test]
fn the_shrinker_finds_the_two_rules_of_the_reference_deadlock() {
    let (base, plan) = reg001_base();
    let p = pair("plugin-2024", "agent-2024");
    let seed = 1;
    let run = |plan: &FaultPlan| {
        explore::run_scenario(p.imp, &base.path, &explore::case(&base.scenario, &p, seed, plan))
    };
    let full = run(&plan);
    assert!(explore::is_failure(full.verdict), "the four-rule plan must fail: {:?}", full.reason);
    let key = explore::failure_key(&full);
    assert_eq!(key, "ACK-003", "headline: {:?}", full.reason);

    let (minimal, result, runs) = explore::shrink_case(&base, &p, seed, &plan, &full);
    let whens: Vec<&FrameMatch> = minimal.frames.iter().map(|r| &r.when).collect();
    let want: Vec<&FrameMatch> = plan.frames[1..3].iter().map(|r| &r.when).collect();
    assert_eq!(whens, want, "minimal plan:\n{}", explore::plan_toml(&minimal).unwrap());
    assert!(minimal.timed.is_empty() && minimal.api.is_empty());
    assert!(explore::is_failure(result.verdict));
    assert_eq!(explore::failure_key(&result), "ACK-003");
    assert!(runs >= 4, "the shrinker must have tried removing every rule");

    // A conformant pair survives the same schedule.
    let c = pair("conformant", "conformant");
    let r = explore::run_scenario(c.imp, &base.path, &explore::case(&base.scenario, &c, seed, &plan));
    assert!(!explore::is_failure(r.verdict), "{:?} {:?}", r.verdict, r.reason);
}

#[test]
fn the_shrinker_is_one_minimal_on_a_synthetic_predicate() {
    let (_, plan) = reg001_base();
    // "Fails" while both rules 1 and 2 are present.
    let essential: Vec<FrameMatch> = plan.frames[1..3].iter().map(|r| r.when.clone()).collect();
    let mut pred = |p: &FaultPlan| essential.iter().all(|w| p.frames.iter().any(|r| &r.when == w));
    let m = explore::shrink(&plan, &mut pred);
    assert_eq!(m.frames.len(), 2);
    // And a predicate that never fails keeps everything.
    let m = explore::shrink(&plan, &mut |_| false);
    assert_eq!(m.frames.len(), 4);
}

#[test]
fn a_conformant_pair_survives_random_schedules_on_the_resume_scenarios() {
    let p = pair("conformant", "conformant");
    let chosen = select(&scenarios_dir(), &[Filter::parse("resume-*"), Filter::parse("tag:resume")]).unwrap();
    let bases: Vec<Base> = chosen
        .iter()
        .map(|(path, sc)| explore::prepare(path, sc, &p).unwrap_or_else(|e| panic!("{}: {e}", sc.id)))
        .collect();
    assert!(bases.len() >= 10);
    let mut failures = Vec::new();
    for seed in 1..=200u64 {
        let o = explore::explore_seed(&bases, &p, seed).unwrap();
        if let Some(f) = o.failure {
            failures.push(format!(
                "seed {seed} on {}: {}\n{}",
                f.base_id,
                f.headline(),
                explore::plan_toml(&f.minimal).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_regression_file_loads_and_reproduces() {
    let (base, plan) = reg001_base();
    let p = pair("plugin-2024", "agent-2024");
    let r = explore::run_scenario(p.imp, &base.path, &explore::case(&base.scenario, &p, 7, &plan));
    let key = explore::failure_key(&r);
    let (minimal, result, shrink_runs) = explore::shrink_case(&base, &p, 7, &plan, &r);
    let f = explore::Failure {
        seed: 7,
        base_id: base.scenario.id.clone(),
        base_path: base.path.clone(),
        original: plan,
        minimal,
        key,
        result,
        shrink_runs,
    };
    let (file, text) = explore::regression_file(&base, &p, &f).unwrap();
    assert_eq!(file, "explore-reg-001-7.toml");
    let sc = ssm_scenario::parse_scenario(Path::new(&file), &text).unwrap();
    assert_eq!(sc.tags, ["regression", "explore"]);
    assert_eq!(sc.peer.as_deref(), Some("agent-2024"));
    assert!(sc.requirements.iter().any(|r| r.to_string() == "ACK-003"), "{:?}", sc.requirements);
    // A conformant client survives it.
    let c = explore::run_scenario(imp("conformant"), Path::new(&file), &sc);
    assert!(!explore::is_failure(c.verdict), "{:?} {:?}", c.verdict, c.reason);
}
