//! The reference client over real sockets: the client role of the shared machine driven by tokio
//! and tokio-tungstenite, with ResumeSession / TerminateSession through a [`ControlPlane`].
//!
//! The driver follows house rule 2: after every input it drains transmits, then events, then
//! waits for the earliest of the websocket, the control plane, the application and the
//! machine's timeout.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use ssm_channel::{
    ApiCall, ApiResult, Behaviour, Channel, Config, EndReason, Event, PayloadType, PeerViolation, Role,
    SendError, Time, Transmit,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::clock::Clock;
use crate::control::ControlPlane;
use crate::record::Recorder;
use crate::sigv4::UpgradeSigning;
use ssm_scenario::trace::{summarize, MsgKind};
use ssm_scenario::What;
use std::sync::atomic::Ordering;

/// The StartSession answer the client is started with (protocol reference 6.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartSessionResponse {
    pub session_id: String,
    pub token_value: String,
    pub stream_url: String,
}

/// How the client runs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub session: StartSessionResponse,
    pub behaviour: Behaviour,
    /// Seeds message ids and reconnect jitter.
    pub seed: u64,
    /// PEM certificates to trust for `wss://` (a TLS mock); system roots otherwise.
    pub ca_pem: Option<Vec<u8>>,
    /// Terminal size reported when a shell session starts.
    pub size: (u32, u32),
    /// After the input ends and everything sent is acknowledged, wait this long for more
    /// output, then terminate the session.
    pub eof_grace: Duration,
    /// The run's clock (real time unless a scenario run speeds it up).
    pub clock: Option<Clock>,
    /// Records the run as a trace (scenario runs over real sockets).
    pub recorder: Option<Recorder>,
    /// Wait this long (machine time) before the first websocket connect.
    pub first_connect_delay: Duration,
    /// The key service for KMS encryption (HS-006), when the client has one.
    pub kms: Option<ssm_channel::kms::Kms>,
    /// SigV4-sign every websocket upgrade (the first and each one after ResumeSession) for
    /// `ssmmessages`, as newer session-manager-plugin releases do; unsigned when `None`.
    pub sign_upgrade: Option<UpgradeSigning>,
    /// A scenario run over the mock: after handling each frame the client sends a
    /// [`crate::record::BARRIER`] ping (the mock waits for it before the next frame), and it
    /// takes queued input as one burst, as the simulator hands a step over.
    pub scenario_run: bool,
}

impl ClientOptions {
    /// Options with the defaults of an interactive client.
    pub fn new(session: StartSessionResponse, behaviour: Behaviour, seed: u64) -> Self {
        ClientOptions {
            session,
            behaviour,
            seed,
            ca_pem: None,
            size: (80, 24),
            eof_grace: Duration::from_millis(500),
            clock: None,
            recorder: None,
            first_connect_delay: Duration::ZERO,
            kms: None,
            sign_upgrade: None,
            scenario_run: false,
        }
    }
}

/// Application input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Data(Vec<u8>),
    /// The input ended (stdin EOF).
    Eof,
    /// Ctrl-C: sent to a shell as 0x03, ends a port session (6.8).
    Interrupt,
    /// A scenario step: the application sends this payload type.
    Send {
        payload_type: u32,
        bytes: Vec<u8>,
    },
    /// A scenario step: the consumer is (not) ready.
    SetReady(bool),
    /// A scenario step: terminate the session (the plugin's Ctrl-C path of a port session, or
    /// the TerminateSession API).
    Terminate,
}

/// Application output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// How a client run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutcome {
    pub end: EndReason,
    /// The process exit status the plugin convention gives this end.
    pub exit_code: i32,
    /// The agent's ExitCode payload, if one arrived.
    pub remote_exit_code: Option<i32>,
    /// Websockets opened (1 + reconnects).
    pub opens: u32,
    /// Requirements the peer was seen to break.
    pub violations: Vec<PeerViolation>,
    /// The tokens used by each open, in order (the first is the StartSession token).
    pub tokens: Vec<String>,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum DriverMsg {
    Connected { gen: u64, ws: Box<Ws> },
    ConnectFailed { gen: u64, why: ConnectError },
    Api { call: ApiCall, called_at: Time, result: ApiResult },
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The exit status for an end (the plugin exits 0 when the service closes the channel or says
/// the session timed out, 6.6 and 6.8).
fn exit_status(end: &EndReason, remote: Option<i32>) -> i32 {
    match end {
        EndReason::ChannelClosed { .. } => remote.unwrap_or(0),
        EndReason::TimedOut | EndReason::Terminated => 0,
        EndReason::Finished { exit_code } => exit_code.unwrap_or(0),
        _ => 1,
    }
}

/// Why a websocket connect failed.
#[derive(Debug)]
enum ConnectError {
    /// The service answered the upgrade with a client error other than 408 and 429: the
    /// request itself is wrong (a missing or bad signature, a malformed request), so asking
    /// again the same way would be refused again.
    Refused { status: u16, detail: String },
    /// Anything else (no connection, TLS, a server error, a timeout): worth another try.
    Failed(String),
}

/// The most characters of a refusal's body kept in its detail.
const MAX_REFUSAL_BODY: usize = 512;

impl From<tokio_tungstenite::tungstenite::Error> for ConnectError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        match &e {
            tokio_tungstenite::tungstenite::Error::Http(r)
                if r.status().is_client_error() && ![408, 429].contains(&r.status().as_u16()) =>
            {
                let body = r.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let body: String = body.chars().take(MAX_REFUSAL_BODY).collect();
                let detail = format!("{e}: {body}");
                ConnectError::Refused { status: r.status().as_u16(), detail }
            }
            _ => ConnectError::Failed(e.to_string()),
        }
    }
}

/// Opens the websocket, signing the upgrade (at this instant) when `signing` is set.
/// The most queued inputs a scenario run's client takes before it writes (see `run`).
const MAX_BURST: usize = 1024;

async fn connect(
    url: String,
    ca_pem: Option<Vec<u8>>,
    signing: Option<UpgradeSigning>,
) -> Result<Ws, ConnectError> {
    let req = match &signing {
        Some(s) => crate::sigv4::signed_upgrade(&url, s, SystemTime::now())
            .map_err(|e| ConnectError::Failed(e.to_string()))?,
        None => url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Failed(format!("bad StreamUrl {url:?}: {e}")))?,
    };
    let connector = if url.starts_with("wss://") {
        let cfg = match &ca_pem {
            Some(pem) => crate::tls::client_config_from_pem(pem),
            None => crate::tls::client_config_webpki(),
        }
        .map_err(|e| ConnectError::Failed(e.to_string()))?;
        Some(tokio_tungstenite::Connector::Rustls(cfg))
    } else {
        None
    };
    let cfg = WebSocketConfig::default().max_message_size(Some(16 << 20));
    // The 2024 plugin's dialer gives the handshake 45 s (6.2).
    let fut = tokio_tungstenite::connect_async_tls_with_config(req, Some(cfg), true, connector);
    match tokio::time::timeout(Duration::from_secs(45), fut).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ConnectError::Failed("websocket handshake timed out".into())),
    }
}

async fn next_ws(ws: &mut Option<Box<Ws>>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Runs one session to its end.
pub async fn run(
    opts: ClientOptions,
    control: Arc<dyn ControlPlane>,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::UnboundedSender<Output>,
) -> ClientOutcome {
    let clock = opts.clock.unwrap_or_else(Clock::real);
    let now = |_: Instant| clock.now();
    let base = Instant::now();
    let rec = opts.recorder.clone();
    // Records made while the machine processes one input carry that input's instant, as in the
    // simulator, so that a reply or an event is attributed to the frame that caused it.
    let stamp = std::sync::atomic::AtomicU64::new(u64::MAX);
    let record = |w: What| {
        if let Some(r) = &rec {
            match stamp.load(Ordering::Relaxed) {
                u64::MAX => r.record(w),
                t => r.record_at(Time::from_nanos(t), w),
            }
        }
    };
    let mut cfg = Config::new(Role::Client, opts.behaviour.clone(), opts.seed);
    cfg.session_id = opts.session.session_id.clone();
    cfg.token = opts.session.token_value.clone();
    cfg.stream_url = opts.session.stream_url.clone();
    cfg.epoch_ms = now_ms();
    cfg.kms = opts.kms.clone();
    let session_id = cfg.session_id.clone();
    let mut m = Channel::new(clock.now(), cfg);
    let mut first_connect = true;
    let mut connect_url = String::new();
    let mut in_flight_calls = 0u32;
    let mut connecting = false;
    let (mut offered, mut delivered) = (0u64, 0u64);
    let (tx, mut rx) = mpsc::channel::<DriverMsg>(16);
    let mut ws: Option<Box<Ws>> = None;
    let mut gen = 0u64;
    let mut ready = false;
    let mut input_open = true;
    let mut pending: Option<Vec<u8>> = None;
    let mut eof_at: Option<Instant> = None;
    let mut last_output = Instant::now();
    let mut terminating = false;
    let mut remote_exit = None;
    let mut barrier_due = false;
    let mut burst_len = 0usize;
    let mut out = ClientOutcome {
        end: EndReason::Terminated,
        exit_code: 0,
        remote_exit_code: None,
        opens: 0,
        violations: Vec::new(),
        tokens: Vec::new(),
    };
    loop {
        // In a scenario run, input that is already queued is taken as one burst before anything
        // is written, as the simulator hands a step's messages to the machine at one instant
        // (bounded, so that a step can never hold back the client's writes for long).
        let burst = opts.scenario_run
            && burst_len < MAX_BURST
            && input_open
            && pending.is_none()
            && !input.is_empty();
        burst_len = if burst { burst_len + 1 } else { 0 };
        // Transmits first, then events (house rule 2), until neither produces more: an event
        // handler (the shell's Size after SessionReady) may queue a transmit.
        let mut moved = !burst;
        while moved {
            moved = false;
            while let Some(t) = m.poll_transmit() {
                moved = true;
                if let Some(r) = &rec {
                    // For fault rules that look at the client's buffer, as of this write.
                    r.probe.side(true).unacked.store(m.unacked() as u64, Ordering::Relaxed);
                }
                if rec.is_some() {
                    let (kind, bytes) = match &t {
                        Transmit::Text(b) => (MsgKind::Text, b.clone()),
                        Transmit::Binary(b) => (MsgKind::Binary, b.clone()),
                        Transmit::Ping(b) => (MsgKind::Ping, b.clone()),
                    };
                    let summary = summarize(kind, &bytes);
                    record(What::Wrote { by: Role::Client, msg: kind, bytes, summary });
                }
                let msg = match t {
                    Transmit::Text(b) => Message::Text(String::from_utf8_lossy(&b).into_owned().into()),
                    Transmit::Binary(b) => Message::Binary(b.into()),
                    Transmit::Ping(b) => Message::Ping(b.into()),
                };
                if let Some(w) = ws.as_mut() {
                    if let Err(e) = w.send(msg).await {
                        tracing::info!("websocket write failed: {e}");
                        ws = None;
                        m.handle_transport_lost(now(base));
                    }
                }
            }
            while let Some(ev) = m.poll_event() {
                moved = true;
                if rec.is_some() {
                    record(What::Event {
                        role: Role::Client,
                        event: serde_json::to_value(&ev).unwrap_or_default(),
                    });
                }
                match ev {
                    Event::Connect { url, token } => {
                        gen += 1;
                        connect_url = url.clone();
                        out.tokens.push(token);
                        connecting = true;
                        let delay = if first_connect {
                            clock.to_real(opts.first_connect_delay)
                        } else {
                            Duration::ZERO
                        };
                        first_connect = false;
                        let (tx, g, pem) = (tx.clone(), gen, opts.ca_pem.clone());
                        let signing = opts.sign_upgrade.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let msg = match connect(url, pem, signing).await {
                                Ok(w) => DriverMsg::Connected { gen: g, ws: Box::new(w) },
                                Err(why) => DriverMsg::ConnectFailed { gen: g, why },
                            };
                            let _ = tx.send(msg).await;
                        });
                    }
                    Event::CloseTransport => {
                        if let Some(mut w) = ws.take() {
                            let _ = w.as_mut().close(None).await;
                        }
                    }
                    Event::Api(call) => {
                        let (tx, control) = (tx.clone(), control.clone());
                        in_flight_calls += 1;
                        let called_at = clock.now();
                        tokio::spawn(async move {
                            let res = match call.clone() {
                                ApiCall::ResumeSession { session_id } => {
                                    match control.resume_session(&session_id).await {
                                        Ok(r) => {
                                            ApiResult::Resumed { token: r.token, stream_url: r.stream_url }
                                        }
                                        Err(e) => ApiResult::Error(e),
                                    }
                                }
                                ApiCall::TerminateSession { session_id } => {
                                    match control.terminate_session(&session_id).await {
                                        Ok(()) => ApiResult::Terminated,
                                        Err(e) => ApiResult::Error(e),
                                    }
                                }
                                ApiCall::CreateDataChannel { .. } => {
                                    ApiResult::Error(ssm_channel::ApiError::Internal)
                                }
                            };
                            let _ = tx.send(DriverMsg::Api { call, called_at, result: res }).await;
                        });
                    }
                    Event::SessionReady { session_type } => {
                        ready = true;
                        if session_type == ssm_wire::payload::session_type::STANDARD_STREAM
                            || session_type == ssm_wire::payload::session_type::INTERACTIVE_COMMANDS
                        {
                            let size = ssm_wire::payload::Size { cols: opts.size.0, rows: opts.size.1 };
                            let body = ssm_wire::payload::to_go_json(&size);
                            let res = m.send(now(base), PayloadType::SIZE, &body);
                            if res.is_ok() {
                                offered += 1;
                            }
                            record(What::Offered {
                                by: Role::Client,
                                payload_type: PayloadType::SIZE.0,
                                bytes: body,
                                accepted: res.is_ok(),
                            });
                        }
                    }
                    Event::Data { payload_type, bytes, .. } => {
                        last_output = Instant::now();
                        delivered += 1;
                        let o = if payload_type == PayloadType::STDERR.0 {
                            Output::Stderr(bytes)
                        } else {
                            Output::Stdout(bytes)
                        };
                        let _ = output.send(o);
                    }
                    Event::ExitCode { code } => remote_exit = Some(code),
                    Event::Violation(v) => {
                        tracing::warn!(req = %v.req, "the agent broke a requirement: {}", v.detail);
                        if out.violations.len() < 1000 {
                            out.violations.push(v);
                        }
                    }
                    Event::Ended(reason) => {
                        if let EndReason::TimedOut = reason {
                            let _ = output.send(Output::Stderr(
                                format!("\nSession: {session_id} timed out.\n").into_bytes(),
                            ));
                        }
                        // A call made just before the end (TerminateSession after the resend
                        // limit) is still answered and recorded, as the plugin's would be.
                        let until = Instant::now() + Duration::from_secs(5);
                        while in_flight_calls > 0 {
                            match tokio::time::timeout_at(until, rx.recv()).await {
                                Ok(Some(DriverMsg::Api { call, called_at, result })) => {
                                    in_flight_calls -= 1;
                                    if rec.is_some() {
                                        let call_s = serde_json::to_string(&call).unwrap_or_default();
                                        record(What::Api {
                                            by: Role::Client,
                                            call: call_s,
                                            answer: format!("{result:?}"),
                                            called_at: called_at.as_nanos(),
                                        });
                                    }
                                }
                                Ok(Some(_)) => {}
                                Ok(None) | Err(_) => break,
                            }
                        }
                        if let Some(mut w) = ws.take() {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(2), w.as_mut().close(None)).await;
                        }
                        if let Some(r) = &rec {
                            let p = r.probe.side(true);
                            p.ended.store(true, Ordering::Relaxed);
                            p.busy.store(false, Ordering::Relaxed);
                            p.delivered.store(delivered, Ordering::Relaxed);
                            r.probe.changed.notify_waiters();
                        }
                        out.exit_code = exit_status(&reason, remote_exit);
                        out.remote_exit_code = remote_exit;
                        out.end = reason;
                        return out;
                    }
                    Event::Flag { .. } | Event::Note(_) => {}
                }
            }
        }
        if !burst && std::mem::take(&mut barrier_due) {
            if let Some(w) = ws.as_mut() {
                if let Err(e) = w.send(Message::Ping(crate::record::BARRIER.into())).await {
                    tracing::info!("websocket write failed: {e}");
                    ws = None;
                    m.handle_transport_lost(now(base));
                    continue;
                }
            }
        }
        stamp.store(u64::MAX, Ordering::Relaxed);
        // Input that could not be sent yet (buffer full, not ready) is retried first.
        if ready {
            if let Some(b) = pending.take() {
                match m.send(now(base), PayloadType::OUTPUT, &b) {
                    Ok(_) => continue,
                    Err(SendError::Full(_)) | Err(SendError::NotReady) => pending = Some(b),
                    Err(e) => tracing::info!("input not sent: {e}"),
                }
            }
        }
        if let Some(r) = &rec {
            let p = r.probe.side(true);
            p.ready.store(m.is_ready(), Ordering::Relaxed);
            p.ended.store(m.is_ended(), Ordering::Relaxed);
            p.busy.store(!m.is_quiescent() || connecting || in_flight_calls > 0, Ordering::Relaxed);
            p.offered.store(offered, Ordering::Relaxed);
            p.delivered.store(delivered, Ordering::Relaxed);
            r.probe.changed.notify_waiters();
        }
        if let Some(at) = eof_at {
            if !terminating
                && m.unacked() == 0
                && pending.is_none()
                && at.max(last_output) + opts.eof_grace <= Instant::now()
            {
                terminating = true;
                m.terminate(now(base));
                continue;
            }
        }
        let eof_check = eof_at.filter(|_| !terminating).map(|at| at.max(last_output) + opts.eof_grace);
        let deadline = match (m.poll_timeout().map(|t| clock.instant(t)), eof_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let want_input = input_open && pending.is_none();
        tokio::select! {
            msg = next_ws(&mut ws) => {
                let t = now(base);
                match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if let Some(r) = &rec {
                            let fault = r.read_by_client(&b);
                            let summary = summarize(MsgKind::Binary, &b);
                            r.record_at(t, What::Delivered { to: Role::Client, bytes: b.to_vec(), summary, fault });
                        }
                        stamp.store(t.as_nanos(), Ordering::Relaxed);
                        barrier_due = opts.scenario_run;
                        m.handle_binary(t, &b)
                    }
                    Some(Ok(Message::Text(s))) => m.handle_text(t, s.as_bytes()),
                    Some(Ok(Message::Pong(p))) if p == crate::record::BARRIER => {}
                    Some(Ok(Message::Pong(_))) => {
                        record(What::Pong { to: Role::Client });
                        m.handle_pong(t)
                    }
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => {}
                    Some(Ok(Message::Close(c))) => {
                        tracing::info!("websocket closed by the service: {c:?}");
                        ws = None;
                        m.handle_transport_lost(t);
                    }
                    Some(Err(e)) => {
                        tracing::info!("websocket read error: {e}");
                        ws = None;
                        m.handle_transport_lost(t);
                    }
                    None => {
                        ws = None;
                        m.handle_transport_lost(t);
                    }
                }
            }
            d = rx.recv() => {
                let t = now(base);
                match d {
                    Some(DriverMsg::Connected { gen: g, ws: w }) if g == gen => {
                        connecting = false;
                        record(What::Opened { side: Role::Client, url: connect_url.clone() });
                        ws = Some(w);
                        out.opens += 1;
                        m.handle_transport_open(t);
                    }
                    Some(DriverMsg::ConnectFailed { gen: g, why }) if g == gen => {
                        connecting = false;
                        match why {
                            ConnectError::Refused { status, detail } => {
                                tracing::warn!("websocket upgrade refused: {detail}");
                                m.handle_connect_refused(t, status, detail);
                            }
                            ConnectError::Failed(why) => {
                                tracing::info!("websocket connect failed: {why}");
                                m.handle_transport_lost(t);
                            }
                        }
                    }
                    Some(DriverMsg::Api { call, called_at, result }) => {
                        in_flight_calls = in_flight_calls.saturating_sub(1);
                        if rec.is_some() {
                            let call_s = serde_json::to_string(&call).unwrap_or_default();
                            record(What::Api { by: Role::Client, call: call_s, answer: format!("{result:?}"), called_at: called_at.as_nanos() });
                        }
                        m.handle_api_result(t, result)
                    }
                    Some(_) | None => {}
                }
            }
            i = input.recv(), if want_input => {
                let t = now(base);
                match i {
                    Some(Input::Data(b)) if !b.is_empty() => match m.send(t, PayloadType::OUTPUT, &b) {
                        Ok(_) => {}
                        Err(SendError::Full(_)) | Err(SendError::NotReady) => pending = Some(b),
                        Err(e) => tracing::info!("input not sent: {e}"),
                    },
                    Some(Input::Send { payload_type, bytes }) => {
                        let res = m.send(t, PayloadType(payload_type), &bytes);
                        record(What::Offered { by: Role::Client, payload_type, bytes, accepted: res.is_ok() });
                        if res.is_ok() {
                            offered += 1;
                        }
                    }
                    Some(Input::SetReady(r)) => m.set_consumer_ready(r),
                    Some(Input::Terminate) => m.terminate(t),
                    Some(Input::Data(_)) => {}
                    Some(Input::Interrupt) => {
                        if m.is_ready() {
                            let _ = m.send(t, PayloadType::OUTPUT, &[0x03]);
                        }
                    }
                    Some(Input::Eof) | None => {
                        input_open = false;
                        eof_at = Some(Instant::now());
                    }
                }
            }
            () = sleep_until(deadline) => {
                m.handle_timeout(now(base));
            }
        }
    }
}
