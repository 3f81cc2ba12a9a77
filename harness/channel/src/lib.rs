//! The SSM Session Manager data channel as a sans-IO state machine (protocol reference 5 and 6).
//!
//! One [`Channel`] implements either role: the client (session-manager-plugin's part) or the
//! agent. Inputs are `handle_*(now, ...)` calls and application calls ([`Channel::send`],
//! [`Channel::finish`], [`Channel::terminate`]); outputs are drained with
//! [`Channel::poll_transmit`], [`Channel::poll_timeout`] and [`Channel::poll_event`], in that order,
//! after every input. The machine never reads a clock, opens a socket or draws from an RNG it was
//! not handed: time comes in as [`Time`], and message ids and jitter come from a generator seeded
//! by [`Config::seed`].
//!
//! Behaviour is plain configuration ([`Behaviour`]): the conformant ideal, the 2024 reference
//! client and agent, or a [`Mutant`] with one deliberate bug.
//!
//! KMS encryption (HS-006) is configuration too: [`Config::kms`] holds a fake KMS ([`kms::Kms`]);
//! an agent with one requests the `KMSEncryption` action, a client with one can perform it.

pub mod fuzz;
pub mod kms;
mod machine;
pub mod pair;
pub mod profile;
pub mod rng;
pub mod rto;
mod time;

use std::time::Duration;

pub use machine::Channel;
pub use profile::{Behaviour, Impl, ImplName, Mutant, UnknownImpl};
pub use ssm_spec::Req;
pub use ssm_wire::{FlagValue, PayloadType};
pub use time::Time;

/// ActionStatus values, re-exported for profiles.
pub(crate) use ssm_wire::payload::action_status as payload_status;

/// Resend scheduler tick (RTX-002).
pub const RESEND_TICK: Duration = Duration::from_millis(100);
/// How long an agent waits for each handshake reply: the HandshakeResponse (HS-003) and the
/// answer to the encryption challenge (HS-006).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an agent waits for its outgoing buffer to drain before closing (TERM-004).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Which end of the data channel a machine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The session-manager-plugin side: sends `input_stream_data`.
    Client,
    /// The amazon-ssm-agent side: sends `output_stream_data`.
    Agent,
}

impl Role {
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Agent,
            Role::Agent => Role::Client,
        }
    }

    /// The stream message type this role sends.
    pub fn outbound_stream(self) -> ssm_wire::MessageType {
        match self {
            Role::Client => ssm_wire::MessageType::InputStreamData,
            Role::Agent => ssm_wire::MessageType::OutputStreamData,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Agent => "agent",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of session the agent runs (it decides whether there is a handshake, 4.5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// `Standard_Stream` shell; a handshake happens only with KMS encryption.
    Shell,
    /// `InteractiveCommands`.
    InteractiveCommands,
    /// `NonInteractiveCommands`: always a handshake; the agent sends ExitCode at the end.
    NonInteractiveCommands,
    /// `Port`: always a handshake.
    Port,
}

impl SessionKind {
    pub fn session_type(&self) -> &'static str {
        use ssm_wire::payload::session_type as st;
        match self {
            SessionKind::Shell => st::STANDARD_STREAM,
            SessionKind::InteractiveCommands => st::INTERACTIVE_COMMANDS,
            SessionKind::NonInteractiveCommands => st::NON_INTERACTIVE_COMMANDS,
            SessionKind::Port => st::PORT,
        }
    }

    /// Whether the agent performs the handshake without KMS encryption (HS-001).
    pub fn has_handshake(&self) -> bool {
        matches!(self, SessionKind::NonInteractiveCommands | SessionKind::Port)
    }

    /// Whether the agent requests KMS encryption when its session preferences name a key: for
    /// every plugin except `Port` (4.5).
    pub fn supports_kms(&self) -> bool {
        !matches!(self, SessionKind::Port)
    }

    /// Whether the agent performs the handshake, with or without a KMS key configured (HS-001):
    /// `Port` and `NonInteractiveCommands` always, the shells only with KMS encryption.
    pub fn handshakes(&self, kms: bool) -> bool {
        self.has_handshake() || (kms && self.supports_kms())
    }
}

/// Everything a machine is constructed with.
#[derive(Debug, Clone)]
pub struct Config {
    pub role: Role,
    pub behaviour: Behaviour,
    pub session_id: String,
    /// Client: the StartSession token. Agent: the first CreateDataChannel token.
    pub token: String,
    pub stream_url: String,
    /// Seeds message ids, request ids and reconnect jitter.
    pub seed: u64,
    /// Unix epoch milliseconds at `Time::ZERO`, for CreatedDate.
    pub epoch_ms: u64,
    /// The agent's session kind (ignored by clients, which learn it from the agent).
    pub session_kind: SessionKind,
    /// ClientVersion / AgentVersion strings written into the protocol.
    pub version: String,
    /// The session's target: the agent's `ClientInstanceId` in its OpenDataChannel, and for
    /// both roles the `aws:ssm:TargetId` of the KMS encryption context (the client takes it from
    /// the StartSession request's `Target`).
    pub instance_id: String,
    /// Agent only: action types it requests in the HandshakeRequest beyond SessionType (newer
    /// agents may ask for actions an older client does not know; HS-002).
    pub extra_client_actions: Vec<String>,
    /// KMS encryption (HS-006). Agent: `Some` means the session preferences name this KMS key:
    /// the HandshakeRequest asks for `KMSEncryption` (not for `Port` sessions, 4.5), which makes
    /// shells handshake too. Client: `Some` means it can call KMS and performs the action;
    /// `None` answers it with status Failed. `None` on both sides is a plain session.
    pub kms: Option<kms::Kms>,
}

impl Config {
    /// A configuration with sensible defaults for tests and the simulator.
    pub fn new(role: Role, behaviour: Behaviour, seed: u64) -> Self {
        Config {
            role,
            behaviour,
            session_id: "harness-0123456789abcdef0".to_owned(),
            token: "token-initial".to_owned(),
            stream_url: "ws://127.0.0.1/v1/data-channel/harness-0123456789abcdef0?role=publish_subscribe"
                .to_owned(),
            seed,
            epoch_ms: 1_700_000_000_000,
            session_kind: SessionKind::Shell,
            version: match role {
                Role::Client => "1.2.677.0".to_owned(),
                Role::Agent => "3.3.987.0".to_owned(),
            },
            instance_id: "i-0123456789abcdef0".to_owned(),
            extra_client_actions: Vec::new(),
            kms: None,
        }
    }
}

/// One websocket message to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A text message: OpenDataChannel.
    Text(Vec<u8>),
    /// A binary message: one frame.
    Binary(Vec<u8>),
    /// A websocket ping with this payload (`keepalive`).
    Ping(Vec<u8>),
}

/// A control-plane call the machine asks its driver to make; the answer comes back through
/// [`Channel::handle_api_result`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "call")]
pub enum ApiCall {
    /// Client: `AmazonSSM.ResumeSession`.
    ResumeSession { session_id: String },
    /// Client: `AmazonSSM.TerminateSession`.
    TerminateSession { session_id: String },
    /// Agent: MGS `CreateDataChannel` for a fresh token.
    CreateDataChannel { session_id: String },
}

/// A control-plane error, classified the way a client must treat it (API-002, API-003).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ApiError {
    /// `DoesNotExistException`: the session is gone.
    DoesNotExist,
    /// The agent's "Session is already terminated" (RES-008).
    SessionTerminated,
    /// Throttling: retryable.
    Throttled,
    /// 5xx `InternalServerError`: retryable.
    Internal,
    /// 403 (expired or missing credentials).
    AccessDenied,
    /// The call could not be made (connection refused, timeout).
    Unreachable,
}

/// The driver's answer to an [`ApiCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiResult {
    /// ResumeSession answered: a `TokenValue` (RES-004: `None` means the session timed out) and
    /// possibly a new `StreamUrl`.
    Resumed {
        token: Option<String>,
        stream_url: Option<String>,
    },
    /// CreateDataChannel answered with a token.
    DataChannelToken {
        token: String,
    },
    /// TerminateSession answered.
    Terminated,
    Error(ApiError),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EndReason {
    /// channel_closed arrived (TERM-001, TERM-002); `output` is its text.
    ChannelClosed { output: String },
    /// ResumeSession returned no token (RES-004).
    TimedOut,
    /// The control plane says the session does not exist or is terminated.
    SessionGone,
    /// Reconnecting was abandoned after the policy's budget.
    ResumeGaveUp,
    /// A message was resent the maximum number of times (RTX-006, RTX-007).
    ResendLimit,
    /// The handshake failed (HS-003).
    HandshakeFailed { detail: String },
    /// No HandshakeResponse in time (HS-003).
    HandshakeTimeout,
    /// KMS encryption could not be set up (HS-006): the data key did not decrypt, or the
    /// encryption challenge failed (answer missing its key, undecryptable, or different).
    EncryptionFailed { detail: String },
    /// No answer to the encryption challenge in time (HS-006).
    ChallengeTimeout,
    /// The local side terminated the session (TerminateSession API or Flag).
    Terminated,
    /// The agent's application finished (TERM-004).
    Finished { exit_code: Option<i32> },
    /// Local input during an outage was fatal (the plugin's behaviour, RES-007).
    InputDuringOutage,
    /// The service refused the websocket upgrade with a client error (a missing or wrong
    /// signature, a malformed request): asking again the same way would be refused again.
    UpgradeRefused { status: u16, detail: String },
}

/// A requirement the *peer* broke, as observed by this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerViolation {
    pub req: Req,
    pub detail: String,
}

/// Diagnostic facts for traces: things the machine decided that leave no frame on the wire.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    /// A received frame was dropped.
    Dropped { seq: Option<i64>, why: String },
    /// An in-order stream message was left unacknowledged because the consumer was not ready.
    NotReady { seq: i64 },
    /// A message was retransmitted.
    Retransmit { seq: i64, attempt: u32 },
    /// The resend limit was reached for a message.
    ResendLimit { seq: i64 },
    /// The outgoing buffer was full.
    OutgoingFull { seq: i64, action: String },
    /// A frame crashed the reference decoder; this machine will never read again (FRAME-010).
    ReceiveLoopDied,
    /// Reconnect attempts are exhausted and no further attempt will be made.
    ReconnectExhausted { calls: u32 },
    /// The agent paused or resumed publication.
    Publication { paused: bool },
}

/// What the machine tells its driver and application.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Open a websocket to `url`; report the outcome with `handle_transport_open` or
    /// `handle_transport_lost`.
    Connect { url: String, token: String },
    /// Close the current websocket (the agent after TERM-004, or a dead-peer detection).
    CloseTransport,
    /// Make a control-plane call.
    Api(ApiCall),
    /// The session is ready for application data: the client may start its handlers (HS-004),
    /// the agent may start its plugin.
    SessionReady { session_type: String },
    /// An in-order stream payload for the application (Output, StdErr, Size, ...).
    Data {
        seq: i64,
        payload_type: u32,
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
    },
    /// A Flag payload arrived.
    Flag { value: u32 },
    /// An ExitCode payload arrived.
    ExitCode { code: i32 },
    /// The peer broke a requirement.
    Violation(PeerViolation),
    /// A diagnostic fact.
    Note(Note),
    /// The session ended. No further events follow.
    Ended(EndReason),
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
}

/// Why [`Channel::send`] refused data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the session has ended")]
    Ended,
    #[error("stream messages cannot have an empty payload (FRAME-012)")]
    EmptyPayload,
    #[error("the outgoing buffer is full ({0} messages); retry after acknowledgements arrive")]
    Full(usize),
    #[error("the session is not ready for application data yet (HS-004)")]
    NotReady,
    #[error("the transport is down and this implementation does not buffer input (RES-007)")]
    TransportDown,
}
