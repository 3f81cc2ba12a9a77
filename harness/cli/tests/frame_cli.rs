//! `ssm-harness frame decode` and `frame encode`, run as the real binary against the golden
//! vectors and against malformed input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_ssm-harness");

/// What a finished run produced.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&self.stdout)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }
}

fn run(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssm-harness");
    let mut input = child.stdin.take().unwrap();
    // The child may exit before reading everything (usage errors); that is not a test failure.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn vectors() -> Vec<Value> {
    let doc: Value =
        serde_json::from_str(include_str!("../../wire/tests/vectors/frames.json")).expect("vectors parse");
    doc["vectors"].as_array().unwrap().clone()
}

fn vector(name: &str) -> Value {
    vectors().into_iter().find(|v| v["name"] == name).unwrap()
}

/// The harness verdict per vector, as asserted by the codec's golden tests: the requirement
/// IDs of the violations in order, or `None` when the bytes cannot be decoded (FRAME-010).
fn expected_verdict(name: &str) -> Option<Vec<&'static str>> {
    Some(match name {
        "input_stream_data_short_output"
        | "acknowledge_for_seq0"
        | "output_stream_data_syn_handshake_request"
        | "channel_closed"
        | "input_stream_data_flag_terminate_session"
        | "input_stream_data_size"
        | "start_publication_zero_created_date" => vec![],
        "output_stream_data_empty_payload_decode" => vec!["FRAME-012"],
        "digest_mismatch" => vec!["FRAME-008"],
        "truncated_100_bytes" | "truncated_118_bytes" | "header_length_too_large" => return None,
        "header_length_zero" => vec!["FRAME-009", "FRAME-011", "FRAME-008"],
        "header_length_112" => vec!["FRAME-011", "FRAME-011", "FRAME-008"],
        "payload_length_mismatch" => vec!["FRAME-011"],
        "message_type_nul_padded" => vec!["FRAME-003"],
        other => panic!("no expected verdict for vector {other}"),
    })
}

const FIELDS: [&str; 11] = [
    "header_length",
    "message_type",
    "schema_version",
    "created_date_ms",
    "sequence_number",
    "flags",
    "message_id",
    "payload_digest_hex",
    "payload_type",
    "payload_length",
    "payload_hex",
];

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("frame_cli-{name}"));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn decode_every_vector_like_the_reference_decoders() {
    let mut decoded = 0;
    let mut undecodable = 0;
    let mut fields_compared = 0;
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let Some(hex) = v["hex"].as_str() else { continue };
        let r = run(&["frame", "decode", "--hex", hex], b"");
        match expected_verdict(name) {
            None => {
                assert_eq!(r.code, 1, "{name}: {r:?}");
                let out = r.json();
                assert_eq!(out["decode_error"]["id"], "FRAME-010", "{name}");
                let detail = out["decode_error"]["detail"].as_str().unwrap();
                assert!(detail.contains(&v["length_bytes"].to_string()), "{name}: {detail}");
                assert_eq!(out["length_bytes"], v["length_bytes"], "{name}");
                assert_eq!(out.as_object().unwrap().len(), 2, "{name}: {out}");
                assert!(r.stderr.contains("FRAME-010"), "{name}: {}", r.stderr);
                undecodable += 1;
            }
            Some(ids) => {
                let out = r.json();
                let got: Vec<&str> =
                    out["violations"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
                assert_eq!(got, ids, "{name}");
                assert_eq!(r.code, if ids.is_empty() { 0 } else { 1 }, "{name}: {}", r.stderr);
                for x in out["violations"].as_array().unwrap() {
                    let id = x["id"].as_str().unwrap();
                    let want =
                        if ["FRAME-008", "FRAME-009", "FRAME-011"].contains(&id) { "drop" } else { "note" };
                    assert_eq!(x["disposition"], want, "{name} {id}");
                    assert!(!x["detail"].as_str().unwrap().is_empty());
                    assert!(r.stderr.contains(id), "{name}: {id} not on stderr: {}", r.stderr);
                }
                for reference in
                    ["reference_decode_amazon_ssm_agent", "reference_decode_session_manager_plugin"]
                {
                    let Some(want) = v[reference]["fields"].as_object() else { continue };
                    for (k, w) in want {
                        if k == "payload_utf8" {
                            let p = hex::decode(out["payload_hex"].as_str().unwrap()).unwrap();
                            assert_eq!(Value::from(String::from_utf8_lossy(&p)), *w, "{name} {k}");
                        } else {
                            assert_eq!(&out[k], w, "{name}: field {k} differs from {reference}");
                        }
                        fields_compared += 1;
                    }
                }
                let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(keys[..11], FIELDS, "{name}");
                assert_eq!(keys[11..], ["payload", "violations"], "{name}");
                decoded += 1;
            }
        }
    }
    assert_eq!((decoded, undecodable), (13, 3));
    assert!(fields_compared > 250, "only {fields_compared} fields compared");
}

#[test]
fn decode_shows_typed_payloads() {
    let payload =
        |name: &str| run(&["frame", "decode", "--hex", vector(name)["hex"].as_str().unwrap()], b"").json();
    assert_eq!(
        payload("input_stream_data_flag_terminate_session")["payload"],
        json!({"value": 2, "name": "TerminateSession"})
    );
    assert_eq!(payload("input_stream_data_size")["payload"], json!({"cols": 80, "rows": 24}));
    assert_eq!(
        payload("acknowledge_for_seq0")["payload"],
        json!({
            "AcknowledgedMessageType": "input_stream_data",
            "AcknowledgedMessageId": "dd01e56b-ff48-483e-a508-b5f073f31b16",
            "AcknowledgedMessageSequenceNumber": 0,
            "IsSequentialMessage": true
        })
    );
    assert_eq!(payload("channel_closed")["payload"]["Output"], "Session terminated by user");
    assert_eq!(payload("output_stream_data_syn_handshake_request")["payload"]["AgentVersion"], "3.3.987.0");
    assert_eq!(payload("input_stream_data_short_output")["payload"], Value::Null);
    assert_eq!(payload("start_publication_zero_created_date")["payload"], Value::Null);
}

/// Encodes `fields` (with `extra` keys merged in) through `frame encode` on stdin.
fn encode(fields: &Value, args: &[&str]) -> Run {
    let mut argv = vec!["frame", "encode"];
    argv.extend_from_slice(args);
    run(&argv, fields.to_string().as_bytes())
}

fn short_output_fields() -> Value {
    vector("input_stream_data_short_output")["input_fields"].clone()
}

#[test]
fn decode_reports_unparsable_payloads() {
    let mut f = vector("acknowledge_for_seq0")["input_fields"].clone();
    let m = f.as_object_mut().unwrap();
    for k in ["payload_hex", "payload_length", "payload_digest_hex"] {
        m.remove(k);
    }
    m.insert("payload_utf8".into(), "not json".into());
    let hex = encode(&f, &[]).text();
    let r = run(&["frame", "decode", "--hex", hex.trim()], b"");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out["payload"], Value::Null);
    assert!(
        out["payload_error"].as_str().unwrap().contains("acknowledge payload is not valid JSON"),
        "{out}"
    );
    assert_eq!(out["violations"], json!([]));
}

#[test]
fn encode_every_encode_vector_byte_for_byte() {
    let mut n = 0;
    for v in vectors().into_iter().filter(|v| v["kind"] == "encode+decode") {
        let name = v["name"].as_str().unwrap();
        let r = encode(&v["input_fields"], &[]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(r.text(), format!("{}\n", v["hex"].as_str().unwrap()), "{name}");
        assert_eq!(r.stderr, "", "{name}");
        let r = encode(&v["input_fields"], &["--format", "bin"]);
        assert_eq!(r.code, 0, "{name}");
        assert_eq!(hex::encode(&r.stdout), v["hex"].as_str().unwrap(), "{name}");
        n += 1;
    }
    assert_eq!(n, 7);
}

#[test]
fn encode_computes_omitted_lengths_and_digest() {
    let mut f = short_output_fields();
    let m = f.as_object_mut().unwrap();
    for k in ["header_length", "payload_length", "payload_digest_hex", "payload_hex"] {
        m.remove(k);
    }
    let r = encode(&f, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.text().trim(), vector("input_stream_data_short_output")["hex"].as_str().unwrap());
}

#[test]
fn the_encode_failure_vector_is_refused_unless_allowed() {
    let v = vector("output_stream_data_empty_payload_encode");
    let r = encode(&v["input_fields"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("FRAME-012: output_stream_data stream message with an empty payload"),
        "{}",
        r.stderr
    );
    // The vector gives HeaderLength 0 explicitly.
    assert!(r.stderr.contains("FRAME-002: header_length is 0"), "{}", r.stderr);

    let r = encode(&v["input_fields"], &["--allow-invalid"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = hex::decode(r.text().trim()).unwrap();
    assert_eq!(bytes.len(), 120);
    assert_eq!(bytes[..4], [0, 0, 0, 0], "HeaderLength written as given");
    assert_eq!(
        hex::encode(&bytes[80..112]),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(r.stderr.contains("warning: FRAME-012"), "{}", r.stderr);
}

#[test]
fn a_wrong_explicit_digest_is_a_violation_unless_allowed() {
    let wrong = "ab".repeat(32);
    let mut f = short_output_fields();
    f["payload_digest_hex"] = wrong.clone().into();
    let r = encode(&f, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("FRAME-007: payload_digest_hex abab"), "{}", r.stderr);

    let r = encode(&f, &["--allow-invalid"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = hex::decode(r.text().trim()).unwrap();
    assert_eq!(hex::encode(&bytes[80..112]), wrong);
    // Decoding what was written reports the same problem from the receiver's side.
    let d = run(&["frame", "decode", "--hex", r.text().trim()], b"");
    assert_eq!(d.code, 1);
    assert_eq!(d.json()["violations"][0]["id"], "FRAME-008");
}

#[test]
fn explicit_header_and_payload_lengths_are_checked() {
    let mut f = short_output_fields();
    f["header_length"] = 112.into();
    f["payload_length"] = 999.into();
    let r = encode(&f, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("FRAME-002: header_length is 112"), "{}", r.stderr);
    assert!(r.stderr.contains("FRAME-007: payload_length is 999 but the payload is 3 bytes"), "{}", r.stderr);
    let r = encode(&f, &["--allow-invalid"]);
    assert_eq!(r.code, 0);
    let out = run(&["frame", "decode", "--hex", r.text().trim()], b"").json();
    assert_eq!((out["header_length"].as_u64(), out["payload_length"].as_u64()), (Some(112), Some(999)));
}

#[test]
fn an_overlong_message_type_is_frame_003_even_when_allowed() {
    let mut f = short_output_fields();
    f["message_type"] = "x".repeat(33).into();
    for args in [&[][..], &["--allow-invalid"][..]] {
        let r = encode(&f, args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains("FRAME-003"), "{}", r.stderr);
    }
}

#[test]
fn malformed_frame_descriptions_are_usage_errors() {
    let mut unknown = short_output_fields();
    unknown["colour"] = "blue".into();
    let mut missing = short_output_fields();
    missing.as_object_mut().unwrap().remove("message_id");
    let mut no_payload = short_output_fields();
    no_payload.as_object_mut().unwrap().remove("payload_hex");
    no_payload.as_object_mut().unwrap().remove("payload_utf8");
    let mut disagree = short_output_fields();
    disagree["payload_utf8"] = "ls\n".into();
    let mut bad_type = short_output_fields();
    bad_type["schema_version"] = "1".into();
    let mut bad_uuid = short_output_fields();
    bad_uuid["message_id"] = "not-a-uuid".into();
    let cases: [(&str, Vec<u8>, &str); 9] = [
        ("unknown key", unknown.to_string().into_bytes(), "unknown key \"colour\""),
        ("missing key", missing.to_string().into_bytes(), "missing key \"message_id\""),
        ("no payload", no_payload.to_string().into_bytes(), "missing key \"payload_hex\""),
        ("disagreeing payloads", disagree.to_string().into_bytes(), "describe different payloads"),
        ("wrong type", bad_type.to_string().into_bytes(), "key \"schema_version\": expected an integer"),
        ("bad uuid", bad_uuid.to_string().into_bytes(), "key \"message_id\": expected a UUID"),
        ("array", b"[1, 2]".to_vec(), "got an array"),
        ("string", b"\"frame\"".to_vec(), "got a string"),
        ("not JSON", b"{\"message_type\":".to_vec(), "not valid JSON"),
    ];
    for (what, input, message) in cases {
        let r = run(&["frame", "encode"], &input);
        assert_eq!(r.code, 2, "{what}: {r:?}");
        assert!(r.stdout.is_empty(), "{what}");
        assert!(r.stderr.contains(message), "{what}: {}", r.stderr);
    }
}

#[test]
fn bad_hex_and_bad_arguments_are_usage_errors() {
    let cases: [(&[&str], &str); 6] = [
        (&["frame", "decode", "--hex", "00zz"], "invalid hex digit 'z' at offset 2"),
        (&["frame", "decode", "--hex", "0x123"], "odd number of hex digits"),
        (&["frame", "decode", "--hex", "00", "some-file"], "cannot be used with"),
        (&["frame", "decode", "--hex", "00", "--input", "bin"], "cannot be used with"),
        (&["frame", "decode", "--format", "yaml"], "invalid value 'yaml'"),
        (&["frame", "decode", "no-such-file.bin"], "cannot read no-such-file.bin"),
    ];
    for (args, message) in cases {
        let r = run(args, b"");
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}");
        assert!(r.stderr.contains(message), "{args:?}: {}", r.stderr);
    }
    let r = run(&["frame", "decode", "--input", "hex", "-"], b"0x00 0g");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("standard input is not valid hex: invalid hex digit 'g' at offset 6"),
        "{}",
        r.stderr
    );
    let r = run(&["frame"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("Usage: ssm-harness frame"), "{}", r.stderr);
}

#[test]
fn decode_reads_stdin_as_hex_or_binary() {
    let v = vector("channel_closed");
    let hex = v["hex"].as_str().unwrap();
    let want = run(&["frame", "decode", "--hex", hex], b"").json();
    // Hex text with a prefix, line breaks and upper case, through stdin with and without `-`.
    let text = format!(
        "0x{}\n",
        hex.to_uppercase()
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for args in [&["frame", "decode"][..], &["frame", "decode", "-"][..]] {
        let r = run(args, text.as_bytes());
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.json(), want);
    }
    let bytes = hex::decode(hex).unwrap();
    let r = run(&["frame", "decode"], &bytes);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json(), want);
}

#[test]
fn decode_reads_files_as_hex_or_binary() {
    let v = vector("digest_mismatch");
    let hex = v["hex"].as_str().unwrap();
    let bytes = hex::decode(hex).unwrap();
    let want = run(&["frame", "decode", "--hex", hex], b"").json();
    assert_eq!(want["violations"][0]["id"], "FRAME-008");

    let bin = temp_file("digest_mismatch.bin", &bytes);
    let bin = bin.to_str().unwrap();
    for args in [&["frame", "decode", bin][..], &["frame", "decode", "--input", "bin", bin][..]] {
        let r = run(args, b"");
        assert_eq!(r.code, 1, "{args:?}");
        assert_eq!(r.json(), want, "{args:?}");
    }
    let txt = temp_file("digest_mismatch.hex", format!("{hex}\n").as_bytes());
    let r = run(&["frame", "decode", txt.to_str().unwrap()], b"");
    assert_eq!(r.code, 1);
    assert_eq!(r.json(), want);
    // Read as binary, the hex text is a different frame: HeaderLength "0000" points far
    // beyond its end.
    let r = run(&["frame", "decode", "--input", "bin", txt.to_str().unwrap()], b"");
    assert_eq!(r.code, 1);
    let out = r.json();
    assert_eq!(out["decode_error"]["id"], "FRAME-010");
    assert_eq!(out["length_bytes"], hex.len() + 1);
    assert!(out["decode_error"]["detail"].as_str().unwrap().contains("HeaderLength 808464432"), "{out}");
}

#[test]
fn oversized_input_is_refused() {
    let big = vec![b'0'; 16 * 1024 * 1024 + 2];
    let r = run(&["frame", "decode"], &big);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("larger than the 16 MiB input limit"), "{}", r.stderr);
}

#[test]
fn text_format_annotates_every_field() {
    let v = vector("header_length_112");
    let r = run(&["frame", "decode", "--format", "text", "--hex", v["hex"].as_str().unwrap()], b"");
    assert_eq!(r.code, 1);
    let text = r.text();
    for field in [
        "HeaderLength",
        "MessageType",
        "SchemaVersion",
        "CreatedDate",
        "SequenceNumber",
        "Flags",
        "MessageId",
        "PayloadDigest",
        "PayloadType",
        "PayloadLength",
        "Payload",
    ] {
        assert!(text.contains(field), "{field} missing:\n{text}");
    }
    assert!(text.contains("112 (expected 116; payload starts at 116)"), "{text}");
    assert!(text.contains("FRAME-011 [drop] HeaderLength is 112, not 116"), "{text}");

    let v = vector("truncated_100_bytes");
    let r = run(&["frame", "decode", "--format", "text", "--hex", v["hex"].as_str().unwrap()], b"");
    assert_eq!(r.code, 1);
    assert!(r.text().starts_with("undecodable 100-byte message"), "{}", r.text());
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let hex = vector("digest_mismatch")["hex"].as_str().unwrap().to_owned();
    let mut child = Command::new(BIN)
        .args(["frame", "decode", "--format", "text", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the child can write: it is still waiting for its input.
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(hex.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    // The verdict is kept (a digest mismatch), and nothing is said about the pipe.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FRAME-008"), "{stderr}");
    assert!(!stderr.contains("pipe") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_documents_the_exit_status() {
    for args in [&["--help"][..], &["frame", "decode", "--help"][..], &["frame", "encode", "--help"][..]] {
        let r = run(args, b"");
        assert_eq!(r.code, 0);
        let text = r.text();
        assert!(text.contains("Exit status:"), "{args:?}: {text}");
        assert!(text.contains("\n  0  success\n  1  "), "{args:?}: {text}");
        assert!(text.contains("\n  2  usage or input error"), "{args:?}: {text}");
    }
}
