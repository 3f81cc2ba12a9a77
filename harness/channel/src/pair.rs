//! A client and an agent joined by a minimal in-memory service, on a virtual clock, with the
//! frames in flight exposed for tests to drop, duplicate or reorder (after quinn's `Pair`).
//!
//! The service relays binary frames between the two websockets, checks each OpenDataChannel
//! token, answers ResumeSession / CreateDataChannel / TerminateSession, and drops frames whose
//! destination is not connected. [`Pair::drive_bounded`] turns a livelock into an error.

use std::collections::VecDeque;
use std::time::Duration;

use ssm_wire::payload::{self, ChannelClosed, OpenDataChannel};
use ssm_wire::{Frame, MessageType, PayloadType};

use crate::kms::Kms;
use crate::{
    ApiCall, ApiError, ApiResult, Behaviour, Channel, Config, Event, Role, SessionKind, Time, Transmit,
};

/// One websocket message on its way to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub deliver_at: Time,
    pub bytes: Vec<u8>,
    /// Which websocket connection of the destination it was sent on (older ones are gone).
    pub epoch: u64,
}

/// A pending control-plane or connection outcome.
#[derive(Debug, Clone)]
enum Pending {
    Open { role: Role, token: String, at: Time },
    Api { role: Role, call: ApiCall, at: Time },
}

/// The far end of each machine's websocket.
#[derive(Debug, Default, Clone)]
struct Side {
    up: bool,
    /// Connection counter: frames sent on an older connection are not delivered.
    epoch: u64,
    token: String,
    events: Vec<Event>,
    /// Concatenated payloads of delivered Output/StdErr data.
    received: Vec<u8>,
    in_flight: VecDeque<InFlight>,
}

/// Answers the pair's control plane gives, scripted by tests.
#[derive(Debug, Clone, Default)]
pub struct ServiceScript {
    /// Errors to answer the next ResumeSession calls with, in order.
    pub resume_errors: VecDeque<ApiError>,
    /// Answer ResumeSession with a null token.
    pub null_token: bool,
    /// Return a new StreamUrl from ResumeSession.
    pub rotate_stream_url: bool,
}

/// The two machines and their world.
#[derive(Debug)]
pub struct Pair {
    pub now: Time,
    pub client: Channel,
    pub agent: Channel,
    client_side: Side,
    agent_side: Side,
    pending: Vec<Pending>,
    /// One-way latency of every frame and call.
    pub latency: Duration,
    pub script: ServiceScript,
    terminated: bool,
    token_counter: u64,
    /// Every Connect the client asked for: (url, token).
    pub client_connects: Vec<(String, String)>,
    /// Every OpenDataChannel text frame the service received: (role, token).
    pub opens: Vec<(Role, String)>,
    /// Every API call made.
    pub api_calls: Vec<(Role, ApiCall)>,
    /// Raw binary frames written, per sender, in order.
    pub wire_log: Vec<(Time, Role, Vec<u8>)>,
}

impl Pair {
    /// A shell session (no handshake) between two machines of the given behaviours.
    pub fn new(client: Behaviour, agent: Behaviour, seed: u64) -> Self {
        Self::with_kind(client, agent, SessionKind::Shell, seed)
    }

    pub fn with_kind(client: Behaviour, agent: Behaviour, kind: SessionKind, seed: u64) -> Self {
        let (ccfg, acfg) = Self::configs(client, agent, kind, seed);
        Self::from_configs(ccfg, acfg)
    }

    /// A session with KMS encryption (HS-006): both machines hold [`Kms::harness`], so the agent
    /// requests the KMSEncryption action and the client performs it.
    pub fn encrypted(client: Behaviour, agent: Behaviour, kind: SessionKind, seed: u64) -> Self {
        let (mut ccfg, mut acfg) = Self::configs(client, agent, kind, seed);
        ccfg.kms = Some(Kms::harness());
        acfg.kms = Some(Kms::harness());
        Self::from_configs(ccfg, acfg)
    }

    /// The configurations [`Pair::with_kind`] uses, for tests to adjust before
    /// [`Pair::from_configs`].
    pub fn configs(client: Behaviour, agent: Behaviour, kind: SessionKind, seed: u64) -> (Config, Config) {
        let mut ccfg = Config::new(Role::Client, client, seed);
        ccfg.token = "client-token-0".into();
        let mut acfg = Config::new(Role::Agent, agent, seed.wrapping_add(1));
        acfg.token = "agent-token-0".into();
        acfg.session_kind = kind;
        (ccfg, acfg)
    }

    /// Two machines built from these configurations (the tokens must be the ones the service
    /// expects: take them from [`Pair::configs`]).
    pub fn from_configs(ccfg: Config, acfg: Config) -> Self {
        let now = Time::ZERO;
        Pair {
            now,
            client_side: Side { token: ccfg.token.clone(), ..Side::default() },
            agent_side: Side { token: acfg.token.clone(), ..Side::default() },
            client: Channel::new(now, ccfg),
            agent: Channel::new(now, acfg),
            pending: Vec::new(),
            latency: Duration::from_millis(20),
            script: ServiceScript::default(),
            terminated: false,
            token_counter: 0,
            client_connects: Vec::new(),
            opens: Vec::new(),
            api_calls: Vec::new(),
            wire_log: Vec::new(),
        }
    }

    fn side(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Client => &mut self.client_side,
            Role::Agent => &mut self.agent_side,
        }
    }

    fn machine(&mut self, role: Role) -> &mut Channel {
        match role {
            Role::Client => &mut self.client,
            Role::Agent => &mut self.agent,
        }
    }

    /// Events `role`'s machine emitted so far.
    pub fn events(&self, role: Role) -> &[Event] {
        match role {
            Role::Client => &self.client_side.events,
            Role::Agent => &self.agent_side.events,
        }
    }

    /// Output bytes delivered to `role`'s application (payload types Output and StdErr).
    pub fn received(&self, role: Role) -> &[u8] {
        match role {
            Role::Client => &self.client_side.received,
            Role::Agent => &self.agent_side.received,
        }
    }

    /// Frames in flight towards `to`, for tests to edit.
    pub fn in_flight(&mut self, to: Role) -> &mut VecDeque<InFlight> {
        &mut self.side(to).in_flight
    }

    /// Drains both machines (transmits, then events) without moving time.
    pub fn flush(&mut self) {
        for _ in 0..64 {
            let moved = self.drain(Role::Client) | self.drain(Role::Agent);
            if !moved {
                break;
            }
        }
    }

    fn drain(&mut self, role: Role) -> bool {
        let mut moved = false;
        let now = self.now;
        let latency = self.latency;
        while let Some(t) = self.machine(role).poll_transmit() {
            moved = true;
            match t {
                Transmit::Text(bytes) => {
                    let token = OpenDataChannel::parse(&bytes)
                        .map(|o| o.token_value().to_owned())
                        .unwrap_or_default();
                    // The service authenticates the websocket by the token in OpenDataChannel
                    // and closes it when the token is not the current one.
                    let refused = self.side(role).token != token;
                    self.opens.push((role, token));
                    if refused {
                        let s = self.side(role);
                        s.up = false;
                        s.in_flight.clear();
                        self.machine(role).handle_transport_lost(now);
                    }
                }
                Transmit::Ping(_) => {
                    let m = self.machine(role);
                    m.handle_pong(now);
                }
                Transmit::Binary(bytes) => {
                    self.wire_log.push((now, role, bytes.clone()));
                    // The service consumes agent_session_state.
                    let is_state = ssm_wire::decode(&bytes)
                        .is_ok_and(|w| w.message_type == MessageType::AgentSessionState);
                    if is_state {
                        continue;
                    }
                    let peer = role.peer();
                    let peer_side = self.side(peer);
                    if peer_side.up {
                        let epoch = peer_side.epoch;
                        peer_side.in_flight.push_back(InFlight { deliver_at: now + latency, bytes, epoch });
                    }
                }
            }
        }
        while let Some(ev) = self.machine(role).poll_event() {
            moved = true;
            match &ev {
                Event::Connect { token, url } => {
                    if role == Role::Client {
                        self.client_connects.push((url.clone(), token.clone()));
                    }
                    self.pending.push(Pending::Open { role, token: token.clone(), at: now + latency });
                }
                Event::Api(call) => {
                    self.api_calls.push((role, call.clone()));
                    self.pending.push(Pending::Api { role, call: call.clone(), at: now + latency });
                }
                Event::CloseTransport => {
                    let s = self.side(role);
                    s.up = false;
                    s.in_flight.clear();
                }
                Event::Data { payload_type, bytes, .. }
                    if *payload_type == PayloadType::OUTPUT.0 || *payload_type == PayloadType::STDERR.0 =>
                {
                    self.side(role).received.extend_from_slice(bytes);
                }
                _ => {}
            }
            self.side(role).events.push(ev);
        }
        moved
    }

    /// The next time anything happens, if anything will.
    pub fn next_time(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut add = |x: Time| t = Some(t.map_or(x, |t| t.min(x)));
        for s in [&self.client_side, &self.agent_side] {
            for f in &s.in_flight {
                add(f.deliver_at);
            }
        }
        for p in &self.pending {
            match p {
                Pending::Open { at, .. } | Pending::Api { at, .. } => add(*at),
            }
        }
        if let Some(x) = self.client.poll_timeout() {
            add(x);
        }
        if let Some(x) = self.agent.poll_timeout() {
            add(x);
        }
        t
    }

    /// Advances to the next event and processes everything due then. Returns false when
    /// nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(t) = self.next_time() else { return false };
        self.now = self.now.max(t);
        let now = self.now;
        for role in [Role::Client, Role::Agent] {
            loop {
                // Every due frame, in queue order: a delayed frame does not hold back the frames
                // behind it (and `next_time` counts them all).
                let side = self.side(role);
                let Some(i) = side.in_flight.iter().position(|f| f.deliver_at <= now) else { break };
                let Some(f) = side.in_flight.remove(i) else { break };
                if f.epoch == side.epoch && side.up {
                    self.machine(role).handle_binary(now, &f.bytes);
                }
                self.flush();
            }
        }
        let due: Vec<Pending> = {
            let (due, rest): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|p| match p {
                Pending::Open { at, .. } | Pending::Api { at, .. } => *at <= now,
            });
            self.pending = rest;
            due
        };
        for p in due {
            match p {
                Pending::Open { role, token, .. } => self.complete_open(role, &token),
                Pending::Api { role, call, .. } => self.answer(role, call),
            }
            self.flush();
        }
        for role in [Role::Client, Role::Agent] {
            if self.machine(role).poll_timeout().is_some_and(|x| x <= now) {
                self.machine(role).handle_timeout(now);
                self.flush();
            }
        }
        true
    }

    fn complete_open(&mut self, role: Role, token: &str) {
        let now = self.now;
        let ok = !self.terminated && self.side(role).token == token;
        if ok {
            let s = self.side(role);
            s.up = true;
            s.epoch += 1;
            self.machine(role).handle_transport_open(now);
        } else {
            self.machine(role).handle_transport_lost(now);
        }
    }

    fn new_token(&mut self, role: Role) -> String {
        self.token_counter += 1;
        let t = format!("{}-token-{}", role.name(), self.token_counter);
        self.side(role).token = t.clone();
        t
    }

    fn answer(&mut self, role: Role, call: ApiCall) {
        let now = self.now;
        let result = match call {
            ApiCall::ResumeSession { .. } => {
                if self.terminated {
                    ApiResult::Error(ApiError::DoesNotExist)
                } else if let Some(e) = self.script.resume_errors.pop_front() {
                    ApiResult::Error(e)
                } else if self.script.null_token {
                    ApiResult::Resumed { token: None, stream_url: None }
                } else {
                    let token = self.new_token(Role::Client);
                    let stream_url =
                        self.script.rotate_stream_url.then(|| format!("ws://127.0.0.1/rotated/{token}"));
                    ApiResult::Resumed { token: Some(token), stream_url }
                }
            }
            ApiCall::CreateDataChannel { .. } => {
                if self.terminated {
                    ApiResult::Error(ApiError::SessionTerminated)
                } else {
                    ApiResult::DataChannelToken { token: self.new_token(Role::Agent) }
                }
            }
            ApiCall::TerminateSession { .. } => {
                self.close_session("Session terminated by user");
                ApiResult::Terminated
            }
        };
        self.machine(role).handle_api_result(now, result);
    }

    /// The service terminates the session: channel_closed to both connected sides.
    pub fn close_session(&mut self, output: &str) {
        self.terminated = true;
        let now = self.now;
        let latency = self.latency;
        for role in [Role::Client, Role::Agent] {
            let body = ChannelClosed::new(
                uuid::Uuid::from_u128(0x4000_8000_0000_0000_0000),
                1_700_000_000_000 + now.as_millis(),
                "i-0123456789abcdef0",
                "harness-0123456789abcdef0",
                output,
            );
            let bytes = self.service_frame(MessageType::ChannelClosed, payload::to_go_json(&body));
            let s = self.side(role);
            if s.up {
                let epoch = s.epoch;
                s.in_flight.push_back(InFlight { deliver_at: now + latency, bytes, epoch });
            }
        }
    }

    /// A frame as the service would send it (pause/start_publication, channel_closed).
    pub fn service_frame(&self, t: MessageType, payload: Vec<u8>) -> Vec<u8> {
        Frame::service(
            t,
            1_700_000_000_000 + self.now.as_millis(),
            uuid::Uuid::from_u128(0x5ca1ab1e_0000_4000_8000_000000000000 + u128::from(self.now.as_millis())),
            payload,
        )
        .encode_with(&ssm_wire::Overrides::default())
    }

    /// Injects a service frame towards `to` (if connected).
    pub fn inject(&mut self, to: Role, t: MessageType, payload: Vec<u8>) {
        let bytes = self.service_frame(t, payload);
        self.inject_bytes(to, bytes);
    }

    /// Injects raw bytes towards `to` (if connected).
    pub fn inject_bytes(&mut self, to: Role, bytes: Vec<u8>) {
        let at = self.now + self.latency;
        let s = self.side(to);
        if s.up {
            let epoch = s.epoch;
            s.in_flight.push_back(InFlight { deliver_at: at, bytes, epoch });
        }
    }

    /// Breaks `role`'s websocket: frames in flight to it are lost and its machine is told.
    pub fn break_transport(&mut self, role: Role) {
        let now = self.now;
        let s = self.side(role);
        s.up = false;
        s.in_flight.clear();
        self.machine(role).handle_transport_lost(now);
        self.flush();
    }

    /// Nothing in flight, nothing pending, and each machine quiescent or ended: only keepalive
    /// timers remain.
    pub fn is_settled(&self) -> bool {
        self.client_side.in_flight.is_empty()
            && self.agent_side.in_flight.is_empty()
            && self.pending.is_empty()
            && (self.client.is_quiescent() || self.client.is_ended())
            && (self.agent.is_quiescent() || self.agent.is_ended())
    }

    /// Steps until the pair is settled (see [`Pair::is_settled`]), or fails after `max_steps` (a livelock or a
    /// machine that never settles), or when virtual time passes `deadline`.
    pub fn drive_bounded(&mut self, max_steps: usize, deadline: Duration) -> Result<usize, Unsettled> {
        let end = Time::ZERO + deadline;
        for n in 0..max_steps {
            self.flush();
            if self.is_settled() {
                return Ok(n);
            }
            if self.next_time().is_some_and(|t| t > end) {
                return Err(Unsettled { steps: n, now: self.now });
            }
            if !self.step() {
                return Ok(n);
            }
        }
        Err(Unsettled { steps: max_steps, now: self.now })
    }

    /// Runs until virtual time `until` (or nothing is left to happen).
    pub fn run_until(&mut self, until: Time) {
        while self.next_time().is_some_and(|t| t <= until) {
            self.step();
        }
        self.now = self.now.max(until);
        self.flush();
    }

    /// Runs until both sides are connected and ready (for a shell, the agent's first output,
    /// a `$ ` prompt, is what makes the client ready), within 30 s of virtual time.
    pub fn establish(&mut self) -> bool {
        let end = self.now + Duration::from_secs(30);
        let mut prompted = false;
        while !(self.client.is_ready() && self.agent.is_ready()) && self.now <= end {
            if self.agent.is_ready() && !self.client.is_ready() && !prompted {
                let now = self.now;
                prompted = self.agent.send(now, PayloadType::OUTPUT, b"$ ").is_ok();
            }
            if !self.step() {
                break;
            }
        }
        self.flush();
        self.client.is_ready() && self.agent.is_ready()
    }

    /// Sends application data from `from` now.
    pub fn send(&mut self, from: Role, pt: PayloadType, bytes: &[u8]) -> Result<i64, crate::SendError> {
        let now = self.now;
        let r = self.machine(from).send(now, pt, bytes);
        self.flush();
        r
    }

    /// Finds the first in-flight frame towards `to` matching `pred` (decoded), by index.
    pub fn find_in_flight(
        &mut self,
        to: Role,
        pred: impl Fn(&ssm_wire::WireFrame<'_>) -> bool,
    ) -> Option<usize> {
        self.side(to).in_flight.iter().position(|f| ssm_wire::decode(&f.bytes).is_ok_and(|w| pred(&w)))
    }
}

/// [`Pair::drive_bounded`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pair did not settle: {steps} steps, virtual time {now}")]
pub struct Unsettled {
    pub steps: usize,
    pub now: Time,
}
