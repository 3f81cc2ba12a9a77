//! The scenario model: what a `scenarios/**/*.toml` file says. Every key is documented in
//! `scenarios/README.md`; unknown keys are errors.

use serde::{Deserialize, Serialize};
use ssm_channel::{Role, SessionKind};
use ssm_spec::Req;

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique id, e.g. `resume-001`; also the file's stem.
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Requirement IDs this scenario checks (protocol reference section 9).
    pub requirements: Vec<Req>,
    /// Which role is the system under test; the other side is the harness's own peer.
    pub under_test: Role,
    /// The implementation of the harness's peer: `conformant` (default) or a reference profile.
    #[serde(default)]
    pub peer: Option<String>,
    /// The session the agent runs.
    #[serde(default = "default_session")]
    pub session: SessionKind,
    /// Fixed seed; otherwise the run's seed is used.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Virtual-time deadline: a run still busy then ends with "did not finish".
    #[serde(default = "default_duration_ms")]
    pub duration_ms: u64,
    #[serde(default)]
    pub link: LinkSpec,
    #[serde(default)]
    pub service: ServiceSpec,
    #[serde(default)]
    pub agent_app: AgentApp,
    /// Action types the agent requests in its HandshakeRequest besides SessionType (for
    /// sessions with a handshake), e.g. one the client does not know.
    #[serde(default)]
    pub handshake_extra_actions: Vec<String>,
    /// KMS encryption (HS-006): the agent's session preferences name a KMS key, so it requests
    /// the KMSEncryption action (which gives shells a handshake too), and both sides hold the
    /// harness's fake KMS ([`ssm_channel::kms::Kms::harness`]). Not for `port` sessions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kms_encryption: bool,
    /// The fault plan (see the `ssm-fault` crate documentation for every key).
    #[serde(default)]
    pub faults: ssm_fault::FaultPlan,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect: Expect,
}

fn default_session() -> SessionKind {
    SessionKind::Shell
}

fn default_duration_ms() -> u64 {
    120_000
}

/// The network between each side and the service.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSpec {
    /// One-way latency of every frame, client to agent or back, in milliseconds.
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=jitter_ms` (frames stay in order, like TCP).
    pub jitter_ms: u64,
    /// Probability in `[0, 1)` that the service loses a frame.
    pub loss: f64,
}

impl Default for LinkSpec {
    fn default() -> Self {
        LinkSpec { latency_ms: 20, jitter_ms: 0, loss: 0.0 }
    }
}

/// What ResumeSession answers for a terminated session (RES-009; the real answer is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TerminatedResume {
    /// `DoesNotExistException`.
    #[default]
    Error,
    /// A response without TokenValue.
    NullToken,
}

/// The simulated service and control plane.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSpec {
    /// Send pause_publication to a side whose peer is not connected, start_publication when it is.
    pub publication: bool,
    /// Terminate the session after this long without stream data.
    pub idle_timeout_ms: Option<u64>,
    /// Terminate the session this long after it started.
    pub max_duration_ms: Option<u64>,
    /// Close both websockets with 1000 "Bye" this often.
    pub bye_interval_ms: Option<u64>,
    pub terminated_resume: TerminatedResume,
    /// ResumeSession returns a new StreamUrl each time.
    pub rotate_stream_url: bool,
    /// The client's first websocket opens this much later than the agent's (a user who starts
    /// the session and whose client is slow to connect, amazon-ssm-agent#519).
    pub client_first_connect_delay_ms: u64,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            publication: true,
            idle_timeout_ms: None,
            max_duration_ms: None,
            bye_interval_ms: None,
            terminated_resume: TerminatedResume::Error,
            rotate_stream_url: false,
            client_first_connect_delay_ms: 0,
        }
    }
}

/// The application behind the agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentApp {
    /// A shell that prints a prompt and echoes every input byte.
    Echo {
        #[serde(default = "default_prompt")]
        prompt: String,
    },
    /// Prints fixed output chunks, then finishes with an exit code.
    Script {
        output: Vec<String>,
        #[serde(default)]
        exit_code: Option<i32>,
        /// Pause between chunks.
        #[serde(default)]
        interval_ms: u64,
    },
}

fn default_prompt() -> String {
    "$ ".to_owned()
}

impl Default for AgentApp {
    fn default() -> Self {
        AgentApp::Echo { prompt: default_prompt() }
    }
}

/// How a websocket is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Breakage {
    /// Abrupt: the TCP connection is reset.
    #[default]
    Reset,
    /// A websocket close frame (code from `code`).
    Close,
}

/// What a `wait_for` step waits for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitEvent {
    /// Both sides ready for application data.
    Ready,
    /// The client's websocket is open again after a break.
    Reconnected,
    /// Every byte offered so far has been delivered (both directions).
    Delivered,
    /// The session ended on the side under test.
    Ended,
    /// Nothing in flight and nothing unacknowledged.
    Quiet,
}

/// How the client ends the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TerminateVia {
    /// Whatever the client implementation does for a user interrupt (TERM-003).
    #[default]
    Interrupt,
    /// The service terminates it (TerminateSession from elsewhere): channel_closed to both.
    Service,
}

/// One step of the script, run in order. Each starts when the previous one is done (or at
/// `at_ms`, if later).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Application data from one side: `text` (UTF-8) or `hex`, optionally repeated.
    Send {
        from: Role,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        hex: Option<String>,
        /// PayloadType number (default 1, Output).
        #[serde(default)]
        payload_type: Option<u32>,
        /// Send this many messages (the text gets a counter suffix when > 1).
        #[serde(default)]
        repeat: Option<u32>,
        #[serde(default)]
        at_ms: Option<u64>,
    },
    /// The client's terminal size changes (a Size payload).
    Resize {
        cols: u32,
        rows: u32,
        #[serde(default)]
        at_ms: Option<u64>,
    },
    /// Let virtual time pass.
    Wait { ms: u64 },
    /// Wait until an event, at most `timeout_ms` (default 60 s); a timeout fails the scenario.
    WaitFor {
        event: WaitEvent,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Break one side's websocket.
    Disconnect {
        side: Role,
        #[serde(default)]
        how: Breakage,
        #[serde(default)]
        code: Option<u16>,
        #[serde(default)]
        at_ms: Option<u64>,
    },
    /// Break the client's websocket and wait until it has resumed.
    Resume {
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// End the session from the client or the service.
    Terminate {
        #[serde(default)]
        via: TerminateVia,
    },
    /// The agent's application finishes, with an optional exit code.
    Finish {
        #[serde(default)]
        exit_code: Option<i32>,
    },
    /// Mark one side's consumer ready or not (ACK-007).
    SetReady { side: Role, ready: bool },
}

/// What must hold at the end, beyond the cited requirements.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Every byte offered is delivered exactly once, in order (or a prefix, if the session ended).
    pub stream_intact: bool,
    /// How the side under test ends: `running`, `ended`, or an end reason such as
    /// `channel_closed`, `timed_out`, `session_gone`, `resume_gave_up`, `resend_limit`,
    /// `handshake_failed`, `handshake_timeout`, `encryption_failed`, `challenge_timeout`,
    /// `terminated`, `finished`.
    pub end: Option<String>,
    /// The exit code the client must have seen.
    pub exit_code: Option<i32>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect { stream_intact: true, end: None, exit_code: None }
    }
}

/// Names of the end reasons accepted in `expect.end`.
pub const END_NAMES: &[&str] = &[
    "running",
    "ended",
    "channel_closed",
    "timed_out",
    "session_gone",
    "resume_gave_up",
    "resend_limit",
    "handshake_failed",
    "handshake_timeout",
    "encryption_failed",
    "challenge_timeout",
    "terminated",
    "finished",
    "input_during_outage",
];
