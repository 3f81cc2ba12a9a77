//! An index over a trace: the facts the checks ask about, in virtual time.

use ssm_channel::Role;
use ssm_spec::Req;
use ssm_wire::payload::AcknowledgeContent;
use ssm_wire::{MessageType, PayloadType};

use crate::trace::{MsgKind, Trace, What};

/// One binary frame as written or delivered.
#[derive(Debug, Clone)]
pub struct Frame {
    pub t: u64,
    /// Index of the trace record: orders things that happened at the same virtual time.
    pub i: usize,
    pub bytes: Vec<u8>,
    /// Decoded fields, if it decodes.
    pub f: Option<Decoded>,
    /// For deliveries: the fault that shaped it (None: untouched).
    pub fault: Option<String>,
}

/// The fields the checks use.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub message_type: MessageType,
    pub seq: i64,
    pub flags: u64,
    pub message_id: uuid::Uuid,
    pub payload_type: PayloadType,
    pub payload: Vec<u8>,
    pub digest_ok: bool,
    pub violations: Vec<(Req, String)>,
    /// For acks: the acknowledged sequence number, type and id.
    pub ack: Option<AcknowledgeContent>,
}

impl Decoded {
    fn of(bytes: &[u8]) -> Option<Decoded> {
        let w = ssm_wire::decode(bytes).ok()?;
        let ack = (w.message_type == MessageType::Acknowledge)
            .then(|| serde_json::from_slice::<AcknowledgeContent>(w.payload).ok())
            .flatten();
        Some(Decoded {
            message_type: w.message_type,
            seq: w.sequence_number,
            flags: w.flags.0,
            message_id: w.message_id,
            payload_type: w.payload_type,
            payload: w.payload.to_vec(),
            digest_ok: w.digest_matches(),
            violations: w.validate().into_iter().map(|v| (v.req(), v.to_string())).collect(),
            ack,
        })
    }

    pub fn is_stream(&self) -> bool {
        self.message_type.is_stream()
    }

    /// Whether a conformant receiver would accept this copy.
    pub fn is_valid(&self) -> bool {
        !self.violations.iter().any(|(r, _)| matches!(r, Req::Frame008 | Req::Frame009 | Req::Frame011))
    }
}

/// A machine event, kept as JSON plus its tag.
#[derive(Debug, Clone)]
pub struct Ev {
    pub t: u64,
    pub i: usize,
    /// The record index of the delivery whose processing emitted this event, if any.
    pub cause: Option<usize>,
    pub kind: String,
    pub v: serde_json::Value,
    /// For violations: whether the frame that caused it was shaped by a fault.
    pub from_fault: bool,
}

/// A control-plane call.
#[derive(Debug, Clone)]
pub struct Call {
    /// When the answer arrived.
    pub t: u64,
    /// When the call was made.
    pub called_at: u64,
    pub call: String,
    pub answer: String,
}

/// Everything the checks need, per role.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub wrote: Vec<Frame>,
    /// Text and ping messages written: (t, kind, bytes).
    pub wrote_other: Vec<(u64, MsgKind, Vec<u8>)>,
    pub delivered: Vec<Frame>,
    pub events: Vec<Ev>,
    pub calls: Vec<Call>,
    /// (t, url) websocket opened.
    pub opened: Vec<(u64, String)>,
    /// (t, token, accepted, why)
    pub open_checks: Vec<(u64, String, bool, String)>,
    /// (t, code, why)
    pub closed: Vec<(u64, Option<u16>, String)>,
    /// (t, payload type, bytes, accepted)
    pub offered: Vec<(u64, u32, Vec<u8>, bool)>,
    /// Frames the service wrote towards this side: (t, bytes).
    pub from_service: Vec<(u64, Vec<u8>)>,
    /// Requirements the service saw this side break.
    pub service_saw: Vec<(u64, Req, String)>,
    /// When pongs reached this side.
    pub pongs: Vec<u64>,
    /// Frames lost on the way to this side: (t, why, summary).
    pub lost: Vec<(u64, String, String)>,
}

/// The indexed trace.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub client: Side,
    pub agent: Side,
    /// (t, record index, step)
    pub steps: Vec<(u64, usize, crate::model::Step)>,
    /// When the service terminated the session.
    pub terminated_at: Option<u64>,
    pub end_t: u64,
}

impl Observed {
    pub fn side(&self, r: Role) -> &Side {
        match r {
            Role::Client => &self.client,
            Role::Agent => &self.agent,
        }
    }

    fn side_mut(&mut self, r: Role) -> &mut Side {
        match r {
            Role::Client => &mut self.client,
            Role::Agent => &mut self.agent,
        }
    }

    pub fn from_trace(trace: &Trace) -> Self {
        let mut o = Observed::default();
        // The delivery whose processing is producing events right now: (role, shaped by a fault,
        // record index).
        let mut delivering: Option<(Role, bool, usize)> = None;
        for (i, r) in trace.records.iter().enumerate() {
            let t = r.t;
            o.end_t = o.end_t.max(t);
            // Events emitted while a delivery is processed follow it at the same instant, possibly
            // after the replies the machine wrote (its ack); a later instant or another delivery
            // ends that context.
            if delivering.is_some_and(|(_, _, d)| trace.records.get(d).is_none_or(|x| x.t != t)) {
                delivering = None;
            }
            match &r.what {
                What::Step { index, step } => {
                    let _ = index;
                    if let Ok(s) = serde_json::from_value(step.clone()) {
                        o.steps.push((t, i, s));
                    }
                }
                What::Wrote { by, msg, bytes, .. } => match msg {
                    MsgKind::Binary => o.side_mut(*by).wrote.push(Frame {
                        t,
                        i,
                        bytes: bytes.clone(),
                        f: Decoded::of(bytes),
                        fault: None,
                    }),
                    other => o.side_mut(*by).wrote_other.push((t, *other, bytes.clone())),
                },
                What::Delivered { to, bytes, fault, .. } => {
                    let faulted = fault.as_deref().is_some_and(|f| f != "service");
                    o.side_mut(*to).delivered.push(Frame {
                        t,
                        i,
                        bytes: bytes.clone(),
                        f: Decoded::of(bytes),
                        fault: fault.clone(),
                    });
                    delivering = Some((*to, faulted, i));
                }
                What::ServiceWrote { towards, bytes, .. } => {
                    o.side_mut(*towards).from_service.push((t, bytes.clone()))
                }
                What::ServiceSaw { side, req, detail } => {
                    o.side_mut(*side).service_saw.push((t, *req, detail.clone()))
                }
                What::Lost { towards, why, summary } => {
                    o.side_mut(*towards).lost.push((t, why.clone(), summary.clone()))
                }
                What::Pong { to } => o.side_mut(*to).pongs.push(t),
                What::SessionTerminated { .. } => {
                    o.terminated_at.get_or_insert(t);
                }
                What::Fault { .. } | What::Finished { .. } => {}
                What::Opened { side, url } => o.side_mut(*side).opened.push((t, url.clone())),
                What::OpenChecked { side, token, accepted, why } => {
                    o.side_mut(*side).open_checks.push((t, token.clone(), *accepted, why.clone()))
                }
                What::Closed { side, code, why } => o.side_mut(*side).closed.push((t, *code, why.clone())),
                What::Api { by, call, answer, called_at } => o.side_mut(*by).calls.push(Call {
                    t,
                    called_at: *called_at,
                    call: call.clone(),
                    answer: answer.clone(),
                }),
                What::Event { role, event } => {
                    let kind = event.get("event").and_then(|k| k.as_str()).unwrap_or_default().to_owned();
                    let from_fault = matches!(delivering, Some((r, true, _)) if r == *role);
                    let cause = match delivering {
                        Some((r, _, d)) if r == *role => Some(d),
                        _ => None,
                    };
                    o.side_mut(*role).events.push(Ev { t, i, cause, kind, v: event.clone(), from_fault });
                }
                What::Offered { by, payload_type, bytes, accepted } => {
                    o.side_mut(*by).offered.push((t, *payload_type, bytes.clone(), *accepted))
                }
            }
        }
        o
    }
}

impl Side {
    /// Stream frames written, with their decoded fields.
    pub fn stream_written(&self) -> impl Iterator<Item = (&Frame, &Decoded)> {
        self.wrote.iter().filter_map(|f| f.f.as_ref().filter(|d| d.is_stream()).map(|d| (f, d)))
    }

    /// Acks written: (t, acknowledged content).
    pub fn acks_written(&self) -> impl Iterator<Item = (u64, &AcknowledgeContent)> {
        self.acks_written_i().map(|(t, _, a)| (t, a))
    }

    /// Acks written: (t, record index, acknowledged content).
    pub fn acks_written_i(&self) -> impl Iterator<Item = (u64, usize, &AcknowledgeContent)> {
        self.wrote.iter().filter_map(|f| f.f.as_ref().and_then(|d| d.ack.as_ref()).map(|a| (f.t, f.i, a)))
    }

    /// Valid stream frames delivered to this side.
    pub fn stream_delivered(&self) -> impl Iterator<Item = (&Frame, &Decoded)> {
        self.delivered.iter().filter_map(|f| f.f.as_ref().filter(|d| d.is_stream()).map(|d| (f, d)))
    }

    /// Acks delivered to this side: (t, content).
    pub fn acks_delivered(&self) -> impl Iterator<Item = (u64, &AcknowledgeContent)> {
        self.delivered.iter().filter_map(|f| {
            f.f.as_ref().filter(|d| d.is_valid()).and_then(|d| d.ack.as_ref()).map(|a| (f.t, a))
        })
    }

    /// Events of one kind.
    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Ev> + 'a {
        self.events.iter().filter(move |e| e.kind == kind)
    }

    /// When this side's session ended, and why.
    pub fn ended(&self) -> Option<(u64, String)> {
        self.events_of("ended")
            .next()
            .map(|e| (e.t, e.v.get("reason").and_then(|r| r.as_str()).unwrap_or_default().to_owned()))
    }

    /// Intervals during which this side's websocket was open with OpenDataChannel accepted:
    /// (from, to) with `to` = u64::MAX if still open.
    pub fn connected_intervals(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut open_at: Option<u64> = None;
        let mut checks = self.open_checks.iter().filter(|c| c.2).map(|c| c.0).peekable();
        let mut closes = self.closed.iter().map(|c| c.0).peekable();
        loop {
            match (open_at, checks.peek().copied(), closes.peek().copied()) {
                (None, Some(a), _) => {
                    open_at = Some(a);
                    checks.next();
                    // Drop closes before this open.
                    while closes.peek().is_some_and(|&c| c < a) {
                        closes.next();
                    }
                }
                (Some(a), _, Some(c)) => {
                    out.push((a, c));
                    open_at = None;
                    closes.next();
                }
                (Some(a), _, None) => {
                    out.push((a, u64::MAX));
                    break;
                }
                (None, None, _) => break,
            }
        }
        out
    }

    pub fn connected_at(&self, t: u64) -> bool {
        self.connected_intervals().iter().any(|&(a, b)| a <= t && t < b)
    }
}
