//! `ssm-harness mock`: an SSM service on loopback that real clients accept.
//!
//! One listener serves the awsJson1_1 API (`POST /`, SigV4-verified) and the data-channel
//! websocket (`GET /v1/data-channel/<session-id>`), over plain TCP or TLS with a generated
//! self-signed certificate. Each session is one task running the service relay and the agent
//! machine ([`session`]). Every connection and task is bounded: connection and session caps,
//! header and OpenDataChannel timeouts, body and frame size limits, bounded queues.

pub mod api;
pub mod config;
mod pong_gate;
mod registry;
mod session;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use ssm_channel::{Behaviour, Role};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

pub use api::AwsError;
pub use config::{
    AppConfig, Harness, LinkModel, MockConfig, Strictness, TerminatedResume, TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY,
};
pub use registry::{SessionInfo, SessionStatus};
pub use session::ScriptCmd;

use crate::sigv4::Verifier;
use crate::tls::SelfSigned;
use api::{DescribeSessions, Operation, SessionRef, SessionResponse, StartSession};
use registry::Registry;
use session::{Session, SessionSetup, ToSession};

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("refusing to listen on {0}: ssm-harness only serves loopback addresses")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// A connection's slot under `max_connections`, shared with the requests it serves (as a
/// request extension) so that a websocket upgrade can take it along: the upgraded connection
/// outlives the HTTP connection task and must keep counting.
#[derive(Debug, Clone)]
pub(crate) struct ConnPermit(Arc<std::sync::Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnPermit {
    pub(crate) fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

pub(crate) struct Shared {
    cfg: MockConfig,
    addr: SocketAddr,
    verifier: Option<Verifier>,
    registry: Arc<Registry>,
    conn_ids: AtomicU64,
    agent: Behaviour,
    shutdown: watch::Receiver<bool>,
    /// Scenario-run settings; settable after start so that a run's clock can start once the
    /// mock is listening.
    harness: std::sync::Mutex<Option<config::Harness>>,
}

impl Shared {
    pub(crate) fn harness(&self) -> Option<config::Harness> {
        self.harness.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn scheme(&self, ws: bool) -> &'static str {
        match (self.cfg.tls, ws) {
            (false, false) => "http",
            (false, true) => "ws",
            (true, false) => "https",
            (true, true) => "wss",
        }
    }

    fn stream_url(&self, id: &str, cell: Option<u64>) -> String {
        let mut u =
            format!("{}://{}/v1/data-channel/{id}?role=publish_subscribe", self.scheme(true), self.addr);
        if let Some(n) = cell {
            u.push_str(&format!("&cell-number=cell-{n}"));
        }
        u
    }
}

/// A running mock.
#[derive(Debug)]
pub struct MockHandle {
    addr: SocketAddr,
    endpoint_url: String,
    ca_pem: Option<String>,
    registry: Arc<Registry>,
    stop: watch::Sender<bool>,
    connections: Arc<Semaphore>,
    max_connections: usize,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MockHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS): the `--endpoint-url` for clients.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// The self-signed certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn session(&self, id: &str) -> Option<SessionInfo> {
        self.registry.get(id)
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.registry.all()
    }

    /// Drops the client websocket of a session without a close frame, as a network failure
    /// would. Returns false for an unknown or finished session.
    pub fn reset_client(&self, session_id: &str) -> bool {
        self.registry.sender(session_id).is_some_and(|tx| tx.try_send(ToSession::ResetClient).is_ok())
    }

    /// Sets the scenario-run settings for sessions started from now on.
    pub fn set_harness(&self, h: config::Harness) {
        *self.shared.harness.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(h);
    }

    /// Hands a scenario step to a session's agent or relay.
    pub fn script(&self, session_id: &str, cmd: ScriptCmd) -> bool {
        self.registry.sender(session_id).is_some_and(|tx| tx.try_send(ToSession::Script(cmd)).is_ok())
    }

    /// Terminates a session as TerminateSession would.
    pub fn terminate(&self, session_id: &str) -> bool {
        let sent = self
            .registry
            .sender(session_id)
            .is_some_and(|tx| tx.try_send(ToSession::Terminate { why: "Session terminated".into() }).is_ok());
        self.registry.set_status(session_id, SessionStatus::Terminated);
        sent
    }

    /// Open connections right now.
    pub fn open_connections(&self) -> usize {
        self.max_connections.saturating_sub(self.connections.available_permits())
    }

    /// Stops accepting, closes every websocket with 1001 and waits (up to 5 s) for the
    /// connection tasks to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for tx in self.registry.senders() {
            let _ = tx.try_send(ToSession::Shutdown);
        }
        let wait = async {
            while self.connections.available_permits() < self.max_connections {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        self.task.abort();
    }
}

/// Starts the mock on `cfg.listen` (loopback only).
pub async fn start(cfg: MockConfig) -> Result<MockHandle, StartError> {
    if !cfg.listen.ip().is_loopback() {
        return Err(StartError::NotLoopback(cfg.listen));
    }
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind { addr: cfg.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: cfg.listen, source })?;
    let tls = if cfg.tls {
        Some(SelfSigned::generate().map_err(|e| StartError::Tls(e.to_string()))?)
    } else {
        None
    };
    let acceptor = match &tls {
        Some(t) => Some(t.acceptor().map_err(|e| StartError::Tls(e.to_string()))?),
        None => None,
    };
    let (stop, shutdown) = watch::channel(false);
    let registry = Arc::new(Registry::default());
    let agent = Behaviour::for_impl(&cfg.agent.imp, Role::Agent);
    let shared = Arc::new(Shared {
        verifier: cfg.credentials.clone().map(Verifier::new),
        addr,
        registry: registry.clone(),
        conn_ids: AtomicU64::new(1),
        agent,
        shutdown: shutdown.clone(),
        harness: std::sync::Mutex::new(cfg.harness.clone()),
        cfg,
    });
    let max_connections = shared.cfg.max_connections;
    let connections = Arc::new(Semaphore::new(max_connections));
    let endpoint_url = format!("{}://{addr}", shared.scheme(false));
    let task = tokio::spawn(accept_loop(listener, shared.clone(), acceptor, connections.clone(), shutdown));
    Ok(MockHandle {
        addr,
        endpoint_url,
        ca_pem: tls.map(|t| t.cert_pem),
        registry,
        stop,
        connections,
        max_connections,
        task,
        shared,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let permit = ConnPermit(Arc::new(std::sync::Mutex::new(Some(permit))));
            match acceptor {
                None => serve_http(TokioIo::new(stream), shared, peer, permit).await,
                Some(acc) => {
                    let hs = tokio::time::timeout(shared.cfg.header_timeout, acc.accept(stream)).await;
                    match hs {
                        Ok(Ok(tls)) => serve_http(TokioIo::new(tls), shared, peer, permit).await,
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection; `permit` is released when it ends, unless a websocket upgrade took it.
async fn serve_http<I>(io: TokioIo<I>, shared: Arc<Shared>, peer: SocketAddr, permit: ConnPermit)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let svc = service_fn(move |mut req: Request<Incoming>| {
        let shared = svc_shared.clone();
        req.extensions_mut().insert(permit.clone());
        async move { Ok::<_, Infallible>(route(shared, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.cfg.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, svc)
        .with_upgrades();
    let mut shutdown = shared.shutdown.clone();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

pub(crate) type Body = Full<Bytes>;

fn request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

pub(crate) fn aws_error_response(e: &AwsError) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(e.body())));
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

fn json_response(v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default())));
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if let Some(id) = path.strip_prefix("/v1/data-channel/") {
        let id = id.to_owned();
        return ws::upgrade(shared, req, id).await;
    }
    if path == "/" && req.method() == Method::POST {
        return match api_call(&shared, req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!("API error: {e}");
                aws_error_response(&e)
            }
        };
    }
    aws_error_response(&AwsError::new(
        404,
        "UnknownOperationException",
        format!("nothing is served at {path}"),
    ))
}

async fn api_call(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, AwsError> {
    let (parts, body) = req.into_parts();
    // The body has a deadline too: hyper's header timeout ends with the headers, and a client
    // that stalls mid-body would otherwise hold its connection slot forever (slowloris).
    let collect = Limited::new(body, shared.cfg.max_body_size).collect();
    let body = match tokio::time::timeout(shared.cfg.header_timeout, collect).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return Err(AwsError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body exceeds {} bytes", shared.cfg.max_body_size),
            ))
        }
        Err(_) => {
            return Err(AwsError::new(
                408,
                "RequestTimeoutException",
                format!("the request body did not arrive within {:?}", shared.cfg.header_timeout),
            ))
        }
    };
    if let Some(v) = &shared.verifier {
        v.verify(&parts.method, &parts.uri, &parts.headers, &body, "ssm", SystemTime::now())
            .map_err(|e| AwsError::new(e.http_status(), e.aws_code(), e.message()))?;
    }
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-amz-json-1.1") {
        let msg = format!("API-001: Content-Type is {content_type:?}, not application/x-amz-json-1.1");
        if shared.cfg.strictness == Strictness::Strict {
            return Err(AwsError::new(400, "SerializationException", msg));
        }
        tracing::info!("{msg} (lenient: accepted)");
    }
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let op = Operation::from_target(target)?;
    let call = match op {
        Operation::StartSession => Call::Start(StartSession::parse(&body)?),
        Operation::ResumeSession => Call::Resume(SessionRef::parse(&body)?),
        Operation::TerminateSession => Call::Terminate(SessionRef::parse(&body)?),
        Operation::DescribeSessions => Call::Describe(DescribeSessions::parse(&body)?),
    };
    // A resume is in flight from the moment its request arrives until it is answered.
    let _resuming = match &call {
        Call::Resume(r) => Some(shared.registry.resuming(&r.session_id)),
        _ => None,
    };
    if let Some(h) = shared.harness().filter(|_| op != Operation::StartSession) {
        // A scenario's link latency applies to the API's round trip too, as in the simulator
        // (whose world begins once StartSession has been answered).
        tokio::time::sleep(h.clock.to_real(shared.cfg.link.latency * 2)).await;
    }
    tracing::info!(op = op.name(), "API call");
    match call {
        Call::Start(req) => start_session(shared, req, &parts.headers),
        Call::Resume(req) => {
            let extra = api_fault(shared, &req.session_id, ssm_fault::ApiOp::ResumeSession).await?;
            resume_session(shared, &req, extra)
        }
        Call::Terminate(req) => {
            api_fault(shared, &req.session_id, ssm_fault::ApiOp::TerminateSession).await?;
            terminate_session(shared, &req)
        }
        Call::Describe(req) => describe_sessions(shared, &req),
    }
}

/// An API request, parsed.
enum Call {
    Start(StartSession),
    Resume(SessionRef),
    Terminate(SessionRef),
    Describe(DescribeSessions),
}

fn caller(headers: &http::HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .map_or_else(|| "anonymous".to_owned(), str::to_owned)
}

fn start_session(
    shared: &Arc<Shared>,
    req: StartSession,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, AwsError> {
    let kind = session::session_kind(req.document_name.as_deref()).ok_or_else(|| {
        AwsError::new(
            400,
            "InvalidDocument",
            format!("Document {} does not exist in the mock", req.document_name.as_deref().unwrap_or("")),
        )
    })?;
    if shared.registry.live_count() >= shared.cfg.max_sessions {
        return Err(AwsError::new(400, "ThrottlingException", "Rate exceeded: too many open sessions"));
    }
    let harness = shared.harness();
    let kind = harness.as_ref().and_then(|h| h.session_kind.clone()).unwrap_or(kind);
    let port_target = match kind {
        ssm_channel::SessionKind::Port if harness.is_none() => Some(port_target(shared, &req)?),
        _ => None,
    };
    let id = registry::random_session_id("harness");
    let token = registry::random_token();
    let stream_url = shared.stream_url(&id, None);
    let access_key = caller(headers);
    let info = SessionInfo {
        id: id.clone(),
        target: req.target.clone(),
        document_name: req.document_name.clone(),
        reason: req.reason.clone(),
        owner: format!("arn:aws:iam::000000000000:user/{access_key}"),
        status: SessionStatus::Connecting,
        started: SystemTime::now(),
        ended: None,
        stream_url: stream_url.clone(),
        resumes: 0,
        opens: 0,
        violations: Vec::new(),
        refusals: Vec::new(),
    };
    let (tx, rx) = mpsc::channel(1024);
    let seed = shared.cfg.seed ^ shared.conn_ids.fetch_add(1, Ordering::Relaxed);
    let faults = shared.cfg.faults.clone().map(|plan| {
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Arc::new(std::sync::Mutex::new(
            ssm_fault::FaultEngine::new(plan, seed)
                .with_epoch_ms(epoch)
                .with_session(id.clone(), "i-0123456789abcdef0"),
        ))
    });
    // The session's clock: its fault engine's times count from it, in the relay, the API
    // handlers and the websocket's pong gate alike.
    let clock = harness.as_ref().map_or_else(crate::clock::Clock::real, |h| h.clock);
    let setup = SessionSetup {
        id: id.clone(),
        kind,
        agent: harness.as_ref().and_then(|h| h.agent.clone()).unwrap_or_else(|| shared.agent.clone()),
        app: shared.cfg.app.clone(),
        port_target,
        stream_url: stream_url.clone(),
        seed,
        idle_timeout: shared.cfg.idle_timeout,
        max_duration: shared.cfg.max_duration,
        bye_interval: shared.cfg.bye_interval,
        stall_timeout: shared.cfg.stall_timeout,
        channel_closed_grace: shared.cfg.channel_closed_grace,
        publication: shared.cfg.publication,
        clock,
        link: shared.cfg.link,
        faults: faults.clone(),
        recorder: harness.as_ref().map(|h| h.recorder.clone()),
        kms: harness.as_ref().and_then(|h| h.kms.clone()),
        extra_client_actions: harness.map(|h| h.extra_client_actions).unwrap_or_default(),
    };
    shared.registry.insert(info, token.clone(), tx.clone(), faults.map(|f| (f, clock)));
    let s = Session::new(setup, shared.registry.clone(), tx);
    tokio::spawn(s.run(rx));
    Ok(json_response(&json!({ "SessionId": id, "TokenValue": token, "StreamUrl": stream_url })))
}

fn port_target(shared: &Arc<Shared>, req: &StartSession) -> Result<SocketAddr, AwsError> {
    if let Some(t) = shared.cfg.port_target {
        return Ok(t);
    }
    let host = req.parameter("host").unwrap_or("127.0.0.1");
    let ip: std::net::IpAddr = if host == "localhost" {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| {
            AwsError::new(400, "InvalidParameters", format!("host {host:?} is not an IP address"))
        })?
    };
    if !ip.is_loopback() {
        return Err(AwsError::new(
            400,
            "InvalidParameters",
            format!("host {host} is not a loopback address; the mock forwards to loopback only"),
        ));
    }
    let port: u16 = req
        .parameter("portNumber")
        .ok_or_else(|| AwsError::new(400, "InvalidParameters", "portNumber is required for port forwarding"))?
        .parse()
        .map_err(|_| AwsError::new(400, "InvalidParameters", "portNumber is not a port number"))?;
    Ok(SocketAddr::new(ip, port))
}

/// What the session's fault plan says about this call: an error is returned at once, a delay
/// is waited out, and the other effects are handed back.
async fn api_fault(
    shared: &Arc<Shared>,
    id: &str,
    op: ssm_fault::ApiOp,
) -> Result<ssm_fault::ApiEffect, AwsError> {
    let Some((f, clock)) = shared.registry.faults(id) else { return Ok(ssm_fault::ApiEffect::Normal) };
    let ctx =
        ssm_fault::Context { resume_in_flight: op == ssm_fault::ApiOp::ResumeSession, ..Default::default() };
    let effect =
        f.lock().unwrap_or_else(std::sync::PoisonError::into_inner).on_api(clock.now().as_millis(), op, &ctx);
    match effect {
        ssm_fault::ApiEffect::Error(kind) => Err(match kind {
            ssm_fault::ApiErrorKind::Internal => AwsError::internal("injected InternalServerError"),
            ssm_fault::ApiErrorKind::Throttled => AwsError::new(400, "ThrottlingException", "Rate exceeded"),
            ssm_fault::ApiErrorKind::AccessDenied => AwsError::new(
                400,
                "AccessDeniedException",
                "User is not authorized to perform: ssm:ResumeSession (injected)",
            ),
            ssm_fault::ApiErrorKind::DoesNotExist => AwsError::does_not_exist(id),
        }),
        ssm_fault::ApiEffect::Delay(ms) => {
            tokio::time::sleep(clock.to_real(Duration::from_millis(ms))).await;
            Ok(ssm_fault::ApiEffect::Normal)
        }
        other => Ok(other),
    }
}

fn resume_session(
    shared: &Arc<Shared>,
    req: &SessionRef,
    extra: ssm_fault::ApiEffect,
) -> Result<Response<Body>, AwsError> {
    let id = &req.session_id;
    let Some(info) = shared.registry.get(id) else {
        return Err(AwsError::does_not_exist(id));
    };
    if info.status == SessionStatus::Terminated {
        return match shared.cfg.terminated_resume {
            TerminatedResume::Error => Err(AwsError::does_not_exist(id)),
            TerminatedResume::NullToken => Ok(json_response(&json!({ "SessionId": id }))),
        };
    }
    if extra == ssm_fault::ApiEffect::NullToken {
        return Ok(json_response(&json!({ "SessionId": id })));
    }
    let rotate = shared.cfg.rotate_stream_url || extra == ssm_fault::ApiEffect::RotateStreamUrl;
    let new_url = rotate.then(|| shared.stream_url(id, Some(info.resumes + 1)));
    let (token, url) = shared.registry.rotate(id, new_url).ok_or_else(|| AwsError::does_not_exist(id))?;
    let r = SessionResponse { session_id: id.clone(), token_value: Some(token), stream_url: Some(url) };
    Ok(json_response(&serde_json::to_value(&r).unwrap_or_default()))
}

fn terminate_session(shared: &Arc<Shared>, req: &SessionRef) -> Result<Response<Body>, AwsError> {
    let id = &req.session_id;
    let Some(info) = shared.registry.get(id) else {
        return Err(AwsError::does_not_exist(id));
    };
    if info.status != SessionStatus::Terminated {
        if let Some(tx) = shared.registry.sender(id) {
            let _ =
                tx.try_send(ToSession::Terminate { why: "Session terminated by TerminateSession".into() });
        }
        shared.registry.set_status(id, SessionStatus::Terminated);
    }
    Ok(json_response(&json!({ "SessionId": id })))
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn describe_sessions(shared: &Arc<Shared>, req: &DescribeSessions) -> Result<Response<Body>, AwsError> {
    let all = shared.registry.all();
    let mut matching: Vec<&SessionInfo> = all
        .iter()
        .filter(|s| (s.status != SessionStatus::Terminated) == req.active)
        .filter(|s| {
            req.filters.iter().all(|(k, v)| match k.as_str() {
                "SessionId" => &s.id == v,
                "Target" => &s.target == v,
                "Status" => s.status.name() == v,
                "Owner" => &s.owner == v || v == "Self",
                _ => true,
            })
        })
        .collect();
    let start: usize = match &req.next_token {
        None => 0,
        Some(t) => t.parse().map_err(|_| AwsError::validation("NextToken is not valid"))?,
    };
    let total = matching.len();
    let page: Vec<serde_json::Value> = matching
        .drain(..)
        .skip(start)
        .take(req.max_results)
        .map(|s| {
            let mut o = json!({
                "SessionId": s.id,
                "Target": s.target,
                "Status": s.status.name(),
                "StartDate": epoch_seconds(s.started),
                "DocumentName": s.document_name.clone().unwrap_or_else(|| "SSM-SessionManagerRunShell".into()),
                "Owner": s.owner,
            });
            if let Some(e) = s.ended {
                o["EndDate"] = json!(epoch_seconds(e));
            }
            if let Some(r) = &s.reason {
                o["Reason"] = json!(r);
            }
            o
        })
        .collect();
    let mut out = json!({ "Sessions": page });
    if start + req.max_results < total {
        out["NextToken"] = json!((start + req.max_results).to_string());
    }
    Ok(json_response(&out))
}

/// Where `ssm-harness mock` writes the self-signed certificate by default.
pub fn default_cert_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("ssm-harness-mock-{port}.pem"))
}
