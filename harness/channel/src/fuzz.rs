//! Fuzz body for one machine. The cargo-fuzz target `channel_ops` calls it, and
//! `cargo test -p ssm-channel --test corpus` replays the committed corpus through it on stable.
//!
//! The input picks a role, a profile (conformant, the reference of the role, or any mutant), a
//! session kind and a seed, then a bounded list of operations: frames (arbitrary bytes, valid
//! frames a peer or the service could send, and mutations of them), text messages, transport and
//! control-plane outcomes, application calls and time passing. After every operation the machine
//! is drained (transmits, then events) and a set of invariants is checked; any panic is a bug.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use ssm_wire::payload::{
    self, AcknowledgeContent, ChannelClosed, HandshakeComplete, HandshakeRequest, HandshakeResponse,
    OpenDataChannel, ProcessedClientAction, RequestedClientAction,
};
use ssm_wire::{decode, Frame, HeaderFlags, MessageType, PayloadType};
use uuid::Uuid;

use crate::{
    ApiError, ApiResult, Behaviour, Channel, Config, Event, Impl, Mutant, Role, SessionKind, Time, Transmit,
};

/// Operations per input.
pub const MAX_OPS: usize = 64;
/// Bytes of any payload or raw message an operation carries.
pub const MAX_BYTES: usize = 160;
/// Largest single step of virtual time, in milliseconds.
const MAX_STEP_MS: u64 = 400_000;

/// Which frame a peer or the service could send.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Valid {
    /// A stream message from the peer, `delta` away from the expected sequence number.
    Stream {
        delta: i8,
        payload_type: u8,
    },
    /// An ack of one of the machine's own stream messages (by index among those seen), possibly
    /// naming the wrong sequence number or message id.
    Ack {
        which: u8,
        seq_delta: i8,
        wrong_id: bool,
    },
    ChannelClosed,
    Pause,
    Start,
    /// HandshakeRequest (to a client) or HandshakeResponse (to an agent) in order.
    Handshake {
        status: u8,
    },
    HandshakeComplete,
    /// A frame of a type the machine does not know.
    Unknown,
}

/// How to damage a valid frame.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Damage {
    None,
    Flip { at: u8, bit: u8 },
    Truncate { to: u8 },
    Extend { by: u8 },
    Set { at: u8, value: u8 },
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Api {
    Resumed { token: bool, url: bool },
    NullToken,
    DataChannelToken,
    Terminated,
    Error(u8),
}

#[derive(Debug, Clone, Arbitrary)]
enum Op {
    Raw(Vec<u8>),
    Valid {
        frame: Valid,
        payload: Vec<u8>,
        damage: Damage,
    },
    Text(Vec<u8>),
    TransportOpen,
    TransportLost,
    Pong,
    Api(Api),
    /// Time passes by this many milliseconds (scaled), then `handle_timeout`.
    Advance(u32),
    /// Jump to the machine's next deadline and handle it.
    ToDeadline,
    Send {
        payload_type: u8,
        bytes: Vec<u8>,
    },
    Finish(Option<i8>),
    Terminate,
    ConsumerReady(bool),
}

/// Everything observable about one run, to check determinism.
#[derive(Debug, Default, PartialEq)]
struct Trace {
    out: Vec<String>,
}

/// The fuzz body: never panics for any input unless the machine breaks an invariant.
pub fn channel_ops_body(data: &[u8]) {
    let first = run(data);
    let second = run(data);
    assert!(first == second, "the machine is not deterministic for the same input");
}

fn pick_behaviour(u: &mut Unstructured<'_>, role: Role) -> arbitrary::Result<Behaviour> {
    let n = u.int_in_range(0..=Mutant::ALL.len() + 1)?;
    Ok(match n {
        0 => Behaviour::conformant(role),
        1 => Behaviour::for_impl(&Impl::Reference, role),
        i => {
            let m = Mutant::ALL.get(i - 2).copied().unwrap_or(Mutant::SkipDigest);
            Behaviour::for_impl(&Impl::Mutant(m), role)
        }
    })
}

fn run(data: &[u8]) -> Trace {
    let mut trace = Trace::default();
    let mut u = Unstructured::new(data);
    let _ = run_ops(&mut u, &mut trace);
    trace
}

/// State the body keeps next to the machine to check invariants and build valid frames.
#[derive(Debug)]
struct World {
    now: Time,
    ch: Channel,
    bug: Option<Mutant>,
    /// First copy of every stream message the machine wrote, by sequence number.
    sent: BTreeMap<i64, Vec<u8>>,
    /// The machine's stream messages in the order first written: (seq, message id, type).
    own: Vec<(i64, Uuid, MessageType)>,
    max_seq: Option<i64>,
    last_next_seq: i64,
    last_expected: i64,
    ended: bool,
    peer_clock: u64,
}

fn run_ops(u: &mut Unstructured<'_>, trace: &mut Trace) -> arbitrary::Result<()> {
    let role = if u.arbitrary::<bool>()? { Role::Client } else { Role::Agent };
    let behaviour = pick_behaviour(u, role)?;
    let kind = match u.int_in_range(0..=3u8)? {
        0 => SessionKind::Shell,
        1 => SessionKind::InteractiveCommands,
        2 => SessionKind::NonInteractiveCommands,
        _ => SessionKind::Port,
    };
    let seed: u64 = u.arbitrary()?;
    let bug = behaviour.bug;
    let mut cfg = Config::new(role, behaviour, seed);
    cfg.session_kind = kind;
    let mut w = World {
        now: Time::ZERO,
        ch: Channel::new(Time::ZERO, cfg),
        bug,
        sent: BTreeMap::new(),
        own: Vec::new(),
        max_seq: None,
        last_next_seq: 0,
        last_expected: 0,
        ended: false,
        peer_clock: 1_700_000_000_000,
    };
    w.drain(trace);
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let op: Op = u.arbitrary()?;
        w.apply(op);
        w.drain(trace);
    }
    Ok(())
}

fn clip(mut v: Vec<u8>) -> Vec<u8> {
    v.truncate(MAX_BYTES);
    v
}

impl World {
    fn apply(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Raw(bytes) => self.ch.handle_binary(now, &clip(bytes)),
            Op::Valid { frame, payload, damage } => {
                let mut bytes = self.valid_frame(frame, clip(payload));
                damage_bytes(&mut bytes, damage);
                self.ch.handle_binary(now, &bytes);
            }
            Op::Text(bytes) => self.ch.handle_text(now, &clip(bytes)),
            Op::TransportOpen => self.ch.handle_transport_open(now),
            Op::TransportLost => self.ch.handle_transport_lost(now),
            Op::Pong => self.ch.handle_pong(now),
            Op::Api(a) => {
                let result = match a {
                    Api::Resumed { token, url } => ApiResult::Resumed {
                        token: token.then(|| "token-resumed".to_owned()),
                        stream_url: url.then(|| "ws://127.0.0.1/resumed".to_owned()),
                    },
                    Api::NullToken => ApiResult::Resumed { token: None, stream_url: None },
                    Api::DataChannelToken => ApiResult::DataChannelToken { token: "token-agent".into() },
                    Api::Terminated => ApiResult::Terminated,
                    Api::Error(e) => ApiResult::Error(match e % 6 {
                        0 => ApiError::DoesNotExist,
                        1 => ApiError::SessionTerminated,
                        2 => ApiError::Throttled,
                        3 => ApiError::Internal,
                        4 => ApiError::AccessDenied,
                        _ => ApiError::Unreachable,
                    }),
                };
                self.ch.handle_api_result(now, result);
            }
            Op::Advance(ms) => {
                self.now = now + std::time::Duration::from_millis(u64::from(ms) % MAX_STEP_MS);
                self.timeout();
            }
            Op::ToDeadline => {
                if let Some(t) = self.ch.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            Op::Send { payload_type, bytes } => {
                let pt = PayloadType(u32::from(payload_type % 14));
                let r = self.ch.send(now, pt, &clip(bytes));
                if let Ok(seq) = r {
                    assert!(seq >= 0, "negative sequence number {seq}");
                }
            }
            Op::Finish(code) => self.ch.finish(now, code.map(i32::from)),
            Op::Terminate => self.ch.terminate(now),
            Op::ConsumerReady(r) => self.ch.set_consumer_ready(r),
        }
    }

    /// `handle_timeout` at the current time, repeated while the machine says a deadline is due:
    /// a few calls at one instant must leave no deadline due, or a driver that waits for the
    /// next deadline would spin without time passing.
    fn timeout(&mut self) {
        let now = self.now;
        for _ in 0..8 {
            self.ch.handle_timeout(now);
            match self.ch.poll_timeout() {
                Some(t) if t <= now => continue,
                _ => return,
            }
        }
        panic!("handle_timeout({now}) eight times and a deadline is still due: {:?}", self.ch.poll_timeout());
    }

    fn valid_frame(&mut self, v: Valid, payload: Vec<u8>) -> Vec<u8> {
        let role = self.ch.role();
        let peer_stream = role.peer().outbound_stream();
        self.peer_clock += 1;
        let id = Uuid::from_u128(0x0b5e_55ed_0000_4000_8000_0000_0000_0000 | u128::from(self.peer_clock));
        let mut f = Frame {
            message_type: MessageType::Acknowledge,
            schema_version: 1,
            created_date_ms: self.peer_clock,
            sequence_number: 0,
            flags: HeaderFlags::NONE,
            message_id: id,
            payload_type: PayloadType::NONE,
            payload,
        };
        let stream = |f: &mut Frame, seq: i64, pt: PayloadType| {
            f.message_type = peer_stream;
            f.sequence_number = seq;
            f.payload_type = pt;
            f.flags = if seq == 0 { HeaderFlags::SYN } else { HeaderFlags::NONE };
            if f.payload.is_empty() {
                f.payload = b"x".to_vec();
            }
        };
        let expected = self.ch.expected_seq();
        match v {
            Valid::Stream { delta, payload_type } => {
                let pt = PayloadType(u32::from(payload_type % 14));
                stream(&mut f, expected.saturating_add(i64::from(delta % 5)).max(0), pt);
            }
            Valid::Ack { which, seq_delta, wrong_id } => {
                let own = if self.own.is_empty() {
                    None
                } else {
                    self.own.get(usize::from(which) % self.own.len()).copied()
                };
                let (seq, mid, t) = own.unwrap_or((0, id, role.outbound_stream()));
                let mid = if wrong_id { id } else { mid };
                let seq = seq.saturating_add(i64::from(seq_delta % 3));
                f.flags = HeaderFlags::SYN_FIN;
                f.payload = payload::to_go_json(&AcknowledgeContent::for_message(&t, mid, seq));
            }
            Valid::ChannelClosed => {
                f.message_type = MessageType::ChannelClosed;
                let output = String::from_utf8_lossy(&f.payload).into_owned();
                f.payload = payload::to_go_json(&ChannelClosed::new(
                    id,
                    self.peer_clock,
                    "i-0123456789abcdef0",
                    "harness-0123456789abcdef0",
                    &output,
                ));
            }
            Valid::Pause => {
                f.message_type = MessageType::PausePublication;
                f.payload = b"{}".to_vec();
            }
            Valid::Start => {
                f.message_type = MessageType::StartPublication;
                f.payload = b"{}".to_vec();
            }
            Valid::Handshake { status } => match role {
                Role::Client => {
                    let st = match status % 5 {
                        0 => payload::session_type::PORT,
                        1 => payload::session_type::NON_INTERACTIVE_COMMANDS,
                        2 => payload::session_type::STANDARD_STREAM,
                        3 => payload::session_type::INTERACTIVE_COMMANDS,
                        _ => "Unknown",
                    };
                    let request = HandshakeRequest {
                        agent_version: "3.3.987.0".into(),
                        requested_client_actions: Some(vec![RequestedClientAction::session_type(
                            st,
                            serde_json::Value::Null,
                        )]),
                    };
                    f.payload = payload::to_go_json(&request);
                    stream(&mut f, expected, PayloadType::HANDSHAKE_REQUEST);
                }
                Role::Agent => {
                    let response = HandshakeResponse {
                        client_version: "1.2.677.0".into(),
                        processed_client_actions: Some(vec![ProcessedClientAction {
                            action_type: payload::action_type::SESSION_TYPE.into(),
                            action_status: u32::from(status % 5),
                            action_result: serde_json::Value::Null,
                            error: String::new(),
                        }]),
                        errors: None,
                    };
                    f.payload = payload::to_go_json(&response);
                    stream(&mut f, expected, PayloadType::HANDSHAKE_RESPONSE);
                }
            },
            Valid::HandshakeComplete => {
                let complete = HandshakeComplete {
                    handshake_time_to_complete: 1_000_000,
                    customer_message: String::new(),
                };
                f.payload = payload::to_go_json(&complete);
                stream(&mut f, expected, PayloadType::HANDSHAKE_COMPLETE);
            }
            Valid::Unknown => {
                f.message_type = MessageType::from_wire(b"some_future_message_type        ");
            }
        }
        f.encode_with(&ssm_wire::Overrides::default())
    }

    /// Drains transmits then events and checks the invariants.
    fn drain(&mut self, trace: &mut Trace) {
        let bound = 4 * MAX_OPS + 32;
        let mut n = 0;
        while let Some(t) = self.ch.poll_transmit() {
            n += 1;
            assert!(n <= bound, "more than {bound} transmits queued at once");
            self.check_transmit(&t);
            trace.out.push(format!("{t:?}"));
        }
        let mut n = 0;
        while let Some(e) = self.ch.poll_event() {
            n += 1;
            assert!(n <= bound, "more than {bound} events queued at once");
            assert!(!self.ended, "event after Ended: {e:?}");
            if let Event::Ended(_) = e {
                self.ended = true;
                assert!(self.ch.is_ended());
            }
            trace.out.push(format!("{e:?}"));
        }
        if self.ch.is_ended() {
            assert!(self.ended, "the machine ended without an Ended event");
            assert_eq!(self.ch.poll_timeout(), None, "an ended machine asks for timeouts");
        }
        let b = self.ch.behaviour();
        assert!(self.ch.unacked() <= b.outgoing_capacity, "outgoing buffer over capacity");
        assert!(self.ch.reordered() <= b.reorder_capacity, "reorder buffer over capacity");
        let resets = self.bug == Some(Mutant::ResetSeqOnResume);
        if !resets {
            assert!(self.ch.next_seq() >= self.last_next_seq, "next_seq went backwards");
            assert!(self.ch.expected_seq() >= self.last_expected, "expected_seq went backwards");
        }
        self.last_next_seq = self.ch.next_seq();
        self.last_expected = self.ch.expected_seq();
        trace.out.push(format!(
            "next={} expected={} unacked={} reordered={} timeout={:?}",
            self.ch.next_seq(),
            self.ch.expected_seq(),
            self.ch.unacked(),
            self.ch.reordered(),
            self.ch.poll_timeout()
        ));
    }

    fn check_transmit(&mut self, t: &Transmit) {
        match t {
            Transmit::Text(bytes) => {
                let open = OpenDataChannel::parse(bytes);
                assert!(open.is_ok(), "text transmit is not OpenDataChannel: {open:?}");
            }
            Transmit::Ping(p) => assert_eq!(p, b"keepalive"),
            Transmit::Binary(bytes) => {
                let w = match decode(bytes) {
                    Ok(w) => w,
                    Err(e) => panic!("transmitted frame does not decode: {e}"),
                };
                assert_eq!(w.header_length, ssm_wire::layout::HEADER_LENGTH_VALUE);
                assert_eq!(w.payload_length as usize, w.payload.len());
                assert!(w.created_date_ms != 0, "CreatedDate 0 (FRAME-005)");
                if self.bug != Some(Mutant::SkipDigest) {
                    assert!(w.digest_matches(), "PayloadDigest does not match (FRAME-007)");
                }
                let role = self.ch.role();
                let t = w.message_type;
                assert!(
                    t == MessageType::Acknowledge
                        || t == MessageType::AgentSessionState && role == Role::Agent
                        || t == role.outbound_stream(),
                    "{role} sent a {t} frame"
                );
                if t == role.outbound_stream() {
                    self.check_stream(bytes, w.sequence_number, w.message_id, w.payload.is_empty());
                } else {
                    assert_eq!(w.sequence_number, 0, "control frame with a sequence number (TYPE-004)");
                    assert_eq!(w.flags, HeaderFlags::SYN_FIN, "control frame flags (TYPE-004)");
                }
            }
        }
    }

    fn check_stream(&mut self, bytes: &[u8], seq: i64, id: Uuid, empty: bool) {
        let bug = self.bug;
        if bug != Some(Mutant::EmptyPayloads) {
            assert!(!empty, "empty stream payload (FRAME-012)");
        }
        if bug == Some(Mutant::ResetSeqOnResume) {
            // Its counters restart on every reopen while old messages are still buffered.
            return;
        }
        assert!(seq >= 0 && seq < self.ch.next_seq(), "seq {seq} outside 0..{}", self.ch.next_seq());
        match self.sent.get(&seq) {
            Some(first) => {
                if bug != Some(Mutant::NewIdOnRetransmit) {
                    assert!(first.as_slice() == bytes, "retransmission of {seq} differs (SEQ-003)");
                }
            }
            None => {
                // A machine that flushes never-sent messages as soon as it can write again puts
                // new sequence numbers on the wire in increasing order (SEQ-001; gaps are
                // messages a peer acknowledged before they were ever written). The references
                // leave them to the resend scheduler, so a later message can be written first.
                if self.ch.behaviour().flush_unsent_on_open {
                    let highest = self.max_seq.unwrap_or(-1);
                    assert!(seq > highest, "new stream message {seq} written after {highest}");
                }
                self.max_seq = Some(self.max_seq.map_or(seq, |m| m.max(seq)));
                self.sent.insert(seq, bytes.to_vec());
                let id = if bug == Some(Mutant::UnswappedMessageId) { swap_halves(id) } else { id };
                self.own.push((seq, id, self.ch.role().outbound_stream()));
            }
        }
    }
}

fn swap_halves(id: Uuid) -> Uuid {
    let b = id.as_bytes();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&b[8..]);
    out[8..].copy_from_slice(&b[..8]);
    Uuid::from_bytes(out)
}

fn damage_bytes(bytes: &mut Vec<u8>, d: Damage) {
    match d {
        Damage::None => {}
        Damage::Flip { at, bit } => {
            if !bytes.is_empty() {
                let i = usize::from(at) % bytes.len();
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 1 << (bit % 8);
                }
            }
        }
        Damage::Truncate { to } => bytes.truncate(usize::from(to)),
        Damage::Extend { by } => bytes.extend(std::iter::repeat_n(0xa5, usize::from(by % 64))),
        Damage::Set { at, value } => {
            // Header fields live in the first 120 bytes; aim there most of the time.
            let i = usize::from(at) % 120;
            if let Some(b) = bytes.get_mut(i) {
                *b = value;
            }
        }
    }
}
