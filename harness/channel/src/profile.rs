//! Behaviour profiles: plain configuration that makes one machine behave as the conformant ideal,
//! as the 2024 reference client or agent, or as a deliberately broken mutant.
//!
//! Every way a reference implementation deviates from protocol.md is one named knob here, with
//! the requirement it bears on.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ssm_spec::Req;

use crate::Role;

/// Which expired messages a resend tick retransmits (RTX-005).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetransmitScope {
    /// Only the oldest buffered message (both references).
    HeadOnly,
    /// Every message whose timer expired.
    AllExpired,
}

/// What happens when the outgoing buffer is full (RTX-001).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutgoingFull {
    /// Discard the oldest unacknowledged message (plugin).
    DiscardOldest,
    /// Send the new message once but do not buffer it (agent).
    RefuseNew,
    /// Refuse the send: the application must wait (conformant; nothing is lost).
    Backpressure,
}

/// When PayloadDigest is checked on receipt (FRAME-008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCheck {
    /// Always (conformant).
    Always,
    /// Only when the PayloadLength field is non-zero (plugin).
    WhenLengthFieldNonZero,
    /// Never (agent).
    Never,
}

/// When the receiver advances its expected sequence number after an in-order delivery (ORD-004).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvanceExpected {
    /// At delivery: a retransmission of a delivered message is a duplicate (conformant).
    OnDelivery,
    /// Only once the ack is handed to a live transport: if the transport dies first, the
    /// retransmission is delivered again (both references).
    AfterAckWritten,
}

/// What a second early copy with a buffered sequence number does (ORD-003).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyDuplicate {
    /// Keep the first copy (conformant).
    KeepFirst,
    /// Overwrite the stored copy (both references).
    Overwrite,
}

/// The backoff used between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Initial delay d is drawn from this range (inclusive), in milliseconds.
    pub initial_ms: (u64, u64),
    /// Draw d once per process (plugin) instead of once per episode (agent).
    pub draw_once: bool,
    /// Delay ratio between calls.
    pub ratio: u32,
    /// Delay cap.
    pub max_delay: Duration,
    /// Past the cap: restart from d (plugin's sawtooth) instead of staying at the cap.
    pub sawtooth: bool,
}

/// The client's resume policy (RES-001 to RES-005) or the agent's reconnect policy (RES-008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePolicy {
    pub backoff: Backoff,
    /// Calls per outage episode; `None` keeps trying (RES-003).
    pub max_calls: Option<u32>,
    /// Give up when an outage lasts this long (a clear end, not a hang).
    pub give_up_after: Option<Duration>,
    /// Treat DoesNotExistException from ResumeSession as "the session is gone" and end.
    pub does_not_exist_is_final: bool,
}

/// Every behaviour knob of the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    // --- receiving ---
    /// ACK-003: re-acknowledge a duplicate (sequence < expected).
    pub reack_duplicates: bool,
    /// ORD-003.
    pub early_duplicate: EarlyDuplicate,
    /// ORD-004.
    pub advance_expected: AdvanceExpected,
    /// FRAME-008.
    pub digest_check: DigestCheck,
    /// FRAME-011: drop frames whose HeaderLength or PayloadLength disagree with the frame.
    pub drop_length_mismatch: bool,
    /// FRAME-009 as the agent reads it: publication frames need a CreatedDate too.
    pub publication_needs_created_date: bool,
    /// FRAME-010: a frame that crashes the reference decoder stops the receive loop for good.
    pub malformed_stops_reading: bool,
    /// Reorder (incoming) buffer capacity.
    pub reorder_capacity: usize,
    /// The agent acknowledges and discards stream data that arrives before the handshake is
    /// complete (5.2 agent quirk).
    pub discard_data_before_handshake: bool,
    // --- sending ---
    /// RTX-005.
    pub retransmit_scope: RetransmitScope,
    /// RTX-004: restart the timer after a resend (the plugin resends every tick instead).
    pub restart_rto_after_resend: bool,
    /// RTX-006 / RTX-007: resends of one message before giving up; `None` = never.
    pub max_resend_attempts: Option<u32>,
    /// RTX-006 / RTX-007 as a time bound: give up on a message this long after it was first
    /// sent (the plugin's 3000 attempts at one per tick come to the same 5 minutes).
    pub resend_give_up_after: Option<Duration>,
    /// What giving up does beyond calling TerminateSession: end the session (conformant) or just
    /// stop retransmitting and hang (plugin).
    pub end_session_on_resend_limit: bool,
    /// Outgoing buffer capacity.
    pub outgoing_capacity: usize,
    /// RTX-001.
    pub outgoing_full: OutgoingFull,
    /// Send never-sent buffered messages as soon as a transport opens or a pause ends, instead
    /// of waiting for the resend tick to reach them (RES-006, PUB-003).
    pub flush_unsent_on_open: bool,
    /// TYPE-005: set SYN on output stream message 0.
    pub syn_on_first_output: bool,
    // --- publication ---
    /// PUB-001: honour pause_publication (agents).
    pub honour_pause: bool,
    // --- handshake ---
    /// HS-002: status for an unknown action type: 3 (Unsupported) or the plugin's 0.
    pub unknown_action_status: u32,
    // --- outage and resume ---
    /// RES-007: local input during an outage is buffered (true) or fatal (plugin).
    pub buffer_input_during_outage: bool,
    /// RES-005: use the StreamUrl returned by ResumeSession when present.
    pub use_resumed_stream_url: bool,
    pub resume: ResumePolicy,
    /// PING-001: websocket ping interval.
    pub ping_interval: Option<Duration>,
    /// PING-002: declare the transport dead when no pong arrives within this time after a ping.
    pub pong_deadline: Option<Duration>,
    /// The deliberate bug, if this is a mutant.
    pub bug: Option<Mutant>,
}

const PLUGIN_BACKOFF: Backoff = Backoff {
    initial_ms: (100, 199),
    draw_once: true,
    ratio: 2,
    max_delay: Duration::from_millis(5000),
    sawtooth: true,
};

const AGENT_BACKOFF: Backoff = Backoff {
    initial_ms: (100, 199),
    draw_once: false,
    ratio: 2,
    max_delay: Duration::from_millis(5000),
    sawtooth: false,
};

impl Behaviour {
    /// Meets every MUST and SHOULD of protocol.md.
    pub fn conformant(role: Role) -> Self {
        Behaviour {
            reack_duplicates: true,
            early_duplicate: EarlyDuplicate::KeepFirst,
            advance_expected: AdvanceExpected::OnDelivery,
            digest_check: DigestCheck::Always,
            drop_length_mismatch: true,
            publication_needs_created_date: false,
            malformed_stops_reading: false,
            reorder_capacity: 10_000,
            discard_data_before_handshake: role == Role::Agent,
            retransmit_scope: RetransmitScope::AllExpired,
            restart_rto_after_resend: true,
            max_resend_attempts: None,
            resend_give_up_after: Some(Duration::from_secs(300)),
            end_session_on_resend_limit: true,
            outgoing_capacity: 10_000,
            outgoing_full: OutgoingFull::Backpressure,
            flush_unsent_on_open: true,
            syn_on_first_output: role == Role::Agent,
            honour_pause: role == Role::Agent,
            unknown_action_status: crate::payload_status::UNSUPPORTED,
            buffer_input_during_outage: true,
            use_resumed_stream_url: true,
            resume: ResumePolicy {
                backoff: Backoff { draw_once: false, ..AGENT_BACKOFF },
                max_calls: None,
                give_up_after: Some(Duration::from_secs(20 * 60)),
                does_not_exist_is_final: true,
            },
            ping_interval: Some(match role {
                Role::Client => Duration::from_secs(300),
                Role::Agent => Duration::from_secs(54),
            }),
            pong_deadline: Some(Duration::from_secs(60)),
            bug: None,
        }
    }

    /// session-manager-plugin at the 2024-10 baseline.
    pub fn plugin_2024() -> Self {
        Behaviour {
            reack_duplicates: false,
            early_duplicate: EarlyDuplicate::Overwrite,
            advance_expected: AdvanceExpected::AfterAckWritten,
            digest_check: DigestCheck::WhenLengthFieldNonZero,
            drop_length_mismatch: false,
            publication_needs_created_date: false,
            malformed_stops_reading: true,
            reorder_capacity: 10_000,
            discard_data_before_handshake: false,
            retransmit_scope: RetransmitScope::HeadOnly,
            restart_rto_after_resend: false,
            max_resend_attempts: Some(3000),
            resend_give_up_after: None,
            end_session_on_resend_limit: false,
            outgoing_capacity: 10_000,
            outgoing_full: OutgoingFull::DiscardOldest,
            flush_unsent_on_open: false,
            syn_on_first_output: false,
            honour_pause: false,
            unknown_action_status: 0,
            buffer_input_during_outage: false,
            use_resumed_stream_url: false,
            resume: ResumePolicy {
                backoff: PLUGIN_BACKOFF,
                max_calls: Some(6),
                give_up_after: None,
                does_not_exist_is_final: false,
            },
            ping_interval: Some(Duration::from_secs(300)),
            pong_deadline: None,
            bug: None,
        }
    }

    /// amazon-ssm-agent at the 2024-10 baseline.
    pub fn agent_2024() -> Self {
        Behaviour {
            reack_duplicates: true,
            early_duplicate: EarlyDuplicate::Overwrite,
            advance_expected: AdvanceExpected::AfterAckWritten,
            digest_check: DigestCheck::Never,
            drop_length_mismatch: false,
            publication_needs_created_date: true,
            malformed_stops_reading: true,
            reorder_capacity: 100_000,
            discard_data_before_handshake: true,
            retransmit_scope: RetransmitScope::HeadOnly,
            restart_rto_after_resend: true,
            max_resend_attempts: None,
            resend_give_up_after: None,
            end_session_on_resend_limit: false,
            outgoing_capacity: 100_000,
            outgoing_full: OutgoingFull::RefuseNew,
            flush_unsent_on_open: false,
            syn_on_first_output: true,
            honour_pause: true,
            unknown_action_status: crate::payload_status::UNSUPPORTED,
            buffer_input_during_outage: true,
            use_resumed_stream_url: true,
            resume: ResumePolicy {
                backoff: AGENT_BACKOFF,
                max_calls: Some(6),
                give_up_after: None,
                does_not_exist_is_final: true,
            },
            ping_interval: Some(Duration::from_secs(54)),
            pong_deadline: Some(Duration::from_secs(60)),
            bug: None,
        }
    }

    /// The behaviour an implementation name selects for `role`.
    pub fn for_impl(imp: &Impl, role: Role) -> Self {
        match imp {
            Impl::Conformant => Behaviour::conformant(role),
            Impl::Reference => match role {
                Role::Client => Behaviour::plugin_2024(),
                Role::Agent => Behaviour::agent_2024(),
            },
            Impl::Mutant(m) => {
                let mut b = Behaviour::conformant(role);
                m.apply(&mut b);
                b
            }
        }
    }

    pub(crate) fn has_bug(&self, m: Mutant) -> bool {
        self.bug == Some(m)
    }
}

/// An implementation a scenario can select: `conformant`, the reference of the role under test
/// (`plugin-2024` for clients, `agent-2024` for agents), or `mutant:NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    Conformant,
    /// `plugin-2024` as a client, `agent-2024` as an agent.
    Reference,
    Mutant(Mutant),
}

macro_rules! mutants {
    ($($variant:ident = $name:literal, [$($req:ident),*], $roles:expr, $doc:literal;)*) => {
        /// A deliberately broken variant of the conformant machine: one realistic bug each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Mutant {
            $(#[doc = $doc] $variant,)*
        }

        impl Mutant {
            pub const ALL: &'static [Mutant] = &[$(Mutant::$variant),*];

            /// The name used in `mutant:NAME`.
            pub const fn name(self) -> &'static str {
                match self { $(Mutant::$variant => $name),* }
            }

            /// The requirements the bug breaks.
            pub fn breaks(self) -> &'static [Req] {
                match self { $(Mutant::$variant => &[$(Req::$req),*]),* }
            }

            /// The roles the bug makes sense for.
            pub fn roles(self) -> &'static [Role] {
                match self { $(Mutant::$variant => $roles),* }
            }

            /// One line describing the bug.
            pub const fn description(self) -> &'static str {
                match self { $(Mutant::$variant => $doc),* }
            }
        }

        impl FromStr for Mutant {
            type Err = UnknownImpl;
            fn from_str(s: &str) -> Result<Self, UnknownImpl> {
                match s {
                    $($name => Ok(Mutant::$variant),)*
                    _ => Err(UnknownImpl(s.to_owned())),
                }
            }
        }
    };
}

const BOTH: &[Role] = &[Role::Client, Role::Agent];
const CLIENT: &[Role] = &[Role::Client];
const AGENT: &[Role] = &[Role::Agent];

mutants! {
    ResetSeqOnResume = "reset-seq-on-resume", [Seq002], BOTH,
        "Resets both sequence counters when a new transport opens.";
    ReuseOldToken = "reuse-old-token", [Open003], CLIENT,
        "Sends the StartSession token in OpenDataChannel after a resume.";
    NoRetransmitAfterResume = "no-retransmit-after-resume", [Res006, Rtx001], BOTH,
        "Forgets unacknowledged messages when the transport is lost.";
    DeliverDuplicates = "deliver-duplicates", [Ord001], BOTH,
        "Delivers a retransmitted copy of an already delivered message again.";
    DropEarlyFrames = "drop-early-frames", [Ord002, Ack002], BOTH,
        "Drops messages that arrive ahead of the expected sequence instead of buffering them.";
    AckBeforeReady = "ack-before-ready", [Ack007, Ord001], BOTH,
        "Acknowledges in-order data while the consumer is not ready, and loses it.";
    UnswappedMessageId = "unswapped-message-id", [Frame006], BOTH,
        "Writes the MessageId UUID bytes in textual order instead of swapping the halves.";
    SkipDigest = "skip-digest", [Frame007], BOTH,
        "Leaves PayloadDigest zero on send.";
    AckWrongSequence = "ack-wrong-sequence", [Ack004, Ack001], BOTH,
        "Acknowledges with the next expected sequence number instead of the received one.";
    IgnoreChannelClosed = "ignore-channel-closed", [Term001, Term002], BOTH,
        "Keeps the session running after channel_closed.";
    ResumeOnce = "resume-once", [Res002, Res003], CLIENT,
        "Gives up after a single failed ResumeSession call.";
    ResumeTerminatedForever = "resume-terminated-forever", [Res009, Res004], CLIENT,
        "Treats every ResumeSession error, even DoesNotExistException, as retryable, forever.";
    NewIdOnRetransmit = "new-id-on-retransmit", [Seq003], BOTH,
        "Re-encodes retransmissions with a fresh MessageId and CreatedDate.";
    IgnorePause = "ignore-pause", [Pub001], AGENT,
        "Keeps sending while the service says pause_publication.";
    NeverRetransmit = "never-retransmit", [Rtx002], BOTH,
        "Never retransmits an unacknowledged message.";
    EmptyPayloads = "empty-payloads", [Frame012], BOTH,
        "Sends stream messages with an empty payload.";
    SwappedKeyHalves = "swapped-key-halves", [Hs006], BOTH,
        "With KMS encryption, uses data key bytes 0..31 for client-to-agent traffic and 32..63 for agent-to-client.";
}

impl Mutant {
    /// Applies the bug to a conformant behaviour.
    pub fn apply(self, b: &mut Behaviour) {
        b.bug = Some(self);
        match self {
            Mutant::ResumeOnce => b.resume.max_calls = Some(1),
            Mutant::ResumeTerminatedForever => {
                b.resume.does_not_exist_is_final = false;
                b.resume.max_calls = None;
                b.resume.give_up_after = None;
            }
            _ => {}
        }
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that selects no implementation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown implementation `{0}`: expected conformant, plugin-2024, agent-2024 or mutant:NAME")]
pub struct UnknownImpl(pub String);

/// The parsed `--impl` value, with the role it names if it names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImplName {
    pub imp: Impl,
    /// `plugin-2024` names the client, `agent-2024` the agent.
    pub role: Option<Role>,
}

impl FromStr for ImplName {
    type Err = UnknownImpl;
    fn from_str(s: &str) -> Result<Self, UnknownImpl> {
        Ok(match s {
            "conformant" => ImplName { imp: Impl::Conformant, role: None },
            "plugin-2024" => ImplName { imp: Impl::Reference, role: Some(Role::Client) },
            "agent-2024" => ImplName { imp: Impl::Reference, role: Some(Role::Agent) },
            other => match other.strip_prefix("mutant:") {
                Some(m) => ImplName { imp: Impl::Mutant(m.parse()?), role: None },
                None => return Err(UnknownImpl(other.to_owned())),
            },
        })
    }
}

impl fmt::Display for ImplName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.imp, self.role) {
            (Impl::Conformant, _) => f.write_str("conformant"),
            (Impl::Reference, Some(Role::Agent)) => f.write_str("agent-2024"),
            (Impl::Reference, _) => f.write_str("plugin-2024"),
            (Impl::Mutant(m), _) => write!(f, "mutant:{m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_twelve_mutants_with_unique_names_and_requirements() {
        assert!(Mutant::ALL.len() >= 12);
        for m in Mutant::ALL {
            assert_eq!(m.name().parse::<Mutant>(), Ok(*m));
            assert!(!m.breaks().is_empty(), "{m} names no requirement");
            let parsed: ImplName = format!("mutant:{m}").parse().unwrap();
            assert_eq!(parsed.imp, Impl::Mutant(*m));
        }
    }

    #[test]
    fn impl_names() {
        assert_eq!("plugin-2024".parse::<ImplName>().unwrap().role, Some(Role::Client));
        assert!("mutant:nope".parse::<ImplName>().is_err());
        assert!("plugin".parse::<ImplName>().is_err());
    }

    #[test]
    fn reference_deviations_are_knobs() {
        let p = Behaviour::plugin_2024();
        let a = Behaviour::agent_2024();
        assert!(!p.reack_duplicates && a.reack_duplicates);
        assert_eq!(p.retransmit_scope, RetransmitScope::HeadOnly);
        assert_eq!(a.digest_check, DigestCheck::Never);
        assert_eq!(p.resume.max_calls, Some(6));
        assert_ne!(Behaviour::conformant(Role::Client), p);
    }
}
