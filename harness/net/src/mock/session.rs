//! One session of the mock: the service's relay (MGS) and the agent behind it, run as one task.
//!
//! The agent is the shared sans-IO machine in the agent role; its websocket to the service is
//! in-process and always up, so what crosses a real socket is exactly what a client sees. The
//! client's websocket comes and goes: while it is away, the agent is sent pause_publication and
//! the frames it writes towards the client are lost (it retransmits them), as with the real
//! service.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssm_channel::{
    ApiCall, ApiError, ApiResult, Behaviour, Channel, Config, Event, PayloadType, Role, SessionKind, Time,
    Transmit,
};
use ssm_spec::Req;
use ssm_wire::payload::{self, ChannelClosed};
use ssm_wire::{Frame, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::AppConfig;
use super::registry::{Registry, SessionStatus};

/// Messages a session task receives.
#[derive(Debug)]
pub(crate) enum ToSession {
    /// A client websocket passed the OpenDataChannel check.
    Opened { conn: u64, tx: mpsc::Sender<WsOut> },
    /// A binary message from the client's current websocket.
    Binary { conn: u64, bytes: Vec<u8> },
    /// That websocket is gone.
    Closed { conn: u64 },
    /// TerminateSession, or the mock shutting down.
    Terminate { why: String },
    /// Drop the client's websocket without a close frame (a network failure, for tests and
    /// fault scripts).
    ResetClient,
    /// Bytes from the port-forward target.
    PortData(Vec<u8>),
    /// The port-forward target closed.
    PortClosed,
}

/// What a session asks a client connection task to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsOut {
    Binary(Vec<u8>),
    Close(u16, String),
    /// Drop the connection without a close frame.
    Reset,
}

/// Capacity of a connection's outgoing queue; a client that lets it fill is not reading and is
/// disconnected (the agent retransmits what it missed after the resume).
pub(crate) const CONN_QUEUE: usize = 4096;

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
    pub publication: bool,
}

pub(crate) struct Session {
    id: String,
    registry: Arc<Registry>,
    base: Instant,
    agent: Channel,
    app: App,
    conn: Option<(u64, mpsc::Sender<WsOut>)>,
    paused_sent: bool,
    publication: bool,
    last_activity: Instant,
    idle_timeout: Option<Duration>,
    ends_at: Option<Instant>,
    bye_interval: Option<Duration>,
    next_bye: Option<Instant>,
    terminated: bool,
    agent_tokens: u64,
    self_tx: mpsc::Sender<ToSession>,
}

impl Session {
    pub(crate) fn new(
        setup: SessionSetup,
        registry: Arc<Registry>,
        self_tx: mpsc::Sender<ToSession>,
    ) -> Self {
        let base = Instant::now();
        let mut cfg = Config::new(Role::Agent, setup.agent, setup.seed);
        cfg.session_id = setup.id.clone();
        cfg.token = format!("agent-{}", super::registry::random_token());
        cfg.stream_url = setup.stream_url;
        cfg.epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        cfg.session_kind = setup.kind.clone();
        let app = match (&setup.kind, setup.app) {
            (SessionKind::Port, _) => App::Port {
                target: setup.port_target.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 22))),
                to_target: None,
            },
            (_, AppConfig::Echo { prompt }) => App::Echo { prompt },
            (_, AppConfig::Script { output, interval, exit_code }) => {
                App::Script { output: output.into(), interval, exit_code, next: None }
            }
        };
        Session {
            id: setup.id,
            registry,
            base,
            agent: Channel::new(Time::ZERO, cfg),
            app,
            conn: None,
            paused_sent: false,
            publication: setup.publication,
            last_activity: base,
            idle_timeout: setup.idle_timeout,
            ends_at: setup.max_duration.map(|d| base + d),
            bye_interval: setup.bye_interval,
            next_bye: None,
            terminated: false,
            agent_tokens: 0,
            self_tx,
        }
    }

    fn now(&self) -> Time {
        Time::from_nanos(self.base.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64)
    }

    fn instant(&self, t: Time) -> Instant {
        self.base + Duration::from_nanos(t.as_nanos())
    }

    /// Runs the session until it is terminated and its client has been told.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<ToSession>) {
        self.drain();
        loop {
            if self.terminated && self.conn.is_none() {
                break;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(m) => self.on_message(m),
                },
                () = sleep_until(deadline) => self.on_timer(),
            }
            self.drain();
        }
        self.registry.forget_live(&self.id);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut add = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if !self.terminated {
            add(self.agent.poll_timeout().map(|x| self.instant(x)));
            add(self.idle_timeout.map(|d| self.last_activity + d));
            add(self.ends_at);
            add(self.next_bye);
            if let App::Script { next, .. } = &self.app {
                add(*next);
            }
        }
        t
    }

    fn on_timer(&mut self) {
        let now_i = Instant::now();
        if self.terminated {
            return;
        }
        if self.idle_timeout.is_some_and(|d| now_i >= self.last_activity + d) {
            self.terminate("Session timed out due to inactivity");
            return;
        }
        if self.ends_at.is_some_and(|e| now_i >= e) {
            self.terminate("Session reached its maximum duration");
            return;
        }
        if self.next_bye.is_some_and(|b| now_i >= b) {
            self.next_bye = None;
            self.close_client(1000, "Bye");
        }
        if let App::Script { next: Some(at), .. } = &self.app {
            if now_i >= *at {
                self.script_step();
            }
        }
        let now = self.now();
        self.agent.handle_timeout(now);
    }

    fn on_message(&mut self, m: ToSession) {
        let now = self.now();
        match m {
            ToSession::Opened { conn, tx } => {
                if self.terminated {
                    let _ = tx.try_send(WsOut::Close(4001, "the session is terminated".into()));
                    return;
                }
                if let Some((_, old)) = self.conn.replace((conn, tx)) {
                    let _ = old.try_send(WsOut::Close(1000, "replaced by a newer connection".into()));
                }
                self.registry.set_status(&self.id, SessionStatus::Connected);
                self.next_bye = self.bye_interval.map(|d| Instant::now() + d);
                self.last_activity = Instant::now();
                self.publication_update();
            }
            ToSession::Binary { conn, bytes } => {
                if self.conn.as_ref().map(|c| c.0) != Some(conn) {
                    return;
                }
                if ssm_wire::decode(&bytes).is_ok_and(|w| w.message_type.is_stream()) {
                    self.last_activity = Instant::now();
                }
                self.agent.handle_binary(now, &bytes);
            }
            ToSession::Closed { conn } => {
                if self.conn.as_ref().map(|c| c.0) == Some(conn) {
                    self.conn = None;
                    self.next_bye = None;
                    if !self.terminated {
                        self.registry.set_status(&self.id, SessionStatus::Disconnected);
                        self.publication_update();
                    }
                }
            }
            ToSession::Terminate { why } => self.terminate(&why),
            ToSession::ResetClient => {
                if let Some((_, tx)) = self.conn.take() {
                    let _ = tx.try_send(WsOut::Reset);
                    self.next_bye = None;
                    self.registry.set_status(&self.id, SessionStatus::Disconnected);
                    self.publication_update();
                }
            }
            ToSession::PortData(bytes) => {
                if !bytes.is_empty() {
                    if let Err(e) = self.agent.send(now, PayloadType::OUTPUT, &bytes) {
                        tracing::warn!(session = %self.id, "port data not sent: {e}");
                    }
                }
            }
            ToSession::PortClosed => {
                if let App::Port { to_target, .. } = &mut self.app {
                    *to_target = None;
                }
            }
        }
    }

    /// Drains the agent machine: transmits, then events (house rule 2).
    fn drain(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(t) = self.agent.poll_transmit() {
                moved = true;
                match t {
                    // The agent's OpenDataChannel to the in-process service.
                    Transmit::Text(_) => {}
                    Transmit::Ping(_) => {
                        let now = self.now();
                        self.agent.handle_pong(now);
                    }
                    Transmit::Binary(bytes) => {
                        let consumed = ssm_wire::decode(&bytes)
                            .is_ok_and(|w| w.message_type == MessageType::AgentSessionState);
                        if !consumed {
                            self.send_to_client(bytes);
                        }
                    }
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

    fn on_agent_event(&mut self, ev: Event) {
        let now = self.now();
        match ev {
            Event::Connect { .. } => self.agent.handle_transport_open(now),
            Event::CloseTransport => {
                if !self.terminated {
                    self.terminate("The agent ended the session");
                }
            }
            Event::Api(ApiCall::CreateDataChannel { .. }) => {
                let result = if self.terminated {
                    ApiResult::Error(ApiError::SessionTerminated)
                } else {
                    self.agent_tokens += 1;
                    ApiResult::DataChannelToken {
                        token: format!("agent-{}", super::registry::random_token()),
                    }
                };
                self.agent.handle_api_result(now, result);
            }
            Event::Api(_) => {}
            Event::SessionReady { .. } => self.app_ready(),
            Event::Data { payload_type, bytes, .. } => self.app_input(payload_type, bytes),
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

    fn send_to_client(&mut self, bytes: Vec<u8>) {
        let Some((conn, tx)) = &self.conn else { return };
        let conn = *conn;
        if tx.try_send(WsOut::Binary(bytes)).is_err() {
            tracing::warn!(session = %self.id, conn, "client is not reading; closing its websocket");
            self.close_client(1011, "the client is not reading");
        }
    }

    fn close_client(&mut self, code: u16, why: &str) {
        if let Some((_, tx)) = self.conn.take() {
            let _ = tx.try_send(WsOut::Close(code, why.to_owned()));
        }
        if !self.terminated {
            self.registry.set_status(&self.id, SessionStatus::Disconnected);
            self.publication_update();
        }
    }

    fn service_frame(&self, t: MessageType, payload: Vec<u8>) -> Vec<u8> {
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64);
        Frame::service(t, created, uuid::Uuid::new_v4(), payload).encode_with(&ssm_wire::Overrides::default())
    }

    /// pause_publication to the agent while no client is connected, start_publication when one
    /// is (6.5).
    fn publication_update(&mut self) {
        if !self.publication || self.terminated {
            return;
        }
        let t = match (self.conn.is_some(), self.paused_sent) {
            (false, false) => MessageType::PausePublication,
            (true, true) => MessageType::StartPublication,
            _ => return,
        };
        self.paused_sent = t == MessageType::PausePublication;
        let frame = self.service_frame(t, b"{}".to_vec());
        let now = self.now();
        self.agent.handle_binary(now, &frame);
    }

    /// Ends the session: channel_closed to both sides (6.8), the registry says Terminated, and
    /// the client's websocket is closed.
    pub(crate) fn terminate(&mut self, why: &str) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        self.registry.set_status(&self.id, SessionStatus::Terminated);
        tracing::info!(session = %self.id, why, "session terminated");
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64);
        let body = ChannelClosed::new(uuid::Uuid::new_v4(), created, "i-0123456789abcdef0", &self.id, why);
        let frame = self.service_frame(MessageType::ChannelClosed, payload::to_go_json(&body));
        if let Some((_, tx)) = self.conn.take() {
            let _ = tx.try_send(WsOut::Binary(frame.clone()));
            let _ = tx.try_send(WsOut::Close(1000, why.to_owned()));
        }
        let now = self.now();
        self.agent.handle_binary(now, &frame);
        if let App::Port { to_target, .. } = &mut self.app {
            *to_target = None;
        }
    }

    // ------------------------------------------------------------------ applications

    fn app_ready(&mut self) {
        let now = self.now();
        match &mut self.app {
            App::Echo { prompt } => {
                if !prompt.is_empty() {
                    let p = prompt.clone().into_bytes();
                    let _ = self.agent.send(now, PayloadType::OUTPUT, &p);
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
        let now = self.now();
        match &mut self.app {
            App::Echo { .. } => {
                if let Err(e) = self.agent.send(now, PayloadType::OUTPUT, &bytes) {
                    tracing::warn!(session = %self.id, "echo not sent: {e}");
                }
            }
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
                *next = Some(Instant::now() + *interval);
                if !chunk.is_empty() {
                    let _ = self.agent.send(now, PayloadType::OUTPUT, chunk.as_bytes());
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
