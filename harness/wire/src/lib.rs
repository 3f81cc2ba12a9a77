//! Bit-exact codec for the SSM Session Manager data channel.
//!
//! * [`Frame`] is a well-formed message: lengths and digest are computed when it is encoded, so
//!   they can never disagree with the payload.
//! * [`decode`] reads bytes exactly as the reference decoders do and returns a [`WireFrame`], a
//!   faithful record of what the wire said (including a wrong digest or length), or a typed
//!   [`DecodeError`]. It never panics and never allocates.
//! * [`WireFrame::validate`] lists the requirement violations of a decoded frame; it is separate
//!   from decoding so that the harness can report what a lenient reference peer would accept.
//! * [`payload`] holds typed models of every JSON payload, serialised as Go's `encoding/json` does.
//!
//! The crate is pure: no clock, no randomness, no I/O.

pub mod dump;
mod frame;
pub mod fuzz;
pub mod layout;
pub mod payload;
mod types;
mod validate;

pub use frame::{decode, DecodeError, EncodeError, Frame, Overrides, WireFrame};
pub use ssm_spec::{Level, Req};
pub use types::{FlagValue, HeaderFlags, MessageType, PayloadType, TypeName, TypeNameError};
pub use validate::{Disposition, Violation};

/// SHA-256 of `bytes`, the PayloadDigest of a frame carrying them.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The MessageId as written on the wire: UUID bytes 8..15, then UUID bytes 0..7 (FRAME-006).
pub fn message_id_to_wire(id: uuid::Uuid) -> [u8; 16] {
    let b = id.as_bytes();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&b[8..]);
    out[8..].copy_from_slice(&b[..8]);
    out
}

/// Inverse of [`message_id_to_wire`].
pub fn message_id_from_wire(w: [u8; 16]) -> uuid::Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&w[8..]);
    b[8..].copy_from_slice(&w[..8]);
    uuid::Uuid::from_bytes(b)
}
