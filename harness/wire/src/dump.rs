//! Human-readable annotated hex dump of a frame, for `ssm-harness frame decode --format text`.

use std::fmt::Write as _;

use crate::frame::decode;
use crate::layout::{self, HEADER_SIZE};
use crate::types::go_trim_message_type;

const HEX_COLUMN: usize = 16 * 3;

/// Formats `ms` (Unix epoch milliseconds) as RFC 3339 UTC.
pub fn format_epoch_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// Appends one line without trailing white space (the value column is often empty).
fn line(out: &mut String, args: std::fmt::Arguments<'_>) {
    let start = out.len();
    let _ = out.write_fmt(args);
    let end = out[start..].trim_end().len() + start;
    out.truncate(end);
    out.push('\n');
}

fn hex_rows(out: &mut String, offset: usize, label: &str, bytes: &[u8], note: &str, ascii: bool) {
    if bytes.is_empty() {
        line(out, format_args!("0x{offset:04x}  {label:<14}  {:<HEX_COLUMN$} {note}", "(empty)"));
        return;
    }
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let mut hex = String::with_capacity(HEX_COLUMN);
        for b in chunk {
            let _ = write!(hex, "{b:02x} ");
        }
        let (off, lab) = if i == 0 {
            (format!("0x{offset:04x}"), label)
        } else {
            (format!("0x{:04x}", offset + i * 16), "")
        };
        let text = if ascii {
            let s: String =
                chunk.iter().map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '.' }).collect();
            format!("|{s}|")
        } else if i == 0 {
            note.to_owned()
        } else {
            String::new()
        };
        line(out, format_args!("{off}  {lab:<14}  {hex:<HEX_COLUMN$} {text}"));
    }
}

/// An annotated dump of one websocket message: every header field with its bytes and its
/// decoded value, the payload as hex and ASCII, then the violations or the decode error.
pub fn annotate(bytes: &[u8]) -> String {
    let mut out = String::new();
    let wire = match decode(bytes) {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(out, "undecodable {}-byte message: {e}", bytes.len());
            hex_rows(&mut out, 0, "raw", bytes, "", true);
            return out;
        }
    };
    let violations = wire.validate();
    let _ = writeln!(
        out,
        "{} seq {}, {} bytes, {} violation(s)",
        wire.message_type,
        wire.sequence_number,
        bytes.len(),
        violations.len()
    );
    let _ = writeln!(out, "offset  {:<14}  {:<HEX_COLUMN$} value", "field", "bytes");
    let raw_type = wire.message_type_field();
    let trimmed = go_trim_message_type(&raw_type);
    let pad = raw_type.len() - trimmed.len();
    let pad_kind =
        match (raw_type.iter().filter(|&&b| b == b' ').count(), raw_type.iter().filter(|&&b| b == 0).count())
        {
            (_, 0) => "space",
            (0, _) => "NUL",
            _ => "mixed space/NUL",
        };
    let digest_note = if wire.digest_matches() {
        "SHA-256 of payload: ok".to_owned()
    } else {
        format!("MISMATCH, payload hashes to {}", hex::encode(crate::digest(wire.payload)))
    };
    let header_note = match wire.header_length {
        116 => "116".to_owned(),
        n => format!("{n} (expected 116; payload starts at {})", u64::from(n) + 4),
    };
    let flags = wire.flags;
    let flag_note = {
        let mut names = Vec::new();
        if flags.contains(crate::HeaderFlags::SYN) {
            names.push("SYN");
        }
        if flags.contains(crate::HeaderFlags::FIN) {
            names.push("FIN");
        }
        if names.is_empty() {
            flags.0.to_string()
        } else {
            format!("{} ({})", flags.0, names.join("|"))
        }
    };
    let fields: [(&str, std::ops::Range<usize>, String); 10] = [
        ("HeaderLength", layout::HEADER_LENGTH, header_note),
        (
            "MessageType",
            layout::MESSAGE_TYPE,
            if pad == 0 {
                format!("{:?}", wire.message_type.name())
            } else {
                format!("{:?} ({pad} bytes {pad_kind} padding)", wire.message_type.name())
            },
        ),
        ("SchemaVersion", layout::SCHEMA_VERSION, wire.schema_version.to_string()),
        (
            "CreatedDate",
            layout::CREATED_DATE,
            format!("{} ({})", wire.created_date_ms, format_epoch_ms(wire.created_date_ms)),
        ),
        ("SequenceNumber", layout::SEQUENCE_NUMBER, wire.sequence_number.to_string()),
        ("Flags", layout::FLAGS, flag_note),
        ("MessageId", layout::MESSAGE_ID, format!("{} (halves swapped)", wire.message_id)),
        ("PayloadDigest", layout::PAYLOAD_DIGEST, digest_note),
        ("PayloadType", layout::PAYLOAD_TYPE, wire.payload_type.to_string()),
        ("PayloadLength", layout::PAYLOAD_LENGTH, {
            if usize::try_from(wire.payload_length).ok() == Some(wire.payload.len()) {
                wire.payload_length.to_string()
            } else {
                format!("{} ({} bytes present)", wire.payload_length, wire.payload.len())
            }
        }),
    ];
    for (name, range, note) in fields {
        let start = range.start;
        hex_rows(&mut out, start, name, &bytes[range], &note, false);
    }
    let payload_start = bytes.len() - wire.payload.len();
    if payload_start != HEADER_SIZE {
        let _ = writeln!(out, "note: payload taken from byte {payload_start} (HeaderLength + 4)");
    }
    hex_rows(&mut out, payload_start, "Payload", wire.payload, "", true);
    if violations.is_empty() {
        let _ = writeln!(out, "violations: none");
    } else {
        let _ = writeln!(out, "violations:");
        for v in violations {
            let disposition = match v.disposition() {
                crate::Disposition::Drop => "drop",
                crate::Disposition::Note => "note",
            };
            let _ = writeln!(out, "  {} [{disposition}] {v}", v.req());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formatting() {
        assert_eq!(format_epoch_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(format_epoch_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_epoch_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        // Does not overflow on the largest value.
        assert!(format_epoch_ms(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn lines_have_no_trailing_white_space() {
        let frame = crate::Frame {
            message_type: crate::MessageType::OutputStreamData,
            schema_version: 1,
            created_date_ms: 1,
            sequence_number: 0,
            flags: crate::HeaderFlags::SYN,
            message_id: uuid::Uuid::nil(),
            payload_type: crate::PayloadType::OUTPUT,
            payload: Vec::new(),
        };
        let text = annotate(&frame.encode_with(&crate::Overrides::default()));
        assert!(text.contains("Payload         (empty)\n"), "{text}");
        assert!(text.contains("FRAME-012 [note]"), "{text}");
        assert!(text.lines().all(|l| l == l.trim_end()), "{text}");
        assert!(annotate(&[0x20; 3]).lines().all(|l| l == l.trim_end()));
    }
}
