//! One test per mutant: the role the bug applies to runs the mutant, the other side is
//! conformant, the test provokes the situation the bug is about and asserts the faulty behaviour.
//! Each test then runs the same provocation on a conformant pair and asserts that the fault does
//! not show, so that a mutant that silently behaves correctly (or a test that cannot fail) is
//! caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use ssm_channel::pair::Pair;
use ssm_channel::{
    ApiCall, ApiError, Behaviour, EndReason, Event, Impl, Mutant, Note, PayloadType, Req, Role, SendError,
};
use ssm_wire::payload::AcknowledgeContent;
use ssm_wire::{decode, MessageType, WireFrame};
use uuid::Uuid;

/// Every mutant with a dedicated test below.
const TESTED: &[Mutant] = &[
    Mutant::ResetSeqOnResume,
    Mutant::ReuseOldToken,
    Mutant::NoRetransmitAfterResume,
    Mutant::DeliverDuplicates,
    Mutant::DropEarlyFrames,
    Mutant::AckBeforeReady,
    Mutant::UnswappedMessageId,
    Mutant::SkipDigest,
    Mutant::AckWrongSequence,
    Mutant::IgnoreChannelClosed,
    Mutant::ResumeOnce,
    Mutant::ResumeTerminatedForever,
    Mutant::NewIdOnRetransmit,
    Mutant::IgnorePause,
    Mutant::NeverRetransmit,
    Mutant::EmptyPayloads,
    Mutant::SwappedKeyHalves,
];

#[test]
fn every_mutant_has_a_dedicated_test() {
    let tested: BTreeSet<Mutant> = TESTED.iter().copied().collect();
    let all: BTreeSet<Mutant> = Mutant::ALL.iter().copied().collect();
    assert_eq!(tested.len(), TESTED.len(), "a mutant is listed twice in TESTED");
    let untested: Vec<_> = all.difference(&tested).map(|m| m.name()).collect();
    let unknown: Vec<_> = tested.difference(&all).map(|m| m.name()).collect();
    assert!(untested.is_empty(), "mutants without a dedicated test: {untested:?}");
    assert!(unknown.is_empty(), "TESTED names mutants not in Mutant::ALL: {unknown:?}");
}

// ------------------------------------------------------------------ helpers

/// A shell pair where `under_test` runs `bug` (or is conformant when `bug` is `None`) and the
/// other side is conformant.
fn pair(bug: Option<Mutant>, under_test: Role, seed: u64) -> Pair {
    if let Some(m) = bug {
        assert!(m.roles().contains(&under_test), "{m} does not apply to the {under_test}");
    }
    let b = |r: Role| match bug {
        Some(m) if r == under_test => Behaviour::for_impl(&Impl::Mutant(m), r),
        _ => Behaviour::conformant(r),
    };
    let p = Pair::new(b(Role::Client), b(Role::Agent), seed);
    assert_eq!(p.client.behaviour().bug, if under_test == Role::Client { bug } else { None });
    assert_eq!(p.agent.behaviour().bug, if under_test == Role::Agent { bug } else { None });
    p
}

/// Runs `check(bug, role)` for every role of `m` with the mutant and again with the conformant
/// machine in its place.
fn for_each_role(m: Mutant, check: impl Fn(Option<Mutant>, Role)) {
    for &role in m.roles() {
        check(Some(m), role);
        check(None, role);
    }
}

fn label(bug: Option<Mutant>, role: Role) -> String {
    match bug {
        Some(m) => format!("mutant:{m} as {role}"),
        None => format!("conformant {role}"),
    }
}

fn established(bug: Option<Mutant>, role: Role, seed: u64) -> Pair {
    let mut p = pair(bug, role, seed);
    assert!(p.establish(), "{}: the session was not established", label(bug, role));
    // Let the acks of the establishment land (a mutant may never settle, so no drive_bounded).
    run_for(&mut p, Duration::from_secs(1));
    p
}

fn settle(p: &mut Pair) {
    let deadline = p.now.as_nanos() / 1_000_000_000 + 600;
    p.drive_bounded(100_000, Duration::from_secs(deadline)).expect("settles");
}

fn run_for(p: &mut Pair, d: Duration) {
    let until = p.now + d;
    p.run_until(until);
}

fn ack_of(w: &WireFrame<'_>) -> Option<AcknowledgeContent> {
    (w.message_type == MessageType::Acknowledge).then(|| serde_json::from_slice(w.payload).ok()).flatten()
}

fn is_stream(w: &WireFrame<'_>, seq: i64) -> bool {
    w.message_type.is_stream() && w.sequence_number == seq
}

/// Frames `role` wrote at or after wire-log index `from`, decoded to owned frames, with the raw
/// bytes.
fn written_by(p: &Pair, role: Role, from: usize) -> Vec<(ssm_wire::Frame, Vec<u8>)> {
    p.wire_log[from..]
        .iter()
        .filter(|(_, r, _)| *r == role)
        .map(|(_, _, b)| (decode(b).unwrap().to_frame(), b.clone()))
        .collect()
}

fn stream_frames(p: &Pair, role: Role, from: usize) -> Vec<(ssm_wire::Frame, Vec<u8>)> {
    written_by(p, role, from).into_iter().filter(|(f, _)| f.message_type.is_stream()).collect()
}

/// Sequence numbers named by the acks `role` wrote at or after index `from`.
fn acks_written(p: &Pair, role: Role, from: usize) -> Vec<i64> {
    p.wire_log[from..]
        .iter()
        .filter(|(_, r, _)| *r == role)
        .filter_map(|(_, _, b)| ack_of(&decode(b).ok()?))
        .map(|a| a.sequence_number)
        .collect()
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

fn retransmits(p: &Pair, role: Role) -> usize {
    p.events(role).iter().filter(|e| matches!(e, Event::Note(Note::Retransmit { .. }))).count()
}

fn resume_calls(p: &Pair) -> usize {
    p.api_calls.iter().filter(|(_, c)| matches!(c, ApiCall::ResumeSession { .. })).count()
}

/// What the receiver of `sender`'s stream has received so far, minus the prompt the agent sends
/// to establish a shell.
fn delivered_from(p: &Pair, sender: Role) -> Vec<u8> {
    let got = p.received(sender.peer());
    match sender {
        Role::Agent => got.strip_prefix(b"$ ").expect("the prompt arrived first").to_vec(),
        Role::Client => got.to_vec(),
    }
}

/// Steps until an ack naming `seq` is in flight towards `to`, and removes it.
fn drop_ack_towards(p: &mut Pair, to: Role, seq: i64) {
    for _ in 0..1000 {
        p.step();
        if let Some(i) = p.find_in_flight(to, |w| ack_of(w).is_some_and(|a| a.sequence_number == seq)) {
            p.in_flight(to).remove(i);
            return;
        }
    }
    panic!("no ack for {seq} towards the {to}");
}

// ------------------------------------------------------------------ one test per mutant

#[test]
fn reset_seq_on_resume() {
    for_each_role(Mutant::ResetSeqOnResume, |bug, role| {
        let mut p = established(bug, role, 11);
        p.send(role, PayloadType::OUTPUT, b"a").unwrap();
        settle(&mut p);
        let before = p.machine_next_seq(role);
        assert_eq!(before, if role == Role::Agent { 2 } else { 1 });
        p.break_transport(role);
        settle(&mut p);
        assert!(p.is_connected(role), "{}: resumed", label(bug, role));
        let mark = p.wire_log.len();
        let seq = p.send(role, PayloadType::OUTPUT, b"b").unwrap();
        settle(&mut p);
        let sent = stream_frames(&p, role, mark);
        let first = sent.first().map(|(f, _)| f.sequence_number);
        if bug.is_some() {
            assert_eq!((seq, first), (0, Some(0)), "the counter restarted at 0");
            // The peer sees an old sequence number with new content: a duplicate it does not
            // deliver, and a retransmission that differs from the first copy (SEQ-003).
            assert_eq!(delivered_from(&p, role), b"a");
            assert!(violations(&p, role.peer()).contains(&Req::Seq003), "{:?}", violations(&p, role.peer()));
        } else {
            assert_eq!((seq, first), (before, Some(before)), "the counter continued (SEQ-002)");
            assert_eq!(delivered_from(&p, role), b"ab");
            assert_eq!(violations(&p, role.peer()), []);
        }
    });
}

#[test]
fn reuse_old_token() {
    for_each_role(Mutant::ReuseOldToken, |bug, role| {
        let mut p = established(bug, role, 12);
        p.break_transport(role);
        run_for(&mut p, Duration::from_secs(30));
        let client_opens: Vec<&str> =
            p.opens.iter().filter(|(r, _)| *r == Role::Client).map(|(_, t)| t.as_str()).collect();
        assert!(client_opens.len() >= 2, "{}: {client_opens:?}", label(bug, role));
        assert_eq!(client_opens[0], "client-token-0");
        if bug.is_some() {
            // Every reopen presents the StartSession token; the service refuses each one and
            // the client keeps resuming without ever getting a working channel.
            assert!(client_opens[1..].iter().all(|t| *t == "client-token-0"), "{client_opens:?}");
            assert!(resume_calls(&p) >= 3, "{} ResumeSession calls", resume_calls(&p));
            assert!(!p.client.is_connected());
            assert_eq!(p.send(Role::Agent, PayloadType::OUTPUT, b"z").map(|_| ()), Ok(()));
            run_for(&mut p, Duration::from_secs(2));
            assert_eq!(p.received(Role::Client), b"$ ");
        } else {
            assert_eq!(client_opens[1..], ["client-token-1"], "the resumed token (OPEN-003)");
            assert_eq!(resume_calls(&p), 1);
            assert!(p.client.is_connected());
            p.send(Role::Agent, PayloadType::OUTPUT, b"z").unwrap();
            settle(&mut p);
            assert_eq!(p.received(Role::Client), b"$ z");
        }
    });
}

#[test]
fn no_retransmit_after_resume() {
    for_each_role(Mutant::NoRetransmitAfterResume, |bug, role| {
        let mut p = established(bug, role, 13);
        p.send(role, PayloadType::OUTPUT, b"lost").unwrap();
        // The frame dies with the websocket.
        let i = p.find_in_flight(role.peer(), |w| w.message_type.is_stream()).unwrap();
        p.in_flight(role.peer()).remove(i);
        assert_eq!(p.unacked(role), 1);
        p.break_transport(role);
        let unacked = p.unacked(role);
        settle(&mut p);
        assert!(p.is_connected(role), "{}: resumed", label(bug, role));
        if bug.is_some() {
            assert_eq!(unacked, 0, "the outgoing buffer was forgotten");
            assert_eq!(delivered_from(&p, role), b"", "never retransmitted (RES-006)");
        } else {
            assert_eq!(unacked, 1);
            assert_eq!(delivered_from(&p, role), b"lost");
        }
    });
}

#[test]
fn deliver_duplicates() {
    for_each_role(Mutant::DeliverDuplicates, |bug, role| {
        // The mutant receives: its peer sends.
        let sender = role.peer();
        let mut p = established(bug, role, 14);
        p.send(sender, PayloadType::OUTPUT, b"once").unwrap();
        let q = p.in_flight(role);
        assert_eq!(q.len(), 1);
        let dup = q[0].clone();
        q.push_back(dup);
        settle(&mut p);
        let want: &[u8] = if bug.is_some() { b"onceonce" } else { b"once" };
        assert_eq!(delivered_from(&p, sender), want, "{}", label(bug, role));
    });
}

#[test]
fn drop_early_frames() {
    for_each_role(Mutant::DropEarlyFrames, |bug, role| {
        let sender = role.peer();
        let mut p = established(bug, role, 15);
        let mark = p.wire_log.len();
        let first = p.send(sender, PayloadType::OUTPUT, b"A").unwrap();
        p.send(sender, PayloadType::OUTPUT, b"B").unwrap();
        let last = p.send(sender, PayloadType::OUTPUT, b"C").unwrap();
        let q = p.in_flight(role);
        assert_eq!(q.len(), 3);
        q.swap(0, 2);
        settle(&mut p);
        // Eventually delivered in order either way.
        assert_eq!(delivered_from(&p, sender), b"ABC", "{}", label(bug, role));
        let acks = acks_written(&p, role, mark);
        if bug.is_some() {
            // C and B arrived early and were dropped without an ack; A was acked first and
            // the sender had to retransmit the other two.
            assert_eq!(acks.first(), Some(&first), "{acks:?}");
            assert!(retransmits(&p, sender) >= 2, "{} retransmits", retransmits(&p, sender));
        } else {
            assert_eq!(acks[..3], [last, last - 1, first], "early frames acked on arrival (ACK-002)");
            assert_eq!(retransmits(&p, sender), 0);
        }
    });
}

#[test]
fn ack_before_ready() {
    for_each_role(Mutant::AckBeforeReady, |bug, role| {
        let sender = role.peer();
        let mut p = established(bug, role, 16);
        p.mach_mut(role).set_consumer_ready(false);
        let mark = p.wire_log.len();
        let seq = p.send(sender, PayloadType::OUTPUT, b"x").unwrap();
        run_for(&mut p, Duration::from_secs(1));
        let acks_while_not_ready = acks_written(&p, role, mark);
        p.mach_mut(role).set_consumer_ready(true);
        settle(&mut p);
        if bug.is_some() {
            assert_eq!(acks_while_not_ready, [seq], "acknowledged although not ready (ACK-007)");
            assert_eq!(delivered_from(&p, sender), b"", "and the data is lost (ORD-001)");
            assert_eq!(retransmits(&p, sender), 0);
        } else {
            assert_eq!(acks_while_not_ready, Vec::<i64>::new(), "{}", label(bug, role));
            assert!(retransmits(&p, sender) >= 1, "the sender retransmits until the consumer is ready");
            assert_eq!(delivered_from(&p, sender), b"x");
        }
    });
}

#[test]
fn unswapped_message_id() {
    for_each_role(Mutant::UnswappedMessageId, |bug, role| {
        let mut p = established(bug, role, 17);
        for i in 0..8u8 {
            p.send(role, PayloadType::OUTPUT, &[b'a' + i]).unwrap();
        }
        settle(&mut p);
        let frames = written_by(&p, role, 0);
        assert!(frames.len() >= 8);
        let is_v4 = |u: &Uuid| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122;
        let mut decoded_v4 = 0;
        for (f, bytes) in &frames {
            let raw = Uuid::from_slice(&bytes[ssm_wire::layout::MESSAGE_ID]).unwrap();
            if bug.is_some() {
                // The field holds the generated id in textual order, so what a reader decodes
                // is that id with its halves swapped.
                assert!(is_v4(&raw), "{raw} is the generated v4 id");
                assert_ne!(f.message_id, raw);
            } else {
                assert!(is_v4(&f.message_id), "{} decodes as the generated v4 id", f.message_id);
            }
            decoded_v4 += usize::from(is_v4(&f.message_id));
        }
        if bug.is_some() {
            assert!(decoded_v4 < frames.len(), "some decoded id is not a v4 UUID");
            // The peer acks the id it read, which is not the one the mutant generated.
            assert!(violations(&p, role).contains(&Req::Ack004), "{:?}", violations(&p, role));
        } else {
            assert_eq!(decoded_v4, frames.len());
            assert_eq!(violations(&p, role), []);
        }
        assert_eq!(delivered_from(&p, role), b"abcdefgh");
    });
}

#[test]
fn skip_digest() {
    for_each_role(Mutant::SkipDigest, |bug, role| {
        let mut p = pair(bug, role, 18);
        // A mutant agent's prompt is dropped by the client, so the session never becomes ready
        // on the client; a mutant client's acks are dropped by the agent, but it is ready.
        let ready = p.establish();
        assert_eq!(ready, !(bug.is_some() && role == Role::Agent), "{}", label(bug, role));
        if role == Role::Client {
            p.send(role, PayloadType::OUTPUT, b"x").unwrap();
        }
        run_for(&mut p, Duration::from_secs(2));
        let (f, bytes) = stream_frames(&p, role, 0).into_iter().next().expect("a stream frame");
        let w = decode(&bytes).unwrap();
        let peer_violations = violations(&p, role.peer());
        if bug.is_some() {
            assert_eq!(w.payload_digest, [0; 32], "PayloadDigest left zero (FRAME-007)");
            assert!(peer_violations.contains(&Req::Frame008), "{peer_violations:?}");
            assert_eq!(p.received(role.peer()), b"", "the peer drops every frame");
        } else {
            assert_eq!(w.payload_digest, ssm_wire::digest(&f.payload));
            assert_eq!(peer_violations, []);
            assert_eq!(delivered_from(&p, role), if role == Role::Client { &b"x"[..] } else { b"" });
        }
    });
}

#[test]
fn ack_wrong_sequence() {
    for_each_role(Mutant::AckWrongSequence, |bug, role| {
        let sender = role.peer();
        let mut p = established(bug, role, 19);
        let mark = p.wire_log.len();
        let seq = p.send(sender, PayloadType::OUTPUT, b"x").unwrap();
        run_for(&mut p, Duration::from_secs(1));
        let acks = acks_written(&p, role, mark);
        assert_eq!(delivered_from(&p, sender), b"x");
        if bug.is_some() {
            assert_eq!(acks.first(), Some(&(seq + 1)), "the ack names seq + 1 (ACK-004)");
            assert_eq!(p.unacked(sender), 1, "the sender never sees its message acknowledged");
            assert!(violations(&p, sender).contains(&Req::Ack004), "{:?}", violations(&p, sender));
        } else {
            assert_eq!(acks, [seq], "{}", label(bug, role));
            assert_eq!(p.unacked(sender), 0);
            assert_eq!(violations(&p, sender), []);
        }
    });
}

#[test]
fn ignore_channel_closed() {
    for_each_role(Mutant::IgnoreChannelClosed, |bug, role| {
        let mut p = established(bug, role, 20);
        p.close_session("Session terminated by user");
        run_for(&mut p, Duration::from_secs(5));
        let closed = EndReason::ChannelClosed { output: "Session terminated by user".into() };
        assert_eq!(p.mach(role.peer()).end_reason(), Some(&closed));
        if bug.is_some() {
            assert_eq!(p.mach(role).end_reason(), None, "the session does not end (TERM-001/002)");
            assert!({
                let now = p.now;
                p.mach_mut(role).send(now, PayloadType::OUTPUT, b"still here")
            }
            .is_ok());
        } else {
            assert_eq!(p.mach(role).end_reason(), Some(&closed), "{}", label(bug, role));
        }
    });
}

#[test]
fn resume_once() {
    for_each_role(Mutant::ResumeOnce, |bug, role| {
        let mut p = established(bug, role, 21);
        p.script.resume_errors = [ApiError::Internal].into();
        p.break_transport(Role::Client);
        run_for(&mut p, Duration::from_secs(60));
        if bug.is_some() {
            assert_eq!(resume_calls(&p), 1, "a single failed call ends reconnecting (RES-002)");
            assert!(!p.client.is_connected());
            assert!(p.events(Role::Client).contains(&Event::Note(Note::ReconnectExhausted { calls: 1 })));
        } else {
            assert_eq!(resume_calls(&p), 2, "{}", label(bug, role));
            assert!(p.client.is_connected());
        }
    });
}

#[test]
fn resume_terminated_forever() {
    for_each_role(Mutant::ResumeTerminatedForever, |bug, role| {
        let mut p = established(bug, role, 22);
        p.close_session("Session terminated by user");
        // The client's websocket breaks before channel_closed reaches it.
        p.break_transport(Role::Client);
        run_for(&mut p, Duration::from_secs(60));
        if bug.is_some() {
            assert!(resume_calls(&p) >= 10, "{} ResumeSession calls after DoesNotExist", resume_calls(&p));
            assert_eq!(p.client.end_reason(), None, "never ends (RES-004, RES-009)");
        } else {
            assert_eq!(resume_calls(&p), 1, "{}", label(bug, role));
            assert_eq!(p.client.end_reason(), Some(&EndReason::SessionGone));
        }
    });
}

#[test]
fn new_id_on_retransmit() {
    for_each_role(Mutant::NewIdOnRetransmit, |bug, role| {
        let mut p = established(bug, role, 23);
        let mark = p.wire_log.len();
        let seq = p.send(role, PayloadType::OUTPUT, b"x").unwrap();
        // The peer gets the first copy; its ack is lost, so the mutant retransmits.
        drop_ack_towards(&mut p, role, seq);
        settle(&mut p);
        let copies: Vec<_> =
            stream_frames(&p, role, mark).into_iter().filter(|(f, _)| f.sequence_number == seq).collect();
        assert!(copies.len() >= 2, "{}: {} copies", label(bug, role), copies.len());
        let ids: BTreeSet<Uuid> = copies.iter().map(|(f, _)| f.message_id).collect();
        assert_eq!(delivered_from(&p, role), b"x");
        if bug.is_some() {
            assert_eq!(ids.len(), copies.len(), "every copy has a fresh MessageId (SEQ-003)");
            assert!(violations(&p, role.peer()).contains(&Req::Seq003), "{:?}", violations(&p, role.peer()));
        } else {
            assert_eq!(ids.len(), 1);
            assert!(copies.iter().all(|(_, b)| *b == copies[0].1), "byte-identical copies");
            assert_eq!(violations(&p, role.peer()), []);
        }
    });
}

#[test]
fn ignore_pause() {
    for_each_role(Mutant::IgnorePause, |bug, role| {
        let mut p = established(bug, role, 24);
        p.inject(Role::Agent, MessageType::PausePublication, b"{}".to_vec());
        run_for(&mut p, Duration::from_millis(100));
        p.send(Role::Agent, PayloadType::OUTPUT, b"held").unwrap();
        run_for(&mut p, Duration::from_secs(2));
        if bug.is_some() {
            assert!(!p.agent.is_paused());
            assert_eq!(p.received(Role::Client), b"$ held", "sent while paused (PUB-001)");
        } else {
            assert!(p.agent.is_paused(), "{}", label(bug, role));
            assert_eq!(p.received(Role::Client), b"$ ");
        }
    });
}

#[test]
fn never_retransmit() {
    for_each_role(Mutant::NeverRetransmit, |bug, role| {
        let mut p = established(bug, role, 25);
        let mark = p.wire_log.len();
        let seq = p.send(role, PayloadType::OUTPUT, b"x").unwrap();
        let i = p.find_in_flight(role.peer(), |w| is_stream(w, seq)).unwrap();
        p.in_flight(role.peer()).remove(i);
        run_for(&mut p, Duration::from_secs(10));
        let copies = stream_frames(&p, role, mark).len();
        if bug.is_some() {
            assert_eq!(copies, 1, "the dropped frame is never resent (RTX-002)");
            assert_eq!(p.unacked(role), 1);
            assert_eq!(delivered_from(&p, role), b"");
        } else {
            assert!(copies >= 2, "{}: {copies} copies", label(bug, role));
            assert_eq!(p.unacked(role), 0);
            assert_eq!(delivered_from(&p, role), b"x");
        }
    });
}

#[test]
fn empty_payloads() {
    for_each_role(Mutant::EmptyPayloads, |bug, role| {
        let mut p = established(bug, role, 26);
        let r = p.send(role, PayloadType::OUTPUT, b"");
        run_for(&mut p, Duration::from_secs(1));
        let peer_violations = violations(&p, role.peer());
        if bug.is_some() {
            let next = if role == Role::Agent { 1 } else { 0 };
            assert_eq!(r, Ok(next), "an empty stream message was sent (FRAME-012)");
            assert!(peer_violations.contains(&Req::Frame012), "{peer_violations:?}");
        } else {
            assert_eq!(r, Err(SendError::EmptyPayload), "{}", label(bug, role));
            assert_eq!(peer_violations, []);
        }
    });
}

#[test]
fn swapped_key_halves() {
    for_each_role(Mutant::SwappedKeyHalves, |bug, role| {
        let b = |r: Role| match bug {
            Some(m) if r == role => Behaviour::for_impl(&Impl::Mutant(m), r),
            _ => Behaviour::conformant(r),
        };
        let mut p = Pair::encrypted(b(Role::Client), b(Role::Agent), ssm_channel::SessionKind::Shell, 26);
        let ready = p.establish();
        run_for(&mut p, Duration::from_secs(20));
        if bug.is_some() {
            assert!(!ready, "{}: the challenge cannot succeed", label(bug, role));
            // The first encrypted message is the challenge: a mutant agent seals it with the
            // wrong half and the client reports it (HS-006); a mutant client cannot open it,
            // reports that (wrongly blaming the agent) and never answers.
            assert!(violations(&p, Role::Client).contains(&Req::Hs006), "{:?}", violations(&p, Role::Client));
            let agent_end = p.agent.end_reason().cloned();
            assert!(
                matches!(agent_end, Some(EndReason::EncryptionFailed { .. } | EndReason::ChallengeTimeout)),
                "{}: the agent ended {agent_end:?}",
                label(bug, role)
            );
        } else {
            assert!(ready, "{}", label(bug, role));
            p.send(Role::Client, PayloadType::OUTPUT, b"in").unwrap();
            p.send(Role::Agent, PayloadType::OUTPUT, b"out").unwrap();
            settle(&mut p);
            assert_eq!(
                (p.received(Role::Agent), delivered_from(&p, Role::Agent).as_slice()),
                (&b"in"[..], &b"out"[..])
            );
            assert_eq!(violations(&p, Role::Client), []);
            assert_eq!(violations(&p, Role::Agent), []);
        }
    });
}

// ------------------------------------------------------------------ small accessors

trait PairExt {
    fn mach(&self, role: Role) -> &ssm_channel::Channel;
    fn mach_mut(&mut self, role: Role) -> &mut ssm_channel::Channel;
    fn machine_next_seq(&self, role: Role) -> i64 {
        self.mach(role).next_seq()
    }
    fn is_connected(&self, role: Role) -> bool {
        self.mach(role).is_connected()
    }
    fn unacked(&self, role: Role) -> usize {
        self.mach(role).unacked()
    }
}

impl PairExt for Pair {
    fn mach(&self, role: Role) -> &ssm_channel::Channel {
        match role {
            Role::Client => &self.client,
            Role::Agent => &self.agent,
        }
    }
    fn mach_mut(&mut self, role: Role) -> &mut ssm_channel::Channel {
        match role {
            Role::Client => &mut self.client,
            Role::Agent => &mut self.agent,
        }
    }
}
