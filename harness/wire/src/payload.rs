//! Typed models of every JSON payload of the data channel (protocol reference 4), and the Go
//! `encoding/json` conventions they are written with: keys in struct order, no white space,
//! `[]byte` as standard base64, nil slices as `null`, durations as integer nanoseconds, and `<`,
//! `>`, `&`, U+2028 and U+2029 escaped as `\u003c`-style sequences.

use std::io;

use serde::{Deserialize, Serialize};

use crate::types::{FlagValue, MessageType, PayloadType};

/// Serialises `value` exactly as Go's `json.Marshal` does.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising these models into a Vec cannot fail: they have string keys only and no
    // fallible `Serialize` impls.
    if value.serialize(&mut ser).is_err() {
        out.clear();
    }
    out
}

/// A `serde_json` formatter that escapes strings as Go's `encoding/json` does (HTML-safe).
#[derive(Debug, Clone, Copy, Default)]
pub struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc: &[u8] = match c {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc)?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape as E;
        let s: &[u8] = match escape {
            E::Quote => b"\\\"",
            E::ReverseSolidus => b"\\\\",
            E::LineFeed => b"\\n",
            E::CarriageReturn => b"\\r",
            E::Tab => b"\\t",
            // Go 1.19 writes \b and \f as \u0008 and \u000c.
            E::Backspace => b"\\u0008",
            E::FormFeed => b"\\u000c",
            E::Solidus => b"/",
            E::AsciiControl(b) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let buf = [b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
                return w.write_all(&buf);
            }
        };
        w.write_all(s)
    }
}

/// Base64 (standard alphabet, padded) for `[]byte` fields; `null` for an absent value.
mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }

    pub mod opt {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => super::serialize(b, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
            }
        }
    }
}

/// Client OpenDataChannel, the first (text) websocket message (4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpenDataChannelClient {
    pub message_schema_version: String,
    pub request_id: String,
    pub token_value: String,
    pub client_id: String,
    /// Added in the 2024-10 plugin; older clients omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
}

/// Agent OpenDataChannel (4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpenDataChannelAgent {
    pub message_schema_version: String,
    pub request_id: String,
    pub token_value: String,
    pub client_instance_id: String,
    pub client_id: String,
}

/// Either OpenDataChannel variant, told apart by `ClientInstanceId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenDataChannel {
    Client(OpenDataChannelClient),
    Agent(OpenDataChannelAgent),
}

impl OpenDataChannel {
    /// Parses the first text frame.
    pub fn parse(text: &[u8]) -> Result<Self, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_slice(text)?;
        if v.get("ClientInstanceId").is_some() {
            serde_json::from_value(v).map(OpenDataChannel::Agent)
        } else {
            serde_json::from_value(v).map(OpenDataChannel::Client)
        }
    }

    pub fn token_value(&self) -> &str {
        match self {
            OpenDataChannel::Client(c) => &c.token_value,
            OpenDataChannel::Agent(a) => &a.token_value,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        match self {
            OpenDataChannel::Client(c) => to_go_json(c),
            OpenDataChannel::Agent(a) => to_go_json(a),
        }
    }
}

/// Acknowledge payload (4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcknowledgeContent {
    #[serde(rename = "AcknowledgedMessageType", default)]
    pub message_type: String,
    #[serde(rename = "AcknowledgedMessageId", default)]
    pub message_id: String,
    /// The only key receivers use; a missing key reads as 0.
    #[serde(rename = "AcknowledgedMessageSequenceNumber", default)]
    pub sequence_number: i64,
    #[serde(rename = "IsSequentialMessage", default)]
    pub is_sequential_message: bool,
}

impl AcknowledgeContent {
    /// The ack a receiver sends for a stream message (ACK-004).
    pub fn for_message(message_type: &MessageType, message_id: uuid::Uuid, sequence_number: i64) -> Self {
        AcknowledgeContent {
            message_type: message_type.name(),
            message_id: message_id.hyphenated().to_string(),
            sequence_number,
            is_sequential_message: true,
        }
    }
}

/// channel_closed payload (4.3); the agent's struct lacks `Output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelClosed {
    #[serde(default)]
    pub message_id: String,
    /// Epoch milliseconds as a decimal string.
    #[serde(default)]
    pub created_date: String,
    #[serde(default)]
    pub destination_id: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub message_type: String,
    #[serde(default)]
    pub schema_version: i64,
    #[serde(default)]
    pub output: String,
}

impl ChannelClosed {
    /// The payload the service sends: `MessageType` `channel_closed`, `SchemaVersion` 1 and
    /// `CreatedDate` as decimal epoch milliseconds.
    pub fn new(
        message_id: uuid::Uuid,
        created_ms: u64,
        destination_id: &str,
        session_id: &str,
        output: &str,
    ) -> Self {
        ChannelClosed {
            message_id: message_id.hyphenated().to_string(),
            created_date: created_ms.to_string(),
            destination_id: destination_id.to_owned(),
            session_id: session_id.to_owned(),
            message_type: "channel_closed".to_owned(),
            schema_version: 1,
            output: output.to_owned(),
        }
    }
}

/// agent_session_state payload (4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentSessionState {
    pub schema_version: i64,
    /// `Connected` or `Terminating`.
    pub session_state: String,
    pub session_id: String,
}

/// ActionType strings of the handshake.
pub mod action_type {
    pub const SESSION_TYPE: &str = "SessionType";
    pub const KMS_ENCRYPTION: &str = "KMSEncryption";
}

/// SessionType values.
pub mod session_type {
    pub const STANDARD_STREAM: &str = "Standard_Stream";
    pub const INTERACTIVE_COMMANDS: &str = "InteractiveCommands";
    pub const NON_INTERACTIVE_COMMANDS: &str = "NonInteractiveCommands";
    pub const PORT: &str = "Port";
}

/// HandshakeRequest, PayloadType 5 (4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HandshakeRequest {
    pub agent_version: String,
    pub requested_client_actions: Option<Vec<RequestedClientAction>>,
}

/// One action the agent asks the client to perform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestedClientAction {
    pub action_type: String,
    /// Shape depends on the type: [`SessionTypeRequest`] or [`KmsEncryptionRequest`].
    pub action_parameters: serde_json::Value,
}

/// ActionParameters of a SessionType action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionTypeRequest {
    pub session_type: String,
    pub properties: serde_json::Value,
}

/// ActionParameters of a KMSEncryption action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsEncryptionRequest {
    #[serde(rename = "KMSKeyId")]
    pub kms_key_id: String,
    /// Only in the agent's struct; the 2024-10 client ignores it.
    #[serde(rename = "Challenge", default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

impl KmsEncryptionRequest {
    /// The parameters the agent sends: the key id and (in the agent's struct only) a random
    /// challenge, written as standard base64 (4.5).
    pub fn new(kms_key_id: &str, challenge: Option<&[u8]>) -> Self {
        use base64::Engine;
        KmsEncryptionRequest {
            kms_key_id: kms_key_id.to_owned(),
            challenge: challenge.map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
        }
    }
}

impl RequestedClientAction {
    /// A KMSEncryption action (HS-006).
    pub fn kms_encryption(params: &KmsEncryptionRequest) -> Self {
        RequestedClientAction {
            action_type: action_type::KMS_ENCRYPTION.to_owned(),
            action_parameters: serde_json::to_value(params).unwrap_or_default(),
        }
    }

    /// The parameters read as a KMSEncryption request.
    pub fn as_kms_encryption(&self) -> Option<KmsEncryptionRequest> {
        (self.action_type == action_type::KMS_ENCRYPTION)
            .then(|| serde_json::from_value(self.action_parameters.clone()).ok())
            .flatten()
    }

    /// A SessionType action (HS-001).
    pub fn session_type(session_type: &str, properties: serde_json::Value) -> Self {
        RequestedClientAction {
            action_type: action_type::SESSION_TYPE.to_owned(),
            action_parameters: serde_json::to_value(SessionTypeRequest {
                session_type: session_type.to_owned(),
                properties,
            })
            .unwrap_or_default(),
        }
    }

    /// The parameters read as a SessionType request.
    pub fn as_session_type(&self) -> Option<SessionTypeRequest> {
        (self.action_type == action_type::SESSION_TYPE)
            .then(|| serde_json::from_value(self.action_parameters.clone()).ok())
            .flatten()
    }
}

/// ActionStatus values (4.6).
pub mod action_status {
    pub const SUCCESS: u32 = 1;
    pub const FAILED: u32 = 2;
    pub const UNSUPPORTED: u32 = 3;
}

/// HandshakeResponse, PayloadType 6 (4.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HandshakeResponse {
    pub client_version: String,
    pub processed_client_actions: Option<Vec<ProcessedClientAction>>,
    pub errors: Option<Vec<String>>,
}

/// The client's answer to one requested action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessedClientAction {
    pub action_type: String,
    /// 1 = Success, 2 = Failed, 3 = Unsupported (the 2024-10 client leaves 0 for unknown types).
    pub action_status: u32,
    pub action_result: serde_json::Value,
    pub error: String,
}

/// ActionResult of a successful KMSEncryption action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsEncryptionResponse {
    #[serde(rename = "KMSCipherTextKey", with = "b64")]
    pub kms_cipher_text_key: Vec<u8>,
    #[serde(rename = "KMSCipherTextHash", with = "b64::opt", default)]
    pub kms_cipher_text_hash: Option<Vec<u8>>,
}

impl ProcessedClientAction {
    /// The ActionResult read as a KMSEncryption result, for an action of that type.
    pub fn as_kms_encryption(&self) -> Option<KmsEncryptionResponse> {
        (self.action_type == action_type::KMS_ENCRYPTION)
            .then(|| serde_json::from_value(self.action_result.clone()).ok())
            .flatten()
    }
}

/// HandshakeComplete, PayloadType 7 (4.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HandshakeComplete {
    /// Integer nanoseconds (a Go `time.Duration`, HS-005).
    pub handshake_time_to_complete: i64,
    pub customer_message: String,
}

/// EncChallengeRequest / EncChallengeResponse, PayloadTypes 8 and 9 (4.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncChallenge {
    #[serde(with = "b64")]
    pub challenge: Vec<u8>,
}

/// Size, PayloadType 3 (4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub cols: u32,
    pub rows: u32,
}

/// The ExitCode payload text, `EXIT_CODE: <decimal>` (PayloadType 12).
pub fn exit_code_payload(code: i32) -> Vec<u8> {
    format!("EXIT_CODE: {code}").into_bytes()
}

/// Reads an ExitCode payload.
pub fn parse_exit_code(payload: &[u8]) -> Option<i32> {
    std::str::from_utf8(payload).ok()?.strip_prefix("EXIT_CODE: ")?.parse().ok()
}

/// Why a payload could not be read as its declared type.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("{what} payload is not valid JSON of its shape: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("Flag payload must be 4 bytes, got {0}")]
    FlagLength(usize),
    #[error("ExitCode payload is not `EXIT_CODE: <n>`")]
    ExitCode,
}

/// A payload read according to the frame's MessageType and PayloadType.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value")]
pub enum Payload {
    Acknowledge(AcknowledgeContent),
    ChannelClosed(ChannelClosed),
    AgentSessionState(AgentSessionState),
    HandshakeRequest(HandshakeRequest),
    HandshakeResponse(HandshakeResponse),
    HandshakeComplete(HandshakeComplete),
    EncChallengeRequest(EncChallenge),
    EncChallengeResponse(EncChallenge),
    Size(Size),
    Flag { value: u32, name: &'static str },
    ExitCode(i32),
}

fn json<'a, T: Deserialize<'a>>(what: &'static str, b: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(b).map_err(|source| PayloadError::Json { what, source })
}

impl Payload {
    /// Reads the payload of a frame; `Ok(None)` for raw payloads (Output, StdErr, unknown types,
    /// publication frames).
    pub fn parse(t: &MessageType, pt: PayloadType, b: &[u8]) -> Result<Option<Payload>, PayloadError> {
        Ok(Some(match t {
            MessageType::Acknowledge => Payload::Acknowledge(json("acknowledge", b)?),
            MessageType::ChannelClosed => Payload::ChannelClosed(json("channel_closed", b)?),
            MessageType::AgentSessionState => Payload::AgentSessionState(json("agent_session_state", b)?),
            MessageType::InputStreamData | MessageType::OutputStreamData => match pt {
                PayloadType::HANDSHAKE_REQUEST => Payload::HandshakeRequest(json("HandshakeRequest", b)?),
                PayloadType::HANDSHAKE_RESPONSE => Payload::HandshakeResponse(json("HandshakeResponse", b)?),
                PayloadType::HANDSHAKE_COMPLETE => Payload::HandshakeComplete(json("HandshakeComplete", b)?),
                PayloadType::ENC_CHALLENGE_REQUEST => {
                    Payload::EncChallengeRequest(json("EncChallengeRequest", b)?)
                }
                PayloadType::ENC_CHALLENGE_RESPONSE => {
                    Payload::EncChallengeResponse(json("EncChallengeResponse", b)?)
                }
                PayloadType::SIZE => Payload::Size(json("Size", b)?),
                PayloadType::FLAG => {
                    let f = FlagValue::from_payload(b).ok_or(PayloadError::FlagLength(b.len()))?;
                    Payload::Flag { value: f.value(), name: f.name() }
                }
                PayloadType::EXIT_CODE => {
                    Payload::ExitCode(parse_exit_code(b).ok_or(PayloadError::ExitCode)?)
                }
                _ => return Ok(None),
            },
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping() {
        let s = to_go_json(&"a<b>&c\u{2028}\u{8}\u{c}\u{1}\n\"\\/");
        assert_eq!(
            std::str::from_utf8(&s).unwrap(),
            r#""a\u003cb\u003e\u0026c\u2028\u0008\u000c\u0001\n\"\\/""#
        );
    }

    #[test]
    fn ack_json_matches_reference_bytes() {
        let id = uuid::Uuid::parse_str("dd01e56b-ff48-483e-a508-b5f073f31b16").unwrap();
        let a = AcknowledgeContent::for_message(&MessageType::InputStreamData, id, 0);
        assert_eq!(
            std::str::from_utf8(&to_go_json(&a)).unwrap(),
            r#"{"AcknowledgedMessageType":"input_stream_data","AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16","AcknowledgedMessageSequenceNumber":0,"IsSequentialMessage":true}"#
        );
    }

    #[test]
    fn missing_ack_sequence_reads_as_zero() {
        let a: AcknowledgeContent = serde_json::from_str(r#"{"AcknowledgedMessageType":"x"}"#).unwrap();
        assert_eq!(a.sequence_number, 0);
    }

    #[test]
    fn handshake_shapes() {
        let req = HandshakeRequest {
            agent_version: "3.3.987.0".into(),
            requested_client_actions: Some(vec![RequestedClientAction::session_type(
                session_type::STANDARD_STREAM,
                serde_json::Value::Null,
            )]),
        };
        assert_eq!(
            std::str::from_utf8(&to_go_json(&req)).unwrap(),
            r#"{"AgentVersion":"3.3.987.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}}]}"#
        );
        let resp = HandshakeResponse {
            client_version: "1.2.0.0".into(),
            processed_client_actions: Some(vec![ProcessedClientAction {
                action_type: "SessionType".into(),
                action_status: action_status::SUCCESS,
                action_result: serde_json::Value::Null,
                error: String::new(),
            }]),
            errors: None,
        };
        assert_eq!(
            std::str::from_utf8(&to_go_json(&resp)).unwrap(),
            r#"{"ClientVersion":"1.2.0.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}"#
        );
        let c = EncChallenge { challenge: vec![1, 2, 3] };
        assert_eq!(to_go_json(&c), br#"{"Challenge":"AQID"}"#);
        let k = KmsEncryptionResponse { kms_cipher_text_key: vec![0xff], kms_cipher_text_hash: None };
        assert_eq!(to_go_json(&k), br#"{"KMSCipherTextKey":"/w==","KMSCipherTextHash":null}"#);
    }

    #[test]
    fn kms_action_shapes() {
        let params = KmsEncryptionRequest::new("alias/k", Some(&[1, 2, 3]));
        let a = RequestedClientAction::kms_encryption(&params);
        assert_eq!(
            std::str::from_utf8(&to_go_json(&a)).unwrap(),
            r#"{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"alias/k","Challenge":"AQID"}}"#
        );
        assert_eq!(a.as_kms_encryption(), Some(params));
        assert_eq!(a.as_session_type(), None);
        let k = KmsEncryptionResponse { kms_cipher_text_key: vec![9; 4], kms_cipher_text_hash: None };
        let p = ProcessedClientAction {
            action_type: action_type::KMS_ENCRYPTION.into(),
            action_status: action_status::SUCCESS,
            action_result: serde_json::to_value(&k).unwrap(),
            error: String::new(),
        };
        assert_eq!(p.as_kms_encryption(), Some(k));
        assert_eq!(
            ProcessedClientAction { action_type: "SessionType".into(), ..p }.as_kms_encryption(),
            None
        );
    }

    #[test]
    fn exit_code_text() {
        assert_eq!(exit_code_payload(1), b"EXIT_CODE: 1");
        assert_eq!(parse_exit_code(b"EXIT_CODE: -3"), Some(-3));
        assert_eq!(parse_exit_code(b"EXIT_CODE:3"), None);
    }

    #[test]
    fn open_data_channel_variants() {
        let c = br#"{"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"t","ClientId":"c","ClientVersion":"1.2.0.0"}"#;
        let p = OpenDataChannel::parse(c).unwrap();
        assert!(matches!(p, OpenDataChannel::Client(_)));
        assert_eq!(p.to_json(), c.to_vec());
        let a = br#"{"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"t","ClientInstanceId":"i-1","ClientId":"c"}"#;
        let p = OpenDataChannel::parse(a).unwrap();
        assert!(matches!(p, OpenDataChannel::Agent(_)));
        assert_eq!(p.to_json(), a.to_vec());
    }
}
