//! The rule model: what scenario files say. Every type deserialises with
//! `deny_unknown_fields`, snake_case keys and the unit in every key name.

use serde::{Deserialize, Serialize};

/// Which way a frame travels through the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Frames the client sent, relayed by the service towards the agent.
    ToAgent,
    /// Frames the agent sent (and service frames), relayed towards the client.
    ToClient,
}

impl Direction {
    /// Both directions, `to_agent` first.
    pub const BOTH: [Direction; 2] = [Direction::ToAgent, Direction::ToClient];

    /// 0 for `to_agent`, 1 for `to_client`.
    pub fn index(self) -> usize {
        match self {
            Direction::ToAgent => 0,
            Direction::ToClient => 1,
        }
    }

    /// The websocket the frame is written to.
    pub fn destination(self) -> Side {
        match self {
            Direction::ToAgent => Side::Agent,
            Direction::ToClient => Side::Client,
        }
    }

    /// The websocket the frame was read from.
    pub fn source(self) -> Side {
        self.destination().peer()
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::ToAgent => "to_agent",
            Direction::ToClient => "to_client",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One of the two websocket connections the service holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Agent,
}

impl Side {
    /// 0 for the client, 1 for the agent (the order of [`crate::Context::unacked`]).
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Agent => 1,
        }
    }

    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Agent,
            Side::Agent => Side::Client,
        }
    }

    /// The direction of frames written to this side.
    pub fn inbound(self) -> Direction {
        match self {
            Side::Client => Direction::ToClient,
            Side::Agent => Direction::ToAgent,
        }
    }

    /// The data-channel role on the far end of this websocket.
    pub fn role(self) -> ssm_channel::Role {
        match self {
            Side::Client => ssm_channel::Role::Client,
            Side::Agent => ssm_channel::Role::Agent,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Agent => "agent",
        }
    }
}

impl From<ssm_channel::Role> for Side {
    fn from(r: ssm_channel::Role) -> Self {
        match r {
            ssm_channel::Role::Client => Side::Client,
            ssm_channel::Role::Agent => Side::Agent,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An inclusive range of sequence numbers: `seq = 3` or `seq = [3, 7]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "SeqRangeRepr", into = "SeqRangeRepr")]
pub struct SeqRange {
    pub lo: i64,
    pub hi: i64,
}

impl SeqRange {
    pub fn one(n: i64) -> Self {
        SeqRange { lo: n, hi: n }
    }

    pub fn new(lo: i64, hi: i64) -> Self {
        SeqRange { lo, hi }
    }

    pub fn contains(&self, n: i64) -> bool {
        self.lo <= n && n <= self.hi
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SeqRangeRepr {
    One(i64),
    Range([i64; 2]),
}

impl From<SeqRangeRepr> for SeqRange {
    fn from(r: SeqRangeRepr) -> Self {
        match r {
            SeqRangeRepr::One(n) => SeqRange::one(n),
            SeqRangeRepr::Range([lo, hi]) => SeqRange { lo, hi },
        }
    }
}

impl From<SeqRange> for SeqRangeRepr {
    fn from(r: SeqRange) -> Self {
        if r.lo == r.hi {
            SeqRangeRepr::One(r.lo)
        } else {
            SeqRangeRepr::Range([r.lo, r.hi])
        }
    }
}

/// The event a rule waits for before it is armed (`after = { ... }`).
///
/// Counting triggers latch: once `acks`, `unacked_over` or `reconnects` has fired, the rule stays
/// armed. `resume_in_flight` is a level: the rule is armed only while a ResumeSession call is in
/// flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TriggerRepr", into = "TriggerRepr")]
pub enum Trigger {
    /// `{ acks = N, direction = "to_client" }`: after the Nth acknowledge frame in that direction
    /// (either direction when `direction` is left out). The Nth ack itself is not yet affected.
    Acks { acks: u64, direction: Option<Direction> },
    /// `{ resume_in_flight = true }`: only while the client's ResumeSession call is in flight.
    ResumeInFlight,
    /// `{ unacked_over = N, side = "agent" }`: once that side's outgoing buffer holds more than N
    /// unacknowledged messages.
    UnackedOver { unacked_over: usize, side: Side },
    /// `{ reconnects = N }`: once the client has reconnected N times.
    Reconnects { reconnects: u64 },
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume_in_flight: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unacked_over: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    side: Option<Side>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reconnects: Option<u64>,
}

impl TryFrom<TriggerRepr> for Trigger {
    type Error = String;

    fn try_from(r: TriggerRepr) -> Result<Self, Self::Error> {
        let kinds = [
            r.acks.is_some(),
            r.resume_in_flight.is_some(),
            r.unacked_over.is_some(),
            r.reconnects.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(
                "`after` takes exactly one of `acks`, `resume_in_flight`, `unacked_over`, `reconnects`"
                    .into(),
            );
        }
        if r.direction.is_some() && r.acks.is_none() {
            return Err("`after.direction` goes only with `after.acks`".into());
        }
        if r.side.is_some() && r.unacked_over.is_none() {
            return Err("`after.side` goes only with `after.unacked_over`".into());
        }
        if let Some(acks) = r.acks {
            return Ok(Trigger::Acks { acks, direction: r.direction });
        }
        if let Some(flag) = r.resume_in_flight {
            return if flag {
                Ok(Trigger::ResumeInFlight)
            } else {
                Err("`after.resume_in_flight` must be true (leave `after` out for no trigger)".into())
            };
        }
        if let Some(unacked_over) = r.unacked_over {
            let side = r.side.ok_or("`after.unacked_over` needs `after.side` (client or agent)")?;
            return Ok(Trigger::UnackedOver { unacked_over, side });
        }
        match r.reconnects {
            Some(reconnects) => Ok(Trigger::Reconnects { reconnects }),
            None => Err("`after` is empty".into()),
        }
    }
}

impl From<Trigger> for TriggerRepr {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Acks { acks, direction } => {
                TriggerRepr { acks: Some(acks), direction, ..Default::default() }
            }
            Trigger::ResumeInFlight => TriggerRepr { resume_in_flight: Some(true), ..Default::default() },
            Trigger::UnackedOver { unacked_over, side } => {
                TriggerRepr { unacked_over: Some(unacked_over), side: Some(side), ..Default::default() }
            }
            Trigger::Reconnects { reconnects } => {
                TriggerRepr { reconnects: Some(reconnects), ..Default::default() }
            }
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Which frames a rule applies to. Every criterion is optional and all given ones must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrameMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Exact MessageType after the reference trimming, e.g. `"output_stream_data"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<u32>,
    /// Header SequenceNumber, `3` or `[3, 7]` (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<SeqRange>,
    /// Only `acknowledge` frames.
    #[serde(skip_serializing_if = "is_false")]
    pub acks_only: bool,
    /// Only acknowledge frames whose AcknowledgedMessageSequenceNumber is in this range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_seq: Option<SeqRange>,
    /// Only frames whose (direction, message_type, seq) was already seen: retransmissions. For
    /// acks the acknowledged sequence number stands in for seq (re-acknowledgements).
    #[serde(skip_serializing_if = "is_false")]
    pub retransmissions_only: bool,
    /// Only the first copy of each (direction, message_type, seq).
    #[serde(skip_serializing_if = "is_false")]
    pub first_copies_only: bool,
    /// 1-based: start at the Nth frame that meets every other criterion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// Affect at most this many frames (default 1 with `nth`, unlimited without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Virtual-time window `from_ms <= now < until_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Event trigger that arms the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Trigger>,
}

impl FrameMatch {
    /// Whether the rule looks inside the frame (and so cannot match bytes that fail to decode).
    pub fn needs_content(&self) -> bool {
        self.message_type.is_some()
            || self.payload_type.is_some()
            || self.seq.is_some()
            || self.acks_only
            || self.acked_seq.is_some()
            || self.retransmissions_only
            || self.first_copies_only
    }

    /// The most frames the rule can affect, `None` for unlimited.
    pub fn effective_count(&self) -> Option<u64> {
        match (self.count, self.nth) {
            (Some(c), _) => Some(c),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        }
    }
}

/// Default for [`FrameAction::Reorder::max_hold_ms`].
pub const DEFAULT_MAX_HOLD_MS: u64 = 1_000;

fn default_max_hold_ms() -> u64 {
    DEFAULT_MAX_HOLD_MS
}

/// What happens to a matched frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FrameAction {
    /// Deliver unchanged (and shield the frame from later rules).
    Pass {},
    /// Deliver after `delay_ms`.
    Delay { delay_ms: u64 },
    /// Discard the frame.
    Drop {},
    /// Deliver the frame and `copies` extra copies right after it.
    Duplicate { copies: u32 },
    /// Hold the frame until `window` more frames in the same direction have arrived, then
    /// deliver it right after the last of them; release it after `max_hold_ms` at the latest.
    Reorder {
        window: u32,
        #[serde(default = "default_max_hold_ms")]
        max_hold_ms: u64,
    },
    /// Deliver the frame with one field broken.
    Corrupt { field: Corruption },
    /// Truncate the websocket message to its first `len` bytes.
    Truncate { len: usize },
    /// Send a service frame towards the matched frame's destination just before it.
    Inject { frame: InjectFrame },
    /// Close a websocket with a close code instead of delivering the frame.
    Close { side: Side, code: u16 },
    /// Reset a TCP connection abruptly instead of delivering the frame.
    Reset { side: Side },
    /// Deliver the frame, then reset the destination's connection before it can answer: what
    /// the receiver writes in reply (its ack) is lost with the connection.
    ResetAfterDelivery {},
    /// Discard everything in `direction` (default: the matched frame's) for `for_ms`, starting
    /// with the matched frame if it travels that way.
    BlackHole {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direction: Option<Direction>,
        for_ms: u64,
    },
}

impl FrameAction {
    pub fn name(&self) -> &'static str {
        match self {
            FrameAction::Pass {} => "pass",
            FrameAction::Delay { .. } => "delay",
            FrameAction::Drop {} => "drop",
            FrameAction::Duplicate { .. } => "duplicate",
            FrameAction::Reorder { .. } => "reorder",
            FrameAction::Corrupt { .. } => "corrupt",
            FrameAction::Truncate { .. } => "truncate",
            FrameAction::Inject { .. } => "inject",
            FrameAction::Close { .. } => "close",
            FrameAction::Reset { .. } => "reset",
            FrameAction::ResetAfterDelivery { .. } => "reset_after_delivery",
            FrameAction::BlackHole { .. } => "black_hole",
        }
    }
}

/// Which part of a frame [`FrameAction::Corrupt`] breaks. Header fields are rewritten in place
/// (the digest covers only the payload, so it stays valid unless the payload is touched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Corruption {
    /// Invert every bit of PayloadDigest.
    Digest {},
    /// Write `value` into HeaderLength.
    HeaderLength { value: u32 },
    /// Write `value` into PayloadLength.
    PayloadLength { value: u32 },
    /// Write `value` into Flags.
    Flags { value: u64 },
    /// Write `value` into SequenceNumber.
    SequenceNumber { value: i64 },
    /// Replace MessageId with seeded random bytes.
    MessageId {},
    /// Rewrite the MessageType padding with NUL bytes instead of spaces.
    TypeNulPadding {},
    /// Rewrite MessageType as `value` (at most 32 bytes), padded with spaces: a type the
    /// receiver does not know, or one of another channel.
    MessageType { value: String },
    /// Invert the bits of payload byte `offset`, keeping the old digest so it mismatches.
    PayloadByte { offset: usize },
}

impl Corruption {
    pub fn name(&self) -> &'static str {
        match self {
            Corruption::Digest {} => "digest",
            Corruption::HeaderLength { .. } => "header_length",
            Corruption::PayloadLength { .. } => "payload_length",
            Corruption::Flags { .. } => "flags",
            Corruption::SequenceNumber { .. } => "sequence_number",
            Corruption::MessageId {} => "message_id",
            Corruption::TypeNulPadding {} => "type_nul_padding",
            Corruption::MessageType { .. } => "message_type",
            Corruption::PayloadByte { .. } => "payload_byte",
        }
    }
}

/// A service frame the engine can forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InjectFrame {
    PausePublication {},
    StartPublication {},
    /// `channel_closed` whose JSON `Output` is `output`.
    ChannelClosed {
        #[serde(default)]
        output: String,
    },
}

impl InjectFrame {
    pub fn message_type(&self) -> ssm_wire::MessageType {
        match self {
            InjectFrame::PausePublication {} => ssm_wire::MessageType::PausePublication,
            InjectFrame::StartPublication {} => ssm_wire::MessageType::StartPublication,
            InjectFrame::ChannelClosed { .. } => ssm_wire::MessageType::ChannelClosed,
        }
    }
}

/// One frame rule: `when` it matches, `action` happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub when: FrameMatch,
    pub action: FrameAction,
}

/// A connection event at a fixed virtual time, needing no frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub at_ms: u64,
    pub action: TimedAction,
}

/// What a [`TimedFault`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimedAction {
    Close {
        side: Side,
        code: u16,
    },
    Reset {
        side: Side,
    },
    BlackHole {
        direction: Direction,
        for_ms: u64,
    },
    Inject {
        direction: Direction,
        frame: InjectFrame,
    },
    /// Both directions black-holed for `for_ms`.
    Partition {
        for_ms: u64,
    },
}

/// A control-plane operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiOp {
    ResumeSession,
    TerminateSession,
    CreateDataChannel,
    StartSession,
}

impl ApiOp {
    pub fn name(self) -> &'static str {
        match self {
            ApiOp::ResumeSession => "resume_session",
            ApiOp::TerminateSession => "terminate_session",
            ApiOp::CreateDataChannel => "create_data_channel",
            ApiOp::StartSession => "start_session",
        }
    }

    /// Whether the answer carries a token (so `null_token` makes sense).
    pub fn returns_token(self) -> bool {
        !matches!(self, ApiOp::TerminateSession)
    }

    /// Whether the answer carries a StreamUrl (so `rotate_stream_url` makes sense).
    pub fn returns_stream_url(self) -> bool {
        matches!(self, ApiOp::ResumeSession | ApiOp::StartSession)
    }

    /// The operation a data-channel machine asks its driver for.
    pub fn of_call(call: &ssm_channel::ApiCall) -> ApiOp {
        match call {
            ssm_channel::ApiCall::ResumeSession { .. } => ApiOp::ResumeSession,
            ssm_channel::ApiCall::TerminateSession { .. } => ApiOp::TerminateSession,
            ssm_channel::ApiCall::CreateDataChannel { .. } => ApiOp::CreateDataChannel,
        }
    }
}

impl std::fmt::Display for ApiOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A control-plane error the engine makes an operation return (protocol reference 7.1, 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorKind {
    /// HTTP 500 `InternalServerError`.
    Internal,
    /// HTTP 400 `ThrottlingException`.
    Throttled,
    /// HTTP 403: expired credentials.
    AccessDenied,
    /// HTTP 400 `DoesNotExistException`.
    DoesNotExist,
}

impl ApiErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ApiErrorKind::Internal => 500,
            ApiErrorKind::Throttled | ApiErrorKind::DoesNotExist => 400,
            ApiErrorKind::AccessDenied => 403,
        }
    }

    /// The awsJson `__type` code.
    pub fn code(self) -> &'static str {
        match self {
            ApiErrorKind::Internal => "InternalServerError",
            ApiErrorKind::Throttled => "ThrottlingException",
            ApiErrorKind::AccessDenied => "AccessDeniedException",
            ApiErrorKind::DoesNotExist => "DoesNotExistException",
        }
    }

    /// The awsJson `message`.
    pub fn message(self) -> &'static str {
        match self {
            ApiErrorKind::Internal => "An internal error occurred.",
            ApiErrorKind::Throttled => "Rate exceeded",
            ApiErrorKind::AccessDenied => "The security token included in the request is expired",
            ApiErrorKind::DoesNotExist => "Session does not exist.",
        }
    }

    /// How a data-channel machine sees the error.
    pub fn to_channel(self) -> ssm_channel::ApiError {
        match self {
            ApiErrorKind::Internal => ssm_channel::ApiError::Internal,
            ApiErrorKind::Throttled => ssm_channel::ApiError::Throttled,
            ApiErrorKind::AccessDenied => ssm_channel::ApiError::AccessDenied,
            ApiErrorKind::DoesNotExist => ssm_channel::ApiError::DoesNotExist,
        }
    }
}

/// What a matching [`ApiRule`] does to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApiAction {
    Error {
        error: ApiErrorKind,
    },
    Latency {
        delay_ms: u64,
    },
    /// ResumeSession (or another token-bearing call) answers without TokenValue.
    NullToken {},
    /// The answer carries a new StreamUrl.
    RotateStreamUrl {},
}

/// A control-plane fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub op: ApiOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    pub action: ApiAction,
}

impl ApiRule {
    /// The most calls the rule can affect, `None` for unlimited.
    pub fn effective_count(&self) -> Option<u64> {
        match (self.count, self.nth) {
            (Some(c), _) => Some(c),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        }
    }
}

/// Every fault of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultPlan {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<FrameRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timed: Vec<TimedFault>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<ApiRule>,
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.timed.is_empty() && self.api.is_empty()
    }
}

/// Names a rule in a plan: its list and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "list", content = "index", rename_all = "snake_case")]
pub enum RuleId {
    Frame(usize),
    Timed(usize),
    Api(usize),
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleId::Frame(i) => write!(f, "frames[{i}]"),
            RuleId::Timed(i) => write!(f, "timed[{i}]"),
            RuleId::Api(i) => write!(f, "api[{i}]"),
        }
    }
}
