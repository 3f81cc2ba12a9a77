//! The reporter end to end on a synthetic run: every file, its content, atomicity and
//! determinism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/synthetic.rs"]
mod synthetic;

use std::fs;
use std::path::{Path, PathBuf};

use ssm_report::{ReportError, Reporter};
use ssm_runner::{RunEvent, ScenarioResult};
use ssm_scenario::check::Verdict;
use ssm_scenario::What;
use synthetic::{FAIL_ID, PASS_ID};

/// A fresh, empty directory under the target directory, unique per test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-tests").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_run(dir: &Path, run_id: &str, events: &[RunEvent]) -> PathBuf {
    let catalogue = synthetic::catalogue();
    let mut r = Reporter::new(dir, run_id, &catalogue).unwrap();
    for ev in events {
        r.on_event(ev).unwrap();
    }
    r.finish().unwrap()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_run_writes_every_output_and_leaves_no_partial_directory() {
    let root = scratch("all-outputs");
    let dir = write_run(&root, "run-1", &synthetic::events());
    assert_eq!(dir, root.join("run-1"));
    assert_eq!(
        files(&dir),
        [
            "index.html",
            "junit.xml",
            "summary.json",
            "summary.md",
            "traces/ack-001.jsonl",
            "traces/close-digest.jsonl",
            "traces/framing-legacy.jsonl",
            "traces/handshake-agent.jsonl",
            "traces/ordering-gap.jsonl",
            "traces/publication-pause.jsonl",
        ]
    );
    let mut top: Vec<String> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    #[cfg(unix)]
    {
        assert_eq!(top, ["latest", "run-1"]);
        assert_eq!(fs::read_link(root.join("latest")).unwrap(), Path::new("run-1"));
        assert!(root.join("latest/summary.json").is_file());
    }
    #[cfg(not(unix))]
    assert_eq!(top, ["latest.txt", "run-1"]);
}

#[test]
fn traces_are_the_jsonl_of_each_result() {
    let root = scratch("traces");
    let dir = write_run(&root, "run-1", &synthetic::events());
    for r in synthetic::results() {
        assert_eq!(read(&dir.join(format!("traces/{}.jsonl", r.id))), r.trace.to_jsonl(), "{}", r.id);
    }
}

#[test]
fn junit_parses_back_with_one_testcase_per_scenario() {
    let root = scratch("junit");
    let dir = write_run(&root, "run-1", &synthetic::events());
    let report = quick_junit::Report::deserialize_from_str(&read(&dir.join("junit.xml"))).unwrap();
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "ssm-harness conformant sim");
    assert_eq!((suite.tests, suite.failures, suite.errors, suite.skipped), (6, 1, 1, 1));
    let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "testcases are sorted by id");

    let case = |id: &str| suite.test_cases.iter().find(|c| c.name.as_str() == id).unwrap();
    let fail = case(FAIL_ID);
    assert_eq!(fail.classname.as_ref().map(|c| c.as_str()), Some("ordering"));
    assert_eq!(fail.time, Some(std::time::Duration::from_millis(41)));
    match &fail.status {
        quick_junit::TestCaseStatus::NonSuccess { kind, message, description, .. } => {
            assert_eq!(*kind, quick_junit::NonSuccessKind::Failure);
            assert!(message.as_ref().unwrap().as_str().starts_with("RES-006: agent->client stream"));
            let body = description.as_ref().unwrap().as_str();
            assert!(body.contains("expected: \"hello\""), "{body}");
            assert!(body.contains("failed: RTX-001 MUST"), "{body}");
            assert!(
                body.contains("replay: ssm-harness run --seed 7 --impl conformant ordering-gap"),
                "{body}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fail.system_out.as_ref().unwrap().as_str().contains("replay: ssm-harness run"));

    assert!(matches!(
        case("publication-pause").status,
        quick_junit::TestCaseStatus::NonSuccess { kind: quick_junit::NonSuccessKind::Error, .. }
    ));
    match &case("handshake-agent").status {
        quick_junit::TestCaseStatus::Skipped { message, .. } => {
            assert_eq!(message.as_ref().unwrap().as_str(), "judges the agent, this run judges the client")
        }
        other => panic!("{other:?}"),
    }
    let xfail = case("framing-legacy");
    assert!(matches!(xfail.status, quick_junit::TestCaseStatus::Success { .. }));
    assert!(xfail.system_out.as_ref().unwrap().as_str().starts_with("expected failure: the 2024 plugin"));
    let ns = case("close-digest");
    assert!(matches!(ns.status, quick_junit::TestCaseStatus::Success { .. }));
    assert!(ns
        .properties
        .iter()
        .any(|p| p.name.as_str() == "should_broken" && p.value.as_str() == "FRAME-008"));
    assert!(matches!(case(PASS_ID).status, quick_junit::TestCaseStatus::Success { .. }));
}

#[test]
fn summary_json_matches_the_snapshot() {
    let root = scratch("json");
    let dir = write_run(&root, "run-1", &synthetic::events());
    let text = read(&dir.join("summary.json"));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    insta::assert_json_snapshot!("summary_json", value);
    // And it reads back into the schema types.
    let s: ssm_report::summary::Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(s.schema_version, ssm_report::SCHEMA_VERSION);
    assert_eq!(s.scenarios.len(), 6);
}

#[test]
fn summary_md_matches_the_snapshot() {
    let root = scratch("md");
    let dir = write_run(&root, "run-1", &synthetic::events());
    insta::assert_snapshot!("summary_md", read(&dir.join("summary.md")));
}

#[test]
fn the_html_page_draws_a_sequence_diagram_for_the_failure_only() {
    let root = scratch("html");
    let dir = write_run(&root, "run-1", &synthetic::events());
    let html = read(&dir.join("index.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches(r#"class="msd""#).count(), 1, "one diagram: the FAIL");
    let start = html.find(&format!(r#"<svg id="msd-{FAIL_ID}" class="msd""#)).expect("the FAIL's diagram");
    assert!(!html.contains(&format!("msd-{PASS_ID}")));
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    for kind in
        ["wrote", "delivered", "faulted", "lost", "fault", "violation", "service", "failure", "earlier"]
    {
        assert!(svg.contains(&format!(r#"data-kind="{kind}""#)), "no {kind} row in the diagram");
    }
    assert!(svg.contains('✕'), "a lost frame ends in a cross");
    // At most 40 records before the failure and 10 from it, plus the bands.
    let rows = svg.matches("data-t=").count();
    assert!(rows <= 50, "{rows} rows");
    // Every scenario has a section, a replay command and a wire log.
    for r in synthetic::results() {
        assert!(html.contains(&format!(r#"id="s-{}""#, r.id)), "{}", r.id);
        assert!(html.contains(&r.replay), "{}", r.id);
    }
    assert!(html.contains("Wire log ("));
}

#[test]
fn the_html_page_is_self_contained_and_escapes_trace_text() {
    let root = scratch("html-escape");
    let dir = write_run(&root, "run-1", &synthetic::events());
    let html = read(&dir.join("index.html"));
    assert_eq!(html.matches("<script").count(), 1, "only the page's own script");
    assert!(!html.contains("alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains('\u{0}') && !html.contains('\u{1b}'), "control characters are made visible");
    for external in ["src=", "<link", "@import", "url(", "href=\"http", "href=\"//"] {
        assert!(!html.contains(external), "external reference: {external}");
    }
}

#[test]
fn results_in_any_order_give_byte_identical_reports() {
    let mut reversed = synthetic::results();
    reversed.reverse();
    let mut rotated = synthetic::results();
    rotated.rotate_left(2);
    let a = write_run(&scratch("order-a"), "run-1", &synthetic::events());
    let b = write_run(&scratch("order-b"), "run-1", &synthetic::events_of(reversed));
    let c = write_run(&scratch("order-c"), "run-1", &synthetic::events_of(rotated));
    let names = files(&a);
    assert_eq!(names, files(&b));
    assert_eq!(names, files(&c));
    for n in &names {
        let x = fs::read(a.join(n)).unwrap();
        assert_eq!(x, fs::read(b.join(n)).unwrap(), "{n} differs");
        assert_eq!(x, fs::read(c.join(n)).unwrap(), "{n} differs");
    }
}

#[test]
fn a_report_directory_that_is_a_file_is_a_typed_error() {
    let root = scratch("dir-is-file");
    let file = root.join("reports");
    fs::write(&file, "not a directory").unwrap();
    let catalogue = synthetic::catalogue();
    let mut r = Reporter::new(&file, "run-1", &catalogue).unwrap();
    let err = r.on_event(&synthetic::events()[0]).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("reports"), "{err}");
}

#[test]
fn an_interrupted_run_leaves_neither_a_report_nor_a_partial_directory() {
    let root = scratch("interrupted");
    let catalogue = synthetic::catalogue();
    let events = synthetic::events();
    {
        let mut r = Reporter::new(&root, "run-1", &catalogue).unwrap();
        for ev in &events[..3] {
            r.on_event(ev).unwrap();
        }
        assert!(r.partial_dir().is_dir());
        assert!(matches!(r.finish(), Err(ReportError::NotFinished)));
    }
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0, "nothing left behind");
}

#[test]
fn a_stale_partial_directory_and_an_older_report_are_replaced() {
    let root = scratch("replace");
    fs::create_dir_all(root.join(".run-1.partial/traces")).unwrap();
    fs::write(root.join(".run-1.partial/summary.json"), "half written").unwrap();
    let first = write_run(&root, "run-1", &synthetic::events());
    let mut one = synthetic::results();
    one.truncate(1);
    let again = write_run(&root, "run-1", &synthetic::events_of(one));
    assert_eq!(first, again);
    assert_eq!(files(&again).iter().filter(|f| f.starts_with("traces/")).count(), 1);
    let other = write_run(&root, "run-2", &synthetic::events());
    let mut top: Vec<String> =
        fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    #[cfg(unix)]
    {
        assert_eq!(top, ["latest", "run-1", "run-2"]);
        assert_eq!(fs::read_link(root.join("latest")).unwrap(), Path::new("run-2"));
    }
    #[cfg(not(unix))]
    {
        assert_eq!(top, ["latest.txt", "run-1", "run-2"]);
        assert_eq!(read(&root.join("latest.txt")).trim(), "run-2");
    }
    assert!(other.ends_with("run-2"));
}

#[test]
fn events_out_of_order_and_duplicate_results_are_refused() {
    let root = scratch("order");
    let catalogue = synthetic::catalogue();
    let events = synthetic::events();
    let mut r = Reporter::new(&root, "run-1", &catalogue).unwrap();
    assert!(matches!(r.on_event(&events[1]), Err(ReportError::OutOfOrder(_))));
    r.on_event(&events[0]).unwrap();
    assert!(matches!(r.on_event(&events[0]), Err(ReportError::OutOfOrder(_))));
    r.on_event(&events[1]).unwrap();
    assert!(matches!(r.on_event(&events[1]), Err(ReportError::DuplicateScenario(id)) if id == FAIL_ID));
    assert!(matches!(Reporter::new(&root, "../escape", &catalogue), Err(ReportError::BadRunId { .. })));
}

#[test]
fn a_large_trace_is_cut_in_the_page_but_whole_in_its_file() {
    let root = scratch("large");
    let mut big: ScenarioResult = synthetic::results().remove(0);
    assert_eq!(big.verdict, Verdict::Fail);
    let template = big.trace.records[10].clone();
    for i in 0..5000u64 {
        let mut rec = template.clone();
        rec.t = 1_000_000_000 + i;
        big.trace.records.push(rec);
    }
    big.trace.push(2_000_000_000, What::Finished { why: "settled".into() });
    let total = big.trace.records.len();
    let dir = write_run(&root, "run-1", &synthetic::events_of(vec![big.clone()]));
    let html = read(&dir.join("index.html"));
    assert!(html.contains(&format!("Only the first 2000 of {total} records are shown")), "no cut note");
    assert_eq!(html.matches(r#"<tr class="k-"#).count(), 2000);
    assert!(html.contains(r#"data-kind="later""#), "the diagram says how many records follow");
    assert_eq!(read(&dir.join(format!("traces/{FAIL_ID}.jsonl"))).lines().count(), total);
}
