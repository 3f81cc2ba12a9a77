#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::prelude::*;
use ssm_fault::{
    ApiAction, ApiErrorKind, ApiOp, ApiRule, Context, Corruption, Direction, Effect, FaultEngine, FaultPlan,
    FrameAction, FrameMatch, FrameRule, InjectFrame, SeqRange, Side, TimedAction, TimedFault, Trigger,
};

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::ToAgent), Just(Direction::ToClient)]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Client), Just(Side::Agent)]
}

fn range() -> impl Strategy<Value = SeqRange> {
    (-2i64..12, -2i64..12).prop_map(|(lo, hi)| SeqRange::new(lo, hi))
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        (0u64..4, proptest::option::of(direction()))
            .prop_map(|(acks, direction)| Trigger::Acks { acks, direction }),
        Just(Trigger::ResumeInFlight),
        (0usize..6, side()).prop_map(|(unacked_over, side)| Trigger::UnackedOver { unacked_over, side }),
        (0u64..3).prop_map(|reconnects| Trigger::Reconnects { reconnects }),
    ]
}

fn message_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("input_stream_data".to_owned()),
        Just("output_stream_data".to_owned()),
        Just("acknowledge".to_owned()),
        Just("channel_closed".to_owned()),
        "[a-z_]{0,40}",
    ]
}

prop_compose! {
    fn frame_match()(
        direction in proptest::option::of(direction()),
        message_type in proptest::option::of(message_type()),
        payload_type in proptest::option::of(0u32..13),
        seq in proptest::option::of(range()),
        flags in any::<[bool; 3]>(),
        acked_seq in proptest::option::of(range()),
        nth in proptest::option::of(0u64..5),
        count in proptest::option::of(0u64..5),
        from_ms in proptest::option::of(0u64..2_000),
        until_ms in proptest::option::of(0u64..4_000),
        after in proptest::option::of(trigger()),
    ) -> FrameMatch {
        FrameMatch {
            direction, message_type, payload_type, seq,
            acks_only: flags[0], acked_seq,
            retransmissions_only: flags[1], first_copies_only: flags[2],
            nth, count, from_ms, until_ms, after,
        }
    }
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::Digest {}),
        any::<u32>().prop_map(|value| Corruption::HeaderLength { value }),
        any::<u32>().prop_map(|value| Corruption::PayloadLength { value }),
        any::<u64>().prop_map(|value| Corruption::Flags { value }),
        any::<i64>().prop_map(|value| Corruption::SequenceNumber { value }),
        Just(Corruption::MessageId {}),
        Just(Corruption::TypeNulPadding {}),
        prop_oneof![0usize..200, Just(usize::MAX)].prop_map(|offset| Corruption::PayloadByte { offset }),
    ]
}

fn inject_frame() -> impl Strategy<Value = InjectFrame> {
    prop_oneof![
        Just(InjectFrame::PausePublication {}),
        Just(InjectFrame::StartPublication {}),
        ".{0,20}".prop_map(|output| InjectFrame::ChannelClosed { output }),
    ]
}

/// Actions after which every input frame comes out exactly once, as a delivery or a drop.
fn conserving_action() -> impl Strategy<Value = FrameAction> {
    prop_oneof![
        Just(FrameAction::Pass {}),
        (0u64..1_000).prop_map(|delay_ms| FrameAction::Delay { delay_ms }),
        Just(FrameAction::Drop {}),
        (0u32..5, 0u64..800).prop_map(|(window, max_hold_ms)| FrameAction::Reorder { window, max_hold_ms }),
        corruption().prop_map(|field| FrameAction::Corrupt { field }),
        prop_oneof![0usize..200, Just(usize::MAX)].prop_map(|len| FrameAction::Truncate { len }),
        (proptest::option::of(direction()), 0u64..500)
            .prop_map(|(direction, for_ms)| FrameAction::BlackHole { direction, for_ms }),
    ]
}

fn any_action() -> impl Strategy<Value = FrameAction> {
    prop_oneof![
        conserving_action(),
        prop_oneof![0u32..20, Just(u32::MAX)].prop_map(|copies| FrameAction::Duplicate { copies }),
        inject_frame().prop_map(|frame| FrameAction::Inject { frame }),
        (side(), any::<u16>()).prop_map(|(side, code)| FrameAction::Close { side, code }),
        side().prop_map(|side| FrameAction::Reset { side }),
    ]
}

fn timed_action() -> impl Strategy<Value = TimedAction> {
    prop_oneof![
        (side(), any::<u16>()).prop_map(|(side, code)| TimedAction::Close { side, code }),
        side().prop_map(|side| TimedAction::Reset { side }),
        (direction(), 0u64..500).prop_map(|(direction, for_ms)| TimedAction::BlackHole { direction, for_ms }),
        (direction(), inject_frame()).prop_map(|(direction, frame)| TimedAction::Inject { direction, frame }),
        (0u64..500).prop_map(|for_ms| TimedAction::Partition { for_ms }),
    ]
}

fn api_rule() -> impl Strategy<Value = ApiRule> {
    let op = prop_oneof![
        Just(ApiOp::ResumeSession),
        Just(ApiOp::TerminateSession),
        Just(ApiOp::CreateDataChannel),
        Just(ApiOp::StartSession)
    ];
    let kind = prop_oneof![
        Just(ApiErrorKind::Internal),
        Just(ApiErrorKind::Throttled),
        Just(ApiErrorKind::AccessDenied),
        Just(ApiErrorKind::DoesNotExist)
    ];
    let action = prop_oneof![
        kind.prop_map(|error| ApiAction::Error { error }),
        (0u64..5_000).prop_map(|delay_ms| ApiAction::Latency { delay_ms }),
        Just(ApiAction::NullToken {}),
        Just(ApiAction::RotateStreamUrl {}),
    ];
    (op, proptest::option::of(0u64..4), proptest::option::of(0u64..4), action).prop_map(
        |(op, nth, count, action)| ApiRule {
            name: None,
            op,
            nth,
            count,
            from_ms: None,
            until_ms: None,
            action,
        },
    )
}

fn plan_with(actions: BoxedStrategy<FrameAction>, timed: bool) -> impl Strategy<Value = FaultPlan> {
    let rules = proptest::collection::vec(
        (frame_match(), actions).prop_map(|(when, action)| FrameRule { name: None, when, action }),
        0..5,
    );
    let timed_list = if timed {
        proptest::collection::vec(
            (0u64..3_000, timed_action()).prop_map(|(at_ms, action)| TimedFault {
                name: None,
                at_ms,
                action,
            }),
            0..4,
        )
        .boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (rules, timed_list, proptest::collection::vec(api_rule(), 0..3))
        .prop_map(|(frames, timed, api)| FaultPlan { frames, timed, api })
}

/// Realistic frames, mutated frames and garbage.
fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0i64..10).prop_map(common::output),
        (0i64..10).prop_map(common::input),
        (0i64..10).prop_map(common::client_ack),
        ((0i64..10).prop_map(common::output), any::<usize>(), any::<u8>()).prop_map(|(mut b, at, x)| {
            let n = b.len();
            b[at % n] ^= x;
            b
        }),
        ((0i64..10).prop_map(common::input), 0usize..130).prop_map(|(mut b, n)| {
            b.truncate(n);
            b
        }),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

#[derive(Debug, Clone)]
struct Step {
    dt: u64,
    dir: Direction,
    bytes: Vec<u8>,
    ctx: Context,
    api: Option<ApiOp>,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let ctx = (any::<bool>(), 0u64..4, 0usize..10, 0usize..10).prop_map(
        |(resume_in_flight, client_reconnects, c, a)| Context {
            resume_in_flight,
            client_reconnects,
            unacked: [c, a],
        },
    );
    let api = proptest::option::of(prop_oneof![
        Just(ApiOp::ResumeSession),
        Just(ApiOp::TerminateSession),
        Just(ApiOp::CreateDataChannel),
        Just(ApiOp::StartSession)
    ]);
    proptest::collection::vec(
        (0u64..300, direction(), message(), ctx, api).prop_map(|(dt, dir, bytes, ctx, api)| Step {
            dt,
            dir,
            bytes,
            ctx,
            api,
        }),
        0..40,
    )
}

fn run(plan: FaultPlan, seed: u64, steps: &[Step]) -> (Vec<Effect>, Vec<ssm_fault::ApiEffect>, usize) {
    let mut e = FaultEngine::new(plan, seed);
    let mut now = 0;
    let mut out = Vec::new();
    let mut api = Vec::new();
    for s in steps {
        now += s.dt;
        if let Some(d) = e.next_deadline() {
            if d <= now {
                out.extend(e.poll(d.max(now - s.dt)));
            }
        }
        out.extend(e.on_frame(now, s.dir, &s.bytes, &s.ctx));
        if let Some(op) = s.api {
            api.push(e.on_api(now, op, &s.ctx));
        }
        let _ = e.is_black_holed(now, s.dir);
    }
    out.extend(e.poll(u64::MAX));
    assert_eq!(e.held_count(), 0, "a frame was held forever");
    (out, api, e.fired().len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_is_deterministic(plan in plan_with(any_action().boxed(), true), seed in any::<u64>(), steps in steps()) {
        let a = run(plan.clone(), seed, &steps);
        let b = run(plan, seed, &steps);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn empty_plan_delivers_every_frame_unchanged_once(steps in steps(), seed in any::<u64>()) {
        let mut e = FaultEngine::new(FaultPlan::default(), seed);
        let mut now = 0;
        for s in &steps {
            now += s.dt;
            let out = e.on_frame(now, s.dir, &s.bytes, &s.ctx);
            prop_assert_eq!(out, vec![Effect::Deliver { direction: s.dir, bytes: s.bytes.clone(), delay_ms: 0, fault: None }]);
            prop_assert_eq!(e.on_api(now, ApiOp::ResumeSession, &s.ctx), ssm_fault::ApiEffect::Normal);
            prop_assert!(!e.is_black_holed(now, s.dir));
        }
        prop_assert!(e.poll(u64::MAX).is_empty());
        prop_assert_eq!(e.next_deadline(), None);
        prop_assert!(e.fired().is_empty());
    }

    #[test]
    fn conserving_plans_account_for_every_frame(plan in plan_with(conserving_action().boxed(), false), steps in steps()) {
        let (out, _, _) = run(plan, 0, &steps);
        let outcomes = out.iter().filter(|e| matches!(e, Effect::Deliver { .. } | Effect::Dropped { .. })).count();
        prop_assert_eq!(outcomes, steps.len());
    }

    #[test]
    fn checked_plans_survive_toml(plan in plan_with(any_action().boxed(), true)) {
        if plan.check().is_ok() {
            let text = toml::to_string(&plan).unwrap();
            let back: FaultPlan = toml::from_str(&text).unwrap();
            prop_assert_eq!(back, plan);
        }
    }
}
