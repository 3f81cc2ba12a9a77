//! The reference client against the mock over real loopback sockets, with unsigned and
//! SigV4-signed websocket upgrades.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ssm_channel::{Behaviour, EndReason, Role};
use ssm_net::client::{self, ClientOptions, Input, Output, StartSessionResponse};
use ssm_net::control::{SdkControlPlane, SdkOptions};
use ssm_net::mock::{
    self, MockConfig, MockHandle, SessionStatus, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};
use ssm_net::sigv4::{Credentials, UpgradeSigning};
use tokio::sync::mpsc;

async fn control(m: &MockHandle) -> SdkControlPlane {
    SdkControlPlane::new(&SdkOptions {
        region: "us-east-1".into(),
        endpoint_url: Some(m.endpoint_url().to_owned()),
        credentials: Some((TEST_ACCESS_KEY_ID.into(), TEST_SECRET_ACCESS_KEY.into())),
        ca_pem: m.ca_pem().map(|p| p.as_bytes().to_vec()),
        ..SdkOptions::default()
    })
    .await
    .unwrap()
}

struct Running {
    input: mpsc::Sender<Input>,
    output: mpsc::UnboundedReceiver<Output>,
    task: tokio::task::JoinHandle<client::ClientOutcome>,
    session_id: String,
    stdout: Vec<u8>,
}

impl Running {
    /// Reads output until `want` has appeared, or fails after 20 s.
    async fn read_until(&mut self, want: &[u8]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !self.stdout.windows(want.len()).any(|w| w == want) {
            match tokio::time::timeout_at(deadline, self.output.recv()).await {
                Ok(Some(Output::Stdout(b))) => self.stdout.extend_from_slice(&b),
                Ok(Some(Output::Stderr(_))) => {}
                Ok(None) | Err(_) => panic!(
                    "did not see {:?}; stdout so far: {:?}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(&self.stdout)
                ),
            }
        }
    }
}

/// Upgrade signing with the mock's test key and `secret`.
fn signing(secret: &str) -> Option<UpgradeSigning> {
    Some(UpgradeSigning {
        credentials: Credentials::new(TEST_ACCESS_KEY_ID, secret),
        region: "eu-west-1".into(),
    })
}

async fn start(m: &MockHandle, sign_upgrade: Option<UpgradeSigning>) -> Running {
    start_with(m, None, sign_upgrade).await
}

/// Starts a session, optionally of a document with one parameter.
async fn start_with(
    m: &MockHandle,
    doc: Option<(&str, &str, &str)>,
    sign_upgrade: Option<UpgradeSigning>,
) -> Running {
    let cp = control(m).await;
    let mut req = cp.client().start_session().target("i-0123456789abcdef0");
    if let Some((name, key, value)) = doc {
        req = req.document_name(name).parameters(key, vec![value.to_owned()]);
    }
    let s = req.send().await.unwrap();
    let session = StartSessionResponse {
        session_id: s.session_id().unwrap().to_owned(),
        token_value: s.token_value().unwrap().to_owned(),
        stream_url: s.stream_url().unwrap().to_owned(),
    };
    let session_id = session.session_id.clone();
    let mut opts = ClientOptions::new(session, Behaviour::conformant(Role::Client), 7);
    opts.ca_pem = m.ca_pem().map(|p| p.as_bytes().to_vec());
    opts.eof_grace = Duration::from_millis(300);
    opts.sign_upgrade = sign_upgrade;
    let (itx, irx) = mpsc::channel(64);
    let (otx, orx) = mpsc::unbounded_channel();
    let task = tokio::spawn(client::run(opts, Arc::new(cp), irx, otx));
    Running { input: itx, output: orx, task, session_id, stdout: Vec::new() }
}

async fn echo_with_a_drop(cfg: MockConfig, sign_upgrade: Option<UpgradeSigning>) {
    let m = mock::start(cfg).await.unwrap();
    let mut c = start(&m, sign_upgrade).await;
    c.read_until(b"sh-5.2$ ").await;
    let mut expected = b"sh-5.2$ ".to_vec();
    for i in 0..20 {
        let line = format!("line {i}\n");
        expected.extend_from_slice(line.as_bytes());
        c.input.send(Input::Data(line.into_bytes())).await.unwrap();
        if i == 9 {
            // Drop the websocket mid-stream.
            assert!(m.reset_client(&c.session_id));
        }
    }
    c.read_until(b"line 19\n").await;
    c.input.send(Input::Eof).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), c.task).await.unwrap().unwrap();
    while let Ok(Output::Stdout(b)) = c.output.try_recv() {
        c.stdout.extend_from_slice(&b);
    }
    assert_eq!(
        String::from_utf8_lossy(&c.stdout),
        String::from_utf8_lossy(&expected),
        "every byte once, in order"
    );
    // The client terminated the session at EOF: it ends on the TerminateSession answer or on
    // the channel_closed that follows, whichever comes first.
    assert!(
        matches!(outcome.end, EndReason::ChannelClosed { .. } | EndReason::Terminated),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(outcome.opens, 2, "one resume");
    assert_eq!(outcome.tokens.len(), 2);
    assert_ne!(outcome.tokens[0], outcome.tokens[1], "the resume used the rotated token");
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    let info = m.session(&c.session_id).unwrap();
    assert_eq!(info.resumes, 1);
    assert_eq!(info.opens, 2);
    assert_eq!(info.status, SessionStatus::Terminated);
    assert!(info.violations.is_empty(), "{:?}", info.violations);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_survives_a_dropped_websocket() {
    echo_with_a_drop(MockConfig::default(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_survives_a_dropped_websocket_over_tls() {
    echo_with_a_drop(MockConfig { tls: true, rotate_stream_url: true, ..MockConfig::default() }, None).await;
}

/// A mock that refuses unsigned upgrades: the first connect and the one after the resume are
/// both signed (and verified), on the rotated StreamUrl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_client_survives_a_dropped_websocket_where_signatures_are_required() {
    let cfg = MockConfig { require_ws_sigv4: true, rotate_stream_url: true, ..MockConfig::default() };
    echo_with_a_drop(cfg, signing(TEST_SECRET_ACCESS_KEY)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_client_survives_a_dropped_websocket_over_tls() {
    let cfg =
        MockConfig { tls: true, require_ws_sigv4: true, rotate_stream_url: true, ..MockConfig::default() };
    echo_with_a_drop(cfg, signing(TEST_SECRET_ACCESS_KEY)).await;
}

/// Runs a client against a mock that requires signed upgrades and checks that it was refused:
/// the run ends (instead of reconnecting forever) with the refusal's `status` and a detail
/// containing each of `says`, exit status 1, and no websocket opened.
async fn assert_refused(sign_upgrade: Option<UpgradeSigning>, status: u16, says: &[&str]) {
    let m = mock::start(MockConfig { require_ws_sigv4: true, ..MockConfig::default() }).await.unwrap();
    let c = start(&m, sign_upgrade).await;
    let outcome = tokio::time::timeout(Duration::from_secs(20), c.task)
        .await
        .expect("a refused client ends instead of reconnecting forever")
        .unwrap();
    let EndReason::UpgradeRefused { status: got, detail } = &outcome.end else { panic!("{:?}", outcome.end) };
    assert_eq!(*got, status, "{detail}");
    for s in says {
        assert!(detail.contains(s), "{s:?} not in {detail}");
    }
    assert_eq!(outcome.exit_code, 1);
    assert_eq!((outcome.opens, m.session(&c.session_id).unwrap().opens), (0, 0), "no websocket opened");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_client_is_refused_where_signatures_are_required() {
    assert_refused(None, 403, &["MissingAuthenticationTokenException"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_signed_with_a_wrong_secret_is_refused() {
    assert_refused(signing("not-the-secret"), 400, &["InvalidSignatureException", "does not match"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_session_forwards_to_a_loopback_port() {
    // A TCP service on loopback that answers every chunk in upper case.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let up = buf[..n].to_ascii_uppercase();
                    if sock.write_all(&up).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let m = mock::start(MockConfig::default()).await.unwrap();
    let mut c =
        start_with(&m, Some(("AWS-StartPortForwardingSession", "portNumber", &port.to_string())), None).await;
    c.input.send(Input::Data(b"hello port\n".to_vec())).await.unwrap();
    c.read_until(b"HELLO PORT\n").await;
    assert!(m.reset_client(&c.session_id), "drop the websocket mid-session");
    c.input.send(Input::Data(b"after the drop\n".to_vec())).await.unwrap();
    c.read_until(b"AFTER THE DROP\n").await;
    assert_eq!(String::from_utf8_lossy(&c.stdout), "HELLO PORT\nAFTER THE DROP\n");
    let info = m.session(&c.session_id).unwrap();
    assert_eq!(info.document_name.as_deref(), Some("AWS-StartPortForwardingSession"));
    assert!(info.violations.is_empty(), "{:?}", info.violations);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_session_to_a_non_loopback_host_is_refused() {
    let m = mock::start(MockConfig::default()).await.unwrap();
    let cp = control(&m).await;
    let e = cp
        .client()
        .start_session()
        .target("i-1")
        .document_name("AWS-StartPortForwardingSessionToRemoteHost")
        .parameters("host", vec!["10.0.0.1".into()])
        .parameters("portNumber", vec!["22".into()])
        .send()
        .await
        .unwrap_err();
    use aws_sdk_ssm::error::ProvideErrorMetadata as _;
    assert_eq!(e.code(), Some("InvalidParameters"), "{e:?}");
    assert!(m.sessions().is_empty());
    m.shutdown().await;
}
