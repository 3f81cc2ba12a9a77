//! Plan validation: out-of-range values and contradictions, each naming the rule and the key.

use crate::model::{
    ApiAction, ApiRule, Corruption, FaultPlan, FrameAction, FrameMatch, FrameRule, InjectFrame, RuleId,
    SeqRange, TimedAction, TimedFault, Trigger,
};

/// Most extra copies a `duplicate` may make.
pub const MAX_COPIES: u32 = 16;
/// Largest `truncate.len` (a websocket message larger than this is not a frame anyone sends).
pub const MAX_TRUNCATE_LEN: usize = 16 * 1024 * 1024;
/// Largest `reorder.window`.
pub const MAX_WINDOW: u32 = 10_000;
/// Longest `reorder.max_hold_ms`: nothing is held for longer.
pub const MAX_HOLD_MS: u64 = 600_000;
/// Longest `channel_closed.output`.
pub const MAX_OUTPUT_LEN: usize = 64 * 1024;

/// Why a plan was refused. `at` names the rule, `key` the offending key as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A number outside its allowed range.
    #[error("{at}: `{key}` = {value} is out of range ({allowed})")]
    OutOfRange { at: RuleId, key: &'static str, value: String, allowed: &'static str },
    /// A range whose low end is above its high end.
    #[error("{at}: `{key}` = [{lo}, {hi}] is empty (lo > hi)")]
    EmptyRange { at: RuleId, key: &'static str, lo: i64, hi: i64 },
    /// `from_ms` not before `until_ms`: the window `from_ms <= now < until_ms` is empty.
    #[error("{at}: `from_ms` = {from_ms} is not before `until_ms` = {until_ms}")]
    EmptyWindow { at: RuleId, from_ms: u64, until_ms: u64 },
    /// Two keys that can never hold together.
    #[error("{at}: `{key}` contradicts `{other}`: {why}")]
    Contradiction { at: RuleId, key: &'static str, other: &'static str, why: &'static str },
    /// A MessageType no frame can carry (empty, longer than 32 bytes, or padded).
    #[error("{at}: `when.message_type` = {value:?} can never match: {why}")]
    BadMessageType { at: RuleId, value: String, why: &'static str },
    /// Two rules with the same name.
    #[error("{at}: `name` = {name:?} is already used by {first}")]
    DuplicateName { at: RuleId, name: String, first: RuleId },
}

impl PlanError {
    /// The rule the error is about.
    pub fn rule(&self) -> RuleId {
        match self {
            PlanError::OutOfRange { at, .. }
            | PlanError::EmptyRange { at, .. }
            | PlanError::EmptyWindow { at, .. }
            | PlanError::Contradiction { at, .. }
            | PlanError::BadMessageType { at, .. }
            | PlanError::DuplicateName { at, .. } => *at,
        }
    }
}

fn out_of_range(at: RuleId, key: &'static str, value: impl ToString, allowed: &'static str) -> PlanError {
    PlanError::OutOfRange { at, key, value: value.to_string(), allowed }
}

fn check_range(at: RuleId, key: &'static str, r: Option<SeqRange>) -> Result<(), PlanError> {
    match r {
        Some(r) if r.lo > r.hi => Err(PlanError::EmptyRange { at, key, lo: r.lo, hi: r.hi }),
        _ => Ok(()),
    }
}

fn check_window(at: RuleId, from_ms: Option<u64>, until_ms: Option<u64>) -> Result<(), PlanError> {
    match (from_ms, until_ms) {
        (Some(f), Some(u)) if f >= u => Err(PlanError::EmptyWindow { at, from_ms: f, until_ms: u }),
        _ => Ok(()),
    }
}

fn check_nth_count(
    at: RuleId,
    nth: Option<u64>,
    count: Option<u64>,
    nth_key: &'static str,
    count_key: &'static str,
) -> Result<(), PlanError> {
    if nth == Some(0) {
        return Err(out_of_range(at, nth_key, 0, "1-based: at least 1"));
    }
    if count == Some(0) {
        return Err(out_of_range(at, count_key, 0, "at least 1; leave it out for unlimited"));
    }
    Ok(())
}

fn check_code(at: RuleId, key: &'static str, code: u16) -> Result<(), PlanError> {
    if (1000..=4999).contains(&code) {
        Ok(())
    } else {
        Err(out_of_range(at, key, code, "a websocket close code, 1000 to 4999"))
    }
}

fn check_for_ms(at: RuleId, key: &'static str, for_ms: u64) -> Result<(), PlanError> {
    if for_ms == 0 {
        Err(out_of_range(at, key, 0, "at least 1 ms"))
    } else {
        Ok(())
    }
}

fn check_inject(at: RuleId, frame: &InjectFrame) -> Result<(), PlanError> {
    match frame {
        InjectFrame::ChannelClosed { output } if output.len() > MAX_OUTPUT_LEN => {
            Err(out_of_range(at, "action.frame.output", output.len(), "at most 64 KiB of text"))
        }
        _ => Ok(()),
    }
}

fn check_match(at: RuleId, m: &FrameMatch) -> Result<(), PlanError> {
    check_range(at, "when.seq", m.seq)?;
    check_range(at, "when.acked_seq", m.acked_seq)?;
    check_window(at, m.from_ms, m.until_ms)?;
    check_nth_count(at, m.nth, m.count, "when.nth", "when.count")?;
    if let Some(t) = &m.message_type {
        let why = if t.is_empty() {
            Some("it is empty")
        } else if t.len() > ssm_wire::layout::MESSAGE_TYPE_WIDTH {
            Some("it is longer than the 32-byte MessageType field")
        } else if t.trim() != t || t.contains('\0') {
            Some("decoders trim padding, so a name with white space or NUL at an end never comes out")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(PlanError::BadMessageType { at, value: t.clone(), why });
        }
    }
    if m.retransmissions_only && m.first_copies_only {
        return Err(PlanError::Contradiction {
            at,
            key: "when.retransmissions_only",
            other: "when.first_copies_only",
            why: "a frame is either a first copy or a retransmission",
        });
    }
    let not_ack = m.message_type.as_deref().is_some_and(|t| t != "acknowledge");
    if m.acks_only && not_ack {
        return Err(PlanError::Contradiction {
            at,
            key: "when.acks_only",
            other: "when.message_type",
            why: "acks_only needs message_type acknowledge",
        });
    }
    if m.acked_seq.is_some() && not_ack {
        return Err(PlanError::Contradiction {
            at,
            key: "when.acked_seq",
            other: "when.message_type",
            why: "only acknowledge frames carry an acknowledged sequence number",
        });
    }
    match m.after {
        Some(Trigger::Acks { acks: 0, .. }) => {
            Err(out_of_range(at, "when.after.acks", 0, "at least 1; leave `after` out for no trigger"))
        }
        Some(Trigger::Reconnects { reconnects: 0 }) => {
            Err(out_of_range(at, "when.after.reconnects", 0, "at least 1; leave `after` out for no trigger"))
        }
        _ => Ok(()),
    }
}

fn check_frame_action(at: RuleId, a: &FrameAction) -> Result<(), PlanError> {
    match a {
        FrameAction::Duplicate { copies } if *copies == 0 || *copies > MAX_COPIES => {
            Err(out_of_range(at, "action.copies", copies, "1 to 16 extra copies"))
        }
        FrameAction::Reorder { window, .. } if *window == 0 || *window > MAX_WINDOW => {
            Err(out_of_range(at, "action.window", window, "1 to 10000 frames"))
        }
        FrameAction::Reorder { max_hold_ms, .. } if *max_hold_ms == 0 || *max_hold_ms > MAX_HOLD_MS => {
            Err(out_of_range(at, "action.max_hold_ms", max_hold_ms, "1 to 600000 ms"))
        }
        FrameAction::Truncate { len } if *len > MAX_TRUNCATE_LEN => {
            Err(out_of_range(at, "action.len", len, "at most 16 MiB"))
        }
        FrameAction::Corrupt { field: Corruption::MessageType { value } } if value.len() > 32 => {
            Err(PlanError::OutOfRange {
                at,
                key: "action.field.value",
                value: value.len().to_string(),
                allowed: "a MessageType of at most 32 bytes",
            })
        }
        FrameAction::Corrupt { field: Corruption::PayloadByte { offset } } if *offset > MAX_TRUNCATE_LEN => {
            Err(out_of_range(at, "action.field.offset", offset, "at most 16 MiB"))
        }
        FrameAction::Inject { frame } => check_inject(at, frame),
        FrameAction::Close { code, .. } => check_code(at, "action.code", *code),
        FrameAction::BlackHole { for_ms, .. } => check_for_ms(at, "action.for_ms", *for_ms),
        _ => Ok(()),
    }
}

fn check_frame_rule(at: RuleId, r: &FrameRule) -> Result<(), PlanError> {
    check_match(at, &r.when)?;
    check_frame_action(at, &r.action)
}

fn check_timed(at: RuleId, t: &TimedFault) -> Result<(), PlanError> {
    match &t.action {
        TimedAction::Close { code, .. } => check_code(at, "action.code", *code),
        TimedAction::Reset { .. } => Ok(()),
        TimedAction::BlackHole { for_ms, .. } | TimedAction::Partition { for_ms } => {
            check_for_ms(at, "action.for_ms", *for_ms)
        }
        TimedAction::Inject { frame, .. } => check_inject(at, frame),
    }
}

fn check_api(at: RuleId, r: &ApiRule) -> Result<(), PlanError> {
    check_window(at, r.from_ms, r.until_ms)?;
    check_nth_count(at, r.nth, r.count, "nth", "count")?;
    match r.action {
        ApiAction::NullToken {} if !r.op.returns_token() => Err(PlanError::Contradiction {
            at,
            key: "action.kind",
            other: "op",
            why: "null_token needs an operation that answers with a token",
        }),
        ApiAction::RotateStreamUrl {} if !r.op.returns_stream_url() => Err(PlanError::Contradiction {
            at,
            key: "action.kind",
            other: "op",
            why: "rotate_stream_url needs resume_session or start_session",
        }),
        _ => Ok(()),
    }
}

impl FaultPlan {
    /// Refuses a plan with an out-of-range value or contradictory keys; the first problem found,
    /// in the order frames, timed, api.
    pub fn check(&self) -> Result<(), PlanError> {
        for (i, r) in self.frames.iter().enumerate() {
            check_frame_rule(RuleId::Frame(i), r)?;
        }
        for (i, t) in self.timed.iter().enumerate() {
            check_timed(RuleId::Timed(i), t)?;
        }
        for (i, r) in self.api.iter().enumerate() {
            check_api(RuleId::Api(i), r)?;
        }
        let names = (self.frames.iter().enumerate().map(|(i, r)| (RuleId::Frame(i), &r.name)))
            .chain(self.timed.iter().enumerate().map(|(i, t)| (RuleId::Timed(i), &t.name)))
            .chain(self.api.iter().enumerate().map(|(i, r)| (RuleId::Api(i), &r.name)))
            .filter_map(|(at, n)| n.as_deref().map(|n| (at, n)));
        let mut first: std::collections::BTreeMap<&str, RuleId> = std::collections::BTreeMap::new();
        for (at, n) in names {
            if let Some(f) = first.get(n) {
                return Err(PlanError::DuplicateName { at, name: n.to_owned(), first: *f });
            }
            first.insert(n, at);
        }
        Ok(())
    }

    /// The name given to a rule, if any.
    pub fn rule_name(&self, id: RuleId) -> Option<&str> {
        match id {
            RuleId::Frame(i) => self.frames.get(i)?.name.as_deref(),
            RuleId::Timed(i) => self.timed.get(i)?.name.as_deref(),
            RuleId::Api(i) => self.api.get(i)?.name.as_deref(),
        }
    }
}
