//! The mock's API through aws-sdk-ssm, signed and unsigned, over loopback.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::types::{SessionFilter, SessionFilterKey, SessionState};
use ssm_net::mock::{
    self, MockConfig, SessionStatus, TerminatedResume, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn sdk(endpoint: &str, key: &str, secret: &str) -> aws_sdk_ssm::Client {
    let creds = aws_sdk_ssm::config::Credentials::new(key, secret, None, None, "test");
    let conf = aws_sdk_ssm::config::Builder::new()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

fn good(endpoint: &str) -> aws_sdk_ssm::Client {
    sdk(endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
}

/// A raw HTTP/1.1 exchange, for requests no SDK would send.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_resume_terminate_and_describe_through_the_sdk() {
    let m = mock::start(MockConfig::default()).await.unwrap();
    let c = good(m.endpoint_url());
    let s = c.start_session().target("i-0123456789abcdef0").reason("test").send().await.unwrap();
    let id = s.session_id().unwrap().to_owned();
    let t0 = s.token_value().unwrap().to_owned();
    let url0 = s.stream_url().unwrap().to_owned();
    assert!(
        url0.starts_with(&format!("ws://{}/v1/data-channel/{id}?role=publish_subscribe", m.addr())),
        "{url0}"
    );
    assert!(t0.len() >= 43, "tokens carry at least 256 bits: {t0}");

    let r = c.resume_session().session_id(&id).send().await.unwrap();
    assert_eq!(r.session_id(), Some(id.as_str()));
    let t1 = r.token_value().unwrap();
    assert_ne!(t1, t0, "ResumeSession rotates the token");
    assert_eq!(r.stream_url(), Some(url0.as_str()), "same StreamUrl unless --rotate-stream-url");

    let d = c.describe_sessions().state(SessionState::Active).send().await.unwrap();
    let listed = d.sessions();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id(), Some(id.as_str()));
    assert_eq!(listed[0].target(), Some("i-0123456789abcdef0"));

    c.terminate_session().session_id(&id).send().await.unwrap();
    // Idempotent.
    c.terminate_session().session_id(&id).send().await.unwrap();
    let e = c.resume_session().session_id(&id).send().await.unwrap_err();
    assert_eq!(e.code(), Some("DoesNotExistException"), "{e:?}");
    let e = e.into_service_error();
    assert!(e.is_does_not_exist_exception());

    let h = c
        .describe_sessions()
        .state(SessionState::History)
        .filters(SessionFilter::builder().key(SessionFilterKey::SessionId).value(&id).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(h.sessions().len(), 1);
    assert_eq!(h.sessions()[0].status().map(|s| s.as_str()), Some("Terminated"));
    assert!(c.describe_sessions().state(SessionState::Active).send().await.unwrap().sessions().is_empty());
    assert_eq!(m.session(&id).unwrap().status, SessionStatus::Terminated);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_on_a_terminated_session_can_answer_a_null_token() {
    let cfg = MockConfig {
        terminated_resume: TerminatedResume::NullToken,
        rotate_stream_url: true,
        ..MockConfig::default()
    };
    let m = mock::start(cfg).await.unwrap();
    let c = good(m.endpoint_url());
    let s = c.start_session().target("i-1").send().await.unwrap();
    let id = s.session_id().unwrap();
    let r = c.resume_session().session_id(id).send().await.unwrap();
    assert_ne!(r.stream_url(), s.stream_url(), "--rotate-stream-url gives a new StreamUrl");
    assert!(r.stream_url().unwrap().contains("cell-number="));
    c.terminate_session().session_id(id).send().await.unwrap();
    let r = c.resume_session().session_id(id).send().await.unwrap();
    assert_eq!(r.token_value(), None);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_as_aws_would() {
    let m = mock::start(MockConfig::default()).await.unwrap();
    let e = sdk(m.endpoint_url(), TEST_ACCESS_KEY_ID, "not-the-secret")
        .start_session()
        .target("i-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"), "{e:?}");
    assert!(e.message().unwrap().contains("does not match"));
    let e = sdk(m.endpoint_url(), "AKIAUNKNOWNKEY000000", TEST_SECRET_ACCESS_KEY)
        .start_session()
        .target("i-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"), "{e:?}");
    assert!(m.sessions().is_empty(), "no session was created by a refused call");

    // Unsigned, as curl would send it.
    let body = r#"{"Target":"i-1"}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AmazonSSM.StartSession\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        m.addr(),
        body.len()
    );
    let resp = raw(m.addr(), &req).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("MissingAuthenticationTokenException"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("x-amzn-requestid:"), "{resp}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_constraints_and_unknown_operations() {
    let cfg = MockConfig { credentials: None, ..MockConfig::default() };
    let m = mock::start(cfg).await.unwrap();
    let c = good(m.endpoint_url());
    let e = c.start_session().target("x".repeat(401)).send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
    let e = c.resume_session().session_id("s".repeat(97)).send().await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"), "{e:?}");
    let e = c.start_session().target("i-1").document_name("No-Such-Document").send().await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidDocument"), "{e:?}");
    let e = c.resume_session().session_id("harness-00000000000000000").send().await.unwrap_err();
    assert_eq!(e.code(), Some("DoesNotExistException"), "{e:?}");
    let e = c.send_command().document_name("AWS-RunShellScript").send().await.unwrap_err();
    assert_eq!(e.code(), Some("UnknownOperationException"), "{e:?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_listens_on_loopback_only() {
    let cfg = MockConfig { listen: "0.0.0.0:0".parse().unwrap(), ..MockConfig::default() };
    let e = mock::start(cfg).await.unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}
