//! `ssm-harness mock`: the SSM service on loopback, for real clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use ssm_channel::{ImplName, Role};
use ssm_net::mock::{self, AppConfig, MockConfig, Strictness, TerminatedResume};
use ssm_net::sigv4::Credentials;

use crate::exit::Status;
use crate::output::{diag, Output};

const MOCK_EXIT: &str = "Exit status:
  0  stopped by Ctrl-C, SIGTERM or --duration
  2  usage error, or the address cannot be bound";

#[derive(Debug, clap::Args)]
#[command(after_help = MOCK_EXIT)]
pub struct MockArgs {
    /// Address to listen on; loopback only (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Print the endpoint and credentials as one JSON line (for scripts)
    #[arg(long)]
    json: bool,
    /// Serve https:// and wss:// with a generated self-signed certificate
    #[arg(long)]
    tls: bool,
    /// Where to write the certificate with --tls (default: the temp directory)
    #[arg(long, value_name = "FILE")]
    cert_file: Option<PathBuf>,
    /// Accept unsigned API requests
    #[arg(long)]
    no_auth: bool,
    /// Access key id accepted for SigV4 (default: the documented test key)
    #[arg(long, requires = "secret_access_key")]
    access_key_id: Option<String>,
    /// Secret of --access-key-id
    #[arg(long, requires = "access_key_id")]
    secret_access_key: Option<String>,
    /// Refuse websocket upgrades without a SigV4 signature for ssmmessages
    #[arg(long)]
    require_ws_sigv4: bool,
    /// Refuse client deviations (NUL-padded types, bad digests, malformed OpenDataChannel,
    /// tokens in headers) instead of recording them
    #[arg(long)]
    strict: bool,
    /// ResumeSession returns a new StreamUrl every time (RES-005)
    #[arg(long)]
    rotate_stream_url: bool,
    /// How ResumeSession answers for a terminated session (RES-009)
    #[arg(long, default_value = "error", value_parser = ["error", "null-token"])]
    terminated_resume: String,
    /// The agent behind the data channel: conformant, agent-2024 or mutant:NAME
    #[arg(long, default_value = "conformant", value_parser = crate::run_cmd::parse_impl)]
    agent: ImplName,
    /// The application of shell and command sessions
    #[arg(long, default_value = "echo", value_parser = ["echo", "script"])]
    app: String,
    /// The echo application's prompt
    #[arg(long, default_value = "sh-5.2$ ")]
    prompt: String,
    /// Output chunks of the script application (repeatable)
    #[arg(long = "script-output", value_name = "TEXT")]
    script_output: Vec<String>,
    /// Milliseconds between script chunks
    #[arg(long, default_value_t = 100)]
    script_interval_ms: u64,
    /// Exit code the script application ends with
    #[arg(long)]
    exit_code: Option<i32>,
    /// Loopback address port sessions forward to (default: 127.0.0.1:<portNumber parameter>)
    #[arg(long, value_name = "ADDR")]
    port_target: Option<SocketAddr>,
    /// Terminate sessions idle this long (seconds; 0 disables)
    #[arg(long, default_value_t = 1200)]
    idle_timeout_s: u64,
    /// Terminate sessions after this long (seconds)
    #[arg(long)]
    max_duration_s: Option<u64>,
    /// Close client websockets with 1000 "Bye" this often (seconds), as the service does
    #[arg(long)]
    bye_interval_s: Option<u64>,
    /// Close a client's websocket with 1011 when it takes no frame for this long while frames
    /// wait for it (seconds)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    stall_timeout_s: u64,
    /// Largest websocket message accepted (bytes)
    #[arg(long, default_value_t = 1 << 20)]
    max_frame_size: usize,
    /// Most sessions open at once
    #[arg(long, default_value_t = 1024)]
    max_sessions: usize,
    /// Most connections open at once
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seeds the agents' message ids
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many seconds (default: run until Ctrl-C)
    #[arg(long)]
    duration_s: Option<u64>,
    /// Log every API call, upgrade, refusal and violation to stderr
    #[arg(short, long)]
    verbose: bool,
}

pub fn config(a: &MockArgs) -> anyhow::Result<MockConfig> {
    if let ImplName { role: Some(Role::Client), .. } = a.agent {
        anyhow::bail!(
            "--agent {}: that implementation is a client; use conformant, agent-2024 or mutant:NAME",
            a.agent
        );
    }
    let credentials = if a.no_auth {
        None
    } else {
        Some(vec![match (&a.access_key_id, &a.secret_access_key) {
            (Some(k), Some(s)) => Credentials::new(k.clone(), s.clone()),
            _ => Credentials::new(mock::TEST_ACCESS_KEY_ID, mock::TEST_SECRET_ACCESS_KEY),
        }])
    };
    let app = match a.app.as_str() {
        "script" => AppConfig::Script {
            output: a.script_output.clone(),
            interval: Duration::from_millis(a.script_interval_ms),
            exit_code: a.exit_code,
        },
        _ => AppConfig::Echo { prompt: a.prompt.clone() },
    };
    Ok(MockConfig {
        listen: a.listen,
        tls: a.tls,
        credentials,
        require_ws_sigv4: a.require_ws_sigv4,
        strictness: if a.strict { Strictness::Strict } else { Strictness::Lenient },
        rotate_stream_url: a.rotate_stream_url,
        terminated_resume: if a.terminated_resume == "null-token" {
            TerminatedResume::NullToken
        } else {
            TerminatedResume::Error
        },
        agent: a.agent,
        app,
        port_target: a.port_target,
        idle_timeout: (a.idle_timeout_s > 0).then(|| Duration::from_secs(a.idle_timeout_s)),
        max_duration: a.max_duration_s.map(Duration::from_secs),
        bye_interval: a.bye_interval_s.map(Duration::from_secs),
        stall_timeout: Duration::from_secs(a.stall_timeout_s),
        max_frame_size: a.max_frame_size,
        max_sessions: a.max_sessions,
        max_connections: a.max_connections,
        seed: a.seed,
        ..MockConfig::default()
    })
}

pub fn run(a: &MockArgs, out: &mut Output) -> anyhow::Result<Status> {
    let cfg = config(a)?;
    crate::logging::init(a.verbose);
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let (key, secret) = match cfg.credentials.as_ref().and_then(|c| c.first()) {
            Some(c) => (c.access_key_id.clone(), c.secret_access_key.clone()),
            None => (mock::TEST_ACCESS_KEY_ID.to_owned(), mock::TEST_SECRET_ACCESS_KEY.to_owned()),
        };
        let auth = if cfg.credentials.is_some() { "SigV4" } else { "none (--no-auth)" };
        let agent = cfg.agent;
        let m = mock::start(cfg).await?;
        let ca_bundle = match m.ca_pem() {
            Some(pem) => {
                let path = a.cert_file.clone().unwrap_or_else(|| mock::default_cert_path(m.addr().port()));
                std::fs::write(&path, pem)
                    .with_context(|| format!("writing the certificate to {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let url = m.endpoint_url().to_owned();
        if a.json {
            let line = serde_json::json!({
                "endpoint_url": url,
                "access_key_id": key,
                "secret_access_key": secret,
                "region": "us-east-1",
                "ca_bundle": ca_bundle.as_ref().map(|p| p.display().to_string()),
                "pid": std::process::id(),
            });
            out.write(format!("{line}\n").as_bytes())?;
        } else {
            let mut s = format!("ssm-harness mock: listening on {url}\n");
            s.push_str(&format!("  AWS_ACCESS_KEY_ID={key}\n  AWS_SECRET_ACCESS_KEY={secret}\n"));
            s.push_str("  AWS_DEFAULT_REGION=us-east-1 (any region is accepted)\n");
            if let Some(p) = &ca_bundle {
                s.push_str(&format!("  AWS_CA_BUNDLE={}\n", p.display()));
            }
            s.push_str(&format!("  auth: {auth}; agent: {agent}\n"));
            s.push_str(&format!(
                "  try: aws ssm start-session --target i-0123456789abcdef0 --endpoint-url {url}\n"
            ));
            s.push_str("Ctrl-C stops it.\n");
            out.write(s.as_bytes())?;
        }
        let limit = a.duration_s.map(Duration::from_secs);
        tokio::select! {
            () = crate::logging::interrupted() => {}
            () = async {
                match limit {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        diag!("mock: shutting down");
        m.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(Status::Success)
}
