//! The frame: encoding (2.1, 2.4) and decoding (2.5).

use uuid::Uuid;

use crate::layout::{self, HEADER_LENGTH_VALUE, HEADER_SIZE};
use crate::types::{HeaderFlags, MessageType, PayloadType};
use crate::validate::Violation;
use crate::{digest, message_id_from_wire, message_id_to_wire};

/// A well-formed data-channel message.
///
/// HeaderLength, PayloadLength and PayloadDigest are not stored: [`Frame::encode`] computes them,
/// so they cannot disagree with the payload. To put wrong values on the wire on purpose, use
/// [`Frame::encode_with`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub message_type: MessageType,
    pub schema_version: u32,
    /// Unix epoch milliseconds.
    pub created_date_ms: u64,
    pub sequence_number: i64,
    pub flags: HeaderFlags,
    pub message_id: Uuid,
    pub payload_type: PayloadType,
    pub payload: Vec<u8>,
}

/// Values to write instead of the computed ones, for building invalid frames on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub header_length: Option<u32>,
    pub payload_length: Option<u32>,
    pub payload_digest: Option<[u8; 32]>,
    /// The whole 32-byte MessageType field, padding included.
    pub message_type_field: Option<[u8; 32]>,
}

/// Why [`Frame::encode`] refused a frame: it would break the listed requirements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame would break {}", .violations.iter().map(|v| format!("{} ({v})", v.req())).collect::<Vec<_>>().join("; "))]
pub struct EncodeError {
    pub violations: Vec<Violation>,
}

impl Frame {
    /// Requirements the frame would break if sent: an empty stream payload (FRAME-012), a type
    /// name that is not padded ASCII (FRAME-003), SchemaVersion other than 1 or a zero CreatedDate
    /// (FRAME-005; publication frames are exempt from the date, FRAME-009), and so on.
    pub fn check(&self) -> Vec<Violation> {
        crate::validate::check_frame(self)
    }

    /// Encodes the frame, refusing one that would break a requirement.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let violations = self.check();
        if !violations.is_empty() {
            return Err(EncodeError { violations });
        }
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out, &Overrides::default());
        Ok(out)
    }

    /// Encodes the frame without any check, writing `overrides` in place of computed values.
    /// This is how the harness builds broken frames deliberately.
    pub fn encode_with(&self, overrides: &Overrides) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out, overrides);
        out
    }

    /// A frame as the service sends it (pause/start_publication, channel_closed): SchemaVersion
    /// 1, SequenceNumber 0, Flags 0, PayloadType 0. Those header values are not visible in
    /// either reference; these are the ones the golden `channel_closed` vector uses.
    pub fn service(
        message_type: MessageType,
        created_date_ms: u64,
        message_id: Uuid,
        payload: Vec<u8>,
    ) -> Frame {
        Frame {
            message_type,
            schema_version: 1,
            created_date_ms,
            sequence_number: 0,
            flags: HeaderFlags::NONE,
            message_id,
            payload_type: PayloadType::NONE,
            payload,
        }
    }

    /// Size of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        HEADER_SIZE + self.payload.len()
    }

    fn write(&self, out: &mut Vec<u8>, o: &Overrides) {
        let payload_len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&o.header_length.unwrap_or(HEADER_LENGTH_VALUE).to_be_bytes());
        out.extend_from_slice(&o.message_type_field.unwrap_or_else(|| self.message_type.to_wire()));
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&self.created_date_ms.to_be_bytes());
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.flags.0.to_be_bytes());
        out.extend_from_slice(&message_id_to_wire(self.message_id));
        out.extend_from_slice(&o.payload_digest.unwrap_or_else(|| digest(&self.payload)));
        out.extend_from_slice(&self.payload_type.0.to_be_bytes());
        out.extend_from_slice(&o.payload_length.unwrap_or(payload_len).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }
}

/// Why bytes could not be read as a frame at all. The reference decoders crash (Go panic) or
/// fail on these; the harness reports them (FRAME-010).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the 120-byte header.
    #[error("frame is {len} bytes long, shorter than the 120-byte header (FRAME-010)")]
    Truncated { len: usize },
    /// HeaderLength points the payload past the end of the message.
    #[error("HeaderLength {header_length} puts the payload at byte {}, beyond the {len}-byte frame (FRAME-010)", u64::from(*.header_length) + 4)]
    HeaderLengthBeyondFrame { header_length: u32, len: usize },
}

impl DecodeError {
    /// The requirement a peer breaks by sending such bytes to a robust receiver.
    pub fn req(&self) -> ssm_spec::Req {
        ssm_spec::Req::Frame010
    }
}

/// A decoded frame exactly as the wire carried it: every header field as read, including a
/// HeaderLength, PayloadLength or digest that may be wrong. The payload is what the reference
/// decoders deliver: everything from `HeaderLength + 4` to the end of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFrame<'a> {
    bytes: &'a [u8],
    pub header_length: u32,
    pub message_type: MessageType,
    pub schema_version: u32,
    pub created_date_ms: u64,
    pub sequence_number: i64,
    pub flags: HeaderFlags,
    pub message_id: Uuid,
    pub payload_digest: [u8; 32],
    pub payload_type: PayloadType,
    pub payload_length: u32,
    pub payload: &'a [u8],
}

fn be<const N: usize>(bytes: &[u8], range: std::ops::Range<usize>) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[range]);
    out
}

/// Reads one websocket message as a frame. Never panics, never allocates.
pub fn decode(bytes: &[u8]) -> Result<WireFrame<'_>, DecodeError> {
    if bytes.len() < HEADER_SIZE {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let header_length = u32::from_be_bytes(be(bytes, layout::HEADER_LENGTH));
    let start = usize::try_from(u64::from(header_length) + 4).unwrap_or(usize::MAX);
    if start > bytes.len() {
        return Err(DecodeError::HeaderLengthBeyondFrame { header_length, len: bytes.len() });
    }
    Ok(WireFrame {
        bytes,
        header_length,
        message_type: MessageType::from_wire(&be(bytes, layout::MESSAGE_TYPE)),
        schema_version: u32::from_be_bytes(be(bytes, layout::SCHEMA_VERSION)),
        created_date_ms: u64::from_be_bytes(be(bytes, layout::CREATED_DATE)),
        sequence_number: i64::from_be_bytes(be(bytes, layout::SEQUENCE_NUMBER)),
        flags: HeaderFlags(u64::from_be_bytes(be(bytes, layout::FLAGS))),
        message_id: message_id_from_wire(be(bytes, layout::MESSAGE_ID)),
        payload_digest: be(bytes, layout::PAYLOAD_DIGEST),
        payload_type: PayloadType(u32::from_be_bytes(be(bytes, layout::PAYLOAD_TYPE))),
        payload_length: u32::from_be_bytes(be(bytes, layout::PAYLOAD_LENGTH)),
        payload: &bytes[start..],
    })
}

impl<'a> WireFrame<'a> {
    /// The whole message the frame was decoded from.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The raw 32-byte MessageType field, padding included.
    pub fn message_type_field(&self) -> [u8; 32] {
        be(self.bytes, layout::MESSAGE_TYPE)
    }

    /// Whether PayloadDigest is the SHA-256 of the delivered payload.
    pub fn digest_matches(&self) -> bool {
        digest(self.payload) == self.payload_digest
    }

    /// Every requirement the frame breaks, in a fixed order. Empty for a well-formed frame.
    pub fn validate(&self) -> Vec<Violation> {
        crate::validate::validate_wire(self)
    }

    /// Whether a conformant receiver must drop the frame (any violation whose disposition is
    /// [`crate::Disposition::Drop`]).
    pub fn must_drop(&self) -> bool {
        self.validate().iter().any(|v| v.disposition() == crate::Disposition::Drop)
    }

    /// The frame's content as an owned [`Frame`] (lengths and digest are dropped; re-encoding
    /// recomputes them).
    pub fn to_frame(&self) -> Frame {
        Frame {
            message_type: self.message_type,
            schema_version: self.schema_version,
            created_date_ms: self.created_date_ms,
            sequence_number: self.sequence_number,
            flags: self.flags,
            message_id: self.message_id,
            payload_type: self.payload_type,
            payload: self.payload.to_vec(),
        }
    }
}

impl<'a> arbitrary::Arbitrary<'a> for Frame {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let message_type = MessageType::arbitrary(u)?;
        let payload_len = u.int_in_range(0..=2048usize)?;
        Ok(Frame {
            message_type,
            schema_version: u.arbitrary()?,
            created_date_ms: u.arbitrary()?,
            sequence_number: u.arbitrary()?,
            flags: HeaderFlags(u.arbitrary()?),
            message_id: Uuid::from_bytes(u.arbitrary()?),
            payload_type: PayloadType(u.arbitrary()?),
            payload: u.bytes(payload_len.min(u.len()))?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        Frame {
            message_type: MessageType::InputStreamData,
            schema_version: 1,
            created_date_ms: 1_700_000_000_000,
            sequence_number: 0,
            flags: HeaderFlags::NONE,
            message_id: Uuid::parse_str("dd01e56b-ff48-483e-a508-b5f073f31b16").unwrap(),
            payload_type: PayloadType::OUTPUT,
            payload: b"ls\r".to_vec(),
        }
    }

    #[test]
    fn message_id_halves_are_swapped_on_the_wire() {
        let bytes = sample().encode().unwrap();
        assert_eq!(hex::encode(&bytes[64..80]), "a508b5f073f31b16dd01e56bff48483e");
    }

    #[test]
    fn empty_stream_payload_is_refused_unless_asked_for() {
        let mut f = sample();
        f.payload.clear();
        let err = f.encode().unwrap_err();
        assert_eq!(err.violations[0].req(), ssm_spec::Req::Frame012);
        assert_eq!(f.encode_with(&Overrides::default()).len(), HEADER_SIZE);
    }

    #[test]
    fn short_and_overlong_frames_are_typed_errors() {
        let bytes = sample().encode().unwrap();
        for n in 0..HEADER_SIZE {
            assert_eq!(decode(&bytes[..n]), Err(DecodeError::Truncated { len: n }));
        }
        let mut big = bytes.clone();
        big[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode(&big),
            Err(DecodeError::HeaderLengthBeyondFrame { header_length: u32::MAX, len: bytes.len() })
        );
    }

    #[test]
    fn overrides_reach_the_wire() {
        let o = Overrides {
            header_length: Some(112),
            payload_length: Some(999),
            payload_digest: Some([7; 32]),
            message_type_field: Some([0; 32]),
        };
        let b = sample().encode_with(&o);
        let w = decode(&b).unwrap();
        assert_eq!((w.header_length, w.payload_length, w.payload_digest), (112, 999, [7; 32]));
        assert_eq!(w.message_type_field(), [0; 32]);
    }
}
