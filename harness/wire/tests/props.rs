//! Property tests of the codec: encode/decode identities on every frame the encoder accepts,
//! a total oracle for `decode` on arbitrary and mutated bytes, Go-compatible JSON on arbitrary
//! strings, and the digest check (FRAME-008) on single-byte changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};
use ssm_wire::layout::{self, HEADER_SIZE};
use ssm_wire::payload::{self, *};
use ssm_wire::{decode, DecodeError, Frame, HeaderFlags, MessageType, PayloadType, Req, TypeName};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Control-channel type names of the agent contracts (protocol reference 3.1).
const CONTROL_CHANNEL: [&str; 8] = [
    "interactive_shell",
    "agent_task_reply",
    "agent_task_complete",
    "agent_task_acknowledge",
    "agent_job",
    "agent_job_ack",
    "agent_job_reply_ack",
    "agent_job_reply",
];

/// Every kind of MessageType the encoder accepts: the data-channel names, the control-channel
/// names, and arbitrary wire-canonical names (printable ASCII, no space at either end, 1..=32
/// bytes). Names go through `from_name`, so a known name is always its known variant.
fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        3 => proptest::sample::select(MessageType::DATA_CHANNEL.to_vec()),
        1 => proptest::sample::select(CONTROL_CHANNEL.to_vec())
            .prop_map(|n| MessageType::from_name(n.as_bytes()).unwrap()),
        2 => "[!-~]([ -~]{0,30}[!-~])?".prop_map(|n| MessageType::from_name(n.as_bytes()).unwrap()),
    ]
}

/// A payload of 0..4096 bytes, biased towards short ones.
fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..=4096),
    ]
}

/// Frames that `Frame::check` accepts: raw values, then the fix-ups the requirements impose
/// (SchemaVersion 1, CreatedDate non-zero except on publication frames, non-empty stream payload
/// with PayloadType 1..12 and a 4-byte Flag payload, TYPE-004 conventions on acks and
/// agent_session_state).
fn valid_frame() -> impl Strategy<Value = Frame> {
    (
        message_type(),
        prop_oneof![Just(0u64), Just(1_700_000_000_000u64), any::<u64>()],
        any::<i64>(),
        prop_oneof![Just(0u64), Just(1), Just(3), any::<u64>()],
        any::<[u8; 16]>(),
        prop_oneof![0u32..=13, any::<u32>()],
        payload_bytes(),
    )
        .prop_map(|(message_type, date, seq, flags, id, pt, mut payload)| {
            let mut f = Frame {
                message_type,
                schema_version: 1,
                created_date_ms: date,
                sequence_number: seq,
                flags: HeaderFlags(flags),
                message_id: Uuid::from_bytes(id),
                payload_type: PayloadType(pt),
                payload: Vec::new(),
            };
            if f.created_date_ms == 0 && !f.message_type.is_publication() {
                f.created_date_ms = 1;
            }
            if f.message_type.is_stream() {
                f.payload_type = PayloadType(1 + pt % 12);
                if f.payload_type == PayloadType::FLAG {
                    payload.resize(4, 0);
                } else if payload.is_empty() {
                    payload.push(pt as u8);
                }
            }
            if matches!(f.message_type, MessageType::Acknowledge | MessageType::AgentSessionState) {
                f.sequence_number = 0;
                f.flags = HeaderFlags::SYN_FIN;
                f.payload_type = PayloadType::NONE;
            }
            f.payload = payload;
            f
        })
}

/// One change to an encoded frame.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flip bit `bit` of the byte at `index % len`.
    BitFlip {
        index: usize,
        bit: u8,
    },
    /// Keep only the first `len % (frame length + 1)` bytes.
    Truncate {
        len: usize,
    },
    HeaderLength(u32),
    PayloadLength(u32),
    /// Overwrite digest byte `index` with `value` (possibly the same value).
    Digest {
        index: usize,
        value: u8,
    },
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(index, bit)| Mutation::BitFlip { index, bit }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        prop_oneof![0u32..=130, Just(u32::MAX), Just(u32::MAX - 3), any::<u32>()]
            .prop_map(Mutation::HeaderLength),
        prop_oneof![0u32..=5000, Just(u32::MAX), any::<u32>()].prop_map(Mutation::PayloadLength),
        (0usize..32, any::<u8>()).prop_map(|(index, value)| Mutation::Digest { index, value }),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::BitFlip { index, bit } => {
            let i = index % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Mutation::Truncate { len } => bytes.truncate(len % (bytes.len() + 1)),
        Mutation::HeaderLength(v) => bytes[layout::HEADER_LENGTH].copy_from_slice(&v.to_be_bytes()),
        Mutation::PayloadLength(v) => bytes[layout::PAYLOAD_LENGTH].copy_from_slice(&v.to_be_bytes()),
        Mutation::Digest { index, value } => bytes[layout::PAYLOAD_DIGEST.start + index] = *value,
        Mutation::Append(tail) => bytes.extend_from_slice(tail),
    }
}

// ---------------------------------------------------------------------------------------------
// Oracles
// ---------------------------------------------------------------------------------------------

/// What `decode` must do with `bytes`, computed independently from the layout of 2.1 and the
/// decoder rules of 2.5: the typed error, or the offset at which the payload starts.
fn expected_decode(bytes: &[u8]) -> Result<usize, DecodeError> {
    if bytes.len() < HEADER_SIZE {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let header_length = u32::from_be_bytes(bytes[0..4].try_into().unwrap());
    let start = header_length as u64 + 4;
    if start > bytes.len() as u64 {
        return Err(DecodeError::HeaderLengthBeyondFrame { header_length, len: bytes.len() });
    }
    Ok(start as usize)
}

/// Decodes `bytes` and checks the result against [`expected_decode`] field by field; then runs
/// everything a receiver or the CLI would run on the decoded frame.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let got = decode(bytes);
    match (expected_decode(bytes), got) {
        (Err(want), Err(got)) => prop_assert_eq!(want, got),
        (Ok(start), Ok(w)) => {
            prop_assert_eq!(w.payload, &bytes[start..]);
            prop_assert_eq!(w.bytes(), bytes);
            let be32 = |r: std::ops::Range<usize>| u32::from_be_bytes(bytes[r].try_into().unwrap());
            let be64 = |r: std::ops::Range<usize>| u64::from_be_bytes(bytes[r].try_into().unwrap());
            prop_assert_eq!(w.header_length, be32(layout::HEADER_LENGTH));
            prop_assert_eq!(w.schema_version, be32(layout::SCHEMA_VERSION));
            prop_assert_eq!(w.created_date_ms, be64(layout::CREATED_DATE));
            prop_assert_eq!(w.sequence_number, be64(layout::SEQUENCE_NUMBER) as i64);
            prop_assert_eq!(w.flags.0, be64(layout::FLAGS));
            prop_assert_eq!(&ssm_wire::message_id_to_wire(w.message_id)[..], &bytes[layout::MESSAGE_ID]);
            prop_assert_eq!(&w.payload_digest[..], &bytes[layout::PAYLOAD_DIGEST]);
            prop_assert_eq!(w.payload_type.0, be32(layout::PAYLOAD_TYPE));
            prop_assert_eq!(w.payload_length, be32(layout::PAYLOAD_LENGTH));
            prop_assert_eq!(&w.message_type_field()[..], &bytes[layout::MESSAGE_TYPE]);
            let violations = w.validate();
            prop_assert_eq!(
                w.must_drop(),
                violations.iter().any(|v| v.disposition() == ssm_wire::Disposition::Drop)
            );
            prop_assert_eq!(
                violations.iter().any(|v| v.req() == Req::Frame008),
                ssm_wire::digest(w.payload) != w.payload_digest
            );
            let _ = Payload::parse(&w.message_type, w.payload_type, w.payload);
            let _ = ssm_wire::dump::annotate(bytes);
            if violations.is_empty() {
                prop_assert_eq!(w.to_frame().encode().unwrap(), bytes);
            }
        }
        (want, got) => {
            return Err(TestCaseError::fail(format!("decode: expected {want:?}, got {:?}", got.map(|_| ()))))
        }
    }
    Ok(())
}

/// Go 1.19 `encoding/json` string encoding with HTML escaping (encode.go, `encodeState.string`),
/// written out independently of `GoFormatter`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// (a) encode -> decode is the identity; (c) decode -> encode reproduces the bytes
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn encode_then_decode_is_identity(frame in valid_frame()) {
        prop_assert_eq!(frame.check(), Vec::new(), "strategy produced a frame the encoder refuses");
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(bytes.len(), HEADER_SIZE + frame.payload.len());
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        let w = decode(&bytes).unwrap();
        prop_assert_eq!(w.validate(), Vec::new());
        prop_assert!(!w.must_drop());
        prop_assert_eq!(w.header_length, layout::HEADER_LENGTH_VALUE);
        prop_assert_eq!(w.payload_length as usize, frame.payload.len());
        prop_assert_eq!(w.payload_digest, ssm_wire::digest(&frame.payload));
        prop_assert_eq!(w.message_type_field(), frame.message_type.to_wire());
        prop_assert_eq!(w.to_frame(), frame);
    }

    #[test]
    fn decode_then_encode_reproduces_bytes(frame in valid_frame()) {
        let bytes = frame.encode().unwrap();
        let again = decode(&bytes).unwrap().to_frame().encode().unwrap();
        prop_assert_eq!(again, bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) decode is total and typed on arbitrary and mutated bytes
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn decode_of_arbitrary_bytes_matches_the_oracle(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..=240),
            // A plausible HeaderLength in front makes the decodable case common.
            (0u32..=200, proptest::collection::vec(any::<u8>(), 116..=400)).prop_map(|(hl, rest)| {
                let mut b = hl.to_be_bytes().to_vec();
                b.extend(rest);
                b
            }),
        ]
    ) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decode_of_mutated_frames_matches_the_oracle(
        frame in valid_frame(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = frame.encode().unwrap();
        for m in &mutations {
            // A truncation may leave too few bytes for a later field overwrite; skip those.
            let needs_header = matches!(m, Mutation::HeaderLength(_) | Mutation::PayloadLength(_) | Mutation::Digest { .. });
            if (needs_header && bytes.len() < HEADER_SIZE) || (matches!(m, Mutation::BitFlip { .. }) && bytes.is_empty()) {
                continue;
            }
            apply(&mut bytes, m);
        }
        check_decode(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------------------
// (e) FRAME-008 is flagged exactly when a payload or digest byte changes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Change {
    None,
    Payload {
        index: usize,
        xor: u8,
    },
    Digest {
        index: usize,
        xor: u8,
    },
    /// A header byte outside HeaderLength and the digest (which move or are the digest).
    OtherHeader {
        index: usize,
        xor: u8,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::None),
        (any::<usize>(), 1u8..=255).prop_map(|(index, xor)| Change::Payload { index, xor }),
        (0usize..32, 1u8..=255).prop_map(|(index, xor)| Change::Digest { index, xor }),
        (prop_oneof![4usize..80, 112usize..120], 1u8..=255)
            .prop_map(|(index, xor)| Change::OtherHeader { index, xor }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn digest_violation_iff_payload_or_digest_changed(frame in valid_frame(), c in change()) {
        let mut bytes = frame.encode().unwrap();
        let expect_mismatch = match c {
            Change::None => false,
            Change::Payload { index, xor } => {
                if frame.payload.is_empty() {
                    return Ok(());
                }
                bytes[HEADER_SIZE + index % frame.payload.len()] ^= xor;
                true
            }
            Change::Digest { index, xor } => {
                bytes[layout::PAYLOAD_DIGEST.start + index] ^= xor;
                true
            }
            Change::OtherHeader { index, xor } => {
                bytes[index] ^= xor;
                false
            }
        };
        let w = decode(&bytes).unwrap();
        let n = w.validate().iter().filter(|v| v.req() == Req::Frame008).count();
        prop_assert_eq!(n, usize::from(expect_mismatch), "{:?}: {:?}", c, w.validate());
        prop_assert_eq!(w.digest_matches(), !expect_mismatch);
        if expect_mismatch {
            prop_assert!(w.must_drop(), "a digest mismatch must be dropped");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) JSON payload models and the Go formatter
// ---------------------------------------------------------------------------------------------

/// Text with the characters Go escapes over-represented.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        1 => proptest::collection::vec(
            proptest::sample::select(vec!['<', '>', '&', '"', '\\', '/', '\n', '\r', '\t', '\u{8}', '\u{c}',
                '\u{0}', '\u{1f}', '\u{7f}', '\u{2028}', '\u{2029}', '\u{fffd}', 'é', '😀', 'a']),
            0..24,
        ).prop_map(|v| v.into_iter().collect()),
    ]
}

/// JSON values without floats (which `serde_json` does not promise to round-trip bit for bit).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn bytes_field() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..80)
}

/// Serialises with the Go conventions, checks the HTML-safe property, and parses back.
fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: &T,
) -> Result<Vec<u8>, TestCaseError> {
    let json = payload::to_go_json(v);
    prop_assert!(!json.is_empty(), "serialisation failed for {:?}", v);
    let text = std::str::from_utf8(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
        "unescaped HTML-unsafe character in {}",
        text
    );
    prop_assert!(!text.bytes().any(|b| b < 0x20), "raw control byte in {}", text);
    let back: T = serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(&back, v);
    // Same value, same bytes: serialisation is deterministic and stable under a round trip.
    prop_assert_eq!(payload::to_go_json(&back), json.clone());
    Ok(json)
}

/// A payload parsed by `Payload::parse` from a frame of `t`/`pt` must be the model it was made
/// from.
fn parses_as(t: MessageType, pt: PayloadType, json: &[u8], want: Payload) -> Result<(), TestCaseError> {
    let got = Payload::parse(&t, pt, json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(got, Some(want));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn go_formatter_matches_go_and_parses_back(s in text()) {
        let json = payload::to_go_json(&s);
        let text = String::from_utf8(json.clone()).unwrap();
        prop_assert_eq!(&text, &go_quote(&s));
        let back: String = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn go_formatter_escapes_inside_keys_and_nested_values(k in text(), v in text()) {
        let mut m = serde_json::Map::new();
        m.insert(k.clone(), serde_json::Value::Array(vec![serde_json::Value::String(v.clone())]));
        let json = String::from_utf8(payload::to_go_json(&m)).unwrap();
        prop_assert_eq!(&json, &format!("{{{}:[{}]}}", go_quote(&k), go_quote(&v)));
        let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn open_data_channel_round_trips(
        (a, b, c, d) in (text(), text(), text(), text()),
        version in proptest::option::of(text()),
        agent in any::<bool>(),
    ) {
        let odc = if agent {
            // `ClientInstanceId` is what tells the agent variant apart.
            OpenDataChannel::Agent(OpenDataChannelAgent {
                message_schema_version: "1.0".into(), request_id: a, token_value: b, client_instance_id: c, client_id: d,
            })
        } else {
            OpenDataChannel::Client(OpenDataChannelClient {
                message_schema_version: "1.0".into(), request_id: a, token_value: b, client_id: c, client_version: version,
            })
        };
        let json = odc.to_json();
        let back = OpenDataChannel::parse(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.to_json(), json);
        prop_assert_eq!(&back, &odc);
        match &odc {
            OpenDataChannel::Agent(m) => { roundtrip(m)?; }
            OpenDataChannel::Client(m) => { roundtrip(m)?; }
        }
    }

    #[test]
    fn acknowledge_round_trips(t in text(), id in any::<[u8; 16]>(), seq in any::<i64>(), seq_flag in any::<bool>()) {
        let m = AcknowledgeContent { message_type: t, message_id: Uuid::from_bytes(id).to_string(), sequence_number: seq, is_sequential_message: seq_flag };
        let json = roundtrip(&m)?;
        parses_as(MessageType::Acknowledge, PayloadType::NONE, &json, Payload::Acknowledge(m))?;
    }

    #[test]
    fn channel_closed_and_session_state_round_trip(
        (a, b, c, d, e, f) in (text(), text(), text(), text(), text(), text()),
        schema in any::<i64>(),
    ) {
        let m = ChannelClosed { message_id: a, created_date: b, destination_id: c, session_id: d.clone(), message_type: e, schema_version: schema, output: f.clone() };
        let json = roundtrip(&m)?;
        parses_as(MessageType::ChannelClosed, PayloadType::NONE, &json, Payload::ChannelClosed(m))?;
        let s = AgentSessionState { schema_version: schema, session_state: f, session_id: d };
        let json = roundtrip(&s)?;
        parses_as(MessageType::AgentSessionState, PayloadType::NONE, &json, Payload::AgentSessionState(s))?;
    }

    #[test]
    fn handshake_request_round_trips(
        version in text(),
        actions in proptest::option::of(proptest::collection::vec(
            prop_oneof![
                (text(), json_value()).prop_map(|(st, props)| RequestedClientAction::session_type(&st, props)),
                (text(), proptest::option::of(text())).prop_map(|(key, challenge)| RequestedClientAction {
                    action_type: action_type::KMS_ENCRYPTION.into(),
                    action_parameters: serde_json::to_value(KmsEncryptionRequest { kms_key_id: key, challenge }).unwrap(),
                }),
                (text(), json_value()).prop_map(|(action_type, action_parameters)| RequestedClientAction { action_type, action_parameters }),
            ],
            0..4,
        )),
    ) {
        let m = HandshakeRequest { agent_version: version, requested_client_actions: actions };
        let json = roundtrip(&m)?;
        for a in m.requested_client_actions.iter().flatten() {
            roundtrip(a)?;
            if let Some(st) = a.as_session_type() {
                roundtrip(&st)?;
            }
            if a.action_type == action_type::KMS_ENCRYPTION {
                if let Ok(k) = serde_json::from_value::<KmsEncryptionRequest>(a.action_parameters.clone()) {
                    roundtrip(&k)?;
                }
            }
        }
        for t in [MessageType::OutputStreamData, MessageType::InputStreamData] {
            parses_as(t, PayloadType::HANDSHAKE_REQUEST, &json, Payload::HandshakeRequest(m.clone()))?;
        }
    }

    #[test]
    fn handshake_response_round_trips(
        version in text(),
        actions in proptest::option::of(proptest::collection::vec(
            (text(), any::<u32>(), json_value(), text()).prop_map(|(action_type, action_status, action_result, error)| {
                ProcessedClientAction { action_type, action_status, action_result, error }
            }),
            0..4,
        )),
        errors in proptest::option::of(proptest::collection::vec(text(), 0..4)),
        key in bytes_field(),
        hash in proptest::option::of(bytes_field()),
    ) {
        let m = HandshakeResponse { client_version: version, processed_client_actions: actions, errors };
        let json = roundtrip(&m)?;
        parses_as(MessageType::InputStreamData, PayloadType::HANDSHAKE_RESPONSE, &json, Payload::HandshakeResponse(m))?;
        let k = KmsEncryptionResponse { kms_cipher_text_key: key, kms_cipher_text_hash: hash };
        roundtrip(&k)?;
    }

    #[test]
    fn handshake_complete_challenge_and_size_round_trip(
        nanos in any::<i64>(),
        message in text(),
        challenge in bytes_field(),
        cols in any::<u32>(),
        rows in any::<u32>(),
    ) {
        let m = HandshakeComplete { handshake_time_to_complete: nanos, customer_message: message };
        let json = roundtrip(&m)?;
        parses_as(MessageType::OutputStreamData, PayloadType::HANDSHAKE_COMPLETE, &json, Payload::HandshakeComplete(m))?;
        let c = EncChallenge { challenge };
        let json = roundtrip(&c)?;
        parses_as(MessageType::OutputStreamData, PayloadType::ENC_CHALLENGE_REQUEST, &json, Payload::EncChallengeRequest(c.clone()))?;
        parses_as(MessageType::InputStreamData, PayloadType::ENC_CHALLENGE_RESPONSE, &json, Payload::EncChallengeResponse(c))?;
        let s = Size { cols, rows };
        let json = roundtrip(&s)?;
        prop_assert_eq!(json.clone(), format!("{{\"cols\":{cols},\"rows\":{rows}}}").into_bytes());
        parses_as(MessageType::InputStreamData, PayloadType::SIZE, &json, Payload::Size(s))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions found by fuzzing and property testing
// ---------------------------------------------------------------------------------------------

/// `MessageType::Other` holding a known name is the same frame on the wire as the known
/// variant, so the encoder must apply the known type's requirements to it.
#[test]
fn other_holding_a_known_name_is_checked_as_that_type() {
    let other = |n: &str| MessageType::Other(TypeName::new(n.as_bytes()).unwrap());
    let base = Frame {
        message_type: other("acknowledge"),
        schema_version: 1,
        created_date_ms: 1_700_000_000_000,
        sequence_number: 5,
        flags: HeaderFlags::NONE,
        message_id: Uuid::nil(),
        payload_type: PayloadType::OUTPUT,
        payload: b"{}".to_vec(),
    };
    // TYPE-004 applies to an acknowledge frame however its type is spelled.
    let reqs: Vec<Req> = base.check().iter().map(|v| v.req()).collect();
    assert_eq!(reqs, [Req::Type004]);
    // FRAME-012: an empty stream payload is refused.
    let empty = Frame { message_type: other("input_stream_data"), payload: Vec::new(), ..base.clone() };
    assert!(empty.check().iter().any(|v| v.req() == Req::Frame012), "{:?}", empty.check());
    // Whatever the encoder accepts decodes clean, as the known variant.
    let ok =
        Frame { sequence_number: 0, flags: HeaderFlags::SYN_FIN, payload_type: PayloadType::NONE, ..base };
    let bytes = ok.encode().unwrap();
    let w = decode(&bytes).unwrap();
    assert_eq!(w.validate(), Vec::new());
    assert_eq!(w.message_type, MessageType::Acknowledge);
    assert_eq!(w.to_frame().encode().unwrap(), bytes);
}
