//! Snapshots of the annotated dump (`ssm_wire::dump::annotate`) of every golden vector, one
//! snapshot per vector, named after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use ssm_wire::{dump, Frame, HeaderFlags, MessageType, Overrides, PayloadType};

fn vectors() -> Vec<Value> {
    let doc: Value = serde_json::from_str(include_str!("vectors/frames.json")).expect("vectors parse");
    doc["vectors"].as_array().expect("vectors array").clone()
}

fn vector(name: &str) -> Value {
    vectors().into_iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no vector {name}"))
}

/// The bytes to dump: the vector's hex, or, for the encode-failure vector, the frame the
/// reference encoders tried to write. They ignore the given HeaderLength, PayloadLength and
/// digest and compute them, so that frame is `encode_with` without overrides.
fn bytes_of(v: &Value) -> Vec<u8> {
    if let Some(h) = v["hex"].as_str() {
        return hex::decode(h).unwrap();
    }
    assert_eq!(v["kind"], "encode-failure", "{}", v["name"]);
    let f = &v["input_fields"];
    let frame = Frame {
        message_type: MessageType::from_name(f["message_type"].as_str().unwrap().as_bytes()).unwrap(),
        schema_version: u32::try_from(f["schema_version"].as_u64().unwrap()).unwrap(),
        created_date_ms: f["created_date_ms"].as_u64().unwrap(),
        sequence_number: f["sequence_number"].as_i64().unwrap(),
        flags: HeaderFlags(f["flags"].as_u64().unwrap()),
        message_id: f["message_id"].as_str().unwrap().parse().unwrap(),
        payload_type: PayloadType(u32::try_from(f["payload_type"].as_u64().unwrap()).unwrap()),
        payload: hex::decode(f["payload_hex"].as_str().unwrap()).unwrap(),
    };
    assert!(frame.encode().is_err(), "the encode-failure vector encodes");
    frame.encode_with(&Overrides::default())
}

fn check(name: &str) {
    let v = vector(name);
    let text = dump::annotate(&bytes_of(&v));
    insta::with_settings!({ description => v["description"].as_str().unwrap_or_default(), omit_expression => true }, {
        insta::assert_snapshot!(name, text);
    });
}

macro_rules! dump_snapshots {
    ($($name:ident),* $(,)?) => {
        const NAMES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

dump_snapshots!(
    input_stream_data_short_output,
    acknowledge_for_seq0,
    output_stream_data_syn_handshake_request,
    output_stream_data_empty_payload_encode,
    output_stream_data_empty_payload_decode,
    channel_closed,
    input_stream_data_flag_terminate_session,
    input_stream_data_size,
    digest_mismatch,
    truncated_100_bytes,
    truncated_118_bytes,
    header_length_zero,
    header_length_too_large,
    header_length_112,
    payload_length_mismatch,
    message_type_nul_padded,
    start_publication_zero_created_date,
);

#[test]
fn every_vector_has_a_snapshot() {
    let names: Vec<String> = vectors().iter().map(|v| v["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), 17);
    assert_eq!(names, NAMES);
}
