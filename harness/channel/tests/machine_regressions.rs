//! Regression tests for bugs the fuzzer and the pair property found in the machine and in the
//! test world, each driving the smallest case that showed the bug.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ssm_channel::pair::Pair;
use ssm_channel::{
    Behaviour, Channel, Config, EndReason, Event, PayloadType, Role, SessionKind, Time, Transmit,
};
use ssm_wire::payload::{self, action_type, HandshakeResponse, ProcessedClientAction};
use ssm_wire::{decode, Frame, HeaderFlags, MessageType, Overrides};

fn agent(kind: SessionKind) -> Channel {
    let mut cfg = Config::new(Role::Agent, Behaviour::conformant(Role::Agent), 7);
    cfg.session_kind = kind;
    Channel::new(Time::ZERO, cfg)
}

fn client_stream(seq: i64, pt: PayloadType, payload: Vec<u8>) -> Vec<u8> {
    Frame {
        message_type: MessageType::InputStreamData,
        schema_version: 1,
        created_date_ms: 1_700_000_000_000,
        sequence_number: seq,
        flags: HeaderFlags::NONE,
        message_id: uuid::Uuid::from_u128(0x1111_2222_3333_4000_8000_0000_0000_0000 + seq as u128),
        payload_type: pt,
        payload,
    }
    .encode_with(&Overrides::default())
}

fn events(ch: &mut Channel) -> Vec<Event> {
    while ch.poll_transmit().is_some() {}
    std::iter::from_fn(|| ch.poll_event()).collect()
}

fn stream_seqs_written(ch: &mut Channel) -> Vec<i64> {
    std::iter::from_fn(|| ch.poll_transmit())
        .filter_map(|t| match t {
            Transmit::Binary(b) => {
                decode(&b).ok().filter(|w| w.message_type.is_stream()).map(|w| w.sequence_number)
            }
            _ => None,
        })
        .collect()
}

/// Found by the `channel_ops` fuzzer: a HandshakeResponse that fails the handshake ends the
/// session, and the reorder buffer was drained afterwards, producing events after `Ended`.
#[test]
fn no_event_follows_ended_when_a_failed_handshake_is_followed_by_buffered_data() {
    let mut a = agent(SessionKind::Port);
    a.handle_transport_open(Time::ZERO);
    let _ = events(&mut a);
    // Client seq 1 arrives early and is buffered; then seq 0, a HandshakeResponse whose action
    // failed.
    a.handle_binary(Time::from_millis(10), &client_stream(1, PayloadType::OUTPUT, b"early".to_vec()));
    let response = HandshakeResponse {
        client_version: "1.2.677.0".into(),
        processed_client_actions: Some(vec![ProcessedClientAction {
            action_type: action_type::SESSION_TYPE.into(),
            action_status: 2,
            action_result: serde_json::Value::Null,
            error: "no".into(),
        }]),
        errors: None,
    };
    let bytes = client_stream(0, PayloadType::HANDSHAKE_RESPONSE, payload::to_go_json(&response));
    a.handle_binary(Time::from_millis(20), &bytes);
    let evs = events(&mut a);
    let ended = evs.iter().position(|e| matches!(e, Event::Ended(_))).expect("the session ended");
    assert!(matches!(a.end_reason(), Some(EndReason::HandshakeFailed { .. })), "{:?}", a.end_reason());
    assert_eq!(ended, evs.len() - 1, "events after Ended: {:?}", &evs[ended..]);
}

/// Found by the `channel_ops` fuzzer: an agent that buffered a stream message before its first
/// websocket (an ExitCode from `finish`) wrote the HandshakeRequest (seq 1) before it (seq 0).
#[test]
fn messages_buffered_before_the_first_open_are_written_first() {
    let mut a = agent(SessionKind::Port);
    a.finish(Time::ZERO, Some(3));
    assert_eq!(a.next_seq(), 1);
    a.handle_transport_open(Time::from_millis(5));
    assert_eq!(stream_seqs_written(&mut a), [0, 1], "sequence numbers reach the wire in order");
}

/// Found by the pair property: a delayed frame at the head of an in-flight queue held back the
/// due frames behind it while `next_time` counted them, so `run_until` spun forever.
#[test]
fn a_delayed_frame_does_not_hold_back_the_frames_behind_it() {
    let mut p = Pair::new(Behaviour::conformant(Role::Client), Behaviour::conformant(Role::Agent), 3);
    assert!(p.establish());
    p.drive_bounded(10_000, Duration::from_secs(600)).unwrap();
    p.send(Role::Agent, PayloadType::OUTPUT, b"A").unwrap();
    p.send(Role::Agent, PayloadType::OUTPUT, b"B").unwrap();
    let q = p.in_flight(Role::Client);
    assert_eq!(q.len(), 2);
    q[0].deliver_at = q[0].deliver_at + Duration::from_millis(30);
    // Bounded: before the fix this returned Err after spinning at one instant.
    let steps = p.drive_bounded(10_000, Duration::from_secs(600)).expect("settles");
    assert!(steps < 1000, "{steps} steps");
    assert_eq!(p.received(Role::Client), b"$ AB");
    // B overtook A: the client buffered it early and acknowledged it first (ACK-002).
    let acks: Vec<i64> = p
        .wire_log
        .iter()
        .filter(|(_, r, _)| *r == Role::Client)
        .filter_map(|(_, _, b)| {
            let w = decode(b).ok()?;
            (w.message_type == MessageType::Acknowledge).then(|| {
                serde_json::from_slice::<payload::AcknowledgeContent>(w.payload).unwrap().sequence_number
            })
        })
        .collect();
    assert_eq!(acks[..3], [0, 2, 1], "{acks:?}");
}

/// The pair's service authenticates a websocket by the token in OpenDataChannel: a client that
/// presents a stale token is disconnected.
#[test]
fn the_service_refuses_an_open_data_channel_with_a_stale_token() {
    use ssm_channel::{Impl, Mutant};
    let mut p = Pair::new(
        Behaviour::for_impl(&Impl::Mutant(Mutant::ReuseOldToken), Role::Client),
        Behaviour::conformant(Role::Agent),
        4,
    );
    assert!(p.establish());
    p.break_transport(Role::Client);
    p.run_until(p.now + Duration::from_secs(5));
    assert!(!p.client.is_connected());
    assert!(p.opens.iter().filter(|(r, _)| *r == Role::Client).all(|(_, t)| t == "client-token-0"));
}
