//! `ssm-harness frame encode`.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Map, Value};
use ssm_wire::layout::HEADER_LENGTH_VALUE;
use ssm_wire::{Frame, HeaderFlags, MessageType, Overrides, PayloadType, Req, TypeNameError};

use super::fields;
use crate::exit::Status;
use crate::input::{self, Source};
use crate::output::{diag, Output};

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// JSON file describing the frame; `-` or nothing reads standard input
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,

    /// Write the frame even if it breaks a requirement
    ///
    /// header_length, payload_length and payload_digest_hex are then written as given. A
    /// message_type longer than 32 bytes is still refused: it cannot be encoded.
    #[arg(long, verbatim_doc_comment)]
    allow_invalid: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Hex)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Lowercase hex, one line
    Hex,
    /// The raw frame bytes
    Bin,
}

/// The keys a frame description may have.
const KEYS: [&str; 12] = [
    fields::HEADER_LENGTH,
    fields::MESSAGE_TYPE,
    fields::SCHEMA_VERSION,
    fields::CREATED_DATE_MS,
    fields::SEQUENCE_NUMBER,
    fields::FLAGS,
    fields::MESSAGE_ID,
    fields::PAYLOAD_DIGEST_HEX,
    fields::PAYLOAD_TYPE,
    fields::PAYLOAD_LENGTH,
    fields::PAYLOAD_HEX,
    fields::PAYLOAD_UTF8,
];

/// A frame description: the frame, and the length and digest values given explicitly.
#[derive(Debug)]
struct Spec {
    frame: Frame,
    header_length: Option<u32>,
    payload_length: Option<u32>,
    payload_digest: Option<[u8; 32]>,
}

/// Why a frame description is unusable.
#[derive(Debug)]
enum SpecError {
    NotJson(serde_json::Error),
    NotObject(&'static str),
    UnknownKey(String),
    Missing(&'static str),
    MissingPayload,
    BadValue {
        key: &'static str,
        expected: &'static str,
        got: String,
    },
    PayloadsDisagree,
    /// The type name does not fit the 32-byte field: not a usage error but a FRAME-003 refusal.
    TypeTooLong(TypeNameError),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::NotJson(e) => write!(f, "not valid JSON: {e}"),
            SpecError::NotObject(kind) => write!(f, "expected one JSON object of frame fields, got {kind}"),
            SpecError::UnknownKey(k) => {
                write!(f, "unknown key {k:?}; the known keys are {}", KEYS.join(", "))
            }
            SpecError::Missing(k) => write!(f, "missing key {k:?}"),
            SpecError::MissingPayload => {
                write!(f, "missing key {:?} (or {:?})", fields::PAYLOAD_HEX, fields::PAYLOAD_UTF8)
            }
            SpecError::BadValue { key, expected, got } => {
                write!(f, "key {key:?}: expected {expected}, got {got}")
            }
            SpecError::PayloadsDisagree => write!(
                f,
                "keys {:?} and {:?} describe different payloads",
                fields::PAYLOAD_HEX,
                fields::PAYLOAD_UTF8
            ),
            SpecError::TypeTooLong(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpecError::NotJson(e) => Some(e),
            SpecError::TypeTooLong(e) => Some(e),
            _ => None,
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a bad value for an error message.
fn show(v: &Value) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    if s.chars().count() <= MAX {
        return s;
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}...")
}

struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The value of `key`; `null` counts as absent.
    fn get(&self, key: &'static str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &'static str) -> Result<&'a Value, SpecError> {
        self.get(key).ok_or(SpecError::Missing(key))
    }

    fn bad(key: &'static str, expected: &'static str, v: &Value) -> SpecError {
        SpecError::BadValue { key, expected, got: show(v) }
    }

    fn u32_of(key: &'static str, v: &Value) -> Result<u32, SpecError> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Self::bad(key, "an integer 0..=4294967295", v))
    }

    fn u32(&self, key: &'static str) -> Result<u32, SpecError> {
        Self::u32_of(key, self.required(key)?)
    }

    fn opt_u32(&self, key: &'static str) -> Result<Option<u32>, SpecError> {
        self.get(key).map(|v| Self::u32_of(key, v)).transpose()
    }

    fn u64(&self, key: &'static str) -> Result<u64, SpecError> {
        let v = self.required(key)?;
        v.as_u64().ok_or_else(|| Self::bad(key, "an unsigned 64-bit integer", v))
    }

    fn i64(&self, key: &'static str) -> Result<i64, SpecError> {
        let v = self.required(key)?;
        v.as_i64().ok_or_else(|| Self::bad(key, "a signed 64-bit integer", v))
    }

    fn str_of(key: &'static str, v: &'a Value) -> Result<&'a str, SpecError> {
        v.as_str().ok_or_else(|| Self::bad(key, "a string", v))
    }

    fn str(&self, key: &'static str) -> Result<&'a str, SpecError> {
        Self::str_of(key, self.required(key)?)
    }

    fn opt_str(&self, key: &'static str) -> Result<Option<&'a str>, SpecError> {
        self.get(key).map(|v| Self::str_of(key, v)).transpose()
    }
}

/// Reads a frame description.
fn parse_spec(text: &[u8]) -> Result<Spec, SpecError> {
    let value: Value = serde_json::from_slice(text).map_err(SpecError::NotJson)?;
    let Value::Object(map) = &value else {
        return Err(SpecError::NotObject(kind_of(&value)));
    };
    if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(SpecError::UnknownKey(k.clone()));
    }
    let f = Fields(map);

    // Read in wire order, so that the first problem reported is the first field's.
    let header_length = f.opt_u32(fields::HEADER_LENGTH)?;
    let name = f.str(fields::MESSAGE_TYPE)?;
    let message_type = MessageType::from_name(name.as_bytes()).map_err(SpecError::TypeTooLong)?;
    let schema_version = f.u32(fields::SCHEMA_VERSION)?;
    let created_date_ms = f.u64(fields::CREATED_DATE_MS)?;
    let sequence_number = f.i64(fields::SEQUENCE_NUMBER)?;
    let flags = HeaderFlags(f.u64(fields::FLAGS)?);
    let id_text = f.str(fields::MESSAGE_ID)?;
    let message_id = uuid::Uuid::parse_str(id_text).map_err(|_| SpecError::BadValue {
        key: fields::MESSAGE_ID,
        expected: "a UUID",
        got: show(&id_text.into()),
    })?;
    let payload_digest = match f.opt_str(fields::PAYLOAD_DIGEST_HEX)? {
        None | Some("") => None,
        Some(h) => {
            let bad = |detail: String| SpecError::BadValue {
                key: fields::PAYLOAD_DIGEST_HEX,
                expected: "64 hex digits (a SHA-256) or \"\"",
                got: format!("{} ({detail})", show(&h.into())),
            };
            let bytes = input::parse_hex(h.as_bytes()).map_err(|e| bad(e.to_string()))?;
            let n = bytes.len();
            Some(<[u8; 32]>::try_from(bytes).map_err(|_| bad(format!("{n} bytes")))?)
        }
    };
    let payload_type = PayloadType(f.u32(fields::PAYLOAD_TYPE)?);
    let payload_length = f.opt_u32(fields::PAYLOAD_LENGTH)?;
    let from_hex = f
        .opt_str(fields::PAYLOAD_HEX)?
        .map(|h| {
            input::parse_hex(h.as_bytes()).map_err(|e| SpecError::BadValue {
                key: fields::PAYLOAD_HEX,
                expected: "hex",
                got: format!("{} ({e})", show(&h.into())),
            })
        })
        .transpose()?;
    let from_utf8 = f.opt_str(fields::PAYLOAD_UTF8)?.map(|s| s.as_bytes().to_vec());
    let payload = match (from_hex, from_utf8) {
        (Some(h), Some(u)) if h != u => return Err(SpecError::PayloadsDisagree),
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => return Err(SpecError::MissingPayload),
    };

    Ok(Spec {
        frame: Frame {
            message_type,
            schema_version,
            created_date_ms,
            sequence_number,
            flags,
            message_id,
            payload_type,
            payload,
        },
        header_length,
        payload_length,
        payload_digest,
    })
}

/// One requirement the described frame would break.
#[derive(Debug)]
struct Problem {
    req: Req,
    detail: String,
}

/// Everything wrong with the frame: what [`Frame::check`] finds, then explicit header values
/// that disagree with the computed ones.
fn problems(spec: &Spec) -> Vec<Problem> {
    let mut out: Vec<Problem> =
        spec.frame.check().iter().map(|v| Problem { req: v.req(), detail: v.to_string() }).collect();
    if let Some(h) = spec.header_length.filter(|&h| h != HEADER_LENGTH_VALUE) {
        out.push(Problem {
            req: Req::Frame002,
            detail: format!("header_length is {h}; encoders write {HEADER_LENGTH_VALUE}"),
        });
    }
    let len = spec.frame.payload.len();
    if let Some(n) = spec.payload_length.filter(|&n| usize::try_from(n).ok() != Some(len)) {
        out.push(Problem {
            req: Req::Frame007,
            detail: format!("payload_length is {n} but the payload is {len} bytes"),
        });
    }
    let actual = ssm_wire::digest(&spec.frame.payload);
    if let Some(d) = spec.payload_digest.filter(|d| *d != actual) {
        out.push(Problem {
            req: Req::Frame007,
            detail: format!(
                "payload_digest_hex {} is not the SHA-256 of the payload ({})",
                hex::encode(d),
                hex::encode(actual)
            ),
        });
    }
    out
}

pub fn run(args: &EncodeArgs, out: &mut Output) -> anyhow::Result<Status> {
    let source = Source::from_arg(args.file.as_deref());
    let text = source.read()?;
    let spec = match parse_spec(&text) {
        Ok(s) => s,
        Err(SpecError::TypeTooLong(e)) => {
            diag!("{}: {e}; it cannot be encoded", Req::Frame003);
            return Ok(Status::Violation);
        }
        Err(e) => return Err(e).with_context(|| format!("{source} is not a usable frame description")),
    };
    let problems = problems(&spec);
    let bytes = if problems.is_empty() {
        spec.frame.encode().context("the frame codec refused a frame that passed its checks")?
    } else if args.allow_invalid {
        for p in &problems {
            diag!("warning: {}: {}", p.req, p.detail);
        }
        spec.frame.encode_with(&Overrides {
            header_length: spec.header_length,
            payload_length: spec.payload_length,
            payload_digest: spec.payload_digest,
            message_type_field: None,
        })
    } else {
        for p in &problems {
            diag!("{}: {}", p.req, p.detail);
        }
        diag!(
            "frame not written: it breaks {} requirement(s); --allow-invalid writes it anyway",
            problems.len()
        );
        return Ok(Status::Violation);
    };
    let data = match args.format {
        Format::Hex => {
            let mut s = hex::encode(&bytes);
            s.push('\n');
            s.into_bytes()
        }
        Format::Bin => bytes,
    };
    out.write(&data).context("cannot write to standard output")?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &str = r#"{"message_type":"acknowledge","schema_version":1,"created_date_ms":1,
        "sequence_number":0,"flags":3,"message_id":"dd01e56b-ff48-483e-a508-b5f073f31b16",
        "payload_type":0,"payload_utf8":"{}"}"#;

    fn with(extra: &str) -> String {
        format!("{}, {extra}}}", ACK.trim_end_matches('}'))
    }

    #[test]
    fn optional_fields_are_computed() {
        let s = parse_spec(ACK.as_bytes()).unwrap();
        assert_eq!((s.header_length, s.payload_length, s.payload_digest), (None, None, None));
        assert_eq!(s.frame.payload, b"{}");
        assert!(problems(&s).is_empty());
    }

    #[test]
    fn usage_errors_name_the_key() {
        let e = parse_spec(with(r#""colour":1"#).as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with(r#"unknown key "colour""#), "{e}");
        let e = parse_spec(with(r#""payload_length":-1"#).as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), r#"key "payload_length": expected an integer 0..=4294967295, got -1"#);
        let e = parse_spec(with(r#""payload_hex":"00""#).as_bytes()).unwrap_err();
        assert!(matches!(e, SpecError::PayloadsDisagree));
        let e = parse_spec(with(r#""payload_digest_hex":"abcd""#).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("(2 bytes)"), "{e}");
        assert!(matches!(parse_spec(b"[]").unwrap_err(), SpecError::NotObject("an array")));
        assert!(matches!(parse_spec(b"{} {}").unwrap_err(), SpecError::NotJson(_)));
    }

    #[test]
    fn null_is_absent_for_optional_keys() {
        let s = parse_spec(with(r#""header_length":null,"payload_digest_hex":"""#).as_bytes()).unwrap();
        assert_eq!((s.header_length, s.payload_digest), (None, None));
        let e = parse_spec(ACK.replace(r#""flags":3"#, r#""flags":null"#).as_bytes()).unwrap_err();
        assert!(matches!(e, SpecError::Missing("flags")));
    }

    #[test]
    fn explicit_mismatches_are_problems() {
        let s = parse_spec(with(r#""header_length":112,"payload_length":3"#).as_bytes()).unwrap();
        let reqs: Vec<Req> = problems(&s).iter().map(|p| p.req).collect();
        assert_eq!(reqs, [Req::Frame002, Req::Frame007]);
    }

    #[test]
    fn long_type_names_are_frame_003() {
        let long = ACK.replace("acknowledge", &"a".repeat(33));
        assert!(matches!(parse_spec(long.as_bytes()).unwrap_err(), SpecError::TypeTooLong(_)));
    }
}
