//! The mock under hostile or broken clients: malformed frames (FRAME-010), oversized messages,
//! floods, slowloris connections, many sessions at once, clients that vanish, and shutdown with
//! connections open. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::types::SessionState;
use futures_util::{SinkExt as _, StreamExt as _};
use rand::{RngCore as _, SeedableRng as _};
use ssm_net::mock::{self, MockConfig, SessionStatus, Strictness};
use ssm_spec::Req;
use ssm_wire::{MessageType, Overrides};
use support::{api, api_start, input, open, sdk, start_session, until_end, wait_until, End, Peer, WAIT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// DescribeSessions through the SDK, bounded; returns how long it took.
async fn api_answers(c: &aws_sdk_ssm::Client, within: Duration) -> Duration {
    let t0 = Instant::now();
    match timeout(within, c.describe_sessions().state(SessionState::Active).send()).await {
        Ok(r) => assert!(r.is_ok(), "DescribeSessions failed: {r:?}"),
        Err(_) => panic!("DescribeSessions not answered within {within:?}"),
    }
    t0.elapsed()
}

/// Bytes that are not a frame a receiver may act on, each with a label.
fn malformed_frames() -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x55_4d_48);
    let mut out = Vec::new();
    for len in [0usize, 1, 3, 4, 31, 64, 115, 116, 117, 118, 119, 120, 121, 127, 200, 1000, 4096, 60_000] {
        let mut b = vec![0u8; len];
        rng.fill_bytes(&mut b);
        out.push((format!("{len} random bytes"), b.clone()));
        if len >= 120 {
            // Random, but with HeaderLength 116 so that it decodes as a frame.
            b[..4].copy_from_slice(&116u32.to_be_bytes());
            out.push((format!("{len} random bytes with HeaderLength 116"), b));
        }
    }
    let good = input(0, b"this frame is cut short\n").encode().unwrap();
    for cut in 0..good.len() {
        out.push((format!("frame truncated to {cut} bytes"), good[..cut].to_vec()));
    }
    let f = input(0, b"broken header\n");
    let with = |o: Overrides| f.encode_with(&o);
    out.push((
        "PayloadLength u32::MAX".into(),
        with(Overrides { payload_length: Some(u32::MAX), ..Default::default() }),
    ));
    out.push((
        "PayloadLength 2^31".into(),
        with(Overrides { payload_length: Some(1 << 31), ..Default::default() }),
    ));
    out.push(("HeaderLength 0".into(), with(Overrides { header_length: Some(0), ..Default::default() })));
    out.push(("HeaderLength 112".into(), with(Overrides { header_length: Some(112), ..Default::default() })));
    out.push((
        "HeaderLength u32::MAX".into(),
        with(Overrides { header_length: Some(u32::MAX), ..Default::default() }),
    ));
    out.push((
        "HeaderLength just past the end".into(),
        with(Overrides { header_length: Some(f.encoded_len() as u32 - 3), ..Default::default() }),
    ));
    out.push((
        "empty MessageType".into(),
        with(Overrides { message_type_field: Some([0; 32]), ..Default::default() }),
    ));
    out.push((
        "0xff MessageType".into(),
        with(Overrides { message_type_field: Some([0xff; 32]), ..Default::default() }),
    ));
    out.push((
        "wrong digest".into(),
        with(Overrides { payload_digest: Some([7; 32]), ..Default::default() }),
    ));
    let mut zero_date = f.clone();
    zero_date.created_date_ms = 0;
    out.push(("CreatedDate 0".into(), zero_date.encode_with(&Overrides::default())));
    // An acknowledge whose JSON is cut short.
    let mut ack = f.clone();
    ack.message_type = MessageType::Acknowledge;
    ack.payload = b"{\"AcknowledgedMessageSequenceNumber\":".to_vec();
    out.push(("acknowledge with broken JSON".into(), ack.encode_with(&Overrides::default())));
    out.push(("all 0xff".into(), vec![0xff; 120]));
    out
}

// ------------------------------------------------------------------ D1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_binary_frames_never_crash_or_wedge_the_mock() {
    let m = mock::start(MockConfig::default()).await.unwrap();
    let c = sdk(&m);
    let s = start_session(&c).await;
    let mut p = Peer::open(&s.url, &s.token).await;
    let frames = malformed_frames();
    for (_, b) in &frames {
        p.send_raw(b.clone()).await;
    }
    // Sequence numbers a careless receiver might overflow on: far ahead and negative.
    for seq in [i64::MAX, i64::MIN, -1, 1 << 40] {
        p.send_raw(input(seq, b"odd sequence\n").encode().unwrap()).await;
    }
    // The connection is still open and the agent still works on it.
    p.exchange("still alive\n").await.unwrap();
    api_answers(&c, WAIT).await;
    let info = m.session(&s.id).unwrap();
    assert_eq!(info.status, SessionStatus::Connected);
    for req in [Req::Frame001, Req::Frame002, Req::Frame007] {
        assert!(info.violations.iter().any(|(r, _)| *r == req), "{req} not recorded");
    }
    // And a fresh connection on the same session too.
    p.reopen(&s.url, &s.token).await;
    p.exchange("fresh connection\n").await.unwrap();
    assert_eq!(m.session(&s.id).unwrap().opens, 2);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_binary_frames_in_strict_mode_close_only_their_connection() {
    let m =
        mock::start(MockConfig { strictness: Strictness::Strict, ..MockConfig::default() }).await.unwrap();
    let c = sdk(&m);
    let s = start_session(&c).await;
    let picks = ["0 random bytes", "119 random bytes", "frame truncated to 118 bytes", "HeaderLength 0"];
    let frames = malformed_frames();
    for pick in picks {
        let (_, b) = frames.iter().find(|(l, _)| l == pick).unwrap();
        let mut ws = open(&s.url, &s.token).await;
        ws.send(Message::binary(b.clone())).await.unwrap();
        let end = until_end(&mut ws, WAIT).await;
        assert_eq!(end.code(), Some(1008), "{pick}: {end:?}");
    }
    let mut p = Peer::open(&s.url, &s.token).await;
    p.exchange("after the refusals\n").await.unwrap();
    api_answers(&c, WAIT).await;
    m.shutdown().await;
}

// ------------------------------------------------------------------ D2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_frame_size_closes_with_1009_and_the_mock_keeps_serving() {
    let max = 16 * 1024;
    let m = mock::start(MockConfig { max_frame_size: max, ..MockConfig::default() }).await.unwrap();
    let c = sdk(&m);
    let s = start_session(&c).await;

    let mut p = Peer::open(&s.url, &s.token).await;
    p.exchange("before\n").await.unwrap();
    // A second connection takes over the session; sent from a task, since the mock stops
    // reading mid-message.
    let (mut tx, mut rx) = open(&s.url, &s.token).await.split();
    let big = input(1, &vec![b'x'; 4 * max]).encode().unwrap();
    let writer = tokio::spawn(async move { tx.send(Message::binary(big)).await });
    let end = timeout(WAIT, async {
        loop {
            match rx.next().await {
                Some(Ok(Message::Close(Some(f)))) => return End::Close(f.code.into(), f.reason.to_string()),
                Some(Ok(_)) => {}
                other => return End::Gone(format!("{other:?}")),
            }
        }
    })
    .await
    .expect("no close after an oversized message");
    assert_eq!(end.code(), Some(1009), "{end:?}");
    let _ = timeout(WAIT, writer).await;
    assert!(m.session(&s.id).unwrap().violations.iter().any(|(r, _)| *r == Req::Frame001));

    // An oversized OpenDataChannel is refused the same way.
    let mut ws = support::connect(&s.url).await;
    let huge_open = support::open_json(&s.token).replace("1.2.694.0", &"9".repeat(2 * max));
    let _ = ws.send(Message::text(huge_open)).await;
    let end = until_end(&mut ws, WAIT).await;
    assert_eq!(end.code(), Some(1009), "{end:?}");

    // The same session resumes (the oversized message never arrived: sequence 1 is next).
    p.reopen(&s.url, &s.token).await;
    p.exchange("after\n").await.unwrap();
    drop(rx);
    api_answers(&c, WAIT).await;
    m.shutdown().await;
}

// ------------------------------------------------------------------ D3

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_frames_does_not_make_the_mock_unresponsive() {
    // Each input brings an acknowledge and an echo: 18 000 frames overflow the queue, and 9000
    // unacknowledged echoes stay within the agent's buffer.
    const N: i64 = 9_000;
    // This client writes its 9000 retransmissions before it reads again, which on a loaded
    // machine can take longer than the default stall timeout.
    let cfg = MockConfig { stall_timeout: Duration::from_secs(120), ..MockConfig::default() };
    let m = mock::start(cfg).await.unwrap();
    let c = sdk(&m);
    let s = start_session(&c).await;
    let ws = open(&s.url, &s.token).await;
    let (mut tx, mut rx) = ws.split();
    let acks = Arc::new(AtomicUsize::new(0));
    let seen = acks.clone();
    // Reads everything (acknowledging nothing); ends with the close code, or Err without one.
    let mut reader = tokio::spawn(async move {
        loop {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => {
                    if ssm_wire::decode(&b).is_ok_and(|w| w.message_type == MessageType::Acknowledge) {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Close(f))) => return Ok(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("end of stream".to_owned()),
            }
        }
    });
    let flood_start = Instant::now();
    let mut writer = tokio::spawn(async move {
        let mut sent = 0i64;
        for seq in 0..N {
            if tx.feed(Message::binary(input(seq, b"x").encode().unwrap())).await.is_err() {
                break;
            }
            sent += 1;
            if seq % 128 == 0 && tx.flush().await.is_err() {
                break;
            }
        }
        let _ = tx.flush().await;
        (sent, tx)
    });
    // The API stays responsive while the flood runs.
    let mut worst = Duration::ZERO;
    let mut calls = 0;
    let flood = loop {
        tokio::select! {
            r = &mut writer => break Some(r.unwrap()),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                worst = worst.max(api_answers(&c, Duration::from_secs(3)).await);
                calls += 1;
                if flood_start.elapsed() > Duration::from_secs(5) {
                    // The mock stopped reading: the client cannot push more.
                    writer.abort();
                    break None;
                }
            }
        }
    };
    let elapsed = flood_start.elapsed();
    worst = worst.max(api_answers(&c, Duration::from_secs(3)).await);
    let sent = flood.as_ref().map(|(n, _)| *n);
    // How the flooder's connection stands a moment after the flood: None while still open.
    let ended = timeout(Duration::from_secs(3), &mut reader).await.ok().map(|r| r.unwrap());
    reader.abort();
    let acks = acks.load(Ordering::Relaxed);
    eprintln!(
        "flood: sent {sent:?} of {N} in {elapsed:?}; {calls} API calls during it, slowest {worst:?}; \
         {acks} acknowledges read; connection end: {ended:?}"
    );
    assert!(worst < Duration::from_secs(3), "an API call took {worst:?}");
    // Bounded, in one of three ways: the mock closed the connection with an error code (its
    // queue towards the flooder overflowed), or it is still open with the flood absorbed by
    // bounded queues and TCP backpressure (the conformant agent also stops acknowledging once
    // 10 000 echoes are unacknowledged). On a loaded machine the close frame can be lost: the
    // flooder keeps writing, the mock gives up waiting for its close reply after 2 s and drops
    // the socket with input unread, and the reset discards what the client had not read yet.
    match &ended {
        Some(Ok(Some(code))) => assert!([1008, 1011].contains(code), "closed with {code}"),
        Some(Err(e)) if e.contains("reset") => {}
        Some(other) => panic!("the flooder's connection ended without a close code: {other:?}"),
        None => assert!(acks <= N as usize, "{acks} acknowledges for {N} frames"),
    }
    drop(flood);
    assert!(m.session(&s.id).unwrap().violations.len() <= 1000);
    // The mock still serves: a new session works end to end.
    let other = start_session(&c).await;
    Peer::open(&other.url, &other.token).await.exchange("after the flood\n").await.unwrap();
    api_answers(&c, WAIT).await;
    m.shutdown().await;
}

/// A session stays resumable after a connection was dropped for not reading: a client
/// connection that lets the agent's unacknowledged output pile up is closed with 1011, and the
/// next connection, from a client that retransmits its unacknowledged inputs and acknowledges
/// everything, receives the whole backlog. The thousands of retransmitted inputs make the agent
/// answer with a burst (acks, echoes and its own retransmissions) larger than a connection's
/// queue: the relay holds the rest back until the connection takes it, as TCP would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_a_large_unacknowledged_backlog_can_be_resumed() {
    // Each input brings an acknowledge and an echo: 18 000 frames overflow the queue, and 9000
    // unacknowledged echoes stay within the agent's buffer.
    const N: i64 = 9_000;
    // This client writes its 9000 retransmissions before it reads again, which on a loaded
    // machine can take longer than the default stall timeout.
    let cfg = MockConfig { stall_timeout: Duration::from_secs(120), ..MockConfig::default() };
    let m = mock::start(cfg).await.unwrap();
    let s = start_session(&sdk(&m)).await;
    let mut p = Peer::open(&s.url, &s.token).await;
    p.exchange("start\n").await.unwrap();
    // N inputs whose echoes (and acknowledges) are read but never acknowledged: the queue of
    // this connection overflows.
    let (mut tx, mut rx) = open(&s.url, &s.token).await.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let mut sent = Vec::new();
    for seq in 1..=N {
        let f = input(seq, b"y");
        let bytes = f.encode().unwrap();
        sent.push((f.message_id, bytes.clone()));
        tx.feed(Message::binary(bytes)).await.unwrap();
    }
    tx.flush().await.unwrap();
    let _ = timeout(Duration::from_secs(2), drain).await;
    drop(tx);
    // A well-behaved client now resumes: it retransmits the inputs the agent never took (the
    // mock ignores what a connection sends after it was closed) and acknowledges everything.
    p.next_seq = N + 1;
    p.adopt_unacked(sent);
    p.reopen(&s.url, &s.token).await;
    // Thousands of frames each way through a debug build: more time than one exchange needs.
    p.exchange_within("resumed\n", Duration::from_secs(60)).await.unwrap();
    // The byte stream is intact: every input echoed once, in order, then the new one.
    let want = format!("sh-5.2$ start\n{}resumed\n", "y".repeat(N as usize));
    assert!(p.output == want.as_bytes(), "output: {:?}", String::from_utf8_lossy(&p.output));
    m.shutdown().await;
}

/// A client that keeps its connection open but stops reading is cut off once frames have
/// waited for it for the stall timeout (1011), and the session stays resumable with its byte
/// stream intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_can_resume() {
    // Kilobyte echoes: more than the connection's queue and the socket buffers hold.
    const N: i64 = 4_000;
    let chunk = vec![b'z'; 1024];
    let m = mock::start(MockConfig { stall_timeout: Duration::from_secs(1), ..MockConfig::default() })
        .await
        .unwrap();
    let s = start_session(&sdk(&m)).await;
    let mut p = Peer::open(&s.url, &s.token).await;
    p.exchange("start\n").await.unwrap();
    let (mut tx, rx) = open(&s.url, &s.token).await.split();
    let mut sent = Vec::new();
    for seq in 1..=N {
        let f = input(seq, &chunk);
        let bytes = f.encode().unwrap();
        sent.push((f.message_id, bytes.clone()));
        tx.feed(Message::binary(bytes)).await.unwrap();
    }
    tx.flush().await.unwrap();
    // Nothing is read: the mock gives up on this connection.
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || m.session(&s.id).unwrap().status
            == SessionStatus::Disconnected)
        .await,
        "the stalled connection is still open: {:?}",
        m.session(&s.id).unwrap().status
    );
    eprintln!("cut off {:?} after the last input was written", t0.elapsed());
    drop((tx, rx));
    p.next_seq = N + 1;
    p.adopt_unacked(sent);
    p.reopen(&s.url, &s.token).await;
    p.exchange_within("resumed\n", Duration::from_secs(60)).await.unwrap();
    let mut want = b"sh-5.2$ start\n".to_vec();
    for _ in 0..N {
        want.extend_from_slice(&chunk);
    }
    want.extend_from_slice(b"resumed\n");
    assert!(p.output == want, "{} bytes of output, {} expected", p.output.len(), want.len());
    m.shutdown().await;
}

/// A client that ignores channel_closed and keeps its websocket open is closed after the grace
/// period, with the TERM-001 violation on record; a client that ends is never told twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_ignores_channel_closed_is_closed_after_the_grace_period() {
    let grace = Duration::from_millis(700);
    let m = mock::start(MockConfig { channel_closed_grace: grace, ..MockConfig::default() }).await.unwrap();
    let c = sdk(&m);
    let s = start_session(&c).await;
    let mut p = Peer::open(&s.url, &s.token).await;
    p.exchange("hello\n").await.unwrap();
    let t0 = Instant::now();
    c.terminate_session().session_id(&s.id).send().await.unwrap();
    let end = until_end(&mut p.ws, Duration::from_secs(10)).await;
    let waited = t0.elapsed();
    assert_eq!(end.code(), Some(1000), "{end:?}");
    assert!(waited >= grace, "closed after {waited:?}, before the grace of {grace:?}");
    let info = m.session(&s.id).unwrap();
    assert_eq!(info.status, SessionStatus::Terminated);
    assert!(
        info.violations.iter().any(|(r, d)| *r == Req::Term001 && d.contains("after channel_closed")),
        "{:?}",
        info.violations
    );
    m.shutdown().await;
}

/// Sends a ping and says whether its pong came back within `within` (data frames are skipped).
async fn pong_within(ws: &mut support::Ws, payload: &'static [u8], within: Duration) -> bool {
    ws.send(Message::Ping(payload.into())).await.unwrap();
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) if p.as_ref() == payload => return,
                Some(Ok(_)) => {}
                other => panic!("the websocket ended: {other:?}"),
            }
        }
    };
    timeout(within, wait).await.is_ok()
}

/// A partition in the mock's fault plan swallows the pongs of the client's pings, which the
/// websocket layer would otherwise answer below the relay (PING-002), and only while it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_swallows_the_pongs_of_client_pings() {
    let plan = ssm_fault::FaultPlan {
        timed: vec![ssm_fault::TimedFault {
            name: None,
            at_ms: 2_000,
            action: ssm_fault::TimedAction::Partition { for_ms: 2_000 },
        }],
        ..ssm_fault::FaultPlan::default()
    };
    let m = mock::start(MockConfig { faults: Some(plan), ..MockConfig::default() }).await.unwrap();
    let s = start_session(&sdk(&m)).await;
    let t0 = Instant::now();
    let mut ws = open(&s.url, &s.token).await;
    assert!(
        pong_within(&mut ws, b"before", Duration::from_millis(500)).await,
        "no pong before the partition"
    );
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(t0.elapsed())).await;
    assert!(
        !pong_within(&mut ws, b"during", Duration::from_millis(600)).await,
        "a pong during the partition"
    );
    tokio::time::sleep(Duration::from_millis(4_500).saturating_sub(t0.elapsed())).await;
    assert!(pong_within(&mut ws, b"after", Duration::from_millis(500)).await, "no pong after the partition");
    m.shutdown().await;
}

/// The session noticed its client vanished: Disconnected, and no connection left open.
async fn assert_gone_and_disconnected(m: &mock::MockHandle, id: &str) {
    assert!(
        wait_until(WAIT, || m.session(id).unwrap().status == SessionStatus::Disconnected).await,
        "{:?}",
        m.session(id).unwrap().status
    );
    assert!(wait_until(WAIT, || m.open_connections() == 0).await, "{}", m.open_connections());
}

// ------------------------------------------------------------------ D4

/// Reads until the peer closes; Err if it does not within `within`.
async fn closed_within(r: &mut tokio::net::tcp::OwnedReadHalf, within: Duration) -> Result<Vec<u8>, ()> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    timeout(within, read).await.map_err(|_| ())?;
    Ok(got)
}

fn slowloris_config() -> MockConfig {
    MockConfig {
        credentials: None,
        max_connections: 8,
        header_timeout: HEADER_TIMEOUT,
        ..MockConfig::default()
    }
}

const HEADER_TIMEOUT: Duration = Duration::from_millis(800);

/// Fills every connection slot with stalled connections of the given kinds, checks that the
/// mock is full, then that the stalls are cut off and the mock serves again.
async fn slowloris(kinds: &[&'static str]) {
    let m = mock::start(slowloris_config()).await.unwrap();
    let addr = m.addr();
    let mut held = Vec::new();
    let mut tricklers = Vec::new();
    let t0 = Instant::now();
    for i in 0..8 {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, mut w) = s.into_split();
        match kinds[i % kinds.len()] {
            "silent" => {}
            "half request line" => w.write_all(b"POST / HT").await.unwrap(),
            "headers unfinished" => {
                w.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: AmazonSSM.").await.unwrap()
            }
            "trickle" => {
                tricklers.push(tokio::spawn(async move {
                    let line = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: AmazonSSM.DescribeSessions\r\n";
                    for b in line.iter().cycle().take(200) {
                        if w.write_all(&[*b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }));
                held.push((kinds[i % kinds.len()], r, None));
                continue;
            }
            "body unfinished" => w
                .write_all(
                    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AmazonSSM.DescribeSessions\r\nContent-Length: 100\r\n\r\n{\"State\":",
                )
                .await
                .unwrap(),
            other => unreachable!("{other}"),
        }
        // The write half is kept: dropping it would send a FIN.
        held.push((kinds[i % kinds.len()], r, Some(w)));
    }
    assert!(
        wait_until(Duration::from_secs(2), || m.open_connections() == 8).await,
        "{}",
        m.open_connections()
    );
    // Full: a ninth connection is turned away while the stalls last (checked only if they
    // surely still do, on a machine too loaded to get here within the header timeout).
    if t0.elapsed() < HEADER_TIMEOUT / 2 {
        let (mut r9, mut w9) = TcpStream::connect(addr).await.unwrap().into_split();
        let _ = w9.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await;
        let answer =
            closed_within(&mut r9, Duration::from_secs(2)).await.expect("the ninth connection hangs");
        assert!(answer.is_empty(), "served beyond max_connections: {:?}", String::from_utf8_lossy(&answer));
    } else {
        eprintln!("the ninth-connection check was skipped: setup took {:?}", t0.elapsed());
    }

    for (kind, r, _w) in &mut held {
        closed_within(r, Duration::from_secs(3))
            .await
            .unwrap_or_else(|_| panic!("a {kind:?} connection was not closed after {:?}", t0.elapsed()));
    }
    let cut_after = t0.elapsed();
    assert!(cut_after < Duration::from_secs(3), "stalls cut only after {cut_after:?}");
    assert!(
        wait_until(Duration::from_secs(2), || m.open_connections() == 0).await,
        "{} connections still counted",
        m.open_connections()
    );
    let (status, body) = api(addr, "DescribeSessions", r#"{"State":"Active"}"#).await;
    assert_eq!(status, 200, "{body}");
    for t in tricklers {
        t.abort();
    }
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_request_heads_are_cut_off_by_the_header_timeout() {
    slowloris(&["silent", "half request line", "headers unfinished", "trickle"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_request_bodies_are_cut_off_too() {
    slowloris(&["body unfinished"]).await;
}

// ------------------------------------------------------------------ D5

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_all_work() {
    let m = mock::start(MockConfig::default()).await.unwrap();
    let c = sdk(&m);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let s = start_session(&c).await;
                let mut p = Peer::open(&s.url, &s.token).await;
                p.exchange(&format!("session {i} line 1\n")).await?;
                p.exchange(&format!("session {i} line 2\n")).await?;
                Ok::<_, String>((s.id, p))
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut peers = Vec::new();
    for t in tasks {
        let (id, p) = timeout(Duration::from_secs(8), t).await.expect("a session hung").unwrap().unwrap();
        ids.push(id);
        peers.push(p);
    }
    eprintln!("50 sessions with two echo exchanges each in {:?}", t0.elapsed());
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    for id in &ids {
        let info = m.session(id).unwrap();
        assert_eq!((info.status, info.opens), (SessionStatus::Connected, 1), "{id}");
        assert!(info.violations.is_empty(), "{id}: {:?}", info.violations);
    }
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sessions_is_enforced_with_throttling_exception() {
    let m = mock::start(MockConfig { max_sessions: 5, ..MockConfig::default() }).await.unwrap();
    let c = sdk(&m);
    let mut live = Vec::new();
    for _ in 0..5 {
        live.push(start_session(&c).await);
    }
    for _ in 0..3 {
        let e = c.start_session().target("i-1").send().await.unwrap_err();
        assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    }
    assert_eq!(m.sessions().len(), 5, "a refused StartSession creates nothing");
    // The live ones are unaffected, and a terminated one frees its slot.
    Peer::open(&live[0].url, &live[0].token).await.exchange("still here\n").await.unwrap();
    c.terminate_session().session_id(&live[1].id).send().await.unwrap();
    let s = start_session(&c).await;
    Peer::open(&s.url, &s.token).await.exchange("new\n").await.unwrap();
    let e = c.start_session().target("i-1").send().await.unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    m.shutdown().await;
}

// ------------------------------------------------------------------ D6

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_vanish_are_cleaned_up() {
    let m = mock::start(MockConfig { credentials: None, ..MockConfig::default() }).await.unwrap();
    let s = api_start(m.addr()).await;
    assert!(wait_until(WAIT, || m.open_connections() == 0).await);
    let mut p = Peer::open(&s.url, &s.token).await;
    p.exchange("one\n").await.unwrap();
    assert_eq!(m.session(&s.id).unwrap().status, SessionStatus::Connected);
    assert!(
        wait_until(WAIT, || m.open_connections() == 1).await,
        "an open websocket is an open connection: {}",
        m.open_connections()
    );

    // Gone without a close frame: TCP FIN.
    let (next_seq, expected_out) = (p.next_seq, p.expected_out);
    drop(p);
    assert_gone_and_disconnected(&m, &s.id).await;

    // Gone without a close frame or FIN: TCP RST, mid-exchange.
    let mut p = Peer::open(&s.url, &s.token).await;
    (p.next_seq, p.expected_out) = (next_seq, expected_out);
    p.exchange("two\n").await.unwrap();
    assert_eq!(m.session(&s.id).unwrap().status, SessionStatus::Connected);
    // Sent, never acknowledged: the reset may well discard it before the mock reads it.
    let three = input(p.next_seq, b"three\n");
    p.send_raw(three.encode().unwrap()).await;
    let (next_seq, expected_out) = (p.next_seq + 1, p.expected_out);
    p.abort();
    assert_gone_and_disconnected(&m, &s.id).await;

    // The session survives both and resumes.
    let mut p = Peer::open(&s.url, &s.token).await;
    (p.next_seq, p.expected_out) = (next_seq, expected_out);
    // As a client does after a resume (RES-006): the unacknowledged frame again, byte for byte.
    p.send_frame(&three).await;
    p.exchange("four\n").await.unwrap();
    assert!(String::from_utf8_lossy(&p.output).contains("three"), "the echo lost in the reset is resent");
    assert_eq!(m.session(&s.id).unwrap().opens, 3);
    m.shutdown().await;
}

// ------------------------------------------------------------------ D7

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_with_connections_open_and_closes_websockets_with_1001() {
    let m = mock::start(MockConfig { header_timeout: Duration::from_secs(30), ..MockConfig::default() })
        .await
        .unwrap();
    let c = sdk(&m);
    let mut readers = Vec::new();
    for i in 0..3 {
        let s = start_session(&c).await;
        let mut p = Peer::open(&s.url, &s.token).await;
        p.exchange(&format!("client {i}\n")).await.unwrap();
        readers.push(tokio::spawn(async move { until_end(&mut p.ws, Duration::from_secs(8)).await }));
    }
    // A websocket still waiting for its OpenDataChannel, a stalled HTTP request, an idle
    // keep-alive connection (the SDK's).
    let s = start_session(&c).await;
    let mut pending = support::connect(&s.url).await;
    let mut stalled = TcpStream::connect(m.addr()).await.unwrap();
    stalled.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    assert!(wait_until(WAIT, || m.open_connections() >= 5).await, "{}", m.open_connections());

    let addr = m.addr();
    let t0 = Instant::now();
    timeout(Duration::from_secs(8), m.shutdown()).await.expect("shutdown hung");
    let took = t0.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    for r in readers {
        let end = r.await.unwrap();
        assert_eq!(end.code(), Some(1001), "{end:?}");
    }
    let end = until_end(&mut pending, WAIT).await;
    assert_eq!(end.code(), Some(1001), "the websocket still waiting for its OpenDataChannel: {end:?}");
    let (mut r, _w) = stalled.into_split();
    closed_within(&mut r, WAIT).await.expect("the stalled HTTP connection is still open");
    // Nothing listens any more.
    let refused = timeout(WAIT, TcpStream::connect(addr)).await.unwrap();
    assert!(refused.is_err(), "still accepting after shutdown");
}
