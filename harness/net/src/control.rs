//! The control plane a client calls: ResumeSession and TerminateSession (protocol reference 7).
//!
//! [`ControlPlane`] is what the client driver needs; [`SdkControlPlane`] implements it with
//! aws-sdk-ssm, so the same code talks to `ssm-harness mock` (through `endpoint_url`) and to
//! AWS. Errors are classified the way the data-channel machine must treat them (API-002,
//! API-003): by the error code, never by its text.

use std::future::Future;
use std::pin::Pin;

use ssm_channel::ApiError;

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What ResumeSession answered: the new token (`None` when the service returned none, RES-004)
/// and the StreamUrl it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub token: Option<String>,
    pub stream_url: Option<String>,
}

/// The calls a client makes besides the websocket.
pub trait ControlPlane: Send + Sync {
    fn resume_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Resumed, ApiError>>;
    fn terminate_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// Classifies an AWS error code (the part of `__type` after `#`, API-002).
pub fn classify(code: Option<&str>) -> ApiError {
    match code.map(|c| c.rsplit('#').next().unwrap_or(c)) {
        Some("DoesNotExistException") => ApiError::DoesNotExist,
        Some("ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded") => {
            ApiError::Throttled
        }
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId",
        ) => ApiError::AccessDenied,
        _ => ApiError::Internal,
    }
}

#[cfg(feature = "aws-sdk")]
pub use sdk::{SdkControlPlane, SdkOptions};

#[cfg(feature = "aws-sdk")]
mod sdk {
    use std::time::Duration;

    use aws_sdk_ssm::error::{ProvideErrorMetadata as _, SdkError};
    use ssm_channel::ApiError;

    use super::{classify, BoxFuture, ControlPlane, Resumed};

    /// How to reach the API: what the session-manager-plugin convention passes (region,
    /// profile, endpoint URL), plus an optional CA bundle for a TLS mock.
    #[derive(Debug, Clone, Default)]
    pub struct SdkOptions {
        pub region: String,
        /// An AWS profile name; empty for the default chain (environment variables first).
        pub profile: String,
        pub endpoint_url: Option<String>,
        /// PEM certificates to trust instead of the system roots.
        pub ca_pem: Option<Vec<u8>>,
        /// Static credentials (access key id, secret) instead of the default chain.
        pub credentials: Option<(String, String)>,
        /// Make every call once: the data-channel machine's own retry policy is then the only
        /// one (scenario runs, which the simulator models that way).
        pub disable_retries: bool,
    }

    /// aws-sdk-ssm behind [`ControlPlane`].
    #[derive(Debug, Clone)]
    pub struct SdkControlPlane {
        client: aws_sdk_ssm::Client,
    }

    /// Why the SDK client could not be built.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot set up the AWS client: {0}")]
    pub struct SdkSetupError(String);

    impl SdkControlPlane {
        pub async fn new(o: &SdkOptions) -> Result<Self, SdkSetupError> {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(o.region.clone()));
            if !o.profile.is_empty() {
                loader = loader.profile_name(&o.profile);
            }
            if let Some(url) = &o.endpoint_url {
                loader = loader.endpoint_url(url);
            }
            if let Some((key, secret)) = &o.credentials {
                loader = loader.credentials_provider(aws_sdk_ssm::config::Credentials::new(
                    key.clone(),
                    secret.clone(),
                    None,
                    None,
                    "ssm-harness",
                ));
            }
            let shared = loader.load().await;
            let mut b = aws_sdk_ssm::config::Builder::from(&shared).timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(15))
                    .build(),
            );
            if o.disable_retries {
                b = b.retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled());
            }
            if let Some(pem) = &o.ca_pem {
                use aws_smithy_http_client::tls;
                let ctx = tls::TlsContext::builder()
                    .with_trust_store(
                        tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(pem.clone()),
                    )
                    .build()
                    .map_err(|e| SdkSetupError(e.to_string()))?;
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                    .tls_context(ctx)
                    .build_https();
                b = b.http_client(http);
            }
            Ok(SdkControlPlane { client: aws_sdk_ssm::Client::from_conf(b.build()) })
        }

        /// The SDK client, for callers that need the other operations (StartSession).
        pub fn client(&self) -> &aws_sdk_ssm::Client {
            &self.client
        }
    }

    fn api_error<E: aws_sdk_ssm::error::ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> ApiError {
        match e {
            SdkError::ServiceError(s) => classify(s.err().code()),
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ApiError::Unreachable,
            SdkError::ResponseError(_) => ApiError::Internal,
            _ => classify(e.code()),
        }
    }

    impl ControlPlane for SdkControlPlane {
        fn resume_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Resumed, ApiError>> {
            Box::pin(async move {
                match self.client.resume_session().session_id(session_id).send().await {
                    Ok(out) => Ok(Resumed {
                        token: out.token_value().map(str::to_owned),
                        stream_url: out.stream_url().map(str::to_owned),
                    }),
                    Err(e) => {
                        tracing::info!("ResumeSession failed: {e:?}");
                        Err(api_error(&e))
                    }
                }
            })
        }

        fn terminate_session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
            Box::pin(async move {
                match self.client.terminate_session().session_id(session_id).send().await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        tracing::info!("TerminateSession failed: {e:?}");
                        Err(api_error(&e))
                    }
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_by_code_after_the_hash() {
        assert_eq!(classify(Some("com.amazonaws.ssm#DoesNotExistException")), ApiError::DoesNotExist);
        assert_eq!(classify(Some("DoesNotExistException")), ApiError::DoesNotExist);
        assert_eq!(classify(Some("InternalServerError")), ApiError::Internal);
        assert_eq!(classify(Some("ThrottlingException")), ApiError::Throttled);
        assert_eq!(classify(Some("InvalidSignatureException")), ApiError::AccessDenied);
        assert_eq!(classify(None), ApiError::Internal);
    }
}
