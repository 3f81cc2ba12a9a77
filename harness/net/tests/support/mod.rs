//! Helpers shared by `deviations.rs` and `robustness.rs`: a raw data-channel client speaking the
//! wire protocol frame by frame (so that tests can send exactly the bytes they want), raw HTTP,
//! SigV4-signed websocket upgrades and bounded waits.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use ssm_net::mock::{MockHandle, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use ssm_net::sigv4::{Credentials, UpgradeSigning};
use ssm_wire::payload::{self, AcknowledgeContent};
use ssm_wire::{Frame, HeaderFlags, MessageType, PayloadType};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The bound of every single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ API

pub fn sdk_with(m: &MockHandle, key: &str, secret: &str) -> aws_sdk_ssm::Client {
    let creds = aws_sdk_ssm::config::Credentials::new(key, secret, None, None, "test");
    let conf = aws_sdk_ssm::config::Builder::new()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url(m.endpoint_url())
        .credentials_provider(creds)
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// An SDK client signing with the mock's test credentials.
pub fn sdk(m: &MockHandle) -> aws_sdk_ssm::Client {
    sdk_with(m, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
}

#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    pub token: String,
    pub url: String,
}

/// StartSession through the SDK.
pub async fn start_session(c: &aws_sdk_ssm::Client) -> Started {
    let s = timeout(WAIT, c.start_session().target("i-0123456789abcdef0").send())
        .await
        .expect("StartSession timed out")
        .expect("StartSession failed");
    Started {
        id: s.session_id().unwrap().to_owned(),
        token: s.token_value().unwrap().to_owned(),
        url: s.stream_url().unwrap().to_owned(),
    }
}

/// One unsigned awsJson1_1 call over a fresh connection (`Connection: close`), for mocks
/// started with `credentials: None`. Returns the status and the body.
pub async fn api(addr: SocketAddr, operation: &str, body: &str) -> (u16, String) {
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AmazonSSM.{operation}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{operation}: no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{operation}: {e}"));
    parse_response(&buf).unwrap_or_else(|| panic!("{operation}: not an HTTP response: {buf:?}"))
}

fn parse_response(buf: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// StartSession through [`api`]; returns the session.
pub async fn api_start(addr: SocketAddr) -> Started {
    let (status, body) = api(addr, "StartSession", r#"{"Target":"i-0123456789abcdef0"}"#).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    Started {
        id: v["SessionId"].as_str().unwrap().to_owned(),
        token: v["TokenValue"].as_str().unwrap().to_owned(),
        url: v["StreamUrl"].as_str().unwrap().to_owned(),
    }
}

/// Polls `f` every 20 ms until it holds or `within` has passed.
pub async fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------ websocket

/// The OpenDataChannel of the 2024-10 plugin (4.1), keys in Go struct order.
pub fn open_json(token: &str) -> String {
    format!(
        r#"{{"MessageSchemaVersion":"1.0","RequestId":"{}","TokenValue":"{token}","ClientId":"{}","ClientVersion":"1.2.694.0"}}"#,
        Uuid::new_v4(),
        Uuid::new_v4()
    )
}

/// Upgrades to the data channel (no OpenDataChannel sent yet).
pub async fn connect(url: &str) -> Ws {
    let req = url.into_client_request().unwrap();
    connect_req(req).await.unwrap_or_else(|(s, b)| panic!("upgrade refused: {s} {b}"))
}

/// Upgrades with a custom request; `Err((status, body))` if the mock refused the upgrade.
pub async fn connect_req(req: http::Request<()>) -> Result<Ws, (u16, String)> {
    match timeout(WAIT, tokio_tungstenite::connect_async(req)).await.expect("upgrade timed out") {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body =
                r.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err((r.status().as_u16(), body))
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// Upgrades and sends the OpenDataChannel with `token`.
pub async fn open(url: &str, token: &str) -> Ws {
    let mut ws = connect(url).await;
    ws.send(Message::text(open_json(token))).await.unwrap();
    ws
}

/// How a websocket ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A close frame: code and reason.
    Close(u16, String),
    /// A close frame without a code.
    CloseNoCode,
    /// The stream ended (or failed) without a close frame.
    Gone(String),
}

impl End {
    pub fn code(&self) -> Option<u16> {
        match self {
            End::Close(c, _) => Some(*c),
            _ => None,
        }
    }
}

/// Reads (ignoring data) until the connection ends; panics if it does not within `within`.
pub async fn until_end(ws: &mut Ws, within: Duration) -> End {
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return End::Close(f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) => return End::CloseNoCode,
                Some(Ok(_)) => {}
                Some(Err(e)) => return End::Gone(e.to_string()),
                None => return End::Gone("end of stream".into()),
            }
        }
    };
    timeout(within, read).await.unwrap_or_else(|_| panic!("the connection did not end within {within:?}"))
}

/// Signs a websocket upgrade as newer session-manager-plugin releases do (SigV4 for
/// `ssmmessages`, signing `host` and `x-amz-date`), for region us-east-1, now.
pub fn signed_upgrade(url: &str, key: &str, secret: &str) -> http::Request<()> {
    let signing = UpgradeSigning { credentials: Credentials::new(key, secret), region: "us-east-1".into() };
    ssm_net::sigv4::signed_upgrade(url, &signing, SystemTime::now()).unwrap()
}

/// Sends `req` (a websocket upgrade) over raw TCP and reads the complete response (status and
/// body by Content-Length), for refusals whose body matters.
pub async fn raw_upgrade(addr: SocketAddr, req: &http::Request<()>) -> (u16, String) {
    let mut head = format!("GET {} HTTP/1.1\r\n", req.uri().path_and_query().unwrap());
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut s = tokio::io::BufReader::new(TcpStream::connect(addr).await?);
        s.get_mut().write_all(head.as_bytes()).await?;
        let mut status_line = String::new();
        s.read_line(&mut status_line).await?;
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            s.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>((status_line, body))
    };
    let (status_line, body) = timeout(WAIT, exchange).await.expect("no response").expect("response");
    let status = status_line.get(9..12).and_then(|s| s.parse().ok()).expect("status line");
    (status, String::from_utf8_lossy(&body).into_owned())
}

// ------------------------------------------------------------------ frames

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64)
}

/// An input_stream_data frame as the plugin sends it.
pub fn input(seq: i64, payload: &[u8]) -> Frame {
    Frame {
        message_type: MessageType::InputStreamData,
        schema_version: 1,
        created_date_ms: now_ms(),
        sequence_number: seq,
        flags: HeaderFlags::NONE,
        message_id: Uuid::new_v4(),
        payload_type: PayloadType::OUTPUT,
        payload: payload.to_vec(),
    }
}

/// The acknowledge of a received stream frame.
pub fn ack_for(t: MessageType, id: Uuid, seq: i64) -> Vec<u8> {
    let content = AcknowledgeContent::for_message(&t, id, seq);
    Frame {
        message_type: MessageType::Acknowledge,
        schema_version: 1,
        created_date_ms: now_ms(),
        sequence_number: 0,
        flags: HeaderFlags::SYN_FIN,
        message_id: Uuid::new_v4(),
        payload_type: PayloadType::NONE,
        payload: payload::to_go_json(&content),
    }
    .encode()
    .unwrap()
}

/// A client of the data channel, frame by frame: it acknowledges the agent's output in order
/// and keeps what was acknowledged to it.
#[derive(Debug)]
pub struct Peer {
    pub ws: Ws,
    /// The sequence number of the next input frame [`Peer::send_input`] sends.
    pub next_seq: i64,
    /// The sequence number of the agent's next in-order output.
    pub expected_out: i64,
    /// Message ids of our frames the agent acknowledged.
    pub acked: HashSet<Uuid>,
    /// The agent's output, in order.
    pub output: Vec<u8>,
    /// Frames sent with [`Peer::send_frame`] and not yet acknowledged, with their bytes: they
    /// are retransmitted byte for byte while [`Peer::pump_until`] waits (RTX-002), as the mock
    /// may lose frames (for instance before the agent's side is connected).
    unacked: Vec<(Uuid, Vec<u8>)>,
}

/// How often unacknowledged frames are sent again.
const RESEND_EVERY: Duration = Duration::from_millis(300);

/// The most unacknowledged frames a resend round writes: a client that wrote thousands of
/// frames between two reads would stop reading for seconds.
const RESEND_BATCH: usize = 256;

impl Peer {
    pub fn new(ws: Ws) -> Self {
        Peer {
            ws,
            next_seq: 0,
            expected_out: 0,
            acked: HashSet::new(),
            output: Vec::new(),
            unacked: Vec::new(),
        }
    }

    /// Upgrades, sends the OpenDataChannel and returns the peer.
    pub async fn open(url: &str, token: &str) -> Self {
        Peer::new(open(url, token).await)
    }

    /// Replaces the websocket with a new one opened with `token`, keeping the sequence state
    /// (a resume).
    pub async fn reopen(&mut self, url: &str, token: &str) {
        self.ws = open(url, token).await;
        for (_, b) in self.unacked.clone() {
            self.send_raw(b).await;
        }
    }

    /// Vanishes: the TCP connection is reset (RST, no close frame, no FIN).
    pub fn abort(self) {
        if let MaybeTlsStream::Plain(s) = self.ws.get_ref() {
            s.set_zero_linger().unwrap();
        }
        drop(self);
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        timeout(WAIT, self.ws.send(Message::binary(bytes))).await.expect("send timed out").expect("send");
    }

    /// Sends a well-formed frame and retransmits it until it is acknowledged.
    pub async fn send_frame(&mut self, f: &Frame) {
        let bytes = f.encode().unwrap();
        self.unacked.push((f.message_id, bytes.clone()));
        self.send_raw(bytes).await;
    }

    /// Sends the next input frame; returns its message id.
    /// Takes over frames another connection of this client sent and that may not have been
    /// acknowledged: they are retransmitted like our own until acknowledged.
    pub fn adopt_unacked(&mut self, frames: impl IntoIterator<Item = (Uuid, Vec<u8>)>) {
        self.unacked.extend(frames);
    }

    pub async fn send_input(&mut self, payload: &[u8]) -> Uuid {
        let f = input(self.next_seq, payload);
        self.next_seq += 1;
        self.send_frame(&f).await;
        f.message_id
    }

    /// Reads and handles frames until `done` holds; `Err` says why it never did (the
    /// connection ended, or `within` passed).
    pub async fn pump_until(&mut self, within: Duration, done: impl Fn(&Peer) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut resend_at = Instant::now() + RESEND_EVERY;
        while !done(self) {
            if Instant::now() >= resend_at {
                resend_at = Instant::now() + RESEND_EVERY;
                let batch: Vec<Vec<u8>> =
                    self.unacked.iter().take(RESEND_BATCH).map(|(_, b)| b.clone()).collect();
                for b in batch {
                    self.ws.send(Message::binary(b)).await.map_err(|e| format!("resend failed: {e}"))?;
                }
            }
            let msg = match timeout_at(deadline.min(resend_at), self.ws.next()).await {
                Err(_) if Instant::now() < deadline => continue,
                Err(_) => return Err(format!("timed out after {within:?}")),
                Ok(None) => return Err("end of stream".into()),
                Ok(Some(Err(e))) => return Err(format!("read error: {e}")),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Binary(b) => self.on_frame(&b).await?,
                Message::Close(f) => return Err(format!("closed: {f:?}")),
                _ => {}
            }
        }
        Ok(())
    }

    async fn on_frame(&mut self, b: &[u8]) -> Result<(), String> {
        let w = ssm_wire::decode(b).map_err(|e| format!("the mock sent a non-frame: {e}"))?;
        match w.message_type {
            MessageType::Acknowledge => {
                let a: AcknowledgeContent =
                    serde_json::from_slice(w.payload).map_err(|e| format!("bad acknowledge: {e}"))?;
                if let Ok(id) = Uuid::parse_str(&a.message_id) {
                    self.acked.insert(id);
                    self.unacked.retain(|(u, _)| *u != id);
                }
            }
            MessageType::OutputStreamData => {
                let seq = w.sequence_number;
                if seq == self.expected_out {
                    self.output.extend_from_slice(w.payload);
                    self.expected_out += 1;
                }
                if seq < self.expected_out {
                    let ack = ack_for(MessageType::OutputStreamData, w.message_id, seq);
                    self.ws.send(Message::binary(ack)).await.map_err(|e| format!("ack not sent: {e}"))?;
                }
            }
            MessageType::ChannelClosed => {
                return Err(format!("channel_closed: {}", String::from_utf8_lossy(w.payload)));
            }
            _ => {}
        }
        Ok(())
    }

    /// Waits until the agent acknowledged `id`.
    pub async fn wait_ack(&mut self, id: Uuid) -> Result<(), String> {
        self.pump_until(WAIT, |p| p.acked.contains(&id)).await
    }

    /// Sends `text` as the next input and waits for its acknowledge and its echo.
    pub async fn exchange(&mut self, text: &str) -> Result<(), String> {
        self.exchange_within(text, WAIT).await
    }

    /// [`Peer::exchange`] with a time limit of `within`.
    pub async fn exchange_within(&mut self, text: &str, within: Duration) -> Result<(), String> {
        let id = self.send_input(text.as_bytes()).await;
        let want = text.as_bytes().to_vec();
        self.pump_until(within, |p| p.acked.contains(&id) && p.output.windows(want.len()).any(|w| w == want))
            .await
            .map_err(|e| {
                format!(
                    "exchange {text:?}: {e}; acked: {}; output so far: {:?}",
                    self.acked.contains(&id),
                    String::from_utf8_lossy(&self.output)
                )
            })
    }
}
