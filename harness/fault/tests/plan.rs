#![allow(clippy::unwrap_used, clippy::expect_used)]

use ssm_fault::{
    ApiAction, ApiErrorKind, ApiOp, Corruption, Direction, FaultPlan, FrameAction, InjectFrame, PlanError,
    RuleId, SeqRange, Side, TimedAction, Trigger, EXAMPLE_PLAN,
};

fn parse(text: &str) -> FaultPlan {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn check(text: &str) -> Result<(), PlanError> {
    parse(text).check()
}

#[test]
fn example_plan_round_trips_through_toml() {
    let plan = parse(EXAMPLE_PLAN);
    plan.check().unwrap();
    let text = toml::to_string(&plan).unwrap();
    assert_eq!(parse(&text), plan, "{text}");
}

#[test]
fn example_plan_uses_every_key_and_kind() {
    let keys = [
        "name",
        "when",
        "action",
        "direction",
        "message_type",
        "payload_type",
        "seq",
        "acks_only",
        "acked_seq",
        "retransmissions_only",
        "first_copies_only",
        "nth",
        "count",
        "from_ms",
        "until_ms",
        "after",
        "acks",
        "resume_in_flight",
        "unacked_over",
        "side",
        "reconnects",
        "delay_ms",
        "copies",
        "window",
        "max_hold_ms",
        "field",
        "value",
        "offset",
        "len",
        "frame",
        "output",
        "code",
        "for_ms",
        "at_ms",
        "op",
        "error",
    ];
    for k in keys {
        assert!(EXAMPLE_PLAN.contains(&format!("{k} =")), "key {k} missing from the example");
    }
    let plan = parse(EXAMPLE_PLAN);
    let kinds: Vec<&str> = plan.frames.iter().map(|r| r.action.name()).collect();
    for k in [
        "pass",
        "delay",
        "drop",
        "duplicate",
        "reorder",
        "corrupt",
        "truncate",
        "inject",
        "close",
        "reset",
        "black_hole",
    ] {
        assert!(kinds.contains(&k), "frame action {k} missing");
    }
    let fields: Vec<&str> = plan
        .frames
        .iter()
        .filter_map(|r| match &r.action {
            FrameAction::Corrupt { field } => Some(field.name()),
            _ => None,
        })
        .collect();
    assert_eq!(fields.len(), 8, "{fields:?}");
    let injects = plan.frames.iter().filter(|r| matches!(r.action, FrameAction::Inject { .. })).count();
    assert_eq!(injects, 3);
    let timed: Vec<String> = plan.timed.iter().map(|t| format!("{:?}", t.action)).collect();
    for k in ["Close", "Reset", "BlackHole", "Inject", "Partition"] {
        assert!(timed.iter().any(|t| t.starts_with(k)), "timed {k} missing");
    }
    let ops: Vec<ApiOp> = plan.api.iter().map(|r| r.op).collect();
    for op in [ApiOp::ResumeSession, ApiOp::TerminateSession, ApiOp::CreateDataChannel, ApiOp::StartSession] {
        assert!(ops.contains(&op));
    }
    let errors: Vec<ApiErrorKind> = plan
        .api
        .iter()
        .filter_map(|r| match r.action {
            ApiAction::Error { error } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 4);
}

#[test]
fn shapes_parse_as_documented() {
    let plan = parse(
        r#"
[[frames]]
when = { seq = [2, 5], acked_seq = 3, after = { acks = 2, direction = "to_agent" } }
action = { kind = "corrupt", field = { kind = "header_length", value = 112 } }

[[frames]]
when = { after = { unacked_over = 10, side = "agent" } }
action = { kind = "reorder", window = 3 }

[[frames]]
action = { kind = "inject", frame = { kind = "channel_closed" } }

[[timed]]
at_ms = 5
action = { kind = "inject", direction = "to_client", frame = { kind = "start_publication" } }

[[api]]
op = "resume_session"
action = { kind = "null_token" }
"#,
    );
    let r = &plan.frames[0];
    assert_eq!(r.when.seq, Some(SeqRange::new(2, 5)));
    assert_eq!(r.when.acked_seq, Some(SeqRange::one(3)));
    assert_eq!(r.when.after, Some(Trigger::Acks { acks: 2, direction: Some(Direction::ToAgent) }));
    assert_eq!(r.action, FrameAction::Corrupt { field: Corruption::HeaderLength { value: 112 } });
    assert_eq!(plan.frames[1].when.after, Some(Trigger::UnackedOver { unacked_over: 10, side: Side::Agent }));
    assert_eq!(plan.frames[1].action, FrameAction::Reorder { window: 3, max_hold_ms: 1000 });
    assert_eq!(
        plan.frames[2].action,
        FrameAction::Inject { frame: InjectFrame::ChannelClosed { output: String::new() } }
    );
    assert_eq!(
        plan.timed[0].action,
        TimedAction::Inject { direction: Direction::ToClient, frame: InjectFrame::StartPublication {} }
    );
    assert_eq!(plan.api[0].action, ApiAction::NullToken {});
    assert!(parse("").is_empty());
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    for text in [
        "[[frames]]\naction = { kind = \"drop\" }\nbogus = 1",
        "[[frames]]\nwhen = { delay = 1 }\naction = { kind = \"drop\" }",
        "[[frames]]\naction = { kind = \"delay\", delay = 5 }",
        "[[frames]]\naction = { kind = \"corrupt\", field = { kind = \"flags\", value = 1, extra = 2 } }",
        "[[frames]]\nwhen = { after = { acks = 1, sides = \"agent\" } }\naction = { kind = \"drop\" }",
        "[[timed]]\nat_ms = 1\naction = { kind = \"partition\", for_ms = 1, direction = \"to_agent\" }",
        "[[api]]\nop = \"resume_session\"\naction = { kind = \"latency\", delay_ms = 1, jitter_ms = 2 }",
        "[plan]\n",
        "[[frames]]\naction = { kind = \"drop\", extra = 1 }",
        "[[frames]]\naction = { kind = \"corrupt\", field = { kind = \"digest\", value = 1 } }",
        "[[api]]\nop = \"resume_session\"\naction = { kind = \"null_token\", token = \"x\" }",
    ] {
        assert!(toml::from_str::<FaultPlan>(text).is_err(), "accepted: {text}");
    }
}

#[test]
fn malformed_triggers_are_refused() {
    for after in [
        "{}",
        "{ acks = 1, reconnects = 1 }",
        "{ unacked_over = 3 }",
        "{ reconnects = 1, direction = \"to_agent\" }",
        "{ acks = 1, side = \"agent\" }",
        "{ resume_in_flight = false }",
    ] {
        let text = format!("[[frames]]\nwhen = {{ after = {after} }}\naction = {{ kind = \"drop\" }}");
        assert!(toml::from_str::<FaultPlan>(&text).is_err(), "accepted: {after}");
    }
}

fn frame_err(when: &str, action: &str) -> PlanError {
    let text = format!("[[frames]]\naction = {{ kind = \"pass\" }}\n[[frames]]\nwhen = {{ {when} }}\naction = {{ {action} }}");
    check(&text).expect_err(&text)
}

fn out_of_range_key(e: &PlanError) -> (RuleId, &'static str) {
    match e {
        PlanError::OutOfRange { at, key, .. } => (*at, key),
        other => panic!("not out of range: {other:?}"),
    }
}

#[test]
fn out_of_range_values_name_rule_and_key() {
    let drop = "kind = \"drop\"";
    let cases = [
        (frame_err("nth = 0", drop), "when.nth"),
        (frame_err("count = 0", drop), "when.count"),
        (frame_err("after = { acks = 0 }", drop), "when.after.acks"),
        (frame_err("after = { reconnects = 0 }", drop), "when.after.reconnects"),
        (frame_err("", "kind = \"reorder\", window = 0"), "action.window"),
        (frame_err("", "kind = \"reorder\", window = 1, max_hold_ms = 0"), "action.max_hold_ms"),
        (frame_err("", "kind = \"duplicate\", copies = 17"), "action.copies"),
        (frame_err("", "kind = \"duplicate\", copies = 0"), "action.copies"),
        (frame_err("", "kind = \"truncate\", len = 16777217"), "action.len"),
        (frame_err("", "kind = \"close\", side = \"client\", code = 999"), "action.code"),
        (frame_err("", "kind = \"black_hole\", for_ms = 0"), "action.for_ms"),
    ];
    for (e, key) in cases {
        assert_eq!(out_of_range_key(&e), (RuleId::Frame(1), key), "{e}");
        assert!(e.to_string().starts_with("frames[1]: `"), "{e}");
    }
    // Large but allowed.
    check("[[frames]]\naction = { kind = \"truncate\", len = 16777216 }").unwrap();
    check("[[frames]]\naction = { kind = \"duplicate\", copies = 16 }").unwrap();
    check("[[frames]]\naction = { kind = \"close\", side = \"agent\", code = 1006 }").unwrap();

    let e = check("[[timed]]\nat_ms = 1\naction = { kind = \"partition\", for_ms = 0 }").unwrap_err();
    assert_eq!(out_of_range_key(&e), (RuleId::Timed(0), "action.for_ms"));
    let e =
        check("[[api]]\nop = \"start_session\"\nnth = 0\naction = { kind = \"null_token\" }").unwrap_err();
    assert_eq!(out_of_range_key(&e), (RuleId::Api(0), "nth"));
}

#[test]
fn empty_ranges_and_windows() {
    assert_eq!(
        frame_err("seq = [5, 2]", "kind = \"drop\""),
        PlanError::EmptyRange { at: RuleId::Frame(1), key: "when.seq", lo: 5, hi: 2 }
    );
    assert_eq!(
        frame_err("acked_seq = [1, 0]", "kind = \"drop\""),
        PlanError::EmptyRange { at: RuleId::Frame(1), key: "when.acked_seq", lo: 1, hi: 0 }
    );
    assert_eq!(
        frame_err("from_ms = 10, until_ms = 5", "kind = \"drop\""),
        PlanError::EmptyWindow { at: RuleId::Frame(1), from_ms: 10, until_ms: 5 }
    );
    let e = check(
        "[[api]]\nop = \"resume_session\"\nfrom_ms = 7\nuntil_ms = 7\naction = { kind = \"null_token\" }",
    );
    assert_eq!(e, Err(PlanError::EmptyWindow { at: RuleId::Api(0), from_ms: 7, until_ms: 7 }));
}

#[test]
fn contradictions() {
    let c = |e: PlanError| match e {
        PlanError::Contradiction { at, key, other, .. } => (at, key, other),
        other => panic!("not a contradiction: {other:?}"),
    };
    let drop = "kind = \"drop\"";
    assert_eq!(
        c(frame_err("retransmissions_only = true, first_copies_only = true", drop)),
        (RuleId::Frame(1), "when.retransmissions_only", "when.first_copies_only")
    );
    assert_eq!(
        c(frame_err("acks_only = true, message_type = \"output_stream_data\"", drop)),
        (RuleId::Frame(1), "when.acks_only", "when.message_type")
    );
    assert_eq!(
        c(frame_err("acked_seq = 1, message_type = \"input_stream_data\"", drop)),
        (RuleId::Frame(1), "when.acked_seq", "when.message_type")
    );
    let e = check("[[api]]\nop = \"terminate_session\"\naction = { kind = \"null_token\" }").unwrap_err();
    assert_eq!(c(e), (RuleId::Api(0), "action.kind", "op"));
    let e = check("[[api]]\nop = \"create_data_channel\"\naction = { kind = \"rotate_stream_url\" }")
        .unwrap_err();
    assert_eq!(c(e), (RuleId::Api(0), "action.kind", "op"));
    // Compatible combinations pass.
    check("[[frames]]\nwhen = { acks_only = true, message_type = \"acknowledge\", acked_seq = [0, 9] }\naction = { kind = \"drop\" }")
        .unwrap();
}

#[test]
fn message_types_that_can_never_match() {
    for (t, why) in [("", "empty"), ("x23456789012345678901234567890123", "longer"), (" acknowledge", "trim")]
    {
        let e = frame_err(&format!("message_type = {t:?}"), "kind = \"drop\"");
        match e {
            PlanError::BadMessageType { at, value, why: w } => {
                assert_eq!((at, value.as_str()), (RuleId::Frame(1), t));
                assert!(w.contains(why), "{w}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn duplicate_names() {
    let text = "[[frames]]\nname = \"a\"\naction = { kind = \"drop\" }\n[[api]]\nname = \"a\"\nop = \"start_session\"\naction = { kind = \"latency\", delay_ms = 1 }";
    assert_eq!(
        check(text),
        Err(PlanError::DuplicateName { at: RuleId::Api(0), name: "a".into(), first: RuleId::Frame(0) })
    );
    let plan = parse(EXAMPLE_PLAN);
    assert_eq!(plan.rule_name(RuleId::Frame(0)), Some("lose the third agent output"));
    assert_eq!(plan.rule_name(RuleId::Timed(1)), None);
    assert_eq!(plan.rule_name(RuleId::Api(99)), None);
}

#[test]
fn checked_constructor_refuses_bad_plans() {
    let plan = parse("[[frames]]\nwhen = { nth = 0 }\naction = { kind = \"drop\" }");
    assert!(ssm_fault::FaultEngine::checked(plan, 0).is_err());
    assert!(ssm_fault::FaultEngine::checked(parse(EXAMPLE_PLAN), 0).is_ok());
}
