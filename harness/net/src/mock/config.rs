//! What `ssm-harness mock` is started with.

use std::net::SocketAddr;
use std::time::Duration;

use ssm_channel::ImplName;

pub use super::session::LinkModel;
use crate::clock::Clock;
use crate::record::Recorder;
use crate::sigv4::Credentials;

/// The documented test key pair the mock accepts by default (it is not a real AWS key).
pub const TEST_ACCESS_KEY_ID: &str = "AKIASSMHARNESSTEST01";
/// The secret of [`TEST_ACCESS_KEY_ID`].
pub const TEST_SECRET_ACCESS_KEY: &str = "ssm-harness/test/secret/key/0000000000000";

/// How a ResumeSession on a terminated session is answered (RES-009; the real service's choice
/// is not documented, 6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TerminatedResume {
    /// `DoesNotExistException` (HTTP 400).
    #[default]
    Error,
    /// HTTP 200 with `"TokenValue": null`.
    NullToken,
}

/// Strict mode refuses the deviations clients in the wild have; lenient mode records them as
/// violations and carries on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    Strict,
    #[default]
    Lenient,
}

/// The application behind the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppConfig {
    /// Echoes every input back as output after an optional prompt (shell sessions).
    Echo { prompt: String },
    /// Prints these chunks `interval` apart, then ends with the exit code (non-interactive
    /// command sessions).
    Script { output: Vec<String>, interval: Duration, exit_code: Option<i32> },
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig::Echo { prompt: "sh-5.2$ ".to_owned() }
    }
}

/// Everything the mock service is configured with.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Where to listen; loopback only (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Serve `https://` and `wss://` with a generated self-signed certificate.
    pub tls: bool,
    /// Credentials accepted for SigV4; `None` disables authentication (`--no-auth`).
    pub credentials: Option<Vec<Credentials>>,
    /// Refuse websocket upgrades that carry no SigV4 signature.
    pub require_ws_sigv4: bool,
    pub strictness: Strictness,
    /// ResumeSession returns a new StreamUrl each time (RES-005).
    pub rotate_stream_url: bool,
    pub terminated_resume: TerminatedResume,
    /// The agent behind the data channel: `conformant`, `agent-2024` or `mutant:NAME`.
    pub agent: ImplName,
    /// The application of shell and command sessions.
    pub app: AppConfig,
    /// The loopback port a `Port` session forwards to (`None`: the session's `portNumber`
    /// parameter on 127.0.0.1).
    pub port_target: Option<SocketAddr>,
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
    /// Close the client's websocket with 1000 "Bye" this often (the real service's periodic
    /// close, section 8).
    pub bye_interval: Option<Duration>,
    /// Largest websocket message accepted (bytes); larger ones close the connection with 1009.
    pub max_frame_size: usize,
    /// Largest API request body.
    pub max_body_size: usize,
    pub max_sessions: usize,
    pub max_connections: usize,
    /// How long a websocket may stay open without its OpenDataChannel.
    pub open_timeout: Duration,
    /// How long (real time) a client's connection may take no frame while frames wait for it;
    /// then it is closed with 1011 as not reading.
    pub stall_timeout: Duration,
    /// How long a client may keep its websocket open after channel_closed (TERM-001: it should
    /// end and close it); then the mock records the violation and closes it with 1000.
    pub channel_closed_grace: Duration,
    /// How long a client may take to send its request headers, and then its request body
    /// (slowloris).
    pub header_timeout: Duration,
    /// Seeds the agents' machines (message ids); the session id, tokens and the TLS key are
    /// random regardless.
    pub seed: u64,
    /// Faults applied by the relay to every session: frame rules, timed actions and API rules
    /// (the same plan format as scenarios).
    pub faults: Option<ssm_fault::FaultPlan>,
    /// Latency, jitter and loss the relay adds between each side and the service.
    pub link: LinkModel,
    /// Send pause_publication / start_publication (6.5).
    pub publication: bool,
    /// For runs of the scenario suite over real sockets.
    pub harness: Option<Harness>,
}

/// What a scenario run over real sockets adds to the mock: one clock for every component, the
/// trace recorder, and agent settings a scenario may choose.
#[derive(Debug, Clone)]
pub struct Harness {
    pub clock: Clock,
    pub recorder: Recorder,
    /// The session kind of every session, whatever document StartSession names.
    pub session_kind: Option<ssm_channel::SessionKind>,
    pub extra_client_actions: Vec<String>,
    /// The agent's behaviour, overriding `MockConfig::agent`.
    pub agent: Option<ssm_channel::Behaviour>,
    /// KMS encryption (HS-006) with the harness's key service, as the simulator does.
    pub kms: Option<ssm_channel::kms::Kms>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            credentials: Some(vec![Credentials {
                access_key_id: TEST_ACCESS_KEY_ID.to_owned(),
                secret_access_key: TEST_SECRET_ACCESS_KEY.to_owned(),
                session_token: None,
            }]),
            require_ws_sigv4: false,
            strictness: Strictness::Lenient,
            rotate_stream_url: false,
            terminated_resume: TerminatedResume::Error,
            agent: ImplName { imp: ssm_channel::Impl::Conformant, role: None },
            app: AppConfig::default(),
            port_target: None,
            idle_timeout: Some(Duration::from_secs(20 * 60)),
            max_duration: None,
            bye_interval: None,
            max_frame_size: 1 << 20,
            max_body_size: 64 * 1024,
            max_sessions: 1024,
            max_connections: 1024,
            open_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(10),
            channel_closed_grace: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            seed: 0,
            faults: None,
            link: LinkModel::default(),
            publication: true,
            harness: None,
        }
    }
}
