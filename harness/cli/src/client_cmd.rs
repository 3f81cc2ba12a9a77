//! `ssm-harness client`: the reference client as a process, following the session-manager-plugin
//! command line (protocol reference 6.1), so the AWS CLI can run it as its plugin.
//!
//! ```text
//! ssm-harness client '<StartSession response JSON>' <region> StartSession <profile> '<request JSON>' <endpoint-url>
//! ssm-harness client AWS_SSM_START_SESSION_RESPONSE <region> StartSession ...
//! ```
//!
//! Invoked as `session-manager-plugin` (a symlink), the binary takes those arguments directly;
//! options then come from the environment (`SSM_HARNESS_CLIENT_IMPL`, `AWS_CA_BUNDLE`,
//! `SSM_HARNESS_CLIENT_SIGN_UPGRADE`).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ssm_channel::{Behaviour, ImplName, Role};
use ssm_net::client::{self, ClientOptions, Input, Output as ClientOutput, StartSessionResponse};
use ssm_net::control::{SdkControlPlane, SdkOptions};
use ssm_net::sigv4::{Credentials, UpgradeSigning};

use crate::exit::Status;
use crate::output::{diag, Output};

/// The version `--version` reports: numeric, as the AWS CLI requires, and above the versions
/// the AWS CLI treats specially (1.2.497.0: the response in an environment variable;
/// 1.2.764.0: no "outdated plugin" warning).
pub const PLUGIN_VERSION: &str = "1.2.764.0";

/// The environment variable name the AWS CLI passes instead of the response JSON.
pub const RESPONSE_ENV: &str = "AWS_SSM_START_SESSION_RESPONSE";

const CLIENT_EXIT: &str = "Exit status:
  the agent's ExitCode when one arrived, else 0 when the session ended normally (channel
  closed, terminated, timed out); 1 when it failed (resume abandoned, session gone, handshake
  failed, websocket upgrade refused); 2 usage error, or --sign-upgrade without credentials";

#[derive(Debug, clap::Args)]
#[command(after_help = CLIENT_EXIT)]
pub struct ClientArgs {
    /// RESPONSE REGION StartSession [PROFILE] [REQUEST] [ENDPOINT-URL], as the AWS CLI passes
    /// them to session-manager-plugin
    #[arg(num_args = 0.., allow_hyphen_values = false)]
    args: Vec<String>,
    /// The client implementation: conformant, plugin-2024 or mutant:NAME
    #[arg(long, default_value = "conformant", value_parser = crate::run_cmd::parse_impl, env = "SSM_HARNESS_CLIENT_IMPL", hide_env_values = true)]
    profile_impl: ImplName,
    /// PEM bundle to trust for https:// and wss:// (a TLS mock)
    #[arg(long, value_name = "FILE", env = "AWS_CA_BUNDLE", hide_env_values = true)]
    ca_bundle: Option<PathBuf>,
    /// SigV4-sign the websocket upgrades for ssmmessages, as newer plugins do, with
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; the region is REGION
    /// (else AWS_REGION, AWS_DEFAULT_REGION, us-east-1)
    #[arg(long, env = "SSM_HARNESS_CLIENT_SIGN_UPGRADE", value_parser = clap::builder::FalseyValueParser::new(), hide_env_values = true)]
    sign_upgrade: bool,
    /// Seeds message ids and reconnect jitter (default: random)
    #[arg(long)]
    seed: Option<u64>,
    /// Log the data channel to stderr
    #[arg(short, long)]
    verbose: bool,
}

/// The plugin's positional arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginArgs {
    pub response: StartSessionResponse,
    pub region: String,
    pub profile: String,
    pub target: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Reads the positional arguments. `env` looks up (and the caller then unsets) the variable
/// the response may be passed in.
pub fn parse_plugin_args(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<PluginArgs> {
    let [response, region, operation, rest @ ..] = args else {
        anyhow::bail!(
            "expected RESPONSE REGION StartSession [PROFILE] [REQUEST] [ENDPOINT-URL], got {} argument(s)",
            args.len()
        );
    };
    if operation != "StartSession" {
        anyhow::bail!("operation {operation:?} is not supported: only StartSession");
    }
    if rest.len() > 3 {
        anyhow::bail!("too many arguments: {}", args.len());
    }
    let json = if response.trim_start().starts_with('{') {
        response.clone()
    } else {
        env(response).with_context(|| {
            format!("the response names the variable {response} (the AWS CLI uses {RESPONSE_ENV}), which is not set")
        })?
    };
    let response: StartSessionResponse = serde_json::from_str(&json)
        .context("the StartSession response is not {\"SessionId\",\"TokenValue\",\"StreamUrl\"}")?;
    let profile = rest.first().cloned().unwrap_or_default();
    let target = match rest.get(1) {
        Some(r) if !r.is_empty() => {
            let v: serde_json::Value = serde_json::from_str(r).context("the request argument is not JSON")?;
            v.get("Target").and_then(|t| t.as_str()).map(str::to_owned)
        }
        _ => None,
    };
    let endpoint_url = rest.get(2).filter(|e| !e.is_empty()).cloned();
    Ok(PluginArgs { response, region: region.clone(), profile, target, endpoint_url })
}

/// Upgrade signing was asked for, but a credential is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--sign-upgrade (or SSM_HARNESS_CLIENT_SIGN_UPGRADE) needs credentials in the environment, but {0} is not set")]
pub struct MissingCredential(pub &'static str);

/// The upgrade signing of `--sign-upgrade`: credentials from the standard environment
/// variables, the region from the plugin's REGION argument, else from the environment, else
/// us-east-1. `env` looks a variable up; an empty value counts as unset.
pub fn upgrade_signing(
    region: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<UpgradeSigning, MissingCredential> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let required = |name: &'static str| var(name).ok_or(MissingCredential(name));
    let mut credentials =
        Credentials::new(required("AWS_ACCESS_KEY_ID")?, required("AWS_SECRET_ACCESS_KEY")?);
    credentials.session_token = var("AWS_SESSION_TOKEN");
    let region = Some(region.to_owned())
        .filter(|r| !r.is_empty())
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    Ok(UpgradeSigning { credentials, region })
}

pub fn run(a: &ClientArgs, out: &mut Output) -> anyhow::Result<Status> {
    if a.args.is_empty() {
        out.write(
            b"The Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n",
        )?;
        return Ok(Status::Success);
    }
    if a.args.len() == 1 && a.args[0] == "--version" {
        out.write(format!("{PLUGIN_VERSION}\n").as_bytes())?;
        return Ok(Status::Success);
    }
    if a.profile_impl.role == Some(Role::Agent) {
        anyhow::bail!("--profile-impl {}: that implementation is an agent", a.profile_impl);
    }
    let p = parse_plugin_args(&a.args, |name| std::env::var(name).ok())?;
    if a.args.first().is_some_and(|r| !r.trim_start().starts_with('{')) {
        // The plugin reads and then unsets the variable (6.1).
        std::env::remove_var(&a.args[0]);
    }
    let sign_upgrade = if a.sign_upgrade {
        Some(upgrade_signing(&p.region, |name| std::env::var(name).ok())?)
    } else {
        None
    };
    let ca_pem = match &a.ca_bundle {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading the CA bundle {}", path.display()))?)
        }
        None => None,
    };
    crate::logging::init(a.verbose);
    let behaviour = Behaviour::for_impl(&a.profile_impl.imp, Role::Client);
    let seed = a.seed.unwrap_or_else(rand_seed);
    let session_id = p.response.session_id.clone();
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let outcome = rt.block_on(async {
        let control = SdkControlPlane::new(&SdkOptions {
            region: p.region.clone(),
            profile: p.profile.clone(),
            endpoint_url: p.endpoint_url.clone(),
            ca_pem: ca_pem.clone(),
            credentials: None,
            disable_retries: false,
        })
        .await?;
        diag!("Starting session with SessionId: {session_id} (client {}, seed {seed})", a.profile_impl);
        let mut opts = ClientOptions::new(p.response.clone(), behaviour, seed);
        opts.ca_pem = ca_pem;
        opts.sign_upgrade = sign_upgrade;
        let (itx, irx) = tokio::sync::mpsc::channel(64);
        let (otx, mut orx) = tokio::sync::mpsc::unbounded_channel();
        // stdin on a thread of its own: a blocking read cannot be cancelled.
        let stdin_tx = itx.clone();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = stdin_tx.blocking_send(Input::Eof);
                        return;
                    }
                    Ok(n) => {
                        if stdin_tx.blocking_send(Input::Data(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let int_tx = itx;
        tokio::spawn(async move {
            loop {
                if tokio::signal::ctrl_c().await.is_err() || int_tx.send(Input::Interrupt).await.is_err() {
                    return;
                }
            }
        });
        let writer = tokio::spawn(async move {
            while let Some(o) = orx.recv().await {
                let _ = match o {
                    ClientOutput::Stdout(b) => {
                        let mut s = std::io::stdout().lock();
                        s.write_all(&b).and_then(|()| s.flush())
                    }
                    ClientOutput::Stderr(b) => {
                        let mut s = std::io::stderr().lock();
                        s.write_all(&b).and_then(|()| s.flush())
                    }
                };
            }
        });
        let outcome = client::run(opts, Arc::new(control), irx, otx).await;
        let _ = writer.await;
        anyhow::Ok(outcome)
    })?;
    diag!(
        "Exiting session with sessionId: {session_id} ({:?}, {} websocket(s) opened)",
        outcome.end,
        outcome.opens
    );
    for v in &outcome.violations {
        diag!("the agent broke {}: {}", v.req, v.detail);
    }
    // The process is done: stdin's reader thread may still be blocked in read.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(Status::Exit(u8::try_from(outcome.exit_code).unwrap_or(1)))
}

fn rand_seed() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    const RESP: &str = r#"{"SessionId":"s-1","TokenValue":"t","StreamUrl":"ws://127.0.0.1:1/v1/data-channel/s-1?role=publish_subscribe"}"#;

    #[test]
    fn the_six_argument_form() {
        let p = parse_plugin_args(
            &s(&[RESP, "us-east-1", "StartSession", "", r#"{"Target": "i-1"}"#, "http://127.0.0.1:9"]),
            |_| None,
        )
        .unwrap();
        assert_eq!(p.response.session_id, "s-1");
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.profile, "");
        assert_eq!(p.target.as_deref(), Some("i-1"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn the_environment_variable_form() {
        let p = parse_plugin_args(&s(&[RESPONSE_ENV, "eu-west-1", "StartSession", "dev"]), |n| {
            (n == RESPONSE_ENV).then(|| RESP.to_owned())
        })
        .unwrap();
        assert_eq!(p.response.token_value, "t");
        assert_eq!(p.profile, "dev");
        assert_eq!(p.endpoint_url, None);
    }

    #[test]
    fn upgrade_signing_takes_the_environment_and_the_region_argument() {
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIA1"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ];
        let env = |skip: &'static [&'static str]| {
            move |n: &str| {
                vars.iter().find(|(k, _)| *k == n && !skip.contains(k)).map(|(_, v)| (*v).to_owned())
            }
        };
        let s = upgrade_signing("eu-west-3", env(&[])).unwrap();
        assert_eq!(s.credentials, Credentials::new("AKIA1", "secret").with_session_token("token"));
        assert_eq!(s.region, "eu-west-3");
        assert_eq!(upgrade_signing("", env(&[])).unwrap().region, "eu-central-1");
        assert_eq!(upgrade_signing("", env(&["AWS_REGION"])).unwrap().region, "ap-south-1");
        let none = env(&["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"]);
        let s = upgrade_signing("", none).unwrap();
        assert_eq!((s.region.as_str(), s.credentials.session_token), ("us-east-1", None));
        let e = upgrade_signing("r", env(&["AWS_SECRET_ACCESS_KEY"])).unwrap_err();
        assert_eq!(e, MissingCredential("AWS_SECRET_ACCESS_KEY"));
        assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY is not set"), "{e}");
        let empty = |n: &str| (n == "AWS_ACCESS_KEY_ID").then(String::new);
        assert_eq!(upgrade_signing("r", empty).unwrap_err(), MissingCredential("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        let e = parse_plugin_args(&s(&["x"]), |_| None).unwrap_err().to_string();
        assert!(e.contains("expected RESPONSE"), "{e}");
        let e = parse_plugin_args(&s(&[RESP, "r", "ResumeSession"]), |_| None).unwrap_err().to_string();
        assert!(e.contains("only StartSession"), "{e}");
        let e =
            parse_plugin_args(&s(&[RESPONSE_ENV, "r", "StartSession"]), |_| None).unwrap_err().to_string();
        assert!(e.contains("not set"), "{e}");
        let e = parse_plugin_args(&s(&["{\"SessionId\":1}", "r", "StartSession"]), |_| None).unwrap_err();
        assert!(format!("{e:#}").contains("StartSession response"), "{e:#}");
    }
}
