//! The state machine itself.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ssm_spec::Req;
use ssm_wire::payload::{
    self, action_status, action_type, AcknowledgeContent, AgentSessionState, ChannelClosed, EncChallenge,
    HandshakeComplete, HandshakeRequest, HandshakeResponse, KmsEncryptionRequest, KmsEncryptionResponse,
    OpenDataChannelAgent, OpenDataChannelClient, ProcessedClientAction, RequestedClientAction,
};
use ssm_wire::{decode, DecodeError, Frame, HeaderFlags, MessageType, Overrides, PayloadType, WireFrame};
use uuid::Uuid;

use crate::kms::{self, AesKey, DataKey, EncryptionContext};
use crate::profile::RetransmitScope;
use crate::profile::{AdvanceExpected, Behaviour, DigestCheck, EarlyDuplicate, Mutant, OutgoingFull};
use crate::rng::Rng;
use crate::rto::RtoEstimator;
use crate::{
    ApiCall, ApiError, ApiResult, Config, EndReason, Event, Note, PeerViolation, Role, SendError, Time,
    Transmit, DRAIN_TIMEOUT, HANDSHAKE_TIMEOUT, RESEND_TICK,
};

/// How many delivered messages are remembered to check retransmissions for identical bytes.
const SEEN_WINDOW: usize = 8192;

/// The most stream messages any sender can hold unacknowledged: the largest outgoing buffer of
/// protocol.md 5.4 (the agent's 100 000). A peer's sequence number can run ahead of this side's
/// expected number by at most this plus the reorder buffer (acknowledged early messages held
/// here); anything further was never sent in order (SEQ-001).
const MAX_SENDER_OUTSTANDING: i64 = 100_000;

/// The two AES-256-GCM keys of one side once KMS encryption is negotiated (HS-006).
#[derive(Clone)]
struct Cipher {
    /// Encrypts what this side sends.
    send: AesKey,
    /// Decrypts what the peer sends.
    recv: AesKey,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// The client sends with bytes 32..63 and reads with 0..31; the agent the other way round.
    fn new(role: Role, key: &DataKey, swapped: bool) -> Self {
        let (a2c, c2a) = (key.agent_key(), key.client_key());
        let (send, recv) = match (role, swapped) {
            (Role::Client, false) | (Role::Agent, true) => (c2a, a2c),
            (Role::Agent, false) | (Role::Client, true) => (a2c, c2a),
        };
        Cipher { send, recv }
    }
}

/// A stream message this side sent and the peer has not acknowledged yet.
#[derive(Debug, Clone)]
struct Outgoing {
    seq: i64,
    message_id: Uuid,
    bytes: Vec<u8>,
    /// When it was last written, or buffered if it was never written.
    last_sent: Time,
    /// When it was first buffered.
    first_sent: Time,
    /// Whether it ever reached a transport.
    sent: bool,
    attempts: u32,
}

/// The identity of a received stream message, to compare retransmissions with (SEQ-003).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    message_id: Uuid,
    created_date_ms: u64,
    digest: [u8; 32],
    payload_type: u32,
}

impl Identity {
    fn of(w: &WireFrame<'_>) -> Self {
        Identity {
            message_id: w.message_id,
            created_date_ms: w.created_date_ms,
            digest: w.payload_digest,
            payload_type: w.payload_type.0,
        }
    }
}

/// An early message held in the reorder buffer.
#[derive(Debug, Clone)]
struct Buffered {
    id: Identity,
    payload_type: PayloadType,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// A Connect was requested and its outcome is pending.
    Connecting,
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Handshake {
    /// Client: waiting for the agent's first stream message.
    ClientWaiting,
    /// Client: a HandshakeRequest was answered; waiting for HandshakeComplete. `challenged`:
    /// the encryption challenge was answered (KMS encryption only).
    ClientAnswered { session_type: Option<String>, challenged: bool },
    /// Agent: not started (no transport yet).
    AgentIdle,
    /// Agent: HandshakeRequest sent; `kms`: it asked for KMSEncryption.
    AgentAwaiting { deadline: Time, sent_at: Time, requested: usize, kms: bool },
    /// Agent: EncChallengeRequest sent with this plaintext challenge (HS-006).
    AgentChallenging { deadline: Time, sent_at: Time, challenge: Vec<u8> },
    /// Application data may flow.
    Done { session_type: String },
}

/// One outage: the calls made so far and when the next one is due.
#[derive(Debug, Clone)]
struct Reconnect {
    started: Time,
    /// The initial backoff delay d of this episode, in milliseconds.
    delay_ms: u64,
    calls: u32,
    exponent: u32,
    next_call: Option<Time>,
    in_flight: bool,
    exhausted: bool,
}

/// The data channel state machine. See the crate documentation for the driving contract.
#[derive(Debug)]
pub struct Channel {
    cfg: Config,
    b: Behaviour,
    rng: Rng,
    created: Time,
    link: Link,
    ever_opened: bool,
    token: String,
    url: String,
    client_id: String,
    // sending
    next_seq: i64,
    outgoing: VecDeque<Outgoing>,
    rto: RtoEstimator,
    resend_stopped: bool,
    paused: bool,
    // receiving
    expected: i64,
    reorder: BTreeMap<i64, Buffered>,
    seen: VecDeque<(i64, Identity)>,
    consumer_ready: bool,
    frozen: bool,
    // session
    handshake: Handshake,
    /// KMS encryption keys, once negotiated (HS-006).
    cipher: Option<Cipher>,
    peer_version: Option<String>,
    reconnect: Option<Reconnect>,
    initial_delay_ms: u64,
    terminate_requested: bool,
    draining_until: Option<Time>,
    finish_code: Option<i32>,
    last_now: Time,
    last_tick: Time,
    next_ping: Option<Time>,
    pong_due: Option<Time>,
    ended: Option<EndReason>,
    // outputs
    transmits: VecDeque<(Transmit, Option<i64>)>,
    events: VecDeque<Event>,
}

impl Channel {
    /// A machine at `now`. A client immediately asks for its first websocket (Connect); an
    /// agent does too, with the token it was configured with.
    pub fn new(now: Time, cfg: Config) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let client_id = rng.uuid_v4().hyphenated().to_string();
        let b = cfg.behaviour.clone();
        let initial_delay_ms = rng.range(b.resume.backoff.initial_ms.0, b.resume.backoff.initial_ms.1);
        let handshake = match cfg.role {
            Role::Client => Handshake::ClientWaiting,
            Role::Agent => Handshake::AgentIdle,
        };
        let mut ch = Channel {
            token: cfg.token.clone(),
            url: cfg.stream_url.clone(),
            cfg,
            b,
            rng,
            created: now,
            link: Link::Connecting,
            ever_opened: false,
            client_id,
            next_seq: 0,
            outgoing: VecDeque::new(),
            rto: RtoEstimator::default(),
            resend_stopped: false,
            paused: false,
            expected: 0,
            reorder: BTreeMap::new(),
            seen: VecDeque::new(),
            consumer_ready: true,
            frozen: false,
            handshake,
            cipher: None,
            peer_version: None,
            reconnect: None,
            initial_delay_ms,
            terminate_requested: false,
            draining_until: None,
            finish_code: None,
            last_now: now,
            last_tick: now,
            next_ping: None,
            pong_due: None,
            ended: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        ch.events.push_back(Event::Connect { url: ch.url.clone(), token: ch.token.clone() });
        ch
    }

    // ------------------------------------------------------------------ accessors

    pub fn role(&self) -> Role {
        self.cfg.role
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.b
    }

    /// The next sequence number this side will send.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// The next sequence number this side expects.
    pub fn expected_seq(&self) -> i64 {
        self.expected
    }

    /// Unacknowledged outgoing messages.
    pub fn unacked(&self) -> usize {
        self.outgoing.len()
    }

    /// Messages in the reorder buffer.
    pub fn reordered(&self) -> usize {
        self.reorder.len()
    }

    pub fn rto(&self) -> Duration {
        self.rto.rto()
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    pub fn end_reason(&self) -> Option<&EndReason> {
        self.ended.as_ref()
    }

    pub fn is_connected(&self) -> bool {
        self.link == Link::Up
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.handshake, Handshake::Done { .. })
    }

    /// The token the machine will present on its next open.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether nothing remains to do: nothing unacknowledged, nothing buffered, no pending
    /// reconnect or drain.
    pub fn is_quiescent(&self) -> bool {
        self.outgoing.is_empty()
            && self.reorder.is_empty()
            && self.reconnect.is_none()
            && self.draining_until.is_none()
            && self.transmits.is_empty()
    }

    // ------------------------------------------------------------------ outputs

    /// The next websocket message to write. Handing it out counts as writing it.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.link != Link::Up {
            return None;
        }
        let (t, commit) = self.transmits.pop_front()?;
        if let Some(seq) = commit {
            // The ack of an in-order message reached the transport: only now does a reference
            // receiver advance (ORD-004).
            if seq == self.expected {
                self.expected += 1;
                self.drain_reorder();
            }
        }
        Some(t)
    }

    /// The next instant at which [`Channel::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut consider = |x: Option<Time>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.ended.is_some() {
            return None;
        }
        consider(self.next_resend_tick());
        consider(self.reconnect.as_ref().and_then(|r| if r.in_flight { None } else { r.next_call }));
        if let Handshake::AgentAwaiting { deadline, .. } | Handshake::AgentChallenging { deadline, .. } =
            self.handshake
        {
            consider(Some(deadline));
        }
        consider(self.draining_until);
        if self.link == Link::Up {
            consider(self.next_ping);
            consider(self.pong_due);
        }
        t
    }

    /// The next event for the driver or application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ------------------------------------------------------------------ transport

    /// The websocket asked for by the last [`Event::Connect`] is open.
    pub fn handle_transport_open(&mut self, now: Time) {
        if self.ended.is_some() || self.link == Link::Up {
            return;
        }
        let reopen = self.ever_opened;
        self.link = Link::Up;
        self.ever_opened = true;
        self.reconnect = None;
        self.pong_due = None;
        self.next_ping = self.b.ping_interval.map(|_| now);
        let request_id = self.rng.uuid_v4().hyphenated().to_string();
        let token = if reopen && self.b.has_bug(Mutant::ReuseOldToken) {
            self.cfg.token.clone()
        } else {
            self.token.clone()
        };
        let open = match self.cfg.role {
            Role::Client => payload::to_go_json(&OpenDataChannelClient {
                message_schema_version: "1.0".to_owned(),
                request_id,
                token_value: token,
                client_id: self.client_id.clone(),
                client_version: Some(self.cfg.version.clone()),
            }),
            Role::Agent => payload::to_go_json(&OpenDataChannelAgent {
                message_schema_version: "1.0".to_owned(),
                request_id,
                token_value: token,
                client_instance_id: self.cfg.instance_id.clone(),
                client_id: self.client_id.clone(),
            }),
        };
        self.transmits.push_back((Transmit::Text(open), None));
        if reopen && self.b.has_bug(Mutant::ResetSeqOnResume) {
            self.next_seq = 0;
            self.expected = 0;
        }
        if self.cfg.role == Role::Agent {
            self.paused = false;
            if !reopen {
                self.send_session_state(now, "Connected");
            }
        }
        // Messages buffered while there was no transport go out before anything this open
        // produces, so that sequence numbers reach the wire in order.
        if self.b.flush_unsent_on_open {
            self.flush_unsent(now);
        }
        if self.cfg.role == Role::Agent && !reopen {
            self.start_agent_handshake(now);
        }
    }

    /// The service refused the websocket asked for by the last [`Event::Connect`] with a client
    /// error (HTTP 4xx other than 408 and 429: a missing or wrong signature, a malformed
    /// request). Asking again the same way would be refused again, so the session ends instead
    /// of reconnecting.
    pub fn handle_connect_refused(&mut self, _now: Time, status: u16, detail: String) {
        self.end(EndReason::UpgradeRefused { status, detail });
    }

    /// The websocket broke, or a Connect failed.
    pub fn handle_transport_lost(&mut self, now: Time) {
        if self.ended.is_some() {
            return;
        }
        let was = self.link;
        self.link = Link::Down;
        self.transmits.clear();
        self.pong_due = None;
        if self.frozen {
            // The receive loop that would have noticed is gone (FRAME-010).
            return;
        }
        if was == Link::Up && self.b.has_bug(Mutant::NoRetransmitAfterResume) {
            self.outgoing.clear();
        }
        match &mut self.reconnect {
            None => {
                let bo = self.b.resume.backoff;
                let delay_ms = if bo.draw_once {
                    self.initial_delay_ms
                } else {
                    self.rng.range(bo.initial_ms.0, bo.initial_ms.1)
                };
                self.reconnect = Some(Reconnect {
                    started: now,
                    delay_ms,
                    calls: 0,
                    exponent: 0,
                    next_call: Some(now),
                    in_flight: false,
                    exhausted: false,
                });
            }
            Some(r) if r.in_flight => {
                r.in_flight = false;
                self.call_failed(now);
            }
            Some(_) => {}
        }
    }

    /// A websocket pong arrived.
    pub fn handle_pong(&mut self, _now: Time) {
        self.pong_due = None;
    }

    /// The answer to the last [`Event::Api`] call.
    pub fn handle_api_result(&mut self, now: Time, result: ApiResult) {
        if self.ended.is_some() {
            return;
        }
        if self.terminate_requested {
            self.end(EndReason::Terminated);
            return;
        }
        let Some(r) = self.reconnect.as_mut() else { return };
        match result {
            ApiResult::Resumed { token: Some(token), stream_url } if !token.is_empty() => {
                self.token = token;
                if self.b.use_resumed_stream_url {
                    if let Some(url) = stream_url.filter(|u| !u.is_empty()) {
                        self.url = url;
                    }
                }
                self.link = Link::Connecting;
                self.events.push_back(Event::Connect { url: self.url.clone(), token: self.token.clone() });
            }
            ApiResult::Resumed { .. } => self.end(EndReason::TimedOut),
            ApiResult::DataChannelToken { token } => {
                self.token = token;
                self.link = Link::Connecting;
                self.events.push_back(Event::Connect { url: self.url.clone(), token: self.token.clone() });
            }
            ApiResult::Terminated => self.end(EndReason::Terminated),
            ApiResult::Error(e) => {
                r.in_flight = false;
                let is_final = match e {
                    ApiError::SessionTerminated => true,
                    ApiError::DoesNotExist => self.b.resume.does_not_exist_is_final,
                    _ => false,
                };
                if is_final {
                    self.end(EndReason::SessionGone);
                } else {
                    self.call_failed(now);
                }
            }
        }
    }

    fn call_failed(&mut self, now: Time) {
        let policy = self.b.resume;
        let Some(r) = self.reconnect.as_mut() else { return };
        if let Some(max) = policy.max_calls {
            if r.calls >= max {
                r.exhausted = true;
                r.next_call = None;
                let calls = r.calls;
                self.events.push_back(Event::Note(Note::ReconnectExhausted { calls }));
                return;
            }
        }
        if let Some(limit) = policy.give_up_after {
            if now.since(r.started) >= limit {
                self.end(EndReason::ResumeGaveUp);
                return;
            }
        }
        let bo = policy.backoff;
        let d = r.delay_ms;
        let factor = u64::from(bo.ratio).saturating_pow(r.exponent);
        let mut delay = Duration::from_millis(d.saturating_mul(factor));
        if delay > bo.max_delay {
            if bo.sawtooth {
                r.exponent = 0;
                delay = Duration::from_millis(d);
            } else {
                delay = bo.max_delay;
            }
        }
        r.exponent = r.exponent.saturating_add(1);
        r.next_call = Some(now + delay);
    }

    // ------------------------------------------------------------------ time

    /// Time passed: resend tick, reconnect calls, handshake and drain deadlines, pings.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.ended.is_some() {
            return;
        }
        if let Some(r) = self.reconnect.as_mut() {
            if !r.in_flight && r.next_call.is_some_and(|t| t <= now) {
                r.calls += 1;
                r.in_flight = true;
                r.next_call = None;
                let session_id = self.cfg.session_id.clone();
                let ev = match (self.cfg.role, self.ever_opened) {
                    (Role::Client, true) => Event::Api(ApiCall::ResumeSession { session_id }),
                    // The first open is retried with the StartSession token, without ResumeSession.
                    (Role::Client, false) => {
                        self.link = Link::Connecting;
                        Event::Connect { url: self.url.clone(), token: self.token.clone() }
                    }
                    (Role::Agent, _) => Event::Api(ApiCall::CreateDataChannel { session_id }),
                };
                self.events.push_back(ev);
            }
        }
        match self.handshake {
            Handshake::AgentAwaiting { deadline, .. } if now >= deadline => {
                self.end(EndReason::HandshakeTimeout);
                return;
            }
            Handshake::AgentChallenging { deadline, .. } if now >= deadline => {
                self.end(EndReason::ChallengeTimeout);
                return;
            }
            _ => {}
        }
        if self.link == Link::Up {
            if self.pong_due.is_some_and(|t| now >= t) {
                // PING-002: no pong in time; the connection is dead.
                self.events.push_back(Event::CloseTransport);
                self.handle_transport_lost(now);
                return;
            }
            if let (Some(at), Some(interval)) = (self.next_ping, self.b.ping_interval) {
                if now >= at {
                    self.transmits.push_back((Transmit::Ping(b"keepalive".to_vec()), None));
                    self.next_ping = Some(now + interval);
                    if let (None, Some(d)) = (self.pong_due, self.b.pong_deadline) {
                        self.pong_due = Some(now + d);
                    }
                }
            }
        }
        self.resend_tick(now);
        self.check_drain(now);
    }

    fn tick_after(&self, t: Time) -> Time {
        let tick = RESEND_TICK.as_nanos() as u64;
        let since = t.as_nanos().saturating_sub(self.created.as_nanos());
        Time::from_nanos(self.created.as_nanos() + (since / tick + 1) * tick)
    }

    /// The first resend tick at which some message will have expired.
    fn next_resend_tick(&self) -> Option<Time> {
        if self.resend_stopped
            || self.link != Link::Up
            || self.paused
            || self.b.has_bug(Mutant::NeverRetransmit)
        {
            return None;
        }
        let rto = self.rto.rto();
        let earliest = match self.b.retransmit_scope {
            RetransmitScope::HeadOnly => self.outgoing.front().map(|e| e.last_sent + rto),
            RetransmitScope::AllExpired => self.outgoing.iter().map(|e| e.last_sent + rto).min(),
        }?;
        // A message expires when now - last_sent > rto, checked at ticks; a tick is handled once.
        Some(self.tick_after(earliest.max(self.last_tick)))
    }

    fn resend_tick(&mut self, now: Time) {
        if self.next_resend_tick().is_none_or(|t| now < t) {
            return;
        }
        self.last_tick = now;
        let rto = self.rto.rto();
        let n = match self.b.retransmit_scope {
            RetransmitScope::HeadOnly => self.outgoing.len().min(1),
            RetransmitScope::AllExpired => self.outgoing.len(),
        };
        for i in 0..n {
            let Some(e) = self.outgoing.get(i) else { break };
            if now.since(e.last_sent) <= rto {
                continue;
            }
            let too_many = self.b.max_resend_attempts.is_some_and(|max| e.attempts >= max);
            let too_old = self.b.resend_give_up_after.is_some_and(|d| now.since(e.first_sent) >= d);
            if too_many || too_old {
                let seq = e.seq;
                self.resend_limit(seq);
                return;
            }
            let bytes = if self.b.has_bug(Mutant::NewIdOnRetransmit) {
                let fresh = self.rng.uuid_v4();
                let created = self.created_date(now);
                let reencoded = decode(&e.bytes).ok().map(|w| {
                    let mut f = w.to_frame();
                    f.message_id = fresh;
                    f.created_date_ms = created;
                    f.encode_with(&Overrides::default())
                });
                reencoded.unwrap_or_else(|| e.bytes.clone())
            } else {
                e.bytes.clone()
            };
            let restart = self.b.restart_rto_after_resend;
            if let Some(e) = self.outgoing.get_mut(i) {
                e.attempts += 1;
                e.sent = true;
                if restart {
                    e.last_sent = now;
                }
                let (seq, attempt) = (e.seq, e.attempts);
                self.transmits.push_back((Transmit::Binary(bytes), None));
                self.events.push_back(Event::Note(Note::Retransmit { seq, attempt }));
            }
        }
    }

    fn resend_limit(&mut self, seq: i64) {
        self.events.push_back(Event::Note(Note::ResendLimit { seq }));
        self.resend_stopped = true;
        if self.cfg.role == Role::Client {
            self.events
                .push_back(Event::Api(ApiCall::TerminateSession { session_id: self.cfg.session_id.clone() }));
        }
        if self.b.end_session_on_resend_limit {
            self.end(EndReason::ResendLimit);
        }
    }

    // ------------------------------------------------------------------ application

    /// Marks the local consumer ready or not (ACK-007): while not ready, in-order data is left
    /// unacknowledged so that the peer retransmits it.
    pub fn set_consumer_ready(&mut self, ready: bool) {
        self.consumer_ready = ready;
    }

    /// Sends one stream message. Returns its sequence number.
    pub fn send(&mut self, now: Time, payload_type: PayloadType, bytes: &[u8]) -> Result<i64, SendError> {
        if self.ended.is_some() {
            return Err(SendError::Ended);
        }
        if !self.is_ready() {
            return Err(SendError::NotReady);
        }
        self.send_stream(now, payload_type, bytes)
    }

    fn send_stream(&mut self, now: Time, payload_type: PayloadType, bytes: &[u8]) -> Result<i64, SendError> {
        if bytes.is_empty() && !self.b.has_bug(Mutant::EmptyPayloads) {
            return Err(SendError::EmptyPayload);
        }
        if self.link != Link::Up && !self.b.buffer_input_during_outage {
            self.end(EndReason::InputDuringOutage);
            return Err(SendError::TransportDown);
        }
        let mut buffer_it = true;
        if self.outgoing.len() >= self.b.outgoing_capacity {
            let seq = self.next_seq;
            match self.b.outgoing_full {
                OutgoingFull::Backpressure => return Err(SendError::Full(self.outgoing.len())),
                OutgoingFull::DiscardOldest => {
                    self.outgoing.pop_front();
                    self.events
                        .push_back(Event::Note(Note::OutgoingFull { seq, action: "discard oldest".into() }));
                }
                OutgoingFull::RefuseNew => {
                    buffer_it = false;
                    self.events
                        .push_back(Event::Note(Note::OutgoingFull { seq, action: "not buffered".into() }));
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let flags = if self.cfg.role == Role::Agent && seq == 0 && self.b.syn_on_first_output {
            HeaderFlags::SYN
        } else {
            HeaderFlags::NONE
        };
        let message_id = self.rng.uuid_v4();
        let key = self.cipher.as_ref().filter(|_| kms::encrypts(self.cfg.role, payload_type)).map(|c| c.send);
        let payload = match key {
            Some(key) => {
                // HS-006: nonce || AES-256-GCM ciphertext || tag, the nonce from the seeded generator.
                let mut nonce = [0u8; kms::NONCE_LEN];
                self.rng.fill(&mut nonce);
                kms::seal(&key, nonce, bytes)
            }
            None => bytes.to_vec(),
        };
        let frame = Frame {
            message_type: self.cfg.role.outbound_stream(),
            schema_version: 1,
            created_date_ms: self.created_date(now),
            sequence_number: seq,
            flags,
            message_id,
            payload_type,
            payload,
        };
        let encoded = self.encode(&frame);
        let write_now = self.link == Link::Up && !self.paused;
        if write_now {
            self.transmits.push_back((Transmit::Binary(encoded.clone()), None));
        }
        if buffer_it {
            self.outgoing.push_back(Outgoing {
                seq,
                message_id,
                bytes: encoded,
                last_sent: now,
                first_sent: now,
                sent: write_now,
                attempts: 0,
            });
        }
        Ok(seq)
    }

    /// Client: end the session at the user's request (TERM-003): a Flag TerminateSession for
    /// port sessions with agents newer than 2.3.722.0, otherwise the TerminateSession API.
    /// Agent: the same as [`Channel::finish`] without an exit code.
    pub fn terminate(&mut self, now: Time) {
        if self.ended.is_some() {
            return;
        }
        match self.cfg.role {
            Role::Agent => self.finish(now, None),
            Role::Client => {
                let port = matches!(&self.handshake, Handshake::Done { session_type } if session_type == payload::session_type::PORT);
                let new_agent = self.peer_version.as_deref().is_some_and(|v| version_gt(v, "2.3.722.0"));
                if port && new_agent {
                    let flag = ssm_wire::FlagValue::TerminateSession.to_payload();
                    let _ = self.send_stream(now, PayloadType::FLAG, &flag);
                    self.end(EndReason::Terminated);
                } else {
                    self.terminate_requested = true;
                    self.events.push_back(Event::Api(ApiCall::TerminateSession {
                        session_id: self.cfg.session_id.clone(),
                    }));
                }
            }
        }
    }

    /// Agent: the application finished. Sends ExitCode (for non-interactive sessions, when a code
    /// is given), waits up to 2 s for the outgoing buffer to drain, then reports Terminating and
    /// closes (TERM-004).
    pub fn finish(&mut self, now: Time, exit_code: Option<i32>) {
        if self.ended.is_some() || self.cfg.role != Role::Agent || self.draining_until.is_some() {
            return;
        }
        if let Some(code) = exit_code {
            let _ = self.send_stream(now, PayloadType::EXIT_CODE, &payload::exit_code_payload(code));
        }
        self.draining_until = Some(now + DRAIN_TIMEOUT);
        self.finish_code = exit_code;
        self.check_drain(now);
    }

    fn check_drain(&mut self, now: Time) {
        let Some(until) = self.draining_until else { return };
        if self.outgoing.is_empty() || now >= until {
            self.draining_until = None;
            self.send_session_state(now, "Terminating");
            self.events.push_back(Event::CloseTransport);
            let exit_code = self.finish_code;
            self.end(EndReason::Finished { exit_code });
        }
    }

    // ------------------------------------------------------------------ receiving

    /// A text websocket message arrived. Nothing is expected after OpenDataChannel; the
    /// references would try to read it as a binary frame, and so does this machine.
    pub fn handle_text(&mut self, now: Time, bytes: &[u8]) {
        self.handle_binary(now, bytes);
    }

    /// A binary websocket message arrived.
    pub fn handle_binary(&mut self, now: Time, bytes: &[u8]) {
        if self.ended.is_some() {
            return;
        }
        if self.frozen {
            self.note(Note::Dropped { seq: None, why: "receive loop is dead".into() });
            return;
        }
        let wire = match decode(bytes) {
            Ok(w) => w,
            Err(e) => {
                self.violation(e.req(), e.to_string());
                if self.b.malformed_stops_reading && reference_decoder_panics(self.cfg.role, &e) {
                    self.frozen = true;
                    self.note(Note::ReceiveLoopDied);
                } else {
                    self.note(Note::Dropped { seq: None, why: e.to_string() });
                }
                return;
            }
        };
        let mut drop_it = false;
        for v in wire.validate() {
            drop_it |= match v.req() {
                Req::Frame008 => match self.b.digest_check {
                    DigestCheck::Always => true,
                    DigestCheck::WhenLengthFieldNonZero => wire.payload_length != 0,
                    DigestCheck::Never => false,
                },
                Req::Frame011 => self.b.drop_length_mismatch,
                Req::Frame009 => true,
                _ => false,
            };
            self.violation(v.req(), v.to_string());
        }
        if self.b.publication_needs_created_date
            && wire.message_type.is_publication()
            && wire.created_date_ms == 0
        {
            drop_it = true;
        }
        if drop_it {
            self.note(Note::Dropped { seq: Some(wire.sequence_number), why: "invalid frame".into() });
            return;
        }
        let inbound = self.cfg.role.peer().outbound_stream();
        match wire.message_type {
            MessageType::Acknowledge => self.on_ack(now, &wire),
            t if t == inbound => self.on_stream(now, &wire),
            MessageType::ChannelClosed => self.on_channel_closed(&wire),
            MessageType::PausePublication if self.b.honour_pause && !self.b.has_bug(Mutant::IgnorePause) => {
                self.set_paused(now, true)
            }
            MessageType::StartPublication if self.b.honour_pause => self.set_paused(now, false),
            _ => {
                // TYPE-002: unknown or foreign types are ignored.
                self.note(Note::Dropped {
                    seq: Some(wire.sequence_number),
                    why: format!("ignored {} frame", wire.message_type),
                });
            }
        }
    }

    fn set_paused(&mut self, now: Time, paused: bool) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        self.note(Note::Publication { paused });
        if !paused && self.b.flush_unsent_on_open {
            self.flush_unsent(now);
        }
    }

    fn on_channel_closed(&mut self, wire: &WireFrame<'_>) {
        if self.b.has_bug(Mutant::IgnoreChannelClosed) {
            return;
        }
        // A payload that fails to parse is treated as empty (4.3).
        let output =
            serde_json::from_slice::<ChannelClosed>(wire.payload).map(|c| c.output).unwrap_or_default();
        self.end(EndReason::ChannelClosed { output });
    }

    fn on_ack(&mut self, now: Time, wire: &WireFrame<'_>) {
        if self.cfg.role == Role::Agent {
            self.set_paused(now, false);
        }
        let ack: AcknowledgeContent = match serde_json::from_slice(wire.payload) {
            Ok(a) => a,
            Err(e) => {
                self.violation(Req::Ack004, format!("acknowledge payload does not parse: {e}"));
                return;
            }
        };
        let mine = self.cfg.role.outbound_stream().name();
        if ack.message_type != mine {
            let req = if MessageType::from_name(ack.message_type.as_bytes()).is_ok_and(|t| !t.is_stream()) {
                Req::Ack006
            } else {
                Req::Ack004
            };
            self.violation(req, format!("ack names type {:?}, expected {mine:?}", ack.message_type));
        }
        let Some(pos) = self.outgoing.iter().position(|e| e.seq == ack.sequence_number) else {
            if ack.sequence_number < 0 || ack.sequence_number >= self.next_seq {
                self.violation(
                    Req::Ack004,
                    format!(
                        "ack for sequence {} that was never sent (next is {})",
                        ack.sequence_number, self.next_seq
                    ),
                );
            }
            return;
        };
        let Some(entry) = self.outgoing.remove(pos) else { return };
        if ack.message_id != entry.message_id.hyphenated().to_string() {
            self.violation(
                Req::Ack004,
                format!(
                    "ack for sequence {} names MessageId {:?}, the message had {}",
                    entry.seq, ack.message_id, entry.message_id
                ),
            );
        }
        self.rto.on_sample(now.since(entry.last_sent));
        self.check_drain(now);
    }

    fn remember(&mut self, seq: i64, id: Identity) {
        if self.seen.len() >= SEEN_WINDOW {
            self.seen.pop_front();
        }
        self.seen.push_back((seq, id));
    }

    fn check_same(&mut self, seq: i64, before: Identity, now_seen: Identity) {
        if before != now_seen {
            self.violation(
                Req::Seq003,
                format!(
                    "retransmission of sequence {seq} differs from the first copy (MessageId {} vs {}, CreatedDate {} vs {}, digest {})",
                    before.message_id,
                    now_seen.message_id,
                    before.created_date_ms,
                    now_seen.created_date_ms,
                    if before.digest == now_seen.digest { "same" } else { "different" }
                ),
            );
        }
    }

    fn on_stream(&mut self, now: Time, wire: &WireFrame<'_>) {
        let s = wire.sequence_number;
        let e = self.expected;
        let id = Identity::of(wire);
        if self.cfg.role == Role::Agent {
            self.set_paused(now, false);
        }
        if s < e {
            if let Some(&(_, before)) = self.seen.iter().rev().find(|(q, _)| *q == s) {
                self.check_same(s, before, id);
            }
            if self.b.reack_duplicates {
                self.send_ack(now, wire, None);
            }
            if self.b.has_bug(Mutant::DeliverDuplicates) {
                let plain = self.decrypt(wire).ok().flatten();
                self.deliver(now, s, wire.payload_type, plain.as_deref().unwrap_or(wire.payload));
            }
            self.note(Note::Dropped { seq: Some(s), why: format!("duplicate, expected {e}") });
            return;
        }
        let window =
            i64::try_from(self.b.reorder_capacity).unwrap_or(i64::MAX).saturating_add(MAX_SENDER_OUTSTANDING);
        if s.saturating_sub(e) > window {
            // No sender can be this far ahead: it holds at most MAX_SENDER_OUTSTANDING
            // unacknowledged messages, and this side at most reorder_capacity acknowledged early
            // ones. The number was skipped. Dropped without an ack, like a frame the full
            // reorder buffer has no room for.
            self.violation(
                Req::Seq001,
                format!(
                    "stream message {s} is {} ahead of the expected {e}, beyond the {window} messages a sender can have outstanding (reorder buffer {} here, at most {MAX_SENDER_OUTSTANDING} unacknowledged there): sequence numbers were skipped",
                    s.saturating_sub(e),
                    self.b.reorder_capacity
                ),
            );
            self.note(Note::Dropped { seq: Some(s), why: "far beyond the receive window".into() });
            return;
        }
        // HS-006: decrypt before buffering or delivering; a payload that does not decrypt is
        // neither acknowledged nor delivered (an intact retransmission may follow).
        let plain = match self.decrypt(wire) {
            Ok(p) => p,
            Err(e) => {
                self.violation(
                    Req::Hs006,
                    format!(
                        "stream message {s} (payload type {}) does not decrypt: {e}",
                        wire.payload_type.0
                    ),
                );
                self.note(Note::Dropped { seq: Some(s), why: "payload does not decrypt".into() });
                return;
            }
        };
        let payload = plain.as_deref().unwrap_or(wire.payload);
        if s > e {
            if self.b.has_bug(Mutant::DropEarlyFrames) {
                self.note(Note::Dropped { seq: Some(s), why: format!("early, expected {e}") });
                return;
            }
            if let Some(existing) = self.reorder.get(&s) {
                let before = existing.id;
                self.check_same(s, before, id);
                self.send_ack(now, wire, None);
                if self.b.early_duplicate == EarlyDuplicate::Overwrite {
                    self.reorder.insert(
                        s,
                        Buffered { id, payload_type: wire.payload_type, payload: payload.to_vec() },
                    );
                }
                return;
            }
            if self.reorder.len() >= self.b.reorder_capacity {
                self.note(Note::Dropped { seq: Some(s), why: "reorder buffer full".into() });
                return;
            }
            self.send_ack(now, wire, None);
            self.reorder
                .insert(s, Buffered { id, payload_type: wire.payload_type, payload: payload.to_vec() });
            return;
        }
        // In order.
        if !self.consumer_ready {
            if self.b.has_bug(Mutant::AckBeforeReady) {
                self.send_ack(now, wire, None);
                self.expected += 1;
                self.remember(s, id);
                self.drain_reorder_at(now);
                return;
            }
            self.note(Note::NotReady { seq: s });
            return;
        }
        if self.cfg.role == Role::Client && s == 0 && !wire.flags.contains(HeaderFlags::SYN) {
            self.violation(Req::Type005, "agent stream message 0 without SYN".into());
        }
        self.remember(s, id);
        self.deliver(now, s, wire.payload_type, payload);
        match self.b.advance_expected {
            AdvanceExpected::OnDelivery => {
                self.send_ack(now, wire, None);
                self.expected += 1;
                self.drain_reorder_at(now);
            }
            AdvanceExpected::AfterAckWritten => self.send_ack(now, wire, Some(s)),
        }
    }

    fn drain_reorder(&mut self) {
        // Drains triggered from poll_transmit have no `now`; deliveries do not need one except
        // for handshake replies, which use the machine's creation-relative last known time.
        let now = self.last_now;
        self.drain_reorder_at(now);
    }

    fn drain_reorder_at(&mut self, now: Time) {
        // A delivery can end the session (a failed handshake); nothing is delivered after that.
        while self.ended.is_none() {
            let Some(b) = self.reorder.remove(&self.expected) else { break };
            let s = self.expected;
            self.remember(s, b.id);
            self.deliver(now, s, b.payload_type, &b.payload);
            self.expected += 1;
        }
    }

    /// Hands an in-order payload to the session: handshake payloads are handled here, everything
    /// else becomes an event.
    fn deliver(&mut self, now: Time, seq: i64, pt: PayloadType, bytes: &[u8]) {
        self.last_now = now;
        match (self.cfg.role, pt) {
            (Role::Client, PayloadType::HANDSHAKE_REQUEST) => self.on_handshake_request(now, bytes),
            (Role::Client, PayloadType::HANDSHAKE_COMPLETE) => self.on_handshake_complete(bytes),
            (Role::Client, PayloadType::ENC_CHALLENGE_REQUEST) => self.on_challenge_request(now, bytes),
            (Role::Agent, PayloadType::HANDSHAKE_RESPONSE) => self.on_handshake_response(now, bytes),
            (Role::Agent, PayloadType::ENC_CHALLENGE_RESPONSE) => self.on_challenge_response(now, bytes),
            (Role::Agent, _)
                if matches!(
                    self.handshake,
                    Handshake::AgentAwaiting { .. } | Handshake::AgentChallenging { .. }
                ) =>
            {
                // 5.2 agent quirk: data before the handshake completes is acknowledged and dropped.
                if self.b.discard_data_before_handshake {
                    self.note(Note::Dropped { seq: Some(seq), why: "data before handshake complete".into() });
                }
            }
            (_, PayloadType::FLAG) => match ssm_wire::FlagValue::from_payload(bytes) {
                Some(f) => self.events.push_back(Event::Flag { value: f.value() }),
                None => self.violation(Req::Type003, format!("Flag payload of {} bytes", bytes.len())),
            },
            (Role::Client, PayloadType::EXIT_CODE) => match payload::parse_exit_code(bytes) {
                Some(code) => self.events.push_back(Event::ExitCode { code }),
                None => self.violation(Req::Type003, "ExitCode payload is not `EXIT_CODE: <n>`".into()),
            },
            _ => {
                if self.cfg.role == Role::Client && self.handshake == Handshake::ClientWaiting {
                    // No handshake: the first in-order Output sets the session type (6.4 B).
                    let session_type = payload::session_type::STANDARD_STREAM.to_owned();
                    self.handshake = Handshake::Done { session_type: session_type.clone() };
                    self.events.push_back(Event::SessionReady { session_type });
                }
                self.events.push_back(Event::Data { seq, payload_type: pt.0, bytes: bytes.to_vec() });
            }
        }
    }

    fn send_ack(&mut self, now: Time, wire: &WireFrame<'_>, commit: Option<i64>) {
        let mut seq = wire.sequence_number;
        if self.b.has_bug(Mutant::AckWrongSequence) {
            seq += 1;
        }
        let content = AcknowledgeContent::for_message(&wire.message_type, wire.message_id, seq);
        self.send_control(now, MessageType::Acknowledge, payload::to_go_json(&content), commit);
    }

    /// A non-stream frame (acknowledge, agent_session_state): SequenceNumber 0, Flags SYN|FIN,
    /// PayloadType 0 (TYPE-004).
    fn send_control(&mut self, now: Time, message_type: MessageType, payload: Vec<u8>, commit: Option<i64>) {
        let frame = Frame {
            message_type,
            schema_version: 1,
            created_date_ms: self.created_date(now),
            sequence_number: 0,
            flags: HeaderFlags::SYN_FIN,
            message_id: self.rng.uuid_v4(),
            payload_type: PayloadType::NONE,
            payload,
        };
        let bytes = self.encode(&frame);
        self.transmits.push_back((Transmit::Binary(bytes), commit));
    }

    // ------------------------------------------------------------------ handshake

    fn start_agent_handshake(&mut self, now: Time) {
        let kind = self.cfg.session_kind.clone();
        // The session preferences name a KMS key: encryption for every plugin but Port (4.5).
        let kms_key = self.cfg.kms.as_ref().filter(|_| kind.supports_kms()).map(|k| k.key_id().to_owned());
        if !kind.handshakes(kms_key.is_some()) {
            let session_type = kind.session_type().to_owned();
            self.handshake = Handshake::Done { session_type: session_type.clone() };
            self.events.push_back(Event::SessionReady { session_type });
            return;
        }
        let mut actions =
            vec![RequestedClientAction::session_type(kind.session_type(), serde_json::Value::Null)];
        if let Some(key_id) = &kms_key {
            // The agent's struct carries 16 random bytes the 2024 client ignores (4.5).
            let mut random = [0u8; 16];
            self.rng.fill(&mut random);
            actions.push(RequestedClientAction::kms_encryption(&KmsEncryptionRequest::new(
                key_id,
                Some(&random),
            )));
        }
        for extra in &self.cfg.extra_client_actions {
            actions.push(RequestedClientAction {
                action_type: extra.clone(),
                action_parameters: serde_json::Value::Object(serde_json::Map::new()),
            });
        }
        let requested = actions.len();
        let request = HandshakeRequest {
            agent_version: self.cfg.version.clone(),
            requested_client_actions: Some(actions),
        };
        let _ = self.send_stream(now, PayloadType::HANDSHAKE_REQUEST, &payload::to_go_json(&request));
        self.handshake = Handshake::AgentAwaiting {
            deadline: now + HANDSHAKE_TIMEOUT,
            sent_at: now,
            requested,
            kms: kms_key.is_some(),
        };
    }

    fn on_handshake_request(&mut self, now: Time, bytes: &[u8]) {
        let request: HandshakeRequest = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.violation(Req::Hs001, format!("HandshakeRequest does not parse: {e}"));
                return;
            }
        };
        self.peer_version = Some(request.agent_version.clone());
        let mut session_type = None;
        let mut processed = Vec::new();
        for action in request.requested_client_actions.unwrap_or_default() {
            let (status, result, error) = match action.action_type.as_str() {
                action_type::SESSION_TYPE => match action.as_session_type() {
                    Some(st) if is_known_session_type(&st.session_type) => {
                        session_type = Some(st.session_type);
                        (action_status::SUCCESS, serde_json::Value::Null, String::new())
                    }
                    Some(st) => (
                        action_status::FAILED,
                        serde_json::Value::Null,
                        format!("Unknown session type {}", st.session_type),
                    ),
                    None => {
                        (action_status::FAILED, serde_json::Value::Null, "bad SessionType parameters".into())
                    }
                },
                action_type::KMS_ENCRYPTION => self.perform_kms_action(&action),
                other => {
                    let status = self.b.unknown_action_status;
                    // The 2024 plugin puts 3 into ActionResult and leaves the status at 0.
                    let result = if status == 0 { serde_json::json!(3) } else { serde_json::Value::Null };
                    (status, result, format!("Unsupported action {other}"))
                }
            };
            processed.push(ProcessedClientAction {
                action_type: action.action_type,
                action_status: status,
                action_result: result,
                error,
            });
        }
        let response = HandshakeResponse {
            client_version: self.cfg.version.clone(),
            processed_client_actions: Some(processed),
            errors: None,
        };
        self.handshake = Handshake::ClientAnswered { session_type, challenged: false };
        let _ = self.send_stream(now, PayloadType::HANDSHAKE_RESPONSE, &payload::to_go_json(&response));
    }

    /// The KMS encryption context of this session.
    fn kms_context(&self) -> EncryptionContext<'_> {
        EncryptionContext { session_id: &self.cfg.session_id, target_id: &self.cfg.instance_id }
    }

    /// Client: the KMSEncryption action (4.8): GenerateDataKey, keep the key, return the blob.
    fn perform_kms_action(&mut self, action: &RequestedClientAction) -> (u32, serde_json::Value, String) {
        let failed = |e: String| (action_status::FAILED, serde_json::Value::Null, e);
        let Some(kms) = self.cfg.kms.clone() else {
            return failed("KMS encryption is not supported by this client".into());
        };
        let Some(params) = action.as_kms_encryption() else {
            return failed("bad KMSEncryption parameters".into());
        };
        // The context borrows the configuration while the generator is borrowed mutably, so it
        // is spelled out here rather than taken from `kms_context`.
        let ctx = EncryptionContext { session_id: &self.cfg.session_id, target_id: &self.cfg.instance_id };
        match kms.generate_data_key(&mut self.rng, &params.kms_key_id, &ctx) {
            Ok((key, blob)) => {
                self.cipher =
                    Some(Cipher::new(self.cfg.role, &key, self.b.has_bug(Mutant::SwappedKeyHalves)));
                let result = KmsEncryptionResponse { kms_cipher_text_key: blob, kms_cipher_text_hash: None };
                (action_status::SUCCESS, serde_json::to_value(&result).unwrap_or_default(), String::new())
            }
            Err(e) => failed(format!("KMS GenerateDataKey failed: {e}")),
        }
    }

    /// Seals `plain` with this side's sending key (the caller checked there is one).
    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let Some(key) = self.cipher.as_ref().map(|c| c.send) else { return plain.to_vec() };
        let mut nonce = [0u8; kms::NONCE_LEN];
        self.rng.fill(&mut nonce);
        kms::seal(&key, nonce, plain)
    }

    /// The plaintext of a payload the peer encrypts, once KMS encryption is on; `Ok(None)` for
    /// payloads that travel in the clear.
    fn decrypt(&self, wire: &WireFrame<'_>) -> Result<Option<Vec<u8>>, kms::OpenError> {
        match &self.cipher {
            Some(c) if kms::encrypts(self.cfg.role.peer(), wire.payload_type) => {
                kms::open(&c.recv, wire.payload).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Ends the session because encryption could not be set up, blaming the peer (HS-006).
    fn encryption_failed(&mut self, detail: String) {
        self.violation(Req::Hs006, detail.clone());
        self.end(EndReason::EncryptionFailed { detail });
    }

    /// Client: EncChallengeRequest (4.8): decrypt with the agent key, answer re-encrypted with
    /// the client key.
    fn on_challenge_request(&mut self, now: Time, bytes: &[u8]) {
        let Some(cipher) = self.cipher.clone() else {
            self.violation(Req::Hs006, "EncChallengeRequest without negotiated KMS encryption".into());
            return;
        };
        let request: EncChallenge = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => return self.encryption_failed(format!("EncChallengeRequest does not parse: {e}")),
        };
        let plain = match kms::open(&cipher.recv, &request.challenge) {
            Ok(p) => p,
            Err(e) => {
                return self.encryption_failed(format!(
                    "the encryption challenge does not decrypt with the agent key (data key bytes 0..31): {e}"
                ))
            }
        };
        let answer = EncChallenge { challenge: self.seal(&plain) };
        if let Handshake::ClientAnswered { challenged, .. } = &mut self.handshake {
            *challenged = true;
        }
        let _ = self.send_stream(now, PayloadType::ENC_CHALLENGE_RESPONSE, &payload::to_go_json(&answer));
    }

    /// Agent: EncChallengeResponse (4.8): it must decrypt with the client key to the challenge.
    fn on_challenge_response(&mut self, now: Time, bytes: &[u8]) {
        let Handshake::AgentChallenging { sent_at, ref challenge, .. } = self.handshake else {
            self.note(Note::Dropped { seq: None, why: "EncChallengeResponse outside a challenge".into() });
            return;
        };
        let challenge = challenge.clone();
        let Some(cipher) = self.cipher.clone() else { return };
        let answer: EncChallenge = match serde_json::from_slice(bytes) {
            Ok(a) => a,
            Err(e) => return self.encryption_failed(format!("EncChallengeResponse does not parse: {e}")),
        };
        match kms::open(&cipher.recv, &answer.challenge) {
            Ok(plain) if plain == challenge => self.complete_handshake(now, sent_at),
            Ok(plain) => self.encryption_failed(format!(
                "the answer to the encryption challenge decrypts to {} different bytes",
                plain.len()
            )),
            Err(e) => self.encryption_failed(format!(
                "the answer to the encryption challenge does not decrypt with the client key (data key bytes 32..63): {e}"
            )),
        }
    }

    fn on_handshake_complete(&mut self, bytes: &[u8]) {
        if serde_json::from_slice::<HandshakeComplete>(bytes).is_err() {
            self.violation(Req::Hs005, "HandshakeComplete does not parse".into());
        }
        match std::mem::replace(&mut self.handshake, Handshake::ClientWaiting) {
            Handshake::ClientAnswered { session_type: Some(session_type), challenged } => {
                if self.cipher.is_some() && !challenged {
                    self.violation(Req::Hs006, "HandshakeComplete before the encryption challenge".into());
                }
                self.handshake = Handshake::Done { session_type: session_type.clone() };
                self.events.push_back(Event::SessionReady { session_type });
            }
            Handshake::ClientAnswered { session_type: None, .. } => {
                self.end(EndReason::HandshakeFailed { detail: "unable to determine SessionType".into() });
            }
            other => {
                self.handshake = other;
                self.violation(Req::Hs001, "HandshakeComplete without a HandshakeRequest".into());
            }
        }
    }

    fn on_handshake_response(&mut self, now: Time, bytes: &[u8]) {
        let Handshake::AgentAwaiting { sent_at, requested, kms, .. } = self.handshake else {
            self.note(Note::Dropped { seq: None, why: "HandshakeResponse outside a handshake".into() });
            return;
        };
        let response: HandshakeResponse = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.violation(Req::Hs002, format!("HandshakeResponse does not parse: {e}"));
                self.end(EndReason::HandshakeFailed { detail: "unparsable HandshakeResponse".into() });
                return;
            }
        };
        let actions = response.processed_client_actions.unwrap_or_default();
        if actions.len() != requested {
            self.violation(
                Req::Hs002,
                format!("{} ProcessedClientActions for {requested} requested actions", actions.len()),
            );
        }
        if let Some(bad) = actions.iter().find(|a| a.action_status != action_status::SUCCESS) {
            if !matches!(bad.action_status, 1..=3) {
                self.violation(Req::Hs002, format!("ActionStatus {} is not 1, 2 or 3", bad.action_status));
            }
            let detail = format!("{} action status {}: {}", bad.action_type, bad.action_status, bad.error);
            self.end(EndReason::HandshakeFailed { detail });
            return;
        }
        if kms {
            self.start_challenge(now, sent_at, &actions);
            return;
        }
        self.complete_handshake(now, sent_at);
    }

    /// Agent: decrypt the data key from the KMSEncryption result, then send the encryption
    /// challenge (4.8): 64 random bytes sealed with the agent key.
    fn start_challenge(&mut self, now: Time, sent_at: Time, actions: &[ProcessedClientAction]) {
        let Some(kms) = self.cfg.kms.clone() else { return };
        let Some(action) = actions.iter().find(|a| a.action_type == action_type::KMS_ENCRYPTION) else {
            return self.encryption_failed("the HandshakeResponse has no KMSEncryption action".into());
        };
        let Some(result) = action.as_kms_encryption() else {
            return self.encryption_failed("the KMSEncryption ActionResult has no KMSCipherTextKey".into());
        };
        let key = match kms.decrypt(&result.kms_cipher_text_key, &self.kms_context()) {
            Ok(k) => k,
            Err(e) => return self.encryption_failed(format!("KMS Decrypt of KMSCipherTextKey failed: {e}")),
        };
        self.cipher = Some(Cipher::new(self.cfg.role, &key, self.b.has_bug(Mutant::SwappedKeyHalves)));
        let mut challenge = vec![0u8; kms::CHALLENGE_LEN];
        self.rng.fill(&mut challenge);
        let request = EncChallenge { challenge: self.seal(&challenge) };
        let _ = self.send_stream(now, PayloadType::ENC_CHALLENGE_REQUEST, &payload::to_go_json(&request));
        self.handshake =
            Handshake::AgentChallenging { deadline: now + HANDSHAKE_TIMEOUT, sent_at, challenge };
    }

    /// Agent: HandshakeComplete, and the session is ready.
    fn complete_handshake(&mut self, now: Time, sent_at: Time) {
        let elapsed = i64::try_from(now.since(sent_at).as_nanos()).unwrap_or(i64::MAX);
        let complete =
            HandshakeComplete { handshake_time_to_complete: elapsed, customer_message: String::new() };
        let _ = self.send_stream(now, PayloadType::HANDSHAKE_COMPLETE, &payload::to_go_json(&complete));
        let session_type = self.cfg.session_kind.session_type().to_owned();
        self.handshake = Handshake::Done { session_type: session_type.clone() };
        self.events.push_back(Event::SessionReady { session_type });
    }

    // ------------------------------------------------------------------ helpers

    fn send_session_state(&mut self, now: Time, state: &str) {
        let content = AgentSessionState {
            schema_version: 1,
            session_state: state.to_owned(),
            session_id: self.cfg.session_id.clone(),
        };
        self.send_control(now, MessageType::AgentSessionState, payload::to_go_json(&content), None);
    }

    fn flush_unsent(&mut self, now: Time) {
        if self.link != Link::Up || self.paused {
            return;
        }
        for e in self.outgoing.iter_mut().filter(|e| !e.sent) {
            e.sent = true;
            e.last_sent = now;
            self.transmits.push_back((Transmit::Binary(e.bytes.clone()), None));
        }
    }

    fn created_date(&self, now: Time) -> u64 {
        // CreatedDate must be non-zero (FRAME-005).
        (self.cfg.epoch_ms + now.as_millis()).max(1)
    }

    fn encode(&self, f: &Frame) -> Vec<u8> {
        let overrides = if self.b.has_bug(Mutant::SkipDigest) {
            Overrides { payload_digest: Some([0; 32]), ..Overrides::default() }
        } else {
            Overrides::default()
        };
        let mut bytes = f.encode_with(&overrides);
        if self.b.has_bug(Mutant::UnswappedMessageId) {
            bytes[ssm_wire::layout::MESSAGE_ID].copy_from_slice(f.message_id.as_bytes());
        }
        bytes
    }

    fn violation(&mut self, req: Req, detail: String) {
        self.events.push_back(Event::Violation(PeerViolation { req, detail }));
    }

    fn note(&mut self, n: Note) {
        self.events.push_back(Event::Note(n));
    }

    fn end(&mut self, reason: EndReason) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(reason.clone());
        self.reconnect = None;
        self.draining_until = None;
        self.events.push_back(Event::Ended(reason));
    }
}

fn is_known_session_type(s: &str) -> bool {
    use payload::session_type as st;
    [st::STANDARD_STREAM, st::INTERACTIVE_COMMANDS, st::NON_INTERACTIVE_COMMANDS, st::PORT].contains(&s)
}

/// Whether the reference decoder of `role` panics (and so stops its receive loop) on bytes that
/// fail to decode this way (2.5).
fn reference_decoder_panics(role: Role, e: &DecodeError) -> bool {
    match *e {
        DecodeError::HeaderLengthBeyondFrame { .. } => true,
        DecodeError::Truncated { len } => match role {
            Role::Client => (116..120).contains(&len),
            Role::Agent => (117..120).contains(&len),
        },
    }
}

/// Dotted version comparison: `a > b`.
fn version_gt(a: &str, b: &str) -> bool {
    let parse = |s: &str| s.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parse(a) > parse(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Behaviour;

    #[test]
    fn versions() {
        assert!(version_gt("3.3.987.0", "2.3.722.0"));
        assert!(!version_gt("2.3.722.0", "2.3.722.0"));
        assert!(version_gt("2.3.722.1", "2.3.722.0"));
    }

    fn client_frame(seq: i64, payload: &[u8]) -> Vec<u8> {
        Frame {
            message_type: MessageType::InputStreamData,
            schema_version: 1,
            created_date_ms: 1_700_000_000_000,
            sequence_number: seq,
            flags: HeaderFlags::NONE,
            message_id: Uuid::from_u128(0x1111_2222_3333_4000_8000_0000_0000_0000 + seq as u128),
            payload_type: PayloadType::OUTPUT,
            payload: payload.to_vec(),
        }
        .encode_with(&Overrides::default())
    }

    /// Drains a machine: the sequence numbers it acknowledged, and its events.
    fn drain(ch: &mut Channel) -> (Vec<i64>, Vec<Event>) {
        let mut acked = Vec::new();
        while let Some(t) = ch.poll_transmit() {
            if let Transmit::Binary(b) = t {
                let w = decode(&b).unwrap();
                if w.message_type == MessageType::Acknowledge {
                    acked.push(
                        serde_json::from_slice::<AcknowledgeContent>(w.payload).unwrap().sequence_number,
                    );
                }
            }
        }
        (acked, std::iter::from_fn(|| ch.poll_event()).collect())
    }

    #[test]
    fn a_sequence_number_far_beyond_the_window_is_a_seq001_violation_and_dropped() {
        let cfg = Config::new(Role::Agent, Behaviour::conformant(Role::Agent), 5);
        let window = cfg.behaviour.reorder_capacity as i64 + MAX_SENDER_OUTSTANDING;
        let mut a = Channel::new(Time::ZERO, cfg);
        a.handle_transport_open(Time::ZERO);
        let _ = drain(&mut a);
        a.handle_binary(Time::from_millis(1), &client_frame(0, b"a"));
        assert_eq!(drain(&mut a).0, [0]);
        // Expected is 1: one past the farthest a sender can be ahead.
        let far = 1 + window + 1;
        a.handle_binary(Time::from_millis(2), &client_frame(far, b"jump"));
        let (acked, events) = drain(&mut a);
        assert!(acked.is_empty(), "a frame beyond the window is not acknowledged: {acked:?}");
        let violations: Vec<&PeerViolation> = events
            .iter()
            .filter_map(|e| match e {
                Event::Violation(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(violations.len(), 1, "{events:?}");
        assert_eq!(violations[0].req, Req::Seq001);
        assert!(violations[0].detail.contains(&format!("stream message {far}")), "{}", violations[0].detail);
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Note(Note::Dropped { seq: Some(s), .. }) if *s == far)));
        assert!(!events.iter().any(|e| matches!(e, Event::Data { .. })));
        assert_eq!((a.reordered(), a.expected_seq()), (0, 1));
        // The machine keeps going: in-order data is delivered, and the farthest number a sender
        // can legitimately reach is buffered as an early message.
        a.handle_binary(Time::from_millis(3), &client_frame(1 + window, b"edge"));
        let (acked, events) = drain(&mut a);
        assert_eq!(acked, [1 + window]);
        assert!(!events.iter().any(|e| matches!(e, Event::Violation(_))), "{events:?}");
        assert_eq!(a.reordered(), 1);
        a.handle_binary(Time::from_millis(4), &client_frame(1, b"b"));
        let (acked, events) = drain(&mut a);
        assert_eq!(acked, [1]);
        assert!(events.iter().any(|e| matches!(e, Event::Data { seq: 1, bytes, .. } if bytes == b"b")));
        assert!(!a.is_ended());
        // Far beyond at the limit of i64 does not overflow.
        a.handle_binary(Time::from_millis(5), &client_frame(i64::MAX, b"max"));
        let (acked, events) = drain(&mut a);
        assert!(acked.is_empty(), "{acked:?}");
        assert!(events.iter().any(|e| matches!(e, Event::Violation(v) if v.req == Req::Seq001)));
    }

    #[test]
    fn which_malformed_frames_kill_the_reference_receive_loop() {
        assert!(reference_decoder_panics(Role::Client, &DecodeError::Truncated { len: 118 }));
        assert!(reference_decoder_panics(Role::Client, &DecodeError::Truncated { len: 116 }));
        assert!(!reference_decoder_panics(Role::Agent, &DecodeError::Truncated { len: 116 }));
        assert!(!reference_decoder_panics(Role::Client, &DecodeError::Truncated { len: 100 }));
    }
}
