//! The mock's data channel against clients that deviate from the protocol: wrong or missing
//! tokens (OPEN-001, OPEN-003, RES-009), the deviations of clients in the wild in strict and
//! lenient mode (FRAME-003, FRAME-007, OPEN-001), and SigV4-signed websocket upgrades.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt as _;
use ssm_net::mock::{self, MockConfig, MockHandle, SessionStatus, Strictness, TEST_ACCESS_KEY_ID};
use ssm_spec::Req;
use ssm_wire::Overrides;
use support::{
    connect, connect_req, input, open, open_json, raw_upgrade, sdk, signed_upgrade, start_session, until_end,
    wait_until, End, Peer, Started, WAIT,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

async fn mock_with(strictness: Strictness) -> MockHandle {
    mock::start(MockConfig { strictness, ..MockConfig::default() }).await.unwrap()
}

/// The client saw close 4001 with a reason containing `why`, and the session logged it.
/// The websocket is dropped afterwards (the mock waits for the close reply or the end of the
/// connection).
async fn assert_refused(m: &MockHandle, s: &Started, mut ws: support::Ws, why: &str) {
    let end = until_end(&mut ws, WAIT).await;
    let End::Close(code, reason) = &end else { panic!("expected close 4001 ({why}), got {end:?}") };
    assert_eq!(*code, 4001, "{end:?}");
    assert!(reason.contains(why), "close reason {reason:?} does not say {why:?}");
    let info = m.session(&s.id).unwrap();
    assert!(
        info.refusals.iter().any(|r| r.contains(why) && r.starts_with(reason.as_str())),
        "refusal not logged as sent: {:?} (sent {reason:?})",
        info.refusals
    );
}

/// The session is usable with its current token: an input is acknowledged and echoed.
async fn assert_current_token_works(s: &Started, token: &str) {
    let mut p = Peer::open(&s.url, token).await;
    p.exchange("hello\n").await.unwrap();
}

// ------------------------------------------------------------------ A: tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_token_after_resume_is_refused_and_the_current_one_accepted() {
    let m = mock_with(Strictness::Lenient).await;
    let c = sdk(&m);
    let s = start_session(&c).await;
    let r = c.resume_session().session_id(&s.id).send().await.unwrap();
    let current = r.token_value().unwrap().to_owned();
    assert_ne!(current, s.token);

    let ws = open(&s.url, &s.token).await;
    assert_refused(&m, &s, ws, "stale token").await;
    assert_eq!(m.session(&s.id).unwrap().opens, 0, "the stale token opened nothing");

    let mut p = Peer::open(&s.url, &current).await;
    p.exchange("hello\n").await.unwrap();
    let info = m.session(&s.id).unwrap();
    assert_eq!((info.opens, info.refusals.len()), (1, 1), "{:?}", info.refusals);
    assert_eq!(info.status, SessionStatus::Connected);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_of_another_session_is_refused() {
    let m = mock_with(Strictness::Lenient).await;
    let c = sdk(&m);
    let a = start_session(&c).await;
    let b = start_session(&c).await;
    let ws = open(&a.url, &b.token).await;
    assert_refused(&m, &a, ws, "another session").await;
    assert!(m.session(&b.id).unwrap().refusals.is_empty(), "the refusal is logged on the session dialled");
    assert_eq!(m.session(&b.id).unwrap().opens, 0);
    assert_current_token_works(&a, &a.token).await;
    assert_current_token_works(&b, &b.token).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_of_a_terminated_session_is_refused() {
    let m = mock_with(Strictness::Lenient).await;
    let c = sdk(&m);
    let s = start_session(&c).await;
    let live = start_session(&c).await;
    c.terminate_session().session_id(&s.id).send().await.unwrap();
    assert_eq!(m.session(&s.id).unwrap().status, SessionStatus::Terminated);

    // RES-009: neither its own channel nor a live one opens with it.
    let ws = open(&s.url, &s.token).await;
    assert_refused(&m, &s, ws, "terminated").await;
    let ws = open(&live.url, &s.token).await;
    assert_refused(&m, &live, ws, "another session").await;
    assert_eq!(m.session(&s.id).unwrap().opens, 0);
    assert_current_token_works(&live, &live.token).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_open_data_channel_is_refused() {
    let m = mock_with(Strictness::Lenient).await;
    let s = start_session(&sdk(&m)).await;
    let garbage = [
        ("{\"MessageSchemaVersion\":\"1.0\",\"TokenValue\":", "not JSON"),
        ("AAEAA-this-is-just-the-token", "not JSON"),
        (r#"{"MessageSchemaVersion":"1.0","RequestId":"r","ClientId":"c"}"#, "TokenValue is missing"),
        (r#"["TokenValue"]"#, "TokenValue is missing"),
        ("", "not JSON"),
    ];
    for (text, why) in garbage {
        let mut ws = connect(&s.url).await;
        ws.send(Message::text(text)).await.unwrap();
        assert_refused(&m, &s, ws, why).await;
    }
    let info = m.session(&s.id).unwrap();
    assert_eq!(info.refusals.len(), garbage.len(), "{:?}", info.refusals);
    assert!(info.violations.iter().all(|(r, _)| *r == Req::Open001), "{:?}", info.violations);
    assert_current_token_works(&s, &s.token).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_before_open_data_channel_is_refused() {
    let m = mock_with(Strictness::Lenient).await;
    let s = start_session(&sdk(&m)).await;
    let mut ws = connect(&s.url).await;
    ws.send(Message::binary(input(0, b"ls\n").encode().unwrap())).await.unwrap();
    assert_refused(&m, &s, ws, "binary frame before OpenDataChannel").await;
    assert!(
        m.session(&s.id).unwrap().violations.iter().any(|(r, _)| *r == Req::Open001),
        "{:?}",
        m.session(&s.id).unwrap().violations
    );
    assert_current_token_works(&s, &s.token).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_open_data_channel_within_the_open_timeout_is_refused() {
    let cfg = MockConfig { open_timeout: Duration::from_millis(300), ..MockConfig::default() };
    let m = mock::start(cfg).await.unwrap();
    let s = start_session(&sdk(&m)).await;
    let t0 = Instant::now();
    let ws = connect(&s.url).await;
    assert_refused(&m, &s, ws, "no OpenDataChannel within 300ms").await;
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(250), "refused after only {waited:?}");
    assert!(waited < Duration::from_secs(3), "refused only after {waited:?}");
    // The timeout is per connection: a prompt client is not affected.
    assert_current_token_works(&s, &s.token).await;
    assert!(wait_until(WAIT, || m.open_connections() <= 2).await, "{}", m.open_connections());
    m.shutdown().await;
}

/// The plugin starts its keepalive pings in a goroutine as soon as the websocket is open, so a
/// ping can reach the service before the OpenDataChannel text frame; it is not a data frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_before_open_data_channel_is_not_a_refusal() {
    let m = mock_with(Strictness::Strict).await;
    let s = start_session(&sdk(&m)).await;
    let mut ws = connect(&s.url).await;
    ws.send(Message::Ping(b"keepalive".to_vec().into())).await.unwrap();
    ws.send(Message::text(open_json(&s.token))).await.unwrap();
    let mut p = Peer::new(ws);
    p.exchange("after a ping\n").await.unwrap();
    let info = m.session(&s.id).unwrap();
    assert!(info.refusals.is_empty(), "{:?}", info.refusals);
    assert!(info.violations.is_empty(), "{:?}", info.violations);
    m.shutdown().await;
}

// ------------------------------------------------------------------ B: deviations

/// A frame with a deviation, sent as the first input after a valid OpenDataChannel.
fn deviant_frame(kind: &str) -> Vec<u8> {
    let f = input(0, b"deviant\n");
    match kind {
        "nul-padded type" => {
            // Leading (and trailing) NUL bytes instead of trailing spaces.
            let mut field = [0u8; 32];
            field[4..4 + "input_stream_data".len()].copy_from_slice(b"input_stream_data");
            f.encode_with(&Overrides { message_type_field: Some(field), ..Overrides::default() })
        }
        "hex digest" => {
            // The hex text of the first half of the SHA-256 instead of the raw 32 bytes.
            let hex = hex::encode(&ssm_wire::digest(&f.payload)[..16]);
            let mut d = [0u8; 32];
            d.copy_from_slice(hex.as_bytes());
            f.encode_with(&Overrides { payload_digest: Some(d), ..Overrides::default() })
        }
        _ => unreachable!(),
    }
}

async fn frame_deviation_lenient(kind: &str, req: Req) {
    let m = mock_with(Strictness::Lenient).await;
    let s = start_session(&sdk(&m)).await;
    let mut p = Peer::open(&s.url, &s.token).await;
    p.send_raw(deviant_frame(kind)).await;
    // Whether the agent took the deviant frame as sequence 0 or dropped it, a correct frame
    // afterwards is acknowledged.
    let ok = input(1, b"correct\n");
    p.send_frame(&ok).await;
    p.wait_ack(ok.message_id).await.unwrap();
    let info = m.session(&s.id).unwrap();
    assert!(info.violations.iter().any(|(r, _)| *r == req), "{req} not recorded: {:?}", info.violations);
    assert_eq!(info.status, SessionStatus::Connected);
    assert!(info.refusals.is_empty());
    m.shutdown().await;
}

async fn frame_deviation_strict(kind: &str, req: Req) {
    let m = mock_with(Strictness::Strict).await;
    let s = start_session(&sdk(&m)).await;
    let mut p = Peer::open(&s.url, &s.token).await;
    p.send_raw(deviant_frame(kind)).await;
    let end = until_end(&mut p.ws, WAIT).await;
    let End::Close(code, reason) = &end else { panic!("{end:?}") };
    assert_eq!(*code, 1008, "{end:?}");
    assert!(reason.starts_with(req.id()), "the close reason names {req}: {reason:?}");
    drop(p);
    let info = m.session(&s.id).unwrap();
    assert!(info.violations.iter().any(|(r, _)| *r == req), "{req} not recorded: {:?}", info.violations);
    assert!(wait_until(WAIT, || m.session(&s.id).unwrap().status == SessionStatus::Disconnected).await);
    // The refusal ends the connection, not the session.
    assert_current_token_works(&s, &s.token).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_padded_message_type_lenient_is_recorded_and_the_session_carries_on() {
    frame_deviation_lenient("nul-padded type", Req::Frame003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_padded_message_type_strict_is_refused_with_1008() {
    frame_deviation_strict("nul-padded type", Req::Frame003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_sha256_digest_lenient_is_recorded_and_the_session_carries_on() {
    frame_deviation_lenient("hex digest", Req::Frame007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_sha256_digest_strict_is_refused_with_1008() {
    frame_deviation_strict("hex digest", Req::Frame007).await;
}

fn numeric_schema_open(token: &str) -> String {
    open_json(token).replace(r#""MessageSchemaVersion":"1.0""#, r#""MessageSchemaVersion":1.0"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_message_schema_version_lenient_is_recorded_and_accepted() {
    let m = mock_with(Strictness::Lenient).await;
    let s = start_session(&sdk(&m)).await;
    let mut ws = connect(&s.url).await;
    ws.send(Message::text(numeric_schema_open(&s.token))).await.unwrap();
    let mut p = Peer::new(ws);
    p.exchange("hello\n").await.unwrap();
    let info = m.session(&s.id).unwrap();
    assert!(
        info.violations.iter().any(|(r, d)| *r == Req::Open001 && d.contains("MessageSchemaVersion")),
        "{:?}",
        info.violations
    );
    assert!(info.refusals.is_empty(), "{:?}", info.refusals);
    assert_eq!(info.opens, 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_message_schema_version_strict_is_refused_with_4001() {
    let m = mock_with(Strictness::Strict).await;
    let s = start_session(&sdk(&m)).await;
    let mut ws = connect(&s.url).await;
    ws.send(Message::text(numeric_schema_open(&s.token))).await.unwrap();
    assert_refused(&m, &s, ws, "MessageSchemaVersion").await;
    let info = m.session(&s.id).unwrap();
    assert!(info.violations.iter().any(|(r, _)| *r == Req::Open001), "{:?}", info.violations);
    assert_eq!(info.opens, 0);
    assert_current_token_works(&s, &s.token).await;
    m.shutdown().await;
}

fn bearer_upgrade(s: &Started, token: &str) -> http::Request<()> {
    let mut req = s.url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_header_lenient_is_recorded_and_accepted() {
    let m = mock_with(Strictness::Lenient).await;
    let s = start_session(&sdk(&m)).await;
    // No OpenDataChannel frame at all: the header carries the token.
    let ws = connect_req(bearer_upgrade(&s, &s.token)).await.unwrap();
    let mut p = Peer::new(ws);
    p.exchange("hello\n").await.unwrap();
    let info = m.session(&s.id).unwrap();
    assert!(
        info.violations.iter().any(|(r, d)| *r == Req::Open001 && d.contains("Bearer")),
        "{:?}",
        info.violations
    );
    assert_eq!(info.opens, 1);
    // The header token is checked like the frame's.
    let ws = connect_req(bearer_upgrade(&s, "AAEAA-wrong")).await.unwrap();
    assert_refused(&m, &s, ws, "invalid token").await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_header_strict_is_refused_with_401_and_recorded() {
    let m = mock_with(Strictness::Strict).await;
    let s = start_session(&sdk(&m)).await;
    let (status, _) = connect_req(bearer_upgrade(&s, &s.token)).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 401);
    let (status, body) = raw_upgrade(m.addr(), &bearer_upgrade(&s, &s.token)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    let info = m.session(&s.id).unwrap();
    assert!(
        info.violations.iter().any(|(r, d)| *r == Req::Open001 && d.contains("Bearer")),
        "the strict refusal is recorded: {:?}",
        info.violations
    );
    assert_eq!(info.opens, 0);
    assert_current_token_works(&s, &s.token).await;
    m.shutdown().await;
}

// ------------------------------------------------------------------ C: SigV4 upgrades

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_signed_upgrade_is_accepted() {
    let m = mock_with(Strictness::Strict).await;
    let s = start_session(&sdk(&m)).await;
    let req = signed_upgrade(&s.url, TEST_ACCESS_KEY_ID, ssm_net::mock::TEST_SECRET_ACCESS_KEY);
    let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
    assert!(auth.contains("/ssmmessages/aws4_request"), "{auth}");
    assert!(auth.contains("SignedHeaders=host;x-amz-date"), "{auth}");
    let mut ws = connect_req(req).await.unwrap();
    ws.send(Message::text(open_json(&s.token))).await.unwrap();
    let mut p = Peer::new(ws);
    p.exchange("signed\n").await.unwrap();
    assert!(m.session(&s.id).unwrap().violations.is_empty());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_upgrade_with_a_wrong_secret_or_service_is_refused() {
    let m = mock_with(Strictness::Lenient).await;
    let s = start_session(&sdk(&m)).await;
    let wrong = signed_upgrade(&s.url, TEST_ACCESS_KEY_ID, "not-the-secret");
    let (status, _) = connect_req(wrong.clone()).await.map(|_| ()).unwrap_err();
    assert_eq!(status, 400);
    let (status, body) = raw_upgrade(m.addr(), &wrong).await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["__type"], "InvalidSignatureException", "{body}");
    assert!(v["message"].as_str().unwrap().contains("does not match"), "{body}");

    let unknown = signed_upgrade(&s.url, "AKIAUNKNOWNKEY000000", "whatever");
    let (status, body) = raw_upgrade(m.addr(), &unknown).await;
    assert_eq!(
        (status, serde_json::from_str::<serde_json::Value>(&body).unwrap()["__type"].clone()),
        (400, "UnrecognizedClientException".into())
    );

    // Signed for the API's service name instead of ssmmessages.
    let mut req = s.url.as_str().into_client_request().unwrap();
    let api_signed =
        support::signed_upgrade(&s.url, TEST_ACCESS_KEY_ID, ssm_net::mock::TEST_SECRET_ACCESS_KEY);
    let auth = api_signed.headers()["authorization"].to_str().unwrap().replace("/ssmmessages/", "/ssm/");
    req.headers_mut().insert("authorization", auth.parse().unwrap());
    req.headers_mut().insert("x-amz-date", api_signed.headers()["x-amz-date"].clone());
    let (status, body) = raw_upgrade(m.addr(), &req).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("InvalidSignatureException") && body.contains("ssmmessages"), "{body}");
    let info = m.session(&s.id).unwrap();
    assert_eq!(info.opens, 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_ws_sigv4_refuses_unsigned_upgrades_and_accepts_signed_ones() {
    let cfg = MockConfig { require_ws_sigv4: true, ..MockConfig::default() };
    let m = mock::start(cfg).await.unwrap();
    let s = start_session(&sdk(&m)).await;
    let unsigned = s.url.as_str().into_client_request().unwrap();
    let (status, _) = connect_req(unsigned.clone()).await.map(|_| ()).unwrap_err();
    assert!((400..500).contains(&status), "{status}");
    let (status, body) = raw_upgrade(m.addr(), &unsigned).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("MissingAuthenticationTokenException"), "{body}");
    // A bearer token is no substitute for a signature.
    let (status, _) = raw_upgrade(m.addr(), &bearer_upgrade(&s, &s.token)).await;
    assert_eq!(status, 403);
    assert_eq!(m.session(&s.id).unwrap().opens, 0);

    let req = signed_upgrade(&s.url, TEST_ACCESS_KEY_ID, ssm_net::mock::TEST_SECRET_ACCESS_KEY);
    let mut ws = connect_req(req).await.unwrap();
    ws.send(Message::text(open_json(&s.token))).await.unwrap();
    let mut p = Peer::new(ws);
    p.exchange("signed\n").await.unwrap();
    assert_eq!(m.session(&s.id).unwrap().opens, 1);
    m.shutdown().await;
}
