//! Fuzz bodies. The cargo-fuzz targets in `fuzz/` call these, and `cargo test` replays the
//! committed corpus through them on stable, so a crash found once stays found.

use arbitrary::{Arbitrary, Unstructured};

use crate::frame::{decode, Frame, Overrides};
use crate::payload::{OpenDataChannel, Payload};
use crate::types::{MessageType, PayloadType};

/// Decodes arbitrary bytes; when they decode, every accessor, the validator, the dump and the
/// re-encoding must work, and re-encoding a frame that validates clean reproduces the input.
pub fn decode_body(data: &[u8]) {
    let _ = crate::dump::annotate(data);
    let Ok(wire) = decode(data) else { return };
    let violations = wire.validate();
    let _ = Payload::parse(&wire.message_type, wire.payload_type, wire.payload);
    let frame = wire.to_frame();
    if violations.is_empty() {
        match frame.encode() {
            Ok(bytes) => assert_eq!(bytes, data, "clean frame did not re-encode to its bytes"),
            Err(e) => panic!("frame that validates clean refused by the encoder: {e}"),
        }
    }
}

/// Structure-aware: an arbitrary frame and arbitrary overrides. A frame the encoder accepts must
/// decode to itself with no violation; any overridden encoding must decode or fail cleanly.
pub fn roundtrip_body(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(frame) = Frame::arbitrary(&mut u) else { return };
    if let Ok(bytes) = frame.encode() {
        let wire = match decode(&bytes) {
            Ok(w) => w,
            Err(e) => panic!("encoder output does not decode: {e}"),
        };
        assert_eq!(wire.validate(), Vec::new(), "encoder output has violations");
        assert_eq!(wire.to_frame(), frame, "decode(encode(f)) != f");
    }
    let overrides = Overrides {
        header_length: u.arbitrary().unwrap_or_default(),
        payload_length: u.arbitrary().unwrap_or_default(),
        payload_digest: u.arbitrary().unwrap_or_default(),
        message_type_field: u.arbitrary().unwrap_or_default(),
    };
    let bytes = frame.encode_with(&overrides);
    if let Ok(w) = decode(&bytes) {
        let _ = w.validate();
    }
}

/// Every JSON payload model and the OpenDataChannel parser on arbitrary text, with every
/// message type and payload type.
pub fn control_json_body(data: &[u8]) {
    let _ = OpenDataChannel::parse(data);
    for t in MessageType::DATA_CHANNEL {
        let _ = Payload::parse(&t, PayloadType::NONE, data);
    }
    for pt in 0..=13 {
        if let Ok(Some(p)) = Payload::parse(&MessageType::OutputStreamData, PayloadType(pt), data) {
            let _ = crate::payload::to_go_json(&p);
        }
    }
}
