//! Requirement checks on frames: [`crate::WireFrame::validate`] for received bytes and
//! [`crate::Frame::check`] for a frame about to be sent.

use ssm_spec::Req;

use crate::frame::{Frame, WireFrame};
use crate::layout::HEADER_LENGTH_VALUE;
use crate::types::{HeaderFlags, MessageType, PayloadType};

/// What a conformant receiver does with a frame that has this violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Drop the frame without acknowledging it (FRAME-008, FRAME-009, FRAME-011).
    Drop,
    /// The sender broke a requirement, but receivers process the frame anyway.
    Note,
}

/// One requirement broken by one frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("PayloadDigest {found} is not the SHA-256 of the {len}-byte payload ({expected})")]
    DigestMismatch { found: String, expected: String, len: usize },
    #[error("HeaderLength is 0")]
    HeaderLengthZero,
    #[error("HeaderLength is {0}, not 116")]
    HeaderLength(u32),
    #[error("PayloadLength says {field} bytes but {actual} follow the header")]
    PayloadLength { field: u32, actual: usize },
    #[error("MessageType is empty after trimming")]
    EmptyMessageType,
    #[error("CreatedDate is 0 on a {0} frame")]
    CreatedDateZero(String),
    #[error("SchemaVersion is {0}, not 1")]
    SchemaVersion(u32),
    #[error("MessageType {0:?} is not space-padded printable ASCII")]
    MessageTypeNotAscii(String),
    #[error("MessageType field is not the name padded with spaces: {0}")]
    MessageTypePadding(String),
    #[error("{0} stream message with an empty payload")]
    EmptyStreamPayload(String),
    #[error("stream message with PayloadType {0}, outside 1..12")]
    StreamPayloadType(u32),
    #[error("Flag payload is {0} bytes, not 4")]
    FlagPayloadLength(usize),
    #[error(
        "{kind} frame has SequenceNumber {seq}, Flags {flags}, PayloadType {payload_type}; expected 0, 3, 0"
    )]
    ControlConventions { kind: String, seq: i64, flags: u64, payload_type: u32 },
}

impl Violation {
    /// The requirement broken.
    pub fn req(&self) -> Req {
        match self {
            Violation::DigestMismatch { .. } => Req::Frame008,
            Violation::HeaderLengthZero | Violation::EmptyMessageType | Violation::CreatedDateZero(_) => {
                Req::Frame009
            }
            Violation::HeaderLength(_) | Violation::PayloadLength { .. } => Req::Frame011,
            Violation::SchemaVersion(_) => Req::Frame005,
            Violation::MessageTypeNotAscii(_) | Violation::MessageTypePadding(_) => Req::Frame003,
            Violation::EmptyStreamPayload(_) => Req::Frame012,
            Violation::StreamPayloadType(_) | Violation::FlagPayloadLength(_) => Req::Type003,
            Violation::ControlConventions { .. } => Req::Type004,
        }
    }

    /// The requirement the *sender* of the frame broke (a receiver-side id such as FRAME-008
    /// "verify the digest" implies the sender's FRAME-007 "write the digest").
    pub fn sender_req(&self) -> Req {
        match self {
            Violation::DigestMismatch { .. } | Violation::PayloadLength { .. } => Req::Frame007,
            Violation::HeaderLengthZero | Violation::HeaderLength(_) => Req::Frame002,
            Violation::EmptyMessageType => Req::Frame003,
            Violation::CreatedDateZero(_) => Req::Frame005,
            other => other.req(),
        }
    }

    /// Drop the frame, or note the violation and process it.
    pub fn disposition(&self) -> Disposition {
        match self.req() {
            Req::Frame008 | Req::Frame009 | Req::Frame011 => Disposition::Drop,
            _ => Disposition::Note,
        }
    }
}

/// Checks shared by sent and received frames, on the fields both have.
struct Fields<'a> {
    t: &'a MessageType,
    schema_version: u32,
    created_date_ms: u64,
    seq: i64,
    flags: HeaderFlags,
    payload_type: PayloadType,
    payload: &'a [u8],
}

fn common(out: &mut Vec<Violation>, f: Fields<'_>) {
    let Fields { t, schema_version, created_date_ms, seq, flags, payload_type, payload } = f;
    // `Other` holding a known name is that known type on the wire (decoding classifies it so),
    // so it must meet that type's requirements.
    let known = match t {
        MessageType::Other(n) => MessageType::from_name(n.as_bytes()).unwrap_or(*t),
        known => *known,
    };
    let t = &known;
    if t.as_bytes().is_empty() {
        out.push(Violation::EmptyMessageType);
    } else if let MessageType::Other(n) = t {
        if !n.is_wire_canonical() {
            out.push(Violation::MessageTypeNotAscii(t.name()));
        }
    }
    if created_date_ms == 0 && !t.is_publication() {
        out.push(Violation::CreatedDateZero(t.name()));
    }
    if schema_version != 1 {
        out.push(Violation::SchemaVersion(schema_version));
    }
    if t.is_stream() {
        if payload.is_empty() {
            out.push(Violation::EmptyStreamPayload(t.name()));
        }
        if !payload_type.is_stream_payload() {
            out.push(Violation::StreamPayloadType(payload_type.0));
        }
        if payload_type == PayloadType::FLAG && payload.len() != 4 {
            out.push(Violation::FlagPayloadLength(payload.len()));
        }
    }
    if matches!(t, MessageType::Acknowledge | MessageType::AgentSessionState)
        && (seq != 0 || flags != HeaderFlags::SYN_FIN || payload_type != PayloadType::NONE)
    {
        out.push(Violation::ControlConventions {
            kind: t.name(),
            seq,
            flags: flags.0,
            payload_type: payload_type.0,
        });
    }
}

pub(crate) fn validate_wire(w: &WireFrame<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    if w.header_length == 0 {
        out.push(Violation::HeaderLengthZero);
    } else if w.header_length != HEADER_LENGTH_VALUE {
        out.push(Violation::HeaderLength(w.header_length));
    }
    if usize::try_from(w.payload_length).ok() != Some(w.payload.len()) {
        out.push(Violation::PayloadLength { field: w.payload_length, actual: w.payload.len() });
    }
    let field = w.message_type_field();
    if !w.message_type.as_bytes().is_empty() && field != w.message_type.to_wire() {
        out.push(Violation::MessageTypePadding(hex::encode(field)));
    }
    if !w.digest_matches() {
        out.push(Violation::DigestMismatch {
            found: hex::encode(w.payload_digest),
            expected: hex::encode(crate::digest(w.payload)),
            len: w.payload.len(),
        });
    }
    common(
        &mut out,
        Fields {
            t: &w.message_type,
            schema_version: w.schema_version,
            created_date_ms: w.created_date_ms,
            seq: w.sequence_number,
            flags: w.flags,
            payload_type: w.payload_type,
            payload: w.payload,
        },
    );
    out
}

pub(crate) fn check_frame(f: &Frame) -> Vec<Violation> {
    let mut out = Vec::new();
    if u32::try_from(f.payload.len()).is_err() {
        out.push(Violation::PayloadLength { field: u32::MAX, actual: f.payload.len() });
    }
    common(
        &mut out,
        Fields {
            t: &f.message_type,
            schema_version: f.schema_version,
            created_date_ms: f.created_date_ms,
            seq: f.sequence_number,
            flags: f.flags,
            payload_type: f.payload_type,
            payload: &f.payload,
        },
    );
    out
}
