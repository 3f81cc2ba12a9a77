//! Frame builders shared by the tests.
#![allow(dead_code)]

use ssm_channel::rng::Rng;
use ssm_fault::{Context, Direction, Effect, FaultEngine, FaultPlan, FrameAction, FrameMatch, FrameRule};
use ssm_wire::payload::{to_go_json, AcknowledgeContent};
use ssm_wire::{Frame, HeaderFlags, MessageType, PayloadType};

pub const CTX: Context = Context { resume_in_flight: false, client_reconnects: 0, unacked: [0, 0] };

fn frame(t: MessageType, seq: i64, payload_type: PayloadType, payload: Vec<u8>) -> Frame {
    let mut rng = Rng::new(seq as u64 ^ 0x55);
    Frame {
        message_type: t,
        schema_version: 1,
        created_date_ms: 1_700_000_000_000,
        sequence_number: seq,
        flags: HeaderFlags::NONE,
        message_id: rng.uuid_v4(),
        payload_type,
        payload,
    }
}

/// `output_stream_data` (agent to client) with Output payload.
pub fn output(seq: i64) -> Vec<u8> {
    frame(MessageType::OutputStreamData, seq, PayloadType::OUTPUT, format!("out{seq}").into_bytes())
        .encode()
        .unwrap()
}

/// `input_stream_data` (client to agent) with Output payload.
pub fn input(seq: i64) -> Vec<u8> {
    frame(MessageType::InputStreamData, seq, PayloadType::OUTPUT, format!("in{seq}").into_bytes())
        .encode()
        .unwrap()
}

/// An acknowledge of `acked` (of the given stream type).
pub fn ack(of: MessageType, acked: i64) -> Vec<u8> {
    let mut rng = Rng::new(acked as u64);
    let body = AcknowledgeContent::for_message(&of, rng.uuid_v4(), acked);
    let mut f = frame(MessageType::Acknowledge, 0, PayloadType::NONE, to_go_json(&body));
    f.flags = HeaderFlags::SYN_FIN;
    f.encode().unwrap()
}

/// An ack the client sends (to_agent) for agent output `acked`.
pub fn client_ack(acked: i64) -> Vec<u8> {
    ack(MessageType::OutputStreamData, acked)
}

pub fn rule(when: FrameMatch, action: FrameAction) -> FrameRule {
    FrameRule { name: None, when, action }
}

pub fn engine(rules: Vec<FrameRule>) -> FaultEngine {
    FaultEngine::new(FaultPlan { frames: rules, ..Default::default() }, 7)
}

/// Sends `bytes` and returns the effects.
pub fn send(e: &mut FaultEngine, now: u64, dir: Direction, bytes: &[u8]) -> Vec<Effect> {
    e.on_frame(now, dir, bytes, &CTX)
}

/// The bytes delivered (in order) among `effects`.
pub fn delivered(effects: &[Effect]) -> Vec<Vec<u8>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

/// Whether the effects are exactly one unchanged, undelayed, unfaulted delivery of `bytes`.
pub fn untouched(effects: &[Effect], dir: Direction, bytes: &[u8]) -> bool {
    effects == [Effect::Deliver { direction: dir, bytes: bytes.to_vec(), delay_ms: 0, fault: None }]
}

pub fn dropped(effects: &[Effect]) -> bool {
    matches!(effects, [Effect::Dropped { .. }])
}
