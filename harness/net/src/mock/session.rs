//! One session of the mock: the service's relay (MGS) and the agent behind it, run as one task.
//!
//! The agent is the shared sans-IO machine in the agent role; its websocket to the service is
//! in-process, so what crosses a real socket is exactly what a client sees. The relay carries
//! frames both ways through the session's fault engine and link model (latency, jitter, loss),
//! sends pause_publication to a side whose peer is away and start_publication when it is back,
//! closes websockets periodically (1000 "Bye") and enforces the idle and maximum-duration
//! timeouts. With a [`Recorder`] it writes the same trace records the simulator writes, so a run
//! over real sockets is judged by the same checks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssm_channel::rng::Rng;
use ssm_channel::{
    ApiCall, ApiError, ApiResult, Behaviour, Channel, Config, Event, PayloadType, Role, SessionKind, Time,
    Transmit,
};
use ssm_fault::{ApiEffect, ApiOp, Context, Direction, FaultEngine, Side};
use ssm_scenario::relay::{check_open, inbound, link_jitter, link_loses, Inbound, OpenCheck, Relay, Uuid};
use ssm_scenario::trace::{summarize, MsgKind};
use ssm_scenario::What;
use ssm_spec::Req;
use ssm_wire::MessageType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::AppConfig;
use super::registry::{Registry, SessionStatus};
use crate::clock::Clock;
use crate::record::Recorder;

/// Messages a session task receives.
#[derive(Debug)]
pub(crate) enum ToSession {
    /// A client asked for a websocket (its OpenDataChannel check follows).
    ClientConnecting,
    /// A client websocket passed the OpenDataChannel check.
    Opened { conn: u64, tx: mpsc::Sender<WsOut> },
    /// A binary message from the client's current websocket.
    Binary { conn: u64, bytes: Vec<u8> },
    /// That websocket is gone.
    Closed { conn: u64 },
    /// The client handled the last frame sent to it (scenario runs; see
    /// [`crate::record::BARRIER`]).
    Barrier { conn: u64 },
    /// TerminateSession, an idle or duration timeout.
    Terminate { why: String },
    /// The mock is shutting down: tell the client and end the task.
    Shutdown,
    /// Drop the client's websocket without a close frame (a network failure, for tests and
    /// fault scripts).
    ResetClient,
    /// A scenario step for the agent side or the service.
    Script(ScriptCmd),
    /// Bytes from the port-forward target.
    PortData(Vec<u8>),
    /// The port-forward target closed.
    PortClosed,
}

/// What a scenario script asks of the agent or the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptCmd {
    /// The agent's application sends this.
    Send { payload_type: u32, bytes: Vec<u8> },
    /// The agent's application finishes (TERM-004).
    Finish { exit_code: Option<i32> },
    /// The agent's consumer is (not) ready for data.
    SetReady(bool),
    /// Break a side's websocket: `code` None resets the connection, Some closes with it.
    Disconnect { side: Role, code: Option<u16>, why: String },
}

/// What a session asks a client connection task to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsOut {
    Binary(Vec<u8>),
    Close(u16, String),
    /// Drop the connection without a close frame.
    Reset,
}

/// Capacity of a connection's outgoing queue; when it is full the relay holds frames back (see
/// `MAX_BACKLOG_FRAMES` and the stall timeout).
pub(crate) const CONN_QUEUE: usize = 16_384;

/// The most frames the relay holds for later delivery; beyond it frames are lost.
const MAX_HELD: usize = 100_000;

/// What the relay holds back for a client whose connection queue is full (TCP backpressure:
/// frames wait, in order, until the connection takes them). Beyond it frames for the client are
/// lost, as on a congested path; retransmission recovers them.
const MAX_BACKLOG_FRAMES: usize = 65_536;
const MAX_BACKLOG_BYTES: usize = 64 << 20;

/// How often a session with frames held back checks for a stalled client.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// What a session's application is.
#[derive(Debug)]
enum App {
    Echo { prompt: String },
    Script { output: VecDeque<String>, interval: Duration, exit_code: Option<i32>, next: Option<Instant> },
    Port { target: SocketAddr, to_target: Option<mpsc::Sender<Vec<u8>>> },
}

/// The document a StartSession names decides the session kind (the agent's plugin).
pub(crate) fn session_kind(document: Option<&str>) -> Option<SessionKind> {
    Some(match document {
        None | Some("SSM-SessionManagerRunShell") => SessionKind::Shell,
        Some("AWS-StartInteractiveCommand") => SessionKind::InteractiveCommands,
        Some("AWS-StartNonInteractiveCommand") => SessionKind::NonInteractiveCommands,
        Some("AWS-StartPortForwardingSession") | Some("AWS-StartPortForwardingSessionToRemoteHost") => {
            SessionKind::Port
        }
        Some(_) => return None,
    })
}

/// Latency, jitter and loss between each side and the service (machine time).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkModel {
    pub latency: Duration,
    pub jitter: Duration,
    pub loss: f64,
}

pub(crate) struct SessionSetup {
    pub id: String,
    pub kind: SessionKind,
    pub agent: Behaviour,
    pub app: AppConfig,
    pub port_target: Option<SocketAddr>,
    pub stream_url: String,
    pub seed: u64,
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
    pub bye_interval: Option<Duration>,
    /// A client whose connection takes no frame for this long (real time) while frames wait
    /// for it is not reading: its websocket is closed with 1011 and the agent retransmits what
    /// it missed after the resume.
    pub stall_timeout: Duration,
    pub channel_closed_grace: Duration,
    pub publication: bool,
    pub clock: Clock,
    pub link: LinkModel,
    pub faults: Option<Arc<Mutex<FaultEngine>>>,
    pub recorder: Option<Recorder>,
    pub extra_client_actions: Vec<String>,
    pub kms: Option<ssm_channel::kms::Kms>,
}

/// A frame for the client's connection.
#[derive(Debug)]
struct ToClient {
    bytes: Vec<u8>,
    fault: Option<String>,
    /// Reset the connection once the frame is written.
    then_reset: bool,
}

const RESET_AFTER_DELIVERY: &str = "reset right after a delivery (fault)";

/// A frame on its way to a side.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    to: Role,
    bytes: Vec<u8>,
    epoch: u64,
    fault: Option<String>,
    then_reset: bool,
}

pub(crate) struct Session {
    id: String,
    registry: Arc<Registry>,
    clock: Clock,
    agent: Channel,
    app: App,
    conn: Option<(u64, mpsc::Sender<WsOut>)>,
    /// Frames for the client waiting for room in its connection's queue; `backlog_bytes` is
    /// their size.
    backlog: VecDeque<ToClient>,
    backlog_bytes: usize,
    /// When the client's connection last took a frame while frames were held back.
    backlog_moved: std::time::Instant,
    stall_timeout: Duration,
    /// A scenario run (it has a recorder): one frame at a time to the client, the next once it
    /// has handled the last (see [`crate::record::BARRIER`]); a client told channel_closed is
    /// left to the checks; no stall-check timer on virtual time.
    scenario_run: bool,
    awaiting_barrier: bool,
    channel_closed_grace: Duration,
    /// When the client's websocket is closed if the client, told channel_closed, has not
    /// closed it itself.
    close_client_at: Option<Instant>,
    /// The agent's in-process websocket: open, and OpenDataChannel accepted.
    agent_up: bool,
    agent_ever_up: bool,
    agent_deferred: bool,
    client_connecting: bool,
    agent_opened: bool,
    agent_token: String,
    agent_connect_at: Option<Instant>,
    /// Per side: a new epoch with every websocket, so frames for a gone one are lost.
    epoch: [u64; 2],
    paused_sent: [bool; 2],
    publication: bool,
    last_activity: Instant,
    idle_timeout: Option<Duration>,
    ends_at: Option<Instant>,
    bye_interval: Option<Duration>,
    next_bye: Option<Instant>,
    terminated: bool,
    self_tx: mpsc::Sender<ToSession>,
    link: LinkModel,
    rng: Rng,
    queue: VecDeque<InFlight>,
    last_deliver: [Instant; 2],
    last_enqueued: [Option<Instant>; 2],
    faults: Option<Arc<Mutex<FaultEngine>>>,
    rec: Option<Recorder>,
    /// The instant of the input being processed: its records share it (see the client's).
    stamp: Option<Time>,
    stop: bool,
    client_opens: u64,
    delivered_to_agent: u64,
    offered_by_agent: u64,
}

fn ix(r: Role) -> usize {
    match r {
        Role::Client => 0,
        Role::Agent => 1,
    }
}

fn side(r: Role) -> Side {
    match r {
        Role::Client => Side::Client,
        Role::Agent => Side::Agent,
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64)
}

impl Session {
    pub(crate) fn new(
        setup: SessionSetup,
        registry: Arc<Registry>,
        self_tx: mpsc::Sender<ToSession>,
    ) -> Self {
        let clock = setup.clock;
        let mut rng = Rng::new(setup.seed ^ 0x6d6f_636b_7365_7373);
        let mut cfg = Config::new(Role::Agent, setup.agent, rng.next_u64());
        cfg.session_id = setup.id.clone();
        let agent_token = format!("agent-{}", super::registry::random_token());
        cfg.token = agent_token.clone();
        cfg.stream_url = setup.stream_url;
        cfg.epoch_ms = epoch_ms();
        cfg.session_kind = setup.kind.clone();
        cfg.extra_client_actions = setup.extra_client_actions;
        cfg.kms = setup.kms;
        let app = match (&setup.kind, setup.app) {
            (SessionKind::Port, _) if setup.port_target.is_some() => App::Port {
                target: setup.port_target.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 22))),
                to_target: None,
            },
            (_, AppConfig::Echo { prompt }) => App::Echo { prompt },
            (_, AppConfig::Script { output, interval, exit_code }) => {
                App::Script { output: output.into(), interval, exit_code, next: None }
            }
        };
        let now = Instant::now();
        Session {
            id: setup.id,
            registry,
            clock,
            agent: Channel::new(clock.now(), cfg),
            app,
            conn: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            backlog_moved: std::time::Instant::now(),
            stall_timeout: setup.stall_timeout,
            scenario_run: setup.recorder.is_some(),
            awaiting_barrier: false,
            channel_closed_grace: setup.channel_closed_grace,
            close_client_at: None,
            agent_up: false,
            agent_ever_up: false,
            agent_deferred: false,
            client_connecting: false,
            agent_opened: false,
            agent_token,
            agent_connect_at: None,
            epoch: [0, 0],
            paused_sent: [false, false],
            publication: setup.publication,
            last_activity: now,
            idle_timeout: setup.idle_timeout,
            ends_at: setup.max_duration.map(|d| now + clock.to_real(d)),
            bye_interval: setup.bye_interval,
            next_bye: setup.bye_interval.map(|d| now + clock.to_real(d)),
            terminated: false,
            self_tx,
            link: setup.link,
            rng,
            queue: VecDeque::new(),
            last_deliver: [now, now],
            last_enqueued: [None, None],
            faults: setup.faults,
            rec: setup.recorder,
            stamp: None,
            stop: false,
            client_opens: 0,
            delivered_to_agent: 0,
            offered_by_agent: 0,
        }
    }

    fn now(&self) -> Time {
        self.clock.now()
    }

    fn ms(&self) -> u64 {
        self.clock.now().as_millis()
    }

    fn recording(&self) -> bool {
        self.rec.is_some()
    }

    /// Runs the session until it is terminated and its client has been told.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<ToSession>) {
        self.drain();
        loop {
            // A terminated session ends once its client has been told, unless a scenario run
            // still needs its agent (which learns of the end through CreateDataChannel).
            if self.stop
                || (self.terminated && self.conn.is_none() && self.queue.is_empty() && self.rec.is_none())
            {
                break;
            }
            let deadline = self.next_deadline();
            // Frames held back for the client wait for room in its connection's queue.
            let held_for = match &self.conn {
                Some((_, tx)) if !self.backlog.is_empty() && !self.awaiting_barrier => Some(tx.clone()),
                _ => None,
            };
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(m) => self.on_message(m),
                },
                () = sleep_until(deadline) => self.on_timer(),
                room = room_in(held_for) => {
                    if room {
                        self.pump_client();
                    } else {
                        // The connection task is gone; its Closed message follows.
                        self.drop_backlog("websocket gone");
                    }
                }
            }
            self.drain();
            self.publish();
        }
        self.publish();
        self.registry.forget_live(&self.id);
    }

    /// Live facts for a scenario script.
    fn publish(&self) {
        let Some(r) = &self.rec else { return };
        let p = &r.probe;
        let a = p.side(false);
        a.ready.store(self.agent.is_ready(), Ordering::Relaxed);
        a.ended.store(self.agent.is_ended(), Ordering::Relaxed);
        let script_pending = matches!(&self.app, App::Script { next: Some(_), .. });
        a.busy.store(
            !(self.agent.is_quiescent() || self.agent.is_ended())
                || self.agent_connect_at.is_some()
                || script_pending,
            Ordering::Relaxed,
        );
        p.client_connected.store(self.conn.is_some(), Ordering::Relaxed);
        a.offered.store(self.offered_by_agent, Ordering::Relaxed);
        a.delivered.store(self.delivered_to_agent, Ordering::Relaxed);
        p.in_flight.store((self.queue.len() + self.backlog.len()) as u64, Ordering::Relaxed);
        p.client_opens.store(self.client_opens, Ordering::Relaxed);
        p.changed.notify_waiters();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        add(self.queue.front().map(|f| f.at));
        add(self.agent_connect_at);
        if let Some(f) = &self.faults {
            let next = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner).next_deadline();
            add(next.map(|ms| self.clock.instant(Time::from_millis(ms))));
        }
        add(self.agent.poll_timeout().map(|x| self.clock.instant(x)));
        // A scenario run (virtual time) leaves stalls to the world's deadlines: a check timer
        // there would let the paused clock jump whenever a frame waits for the client.
        if !self.backlog.is_empty() && !self.scenario_run {
            add(Some(Instant::now() + STALL_CHECK));
        }
        add(self.close_client_at);
        if !self.terminated {
            add(self.idle_timeout.map(|d| self.last_activity + self.clock.to_real(d)));
            add(self.ends_at);
            add(self.next_bye);
            if let App::Script { next, .. } = &self.app {
                add(*next);
            }
        }
        t
    }

    fn on_timer(&mut self) {
        self.check_stall();
        let now_i = Instant::now();
        // Frames due for delivery.
        while self.queue.front().is_some_and(|f| f.at <= now_i) {
            let Some(f) = self.queue.pop_front() else { break };
            self.deliver(f);
        }
        if self.agent_connect_at.is_some_and(|t| t <= now_i) {
            if self.client_connecting && !self.agent_ever_up && !self.agent_deferred {
                // The client's first websocket, dialled at the same instant, opens first (the
                // simulator's order); at most 1 ms later the agent opens regardless.
                self.agent_deferred = true;
                self.agent_connect_at = Some(now_i + Duration::from_millis(1));
            } else {
                self.agent_connect_at = None;
                self.agent_upgrade();
            }
        }
        if let Some(f) = self.faults.clone() {
            let effects = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner).poll(self.ms());
            self.apply_effects(effects, None, None);
        }
        if self.close_client_at.is_some_and(|t| t <= now_i) {
            self.close_client_at = None;
            if self.conn.is_some() {
                let grace = self.channel_closed_grace;
                self.registry.record_violation(
                    &self.id,
                    Req::Term001,
                    format!("the client kept its websocket open {grace:?} after channel_closed"),
                );
                self.close_side(Role::Client, Some(1000), "the session is terminated");
            }
        }
        if self.terminated {
            let now = self.now();
            if self.agent.poll_timeout().is_some_and(|t| t <= now) {
                self.agent.handle_timeout(now);
            }
            return;
        }
        if self.next_bye.is_some_and(|b| now_i >= b) {
            self.next_bye = self.bye_interval.map(|d| now_i + self.clock.to_real(d));
            self.close_side(Role::Client, Some(1000), "service closed the websocket: Bye");
            self.close_side(Role::Agent, Some(1000), "service closed the websocket: Bye");
        }
        if self.ends_at.is_some_and(|e| now_i >= e) {
            self.terminate("Session reached its maximum duration");
            return;
        }
        if self.idle_timeout.is_some_and(|d| now_i >= self.last_activity + self.clock.to_real(d)) {
            self.terminate("Session timed out due to inactivity");
            return;
        }
        if let App::Script { next: Some(at), .. } = &self.app {
            if now_i >= *at {
                self.script_step();
            }
        }
        let now = self.now();
        if self.agent.poll_timeout().is_some_and(|t| t <= now) {
            self.agent.handle_timeout(now);
        }
    }

    fn on_message(&mut self, m: ToSession) {
        let now = self.now();
        match m {
            ToSession::ClientConnecting => self.client_connecting = true,
            ToSession::Opened { conn, tx } => {
                self.client_connecting = false;
                if self.terminated {
                    let _ = tx.try_send(WsOut::Close(4001, "the session is terminated".into()));
                    return;
                }
                if let Some((_, old)) = self.conn.replace((conn, tx)) {
                    let _ = old.try_send(WsOut::Close(1000, "replaced by a newer connection".into()));
                }
                self.epoch[0] += 1;
                self.last_deliver[0] = Instant::now();
                self.awaiting_barrier = false;
                self.client_opens += 1;
                self.registry.set_status(&self.id, SessionStatus::Connected);
                self.publication_update();
                if self.agent_deferred && self.agent_connect_at.is_some() {
                    self.agent_connect_at = None;
                    self.agent_upgrade();
                }
            }
            ToSession::Binary { conn, bytes } => {
                if self.conn.as_ref().map(|c| c.0) != Some(conn) {
                    return;
                }
                self.relay_from(Role::Client, bytes);
            }
            ToSession::Barrier { conn } => {
                if self.conn.as_ref().map(|c| c.0) == Some(conn) {
                    self.awaiting_barrier = false;
                    self.pump_client();
                }
            }
            ToSession::Closed { conn } => {
                if self.conn.as_ref().map(|c| c.0) == Some(conn) {
                    self.record(What::Closed {
                        side: Role::Client,
                        code: None,
                        why: "the client's websocket broke".into(),
                    });
                    self.client_gone();
                }
            }
            ToSession::Terminate { why } => self.terminate(&why),
            ToSession::Shutdown => {
                self.terminate("the mock service is shutting down");
                self.stop = true;
            }
            ToSession::ResetClient => self.close_side(Role::Client, None, "reset by the mock"),
            ToSession::Script(cmd) => self.script(cmd),
            ToSession::PortData(bytes) => {
                if !bytes.is_empty() {
                    self.app_send(PayloadType::OUTPUT, &bytes);
                }
            }
            ToSession::PortClosed => {
                if let App::Port { to_target, .. } = &mut self.app {
                    *to_target = None;
                }
            }
        }
        let _ = now;
    }

    fn script(&mut self, cmd: ScriptCmd) {
        let now = self.now();
        match cmd {
            ScriptCmd::Send { payload_type, bytes } => {
                self.app_send(PayloadType(payload_type), &bytes);
            }
            ScriptCmd::Finish { exit_code } => self.agent.finish(now, exit_code),
            ScriptCmd::SetReady(ready) => self.agent.set_consumer_ready(ready),
            ScriptCmd::Disconnect { side, code, why } => self.close_side(side, code, &why),
        }
    }

    /// Hands a frame to the client's connection, behind any frames already held back.
    fn send_to_client(&mut self, f: ToClient) {
        if !self.backlog.is_empty() {
            self.hold_for_client(f);
        } else if let Err(held) = self.push_to_client(f) {
            self.hold_for_client(held);
        }
    }

    fn hold_for_client(&mut self, f: ToClient) {
        if self.backlog.len() >= MAX_BACKLOG_FRAMES || self.backlog_bytes + f.bytes.len() > MAX_BACKLOG_BYTES
        {
            if self.recording() {
                let summary = summarize(MsgKind::Binary, &f.bytes);
                let why = "the client's connection is not keeping up".to_owned();
                self.record(What::Lost { towards: Role::Client, why, summary });
            }
            return;
        }
        if self.backlog.is_empty() {
            self.backlog_moved = std::time::Instant::now();
        }
        self.backlog_bytes += f.bytes.len();
        self.backlog.push_back(f);
    }

    /// Closes the websocket of a client that has taken nothing for the stall timeout.
    fn check_stall(&mut self) {
        if !self.backlog.is_empty() && self.backlog_moved.elapsed() >= self.stall_timeout {
            let conn = self.conn.as_ref().map_or(0, |c| c.0);
            tracing::warn!(session = %self.id, conn, "client is not reading; closing its websocket");
            self.close_side(Role::Client, Some(1011), "the client is not reading");
        }
    }

    /// Writes one frame into the client connection's queue, or gives it back when the queue
    /// is full. The last slot is kept for the close, so a client that stops reading always
    /// learns why its websocket ends.
    fn push_to_client(&mut self, f: ToClient) -> Result<(), ToClient> {
        let Some((_, tx)) = &self.conn else { return Ok(()) };
        if tx.capacity() <= 1 || self.awaiting_barrier {
            return Err(f);
        }
        let ToClient { bytes, fault, then_reset } = f;
        // Only a terminated session of a real client waits for channel_closed to go out.
        let watch_close = self.terminated && !self.scenario_run && !then_reset;
        let is_channel_closed = watch_close
            && ssm_wire::decode(&bytes).is_ok_and(|w| w.message_type == MessageType::ChannelClosed);
        // The client records the delivery when its machine reads the frame.
        if let Some(r) = &self.rec {
            r.sent_to_client(&bytes, fault.clone());
        }
        if let Err(mpsc::error::TrySendError::Full(WsOut::Binary(bytes))) = tx.try_send(WsOut::Binary(bytes))
        {
            return Err(ToClient { bytes, fault, then_reset });
        }
        self.awaiting_barrier = self.scenario_run;
        if then_reset {
            self.close_side(Role::Client, None, RESET_AFTER_DELIVERY);
        } else if is_channel_closed {
            // channel_closed is out: the client should now end and close its websocket
            // (TERM-001); one that does not is closed after a grace period. A scenario run
            // leaves it open, as the simulator does, and its checks judge the client.
            self.close_client_at = Some(Instant::now() + self.clock.to_real(self.channel_closed_grace));
        }
        Ok(())
    }

    /// Moves held frames into the client connection's queue while it has room.
    fn pump_client(&mut self) {
        while let Some(f) = self.backlog.pop_front() {
            self.backlog_bytes -= f.bytes.len();
            if let Err(held) = self.push_to_client(f) {
                self.backlog_bytes += held.bytes.len();
                self.backlog.push_front(held);
                return;
            }
            self.backlog_moved = std::time::Instant::now();
        }
    }

    /// The client's connection is gone: what was held for it is lost.
    fn drop_backlog(&mut self, why: &str) {
        self.backlog_bytes = 0;
        for f in std::mem::take(&mut self.backlog) {
            if self.recording() {
                let summary = summarize(MsgKind::Binary, &f.bytes);
                self.record(What::Lost { towards: Role::Client, why: why.to_owned(), summary });
            }
        }
    }

    fn client_gone(&mut self) {
        self.conn = None;
        self.awaiting_barrier = false;
        self.close_client_at = None;
        self.drop_backlog("websocket gone");
        self.epoch[0] += 1;
        if let Some(r) = &self.rec {
            r.client_pipe_broken();
            r.probe.client_opens_at_break.store(self.client_opens, Ordering::Relaxed);
        }
        if !self.terminated {
            self.registry.set_status(&self.id, SessionStatus::Disconnected);
            self.publication_update();
        }
    }

    /// Drains the agent machine: transmits, then events (house rule 2).
    fn drain(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.agent.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Text(bytes) => self.agent_text(bytes),
                    Transmit::Ping(bytes) => {
                        if self.recording() {
                            self.record(What::Wrote {
                                by: Role::Agent,
                                msg: MsgKind::Ping,
                                bytes,
                                summary: "ping".into(),
                            });
                        }
                        let holed = self.faults.as_ref().is_some_and(|f| {
                            let g = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let ms = self.clock.now().as_millis();
                            g.is_black_holed(ms, Side::Agent.inbound())
                                || g.is_black_holed(ms, Side::Client.inbound())
                        });
                        if self.agent_up && !holed {
                            self.record(What::Pong { to: Role::Agent });
                            let now = self.now();
                            self.agent.handle_pong(now);
                        }
                    }
                    Transmit::Binary(bytes) => self.relay_from(Role::Agent, bytes),
                }
            }
            while let Some(ev) = self.agent.poll_event() {
                moved = true;
                self.on_agent_event(ev);
            }
            if !moved {
                return;
            }
        }
    }

    /// The agent's OpenDataChannel to the in-process service.
    fn agent_text(&mut self, bytes: Vec<u8>) {
        if self.recording() {
            let summary = summarize(MsgKind::Text, &bytes);
            self.record(What::Wrote { by: Role::Agent, msg: MsgKind::Text, bytes: bytes.clone(), summary });
        }
        if self.agent_opened {
            self.record(What::ServiceSaw {
                side: Role::Agent,
                req: Req::Open001,
                detail: "text frame after OpenDataChannel".into(),
            });
            return;
        }
        let OpenCheck { accepted, why, token } = check_open(&bytes, self.terminated, &self.agent_token);
        self.record(What::OpenChecked { side: Role::Agent, token, accepted, why: why.clone() });
        if accepted {
            self.agent_opened = true;
            self.publication_update();
        } else {
            self.close_side(Role::Agent, Some(4001), &format!("OpenDataChannel refused: {why}"));
        }
    }

    /// A binary message a side wrote, on its way through the relay.
    fn relay_from(&mut self, r: Role, bytes: Vec<u8>) {
        let summary = summarize(MsgKind::Binary, &bytes);
        if r == Role::Agent && self.recording() {
            self.record(What::Wrote {
                by: Role::Agent,
                msg: MsgKind::Binary,
                bytes: bytes.clone(),
                summary: summary.clone(),
            });
        }
        let opened = match r {
            Role::Client => self.conn.is_some(),
            Role::Agent => self.agent_opened,
        };
        if !opened {
            self.record(What::ServiceSaw {
                side: r,
                req: Req::Open001,
                detail: "binary frame before OpenDataChannel".into(),
            });
            return;
        }
        match inbound(&bytes) {
            Inbound::Consumed => return,
            Inbound::Stream => self.last_activity = Instant::now(),
            Inbound::Other => {}
        }
        let dir = side(r).peer().inbound();
        self.through_faults(dir, bytes, summary, None);
    }

    fn context(&self) -> Context {
        Context {
            resume_in_flight: self.registry.resume_in_flight(&self.id),
            client_reconnects: self.client_opens.saturating_sub(1),
            unacked: [
                self.rec.as_ref().map_or(0, |r| r.probe.side(true).unacked.load(Ordering::Relaxed) as usize),
                self.agent.unacked(),
            ],
        }
    }

    fn through_faults(&mut self, dir: Direction, bytes: Vec<u8>, summary: String, origin: Option<&str>) {
        let Some(f) = self.faults.clone() else {
            self.enqueue(dir, bytes, 0, origin.map(str::to_owned));
            return;
        };
        let ctx = self.context();
        let effects = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner).on_frame(
            self.ms(),
            dir,
            &bytes,
            &ctx,
        );
        self.apply_effects(effects, Some(&summary), origin);
    }

    fn deliver(&mut self, f: InFlight) {
        let now = self.now();
        let up = match f.to {
            Role::Client => self.conn.is_some(),
            Role::Agent => self.agent_opened,
        };
        if f.epoch != self.epoch[ix(f.to)] || !up {
            if self.recording() {
                let summary = summarize(MsgKind::Binary, &f.bytes);
                self.record(What::Lost { towards: f.to, why: "websocket gone".into(), summary });
            }
            return;
        }
        if f.to == Role::Agent {
            self.stamp = Some(now);
        }
        if self.recording() && f.to == Role::Agent {
            let summary = summarize(MsgKind::Binary, &f.bytes);
            self.record(What::Delivered {
                to: f.to,
                bytes: f.bytes.clone(),
                summary,
                fault: f.fault.clone(),
            });
        }
        match f.to {
            Role::Client => {
                self.send_to_client(ToClient { bytes: f.bytes, fault: f.fault, then_reset: f.then_reset })
            }
            Role::Agent => {
                self.agent.handle_binary(now, &f.bytes);
                if f.then_reset {
                    // Before the machine's reply reaches the wire, as in the simulator.
                    self.close_side(Role::Agent, None, RESET_AFTER_DELIVERY);
                }
                self.drain();
                self.stamp = None;
            }
        }
    }

    fn on_agent_event(&mut self, ev: Event) {
        let now = self.now();
        if self.recording() {
            let value = serde_json::to_value(&ev).unwrap_or(serde_json::Value::Null);
            self.record(What::Event { role: Role::Agent, event: value });
        }
        match ev {
            Event::Connect { .. } => {
                let latency = self.clock.to_real(self.link.latency);
                self.agent_connect_at = Some(Instant::now() + latency);
            }
            Event::CloseTransport => self.close_side(Role::Agent, Some(1000), "closed by its machine"),
            Event::Api(call @ ApiCall::CreateDataChannel { .. }) => {
                let extra = match &self.faults {
                    Some(f) => {
                        let ctx = self.context();
                        f.lock().unwrap_or_else(std::sync::PoisonError::into_inner).on_api(
                            self.ms(),
                            ApiOp::CreateDataChannel,
                            &ctx,
                        )
                    }
                    None => ApiEffect::Normal,
                };
                let result = match extra {
                    ApiEffect::Error(kind) => ApiResult::Error(kind.to_channel()),
                    _ if self.terminated => ApiResult::Error(ApiError::SessionTerminated),
                    _ => {
                        self.agent_token = format!("agent-{}", super::registry::random_token());
                        ApiResult::DataChannelToken { token: self.agent_token.clone() }
                    }
                };
                if self.recording() {
                    let call_s = serde_json::to_string(&call).unwrap_or_default();
                    self.record(What::Api {
                        by: Role::Agent,
                        call: call_s,
                        answer: format!("{result:?}"),
                        called_at: now.as_nanos(),
                    });
                }
                self.agent.handle_api_result(now, result);
            }
            Event::Api(_) => {}
            Event::SessionReady { .. } => self.app_ready(),
            Event::Data { payload_type, bytes, .. } => {
                self.delivered_to_agent += 1;
                self.app_input(payload_type, bytes);
            }
            Event::Violation(v) => {
                self.registry.record_violation(&self.id, v.req, format!("the agent observed: {}", v.detail));
            }
            Event::Ended(reason) => {
                tracing::info!(session = %self.id, ?reason, "agent ended");
                self.terminate("The agent ended the session");
            }
            Event::Note(_) | Event::Flag { .. } | Event::ExitCode { .. } => {}
        }
    }

    /// The agent's in-process websocket opens.
    fn agent_upgrade(&mut self) {
        if self.agent_up || self.agent.is_ended() {
            return;
        }
        self.agent_up = true;
        self.agent_ever_up = true;
        self.agent_opened = false;
        self.epoch[1] += 1;
        self.last_deliver[1] = Instant::now();
        self.record(What::Opened {
            side: Role::Agent,
            url: format!("in-process agent websocket of {}", self.id),
        });
        let now = self.now();
        self.agent.handle_transport_open(now);
    }

    /// Ends the session: channel_closed to both sides (6.8), the registry says Terminated, and
    /// the client's websocket is closed once the frame is out.
    pub(crate) fn terminate(&mut self, why: &str) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        self.registry.set_status(&self.id, SessionStatus::Terminated);
        self.record(What::SessionTerminated { why: why.to_owned() });
        tracing::info!(session = %self.id, why, "session terminated");
        self.notify_closed(why);
        if let App::Port { to_target, .. } = &mut self.app {
            *to_target = None;
        }
        // The client's websocket closes once channel_closed has been written to it (see
        // `deliver`); if a fault ate the frame, the websocket stays open, as in the simulator.
    }

    // ------------------------------------------------------------------ applications

    fn app_send(&mut self, pt: PayloadType, bytes: &[u8]) {
        let now = self.now();
        let res = self.agent.send(now, pt, bytes);
        if self.recording() {
            self.record(What::Offered {
                by: Role::Agent,
                payload_type: pt.0,
                bytes: bytes.to_vec(),
                accepted: res.is_ok(),
            });
        }
        match res {
            Ok(_) => self.offered_by_agent += 1,
            Err(e) => tracing::info!(session = %self.id, "agent output not sent: {e}"),
        }
    }

    fn app_ready(&mut self) {
        match &mut self.app {
            App::Echo { prompt } => {
                if !prompt.is_empty() {
                    let p = prompt.clone().into_bytes();
                    self.app_send(PayloadType::OUTPUT, &p);
                }
            }
            App::Script { next, .. } => *next = Some(Instant::now()),
            App::Port { target, to_target } => {
                let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
                *to_target = Some(tx);
                tokio::spawn(port_forward(*target, rx, self.self_tx.clone()));
            }
        }
    }

    fn app_input(&mut self, payload_type: u32, bytes: Vec<u8>) {
        if payload_type != PayloadType::OUTPUT.0 {
            return;
        }
        match &mut self.app {
            App::Echo { .. } => self.app_send(PayloadType::OUTPUT, &bytes),
            App::Script { .. } => {}
            App::Port { to_target, .. } => {
                if let Some(tx) = to_target {
                    if tx.try_send(bytes).is_err() {
                        tracing::warn!(session = %self.id, "port-forward target is not keeping up; data dropped");
                        self.registry.record_violation(
                            &self.id,
                            Req::Rtx001,
                            "the mock's port-forward target could not take the data".into(),
                        );
                    }
                }
            }
        }
    }

    fn script_step(&mut self) {
        let now = self.now();
        let App::Script { output, interval, exit_code, next } = &mut self.app else { return };
        match output.pop_front() {
            Some(chunk) => {
                *next = Some(Instant::now() + self.clock.to_real(*interval));
                if !chunk.is_empty() {
                    let c = chunk.into_bytes();
                    self.app_send(PayloadType::OUTPUT, &c);
                }
            }
            None => {
                *next = None;
                let code = *exit_code;
                self.agent.finish(now, code);
            }
        }
    }
}

/// The relay rules shared with the simulator, over this session's queue and websockets.
impl Relay for Session {
    fn record(&mut self, what: What) {
        if let Some(r) = &self.rec {
            match self.stamp {
                Some(t) => r.record_at(t, what),
                None => r.record(what),
            }
        }
    }

    fn rule_label(&self, id: ssm_fault::RuleId) -> String {
        let name = self.faults.as_ref().and_then(|f| {
            f.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .plan()
                .rule_name(id)
                .map(str::to_owned)
        });
        match name {
            Some(n) => format!("{id} ({n})"),
            None => id.to_string(),
        }
    }

    fn enqueue(&mut self, dir: Direction, bytes: Vec<u8>, extra_ms: u64, fault: Option<String>) {
        let to = dir.destination().role();
        let summary = if self.recording() { summarize(MsgKind::Binary, &bytes) } else { String::new() };
        if link_loses(self.link.loss, fault.is_some(), &mut self.rng) {
            self.record(What::Lost { towards: to, why: "link loss".into(), summary });
            return;
        }
        let connected = match to {
            Role::Client => self.conn.is_some(),
            Role::Agent => self.agent_opened,
        };
        if !connected {
            self.record(What::Lost { towards: to, why: "destination not connected".into(), summary });
            return;
        }
        if self.queue.len() >= MAX_HELD {
            self.record(What::Lost { towards: to, why: "the relay's queue is full".into(), summary });
            return;
        }
        let jitter = link_jitter(self.link.jitter.as_millis() as u64, &mut self.rng);
        let delay = self.link.latency + Duration::from_millis(jitter + extra_ms);
        let mut at = Instant::now() + self.clock.to_real(delay);
        // Websockets run over TCP: frames on one connection stay in order, unless a fault
        // delays one.
        if extra_ms == 0 {
            at = at.max(self.last_deliver[ix(to)]);
            self.last_deliver[ix(to)] = at;
        }
        let pos = self.queue.partition_point(|f| f.at <= at);
        let epoch = self.epoch[ix(to)];
        self.queue.insert(pos, InFlight { at, to, bytes, epoch, fault, then_reset: false });
        self.last_enqueued[ix(to)] = Some(at);
    }

    fn close_side(&mut self, r: Role, code: Option<u16>, why: &str) {
        match r {
            Role::Client => {
                let Some((_, tx)) = self.conn.take() else { return };
                let _ = tx.try_send(match code {
                    None | Some(1006) => WsOut::Reset,
                    Some(c) => WsOut::Close(c, why.to_owned()),
                });
                self.record(What::Closed { side: Role::Client, code, why: why.to_owned() });
                self.client_gone();
            }
            Role::Agent => {
                if !self.agent_up {
                    return;
                }
                self.agent_up = false;
                self.agent_opened = false;
                self.epoch[1] += 1;
                self.record(What::Closed { side: Role::Agent, code, why: why.to_owned() });
                let now = self.now();
                self.agent.handle_transport_lost(now);
                self.publication_update();
            }
        }
    }

    fn reset_after_last(&mut self, to: Role) -> bool {
        let at = self.last_enqueued[ix(to)];
        match self.queue.iter_mut().rev().find(|f| f.to == to && Some(f.at) == at) {
            Some(f) => {
                f.then_reset = true;
                true
            }
            None => false,
        }
    }

    fn opened(&self, side: Role) -> bool {
        match side {
            Role::Client => self.conn.is_some(),
            Role::Agent => self.agent_opened,
        }
    }

    fn paused_sent(&mut self, side: Role) -> &mut bool {
        &mut self.paused_sent[ix(side)]
    }

    fn publishes(&self) -> bool {
        self.publication && !self.terminated
    }

    fn service_uuid(&mut self) -> Uuid {
        Uuid::new_v4()
    }

    fn service_clock_ms(&self) -> u64 {
        epoch_ms()
    }

    fn session_id(&self) -> &str {
        &self.id
    }

    fn service_send(&mut self, to: Role, bytes: Vec<u8>) {
        let summary = summarize(MsgKind::Binary, &bytes);
        self.record(What::ServiceWrote { towards: to, bytes: bytes.clone(), summary: summary.clone() });
        let dir = side(to).inbound();
        self.through_faults(dir, bytes, summary, Some("service"));
    }
}

/// Resolves once `tx` has room for a frame and the close behind it (true), or its connection
/// task is gone (false); never without a connection.
async fn room_in(tx: Option<mpsc::Sender<WsOut>>) -> bool {
    match tx {
        Some(tx) => tx.reserve_many(2).await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The port-forward application: one TCP connection to a loopback target.
async fn port_forward(target: SocketAddr, mut rx: mpsc::Receiver<Vec<u8>>, back: mpsc::Sender<ToSession>) {
    if !target.ip().is_loopback() {
        tracing::warn!(%target, "port-forward target is not a loopback address; refused");
        let _ = back.send(ToSession::PortClosed).await;
        return;
    }
    let stream =
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(%target, "port-forward connect failed: {e}");
                let _ = back.send(ToSession::PortClosed).await;
                return;
            }
            Err(_) => {
                tracing::warn!(%target, "port-forward connect timed out");
                let _ = back.send(ToSession::PortClosed).await;
                return;
            }
        };
    let (mut r, mut w) = stream.into_split();
    let back2 = back.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let Some(chunk) = buf.get(..n) else { break };
                    if back2.send(ToSession::PortData(chunk.to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = back2.send(ToSession::PortClosed).await;
    });
    while let Some(bytes) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            break;
        }
    }
    reader.abort();
}
