//! `ssm-harness client` as a child process against the mock: the session-manager-plugin command
//! line, a websocket dropped mid-stream, the resume on a rotated token and an intact byte
//! stream; SigV4-signed upgrades (`--sign-upgrade`) against a mock that requires them; and the
//! binary invoked as `session-manager-plugin`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ssm_net::mock::{self, MockConfig, SessionStatus, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_ssm-harness");

fn sdk(endpoint: &str) -> aws_sdk_ssm::Client {
    let creds =
        aws_sdk_ssm::config::Credentials::new(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None, None, "test");
    let conf = aws_sdk_ssm::config::Builder::new()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// Collects a child's stdout on a thread and waits for text to appear.
struct Reader {
    rx: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Reader {
    fn new(mut r: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Reader { rx, seen: Vec::new() }
    }

    fn wait_for(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !String::from_utf8_lossy(&self.seen).contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.extend_from_slice(&b),
                Err(_) => panic!("no {want:?} in {:?}", String::from_utf8_lossy(&self.seen)),
            }
        }
    }

    fn rest(mut self) -> Vec<u8> {
        while let Ok(b) = self.rx.recv_timeout(Duration::from_secs(10)) {
            self.seen.extend_from_slice(&b);
        }
        self.seen
    }
}

/// Starts a session on the mock at `endpoint` and runs `ssm-harness client OPTIONS` on it, the
/// response passed in the environment-variable form the AWS CLI uses for plugins newer than
/// 1.2.497.0, with the mock's test credentials in the environment. Returns the child and the
/// session id.
fn spawn_client(rt: &tokio::runtime::Runtime, endpoint: &str, options: &[&str]) -> (Child, String) {
    let started = rt.block_on(sdk(endpoint).start_session().target("i-0123456789abcdef0").send()).unwrap();
    let response = serde_json::json!({
        "SessionId": started.session_id(),
        "TokenValue": started.token_value(),
        "StreamUrl": started.stream_url(),
    })
    .to_string();
    let child = Command::new(BIN)
        .arg("client")
        .args(options)
        .args([
            "AWS_SSM_START_SESSION_RESPONSE",
            "us-east-1",
            "StartSession",
            "",
            r#"{"Target": "i-0123456789abcdef0"}"#,
            endpoint,
        ])
        .env("AWS_SSM_START_SESSION_RESPONSE", &response)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .env_remove("SSM_HARNESS_CLIENT_SIGN_UPGRADE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssm-harness client");
    (child, started.session_id().unwrap().to_owned())
}

#[test]
fn client_process_resumes_after_a_dropped_websocket() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let m = rt.block_on(mock::start(MockConfig::default())).unwrap();
    let (mut child, id) = spawn_client(&rt, m.endpoint_url(), &["--seed", "11"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = Reader::new(child.stdout.take().unwrap());
    let mut err_pipe = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    out.wait_for("sh-5.2$ ");
    let mut expected = String::from("sh-5.2$ ");
    for i in 0..40 {
        let line = format!("input line {i}\n");
        expected.push_str(&line);
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        if i == 19 {
            out.wait_for("input line 19\n");
            assert!(m.reset_client(&id), "the mock dropped the websocket");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    out.wait_for("input line 39\n");
    drop(stdin);
    let status = child.wait().unwrap();
    let stdout = out.rest();
    let stderr = err.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout), expected, "every byte once and in order; stderr:\n{stderr}");
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("2 websocket(s) opened"), "{stderr}");
    let info = m.session(&id).unwrap();
    assert_eq!(info.resumes, 1, "one ResumeSession");
    // The stale token would have been refused: the second open used the rotated one.
    assert_eq!(info.opens, 2);
    assert!(info.refusals.is_empty(), "{:?}", info.refusals);
    assert!(info.violations.is_empty(), "{:?}", info.violations);
    assert_eq!(info.status, SessionStatus::Terminated);
    rt.block_on(m.shutdown());
}

#[test]
fn invoked_as_session_manager_plugin() {
    let dir = std::env::temp_dir().join(format!("ssm-harness-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("session-manager-plugin");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let v = Command::new(&link).arg("--version").output().unwrap();
    assert!(v.status.success());
    let version = String::from_utf8(v.stdout).unwrap();
    assert!(
        version.trim().split('.').all(|p| p.parse::<u32>().is_ok()),
        "numeric, as the AWS CLI requires: {version}"
    );
    let bare = Command::new(&link).output().unwrap();
    assert!(bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stdout).contains("installed successfully"));
    let bad =
        Command::new(&link).args(["not-json-and-not-set", "us-east-1", "StartSession"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not set"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--sign-upgrade` against a mock that refuses unsigned upgrades: both websockets (the first
/// and the one after the resume) are signed with the credentials of the environment.
#[test]
fn client_process_signs_its_upgrades_where_the_mock_requires_it() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cfg = MockConfig { require_ws_sigv4: true, ..MockConfig::default() };
    let m = rt.block_on(mock::start(cfg)).unwrap();
    let (mut child, id) = spawn_client(&rt, m.endpoint_url(), &["--sign-upgrade"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = Reader::new(child.stdout.take().unwrap());
    out.wait_for("sh-5.2$ ");
    stdin.write_all(b"signed before the drop\n").unwrap();
    out.wait_for("signed before the drop\n");
    assert!(m.reset_client(&id), "the mock dropped the websocket");
    stdin.write_all(b"signed after the drop\n").unwrap();
    out.wait_for("signed after the drop\n");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    let info = m.session(&id).unwrap();
    assert_eq!((info.opens, info.resumes), (2, 1), "stderr:\n{stderr}");
    assert_eq!(info.status, SessionStatus::Terminated);
    rt.block_on(m.shutdown());
}

/// Signing asked for (by the flag, or by the environment when the binary is the plugin) without
/// credentials: exit status 2 and the missing variable named, before any connection.
#[test]
fn sign_upgrade_without_credentials_is_a_usage_error() {
    const RESP: &str = r#"{"SessionId":"s-1","TokenValue":"t","StreamUrl":"ws://127.0.0.1:1/v1/data-channel/s-1?role=publish_subscribe"}"#;
    let dir = std::env::temp_dir().join(format!("ssm-harness-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("session-manager-plugin");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let plain = ["", "StartSession", "", r#"{"Target": "i-1"}"#, "http://127.0.0.1:1"];
    let mut by_flag = Command::new(BIN);
    by_flag
        .args(["client", "--sign-upgrade", RESP])
        .args(plain)
        .env_remove("SSM_HARNESS_CLIENT_SIGN_UPGRADE");
    let mut by_env = Command::new(&link);
    by_env.arg(RESP).args(plain).env("SSM_HARNESS_CLIENT_SIGN_UPGRADE", "1");
    for (mut cmd, key_set, missing) in
        [(by_flag, false, "AWS_ACCESS_KEY_ID"), (by_env, true, "AWS_SECRET_ACCESS_KEY")]
    {
        cmd.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY").env_remove("AWS_PROFILE");
        cmd.env("AWS_EC2_METADATA_DISABLED", "true").env("AWS_CONFIG_FILE", "/dev/null");
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        if key_set {
            cmd.env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("the client did not exit at once ({missing} unset)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("{missing} is not set")), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
