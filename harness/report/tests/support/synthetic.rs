//! A small synthetic run, built by hand: one scenario of every verdict, a FAIL with an
//! integrity divergence, failing requirements and a trace around a lost frame. Shared by the
//! integration tests and the `synthetic_report` example.

#![allow(dead_code)]

use std::path::PathBuf;

use ssm_channel::Role;
use ssm_runner::{Backend, RunEvent, RunInfo, ScenarioResult, Totals};
use ssm_scenario::catalogue::{Catalogue, Requirement};
use ssm_scenario::check::integrity::Divergence;
use ssm_scenario::check::{Judgement, ReqResult, Verdict};
use ssm_scenario::trace::MsgKind;
use ssm_scenario::{Trace, What};
use ssm_spec::Req;

/// Id of the failing scenario.
pub const FAIL_ID: &str = "ordering-gap";
/// Id of the passing scenario.
pub const PASS_ID: &str = "ack-001";

const MS: u64 = 1_000_000;

pub fn catalogue() -> Catalogue {
    let req = |id: Req, statement: &str| Requirement {
        id,
        level: id.level(),
        statement: statement.to_owned(),
        reference: "both references".to_owned(),
        source: "protocol.md".to_owned(),
        simulated: true,
        why_not: None,
    };
    Catalogue {
        requirements: vec![
            req(Req::Frame001, "A frame starts with a 4-byte header length."),
            req(Req::Frame008, "A receiver should drop a frame whose digest does not match."),
            req(Req::Ack001, "Every stream frame is acknowledged."),
            req(Req::Ack004, "An acknowledgement names the sequence number it acknowledges."),
            req(Req::Ord001, "Messages are delivered once, in order."),
            req(Req::Rtx001, "An unacknowledged frame is retransmitted."),
            req(Req::Pub001, "A paused sender stops publishing."),
            req(Req::Res006, "A resumed stream has no gap."),
            req(Req::Term001, "TerminateSession ends the session."),
        ],
    }
}

fn rr(req: Req, cited: bool, outcome: &'static str, detail: &str, at: Option<u64>) -> ReqResult {
    ReqResult { req, level: req.level(), cited, outcome, detail: detail.to_owned(), at }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base(id: &str, folder: &str, verdict: Verdict, requirements: Vec<Req>) -> ScenarioResult {
    ScenarioResult {
        id: id.to_owned(),
        title: format!("synthetic {id}"),
        file: PathBuf::from(format!("scenarios/{folder}/{id}.toml")),
        requirements,
        tags: vec![folder.to_owned(), "synthetic".to_owned()],
        under_test: Role::Client,
        imp: "conformant".to_owned(),
        seed: 7,
        verdict,
        reason: None,
        judgement: None,
        virtual_ms: 120,
        wall_ms: 3,
        replay: format!("ssm-harness run --seed 7 --impl conformant {id}"),
        trace: Trace::default(),
    }
}

fn judgement(verdict: Verdict, requirements: Vec<ReqResult>) -> Judgement {
    Judgement {
        verdict,
        requirements,
        integrity: Vec::new(),
        problems: Vec::new(),
        not_exercised: Vec::new(),
        headline: None,
        first_failure_at: None,
    }
}

fn pass() -> ScenarioResult {
    let mut r = base(PASS_ID, "ack", Verdict::Pass, vec![Req::Ack001, Req::Frame001]);
    r.judgement = Some(judgement(
        Verdict::Pass,
        vec![
            rr(Req::Frame001, true, "pass", "4 frames well formed", None),
            rr(Req::Ack001, true, "pass", "2 stream frames acknowledged", None),
        ],
    ));
    r.trace.push(
        0,
        What::Step { index: 0, step: serde_json::json!({"do": "send", "from": "client", "text": "ls\r"}) },
    );
    r.trace.push(
        MS,
        What::Wrote {
            by: Role::Client,
            msg: MsgKind::Binary,
            bytes: b"ls\r".to_vec(),
            summary: "input_stream_data seq=0 pt=1 len=3".into(),
        },
    );
    r.trace.push(
        3 * MS,
        What::Delivered {
            to: Role::Agent,
            bytes: b"ls\r".to_vec(),
            summary: "input_stream_data seq=0 pt=1 len=3".into(),
            fault: None,
        },
    );
    r
}

fn fail() -> ScenarioResult {
    let mut r = base(FAIL_ID, "ordering", Verdict::Fail, vec![Req::Ord001, Req::Res006, Req::Rtx001]);
    r.wall_ms = 41;
    r.virtual_ms = 400;
    let divergence = Divergence {
        direction: "agent->client".into(),
        message: 25,
        offset: 125,
        expected: "\"hello\"".into(),
        got: "\"world <script>alert(1)</script>\"".into(),
        at: Some(208 * MS),
        req: Req::Res006,
        what: "1 message(s) missing before this one (a gap)".into(),
    };
    let headline = format!(
        "{}: {} stream, message {} at byte {}: {} (expected {}, got {})",
        divergence.req,
        divergence.direction,
        divergence.message,
        divergence.offset,
        divergence.what,
        divergence.expected,
        divergence.got
    );
    let mut j = judgement(
        Verdict::Fail,
        vec![
            rr(Req::Ord001, true, "pass", "25 messages delivered once, in order", None),
            rr(Req::Res006, true, "fail", "agent->client: a gap before message 25", Some(208 * MS)),
            rr(
                Req::Rtx001,
                true,
                "fail",
                "output_stream_data seq=25 was never retransmitted",
                Some(330 * MS),
            ),
            rr(Req::Ack004, false, "fail", "the client acknowledged seq 26 & not 25 <sic>", Some(212 * MS)),
        ],
    );
    j.integrity = vec![divergence];
    j.headline = Some(headline.clone());
    j.first_failure_at = Some(208 * MS);
    r.reason = Some(headline);
    r.judgement = Some(j);

    let t = &mut r.trace;
    t.push(0, What::Opened { side: Role::Client, url: "sim://data-channel/session-1".into() });
    t.push(
        MS,
        What::OpenChecked { side: Role::Client, token: "token-1".into(), accepted: true, why: String::new() },
    );
    t.push(2 * MS, What::Event { role: Role::Client, event: serde_json::json!({"event": "ready"}) });
    t.push(
        2 * MS,
        What::Step { index: 0, step: serde_json::json!({"do": "send", "from": "agent", "count": 26}) },
    );
    // 25 messages that get through, each written, delivered and acknowledged.
    for i in 0..25u64 {
        let at = (4 + i * 8) * MS;
        let body = format!("line{i}");
        let summary = format!("output_stream_data seq={i} pt=1 len={}", body.len());
        t.push(
            at,
            What::Offered {
                by: Role::Agent,
                payload_type: 1,
                bytes: body.clone().into_bytes(),
                accepted: true,
            },
        );
        t.push(
            at,
            What::Wrote {
                by: Role::Agent,
                msg: MsgKind::Binary,
                bytes: body.clone().into_bytes(),
                summary: summary.clone(),
            },
        );
        t.push(
            at + 2 * MS,
            What::Delivered { to: Role::Client, bytes: body.clone().into_bytes(), summary, fault: None },
        );
        t.push(
            at + 2 * MS,
            What::Event {
                role: Role::Client,
                event: serde_json::json!({"event": "data", "payload_type": 1, "bytes": hex(body.as_bytes())}),
            },
        );
        t.push(
            at + 3 * MS,
            What::Wrote {
                by: Role::Client,
                msg: MsgKind::Binary,
                bytes: vec![0; 4],
                summary: format!("acknowledge ack={i}"),
            },
        );
        t.push(
            at + 5 * MS,
            What::Delivered {
                to: Role::Agent,
                bytes: vec![0; 4],
                summary: format!("acknowledge ack={i}"),
                fault: None,
            },
        );
    }
    // Message 25 is lost to a fault; 26 arrives first.
    t.push(
        204 * MS,
        What::Offered { by: Role::Agent, payload_type: 1, bytes: b"hello".to_vec(), accepted: true },
    );
    t.push(
        204 * MS,
        What::Wrote {
            by: Role::Agent,
            msg: MsgKind::Binary,
            bytes: b"hello".to_vec(),
            summary: "output_stream_data seq=25 pt=1 len=5".into(),
        },
    );
    t.push(205 * MS, What::Fault { rule: "drop-25".into(), what: "drop output_stream_data seq=25".into() });
    t.push(
        205 * MS,
        What::Lost {
            towards: Role::Client,
            why: "fault drop-25".into(),
            summary: "output_stream_data seq=25 pt=1 len=5".into(),
        },
    );
    let evil = "world <script>alert(1)</script>\u{0}\u{1b}[31m & \"quotes\"";
    t.push(
        206 * MS,
        What::Offered { by: Role::Agent, payload_type: 1, bytes: evil.as_bytes().to_vec(), accepted: true },
    );
    t.push(
        206 * MS,
        What::Wrote {
            by: Role::Agent,
            msg: MsgKind::Binary,
            bytes: evil.as_bytes().to_vec(),
            summary: format!("output_stream_data seq=26 pt=1 len={} {evil}", evil.len()),
        },
    );
    t.push(
        208 * MS,
        What::Delivered {
            to: Role::Client,
            bytes: evil.as_bytes().to_vec(),
            summary: "output_stream_data seq=26 pt=1 len=44".into(),
            fault: Some("reorder-26".into()),
        },
    );
    t.push(
        208 * MS,
        What::Event {
            role: Role::Client,
            event: serde_json::json!({"event": "data", "payload_type": 1, "bytes": hex(evil.as_bytes())}),
        },
    );
    t.push(
        212 * MS,
        What::ServiceSaw {
            side: Role::Client,
            req: Req::Ack004,
            detail: "acknowledged seq 26 before seq 25".into(),
        },
    );
    t.push(
        214 * MS,
        What::ServiceWrote {
            towards: Role::Client,
            bytes: vec![1, 2, 3],
            summary: "pause_publication".into(),
        },
    );
    t.push(301 * MS, What::Closed { side: Role::Client, code: Some(1000), why: "session terminated".into() });
    t.push(400 * MS, What::Finished { why: "settled".into() });
    r
}

fn skip() -> ScenarioResult {
    let mut r = base("handshake-agent", "handshake", Verdict::Skip, vec![Req::Frame001]);
    r.under_test = Role::Agent;
    r.reason = Some("judges the agent, this run judges the client".into());
    r.virtual_ms = 0;
    r.wall_ms = 0;
    r
}

fn xfail() -> ScenarioResult {
    let mut r = base("framing-legacy", "framing", Verdict::Xfail, vec![Req::Ack004]);
    let mut j = judgement(
        Verdict::Fail,
        vec![rr(Req::Ack004, true, "fail", "acknowledgement names seq 0 for seq 3", Some(12 * MS))],
    );
    j.headline = Some("ACK-004 MUST: acknowledgement names seq 0 for seq 3".into());
    j.first_failure_at = Some(12 * MS);
    r.judgement = Some(j);
    r.reason = Some("expected failure: the 2024 plugin acknowledges with a stale sequence number".into());
    r.trace.push(
        12 * MS,
        What::Wrote {
            by: Role::Client,
            msg: MsgKind::Binary,
            bytes: vec![0; 4],
            summary: "acknowledge ack=0".into(),
        },
    );
    r
}

fn non_strict() -> ScenarioResult {
    let mut r = base("close-digest", "close", Verdict::NonStrict, vec![Req::Frame008, Req::Term001]);
    let mut j = judgement(
        Verdict::NonStrict,
        vec![
            rr(Req::Frame008, true, "fail", "a frame with a bad digest was accepted", Some(20 * MS)),
            rr(Req::Term001, true, "pass", "the session ended on TerminateSession", None),
        ],
    );
    j.headline = Some("FRAME-008 SHOULD: a frame with a bad digest was accepted".into());
    j.first_failure_at = Some(20 * MS);
    r.reason = j.headline.clone();
    r.judgement = Some(j);
    r
}

fn error() -> ScenarioResult {
    let mut r = base("publication-pause", "publication", Verdict::Error, vec![Req::Pub001]);
    let mut j = judgement(
        Verdict::Error,
        vec![rr(Req::Pub001, true, "not_exercised", "the service never paused publication", None)],
    );
    j.not_exercised = vec![Req::Pub001];
    j.headline = Some("the scenario does not exercise PUB-001".into());
    r.reason = j.headline.clone();
    r.judgement = Some(j);
    r
}

/// The results in the order a parallel runner might finish them.
pub fn results() -> Vec<ScenarioResult> {
    vec![fail(), skip(), pass(), error(), non_strict(), xfail()]
}

pub fn info() -> RunInfo {
    RunInfo {
        harness_version: "0.1.0",
        backend: Backend::Sim,
        imp: "conformant".to_owned(),
        under_test: Some(Role::Client),
        seed: 7,
        strict: false,
        scenarios: 6,
    }
}

/// The events of a run whose results arrive in `results`' order.
pub fn events_of(results: Vec<ScenarioResult>) -> Vec<RunEvent> {
    let mut totals = Totals::default();
    let mut evs = vec![RunEvent::Started(info())];
    for r in results {
        totals.add(r.verdict);
        evs.push(RunEvent::ScenarioFinished(Box::new(r)));
    }
    evs.push(RunEvent::Finished { totals, wall_ms: 1234 });
    evs
}

pub fn events() -> Vec<RunEvent> {
    events_of(results())
}
