//! `ssm-harness frame decode`.

use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{json, Map, Value};
use ssm_wire::payload::Payload;
use ssm_wire::{decode, DecodeError, Violation, WireFrame};

use super::fields;
use crate::exit::Status;
use crate::input::{self, Source};
use crate::output::{diag, Output};

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// The frame as hex text; white space and a 0x prefix are allowed
    #[arg(long, value_name = "HEX", conflicts_with = "file")]
    hex: Option<String>,

    /// File holding the frame; `-` or nothing reads standard input
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,

    /// How to read FILE or standard input
    #[arg(long, value_enum, value_name = "HOW", default_value_t = InputKind::Auto, conflicts_with = "hex")]
    input: InputKind,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InputKind {
    /// Hex text if it is only hex digits and white space (and a 0x prefix), else raw bytes
    Auto,
    /// Hex text
    Hex,
    /// The raw frame bytes
    Bin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One JSON object: the header fields, the payload and the violations
    Json,
    /// An annotated hex dump of every field
    Text,
}

/// Reads the frame bytes the arguments name. Errors are usage errors.
fn read_frame(args: &DecodeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(text) = &args.hex {
        input::check_size("the --hex value", text.len())?;
        return input::parse_hex(text.as_bytes()).context("--hex is not valid hex");
    }
    let source = Source::from_arg(args.file.as_deref());
    let data = source.read()?;
    let as_hex = match args.input {
        InputKind::Hex => true,
        InputKind::Bin => false,
        InputKind::Auto => input::looks_like_hex(&data),
    };
    if as_hex {
        input::parse_hex(&data).with_context(|| format!("{source} is not valid hex"))
    } else {
        Ok(data)
    }
}

pub fn run(args: &DecodeArgs, out: &mut Output) -> anyhow::Result<Status> {
    let bytes = read_frame(args)?;
    let (status, text) = match decode(&bytes) {
        Err(e) => {
            diag!("cannot decode the frame: {e}");
            let text = match args.format {
                Format::Json => json_text(&decode_error_json(&e, bytes.len()))?,
                Format::Text => ssm_wire::dump::annotate(&bytes),
            };
            (Status::Violation, text)
        }
        Ok(w) => {
            let violations = w.validate();
            for v in &violations {
                diag!("{} ({}): {v}", v.req(), disposition_name(v.disposition()));
            }
            let text = match args.format {
                Format::Json => {
                    let (value, payload_error) = frame_json(&w, &violations);
                    if let Some(e) = payload_error {
                        diag!("note: {e}");
                    }
                    json_text(&value)?
                }
                Format::Text => ssm_wire::dump::annotate(&bytes),
            };
            let status = if violations.is_empty() { Status::Success } else { Status::Violation };
            (status, text)
        }
    };
    out.write(text.as_bytes()).context("cannot write to standard output")?;
    Ok(status)
}

fn json_text(v: &Value) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v).context("cannot format the JSON output")?;
    s.push('\n');
    Ok(s)
}

fn disposition_name(d: ssm_wire::Disposition) -> &'static str {
    match d {
        ssm_wire::Disposition::Drop => "drop",
        ssm_wire::Disposition::Note => "note",
    }
}

fn decode_error_json(e: &DecodeError, len: usize) -> Value {
    json!({
        "decode_error": { "id": e.req().id(), "detail": e.to_string() },
        "length_bytes": len,
    })
}

/// The JSON object of a decoded frame, and the reason its payload did not parse, if it did not.
fn frame_json(w: &WireFrame<'_>, violations: &[Violation]) -> (Value, Option<String>) {
    let mut m = Map::new();
    m.insert(fields::HEADER_LENGTH.into(), w.header_length.into());
    m.insert(fields::MESSAGE_TYPE.into(), w.message_type.name().into());
    m.insert(fields::SCHEMA_VERSION.into(), w.schema_version.into());
    m.insert(fields::CREATED_DATE_MS.into(), w.created_date_ms.into());
    m.insert(fields::SEQUENCE_NUMBER.into(), w.sequence_number.into());
    m.insert(fields::FLAGS.into(), w.flags.0.into());
    m.insert(fields::MESSAGE_ID.into(), w.message_id.hyphenated().to_string().into());
    m.insert(fields::PAYLOAD_DIGEST_HEX.into(), hex::encode(w.payload_digest).into());
    m.insert(fields::PAYLOAD_TYPE.into(), w.payload_type.0.into());
    m.insert(fields::PAYLOAD_LENGTH.into(), w.payload_length.into());
    m.insert(fields::PAYLOAD_HEX.into(), hex::encode(w.payload).into());
    let payload = Payload::parse(&w.message_type, w.payload_type, w.payload)
        .map_err(|e| e.to_string())
        .and_then(|p| p.map(|p| payload_json(&p)).transpose());
    let error = match payload {
        Ok(p) => {
            m.insert("payload".into(), p.unwrap_or(Value::Null));
            None
        }
        Err(e) => {
            m.insert("payload".into(), Value::Null);
            m.insert("payload_error".into(), e.clone().into());
            Some(e)
        }
    };
    let violations = violations
        .iter()
        .map(|v| json!({ "id": v.req().id(), "detail": v.to_string(), "disposition": v.disposition() }))
        .collect();
    m.insert("violations".into(), Value::Array(violations));
    (Value::Object(m), error)
}

/// The typed payload as its inner value (no enum tag).
fn payload_json(p: &Payload) -> Result<Value, String> {
    let v = match p {
        Payload::Acknowledge(x) => serde_json::to_value(x),
        Payload::ChannelClosed(x) => serde_json::to_value(x),
        Payload::AgentSessionState(x) => serde_json::to_value(x),
        Payload::HandshakeRequest(x) => serde_json::to_value(x),
        Payload::HandshakeResponse(x) => serde_json::to_value(x),
        Payload::HandshakeComplete(x) => serde_json::to_value(x),
        Payload::EncChallengeRequest(x) | Payload::EncChallengeResponse(x) => serde_json::to_value(x),
        Payload::Size(x) => serde_json::to_value(x),
        Payload::Flag { value, name } => Ok(json!({ "value": value, "name": name })),
        Payload::ExitCode(code) => Ok(json!({ "exit_code": code })),
    };
    v.map_err(|e| format!("payload cannot be shown as JSON: {e}"))
}
