//! `junit.xml`: one testsuite per run, one testcase per scenario.
//!
//! FAIL is a `<failure>`, ERROR an `<error>`, SKIP `<skipped>`. XFAIL and NON-STRICT pass (they
//! do not break the build) but say why in `system-out` and a property. No timestamps, so two
//! reports of the same run are identical.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use ssm_scenario::check::Verdict;
use ssm_spec::Level;

use crate::model::{Entry, Run};
use crate::summary::witness;
use crate::text;

/// The area folder a scenario file lives in (`scenarios/ack/ack-001.toml` → `ack`), else its
/// first tag, else `scenarios`.
pub(crate) fn classname(e: &Entry) -> String {
    let folder = Path::new(&e.result.file)
        .parent()
        .and_then(Path::file_name)
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.is_empty() && f != "scenarios");
    folder.or_else(|| e.result.tags.first().cloned()).unwrap_or_else(|| "scenarios".to_owned())
}

fn case(e: &Entry) -> TestCase {
    let r = &e.result;
    let j = r.judgement.as_ref();
    let reason = r.reason.clone().unwrap_or_default();
    let witness_text = j.and_then(witness).map(|w| text::witness(&w));
    let status = match r.verdict {
        Verdict::Pass | Verdict::Xfail | Verdict::NonStrict => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(if reason.is_empty() { "failed".to_owned() } else { reason.clone() });
            s.set_type("FAIL");
            let mut body = String::new();
            if let Some(w) = &witness_text {
                body.push_str(w);
                body.push('\n');
            }
            if let Some(j) = j {
                for q in j.requirements.iter().filter(|q| q.outcome == "fail") {
                    let at = q.at.map(|t| format!(" (at {})", text::ms(t))).unwrap_or_default();
                    body.push_str(&format!("failed: {} {}: {}{at}\n", q.req, q.level, q.detail));
                }
                for p in &j.problems {
                    body.push_str(&format!("problem: {p}\n"));
                }
            }
            body.push_str(&format!("replay: {}\n", r.replay));
            s.set_description(body);
            s
        }
        Verdict::Error => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(if reason.is_empty() { "harness error".to_owned() } else { reason.clone() });
            s.set_type("ERROR");
            s
        }
        Verdict::Skip => {
            let mut s = TestCaseStatus::skipped();
            if !reason.is_empty() {
                s.set_message(reason.clone());
            }
            s
        }
    };
    let mut tc = TestCase::new(r.id.clone(), status);
    tc.set_classname(classname(e));
    tc.set_time(Duration::from_millis(r.wall_ms));
    tc.add_property(Property::new("seed", r.seed.to_string()));
    tc.add_property(Property::new("virtual_ms", r.virtual_ms.to_string()));
    let mut out = String::new();
    match r.verdict {
        Verdict::Xfail => {
            let why = reason.strip_prefix("expected failure: ").unwrap_or(&reason);
            out.push_str(&format!("expected failure: {why}\n"));
            if let Some(w) = &witness_text {
                out.push_str(&format!("witness: {w}\n"));
            }
            tc.add_property(Property::new("xfail", why));
        }
        Verdict::NonStrict => {
            let broken: Vec<String> = j
                .map(|j| {
                    j.requirements
                        .iter()
                        .filter(|q| q.outcome == "fail" && q.level == Level::Should)
                        .map(|q| q.req.to_string())
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!("non-strict pass: SHOULD broken: {}\n", broken.join(", ")));
            if !reason.is_empty() {
                out.push_str(&format!("{reason}\n"));
            }
            tc.add_property(Property::new("should_broken", broken.join(",")));
        }
        Verdict::Error if !reason.is_empty() => out.push_str(&format!("{reason}\n")),
        _ => {}
    }
    if matches!(r.verdict, Verdict::Fail | Verdict::Error | Verdict::NonStrict | Verdict::Xfail) {
        out.push_str(&format!("replay: {}\n", r.replay));
        out.push_str(&format!("trace: {}\n", e.trace_file));
    }
    if !out.is_empty() {
        tc.set_system_out(out);
    }
    tc
}

pub(crate) fn render(run: &Run<'_>) -> Result<String, quick_junit::SerializeError> {
    let info = run.info;
    let mut suite = TestSuite::new(format!("ssm-harness {} {}", info.imp, info.backend.name()));
    suite.set_time(Duration::from_millis(run.wall_ms));
    suite.add_property(Property::new("harness_version", info.harness_version));
    suite.add_property(Property::new("seed", info.seed.to_string()));
    suite.add_property(Property::new("strict", info.strict.to_string()));
    if let Some(r) = info.under_test {
        suite.add_property(Property::new("under_test", r.name()));
    }
    for e in run.entries {
        suite.add_test_case(case(e));
    }
    let mut report = Report::new("ssm-harness");
    report.set_time(Duration::from_millis(run.wall_ms));
    report.add_test_suite(suite);
    let mut xml = report.to_string()?;
    if !xml.ends_with('\n') {
        xml.push('\n');
    }
    Ok(xml)
}
