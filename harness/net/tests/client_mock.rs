//! The reference client against the mock over real loopback sockets.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ssm_channel::{Behaviour, EndReason, Role};
use ssm_net::client::{self, ClientOptions, Input, Output, StartSessionResponse};
use ssm_net::control::{SdkControlPlane, SdkOptions};
use ssm_net::mock::{
    self, MockConfig, MockHandle, SessionStatus, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};
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

async fn start(m: &MockHandle, behaviour: Behaviour) -> Running {
    let cp = control(m).await;
    let s = cp.client().start_session().target("i-0123456789abcdef0").send().await.unwrap();
    let session = StartSessionResponse {
        session_id: s.session_id().unwrap().to_owned(),
        token_value: s.token_value().unwrap().to_owned(),
        stream_url: s.stream_url().unwrap().to_owned(),
    };
    let session_id = session.session_id.clone();
    let opts = ClientOptions {
        session,
        behaviour,
        seed: 7,
        ca_pem: m.ca_pem().map(|p| p.as_bytes().to_vec()),
        size: (80, 24),
        eof_grace: Duration::from_millis(300),
        clock: None,
        recorder: None,
        first_connect_delay: Duration::ZERO,
        kms: None,
    };
    let (itx, irx) = mpsc::channel(64);
    let (otx, orx) = mpsc::unbounded_channel();
    let task = tokio::spawn(client::run(opts, Arc::new(cp), irx, otx));
    Running { input: itx, output: orx, task, session_id, stdout: Vec::new() }
}

async fn echo_with_a_drop(cfg: MockConfig) {
    let m = mock::start(cfg).await.unwrap();
    let mut c = start(&m, Behaviour::conformant(Role::Client)).await;
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
    echo_with_a_drop(MockConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_survives_a_dropped_websocket_over_tls() {
    echo_with_a_drop(MockConfig { tls: true, rotate_stream_url: true, ..MockConfig::default() }).await;
}
