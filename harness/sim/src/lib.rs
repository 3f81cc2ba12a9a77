//! A deterministic world for one scenario: the client and agent machines, a simulated service
//! that relays frames between their websockets, a simulated control plane, links with latency,
//! jitter and loss, the fault engine and the scenario's script, all on a virtual clock that
//! jumps to the next deadline. A run is a pure function of (scenario, behaviours, seed).

use std::collections::VecDeque;
use std::time::Duration;

use ssm_channel::kms::Kms;
use ssm_channel::rng::Rng;
use ssm_channel::{
    ApiCall, ApiError, ApiResult, Behaviour, Channel, Config, Event, PayloadType, Role, SendError, Time,
    Transmit,
};
use ssm_fault::{ApiEffect, Context, Direction, FaultEngine, Side};
use ssm_scenario::model::{AgentApp, Breakage, Scenario, Step, TerminateVia, TerminatedResume, WaitEvent};
use ssm_scenario::relay::{check_open, inbound, link_jitter, link_loses, Inbound, OpenCheck, Relay, Uuid};
use ssm_scenario::trace::{summarize, MsgKind};
use ssm_scenario::{Trace, What};
use ssm_spec::Req;
use ssm_wire::payload;

/// The session every simulated run is about.
const SESSION_ID: &str = "harness-0123456789abcdef0";

/// The most records one run may produce; a run that reaches it ends as not finished.
pub const MAX_TRACE_RECORDS: usize = 1_500_000;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct SimInput<'a> {
    pub scenario: &'a Scenario,
    pub client: Behaviour,
    pub agent: Behaviour,
    pub seed: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The script finished and the world settled.
    Settled,
    /// The deadline passed with the script or the world still busy.
    DidNotFinish { waiting_for: String },
    /// A `wait_for` step timed out.
    StepTimedOut { index: usize, step: String },
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct SimOutput {
    pub trace: Trace,
    pub end: RunEnd,
    /// Virtual time at the end.
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
struct InFlight {
    deliver_at: Time,
    bytes: Vec<u8>,
    epoch: u64,
    fault: Option<String>,
    /// Reset the destination's connection right after it processed this frame.
    then_reset: bool,
}

#[derive(Debug, Clone)]
enum Pending {
    Upgrade { role: Role, url: String },
    Api { role: Role, call: ApiCall, extra: ApiEffect, called_at: Time },
    AgentChunk { index: usize },
}

/// The service's view of one side.
#[derive(Debug, Clone, Default)]
struct SideState {
    /// The websocket is open.
    up: bool,
    /// OpenDataChannel was accepted on the current websocket.
    opened: bool,
    epoch: u64,
    token: String,
    url: String,
    queue: VecDeque<InFlight>,
    last_deliver: Time,
    paused_sent: bool,
    ready: bool,
    opens_accepted: u64,
    /// `opens_accepted` when this side's websocket last broke.
    opens_at_last_break: u64,
    /// Where the last frame was put into `queue`.
    last_enqueued: Option<usize>,
}

/// Where the script is.
#[derive(Debug, Clone)]
enum Cursor {
    /// Start step `i` at this time (or now).
    Start {
        index: usize,
        at: Option<Time>,
    },
    /// Step `i` is waiting until `until`.
    Waiting {
        index: usize,
        until: Time,
    },
    /// Step `i` waits for an event.
    WaitingFor {
        index: usize,
        event: WaitEvent,
        deadline: Time,
        baseline: u64,
    },
    Done,
}

struct World<'a> {
    sc: &'a Scenario,
    now: Time,
    rng: Rng,
    machines: [Channel; 2],
    sides: [SideState; 2],
    pending: Vec<(Time, Pending)>,
    faults: FaultEngine,
    trace: Trace,
    terminated: bool,
    started: Time,
    last_activity: Time,
    next_bye: Option<Time>,
    token_counter: u64,
    resume_in_flight: bool,
    client_reconnects: u64,
    cursor: Cursor,
    step_failure: Option<(usize, String)>,
    /// Offered (accepted) message counts per role, and delivered counts per role.
    offered: [u64; 2],
    delivered: [u64; 2],
    agent_script_done: bool,
}

fn idx(r: Role) -> usize {
    match r {
        Role::Client => 0,
        Role::Agent => 1,
    }
}

fn ms(t: Time) -> u64 {
    t.as_millis()
}

/// Runs one scenario to its end.
pub fn run(input: &SimInput<'_>) -> SimOutput {
    let sc = input.scenario;
    let mut rng = Rng::new(input.seed ^ 0x5157_4841_524e_4553);
    let session_id = SESSION_ID.to_owned();
    // Both machines call the same fake KMS (HS-006); the checks read the trace with it too.
    let kms = sc.kms_encryption.then(Kms::harness);
    let mk = |role: Role, b: &Behaviour, rng: &mut Rng| {
        let mut c = Config::new(role, b.clone(), rng.next_u64());
        c.session_id = session_id.clone();
        c.token = format!("{}-token-{:016x}", role.name(), rng.next_u64());
        c.stream_url = format!("ws://127.0.0.1:1/v1/data-channel/{session_id}?role=publish_subscribe");
        c.session_kind = sc.session.clone();
        if role == Role::Agent {
            c.extra_client_actions = sc.handshake_extra_actions.clone();
        }
        c.kms = kms.clone();
        c
    };
    let ccfg = mk(Role::Client, &input.client, &mut rng);
    let acfg = mk(Role::Agent, &input.agent, &mut rng);
    let now = Time::ZERO;
    let sides = [
        SideState {
            token: ccfg.token.clone(),
            url: ccfg.stream_url.clone(),
            ready: true,
            ..SideState::default()
        },
        SideState {
            token: acfg.token.clone(),
            url: acfg.stream_url.clone(),
            ready: true,
            ..SideState::default()
        },
    ];
    let mut w = World {
        sc,
        now,
        machines: [Channel::new(now, ccfg), Channel::new(now, acfg)],
        sides,
        pending: Vec::new(),
        faults: FaultEngine::new(sc.faults.clone(), rng.next_u64()),
        rng,
        trace: Trace::default(),
        terminated: false,
        started: now,
        last_activity: now,
        next_bye: sc.service.bye_interval_ms.map(Time::from_millis),
        token_counter: 0,
        resume_in_flight: false,
        client_reconnects: 0,
        cursor: if sc.steps.is_empty() { Cursor::Done } else { Cursor::Start { index: 0, at: None } },
        step_failure: None,
        offered: [0, 0],
        delivered: [0, 0],
        agent_script_done: false,
    };
    let end = w.run_to_end();
    let why = match &end {
        RunEnd::Settled => "settled".to_owned(),
        RunEnd::DidNotFinish { waiting_for } => format!("did not finish: {waiting_for}"),
        RunEnd::StepTimedOut { index, step } => format!("step {index} timed out: {step}"),
    };
    let t = w.now.as_nanos();
    w.trace.push(t, What::Finished { why });
    SimOutput { trace: w.trace, end, elapsed: w.now.since(Time::ZERO) }
}

impl World<'_> {
    fn deadline(&self) -> Time {
        Time::from_millis(self.sc.duration_ms)
    }

    fn run_to_end(&mut self) -> RunEnd {
        // Bounded: every iteration either advances virtual time or makes progress on a
        // finite amount of queued work; the step cap turns a same-instant livelock into an end.
        for _ in 0..5_000_000u32 {
            self.flush();
            self.advance_script();
            self.flush();
            if let Some((index, step)) = self.step_failure.clone() {
                return RunEnd::StepTimedOut { index, step };
            }
            if matches!(self.cursor, Cursor::Done) && self.is_settled() {
                return RunEnd::Settled;
            }
            if self.trace.records.len() >= MAX_TRACE_RECORDS {
                // A run that floods (say, a sender retransmitting thousands of messages for
                // minutes) ends here rather than exhausting memory.
                return RunEnd::DidNotFinish {
                    waiting_for: format!(
                        "the trace limit of {MAX_TRACE_RECORDS} records; {}",
                        self.waiting_for()
                    ),
                };
            }
            let Some(next) = self.next_time() else {
                return if matches!(self.cursor, Cursor::Done) {
                    RunEnd::Settled
                } else {
                    RunEnd::DidNotFinish { waiting_for: self.waiting_for() }
                };
            };
            if next > self.deadline() {
                self.now = self.deadline();
                return RunEnd::DidNotFinish { waiting_for: self.waiting_for() };
            }
            self.now = self.now.max(next);
            self.process_due();
        }
        RunEnd::DidNotFinish { waiting_for: "step limit".into() }
    }

    fn waiting_for(&self) -> String {
        let mut parts = Vec::new();
        match &self.cursor {
            Cursor::Done => {}
            Cursor::Start { index, .. }
            | Cursor::Waiting { index, .. }
            | Cursor::WaitingFor { index, .. } => parts.push(format!("script at step {index}")),
        }
        for r in [Role::Client, Role::Agent] {
            let m = &self.machines[idx(r)];
            if !m.is_ended() && !m.is_quiescent() {
                parts.push(format!("{r}: {} unacked, {} reordered", m.unacked(), m.reordered()));
            }
        }
        if parts.is_empty() {
            parts.push("frames in flight".into());
        }
        parts.join("; ")
    }

    fn is_settled(&self) -> bool {
        self.sides.iter().all(|s| s.queue.is_empty())
            && self.pending.is_empty()
            && self.machines.iter().all(|m| m.is_quiescent() || m.is_ended())
    }

    fn next_time(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut add = |x: Time| t = Some(t.map_or(x, |t| t.min(x)));
        for s in &self.sides {
            if let Some(f) = s.queue.front() {
                add(f.deliver_at);
            }
        }
        for (at, _) in &self.pending {
            add(*at);
        }
        for m in &self.machines {
            if let Some(x) = m.poll_timeout() {
                add(x);
            }
        }
        if let Some(x) = self.faults.next_deadline() {
            add(Time::from_millis(x));
        }
        if !self.terminated {
            if let Some(b) = self.next_bye {
                add(b);
            }
            if let Some(x) = self.sc.service.max_duration_ms {
                add(self.started + Duration::from_millis(x));
            }
            if let Some(x) = self.sc.service.idle_timeout_ms {
                add(self.last_activity + Duration::from_millis(x));
            }
        }
        match &self.cursor {
            Cursor::Start { at: Some(at), .. } => add(*at),
            Cursor::Waiting { until, .. } => add(*until),
            Cursor::WaitingFor { deadline, .. } => add(*deadline),
            _ => {}
        }
        t
    }

    fn process_due(&mut self) {
        let now = self.now;
        // Frames due for delivery.
        for r in [Role::Client, Role::Agent] {
            while self.sides[idx(r)].queue.front().is_some_and(|f| f.deliver_at <= now) {
                let Some(f) = self.sides[idx(r)].queue.pop_front() else { break };
                let s = &self.sides[idx(r)];
                if f.epoch != s.epoch || !s.up {
                    let summary = summarize(MsgKind::Binary, &f.bytes);
                    self.record(What::Lost { towards: r, why: "websocket gone".into(), summary });
                    continue;
                }
                let summary = summarize(MsgKind::Binary, &f.bytes);
                self.record(What::Delivered {
                    to: r,
                    bytes: f.bytes.clone(),
                    summary,
                    fault: f.fault.clone(),
                });
                self.machines[idx(r)].handle_binary(now, &f.bytes);
                if f.then_reset {
                    // Before the machine's reply reaches the wire.
                    self.close_side(r, None, "reset right after a delivery (fault)");
                }
                self.flush();
            }
        }
        // Pending upgrades, API answers and app output.
        let (due, rest): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(at, _)| *at <= now);
        self.pending = rest;
        for (_, p) in due {
            match p {
                Pending::Upgrade { role, url } => self.complete_upgrade(role, url),
                Pending::Api { role, call, extra, called_at } => {
                    self.answer_api(role, call, extra, called_at)
                }
                Pending::AgentChunk { index } => self.agent_chunk(index),
            }
            self.flush();
        }
        // Fault engine timers.
        let effects = self.faults.poll(ms(now));
        self.apply_effects(effects, None, None);
        // Service timers.
        if !self.terminated {
            if self.next_bye.is_some_and(|b| b <= now) {
                for r in [Role::Client, Role::Agent] {
                    self.close_side(r, Some(1000), "service closed the websocket: Bye");
                }
                self.next_bye = self.sc.service.bye_interval_ms.map(|i| now + Duration::from_millis(i));
            }
            let max = self.sc.service.max_duration_ms.map(|x| self.started + Duration::from_millis(x));
            let idle = self.sc.service.idle_timeout_ms.map(|x| self.last_activity + Duration::from_millis(x));
            if max.is_some_and(|t| t <= now) {
                self.terminate_session("Session reached its maximum duration");
            } else if idle.is_some_and(|t| t <= now) {
                self.terminate_session("Session timed out due to inactivity");
            }
        }
        // Machine timers.
        for r in [Role::Client, Role::Agent] {
            if self.machines[idx(r)].poll_timeout().is_some_and(|t| t <= now) {
                self.machines[idx(r)].handle_timeout(now);
                self.flush();
            }
        }
    }

    // ------------------------------------------------------------------ machine outputs

    fn flush(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for r in [Role::Client, Role::Agent] {
                moved |= self.drain(r);
            }
            if !moved {
                return;
            }
        }
    }

    fn drain(&mut self, r: Role) -> bool {
        let mut moved = false;
        while let Some(t) = self.machines[idx(r)].poll_transmit() {
            moved = true;
            match t {
                Transmit::Text(bytes) => self.on_text(r, bytes),
                Transmit::Ping(bytes) => {
                    self.record(What::Wrote { by: r, msg: MsgKind::Ping, bytes, summary: "ping".into() });
                    let now = self.now;
                    let out = Side::from(r).peer().inbound();
                    let back = Side::from(r).inbound();
                    if self.sides[idx(r)].up
                        && !self.faults.is_black_holed(ms(now), out)
                        && !self.faults.is_black_holed(ms(now), back)
                    {
                        self.record(What::Pong { to: r });
                        self.machines[idx(r)].handle_pong(now);
                    }
                }
                Transmit::Binary(bytes) => self.on_binary(r, bytes),
            }
        }
        while let Some(ev) = self.machines[idx(r)].poll_event() {
            moved = true;
            self.on_event(r, ev);
        }
        moved
    }

    fn on_text(&mut self, r: Role, bytes: Vec<u8>) {
        let summary = summarize(MsgKind::Text, &bytes);
        self.record(What::Wrote { by: r, msg: MsgKind::Text, bytes: bytes.clone(), summary });
        let s = &self.sides[idx(r)];
        if s.opened {
            self.record(What::ServiceSaw {
                side: r,
                req: Req::Open001,
                detail: "text frame after OpenDataChannel".into(),
            });
            return;
        }
        let OpenCheck { accepted, why, token } = check_open(&bytes, self.terminated, &s.token);
        self.record(What::OpenChecked { side: r, token, accepted, why: why.clone() });
        if accepted {
            let s = &mut self.sides[idx(r)];
            s.opened = true;
            s.opens_accepted += 1;
            if r == Role::Client && s.opens_accepted > 1 {
                self.client_reconnects += 1;
            }
            self.publication_update();
        } else {
            self.close_side(r, Some(4001), &format!("OpenDataChannel refused: {why}"));
        }
    }

    fn on_binary(&mut self, r: Role, bytes: Vec<u8>) {
        let summary = summarize(MsgKind::Binary, &bytes);
        self.record(What::Wrote {
            by: r,
            msg: MsgKind::Binary,
            bytes: bytes.clone(),
            summary: summary.clone(),
        });
        if !self.sides[idx(r)].opened {
            self.record(What::ServiceSaw {
                side: r,
                req: Req::Open001,
                detail: "binary frame before OpenDataChannel".into(),
            });
            return;
        }
        match inbound(&bytes) {
            Inbound::Consumed => return,
            Inbound::Stream => self.last_activity = self.now,
            Inbound::Other => {}
        }
        let dir = Side::from(r).peer().inbound();
        let ctx = self.context();
        let effects = self.faults.on_frame(ms(self.now), dir, &bytes, &ctx);
        self.apply_effects(effects, Some(&summary), None);
    }

    fn context(&self) -> Context {
        Context {
            resume_in_flight: self.resume_in_flight,
            client_reconnects: self.client_reconnects,
            unacked: [self.machines[0].unacked(), self.machines[1].unacked()],
        }
    }

    fn on_event(&mut self, r: Role, ev: Event) {
        let value = serde_json::to_value(&ev).unwrap_or(serde_json::Value::Null);
        self.record(What::Event { role: r, event: value });
        match ev {
            Event::Connect { url, .. } => {
                let mut at = self.now + Duration::from_millis(self.sc.link.latency_ms);
                if r == Role::Client && self.sides[0].opens_accepted == 0 {
                    at = at + Duration::from_millis(self.sc.service.client_first_connect_delay_ms);
                }
                self.pending.push((at, Pending::Upgrade { role: r, url }));
            }
            Event::CloseTransport => self.close_side(r, Some(1000), "closed by its machine"),
            Event::Api(call) => {
                let op = ssm_fault::ApiOp::of_call(&call);
                if op == ssm_fault::ApiOp::ResumeSession {
                    self.resume_in_flight = true;
                }
                let ctx = self.context();
                let extra = self.faults.on_api(ms(self.now), op, &ctx);
                let delay = match &extra {
                    ApiEffect::Delay(d) => *d,
                    _ => 0,
                };
                let at = self.now + Duration::from_millis(self.sc.link.latency_ms * 2 + delay);
                let called_at = self.now;
                self.pending.push((at, Pending::Api { role: r, call, extra, called_at }));
            }
            Event::SessionReady { .. } => self.app_ready(r),
            // An agent whose session ends reports it; the service then ends the session for
            // both sides (channel_closed to the client).
            Event::Ended(_) if r == Role::Agent => self.terminate_session("The agent ended the session"),
            // A client whose session ended exits: its websocket closes.
            Event::Ended(_) => self.close_side(Role::Client, Some(1000), "the client ended its session"),
            Event::Data { payload_type, bytes, .. } => {
                self.delivered[idx(r)] += 1;
                if r == Role::Agent && payload_type == PayloadType::OUTPUT.0 {
                    if let AgentApp::Echo { .. } = self.sc.agent_app {
                        let _ = self.app_send(Role::Agent, PayloadType::OUTPUT, &bytes);
                    }
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ applications

    fn app_send(&mut self, r: Role, pt: PayloadType, bytes: &[u8]) -> Result<i64, SendError> {
        let now = self.now;
        let res = self.machines[idx(r)].send(now, pt, bytes);
        self.record(What::Offered {
            by: r,
            payload_type: pt.0,
            bytes: bytes.to_vec(),
            accepted: res.is_ok(),
        });
        if res.is_ok() {
            self.offered[idx(r)] += 1;
        }
        self.flush();
        res
    }

    fn app_ready(&mut self, r: Role) {
        match (r, &self.sc.agent_app) {
            (Role::Agent, AgentApp::Echo { prompt }) => {
                if !prompt.is_empty() {
                    let p = prompt.clone().into_bytes();
                    let _ = self.app_send(Role::Agent, PayloadType::OUTPUT, &p);
                }
            }
            (Role::Agent, AgentApp::Script { output, interval_ms, .. }) => {
                let n = output.len();
                for i in 0..=n {
                    let at = self.now + Duration::from_millis(*interval_ms * i as u64);
                    self.pending.push((at, Pending::AgentChunk { index: i }));
                }
            }
            (Role::Client, _) => {
                // A shell handler reports the terminal size first (6.4).
                if matches!(
                    self.sc.session,
                    ssm_channel::SessionKind::Shell | ssm_channel::SessionKind::InteractiveCommands
                ) {
                    let _ = self.app_send(Role::Client, PayloadType::SIZE, br#"{"cols":80,"rows":24}"#);
                }
            }
        }
    }

    fn agent_chunk(&mut self, index: usize) {
        let AgentApp::Script { output, exit_code, .. } = &self.sc.agent_app else { return };
        if let Some(chunk) = output.get(index) {
            let c = chunk.clone().into_bytes();
            if !c.is_empty() {
                let _ = self.app_send(Role::Agent, PayloadType::OUTPUT, &c);
            }
        } else {
            let code = *exit_code;
            self.agent_script_done = true;
            let now = self.now;
            self.machines[1].finish(now, code);
            self.flush();
        }
    }

    // ------------------------------------------------------------------ service

    fn complete_upgrade(&mut self, r: Role, url: String) {
        let now = self.now;
        self.record(What::Opened { side: r, url: url.clone() });
        let s = &mut self.sides[idx(r)];
        s.up = true;
        s.opened = false;
        s.epoch += 1;
        s.queue.clear();
        s.last_deliver = now;
        self.machines[idx(r)].handle_transport_open(now);
        self.flush();
    }

    fn terminate_session(&mut self, output: &str) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        self.record(What::SessionTerminated { why: output.to_owned() });
        self.notify_closed(output);
    }

    fn new_token(&mut self, r: Role) -> String {
        self.token_counter += 1;
        let t = format!("{}-token-{}-{:08x}", r.name(), self.token_counter, self.rng.next_u64() as u32);
        self.sides[idx(r)].token = t.clone();
        t
    }

    fn answer_api(&mut self, r: Role, call: ApiCall, extra: ApiEffect, called_at: Time) {
        let now = self.now;
        let result = match (&call, &extra) {
            (_, ApiEffect::Error(kind)) => ApiResult::Error(kind.to_channel()),
            (ApiCall::ResumeSession { .. }, _) => {
                self.resume_in_flight = false;
                if self.terminated {
                    match self.sc.service.terminated_resume {
                        TerminatedResume::Error => ApiResult::Error(ApiError::DoesNotExist),
                        TerminatedResume::NullToken => ApiResult::Resumed { token: None, stream_url: None },
                    }
                } else if matches!(extra, ApiEffect::NullToken) {
                    ApiResult::Resumed { token: None, stream_url: None }
                } else {
                    let token = self.new_token(Role::Client);
                    let rotate =
                        self.sc.service.rotate_stream_url || matches!(extra, ApiEffect::RotateStreamUrl);
                    let stream_url = if rotate {
                        let url = format!("ws://127.0.0.1:1/v1/data-channel/{SESSION_ID}?role=publish_subscribe&cell-number={}", self.token_counter);
                        self.sides[0].url = url.clone();
                        Some(url)
                    } else {
                        Some(self.sides[0].url.clone())
                    };
                    ApiResult::Resumed { token: Some(token), stream_url }
                }
            }
            (ApiCall::CreateDataChannel { .. }, _) => {
                if self.terminated {
                    ApiResult::Error(ApiError::SessionTerminated)
                } else {
                    ApiResult::DataChannelToken { token: self.new_token(Role::Agent) }
                }
            }
            (ApiCall::TerminateSession { .. }, _) => {
                self.terminate_session("Session terminated by the client");
                ApiResult::Terminated
            }
        };
        if matches!(call, ApiCall::ResumeSession { .. }) {
            self.resume_in_flight = false;
        }
        let call_s = serde_json::to_string(&call).unwrap_or_default();
        self.record(What::Api {
            by: r,
            call: call_s,
            answer: format!("{result:?}"),
            called_at: called_at.as_nanos(),
        });
        self.machines[idx(r)].handle_api_result(now, result);
        self.flush();
    }

    // ------------------------------------------------------------------ script

    fn advance_script(&mut self) {
        for _ in 0..10_000 {
            let now = self.now;
            match self.cursor.clone() {
                Cursor::Done => return,
                Cursor::Start { index, at } => {
                    let Some(step) = self.sc.steps.get(index).cloned() else {
                        self.cursor = Cursor::Done;
                        return;
                    };
                    let start_at = at.or_else(|| step_at(&step).map(Time::from_millis));
                    if start_at.is_some_and(|t| t > now) {
                        self.cursor = Cursor::Start { index, at: start_at };
                        return;
                    }
                    self.record(What::Step { index, step: serde_json::to_value(&step).unwrap_or_default() });
                    self.start_step(index, &step);
                    self.flush();
                }
                Cursor::Waiting { index, until } => {
                    if now < until {
                        return;
                    }
                    self.cursor = Cursor::Start { index: index + 1, at: None };
                }
                Cursor::WaitingFor { index, event, deadline, baseline } => {
                    if self.event_holds(&event, baseline) {
                        self.cursor = Cursor::Start { index: index + 1, at: None };
                    } else if now >= deadline {
                        self.step_failure = Some((index, format!("wait_for {event:?}")));
                        self.cursor = Cursor::Done;
                        return;
                    } else {
                        return;
                    }
                }
            }
        }
    }

    fn event_holds(&self, event: &WaitEvent, baseline: u64) -> bool {
        match event {
            WaitEvent::Ready => self.machines.iter().all(Channel::is_ready),
            WaitEvent::Reconnected => {
                let s = &self.sides[0];
                s.opened && s.opens_accepted > baseline.min(s.opens_at_last_break)
            }
            WaitEvent::Delivered => {
                self.delivered[1] >= self.offered[0] && self.delivered[0] >= self.offered[1]
            }
            WaitEvent::Ended => self.machines[idx(self.sc.under_test)].is_ended(),
            WaitEvent::Quiet => self.is_settled(),
        }
    }

    fn start_step(&mut self, index: usize, step: &Step) {
        let now = self.now;
        let next = Cursor::Start { index: index + 1, at: None };
        let wait_for = |event: WaitEvent, timeout: Option<u64>, baseline: u64| Cursor::WaitingFor {
            index,
            event,
            deadline: now + Duration::from_millis(timeout.unwrap_or(60_000)),
            baseline,
        };
        self.cursor = match step {
            Step::Send { from, text, hex, payload_type, repeat, .. } => {
                let base = match (text, hex) {
                    (Some(t), _) => t.clone().into_bytes(),
                    (None, Some(h)) => hex::decode(h).unwrap_or_default(),
                    (None, None) => Vec::new(),
                };
                let pt = PayloadType(payload_type.unwrap_or(1));
                let n = repeat.unwrap_or(1);
                for i in 0..n {
                    let mut b = base.clone();
                    if n > 1 {
                        b.extend_from_slice(format!("#{i};").as_bytes());
                    }
                    let _ = self.app_send(*from, pt, &b);
                }
                next
            }
            Step::Resize { cols, rows, .. } => {
                let body = payload::to_go_json(&payload::Size { cols: *cols, rows: *rows });
                let _ = self.app_send(Role::Client, PayloadType::SIZE, &body);
                next
            }
            Step::Wait { ms } => Cursor::Waiting { index, until: now + Duration::from_millis(*ms) },
            Step::WaitFor { event, timeout_ms } => {
                let baseline = self.sides[0].opens_accepted;
                wait_for(event.clone(), *timeout_ms, baseline)
            }
            Step::Disconnect { side, how, code, .. } => {
                let code = match how {
                    Breakage::Reset => None,
                    Breakage::Close => Some(code.unwrap_or(1006)),
                };
                self.close_side(*side, code, "scenario step");
                next
            }
            Step::Resume { timeout_ms } => {
                let baseline = self.sides[0].opens_accepted;
                self.close_side(Role::Client, None, "scenario step: resume");
                wait_for(WaitEvent::Reconnected, *timeout_ms, baseline)
            }
            Step::Terminate { via } => {
                match via {
                    TerminateVia::Interrupt => {
                        self.machines[0].terminate(now);
                    }
                    TerminateVia::Service => self.terminate_session("Session terminated"),
                }
                next
            }
            Step::Finish { exit_code } => {
                self.machines[1].finish(now, *exit_code);
                next
            }
            Step::SetReady { side, ready } => {
                self.sides[idx(*side)].ready = *ready;
                self.machines[idx(*side)].set_consumer_ready(*ready);
                next
            }
        };
    }
}

impl Relay for World<'_> {
    fn record(&mut self, what: What) {
        self.trace.push(self.now.as_nanos(), what);
    }

    fn rule_label(&self, id: ssm_fault::RuleId) -> String {
        match self.faults.plan().rule_name(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        }
    }

    fn enqueue(&mut self, dir: Direction, bytes: Vec<u8>, extra_ms: u64, fault: Option<String>) {
        let to = dir.destination().role();
        let link = &self.sc.link;
        if link_loses(link.loss, fault.is_some(), &mut self.rng) {
            let summary = summarize(MsgKind::Binary, &bytes);
            self.record(What::Lost { towards: to, why: "link loss".into(), summary });
            return;
        }
        if !self.sides[idx(to)].opened {
            let summary = summarize(MsgKind::Binary, &bytes);
            self.record(What::Lost { towards: to, why: "destination not connected".into(), summary });
            return;
        }
        let jitter = link_jitter(link.jitter_ms, &mut self.rng);
        let at = self.now + Duration::from_millis(link.latency_ms + jitter + extra_ms);
        let s = &mut self.sides[idx(to)];
        // Websockets run over TCP: frames on one connection stay in order, unless a fault delays one.
        let at = if extra_ms == 0 {
            let at = at.max(s.last_deliver);
            s.last_deliver = at;
            at
        } else {
            at
        };
        let epoch = s.epoch;
        // The queue is sorted by delivery time; equal times keep their order.
        let pos = s.queue.partition_point(|f| f.deliver_at <= at);
        s.queue.insert(pos, InFlight { deliver_at: at, bytes, epoch, fault, then_reset: false });
        s.last_enqueued = Some(pos);
    }

    fn close_side(&mut self, r: Role, code: Option<u16>, why: &str) {
        let s = &mut self.sides[idx(r)];
        if !s.up {
            return;
        }
        s.up = false;
        s.opened = false;
        s.epoch += 1;
        s.opens_at_last_break = s.opens_accepted;
        let lost: Vec<InFlight> = s.queue.drain(..).collect();
        self.record(What::Closed { side: r, code, why: why.to_owned() });
        for f in lost {
            let summary = summarize(MsgKind::Binary, &f.bytes);
            self.record(What::Lost { towards: r, why: "websocket closed".into(), summary });
        }
        let now = self.now;
        self.machines[idx(r)].handle_transport_lost(now);
        self.publication_update();
        self.flush();
    }

    fn reset_after_last(&mut self, to: Role) -> bool {
        let s = &mut self.sides[idx(to)];
        match s.last_enqueued.and_then(|i| s.queue.get_mut(i)) {
            Some(f) => {
                f.then_reset = true;
                true
            }
            None => false,
        }
    }

    fn opened(&self, side: Role) -> bool {
        self.sides[idx(side)].opened
    }

    fn paused_sent(&mut self, side: Role) -> &mut bool {
        &mut self.sides[idx(side)].paused_sent
    }

    fn publishes(&self) -> bool {
        self.sc.service.publication && !self.terminated
    }

    fn service_uuid(&mut self) -> Uuid {
        self.rng.uuid_v4()
    }

    fn service_clock_ms(&self) -> u64 {
        1_700_000_000_000 + self.now.as_millis()
    }

    fn session_id(&self) -> &str {
        SESSION_ID
    }

    fn service_send(&mut self, to: Role, bytes: Vec<u8>) {
        let summary = summarize(MsgKind::Binary, &bytes);
        self.record(What::ServiceWrote { towards: to, bytes: bytes.clone(), summary: summary.clone() });
        let dir = Side::from(to).inbound();
        let ctx = self.context();
        let effects = self.faults.on_frame(ms(self.now), dir, &bytes, &ctx);
        self.apply_effects(effects, Some(&summary), Some("service"));
    }
}

fn step_at(s: &Step) -> Option<u64> {
    match s {
        Step::Send { at_ms, .. } | Step::Resize { at_ms, .. } | Step::Disconnect { at_ms, .. } => *at_ms,
        _ => None,
    }
}
