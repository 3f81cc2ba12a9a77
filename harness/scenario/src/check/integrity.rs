//! The stream-integrity checker: every message one application offered reaches the other
//! application exactly once, in order, unaltered, and nothing is delivered after the session
//! ended. A failure names the first divergent message and byte offset, and the requirement
//! the divergence breaks.

use ssm_channel::Role;
use ssm_spec::Req;

use super::observe::Observed;

/// A minimal witness of a broken stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Divergence {
    /// `client->agent` or `agent->client`.
    pub direction: String,
    /// Index of the first divergent message.
    pub message: usize,
    /// Byte offset of the divergence in the concatenated stream.
    pub offset: usize,
    pub expected: String,
    pub got: String,
    /// Virtual time (ns) of the divergent delivery, if there was one.
    pub at: Option<u64>,
    pub req: ssm_spec::Req,
    pub what: String,
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(48)]).into_owned();
    if b.len() > 48 {
        format!("{s:?}… ({} bytes)", b.len())
    } else {
        format!("{s:?}")
    }
}

/// Checks the stream from `from`'s application to its peer's. `ended` says whether the
/// receiving session ended (so a missing tail is allowed); `settled` whether the run settled.
pub fn check_direction(o: &Observed, from: Role, settled: bool) -> Option<Divergence> {
    let to = from.peer();
    let direction = format!("{from}->{to}");
    let offered: Vec<(u32, &[u8])> =
        o.side(from).offered.iter().filter(|x| x.3).map(|x| (x.1, x.2.as_slice())).collect();
    let receiver = o.side(to);
    let ended_at = receiver.ended().map(|e| e.0);
    let sender_ended = o.side(from).ended().is_some();
    let delivered: Vec<(u64, u32, Vec<u8>)> = receiver
        .events_of("data")
        .map(|e| {
            let pt = e.v.get("payload_type").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
            let bytes =
                e.v.get("bytes")
                    .and_then(|v| v.as_str())
                    .and_then(|h| hex::decode(h).ok())
                    .unwrap_or_default();
            (e.t, pt, bytes)
        })
        .collect();
    let mut offset = 0usize;
    for (i, (t, pt, got)) in delivered.iter().enumerate() {
        if ended_at.is_some_and(|e| *t > e) {
            return Some(Divergence {
                direction,
                message: i,
                offset,
                expected: "nothing (session ended)".into(),
                got: show(got),
                at: Some(*t),
                req: Req::Ord001,
                what: "delivery after the session ended".into(),
            });
        }
        let Some(&(ept, exp)) = offered.get(i) else {
            let dup = offered.iter().any(|(_, b)| *b == got.as_slice());
            return Some(Divergence {
                direction,
                message: i,
                offset,
                expected: "nothing more".into(),
                got: show(got),
                at: Some(*t),
                req: Req::Ord001,
                what: if dup { "a message delivered twice".into() } else { "bytes nobody offered".into() },
            });
        };
        if *pt != ept || got.as_slice() != exp {
            let earlier = offered[..i].iter().any(|(p, b)| *p == *pt && *b == got.as_slice());
            let later = offered[i + 1..].iter().position(|(p, b)| *p == *pt && *b == got.as_slice());
            let first_diff =
                got.iter().zip(exp.iter()).position(|(a, b)| a != b).unwrap_or(got.len().min(exp.len()));
            let (req, what) = if earlier {
                (Req::Ord001, "a message delivered twice".to_owned())
            } else if let Some(j) = later {
                (Req::Res006, format!("{} message(s) missing before this one (a gap)", j + 1))
            } else {
                (Req::Ord001, "corrupted payload".to_owned())
            };
            return Some(Divergence {
                direction,
                message: i,
                offset: offset + if earlier || later.is_some() { 0 } else { first_diff },
                expected: show(exp),
                got: show(got),
                at: Some(*t),
                req,
                what,
            });
        }
        offset += got.len();
    }
    if delivered.len() < offered.len() && ended_at.is_none() && !sender_ended {
        let (_, exp) = offered[delivered.len()];
        let missing = offered.len() - delivered.len();
        let (req, what) = if settled {
            (
                Req::Rtx001,
                format!("{missing} offered message(s) never delivered; the sender stopped retransmitting"),
            )
        } else {
            (
                Req::Ord001,
                format!("{missing} offered message(s) not delivered by the deadline (the stream stalled)"),
            )
        };
        return Some(Divergence {
            direction,
            message: delivered.len(),
            offset,
            expected: show(exp),
            got: "nothing".into(),
            at: None,
            req,
            what,
        });
    }
    None
}
