//! The service's relay rules, shared by the simulator and the mock service so that both carry
//! frames, faults, publication control and session ends the same way.
//!
//! A relay implements the few operations that depend on its transport (how a frame is queued,
//! how a websocket is closed, where records go); the rules themselves are the provided methods:
//! [`Relay::apply_effects`] carries out the fault engine's decisions, [`Relay::publication_update`]
//! sends pause_publication / start_publication (6.5), [`Relay::notify_closed`] sends
//! channel_closed (6.8). The link model's random draws are [`link_loses`] and [`link_jitter`], in
//! that order.

use ssm_channel::rng::Rng;
use ssm_channel::Role;
use ssm_fault::{Direction, Effect, RuleId};
use ssm_wire::payload::{self, ChannelClosed, OpenDataChannel};
use ssm_wire::{Frame, MessageType};
pub use uuid::Uuid;

use crate::trace::{summarize, MsgKind};
use crate::What;

/// The instance id the service names in channel_closed.
pub const INSTANCE_ID: &str = "i-0123456789abcdef0";

/// What a relay provides; the rules come with it.
pub trait Relay {
    /// Appends a trace record (a relay that does not record ignores it).
    fn record(&mut self, what: What);
    /// The label of a fault rule in records: its id and, when it has one, its name.
    fn rule_label(&self, id: RuleId) -> String;
    /// Queues a frame in `dir`, `delay_ms` beyond the link's latency; `fault` labels it.
    fn enqueue(&mut self, dir: Direction, bytes: Vec<u8>, delay_ms: u64, fault: Option<String>);
    /// Closes a side's websocket (`code` None: reset).
    fn close_side(&mut self, side: Role, code: Option<u16>, why: &str);
    /// Marks the frame last queued towards `to` to reset that side's connection right after its
    /// delivery; false when there is no such frame.
    fn reset_after_last(&mut self, to: Role) -> bool;
    /// OpenDataChannel was accepted on the side's current websocket.
    fn opened(&self, side: Role) -> bool;
    /// Whether pause_publication was the last publication frame sent to the side.
    fn paused_sent(&mut self, side: Role) -> &mut bool;
    /// The service sends publication frames, and the session is not over.
    fn publishes(&self) -> bool;
    /// A message id for a frame or payload of the service.
    fn service_uuid(&mut self) -> Uuid;
    /// The service's wall clock (milliseconds since the epoch) for created dates.
    fn service_clock_ms(&self) -> u64;
    /// The session id channel_closed names.
    fn session_id(&self) -> &str;
    /// Sends a frame of the service towards a side, through the faults.
    fn service_send(&mut self, to: Role, bytes: Vec<u8>);

    /// A frame of the service (no sequence, flags 0, a fresh message id).
    fn service_frame(&mut self, t: MessageType, payload: Vec<u8>) -> Vec<u8> {
        let created = self.service_clock_ms();
        let id = self.service_uuid();
        Frame::service(t, created, id, payload).encode_with(&ssm_wire::Overrides::default())
    }

    /// Carries out the fault engine's decisions. `frame` summarises the frame they are about (for
    /// rules that hold or drop it); `origin` labels deliveries no rule touched (`service` for the
    /// service's own frames).
    fn apply_effects(&mut self, effects: Vec<Effect>, frame: Option<&str>, origin: Option<&str>) {
        for e in effects {
            match e {
                Effect::Deliver { direction, bytes, delay_ms, fault: None } => {
                    self.enqueue(direction, bytes, delay_ms, origin.map(str::to_owned));
                }
                Effect::Deliver { direction, bytes, delay_ms, fault: Some(id) } => {
                    let label = self.rule_label(id);
                    let summary = summarize(MsgKind::Binary, &bytes);
                    self.record(What::Fault {
                        rule: label.clone(),
                        what: format!("shaped {direction} {summary}"),
                    });
                    self.enqueue(direction, bytes, delay_ms, Some(label));
                }
                Effect::Held { direction, rule, until_ms } => {
                    let label = self.rule_label(rule);
                    let summary = frame.unwrap_or_default();
                    self.record(What::Fault {
                        rule: label,
                        what: format!("held {direction} {summary} until {until_ms} ms at the latest"),
                    });
                }
                Effect::Inject { direction, bytes, rule } => {
                    let label = self.rule_label(rule);
                    let summary = summarize(MsgKind::Binary, &bytes);
                    self.record(What::Fault { rule: label.clone(), what: format!("injected {summary}") });
                    self.record(What::ServiceWrote {
                        towards: direction.destination().role(),
                        bytes: bytes.clone(),
                        summary,
                    });
                    self.enqueue(direction, bytes, 0, Some(label));
                }
                Effect::Dropped { direction, rule } => {
                    let label = self.rule_label(rule);
                    let summary = frame.unwrap_or_default().to_owned();
                    self.record(What::Fault { rule: label.clone(), what: format!("dropped {summary}") });
                    self.record(What::Lost { towards: direction.destination().role(), why: label, summary });
                }
                Effect::Close { side, code, rule } => {
                    let label = self.rule_label(rule);
                    self.record(What::Fault {
                        rule: label.clone(),
                        what: format!("closed {side} with {code}"),
                    });
                    self.close_side(side.role(), Some(code), &label);
                }
                Effect::ResetAfterDelivery { side, rule } => {
                    let label = self.rule_label(rule);
                    if self.reset_after_last(side.role()) {
                        self.record(What::Fault {
                            rule: label,
                            what: format!("will reset {side} after delivery"),
                        });
                    }
                }
                Effect::Reset { side, rule } => {
                    let label = self.rule_label(rule);
                    self.record(What::Fault { rule: label.clone(), what: format!("reset {side}") });
                    self.close_side(side.role(), None, &label);
                }
            }
        }
    }

    /// pause_publication to a side whose peer is not connected, start_publication when it is
    /// again (6.5).
    fn publication_update(&mut self) {
        if !self.publishes() {
            return;
        }
        for r in [Role::Client, Role::Agent] {
            if !self.opened(r) {
                continue;
            }
            let peer_ok = self.opened(r.peer());
            let t = match (peer_ok, *self.paused_sent(r)) {
                (false, false) => MessageType::PausePublication,
                (true, true) => MessageType::StartPublication,
                _ => continue,
            };
            *self.paused_sent(r) = t == MessageType::PausePublication;
            let bytes = self.service_frame(t, b"{}".to_vec());
            self.service_send(r, bytes);
        }
    }

    /// channel_closed, saying `why`, to every side whose websocket is open (6.8).
    fn notify_closed(&mut self, why: &str) {
        for r in [Role::Client, Role::Agent] {
            if !self.opened(r) {
                continue;
            }
            let id = self.service_uuid();
            let created = self.service_clock_ms();
            let body = ChannelClosed::new(id, created, INSTANCE_ID, self.session_id(), why);
            let bytes = self.service_frame(MessageType::ChannelClosed, payload::to_go_json(&body));
            self.service_send(r, bytes);
        }
    }
}

/// The link model's first draw for a frame: whether the link loses it. Frames a fault rule
/// shaped are not subject to loss (and draw nothing).
pub fn link_loses(loss: f64, faulted: bool, rng: &mut Rng) -> bool {
    if loss <= 0.0 || faulted {
        return false;
    }
    let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    draw < loss
}

/// The link model's second draw: the jitter added to the latency, below `jitter_ms`.
pub fn link_jitter(jitter_ms: u64, rng: &mut Rng) -> u64 {
    if jitter_ms > 0 {
        rng.range(0, jitter_ms)
    } else {
        0
    }
}

/// The service's answer to the first text frame of a websocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCheck {
    pub accepted: bool,
    pub why: String,
    /// The token the frame carried (empty when it was not an OpenDataChannel).
    pub token: String,
}

/// Checks that the first text frame of a websocket is an OpenDataChannel carrying the side's
/// current token, and that the session is not over (OPEN-001, RES-004).
pub fn check_open(bytes: &[u8], terminated: bool, current_token: &str) -> OpenCheck {
    let (accepted, why, token) = match OpenDataChannel::parse(bytes) {
        Err(e) => (false, format!("not an OpenDataChannel: {e}"), String::new()),
        Ok(o) => {
            let token = o.token_value().to_owned();
            let (accepted, why) = if terminated {
                (false, "session is terminated")
            } else if token != current_token {
                (false, "stale or unknown token")
            } else {
                (true, "ok")
            };
            (accepted, why.to_owned(), token)
        }
    };
    OpenCheck { accepted, why, token }
}

/// What the relay does with a binary frame a side wrote, once its OpenDataChannel was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// agent_session_state: the service consumes it.
    Consumed,
    /// Stream data: relayed, and it counts as activity for the idle timeout.
    Stream,
    /// Anything else: relayed.
    Other,
}

/// Classifies a binary frame a side wrote (see [`Inbound`]).
pub fn inbound(bytes: &[u8]) -> Inbound {
    match ssm_wire::decode(bytes) {
        Ok(w) if w.message_type == MessageType::AgentSessionState => Inbound::Consumed,
        Ok(w) if w.message_type.is_stream() => Inbound::Stream,
        _ => Inbound::Other,
    }
}
