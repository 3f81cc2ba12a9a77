//! Conversations between two machines on a virtual clock, reading like the protocol reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ssm_channel::kms::{self, DataKey, EncryptionContext, Kms};
use ssm_channel::pair::Pair;
use ssm_channel::{
    ApiCall, ApiError, Behaviour, EndReason, Event, Note, PayloadType, Req, Role, SessionKind, Time,
};
use ssm_wire::payload::{self, action_type, EncChallenge, HandshakeRequest, HandshakeResponse};
use ssm_wire::{decode, HeaderFlags, MessageType};

fn conformant() -> Pair {
    Pair::new(Behaviour::conformant(Role::Client), Behaviour::conformant(Role::Agent), 1)
}

fn is_stream(w: &ssm_wire::WireFrame<'_>, seq: i64) -> bool {
    w.message_type.is_stream() && w.sequence_number == seq
}

fn is_ack_for(w: &ssm_wire::WireFrame<'_>, seq: i64) -> bool {
    w.message_type == MessageType::Acknowledge
        && serde_json::from_slice::<ssm_wire::payload::AcknowledgeContent>(w.payload)
            .is_ok_and(|a| a.sequence_number == seq)
}

fn violations(p: &Pair, role: Role) -> Vec<Req> {
    p.events(role)
        .iter()
        .filter_map(|e| match e {
            Event::Violation(v) => Some(v.req),
            _ => None,
        })
        .collect()
}

fn settle(p: &mut Pair) {
    let deadline = p.now.as_nanos() / 1_000_000_000 + 600;
    p.drive_bounded(100_000, Duration::from_secs(deadline)).expect("settles");
}

fn frames_sent_by(p: &Pair, role: Role) -> Vec<ssm_wire::Frame> {
    p.wire_log.iter().filter(|(_, r, _)| *r == role).map(|(_, _, b)| decode(b).unwrap().to_frame()).collect()
}

#[test]
fn plain_shell_start_first_output_sets_session_type_then_size_and_keys() {
    let mut p = conformant();
    assert!(p.establish());
    // The agent's first stream message is Output seq 0 with SYN (HS-001, TYPE-005).
    let first = frames_sent_by(&p, Role::Agent).into_iter().find(|f| f.message_type.is_stream()).unwrap();
    assert_eq!(
        (first.sequence_number, first.flags, first.payload_type),
        (0, HeaderFlags::SYN, PayloadType::OUTPUT)
    );
    assert!(p.events(Role::Client).contains(&Event::SessionReady { session_type: "Standard_Stream".into() }));
    p.send(Role::Client, PayloadType::SIZE, br#"{"cols":80,"rows":24}"#).unwrap();
    p.send(Role::Client, PayloadType::OUTPUT, b"ls\r").unwrap();
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ ");
    assert_eq!(p.received(Role::Agent), b"ls\r");
    let client = frames_sent_by(&p, Role::Client);
    let stream: Vec<_> = client.iter().filter(|f| f.message_type.is_stream()).collect();
    assert_eq!(
        stream.iter().map(|f| (f.sequence_number, f.payload_type)).collect::<Vec<_>>(),
        [(0, PayloadType::SIZE), (1, PayloadType::OUTPUT)]
    );
    // Acks carry seq 0, Flags 3, PayloadType 0 (TYPE-004).
    for a in client.iter().filter(|f| f.message_type == MessageType::Acknowledge) {
        assert_eq!(
            (a.sequence_number, a.flags, a.payload_type),
            (0, HeaderFlags::SYN_FIN, PayloadType::NONE)
        );
    }
    assert!(p.client.is_quiescent() && p.agent.is_quiescent());
    assert_eq!(violations(&p, Role::Client), []);
    assert_eq!(violations(&p, Role::Agent), []);
}

#[test]
fn first_open_sends_open_data_channel_before_any_binary_frame() {
    let mut p = conformant();
    assert!(p.establish());
    assert_eq!(
        p.opens,
        [(Role::Client, "client-token-0".to_owned()), (Role::Agent, "agent-token-0".to_owned())]
    );
}

#[test]
fn port_session_handshake() {
    let mut p = Pair::with_kind(
        Behaviour::conformant(Role::Client),
        Behaviour::conformant(Role::Agent),
        SessionKind::Port,
        2,
    );
    assert!(p.establish());
    let agent = frames_sent_by(&p, Role::Agent);
    let stream: Vec<_> = agent.iter().filter(|f| f.message_type.is_stream()).collect();
    assert_eq!(stream[0].payload_type, PayloadType::HANDSHAKE_REQUEST);
    assert_eq!(stream[0].flags, HeaderFlags::SYN);
    assert_eq!(stream[1].payload_type, PayloadType::HANDSHAKE_COMPLETE);
    let client = frames_sent_by(&p, Role::Client);
    let resp = client.iter().find(|f| f.payload_type == PayloadType::HANDSHAKE_RESPONSE).unwrap();
    assert_eq!(resp.sequence_number, 0);
    let body: ssm_wire::payload::HandshakeResponse = serde_json::from_slice(&resp.payload).unwrap();
    let actions = body.processed_client_actions.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].action_status, 1);
    assert!(p.events(Role::Client).contains(&Event::SessionReady { session_type: "Port".into() }));
}

#[test]
fn client_sends_nothing_before_the_session_is_ready() {
    let mut p = Pair::with_kind(
        Behaviour::conformant(Role::Client),
        Behaviour::conformant(Role::Agent),
        SessionKind::Port,
        2,
    );
    assert_eq!(p.send(Role::Client, PayloadType::OUTPUT, b"x"), Err(ssm_channel::SendError::NotReady));
}

#[test]
fn handshake_timeout_fails_the_agent_session() {
    let mut p = Pair::with_kind(
        Behaviour::conformant(Role::Client),
        Behaviour::conformant(Role::Agent),
        SessionKind::NonInteractiveCommands,
        3,
    );
    // Black-hole the client's websocket: the HandshakeRequest never gets an answer.
    for _ in 0..400 {
        p.step();
        p.in_flight(Role::Client).clear();
        if p.agent.is_ended() {
            break;
        }
    }
    assert_eq!(p.agent.end_reason(), Some(&EndReason::HandshakeTimeout));
    assert!(p.now >= Time::from_millis(15_000));
}

#[test]
fn lost_ack_is_recovered_by_retransmission_and_reack() {
    let mut p = conformant();
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"one").unwrap();
    // Deliver seq 1 to the client, then drop the client's ack for it.
    loop {
        p.step();
        if let Some(i) = p.find_in_flight(Role::Agent, |w| is_ack_for(w, 1)) {
            p.in_flight(Role::Agent).remove(i);
            break;
        }
    }
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ one");
    assert!(p.events(Role::Agent).iter().any(|e| matches!(e, Event::Note(Note::Retransmit { seq: 1, .. }))));
    // The client re-acknowledged the duplicate (ACK-003) and did not deliver it twice.
    assert!(p.agent.is_quiescent());
}

#[test]
fn lost_data_is_retransmitted_with_identical_bytes() {
    let mut p = conformant();
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"one").unwrap();
    let i = p.find_in_flight(Role::Client, |w| is_stream(w, 1)).unwrap();
    let original = p.in_flight(Role::Client).remove(i).unwrap().bytes;
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ one");
    let copies: Vec<_> = p
        .wire_log
        .iter()
        .filter(|(_, r, b)| *r == Role::Agent && decode(b).is_ok_and(|w| is_stream(&w, 1)))
        .collect();
    assert!(copies.len() >= 2);
    for (_, _, b) in copies {
        assert_eq!(*b, original, "retransmission differs (SEQ-003)");
    }
}

#[test]
fn reordered_frames_are_buffered_acked_and_delivered_in_order() {
    let mut p = conformant();
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"A").unwrap();
    p.send(Role::Agent, PayloadType::OUTPUT, b"B").unwrap();
    p.send(Role::Agent, PayloadType::OUTPUT, b"C").unwrap();
    let q = p.in_flight(Role::Client);
    assert_eq!(q.len(), 3);
    q.swap(0, 2);
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ ABC");
    // No retransmission was needed: early frames were acknowledged on arrival (ACK-002).
    assert!(!p.events(Role::Agent).iter().any(|e| matches!(e, Event::Note(Note::Retransmit { .. }))));
}

#[test]
fn duplicated_frame_is_delivered_once_and_reacked() {
    let mut p = conformant();
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"once").unwrap();
    let dup = p.in_flight(Role::Client)[0].clone();
    p.in_flight(Role::Client).push_back(dup);
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ once");
    let acks = p
        .wire_log
        .iter()
        .filter(|(_, r, b)| *r == Role::Client && decode(b).is_ok_and(|w| is_ack_for(&w, 1)))
        .count();
    assert_eq!(acks, 2, "the duplicate is re-acknowledged (ACK-003)");
}

#[test]
fn pause_publication_holds_agent_output_until_start() {
    let mut p = conformant();
    assert!(p.establish());
    p.inject(Role::Agent, MessageType::PausePublication, b"{}".to_vec());
    p.run_until(p.now + Duration::from_millis(100));
    assert!(p.agent.is_paused());
    p.send(Role::Agent, PayloadType::OUTPUT, b"held").unwrap();
    p.run_until(p.now + Duration::from_secs(2));
    assert_eq!(p.received(Role::Client), b"$ ", "nothing sent while paused (PUB-001)");
    p.inject(Role::Agent, MessageType::StartPublication, b"{}".to_vec());
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ held", "kept and sent after the pause (PUB-003)");
}

#[test]
fn client_tolerates_publication_frames() {
    let mut p = conformant();
    assert!(p.establish());
    p.inject(Role::Client, MessageType::PausePublication, b"{}".to_vec());
    p.inject(Role::Client, MessageType::StartPublication, b"{}".to_vec());
    settle(&mut p);
    assert!(!p.client.is_ended());
    p.send(Role::Client, PayloadType::OUTPUT, b"x").unwrap();
    settle(&mut p);
    assert_eq!(p.received(Role::Agent), b"x");
}

#[test]
fn resume_rotates_the_token_and_replays_unacked_frames_both_ways() {
    let mut p = conformant();
    p.script.rotate_stream_url = true;
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"to-client").unwrap();
    p.send(Role::Client, PayloadType::OUTPUT, b"to-agent").unwrap();
    // Both frames are lost with the client's websocket.
    p.in_flight(Role::Client).clear();
    p.in_flight(Role::Agent).clear();
    p.break_transport(Role::Client);
    p.send(Role::Client, PayloadType::OUTPUT, b"+typed-while-down").unwrap();
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ to-client");
    assert_eq!(p.received(Role::Agent), b"to-agent+typed-while-down");
    assert!(p
        .api_calls
        .iter()
        .any(|(r, c)| *r == Role::Client && matches!(c, ApiCall::ResumeSession { .. })));
    // The reconnect used the rotated token and the new StreamUrl (OPEN-003, RES-005).
    let (url, token) = p.client_connects.last().unwrap().clone();
    assert_eq!(token, "client-token-1");
    assert!(url.contains("/rotated/"));
    assert_eq!(p.opens.last().unwrap(), &(Role::Client, "client-token-1".to_owned()));
    // Sequence numbers continued (SEQ-002).
    assert_eq!(p.client.next_seq(), 2);
}

#[test]
fn resume_retries_with_backoff_through_errors() {
    let mut p = conformant();
    assert!(p.establish());
    p.script.resume_errors = [ApiError::Internal, ApiError::Throttled, ApiError::AccessDenied].into();
    p.break_transport(Role::Client);
    settle(&mut p);
    let calls: Vec<_> =
        p.api_calls.iter().filter(|(_, c)| matches!(c, ApiCall::ResumeSession { .. })).collect();
    assert_eq!(calls.len(), 4);
    assert!(p.client.is_connected());
}

#[test]
fn null_token_on_resume_ends_the_session_as_timed_out() {
    let mut p = conformant();
    assert!(p.establish());
    p.script.null_token = true;
    p.break_transport(Role::Client);
    settle(&mut p);
    assert_eq!(p.client.end_reason(), Some(&EndReason::TimedOut));
}

#[test]
fn terminated_session_cannot_be_resumed() {
    let mut p = conformant();
    assert!(p.establish());
    p.close_session("bye");
    p.step();
    p.break_transport(Role::Client);
    settle(&mut p);
    assert!(p.client.is_ended());
}

#[test]
fn channel_closed_ends_both_sides() {
    let mut p = conformant();
    assert!(p.establish());
    p.close_session("Session terminated by user");
    settle(&mut p);
    let closed = EndReason::ChannelClosed { output: "Session terminated by user".into() };
    assert_eq!(p.client.end_reason(), Some(&closed));
    assert_eq!(p.agent.end_reason(), Some(&closed));
}

#[test]
fn port_session_terminate_sends_the_flag() {
    let mut p = Pair::with_kind(
        Behaviour::conformant(Role::Client),
        Behaviour::conformant(Role::Agent),
        SessionKind::Port,
        4,
    );
    assert!(p.establish());
    let now = p.now;
    p.client.terminate(now);
    settle(&mut p);
    assert!(p.events(Role::Agent).contains(&Event::Flag { value: 2 }));
    assert_eq!(p.client.end_reason(), Some(&EndReason::Terminated));
}

#[test]
fn shell_terminate_calls_the_api() {
    let mut p = conformant();
    assert!(p.establish());
    let now = p.now;
    p.client.terminate(now);
    settle(&mut p);
    assert!(p.api_calls.iter().any(|(_, c)| matches!(c, ApiCall::TerminateSession { .. })));
    assert_eq!(p.client.end_reason(), Some(&EndReason::Terminated));
}

#[test]
fn exit_code_then_drain_then_terminating() {
    let mut p = Pair::with_kind(
        Behaviour::conformant(Role::Client),
        Behaviour::conformant(Role::Agent),
        SessionKind::NonInteractiveCommands,
        5,
    );
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"done\n").unwrap();
    let now = p.now;
    p.agent.finish(now, Some(3));
    settle(&mut p);
    assert!(p.events(Role::Client).contains(&Event::ExitCode { code: 3 }));
    assert_eq!(p.agent.end_reason(), Some(&EndReason::Finished { exit_code: Some(3) }));
    let states: Vec<String> = p
        .wire_log
        .iter()
        .filter_map(|(_, _, b)| {
            let w = decode(b).ok()?;
            (w.message_type == MessageType::AgentSessionState).then(|| {
                serde_json::from_slice::<ssm_wire::payload::AgentSessionState>(w.payload)
                    .unwrap()
                    .session_state
            })
        })
        .collect();
    assert_eq!(states, ["Connected", "Terminating"]);
}

#[test]
fn digest_mismatch_is_dropped_and_reported() {
    let mut p = conformant();
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"x").unwrap();
    let last = p.in_flight(Role::Client)[0].bytes.len() - 1;
    p.in_flight(Role::Client)[0].bytes[last] ^= 1;
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ x", "dropped copy replaced by the retransmission");
    assert!(violations(&p, Role::Client).contains(&Req::Frame008));
}

#[test]
fn malformed_frame_is_reported_and_reading_continues() {
    let mut p = conformant();
    assert!(p.establish());
    p.inject_bytes(Role::Client, vec![0; 118]);
    p.send(Role::Agent, PayloadType::OUTPUT, b"after").unwrap();
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ after");
    assert!(violations(&p, Role::Client).contains(&Req::Frame010));
}

#[test]
fn reference_client_stops_reading_after_a_frame_that_panics_its_decoder() {
    let mut p = Pair::new(Behaviour::plugin_2024(), Behaviour::agent_2024(), 6);
    assert!(p.establish());
    p.inject_bytes(Role::Client, vec![0; 118]);
    p.run_until(p.now + Duration::from_millis(100));
    p.send(Role::Agent, PayloadType::OUTPUT, b"after").unwrap();
    p.run_until(p.now + Duration::from_secs(5));
    assert_eq!(p.received(Role::Client), b"$ ");
    assert!(p.events(Role::Client).contains(&Event::Note(Note::ReceiveLoopDied)));
}

/// aws/session-manager-plugin #117 / #139: the plugin never re-acknowledges a duplicate, and
/// both references retransmit only the head of their buffer. One lost client ack followed by
/// one lost agent frame stalls the client-bound stream for good.
fn lost_ack_then_lost_frame(client: Behaviour, agent: Behaviour) -> Pair {
    let mut p = Pair::new(client, agent, 7);
    assert!(p.establish());
    p.send(Role::Agent, PayloadType::OUTPUT, b"1").unwrap();
    // Let seq 1 reach the client and drop the client's ack of it.
    loop {
        p.step();
        if let Some(i) = p.find_in_flight(Role::Agent, |w| is_ack_for(w, 1)) {
            p.in_flight(Role::Agent).remove(i);
            break;
        }
    }
    p.send(Role::Agent, PayloadType::OUTPUT, b"2").unwrap();
    let i = p.find_in_flight(Role::Client, |w| is_stream(w, 2)).unwrap();
    p.in_flight(Role::Client).remove(i);
    p.run_until(p.now + Duration::from_secs(60));
    p
}

#[test]
fn reference_pair_deadlocks_after_lost_ack_then_lost_frame() {
    let p = lost_ack_then_lost_frame(Behaviour::plugin_2024(), Behaviour::agent_2024());
    assert_eq!(p.received(Role::Client), b"$ 1", "seq 2 is never retransmitted");
    assert_eq!(p.agent.unacked(), 2, "seq 1 is stuck at the head, seq 2 behind it");
    let resends_of_1 = p
        .events(Role::Agent)
        .iter()
        .filter(|e| matches!(e, Event::Note(Note::Retransmit { seq: 1, .. })))
        .count();
    assert!(resends_of_1 > 50, "the head is resent forever ({resends_of_1})");
}

#[test]
fn conformant_pair_recovers_from_the_same_faults() {
    let p = lost_ack_then_lost_frame(Behaviour::conformant(Role::Client), Behaviour::conformant(Role::Agent));
    assert_eq!(p.received(Role::Client), b"$ 12");
    assert_eq!(p.agent.unacked(), 0);
}

#[test]
fn plugin_gives_up_resume_after_six_calls_and_never_tries_again() {
    let mut p = Pair::new(Behaviour::plugin_2024(), Behaviour::agent_2024(), 8);
    assert!(p.establish());
    p.script.resume_errors = std::iter::repeat_n(ApiError::Internal, 100).collect();
    p.break_transport(Role::Client);
    p.run_until(p.now + Duration::from_secs(120));
    let calls = p.api_calls.iter().filter(|(_, c)| matches!(c, ApiCall::ResumeSession { .. })).count();
    assert_eq!(calls, 6);
    assert!(!p.client.is_connected());
    assert!(!p.client.is_ended(), "the reference hangs instead of ending");
    assert!(p.events(Role::Client).contains(&Event::Note(Note::ReconnectExhausted { calls: 6 })));
}

#[test]
fn conformant_client_keeps_resuming_until_the_service_answers() {
    let mut p = conformant();
    assert!(p.establish());
    p.script.resume_errors = std::iter::repeat_n(ApiError::Internal, 20).collect();
    p.break_transport(Role::Client);
    settle(&mut p);
    assert!(p.client.is_connected());
    let calls = p.api_calls.iter().filter(|(_, c)| matches!(c, ApiCall::ResumeSession { .. })).count();
    assert_eq!(calls, 21);
}

#[test]
fn plugin_input_during_outage_is_fatal() {
    let mut p = Pair::new(Behaviour::plugin_2024(), Behaviour::agent_2024(), 9);
    assert!(p.establish());
    p.break_transport(Role::Client);
    assert_eq!(p.send(Role::Client, PayloadType::OUTPUT, b"x"), Err(ssm_channel::SendError::TransportDown));
    assert_eq!(p.client.end_reason(), Some(&EndReason::InputDuringOutage));
}

#[test]
fn plugin_resends_the_head_every_tick_after_the_first_timeout() {
    let mut p = Pair::new(Behaviour::plugin_2024(), Behaviour::agent_2024(), 10);
    assert!(p.establish());
    p.send(Role::Client, PayloadType::OUTPUT, b"x").unwrap();
    // Black-hole the agent: no acks come back.
    let start = p.now;
    while p.now < start + Duration::from_secs(2) {
        p.in_flight(Role::Agent).clear();
        p.step();
    }
    let resends: Vec<Time> = p
        .wire_log
        .iter()
        .filter(|(_, r, b)| *r == Role::Client && decode(b).is_ok_and(|w| is_stream(&w, 0)))
        .map(|(t, _, _)| *t)
        .collect();
    // First send, then every 100 ms tick once 200 ms have passed: about 18 copies in 2 s.
    assert!(resends.len() >= 16, "{} copies", resends.len());
    for w in resends.windows(2).skip(1) {
        assert_eq!(w[1].since(w[0]), Duration::from_millis(100));
    }
}

#[test]
fn conformant_resends_back_off_by_the_rto() {
    let mut p = conformant();
    assert!(p.establish());
    p.send(Role::Client, PayloadType::OUTPUT, b"x").unwrap();
    let start = p.now;
    while p.now < start + Duration::from_secs(2) {
        p.in_flight(Role::Agent).clear();
        p.step();
    }
    let copies = p
        .wire_log
        .iter()
        .filter(|(_, r, b)| *r == Role::Client && decode(b).is_ok_and(|w| is_stream(&w, 0)))
        .count();
    assert!((4..=10).contains(&copies), "{copies} copies: the timer restarts after each resend (RTX-004)");
}

#[test]
fn rto_follows_measured_round_trips() {
    let mut p = conformant();
    p.latency = Duration::from_millis(100);
    assert!(p.establish());
    for i in 0..20u8 {
        p.send(Role::Client, PayloadType::OUTPUT, &[b'a' + i]).unwrap();
        settle(&mut p);
    }
    // RTT 200 ms: SRTT converges to 200 ms, RTO to SRTT + 10 ms.
    let rto = p.client.rto();
    assert!(rto > Duration::from_millis(200) && rto < Duration::from_millis(260), "{rto:?}");
}

// ------------------------------------------------------------------ KMS encryption (HS-006)

fn encrypted(kind: SessionKind, seed: u64) -> Pair {
    Pair::encrypted(Behaviour::conformant(Role::Client), Behaviour::conformant(Role::Agent), kind, seed)
}

fn stream_frames(p: &Pair, role: Role) -> Vec<ssm_wire::Frame> {
    frames_sent_by(p, role).into_iter().filter(|f| f.message_type.is_stream()).collect()
}

/// The first copy of each stream message `role` wrote, by sequence number.
fn first_copies(p: &Pair, role: Role) -> Vec<ssm_wire::Frame> {
    let mut seen = std::collections::BTreeSet::new();
    stream_frames(p, role).into_iter().filter(|f| seen.insert(f.sequence_number)).collect()
}

/// The data key, recovered from the client's HandshakeResponse with the harness's KMS and the
/// session's encryption context, as the agent does.
fn data_key(p: &Pair) -> DataKey {
    let resp = first_copies(p, Role::Client)
        .into_iter()
        .find(|f| f.payload_type == PayloadType::HANDSHAKE_RESPONSE)
        .expect("a HandshakeResponse");
    let body: HandshakeResponse = serde_json::from_slice(&resp.payload).unwrap();
    let action = body
        .processed_client_actions
        .unwrap()
        .into_iter()
        .find(|a| a.action_type == action_type::KMS_ENCRYPTION)
        .expect("a KMSEncryption action");
    assert_eq!(action.action_status, 1, "{action:?}");
    let result = action.as_kms_encryption().expect("a KMSEncryption result");
    assert_eq!(result.kms_cipher_text_hash, None);
    let ctx = EncryptionContext { session_id: "harness-0123456789abcdef0", target_id: "i-0123456789abcdef0" };
    Kms::harness().decrypt(&result.kms_cipher_text_key, &ctx).expect("the blob decrypts")
}

#[test]
fn encrypted_shell_handshakes_request_challenge_complete() {
    let mut p = encrypted(SessionKind::Shell, 11);
    assert!(p.establish());
    settle(&mut p);
    // Agent: seq 0 HandshakeRequest (SYN) with SessionType and KMSEncryption, seq 1 the
    // challenge, seq 2 HandshakeComplete (6.4 A), then the prompt.
    let agent = first_copies(&p, Role::Agent);
    assert_eq!(
        agent.iter().map(|f| (f.sequence_number, f.payload_type)).collect::<Vec<_>>(),
        [
            (0, PayloadType::HANDSHAKE_REQUEST),
            (1, PayloadType::ENC_CHALLENGE_REQUEST),
            (2, PayloadType::HANDSHAKE_COMPLETE),
            (3, PayloadType::OUTPUT)
        ]
    );
    assert_eq!(agent[0].flags, HeaderFlags::SYN);
    let request: HandshakeRequest = serde_json::from_slice(&agent[0].payload).unwrap();
    let actions = request.requested_client_actions.unwrap();
    assert_eq!(
        actions.iter().map(|a| a.action_type.as_str()).collect::<Vec<_>>(),
        ["SessionType", "KMSEncryption"]
    );
    assert_eq!(actions[0].as_session_type().unwrap().session_type, "Standard_Stream");
    let params = actions[1].as_kms_encryption().unwrap();
    assert_eq!(params.kms_key_id, Kms::HARNESS_KEY_ID);
    // Client: seq 0 HandshakeResponse, seq 1 the answer, seq 2 Size once ready.
    let client = first_copies(&p, Role::Client);
    assert_eq!(
        client.iter().map(|f| (f.sequence_number, f.payload_type)).collect::<Vec<_>>(),
        [(0, PayloadType::HANDSHAKE_RESPONSE), (1, PayloadType::ENC_CHALLENGE_RESPONSE)]
    );
    // The challenge: 64 bytes sealed with the agent key; the answer, the same bytes sealed
    // with the client key under a different nonce.
    let key = data_key(&p);
    let challenge: EncChallenge = serde_json::from_slice(&agent[1].payload).unwrap();
    let answer: EncChallenge = serde_json::from_slice(&client[1].payload).unwrap();
    assert_eq!(challenge.challenge.len(), kms::NONCE_LEN + kms::CHALLENGE_LEN + kms::TAG_LEN);
    let plain = kms::open(&key.agent_key(), &challenge.challenge).unwrap();
    assert_eq!(plain.len(), 64);
    assert_eq!(kms::open(&key.client_key(), &answer.challenge).unwrap(), plain);
    assert!(kms::open(&key.client_key(), &challenge.challenge).is_err());
    assert_ne!(challenge.challenge[..kms::NONCE_LEN], answer.challenge[..kms::NONCE_LEN]);
    // HandshakeComplete was written only after the answer.
    let written_at = |role: Role, pt: PayloadType| {
        p.wire_log
            .iter()
            .position(|(_, r, b)| {
                *r == role && decode(b).is_ok_and(|w| w.message_type.is_stream() && w.payload_type == pt)
            })
            .unwrap()
    };
    assert!(
        written_at(Role::Client, PayloadType::ENC_CHALLENGE_RESPONSE)
            < written_at(Role::Agent, PayloadType::HANDSHAKE_COMPLETE)
    );
    assert!(p.events(Role::Client).contains(&Event::SessionReady { session_type: "Standard_Stream".into() }));
    assert_eq!(p.received(Role::Client), b"$ ");
    assert_eq!(violations(&p, Role::Client), []);
    assert_eq!(violations(&p, Role::Agent), []);
}

#[test]
fn encrypted_data_round_trip_is_ciphertext_on_the_wire() {
    let mut p = encrypted(SessionKind::Shell, 12);
    assert!(p.establish());
    let size = br#"{"cols":80,"rows":24}"#;
    p.send(Role::Client, PayloadType::SIZE, size).unwrap();
    p.send(Role::Client, PayloadType::OUTPUT, b"cat /etc/secret\r").unwrap();
    p.send(Role::Client, PayloadType::OUTPUT, b"cat /etc/secret\r").unwrap();
    p.send(Role::Agent, PayloadType::OUTPUT, b"top secret output\n").unwrap();
    p.send(Role::Agent, PayloadType::STDERR, b"secret warning\n").unwrap();
    settle(&mut p);
    assert_eq!(p.received(Role::Agent), b"cat /etc/secret\rcat /etc/secret\r");
    assert_eq!(p.received(Role::Client), b"$ top secret output\nsecret warning\n");
    assert!(p
        .events(Role::Agent)
        .iter()
        .any(|e| matches!(e, Event::Data { payload_type: 3, bytes, .. } if bytes == size)));
    let key = data_key(&p);
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    // Client to agent: Output sealed with the client key (bytes 32..63), Size in the clear.
    let client = first_copies(&p, Role::Client);
    let outputs: Vec<_> = client.iter().filter(|f| f.payload_type == PayloadType::OUTPUT).collect();
    assert_eq!(outputs.len(), 2);
    for f in &outputs {
        assert!(!contains(&f.payload, b"secret"), "plaintext on the wire");
        assert_eq!(f.payload.len(), kms::NONCE_LEN + 16 + kms::TAG_LEN);
        assert_eq!(kms::open(&key.client_key(), &f.payload).unwrap(), b"cat /etc/secret\r");
        assert!(kms::open(&key.agent_key(), &f.payload).is_err(), "sealed with the wrong half");
    }
    assert_ne!(outputs[0].payload, outputs[1].payload, "a fresh nonce per message");
    assert_eq!(client.iter().find(|f| f.payload_type == PayloadType::SIZE).unwrap().payload, size);
    // Agent to client: Output and StdErr sealed with the agent key (bytes 0..31).
    let agent = first_copies(&p, Role::Agent);
    for (pt, text) in
        [(PayloadType::OUTPUT, &b"top secret output\n"[..]), (PayloadType::STDERR, b"secret warning\n")]
    {
        let f = agent.iter().find(|f| f.payload_type == pt && f.payload.len() > 30).unwrap();
        assert!(!contains(&f.payload, b"secret"));
        assert_eq!(kms::open(&key.agent_key(), &f.payload).unwrap(), text);
    }
    // Every stream payload on the wire: nothing of the plaintext anywhere.
    for (_, _, b) in &p.wire_log {
        assert!(!contains(b, b"secret"), "plaintext in a frame");
    }
    assert_eq!(violations(&p, Role::Client), []);
    assert_eq!(violations(&p, Role::Agent), []);
}

#[test]
fn encrypted_exit_code_reaches_the_client() {
    let mut p = encrypted(SessionKind::NonInteractiveCommands, 13);
    assert!(p.establish());
    let now = p.now;
    p.agent.finish(now, Some(3));
    settle(&mut p);
    assert!(p.events(Role::Client).contains(&Event::ExitCode { code: 3 }));
    let f =
        first_copies(&p, Role::Agent).into_iter().find(|f| f.payload_type == PayloadType::EXIT_CODE).unwrap();
    assert_ne!(f.payload, b"EXIT_CODE: 3");
    assert_eq!(kms::open(&data_key(&p).agent_key(), &f.payload).unwrap(), b"EXIT_CODE: 3");
    assert_eq!(p.agent.end_reason(), Some(&EndReason::Finished { exit_code: Some(3) }));
}

/// Replaces the payload of the first in-flight frame towards `to` of payload type `pt`
/// (re-encoded, so the digest matches).
fn rewrite_in_flight(p: &mut Pair, to: Role, pt: PayloadType, f: impl Fn(&[u8]) -> Vec<u8>) -> bool {
    let Some(i) = p.find_in_flight(to, |w| w.message_type.is_stream() && w.payload_type == pt) else {
        return false;
    };
    let q = p.in_flight(to);
    let mut frame = decode(&q[i].bytes).unwrap().to_frame();
    frame.payload = f(&frame.payload);
    q[i].bytes = frame.encode_with(&ssm_wire::Overrides::default());
    true
}

fn wrong_answer_fails_the_session(forge: impl Fn(&DataKey, &[u8]) -> Vec<u8>, expect: &str) {
    let mut p = encrypted(SessionKind::Shell, 14);
    let mut rewritten = false;
    for _ in 0..200 {
        p.step();
        if !rewritten
            && p.find_in_flight(Role::Agent, |w| w.payload_type == PayloadType::ENC_CHALLENGE_RESPONSE)
                .is_some()
        {
            let key = data_key(&p);
            rewritten = rewrite_in_flight(&mut p, Role::Agent, PayloadType::ENC_CHALLENGE_RESPONSE, |body| {
                let answer: EncChallenge = serde_json::from_slice(body).unwrap();
                let plain = kms::open(&key.client_key(), &answer.challenge).unwrap();
                payload::to_go_json(&EncChallenge { challenge: forge(&key, &plain) })
            });
        }
        if p.agent.is_ended() {
            break;
        }
    }
    assert!(rewritten);
    match p.agent.end_reason() {
        Some(EndReason::EncryptionFailed { detail }) => assert!(detail.contains(expect), "{detail}"),
        other => panic!("the agent ended {other:?}"),
    }
    assert!(violations(&p, Role::Agent).contains(&Req::Hs006));
    assert!(!p.agent.is_ready() && !p.client.is_ready());
    assert!(
        !stream_frames(&p, Role::Agent).iter().any(|f| f.payload_type == PayloadType::HANDSHAKE_COMPLETE),
        "no HandshakeComplete after a failed challenge"
    );
}

#[test]
fn a_wrong_challenge_answer_fails_the_session() {
    // Different bytes, sealed with the right key.
    wrong_answer_fails_the_session(
        |key, plain| {
            let mut other = plain.to_vec();
            other[0] ^= 1;
            kms::seal(&key.client_key(), [9; kms::NONCE_LEN], &other)
        },
        "different bytes",
    );
    // The right bytes, sealed with the agent's half of the key.
    wrong_answer_fails_the_session(
        |key, plain| kms::seal(&key.agent_key(), [9; kms::NONCE_LEN], plain),
        "does not decrypt with the client key",
    );
}

#[test]
fn an_unanswered_challenge_times_out_after_15_s() {
    let mut p = encrypted(SessionKind::Shell, 15);
    // Every copy of the client's answer is lost.
    for _ in 0..2000 {
        p.step();
        while let Some(i) =
            p.find_in_flight(Role::Agent, |w| w.payload_type == PayloadType::ENC_CHALLENGE_RESPONSE)
        {
            p.in_flight(Role::Agent).remove(i);
        }
        if p.agent.is_ended() {
            break;
        }
    }
    assert_eq!(p.agent.end_reason(), Some(&EndReason::ChallengeTimeout));
    let challenged_at = p
        .wire_log
        .iter()
        .find(|(_, r, b)| {
            *r == Role::Agent && decode(b).is_ok_and(|w| w.payload_type == PayloadType::ENC_CHALLENGE_REQUEST)
        })
        .map(|(t, _, _)| *t)
        .unwrap();
    assert_eq!(p.now.since(challenged_at), ssm_channel::HANDSHAKE_TIMEOUT);
    assert!(!stream_frames(&p, Role::Agent)
        .iter()
        .any(|f| f.payload_type == PayloadType::HANDSHAKE_COMPLETE));
    assert_eq!(violations(&p, Role::Agent), [], "a lost answer is not the client's fault");
}

#[test]
fn a_client_without_kms_declines_and_the_agent_fails_the_handshake() {
    let (ccfg, mut acfg) = Pair::configs(
        Behaviour::conformant(Role::Client),
        Behaviour::conformant(Role::Agent),
        SessionKind::Shell,
        16,
    );
    acfg.kms = Some(Kms::harness());
    let mut p = Pair::from_configs(ccfg, acfg);
    p.flush();
    p.run_until(Time::from_millis(2000));
    match p.agent.end_reason() {
        Some(EndReason::HandshakeFailed { detail }) => {
            assert!(detail.contains("KMSEncryption action status 2"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn port_sessions_are_never_encrypted() {
    let mut p = encrypted(SessionKind::Port, 17);
    assert!(p.establish());
    let agent = first_copies(&p, Role::Agent);
    assert_eq!(agent[1].payload_type, PayloadType::HANDSHAKE_COMPLETE);
    let request: HandshakeRequest = serde_json::from_slice(&agent[0].payload).unwrap();
    assert_eq!(request.requested_client_actions.unwrap().len(), 1);
    p.send(Role::Client, PayloadType::OUTPUT, b"GET /").unwrap();
    settle(&mut p);
    assert_eq!(first_copies(&p, Role::Client).last().unwrap().payload, b"GET /");
}

#[test]
fn an_undecryptable_payload_is_reported_not_delivered_and_recovered_by_retransmission() {
    let mut p = encrypted(SessionKind::Shell, 18);
    assert!(p.establish());
    settle(&mut p);
    p.send(Role::Agent, PayloadType::OUTPUT, b"hello").unwrap();
    // The copy in flight is re-sealed under another key (its digest is valid).
    assert!(rewrite_in_flight(&mut p, Role::Client, PayloadType::OUTPUT, |_| kms::seal(
        &[1; 32], [2; 12], b"hello"
    )));
    settle(&mut p);
    assert_eq!(p.received(Role::Client), b"$ hello", "delivered once, from the retransmission");
    assert!(violations(&p, Role::Client).contains(&Req::Hs006));
    assert!(p.events(Role::Agent).iter().any(|e| matches!(e, Event::Note(Note::Retransmit { .. }))));
}
