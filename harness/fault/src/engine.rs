//! The engine: applies a [`FaultPlan`] to frames, time and control-plane calls.

use std::collections::BTreeSet;

use serde::Serialize;
use ssm_channel::rng::Rng;
use ssm_wire::layout::{self, HEADER_SIZE};
use ssm_wire::payload::{self, Payload};
use ssm_wire::{Frame, MessageType, Overrides};

use crate::check::{PlanError, MAX_COPIES};
use crate::model::{
    ApiAction, ApiErrorKind, ApiOp, Corruption, Direction, FaultPlan, FrameAction, FrameMatch, InjectFrame,
    RuleId, Side, TimedAction, Trigger,
};

/// Unix epoch milliseconds at virtual time 0, for the CreatedDate of injected frames (the same
/// default as the data-channel machines).
pub const DEFAULT_EPOCH_MS: u64 = 1_700_000_000_000;

/// Facts about the world the engine cannot see in the frames; supplied by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// A ResumeSession call is in flight.
    pub resume_in_flight: bool,
    /// How many times the client has reconnected so far.
    pub client_reconnects: u64,
    /// Unacknowledged outgoing messages of the client (`[0]`) and the agent (`[1]`).
    pub unacked: [usize; 2],
}

/// One thing the driver must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Write `bytes` (possibly modified) in `direction` after `delay_ms`. `fault` names the rule
    /// that shaped the delivery, `None` for an untouched frame.
    Deliver {
        direction: Direction,
        #[serde(skip)]
        bytes: Vec<u8>,
        delay_ms: u64,
        fault: Option<RuleId>,
    },
    /// The frame was discarded.
    Dropped { direction: Direction, rule: RuleId },
    /// The frame is held by a reorder rule; it comes back as a `Deliver` later (from
    /// [`FaultEngine::on_frame`] or, by `until_ms` at the latest, [`FaultEngine::poll`]).
    Held { direction: Direction, rule: RuleId, until_ms: u64 },
    /// Write this forged service frame in `direction` now.
    Inject {
        direction: Direction,
        #[serde(skip)]
        bytes: Vec<u8>,
        rule: RuleId,
    },
    /// Close that side's websocket with a close frame carrying `code` (1006: drop the TCP
    /// connection without a close frame).
    Close { side: Side, code: u16, rule: RuleId },
    /// Reset that side's TCP connection.
    Reset { side: Side, rule: RuleId },
    /// Reset that side's TCP connection right after the frame just delivered to it has been
    /// processed, before anything it writes in reply reaches the wire.
    ResetAfterDelivery { side: Side, rule: RuleId },
}

/// What to do with one control-plane call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", content = "value", rename_all = "snake_case")]
pub enum ApiEffect {
    /// Answer normally.
    Normal,
    /// Answer with this error.
    Error(ApiErrorKind),
    /// Wait this many milliseconds, then answer normally.
    Delay(u64),
    /// Answer without TokenValue.
    NullToken,
    /// Answer normally but with a new StreamUrl.
    RotateStreamUrl,
}

/// One rule firing, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firing {
    pub rule: RuleId,
    pub at_ms: u64,
    /// What the rule did, e.g. `drop output_stream_data seq 3 to_client`.
    pub what: String,
}

/// Per-rule counters.
#[derive(Debug, Clone, Copy, Default)]
struct RuleState {
    /// Frames (calls) that met every criterion so far.
    matched: u64,
    /// A latching trigger has fired.
    armed: bool,
}

#[derive(Debug, Clone)]
struct HeldFrame {
    direction: Direction,
    bytes: Vec<u8>,
    rule: RuleId,
    /// Frames still to arrive in `direction` before release.
    remaining: u32,
    release_at: u64,
}

/// What the engine could read from a frame.
#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    message_type: MessageType,
    payload_type: u32,
    seq: i64,
    acked_seq: Option<i64>,
    payload_start: usize,
}

impl FrameInfo {
    fn read(bytes: &[u8]) -> Option<FrameInfo> {
        let w = ssm_wire::decode(bytes).ok()?;
        let acked_seq = match Payload::parse(&w.message_type, w.payload_type, w.payload) {
            Ok(Some(Payload::Acknowledge(a))) => Some(a.sequence_number),
            _ => None,
        };
        Some(FrameInfo {
            message_type: w.message_type,
            payload_type: w.payload_type.0,
            seq: w.sequence_number,
            acked_seq,
            payload_start: bytes.len() - w.payload.len(),
        })
    }

    /// The identity used to tell first copies from retransmissions: for acks the acknowledged
    /// number stands in for the (always 0) header sequence number.
    fn key(&self, dir: Direction) -> (Direction, MessageType, i64) {
        let seq = match self.message_type {
            MessageType::Acknowledge => self.acked_seq.unwrap_or(self.seq),
            _ => self.seq,
        };
        (dir, self.message_type, seq)
    }

    fn is_ack(&self) -> bool {
        self.message_type == MessageType::Acknowledge
    }
}

fn describe(dir: Direction, bytes: &[u8], info: Option<&FrameInfo>) -> String {
    match info {
        Some(i) if i.is_ack() => match i.acked_seq {
            Some(a) => format!("acknowledge of seq {a} {dir}"),
            None => format!("acknowledge (unreadable) {dir}"),
        },
        Some(i) => format!("{} seq {} {dir}", i.message_type, i.seq),
        None => format!("undecodable {}-byte message {dir}", bytes.len()),
    }
}

/// Applies a [`FaultPlan`]. Pure: time comes in as milliseconds of virtual time, randomness
/// from the seed; the same plan, seed and inputs give the same outputs.
#[derive(Debug, Clone)]
pub struct FaultEngine {
    plan: FaultPlan,
    rng: Rng,
    epoch_ms: u64,
    session_id: String,
    destination_id: String,
    frame_state: Vec<RuleState>,
    api_state: Vec<RuleState>,
    timed_done: Vec<bool>,
    held: Vec<HeldFrame>,
    /// Per direction: black-holed until (exclusive), and by which rule.
    black_hole: [Option<(u64, RuleId)>; 2],
    acks: [u64; 2],
    seen: BTreeSet<(Direction, MessageType, i64)>,
    fired: Vec<Firing>,
}

impl FaultEngine {
    /// An engine for `plan`. The plan is not validated (see [`FaultEngine::checked`]); values a
    /// check would refuse are handled without panicking (for example `copies` is capped at 16).
    pub fn new(plan: FaultPlan, seed: u64) -> Self {
        FaultEngine {
            frame_state: vec![RuleState::default(); plan.frames.len()],
            api_state: vec![RuleState::default(); plan.api.len()],
            timed_done: vec![false; plan.timed.len()],
            plan,
            rng: Rng::new(seed ^ 0xFA17_5EED_0000_0000),
            epoch_ms: DEFAULT_EPOCH_MS,
            session_id: "harness-0123456789abcdef0".to_owned(),
            destination_id: "i-0123456789abcdef0".to_owned(),
            held: Vec::new(),
            black_hole: [None; 2],
            acks: [0; 2],
            seen: BTreeSet::new(),
            fired: Vec::new(),
        }
    }

    /// [`FaultEngine::new`] after [`FaultPlan::check`].
    pub fn checked(plan: FaultPlan, seed: u64) -> Result<Self, PlanError> {
        plan.check()?;
        Ok(Self::new(plan, seed))
    }

    /// Sets the Unix epoch milliseconds at virtual time 0 (CreatedDate of injected frames).
    pub fn with_epoch_ms(mut self, epoch_ms: u64) -> Self {
        self.epoch_ms = epoch_ms;
        self
    }

    /// Sets the SessionId and DestinationId written into injected `channel_closed` frames.
    pub fn with_session(mut self, session_id: impl Into<String>, destination_id: impl Into<String>) -> Self {
        self.session_id = session_id.into();
        self.destination_id = destination_id.into();
        self
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Every rule firing so far, in order.
    pub fn fired(&self) -> &[Firing] {
        &self.fired
    }

    /// Frames currently held by reorder rules.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn fire(&mut self, rule: RuleId, at_ms: u64, what: String) {
        self.fired.push(Firing { rule, at_ms, what });
    }

    /// Whether everything travelling in `dir` at `now` is silently discarded.
    pub fn is_black_holed(&self, now: u64, dir: Direction) -> bool {
        self.black_hole_rule(now, dir).is_some()
    }

    fn black_hole_rule(&self, now: u64, dir: Direction) -> Option<RuleId> {
        if let Some((until, rule)) = self.black_hole[dir.index()] {
            if now < until {
                return Some(rule);
            }
        }
        // A timed black hole that is due but not yet polled still counts.
        self.plan.timed.iter().enumerate().find_map(|(i, t)| {
            let (d, for_ms) = match t.action {
                TimedAction::BlackHole { direction, for_ms } => (Some(direction), for_ms),
                TimedAction::Partition { for_ms } => (None, for_ms),
                _ => return None,
            };
            let due = !self.timed_done[i] && t.at_ms <= now && now < t.at_ms.saturating_add(for_ms);
            (due && d.is_none_or(|d| d == dir)).then_some(RuleId::Timed(i))
        })
    }

    fn start_black_hole(&mut self, dir: Direction, from: u64, for_ms: u64, rule: RuleId) {
        let until = from.saturating_add(for_ms);
        let slot = &mut self.black_hole[dir.index()];
        match slot {
            Some((u, _)) if *u >= until => {}
            _ => *slot = Some((until, rule)),
        }
    }

    /// The next time [`FaultEngine::poll`] has something to do: a timed fault or the hold limit
    /// of a reordered frame. Black holes end by themselves and need no poll.
    pub fn next_deadline(&self) -> Option<u64> {
        let timed = self.plan.timed.iter().zip(&self.timed_done).filter(|(_, d)| !**d).map(|(t, _)| t.at_ms);
        let held = self.held.iter().map(|h| h.release_at);
        timed.chain(held).min()
    }

    /// Fires due timed faults and releases held frames whose hold limit has passed, in time
    /// order.
    pub fn poll(&mut self, now: u64) -> Vec<Effect> {
        // (time, 0 = timed / 1 = held, index); held indices stay valid because releases are
        // collected first and removed afterwards.
        let mut due: Vec<(u64, u8, usize)> = Vec::new();
        for (i, t) in self.plan.timed.iter().enumerate() {
            if !self.timed_done[i] && t.at_ms <= now {
                due.push((t.at_ms, 0, i));
            }
        }
        for (i, h) in self.held.iter().enumerate() {
            if h.release_at <= now {
                due.push((h.release_at, 1, i));
            }
        }
        due.sort_unstable();
        let mut out = Vec::new();
        let mut released = Vec::new();
        for (at, kind, i) in due {
            if kind == 0 {
                self.timed_done[i] = true;
                self.fire_timed(at, i, &mut out);
            } else {
                released.push(i);
                let h = self.held[i].clone();
                self.release(at, h, "hold limit", &mut out);
            }
        }
        released.sort_unstable();
        for i in released.into_iter().rev() {
            self.held.remove(i);
        }
        out
    }

    fn release(&mut self, now: u64, h: HeldFrame, why: &str, out: &mut Vec<Effect>) {
        let what = format!(
            "reorder: release {} after {why}",
            describe(h.direction, &h.bytes, FrameInfo::read(&h.bytes).as_ref())
        );
        self.fire(h.rule, now, what);
        match self.black_hole_rule(now, h.direction) {
            Some(rule) => {
                self.fire(rule, now, format!("black hole: drop released frame {}", h.direction));
                out.push(Effect::Dropped { direction: h.direction, rule });
            }
            None => out.push(Effect::Deliver {
                direction: h.direction,
                bytes: h.bytes,
                delay_ms: 0,
                fault: Some(h.rule),
            }),
        }
    }

    fn fire_timed(&mut self, at: u64, i: usize, out: &mut Vec<Effect>) {
        let rule = RuleId::Timed(i);
        let Some(t) = self.plan.timed.get(i) else { return };
        match t.action.clone() {
            TimedAction::Close { side, code } => {
                self.fire(rule, at, format!("close {side} websocket with code {code}"));
                out.push(Effect::Close { side, code, rule });
            }
            TimedAction::Reset { side } => {
                self.fire(rule, at, format!("reset {side} connection"));
                out.push(Effect::Reset { side, rule });
            }
            TimedAction::BlackHole { direction, for_ms } => {
                self.fire(rule, at, format!("black hole {direction} for {for_ms} ms"));
                self.start_black_hole(direction, at, for_ms, rule);
            }
            TimedAction::Partition { for_ms } => {
                self.fire(rule, at, format!("partition for {for_ms} ms"));
                for d in Direction::BOTH {
                    self.start_black_hole(d, at, for_ms, rule);
                }
            }
            TimedAction::Inject { direction, frame } => {
                let bytes = self.service_frame(at, &frame);
                self.fire(rule, at, format!("inject {} {direction}", frame.message_type()));
                out.push(Effect::Inject { direction, bytes, rule });
            }
        }
    }

    /// Latches the triggers that depend on the driver's context.
    fn observe(&mut self, ctx: &Context) {
        for (r, s) in self.plan.frames.iter().zip(self.frame_state.iter_mut()) {
            match r.when.after {
                Some(Trigger::UnackedOver { unacked_over, side })
                    if ctx.unacked[side.index()] > unacked_over =>
                {
                    s.armed = true;
                }
                Some(Trigger::Reconnects { reconnects }) if ctx.client_reconnects >= reconnects => {
                    s.armed = true
                }
                _ => {}
            }
        }
    }

    fn criteria_hold(
        m: &FrameMatch,
        armed: bool,
        now: u64,
        dir: Direction,
        info: Option<&FrameInfo>,
        repeat: bool,
        ctx: &Context,
    ) -> bool {
        if m.direction.is_some_and(|d| d != dir)
            || m.from_ms.is_some_and(|f| now < f)
            || m.until_ms.is_some_and(|u| now >= u)
        {
            return false;
        }
        let armed = match m.after {
            None => true,
            Some(Trigger::ResumeInFlight) => ctx.resume_in_flight,
            Some(_) => armed,
        };
        if !armed {
            return false;
        }
        if !m.needs_content() {
            return true;
        }
        let Some(i) = info else { return false };
        m.message_type.as_deref().is_none_or(|t| i.message_type.as_bytes() == t.as_bytes())
            && m.payload_type.is_none_or(|p| p == i.payload_type)
            && m.seq.is_none_or(|r| r.contains(i.seq))
            && (!m.acks_only || i.is_ack())
            && m.acked_seq.is_none_or(|r| i.is_ack() && i.acked_seq.is_some_and(|a| r.contains(a)))
            && (!m.retransmissions_only || repeat)
            && (!m.first_copies_only || !repeat)
    }

    /// Decides what happens to one frame read from `dir.source()`. Due timed faults and expired
    /// holds come first in the result (as [`FaultEngine::poll`] would give them).
    pub fn on_frame(&mut self, now: u64, dir: Direction, bytes: &[u8], ctx: &Context) -> Vec<Effect> {
        let mut out = self.poll(now);
        self.observe(ctx);
        let info = FrameInfo::read(bytes);
        let repeat = info.as_ref().is_some_and(|i| self.seen.contains(&i.key(dir)));
        let mut new_hold = None;

        if let Some(rule) = self.black_hole_rule(now, dir) {
            self.fire(rule, now, format!("black hole: drop {}", describe(dir, bytes, info.as_ref())));
            out.push(Effect::Dropped { direction: dir, rule });
        } else {
            // Every rule counts the frames meeting its criteria; the first one whose nth/count
            // window covers this frame wins.
            let mut winner = None;
            for (idx, (r, s)) in self.plan.frames.iter().zip(self.frame_state.iter_mut()).enumerate() {
                if !Self::criteria_hold(&r.when, s.armed, now, dir, info.as_ref(), repeat, ctx) {
                    continue;
                }
                s.matched = s.matched.saturating_add(1);
                let first = r.when.nth.unwrap_or(1).max(1);
                let in_window =
                    s.matched >= first && r.when.effective_count().is_none_or(|c| s.matched - first < c);
                if in_window && winner.is_none() {
                    winner = Some(idx);
                }
            }
            match winner {
                Some(idx) => new_hold = self.apply(now, dir, bytes, info.as_ref(), idx, &mut out),
                None => out.push(Effect::Deliver {
                    direction: dir,
                    bytes: bytes.to_vec(),
                    delay_ms: 0,
                    fault: None,
                }),
            }
        }

        // Frames already held in this direction have seen one more frame pass.
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].direction == dir {
                self.held[i].remaining = self.held[i].remaining.saturating_sub(1);
                if self.held[i].remaining == 0 {
                    let h = self.held.remove(i);
                    self.release(now, h, "window", &mut out);
                    continue;
                }
            }
            i += 1;
        }
        if let Some(h) = new_hold {
            self.held.push(h);
        }

        if let Some(i) = &info {
            self.seen.insert(i.key(dir));
            if i.is_ack() {
                self.acks[dir.index()] += 1;
                let acks = self.acks;
                for (r, s) in self.plan.frames.iter().zip(self.frame_state.iter_mut()) {
                    if let Some(Trigger::Acks { acks: n, direction }) = r.when.after {
                        let seen = match direction {
                            Some(d) => acks[d.index()],
                            None => acks[0] + acks[1],
                        };
                        if seen >= n {
                            s.armed = true;
                        }
                    }
                }
            }
        }
        out
    }

    /// Applies frame rule `idx` to a frame; returns a frame to hold, if any.
    fn apply(
        &mut self,
        now: u64,
        dir: Direction,
        bytes: &[u8],
        info: Option<&FrameInfo>,
        idx: usize,
        out: &mut Vec<Effect>,
    ) -> Option<HeldFrame> {
        let rule = RuleId::Frame(idx);
        let action = self.plan.frames.get(idx)?.action.clone();
        let frame = describe(dir, bytes, info);
        let deliver = |bytes: Vec<u8>, delay_ms: u64| Effect::Deliver {
            direction: dir,
            bytes,
            delay_ms,
            fault: Some(rule),
        };
        match action {
            FrameAction::Pass {} => {
                self.fire(rule, now, format!("pass {frame}"));
                out.push(deliver(bytes.to_vec(), 0));
            }
            FrameAction::Delay { delay_ms } => {
                self.fire(rule, now, format!("delay {frame} by {delay_ms} ms"));
                out.push(deliver(bytes.to_vec(), delay_ms));
            }
            FrameAction::Drop {} => {
                self.fire(rule, now, format!("drop {frame}"));
                out.push(Effect::Dropped { direction: dir, rule });
            }
            FrameAction::Duplicate { copies } => {
                let copies = copies.min(MAX_COPIES);
                self.fire(rule, now, format!("duplicate {frame}: {copies} extra copies"));
                for _ in 0..=copies {
                    out.push(deliver(bytes.to_vec(), 0));
                }
            }
            FrameAction::Reorder { window, max_hold_ms } => {
                let until_ms = now.saturating_add(max_hold_ms);
                self.fire(
                    rule,
                    now,
                    format!("reorder: hold {frame} for {window} frames or until {until_ms} ms"),
                );
                out.push(Effect::Held { direction: dir, rule, until_ms });
                return Some(HeldFrame {
                    direction: dir,
                    bytes: bytes.to_vec(),
                    rule,
                    remaining: window.max(1),
                    release_at: until_ms,
                });
            }
            FrameAction::Corrupt { field } => {
                let (b, done) = self.corrupt(bytes, info, &field);
                let note = if done { "" } else { " (field beyond the message: unchanged)" };
                self.fire(rule, now, format!("corrupt {} of {frame}{note}", field.name()));
                out.push(deliver(b, 0));
            }
            FrameAction::Truncate { len } => {
                let keep = len.min(bytes.len());
                self.fire(rule, now, format!("truncate {frame} from {} to {keep} bytes", bytes.len()));
                out.push(deliver(bytes[..keep].to_vec(), 0));
            }
            FrameAction::Inject { frame: f } => {
                let injected = self.service_frame(now, &f);
                self.fire(rule, now, format!("inject {} {dir} before {frame}", f.message_type()));
                out.push(Effect::Inject { direction: dir, bytes: injected, rule });
                out.push(deliver(bytes.to_vec(), 0));
            }
            FrameAction::Close { side, code } => {
                self.fire(rule, now, format!("close {side} websocket with code {code} instead of {frame}"));
                out.push(Effect::Close { side, code, rule });
            }
            FrameAction::Reset { side } => {
                self.fire(rule, now, format!("reset {side} connection instead of {frame}"));
                out.push(Effect::Reset { side, rule });
            }
            FrameAction::ResetAfterDelivery {} => {
                let side = dir.destination();
                self.fire(rule, now, format!("deliver {frame}, then reset the {side} connection"));
                out.push(deliver(bytes.to_vec(), 0));
                out.push(Effect::ResetAfterDelivery { side, rule });
            }
            FrameAction::BlackHole { direction, for_ms } => {
                let d = direction.unwrap_or(dir);
                self.fire(rule, now, format!("black hole {d} for {for_ms} ms at {frame}"));
                self.start_black_hole(d, now, for_ms, rule);
                if self.is_black_holed(now, dir) && d == dir {
                    out.push(Effect::Dropped { direction: dir, rule });
                } else {
                    out.push(deliver(bytes.to_vec(), 0));
                }
            }
        }
        None
    }

    /// The corrupted bytes and whether the field lay inside the message.
    fn corrupt(&mut self, bytes: &[u8], info: Option<&FrameInfo>, field: &Corruption) -> (Vec<u8>, bool) {
        let mut b = bytes.to_vec();
        let put = |b: &mut Vec<u8>, range: std::ops::Range<usize>, value: &[u8]| -> bool {
            match b.get_mut(range) {
                Some(slot) => {
                    slot.copy_from_slice(value);
                    true
                }
                None => false,
            }
        };
        let done = match field {
            Corruption::Digest {} => match b.get_mut(layout::PAYLOAD_DIGEST) {
                Some(d) => {
                    d.iter_mut().for_each(|x| *x = !*x);
                    true
                }
                None => false,
            },
            Corruption::HeaderLength { value } => put(&mut b, layout::HEADER_LENGTH, &value.to_be_bytes()),
            Corruption::PayloadLength { value } => put(&mut b, layout::PAYLOAD_LENGTH, &value.to_be_bytes()),
            Corruption::Flags { value } => put(&mut b, layout::FLAGS, &value.to_be_bytes()),
            Corruption::SequenceNumber { value } => {
                put(&mut b, layout::SEQUENCE_NUMBER, &value.to_be_bytes())
            }
            Corruption::MessageId {} => {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
                id[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
                if bytes.get(layout::MESSAGE_ID) == Some(&id[..]) {
                    id[0] ^= 0xFF;
                }
                put(&mut b, layout::MESSAGE_ID, &id)
            }
            Corruption::TypeNulPadding {} => match b.get_mut(layout::MESSAGE_TYPE) {
                Some(t) => {
                    let end = t.iter().rposition(|c| *c != b' ' && *c != 0).map_or(0, |p| p + 1);
                    t[end..].iter_mut().for_each(|c| *c = 0);
                    true
                }
                None => false,
            },
            Corruption::MessageType { value } => {
                let mut field = [b' '; 32];
                let v = value.as_bytes();
                let n = v.len().min(32);
                field[..n].copy_from_slice(&v[..n]);
                put(&mut b, layout::MESSAGE_TYPE, &field)
            }
            Corruption::PayloadByte { offset } => {
                let start = info.map_or(HEADER_SIZE, |i| i.payload_start);
                match start.checked_add(*offset).and_then(|at| b.get_mut(at)) {
                    Some(x) => {
                        *x = !*x;
                        true
                    }
                    None => false,
                }
            }
        };
        (b, done)
    }

    /// A service frame as MGS would send it, with a seeded MessageId and CreatedDate from `now`.
    fn service_frame(&mut self, now: u64, f: &InjectFrame) -> Vec<u8> {
        let message_id = self.rng.uuid_v4();
        let created_date_ms = self.epoch_ms.saturating_add(now);
        let payload = match f {
            InjectFrame::PausePublication {} | InjectFrame::StartPublication {} => Vec::new(),
            InjectFrame::ChannelClosed { output } => payload::to_go_json(&payload::ChannelClosed::new(
                message_id,
                created_date_ms,
                &self.destination_id,
                &self.session_id,
                output,
            )),
        };
        Frame::service(f.message_type(), created_date_ms, message_id, payload)
            .encode_with(&Overrides::default())
    }

    /// Decides what happens to one control-plane call. Every rule counts the calls meeting its
    /// criteria; the first whose nth/count window covers this call wins.
    pub fn on_api(&mut self, now: u64, op: ApiOp, ctx: &Context) -> ApiEffect {
        self.observe(ctx);
        let mut winner = None;
        for (idx, (r, s)) in self.plan.api.iter().zip(self.api_state.iter_mut()).enumerate() {
            if r.op != op || r.from_ms.is_some_and(|f| now < f) || r.until_ms.is_some_and(|u| now >= u) {
                continue;
            }
            s.matched = s.matched.saturating_add(1);
            let first = r.nth.unwrap_or(1).max(1);
            let in_window = s.matched >= first && r.effective_count().is_none_or(|c| s.matched - first < c);
            if in_window && winner.is_none() {
                winner = Some((idx, r.action.clone()));
            }
        }
        let Some((idx, action)) = winner else { return ApiEffect::Normal };
        let (effect, what) = match action {
            ApiAction::Error { error } => {
                (ApiEffect::Error(error), format!("{op}: {} {}", error.http_status(), error.code()))
            }
            ApiAction::Latency { delay_ms } => {
                (ApiEffect::Delay(delay_ms), format!("{op}: delay {delay_ms} ms"))
            }
            ApiAction::NullToken {} => (ApiEffect::NullToken, format!("{op}: answer without TokenValue")),
            ApiAction::RotateStreamUrl {} => (ApiEffect::RotateStreamUrl, format!("{op}: new StreamUrl")),
        };
        self.fire(RuleId::Api(idx), now, what);
        effect
    }
}
