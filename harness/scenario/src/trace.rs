//! The recorded trace of one run: everything that crossed the wire or the control plane, in
//! virtual time. Checks judge requirements from it; reports draw it; a replay with the same
//! seed produces the same trace byte for byte.

use serde::{Deserialize, Serialize};
use ssm_channel::Role;

/// One websocket message kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgKind {
    Text,
    Binary,
    Ping,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A scenario step started.
    Step { index: usize, step: serde_json::Value },
    /// A machine wrote a websocket message (before any fault).
    Wrote {
        by: Role,
        msg: MsgKind,
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
        /// Decoded summary for humans.
        summary: String,
    },
    /// Bytes were handed to a machine (after faults).
    Delivered {
        to: Role,
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
        summary: String,
        /// The fault rule that altered or injected them, if any.
        fault: Option<String>,
    },
    /// The service itself sent a frame (pause/start_publication, channel_closed).
    ServiceWrote {
        towards: Role,
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
        summary: String,
    },
    /// The service saw a side break a requirement (e.g. a binary frame before OpenDataChannel).
    ServiceSaw { side: Role, req: ssm_spec::Req, detail: String },
    /// The service terminated the session (TerminateSession, a timeout, or the agent ended it).
    SessionTerminated { why: String },
    /// The service dropped a frame (fault, loss, or the destination was not connected).
    Lost { towards: Role, why: String, summary: String },
    /// A fault rule fired.
    Fault { rule: String, what: String },
    /// A websocket pong reached `to`, answering its ping.
    Pong { to: Role },
    /// A websocket opened (the upgrade succeeded).
    Opened { side: Role, url: String },
    /// The service accepted or refused an OpenDataChannel.
    OpenChecked { side: Role, token: String, accepted: bool, why: String },
    /// A websocket closed or broke.
    Closed { side: Role, code: Option<u16>, why: String },
    /// A control-plane call (made at `called_at`, ns) and its answer (at this record's time).
    Api { by: Role, call: String, answer: String, called_at: u64 },
    /// A machine event (data delivered to the application, a violation it observed, a note,
    /// the end of its session).
    Event { role: Role, event: serde_json::Value },
    /// The application offered bytes to its machine.
    Offered {
        by: Role,
        payload_type: u32,
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
        accepted: bool,
    },
    /// The run finished.
    Finished { why: String },
}

/// One record: virtual time in nanoseconds and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub t: u64,
    #[serde(flatten)]
    pub what: What,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub records: Vec<Record>,
}

impl Trace {
    pub fn push(&mut self, t: u64, what: What) {
        self.records.push(Record { t, what });
    }

    /// One JSON object per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            if let Ok(line) = serde_json::to_string(r) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    /// SHA-256 of the JSONL form, for determinism checks.
    pub fn digest_hex(&self) -> String {
        hex::encode(ssm_wire::digest(self.to_jsonl().as_bytes()))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// A one-line description of a websocket message, for traces and reports.
pub fn summarize(msg: MsgKind, bytes: &[u8]) -> String {
    match msg {
        MsgKind::Text => format!("text {} bytes", bytes.len()),
        MsgKind::Ping => "ping".to_owned(),
        MsgKind::Binary => match ssm_wire::decode(bytes) {
            Err(e) => format!("undecodable {} bytes: {e}", bytes.len()),
            Ok(w) => {
                let t = w.message_type.name();
                if w.message_type.is_stream() {
                    format!("{t} seq={} pt={} len={}", w.sequence_number, w.payload_type.0, w.payload.len())
                } else if w.message_type == ssm_wire::MessageType::Acknowledge {
                    let seq = serde_json::from_slice::<ssm_wire::payload::AcknowledgeContent>(w.payload)
                        .map(|a| a.sequence_number.to_string())
                        .unwrap_or_else(|_| "?".into());
                    format!("acknowledge ack={seq}")
                } else {
                    t
                }
            }
        },
    }
}
