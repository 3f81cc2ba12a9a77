//! State-machine property of a conformant pair: whatever interleaving of application sends, lost,
//! duplicated, reordered and delayed frames, transport losses (with the resume the pair's service
//! performs) and passing time, once the faults stop each application receives exactly what the
//! other side sent, once and in order, both machines settle, nobody reports a violation, and the
//! sequence counters carried on across every resume.
//!
//! Failing cases are persisted under `tests/regressions/` and replayed first on every run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ssm_channel::pair::Pair;
use ssm_channel::{Behaviour, Event, PayloadType, Role};
use ssm_wire::decode;

/// One thing that happens to the pair.
#[derive(Debug, Clone)]
enum Op {
    /// `from`'s application sends Output bytes.
    Send { from: Role, bytes: Vec<u8> },
    /// The frame at `idx` (modulo the queue length) on its way to `to` is lost.
    Drop { to: Role, idx: usize },
    /// The frame at `idx` on its way to `to` arrives twice.
    Duplicate { to: Role, idx: usize },
    /// Two frames on their way to `to` change places.
    Swap { to: Role, i: usize, j: usize },
    /// The frame at `idx` on its way to `to` is held back.
    Delay { to: Role, idx: usize, ms: u64 },
    /// `role`'s websocket breaks (if it is up); the machine resumes through the service.
    Break { role: Role },
    /// One step of the world.
    Step,
    /// Virtual time passes.
    Advance { ms: u64 },
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Agent)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (role(), proptest::collection::vec(any::<u8>(), 1..6)).prop_map(|(from, bytes)| Op::Send { from, bytes }),
        2 => (role(), any::<usize>()).prop_map(|(to, idx)| Op::Drop { to, idx }),
        1 => (role(), any::<usize>()).prop_map(|(to, idx)| Op::Duplicate { to, idx }),
        1 => (role(), any::<usize>(), any::<usize>()).prop_map(|(to, i, j)| Op::Swap { to, i, j }),
        1 => (role(), any::<usize>(), 1..2000u64).prop_map(|(to, idx, ms)| Op::Delay { to, idx, ms }),
        1 => role().prop_map(|role| Op::Break { role }),
        3 => Just(Op::Step),
        2 => (1..1500u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the test itself sent, per sender.
#[derive(Debug, Default)]
struct Sent {
    client: Vec<u8>,
    agent: Vec<u8>,
    client_msgs: i64,
    agent_msgs: i64,
}

fn apply(p: &mut Pair, op: &Op, sent: &mut Sent) {
    match op {
        Op::Send { from, bytes } => {
            let seq =
                p.send(*from, PayloadType::OUTPUT, bytes).expect("a conformant machine accepts the send");
            let (buf, n) = match from {
                Role::Client => (&mut sent.client, &mut sent.client_msgs),
                Role::Agent => (&mut sent.agent, &mut sent.agent_msgs),
            };
            // The agent's prompt took sequence number 0.
            let first = if *from == Role::Agent { 1 } else { 0 };
            assert_eq!(seq, first + *n, "sequence numbers are consecutive (SEQ-001, SEQ-002)");
            buf.extend_from_slice(bytes);
            *n += 1;
        }
        Op::Drop { to, idx } => {
            let q = p.in_flight(*to);
            if !q.is_empty() {
                let i = idx % q.len();
                q.remove(i);
            }
        }
        Op::Duplicate { to, idx } => {
            let q = p.in_flight(*to);
            if !q.is_empty() {
                let i = idx % q.len();
                let copy = q[i].clone();
                q.insert(i + 1, copy);
            }
        }
        Op::Swap { to, i, j } => {
            let q = p.in_flight(*to);
            if !q.is_empty() {
                let (a, b) = (i % q.len(), j % q.len());
                q.swap(a, b);
            }
        }
        Op::Delay { to, idx, ms } => {
            let q = p.in_flight(*to);
            if !q.is_empty() {
                let i = idx % q.len();
                q[i].deliver_at = q[i].deliver_at + Duration::from_millis(*ms);
            }
        }
        Op::Break { role } => {
            let up = match role {
                Role::Client => p.client.is_connected(),
                Role::Agent => p.agent.is_connected(),
            };
            if up {
                p.break_transport(*role);
            }
        }
        Op::Step => {
            p.step();
        }
        Op::Advance { ms } => {
            let until = p.now + Duration::from_millis(*ms);
            p.run_until(until);
        }
    }
}

fn violations(p: &Pair, role: Role) -> Vec<String> {
    p.events(role)
        .iter()
        .filter_map(|e| match e {
            Event::Violation(v) => Some(format!("{}: {}", v.req, v.detail)),
            _ => None,
        })
        .collect()
}

/// Every stream frame `role` wrote, grouped by sequence number: all copies must be identical
/// (SEQ-003) and the numbers must be exactly `0..next_seq`.
fn check_wire(p: &Pair, role: Role, next_seq: i64) -> Result<(), TestCaseError> {
    let mut by_seq: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for (_, r, bytes) in &p.wire_log {
        if *r != role {
            continue;
        }
        let w =
            decode(bytes).map_err(|e| TestCaseError::fail(format!("{role} wrote undecodable bytes: {e}")))?;
        if !w.message_type.is_stream() {
            continue;
        }
        if let Some(first) = by_seq.get(&w.sequence_number) {
            prop_assert_eq!(
                first,
                bytes,
                "{} retransmitted seq {} with different bytes",
                role,
                w.sequence_number
            );
        } else {
            by_seq.insert(w.sequence_number, bytes.clone());
        }
    }
    let seqs: Vec<i64> = by_seq.keys().copied().collect();
    prop_assert_eq!(seqs, (0..next_seq).collect::<Vec<_>>(), "{} stream sequence numbers", role);
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut p = Pair::new(Behaviour::conformant(Role::Client), Behaviour::conformant(Role::Agent), 42);
    prop_assert!(p.establish(), "the shell session is established");
    let mut sent = Sent::default();
    for op in ops {
        apply(&mut p, op, &mut sent);
    }
    // Faults stop; the pair must settle on its own, within bounded steps and virtual time.
    let deadline = Duration::from_secs(p.now.as_nanos() / 1_000_000_000 + 600);
    let settled = p.drive_bounded(200_000, deadline);
    prop_assert!(settled.is_ok(), "livelock or no progress: {:?}", settled);

    prop_assert_eq!(violations(&p, Role::Client), Vec::<String>::new());
    prop_assert_eq!(violations(&p, Role::Agent), Vec::<String>::new());
    prop_assert!(
        !p.client.is_ended() && !p.agent.is_ended(),
        "{:?} {:?}",
        p.client.end_reason(),
        p.agent.end_reason()
    );
    prop_assert!(p.client.is_quiescent() && p.agent.is_quiescent());
    prop_assert!(p.client.is_connected() && p.agent.is_connected());

    let mut want_client = b"$ ".to_vec();
    want_client.extend_from_slice(&sent.agent);
    prop_assert_eq!(p.received(Role::Client), &want_client[..], "client received");
    prop_assert_eq!(p.received(Role::Agent), &sent.client[..], "agent received");

    // Counters continued across every resume (SEQ-002).
    prop_assert_eq!(p.client.next_seq(), sent.client_msgs);
    prop_assert_eq!(p.agent.next_seq(), sent.agent_msgs + 1);
    prop_assert_eq!(p.client.expected_seq(), sent.agent_msgs + 1);
    prop_assert_eq!(p.agent.expected_seq(), sent.client_msgs);
    check_wire(&p, Role::Client, sent.client_msgs)?;
    check_wire(&p, Role::Agent, sent.agent_msgs + 1)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn conformant_pair_delivers_everything_once_in_order(ops in proptest::collection::vec(op(), 0..80)) {
        run(&ops)?;
    }
}
