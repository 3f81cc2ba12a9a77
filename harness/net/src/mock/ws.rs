//! The data-channel websocket of the mock: the upgrade (unsigned, or SigV4-signed for
//! `ssmmessages`), the OpenDataChannel check, and the pump between one client connection and its
//! session.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ssm_spec::Req;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::api::AwsError;
use super::config::Strictness;
use super::pong_gate::{Gate, PongGate};
use super::registry::TokenCheck;
use super::session::{ToSession, WsOut, CONN_QUEUE};
use super::{aws_error_response, Body, Shared};
use crate::sigv4;
use ssm_fault::Side;

/// Close code for a refused OpenDataChannel (the same code the simulator's service uses).
pub const CLOSE_REFUSED: u16 = 4001;
/// Close code for a frame refused in strict mode.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code for a message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// How often the mock pings a client, and how many pings may go unanswered.
const PING_EVERY: Duration = Duration::from_secs(30);
const PINGS_UNANSWERED: u32 = 3;

fn refuse(status: u16, code: &'static str, message: String) -> Response<Body> {
    tracing::info!("websocket upgrade refused: {code}: {message}");
    aws_error_response(&AwsError::new(status, code, message))
}

pub(crate) async fn upgrade(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    session_id: String,
) -> Response<Body> {
    let headers = req.headers();
    let is_upgrade = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get("sec-websocket-key").map(|k| k.as_bytes().to_vec()) else {
        return refuse(400, "BadRequest", "not a websocket upgrade (no Sec-WebSocket-Key)".into());
    };
    if !is_upgrade || headers.get("sec-websocket-version").is_none_or(|v| v.as_bytes() != b"13") {
        return refuse(400, "BadRequest", "not a websocket version 13 upgrade".into());
    }
    let query = req.uri().query().unwrap_or("");
    if !query.split('&').any(|p| p == "role=publish_subscribe") {
        let msg = format!("the data-channel URL has no role=publish_subscribe (query {query:?})");
        // Recorded in both modes: strict mode refuses, it does not forget.
        shared.registry.record_violation(&session_id, Req::Open001, msg.clone());
        if shared.cfg.strictness == Strictness::Strict {
            return refuse(400, "BadRequest", msg);
        }
    }
    // SigV4 for `ssmmessages`: a signature that is present is verified (newer plugins sign the
    // upgrade); unsigned upgrades (older plugins) are refused only with --require-ws-sigv4.
    if sigv4::is_signed(req.uri(), headers) {
        if let Some(v) = &shared.verifier {
            if let Err(e) = v.verify(req.method(), req.uri(), headers, b"", "ssmmessages", SystemTime::now())
            {
                return refuse(e.http_status(), e.aws_code(), e.message());
            }
        }
    } else if shared.cfg.require_ws_sigv4 {
        return refuse(403, "MissingAuthenticationTokenException", "Missing Authentication Token".into());
    }
    // The token belongs in the first text frame; some clients put it in a header.
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    if bearer.is_some() {
        let msg =
            "the token was sent in an Authorization: Bearer header instead of the OpenDataChannel frame"
                .to_owned();
        shared.registry.record_violation(&session_id, Req::Open001, msg.clone());
        if shared.cfg.strictness == Strictness::Strict {
            return refuse(401, "BadRequest", msg);
        }
    }
    if let Some(tx) = shared.registry.sender(&session_id) {
        let _ = tx.try_send(ToSession::ClientConnecting);
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    if let Some(h) = shared.harness() {
        // A scenario's link latency applies to the upgrade, as in the simulator.
        tokio::time::sleep(h.clock.to_real(shared.cfg.link.latency)).await;
    }
    // The websocket keeps the connection's slot under max_connections until it ends.
    let permit = req.extensions().get::<super::ConnPermit>().and_then(super::ConnPermit::take);
    let upgrade = hyper::upgrade::on(req);
    let gate = pong_gate(&shared, &session_id);
    tokio::spawn(async move {
        let _permit = permit;
        match upgrade.await {
            Ok(upgraded) => {
                let cfg = WebSocketConfig::default()
                    .max_message_size(Some(shared.cfg.max_frame_size))
                    .max_frame_size(Some(shared.cfg.max_frame_size));
                let io = PongGate::new(TokioIo::new(upgraded), gate);
                let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(cfg)).await;
                connection(shared, ws, session_id, bearer).await;
            }
            Err(e) => tracing::info!("websocket upgrade failed: {e}"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

/// While the session's faults black-hole the link between the client and the service, the
/// client's pings go unanswered, as in the simulator (PING-002).
fn pong_gate(shared: &Shared, session_id: &str) -> Option<Gate> {
    let (faults, clock) = shared.registry.faults(session_id)?;
    Some(Arc::new(move || {
        let ms = clock.now().as_millis();
        let f = faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f.is_black_holed(ms, Side::Client.inbound()) || f.is_black_holed(ms, Side::Agent.inbound())
    }))
}

type Ws = WebSocketStream<PongGate<TokioIo<hyper::upgrade::Upgraded>>>;
type Sink = futures_util::stream::SplitSink<Ws, Message>;
/// A write in progress; it hands the sink back when done.
type Write = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Sink, Result<(), tokio_tungstenite::tungstenite::Error>)> + Send>,
>;

fn write(mut sink: Sink, msg: Message) -> Write {
    Box::pin(async move {
        let r = sink.send(msg).await;
        (sink, r)
    })
}

/// The longest close reason: a control frame carries at most 125 bytes, 2 of them the code
/// (RFC 6455 5.5); a longer reason makes the whole close frame a protocol error for the peer.
const MAX_CLOSE_REASON: usize = 123;

fn close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default()
}

/// How long a closing connection waits for the peer (the close written, then the peer's reply).
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// The same on a shutdown, which should not wait long for clients.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(250);

/// Sends a close frame, then waits (bounded) for the peer's close reply before the socket is
/// dropped: dropping it with input still unread makes the kernel answer with a reset, and the
/// peer may then lose the close frame (and with it the code and reason).
async fn close(ws: &mut Ws, code: u16, reason: &str) {
    close_within(ws, code, reason, CLOSE_LINGER).await;
}

async fn close_within(ws: &mut Ws, code: u16, reason: &str, linger: Duration) {
    let deadline = tokio::time::Instant::now() + linger;
    let frame = CloseFrame { code: CloseCode::from(code), reason: close_reason(reason).to_owned().into() };
    let _ = tokio::time::timeout_at(deadline, ws.close(Some(frame))).await;
    let _ = tokio::time::timeout_at(deadline, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

/// [`close`] after a message over the size limit: tungstenite cannot read past the oversized
/// frame, so the rest of it is read raw and discarded (after a FIN) until the peer closes.
async fn close_too_big(ws: &mut Ws, reason: &str) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let deadline = tokio::time::Instant::now() + CLOSE_LINGER;
    let frame =
        CloseFrame { code: CloseCode::from(CLOSE_TOO_BIG), reason: close_reason(reason).to_owned().into() };
    let _ = tokio::time::timeout_at(deadline, ws.close(Some(frame))).await;
    let io = ws.get_mut();
    let _ = tokio::time::timeout_at(deadline, io.shutdown()).await;
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout_at(deadline, drain).await;
}

/// The first text or binary message (or close). Pings and pongs are skipped: the plugin starts
/// its keepalive pings concurrently with the OpenDataChannel write, so a ping may come first
/// (tungstenite answers it).
async fn first_data_message(ws: &mut Ws) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => return other,
        }
    }
}

/// Reads the OpenDataChannel leniently: the token, plus the deviations seen.
fn read_open(text: &str) -> Result<(String, Vec<String>), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut deviations = Vec::new();
    match v.get("MessageSchemaVersion") {
        Some(serde_json::Value::String(s)) if s == "1.0" => {}
        Some(serde_json::Value::String(s)) => {
            deviations.push(format!("MessageSchemaVersion is {s:?}, not \"1.0\""))
        }
        Some(other) => deviations.push(format!("MessageSchemaVersion is {other}, not the string \"1.0\"")),
        None => deviations.push("MessageSchemaVersion is missing".into()),
    }
    for key in ["RequestId", "ClientId"] {
        if !v.get(key).is_some_and(serde_json::Value::is_string) {
            deviations.push(format!("{key} is missing or not a string"));
        }
    }
    let token = v.get("TokenValue").and_then(|t| t.as_str()).ok_or("TokenValue is missing")?;
    Ok((token.to_owned(), deviations))
}

async fn connection(shared: Arc<Shared>, mut ws: Ws, session_id: String, bearer: Option<String>) {
    let reg = &shared.registry;
    let strict = shared.cfg.strictness == Strictness::Strict;
    let mut shutdown = shared.shutdown.clone();
    let first = match bearer {
        Some(_) => None,
        // A shutdown does not wait for the open timeout.
        None => tokio::select! {
            r = tokio::time::timeout(shared.cfg.open_timeout, first_data_message(&mut ws)) => Some(r),
            _ = shutdown.changed() => {
                close_within(&mut ws, 1001, "the mock service is shutting down", SHUTDOWN_LINGER).await;
                return;
            }
        },
    };
    let token = match (bearer, first) {
        (Some(t), _) => t,
        (None, None) => return,
        (None, Some(first)) => match first {
            Err(_) => {
                let why = format!("no OpenDataChannel within {:?}", shared.cfg.open_timeout);
                reg.record_refusal(&session_id, why.clone());
                close(&mut ws, CLOSE_REFUSED, &why).await;
                return;
            }
            Ok(Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e)))) => {
                let why = format!("OpenDataChannel refused: message too big: {e}");
                reg.record_violation(&session_id, Req::Open001, why.clone());
                reg.record_refusal(&session_id, why.clone());
                close_too_big(&mut ws, &why).await;
                return;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(Message::Text(t)))) => match read_open(t.as_str()) {
                Ok((token, deviations)) => {
                    for d in &deviations {
                        reg.record_violation(&session_id, Req::Open001, format!("OpenDataChannel: {d}"));
                    }
                    if strict && !deviations.is_empty() {
                        let why = format!("OpenDataChannel refused (strict): {}", deviations.join("; "));
                        reg.record_refusal(&session_id, why.clone());
                        close(&mut ws, CLOSE_REFUSED, &why).await;
                        return;
                    }
                    token
                }
                Err(e) => {
                    let why = format!("the first text frame is not an OpenDataChannel: {e}");
                    reg.record_violation(&session_id, Req::Open001, why.clone());
                    reg.record_refusal(&session_id, why.clone());
                    close(&mut ws, CLOSE_REFUSED, &why).await;
                    return;
                }
            },
            Ok(Some(Ok(_))) => {
                let why = "binary frame before OpenDataChannel".to_owned();
                reg.record_violation(&session_id, Req::Open001, why.clone());
                reg.record_refusal(&session_id, why.clone());
                close(&mut ws, CLOSE_REFUSED, &why).await;
                return;
            }
        },
    };
    let check = reg.check_token(&session_id, &token);
    let session = reg.sender(&session_id);
    let rec = shared.harness().map(|h| h.recorder);
    if let Some(r) = &rec {
        let accepted = check == TokenCheck::Ok && session.is_some();
        let why = if accepted { "ok".to_owned() } else { check.reason().to_owned() };
        r.record(ssm_scenario::What::OpenChecked {
            side: ssm_channel::Role::Client,
            token: token.clone(),
            accepted,
            why,
        });
    }
    let (TokenCheck::Ok, Some(session)) = (&check, session) else {
        let why = format!("OpenDataChannel refused: {}", check.reason());
        reg.record_refusal(&session_id, why.clone());
        if let Some(r) = &rec {
            r.record(ssm_scenario::What::Closed {
                side: ssm_channel::Role::Client,
                code: Some(CLOSE_REFUSED),
                why: why.clone(),
            });
        }
        close(&mut ws, CLOSE_REFUSED, &why).await;
        return;
    };
    reg.opened(&session_id);
    let conn = shared.conn_ids.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<WsOut>(CONN_QUEUE);
    if session.send(ToSession::Opened { conn, tx }).await.is_err() {
        close(&mut ws, CLOSE_REFUSED, "the session is terminated").await;
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut unanswered = 0u32;
    // Reading never waits for a write: a client that writes its acknowledgements from its
    // receive loop (as the plugin does) blocks in that write when the mock stops reading, and
    // then stops reading itself; if the mock's write were awaited inline, both would wait on
    // each other forever. The write in progress is a branch of the loop instead.
    let (sink, mut stream) = ws.split();
    let mut sink = Some(sink);
    let mut writing: Option<Write> = None;
    let end: Option<(u16, String)> = loop {
        tokio::select! {
            (s, r) = async {
                match writing.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            }, if writing.is_some() => {
                writing = None;
                sink = Some(s);
                if r.is_err() {
                    break None;
                }
            }
            out = rx.recv(), if writing.is_none() => match out {
                Some(WsOut::Binary(b)) => writing = sink.take().map(|s| write(s, Message::Binary(b.into()))),
                Some(WsOut::Close(code, why)) => break Some((code, why)),
                Some(WsOut::Reset) => {
                    let _ = session.send(ToSession::Closed { conn }).await;
                    return;
                }
                // The session dropped this connection without a word: when it is still
                // running, it could not queue its close because the queue was full.
                None if session.is_closed() => break Some((1000, "the session ended".into())),
                None => break Some((1011, "the connection's queue overflowed".into())),
            },
            msg = stream.next() => {
                unanswered = 0;
                match msg {
                    None => break None,
                    Some(Err(e)) => {
                        let capacity = matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_));
                        tracing::info!(session = %session_id, conn, "websocket read error: {e}");
                        if capacity {
                            reg.record_violation(&session_id, Req::Frame001, format!("message refused: {e}"));
                            break Some((CLOSE_TOO_BIG, format!("message too big: {e}")));
                        }
                        break None;
                    }
                    Some(Ok(Message::Binary(b))) => {
                        if let Some(refusal) = check_frame(&shared, &session_id, &b, strict) {
                            break Some((CLOSE_POLICY, refusal));
                        }
                        if session.send(ToSession::Binary { conn, bytes: b.to_vec() }).await.is_err() {
                            break Some((1000, "the session ended".into()));
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        reg.record_violation(&session_id, Req::Open001, "text frame after OpenDataChannel".into());
                        if let Some(r) = &rec {
                            r.record(ssm_scenario::What::ServiceSaw {
                                side: ssm_channel::Role::Client,
                                req: Req::Open001,
                                detail: "text frame after OpenDataChannel".into(),
                            });
                        }
                    }
                    Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Ping(p))) if p == crate::record::BARRIER => {
                        if session.send(ToSession::Barrier { conn }).await.is_err() {
                            break Some((1000, "the session ended".into()));
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                unanswered += 1;
                if unanswered > PINGS_UNANSWERED {
                    break Some((1001, "no response to pings".into()));
                }
                if writing.is_none() {
                    writing = sink.take().map(|s| write(s, Message::Ping(Bytes::from_static(b"keepalive"))));
                }
            }
            _ = shutdown.changed() => break Some((1001, "the mock service is shutting down".into())),
        }
    };
    let _ = session.send(ToSession::Closed { conn }).await;
    // On a shutdown the session is told to terminate too, and its close (or its end) may win
    // the race against the shutdown branch: whichever it was, the code is "going away".
    let shutting_down = *shutdown.borrow();
    let end =
        if shutting_down { end.map(|_| (1001, "the mock service is shutting down".to_owned())) } else { end };
    if let Some((code, why)) = end {
        let linger = if shutting_down { SHUTDOWN_LINGER } else { CLOSE_LINGER };
        // The write in progress is finished first (bounded): a close needs the whole socket.
        let sink = match (sink, writing) {
            (Some(s), _) => Some(s),
            (None, Some(w)) => tokio::time::timeout(linger, w).await.ok().map(|(s, _)| s),
            (None, None) => None,
        };
        let Some(Ok(mut ws)) = sink.map(|s| s.reunite(stream)) else { return };
        // Write what the session queued before its close (channel_closed precedes the close),
        // as long as the client takes it.
        let flush = async {
            while let Ok(WsOut::Binary(b)) = rx.try_recv() {
                if ws.send(Message::Binary(b.into())).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(linger, flush).await;
        if code == CLOSE_TOO_BIG {
            close_too_big(&mut ws, &why).await;
        } else {
            close_within(&mut ws, code, &why, linger).await;
        }
    }
}

/// Checks a client frame; returns the refusal reason in strict mode.
fn check_frame(shared: &Shared, session_id: &str, bytes: &[u8], strict: bool) -> Option<String> {
    let reg = &shared.registry;
    let found: Vec<(Req, String)> = match ssm_wire::decode(bytes) {
        Err(e) => vec![(Req::Frame001, format!("a binary message that is not a frame: {e}"))],
        Ok(w) => w.validate().into_iter().map(|v| (v.sender_req(), v.to_string())).collect(),
    };
    if found.is_empty() {
        return None;
    }
    for (req, detail) in &found {
        reg.record_violation(session_id, *req, detail.clone());
    }
    if !strict {
        return None;
    }
    found.first().map(|(req, detail)| format!("{req}: {detail}"))
}
