//! ssm-harness over real sockets.
//!
//! - [`mock`]: an SSM service on loopback that real clients accept (awsJson1_1 API with SigV4
//!   verification, the data-channel websocket with the agent machine behind it, TLS).
//! - [`sigv4`]: SigV4 verification, and the signing of the client's websocket upgrade, built on
//!   `aws-sigv4`.
//! - [`tls`]: the self-signed certificate and client configurations.
//!
//! Everything here binds loopback addresses only.

pub mod client;
pub mod clock;
pub mod control;
pub mod mock;
pub mod record;
pub mod sigv4;
pub mod tls;
#[cfg(feature = "aws-sdk")]
pub mod world;
