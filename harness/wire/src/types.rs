//! Message types, payload types, header flags and Flag payload values (protocol reference 3).

use std::fmt;

use crate::layout::MESSAGE_TYPE_WIDTH;

/// A message-type string of at most 32 bytes, stored inline.
///
/// Construction refuses longer strings (FRAME-003), so every `TypeName` can be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeName {
    len: u8,
    bytes: [u8; MESSAGE_TYPE_WIDTH],
}

/// A message-type string that does not fit the 32-byte field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message type is {len} bytes long; the MessageType field holds at most 32 (FRAME-003)")]
pub struct TypeNameError {
    /// Length of the refused string.
    pub len: usize,
}

impl TypeName {
    /// Wraps `bytes` as they are (no trimming).
    pub fn new(bytes: &[u8]) -> Result<Self, TypeNameError> {
        if bytes.len() > MESSAGE_TYPE_WIDTH {
            return Err(TypeNameError { len: bytes.len() });
        }
        let mut out = [0u8; MESSAGE_TYPE_WIDTH];
        out[..bytes.len()].copy_from_slice(bytes);
        // The length fits in u8: it is at most 32.
        Ok(TypeName { len: bytes.len() as u8, bytes: out })
    }

    /// The bytes of the name.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name as text, with invalid UTF-8 replaced.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// True for a name that the reference encoders could write and every decoder reads back as
    /// itself: non-empty printable ASCII with no space at either end (FRAME-003, TYPE-001).
    pub fn is_wire_canonical(&self) -> bool {
        let b = self.as_bytes();
        !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) && b[0] != b' ' && b[b.len() - 1] != b' '
    }
}

impl fmt::Debug for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// Trims a raw MessageType field exactly as both reference decoders do: strip leading and
/// trailing NUL bytes (`strings.Trim(s, "\x00")`), then leading and trailing Unicode white space
/// (`strings.TrimSpace`). Bytes that are not valid UTF-8 stop the white-space trim, as in Go.
pub fn go_trim_message_type(raw: &[u8]) -> &[u8] {
    let mut s = raw;
    while let [0, rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., 0] = s {
        s = rest;
    }
    trim_go_space_end(trim_go_space_start(s))
}

fn trim_go_space_start(mut s: &[u8]) -> &[u8] {
    while let Some((c, n)) = first_char(s) {
        if !c.is_whitespace() {
            break;
        }
        s = &s[n..];
    }
    s
}

fn trim_go_space_end(mut s: &[u8]) -> &[u8] {
    while let Some((c, n)) = last_char(s) {
        if !c.is_whitespace() {
            break;
        }
        s = &s[..s.len() - n];
    }
    s
}

/// The first UTF-8 scalar of `s` and its encoded length, if `s` starts with a valid one.
fn first_char(s: &[u8]) -> Option<(char, usize)> {
    // Fast path for the common case (space padding): an ASCII byte is a whole scalar.
    if let Some(&b) = s.first().filter(|b| b.is_ascii()) {
        return Some((char::from(b), 1));
    }
    let end = s.len().min(4);
    let prefix = &s[..end];
    let valid = match std::str::from_utf8(prefix) {
        Ok(v) => v,
        // `valid_up_to` is a char boundary, so this slice is valid UTF-8.
        Err(e) => std::str::from_utf8(&prefix[..e.valid_up_to()]).ok()?,
    };
    let c = valid.chars().next()?;
    Some((c, c.len_utf8()))
}

/// The last UTF-8 scalar of `s` and its encoded length, if `s` ends with a valid one.
fn last_char(s: &[u8]) -> Option<(char, usize)> {
    // An ASCII byte is never part of a longer UTF-8 sequence.
    if let Some(&b) = s.last().filter(|b| b.is_ascii()) {
        return Some((char::from(b), 1));
    }
    for n in 1..=s.len().min(4) {
        if let Ok(t) = std::str::from_utf8(&s[s.len() - n..]) {
            let c = t.chars().next_back()?;
            return (c.len_utf8() == n).then_some((c, n));
        }
    }
    None
}

/// The MessageType of a frame (protocol reference 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// `input_stream_data`: client-to-agent stream message.
    InputStreamData,
    /// `output_stream_data`: agent-to-client stream message.
    OutputStreamData,
    /// `acknowledge`.
    Acknowledge,
    /// `channel_closed`, sent by the service.
    ChannelClosed,
    /// `start_publication`, sent by the service.
    StartPublication,
    /// `pause_publication`, sent by the service.
    PausePublication,
    /// `agent_session_state`, agent to service.
    AgentSessionState,
    /// Any other name, kept as it was read (after the reference trimming). Decoding never yields
    /// `Other` with a known name; one built by hand is encoded, checked and decoded as the known
    /// type.
    Other(TypeName),
}

/// Control-channel type names of the agent contracts: known, but not of the data channel.
pub const CONTROL_CHANNEL_TYPES: [&str; 8] = [
    "interactive_shell",
    "agent_task_reply",
    "agent_task_complete",
    "agent_task_acknowledge",
    "agent_job",
    "agent_job_ack",
    "agent_job_reply_ack",
    "agent_job_reply",
];

impl MessageType {
    /// Every data-channel type, in the order of the reference.
    pub const DATA_CHANNEL: [MessageType; 7] = [
        MessageType::InputStreamData,
        MessageType::OutputStreamData,
        MessageType::Acknowledge,
        MessageType::ChannelClosed,
        MessageType::StartPublication,
        MessageType::PausePublication,
        MessageType::AgentSessionState,
    ];

    /// The name of a known type.
    pub const fn known_name(&self) -> Option<&'static str> {
        Some(match self {
            MessageType::InputStreamData => "input_stream_data",
            MessageType::OutputStreamData => "output_stream_data",
            MessageType::Acknowledge => "acknowledge",
            MessageType::ChannelClosed => "channel_closed",
            MessageType::StartPublication => "start_publication",
            MessageType::PausePublication => "pause_publication",
            MessageType::AgentSessionState => "agent_session_state",
            MessageType::Other(_) => return None,
        })
    }

    /// Classifies an (already trimmed) name. Matching is exact and case-sensitive (TYPE-001).
    pub fn from_name(name: &[u8]) -> Result<Self, TypeNameError> {
        for t in Self::DATA_CHANNEL {
            if t.known_name().map(str::as_bytes) == Some(name) {
                return Ok(t);
            }
        }
        TypeName::new(name).map(MessageType::Other)
    }

    /// Reads a raw 32-byte MessageType field as the reference decoders do (FRAME-004).
    pub fn from_wire(raw: &[u8; MESSAGE_TYPE_WIDTH]) -> Self {
        match Self::from_name(go_trim_message_type(raw)) {
            Ok(t) => t,
            // A trimmed slice of a 32-byte field is at most 32 bytes long.
            Err(_) => unreachable_type(),
        }
    }

    /// The bytes of the name.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MessageType::Other(n) => n.as_bytes(),
            known => known.known_name().unwrap_or_default().as_bytes(),
        }
    }

    /// The name as text.
    pub fn name(&self) -> String {
        match self {
            MessageType::Other(n) => n.to_string_lossy(),
            known => known.known_name().unwrap_or_default().to_owned(),
        }
    }

    /// The 32-byte field as the reference encoders write it: the name, then spaces (FRAME-003).
    pub fn to_wire(&self) -> [u8; MESSAGE_TYPE_WIDTH] {
        let mut out = [b' '; MESSAGE_TYPE_WIDTH];
        let b = self.as_bytes();
        out[..b.len()].copy_from_slice(b);
        out
    }

    /// `input_stream_data` or `output_stream_data`: sequenced, acknowledged, retransmitted.
    pub fn is_stream(&self) -> bool {
        matches!(self, MessageType::InputStreamData | MessageType::OutputStreamData)
    }

    /// `start_publication` or `pause_publication`, which need not carry a CreatedDate (FRAME-009).
    pub fn is_publication(&self) -> bool {
        matches!(self, MessageType::StartPublication | MessageType::PausePublication)
    }

    /// A control-channel type of the agent contracts, seen on the data channel.
    pub fn is_control_channel(&self) -> bool {
        match self {
            MessageType::Other(n) => CONTROL_CHANNEL_TYPES.iter().any(|c| c.as_bytes() == n.as_bytes()),
            _ => false,
        }
    }
}

#[cold]
fn unreachable_type() -> MessageType {
    // Kept total instead of panicking: an empty name is the safe reading of the impossible case.
    MessageType::Other(TypeName { len: 0, bytes: [0; MESSAGE_TYPE_WIDTH] })
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The PayloadType field (protocol reference 3.3). Unknown values are kept.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PayloadType(pub u32);

impl PayloadType {
    /// 0: used by non-stream frames.
    pub const NONE: PayloadType = PayloadType(0);
    pub const OUTPUT: PayloadType = PayloadType(1);
    pub const ERROR: PayloadType = PayloadType(2);
    pub const SIZE: PayloadType = PayloadType(3);
    pub const PARAMETER: PayloadType = PayloadType(4);
    pub const HANDSHAKE_REQUEST: PayloadType = PayloadType(5);
    pub const HANDSHAKE_RESPONSE: PayloadType = PayloadType(6);
    pub const HANDSHAKE_COMPLETE: PayloadType = PayloadType(7);
    pub const ENC_CHALLENGE_REQUEST: PayloadType = PayloadType(8);
    pub const ENC_CHALLENGE_RESPONSE: PayloadType = PayloadType(9);
    pub const FLAG: PayloadType = PayloadType(10);
    pub const STDERR: PayloadType = PayloadType(11);
    pub const EXIT_CODE: PayloadType = PayloadType(12);

    /// The reference name of a defined value.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "None",
            1 => "Output",
            2 => "Error",
            3 => "Size",
            4 => "Parameter",
            5 => "HandshakeRequest",
            6 => "HandshakeResponse",
            7 => "HandshakeComplete",
            8 => "EncChallengeRequest",
            9 => "EncChallengeResponse",
            10 => "Flag",
            11 => "StdErr",
            12 => "ExitCode",
            _ => return None,
        })
    }

    /// Values 1..=12, the ones a stream message may carry (TYPE-003).
    pub const fn is_stream_payload(self) -> bool {
        matches!(self.0, 1..=12)
    }

    /// Handshake-class payloads that the plugin acknowledges before processing (5.2).
    pub const fn is_handshake_class(self) -> bool {
        matches!(self.0, 5 | 7 | 8)
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} ({n})", self.0),
            None => write!(f, "{} (unknown)", self.0),
        }
    }
}

/// The header Flags field (3.4). Receivers ignore it; unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct HeaderFlags(pub u64);

impl HeaderFlags {
    pub const NONE: HeaderFlags = HeaderFlags(0);
    /// Bit 0: first message of the stream.
    pub const SYN: HeaderFlags = HeaderFlags(1);
    /// Bit 1: final message.
    pub const FIN: HeaderFlags = HeaderFlags(2);
    /// SYN and FIN, what acks and agent_session_state carry (TYPE-004).
    pub const SYN_FIN: HeaderFlags = HeaderFlags(3);

    pub const fn contains(self, other: HeaderFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The value of a Flag payload (PayloadType 10): a 4-byte big-endian uint32 (TYPE-003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagValue {
    /// 1: the local TCP connection of a basic port session ended.
    DisconnectToPort,
    /// 2: end the session.
    TerminateSession,
    /// 3: the agent could not dial the destination port.
    ConnectToPortError,
    /// Any other value, kept.
    Other(u32),
}

impl FlagValue {
    pub const fn value(self) -> u32 {
        match self {
            FlagValue::DisconnectToPort => 1,
            FlagValue::TerminateSession => 2,
            FlagValue::ConnectToPortError => 3,
            FlagValue::Other(v) => v,
        }
    }

    pub const fn from_value(v: u32) -> Self {
        match v {
            1 => FlagValue::DisconnectToPort,
            2 => FlagValue::TerminateSession,
            3 => FlagValue::ConnectToPortError,
            v => FlagValue::Other(v),
        }
    }

    /// The 4-byte payload.
    pub const fn to_payload(self) -> [u8; 4] {
        self.value().to_be_bytes()
    }

    /// Reads a Flag payload; `None` unless it is exactly 4 bytes.
    pub fn from_payload(p: &[u8]) -> Option<Self> {
        let b: [u8; 4] = p.try_into().ok()?;
        Some(Self::from_value(u32::from_be_bytes(b)))
    }

    pub const fn name(self) -> &'static str {
        match self {
            FlagValue::DisconnectToPort => "DisconnectToPort",
            FlagValue::TerminateSession => "TerminateSession",
            FlagValue::ConnectToPortError => "ConnectToPortError",
            FlagValue::Other(_) => "unknown",
        }
    }
}

impl<'a> arbitrary::Arbitrary<'a> for TypeName {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.int_in_range(0..=MESSAGE_TYPE_WIDTH)?;
        let bytes = u.bytes(len)?;
        TypeName::new(bytes).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

impl<'a> arbitrary::Arbitrary<'a> for MessageType {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let pick = u.int_in_range(0..=8u8)?;
        Ok(match pick {
            0..=6 => Self::DATA_CHANNEL[usize::from(pick)],
            7 => {
                let name = *u.choose(&CONTROL_CHANNEL_TYPES)?;
                Self::from_name(name.as_bytes()).map_err(|_| arbitrary::Error::IncorrectFormat)?
            }
            // Through `from_name`, as decoding does: a known name is its known variant.
            _ => Self::from_name(TypeName::arbitrary(u)?.as_bytes())
                .map_err(|_| arbitrary::Error::IncorrectFormat)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &[u8], pad: u8) -> [u8; 32] {
        let mut f = [pad; 32];
        f[..s.len()].copy_from_slice(s);
        f
    }

    #[test]
    fn space_and_nul_padding_decode_alike() {
        for pad in [b' ', 0u8] {
            assert_eq!(MessageType::from_wire(&field(b"acknowledge", pad)), MessageType::Acknowledge);
        }
    }

    #[test]
    fn trimming_follows_go_order_nul_then_space() {
        // NUL, then space: the NUL trim stops at the space, TrimSpace removes the space, the
        // inner NUL stays.
        assert_eq!(go_trim_message_type(b"\0 \0abc \0"), b"\0abc");
        assert_eq!(go_trim_message_type(b"\0\0  abc\t\n"), b"abc");
        // U+00A0 (no-break space) is white space for Go's TrimSpace.
        assert_eq!(go_trim_message_type("\u{a0}abc\u{a0}".as_bytes()), b"abc");
        // Invalid UTF-8 stops the trim.
        assert_eq!(go_trim_message_type(b"\xffabc "), b"\xffabc");
        assert_eq!(go_trim_message_type(b"   "), b"");
        // ASCII and multi-byte white space mixed at both ends.
        assert_eq!(go_trim_message_type("\u{2028} \tab c\u{3000} \u{85}\0".as_bytes()), b"ab c");
        assert_eq!(go_trim_message_type(b"ab\xc2"), b"ab\xc2");
    }

    #[test]
    fn comparison_is_case_sensitive() {
        let t = MessageType::from_name(b"Acknowledge").unwrap();
        assert!(matches!(t, MessageType::Other(_)));
    }

    #[test]
    fn long_names_are_refused() {
        assert_eq!(TypeName::new(&[b'a'; 33]), Err(TypeNameError { len: 33 }));
        assert!(TypeName::new(&[b'a'; 32]).is_ok());
    }

    #[test]
    fn flag_values() {
        assert_eq!(FlagValue::TerminateSession.to_payload(), [0, 0, 0, 2]);
        assert_eq!(FlagValue::from_payload(&[0, 0, 0, 3]), Some(FlagValue::ConnectToPortError));
        assert_eq!(FlagValue::from_payload(&[0, 0, 3]), None);
    }
}
