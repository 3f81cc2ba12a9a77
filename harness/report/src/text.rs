//! Text shared by the outputs: escaping, times, file names and one-line descriptions of trace
//! records and witnesses.

use std::fmt::Write as _;

use ssm_scenario::What;

use crate::summary::Witness;

/// Escapes text for HTML and SVG (element content and quoted attributes alike). Control
/// characters, which XML forbids and HTML mangles, become visible symbols.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
            '\u{7f}' => out.push('\u{2421}'),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `s`, with an ellipsis when cut, on one line.
pub fn clip(s: &str, max: usize) -> String {
    let one_line: String = s.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Virtual time in nanoseconds as milliseconds with microsecond precision.
pub fn ms(t_ns: u64) -> String {
    format!("{}.{:03} ms", t_ns / 1_000_000, (t_ns % 1_000_000) / 1_000)
}

/// Milliseconds as seconds, e.g. `1.234 s`.
pub fn secs(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// A file name for a scenario id: the id itself when it is safe, else a cleaned-up id with a
/// hash of the original, so different ids never share a file.
pub fn file_stem(id: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !id.is_empty() && !id.starts_with('.') && id.chars().all(safe) {
        return id.to_owned();
    }
    let cleaned: String = id.chars().take(80).map(|c| if safe(c) { c } else { '_' }).collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}-{:08x}", cleaned.trim_start_matches('.'), h as u32)
}

/// The kind of a record, as the wire log and the sequence diagram name it.
pub fn kind(w: &What) -> &'static str {
    match w {
        What::Step { .. } => "step",
        What::Wrote { .. } => "wrote",
        What::Delivered { fault: Some(f), .. } if !is_service(f) => "faulted",
        What::Delivered { .. } => "delivered",
        What::ServiceWrote { .. } => "service",
        What::ServiceSaw { .. } => "violation",
        What::Lost { .. } => "lost",
        What::Fault { .. } => "fault",
        What::Opened { .. } => "opened",
        What::OpenChecked { .. } => "open_checked",
        What::Closed { .. } => "closed",
        What::Api { .. } => "api",
        What::Event { .. } => "event",
        What::Offered { .. } => "offered",
        What::Finished { .. } => "finished",
        What::SessionTerminated { .. } => "terminated",
        What::Pong { .. } => "pong",
    }
}

/// The simulator marks frames the service itself sent with the fault name `service`: they are
/// deliveries, not faults.
pub fn is_service(fault: &str) -> bool {
    fault == "service"
}

/// A short, human description of a JSON value: strings bare, everything else compact JSON.
fn json_short(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Hex bytes as text a person can read (lossy UTF-8, quoted and escaped), at most 40 bytes.
fn hex_preview(h: &str) -> String {
    let bytes: Vec<u8> =
        (0..h.len() / 2).filter_map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
    if bytes.len() > 40 {
        format!("{shown:?}… ({} bytes)", bytes.len())
    } else {
        format!("{shown:?}")
    }
}

/// A machine event: its name and its fields as `key=value`.
fn event_text(v: &serde_json::Value) -> String {
    let Some(obj) = v.as_object() else { return json_short(v) };
    let name = obj.get("event").map(json_short).unwrap_or_else(|| "event".into());
    let mut out = name.clone();
    for (k, val) in obj {
        if k == "event" || val.is_null() {
            continue;
        }
        let shown = if k == "bytes" {
            val.as_str().map(hex_preview).unwrap_or_else(|| json_short(val))
        } else {
            json_short(val)
        };
        if *k == name {
            // `{"event": "note", "note": "..."}` reads as `note ...`.
            let _ = write!(out, " {}", clip(&shown, 120));
        } else {
            let _ = write!(out, " {k}={}", clip(&shown, 80));
        }
    }
    out
}

/// One line about a record, without its time.
pub fn describe(w: &What) -> String {
    match w {
        What::Step { index, step } => {
            let mut s = format!("step {index}");
            if let Some(obj) = step.as_object() {
                for (k, v) in obj.iter().filter(|(_, v)| !v.is_null()) {
                    let _ = write!(s, " {k}={}", clip(&json_short(v), 60));
                }
            }
            s
        }
        What::Wrote { by, summary, .. } => format!("{by} wrote {summary}"),
        What::Delivered { to, summary, fault, .. } => match fault.as_deref() {
            Some(f) if is_service(f) => format!("delivered to {to}: {summary} (from the service)"),
            Some(f) => format!("delivered to {to}: {summary} [fault {f}]"),
            None => format!("delivered to {to}: {summary}"),
        },
        What::ServiceWrote { towards, summary, .. } => format!("service wrote towards {towards}: {summary}"),
        What::ServiceSaw { side, req, detail } => format!("service saw the {side} break {req}: {detail}"),
        What::Lost { towards, why, summary } => format!("lost towards {towards}: {summary} ({why})"),
        What::Fault { rule, what } => format!("fault {rule}: {what}"),
        What::Opened { side, url } => format!("{side} websocket opened {url}"),
        What::OpenChecked { side, accepted, why, .. } => {
            format!(
                "OpenDataChannel from the {side} {}{}",
                if *accepted { "accepted" } else { "refused" },
                if why.is_empty() { String::new() } else { format!(": {why}") }
            )
        }
        What::Closed { side, code, why } => match code {
            Some(c) => format!("{side} websocket closed ({c}): {why}"),
            None => format!("{side} websocket closed: {why}"),
        },
        What::Api { by, call, answer, .. } => format!("{by} {call} → {answer}"),
        What::Event { role, event } => format!("{role} {}", event_text(event)),
        What::Offered { by, payload_type, bytes, accepted } => {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
            format!(
                "{by} application offered {} bytes pt={payload_type} {shown:?}{}{}",
                bytes.len(),
                if bytes.len() > 40 { "…" } else { "" },
                if *accepted { "" } else { " (refused)" }
            )
        }
        What::Finished { why } => format!("run finished: {why}"),
        What::SessionTerminated { why } => format!("the service terminated the session: {why}"),
        What::Pong { to } => format!("pong to the {to}"),
    }
}

/// The witness as a few lines of plain text.
pub fn witness(w: &Witness) -> String {
    match w {
        Witness::Integrity { req, direction, message, offset, what, expected, got, at } => {
            let mut s = format!(
                "{req}: {direction} stream, message {message} at byte {offset}: {what}\n  expected: {expected}\n  got:      {got}"
            );
            if let Some(t) = at {
                let _ = write!(s, "\n  at:       {}", ms(*t));
            }
            s
        }
        Witness::Requirement(r) => {
            let mut s = format!("{} {} {}: {}", r.req, r.level, r.outcome, r.detail);
            if let Some(t) = r.at {
                let _ = write!(s, " (at {})", ms(t));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(esc("a\u{0}b\u{1b}c\u{7f}"), "a\u{2400}b\u{241b}c\u{2421}");
        assert_eq!(esc("\u{85}"), "\\u{85}");
        assert_eq!(esc("line\nnext"), "line\nnext");
    }

    #[test]
    fn file_stems_are_safe_and_distinct() {
        assert_eq!(file_stem("ack-001"), "ack-001");
        let a = file_stem("../etc/passwd");
        let b = file_stem("..-etc-passwd");
        assert!(!a.contains('/') && !a.starts_with('.'), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn frames_the_service_sent_are_deliveries_not_faults() {
        let d = |fault: Option<&str>| What::Delivered {
            to: ssm_channel::Role::Client,
            bytes: Vec::new(),
            summary: "pause_publication".into(),
            fault: fault.map(str::to_owned),
        };
        assert_eq!(kind(&d(None)), "delivered");
        assert_eq!(kind(&d(Some("service"))), "delivered");
        assert_eq!(kind(&d(Some("drop-3"))), "faulted");
        assert!(describe(&d(Some("service"))).ends_with("(from the service)"));
    }

    #[test]
    fn events_read_as_their_name_and_fields() {
        let e = What::Event {
            role: ssm_channel::Role::Agent,
            event: serde_json::json!({"event": "note", "note": "paused", "extra": null}),
        };
        assert_eq!(describe(&e), "agent note paused");
    }

    #[test]
    fn times_and_clipping() {
        assert_eq!(ms(1_234_567_890), "1234.567 ms");
        assert_eq!(secs(61_005), "61.005 s");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("a\nb", 10), "a b");
    }
}
