//! The 17 golden vectors of the reference Go implementations: encode vectors byte for byte,
//! decode vectors field by field against both reference decoders, and the harness's own verdict
//! for every malformed one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use ssm_wire::{decode, DecodeError, Frame, HeaderFlags, MessageType, PayloadType, Req};

fn vectors() -> Vec<Value> {
    let text = include_str!("vectors/frames.json");
    let doc: Value = serde_json::from_str(text).expect("vectors parse");
    doc["vectors"].as_array().expect("vectors array").clone()
}

fn frame_from_fields(f: &Value) -> Frame {
    Frame {
        message_type: MessageType::from_name(f["message_type"].as_str().unwrap().as_bytes()).unwrap(),
        schema_version: f["schema_version"].as_u64().unwrap() as u32,
        created_date_ms: f["created_date_ms"].as_u64().unwrap(),
        sequence_number: f["sequence_number"].as_i64().unwrap(),
        flags: HeaderFlags(f["flags"].as_u64().unwrap()),
        message_id: f["message_id"].as_str().unwrap().parse().unwrap(),
        payload_type: PayloadType(f["payload_type"].as_u64().unwrap() as u32),
        payload: hex::decode(f["payload_hex"].as_str().unwrap()).unwrap(),
    }
}

/// The harness's verdict for each vector: the requirement IDs of its violations, or the decode
/// error. Where the reference decoders panic or disagree, protocol.md section 9 decides.
fn expected_verdict(name: &str) -> Result<Vec<Req>, DecodeError> {
    use Req::*;
    Ok(match name {
        "input_stream_data_short_output"
        | "acknowledge_for_seq0"
        | "output_stream_data_syn_handshake_request"
        | "channel_closed"
        | "input_stream_data_flag_terminate_session"
        | "input_stream_data_size"
        | "start_publication_zero_created_date" => vec![],
        // The sender broke FRAME-012; receivers decode it as empty (FRAME-013) and keep it.
        "output_stream_data_empty_payload_decode" => vec![Frame012],
        "digest_mismatch" => vec![Frame008],
        "truncated_100_bytes" => return Err(DecodeError::Truncated { len: 100 }),
        "truncated_118_bytes" => return Err(DecodeError::Truncated { len: 118 }),
        "header_length_too_large" => {
            return Err(DecodeError::HeaderLengthBeyondFrame { header_length: 1000, len: 123 })
        }
        // The payload slice starts early, so PayloadLength and the digest disagree with it too.
        "header_length_zero" => vec![Frame009, Frame011, Frame008],
        "header_length_112" => vec![Frame011, Frame011, Frame008],
        "payload_length_mismatch" => vec![Frame011],
        // NUL padding is accepted (FRAME-004) but is not what FRAME-003 tells senders to write.
        "message_type_nul_padded" => vec![Frame003],
        other => panic!("no expected verdict for vector {other}"),
    })
}

#[test]
fn there_are_seventeen_vectors() {
    assert_eq!(vectors().len(), 17);
}

#[test]
fn encode_vectors_match_byte_for_byte() {
    let mut n = 0;
    for v in vectors() {
        let kind = v["kind"].as_str().unwrap();
        let name = v["name"].as_str().unwrap();
        match kind {
            "encode+decode" => {
                let frame = frame_from_fields(&v["input_fields"]);
                let bytes = frame.encode().unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(hex::encode(&bytes), v["hex"].as_str().unwrap(), "{name}");
                assert_eq!(bytes.len() as u64, v["length_bytes"].as_u64().unwrap(), "{name}");
                n += 1;
            }
            "encode-failure" => {
                let frame = frame_from_fields(&v["input_fields"]);
                let err = frame.encode().expect_err(name);
                assert_eq!(
                    err.violations.iter().map(|v| v.req()).collect::<Vec<_>>(),
                    [Req::Frame012],
                    "{name}"
                );
                n += 1;
            }
            _ => {}
        }
    }
    assert_eq!(n, 8);
}

fn field_map(w: &ssm_wire::WireFrame<'_>) -> serde_json::Map<String, Value> {
    let v = serde_json::json!({
        "header_length": w.header_length,
        "message_type": w.message_type.name(),
        "schema_version": w.schema_version,
        "created_date_ms": w.created_date_ms,
        "sequence_number": w.sequence_number,
        "flags": w.flags.0,
        "message_id": w.message_id.to_string(),
        "payload_digest_hex": hex::encode(w.payload_digest),
        "payload_type": w.payload_type.0,
        "payload_length": w.payload_length,
        "payload_hex": hex::encode(w.payload),
    });
    v.as_object().unwrap().clone()
}

#[test]
fn decoders_agree_with_both_references_field_by_field() {
    let mut compared = 0;
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let Some(hex_str) = v["hex"].as_str() else { continue };
        let bytes = hex::decode(hex_str).unwrap();
        let ours = decode(&bytes);
        for reference in ["reference_decode_amazon_ssm_agent", "reference_decode_session_manager_plugin"] {
            let r = &v[reference];
            let panicked = r.get("panic").is_some_and(|p| !p.is_null());
            let deser_failed = r.get("deserialize_error").is_some_and(|p| !p.is_null());
            if panicked || deser_failed {
                assert!(ours.is_err(), "{name}: {reference} could not decode, we did");
                continue;
            }
            let w = ours.unwrap_or_else(|e| panic!("{name}: {e}"));
            let mine = field_map(&w);
            for (k, want) in r["fields"].as_object().unwrap() {
                if k == "payload_utf8" {
                    assert_eq!(Value::String(String::from_utf8_lossy(w.payload).into()), *want, "{name} {k}");
                    continue;
                }
                assert_eq!(mine.get(k), Some(want), "{name}: field {k} differs from {reference}");
                compared += 1;
            }
        }
    }
    assert!(compared > 250, "only {compared} fields compared");
}

#[test]
fn harness_verdict_for_every_vector() {
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let Some(hex_str) = v["hex"].as_str() else { continue };
        let bytes = hex::decode(hex_str).unwrap();
        let got = decode(&bytes).map(|w| w.validate().iter().map(|x| x.req()).collect::<Vec<_>>());
        assert_eq!(got, expected_verdict(name), "{name}");
    }
}

#[test]
fn reference_verdicts_are_where_the_harness_is_at_least_as_strict() {
    // Every frame a reference validator rejected, the harness drops or cannot decode.
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let Some(hex_str) = v["hex"].as_str() else { continue };
        let bytes = hex::decode(hex_str).unwrap();
        for reference in ["reference_decode_amazon_ssm_agent", "reference_decode_session_manager_plugin"] {
            let rejected = v[reference].get("validate_error").is_some_and(|e| !e.is_null());
            let exempt = name == "start_publication_zero_created_date"; // agent-only strictness, FRAME-009 exempts it
            if rejected && !exempt {
                let dropped = decode(&bytes).map(|w| w.must_drop()).unwrap_or(true);
                assert!(dropped, "{name}: {reference} rejected it, the harness would accept it");
            }
        }
    }
}
