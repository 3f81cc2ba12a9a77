//! One check per requirement, judged from the trace. A check passes, fails with a witness, or
//! says the run never exercised it.

use std::collections::{BTreeMap, BTreeSet};

use ssm_channel::kms::{self, Kms};
use ssm_channel::{Role, SessionKind};
use ssm_spec::Req;
use ssm_wire::payload::{
    AgentSessionState, EncChallenge, HandshakeRequest, HandshakeResponse, OpenDataChannel,
};
use ssm_wire::{MessageType, PayloadType};

use super::observe::{Frame, Observed, Side};
use crate::model::{Step, TerminateVia};
use crate::trace::MsgKind;

const MS: u64 = 1_000_000;
/// Resend tick.
const TICK: u64 = 100 * MS;
/// Maximum RTO.
const MAX_RTO: u64 = 1000 * MS;
/// Allowance for scheduling in the checks.
const SLACK: u64 = 20 * MS;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail {
        detail: String,
        at: Option<u64>,
    },
    /// The run never created the situation the requirement is about.
    NotExercised(String),
}

fn fail(detail: impl Into<String>, at: Option<u64>) -> Outcome {
    Outcome::Fail { detail: detail.into(), at }
}

fn pass(detail: impl Into<String>) -> Outcome {
    Outcome::Pass(detail.into())
}

fn not_ex(detail: impl Into<String>) -> Outcome {
    Outcome::NotExercised(detail.into())
}

fn ms(t: u64) -> String {
    format!("{}.{:03}s", t / 1_000_000_000, (t / MS) % 1000)
}

/// What the checks see.
#[derive(Debug)]
pub struct Cx<'a> {
    pub o: &'a Observed,
    pub sut: Role,
    pub session: &'a SessionKind,
    /// The scenario runs with KMS encryption (`kms_encryption`).
    pub kms: bool,
    /// Findings about frames the side under test wrote, from its own frames and from what the
    /// harness's peer reported (faulted deliveries excluded), by requirement.
    sender: BTreeMap<Req, (String, u64)>,
    /// Computed once: when the side under test's session ended.
    ended: Option<u64>,
    /// Acks the side under test wrote, by acknowledged sequence: (record index, time), in order.
    acks_by_seq: BTreeMap<i64, Vec<(usize, u64)>>,
    /// Connected intervals of the side under test and of its peer.
    conn: [Vec<(u64, u64)>; 2],
    /// Agent under test: paused intervals.
    paused_iv: Vec<(u64, u64)>,
}

impl<'a> Cx<'a> {
    pub fn new(o: &'a Observed, sut: Role, session: &'a SessionKind, kms: bool) -> Self {
        let me = o.side(sut);
        let mut acks_by_seq: BTreeMap<i64, Vec<(usize, u64)>> = BTreeMap::new();
        for (t, i, a) in me.acks_written_i() {
            acks_by_seq.entry(a.sequence_number).or_default().push((i, t));
        }
        let mut cx = Cx {
            o,
            sut,
            session,
            kms,
            sender: BTreeMap::new(),
            ended: me.ended().map(|e| e.0),
            acks_by_seq,
            conn: [me.connected_intervals(), o.side(sut.peer()).connected_intervals()],
            paused_iv: Vec::new(),
        };
        cx.paused_iv = cx.compute_paused_intervals();
        cx.collect_sender_findings();
        cx
    }

    fn s(&self) -> &Side {
        self.o.side(self.sut)
    }

    fn p(&self) -> &Side {
        self.o.side(self.sut.peer())
    }

    fn note(&mut self, req: Req, detail: String, t: u64) {
        self.sender.entry(req).or_insert((detail, t));
    }

    fn collect_sender_findings(&mut self) {
        let o = self.o;
        let me = o.side(self.sut);
        for f in &me.wrote {
            match &f.f {
                None => self.note(Req::Frame001, "wrote a binary message that is not a frame".into(), f.t),
                Some(d) => {
                    for (req, detail) in &d.violations {
                        // Receiver-side ids map to the sender requirement they imply.
                        let req = match req {
                            Req::Frame008 => Req::Frame007,
                            Req::Frame011 if detail.contains("HeaderLength") => Req::Frame002,
                            Req::Frame011 => Req::Frame007,
                            other => *other,
                        };
                        self.note(req, format!("{detail} (seq {})", d.seq), f.t);
                    }
                    if !(d.message_id.get_version_num() == 4
                        && d.message_id.get_variant() == uuid::Variant::RFC4122)
                    {
                        self.note(
                            Req::Frame006,
                            format!(
                                "MessageId {} read from the wire is not a version-4 UUID (halves not swapped?)",
                                d.message_id
                            ),
                            f.t,
                        );
                    }
                    if matches!(d.message_type, MessageType::Other(_)) {
                        self.note(
                            Req::Type001,
                            format!("unknown MessageType {:?}", d.message_type.name()),
                            f.t,
                        );
                    }
                }
            }
        }
        let peer = o.side(self.sut.peer());
        for e in peer.events_of("violation") {
            if e.from_fault {
                continue;
            }
            let Some(req) = e.v.get("req").and_then(|r| r.as_str()).and_then(|r| r.parse::<Req>().ok())
            else {
                continue;
            };
            let detail = e.v.get("detail").and_then(|d| d.as_str()).unwrap_or_default().to_owned();
            let req = match req {
                Req::Frame008 => Req::Frame007,
                Req::Frame010 => Req::Frame001,
                Req::Frame011 => Req::Frame002,
                other => other,
            };
            self.note(req, format!("the peer observed: {detail}"), e.t);
        }
        for (t, req, detail) in &me.service_saw {
            self.note(*req, format!("the service observed: {detail}"), *t);
        }
    }

    fn sender_check(&self, req: Req) -> Outcome {
        match self.sender.get(&req) {
            Some((d, t)) => fail(d.clone(), Some(*t)),
            None if self.s().wrote.is_empty() => not_ex("the side under test wrote no frames"),
            None => pass(format!("{} frames written, none breaks it", self.s().wrote.len())),
        }
    }

    /// Sequence numbers the side under test acknowledged, with the times.
    fn sut_acks(&self) -> BTreeMap<i64, Vec<u64>> {
        let mut m: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        for (t, a) in self.s().acks_written() {
            m.entry(a.sequence_number).or_default().push(t);
        }
        m
    }

    /// Acks the side under test received, by acknowledged sequence: first time.
    fn acks_to_sut(&self) -> BTreeMap<i64, u64> {
        let mut m = BTreeMap::new();
        for (t, a) in self.s().acks_delivered() {
            m.entry(a.sequence_number).or_insert(t);
        }
        m
    }

    /// Copies of each stream message the side under test wrote: seq -> times (all copies).
    fn sut_copies(&self) -> BTreeMap<i64, Vec<(u64, &Frame)>> {
        let mut m: BTreeMap<i64, Vec<(u64, &Frame)>> = BTreeMap::new();
        for (f, d) in self.s().stream_written() {
            m.entry(d.seq).or_default().push((f.t, f));
        }
        m
    }

    fn ended_at(&self) -> Option<u64> {
        self.ended
    }

    fn connected(&self, t: u64) -> bool {
        let inside = |iv: &[(u64, u64)]| iv.iter().any(|&(a, b)| a <= t && t < b);
        inside(&self.conn[0]) && inside(&self.conn[1])
    }

    /// Whether the side under test wrote an ack of `seq` in the record-index range.
    fn acked_between(&self, seq: i64, after_i: usize, before_i: usize, by_t: u64) -> bool {
        self.acks_by_seq
            .get(&seq)
            .is_some_and(|v| v.iter().any(|&(i, t)| i > after_i && i < before_i && t <= by_t))
    }

    /// Whether the side under test wrote an ack of `seq` before record index `i`.
    fn acked_before(&self, seq: i64, i: usize) -> bool {
        self.acks_by_seq.get(&seq).is_some_and(|v| v.first().is_some_and(|&(j, _)| j < i))
    }

    /// Agent under test: intervals during which it was paused by pause_publication.
    fn paused_intervals(&self) -> Vec<(u64, u64)> {
        self.paused_iv.clone()
    }

    fn compute_paused_intervals(&self) -> Vec<(u64, u64)> {
        let s = self.s();
        let mut out = Vec::new();
        let mut paused_at: Option<u64> = None;
        let mut points: Vec<(u64, bool)> = Vec::new();
        for f in &s.delivered {
            let Some(d) = &f.f else { continue };
            match d.message_type {
                MessageType::PausePublication => points.push((f.t, true)),
                MessageType::StartPublication => points.push((f.t, false)),
                MessageType::Acknowledge => points.push((f.t, false)),
                t if t.is_stream() => points.push((f.t, false)),
                _ => {}
            }
        }
        for c in s.open_checks.iter().filter(|c| c.2) {
            points.push((c.0, false));
        }
        points.sort_by_key(|p| p.0);
        for (t, pause) in points {
            match (paused_at, pause) {
                (None, true) => paused_at = Some(t),
                (Some(a), false) => {
                    out.push((a, t));
                    paused_at = None;
                }
                _ => {}
            }
        }
        if let Some(a) = paused_at {
            out.push((a, u64::MAX));
        }
        out
    }

    fn paused(&self, t: u64) -> bool {
        self.sut == Role::Agent && self.paused_iv.iter().any(|&(a, b)| a <= t && t < b)
    }
}

/// Runs the check for `req`.
pub fn check(cx: &Cx<'_>, req: Req) -> Outcome {
    use Req::*;
    match req {
        Frame001 | Frame002 | Frame003 | Frame005 | Frame006 | Frame007 | Frame012 | Type001 | Type003
        | Type004 | Seq003 | Hs005 | Open001 => cx.sender_check(req),
        Frame004 => receiver_accepts_nul_padding(cx),
        Frame008 => receiver_drops_invalid(cx, Frame008, |d| !d.digest_ok),
        Frame009 => frame009(cx),
        Frame010 => keeps_reading_after_malformed(cx),
        Frame011 => receiver_drops_invalid(cx, Frame011, |d| d.violations.iter().any(|v| v.0 == Frame011)),
        Frame013 => empty_payload_decoded(cx),
        Type002 => type002(cx),
        Type005 => type005(cx),
        Open002 => open002(cx),
        Open003 => open003(cx),
        Ping001 => ping001(cx),
        Ping002 => ping002(cx),
        Seq001 => seq001(cx),
        Seq002 => seq002(cx),
        Ack001 => ack001(cx),
        Ack002 => ack002(cx),
        Ack003 => ack003(cx),
        Ack004 => ack004(cx),
        Ack005 => ack005(cx),
        Ack006 => ack006(cx),
        Ack007 => ack007(cx),
        Ord001 => not_ex("judged by the stream-integrity check"),
        Ord002 => ord002(cx),
        Ord004 => ord004(cx),
        Rtx001 => rtx001(cx),
        Rtx002 => rtx002(cx),
        Rtx003 => rtx003(cx),
        Rtx004 => rtx004(cx),
        Rtx005 => rtx005(cx),
        Rtx006 => resend_limit(cx, Role::Client),
        Rtx007 => resend_limit(cx, Role::Agent),
        Pub001 => pub001(cx),
        Pub002 => pub002(cx),
        Pub003 => pub003(cx),
        Hs001 => hs001(cx),
        Hs002 => hs002(cx),
        Hs003 => hs003(cx),
        Hs004 => hs004(cx),
        Hs006 => hs006(cx),
        Res001 => res001(cx),
        Res002 => res002(cx),
        Res003 => res003(cx),
        Res004 => res004(cx),
        Res005 => res005(cx),
        Res006 => res006(cx),
        Res007 => res007(cx),
        Res008 => res008(cx),
        Res009 => res009(cx),
        Term001 => term_on_closed(cx, Role::Client),
        Term002 => term_on_closed(cx, Role::Agent),
        Term003 => term003(cx),
        Term004 => term004(cx),
        _ => not_ex("no check for this requirement in the simulator yet"),
    }
}

// ---------------------------------------------------------------- framing (receiver side)

fn receiver_accepts_nul_padding(cx: &Cx<'_>) -> Outcome {
    let acks = cx.sut_acks();
    let mut n = 0;
    for (f, d) in cx.s().stream_delivered() {
        let raw = &f.bytes[4..36];
        if raw.contains(&0) && d.is_valid() {
            n += 1;
            if !acks.get(&d.seq).is_some_and(|ts| ts.iter().any(|&t| t >= f.t)) {
                return fail(
                    format!("a NUL-padded stream message (seq {}) was never acknowledged", d.seq),
                    Some(f.t),
                );
            }
        }
    }
    if n == 0 {
        not_ex("no NUL-padded frame reached the side under test")
    } else {
        pass(format!("{n} NUL-padded frames accepted"))
    }
}

/// The side under test must not acknowledge (or deliver) a copy that fails `bad`, until a good
/// copy of the same sequence has arrived.
fn receiver_drops_invalid(cx: &Cx<'_>, req: Req, bad: impl Fn(&super::observe::Decoded) -> bool) -> Outcome {
    let s = cx.s();
    let mut n = 0;
    for (i, f) in s.delivered.iter().enumerate() {
        let Some(d) = &f.f else { continue };
        if !d.is_stream() || !bad(d) {
            continue;
        }
        n += 1;
        // Until the next valid copy of this seq, no ack of it may be written.
        let next_good = s.delivered[i + 1..]
            .iter()
            .find(|g| g.f.as_ref().is_some_and(|x| x.is_stream() && x.seq == d.seq && x.is_valid()))
            .map_or(u64::MAX, |g| g.t);
        let already_acked = s.acks_written_i().any(|(_, i, a)| a.sequence_number == d.seq && i < f.i);
        if already_acked {
            continue;
        }
        if let Some((t, _)) =
            s.acks_written().find(|(t, a)| a.sequence_number == d.seq && *t >= f.t && *t < next_good)
        {
            return fail(
                format!("acknowledged seq {} after receiving only an invalid copy ({req})", d.seq),
                Some(t),
            );
        }
    }
    if n == 0 {
        not_ex(format!("no stream frame breaking {req} reached the side under test"))
    } else {
        pass(format!("{n} invalid copies dropped without an ack"))
    }
}

fn frame009(cx: &Cx<'_>) -> Outcome {
    let sender = cx.sender_check(Req::Frame009);
    if matches!(sender, Outcome::Fail { .. }) {
        return sender;
    }
    let recv =
        receiver_drops_invalid(cx, Req::Frame009, |d| d.violations.iter().any(|v| v.0 == Req::Frame009));
    match (&sender, recv) {
        (_, r @ Outcome::Fail { .. }) => r,
        (Outcome::Pass(_), _) | (_, Outcome::Pass(_)) => {
            pass("no frame without HeaderLength, type or date accepted or sent")
        }
        (_, r) => r,
    }
}

fn keeps_reading_after_malformed(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let Some(bad) = s.delivered.iter().find(|f| f.f.is_none()) else {
        return not_ex("no malformed frame reached the side under test");
    };
    let later_valid: Vec<&Frame> = s
        .delivered
        .iter()
        .filter(|f| f.t > bad.t && f.f.as_ref().is_some_and(|d| d.is_stream() && d.is_valid()))
        .collect();
    if later_valid.is_empty() {
        return not_ex("no valid stream frame followed the malformed one");
    }
    let acked_later = s.acks_written().any(|(t, _)| t > bad.t);
    if acked_later {
        pass(format!(
            "kept reading: {} valid frames after the malformed one, and acknowledged",
            later_valid.len()
        ))
    } else {
        fail(
            format!(
                "stopped reading after a malformed {}-byte frame: {} later valid frames never acknowledged",
                bad.bytes.len(),
                later_valid.len()
            ),
            Some(bad.t),
        )
    }
}

fn empty_payload_decoded(cx: &Cx<'_>) -> Outcome {
    let acks = cx.sut_acks();
    for (f, d) in cx.s().stream_delivered() {
        if d.payload.is_empty() && f.bytes.len() == 120 && d.is_valid() {
            return if acks.contains_key(&d.seq) {
                pass("a 120-byte frame with PayloadLength 0 was accepted")
            } else {
                fail(format!("the 120-byte empty frame seq {} was never acknowledged", d.seq), Some(f.t))
            };
        }
    }
    not_ex("no 120-byte empty stream frame reached the side under test")
}

fn type002(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let unknown: Vec<&Frame> = s
        .delivered
        .iter()
        .filter(|f| {
            f.f.as_ref().is_some_and(|d| matches!(d.message_type, MessageType::Other(_)) && d.is_valid())
        })
        .collect();
    if unknown.is_empty() {
        return not_ex("no frame of an unknown type reached the side under test");
    }
    for f in &unknown {
        if let Some(e) = s.events.iter().find(|e| e.cause == Some(f.i) && e.kind == "ended") {
            return fail(format!("a frame of an unknown type ended the session: {}", e.v), Some(e.t));
        }
    }
    let peer_stream = cx.sut.peer().outbound_stream().name();
    if let Some((t, a)) = s.acks_written().find(|(_, a)| a.message_type != peer_stream) {
        return fail(format!("acknowledged a frame of type {:?}", a.message_type), Some(t));
    }
    pass(format!("{} frames of unknown types ignored", unknown.len()))
}

fn type005(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("only agents set SYN");
    }
    let copies = cx.sut_copies();
    let Some(first) = copies.get(&0).and_then(|c| c.first()) else {
        return not_ex("the agent sent no stream message");
    };
    let flags = first.1.f.as_ref().map_or(0, |d| d.flags);
    if flags & 1 == 0 {
        return fail(format!("output stream message 0 has Flags {flags}, expected SYN (1)"), Some(first.0));
    }
    for (seq, c) in copies.iter().filter(|(s, _)| **s != 0) {
        if let Some((t, f)) = c.first() {
            let fl = f.f.as_ref().map_or(0, |d| d.flags);
            if fl != 0 {
                return fail(format!("output stream message {seq} has Flags {fl}, expected 0"), Some(*t));
            }
        }
    }
    pass("SYN on message 0 only")
}

// ---------------------------------------------------------------- open, ping

fn open_texts(s: &Side) -> Vec<(u64, serde_json::Value)> {
    s.wrote_other
        .iter()
        .filter(|(_, k, _)| *k == crate::trace::MsgKind::Text)
        .filter_map(|(t, _, b)| serde_json::from_slice(b).ok().map(|v| (*t, v)))
        .collect()
}

fn open002(cx: &Cx<'_>) -> Outcome {
    let opens = open_texts(cx.s());
    if opens.len() < 2 {
        return not_ex("fewer than two opens");
    }
    let ids: BTreeSet<String> = opens
        .iter()
        .filter_map(|(_, v)| v.get("RequestId").and_then(|r| r.as_str()).map(str::to_owned))
        .collect();
    if ids.len() != opens.len() {
        return fail(
            format!("{} opens reused RequestIds ({} distinct)", opens.len(), ids.len()),
            Some(opens[1].0),
        );
    }
    let clients: BTreeSet<String> = opens
        .iter()
        .filter_map(|(_, v)| v.get("ClientId").and_then(|r| r.as_str()).map(str::to_owned))
        .collect();
    if clients.len() != 1 {
        return fail(format!("ClientId changed across {} opens", opens.len()), Some(opens[1].0));
    }
    pass(format!("{} opens, fresh RequestId each, one ClientId", opens.len()))
}

fn open003(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    if s.open_checks.len() < 2 {
        return not_ex("no reconnect");
    }
    for c in s.open_checks.iter().skip(1) {
        if !c.2 && c.3.contains("stale") {
            return fail(format!("reconnected with a stale token {:?}", c.1), Some(c.0));
        }
    }
    pass(format!("{} reconnects, each with the latest token", s.open_checks.len() - 1))
}

fn ping001(cx: &Cx<'_>) -> Outcome {
    let limit = match cx.sut {
        Role::Client => 300_000 * MS,
        Role::Agent => 54_000 * MS,
    };
    let pings: Vec<u64> = cx
        .s()
        .wrote_other
        .iter()
        .filter(|(_, k, _)| *k == crate::trace::MsgKind::Ping)
        .map(|(t, _, _)| *t)
        .collect();
    let mut exercised = false;
    // A session that ended owes no keepalives, even on a websocket left open.
    let until = cx.o.end_t.min(cx.ended_at().unwrap_or(u64::MAX));
    for (a, b) in cx.s().connected_intervals() {
        let b = b.min(until);
        if b.saturating_sub(a) <= limit {
            continue;
        }
        exercised = true;
        let mut last = a;
        for &p in pings.iter().filter(|&&p| p >= a && p <= b) {
            if p - last > limit + SLACK {
                return fail(format!("no ping for {} while connected", ms(p - last)), Some(p));
            }
            last = p;
        }
        if b - last > limit + SLACK {
            return fail(format!("no ping for {} while connected", ms(b - last)), Some(b));
        }
    }
    if exercised {
        pass("pinged in time")
    } else {
        not_ex("never connected long enough")
    }
}

/// A ping that gets no pong means the connection is dead: the side must notice within the pong
/// deadline (60 s; the agent's read deadline is 60 s after the last pong) and reconnect.
fn ping002(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let pings: Vec<u64> = s
        .wrote_other
        .iter()
        .filter(|(_, k, _)| *k == crate::trace::MsgKind::Ping)
        .map(|(t, _, _)| *t)
        .collect();
    let deadline = 60_000 * MS + TICK + SLACK;
    let mut n = 0;
    for &p in &pings {
        if s.pongs.iter().any(|&q| q >= p && q <= p + deadline) {
            continue;
        }
        if cx.ended_at().is_some_and(|e| e <= p + deadline) || cx.o.end_t < p + deadline {
            continue;
        }
        // Still on the same websocket when the deadline passed?
        let closed = s.closed.iter().any(|c| c.0 > p && c.0 <= p + deadline);
        n += 1;
        if !closed {
            return fail(
                format!(
                    "a ping at {} got no pong, and the dead connection was still in use 60 s later",
                    ms(p)
                ),
                Some(p + deadline),
            );
        }
    }
    if n == 0 {
        not_ex("every ping was answered")
    } else {
        pass(format!("{n} unanswered pings led to a reconnect within the deadline"))
    }
}

// ---------------------------------------------------------------- sequencing

/// New messages (first copies, or a reused sequence number with different content) are
/// numbered 0, 1, 2, ... without gaps or reuse. Their first appearance on the wire may be out of
/// order when a message produced while the transport was down goes out later.
fn seq001(cx: &Cx<'_>) -> Outcome {
    // The peer saw a sequence number no sender could have reached in order.
    if let Some((d, t)) = cx.sender.get(&Req::Seq001) {
        return fail(d.clone(), Some(*t));
    }
    let mut firsts: BTreeMap<i64, (u64, Vec<u8>)> = BTreeMap::new();
    for (f, d) in cx.s().stream_written() {
        match firsts.get(&d.seq) {
            Some((_, p)) if *p == d.payload => {}
            Some(_) => {
                return fail(format!("sequence number {} used again for different content", d.seq), Some(f.t))
            }
            None => {
                firsts.insert(d.seq, (f.t, d.payload.clone()));
            }
        }
    }
    let n = firsts.len() as i64;
    if n == 0 {
        return not_ex("no stream message sent");
    }
    if let Some((seq, (t, _))) =
        firsts.iter().enumerate().find(|(i, (s, _))| **s != *i as i64).map(|(_, x)| x)
    {
        return fail(
            format!(
                "stream messages are not numbered 0..{}: {seq} where {} was due",
                n - 1,
                firsts.keys().position(|k| k == seq).unwrap_or(0)
            ),
            Some(*t),
        );
    }
    pass(format!("{n} stream messages numbered 0..{}", n - 1))
}

fn seq002(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let reopen: Vec<u64> = s.open_checks.iter().filter(|c| c.2).skip(1).map(|c| c.0).collect();
    if reopen.is_empty() {
        return not_ex("no reconnect");
    }
    let mut seen: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for (f, d) in s.stream_written() {
        if let Some(p) = seen.get(&d.seq) {
            if *p != d.payload && reopen.iter().any(|&r| r <= f.t) {
                return fail(
                    format!(
                        "after a reconnect, seq {} was reused for new content: the counter was reset",
                        d.seq
                    ),
                    Some(f.t),
                );
            }
        } else {
            seen.insert(d.seq, d.payload.clone());
        }
    }
    // The receiving direction: a side that reset its expected counter would deliver old data.
    pass(format!("{} reconnects, numbering continued", reopen.len()))
}

// ---------------------------------------------------------------- acks

fn ack001(cx: &Cx<'_>) -> Outcome {
    let acks = cx.sut_acks();
    // After a malformed frame that stopped the side under test from reading (FRAME-010 judges
    // that), nothing it receives is acknowledged; that is not a second failure.
    let s = cx.s();
    let stopped = s
        .delivered
        .iter()
        .filter(|f| f.f.is_none())
        .find(|bad| !s.acks_written().any(|(t, _)| t > bad.t))
        .map_or(u64::MAX, |bad| bad.t);
    let end = cx.ended_at().unwrap_or(u64::MAX).min(stopped);
    let mut n = 0;
    let mut seqs = BTreeSet::new();
    for (f, d) in cx.s().stream_delivered() {
        if d.is_valid() && f.t < end {
            seqs.insert((d.seq, f.t));
        }
    }
    let mut done = BTreeSet::new();
    for (seq, t) in seqs {
        if !done.insert(seq) {
            continue;
        }
        n += 1;
        if !acks.contains_key(&seq) {
            // A session that ended right after delivery may not have acked.
            if end != u64::MAX {
                continue;
            }
            return fail(format!("stream message {seq} was delivered but never acknowledged"), Some(t));
        }
    }
    if n == 0 {
        not_ex("no stream message reached the side under test")
    } else {
        pass(format!("{n} stream messages acknowledged"))
    }
}

fn ack002(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let mut delivered_ok: BTreeSet<i64> = BTreeSet::new();
    let mut expected = 0i64;
    let mut n = 0;
    for (f, d) in s.stream_delivered() {
        if !d.is_valid() {
            continue;
        }
        if d.seq > expected && !delivered_ok.contains(&d.seq) {
            n += 1;
            if !cx.acked_between(d.seq, f.i, usize::MAX, f.t + 50 * MS) {
                return fail(
                    format!("early message {} (expected {expected}) was not acknowledged on arrival", d.seq),
                    Some(f.t),
                );
            }
        }
        delivered_ok.insert(d.seq);
        while delivered_ok.contains(&expected) {
            expected += 1;
        }
    }
    if n == 0 {
        not_ex("no message arrived early")
    } else {
        pass(format!("{n} early messages acknowledged on arrival"))
    }
}

fn ack003(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let end = cx.ended_at().unwrap_or(u64::MAX);
    let mut n = 0;
    for (f, d) in s.stream_delivered() {
        if !d.is_valid() || !cx.acked_before(d.seq, f.i) || end <= f.t {
            continue;
        }
        n += 1;
        if !cx.acked_between(d.seq, f.i, usize::MAX, f.t + 50 * MS) {
            return fail(
                format!("duplicate of acknowledged message {} was not acknowledged again", d.seq),
                Some(f.t),
            );
        }
    }
    if n == 0 {
        not_ex("no duplicate of an acknowledged message arrived")
    } else {
        pass(format!("{n} duplicates re-acknowledged"))
    }
}

fn ack004(cx: &Cx<'_>) -> Outcome {
    if let o @ Outcome::Fail { .. } = cx.sender_check(Req::Ack004) {
        return o;
    }
    let s = cx.s();
    // (seq, textual id, type) of every stream frame received, with the first time.
    let mut received: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
    for (g, d) in s.stream_delivered() {
        received.entry((d.seq, d.message_id.hyphenated().to_string(), d.message_type.name())).or_insert(g.t);
    }
    let mut n = 0;
    for f in &s.wrote {
        let Some(a) = f.f.as_ref().and_then(|d| d.ack.as_ref()) else { continue };
        n += 1;
        let key = (a.sequence_number, a.message_id.clone(), a.message_type.clone());
        if received.get(&key).is_none_or(|&t| t > f.t) {
            return fail(
                format!(
                    "ack for {} seq {} id {} matches no frame received",
                    a.message_type, a.sequence_number, a.message_id
                ),
                Some(f.t),
            );
        }
        if !a.is_sequential_message {
            return fail("IsSequentialMessage is false", Some(f.t));
        }
    }
    if n == 0 {
        not_ex("the side under test sent no ack")
    } else {
        pass(format!("{n} acks name the acknowledged frame"))
    }
}

fn ack005(cx: &Cx<'_>) -> Outcome {
    let acks = cx.acks_to_sut();
    if acks.is_empty() {
        return not_ex("no ack reached the side under test");
    }
    for (seq, copies) in cx.sut_copies() {
        if let Some(&acked) = acks.get(&seq) {
            if let Some((t, _)) = copies.iter().find(|(t, _)| *t > acked + SLACK) {
                return fail(
                    format!("retransmitted seq {seq} {} after its ack arrived", ms(t - acked)),
                    Some(*t),
                );
            }
        }
    }
    pass(format!("{} acknowledged messages no longer sent", acks.len()))
}

fn ack006(cx: &Cx<'_>) -> Outcome {
    if let o @ Outcome::Fail { .. } = cx.sender_check(Req::Ack006) {
        return o;
    }
    let peer_stream = cx.sut.peer().outbound_stream().name();
    for (t, a) in cx.s().acks_written() {
        if a.message_type != peer_stream {
            return fail(format!("acknowledged a {} frame", a.message_type), Some(t));
        }
    }
    if cx.s().delivered.iter().any(|f| f.f.as_ref().is_some_and(|d| !d.is_stream())) {
        pass("only stream messages acknowledged")
    } else {
        not_ex("no non-stream frame reached the side under test")
    }
}

/// Record-index intervals during which the consumer of the side under test was not ready.
fn not_ready_intervals(cx: &Cx<'_>) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (_, i, step) in &cx.o.steps {
        if let Step::SetReady { side, ready } = step {
            if *side != cx.sut {
                continue;
            }
            match (start, *ready) {
                (None, false) => start = Some(*i),
                (Some(a), true) => {
                    out.push((a, *i));
                    start = None;
                }
                _ => {}
            }
        }
    }
    if let Some(a) = start {
        out.push((a, usize::MAX));
    }
    out
}

fn ack007(cx: &Cx<'_>) -> Outcome {
    let windows = not_ready_intervals(cx);
    if windows.is_empty() {
        return not_ex("the consumer of the side under test was always ready");
    }
    let s = cx.s();
    // Messages delivered in order while not ready must stay unacknowledged until ready.
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut events: Vec<(usize, u64, i64, bool)> = Vec::new();
    for (t, i, a) in s.acks_written_i() {
        events.push((i, t, a.sequence_number, true));
    }
    for (f, d) in s.stream_delivered() {
        if d.is_valid() {
            events.push((f.i, f.t, d.seq, false));
        }
    }
    events.sort();
    let mut n = 0;
    for (i, t, seq, is_ack) in events {
        let in_window = windows.iter().any(|&(a, b)| a <= i && i < b);
        let next = (0..).find(|x| !acked.contains(x)).unwrap_or(0);
        if is_ack {
            if in_window && seq == next {
                return fail(
                    format!("acknowledged in-order message {seq} while its consumer was not ready"),
                    Some(t),
                );
            }
            acked.insert(seq);
        } else if in_window && seq == next {
            n += 1;
        }
    }
    if n == 0 {
        not_ex("no in-order message arrived while the consumer was not ready")
    } else {
        pass(format!("{n} in-order arrivals left unacknowledged while not ready"))
    }
}

fn ord002(cx: &Cx<'_>) -> Outcome {
    match ack002(cx) {
        Outcome::Fail { detail, at } => fail(format!("early message not buffered: {detail}"), at),
        Outcome::Pass(_) => {
            pass("early messages buffered (acknowledged on arrival); order is judged by stream integrity")
        }
        o => o,
    }
}

fn ord004(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let Some(reset) = s.closed.iter().find(|c| c.2.contains("right after a delivery")) else {
        return not_ex("the connection never died between a delivery and its ack");
    };
    let mut seen = BTreeSet::new();
    for e in s.events_of("data") {
        let Some(seq) = e.v.get("seq").and_then(|q| q.as_i64()) else { continue };
        if !seen.insert(seq) {
            return fail(
                format!("stream message {seq} was delivered again after the connection died before its ack"),
                Some(e.t),
            );
        }
    }
    pass(format!("nothing delivered twice after the reset at {}", ms(reset.0)))
}

// ---------------------------------------------------------------- retransmission

fn rtx001(cx: &Cx<'_>) -> Outcome {
    let acks = cx.acks_to_sut();
    let copies = cx.sut_copies();
    if copies.is_empty() {
        return not_ex("no stream message sent");
    }
    if cx.ended_at().is_some() || cx.p().ended().is_some() {
        return pass("the session ended; unacknowledged messages at the end are allowed");
    }
    let unacked: Vec<i64> = copies.keys().filter(|s| !acks.contains_key(s)).copied().collect();
    if !unacked.is_empty() && !cx.connected(cx.o.end_t) {
        return not_ex("the side under test was not connected at the end; resuming is judged by RES-*");
    }
    match unacked.first() {
        None => pass(format!("all {} messages acknowledged", copies.len())),
        Some(seq) => {
            let last = copies[seq].last().map(|c| c.0);
            fail(format!("{} messages never acknowledged, starting with seq {seq}", unacked.len()), last)
        }
    }
}

/// Gaps during which message `seq` was unacknowledged, unsent, and the path was up.
fn idle_gaps(cx: &Cx<'_>, seq: i64, copies: &[(u64, &Frame)], acked: Option<u64>) -> Vec<(u64, u64)> {
    let end = acked.unwrap_or(cx.o.end_t).min(cx.ended_at().unwrap_or(u64::MAX));
    let mut out = Vec::new();
    let mut times: Vec<u64> = copies.iter().map(|c| c.0).collect();
    times.push(end);
    for w in times.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b <= a {
            continue;
        }
        // Only count stretches where both websockets stayed up and the agent was not paused.
        if cx.connected(a)
            && cx.connected(b.saturating_sub(1))
            && !cx.paused(a)
            && !cx.paused(b.saturating_sub(1))
        {
            let reconnected_between = cx.s().open_checks.iter().any(|c| c.0 > a && c.0 < b);
            if !reconnected_between {
                out.push((a, b));
            }
        }
        let _ = seq;
    }
    out
}

/// A message the side under test gave up on: never acknowledged and not sent again in the last
/// two seconds of the run. RTX-001 judges those; the timing checks leave them out.
fn abandoned(cx: &Cx<'_>, seq: i64, c: &[(u64, &Frame)], acks: &BTreeMap<i64, u64>) -> bool {
    !acks.contains_key(&seq) && c.last().is_some_and(|l| l.0 + 2_000 * MS < cx.o.end_t)
}

fn head_at(
    cx: &Cx<'_>,
    copies: &BTreeMap<i64, Vec<(u64, &Frame)>>,
    acks: &BTreeMap<i64, u64>,
    t: u64,
) -> Option<i64> {
    copies
        .iter()
        .filter(|(s, c)| !abandoned(cx, **s, c, acks))
        .find(|(s, c)| c.first().is_some_and(|f| f.0 <= t) && acks.get(s).is_none_or(|&a| a > t))
        .map(|(s, _)| *s)
}

fn rtx002(cx: &Cx<'_>) -> Outcome {
    let acks = cx.acks_to_sut();
    let copies = cx.sut_copies();
    let mut n = 0;
    for (seq, c) in &copies {
        if abandoned(cx, *seq, c, &acks) {
            continue;
        }
        for (a, b) in idle_gaps(cx, *seq, c, acks.get(seq).copied()) {
            if head_at(cx, &copies, &acks, a) != Some(*seq) {
                continue;
            }
            if b - a > MAX_RTO + TICK + SLACK {
                return fail(
                    format!(
                        "oldest unacknowledged message {seq} not resent for {} (RTO is at most 1 s)",
                        ms(b - a)
                    ),
                    Some(a),
                );
            }
            if c.len() > 1 {
                n += 1;
            }
        }
    }
    if copies.values().all(|c| c.len() == 1) && n == 0 {
        not_ex("no message needed a retransmission")
    } else {
        pass("the oldest unacknowledged message was always resent within the maximum RTO")
    }
}

/// The first retransmission of a message comes one RTO after its first copy, where the RTO is
/// what 5.5 gives for the round trips the side under test has measured so far. Only unambiguous
/// samples (messages sent once and acknowledged) feed the replayed estimator, and only messages
/// sent after nothing but unambiguous samples are judged, so the prediction is exact for both
/// ways of timing a sample.
fn rtx003(cx: &Cx<'_>) -> Outcome {
    let acks = cx.acks_to_sut();
    let copies = cx.sut_copies();
    let mut samples: Vec<(u64, u64)> = Vec::new(); // (time of the ack, sample)
    let mut ambiguous_from = u64::MAX;
    for (seq, c) in &copies {
        let Some(&a) = acks.get(seq) else { continue };
        if c.len() == 1 {
            samples.push((a, a.saturating_sub(c[0].0)));
        } else {
            ambiguous_from = ambiguous_from.min(a);
        }
    }
    samples.sort();
    let mut n = 0;
    for (seq, c) in &copies {
        if c.len() < 2 || c[0].0 >= ambiguous_from {
            continue;
        }
        let (first, second) = (c[0].0, c[1].0);
        // Judge the oldest unacknowledged message only: behind it, a sender that resends only
        // the head waits longer (RTX-005 judges that).
        let behind = copies
            .range(..*seq)
            .any(|(s, c)| !abandoned(cx, *s, c, &acks) && acks.get(s).is_none_or(|&a| a > first));
        if behind {
            continue;
        }
        // Only a resend on the same connection, with the peer up, says anything about the RTO.
        if !cx.connected(first) || cx.s().closed.iter().any(|x| x.0 > first && x.0 <= second) {
            continue;
        }
        let mut e = ssm_channel::rto::RtoEstimator::default();
        for &(at, r) in samples.iter().filter(|(at, _)| *at <= first) {
            let _ = at;
            e.on_sample(std::time::Duration::from_nanos(r));
        }
        // Samples arriving between the send and the resend change the RTO meanwhile.
        if samples.iter().any(|(at, _)| *at > first && *at < second) {
            continue;
        }
        let rto = u64::try_from(e.rto().as_nanos()).unwrap_or(u64::MAX);
        let gap = second - first;
        n += 1;
        if gap + SLACK < rto || gap > rto + TICK + SLACK {
            return fail(
                format!(
                    "seq {seq} first resent after {}; the RTO from {} measured round trips is {} (check every 100 ms)",
                    ms(gap),
                    samples.iter().filter(|(at, _)| *at <= first).count(),
                    ms(rto)
                ),
                Some(second),
            );
        }
    }
    if n == 0 {
        not_ex("no message was resent after unambiguous round-trip samples")
    } else {
        pass(format!("{n} first resends one RTO (5.5) after the send"))
    }
}

fn rtx004(cx: &Cx<'_>) -> Outcome {
    // After a resend the timer restarts, so while the RTO does not change, every later resend of
    // a message comes at least as long after the previous one as the first resend came after the
    // original (less one tick of quantisation). Resending on every tick after the first timeout
    // breaks this as soon as the RTO exceeds one tick.
    // First acks only: a repeated ack removes nothing and gives no RTT sample.
    let ack_times: Vec<u64> = cx.acks_to_sut().values().copied().collect();
    let mut n = 0;
    for (seq, c) in cx.sut_copies() {
        if c.len() < 3 {
            continue;
        }
        let first_gap = c[1].0 - c[0].0;
        if first_gap < 2 * TICK {
            continue;
        }
        // Only resends on one connection: an outage in between says nothing about the timer.
        let last = c.last().map_or(c[0].0, |x| x.0);
        if cx.s().open_checks.iter().any(|o| o.0 > c[0].0 && o.0 < last)
            || cx.s().closed.iter().any(|x| x.0 > c[0].0 && x.0 < last)
        {
            continue;
        }
        for w in c.windows(2).skip(1) {
            let (a, b) = (w[0].0, w[1].0);
            // An RTT sample in between may legitimately shorten the RTO.
            if ack_times.iter().any(|&t| t > c[0].0 && t < b) {
                break;
            }
            n += 1;
            if b - a + TICK + SLACK < first_gap {
                return fail(
                    format!(
                        "seq {seq} resent {} after the previous resend, though the first resend waited {}",
                        ms(b - a),
                        ms(first_gap)
                    ),
                    Some(b),
                );
            }
        }
    }
    if n == 0 {
        not_ex("no message was resent repeatedly with an RTO above one tick")
    } else {
        pass(format!("{n} repeated resends each waited a full RTO"))
    }
}

fn rtx005(cx: &Cx<'_>) -> Outcome {
    let acks = cx.acks_to_sut();
    let copies = cx.sut_copies();
    let mut exercised = false;
    for (seq, c) in &copies {
        if abandoned(cx, *seq, c, &acks) {
            continue;
        }
        for (a, b) in idle_gaps(cx, *seq, c, acks.get(seq).copied()) {
            let head = head_at(cx, &copies, &acks, a);
            if head == Some(*seq) {
                continue;
            }
            if b - a > MAX_RTO + 2 * TICK + SLACK {
                return fail(
                    format!(
                        "message {seq} waited {} unsent behind unacknowledged message {} (only the head is retransmitted)",
                        ms(b - a),
                        head.unwrap_or(-1)
                    ),
                    Some(a),
                );
            }
            if c.len() > 1 {
                exercised = true;
            }
        }
    }
    if exercised {
        pass("expired messages behind the head were retransmitted")
    } else {
        not_ex("no message behind the head needed a retransmission")
    }
}

fn resend_limit(cx: &Cx<'_>, role: Role) -> Outcome {
    if cx.sut != role {
        return not_ex(format!("judged on {role}s"));
    }
    let acks = cx.acks_to_sut();
    let copies = cx.sut_copies();
    // A message unacknowledged for more than 5 minutes while the websocket stayed up.
    let Some((seq, c)) = copies.iter().find(|(s, c)| {
        let first = c[0].0;
        let until = acks.get(s).copied().unwrap_or(cx.o.end_t);
        until.saturating_sub(first) > 300_000 * MS
    }) else {
        return not_ex("no message stayed unacknowledged for 5 minutes");
    };
    let first = c[0].0;
    let last = c.last().map_or(first, |x| x.0);
    let limit = first + 305_000 * MS + MAX_RTO;
    let gave_up_call =
        cx.s().calls.iter().find(|k| k.call.contains("TerminateSession") && k.t >= first).map(|k| k.t);
    if last > limit {
        return fail(
            format!("message {seq} still resent {} after it was first sent", ms(last - first)),
            Some(last),
        );
    }
    if role == Role::Client && gave_up_call.is_none_or(|t| t > limit) {
        return fail(format!("gave up on message {seq} without calling TerminateSession"), Some(last));
    }
    pass(format!("gave up on message {seq} after {}", ms(last - first)))
}

// ---------------------------------------------------------------- publication

fn pub001(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("judged on agents");
    }
    let windows = cx.paused_intervals();
    if windows.is_empty() {
        return not_ex("the agent was never paused");
    }
    for (f, d) in cx.s().stream_written() {
        if windows.iter().any(|&(a, b)| f.t > a + SLACK && f.t < b) {
            return fail(format!("sent stream message {} while paused", d.seq), Some(f.t));
        }
    }
    pass(format!("silent during {} pauses", windows.len()))
}

fn pub002(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let s = cx.s();
    let publication: Vec<&Frame> = s
        .delivered
        .iter()
        .filter(|f| f.f.as_ref().is_some_and(|d| d.message_type.is_publication()))
        .collect();
    if publication.is_empty() {
        return not_ex("no publication frame reached the client");
    }
    for f in &publication {
        if let Some(e) = s.events.iter().find(|e| e.cause == Some(f.i) && e.kind == "ended") {
            return fail(format!("a publication frame ended the session: {}", e.v), Some(e.t));
        }
    }
    pass(format!("{} publication frames tolerated", publication.len()))
}

fn pub003(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("judged on agents");
    }
    let windows = cx.paused_intervals();
    let s = cx.s();
    let mut n = 0;
    for (t, _, bytes, accepted) in &s.offered {
        let Some(&(_, end)) = windows.iter().find(|&&(a, b)| a <= *t && *t < b) else { continue };
        n += 1;
        if !accepted {
            return fail("output produced while paused was refused", Some(*t));
        }
        let sent = s.stream_written().find(|(f, d)| d.payload == *bytes && f.t >= *t).map(|(f, _)| f.t);
        match sent {
            Some(w) if w >= end => {}
            Some(w) => return fail("output produced while paused was sent during the pause", Some(w)),
            None if end == u64::MAX => {}
            None => return fail("output produced while paused was never sent after the pause", Some(end)),
        }
    }
    if n == 0 {
        not_ex("the agent produced nothing while paused")
    } else {
        pass(format!("{n} messages produced while paused, sent after it"))
    }
}

// ---------------------------------------------------------------- handshake

fn stream_payloads(s: &Side) -> Vec<(u64, i64, PayloadType, Vec<u8>)> {
    let mut seen = BTreeSet::new();
    s.stream_written()
        .filter(|(_, d)| seen.insert(d.seq))
        .map(|(f, d)| (f.t, d.seq, d.payload_type, d.payload.clone()))
        .collect()
}

fn hs001(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("judged on agents");
    }
    let msgs = stream_payloads(cx.s());
    let Some((t, seq, pt, body)) = msgs.first() else { return not_ex("the agent sent no stream message") };
    let wants = cx.session.handshakes(cx.kms);
    if wants {
        if *pt != PayloadType::HANDSHAKE_REQUEST || *seq != 0 {
            return fail(
                format!("first stream message is {pt} seq {seq}, expected HandshakeRequest seq 0"),
                Some(*t),
            );
        }
        let ok = serde_json::from_slice::<ssm_wire::payload::HandshakeRequest>(body).ok().is_some_and(|r| {
            r.requested_client_actions.unwrap_or_default().iter().any(|a| a.action_type == "SessionType")
        });
        if !ok {
            return fail("HandshakeRequest without a SessionType action", Some(*t));
        }
        pass("HandshakeRequest first, with a SessionType action")
    } else if *pt != PayloadType::OUTPUT {
        fail(
            format!("first stream message of a session without handshake is {pt}, expected Output"),
            Some(*t),
        )
    } else {
        pass("Output first (no handshake)")
    }
}

fn hs002(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let requests: Vec<(u64, usize)> = {
        let mut seen = BTreeSet::new();
        cx.s()
            .stream_delivered()
            .filter(|(_, d)| {
                d.payload_type == PayloadType::HANDSHAKE_REQUEST && d.is_valid() && seen.insert(d.seq)
            })
            .filter_map(|(f, d)| {
                serde_json::from_slice::<ssm_wire::payload::HandshakeRequest>(&d.payload)
                    .ok()
                    .map(|r| (f.t, r.requested_client_actions.map_or(0, |a| a.len())))
            })
            .collect()
    };
    if requests.is_empty() {
        return not_ex("no HandshakeRequest reached the client");
    }
    let responses: Vec<(u64, Vec<u8>)> = stream_payloads(cx.s())
        .into_iter()
        .filter(|m| m.2 == PayloadType::HANDSHAKE_RESPONSE)
        .map(|m| (m.0, m.3))
        .collect();
    if responses.len() != requests.len() {
        return fail(
            format!(
                "{} HandshakeRequests answered by {} HandshakeResponses",
                requests.len(),
                responses.len()
            ),
            Some(requests[0].0),
        );
    }
    for ((_, n), (t, body)) in requests.iter().zip(&responses) {
        let Ok(r) = serde_json::from_slice::<ssm_wire::payload::HandshakeResponse>(body) else {
            return fail("HandshakeResponse does not parse", Some(*t));
        };
        let actions = r.processed_client_actions.unwrap_or_default();
        if actions.len() != *n {
            return fail(format!("{} ProcessedClientActions for {n} requested", actions.len()), Some(*t));
        }
        if let Some(a) = actions.iter().find(|a| !(1..=3).contains(&a.action_status)) {
            return fail(format!("ActionStatus {} for {}", a.action_status, a.action_type), Some(*t));
        }
    }
    pass("every HandshakeRequest answered, one action each")
}

fn hs003(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("judged on agents");
    }
    let msgs = stream_payloads(cx.s());
    let Some(req) = msgs.iter().find(|m| m.2 == PayloadType::HANDSHAKE_REQUEST) else {
        return not_ex("no handshake");
    };
    let answered = cx
        .s()
        .stream_delivered()
        .find(|(_, d)| d.payload_type == PayloadType::HANDSHAKE_RESPONSE && d.is_valid());
    match answered {
        Some((f, d)) => {
            let ok =
                serde_json::from_slice::<ssm_wire::payload::HandshakeResponse>(&d.payload).ok().is_some_and(
                    |r| r.processed_client_actions.unwrap_or_default().iter().all(|a| a.action_status == 1),
                );
            if f.t <= req.0 + 15_000 * MS && ok {
                return not_ex("the handshake succeeded in time");
            }
            match cx.s().ended() {
                Some((t, why)) if why.starts_with("handshake") => {
                    pass(format!("session failed at {} ({why})", ms(t)))
                }
                _ => fail("a failed or late handshake did not fail the session", Some(f.t)),
            }
        }
        None => match cx.s().ended() {
            Some((t, why)) if why == "handshake_timeout" => {
                if t + SLACK < req.0 + 15_000 * MS {
                    fail(format!("gave up after {}, before 15 s", ms(t - req.0)), Some(t))
                } else if t > req.0 + 15_000 * MS + 2 * TICK {
                    fail(format!("gave up only after {}", ms(t - req.0)), Some(t))
                } else {
                    pass(format!("handshake timed out after {}", ms(t - req.0)))
                }
            }
            Some((t, why)) => fail(format!("ended ({why}) instead of timing out the handshake"), Some(t)),
            None if cx.o.end_t > req.0 + 16_000 * MS => fail(
                "no HandshakeResponse for more than 15 s and the session went on",
                Some(req.0 + 15_000 * MS),
            ),
            None => not_ex("the run ended before the handshake deadline"),
        },
    }
}

fn hs004(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let s = cx.s();
    // When the session became ready for the client: HandshakeComplete, or the first Output.
    let ready_at = s
        .stream_delivered()
        .filter(|(_, d)| d.is_valid())
        .find(|(_, d)| {
            d.payload_type == PayloadType::HANDSHAKE_COMPLETE || d.payload_type == PayloadType::OUTPUT
        })
        .map(|(f, _)| f.t);
    let app: Vec<_> = stream_payloads(s)
        .into_iter()
        .filter(|m| !matches!(m.2, PayloadType::HANDSHAKE_RESPONSE | PayloadType::ENC_CHALLENGE_RESPONSE))
        .collect();
    let Some(first) = app.first() else { return not_ex("the client sent no application data") };
    match ready_at {
        Some(r) if first.0 >= r => pass("application data only after the session was ready"),
        _ => fail(format!("sent {} (seq {}) before the session was ready", first.2, first.1), Some(first.0)),
    }
}

// ---------------------------------------------------------------- KMS encryption

/// The session's KMS encryption context as the trace shows it: `aws:ssm:SessionId` from the
/// agent's agent_session_state, `aws:ssm:TargetId` from its OpenDataChannel (`ClientInstanceId`).
fn kms_context(o: &Observed) -> Option<(String, String)> {
    let target =
        o.agent.wrote_other.iter().filter(|(_, k, _)| *k == MsgKind::Text).find_map(|(_, _, b)| {
            match OpenDataChannel::parse(b).ok()? {
                OpenDataChannel::Agent(a) => Some(a.client_instance_id),
                OpenDataChannel::Client(_) => None,
            }
        })?;
    let session = o
        .agent
        .wrote
        .iter()
        .filter_map(|f| f.f.as_ref())
        .filter(|d| d.message_type == MessageType::AgentSessionState)
        .find_map(|d| serde_json::from_slice::<AgentSessionState>(&d.payload).ok())?
        .session_id;
    Some((session, target))
}

/// The plaintext of an EncChallenge payload sealed with `key`.
fn challenge_plain(body: &[u8], key: &kms::AesKey) -> Option<Vec<u8>> {
    serde_json::from_slice::<EncChallenge>(body).ok().and_then(|c| kms::open(key, &c.challenge).ok())
}

/// HS-006, judged with the harness's fake KMS: the data key the client generated (read back
/// from its HandshakeResponse), every encrypted payload the side under test wrote (AES-256-GCM,
/// nonce prefix, its half of the key), and the challenge exchange within 15 s. What the peer
/// reported (an undecryptable payload or challenge, not caused by a fault) fails it too.
fn hs006(cx: &Cx<'_>) -> Outcome {
    if let Some((d, t)) = cx.sender.get(&Req::Hs006) {
        return fail(d.clone(), Some(*t));
    }
    let (agent, client) = (&cx.o.agent, &cx.o.client);
    let agent_msgs = stream_payloads(agent);
    let wanted = cx.kms && cx.session.supports_kms();
    let Some((req_t, _, _, req_body)) = agent_msgs.iter().find(|m| m.2 == PayloadType::HANDSHAKE_REQUEST)
    else {
        return match agent_msgs.first() {
            Some(first) if wanted && cx.sut == Role::Agent => {
                fail("KMS encryption is configured, but the agent started without a handshake", Some(first.0))
            }
            _ => not_ex("no handshake"),
        };
    };
    let requested = serde_json::from_slice::<HandshakeRequest>(req_body).ok().and_then(|r| {
        r.requested_client_actions.unwrap_or_default().iter().find_map(|a| a.as_kms_encryption())
    });
    if requested.is_none() {
        return if wanted && cx.sut == Role::Agent {
            fail(
                "KMS encryption is configured, but the HandshakeRequest has no KMSEncryption action",
                Some(*req_t),
            )
        } else {
            not_ex("KMS encryption was not requested")
        };
    }
    let Some((resp_t, _, _, resp_body)) =
        stream_payloads(client).into_iter().find(|m| m.2 == PayloadType::HANDSHAKE_RESPONSE)
    else {
        return not_ex("the client did not answer the HandshakeRequest");
    };
    let blame_client = |detail: String| {
        if cx.sut == Role::Client {
            fail(detail, Some(resp_t))
        } else {
            not_ex(format!("the harness's client failed: {detail}"))
        }
    };
    let action = serde_json::from_slice::<HandshakeResponse>(&resp_body).ok().and_then(|r| {
        r.processed_client_actions.unwrap_or_default().into_iter().find(|a| a.action_type == "KMSEncryption")
    });
    let Some(action) = action else {
        return blame_client("the HandshakeResponse has no KMSEncryption action".into());
    };
    if action.action_status != 1 {
        return not_ex(format!(
            "the client declined KMS encryption (status {}: {}); HS-003 judges the agent's reaction",
            action.action_status, action.error
        ));
    }
    let Some(result) = action.as_kms_encryption() else {
        return blame_client("KMSEncryption succeeded without a KMSCipherTextKey".into());
    };
    let Some((session_id, target_id)) = kms_context(cx.o) else {
        return not_ex("the trace does not show the session's encryption context");
    };
    let ctx = kms::EncryptionContext { session_id: &session_id, target_id: &target_id };
    let key = match Kms::harness().decrypt(&result.kms_cipher_text_key, &ctx) {
        Ok(k) => k,
        Err(e) => {
            return blame_client(format!(
                "KMSCipherTextKey is not a data key KMS issued for this session's encryption context: {e}"
            ))
        }
    };
    let (a2c, c2a) = (key.agent_key(), key.client_key());
    let (own, own_name) = match cx.sut {
        Role::Client => (c2a, "the client key (data key bytes 32..63)"),
        Role::Agent => (a2c, "the agent key (data key bytes 0..31)"),
    };
    let mut n = 0;
    for (t, seq, pt, body) in stream_payloads(cx.s()) {
        if t < resp_t || !kms::encrypts(cx.sut, pt) {
            continue;
        }
        if kms::open(&own, &body).is_err() {
            return fail(
                format!(
                    "{pt} seq {seq} is not AES-256-GCM (12-byte nonce, ciphertext, tag) under {own_name}"
                ),
                Some(t),
            );
        }
        n += 1;
    }
    let limit = 15_000 * MS;
    let challenge = agent_msgs.iter().find(|m| m.2 == PayloadType::ENC_CHALLENGE_REQUEST);
    match cx.sut {
        Role::Agent => {
            let complete = agent_msgs.iter().find(|m| m.2 == PayloadType::HANDSHAKE_COMPLETE).map(|m| m.0);
            let Some((ct, cseq, _, cbody)) = challenge else {
                return match complete {
                    Some(c) => fail("HandshakeComplete without the encryption challenge", Some(c)),
                    None => not_ex("the agent sent no encryption challenge"),
                };
            };
            let Some(plain) = challenge_plain(cbody, &a2c) else {
                return fail(
                    format!("the EncChallengeRequest (seq {cseq}) does not decrypt with the agent key (data key bytes 0..31)"),
                    Some(*ct),
                );
            };
            if plain.len() != kms::CHALLENGE_LEN {
                return fail(format!("the challenge has {} bytes, not 64", plain.len()), Some(*ct));
            }
            // Answers that reached the agent intact, and whether each is right.
            let answers: Vec<(u64, bool)> = agent
                .stream_delivered()
                .filter(|(_, d)| d.is_valid() && d.payload_type == PayloadType::ENC_CHALLENGE_RESPONSE)
                .map(|(f, d)| (f.t, challenge_plain(&d.payload, &c2a).is_some_and(|p| p == plain)))
                .collect();
            let good = answers.iter().find(|a| a.1).map(|a| a.0).filter(|&g| g <= ct + limit);
            let deadline = ct + limit;
            match (complete, good) {
                (Some(c), Some(g)) if c >= g => pass(format!(
                    "data key from KMS, challenge answered after {}, {n} payloads sealed with the agent key",
                    ms(g - ct)
                )),
                (Some(c), _) => {
                    fail("HandshakeComplete without a correct answer to the challenge in time", Some(c))
                }
                (None, Some(_)) => match cx.s().ended() {
                    Some((t, why)) => {
                        not_ex(format!("the session ended ({why}) at {} before completing", ms(t)))
                    }
                    None => not_ex("the run ended before HandshakeComplete"),
                },
                (None, None) => match cx.s().ended() {
                    Some((t, why)) if answers.is_empty() => {
                        if why != "challenge_timeout" && t + SLACK < deadline {
                            not_ex(format!("the session ended ({why}) before the challenge deadline"))
                        } else if t + SLACK < deadline {
                            fail(
                                format!("gave up on the challenge after {}, before 15 s", ms(t - ct)),
                                Some(t),
                            )
                        } else if t > deadline + 2 * TICK {
                            fail(format!("gave up on the challenge only after {}", ms(t - ct)), Some(t))
                        } else {
                            pass(format!(
                                "no answer to the challenge: the session failed after {}",
                                ms(t - ct)
                            ))
                        }
                    }
                    Some((t, why)) if t <= deadline + 2 * TICK => {
                        pass(format!("a wrong answer to the challenge failed the session ({why})"))
                    }
                    Some((t, _)) => {
                        fail("a wrong answer to the challenge did not fail the session in time", Some(t))
                    }
                    None if cx.o.end_t > deadline + 2 * TICK => fail(
                        "no correct answer to the challenge within 15 s and the session went on",
                        Some(deadline),
                    ),
                    None => not_ex("the run ended before the challenge deadline"),
                },
            }
        }
        Role::Client => {
            let delivered = client
                .stream_delivered()
                .find(|(_, d)| d.is_valid() && d.payload_type == PayloadType::ENC_CHALLENGE_REQUEST)
                .map(|(f, d)| (f.t, d.payload.clone()));
            let Some((dt, body)) = delivered else {
                return not_ex("no encryption challenge reached the client");
            };
            let Some(plain) = challenge_plain(&body, &a2c) else {
                return not_ex("the challenge the client got does not decrypt (the harness's agent failed)");
            };
            let answer =
                stream_payloads(client).into_iter().find(|m| m.2 == PayloadType::ENC_CHALLENGE_RESPONSE);
            match answer {
                None => match cx.s().ended() {
                    Some((t, why)) if t <= dt + limit && why != "channel_closed" => {
                        fail(format!("the client ended ({why}) instead of answering the encryption challenge"), Some(t))
                    }
                    _ if cx.o.end_t > dt + limit => {
                        fail("the client did not answer the encryption challenge within 15 s", Some(dt + limit))
                    }
                    _ => not_ex("the run ended before the client answered the challenge"),
                },
                Some((at, seq, _, abody)) => match challenge_plain(&abody, &c2a) {
                    _ if at > dt + limit => {
                        fail(format!("answered the challenge after {}, more than 15 s", ms(at - dt)), Some(at))
                    }
                    None => fail(
                        format!("the answer to the challenge (seq {seq}) does not decrypt with the client key (data key bytes 32..63)"),
                        Some(at),
                    ),
                    Some(p) if p != plain => fail("the answer to the challenge holds other bytes than the challenge", Some(at)),
                    Some(_) => pass(format!(
                        "data key generated with KMS, challenge answered after {}, {n} payloads sealed with the client key",
                        ms(at - dt)
                    )),
                },
            }
        }
    }
}

// ---------------------------------------------------------------- resume

fn client_breaks(cx: &Cx<'_>) -> Vec<u64> {
    let end = cx.ended_at().unwrap_or(u64::MAX);
    cx.s().closed.iter().filter(|c| c.0 < end).map(|c| c.0).collect()
}

fn resume_calls(s: &Side) -> Vec<&super::observe::Call> {
    s.calls.iter().filter(|c| c.call.contains("ResumeSession")).collect()
}

fn res001(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let breaks = client_breaks(cx);
    if breaks.is_empty() {
        return not_ex("the client's websocket never broke");
    }
    let calls = resume_calls(cx.s());
    for b in &breaks {
        let Some(call) = calls.iter().find(|c| c.t >= *b) else {
            if cx.o.end_t > b + 10_000 * MS && cx.s().open_checks.iter().all(|c| c.0 < *b) {
                return fail("the websocket broke and ResumeSession was never called", Some(*b));
            }
            continue;
        };
        if let Some(tok) = call.answer.split("token: Some(\"").nth(1).and_then(|r| r.split('"').next()) {
            let next_open = cx.s().open_checks.iter().find(|c| c.0 > call.t);
            if let Some(o) = next_open {
                if o.1 != tok {
                    return fail(
                        format!("reconnected with {:?}, not the token ResumeSession returned", o.1),
                        Some(o.0),
                    );
                }
            }
        }
    }
    pass(format!("{} breaks, each followed by ResumeSession", breaks.len()))
}

fn failed(c: &super::observe::Call) -> bool {
    c.answer.starts_with("Error")
}

fn res002(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let calls = resume_calls(cx.s());
    // Runs of consecutive failed calls.
    let mut best: Vec<&super::observe::Call> = Vec::new();
    let mut cur: Vec<&super::observe::Call> = Vec::new();
    for c in calls {
        cur.push(c);
        if !failed(c) {
            if cur.len() > best.len() {
                best = cur.clone();
            }
            cur.clear();
        }
    }
    if cur.len() > best.len() {
        best = cur;
    }
    let fails: Vec<_> = best.iter().filter(|c| failed(c)).collect();
    if fails.len() < 3 {
        return not_ex("fewer than three ResumeSession failures in a row");
    }
    // Sleeps from each failed answer to the next call: d, 2d, 4d ... with d in [100, 199] ms.
    let gaps: Vec<u64> = best.windows(2).map(|w| w[1].called_at.saturating_sub(w[0].t)).collect();
    let first = gaps[0];
    let lo = 100 * MS - SLACK;
    let hi = 200 * MS + SLACK;
    if first < lo || first > hi {
        return fail(format!("first retry after {}, expected 100-199 ms", ms(first)), Some(best[1].t));
    }
    for w in gaps.windows(2).take(3) {
        let ratio = w[1] as f64 / w[0].max(1) as f64;
        if !(1.4..=2.6).contains(&ratio) && w[1] < 5000 * MS {
            return fail(format!("retry delays {} then {}: not doubling", ms(w[0]), ms(w[1])), None);
        }
    }
    if best.len() < 6 && best.last().is_some_and(|c| failed(c)) && cx.s().ended().is_none() {
        return fail(format!("stopped after {} ResumeSession calls", best.len()), best.last().map(|c| c.t));
    }
    pass(format!("{} calls with exponential backoff", best.len()))
}

fn res003(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let calls = resume_calls(cx.s());
    let Some(last) = calls.last() else { return not_ex("ResumeSession never called") };
    let gone = calls.iter().any(|c| c.answer.contains("DoesNotExist") || c.answer.contains("token: None"));
    let reconnected_after = cx.s().open_checks.iter().any(|c| c.2 && c.0 > last.t);
    if gone || reconnected_after || cx.s().ended().is_some() {
        return pass("kept resuming until reconnected or told the session is gone");
    }
    if !failed(last) {
        return not_ex("the last resume succeeded");
    }
    let quiet = cx.o.end_t.saturating_sub(last.t);
    if quiet > 10_000 * MS {
        fail(
            format!(
                "stopped calling ResumeSession after {} failed calls, {} before the end",
                calls.len(),
                ms(quiet)
            ),
            Some(last.t),
        )
    } else {
        not_ex("the run ended while the client was still retrying")
    }
}

fn res004(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let Some(c) = resume_calls(cx.s()).into_iter().find(|c| c.answer.contains("token: None")) else {
        return not_ex("no ResumeSession answer without TokenValue");
    };
    match cx.s().ended() {
        Some((t, why)) if why == "timed_out" && t >= c.t => pass("ended as timed out"),
        Some((t, why)) => fail(format!("ended as {why}, not timed out"), Some(t)),
        None => fail("a ResumeSession answer without TokenValue did not end the session", Some(c.t)),
    }
}

fn res005(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let connects: Vec<(u64, String)> = cx
        .s()
        .events_of("connect")
        .filter_map(|e| e.v.get("url").and_then(|u| u.as_str()).map(|u| (e.t, u.to_owned())))
        .collect();
    let mut n = 0;
    for c in resume_calls(cx.s()) {
        let Some(url) = c.answer.split("stream_url: Some(\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let Some(next) = connects.iter().find(|x| x.0 >= c.t) else { continue };
        let previous = connects.iter().rev().find(|x| x.0 < c.t).map(|x| x.1.as_str());
        if previous == Some(url) {
            continue;
        }
        n += 1;
        if next.1 != url {
            return fail(
                format!("ResumeSession returned StreamUrl {url:?}; reconnected to {:?}", next.1),
                Some(next.0),
            );
        }
    }
    if n == 0 {
        not_ex("ResumeSession never returned a new StreamUrl")
    } else {
        pass(format!("{n} new StreamUrls used"))
    }
}

fn res006(cx: &Cx<'_>) -> Outcome {
    let s = cx.s();
    let reopens: Vec<u64> = s.open_checks.iter().filter(|c| c.2).skip(1).map(|c| c.0).collect();
    if reopens.is_empty() {
        return not_ex("no reconnect");
    }
    let acks = cx.acks_to_sut();
    let mut n = 0;
    for r in &reopens {
        for (seq, copies) in cx.sut_copies() {
            let sent_before = copies.first().is_some_and(|c| c.0 < *r);
            let acked_before = acks.get(&seq).is_some_and(|&a| a < *r);
            if !sent_before || acked_before {
                continue;
            }
            n += 1;
            let resent = copies.iter().any(|c| c.0 >= *r);
            let acked_later = acks.contains_key(&seq);
            if !resent && !acked_later && cx.ended_at().is_none() {
                return fail(
                    format!("message {seq}, unacknowledged at the reconnect, was never sent again"),
                    Some(*r),
                );
            }
        }
    }
    if n == 0 {
        pass("nothing was unacknowledged at any reconnect")
    } else {
        pass(format!("{n} unacknowledged messages replayed after reconnects"))
    }
}

fn res007(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let s = cx.s();
    let mut n = 0;
    for (t, _, _, accepted) in &s.offered {
        if s.connected_at(*t)
            || cx.ended_at().is_some_and(|e| e < *t)
            || s.open_checks.iter().all(|c| c.0 > *t)
        {
            continue;
        }
        n += 1;
        if !accepted {
            return fail("input offered during an outage was refused", Some(*t));
        }
    }
    if n == 0 {
        not_ex("no input during an outage")
    } else {
        pass(format!("{n} inputs during outages buffered"))
    }
}

fn res008(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("judged on agents");
    }
    let s = cx.s();
    let calls: Vec<_> = s.calls.iter().filter(|c| c.call.contains("CreateDataChannel")).collect();
    if calls.is_empty() {
        return not_ex("the agent never reconnected");
    }
    if let Some(i) = calls.iter().position(|c| c.answer.contains("SessionTerminated")) {
        if calls.len() > i + 1 {
            return fail(
                "kept calling CreateDataChannel after \"Session is already terminated\"",
                Some(calls[i + 1].t),
            );
        }
        return pass("stopped on \"Session is already terminated\"");
    }
    for c in &calls {
        if let Some(o) = s.open_checks.iter().find(|o| o.0 > c.t) {
            if !o.2 {
                return fail(format!("reconnected with a token that was refused: {}", o.3), Some(o.0));
            }
        }
    }
    pass(format!("{} reconnects with fresh tokens", calls.len()))
}

fn res009(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let s = cx.s();
    let closed = cx.o.terminated_at.or_else(|| {
        s.delivered
            .iter()
            .find(|f| f.f.as_ref().is_some_and(|d| d.message_type == MessageType::ChannelClosed))
            .map(|f| f.t)
    });
    let Some(t) = closed else { return not_ex("the session was never terminated") };
    if let Some(o) = s.open_checks.iter().find(|o| o.0 > t && o.2) {
        return fail("a data channel opened after the session was terminated", Some(o.0));
    }
    let after: Vec<_> = resume_calls(s).into_iter().filter(|c| c.t > t).collect();
    if after.len() > 6 {
        return fail(
            format!("called ResumeSession {} times on a terminated session", after.len()),
            after.last().map(|c| c.t),
        );
    }
    pass("no data channel after termination")
}

// ---------------------------------------------------------------- termination

fn term_on_closed(cx: &Cx<'_>, role: Role) -> Outcome {
    if cx.sut != role {
        return not_ex(format!("judged on {role}s"));
    }
    let s = cx.s();
    let Some(f) = s
        .delivered
        .iter()
        .find(|f| f.f.as_ref().is_some_and(|d| d.message_type == MessageType::ChannelClosed && d.is_valid()))
    else {
        return not_ex("no channel_closed reached the side under test");
    };
    match s.ended() {
        Some((t, why)) if t <= f.t + 1000 * MS => {
            if let Some((g, d)) = s.stream_written().find(|(g, _)| g.t > t) {
                return fail(format!("sent stream message {} after the session ended", d.seq), Some(g.t));
            }
            pass(format!("session ended ({why})"))
        }
        _ => fail("channel_closed did not end the session", Some(f.t)),
    }
}

fn term003(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Client {
        return not_ex("judged on clients");
    }
    let Some((t, _, _)) =
        cx.o.steps.iter().find(|(_, _, s)| matches!(s, Step::Terminate { via: TerminateVia::Interrupt }))
    else {
        return not_ex("no user interrupt");
    };
    let flag = stream_payloads(cx.s()).into_iter().any(|m| {
        m.0 >= *t && m.2 == PayloadType::FLAG && m.3 == ssm_wire::FlagValue::TerminateSession.to_payload()
    });
    let api = cx.s().calls.iter().any(|c| c.t >= *t && c.call.contains("TerminateSession"));
    let port = matches!(cx.session, SessionKind::Port);
    match (port, flag, api) {
        (true, true, _) => pass("port session: Flag TerminateSession sent"),
        (true, false, true) => {
            fail("port session with a new agent: called the API instead of sending the flag", Some(*t))
        }
        (false, _, true) => pass("TerminateSession API called"),
        (false, true, false) => pass("flag sent"),
        _ => fail("the interrupt neither sent the flag nor called TerminateSession", Some(*t)),
    }
}

fn term004(cx: &Cx<'_>) -> Outcome {
    if cx.sut != Role::Agent {
        return not_ex("judged on agents");
    }
    let s = cx.s();
    let terminating = s.wrote.iter().find(|f| {
        f.f.as_ref().is_some_and(|d| {
            d.message_type == MessageType::AgentSessionState
                && String::from_utf8_lossy(&d.payload).contains("Terminating")
        })
    });
    let Some(term) = terminating else { return not_ex("the agent never reported Terminating") };
    let finish = cx.o.steps.iter().find(|(_, _, st)| matches!(st, Step::Finish { .. })).map(|x| x.0);
    let start = finish.unwrap_or(0);
    let acks = cx.acks_to_sut();
    let unacked: Vec<i64> =
        cx.sut_copies().keys().filter(|q| acks.get(q).is_none_or(|&a| a > term.t)).copied().collect();
    if unacked.is_empty() || term.t >= start + 2000 * MS - SLACK {
        pass("Terminating only after the outgoing buffer drained (or 2 s passed)")
    } else {
        fail(
            format!(
                "reported Terminating with {} unacknowledged messages, {} after finishing",
                unacked.len(),
                ms(term.t - start)
            ),
            Some(term.t),
        )
    }
}
